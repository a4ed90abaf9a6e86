// Re-invocation (reinvocationPolicy: IfNeeded): the API server calls the webhook again after a later webhook changed
// the injected pod (Istio appends istio-proxy and the istio-envoy volume; others prepend, or insert between ours).
// The answer must be no patch: pieces of ours that still equal what is injected now stay where they are, and what
// the other webhook inserted is never moved. A changed piece is replaced in its place, and the one ordering guarantee
// of the init containers (proxy-init first, our native proxy right after it) is restored when an insertion broke it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fastJsonPatch from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';
import type { AdmissionRequest, KubeObject } from '../webhook/admission.ts';
import { defaultConfig, parseConfig } from '../webhook/config.ts';
import type { Config } from '../webhook/config.ts';
import { injectTemplate, jsonEqual } from '../webhook/inject.ts';
import { mutate } from '../webhook/mutate.ts';
import { apiServerDefaults, decodePatch, kubectlPatch, podCreateRequest, podProblems, startTestServer } from './helpers.ts';

const ctx = { namespace: 'team-a', ref: 'Pod team-a/weather' };

function request(pod: KubeObject): AdmissionRequest {
  return { uid: 'u', kind: { group: '', version: 'v1', kind: 'Pod' }, namespace: 'team-a', operation: 'CREATE', userInfo: { username: 'x' }, object: pod };
}

function patchOf(pod: KubeObject, cfg: Config): Operation[] {
  const d = mutate(request(pod), { config: cfg });
  assert.equal(d.response.allowed, true, d.response.status?.message);
  return d.response.patch ? JSON.parse(Buffer.from(d.response.patch, 'base64').toString('utf8')) : [];
}

function apply(pod: KubeObject, ops: Operation[]): KubeObject {
  return fastJsonPatch.applyPatch(structuredClone(pod), structuredClone(ops), true, true).newDocument as KubeObject;
}

/** The pod as the API server holds it after our first patch: injected, then defaulted. */
function injected(cfg: Config, spec: KubeObject = {}): KubeObject {
  const pod: KubeObject = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'weather', namespace: 'team-a', labels: { 'kagenti.io/type': 'agent' } },
    spec: { serviceAccountName: 'weather', containers: [{ name: 'agent', image: 'agent:1', ports: [{ containerPort: 8000 }] }], volumes: [{ name: 'data', emptyDir: {} }], ...spec },
  };
  const ops = patchOf(pod, cfg);
  assert.ok(ops.length);
  return apiServerDefaults(apply(pod, ops));
}

const names = (list: KubeObject[] | undefined) => (list ?? []).map((x) => x.name);
const istioProxy = { name: 'istio-proxy', image: 'docker.io/istio/proxyv2:1.22.0', imagePullPolicy: 'IfNotPresent', terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'File' };
const istioInit = { name: 'istio-validation', image: 'docker.io/istio/proxyv2:1.22.0', imagePullPolicy: 'IfNotPresent', terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'File' };
const istioEnvoy = { name: 'istio-envoy', emptyDir: { medium: 'Memory' } };

/** A later webhook's insertion: into which list, at which index (-1: the end). */
type Insertion = [list: 'containers' | 'initContainers' | 'volumes', at: number, item: KubeObject];

function insert(pod: KubeObject, edits: Insertion[]): KubeObject {
  const out = structuredClone(pod);
  for (const [list, at, item] of edits) {
    const arr: KubeObject[] = (out.spec[list] ??= []);
    arr.splice(at < 0 ? arr.length : at, 0, structuredClone(item));
  }
  return out;
}

const CONFIGS: [string, Config][] = [
  ['ordinary sidecars', defaultConfig()],
  ['native sidecars', parseConfig('featureGates:\n  nativeSidecars: true\n')],
  ['native sidecars, no proxy-init', parseConfig('featureGates:\n  nativeSidecars: true\nauthBridge:\n  egressEnforcement: none\n')],
  ['helper ConfigMap, envoy mode', parseConfig('authBridge:\n  defaultMode: envoy-sidecar\nspiffeHelper:\n  configMap: helper\n')],
];

test('after a later webhook appends a container and a volume (Istio), a re-invocation returns no patch', () => {
  for (const [label, cfg] of CONFIGS) {
    const pod = insert(injected(cfg), [
      ['containers', -1, istioProxy],
      ['volumes', -1, istioEnvoy],
    ]);
    assert.deepEqual(patchOf(pod, cfg), [], label);
    const r = injectTemplate(pod, cfg, ctx);
    assert.ok(r.outcome === 'inject' && jsonEqual(r.template, pod), `${label}: inject changed the pod`);
  }
});

test('after a later webhook inserts at the front of a list or between our pieces, a re-invocation returns no patch', () => {
  for (const [label, cfg] of CONFIGS) {
    const base = injected(cfg);
    const nativeNoInit = label === 'native sidecars, no proxy-init';
    const edits: Insertion[][] = [
      [['containers', 0, istioProxy]],
      [['containers', 1, istioProxy]],
      [['volumes', 0, istioEnvoy]],
      [['volumes', 2, istioEnvoy]],
      [['volumes', 3, istioEnvoy]],
      [['initContainers', -1, istioInit]],
      [
        ['containers', 1, istioProxy],
        ['volumes', 2, istioEnvoy],
        ['initContainers', -1, istioInit],
      ],
    ];
    // without proxy-init, nothing depends on what runs before or between our native sidecars
    if (nativeNoInit) edits.push([['initContainers', 0, istioInit]], [['initContainers', 1, istioInit]]);
    for (const e of edits) {
      const pod = insert(base, e);
      const before = structuredClone(pod);
      assert.deepEqual(patchOf(pod, cfg), [], `${label}: ${JSON.stringify(e.map(([l, at]) => [l, at]))}`);
      assert.deepEqual(pod, before);
      assert.deepEqual(podProblems(pod), []);
    }
  }
});

test('a piece kept in place is the very object that came; a changed one is replaced in its place, a new one placed beside ours', () => {
  const cfg = defaultConfig();
  const pod = insert(injected(cfg), [
    ['containers', 0, istioProxy],
    ['volumes', 1, istioEnvoy],
  ]);
  assert.deepEqual(names(pod.spec.containers), ['istio-proxy', 'spiffe-helper', 'authbridge-proxy', 'agent']);
  const same = injectTemplate(pod, cfg, ctx);
  assert.ok(same.outcome === 'inject');
  for (const list of ['containers', 'initContainers', 'volumes'])
    for (const item of same.template.spec[list]) assert.ok(pod.spec[list].includes(item), `${list}: ${item.name} is not the input's own object`);
  // a new spiffe-helper image: only spiffe-helper is sent, at its place; istio-proxy stays first
  const newer = parseConfig('spiffeHelper:\n  image: ghcr.io/spiffe/spiffe-helper:0.11.0\n');
  const ops = patchOf(pod, newer);
  assert.deepEqual(
    ops.map((o) => [o.op, o.path]),
    [
      ['remove', '/spec/containers/1'],
      ['add', '/spec/containers/1'],
    ],
  );
  const out = apply(pod, ops);
  assert.deepEqual(kubectlPatch(pod, ops), out, 'the real patch library gives another pod');
  assert.deepEqual(names(out.spec.containers), names(pod.spec.containers));
  assert.equal(out.spec.containers[1].image, 'ghcr.io/spiffe/spiffe-helper:0.11.0');
  assert.deepEqual(patchOf(apiServerDefaults(out), newer), []);
  // the authbridge-proxy changed (another SPIFFE ID): replaced where it is
  const other = structuredClone(pod);
  other.spec.serviceAccountName = 'other';
  const otherOps = patchOf(other, cfg);
  assert.deepEqual(
    otherOps.map((o) => [o.op, o.path]),
    [
      ['remove', '/spec/containers/2'],
      ['add', '/spec/containers/2'],
    ],
  );
  assert.match(JSON.stringify(apply(other, otherOps).spec.containers[2]), /sa\/other/);
  // another mode: envoy-proxy, a new name, goes right after spiffe-helper (the piece rendered before it), where
  // authbridge-proxy was taken out; istio-proxy stays first
  const envoy = structuredClone(pod);
  envoy.metadata.annotations['kagenti.io/authbridge-mode'] = 'envoy-sidecar';
  const switched = apply(envoy, patchOf(envoy, cfg));
  assert.deepEqual(names(switched.spec.containers), ['istio-proxy', 'spiffe-helper', 'envoy-proxy', 'agent']);
  assert.deepEqual(names(switched.spec.volumes), names(pod.spec.volumes));
  assert.deepEqual(patchOf(apiServerDefaults(switched), cfg), []);
});

test('an init container inserted before proxy-init, or between it and the native proxy, is not left there: ours go first again', () => {
  for (const [label, cfg] of CONFIGS.filter(([l]) => l !== 'native sidecars, no proxy-init')) {
    const base = injected(cfg);
    const ours = names(base.spec.initContainers);
    assert.equal(ours[0], 'proxy-init', label);
    const spots = label === 'native sidecars' ? [0, 1, 2] : [0];
    for (const at of spots) {
      const pod = insert(base, [
        ['initContainers', at, istioInit],
        ['containers', -1, istioProxy],
      ]);
      const ops = patchOf(pod, cfg);
      assert.ok(ops.length, `${label}, at ${at}: no patch`);
      // the other webhook's items are never sent again, nor is a list replaced whole
      assert.ok(!JSON.stringify(ops).includes('istio'), JSON.stringify(ops));
      assert.ok(ops.every((o) => o.path.startsWith('/spec/initContainers/')), JSON.stringify(ops.map((o) => o.path)));
      const out = apply(pod, ops);
      assert.deepEqual(kubectlPatch(pod, ops), out, 'the real patch library gives another pod');
      assert.deepEqual(names(out.spec.initContainers), [...ours, 'istio-validation'], `${label}, at ${at}`);
      const r = injectTemplate(pod, cfg, ctx);
      assert.ok(r.outcome === 'inject' && jsonEqual(out, r.template));
      assert.deepEqual(podProblems(out), []);
      assert.deepEqual(patchOf(apiServerDefaults(out), cfg), [], `${label}, at ${at}: the next re-invocation must be a no-op`);
    }
  }
});

test('warnings on a re-invocation are those of the pod as it is: another webhook’s init container after proxy-init is named', () => {
  const cfg = defaultConfig();
  const pod = insert(injected(cfg), [['initContainers', -1, istioInit]]);
  const d = mutate(request(pod), { config: cfg });
  assert.equal(d.response.patch, undefined);
  assert.match((d.response.warnings ?? []).join('\n'), /\[init-before-proxy\].*istio-validation/);
});

test('over HTTPS: inject, let a later webhook insert, default, re-invoke: no patch', async () => {
  const server = await startTestServer(defaultConfig());
  try {
    const pod: KubeObject = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { generateName: 'weather-', namespace: 'team-a', labels: { 'kagenti.io/type': 'agent' } },
      spec: { containers: [{ name: 'agent', image: 'agent:1' }], initContainers: [{ name: 'migrate', image: 'migrate:1' }], volumes: [{ name: 'data', emptyDir: {} }] },
    };
    const first = await server.review('/mutate', podCreateRequest(pod));
    const out = apiServerDefaults(kubectlPatch(pod, decodePatch(first)));
    const later = insert(out, [
      ['containers', -1, istioProxy],
      ['initContainers', -1, istioInit],
      ['volumes', -1, istioEnvoy],
    ]);
    const again = await server.review('/mutate', podCreateRequest(later));
    assert.equal(again.allowed, true);
    assert.equal(again.patch, undefined);
  } finally {
    await server.close();
  }
});
