// /validate over real HTTPS (the project's server and certificates), plus the ConfigMap remediation on
// /mutate and /readyz with cluster state. Cluster state comes from test/fake-apiserver.ts, an in-test
// stand-in for the API server (none can be installed here).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import http from 'node:http';
import { readdirSync, readFileSync } from 'node:fs';
import jsonpatch from 'fast-json-patch';
import type { Config } from '../webhook/config.ts';
import { configFromObject } from '../webhook/config.ts';
import { silentLogger } from '../webhook/log.ts';
import { startValidation } from '../webhook/validation.ts';
import { toWarnings } from '../webhook/validation.ts';
import { continuationPrefix, wrap } from '../webhook/admission.ts';
import { decodePatch, joinWarnings, startTestServer } from './helpers.ts';
import type { TestServer } from './helpers.ts';
import { FakeApiServer, PATHS, startOnFakeApi, until } from './fake-apiserver.ts';

const AGENT = { 'kagenti.io/type': 'agent' };
let n = 0;

function req(kind: string, group: string, object: Record<string, any> | null, extra: Record<string, unknown> = {}) {
  return {
    uid: `v-${++n}`,
    kind: { group, version: 'v1', kind },
    resource: { group, version: 'v1', resource: `${kind.toLowerCase()}s` },
    namespace: object?.metadata?.namespace ?? 'team-a',
    name: object?.metadata?.name ?? '',
    operation: 'CREATE',
    userInfo: { username: 'alice' },
    object,
    oldObject: null,
    dryRun: false,
    ...extra,
  };
}

function deployment(name: string, sa?: string, labels: Record<string, string> = AGENT, meta: Record<string, unknown> = {}) {
  const spec: Record<string, unknown> = { containers: [{ name: 'a', image: 'x' }] };
  if (sa !== undefined) spec.serviceAccountName = sa;
  return { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name, namespace: 'team-a', ...meta }, spec: { template: { metadata: { labels }, spec } } };
}

function cm(data: Record<string, unknown> | undefined, extra: Record<string, unknown> = {}) {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'kagent-enterprise-config', namespace: 'kagent' }, ...(data ? { data } : {}), ...extra };
}

async function server(input: Record<string, unknown>): Promise<TestServer> {
  const config: Config = configFromObject(input);
  const svc = await startValidation({ config, log: silentLogger(), cluster: 'none', readToken: async () => Promise.reject(new Error('none')) });
  return startTestServer(config, svc);
}

test('HTTPS /validate: an agent Deployment on the default ServiceAccount is denied 403 Forbidden with the rule message', async () => {
  const s = await server({ tokenReview: { issuer: 'external' } });
  try {
    const r = await s.post('/validate', { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: req('Deployment', 'apps', deployment('weather')) });
    assert.equal(r.status, 200);
    assert.equal(r.body.apiVersion, 'admission.k8s.io/v1');
    assert.equal(r.body.kind, 'AdmissionReview');
    const res = r.body.response;
    assert.equal(res.uid, `v-${n}`);
    assert.equal(res.allowed, false);
    assert.equal(res.status.code, 403);
    assert.equal(res.status.reason, 'Forbidden');
    assert.match(res.status.message, /^\[dedicated-service-account\] Deployment team-a\/weather: spec\.template\.spec\.serviceAccountName is not set/);
    assert.equal(res.patch, undefined, 'a validating webhook never returns a patch');
    // one error for one mistake: the dedicated rule's fix (an own ServiceAccount) ends any sharing too, so the unique
    // rule says nothing here (not even that it was not checked)
    assert.equal(res.status.message.split('\n').length, 1);
    assert.equal(res.warnings, undefined);

    // dryRun: same answer
    const dry = await s.review('/validate', req('Deployment', 'apps', deployment('weather'), { dryRun: true }));
    assert.equal(dry.allowed, false);

    // an UPDATE of one on "default" that leaves its pod template as it was (a label, a scale, a reconcile) is warned
    // with the same fix, saying its pods are denied: denying it would only block the tools that update it. One that
    // changes the template (an image bump, kubectl rollout restart) would roll out pods that are all denied at
    // creation, stalling the rollout: denied, so the apply reports it. One that moves an agent onto "default" too.
    const labelled = deployment('weather');
    (labelled.metadata as Record<string, unknown>).labels = { team: 'x' };
    const kept = await s.review('/validate', req('Deployment', 'apps', labelled, { operation: 'UPDATE', oldObject: deployment('weather') }));
    assert.equal(kept.allowed, true);
    assert.match(
      joinWarnings(kept.warnings),
      /^\[dedicated-service-account\] Deployment team-a\/weather: .* Not denied: this update leaves the pod template as it was, and its pods are denied until it is fixed\. Fix: create a ServiceAccount/m,
    );
    const bumped = deployment('weather');
    bumped.spec.template.spec.containers = [{ name: 'a', image: 'agent:2' }];
    const bump = await s.review('/validate', req('Deployment', 'apps', bumped, { operation: 'UPDATE', oldObject: deployment('weather') }));
    assert.equal(bump.allowed, false);
    assert.match(bump.status!.message, /^\[dedicated-service-account\] Deployment team-a\/weather: spec\.template\.spec\.serviceAccountName is not set \("default"\)\. .* Fix: create a ServiceAccount for the agent and set spec\.template\.spec\.serviceAccountName\.$/);
    const moved = await s.review('/validate', req('Deployment', 'apps', deployment('weather'), { operation: 'UPDATE', oldObject: deployment('weather', 'weather-sa') }));
    assert.equal(moved.allowed, false);
    // a pod its Deployment's ReplicaSet creates: the fix is in the Deployment's template, not in the pod
    const rsPod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'weather-7d9f8b6c5d-abcde', namespace: 'team-a', labels: { ...AGENT, 'pod-template-hash': '7d9f8b6c5d' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'weather-7d9f8b6c5d', uid: 'r', controller: true }] },
      spec: { containers: [{ name: 'a', image: 'x' }] },
    };
    const podAnswer = await s.review('/validate', req('Pod', '', rsPod));
    assert.equal(podAnswer.allowed, false);
    assert.match(podAnswer.status!.message, /^\[dedicated-service-account\] Pod team-a\/weather-7d9f8b6c5d-abcde: spec\.serviceAccountName is not set \("default"\)\. .* Fix: create a ServiceAccount for the agent and set spec\.template\.spec\.serviceAccountName in Deployment\/weather, which creates this pod\.$/);

    // own ServiceAccount: allowed; without cluster state the unique rule says it was not checked
    const ok = await s.review('/validate', req('Deployment', 'apps', deployment('weather', 'weather-sa')));
    assert.equal(ok.allowed, true);
    assert.match(
      joinWarnings(ok.warnings),
      /^\[unique-service-account\] Deployment team-a\/weather: not checked, because the webhook runs without cluster state \(--cluster none\), so another agent on ServiceAccount team-a\/weather-sa .* Fix: run the webhook with cluster access \(--cluster auto, with its RBAC\), and check releases in CI with kagenti-webhook lint\.$/,
    );
    for (const w of ok.warnings as string[]) assert.ok(w.length <= 120 && w.startsWith('[unique-service-account] '), w);
    // a name that puts the line break inside "(--cluster none)": the flag and its value stay on one line
    const w = (await s.review('/validate', req('Deployment', 'apps', deployment('w', 'weather-sa')))).warnings as string[];
    assert.ok(w.some((l) => l.includes('(--cluster none)')), JSON.stringify(w));
    assert.ok(w.some((l) => l.includes('(--cluster auto,')), JSON.stringify(w));
    for (const l of w) assert.ok(l.length <= 120 && !/--cluster$/.test(l), l);
  } finally {
    await s.close();
  }
});

test('messages and docs name the command as it is installed: kagenti-webhook, never kagent-webhook', () => {
  const root = new URL('..', import.meta.url);
  const files = [
    ...readdirSync(new URL('webhook/', root)).filter((f) => f.endsWith('.ts')).map((f) => `webhook/${f}`),
    ...readdirSync(new URL('docs/', root)).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`),
    'README.md',
  ];
  for (const f of files) assert.doesNotMatch(readFileSync(new URL(f, root), 'utf8'), /kagent-webhook/, f);
});

test('HTTPS /validate: skips what it must not judge', async () => {
  const s = await server({ tokenReview: { issuer: 'external' } });
  try {
    const owned = { ...deployment('w-abc'), kind: 'ReplicaSet', metadata: { name: 'w-abc', namespace: 'team-a', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'w', uid: 'u1', controller: true }] } };
    assert.equal((await s.review('/validate', req('ReplicaSet', 'apps', owned))).allowed, true);
    // only a Deployment's controller reference, as its controller writes it, makes the ReplicaSet its: not a
    // Deployment of another API group, nor one that is only an owner (no controller: true, or controller: false)
    for (const ref of [
      { apiVersion: 'example.com/v1', kind: 'Deployment', name: 'w', uid: 'u1', controller: true },
      { apiVersion: 'apps/v1', kind: 'Deployment', name: 'w', uid: 'u1' },
      { apiVersion: 'apps/v1', kind: 'Deployment', name: 'w', uid: 'u1', controller: false },
      { kind: 'Deployment', name: 'w', uid: 'u1', controller: true },
    ]) {
      const rs = { ...owned, metadata: { ...owned.metadata, ownerReferences: [ref] } };
      const r = await s.review('/validate', req('ReplicaSet', 'apps', rs));
      assert.equal(r.allowed, false, JSON.stringify(ref));
      assert.match(r.status!.message, /^\[dedicated-service-account\] ReplicaSet team-a\/w-abc: /);
    }
    const cronJobs = { ...deployment('nightly-29000000'), apiVersion: 'batch/v1', kind: 'Job' };
    const job = (ref: Record<string, unknown>) => ({ ...cronJobs, metadata: { ...cronJobs.metadata, ownerReferences: [ref] } });
    assert.equal((await s.review('/validate', req('Job', 'batch', job({ apiVersion: 'batch/v1', kind: 'CronJob', name: 'nightly', uid: 'u2', controller: true })))).allowed, true);
    assert.equal((await s.review('/validate', req('Job', 'batch', job({ apiVersion: 'batch/v1', kind: 'CronJob', name: 'nightly', uid: 'u2' })))).allowed, false);
    assert.equal((await s.review('/validate', req('Job', 'batch', job({ apiVersion: 'example.com/v1', kind: 'CronJob', name: 'nightly', uid: 'u2', controller: true })))).allowed, false);
    const bareRs = { ...deployment('rs'), kind: 'ReplicaSet' };
    assert.equal((await s.review('/validate', req('ReplicaSet', 'apps', bareRs))).allowed, false);
    assert.equal((await s.review('/validate', req('Deployment', 'apps', deployment('web', undefined, { app: 'web' })))).allowed, true);
    assert.equal((await s.review('/validate', req('Deployment', 'apps', null, { operation: 'DELETE', oldObject: deployment('x') }))).allowed, true);
    assert.equal((await s.review('/validate', req('Deployment', 'apps', deployment('x'), { subResource: 'scale' }))).allowed, true);
    // Being deleted: a finalizer coming off is not checked again; any other change is.
    const deleting = { deletionTimestamp: '2026-01-01T00:00:00Z' };
    const held = deployment('x', undefined, AGENT, { ...deleting, finalizers: ['example.com/cleanup'], resourceVersion: '7' });
    const released = deployment('x', undefined, AGENT, { ...deleting, resourceVersion: '8' });
    assert.equal((await s.review('/validate', req('Deployment', 'apps', released, { operation: 'UPDATE', oldObject: held }))).allowed, true);
    const edited = deployment('x', undefined, { ...AGENT, extra: 'label' }, { ...deleting, finalizers: ['example.com/cleanup'] });
    // (checked: its template changes, and it runs as "default", which its pods are denied at creation for)
    const editedAnswer = await s.review('/validate', req('Deployment', 'apps', edited, { operation: 'UPDATE', oldObject: held }));
    assert.equal(editedAnswer.allowed, false);
    assert.match(editedAnswer.status!.message, /^\[dedicated-service-account\] Deployment team-a\/x: /);
    assert.equal((await s.review('/validate', req('Deployment', 'apps', released, { operation: 'UPDATE' }))).allowed, false, 'no oldObject to compare with');
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { generateName: 'x-', namespace: 'team-a', labels: AGENT }, spec: { containers: [] } };
    assert.equal((await s.review('/validate', req('Pod', '', pod, { operation: 'UPDATE' }))).allowed, true);
    const created = await s.review('/validate', req('Pod', '', pod));
    assert.equal(created.allowed, false);
    assert.match(created.status!.message, /Pod team-a\/x-<generated>: spec\.serviceAccountName is not set/);
  } finally {
    await s.close();
  }
});

test('HTTPS /validate: a running pod relabelled into or out of an agent type is denied; other pod UPDATEs are not', async () => {
  const pod = (labels: Record<string, string> | undefined, meta: Record<string, unknown> = {}) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'weather-0', namespace: 'team-a', ...(labels ? { labels } : {}), ...meta },
    spec: { serviceAccountName: 'weather-sa', containers: [{ name: 'a', image: 'x' }] },
  });
  const update = (now: Record<string, unknown>, old: Record<string, unknown>) => req('Pod', '', now, { operation: 'UPDATE', oldObject: old });
  const s = await server({ trustDomain: 'example.org' });
  try {
    const out = await s.review('/validate', update(pod({ app: 'weather' }), pod({ ...AGENT, app: 'weather' })));
    assert.equal(out.allowed, false);
    assert.equal(out.status!.code, 403);
    assert.equal(
      out.status!.message,
      '[unique-service-account] Pod team-a/weather-0: metadata.labels["kagenti.io/type"] changes from "agent" to unset on a running pod. ' +
        'The pod keeps its sidecars and SPIFFE ID spiffe://example.org/ns/team-a/sa/weather-sa, but would stop counting as the agent on ' +
        'ServiceAccount "weather-sa", so another agent could be admitted with the same identity. Fix: change the label in the pod\'s ' +
        'workload template (which replaces the pod), or delete the pod and create it with the label it needs.',
    );
    const into = await s.review('/validate', update(pod(AGENT), pod({ app: 'weather' })));
    assert.equal(into.allowed, false);
    assert.match(into.status!.message, /changes from unset to "agent" on a running pod\. The label is read when a pod is created/);
    // Tools are not agents unless featureGates.injectTools: agent → tool leaves, and is denied.
    assert.equal((await s.review('/validate', update(pod({ 'kagenti.io/type': 'tool' }), pod(AGENT)))).allowed, false);
    // kagenti.io/agent on a running agent pod: changed or removed, it would make the pod another agent
    const named = (agent?: string) => pod({ ...AGENT, ...(agent === undefined ? {} : { 'kagenti.io/agent': agent }) });
    const renamed = await s.review('/validate', update(named('weather-b'), named('weather')));
    assert.equal(renamed.allowed, false);
    assert.match(renamed.status!.message, /^\[unique-service-account\] Pod team-a\/weather-0: metadata\.labels\["kagenti\.io\/agent"\] changes from "weather" to "weather-b" on a running pod\. The label names the agent the pod belongs to .* Fix: change the label in the pod's workload template/);
    assert.equal((await s.review('/validate', update(named(), named('weather')))).allowed, false, 'removed');
    assert.equal((await s.review('/validate', update(named('weather'), named()))).allowed, false, 'added');
    assert.equal((await s.review('/validate', update(named(''), named()))).allowed, true, 'empty is unset');
    assert.equal((await s.review('/validate', update(pod({ 'kagenti.io/agent': 'b' }), pod({ 'kagenti.io/agent': 'a' })))).allowed, true, 'not an agent pod');
    // Other changes to an agent pod (the registration does not send them, but if it did) are allowed.
    assert.equal((await s.review('/validate', update(pod({ ...AGENT, tier: 'gold' }), pod(AGENT)))).allowed, true);
    assert.equal((await s.review('/validate', update(pod({ 'kagenti.io/type': 'web' }), pod(undefined)))).allowed, true, 'never an agent');
    assert.equal((await s.review('/validate', req('Pod', '', pod({ app: 'weather' }), { operation: 'UPDATE' }))).allowed, true, 'no oldObject');
    // A pod being deleted still runs: a relabel is checked, a finalizer coming off is not.
    const deleting = { deletionTimestamp: '2026-01-01T00:00:00Z' };
    assert.equal((await s.review('/validate', update(pod({}, deleting), pod(AGENT, deleting)))).allowed, false);
    assert.equal((await s.review('/validate', update(pod(AGENT, deleting), pod(AGENT, { ...deleting, finalizers: ['x/y'] })))).allowed, true);
  } finally {
    await s.close();
  }
  const tools = await server({ featureGates: { injectTools: true } });
  try {
    assert.equal((await tools.review('/validate', update(pod({ 'kagenti.io/type': 'tool' }), pod(AGENT)))).allowed, true, 'still an agent type: no claim changes');
    assert.equal((await tools.review('/validate', update(pod({ 'kagenti.io/type': 'web' }), pod({ 'kagenti.io/type': 'tool' })))).allowed, false);
  } finally {
    await tools.close();
  }
  for (const [action, allowed] of [['warn', true], ['off', true]] as const) {
    const w = await server({ policies: { 'unique-service-account': action } });
    try {
      const r = await w.review('/validate', update(pod(undefined), pod(AGENT)));
      assert.equal(r.allowed, allowed);
      assert.equal((r.warnings ?? []).some((x: string) => x.startsWith('[unique-service-account]')), action === 'warn');
    } finally {
      await w.close();
    }
  }
});

test('HTTPS /validate: kagent\'s ConfigMap is checked however it is labelled, and while it is being deleted', async () => {
  const s = await server({ tokenReview: { issuer: 'external' } });
  try {
    // Dressed as a Helm record of the configmap driver (labels owner: helm, a data.release string).
    const dressed = cm({ OTHER: 'x', release: 'anything' }, { metadata: { name: 'kagent-enterprise-config', namespace: 'kagent', labels: { owner: 'helm', status: 'deployed' } } });
    const r = await s.review('/validate', req('ConfigMap', '', dressed));
    assert.equal(r.allowed, false);
    assert.match(r.status!.message, /^\[token-review-required\] ConfigMap kagent\/kagent-enterprise-config: data\.K8S_TOKEN_REVIEW is not set/);
    const dropped = await s.review('/validate', req('ConfigMap', '', dressed, { operation: 'UPDATE', oldObject: cm({ K8S_TOKEN_REVIEW: 'true' }) }));
    assert.equal(dropped.allowed, false);
    // Held by a finalizer after a delete: editing the value is checked; taking the finalizer off is not.
    const meta = { name: 'kagent-enterprise-config', namespace: 'kagent', deletionTimestamp: '2026-01-01T00:00:00Z' };
    const old = cm({ K8S_TOKEN_REVIEW: 'true' }, { metadata: { ...meta, finalizers: ['example.com/keep'] } });
    const edited = cm({ K8S_TOKEN_REVIEW: 'yes' }, { metadata: { ...meta, finalizers: ['example.com/keep'] } });
    assert.equal((await s.review('/validate', req('ConfigMap', '', edited, { operation: 'UPDATE', oldObject: old }))).allowed, false);
    const released = cm({ K8S_TOKEN_REVIEW: 'true' }, { metadata: meta });
    assert.equal((await s.review('/validate', req('ConfigMap', '', released, { operation: 'UPDATE', oldObject: old }))).allowed, true);
  } finally {
    await s.close();
  }
});

test('HTTPS /validate: policies warn → allowed with warnings of at most 120 characters', async () => {
  const s = await server({ policies: { 'dedicated-service-account': 'warn', 'unique-service-account': 'off' } });
  try {
    const r = await s.review('/validate', req('Deployment', 'apps', deployment('weather')));
    assert.equal(r.allowed, true);
    assert.ok(r.warnings!.length >= 2);
    assert.ok(r.warnings![0].startsWith('[dedicated-service-account] Deployment team-a/weather:'));
    for (const w of r.warnings! as string[]) assert.ok(w.length <= 120, `${w.length}: ${w}`);
    assert.ok(r.warnings!.some((w: string) => w.includes('Fix:')));
  } finally {
    await s.close();
  }
});

test('HTTPS /validate: token-review ConfigMaps on an external-issuer cluster', async () => {
  const s = await server({ tokenReview: { issuer: 'external' } });
  try {
    const bad = await s.review('/validate', req('ConfigMap', '', cm({ K8S_TOKEN_REVIEW: 'True' })));
    assert.equal(bad.allowed, false);
    assert.match(bad.status!.message, /^\[token-review-value\] ConfigMap kagent\/kagent-enterprise-config: data\.K8S_TOKEN_REVIEW is "True"/);
    const missing = await s.review('/validate', req('ConfigMap', '', cm({})));
    assert.equal(missing.allowed, false);
    assert.match(missing.status!.message, /^\[token-review-required\]/);
    // good value on CREATE: allowed, with the restart reminder
    const good = await s.review('/validate', req('ConfigMap', '', cm({ K8S_TOKEN_REVIEW: 'true' })));
    assert.equal(good.allowed, true);
    assert.equal(
      joinWarnings(good.warnings),
      "[kagent-restart] ConfigMap kagent/kagent-enterprise-config: kagent's controller reads K8S_TOKEN_REVIEW only when it starts, so if it is already running, this change takes effect after a restart. Fix: kubectl -n kagent rollout restart deploy/kagent-controller",
    );
    for (const w of good.warnings as string[]) assert.ok(w.length <= 120 && w.startsWith('[kagent-restart] '), w);
    // UPDATE that does not touch the key: no reminder; one that changes it: reminder
    const same = await s.review('/validate', req('ConfigMap', '', cm({ K8S_TOKEN_REVIEW: 'true', X: '1' }), { operation: 'UPDATE', oldObject: cm({ K8S_TOKEN_REVIEW: 'true' }) }));
    assert.equal(same.warnings, undefined);
    const changed = await s.review('/validate', req('ConfigMap', '', cm({ K8S_TOKEN_REVIEW: 'true' }), { operation: 'UPDATE', oldObject: cm({}) }));
    assert.ok(changed.warnings?.length && changed.warnings.every((w: string) => w.startsWith('[kagent-restart] ')), JSON.stringify(changed.warnings));
    // other ConfigMaps are not judged
    const other = await s.review('/validate', req('ConfigMap', '', { ...cm({}), metadata: { name: 'x', namespace: 'kagent' } }));
    assert.deepEqual([other.allowed, other.warnings], [true, undefined]);
  } finally {
    await s.close();
  }
});

test('HTTPS /validate: token-review-value at warn does not admit a value token-review-required denies', async () => {
  const s = await server({ tokenReview: { issuer: 'external' }, policies: { 'token-review-value': 'warn', 'token-review-required': 'deny' } });
  try {
    for (const obj of [cm({ K8S_TOKEN_REVIEW: 'True' }), cm({ K8S_TOKEN_REVIEW: 'yes' }), cm({}, { binaryData: { K8S_TOKEN_REVIEW: 'dHJ1ZQ==' } })]) {
      const r = await s.review('/validate', req('ConfigMap', '', obj));
      assert.equal(r.allowed, false, JSON.stringify(obj));
      assert.equal(r.status!.message.split('\n').length, 1, 'one denial for one mistake');
      assert.match(r.status!.message, /^\[token-review-required\] ConfigMap kagent\/kagent-enterprise-config: (data|binaryData)\.K8S_TOKEN_REVIEW /);
      assert.equal(r.warnings, undefined, 'not also warned under token-review-value');
    }
  } finally {
    await s.close();
  }
});

test('HTTPS /validate: unknown issuer never denies token-review-required, and says how to set it', async () => {
  const s = await server({});
  try {
    const r = await s.review('/validate', req('ConfigMap', '', cm({})));
    assert.equal(r.allowed, true);
    assert.ok(r.warnings!.some((w: string) => w.includes('tokenReview.issuer')));
  } finally {
    await s.close();
  }
});

test('HTTPS /mutate: tokenReview.action mutate sets K8S_TOKEN_REVIEW "true" on external-issuer clusters', async () => {
  const s = await server({ tokenReview: { issuer: 'external', action: 'mutate' } });
  try {
    // each under the rule lint reports it by: token-review-required for a missing or "false" value, token-review-value
    // for one in binaryData or not exactly "true"/"false"
    for (const [obj, label, rule] of [
      [cm(undefined), 'no data', 'token-review-required'],
      [cm({ OTHER: 'x' }), 'missing key', 'token-review-required'],
      [cm({ K8S_TOKEN_REVIEW: 'false' }), 'false', 'token-review-required'],
      [cm({ K8S_TOKEN_REVIEW: 'True' }), 'True', 'token-review-value'],
      [cm({}, { binaryData: { K8S_TOKEN_REVIEW: 'dHJ1ZQ==' } }), 'binaryData', 'token-review-value'],
    ] as const) {
      const r = await s.review('/mutate', req('ConfigMap', '', obj as Record<string, any>, { dryRun: label === 'false' }));
      assert.equal(r.allowed, true, label);
      assert.equal(r.patchType, 'JSONPatch', label);
      const patched = jsonpatch.applyPatch(structuredClone(obj), decodePatch(r) as never).newDocument as Record<string, any>;
      assert.equal(patched.data.K8S_TOKEN_REVIEW, 'true', label);
      assert.equal(patched.binaryData?.K8S_TOKEN_REVIEW, undefined, label);
      assert.ok(r.warnings![0]!.startsWith(`[${rule}] `), `${label}: ${r.warnings![0]}`);
      assert.match(
        joinWarnings(r.warnings!),
        /^\[token-review-(required|value)\] ConfigMap kagent\/kagent-enterprise-config: the webhook set data\.K8S_TOKEN_REVIEW to "true" \(it was .*; tokenReview\.action: mutate\)\. The cluster's service-account issuer.* is external.* agent callbacks fail with 401\. Fix: set it in what your pipeline renders/,
        label,
      );
      // the restart reminder is /validate's, given once on the patched object (below), not /mutate's as well
      assert.ok(!(r.warnings as string[]).some((w) => w.startsWith('[kagent-restart] ')), label);
      for (const w of r.warnings! as string[]) assert.ok(w.length <= 120, w);
    }
    const already = await s.review('/mutate', req('ConfigMap', '', cm({ K8S_TOKEN_REVIEW: 'true' })));
    assert.equal(already.patch, undefined);
  } finally {
    await s.close();
  }
  // with the rules off, the value the user wrote stays as it is (lint reports nothing either)
  const off = await server({ tokenReview: { issuer: 'external', action: 'mutate' }, policies: { 'token-review-required': 'off', 'token-review-value': 'off' } });
  try {
    for (const data of [{ K8S_TOKEN_REVIEW: 'false' }, { K8S_TOKEN_REVIEW: 'True' }, { OTHER: 'x' }]) {
      const r = await off.review('/mutate', req('ConfigMap', '', cm(data)));
      assert.equal(r.allowed, true);
      assert.equal(r.patch, undefined, JSON.stringify(data));
      assert.equal(r.warnings, undefined);
    }
  } finally {
    await off.close();
  }
  // default action deny: /mutate leaves ConfigMaps alone
  const d = await server({ tokenReview: { issuer: 'external' } });
  try {
    const r = await d.review('/mutate', req('ConfigMap', '', cm({})));
    assert.equal(r.patch, undefined);
  } finally {
    await d.close();
  }
});

test('HTTPS /mutate: tokenReview.action mutate leaves K8S_TOKEN_REVIEW alone where the issuer is not external (internal, or unknown: issuer auto without cluster state)', async () => {
  // docs/validation.md: /mutate sets it on external-issuer clusters only. On an internal issuer either value works
  // ("no" is still a token-review-value finding, which /mutate must not turn into "true"); on an unknown one the
  // missing or "false" value is only a warning at /validate, never a change the webhook makes.
  for (const issuer of ['internal', 'auto']) {
    const s = await server({ tokenReview: { issuer, action: 'mutate' } });
    try {
      for (const obj of [cm({ K8S_TOKEN_REVIEW: 'false' }), cm({ K8S_TOKEN_REVIEW: 'no' }), cm({ OTHER: 'x' }), cm(undefined)]) {
        const label = `${issuer}: ${JSON.stringify(obj.data)}`;
        const r = await s.review('/mutate', req('ConfigMap', '', obj));
        assert.equal(r.allowed, true, label);
        assert.equal(r.patch, undefined, label);
        assert.equal(r.patchType, undefined, label);
        assert.ok(!((r.warnings ?? []) as string[]).some((w) => w.includes('the webhook set data.K8S_TOKEN_REVIEW')), label);
      }
    } finally {
      await s.close();
    }
  }
});

test('HTTPS /mutate: tokenReview.action mutate removes K8S_TOKEN_REVIEW from binaryData even when data already has "true"', async () => {
  const s = await server({ tokenReview: { issuer: 'external', action: 'mutate' } });
  try {
    const obj = cm({ K8S_TOKEN_REVIEW: 'true' }, { binaryData: { K8S_TOKEN_REVIEW: 'dHJ1ZQ==', OTHER: 'eA==' } });
    const r = await s.review('/mutate', req('ConfigMap', '', obj));
    assert.equal(r.allowed, true);
    assert.equal(r.patchType, 'JSONPatch');
    const ops = decodePatch(r) as { op: string; path: string }[];
    assert.ok(ops.some((o) => o.op === 'remove' && o.path === '/binaryData/K8S_TOKEN_REVIEW'), JSON.stringify(ops));
    const patched = jsonpatch.applyPatch(structuredClone(obj), ops as never).newDocument as Record<string, any>;
    assert.deepEqual(patched.data, { K8S_TOKEN_REVIEW: 'true' });
    assert.deepEqual(patched.binaryData, { OTHER: 'eA==' });
    assert.match(joinWarnings(r.warnings!), /^\[token-review-value\] ConfigMap kagent\/kagent-enterprise-config: the webhook set data\.K8S_TOKEN_REVIEW to "true" \(it was "true"; tokenReview\.action: mutate\)/);
  } finally {
    await s.close();
  }
});

test('HTTPS /validate with cluster state: two agents on the "default" ServiceAccount share it, so with dedicated-service-account at warn or off the second is denied unique-service-account', async () => {
  // With dedicated-service-account at error (the default) it denies them first, so only these settings show that the
  // unique check covers "default" too: one SPIFFE ID for two agents is the same problem on any ServiceAccount.
  for (const dedicated of ['warn', 'off']) {
    const input = { tokenReview: { issuer: 'external' }, policies: { 'dedicated-service-account': dedicated } };
    const { svc, close } = await startOnFakeApi((api) => {
      api.seed(PATHS.namespaces, [{ metadata: { name: 'team-a' } }]);
      api.seed(PATHS.deployments, [deployment('weather', 'default')]);
    }, input);
    const s = await startTestServer(configFromObject(input), svc);
    try {
      await until(() => svc.readiness().ready, 'synced');
      // set to "default", and not set (the pod then runs as "default")
      for (const sa of ['default', undefined]) {
        const label = `${dedicated}, serviceAccountName ${sa ?? 'unset'}`;
        const r = await s.review('/validate', req('Deployment', 'apps', deployment('news', sa)));
        assert.equal(r.allowed, false, label);
        assert.equal(r.status!.code, 403, label);
        assert.match(r.status!.message, /^\[unique-service-account\] Deployment team-a\/news: .*Deployment\/weather.*spiffe:\/\/cluster\.local\/ns\/team-a\/sa\/default/, label);
        const dedicatedWarned = ((r.warnings ?? []) as string[]).some((w) => w.startsWith('[dedicated-service-account] '));
        assert.equal(dedicatedWarned, dedicated === 'warn', label);
      }
      // the agent itself (an UPDATE of weather) shares with nobody
      const self = await s.review('/validate', req('Deployment', 'apps', deployment('weather', 'default'), { operation: 'UPDATE', oldObject: deployment('weather', 'default') }));
      assert.equal(self.allowed, true, JSON.stringify(self));
    } finally {
      await s.close();
      await close();
    }
  }
});

function getJson(port: number, path: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path }, (res) => {
        let t = '';
        res.on('data', (c) => (t += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(t) }));
      })
      .on('error', reject);
  });
}

test('/readyz: 503 with the missing permission until the informers sync, then 200 with the issuer', async () => {
  const api = new FakeApiServer();
  api.seed(PATHS.deployments, [{ metadata: { name: 'weather', namespace: 'team-a' }, spec: { template: { metadata: { labels: AGENT }, spec: { serviceAccountName: 'shared' } } } }]);
  api.forbidden.add(`list ${PATHS.namespaces}`);
  await api.start();
  const config = configFromObject({ tokenReview: { issuer: 'https://oidc.eks.us-east-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF' } });
  const svc = await startValidation({ config, log: silentLogger(), cluster: 'auto', kubeConfig: api.kubeConfig(), backoff: { baseMs: 20, maxMs: 100 } });
  const s = await startTestServer(config, svc);
  try {
    await until(() => (svc.readiness().detail.errors as Record<string, string> | undefined)?.namespaces !== undefined, 'namespaces error');
    const before = await getJson(s.server.probePort, '/readyz');
    assert.equal(before.status, 503);
    assert.match(before.body.errors.namespaces, /missing permission "list namespaces"/);
    api.forbidden.delete(`list ${PATHS.namespaces}`);
    await until(() => svc.readiness().ready, 'synced');
    const after = await getJson(s.server.probePort, '/readyz');
    assert.equal(after.status, 200);
    assert.equal(after.body.cluster, 'synced');
    assert.deepEqual([after.body.issuer.classification, after.body.issuer.provider], ['external', 'EKS']);
    // cluster state reaches /validate over HTTPS
    const r = await s.review('/validate', req('Deployment', 'apps', deployment('news', 'shared')));
    assert.equal(r.allowed, false);
    assert.match(r.status!.message, /Deployment\/weather.*spiffe:\/\/cluster\.local\/ns\/team-a\/sa\/shared/);
    const metrics = await new Promise<string>((resolve) =>
      http.get({ host: '127.0.0.1', port: s.server.probePort, path: '/metrics' }, (res) => {
        let t = '';
        res.on('data', (c) => (t += c));
        res.on('end', () => resolve(t));
      }),
    );
    assert.match(metrics, /kagenti_webhook_service_account_issuer_info\{classification="external",provider="EKS"\} 1/);
    assert.match(metrics, /kagenti_webhook_cluster_cache_age_seconds \d/);
    assert.match(metrics, /kagenti_webhook_rule_violations_total\{rule="unique-service-account",action="denied"\} \d/);
  } finally {
    await s.close();
    await api.stop();
  }
});

test('toWarnings splits at sentence ends, and every continuation line names the rule and the object\'s name (kubectl and the API server show a repeated text once)', () => {
  const msg = '[r] Kind ns/n: ' + 'a'.repeat(80) + '. Second sentence is here and it is long enough to need a new line, really. Fix: do it.';
  const w = toWarnings(msg, 'r');
  assert.deepEqual(w, ['[r] Kind ns/n: ' + 'a'.repeat(80) + '.', '[r] Kind ns/n: Second sentence is here and it is long enough to need a new line, really. Fix: do it.']);
  assert.equal(joinWarnings(w), msg);
  assert.deepEqual(toWarnings('short'), ['short']);
  // the same text about two objects: no line of one is a line of the other, so a run that shows each text once
  // (kubectl's warning writer, the API server's recorder) still shows both whole
  const about = (name: string) => `[pod-security] Deployment team-a/${name}: namespace team-a enforces Pod Security "restricted" (label pod-security.kubernetes.io/enforce), but the injected proxy-init runs as root. Fix: label the namespace.`;
  const [a, b] = [toWarnings(about('one')), toWarnings(about('two'))];
  assert.ok(a.length >= 2);
  assert.equal(a.filter((l) => b.includes(l)).length, 0);
  assert.ok(b.slice(1).every((l) => l.startsWith('[pod-security] Deployment team-a/two: ')));
  // one base rendered into two namespaces (kubectl apply -k): the same kind and name, and no line in common either
  const other = toWarnings(about('one').replace('team-a/one', 'team-b/one'));
  assert.equal(a.filter((l) => other.includes(l)).length, 0, JSON.stringify([a, other]));
  assert.ok(other.slice(1).every((l) => l.startsWith('[pod-security] Deployment team-b/one: ')), other[1]);
  // a long name is hashed with its namespace: two namespaces make two labels
  const longIn = (ns: string) => continuationPrefix(`[pod-security] Deployment ${ns}/acme-agents-customer-support-production-weather: x`);
  assert.notEqual(longIn('team-a'), longIn('team-b'));
  // an object without a namespace keeps Kind/name
  assert.equal(continuationPrefix('[r] ClusterRole admin: x'), '[r] ClusterRole/admin: ');
  // a Deployment and a CronJob of one name (a chart's fullname for both) are told apart too
  const cron = toWarnings(about('one').replace('Deployment team-a/one', 'CronJob team-a/one'));
  assert.equal(a.filter((l) => cron.includes(l)).length, 0);
  // a field path too long for the rest of the first line is cut there, not moved whole to the next line (which
  // would leave a first line that says only whose message it is)
  const path = `[unsupported-os] DaemonSet team-a/win: spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution rules out linux. Fix: run it on Linux.`;
  const p = toWarnings(path);
  assert.equal(p[0], '[unsupported-os] DaemonSet team-a/win: spec.template.spec.affinity.nodeAffinity.');
  assert.equal(joinWarnings(p).replace('nodeAffinity. required', 'nodeAffinity.required'), path);
  // One long sentence is broken at spaces, and a word longer than a line is cut: no warning is over 120.
  const long = `[r] Pod team-a/${'n'.repeat(200)}: mode waypoint, so nothing is injected and every word here is short enough to wrap at a space`;
  const lines = toWarnings(long, 'r');
  for (const l of lines) assert.ok(l.length <= 120, `${l.length}: ${l}`);
  // a Kind/name longer than 48 characters is the name's first 16 and a hash of the object in the continuation prefix, so two
  // long names that begin alike (Helm's <release>-<chart>-...) still make different lines
  const prefix = continuationPrefix(long);
  assert.match(prefix, /^\[r\] n{16}~[0-9a-f]{6}: $/);
  const helm = (name: string) => continuationPrefix(`[init-before-proxy] Deployment team-a/acme-agents-customer-support-production-${name} (Helm release team-a/agents, template t.yaml): x`);
  assert.notEqual(helm('weather'), helm('billing'));
  assert.match(helm('weather'), /^\[init-before-proxy\] acme-agents-cust~[0-9a-f]{6}: $/);
  assert.ok(lines.slice(1).every((l) => l.startsWith(prefix)), lines[1]);
  const text = lines.map((l, i) => (i ? l.slice(prefix.length) : l)).join('');
  assert.equal(text.replace(/ /g, ''), long.replace(/ /g, ''), 'nothing is lost: the long name is cut across lines');
});

test('toWarnings never cuts a URL or a quoted value (a line of its own, up to the API server\'s 256), and names ConfigMap kagent/kagent-enterprise-config whole on continuation lines', async () => {
  const { WARNING_LIMIT, WARNING_MAX } = await import('../webhook/admission.ts');
  const url = 'https://oidc.eks.us-east-1.amazonaws.com/id/0123456789abcdef0123456789abcdef';
  const msg = `[token-review-required] ConfigMap kagent/kagent-enterprise-config: data.K8S_TOKEN_REVIEW is not set (data has "k8s_token_review": keys are case-sensitive). The cluster's service-account issuer ${url} is external (EKS), so kagent cannot verify agent tokens locally and agent callbacks fail with 401. Fix: set K8S_TOKEN_REVIEW: "true" in data.`;
  const w = toWarnings(msg);
  assert.ok(w.some((l) => l.includes(url)), JSON.stringify(w));
  assert.ok(w.some((l) => l.includes('"k8s_token_review":')), JSON.stringify(w));
  assert.ok(w.slice(1).every((l) => l.startsWith('[token-review-required] ConfigMap kagent/kagent-enterprise-config: ')), JSON.stringify(w));
  // only a line with a URL or quoted value goes past WARNING_MAX
  for (const l of w) assert.ok(l.length <= WARNING_MAX || (l.length <= WARNING_LIMIT && l.includes(url)), l);
  assert.equal(joinWarnings(w), msg);
  // a quoted value with spaces stays on one line
  const spaced = `[token-review-value] ConfigMap kagent/kagent-enterprise-config: data.K8S_TOKEN_REVIEW is "${'yes please '.repeat(8)}turn it on". Fix: set K8S_TOKEN_REVIEW: "true".`;
  assert.ok(toWarnings(spaced).some((l) => l.includes(`"${'yes please '.repeat(8)}turn it on"`)));
  assert.equal(joinWarnings(toWarnings(spaced)), spaced);
  // longer than the API server keeps: cut, at its limit
  const huge = `[r] Pod ns/a: see https://example.com/${'p'.repeat(600)} now. Fix: y.`;
  for (const l of toWarnings(huge)) assert.ok(l.length <= WARNING_LIMIT, `${l.length}`);
  // a quote the text never closes (a name that holds one: only a request not from the API server has it) quotes
  // nothing: the rest of the sentence is wrapped word by word, not kept whole on a line past WARNING_MAX
  const unclosed = `[unique-service-account] Pod team-a/research-agent-7d9c6b5f4-<generated>: not checked, because the webhook runs without cluster state, so another agent on ServiceAccount team-a/" (one SPIFFE ID) would not be caught here. Fix: run the webhook with cluster access.`;
  const lines = toWarnings(unclosed);
  for (const l of lines) assert.ok(l.length <= WARNING_MAX, `${l.length}: ${l}`);
  assert.equal(joinWarnings(lines), unclosed);
});

test('wrap: lines of at most max characters, broken at spaces, nothing but spaces at a break lost; as words joined again would be', () => {
  // the word-by-word wrapping it replaced, for single-spaced text
  const byWords = (text: string, max: number): string[] => {
    if (text.length <= max) return [text];
    const lines: string[] = [];
    let cur = '';
    for (let word of text.split(' ')) {
      while (word.length > max) {
        if (cur) lines.push(cur);
        cur = '';
        lines.push(word.slice(0, max));
        word = word.slice(max);
      }
      if (!cur) cur = word;
      else if (cur.length + 1 + word.length <= max) cur += ` ${word}`;
      else {
        lines.push(cur);
        cur = word;
      }
    }
    if (cur) lines.push(cur);
    return lines;
  };
  const word = fc.stringMatching(/^[a-z0-9.,:()\/-]{1,40}$/);
  fc.assert(
    fc.property(fc.array(word, { minLength: 1, maxLength: 60 }), fc.integer({ min: 10, max: 120 }), (words, max) => {
      const text = words.join(' ');
      assert.deepEqual(wrap(text, max), byWords(text, max));
    }),
    { numRuns: 300 },
  );
  // any spacing: no line over max, none empty, the text's other characters all kept in order
  fc.assert(
    fc.property(fc.stringMatching(/^[ a-z]{0,400}$/), fc.integer({ min: 1, max: 120 }), (text, max) => {
      const lines = wrap(text, max);
      for (const l of lines) assert.ok(l.length <= max && (text.length <= max || l.length > 0), JSON.stringify(l));
      assert.equal(lines.join('').replace(/ /g, ''), text.replace(/ /g, ''));
    }),
    { numRuns: 300 },
  );
});

test('wrap and toWarnings cut a megabyte-long word into whole lines, each looking back within its own line only', () => {
  // each line used to search back for a space over every earlier line of the word: about 6 s for these 2 MB
  const big = 'x'.repeat(2_000_000);
  const lines = wrap(`${big} tail`, 120);
  assert.equal(lines.length, Math.ceil(2_000_000 / 120));
  assert.ok(lines.slice(0, -1).every((l) => l === 'x'.repeat(120)));
  assert.equal(lines.at(-1), `${'x'.repeat(2_000_000 % 120)} tail`);
  const w = toWarnings(`[r] Pod ns/a: ${big}. Fix: y.`);
  assert.ok(w.every((l) => l.length <= 120));
  assert.ok(w.slice(1).every((l) => l.startsWith('[r] Pod ns/a: ')));
  assert.equal(w.join('').replace('Fix', '').split('x').length - 1, 2_000_000);
  // the Fix ends the last line, after the word's end or on a line of its own
  assert.match(w.at(-1)!, /(^\[r\] Pod ns\/a: |x\. )Fix: y\.$/);
});

test('every warning the webhook answers fits in 120 characters, whatever the names', async () => {
  const s = await server({ authBridge: { defaultMode: 'waypoint' } });
  try {
    const name = 'w'.repeat(250);
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'team-a', labels: AGENT }, spec: { serviceAccountName: 'weather', containers: [{ name: 'a', image: 'x' }] } };
    const r = await s.review('/mutate', req('Pod', '', pod));
    assert.equal(r.allowed, true);
    assert.ok(r.warnings!.length >= 2, JSON.stringify(r.warnings));
    for (const w of r.warnings! as string[]) assert.ok(w.length <= 120, `${w.length}: ${w}`);
    assert.ok(joinWarnings(r.warnings! as string[]).includes('mode waypoint'), JSON.stringify(r.warnings));
  } finally {
    await s.close();
  }
});

test('HTTPS /mutate: an injected pod whose own init containers would run before the proxy gets the warning, in lines of at most 120', async () => {
  const s = await server({});
  try {
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'a1', namespace: 'team-a', labels: AGENT }, spec: { serviceAccountName: 'a1', initContainers: [{ name: 'fetch-model', image: 'curl' }], containers: [{ name: 'a', image: 'x' }] } };
    const r = await s.review('/mutate', req('Pod', '', pod));
    assert.equal(r.allowed, true);
    assert.ok(r.patch);
    for (const w of r.warnings! as string[]) assert.ok(w.length <= 120, `${w.length}: ${w}`);
    // every line of the split warning names its rule, as kubectl prints each on its own `Warning:` line
    for (const w of r.warnings! as string[]) assert.ok(w.startsWith('[init-before-proxy] '), w);
    const text = joinWarnings(r.warnings! as string[]);
    assert.match(text, /^\[init-before-proxy\] Pod team-a\/a1: init container fetch-model runs after proxy-init redirects outbound traffic to the proxy/);
    assert.ok(text.includes('Fix: annotate the pod kagenti.io/native-sidecars: "true" (Kubernetes 1.29+ on the API server and every node\'s kubelet) so the proxy starts first'), text);
  } finally {
    await s.close();
  }
});

test('HTTPS /mutate: a container running as the proxy\'s uid 1337 gets the warning that its traffic skips the proxy', async () => {
  const s = await server({});
  try {
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'a1', namespace: 'team-a', labels: AGENT }, spec: { serviceAccountName: 'a1', containers: [{ name: 'agent', image: 'x', securityContext: { runAsUser: 1337 } }] } };
    const r = await s.review('/mutate', req('Pod', '', pod));
    assert.equal(r.allowed, true);
    for (const w of r.warnings! as string[]) assert.ok(w.length <= 120, `${w.length}: ${w}`);
    const text = (r.warnings! as string[]).join(' ');
    assert.match(text, /^\[proxy-uid\] Pod team-a\/a1: container agent runs as uid 1337 \(spec\.containers\[0\]\.securityContext\.runAsUser\)/);
    assert.ok(text.endsWith('Fix: run it as another uid.'), text);
  } finally {
    await s.close();
  }
});

test('HTTPS /validate: a workload whose pods /mutate would deny is denied at apply, with the injection rule; an update that keeps the template is warned', async () => {
  const s = await server({ tokenReview: { issuer: 'external' } });
  try {
    const win = deployment('win-agent', 'win-sa');
    (win.spec.template.spec as Record<string, unknown>).nodeSelector = { 'kubernetes.io/os': 'windows' };
    const res = await s.review('/validate', req('Deployment', 'apps', win));
    assert.equal(res.allowed, false);
    assert.equal(res.status.code, 403);
    assert.match(res.status.message, /^\[unsupported-os\] Deployment team-a\/win-agent: /);
    assert.match(res.status.message, /Fix: /);

    // the same pod template, sent to /mutate as the ReplicaSet controller would create the pod: the same rule
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'win-agent-abc', namespace: 'team-a', ...win.spec.template.metadata }, spec: win.spec.template.spec };
    const m = await s.review('/mutate', req('Pod', '', pod));
    assert.equal(m.allowed, false);
    assert.match(m.status.message, /^\[unsupported-os\] Pod team-a\/win-agent-abc: /);

    // an UPDATE that changes only the Deployment's labels: a warning with the rule, not a denial
    const relabelled = structuredClone(win);
    (relabelled.metadata as Record<string, unknown>).labels = { team: 'a' };
    const upd = await s.review('/validate', req('Deployment', 'apps', relabelled, { operation: 'UPDATE', oldObject: win }));
    assert.equal(upd.allowed, true);
    assert.ok(upd.warnings.some((w: string) => w.startsWith('[unsupported-os]')), JSON.stringify(upd.warnings));
    // an UPDATE that changes the template (still for Windows): denied
    const changed = structuredClone(win);
    (changed.spec.template.spec.containers as Record<string, unknown>[])[0].image = 'y';
    const upd2 = await s.review('/validate', req('Deployment', 'apps', changed, { operation: 'UPDATE', oldObject: win }));
    assert.equal(upd2.allowed, false);

    // not an agent: not checked
    const web = deployment('web', 'web-sa', { app: 'web' });
    (web.spec.template.spec as Record<string, unknown>).hostNetwork = true;
    assert.equal((await s.review('/validate', req('Deployment', 'apps', web))).allowed, true);
  } finally {
    await s.close();
  }
});

test('HTTPS /validate: an UPDATE that keeps the pod template repeats no injection warnings (a reconcile is not told again); an oldObject without kind is compared all the same', async () => {
  const s = await server({ tokenReview: { issuer: 'external' } });
  try {
    const d = deployment('prep', 'prep-sa');
    (d.spec.template.spec as Record<string, unknown>).initContainers = [{ name: 'fetch', image: 'curl' }];
    const created = await s.review('/validate', req('Deployment', 'apps', d));
    assert.equal(created.allowed, true);
    assert.ok((created.warnings ?? []).some((w: string) => w.startsWith('[init-before-proxy]')), JSON.stringify(created.warnings));
    const bumped = structuredClone(d);
    (bumped.metadata as Record<string, unknown>).annotations = { 'deployment.kubernetes.io/revision': '2' };
    const upd = await s.review('/validate', req('Deployment', 'apps', bumped, { operation: 'UPDATE', oldObject: d }));
    assert.equal(upd.allowed, true);
    assert.ok(!(upd.warnings ?? []).some((w: string) => w.startsWith('[init-before-proxy]')), JSON.stringify(upd.warnings));
    // a denial on an unchanged template is a warning, also when oldObject comes without its kind
    const hn = deployment('hn', 'hn-sa');
    (hn.spec.template.spec as Record<string, unknown>).hostNetwork = true;
    const { kind: _kind, ...noKind } = hn;
    const keep = await s.review('/validate', req('Deployment', 'apps', structuredClone(hn), { operation: 'UPDATE', oldObject: noKind }));
    assert.equal(keep.allowed, true, JSON.stringify(keep));
    assert.ok((keep.warnings ?? []).some((w: string) => w.startsWith('[host-network]')), JSON.stringify(keep.warnings));
    assert.match(joinWarnings(keep.warnings), /Not denied: this update leaves the pod template as it was, and its pods are denied until it is fixed\. Fix: /m);
    // a DaemonSet choosing Windows nodes by required node affinity: its controller replaces that affinity with the
    // node's name in each pod, so /mutate cannot deny them; the note says what happens instead
    const ds = { ...deployment('win', 'win-sa'), kind: 'DaemonSet' } as Record<string, any>;
    ds.spec.template.spec.affinity = { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/os', operator: 'In', values: ['windows'] }] }] } } };
    assert.equal((await s.review('/validate', req('DaemonSet', 'apps', structuredClone(ds)))).allowed, false);
    const dsKeep = await s.review('/validate', req('DaemonSet', 'apps', structuredClone(ds), { operation: 'UPDATE', oldObject: structuredClone(ds) }));
    assert.equal(dsKeep.allowed, true);
    assert.match(joinWarnings(dsKeep.warnings), /^\[unsupported-os\] DaemonSet team-a\/win: .* Not denied: this update leaves the pod template as it was\. The DaemonSet controller replaces this node affinity with the node's name in each pod it creates, so the pods are injected and fail on those nodes until it is fixed\. Fix: /m);
  } finally {
    await s.close();
  }
});

test('HTTPS /validate and /mutate: pod-level resources the injected containers exceed are pod-resources, denied at both; under warn both allow with the warning', async () => {
  const budget = () => {
    const d = deployment('budget', 'budget-sa');
    const spec = d.spec.template.spec as Record<string, any>;
    spec.resources = { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '200m', memory: '256Mi' } };
    spec.containers[0].resources = { requests: { cpu: '100m', memory: '128Mi' } };
    return d;
  };
  const podOf = (d: ReturnType<typeof deployment>) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'budget-abc', namespace: 'team-a', ...d.spec.template.metadata }, spec: d.spec.template.spec });
  const deny = await server({ tokenReview: { issuer: 'external' } });
  try {
    const res = await deny.review('/validate', req('Deployment', 'apps', budget()));
    assert.equal(res.allowed, false);
    assert.equal(res.status.code, 403);
    assert.deepEqual(
      res.status.message.split('\n').map((l: string) => /^\[pod-resources\] Deployment team-a\/budget: (spec\.template\.spec\.resources\.\w+\.\w+) is /.exec(l)?.[1]),
      ['spec.template.spec.resources.requests.cpu', 'spec.template.spec.resources.limits.cpu', 'spec.template.spec.resources.requests.memory'],
    );
    const m = await deny.review('/mutate', req('Pod', '', podOf(budget())));
    assert.equal(m.allowed, false);
    assert.match(m.status.message, /^\[pod-resources\] Pod team-a\/budget-abc: spec\.resources\.requests\.cpu is 100m, below the 160m of cpu /);
  } finally {
    await deny.close();
  }
  const warn = await server({ tokenReview: { issuer: 'external' }, policies: { 'pod-resources': 'warn' } });
  try {
    const res = await warn.review('/validate', req('Deployment', 'apps', budget()));
    assert.equal(res.allowed, true);
    // (the rest: unique-service-account cannot be checked without cluster state)
    const own = res.warnings.filter((w: string) => w.startsWith('[pod-resources] '));
    assert.ok(own.length > 3 && res.warnings.every((w: string) => w.length <= 120), JSON.stringify(res.warnings));
    assert.equal(own.filter((w: string) => / Fix: /.test(` ${w.slice('[pod-resources] '.length)}`)).length, 3);
    const m = await warn.review('/mutate', req('Pod', '', podOf(budget())));
    assert.equal(m.allowed, true);
    assert.ok(m.patch);
    assert.ok(m.warnings.every((w: string) => w.startsWith('[pod-resources] ') && w.length <= 120), JSON.stringify(m.warnings));
  } finally {
    await warn.close();
  }
});

test('/validate and /mutate: a 200,000-character K8S_TOKEN_REVIEW is quoted cut, so the denial and the warnings keep their why and Fix', async () => {
  const long = 'x'.repeat(200_000);
  const cut = `"${'x'.repeat(40)}..." (200000 characters)`;
  const deny = await startValidation({ config: configFromObject({ tokenReview: { issuer: 'external' } }), log: silentLogger(), cluster: 'none' });
  try {
    const d = deny.validate(req('ConfigMap', '', cm({ K8S_TOKEN_REVIEW: long })) as never);
    assert.equal(d.response.allowed, false);
    const m = d.response.status!.message!;
    assert.ok(m.includes(`data.K8S_TOKEN_REVIEW is ${cut}.`) && m.endsWith('Fix: set K8S_TOKEN_REVIEW: "true".'), m.slice(-300));
  } finally {
    await deny.close();
  }
  const warn = await startValidation({ config: configFromObject({ tokenReview: { issuer: 'internal' }, policies: { 'token-review-value': 'warn' } }), log: silentLogger(), cluster: 'none' });
  try {
    const w = warn.validate(req('ConfigMap', '', cm({ K8S_TOKEN_REVIEW: long })) as never).response.warnings!;
    // a handful of lines (continuation lines name ConfigMap kagent/kagent-enterprise-config whole), not thousands
    assert.ok(w.length < 16, `${w.length} warning lines`);
    assert.match(joinWarnings(w.filter((l) => l.startsWith('[token-review-value]'))), /is "x{40}\.\.\." \(200000 characters\)\. .* Fix: set K8S_TOKEN_REVIEW: "(true|false)"\.$/);
  } finally {
    await warn.close();
  }
  const mut = await startValidation({ config: configFromObject({ tokenReview: { issuer: 'external', action: 'mutate' } }), log: silentLogger(), cluster: 'none' });
  try {
    const w = mut.mutateConfigMap(req('ConfigMap', '', cm({ K8S_TOKEN_REVIEW: long })) as never)!.response.warnings!;
    assert.ok(joinWarnings(w.filter((l) => l.startsWith('[token-review-value]'))).includes(`(it was ${cut}; tokenReview.action: mutate)`), JSON.stringify(w).slice(0, 500));
    assert.ok(w.length < 10, `${w.length} warning lines`);
  } finally {
    await mut.close();
  }
});

test('[kagent-restart] with cluster state: only where kagent\'s controller Deployment is cached (a first helm install creates the ConfigMap before it)', async () => {
  const api = new FakeApiServer();
  api.seed(PATHS.deployments, [{ metadata: { name: 'kagent-controller', namespace: 'kagent' }, spec: { replicas: 1, template: { metadata: { labels: { app: 'kagent' } }, spec: { containers: [{ name: 'c', image: 'kagent:1' }] } } } }]);
  await api.start();
  const svc = await startValidation({ config: configFromObject({ tokenReview: { issuer: 'external' } }), log: silentLogger(), cluster: 'auto', kubeConfig: api.kubeConfig(), backoff: { baseMs: 20, maxMs: 100 } });
  try {
    await until(() => svc.readiness().ready, 'synced');
    const create = (ns: string) => {
      const obj = { ...cm({ K8S_TOKEN_REVIEW: 'true' }), metadata: { name: 'kagent-enterprise-config', namespace: ns } };
      const v = svc.validate({ ...(req('ConfigMap', '', obj) as object), namespace: ns } as never);
      assert.equal(v.response.allowed, true);
      return joinWarnings(v.response.warnings ?? []);
    };
    assert.equal(create('kagent'), "[kagent-restart] ConfigMap kagent/kagent-enterprise-config: kagent's controller reads K8S_TOKEN_REVIEW only when it starts, so this change takes effect after a restart. Fix: kubectl -n kagent rollout restart deploy/kagent-controller");
    // no controller in that namespace (yet): no reminder whose command would fail NotFound
    assert.equal(create('kagent-new'), '');
  } finally {
    await svc.close();
    await api.stop();
  }
});

test('tokenReview.action mutate: the [kagent-restart] reminder is given once on CREATE, and not on an UPDATE whose "true" the webhook puts back', async () => {
  const svc = await startValidation({ config: configFromObject({ tokenReview: { issuer: 'external', action: 'mutate' } }), log: silentLogger(), cluster: 'none' });
  try {
    // the API server's order: /mutate, its patch applied, then /validate on the patched object
    const flow = (obj: Record<string, any>, extra: Record<string, unknown> = {}) => {
      const r = req('ConfigMap', '', obj, extra) as never;
      const m = svc.mutateConfigMap(r);
      const patched = m?.response.patch ? jsonpatch.applyPatch(structuredClone(obj), decodePatch(m.response) as never).newDocument : obj;
      const v = svc.validate({ ...(r as object), object: patched } as never);
      assert.equal(v.response.allowed, true);
      const all = [...(m?.response.warnings ?? []), ...(v.response.warnings ?? [])];
      return { restart: all.filter((w) => w.startsWith("[kagent-restart] ConfigMap kagent/kagent-enterprise-config: kagent's controller reads")).length, m, v };
    };
    assert.equal(flow(cm({ a: '1' })).restart, 1, 'CREATE without the key: patched, one reminder');
    assert.equal(flow(cm({ K8S_TOKEN_REVIEW: 'true' })).restart, 1, 'CREATE with it: one reminder');
    // helm upgrade re-renders without the key; the live object has "true"; the webhook puts it back: nothing changes
    const dropped = flow(cm({ a: '1' }), { operation: 'UPDATE', oldObject: cm({ a: '1', K8S_TOKEN_REVIEW: 'true' }) });
    assert.ok(dropped.m?.response.patch, 'the value is put back');
    assert.equal(dropped.restart, 0, 'the effective value never changed');
    // an UPDATE from "false" (or none) to the "true" the webhook sets does change it: one reminder
    assert.equal(flow(cm({ a: '1' }), { operation: 'UPDATE', oldObject: cm({ K8S_TOKEN_REVIEW: 'false' }) }).restart, 1);
    assert.equal(flow(cm({ a: '1' }), { operation: 'UPDATE', oldObject: cm({ a: '1' }) }).restart, 1);
  } finally {
    await svc.close();
  }
});

test('immutable ConfigMaps: an UPDATE is warned (it cannot fix the data, so denying it would only block the tools that label it) with delete-and-recreate as the fix, and /mutate never patches one (the API server would refuse it)', async () => {
  const imm = (data: Record<string, unknown>, labels?: Record<string, string>) => ({ ...cm(data, { immutable: true }), metadata: { name: 'kagent-enterprise-config', namespace: 'kagent', ...(labels ? { labels } : {}) } });
  const recreate = /Fix: delete ConfigMap kagent\/kagent-enterprise-config and create it again with K8S_TOKEN_REVIEW: "true" in data, since it is immutable \(immutable: true\) .*kubectl replace --force -f <file>, or kubectl delete, then kubectl apply\.$/;
  for (const action of ['deny', 'mutate']) {
    const svc = await startValidation({ config: configFromObject({ tokenReview: { issuer: 'external', action } }), log: silentLogger(), cluster: 'none' });
    try {
      // a label-only UPDATE (the API server refuses a data change of an immutable ConfigMap before any validating webhook)
      const r = req('ConfigMap', '', imm({ a: '1' }, { team: 'x' }), { operation: 'UPDATE', oldObject: imm({ a: '1' }) }) as never;
      const m = svc.mutateConfigMap(r);
      assert.equal(m, null, `${action}: no patch for an immutable ConfigMap's UPDATE`);
      const v = svc.validate(r);
      assert.equal(v.response.allowed, true, action);
      // the warning lines (kubectl shows each on its own) read as one message once their continuation prefixes go
      const warned = joinWarnings(v.response.warnings!);
      assert.match(warned, /^\[token-review-required\] ConfigMap kagent\/kagent-enterprise-config: data\.K8S_TOKEN_REVIEW is not set\./, action);
      assert.match(warned, /Not denied: this update cannot change an immutable ConfigMap's data/, action);
      assert.match(warned, recreate, action);
      // an UPDATE that makes a mutable one immutable, with the key still missing, is still denied: it could have set it
      const made = svc.validate(req('ConfigMap', '', imm({ a: '1' }), { operation: 'UPDATE', oldObject: cm({ a: '1' }) }) as never);
      if (action === 'deny') {
        assert.equal(made.response.allowed, false);
        assert.match(made.response.status!.message!, /Fix: set K8S_TOKEN_REVIEW: "true" in data\.$/);
      }
      // its CREATE is still patched (mutate) or told to set the key (deny): the object is new
      const c = req('ConfigMap', '', imm({ a: '1' })) as never;
      if (action === 'mutate') assert.ok(svc.mutateConfigMap(c)?.response.patch, 'CREATE is patched');
      else assert.match(svc.validate(c).response.status!.message!, /Fix: set K8S_TOKEN_REVIEW: "true" in data\.$/);
      // an UPDATE that makes it immutable may still change its data: patched as before
      if (action === 'mutate') assert.ok(svc.mutateConfigMap(req('ConfigMap', '', imm({ a: '1' }), { operation: 'UPDATE', oldObject: cm({ a: '1' }) }) as never)?.response.patch);
    } finally {
      await svc.close();
    }
  }
});

test('an answer with more warnings than fit leaves out whole messages, the notices first, and names the rules left out', async () => {
  const { allow, MAX_WARNING_CHARS, MAX_WARNING_LINES, WARNING_MAX } = await import('../webhook/admission.ts');
  const msg = (rule: string, name: string) =>
    `[${rule}] Deployment team-a/${name}: ${'this sentence says what is wrong and where it is, at some length. '.repeat(4)}Fix: do what it says.`;
  // notices (namespace-mode-label) come first in the input; a serious one (csi-driver-missing) last
  const input = [
    ...Array.from({ length: 6 }, (_, i) => msg('namespace-mode-label', `n${i}`)),
    ...Array.from({ length: 8 }, (_, i) => msg('pod-security', `p${i}`)),
    msg('csi-driver-missing', 'last'),
  ];
  const lines = allow('u', input, 'Deployment team-a/weather').warnings!;
  assert.ok(lines.length <= MAX_WARNING_LINES, `${lines.length} lines`);
  assert.ok(lines.reduce((n, l) => n + l.length, 0) <= MAX_WARNING_CHARS);
  for (const l of lines) assert.ok(l.length <= WARNING_MAX, l);
  const messages = joinWarnings(lines).split('\n');
  const note = messages.pop()!;
  // every message sent is whole
  for (const m of messages) assert.ok(input.includes(m), m.slice(0, 200));
  // the serious one is in, the notices are left out before any other
  assert.ok(messages.some((m) => m.startsWith('[csi-driver-missing] ')));
  const kept = messages.filter((m) => m.startsWith('[namespace-mode-label] ')).length;
  assert.ok(kept === 0 || messages.filter((m) => m.startsWith('[pod-security] ')).length === 8, 'notices go before others');
  const left = input.length - messages.length;
  assert.ok(left > 0);
  // the note names the object (kubectl shows a repeated text once per run: a note two objects shared would be lost
  // for the second), the limit that was hit (here the characters: 15 messages are far fewer than 40 lines) and the rules
  assert.equal(note, `[kagenti] Deployment team-a/weather: ${left} more warnings not sent (3,600-character limit): [pod-security], [namespace-mode-label]; run kagenti-webhook lint to see them.`);
  assert.equal(kept, 0, 'every notice left out before the others');
  // and in the order they came: the kept pod-security messages before csi-driver-missing
  assert.ok(messages.findIndex((m) => m.startsWith('[csi-driver-missing]')) === messages.length - 1);
  // a few short warnings pass as they are
  assert.deepEqual(allow('u', ['[a] x', '[b] y']).warnings, ['[a] x', '[b] y']);
  // many short ones: the 40-line limit is the one named, and every rule left out whose name fits is named, the last too
  const short = (rule: string, i: number) => `[${rule}] CronJob team-a/nightly: short ${i}.`;
  const many = [...Array.from({ length: 38 }, (_, i) => short('probe-through-proxy', i)), short('net-admin', 38), short('proxy-uid', 39), short('port-conflict-x', 40)];
  const cut = allow('u', many, 'CronJob team-a/nightly').warnings!;
  assert.ok(cut.length <= MAX_WARNING_LINES, `${cut.length}`);
  for (const l of cut) assert.ok(l.length <= WARNING_MAX, l);
  assert.equal(joinWarnings(cut).split('\n').at(-1), '[kagenti] CronJob team-a/nightly: 3 more warnings not sent (40-line limit): [net-admin], [proxy-uid], [port-conflict-x]; run kagenti-webhook lint to see them.');
  // the same cut for another namespace's object shares no line with it
  const other = allow('u', many.map((m) => m.replace('team-a/', 'team-b/')), 'CronJob team-b/nightly').warnings!;
  assert.equal(other.filter((l) => cut.includes(l)).length, 0);
  // rules that do not all fit: as many as fit, then ', ...'
  const rules = Array.from({ length: 12 }, (_, i) => `a-rather-long-rule-name-${String.fromCharCode(97 + i)}`);
  const crowded = allow('u', [...Array.from({ length: 40 }, (_, i) => short('r', i)), ...rules.map((r, i) => short(r, 40 + i))], 'CronJob team-a/nightly').warnings!;
  assert.ok(crowded.length <= MAX_WARNING_LINES);
  for (const l of crowded) assert.ok(l.length <= WARNING_MAX, l);
  assert.match(joinWarnings(crowded).split('\n').at(-1)!, /^\[kagenti\] CronJob team-a\/nightly: 14 more warnings not sent \(40-line limit\): \[r\], \[a-rather-long-rule-name-a\], .*, \.\.\.; run kagenti-webhook lint to see them\.$/);
});

test('the note on warnings left out, for an object whose label is over 48 characters, names it on each of its lines', async () => {
  const { allow, continuationPrefix, WARNING_MAX } = await import('../webhook/admission.ts');
  // a Helm chart's two Deployments: `Deployment ns/name` is over MAX_LABEL (48), so lines carry the short hashed label
  const refs = ['weather', 'travel'].map((a) => `Deployment team-alpha-production/my-release-agent-chart-${a}-agent`);
  const notes = refs.map((ref) => {
    // 40 short warnings and twelve long-named rules after them: the note names rules enough to take its two lines
    const rules = Array.from({ length: 12 }, (_, i) => `a-rather-long-rule-name-${String.fromCharCode(97 + i)}`);
    const input = [...Array.from({ length: 40 }, (_, i) => `[r] ${ref}: short ${i}.`), ...rules.map((r, i) => `[${r}] ${ref}: short ${40 + i}.`)];
    return allow('u', input, ref).warnings!.filter((l) => l.startsWith('[kagenti] '));
  });
  for (const [i, note] of notes.entries()) {
    assert.equal(note.length, 2, JSON.stringify(note));
    const head = continuationPrefix(`[kagenti] ${refs[i]}: `);
    assert.match(head, /^\[kagenti\] my-release-agent~[0-9a-f]{6}: $/);
    // each raw line, the second too, starts with the object's label (kubectl shows a repeated line once per command)
    for (const l of note) {
      assert.ok(l.startsWith(head), l);
      assert.ok(l.length <= WARNING_MAX, l);
    }
  }
  const [a, b] = notes;
  assert.equal(a!.filter((l) => b!.includes(l)).length, 0, `no line shared: ${JSON.stringify([a, b])}`);
});

test('HTTPS /mutate: a fix that annotates a controller\'s pod names its workload\'s pod template, as dedicated-service-account\'s fix for the same pod does', async () => {
  const s = await server({});
  try {
    // a Job's pod that is meant to finish: sidecars-block-completion's fix is an annotation, which on the pod would not last
    const jobPod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'nightly-28999-x7k2p', namespace: 'team-a', labels: AGENT, ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: 'nightly-28999', uid: 'j', controller: true }] }, spec: { serviceAccountName: 'default', restartPolicy: 'Never', containers: [{ name: 'a', image: 'x' }] } };
    const m = joinWarnings((await s.review('/mutate', req('Pod', '', jobPod))).warnings as string[]);
    // a Job not named as a CronJob's: its template cannot be changed, so the fix says to create the Job again
    assert.match(m, /\[sidecars-block-completion\] .* Fix: annotate the pod template of Job\/nightly-28999 \(spec\.template\.metadata\.annotations; a Job's pod template cannot be changed: delete the Job and create it again with the change\) kagenti\.io\/native-sidecars: "true" \(Kubernetes 1\.29\+ on the API server and every node's kubelet\), or set featureGates\.nativeSidecars: true in the webhook config\./, m);
    // the same pod at /validate: dedicated-service-account names the same workload
    const v = await s.review('/validate', req('Pod', '', jobPod));
    assert.match(JSON.stringify(v), /spec\.template\.spec\.serviceAccountName in Job\/nightly-28999, which creates this pod \(a Job's pod template cannot be changed: delete the Job and create it again with the change\)/);
    // a Job named as the CronJob controller names them (`<cronjob>-<scheduled minute>`), its CronJob not cached: the
    // next run is a new Job from the CronJob's jobTemplate, which both fixes name
    const cronPod = { ...jobPod, metadata: { ...jobPod.metadata, name: 'nightly-29000000-x7k2p', ownerReferences: [{ ...jobPod.metadata.ownerReferences[0]!, name: 'nightly-29000000' }] } };
    const cm = joinWarnings((await s.review('/mutate', req('Pod', '', cronPod))).warnings as string[]);
    assert.match(cm, /Fix: annotate the pod template of CronJob\/nightly \(spec\.jobTemplate\.spec\.template\.metadata\.annotations\) kagenti\.io\/native-sidecars: "true" /, cm);
    assert.match(JSON.stringify(await s.review('/validate', req('Pod', '', cronPod))), /set spec\.jobTemplate\.spec\.template\.spec\.serviceAccountName in CronJob\/nightly, which creates this pod\./);
    // a Deployment's pod (its ReplicaSet by name and pod-template-hash), and a pod of its own
    const rsPod = { ...jobPod, metadata: { ...jobPod.metadata, name: 'weather-7d4b9c-x7k2p', labels: { ...AGENT, 'pod-template-hash': '7d4b9c' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'weather-7d4b9c', uid: 'r', controller: true }] } };
    assert.match(joinWarnings((await s.review('/mutate', req('Pod', '', rsPod))).warnings as string[]), /Fix: annotate the pod template of Deployment\/weather \(spec\.template\.metadata\.annotations\) /);
    const own = { ...jobPod, metadata: { name: 'one-off', namespace: 'team-a', labels: AGENT } };
    assert.match(joinWarnings((await s.review('/mutate', req('Pod', '', own))).warnings as string[]), /Fix: annotate the pod kagenti\.io\/native-sidecars/);
  } finally {
    await s.close();
  }
});

test('HTTPS /mutate: the note on warnings left out names the pod, so kubectl (which shows a repeated text once) shows it for each pod', async () => {
  const s = await server({});
  try {
    // each container is long-named, runs as uid 1337 and adds NET_ADMIN: messages long enough to pass 3,600 characters
    const containers = Array.from({ length: 30 }, (_, i) => ({ name: `c${i}-${'x'.repeat(55)}`, image: 'x', securityContext: { runAsUser: 1337, capabilities: { add: ['NET_ADMIN'] } } }));
    const pod = (ns: string) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'weather-agent-with-a-long-name-x', namespace: ns, labels: AGENT }, spec: { serviceAccountName: 'weather', restartPolicy: 'Never', containers, initContainers: Array.from({ length: 20 }, (_, i) => ({ name: `i${i}`, image: 'x' })) } });
    const a = (await s.review('/mutate', req('Pod', '', pod('team-a')))).warnings as string[];
    const b = (await s.review('/mutate', req('Pod', '', pod('team-b')))).warnings as string[];
    assert.equal(joinWarnings(a).split('\n').at(-1), '[kagenti] Pod team-a/weather-agent-with-a-long-name-x: 1 more warning not sent (3,600-character limit): [net-admin]; run kagenti-webhook lint to see it.');
    assert.equal(a.filter((l) => b.includes(l)).length, 0, 'no line of one pod\'s answer is a line of the other\'s');
  } finally {
    await s.close();
  }
});

test('HTTPS /mutate and /validate of one Pod CREATE: their warnings together stay within the 4,096 characters the API server keeps per request (/validate keeps to what /mutate leaves)', async () => {
  const { API_SERVER_WARNING_CHARS, MAX_WARNING_CHARS, POD_VALIDATE_WARNING_CHARS } = await import('../webhook/admission.ts');
  assert.equal(POD_VALIDATE_WARNING_CHARS, API_SERVER_WARNING_CHARS - MAX_WARNING_CHARS);
  // dedicated-service-account warns; without cluster state unique-service-account says it was not checked
  const s = await server({ policies: { 'dedicated-service-account': 'warn' } });
  try {
    // a directly applied agent pod with many findings (as the left-out note's test): /mutate fills its 3,600
    const containers = Array.from({ length: 30 }, (_, i) => ({ name: `c${i}-${'x'.repeat(55)}`, image: 'x', securityContext: { runAsUser: 1337, capabilities: { add: ['NET_ADMIN'] } } }));
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'weather-agent-with-a-long-name-x', namespace: 'team-a', labels: AGENT }, spec: { serviceAccountName: 'default', restartPolicy: 'Never', containers, initContainers: Array.from({ length: 20 }, (_, i) => ({ name: `i${i}`, image: 'x' })) } };
    const size = (w: unknown) => ((w ?? []) as string[]).reduce((n, l) => n + l.length, 0);
    const mutated = await s.review('/mutate', req('Pod', '', pod));
    const m = mutated.warnings as string[];
    // the validating webhooks see the pod as /mutate left it (injected, with its record)
    const injected = jsonpatch.applyPatch(structuredClone(pod), decodePatch(mutated) as any).newDocument as Record<string, any>;
    const v = (await s.review('/validate', req('Pod', '', injected))).warnings as string[];
    assert.ok(size(m) > API_SERVER_WARNING_CHARS - 1_000, `mutate: ${size(m)}`);
    assert.ok(size(v) <= POD_VALIDATE_WARNING_CHARS, `validate: ${size(v)} characters: ${JSON.stringify(v)}`);
    assert.ok(size(m) + size(v) <= API_SERVER_WARNING_CHARS, `${size(m)} + ${size(v)}`);
    // what did not fit is said, with the limit it hit, for this pod
    assert.match(joinWarnings(v).split('\n').at(-1)!, /^\[kagenti\] Pod team-a\/weather-agent-with-a-long-name-x: 2 more warnings not sent \(496-character limit\)/);
    // a pod /mutate did not inject (no record: it sent no warnings), and a workload, keep the whole 3,600
    const whole = (await s.review('/validate', req('Pod', '', pod))).warnings;
    assert.ok(size(whole) > POD_VALIDATE_WARNING_CHARS, `not injected: ${size(whole)}`);
    for (const rule of ['dedicated-service-account', 'unique-service-account']) assert.match(joinWarnings(whole as string[]), new RegExp(`^\\[${rule}\\] Pod team-a/weather-agent-with-a-long-name-x: .* Fix: `, 'm'));
    const dep = await s.review('/validate', req('Deployment', 'apps', { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'weather', namespace: 'team-a' }, spec: { template: { metadata: { labels: AGENT }, spec: pod.spec } } }));
    assert.ok(size(dep.warnings) > POD_VALIDATE_WARNING_CHARS, `deployment: ${size(dep.warnings)}`);
  } finally {
    await s.close();
  }
});

test('HTTPS /validate: kubectl debug (pods/ephemeralcontainers) on an injected agent pod: an added container with NET_ADMIN, ALL or privileged, or as uid 1337, is warned (net-admin, proxy-uid), never denied', async () => {
  const s = await server({});
  try {
    // the agent pod as /mutate left it (proxy-init injected)
    const created = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'weather-1', namespace: 'team-a', labels: AGENT }, spec: { serviceAccountName: 'weather-sa', containers: [{ name: 'agent', image: 'x' }] } };
    const m = await s.review('/mutate', req('Pod', '', created));
    const running = jsonpatch.applyPatch(structuredClone(created), decodePatch(m) as any).newDocument as Record<string, any>;
    assert.ok(running.spec.initContainers.some((c: { name: string }) => c.name === 'proxy-init'));
    const debug = (pod: Record<string, any>, ...added: Record<string, unknown>[]) => {
      const now = structuredClone(pod);
      now.spec.ephemeralContainers = [...(pod.spec.ephemeralContainers ?? []), ...added];
      return req('Pod', '', now, { operation: 'UPDATE', oldObject: pod, subResource: 'ephemeralcontainers', resource: { group: '', version: 'v1', resource: 'pods' } });
    };
    const netadmin = { name: 'debugger-x7k2p', image: 'busybox', targetContainerName: 'agent', securityContext: { capabilities: { add: ['NET_ADMIN', 'NET_RAW'] } } };
    const r = await s.review('/validate', debug(running, netadmin));
    assert.equal(r.allowed, true);
    for (const w of r.warnings as string[]) assert.ok(w.length <= 120, `${w.length}: ${w}`);
    assert.equal(
      joinWarnings(r.warnings as string[]),
      "[net-admin] Pod team-a/weather-1: ephemeral container debugger-x7k2p (kubectl debug) that this update adds may change the pod's " +
        "iptables rules (adds NET_ADMIN: spec.ephemeralContainers[0].securityContext.capabilities.add), and the pod's network namespace " +
        "is shared, so it can take out proxy-init's redirect and send traffic past the proxy, which AuthBridge then does not see; the " +
        'change stays after it exits. Not denied: debugging is not blocked. Fix: debug without NET_ADMIN, ALL or privileged (kubectl ' +
        'debug --profile=baseline), or delete the pod once done, so that its controller replaces it with one whose redirect is intact.',
    );
    // only the containers this update adds: one added before is not told again; privileged and uid 1337 are
    const before = structuredClone(running);
    before.spec.ephemeralContainers = [netadmin];
    const two = await s.review('/validate', debug(before, { name: 'sysadmin', image: 'busybox', securityContext: { privileged: true } }, { name: 'as-proxy', image: 'busybox', securityContext: { runAsUser: 1337 } }));
    assert.equal(two.allowed, true);
    const text = joinWarnings(two.warnings as string[]);
    assert.match(text, /^\[net-admin\] Pod team-a\/weather-1: ephemeral container sysadmin \(kubectl debug\) that this update adds may change the pod's iptables rules \(is privileged: spec\.ephemeralContainers\[1\]\.securityContext\.privileged\)/);
    assert.ok(!text.includes('debugger-x7k2p'), text);
    assert.ok(
      text.includes(
        "[proxy-uid] Pod team-a/weather-1: ephemeral container as-proxy (kubectl debug) that this update adds runs as uid 1337 (spec.ephemeralContainers[2].securityContext.runAsUser), the proxy's own uid, which proxy-init leaves out of the redirect. Its outbound traffic skips the proxy, so AuthBridge does not see it. Not denied: debugging is not blocked. Fix: debug as another uid",
      ),
      text,
    );
    // nothing to say: a plain debug container, a pod without proxy-init, a pod that is no agent
    const plain = await s.review('/validate', debug(running, { name: 'dbg', image: 'busybox' }));
    assert.deepEqual([plain.allowed, plain.warnings], [true, undefined]);
    assert.equal((await s.review('/validate', debug(created, netadmin))).warnings, undefined, 'no proxy-init: no redirect to take out');
    const tool = { ...running, metadata: { ...running.metadata, labels: { 'kagenti.io/type': 'tool' } } };
    assert.equal((await s.review('/validate', debug(tool, netadmin))).warnings, undefined, 'a tool while injectTools is off');
    // other subresources are still not checked
    assert.equal((await s.review('/validate', { ...debug(running, netadmin), subResource: 'status' })).warnings, undefined);
  } finally {
    await s.close();
  }
  const off = await server({ policies: { 'net-admin': 'off' } });
  try {
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'w', namespace: 'team-a', labels: AGENT }, spec: { initContainers: [{ name: 'proxy-init', image: 'x' }], containers: [{ name: 'a', image: 'x' }] } };
    const now = { ...pod, spec: { ...pod.spec, ephemeralContainers: [{ name: 'd', image: 'x', securityContext: { privileged: true } }] } };
    const r = await off.review('/validate', req('Pod', '', now, { operation: 'UPDATE', oldObject: pod, subResource: 'ephemeralcontainers' }));
    assert.deepEqual([r.allowed, r.warnings], [true, undefined], 'policies.net-admin: off');
  } finally {
    await off.close();
  }
});

test('HTTPS /validate: an agent Deployment labelled kagenti.io/inject: disabled that keeps an earlier `inject`\'s sidecars is admitted with the stale-injection warning; an UPDATE that keeps its template is not warned again', async () => {
  const s = await server({});
  try {
    // what `inject` wrote: /mutate injects a pod the same way, and its patch gives the pieces and the record
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'w', namespace: 'team-a', labels: AGENT }, spec: { serviceAccountName: 'weather', containers: [{ name: 'a', image: 'x' }] } };
    const injected = jsonpatch.applyPatch(structuredClone(pod), decodePatch(await s.review('/mutate', req('Pod', '', pod))) as any).newDocument as Record<string, any>;
    const labels = { ...AGENT, 'kagenti.io/inject': 'disabled' };
    const dep = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'weather', namespace: 'team-a' }, spec: { template: { metadata: { labels, annotations: injected.metadata.annotations }, spec: injected.spec } } };
    const r = await s.review('/validate', req('Deployment', 'apps', dep));
    assert.equal(r.allowed, true);
    const warnings = joinWarnings(r.warnings as string[]);
    assert.match(warnings, /^\[stale-injection\] Deployment team-a\/weather: spec\.template\.metadata\.annotations\["kagenti\.io\/authbridge-status"\] records an earlier injection whose pieces are still in the template \(.*authbridge-proxy.*\), but it is labelled kagenti\.io\/inject: disabled, .* Fix: run `kagenti-webhook inject` on the manifest again/m);
    const update = await s.review('/validate', req('Deployment', 'apps', { ...dep, metadata: { ...dep.metadata, labels: { team: 'x' } } }, { operation: 'UPDATE', oldObject: dep }));
    assert.equal(update.allowed, true);
    assert.doesNotMatch(joinWarnings((update.warnings ?? []) as string[]), /stale-injection/);
  } finally {
    await s.close();
  }
});
