// The HTTPS admission server: envelope handling, bad input, probes and metrics. Real TLS, verified
// against the CA from the project's own generator with server name kagenti-webhook.kagenti-system.svc.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import type { TestServer } from './helpers.ts';
import { SERVER_NAME, capturingLogger, decodePatch, kubectlPatch, podCreateRequest, podProblems, postTls, startTestServer } from './helpers.ts';
import type { Line } from './helpers.ts';
import { MAX_BODY_BYTES } from '../webhook/limits.ts';
import { until } from './fake-apiserver.ts';
import type { AdmissionRequest } from '../webhook/admission.ts';
import { defaultConfig } from '../webhook/config.ts';
import { silentLogger } from '../webhook/log.ts';
import { startValidation } from '../webhook/validation.ts';
import type { ValidationService } from '../webhook/validation.ts';

const agentPod = () => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    generateName: 'weather-agent-7d9f8b-',
    namespace: 'team-a',
    labels: { 'kagenti.io/type': 'agent', 'pod-template-hash': '7d9f8b' },
    ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'weather-agent-7d9f8b', uid: 'u1', controller: true }],
  },
  spec: {
    serviceAccountName: 'weather-agent',
    containers: [{ name: 'agent', image: 'ghcr.io/example/agent:1', futureField: { keep: true } }],
    someFutureSpecField: [1, 2, 3],
  },
});

function getProbe(port: number, path: string): Promise<{ status: number; text: string; type: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text, type: String(res.headers['content-type']) }));
      })
      .on('error', reject);
  });
}

describe('admission server', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer();
  });
  after(async () => {
    await s.close();
  });

  test('injects an agent pod, echoes the uid, keeps unknown fields, patch applies with kubectl', async () => {
    const pod = agentPod();
    const req = podCreateRequest(pod);
    const res = await s.review('/mutate', req);
    assert.equal(res.uid, req.uid);
    assert.equal(res.allowed, true);
    assert.equal(res.patchType, 'JSONPatch');
    const out = kubectlPatch(pod, decodePatch(res));
    assert.deepEqual(podProblems(out), []);
    assert.deepEqual(out.spec.someFutureSpecField, [1, 2, 3]);
    const agent = out.spec.containers.find((c: any) => c.name === 'agent');
    assert.deepEqual(agent.futureField, { keep: true });
    const names = out.spec.containers.map((c: any) => c.name);
    assert.deepEqual(names, ['spiffe-helper', 'authbridge-proxy', 'agent']);
    assert.equal(out.spec.initContainers[0].name, 'proxy-init');
    const env = Object.fromEntries(out.spec.containers[1].env.map((e: any) => [e.name, e.value]));
    assert.equal(env.SPIFFE_ID, 'spiffe://cluster.local/ns/team-a/sa/weather-agent');
    assert.equal(env.SPIRE_ENABLED, 'true');
    assert.equal(env.MTLS_MODE, 'permissive');
    const status = JSON.parse(out.metadata.annotations['kagenti.io/authbridge-status']);
    assert.deepEqual(status.containers, ['spiffe-helper', 'authbridge-proxy']);
    assert.deepEqual(status.initContainers, ['proxy-init']);
  });

  test('objects it does not handle are allowed unchanged', async () => {
    const notPod = await s.review('/mutate', {
      ...podCreateRequest(agentPod()),
      kind: { group: 'apps', version: 'v1', kind: 'Deployment' },
    });
    assert.equal(notPod.allowed, true);
    assert.equal(notPod.patch, undefined);
    const update = await s.review('/mutate', { ...podCreateRequest(agentPod()), operation: 'UPDATE', oldObject: agentPod() });
    assert.equal(update.allowed, true);
    assert.equal(update.patch, undefined);
    const eviction = await s.review('/mutate', { ...podCreateRequest(agentPod()), subResource: 'eviction' });
    assert.equal(eviction.patch, undefined);
    const plain = agentPod();
    plain.metadata.labels = { app: 'web' } as any;
    const notAgent = await s.review('/mutate', podCreateRequest(plain));
    assert.equal(notAgent.allowed, true);
    assert.equal(notAgent.patch, undefined);
  });

  test('dry-run requests get the same answer', async () => {
    const res = await s.review('/mutate', { ...podCreateRequest(agentPod()), dryRun: true });
    assert.equal(res.allowed, true);
    assert.ok(res.patch);
  });

  const bad: [string, string | Buffer, RegExp][] = [
    ['non-JSON', 'this is not json', /not valid JSON/],
    ['empty body', '', /empty/],
    ['a JSON array', '[1,2,3]', /JSON object/],
    ['wrong apiVersion', JSON.stringify({ apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', request: { uid: 'x' } }), /apiVersion/],
    ['wrong kind', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'Pod' }), /AdmissionReview/],
    ['missing request', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }), /no request/],
    [
      'missing uid',
      JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { kind: { kind: 'Pod' }, operation: 'CREATE' } }),
      /uid/,
    ],
    [
      // the API server matches the answer to its request by uid: an empty one matches nothing
      'an empty uid',
      JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: '', kind: { kind: 'Pod' }, operation: 'CREATE' } }),
      /^request\.uid is missing or not a string$/,
    ],
    ['deeply nested JSON', '['.repeat(200_000) + ']'.repeat(200_000), /JSON/],
    [
      'an operation the API server never sends',
      JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'x', kind: { kind: 'Pod' }, operation: 'PATCH' } }),
      /operation must be one of CREATE, UPDATE, DELETE, CONNECT, got "PATCH"/,
    ],
    // what the client sent is quoted at most 40 characters long, in the answer and in the log line
    ['a 2 MB kind', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'x'.repeat(2_000_000) }), /^expected kind AdmissionReview, got "x{40}" \(cut\)$/],
    ['a 2 MB apiVersion', JSON.stringify({ apiVersion: 'y'.repeat(2_000_000), kind: 'AdmissionReview' }), /^expected apiVersion admission\.k8s\.io\/v1, got "y{40}" \(cut\); configure/],
    ['a deeply nested kind', `{"apiVersion":"admission.k8s.io/v1","kind":${'['.repeat(5000)}${']'.repeat(5000)}}`, /^expected kind AdmissionReview, got an array$/],
  ];
  for (const [label, body, pattern] of bad) {
    test(`400 with a JSON error body: ${label}`, async () => {
      const res = await s.post('/mutate', body);
      assert.equal(res.status, 400, res.text);
      assert.match(res.body.error, pattern);
      assert.ok(res.text.length < 400, `a ${res.text.length}-byte answer`);
      assert.doesNotMatch(res.text, /\n\s+at /, 'no stack trace');
    });
  }

  test('an UPDATE of an object being deleted too deeply nested to compare is checked as a changed one: a clean answer, never a 500', async () => {
    // an UPDATE of an object being deleted compares the old and new object (only bookkeeping changed?): 5,000 levels
    // overflow that comparison, which then counts as a change, so the object is checked as any other update is
    const deep = `${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}`;
    const update = (kind: string, group: string, obj: string) =>
      `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"deep-${kind}","kind":{"group":"${group}","version":"v1","kind":"${kind}"},"operation":"UPDATE","object":${obj},"oldObject":${obj}}}`;
    const deleting = '"namespace":"team-a","deletionTimestamp":"2026-01-01T00:00:00Z"';
    // a Secret that is no Helm record (no type) and a ConfigMap that is neither a record nor kagent's: nothing to check
    for (const kind of ['Secret', 'ConfigMap']) {
      const md = `{"name":"sh.helm.release.v1.x.v1",${deleting},"labels":{"owner":"helm"}}`;
      const res = await s.post('/validate', update(kind, '', `{"kind":"${kind}","metadata":${md},"data":${deep}}`));
      assert.equal(res.status, 200, res.text.slice(0, 200));
      assert.equal(res.body.response.allowed, true, kind);
    }
    // an agent Deployment on the node's network: denied by its rule
    const spec = `{"serviceAccountName":"deep-sa","hostNetwork":true,"containers":[{"name":"a","image":"x","extra":${deep}}]}`;
    const dep = `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"deep",${deleting}},"spec":{"template":{"metadata":{"labels":{"kagenti.io/type":"agent"}},"spec":${spec}}}}`;
    const res = await s.post('/validate', update('Deployment', 'apps', dep));
    assert.equal(res.status, 200, res.text.slice(0, 200));
    assert.equal(res.body.response.allowed, false);
    assert.equal(res.body.response.status.code, 403);
    assert.match(res.body.response.status.message, /^\[host-network\] Deployment team-a\/deep: /);
    assert.equal((await s.review('/mutate', podCreateRequest(agentPod()))).allowed, true);
  });

  test('requests the HTTP parser refuses get a JSON error too, and the connection closes', async () => {
    const raw = (request: string) => rawRequest(s, request);
    const cases: [string, number, RegExp][] = [
      ['POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n', 400, /malformed HTTP request \(HPE_/],
      ['POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400, /malformed HTTP request/],
      ['POST /mutate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 400, /malformed HTTP request/],
      [`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431, /request headers are too large/],
    ];
    const counted = async (status: number) => {
      const m = (await getProbe(s.server.probePort, '/metrics')).text.match(new RegExp(`^kagenti_webhook_http_client_errors_total\\{status="${status}"\\} (\\d+)$`, 'm'));
      return m ? Number(m[1]) : 0;
    };
    const before = { 400: await counted(400), 431: await counted(431), 404: await counted(404) };
    for (const [request, status, pattern] of cases) {
      const answer = await raw(request);
      const [head, body] = answer.split('\r\n\r\n');
      assert.match(head!, new RegExp(`^HTTP/1\\.1 ${status} `), answer.slice(0, 200));
      assert.match(head!, /\r\nContent-Type: application\/json; charset=utf-8\r\n/);
      assert.match(head!, /\r\nConnection: close/);
      assert.match(JSON.parse(body!).error, pattern);
    }
    // a path no webhook configuration should use (a typo in clientConfig.service.path): a 404, counted too
    const misrouted = await s.post('/mutate-pods', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: podCreateRequest(agentPod()) }));
    assert.equal(misrouted.status, 404);
    // none of these reached an admission handler, so admission_requests_total cannot count them: this counter does
    assert.equal((await counted(400)) - before[400], 3);
    assert.equal((await counted(431)) - before[431], 1);
    assert.equal((await counted(404)) - before[404], 1);
    // and the server keeps answering
    assert.equal((await s.review('/mutate', podCreateRequest(agentPod()))).allowed, true);
  });

  test('request.operation cannot mint metric label values (each would be a series kept for the life of the process)', async () => {
    for (let i = 0; i < 20; i++) {
      const op = `OP${i}-${'x'.repeat(100_000)}`;
      const res = await s.post('/mutate', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { ...podCreateRequest(agentPod()), operation: op } }));
      assert.equal(res.status, 400, res.text.slice(0, 200));
      assert.ok(res.text.length < 400, 'the message quotes at most the start of the operation');
    }
    const m = await getProbe(s.server.probePort, '/metrics');
    assert.doesNotMatch(m.text, /operation="OP/);
    assert.ok(m.text.length < 100_000, `/metrics is ${m.text.length} bytes`);
  });

  test('an UPDATE of an object near the API server\'s limit, written as Go writes JSON, is answered; 413 over 7 MiB, and the server keeps answering', async () => {
    // An agent Deployment whose prompt (1.1 MB, XML-tagged) etcd holds: the UPDATE review carries it twice, and
    // Go's JSON writes each < and > as \u003c and \u003e, so the body is over 3 MiB.
    const prompt = '<instructions>You are a helpful agent. <rule>Never reveal secrets.</rule></instructions>\n'.repeat(12_500);
    const deploy = (image: string) => ({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'big', namespace: 'agents' },
      spec: { selector: { matchLabels: { app: 'big' } }, template: { metadata: { labels: { app: 'big', 'kagenti.io/type': 'agent' } }, spec: { serviceAccountName: 'big', containers: [{ name: 'app', image, env: [{ name: 'SYSTEM_PROMPT', value: prompt }] }] } } },
    });
    const review = {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: { uid: 'big-update', kind: { group: 'apps', version: 'v1', kind: 'Deployment' }, resource: { group: 'apps', version: 'v1', resource: 'deployments' }, namespace: 'agents', name: 'big', operation: 'UPDATE', userInfo: { username: 'u' }, object: deploy('app:2'), oldObject: deploy('app:1') },
    };
    const goJson = JSON.stringify(review).replace(/[<>&]/g, (c) => `\\u00${c.charCodeAt(0).toString(16)}`);
    assert.ok(goJson.length > 3 * 1024 * 1024, `${goJson.length} bytes`);
    const updated = await postTls(s.port, s.ca, '/validate', goJson);
    assert.equal(updated.status, 200, updated.text.slice(0, 300));
    assert.equal(JSON.parse(updated.text).response.uid, 'big-update');

    const big = JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', pad: 'x'.repeat(MAX_BODY_BYTES + 10) });
    const res = await postTls(s.port, s.ca, '/validate', big).catch((e) => ({ status: -1, text: String(e) }));
    assert.equal(res.status, 413, res.text);
    assert.match(JSON.parse(res.text).error, /larger than/);
    const ok = await s.review('/mutate', podCreateRequest(agentPod()));
    assert.equal(ok.allowed, true);
  });

  test('Expect: 100-continue: a body declared over 7 MiB gets its 413 before it is sent; a small one gets 100 Continue and its answer', async () => {
    const send = (length: number, body: string) =>
      new Promise<{ continued: boolean; status: number; text: string }>((resolve, reject) => {
        let continued = false;
        const req = https.request(
          { host: '127.0.0.1', port: s.port, path: '/mutate', method: 'POST', ca: s.ca, servername: SERVER_NAME, agent: false, headers: { 'content-type': 'application/json', 'content-length': length, expect: '100-continue' } },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => resolve({ continued, status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
          },
        );
        req.on('continue', () => {
          continued = true;
          req.end(body);
        });
        req.on('error', reject);
        req.flushHeaders();
      });
    const big = await send(MAX_BODY_BYTES + 1, '');
    assert.deepEqual([big.continued, big.status], [false, 413], big.text);
    assert.match(JSON.parse(big.text).error, /larger than/);
    const body = JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: podCreateRequest(agentPod()) });
    const small = await send(Buffer.byteLength(body), body);
    assert.deepEqual([small.continued, small.status], [true, 200], small.text);
    assert.equal(JSON.parse(small.text).response.allowed, true);
  });

  test('a chunked body (no Content-Length) is limited as it streams: MAX_BODY_BYTES + 1 bytes get the 413, MAX_BODY_BYTES exactly do not', async () => {
    // every other 413 test declares its length, which the server refuses before reading: this one only counts
    const chunked = (size: number) =>
      new Promise<{ status: number; text: string }>((resolve, reject) => {
        const req = https.request(
          { host: '127.0.0.1', port: s.port, path: '/validate', method: 'POST', ca: s.ca, servername: SERVER_NAME, agent: false, headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
          },
        );
        req.on('error', reject);
        // in 64 KiB chunks, the last one short, so the limit is crossed by the last byte
        const piece = Buffer.alloc(64 * 1024, 32);
        for (let left = size; left > 0; left -= piece.length) req.write(left >= piece.length ? piece : piece.subarray(0, left));
        req.end();
      });
    const over = await chunked(MAX_BODY_BYTES + 1);
    assert.equal(over.status, 413, over.text);
    assert.match(JSON.parse(over.text).error, /larger than/);
    // at the limit the body is read and judged (all spaces: not an AdmissionReview, so a 400; only not a 413 matters)
    const at = await chunked(MAX_BODY_BYTES);
    assert.ok(at.status > 0 && at.status !== 413, `${at.status} ${at.text}`);
    assert.doesNotMatch(at.text, /larger than/);
  });

  test('a compressed body (Content-Encoding gzip) gets a 415 that says to send it uncompressed, counted as bad-request, and the server keeps answering', async () => {
    const { gzipSync } = await import('node:zlib');
    const badRequests = async () => {
      const m = (await getProbe(s.server.probePort, '/metrics')).text.match(/^kagenti_webhook_admission_requests_total\{webhook="mutate",operation="unknown",result="bad-request"\} (\d+)$/m);
      return m ? Number(m[1]) : 0;
    };
    const before = await badRequests();
    const body = gzipSync(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: podCreateRequest(agentPod()) }));
    const res = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = https.request(
        { host: '127.0.0.1', port: s.port, path: '/mutate', method: 'POST', ca: s.ca, servername: SERVER_NAME, agent: false, headers: { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': body.length } },
        (r) => {
          const chunks: Buffer[] = [];
          r.on('data', (c) => chunks.push(c));
          r.on('end', () => resolve({ status: r.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    assert.equal(res.status, 415, res.text);
    assert.match(JSON.parse(res.text).error, /^request body has Content-Encoding "gzip", which the webhook does not read: send the AdmissionReview uncompressed/);
    // counted as the metric's help (and README) say: bad-request, for a 400 or a 415
    assert.equal(await badRequests(), before + 1);
    assert.match((await getProbe(s.server.probePort, '/metrics')).text, /^# HELP kagenti_webhook_admission_requests_total .*bad-request for a 400 or a 415 /m);
    // identity is no encoding at all
    const plain = JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: podCreateRequest(agentPod()) });
    const ok = await new Promise<number>((resolve, reject) => {
      const req = https.request(
        { host: '127.0.0.1', port: s.port, path: '/mutate', method: 'POST', ca: s.ca, servername: SERVER_NAME, agent: false, headers: { 'content-type': 'application/json', 'content-encoding': 'Identity', 'content-length': Buffer.byteLength(plain) } },
        (r) => {
          r.resume();
          r.on('end', () => resolve(r.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.end(plain);
    });
    assert.equal(ok, 200);
  });

  test('a pod with unexpected types in its fields is denied cleanly', async () => {
    const hostile: any[] = [
      { ...agentPod(), spec: { containers: 'agent' } },
      { ...agentPod(), spec: { containers: [{ name: 42 }] } },
      { ...agentPod(), spec: { containers: [{ name: 'a', ports: { containerPort: 1 } }] } },
      { ...agentPod(), metadata: { labels: { 'kagenti.io/type': 'agent' }, annotations: { 'kagenti.io/authbridge-mode': 7 } } },
      { ...agentPod(), spec: { ...agentPod().spec, hostNetwork: 'yes' } },
    ];
    for (const pod of hostile) {
      const res = await s.review('/mutate', podCreateRequest(pod, 'team-a'));
      assert.equal(res.allowed, false, JSON.stringify(pod));
      assert.match(res.status.message, /^\[malformed-object\] Pod team-a\//);
    }
    const wrongObject = await s.post('/mutate', {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: { ...podCreateRequest(agentPod()), object: 'a string' },
    });
    assert.equal(wrongObject.status, 400);
  });

  test('annotations over the 256 KiB Kubernetes allows are denied with the fix; just under the limit is injected', async () => {
    const base = agentPod();
    const withAnnotations = (annotations: Record<string, string>) => ({ ...base, metadata: { ...base.metadata, annotations } });
    const tooLarge = [
      withAnnotations({ 'kubectl.kubernetes.io/last-applied-configuration': 'x'.repeat(300_000) }),
      // many small ones: the API server counts keys and values together
      withAnnotations(Object.fromEntries(Array.from({ length: 40_000 }, (_, i) => [`a${i}`, 'v']))),
    ];
    for (const pod of tooLarge) {
      const res = await s.review('/mutate', podCreateRequest(pod, 'team-a'));
      assert.equal(res.allowed, false);
      assert.match(res.status.message, /^\[malformed-object\] Pod team-a\/\S+: metadata\.annotations hold more than 262144 bytes, the most Kubernetes allows/);
      assert.match(res.status.message, /Fix: move large values out of the annotations/);
      assert.ok(!res.patch, 'no patch with a denial');
    }
    const underLimit = withAnnotations({ 'kubectl.kubernetes.io/last-applied-configuration': 'x'.repeat(250_000) });
    const ok = await s.review('/mutate', podCreateRequest(underLimit, 'team-a'));
    assert.equal(ok.allowed, true);
    assert.ok(ok.patch, 'a pod whose annotations are within the limit is injected');
    // just under the limit before injection, over it with the annotations injection adds: denied, not admitted
    // into a rejection by the API server after the webhooks
    const key = 'kubectl.kubernetes.io/last-applied-configuration';
    const edge = withAnnotations({ [key]: 'x'.repeat(262_144 - key.length - 100) });
    const over = await s.review('/mutate', podCreateRequest(edge, 'team-a'));
    assert.equal(over.allowed, false);
    assert.match(over.status.message, /^\[malformed-object\] Pod team-a\/\S+: metadata\.annotations would hold \d+ bytes with the injection's own \(kagenti\.io\/authbridge-status and others\), more than the 262144 Kubernetes allows/);
    assert.ok(!over.patch);
  });

  test('unknown routes answer JSON 404; probes answer on HTTPS', async () => {
    const res = await s.post('/nope', '{}');
    assert.equal(res.status, 404);
    assert.ok(res.body.error);
  });

  test('probe port: healthz, readyz, metrics with the documented names', async () => {
    const p = s.server.probePort;
    assert.equal((await getProbe(p, '/healthz')).status, 200);
    assert.equal((await getProbe(p, '/readyz')).status, 200);
    const m = await getProbe(p, '/metrics');
    assert.equal(m.status, 200);
    assert.match(m.type, /text\/plain/);
    for (const name of [
      'kagenti_webhook_admission_requests_total',
      'kagenti_webhook_admission_duration_seconds_bucket',
      'kagenti_webhook_injections_total',
      'kagenti_webhook_injection_skipped_total',
    ])
      assert.ok(m.text.includes(name), `metrics lack ${name}`);
    assert.match(m.text, /kagenti_webhook_admission_duration_seconds_bucket\{le="0.0005",webhook="mutate",object="pod"\}/);
    assert.match(m.text, /kagenti_webhook_admission_duration_seconds_bucket\{le="5",webhook="mutate",object="pod"\}/);
    assert.match(m.text, /kagenti_webhook_admission_requests_total\{webhook="mutate",operation="CREATE",result="patched"\} [1-9]/);
    assert.match(m.text, /kagenti_webhook_injections_total\{mode="proxy-sidecar"\} [1-9]/);
    assert.match(m.text, /kagenti_webhook_injection_skipped_total\{reason="not-agent"\} [1-9]/);
    // process and runtime metrics, as prom-client names them
    for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_p99_seconds'])
      assert.match(m.text, new RegExp(`^${name} [0-9.e+-]+$`, 'm'), `metrics lack ${name}`);
    assert.match(m.text, /^# TYPE nodejs_gc_duration_seconds histogram$/m);
    // a second server in the same process registers them no second time
    const other = await startTestServer();
    await other.close();
    assert.equal((await getProbe(p, '/metrics')).text.match(/^# TYPE process_resident_memory_bytes /gm)?.length, 1);
  });

  test('after SIGTERM-style not-ready, /readyz answers 503 while admissions still work', async () => {
    const other = await startTestServer();
    try {
      other.server.setNotReady();
      const r = await getProbe(other.server.probePort, '/readyz');
      assert.equal(r.status, 503);
      const res = await other.review('/mutate', podCreateRequest(agentPod()));
      assert.equal(res.allowed, true);
    } finally {
      await other.close();
    }
  });
});

describe('listening on every address (the Deployment passes --host ::)', () => {
  const probe = (host: string, port: number) =>
    new Promise<number>((resolve, reject) => {
      http.get({ host, port, path: '/healthz', agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on('error', reject);
    });
  /** The real server on `::`, ports chosen by the system; `onHttpsServer` as startServer takes it. */
  async function startOnAll(onHttpsServer?: (s: https.Server) => void) {
    const { startServer } = await import('../webhook/server.ts');
    const { defaultConfig } = await import('../webhook/config.ts');
    const { startValidation } = await import('../webhook/validation.ts');
    const { silentLogger } = await import('../webhook/log.ts');
    const { testCerts } = await import('./helpers.ts');
    const certs = await testCerts();
    const config = defaultConfig();
    const log = silentLogger();
    const validation = await startValidation({ config, log, cluster: 'none' });
    const server = await startServer({ config, log, validation, host: '::', port: 0, probePort: 0, tls: { cert: certs.tlsCert, key: certs.tlsKey }, onHttpsServer });
    return {
      server,
      ca: certs.caCert,
      close: async () => {
        await server.close(100);
        await validation.close();
      },
    };
  }

  test(':: answers over IPv4 and IPv6', async () => {
    const { server, close } = await startOnAll();
    try {
      assert.equal(await probe('127.0.0.1', server.probePort), 200);
      assert.equal(await probe('::1', server.probePort), 200);
      assert.equal((server.https.address() as { address: string }).address, '::');
    } finally {
      await close();
    }
  });

  test('on a node whose kernel has no IPv6, :: falls back to 0.0.0.0 instead of failing to start', async () => {
    // stands in for the kernel: listening on an IPv6 address fails as it does with ipv6.disable=1
    const noIpv6 = (s: http.Server) => {
      const listen = s.listen.bind(s) as (...args: unknown[]) => http.Server;
      (s as unknown as { listen: (...args: unknown[]) => http.Server }).listen = (...args: unknown[]) => {
        if (args[1] === '::') {
          process.nextTick(() => s.emit('error', Object.assign(new Error('listen EAFNOSUPPORT: address family not supported :::0'), { code: 'EAFNOSUPPORT' })));
          return s;
        }
        return listen(...args);
      };
    };
    const { server, ca, close } = await startOnAll((s) => noIpv6(s));
    try {
      assert.equal((server.https.address() as { address: string }).address, '0.0.0.0');
      const review = { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: podCreateRequest({ metadata: { name: 'x' }, spec: { containers: [{ name: 'a', image: 'b' }] } }) };
      const res = await postTls(server.port, ca, '/mutate', JSON.stringify(review));
      assert.equal(res.status, 200, res.text);
      assert.equal(JSON.parse(res.text).response.allowed, true);
    } finally {
      await close();
    }
  });
});


test('fail closed over HTTPS: a handler that throws (in /validate, inside validation, or in /mutate) is a 500 denial, never allowed', async () => {
  const config = defaultConfig();
  const real = await startValidation({ config, log: silentLogger(), cluster: 'none' });
  const boom = () => {
    throw new Error('cache exploded');
  };
  // each through the server factory, with one validation dependency that fails
  const failing: [string, '/mutate' | '/validate', Partial<ValidationService>][] = [
    // the server's own catch (answerAdmission): validate() itself throws
    ['validate throws', '/validate', { answer: undefined, validate: boom }],
    // validation's catch: the object cannot be read while it is being checked
    [
      'the object cannot be read',
      '/validate',
      {
        answer: undefined,
        validate: (req: AdmissionRequest) => real.validate({ ...req, object: { ...req.object, get spec(): never { return boom(); } } }),
      },
    ],
    // /mutate: the namespace's labels cannot be read
    ['namespaceLabels throws', '/mutate', { namespaceLabels: boom }],
  ];
  try {
    for (const [label, path, override] of failing) {
      const s = await startTestServer(config, { ...real, ...override, close: () => {} } as ValidationService);
      try {
        const pod = agentPod();
        const r = await s.post(path, { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: podCreateRequest(pod) });
        assert.equal(r.status, 200, `${label}: ${r.text}`);
        const res = r.body.response;
        assert.equal(res.allowed, false, `${label}: ${r.text}`);
        assert.deepEqual([res.status.code, res.status.reason], [500, 'InternalError'], label);
        assert.match(res.status.message, /^\[internal-error\] Pod team-a\/weather-agent-7d9f8b-<generated>: the webhook could not evaluate this object.* It is denied rather than admitted unchecked\./, label);
        assert.equal(res.patch, undefined, label);
        assert.doesNotMatch(r.text, /cache exploded|\n\s+at /, `${label}: no error text or stack in the answer`);
      } finally {
        await s.close();
      }
    }
  } finally {
    await real.close();
  }
});

/** Writes raw bytes to the server over TLS and resolves with everything it answers until it closes. */
function rawRequest(s: { port: number; ca: string | Buffer }, request: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: s.port, ca: s.ca, servername: SERVER_NAME }, () => socket.write(request));
    let got = '';
    socket.setEncoding('utf8');
    socket.on('data', (d) => (got += d));
    socket.on('end', () => resolve(got));
    socket.on('error', reject);
  });
}
test('requests refused before a handler (404, 400, 431) are logged in one warning line a minute at most: the count by status and the last one\'s status, method, path (cut) and peer', async () => {
  const { log, lines } = capturingLogger();
  const everyMs = 1500;
  const s = await startTestServer(undefined, undefined, { log, clientErrorReportMs: everyMs });
  const raw = (request: string) => rawRequest(s, request);
  const reported = () => lines().filter((l: Line) => l.level === 40 && /refused before a handler/.test(l.msg));
  try {
    // a typo in clientConfig.service.path: reported at once, naming the path called
    assert.equal((await s.post('/mutate-pods', '{}')).status, 404);
    await until(() => reported().length === 1, 'the first refusal at once');
    const first = reported()[0]!;
    assert.deepEqual([first.status, first.method, first.path, first.remote, first.requests], [404, 'POST', '/mutate-pods', '127.0.0.1', 1]);
    assert.match(first.msg, /^1 request on the admission port refused before a handler since start-up \(the last: 404 POST \/mutate-pods from 127\.0\.0\.1\)\. 404: a path or method/);
    // more within the interval wait for it: one line with the count
    assert.match(await raw('POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'), /^HTTP\/1\.1 400 /);
    assert.match(await raw(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`), /^HTTP\/1\.1 431 /);
    const long = `/${'p'.repeat(5000)}`;
    assert.equal((await s.post(long, '{}')).status, 404);
    assert.equal(reported().length, 1, 'the rest wait for the interval');
    await until(() => reported().length === 2, 'the summary after the interval');
    const second = reported()[1]!;
    assert.equal(second.requests, 3);
    assert.deepEqual(second.byStatus, { 400: 1, 431: 1, 404: 1 });
    assert.deepEqual([second.status, second.method, second.remote], [404, 'POST', '127.0.0.1']);
    assert.equal(second.path, `/${'p'.repeat(199)}...(5001 characters)`, 'the path cut to 200 characters');
    // a refusal the parser saw the request line of names it (the 400 of Content-Length with Transfer-Encoding)
    assert.match(await raw('POST /validate HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'), /^HTTP\/1\.1 400 /);
  } finally {
    await s.close();
  }
  // what was not reported yet is written at shutdown
  const last = reported().at(-1)!;
  assert.deepEqual([last.status, last.method, last.path, last.requests], [400, 'POST', '/validate', 1]);
});

test('log keys: 400, 413 and 415 lines name the webhook (not the path) and carry err as {type, message}; /mutate and /validate both say skipped', async () => {
  const { log, lines } = capturingLogger();
  const s = await startTestServer(undefined, undefined, { log });
  try {
    assert.equal((await s.post('/validate', '')).status, 400);
    assert.equal((await postTls(s.port, s.ca, '/mutate', Buffer.from('{}'), { 'content-encoding': 'gzip' })).status, 415);
    assert.equal((await s.post('/validate', Buffer.alloc(MAX_BODY_BYTES + 1, 32))).status, 413);
    const bad = lines().find((l) => l.msg === 'bad admission request')!;
    assert.deepEqual([bad.webhook, bad.status, bad.error], ['validate', 400, undefined]);
    assert.deepEqual(bad.err, { type: 'AdmissionError', message: 'request body is empty; expected an AdmissionReview' });
    const compressed = lines().find((l) => l.msg === 'request body compressed')!;
    assert.deepEqual([compressed.webhook, compressed.status, compressed.path], ['mutate', 415, undefined]);
    const large = lines().find((l) => l.msg === 'request body too large')!;
    assert.deepEqual([large.webhook, large.status, large.path], ['validate', 413, undefined]);
    // a skipped object: the same key at both webhooks
    const plain = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web', namespace: 'team-a' }, spec: { containers: [{ name: 'a', image: 'x' }] } };
    await s.review('/mutate', podCreateRequest(plain));
    const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings', namespace: 'team-a' }, data: {} };
    await s.review('/validate', { uid: 'cm', kind: { group: '', version: 'v1', kind: 'ConfigMap' }, namespace: 'team-a', name: 'settings', operation: 'CREATE', object: cm });
    const admissions = lines().filter((l) => l.msg === 'admission');
    assert.deepEqual(
      admissions.map((l) => [l.webhook, l.skipped, l.skip]),
      [
        ['mutate', 'not-agent', undefined],
        ['validate', 'not a token-review ConfigMap', undefined],
      ],
    );
  } finally {
    await s.close();
  }
});
