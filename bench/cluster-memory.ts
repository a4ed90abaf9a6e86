// Memory of the cluster cache for N agent pods (default 10,000): heap after the informers synced, minus
// the heap before, with forced GC. Uses test/fake-apiserver.ts (an in-process stand-in for the API server).
// Run: node --expose-gc bench/cluster-memory.ts [N]
import { configFromObject } from '../webhook/config.ts';
import { silentLogger } from '../webhook/log.ts';
import { ClusterState } from '../webhook/cluster.ts';
import { FakeApiServer, PATHS, until } from '../test/fake-apiserver.ts';

const N = Number(process.argv[2] ?? 10_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');
const api = new FakeApiServer();
const pods = [];
for (let i = 0; i < N; i++) {
  const dep = `agent-${i % 2000}`;
  pods.push({
    metadata: {
      name: `${dep}-5f7c9d8b6-${i}`, generateName: `${dep}-5f7c9d8b6-`, namespace: `team-${i % 50}`,
      labels: { 'kagenti.io/type': 'agent', app: dep, 'pod-template-hash': '5f7c9d8b6' },
      annotations: { 'kagenti.io/status': JSON.stringify({ containers: ['authbridge-proxy', 'spiffe-helper'], volumes: ['spire-agent-socket', 'svid-output'] }) },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${dep}-5f7c9d8b6`, uid: 'x', controller: true, blockOwnerDeletion: true }],
    },
    spec: {
      serviceAccountName: `${dep}-sa`,
      containers: [{ name: 'agent', image: 'ghcr.io/x/agent:1', env: Array.from({ length: 20 }, (_, j) => ({ name: `E${j}`, value: 'v'.repeat(20) })) }],
      volumes: [{ name: 'spire-agent-socket', csi: { driver: 'csi.spiffe.io', readOnly: true } }],
    },
    status: { phase: 'Running', podIP: '10.0.0.1', conditions: [{ type: 'Ready', status: 'True' }] },
  });
}
const rawBytes = pods.reduce((n, p) => n + JSON.stringify(p).length, 0);
api.seed(PATHS.pods, pods);
await api.start();
gc();
const before = process.memoryUsage().heapUsed;
const state = new ClusterState({ kubeConfig: api.kubeConfig(), config: configFromObject({}), log: silentLogger() });
state.start();
await until(() => state.ready(), 'sync', 120_000);
gc();
const after = process.memoryUsage().heapUsed;
const mb = (b: number) => (b / 1024 / 1024).toFixed(1);
console.log(JSON.stringify({ pods: N, podJsonMB: mb(rawBytes), cacheHeapMB: mb(after - before), bytesPerPod: Math.round((after - before) / N), claims: state.detail().agentClaims }));
state.stop();
await api.stop();
process.exit(0);
