import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Config } from '../webhook/config.ts';
import { configFromObject, defaultConfig } from '../webhook/config.ts';
import type { AgentRef, IssuerInfo } from '../webhook/rules.ts';
import { agentOf, checkAgentLabelChange, checkInjection, checkMissingTokenReview, checkObject, checkUnique, checkUniqueSince, MAX_RENDERED_NAMESPACES, RenderedNamespaces, samePodTemplate, templateWorkload } from '../webhook/rules.ts';
import { injectTemplate } from '../webhook/inject.ts';
import { templateFieldText, workloadTemplateAt } from '../webhook/workloads.ts';

const EKS: IssuerInfo = {
  classification: 'external',
  issuer: 'https://oidc.eks.eu-west-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF',
  provider: 'EKS',
};
const INTERNAL: IssuerInfo = { classification: 'internal', issuer: 'https://kubernetes.default.svc.cluster.local' };
const UNKNOWN: IssuerInfo = { classification: 'unknown' };

const AGENT = { 'kagenti.io/type': 'agent' };

function podSpec(sa?: string): Record<string, any> {
  const spec: Record<string, any> = { containers: [{ name: 'main', image: 'agent:1' }] };
  if (sa !== undefined) spec.serviceAccountName = sa;
  return spec;
}

/** A workload of `kind` whose pod template has these labels and ServiceAccount. */
function workload(kind: string, name: string, sa?: string, labels: Record<string, string> = AGENT, ns = 'team-a'): Record<string, any> {
  const template = { metadata: { labels }, spec: podSpec(sa) };
  const metadata = { name, namespace: ns };
  switch (kind) {
    case 'Pod':
      return { apiVersion: 'v1', kind, metadata: { ...metadata, labels }, spec: podSpec(sa) };
    case 'CronJob':
      return { apiVersion: 'batch/v1', kind, metadata, spec: { schedule: '* * * * *', jobTemplate: { spec: { template } } } };
    case 'Job':
      return { apiVersion: 'batch/v1', kind, metadata, spec: { template } };
    default:
      return { apiVersion: 'apps/v1', kind, metadata, spec: { template } };
  }
}

function cm(data?: Record<string, unknown>, extra: Record<string, unknown> = {}, name = 'kagent-enterprise-config'): Record<string, any> {
  const o: Record<string, any> = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'kagent' }, ...extra };
  if (data !== undefined) o.data = data;
  return o;
}

const config = defaultConfig();
const MESSAGE = /^\[[a-z-]+\] [A-Za-z]+ [^ /]+\/[^ :]+: .+\. .+\. Fix: .+\.$/;

const SPEC_PATHS: Record<string, string> = {
  Pod: 'spec',
  Deployment: 'spec.template.spec',
  StatefulSet: 'spec.template.spec',
  DaemonSet: 'spec.template.spec',
  ReplicaSet: 'spec.template.spec',
  Job: 'spec.template.spec',
  CronJob: 'spec.jobTemplate.spec.template.spec',
};

for (const [kind, specPath] of Object.entries(SPEC_PATHS)) {
  test(`dedicated-service-account: ${kind} without serviceAccountName points at ${specPath}`, () => {
    const v = checkObject(workload(kind, 'weather'), { config, issuer: EKS });
    assert.equal(v.length, 1);
    assert.equal(v[0].rule, 'dedicated-service-account');
    assert.equal(v[0].severity, 'error');
    assert.equal(v[0].path, specPath);
    assert.equal(v[0].kind, kind);
    assert.equal(v[0].namespace, 'team-a');
    assert.equal(v[0].name, 'weather');
    assert.match(v[0].message, MESSAGE);
    assert.ok(v[0].message.includes(`${specPath}.serviceAccountName is not set`), v[0].message);
    assert.ok(v[0].message.includes('SPIFFE ID identifies no single agent'));
  });

  test(`dedicated-service-account: ${kind} with serviceAccountName "default" points at the key`, () => {
    const v = checkObject(workload(kind, 'weather', 'default'), { config, issuer: EKS });
    assert.equal(v.length, 1);
    assert.equal(v[0].path, `${specPath}.serviceAccountName`);
    assert.ok(v[0].message.includes(`${specPath}.serviceAccountName is "default"`));
  });

  test(`dedicated-service-account: ${kind} with its own ServiceAccount passes`, () => {
    assert.deepEqual(checkObject(workload(kind, 'weather', 'weather-sa'), { config, issuer: EKS }), []);
  });
}

test('dedicated-service-account: empty string means default; deprecated serviceAccount is honoured', () => {
  assert.equal(checkObject(workload('Deployment', 'a', ''), { config, issuer: EKS }).length, 1);
  const old = workload('Deployment', 'a');
  old.spec.template.spec.serviceAccount = 'a-sa';
  assert.deepEqual(checkObject(old, { config, issuer: EKS }), []);
  old.spec.template.spec.serviceAccount = 'default';
  assert.equal(checkObject(old, { config, issuer: EKS })[0].path, 'spec.template.spec.serviceAccount');
});

test('dedicated-service-account: non-agents, tools without injectTools, and unknown kinds are ignored', () => {
  assert.deepEqual(checkObject(workload('Deployment', 'web', undefined, { app: 'web' }), { config, issuer: EKS }), []);
  const tool = workload('Deployment', 'tool', undefined, { 'kagenti.io/type': 'tool' });
  assert.deepEqual(checkObject(tool, { config, issuer: EKS }), []);
  const withTools = configFromObject({ featureGates: { injectTools: true } });
  assert.equal(checkObject(tool, { config: withTools, issuer: EKS }).length, 1);
  assert.deepEqual(checkObject({ kind: 'Service', metadata: { name: 'x' } }, { config, issuer: EKS }), []);
});

test('dedicated-service-account: namespace defaults to ctx.namespace, then "default"; missing pod spec', () => {
  const d = workload('Deployment', 'a');
  delete d.metadata.namespace;
  assert.equal(checkObject(d, { config, issuer: EKS, namespace: 'ci' })[0].namespace, 'ci');
  assert.equal(checkObject(d, { config, issuer: EKS })[0].namespace, 'default');
  const noSpec = { kind: 'Deployment', metadata: { name: 'x' }, spec: { template: { metadata: { labels: AGENT } } } };
  const v = checkObject(noSpec, { config, issuer: EKS });
  assert.equal(v.length, 1);
  assert.equal(v[0].path, 'spec.template');
});

test('policies: warn gives warnings, off gives nothing', () => {
  const warn = configFromObject({ policies: { 'dedicated-service-account': 'warn' } });
  assert.equal(checkObject(workload('Pod', 'p'), { config: warn, issuer: EKS })[0].severity, 'warning');
  const off = configFromObject({ policies: { 'dedicated-service-account': 'off', 'token-review-required': 'off' } });
  assert.deepEqual(checkObject(workload('Pod', 'p'), { config: off, issuer: EKS }), []);
  assert.deepEqual(checkObject(cm({}), { config: off, issuer: EKS }), []);
});

// ---- token-review-value ----------------------------------------------------------------------------

for (const bad of ['True', 'TRUE', 'yes', '1', ' true', 'true ', 'on', '']) {
  test(`token-review-value: ${JSON.stringify(bad)} is rejected with the exact value to set`, () => {
    const v = checkObject(cm({ K8S_TOKEN_REVIEW: bad }), { config, issuer: EKS });
    assert.equal(v.length, 1, 'only the value rule, not both');
    assert.equal(v[0].rule, 'token-review-value');
    assert.equal(v[0].path, 'data.K8S_TOKEN_REVIEW');
    assert.match(v[0].message, MESSAGE);
    assert.ok(v[0].message.includes(`data.K8S_TOKEN_REVIEW is ${JSON.stringify(bad)}`), v[0].message);
    assert.ok(v[0].message.includes('Fix: set K8S_TOKEN_REVIEW: "true"'), v[0].message);
  });
}

for (const [value, shown] of [
  [true, 'the YAML boolean true'],
  [false, 'the YAML boolean false'],
  [1, 'the number 1'],
  [null, 'null'],
] as const) {
  test(`token-review-value: manifest-only value ${JSON.stringify(value)} says to quote it`, () => {
    const v = checkObject(cm({ K8S_TOKEN_REVIEW: value }), { config, issuer: EKS });
    assert.equal(v.length, 1);
    assert.equal(v[0].rule, 'token-review-value');
    assert.ok(v[0].message.includes(`is ${shown}, not a string`), v[0].message);
    assert.ok(v[0].message.includes('Fix: quote it: K8S_TOKEN_REVIEW: "true".'), v[0].message);
  });
}

test('token-review-value: boolean false on an internal-issuer cluster suggests quoting "false"', () => {
  const v = checkObject(cm({ K8S_TOKEN_REVIEW: false }), { config, issuer: INTERNAL });
  assert.ok(v[0].message.includes('quote it: K8S_TOKEN_REVIEW: "false"'));
});

test('token-review-value: the message names the issuer, and on an internal issuer suggests what the user meant', () => {
  const eks = checkObject(cm({ K8S_TOKEN_REVIEW: 'True' }), { config, issuer: EKS })[0]!.message;
  assert.ok(eks.includes(`service-account issuer ${EKS.issuer} is external (EKS), so kagent needs "true".`), eks);
  for (const [value, want] of [['True', 'true'], [' true', 'true'], ['yes', 'true'], ['False', 'false'], ['no', 'false'], ['0', 'false'], ['', 'false'], [0, 'false'], [1, 'true']] as const) {
    const m = checkObject(cm({ K8S_TOKEN_REVIEW: value }), { config, issuer: INTERNAL })[0]!.message;
    assert.ok(m.includes(`is internal, so either value works.`), m);
    assert.ok(m.includes(`K8S_TOKEN_REVIEW: "${want}"`), `${JSON.stringify(value)}: ${m}`);
  }
  const unknown = checkObject(cm({ K8S_TOKEN_REVIEW: 'False' }), { config, issuer: UNKNOWN })[0]!.message;
  assert.ok(unknown.includes('could not be determined; "true" works on any cluster. Fix: set K8S_TOKEN_REVIEW: "true".'), unknown);
});

test('token-review-value: binaryData is a violation at binaryData.K8S_TOKEN_REVIEW, whatever the issuer', () => {
  for (const issuer of [EKS, INTERNAL, UNKNOWN]) {
    const v = checkObject(cm({}, { binaryData: { K8S_TOKEN_REVIEW: 'dHJ1ZQ==' } }), { config, issuer });
    assert.equal(v.length, 1);
    assert.equal(v[0].rule, 'token-review-value');
    assert.equal(v[0].path, 'binaryData.K8S_TOKEN_REVIEW');
  }
});

test('token-review-value: "true" and "false" pass on internal clusters; other ConfigMaps are ignored', () => {
  assert.deepEqual(checkObject(cm({ K8S_TOKEN_REVIEW: 'true' }), { config, issuer: INTERNAL }), []);
  assert.deepEqual(checkObject(cm({ K8S_TOKEN_REVIEW: 'false' }), { config, issuer: INTERNAL }), []);
  assert.deepEqual(checkObject(cm({}), { config, issuer: INTERNAL }), []);
  assert.deepEqual(checkObject(cm({ K8S_TOKEN_REVIEW: 'yes' }, {}, 'other'), { config, issuer: EKS }), []);
  const custom = configFromObject({ tokenReview: { configMapNames: ['other'] } });
  assert.equal(checkObject(cm({ K8S_TOKEN_REVIEW: 'yes' }, {}, 'other'), { config: custom, issuer: EKS }).length, 1);
});

// ---- token-review-required ---------------------------------------------------------------------------

test('token-review-required: external issuer, key missing → error at data, naming the issuer and provider', () => {
  const v = checkObject(cm({ OTHER: 'x' }), { config, issuer: EKS });
  assert.equal(v.length, 1);
  assert.equal(v[0].rule, 'token-review-required');
  assert.equal(v[0].severity, 'error');
  assert.equal(v[0].path, 'data');
  assert.match(v[0].message, MESSAGE);
  assert.ok(v[0].message.includes(EKS.issuer!));
  assert.ok(v[0].message.includes('external (EKS)'));
  assert.ok(v[0].message.includes('K8S_TOKEN_REVIEW: "true"'));
});

test('token-review-required: a key that differs only in case is named, so the user sees the typo', () => {
  const v = checkObject(cm({ k8s_token_review: 'true' }), { config, issuer: EKS });
  assert.equal(v[0].rule, 'token-review-required');
  assert.match(v[0].message, /data\.K8S_TOKEN_REVIEW is not set \(data has "k8s_token_review": keys are case-sensitive\)\./);
  const spaced = checkObject(cm({ 'K8S_TOKEN_REVIEW ': 'true' }), { config, issuer: EKS });
  assert.match(spaced[0].message, /\(data has "K8S_TOKEN_REVIEW ": keys must match exactly, spaces included\)\./);
});

test('token-review-required: no data at all → path is the document root', () => {
  const v = checkObject(cm(undefined), { config, issuer: EKS });
  assert.equal(v[0].path, '');
});

test('token-review-required: "false" on an external cluster → error at data.K8S_TOKEN_REVIEW', () => {
  const v = checkObject(cm({ K8S_TOKEN_REVIEW: 'false' }), { config, issuer: EKS });
  assert.equal(v.length, 1);
  assert.equal(v[0].rule, 'token-review-required');
  assert.equal(v[0].path, 'data.K8S_TOKEN_REVIEW');
  assert.deepEqual(checkObject(cm({ K8S_TOKEN_REVIEW: 'true' }), { config, issuer: EKS }), []);
});

test('token-review-required: unknown issuer → a warning (even under deny) that says how to set the issuer', () => {
  const v = checkObject(cm({}), { config, issuer: UNKNOWN });
  assert.equal(v.length, 1);
  assert.equal(v[0].severity, 'warning');
  assert.ok(v[0].message.includes('tokenReview.issuer'));
  assert.deepEqual(checkObject(cm({ K8S_TOKEN_REVIEW: 'true' }), { config, issuer: UNKNOWN }), []);
});

test('token-review: value rule off lets the required rule report instead', () => {
  const c = configFromObject({ policies: { 'token-review-value': 'off' } });
  const v = checkObject(cm({ K8S_TOKEN_REVIEW: 'True' }), { config: c, issuer: EKS });
  assert.deepEqual(v.map((x) => x.rule), ['token-review-required']);
});

test('token-review: warn on the value rule never admits what off would deny (token-review-required denies it, once)', () => {
  const c = configFromObject({ policies: { 'token-review-value': 'warn', 'token-review-required': 'deny' } });
  const off = configFromObject({ policies: { 'token-review-value': 'off', 'token-review-required': 'deny' } });
  for (const [data, extra, path] of [
    [{ K8S_TOKEN_REVIEW: 'True' }, {}, 'data.K8S_TOKEN_REVIEW'],
    [{ K8S_TOKEN_REVIEW: 'yes' }, {}, 'data.K8S_TOKEN_REVIEW'],
    [{ K8S_TOKEN_REVIEW: '1' }, {}, 'data.K8S_TOKEN_REVIEW'],
    [{ K8S_TOKEN_REVIEW: true }, {}, 'data.K8S_TOKEN_REVIEW'],
    [{}, { binaryData: { K8S_TOKEN_REVIEW: 'dHJ1ZQ==' } }, 'binaryData.K8S_TOKEN_REVIEW'],
  ] as const) {
    const obj = cm(data, extra);
    assert.deepEqual(checkObject(obj, { config: off, issuer: EKS }).map((x) => [x.rule, x.severity]), [['token-review-required', 'error']]);
    const v = checkObject(obj, { config: c, issuer: EKS });
    // one error for one mistake: the value's precise message, under the rule whose action denies it
    assert.deepEqual(v.map((x) => [x.rule, x.severity, x.path]), [['token-review-required', 'error', path]], JSON.stringify(data));
    assert.match(v[0].message, MESSAGE);
    assert.ok(v[0].message.startsWith(`[token-review-required] ConfigMap kagent/kagent-enterprise-config: ${path} `), v[0].message);
    assert.ok(v[0].message.includes('external (EKS), so kagent needs "true": without it, it cannot verify agent tokens locally and agent callbacks fail with 401.'), v[0].message);
    // the value rule's own explanation and fix
    const value = checkObject(obj, { config, issuer: EKS })[0]!.message;
    assert.ok(v[0].message.endsWith(value.slice(value.indexOf(' Fix: '))), `${v[0].message}\n${value}`);
  }
  const True = cm({ K8S_TOKEN_REVIEW: 'True' });
  // where token-review-required does not deny, the value rule reports at its own action
  for (const [policies, issuer, want] of [
    [{ 'token-review-value': 'warn', 'token-review-required': 'warn' }, EKS, ['token-review-value', 'warning']],
    [{ 'token-review-value': 'warn', 'token-review-required': 'off' }, EKS, ['token-review-value', 'warning']],
    [{ 'token-review-value': 'deny', 'token-review-required': 'warn' }, EKS, ['token-review-value', 'error']],
    [{ 'token-review-value': 'deny', 'token-review-required': 'deny' }, EKS, ['token-review-value', 'error']],
    [{ 'token-review-value': 'warn', 'token-review-required': 'deny' }, UNKNOWN, ['token-review-value', 'warning']],
    [{ 'token-review-value': 'warn', 'token-review-required': 'deny' }, INTERNAL, ['token-review-value', 'warning']],
  ] as const) {
    const v = checkObject(True, { config: configFromObject({ policies }), issuer });
    assert.deepEqual(v.map((x) => [x.rule, x.severity]), [want], `${JSON.stringify(policies)} ${issuer.classification}`);
  }
  // "true" in data passes token-review-required: a stray binaryData copy is only the value rule's warning
  const both = checkObject(cm({ K8S_TOKEN_REVIEW: 'true' }, { binaryData: { K8S_TOKEN_REVIEW: 'dHJ1ZQ==' } }), { config: c, issuer: EKS });
  assert.deepEqual(both.map((x) => [x.rule, x.severity]), [['token-review-value', 'warning']]);
});

// ---- unique-service-account --------------------------------------------------------------------------

function ref(kind: string, name: string, sa: string, extra: Partial<AgentRef> = {}): AgentRef {
  return { kind, name, namespace: 'team-a', serviceAccount: sa, ...extra };
}

test('unique-service-account: names the other agent and the shared SPIFFE ID', () => {
  const c: Config = configFromObject({ trustDomain: 'example.org' });
  const v = checkUnique(ref('Deployment', 'a', 'shared'), [ref('StatefulSet', 'b', 'shared')], c);
  assert.equal(v.length, 1);
  assert.equal(v[0].rule, 'unique-service-account');
  assert.equal(v[0].path, 'spec.template.spec.serviceAccountName');
  assert.match(v[0].message, MESSAGE);
  assert.ok(v[0].message.includes('StatefulSet/b'));
  assert.ok(v[0].message.includes('spiffe://example.org/ns/team-a/sa/shared'));
});

test('unique-service-account: an agent being deleted still conflicts, and the message says so and when it is gone', () => {
  const c: Config = configFromObject({ trustDomain: 'example.org' });
  const me = ref('Deployment', 'b', 'shared');
  const pod = (name: string, until: string) => ref('Deployment', 'a', 'shared', { source: { kind: 'Pod', name }, deleting: { until } });
  // `kubectl delete deploy a` then apply b: a is gone from the cache, its pods are terminating
  const v = checkUnique(me, [pod('a-1-x', '2026-11-23T09:00:30Z'), pod('a-1-y', '2026-11-23T09:00:45Z')], c);
  assert.equal(v.length, 1);
  assert.match(v[0].message, MESSAGE);
  assert.ok(
    v[0].message.includes('is already the identity of agent Deployment/a, which is being deleted; its pods stop by 2026-11-23T09:00:45Z. Both would share'),
    v[0].message,
  );
  assert.ok(v[0].message.includes('Fix: retry once Deployment/a is gone, or give each agent its own ServiceAccount'), v[0].message);
  // foreground deletion: the Deployment itself is being deleted too (no stop time of its own)
  const fg = checkUnique(me, [ref('Deployment', 'a', 'shared', { deleting: {} }), pod('a-1-x', '2026-11-23T09:00:30Z')], c);
  assert.ok(fg[0].message.includes('Deployment/a, which is being deleted; its pods stop by 2026-11-23T09:00:30Z.'), fg[0].message);
  // a Deployment that stays, with one pod terminating (a rollout): not "being deleted"
  const live = checkUnique(me, [pod('a-1-x', '2026-11-23T09:00:30Z'), ref('Deployment', 'a', 'shared')], c);
  assert.doesNotMatch(live[0].message, /being deleted|retry/);
  // two others, one going away: the one that stays is named first, the other with its state, and retrying would not
  // help; only the one that stays shares it with this one
  const two = checkUnique(me, [pod('a-1-x', '2026-11-23T09:00:30Z'), ref('StatefulSet', 'c', 'shared')], c);
  assert.ok(
    two[0].message.includes('is already the identity of agents StatefulSet/c and Deployment/a, which is being deleted; its pods stop by 2026-11-23T09:00:30Z. Both would share'),
    two[0].message,
  );
  assert.ok(two[0].message.includes('label on both if'), two[0].message);
  assert.doesNotMatch(two[0].message, /retry/);
});

test('unique-service-account: with several others, those that stay are named first and counted; each named one says its state; those going away are counted apart', () => {
  const c: Config = configFromObject({ trustDomain: 'example.org' });
  const me = ref('Deployment', 'new', 'shared');
  const old = ref('Deployment', 'old', 'shared', { source: { kind: 'Pod', name: 'old-1-x' }, deleting: { until: '2026-11-23T09:00:30Z' } });
  const moved = ref('Deployment', 'moved', 'shared', { former: 'moved', source: { kind: 'ReplicaSet', name: 'moved-5d4c3b2a1f' } });
  // the ones going away come first in the cache's order: the live ones are still named first
  const v = checkUnique(me, [old, moved, ref('Deployment', 'live', 'shared'), ref('Deployment', 'other', 'shared')], c);
  assert.ok(v[0].message.includes('identity of agents Deployment/live, Deployment/other and 2 more going away. All 3 would share '), v[0].message);
  assert.doesNotMatch(v[0].message, /All 5|retry/);
  // a named one going away says so; the rest are counted, with how many of them go
  const w = checkUnique(me, [old, moved, ref('Deployment', 'live', 'shared', { recent: true })], c);
  assert.ok(
    w[0].message.includes(
      'identity of agents Deployment/live, admitted moments ago, Deployment/moved, whose template uses another ServiceAccount now, but whose old ReplicaSet moved-5d4c3b2a1f still runs as it and 1 more going away. Both would share ',
    ),
    w[0].message,
  );
  assert.ok(w[0].message.includes('label on both if'), w[0].message);
  const x = checkUnique(me, [old, ref('Deployment', 'a', 'shared'), ref('Deployment', 'b', 'shared'), ref('Deployment', 'd', 'shared')], c);
  assert.ok(x[0].message.includes('identity of agents Deployment/a, Deployment/b and 2 more (1 of them going away). All 4 would share '), x[0].message);
  // none stays: all are counted (they share until they go), the first named says when
  const gone = checkUnique(me, [old, moved], c);
  assert.ok(gone[0].message.includes('agents Deployment/moved, whose template uses another ServiceAccount now'), gone[0].message);
  assert.ok(gone[0].message.includes(' and Deployment/old, which is being deleted; its pods stop by 2026-11-23T09:00:30Z. All 3 would share '), gone[0].message);
  assert.ok(gone[0].message.includes('Fix: retry once the old pods of Deployment/moved have stopped (and the others), or '), gone[0].message);
});

test('agentOf: an object being deleted says so; a pod says until when', () => {
  const labels = { 'kagenti.io/type': 'agent' };
  const pod = { kind: 'Pod', metadata: { name: 'p', namespace: 'team-a', labels, deletionTimestamp: '2026-11-23T09:00:30Z' }, spec: { serviceAccountName: 's' } };
  assert.deepEqual(agentOf(pod, config)?.deleting, { until: '2026-11-23T09:00:30Z' });
  const dep = { kind: 'Deployment', metadata: { name: 'd', namespace: 'team-a', deletionTimestamp: '2026-11-23T09:00:00Z' }, spec: { template: { metadata: { labels }, spec: { serviceAccountName: 's' } } } };
  assert.deepEqual(agentOf(dep, config)?.deleting, {});
  assert.equal(agentOf({ ...pod, metadata: { ...pod.metadata, deletionTimestamp: undefined } }, config)?.deleting, undefined);
});

test('unique-service-account: self (UPDATE), own pods, other namespaces and other SAs never conflict', () => {
  const me = ref('Deployment', 'a', 'sa1');
  assert.deepEqual(checkUnique(me, [ref('Deployment', 'a', 'sa1'), ref('Deployment', 'a', 'sa1', { source: { kind: 'Pod', name: 'a-x-y' } })], config), []);
  assert.deepEqual(checkUnique(me, [ref('Deployment', 'b', 'sa1', { namespace: 'team-b' })], config), []);
  assert.deepEqual(checkUnique(me, [ref('Deployment', 'b', 'sa2')], config), []);
});

test('unique-service-account: blue/green with the same kagenti.io/agent label shares; different labels conflict', () => {
  const blue = ref('Deployment', 'weather-blue', 'weather', { agent: 'weather' });
  const green = ref('Deployment', 'weather-green', 'weather', { agent: 'weather' });
  assert.deepEqual(checkUnique(blue, [green], config), []);
  const other = ref('Deployment', 'news', 'weather', { agent: 'news' });
  const v = checkUnique(blue, [green, other], config);
  assert.equal(v.length, 1);
  assert.ok(v[0].message.includes('Deployment/news (kagenti.io/agent=news)'));
  // a labelled agent and an unlabelled workload conflict
  assert.equal(checkUnique(blue, [ref('Deployment', 'plain', 'weather')], config).length, 1);
});

test('unique-service-account: a Pod candidate reports at the Pod path; counts further conflicts; off → none', () => {
  const pod = ref('Pod', 'solo', 'sa', { source: undefined });
  const v = checkUnique(pod, [ref('Deployment', 'x', 'sa'), ref('Deployment', 'y', 'sa'), ref('Deployment', 'y', 'sa')], config);
  assert.equal(v[0].path, 'spec.serviceAccountName');
  // three agents: both others named, and 'All 3', not 'Both'; more: two named, then how many more
  assert.ok(v[0].message.includes('identity of agents Deployment/x and Deployment/y. All 3 would share '), v[0].message);
  assert.ok(v[0].message.includes('none of them can be told apart') && v[0].message.includes('label on all of them if'), v[0].message);
  const five = checkUnique(pod, ['w', 'x', 'y', 'z'].map((n) => ref('Deployment', n, 'sa')), config);
  assert.ok(five[0].message.includes('identity of agents Deployment/w, Deployment/x and 2 more. All 5 would share '), five[0].message);
  assert.match(five[0].message, /^\[unique-service-account\] [^\n]* Fix: [^\n]*\.$/, 'one line, its rule and its fix');
  const one = checkUnique(pod, [ref('Deployment', 'x', 'sa')], config);
  assert.ok(one[0].message.includes('identity of agent Deployment/x. Both would share ') && one[0].message.includes('neither agent') && one[0].message.includes('on both if'), one[0].message);
  const off = configFromObject({ policies: { 'unique-service-account': 'off' } });
  assert.deepEqual(checkUnique(pod, [ref('Deployment', 'x', 'sa')], off), []);
  const warn = configFromObject({ policies: { 'unique-service-account': 'warn' } });
  assert.equal(checkUnique(pod, [ref('Deployment', 'x', 'sa')], warn)[0].severity, 'warning');
});

test('agentOf + checkUnique over manifests: Deployment vs CronJob on one SA', () => {
  const a = agentOf(workload('Deployment', 'a', 'shared'), config)!;
  const b = agentOf(workload('CronJob', 'nightly', 'shared'), config)!;
  assert.deepEqual(a, { kind: 'Deployment', name: 'a', namespace: 'team-a', serviceAccount: 'shared' });
  assert.equal(b.kind, 'CronJob');
  const v = checkUnique(b, [a], config);
  assert.equal(v[0].path, 'spec.jobTemplate.spec.template.spec.serviceAccountName');
  assert.equal(agentOf(workload('Deployment', 'web', 'x', { app: 'web' }), config), null);
  assert.equal(agentOf({ kind: 'Service', metadata: { name: 's' } }, config), null);
});

test('checkObject never throws on hostile shapes', () => {
  const weird: unknown[] = [
    {},
    { kind: 'Pod' },
    { kind: 'Pod', metadata: 'x', spec: [] },
    { kind: 'Deployment', spec: { template: 'x' } },
    { kind: 'CronJob', spec: { jobTemplate: null } },
    { kind: 'ConfigMap', metadata: { name: 'kagent-enterprise-config' }, data: ['K8S_TOKEN_REVIEW'] },
    { kind: 'ConfigMap', metadata: { name: 'kagent-enterprise-config' }, data: { K8S_TOKEN_REVIEW: { a: 1 } } },
    { kind: 'Pod', metadata: { labels: AGENT, ownerReferences: 'x' }, spec: { serviceAccountName: 5 } },
  ];
  for (const w of weird) {
    assert.doesNotThrow(() => checkObject(w as Record<string, any>, { config, issuer: EKS }));
    assert.doesNotThrow(() => agentOf(w as Record<string, any>, config));
  }
  const v = checkObject(weird[6] as Record<string, any>, { config, issuer: EKS });
  assert.equal(v[0].rule, 'token-review-value');
  assert.ok(v[0].message.includes('is a mapping'));
});

// ---- checkInjection: what /mutate would deny in a workload's pods, reported on the workload -----------------

function windowsDeployment(how: 'os' | 'nodeSelector' | 'affinity'): Record<string, any> {
  const d = workload('Deployment', 'win-agent', 'win-sa');
  if (how === 'os') d.spec.template.spec.os = { name: 'windows' };
  else if (how === 'nodeSelector') d.spec.template.spec.nodeSelector = { 'kubernetes.io/os': 'windows' };
  else
    d.spec.template.spec.affinity = {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [
            { matchExpressions: [{ key: 'kubernetes.io/os', operator: 'In', values: ['windows'] }] },
            { matchExpressions: [{ key: 'kubernetes.io/os', operator: 'NotIn', values: ['linux'] }, { key: 'zone', operator: 'Exists' }] },
          ],
        },
      },
    };
  return d;
}

test('checkInjection: the injection denials of a pod template are errors on the workload, at the offending key', () => {
  const cases: [Record<string, any>, string, string][] = [
    [windowsDeployment('os'), 'unsupported-os', 'spec.template.spec.os.name'],
    [windowsDeployment('nodeSelector'), 'unsupported-os', 'spec.template.spec.nodeSelector.kubernetes.io/os'],
    [windowsDeployment('affinity'), 'unsupported-os', 'spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution'],
  ];
  const hostNet = workload('StatefulSet', 'hn', 'hn-sa');
  hostNet.spec.template.spec.hostNetwork = true;
  cases.push([hostNet, 'host-network', 'spec.template.spec.hostNetwork']);
  const badMode = workload('CronJob', 'cj', 'cj-sa');
  badMode.spec.jobTemplate.spec.template.metadata.annotations = { 'kagenti.io/authbridge-mode': 'turbo' };
  cases.push([badMode, 'invalid-annotation', 'spec.jobTemplate.spec.template.metadata.annotations.kagenti.io/authbridge-mode']);
  const reserved = workload('Deployment', 'rs', 'rs-sa');
  reserved.spec.template.spec.containers.push({ name: 'spiffe-helper', image: 'mine:1' });
  cases.push([reserved, 'reserved-name', 'spec.template.spec.containers.1.name']);
  const port = workload('Job', 'pc', 'pc-sa');
  port.spec.template.spec.containers[0].ports = [{ containerPort: 15123 }];
  cases.push([port, 'port-conflict', 'spec.template.spec.containers.0.ports.0.containerPort']);
  for (const [obj, rule, path] of cases) {
    const r = checkInjection(obj, { config, namespace: 'team-a' });
    assert.equal(r.violations.length, 1, `${obj.kind}/${obj.metadata.name}`);
    const v = r.violations[0];
    assert.equal(v.rule, rule);
    assert.equal(v.severity, 'error');
    assert.equal(v.path, path);
    assert.equal(v.kind, obj.kind);
    assert.equal(v.name, obj.metadata.name);
    assert.equal(v.namespace, 'team-a');
    // the same message /mutate gives for the pod, naming the workload and its template's field path
    assert.ok(v.message.startsWith(`[${rule}] ${obj.kind} team-a/${obj.metadata.name}: `), v.message);
    assert.match(v.message, /Fix: /);
  }
});

test('checkInjection: pod-resources on a pod template: errors at the pod-level key under deny, warnings under warn, none under off (the shared injection core)', () => {
  const withResources = (kind: string) => {
    const obj = workload(kind, 'budget', 'budget-sa');
    const spec = kind === 'CronJob' ? obj.spec.jobTemplate.spec.template.spec : obj.spec.template.spec;
    spec.resources = { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '200m', memory: '256Mi' } };
    spec.containers[0].resources = { requests: { cpu: '100m', memory: '128Mi' } };
    return obj;
  };
  for (const kind of ['Deployment', 'CronJob']) {
    const base = SPEC_PATHS[kind];
    const r = checkInjection(withResources(kind), { config, namespace: 'team-a' });
    assert.deepEqual(
      r.violations.map((v) => [v.rule, v.severity, v.path]),
      [
        ['pod-resources', 'error', `${base}.resources.requests.cpu`],
        ['pod-resources', 'error', `${base}.resources.limits.cpu`],
        ['pod-resources', 'error', `${base}.resources.requests.memory`],
      ],
      kind,
    );
    for (const v of r.violations) assert.match(v.message, MESSAGE);
    assert.match(r.violations[0]!.message, new RegExp(`^\\[pod-resources\\] ${kind} team-a/budget: ${base.replace(/\./g, '\\.')}\\.resources\\.requests\\.cpu is 100m, .* at least 160m,`));
    const warn = checkInjection(withResources(kind), { config: configFromObject({ policies: { 'pod-resources': 'warn' } }), namespace: 'team-a' });
    assert.deepEqual(warn.violations, []);
    assert.deepEqual(
      warn.warnings.map((v) => [v.rule, v.severity, v.path]),
      [
        ['pod-resources', 'warning', `${base}.resources.requests.cpu`],
        ['pod-resources', 'warning', `${base}.resources.limits.cpu`],
        ['pod-resources', 'warning', `${base}.resources.requests.memory`],
      ],
    );
    const off = checkInjection(withResources(kind), { config: configFromObject({ policies: { 'pod-resources': 'off' } }), namespace: 'team-a' });
    assert.deepEqual([off.violations, off.warnings], [[], []]);
  }
});

test('checkInjection: istio-sidecar (namespace labelled istio-injection=enabled, or an istio-proxy in the template) and net-admin point at their field; istio-sidecar follows its policy', () => {
  for (const kind of ['Deployment', 'CronJob']) {
    const base = SPEC_PATHS[kind];
    const meta = base.replace(/\.spec$/, '.metadata');
    const ns = { config, namespace: 'team-a', namespaceLabels: { 'istio-injection': 'enabled' } };
    const r = checkInjection(workload(kind, 'weather', 'weather-sa'), ns);
    assert.deepEqual(r.warnings.map((v) => [v.rule, v.severity, v.path]), [['istio-sidecar', 'warning', `${meta}.labels`]], kind);
    const denied = checkInjection(workload(kind, 'weather', 'weather-sa'), { ...ns, config: configFromObject({ policies: { 'istio-sidecar': 'deny' } }) });
    assert.deepEqual(denied.violations.map((v) => [v.rule, v.severity, v.path]), [['istio-sidecar', 'error', `${meta}.labels`]], kind);
    const obj = workload(kind, 'weather', 'weather-sa');
    const spec = kind === 'CronJob' ? obj.spec.jobTemplate.spec.template.spec : obj.spec.template.spec;
    spec.containers.push({ name: 'istio-proxy', image: 'docker.io/istio/proxyv2:1.22.0' }, { name: 'vpn', image: 'x', securityContext: { capabilities: { add: ['NET_ADMIN'] } } });
    const both = checkInjection(obj, { config, namespace: 'team-a' });
    assert.deepEqual(
      both.warnings.map((v) => [v.rule, v.path]),
      [
        ['istio-sidecar', `${base}.containers.1.name`],
        ['net-admin', `${base}.containers.2.securityContext.capabilities.add`],
      ],
      kind,
    );
  }
});

test('checkInjection: mesh-sidecar points at the other mesh\'s proxy container in the template; its init container beside it is not the pod\'s own', () => {
  for (const kind of ['Deployment', 'CronJob']) {
    const base = SPEC_PATHS[kind];
    const obj = workload(kind, 'weather', 'weather-sa');
    const spec = kind === 'CronJob' ? obj.spec.jobTemplate.spec.template.spec : obj.spec.template.spec;
    spec.containers.unshift({ name: 'linkerd-proxy', image: 'cr.l5d.io/linkerd/proxy:stable-2.14.10' });
    spec.initContainers = [{ name: 'linkerd-init', image: 'x', securityContext: { capabilities: { add: ['NET_ADMIN', 'NET_RAW'] } } }];
    const r = checkInjection(obj, { config, namespace: 'team-a' });
    assert.deepEqual(r.warnings.map((v) => [v.rule, v.path]), [['mesh-sidecar', `${base}.containers.0.name`]], kind);
    assert.match(r.warnings[0]!.message, new RegExp(`Fix: use one mesh for the agent, or opt it out of Linkerd's injection: annotate the pod template \\(${base.replace(/\.spec$/, '.metadata').replace(/\./g, '\\.')}\\.annotations\\) linkerd\\.io/inject: disabled\\.$`));
  }
});

test('checkInjection: unsupported-os by required node affinity names the affinity in the message and the path; a term that admits Linux clears it', () => {
  const d = windowsDeployment('affinity');
  const r = checkInjection(d, { config, namespace: 'team-a' });
  assert.equal(r.violations.length, 1);
  assert.match(
    r.violations[0].message,
    /^\[unsupported-os\] Deployment team-a\/win-agent: spec\.template\.spec\.affinity\.nodeAffinity\.requiredDuringSchedulingIgnoredDuringExecution rules out kubernetes\.io\/os=linux in every nodeSelectorTerm, .*Fix: /,
  );
  // with os.name set too, the path follows the field the message names
  const both = windowsDeployment('affinity');
  both.spec.template.spec.os = { name: 'windows' };
  assert.equal(checkInjection(both, { config, namespace: 'team-a' }).violations[0].path, 'spec.template.spec.os.name');
  // a CronJob's template: the path goes through jobTemplate
  const cj = workload('CronJob', 'win-cj', 'win-cj-sa');
  cj.spec.jobTemplate.spec.template.spec.affinity = d.spec.template.spec.affinity;
  assert.equal(
    checkInjection(cj, { config, namespace: 'team-a' }).violations[0]?.path,
    'spec.jobTemplate.spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution',
  );
  // one more term that may match Linux: the pods can be scheduled on Linux nodes, no violation
  const mixed = windowsDeployment('affinity');
  mixed.spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms.push({
    matchExpressions: [{ key: 'kubernetes.io/os', operator: 'In', values: ['linux'] }],
  });
  assert.deepEqual(checkInjection(mixed, { config, namespace: 'team-a' }).violations, []);
});

test('checkInjection: the same answer as the injection core on the template; eligible-only; warnings passed on', () => {
  // not an agent, opted out, or a kind without a pod template: nothing
  const notAgent = workload('Deployment', 'web', 'web-sa', { app: 'web' });
  notAgent.spec.template.spec.hostNetwork = true;
  assert.deepEqual(checkInjection(notAgent, { config }), { violations: [], warnings: [], csiVolume: false });
  const optedOut = workload('Deployment', 'off', 'off-sa', { ...AGENT, 'kagenti.io/inject': 'disabled' });
  optedOut.spec.template.spec.hostNetwork = true;
  assert.deepEqual(checkInjection(optedOut, { config }).violations, []);
  assert.deepEqual(checkInjection({ kind: 'ConfigMap', metadata: { name: 'x' } }, { config }).violations, []);
  // a clean agent: no violation
  assert.deepEqual(checkInjection(workload('Deployment', 'ok', 'ok-sa'), { config }).violations, []);
  // the core's warnings (the pod's own init containers run before the proxy exists without native sidecars)
  const cfg = configFromObject({ featureGates: { nativeSidecars: false } });
  const withInit = workload('Deployment', 'init', 'init-sa');
  withInit.spec.template.spec.initContainers = [{ name: 'migrate', image: 'm:1' }];
  const r = checkInjection(withInit, { config: cfg, namespace: 'team-a' });
  assert.deepEqual(r.violations, []);
  assert.deepEqual(
    r.warnings.map((w) => [w.rule, w.severity, w.path, w.kind, w.name]),
    [['init-before-proxy', 'warning', 'spec.template.spec.initContainers', 'Deployment', 'init']],
  );
  assert.match(r.warnings[0].message, /^\[init-before-proxy\] Deployment team-a\/init: init container migrate runs after proxy-init .*Fix: /);
  const direct = injectTemplate(withInit.spec.template, cfg, { namespace: 'team-a', ref: 'Deployment team-a/init' }, 'spec.template.spec');
  assert.equal(direct.outcome, 'inject');
  assert.deepEqual(r.warnings.map((w) => w.message), direct.outcome === 'inject' ? direct.warnings : []);
  // hostile shapes never throw
  for (const bad of [null, 1, 'x', [], { kind: 'Deployment' }, { kind: 'Deployment', spec: { template: { metadata: { labels: AGENT }, spec: 'x' } } }])
    assert.doesNotThrow(() => checkInjection(bad as any, { config }));
  const malformed = checkInjection({ kind: 'Deployment', metadata: { name: 'm' }, spec: { template: { metadata: { labels: AGENT }, spec: { containers: 'x' } } } }, { config });
  assert.equal(malformed.violations[0]?.rule, 'malformed-object');
});

test('samePodTemplate: an update that leaves the template as it was', () => {
  const a = workload('Deployment', 'a', 'sa');
  const b = structuredClone(a);
  b.metadata.labels = { team: 'x' };
  assert.equal(samePodTemplate(a, b), true);
  b.spec.template.spec.hostNetwork = true;
  assert.equal(samePodTemplate(a, b), false);
  assert.equal(samePodTemplate(a, null), false);
});

test('checkMissingTokenReview: only on an external issuer, only where kagent\'s controller runs without the ConfigMap', () => {
  const dep = (name: string, ns: string) => ({ kind: 'Deployment', metadata: { name, namespace: ns } });
  const deps = [dep('kagent-controller', 'kagent'), dep('kagent-controller', 'other'), dep('web', 'shop')];
  const cms = [cm({ K8S_TOKEN_REVIEW: 'true' })];
  const v = checkMissingTokenReview(deps, cms, config, EKS);
  assert.deepEqual(v.map((x) => [x.rule, x.severity, x.kind, x.namespace, x.name]), [['token-review-required', 'error', 'Deployment', 'other', 'kagent-controller']]);
  assert.match(v[0].message, MESSAGE);
  assert.deepEqual(checkMissingTokenReview(deps, cms, config, INTERNAL), []);
  assert.deepEqual(checkMissingTokenReview(deps, cms, config, UNKNOWN), []);
  const off = configFromObject({ policies: { 'token-review-required': 'off' } });
  assert.deepEqual(checkMissingTokenReview(deps, cms, off, EKS), []);
  assert.doesNotThrow(() => checkMissingTokenReview([null, 1, {}] as any, [null, {}] as any, config, EKS));
  // a controller scaled to 0 (as the cache marks it) or being deleted is not running
  const idle = { ...dep('kagent-controller', 'other'), scaledToZero: true };
  const going = { kind: 'Deployment', metadata: { name: 'kagent-controller', namespace: 'other', deletionTimestamp: '2026-11-23T00:00:00Z' } };
  assert.deepEqual(checkMissingTokenReview([idle, going], [], config, EKS), []);
});

test('checkInjection: a StatefulSet\'s volumeClaimTemplates are volumes of its pods, as its controller makes them', () => {
  const sts = (spire: boolean) => {
    const o = workload('StatefulSet', 'db-agent', 'db-sa', spire ? AGENT : { ...AGENT, 'kagenti.io/spiffe-helper-inject': 'false' });
    o.spec.volumeClaimTemplates = [{ metadata: { name: 'svid-output' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } }];
    o.spec.template.spec.containers[0].volumeMounts = [{ name: 'svid-output', mountPath: '/data' }];
    return o;
  };
  // spiffe-helper opted out, the app mounts its claim named svid-output: the pod defines that volume, no denial
  assert.deepEqual(checkInjection(sts(false), { config, namespace: 'team-a' }).violations, []);
  // spiffe-helper on: the claim's volume takes the injected volume's name, which /mutate denies on the pod
  const v = checkInjection(sts(true), { config, namespace: 'team-a' }).violations;
  assert.equal(v[0]?.rule, 'reserved-name');
  assert.match(v[0].message, /: spec\.volumeClaimTemplates\[0\]\.metadata\.name is svid-output \(the StatefulSet controller adds a volume of that name to each pod\), the name of an injected volume, .* Fix: rename the claim,/);
  assert.equal(v[0].path, 'spec.volumeClaimTemplates.0.metadata.name');
  // a template volume beside a claim keeps its own index in the template as written
  const own = sts(true);
  own.spec.volumeClaimTemplates[0].metadata.name = 'data';
  own.spec.template.spec.volumes = [{ name: 'data', emptyDir: {} }, { name: 'spire-agent-socket', emptyDir: {} }];
  const w = checkInjection(own, { config, namespace: 'team-a' }).violations;
  assert.equal(w[0]?.rule, 'reserved-name');
  assert.equal(w[0].path, 'spec.template.spec.volumes.1.name');
  assert.match(w[0].message, /: spec\.template\.spec\.volumes\[1\]\.name is spire-agent-socket, /);
});

test('checkInjection on a workload: messages name the template\'s own paths, and the opt-out goes on the pod template', () => {
  const big = workload('Deployment', 'big', 'big-sa');
  big.spec.template.metadata.annotations = { blob: 'x'.repeat(300 * 1024) };
  const v = checkInjection(big, { config }).violations[0];
  assert.equal(v.rule, 'malformed-object');
  assert.equal(v.path, 'spec.template.metadata.annotations');
  assert.match(v.message, /: spec\.template\.metadata\.annotations hold more than 262144 bytes/);
  assert.match(v.message, /Fix: move large values out of spec\.template\.metadata\.annotations/);
  assert.ok(!v.message.includes('last-applied'), v.message);
  const badLabel = workload('CronJob', 'cj', 'cj-sa', { ...AGENT });
  badLabel.spec.jobTemplate.spec.template.metadata.labels.team = 5;
  const l = checkInjection(badLabel, { config }).violations[0];
  // at the key itself, so lint's line is the key's
  assert.equal(l.path, 'spec.jobTemplate.spec.template.metadata.labels.team');
  assert.match(l.message, /spec\.jobTemplate\.spec\.template\.metadata\.labels\["team"\] is 5, a number, but labels are strings\. .*Fix: put the value in quotes as you wrote it \(team: "\.\.\."\), or YAML reads it as a number\.$/);
  const hn = workload('Deployment', 'hn', 'hn-sa');
  hn.spec.template.spec.hostNetwork = true;
  assert.match(checkInjection(hn, { config }).violations[0].message, /Fix: remove hostNetwork, label the pod template \(spec\.template\.metadata\.labels\) kagenti\.io\/authbridge-inject: "false" to inject spiffe-helper only, or kagenti\.io\/inject: disabled\.$/);
  const ann = workload('Deployment', 'a', 'a-sa');
  ann.spec.template.metadata.annotations = { 'kagenti.io/mtls-mode': 'sometimes' };
  assert.match(checkInjection(ann, { config }).violations[0].message, /annotation kagenti\.io\/mtls-mode \(spec\.template\.metadata\.annotations\) is "sometimes"/);
});

test('policies.<injection warning>: off silences that warning everywhere injection runs; deny is not an action for a warning', () => {
  const job = workload('Job', 'j', 'j-sa');
  job.spec.template.spec.restartPolicy = 'Never';
  job.spec.template.spec.initContainers = [{ name: 'prep', image: 'p:1' }];
  const on = checkInjection(job, { config, namespace: 'team-a' }).warnings.map((w) => w.rule).sort();
  assert.deepEqual(on, ['init-before-proxy', 'sidecars-block-completion']);
  const quiet = configFromObject({ policies: { 'init-before-proxy': 'off' } });
  assert.deepEqual(checkInjection(job, { config: quiet, namespace: 'team-a' }).warnings.map((w) => w.rule), ['sidecars-block-completion']);
  assert.throws(() => configFromObject({ policies: { 'init-before-proxy': 'deny' } }), /policies\.init-before-proxy/);
  // the Fix of a workload's warning names the pod template's annotations, not the workload's
  const w = checkInjection(job, { config, namespace: 'team-a' }).warnings.find((x) => x.rule === 'sidecars-block-completion')!;
  assert.match(w.message, /Fix: annotate the pod template \(spec\.template\.metadata\.annotations\) kagenti\.io\/native-sidecars: "true"/);
});

test('samePodTemplate: a template nested past the stack counts as changed, never throws', () => {
  const nested = () => {
    const root: Record<string, unknown> = {};
    let deep = root;
    for (let i = 0; i < 50000; i++) deep = (deep.x = {}) as Record<string, unknown>;
    return root;
  };
  const a = workload('Deployment', 'a', 'sa');
  const b = workload('Deployment', 'a', 'sa');
  a.spec.template.spec.extra = nested();
  b.spec.template.spec.extra = nested();
  assert.equal(samePodTemplate(a, b), false);
});

test('checkInjection: every injection denial of a template is its own error, at its own key', () => {
  const d = workload('Deployment', 'many', 'many-sa');
  d.spec.template.spec.hostNetwork = true;
  d.spec.template.spec.containers[0].ports = [{ containerPort: 15123 }];
  d.spec.template.spec.containers.push({ name: 'spiffe-helper', image: 'mine:1' });
  const r = checkInjection(d, { config, namespace: 'team-a' });
  assert.deepEqual(
    r.violations.map((v) => [v.rule, v.path]),
    [
      ['host-network', 'spec.template.spec.hostNetwork'],
      ['reserved-name', 'spec.template.spec.containers.1.name'],
      ['port-conflict', 'spec.template.spec.containers.0.ports.0.containerPort'],
    ],
  );
  for (const v of r.violations) assert.match(v.message, /^\[[a-z-]+\] Deployment team-a\/many: spec\.template\.spec\.|^\[port-conflict\] Deployment team-a\/many: container /);
});

test('checkInjection: the proxy-uid warning points at the container that sets uid 1337, else at the pod\'s securityContext', () => {
  const d = workload('Deployment', 'uid', 'uid-sa');
  d.spec.template.spec.containers.push({ name: 'side', image: 'x', securityContext: { runAsUser: 1337 } });
  const w = checkInjection(d, { config, namespace: 'team-a' }).warnings.filter((v) => v.rule === 'proxy-uid');
  assert.equal(w.length, 1);
  assert.equal(w[0]!.path, 'spec.template.spec.containers.1.securityContext.runAsUser');
  assert.match(w[0]!.message, /container side runs as uid 1337 \(spec\.template\.spec\.containers\[1\]\.securityContext\.runAsUser\)/);
  const p = workload('Deployment', 'uid2', 'uid2-sa');
  p.spec.template.spec.securityContext = { runAsUser: 1337 };
  const v = checkInjection(p, { config, namespace: 'team-a' }).warnings.filter((x) => x.rule === 'proxy-uid');
  assert.equal(v[0]?.path, 'spec.template.spec.securityContext.runAsUser');
});

test('checkInjection: the probe-through-proxy warning points at the first probe it lists, in containers or native-sidecar init containers; off silences it', () => {
  const d = workload('Deployment', 'probe', 'probe-sa');
  d.spec.template.metadata.annotations = { 'kagenti.io/mtls-mode': 'strict' };
  d.spec.template.spec.containers.push({ name: 'api', image: 'x', ports: [{ name: 'http', containerPort: 8080 }], readinessProbe: { httpGet: { path: '/ready', port: 'http' } } });
  const w = checkInjection(d, { config, namespace: 'team-a' }).warnings.filter((v) => v.rule === 'probe-through-proxy');
  assert.deepEqual(w.map((v) => [v.severity, v.path]), [['warning', 'spec.template.spec.containers.1.readinessProbe']]);
  assert.match(w[0]!.message, MESSAGE);
  assert.match(w[0]!.message, /^\[probe-through-proxy\] Deployment team-a\/probe: container api has an httpGet probe on a port that proxy-init redirects to the proxy \(spec\.template\.spec\.containers\[1\]\.readinessProbe on port 8080\), .* Fix: use an exec probe for it, or annotate the pod template \(spec\.template\.metadata\.annotations\) kagenti\.io\/mtls-mode: permissive\.$/);
  // a CronJob's native sidecar, first of the pod's init containers that has such a probe
  const c = workload('CronJob', 'cron', 'cron-sa');
  const tpl = c.spec.jobTemplate.spec.template;
  tpl.metadata.annotations = { 'kagenti.io/mtls-mode': 'strict', 'kagenti.io/native-sidecars': 'true' };
  tpl.spec.initContainers = [{ name: 'prep', image: 'x' }, { name: 'sql-proxy', image: 'x', restartPolicy: 'Always', startupProbe: { grpc: { port: 9000 } } }];
  const v = checkInjection(c, { config, namespace: 'team-a' }).warnings.filter((x) => x.rule === 'probe-through-proxy');
  assert.deepEqual(v.map((x) => x.path), ['spec.jobTemplate.spec.template.spec.initContainers.1.startupProbe']);
  // a container name that reads like the field does not move the pointer
  const tricky = structuredClone(d);
  tricky.spec.template.spec.containers[1].name = 'x redirects to the proxy (spec.template.spec.containers[0].livenessProbe on port 1';
  assert.deepEqual(checkInjection(tricky, { config, namespace: 'team-a' }).warnings.filter((x) => x.rule === 'probe-through-proxy').map((x) => x.path), ['spec.template.spec.containers.1.readinessProbe']);
  const quiet = configFromObject({ policies: { 'probe-through-proxy': 'off' } });
  assert.deepEqual(checkInjection(d, { config: quiet, namespace: 'team-a' }).warnings.filter((x) => x.rule === 'probe-through-proxy'), []);
  assert.throws(() => configFromObject({ policies: { 'probe-through-proxy': 'deny' } }), /policies\.probe-through-proxy/);
});

test('checkInjection: a StatefulSet with 20,000 template volumes and 10,000 claims, half of them of the same names', () => {
  // The claims are looked up in a set: the template's volumes are not each checked against every claim.
  const o = workload('StatefulSet', 'db-agent', 'db-sa');
  o.spec.template.spec.volumes = Array.from({ length: 20000 }, (_, i) => ({ name: `v${i}`, emptyDir: {} }));
  o.spec.volumeClaimTemplates = Array.from({ length: 10000 }, (_, i) => ({ metadata: { name: `v${2 * i}` }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } }));
  o.spec.template.spec.containers[0].volumeMounts = [{ name: 'v19998', mountPath: '/claim' }, { name: 'v19999', mountPath: '/own' }];
  assert.deepEqual(checkInjection(o, { config, namespace: 'team-a' }).violations, []);
  // a template volume among them named like an injected one is found, at its index in the template as written
  o.spec.template.spec.volumes[19999] = { name: 'svid-output', emptyDir: {} };
  const v = checkInjection(o, { config, namespace: 'team-a' }).violations;
  assert.deepEqual(v.map((x) => [x.rule, x.path]), [['reserved-name', 'spec.template.spec.volumes.19999.name']]);
});

test('checkInjection: a StatefulSet with claims and template volumes that are not a list is malformed-object, as without claims', () => {
  for (const volumes of [{ name: 'cache' }, 'cache', 5]) {
    for (const claims of [[{ metadata: { name: 'data' } }], undefined]) {
      const o = workload('StatefulSet', 'db', 'db-sa');
      o.spec.template.spec.volumes = volumes;
      if (claims) o.spec.volumeClaimTemplates = claims;
      const v = checkInjection(o, { config, namespace: 'team-a' }).violations;
      assert.deepEqual(v.map((x) => x.rule), ['malformed-object'], `${JSON.stringify(volumes)} with claims ${!!claims}`);
      assert.match(v[0].message, /: spec\.template\.spec\.volumes must be a list\./);
    }
  }
  // null is no volumes: the claims are the pod's volumes
  const o = workload('StatefulSet', 'db', 'db-sa');
  o.spec.template.spec.volumes = null;
  o.spec.volumeClaimTemplates = [{ metadata: { name: 'data' } }];
  assert.deepEqual(checkInjection(o, { config, namespace: 'team-a' }).violations, []);
});

test('RenderedNamespaces (lint, inject) keeps the first Namespace of a name, its string labels only, up to the cap', () => {
  const seen = new RenderedNamespaces();
  const ns = (name: unknown, labels: unknown) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } });
  seen.note({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'team-a', labels: { a: 'b' } } });
  assert.equal(seen.labels('team-a'), undefined, 'only Namespaces');
  seen.note(ns('team-a', { 'kagenti.io/authbridge-mode': 'waypoint', count: 3, flag: true }));
  seen.note(ns('team-a', { 'kagenti.io/authbridge-mode': 'lite' }));
  assert.deepEqual(seen.labels('team-a'), { 'kagenti.io/authbridge-mode': 'waypoint' });
  seen.note(ns('team-b', null));
  assert.deepEqual(seen.labels('team-b'), {});
  seen.note(ns(7, {}));
  seen.note({ kind: 'Namespace' });
  seen.note(null);
  const copies: string[] = [];
  const copying = new RenderedNamespaces((s) => (copies.push(s), s));
  copying.note(ns('team-c', { k: 'v' }));
  assert.deepEqual(copies, ['k', 'v', 'team-c']);
  const many = new RenderedNamespaces();
  for (let i = 0; i <= MAX_RENDERED_NAMESPACES; i++) many.note(ns(`ns-${i}`, { i: String(i) }));
  assert.deepEqual(many.labels(`ns-${MAX_RENDERED_NAMESPACES - 1}`), { i: String(MAX_RENDERED_NAMESPACES - 1) });
  assert.equal(many.labels(`ns-${MAX_RENDERED_NAMESPACES}`), undefined, 'past the cap, not kept');
});

test('checkObject: token-review checks are for core v1 ConfigMaps only (no apiVersion: the admission request or cache names the core resource)', () => {
  assert.deepEqual(checkObject(cm({}, { apiVersion: 'example.com/v1' }), { config, issuer: EKS }), []);
  assert.deepEqual(checkObject(cm({}, { apiVersion: 'v2' }), { config, issuer: EKS }), []);
  assert.equal(checkObject(cm({}), { config, issuer: EKS }).length, 1);
  const { apiVersion: _, ...bare } = cm({});
  assert.equal(checkObject(bare, { config, issuer: EKS }).length, 1);
});

test('token-review-required with token-review-value off: a boolean true is named as the boolean, not the string "true", and the fix is to quote it', () => {
  const off = configFromObject({ policies: { 'token-review-value': 'off' } });
  for (const [value, said] of [
    [true, 'the YAML boolean true'],
    [1, 'the number 1'],
    [null, 'null'],
  ] as const) {
    const [v] = checkObject(cm({ K8S_TOKEN_REVIEW: value }), { config: off, issuer: EKS });
    assert.equal(v.rule, 'token-review-required');
    assert.equal(v.path, 'data.K8S_TOKEN_REVIEW');
    assert.ok(v.message.startsWith(`[token-review-required] ConfigMap kagent/kagent-enterprise-config: data.K8S_TOKEN_REVIEW is ${said}, not the string "true". `), v.message);
    assert.ok(v.message.endsWith('Fix: quote it: K8S_TOKEN_REVIEW: "true".'), v.message);
    assert.match(v.message, MESSAGE);
    const [u] = checkObject(cm({ K8S_TOKEN_REVIEW: value }), { config: off, issuer: UNKNOWN });
    assert.ok(u.message.includes(`is ${said}, not the string "true", and the cluster's service-account issuer could not be determined.`), u.message);
    assert.ok(u.message.includes('Fix: quote it: K8S_TOKEN_REVIEW: "true" if the issuer is external'), u.message);
  }
  // a string is still quoted as it is
  assert.match(checkObject(cm({ K8S_TOKEN_REVIEW: 'yes' }), { config: off, issuer: EKS })[0].message, /data\.K8S_TOKEN_REVIEW is "yes"\. .*Fix: set K8S_TOKEN_REVIEW: "true" in data\.$/);
});

test('a long K8S_TOKEN_REVIEW value (or look-alike key) is quoted cut to 40 characters with its length, so the why and the Fix always follow', () => {
  const long = 'x'.repeat(200_000);
  const cut = `"${'x'.repeat(40)}..." (200000 characters)`;
  const [value] = checkObject(cm({ K8S_TOKEN_REVIEW: long }), { config, issuer: EKS });
  assert.equal(value.rule, 'token-review-value');
  assert.ok(value.message.startsWith(`[token-review-value] ConfigMap kagent/kagent-enterprise-config: data.K8S_TOKEN_REVIEW is ${cut}. Only the exact strings`), value.message);
  assert.ok(value.message.length < 500 && value.message.endsWith('Fix: set K8S_TOKEN_REVIEW: "true".'), value.message);
  const off = configFromObject({ policies: { 'token-review-value': 'off' } });
  const [req] = checkObject(cm({ K8S_TOKEN_REVIEW: long }), { config: off, issuer: EKS });
  assert.ok(req.message.includes(`data.K8S_TOKEN_REVIEW is ${cut}. The cluster's`) && req.message.length < 500, req.message);
  // a surrogate pair at the cut is never split; exactly 40 characters is not cut
  assert.ok(checkObject(cm({ K8S_TOKEN_REVIEW: `${'x'.repeat(39)}😀yyy` }), { config, issuer: EKS })[0].message.includes(`is "${'x'.repeat(39)}..." (44 characters).`));
  assert.ok(checkObject(cm({ K8S_TOKEN_REVIEW: 'y'.repeat(40) }), { config, issuer: EKS })[0].message.includes(`is "${'y'.repeat(40)}".`));
  const key = `${' '.repeat(100)}K8S_TOKEN_REVIEW`;
  const [look] = checkObject(cm({ [key]: 'true' }), { config, issuer: EKS });
  assert.ok(look.message.includes(`(data has "${' '.repeat(40)}..." (116 characters): keys must match exactly, spaces included)`), look.message);
});

test('token rules on a ConfigMap the cluster holds immutable: the fix is to delete and recreate it (its data cannot change)', () => {
  const RECREATE = /Fix: delete ConfigMap kagent\/kagent-enterprise-config and create it again with K8S_TOKEN_REVIEW: "true" (in|under) data.*, since it is immutable \(immutable: true\) and the API server refuses any change to its data: kubectl replace --force -f <file>, or kubectl delete, then kubectl apply/;
  const ctx = { config, issuer: EKS, immutable: true };
  for (const obj of [cm({}), cm({ K8S_TOKEN_REVIEW: 'True' }), cm({ K8S_TOKEN_REVIEW: 'false' }), cm({}, { binaryData: { K8S_TOKEN_REVIEW: 'dHJ1ZQ==' } })]) {
    const [v] = checkObject(obj, ctx);
    assert.match(v.message, RECREATE, v.message);
    assert.ok(!/Fix: set /.test(v.message), v.message);
    assert.match(v.message, MESSAGE);
  }
  const [unknown] = checkObject(cm({}), { ...ctx, issuer: UNKNOWN });
  assert.match(unknown.message, /Fix: if the issuer is external, delete ConfigMap .* kubectl apply; or set tokenReview\.issuer/);
  // not immutable in the cluster (a CREATE, lint): set it
  assert.match(checkObject(cm({}), { config, issuer: EKS })[0].message, /Fix: set K8S_TOKEN_REVIEW: "true" in data\.$/);
});

test('checkMissingTokenReview: a controller that reads only ConfigMaps the webhook does not watch (a kustomize hash, another name) is told so, not that the ConfigMap does not exist', () => {
  const controller = (container: Record<string, unknown>) => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'kagent-controller', namespace: 'kagent' },
    spec: { template: { metadata: { labels: { app: 'kagent' } }, spec: { containers: [{ name: 'c', image: 'kagent:1', ...container }] } } },
  });
  const [hashed] = checkMissingTokenReview([controller({ envFrom: [{ secretRef: { name: 's' } }, { configMapRef: { name: 'kagent-enterprise-config-9k6bh8fd92' } }] })], [], config, EKS);
  assert.equal(hashed.path, 'spec.template.spec.containers.0.envFrom.1.configMapRef.name');
  assert.equal(
    hashed.message,
    `[token-review-required] Deployment kagent/kagent-controller: kagent's controller reads its environment from ConfigMap kagent/kagent-enterprise-config-9k6bh8fd92 (spec.template.spec.containers[0].envFrom[1].configMapRef.name), which kustomize's configMapGenerator made from kagent-enterprise-config, but the webhook does not watch that ConfigMap (tokenReview.configMapNames: kagent-enterprise-config), so it cannot check that K8S_TOKEN_REVIEW is "true" there, at admission or here. The cluster's service-account issuer ${EKS.issuer} is external (EKS), so without it kagent cannot verify agent tokens locally and agent callbacks fail with 401. Fix: set generatorOptions: disableNameSuffixHash: true in the kustomization, so the ConfigMap is named kagent-enterprise-config, which the webhook watches, and set K8S_TOKEN_REVIEW: "true" in it (adding kagent-enterprise-config-9k6bh8fd92 to tokenReview.configMapNames holds only until the content, and so the hash, changes).`,
  );
  assert.ok(!hashed.message.includes('does not exist'));
  const [other] = checkMissingTokenReview([controller({ env: [{ name: 'K8S_TOKEN_REVIEW', valueFrom: { configMapKeyRef: { name: 'kagent-settings', key: 'K8S_TOKEN_REVIEW' } } }] })], [], config, EKS);
  assert.match(other.message, /reads its environment from ConfigMap kagent\/kagent-settings \(spec\.template\.spec\.containers\[0\]\.env\[0\]\.valueFrom\.configMapKeyRef\.name\), but the webhook does not watch that ConfigMap .*Fix: add kagent-settings to tokenReview\.configMapNames in the webhook config \(or, if a kustomize configMapGenerator named it, set generatorOptions: disableNameSuffixHash: true\), and set K8S_TOKEN_REVIEW: "true" in it\.$/);
  // it reads a watched name (too): that one does not exist, as before; and so with no ConfigMap at all
  const both = checkMissingTokenReview([controller({ envFrom: [{ configMapRef: { name: 'x' } }, { configMapRef: { name: 'kagent-enterprise-config' } }] })], [], config, EKS);
  assert.match(both[0].message, /kagent's controller runs, but ConfigMap kagent\/kagent-enterprise-config does not exist/);
  assert.match(checkMissingTokenReview([controller({})], [], config, EKS)[0].message, /does not exist/);
  // the cache's slimmed Deployment carries the references it read (configMapRefs)
  const slim = { kind: 'Deployment', metadata: { name: 'kagent-controller', namespace: 'kagent' }, configMapRefs: [{ name: 'kagent-enterprise-config-9k6bh8fd92', path: 'spec.template.spec.containers[0].envFrom[0].configMapRef.name' }] };
  assert.match(checkMissingTokenReview([slim], [], config, EKS)[0].message, /reads its environment from ConfigMap kagent\/kagent-enterprise-config-9k6bh8fd92 .*disableNameSuffixHash/);
  // where the watched ConfigMap exists but the controller reads only another one, the "true" there never reaches it
  const [notRead] = checkMissingTokenReview([slim], [cm({ K8S_TOKEN_REVIEW: 'true' })], config, EKS);
  assert.match(notRead.message, /kagent's controller does not read K8S_TOKEN_REVIEW from ConfigMap kagent\/kagent-enterprise-config: .*it reads ConfigMap kagent\/kagent-enterprise-config-9k6bh8fd92/);
  // reading the watched one (the cache marks the reference that delivers the key), nothing
  const reads = { ...slim, configMapRefs: [{ name: 'kagent-enterprise-config', path: 'spec.template.spec.containers[0].envFrom[0].configMapRef.name', delivers: true }] };
  assert.deepEqual(checkMissingTokenReview([reads], [cm({ K8S_TOKEN_REVIEW: 'true' })], config, EKS), []);
});

test('unique-service-account: one workload mid-rollout of a kagenti.io/agent label is one other agent, named with its label', () => {
  // weather's old pods count as Deployment/weather, its new ones as agent wx: one workload, not "and 1 more"
  const news = ref('Deployment', 'news', 'shared');
  const oldPod = ref('Deployment', 'weather', 'shared', { source: { kind: 'Pod', name: 'weather-o-aaaaa' } });
  const newPod = ref('Deployment', 'weather', 'shared', { agent: 'wx', source: { kind: 'Pod', name: 'weather-n-bbbbb' } });
  const [v] = checkUnique(news, [oldPod, newPod], config);
  assert.match(v!.message, /is already the identity of agent Deployment\/weather \(kagenti\.io\/agent=wx\)\. Both would share /);
  // a second workload is still counted
  const [two] = checkUnique(news, [oldPod, newPod, ref('Deployment', 'maps', 'shared')], config);
  assert.match(two!.message, /agents Deployment\/weather \(kagenti\.io\/agent=wx\) and Deployment\/maps\. All 3 would share /);
});

test('checkUniqueSince: sharing warned on an allowed request gives no retry as its fix, and names the kind of what adds no sharing', () => {
  const newsPods = ref('Deployment', 'news', 'shared', { former: 'moved', source: { kind: 'Pod', name: 'news-n-aaaaa' } });
  const weather = ref('Deployment', 'weather', 'shared');
  const [w] = checkUniqueSince(weather, weather, [newsPods], config);
  assert.equal(w!.severity, 'warning');
  assert.doesNotMatch(w!.message, /retry/);
  assert.match(w!.message, /Fix: none needed: it ends once the old pod of Deployment\/news has stopped; to end it sooner, give each agent its own ServiceAccount/);
  // the same sharing added by a CREATE is denied, and retrying is its first fix
  const [d] = checkUnique(ref('Deployment', 'maps', 'shared'), [newsPods], config);
  assert.match(d!.message, /Fix: retry once the old pod of Deployment\/news has stopped, or /);
  // a new ReplicaSet of an Argo Rollout whose other ReplicaSet already shares: "this ReplicaSet", not "this pod"
  const rs = ref('Rollout', 'weather', 'shared', { source: { kind: 'ReplicaSet', name: 'weather-1a2b3c4d5e' } });
  const prev = ref('Rollout', 'weather', 'shared', { source: { kind: 'ReplicaSet', name: 'weather-6c7d8e9f0a' } });
  const [r] = checkUniqueSince(rs, prev, [ref('Deployment', 'news', 'shared'), prev], config);
  assert.match(r!.message, /Not denied: its workload Rollout\/weather already shares it, and this ReplicaSet adds no sharing\. Fix: /);
});

test('checkAgentLabelChange: a finished pod claims nothing, so relabelling it is allowed; a pending one is not called running', () => {
  const pod = (labels: Record<string, string>, phase: string) => ({ kind: 'Pod', metadata: { name: 'p', namespace: 'team-a', labels }, spec: { serviceAccountName: 's' }, status: { phase } });
  for (const phase of ['Succeeded', 'Failed']) assert.deepEqual(checkAgentLabelChange(pod({}, phase), pod(AGENT, phase), config), [], phase);
  const [v] = checkAgentLabelChange(pod({}, 'Pending'), pod(AGENT, 'Pending'), config);
  assert.match(v!.message, /changes from "agent" to unset on a pending pod\. /);
  assert.match(checkAgentLabelChange(pod({}, 'Running'), pod(AGENT, 'Running'), config)[0]!.message, /on a running pod\. /);
});

test('dedicated-service-account on a controller\'s pod: the fix is in the template of the workload that creates it', () => {
  const pod = { kind: 'Pod', metadata: { name: 'nightly-29000000-abcde', namespace: 'team-a', labels: AGENT }, spec: podSpec('default') };
  const fix = (workload?: { kind: string; name: string }) => checkObject(pod, { config, issuer: EKS, workload })[0]!.message.replace(/^.* Fix: /, '');
  assert.equal(fix({ kind: 'CronJob', name: 'nightly' }), 'create a ServiceAccount for the agent and set spec.jobTemplate.spec.template.spec.serviceAccountName in CronJob/nightly, which creates this pod.');
  assert.equal(fix({ kind: 'Rollout', name: 'weather' }), 'create a ServiceAccount for the agent and set spec.template.spec.serviceAccountName in Rollout/weather, which creates this pod.');
  assert.equal(fix({ kind: 'ScaledJob', name: 'worker' }), 'create a ServiceAccount for the agent and set spec.jobTargetRef.template.spec.serviceAccountName in ScaledJob/worker, which creates this pod.');
  assert.equal(fix({ kind: 'Notebook', name: 'lab' }), 'create a ServiceAccount for the agent and set serviceAccountName in the pod template of Notebook/lab, which creates this pod.');
  assert.equal(fix(), 'create a ServiceAccount for the agent and set spec.serviceAccountName.', 'a bare pod');
  // a Knative Revision's pod counts as its Configuration, but a Knative Service owns that and writes its template back
  const knative = (labels: Record<string, string>) =>
    checkObject({ ...pod, metadata: { ...pod.metadata, labels: { ...AGENT, ...labels } } }, { config, issuer: EKS, workload: { kind: 'Configuration', name: 'hello' } })[0]!.message.replace(/^.* Fix: /, '');
  const revision = { 'serving.knative.dev/configuration': 'hello', 'serving.knative.dev/revision': 'hello-00001' };
  assert.equal(
    knative({ ...revision, 'serving.knative.dev/service': 'hello' }),
    'create a ServiceAccount for the agent and set spec.template.spec.serviceAccountName in Knative Service hello (kubectl -n team-a edit ksvc hello), the owner of Configuration/hello, which creates this pod (the Service reverts edits made to its Configuration).',
  );
  assert.equal(
    knative(revision),
    'create a ServiceAccount for the agent and set spec.template.spec.serviceAccountName in the Knative Service that owns Configuration/hello, which creates this pod (the Service reverts edits made to its Configuration), or in Configuration/hello itself if no Service owns it.',
  );
  assert.equal(fix({ kind: 'Configuration', name: 'hello' }), 'create a ServiceAccount for the agent and set serviceAccountName in the pod template of Configuration/hello, which creates this pod.', 'not labelled as a Knative Revision\'s pod: a kind of its own');
  assert.equal(checkObject(pod, { config, issuer: EKS })[0]!.path, 'spec.serviceAccountName', 'the path stays the pod\'s field');
});

test('a fix for a controller\'s pod names the template the user writes, with its path: a Knative Service, a LeaderWorkerSet\'s leader or worker template, a JobSet\'s replicated Job, a RayService\'s group', () => {
  // what sidecars-block-completion tells to annotate, for a pod with these owner and labels (no cluster)
  const fix = (owner: Record<string, unknown> | null, labels: Record<string, string>) => {
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p-0', namespace: 'team-a', labels: { ...AGENT, ...labels }, ...(owner ? { ownerReferences: [{ controller: true, uid: 'u', ...owner }] } : {}) }, spec: { serviceAccountName: 'sa', restartPolicy: 'OnFailure', containers: [{ name: 'a', image: 'x' }] } };
    const r = injectTemplate(structuredClone(pod), config, { namespace: 'team-a', ref: 'Pod team-a/p-0', owner: templateWorkload(pod, config, 'team-a') }, 'spec');
    assert.equal(r.outcome, 'inject');
    const w = r.outcome === 'inject' ? r.warnings.find((m) => m.startsWith('[sidecars-block-completion]')) : undefined;
    return /Fix: annotate (.*) kagenti\.io\/native-sidecars: "true" /.exec(w ?? '')?.[1];
  };
  // a Knative Revision's pod: the Service its label names, which writes the Configuration's template over every edit
  const rs = { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'hello-00001-deployment-7d4b9c' };
  const knative = { 'serving.knative.dev/configuration': 'hello', 'serving.knative.dev/revision': 'hello-00001', 'pod-template-hash': '7d4b9c' };
  assert.equal(fix(rs, { ...knative, 'serving.knative.dev/service': 'hello' }), 'the pod template of Knative Service/hello (spec.template.metadata.annotations)');
  assert.equal(fix(rs, knative), 'the pod template of Configuration/hello (spec.template.metadata.annotations)');
  // a LeaderWorkerSet's pods (their StatefulSets labelled with it): worker-index 0 is a group's leader
  const lws = (index?: string) => fix({ apiVersion: 'apps/v1', kind: 'StatefulSet', name: index === '0' ? 'chat' : 'chat-0' }, { 'leaderworkerset.sigs.k8s.io/name': 'chat', ...(index ? { 'leaderworkerset.sigs.k8s.io/worker-index': index } : {}) });
  assert.equal(lws('0'), 'the pod template of LeaderWorkerSet/chat (spec.leaderWorkerTemplate.leaderTemplate.metadata.annotations, or spec.leaderWorkerTemplate.workerTemplate.metadata.annotations if it has no leaderTemplate)');
  assert.equal(lws('2'), 'the pod template of LeaderWorkerSet/chat (spec.leaderWorkerTemplate.workerTemplate.metadata.annotations)');
  assert.equal(lws(), 'the pod template of LeaderWorkerSet/chat (spec.leaderWorkerTemplate.leaderTemplate.metadata.annotations, or spec.leaderWorkerTemplate.workerTemplate.metadata.annotations for a worker pod)');
  // a JobSet's pod: its replicated Job by the label JobSet sets
  const jobset = { apiVersion: 'batch/v1', kind: 'Job', name: 'train-workers-0' };
  assert.equal(fix(jobset, { 'jobset.sigs.k8s.io/jobset-name': 'train', 'jobset.sigs.k8s.io/replicatedjob-name': 'workers' }), 'the pod template of JobSet/train (spec.replicatedJobs[name=workers].template.spec.template.metadata.annotations)');
  assert.equal(fix(jobset, { 'jobset.sigs.k8s.io/jobset-name': 'train' }), 'the pod template of JobSet/train (spec.replicatedJobs[].template.spec.template.metadata.annotations)');
  // a kind whose template is not known: the field in words
  assert.equal(fix({ apiVersion: 'kubeflow.org/v1', kind: 'Notebook', name: 'lab' }, {}), 'the pod template of Notebook/lab (metadata.annotations of its pod template)');
  // KEDA's ScaledJob: the template of the Job spec it makes its Jobs from
  assert.equal(fix({ apiVersion: 'keda.sh/v1alpha1', kind: 'ScaledJob', name: 'worker' }, {}), 'the pod template of ScaledJob/worker (spec.jobTargetRef.template.metadata.annotations)');
});

test('workloadTemplateAt: a RayService\'s or RayCluster\'s head or worker group by the pod\'s ray.io labels, and a label value no pod can carry is not shown', () => {
  const at = (kind: string, labels: Record<string, string>) => {
    const a = workloadTemplateAt(kind, labels);
    return a && templateFieldText(a, 'metadata.annotations');
  };
  assert.equal(at('RayService', { 'ray.io/node-type': 'head' }), 'spec.rayClusterConfig.headGroupSpec.template.metadata.annotations');
  assert.equal(at('RayService', { 'ray.io/node-type': 'worker', 'ray.io/group': 'gpu' }), 'spec.rayClusterConfig.workerGroupSpecs[groupName=gpu].template.metadata.annotations');
  assert.equal(at('RayCluster', { 'ray.io/node-type': 'worker', 'ray.io/group': 'gpu' }), 'spec.workerGroupSpecs[groupName=gpu].template.metadata.annotations');
  assert.equal(at('RayService', {}), 'spec.rayClusterConfig.headGroupSpec.template.metadata.annotations, or spec.rayClusterConfig.workerGroupSpecs[].template.metadata.annotations for a worker pod');
  assert.equal(at('JobSet', { 'jobset.sigs.k8s.io/replicatedjob-name': 'a b]' }), 'spec.replicatedJobs[].template.spec.template.metadata.annotations');
  assert.equal(at('ScaledJob', {}), 'spec.jobTargetRef.template.metadata.annotations');
  assert.equal(at('Notebook', {}), null);
  // dedicated-service-account names the same template for such a pod
  const pod = { kind: 'Pod', metadata: { name: 'chat-0-1', namespace: 'team-a', labels: { ...AGENT, 'leaderworkerset.sigs.k8s.io/worker-index': '1' } }, spec: podSpec('default') };
  assert.match(checkObject(pod, { config, issuer: EKS, workload: { kind: 'LeaderWorkerSet', name: 'chat' } })[0]!.message, /set spec\.leaderWorkerTemplate\.workerTemplate\.spec\.serviceAccountName in LeaderWorkerSet\/chat, which creates this pod\.$/);
});

test('checkMissingTokenReview: the ConfigMap exists with "true", but the controller never gets it (kagent-enterprise#1829, a literal env that overrides envFrom)', () => {
  const controller = (container: Record<string, unknown>) => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'kagent-controller', namespace: 'kagent' },
    spec: { template: { metadata: { labels: { app: 'kagent' } }, spec: { containers: [{ name: 'controller', image: 'kagent:1', ...container }] } } },
  });
  const good = [cm({ K8S_TOKEN_REVIEW: 'true' })];
  // envFrom only from its own ConfigMap: the chart's default
  const [own] = checkMissingTokenReview([controller({ envFrom: [{ configMapRef: { name: 'kagent-controller' } }] })], good, config, EKS);
  assert.equal(own.rule, 'token-review-required');
  assert.equal(own.severity, 'error');
  assert.equal(own.path, 'spec.template.spec.containers.0.envFrom.0.configMapRef.name');
  assert.match(own.message, MESSAGE);
  assert.match(
    own.message,
    /^\[token-review-required\] Deployment kagent\/kagent-controller: kagent's controller does not read K8S_TOKEN_REVIEW from ConfigMap kagent\/kagent-enterprise-config: .*\(it reads ConfigMap kagent\/kagent-controller, spec\.template\.spec\.containers\[0\]\.envFrom\[0\]\.configMapRef\.name\), so the value set there never reaches it\. .*agent callbacks fail with 401\. Fix: add an envFrom entry with configMapRef name kagent-enterprise-config to the controller's container .*then restart deploy\/kagent-controller\.$/,
  );
  // no envFrom at all, and an envFrom with a prefix (the variable is then <prefix>K8S_TOKEN_REVIEW): the same
  assert.match(checkMissingTokenReview([controller({})], good, config, EKS)[0].message, /does not read K8S_TOKEN_REVIEW .*\(it reads no ConfigMap\)/);
  // it reads the ConfigMap, but not the key as K8S_TOKEN_REVIEW: an envFrom with a prefix (the variable is then
  // <prefix>K8S_TOKEN_REVIEW), env entries of other keys, K8S_TOKEN_REVIEW from another key, only an init container:
  // a message of its own, with the fix for that case
  const cmName = 'kagent-enterprise-config';
  for (const [c, path, how, fix] of [
    [{ envFrom: [{ prefix: 'KAGENT_', configMapRef: { name: cmName } }] }, 'spec.template.spec.containers.0.envFrom.0.configMapRef.name', /through an envFrom entry with a prefix \(spec\.template\.spec\.containers\[0\]\.envFrom\[0\]\.configMapRef\.name\), so the variable it gets is named with that prefix, not K8S_TOKEN_REVIEW/, /Fix: remove that envFrom entry's prefix, or add an env entry/],
    [{ env: [{ name: 'LOG_LEVEL', valueFrom: { configMapKeyRef: { name: cmName, key: 'LOG_LEVEL' } } }] }, 'spec.template.spec.containers.0.env.0.valueFrom.configMapKeyRef.name', /in env entries \(.*\), but none named K8S_TOKEN_REVIEW takes its key K8S_TOKEN_REVIEW/, /Fix: add an env entry to the controller's container: name K8S_TOKEN_REVIEW, valueFrom\.configMapKeyRef name kagent-enterprise-config, key K8S_TOKEN_REVIEW, then/],
    [{ env: [{ name: 'K8S_TOKEN_REVIEW', valueFrom: { configMapKeyRef: { name: cmName, key: 'TOKEN_REVIEW' } } }] }, 'spec.template.spec.containers.0.env.0.valueFrom.configMapKeyRef.name', /in env entries/, /Fix: add an env entry/],
    [{ initContainers: [{ name: 'setup', image: 'x', envFrom: [{ configMapRef: { name: cmName } }] }] }, 'spec.template.spec.initContainers.0.envFrom.0.configMapRef.name', /only in an init container \(spec\.template\.spec\.initContainers\[0\]\.envFrom\[0\]\.configMapRef\.name\), whose environment the controller's container does not get/, /Fix: add an envFrom entry with configMapRef name kagent-enterprise-config to the controller's container \(spec\.template\.spec\.containers\[0\]\.envFrom\), then restart deploy\/kagent-controller\.$/],
  ] as const) {
    const { initContainers, ...container } = c as unknown as { initContainers?: unknown[] } & Record<string, unknown>;
    const obj = controller(container);
    if (initContainers) (obj.spec.template.spec as Record<string, unknown>).initContainers = initContainers;
    const found = checkMissingTokenReview([obj], good, config, EKS);
    assert.equal(found.length, 1, JSON.stringify(c));
    assert.equal(found[0]!.path, path);
    assert.match(found[0]!.message, /^\[token-review-required\] Deployment kagent\/kagent-controller: kagent's controller reads ConfigMap kagent\/kagent-enterprise-config /);
    assert.match(found[0]!.message, how);
    assert.match(found[0]!.message, fix);
    assert.doesNotMatch(found[0]!.message, initContainers ? /prefix/ : /init container/);
  }
  // envFrom the ConfigMap and a literal K8S_TOKEN_REVIEW: "false": the literal wins
  const [literal] = checkMissingTokenReview(
    [controller({ envFrom: [{ configMapRef: { name: 'kagent-enterprise-config' } }], env: [{ name: 'LOG', value: 'x' }, { name: 'K8S_TOKEN_REVIEW', value: 'false' }] })],
    good,
    config,
    EKS,
  );
  assert.equal(literal.path, 'spec.template.spec.containers.0.env.1');
  assert.match(literal.message, MESSAGE);
  assert.match(
    literal.message,
    /^\[token-review-required\] Deployment kagent\/kagent-controller: spec\.template\.spec\.containers\[0\]\.env\[1\] sets K8S_TOKEN_REVIEW to "false" in kagent's controller, which takes precedence over the value from ConfigMap kagent\/kagent-enterprise-config \(env overrides envFrom\)\. .*Fix: remove that env entry/,
  );
  // what reaches it: envFrom the ConfigMap, a configMapKeyRef of its key, a literal "true" (even without the ConfigMap)
  for (const c of [
    { envFrom: [{ configMapRef: { name: 'kagent-controller' } }, { configMapRef: { name: 'kagent-enterprise-config' } }] },
    { env: [{ name: 'K8S_TOKEN_REVIEW', valueFrom: { configMapKeyRef: { name: 'kagent-enterprise-config', key: 'K8S_TOKEN_REVIEW' } } }] },
    { env: [{ name: 'K8S_TOKEN_REVIEW', value: 'false' }, { name: 'K8S_TOKEN_REVIEW', value: 'true' }] },
  ])
    assert.deepEqual(checkMissingTokenReview([controller(c)], good, config, EKS), [], JSON.stringify(c));
  assert.deepEqual(checkMissingTokenReview([controller({ env: [{ name: 'K8S_TOKEN_REVIEW', value: 'true' }] })], [], config, EKS), []);
  // the cache's slimmed Deployment carries the literal (tokenReviewEnv)
  const slim = { kind: 'Deployment', metadata: { name: 'kagent-controller', namespace: 'kagent' }, configMapRefs: [{ name: 'kagent-enterprise-config', path: 'spec.template.spec.containers[0].envFrom[0].configMapRef.name', delivers: true }], tokenReviewEnv: { path: 'spec.template.spec.containers[0].env[0]', value: 'False' } };
  assert.match(checkMissingTokenReview([slim], good, config, EKS)[0].message, /sets K8S_TOKEN_REVIEW to "False"/);
  // only on an external issuer, and the rule's action
  assert.deepEqual(checkMissingTokenReview([controller({})], good, config, UNKNOWN), []);
  assert.deepEqual(checkMissingTokenReview([controller({})], good, configFromObject({ policies: { 'token-review-required': 'off' } }), EKS), []);
});

test('checkControllerTokenReview (lint): kagent\'s controller in a render that never gets K8S_TOKEN_REVIEW from the ConfigMap', async () => {
  const { checkControllerTokenReview } = await import('../webhook/rules.ts');
  const controller = (container: Record<string, unknown>, name = 'kagent-controller') => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name },
    spec: { template: { metadata: { labels: { app: 'kagent' } }, spec: { containers: [{ name: 'controller', image: 'kagent:1', ...container }] } } },
  });
  const ctx = { config, issuer: EKS, namespace: 'kagent' };
  assert.match(checkControllerTokenReview(controller({ envFrom: [{ configMapRef: { name: 'kagent-controller' } }] }), ctx)[0].message, /^\[token-review-required\] Deployment kagent\/kagent-controller: kagent's controller does not read K8S_TOKEN_REVIEW/);
  assert.match(checkControllerTokenReview(controller({ envFrom: [{ configMapRef: { name: 'kagent-enterprise-config' } }], env: [{ name: 'K8S_TOKEN_REVIEW', value: 'false' }] }), ctx)[0].message, /env\[0\] sets K8S_TOKEN_REVIEW to "false"/);
  // a kustomize hash is the configured name in a render
  assert.deepEqual(checkControllerTokenReview(controller({ envFrom: [{ configMapRef: { name: 'kagent-enterprise-config-9k6bh8fd92' } }] }), ctx), []);
  // a prefixed name: the fix says to list it
  assert.match(checkControllerTokenReview(controller({ envFrom: [{ configMapRef: { name: 'prod-kagent-enterprise-config' } }] }), ctx)[0].message, /if ConfigMap prod-kagent-enterprise-config is kagent-enterprise-config renamed .*add its name to tokenReview\.configMapNames/);
  // an envFrom Secret without a prefix may carry it (External Secrets): not checkable, counts as set; with a prefix,
  // or overridden by a literal env, it does not
  const secret = { envFrom: [{ configMapRef: { name: 'kagent-controller' } }, { secretRef: { name: 'kagent-enterprise-settings' } }] };
  assert.deepEqual(checkControllerTokenReview(controller(secret), ctx), []);
  assert.match(checkControllerTokenReview(controller({ envFrom: [{ secretRef: { name: 's' }, prefix: 'X_' }] }), ctx)[0].message, /does not read K8S_TOKEN_REVIEW/);
  assert.match(checkControllerTokenReview(controller({ ...secret, env: [{ name: 'K8S_TOKEN_REVIEW', value: 'false' }] }), ctx)[0].message, /env\[0\] sets K8S_TOKEN_REVIEW to "false"/);
  // another Deployment, an issuer that is not external: nothing
  assert.deepEqual(checkControllerTokenReview(controller({}, 'web'), ctx), []);
  assert.deepEqual(checkControllerTokenReview(controller({}), { ...ctx, issuer: UNKNOWN }), []);
  assert.deepEqual(checkControllerTokenReview(controller({}), { ...ctx, issuer: INTERNAL }), []);
});

test('token-review-value: a null K8S_TOKEN_REVIEW is stored as "", not rejected', () => {
  const [v] = checkObject(cm({ K8S_TOKEN_REVIEW: null }), { config, issuer: UNKNOWN });
  assert.equal(v.rule, 'token-review-value');
  assert.ok(!v.message.includes('rejects'), v.message);
  assert.match(v.message, /data\.K8S_TOKEN_REVIEW is null, not a string\. The API server stores it as the empty string "", which kagent does not read as "true"\./);
  assert.equal(v.schema, undefined);
});

test('stale-injection: a template that no longer asks for injection but keeps an earlier injection\'s pieces is warned at its record, with what was left and how to take it out', () => {
  const cfg = defaultConfig();
  const dep = (labels: Record<string, string>, tpl: Record<string, any>) => ({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'a', namespace: 'team' }, spec: { template: { ...tpl, metadata: { ...tpl.metadata, labels } } } });
  const base = { metadata: { labels: { 'kagenti.io/type': 'agent' } }, spec: { serviceAccountName: 'a', containers: [{ name: 'agent', image: 'example.com/agent:1' }] } };
  const r = injectTemplate(base, cfg, { namespace: 'team', ref: 'Deployment team/a' }, 'spec.template.spec');
  assert.equal(r.outcome, 'inject');
  if (r.outcome !== 'inject') return;
  const injected = r.template as Record<string, any>;
  // opted out with kagenti.io/inject: disabled
  const optedOut = checkInjection(dep({ 'kagenti.io/type': 'agent', 'kagenti.io/inject': 'disabled' }, injected), { config: cfg });
  assert.deepEqual(optedOut.violations, []);
  assert.equal(optedOut.warnings.length, 1);
  const w = optedOut.warnings[0]!;
  assert.equal(w.rule, 'stale-injection');
  assert.equal(w.path, 'spec.template.metadata.annotations.kagenti.io/authbridge-status');
  assert.match(
    w.message,
    /^\[stale-injection\] Deployment team\/a: spec\.template\.metadata\.annotations\["kagenti\.io\/authbridge-status"\] records an earlier injection whose pieces are still in the template \(spiffe-helper, authbridge-proxy, proxy-init and 3 more\), but it is labelled kagenti\.io\/inject: disabled, so the webhook does not inject its pods .* Fix: run `kagenti-webhook inject` on the manifest again \(it takes them and the annotation out\), or remove that label to have them injected and kept current\.$/,
  );
  // the type label removed
  const untyped = checkInjection(dep({}, injected), { config: cfg }).warnings;
  assert.deepEqual(untyped.map((v) => v.rule), ['stale-injection']);
  assert.match(untyped[0]!.message, /but it has no kagenti\.io\/type: agent label, .* or label it kagenti\.io\/type: agent again to have them injected/);
  // silenced with policies.stale-injection: off
  assert.deepEqual(checkInjection(dep({}, injected), { config: configFromObject({ policies: { 'stale-injection': 'off' } }) }).warnings, []);
  // a tool while injectTools is off: /mutate takes the pieces out of its pods, nothing to warn
  assert.deepEqual(checkInjection(dep({ 'kagenti.io/type': 'tool' }, injected), { config: cfg }).warnings, []);
  // the record alone, its pieces already gone: nothing runs, nothing to warn
  const recordOnly = { metadata: injected.metadata, spec: base.spec };
  assert.deepEqual(checkInjection(dep({ 'kagenti.io/inject': 'disabled', 'kagenti.io/type': 'agent' }, recordOnly), { config: cfg }).warnings, []);
  // still asking for injection: no stale-injection (the injection is current)
  assert.ok(!checkInjection(dep({ 'kagenti.io/type': 'agent' }, injected), { config: cfg }).warnings.some((v) => v.rule === 'stale-injection'));
  // a tool also labelled inject: disabled: /mutate does not get its pods either
  const tool = checkInjection(dep({ 'kagenti.io/type': 'tool', 'kagenti.io/inject': 'disabled' }, injected), { config: cfg }).warnings;
  assert.deepEqual(tool.map((v) => v.rule), ['stale-injection']);
  assert.match(tool[0]!.message, /but it is labelled kagenti\.io\/inject: disabled, /);
  // a Job: its template cannot be changed, so the fix says to create it again
  const job = { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'a', namespace: 'team' }, spec: { template: { ...injected, metadata: { ...injected.metadata, labels: { 'kagenti.io/inject': 'disabled', 'kagenti.io/type': 'agent' } } } } };
  assert.match(checkInjection(job, { config: cfg }).warnings[0]!.message, /Fix: run `kagenti-webhook inject` on the manifest again \(it takes them and the annotation out\), or remove that label to have them injected and kept current \(a Job's pod template cannot be changed: delete the Job and create it again with the change\)\.$/);
  // a StatefulSet claim under a reserved volume name is the controller's volume, not a piece left in the template
  const sts = { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'a', namespace: 'team' }, spec: { volumeClaimTemplates: [{ metadata: { name: 'svid-output' } }], template: { metadata: { annotations: injected.metadata.annotations, labels: { 'kagenti.io/inject': 'disabled', 'kagenti.io/type': 'agent' } }, spec: { ...injected.spec, volumes: injected.spec.volumes.filter((v: { name: string }) => v.name !== 'svid-output') } } } };
  const m = checkInjection(sts, { config: cfg }).warnings[0]!.message;
  assert.match(m, /still in the template \(spiffe-helper, authbridge-proxy, proxy-init and 2 more\)/);
});

test('kagent Agents: the fix for the Deployment kagent writes, and for its pods, names the Agent\'s serviceAccountName field, since kagent reverts edits to the Deployment', () => {
  // the labels kagent's controller puts on an Agent's Deployment and pod template (kagent.dev/v1alpha2), with the agent type set through spec.declarative.deployment.labels
  const labels = { ...AGENT, app: 'kagent', kagent: 'weather', 'app.kubernetes.io/managed-by': 'kagent', 'app.kubernetes.io/name': 'weather', 'app.kubernetes.io/part-of': 'kagent' };
  const fix = 'Fix: in kagent Agent team-a/weather (kubectl -n team-a edit agents.kagent.dev weather), whose controller makes ';
  const tail = ' and reverts edits to it, set spec.declarative.deployment.serviceAccountName (spec.byo.deployment.serviceAccountName for a BYO agent) to a ServiceAccount of the agent\'s own, or leave it unset: with neither it nor --default-service-account-name on kagent\'s controller set, kagent creates ServiceAccount "weather".';
  const dep = checkObject(workload('Deployment', 'weather', 'default', labels), { config, issuer: EKS });
  assert.equal(dep.length, 1);
  assert.equal(dep[0]!.rule, 'dedicated-service-account');
  assert.equal(dep[0]!.path, 'spec.template.spec.serviceAccountName');
  assert.ok(dep[0]!.message.endsWith(`${fix}this Deployment${tail}`), dep[0]!.message);
  assert.match(dep[0]!.message, MESSAGE);
  // its pod (from ReplicaSet weather-<hash>): the same field of the same Agent
  const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'weather-7d9f8b6c5-x2x4z', namespace: 'team-a', labels: { ...labels, 'pod-template-hash': '7d9f8b6c5' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'weather-7d9f8b6c5', uid: 'u', controller: true }] }, spec: podSpec() };
  const agent = agentOf(pod, config, 'team-a')!;
  assert.deepEqual([agent.kind, agent.name, agent.maker], ['Deployment', 'weather', { kind: 'Agent', name: 'weather' }]);
  const p = checkObject(pod, { config, issuer: EKS, workload: { kind: agent.kind, name: agent.name } });
  assert.ok(p[0]!.message.endsWith(`${fix}Deployment/weather, which creates this pod,${tail}`), p[0]!.message);
  // unique-service-account: each agent its own ServiceAccount, in the Agent's field
  const u = checkUnique({ ...agent, serviceAccount: 'agents' }, [ref('Deployment', 'other', 'agents')], config);
  assert.match(u[0]!.message, /Fix: give each agent its own ServiceAccount \(for kagent Agent team-a\/weather \(kubectl -n team-a edit agents\.kagent\.dev weather\): spec\.declarative\.deployment\.serviceAccountName \(spec\.byo\.deployment\.serviceAccountName for a BYO agent\); with neither it nor --default-service-account-name on kagent's controller set, kagent creates ServiceAccount "weather"\), or set the same kagenti\.io\/agent label on both if they are one agent\.$/);
  // a Deployment that only looks like it (another name in the kagent label, or another manager): the ordinary fix
  for (const other of [{ ...labels, kagent: 'other' }, { ...labels, 'app.kubernetes.io/managed-by': 'helm' }]) {
    const v = checkObject(workload('Deployment', 'weather', 'default', other), { config, issuer: EKS });
    assert.match(v[0]!.message, /Fix: create a ServiceAccount for the agent and set spec\.template\.spec\.serviceAccountName\.$/);
    assert.equal(agentOf(workload('Deployment', 'weather', 'shared', other), config)!.maker, undefined);
  }
});

test('KServe InferenceServices: the fix for a component\'s Deployment or Knative Configuration, and its pods, names that component\'s serviceAccountName in the InferenceService', () => {
  const labels = { ...AGENT, 'serving.kserve.io/inferenceservice': 'llm', component: 'predictor', app: 'isvc.llm-predictor' };
  const fix = 'Fix: in KServe InferenceService team-a/llm (kubectl -n team-a edit inferenceservices.serving.kserve.io llm), whose controller makes ';
  const tail = " and reverts edits to it, set spec.predictor.serviceAccountName to a ServiceAccount of the agent's own.";
  // raw deployment mode: the Deployment <isvc>-predictor
  const dep = checkObject(workload('Deployment', 'llm-predictor', 'default', labels), { config, issuer: EKS });
  assert.ok(dep[0]!.message.endsWith(`${fix}this Deployment${tail}`), dep[0]!.message);
  const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'llm-predictor-5c7d9-abcde', namespace: 'team-a', labels }, spec: podSpec() };
  assert.ok(checkObject(pod, { config, issuer: EKS, workload: { kind: 'Deployment', name: 'llm-predictor' } })[0]!.message.endsWith(`${fix}Deployment/llm-predictor, which creates this pod,${tail}`));
  // serverless mode: a Knative Revision's pod counts as its Configuration
  const transformer = { ...labels, component: 'transformer' };
  const t = checkObject({ ...pod, metadata: { ...pod.metadata, labels: transformer } }, { config, issuer: EKS, workload: { kind: 'Configuration', name: 'llm-transformer' } })[0]!.message;
  assert.ok(t.endsWith(`${fix}Configuration/llm-transformer, which creates this pod, and reverts edits to it, set spec.transformer.serviceAccountName to a ServiceAccount of the agent's own.`), t);
  const agent = agentOf(workload('Deployment', 'llm-predictor', 'shared', labels), config)!;
  assert.deepEqual(agent.maker, { kind: 'InferenceService', name: 'llm', component: 'predictor' });
  assert.match(checkUnique(agent, [ref('Deployment', 'other', 'shared')], config)[0]!.message, /give each agent its own ServiceAccount \(for KServe InferenceService team-a\/llm \(kubectl -n team-a edit inferenceservices\.serving\.kserve\.io llm\): spec\.predictor\.serviceAccountName\), or set/);
  // another component value, or a workload not named after the InferenceService: the ordinary fix
  for (const [name, l] of [['llm-predictor', { ...labels, component: 'router' }], ['other', labels]] as const)
    assert.match(checkObject(workload('Deployment', name, 'default', l), { config, issuer: EKS })[0]!.message, /Fix: create a ServiceAccount for the agent and set spec\.template\.spec\.serviceAccountName\.$/);
});

test('fixes that label or annotate a pod made by a kagent Agent or a KServe InferenceService name that resource\'s fields for its pods\' labels (and KServe\'s annotations)', () => {
  const kagentLabels = { ...AGENT, app: 'kagent', kagent: 'weather', 'app.kubernetes.io/managed-by': 'kagent' };
  const pod = (name: string, labels: Record<string, string>, spec: Record<string, unknown>) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'team-a', labels: { ...labels, 'pod-template-hash': '7d9f8b6c5' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: name.replace(/-[a-z0-9]+$/, ''), uid: 'u', controller: true }] },
    spec,
  });
  const fixOf = (p: Record<string, any>) => {
    const r = injectTemplate(p, config, { namespace: 'team-a', ref: `Pod team-a/${p.metadata.name}`, owner: templateWorkload(p, config, 'team-a') });
    assert.equal(r.outcome, 'deny');
    return r.outcome === 'deny' ? r.message.replace(/^.* Fix: /, '') : '';
  };
  // hostNetwork: the opt-out label goes where kagent writes the pods' labels
  const k = pod('weather-7d9f8b6c5-x2x4z', kagentLabels, { serviceAccountName: 'weather', hostNetwork: true, containers: [{ name: 'a', image: 'x' }] });
  assert.equal(fixOf(k), 'remove hostNetwork, label the pods of kagent Agent/weather (spec.declarative.deployment.labels; spec.byo.deployment.labels for a BYO agent) kagenti.io/authbridge-inject: "false" to inject spiffe-helper only, or kagenti.io/inject: disabled.');
  // KServe: its component's labels
  const isvc = { ...AGENT, 'serving.kserve.io/inferenceservice': 'llm', component: 'predictor' };
  const kp = pod('llm-predictor-7d9f8b6c5-abcde', isvc, { serviceAccountName: 'llm', hostNetwork: true, containers: [{ name: 'a', image: 'x' }] });
  assert.match(fixOf(kp), /label the pods of KServe InferenceService\/llm \(spec\.predictor\.labels\) kagenti\.io\/authbridge-inject/);
  // an annotation fix: KServe's component annotations; kagent's stays on the Deployment's template
  const job = (labels: Record<string, string>, name: string) => {
    const p = pod(name, labels, { serviceAccountName: 'sa', restartPolicy: 'Never', containers: [{ name: 'a', image: 'x' }] });
    const r = injectTemplate(p, config, { namespace: 'team-a', ref: `Pod team-a/${name}`, owner: templateWorkload(p, config, 'team-a') });
    assert.equal(r.outcome, 'inject');
    return r.outcome === 'inject' ? r.warnings.find((w) => w.startsWith('[sidecars-block-completion]'))! : '';
  };
  assert.match(job(isvc, 'llm-predictor-7d9f8b6c5-abcde'), /Fix: annotate the pods of KServe InferenceService\/llm \(spec\.predictor\.annotations\) kagenti\.io\/native-sidecars: "true"/);
  assert.match(job(kagentLabels, 'weather-7d9f8b6c5-x2x4z'), /Fix: annotate the pod template of Deployment\/weather \(spec\.template\.metadata\.annotations\) kagenti\.io\/native-sidecars: "true"/);
});
