// Hostile input against the real HTTPS server: random JSON, random malformed AdmissionReviews, deep nesting,
// huge strings, wrong types and prototype-pollution keys. Every answer is a 4xx with a JSON error body or an
// HTTP 200 AdmissionReview (allowed, or a clean denial); never a 5xx, never a stack trace; the server keeps
// serving and nothing leaks onto Object.prototype.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { KubeObject } from '../webhook/admission.ts';
import { fixture, smallAgentPod, wrap } from '../bench/fixtures.ts';
import type { TestServer } from './helpers.ts';
import { startTestServer } from './helpers.ts';
import { MAX_MESSAGE, MAX_WARNING_LINES } from '../webhook/admission.ts';

let srv: TestServer;
before(async () => {
  srv = await startTestServer();
});
after(async () => {
  await srv?.close();
});

const STACK = /\n\s+at .+\(|\bat [\w.<>]+ \(\/|node:internal|\.ts:\d+:\d+|\.js:\d+:\d+/;

interface Answer {
  status: number;
  text: string;
  body: any;
}

/** The invariants of every answer; returns a description of the outcome. */
function checkAnswer(r: Answer, uid?: string): 'rejected' | 'allowed' | 'denied' {
  assert.ok(!STACK.test(r.text), `stack trace in response: ${r.text.slice(0, 500)}`);
  assert.ok(r.status < 500, `HTTP ${r.status}: ${r.text.slice(0, 300)}`);
  assert.ok(r.body !== undefined && typeof r.body === 'object' && r.body !== null, `response is not JSON: ${r.text.slice(0, 200)}`);
  if (r.status >= 400) {
    assert.ok(r.status === 400 || r.status === 413 || r.status === 415, `unexpected status ${r.status}`);
    assert.equal(typeof r.body.error, 'string', `4xx without an error message: ${r.text.slice(0, 200)}`);
    assert.ok(r.body.error.length > 0 && r.body.error.length < 2000, 'error message empty or unbounded');
    return 'rejected';
  }
  assert.equal(r.status, 200);
  assert.equal(r.body.kind, 'AdmissionReview');
  assert.equal(r.body.apiVersion, 'admission.k8s.io/v1');
  const resp = r.body.response;
  assert.equal(typeof resp.allowed, 'boolean');
  if (uid !== undefined) assert.equal(resp.uid, uid);
  if (!resp.allowed) {
    assert.equal(typeof resp.status?.message, 'string');
    // one line per denial, each naming its rule (the last may count the denials not listed)
    for (const line of resp.status.message.split('\n')) assert.match(line, /^\[[a-z-]+\] |^\(\d+ more .* not listed\.\)$/, 'denial line does not name its rule');
    assert.ok(resp.status.message.length <= MAX_MESSAGE, `denial message of ${resp.status.message.length} characters`);
    return 'denied';
  }
  if (resp.warnings !== undefined) {
    assert.ok(resp.warnings.length <= MAX_WARNING_LINES, `${resp.warnings.length} warning lines`);
    for (const w of resp.warnings) assert.ok(typeof w === 'string' && w.length <= 120, `warning line of ${String(w).length} characters`);
  }
  if (resp.patch !== undefined) {
    assert.equal(resp.patchType, 'JSONPatch');
    assert.ok(Array.isArray(JSON.parse(Buffer.from(resp.patch, 'base64').toString('utf8'))));
  }
  return 'allowed';
}

async function stillServing(): Promise<void> {
  const uid = `alive-${Math.random()}`;
  const r = await srv.post('/mutate', fixture('small').review(uid));
  assert.equal(r.status, 200);
  assert.equal(r.body.response.uid, uid);
  assert.equal(r.body.response.allowed, true);
  assert.equal(r.body.response.patchType, 'JSONPatch');
  const h = await srv.post('/validate', fixture('small').review(uid));
  assert.equal(h.status, 200);
}

function assertNoPollution(): void {
  const probe: Record<string, unknown> = {};
  for (const k of ['polluted', 'isAdmin', 'allowed', 'kagenti']) assert.equal(probe[k], undefined, `Object.prototype.${k} was polluted`);
  assert.equal(Object.getOwnPropertyNames(Object.prototype).includes('polluted'), false);
}

// ---------- arbitraries ----------

const hostileKey = fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__');
const anyKey = fc.oneof(fc.string({ maxLength: 10 }), hostileKey);
const leaf = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.string({ maxLength: 30 }),
  fc.constantFrom('', 'agent', 'CREATE', 'Pod', '-1', '1e309', '\u0000', '\ud800', 'kagenti.io/type'),
);
const jsonish: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, tie('arr'), tie('obj')),
  arr: fc.array(tie('value'), { maxLength: 4 }),
  obj: fc.dictionary(anyKey, tie('value'), { maxKeys: 4 }),
})).value;

/** Paths inside a valid AdmissionReview where a hostile value is planted. */
const PATHS: (string | number)[][] = [
  [],
  ['apiVersion'],
  ['kind'],
  ['request'],
  ['request', 'uid'],
  ['request', 'kind'],
  ['request', 'kind', 'kind'],
  ['request', 'kind', 'group'],
  ['request', 'operation'],
  ['request', 'namespace'],
  ['request', 'name'],
  ['request', 'subResource'],
  ['request', 'userInfo'],
  ['request', 'userInfo', 'username'],
  ['request', 'dryRun'],
  ['request', 'object'],
  ['request', 'oldObject'],
  ['request', 'object', 'metadata'],
  ['request', 'object', 'metadata', 'labels'],
  ['request', 'object', 'metadata', 'annotations'],
  ['request', 'object', 'metadata', 'annotations', 'kagenti.io/authbridge-status'],
  ['request', 'object', 'metadata', 'annotations', 'kagenti.io/authbridge-mode'],
  ['request', 'object', 'metadata', 'name'],
  ['request', 'object', 'spec'],
  ['request', 'object', 'spec', 'containers'],
  ['request', 'object', 'spec', 'containers', 0],
  ['request', 'object', 'spec', 'containers', 0, 'name'],
  ['request', 'object', 'spec', 'containers', 0, 'ports'],
  ['request', 'object', 'spec', 'containers', 0, 'ports', 0, 'containerPort'],
  ['request', 'object', 'spec', 'containers', 0, 'env'],
  ['request', 'object', 'spec', 'containers', 0, 'volumeMounts'],
  ['request', 'object', 'spec', 'initContainers'],
  ['request', 'object', 'spec', 'volumes'],
  ['request', 'object', 'spec', 'volumes', 0],
  ['request', 'object', 'spec', 'serviceAccountName'],
  ['request', 'object', 'spec', 'hostNetwork'],
  ['request', 'object', 'spec', 'ephemeralContainers'],
];

function plant(review: KubeObject, path: (string | number)[], value: unknown, remove: boolean): unknown {
  if (path.length === 0) return value;
  let cur: any = review;
  for (let i = 0; i < path.length - 1; i++) {
    const seg = path[i]!;
    if (cur[seg] === null || typeof cur[seg] !== 'object') cur[seg] = typeof path[i + 1] === 'number' ? [] : {};
    cur = cur[seg];
  }
  const last = path[path.length - 1]!;
  if (remove) delete cur[last];
  else cur[last] = value;
  return review;
}

// ---------- tests ----------

test('random JSON documents get a 400 with a JSON error (or a clean answer) and the server keeps serving', async () => {
  await fc.assert(
    fc.asyncProperty(jsonish, async (doc) => {
      const r = await srv.post('/mutate', JSON.stringify(doc) ?? 'null');
      checkAnswer(r);
    }),
    { numRuns: 150 },
  );
  await stillServing();
  assertNoPollution();
});

test('random malformed AdmissionReviews: 4xx or a clean allow/deny, uid echoed, never a 5xx or stack', async () => {
  const outcomes = { rejected: 0, allowed: 0, denied: 0 };
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...PATHS),
      jsonish,
      fc.boolean(),
      fc.constantFrom('/mutate', '/validate'),
      fc.constantFrom('small', 'deployment'),
      async (path, value, remove, endpoint, fx) => {
        const review = fixture(fx).review('hostile-uid');
        const doc = plant(review, path, value, remove);
        const r = await srv.post(endpoint, JSON.stringify(doc) ?? 'null');
        // uid is only echoed when the envelope was usable (200)
        outcomes[checkAnswer(r, r.status === 200 ? ((doc as any)?.request?.uid as string) : undefined)]++;
      },
    ),
    { numRuns: 400 },
  );
  // the generator must actually exercise all three outcomes
  assert.ok(outcomes.rejected > 0 && outcomes.allowed > 0 && outcomes.denied > 0, JSON.stringify(outcomes));
  await stillServing();
  assertNoPollution();
});

test('prototype-pollution keys are plain data: no pollution, no crash, clean answers', async () => {
  const pod = smallAgentPod();
  const bodies = [
    // __proto__ as an own key at every level the server reads
    `{"__proto__":{"polluted":true},"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"__proto__":{"isAdmin":true},"uid":"p1","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","namespace":"team-a","object":${JSON.stringify(pod).replace('{"apiVersion"', '{"__proto__":{"polluted":1},"apiVersion"')}}}`,
    JSON.stringify(wrap({ ...pod, metadata: { ...pod.metadata, labels: { ...pod.metadata.labels, constructor: 'x', prototype: 'y', __proto__x: 'z' } } }, 'p2')).replace(
      '"labels":{',
      '"labels":{"__proto__":"agent",',
    ),
    JSON.stringify(wrap(pod, 'p3')).replace('"annotations":{', '"annotations":{"__proto__":{"polluted":true},'),
    JSON.stringify(wrap(pod, 'p4')).replace('"spec":{', '"spec":{"__proto__":{"containers":[]},"constructor":{"prototype":{"polluted":true}},'),
    JSON.stringify(wrap(pod, 'p5')).replace('"containers":[{', '"containers":[{"__proto__":{"name":"authbridge-proxy"},'),
    JSON.stringify(wrap(pod, 'p6')).replace(
      '"annotations":{',
      `"annotations":{"kagenti.io/authbridge-status":${JSON.stringify(JSON.stringify({ __proto__: { polluted: true }, containers: ['__proto__', 'constructor', 'agent'], volumes: ['prototype'] }))},`,
    ),
    JSON.stringify(wrap(pod, 'p7')).replace('"request":{', '"request":{"constructor":{"prototype":{"polluted":true}},'),
  ];
  for (const [i, body] of bodies.entries()) {
    JSON.parse(body); // the fixture itself is valid JSON
    for (const endpoint of ['/mutate', '/validate']) {
      const r = await srv.post(endpoint, body);
      const outcome = checkAnswer(r, r.status === 200 ? `p${i + 1}` : undefined);
      if (i === 5 && endpoint === '/mutate') {
        // a forged status annotation can never remove the user's own container
        assert.equal(outcome, 'allowed');
        const ops = JSON.parse(Buffer.from(r.body.response.patch, 'base64').toString('utf8'));
        assert.ok(!ops.some((o: any) => o.op === 'remove' && o.path === '/spec/containers/0'));
      }
    }
  }
  assertNoPollution();
  await stillServing();
});

test('deep nesting: 400 for the envelope, clean denial inside the object, never a crash', async () => {
  const depth = 200_000; // 400 KB of brackets, well under the body limit
  const deepArr = '['.repeat(depth) + ']'.repeat(depth);
  const deepObj = '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
  checkAnswer(await srv.post('/mutate', deepArr));
  checkAnswer(await srv.post('/mutate', deepObj));
  const pod = JSON.stringify(wrap(smallAgentPod(), 'deep-1'));
  for (const [where, needle] of [
    ['env value', '"value":"gpt-4o-mini"'],
    ['spec field', '"dnsPolicy":"ClusterFirst"'],
    ['label value', '"app":"weather-agent"'],
  ] as const) {
    for (const nested of [deepArr, deepObj]) {
      const key = needle.split(':')[0];
      const body = pod.replace(needle, `${key}:${nested}`);
      assert.notEqual(body, pod, where);
      for (const endpoint of ['/mutate', '/validate']) {
        const r = await srv.post(endpoint, body);
        const outcome = checkAnswer(r, r.status === 200 ? 'deep-1' : undefined);
        assert.notEqual(r.status, 500, `${where} on ${endpoint}`);
        void outcome;
      }
    }
  }
  await stillServing();
});

test('huge strings and oversized bodies: answered (413 over the limit), the server keeps serving', async () => {
  const big = 'x'.repeat(2 * 1024 * 1024);
  const pod = smallAgentPod();
  const cases: { name: string; body: string; expect?: number }[] = [
    { name: 'huge label value', body: JSON.stringify(wrap({ ...pod, metadata: { ...pod.metadata, labels: { ...pod.metadata.labels, big } } }, 'h1')) },
    { name: 'huge annotation key', body: JSON.stringify(wrap({ ...pod, metadata: { ...pod.metadata, annotations: { [big]: 'v' } } }, 'h2')) },
    { name: 'huge uid', body: JSON.stringify(wrap(pod, big)) },
    { name: 'huge mode annotation', body: JSON.stringify(wrap({ ...pod, metadata: { ...pod.metadata, annotations: { 'kagenti.io/authbridge-mode': big } } }, 'h3')) },
    { name: 'huge container name', body: JSON.stringify(wrap({ ...pod, spec: { ...pod.spec, containers: [{ ...pod.spec.containers[0], name: big }] } }, 'h4')) },
    // warned about by name (init-before-proxy; proxy-uid), and denied by name (port-conflict)
    { name: 'huge init container name', body: JSON.stringify(wrap({ ...pod, spec: { ...pod.spec, initContainers: [{ name: big, image: 'x' }] } }, 'h7')) },
    { name: 'huge uid-1337 container name', body: JSON.stringify(wrap({ ...pod, spec: { ...pod.spec, containers: [{ name: big, image: 'x', securityContext: { runAsUser: 1337 } }] } }, 'h8')) },
    { name: 'huge clashing container name', body: JSON.stringify(wrap({ ...pod, spec: { ...pod.spec, containers: [{ name: big, image: 'x', ports: [{ containerPort: 15123 }] }] } }, 'h9')) },
    { name: 'huge pod name', body: JSON.stringify(wrap({ ...pod, metadata: { ...pod.metadata, name: big }, spec: { ...pod.spec, hostNetwork: true } }, 'h10')) },
    { name: 'thousands of warned init containers', body: JSON.stringify(wrap({ ...pod, spec: { ...pod.spec, initContainers: Array.from({ length: 5000 }, (_, i) => ({ name: `init-${i}-${'y'.repeat(200)}`, image: 'x', securityContext: { runAsUser: 1337 } })) } }, 'h11')) },
    { name: 'thousands of clashing containers', body: JSON.stringify(wrap({ ...pod, spec: { ...pod.spec, containers: Array.from({ length: 5000 }, (_, i) => ({ name: `c-${i}-${'z'.repeat(200)}`, image: 'x', ports: [{ containerPort: 15123 }] })) } }, 'h12')) },
    { name: 'body over 7 MiB', body: JSON.stringify(wrap({ ...pod, metadata: { ...pod.metadata, annotations: { a: big, b: big, c: big, d: big } } }, 'h5')), expect: 413 },
    { name: 'many tiny keys', body: JSON.stringify(wrap({ ...pod, metadata: { ...pod.metadata, labels: Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`k${i}`, 'v'])) } }, 'h6')) },
  ];
  for (const c of cases) {
    const r = await srv.post('/mutate', c.body);
    checkAnswer(r);
    if (c.expect) assert.equal(r.status, c.expect, c.name);
    if (r.status === 200 && r.body.response.allowed === false) {
      // a denial that quotes a huge value stays bounded (a one-line message, not 2 MB)
      assert.ok(r.body.response.status.message.length < 100_000, `${c.name}: denial message of ${r.body.response.status.message.length} chars`);
    }
    // what quotes a huge name stays small: names are cut, warnings and denials capped
    if (c.name.startsWith('huge ') && c.name.includes('name') && r.status === 200) {
      const text = JSON.stringify(r.body.response.warnings ?? []) + (r.body.response.status?.message ?? '');
      assert.ok(text.length < 8_000, `${c.name}: ${text.length} characters of warnings and message`);
    }
  }
  await stillServing();
});

test('wire-level garbage: empty, binary, invalid UTF-8, truncated JSON, wrong apiVersion: 400 with a JSON error', async () => {
  const garbage: (string | Buffer)[] = [
    '',
    ' ',
    'null',
    '[]',
    '"AdmissionReview"',
    '{',
    '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":',
    Buffer.from([0xff, 0xfe, 0x00, 0x7b, 0x22, 0xc3, 0x28]),
    Buffer.from('{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"\xff\xfe"}}', 'latin1'),
    '\u0000\u0001\u0002',
    '{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x"}}',
  ];
  for (const g of garbage) {
    for (const endpoint of ['/mutate', '/validate']) {
      const r = await srv.post(endpoint, g);
      const outcome = checkAnswer(r);
      assert.equal(outcome, 'rejected', `expected a 400 for ${JSON.stringify(g.toString().slice(0, 40))}`);
    }
  }
  await stillServing();
});
