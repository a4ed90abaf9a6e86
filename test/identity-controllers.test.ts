// Workloads that controllers other than the built-in ones make from one resource are one agent with it
// (identity.ts controllerWorkload): a LeaderWorkerSet's leader and worker StatefulSets, a Flagger Canary's primary,
// a RayService's RayClusters, an Argo Rollouts Experiment's ReplicaSets, a JobSet's Jobs before they are cached.
// Each is checked pure, and end to end against the recorded cluster (test/fake-apiserver.ts) with /validate.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AdmissionRequest } from '../webhook/admission.ts';
import { defaultConfig } from '../webhook/config.ts';
import type { OwnerLookup, OwnerRef } from '../webhook/identity.ts';
import { agentIdentity, identityKey } from '../webhook/identity.ts';
import { PATHS, startOnFakeApi, until } from './fake-apiserver.ts';

const config = defaultConfig();
const AGENT = { 'kagenti.io/type': 'agent' };
const NS = 'team-a';
const LWS = { apiVersion: 'leaderworkerset.x-k8s.io/v1', kind: 'LeaderWorkerSet' };
const LWS_NAME = 'leaderworkerset.sigs.k8s.io/name';

type Owner = { apiVersion: string; kind: string; name: string };
const ref = (o: Owner) => ({ ...o, uid: `uid-${o.name}`, controller: true });

function statefulSet(name: string, owner: Owner | null, labels: Record<string, string>, sa: string) {
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name, namespace: NS, labels, ...(owner ? { ownerReferences: [ref(owner)] } : {}) },
    spec: { selector: { matchLabels: labels }, template: { metadata: { labels: { ...AGENT, ...labels } }, spec: { serviceAccountName: sa, containers: [{ name: 'a', image: 'x' }] } } },
  };
}

function deployment(name: string, owner: Owner | null, sa: string) {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: NS, ...(owner ? { ownerReferences: [ref(owner)] } : {}) },
    spec: { selector: { matchLabels: { app: name } }, template: { metadata: { labels: { ...AGENT, app: name } }, spec: { serviceAccountName: sa, containers: [{ name: 'a', image: 'x' }] } } },
  };
}

function pod(name: string, owner: Owner | null, labels: Record<string, string>, sa: string) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NS, labels: { ...AGENT, ...labels }, ...(owner ? { ownerReferences: [ref(owner)] } : {}) },
    spec: { serviceAccountName: sa, containers: [{ name: 'a', image: 'x' }] },
    status: { phase: 'Running' },
  };
}

function replicaSet(name: string, owner: Owner, labels: Record<string, string>, sa: string) {
  return {
    apiVersion: 'apps/v1',
    kind: 'ReplicaSet',
    metadata: { name, namespace: NS, labels, ownerReferences: [ref(owner)] },
    spec: { replicas: 1, selector: { matchLabels: labels }, template: { metadata: { labels: { ...AGENT, ...labels } }, spec: { serviceAccountName: sa, containers: [{ name: 'a', image: 'x' }] } } },
  };
}

const GROUPS: Record<string, { group: string; version: string }> = {
  Pod: { group: '', version: 'v1' },
  Deployment: { group: 'apps', version: 'v1' },
  StatefulSet: { group: 'apps', version: 'v1' },
  ReplicaSet: { group: 'apps', version: 'v1' },
};
let uid = 0;
function request(obj: Record<string, any>): AdmissionRequest {
  return { uid: `u${++uid}`, kind: { ...GROUPS[obj.kind]!, kind: obj.kind }, operation: 'CREATE', namespace: NS, name: obj.metadata.name, object: obj, oldObject: null };
}

/** The recorded cluster with these objects cached; /validate's answer for each request, in order. */
async function validateAgainst(cached: { path: string; items: Record<string, any>[] }[], requests: Record<string, any>[]) {
  const s = await startOnFakeApi((api) => {
    api.seed(PATHS.namespaces, [{ metadata: { name: NS } }]);
    api.seed(PATHS.csidrivers, [{ metadata: { name: 'csi.spiffe.io' } }]);
    for (const c of cached) api.seed(c.path, c.items.map(({ apiVersion: _a, kind: _k, ...o }) => o));
  });
  try {
    await until(() => s.svc.readiness().ready, 'first sync');
    return requests.map((r) => s.svc.validate(request(r)).response);
  } finally {
    await s.close();
  }
}

function lookupOf(objects: Record<string, any>[]): OwnerLookup {
  return (kind, ns, name) => {
    const o = objects.find((x) => x.kind === kind && x.metadata.namespace === ns && x.metadata.name === name);
    if (!o) return undefined;
    const r = o.metadata.ownerReferences?.[0];
    return r ? ({ kind: r.kind, name: r.name, controller: true, apiVersion: r.apiVersion } as OwnerRef) : null;
  };
}

const idOf = (o: unknown, lookup?: OwnerLookup) => {
  const id = agentIdentity(o, config, NS, lookup)!;
  return `${id.kind}/${id.name}`;
};

// LeaderWorkerSet chat: leader StatefulSet chat (controller: the LWS), leader pod chat-0, worker StatefulSet chat-0
// (controller: the leader pod), worker pods chat-0-1, chat-0-2.
const leaderSts = statefulSet('chat', { ...LWS, name: 'chat' }, { [LWS_NAME]: 'chat', role: 'leader' }, 'chat-sa');
const leaderPod = pod('chat-0', { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'chat' }, { [LWS_NAME]: 'chat', 'statefulset.kubernetes.io/pod-name': 'chat-0' }, 'chat-sa');
const workerSts = statefulSet('chat-0', { apiVersion: 'v1', kind: 'Pod', name: 'chat-0' }, { [LWS_NAME]: 'chat', 'leaderworkerset.sigs.k8s.io/group-index': '0' }, 'chat-sa');
const workerPod = pod('chat-0-1', { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'chat-0' }, { [LWS_NAME]: 'chat', 'statefulset.kubernetes.io/pod-name': 'chat-0-1' }, 'chat-sa');

test('LeaderWorkerSet: the leader and worker StatefulSets and their pods are one agent, LeaderWorkerSet/<name>, by the owner chain or, not cached, by label and name', () => {
  const all = lookupOf([leaderSts, leaderPod, workerSts, workerPod]);
  for (const o of [leaderSts, leaderPod, workerSts, workerPod]) {
    assert.equal(idOf(o, all), 'LeaderWorkerSet/chat', `${o.kind} ${o.metadata.name}, cached`);
    assert.equal(idOf(o), 'LeaderWorkerSet/chat', `${o.kind} ${o.metadata.name}, nothing cached: by its label`);
  }
  // a known chain that ends elsewhere is not the LeaderWorkerSet's, whatever the label says
  const bareLeader = { ...leaderPod, metadata: { ...leaderPod.metadata, ownerReferences: undefined } };
  assert.equal(idOf(workerSts, lookupOf([bareLeader])), 'StatefulSet/chat-0');
  const operatorSts = statefulSet('chat', { apiVersion: 'example.com/v1', kind: 'LeaderWorkerSet', name: 'chat' }, { [LWS_NAME]: 'chat' }, 'chat-sa');
  assert.equal(idOf(operatorSts), 'StatefulSet/chat', 'a LeaderWorkerSet of another group');
  // the label ties only a StatefulSet named <lws> or <lws>-<group>
  assert.equal(idOf(statefulSet('other', null, { [LWS_NAME]: 'chat' }, 'chat-sa')), 'StatefulSet/other');
  assert.equal(idOf(statefulSet('chat-x', null, { [LWS_NAME]: 'chat' }, 'chat-sa')), 'StatefulSet/chat-x');
});

test('LeaderWorkerSet at /validate: the worker StatefulSet and its pods on the leader\'s ServiceAccount are admitted; another StatefulSet on it is still denied', async () => {
  const other = statefulSet('memory', null, { app: 'memory' }, 'chat-sa');
  const [sts, wpod, deny] = await validateAgainst(
    [
      { path: PATHS.statefulsets, items: [leaderSts] },
      { path: PATHS.pods, items: [leaderPod] },
    ],
    [workerSts, workerPod, other],
  );
  assert.equal(sts!.allowed, true, sts!.status?.message);
  assert.equal(wpod!.allowed, true, wpod!.status?.message);
  assert.equal(deny!.allowed, false);
  assert.match(deny!.status!.message!, /identity of agent LeaderWorkerSet\/chat\./);
});

test('LeaderWorkerSet at /validate: its leader StatefulSet, admitted with nothing cached, holds the ServiceAccount for LeaderWorkerSet/<name> until the cache has it, as a plain StatefulSet does', async () => {
  const memory = deployment('memory', null, 'chat-sa');
  const [sts, deny, wpod] = await validateAgainst([], [leaderSts, memory, workerPod]);
  assert.equal(sts!.allowed, true, sts!.status?.message);
  assert.equal(deny!.allowed, false, 'the second agent on chat-sa');
  assert.match(deny!.status!.message!, /identity of agent LeaderWorkerSet\/chat, admitted moments ago\./);
  assert.equal(wpod!.allowed, true, wpod!.status?.message);
});

const CANARY = { apiVersion: 'flagger.app/v1beta1', kind: 'Canary', name: 'podinfo' };
const target = deployment('podinfo', null, 'podinfo-sa');
const primary = deployment('podinfo-primary', CANARY, 'podinfo-sa');

test('Flagger: the primary Deployment (<target>-primary, controller a flagger.app Canary) is its target\'s agent; a Canary of another group, or another name, is not', () => {
  assert.equal(idOf(primary), 'Deployment/podinfo');
  assert.equal(idOf(target), 'Deployment/podinfo');
  const primaryPod = pod('podinfo-primary-5d4c3b2a1f-x2x9k', { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'podinfo-primary-5d4c3b2a1f' }, { 'pod-template-hash': '5d4c3b2a1f' }, 'podinfo-sa');
  assert.equal(idOf(primaryPod, lookupOf([primary])), 'Deployment/podinfo', 'its pod, through its cached Deployment');
  assert.equal(idOf(deployment('podinfo-primary', { ...CANARY, apiVersion: 'example.com/v1' }, 'podinfo-sa')), 'Deployment/podinfo-primary');
  assert.equal(idOf(deployment('podinfo-main', CANARY, 'podinfo-sa')), 'Deployment/podinfo-main');
  assert.equal(idOf(deployment('podinfo-primary', null, 'podinfo-sa')), 'Deployment/podinfo-primary', 'no Canary: a Deployment of its own');
});

test('Flagger at /validate: the primary Flagger creates beside the target, on its ServiceAccount, is admitted', async () => {
  const [res, other] = await validateAgainst([{ path: PATHS.deployments, items: [target] }], [primary, deployment('intruder', null, 'podinfo-sa')]);
  assert.equal(res!.allowed, true, res!.status?.message);
  assert.equal(other!.allowed, false);
});

test('Flagger at /validate: a live primary (and its pods) on the old ServiceAccount, after the target\'s template moved to another, is named as live, not as old pods to wait for', async () => {
  const primaryRs = replicaSet('podinfo-primary-5d4c3b2a1f', { apiVersion: 'apps/v1', kind: 'Deployment', name: 'podinfo-primary' }, { app: 'podinfo-primary', 'pod-template-hash': '5d4c3b2a1f' }, 'podinfo-sa');
  const primaryPod = pod('podinfo-primary-5d4c3b2a1f-x2x9k', { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: primaryRs.metadata.name }, { app: 'podinfo-primary', 'pod-template-hash': '5d4c3b2a1f' }, 'podinfo-sa');
  const [res] = await validateAgainst(
    [
      { path: PATHS.deployments, items: [deployment('podinfo', null, 'podinfo-v2-sa'), primary] },
      { path: PATHS.replicasets, items: [primaryRs] },
      { path: PATHS.pods, items: [primaryPod] },
    ],
    [deployment('intruder', null, 'podinfo-sa')],
  );
  assert.equal(res!.allowed, false);
  assert.match(res!.status!.message!, /identity of agent Deployment\/podinfo\. Both would share /);
  assert.doesNotMatch(res!.status!.message!, /another ServiceAccount now|still runs?|retry/);
});

test('Flagger at /validate: a primary admitted while its target is not cached holds the ServiceAccount for Deployment/<target>', async () => {
  const [res, other] = await validateAgainst([], [primary, deployment('intruder', null, 'podinfo-sa'), target]);
  assert.equal(res!.allowed, true, res!.status?.message);
  assert.equal(other!.allowed, false);
  assert.match(other!.status!.message!, /identity of agent Deployment\/podinfo, admitted moments ago\./);
});

// The labels KubeRay sets on a RayCluster's pods: ray.io/originated-from-crd and -cr-name are on the RayCluster
// object only (not cached), and a RayService's clusters, named <svc>-raycluster-<5 characters>, label their pods
// ray.io/serve (the serve Service selects on it).
const rayLabels = (cluster: string, nodeType: 'head' | 'worker', serve: boolean) => ({
  'ray.io/cluster': cluster,
  'ray.io/node-type': nodeType,
  'ray.io/group': nodeType === 'head' ? 'headgroup' : 'workers',
  'ray.io/identifier': `${cluster}-${nodeType}`,
  'ray.io/is-ray-node': 'yes',
  ...(serve ? { 'ray.io/serve': 'true' } : {}),
});
const RAYCLUSTER = { apiVersion: 'ray.io/v1', kind: 'RayCluster' };
const rayPod = (cluster: string, name: string, { serve = true, nodeType = 'head' as 'head' | 'worker', apiVersion = RAYCLUSTER.apiVersion } = {}) =>
  pod(name, { ...RAYCLUSTER, apiVersion, name: cluster }, rayLabels(cluster, nodeType, serve), 'llm-sa');

test('KubeRay: the pods (labelled ray.io/serve) of a RayService\'s RayClusters <svc>-raycluster-<5 characters> are RayService/<svc>; any other RayCluster\'s are the RayCluster', () => {
  assert.equal(idOf(rayPod('llm-raycluster-abcde', 'llm-raycluster-abcde-head-x')), 'RayService/llm');
  assert.equal(idOf(rayPod('llm-raycluster-fg2hj', 'llm-raycluster-fg2hj-workers-worker-y', { nodeType: 'worker' })), 'RayService/llm');
  assert.equal(idOf(rayPod('my-llm-raycluster-abcde', 'my-llm-raycluster-abcde-head-x')), 'RayService/my-llm');
  // a RayCluster of its own, a RayJob's cluster (no ray.io/serve), a name that is not a RayService's, another group
  assert.equal(idOf(rayPod('solo', 'solo-head-x')), 'RayCluster/solo');
  assert.equal(idOf(rayPod('job-raycluster-abcde', 'job-raycluster-abcde-head-x', { serve: false })), 'RayCluster/job-raycluster-abcde');
  assert.equal(idOf(rayPod('llm-raycluster-abcdef', 'llm-raycluster-abcdef-head-x')), 'RayCluster/llm-raycluster-abcdef');
  assert.equal(idOf(rayPod('llm-raycluster-ABCDE', 'llm-raycluster-ABCDE-head-x')), 'RayCluster/llm-raycluster-ABCDE');
  assert.equal(idOf(rayPod('llm-raycluster-abcde', 'llm-raycluster-abcde-head-x', { apiVersion: 'example.com/v1' })), 'RayCluster/llm-raycluster-abcde');
  // the RayCluster object's labels on a pod (KubeRay never sets them there) do not make it a RayService's
  const byLabel = pod('p', { ...RAYCLUSTER, name: 'x' }, { 'ray.io/originated-from-crd': 'RayService', 'ray.io/originated-from-cr-name': 'llm' }, 'llm-sa');
  assert.equal(idOf(byLabel), 'RayCluster/x');
});

test('KubeRay at /validate: the head pod of the RayCluster a RayService upgrades to is admitted beside the running one (cached)', async () => {
  const [res, own] = await validateAgainst(
    [{ path: PATHS.pods, items: [rayPod('llm-raycluster-abcde', 'llm-raycluster-abcde-head-x')] }],
    [rayPod('llm-raycluster-fghij', 'llm-raycluster-fghij-head-y'), rayPod('solo', 'solo-head-z')],
  );
  assert.equal(res!.allowed, true, res!.status?.message);
  assert.equal(own!.allowed, false);
  assert.match(own!.status!.message!, /identity of agent RayService\/llm\./);
});

const ROLLOUT = { apiVersion: 'argoproj.io/v1alpha1', kind: 'Rollout', name: 'weather' };
const EXPERIMENT = { apiVersion: 'argoproj.io/v1alpha1', kind: 'Experiment', name: 'weather-7c9d8e6f4-3-0' };
const rolloutRs = replicaSet('weather-6f9c8d7b5', ROLLOUT, { app: 'weather', 'rollouts-pod-template-hash': '6f9c8d7b5' }, 'weather-sa');
const experimentRs = replicaSet('weather-7c9d8e6f4-3-0-canary', EXPERIMENT, { app: 'weather', 'rollouts-pod-template-hash': '7c9d8e6f4' }, 'weather-sa');

test('Argo Rollouts: an Experiment <rollout>-<hash>-<revision>-<step> is its Rollout\'s; its ReplicaSet and pods are the Rollout', () => {
  assert.equal(idOf(experimentRs), 'Rollout/weather');
  const expPod = pod('weather-7c9d8e6f4-3-0-canary-x', { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: experimentRs.metadata.name }, { 'rollouts-pod-template-hash': '7c9d8e6f4' }, 'weather-sa');
  assert.equal(idOf(expPod, lookupOf([experimentRs])), 'Rollout/weather');
  // not a Rollout's Experiment name, or no Argo hash label: the Experiment
  assert.equal(idOf(replicaSet('analysis-canary', { ...EXPERIMENT, name: 'analysis' }, { 'rollouts-pod-template-hash': 'abc' }, 'weather-sa')), 'Experiment/analysis');
  assert.equal(idOf(replicaSet('weather-7c9d8e6f4-3-0-canary', EXPERIMENT, { app: 'weather' }, 'weather-sa')), 'Experiment/weather-7c9d8e6f4-3-0');
  // an Experiment of another API group than argoproj.io is not Argo's, whatever its name: itself, and so are its pods
  const otherRs = replicaSet('weather-7c9d8e6f4-3-0-canary', { ...EXPERIMENT, apiVersion: 'example.com/v1' }, { app: 'weather', 'rollouts-pod-template-hash': '7c9d8e6f4' }, 'weather-sa');
  assert.equal(idOf(otherRs), 'Experiment/weather-7c9d8e6f4-3-0');
  assert.equal(idOf(expPod, lookupOf([otherRs])), 'Experiment/weather-7c9d8e6f4-3-0');
});

test('Argo Rollouts at /validate: an Experiment\'s ReplicaSet on its Rollout\'s ServiceAccount is admitted', async () => {
  const rolloutPod = pod('weather-6f9c8d7b5-abcde', { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: rolloutRs.metadata.name }, { app: 'weather', 'rollouts-pod-template-hash': '6f9c8d7b5' }, 'weather-sa');
  const [res] = await validateAgainst(
    [
      { path: PATHS.replicasets, items: [rolloutRs] },
      { path: PATHS.pods, items: [rolloutPod] },
    ],
    [experimentRs],
  );
  assert.equal(res!.allowed, true, res!.status?.message);
});

const JOBSET = { 'jobset.sigs.k8s.io/jobset-name': 'js' };
const jobPod = (job: string, name: string, labels: Record<string, string> = JOBSET) => pod(name, { apiVersion: 'batch/v1', kind: 'Job', name: job }, labels, 'js-sa');

test('JobSet: a pod of a Job not in the cache, labelled with its JobSet and named <jobset>-<job>-<index>, is JobSet/<name>; a cached Job says itself', () => {
  assert.equal(idOf(jobPod('js-workers-1', 'js-workers-1-0-x')), 'JobSet/js');
  assert.equal(idOf(jobPod('other-1', 'other-1-x')), 'Job/other-1', 'not named after the JobSet');
  assert.equal(idOf(jobPod('js-workers-1', 'js-workers-1-x', {})), 'Job/js-workers-1', 'no label');
  const bareJob = { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'js-workers-1', namespace: NS } };
  assert.equal(idOf(jobPod('js-workers-1', 'js-workers-1-x'), lookupOf([bareJob])), 'Job/js-workers-1', 'cached without a JobSet owner');
});

test('KEDA ScaledJob: a pod of a Job not in the cache, labelled scaledjob.keda.sh/name and whose Job\'s name was generated from <scaledjob>-, is ScaledJob/<name>; a cached Job says itself', () => {
  const KEDA = { 'scaledjob.keda.sh/name': 'worker' };
  const kedaPod = (job: string, labels: Record<string, string> = KEDA) => pod(`${job}-abcde`, { apiVersion: 'batch/v1', kind: 'Job', name: job }, labels, 'worker-sa');
  assert.equal(idOf(kedaPod('worker-k7m2x')), 'ScaledJob/worker');
  assert.equal(idOf(kedaPod('worker-k7m2x', {})), 'Job/worker-k7m2x', 'no label');
  assert.equal(idOf(kedaPod('worker-klmno')), 'Job/worker-klmno', 'a vowel: not a generated name');
  assert.equal(idOf(kedaPod('worker-k7m2')), 'Job/worker-k7m2', 'four characters');
  assert.equal(idOf(kedaPod('other-k7m2x')), 'Job/other-k7m2x', 'not named after the ScaledJob');
  // a long ScaledJob name: the generator keeps 58 characters of `<name>-`
  const long = 'w'.repeat(60);
  const longJob = `${long.slice(0, 58)}k7m2x`;
  assert.equal(idOf(kedaPod(longJob, { 'scaledjob.keda.sh/name': long })), `ScaledJob/${long}`);
  const bareJob = { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'worker-k7m2x', namespace: NS } };
  assert.equal(idOf(kedaPod('worker-k7m2x'), lookupOf([bareJob])), 'Job/worker-k7m2x', 'cached without a ScaledJob owner');
});

test('JobSet at /validate: a pod of a Job this replica has not seen is admitted beside the JobSet\'s other pods', async () => {
  const cachedJob = { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'js-workers-0', namespace: NS, ownerReferences: [ref({ apiVersion: 'jobset.x-k8s.io/v1alpha2', kind: 'JobSet', name: 'js' })] }, spec: { template: { metadata: { labels: { ...AGENT, ...JOBSET } }, spec: { serviceAccountName: 'js-sa' } } } };
  const [res] = await validateAgainst(
    [
      { path: PATHS.jobs, items: [cachedJob] },
      { path: PATHS.pods, items: [jobPod('js-workers-0', 'js-workers-0-0-a')] },
    ],
    [jobPod('js-workers-1', 'js-workers-1-0-b')],
  );
  assert.equal(res!.allowed, true, res!.status?.message);
});

test('identity keys: the objects of one controller resource compare as one agent', () => {
  const a = agentIdentity(workerSts, config, NS)!;
  const b = agentIdentity(leaderPod, config, NS)!;
  assert.equal(identityKey(a), identityKey(b));
});
