// bench/apiserver.ts seeds the API server stand-in of the benchmark's runs with cluster state: a small, clean
// cluster the webhook's informers sync, on which the benchmark's admissions are allowed as they are without
// cluster state (the memory run with cluster state must measure the same answers, not denials).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { benchCluster, kubeconfigText } from '../bench/apiserver.ts';
import { FIXTURES } from '../bench/fixtures.ts';
import type { AdmissionRequest } from '../webhook/admission.ts';
import { PATHS, startOnFakeApi, until } from './fake-apiserver.ts';

test('the seeded cluster: agents with their Deployments, ReplicaSets and ServiceAccounts, the token-review ConfigMap, the CSIDriver', () => {
  const c = benchCluster();
  assert.equal(c[PATHS.pods]!.length, 38);
  assert.equal(c[PATHS.deployments]!.length, 20);
  assert.equal(c[PATHS.replicasets]!.length, 20);
  assert.equal(c[PATHS.serviceaccounts]!.length, 20);
  assert.ok(c[PATHS.pods]!.every((p) => p.metadata.labels['kagenti.io/type'] === 'agent'));
  assert.deepEqual(c[PATHS.configmaps]!.map((m) => `${m.metadata.namespace}/${m.metadata.name}=${m.data.K8S_TOKEN_REVIEW}`), ['kagent/kagent-enterprise-config=true']);
  // every pod's owner is a seeded ReplicaSet, and every ReplicaSet's a seeded Deployment
  const rs = new Map(c[PATHS.replicasets]!.map((r) => [r.metadata.uid, r]));
  for (const p of c[PATHS.pods]!) assert.ok(rs.has(p.metadata.ownerReferences[0].uid), p.metadata.name);
  const deps = new Set(c[PATHS.deployments]!.map((d) => `${d.metadata.namespace}/${d.metadata.name}`));
  for (const r of rs.values()) assert.ok(deps.has(`${r.metadata.namespace}/${r.metadata.ownerReferences[0].name}`), r.metadata.name);
  assert.deepEqual(benchCluster(), c, 'the same cluster each call');
  assert.match(kubeconfigText('http://127.0.0.1:1'), /"server": "http:\/\/127\.0\.0\.1:1"/);
});

test('the webhook syncs the seeded cluster, and the benchmark fixtures are allowed at /validate with cluster state', async () => {
  const s = await startOnFakeApi((api) => {
    for (const [path, items] of Object.entries(benchCluster())) api.seed(path, items);
  });
  try {
    await until(() => s.svc.readiness().ready, 'first sync');
    assert.ok((s.svc.readiness().detail.agentClaims as number) > 0);
    for (const f of FIXTURES)
      for (let i = 0; i < 3; i++) {
        const d = s.svc.validate(f.review(`${f.name}-${i}`).request as AdmissionRequest);
        assert.equal(d.response.allowed, true, `${f.name}: ${d.response.status?.message}`);
        assert.deepEqual(d.response.warnings ?? [], [], f.name);
      }
  } finally {
    await s.close();
  }
});
