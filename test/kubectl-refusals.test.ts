// Input kubectl refuses that lint and inject read (each checked against kubectl 1.32 with
// `kubectl patch --local -f F --type json --patch-file <[]> -o json`): they refuse it too, exit 2, at its line and
// column; and what kubectl reads they keep reading.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { defaultConfig } from '../webhook/config.ts';
import { goJsonSyntaxError, goQuoteByte } from '../webhook/go-json.ts';
import { Linter } from '../webhook/lint.ts';
import { readDocuments } from '../webhook/manifest-stream.ts';
import { BIN, runCli } from './helpers.ts';

function lint(text: string): Linter {
  const l = new Linter({ config: defaultConfig(), issuer: { classification: 'external' } });
  l.lintText('m.yaml', text);
  return l;
}

/** [line, column, message] of the input problems lint reports. */
function problems(text: string): [number | undefined, number | undefined, string][] {
  return lint(text).problems.map((p) => [p.line, p.column, p.message]);
}

const CM = (name: string, data = '') => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\n${data}`;
const POD = 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: team\n  labels: {kagenti.io/type: agent}\nspec:\n  serviceAccountName: s\n  containers: [{name: c, image: i}]\n';

test('a JSON stream is JSON to kubectl: what JSON.parse refuses is an input error with kubectl\'s reason, in lint and inject', () => {
  const cases: [string, string, number, number, string][] = [
    ['a trailing comma', '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x",}}\n', 1, 68, `invalid character '}' looking for beginning of object key string`],
    ['an unquoted key', '{apiVersion: v1, kind: ConfigMap}\n', 1, 2, `invalid character 'a' looking for beginning of object key string`],
    ['a single-quoted string', '{"apiVersion": "v1", "kind": \'ConfigMap\'}\n', 1, 30, `invalid character '\\'' looking for beginning of value`],
    ['a comment in the object', '{"apiVersion": "v1", # c\n "kind": "ConfigMap", "metadata": {"name": "x"}}\n', 1, 22, `invalid character '#' looking for beginning of object key string`],
    ['the second object of a stream', `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}\n{"apiVersion": "v1",\n "kind": "ConfigMap" "metadata": {}}\n`, 3, 22, `invalid character '"' after object key:value pair`],
  ];
  for (const [what, text, line, column, reason] of cases) {
    const p = problems(text);
    assert.equal(p.length, 1, what);
    assert.deepEqual(p[0]!.slice(0, 2), [line, column], what);
    assert.ok(p[0]![2].startsWith(`not valid JSON: ${reason},`), `${what}: ${p[0]![2]}`);
    const r = runCli(['inject'], text);
    assert.equal(r.code, 2, what);
    assert.equal(r.stdout, '');
    assert.ok(r.stderr.includes(`<stdin>:${line}:${column}: not valid JSON: ${reason},`), `${what}: ${r.stderr}`);
  }
  // what kubectl reads: pretty-printed (tab-indented too), jq -c, and a comment before the first { (then it is YAML)
  const pretty = '{\n\t"apiVersion": "v1",\n\t"kind": "ConfigMap",\n\t"metadata": {"name": "a"}\n}\n';
  const compact = '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b"}}\n{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}\n';
  const yaml = '# rendered\n{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d",}}\n';
  for (const text of [pretty, compact, yaml]) {
    assert.deepEqual(problems(text), [], text);
    assert.equal(runCli(['inject'], text).code, 0, text);
  }
  // Go's scanner's words, for the forms it has
  assert.deepEqual(goJsonSyntaxError('{"a": tru}'), { index: 9, reason: `invalid character '}' in literal true (expecting 'e')` });
  assert.deepEqual(goJsonSyntaxError('{"a": 1.}'), { index: 8, reason: "invalid character '}' after decimal point in numeric literal" });
  assert.deepEqual(goJsonSyntaxError('{"a": "\\q"}'), { index: 8, reason: "invalid character 'q' in string escape code" });
  assert.equal(goJsonSyntaxError('{"a": [1, -2.5e+3, true, null, "\\u00e9"]}'), undefined);
});

test('a stream is JSON only when its first { is in its first 4096 bytes, after Go\'s whitespace, as kubectl peeks at it', async () => {
  // valid YAML, not JSON (unquoted keys, trailing commas): kubectl 1.32 reads it after 4096 bytes of whitespace
  const obj = '{apiVersion: v1, kind: ConfigMap, metadata: {name: a}, data: {x: "1",},}';
  const ws = (n: number) => '\n'.repeat(n - 1) + ' ';
  const read = async (bytes: Buffer) => {
    const docs = [];
    // one byte at a time: the decision waits for the first character that is not whitespace
    for await (const d of readDocuments((async function* () {
      for (let i = 0; i < bytes.length; i++) yield bytes.subarray(i, i + 1);
    })())) docs.push(d);
    return docs;
  };
  for (const [what, prefix, json] of [
    ['{ at byte 4095', Buffer.from(ws(4095)), true],
    ['{ at byte 4096', Buffer.from(ws(4096)), false],
    ['5000 newlines', Buffer.from('\n'.repeat(5000)), false],
    ['a BOM, which is not counted, then { at byte 4095', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(ws(4095))]), true],
  ] as const) {
    const input = Buffer.concat([prefix, Buffer.from(obj)]);
    const lines = prefix.toString('utf8').split('\n').length;
    const l = new Linter({ config: defaultConfig(), issuer: { classification: 'external' } });
    await l.lintStream('m.yaml', Readable.from([input]));
    const input2 = input.toString('utf8').replace(/^\ufeff/, '');
    const r = runCli(['inject'], input2);
    if (json) {
      assert.equal(l.problems.length, 1, what);
      assert.equal(l.problems[0]!.line, lines, what);
      assert.ok(l.problems[0]!.message.startsWith("not valid JSON: invalid character 'a' looking for beginning of object key string,"), what);
      assert.equal(r.code, 2, what);
      assert.match(r.stderr, new RegExp(`^kagenti-webhook inject: <stdin>:${lines}:\\d+: not valid JSON: invalid character 'a'`), what);
    } else {
      assert.deepEqual(l.problems, [], what);
      assert.equal(r.code, 0, `${what}: ${r.stderr}`);
      assert.ok(r.stdout.includes(obj), what);
    }
    const docs = await read(input);
    assert.deepEqual(docs.map((d) => d.json), [json || undefined], what);
  }
  // Go's whitespace before the {, which JSON does not allow: kubectl reads the stream as JSON and refuses it there
  for (const [c, shown] of [['\f', 'U+000C'], ['\u00a0', 'U+00A0'], ['\u0085', 'U+0085']] as const) {
    const p = problems(`${c}{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}\n`);
    assert.deepEqual(p, [[1, 1, `not valid JSON: a stream that starts with { holds JSON objects only (as kubectl reads it), found ${shown}`]], c);
  }
  // bytes of UTF-8 are counted: a no-break space is two, so after 4094 newlines the { is at byte 4096, YAML to kubectl
  // (which refuses it: "mapping values are not allowed"), after 4093 at byte 4095, JSON
  assert.match(problems(`${'\n'.repeat(4094)}\u00a0${obj}`)[0]![2], /^not valid YAML: /);
  assert.deepEqual(problems(`${'\n'.repeat(4093)}\u00a0${obj}`)[0]!.slice(0, 2), [4094, 1]);
});

test('Go\'s words for a JSON character it stops at: the byte, quoted as Go quotes it; nesting past 10000 levels stops there', () => {
  // Go's scanner reads bytes: the first byte of é (0xC3) is 'Ã' (its Latin-1 character); controls as \xNN
  for (const [c, shown] of [['é', `'Ã'`], ['😀', `'ð'`], ['\x01', `'\\x01'`], ['\x7f', `'\\x7f'`], ['\\', `'\\\\'`], ['\f', `'\\f'`]] as const)
    assert.deepEqual(goJsonSyntaxError(`{"x":${c}}`), { index: 5, reason: `invalid character ${shown} looking for beginning of value` }, c);
  assert.deepEqual(goJsonSyntaxError('{"x":tru\x01}'), { index: 8, reason: `invalid character '\\x01' in literal true (expecting 'e')` });
  assert.equal(goQuoteByte(0x85), `'\\u0085'`);
  assert.equal(goQuoteByte(0xad), `'\\u00ad'`);
  const r = runCli(['inject'], '{"apiVersion": "v1", "kind": "ConfigMap", "data": {"x": é}}\n');
  assert.equal(r.code, 2);
  assert.ok(r.stderr.includes(`<stdin>:1:57: not valid JSON: invalid character 'Ã' looking for beginning of value,`), r.stderr);
  // depth: the object is level 1, so the 10000th [ is one too many (kubectl 1.32: offset 10066), valid JSON or not
  const pre = '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"x":';
  const nested = (n: number, end: string) => `${pre}${'['.repeat(n)}${']'.repeat(n)}${end}\n`;
  const tooDeep = { index: 10065, reason: `invalid character '[' exceeded max depth` };
  assert.deepEqual(goJsonSyntaxError(nested(200000, ',}')), tooDeep);
  assert.deepEqual(goJsonSyntaxError(nested(10000, ',}')), tooDeep);
  assert.deepEqual(goJsonSyntaxError(nested(9999, ',}')), { index: 20065, reason: `invalid character '}' looking for beginning of object key string` });
  assert.equal(goJsonSyntaxError(nested(9999, '}')), undefined);
  for (const text of [nested(200000, ',}'), nested(200000, '}'), nested(10000, '}')]) {
    const p = problems(text);
    assert.equal(p.length, 1);
    assert.deepEqual(p[0]!.slice(0, 2), [1, 10066]);
    assert.ok(p[0]![2].startsWith(`not valid JSON: invalid character '[' exceeded max depth, as kubectl's JSON decoder says`), p[0]![2]);
    const i = runCli(['inject'], text);
    assert.equal(i.code, 2);
    assert.match(i.stderr, /^kagenti-webhook inject: <stdin>:1:10066: not valid JSON: invalid character '\[' exceeded max depth, .* Fix: nest them less deeply/);
  }
  assert.deepEqual(problems(nested(9999, '}')), []);
});

test('tabs where kubectl\'s YAML reader refuses one are input errors at the tab, in lint and inject; where it reads one they pass', () => {
  const refused: [string, string, number, number, string][] = [
    ['a tab-only line between documents', `${CM('a', 'data:\n  x: "1"\n')}\t\n---\n${CM('b')}`, 7, 1, 'cannot start any token'],
    ['spaces, then a tab, on a blank line', CM('a', 'data:\n  x: "1"\n  \t\n'), 7, 3, 'cannot start any token'],
    ['a tab before a comment', CM('a', '\t# c\ndata:\n  x: "1"\n'), 5, 1, 'violates indentation'],
    ['a tab-only line after a plain value', CM('a', 'data:\n  x: a\n  \t\n  y: b\n'), 7, 3, 'violates indentation'],
    ['a tab after -', `${CM('a')}  finalizers:\n  -\ta\n`, 6, 4, 'cannot start any token'],
    ['a tab on the first line', `\t\n${CM('a')}`, 1, 1, 'cannot start any token'],
    ['a tab in a comment-only document', `${CM('a')}---\n# only\n\t# c\n---\n${CM('b')}`, 7, 1, 'cannot start any token'],
    ['a tab on a line after a flow mapping', `${CM('a')}data: {a: b}\n\t\n`, 6, 1, 'cannot start any token'],
  ];
  for (const [what, text, line, column, go] of refused) {
    const p = problems(text);
    assert.equal(p.length, 1, `${what}: ${JSON.stringify(p)}`);
    assert.deepEqual(p[0]!.slice(0, 2), [line, column], what);
    assert.ok(p[0]![2].startsWith('not valid for kubectl: a tab') && p[0]![2].includes(go), `${what}: ${p[0]![2]}`);
    const r = runCli(['inject'], text);
    assert.equal(r.code, 2, what);
    assert.ok(r.stderr.includes(`<stdin>:${line}:${column}: not valid for kubectl: a tab`), `${what}: ${r.stderr}`);
  }
  const read: [string, string][] = [
    ['a tab in a block scalar after its indentation', CM('a', 'data:\n  x: |\n    l1\n    \tl2\n')],
    ['a tab in a comment', CM('a', 'data:\n  x: "1"\n# c\t\n')],
    ['a tab after a key\'s colon', CM('a', 'data:\n  x:\t"1"\n')],
    ['a tab after a quoted value, before a comment', CM('a', 'data:\n  x: "1"\t# c\n')],
    ['a tab inside a plain value', CM('a', 'data:\n  x: a\tb\n')],
    ['a tab after a plain value, at its indentation', CM('a', 'data:\n  x: a\n   \t\n  y: b\n')],
    ['a tab after ---', `${CM('a')}---\t\n${CM('b')}`],
    // go-yaml reads a tab after the last line of a multi-line plain value as trailing blank (no key may start there)
    ['a tab after a multi-line plain value', `${CM('a')}  annotations:\n    description: This is a long\n      description wrapped by an editor\t\n    other: x\n`],
    ['a tab before a comment after a multi-line plain value', CM('a', 'data:\n  x: a\n    b\t# c\n')],
    ['a tab after a multi-line plain item', `${CM('a')}  finalizers:\n  - a\n    b\t\n`],
  ];
  for (const [what, text] of read) {
    assert.deepEqual(problems(text), [], what);
    assert.equal(runCli(['inject'], text).code, 0, what);
  }
});

test('anchor names past [A-Za-z0-9_-], the escape \\/ and escapes of no character are refused as kubectl refuses them', () => {
  const cases: [string, string, number, number, string][] = [
    ['an anchor with a dot', `${CM('a')}  labels: &my.anchor {a: b}\n  annotations: *my.anchor\n`, 5, 14, 'did not find expected alphabetic or numeric character'],
    ['a non-ASCII anchor', `${CM('a')}  labels: &é {a: b}\n  annotations: *é\n`, 5, 12, 'did not find expected alphabetic or numeric character'],
    ['\\/', CM('a', 'data:\n  x: "a\\/b"\n'), 6, 8, 'found unknown escape character'],
    ['a surrogate escape', CM('a', 'data:\n  x: "\\ud800"\n'), 6, 7, 'found invalid Unicode character escape code'],
  ];
  for (const [what, text, line, column, go] of cases) {
    const p = problems(text);
    assert.equal(p.length, 1, what);
    assert.deepEqual(p[0]!.slice(0, 2), [line, column], what);
    assert.ok(p[0]![2].startsWith('not valid for kubectl:') && p[0]![2].includes(go), `${what}: ${p[0]![2]}`);
    const r = runCli(['inject'], text);
    assert.equal(r.code, 2, what);
    assert.ok(r.stderr.includes(`<stdin>:${line}:${column}: not valid for kubectl:`), `${what}: ${r.stderr}`);
  }
  for (const text of [`${CM('a')}  labels: &a_b-1 {a: b}\n  annotations: *a_b-1\n`, CM('a', 'data:\n  x: "\\x41\\u00e9\\N\\e\\t"\n'), CM('a', 'data:\n  x: "a\\\\/b"\n')])
    assert.deepEqual(problems(text), [], text);
});

test('a list in a List is an input error with kubectl\'s reason, in lint and inject', () => {
  const nested = `apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: List\n  items:\n  - ${POD.replace(/\n(?=.)/g, '\n    ')}`;
  const p = problems(nested);
  assert.equal(p.length, 1);
  assert.deepEqual(p[0]!.slice(0, 2), [6, 3]);
  assert.ok(p[0]![2].includes('items[0] of List (List) is a list itself') && p[0]![2].includes('is not a list: no Items field'), p[0]![2]);
  assert.equal(lint(nested).exitCode(false), 2);
  const r = runCli(['inject'], nested);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /<stdin>:6:3: not valid for kubectl: items\[0\] of List \(List\) is a list itself/);
  // items: null is no list, for kubectl too
  assert.deepEqual(problems(`apiVersion: v1\nkind: List\nitems:\n- ${CM('a').replace(/\n(?=.)/g, '\n  ')}  items: null\n`), []);
});

test('lint names the line of a byte that is not UTF-8, however far into the stream', async () => {
  for (const lines of [75, 40000]) {
    const text = Buffer.concat([Buffer.from(`${CM('a', 'data:\n')}${'  k: v\n'.repeat(lines - 5)}`), Buffer.from('  x: caf\xe9\n', 'latin1')]);
    const chunks = async function* () {
      for (let i = 0; i < text.length; i += 65536) yield text.subarray(i, i + 65536);
    };
    await assert.rejects(
      (async () => {
        for await (const _ of readDocuments(chunks())) void _;
      })(),
      (err: { line?: number }) => err.line === lines + 1,
    );
    const l = new Linter({ config: defaultConfig(), issuer: { classification: 'external' } });
    await l.lintStream('m.yaml', Readable.from([text]));
    assert.equal(l.problems[0]?.line, lines + 1);
  }
});

test('a bad byte sequence that starts at the end of a 64 KiB chunk is named at its line, not the next chunk\'s last', async () => {
  const chunked = (bytes: Buffer, size = 65536) =>
    (async function* () {
      for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
    })();
  const lineOfError = async (bytes: Buffer): Promise<number | undefined> => {
    try {
      for await (const _ of readDocuments(chunked(bytes))) void _;
    } catch (err) {
      return (err as { line?: number }).line;
    }
    return undefined;
  };
  // UTF-8: a lead byte (é's first) as the chunk's last byte, the next chunk (newlines) does not go on with it
  const head = Buffer.from(`${CM('a', 'data:\n')}${'  k: v\n'.repeat(9000)}`).subarray(0, 65535);
  const lines = head.toString('latin1').split('\n').length;
  const utf8 = Buffer.concat([head, Buffer.from([0xc3]), Buffer.from('\n  x: y'.repeat(3000))]);
  assert.equal(await lineOfError(utf8), lines);
  // the chunk's other bad bytes come after: still the first one's line
  assert.equal(await lineOfError(Buffer.concat([utf8, Buffer.from([0xff])])), lines);
  // a character cut at the chunk's end and completed in the next decodes: no error
  assert.equal(await lineOfError(Buffer.concat([head, Buffer.from('é\n', 'utf8')])), undefined);
  // UTF-16: the first half of a surrogate pair as the chunk's last unit, a line break after it
  const u16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('a: b\n'.repeat(6553), 'utf16le'), Buffer.from('a\ud83d', 'utf16le'), Buffer.from('\n'.repeat(500), 'utf16le')]);
  assert.equal(u16.subarray(0, 65536).readUInt16LE(65534), 0xd83d);
  assert.equal(await lineOfError(u16), 6554);
  // through stdin read from a file, as `lint - < file` reads it (64 KiB chunks)
  const dir = mkdtempSync(join(tmpdir(), 'chunk-'));
  try {
    const f = join(dir, 'bad.yaml');
    writeFileSync(f, utf8);
    const fd = openSync(f, 'r');
    const r = spawnSync(process.execPath, [BIN, 'lint', '-'], { stdio: [fd, 'pipe', 'pipe'], encoding: 'utf8' });
    closeSync(fd);
    assert.equal(r.status, 2);
    assert.match(r.stderr, new RegExp(`^<stdin>:${lines}:1: error: not UTF-8 text \\(a binary file\\?\\) near line ${lines}$`, 'm'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('inject writes comment-only documents and the header comment back as they were; kubectl reads the output as the input', () => {
  const input = `# rendered by helm\n---\n# Source: c/templates/empty.yaml\n---\n# Source: c/templates/pod.yaml\n${POD}---\n# Source: c/templates/cm.yaml\n${CM('a')}---\n# Source: c/templates/empty2.yaml\n`;
  const r = runCli(['inject'], input);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdout.startsWith('# rendered by helm\n---\n# Source: c/templates/empty.yaml\n---\n# Source: c/templates/pod.yaml\n'), r.stdout);
  assert.ok(r.stdout.includes(`---\n# Source: c/templates/cm.yaml\n${CM('a')}---\n# Source: c/templates/empty2.yaml\n`), r.stdout);
  assert.ok(r.stdout.includes('spiffe-helper'));
  const again = runCli(['inject'], r.stdout);
  assert.equal(again.stdout, r.stdout, 'a second run changes nothing');
});

test('a YAML document written as JSON (after ---) with an escape go-yaml refuses (\\/, a surrogate pair as Python writes an emoji) is refused as kubectl refuses it; a JSON stream reads them', () => {
  const doc = (value: string) => `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"data":{"k":"${value}"}}`;
  for (const [value, go] of [
    ['ok \\ud83d\\ude00', 'found invalid Unicode character escape code'],
    ['a\\/b', 'found unknown escape character'],
  ] as const) {
    const p = problems(`---\n${doc(value)}\n`);
    assert.equal(p.length, 1, value);
    assert.equal(p[0]![0], 2, value);
    assert.ok(p[0]![2].includes(go), p[0]![2]);
    // a JSON stream: JSON's escapes
    assert.deepEqual(problems(`${doc(value)}\n`), [], value);
  }
  assert.deepEqual(problems(`---\n${doc('caf\\u00e9')}\n`), []);
});
