// `kagenti-webhook lint`: exit codes, YAML 1.1 booleans, exact positions on both parse paths, the Helm
// post-renderer round trip, empty input, inputs that are not Kubernetes at all, Lists, JSON, directories,
// and --cluster against an in-test HTTPS server standing in for the API server (no kube-apiserver can be
// installed on the machines these tests run on).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { parse } from 'yaml';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { spawnSync } from 'node:child_process';
import { configFromObject, defaultConfig } from '../webhook/config.ts';
import { Linter } from '../webhook/lint.ts';
import { injectStream } from '../webhook/inject-cli.ts';
import { ROOT, runCli } from './fixtures/lint/cli.ts';

const AGENT = (name: string, sa: string | null, ns = 'agents') => `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ${name}
  namespace: ${ns}
spec:
  template:
    metadata:
      labels:
        kagenti.io/type: agent
    spec:
${sa === null ? '' : `      serviceAccountName: ${sa}\n`}      containers:
        - name: a
          image: x
`;
const CM = (value: string, ns = 'kagent') => `apiVersion: v1
kind: ConfigMap
metadata:
  name: kagent-enterprise-config
  namespace: ${ns}
data:
  OTHER: x
  K8S_TOKEN_REVIEW: ${value}
`;

function lintString(text: string, opts: { issuer?: 'external' | 'internal' | 'unknown'; namespace?: string; policies?: Record<string, string> } = {}): Linter {
  const config = opts.policies ? configFromObject({ policies: opts.policies }) : defaultConfig();
  const l = new Linter({ config, issuer: { classification: opts.issuer ?? 'external' }, namespace: opts.namespace });
  l.lintText('m.yaml', text);
  return l;
}

const tmpDirs: string[] = [];
after(() => {
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

/** A temporary directory, removed after the file's tests. */
function tmp(): string {
  const dir = mkdtempSync(join(tmpdir(), 'kagenti-lint-'));
  tmpDirs.push(dir);
  return dir;
}

test('exit 0 on clean input, 1 on violations, --strict turns warnings into failures', async () => {
  const dir = tmp();
  writeFileSync(join(dir, 'ok.yaml'), `${AGENT('a', 'a')}---\n${CM('"true"')}`);
  writeFileSync(join(dir, 'bad.yaml'), AGENT('a', null));
  writeFileSync(join(dir, 'warn.yaml'), CM('"false"'));
  let r = await runCli([join(dir, 'ok.yaml'), '--external-issuer']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout.toString(), /no problems \(2 documents in 1 file\)/);
  r = await runCli([join(dir, 'bad.yaml')]);
  assert.equal(r.code, 1);
  assert.match(r.stdout.toString(), /bad\.yaml:\d+:\d+: error \[dedicated-service-account\] Deployment agents\/a: /);
  // no issuer flag: token-review-required can only warn, and says which flag to pass
  r = await runCli([join(dir, 'warn.yaml')]);
  assert.equal(r.code, 0);
  assert.match(r.stdout.toString(), /warning \[token-review-required\].*pass --external-issuer, --internal-issuer, --issuer URL or --cluster/);
  // an issuer URL lint cannot place: the hint is not to pass an issuer URL again
  r = await runCli([join(dir, 'warn.yaml'), '--issuer', 'https://oidc.example.com']);
  assert.equal(r.code, 0);
  assert.match(r.stdout.toString(), /whether https:\/\/oidc\.example\.com is external .*: pass --external-issuer or --internal-issuer\./);
  assert.doesNotMatch(r.stdout.toString(), /--issuer URL/);
  r = await runCli([join(dir, 'warn.yaml'), '--strict']);
  assert.equal(r.code, 1);
  r = await runCli([join(dir, 'warn.yaml'), '--internal-issuer']);
  assert.equal(r.code, 0);
  assert.match(r.stdout.toString(), /no problems/);
});

test('-n given twice: the last one counts, as docs/lint.md says (inject refuses it)', async () => {
  const pod = 'apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {kagenti.io/type: agent}}\nspec: {serviceAccountName: default, containers: [{name: m, image: x}]}\n';
  const r = await runCli(['-', '--external-issuer', '-n', 'first', '-n', 'second'], { stdin: pod });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stdout.toString(), /\[dedicated-service-account\] Pod second\/p: /);
  assert.equal(r.stderr.toString(), '');
  const lintMd = readFileSync(join(ROOT, 'docs', 'lint.md'), 'utf8');
  assert.match(lintMd, /Given more than once \(`-n a -n b`\), the last one\s+counts/);
});

test("README's SARIF sentence gives docs/lint.md's rule for artifact URIs: GITHUB_WORKSPACE, then the working directory, then file://", () => {
  const rule = /SARIF artifact URIs are relative to `GITHUB_WORKSPACE` \(the checkout[^)]*\)\s+when it is set and the file is under it,\s+else relative to the working directory when the file is under that, else\s+absolute `file:\/\/` URIs/;
  assert.match(readFileSync(join(ROOT, 'docs', 'lint.md'), 'utf8'), rule);
  assert.match(readFileSync(join(ROOT, 'README.md'), 'utf8'), rule);
});

test('usage errors exit 2 with one clear line', async () => {
  for (const [args, re] of [
    [['--bogus'], /^kagenti-webhook lint: unknown flag --bogus \(see kagenti-webhook lint --help\)\n$/],
    [['--format', 'xml'], /^kagenti-webhook lint: --format must be one of text, json, sarif, junit, got "xml"\n$/],
    [['--issuer'], /^kagenti-webhook lint: flag --issuer needs a value\n$/],
    [['-o'], /^kagenti-webhook lint: flag --format needs a value\n$/],
    [['--strict=yes'], /^kagenti-webhook lint: flag --strict takes no value\n$/],
    [['--external-issuer', '--internal-issuer'], /at most one of/],
    [['--issuer', 'not-a-url'], /--issuer must be the issuer URL/],
    [['--issuer', 'http://kubernetes.default.svc'], /--issuer must be the issuer URL \(https:\/\/\.\.\.\), got "http:\/\/kubernetes\.default\.svc"/],
    [['--post-renderer', 'file.yaml'], /takes no PATH/],
    [['--config', '/nonexistent/config.yaml'], /cannot read config file/],
    [['-n', 'a'.repeat(64)], /^kagenti-webhook lint: --namespace must be a namespace name \(at most 63 lowercase letters, digits and '-'\), got "a{64}"\n$/],
    [['-n', 'Team_A'], /--namespace must be a namespace name/],
  ] as [string[], RegExp][]) {
    const r = await runCli(args, { stdin: '' });
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.doesNotMatch(r.stderr, /at .*\.ts:\d+/); // no stack trace
  }
  const help = await runCli(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout.toString(), /Usage: kagenti-webhook lint/);
  assert.match(help.stdout.toString(), /injection denials \(errors\) and injection\s+warnings \(warnings\)/);
  assert.match(help.stdout.toString(), /docs\/lint\.md/);
  assert.match(help.stdout.toString(), /141 the reader of the output went\s+away/);
});

test('YAML 1.1: unquoted yes, on, y and true are booleans as kubectl reads them; quoted ones are strings', () => {
  for (const v of ['true', 'True', 'yes', 'Yes', 'on', 'ON', 'y']) {
    const l = lintString(CM(v));
    assert.equal(l.findings.length, 1, v);
    assert.equal(l.findings[0].rule, 'token-review-value');
    assert.match(l.findings[0].message, /is the YAML boolean true, not a string.*Fix: quote it: K8S_TOKEN_REVIEW: "true"\./);
  }
  for (const v of ['1', '0x1', '1.0']) assert.match(lintString(CM(v)).findings[0].message, /is the number 1, not a string/, v);
  assert.match(lintString(CM('~')).findings[0].message, /is null, not a string/);
  assert.match(lintString(CM('"yes"')).findings[0].message, /K8S_TOKEN_REVIEW is "yes"/);
  assert.equal(lintString(CM('"true"')).findings.length, 0);
  assert.equal(lintString(CM("'true'")).findings.length, 0);
});

test('line and column are those of the offending key, on the fast path and the full-parse path alike', () => {
  const block = `# a comment\n---\n# Source: chart/templates/cm.yaml\n${CM('true')}`;
  // same document with an anchor and a flow mapping: outside the fast reader's subset
  const fancy = `# a comment\n---\n# Source: chart/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata: &m {name: kagent-enterprise-config, namespace: kagent}\ndata:\n  OTHER: x\n  K8S_TOKEN_REVIEW: true\n`;
  for (const text of [block, fancy]) {
    const l = lintString(text);
    assert.equal(l.findings.length, 1);
    const f = l.findings[0];
    assert.deepEqual([f.line, f.column, f.path, f.source], [11 - (text === fancy ? 2 : 0), 3, 'data.K8S_TOKEN_REVIEW', 'chart/templates/cm.yaml']);
  }
  // a label YAML reads as a boolean: at that label's key (a dotted key), on both parse paths
  const label = `apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  labels:\n    kagenti.io/type: agent\n    kagenti.io/spiffe-helper-inject: no\nspec:\n  serviceAccountName: a\n  containers:\n  - name: app\n    image: x\n`;
  for (const text of [label, label.replace('  name: a\n', '  name: &n a\n')]) {
    const b = lintString(text).findings;
    assert.deepEqual(b.map((f) => [f.rule, f.line, f.column, f.path]), [['malformed-object', 7, 5, 'metadata.labels.kagenti.io/spiffe-helper-inject']]);
  }
  // key missing: the enclosing data:, else kind:
  const missing = lintString(`apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kagent-enterprise-config\ndata:\n  A: b\n`);
  assert.deepEqual([missing.findings[0].line, missing.findings[0].column, missing.findings[0].path], [5, 1, 'data']);
  // an empty data: (null, as a Helm template with no entries renders) is still the place
  const emptyData = lintString(`apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kagent-enterprise-config\ndata:\n`);
  assert.deepEqual([emptyData.findings[0].line, emptyData.findings[0].column, emptyData.findings[0].path], [5, 1, 'data']);
  const noData = lintString(`apiVersion: v1\nmetadata:\n  name: kagent-enterprise-config\nkind: ConfigMap\n`);
  assert.deepEqual([noData.findings[0].line, noData.findings[0].column], [4, 1]);
  // serviceAccountName, and the pod spec: when it is missing
  const agents = lintString(`${AGENT('a', 'default')}---\n${AGENT('b', null)}`);
  assert.deepEqual(
    agents.findings.map((f) => [f.rule, f.line, f.column, f.path]),
    [
      ['dedicated-service-account', 12, 7, 'spec.template.spec.serviceAccountName'],
      ['dedicated-service-account', 27, 5, 'spec.template.spec'],
    ],
  );
  // two agents on `default` are one mistake each (dedicated-service-account, whose fix ends the sharing too), not
  // also unique-service-account; with the dedicated rule at warn, the sharing is the error
  const warnDedicated = lintString(`${AGENT('a', 'default')}---\n${AGENT('b', null)}`, { policies: { 'dedicated-service-account': 'warn' } });
  assert.deepEqual(
    warnDedicated.findings.map((f) => [f.rule, f.severity]),
    [
      ['dedicated-service-account', 'warning'],
      ['dedicated-service-account', 'warning'],
      ['unique-service-account', 'error'],
    ],
  );
});

test('cross-document unique-service-account names both documents; blue/green with kagenti.io/agent may share', () => {
  const l = lintString(`${AGENT('a', 'shared')}---\n${AGENT('b', 'shared')}---\n${AGENT('c', 'shared', 'other-ns')}`);
  assert.equal(l.findings.length, 1);
  const f = l.findings[0];
  assert.equal(f.rule, 'unique-service-account');
  assert.equal(f.name, 'b');
  assert.match(f.message, /agent Deployment\/a defined at m\.yaml:1\./);
  assert.equal(f.line, 28);
  // objects without a namespace take --namespace, else default
  const noNs = `apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  template:\n    metadata:\n      labels:\n        kagenti.io/type: agent\n    spec:\n      serviceAccountName: s\n      containers: [{name: a, image: x}]\n`;
  const twoNs = lintString(`${noNs}---\n${AGENT('y', 's', 'team')}`, { namespace: 'team' });
  assert.equal(twoNs.findings.length, 1);
  assert.equal(twoNs.findings[0].namespace, 'team');
  assert.equal(lintString(`${noNs}---\n${AGENT('y', 's', 'team')}`).findings.length, 0);
});

test('an orphan-looking ReplicaSet or pod in a render is its Deployment or StatefulSet only if that one\'s selector selects it, in either order', () => {
  const doc = (o: Record<string, unknown>) => JSON.stringify(o);
  const tpl = (labels: Record<string, string>, sa: string) => ({ metadata: { labels: { 'kagenti.io/type': 'agent', ...labels } }, spec: { serviceAccountName: sa, containers: [{ name: 'a', image: 'x' }] } });
  const workload = (kind: string, name: string, sa: string, selector: unknown) =>
    doc({ apiVersion: 'apps/v1', kind, metadata: { name, namespace: 'team-a' }, spec: { selector, template: tpl({ app: name }, sa) } });
  const rs = (name: string, labels: Record<string, string>) =>
    doc({ apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name, namespace: 'team-a', labels }, spec: { selector: { matchLabels: labels }, template: tpl(labels, 'weather-sa') } });
  const stsPod = (name: string, labels: Record<string, string>) =>
    doc({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'team-a', labels: { 'kagenti.io/type': 'agent', 'statefulset.kubernetes.io/pod-name': name, ...labels } }, spec: { serviceAccountName: 'db-sa', containers: [{ name: 'a', image: 'x' }] } });
  const weather = workload('Deployment', 'weather', 'weather-sa', { matchLabels: { app: 'weather' } });
  const db = workload('StatefulSet', 'db', 'db-sa', { matchExpressions: [{ key: 'app', operator: 'In', values: ['db'] }] });
  const evilRs = rs('weather-zzz', { 'pod-template-hash': 'zzz', app: 'evil' });
  const evilPod = stsPod('db-5', { app: 'evil' });
  const render = (...docs: string[]) => lintString(docs.join('\n')); // a stream of JSON objects, one a line
  // the workload first: the orphan is reported, naming it
  let l = render(weather, evilRs, db, evilPod);
  assert.deepEqual(l.findings.map((f) => `${f.kind}/${f.name}`), ['ReplicaSet/weather-zzz', 'Pod/db-5']);
  assert.match(l.findings[0].message, /already the identity of agent Deployment\/weather defined at m\.yaml:1\./);
  assert.match(l.findings[1].message, /already the identity of agent StatefulSet\/db defined at m\.yaml:\d+\./);
  // the orphan first (as Helm orders Pods and ReplicaSets before Deployments and StatefulSets): the workload is
  // reported, naming the orphan
  l = render(evilRs, evilPod, weather, db);
  assert.deepEqual(l.findings.map((f) => `${f.kind}/${f.name}`), ['Deployment/weather', 'StatefulSet/db']);
  assert.match(l.findings[0].message, /already the identity of agent ReplicaSet\/weather-zzz defined at m\.yaml:1\./);
  assert.match(l.findings[1].message, /already the identity of agent Pod\/db-5 defined at m\.yaml:\d+\./);
  // orphans the selector selects are the workload, in either order; without the workload in the render they are it too
  const goodRs = rs('weather-abc', { 'pod-template-hash': 'abc', app: 'weather' });
  const goodPod = stsPod('db-0', { app: 'db' });
  assert.deepEqual(render(weather, goodRs, db, goodPod).findings, []);
  assert.deepEqual(render(goodRs, goodPod, weather, db).findings, []);
  assert.deepEqual(render(evilRs, evilPod).findings, []);
});

test('Lists and JSON documents are checked like any other document', () => {
  const list = `apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: kagent-enterprise-config\n  data:\n    K8S_TOKEN_REVIEW: on\n`;
  const l = lintString(list);
  assert.equal(l.findings.length, 1);
  assert.deepEqual([l.findings[0].path, l.findings[0].line, l.findings[0].column], ['items.0.data.K8S_TOKEN_REVIEW', 9, 5]);
  // a finding on an item as a whole (no field path): `items.N`, at the item's kind:, on both parse paths
  const whole = `apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: kagent-enterprise-config, namespace: kagent}\n`;
  for (const text of [whole, whole.replace('kind: List', 'kind: &l List')]) {
    const w = lintString(text);
    assert.deepEqual(w.findings.map((f) => [f.rule, f.path, f.line, f.column]), [['token-review-required', 'items.1', 7, 3]], text);
  }
  const json = JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'kagent-enterprise-config' }, data: { K8S_TOKEN_REVIEW: true } }, null, 2);
  const j = lintString(json);
  assert.equal(j.findings.length, 1);
  assert.deepEqual([j.findings[0].line, j.findings[0].column], [8, 5]);
});

test('merge keys (<<) are read as kubectl applies them: a later merge replaces an earlier key; the finding is at the <<', () => {
  const cm = (data: string) => `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kagent-enterprise-config, namespace: kagent}\ndata:\n${data}`;
  // kubectl applies "yes" here (go-yaml v2 applies a mapping's keys and merges in order)
  let l = lintString(cm('  K8S_TOKEN_REVIEW: "true"\n  <<: {K8S_TOKEN_REVIEW: "yes"}\n'));
  assert.deepEqual(l.findings.map((f) => [f.rule, f.line, f.column, f.path]), [['token-review-value', 6, 3, 'data.K8S_TOKEN_REVIEW']]);
  assert.match(l.findings[0].message, /K8S_TOKEN_REVIEW is "yes"/);
  // the key after the merge wins; of the mappings a `<<` lists, the first
  assert.deepEqual(lintString(cm('  <<: {K8S_TOKEN_REVIEW: "yes"}\n  K8S_TOKEN_REVIEW: "true"\n')).findings, []);
  assert.deepEqual(lintString(cm('  K8S_TOKEN_REVIEW: "no"\n  <<: [{K8S_TOKEN_REVIEW: "true"}, {K8S_TOKEN_REVIEW: "yes"}]\n')).findings, []);
  // a List whose second item takes the first's pod spec through an anchor: kubectl applies agent-a's ServiceAccount
  const list = `apiVersion: v1
kind: List
items:
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: a, namespace: agents}
  spec:
    template:
      metadata: {labels: {kagenti.io/type: agent}}
      spec: &podspec
        serviceAccountName: agent-a
        containers: [{name: a, image: x}]
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: b, namespace: agents}
  spec:
    template:
      metadata: {labels: {kagenti.io/type: agent}}
      spec:
        serviceAccountName: agent-b
        <<: *podspec
`;
  l = lintString(list);
  assert.deepEqual(l.findings.map((f) => [f.rule, f.name, f.line, f.column]), [['unique-service-account', 'b', 21, 9]]);
  assert.match(l.findings[0].message, /ServiceAccount "agent-a"/);
});

test('unique-service-account names the other agent of a List at its item\'s line, not at the List\'s', () => {
  const item = (name: string) => AGENT(name, 'shared').replace(/^(?=.)/gm, '  ').replace(/^  apiVersion/, '- apiVersion');
  const list = `# a dump\napiVersion: v1\nkind: List\nitems:\n${item('a')}${item('b')}`;
  const l = lintString(`${AGENT('first', 'other')}---\n${list}`);
  const lines = `${AGENT('first', 'other')}---\n${list}`.split('\n');
  const kindOfA = lines.findIndex((x, i) => x === '  kind: Deployment' && lines[i + 2] === '    name: a') + 1;
  assert.equal(l.findings.length, 1);
  assert.match(l.findings[0]!.message, new RegExp(`agent Deployment/a defined at m\\.yaml:${kindOfA}\\.`));
  // a JSON List too (read by JSON.parse, positions from the full parser)
  const json = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [parse(AGENT('a', 'shared')), parse(AGENT('b', 'shared'))] }, null, 2);
  const j = lintString(json);
  const kindLine = json.split('\n').findIndex((x) => x.includes('"kind": "Deployment"')) + 1;
  assert.match(j.findings[0]!.message, new RegExp(`agent Deployment/a defined at m\\.yaml:${kindLine}\\.`));
});

test('post-renderer: a passing stream comes out byte for byte; a failing one goes nowhere, exit 1', async () => {
  const passing = Buffer.from(
    `---\r\n# Source: c/templates/a.yaml\r\n${AGENT('a', 'a').replace(/\n/g, '\r\n')}---\n# Source: c/templates/empty.yaml\n---\n# ünïcödé ✓ comment\n${CM('"true"')}# trailing comment without newline`,
    'utf8',
  );
  let r = await runCli(['--post-renderer', '--external-issuer'], { stdin: passing });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdout.equals(passing), 'stdout differs from stdin');
  assert.equal(r.stderr, '');
  // warnings pass through (on stderr) unless --strict
  r = await runCli(['--post-renderer'], { stdin: Buffer.from(CM('"false"')) });
  assert.equal(r.code, 0);
  assert.equal(r.stdout.toString(), CM('"false"'));
  assert.match(r.stderr, /warning \[token-review-required\]/);
  const failing = Buffer.concat([passing, Buffer.from(`\n---\n${CM('true', 'x')}`)]);
  r = await runCli(['--post-renderer', '--external-issuer'], { stdin: failing });
  assert.equal(r.code, 1);
  assert.equal(r.stdout.length, 0);
  assert.match(r.stderr, /^<stdin>:\d+:3: error \[token-review-value\] ConfigMap x\/kagent-enterprise-config/m);
});

test('the Helm 4 post-renderer plugin (helm-plugin/) runs lint as a post-renderer', () => {
  const manifest = parse(readFileSync(join(ROOT, 'helm-plugin', 'plugin.yaml'), 'utf8'));
  assert.equal(manifest.apiVersion, 'v1');
  assert.equal(manifest.type, 'postrenderer/v1');
  assert.equal(manifest.runtime, 'subprocess');
  const command: string = manifest.runtimeConfig.platformCommand[0].command;
  assert.equal(command, '${HELM_PLUGIN_DIR}/kagenti-lint.sh');
  const script = join(ROOT, 'helm-plugin', 'kagenti-lint.sh');
  assert.ok(statSync(script).mode & 0o111, 'the script is executable');
  // kagenti-webhook on PATH, as the plugin expects it
  const bin = tmp();
  writeFileSync(join(bin, 'kagenti-webhook'), `#!/bin/sh\nexec "${process.execPath}" "${join(ROOT, 'bin', 'kagenti-webhook.js')}" "$@"\n`, { mode: 0o755 });
  const run = (input: string, args: string[] = [], env: Record<string, string> = {}) =>
    spawnSync(script, args, { input, encoding: 'utf8', env: { ...process.env, ...env, PATH: `${bin}:${process.env.PATH}`, NO_COLOR: '1' } });
  const passing = `${AGENT('a', 'a')}---\n${CM('"true"')}`;
  let r = run(passing);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, passing);
  r = run(CM('"false"'));
  assert.equal(r.status, 1, 'default flags: --external-issuer');
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /error \[token-review-required\]/);
  assert.equal(run(CM('"false"'), ['--internal-issuer']).status, 0, 'arguments replace the default flags');
  assert.equal(run(CM('"false"'), [], { KAGENTI_LINT_FLAGS: '--internal-issuer --strict' }).status, 0, 'KAGENTI_LINT_FLAGS replaces them too');
  // Helm sets HELM_NAMESPACE (the release's namespace) for plugins: objects without a namespace are linted there
  const unnamespaced = AGENT('b', 'shared').replace('  namespace: agents\n', '');
  const twoAgents = `${AGENT('a', 'shared', 'team')}---\n${unnamespaced}`;
  r = run(twoAgents, [], { HELM_NAMESPACE: 'team' });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /error \[unique-service-account\] Deployment team\/b: /);
  assert.equal(run(twoAgents, [], { HELM_NAMESPACE: '' }).status, 0);
  assert.equal(run(twoAgents, ['--external-issuer', '-n', 'other'], { HELM_NAMESPACE: 'team' }).status, 0, 'a -n among the flags wins');
});

test('--post-renderer: objects without a namespace are in the release\'s namespace, HELM_NAMESPACE, unless --namespace says otherwise', async () => {
  const unnamespaced = AGENT('b', 'shared').replace('  namespace: agents\n', '');
  const stream = `${AGENT('a', 'shared', 'team')}---\n${unnamespaced}`;
  let r = await runCli(['--post-renderer', '--external-issuer'], { stdin: stream, env: { HELM_NAMESPACE: 'team' } });
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stdout.length, 0);
  assert.match(r.stderr, /error \[unique-service-account\] Deployment team\/b: ServiceAccount "shared"/);
  // without it, `default` (no conflict); --namespace wins over it; outside --post-renderer it is not read
  r = await runCli(['--post-renderer', '--external-issuer'], { stdin: stream, env: { HELM_NAMESPACE: '' } });
  assert.equal(r.code, 0, r.stderr);
  r = await runCli(['--post-renderer', '--external-issuer', '-n', 'other'], { stdin: stream, env: { HELM_NAMESPACE: 'team' } });
  assert.equal(r.code, 0, r.stderr);
  r = await runCli(['-', '--external-issuer'], { stdin: stream, env: { HELM_NAMESPACE: 'team' } });
  assert.equal(r.code, 0, r.stderr);
  r = await runCli(['--post-renderer', '--external-issuer'], { stdin: stream, env: { HELM_NAMESPACE: 'Not_A_Namespace' } });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^kagenti-webhook lint: HELM_NAMESPACE must be a namespace name/);
});

test('a stream of JSON objects (jq -c, or one after another) is linted object by object, as kubectl reads it', async () => {
  const cm = (ns: string, value: unknown) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'kagent-enterprise-config', namespace: ns }, data: { K8S_TOKEN_REVIEW: value, brace: '}{"' } });
  const lines = `${JSON.stringify(cm('a', true))}\n${JSON.stringify(cm('b', 'yes'))}\n`;
  let r = await runCli(['-'], { stdin: lines });
  assert.equal(r.code, 1, r.stderr);
  const out = r.stdout.toString();
  assert.match(out, /^<stdin>:1:\d+: error \[token-review-value\] ConfigMap a\/kagent-enterprise-config/m);
  assert.match(out, /^<stdin>:2:\d+: error \[token-review-value\] ConfigMap b\/kagent-enterprise-config/m);
  assert.match(out, /\(2 documents in 1 file\)/);
  // indented objects one after another: positions are those of the keys
  const pretty = `${JSON.stringify(cm('a', true), null, 2)}\n${JSON.stringify(cm('b', 'yes'), null, 2)}\n`;
  r = await runCli(['-'], { stdin: pretty });
  const at = pretty.split('\n').flatMap((l, i) => (l.includes('K8S_TOKEN_REVIEW') ? [`<stdin>:${i + 1}:5:`] : []));
  assert.equal(at.length, 2);
  for (const a of at) assert.ok(r.stdout.toString().includes(a), `${a}\n${r.stdout}`);
  // Anything but objects after the first `{`, or an object that does not end: exit 2 with the position.
  r = await runCli(['-'], { stdin: `${JSON.stringify(cm('a', 'true'))}\n[1]\n` });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^<stdin>:2:1: error: not valid JSON: a stream that starts with \{ holds JSON objects only/m);
  r = await runCli(['-'], { stdin: '{"apiVersion": "v1", "kind": "ConfigMap"' });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^<stdin>:1:1: error: not valid JSON: the object starting at line 1 does not end/m);
  // kubectl itself reads such a stream as two objects
  const dir = tmp();
  writeFileSync(join(dir, 'two.json'), lines);
  const k = spawnSync('kubectl', ['patch', '--local', '-f', join(dir, 'two.json'), '--type', 'json', '-p', '[]', '-o', 'name'], { encoding: 'utf8' });
  assert.deepEqual(k.stdout.trim().split('\n'), ['configmap/kagent-enterprise-config', 'configmap/kagent-enterprise-config'], k.stderr);
});

test('a JSON document with a duplicate key is read as kubectl reads it (the last wins), and the rest of the file is linted', async () => {
  const cm = (ns: string, values: string[]) =>
    `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"kagent-enterprise-config","namespace":"${ns}"},"data":{${values.map((v) => `"K8S_TOKEN_REVIEW":${v}`).join(',')}}}`;
  const stream = `${cm('a', ['"true"', '"yes"'])}\n${cm('b', ['"yes"', '"true"'])}\n${cm('c', ['true'])}\n`;
  const r = await runCli(['-', '--external-issuer'], { stdin: stream });
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stderr, '');
  const out = r.stdout.toString();
  // a: "yes" is what kubectl applies, reported at the second key; b: "true" passes; c is still linted
  const second = stream.split('\n')[0]!.lastIndexOf('"K8S_TOKEN_REVIEW"') + 1;
  assert.match(out, new RegExp(`^<stdin>:1:${second}: error \\[token-review-value\\] ConfigMap a/kagent-enterprise-config: data.K8S_TOKEN_REVIEW is "yes"`, 'm'));
  assert.doesNotMatch(out, /ConfigMap b\//);
  assert.match(out, /^<stdin>:3:\d+: error \[token-review-value\] ConfigMap c\//m);
  assert.match(out, /2 errors, 0 warnings \(3 documents in 1 file\)/);
  const dir = tmp();
  writeFileSync(join(dir, 'dup.json'), stream);
  const k = spawnSync('kubectl', ['patch', '--local', '-f', join(dir, 'dup.json'), '--type', 'json', '-p', '[]', '-o', 'jsonpath={.data.K8S_TOKEN_REVIEW} '], { encoding: 'utf8' });
  assert.equal(k.stdout.trim(), 'yes true true', k.stderr);
});

test('a document the full parser rejects only when positions are needed is an input error of that document; the file goes on', () => {
  // JSON.parse reads any depth, kubectl's JSON decoder 10,000 levels (deeper is refused as the file is read, see
  // kubectl-refusals.test.ts); the yaml package fewer
  const deep = `${'{"a":'.repeat(5_000)}1${'}'.repeat(5_000)}`;
  const cm = (ns: string, extra = '') =>
    `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"kagent-enterprise-config","namespace":"${ns}"},"data":{"K8S_TOKEN_REVIEW":true}${extra}}`;
  const l = lintString(`${cm('a', `,"x":${deep}`)}\n${cm('b')}\n`);
  assert.equal(l.problems.length, 1);
  assert.equal(l.problems[0]!.line, 1);
  // not "not valid YAML": kubectl reads it; the message says it is this reader's depth
  assert.match(l.problems[0]!.message, /^nested too deeply for kagenti-webhook's YAML reader, which runs out of stack about 1,000 levels deep \(kubectl reads up to 10000\), .* Fix: nest it less deeply/);
  assert.deepEqual(l.findings.map((f) => [f.namespace, f.line]), [['b', 2]]);
  assert.equal(l.documents, 1);
});

test('empty files and empty documents pass; stdin is read with - or with no path', async () => {
  const dir = tmp();
  writeFileSync(join(dir, 'empty.yaml'), '');
  writeFileSync(join(dir, 'comments.yaml'), '---\n# Source: c/templates/x.yaml\n---\n\n---\n# only a comment\n');
  let r = await runCli([join(dir, 'empty.yaml'), join(dir, 'comments.yaml')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout.toString(), /no problems \(0 documents in 2 files\)/);
  r = await runCli(['-'], { stdin: AGENT('a', null) });
  assert.equal(r.code, 1);
  assert.match(r.stdout.toString(), /^<stdin>:11:5: error \[dedicated-service-account\]/);
  r = await runCli([], { stdin: '' });
  assert.equal(r.code, 0);
});

test('directories are searched recursively for *.yaml, *.yml and *.json, in sorted order', async () => {
  const dir = tmp();
  mkdirSync(join(dir, 'b', 'deep'), { recursive: true });
  writeFileSync(join(dir, 'b', 'deep', 'x.yml'), AGENT('x', null));
  writeFileSync(join(dir, 'a.json'), JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'kagent-enterprise-config' }, data: { K8S_TOKEN_REVIEW: 'yes' } }));
  writeFileSync(join(dir, 'README.md'), 'not yaml: [');
  const r = await runCli([dir, '--format', 'json']);
  assert.equal(r.code, 1, r.stderr);
  const out = JSON.parse(r.stdout.toString());
  assert.deepEqual(
    out.violations.map((v: { file: string; rule: string }) => [v.file.slice(dir.length + 1), v.rule]),
    [
      ['a.json', 'token-review-value'],
      [join('b', 'deep', 'x.yml'), 'dedicated-service-account'],
    ],
  );
  assert.deepEqual(out.summary, { errors: 2, warnings: 0, documents: 2, files: 2 });
});

test('directories: names starting with . are not entered, --exclude leaves out paths and names, an empty one is an input error', async () => {
  const dir = tmp();
  mkdirSync(join(dir, '.github', 'workflows'), { recursive: true });
  mkdirSync(join(dir, 'charts', 'c', 'templates'), { recursive: true });
  mkdirSync(join(dir, 'apps'));
  writeFileSync(join(dir, '.github', 'workflows', 'ci.yml'), 'on: push\njobs: {}\n');
  writeFileSync(join(dir, 'charts', 'c', 'Chart.yaml'), 'apiVersion: v2\nname: c\n');
  writeFileSync(join(dir, 'charts', 'c', 'templates', 'd.yaml'), AGENT('t', null));
  writeFileSync(join(dir, 'apps', 'values.yaml'), 'replicas: 1\n');
  writeFileSync(join(dir, 'apps', 'a.yaml'), AGENT('a', 'a-sa'));
  // .github is not searched; Chart.yaml and values.yaml are not Kubernetes objects: exit 2, as documented
  let r = await runCli([dir, '-o', 'json']);
  assert.equal(r.code, 2);
  assert.deepEqual(r.stderr.trim().split('\n').map((l) => l.slice(dir.length + 1).split(':')[0]).sort(), [join('apps', 'values.yaml'), join('charts', 'c', 'Chart.yaml')]);
  // a directory by its path relative to the argument, a file by its name
  r = await runCli([dir, '-o', 'json', '--exclude', 'charts', '--exclude', 'values.yaml']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(String(r.stdout)).summary.files, 1);
  r = await runCli([dir, '-o', 'json', '--exclude', 'charts/*/Chart.yaml', '--exclude', '**/values.y?ml']);
  assert.equal(r.code, 1, r.stderr);
  assert.deepEqual(JSON.parse(String(r.stdout)).violations.map((v: { name: string }) => v.name), ['t']);
  // the path is relative to the argument it was found under, not to the working directory
  r = await runCli([join(dir, 'charts'), '-o', 'json', '--exclude', 'c/templates']);
  assert.equal(r.code, 2);
  assert.deepEqual(JSON.parse(String(r.stdout)).violations, []);
  // a file or directory named on the command line is always read
  r = await runCli([join(dir, '.github'), join(dir, 'apps', 'a.yaml'), '--exclude', 'a.yaml']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /ci\.yml:1:1: error: document 1 is not a Kubernetes object/);
  assert.match(String(r.stdout), /\(1 document in 2 files\)/);
  // nothing to read under a directory: exit 2, never a pass
  mkdirSync(join(dir, 'none'));
  r = await runCli([join(dir, 'none')]);
  assert.equal(r.code, 2);
  assert.equal(r.stderr, `${join(dir, 'none')}: error: no YAML or JSON files under ${join(dir, 'none')} (*.yaml, *.yml, *.json; directories starting with "." and node_modules are not searched)\n`);
  r = await runCli([join(dir, 'apps'), '--exclude', '*.yaml']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /no YAML or JSON files under .*, nor what --exclude matches\)/);
  r = await runCli([dir, '--exclude', '[a']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--exclude: unclosed \[ in "\[a"/);
  r = await runCli([dir, '--exclude', '[z-a]']);
  assert.equal(r.code, 2);
  assert.equal(r.stderr, 'kagenti-webhook lint: --exclude: the range z-a in "[z-a]" is out of order (write it a-z)\n');
  // a trailing /: directories of that path or name (charts/ leaves out the directory, values.yaml/ no file)
  r = await runCli([dir, '-o', 'json', '--exclude', 'charts/', '--exclude', 'apps/values.yaml']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  r = await runCli([dir, '-o', 'json', '--exclude', 'charts/', '--exclude', 'values.yaml/']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /apps\/values\.yaml:1:1: error: document 1 is not a Kubernetes object/);
  // a glob that left nothing out: one note on stderr, the exit code unchanged
  assert.match(r.stderr, /^kagenti-webhook lint: note: --exclude "values\.yaml\/" matched no file or directory under the directory arguments/);
  r = await runCli([dir, '-o', 'json', '--exclude', 'charts', '--exclude', 'values.yaml', '--exclude', 'nope', '--exclude', '*.md']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr.split('\n').filter(Boolean).length, 1, r.stderr);
  assert.match(r.stderr, /^kagenti-webhook lint: note: --exclude "nope", "\*\.md" matched no file or directory/);
  // no directory argument: nothing was walked, so there is nothing to note (files named are always read)
  r = await runCli([join(dir, 'apps', 'a.yaml'), '--exclude', 'a.yaml']);
  assert.doesNotMatch(r.stderr, /note: --exclude/);
});

test('YAML kubectl refuses is an input error: a mapping or null key, content after ---; no warning from Node', () => {
  const dir = tmp();
  const cases: [string, string, RegExp][] = [
    ['mapkey.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  labels:\n    ? {a: b}\n    : c\n', /mapkey\.yaml:6:7: error: not valid for kubectl: a mapping as a key, /],
    ['nullkey.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {~: a}\n', /nullkey\.yaml:4:8: error: not valid for kubectl: the null key ~, /],
    ['flowsep.yaml', '--- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n', /flowsep\.yaml:1:5: error: kubectl refuses the file: "invalid Yaml document separator: \{apiVersion/],
    ['firsthash.yaml', '---#x\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n', /firsthash\.yaml:1:1: error: kubectl refuses the file: it reads "---#x" as content, not as a separator/],
  ];
  for (const [name, text, re] of cases) {
    writeFileSync(join(dir, name), text);
    const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'kagenti-webhook.js'), 'lint', join(dir, name)], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
    assert.equal(r.status, 2, r.stdout);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr); // no "Keys with collection values will be stringified"
  }
  // a comment after --- is fine
  writeFileSync(join(dir, 'ok.yaml'), '--- # Source: c/templates/x.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n');
  assert.equal(spawnSync(process.execPath, [join(ROOT, 'bin', 'kagenti-webhook.js'), 'lint', join(dir, 'ok.yaml')]).status, 0);
});

test('SARIF artifact URIs: relative to GITHUB_WORKSPACE, else to the working directory, else file://; stdin\'s the # Source: template, else <stdin>', async () => {
  const { artifactUri } = await import('../webhook/lint-format.ts');
  const cwd = join(tmpdir(), 'ws', 'sub');
  assert.equal(artifactUri(join(cwd, 'a b.yaml'), { cwd }), 'a%20b.yaml');
  assert.equal(artifactUri('x/y.yaml', { cwd }), 'x/y.yaml');
  assert.equal(artifactUri('./y.yaml', { cwd }), 'y.yaml');
  assert.equal(artifactUri('../y.yaml', { cwd }), `file://${join(tmpdir(), 'ws', 'y.yaml')}`);
  assert.equal(artifactUri('../y.yaml', { cwd, workspace: join(tmpdir(), 'ws') }), 'y.yaml');
  assert.equal(artifactUri('z.yaml', { cwd, workspace: join(tmpdir(), 'ws') }), 'sub/z.yaml');
  // a workspace the file is not under: the working directory
  assert.equal(artifactUri('z.yaml', { cwd, workspace: join(tmpdir(), 'other') }), 'z.yaml');
  assert.equal(artifactUri('/etc/k.yaml', { cwd }), 'file:///etc/k.yaml');
  assert.equal(artifactUri('<stdin>', { cwd }), undefined);
  // through the CLI: an absolute path in the workspace, and stdin: every result has an artifact location (code
  // scanning rejects the whole file otherwise), the chart template of Helm's # Source:, else <stdin>
  const dir = tmp();
  mkdirSync(join(dir, 'm'));
  writeFileSync(join(dir, 'm', 'a.yaml'), AGENT('a', null));
  let r = await runCli([join(dir, 'm', 'a.yaml'), '-o', 'sarif'], { env: { GITHUB_WORKSPACE: dir } });
  let loc = JSON.parse(String(r.stdout)).runs[0].results[0].locations[0];
  assert.deepEqual(loc.physicalLocation, { artifactLocation: { uri: 'm/a.yaml' }, region: { startLine: 11, startColumn: 5 } });
  r = await runCli(['-', '-o', 'sarif'], { stdin: AGENT('a', null), env: { GITHUB_WORKSPACE: dir } });
  loc = JSON.parse(String(r.stdout)).runs[0].results[0].locations[0];
  assert.deepEqual(loc.physicalLocation, { artifactLocation: { uri: '%3Cstdin%3E' }, region: { startLine: 11, startColumn: 5 } });
  assert.equal(loc.logicalLocations[0].name, 'Deployment/agents/a');
  const helm = `---\n# Source: my chart/templates/a.yaml\n${AGENT('a', null)}---\n# Source: my chart/templates/b.yaml\n${AGENT('b', null)}`;
  for (const args of [['-', '-o', 'sarif'], ['--post-renderer', '-o', 'sarif']]) {
    r = await runCli(args, { stdin: helm, env: { GITHUB_WORKSPACE: dir } });
    const sarif = JSON.parse(String(args[0] === '-' ? r.stdout : r.stderr));
    assert.deepEqual(
      sarif.runs[0].results.map((x: any) => x.locations[0].physicalLocation),
      [
        { artifactLocation: { uri: 'my%20chart/templates/a.yaml' }, region: { startLine: 13, startColumn: 5 } },
        { artifactLocation: { uri: 'my%20chart/templates/b.yaml' }, region: { startLine: 29, startColumn: 5 } },
      ],
      args.join(' '),
    );
  }
  // a # Source: that is absolute or climbs out with .. names no file of the checkout: <stdin>
  for (const source of ['../../etc/passwd', '/abs/path/x.yaml', 'c/../../x.yaml']) {
    r = await runCli(['-', '-o', 'sarif'], { stdin: `---\n# Source: ${source}\n${AGENT('a', null)}`, env: { GITHUB_WORKSPACE: dir } });
    assert.equal(JSON.parse(String(r.stdout)).runs[0].results[0].locations[0].physicalLocation.artifactLocation.uri, '%3Cstdin%3E', source);
  }
  // files and stdin in one run: every result located
  r = await runCli([join(dir, 'm', 'a.yaml'), '-', '-o', 'sarif'], { stdin: AGENT('b', null), env: { GITHUB_WORKSPACE: dir } });
  assert.deepEqual(
    JSON.parse(String(r.stdout)).runs[0].results.map((x: any) => x.locations[0].physicalLocation.artifactLocation.uri),
    ['m/a.yaml', '%3Cstdin%3E'],
  );
});

test('--exclude globs: * and ? within a name, ** across directories, [] sets', async () => {
  const { compileExclude, globToRegExp, excluded } = await import('../webhook/glob.ts');
  type G = Exclude<ReturnType<typeof compileExclude>, string>;
  const m = (glob: string, path: string, dir = false) => excluded(path, [compileExclude(glob) as G], dir);
  assert.equal(m('*.json', 'a/b/package.json'), true); // by name
  assert.equal(m('a/*.json', 'a/b/package.json'), false);
  assert.equal(m('a/*/package.json', 'a/b/package.json'), true);
  assert.equal(m('a/**', 'a/b/c.yaml'), true);
  assert.equal(m('**/c.yaml', 'c.yaml'), true);
  assert.equal(m('a/**/c.yaml', 'a/c.yaml'), true);
  assert.equal(m('v?lues.yaml', 'values.yaml'), true);
  assert.equal(m('[!v]alues.yaml', 'values.yaml'), false);
  assert.equal(m('[tv]alues.yaml', 'talues.yaml'), true);
  assert.equal(m('a.b', 'axb'), false);
  assert.equal(m('\\*', '*'), true);
  assert.equal(typeof globToRegExp('[x'), 'string');
  // a trailing / matches directories only, by path or name
  assert.equal(m('charts/', 'charts', true), true);
  assert.equal(m('charts/', 'a/charts', true), true);
  assert.equal(m('charts/', 'charts'), false);
  assert.equal(m('a/charts/', 'a/charts', true), true);
  assert.equal(m('charts', 'charts'), true);
  assert.equal(typeof compileExclude('/'), 'string');
  // a range out of order is the glob's error, not the RegExp's
  assert.equal(compileExclude('[z-a]'), 'the range z-a in "[z-a]" is out of order (write it a-z)');
  assert.equal(m('[a-c]', 'b'), true);
  assert.equal(m('[-a]', '-'), true);
  assert.equal(m('[a-]', '-'), true);
  // a ] first in a set is one of its members, as in the shell
  assert.equal(m('[]a]', ']'), true);
  assert.equal(m('[]a]', 'a'), true);
  assert.equal(m('[!]a]', ']'), false);
  assert.equal(m('[!]a]', 'a'), false);
  assert.equal(m('[!]a]', 'b'), true);
  assert.equal(m('x[!a]y', 'x/y'), false);
  assert.equal(typeof compileExclude('[]'), 'string');
  assert.equal(typeof compileExclude('[!]'), 'string');
  // the globs that matched are noted
  const a = compileExclude('*.json') as G;
  const b = compileExclude('nothing') as G;
  const seen = new Set<G>();
  assert.equal(excluded('x/p.json', [a, b], false, seen), true);
  assert.deepEqual([...seen], [a]);
});

test('a directory\'s linked files are linted, as kubectl apply -f reads them', async () => {
  const dir = tmp();
  mkdirSync(join(dir, 'real'));
  mkdirSync(join(dir, 'linked'));
  writeFileSync(join(dir, 'real', 'cm.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kagent-enterprise-config\n  namespace: kagent\ndata:\n  K8S_TOKEN_REVIEW: true\n');
  symlinkSync(join('..', 'real', 'cm.yaml'), join(dir, 'linked', 'cm.yaml'));
  symlinkSync(join('..', 'real'), join(dir, 'linked', 'dir.yaml'));
  symlinkSync(join('..', 'real', 'gone.yaml'), join(dir, 'linked', 'dangling.yaml'));
  const r = await runCli(['-o', 'json', join(dir, 'linked')]);
  assert.equal(r.code, 2, r.stderr);
  const out = JSON.parse(r.stdout.toString());
  assert.equal(out.violations.length, 1, r.stdout.toString());
  assert.equal(out.violations[0].rule, 'token-review-value');
  assert.match(r.stderr, /dir\.yaml: error: is a symbolic link to something that is not a file/);
  assert.match(r.stderr, /dangling\.yaml: error: cannot read: ENOENT/);
});

test('parse errors and unreadable files exit 2 with file, line and column on stderr', async () => {
  const dir = tmp();
  writeFileSync(join(dir, 'broken.yaml'), `${AGENT('a', 'a')}---\napiVersion: v1\nkind: ConfigMap\ndata:\n  a: [unclosed\n  b: 1\n`);
  let r = await runCli([join(dir, 'broken.yaml')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, new RegExp(`^${join(dir, 'broken.yaml').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:(20|21):\\d+: error: not valid YAML: `));
  r = await runCli([join(dir, 'nope.yaml')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /nope\.yaml: error: no such file or directory/);
  // duplicate keys are an error, as for kubectl's strict decoding
  r = await runCli(['-'], { stdin: 'apiVersion: v1\nkind: ConfigMap\nkind: Secret\n' });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^<stdin>:3:1: error: not valid YAML: Map keys must be unique/);
});

test('when an input cannot be read, the report on stdout says so in every format and never reads as a pass', async () => {
  const dir = tmp();
  const broken = join(dir, 'broken.yaml');
  writeFileSync(broken, 'apiVersion: v1\nkind: ConfigMap\ndata:\n  a: [unclosed\n  b: 1\n');
  writeFileSync(join(dir, 'ok.yaml'), AGENT('a', 'a'));
  const args = [broken, join(dir, 'ok.yaml'), join(dir, 'nope.yaml'), '--external-issuer'];
  let r = await runCli(args);
  assert.equal(r.code, 2);
  const text = r.stdout.toString();
  assert.doesNotMatch(text, /no problems/);
  assert.match(text, /^2 input errors \(on stderr: what they name was not checked\), 0 errors, 0 warnings \(1 document in 2 files\)$/m);

  r = await runCli([...args, '-o', 'json']);
  assert.equal(r.code, 2);
  const json = JSON.parse(r.stdout.toString());
  assert.deepEqual(json.summary, { errors: 0, warnings: 0, documents: 1, files: 2 });
  // the parse error has the position stderr gives; the missing file has none
  const errs = new Map(json.inputErrors.map((e: { file: string; line: number | null }) => [e.file, e.line]));
  assert.equal(errs.size, 2);
  assert.equal(errs.get(join(dir, 'nope.yaml')), null);
  const line = errs.get(broken) as number;
  assert.ok(line >= 4 && line <= 5, String(line));
  assert.match(r.stderr, new RegExp(`broken\\.yaml:${line}:`));
  // a run that read everything keeps the documented shape
  r = await runCli([join(dir, 'ok.yaml'), '--external-issuer', '-o', 'json']);
  assert.equal(r.code, 0);
  assert.deepEqual(Object.keys(JSON.parse(r.stdout.toString())), ['violations', 'summary']);

  r = await runCli([...args, '-o', 'sarif']);
  assert.equal(r.code, 2);
  const run = JSON.parse(r.stdout.toString()).runs[0];
  assert.equal(run.invocations[0].executionSuccessful, false);
  assert.equal(run.invocations[0].toolExecutionNotifications.length, 2);
  const located = run.invocations[0].toolExecutionNotifications.find((n: any) => n.locations[0].physicalLocation.region);
  assert.equal(located.locations[0].physicalLocation.region.startLine, line);
  assert.match(located.message.text, /not valid YAML/);

  r = await runCli([...args, '-o', 'junit']);
  assert.equal(r.code, 2);
  const xml = r.stdout.toString();
  assert.match(xml, /<testsuites name="kagenti-webhook lint" tests="3" failures="0" errors="2">/);
  assert.match(xml, /<testsuite name="[^"]*broken\.yaml" tests="1" failures="0" errors="1" skipped="0">/);
  assert.match(xml, new RegExp(`<error type="input" message="not valid YAML: [^"]*">[^<]*broken\\.yaml:${line}:\\d+: error: not valid YAML`));
  assert.match(xml, /<testsuite name="[^"]*nope\.yaml" tests="1" failures="0" errors="1"/);
  assert.match(xml, /name="1 other document passes every rule"/);
});

test('input that is not Kubernetes at all fails cleanly with exit 2: binary, a bare string, a list, a 100 MB line', async () => {
  const binary = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0xff, 0xfe, 0x01, 0x80, 0x81]);
  let r = await runCli(['-'], { stdin: binary });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^<stdin>:1:1: error: not UTF-8 text/);
  r = await runCli(['-'], { stdin: Buffer.from('\x00\x01\x02 junk\x03\n') });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^<stdin>:1:1: error: not valid for kubectl: a raw U\+0000 \(NUL\), which kubectl refuses anywhere in a YAML file/);
  r = await runCli(['-'], { stdin: 'just a sentence, not a manifest\n' });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^<stdin>:1:1: error: document 1 is not a Kubernetes object: expected a mapping with apiVersion and kind, got the string "just a sentence, not a manifest"\n$/);
  r = await runCli(['-'], { stdin: '- a\n- b\n' });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /got a list/);
  r = await runCli(['-'], { stdin: 'name: x\nvalue: 1\n' });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /got a mapping without apiVersion and kind/);
  // 100 MB without a newline, streamed: rejected once the line passes the limit, without reading it all
  const MB = 1024 * 1024;
  let sent = 0;
  const line = Readable.from(
    (function* () {
      const chunk = Buffer.alloc(MB, 'a');
      while (sent < 100 * MB) {
        sent += MB;
        yield chunk;
      }
    })(),
  );
  r = await runCli(['-'], { stdin: line });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^<stdin>:1:1: error: line 1 is longer than 16 MiB: not a Kubernetes manifest\n$/);
});

test('UTF-16 with its byte-order mark (PowerShell 5\'s >) is read as kubectl reads it, with the same lines; without it, not', async () => {
  const text = `# written by PowerShell\r\n${AGENT('a', 'a').replace(/\n/g, '\r\n')}---\r\n${CM('true').replace(/\n/g, '\r\n')}`;
  const le = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]);
  const be = Buffer.from(le).swap16(); // FE FF and big-endian units
  const dir = tmp();
  const want = (await runCli(['-', '--external-issuer'], { stdin: text })).stdout.toString();
  assert.match(want, /^<stdin>:\d+:3: error \[token-review-value\]/m);
  for (const [name, bytes] of [['le', le], ['be', be]] as const) {
    let r = await runCli(['-', '--external-issuer'], { stdin: bytes });
    assert.equal(r.stdout.toString(), want, name);
    assert.equal(r.code, 1, r.stderr);
    writeFileSync(join(dir, `${name}.yaml`), bytes);
    const k = spawnSync('kubectl', ['patch', '--local', '-f', join(dir, `${name}.yaml`), '--type', 'json', '-p', '[]', '-o', 'name'], { encoding: 'utf8' });
    assert.deepEqual(k.stdout.trim().split('\n'), ['deployment.apps/a', 'configmap/kagent-enterprise-config'], k.stderr);
  }
  // the post-renderer passes the bytes on as they came
  const passing = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(AGENT('a', 'a').replace(/\n/g, '\r\n'), 'utf16le')]);
  for (const bytes of [passing, Buffer.from(passing).swap16()]) {
    const r = await runCli(['--post-renderer', '--external-issuer'], { stdin: bytes });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.equals(bytes));
  }
  // without a BOM UTF-16 is not text kubectl reads (NUL bytes everywhere); an odd byte count is cut inside a character
  let r = await runCli(['-'], { stdin: Buffer.from(text, 'utf16le') });
  assert.equal(r.code, 2);
  r = await runCli(['-'], { stdin: le.subarray(0, le.length - 1) });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /error: not UTF-16 text \(a binary file\?\): the input ends inside a character/);
});

test('an alias bomb is refused at once (exit 2, where kubectl refuses it); a hundred uses of one anchor are read', async () => {
  const bomb = ['apiVersion: v1', 'kind: ConfigMap', 'metadata: {name: x}', 'a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
  for (let i = 1; i <= 30; i++) bomb.push(`a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]`);
  const started = Date.now();
  let r = await runCli(['-'], { stdin: `${bomb.join('\n')}\n` });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^<stdin>:\d+:\d+: error: not valid for kubectl: document contains excessive aliasing: .*\(kubectl fails with "yaml: document contains excessive aliasing"\)$/m);
  assert.ok(Date.now() - started < 10_000);
  const many = `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kagent-enterprise-config, namespace: kagent}\nv: &v true\ndata:\n${Array.from({ length: 150 }, (_, i) => `  K${i}: *v\n`).join('')}  K8S_TOKEN_REVIEW: *v\n`;
  r = await runCli(['-', '--external-issuer'], { stdin: many });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stdout.toString(), /^<stdin>:156:3: error \[token-review-value\] .*is the YAML boolean true/m);
});

test('--post-renderer with input that is not Kubernetes: nothing on stdout, exit 2', async () => {
  const r = await runCli(['--post-renderer'], { stdin: 'hello\n' });
  assert.equal(r.code, 2);
  assert.equal(r.stdout.length, 0);
  assert.match(r.stderr, /not a Kubernetes object/);
});

test('the config file sets ConfigMap names and rule actions', async () => {
  const dir = tmp();
  writeFileSync(join(dir, 'config.yaml'), 'tokenReview:\n  configMapNames: [my-kagent-config]\npolicies:\n  dedicated-service-account: warn\n  token-review-value: "off"\n');
  writeFileSync(join(dir, 'm.yaml'), `${AGENT('a', null)}---\n${CM('true').replace('kagent-enterprise-config', 'my-kagent-config')}`);
  const r = await runCli([join(dir, 'm.yaml'), '--config', join(dir, 'config.yaml'), '--format', 'json', '--external-issuer']);
  assert.equal(r.code, 1, r.stderr);
  const out = JSON.parse(r.stdout.toString());
  assert.deepEqual(
    out.violations.map((v: { rule: string; severity: string }) => [v.rule, v.severity]),
    [
      ['dedicated-service-account', 'warning'],
      ['token-review-required', 'error'],
    ],
  );
});

test('lint: token-review-value at warn does not pass a value token-review-required fails (exit 1, one error)', async () => {
  const dir = tmp();
  writeFileSync(join(dir, 'config.yaml'), 'tokenReview:\n  issuer: external\npolicies:\n  token-review-value: warn\n  token-review-required: deny\n');
  writeFileSync(join(dir, 'm.yaml'), CM('"True"'));
  const r = await runCli([join(dir, 'm.yaml'), '--config', join(dir, 'config.yaml'), '--format', 'json']);
  assert.equal(r.code, 1, r.stdout.toString());
  const out = JSON.parse(r.stdout.toString());
  assert.deepEqual(out.violations.map((v: { rule: string; severity: string; line: number }) => [v.rule, v.severity, v.line]), [['token-review-required', 'error', 8]]);
});

// --cluster: the issuer is read from the current kubeconfig context. No kube-apiserver can be installed on
// these machines, so an in-test HTTPS server stands in for it and serves /.well-known/openid-configuration.
test('--cluster reads the issuer from the API server of the current kubeconfig context', async (t) => {
  const { cert, key } = await selfSigned();
  const seen: string[] = [];
  let discovery: Record<string, string> = {};
  const server = createServer({ cert, key }, (req, res) => {
    seen.push(`${req.method} ${req.url} ${req.headers.authorization ?? ''}`);
    if (req.url === '/.well-known/openid-configuration') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(discovery));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const dir = tmp();
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(
    kubeconfig,
    `apiVersion: v1
kind: Config
current-context: test
clusters:
- name: test
  cluster:
    server: https://127.0.0.1:${port}
    certificate-authority-data: ${Buffer.from(cert).toString('base64')}
contexts:
- name: test
  context: {cluster: test, user: test}
users:
- name: test
  user: {token: test-token}
`,
  );
  const env = { KUBECONFIG: kubeconfig };
  discovery = { issuer: 'https://oidc.eks.eu-west-1.amazonaws.com/id/0123456789abcdef0123456789abcdef', jwks_uri: 'https://oidc.eks.eu-west-1.amazonaws.com/id/x/keys' };
  let r = await runCli(['--cluster', '-'], { stdin: CM('"false"'), env });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stdout.toString(), /error \[token-review-required\].*issuer https:\/\/oidc\.eks\.eu-west-1\.amazonaws\.com\/id\/0123456789abcdef0123456789abcdef is external \(EKS\)/);
  assert.deepEqual(seen, ['GET /.well-known/openid-configuration Bearer test-token']);
  discovery = { issuer: 'https://kubernetes.default.svc.cluster.local', jwks_uri: `https://127.0.0.1:${port}/openid/v1/jwks` };
  r = await runCli(['--cluster', '-'], { stdin: CM('"false"'), env });
  assert.equal(r.code, 0, r.stderr);
  // unreachable API server: exit 2, one line
  const badConfig = join(dir, 'bad-kubeconfig');
  writeFileSync(badConfig, `apiVersion: v1\nkind: Config\ncurrent-context: x\nclusters:\n- name: x\n  cluster: {server: "https://127.0.0.1:1"}\ncontexts:\n- name: x\n  context: {cluster: x, user: x}\nusers:\n- name: x\n  user: {}\n`);
  // no kubeconfig at all: said so, not a request to http://localhost:8080
  const nowhere = tmp();
  r = await runCli(['--cluster', '-'], { stdin: CM('"false"'), env: { KUBECONFIG: '', HOME: nowhere, KUBERNETES_SERVICE_HOST: '' } });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^kagenti-webhook lint: --cluster: no kubeconfig \(set KUBECONFIG, or write ~\/\.kube\/config\), and not running in a cluster\n$/);
  r = await runCli(['--cluster', '-'], { stdin: CM('"false"'), env: { KUBECONFIG: badConfig } });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^kagenti-webhook lint: --cluster: GET https:\/\/127\.0\.0\.1:1\/\.well-known\/openid-configuration failed: .*\n$/);
});

test('the built CLI (bin/kagenti-webhook.js lint) runs the same command', { skip: !existsSync(join(ROOT, 'dist', 'lint.js')) && 'dist/ not built (npm run build)' }, () => {
  const input = `${CM('true')}`;
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'kagenti-webhook.js'), 'lint', '--post-renderer', '--external-issuer'], { input, env: { ...process.env, NO_COLOR: '1' } });
  assert.equal(r.status, 1);
  assert.equal(r.stdout.length, 0);
  assert.match(r.stderr.toString(), /^<stdin>:8:3: error \[token-review-value\]/);
  const ok = CM('"true"');
  const r2 = spawnSync(process.execPath, [join(ROOT, 'bin', 'kagenti-webhook.js'), 'lint', '--post-renderer', '--external-issuer'], { input: ok });
  assert.equal(r2.status, 0);
  assert.equal(r2.stdout.toString(), ok);
});

/** A self-signed certificate for 127.0.0.1 (it is its own CA in the kubeconfig). */
async function selfSigned(): Promise<{ cert: string; key: string }> {
  await import('reflect-metadata');
  const x509 = await import('@peculiar/x509');
  const { webcrypto } = await import('node:crypto');
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as unknown as { privateKey: any; publicKey: any };
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=127.0.0.1',
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3600_000),
    keys: keys as any,
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.SubjectAlternativeNameExtension([{ type: 'ip', value: '127.0.0.1' }]),
    ],
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  const key = `-----BEGIN PRIVATE KEY-----\n${Buffer.from(pkcs8).toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END PRIVATE KEY-----\n`;
  return { cert: cert.toString('pem'), key };
}

test('lint reports what /mutate would deny in an agent pod template, at the offending key, in every format', async () => {
  const win = AGENT('win', 'win-sa').replace('    spec:\n      serviceAccountName', '    spec:\n      nodeSelector:\n        kubernetes.io/os: windows\n      serviceAccountName');
  const mode = AGENT('typo', 'typo-sa').replace(
    '      labels:\n        kagenti.io/type: agent\n',
    '      labels:\n        kagenti.io/type: agent\n      annotations:\n        kagenti.io/authbridge-mode: turbo\n',
  );
  const l = lintString(`${win}---\n${mode}`);
  assert.deepEqual(
    l.findings.map((f) => [f.rule, f.severity, f.name, f.path, f.line]),
    [
      ['unsupported-os', 'error', 'win', 'spec.template.spec.nodeSelector.kubernetes.io/os', 13],
      ['invalid-annotation', 'error', 'typo', 'spec.template.metadata.annotations.kagenti.io/authbridge-mode', 30],
    ],
  );
  assert.match(l.findings[0].message, /^\[unsupported-os\] Deployment agents\/win: .*Fix: /);
  // the same document through the CLI: exit 1, and SARIF describes the rule
  const dir = tmp();
  writeFileSync(join(dir, 'win.yaml'), win);
  const text = await runCli([join(dir, 'win.yaml'), '--external-issuer']);
  assert.equal(text.code, 1, text.stderr);
  assert.match(String(text.stdout), /win\.yaml:13:9: error \[unsupported-os\]/);
  const sarif = await runCli([join(dir, 'win.yaml'), '--external-issuer', '--format', 'sarif']);
  const run = JSON.parse(String(sarif.stdout)).runs[0];
  const result = run.results[0];
  assert.equal(result.ruleId, 'unsupported-os');
  assert.equal(run.tool.driver.rules[result.ruleIndex].id, 'unsupported-os');
  assert.match(run.tool.driver.rules[result.ruleIndex].shortDescription.text, /Linux/);
});

test('lint and inject on a kubectl get pod -o yaml dump whose kubectl debug container took an injected name (spiffe-helper, authbridge-proxy): reserved-name, never a second container of that name', () => {
  // an agent pod created while the webhook was down (no kagenti.io/authbridge-status), then debugged with
  // kubectl debug -c spiffe-helper: injecting it would add a sidecar of the ephemeral container's name
  const dump = (debugName: string) => `apiVersion: v1
kind: Pod
metadata:
  creationTimestamp: "2026-01-05T10:00:00Z"
  labels:
    kagenti.io/type: agent
  name: weather-1
  namespace: team-a
  resourceVersion: "12345"
  uid: 0b8f3c1e-1111-2222-3333-444455556666
spec:
  containers:
  - image: ghcr.io/example/agent:1
    imagePullPolicy: IfNotPresent
    name: agent
    resources: {}
    terminationMessagePath: /dev/termination-log
    terminationMessagePolicy: File
  dnsPolicy: ClusterFirst
  ephemeralContainers:
  - image: busybox:1.36
    imagePullPolicy: IfNotPresent
    name: ${debugName}
    resources: {}
    stdin: true
    tty: true
  nodeName: node-1
  restartPolicy: Always
  serviceAccount: weather
  serviceAccountName: weather
status:
  phase: Running
`;
  for (const name of ['spiffe-helper', 'authbridge-proxy']) {
    const message = `[reserved-name] Pod team-a/weather-1: spec.ephemeralContainers[0].name is ${name}, a container name reserved for the injected sidecar. Two containers cannot share a name and ours cannot be skipped. Fix: rename your container, or label the pod kagenti.io/inject: disabled.`;
    const l = lintString(dump(name));
    assert.deepEqual(
      l.findings.map((f) => [f.rule, f.severity, f.path, f.line, f.column, f.message]),
      [['reserved-name', 'error', 'spec.ephemeralContainers.0.name', 23, 5, message]],
      name,
    );
    const r = injectStream(dump(name), defaultConfig());
    assert.deepEqual([r.denials, r.injected], [[message], 0], name);
  }
});

test('lint reads Namespace documents of the render for the injection checks: pod-security, namespace-mode-label', () => {
  const ns = (name: string, labels: Record<string, string>) =>
    `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${name}\n  labels:\n${Object.entries(labels).map(([k, v]) => `    ${k}: ${v}\n`).join('')}`;
  const l = lintString(`${ns('agents', { 'pod-security.kubernetes.io/enforce': 'restricted' })}---\n${AGENT('a', 'a-sa')}---\n${AGENT('b', 'b-sa', 'other')}`);
  assert.deepEqual(l.findings.map((f) => [f.rule, f.severity, f.namespace, f.name]), [['pod-security', 'warning', 'agents', 'a']]);
  assert.match(l.findings[0].message, /^\[pod-security\] Deployment agents\/a: namespace agents enforces Pod Security "restricted"/);
  const mode = lintString(`${ns('agents', { 'kagenti.io/authbridge-mode': 'turbo' })}---\n${AGENT('a', 'a-sa')}`);
  assert.deepEqual(mode.findings.map((f) => f.rule), ['namespace-mode-label']);
  // a Namespace after the workload counts as one before it: the same findings whatever the order
  const after = lintString(`${AGENT('a', 'a-sa')}---\n${ns('agents', { 'pod-security.kubernetes.io/enforce': 'restricted' })}---\n${AGENT('b', 'b-sa', 'other')}`);
  const noLine = (fs: typeof l.findings) => fs.map(({ line: _line, ...f }) => f);
  assert.deepEqual(noLine(after.findings), noLine(l.findings));
  assert.equal(after.findings[0].line, 11);
});

test('lint: a Namespace document later in the input (another file, a later document, a List item) gives the findings it gives first', async () => {
  const hostNet = AGENT('a', 'a-sa', 'team').replace('    spec:\n      serviceAccountName', '    spec:\n      hostNetwork: true\n      serviceAccountName');
  const waypoint = 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n  labels:\n    kagenti.io/authbridge-mode: waypoint\n';
  // in waypoint mode no proxy is injected: hostNetwork is no problem
  assert.deepEqual(lintString(`${waypoint}---\n${hostNet}`).findings, []);
  assert.deepEqual(lintString(`${hostNet}---\n${waypoint}`).findings, []);
  const item = (doc: string) => `  - ${doc.trimEnd().split('\n').join('\n    ')}\n`;
  assert.deepEqual(lintString(`apiVersion: v1\nkind: List\nitems:\n${item(hostNet)}${item(waypoint)}`).findings, []);
  // without it, the denial stands
  assert.deepEqual(lintString(hostNet).findings.map((f) => f.rule), ['host-network']);
  // a Namespace without the label changes nothing, and one of another name neither
  assert.deepEqual(lintString(`${hostNet}---\n${waypoint.replace('name: team', 'name: other')}`).findings.map((f) => f.rule), ['host-network']);
  // files in sorted order: team/agent.yaml before team/namespace.yaml
  const dir = tmp();
  mkdirSync(join(dir, 'team'));
  writeFileSync(join(dir, 'team', 'agent.yaml'), hostNet);
  writeFileSync(join(dir, 'team', 'namespace.yaml'), waypoint);
  const r = await runCli([dir, '--external-issuer']);
  assert.equal(r.code, 0, String(r.stdout));
  assert.match(String(r.stdout), /^no problems \(2 documents in 2 files\)/);
});

test('lint without -n: objects without a namespace are compared for unique-service-account within their directory only', async () => {
  const app = (dep: string) =>
    `apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: agent\n---\n${AGENT(dep, 'agent').replace('  namespace: agents\n', '')}`;
  const dir = tmp();
  mkdirSync(join(dir, 'team-a'));
  mkdirSync(join(dir, 'team-b'));
  writeFileSync(join(dir, 'team-a', 'agent.yaml'), app('agent-a'));
  writeFileSync(join(dir, 'team-b', 'agent.yaml'), app('agent-b'));
  let r = await runCli([dir, '--external-issuer']);
  assert.equal(r.code, 0, String(r.stdout));
  // -n puts them all in one namespace: compared
  r = await runCli([dir, '--external-issuer', '-n', 'team']);
  assert.equal(r.code, 1);
  assert.match(String(r.stdout), /team-b\/agent\.yaml:\d+:\d+: error \[unique-service-account\] Deployment team\/agent-b: .*agent-a defined at .*team-a\/agent\.yaml:6/);
  // within one file (or one stdin stream) they share a namespace: compared
  r = await runCli(['-', '--external-issuer'], { stdin: `${app('agent-a')}---\n${app('agent-b')}` });
  assert.equal(r.code, 1);
  assert.match(String(r.stdout), /error \[unique-service-account\] Deployment default\/agent-b/);
  // so do the files of one directory (helm template --output-dir writes a file per template), however they are named
  const out = join(dir, 'out', 'chart', 'templates');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'agent-a.yaml'), app('agent-a'));
  writeFileSync(join(out, 'agent-b.yaml'), AGENT('agent-b', 'agent').replace('  namespace: agents\n', ''));
  r = await runCli([join(dir, 'out'), '--external-issuer']);
  assert.equal(r.code, 1, String(r.stdout));
  assert.match(String(r.stdout), /agent-b\.yaml:\d+:\d+: error \[unique-service-account\] Deployment default\/agent-b: .*agent-a defined at .*agent-a\.yaml:6/);
  r = await runCli([join(out, 'agent-a.yaml'), join(dir, 'out', 'chart', '..', 'chart', 'templates', 'agent-b.yaml'), '--external-issuer']);
  assert.equal(r.code, 1, String(r.stdout));
  // and through a symbolic link to that directory
  symlinkSync(out, join(dir, 'link'));
  r = await runCli([join(dir, 'link', 'agent-a.yaml'), join(out, 'agent-b.yaml'), '--external-issuer']);
  assert.equal(r.code, 1, String(r.stdout));
  rmSync(join(dir, 'link'));
  // a nested directory is another scope, as a sibling is (team-a and team-b above), and stdin another
  mkdirSync(join(out, 'sub'));
  writeFileSync(join(out, 'sub', 'agent-c.yaml'), app('agent-c'));
  writeFileSync(join(out, 'agent-b.yaml'), app('agent-a'));
  r = await runCli([join(dir, 'out'), '-', '--external-issuer'], { stdin: app('agent-d') });
  assert.equal(r.code, 0, String(r.stdout));
  // objects that name their namespace are compared across files
  writeFileSync(join(dir, 'team-a', 'agent.yaml'), AGENT('agent-a', 'agent', 'shared'));
  writeFileSync(join(dir, 'team-b', 'agent.yaml'), AGENT('agent-b', 'agent', 'shared'));
  r = await runCli([dir, '--external-issuer']);
  assert.equal(r.code, 1);
  assert.match(String(r.stdout), /\[unique-service-account\] Deployment shared\/agent-b/);
});

test('lint: an object in a namespace the webhook never sees gets one unwatched-namespace warning instead of its findings', async () => {
  const hostNet = (ns: string) => AGENT('sys', null, ns).replace('    spec:\n      containers', '    spec:\n      hostNetwork: true\n      containers');
  const l = lintString(hostNet('kube-system'));
  assert.deepEqual(l.findings.map((f) => [f.rule, f.severity, f.line, f.column, f.path]), [['unwatched-namespace', 'warning', 2, 1, '']]);
  assert.match(
    l.findings[0].message,
    /^\[unwatched-namespace\] Deployment kube-system\/sys: not injected or checked: the webhook never sees namespace kube-system .*, so its pods get no sidecars and nothing is checked there, and what lint reports elsewhere is not enforced here: dedicated-service-account, host-network\. Fix: move the agent to a namespace of its own; /,
  );
  // the same namespaces as the webhook registrations leave out
  for (const ns of ['kube-public', 'kube-node-lease', 'kagenti-system']) assert.deepEqual(lintString(hostNet(ns)).findings.map((f) => f.rule), ['unwatched-namespace']);
  assert.deepEqual(lintString(hostNet('agents')).findings.map((f) => f.rule), ['dedicated-service-account', 'host-network']);
  // -n kube-system for objects without a namespace too
  assert.deepEqual(lintString(hostNet('kube-system').replace('  namespace: kube-system\n', ''), { namespace: 'kube-system' }).findings.map((f) => f.rule), ['unwatched-namespace']);
  // an agent without findings there gets the warning too, in the words inject uses for it
  const ok = lintString(AGENT('ok', 'ok-sa', 'kube-system')).findings;
  assert.deepEqual(ok.map((f) => [f.rule, f.severity, f.line, f.path]), [['unwatched-namespace', 'warning', 2, '']]);
  const injected = injectStream(AGENT('ok', 'ok-sa', 'kube-system'), defaultConfig());
  assert.deepEqual([injected.injected, injected.denials, injected.warnings], [0, [], [ok[0]!.message]]);
  // not an agent (opted out, no type label): nothing, in lint as in inject
  assert.deepEqual(lintString(AGENT('ok', 'ok-sa', 'kube-system').replace('kagenti.io/type: agent', 'kagenti.io/type: agent\n        kagenti.io/inject: disabled')).findings, []);
  // two agents there on one ServiceAccount: the webhook never sees them claim it (one warning each, no conflict)
  assert.deepEqual(lintString(`${AGENT('a', 'sa', 'kube-system')}---\n${AGENT('b', 'sa', 'kube-system')}`).findings.map((f) => [f.rule, f.name]), [['unwatched-namespace', 'a'], ['unwatched-namespace', 'b']]);
  // exit 0 (a warning), 1 with --strict; SARIF lists the rule
  const dir = tmp();
  writeFileSync(join(dir, 'ks.yaml'), hostNet('kube-system'));
  assert.equal((await runCli([join(dir, 'ks.yaml'), '--external-issuer'])).code, 0);
  assert.equal((await runCli([join(dir, 'ks.yaml'), '--external-issuer', '--strict'])).code, 1);
  const run = JSON.parse(String((await runCli([join(dir, 'ks.yaml'), '--external-issuer', '-o', 'sarif'])).stdout)).runs[0];
  assert.equal(run.tool.driver.rules[run.results[0].ruleIndex].id, 'unwatched-namespace');
  assert.equal(run.tool.driver.rules[run.results[0].ruleIndex].defaultConfiguration.level, 'warning');
});

test('lint: a malformed-object finding points at the offending field, and its fix says the shape expected', () => {
  const cron = (containers: string, spec = '') =>
    `apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: nightly\n  namespace: team-a\nspec:\n  schedule: "0 1 * * *"\n  jobTemplate:\n    spec:\n      template:\n        metadata:\n          labels:\n            kagenti.io/type: agent\n        spec:\n          serviceAccountName: nightly\n${spec}          containers:\n${containers}`;
  const at = (text: string) => lintString(text, { issuer: 'internal' }).findings.filter((f) => f.rule === 'malformed-object').map((f) => [f.line, f.column, f.path, f.message.slice(f.message.indexOf('Fix: '))]);
  // ports written as a string: at its value (line 20), not at spec:
  assert.deepEqual(at(cron('            - name: job\n              image: x\n              ports: "8080"\n')), [[19, 15, 'spec.jobTemplate.spec.template.spec.containers.0.ports', 'Fix: write ports as a list of {containerPort: N}.']]);
  // a port that is not a mapping: at that item
  assert.deepEqual(at(cron('            - name: job\n              image: x\n              ports:\n                - 8080\n')), [[20, 17, 'spec.jobTemplate.spec.template.spec.containers.0.ports.0', 'Fix: write each item of ports as {containerPort: N}.']]);
  // a container without a name; hostNetwork as a string
  assert.deepEqual(at(cron('            - image: x\n')).map((f) => f[3]), ['Fix: give it a name (name: NAME).']);
  assert.deepEqual(at(cron('            - name: job\n              image: x\n', '          hostNetwork: "yes"\n')).map((f) => [f[0], f[2], f[3]]), [[16, 'spec.jobTemplate.spec.template.spec.hostNetwork', 'Fix: write true or false, without quotes.']]);
  // env and volumeMounts take their own shapes
  assert.deepEqual(at(cron('            - name: job\n              image: x\n              env: FOO=bar\n')).map((f) => f[3]), ['Fix: write env as a list of {name: NAME, value: "..."}.']);
});

test('lint: in a namespace the webhook never sees, what the API server itself refuses is still reported; only the webhook\'s findings are folded', async () => {
  // a boolean K8S_TOKEN_REVIEW: the API server cannot decode it, in any namespace
  let l = lintString(CM('true', 'kagenti-system'), { issuer: 'unknown' });
  assert.deepEqual(l.findings.map((f) => [f.rule, f.severity, f.path]), [['token-review-value', 'error', 'data.K8S_TOKEN_REVIEW']]);
  for (const v of ['1', '{a: b}', '[x]']) assert.deepEqual(lintString(CM(v, 'kagenti-system')).findings.map((f) => f.rule), ['token-review-value'], v);
  // under token-review-required when that is the stricter rule (token-review-value: warn, an external issuer)
  l = lintString(CM('true', 'kagenti-system'), { policies: { 'token-review-value': 'warn' } });
  assert.deepEqual(l.findings.map((f) => [f.rule, f.severity]), [['token-review-required', 'error']]);
  // a string the webhook would refuse, and an empty (null) value, which the API server stores as "": the webhook's only
  for (const v of ['"yes"', '']) assert.deepEqual(lintString(CM(v, 'kagenti-system')).findings.map((f) => f.rule), ['unwatched-namespace'], v);
  // an agent pod with a label YAML reads as a number: the API server refuses the pod
  const pod = (labels: string, spec = '') =>
    `apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: kube-system\n  labels:\n    kagenti.io/type: agent\n${labels}spec:\n${spec}  containers:\n  - name: app\n    image: a\n`;
  l = lintString(pod('    version: 1.0\n', '  serviceAccountName: sa\n'));
  assert.deepEqual(l.findings.map((f) => [f.rule, f.severity, f.line, f.path]), [['unwatched-namespace', 'warning', 2, ''], ['malformed-object', 'error', 8, 'metadata.labels.version']]);
  // with a webhook-only finding too: the warning names that one, and the API server's error stays
  l = lintString(pod('    version: 1.0\n'));
  assert.deepEqual(l.findings.map((f) => [f.rule, f.severity]), [['unwatched-namespace', 'warning'], ['malformed-object', 'error']]);
  assert.match(l.findings[0].message, /not enforced here: dedicated-service-account\. Fix:/);
  // annotations over the size limit, a container without a name, hostNetwork that is not a boolean: refused too
  // (beside the agent's own unwatched-namespace warning)
  assert.deepEqual(lintString(pod('', `  serviceAccountName: sa\n`).replace('  labels:', `  annotations:\n    big: "${'x'.repeat(256 * 1024)}"\n  labels:`)).findings.map((f) => f.rule), ['unwatched-namespace', 'malformed-object']);
  assert.deepEqual(lintString(pod('', '  serviceAccountName: sa\n').replace('  - name: app\n    image: a', '  - image: a')).findings.map((f) => f.rule), ['unwatched-namespace', 'malformed-object']);
  assert.deepEqual(lintString(pod('', '  serviceAccountName: sa\n  hostNetwork: "yes"\n')).findings.map((f) => f.rule), ['unwatched-namespace', 'malformed-object']);
  // a null label value becomes "" on the API server: the webhook's check only
  assert.deepEqual(lintString(pod('    version: ~\n', '  serviceAccountName: sa\n')).findings.map((f) => f.rule), ['unwatched-namespace']);
  // through the CLI: exit 1, not a pass
  const dir = tmp();
  writeFileSync(join(dir, 'unw.yaml'), `${CM('true', 'kagenti-system')}---\n${pod('    version: 1.0\n', '  serviceAccountName: sa\n')}`);
  const r = await runCli([join(dir, 'unw.yaml')]);
  assert.equal(r.code, 1, String(r.stdout));
  assert.match(String(r.stdout), /error \[token-review-value\] ConfigMap kagenti-system\/kagent-enterprise-config/);
  assert.match(String(r.stdout), /error \[malformed-object\] Pod kube-system\/p: metadata\.labels\["version"\] is 1, a number/);
});

test('lint checks the injection of a ReplicaSet owned by a Deployment (or a Job of a CronJob) on its owner only, as /validate does', () => {
  const dep = AGENT('web', 'web-sa').replace('    spec:\n      serviceAccountName', '    spec:\n      hostNetwork: true\n      serviceAccountName');
  const rs = dep
    .replace('kind: Deployment', 'kind: ReplicaSet')
    .replace('  name: web\n', '  name: web-5d4f\n  ownerReferences:\n    - {apiVersion: apps/v1, kind: Deployment, name: web, uid: u1, controller: true}\n');
  const l = lintString(`${dep}---\n${rs}`);
  assert.deepEqual(l.findings.filter((f) => f.rule === 'host-network').map((f) => `${f.kind}/${f.name}`), ['Deployment/web']);
  // an ownerless ReplicaSet is its own workload: checked
  const bare = rs.replace(/  ownerReferences:\n.*\n/, '');
  assert.deepEqual(lintString(bare).findings.filter((f) => f.rule === 'host-network').map((f) => f.kind), ['ReplicaSet']);
  // so is one whose Deployment is not its controller, or not the apps/v1 one
  for (const ref of ['{apiVersion: apps/v1, kind: Deployment, name: web, uid: u1}', '{apiVersion: example.com/v1, kind: Deployment, name: web, uid: u1, controller: true}']) {
    const other = rs.replace(/    - \{apiVersion: apps\/v1, kind: Deployment.*\n/, `    - ${ref}\n`);
    assert.notEqual(other, rs);
    assert.deepEqual(lintString(other).findings.filter((f) => f.rule === 'host-network').map((f) => f.kind), ['ReplicaSet'], ref);
  }
});

test('a dump\'s pods and ReplicaSets are the workload their owners in the input name (a CronJob\'s Job\'s pod is the CronJob), in any order of a List', () => {
  const tpl = (sa: string) => ({ metadata: { labels: { 'kagenti.io/type': 'agent' } }, spec: { serviceAccountName: sa, restartPolicy: 'Never', containers: [{ name: 'a', image: 'x' }] } });
  const owned = (kind: string, name: string, apiVersion = 'batch/v1') => ({ ownerReferences: [{ apiVersion, kind, name, uid: 'u', controller: true }] });
  const cronJob = { apiVersion: 'batch/v1', kind: 'CronJob', metadata: { name: 'report', namespace: 'agents' }, spec: { schedule: '0 * * * *', jobTemplate: { spec: { template: tpl('report-sa') } } } };
  // a Job named by a schedule long past: only its ownerReference ties it (and its pod) to the CronJob
  const job = { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'report-28000000', namespace: 'agents', ...owned('CronJob', 'report') }, spec: { template: tpl('report-sa') } };
  const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'report-28000000-x1', namespace: 'agents', labels: { 'kagenti.io/type': 'agent' }, ...owned('Job', 'report-28000000') }, spec: tpl('report-sa').spec };
  // a ReplicaSet without the pod-template-hash label: only the input ties its pod to the Deployment
  const dep = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'agents' }, spec: { selector: { matchLabels: { app: 'web' } }, template: tpl('web-sa') } };
  const rs = { apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name: 'web-v2', namespace: 'agents', ...owned('Deployment', 'web', 'apps/v1') }, spec: { template: tpl('web-sa') } };
  const webPod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web-v2-x1', namespace: 'agents', labels: { 'kagenti.io/type': 'agent' }, ...owned('ReplicaSet', 'web-v2', 'apps/v1') }, spec: tpl('web-sa').spec };
  const list = (...items: unknown[]) => JSON.stringify({ apiVersion: 'v1', kind: 'List', items }, null, 1);
  const unique = (l: Linter) => l.findings.filter((f) => f.rule === 'unique-service-account').map((f) => `${f.kind}/${f.name}: ${f.message}`);
  for (const items of [[cronJob, job, pod, dep, rs, webPod], [pod, webPod, rs, dep, job, cronJob], [job, pod, cronJob, webPod, dep, rs]])
    assert.deepEqual(unique(lintString(list(...items))), [], items.map((i) => i.kind).join(','));
  // as separate documents, an owner counts for the documents after it
  assert.deepEqual(unique(lintString([cronJob, job, pod, dep, rs, webPod].map((o) => JSON.stringify(o)).join('\n'))), []);
  // another agent on the CronJob's ServiceAccount is still one
  const other = { ...cronJob, metadata: { name: 'other', namespace: 'agents' } };
  assert.deepEqual(unique(lintString(list(pod, job, cronJob, other))).map((m) => m.split(':')[0]), ['CronJob/other']);
});

test('in a dump, an agent\'s findings are reported on the owner only, not on its ReplicaSets, Jobs and pods (as /validate skips them)', () => {
  const tpl = { metadata: { labels: { 'kagenti.io/type': 'agent', app: 'web' } }, spec: { containers: [{ name: 'a', image: 'x' }] } };
  const owned = (apiVersion: string, kind: string, name: string) => ({ ownerReferences: [{ apiVersion, kind, name, uid: 'u', controller: true }] });
  const dep = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'agents' }, spec: { selector: { matchLabels: { app: 'web' } }, template: tpl } };
  const rs = { apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name: 'web-5d4f', namespace: 'agents', labels: { 'pod-template-hash': '5d4f' }, ...owned('apps/v1', 'Deployment', 'web') }, spec: { template: tpl } };
  const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web-5d4f-x1', namespace: 'agents', labels: tpl.metadata.labels, ...owned('apps/v1', 'ReplicaSet', 'web-5d4f') }, spec: { serviceAccountName: 'default', containers: [{ name: 'a', image: 'x' }] } };
  const cron = { apiVersion: 'batch/v1', kind: 'CronJob', metadata: { name: 'job', namespace: 'agents' }, spec: { jobTemplate: { spec: { template: tpl } } } };
  const job = { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'job-1', namespace: 'agents', ...owned('batch/v1', 'CronJob', 'job') }, spec: { template: tpl } };
  const l = lintString(JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [dep, rs, pod, cron, job] }));
  assert.deepEqual(l.findings.filter((f) => f.rule === 'dedicated-service-account').map((f) => `${f.kind}/${f.name}`), ['Deployment/web', 'CronJob/job']);
  // without a controller owner, a ReplicaSet or pod is its own workload and is reported itself
  const { ownerReferences: _rsOwner, ...rsMeta } = rs.metadata;
  const { ownerReferences: _podOwner, ...podMeta } = pod.metadata;
  const alone = lintString(`${JSON.stringify({ ...rs, metadata: rsMeta })}\n${JSON.stringify({ ...pod, metadata: podMeta })}`);
  assert.deepEqual(alone.findings.filter((f) => f.rule === 'dedicated-service-account').map((f) => f.kind), ['ReplicaSet', 'Pod']);
  // unique-service-account: reported once per agent, on the owner, not again on each of its ReplicaSets and pods;
  // on the first of them when the owner is not in the input
  const sa = (o: any, name: string) => {
    const c = structuredClone(o);
    (c.spec.template?.spec ?? c.spec).serviceAccountName = name;
    return c;
  };
  const other = { ...sa(dep, 'shared'), metadata: { name: 'other', namespace: 'agents' } };
  const unique = (items: unknown[]) =>
    lintString(JSON.stringify({ apiVersion: 'v1', kind: 'List', items })).findings.filter((f) => f.rule === 'unique-service-account').map((f) => `${f.kind}/${f.name}`);
  assert.deepEqual(unique([other, sa(dep, 'shared'), sa(rs, 'shared'), sa(pod, 'shared')]), ['Deployment/web']);
  assert.deepEqual(unique([sa(dep, 'shared'), sa(rs, 'shared'), sa(pod, 'shared'), other]), ['Deployment/other']);
  assert.deepEqual(unique([other, sa(rs, 'shared'), sa(pod, 'shared')]), ['ReplicaSet/web-5d4f']);
});

test('lint: a dump with a Deployment and its pods reports the template once; waypoint mode is not reported; SARIF levels of warning rules are warning', async () => {
  const d = AGENT('web', 'web-sa').replace('    spec:\n      serviceAccountName', '    spec:\n      initContainers:\n        - name: fetch\n          image: curl\n      serviceAccountName');
  const pod = (i: number) =>
    `apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-5d4f-${i}\n  namespace: agents\n  labels:\n    kagenti.io/type: agent\n  ownerReferences:\n    - {apiVersion: apps/v1, kind: ReplicaSet, name: web-5d4f, uid: u, controller: true}\nspec:\n  serviceAccountName: web-sa\n  initContainers:\n    - name: fetch\n      image: curl\n  containers:\n    - name: a\n      image: x\n`;
  const l = lintString([d, pod(1), pod(2), pod(3)].join('---\n'));
  const injectionFindings = l.findings.filter((f) => f.rule !== 'unique-service-account' && f.rule !== 'dedicated-service-account');
  assert.deepEqual(injectionFindings.map((f) => `${f.rule} ${f.kind}/${f.name}`), ['init-before-proxy Deployment/web']);
  const wp = AGENT('wp', 'wp-sa').replace('      labels:\n        kagenti.io/type: agent\n', '      labels:\n        kagenti.io/type: agent\n      annotations:\n        kagenti.io/authbridge-mode: waypoint\n');
  assert.deepEqual(lintString(wp).findings, []);
  const dir = tmp();
  writeFileSync(join(dir, 'd.yaml'), d);
  const sarif = JSON.parse(String((await runCli([join(dir, 'd.yaml'), '--external-issuer', '--format', 'sarif'])).stdout));
  const rules = sarif.runs[0].tool.driver.rules as { id: string; defaultConfiguration: { level: string } }[];
  assert.equal(rules.find((r) => r.id === 'init-before-proxy')!.defaultConfiguration.level, 'warning');
  assert.equal(rules.find((r) => r.id === 'port-conflict')!.defaultConfiguration.level, 'error');
});

test('lint: probe-through-proxy is reported at the probe, as a warning (SARIF level warning); policies.probe-through-proxy: off silences it', async () => {
  const text = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: agents
spec:
  template:
    metadata:
      labels:
        kagenti.io/type: agent
      annotations:
        kagenti.io/mtls-mode: strict
    spec:
      serviceAccountName: api-sa
      containers:
        - name: api
          image: x
          ports:
            - name: http
              containerPort: 8080
          livenessProbe:
            tcpSocket:
              port: http
          readinessProbe:
            httpGet:
              path: /ready
              port: http
`;
  const l = lintString(text);
  assert.deepEqual(
    l.findings.map((f) => [f.rule, f.severity, f.path, f.line, f.column]),
    [['probe-through-proxy', 'warning', 'spec.template.spec.containers.0.readinessProbe', 24, 11]],
  );
  assert.match(l.findings[0]!.message, /^\[probe-through-proxy\] Deployment agents\/api: container api has an httpGet probe on a port that proxy-init redirects to the proxy \(spec\.template\.spec\.containers\[0\]\.readinessProbe on port 8080\)/);
  assert.deepEqual(lintString(text, { policies: { 'probe-through-proxy': 'off' } }).findings, []);
  assert.deepEqual(lintString(text.replace('mtls-mode: strict', 'mtls-mode: permissive')).findings, []);
  const dir = tmp();
  writeFileSync(join(dir, 'd.yaml'), text);
  const sarif = JSON.parse(String((await runCli([join(dir, 'd.yaml'), '--format', 'sarif'])).stdout));
  const rules = sarif.runs[0].tool.driver.rules as { id: string; defaultConfiguration: { level: string } }[];
  assert.equal(rules.find((r) => r.id === 'probe-through-proxy')!.defaultConfiguration.level, 'warning');
  assert.equal(sarif.runs[0].results[0].ruleId, 'probe-through-proxy');
});

test('every injection denial of a template is its own finding at its own key, in the order of the lines', () => {
  const text = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: weather
  namespace: team-a
spec:
  selector: {matchLabels: {app: w}}
  template:
    metadata:
      labels: {app: w, kagenti.io/type: agent}
    spec:
      serviceAccountName: weather
      hostNetwork: true
      containers:
        - name: app
          image: x
          ports:
            - containerPort: 8080
            - containerPort: 15123
        - name: spiffe-helper
          image: mine
`;
  const l = lintString(text);
  assert.deepEqual(
    l.findings.map((f) => [f.rule, f.line, f.column, f.path]),
    [
      ['host-network', 13, 7, 'spec.template.spec.hostNetwork'],
      ['port-conflict', 19, 15, 'spec.template.spec.containers.0.ports.1.containerPort'],
      ['reserved-name', 20, 11, 'spec.template.spec.containers.1.name'],
    ],
  );
});

test('pod-resources: lint reports pod-level resources the injected containers exceed at the key, or at the nearest one the API server would default', () => {
  const text = (resources: string) => `apiVersion: apps/v1
kind: Deployment
metadata:
  name: budget
  namespace: team-a
spec:
  selector: {matchLabels: {app: b}}
  template:
    metadata:
      labels: {app: b, kagenti.io/type: agent}
    spec:
      serviceAccountName: budget
${resources}      containers:
        - name: app
          image: x
          resources:
            requests: {cpu: 100m, memory: 128Mi}
`;
  const tight = text('      resources:\n        requests:\n          cpu: 100m\n          memory: 128Mi\n        limits:\n          cpu: 200m\n          memory: 256Mi\n');
  assert.deepEqual(
    lintString(tight).findings.map((f) => [f.rule, f.severity, f.line, f.path]),
    [
      ['pod-resources', 'error', 15, 'spec.template.spec.resources.requests.cpu'],
      ['pod-resources', 'error', 16, 'spec.template.spec.resources.requests.memory'],
      ['pod-resources', 'error', 18, 'spec.template.spec.resources.limits.cpu'],
    ],
  );
  // limits only: the requests the API server sets are not in the file, so the finding points at resources:
  const limitsOnly = lintString(text('      resources:\n        limits: {cpu: 1, memory: 1Gi}\n'));
  assert.deepEqual(limitsOnly.findings.map((f) => [f.rule, f.line, f.path]), [
    ['pod-resources', 13, 'spec.template.spec.resources.requests.cpu'],
    ['pod-resources', 13, 'spec.template.spec.resources.requests.memory'],
  ]);
  assert.deepEqual(lintString(tight, { policies: { 'pod-resources': 'warn' } }).findings.map((f) => f.severity), ['warning', 'warning', 'warning']);
  assert.deepEqual(lintString(tight, { policies: { 'pod-resources': 'off' } }).findings, []);
  // enough room: nothing
  assert.deepEqual(lintString(text('      resources:\n        requests: {cpu: 160m, memory: 208Mi}\n        limits: {cpu: 500m, memory: 256Mi}\n')).findings, []);
});

test('unique-service-account names the deprecated serviceAccount field when that is the one the manifest sets, at its line', () => {
  const dep = (name: string, field: string) => `---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ${name}, namespace: kagent}
spec:
  selector: {matchLabels: {app: ${name}}}
  template:
    metadata: {labels: {app: ${name}, kagenti.io/type: agent}}
    spec:
      ${field}: shared
      containers: [{name: c, image: x}]
`;
  const l = lintString(dep('a', 'serviceAccountName') + dep('b', 'serviceAccount'));
  const f = l.findings.filter((x) => x.rule === 'unique-service-account');
  assert.equal(f.length, 1);
  assert.equal(f[0]!.path, 'spec.template.spec.serviceAccount');
  assert.match(f[0]!.message, /^\[unique-service-account\] Deployment kagent\/b: ServiceAccount "shared" \(spec\.template\.spec\.serviceAccount\) is already the identity of agent Deployment\/a/);
  assert.equal(f[0]!.line, 21);
  assert.equal(f[0]!.column, 7);
});

test('lint checks only core v1 ConfigMaps: a custom resource of kind ConfigMap (apiVersion example.com/v1) is not kagent\'s', () => {
  const crd = 'apiVersion: example.com/v1\nkind: ConfigMap\nmetadata:\n  name: kagent-enterprise-config\n  namespace: kagent\nspec:\n  foo: bar\n';
  assert.deepEqual(lintString(crd).findings, []);
  const core = crd.replace('example.com/v1', 'v1').replace('spec:\n  foo: bar\n', 'data:\n  OTHER: x\n');
  assert.deepEqual(lintString(core).findings.map((f) => f.rule), ['token-review-required']);
});

test('kustomize configMapGenerator: lint checks kagent-enterprise-config-<hash> as the configured ConfigMap and says kustomize generated it', async () => {
  // the real kubectl kustomize: it appends a 10-character hash and rewrites the controller's envFrom to it
  const hashed = spawnSync('kubectl', ['kustomize', join(ROOT, 'test/fixtures/lint/kustomize-generator/hashed')], { encoding: 'utf8' });
  assert.equal(hashed.status, 0, hashed.stderr);
  const name = /name: (kagent-enterprise-config-[a-z0-9]{10})\n/.exec(hashed.stdout)?.[1];
  assert.ok(name && hashed.stdout.includes(`configMapRef:\n            name: ${name}`), hashed.stdout);
  const r = await runCli(['--external-issuer', '--format', 'json', '-'], { stdin: hashed.stdout });
  assert.equal(r.code, 1, r.stdout.toString() + r.stderr.toString());
  const out = JSON.parse(r.stdout.toString());
  assert.deepEqual(out.violations.map((v: { rule: string; name: string; path: string; line: number }) => [v.rule, v.name, v.path, v.line]), [['token-review-required', name, 'data', 2]]);
  assert.equal(
    out.violations[0].message,
    `[token-review-required] ConfigMap kagent/${name} (generated by kustomize from kagent-enterprise-config): data.K8S_TOKEN_REVIEW is not set. The cluster's service-account issuer is external, so kagent cannot verify agent tokens locally and agent callbacks fail with 401. Fix: set K8S_TOKEN_REVIEW: "true" in data (in the configMapGenerator of kagent-enterprise-config: the literal K8S_TOKEN_REVIEW=true).`,
  );
  // with disableNameSuffixHash the name is the configured one, checked as always
  const unhashed = spawnSync('kubectl', ['kustomize', join(ROOT, 'test/fixtures/lint/kustomize-generator/unhashed')], { encoding: 'utf8' });
  assert.equal(unhashed.status, 0, unhashed.stderr);
  const u = await runCli(['--external-issuer', '--format', 'json', '-'], { stdin: unhashed.stdout });
  assert.deepEqual(JSON.parse(u.stdout.toString()).violations.map((v: { name: string; message: string }) => [v.name, v.message.includes('generated by kustomize')]), [['kagent-enterprise-config', false]]);
  // fixed in the generator: passes
  const fixed = hashed.stdout.replace('SOME_OTHER: "1"', 'K8S_TOKEN_REVIEW: "true"\n  SOME_OTHER: "1"');
  assert.equal((await runCli(['--external-issuer', '-'], { stdin: fixed })).code, 0);
});

test('kustomize-hashed names: only <configured name>-<10 characters of kustomize\'s hash alphabet> count, and every token rule applies to them', () => {
  const named = (n: string, data = '  OTHER: x\n') => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${n}\n  namespace: kagent\ndata:\n${data}`;
  for (const n of ['kagent-enterprise-config-9k6bh8fd92', 'kagent-enterprise-config-2456789bcd', 'kagent-enterprise-config-fghkmt2222'])
    assert.deepEqual(lintString(named(n)).findings.map((f) => f.rule), ['token-review-required'], n);
  // not kustomize's: digits 0, 1, 3 and letters a, e are mapped away; other lengths. Not checked as the configured
  // name (no error), but a name that holds it (a prefix or suffix) gets the warning that the webhook does not watch it
  for (const n of ['kagent-enterprise-config-0123456789', 'kagent-enterprise-config-9k6bh8fd9', 'kagent-enterprise-config-9k6bh8fd92x', 'kagent-enterprise-configx9k6bh8fd92', 'kagent-enterprise-config-abcdef2222']) {
    const f = lintString(named(n)).findings;
    assert.deepEqual(f.map((x) => [x.rule, x.severity]), [['token-review-required', 'warning']], n);
    assert.match(f[0].message, /tokenReview\.configMapNames does not list this name/, n);
  }
  // another base name: nothing
  assert.deepEqual(lintString(named('kagent-config-9k6bh8fd92')).findings, []);
  // a kustomize namePrefix on a generated one (prod-kagent-enterprise-config-<hash>): a warning that checks it as the
  // configured one and says to list the name, with the hash turned off
  const prod = lintString(named('prod-kagent-enterprise-config-9k6bh8fd92')).findings;
  assert.deepEqual(prod.map((f) => [f.rule, f.severity, f.path]), [['token-review-required', 'warning', 'data']]);
  assert.match(prod[0].message, /^\[token-review-required\] ConfigMap kagent\/prod-kagent-enterprise-config-9k6bh8fd92 \(kagent-enterprise-config with a kustomize namePrefix or nameSuffix\?\): data\.K8S_TOKEN_REVIEW is not set\. .*Fix: set K8S_TOKEN_REVIEW: "true" in data; and add prod-kagent-enterprise-config to tokenReview\.configMapNames in the webhook config \(with generatorOptions: disableNameSuffixHash: true/);
  // right value: still a warning that the webhook does not check it
  assert.match(lintString(named('prod-kagent-enterprise-config', '  K8S_TOKEN_REVIEW: "true"\n')).findings[0].message, /its name is kagent-enterprise-config with a prefix or suffix .*Fix: add prod-kagent-enterprise-config to tokenReview\.configMapNames in the webhook config\.$/);
  const value = lintString(named('kagent-enterprise-config-9k6bh8fd92', '  K8S_TOKEN_REVIEW: "yes"\n')).findings;
  assert.equal(value.length, 1);
  assert.match(value[0].message, /^\[token-review-value\] ConfigMap kagent\/kagent-enterprise-config-9k6bh8fd92 \(generated by kustomize from kagent-enterprise-config\): data\.K8S_TOKEN_REVIEW is "yes"\./);
  assert.deepEqual(lintString(named('kagent-enterprise-config-9k6bh8fd92', '  K8S_TOKEN_REVIEW: "true"\n')).findings, []);
});

test('text output: control characters and U+2028/2029 from names print escaped, so a name cannot recolour the output or forge a finding line', async () => {
  const { formatText, printable } = await import('../webhook/lint-format.ts');
  assert.equal(printable('a\x1b[31mred\r\nx\t\x00\x7f\x85\x9b\u2028\u2029é'), 'a\\u001b[31mred\\r\\nx\\t\\u0000\\u007f\\u0085\\u009b\\u2028\\u2029é');
  assert.equal(printable('plain C:\\dir\\a.yaml'), 'plain C:\\dir\\a.yaml', 'backslashes as they are');
  const text = formatText({
    findings: [
      {
        rule: 'dedicated-service-account',
        severity: 'error',
        message: '[dedicated-service-account] Pod team-a/a\x1b[31mred\nsrc/x.yaml:1:1: error [fake] all good: spec.serviceAccountName is not set',
        file: 'in\u2028put.yaml',
        line: 7,
        column: 1,
        kind: 'Pod',
        namespace: 'team-a',
        name: 'a\x1b[31mred\nsrc/x.yaml:1:1: error [fake] all good',
        path: 'spec.serviceAccountName',
      },
    ],
    files: [{ file: 'in\u2028put.yaml', documents: 1 }],
    documents: 1,
    strict: false,
  });
  assert.equal(
    text,
    'in\\u2028put.yaml:7:1: error [dedicated-service-account] Pod team-a/a\\u001b[31mred\\nsrc/x.yaml:1:1: error [fake] all good: spec.serviceAccountName is not set\n1 error, 0 warnings (1 document in 1 file)\n',
  );
  // through the CLI: a Pod whose name carries ESC and a newline is one finding line, no ESC on stdout
  const r = await runCli(['-'], { stdin: 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: "a\\e[31mred\\nsrc/x.yaml:1:1: error [fake] all good"\n  namespace: team-a\n  labels: {kagenti.io/type: agent}\nspec:\n  containers: [{name: agent, image: x}]\n' });
  const out = String(r.stdout);
  assert.equal(r.code, 1, r.stderr);
  assert.doesNotMatch(out, /\x1b/);
  assert.equal(out.trimEnd().split('\n').length, 2, out);
  assert.match(out, /Pod team-a\/a\\u001b\[31mred\\nsrc\/x\.yaml:1:1: error \[fake\] all good: /);
});

test('input errors on stderr (lint) and usage errors (inject) quote the input escaped: a control character in a separator line or a file name cannot act on the terminal', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kw-esc-'));
  try {
    writeFileSync(join(dir, 'sep.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n--- \x1b[31mFAKE\x1b[0m\n');
    writeFileSync(join(dir, 'bad\x1b[32mname.yaml'), 'a: [\n');
    const r = await runCli([dir, '--no-color']);
    assert.equal(r.code, 2, String(r.stderr));
    const err = String(r.stderr);
    assert.doesNotMatch(err, /\x1b/);
    assert.match(err, /sep\.yaml:4:5: error: kubectl refuses the file: "invalid Yaml document separator: \\u001b\[31mFAKE\\u001b\[0m"/);
    assert.match(err, /bad\\u001b\[32mname\.yaml:\d+:\d+: error: /);
    // inject prints its usage error (which quotes the separator line) escaped too
    const { runCli: runBin } = await import('./helpers.ts');
    const inj = runBin(['inject', '-f', join(dir, 'sep.yaml')]);
    assert.equal(inj.code, 2);
    assert.doesNotMatch(inj.stderr, /\x1b/);
    assert.match(inj.stderr, /\\u001b\[31mFAKE/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** An agent workload manifest: `apiVersion`, `kind`, the template at spec.template (or spec.jobTemplate.spec.template). */
function agentWorkload(apiVersion: string, kind: string, name: string, opts: { cron?: boolean; port?: number; labels?: string } = {}): string {
  const tpl = [
    `    metadata:`,
    `      labels: {app: ${name}, kagenti.io/type: agent${opts.labels ?? ''}}`,
    `    spec:`,
    `      serviceAccountName: ${name}`,
    `      hostNetwork: true`,
    `      containers: [{name: a, image: i${opts.port ? `, ports: [{containerPort: ${opts.port}}]` : ''}}]`,
  ];
  const template = opts.cron ? ['  jobTemplate:', '    spec:', '      template:', ...tpl.map((l) => `    ${l}`)] : ['  template:', ...tpl];
  return [`apiVersion: ${apiVersion}`, `kind: ${kind}`, 'metadata:', `  name: ${name}`, '  namespace: team', 'spec:', ...template, ''].join('\n');
}

test('lint: a ReplicationController (core v1) is checked as the other workloads are: its pods are denied at admission for the same things', () => {
  const l = lintString(agentWorkload('v1', 'ReplicationController', 'rc', { port: 15123 }));
  assert.deepEqual(l.findings.map((f) => [f.rule, f.path]).sort(), [
    ['host-network', 'spec.template.spec.hostNetwork'],
    ['port-conflict', 'spec.template.spec.containers.0.ports.0.containerPort'],
  ]);
  assert.match(l.findings.find((f) => f.rule === 'port-conflict')!.message, /^\[port-conflict\] ReplicationController team\/rc: /);
});

test('lint: an agent template in a kind lint does not know (an Argo Rollout), or in another group\'s Deployment, StatefulSet, CronJob or Pod, is one unchecked-template warning, not checked as the known kind', () => {
  for (const [apiVersion, kind, cron] of [
    ['argoproj.io/v1alpha1', 'Rollout', false],
    ['example.com/v1', 'Deployment', false],
    ['apps.kruise.io/v1beta1', 'StatefulSet', false],
    ['apps.kruise.io/v1alpha1', 'DaemonSet', false],
    ['example.com/v1', 'CronJob', true],
    ['example.com/v1', 'ReplicationController', false],
    ['apps/v1', 'ReplicationController', false],
    ['batch/v1', 'Deployment', false],
  ] as const) {
    const l = lintString(agentWorkload(apiVersion, kind, 'w', { cron }));
    const what = `${apiVersion} ${kind}`;
    // hostNetwork would be denied in an apps/v1 Deployment's template: here it is not read
    assert.deepEqual(l.findings.map((f) => [f.rule, f.severity, f.path]), [['unchecked-template', 'warning', `${cron ? 'spec.jobTemplate.spec.template' : 'spec.template'}.metadata.labels.kagenti.io/type`]], what);
    const m = l.findings[0]!.message;
    assert.match(m, new RegExp(`^\\[unchecked-template\\] ${kind} team/w: its pod template is labelled kagenti\\.io/type: agent \\(`), what);
    assert.match(m, /the webhook will inject AuthBridge into the pods its controller creates.*at admission; but .*: this template was not checked or injected offline\. Fix: check its pods once they are created \(kubectl get pod -n team -l kagenti\.io\/type=agent,app=w -o yaml \| kagenti-webhook lint -/, what);
    assert.match(m, kind === 'Rollout' ? /argoproj\.io\/v1alpha1 Rollout is not a kind lint knows/ : new RegExp(`is a custom resource of group ${apiVersion.split('/')[0]!.replace(/\./g, '\\.')}, not the`), what);
    // at the label's line
    assert.equal(l.findings[0]!.line, cron ? 11 : 9, what);
  }
  // another group's Pod (no template): nothing at all, where a core Pod with hostNetwork is denied
  const pod = (apiVersion: string) => `apiVersion: ${apiVersion}\nkind: Pod\nmetadata: {name: p, namespace: team, labels: {kagenti.io/type: agent}}\nspec:\n  serviceAccountName: p\n  hostNetwork: true\n  containers: [{name: a, image: i}]\n`;
  assert.deepEqual(lintString(pod('example.com/v1')).findings.map((f) => f.rule), []);
  assert.deepEqual(lintString(pod('v1')).findings.map((f) => f.rule), ['host-network']);
  // the known kinds in their own groups (any version) are checked as before
  for (const [apiVersion, kind] of [['apps/v1', 'Deployment'], ['apps/v1beta2', 'StatefulSet'], ['batch/v1', 'Job']])
    assert.deepEqual(lintString(agentWorkload(apiVersion, kind, 'w')).findings.map((f) => f.rule), ['host-network'], `${apiVersion} ${kind}`);
  // not asking for injection: opted out, not an agent, tools off, a namespace the webhook never sees
  assert.deepEqual(lintString(agentWorkload('argoproj.io/v1alpha1', 'Rollout', 'w', { labels: ', kagenti.io/inject: disabled' })).findings, []);
  assert.deepEqual(lintString(agentWorkload('argoproj.io/v1alpha1', 'Rollout', 'w').replace('kagenti.io/type: agent', 'kagenti.io/type: tool')).findings, []);
  assert.deepEqual(lintString(agentWorkload('argoproj.io/v1alpha1', 'Rollout', 'w').replace('namespace: team', 'namespace: kube-system')).findings, []);
});

// A tool (kagenti.io/type: tool) while featureGates.injectTools is off: no agent, never an error, but warned as
// /validate warns it (rules.ts checkToolSharesAgent) when an agent of the input is on its ServiceAccount.
const TOOL = (name: string, sa: string | null, ns = 'agents') => AGENT(name, sa, ns).replace('kagenti.io/type: agent', 'kagenti.io/type: tool');
const toolWarning = (kind: string, name: string, path: string, agent: string, more = '') =>
  `[unique-service-account] ${kind} agents/${name}: ServiceAccount "shared" (${path}) is the identity of agent ${agent}${more}. ` +
  'This tool (kagenti.io/type: tool) is not denied, as it is no agent while featureGates.injectTools is off, but a SPIRE ' +
  "registration whose pod selector includes tool would give it that agent's SPIFFE ID spiffe://cluster.local/ns/agents/sa/shared. " +
  'Fix: give the tool its own ServiceAccount.';

function lintWith(text: string, config: Record<string, unknown>, namespace?: string): Linter {
  const l = new Linter({ config: configFromObject(config), issuer: { classification: 'external' }, namespace });
  l.lintText('m.yaml', text);
  return l;
}

test('unique-service-account: a tool on an agent\'s ServiceAccount is warned at its serviceAccountName, whether the agent comes before or after it', () => {
  const at = (l: Linter) => l.findings.map((f) => [f.rule, f.severity, `${f.kind}/${f.name}`, f.path, f.line, f.column]);
  const message = toolWarning('Deployment', 'mcp', 'spec.template.spec.serviceAccountName', 'Deployment/weather');
  // the tool first: its warning is made once the agent has been read, at the tool's document
  let l = lintString(`${TOOL('mcp', 'shared')}---\n${AGENT('weather', 'shared')}`);
  assert.deepEqual(at(l), [['unique-service-account', 'warning', 'Deployment/mcp', 'spec.template.spec.serviceAccountName', 12, 7]]);
  assert.equal(l.findings[0]!.message, message);
  assert.equal(l.exitCode(false), 0);
  assert.equal(l.exitCode(true), 1);
  // the tool after
  l = lintString(`${AGENT('weather', 'shared')}---\n${TOOL('mcp', 'shared')}`);
  assert.deepEqual(at(l), [['unique-service-account', 'warning', 'Deployment/mcp', 'spec.template.spec.serviceAccountName', 28, 7]]);
  assert.equal(l.findings[0]!.message, message);
  // the first agent in input order is named, the others counted, wherever the tool is
  const two = [AGENT('weather', 'shared'), AGENT('news', 'shared')];
  for (const docs of [[TOOL('mcp', 'shared'), ...two], [two[0]!, TOOL('mcp', 'shared'), two[1]!], [...two, TOOL('mcp', 'shared')]]) {
    const tools = lintString(docs.join('---\n')).findings.filter((f) => f.name === 'mcp');
    assert.deepEqual(tools.map((f) => f.message), [toolWarning('Deployment', 'mcp', 'spec.template.spec.serviceAccountName', 'Deployment/weather', ' and 1 more')]);
  }
  // a tool Pod, at spec.serviceAccountName; the deprecated serviceAccount field where that is the one it sets
  const pod = `apiVersion: v1\nkind: Pod\nmetadata: {name: mcp, namespace: agents, labels: {kagenti.io/type: tool}}\nspec:\n  serviceAccount: shared\n  containers: [{name: t, image: x}]\n`;
  l = lintString(`${pod}---\n${AGENT('weather', 'shared')}`);
  assert.deepEqual(at(l), [['unique-service-account', 'warning', 'Pod/mcp', 'spec.serviceAccount', 5, 3]]);
  assert.equal(l.findings[0]!.message, toolWarning('Pod', 'mcp', 'spec.serviceAccount', 'Deployment/weather'));
  // a JSON stream: at the key whichever comes first (positioned when the tool is read, or from its document kept)
  const json = (doc: string) => JSON.stringify(parse(doc), null, 2);
  const key = (text: string) => {
    const lines = text.split('\n');
    const i = lines.findIndex((x, n) => x.includes('"serviceAccountName"') && n > lines.findIndex((y) => y.includes('"name": "mcp"')));
    return [i + 1, lines[i]!.indexOf('"') + 1];
  };
  for (const text of [`${json(TOOL('mcp', 'shared'))}\n${json(AGENT('weather', 'shared'))}`, `${json(AGENT('weather', 'shared'))}\n${json(TOOL('mcp', 'shared'))}`]) {
    l = lintString(text);
    assert.deepEqual(l.findings.map((f) => [f.name, f.line, f.column, f.message]), [['mcp', ...key(text), message]]);
  }
  // in a List, at the item's field
  const item = (doc: string) => doc.replace(/^(?=.)/gm, '  ').replace(/^  apiVersion/, '- apiVersion');
  l = lintString(`apiVersion: v1\nkind: List\nitems:\n${item(TOOL('mcp', 'shared'))}${item(AGENT('weather', 'shared'))}`);
  assert.deepEqual(at(l), [['unique-service-account', 'warning', 'Deployment/mcp', 'items.0.spec.template.spec.serviceAccountName', 15, 9]]);
});

test('unique-service-account: no tool warning with tools on (then it is an agent), the rule off, its own ServiceAccount, "default" that dedicated-service-account denies, or a namespace the webhook never sees', () => {
  const rules = (l: Linter) => l.findings.map((f) => [f.rule, f.severity, f.name]);
  // featureGates.injectTools on: the tool is an agent, and the second of the two in input order is denied
  for (const [docs, second] of [[[TOOL('mcp', 'shared'), AGENT('weather', 'shared')], 'weather'], [[AGENT('weather', 'shared'), TOOL('mcp', 'shared')], 'mcp']] as const) {
    const l = lintWith(docs.join('---\n'), { featureGates: { injectTools: true } });
    assert.deepEqual(rules(l), [['unique-service-account', 'error', second]]);
    assert.match(l.findings[0]!.message, /is already the identity of agent/);
  }
  assert.deepEqual(rules(lintWith(`${TOOL('mcp', 'shared')}---\n${AGENT('weather', 'shared')}`, { policies: { 'unique-service-account': 'off' } })), []);
  // the rule at warn: the tool's warning is the same
  assert.deepEqual(rules(lintWith(`${TOOL('mcp', 'shared')}---\n${AGENT('weather', 'shared')}`, { policies: { 'unique-service-account': 'warn' } })), [['unique-service-account', 'warning', 'mcp']]);
  assert.deepEqual(rules(lintString(`${TOOL('mcp', 'mcp-sa')}---\n${AGENT('weather', 'shared')}`)), []);
  // tools alone share nothing; nor does a tool with the agent in another namespace
  assert.deepEqual(rules(lintString(`${TOOL('mcp', 'shared')}---\n${TOOL('other', 'shared')}`)), []);
  assert.deepEqual(rules(lintString(`${TOOL('mcp', 'shared', 'tools')}---\n${AGENT('weather', 'shared')}`)), []);
  // on "default", the agent's dedicated-service-account error has the fix that ends the sharing too; at warn, both
  assert.deepEqual(rules(lintString(`${TOOL('mcp', null)}---\n${AGENT('weather', null)}`)), [['dedicated-service-account', 'error', 'weather']]);
  assert.deepEqual(rules(lintString(`${TOOL('mcp', null)}---\n${AGENT('weather', null)}`, { policies: { 'dedicated-service-account': 'warn' } })), [
    ['unique-service-account', 'warning', 'mcp'],
    ['dedicated-service-account', 'warning', 'weather'],
  ]);
  // kube-system: the webhook never sees it, nor lint's unique-service-account (the agent gets its unwatched-namespace warning)
  assert.deepEqual(rules(lintString(`${TOOL('mcp', 'shared', 'kube-system')}---\n${AGENT('weather', 'shared', 'kube-system')}`)), [['unwatched-namespace', 'warning', 'weather']]);
});

test('unique-service-account: a tool in a dump is warned once, at its owner when the owner is in the input, in any order', () => {
  const tpl = { metadata: { labels: { 'kagenti.io/type': 'tool', app: 'mcp' } }, spec: { serviceAccountName: 'shared', containers: [{ name: 't', image: 'x' }] } };
  const owned = (apiVersion: string, kind: string, name: string) => ({ ownerReferences: [{ apiVersion, kind, name, uid: 'u', controller: true }] });
  const dep = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'mcp', namespace: 'agents' }, spec: { selector: { matchLabels: { app: 'mcp' } }, template: tpl } };
  const rs = { apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name: 'mcp-5d4f', namespace: 'agents', labels: { 'pod-template-hash': '5d4f' }, ...owned('apps/v1', 'Deployment', 'mcp') }, spec: { template: tpl } };
  const pod = (i: number) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name: `mcp-5d4f-x${i}`, namespace: 'agents', labels: tpl.metadata.labels, ...owned('apps/v1', 'ReplicaSet', 'mcp-5d4f') }, spec: tpl.spec });
  const agent = { ...dep, metadata: { name: 'weather', namespace: 'agents' }, spec: { ...dep.spec, template: { ...tpl, metadata: { labels: { 'kagenti.io/type': 'agent' } } } } };
  const warned = (items: unknown[]) =>
    lintString(JSON.stringify({ apiVersion: 'v1', kind: 'List', items })).findings.map((f) => `${f.rule} ${f.severity} ${f.kind}/${f.name}`);
  for (const items of [[agent, dep, rs, pod(1), pod(2)], [pod(1), pod(2), rs, dep, agent], [pod(1), agent, rs, pod(2), dep]])
    assert.deepEqual(warned(items), ['unique-service-account warning Deployment/mcp'], items.map((i) => i.kind).join(','));
  // as separate documents too, the ReplicaSet counting for the pods after it
  assert.deepEqual(lintString([rs, pod(1), pod(2), dep, agent].map((o) => JSON.stringify(o)).join('\n')).findings.map((f) => `${f.kind}/${f.name}`), ['Deployment/mcp']);
  // without the Deployment in the input: at the first of its objects, named as it is
  assert.deepEqual(warned([agent, rs, pod(1), pod(2)]), ['unique-service-account warning ReplicaSet/mcp-5d4f']);
  const pods = lintString(JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [pod(1), pod(2), agent] })).findings;
  assert.deepEqual(pods.map((f) => `${f.kind}/${f.name} ${f.path}`), ['Pod/mcp-5d4f-x1 items.0.spec.serviceAccountName']);
  assert.match(pods[0]!.message, /^\[unique-service-account\] Pod agents\/mcp-5d4f-x1: ServiceAccount "shared" \(spec\.serviceAccountName\) is the identity of agent Deployment\/weather\. This tool /);
});

test('lint: a tool sharing an agent\'s ServiceAccount in text and json, with -n and without it (objects without a namespace compared within their directory)', async () => {
  const noNs = (doc: string) => doc.replace('  namespace: agents\n', '');
  const dir = tmp();
  mkdirSync(join(dir, 'team-a'));
  mkdirSync(join(dir, 'team-b'));
  writeFileSync(join(dir, 'team-a', 'agent.yaml'), noNs(AGENT('weather', 'shared')));
  writeFileSync(join(dir, 'team-b', 'tool.yaml'), noNs(TOOL('mcp', 'shared')));
  // without -n, two directories may go to two namespaces: not compared
  let r = await runCli([dir, '--external-issuer']);
  assert.equal(r.code, 0, String(r.stdout));
  assert.match(String(r.stdout), /^no problems/);
  // with -n, one namespace: the tool (read after the agent here) is warned; a warning fails only with --strict
  r = await runCli([dir, '--external-issuer', '-n', 'team']);
  assert.equal(r.code, 0, String(r.stdout));
  const line =
    `${join(dir, 'team-b', 'tool.yaml')}:11:7: warning [unique-service-account] Deployment team/mcp: ServiceAccount "shared" ` +
    '(spec.template.spec.serviceAccountName) is the identity of agent Deployment/weather. This tool (kagenti.io/type: tool) is not denied, ' +
    "as it is no agent while featureGates.injectTools is off, but a SPIRE registration whose pod selector includes tool would give it that agent's " +
    'SPIFFE ID spiffe://cluster.local/ns/team/sa/shared. Fix: give the tool its own ServiceAccount.';
  assert.equal(String(r.stdout), `${line}\n0 errors, 1 warning (2 documents in 2 files)\n`);
  assert.equal((await runCli([dir, '--external-issuer', '-n', 'team', '--strict'])).code, 1);
  // the tool before the agent, in one directory (one scope without -n), as json
  writeFileSync(join(dir, 'team-a', 'a-tool.yaml'), noNs(TOOL('mcp', 'shared')));
  r = await runCli([join(dir, 'team-a'), '--external-issuer', '-o', 'json']);
  assert.equal(r.code, 0, String(r.stdout));
  const json = JSON.parse(String(r.stdout));
  assert.deepEqual(
    json.violations.map((v: Record<string, unknown>) => [v.rule, v.severity, v.file, v.line, v.column, v.kind, v.namespace, v.name, v.path]),
    [['unique-service-account', 'warning', join(dir, 'team-a', 'a-tool.yaml'), 11, 7, 'Deployment', 'default', 'mcp', 'spec.template.spec.serviceAccountName']],
  );
  assert.match(json.violations[0].message, /^\[unique-service-account\] Deployment default\/mcp: ServiceAccount "shared" \(spec\.template\.spec\.serviceAccountName\) is the identity of agent Deployment\/weather\. /);
});

test('unique-service-account: past 64 tools on one ServiceAccount, a tool is compared with the agents read before it only (as an agent past 64 is)', () => {
  const tools = Array.from({ length: 65 }, (_, i) => TOOL(`mcp-${i}`, 'shared'));
  const warned = (docs: string[]) => lintString(docs.join('---\n')).findings.filter((f) => f.rule === 'unique-service-account' && f.severity === 'warning').length;
  assert.equal(warned([AGENT('weather', 'shared'), ...tools]), 65);
  assert.equal(warned([...tools, AGENT('weather', 'shared')]), 64);
});

test('lint: an agent template nested deeper (a LeaderWorkerSet\'s leader or worker template, a JobSet\'s replicated Job, a RayCluster\'s, a RayService\'s or a RayJob\'s head or worker group, a KEDA ScaledJob\'s jobTargetRef) is an unchecked-template warning at its own path', () => {
  const tpl = (indent: string, labels = '{kagenti.io/type: agent, app: w}') =>
    `${indent}metadata: {labels: ${labels}}\n${indent}spec:\n${indent}  serviceAccountName: w\n${indent}  hostNetwork: true\n${indent}  containers: [{name: a, image: i}]\n`;
  const cases: [string, string, string, string][] = [
    ['leaderworkerset.x-k8s.io/v1', 'LeaderWorkerSet', `spec:\n  leaderWorkerTemplate:\n    leaderTemplate:\n${tpl('      ')}`, 'spec.leaderWorkerTemplate.leaderTemplate'],
    // the worker template asks for injection, the leader's does not
    [
      'leaderworkerset.x-k8s.io/v1',
      'LeaderWorkerSet',
      `spec:\n  leaderWorkerTemplate:\n    leaderTemplate:\n${tpl('      ', '{app: w}')}    workerTemplate:\n${tpl('      ')}`,
      'spec.leaderWorkerTemplate.workerTemplate',
    ],
    [
      'jobset.x-k8s.io/v1alpha2',
      'JobSet',
      `spec:\n  replicatedJobs:\n  - name: driver\n    template:\n      spec:\n        template:\n${tpl('          ', '{app: w}')}  - name: workers\n    template:\n      spec:\n        template:\n${tpl('          ')}`,
      'spec.replicatedJobs[1].template.spec.template',
    ],
    ['ray.io/v1', 'RayCluster', `spec:\n  headGroupSpec:\n    template:\n${tpl('      ')}`, 'spec.headGroupSpec.template'],
    ['ray.io/v1', 'RayCluster', `spec:\n  workerGroupSpecs:\n  - groupName: g\n    template:\n${tpl('      ')}`, 'spec.workerGroupSpecs[0].template'],
    // the RayCluster a RayService or a RayJob creates, in its spec
    ['ray.io/v1', 'RayService', `spec:\n  rayClusterConfig:\n    headGroupSpec:\n      template:\n${tpl('        ')}`, 'spec.rayClusterConfig.headGroupSpec.template'],
    [
      'ray.io/v1',
      'RayService',
      `spec:\n  rayClusterConfig:\n    headGroupSpec:\n      template:\n${tpl('        ', '{app: w}')}    workerGroupSpecs:\n    - groupName: g\n      template:\n${tpl('        ')}`,
      'spec.rayClusterConfig.workerGroupSpecs[0].template',
    ],
    ['ray.io/v1', 'RayJob', `spec:\n  rayClusterSpec:\n    headGroupSpec:\n      template:\n${tpl('        ')}`, 'spec.rayClusterSpec.headGroupSpec.template'],
    ['ray.io/v1', 'RayJob', `spec:\n  rayClusterSpec:\n    workerGroupSpecs:\n    - groupName: g\n      template:\n${tpl('        ')}`, 'spec.rayClusterSpec.workerGroupSpecs[0].template'],
    // the Job spec a KEDA ScaledJob makes its Jobs from
    ['keda.sh/v1alpha1', 'ScaledJob', `spec:\n  jobTargetRef:\n    template:\n${tpl('      ')}`, 'spec.jobTargetRef.template'],
  ];
  for (const [apiVersion, kind, spec, at] of cases) {
    const l = lintString(`apiVersion: ${apiVersion}\nkind: ${kind}\nmetadata: {name: w, namespace: team}\n${spec}`);
    const dotted = at.replace(/\[([0-9]+)\]/g, '.$1');
    assert.deepEqual(l.findings.map((f) => [f.rule, f.severity, f.path]), [['unchecked-template', 'warning', `${dotted}.metadata.labels.kagenti.io/type`]], at);
    assert.ok(l.findings[0]!.message.startsWith(`[unchecked-template] ${kind} team/w: its pod template is labelled kagenti.io/type: agent (${at}.metadata.labels)`), l.findings[0]!.message);
    // at the template's labels line
    const lines = `apiVersion: x\nkind: x\nmetadata: x\n${spec}`.split('\n');
    const expected = lines.findIndex((line) => line.includes('kagenti.io/type: agent')) + 1;
    assert.equal(l.findings[0]!.line, expected, at);
  }
});

test('stale-injection: lint warns at the record of an opted-out template that still holds the sidecars `inject` wrote; --strict fails on it; `inject` on it takes them out', async () => {
  const dir = tmp();
  const original = `apiVersion: apps/v1
kind: Deployment
metadata: {name: a, namespace: team}
spec:
  selector: {matchLabels: {app: a}}
  template:
    metadata:
      labels: {app: a, kagenti.io/type: agent}
    spec:
      serviceAccountName: a
      containers:
        - {name: agent, image: example.com/agent:1}
`;
  const injected = injectStream(original, defaultConfig());
  assert.equal(injected.injected, 1);
  const optedOut = injected.output.replace('kagenti.io/type: agent\n', 'kagenti.io/type: agent\n        kagenti.io/inject: disabled\n');
  assert.notEqual(optedOut, injected.output);
  const l = lintString(optedOut);
  assert.deepEqual(l.findings.map((f) => [f.rule, f.severity, f.path]), [['stale-injection', 'warning', 'spec.template.metadata.annotations.kagenti.io/authbridge-status']]);
  const line = optedOut.split('\n').findIndex((t) => t.includes('kagenti.io/authbridge-status:')) + 1;
  assert.deepEqual([l.findings[0].line, l.findings[0].column], [line, 9]);
  writeFileSync(join(dir, 'opted-out.yaml'), optedOut);
  assert.equal((await runCli([join(dir, 'opted-out.yaml')])).code, 0);
  const strict = await runCli(['--strict', join(dir, 'opted-out.yaml')]);
  assert.equal(strict.code, 1);
  assert.match(strict.stdout.toString(), /warning \[stale-injection\] Deployment team\/a: /);
  // the fix the message gives: inject again takes the pieces and the record out, and lint is quiet
  // in a namespace the webhook never sees, nothing is injected either way: no stale-injection (nor an unwatched-namespace warning for an opted-out template)
  assert.deepEqual(lintString(optedOut.replace('namespace: team', 'namespace: kube-system')).findings, []);
  const fixed = injectStream(optedOut, defaultConfig());
  assert.deepEqual([fixed.denials, fixed.warnings], [[], []]);
  assert.doesNotMatch(fixed.output, /authbridge-proxy|spiffe-helper|kagenti\.io\/authbridge-status/);
  assert.deepEqual(lintString(fixed.output).findings, []);
});
