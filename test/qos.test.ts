// QoS class: injection keeps a Guaranteed pod Guaranteed (the injected containers request what they are limited to),
// leaves every other pod's sidecars as configured, and stays idempotent either way.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fastJsonPatch from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';
import type { AdmissionRequest, KubeObject } from '../webhook/admission.ts';
import { defaultConfig, parseConfig } from '../webhook/config.ts';
import type { Config } from '../webhook/config.ts';
import { injectTemplate, jsonEqual } from '../webhook/inject.ts';
import { mutate } from '../webhook/mutate.ts';
import { guaranteedPod } from '../webhook/qos.ts';
import { apiServerDefaults } from './helpers.ts';

const ctx = { namespace: 'team-a', ref: 'Pod team-a/g1' };
const pinned = { requests: { cpu: '2', memory: '4Gi' }, limits: { cpu: '2', memory: '4Gi' } };

function pod(spec: KubeObject = {}, annotations: Record<string, string> = {}): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'g1', namespace: 'team-a', labels: { 'kagenti.io/type': 'agent' }, annotations },
    spec: { serviceAccountName: 'g1', containers: [{ name: 'agent', image: 'agent:1', resources: pinned }], ...spec },
  };
}

/**
 * Kubernetes' ComputePodQOS (pkg/apis/core/helper/qos), written out independently of webhook/qos.ts: cpu and memory
 * requests and limits summed over the containers and init containers (zero ones left out), Guaranteed when every
 * container has both limits and the sums of the requests equal those of the limits. Requests are defaulted from
 * limits first, as the API server does.
 */
const MILLI: Record<string, number> = { m: 1, '': 1000, Mi: 1000 * 2 ** 20, Gi: 1000 * 2 ** 30 };
function milli(q: string): number {
  const m = /^([0-9]+)(m|Mi|Gi|)$/.exec(q)!;
  return Number(m[1]) * MILLI[m[2]!]!;
}
function qosClass(p: KubeObject): 'Guaranteed' | 'Burstable' | 'BestEffort' {
  const requests: Record<string, number> = {};
  const limits: Record<string, number> = {};
  let guaranteed = true;
  for (const c of [...p.spec.containers, ...(p.spec.initContainers ?? [])]) {
    const lim = c.resources?.limits ?? {};
    const req = { ...lim, ...(c.resources?.requests ?? {}) };
    for (const r of ['cpu', 'memory']) {
      if (req[r] !== undefined && milli(req[r]) > 0) requests[r] = (requests[r] ?? 0) + milli(req[r]);
      if (lim[r] !== undefined && milli(lim[r]) > 0) limits[r] = (limits[r] ?? 0) + milli(lim[r]);
    }
    if (!(lim.cpu && milli(lim.cpu) > 0 && lim.memory && milli(lim.memory) > 0)) guaranteed = false;
  }
  if (!Object.keys(requests).length && !Object.keys(limits).length) return 'BestEffort';
  for (const r of Object.keys(requests)) if (limits[r] !== requests[r]) guaranteed = false;
  return guaranteed && Object.keys(requests).length === Object.keys(limits).length ? 'Guaranteed' : 'Burstable';
}

function injected(p: KubeObject, cfg: Config = defaultConfig()): KubeObject {
  const r = injectTemplate(p, cfg, ctx);
  assert.equal(r.outcome, 'inject');
  return r.outcome === 'inject' ? r.template : p;
}

function request(p: KubeObject): AdmissionRequest {
  return { uid: 'u', kind: { group: '', version: 'v1', kind: 'Pod' }, namespace: 'team-a', operation: 'CREATE', userInfo: { username: 'x' }, object: p };
}
function patchOf(p: KubeObject, cfg: Config): Operation[] {
  const d = mutate(request(p), { config: cfg });
  assert.equal(d.response.allowed, true, d.response.status?.message);
  return d.response.patch ? JSON.parse(Buffer.from(d.response.patch, 'base64').toString('utf8')) : [];
}
function apply(p: KubeObject, ops: Operation[]): KubeObject {
  return fastJsonPatch.applyPatch(structuredClone(p), structuredClone(ops), true, true).newDocument as KubeObject;
}
const ours = (p: KubeObject) =>
  [...(p.spec.initContainers ?? []), ...p.spec.containers].filter((c: KubeObject) => ['proxy-init', 'spiffe-helper', 'authbridge-proxy'].includes(c.name));

test('qos: a Guaranteed pod stays Guaranteed: every injected container requests its limits, in both sidecar modes', () => {
  for (const native of ['false', 'true']) {
    const p = pod({}, { 'kagenti.io/native-sidecars': native });
    assert.equal(qosClass(p), 'Guaranteed');
    const out = injected(p);
    assert.equal(ours(out).length, 3, native);
    for (const c of ours(out)) assert.deepEqual(c.resources.requests, c.resources.limits, `${native}: ${c.name}`);
    assert.equal(qosClass(out), 'Guaranteed', `native-sidecars ${native}`);
  }
  // limits only (the API server defaults the requests from them), quantities written differently, an own init container
  const p = pod({
    initContainers: [{ name: 'migrate', image: 'm:1', resources: { limits: { cpu: '100m', memory: '64Mi' } } }],
    containers: [{ name: 'agent', image: 'agent:1', resources: { requests: { cpu: '2', memory: '4Gi' }, limits: { cpu: '2000m', memory: '4096Mi' } } }],
  });
  assert.equal(qosClass(injected(p)), 'Guaranteed');
  // the config's limits are what the sidecars get
  const cfg = parseConfig('authBridge:\n  resources:\n    limits: {cpu: "1", memory: 512Mi}\n');
  const proxy = ours(injected(pod(), cfg)).find((c) => c.name === 'authbridge-proxy');
  assert.deepEqual(proxy.resources, { requests: { cpu: '1', memory: '512Mi' }, limits: { cpu: '1', memory: '512Mi' } });
});

test('qos: a pod that is not Guaranteed by its containers gets the configured requests', () => {
  const configured = defaultConfig().authBridge.resources;
  const burstable: KubeObject[] = [
    pod({ containers: [{ name: 'agent', image: 'agent:1' }] }),
    pod({ containers: [{ name: 'agent', image: 'agent:1', resources: { requests: { cpu: '1', memory: '4Gi' }, limits: { cpu: '2', memory: '4Gi' } } }] }),
    pod({ containers: [{ name: 'agent', image: 'agent:1', resources: { limits: { cpu: '2' } } }] }),
    pod({ containers: [{ name: 'agent', image: 'agent:1', resources: { requests: { cpu: '0', memory: '4Gi' }, limits: { cpu: '2', memory: '4Gi' } } }] }),
    // an own init container without limits makes the pod Burstable whatever the containers
    pod({ initContainers: [{ name: 'migrate', image: 'm:1' }] }),
    // a second container that is not pinned
    pod({ containers: [{ name: 'agent', image: 'agent:1', resources: pinned }, { name: 'tools', image: 't:1', resources: { limits: { cpu: '1', memory: '1Gi' }, requests: { cpu: '1', memory: '512Mi' } } }] }),
  ];
  for (const p of burstable) {
    const out = injected(p);
    const proxy = ours(out).find((c) => c.name === 'authbridge-proxy');
    assert.deepEqual(proxy.resources, { requests: configured.requests, limits: configured.limits });
    assert.notEqual(qosClass(out), 'Guaranteed');
  }
});

test('qos: a pod with pod-level resources is left to them (its class follows spec.resources where the feature is on)', () => {
  const p = pod({ resources: { requests: { cpu: '4', memory: '8Gi' }, limits: { cpu: '4', memory: '8Gi' } } });
  assert.equal(guaranteedPod(p.spec.resources, p.spec.containers, []), false);
  const proxy = ours(injected(p)).find((c) => c.name === 'authbridge-proxy');
  assert.deepEqual(proxy.resources.requests, defaultConfig().authBridge.resources.requests);
});

test('qos: guaranteedPod never throws on odd shapes and refuses what is not a positive quantity', () => {
  const c = (resources: unknown) => [{ name: 'a', resources } as KubeObject];
  for (const r of [undefined, null, 'x', [], { limits: null }, { limits: { cpu: 'two', memory: '1Gi' } }, { limits: { cpu: '0', memory: '1Gi' } }, { limits: { cpu: '-1', memory: '1Gi' } }, { limits: { cpu: 1, memory: '1Gi' }, requests: { cpu: [] } }])
    assert.equal(guaranteedPod(undefined, c(r), []), false, JSON.stringify(r));
  assert.equal(guaranteedPod(undefined, c({ limits: { cpu: 1, memory: '1Gi' }, requests: { cpu: '1000m' } }), []), true);
  assert.equal(guaranteedPod(undefined, [], []), false);
  assert.equal(guaranteedPod({}, c({ limits: { cpu: 1, memory: '1Gi' } }), []), true);
});

test('qos: injection of a Guaranteed pod is idempotent, and a re-invocation of the defaulted pod returns no patch', () => {
  const cfg = defaultConfig();
  for (const native of ['false', 'true']) {
    const p = pod({}, { 'kagenti.io/native-sidecars': native });
    const once = injected(p, cfg);
    const twice = injected(once, cfg);
    assert.ok(jsonEqual(once, twice), native);
    const ops = patchOf(p, cfg);
    assert.ok(ops.length);
    const stored = apiServerDefaults(apply(p, ops));
    assert.equal(qosClass(stored), 'Guaranteed');
    assert.deepEqual(patchOf(stored, cfg), [], `native-sidecars ${native}: second injection must not patch`);
  }
});

test('qos: a later webhook that makes the pod Burstable: the re-invocation gives the sidecars their configured requests, once', () => {
  const cfg = defaultConfig();
  const p = pod();
  const stored = apiServerDefaults(apply(p, patchOf(p, cfg)));
  // a later webhook appends a container that requests less than its limits (Vault's agent injector does by default)
  const later = structuredClone(stored);
  later.spec.containers.push({ name: 'vault-agent', image: 'hashicorp/vault:1.17.2', resources: { requests: { cpu: '250m', memory: '64Mi' }, limits: { cpu: '500m', memory: '128Mi' } } });
  const again = apiServerDefaults(apply(later, patchOf(later, cfg)));
  for (const c of ours(again)) assert.notDeepEqual(c.resources.requests, c.resources.limits, c.name);
  assert.deepEqual(names(again), names(later), 'nothing moves');
  assert.deepEqual(patchOf(again, cfg), []);
  // one that adds a pinned container keeps the pod Guaranteed: no patch
  const pinnedLater = structuredClone(stored);
  pinnedLater.spec.containers.push({ name: 'linkerd-proxy', image: 'cr.l5d.io/linkerd/proxy:stable-2.14.10', resources: { requests: { cpu: '100m', memory: '64Mi' }, limits: { cpu: '100m', memory: '64Mi' } } });
  assert.deepEqual(patchOf(pinnedLater, cfg), []);
});

const names = (p: KubeObject) => [...(p.spec.initContainers ?? []), ...p.spec.containers].map((c: KubeObject) => c.name);
