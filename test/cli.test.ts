// The command line as users and pipelines call it: the built bin (dist/, made by `npm run build`/prepare).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { spawn, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import fastJsonPatch from 'fast-json-patch';
import type { AdmissionRequest, KubeObject } from '../webhook/admission.ts';
import { defaultConfig } from '../webhook/config.ts';
import { mutate } from '../webhook/mutate.ts';
import { decodePatch, joinWarnings, podCreateRequest, ROOT, runCli } from './helpers.ts';

const tempDirs: string[] = [];
after(() => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});
/** A temporary directory named from `prefix`, removed after the file's tests. */
function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

const golden = (f: string) => join(ROOT, 'test', 'golden', f);

test('--help lists the commands; --version prints the package version', () => {
  const h = runCli(['--help']);
  assert.equal(h.code, 0);
  for (const cmd of ['serve', 'inject', 'lint', 'certs']) assert.match(h.stdout, new RegExp(`^  ${cmd} `, 'm'));
  const v = runCli(['--version']);
  assert.equal(v.code, 0);
  assert.equal(v.stdout.trim(), JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version);
});

test('unknown command and bad flags: exit 2 with one line on stderr', () => {
  for (const args of [['frobnicate'], ['serve', '--bogus'], ['inject', '--bogus'], ['serve', '--port', 'abc', '--dev-certs', '/tmp/x']]) {
    const r = runCli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  }
});

test('serve stops at start-up with exit 2 and one line naming the problem', () => {
  const dir = tempDir('kw-serve-');
  const badConfig = join(dir, 'bad.yaml');
  writeFileSync(badConfig, 'authBridge:\n  defaultMode: sidecar\n');
  // a year: past the longest interval a timer can wait, which would re-check the issuer every millisecond
  const yearConfig = join(dir, 'year.yaml');
  writeFileSync(yearConfig, 'tokenReview:\n  recheckSeconds: 31536000\n');
  const garbage = join(dir, 'garbage.pem');
  writeFileSync(garbage, 'not a certificate');
  const cases: [string[], RegExp][] = [
    [['serve', '--tls-cert', join(dir, 'missing.crt'), '--tls-key', join(dir, 'missing.key')], /missing\.crt/],
    [['serve', '--tls-cert', garbage, '--tls-key', garbage, '--port', '0'], /garbage\.pem/],
    [['serve', '--config', badConfig, '--dev-certs', dir], /authBridge\.defaultMode/],
    [['serve', '--config', yearConfig, '--dev-certs', dir], /tokenReview\.recheckSeconds: expected a whole number of seconds from 1 to 2147483/],
    [['serve'], /--tls-cert/],
    [['serve', '--cluster', 'maybe', '--dev-certs', dir], /--cluster must be auto or none/],
    // `--config "$CFG"` with CFG unset: never the defaults without a word
    [['serve', '--config', '', '--dev-certs', dir], /--config needs a file \(it was given an empty value\)/],
  ];
  for (const [args, pattern] of cases) {
    const r = runCli([...args, '--probe-port', '0']);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});

test('lint --config with an empty value exits 2 instead of linting with the defaults', () => {
  const r = runCli(['lint', '--config', '', '-'], 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n');
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--config needs a file \(it was given an empty value\)/);
});

test('serve with a KUBECONFIG that cannot be used stops at start-up instead of running without cluster state', () => {
  const dir = tempDir('kw-serve-');
  const noContext = join(dir, 'noctx.yaml');
  writeFileSync(noContext, 'apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\ncurrent-context: gone\nusers: []\n');
  for (const [kubeconfig, pattern] of [
    [join(dir, 'missing.yaml'), /the file does not exist/],
    [`${join(dir, 'missing.yaml')}:${join(dir, 'also-missing.yaml')}`, /none of its files exists/],
    [noContext, /its current-context "gone" names no context with a cluster/],
  ] as const) {
    const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'kagenti-webhook.js'), 'serve', '--dev-certs', dir, '--probe-port', '0', '--port', '0', '--warmup', '0'], {
      encoding: 'utf8',
      env: { ...process.env, KUBECONFIG: kubeconfig },
      timeout: 60_000,
    });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, pattern);
    assert.match(r.stderr, /Fix it, unset KUBECONFIG .*, or pass --cluster none/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});

test('a bad LOG_LEVEL is blamed on the environment variable, not on a flag nobody passed', () => {
  const dir = tempDir('kw-serve-');
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'kagenti-webhook.js'), 'serve', '--dev-certs', dir, '--probe-port', '0'], {
    encoding: 'utf8',
    env: { ...process.env, LOG_LEVEL: 'verbose' },
    timeout: 60_000,
  });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /the LOG_LEVEL environment variable must be one of trace, debug, info, warn, error, got "verbose"/);
});

test('serve exits 2 naming the port when either port is taken, and leaves nothing listening', async () => {
  const dir = tempDir('kw-serve-');
  const taken = net.createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  const port = (taken.address() as net.AddressInfo).port;
  try {
    for (const [flag, other] of [['--probe-port', '--port'], ['--port', '--probe-port']] as const) {
      const started = Date.now();
      const r = runCli(['serve', '--dev-certs', dir, '--cluster', 'none', '--warmup', '0', '--host', '127.0.0.1', flag, String(port), other, '0']);
      assert.equal(r.code, 2, `${flag}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1 port ${port} \\(${flag}\\): the port is in use`));
      assert.ok(Date.now() - started < 60_000);
    }
    // both ports 0 (any free port): an address the machine does not have fails on the admission port, named so
    const r = runCli(['serve', '--dev-certs', dir, '--cluster', 'none', '--warmup', '0', '--host', '192.0.2.1', '--port', '0', '--probe-port', '0']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /cannot listen on 192\.0\.2\.1 port 0 \(--port\): /);
  } finally {
    taken.close();
  }
});

test('a reader that goes away (| head) ends lint and inject quietly with 141, never a stack trace', async () => {
  const many = Array.from({ length: 3000 }, (_, i) => `---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kagent-enterprise-config\n  namespace: ns-${i}\ndata:\n  K8S_TOKEN_REVIEW: "yes"\n`).join('');
  const dir = tempDir('kw-epipe-');
  const file = join(dir, 'many.yaml');
  writeFileSync(file, many);
  for (const args of [['lint', '-o', 'json', file], ['lint', file], ['inject', '-f', file]]) {
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'kagenti-webhook.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.once('data', () => child.stdout.destroy());
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    assert.equal(code, 141, `${args.join(' ')}: ${stderr}`);
    assert.equal(stderr, '', args.join(' '));
  }
});

test('inject reads a stream of JSON objects (jq -c) and writes YAML documents kubectl reads', () => {
  const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'a', namespace: 't', labels: { 'kagenti.io/type': 'agent' } }, spec: { serviceAccountName: 'a', containers: [{ name: 'app', image: 'x' }] } };
  const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', namespace: 't' }, data: { x: '}{"' } };
  const r = runCli(['inject'], `${JSON.stringify(pod)}\n${JSON.stringify(cm)}\n`);
  assert.equal(r.code, 0, r.stderr);
  const dir = tempDir('kw-json-');
  writeFileSync(join(dir, 'out.yaml'), r.stdout);
  const k = spawnSync('kubectl', ['patch', '--local', '-f', join(dir, 'out.yaml'), '--type', 'json', '-p', '[]', '-o', 'json'], { encoding: 'utf8' });
  assert.equal(k.status, 0, k.stderr);
  // kubectl prints one indented JSON object per input object, one after another
  const items = k.stdout.trim().split(/\n(?=\{)/).map((t) => JSON.parse(t));
  assert.deepEqual(items.map((o: any) => `${o.kind}/${o.metadata.name}`), ['Pod/a', 'ConfigMap/c']);
  assert.ok(items[0].spec.containers.some((c: any) => c.name === 'spiffe-helper'), 'the pod is injected');
  assert.deepEqual(items[1], cm, 'the ConfigMap is as it was');
  // JSON escapes YAML does not have (\/ and surrogate pairs, as Python's json.dumps writes them) come out as YAML
  // kubectl reads, with the same values.
  // Objects inject leaves alone are written as they were: kubectl reads the same values from input and output
  // (numbers past 2^53, escapes YAML lacks, a "<<" key, raw U+2028 and DEL included).
  const escaped = `{"apiVersion":"v1","kind":"Widget","metadata":{"name":"e","namespace":"t"},"seed":9007199254740993,"spec":{"<<":"k","slash":"a\\/b","emoji":"x\\ud83d\\ude00","lone":"\\udc00","quote":"x\\"y","raw":"a\u2028b\u007fc","esc":"d\\u2028e"}}\n`;
  const e1 = runCli(['inject'], escaped);
  assert.equal(e1.code, 0, e1.stderr);
  writeFileSync(join(dir, 'escaped.json'), escaped);
  writeFileSync(join(dir, 'escaped.yaml'), e1.stdout);
  const read = (f: string) => {
    const k2 = spawnSync('kubectl', ['patch', '--local', '-f', join(dir, f), '--type', 'json', '-p', '[]', '-o', 'json'], { encoding: 'utf8' });
    assert.equal(k2.status, 0, k2.stderr);
    return k2.stdout;
  };
  assert.equal(e1.stdout, escaped, 'a JSON stream is written back as JSON, objects left alone as they were');
  assert.equal(read('escaped.yaml'), read('escaped.json'));
  assert.match(read('escaped.yaml'), /"seed": 9007199254740993/);
  // positions in errors are the input's lines
  const big = { ...pod, spec: { ...pod.spec, activeDeadlineSeconds: 1 } };
  const text = `${JSON.stringify(cm)}\n${JSON.stringify(big).replace('"activeDeadlineSeconds":1', '"activeDeadlineSeconds":9007199254740993')}\n`;
  const e = runCli(['inject'], text);
  assert.equal(e.code, 2);
  assert.match(e.stderr, /<stdin>:2:\d+: 9007199254740993 is an integer past 2\^53/);
});

test('inject reads stdin, passes non-eligible documents through in order, writes YAML', () => {
  const r = runCli(['inject'], readFileSync(golden('stream-mixed.yaml'), 'utf8'));
  assert.equal(r.code, 0, r.stderr);
  // the comment-only document (Helm's empty template) is written back as it was, as kubectl reads it: as nothing
  assert.match(r.stdout, /^---\n# Source: agents\/templates\/empty\.yaml\n---\n/m);
  const docs: any[] = parseAllDocuments(r.stdout).map((d: any) => d.toJS()).filter((d: unknown) => d !== null);
  assert.deepEqual(docs.map((d: any) => `${d.kind}/${d.metadata.name}`), ['ServiceAccount/planner-agent', 'Deployment/planner-agent', 'Deployment/web-frontend']);
  const names = docs[1].spec.template.spec.containers.map((c: any) => c.name);
  assert.deepEqual(names, ['spiffe-helper', 'envoy-proxy', 'planner']);
  assert.equal(docs[2].spec.template.spec.containers.length, 1);
  // YAML 1.1 strings stay strings for kubectl: "on" is quoted in the output.
  assert.match(r.stdout, /value: "on"/);
});

test('inject keeps the comments before an injected object, with or without a leading ---', () => {
  const pod = (name: string) =>
    `apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${name}\n  labels: {kagenti.io/type: agent}\nspec:\n  serviceAccountName: ${name}\n  containers: [{name: app, image: x}]\n`;
  for (const input of [`# top of file\n\n# about a\n${pod('a')}`, `---\n# top of file\n\n# about a\n${pod('a')}`, `# top of file\n${pod('a')}---\n# about b\n${pod('b')}`]) {
    const r = runCli(['inject'], input);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^---\n# top of file\n/, input);
    if (input.includes('about a')) assert.match(r.stdout, /# about a\napiVersion: v1\n/, input);
    if (input.includes('about b')) assert.match(r.stdout, /---\n# about b\napiVersion: v1\n/, input);
    const pods = parseAllDocuments(r.stdout).map((d: any) => d.toJS());
    assert.equal(pods.length, input.includes('about b') ? 2 : 1);
    for (const p of pods) assert.ok(p.spec.containers.some((c: any) => c.name === 'spiffe-helper'), 'injected');
  }
});

test('inject: comments above the first --- stay above it, as one ---, so a second run changes nothing', () => {
  const once = runCli(['inject', '-f', golden('already-injected-later-webhook.yaml')]);
  assert.equal(once.code, 0, once.stderr);
  assert.ok(once.stdout.startsWith('# An injected pod after later mutating webhooks'), once.stdout.slice(0, 120));
  assert.equal(once.stdout.match(/^---$/gm)?.length, 1, 'one document, one ---');
  assert.equal(runCli(['inject'], once.stdout).stdout, once.stdout, 'inject twice == inject once');
  const pod = 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  labels: {kagenti.io/type: agent}\nspec:\n  containers: [{name: app, image: x}]\n';
  const r = runCli(['inject'], `# top\n\n# more\n---\n${pod}`);
  assert.ok(r.stdout.startsWith('# top\n\n# more\n---\napiVersion: v1\n'), r.stdout.slice(0, 120));
  assert.equal(runCli(['inject'], r.stdout).stdout, r.stdout);
});

test('inject --namespace sets the SPIFFE ID namespace of objects without one', () => {
  const r = runCli(['inject', '--namespace', 'prod', '-f', golden('stream-mixed.yaml')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /spiffe:\/\/cluster\.local\/ns\/prod\/sa\/planner-agent/);
});

test('inject --namespace must be a namespace name: exit 2 with one line, nothing written', () => {
  for (const ns of ['Bad NS!', '-a', 'a/b', 'UPPER', 'a'.repeat(64)]) {
    const r = runCli(['inject', `--namespace=${ns}`, '-f', golden('stream-mixed.yaml')]);
    assert.equal(r.code, 2, `${JSON.stringify(ns)}: ${r.stderr}`);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, `kagenti-webhook inject: --namespace must be a namespace name (at most 63 lowercase letters, digits and '-'), got ${JSON.stringify(ns)} (see kagenti-webhook inject --help)\n`);
  }
  // -n "" (a post-renderer's "$HELM_NAMESPACE" the shell expanded unset): said so, with what to pass instead
  for (const args of [['--namespace='], ['-n', '']]) {
    const r = runCli(['inject', ...args, '-f', golden('stream-mixed.yaml')]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(
      r.stderr,
      `kagenti-webhook inject: --namespace is empty: objects without metadata.namespace need a namespace name. As a Helm post-renderer, pass the release's namespace, the same name as helm -n (--post-renderer-args -n --post-renderer-args NAME): a "$HELM_NAMESPACE" there is expanded by your shell before Helm runs, empty when it is not exported (see kagenti-webhook inject --help)\n`,
    );
  }
  assert.equal(runCli(['inject', '-n', 'a-1', '-f', golden('stream-mixed.yaml')]).code, 0);
  assert.equal(runCli(['inject', '-n', 'a'.repeat(63), '-f', golden('stream-mixed.yaml')]).code, 0);
});

test('inject -f a -f b reads every file in order as one stream, as kubectl apply does; -n twice exits 2', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kw-inject-f-'));
  try {
    const ns = 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n  labels:\n    kagenti.io/authbridge-mode: waypoint\n';
    const pod = (name: string, extra = '') =>
      `apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${name}\n  namespace: team\n  labels:\n    kagenti.io/type: agent\nspec:\n  serviceAccountName: ${name}\n  containers:\n    - name: app\n      image: x${extra}\n`;
    writeFileSync(join(dir, 'a.yaml'), ns);
    writeFileSync(join(dir, 'b.yaml'), `# b\n${pod('b')}`);
    writeFileSync(join(dir, 'c.yaml'), `---\n${pod('c')}`);
    const r = runCli(['inject', '-f', join(dir, 'a.yaml'), '--filename', join(dir, 'b.yaml'), '-f', join(dir, 'c.yaml')]);
    assert.equal(r.code, 0, r.stderr);
    const docs = parseAllDocuments(r.stdout).map((d: any) => d.toJS());
    assert.deepEqual(docs.map((d: any) => `${d.kind}/${d.metadata.name}`), ['Namespace/team', 'Pod/b', 'Pod/c']);
    // the Namespace of the first file counts for the others (waypoint: spiffe-helper, no proxy)
    for (const p of docs.slice(1)) assert.deepEqual(p.spec.containers.map((c: any) => c.name), ['spiffe-helper', 'app']);
    assert.ok(r.stdout.startsWith(`---\n${ns}---\n# b\n`), r.stdout.slice(0, 200));
    // stdin among them, in its place
    const withStdin = runCli(['inject', '-f', join(dir, 'a.yaml'), '-f', '-'], pod('s'));
    assert.deepEqual(parseAllDocuments(withStdin.stdout).map((d: any) => d.toJS().metadata.name), ['team', 's']);
    // a problem names its file; nothing is written
    writeFileSync(join(dir, 'bad.yaml'), 'a: [unclosed\n');
    const bad = runCli(['inject', '-f', join(dir, 'b.yaml'), '-f', join(dir, 'bad.yaml')]);
    assert.equal(bad.code, 2);
    assert.equal(bad.stdout, '');
    assert.match(bad.stderr, new RegExp(`^kagenti-webhook inject: ${join(dir, 'bad.yaml').replace(/[.\\/]/g, '\\$&')}:\\d+:\\d+: `));
    // a denial in any file: exit 1, nothing written
    writeFileSync(join(dir, 'deny.yaml'), pod('d').replace('serviceAccountName: d\n', 'serviceAccountName: d\n  hostNetwork: true\n'));
    const denied = runCli(['inject', '-f', join(dir, 'b.yaml'), '-f', join(dir, 'deny.yaml')]);
    assert.equal(denied.code, 1, denied.stderr);
    assert.equal(denied.stdout, '');
    assert.match(denied.stderr, /\[host-network\] Pod team\/d/);
    // JSON streams concatenate; JSON and YAML do not mix in one output
    writeFileSync(join(dir, 'a.json'), '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"j1"}}\n');
    writeFileSync(join(dir, 'b.json'), '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"j2"}}\n');
    const jsons = runCli(['inject', '-f', join(dir, 'a.json'), '-f', join(dir, 'b.json')]);
    assert.equal(jsons.code, 0, jsons.stderr);
    assert.equal(jsons.stdout, `${readFileSync(join(dir, 'a.json'), 'utf8')}${readFileSync(join(dir, 'b.json'), 'utf8')}`);
    const mixed = runCli(['inject', '-f', join(dir, 'a.json'), '-f', join(dir, 'b.yaml')]);
    assert.equal(mixed.code, 2);
    assert.equal(mixed.stdout, '');
    assert.match(mixed.stderr, /a\.json is a stream of JSON objects and .*b\.yaml YAML: inject writes one stream of one kind/);
    // stdin once; the namespace once
    const twice = runCli(['inject', '-f', '-', '-f', '-'], pod('s'));
    assert.equal(twice.code, 2);
    assert.match(twice.stderr, /stdin \('-'\) can be read only once/);
    const nn = runCli(['inject', '-n', 'a', '--namespace', 'b', '-f', join(dir, 'b.yaml')]);
    assert.equal(nn.code, 2);
    assert.equal(nn.stdout, '');
    assert.equal(nn.stderr, 'kagenti-webhook inject: --namespace given 2 times ("a", "b"): objects without metadata.namespace go to one namespace; pass it once (see kagenti-webhook inject --help)\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('inject does not read $HELM_NAMESPACE (exported for Helm): objects without a namespace go to -n, else default', () => {
  const run = (args: string[], env: Record<string, string>) => {
    const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'kagenti-webhook.js'), 'inject', ...args], { input: readFileSync(golden('stream-mixed.yaml'), 'utf8'), encoding: 'utf8', env: { ...process.env, ...env } });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const plain = run([], { HELM_NAMESPACE: 'release-ns' });
  assert.equal(plain.code, 0, plain.stderr);
  assert.match(plain.stdout, /spiffe:\/\/cluster\.local\/ns\/default\/sa\/planner-agent/);
  assert.doesNotMatch(plain.stdout, /release-ns/);
  // as a post-renderer the namespace is passed: -n with the release's namespace
  assert.match(run(['-n', 'release-ns'], { HELM_NAMESPACE: 'release-ns' }).stdout, /\/ns\/release-ns\/sa\/planner-agent/);
  // a value that is no namespace name is not inject's business
  const odd = run([], { HELM_NAMESPACE: 'Kagent' });
  assert.equal(odd.code, 0, odd.stderr);
  assert.equal(odd.stdout, plain.stdout);
  assert.doesNotMatch(runCli(['inject', '--help']).stdout, /default:\s+\$HELM_NAMESPACE/);
});

test('inject: a denial exits 1 with the message on stderr and nothing on stdout', () => {
  const r = runCli(['inject', '-f', golden('deny-invalid-mode.yaml')]);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^\[invalid-annotation\] Pod team-a\/typo-agent: /);
});

test('inject leaves agents in the namespaces the webhook never sees as they are (never injected, never denied), one warning each; elsewhere it injects', () => {
  // an agent the webhook would deny (port-conflict: the proxy's admin port), in a List, quoted and commented as written
  const unwatched = `---
# kube-system agents are left alone by the webhook
apiVersion: v1
kind: List
items:
  - apiVersion: apps/v1
    kind: Deployment
    metadata: {name: agent, namespace: kube-system}
    spec:
      selector: {matchLabels: {app: a}}
      template:
        metadata:
          labels: {app: a, "kagenti.io/type": agent}
        spec:
          containers:
            - name: main
              image: busybox
              ports: [{containerPort: 9901}]
  - apiVersion: v1
    kind: Pod
    metadata: {name: p, namespace: kagenti-system, labels: {kagenti.io/type: agent}}
    spec: {containers: [{name: main, image: busybox}]}
`;
  // without metadata.namespace: in --namespace
  const bare = `---
apiVersion: v1
kind: Pod
metadata: {name: bare, labels: {kagenti.io/type: agent}}
spec: {containers: [{name: main, image: busybox}]}
`;
  const r = runCli(['inject', '-n', 'kube-public'], unwatched + bare);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, unwatched + bare, 'written back byte for byte');
  const lines = r.stderr.split('\n').filter((l) => l);
  assert.deepEqual(
    lines.map((l) => l.replace(/: not injected or checked.*/, '')),
    ['warning: [unwatched-namespace] Deployment kube-system/agent', 'warning: [unwatched-namespace] Pod kagenti-system/p', 'warning: [unwatched-namespace] Pod kube-public/bare'],
  );
  assert.equal(
    lines[0],
    "warning: [unwatched-namespace] Deployment kube-system/agent: not injected or checked: the webhook never sees namespace kube-system (its registrations' namespaceSelector leaves out kube-system, kube-public, kube-node-lease and kagenti-system), so its pods get no sidecars and nothing is checked there. Fix: move the agent to a namespace of its own; an object that is not meant to be an agent needs no kagenti.io/type label.",
  );
  // the same agent in a namespace the webhook sees is denied, and a plain pod injected
  const watched = runCli(['inject'], unwatched.replace('namespace: kube-system', 'namespace: team'));
  assert.equal(watched.code, 1);
  assert.match(watched.stderr, /^\[port-conflict\] Deployment team\/agent: /m);
  const injected = runCli(['inject', '-n', 'team'], bare);
  assert.equal(injected.code, 0, injected.stderr);
  assert.notEqual(injected.stdout, bare);
  assert.doesNotMatch(injected.stderr, /unwatched-namespace/);
});

/** A StatefulSet of an agent whose container mounts `mount`, with one claim named `claim`. */
function statefulSet(claim: string, mount: string, podLabels = ''): string {
  return `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: memory-agent, namespace: team-a}
spec:
  serviceName: memory-agent
  selector: {matchLabels: {app: memory-agent}}
  template:
    metadata: {labels: {app: memory-agent, kagenti.io/type: agent${podLabels}}}
    spec:
      serviceAccountName: memory-agent
      containers: [{name: app, image: app:1, volumeMounts: [{name: ${mount}, mountPath: /data}]}]
  volumeClaimTemplates:
  - metadata: {name: ${claim}}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
`;
}

/** lint's findings on a stream, as its JSON report gives them. */
function lintFindings(text: string): { code: number; findings: { rule: string; severity: string; message: string }[] } {
  const r = runCli(['lint', '-o', 'json', '-'], text);
  return { code: r.code, findings: JSON.parse(r.stdout).violations };
}

test('inject denies a StatefulSet whose claim takes an injected volume\'s name, as lint does, naming the claim', () => {
  // The StatefulSet controller adds a volume named after each claim to every pod; /mutate would replace it with
  // the injected emptyDir, so the pod's data would silently live in memory.
  const text = statefulSet('svid-output', 'svid-output');
  const r = runCli(['inject'], text);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stdout, '');
  const lint = lintFindings(text);
  assert.equal(lint.code, 1);
  assert.deepEqual(lint.findings.map((f) => f.rule), ['reserved-name']);
  assert.equal(r.stderr, `${lint.findings[0]!.message}\n`);
  assert.match(
    r.stderr,
    /^\[reserved-name\] StatefulSet team-a\/memory-agent: spec\.volumeClaimTemplates\[0\]\.metadata\.name is svid-output \(the StatefulSet controller adds a volume of that name to each pod\), .* Fix: rename the claim, /,
  );
});

test('inject checks a StatefulSet\'s pods with their claim volumes but writes its template as written', () => {
  // spiffe-helper opted out: the claim provides the svid-output volume the container mounts (without the claim,
  // the mount would point at nothing and be denied)
  const optedOut = statefulSet('svid-output', 'svid-output', ', kagenti.io/spiffe-helper-inject: "false"');
  assert.deepEqual(lintFindings(optedOut), { code: 0, findings: [] });
  const r = runCli(['inject'], optedOut);
  assert.equal(r.code, 0, r.stderr);
  const sts = parseAllDocuments(r.stdout)[0]!.toJS();
  const spec = sts.spec.template.spec;
  assert.deepEqual(spec.containers.map((c: any) => c.name), ['authbridge-proxy', 'app']);
  assert.equal(spec.volumes, undefined, 'no claim volume is written into the template');
  assert.deepEqual(sts.spec.volumeClaimTemplates.map((c: any) => c.metadata.name), ['svid-output']);

  // a claim of another name: injected as before, the template's volumes as written plus the injected ones
  const other = runCli(['inject'], statefulSet('data', 'data'));
  assert.equal(other.code, 0, other.stderr);
  const volumes = parseAllDocuments(other.stdout)[0]!.toJS().spec.template.spec.volumes.map((v: any) => v.name);
  assert.deepEqual(volumes, ['spire-agent-socket', 'svid-output', 'spiffe-helper-config']);
});

const NAMESPACED_AGENT = `apiVersion: apps/v1
kind: Deployment
metadata: {name: weather, namespace: team-a}
spec:
  selector: {matchLabels: {app: weather}}
  template:
    metadata: {labels: {app: weather, kagenti.io/type: agent}}
    spec:
      serviceAccountName: weather
      containers: [{name: app, image: app:1}]
`;

function namespaceDoc(name: string, labels: Record<string, string>): string {
  return `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${name}, labels: ${JSON.stringify(labels)}}\n`;
}

/** What /mutate makes of the Deployment's pod in a namespace with these labels: the pod and the warnings. */
function mutated(deployment: string, labels: Record<string, string>): { pod: KubeObject; warnings: string[] } {
  const d = parseAllDocuments(deployment)[0]!.toJS();
  const pod: KubeObject = { apiVersion: 'v1', kind: 'Pod', metadata: { ...d.spec.template.metadata, generateName: 'weather-', namespace: 'team-a' }, spec: d.spec.template.spec };
  const validation = { namespaceLabels: (ns: string) => (ns === 'team-a' ? labels : undefined), mutateConfigMap: () => null, csiDriverExists: () => undefined };
  const decision = mutate(podCreateRequest(pod, 'team-a') as unknown as AdmissionRequest, { config: defaultConfig(), validation });
  assert.equal(decision.response.allowed, true);
  const out = fastJsonPatch.applyPatch(structuredClone(pod), decodePatch(decision.response) as any).newDocument;
  const warnings = decision.response.warnings ?? [];
  return { pod: out, warnings: warnings.length ? joinWarnings(warnings).split('\n') : [] };
}

test('inject reads the labels of a Namespace earlier in the input, as lint does, and injects as /mutate in that namespace', () => {
  for (const labels of [
    { 'kagenti.io/authbridge-mode': 'waypoint' } as Record<string, string>,
    { 'pod-security.kubernetes.io/enforce': 'restricted' },
    { 'kagenti.io/authbridge-mode': 'envoy-sidecar' },
    { 'kagenti.io/authbridge-mode': 'sidecar' },
  ]) {
    const text = `${namespaceDoc('team-a', labels)}---\n${NAMESPACED_AGENT}`;
    const r = runCli(['inject'], text);
    assert.equal(r.code, 0, r.stderr);
    const [ns, deployment] = parseAllDocuments(r.stdout).map((d) => d.toJS());
    assert.equal(ns.kind, 'Namespace', 'the Namespace is written too');
    const want = mutated(NAMESPACED_AGENT, labels);
    const tpl = deployment.spec.template;
    assert.deepEqual({ annotations: tpl.metadata.annotations, spec: tpl.spec }, { annotations: want.pod.metadata.annotations, spec: want.pod.spec }, JSON.stringify(labels));
    const warnings = r.stderr.split('\n').filter((l) => l.startsWith('warning: ')).map((l) => l.slice('warning: '.length));
    // the same warnings, but for the name: /mutate names the pod, inject the Deployment
    assert.deepEqual(warnings, want.warnings.map((w) => w.replace('Pod team-a/weather-<generated>', 'Deployment team-a/weather').replace('annotate the pod ', 'annotate the pod template (spec.template.metadata.annotations) ')), JSON.stringify(labels));
    // and lint gives the same warnings (but waypoint-mode, which it leaves to admission and inject)
    const lint = lintFindings(text);
    assert.deepEqual(lint.findings.map((f) => f.message), warnings.filter((w) => !w.startsWith('[waypoint-mode]')), JSON.stringify(labels));
  }
  const waypoint = runCli(['inject'], `${namespaceDoc('team-a', { 'kagenti.io/authbridge-mode': 'waypoint' })}---\n${NAMESPACED_AGENT}`);
  const spec = parseAllDocuments(waypoint.stdout)[1]!.toJS().spec.template.spec;
  assert.deepEqual(spec.containers.map((c: any) => c.name), ['spiffe-helper', 'app'], 'no authbridge-proxy in waypoint mode');
  assert.equal(spec.initContainers, undefined, 'no proxy-init in waypoint mode');
  const restricted = runCli(['inject'], `${namespaceDoc('team-a', { 'pod-security.kubernetes.io/enforce': 'restricted' })}---\n${NAMESPACED_AGENT}`);
  assert.match(restricted.stderr, /^warning: \[pod-security\] Deployment team-a\/weather: namespace team-a enforces Pod Security "restricted" \(label pod-security\.kubernetes\.io\/enforce\), .* Fix: /m);
});

test('inject: a Namespace counts for what comes after it, in a List too, and for --namespace; not for another namespace', () => {
  const waypoint = namespaceDoc('team-a', { 'kagenti.io/authbridge-mode': 'waypoint' });
  const proxied = (out: string, i: number) => parseAllDocuments(out)[i]!.toJS().spec.template.spec.initContainers?.[0]?.name === 'proxy-init';
  // after the Deployment: not read (as lint, which reads each document once, in order)
  const after = runCli(['inject'], `${NAMESPACED_AGENT}---\n${waypoint}`);
  assert.equal(after.code, 0, after.stderr);
  assert.ok(proxied(after.stdout, 0));
  // another namespace's labels do not count
  const other = runCli(['inject'], `${namespaceDoc('team-b', { 'kagenti.io/authbridge-mode': 'waypoint' })}---\n${NAMESPACED_AGENT}`);
  assert.ok(proxied(other.stdout, 1));
  // a Namespace in a List, before the workload in it
  const list = { apiVersion: 'v1', kind: 'List', items: [parseAllDocuments(waypoint)[0]!.toJS(), parseAllDocuments(NAMESPACED_AGENT)[0]!.toJS()] };
  const inList = runCli(['inject'], JSON.stringify(list));
  assert.equal(inList.code, 0, inList.stderr);
  assert.deepEqual(JSON.parse(inList.stdout).items[1].spec.template.spec.containers.map((c: any) => c.name), ['spiffe-helper', 'app']);
  // an object without metadata.namespace is in --namespace's
  const unnamespaced = NAMESPACED_AGENT.replace(', namespace: team-a', '');
  const flagged = runCli(['inject', '-n', 'team-a'], `${waypoint}---\n${unnamespaced}`);
  assert.ok(!proxied(flagged.stdout, 1));
  assert.ok(proxied(runCli(['inject'], `${waypoint}---\n${unnamespaced}`).stdout, 1), 'in "default", not team-a');
});

test('inject: unreadable or unparsable input exits 2', () => {
  assert.equal(runCli(['inject', '-f', '/nonexistent.yaml']).code, 2);
  const bad = runCli(['inject'], 'a: [unclosed\n');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /<stdin>:\d+:\d+/);
  assert.equal(runCli(['inject'], 'just a string\n').code, 2);
  assert.equal(runCli(['inject'], '\u0000\u0001binary').code, 2);
});

test('inject reads what lint and kubectl read: UTF-16 with its byte-order mark (PowerShell 5) as UTF-8; other bytes exit 2, never replaced', () => {
  const dir = mkdtempSync(join(tmpdir(), 'inject-enc-'));
  try {
    const pod = readFileSync(join(ROOT, 'examples', 'agent-pod.yaml'), 'utf8');
    const utf8 = runCli(['inject', '-f', join(ROOT, 'examples', 'agent-pod.yaml')]);
    assert.equal(utf8.code, 0, utf8.stderr);
    for (const [name, bytes] of [
      ['le', Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(pod, 'utf16le')])],
      ['be', Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(pod, 'utf16le').swap16()])],
      ['bom8', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(pod)])],
    ] as const) {
      const f = join(dir, `${name}.yaml`);
      writeFileSync(f, bytes);
      const r = runCli(['inject', '-f', f]);
      assert.equal(r.code, 0, `${name}: ${r.stderr}`);
      assert.equal(r.stdout, utf8.stdout, name);
    }
    // a Latin-1 byte in a document inject would leave alone: refused (it was written back as U+FFFD)
    const latin1 = join(dir, 'latin1.yaml');
    writeFileSync(latin1, Buffer.concat([Buffer.from('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: greet}\ndata:\n  msg: "caf'), Buffer.from([0xe9]), Buffer.from(`"\n---\n${pod}`)]));
    const r = runCli(['inject', '-f', latin1]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /latin1\.yaml: not UTF-8 text \(a binary file\?\) near line 5/);
    // UTF-16 cut inside a character (an odd length): the line where it ends, as lint says
    const odd = join(dir, 'odd.yaml');
    const u16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(pod, 'utf16le')]);
    writeFileSync(odd, u16.subarray(0, u16.length - 1));
    const o = runCli(['inject', '-f', odd]);
    assert.equal(o.code, 2);
    assert.match(o.stderr, new RegExp(`odd\\.yaml: not UTF-16 text \\(a binary file\\?\\) near line ${pod.split('\n').length - (pod.endsWith('\n') ? 1 : 0)}`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('inject: the warning about init containers that run before the proxy is on stderr, whole', () => {
  const r = runCli(['inject', '-f', golden('pod-own-volumes-init-securitycontext.yaml')]);
  assert.equal(r.code, 0);
  assert.match(
    r.stderr,
    /^warning: \[init-before-proxy\] Pod research\/research-agent: init container fetch-model runs after proxy-init redirects outbound traffic to the proxy but before the proxy starts \(no native sidecars\)\. .* Fix: annotate the pod kagenti\.io\/native-sidecars: "true" \(Kubernetes 1\.29\+ on the API server and every node's kubelet\) so the proxy starts first, or make that init container need no network\.$/m,
  );
  assert.match(r.stdout, /name: proxy-init/);
});

test('inject: a container running as the proxy\'s uid 1337 is warned about on stderr', () => {
  const pod = 'apiVersion: v1\nkind: Pod\nmetadata: {name: a1, namespace: team-a, labels: {kagenti.io/type: agent}}\nspec:\n  serviceAccountName: a1\n  securityContext: {runAsUser: 1337}\n  containers: [{name: agent, image: x}]\n';
  const r = runCli(['inject'], pod);
  assert.equal(r.code, 0);
  assert.match(r.stderr, /^warning: \[proxy-uid\] Pod team-a\/a1: container agent runs as uid 1337 \(spec\.securityContext\.runAsUser\), .* Fix: run it as another uid\.$/m);
});

test('inject: warnings go to stderr, output still written', () => {
  const r = runCli(['inject', '-f', golden('mode-waypoint.yaml')]);
  assert.equal(r.code, 0);
  assert.match(r.stderr, /^warning: \[waypoint-mode\] Pod [^ ]+: mode waypoint, so no AuthBridge sidecar is injected/m);
  assert.match(r.stdout, /spiffe-helper/);
});

test('every docs/ file the CLI help points to ships in the npm package', () => {
  const help = ['lint', 'inject', 'certs', 'serve'].map((c) => runCli([c, '--help']).stdout).join('\n');
  const pointed = [...new Set(help.match(/docs\/[a-z-]+\.md/g) ?? [])];
  assert.ok(pointed.includes('docs/lint.md'), 'lint --help names docs/lint.md');
  const files: string[] = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).files;
  for (const doc of pointed) assert.ok(files.some((f) => doc.startsWith(f)), `${doc} is in package.json files`);
});

test('inject limits aliases as kubectl (and lint) does: a hundred uses of one anchor pass, an anchor containing itself is refused where it is', () => {
  const many = 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: many}\ndata:\n  base: &v "x"\n' + Array.from({ length: 101 }, (_, i) => `  k${i}: *v\n`).join('');
  const ok = runCli(['inject', '-f', '-'], many);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, `---\n${many}`, 'a document inject does not change is written as it was');
  const self = runCli(['inject', '-f', '-'], 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: &a\n  k: *a\n');
  assert.equal(self.code, 2);
  assert.match(self.stderr, /^kagenti-webhook inject: .*:5:6: not valid for kubectl: anchor 'a' value contains itself/);
});

test('the build revision comes from KAGENTI_WEBHOOK_REVISION when it is a plain label value, else it is unknown', () => {
  const revision = (value: string | undefined) => {
    const env: Record<string, string | undefined> = { ...process.env, KAGENTI_WEBHOOK_REVISION: value };
    if (value === undefined) delete env.KAGENTI_WEBHOOK_REVISION;
    return spawnSync(process.execPath, ['--input-type=module', '-e', "const m = await import('./webhook/version.ts'); process.stdout.write(m.REVISION);"], { cwd: ROOT, env, encoding: 'utf8' }).stdout;
  };
  assert.equal(revision('abc123def456-dirty'), 'abc123def456-dirty');
  assert.equal(revision(undefined), 'unknown');
  assert.equal(revision(''), 'unknown');
  assert.equal(revision('a"b\nc'), 'unknown', 'not a label value: never written into the metric or the log');
  assert.equal(revision('x'.repeat(65)), 'unknown');
});

test('inject: an agent template in a kind inject does not know (a Rollout, another group\'s Deployment) is written as it is, with one unchecked-template warning on stderr; a ReplicationController is injected', () => {
  const rollout = 'apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: weather, namespace: team-a}\nspec:\n  template:\n    metadata:\n      labels: {app: weather, kagenti.io/type: agent}\n    spec:\n      serviceAccountName: weather\n      containers: [{name: agent, image: x:1}]\n';
  const foreign = rollout.replace('argoproj.io/v1alpha1', 'example.com/v1').replace('Rollout', 'Deployment').replace('weather, namespace', 'other, namespace');
  const rc = 'apiVersion: v1\nkind: ReplicationController\nmetadata: {name: rc, namespace: team-a}\nspec:\n  template:\n    metadata:\n      labels: {kagenti.io/type: agent}\n    spec:\n      serviceAccountName: rc\n      containers: [{name: agent, image: x:1}]\n';
  const r = runCli(['inject'], `${rollout}---\n${foreign}---\n${rc}`);
  assert.equal(r.code, 0, r.stderr);
  const warnings = r.stderr.split('\n').filter((l) => l.startsWith('warning: [unchecked-template] '));
  assert.equal(warnings.length, 2, r.stderr);
  assert.match(warnings[0]!, /^warning: \[unchecked-template\] Rollout team-a\/weather: .*argoproj\.io\/v1alpha1 Rollout is not a kind inject knows: this template was not checked or injected offline\. Fix: /);
  assert.match(warnings[1]!, /^warning: \[unchecked-template\] Deployment team-a\/other: .*example\.com\/v1 Deployment is a custom resource of group example\.com, not the apps group's Deployment that inject knows/);
  const docs = r.stdout.split(/^---\n/m).filter((d) => d.trim());
  assert.equal(docs.length, 3);
  assert.equal(docs[0], rollout, 'the Rollout as it was');
  assert.equal(docs[1], foreign, 'the other group\'s Deployment as it was');
  assert.match(docs[2]!, /kind: ReplicationController[\s\S]*name: authbridge-proxy/, 'the ReplicationController injected');
  // a ReplicationController's template that its pods would be denied for: exit 1, as /mutate denies them
  const denied = runCli(['inject'], rc.replace('image: x:1}', 'image: x:1, ports: [{containerPort: 15123}]}'));
  assert.equal(denied.code, 1);
  assert.match(denied.stderr, /^\[port-conflict\] ReplicationController team-a\/rc: /m);
});
