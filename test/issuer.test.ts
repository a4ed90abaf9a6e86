// Issuer detection. The discovery document comes from test/fake-apiserver.ts, an in-test stand-in for the
// API server (none can be installed here), reached through a real client-node KubeConfig.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configFromObject } from '../webhook/config.ts';
import { IssuerDetector, classifyIssuer, jwtIssuer } from '../webhook/issuer.ts';
import { registry } from '../webhook/metrics.ts';
import { checkObject } from '../webhook/rules.ts';
import { FakeApiServer, recordingLogger } from './fake-apiserver.ts';

/** A detector on the stand-in API server, in a pod without a service-account token file. */
function detectorWithoutToken(api: FakeApiServer, log: ReturnType<typeof recordingLogger>['log']): IssuerDetector {
  return new IssuerDetector({
    config: configFromObject({}),
    log,
    kubeConfig: api.kubeConfig(),
    readToken: async () => {
      throw Object.assign(new Error('nope'), { code: 'ENOENT' });
    },
  });
}

function jwt(claims: Record<string, unknown>): string {
  const b = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b({ alg: 'RS256', kid: 'k' })}.${b(claims)}.c2lnbmF0dXJl`;
}

test('classifyIssuer: the other partitions and forms of EKS, GKE and AKS, and the internal issuer with its port', () => {
  const id = '0123456789ABCDEF0123456789ABCDEF';
  for (const [url, provider] of [
    [`https://oidc.eks.us-gov-west-1.amazonaws.com/id/${id}`, 'EKS'],
    [`https://oidc.eks.cn-north-1.amazonaws.com.cn/id/${id}/`, 'EKS'],
    [`https://oidc.eks.us-iso-east-1.c2s.ic.gov/id/${id}`, 'EKS'],
    [`https://oidc.eks.us-isob-east-1.sc2s.sgov.gov/id/${id}`, 'EKS'],
    ['https://container.googleapis.com/v1/projects/p/zones/us-central1-a/clusters/c', 'GKE'],
    ['https://chinaeast2.oic.prod-aks.azure.cn/tenant/uid/', 'AKS'],
    ['https://usgovvirginia.oic.prod-aks.azure.us/tenant/uid/', 'AKS'],
  ] as const)
    assert.deepEqual(classifyIssuer(url), { classification: 'external', issuer: url, provider }, url);
  assert.equal(classifyIssuer('https://kubernetes.default.svc.cluster.local:443').classification, 'internal');
  assert.equal(classifyIssuer(`https://oidc.eks.us-east-1.amazonaws.com.evil.example/id/${id}`).classification, 'unknown');
});

test('classifyIssuer: EKS, GKE and AKS patterns are external and named', () => {
  const eks = classifyIssuer('https://oidc.eks.us-west-2.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF');
  assert.deepEqual([eks.classification, eks.provider], ['external', 'EKS']);
  const gke = classifyIssuer('https://container.googleapis.com/v1/projects/p/locations/europe-west1/clusters/c');
  assert.deepEqual([gke.classification, gke.provider], ['external', 'GKE']);
  const aks = classifyIssuer('https://westeurope.oic.prod-aks.azure.com/00000000-0000-0000-0000-000000000000/11111111-1111-1111-1111-111111111111/');
  assert.deepEqual([aks.classification, aks.provider], ['external', 'AKS']);
});

test('classifyIssuer: kubernetes.default.svc[.<domain>] is internal; others use the jwks_uri host rule', () => {
  for (const i of ['https://kubernetes.default.svc', 'https://kubernetes.default.svc.cluster.local', 'https://kubernetes.default.svc.example.internal'])
    assert.equal(classifyIssuer(i).classification, 'internal', i);
  assert.equal(classifyIssuer('https://k8s.example.com', 'https://k8s.example.com/openid/v1/jwks', 'https://k8s.example.com:6443').classification, 'internal');
  assert.equal(classifyIssuer('https://issuer.example.com', 'https://keys.example.net/jwks', 'https://10.0.0.1:6443').classification, 'external');
  assert.equal(classifyIssuer('https://issuer.example.com').classification, 'unknown');
  assert.equal(classifyIssuer('https://kubernetes.default.svc.evil.example.com/x').classification, 'unknown');
  assert.equal(classifyIssuer('not a url', 'also not').classification, 'unknown');
});

test('jwtIssuer reads iss and rejects garbage', () => {
  assert.equal(jwtIssuer(jwt({ iss: 'https://kubernetes.default.svc', sub: 'x' })), 'https://kubernetes.default.svc');
  assert.equal(jwtIssuer(`${jwt({ iss: 'https://a' })}\n`), 'https://a');
  for (const bad of ['', 'a.b', 'a.b.c', jwt({ sub: 'x' }), jwt({ iss: 5 }), 'x.' + 'A'.repeat(100_000) + '.y']) assert.equal(jwtIssuer(bad), undefined);
});

test('detector: config external/internal wins without reading anything', async () => {
  const { log } = recordingLogger();
  let reads = 0;
  const d = new IssuerDetector({ config: configFromObject({ tokenReview: { issuer: 'external' } }), log, kubeConfig: null, readToken: async () => (reads++, '') });
  assert.equal(d.current().classification, 'external');
  await d.start();
  d.stop();
  assert.equal(reads, 0);
});

test('detector: auto takes iss from the token file and exposes it as a metric label', async () => {
  const { log } = recordingLogger();
  const iss = 'https://oidc.eks.eu-central-1.amazonaws.com/id/ABCDEF0123456789ABCDEF0123456789';
  const d = new IssuerDetector({ config: configFromObject({}), log, kubeConfig: null, readToken: async () => jwt({ iss }) });
  const s = await d.refresh();
  assert.deepEqual([s.classification, s.provider, s.source, s.issuer], ['external', 'EKS', 'token', iss]);
  const m = await registry.getSingleMetric('kagenti_webhook_service_account_issuer_info')!.get();
  assert.deepEqual(m.values.map((v) => v.labels), [{ classification: 'external', provider: 'EKS' }]);
});

test('detector: a re-check interval past what a timer can wait (a Config built without the schema) is held to the longest, never 1 ms', async (t) => {
  const { log } = recordingLogger();
  const config = structuredClone(configFromObject({})); // (configs are frozen; a copy is not)
  config.tokenReview.recheckSeconds = 365 * 24 * 3600;
  let reads = 0;
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.name);
  process.on('warning', onWarning);
  t.after(() => process.off('warning', onWarning));
  const d = new IssuerDetector({ config, log, kubeConfig: null, readToken: async () => (reads++, jwt({ iss: 'https://kubernetes.default.svc' })) });
  try {
    await d.start();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(reads, 1, 'only the first detection: an overflowed interval re-checks every 1 ms');
    assert.ok(!warnings.includes('TimeoutOverflowWarning'), warnings.join());
  } finally {
    d.stop();
  }
});

test('detector: no token → discovery document issuer; jwks_uri on the API server host → internal', async () => {
  const api = await new FakeApiServer().start();
  try {
    api.discovery = { issuer: 'https://api.my-cluster.example', jwks_uri: `${api.url}/openid/v1/jwks` };
    const { log } = recordingLogger();
    const d = detectorWithoutToken(api, log);
    let s = await d.refresh();
    assert.deepEqual([s.classification, s.source, s.issuer], ['internal', 'discovery', 'https://api.my-cluster.example']);
    // an issuer can change on a live cluster: the next check sees it
    api.discovery = { issuer: 'https://tokens.example.net', jwks_uri: 'https://tokens.example.net/keys' };
    s = await d.refresh();
    assert.equal(s.classification, 'external');
  } finally {
    await api.stop();
  }
});

test('detector: nothing available → unknown, with the reasons, and a log line saying how to set it', async () => {
  const api = await new FakeApiServer().start();
  try {
    const { log, lines } = recordingLogger();
    const d = detectorWithoutToken(api, log);
    const s = await d.refresh();
    assert.equal(s.classification, 'unknown');
    assert.match(s.error!, /ENOENT/);
    assert.match(s.error!, /HTTP 404/);
    assert.ok(lines.some((l) => l.level === 'warn' && l.msg.includes('set tokenReview.issuer')));
  } finally {
    await api.stop();
  }
});

test('detector: an issuer URL in config is classified by pattern', async () => {
  const { log } = recordingLogger();
  const d = new IssuerDetector({
    config: configFromObject({ tokenReview: { issuer: 'https://container.googleapis.com/v1/projects/p/locations/l/clusters/c' } }),
    log,
    kubeConfig: null,
  });
  const s = await d.refresh();
  assert.deepEqual([s.classification, s.provider, s.source], ['external', 'GKE', 'config']);
});

test('detector: a failed re-check keeps the last known classification, says so once per failure streak, and only a good re-check changes it', async () => {
  // FakeApiServer stands in for the API server: its discovery document can be taken away (HTTP 404), as an API
  // server's discovery GET can fail for a while (5xx, timeout, 404).
  const api = await new FakeApiServer().start();
  try {
    const iss = 'https://oidc.example-idp.com/cluster-1';
    api.discovery = { issuer: iss, jwks_uri: 'https://oidc.example-idp.com/cluster-1/keys' };
    const { log, lines } = recordingLogger();
    const d = new IssuerDetector({ config: configFromObject({}), log, kubeConfig: api.kubeConfig(), readToken: async () => jwt({ iss }) });
    const cm = { kind: 'ConfigMap', metadata: { name: 'kagent-enterprise-config', namespace: 'kagent' }, data: {} };
    const severities = () => checkObject(cm, { config: configFromObject({}), issuer: d.current() }).map((v) => `${v.severity} ${v.rule}`);
    let s = await d.refresh();
    assert.deepEqual([s.classification, s.source], ['external', 'token']);
    const firstCheckedAt = s.checkedAt;
    assert.deepEqual(severities(), ['error token-review-required']);

    api.discovery = null;
    const warnings = () => lines.filter((l) => l.level === 'warn' && l.msg.includes('re-check failed')).length;
    for (let i = 0; i < 3; i++) {
      s = await d.refresh();
      assert.deepEqual(d.current(), { classification: 'external', issuer: iss }, `failed re-check ${i + 1}`);
      assert.equal(s.checkedAt, firstCheckedAt, 'checkedAt stays the last successful check');
      assert.match(s.error!, /HTTP 404/);
      assert.ok(s.failingSince);
      assert.deepEqual(severities(), ['error token-review-required'], 'still denied, not dropped to a warning');
    }
    assert.equal(warnings(), 1, 'one log line for the failure streak, not one per re-check');
    assert.ok(!lines.some((l) => l.msg.includes('issuer unknown')));
    const m = await registry.getSingleMetric('kagenti_webhook_service_account_issuer_info')!.get();
    assert.deepEqual(m.values.map((v) => v.labels), [{ classification: 'external', provider: '' }]);

    // the next good re-check ends the streak; a new streak logs again
    api.discovery = { issuer: iss, jwks_uri: 'https://oidc.example-idp.com/cluster-1/keys' };
    s = await d.refresh();
    assert.deepEqual([s.classification, s.error, s.failingSince], ['external', undefined, undefined]);
    assert.ok(lines.some((l) => l.level === 'info' && l.msg.includes('re-check succeeded again')));
    api.discovery = null;
    await d.refresh();
    assert.equal(warnings(), 2);

    // only a successful re-check changes the classification: here the keys moved onto the API server's host
    api.discovery = { issuer: iss, jwks_uri: `${api.url}/openid/v1/jwks` };
    s = await d.refresh();
    assert.deepEqual([s.classification, s.failingSince], ['internal', undefined]);
    // a successful check whose answer is unknown (no jwks_uri) changes it too: nothing failed
    api.discovery = { issuer: iss };
    s = await d.refresh();
    assert.deepEqual([s.classification, s.error], ['unknown', undefined]);
    // and from unknown a failed re-check stays unknown, with the reason
    api.discovery = null;
    s = await d.refresh();
    assert.equal(s.classification, 'unknown');
    assert.match(s.error!, /HTTP 404/);
  } finally {
    await api.stop();
  }
});
