// The injection core is pure: it never writes to its input (checked by deep-freezing every input: a write to a
// frozen object throws in module code), and the same input gives the same output.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { KubeObject } from '../webhook/admission.ts';
import { defaultConfig, parseConfig } from '../webhook/config.ts';
import { denialText, injectTemplate, jsonEqual, MAX_DENIALS, warningName } from '../webhook/inject.ts';
import { getPodTemplate, podSpecFieldPath } from '../webhook/workloads.ts';
import { podLevelResourceProblems, ROOT } from './helpers.ts';
import { KUBECTL_YAML } from '../webhook/kubectl-yaml.ts';
import { checkInjection } from '../webhook/rules.ts';

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null) {
    for (const k of Object.keys(v)) deepFreeze((v as Record<string, unknown>)[k]);
    Object.freeze(v);
  }
  return v;
}

const DIR = join(ROOT, 'test', 'golden');
const inputs: [string, KubeObject][] = [];
for (const f of readdirSync(DIR).filter((n) => n.endsWith('.yaml') && !n.endsWith('.config.yaml')).sort())
  for (const doc of parseAllDocuments(readFileSync(join(DIR, f), 'utf8'), KUBECTL_YAML) as any[]) {
    const js = doc.toJS();
    if (!js) continue;
    for (const o of js.kind === 'List' ? js.items : [js]) if (getPodTemplate(o)) inputs.push([f, o]);
  }

const configs = [defaultConfig(), parseConfig('featureGates:\n  nativeSidecars: true\n  injectTools: true\nspiffeHelper:\n  configMap: helper\n')];

test('injection never writes to its input and is deterministic', () => {
  assert.ok(inputs.length >= 30);
  let injected = 0;
  for (const cfg of configs)
    for (const [file, obj] of inputs) {
      const before = structuredClone(obj);
      const frozen = deepFreeze(structuredClone(obj));
      const tpl = getPodTemplate(frozen)!;
      const ctx = { namespace: 'team-a', ref: `${file}` };
      const a = injectTemplate(tpl.template, cfg, ctx, podSpecFieldPath(frozen.kind));
      const b = injectTemplate(tpl.template, cfg, ctx, podSpecFieldPath(frozen.kind));
      assert.deepEqual(frozen, before, `${file}: input changed`);
      assert.ok(jsonEqual(a, b), `${file}: two runs differ`);
      if (a.outcome === 'inject') {
        injected++;
        // injecting the result again changes nothing (idempotent); a template no longer to be injected whose earlier
        // injection was taken out is skipped as it is
        const again = injectTemplate(deepFreeze(a.template), cfg, ctx, podSpecFieldPath(frozen.kind));
        if (again.outcome === 'skip' && a.injected.length === 0) continue;
        assert.equal(again.outcome, 'inject');
        if (again.outcome === 'inject') assert.ok(jsonEqual(again.template, a.template), `${file}: second injection differs`);
      }
    }
  assert.ok(injected >= 40, `only ${injected} injections`);
});

const STATUS = 'kagenti.io/authbridge-status';
const FULL_RECORD = JSON.stringify({ version: '0.1.0', mode: 'proxy-sidecar', containers: ['spiffe-helper', 'authbridge-proxy'], initContainers: ['proxy-init'], volumes: ['spire-agent-socket', 'svid-output', 'spiffe-helper-config'] });

function agentPod(labels: Record<string, string>, annotations: Record<string, string>, spec: KubeObject): KubeObject {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'a', namespace: 'team', labels: { 'kagenti.io/type': 'agent', ...labels }, annotations }, spec: { serviceAccountName: 'a', ...spec } };
}
const ctxFor = { namespace: 'team', ref: 'Pod team/a' };

test('a record (stale or forged) never takes away a piece that is opted out: its names are the pod\'s', () => {
  const pod = agentPod({ 'kagenti.io/spiffe-helper-inject': 'false' }, { [STATUS]: FULL_RECORD }, {
    containers: [
      { name: 'app', image: 'x', volumeMounts: [{ name: 'svid-output', mountPath: '/certs' }] },
      { name: 'spiffe-helper', image: 'my/own-helper:1', volumeMounts: [{ name: 'svid-output', mountPath: '/certs' }] },
    ],
    volumes: [{ name: 'svid-output', emptyDir: {} }],
  });
  const r = injectTemplate(pod, defaultConfig(), ctxFor);
  assert.equal(r.outcome, 'inject');
  if (r.outcome !== 'inject') return;
  const spec = r.template.spec;
  assert.deepEqual(spec.containers.map((c: KubeObject) => c.name), ['authbridge-proxy', 'app', 'spiffe-helper']);
  assert.deepEqual(spec.containers[2], pod.spec.containers[1], 'the user\'s own spiffe-helper is kept as it was');
  assert.deepEqual(spec.volumes, pod.spec.volumes, 'the user\'s own svid-output is kept');
  assert.deepEqual(JSON.parse(r.template.metadata.annotations[STATUS]).containers, ['authbridge-proxy']);
  // A piece that is injected takes its recorded names back: a user's container of that name is replaced.
  const enabled = injectTemplate(agentPod({}, { [STATUS]: FULL_RECORD }, { containers: [{ name: 'app', image: 'x' }, { name: 'authbridge-proxy', image: 'stale' }] }), defaultConfig(), ctxFor);
  assert.equal(enabled.outcome, 'inject');
  if (enabled.outcome === 'inject') assert.equal(enabled.template.spec.containers.find((c: KubeObject) => c.name === 'authbridge-proxy').image, defaultConfig().authBridge.images.proxySidecar);
});

test('a piece injected earlier and no longer injected (opted out, waypoint) is taken out, as its record says', () => {
  const cfg = defaultConfig();
  const first = injectTemplate(agentPod({}, {}, { containers: [{ name: 'app', image: 'x' }] }), cfg, ctxFor);
  assert.equal(first.outcome, 'inject');
  if (first.outcome !== 'inject') return;
  const names = (t: KubeObject) => [...(t.spec.initContainers ?? []), ...t.spec.containers].map((c: KubeObject) => c.name);
  const volumes = (t: KubeObject) => (t.spec.volumes ?? []).map((v: KubeObject) => v.name);
  const again = (labels: Record<string, string>, annotations: Record<string, string>) => {
    const pod = structuredClone(first.template);
    Object.assign(pod.metadata.labels, labels);
    Object.assign(pod.metadata.annotations, annotations);
    const r = injectTemplate(pod, cfg, ctxFor);
    assert.equal(r.outcome, 'inject');
    return r.outcome === 'inject' ? r.template : pod;
  };
  const waypoint = again({}, { 'kagenti.io/authbridge-mode': 'waypoint' });
  assert.deepEqual(names(waypoint), ['spiffe-helper', 'app']);
  const noSpire = again({ 'kagenti.io/spiffe-helper-inject': 'false' }, {});
  assert.deepEqual(names(noSpire), ['proxy-init', 'authbridge-proxy', 'app']);
  assert.deepEqual(volumes(noSpire), []);
  assert.equal(noSpire.metadata.annotations['kagenti.io/spiffe-helper-config'], undefined);
  // A name the mode does not inject stays the pod's: the user's own envoy-proxy under a record that lists one.
  const ownEnvoy = structuredClone(first.template);
  ownEnvoy.metadata.annotations['kagenti.io/authbridge-status'] = ownEnvoy.metadata.annotations['kagenti.io/authbridge-status'].replace('"authbridge-proxy"', '"authbridge-proxy","envoy-proxy"');
  ownEnvoy.spec.containers.push({ name: 'envoy-proxy', image: 'envoyproxy/envoy:v1.30.1' });
  const kept = injectTemplate(ownEnvoy, cfg, ctxFor);
  assert.ok(kept.outcome === 'inject' && kept.template.spec.containers.some((c: KubeObject) => c.name === 'envoy-proxy' && c.image === 'envoyproxy/envoy:v1.30.1'));
  // proxy-init goes with a proxy of ours that goes, even when its image is no longer the configured one.
  const mirrored = parseConfig('authBridge:\n  images:\n    proxyInit: mirror.example/proxy-init:v0.4.0\n');
  const wp = structuredClone(first.template);
  wp.metadata.annotations['kagenti.io/authbridge-mode'] = 'waypoint';
  const r = injectTemplate(wp, mirrored, ctxFor);
  assert.ok(r.outcome === 'inject' && !names(r.template).includes('proxy-init') && !names(r.template).includes('authbridge-proxy'), JSON.stringify(r.outcome === 'inject' && names(r.template)));
  // Switching the proxy mode when the running proxy's image is no longer one the config names (a mirror): the
  // recorded proxy binds our ports, so it is ours and is replaced, not kept to clash.
  const mirror = parseConfig('authBridge:\n  images:\n    proxySidecar: mirror.example/authbridge-proxy:v1\n    lite: mirror.example/authbridge-lite:v1\n    envoy: mirror.example/envoy:v1\n    proxyInit: mirror.example/proxy-init:v1\n');
  const toEnvoy = structuredClone(first.template);
  toEnvoy.metadata.annotations['kagenti.io/authbridge-mode'] = 'envoy-sidecar';
  const switched = injectTemplate(toEnvoy, mirror, ctxFor);
  assert.equal(switched.outcome, 'inject', JSON.stringify(switched));
  if (switched.outcome === 'inject') assert.deepEqual(names(switched.template), ['proxy-init', 'spiffe-helper', 'envoy-proxy', 'app']);
  // and back: the pieces come back, no reserved-name denial
  const backPod = structuredClone(waypoint);
  delete backPod.metadata.annotations['kagenti.io/authbridge-mode'];
  const back = injectTemplate(backPod, cfg, ctxFor);
  assert.equal(back.outcome, 'inject');
  if (back.outcome === 'inject') assert.deepEqual(names(back.template), names(first.template));
});

test('a volume like ours counts as ours whether or not the API server\'s defaults are written out', () => {
  const cfg = defaultConfig();
  const first = injectTemplate(agentPod({}, {}, { containers: [{ name: 'app', image: 'x' }] }), cfg, ctxFor);
  assert.equal(first.outcome, 'inject');
  if (first.outcome !== 'inject') return;
  const ours = first.template.spec.volumes.find((v: KubeObject) => v.name === 'spiffe-helper-config');
  assert.equal(ours.downwardAPI.defaultMode, 420, 'injected in the form the API server defaults it to');
  assert.equal(ours.downwardAPI.items[0].fieldRef.apiVersion, 'v1');
  const bare = structuredClone(ours);
  delete bare.downwardAPI.defaultMode;
  delete bare.downwardAPI.items[0].fieldRef.apiVersion;
  for (const volume of [ours, bare]) {
    const r = injectTemplate(agentPod({}, {}, { containers: [{ name: 'app', image: 'x' }], volumes: [volume] }), cfg, ctxFor);
    assert.equal(r.outcome, 'inject', JSON.stringify(volume));
    if (r.outcome === 'inject') assert.ok(!JSON.parse(r.template.metadata.annotations[STATUS]).volumes.includes('spiffe-helper-config'), 'reused, not injected again');
  }
  const other = structuredClone(bare);
  other.downwardAPI.defaultMode = 0o600;
  assert.equal(injectTemplate(agentPod({}, {}, { containers: [{ name: 'app', image: 'x' }], volumes: [other] }), cfg, ctxFor).outcome, 'deny');
});

test('a pod meant to finish (restartPolicy Never or OnFailure) is warned that ordinary sidecars keep it running', () => {
  const cfg = defaultConfig();
  for (const rp of ['Never', 'OnFailure']) {
    const r = injectTemplate(agentPod({}, {}, { restartPolicy: rp, containers: [{ name: 'app', image: 'x' }] }), cfg, ctxFor);
    assert.equal(r.outcome, 'inject');
    if (r.outcome === 'inject') assert.ok(r.warnings.some((w) => w.includes(`spec.restartPolicy is ${rp}, so it is meant to finish`) && w.includes('kagenti.io/native-sidecars: "true"')), JSON.stringify(r.warnings));
  }
  for (const [labels, annotations, spec] of [
    [{}, { 'kagenti.io/native-sidecars': 'true' }, { restartPolicy: 'Never' }],
    [{}, {}, { restartPolicy: 'Always' }],
    [{ 'kagenti.io/authbridge-inject': 'false', 'kagenti.io/spiffe-helper-inject': 'false' }, {}, { restartPolicy: 'Never' }],
  ] as const) {
    const r = injectTemplate(agentPod(labels, annotations, { ...spec, containers: [{ name: 'app', image: 'x' }] }), cfg, ctxFor);
    const warnings = r.outcome === 'inject' ? r.warnings : [];
    assert.ok(!warnings.some((w) => w.includes('meant to finish')), JSON.stringify({ labels, annotations, spec, warnings }));
  }
});

test('a manifest with only the deprecated spec.serviceAccount gets the SPIFFE ID of that ServiceAccount (the API server copies it over)', () => {
  const spiffeId = (spec: KubeObject) => {
    const pod = agentPod({}, {}, { containers: [{ name: 'app', image: 'x' }], ...spec });
    if (!('serviceAccountName' in spec)) delete pod.spec.serviceAccountName; // agentPod sets one
    const r = injectTemplate(pod, defaultConfig(), ctxFor);
    assert.equal(r.outcome, 'inject');
    if (r.outcome !== 'inject') return undefined;
    const proxy = r.template.spec.containers.find((c: KubeObject) => c.name === 'authbridge-proxy');
    return proxy.env.find((e: KubeObject) => e.name === 'SPIFFE_ID').value;
  };
  assert.match(spiffeId({ serviceAccount: 'weather-sa' }), /\/sa\/weather-sa$/);
  assert.match(spiffeId({ serviceAccountName: 'new-sa', serviceAccount: 'old-sa' }), /\/sa\/new-sa$/);
  assert.match(spiffeId({}), /\/sa\/default$/);
});

test('unsupported-os: a Windows pod (spec.os.name) or one whose nodeSelector picks Windows nodes is denied, naming the field', () => {
  const cfg = defaultConfig();
  const app = [{ name: 'app', image: 'x' }];
  const os = injectTemplate(agentPod({}, {}, { os: { name: 'windows' }, containers: app }), cfg, ctxFor);
  assert.equal(os.outcome, 'deny');
  if (os.outcome === 'deny') {
    assert.equal(os.rule, 'unsupported-os');
    assert.match(os.message, /^\[unsupported-os\] Pod team\/a: spec\.os\.name is windows, but the injected containers \(proxy-init, spiffe-helper, authbridge-proxy\) are Linux-only\./);
    assert.match(os.message, /Fix: run the agent on Linux nodes, or label the pod kagenti\.io\/inject: disabled\.$/);
  }
  const sel = injectTemplate(agentPod({}, {}, { nodeSelector: { 'kubernetes.io/os': 'windows' }, containers: app }), cfg, ctxFor, 'spec.template.spec');
  assert.equal(sel.outcome, 'deny');
  if (sel.outcome === 'deny') {
    assert.equal(sel.rule, 'unsupported-os');
    assert.match(sel.message, /spec\.template\.spec\.nodeSelector\["kubernetes\.io\/os"\] is windows, so the pod runs on Windows nodes/);
  }
  // only spiffe-helper injected (AuthBridge opted out): still Linux-only, and the message names only it
  const helper = injectTemplate(agentPod({ 'kagenti.io/authbridge-inject': 'false' }, {}, { os: { name: 'windows' }, containers: app }), cfg, ctxFor);
  assert.ok(helper.outcome === 'deny' && helper.message.includes('(spiffe-helper)') && !helper.message.includes('iptables'), JSON.stringify(helper));
  // Linux pods, and Windows pods that opt out of everything, are not touched by the rule
  for (const spec of [{ os: { name: 'linux' } }, { nodeSelector: { 'kubernetes.io/os': 'linux' } }, { os: 'windows' }, { nodeSelector: null }])
    assert.equal(injectTemplate(agentPod({}, {}, { ...spec, containers: app }), cfg, ctxFor).outcome, 'inject', JSON.stringify(spec));
  const none = injectTemplate(agentPod({ 'kagenti.io/authbridge-inject': 'false', 'kagenti.io/spiffe-helper-inject': 'false' }, {}, { os: { name: 'windows' }, containers: app }), cfg, ctxFor);
  assert.equal(none.outcome, 'skip');
  assert.equal(injectTemplate(agentPod({ 'kagenti.io/inject': 'disabled' }, {}, { os: { name: 'windows' }, containers: app }), cfg, ctxFor).outcome, 'skip');
});

test('unsupported-os: a pod whose required node affinity rules Linux out in every term is denied; one that may still land on Linux is not', () => {
  const cfg = defaultConfig();
  const app = [{ name: 'app', image: 'x' }];
  const os = (operator: unknown, values: unknown) => ({ key: 'kubernetes.io/os', operator, values });
  const required = (nodeSelectorTerms: unknown) => ({ affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms } } } });
  const run = (spec: KubeObject, path?: string) => injectTemplate(deepFreeze(agentPod({}, {}, { ...spec, containers: app })), cfg, ctxFor, path);

  const denied: [string, unknown][] = [
    ['In windows', [{ matchExpressions: [os('In', ['windows'])] }]],
    ['NotIn linux', [{ matchExpressions: [os('NotIn', ['linux', 'darwin'])] }]],
    // one excluding expression in a term suffices (expressions are ANDed), whatever else the term says
    ['ANDed', [{ matchExpressions: [{ key: 'zone', operator: 'Exists' }, os('In', ['windows']), { key: 'kubernetes.io/arch', operator: 'In', values: ['amd64'] }], matchFields: [{ key: 'metadata.name', operator: 'In', values: ['n1'] }] }]],
    // every term (ORed) rules Linux out, each its own way
    ['every term', [{ matchExpressions: [os('In', ['windows'])] }, { matchExpressions: [os('NotIn', ['linux'])] }]],
  ];
  for (const [what, terms] of denied) {
    const r = run(required(terms), 'spec.template.spec');
    assert.equal(r.outcome, 'deny', what);
    if (r.outcome !== 'deny') continue;
    assert.equal(r.rule, 'unsupported-os', what);
    assert.match(
      r.message,
      /^\[unsupported-os\] Pod team\/a: spec\.template\.spec\.affinity\.nodeAffinity\.requiredDuringSchedulingIgnoredDuringExecution rules out kubernetes\.io\/os=linux in every nodeSelectorTerm, so the pod runs only on non-Linux \(Windows\) nodes, but the injected containers \(proxy-init, spiffe-helper, authbridge-proxy\) are Linux-only\. A Windows node cannot run them, and proxy-init's traffic redirect \(iptables\) exists only on Linux\. Fix: run the agent on Linux nodes, or label the pod template \(spec\.template\.metadata\.labels\) kagenti\.io\/inject: disabled\.$/,
      what,
    );
    assert.ok(!r.message.includes('\n'), what);
  }
  // spec.os.name and the nodeSelector are named first when they say windows too
  const both = run({ nodeSelector: { 'kubernetes.io/os': 'windows' }, ...required(denied[0]![1]) });
  assert.ok(both.outcome === 'deny' && both.message.includes('spec.nodeSelector["kubernetes.io/os"] is windows'), JSON.stringify(both));

  // Conservative: any term that could match a Linux node, or anything it cannot read, is not denied
  const allowed: [string, unknown][] = [
    ['In linux', [{ matchExpressions: [os('In', ['linux', 'windows'])] }]],
    ['NotIn windows', [{ matchExpressions: [os('NotIn', ['windows'])] }]],
    ['one term admits Linux', [{ matchExpressions: [os('In', ['windows'])] }, { matchExpressions: [os('In', ['linux'])] }]],
    ['a term without an os expression', [{ matchExpressions: [os('In', ['windows'])] }, { matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] }]],
    ['a term with only matchFields', [{ matchExpressions: [os('In', ['windows'])] }, { matchFields: [{ key: 'metadata.name', operator: 'In', values: ['n1'] }] }]],
    ['Exists', [{ matchExpressions: [os('Exists', undefined)] }]],
    ['DoesNotExist', [{ matchExpressions: [os('DoesNotExist', undefined)] }]],
    ['another key', [{ matchExpressions: [{ key: 'node.kubernetes.io/os', operator: 'In', values: ['windows'] }] }]],
    ['no terms', []],
    ['empty In', [{ matchExpressions: [os('In', [])] }]],
    ['values a string', [{ matchExpressions: [os('In', 'windows')] }]],
    ['NotIn values a string', [{ matchExpressions: [os('NotIn', 'linux')] }]],
    ['non-string values', [{ matchExpressions: [os('In', [1, null])] }]],
    ['lower-case operator', [{ matchExpressions: [os('in', ['windows'])] }]],
    ['null term', [null, { matchExpressions: [os('In', ['windows'])] }]],
    ['empty term', [{}]],
    ['matchExpressions a mapping', [{ matchExpressions: { 0: os('In', ['windows']) } }]],
    ['terms a mapping', { 0: { matchExpressions: [os('In', ['windows'])] } }],
    ['terms a string', 'windows'],
  ];
  for (const [what, terms] of allowed) assert.equal(run(required(terms)).outcome, 'inject', what);
  // hostile shapes above the terms: never a throw, never a denial
  for (const affinity of [null, 'x', 5, [], { nodeAffinity: null }, { nodeAffinity: [] }, { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: 'x' } }, { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [] } }, { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: null } }])
    assert.equal(run({ affinity }).outcome, 'inject', JSON.stringify(affinity));
  // preferred affinity never decides where a pod runs
  const preferred = { affinity: { nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 1, preference: { matchExpressions: [os('In', ['windows'])] } }] } } };
  assert.equal(run(preferred).outcome, 'inject');
  // a pod that opts out of every Linux-only container is not touched by the rule
  const none = injectTemplate(agentPod({ 'kagenti.io/authbridge-inject': 'false', 'kagenti.io/spiffe-helper-inject': 'false' }, {}, { ...required(denied[0]![1]), containers: app }), cfg, ctxFor);
  assert.equal(none.outcome, 'skip');
});

test('port-conflict compares protocols: a UDP or SCTP port on the proxy\'s number is allowed, TCP (or no protocol) is denied', () => {
  const cfg = defaultConfig();
  const withPort = (port: KubeObject) => injectTemplate(agentPod({}, {}, { containers: [{ name: 'app', image: 'x', ports: [{ containerPort: 8000 }, port] }] }), cfg, ctxFor);
  for (const protocol of ['UDP', 'SCTP']) {
    const r = withPort({ containerPort: 15124, protocol });
    assert.equal(r.outcome, 'inject', protocol);
    if (r.outcome === 'inject') assert.ok(r.template.spec.containers.some((c: KubeObject) => c.name === 'authbridge-proxy'));
  }
  for (const port of [{ containerPort: 15124, protocol: 'TCP' }, { containerPort: 15124 }, { containerPort: 15124, protocol: null }]) {
    const r = withPort(port);
    assert.equal(r.outcome, 'deny', JSON.stringify(port));
    if (r.outcome === 'deny') {
      assert.equal(
        r.message,
        "[port-conflict] Pod team/a: container app declares port 15124 (spec.containers[0].ports[1].containerPort), which the injected container authbridge-proxy (mode proxy-sidecar) needs for its inbound listener, which traffic to the pod goes through. Both would bind it in the pod's one network namespace. Fix: move the proxy with config authBridge.ports.inbound, or move your container's port.",
      );
      assert.deepEqual(r.field, ['spec', 'containers', 0, 'ports', 1, 'containerPort']);
    }
  }
  // a UDP port beside a TCP one of the same number still clashes on the TCP one
  assert.equal(injectTemplate(agentPod({}, {}, { containers: [{ name: 'app', image: 'x', ports: [{ containerPort: 15123, protocol: 'UDP' }, { containerPort: 15123, protocol: 'TCP', name: 'tcp' }] }] }), cfg, ctxFor).outcome, 'deny');
});

test('reserved-name: with spiffe-helper opted out, a mount of one of its volumes the pod does not define is denied, naming the container, the mount and the label', () => {
  const cfg = defaultConfig();
  const optOut = { 'kagenti.io/spiffe-helper-inject': 'false' };
  const mounting = (spec: KubeObject) =>
    injectTemplate(agentPod(optOut, {}, { containers: [{ name: 'app', image: 'x' }, { name: 'agent', image: 'y', volumeMounts: [{ name: 'data', mountPath: '/d' }, { name: 'svid-output', mountPath: '/svid' }] }], volumes: [{ name: 'data', emptyDir: {} }], ...spec }), cfg, ctxFor);
  const r = mounting({});
  assert.equal(r.outcome, 'deny');
  if (r.outcome === 'deny') {
    assert.equal(r.rule, 'reserved-name');
    assert.equal(
      r.message,
      '[reserved-name] Pod team/a: container agent mounts volume svid-output (spec.containers[1].volumeMounts[1].name), which only the spiffe-helper injection provides, but the pod opts out of it (label kagenti.io/spiffe-helper-inject: "false") and defines no volume of that name. The API server would reject the pod (volumeMounts[1].name: Not found). Fix: remove the label kagenti.io/spiffe-helper-inject so spiffe-helper and its volumes are injected, or remove the mount.',
    );
  }
  // an init container mounting the socket volume, too
  const init = injectTemplate(agentPod(optOut, {}, { containers: [{ name: 'app', image: 'x' }], initContainers: [{ name: 'prep', image: 'x', volumeMounts: [{ name: 'spire-agent-socket', mountPath: '/s' }] }] }), cfg, ctxFor);
  assert.ok(init.outcome === 'deny' && init.message.includes('container prep mounts volume spire-agent-socket (spec.initContainers[0].volumeMounts[0].name)'), JSON.stringify(init));
  // the pod's own volume of that name: allowed, kept as it is
  const own = mounting({ volumes: [{ name: 'data', emptyDir: {} }, { name: 'svid-output', emptyDir: {} }] });
  assert.equal(own.outcome, 'inject');
  // spiffe-helper injected: the volume is there, the mount is fine
  const withHelper = injectTemplate(agentPod({}, {}, { containers: [{ name: 'agent', image: 'y', volumeMounts: [{ name: 'svid-output', mountPath: '/svid' }] }] }), cfg, ctxFor);
  assert.equal(withHelper.outcome, 'inject');
});

test('init containers of the pod that run before the proxy exists (proxy-init, no native sidecars) are warned about, by name', () => {
  const cfg = defaultConfig();
  const initWarning = (r: ReturnType<typeof injectTemplate>) => (r.outcome === 'inject' ? r.warnings.filter((w) => w.includes('redirects outbound traffic')) : []);
  const app = [{ name: 'app', image: 'x' }];
  const one = injectTemplate(agentPod({}, {}, { containers: app, initContainers: [{ name: 'wait-db', image: 'busybox' }] }), cfg, ctxFor);
  assert.deepEqual(initWarning(one), [
    '[init-before-proxy] Pod team/a: init container wait-db runs after proxy-init redirects outbound traffic to the proxy but before the proxy starts (no native sidecars). Any outbound connection it makes fails, and a wait or download loop keeps the pod in Init. Fix: annotate the pod kagenti.io/native-sidecars: "true" (Kubernetes 1.29+ on the API server and every node\'s kubelet) so the proxy starts first, or make that init container need no network.',
  ]);
  // several: named (at most three); the pod's own native sidecars (restartPolicy Always) among them, and said to hold the proxy back
  const many = injectTemplate(
    agentPod({}, {}, { containers: app, initContainers: ['a', 'b', 'c', 'd', 'e'].map((name) => ({ name, image: 'x' })).concat([{ name: 'shipper', image: 'x', restartPolicy: 'Always' } as any]) }),
    cfg,
    ctxFor,
  );
  assert.equal(initWarning(many).length, 1);
  assert.match(initWarning(many)[0]!, /: init containers a, b, c and 3 more run after proxy-init/);
  assert.match(initWarning(many)[0]!, / shipper is a native sidecar of the pod: the proxy starts only once it has started, so a startup probe that needs the network never passes\. Fix: /);
  // only a native sidecar of the pod (a cloud-sql-proxy with a startup probe): warned too, the reviewer's case
  const nativeOnly = injectTemplate(
    agentPod({}, {}, { containers: app, initContainers: [{ name: 'cloud-sql-proxy', image: 'x', restartPolicy: 'Always', startupProbe: { httpGet: { path: '/startup', port: 9090 } } }] }),
    cfg,
    ctxFor,
  );
  assert.match(initWarning(nativeOnly)[0]!, /^\[init-before-proxy\] Pod team\/a: init container cloud-sql-proxy runs after proxy-init .* cloud-sql-proxy is a native sidecar of the pod/);
  // one running as the proxy's uid is left out of the redirect: proxy-uid says so, init-before-proxy does not contradict it
  const asProxy = injectTemplate(
    agentPod({}, {}, { containers: app, initContainers: [{ name: 'fetch-model', image: 'x', securityContext: { runAsUser: 1337 } }] }),
    cfg,
    ctxFor,
  );
  assert.ok(asProxy.outcome === 'inject');
  if (asProxy.outcome === 'inject') {
    assert.deepEqual(initWarning(asProxy), []);
    assert.ok(asProxy.warnings.some((w) => w.startsWith('[proxy-uid] ') && w.includes('fetch-model')));
  }
  const podAsProxy = injectTemplate(
    agentPod({}, {}, { securityContext: { runAsUser: 1337 }, containers: app, initContainers: [{ name: 'fetch-model', image: 'x' }, { name: 'other', image: 'x', securityContext: { runAsUser: 1000 } }] }),
    cfg,
    ctxFor,
  );
  assert.match(initWarning(podAsProxy)[0]!, /: init container other runs after/);
  assert.match(initWarning(many)[0]!, /make those init containers need no network\.$/);
  // no warning: native sidecars, no proxy-init (egress enforcement off, waypoint, AuthBridge opted out)
  const egressOff = parseConfig('authBridge:\n  egressEnforcement: none\n');
  for (const [labels, annotations, spec, c] of [
    [{}, { 'kagenti.io/native-sidecars': 'true' }, {}, cfg],
    [{}, { 'kagenti.io/authbridge-mode': 'waypoint' }, {}, cfg],
    [{ 'kagenti.io/authbridge-inject': 'false' }, {}, {}, cfg],
    [{}, {}, {}, egressOff],
  ] as const) {
    const r = injectTemplate(agentPod(labels, annotations, { containers: app, initContainers: [{ name: 'wait-db', image: 'busybox' }], ...spec }), c, ctxFor);
    assert.equal(r.outcome, 'inject');
    assert.deepEqual(initWarning(r), [], JSON.stringify({ labels, annotations, spec }));
  }
  // injecting again (the injected pod, proxy-init now among its init containers) warns the same, never about proxy-init
  if (one.outcome === 'inject') assert.deepEqual(initWarning(injectTemplate(one.template, cfg, ctxFor)), initWarning(one));
});

test('a container of the pod running as the proxy\'s uid 1337 (its own or the pod\'s securityContext) is warned that its traffic skips the proxy', () => {
  const cfg = defaultConfig();
  const uidWarning = (r: ReturnType<typeof injectTemplate>) => (r.outcome === 'inject' ? r.warnings.filter((w) => w.includes('as uid 1337')) : []);
  const own = injectTemplate(agentPod({}, {}, { containers: [{ name: 'agent', image: 'x', securityContext: { runAsUser: 1337 } }, { name: 'other', image: 'x' }] }), cfg, ctxFor);
  assert.deepEqual(uidWarning(own), [
    "[proxy-uid] Pod team/a: container agent runs as uid 1337 (spec.containers[0].securityContext.runAsUser), the proxy's own uid, which proxy-init leaves out of the redirect. Its outbound traffic skips the proxy, so AuthBridge does not see it. Fix: run it as another uid.",
  ]);
  // from the pod's securityContext: every container that does not set its own uid, init containers too
  const pod = injectTemplate(
    agentPod({}, {}, { securityContext: { runAsUser: 1337 }, initContainers: [{ name: 'prep', image: 'x', securityContext: { runAsUser: 1337 } }], containers: [{ name: 'agent', image: 'x' }, { name: 'safe', image: 'x', securityContext: { runAsUser: 1000 } }] }),
    cfg,
    ctxFor,
    'spec.template.spec',
  );
  assert.equal(uidWarning(pod).length, 1);
  assert.match(uidWarning(pod)[0]!, /: containers agent, prep run as uid 1337 \(spec\.template\.spec\.initContainers\[0\]\.securityContext\.runAsUser and spec\.template\.spec\.securityContext\.runAsUser\), .* Their outbound traffic skips the proxy.* Fix: run them as another uid\.$/);
  // no proxy-init, no redirect to skip: no warning
  for (const [labels, annotations, c] of [
    [{}, { 'kagenti.io/authbridge-mode': 'waypoint' }, cfg],
    [{ 'kagenti.io/authbridge-inject': 'false' }, {}, cfg],
    [{}, {}, parseConfig('authBridge:\n  egressEnforcement: none\n')],
  ] as const) {
    const r = injectTemplate(agentPod(labels, annotations, { containers: [{ name: 'agent', image: 'x', securityContext: { runAsUser: 1337 } }] }), c, ctxFor);
    assert.equal(r.outcome, 'inject');
    assert.deepEqual(uidWarning(r), []);
  }
  // our own sidecars run as 1337: injecting the injected pod again warns about the user's containers only
  if (own.outcome === 'inject') {
    // (the field path is the injected pod's own: two sidecars come before the agent there)
    assert.deepEqual(
      uidWarning(injectTemplate(own.template, cfg, ctxFor)),
      uidWarning(own).map((w) => w.replace('spec.containers[0]', 'spec.containers[2]')),
    );
    const clean = injectTemplate(agentPod({}, {}, { containers: [{ name: 'agent', image: 'x' }] }), cfg, ctxFor);
    assert.ok(clean.outcome === 'inject');
    if (clean.outcome === 'inject') assert.deepEqual(uidWarning(injectTemplate(clean.template, cfg, ctxFor)), []);
  }
});

test('Pod Security (README): proxy-init needs capabilities beyond baseline; without it the injected pieces meet restricted', () => {
  // Pod Security Standards: baseline's allowed capabilities, restricted's volume types
  const BASELINE_CAPS = ['AUDIT_WRITE', 'CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'KILL', 'MKNOD', 'NET_BIND_SERVICE', 'SETFCAP', 'SETGID', 'SETPCAP', 'SETUID', 'SYS_CHROOT'];
  const RESTRICTED_VOLUMES = ['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret'];
  const configs = [defaultConfig(), parseConfig('authBridge:\n  egressEnforcement: none\n'), parseConfig('spiffeHelper:\n  configMap: helper\nfeatureGates:\n  nativeSidecars: true\n')];
  let withInit = 0;
  let without = 0;
  for (const cfg of configs)
    for (const mode of ['proxy-sidecar', 'lite', 'envoy-sidecar', 'waypoint'])
      for (const labels of [{}, { 'kagenti.io/authbridge-inject': 'false' }] as Record<string, string>[]) {
        const r = injectTemplate(agentPod(labels, { 'kagenti.io/authbridge-mode': mode }, { containers: [{ name: 'app', image: 'x' }] }), cfg, ctxFor);
        assert.equal(r.outcome, 'inject');
        if (r.outcome !== 'inject') continue;
        const spec = r.template.spec;
        const ours = [...(spec.initContainers ?? []), ...spec.containers].filter((c: KubeObject) => c.name !== 'app');
        const init = ours.find((c: KubeObject) => c.name === 'proxy-init');
        const where = `${mode} ${JSON.stringify(labels)} egress=${cfg.authBridge.egressEnforcement}`;
        // injected exactly where the README says
        const expectInit = !('kagenti.io/authbridge-inject' in labels) && mode !== 'waypoint' && (mode === 'envoy-sidecar' || cfg.authBridge.egressEnforcement !== 'none');
        assert.equal(!!init, expectInit, where);
        if (init) {
          withInit++;
          const sc = init.securityContext;
          assert.deepEqual(sc.capabilities.add.filter((c: string) => !BASELINE_CAPS.includes(c)), ['NET_ADMIN', 'NET_RAW'], where);
          assert.equal(sc.runAsUser, 0);
          continue;
        }
        without++;
        for (const c of ours) {
          const sc = c.securityContext;
          assert.equal(sc.runAsNonRoot, true, `${where} ${c.name}`);
          assert.notEqual(sc.runAsUser, 0);
          assert.equal(sc.allowPrivilegeEscalation, false);
          assert.notEqual(sc.privileged, true);
          assert.ok(sc.capabilities.drop.includes('ALL'));
          assert.deepEqual((sc.capabilities.add ?? []).filter((x: string) => x !== 'NET_BIND_SERVICE'), []);
          assert.equal(sc.seccompProfile.type, 'RuntimeDefault');
          for (const port of c.ports ?? []) assert.equal(port.hostPort, undefined);
        }
        for (const v of spec.volumes ?? []) assert.ok(Object.keys(v).some((k) => RESTRICTED_VOLUMES.includes(k)), `${where} ${v.name}`);
        assert.equal(spec.hostNetwork ?? false, false);
      }
  assert.ok(withInit >= 6 && without >= 10, `${withInit} ${without}`);
});

test('Pod Security: a namespace that enforces baseline or restricted gets a warning when proxy-init is injected, none otherwise', () => {
  const pod = agentPod({}, {}, { containers: [{ name: 'app', image: 'x' }] });
  const psa = (level?: string): Record<string, string> => (level ? { 'pod-security.kubernetes.io/enforce': level } : {});
  const warned = (cfg: ReturnType<typeof defaultConfig>, p: KubeObject, level?: string) => {
    const r = injectTemplate(p, cfg, { ...ctxFor, namespaceLabels: psa(level) });
    assert.equal(r.outcome, 'inject');
    return r.outcome === 'inject' ? r.warnings.filter((w) => w.includes('Pod Security')) : [];
  };
  for (const level of ['baseline', 'restricted']) {
    const w = warned(defaultConfig(), pod, level);
    assert.equal(w.length, 1, level);
    assert.match(w[0], new RegExp(`^\\[pod-security\\] Pod team/a: namespace team enforces Pod Security "${level}" \\(label pod-security.kubernetes.io/enforce\\), .*proxy-init.*NET_ADMIN.*Fix: `));
  }
  // privileged, unset, or no proxy-init (waypoint mode, egressEnforcement none): nothing to say
  assert.deepEqual(warned(defaultConfig(), pod, 'privileged'), []);
  assert.deepEqual(warned(defaultConfig(), pod), []);
  const waypoint = agentPod({}, { 'kagenti.io/authbridge-mode': 'waypoint' }, { containers: [{ name: 'app', image: 'x' }] });
  assert.deepEqual(warned(defaultConfig(), waypoint, 'restricted'), []);
  assert.deepEqual(warned(parseConfig('authBridge:\n  egressEnforcement: none\n'), pod, 'restricted'), []);
});

test('every denial of a pod is listed, first the first the checks find; a hostile pod gets MAX_DENIALS and a count of the rest', () => {
  const cfg = defaultConfig();
  const pod = agentPod({}, {}, {
    hostNetwork: true,
    containers: [
      { name: 'app', image: 'x', ports: [{ containerPort: 15123 }, { containerPort: 8080 }, { containerPort: 15124 }] },
      { name: 'authbridge-proxy', image: 'mine' },
    ],
  });
  const r = injectTemplate(pod, cfg, ctxFor);
  assert.equal(r.outcome, 'deny');
  if (r.outcome !== 'deny') return;
  assert.deepEqual(
    r.all.map((d) => [d.rule, d.field?.join('.')]),
    [
      ['host-network', 'spec.hostNetwork'],
      ['reserved-name', 'spec.containers.1.name'],
      ['port-conflict', 'spec.containers.0.ports.0.containerPort'],
      ['port-conflict', 'spec.containers.0.ports.2.containerPort'],
    ],
  );
  assert.equal(r.rule, 'host-network');
  assert.equal(r.message, r.all[0]!.message);
  assert.equal(r.unlisted, 0);
  assert.equal(denialText(r).split('\n').length, 4);
  for (const line of denialText(r).split('\n')) assert.match(line, /^\[(host-network|reserved-name|port-conflict)\] Pod team\/a: .* Fix: /);

  // 5,000 containers on the proxy's port: ten listed, the rest counted, so the answer stays small
  const many = agentPod({}, {}, { containers: Array.from({ length: 5000 }, (_, i) => ({ name: `c${i}`, image: 'x', ports: [{ containerPort: 15123 }] })) });
  const m = injectTemplate(many, cfg, ctxFor);
  assert.ok(m.outcome === 'deny');
  if (m.outcome !== 'deny') return;
  assert.equal(m.all.length, MAX_DENIALS);
  assert.equal(m.unlisted, 5000 - MAX_DENIALS);
  const text = denialText(m);
  assert.ok(text.length < 5000, `${text.length} characters`);
  assert.match(text.split('\n').at(-1)!, new RegExp(`^\\(${5000 - MAX_DENIALS} more injection denials of the same pod are not listed\\.\\)$`));

  // an invalid annotation stops the checks: the rest depends on the mode it sets
  const bad = injectTemplate(agentPod({}, { 'kagenti.io/authbridge-mode': 'turbo', 'kagenti.io/native-sidecars': 'yes' }, { hostNetwork: true, containers: [{ name: 'app', image: 'x', ports: [{ containerPort: 15123 }] }] }), cfg, ctxFor);
  assert.ok(bad.outcome === 'deny');
  if (bad.outcome === 'deny') assert.deepEqual(bad.all.map((d) => d.rule), ['invalid-annotation', 'invalid-annotation']);
});

test('long lists: 20,000 volumes and 16,000 mounts of the pod\'s own svid-output (spiffe-helper opted out) inject, and a mount without the volume is denied at each container', () => {
  // Every name is looked up in a set built once: the mounts are not each checked against every volume.
  const cfg = defaultConfig();
  const optOut = { 'kagenti.io/spiffe-helper-inject': 'false' };
  const volumes = Array.from({ length: 20000 }, (_, i) => ({ name: `v${i}`, emptyDir: {} }));
  const mounts = Array.from({ length: 16000 }, (_, i) => ({ name: 'svid-output', mountPath: `/m${i}` }));
  const pod = agentPod(optOut, {}, { containers: [{ name: 'app', image: 'x', volumeMounts: mounts }], volumes: [...volumes, { name: 'svid-output', emptyDir: {} }] });
  const r = injectTemplate(pod, cfg, ctxFor);
  assert.equal(r.outcome, 'inject');
  if (r.outcome !== 'inject') return;
  assert.equal(r.template.spec.volumes, pod.spec.volumes, 'no volume of ours added, the pod\'s kept as they are');
  assert.deepEqual(r.template.spec.containers.map((c: KubeObject) => c.name), ['authbridge-proxy', 'app']);
  assert.deepEqual(r.template.spec.initContainers.map((c: KubeObject) => c.name), ['proxy-init']);

  // without the volume, each mount is denied; the ones listed name their container by its index in the pod
  const missing = agentPod(optOut, {}, {
    containers: Array.from({ length: 20000 }, (_, i) => ({ name: `c${i}`, image: 'x', volumeMounts: [{ name: 'svid-output', mountPath: '/s' }] })),
    volumes,
  });
  const d = injectTemplate(missing, cfg, ctxFor);
  assert.ok(d.outcome === 'deny');
  if (d.outcome !== 'deny') return;
  assert.deepEqual(d.all.map((x) => x.field?.join('.')), Array.from({ length: MAX_DENIALS }, (_, i) => `spec.containers.${i}.volumeMounts.0.name`));
  assert.equal(d.unlisted, 20000 - MAX_DENIALS);
});

test('long lists: 60,000 containers running as the proxy uid get one proxy-uid warning naming the first three by index', () => {
  // Each container's index comes from a map built once, not from a pass over the list per container.
  const n = 60000;
  const containers = Array.from({ length: n }, (_, i) => ({ name: `c${i}`, image: 'x', securityContext: { runAsUser: 1337 } }));
  const r = injectTemplate(agentPod({}, {}, { containers }), defaultConfig(), ctxFor);
  assert.ok(r.outcome === 'inject');
  if (r.outcome !== 'inject') return;
  const w = r.warnings.filter((x) => x.startsWith('[proxy-uid] '));
  assert.equal(w.length, 1);
  assert.match(w[0]!, new RegExp(`containers c0, c1, c2 and ${n - 3} more run as uid 1337 \\(spec\\.containers\\[0\\]\\.securityContext\\.runAsUser, spec\\.containers\\[1\\]\\.securityContext\\.runAsUser, spec\\.containers\\[2\\]\\.securityContext\\.runAsUser and ${n - 3} more\\)`));
});

// ---------- istio-sidecar: Istio's injector ran first (its webhooks sort before this one) ----------

/** A pod as Istio's sidecar injector (1.22, defaults) leaves it, before this webhook; `native`: its proxy a native sidecar. */
function istioPod(native = false, spec: KubeObject = {}): KubeObject {
  const proxy = {
    name: 'istio-proxy',
    image: 'docker.io/istio/proxyv2:1.22.0',
    args: ['proxy', 'sidecar'],
    readinessProbe: { httpGet: { path: '/healthz/ready', port: 15021 } },
    securityContext: { runAsUser: 1337, runAsGroup: 1337, runAsNonRoot: true, capabilities: { drop: ['ALL'] } },
    ...(native ? { restartPolicy: 'Always' } : {}),
  };
  const init = { name: 'istio-init', image: 'docker.io/istio/proxyv2:1.22.0', args: ['istio-iptables', '-u', '1337'], securityContext: { runAsUser: 0, runAsNonRoot: false, capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] } } };
  return agentPod({}, { 'sidecar.istio.io/status': '{"initContainers":["istio-init"],"containers":["istio-proxy"],"volumes":["istio-envoy"]}' }, {
    initContainers: native ? [init, proxy] : [init],
    containers: [{ name: 'agent', image: 'x', readinessProbe: { httpGet: { path: '/ready', port: 8000 } } }, ...(native ? [] : [proxy])],
    volumes: [{ name: 'istio-envoy', emptyDir: { medium: 'Memory' } }],
    ...spec,
  });
}

test('istio-sidecar: an agent pod that carries Istio\'s sidecar is warned, once, with fixes about the pod; Istio\'s own containers get no proxy-uid, init-before-proxy or probe-through-proxy warning', () => {
  for (const cfg of [defaultConfig(), parseConfig('authBridge:\n  mtlsMode: strict\n')])
    for (const native of [false, true]) {
      const r = injectTemplate(istioPod(native), cfg, ctxFor);
      assert.ok(r.outcome === 'inject', JSON.stringify(r));
      const istio = r.warnings.filter((w) => w.startsWith('[istio-sidecar] '));
      assert.equal(istio.length, 1, JSON.stringify(r.warnings));
      assert.equal(
        istio[0],
        `[istio-sidecar] Pod team/a: container istio-proxy (spec.${native ? 'initContainers[1]' : 'containers[1]'}.name) is Istio's sidecar, which Istio's injector adds before this webhook runs, and the injected AuthBridge proxy runs as uid 1337, which Istio's iptables rules leave out of its redirect, as proxy-init leaves Istio's proxy (uid 1337 too) out of AuthBridge's. The agent's outbound traffic leaves AuthBridge without Istio's mTLS, and inbound mesh traffic reaches AuthBridge before Istio's proxy, so the mesh's mTLS and policies do not cover the agent. Fix: run the namespace in Istio's ambient mode (no sidecar), annotate the pod kagenti.io/authbridge-mode: waypoint, or label the pod sidecar.istio.io/inject: "false".`,
      );
      assert.equal(warningName(istio[0]!), 'istio-sidecar');
      // no warning names Istio's containers with a fix the user cannot apply to them
      for (const w of r.warnings.filter((x) => !x.startsWith('[istio-sidecar] '))) assert.ok(!/istio-(proxy|init)/.test(w), w);
      // the agent's own probe is still named under mTLS strict
      if (cfg.authBridge.mtlsMode === 'strict') assert.ok(r.warnings.some((w) => w.startsWith('[probe-through-proxy] ') && w.includes('container agent has')));
    }
  // the annotation alone (the sidecar under another name) is enough; without the AuthBridge proxy nothing clashes
  const byAnnotation = injectTemplate(agentPod({}, { 'sidecar.istio.io/status': '{}' }, { containers: [{ name: 'agent', image: 'x' }] }), defaultConfig(), ctxFor);
  assert.ok(byAnnotation.outcome === 'inject' && byAnnotation.warnings.some((w) => w.startsWith('[istio-sidecar] Pod team/a: annotation sidecar.istio.io/status (metadata.annotations) says')));
  for (const [labels, annotations] of [
    [{}, { 'kagenti.io/authbridge-mode': 'waypoint' }],
    [{ 'kagenti.io/authbridge-inject': 'false' }, {}],
  ] as const) {
    const pod = istioPod();
    Object.assign(pod.metadata.labels, labels);
    Object.assign(pod.metadata.annotations, annotations);
    const r = injectTemplate(pod, defaultConfig(), ctxFor);
    assert.ok(r.outcome === 'inject' && !r.warnings.some((w) => w.startsWith('[istio-sidecar] ')), JSON.stringify({ labels, annotations }));
  }
  // without proxy-init the inbound half does not apply
  const noInit = injectTemplate(istioPod(), parseConfig('authBridge:\n  egressEnforcement: none\n'), ctxFor);
  assert.ok(noInit.outcome === 'inject');
  const w = noInit.warnings.find((x) => x.startsWith('[istio-sidecar] '));
  assert.ok(w && !w.includes('inbound'), w);
});

test('istio-sidecar: policies.istio-sidecar deny denies the pod at the istio-proxy container, off checks nothing; warn is the default', () => {
  assert.equal(defaultConfig().policies['istio-sidecar'], 'warn');
  const deny = injectTemplate(istioPod(), parseConfig('policies:\n  istio-sidecar: deny\n'), ctxFor);
  assert.ok(deny.outcome === 'deny', JSON.stringify(deny));
  assert.equal(deny.rule, 'istio-sidecar');
  assert.deepEqual(deny.field, ['spec', 'containers', 1, 'name']);
  assert.match(deny.message, /^\[istio-sidecar\] Pod team\/a: container istio-proxy .* Fix: /);
  const off = injectTemplate(istioPod(), parseConfig('policies:\n  istio-sidecar: off\n'), ctxFor);
  assert.ok(off.outcome === 'inject' && !off.warnings.some((x) => x.includes('istio')), JSON.stringify(off.outcome === 'inject' && off.warnings));
});

test('istio-sidecar: a pod template in a namespace labelled istio-injection=enabled is warned (its pods get Istio\'s sidecar), unless it opts out of Istio', () => {
  const ns = { namespace: 'team', ref: 'Deployment team/a', namespaceLabels: { 'istio-injection': 'enabled' } };
  const tpl = (labels: Record<string, string>, annotations: Record<string, string>) => agentPod(labels, annotations, { containers: [{ name: 'agent', image: 'x' }] });
  const r = injectTemplate(tpl({}, {}), defaultConfig(), ns, 'spec.template.spec');
  assert.ok(r.outcome === 'inject');
  assert.match(r.warnings.find((w) => w.startsWith('[istio-sidecar] '))!, /^\[istio-sidecar\] Deployment team\/a: namespace team is labelled istio-injection=enabled, so Istio's injector adds its sidecar to the pods before this webhook runs, .* or label the pod template \(spec\.template\.metadata\.labels\) sidecar\.istio\.io\/inject: "false"\.$/);
  for (const [labels, annotations] of [
    [{ 'sidecar.istio.io/inject': 'false' }, {}],
    [{}, { 'sidecar.istio.io/inject': 'false' }],
  ] as const) {
    const out = injectTemplate(tpl(labels, annotations), defaultConfig(), ns, 'spec.template.spec');
    assert.ok(out.outcome === 'inject' && !out.warnings.some((w) => w.startsWith('[istio-sidecar] ')));
  }
  // a Pod is judged by what it carries: Istio has run before this webhook sees it
  const pod = injectTemplate(tpl({}, {}), defaultConfig(), { ...ns, ref: 'Pod team/a' });
  assert.ok(pod.outcome === 'inject' && !pod.warnings.some((w) => w.startsWith('[istio-sidecar] ')));
});

test('istio-sidecar: a pod template whose pods Istio\'s revisions inject is warned: the namespace labelled istio.io/rev, or (neither namespace label) the template labelled istio.io/rev or sidecar.istio.io/inject=true; istio-injection=disabled and an opt-out are not', () => {
  const tpl = (labels: Record<string, string>) => agentPod(labels, {}, { containers: [{ name: 'agent', image: 'x' }] });
  const warned = (labels: Record<string, string>, namespaceLabels?: Record<string, string>) => {
    const r = injectTemplate(tpl(labels), defaultConfig(), { namespace: 'team', ref: 'Deployment team/a', namespaceLabels }, 'spec.template.spec');
    assert.ok(r.outcome === 'inject');
    return r.warnings.find((w) => w.startsWith('[istio-sidecar] '));
  };
  assert.match(warned({}, { 'istio.io/rev': 'canary' })!, /^\[istio-sidecar\] Deployment team\/a: namespace team is labelled istio\.io\/rev=canary, so Istio's injector \(revision canary\) adds its sidecar to the pods before this webhook runs, .* Fix: .*sidecar\.istio\.io\/inject: "false"\.$/);
  for (const ns of [undefined, {}, { 'kubernetes.io/metadata.name': 'team' }] as (Record<string, string> | undefined)[]) {
    assert.match(warned({ 'istio.io/rev': '1-24' }, ns)!, /^\[istio-sidecar\] Deployment team\/a: label istio\.io\/rev=1-24 \(spec\.template\.metadata\.labels\) asks Istio's injector \(revision 1-24\) to add its sidecar to the pods before this webhook runs, /);
    assert.match(warned({ 'sidecar.istio.io/inject': 'true' }, ns)!, /^\[istio-sidecar\] Deployment team\/a: label sidecar\.istio\.io\/inject=true \(spec\.template\.metadata\.labels\) asks Istio's injector to add its sidecar/);
  }
  // istio-injection on the namespace decides alone (Istio's object webhooks select only namespaces without it)
  for (const ns of [{ 'istio-injection': 'disabled' }, { 'istio-injection': 'disabled', 'istio.io/rev': 'canary' }] as Record<string, string>[]) {
    assert.equal(warned({ 'istio.io/rev': 'canary', 'sidecar.istio.io/inject': 'true' }, ns), undefined, JSON.stringify(ns));
  }
  assert.match(warned({ 'istio.io/rev': 'canary' }, { 'istio-injection': 'enabled', 'istio.io/rev': 'x' })!, /namespace team is labelled istio-injection=enabled/);
  // opted out, or nothing asks for Istio
  assert.equal(warned({ 'sidecar.istio.io/inject': 'false' }, { 'istio.io/rev': 'canary' }), undefined);
  assert.equal(warned({ 'istio.io/rev': 'canary', 'sidecar.istio.io/inject': 'false' }), undefined);
  assert.equal(warned({}), undefined);
  assert.equal(warned({}, { 'istio-injection': 'disabled' }), undefined);
});

// ---------- net-admin: a container that may rewrite proxy-init's iptables rules ----------

test('net-admin: a container of the pod with NET_ADMIN or ALL added, or privileged, is warned that it can take out the redirect, with its field', () => {
  const cfg = defaultConfig();
  const netWarning = (r: ReturnType<typeof injectTemplate>) => (r.outcome === 'inject' ? r.warnings.filter((w) => w.startsWith('[net-admin] ')) : []);
  const one = injectTemplate(agentPod({}, {}, { containers: [{ name: 'agent', image: 'x' }, { name: 'vpn', image: 'x', securityContext: { capabilities: { add: ['NET_ADMIN'] } } }] }), cfg, ctxFor);
  assert.deepEqual(netWarning(one), [
    "[net-admin] Pod team/a: container vpn may change the pod's iptables rules (adds NET_ADMIN: spec.containers[1].securityContext.capabilities.add), and the pod's network namespace is shared, so it can take out proxy-init's redirect and send traffic past the proxy, which AuthBridge then does not see. Fix: drop NET_ADMIN and ALL from capabilities.add and privileged: true from it, or move what needs them out of the agent pod.",
  ]);
  assert.equal(warningName(netWarning(one)[0]!), 'net-admin');
  const many = injectTemplate(
    agentPod({}, {}, {
      initContainers: [{ name: 'tune', image: 'x', securityContext: { privileged: true } }],
      containers: [{ name: 'agent', image: 'x', securityContext: { capabilities: { add: ['CAP_NET_ADMIN'] } } }, { name: 'all', image: 'x', securityContext: { capabilities: { add: ['all'] } } }, { name: 'raw', image: 'x', securityContext: { capabilities: { add: ['NET_RAW'] } } }],
    }),
    cfg,
    ctxFor,
    'spec.template.spec',
  );
  assert.equal(netWarning(many).length, 1);
  assert.match(netWarning(many)[0]!, /: containers agent, all, tune may change the pod's iptables rules \(adds NET_ADMIN: spec\.template\.spec\.containers\[0\]\.securityContext\.capabilities\.add, adds ALL: spec\.template\.spec\.containers\[1\]\.securityContext\.capabilities\.add, is privileged: spec\.template\.spec\.initContainers\[0\]\.securityContext\.privileged\), .* from them,/);
  // no proxy-init, no redirect to take out; and policies.net-admin: off silences it
  for (const c of [parseConfig('authBridge:\n  egressEnforcement: none\n'), parseConfig('policies:\n  net-admin: off\n')]) assert.deepEqual(netWarning(injectTemplate(agentPod({}, {}, { containers: [{ name: 'agent', image: 'x', securityContext: { privileged: true } }] }), c, ctxFor)), []);
  // SYS_ADMIN (a FUSE or mount sidecar) does not allow changing netfilter rules: CAP_NET_ADMIN does
  assert.deepEqual(netWarning(injectTemplate(agentPod({}, {}, { containers: [{ name: 'agent', image: 'x' }, { name: 'fuse', image: 'x', securityContext: { capabilities: { add: ['SYS_ADMIN', 'CAP_SYS_ADMIN'] } } }] }), cfg, ctxFor)), []);
  // Istio's own istio-init (NET_ADMIN) is istio-sidecar's to name; not ours, as proxy-init is not a container of the pod
  assert.deepEqual(netWarning(injectTemplate(istioPod(), cfg, ctxFor)), []);
  const again = injectTemplate(agentPod({}, {}, { containers: [{ name: 'agent', image: 'x' }] }), cfg, ctxFor);
  assert.ok(again.outcome === 'inject');
  assert.deepEqual(netWarning(injectTemplate(again.template, cfg, ctxFor)), []);
});

test('probe-through-proxy: under mTLS strict, an httpGet or grpc probe of the pod\'s own containers on a port proxy-init redirects is warned about, with its field', () => {
  const cfg = defaultConfig();
  const strict = { 'kagenti.io/mtls-mode': 'strict' };
  const probeWarning = (r: ReturnType<typeof injectTemplate>) => {
    assert.equal(r.outcome, 'inject', JSON.stringify(r));
    return r.outcome === 'inject' ? r.warnings.filter((w) => w.startsWith('[probe-through-proxy] ')) : [];
  };
  const agent = (probes: KubeObject) => ({ name: 'agent', image: 'x', ports: [{ name: 'metrics', containerPort: 9100 }, { name: 'http', containerPort: 8080 }], ...probes });
  // the reviewer's case: an httpGet readiness probe on a named port, resolved through the container's ports
  const named = injectTemplate(agentPod({}, strict, { containers: [{ name: 'app', image: 'x' }, agent({ readinessProbe: { httpGet: { path: '/ready', port: 'http' } } })] }), cfg, ctxFor);
  assert.deepEqual(probeWarning(named), [
    "[probe-through-proxy] Pod team/a: container agent has an httpGet probe on a port that proxy-init redirects to the proxy (spec.containers[1].readinessProbe on port 8080), and the mTLS mode is strict (annotation kagenti.io/mtls-mode). The kubelet's probe reaches AuthBridge's inbound listener, which under mTLS strict refuses it without a client certificate: a failing readiness probe keeps the container from ever becoming Ready, so the pod gets no Service traffic. Fix: use an exec probe for it, or annotate the pod kagenti.io/mtls-mode: permissive.",
  ]);
  // strict from the config: said so; several probes and containers, grpc among them, and a native sidecar of the pod
  const fromConfig = parseConfig('authBridge:\n  mtlsMode: strict\n');
  const several = injectTemplate(
    agentPod({}, {}, {
      initContainers: [
        { name: 'migrate', image: 'x', startupProbe: { httpGet: { port: 8081 } } }, // an ordinary init container has no probes: not looked at
        { name: 'sql-proxy', image: 'x', restartPolicy: 'Always', startupProbe: { httpGet: { path: '/startup', port: 9091 } } },
      ],
      containers: [agent({ livenessProbe: { grpc: { port: 8080 } }, readinessProbe: { httpGet: { port: 8080 } } })],
    }),
    fromConfig,
    ctxFor,
  );
  assert.deepEqual(probeWarning(several).length, 1);
  assert.match(
    probeWarning(several)[0]!,
    /^\[probe-through-proxy\] Pod team\/a: containers agent, sql-proxy have httpGet or grpc probes on ports that proxy-init redirects to the proxy \(spec\.containers\[0\]\.livenessProbe on port 8080, spec\.containers\[0\]\.readinessProbe on port 8080, spec\.initContainers\[1\]\.startupProbe on port 9091\), and the mTLS mode is strict \(authBridge\.mtlsMode in the webhook config\)\. .* Fix: use an exec probe for them, or annotate the pod kagenti\.io\/mtls-mode: permissive\.$/,
  );
  // what each kind of probe does when it always fails, in the order liveness, readiness, startup
  assert.match(probeWarning(several)[0]!, /certificate: a failing liveness probe restarts the container over and over; a failing readiness probe keeps the container from ever becoming Ready, so the pod gets no Service traffic; a failing startup probe restarts the container over and over, before its other probes ever run\. Fix:/);
  // a grpc probe alone; the pod annotated permissive under a strict config: not warned
  const liveOnly = probeWarning(injectTemplate(agentPod({}, {}, { containers: [agent({ livenessProbe: { grpc: { port: 9000 } } })] }), fromConfig, ctxFor))[0]!;
  assert.match(liveOnly, /container agent has a grpc probe on a port .*\(spec\.containers\[0\]\.livenessProbe on port 9000\)/);
  // a liveness probe alone: restarts, and nothing said of readiness (the pod does become Ready)
  assert.match(liveOnly, /certificate: a failing liveness probe restarts the container over and over\. Fix:/);
  const readyHttp = { readinessProbe: { httpGet: { path: '/ready', port: 'http' } } };
  assert.deepEqual(probeWarning(injectTemplate(agentPod({}, { 'kagenti.io/mtls-mode': 'permissive' }, { containers: [agent(readyHttp)] }), fromConfig, ctxFor)), []);
  // not warned: permissive or disabled mTLS (the default), tcpSocket (the proxy accepts the connection), exec, a
  // probe on the admin port (excluded from the redirect), an httpGet with a host (another address), a named port
  // the container does not have (the probe fails anyway), a probe handler that is not a mapping
  const admin = cfg.authBridge.ports.admin;
  for (const [annotations, probes] of [
    [{ 'kagenti.io/mtls-mode': 'permissive' }, readyHttp],
    [{ 'kagenti.io/mtls-mode': 'disabled' }, readyHttp],
    [{}, readyHttp],
    [strict, { readinessProbe: { tcpSocket: { port: 'http' } }, livenessProbe: { tcpSocket: { port: 8080 } }, startupProbe: { tcpSocket: { port: 8080 } } }],
    [strict, { readinessProbe: { exec: { command: ['/bin/ready'] } }, livenessProbe: { exec: { command: ['true'] } } }],
    [strict, { readinessProbe: { httpGet: { path: '/ready', port: admin } }, livenessProbe: { grpc: { port: admin } } }],
    [strict, { readinessProbe: { httpGet: { host: 'db.internal', path: '/ready', port: 8080 } } }],
    [strict, { readinessProbe: { httpGet: { path: '/ready', port: 'nope' } } }],
    [strict, { readinessProbe: { httpGet: 'http' }, livenessProbe: 'x', startupProbe: { grpc: { port: '8080' } } }],
  ] as const) {
    const r = injectTemplate(agentPod({}, annotations, { containers: [agent(probes as KubeObject)] }), cfg, ctxFor);
    assert.deepEqual(probeWarning(r), [], JSON.stringify({ annotations, probes }));
  }
  // envoy-sidecar mode excludes the ext-proc port too; other modes redirect it
  const extProc = { readinessProbe: { httpGet: { port: cfg.authBridge.ports.extProc } } };
  assert.deepEqual(probeWarning(injectTemplate(agentPod({}, { ...strict, 'kagenti.io/authbridge-mode': 'envoy-sidecar' }, { containers: [agent(extProc)] }), cfg, ctxFor)), []);
  assert.equal(probeWarning(injectTemplate(agentPod({}, { ...strict, 'kagenti.io/authbridge-mode': 'lite' }, { containers: [agent(extProc)] }), cfg, ctxFor)).length, 1);
  // no proxy-init: waypoint mode, egressEnforcement: none in proxy-sidecar mode, AuthBridge opted out
  const egressOff = parseConfig('authBridge:\n  egressEnforcement: none\n  mtlsMode: strict\n');
  for (const [labels, annotations, c] of [
    [{}, { ...strict, 'kagenti.io/authbridge-mode': 'waypoint' }, cfg],
    [{}, strict, egressOff],
    [{ 'kagenti.io/authbridge-inject': 'false' }, strict, cfg],
  ] as const) {
    const r = injectTemplate(agentPod(labels, annotations, { containers: [agent(readyHttp)] }), c, ctxFor);
    assert.deepEqual(probeWarning(r), [], JSON.stringify({ labels, annotations }));
  }
  // policies.probe-through-proxy: off silences it
  assert.deepEqual(probeWarning(injectTemplate(agentPod({}, strict, { containers: [agent(readyHttp)] }), parseConfig('policies:\n  probe-through-proxy: off\n'), ctxFor)), []);
  // with native sidecars too; injecting again warns the same, never about the injected proxy's own probe
  const native = injectTemplate(agentPod({}, { ...strict, 'kagenti.io/native-sidecars': 'true' }, { containers: [agent(readyHttp)] }), cfg, ctxFor);
  assert.match(probeWarning(native)[0]!, /container agent has an httpGet probe .*\(spec\.containers\[0\]\.readinessProbe on port 8080\)/);
  if (native.outcome === 'inject') assert.deepEqual(probeWarning(injectTemplate(native.template, cfg, ctxFor)), probeWarning(native));
  // (without native sidecars the injected pod has ours first among its containers: the field is at its index there)
  if (named.outcome === 'inject')
    assert.deepEqual(probeWarning(injectTemplate(named.template, cfg, ctxFor)), probeWarning(named).map((w) => w.replace('spec.containers[1]', 'spec.containers[3]')));
});

test('long lists: 50,000 containers each with an httpGet probe under mTLS strict get one bounded probe-through-proxy warning', () => {
  // The containers' indexes come from one map and only the three fields shown are written out: nothing per pair.
  const n = 50000;
  const containers = Array.from({ length: n }, (_, i) => ({ name: `c${i}`, image: 'x', ports: [{ name: 'http', containerPort: 8080 }], readinessProbe: { httpGet: { path: '/ready', port: 'http' } } }));
  const r = injectTemplate(agentPod({}, { 'kagenti.io/mtls-mode': 'strict' }, { containers }), defaultConfig(), ctxFor);
  assert.ok(r.outcome === 'inject');
  if (r.outcome !== 'inject') return;
  const w = r.warnings.filter((x) => x.startsWith('[probe-through-proxy] '));
  assert.equal(w.length, 1);
  assert.match(w[0]!, new RegExp(`containers c0, c1, c2 and ${n - 3} more have httpGet probes on ports that proxy-init redirects to the proxy \\(spec\\.containers\\[0\\]\\.readinessProbe on port 8080, spec\\.containers\\[1\\]\\.readinessProbe on port 8080, spec\\.containers\\[2\\]\\.readinessProbe on port 8080 and ${n - 3} more\\)`));
  assert.ok(w[0]!.length < 1000, `${w[0]!.length} characters`);
});

test('a record that names every container of the pod: malformed-object, never a pod left without containers', () => {
  const cfg = defaultConfig();
  // native sidecars: the recorded proxy is stripped and the new one goes to initContainers, so containers would be []
  const native = agentPod({}, { 'kagenti.io/native-sidecars': 'true', [STATUS]: JSON.stringify({ containers: ['authbridge-proxy'] }) }, {
    containers: [{ name: 'authbridge-proxy', image: 'ghcr.io/kagenti/kagenti-extensions/authbridge-proxy:v0.3.0' }],
  });
  // everything opted out: the recorded spiffe-helper is stripped and nothing comes in its place
  const optedOut = agentPod({ 'kagenti.io/authbridge-inject': 'false', 'kagenti.io/spiffe-helper-inject': 'false' }, { [STATUS]: JSON.stringify({ containers: ['spiffe-helper'] }) }, {
    containers: [{ name: 'spiffe-helper', image: 'ghcr.io/spiffe/spiffe-helper:0.9.0' }],
  });
  for (const [pod, names] of [
    [native, 'authbridge-proxy'],
    [optedOut, 'spiffe-helper'],
  ] as const) {
    const r = injectTemplate(pod, cfg, ctxFor);
    assert.ok(r.outcome === 'deny', JSON.stringify(r));
    if (r.outcome !== 'deny') continue;
    assert.equal(r.rule, 'malformed-object');
    assert.deepEqual(r.field, ['spec', 'containers']);
    assert.equal(
      r.message,
      `[malformed-object] Pod team/a: every container in spec.containers (${names}) is one an earlier injection added, by the kagenti.io/authbridge-status record, so the pod would keep no container of its own and the API server rejects a pod without containers. Fix: create it from its manifest without the injected sidecars and without the kagenti.io/authbridge-status annotation; if that container is your own, remove the annotation.`,
    );
  }
  // with a container of its own, the same records are taken out and the pod injected
  const own = structuredClone(native);
  own.spec.containers.push({ name: 'app', image: 'x' });
  const ok = injectTemplate(own, cfg, ctxFor);
  assert.ok(ok.outcome === 'inject');
  if (ok.outcome === 'inject') assert.deepEqual(ok.template.spec.containers.map((c: KubeObject) => c.name), ['app']);
});

test('the annotation limit counts UTF-8 bytes, as Kubernetes does: multi-byte values near the limit are denied', () => {
  const cfg = defaultConfig();
  const injectedBytes = (() => {
    const r = injectTemplate(agentPod({}, {}, { containers: [{ name: 'app', image: 'x' }] }), cfg, ctxFor);
    assert.ok(r.outcome === 'inject');
    let n = 0;
    for (const [k, v] of Object.entries(r.template.metadata.annotations as Record<string, string>)) n += Buffer.byteLength(k) + Buffer.byteLength(v);
    return n;
  })();
  const room = 262144 - injectedBytes - Buffer.byteLength('note');
  // fits: exactly at the limit in UTF-8 bytes, with a three-byte character
  const fits = 'a'.repeat(room - 3) + '€';
  const big = '€'.repeat(Math.ceil((room + 1) / 3)); // over in bytes, a third of that in UTF-16 units
  const under = injectTemplate(agentPod({}, { note: fits }, { containers: [{ name: 'app', image: 'x' }] }), cfg, ctxFor);
  assert.equal(under.outcome, 'inject');
  const over = injectTemplate(agentPod({}, { note: big }, { containers: [{ name: 'app', image: 'x' }] }), cfg, ctxFor);
  assert.ok(over.outcome === 'deny' && over.rule === 'malformed-object', JSON.stringify(over).slice(0, 300));
  if (over.outcome === 'deny') assert.match(over.message, /metadata\.annotations would hold 26\d{4} bytes with the injection's own/);
  // one byte over, and under the limit in UTF-16 units (room - 1 of them): only the UTF-8 count finds it
  const oneOver = 'a'.repeat(room - 2) + '€';
  assert.equal(Buffer.byteLength(oneOver), room + 1);
  const byOne = injectTemplate(agentPod({}, { note: oneOver }, { containers: [{ name: 'app', image: 'x' }] }), cfg, ctxFor);
  assert.ok(byOne.outcome === 'deny' && byOne.rule === 'malformed-object', JSON.stringify(byOne).slice(0, 300));
  if (byOne.outcome === 'deny') assert.match(byOne.message, /metadata\.annotations would hold 262145 bytes with the injection's own .* more than the 262144 Kubernetes allows/);
});

test('host-network: denied when a proxy is injected; a pod that gets spiffe-helper only (waypoint, AuthBridge opted out) or nothing is not', () => {
  const cfg = defaultConfig();
  const app = [{ name: 'app', image: 'x' }];
  const full = injectTemplate(agentPod({}, {}, { hostNetwork: true, containers: app }), cfg, ctxFor);
  assert.ok(full.outcome === 'deny' && full.rule === 'host-network');
  if (full.outcome === 'deny') assert.match(full.message, /the proxy would bind the node's ports, and proxy-init would rewrite the node's iptables, .* Fix: remove hostNetwork, label the pod kagenti\.io\/authbridge-inject: "false" to inject spiffe-helper only, or kagenti\.io\/inject: disabled\.$/);
  // egressEnforcement none outside envoy mode: a proxy, no proxy-init; the message does not name proxy-init
  const noInit = injectTemplate(agentPod({}, {}, { hostNetwork: true, containers: app }), parseConfig('authBridge: {egressEnforcement: none}'), ctxFor);
  assert.ok(noInit.outcome === 'deny' && !noInit.message.includes('proxy-init'), JSON.stringify(noInit));
  const waypoint = injectTemplate(agentPod({}, { 'kagenti.io/authbridge-mode': 'waypoint' }, { hostNetwork: true, containers: app }), cfg, ctxFor);
  assert.equal(waypoint.outcome, 'inject');
  const helperOnly = injectTemplate(agentPod({ 'kagenti.io/authbridge-inject': 'false' }, {}, { hostNetwork: true, containers: app }), cfg, ctxFor);
  assert.equal(helperOnly.outcome, 'inject');
  if (helperOnly.outcome === 'inject') assert.deepEqual(helperOnly.template.spec.containers.map((c: KubeObject) => c.name), ['spiffe-helper', 'app']);
  const nothing = injectTemplate(agentPod({ 'kagenti.io/authbridge-inject': 'false', 'kagenti.io/spiffe-helper-inject': 'false' }, {}, { hostNetwork: true, containers: app }), cfg, ctxFor);
  assert.deepEqual(nothing, { outcome: 'skip', reason: 'all-opted-out' });
});

test('opt-out labels take only their values: "false" on kagenti.io/inject, "no" on a per-sidecar label are denied, naming the label, never guessed', () => {
  const cfg = defaultConfig();
  const app = [{ name: 'app', image: 'x' }];
  for (const [key, value, valid] of [
    ['kagenti.io/inject', 'false', '"disabled", "enabled"'],
    ['kagenti.io/inject', 'Disabled', '"disabled", "enabled"'],
    ['kagenti.io/spiffe-helper-inject', 'False', '"true", "false"'],
    ['kagenti.io/authbridge-inject', 'no', '"true", "false"'],
    ['kagenti.io/envoy-proxy-inject', '0', '"true", "false"'],
  ] as const) {
    const r = injectTemplate(agentPod({ [key]: value }, {}, { containers: app }), cfg, ctxFor);
    assert.ok(r.outcome === 'deny', `${key}=${value}`);
    if (r.outcome !== 'deny') continue;
    assert.equal(r.rule, 'invalid-annotation');
    assert.deepEqual(r.field, ['metadata', 'labels', key]);
    assert.equal(
      r.message,
      `[invalid-annotation] Pod team/a: label ${key} is ${JSON.stringify(value)}, which is not a value it takes, so whether the pod opts out is unclear and nothing is injected on a guess. Fix: set ${key} to one of ${valid}, or remove it.`,
    );
  }
  // the documented values inject (or skip) as before
  assert.equal(injectTemplate(agentPod({ 'kagenti.io/inject': 'enabled' }, {}, { containers: app }), cfg, ctxFor).outcome, 'inject');
  assert.deepEqual(injectTemplate(agentPod({ 'kagenti.io/inject': 'disabled' }, {}, { containers: app }), cfg, ctxFor), { outcome: 'skip', reason: 'inject-disabled' });
  for (const key of ['kagenti.io/spiffe-helper-inject', 'kagenti.io/authbridge-inject', 'kagenti.io/envoy-proxy-inject'])
    for (const v of ['true', 'false']) assert.equal(injectTemplate(agentPod({ [key]: v }, {}, { containers: app }), cfg, ctxFor).outcome, 'inject', `${key}=${v}`);
  // on a workload the message names the template's labels
  const dep = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'a', namespace: 'team' }, spec: { template: agentPod({ 'kagenti.io/inject': 'off' }, {}, { containers: app }) } };
  const t = injectTemplate(dep.spec.template, cfg, { namespace: 'team', ref: 'Deployment team/a' }, 'spec.template.spec');
  assert.ok(t.outcome === 'deny' && t.message.includes('label kagenti.io/inject (spec.template.metadata.labels) is "off"'), JSON.stringify(t));
});

test('a pod without containers of its own is malformed-object, not a pod of sidecars only', () => {
  const r = injectTemplate(agentPod({}, {}, { containers: [] }), defaultConfig(), ctxFor);
  assert.ok(r.outcome === 'deny' && r.rule === 'malformed-object');
  if (r.outcome === 'deny') assert.match(r.message, /^\[malformed-object\] Pod team\/a: spec\.containers is empty: a pod needs at least one container of its own\. .*Fix: /);
});

test('unsupported-os: the deprecated beta.kubernetes.io/os node label picks Windows too, in the nodeSelector and in required affinity', () => {
  const cfg = defaultConfig();
  const app = [{ name: 'app', image: 'x' }];
  const sel = injectTemplate(agentPod({}, {}, { nodeSelector: { 'beta.kubernetes.io/os': 'windows' }, containers: app }), cfg, ctxFor);
  assert.ok(sel.outcome === 'deny' && sel.rule === 'unsupported-os');
  if (sel.outcome === 'deny') {
    assert.deepEqual(sel.field, ['spec', 'nodeSelector', 'beta.kubernetes.io/os']);
    assert.match(sel.message, /spec\.nodeSelector\["beta\.kubernetes\.io\/os"\] is windows/);
  }
  const aff = {
    nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'beta.kubernetes.io/os', operator: 'In', values: ['windows'] }] }] } },
  };
  assert.equal(injectTemplate(agentPod({}, {}, { affinity: aff, containers: app }), cfg, ctxFor).outcome, 'deny');
  // a Linux selector on either label is fine
  assert.equal(injectTemplate(agentPod({}, {}, { nodeSelector: { 'beta.kubernetes.io/os': 'linux' }, containers: app }), cfg, ctxFor).outcome, 'inject');
});

test('native sidecars: the injected proxy has a startup probe, so the pod\'s own init containers start once it listens', () => {
  const cfg = defaultConfig();
  const pod = agentPod({}, { 'kagenti.io/native-sidecars': 'true' }, { containers: [{ name: 'app', image: 'x' }], initContainers: [{ name: 'setup', image: 's' }] });
  const r = injectTemplate(pod, cfg, ctxFor);
  assert.ok(r.outcome === 'inject');
  if (r.outcome !== 'inject') return;
  const init = r.template.spec.initContainers as KubeObject[];
  assert.deepEqual(init.map((c) => c.name), ['proxy-init', 'spiffe-helper', 'authbridge-proxy', 'setup']);
  const proxy = init.find((c) => c.name === 'authbridge-proxy')!;
  assert.deepEqual(proxy.startupProbe, { tcpSocket: { port: cfg.authBridge.ports.inbound }, timeoutSeconds: 1, periodSeconds: 1, successThreshold: 1, failureThreshold: 600 });
  // without proxy-init nothing is redirected before the proxy runs: no probe
  const noInit = injectTemplate(pod, parseConfig('authBridge: {egressEnforcement: none}'), ctxFor);
  assert.ok(noInit.outcome === 'inject' && (noInit.template.spec.initContainers as KubeObject[]).every((c) => c.startupProbe === undefined));
  // ordinary sidecars: no probe either (the kubelet does not order them)
  const plain = injectTemplate(agentPod({}, {}, { containers: [{ name: 'app', image: 'x' }] }), cfg, ctxFor);
  assert.ok(plain.outcome === 'inject' && (plain.template.spec.containers as KubeObject[]).every((c) => c.startupProbe === undefined));
});

test('mesh-sidecar: a pod (template) whose mesh injector, running after this webhook, will add its proxy is warned before the proxy is there: linkerd.io/inject enabled or ingress, kuma.io/sidecar-injection enabled on the pod or its namespace, unless the pod opts out', () => {
  const cfg = defaultConfig();
  const mesh = (labels: Record<string, string>, annotations: Record<string, string>, namespaceLabels?: Record<string, string>, ref = 'Deployment team/a') => {
    const r = injectTemplate(agentPod(labels, annotations, { containers: [{ name: 'agent', image: 'x' }] }), cfg, { namespace: 'team', ref, namespaceLabels }, ref.startsWith('Pod') ? 'spec' : 'spec.template.spec');
    assert.ok(r.outcome === 'inject');
    return r.warnings.filter((w) => w.startsWith('[mesh-sidecar] '));
  };
  for (const v of ['enabled', 'ingress']) {
    const [w, ...more] = mesh({}, { 'linkerd.io/inject': v });
    assert.equal(more.length, 0);
    assert.match(w!, new RegExp(`^\\[mesh-sidecar\\] Deployment team/a: annotation linkerd\\.io/inject: ${v} \\(spec\\.template\\.metadata\\.annotations\\) asks Linkerd's injector, which runs after this webhook, for its sidecar, beside the injected AuthBridge proxy, and both Linkerd and AuthBridge's proxy-init redirect .* Fix: use one mesh for the agent, or opt it out of Linkerd's injection: annotate the pod template \\(spec\\.template\\.metadata\\.annotations\\) linkerd\\.io/inject: disabled\\.$`));
  }
  assert.match(mesh({ 'kuma.io/sidecar-injection': 'enabled' }, {}, undefined, 'Pod team/a')[0]!, /^\[mesh-sidecar\] Pod team\/a: label kuma\.io\/sidecar-injection: enabled \(metadata\.labels\) asks Kuma's injector/);
  assert.match(mesh({}, { 'kuma.io/sidecar-injection': 'enabled' })[0]!, /: annotation kuma\.io\/sidecar-injection: enabled \(spec\.template\.metadata\.annotations\) asks Kuma's/);
  assert.match(mesh({}, {}, { 'kuma.io/sidecar-injection': 'enabled' })[0]!, /: the namespace is labelled kuma\.io\/sidecar-injection: enabled, so Kuma's injector, which runs after this webhook, adds its sidecar, beside/);
  // opted out, or not asked
  assert.deepEqual(mesh({ 'kuma.io/sidecar-injection': 'disabled' }, {}, { 'kuma.io/sidecar-injection': 'enabled' }), []);
  assert.deepEqual(mesh({}, { 'linkerd.io/inject': 'disabled' }), []);
  assert.deepEqual(mesh({}, {}), []);
  // the proxy already there is named instead, once
  const both = injectTemplate(agentPod({}, { 'linkerd.io/inject': 'enabled' }, { containers: [{ name: 'linkerd-proxy', image: 'x' }, { name: 'agent', image: 'x' }] }), cfg, ctxFor);
  assert.ok(both.outcome === 'inject');
  assert.deepEqual(both.warnings.filter((w) => w.startsWith('[mesh-sidecar] ')).map((w) => /: (container \S+|annotation \S+)/.exec(w)?.[1]), ['container linkerd-proxy']);
  // lint and /validate point at the annotation
  const obj = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'a', namespace: 'team' }, spec: { template: agentPod({}, { 'linkerd.io/inject': 'enabled' }, { containers: [{ name: 'agent', image: 'x' }] }) } };
  const found = checkInjection(obj, { config: cfg, namespace: 'team' });
  assert.deepEqual(found.warnings.filter((v) => v.rule === 'mesh-sidecar').map((v) => v.path), ['spec.template.metadata.annotations.linkerd.io/inject']);
});

test('other meshes\' init containers (linkerd-init, kuma-init) get no init-before-proxy or net-admin warning beside their proxy, as Istio\'s do not; the pod gets one mesh-sidecar warning instead; a pod\'s own still does', () => {
  const cfg = defaultConfig();
  const meshInit = (name: string) => ({ name, image: 'x', securityContext: { runAsUser: 0, capabilities: { add: ['NET_ADMIN', 'NET_RAW'] } } });
  const warned = (r: ReturnType<typeof injectTemplate>) => (r.outcome === 'inject' ? r.warnings.filter((w) => /^\[(init-before-proxy|net-admin|mesh-sidecar)\] /.test(w)) : ['not injected']);
  for (const [name, proxy, optOut] of [
    ['linkerd-init', { name: 'linkerd-proxy', image: 'x' }, 'annotate the pod linkerd.io/inject: disabled'],
    ['kuma-init', { name: 'kuma-sidecar', image: 'x', restartPolicy: 'Always' }, 'label the pod kuma.io/sidecar-injection: disabled (older Kuma reads it as an annotation)'],
  ] as const) {
    // Kuma's proxy as a native sidecar (in the init containers), Linkerd's as a regular container
    const spec = (inits: KubeObject[]) =>
      proxy.name === 'kuma-sidecar' ? { initContainers: [...inits, proxy], containers: [{ name: 'agent', image: 'x' }] } : { initContainers: inits, containers: [proxy, { name: 'agent', image: 'x' }] };
    const field = proxy.name === 'kuma-sidecar' ? 'spec.initContainers[1].name' : 'spec.containers[0].name';
    const mesh = proxy.name === 'kuma-sidecar' ? 'Kuma' : 'Linkerd';
    const beside = warned(injectTemplate(agentPod({}, {}, spec([meshInit(name)])), cfg, ctxFor));
    assert.deepEqual(beside.length, 1, beside.join('\n'));
    assert.equal(
      beside[0],
      `[mesh-sidecar] Pod team/a: container ${proxy.name} (${field}) is ${mesh}'s sidecar, beside the injected AuthBridge proxy, and both ${mesh} and AuthBridge's proxy-init redirect the pod's traffic with iptables. The two redirects conflict: each leaves only its own proxy's uid out, so traffic may bypass one of the proxies (AuthBridge, which then does not see it, or ${mesh}'s mTLS). Fix: use one mesh for the agent, or opt it out of ${mesh}'s injection: ${optOut}.`,
    );
    // the pod's own init container beside it is still named, alone
    const mixed = warned(injectTemplate(agentPod({}, {}, spec([meshInit(name), { ...meshInit('tune'), name: 'tune' }])), cfg, ctxFor)).filter((w) => !w.startsWith('[mesh-sidecar] '));
    assert.equal(mixed.length, 2, mixed.join('\n'));
    for (const w of mixed) {
      assert.match(w, / tune /);
      assert.ok(!w.includes(name), w);
    }
    // without the mesh's proxy, a container of that name is the pod's own (a privileged one of the user's): warned
    const alone = warned(injectTemplate(agentPod({}, {}, { initContainers: [meshInit(name)], containers: [{ name: 'agent', image: 'x' }] }), cfg, ctxFor));
    assert.deepEqual(alone.map((w) => w.slice(0, w.indexOf(']') + 1)), ['[init-before-proxy]', '[net-admin]'], alone.join('\n'));
    for (const w of alone) assert.ok(w.includes(name), w);
    // mesh-sidecar is silenced by its policy, and not given without proxy-init (nothing of ours redirects then)
    assert.deepEqual(warned(injectTemplate(agentPod({}, {}, spec([meshInit(name)])), parseConfig('policies: {mesh-sidecar: "off"}'), ctxFor)), []);
    assert.deepEqual(warned(injectTemplate(agentPod({}, {}, spec([])), parseConfig('authBridge: {egressEnforcement: none}'), ctxFor)), []);
  }
  // the mesh's proxy is its injector's too: its own probes (Linkerd's on its admin port) are not the pod's to change
  const probed = { name: 'linkerd-proxy', image: 'x', readinessProbe: { httpGet: { path: '/ready', port: 4191 } } };
  const strictPod = agentPod({}, { 'kagenti.io/mtls-mode': 'strict' }, { containers: [probed, { name: 'agent', image: 'x' }] });
  const strictWarnings = injectTemplate(strictPod, cfg, ctxFor);
  assert.ok(strictWarnings.outcome === 'inject');
  assert.deepEqual(strictWarnings.warnings.map((w) => warningName(w)), ['mesh-sidecar']);
  // both meshes' proxies: one warning each
  const two = warned(injectTemplate(agentPod({}, {}, { containers: [{ name: 'linkerd-proxy', image: 'x' }, { name: 'kuma-sidecar', image: 'x' }, { name: 'agent', image: 'x' }] }), cfg, ctxFor));
  assert.deepEqual(two.map((w) => /container (\S+)/.exec(w)?.[1]), ['linkerd-proxy', 'kuma-sidecar']);
});

// ---------- pod-resources: pod-level resources (spec.resources) the injected containers would take the pod past ----------

/** The reviewer's pod: pod-level requests 100m/128Mi and limits 200m/256Mi, one container requesting 100m/128Mi. */
function podLevelPod(resources: KubeObject, annotations: Record<string, string> = {}, app: KubeObject = { requests: { cpu: '100m', memory: '128Mi' } }): KubeObject {
  return agentPod({}, annotations, { resources, containers: [{ name: 'app', image: 'x', resources: app }] });
}
const TIGHT = { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '200m', memory: '256Mi' } };

test('pod-resources: pod-level requests below the aggregate with the injected containers, and a sidecar limit above the pod\'s, are denied with the least values that pass', () => {
  const pod = podLevelPod(TIGHT);
  // without the webhook the pod is valid; injected as before this check, the API server model rejects it
  assert.deepEqual(podLevelResourceProblems(pod.spec), []);
  const r = injectTemplate(pod, defaultConfig(), ctxFor);
  assert.ok(r.outcome === 'deny', 'denied');
  if (r.outcome !== 'deny') return;
  assert.deepEqual(r.all.map((d) => [d.rule, d.field?.join('.')]), [
    ['pod-resources', 'spec.resources.requests.cpu'],
    ['pod-resources', 'spec.resources.limits.cpu'],
    ['pod-resources', 'spec.resources.requests.memory'],
  ]);
  // proxy-init 50m (an init container), spiffe-helper 10m + authbridge-proxy 50m + app 100m (regular): 160m; memory
  // 16Mi + 64Mi + 128Mi = 208Mi; the proxy's cpu limit 500m is above 200m (its memory limit, 256Mi, is not above 256Mi)
  assert.equal(
    r.all[0]!.message,
    "[pod-resources] Pod team/a: spec.resources.requests.cpu is 100m, below the 160m of cpu the pod's containers request together with the injected ones (proxy-init, spiffe-helper, authbridge-proxy; 100m without them). The API server rejects a pod whose pod-level request is below its containers' aggregate, after the webhooks (spec.resources.requests[cpu]: must be greater than or equal to aggregate container requests of 160m). Fix: set spec.resources.requests.cpu to at least 160m, lower requests.cpu in the webhook config (authBridge.resources and spiffeHelper.resources), or label the pod kagenti.io/inject: disabled.",
  );
  assert.match(r.all[1]!.message, /^\[pod-resources\] Pod team\/a: spec\.resources\.limits\.cpu is 200m, below the cpu limit of the injected authbridge-proxy \(500m\)\. The API server .* Fix: set spec\.resources\.limits\.cpu to at least 500m, lower limits\.cpu in the webhook config \(authBridge\.resources\), or label the pod kagenti\.io\/inject: disabled\.$/);
  assert.match(r.all[2]!.message, /aggregate container requests of 208Mi\)\. Fix: set spec\.resources\.requests\.memory to at least 208Mi,/);
  // the values the messages give pass, here and in the test's own model of the API server
  const raised = podLevelPod({ requests: { cpu: '160m', memory: '208Mi' }, limits: { cpu: '500m', memory: '256Mi' } });
  const ok = injectTemplate(raised, defaultConfig(), ctxFor);
  assert.ok(ok.outcome === 'inject' && ok.warnings.length === 0);
  if (ok.outcome === 'inject') assert.deepEqual(podLevelResourceProblems(ok.template.spec), []);
  // one less is not enough
  for (const [key, value] of [['requests.cpu', '159m'], ['requests.memory', '207Mi'], ['limits.cpu', '499m']] as const) {
    const [list, res] = key.split('.') as ['requests' | 'limits', string];
    const less = structuredClone(raised.spec.resources);
    less[list][res] = value;
    const d = injectTemplate(podLevelPod(less), defaultConfig(), ctxFor);
    assert.ok(d.outcome === 'deny' && d.all.length === 1 && d.field?.join('.') === `spec.resources.${key}`, key);
  }
  // both sidecars above a small pod-level limit: named together, with the largest limit as the least that passes
  const small = injectTemplate(podLevelPod({ requests: { cpu: '1', memory: '32Mi' }, limits: { cpu: '1', memory: '32Mi' } }, {}, {}), defaultConfig(), ctxFor);
  assert.ok(small.outcome === 'deny');
  if (small.outcome === 'deny')
    assert.match(small.all.find((d) => d.field?.join('.') === 'spec.resources.limits.memory')!.message, /^\[pod-resources\] Pod team\/a: spec\.resources\.limits\.memory is 32Mi, below the memory limit of the injected spiffe-helper, authbridge-proxy \(up to 256Mi\)\. .* Fix: set spec\.resources\.limits\.memory to at least 256Mi, lower limits\.memory in the webhook config \(spiffeHelper\.resources and authBridge\.resources\),/);
});

test('pod-resources: a pod-level request left unset is what the API server defaults it to before the webhook: the own containers\' aggregate with limits set, else the limit', () => {
  // limits only: the API server sets the requests to what the app requests (100m, 128Mi) before calling the webhook
  const r = injectTemplate(podLevelPod({ limits: { cpu: '1', memory: '1Gi' } }), defaultConfig(), ctxFor);
  assert.ok(r.outcome === 'deny');
  if (r.outcome !== 'deny') return;
  assert.deepEqual(r.all.map((d) => d.field?.join('.')), ['spec.resources.requests.cpu', 'spec.resources.requests.memory']);
  assert.match(r.all[0]!.message, /spec\.resources\.requests\.cpu is not set, so before the webhooks run the API server sets it to 100m, what the pod's own containers request \(as spec\.resources\.limits is set\), below the 160m .* at least 160m,/);
  // no container of its own requests anything: the request is the limit, which leaves room for the sidecars
  const bare = injectTemplate(podLevelPod({ limits: { cpu: '1', memory: '1Gi' } }, {}, {}), defaultConfig(), ctxFor);
  assert.ok(bare.outcome === 'inject' && bare.warnings.length === 0);
  // a request that must rise above the pod-level limit says the limit must rise too (requests may not exceed limits)
  const over = injectTemplate(podLevelPod({ limits: { cpu: '1', memory: '150Mi' } }, {}, { requests: { memory: '140Mi' } }), defaultConfig(), ctxFor);
  assert.ok(over.outcome === 'deny' && over.all.length === 2, 'the request, and the proxy\'s 256Mi limit');
  if (over.outcome === 'deny') assert.match(over.message, /at least 220Mi and spec\.resources\.limits\.memory \(150Mi\) to at least as much \(a request may not exceed its limit\)/);
  // a container's limit is its request when it sets no request (SetDefaults_Pod)
  const fromLimit = injectTemplate(podLevelPod({ requests: { cpu: '1' } }, {}, { limits: { cpu: '950m' } }), defaultConfig(), ctxFor);
  assert.ok(fromLimit.outcome === 'deny' && fromLimit.all.some((d) => /below the 1010m of cpu .*; 950m without them\)/.test(d.message)));
});

test('pod-resources: native sidecars are init containers, summed with the containers and added to what an init container needs; their limits are not compared', () => {
  const native = { 'kagenti.io/native-sidecars': 'true' };
  const r = injectTemplate(podLevelPod(TIGHT, native), defaultConfig(), ctxFor);
  assert.ok(r.outcome === 'deny');
  if (r.outcome === 'deny') assert.deepEqual(r.all.map((d) => d.field?.join('.')), ['spec.resources.requests.cpu', 'spec.resources.requests.memory']);
  // an init container of the pod's own that needs 2 cpu: without native sidecars it runs alone (no change), with
  // them it runs beside spiffe-helper and the proxy, which start before it (2 + 60m)
  const withInit = (annotations: Record<string, string>) =>
    agentPod({}, annotations, {
      resources: { requests: { cpu: '2', memory: '1Gi' } },
      initContainers: [{ name: 'warm', image: 'w', resources: { requests: { cpu: '2', memory: '1Gi' } } }],
      containers: [{ name: 'app', image: 'x', resources: { requests: { cpu: '100m', memory: '128Mi' } } }],
    });
  const plain = injectTemplate(withInit({}), defaultConfig(), ctxFor);
  assert.ok(plain.outcome === 'inject' && !plain.warnings.some((w) => w.startsWith('[pod-resources]')));
  if (plain.outcome === 'inject') assert.deepEqual(podLevelResourceProblems(plain.template.spec), []);
  const sidecars = injectTemplate(withInit(native), defaultConfig(), ctxFor);
  assert.ok(sidecars.outcome === 'deny');
  if (sidecars.outcome === 'deny') {
    assert.match(sidecars.all[0]!.message, /below the 2060m of cpu .*; 2 without them\)/);
    assert.match(sidecars.all[1]!.message, /below the 1104Mi of memory .*; 1Gi without them\)/);
  }
});

test('pod-resources: only what injection causes; the pod\'s own excess is the API server\'s to name', () => {
  // its own container already requests more than the pod, and has a higher limit: injection adds nothing to report
  // about the limit, and the request is still reported (the sidecars raise what it must be)
  const own = agentPod({}, {}, {
    resources: { requests: { cpu: '50m' }, limits: { cpu: '600m' } },
    containers: [{ name: 'app', image: 'x', resources: { requests: { cpu: '100m' }, limits: { cpu: '700m' } } }],
  });
  const r = injectTemplate(own, defaultConfig(), ctxFor);
  assert.ok(r.outcome === 'deny');
  if (r.outcome === 'deny') assert.deepEqual(r.all.map((d) => d.field?.join('.')), ['spec.resources.requests.cpu']);
  // sidecars that request no cpu (0 in the config) add nothing to a pod whose own containers exceed its request
  const noCpu = parseConfig('authBridge:\n  resources:\n    requests: {cpu: "0"}\nspiffeHelper:\n  resources:\n    requests: {cpu: "0"}\n');
  const quiet = injectTemplate(agentPod({}, {}, { resources: { requests: { cpu: '50m', memory: '1Gi' } }, containers: [{ name: 'app', image: 'x', resources: { requests: { cpu: '100m' } } }] }), noCpu, ctxFor);
  assert.ok(quiet.outcome === 'inject' && quiet.warnings.length === 0);
  // waypoint mode injects spiffe-helper only: its 10m/16Mi count, the proxy's and proxy-init's do not
  const waypointPod = (resources: KubeObject) => podLevelPod(resources, { 'kagenti.io/authbridge-mode': 'waypoint' }, { requests: { cpu: '100m', memory: '128Mi' } });
  const waypoint = injectTemplate(waypointPod({ requests: { cpu: '110m', memory: '144Mi' }, limits: { cpu: '110m', memory: '144Mi' } }), defaultConfig(), ctxFor);
  assert.ok(waypoint.outcome === 'inject' && !waypoint.warnings.some((w) => w.startsWith('[pod-resources]')), 'spiffe-helper fits exactly');
  const short = injectTemplate(waypointPod({ requests: { cpu: '109m', memory: '144Mi' }, limits: { cpu: '110m', memory: '63Mi' } }), defaultConfig(), ctxFor);
  assert.ok(short.outcome === 'deny');
  if (short.outcome === 'deny') {
    assert.deepEqual(short.all.map((d) => d.field?.join('.')), ['spec.resources.requests.cpu', 'spec.resources.limits.memory']);
    assert.match(short.all[0]!.message, /together with the injected ones \(spiffe-helper; 100m without them\)\. .* \(spiffeHelper\.resources\)/);
  }
});

test('pod-resources: policies.pod-resources warn injects with the messages as warnings, off checks nothing; an unset request is only ever a warning', () => {
  const pod = podLevelPod(TIGHT);
  const warn = injectTemplate(pod, parseConfig('policies:\n  pod-resources: warn\n'), ctxFor);
  assert.ok(warn.outcome === 'inject');
  if (warn.outcome === 'inject') {
    assert.equal(warn.warnings.filter((w) => w.startsWith('[pod-resources] Pod team/a: spec.resources.')).length, 3);
    assert.equal(warningName(warn.warnings[0]!), 'pod-resources');
  }
  const off = injectTemplate(pod, parseConfig('policies:\n  pod-resources: off\n'), ctxFor);
  assert.ok(off.outcome === 'inject' && off.warnings.length === 0);
  assert.throws(() => parseConfig('policies:\n  pod-resources: maybe\n'), /policies\.pod-resources/);
  // a pod-level cpu request only, and a container that requests no memory: the sidecars' 80Mi meet an unset memory
  // request, which some Kubernetes versions compare as 0 (kubernetes/kubernetes#132449): a warning, not a denial
  const unset = injectTemplate(podLevelPod({ requests: { cpu: '1' } }, {}, { requests: { cpu: '100m' } }), defaultConfig(), ctxFor);
  assert.ok(unset.outcome === 'inject');
  if (unset.outcome === 'inject')
    assert.deepEqual(unset.warnings, [
      '[pod-resources] Pod team/a: spec.resources sets no memory request (nor a limit it would default from), and the injected containers (proxy-init, spiffe-helper, authbridge-proxy) request 80Mi of memory. Kubernetes versions that compare a pod-level request left unset as 0 reject the pod after the webhooks (spec.resources.requests[memory]: Invalid value: "0": must be greater than or equal to aggregate container requests of 80Mi). Fix: set spec.resources.requests.memory to at least 80Mi, or label the pod kagenti.io/inject: disabled.',
    ]);
  // ... and silenced with the rest under off
  const unsetOff = injectTemplate(podLevelPod({ requests: { cpu: '1' } }, {}, { requests: { cpu: '100m' } }), parseConfig('policies:\n  pod-resources: off\n'), ctxFor);
  assert.ok(unsetOff.outcome === 'inject' && unsetOff.warnings.length === 0);
});

test('pod-resources: values it cannot read are left to the API server (no finding, no crash); numbers from YAML are quantities', () => {
  for (const resources of [{ requests: { cpu: 'lots' } }, { requests: 'x', limits: 7 }, 'all', [], { requests: { cpu: '-1' } }, { limits: { cpu: '1e2000000000' } }, { requests: { memory: null } }]) {
    const r = injectTemplate(agentPod({}, {}, { resources, containers: [{ name: 'app', image: 'x', resources: { requests: { cpu: '100m' } } }] }), defaultConfig(), ctxFor);
    assert.ok(r.outcome === 'inject' || (r.outcome === 'deny' && r.all.every((d) => d.rule === 'pod-resources')), JSON.stringify(resources));
  }
  const bad = injectTemplate(agentPod({}, {}, { resources: { requests: { cpu: '1m' } }, containers: [{ name: 'app', image: 'x', resources: { requests: { cpu: 'x' } } }] }), defaultConfig(), ctxFor);
  assert.equal(bad.outcome, 'inject', 'a container request that is no quantity: the API server rejects it on its own');
  const numbers = injectTemplate(podLevelPod({ requests: { cpu: 0.1, memory: 134217728 } }, {}, { requests: { cpu: 0.1, memory: 134217728 } }), defaultConfig(), ctxFor);
  assert.ok(numbers.outcome === 'deny' && numbers.all.length === 2);
  // sub-milli quantities are rounded up to milli units, as the API server's defaulting does: 159.1m is 160m
  const rounded = injectTemplate(podLevelPod({ requests: { cpu: '159100u', memory: '208Mi' } }), defaultConfig(), ctxFor);
  assert.ok(rounded.outcome === 'inject', 'rounded up to 160m');
});

test("proxy-init gets its ports under the names kagenti's proxy-init image reads, so a port moved in the config moves the redirect", () => {
  const env = (cfg: ReturnType<typeof defaultConfig>, mode: string) => {
    const r = injectTemplate(agentPod({}, { 'kagenti.io/authbridge-mode': mode }, { containers: [{ name: 'app', image: 'x' }] }), cfg, ctxFor);
    assert.equal(r.outcome, 'inject');
    if (r.outcome !== 'inject') return {};
    const init = r.template.spec.initContainers.find((c: KubeObject) => c.name === 'proxy-init');
    return Object.fromEntries(init.env.map((e: KubeObject) => [e.name, e.value ?? e.valueFrom?.fieldRef?.fieldPath]));
  };
  // init-iptables.sh reads PROXY_PORT, INBOUND_PROXY_PORT, PROXY_UID and INBOUND_PORTS_EXCLUDE (defaults 15123, 15124,
  // 1337, none); with any other names the defaults would apply whatever the config says
  assert.deepEqual(env(defaultConfig(), 'proxy-sidecar'), { PROXY_UID: '1337', POD_IP: 'status.podIP', PROXY_PORT: '15123', INBOUND_PROXY_PORT: '15124', INBOUND_PORTS_EXCLUDE: '9901' });
  const moved = parseConfig('authBridge:\n  ports:\n    outbound: 16123\n    inbound: 16124\n    admin: 16901\n    extProc: 16090\n');
  assert.deepEqual(env(moved, 'envoy-sidecar'), { PROXY_UID: '1337', POD_IP: 'status.podIP', PROXY_PORT: '16123', INBOUND_PROXY_PORT: '16124', INBOUND_PORTS_EXCLUDE: '16901,16090' });
});

test('a label or annotation YAML read as a boolean or number is malformed-object with the quotes as the fix; the namespace mode label is quoted whole', () => {
  const r = injectTemplate(agentPod({ 'kagenti.io/spiffe-helper-inject': false as unknown as string }, {}, { containers: [{ name: 'app', image: 'x' }] }), defaultConfig(), ctxFor);
  assert.equal(r.outcome, 'deny');
  if (r.outcome !== 'deny') return;
  assert.match(denialText(r), /\[malformed-object\] .*metadata\.labels\["kagenti\.io\/spiffe-helper-inject"\] is false, a boolean, but labels are strings\. .*Fix: put the value in quotes as you wrote it \(kagenti\.io\/spiffe-helper-inject: "\.\.\."\), or YAML reads it as a boolean\.$/);
  const n = injectTemplate(agentPod({}, { 'kagenti.io/native-sidecars': 1 as unknown as string }, { containers: [{ name: 'app', image: 'x' }] }), defaultConfig(), ctxFor);
  assert.equal(n.outcome, 'deny');
  if (n.outcome === 'deny') assert.match(denialText(n), /annotations\["kagenti\.io\/native-sidecars"\] is 1, a number, .*Fix: put the value in quotes as you wrote it \(kagenti\.io\/native-sidecars: "\.\.\."\), or YAML reads it as a number\.$/);
  const value = 'envoy-sidecar-with-ext-proc-v2';
  const w = injectTemplate(agentPod({}, {}, { containers: [{ name: 'app', image: 'x' }] }), defaultConfig(), { ...ctxFor, namespaceLabels: { 'kagenti.io/authbridge-mode': value } });
  assert.equal(w.outcome, 'inject');
  if (w.outcome === 'inject') assert.ok(w.warnings.some((x) => x.includes(`kagenti.io/authbridge-mode="${value}" is not a mode`)), JSON.stringify(w.warnings));
});

test('default-container: set while our sidecars come first, recorded as ours, kept on the first own container, removed when not needed; a user\'s is never touched', () => {
  const cfg = defaultConfig();
  const DC = 'kubectl.kubernetes.io/default-container';
  const first = injectTemplate(agentPod({}, {}, { containers: [{ name: 'app', image: 'x' }] }), cfg, ctxFor);
  assert.ok(first.outcome === 'inject');
  if (first.outcome !== 'inject') return;
  assert.equal(first.template.metadata.annotations[DC], 'app');
  assert.equal(JSON.parse(first.template.metadata.annotations[STATUS]).defaultContainer, 'app');
  assert.equal(first.status.defaultContainer, 'app');
  // re-invocation: the same
  const again = injectTemplate(first.template, cfg, ctxFor);
  assert.ok(again.outcome === 'inject' && jsonEqual(again.template, first.template));
  // the user's container renamed: the annotation follows it
  const renamed = structuredClone(first.template);
  renamed.spec.containers.find((c: KubeObject) => c.name === 'app').name = 'main';
  const r1 = injectTemplate(renamed, cfg, ctxFor);
  assert.ok(r1.outcome === 'inject');
  if (r1.outcome === 'inject') {
    assert.equal(r1.template.metadata.annotations[DC], 'main');
    assert.equal(JSON.parse(r1.template.metadata.annotations[STATUS]).defaultContainer, 'main');
  }
  // native sidecars: ours are init containers, so kubectl's default is the first container anyway: removed
  const native = structuredClone(first.template);
  native.metadata.annotations['kagenti.io/native-sidecars'] = 'true';
  const r2 = injectTemplate(native, cfg, ctxFor);
  assert.ok(r2.outcome === 'inject');
  if (r2.outcome === 'inject') {
    assert.equal(r2.template.metadata.annotations[DC], undefined);
    assert.equal(JSON.parse(r2.template.metadata.annotations[STATUS]).defaultContainer, undefined);
  }
  // every sidecar opted out: removed with them
  const none = structuredClone(first.template);
  Object.assign(none.metadata.labels, { 'kagenti.io/authbridge-inject': 'false', 'kagenti.io/spiffe-helper-inject': 'false' });
  const r3 = injectTemplate(none, cfg, ctxFor);
  assert.ok(r3.outcome === 'inject' && r3.template.metadata.annotations?.[DC] === undefined, JSON.stringify(r3));
  // the user's own annotation: kept as written, never recorded as ours, never removed
  const user = agentPod({}, { [DC]: 'sidecar-of-mine' }, { containers: [{ name: 'app', image: 'x' }, { name: 'sidecar-of-mine', image: 'y' }] });
  const u1 = injectTemplate(user, cfg, ctxFor);
  assert.ok(u1.outcome === 'inject');
  if (u1.outcome !== 'inject') return;
  assert.equal(u1.template.metadata.annotations[DC], 'sidecar-of-mine');
  assert.equal(JSON.parse(u1.template.metadata.annotations[STATUS]).defaultContainer, undefined);
  const userNative = structuredClone(u1.template);
  userNative.metadata.annotations['kagenti.io/native-sidecars'] = 'true';
  const u2 = injectTemplate(userNative, cfg, ctxFor);
  assert.ok(u2.outcome === 'inject' && u2.template.metadata.annotations[DC] === 'sidecar-of-mine');
  // the user changed ours: theirs from then on
  const changed = structuredClone(first.template);
  changed.metadata.annotations[DC] = 'other';
  changed.metadata.annotations['kagenti.io/native-sidecars'] = 'true';
  const u3 = injectTemplate(changed, cfg, ctxFor);
  assert.ok(u3.outcome === 'inject' && u3.template.metadata.annotations[DC] === 'other');
  // a record older than the field: the annotation is read as the user's, as before
  const old = agentPod({}, { [DC]: 'app', [STATUS]: FULL_RECORD }, { containers: [{ name: 'app', image: 'x' }] });
  old.metadata.annotations['kagenti.io/native-sidecars'] = 'true';
  const o = injectTemplate(old, cfg, ctxFor);
  assert.ok(o.outcome === 'inject' && o.template.metadata.annotations[DC] === 'app');
});

test('imagePullPolicy: what the API server defaults for the image, Always for :latest or no tag (no digest), IfNotPresent otherwise; a re-invocation changes nothing', () => {
  const cfg = parseConfig([
    'authBridge:',
    '  images:',
    '    proxySidecar: registry.io/authbridge-proxy:latest',
    '    proxyInit: localhost:5000/proxy-init',
    'spiffeHelper:',
    '  image: registry.io/spiffe-helper@sha256:' + 'a'.repeat(64),
    '',
  ].join('\n'));
  const r = injectTemplate(agentPod({}, {}, { containers: [{ name: 'app', image: 'x' }] }), cfg, ctxFor);
  assert.ok(r.outcome === 'inject');
  if (r.outcome !== 'inject') return;
  const policy = (name: string) => [...r.template.spec.initContainers, ...r.template.spec.containers].find((c: KubeObject) => c.name === name).imagePullPolicy;
  assert.equal(policy('authbridge-proxy'), 'Always');
  assert.equal(policy('proxy-init'), 'Always');
  assert.equal(policy('spiffe-helper'), 'IfNotPresent');
  const again = injectTemplate(r.template, cfg, ctxFor);
  assert.ok(again.outcome === 'inject' && again.template.spec === r.template.spec || (again.outcome === 'inject' && jsonEqual(again.template, r.template)));
  const d = defaultConfig();
  const tagged = injectTemplate(agentPod({}, {}, { containers: [{ name: 'app', image: 'x' }] }), d, ctxFor);
  assert.ok(tagged.outcome === 'inject' && tagged.template.spec.containers.every((c: KubeObject) => c.name === 'app' || c.imagePullPolicy === 'IfNotPresent'));
});

test('port-conflict: an ordinary init container of the pod runs to completion before a non-native proxy starts, so its port does not clash; with native sidecars it does, and the pod\'s native sidecars always do', () => {
  const initWith = (extra: KubeObject) => ({ containers: [{ name: 'app', image: 'x' }], initContainers: [{ name: 'setup', image: 'y', ports: [{ containerPort: 15123 }], ...extra }] });
  const cfg = defaultConfig();
  const ordinary = injectTemplate(agentPod({}, {}, initWith({})), cfg, ctxFor);
  assert.equal(ordinary.outcome, 'inject', JSON.stringify(ordinary));
  const native = injectTemplate(agentPod({}, { 'kagenti.io/native-sidecars': 'true' }, initWith({})), cfg, ctxFor);
  assert.ok(native.outcome === 'deny' && native.rule === 'port-conflict', JSON.stringify(native));
  if (native.outcome === 'deny') assert.match(native.message, /container setup declares port 15123 \(spec\.initContainers\[0\]\.ports\[0\]\.containerPort\), which the injected container authbridge-proxy \(mode proxy-sidecar\) needs for its outbound listener/);
  const ownSidecar = injectTemplate(agentPod({}, {}, initWith({ restartPolicy: 'Always' })), cfg, ctxFor);
  assert.ok(ownSidecar.outcome === 'deny' && ownSidecar.rule === 'port-conflict', JSON.stringify(ownSidecar));
  const regular = injectTemplate(agentPod({}, {}, { containers: [{ name: 'app', image: 'x', ports: [{ containerPort: 15124 }] }] }), cfg, ctxFor);
  assert.ok(regular.outcome === 'deny' && regular.rule === 'port-conflict');
});

test('an injected pod no longer to be injected (kagenti.io/inject: disabled, no type label, a tool with injectTools off) loses what its record lists: the result is the source with that label', () => {
  const cfg = defaultConfig();
  const withTools = parseConfig('featureGates:\n  injectTools: true\n');
  const source = agentPod({}, {}, { containers: [{ name: 'app', image: 'x' }], initContainers: [{ name: 'setup', image: 'y' }], volumes: [{ name: 'data', emptyDir: {} }] });
  delete source.metadata.annotations;
  const cases: [string, (p: KubeObject) => void, string, typeof cfg][] = [
    ['inject-disabled', (p) => (p.metadata.labels['kagenti.io/inject'] = 'disabled'), 'inject-disabled', cfg],
    ['not-agent', (p) => delete p.metadata.labels['kagenti.io/type'], 'not-agent', cfg],
    ['tools-disabled', (p) => (p.metadata.labels['kagenti.io/type'] = 'tool'), 'tools-disabled', withTools],
  ];
  for (const [what, relabel, reason, injectCfg] of cases) {
    const first = injectTemplate(deepFreeze(structuredClone(source)), injectCfg, ctxFor);
    assert.equal(first.outcome, 'inject');
    if (first.outcome !== 'inject') return;
    const injected = structuredClone(first.template);
    relabel(injected);
    const expected = structuredClone(source);
    relabel(expected);
    // the source with that label is skipped as it is
    assert.deepEqual(injectTemplate(deepFreeze(structuredClone(expected)), cfg, ctxFor), { outcome: 'skip', reason }, what);
    const r = injectTemplate(deepFreeze(injected), cfg, ctxFor);
    assert.equal(r.outcome, 'inject', what);
    if (r.outcome !== 'inject') continue;
    assert.deepEqual(r.template, expected, `${what}: every injected piece, the record and the annotations it set are gone`);
    assert.deepEqual(r.injected, []);
    assert.deepEqual(r.warnings, []);
    // and again: nothing left to take out
    assert.deepEqual(injectTemplate(deepFreeze(structuredClone(r.template)), cfg, ctxFor), { outcome: 'skip', reason }, `${what}: second pass`);
  }
  // the global switch leaves every pod as it comes, an injected one too
  const first = injectTemplate(structuredClone(source), cfg, ctxFor);
  assert.ok(first.outcome === 'inject');
  if (first.outcome === 'inject')
    assert.deepEqual(injectTemplate(first.template, parseConfig('featureGates:\n  globalEnabled: false\n'), ctxFor), { outcome: 'skip', reason: 'global-disabled' });
  // what the record does not account for stays: a user's own spiffe-helper image, a volume the pod still mounts
  const own = agentPod({ 'kagenti.io/inject': 'disabled' }, { [STATUS]: FULL_RECORD }, {
    containers: [
      { name: 'app', image: 'x', volumeMounts: [{ name: 'svid-output', mountPath: '/certs' }] },
      { name: 'spiffe-helper', image: 'my/own-helper:1' },
    ],
    volumes: [{ name: 'svid-output', emptyDir: {} }],
  });
  const kept = injectTemplate(deepFreeze(own), cfg, ctxFor);
  assert.ok(kept.outcome === 'inject');
  if (kept.outcome === 'inject') {
    assert.deepEqual(kept.template.spec, own.spec);
    assert.equal(kept.template.metadata.annotations, undefined, 'the record goes');
  }
  // a record that would leave no container of the pod's own: left as it is
  const all = agentPod({ 'kagenti.io/inject': 'disabled' }, { [STATUS]: FULL_RECORD }, { containers: [{ name: 'spiffe-helper', image: cfg.spiffeHelper.image }] });
  assert.deepEqual(injectTemplate(all, cfg, ctxFor), { outcome: 'skip', reason: 'inject-disabled' });
});

test('all-opted-out: its fix gives no advice that would bring the sidecars back', () => {
  const cfg = defaultConfig();
  const first = injectTemplate(agentPod({}, {}, { containers: [{ name: 'app', image: 'x' }] }), cfg, ctxFor);
  assert.ok(first.outcome === 'inject');
  if (first.outcome !== 'inject') return;
  const pod = structuredClone(first.template);
  Object.assign(pod.metadata.labels, { 'kagenti.io/authbridge-inject': 'false', 'kagenti.io/spiffe-helper-inject': 'false' });
  const r = injectTemplate(pod, cfg, ctxFor);
  assert.ok(r.outcome === 'inject');
  if (r.outcome !== 'inject') return;
  assert.equal(r.warnings.length, 1);
  assert.match(r.warnings[0]!, /^\[all-opted-out\] .* Fix: remove an opt-out label; if the agent needs no sidecar, set policies\.all-opted-out: off to silence this\.$/);
  // what the old advice (label kagenti.io/inject: disabled) gives now: the same pod, no sidecars
  const disabled = structuredClone(first.template);
  disabled.metadata.labels['kagenti.io/inject'] = 'disabled';
  const d = injectTemplate(disabled, cfg, ctxFor);
  assert.ok(d.outcome === 'inject');
  if (d.outcome === 'inject') assert.deepEqual(d.template.spec, r.template.spec);
});
