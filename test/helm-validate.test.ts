// Helm release records through HTTPS /validate: the lint engine runs over the release's manifest before
// Helm touches any resource; undecodable records are allowed with a warning.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfig } from '../webhook/config.ts';
import { encodeReleaseForSecret } from '../webhook/helm-release.ts';
import type { TestServer } from './helpers.ts';
import { joinWarnings, ROOT, startTestServer } from './helpers.ts';

const KAGENT = readFileSync(join(ROOT, 'test/fixtures/lint/kagent-render.yaml'), 'utf8');
let s: TestServer;
before(async () => {
  s = await startTestServer(parseConfig('tokenReview:\n  issuer: https://oidc.eks.us-east-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF\n'));
});
after(async () => {
  await s.close();
});

function secretRequest(release: string, status = 'pending-upgrade', operation = 'CREATE') {
  return {
    uid: `helm-${status}-${operation}`,
    kind: { group: '', version: 'v1', kind: 'Secret' },
    resource: { group: '', version: 'v1', resource: 'secrets' },
    namespace: 'kagent',
    name: 'sh.helm.release.v1.kagent.v3',
    operation,
    userInfo: { username: 'ci-deployer' },
    object: {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'helm.sh/release.v1',
      metadata: { name: 'sh.helm.release.v1.kagent.v3', namespace: 'kagent', labels: { owner: 'helm', name: 'kagent', status, version: '3' } },
      data: { release },
    },
  };
}

test('a pending upgrade with K8S_TOKEN_REVIEW: true (boolean) in its manifest is denied before anything is applied', async () => {
  const release = encodeReleaseForSecret({ name: 'kagent', namespace: 'kagent', version: 3, info: { status: 'pending-upgrade' }, manifest: KAGENT });
  const res = await s.review('/validate', secretRequest(release));
  assert.equal(res.allowed, false);
  assert.equal(res.status.code, 403);
  assert.equal(res.status.reason, 'Forbidden');
  assert.match(res.status.message, /^\[token-review-value\] ConfigMap kagent\/kagent-enterprise-config \(Helm release kagent\/kagent, template kagent\/templates\/enterprise-config\.yaml\)/);
});

test('a superseded record is not checked (Helm must always be able to rewrite history)', async () => {
  const release = encodeReleaseForSecret({ name: 'kagent', namespace: 'kagent', version: 3, info: { status: 'superseded' }, manifest: KAGENT });
  const res = await s.review('/validate', secretRequest(release, 'superseded', 'UPDATE'));
  assert.equal(res.allowed, true);
});

test('an undecodable record is allowed with a warning', async () => {
  const res = await s.review('/validate', secretRequest('!!! not base64 !!!'));
  assert.equal(res.allowed, true);
  assert.ok(res.warnings?.length >= 1);
  assert.match(joinWarnings(res.warnings), /^\[helm-release-unchecked\] Helm release record .* was not checked: .* Fix: run kagenti-webhook lint on the chart's render/);
});

test('a clean release passes', async () => {
  const fixed = KAGENT.replace(/K8S_TOKEN_REVIEW: true/, 'K8S_TOKEN_REVIEW: "true"');
  assert.notEqual(fixed, KAGENT);
  const release = encodeReleaseForSecret({ name: 'kagent', namespace: 'kagent', version: 3, info: { status: 'pending-upgrade' }, manifest: fixed });
  const res = await s.review('/validate', secretRequest(release));
  assert.equal(res.allowed, true, res.status?.message);
});

test('Helm records are timed apart from pods: admission_duration_seconds{object="helm-release"}', async () => {
  const { registry } = await import('../webhook/metrics.ts');
  const count = async (object: string): Promise<number> => {
    const m = (await registry.getSingleMetric('kagenti_webhook_admission_duration_seconds')!.get()).values;
    return m.filter((v) => (v as { metricName?: string }).metricName?.endsWith('_count') && v.labels.object === object && v.labels.webhook === 'validate').reduce((a, v) => a + v.value, 0);
  };
  const [helm0, other0] = [await count('helm-release'), await count('other')];
  const release = encodeReleaseForSecret({ name: 'kagent', namespace: 'kagent', version: 3, info: { status: 'pending-upgrade' }, manifest: KAGENT });
  await s.review('/validate', secretRequest(release));
  assert.equal(await count('helm-release'), helm0 + 1);
  assert.equal(await count('other'), other0, 'a Secret checked as a Helm record is not counted as "other"');
});
