// YAML read the way kubectl reads it. kubectl itself is the reference: `kubectl patch --local -f FILE -o json`
// converts the YAML with sigs.k8s.io/yaml, and metadata.managedFields[].fieldsV1 is free-form JSON, so what kubectl
// prints there is exactly what it made of each scalar. The lint parsers (fast and full) and the inject command
// must make the same of them, and what inject writes back must read the same again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, parseDocument } from 'yaml';
import { INT64_MAX, INT64_MIN, KUBECTL_YAML, goFloatKey, goYamlInteger, goYamlNumber } from '../webhook/kubectl-yaml.ts';
import { BAIL, fastParse, fullParse } from '../webhook/manifest-stream.ts';
import { runCli } from './helpers.ts';

// Plain scalars where YAML 1.1 and kubectl could part ways (special floats are left out: kubectl cannot turn
// them into JSON at all).
const SCALARS = [
  '.', '-.', '+.', '._', '._5', '.5', '.5e3', '.e5', '.0', '-.5', '+.5', '1.', '0.', '-1.5', '1e5', '1E5', '1e+5', '1e-5', '1.5e3', '1e05',
  '1e', '1e5.5', '1e400', '-1e400', '1_000', '1_0.5', '1__0', '1_', '0x1F', '0X1f', '-0x1F', '0x_1F', '0o17', '0O17', '017', '08', '09.5',
  '00', '0', '-0', '+12', '0b101', '-0b101', '0b2', '0b', '0x', '0o', '0x1p-2', '1:30', '8080:80', '190:20:30', '1:30.5', '2024-01-02',
  '2024-01-02T10:20:30Z', '2024-1-2', '2024-01-02t10:20:30.5+02:00', '9223372036854775807', '9223372036854775808', '-9223372036854775808',
  '-9223372036854775809', '18446744073709551615', '18446744073709551616', '0xFFFFFFFFFFFFFFFF', '0x10000000000000000', 'e5', 'E1', 'e',
  '+', '1.2.3', '10.0.0.1', '123abc', '12:00pm', 'inf', 'nan', 'Infinity', 'y', 'Y', 'yes', 'n', 'NO', 'on', 'Off', 'true', 'False', 'NULL',
  '~', 'null', '100m', '64Mi',
];
// Keys too (each resolves differently, so none collide).
const KEYS = ['.', 'e5', '1:30', '0o17', '0x1F', '1.', 'y', 'n', '2024-01-02', '._5', '-.'];

/** Integers a JavaScript number writes back as other digits (inject refuses to rewrite a document with one). */
const inexact = (s: string) => {
  const n = goYamlInteger(s);
  return n !== undefined && n <= INT64_MAX && n >= INT64_MIN && String(Number(n)) !== String(n);
};

function document(keys = true, only: (s: string) => boolean = () => true): string {
  const lines = ['apiVersion: v1', 'kind: Pod', 'metadata:', '  name: scalars', '  managedFields:', '    - manager: test', '      operation: Update', '      apiVersion: v1', '      fieldsType: FieldsV1', '      fieldsV1:'];
  SCALARS.forEach((s, i) => {
    if (only(s)) lines.push(`        v${i}: ${s}`);
  });
  if (keys) {
    lines.push('        keys:');
    for (const k of KEYS) lines.push(`          ${k}: x`);
  }
  lines.push('spec:', '  containers:', '    - name: app', '      image: busybox');
  return `${lines.join('\n')}\n`;
}

function kubectlJson(yamlText: string): any {
  const dir = mkdtempSync(join(tmpdir(), 'kw-yaml-'));
  try {
    writeFileSync(join(dir, 'obj.yaml'), yamlText);
    writeFileSync(join(dir, 'patch.json'), '[]');
    const out = execFileSync('kubectl', ['patch', '--local', '-f', join(dir, 'obj.yaml'), '--type', 'json', '--patch-file', join(dir, 'patch.json'), '-o', 'json', '--show-managed-fields'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return JSON.parse(out);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** What kubectl says when it refuses a file ('' when it reads it). */
function kubectlError(text: string): string {
  try {
    kubectlJson(text);
  } catch (err) {
    return String((err as { stderr?: string }).stderr);
  }
  return '';
}

const fields = (obj: any) => obj.metadata.managedFields[0].fieldsV1;
/** A value as JSON carries it (what kubectl sends to the API server). */
const asJson = (v: unknown) => JSON.parse(JSON.stringify(v));

test('every scalar and key reads as kubectl reads it: lint (fast and full parser) and the yaml options', () => {
  const text = document();
  const want = fields(kubectlJson(text));
  const byScalar = (got: any) => Object.fromEntries(SCALARS.map((s, i) => [s, got[`v${i}`]]));
  const wantBy = byScalar(want);
  assert.deepEqual(byScalar(asJson(fields(parse(text, KUBECTL_YAML)))), wantBy, 'KUBECTL_YAML');
  assert.deepEqual(byScalar(asJson(fields(fullParse(text).value))), wantBy, 'lint, full parser');
  assert.deepEqual(asJson(fields(parse(text, KUBECTL_YAML))).keys, want.keys, 'keys');
  assert.deepEqual(asJson(fields(fullParse(text).value)).keys, want.keys, 'keys, lint');
  // The fast path leaves documents with unusual keys to the full parser; without them it reads this one itself.
  const fast = fastParse(document(false));
  assert.notEqual(fast, BAIL, 'the fast path reads the document without the unusual keys');
  assert.deepEqual(byScalar(asJson(fields(fast))), wantBy, 'lint, fast path');
  // The cases that motivated this: YAML 1.1 as the yaml package reads it gets them wrong.
  const plain11 = fields(parse(text, { version: '1.1' }));
  for (const s of ['.', 'e5', '1:30', '0o17', '2024-01-02T10:20:30Z'])
    assert.notDeepEqual(asJson(plain11[`v${SCALARS.indexOf(s)}`]), wantBy[s], `yaml 1.1 reads ${s} as kubectl does; the test no longer shows the difference`);
});

test('inject keeps every scalar as kubectl reads it, and what it writes reads the same again', () => {
  // (integers past 2^53 are left out: inject refuses to rewrite those, see below)
  const text = document(true, (s) => !inexact(s)).replace('  name: scalars\n', '  name: scalars\n  labels:\n    kagenti.io/type: agent\n');
  const r = runCli(['inject', '-f', '-'], text);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /spiffe-helper/, 'the pod was injected');
  assert.deepEqual(fields(kubectlJson(r.stdout)), fields(kubectlJson(text)));
});

test('strings that kubectl would read as numbers are quoted when written; other strings stay plain', () => {
  const text = 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels:\n    kagenti.io/type: agent\n  annotations:\n    a: "0o17"\n    b: "1e5"\n    c: "017"\n    d: e5\n    e: "8080:80"\n    f: "."\n    g: "2024-01-02T10:20:30Z"\nspec:\n  containers:\n    - name: app\n      image: busybox\n';
  const r = runCli(['inject', '-f', '-'], text);
  assert.equal(r.code, 0, r.stderr);
  const annotations = kubectlJson(r.stdout).metadata.annotations;
  for (const [k, v] of Object.entries({ a: '0o17', b: '1e5', c: '017', d: 'e5', e: '8080:80', f: '.', g: '2024-01-02T10:20:30Z' })) assert.equal(annotations[k], v, k);
  assert.match(r.stdout, /\n {4}d: e5\n/, 'a string kubectl reads as a string is not quoted');
});

test('goYamlNumber: the int64 and uint64 edges, signs and prefixes', () => {
  assert.equal(goYamlNumber('0o17'), 15);
  assert.equal(goYamlNumber('-0x1F'), -31);
  assert.equal(goYamlNumber('08'), 8); // not octal: read as a float, as strconv does
  assert.equal(goYamlNumber('0x10000000000000000'), undefined); // over uint64, and hex is never a float
  assert.equal(goYamlNumber('18446744073709551616'), 18446744073709551616); // over uint64: a float
  assert.equal(goYamlNumber('1e400'), undefined);
  assert.equal(goYamlNumber('.'), undefined);
  assert.equal(goYamlNumber('e5'), undefined);
  assert.equal(goYamlNumber('1:30'), undefined);
  assert.equal(goYamlNumber('.inf'), Infinity);
  assert.equal(goYamlNumber('-.Inf'), -Infinity);
  assert.ok(Number.isNaN(goYamlNumber('.NAN')));
  assert.equal(goYamlNumber('.Nan'), undefined); // not one of go-yaml's spellings
  assert.equal(goYamlNumber('inf'), undefined);
});

test('goYamlNumber on huge scalars: leading zeros, and values past 64 bits or past float64', () => {
  assert.equal(goYamlNumber(`${'0'.repeat(100_000)}17`), 15); // leading zeros: octal 17, in range
  assert.equal(goYamlNumber(`0x${'0'.repeat(100_000)}1F`), 31);
  assert.equal(goYamlNumber('9'.repeat(300)), Number('9'.repeat(300))); // over int64: a float, as strconv reads it
  assert.equal(goYamlNumber('9'.repeat(1_000_000)), undefined); // over float64: a string
  assert.equal(goYamlNumber(`0x${'f'.repeat(1_000_000)}`), undefined); // over uint64, and hex is never a float
  assert.equal(goYamlNumber(`0${'7'.repeat(1_000_000)}`), undefined); // over uint64, and as a float over float64
});

test('explicit !!int, !!float, !!timestamp and !!str tags read as kubectl reads them, without warnings', () => {
  const values: Record<string, string> = { a: '!!int 0x1F', b: '!!float 1.5', c: '!!int 017', d: '!!timestamp 2024-01-02', e: '!!str 0x1F', f: '!!int 0o17', g: '!!float 2' };
  const text = `apiVersion: v1\nkind: Pod\nmetadata:\n  name: tagged\n  managedFields:\n    - manager: test\n      fieldsType: FieldsV1\n      fieldsV1:\n${Object.entries(values)
    .map(([k, v]) => `        ${k}: ${v}\n`)
    .join('')}spec:\n  containers:\n    - name: app\n      image: busybox\n`;
  const doc = parseDocument(text, KUBECTL_YAML);
  assert.deepEqual([...doc.errors, ...doc.warnings].map((w) => w.message), []);
  assert.deepEqual(asJson(fields(doc.toJS())), fields(kubectlJson(text)));
  assert.deepEqual(asJson(fields(fullParse(text).value)), fields(kubectlJson(text)), 'lint');
});

test('.inf and .nan as values: kubectl rejects the file, and lint says where (exit 2); as keys and quoted they are fine', () => {
  const pod = (labels: string) => `apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels:\n${labels}spec:\n  containers:\n    - name: app\n      image: busybox\n`;
  const bad: [string, string][] = [
    ['.inf', '+Inf'],
    ['-.Inf', '-Inf'],
    ['+.INF', '+Inf'],
    ['.NaN', 'NaN'],
    ['!!float .inf', '+Inf'],
    ['[x, .nan]', 'NaN'],
  ];
  for (const [value, go] of bad) {
    const text = pod(`    a: b\n    c: ${value}\n`);
    assert.match(kubectlError(text), new RegExp(`unsupported value: \\${go}`), `kubectl rejects ${value}`);
    const r = runCli(['lint', '-'], text);
    assert.equal(r.code, 2, `${value}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^<stdin>:7:\\d+: error: not valid for kubectl: .* is the YAML float \\${go}, which JSON has no value for`, 'm'), value);
  }
  // The fast path leaves the document to the full parser, which knows the position.
  assert.equal(fastParse(pod('    c: .inf\n')), BAIL);
  assert.throws(() => fullParse(pod('    a: b\n    c: .inf\n')), { name: 'ManifestParseError', line: 7, column: 8 });

  const fine = pod(`    a: b\n  annotations:\n    .inf: x\n    q: ".inf"\n    r: '.nan'\n    s: inf\n`);
  assert.equal(kubectlError(fine), '', 'kubectl reads keys and quoted values');
  const r = runCli(['lint', '-'], fine);
  assert.equal(r.code, 0, r.stderr);
});

test('a JSON number past float64 (1e400): kubectl refuses the file, lint says where (exit 2), inject writes nothing; in YAML it is a string', () => {
  const pod = (n: string) =>
    `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{"kagenti.io/type":"agent"}},\n"spec":{"serviceAccountName":"p","containers":[{"name":"app","image":"x","x":${n}}]}}\n`;
  for (const n of ['1e400', '-1E+400', '9'.repeat(400), '0.5e999']) {
    const text = pod(n);
    assert.match(kubectlError(text), /cannot unmarshal number/, `kubectl refuses ${n.slice(0, 10)}`);
    // the fast path leaves it to the full parser, which reads the document as JSON and knows the position
    assert.equal(fastParse(text), BAIL);
    const lint = runCli(['lint', '-'], text);
    assert.equal(lint.code, 2, lint.stdout + lint.stderr);
    assert.match(lint.stderr, /^<stdin>:2:\d+: error: not valid for kubectl: the number .* is past the range of a 64-bit float/m);
    const inj = runCli(['inject'], text);
    assert.equal(inj.code, 2, inj.stderr);
    assert.equal(inj.stdout, '');
    assert.match(inj.stderr, /<stdin>:2:\d+: not valid for kubectl: the number .* is past the range of a 64-bit float.*Nothing was written/);
  }
  // in range, and as a string, it is fine; in YAML kubectl reads 1e400 as a string
  for (const n of ['1e308', '"1e400"']) {
    assert.equal(kubectlError(pod(n)), '');
    assert.equal(runCli(['lint', '-'], pod(n)).code, 0, n);
  }
  const yamlPod = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  x: y\nz: 1e400\n';
  assert.equal(kubectlJson(yamlPod).z, '1e400');
  assert.equal(runCli(['lint', '-'], yamlPod).code, 0);
});

test('inject writes the documents it does not change byte for byte, and refuses to rewrite an integer it cannot hold', () => {
  // kubectl -o json prints integers exactly, so compare its text, not JSON.parse's numbers
  const kubectlText = (yamlText: string): string => {
    const dir = mkdtempSync(join(tmpdir(), 'kw-yaml-'));
    try {
      writeFileSync(join(dir, 'obj.yaml'), yamlText);
      writeFileSync(join(dir, 'patch.json'), '[]');
      return execFileSync('kubectl', ['patch', '--local', '-f', join(dir, 'obj.yaml'), '--type', 'json', '--patch-file', join(dir, 'patch.json'), '-o', 'json'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  const other = '# a comment that stays\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: numbers\n  annotations:\n    big: "x"  # trailing\nbinaryData: {}\ndata:\n  a: "1"\n';
  const custom =
    '---\napiVersion: example.com/v1\nkind: Thing\nmetadata:\n  name: t\nspec:\n  big: 12345678901234567890\n  hex: 0xFFFFFFFFFFFFFFFF\n  max: 9223372036854775807\n  f: 1.0\n  o: 0o17\n';
  const pod = (extra: string) => `---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels:\n    kagenti.io/type: agent\nspec:\n${extra}  containers:\n    - name: app\n      image: busybox\n`;
  const text = other + custom + pod('  activeDeadlineSeconds: 1000000000000000000\n'); // past 2^53, and written with the same digits
  const r = runCli(['inject', '-f', '-'], text);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdout.startsWith(`---\n${other}${custom}---\n`), r.stdout.slice(0, 400));
  assert.match(r.stdout, /spiffe-helper/, 'the pod was injected');
  assert.match(r.stdout, /activeDeadlineSeconds: 1000000000000000000\n/);
  // a byte-order mark is not kept inside the stream, where the `---` now comes first
  assert.equal(runCli(['inject', '-f', '-'], `\uFEFF${other}`).stdout, `---\n${other}`);
  // kubectl keeps int64 exactly (past it, its objects hold a float64, as JavaScript does)
  assert.match(kubectlText(custom), /"max": 9223372036854775807\b/);

  // An injected document with an integer past 2^53 would be written back as another number: exit 2, nothing written.
  const bad = runCli(['inject', '-f', '-'], other + pod('  activeDeadlineSeconds: 9007199254740993\n'));
  assert.equal(bad.code, 2);
  assert.equal(bad.stdout, '');
  assert.match(bad.stderr, /<stdin>:19:26: 9007199254740993 is an integer past 2\^53, which inject cannot write back exactly \(it would become 9007199254740992; kubectl reads 9007199254740993\)/);
  assert.match(kubectlText(pod('  activeDeadlineSeconds: 9007199254740993\n')), /"activeDeadlineSeconds": 9007199254740993\b/);
  // 2^60 is exact in a double, but JavaScript writes it as 1152921504606847000, another integer to kubectl
  const p60 = runCli(['inject', '-f', '-'], pod('  activeDeadlineSeconds: 0x1000000000000000\n'));
  assert.equal(p60.code, 2);
  assert.match(p60.stderr, /0x1000000000000000 is an integer past 2\^53, .*it would become 1152921504606847000; kubectl reads 1152921504606846976/);
});

test('inject splits documents as kubectl does: a ---#comment line is a separator, kept as written; what kubectl refuses, inject refuses', () => {
  // kubectl's reader ends a document at `---#...` (YAML alone would read it as content): kubectl patch --local
  // reads the file as three objects
  const cm = (name: string) => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\n`;
  const agent = 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels:\n    kagenti.io/type: agent\nspec:\n  containers:\n    - name: app\n      image: busybox\n';
  const text = `${cm('a')}---#one\n${agent}---#two\n${cm('b')}`;
  const dir = mkdtempSync(join(tmpdir(), 'kw-sep-'));
  try {
    writeFileSync(join(dir, 'in.yaml'), text);
    writeFileSync(join(dir, 'patch.json'), '[]');
    const names = execFileSync('kubectl', ['patch', '--local', '-f', join(dir, 'in.yaml'), '--type', 'json', '--patch-file', join(dir, 'patch.json'), '-o', 'jsonpath={.metadata.name} '], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    assert.equal(names.trim(), 'a p b');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const r = runCli(['inject', '-f', '-'], text);
  assert.equal(r.code, 0, r.stderr);
  // the documents it leaves alone are written back byte for byte, separators included; the pod is injected
  assert.ok(r.stdout.startsWith(`---\n${cm('a')}---\n#one\napiVersion: v1\nkind: Pod\n`), r.stdout.slice(0, 200));
  assert.ok(r.stdout.endsWith(`---#two\n${cm('b')}`), r.stdout.slice(-200));
  assert.match(r.stdout, /name: spiffe-helper/);
  // running it again changes nothing
  assert.equal(runCli(['inject', '-f', '-'], r.stdout).stdout, r.stdout);

  // kubectl refuses content after a separator, and a `---#` line with no document before it: so does inject (exit 2)
  for (const [input, where, why] of [
    [`--- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n`, '1:5', /invalid Yaml document separator/],
    [`---#x\n${cm('a')}`, '1:1', /it reads "---#x" as content/],
    [`${cm('a')}--- #x\n---#y\n${cm('b')}`, '6:1', /it reads "---#y" as content/],
  ] as const) {
    const bad = runCli(['inject', '-f', '-'], input);
    assert.equal(bad.code, 2, input);
    assert.equal(bad.stdout, '');
    assert.match(bad.stderr, new RegExp(`<stdin>:${where}: kubectl refuses the file`));
    assert.match(bad.stderr, why);
  }
});

test('a quoted string or [ ]/{ } value continued at its key\'s indentation: kubectl reads it, lint and inject exit 2 saying what to indent', () => {
  const cm = (data: string) => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n${data}`;
  for (const [data, want, where, what] of [
    ['  k: "a\n  b"\n', 'a b', '6:8', 'Missing closing "quote. If the string goes on'],
    ["  k: 'a\n  b'\n", 'a b', '6:8', "Missing closing 'quote. If the string goes on"],
    ['  k: ["a",\n"b"]\n', ['a', 'b'], '7:1', 'Flow sequence in block collection must be sufficiently indented and end with a ]. If the value goes on'],
    ['  k: {a: b,\n  c: d}\n', { a: 'b', c: 'd' }, '7:3', 'Flow map in block collection must be sufficiently indented and end with a }. If the value goes on'],
  ] as const) {
    const text = cm(data);
    assert.deepEqual(kubectlJson(text).data.k, want, `kubectl reads ${JSON.stringify(data)}`);
    const fix = "in the next lines, indent them more than its key: kubectl reads such lines at the key's indentation or less, kagenti-webhook's YAML reader (as YAML itself) does not";
    const inj = runCli(['inject', '-f', '-'], text);
    assert.equal(inj.code, 2);
    assert.equal(inj.stderr, `kagenti-webhook inject: <stdin>:${where}: ${what} ${fix}\n`);
    const lint = runCli(['lint', '--external-issuer', '-'], text);
    assert.equal(lint.code, 2);
    assert.match(lint.stderr, new RegExp(`^<stdin>:${where}: error: not valid YAML: ${what.replace(/[[\]{}.()]/g, '\\$&')} ${fix.replace(/[()]/g, '\\$&')}$`, 'm'));
    // indented more than the key, it reads the same everywhere
    const indented = cm(data.replace(/\n(?!$)/, '\n    '));
    assert.deepEqual(kubectlJson(indented).data.k, want);
    assert.equal(runCli(['inject', '-f', '-'], indented).code, 0);
  }
});

test('inject keeps the text after a ... (document end) that kubectl never reads as it was: not injected, no --- before it', () => {
  const agent = (name: string) => `apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${name}\n  labels:\n    kagenti.io/type: agent\nspec:\n  containers:\n    - name: app\n      image: busybox\n`;
  const cm = (name: string) => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\n`;
  // after a rewritten (injected) document, after one left alone, and at the end without a newline, with text kubectl
  // would refuse if it read it
  const hidden1 = `# not read\n${agent('hidden-agent')}`;
  const hidden2 = `${cm('hidden-cm')}...\nbad: [x\n`;
  const hidden3 = 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: "unterminated';
  const text = `${agent('a')}...\n${hidden1}---\n${cm('b')}... # end\n${hidden2}---#c\n${agent('c')}...\n${hidden3}`;
  const names = (yaml: string) => {
    const dir = mkdtempSync(join(tmpdir(), 'kw-docend-'));
    try {
      writeFileSync(join(dir, 'in.yaml'), yaml);
      writeFileSync(join(dir, 'patch.json'), '[]');
      return execFileSync('kubectl', ['patch', '--local', '-f', join(dir, 'in.yaml'), '--type', 'json', '--patch-file', join(dir, 'patch.json'), '-o', 'jsonpath={.metadata.name} '], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  assert.equal(names(text), 'a b c', 'kubectl reads only the document before each ...');
  const r = runCli(['inject', '-f', '-'], text);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(names(r.stdout), 'a b c');
  assert.equal(r.stdout.match(/^ {4}- name: spiffe-helper$/gm)?.length, 2, 'a and c are injected, the hidden agent is not');
  assert.ok(r.stdout.includes(`...\n${hidden1}---\n${cm('b')}... # end\n${hidden2}---\n#c\napiVersion`), r.stdout);
  assert.ok(r.stdout.endsWith(`...\n${hidden3}\n`), r.stdout.slice(-200));
  assert.equal(runCli(['inject', '-f', '-'], r.stdout).stdout, r.stdout, 'a second run changes nothing');
  // positions after the unread text are those of the input
  const bad = runCli(['inject', '-f', '-'], `${cm('x')}...\n${hidden1}---\nkind: a\nkind: b\n`);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^kagenti-webhook inject: <stdin>:19:1: Map keys must be unique/);
});

test('inject writes U+0085, U+2028 and U+2029 (line breaks to kubectl) escaped, in keys and values, and kubectl reads them back', () => {
  // In the input they are escapes in double quotes, which kubectl and the yaml package read alike.
  const forms = (c: string) => [c, `a${c}`, `${c}a`, `a${c}b`, `a\\n${c}b`, `a${c}\\nb`, `${c}\\n`, `\\n${c}`, `${c}${c}`, `x ${c} y: z # w`];
  const chars = ['\\u0085', '\\u2028', '\\u2029', '\\N', '\\L', '\\P'];
  const annotations = chars.flatMap((c, i) => forms(c).map((f, j) => `    "k${i}-${j}${f}": "${f}"\n    "v${i}-${j}": "${f}"\n`)).join('');
  const text = `apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels:\n    kagenti.io/type: agent\n  annotations:\n${annotations}spec:\n  containers:\n    - name: app\n      image: busybox\n      args: ["\\u2028", "a\\u2029"]\n`;
  const r = runCli(['inject', '-f', '-'], text);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /spiffe-helper/, 'the pod was injected');
  assert.doesNotMatch(r.stdout, /[\u0085\u2028\u2029]/, 'no raw line-break character is written');
  const want = kubectlJson(text);
  const got = kubectlJson(r.stdout);
  assert.equal(Object.keys(want.metadata.annotations).length, 120);
  const ours = (a: Record<string, string>) => Object.fromEntries(Object.entries(a).filter(([k]) => !k.includes('.io/')));
  assert.deepEqual(ours(got.metadata.annotations), want.metadata.annotations);
  assert.deepEqual(got.spec.containers.find((c: any) => c.name === 'app').args, ['\u2028', 'a\u2029']);
  assert.equal(got.metadata.annotations['v1-0'], '\u2028', 'a value that is only U+2028 stays that, not null');
});

test('inject writes characters outside YAML\'s printable set (C0, DEL, C1, U+FFFE, U+FFFF) escaped, and kubectl reads them back', () => {
  // In the input they are escapes in double quotes; raw in the output, kubectl would refuse the whole file.
  const escapes = ['\\x01', '\\x08', '\\v', '\\f', '\\e', '\\x1f', '\\x7f', '\\x80', '\\x84', '\\x86', '\\x9f', '\\ufffe', '\\uffff', 'a\\x7fb', '\\x7f\\n\\x80'];
  const annotations = escapes.map((e, i) => `    "k${i}${e}": "${e}"\n    "v${i}": "x${e}y"\n`).join('');
  const text = `apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels:\n    kagenti.io/type: agent\n  annotations:\n${annotations}spec:\n  containers:\n    - name: app\n      image: busybox\n      args: ["\\x7f", "\\u0090"]\n`;
  const r = runCli(['inject', '-f', '-'], text);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /spiffe-helper/, 'the pod was injected');
  assert.doesNotMatch(r.stdout, /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]/, 'no raw character outside the printable set is written');
  const want = kubectlJson(text);
  const got = kubectlJson(r.stdout);
  const ours = (a: Record<string, string>) => Object.fromEntries(Object.entries(a).filter(([k]) => !k.includes('.io/')));
  assert.equal(Object.keys(want.metadata.annotations).length, escapes.length * 2);
  assert.deepEqual(ours(got.metadata.annotations), want.metadata.annotations);
  assert.equal(got.metadata.annotations.v6, 'x\x7fy');
  assert.equal(got.metadata.annotations['k12\uffff'], '\uffff');
  assert.deepEqual(got.spec.containers.find((c: any) => c.name === 'app').args, ['\x7f', '\x90']);
});

test('inject and lint refuse a YAML file holding a raw character outside the printable set wherever kubectl refuses it (exit 2, line and column): values, quoted or not, comments, a later document; a separating --- line, a JSON stream and the printable ones pass', () => {
  const pod = (value: string, more = '') => `apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels:\n    kagenti.io/type: agent\n  annotations:\n    a: ${value}\n${more}spec:\n  containers:\n    - name: app\n      image: busybox\n`;
  // C0, DEL, C1 at both ends and beside U+0085, a noncharacter (the unit tests of the set are in manifest-stream's)
  const refused = ['\x1b', '\x7f', '\x80', '\x86', '\uffff'];
  for (const c of refused) {
    const hex = `U\\+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`;
    for (const [where, text, line, col] of [
      ['plain', pod(`x${c}y`), 8, 9],
      ['double-quoted', pod(`"x${c}y"`), 8, 10],
      ['single-quoted', pod(`'x${c}y'`), 8, 10],
      ['a comment', pod(`x # see${c}`), 8, 15],
      ['a block scalar', pod('|', `      x${c}\n`), 9, 8],
      ['a later comment-only document', `${pod('x')}---\n# ${c}\n`, 14, 3],
      // a --- line with nothing before it, which kubectl's reader keeps as content
      ['the first --- line', `--- # ${c}\n${pod('x')}`, 1, 7],
    ] as const) {
      const label = `${hex} in ${where}`;
      assert.match(kubectlError(text), /control characters are not allowed/, `kubectl refuses ${label}`);
      const inj = runCli(['inject', '-f', '-'], text);
      assert.equal(inj.code, 2, label);
      assert.equal(inj.stdout, '', label);
      assert.match(inj.stderr, new RegExp(`^kagenti-webhook inject: <stdin>:${line}:${col}: not valid for kubectl: a raw ${hex} \\(.*\\), which kubectl refuses anywhere in a YAML file, .* Fix: remove it, or write it as the escape \\\\[xu][0-9a-f]+ inside a double-quoted string\n$`), label);
      const lint = runCli(['lint', '--no-color', '-'], text);
      assert.equal(lint.code, 2, label);
      assert.match(lint.stderr, new RegExp(`^<stdin>:${line}:${col}: error: not valid for kubectl: a raw ${hex} `), label);
    }
  }
  // what kubectl takes: tab, NBSP, a byte-order mark inside (U+0085: the next test); any of them on a --- line that separates
  // documents (kubectl's reader drops it); and DEL or a C1 control in a JSON stream
  for (const text of [`${pod('x')}--- # \x7f\x01\n`, pod('"x\ty"'), pod('x\u00a0y'), pod('x\ufeffy'), `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"k":"a\x7fb\x80"}}\n`]) {
    assert.equal(kubectlError(text), '', JSON.stringify(text));
    assert.equal(runCli(['inject', '-f', '-'], text).code, 0, JSON.stringify(text));
    // (the pod breaks a policy, a finding: exit 1, not an input error)
    assert.notEqual(runCli(['lint', '-'], text).code, 2, JSON.stringify(text));
  }
});

test('lint refuses a raw U+0085 outside quotes, which kubectl reads as a line break (a plain or block value, a key, a comment with text after it), and passes it in quotes or at the end of a comment, as kubectl does', () => {
  const cm = (data: string) => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  ${data}\n`;
  for (const [data, line, col] of [
    ['a: x\u0085y', 6, 7],
    ['a: x\u0085 y', 6, 7],
    ['a: x # see\u0085more', 6, 13],
    ['a: |\n    x\u0085y', 7, 6],
    ['k\u0085: x', 6, 4],
  ] as const) {
    assert.notEqual(kubectlError(cm(data)), '', `kubectl refuses ${JSON.stringify(data)}`);
    const lint = runCli(['lint', '--no-color', '-'], cm(data));
    assert.equal(lint.code, 2, JSON.stringify(data));
    assert.match(lint.stderr, new RegExp(`^<stdin>:${line}:${col}: error: not valid for kubectl: a raw U\\+0085 \\(NEXT LINE\\) outside quotes, which kubectl's YAML reader takes for a line break, .* Fix: remove it, or write it as the escape \\\\N inside a double-quoted string\n`), JSON.stringify(data));
  }
  for (const data of ['a: "x\u0085y"', "a: 'x\u0085y'", 'a: x # see\u0085', 'a: x # see\u0085  # more']) {
    assert.equal(kubectlError(cm(data)), '', `kubectl reads ${JSON.stringify(data)}`);
    assert.equal(runCli(['lint', '-'], cm(data)).code, 0, JSON.stringify(data));
  }
});

test('a comment of many raw U+0085 is read in one pass: passed with nothing after them, refused at the first one text follows', () => {
  const cm = (comment: string) => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: "1" # c${comment}\n`;
  // (a scan per break was quadratic: 320,000 breaks took 45 s)
  const many = '\u0085'.repeat(400_000);
  assert.equal(runCli(['lint', '-'], cm(many)).code, 0);
  const refused = runCli(['lint', '--no-color', '-'], cm(`\u0085x${many}`));
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /^<stdin>:6:13: error: not valid for kubectl: a raw U\+0085 \(NEXT LINE\) outside quotes/);
});

test('inject refuses to rewrite a document holding a raw U+0085, U+2028 or U+2029 (kubectl reads a line break); others pass as they are', () => {
  const pod = (annotation: string) => `apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels:\n    kagenti.io/type: agent\n  annotations:\n    ${annotation}\nspec:\n  containers:\n    - name: app\n      image: busybox\n`;
  // kubectl reads these in quotes as line breaks: U+0085 folds into a space, spaces after U+2028 go; the yaml
  // package keeps both as they are
  assert.equal(kubectlJson(pod('a: "x\u0085y"')).metadata.annotations.a, 'x y');
  assert.equal(kubectlJson(pod('a: "x\u2028  y"')).metadata.annotations.a, 'x\u2028y');
  for (const [c, esc] of [['\u0085', '\\\\N'], ['\u2028', '\\\\L'], ['\u2029', '\\\\P']] as const) {
    for (const annotation of [`a: "x ${c}y"`, `a: x${c}y`, `a: x # ${c}`, `"k${c}": x`, ...(c === '\u0085' ? [`a: "x${c}y"`] : [])]) {
      const r = runCli(['inject', '-f', '-'], pod(annotation));
      assert.equal(r.code, 2, JSON.stringify(annotation));
      assert.equal(r.stdout, '');
      assert.match(r.stderr, new RegExp(`<stdin>:8:\\d+: a raw U\\+${c.charCodeAt(0).toString(16).padStart(4, '0').toUpperCase()} \\(.*\\) in a document inject rewrites: kubectl reads it as a line break, .* write it as ${esc} inside double quotes, or remove it`));
    }
  }
  // U+2028 and U+2029 in a quoted value with nothing blank beside them read alike: those pass, escaped
  // (a backslash before one is a character in single quotes, and after an escaped backslash in double quotes)
  const alike = pod(`a: "\u2028"\n    b: "x\u2029y"\n    c: 'x\u2028y'\n    d: 'a\\\u2028b'\n    e: "a\\\\\u2028b"`);
  const ok = runCli(['inject', '-f', '-'], alike);
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual(kubectlJson(ok.stdout).metadata.annotations.c, 'x\u2028y');
  for (const k of ['a', 'b', 'c', 'd', 'e']) assert.equal(kubectlJson(ok.stdout).metadata.annotations[k], kubectlJson(alike).metadata.annotations[k], k);
  assert.equal(kubectlJson(alike).metadata.annotations.e, 'a\\\u2028b');
  for (const annotation of [`a: "x \u2028y"`, `a: "x\u2028\u2029y"`, `a: |\n      x\u2028y`]) assert.equal(runCli(['inject', '-f', '-'], pod(annotation)).code, 2, JSON.stringify(annotation));
  // a document inject does not change is written as it was
  const cm = `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: "x\u2028y"\n`;
  const r = runCli(['inject', '-f', '-'], cm);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `---\n${cm}`);
});

test('inject writes keys YAML reads as numbers or booleans as the strings kubectl makes of them', () => {
  const keys = [
    '1.5e10', '0.1', '1.0', '3.14159265358979', '1e6', '100000', '1e-5', '-2.5e-7', '.inf', '-.Inf', '.NaN', '1e300', '-1e-50', '16777217.0',
    '123456789', '9007199254740993', '9223372036854775807', '-9223372036854775808', '18446744073709551616', '-0', '0x1F', '0o17', '017',
    '!!float 2', '!!float 12345678901', '0.000123', '0.0001', '1e21', '123456.7', '1234567.0', '999999.9', '9999999.0', 'y', 'off', 'true',
    '3.4028235e38', '3.4028236e38', '1e-45', '7e-46', '1.17549435e-38', '0x1p3', '2024-01-02', '1_000.5', '+12', '8.589934592e9', '2.44140625e-4', '-2.96072825e6',
  ];
  // and floats across the float32 range (a fixed pseudo-random sequence)
  let seed = 7;
  const next = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
  for (let i = 0; i < 150; i++) keys.push(`${next() < 0.3 ? '-' : ''}${(next() * 10).toPrecision(1 + Math.floor(next() * 17))}e${Math.floor(next() * 80) - 40}`);
  // each in a mapping of its own: some are one key to kubectl (1e300 and .inf are both ".inf"), which it then
  // takes in no fixed order
  const fieldsText = keys.map((k, i) => `        m${i}:\n          ${k}: v${i}\n`).join('');
  const text = `apiVersion: v1\nkind: Pod\nmetadata:\n  name: keys\n  labels:\n    kagenti.io/type: agent\n  managedFields:\n    - manager: test\n      fieldsType: FieldsV1\n      fieldsV1:\n${fieldsText}  annotations:\n    1.5e10: a\n    .inf: b\n    y: c\nspec:\n  containers:\n    - name: app\n      image: busybox\n`;
  const r = runCli(['inject', '-f', '-'], text);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /spiffe-helper/, 'the pod was injected');
  const want = kubectlJson(text);
  const got = kubectlJson(r.stdout);
  assert.deepEqual(fields(got), fields(want));
  assert.equal(Object.keys(fields(want)).length, keys.length);
  assert.equal(got.metadata.annotations['1.5e+10'], 'a');
  assert.equal(got.metadata.annotations['.inf'], 'b');
  assert.equal(got.metadata.annotations['true'], 'c');
  assert.equal(goFloatKey(3.14159265358979), '3.1415927');
  assert.equal(goFloatKey(1e6), '1e+06');
  assert.equal(goFloatKey(-2.5e-7), '-2.5e-07');
  assert.equal(goFloatKey(2.44140625e-4), '0.00024414062', 'of two shortest forms as near, the even one');
});

test('inject refuses to rewrite a document with a key kubectl cannot read (null, past int64, a collection): exit 2', () => {
  const pod = (key: string) => `apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels:\n    kagenti.io/type: agent\n  annotations:\n    ${key}: x\nspec:\n  containers:\n    - name: app\n      image: busybox\n`;
  for (const [key, why] of [['~', 'the null key ~'], ['null', 'the null key null'], ['18446744073709551615', 'the key 18446744073709551615, an integer past int64'], ['[a]', 'a sequence as a key']]) {
    const r = runCli(['inject', '-f', '-'], pod(key));
    assert.equal(r.code, 2, key);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.match(r.stderr, new RegExp(`<stdin>:8:5: ${why.replace(/[[\]]/g, '\\$&')}, which kubectl cannot read`), key);
    assert.throws(() => kubectlJson(pod(key)), key);
  }
  // a document inject leaves alone passes as it was (kubectl rejects it either way)
  const cm = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  ~: x\n';
  assert.equal(runCli(['inject', '-f', '-'], cm).stdout, `---\n${cm}`);
});

test('merge keys (<<) apply in document order, as kubectl applies them: lint (full parser), the yaml options and inject', () => {
  // go-yaml v2: each key and each `<<` replaces what came before it; of the mappings one `<<` lists, the first wins
  const merges = `        anchors:
          a: &a {A: a, B: a, Nm: {x: a}}
          b: &b {A: b, C: b}
          c: &c {A: c, <<: *b, C: c2}
        keyThenMerge:
          A: own
          <<: *a
        mergeThenKey:
          <<: *a
          A: own
        list:
          A: own
          <<: [*a, *b]
          C: own
        listInline:
          <<: [{A: inline}, *b]
          B: own
        twoMerges:
          <<: *a
          <<: *b
        shallow:
          Nm: {y: own}
          <<: *a
        nested:
          outer:
            A: own
            <<: {A: inner, D: inner}
        chained:
          A: own
          Z: own
          <<: *c
        quoted:
          "<<": {A: q}
        tagged:
          A: own
          !!merge <<: *b
`;
  const text = `apiVersion: v1\nkind: Pod\nmetadata:\n  name: merges\n  labels:\n    kagenti.io/type: agent\n  managedFields:\n    - manager: test\n      fieldsType: FieldsV1\n      fieldsV1:\n${merges}spec:\n  containers:\n    - name: app\n      image: busybox\n`;
  const want = fields(kubectlJson(text));
  assert.deepEqual(want.keyThenMerge, { A: 'a', B: 'a', Nm: { x: 'a' } }, 'kubectl: a later merge replaces an earlier key');
  assert.deepEqual(asJson(fields(fullParse(text).value)), want, 'lint');
  assert.deepEqual(asJson(fields(parse(text, KUBECTL_YAML))), want, 'KUBECTL_YAML');
  // inject writes the values it read; a key that is the string "<<" is written quoted, or kubectl would merge it
  const r = runCli(['inject', '-f', '-'], text);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /spiffe-helper/, 'the pod was injected');
  assert.deepEqual(fields(kubectlJson(r.stdout)), want);
});

test('aliases: lint accepts what kubectl accepts (many uses of one anchor) and refuses what it refuses (an anchor in itself, excessive aliasing)', () => {
  // lol-style documents around go-yaml's limit: anchors of anchors, mappings and merges, filler before or after
  const docs: string[] = [];
  for (const fanout of [3, 10])
    for (const levels of [2, 3, 4, 5])
      for (const filler of [0, 400])
        for (const style of ['seq', 'merge']) {
          const lines = ['apiVersion: v1', 'kind: ConfigMap', 'metadata: {name: x}', `f: [${Array(filler).fill('x').join(', ')}]`, 'a0: &a0 {y0: a, y1: b, y2: {z: c}}'];
          for (let i = 1; i <= levels; i++)
            lines.push(style === 'seq' ? `a${i}: &a${i} [${Array(fanout).fill(`*a${i - 1}`).join(', ')}]` : `a${i}: &a${i} {<<: [${Array(fanout).fill(`*a${i - 1}`).join(', ')}], own${i}: x}`);
          docs.push(`${lines.join('\n')}\n`);
        }
  // 150 uses of one anchor, and an anchor that holds an alias to itself
  docs.push(`apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\nv: &v "true"\ndata:\n${Array.from({ length: 150 }, (_, i) => `  k${i}: *v\n`).join('')}`);
  docs.push('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: &a\n  b: *a\n');
  const outcome = (f: () => unknown) => {
    try {
      f();
      return 'ok';
    } catch (err) {
      const m = String((err as Error).message);
      return /excessive aliasing/.test(m) ? 'excessive aliasing' : /contains itself/.test(m) ? 'contains itself' : m;
    }
  };
  const got = docs.map((d) => outcome(() => fullParse(d)));
  const want = docs.map((d) => outcome(() => kubectlJson(d)));
  assert.deepEqual(got, want);
  assert.ok(want.filter((w) => w === 'excessive aliasing').length >= 4 && want.filter((w) => w === 'ok').length >= 4, want.join());
  assert.equal(got.at(-2), 'ok');
  assert.equal(got.at(-1), 'contains itself');
});
