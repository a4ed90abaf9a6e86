// Helm release records at admission: decode helm.sh/release.v1 Secrets and lint the manifest.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { configFromObject, defaultConfig } from '../webhook/config.ts';
import { MAX_RELEASE_JSON, checkHelmRelease, encodeReleaseForSecret, isHelmRelease } from '../webhook/helm-release.ts';
import { Linter } from '../webhook/lint.ts';
import { checkInjection } from '../webhook/rules.ts';
import { parseDocument } from 'yaml';
import { ROOT } from './fixtures/lint/cli.ts';

const KAGENT = readFileSync(`${ROOT}test/fixtures/lint/kagent-render.yaml`, 'utf8');
const AGENTS = readFileSync(`${ROOT}test/fixtures/lint/agents-render.yaml`, 'utf8');
const ctx = { config: defaultConfig(), issuer: { classification: 'external' as const, provider: 'EKS', issuer: 'https://oidc.eks.us-east-1.amazonaws.com/id/0123456789abcdef0123456789abcdef' } };

function record(manifest: unknown, opts: { status?: string; name?: string; ns?: string; release?: string } = {}) {
  const name = opts.name ?? 'kagent';
  const ns = opts.ns ?? 'kagent';
  const status = opts.status ?? 'pending-upgrade';
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'helm.sh/release.v1',
    metadata: { name: `sh.helm.release.v1.${name}.v2`, namespace: ns, labels: { owner: 'helm', name, status, version: '2' } },
    data: { release: opts.release ?? encodeReleaseForSecret({ name, namespace: ns, version: 2, info: { status }, manifest }) },
  };
}

test('a pending upgrade whose manifest has a boolean K8S_TOKEN_REVIEW is denied, naming release, template and rule', () => {
  const r = checkHelmRelease(record(KAGENT), ctx);
  assert.equal(r.checked, true);
  assert.equal(r.releaseName, 'kagent');
  assert.equal(r.namespace, 'kagent');
  assert.equal(r.violations.length, 1);
  const v = r.violations[0];
  assert.equal(v.rule, 'token-review-value');
  assert.equal(v.severity, 'error');
  assert.equal(v.source, 'kagent/templates/enterprise-config.yaml');
  assert.equal(v.namespace, 'kagent'); // from the release, the manifest has no namespace
  assert.equal(v.line, 25);
  assert.match(
    v.message,
    /^\[token-review-value\] ConfigMap kagent\/kagent-enterprise-config \(Helm release kagent\/kagent, template kagent\/templates\/enterprise-config\.yaml\): data\.K8S_TOKEN_REVIEW is the YAML boolean true/,
  );
  assert.deepEqual(r.warnings, []);
});

test('cross-document rules apply within the release; pending-install is checked too', () => {
  const r = checkHelmRelease(record(AGENTS, { name: 'agents', ns: 'agents', status: 'pending-install' }), ctx);
  assert.deepEqual(
    r.violations.map((v) => [v.rule, v.kind, v.name, v.source]),
    [
      ['unique-service-account', 'StatefulSet', 'summarizer-agent', 'agents/templates/summarizer.yaml'],
      ['dedicated-service-account', 'Deployment', 'triage-agent', 'agents/templates/triage.yaml'],
      ['dedicated-service-account', 'CronJob', 'nightly-report-agent', 'agents/templates/nightly.yaml'],
      // a warning, not a denial: the CronJob's pods would get ordinary sidecars and never complete
      ['sidecars-block-completion', 'CronJob', 'nightly-report-agent', 'agents/templates/nightly.yaml'],
    ],
  );
  assert.equal(r.violations[3].severity, 'warning');
  assert.match(r.violations[0].message, /Deployment\/planner-agent defined at manifest line 34\./);
});

test('records that are not pending, or not release records, are not checked', () => {
  for (const status of ['deployed', 'superseded', 'failed', 'uninstalling']) {
    const r = checkHelmRelease(record(KAGENT, { status }), ctx);
    assert.equal(r.checked, false);
    assert.deepEqual(r.violations, []);
    assert.match(r.skipped!, /not pending-install, pending-upgrade or pending-rollback/);
  }
  const plain = { apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata: { name: 'x' }, data: { release: 'eA==' } };
  assert.equal(isHelmRelease(plain), false);
  assert.equal(checkHelmRelease(plain, ctx).checked, false);
  assert.equal(checkHelmRelease(null, ctx).checked, false);
});

test('undecodable records are allowed with a warning, never an exception', () => {
  const cases: [string, string][] = [
    ['not base64 at all!', 'data.release is not base64'],
    [Buffer.from('%%%').toString('base64'), 'the release payload is not base64'],
    [Buffer.from(Buffer.from([0x1f, 0x8b, 1, 2, 3]).toString('base64')).toString('base64'), 'not valid gzip'],
    [Buffer.from(gzipSync('not json').toString('base64')).toString('base64'), 'not JSON'],
    [Buffer.from(gzipSync('[1]').toString('base64')).toString('base64'), 'not a JSON object'],
  ];
  for (const [release, why] of cases) {
    const r = checkHelmRelease(record(KAGENT, { release }), ctx);
    assert.equal(r.checked, false, why);
    assert.deepEqual(r.violations, []);
    assert.equal(r.warnings.length, 1);
    assert.match(r.warnings[0], new RegExp(`^\\[helm-release-unchecked\\] Helm release record kagent/sh\\.helm\\.release\\.v1\\.kagent\\.v2 was not checked: .*${why}`));
  }
  // a manifest that is not Kubernetes: checked, nothing denied, a warning
  const junk = checkHelmRelease(record('just text\n'), ctx);
  assert.deepEqual(junk.violations, []);
  assert.match(junk.warnings[0], /could not be read/);
  assert.match(junk.warnings[0], /Fix: run kagenti-webhook lint on the chart's render to see the document\.$/);
});

test('a gzip bomb stops at the decompression cap', () => {
  const bomb = gzipSync(Buffer.alloc(MAX_RELEASE_JSON + 1024 * 1024, 0x20));
  assert.ok(bomb.length < 200 * 1024);
  const release = Buffer.from(bomb.toString('base64')).toString('base64');
  const r = checkHelmRelease(record(KAGENT, { release }), ctx);
  assert.equal(r.checked, false);
  assert.match(r.warnings[0], /larger than 16 MiB uncompressed/);
});

test('uncompressed release JSON and the configmap storage driver are read too', () => {
  const json = JSON.stringify({ name: 'kagent', namespace: 'kagent', manifest: KAGENT });
  const plain = record(KAGENT, { release: Buffer.from(Buffer.from(json).toString('base64')).toString('base64') });
  assert.equal(checkHelmRelease(plain, ctx).violations.length, 1);
  const cm = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'sh.helm.release.v1.kagent.v2', namespace: 'kagent', labels: { owner: 'helm', name: 'kagent', status: 'pending-install' } },
    data: { release: gzipSync(json).toString('base64') },
  };
  assert.equal(isHelmRelease(cm), true);
  assert.equal(checkHelmRelease(cm, ctx).violations.length, 1);
  // The labels and a release key are not enough: a record has a record's name.
  assert.equal(isHelmRelease({ ...cm, metadata: { ...cm.metadata, name: 'kagent-enterprise-config' } }), false);
});

test('with the issuer unknown, a missing K8S_TOKEN_REVIEW only warns (severity warning)', () => {
  const manifest = KAGENT.replace('  K8S_TOKEN_REVIEW: true\n', '');
  const r = checkHelmRelease(record(manifest), { config: defaultConfig(), issuer: { classification: 'unknown' } });
  assert.equal(r.violations.length, 1);
  assert.equal(r.violations[0].rule, 'token-review-required');
  assert.equal(r.violations[0].severity, 'warning');
});

test('with tokenReview.action: mutate, what /mutate fixes on apply is a warning, not a failed release', () => {
  const mutating = { ...ctx, config: configFromObject({ tokenReview: { action: 'mutate' } }) };
  for (const [replace, rule] of [
    ['', 'token-review-required'],
    ['  K8S_TOKEN_REVIEW: "false"\n', 'token-review-required'],
    ['  K8S_TOKEN_REVIEW: "yes"\n', 'token-review-value'],
  ] as const) {
    const manifest = KAGENT.replace('  K8S_TOKEN_REVIEW: true\n', replace);
    assert.equal(checkHelmRelease(record(manifest), ctx).violations[0]!.severity, 'error', `${rule}, action deny`);
    const r = checkHelmRelease(record(manifest), mutating);
    assert.equal(r.violations.length, 1, JSON.stringify(r.violations));
    assert.equal(r.violations[0]!.rule, rule);
    assert.equal(r.violations[0]!.severity, 'warning');
    assert.match(r.violations[0]!.message, /The webhook will set K8S_TOKEN_REVIEW: "true" when it is applied \(tokenReview\.action: mutate\)\.$/);
  }
  // A boolean never reaches /mutate (the API server rejects it first): still an error.
  assert.equal(checkHelmRelease(record(KAGENT), mutating).violations[0]!.severity, 'error');
});

test('a pending rollback is checked, and so are the manifests of the release\'s hooks', () => {
  const rollback = checkHelmRelease(record(KAGENT, { status: 'pending-rollback' }), ctx);
  assert.equal(rollback.checked, true);
  assert.equal(rollback.violations.length, 1);
  // A hook (a pre-upgrade Job, say) that carries the bad ConfigMap: found, named by the hook's template.
  const clean = KAGENT.replace('  K8S_TOKEN_REVIEW: true\n', '  K8S_TOKEN_REVIEW: "true"\n');
  const name = 'kagent';
  const rel = {
    name,
    namespace: 'kagent',
    version: 2,
    info: { status: 'pending-upgrade' },
    manifest: clean,
    hooks: [{ name: 'kagent-pre-upgrade', path: 'kagent/templates/hook.yaml', manifest: KAGENT }, { name: 'empty' }],
  };
  const withHook = { ...record(clean), data: { release: encodeReleaseForSecret(rel) } };
  const r = checkHelmRelease(withHook, ctx);
  assert.equal(r.checked, true);
  assert.equal(r.violations.length, 1, JSON.stringify(r.violations));
  assert.equal(r.violations[0]!.rule, 'token-review-value');
  assert.match(r.violations[0]!.message, /\(Helm release kagent\/kagent, template kagent\/templates\/enterprise-config\.yaml\)/);
  assert.equal(checkHelmRelease({ ...record(clean) }, ctx).violations.length, 0, 'the same release without the hook passes');
  // A hook is checked as it runs. A pre-install Job on the agent's ServiceAccount runs before the Deployment
  // exists: not two agents at once. A pre-upgrade Job runs beside the Deployment: two agents on one
  // ServiceAccount, as /validate would find when Helm creates it. `helm test` and delete hooks are not run by an
  // install or upgrade: not checked.
  const agents = AGENTS;
  const sa = /serviceAccountName: (\S+)/.exec(agents)![1]!;
  const job = `apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  namespace: kagent\nspec:\n  template:\n    metadata:\n      labels:\n        kagenti.io/type: agent\n    spec:\n      serviceAccountName: ${sa}\n      restartPolicy: Never\n      containers:\n        - name: m\n          image: m:1\n`;
  const testPod = `apiVersion: v1\nkind: Pod\nmetadata:\n  name: smoke\n  namespace: kagent\n  labels:\n    kagenti.io/type: agent\nspec:\n  containers:\n    - name: t\n      image: t:1\n`;
  const release = (status: string, events: string[]) => ({
    ...record(agents, { status }),
    data: {
      release: encodeReleaseForSecret({
        name,
        namespace: 'kagent',
        version: 2,
        info: { status },
        manifest: agents,
        hooks: [
          { name: 'migrate', events, manifest: job },
          { name: 'smoke', events: ['test'], manifest: testPod },
          { name: 'cleanup', events: ['pre-delete'], manifest: testPod },
        ],
      }),
    },
  });
  const errors = <T extends { severity: string }>(vs: T[]): T[] => vs.filter((v) => v.severity === 'error');
  const base = (status: string) => errors(checkHelmRelease(record(agents, { status }), ctx).violations).length;
  const all = (status: string, events: string[]) => checkHelmRelease(release(status, events), ctx).violations;
  const count = (status: string, events: string[]) => errors(all(status, events));
  assert.equal(count('pending-install', ['pre-install', 'pre-upgrade']).length, base('pending-install'), 'pre-install: on its own');
  // the hook Job's pods would get ordinary sidecars and never finish: a warning, named by the hook
  assert.ok(all('pending-install', ['pre-install']).some((v) => v.rule === 'sidecars-block-completion' && v.name === 'migrate' && v.severity === 'warning'));
  const upgrade = count('pending-upgrade', ['pre-install', 'pre-upgrade']);
  assert.equal(upgrade.length, base('pending-upgrade') + 1, 'pre-upgrade: beside the Deployment');
  assert.ok(upgrade.some((v) => v.rule === 'unique-service-account' && v.name === 'migrate'), JSON.stringify(upgrade.map((v) => v.message)));
  assert.equal(count('pending-upgrade', ['post-install']).length, base('pending-upgrade'), 'a hook the upgrade does not run');
});

test('an injection denial that depends on the mode or on an unchanged template is a warning at the record, placed before the Fix; a new install\'s other ones deny', () => {
  const dep = `apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: gw-agent\n  namespace: mesh\nspec:\n  selector:\n    matchLabels: {app: gw}\n  template:\n    metadata:\n      labels:\n        app: gw\n        kagenti.io/type: agent\n    spec:\n      serviceAccountName: gw-sa\n      containers:\n        - name: gw\n          image: gw:1\n          ports:\n            - containerPort: 9901\n`;
  for (const status of ['pending-install', 'pending-upgrade', 'pending-rollback']) {
    const r = checkHelmRelease(record(dep, { status, ns: 'mesh', name: 'gw' }), ctx);
    assert.equal(r.checked, true);
    assert.deepEqual(r.violations.map((v) => [v.rule, v.severity]), [['port-conflict', 'warning']], status);
    assert.match(r.violations[0].message, /^\[port-conflict\] Deployment mesh\/gw-agent \(Helm release mesh\/gw.*Not denied here: \/validate checks the workload again as Helm applies it\. Fix: /);
  }
  // host-network depends on the mode too (no proxy in a waypoint namespace, and /validate and /mutate admit the
  // pod): a warning at a new install's record as well
  const hn = dep.replace('      serviceAccountName: gw-sa\n', '      hostNetwork: true\n      serviceAccountName: gw-sa\n').replace('containerPort: 9901', 'containerPort: 8080');
  for (const status of ['pending-install', 'pending-upgrade'])
    assert.deepEqual(checkHelmRelease(record(hn, { status, ns: 'mesh', name: 'gw' }), ctx).violations.map((v) => [v.rule, v.severity]), [['host-network', 'warning']], status);
  assert.deepEqual(checkInjection(parseDocument(hn).toJS(), { config: ctx.config, namespace: 'mesh', namespaceLabels: { 'kagenti.io/authbridge-mode': 'waypoint' } }).violations, []);
  // a new install's mode-independent denial (an invalid annotation) denies; on an upgrade it is a warning
  const bad = dep.replace('        kagenti.io/type: agent\n', '        kagenti.io/type: agent\n      annotations:\n        kagenti.io/mtls-mode: strictest\n').replace('containerPort: 9901', 'containerPort: 8080');
  assert.deepEqual(checkHelmRelease(record(bad, { status: 'pending-install', ns: 'mesh', name: 'gw' }), ctx).violations.map((v) => [v.rule, v.severity]), [['invalid-annotation', 'error']]);
  assert.deepEqual(checkHelmRelease(record(bad, { status: 'pending-upgrade', ns: 'mesh', name: 'gw' }), ctx).violations.map((v) => [v.rule, v.severity]), [['invalid-annotation', 'warning']]);
  // the same document in lint is still an error
  const l = new Linter({ config: ctx.config, issuer: ctx.issuer });
  l.lintText('m.yaml', dep);
  assert.equal(l.findings[0]?.severity, 'error');
});

test('unsupported-os depends on the namespace\'s mode label, which the record does not hold: a warning at a new install\'s record too', () => {
  // spiffe-helper opted out: in a waypoint namespace nothing is injected, and /validate admits the Windows agent
  const win = `apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: win-agent\n  namespace: mesh\nspec:\n  selector:\n    matchLabels: {app: w}\n  template:\n    metadata:\n      labels: {app: w, kagenti.io/type: agent, kagenti.io/spiffe-helper-inject: "false"}\n    spec:\n      serviceAccountName: win-sa\n      nodeSelector: {kubernetes.io/os: windows}\n      containers: [{name: a, image: x}]\n`;
  const r = checkHelmRelease(record(win, { status: 'pending-install', ns: 'mesh', name: 'win' }), ctx);
  assert.equal(r.checked, true);
  assert.deepEqual(r.violations.map((v) => [v.rule, v.severity]), [['unsupported-os', 'warning']]);
  assert.match(r.violations[0].message, /^\[unsupported-os\] Deployment mesh\/win-agent \(Helm release mesh\/win.*Not denied here: \/validate checks the workload again as Helm applies it\. Fix: /);
  const dep = parseDocument(win).toJS();
  assert.deepEqual(checkInjection(dep, { config: ctx.config, namespace: 'mesh', namespaceLabels: { 'kagenti.io/authbridge-mode': 'waypoint' } }).violations, []);
  assert.deepEqual(checkInjection(dep, { config: ctx.config, namespace: 'mesh' }).violations.map((v) => v.rule), ['unsupported-os']);
});

test('with token-review-value off, a boolean K8S_TOKEN_REVIEW in a release is reported under token-review-required as the boolean, not the string "true"', () => {
  const r = checkHelmRelease(record(KAGENT), { ...ctx, config: configFromObject({ policies: { 'token-review-value': 'off' } }) });
  assert.equal(r.violations.length, 1);
  const v = r.violations[0];
  assert.equal(v.rule, 'token-review-required');
  assert.match(
    v.message,
    /^\[token-review-required\] ConfigMap kagent\/kagent-enterprise-config \(Helm release kagent\/kagent, template kagent\/templates\/enterprise-config\.yaml\): data\.K8S_TOKEN_REVIEW is the YAML boolean true, not the string "true"\. .*Fix: quote it: K8S_TOKEN_REVIEW: "true"\.$/,
  );
});

test('dedicated-service-account at an upgrade\'s record is a warning, as /validate warns an UPDATE of a workload that ran as "default" before; a new install denies', () => {
  const dep = `apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: weather\n  namespace: team-a\nspec:\n  selector:\n    matchLabels: {app: w}\n  template:\n    metadata:\n      labels: {app: w, kagenti.io/type: agent}\n    spec:\n      containers: [{name: a, image: x}]\n`;
  const at = (status: string) => checkHelmRelease(record(dep, { status, ns: 'team-a', name: 'weather' }), ctx).violations.filter((v) => v.rule === 'dedicated-service-account');
  assert.deepEqual(at('pending-install').map((v) => v.severity), ['error']);
  for (const status of ['pending-upgrade', 'pending-rollback']) {
    const [v] = at(status);
    assert.equal(v?.severity, 'warning', status);
    assert.match(v!.message, /Not denied here: \/validate checks the workload again as Helm applies it\. Fix: /);
  }
});

test('an immutable token-review ConfigMap in an upgrade\'s record: a warning whose fix covers both a ConfigMap already immutable (recreate it) and one this upgrade makes immutable (set the key); a new install denies with the fix to set the key', () => {
  const cm = `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kagent-enterprise-config\n  namespace: kagent\nimmutable: true\ndata:\n  K8S_TOKEN_REVIEW: "false"\n`;
  const at = (status: string) => checkHelmRelease(record(cm, { status, ns: 'kagent', name: 'kagent' }), ctx).violations.filter((v) => v.rule.startsWith('token-review-'));
  const [install] = at('pending-install');
  assert.equal(install?.severity, 'error');
  assert.match(install!.message, /Fix: set K8S_TOKEN_REVIEW: "true"/);
  for (const status of ['pending-upgrade', 'pending-rollback']) {
    const [v] = at(status);
    assert.equal(v?.severity, 'warning', status);
    // the record does not say whether the live ConfigMap is immutable already or made so by this upgrade (then
    // /validate denies its UPDATE as usual): the fix for either, not delete-and-recreate alone
    assert.match(v!.message, /Not denied here: \/validate checks the ConfigMap again as Helm applies it\. Fix: set K8S_TOKEN_REVIEW: "true" in data\. If ConfigMap kagent\/kagent-enterprise-config is already immutable in the cluster \(not made so by this update\), the API server refuses any change to its data: delete it and create it again instead/, status);
    assert.ok(!v!.message.includes('workload'), v!.message);
  }
});
