// The injection core renders the sidecars once per config, plan, namespace and service account and shares
// them, frozen, with their JSON text kept; patches and answers reuse that text instead of serializing again.
// These tests hold the shortcuts to what they replace: the same pods, the same bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import fastJsonPatch from 'fast-json-patch';
import { allowWithPatch, deny, review, reviewJson, allow } from '../webhook/admission.ts';
import type { KubeObject } from '../webhook/admission.ts';
import { AUTHBRIDGE_MODES, defaultConfig } from '../webhook/config.ts';
import { injectTemplate } from '../webhook/inject.ts';
import { injectStream } from '../webhook/inject-cli.ts';
import { deepFreeze, jsonText, sealJson } from '../webhook/json.ts';
import { createPatch, patchJson } from '../webhook/patch.ts';

const name = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}[a-z0-9]$/);

const podArb = fc
  .record({
    sa: fc.option(fc.oneof(name, fc.constant('default'), fc.string({ maxLength: 6 })), { nil: undefined }),
    mode: fc.option(fc.constantFrom(...AUTHBRIDGE_MODES), { nil: undefined }),
    native: fc.constantFrom(undefined, 'true', 'false'),
    spiffeOptOut: fc.boolean(),
    containers: fc.uniqueArray(name.filter((n) => !['spiffe-helper', 'authbridge-proxy', 'envoy-proxy', 'proxy-init'].includes(n)), {
      minLength: 1,
      maxLength: 3,
    }),
  })
  .map((p) => {
    const annotations: Record<string, string> = {};
    if (p.mode) annotations['kagenti.io/authbridge-mode'] = p.mode;
    if (p.native) annotations['kagenti.io/native-sidecars'] = p.native;
    const labels: Record<string, string> = { 'kagenti.io/type': 'agent' };
    if (p.spiffeOptOut) labels['kagenti.io/spiffe-helper-inject'] = 'false';
    const spec: KubeObject = { containers: p.containers.map((n) => ({ name: n, image: 'busybox:1.36' })) };
    if (p.sa !== undefined) spec.serviceAccountName = p.sa;
    return { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', labels, annotations }, spec } as KubeObject;
  });

test('a shared render gives the same pod as a fresh one, for many pods through one config', () => {
  const cfg = defaultConfig();
  fc.assert(
    fc.property(podArb, fc.constantFrom('team-a', 'team-b', 'a'), (pod, namespace) => {
      const ctx = { namespace, ref: 'Pod x' };
      const shared = injectTemplate(pod, cfg, ctx);
      // a new config object starts with nothing rendered
      const fresh = injectTemplate(pod, structuredClone(cfg), ctx);
      assert.deepEqual(JSON.parse(JSON.stringify(shared)), JSON.parse(JSON.stringify(fresh)));
      if (shared.outcome === 'inject') {
        const sa = pod.spec.serviceAccountName || 'default';
        const ab = shared.template.spec.containers.concat(shared.template.spec.initContainers ?? []).find((c: KubeObject) => c.name === 'authbridge-proxy' || c.name === 'envoy-proxy');
        if (ab) assert.equal(ab.env.find((e: KubeObject) => e.name === 'SPIFFE_ID').value, `spiffe://${cfg.trustDomain}/ns/${namespace}/sa/${sa}`);
      }
    }),
    { numRuns: 300 },
  );
});

test('shared pieces are frozen: writing into an injected container throws instead of changing other pods', () => {
  const cfg = defaultConfig();
  const pod = { metadata: { labels: { 'kagenti.io/type': 'agent' } }, spec: { containers: [{ name: 'agent', image: 'a' }] } };
  const r = injectTemplate(pod, cfg, { namespace: 'ns', ref: 'Pod ns/p' });
  assert.equal(r.outcome, 'inject');
  if (r.outcome !== 'inject') return;
  const sidecar = r.template.spec.containers[0];
  assert.throws(() => {
    sidecar.image = 'evil:latest';
  }, TypeError);
  assert.throws(() => sidecar.env.push({ name: 'X', value: '1' }), TypeError);
  const again = injectTemplate(pod, cfg, { namespace: 'ns', ref: 'Pod ns/p' });
  assert.ok(again.outcome === 'inject' && again.template.spec.containers[0].image !== 'evil:latest');
});

test('patchJson writes what JSON.stringify writes: byte for byte for the patches createPatch builds', () => {
  const cfg = defaultConfig();
  fc.assert(
    fc.property(podArb, (pod) => {
      const r = injectTemplate(pod, cfg, { namespace: 'team-a', ref: 'Pod x' });
      if (r.outcome !== 'inject') return;
      const ops = createPatch(pod, r.template);
      assert.equal(patchJson(ops), JSON.stringify(ops));
    }),
    { numRuns: 200 },
  );
  const sealed = sealJson({ a: [1, { b: 'c"\\' }], d: null });
  const odd: unknown[] = [
    { op: 'add', path: '/x', value: sealed },
    { op: 'add', path: '/y', value: [sealed, undefined, 3, sealed] },
    { op: 'add', path: '/z', value: undefined },
    { path: '/w', op: 'remove' },
    { op: 'move', from: '/a', path: '/b' },
    { op: 'replace', path: '/q~1"', value: 'line\nbreak' },
    { op: 'test', path: '/t', value: [] },
  ];
  // ops built elsewhere, keys in another order or other ops: the same JSON values
  assert.deepEqual(JSON.parse(patchJson(odd as never)), JSON.parse(JSON.stringify(odd)));
  assert.equal(jsonText([sealed, undefined]), JSON.stringify([sealed, undefined]));
  assert.equal(jsonText(undefined), undefined);
  assert.ok(Object.isFrozen(sealed.a[1]));
});

test('reviewJson writes exactly what JSON.stringify(review(response)) writes', () => {
  const ops = [{ op: 'add', path: '/metadata/annotations', value: { a: '"patch":""' } }];
  const cases = [
    allowWithPatch('uid-1', ops),
    allowWithPatch('"patch":""', ops, ['warning "patch":"" here']),
    allow('uid-2'),
    allow('uid-3', ['w']),
    deny('uid-4', 'no "patch":"" for you'),
  ];
  for (const r of cases) assert.equal(reviewJson(r), JSON.stringify(review(r)));
  // a patch replaced after encoding is serialized the ordinary way
  const changed = allowWithPatch('uid-5', ops);
  changed.patch = 'not "base64"';
  assert.equal(reviewJson(changed), JSON.stringify(review(changed)));
});

test('inject: a List of two workloads sharing a service account writes both in full, without YAML aliases', () => {
  const deploy = (n: string) => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: n, namespace: 'team-a' },
    spec: {
      selector: { matchLabels: { app: n } },
      template: {
        metadata: { labels: { app: n, 'kagenti.io/type': 'agent' } },
        spec: { serviceAccountName: 'shared', containers: [{ name: 'agent', image: 'a:1' }] },
      },
    },
  });
  // a YAML stream (a JSON stream would be written back as JSON, where there are no aliases to fear)
  const out = injectStream(`---\n${JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [deploy('one'), deploy('two')] })}`, defaultConfig(), 'team-a');
  assert.equal(out.injected, 2);
  assert.doesNotMatch(out.output, /[&*]a\d/);
  assert.equal(out.output.match(/name: spiffe-helper$/gm)?.length, 2);
});

test('createPatch turns any JSON object into any other, sharing subtrees or not (applied by fast-json-patch)', () => {
  // fast-json-patch, the oracle here, refuses paths through __proto__, constructor and prototype
  const key = fc.string({ maxLength: 4 }).filter((k) => !['__proto__', 'constructor', 'prototype'].includes(k));
  const json = fc.letrec((tie) => ({
    value: fc.oneof({ depthSize: 'small' }, fc.constant(null), fc.boolean(), fc.integer(), fc.string({ maxLength: 6 }), fc.array(tie('value'), { maxLength: 4 }), fc.dictionary(key, tie('value'), { maxKeys: 4 })),
  })).value;
  // b: a with random subtrees replaced, removed or added, and the rest shared by reference (as injection does)
  const edit = (a: unknown, rnd: () => number, fresh: () => unknown): unknown => {
    if (typeof a !== 'object' || a === null) return rnd() < 0.3 ? fresh() : a;
    if (rnd() < 0.5) return a; // shared
    if (Array.isArray(a)) {
      const out = a.map((v) => edit(v, rnd, fresh)).filter(() => rnd() > 0.15);
      if (rnd() < 0.3) out.splice(Math.floor(rnd() * (out.length + 1)), 0, fresh());
      return out;
    }
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(a)) if (rnd() > 0.15) out[k] = edit(v, rnd, fresh);
    if (rnd() < 0.3) out[`k${Math.floor(rnd() * 5)}/~x`] = fresh();
    return out;
  };
  fc.assert(
    fc.property(fc.dictionary(key, json), fc.array(json, { minLength: 1, maxLength: 8 }), fc.integer(), (a, pool, seed) => {
      let x = seed >>> 0 || 1;
      const rnd = () => ((x = (x * 1103515245 + 12345) >>> 0) / 2 ** 32);
      let i = 0;
      const fresh = () => pool[i++ % pool.length];
      const b = edit(a, rnd, fresh) as Record<string, unknown>;
      const ops = createPatch(a, b);
      const applied = fastJsonPatch.applyPatch(structuredClone(a), structuredClone(ops), true, true).newDocument;
      assert.deepEqual(applied, JSON.parse(JSON.stringify(b)));
      assert.deepEqual(JSON.parse(patchJson(ops)), JSON.parse(JSON.stringify(ops)));
    }),
    { numRuns: 500 },
  );
});

test('allowWithPatch encodes small and large patches, multi-byte text included, as base64 of their UTF-8', () => {
  for (const value of ['ascii', 'é ✓ 𝄞 \u2028', 'x'.repeat(30_000), `${'ü'.repeat(25_000)}𝄞`]) {
    const ops = [{ op: 'add', path: '/metadata/annotations/a', value }];
    const r = allowWithPatch('u', ops);
    assert.equal(Buffer.from(r.patch!, 'base64').toString('utf8'), JSON.stringify(ops));
    assert.equal(r.patch, Buffer.from(JSON.stringify(ops)).toString('base64'));
  }
});

test('a frozen config (as serve freezes it) injects like an unfrozen one', () => {
  const pod = { metadata: { name: 'p', labels: { 'kagenti.io/type': 'agent' } }, spec: { containers: [{ name: 'agent', image: 'a' }] } };
  const ctx = { namespace: 'ns', ref: 'Pod ns/p' };
  const frozen = deepFreeze(defaultConfig());
  assert.ok(Object.isFrozen(frozen.authBridge.ports));
  assert.deepEqual(JSON.parse(JSON.stringify(injectTemplate(pod, frozen, ctx))), JSON.parse(JSON.stringify(injectTemplate(pod, defaultConfig(), ctx))));
});

test('renders for names longer than Kubernetes allows are not kept (a hostile pod cannot fill the cache)', () => {
  const cfg = defaultConfig();
  const ctx = { namespace: 'ns', ref: 'Pod ns/p' };
  const pod = (sa: string) => ({ metadata: { name: 'p', labels: { 'kagenti.io/type': 'agent' } }, spec: { serviceAccountName: sa, containers: [{ name: 'agent', image: 'a' }] } });
  const sidecar = (sa: string) => {
    const r = injectTemplate(pod(sa), cfg, ctx);
    assert.ok(r.outcome === 'inject');
    return r.outcome === 'inject' ? r.template.spec.containers[1] : undefined;
  };
  assert.equal(sidecar('agent-sa'), sidecar('agent-sa'), 'a normal name: the render is shared');
  const long = 'x'.repeat(100_000);
  const a = sidecar(long);
  assert.notEqual(a, sidecar(long), 'a 100,000-character name: rendered again, not kept');
  assert.equal(a.env.find((e: { name: string }) => e.name === 'SPIFFE_ID').value, `spiffe://cluster.local/ns/ns/sa/${long}`);
});
