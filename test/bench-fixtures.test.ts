// The benchmark's AdmissionReviews follow what the API server sends for a Pod CREATE, managedFields included
// (recorded before the admission chain since Kubernetes 1.18). The webhook must leave those fields alone: a
// patch that drops or rewrites them breaks server-side apply for the pod (kubernetes/kubernetes#96688).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FIXTURES, fixture } from '../bench/fixtures.ts';
import type { AdmissionRequest } from '../webhook/admission.ts';
import { defaultConfig } from '../webhook/config.ts';
import { mutate } from '../webhook/mutate.ts';

test('fixtures carry the creating manager\'s managedFields (sorted fieldsV1, no admission-plugin additions); lean ones do not', () => {
  const managers: Record<string, string> = { small: 'kubectl-client-side-apply', deployment: 'kube-controller-manager', env1500: 'kubectl-client-side-apply' };
  for (const f of FIXTURES) {
    const pod = f.review('u').request.object;
    const [entry, ...rest] = pod.metadata.managedFields;
    assert.equal(rest.length, 0);
    assert.equal(entry.manager, managers[f.name]);
    assert.equal(entry.fieldsType, 'FieldsV1');
    assert.equal(Object.keys(pod.metadata).at(-1), 'managedFields', 'the Go encoder writes managedFields last');
    const spec = entry.fieldsV1['f:spec'];
    assert.deepEqual(Object.keys(spec), [...Object.keys(spec)].sort());
    assert.equal(spec['f:tolerations'], undefined, 'tolerations come from an admission plugin, after managedFields');
    const volumes = Object.keys(spec['f:volumes'] ?? {});
    assert.ok(!volumes.some((k) => k.includes('kube-api-access')), 'the token volume comes from an admission plugin');
    assert.equal(f.review('u', { lean: true }).request.object.metadata.managedFields, undefined);
  }
  const applied = fixture('small').review('u').request.object.metadata.annotations['kubectl.kubernetes.io/last-applied-configuration'];
  assert.equal(JSON.parse(applied).spec.containers[0].name, 'agent');
  assert.ok(applied.endsWith('\n'));
});

test('the webhook\'s patch never touches metadata.managedFields', () => {
  for (const f of FIXTURES) {
    const request = f.review('u').request as AdmissionRequest;
    const d = mutate(request, { config: defaultConfig() });
    assert.equal(d.result, 'patched', f.name);
    const ops = JSON.parse(Buffer.from(d.response.patch!, 'base64').toString()) as { path: string }[];
    assert.ok(ops.length > 0);
    for (const op of ops) assert.ok(!op.path.startsWith('/metadata/managedFields'), `${f.name}: ${op.path}`);
  }
});

test('the kubectl-applied fixtures come from a person with kubectl apply, the Deployment pod from its controller; lean ones keep the controller', () => {
  for (const name of ['small', 'env1500']) {
    const req = fixture(name).review('u').request;
    assert.equal(req.options.fieldManager, 'kubectl-client-side-apply', name);
    assert.equal(req.options.kind, 'CreateOptions');
    assert.ok(!req.userInfo.username.startsWith('system:'), `${name}: ${req.userInfo.username}`);
    assert.deepEqual(req.userInfo.groups, ['system:authenticated']);
    assert.ok(Object.keys(req.userInfo.extra).length > 0, `${name}: the authenticator's extra fields`);
    // the creating manager in managedFields is the options' field manager, as the API server records it
    assert.equal(req.object.metadata.managedFields[0].manager, req.options.fieldManager);
    const lean = fixture(name).review('u', { lean: true }).request;
    assert.equal(lean.userInfo.username, 'system:serviceaccount:kube-system:replicaset-controller');
    assert.equal(lean.options.fieldManager, undefined);
  }
  const dep = fixture('deployment').review('u').request;
  assert.equal(dep.userInfo.username, 'system:serviceaccount:kube-system:replicaset-controller');
  assert.equal(dep.options.fieldManager, undefined);
  // each review has its own envelope: changing one leaves the next alone
  fixture('small').review('a').request.userInfo.extra.arn.push('x');
  assert.equal(fixture('small').review('b').request.userInfo.extra.arn.length, 1);
});
