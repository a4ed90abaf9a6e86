// Cluster-state tests. No kube-apiserver can be installed on the machines these tests run on, so
// test/fake-apiserver.ts stands in for one: an in-test HTTP server that serves recorded list responses and
// watch event streams in the API server's wire format. The informers are the real @kubernetes/client-node
// ListWatch + Watch, talking to it through a real KubeConfig.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AdmissionRequest } from '../webhook/admission.ts';
import { configFromObject } from '../webhook/config.ts';
import { KubeConfig } from '@kubernetes/client-node';
import { ClusterState, agentRefsBuilt } from '../webhook/cluster.ts';
import { cronJobJobName } from '../webhook/identity.ts';
import { ADMITTED_TTL_MS } from '../webhook/rules.ts';
import { registry } from '../webhook/metrics.ts';
import pino from 'pino';
import { startValidation } from '../webhook/validation.ts';
import type { ValidationService } from '../webhook/validation.ts';
import { FakeApiServer, PATHS, startOnFakeApi, until } from './fake-apiserver.ts';
import { deploymentRequest, joinWarnings } from './helpers.ts';

let uid = 0;

const AGENT = { 'kagenti.io/type': 'agent' };

function deployment(name: string, sa: string, ns = 'team-a', labels: Record<string, string> = AGENT) {
  return {
    metadata: { name, namespace: ns },
    spec: { replicas: 1, template: { metadata: { labels }, spec: { serviceAccountName: sa, containers: [{ name: 'a', image: 'x' }] } } },
  };
}

function replicaSet(dep: string, hash: string, sa: string, ns = 'team-a', replicas = 1) {
  return {
    metadata: { name: `${dep}-${hash}`, namespace: ns, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: dep, uid: 'd', controller: true }] },
    spec: { replicas, template: { metadata: { labels: { ...AGENT, 'pod-template-hash': hash } }, spec: { serviceAccountName: sa } } },
  };
}

function depPod(dep: string, hash: string, suffix: string, sa: string, ns = 'team-a', phase = 'Running', extraLabels: Record<string, string> = {}) {
  return {
    metadata: {
      name: `${dep}-${hash}-${suffix}`,
      generateName: `${dep}-${hash}-`,
      namespace: ns,
      labels: { ...AGENT, 'pod-template-hash': hash, ...extraLabels },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${dep}-${hash}`, uid: 'r', controller: true }],
      annotations: { big: 'x'.repeat(2000) },
    },
    spec: { serviceAccountName: sa, containers: [{ name: 'agent', image: 'agent:1', env: [{ name: 'A', value: 'b' }] }] },
    status: { phase },
  };
}

function seedBasics(api: FakeApiServer) {
  api.seed(PATHS.namespaces, [
    { metadata: { name: 'team-a', labels: { 'kagenti.io/authbridge-mode': 'lite', 'kagenti-enabled': 'true' } } },
    { metadata: { name: 'kagent' } },
  ]);
  api.seed(PATHS.csidrivers, [{ metadata: { name: 'csi.spiffe.io' }, spec: { attachRequired: false } }]);
  api.seed(PATHS.deployments, [deployment('weather', 'weather-sa')]);
  api.seed(PATHS.replicasets, [replicaSet('weather', '7d9f8b6c5d', 'weather-sa'), replicaSet('weather', 'old0000000', 'default', 'team-a', 0)]);
  api.seed(PATHS.pods, [depPod('weather', '7d9f8b6c5d', 'abcde', 'weather-sa')]);
}


async function setup(seed: (api: FakeApiServer) => void, configInput: Record<string, unknown> = {}, listPageBytes?: number) {
  return startOnFakeApi(seed, configInput, () => ({ listPageBytes }));
}

test('initial sync: ready after every informer listed; namespaces, CSIDrivers and claims served from the cache', async () => {
  const { api, svc, close } = await setup(seedBasics);
  try {
    await until(() => svc.readiness().ready, 'first sync');
    const r = svc.readiness();
    assert.equal(r.detail.cluster, 'synced');
    assert.equal(r.detail.agentClaims, 3, 'the Deployment, its ReplicaSet and its pod');
    assert.deepEqual(svc.namespaceLabels('team-a'), { 'kagenti.io/authbridge-mode': 'lite', 'kagenti-enabled': 'true' });
    assert.equal(svc.namespaceLabels('nope'), undefined);
    assert.equal(svc.csiDriverExists('csi.spiffe.io'), true);
    assert.equal(svc.csiDriverExists('other.csi'), false);
    // selectors as the issue asks: agent pods by label, token-review ConfigMaps by name
    assert.ok(api.requests.some((r) => r.startsWith('GET /api/v1/pods?') && r.includes('labelSelector=kagenti.io%2Ftype')), api.requests.join('\n'));
    assert.ok(api.requests.some((r) => r.startsWith('GET /api/v1/configmaps?') && r.includes('fieldSelector=metadata.name%3Dkagent-enterprise-config')));
    // read-only: nothing but GETs
    assert.ok(api.requests.every((r) => r.startsWith('GET ')));
    // the Deployment's own pod (through its ReplicaSet) is the same agent: no conflict on UPDATE or for a new pod
    const upd = svc.validate(deploymentRequest(deployment('weather', 'weather-sa'), 'UPDATE'));
    assert.equal(upd.response.allowed, true, JSON.stringify(upd.response));
    // another agent on the same ServiceAccount is denied, naming the other agent and the SPIFFE ID
    const other = svc.validate(deploymentRequest(deployment('news', 'weather-sa')));
    assert.equal(other.response.allowed, false);
    assert.equal(other.response.status?.code, 403);
    assert.equal(other.response.status?.reason, 'Forbidden');
    assert.match(other.response.status!.message, /^\[unique-service-account\] Deployment team-a\/news: .*Deployment\/weather.*spiffe:\/\/cluster\.local\/ns\/team-a\/sa\/weather-sa/);
  } finally {
    await close();
  }
});

test('a watch event that adds a conflicting agent makes the next admission deny; a finished pod releases its claim', async () => {
  const { api, svc, close } = await setup(seedBasics);
  try {
    await until(() => svc.readiness().ready, 'first sync');
    await api.waitForWatch(PATHS.pods);
    const candidate = deploymentRequest(deployment('planner', 'shared-sa'));
    assert.equal(svc.validate(candidate).response.allowed, true);

    // a bare pod (no owner) claims shared-sa
    const bare = { metadata: { name: 'scratch', namespace: 'team-a', labels: AGENT }, spec: { serviceAccountName: 'shared-sa', containers: [] }, status: { phase: 'Pending' } };
    api.emit(PATHS.pods, 'ADDED', bare);
    await until(() => svc.validate(deploymentRequest(deployment('planner', 'shared-sa'))).response.allowed === false, 'conflict seen');
    const d = svc.validate(deploymentRequest(deployment('planner', 'shared-sa')));
    assert.match(d.response.status!.message, /Pod\/scratch/);
    assert.deepEqual(d.rules, ['unique-service-account']);

    // dryRun requests are answered the same way
    const dry = svc.validate({ ...deploymentRequest(deployment('planner', 'shared-sa')), dryRun: true });
    assert.equal(dry.response.allowed, false);

    // the pod is deleted: it still runs until its deletionTimestamp, so it still claims, and the denial says until when
    const terminating = { ...bare, metadata: { ...bare.metadata, deletionTimestamp: '2026-11-23T09:00:30Z', deletionGracePeriodSeconds: 30 } };
    api.emit(PATHS.pods, 'MODIFIED', terminating);
    await until(() => /being deleted/.test(svc.validate(deploymentRequest(deployment('planner', 'shared-sa'))).response.status?.message ?? ''), 'deletion seen');
    const waiting = svc.validate(deploymentRequest(deployment('planner', 'shared-sa')));
    assert.equal(waiting.response.allowed, false);
    assert.match(waiting.response.status!.message, /agent Pod\/scratch, which is being deleted; it stops by 2026-11-23T09:00:30Z\. .* Fix: retry once Pod\/scratch is gone, or /);

    // the pod finishes: Succeeded pods no longer claim
    api.emit(PATHS.pods, 'MODIFIED', { ...terminating, status: { phase: 'Succeeded' } });
    await until(() => svc.validate(deploymentRequest(deployment('planner', 'shared-sa'))).response.allowed, 'claim released');

    // blue/green: the same kagenti.io/agent label shares a ServiceAccount
    api.emit(PATHS.deployments, 'ADDED', deployment('weather-blue', 'bg-sa', 'team-a', { ...AGENT, 'kagenti.io/agent': 'weather' }));
    await until(() => (svc.readiness().detail.agentClaims as number) >= 4, 'blue indexed');
    // (a dry run: an admitted green would claim bg-sa itself until the cache showed it, and the intruder below would
    // be denied for sharing with green)
    const green = svc.validate({ ...deploymentRequest(deployment('weather-green', 'bg-sa', 'team-a', { ...AGENT, 'kagenti.io/agent': 'weather' })), dryRun: true });
    assert.equal(green.response.allowed, true, JSON.stringify(green.response));
    const intruder = svc.validate(deploymentRequest(deployment('intruder', 'bg-sa')));
    assert.equal(intruder.response.allowed, false);

    // deleting the claimant frees the ServiceAccount
    api.emit(PATHS.deployments, 'DELETED', deployment('weather-blue', 'bg-sa', 'team-a', { ...AGENT, 'kagenti.io/agent': 'weather' }));
    await until(() => svc.validate(deploymentRequest(deployment('intruder', 'bg-sa'))).response.allowed, 'deleted');
  } finally {
    await close();
  }
});

test('cluster_state_enabled: 1 with cluster state, 0 without (--cluster none), so an alert can tell the two apart (the cache age is 0 in both)', async () => {
  const value = async () => (await registry.getSingleMetric('kagenti_webhook_cluster_state_enabled')!.get()).values[0]!.value;
  const { svc, close } = await setup(seedBasics);
  try {
    await until(() => svc.readiness().ready, 'first sync');
    assert.equal(await value(), 1);
  } finally {
    await close();
  }
  const none = await startValidation({ config: configFromObject({}), log: pino({ level: 'silent' }), cluster: 'none' });
  try {
    assert.equal(await value(), 0);
  } finally {
    await none.close();
  }
});

test('two agents on one ServiceAccount sent back to back (kubectl apply -f dir/) before the cache holds the first: the second is denied', async (t) => {
  const { api, svc, close } = await setup(seedBasics);
  try {
    await until(() => svc.readiness().ready, 'first sync');
    await api.waitForWatch(PATHS.deployments);
    // a dry run remembers nothing
    assert.equal(svc.validate({ ...deploymentRequest(deployment('dry', 'shared-sa')), dryRun: true }).response.allowed, true);
    const a = svc.validate(deploymentRequest(deployment('a', 'shared-sa')));
    assert.equal(a.response.allowed, true, JSON.stringify(a.response));
    // b arrives before a's watch event: denied, naming a as just admitted, with what to do if a never got created
    const b = svc.validate(deploymentRequest(deployment('b', 'shared-sa')));
    assert.equal(b.response.allowed, false);
    assert.match(
      b.response.status!.message,
      /^\[unique-service-account\] Deployment team-a\/b: ServiceAccount "shared-sa" .*is already the identity of agent Deployment\/a, admitted moments ago\. Both would share spiffe:\/\/cluster\.local\/ns\/team-a\/sa\/shared-sa, .*Fix: if Deployment\/a was not created after all, retry in 30 seconds; else give each agent its own ServiceAccount/,
    );
    // a itself again (kubectl apply twice, an UPDATE right after the CREATE) and its pods are the same agent
    assert.equal(svc.validate(deploymentRequest(deployment('a', 'shared-sa'), 'UPDATE')).response.allowed, true);
    // the same kagenti.io/agent label is one agent, admitted or cached
    const blue = svc.validate(deploymentRequest(deployment('blue', 'bg-sa', 'team-a', { ...AGENT, 'kagenti.io/agent': 'bg' })));
    assert.equal(blue.response.allowed, true);
    assert.equal(svc.validate(deploymentRequest(deployment('green', 'bg-sa', 'team-a', { ...AGENT, 'kagenti.io/agent': 'bg' }))).response.allowed, true);
    assert.equal(svc.validate(deploymentRequest(deployment('other', 'bg-sa'))).response.allowed, false);
    // the cache takes over once a's event arrives; a delete then frees the ServiceAccount at once, not after the TTL
    api.emit(PATHS.deployments, 'ADDED', deployment('a', 'shared-sa'));
    await until(() => /agent Deployment\/a\. Both/.test(svc.validate(deploymentRequest(deployment('b', 'shared-sa'))).response.status?.message ?? ''), 'a cached');
    api.emit(PATHS.deployments, 'DELETED', deployment('a', 'shared-sa'));
    await until(() => svc.validate({ ...deploymentRequest(deployment('b', 'shared-sa')), dryRun: true }).response.allowed, 'a deleted');
    // an admitted agent the cache never sees (refused after the webhooks: another webhook, a quota) is forgotten
    // after ADMITTED_TTL_MS
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
    assert.equal(svc.validate(deploymentRequest(deployment('ghost', 'ghost-sa'))).response.allowed, true);
    assert.equal(svc.validate(deploymentRequest(deployment('next', 'ghost-sa'))).response.allowed, false);
    t.mock.timers.tick(ADMITTED_TTL_MS - 1);
    assert.equal(svc.validate({ ...deploymentRequest(deployment('next', 'ghost-sa')), dryRun: true }).response.allowed, false);
    t.mock.timers.tick(1);
    assert.equal(svc.validate(deploymentRequest(deployment('next', 'ghost-sa'))).response.allowed, true);
    t.mock.timers.reset();
    // the readiness count is the cache's (admitted agents are not cached objects)
    assert.equal(svc.readiness().detail.agentClaims, 3);
  } finally {
    await close();
  }
});

test('admitted claims: a controller\'s pod is not remembered (its name is filled in at /validate); an UPDATE that moves an agent and moves it back leaves no claim behind', async () => {
  const { api, svc, close } = await setup(seedBasics);
  try {
    await until(() => svc.readiness().ready, 'first sync');
    await api.waitForWatch(PATHS.deployments);
    // a pod of Deployment e as /validate sees it: generateName, and the name the API server generated already
    const e = deployment('e', 'sa4');
    assert.equal(svc.validate(deploymentRequest(e)).response.allowed, true);
    const pod: any = depPod('e', '5f6d7c8b9a', 'aaaaa', 'sa4');
    const podReq: AdmissionRequest = { uid: `u${++uid}`, kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE', namespace: 'team-a', name: pod.metadata.name, object: { kind: 'Pod', ...pod } };
    assert.equal(svc.validate(podReq).response.allowed, true);
    // e is created, then deleted; its pod never was (a ResourceQuota refused it after the webhooks)
    api.emit(PATHS.deployments, 'ADDED', e);
    api.emit(PATHS.deployments, 'DELETED', e);
    await until(() => svc.validate({ ...deploymentRequest(deployment('f', 'sa4')), dryRun: true }).response.allowed, 'sa4 free once e is deleted');

    // weather is cached on weather-sa: moved to sa5 and back before the cache hears of either
    const moved = svc.validate({ ...deploymentRequest(deployment('weather', 'sa5'), 'UPDATE'), oldObject: { apiVersion: 'apps/v1', kind: 'Deployment', ...deployment('weather', 'weather-sa') } });
    assert.equal(moved.response.allowed, true, JSON.stringify(moved.response));
    assert.equal(svc.validate({ ...deploymentRequest(deployment('g', 'sa5')), dryRun: true }).response.allowed, false, 'weather claims sa5 now');
    const back = svc.validate({ ...deploymentRequest(deployment('weather', 'weather-sa'), 'UPDATE'), oldObject: { apiVersion: 'apps/v1', kind: 'Deployment', ...deployment('weather', 'sa5') } });
    assert.equal(back.response.allowed, true, JSON.stringify(back.response));
    assert.equal(svc.validate({ ...deploymentRequest(deployment('g', 'sa5')), dryRun: true }).response.allowed, true, 'weather no longer claims sa5');
  } finally {
    await close();
  }
});

test('admitted claims are capped: noting one already remembered evicts nothing; past the cap the oldest go first', () => {
  const state = new ClusterState({ kubeConfig: new KubeConfig(), config: configFromObject({}), log: pino({ level: 'silent' }) });
  const ref = (name: string) => ({ kind: 'Deployment', name, namespace: 'ns', serviceAccount: 'sa' });
  for (let i = 0; i < 10_000; i++) state.noteAdmitted('Deployment', 'ns', `d${i}`, ref(`d${i}`));
  const names = () => new Set(state.claimsOn('ns', 'sa').map((r) => r.name));
  assert.equal(names().size, 10_000);
  state.noteAdmitted('Deployment', 'ns', 'd5000', ref('d5000'));
  assert.equal(names().size, 10_000);
  assert.ok(names().has('d0'), 'the oldest stays: nothing was added');
  state.noteAdmitted('Deployment', 'ns', 'new', ref('new'));
  const after = names();
  assert.equal(after.size, 10_000);
  assert.ok(after.has('new') && !after.has('d0') && after.has('d1'));
  // a controller's pod (its claim is its workload's) is never remembered
  state.noteAdmitted('Pod', 'ns', 'p-abc12', { ...ref('p'), source: { kind: 'Pod', name: 'p-abc12' } });
  assert.ok(!names().has('p'));
  // nor a ReplicaSet or Job of a workload kind the cache holds (a Deployment's); a Job whose agent is a resource the
  // cache does not hold (a JobSet's) is the claim, and is remembered
  state.noteAdmitted('ReplicaSet', 'ns', 'r-5d4c3b2a1f', { ...ref('r'), source: { kind: 'ReplicaSet', name: 'r-5d4c3b2a1f' } });
  assert.ok(!names().has('r'));
  state.noteAdmitted('Job', 'ns', 'js-workers-0', { ...ref('js'), kind: 'JobSet', source: { kind: 'Job', name: 'js-workers-0' } });
  assert.ok(names().has('js'));
});

test('Job pods of a CronJob resolve to the CronJob through the cached Job', async () => {
  const { api, svc, close } = await setup((api) => {
    seedBasics(api);
    api.seed(PATHS.cronjobs, [{ metadata: { name: 'nightly', namespace: 'team-a' }, spec: { schedule: '0 0 * * *', jobTemplate: { spec: { template: { metadata: { labels: AGENT }, spec: { serviceAccountName: 'nightly-sa' } } } } } }]);
    api.seed(PATHS.jobs, [{ metadata: { name: 'nightly-29000000', namespace: 'team-a', ownerReferences: [{ kind: 'CronJob', name: 'nightly', controller: true }] }, spec: { template: { metadata: { labels: AGENT }, spec: { serviceAccountName: 'nightly-sa' } } } }]);
    api.seed(PATHS.pods, [{ metadata: { name: 'nightly-29000000-x', namespace: 'team-a', labels: AGENT, ownerReferences: [{ kind: 'Job', name: 'nightly-29000000', controller: true }] }, spec: { serviceAccountName: 'nightly-sa' }, status: { phase: 'Running' } }]);
  });
  try {
    await until(() => svc.readiness().ready, 'first sync');
    // an UPDATE of the CronJob does not conflict with its own Job and pod
    const upd = svc.validate({
      uid: 'cj',
      kind: { group: 'batch', version: 'v1', kind: 'CronJob' },
      operation: 'UPDATE',
      namespace: 'team-a',
      object: { kind: 'CronJob', metadata: { name: 'nightly', namespace: 'team-a' }, spec: { jobTemplate: { spec: { template: { metadata: { labels: AGENT }, spec: { serviceAccountName: 'nightly-sa', containers: [{ name: 'a', image: 'x' }] } } } } } },
    });
    assert.equal(upd.response.allowed, true, JSON.stringify(upd.response));
    const other = svc.validate(deploymentRequest(deployment('x', 'nightly-sa')));
    assert.match(other.response.status!.message, /CronJob\/nightly/);
  } finally {
    await close();
  }
});

test('a CronJob\'s new Job not cached yet: its pod is the CronJob, not a second agent on the CronJob\'s ServiceAccount', async () => {
  // The Job controller creates the pod right after the Job; the pod can reach /validate before the Job watch
  // brings the Job into the cache (or while the jobs watch is down).
  const cronJob = (name: string) => ({ metadata: { name, namespace: 'team-a' }, spec: { schedule: '0 0 * * *', jobTemplate: { spec: { template: { metadata: { labels: AGENT }, spec: { serviceAccountName: 'nightly-sa', containers: [{ name: 'a', image: 'x' }] } } } } } });
  const { svc, close } = await setup((api) => {
    seedBasics(api);
    api.seed(PATHS.cronjobs, [cronJob('nightly')]);
  });
  const jobPod = (job: string) => ({
    uid: `p-${job}`,
    kind: { group: '', version: 'v1', kind: 'Pod' },
    operation: 'CREATE',
    namespace: 'team-a',
    object: {
      kind: 'Pod',
      metadata: { generateName: `${job}-`, namespace: 'team-a', labels: { ...AGENT, 'batch.kubernetes.io/job-name': job }, ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: job, uid: 'j', controller: true }] },
      spec: { serviceAccountName: 'nightly-sa', restartPolicy: 'Never', containers: [{ name: 'a', image: 'x' }] },
    },
  });
  try {
    await until(() => svc.readiness().ready, 'first sync');
    const run = svc.validate(jobPod(cronJobJobName('nightly', Date.now())));
    assert.equal(run.response.allowed, true, JSON.stringify(run.response));
    // A Job named like that with no such CronJob is itself, a different agent from CronJob/nightly.
    const other = svc.validate(jobPod(cronJobJobName('adhoc', Date.now())));
    assert.equal(other.response.allowed, false);
    assert.match(other.response.status!.message, /Pod team-a\/adhoc-\d+-<generated>: .*already the identity of agent CronJob\/nightly/);
  } finally {
    await close();
  }
});

test('orphaned by kubectl delete --cascade=orphan: re-creating the Deployment or StatefulSet is the same agent', async () => {
  const hash = '7d9f8b6c5d';
  const { svc, close } = await setup((api) => {
    seedBasics(api);
    api.clear(PATHS.deployments); // deleted
    // The ReplicaSet and its pod, without the Deployment's ownerReference now (the slimmed cache keeps the hash).
    const rs: any = replicaSet('weather', hash, 'weather-sa');
    delete rs.metadata.ownerReferences;
    rs.metadata.labels = { 'pod-template-hash': hash };
    api.seed(PATHS.replicasets, [rs]);
    const stsPod = (i: number) => ({ metadata: { name: `memory-${i}`, namespace: 'team-a', labels: { ...AGENT, 'statefulset.kubernetes.io/pod-name': `memory-${i}` } }, spec: { serviceAccountName: 'memory-sa' }, status: { phase: 'Running' } });
    api.seed(PATHS.pods, [depPod('weather', hash, 'abcde', 'weather-sa'), stsPod(0), stsPod(1)]);
  });
  try {
    await until(() => svc.readiness().ready, 'first sync');
    const again = svc.validate(deploymentRequest(deployment('weather', 'weather-sa')));
    assert.equal(again.response.allowed, true, JSON.stringify(again.response));
    const sts = { kind: 'StatefulSet', metadata: { name: 'memory', namespace: 'team-a' }, spec: { template: { metadata: { labels: AGENT }, spec: { serviceAccountName: 'memory-sa', containers: [{ name: 'a', image: 'x' }] } } } };
    const stsAgain = svc.validate({ uid: 'sts', kind: { group: 'apps', version: 'v1', kind: 'StatefulSet' }, operation: 'CREATE', namespace: 'team-a', object: sts });
    assert.equal(stsAgain.response.allowed, true, JSON.stringify(stsAgain.response));
    // Another agent on those ServiceAccounts is still denied, naming the orphans' workload.
    const other = svc.validate(deploymentRequest(deployment('other', 'weather-sa')));
    assert.match(other.response.status!.message, /already the identity of agent Deployment\/weather/);
  } finally {
    await close();
  }
});

function request(kind: string, group: string, obj: Record<string, any>): AdmissionRequest {
  return { uid: `u${++uid}`, kind: { group, version: 'v1', kind }, operation: 'CREATE', namespace: obj.metadata.namespace, object: { kind, ...obj } };
}

// An ownerless ReplicaSet named <deployment>-<hash>, and an ownerless pod named and labelled as a StatefulSet's.
function bareReplicaSet(name: string, labels: Record<string, string>, sa: string) {
  return {
    metadata: { name, namespace: 'team-a', labels },
    spec: { replicas: 3, selector: { matchLabels: labels }, template: { metadata: { labels: { ...AGENT, ...labels } }, spec: { serviceAccountName: sa, containers: [{ name: 'a', image: 'x' }] } } },
  };
}
function barePod(name: string, labels: Record<string, string>, sa: string) {
  return { metadata: { name, namespace: 'team-a', labels: { ...AGENT, ...labels } }, spec: { serviceAccountName: sa, containers: [{ name: 'a', image: 'x' }] }, status: { phase: 'Running' } };
}
function podOf(rs: string, labels: Record<string, string>, sa: string) {
  return {
    metadata: { generateName: `${rs}-`, namespace: 'team-a', labels: { ...AGENT, ...labels }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: rs, uid: 'rs', controller: true }] },
    spec: { serviceAccountName: sa, containers: [{ name: 'a', image: 'x' }] },
  };
}

// Deployment weather (selector app=weather) with its ReplicaSet and pod, StatefulSet db (selector app=db).
function seedSelected(api: FakeApiServer) {
  seedBasics(api);
  const weather: any = deployment('weather', 'weather-sa', 'team-a', { ...AGENT, app: 'weather' });
  weather.spec.selector = { matchLabels: { app: 'weather' } };
  api.seed(PATHS.deployments, [weather]);
  const db: any = deployment('db', 'db-sa', 'team-a', { ...AGENT, app: 'db', tier: 'data' });
  db.spec.selector = { matchLabels: { app: 'db' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['data'] }] };
  api.seed(PATHS.statefulsets, [db]);
}

test('an ownerless ReplicaSet or pod named like a running workload\'s is not that workload unless its selector adopts it', async () => {
  // A tenant's bare ReplicaSet `weather-zzz` (label pod-template-hash: zzz, no ownerReferences) next to Deployment
  // weather, and a bare pod `db-5` labelled statefulset.kubernetes.io/pod-name: db-5 next to StatefulSet db: their
  // labels do not match the workloads' selectors, so no controller adopts or deletes them; each would run on as a
  // second agent with the workload's SPIFFE ID.
  const { api, svc, lines, close } = await setup((api) => {
    seedSelected(api);
    // one admitted before this check existed (or under warn): in the cache, found by the first audit
    api.seed(PATHS.replicasets, [
      replicaSet('weather', '7d9f8b6c5d', 'weather-sa'),
      bareReplicaSet('weather-old', { 'pod-template-hash': 'old', app: 'stale' }, 'weather-sa'),
    ]);
  });
  try {
    await until(() => svc.readiness().ready, 'first sync');
    const rs = svc.validate(request('ReplicaSet', 'apps', bareReplicaSet('weather-zzz', { 'pod-template-hash': 'zzz', app: 'evil' }, 'weather-sa')));
    assert.equal(rs.response.allowed, false, JSON.stringify(rs.response));
    assert.match(rs.response.status!.message, /^\[unique-service-account\] ReplicaSet team-a\/weather-zzz: ServiceAccount "weather-sa" .*already the identity of agents? Deployment\/weather\b/);
    const pod = svc.validate(request('Pod', '', barePod('db-5', { 'statefulset.kubernetes.io/pod-name': 'db-5', app: 'evil' }, 'db-sa')));
    assert.equal(pod.response.allowed, false, JSON.stringify(pod.response));
    assert.match(pod.response.status!.message, /^\[unique-service-account\] Pod team-a\/db-5: ServiceAccount "db-sa" .*already the identity of agent StatefulSet\/db\b/);
    // half the selector is not enough: app=db without tier=data
    const half = svc.validate(request('Pod', '', barePod('db-6', { 'statefulset.kubernetes.io/pod-name': 'db-6', app: 'db' }, 'db-sa')));
    assert.match(half.response.status!.message, /Pod team-a\/db-6: .*StatefulSet\/db\b/);

    // The cached orphan is itself too, and so are the pods its ReplicaSet controller creates (owned by it). It shares
    // weather-sa with Deployment weather already (the audit reports it): its pods add no sharing and are warned, as
    // an UPDATE of it would be; denying them would not end the sharing.
    const stalePod = svc.validate(request('Pod', '', podOf('weather-old', { 'pod-template-hash': 'old', app: 'stale' }, 'weather-sa')));
    assert.equal(stalePod.response.allowed, true);
    assert.match(joinWarnings(stalePod.response.warnings ?? []), /^\[unique-service-account\] Pod team-a\/weather-old-<generated>: .*already the identity of agent Deployment\/weather\. .* Not denied: its workload ReplicaSet\/weather-old already shares it, and this pod adds no sharing\. Fix: /m);
    const news = svc.validate(deploymentRequest(deployment('news', 'weather-sa')));
    assert.match(news.response.status!.message, /agents Deployment\/weather and \S+\. All 3 would share/);
    // the audit reports both agents sharing weather-sa
    await until(() => lines.some((l) => l.audit === true && l.rule === 'unique-service-account'), 'audit ran');
    const audited = lines.filter((l) => l.audit === true && l.rule === 'unique-service-account').map((l) => l.msg);
    assert.ok(audited.some((m) => /^\[unique-service-account\] ReplicaSet team-a\/weather-old: .*Deployment\/weather\b/.test(m)), audited.join('\n'));
    assert.ok(audited.some((m) => /^\[unique-service-account\] Deployment team-a\/weather: .*ReplicaSet\/weather-old\b/.test(m)), audited.join('\n'));

    // A ReplicaSet emitted later and its pod: the pod of a cached ownerless ReplicaSet counts as the ReplicaSet does.
    await api.waitForWatch(PATHS.replicasets);
    api.emit(PATHS.replicasets, 'ADDED', bareReplicaSet('weather-zzz', { 'pod-template-hash': 'zzz', app: 'evil' }, 'weather-sa'));
    await until(() => (svc.readiness().detail.agentClaims as number) >= 6, 'weather-zzz cached');
    const zzzPod = svc.validate(request('Pod', '', podOf('weather-zzz', { 'pod-template-hash': 'zzz', app: 'evil' }, 'weather-sa')));
    assert.equal(zzzPod.response.allowed, true);
    assert.match(joinWarnings(zzzPod.response.warnings ?? []), /^\[unique-service-account\] Pod team-a\/weather-zzz-<generated>: .*already the identity of agents Deployment\/weather and \S+\. All 3 share .*its workload ReplicaSet\/weather-zzz already shares it/m);
    // a pod that adds sharing is still denied: its ReplicaSet is not cached (it has no claim to compare with)
    const uncached = svc.validate(request('Pod', '', podOf('stray', { app: 'evil' }, 'weather-sa')));
    assert.equal(uncached.response.allowed, false);
    assert.match(uncached.response.status!.message, /^\[unique-service-account\] Pod team-a\/stray-<generated>: .*already the identity of agents? Deployment\/weather\b/);
  } finally {
    await close();
  }
});

test('an orphan the cached workload\'s selector selects counts as that workload (its controller adopts it)', async () => {
  const { api, svc, close } = await setup(seedSelected);
  try {
    await until(() => svc.readiness().ready, 'first sync');
    // the ReplicaSet of Deployment weather's previous incarnation, deleted with --cascade=orphan and re-created
    const orphanRs = bareReplicaSet('weather-5c6d7e8f9a', { 'pod-template-hash': '5c6d7e8f9a', app: 'weather' }, 'weather-sa');
    const rs = svc.validate(request('ReplicaSet', 'apps', orphanRs));
    assert.equal(rs.response.allowed, true, JSON.stringify(rs.response));
    const pod = svc.validate(request('Pod', '', barePod('db-0', { 'statefulset.kubernetes.io/pod-name': 'db-0', app: 'db', tier: 'data' }, 'db-sa')));
    assert.equal(pod.response.allowed, true, JSON.stringify(pod.response));
    // cached, they and the ReplicaSet's pods are still the workloads: another agent's denial names only those
    await api.waitForWatch(PATHS.replicasets);
    await api.waitForWatch(PATHS.pods);
    api.emit(PATHS.replicasets, 'ADDED', orphanRs);
    api.emit(PATHS.pods, 'ADDED', barePod('db-0', { 'statefulset.kubernetes.io/pod-name': 'db-0', app: 'db', tier: 'data' }, 'db-sa'));
    await until(() => (svc.readiness().detail.agentClaims as number) >= 6, 'orphans cached');
    const rsPod = svc.validate(request('Pod', '', podOf('weather-5c6d7e8f9a', { 'pod-template-hash': '5c6d7e8f9a', app: 'weather' }, 'weather-sa')));
    assert.equal(rsPod.response.allowed, true, JSON.stringify(rsPod.response));
    for (const sa of ['weather-sa', 'db-sa']) {
      const other = svc.validate(deploymentRequest(deployment('other', sa)));
      assert.match(other.response.status!.message, new RegExp(`already the identity of agent ${sa === 'db-sa' ? 'StatefulSet/db' : 'Deployment/weather'}\\. `));
    }
    // The cache keeps an orphan's labels up to 8 KiB; one with more counts as itself (a selector could not be
    // checked against it), so re-creating its StatefulSet conflicts with it instead of taking it on unchecked.
    const many = Object.fromEntries(Array.from({ length: 120 }, (_, i) => [`example.com/label-${i}`, 'v'.repeat(63)]));
    api.emit(PATHS.pods, 'ADDED', barePod('memory-0', { 'statefulset.kubernetes.io/pod-name': 'memory-0', app: 'memory' }, 'memory-sa'));
    api.emit(PATHS.pods, 'ADDED', barePod('big-0', { 'statefulset.kubernetes.io/pod-name': 'big-0', app: 'big', ...many }, 'big-sa'));
    await until(() => (svc.readiness().detail.agentClaims as number) >= 8, 'memory-0 and big-0 cached');
    const sts = (name: string, sa: string) =>
      request('StatefulSet', 'apps', { metadata: { name, namespace: 'team-a' }, spec: { selector: { matchLabels: { app: name } }, template: { metadata: { labels: { ...AGENT, app: name } }, spec: { serviceAccountName: sa, containers: [{ name: 'a', image: 'x' }] } } } });
    assert.equal(svc.validate(sts('memory', 'memory-sa')).response.allowed, true);
    assert.match(svc.validate(sts('big', 'big-sa')).response.status?.message ?? '', /already the identity of agent Pod\/big-0\. /);
  } finally {
    await close();
  }
});

test('re-creating a Deployment or StatefulSet after --cascade=orphan: its orphans are the same agent only if its selector adopts them', async () => {
  // Not cached yet when it is admitted: the selector it is created with decides, as its controller will. An orphan
  // it will not adopt (re-created with another selector, or one planted while it was gone) runs on beside it.
  const { svc, close } = await setup((api) => {
    seedBasics(api);
    api.clear(PATHS.deployments);
    api.clear(PATHS.replicasets);
    api.clear(PATHS.pods);
    api.seed(PATHS.replicasets, [bareReplicaSet('weather-7d9f8b6c5d', { 'pod-template-hash': '7d9f8b6c5d', app: 'weather' }, 'weather-sa')]);
    api.seed(PATHS.pods, [
      { ...podOf('weather-7d9f8b6c5d', { 'pod-template-hash': '7d9f8b6c5d', app: 'weather' }, 'weather-sa'), status: { phase: 'Running' } },
      barePod('memory-0', { 'statefulset.kubernetes.io/pod-name': 'memory-0', app: 'memory' }, 'memory-sa'),
    ]);
  });
  const withSelector = (kind: string, name: string, sa: string, app: string) =>
    request(kind, 'apps', { metadata: { name, namespace: 'team-a' }, spec: { selector: { matchLabels: { app } }, template: { metadata: { labels: { ...AGENT, app } }, spec: { serviceAccountName: sa, containers: [{ name: 'a', image: 'x' }] } } } });
  try {
    await until(() => svc.readiness().ready, 'first sync');
    for (const [kind, name, sa] of [['Deployment', 'weather', 'weather-sa'], ['StatefulSet', 'memory', 'memory-sa']]) {
      const same = svc.validate(withSelector(kind, name, sa, name));
      assert.equal(same.response.allowed, true, JSON.stringify(same.response));
      const other = svc.validate(withSelector(kind, name, sa, `${name}-v2`));
      assert.equal(other.response.allowed, false, JSON.stringify(other.response));
      const orphan = kind === 'Deployment' ? 'ReplicaSet/weather-7d9f8b6c5d' : 'Pod/memory-0';
      assert.match(other.response.status!.message, new RegExp(`^\\[unique-service-account\\] ${kind} team-a/${name}: .*already the identity of agent ${orphan}\\. `));
    }
  } finally {
    await close();
  }
});

test('agents that already share a ServiceAccount: an UPDATE that adds no sharing is warned (so the fix can be applied), one that adds sharing is denied', async () => {
  // weather and news on `shared`, admitted before the webhook (or while unique-service-account was warn); green
  // and weather-canary are one agent (kagenti.io/agent: bg) on `bg-sa` beside a third, plain, agent
  const labelled = (name: string, sa: string, agent?: string, image = 'x') => {
    const d: any = deployment(name, sa, 'team-a', agent ? { ...AGENT, 'kagenti.io/agent': agent } : AGENT);
    d.spec.template.spec.containers[0].image = image;
    return d;
  };
  const { svc, close } = await setup((api) => {
    seedBasics(api);
    api.seed(PATHS.deployments, [deployment('weather', 'shared'), deployment('news', 'shared'), labelled('green', 'bg-sa', 'bg'), labelled('canary', 'bg-sa', 'bg'), deployment('plain', 'bg-sa')]);
  });
  const update = (obj: Record<string, any>, old: Record<string, any>): AdmissionRequest => ({ ...deploymentRequest(obj, 'UPDATE'), oldObject: { apiVersion: 'apps/v1', kind: 'Deployment', ...old } });
  const warned = (d: ReturnType<ValidationService['validate']>) => joinWarnings((d.response.warnings ?? []).filter((w) => w.startsWith('[unique-service-account] '))).replaceAll('[unique-service-account] ', '');
  try {
    await until(() => svc.readiness().ready, 'first sync');
    // the denial's own fix, one workload at a time: the label on weather first
    const label = svc.validate(update(labelled('weather', 'shared', 'wx'), deployment('weather', 'shared')));
    assert.equal(label.response.allowed, true, JSON.stringify(label.response));
    assert.match(
      warned(label),
      /^Deployment team-a\/weather: ServiceAccount "shared" \(spec\.template\.spec\.serviceAccountName\) is already the identity of agent Deployment\/news\. Both share spiffe:\/\/cluster\.local\/ns\/team-a\/sa\/shared, .* Not denied: Deployment\/weather shared it before this update, which adds no sharing\. Fix: give each agent its own ServiceAccount, or set the same kagenti\.io\/agent label on both/,
    );
    assert.deepEqual(label.rules, ['unique-service-account']);
    // an unrelated change of either: warned, not blocked
    for (const name of ['weather', 'news']) {
      const bump = svc.validate(update(labelled(name, 'shared', undefined, 'x:2'), deployment(name, 'shared')));
      assert.equal(bump.response.allowed, true, JSON.stringify(bump.response));
      assert.match(warned(bump), new RegExp(`^Deployment team-a/${name}: .*already the identity of agent Deployment/${name === 'weather' ? 'news' : 'weather'}\\. .*Not denied`));
    }
    // sharing an update adds is denied, as before: onto the shared ServiceAccount, or a template that becomes an agent
    const moved = svc.validate(update(deployment('weather', 'shared'), deployment('weather', 'weather-sa')));
    assert.equal(moved.response.allowed, false);
    assert.match(moved.response.status!.message, /^\[unique-service-account\] Deployment team-a\/weather: .*already the identity of agent Deployment\/news\. Both would share /);
    assert.doesNotMatch(moved.response.status!.message, /Not denied/);
    const becomes = svc.validate(update(deployment('weather', 'shared'), deployment('weather', 'shared', 'team-a', { app: 'weather' })));
    assert.equal(becomes.response.allowed, false);
    // leaving an agent (label bg) for an own identity that shares with the agent's other half: green now conflicts
    // with canary (added: denied), and with plain as before (warned)
    const split = svc.validate(update(deployment('green', 'bg-sa'), labelled('green', 'bg-sa', 'bg')));
    assert.equal(split.response.allowed, false, JSON.stringify(split.response));
    assert.match(split.response.status!.message, /^\[unique-service-account\] Deployment team-a\/green: .*already the identity of agent Deployment\/canary \(kagenti\.io\/agent=bg\)\. /);
    assert.doesNotMatch(split.response.status!.message, /plain/);
    assert.match(warned(split), /^Deployment team-a\/green: .*agent Deployment\/plain\. .*Not denied/);
    // the pods an update rolls out, or a pod replaced after a node drain: their workload already shares, so they are
    // warned too (else the update above would be admitted and its rollout stall); a pod of a workload that is not
    // cached, or whose cached claim is on another ServiceAccount, adds sharing and is denied
    const podOf = (dep: string, sa: string): AdmissionRequest => {
      const p: any = depPod(dep, '5f6g7h8j9k', 'zzzzz', sa);
      return { uid: `u${++uid}`, kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE', namespace: 'team-a', object: { kind: 'Pod', ...p } };
    };
    const pod = svc.validate(podOf('news', 'shared'));
    assert.equal(pod.response.allowed, true, JSON.stringify(pod.response));
    assert.match(warned(pod), /^Pod team-a\/news-5f6g7h8j9k-zzzzz: .*already the identity of agent Deployment\/weather\. Both share .* Not denied: its workload Deployment\/news already shares it, and this pod adds no sharing\. Fix: /);
    for (const [dep, sa] of [['third', 'shared'], ['weather', 'weather-sa'], ['planner', 'shared']]) {
      const d = svc.validate(podOf(dep, sa));
      if (sa === 'weather-sa') {
        // weather's cached claim is on `shared`: a pod on weather-sa is its own identity and shares with nobody
        assert.equal(d.response.allowed, true, JSON.stringify(d.response));
        assert.equal(warned(d), '');
        continue;
      }
      assert.equal(d.response.allowed, false, dep);
      assert.doesNotMatch(d.response.status!.message, /Not denied/);
    }
    // CREATE (or a delete and create) is unchanged: denied, naming both
    const third = svc.validate(deploymentRequest(deployment('third', 'shared')));
    assert.equal(third.response.allowed, false);
    assert.match(third.response.status!.message, /already the identity of agents Deployment\/weather and \S+\. All 3 would share /);
    const again = svc.validate(deploymentRequest(deployment('weather', 'shared')));
    assert.equal(again.response.allowed, false);
    assert.match(again.response.status!.message, /agent Deployment\/news\. Both would share/);
  } finally {
    await close();
  }
});

test('a workload that moved off a ServiceAccount is not "being deleted": the denial names its old pods that still run as it', async () => {
  const stopping = '2026-11-23T09:00:45Z';
  const { svc, close } = await setup((api) => {
    seedBasics(api);
    // weather now on weather-sa (seedBasics); its old ReplicaSet, on `shared`, is scaled to 0 and its pod terminates
    const terminating: any = depPod('weather', 'oldhash000', 'aaaaa', 'shared');
    terminating.metadata.deletionTimestamp = stopping;
    // planner moved off `planner-old` mid-rollout: its old ReplicaSet still runs a pod there
    // memo's template is no agent now; a pod of its last agent template still runs
    const memo = deployment('memo', 'memo-sa', 'team-a', { app: 'memo' });
    api.seed(PATHS.deployments, [deployment('weather', 'weather-sa'), deployment('planner', 'planner-sa'), memo]);
    api.seed(PATHS.replicasets, [
      replicaSet('weather', '7d9f8b6c5d', 'weather-sa'),
      replicaSet('weather', 'oldhash000', 'shared', 'team-a', 0),
      replicaSet('planner', 'p1p1p1p1p1', 'planner-old', 'team-a', 1),
      replicaSet('memo', 'm0m0m0m0m0', 'memo-sa', 'team-a', 0),
    ]);
    api.seed(PATHS.pods, [
      depPod('weather', '7d9f8b6c5d', 'abcde', 'weather-sa'),
      terminating,
      depPod('planner', 'p1p1p1p1p1', 'ppppp', 'planner-old'),
      depPod('memo', 'm0m0m0m0m0', 'mmmmm', 'memo-sa'),
    ]);
  });
  try {
    await until(() => svc.readiness().ready, 'first sync');
    const news = svc.validate(deploymentRequest(deployment('news', 'shared')));
    assert.equal(news.response.allowed, false);
    assert.equal(
      news.response.status!.message,
      `[unique-service-account] Deployment team-a/news: ServiceAccount "shared" (spec.template.spec.serviceAccountName) is already the identity of agent Deployment/weather, whose template uses another ServiceAccount now, but whose old Pod weather-oldhash000-aaaaa still runs as it, being deleted; it stops by ${stopping}. Both would share spiffe://cluster.local/ns/team-a/sa/shared, so neither agent can be told apart. Fix: retry once the old pod of Deployment/weather has stopped, or give each agent its own ServiceAccount, or set the same kagenti.io/agent label on both if they are one agent.`,
    );
    const mid = svc.validate(deploymentRequest(deployment('news', 'planner-old')));
    assert.equal(mid.response.allowed, false);
    assert.match(mid.response.status!.message, /already the identity of agent Deployment\/planner, whose template uses another ServiceAccount now, but whose old ReplicaSet planner-p1p1p1p1p1 \(and 1 more\) still run as it\. .* Fix: retry once the old pods of Deployment\/planner have stopped, or /);
    const memo = svc.validate(deploymentRequest(deployment('news', 'memo-sa')));
    assert.match(memo.response.status!.message, /already the identity of agent Deployment\/memo, whose template is no agent now, but whose old Pod memo-m0m0m0m0m0-mmmmm still runs as it\. /);
  } finally {
    await close();
  }
});

test('a pod released by its ReplicaSet (kubectl label pod ... app-) is named as such, with the fix to delete it; it is still its own agent', async () => {
  // released: no ownerReferences now, pod-template-hash and the <replicaset>-<5 characters> name kept
  const released = (name: string, sa: string) => ({ metadata: { name, namespace: 'team-a', labels: { ...AGENT, 'pod-template-hash': '7d9f8b6c5d' } }, spec: { serviceAccountName: sa }, status: { phase: 'Running' } });
  const { svc, close } = await setup((api) => {
    seedBasics(api);
    api.seed(PATHS.pods, [depPod('weather', '7d9f8b6c5d', 'abcde', 'weather-sa'), released('weather-7d9f8b6c5d-bbbbb', 'weather-sa'), released('weather-7d9f8b6c5d-ccccc', 'debug-sa')]);
  });
  try {
    await until(() => svc.readiness().ready, 'first sync');
    const alone = svc.validate(deploymentRequest(deployment('planner', 'debug-sa')));
    assert.equal(alone.response.allowed, false);
    assert.equal(
      alone.response.status!.message,
      '[unique-service-account] Deployment team-a/planner: ServiceAccount "debug-sa" (spec.template.spec.serviceAccountName) is already the identity of agent Pod/weather-7d9f8b6c5d-ccccc, a pod released by ReplicaSet weather-7d9f8b6c5d of Deployment/weather: it has no owner now (its labels no longer match the selector), so it runs on as an agent of its own. Both would share spiffe://cluster.local/ns/team-a/sa/debug-sa, so neither agent can be told apart. Fix: delete Pod/weather-7d9f8b6c5d-ccccc when you are done with it (kubectl -n team-a delete pod weather-7d9f8b6c5d-ccccc), or give each agent its own ServiceAccount, or set the same kagenti.io/agent label on both if they are one agent.',
    );
    // the Deployment's replacement pod: named the same way (and warned: its Deployment already shares with it)
    const replacement = svc.validate({
      uid: 'rp',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      operation: 'CREATE',
      namespace: 'team-a',
      object: { kind: 'Pod', ...depPod('weather', '7d9f8b6c5d', 'ddddd', 'weather-sa') },
    });
    assert.equal(replacement.response.allowed, true, JSON.stringify(replacement.response));
    assert.match(joinWarnings(replacement.response.warnings ?? []), /agent Pod\/weather-7d9f8b6c5d-bbbbb, a pod released by ReplicaSet weather-7d9f8b6c5d of Deployment\/weather: .* Fix: delete Pod\/weather-7d9f8b6c5d-bbbbb when you are done with it/);
    // another agent's denial names the workload first
    const news = svc.validate(deploymentRequest(deployment('news', 'weather-sa')));
    // ... and the released pod second, with what it is
    assert.match(news.response.status!.message, /already the identity of agents Deployment\/weather and Pod\/weather-7d9f8b6c5d-bbbbb, a pod released by ReplicaSet weather-7d9f8b6c5d of Deployment\/weather: [^.]*\. All 3 would share /);
    // the name and label do not make a bare pod the workload's: one created so is its own agent, and denied
    const lookalike = svc.validate({ uid: 'll', kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE', namespace: 'team-a', object: { kind: 'Pod', ...released('weather-7d9f8b6c5d-evil1', 'weather-sa') } });
    assert.equal(lookalike.response.allowed, false);
    assert.match(lookalike.response.status!.message, /^\[unique-service-account\] Pod team-a\/weather-7d9f8b6c5d-evil1: .*already the identity of agents Deployment\/weather and Pod\/weather-7d9f8b6c5d-bbbbb, a pod released [^.]*\. All 3 would share /);
  } finally {
    await close();
  }
});

test('a dropped watch reconnects with backoff and keeps serving from the cache', async () => {
  const { api, svc, lines, close } = await setup(seedBasics);
  try {
    await until(() => svc.readiness().ready, 'first sync');
    await api.waitForWatch(PATHS.pods, 1);
    const before = api.watchConnects(PATHS.pods);
    assert.ok(api.dropWatches(PATHS.pods) >= 1);
    // while the watch is down the cache still answers and readiness holds
    assert.equal(svc.readiness().ready, true);
    assert.equal(svc.validate(deploymentRequest(deployment('news', 'weather-sa'))).response.allowed, false);
    await api.waitForWatch(PATHS.pods, before + 1);
    // resumed from the last resourceVersion, not a fresh list
    const watchReqs = api.requests.filter((r) => r.startsWith('GET /api/v1/pods?') && r.includes('watch=true'));
    assert.match(watchReqs[watchReqs.length - 1], /resourceVersion=\d+/);
    // events after the reconnect arrive
    api.emit(PATHS.pods, 'ADDED', depPod('late', 'abc12', 'zzzzz', 'late-sa'));
    await until(() => svc.validate(deploymentRequest(deployment('other', 'late-sa'))).response.allowed === false, 'event after reconnect');
    assert.equal(svc.readiness().ready, true);
    assert.equal(typeof svc.readiness().detail.cacheAgeSeconds, 'number');
    // the broken watch was logged as such, with the backoff delay
    const warn = lines.find((l) => l.level === 'warn' && l.resource === 'pods' && l.verb === 'watch');
    assert.ok(warn, JSON.stringify(lines));
    assert.match(warn.msg, /serving from cache, retrying in \d+ ms/);
  } finally {
    await close();
  }
});

test('RBAC 403 on list: readiness stays false and the log names the missing permission; granting it recovers', async () => {
  const { api, svc, lines, close } = await setup((api) => {
    seedBasics(api);
    api.forbidden.add(`list ${PATHS.pods}`);
  });
  try {
    await until(() => lines.some((l) => l.level === 'error' && l.msg.includes('missing permission "list pods"')), 'log line');
    await until(() => svc.readiness().detail.notSynced !== undefined && (svc.readiness().detail.notSynced as string[]).length === 1, 'others synced');
    const r = svc.readiness();
    assert.equal(r.ready, false);
    assert.deepEqual(r.detail.notSynced, ['pods']);
    assert.match(String((r.detail.errors as Record<string, string>).pods), /missing permission "list pods"/);
    const line = lines.find((l) => l.msg.includes('missing permission "list pods"'))!;
    assert.equal(line.permission, 'list pods');
    assert.equal(line.status, 403);
    assert.match(line.msg, /grant list and watch on pods; not ready until it is granted$/, 'the verbs the informers use, no more');
    // it keeps retrying with backoff; once the permission is granted it becomes ready
    api.forbidden.delete(`list ${PATHS.pods}`);
    await until(() => svc.readiness().ready, 'ready after grant');
  } finally {
    await close();
  }
});

test('RBAC 403 on watch names the watch permission', async () => {
  const { api, lines, close } = await setup((api) => {
    seedBasics(api);
    api.forbidden.add(`watch ${PATHS.csidrivers}`);
  });
  try {
    await until(() => lines.some((l) => l.msg.includes('missing permission "watch csidrivers.storage.k8s.io"')), 'watch 403 logged');
  } finally {
    await close();
  }
});

test('RBAC 403 on a token-review ConfigMap the ClusterRole does not name: the log says to add it to resourceNames, not to grant all ConfigMaps', async () => {
  // as the shipped ClusterRole grants: list and watch on configmaps with resourceNames [kagent-enterprise-config]
  const { svc, lines, close } = await setup(
    (api) => {
      seedBasics(api);
      api.forbidden.add(`list ${PATHS.configmaps} other-config`);
    },
    { tokenReview: { issuer: 'external', configMapNames: ['kagent-enterprise-config', 'other-config'] } },
  );
  try {
    await until(() => lines.some((l) => l.level === 'error'), '403 logged');
    const line = lines.find((l) => l.level === 'error')!;
    assert.equal(line.resource, 'configmaps/other-config');
    assert.equal(line.permission, 'list configmaps');
    assert.equal(line.resourceName, 'other-config');
    assert.equal(
      line.msg,
      'cluster cache: cannot list configmaps named "other-config": missing permission "list configmaps" on resourceName "other-config" for the webhook\'s ServiceAccount; ' +
        'add "other-config" to resourceNames in its ClusterRole\'s configmaps rule (list, watch), as for every name in tokenReview.configMapNames ' +
        '(the ConfigMap webhooks\' matchConditions list them too); not ready until it is granted',
    );
    assert.doesNotMatch(line.msg, /grant list and watch on configmaps/);
    await until(() => ((svc.readiness().detail.notSynced as string[] | undefined) ?? []).length === 1, 'the others synced');
    assert.deepEqual(svc.readiness().detail.notSynced, ['configmaps/other-config']);
    assert.equal((svc.readiness().detail.errors as Record<string, string>)['configmaps/other-config'], 'forbidden: missing permission "list configmaps" on resourceName "other-config"');
  } finally {
    await close();
  }
});

test('/validate before the first sync: uniqueness is not checked, and the agent is allowed with a warning that says so', async () => {
  // deployments cannot be listed yet (403): the claims are incomplete, and /readyz keeps the webhook out of the Service;
  // a direct call still gets an honest answer
  const { api, svc, lines, close } = await setup((api) => {
    seedBasics(api);
    api.seed(PATHS.deployments, [deployment('shared-a', 'shared-sa')]);
    api.forbidden.add(`list ${PATHS.deployments}`);
  });
  try {
    await until(() => lines.some((l) => l.level === 'error' && l.resource === 'deployments.apps'), '403 logged');
    assert.equal(svc.readiness().ready, false);
    const before = svc.validate(deploymentRequest(deployment('news', 'shared-sa')));
    assert.equal(before.response.allowed, true);
    assert.match(
      joinWarnings(before.response.warnings ?? []),
      /^\[unique-service-account\] Deployment team-a\/news: not checked, because the webhook's cluster cache has not synced yet \(it is not ready\), so another agent on ServiceAccount team-a\/shared-sa \(one SPIFFE ID\) would not be caught here\. Fix: send it again once the webhook is ready \(its \/readyz names what it cannot list\), and check releases in CI with kagenti-webhook lint\.$/,
    );
    // synced: checked, and denied
    api.forbidden.clear();
    await until(() => svc.readiness().ready, 'synced');
    const after = svc.validate(deploymentRequest(deployment('news', 'shared-sa')));
    assert.equal(after.response.allowed, false);
    assert.match(after.response.status!.message, /^\[unique-service-account\] Deployment team-a\/news: .*Deployment\/shared-a/);
    assert.equal(after.response.warnings, undefined);
  } finally {
    await close();
  }
});

test('lists are paged (limit/continue) and every page lands in the cache', async () => {
  const { svc, close } = await setup((api) => {
    seedBasics(api);
    api.seed(PATHS.pods, Array.from({ length: 1203 }, (_, i) => depPod(`d${i}`, 'h1', 'p', `sa-${i}`)));
  });
  try {
    await until(() => svc.readiness().ready, 'first sync');
    assert.equal(svc.readiness().detail.agentClaims, 3 + 1203);
    assert.equal(svc.validate(deploymentRequest(deployment('x', 'sa-1202'))).response.allowed, false);
  } finally {
    await close();
  }
});

test('list pages over the byte cap are asked for again, fewer at a time: large workloads cannot exhaust the heap at sync', async () => {
  // A tenant's Deployments with no agent label, each about 40 KB (in a cluster: up to 1.5 MiB each): a page of
  // 500 would be parsed whole. With a 128 KiB cap the informer halves its limit until a page fits.
  const big = (i: number) => {
    const d = deployment(`big-${i}`, `sa-${i}`, 'team-b', { app: 'big' });
    (d.spec.template.spec as Record<string, any>).containers = [{ name: 'a', image: 'x', env: Array.from({ length: 2000 }, (_, k) => ({ name: `E${k}`, value: '' })) }];
    return d;
  };
  const { api, svc, lines, close } = await setup(
    (a) => {
      seedBasics(a);
      a.seed(PATHS.deployments, [deployment('weather', 'weather-sa'), ...Array.from({ length: 40 }, (_, i) => big(i))]);
    },
    {},
    128 * 1024,
  );
  try {
    await until(() => svc.readiness().ready, 'first sync');
    const limits = api.requests.filter((r) => r.startsWith(`GET ${PATHS.deployments}?`) && !r.includes('watch=')).map((r) => new URL(r.slice(4), 'http://x').searchParams.get('limit'));
    assert.deepEqual(limits.slice(0, 3), ['500', '250', '125'], limits.join(','));
    assert.ok(limits.every((l, i) => i === 0 || Number(l) <= Number(limits[i - 1])), `never more than the last page: ${limits.join(',')}`);
    assert.ok(Number(limits.at(-1)) <= 3, `down to pages that fit: ${limits.join(',')}`);
    assert.ok(lines.some((l) => /a page of deployments\.apps was over 131072 bytes; listing \d+ at a time/.test(l.msg)));
    // every object landed in the cache: the agent Deployment still claims its ServiceAccount
    assert.equal(svc.validate(deploymentRequest(deployment('news', 'weather-sa'))).response.allowed, false);
  } finally {
    await close();
  }
});

test('background audit: agents already sharing a ServiceAccount and misconfigured ConfigMaps are counted and logged', async () => {
  const { svc, lines, close } = await setup((api) => {
    seedBasics(api);
    api.seed(PATHS.deployments, [deployment('a', 'dup-sa'), deployment('b', 'dup-sa'), deployment('c', 'default')]);
    api.seed(PATHS.configmaps, [
      { metadata: { name: 'kagent-enterprise-config', namespace: 'kagent' }, data: { K8S_TOKEN_REVIEW: 'True' } },
      { metadata: { name: 'unrelated', namespace: 'kagent' }, data: {} },
    ]);
  });
  try {
    await until(() => svc.readiness().ready, 'first sync');
    await until(() => lines.some((l) => l.audit === true && l.rule === 'token-review-value'), 'audit ran');
    const metric = await registry.getSingleMetric('kagenti_webhook_policy_violations')!.get();
    const byRule = Object.fromEntries(metric.values.map((v) => [v.labels.rule, v.value]));
    assert.equal(byRule['unique-service-account'], 2, 'a and b each reported');
    assert.equal(byRule['token-review-value'], 1);
    assert.equal(byRule['dedicated-service-account'], 1, 'c runs as default');
    assert.ok(lines.some((l) => l.audit === true && /Deployment\/b|Deployment\/a/.test(l.msg) && l.rule === 'unique-service-account'));
    // 0 once every watch is connected (each counts as not connected from its list until its response headers)
    const age = async () => (await registry.getSingleMetric('kagenti_webhook_cluster_cache_age_seconds')!.get()).values[0].value;
    for (const end = Date.now() + 10_000; (await age()) !== 0; await new Promise((r) => setTimeout(r, 10)))
      assert.ok(Date.now() < end, 'every watch connected');
  } finally {
    await close();
  }
});

test('background audit: a thousand agents on one ServiceAccount are all counted, 50 logged, and one line says how many', async () => {
  // bare agent pods on one ServiceAccount, each its own agent (as pods relabelled after admission would be)
  const { svc, lines, close } = await setup((api) => {
    seedBasics(api);
    api.seed(PATHS.pods, Array.from({ length: 1000 }, (_, i) => ({ metadata: { name: `p-${i}`, namespace: 'team-b', labels: { ...AGENT, 'kagenti.io/agent': `a${i}` } }, spec: { serviceAccountName: 'x' }, status: { phase: 'Pending' } })));
  });
  try {
    await until(() => svc.readiness().ready, 'first sync');
    await until(() => lines.some((l) => l.audit === true && l.count !== undefined), 'audit summary');
    const metric = await registry.getSingleMetric('kagenti_webhook_policy_violations')!.get();
    const byRule = Object.fromEntries(metric.values.map((v) => [v.labels.rule, v.value]));
    assert.equal(byRule['unique-service-account'], 1000);
    const unique = lines.filter((l) => l.audit === true && l.rule === 'unique-service-account');
    assert.equal(unique.filter((l) => l.count === undefined).length, 50);
    assert.match(unique.find((l) => l.count !== undefined)!.msg, /^audit: 1000 unique-service-account violations \(first 50 logged\)$/);
    assert.match(unique[0].msg, /^\[unique-service-account\] Pod team-b\/p-\d+: ServiceAccount "x" .* agents Pod\/p-\d+ \(kagenti\.io\/agent=a\d+\), Pod\/p-\d+ \(kagenti\.io\/agent=a\d+\) and 997 more\. All 1000 would share /);
  } finally {
    await close();
  }
});

test('KUBECONFIG as a list: missing files are skipped as kubectl skips them; none usable stops start-up', async (t) => {
  const { loadKubeConfig } = await import('../webhook/cluster.ts');
  const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { delimiter, join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'kw-kubeconfig-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const good = join(dir, 'good.yaml');
  writeFileSync(
    good,
    'apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: "https://127.0.0.1:1"}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n',
  );
  const before = process.env.KUBECONFIG;
  try {
    for (const list of [[join(dir, 'missing.yaml'), good], [good, join(dir, 'missing.yaml')]]) {
      process.env.KUBECONFIG = list.join(delimiter);
      assert.equal(loadKubeConfig('auto')?.getCurrentCluster()?.server, 'https://127.0.0.1:1');
    }
    process.env.KUBECONFIG = [join(dir, 'a.yaml'), join(dir, 'b.yaml')].join(delimiter);
    assert.throws(() => loadKubeConfig('auto'), /none of its files exists/);
    // merged as kubectl merges: the first file to set the current context or a name wins, and a name in two files
    // is no error
    const other = join(dir, 'other.yaml');
    writeFileSync(
      other,
      'apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: "https://other:2"}\n- name: d\n  cluster: {server: "https://dev:3"}\nusers:\n- name: u\n  user: {token: o}\ncontexts:\n- name: x\n  context: {cluster: d, user: u}\ncurrent-context: x\n',
    );
    process.env.KUBECONFIG = [good, other].join(delimiter);
    const kc = loadKubeConfig('auto')!;
    assert.equal(kc.getCurrentContext(), 'x');
    assert.equal(kc.getCurrentCluster()?.server, 'https://127.0.0.1:1', 'the first file names cluster c and context x');
    assert.deepEqual(kc.getClusters().map((c) => c.name), ['c', 'd']);
  } finally {
    if (before === undefined) delete process.env.KUBECONFIG;
    else process.env.KUBECONFIG = before;
  }
});

test('Pod Security: a workload in a namespace that enforces restricted is warned at apply, and so is its pod at /mutate (namespace labels from the cache)', async () => {
  const { svc, close } = await setup((api) => {
    seedBasics(api);
    api.seed(PATHS.namespaces, [
      { metadata: { name: 'team-a', labels: { 'kagenti-enabled': 'true' } } },
      { metadata: { name: 'strict', labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } },
    ]);
  });
  try {
    await until(() => svc.readiness().ready, 'first sync');
    const d = svc.validate(deploymentRequest(deployment('locked', 'locked-sa', 'strict')));
    assert.equal(d.response.allowed, true, 'a warning, not a denial: the cluster may exempt the pod');
    assert.ok(
      d.response.warnings?.some((w) => w.startsWith('[pod-security] Deployment strict/locked: namespace strict enforces Pod Security "restricted"')),
      JSON.stringify(d.response.warnings),
    );
    const free = svc.validate(deploymentRequest(deployment('free', 'free-sa')));
    assert.ok(!free.response.warnings?.some((w) => w.includes('Pod Security')), JSON.stringify(free.response.warnings));
    const { mutate } = await import('../webhook/mutate.ts');
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'locked-1', namespace: 'strict', labels: AGENT }, spec: { serviceAccountName: 'locked-sa', containers: [{ name: 'a', image: 'x' }] } };
    const m = mutate(
      { uid: 'p1', kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE', namespace: 'strict', object: pod } as AdmissionRequest,
      { config: configFromObject({}), validation: svc },
    );
    assert.equal(m.response.allowed, true);
    assert.ok(m.response.warnings?.some((w) => w.startsWith('[pod-security] Pod strict/locked-1: namespace strict enforces Pod Security "restricted"')), JSON.stringify(m.response.warnings));
  } finally {
    await close();
  }
});

test('background audit: 3,000 ServiceAccounts with two agents each, walked a thousand agents at a time, are all counted', async () => {
  // more agents than the audit walks between two turns of the event loop (AUDIT_CHUNK): every group still counts
  const { svc, lines, close } = await setup((api) => {
    seedBasics(api);
    api.seed(
      PATHS.pods,
      Array.from({ length: 6000 }, (_, i) => ({ metadata: { name: `p-${i}`, namespace: 'team-b', labels: { ...AGENT, 'kagenti.io/agent': `a${i}` } }, spec: { serviceAccountName: `sa-${i >> 1}` }, status: { phase: 'Pending' } })),
    );
  });
  try {
    await until(() => svc.readiness().ready, 'first sync');
    await until(() => lines.some((l) => l.audit === true && l.count !== undefined && l.rule === 'unique-service-account'), 'audit summary', 30_000);
    const metric = await registry.getSingleMetric('kagenti_webhook_policy_violations')!.get();
    assert.equal(metric.values.find((v) => v.labels.rule === 'unique-service-account')?.value, 6000);
    assert.match(lines.find((l) => l.audit === true && l.count !== undefined)!.msg, /^audit: 6000 unique-service-account violations \(first 50 logged\)$/);
  } finally {
    await close();
  }
});

test('background audit: kagent\'s controller running where its token-review ConfigMap does not exist is reported (a deletion never reaches a webhook)', async () => {
  const controller = (ns: string) => ({ metadata: { name: 'kagent-controller', namespace: ns }, spec: { replicas: 1, template: { metadata: { labels: { app: 'kagent' } }, spec: { containers: [{ name: 'c', image: 'kagent:1', envFrom: [{ configMapRef: { name: 'kagent-enterprise-config' } }] }] } } } });
  const { svc, lines, close } = await setup((api) => {
    seedBasics(api);
    const idle = controller('kagent-3');
    idle.spec.replicas = 0; // scaled to 0: not running, not reported
    api.seed(PATHS.deployments, [deployment('weather', 'weather-sa'), controller('kagent'), controller('kagent-2'), idle]);
    // kagent has its ConfigMap, kagent-2 has none (deleted, or never rendered)
    api.seed(PATHS.configmaps, [{ metadata: { name: 'kagent-enterprise-config', namespace: 'kagent' }, data: { K8S_TOKEN_REVIEW: 'true' } }]);
  });
  try {
    await until(() => svc.readiness().ready, 'first sync');
    await until(() => lines.some((l) => l.audit === true && l.rule === 'token-review-required'), 'audit ran');
    const reported = lines.filter((l) => l.audit === true && l.rule === 'token-review-required');
    assert.equal(reported.length, 1, JSON.stringify(reported));
    assert.equal(reported[0].namespace, 'kagent-2');
    assert.match(
      reported[0].msg,
      /^\[token-review-required\] Deployment kagent-2\/kagent-controller: kagent's controller runs, but ConfigMap kagent-2\/kagent-enterprise-config does not exist, .* is external, .*Fix: create ConfigMap kagent-2\/kagent-enterprise-config with K8S_TOKEN_REVIEW: "true" in data/,
    );
    const metric = await registry.getSingleMetric('kagenti_webhook_policy_violations')!.get();
    assert.equal(metric.values.find((v) => v.labels.rule === 'token-review-required')?.value, 1);
  } finally {
    await close();
  }
});

test('background audit: a controller whose env overrides the ConfigMap, or that does not read it, is reported from the cache; a key that differs only in case is named', async () => {
  const controller = (ns: string, container: Record<string, unknown>) => ({ metadata: { name: 'kagent-controller', namespace: ns }, spec: { replicas: 1, template: { metadata: { labels: { app: 'kagent' } }, spec: { containers: [{ name: 'c', image: 'kagent:1', ...container }] } } } });
  const envFrom = [{ configMapRef: { name: 'kagent-enterprise-config' } }];
  const { svc, lines, close } = await setup((api) => {
    seedBasics(api);
    api.seed(PATHS.deployments, [
      controller('kagent', { envFrom, env: [{ name: 'K8S_TOKEN_REVIEW', value: 'false' }] }),
      controller('kagent-2', { envFrom: [{ configMapRef: { name: 'kagent-controller' } }] }),
      controller('kagent-3', { envFrom }),
    ]);
    api.seed(PATHS.configmaps, [
      { metadata: { name: 'kagent-enterprise-config', namespace: 'kagent' }, data: { K8S_TOKEN_REVIEW: 'true' } },
      { metadata: { name: 'kagent-enterprise-config', namespace: 'kagent-2' }, data: { K8S_TOKEN_REVIEW: 'true' } },
      { metadata: { name: 'kagent-enterprise-config', namespace: 'kagent-3' }, data: { k8s_token_review: 'true', OTHER: 'x' } },
    ]);
  });
  try {
    await until(() => svc.readiness().ready, 'first sync');
    await until(() => lines.filter((l) => l.audit === true && l.rule === 'token-review-required').length >= 3, 'audit ran');
    const reported = lines.filter((l) => l.audit === true && l.rule === 'token-review-required');
    const by = (ns: string) => reported.filter((l) => l.namespace === ns).map((l) => l.msg as string);
    assert.equal(by('kagent').length, 1);
    assert.match(by('kagent')[0]!, /^\[token-review-required\] Deployment kagent\/kagent-controller: spec\.template\.spec\.containers\[0\]\.env\[0\] sets K8S_TOKEN_REVIEW to "false" .*Fix: remove that env entry/);
    assert.match(by('kagent-2')[0]!, /^\[token-review-required\] Deployment kagent-2\/kagent-controller: kagent's controller does not read K8S_TOKEN_REVIEW from ConfigMap kagent-2\/kagent-enterprise-config/);
    // the cached ConfigMap keeps the key that differs in case, for /validate's hint
    assert.match(by('kagent-3')[0]!, /^\[token-review-required\] ConfigMap kagent-3\/kagent-enterprise-config: data\.K8S_TOKEN_REVIEW is not set \(data has "k8s_token_review": keys are case-sensitive\)\./);
  } finally {
    await close();
  }
});

test('csi-driver-missing: an agent pod admitted while no CSIDriver of spire.csiDriver exists is injected with the warning, naming the driver', async () => {
  const { svc, close } = await setup((api) => {
    seedBasics(api);
    api.seed(PATHS.csidrivers, [{ metadata: { name: 'other.csi' }, spec: {} }]);
  });
  try {
    await until(() => svc.readiness().ready, 'first sync');
    const { mutate } = await import('../webhook/mutate.ts');
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'team-a', labels: AGENT }, spec: { serviceAccountName: 'p-sa', containers: [{ name: 'a', image: 'x' }] } };
    const req = { uid: 'c1', kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE', namespace: 'team-a', object: pod } as AdmissionRequest;
    const missing = mutate(req, { config: configFromObject({ spire: { csiDriver: 'csi.example.io' } }), validation: svc });
    assert.equal(missing.response.allowed, true);
    assert.ok(
      /^\[csi-driver-missing\] Pod team-a\/p: CSIDriver csi\.example\.io is not installed, .*Fix: /.test((missing.response.warnings ?? []).join(' ')),
      JSON.stringify(missing.response.warnings),
    );
    const present = mutate(req, { config: configFromObject({ spire: { csiDriver: 'other.csi' } }), validation: svc });
    assert.ok(!present.response.warnings?.some((w) => w.includes('csi-driver-missing')), JSON.stringify(present.response.warnings));
  } finally {
    await close();
  }
});

test('background audit: a misconfigured token-review ConfigMap the cluster holds immutable is reported with delete-and-recreate as the fix', async () => {
  const { svc, lines, close } = await setup((api) => {
    seedBasics(api);
    api.seed(PATHS.configmaps, [{ metadata: { name: 'kagent-enterprise-config', namespace: 'kagent' }, immutable: true, data: { OTHER: 'x' } }]);
  });
  try {
    await until(() => svc.readiness().ready, 'first sync');
    await until(() => lines.some((l) => l.audit === true && l.rule === 'token-review-required'), 'audit ran');
    const reported = lines.filter((l) => l.audit === true && l.rule === 'token-review-required');
    assert.equal(reported.length, 1, JSON.stringify(reported));
    assert.match(reported[0].msg, /^\[token-review-required\] ConfigMap kagent\/kagent-enterprise-config: data\.K8S_TOKEN_REVIEW is not set\. .*Fix: delete ConfigMap kagent\/kagent-enterprise-config and create it again with K8S_TOKEN_REVIEW: "true" in data, since it is immutable/);
  } finally {
    await close();
  }
});

test('background audit: kagent\'s controller reading a kustomize-hashed ConfigMap is told the webhook does not watch it (the cache keeps the controller\'s ConfigMap references)', async () => {
  const hashed = 'kagent-enterprise-config-9k6bh8fd92';
  const { svc, lines, close } = await setup((api) => {
    seedBasics(api);
    api.seed(PATHS.deployments, [
      deployment('weather', 'weather-sa'),
      { metadata: { name: 'kagent-controller', namespace: 'kagent' }, spec: { replicas: 1, template: { metadata: { labels: { app: 'kagent' } }, spec: { containers: [{ name: 'c', image: 'kagent:1', envFrom: [{ configMapRef: { name: hashed } }] }] } } } },
    ]);
  });
  try {
    await until(() => svc.readiness().ready, 'first sync');
    await until(() => lines.some((l) => l.audit === true && l.rule === 'token-review-required'), 'audit ran');
    const reported = lines.filter((l) => l.audit === true && l.rule === 'token-review-required');
    assert.equal(reported.length, 1, JSON.stringify(reported));
    assert.match(reported[0].msg, new RegExp(`^\\[token-review-required\\] Deployment kagent/kagent-controller: kagent's controller reads its environment from ConfigMap kagent/${hashed} .*but the webhook does not watch that ConfigMap .*Fix: set generatorOptions: disableNameSuffixHash: true`));
    assert.ok(!reported[0].msg.includes('does not exist'), reported[0].msg);
  } finally {
    await close();
  }
});

test('a Job /validate admitted is known by its controller until the cache holds it: its pods are that agent (KEDA ScaledJob, kubectl create job --from=cronjob)', async () => {
  const scaledJob = { apiVersion: 'keda.sh/v1alpha1', kind: 'ScaledJob', name: 'worker', uid: 'sj', controller: true };
  const job = (name: string, owner: Record<string, unknown>, sa: string) => ({
    metadata: { name, namespace: 'team-a', ownerReferences: [owner] },
    spec: { template: { metadata: { labels: AGENT }, spec: { serviceAccountName: sa, restartPolicy: 'Never', containers: [{ name: 'a', image: 'x' }] } } },
  });
  const cronJob = { metadata: { name: 'backup', namespace: 'team-a' }, spec: { schedule: '0 0 * * *', jobTemplate: { spec: { template: { metadata: { labels: AGENT }, spec: { serviceAccountName: 'backup-sa', containers: [{ name: 'a', image: 'x' }] } } } } } };
  const { svc, close } = await setup((api) => {
    seedBasics(api);
    api.seed(PATHS.jobs, [job('worker-abcde', scaledJob, 'worker-sa')]);
    api.seed(PATHS.cronjobs, [cronJob]);
  });
  const jobPod = (jobName: string, sa: string) => request('Pod', '', {
    metadata: { generateName: `${jobName}-`, namespace: 'team-a', labels: { ...AGENT, 'batch.kubernetes.io/job-name': jobName }, ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: jobName, uid: 'j', controller: true }] },
    spec: { serviceAccountName: sa, restartPolicy: 'Never', containers: [{ name: 'a', image: 'x' }] },
  });
  try {
    await until(() => svc.readiness().ready, 'first sync');
    // before /validate saw the Job, its pod is the Job itself: another agent than ScaledJob/worker
    const unseen = svc.validate(jobPod('worker-klmno', 'worker-sa'));
    assert.equal(unseen.response.allowed, false);
    assert.match(unseen.response.status!.message, /already the identity of agent ScaledJob\/worker\b/);
    assert.equal(svc.validate(request('Job', 'batch', job('worker-fghij', scaledJob, 'worker-sa'))).response.allowed, true);
    const pod = svc.validate(jobPod('worker-fghij', 'worker-sa'));
    assert.equal(pod.response.allowed, true, JSON.stringify(pod.response));
    // kubectl create job --from=cronjob/backup: a Job owned by the CronJob (skipped at /validate, its owner checked)
    const manual = job('backup-manual', { apiVersion: 'batch/v1', kind: 'CronJob', name: 'backup', uid: 'c', controller: true }, 'backup-sa');
    assert.equal(svc.validate(request('Job', 'batch', manual)).response.allowed, true);
    const manualPod = svc.validate(jobPod('backup-manual', 'backup-sa'));
    assert.equal(manualPod.response.allowed, true, JSON.stringify(manualPod.response));
    // a dry run is not remembered
    const dry = { ...request('Job', 'batch', job('worker-dry', scaledJob, 'worker-sa')), dryRun: true };
    assert.equal(svc.validate(dry).response.allowed, true);
    assert.equal(svc.validate(jobPod('worker-dry', 'worker-sa')).response.allowed, false);
    // a replica that did not see the Job (another replica admitted it, or this one restarted): the label KEDA sets on
    // the pod, with a Job name generated from `worker-`, makes it ScaledJob/worker all the same
    const kedaPod = (jobName: string) => {
      const r = jobPod(jobName, 'worker-sa');
      r.object!.metadata.labels = { ...r.object!.metadata.labels, 'scaledjob.keda.sh/name': 'worker' };
      return r;
    };
    const labelled = svc.validate(kedaPod('worker-k7m2x'));
    assert.equal(labelled.response.allowed, true, JSON.stringify(labelled.response));
    // a Job name the generator could not have made from `worker-` (a vowel): the Job itself, another agent
    assert.equal(svc.validate(kedaPod('worker-klmno')).response.allowed, false);
  } finally {
    await close();
  }
});

test('agents already sharing, one of a kind the cache does not hold (an Argo Rollout): its replacement pods and new ReplicaSets are warned, as a Deployment\'s are', async () => {
  const rollout = { apiVersion: 'argoproj.io/v1alpha1', kind: 'Rollout', name: 'weather', uid: 'ro', controller: true };
  const rolloutRs = (hash: string) => ({
    metadata: { name: `weather-${hash}`, namespace: 'team-a', labels: { 'rollouts-pod-template-hash': hash }, ownerReferences: [rollout] },
    spec: { replicas: 2, template: { metadata: { labels: { ...AGENT, 'rollouts-pod-template-hash': hash } }, spec: { serviceAccountName: 'shared', containers: [{ name: 'a', image: 'x' }] } } },
  });
  const rolloutPod = (hash: string) => ({
    metadata: { generateName: `weather-${hash}-`, namespace: 'team-a', labels: { ...AGENT, 'rollouts-pod-template-hash': hash }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `weather-${hash}`, uid: 'r', controller: true }] },
    spec: { serviceAccountName: 'shared', containers: [{ name: 'a', image: 'x' }] },
  });
  const { svc, close } = await setup((api) => {
    seedBasics(api);
    api.seed(PATHS.deployments, [deployment('news', 'shared')]);
    api.seed(PATHS.replicasets, [rolloutRs('6c7d8e9f0a')]);
  });
  try {
    await until(() => svc.readiness().ready, 'first sync');
    const pod = svc.validate(request('Pod', '', rolloutPod('6c7d8e9f0a')));
    assert.equal(pod.response.allowed, true, JSON.stringify(pod.response));
    assert.match(joinWarnings(pod.response.warnings ?? []), /already the identity of agent Deployment\/news\. Both share .* Not denied: its workload Rollout\/weather already shares it, and this pod adds no sharing\. Fix: /);
    const rs = svc.validate(request('ReplicaSet', 'apps', rolloutRs('1a2b3c4d5e')));
    assert.equal(rs.response.allowed, true, JSON.stringify(rs.response));
    assert.match(joinWarnings(rs.response.warnings ?? []), /Not denied: its workload Rollout\/weather already shares it, and this ReplicaSet adds no sharing\./);
    // a Rollout with nothing cached on this ServiceAccount adds sharing: denied
    const other = svc.validate(request('Pod', '', { ...rolloutPod('0f0f0f0f0f'), metadata: { ...rolloutPod('0f0f0f0f0f').metadata, generateName: 'maps-0f0f0f0f0f-', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'maps-0f0f0f0f0f', uid: 'm', controller: true }] } }));
    assert.equal(other.response.allowed, false);
    assert.match(other.response.status!.message, /Pod team-a\/maps-0f0f0f0f0f-<generated>: .*already the identity of agents Deployment\/news and \S+\. All 3 would share/);
  } finally {
    await close();
  }
});

test('a Knative Revision\'s Deployment and an OpenShift DeploymentConfig\'s pods are one agent across versions, also from the cache', async () => {
  const revision = (rev: string, replicas: number) => ({
    metadata: { name: `${rev}-deployment`, namespace: 'team-a', labels: { 'serving.knative.dev/configuration': 'hello' }, ownerReferences: [{ apiVersion: 'serving.knative.dev/v1', kind: 'Revision', name: rev, uid: rev, controller: true }] },
    spec: { replicas, template: { metadata: { labels: { ...AGENT, 'serving.knative.dev/configuration': 'hello', 'serving.knative.dev/revision': rev } }, spec: { serviceAccountName: 'hello-sa', containers: [{ name: 'a', image: 'x' }] } } },
  });
  const dcPod = (rc: string, name: string) => ({
    metadata: { name, namespace: 'team-a', labels: { ...AGENT, deploymentconfig: 'frontend', deployment: rc }, ownerReferences: [{ apiVersion: 'v1', kind: 'ReplicationController', name: rc, uid: rc, controller: true }] },
    spec: { serviceAccountName: 'front-sa', containers: [{ name: 'a', image: 'x' }] },
    status: { phase: 'Running' },
  });
  const { svc, close } = await setup((api) => {
    seedBasics(api);
    api.seed(PATHS.deployments, [revision('hello-00001', 0)]);
    api.seed(PATHS.pods, [dcPod('frontend-1', 'frontend-1-aaaaa')]);
  });
  try {
    await until(() => svc.readiness().ready, 'first sync');
    const next = svc.validate(request('Deployment', 'apps', revision('hello-00002', 1)));
    assert.equal(next.response.allowed, true, JSON.stringify(next.response));
    const pod = svc.validate(request('Pod', '', dcPod('frontend-2', 'frontend-2-bbbbb')));
    assert.equal(pod.response.allowed, true, JSON.stringify(pod.response));
    // another agent on either ServiceAccount is still denied, naming the agent as it is known
    const other = svc.validate(deploymentRequest(deployment('news', 'hello-sa')));
    assert.match(other.response.status!.message, /already the identity of agent Configuration\/hello\. /);
    const other2 = svc.validate(deploymentRequest(deployment('news', 'front-sa')));
    assert.match(other2.response.status!.message, /already the identity of agent DeploymentConfig\/frontend\. /);
  } finally {
    await close();
  }
});

test('unique-service-account: a new pod of a workload with many replicas builds one claim per agent on its ServiceAccount, not one per pod; a pod its ReplicaSet released meanwhile counts as its own agent', async () => {
  const replicas = 60;
  const pods = Array.from({ length: replicas }, (_, i) => depPod('big', '6b7c8d9f0a', `p${String(i).padStart(4, '0')}`, 'big-sa'));
  const { api, svc, close } = await setup((api) => {
    seedBasics(api);
    api.seed(PATHS.deployments, [deployment('weather', 'weather-sa'), deployment('big', 'big-sa')]);
    api.seed(PATHS.replicasets, [replicaSet('weather', '7d9f8b6c5d', 'weather-sa'), replicaSet('big', '6b7c8d9f0a', 'big-sa', 'team-a', replicas)]);
    api.seed(PATHS.pods, pods);
  });
  const newPod = (): AdmissionRequest => {
    const pod: any = depPod('big', '6b7c8d9f0a', 'zzzzz', 'big-sa');
    return { uid: `u${++uid}`, kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE', namespace: 'team-a', name: pod.metadata.name, object: { kind: 'Pod', ...pod } };
  };
  /** the decision, and how many AgentRefs the check built from the cache */
  const check = (req: AdmissionRequest) => {
    const before = agentRefsBuilt();
    const d = svc.validate(req);
    return { d, built: agentRefsBuilt() - before };
  };
  try {
    await until(() => svc.readiness().ready, 'first sync');
    await api.waitForWatch(PATHS.pods);
    const { d, built } = check(newPod());
    assert.equal(d.response.allowed, true, JSON.stringify(d.response));
    assert.deepEqual(d.response.warnings ?? [], []);
    // the workload's claim (claimOfObject), then one per group on big-sa: the Deployment, its ReplicaSet, its 60 pods
    assert.equal(built, 4, `${built} AgentRefs built for a pod of a ${replicas}-replica Deployment`);

    // one pod released by its ReplicaSet (kubectl label pod ... app-): its own agent now, warned about by name
    const released: any = structuredClone(pods[7]);
    delete released.metadata.ownerReferences;
    api.emit(PATHS.pods, 'MODIFIED', released);
    await until(() => (svc.validate(newPod()).response.warnings ?? []).length > 0, 'the released pod counts as its own agent');
    const after = check(newPod());
    assert.equal(after.d.response.allowed, true);
    assert.match(joinWarnings(after.d.response.warnings ?? []), /already the identity of agent Pod\/big-6b7c8d9f0a-p0007, a pod released by ReplicaSet big-6b7c8d9f0a of Deployment\/big: .* Not denied: its workload Deployment\/big already shares it/);
    api.emit(PATHS.pods, 'DELETED', released);

    // deleted: one agent again, and one AgentRef for its pods
    await until(() => (svc.validate(newPod()).response.warnings ?? []).length === 0, 'one agent again');
    assert.equal(check(newPod()).built, 4);
    // a second agent on big-sa: denied, naming it, as before
    const other = svc.validate(deploymentRequest(deployment('planner', 'big-sa')));
    assert.equal(other.response.allowed, false);
    assert.match(other.response.status!.message, /Deployment team-a\/planner: ServiceAccount "big-sa" .* already the identity of agent Deployment\/big\./);
  } finally {
    await close();
  }
});

test('the informers list at most two pages at once, whatever their number (a start-up or relist holds two pages, not ten)', async () => {
  const { api, svc, close } = await setup((api) => {
    seedBasics(api);
    api.listDelayMs = 40;
  });
  try {
    await until(() => svc.readiness().ready, 'first sync');
    assert.equal(api.listsInFlightMax, 2, 'two lists at once, no more (and no fewer: they still overlap)');
    // every informer listed, and served what it listed
    assert.equal(svc.namespaceLabels('team-a')?.['kagenti-enabled'], 'true');
    assert.equal(svc.csiDriverExists('csi.spiffe.io'), true);
  } finally {
    await close();
  }
});

test('a tool on an agent\'s ServiceAccount while featureGates.injectTools is off is allowed with a warning naming the agent (a SPIRE selector that includes tool would give it that identity); not with tools on, nor on its own ServiceAccount', async () => {
  const TOOL = { 'kagenti.io/type': 'tool' };
  const toolPod = (sa: string) => ({
    uid: `u${++uid}`,
    kind: { group: '', version: 'v1', kind: 'Pod' },
    operation: 'CREATE' as const,
    namespace: 'team-a',
    name: 'mcp-tool',
    object: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'mcp-tool', namespace: 'team-a', labels: TOOL }, spec: { serviceAccountName: sa, containers: [{ name: 't', image: 'x' }] } },
  });
  const { svc, close } = await setup(seedBasics);
  try {
    await until(() => svc.readiness().ready, 'first sync');
    const pod = svc.validate(toolPod('weather-sa'));
    assert.equal(pod.response.allowed, true);
    assert.deepEqual(pod.rules, ['unique-service-account']);
    assert.equal(
      joinWarnings(pod.response.warnings ?? []),
      '[unique-service-account] Pod team-a/mcp-tool: ServiceAccount "weather-sa" (spec.serviceAccountName) is the identity of agent ' +
        'Deployment/weather. This tool (kagenti.io/type: tool) is not denied, as it is no agent while featureGates.injectTools is off, ' +
        "but a SPIRE registration whose pod selector includes tool would give it that agent's SPIFFE ID " +
        'spiffe://cluster.local/ns/team-a/sa/weather-sa. Fix: give the tool its own ServiceAccount.',
    );
    const dep = svc.validate(deploymentRequest(deployment('mcp', 'weather-sa', 'team-a', TOOL)));
    assert.equal(dep.response.allowed, true);
    assert.match(joinWarnings(dep.response.warnings ?? []), /^\[unique-service-account\] Deployment team-a\/mcp: ServiceAccount "weather-sa" \(spec\.template\.spec\.serviceAccountName\) is the identity of agent Deployment\/weather\. .* Fix: give the tool its own ServiceAccount\.$/);
    // its own ServiceAccount, an UPDATE that keeps the template (a reconcile), a pod of the tool's Deployment: nothing
    for (const r of [toolPod('mcp-sa'), deploymentRequest(deployment('mcp', 'weather-sa', 'team-a', TOOL), 'UPDATE')]) {
      const d = svc.validate(r);
      assert.equal(d.response.allowed, true);
      assert.equal(d.response.warnings, undefined, JSON.stringify(d.response.warnings));
    }
    const owned = toolPod('weather-sa');
    owned.object.metadata = { ...owned.object.metadata, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'mcp-5d8f7c9b6d', uid: 'r', controller: true }] } as typeof owned.object.metadata;
    assert.equal(svc.validate(owned).response.warnings, undefined, "a controller's pod: its workload was warned");
  } finally {
    await close();
  }
  // tools are agents: unique-service-account denies it, as any agent
  const tools = await setup(seedBasics, { featureGates: { injectTools: true } });
  try {
    await until(() => tools.svc.readiness().ready, 'first sync');
    const d = tools.svc.validate(toolPod('weather-sa'));
    assert.equal(d.response.allowed, false);
    assert.match(d.response.status!.message, /is already the identity of agent Deployment\/weather/);
  } finally {
    await tools.close();
  }
  // the rule off: no warning
  const off = await setup(seedBasics, { policies: { 'unique-service-account': 'off' } });
  try {
    await until(() => off.svc.readiness().ready, 'first sync');
    assert.equal(off.svc.validate(toolPod('weather-sa')).response.warnings, undefined);
  } finally {
    await off.close();
  }
});
