// The fast reader against the yaml package (YAML 1.1): whenever the fast path accepts a document, its value
// must equal the full parser's; the splitter must give the same documents whatever the chunk boundaries.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { BAIL, DocumentSplitter, InputError, ManifestParseError, ParsedDocument, fastParse, fullParse, readDocuments, splitDocuments } from '../webhook/manifest-stream.ts';
import { KUBECTL_YAML } from '../webhook/kubectl-yaml.ts';

function full(text: string): unknown {
  try {
    return fullParse(text).value;
  } catch {
    return 'PARSE ERROR';
  }
}

const scalarText = fc.oneof(
  fc.constantFrom('true', 'yes', 'on', 'y', 'n', 'No', 'OFF', '~', 'null', '', '0', '007', '0x1f', '0b101', '1_000', '1.5', '.5', '1e3', '.inf', '-.inf', '.nan',
    '190:20:30', '1.2.3', '10.0.0.1', '100m', '64Mi', '-', '--flag=x', '-x', '+1', 'a: b', 'a #b', 'a#b', '"q"', "'s'", "'it''s'", '[a, b]', '["x", 1]', '{}', '[]',
    '[a, [b]]', '{a: 1}', '&a x', '*a', '!!str x', '|', '|-', '>', 'x:', '? x', '%x', '@x', '`x', 'http://h:1/p', 'C:\\dir', 'a\tb', 'é ✓', '2024-01-02',
    '.', '-.', '._5', 'e5', 'E1', '.e5', '1:30', '8080:80', '0o17', '08', '2024-01-02T10:20:30Z', '1e400', '0x10000000000000000'),
  fc.string({ maxLength: 12 }),
);
const key = fc.oneof(fc.constantFrom('a', 'b', 'kind', 'K8S_TOKEN_REVIEW', 'app.kubernetes.io/name', '"quoted"', "'single'", 'y', 'on', '1', '__proto__', 'a b', '-k', 'k:'), fc.string({ maxLength: 6 }));

// random block documents built line by line (not only valid YAML: the fast path must bail or agree)
const lineArb = fc.tuple(fc.integer({ min: 0, max: 3 }), fc.boolean(), key, fc.option(scalarText, { nil: undefined }), fc.constantFrom('', ' # c', '  '));
const docArb = fc.array(lineArb, { minLength: 1, maxLength: 12 }).map((lines) =>
  lines.map(([ind, dash, k, v, tail]) => `${'  '.repeat(ind)}${dash ? '- ' : ''}${k}:${v === undefined ? '' : ` ${v}`}${tail}`).join('\n') + '\n',
);

test('fast path agrees with the yaml package (YAML 1.1) on random block documents, or gives up', () => {
  fc.assert(
    fc.property(docArb, (text) => {
      const f = fastParse(text);
      if (f === BAIL) return;
      assert.deepEqual(f, full(text), text);
    }),
    { numRuns: 3000 },
  );
});

test('fast path agrees on documents the yaml package writes (values of every type, block literals)', () => {
  const value = fc.letrec((tie) => ({
    v: fc.oneof({ depthSize: 'small' }, fc.string(), fc.boolean(), fc.integer(), fc.double({ noNaN: true }), fc.constant(null), tie('m'), tie('s')),
    m: fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), tie('v'), { maxKeys: 4 }),
    s: fc.array(tie('v'), { maxLength: 4 }),
  }));
  let fast = 0;
  fc.assert(
    fc.property(value.m, fc.boolean(), (obj, compact) => {
      const text = stringify({ kind: 'X', ...obj }, { ...KUBECTL_YAML, indentSeq: compact, lineWidth: 0 });
      const f = fastParse(text);
      if (f === BAIL) return;
      fast++;
      assert.deepEqual(f, full(text), text);
    }),
    { numRuns: 1500 },
  );
  assert.ok(fast > 100, `fast path used for only ${fast} documents`);
});

test('literal block scalars: clip, strip, keep, more-indented lines, blank lines', () => {
  const text = 'a: |\n  one\n    two\n\n  three\n\n\nb: |-\n  x\nc: |+\n  y\n\nd: |\ne: |\n    deep\n';
  assert.notEqual(fastParse(text), BAIL);
  assert.deepEqual(fastParse(text), full(text));
});

test('the splitter gives the same documents and lines whatever the chunk boundaries', () => {
  const stream = '---\n# Source: a\nx: 1\n---\n---\n|\n  lit\n...\n# after end\ny: 2\n-- -not-a-marker: 3\n---   # comment\nz: |\n  ---not a marker when indented\n---#c\r\nw: 4\r\n';
  const whole = splitDocuments(stream).map((d) => [d.line, d.text]);
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: stream.length }), { maxLength: 8 }), (cuts) => {
      const points = [...new Set(cuts)].sort((a, b) => a - b);
      const s = new DocumentSplitter();
      const got: [number, string][] = [];
      let prev = 0;
      for (const p of [...points, stream.length]) {
        for (const d of s.push(stream.slice(prev, p))) got.push([d.line, d.text]);
        prev = p;
      }
      for (const d of s.end()) got.push([d.line, d.text]);
      assert.deepEqual(got, whole);
    }),
  );
  assert.deepEqual(whole, [
    [1, ''],
    [2, '# Source: a\nx: 1\n'],
    [5, ''],
    [6, '|\n  lit\n'],
    [9, '# after end\ny: 2\n-- -not-a-marker: 3\n'],
    [13, 'z: |\n  ---not a marker when indented\n'],
    [16, 'w: 4\r\n'],
  ]);
});

test('the splitter refuses content after a line\'s leading --- as kubectl does, at its position; a comment may follow', () => {
  for (const [stream, line, column, shown] of [
    ['a: 1\n--- {apiVersion: v1, kind: ConfigMap}\n', 2, 5, '{apiVersion: v1, kind: ConfigMap}'],
    ['a: 1\n----\nb: 2\n', 2, 4, '-'],
    ['--- |\n  lit\n', 1, 5, '|'],
    ['---\t!!map\n', 1, 5, '!!map'],
    ['---x: 1\n', 1, 4, 'x: 1'],
  ] as const) {
    assert.throws(
      () => splitDocuments(stream),
      (err: unknown) => {
        assert.ok(err instanceof InputError);
        assert.deepEqual([err.line, err.column], [line, column]);
        assert.equal(err.message, `kubectl refuses the file: "invalid Yaml document separator: ${shown}" (only spaces and a comment may follow a line's leading ---). Fix: start the document on the line after ---`);
        return true;
      },
      stream,
    );
  }
  assert.deepEqual(splitDocuments('--- # c\na: 1\n---#d\nb: 2\n---  \n').map((d) => d.text), ['', 'a: 1\n', 'b: 2\n', '']);
  // `---#x` with nothing before it (the file's first line, or right after the --- that ends a document): kubectl's
  // reader passes it on as content, and its YAML reads the string "---#x" (checked with kubectl 1.32)
  for (const [stream, line] of [
    ['---#x\napiVersion: v1\n', 1],
    ['---#x\n', 1],
    ['---#x\n---\na: 1\n', 1],
    ['a: 1\n---\n---#x\nb: 2\n', 3],
  ] as const)
    assert.throws(
      () => splitDocuments(stream),
      (err: unknown) => {
        assert.ok(err instanceof InputError);
        assert.deepEqual([err.line, err.column], [line, 1], stream);
        assert.match(err.message, /^kubectl refuses the file: it reads "---#x" as content, not as a separator, where no document precedes it .*Fix: put a space after --- \(--- #\.\.\.\)$/);
        return true;
      },
      stream,
    );
  // where kubectl's reader has read a line since the last separator, it is one: a --- kept as content, a comment, a
  // blank line, a `...`
  for (const stream of ['---\n---#x\na: 1\n', 'a: 1\n---\n---\n---#x\nb: 2\n', '# c\n---#x\na: 1\n', '\n---#x\na: 1\n', 'a: 1\n...\n---#x\nb: 2\n', '--- #x\na: 1\n', '---\t#x\na: 1\n'])
    assert.doesNotThrow(() => splitDocuments(stream), stream);
});

test('keys kubectl cannot make a string of are input errors at the key; others become the strings kubectl makes', () => {
  for (const [text, line, column, why] of [
    ['metadata:\n  labels:\n    ? {a: b}\n    : c\n', 3, 7, 'a mapping as a key'],
    ['data: {~: a}\n', 1, 8, 'the null key ~'],
    ['data:\n  [a]: b\n', 2, 3, 'a sequence as a key'],
    ['metadata:\n  name: {{ .Release.Name }}\n', 2, 10, 'a mapping as a key'],
  ] as const) {
    assert.throws(
      () => ParsedDocument.parse(text),
      (err: unknown) => {
        assert.ok(err instanceof ManifestParseError, String(err));
        assert.deepEqual([err.line, err.column], [line, column], text);
        assert.match(err.message, new RegExp(`^not valid for kubectl: ${why.replace(/[[\]{}.]/g, '\\$&')}, which kubectl cannot read`));
        return true;
      },
    );
  }
  // (kubectl patch --local -o json, 1.32: 99999999999999999999 is the key "1e+20")
  assert.deepEqual(ParsedDocument.parse('data:\n  1.5e10: a\n  y: b\n  "~": c\n  99999999999999999999: d\n').value, {
    data: { '1.5e+10': 'a', true: 'b', '~': 'c', '1e+20': 'd' },
  });
});

test('positions: fast and full paths give the same line and column for every key', () => {
  const text = `# c\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  labels:\n    "a.b/c": d\ndata:\n  K: |\n    v\n  L: [1, 2]\nlist:\n- a: 1\n  b:\n    c: 2\n-   d: 3\n`;
  const pd = ParsedDocument.parse(text);
  assert.ok(pd.fast);
  const paths = ['kind', 'metadata.name', 'metadata.labels.a.b/c', 'data.K', 'data.L', 'list.0.a', 'list.0.b.c', 'list.1.d', 'nope', 'data.missing'];
  const fastPos = paths.map((p) => pd.locate(p));
  // the same text with one anchor forces the full path
  const pd2 = ParsedDocument.parse(text.replace('metadata:\n', 'metadata: &m\n'));
  assert.ok(!pd2.fast);
  assert.deepEqual(paths.map((p) => pd2.locate(p)), fastPos);
  assert.deepEqual(fastPos.slice(0, 4), [
    { line: 3, column: 1 },
    { line: 5, column: 3 },
    { line: 7, column: 5 },
    { line: 9, column: 3 },
  ]);
  assert.deepEqual(pd.locate('list.1.d'), { line: 16, column: 5 });
  assert.deepEqual(pd.locate('data.missing'), { line: 8, column: 1 });
});

test('a JSON document with a duplicate key: the last wins on both paths, as kubectl reads JSON, and positions find that one', () => {
  const json = '{"apiVersion": "v1", "kind": "ConfigMap",\n "data": {"K": "first",\n  "K": "last"}}\n';
  const pd = ParsedDocument.parse(json);
  assert.ok(pd.fast, 'JSON.parse read it');
  assert.deepEqual((pd.value as any).data, { K: 'last' });
  assert.deepEqual(fullParse(json, true).value, pd.value);
  assert.deepEqual(pd.locate('data.K'), { line: 3, column: 3 });
  // in YAML a duplicate key stays an error (a JSON text JSON.parse rejects is YAML to lint)
  assert.throws(() => fullParse(json), /Map keys must be unique/);
  assert.throws(() => ParsedDocument.parse('{"kind": "A", kind: "B",}'), /Map keys must be unique/);
});

test('readDocuments: a UTF-16 byte-order mark split across chunks, and UTF-16 text cut at any byte, read as the whole', async () => {
  const text = 'a: 1\n---\nb: é✓\n';
  const le = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]);
  const be = Buffer.from(le).swap16();
  for (const bytes of [le, be, Buffer.from(`\ufeff${text}`, 'utf8'), Buffer.from(text, 'utf8')]) {
    async function* oneByte(): AsyncGenerator<Buffer> {
      for (let i = 0; i < bytes.length; i++) yield bytes.subarray(i, i + 1);
    }
    const docs: [number, string][] = [];
    for await (const d of readDocuments(oneByte())) docs.push([d.line, d.text]);
    assert.deepEqual(docs, [[1, 'a: 1\n'], [3, 'b: é✓\n']], bytes.subarray(0, 2).toString('hex'));
  }
  // a single byte is read as UTF-8
  const one: [number, string][] = [];
  for await (const d of readDocuments((async function* () { yield Buffer.from('x'); })())) one.push([d.line, d.text]);
  assert.deepEqual(one, [[1, 'x']]);
});

test('a JSON stream with a raw control character (a tab too) inside a string is refused where it stands, as kubectl\'s JSON decoder refuses it; escaped, it passes', () => {
  for (const [c, name] of [['\t', 'U+0009'], ['\x01', 'U+0001']] as const) {
    const text = `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"data":{"k":"a${c}b"}}\n`;
    assert.throws(
      () => splitDocuments(text),
      (err: unknown) => err instanceof InputError && err.line === 1 && err.column === 77 && err.message.startsWith(`not valid JSON: a raw ${name} `) && /Fix: write it as the escape \\u00/.test(err.message),
    );
  }
  assert.equal(splitDocuments('{"a":"x\\ty"}\n{"b":1}').length, 2);
  // between tokens a tab is whitespace, as for kubectl
  assert.equal(splitDocuments('{\t"a":\t"x"}\n').length, 1);
});
