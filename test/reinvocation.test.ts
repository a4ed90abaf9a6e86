// Re-invocation (reinvocationPolicy: IfNeeded): the API server calls the webhook again after a later webhook changed
// the injected pod (webhooks run in the order of their configurations' names: Vault's agent injector appends
// vault-agent, its init container and volume, Linkerd's puts linkerd-proxy first, others insert between ours; EKS's
// vpc-resource-mutating-webhook adds an extended resource to the first container). Istio's injector sorts before
// this webhook: its sidecar is in the pod when it is first injected (the Istio-first case below).
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
import { apiServerDefaults, decodePatch, kubectlPatch, podCreateRequest, podOfWorkload, podProblems, startTestServer } from './helpers.ts';
import { injectStream } from '../webhook/inject-cli.ts';
import { parse, stringify } from 'yaml';

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
// what webhooks that run after this one insert (their configurations' names sort after kagenti-webhook's)
const laterProxy = { name: 'linkerd-proxy', image: 'cr.l5d.io/linkerd/proxy:stable-2.14.10', imagePullPolicy: 'IfNotPresent', terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'File' };
const laterInit = { name: 'vault-agent-init', image: 'hashicorp/vault:1.17.0', imagePullPolicy: 'IfNotPresent', terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'File' };
const laterVolume = { name: 'vault-secrets', emptyDir: { medium: 'Memory' } };

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

test('after a later webhook appends a container and a volume (Vault), a re-invocation returns no patch', () => {
  for (const [label, cfg] of CONFIGS) {
    const pod = insert(injected(cfg), [
      ['containers', -1, laterProxy],
      ['volumes', -1, laterVolume],
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
      [['containers', 0, laterProxy]],
      [['containers', 1, laterProxy]],
      [['volumes', 0, laterVolume]],
      [['volumes', 2, laterVolume]],
      [['volumes', 3, laterVolume]],
      [['initContainers', -1, laterInit]],
      [
        ['containers', 1, laterProxy],
        ['volumes', 2, laterVolume],
        ['initContainers', -1, laterInit],
      ],
    ];
    // without proxy-init, nothing depends on what runs before or between our native sidecars
    if (nativeNoInit) edits.push([['initContainers', 0, laterInit]], [['initContainers', 1, laterInit]]);
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
    ['containers', 0, laterProxy],
    ['volumes', 1, laterVolume],
  ]);
  assert.deepEqual(names(pod.spec.containers), ['linkerd-proxy', 'spiffe-helper', 'authbridge-proxy', 'agent']);
  const same = injectTemplate(pod, cfg, ctx);
  assert.ok(same.outcome === 'inject');
  for (const list of ['containers', 'initContainers', 'volumes'])
    for (const item of same.template.spec[list]) assert.ok(pod.spec[list].includes(item), `${list}: ${item.name} is not the input's own object`);
  // a new spiffe-helper image: only spiffe-helper is sent, at its place; linkerd-proxy stays first
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
  // authbridge-proxy was taken out; linkerd-proxy stays first
  const envoy = structuredClone(pod);
  envoy.metadata.annotations['kagenti.io/authbridge-mode'] = 'envoy-sidecar';
  const switched = apply(envoy, patchOf(envoy, cfg));
  assert.deepEqual(names(switched.spec.containers), ['linkerd-proxy', 'spiffe-helper', 'envoy-proxy', 'agent']);
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
        ['initContainers', at, laterInit],
        ['containers', -1, laterProxy],
      ]);
      const ops = patchOf(pod, cfg);
      assert.ok(ops.length, `${label}, at ${at}: no patch`);
      // the other webhook's items are never sent again, nor is a list replaced whole
      assert.ok(!/linkerd|vault/.test(JSON.stringify(ops)), JSON.stringify(ops));
      assert.ok(ops.every((o) => o.path.startsWith('/spec/initContainers/')), JSON.stringify(ops.map((o) => o.path)));
      const out = apply(pod, ops);
      assert.deepEqual(kubectlPatch(pod, ops), out, 'the real patch library gives another pod');
      assert.deepEqual(names(out.spec.initContainers), [...ours, 'vault-agent-init'], `${label}, at ${at}`);
      const r = injectTemplate(pod, cfg, ctx);
      assert.ok(r.outcome === 'inject' && jsonEqual(out, r.template));
      assert.deepEqual(podProblems(out), []);
      assert.deepEqual(patchOf(apiServerDefaults(out), cfg), [], `${label}, at ${at}: the next re-invocation must be a no-op`);
    }
  }
});

test('warnings on a re-invocation are those of the pod as it is: another webhook’s init container after proxy-init is named', () => {
  const cfg = defaultConfig();
  const pod = insert(injected(cfg), [['initContainers', -1, laterInit]]);
  const d = mutate(request(pod), { config: cfg });
  assert.equal(d.response.patch, undefined);
  assert.match((d.response.warnings ?? []).join('\n'), /\[init-before-proxy\].*vault-agent-init/);
});

/** What EKS's vpc-resource-mutating-webhook (Security Groups for Pods) does after us: a branch ENI for containers[0]. */
function podEni(pod: KubeObject): KubeObject {
  const out = structuredClone(pod);
  const c = out.spec.containers[0];
  c.resources ??= {};
  c.resources.requests = { ...c.resources.requests, 'vpc.amazonaws.com/pod-eni': '1' };
  c.resources.limits = { ...c.resources.limits, 'vpc.amazonaws.com/pod-eni': '1' };
  return out;
}
const eni = (c: KubeObject) => [c.resources?.requests?.['vpc.amazonaws.com/pod-eni'], c.resources?.limits?.['vpc.amazonaws.com/pod-eni']];

test('EKS Security Groups for Pods: an extended resource a later webhook added to a container of ours stays, and a re-rendered piece carries it over', () => {
  for (const [label, cfg] of CONFIGS) {
    const pod = podEni(injected(cfg));
    // without native sidecars containers[0] is spiffe-helper, ours: the re-invocation leaves it as it is
    assert.deepEqual(patchOf(pod, cfg), [], label);
    assert.deepEqual(podProblems(pod), []);
  }
  const cfg = defaultConfig();
  const pod = podEni(injected(cfg));
  assert.equal(pod.spec.containers[0].name, 'spiffe-helper');
  // a new spiffe-helper image: the piece is rendered again, in its place, with the pod-eni requests and limits
  const newer = parseConfig('spiffeHelper:\n  image: ghcr.io/spiffe/spiffe-helper:0.11.0\n');
  const ops = patchOf(pod, newer);
  const out = apply(pod, ops);
  assert.deepEqual(kubectlPatch(pod, ops), out, 'the real patch library gives another pod');
  assert.equal(out.spec.containers[0].image, 'ghcr.io/spiffe/spiffe-helper:0.11.0');
  assert.deepEqual(eni(out.spec.containers[0]), ['1', '1']);
  assert.deepEqual(patchOf(apiServerDefaults(out), newer), [], 'the next re-invocation must be a no-op');
  // a field we render that another webhook changed is still reset; the extended resource it added stays
  const tampered = structuredClone(pod);
  tampered.spec.containers[0].resources.limits.cpu = '2';
  const reset = apply(tampered, patchOf(tampered, cfg));
  assert.equal(reset.spec.containers[0].resources.limits.cpu, cfg.spiffeHelper.resources.limits.cpu);
  assert.deepEqual(eni(reset.spec.containers[0]), ['1', '1']);
  // a resource name without a domain prefix is not another webhook's to add to ours: taken out as before
  const plain = structuredClone(pod);
  plain.spec.containers[0].resources.requests['hugepages-2Mi'] = '2Mi';
  const cleaned = apply(plain, patchOf(plain, cfg));
  assert.equal(cleaned.spec.containers[0].resources.requests['hugepages-2Mi'], undefined);
  assert.deepEqual(eni(cleaned.spec.containers[0]), ['1', '1']);
});

// Istio's injector (istio-sidecar-injector, istio-revision-tag-default) sorts before kagenti-webhook: the pod comes
// with istio-init, istio-proxy and Istio's volumes already in it, and our first injection places ours around them.
test('Istio first: a pod as Istio\'s injector left it is injected once (with the istio-sidecar warning), and re-invocations return no patch', () => {
  const istioInit = { name: 'istio-init', image: 'docker.io/istio/proxyv2:1.22.0', args: ['istio-iptables', '-u', '1337'], securityContext: { runAsUser: 0, capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] } } };
  const istioProxy = { name: 'istio-proxy', image: 'docker.io/istio/proxyv2:1.22.0', args: ['proxy', 'sidecar'], securityContext: { runAsUser: 1337, runAsGroup: 1337 }, readinessProbe: { httpGet: { path: '/healthz/ready', port: 15021 } } };
  for (const [label, cfg] of CONFIGS)
    for (const nativeIstio of [false, true]) {
      const pod: KubeObject = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'weather', namespace: 'team-a', labels: { 'kagenti.io/type': 'agent', 'security.istio.io/tlsMode': 'istio' }, annotations: { 'sidecar.istio.io/status': '{"initContainers":["istio-init"],"containers":["istio-proxy"],"volumes":["istio-envoy"]}' } },
        spec: {
          serviceAccountName: 'weather',
          initContainers: nativeIstio ? [istioInit, { ...istioProxy, restartPolicy: 'Always' }] : [istioInit],
          containers: [{ name: 'agent', image: 'agent:1' }, ...(nativeIstio ? [] : [istioProxy])],
          volumes: [{ name: 'istio-envoy', emptyDir: { medium: 'Memory' } }],
        },
      };
      const first = mutate(request(apiServerDefaults(pod)), { config: cfg });
      assert.equal(first.response.allowed, true);
      const warnings = (first.response.warnings ?? []).join('\n');
      assert.match(warnings, /\[istio-sidecar\] Pod team-a\/weather: container istio-proxy/, label);
      assert.doesNotMatch(warnings, /\[(proxy-uid|init-before-proxy|net-admin)\]/, label);
      const out = apiServerDefaults(apply(apiServerDefaults(pod), decodePatch(first.response) as Operation[]));
      // proxy-init (where it is injected) runs before istio-init; Istio's containers keep their order
      if (label !== 'native sidecars, no proxy-init') assert.equal(out.spec.initContainers[0].name, 'proxy-init', label);
      assert.deepEqual(names(out.spec.initContainers).filter((n) => n.startsWith('istio')), nativeIstio ? ['istio-init', 'istio-proxy'] : ['istio-init'], label);
      assert.deepEqual(podProblems(out), []);
      assert.deepEqual(patchOf(out, cfg), [], `${label}: the re-invocation must be a no-op`);
      // and after a webhook that runs after us appends its own
      const later = insert(out, [
        ['containers', -1, laterProxy],
        ['volumes', -1, laterVolume],
      ]);
      assert.deepEqual(patchOf(later, cfg), [], label);
    }
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
      ['containers', -1, laterProxy],
      ['initContainers', -1, laterInit],
      ['volumes', -1, laterVolume],
    ]);
    const again = await server.review('/mutate', podCreateRequest(later));
    assert.equal(again.allowed, true);
    assert.equal(again.patch, undefined);
  } finally {
    await server.close();
  }
});

/**
 * What the API server's ServiceAccount admission plugin adds to a pod before the mutating webhooks see it: the
 * projected token volume, and its mount as the last of every container and init container (ours included).
 */
function withServiceAccountToken(pod: KubeObject, suffix = 'x7k2q'): KubeObject {
  const out = structuredClone(pod);
  const name = `kube-api-access-${suffix}`;
  out.spec.serviceAccount = out.spec.serviceAccountName;
  out.spec.volumes = [
    ...(out.spec.volumes ?? []),
    {
      name,
      projected: {
        defaultMode: 420,
        sources: [
          { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
          { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
          { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
        ],
      },
    },
  ];
  for (const list of ['containers', 'initContainers'])
    for (const c of out.spec[list] ?? []) c.volumeMounts = [...(c.volumeMounts ?? []), { name, readOnly: true, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' }];
  return out;
}

test('a pod of a template inject rendered (GitOps) is not injected again at admission: the ServiceAccount token mount the API server adds to our containers is tolerated, and kept when they are rendered anew', () => {
  const req = (p: KubeObject) => podCreateRequest(p) as unknown as AdmissionRequest;
  for (const native of [false, true]) {
    const label = native ? 'native sidecars' : 'sidecars';
    const dep = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'w', namespace: 'team-a' },
      spec: {
        selector: { matchLabels: { app: 'w' } },
        template: {
          metadata: { labels: { app: 'w', 'kagenti.io/type': 'agent' }, ...(native ? { annotations: { 'kagenti.io/native-sidecars': 'true' } } : {}) },
          spec: { serviceAccountName: 'w', containers: [{ name: 'agent', image: 'x:1' }], initContainers: [{ name: 'migrate', image: 'm:1', command: ['sh', '-c', 'true'] }] },
        },
      },
    };
    const cfg = defaultConfig();
    const rendered = parse(injectStream(stringify(dep), cfg, 'default').output);
    const pod = withServiceAccountToken(apiServerDefaults(podOfWorkload(rendered)!));
    // the same config: nothing to do, and not counted as an injection
    const same = mutate(req(pod), { config: cfg });
    assert.equal(same.response.allowed, true, label);
    assert.equal(same.response.patch, undefined, `${label}: ${JSON.stringify(decodePatch(same.response))}`);
    assert.deepEqual(same.detail?.injected, [], label);
    // another proxy image since the render: the proxy is rendered anew, in its place, and keeps its token mount
    const newer = parseConfig('authBridge: {images: {proxySidecar: "registry.example/authbridge-proxy:9.9"}}\n');
    const d = mutate(req(pod), { config: newer });
    const ops = decodePatch(d.response);
    assert.ok(ops.length > 0, label);
    const out = apiServerDefaults(kubectlPatch(pod, ops));
    const list = native ? out.spec.initContainers : out.spec.containers;
    const proxy = list.find((c: KubeObject) => c.name === 'authbridge-proxy');
    assert.equal(proxy.image, 'registry.example/authbridge-proxy:9.9', label);
    for (const c of [...out.spec.containers, ...out.spec.initContainers])
      assert.deepEqual(c.volumeMounts.at(-1), { name: 'kube-api-access-x7k2q', readOnly: true, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' }, `${label}: ${c.name}`);
    // only the proxy changed: the other pieces of ours stay where they were
    assert.deepEqual(
      [...out.spec.containers, ...out.spec.initContainers].filter((c: KubeObject) => c.name !== 'authbridge-proxy'),
      [...pod.spec.containers, ...pod.spec.initContainers].filter((c: KubeObject) => c.name !== 'authbridge-proxy'),
      label,
    );
    // and a re-invocation after that is a no-op
    assert.equal(mutate(req(out), { config: newer }).response.patch, undefined, label);
  }
});
