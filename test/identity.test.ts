import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultConfig } from '../webhook/config.ts';
import type { OwnerLookup, OwnerRef } from '../webhook/identity.ts';
import { agentIdentity, controllerOf, copySelector, cronJobJobName, effectiveServiceAccount, identityKey, orphanWorkload, selectorMatches, stripTemplateHash, templateOwner, topLevelWorkload } from '../webhook/identity.ts';

const config = defaultConfig();

function pod(owner?: { kind: string; name: string }, labels: Record<string, string> = {}, extra: Record<string, unknown> = {}) {
  const metadata: Record<string, unknown> = {
    generateName: owner ? `${owner.name}-` : undefined,
    namespace: 'team-a',
    labels: { 'kagenti.io/type': 'agent', ...labels },
    ...extra,
  };
  if (owner) metadata.ownerReferences = [{ apiVersion: 'apps/v1', kind: owner.kind, name: owner.name, uid: 'u', controller: true }];
  return { apiVersion: 'v1', kind: 'Pod', metadata, spec: { serviceAccountName: 'weather', containers: [] } };
}

test('a Deployment pod belongs to the Deployment: the pod-template hash is stripped, never kept', () => {
  const p = pod({ kind: 'ReplicaSet', name: 'weather-agent-7d9f8b6c5d' }, { 'pod-template-hash': '7d9f8b6c5d' });
  const id = agentIdentity(p, config)!;
  assert.equal(id.kind, 'Deployment');
  assert.equal(id.name, 'weather-agent');
  assert.equal(id.serviceAccount, 'weather');
  assert.deepEqual(id.source, { kind: 'Pod', name: 'weather-agent-7d9f8b6c5d-<generated>' });
  assert.ok(!identityKey(id).includes('7d9f8b6c5d'));
});

test('a pod of a bare ReplicaSet (no hash label) belongs to the ReplicaSet; the cache can say so too', () => {
  const p = pod({ kind: 'ReplicaSet', name: 'rs-1' });
  assert.deepEqual(topLevelWorkload(p, 'team-a'), { kind: 'ReplicaSet', name: 'rs-1' });
  const bare: OwnerLookup = () => null;
  assert.deepEqual(topLevelWorkload(p, 'team-a', bare), { kind: 'ReplicaSet', name: 'rs-1' });
  // The cached ReplicaSet has no owner but a Deployment's name and hash: orphaned (`kubectl delete
  // --cascade=orphan`) until the re-created Deployment adopts it, so it is still that Deployment.
  const hashed = pod({ kind: 'ReplicaSet', name: 'x-abc' }, { 'pod-template-hash': 'abc' });
  assert.deepEqual(topLevelWorkload(hashed, 'team-a', bare), { kind: 'Deployment', name: 'x' });
  // the cache knows the Deployment even when the name does not follow the hash convention
  const viaCache: OwnerLookup = (k, ns, n) => (k === 'ReplicaSet' && ns === 'team-a' && n === 'odd' ? { kind: 'Deployment', name: 'real' } : undefined);
  assert.deepEqual(topLevelWorkload(pod({ kind: 'ReplicaSet', name: 'odd' }), 'team-a', viaCache), { kind: 'Deployment', name: 'real' });
});

test('StatefulSet and DaemonSet pods belong to those; bare pods to themselves', () => {
  assert.deepEqual(topLevelWorkload(pod({ kind: 'StatefulSet', name: 'db' }), 'team-a'), { kind: 'StatefulSet', name: 'db' });
  assert.deepEqual(topLevelWorkload(pod({ kind: 'DaemonSet', name: 'ds' }), 'team-a'), { kind: 'DaemonSet', name: 'ds' });
  const bare = pod(undefined, {}, { name: 'solo' });
  const id = agentIdentity(bare, config)!;
  assert.deepEqual([id.kind, id.name, id.source], ['Pod', 'solo', undefined]);
});

test('Job pods: the CronJob when the cache knows the Job, else the Job itself', () => {
  const p = pod({ kind: 'Job', name: 'nightly-29000000' });
  assert.deepEqual(topLevelWorkload(p, 'team-a'), { kind: 'Job', name: 'nightly-29000000' });
  const lookup: OwnerLookup = (k, _ns, n) => (k === 'Job' && n === 'nightly-29000000' ? { kind: 'CronJob', name: 'nightly' } : undefined);
  assert.deepEqual(topLevelWorkload(p, 'team-a', lookup), { kind: 'CronJob', name: 'nightly' });
  const job = { kind: 'Job', metadata: { name: 'nightly-1', ownerReferences: [{ kind: 'CronJob', name: 'nightly', controller: true }] }, spec: { template: { metadata: { labels: { 'kagenti.io/type': 'agent' } }, spec: {} } } };
  const id = agentIdentity(job, config, 'team-a')!;
  assert.deepEqual([id.kind, id.name, id.serviceAccount], ['CronJob', 'nightly', 'default']);
});

test('ReplicaSet owned by a Deployment resolves to it; workloads owned by operators stay themselves', () => {
  const rs = { kind: 'ReplicaSet', metadata: { name: 'w-abc', ownerReferences: [{ kind: 'Deployment', name: 'w', controller: true }] } };
  assert.deepEqual(topLevelWorkload(rs, 'ns'), { kind: 'Deployment', name: 'w' });
  const sts = { kind: 'StatefulSet', metadata: { name: 's', ownerReferences: [{ kind: 'Agent', name: 'a', controller: true }] } };
  assert.deepEqual(topLevelWorkload(sts, 'ns'), { kind: 'StatefulSet', name: 's' });
  // a pod owned by some other controller (an operator's custom resource) belongs to that owner
  assert.deepEqual(topLevelWorkload(pod({ kind: 'Agent', name: 'a1' }), 'team-a'), { kind: 'Agent', name: 'a1' });
});

test('kagenti.io/agent label is carried into the identity key', () => {
  const p = pod({ kind: 'ReplicaSet', name: 'w-blue-abc' }, { 'pod-template-hash': 'abc', 'kagenti.io/agent': 'weather' });
  const id = agentIdentity(p, config)!;
  assert.equal(id.agent, 'weather');
  assert.equal(identityKey(id), 'agent:weather');
});

test('helpers: controllerOf, stripTemplateHash, effectiveServiceAccount', () => {
  assert.equal(controllerOf({ metadata: { ownerReferences: [{ kind: 'A', name: 'a' }, { kind: 'B', name: 'b', controller: true }] } })?.name, 'b');
  assert.equal(controllerOf({ metadata: { ownerReferences: [{ kind: 'A', name: 'a' }, { kind: 'B', name: 'b' }] } }), null);
  assert.equal(controllerOf({ metadata: { ownerReferences: [null, 3, { kind: 'A' }] } }), null);
  assert.equal(stripTemplateHash('web-5f7c9', '5f7c9'), 'web');
  assert.equal(stripTemplateHash('5f7c9', '5f7c9'), null);
  assert.equal(stripTemplateHash('web-1', undefined), null);
  assert.equal(effectiveServiceAccount(undefined), 'default');
  assert.equal(effectiveServiceAccount({ serviceAccountName: '' }), 'default');
  assert.equal(effectiveServiceAccount({ serviceAccountName: 5 }), 'default');
  assert.equal(effectiveServiceAccount({ serviceAccount: 'old' }), 'old');
});

test('non-agents are not identities', () => {
  const p = pod();
  p.metadata.labels = { app: 'x' } as never;
  assert.equal(agentIdentity(p, config), null);
  assert.equal(agentIdentity(null, config), null);
  assert.equal(agentIdentity('pod', config), null);
});

test('a ReplicaSet or Job belongs to its controller (Argo Rollout, KEDA ScaledJob, JobSet), and so do its pods; a garbage-collection owner does not merge', () => {
  const rs = { apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name: 'weather-6f9c8d7b5', labels: { 'rollouts-pod-template-hash': '6f9c8d7b5' }, ownerReferences: [{ apiVersion: 'argoproj.io/v1alpha1', kind: 'Rollout', name: 'weather', controller: true }] } };
  assert.deepEqual(topLevelWorkload(rs, 'team-a'), { kind: 'Rollout', name: 'weather' });
  const rolloutPod = pod({ kind: 'ReplicaSet', name: 'weather-6f9c8d7b5' }, { 'rollouts-pod-template-hash': '6f9c8d7b5' });
  const cache: OwnerLookup = (k, _ns, n) => (k === 'ReplicaSet' && n === 'weather-6f9c8d7b5' ? { kind: 'Rollout', name: 'weather' } : undefined);
  assert.deepEqual(topLevelWorkload(rolloutPod, 'team-a', cache), { kind: 'Rollout', name: 'weather' });
  assert.deepEqual(topLevelWorkload(rolloutPod, 'team-a'), { kind: 'Rollout', name: 'weather' }, 'not cached: by name and hash');
  const job = { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'worker-7xk2p', ownerReferences: [{ apiVersion: 'keda.sh/v1alpha1', kind: 'ScaledJob', name: 'worker', controller: true }] } };
  assert.deepEqual(topLevelWorkload(job, 'team-a'), { kind: 'ScaledJob', name: 'worker' });
  const jobPod = pod({ kind: 'Job', name: 'worker-7xk2p' });
  assert.deepEqual(topLevelWorkload(jobPod, 'team-a', (k) => (k === 'Job' ? { kind: 'ScaledJob', name: 'worker' } : undefined)), { kind: 'ScaledJob', name: 'worker' });
  // Owned only for garbage collection (here by a ConfigMap both point at, no `controller: true`): each is its own
  // workload, so two agents cannot merge into one identity through a shared owner. A controller of any kind (a
  // JobSet) makes its Jobs one workload.
  const gc = (name: string) => ({ apiVersion: 'batch/v1', kind: 'Job', metadata: { name, ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'run-42' }] } });
  assert.deepEqual(topLevelWorkload(gc('summarizer'), 'team-a'), { kind: 'Job', name: 'summarizer' });
  assert.deepEqual(topLevelWorkload(pod({ kind: 'Job', name: 'summarizer' }), 'team-a', () => ({ kind: 'ConfigMap', name: 'run-42' })), { kind: 'Job', name: 'summarizer' });
  const rsGc = { apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name: 'r1', ownerReferences: [{ kind: 'ConfigMap', name: 'run-42' }] } };
  assert.deepEqual(topLevelWorkload(rsGc, 'team-a'), { kind: 'ReplicaSet', name: 'r1' });
  const notController = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p2', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'gc', controller: false }] }, spec: {} };
  assert.deepEqual(topLevelWorkload(notController, 'team-a'), { kind: 'Pod', name: 'p2' }, 'controller: false never merges');
  const bare = (name: string) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, labels: { 'kagenti.io/type': 'agent' }, ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'run-42' }] }, spec: {} });
  assert.deepEqual(topLevelWorkload(bare('p1'), 'team-a'), { kind: 'Pod', name: 'p1' });
  const jobSetJob = { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'agents-workers-1', ownerReferences: [{ apiVersion: 'jobset.x-k8s.io/v1alpha2', kind: 'JobSet', name: 'agents', controller: true }] } };
  assert.deepEqual(topLevelWorkload(jobSetJob, 'team-a'), { kind: 'JobSet', name: 'agents' });
  assert.deepEqual(
    topLevelWorkload(pod({ kind: 'Job', name: 'agents-workers-1' }), 'team-a', () => ({ kind: 'JobSet', name: 'agents', controller: true })),
    { kind: 'JobSet', name: 'agents' },
  );
  // A StatefulSet owned by an operator's resource is still its own workload.
  const sts = { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'db', ownerReferences: [{ kind: 'Database', name: 'db', controller: true }] } };
  assert.deepEqual(topLevelWorkload(sts, 'team-a'), { kind: 'StatefulSet', name: 'db' });
});

test('objects orphaned by kubectl delete --cascade=orphan still count as their Deployment or StatefulSet', () => {
  const rs = { apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name: 'weather-7d9f8b6c5d', labels: { app: 'weather', 'pod-template-hash': '7d9f8b6c5d' } } };
  assert.deepEqual(topLevelWorkload(rs, 'team-a'), { kind: 'Deployment', name: 'weather' });
  const stsPod = pod(undefined, { 'statefulset.kubernetes.io/pod-name': 'memory-0' }, { name: 'memory-0' });
  assert.deepEqual(topLevelWorkload(stsPod, 'team-a'), { kind: 'StatefulSet', name: 'memory' });
  // Without the label that ties the name to the pod, a bare pod is itself.
  assert.deepEqual(topLevelWorkload(pod(undefined, {}, { name: 'memory-0' }), 'team-a'), { kind: 'Pod', name: 'memory-0' });
  assert.deepEqual(topLevelWorkload(pod(undefined, { 'statefulset.kubernetes.io/pod-name': 'other-0' }, { name: 'memory-0' }), 'team-a'), { kind: 'Pod', name: 'memory-0' });
});

test('selectorMatches: label selectors as a Deployment or StatefulSet controller adopts by them', () => {
  const labels = { app: 'weather', tier: 'web', track: 'stable' };
  const m = (selector: unknown, l: Record<string, unknown> = labels) => selectorMatches(selector, l);
  assert.equal(m({ matchLabels: { app: 'weather' } }), true);
  assert.equal(m({ matchLabels: { app: 'weather', tier: 'web' } }), true);
  assert.equal(m({ matchLabels: { app: 'weather', tier: 'db' } }), false, 'every pair');
  assert.equal(m({ matchLabels: { app: 'weather', zone: 'a' } }), false, 'a label the object lacks');
  assert.equal(m({ matchExpressions: [{ key: 'tier', operator: 'In', values: ['db', 'web'] }] }), true);
  assert.equal(m({ matchExpressions: [{ key: 'tier', operator: 'In', values: ['db'] }] }), false);
  assert.equal(m({ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] }), false);
  assert.equal(m({ matchExpressions: [{ key: 'track', operator: 'NotIn', values: ['canary'] }] }), true);
  assert.equal(m({ matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['a'] }] }), true, 'NotIn: an unset label');
  assert.equal(m({ matchExpressions: [{ key: 'track', operator: 'NotIn', values: ['stable'] }] }), false);
  assert.equal(m({ matchExpressions: [{ key: 'app', operator: 'Exists' }] }), true);
  assert.equal(m({ matchExpressions: [{ key: 'zone', operator: 'Exists' }] }), false);
  assert.equal(m({ matchExpressions: [{ key: 'zone', operator: 'DoesNotExist' }] }), true);
  assert.equal(m({ matchExpressions: [{ key: 'app', operator: 'DoesNotExist' }] }), false);
  // matchLabels and matchExpressions together: all of them
  const both = { matchLabels: { app: 'weather' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['web'] }, { key: 'canary', operator: 'DoesNotExist' }] };
  assert.equal(m(both), true);
  assert.equal(m(both, { ...labels, canary: 'yes' }), false);
  assert.equal(m(both, { tier: 'web' }), false);
  // A missing or empty selector, or one the API server would reject, selects nothing here.
  for (const bad of [
    undefined,
    null,
    {},
    { matchLabels: {} },
    { matchLabels: {}, matchExpressions: [] },
    'app=weather',
    { matchLabels: { app: 5 } },
    { matchLabels: ['app'] },
    { matchExpressions: [{ key: 'app', operator: 'In', values: [] }] },
    { matchExpressions: [{ key: 'zone', operator: 'NotIn' }] },
    { matchExpressions: [{ key: 'app', operator: 'Exists', values: ['weather'] }] },
    { matchExpressions: [{ key: 'zone', operator: 'DoesNotExist', values: ['a'] }] },
    { matchExpressions: [{ key: 'app', operator: 'in', values: ['weather'] }] },
    { matchExpressions: [{ key: 'app', operator: 'Equals', values: ['weather'] }] },
    { matchExpressions: [{ operator: 'Exists' }] },
    { matchExpressions: [{ key: 'app', operator: 'In', values: [5] }] },
    { matchExpressions: { key: 'app', operator: 'Exists' } },
    { matchLabels: { app: 'weather' }, matchExpressions: [{ key: 'app', operator: 'Bogus' }] },
  ])
    assert.equal(m(bad), false, JSON.stringify(bad));
  // only the object's own string labels count
  assert.equal(m({ matchExpressions: [{ key: 'constructor', operator: 'Exists' }] }, {}), false);
  assert.equal(m({ matchLabels: { app: 'weather' } }, { app: ['weather'] }), false);
  // copySelector keeps what selectorMatches reads, and a malformed selector copies to null
  assert.deepEqual(copySelector({ ...both, extra: 1 }), both);
  assert.equal(copySelector({ matchLabels: { app: 5 } }), null);
  assert.equal(copySelector(undefined), null);
});

test('an orphan counts as the workload its name names only while that workload is not cached, or when its selector selects the orphan', () => {
  // The cache as the lookup sees it: Deployment weather and StatefulSet db, with their selectors.
  const selectors: Record<string, unknown> = { 'Deployment/weather': { matchLabels: { app: 'weather' } }, 'StatefulSet/db': { matchLabels: { app: 'db' } } };
  const cached: Record<string, Record<string, string>> = {};
  const lookup: OwnerLookup = (k, _ns, n) => (cached[`${k}/${n}`] ? null : undefined);
  lookup.selector = (k, _ns, n) => selectors[`${k}/${n}`];
  lookup.labels = (k, _ns, n) => cached[`${k}/${n}`];
  const rs = (name: string, labels: Record<string, string>) => ({ kind: 'ReplicaSet', metadata: { name, labels } });
  assert.deepEqual(topLevelWorkload(rs('weather-abc', { 'pod-template-hash': 'abc', app: 'weather' }), 'team-a', lookup), { kind: 'Deployment', name: 'weather' });
  assert.deepEqual(topLevelWorkload(rs('weather-zzz', { 'pod-template-hash': 'zzz', app: 'evil' }), 'team-a', lookup), { kind: 'ReplicaSet', name: 'weather-zzz' });
  // not cached: the orphan window after --cascade=orphan, by name (and with no lookup, or one without selectors)
  assert.deepEqual(topLevelWorkload(rs('news-zzz', { 'pod-template-hash': 'zzz', app: 'evil' }), 'team-a', lookup), { kind: 'Deployment', name: 'news' });
  assert.deepEqual(topLevelWorkload(rs('weather-zzz', { 'pod-template-hash': 'zzz' }), 'team-a'), { kind: 'Deployment', name: 'weather' });
  assert.deepEqual(topLevelWorkload(rs('weather-zzz', { 'pod-template-hash': 'zzz' }), 'team-a', () => undefined), { kind: 'Deployment', name: 'weather' });
  // a cached workload with no selector adopts nothing
  selectors['Deployment/bare'] = null;
  assert.deepEqual(topLevelWorkload(rs('bare-abc', { 'pod-template-hash': 'abc', app: 'bare' }), 'team-a', lookup), { kind: 'ReplicaSet', name: 'bare-abc' });
  // StatefulSet pods
  const sts = (name: string, labels: Record<string, string>) => pod(undefined, { 'statefulset.kubernetes.io/pod-name': name, ...labels }, { name });
  assert.deepEqual(topLevelWorkload(sts('db-0', { app: 'db' }), 'team-a', lookup), { kind: 'StatefulSet', name: 'db' });
  assert.deepEqual(topLevelWorkload(sts('db-5', { app: 'evil' }), 'team-a', lookup), { kind: 'Pod', name: 'db-5' });
  assert.deepEqual(topLevelWorkload(sts('memory-5', {}), 'team-a', lookup), { kind: 'StatefulSet', name: 'memory' });
  // A pod of a cached ReplicaSet without an owner counts as that ReplicaSet does, by the ReplicaSet's labels.
  cached['ReplicaSet/weather-zzz'] = { 'pod-template-hash': 'zzz', app: 'evil' };
  cached['ReplicaSet/weather-abc'] = { 'pod-template-hash': 'abc', app: 'weather' };
  assert.deepEqual(topLevelWorkload(pod({ kind: 'ReplicaSet', name: 'weather-zzz' }, { 'pod-template-hash': 'zzz', app: 'weather' }), 'team-a', lookup), { kind: 'ReplicaSet', name: 'weather-zzz' });
  assert.deepEqual(topLevelWorkload(pod({ kind: 'ReplicaSet', name: 'weather-abc' }, { 'pod-template-hash': 'abc', app: 'weather' }), 'team-a', lookup), { kind: 'Deployment', name: 'weather' });
  // orphanWorkload: what the names tie an object without a workload owner to
  assert.deepEqual(orphanWorkload('ReplicaSet', rs('weather-zzz', { 'pod-template-hash': 'zzz' })), { kind: 'Deployment', name: 'weather' });
  assert.deepEqual(orphanWorkload('Pod', sts('db-5', {})), { kind: 'StatefulSet', name: 'db' });
  assert.equal(orphanWorkload('Pod', pod({ kind: 'StatefulSet', name: 'db' }, { 'statefulset.kubernetes.io/pod-name': 'db-5' }, { name: 'db-5' })), null, 'owned');
  assert.equal(orphanWorkload('ReplicaSet', rs('weather', {})), null);
  assert.equal(orphanWorkload('Deployment', rs('weather-zzz', { 'pod-template-hash': 'zzz' })), null);
});

test('a CronJob Job not in the cache yet: its pod counts as the CronJob when that CronJob is cached, else as the Job', () => {
  // The Job controller creates the pod right after the Job, so the pod can arrive before the Job is cached. The
  // CronJob controller names its Jobs <cronjob>-<scheduled time in minutes since the epoch>.
  // the request's time, passed in (identity.ts reads no clock): a fixed one, months before this test runs
  const NOW = Date.UTC(2024, 4, 1, 12, 0);
  const MINUTES = cronJobJobName('x', NOW).slice(2);
  const p = pod({ kind: 'Job', name: `nightly-${MINUTES}` });
  // The cache as the lookup sees it: the CronJobs cached per namespace (owned by cronJobOwner, else by nothing),
  // and the Job: undefined while it is not cached, else what its ownerReference says.
  const cronJobs =
    (cached: Record<string, string[]>, job?: OwnerRef | null, cronJobOwner: OwnerRef | null = null): OwnerLookup =>
    (k, ns, n) => (k === 'CronJob' ? (cached[ns]?.includes(n) ? cronJobOwner : undefined) : k === 'Job' ? job : undefined);
  assert.deepEqual(topLevelWorkload(p, 'team-a', cronJobs({ 'team-a': ['nightly'] }), NOW), { kind: 'CronJob', name: 'nightly' });
  const id = agentIdentity(p, config, undefined, cronJobs({ 'team-a': ['nightly'] }), NOW)!;
  assert.deepEqual([id.kind, id.name, id.source?.kind], ['CronJob', 'nightly', 'Pod']);
  // a CronJob name that itself ends in digits, and a CronJob owned by something else, are still the CronJob
  assert.deepEqual(topLevelWorkload(pod({ kind: 'Job', name: `backup-2-${MINUTES}` }), 'team-a', cronJobs({ 'team-a': ['backup-2'] }), NOW), { kind: 'CronJob', name: 'backup-2' });
  assert.deepEqual(
    topLevelWorkload(p, 'team-a', cronJobs({ 'team-a': ['nightly'] }, undefined, { kind: 'Schedule', name: 's', controller: true }), NOW),
    { kind: 'CronJob', name: 'nightly' },
  );
  // No CronJob of that name in the cache (none at all, another namespace, another name), or no cache: the Job.
  assert.deepEqual(topLevelWorkload(p, 'team-a', cronJobs({}), NOW), { kind: 'Job', name: `nightly-${MINUTES}` });
  assert.deepEqual(topLevelWorkload(p, 'team-a', cronJobs({ 'team-b': ['nightly'] }), NOW), { kind: 'Job', name: `nightly-${MINUTES}` });
  assert.deepEqual(topLevelWorkload(p, 'team-a', cronJobs({ 'team-a': ['nightly-2'] }), NOW), { kind: 'Job', name: `nightly-${MINUTES}` });
  assert.deepEqual(topLevelWorkload(p, 'team-a'), { kind: 'Job', name: `nightly-${MINUTES}` });
  // The time is the caller's, not the clock's: the same pod at a request a month later is the Job (its name is no
  // scheduled time of the week before), and without a time the name is not taken for a schedule at all.
  assert.deepEqual(topLevelWorkload(p, 'team-a', cronJobs({ 'team-a': ['nightly'] }), NOW + 30 * 24 * 3600_000), { kind: 'Job', name: `nightly-${MINUTES}` });
  assert.deepEqual(topLevelWorkload(p, 'team-a', cronJobs({ 'team-a': ['nightly'] })), { kind: 'Job', name: `nightly-${MINUTES}` });
  assert.equal(agentIdentity(p, config, undefined, cronJobs({ 'team-a': ['nightly'] }))!.kind, 'Job');
  // Not named <cronjob>-<digits>: the Job, even with a CronJob of the prefix cached.
  for (const name of ['nightly-manual', `nightly-${MINUTES}x`, 'nightly-', `${MINUTES}`])
    assert.deepEqual(topLevelWorkload(pod({ kind: 'Job', name }), 'team-a', cronJobs({ 'team-a': ['nightly', ''] }), NOW), { kind: 'Job', name }, name);
  // A suffix that is no scheduled time of the last week (a Job named by hand, `kubectl create job nightly-2`): the
  // Job, not the CronJob, as it will be once cached.
  for (const name of ['nightly-2', `nightly-${Number(MINUTES) - 8 * 24 * 60}`, `nightly-${Number(MINUTES) + 2 * 24 * 60}`])
    assert.deepEqual(topLevelWorkload(pod({ kind: 'Job', name }), 'team-a', cronJobs({ 'team-a': ['nightly'] }), NOW), { kind: 'Job', name }, name);
  assert.deepEqual(topLevelWorkload(pod({ kind: 'Job', name: `nightly-${Number(MINUTES) - 6 * 24 * 60}` }), 'team-a', cronJobs({ 'team-a': ['nightly'] }), NOW), { kind: 'CronJob', name: 'nightly' });
  // A cached Job resolves through its own ownerReference only: without one (`kubectl create job nightly-<minutes>`)
  // it is itself even though the CronJob is cached.
  const jobCachedBare = cronJobs({ 'team-a': ['nightly'] }, null);
  assert.deepEqual(topLevelWorkload(p, 'team-a', jobCachedBare, NOW), { kind: 'Job', name: `nightly-${MINUTES}` });
  const jobCachedScaled = cronJobs({ 'team-a': ['nightly'] }, { kind: 'ScaledJob', name: 'w', controller: true });
  assert.deepEqual(topLevelWorkload(p, 'team-a', jobCachedScaled, NOW), { kind: 'ScaledJob', name: 'w' });
});

test('templateOwner: only the controller reference its controller writes (controller: true, apps/v1 or batch/v1) makes a template checked on its owner', () => {
  const owned = (kind: string, ...ownerReferences: unknown[]) => ({ kind, metadata: { name: 'x', ownerReferences } });
  const ref = (apiVersion: string | undefined, kind: string, controller?: boolean) => ({ ...(apiVersion ? { apiVersion } : {}), kind, name: 'o', uid: 'u', ...(controller === undefined ? {} : { controller }) });
  const yes = { name: 'o', controller: true };
  assert.deepEqual(templateOwner(owned('ReplicaSet', ref('apps/v1', 'Deployment', true))), { kind: 'Deployment', ...yes });
  assert.deepEqual(templateOwner(owned('Job', ref('batch/v1', 'CronJob', true))), { kind: 'CronJob', ...yes });
  // an only owner, a controller: false one, another API group's kind of that name, or no apiVersion: checked itself
  for (const [kind, apiVersion, owner] of [['ReplicaSet', 'apps/v1', 'Deployment'], ['Job', 'batch/v1', 'CronJob']]) {
    assert.equal(templateOwner(owned(kind, ref(apiVersion, owner))), null);
    assert.equal(templateOwner(owned(kind, ref(apiVersion, owner, false))), null);
    assert.equal(templateOwner(owned(kind, ref('example.com/v1', owner, true))), null);
    assert.equal(templateOwner(owned(kind, ref(undefined, owner, true))), null);
    // beside another controller (an Argo Rollout), a Deployment that only refers to it does not count
    assert.equal(templateOwner(owned(kind, ref(apiVersion, owner), ref('argoproj.io/v1alpha1', 'Rollout', true))), null);
  }
  assert.equal(templateOwner(owned('ReplicaSet', ref('batch/v1', 'CronJob', true))), null);
  // lint's controller-made pods
  for (const [apiVersion, kind] of [['apps/v1', 'ReplicaSet'], ['batch/v1', 'Job'], ['apps/v1', 'StatefulSet'], ['apps/v1', 'DaemonSet']]) {
    assert.deepEqual(templateOwner(owned('Pod', ref(apiVersion, kind, true)), true), { kind, ...yes });
    assert.equal(templateOwner(owned('Pod', ref(apiVersion, kind, true))), null, 'at admission a Pod is checked itself');
    assert.equal(templateOwner(owned('Pod', ref(apiVersion, kind)), true), null);
    assert.equal(templateOwner(owned('Pod', ref('example.com/v1', kind, true)), true), null);
  }
  assert.equal(templateOwner(owned('Deployment', ref('apps/v1', 'Deployment', true))), null);
  assert.equal(templateOwner({ kind: 'ReplicaSet', metadata: { ownerReferences: 'x' } }), null);
});

test('controllers that make a workload per version: a Knative Revision\'s Deployment is its Configuration, an OpenShift DeploymentConfig\'s ReplicationController is the DeploymentConfig', () => {
  const kn = (rev: string, extra: Record<string, string> = {}) => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: `${rev}-deployment`, namespace: 'team-a', ownerReferences: [{ apiVersion: 'serving.knative.dev/v1', kind: 'Revision', name: rev, uid: 'r', controller: true }] },
    spec: { replicas: 0, template: { metadata: { labels: { 'kagenti.io/type': 'agent', 'serving.knative.dev/configuration': 'hello', 'serving.knative.dev/revision': rev, ...extra } }, spec: { serviceAccountName: 'hello-sa' } } },
  });
  const one = agentIdentity(kn('hello-00001'), config);
  const two = agentIdentity(kn('hello-00002'), config);
  assert.deepEqual([one?.kind, one?.name, one?.source], ['Configuration', 'hello', { kind: 'Deployment', name: 'hello-00001-deployment' }]);
  assert.equal(identityKey(one!), identityKey(two!), 'two revisions are one agent');
  // its pod, through the ReplicaSet (not cached: by name and hash), carries the same labels
  const pod = {
    kind: 'Pod',
    metadata: {
      name: 'hello-00002-deployment-5d4c3b2a1f-abcde',
      labels: { 'kagenti.io/type': 'agent', 'pod-template-hash': '5d4c3b2a1f', 'serving.knative.dev/configuration': 'hello', 'serving.knative.dev/revision': 'hello-00002' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'hello-00002-deployment-5d4c3b2a1f', controller: true }],
    },
    spec: { serviceAccountName: 'hello-sa' },
  };
  assert.deepEqual([agentIdentity(pod, config, 'team-a')?.kind, agentIdentity(pod, config, 'team-a')?.name], ['Configuration', 'hello']);
  // the labels tie it only together with the name: a Deployment not named after the revision stays itself
  const other = { ...kn('hello-00003'), metadata: { name: 'my-deployment', namespace: 'team-a' } };
  assert.deepEqual([agentIdentity(other, config)?.kind, agentIdentity(other, config)?.name], ['Deployment', 'my-deployment']);
  // OpenShift: pods of ReplicationControllers frontend-1 and frontend-2, labelled deploymentconfig: frontend
  const dcPod = (rc: string, labels: Record<string, string> = { deploymentconfig: 'frontend' }) => ({
    kind: 'Pod',
    metadata: { name: `${rc}-abcde`, labels: { 'kagenti.io/type': 'agent', ...labels }, ownerReferences: [{ apiVersion: 'v1', kind: 'ReplicationController', name: rc, controller: true }] },
    spec: { serviceAccountName: 'front-sa' },
  });
  for (const rc of ['frontend-1', 'frontend-2']) assert.deepEqual([agentIdentity(dcPod(rc), config)?.kind, agentIdentity(dcPod(rc), config)?.name], ['DeploymentConfig', 'frontend'], rc);
  assert.equal(agentIdentity(dcPod('frontend-canary'), config)?.kind, 'ReplicationController', 'not <dc>-<version>');
  assert.equal(agentIdentity(dcPod('frontend-1', {}), config)?.kind, 'ReplicationController', 'no deploymentconfig label');
});

test('a ReplicationController is a workload: its template is the agent its pods are (a DeploymentConfig\'s, by name and label), and its pods in a dump are checked on it', () => {
  const labels = { 'kagenti.io/type': 'agent', deploymentconfig: 'web' };
  const spec = { serviceAccountName: 'web', containers: [{ name: 'a', image: 'i' }] };
  const rc = {
    apiVersion: 'v1',
    kind: 'ReplicationController',
    metadata: { name: 'web-3', namespace: 'ns', ownerReferences: [{ apiVersion: 'apps.openshift.io/v1', kind: 'DeploymentConfig', name: 'web', uid: 'u', controller: true }] },
    spec: { template: { metadata: { labels }, spec } },
  };
  const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web-3-abcde', namespace: 'ns', labels, ownerReferences: [{ apiVersion: 'v1', kind: 'ReplicationController', name: 'web-3', uid: 'u', controller: true }] }, spec };
  const ofRc = agentIdentity(rc, config)!;
  const ofPod = agentIdentity(pod, config)!;
  assert.deepEqual([ofRc.kind, ofRc.name, ofRc.serviceAccount, ofRc.source], ['DeploymentConfig', 'web', 'web', { kind: 'ReplicationController', name: 'web-3' }]);
  assert.equal(identityKey(ofRc), identityKey(ofPod));
  assert.deepEqual(templateOwner(pod, true), { kind: 'ReplicationController', name: 'web-3', controller: true });
  // one of another group is not a ReplicationController
  assert.equal(agentIdentity({ ...rc, apiVersion: 'example.com/v1' }, config), null);
});
