// Property tests of the injection core and the patch: for random valid pods and configs,
// - injecting twice equals injecting once (and the webhook returns no patch the second time), also after a later
//   webhook inserted containers, init containers and volumes anywhere (unless before or among our init containers,
//   which go first again);
// - the patch applies to the original and yields exactly the injected pod (fast-json-patch for every case,
//   the real `kubectl patch --local --type json` for a sample);
// - the result is a valid Pod (unique names, mounts resolve, CSI read-only, restartPolicy only on init containers).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import fastJsonPatch from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';
import type { AdmissionRequest, KubeObject } from '../webhook/admission.ts';
import { AUTHBRIDGE_MODES, MTLS_MODES, configFromObject } from '../webhook/config.ts';
import type { Config } from '../webhook/config.ts';
import { RESERVED_CONTAINERS, RESERVED_VOLUMES, injectTemplate, jsonEqual } from '../webhook/inject.ts';
import { mutate } from '../webhook/mutate.ts';
import { createPatch } from '../webhook/patch.ts';
import { apiServerDefaults } from './helpers.ts';

const RESERVED = new Set<string>([...RESERVED_CONTAINERS, ...RESERVED_VOLUMES]);
const dnsName = fc.stringMatching(/^[a-z][a-z0-9-]{0,14}[a-z0-9]$/).filter((n) => !RESERVED.has(n));
const envName = fc.stringMatching(/^[A-Z_][A-Z0-9_]{0,12}$/);
// Mostly free ports, sometimes one the injected proxy needs (then the pod is denied: port-conflict).
const port = fc.oneof({ weight: 9, arbitrary: fc.integer({ min: 1024, max: 9000 }) }, { weight: 1, arbitrary: fc.constantFrom(15123, 15124, 9901, 9090) });

const volumeArb = (name: string) =>
  fc.oneof(
    fc.constant<KubeObject>({ name, emptyDir: {} }),
    fc.constant<KubeObject>({ name, configMap: { name: `${name}-cm`, defaultMode: 420 } }),
    fc.constant<KubeObject>({ name, secret: { secretName: `${name}-secret` } }),
    fc.constant<KubeObject>({ name, projected: { sources: [{ serviceAccountToken: { path: 'token', expirationSeconds: 3600 } }] } }),
  );

function containerArb(name: string, volumeNames: string[]) {
  return fc.record(
    {
      image: fc.constantFrom('ghcr.io/example/agent:1.0', 'python:3.12-slim', 'busybox:1.36'),
      args: fc.array(fc.string({ maxLength: 12 }), { maxLength: 3 }),
      ports: fc.uniqueArray(port, { maxLength: 3 }),
      env: fc.array(fc.record({ name: envName, value: fc.string({ maxLength: 20 }) }), { maxLength: 6 }),
      mounts: fc.subarray(volumeNames),
      securityContext: fc.option(fc.constant({ runAsNonRoot: true, readOnlyRootFilesystem: true }), { nil: undefined }),
    },
    { requiredKeys: ['image'] },
  ).map((c) => {
    const out: KubeObject = { name, image: c.image };
    if (c.args?.length) out.args = c.args;
    if (c.ports?.length) out.ports = c.ports.map((p, i) => ({ name: `p${i}`, containerPort: p, protocol: 'TCP' }));
    if (c.env?.length) out.env = c.env;
    if (c.mounts?.length) out.volumeMounts = c.mounts.map((v) => ({ name: v, mountPath: `/mnt/${v}` }));
    if (c.securityContext) out.securityContext = c.securityContext;
    return out;
  });
}

const podArb: fc.Arbitrary<KubeObject> = fc
  .record({
    names: fc.uniqueArray(dnsName, { minLength: 1, maxLength: 6 }),
    initCount: fc.nat({ max: 2 }),
    volumeNames: fc.uniqueArray(dnsName, { maxLength: 4 }),
    type: fc.constantFrom('agent', 'agent', 'agent', 'tool', undefined),
    spiffeOptOut: fc.boolean(),
    authBridgeOptOut: fc.constantFrom(undefined, 'authbridge', 'envoy'),
    injectDisabled: fc.constantFrom(false, false, false, true),
    mode: fc.option(fc.constantFrom(...AUTHBRIDGE_MODES), { nil: undefined }),
    mtls: fc.option(fc.constantFrom(...MTLS_MODES), { nil: undefined }),
    native: fc.constantFrom(undefined, 'true', 'false'),
    sa: fc.option(dnsName, { nil: undefined }),
    generateName: fc.boolean(),
    podName: dnsName,
    extraLabels: fc.dictionary(fc.stringMatching(/^[a-z]{1,8}$/), fc.stringMatching(/^[a-z0-9]{0,8}$/), { maxKeys: 3 }),
  })
  .chain((p) => {
    const initCount = Math.min(p.initCount, p.names.length - 1);
    const initNames = p.names.slice(0, initCount);
    const mainNames = p.names.slice(initCount);
    return fc
      .record({
        containers: fc.tuple(...mainNames.map((n) => containerArb(n, p.volumeNames))),
        initContainers: initNames.length ? fc.tuple(...initNames.map((n) => containerArb(n, p.volumeNames))) : fc.constant([] as KubeObject[]),
        volumes: p.volumeNames.length ? fc.tuple(...p.volumeNames.map(volumeArb)) : fc.constant([] as KubeObject[]),
      })
      .map(({ containers, initContainers, volumes }) => {
        const labels: Record<string, string> = { ...p.extraLabels };
        if (p.type) labels['kagenti.io/type'] = p.type;
        if (p.spiffeOptOut) labels['kagenti.io/spiffe-helper-inject'] = 'false';
        if (p.authBridgeOptOut === 'authbridge') labels['kagenti.io/authbridge-inject'] = 'false';
        if (p.authBridgeOptOut === 'envoy') labels['kagenti.io/envoy-proxy-inject'] = 'false';
        if (p.injectDisabled) labels['kagenti.io/inject'] = 'disabled';
        const annotations: Record<string, string> = {};
        if (p.mode) annotations['kagenti.io/authbridge-mode'] = p.mode;
        if (p.mtls) annotations['kagenti.io/mtls-mode'] = p.mtls;
        if (p.native) annotations['kagenti.io/native-sidecars'] = p.native;
        const metadata: KubeObject = p.generateName ? { generateName: `${p.podName}-` } : { name: p.podName };
        metadata.namespace = 'team-a';
        metadata.labels = labels;
        if (Object.keys(annotations).length) metadata.annotations = annotations;
        const spec: KubeObject = { containers: [...containers] };
        if (initContainers.length) spec.initContainers = [...initContainers];
        if (volumes.length) spec.volumes = [...volumes];
        if (p.sa) spec.serviceAccountName = p.sa;
        // as it arrives in a request body: plain JSON (fast-check may build null-prototype records)
        return JSON.parse(JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata, spec })) as KubeObject;
      });
  });

const configArb: fc.Arbitrary<Config> = fc
  .record({
    nativeSidecars: fc.boolean(),
    injectTools: fc.boolean(),
    egressNone: fc.boolean(),
    configMap: fc.boolean(),
    defaultMode: fc.constantFrom(...AUTHBRIDGE_MODES),
  })
  .map((o) => {
    // (configs are frozen: built from an object, as a config file is read)
    return configFromObject({
      featureGates: { nativeSidecars: o.nativeSidecars, injectTools: o.injectTools },
      authBridge: { egressEnforcement: o.egressNone ? 'none' : 'enforce-redirect', defaultMode: o.defaultMode },
      ...(o.configMap ? { spiffeHelper: { configMap: 'spiffe-helper-config' } } : {}),
    });
  });

const ctx = (pod: KubeObject) => ({ namespace: 'team-a', ref: `Pod team-a/${pod.metadata.name ?? pod.metadata.generateName}` });

function request(pod: KubeObject): AdmissionRequest {
  return {
    uid: 'prop-uid',
    kind: { group: '', version: 'v1', kind: 'Pod' },
    namespace: 'team-a',
    operation: 'CREATE',
    userInfo: { username: 'property-test' },
    object: pod,
  };
}

function decodePatch(b64: string | undefined): Operation[] {
  return b64 ? (JSON.parse(Buffer.from(b64, 'base64').toString('utf8')) as Operation[]) : [];
}

function apply(original: KubeObject, ops: Operation[]): KubeObject {
  // validate = true: every op must be applicable as written (paths exist, indices in range).
  return fastJsonPatch.applyPatch(structuredClone(original), ops, true, true).newDocument as KubeObject;
}

/** Structural checks of a Pod; returns the list of problems (empty when valid). */
function podProblems(pod: KubeObject): string[] {
  const problems: string[] = [];
  const spec = pod.spec ?? {};
  const containers: KubeObject[] = spec.containers ?? [];
  const inits: KubeObject[] = spec.initContainers ?? [];
  const volumes: KubeObject[] = spec.volumes ?? [];
  const names = [...containers, ...inits].map((c) => c.name);
  if (new Set(names).size !== names.length) problems.push(`duplicate container names: ${names.join(',')}`);
  const vnames = volumes.map((v) => v.name);
  if (new Set(vnames).size !== vnames.length) problems.push(`duplicate volume names: ${vnames.join(',')}`);
  for (const c of [...containers, ...inits])
    for (const m of c.volumeMounts ?? []) if (!vnames.includes(m.name)) problems.push(`${c.name} mounts missing volume ${m.name}`);
  for (const v of volumes) if (v.csi && v.csi.readOnly !== true) problems.push(`CSI volume ${v.name} is not read-only`);
  for (const c of containers) if (c.restartPolicy !== undefined) problems.push(`container ${c.name} has restartPolicy`);
  for (const c of inits)
    if (c.restartPolicy !== undefined && c.restartPolicy !== 'Always') problems.push(`init container ${c.name} restartPolicy ${c.restartPolicy}`);
  if (containers.length === 0) problems.push('no containers');
  return problems;
}

test('injecting twice equals injecting once; the second webhook call returns no patch', () => {
  fc.assert(
    fc.property(podArb, configArb, (pod, cfg) => {
      const frozen = structuredClone(pod);
      const first = injectTemplate(pod, cfg, ctx(pod));
      assert.deepEqual(pod, frozen, 'the input pod must not be modified');
      if (first.outcome !== 'inject') {
        // skip and deny are stable too: the same input gives the same outcome.
        assert.deepEqual(injectTemplate(pod, cfg, ctx(pod)), first);
        return;
      }
      const second = injectTemplate(first.template, cfg, ctx(pod));
      assert.equal(second.outcome, 'inject');
      if (second.outcome !== 'inject') return;
      assert.ok(jsonEqual(second.template, first.template), 'second injection changed the pod');
      const again = mutate(request(first.template), { config: cfg });
      assert.equal(again.response.allowed, true);
      assert.equal(again.response.patch, undefined, 'a re-invocation must return no patch');
      // ... also on the pod as the API server hands it back: defaulted after our patch.
      const defaulted = apiServerDefaults(first.template);
      const reinvoked = mutate(request(defaulted), { config: cfg });
      assert.equal(reinvoked.response.allowed, true);
      assert.equal(reinvoked.response.patch, undefined, 'a re-invocation of the defaulted pod must return no patch');
    }),
    { numRuns: 400 },
  );
});

/** A later webhook's insertions: each into a list, at a position (taken modulo the list's length + 1). */
const laterArb = fc.array(fc.record({ list: fc.constantFrom('containers', 'initContainers', 'volumes'), at: fc.oneof(fc.constant(0), fc.nat()) }), { minLength: 1, maxLength: 4 });

function insertLater(pod: KubeObject, edits: { list: string; at: number }[]): KubeObject {
  const out = structuredClone(pod);
  edits.forEach(({ list, at }, k) => {
    const arr: KubeObject[] = (out.spec[list] ??= []);
    const item = list === 'volumes' ? { name: `later-${k}`, emptyDir: { medium: 'Memory' } } : { name: `later-${k}`, image: 'docker.io/istio/proxyv2:1.22.0' };
    arr.splice(at % (arr.length + 1), 0, item);
  });
  return apiServerDefaults(out);
}

test('after a later webhook inserts containers, init containers and volumes anywhere, a re-invocation is a no-op (or restores proxy-init first)', () => {
  let reinvoked = 0;
  let replaced = 0;
  fc.assert(
    fc.property(podArb, configArb, laterArb, (pod, cfg, edits) => {
      const first = injectTemplate(pod, cfg, ctx(pod));
      if (first.outcome !== 'inject') return;
      const later = insertLater(apiServerDefaults(first.template), edits);
      const ours = new Set(first.status.initContainers);
      const inits: KubeObject[] = later.spec.initContainers ?? [];
      let lastOurs = -1;
      inits.forEach((c, i) => ours.has(c.name) && (lastOurs = i));
      // the one ordering guarantee a later webhook can break: proxy-init first, ours (native sidecars) right after it
      const broken = ours.has('proxy-init') && inits.some((c, i) => i < lastOurs && c.name.startsWith('later-'));
      reinvoked++;
      const decision = mutate(request(later), { config: cfg });
      assert.equal(decision.response.allowed, true);
      const ops = decodePatch(decision.response.patch);
      assert.equal(ops.length > 0, broken, `patch: ${JSON.stringify(ops.map((o) => [o.op, o.path]))}`);
      // the later webhook's items (and the pod's own) are never sent again
      assert.ok(!JSON.stringify(ops).includes('later-'), JSON.stringify(ops.map((o) => [o.op, o.path])));
      const result = injectTemplate(later, cfg, ctx(pod));
      assert.ok(result.outcome === 'inject');
      const patched = apply(later, ops);
      assert.ok(jsonEqual(patched, result.template), 'the patch does not reproduce the injected pod');
      assert.deepEqual(podProblems(patched), []);
      for (const list of ['containers', 'initContainers', 'volumes']) {
        const others = (l: KubeObject[] | undefined) => (l ?? []).map((x) => x.name).filter((n: string) => !RESERVED.has(n));
        assert.deepEqual(others(patched.spec[list]), others(later.spec[list]), `${list}: the pod's and the later webhook's items moved`);
      }
      if (ours.has('proxy-init')) assert.equal(patched.spec.initContainers[0].name, 'proxy-init');
      if (broken) {
        replaced++;
        assert.equal(mutate(request(apiServerDefaults(patched)), { config: cfg }).response.patch, undefined, 'the next re-invocation must be a no-op');
      }
    }),
    { numRuns: 600 },
  );
  assert.ok(reinvoked > 100 && replaced > 5, `too few cases generated (${reinvoked} re-invoked, ${replaced} re-placed)`);
});

test('the list diff never sends again an item the mutated list shares with the original, whatever is removed or inserted around it', () => {
  const item = fc.record({ name: dnsName, n: fc.integer() });
  fc.assert(
    fc.property(
      fc.array(item, { maxLength: 12 }),
      fc.array(fc.tuple(fc.boolean(), fc.nat()), { maxLength: 12 }),
      fc.array(fc.tuple(fc.nat(), item, fc.boolean()), { maxLength: 6 }),
      fc.boolean(),
      (items, keep, inserts, shuffle) => {
        const before = items.map((x) => ({ ...x }));
        const shared = before.filter((_, i) => keep[i]?.[0] ?? true);
        const after: KubeObject[] = [...shared];
        // fresh items, some equal (not identical) to one of the original's: a piece of ours rendered afresh
        for (const [at, fresh, copy] of inserts) after.splice(at % (after.length + 1), 0, copy && before.length ? { ...before[at % before.length]! } : fresh);
        if (shuffle && after.length > 1) after.push(after.shift()!);
        const a = { spec: { containers: before } };
        const b = { spec: { containers: after } };
        const ops = createPatch(a, b);
        assert.ok(jsonEqual(apply(a, ops), b), 'the patch does not reproduce the list');
        const inOrder = shared.every((x, i) => i === 0 || after.indexOf(x) > after.indexOf(shared[i - 1]!));
        if (!inOrder) return;
        const sent = new Set<unknown>();
        for (const o of ops) if ('value' in o) for (const v of Array.isArray(o.value) ? o.value : [o.value]) sent.add(v);
        for (const x of shared) assert.ok(!sent.has(x), `a shared item was sent again: ${JSON.stringify(ops)}`);
        // removals and insertions only, at most one per item not shared (a list that shares nothing may be replaced)
        const kept = shared.filter((x) => after.includes(x)).length;
        if (!kept) return;
        const unshared = before.length + after.length - 2 * kept;
        assert.ok(ops.every((o) => o.op === 'add' || o.op === 'remove') && ops.length <= unshared, JSON.stringify(ops));
      },
    ),
    { numRuns: 1000 },
  );
});

test('a check-only injection (lint, /validate of workloads) gives the same outcome, denial and warnings as the real one', () => {
  fc.assert(
    fc.property(podArb, configArb, (pod, cfg) => {
      const real = injectTemplate(pod, cfg, ctx(pod));
      const check = injectTemplate(pod, cfg, { ...ctx(pod), checkOnly: true });
      assert.equal(check.outcome, real.outcome);
      if (real.outcome === 'deny' && check.outcome === 'deny') assert.deepEqual(check, real);
      if (real.outcome === 'skip' && check.outcome === 'skip') assert.equal(check.reason, real.reason);
      if (real.outcome === 'inject' && check.outcome === 'inject') {
        assert.deepEqual(check.warnings, real.warnings);
        assert.deepEqual(check.status, real.status);
      }
    }),
    { numRuns: 400 },
  );
});

test('the patch applies to the original and yields exactly the injected pod, which is a valid Pod', () => {
  let injectedCount = 0;
  fc.assert(
    fc.property(podArb, configArb, (pod, cfg) => {
      const result = injectTemplate(pod, cfg, ctx(pod));
      const decision = mutate(request(pod), { config: cfg });
      if (result.outcome !== 'inject') {
        assert.equal(decision.response.patch, undefined);
        assert.equal(decision.response.allowed, result.outcome === 'skip');
        return;
      }
      injectedCount++;
      // the pure diff
      const ops = createPatch(pod, result.template);
      assert.ok(jsonEqual(apply(pod, ops), result.template), 'createPatch result does not reproduce the injected pod');
      // what the webhook sends (base64 JSONPatch)
      assert.equal(decision.response.allowed, true);
      const sent = decodePatch(decision.response.patch);
      if (sent.length) assert.equal(decision.response.patchType, 'JSONPatch');
      const patched = apply(pod, sent);
      assert.ok(jsonEqual(patched, result.template), 'the webhook patch does not reproduce the injected pod');
      assert.deepEqual(podProblems(patched), []);
      // injected pieces are where the contract says
      const spec = patched.spec;
      for (const v of spec.volumes ?? []) if (v.name === 'spire-agent-socket') assert.equal(v.csi.readOnly, true);
      if (result.status.initContainers.includes('proxy-init')) assert.equal(spec.initContainers[0].name, 'proxy-init');
    }),
    { numRuns: 400 },
  );
  assert.ok(injectedCount > 50, `too few injected cases generated (${injectedCount})`);
});

test('the real kubectl patch --local applies the webhook patch to the same pod (sample)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kagenti-prop-'));
  try {
    const injectable = fc
      .tuple(podArb, configArb)
      .filter(([pod, cfg]) => injectTemplate(pod, cfg, ctx(pod)).outcome === 'inject');
    const samples = fc.sample(injectable, { numRuns: 12, seed: 20240611 });
    assert.equal(samples.length, 12);
    for (const [pod, cfg] of samples) {
      const result = injectTemplate(pod, cfg, ctx(pod));
      assert.equal(result.outcome, 'inject');
      if (result.outcome !== 'inject') continue;
      const decision = mutate(request(pod), { config: cfg });
      const ops = decodePatch(decision.response.patch);
      if (!ops.length) continue;
      const podFile = join(dir, 'pod.json');
      const patchFile = join(dir, 'patch.json');
      writeFileSync(podFile, JSON.stringify(pod));
      writeFileSync(patchFile, JSON.stringify(ops));
      const out = execFileSync('kubectl', ['patch', '--local', '-f', podFile, '--type', 'json', '--patch-file', patchFile, '-o', 'json'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const patched = JSON.parse(out) as KubeObject;
      assert.ok(jsonEqual(patched, result.template), `kubectl result differs from the injected pod:\n${out}`);
      assert.deepEqual(podProblems(patched), []);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
