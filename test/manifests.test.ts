// The install manifests, rendered offline with the real `kubectl kustomize` and checked for the
// invariants that make a failurePolicy: Fail webhook safe to run: selectors, exclusions, timeouts,
// least privilege, security contexts, certificates that match the Service, and a config the server
// accepts. The webhooks' CEL matchConditions are evaluated against sample objects with a CEL evaluator.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { run as celRun, type CelInput } from '@bufbuild/cel';
import { defaultConfig, parseConfig } from '../webhook/config.ts';
import { checkCertificateDir, generateCertificates, serviceDnsNames, writeCertificates } from '../webhook/certs.ts';
import { BIN, ROOT, copyManifests } from './helpers.ts';
import { UNWATCHED_NAMESPACES } from '../webhook/rules.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- rendered Kubernetes objects
type Obj = any;

const NS = 'kagenti-system';
const SERVICE = 'kagenti-webhook';
const EXCLUDED = ['kube-system', 'kube-public', 'kube-node-lease', NS];
const READ_VERBS = new Set(['get', 'list', 'watch']);

// This file writes nothing into the checkout: `npm test` runs two test files at once, and another may be reading or
// copying manifests/. The overlays are rendered from a copy (copyManifests) in a temporary directory, made once and
// removed after the file; the self-signed overlay's certificates and the overlays the tests add go there.
let copy: string | undefined;
after(() => {
  if (copy !== undefined) rmSync(copy, { recursive: true, force: true });
});
/** The temporary directory that holds the copy, as `manifests/` (where `make -f Makefile` runs on it). */
function copyRoot(): string {
  if (copy === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'kagenti-manifests-'));
    copy = dir;
    copyManifests(join(dir, 'manifests'));
  }
  return copy;
}
/** An overlay's directory in the copy of manifests/. */
const overlayDir = (overlay: string) => join(copyRoot(), 'manifests', overlay);
const selfSignedCerts = () => join(overlayDir('self-signed'), 'certs');

/** Certificates for the self-signed overlay in its (git-ignored) certs directory, as `make certs` writes them. */
async function ensureSelfSignedCerts(): Promise<void> {
  if (checkCertificateDir(selfSignedCerts(), [`${SERVICE}.${NS}.svc`]) === null) return;
  writeCertificates(selfSignedCerts(), await generateCertificates({ service: SERVICE, namespace: NS }));
}

const renders = new Map<string, Obj[]>();
async function render(overlay: string): Promise<Obj[]> {
  if (overlay === 'self-signed') await ensureSelfSignedCerts();
  const cached = renders.get(overlay);
  if (cached) return cached;
  const text = execFileSync('kubectl', ['kustomize', overlayDir(overlay)], { encoding: 'utf8' });
  const docs = parseAllDocuments(text).map((d) => {
    assert.deepEqual(d.errors, []);
    return d.toJS() as Obj;
  });
  renders.set(overlay, docs);
  return docs;
}

function one(docs: Obj[], kind: string, name?: string): Obj {
  const found = docs.filter((d) => d.kind === kind && (name === undefined || d.metadata.name === name || d.metadata.name.startsWith(`${name}-`)));
  assert.equal(found.length, 1, `exactly one ${kind} ${name ?? ''}`);
  return found[0];
}

const OVERLAYS = ['default', 'self-signed', 'with-network-policy'];

/** Runs CEL the way the API server does for webhook matchConditions: `object` is the request's object. */
function cel(expression: string, object: unknown, update?: { oldObject: unknown }): unknown {
  const toCel = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(toCel)
      : v !== null && typeof v === 'object'
        ? new Map(Object.entries(v).map(([k, x]) => [k, toCel(x)]))
        : typeof v === 'number' && Number.isInteger(v)
          ? BigInt(v)
          : v;
  // `request` as the API server gives it to matchConditions; request.kind and request.operation are read.
  const kind = object !== null && typeof object === 'object' ? (object as { kind?: unknown }).kind : undefined;
  const operation = update ? 'UPDATE' : object === null ? 'DELETE' : 'CREATE';
  const request = toCel({ kind: { group: '', version: 'v1', kind: typeof kind === 'string' ? kind : '' }, operation });
  const oldObject = update ? toCel(update.oldObject) : null;
  return celRun(expression, { object: toCel(object) as CelInput, oldObject: oldObject as CelInput, request: request as CelInput });
}

function matches(webhook: Obj, object: unknown, update?: { oldObject: unknown }): boolean {
  for (const c of webhook.matchConditions ?? []) {
    const r = cel(c.expression, object, update);
    assert.equal(typeof r, 'boolean', `matchCondition ${c.name} must evaluate to a boolean, got ${String(r)} for ${JSON.stringify(object)}`);
    if (r === false) return false;
  }
  return true;
}

for (const overlay of OVERLAYS) {
  test(`${overlay}: renders; every namespaced object is in ${NS}; the namespace is created`, async () => {
    const docs = await render(overlay);
    const ns = one(docs, 'Namespace', NS);
    // Kagenti's own chart installs into this namespace, and its UI and backend pods do not meet restricted:
    // warned about and audited, never enforced (the webhook's own pods meet it: the next test).
    const labels = ns.metadata.labels;
    assert.equal(labels['pod-security.kubernetes.io/enforce'], undefined, 'restricted is not enforced on Kagenti\'s namespace');
    assert.equal(labels['pod-security.kubernetes.io/warn'], 'restricted');
    assert.equal(labels['pod-security.kubernetes.io/audit'], 'restricted');
    const clusterScoped = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']);
    for (const d of docs) {
      if (clusterScoped.has(d.kind)) assert.equal(d.metadata.namespace, undefined, `${d.kind} ${d.metadata.name}`);
      else assert.equal(d.metadata.namespace, NS, `${d.kind} ${d.metadata.name}`);
    }
  });

  test(`${overlay}: RBAC is read-only and covers what the informers read`, async () => {
    const docs = await render(overlay);
    for (const role of docs.filter((d) => d.kind === 'ClusterRole' || d.kind === 'Role')) {
      for (const rule of role.rules) {
        for (const verb of rule.verbs) assert.ok(READ_VERBS.has(verb), `${role.kind} ${role.metadata.name}: write verb ${verb}`);
        assert.ok(!(rule.resources ?? []).includes('secrets'), 'no access to Secrets (helm records come in the admission request)');
        assert.ok(!(rule.resources ?? []).includes('*') && !(rule.apiGroups ?? []).includes('*'), 'no wildcards');
      }
    }
    const role = one(docs, 'ClusterRole', SERVICE);
    const need: Array<[string, string]> = [
      ['', 'pods'],
      ['', 'namespaces'],
      ['', 'configmaps'],
      ['apps', 'deployments'],
      ['apps', 'statefulsets'],
      ['apps', 'daemonsets'],
      ['apps', 'replicasets'],
      ['batch', 'jobs'],
      ['batch', 'cronjobs'],
      ['storage.k8s.io', 'csidrivers'],
    ];
    for (const [group, resource] of need) {
      for (const verb of ['list', 'watch']) {
        assert.ok(
          role.rules.some((r: Obj) => (r.apiGroups ?? []).includes(group) && (r.resources ?? []).includes(resource) && r.verbs.includes(verb)),
          `ClusterRole lacks ${verb} on ${group || 'core'}/${resource}`,
        );
      }
    }
    // Least privilege: the informers only list and watch (webhook/cluster.ts); get is for the issuer's discovery document alone.
    for (const rule of role.rules) {
      if (rule.resources) assert.deepEqual([...rule.verbs].sort(), ['list', 'watch'], `verbs on ${rule.resources.join(', ')}`);
      else assert.deepEqual(rule, { nonResourceURLs: ['/.well-known/openid-configuration'], verbs: ['get'] });
    }
    const binding = one(docs, 'ClusterRoleBinding', SERVICE);
    assert.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: SERVICE });
    assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: SERVICE, namespace: NS }]);
    one(docs, 'ServiceAccount', SERVICE);
  });

  test(`${overlay}: Deployment is highly available, hardened, and never admitted by itself`, async () => {
    const docs = await render(overlay);
    const dep = one(docs, 'Deployment', SERVICE);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const spec = dep.spec.template.spec;
    assert.equal(dep.spec.replicas, 2);
    assert.equal(dep.spec.strategy.rollingUpdate.maxUnavailable, 0);
    assert.equal(spec.serviceAccountName, SERVICE);
    assert.equal(spec.priorityClassName, 'system-cluster-critical');
    assert.ok(spec.topologySpreadConstraints.some((c: Obj) => c.topologyKey === 'kubernetes.io/hostname' && c.maxSkew === 1));
    for (const c of spec.topologySpreadConstraints) assert.deepEqual(c.labelSelector.matchLabels, dep.spec.selector.matchLabels);
    const labels = dep.spec.template.metadata.labels;
    assert.equal(labels['kagenti.io/type'], undefined, 'webhook pods carry no agent label');
    for (const [k, v] of Object.entries(dep.spec.selector.matchLabels)) assert.equal(labels[k], v);
    assert.equal(spec.securityContext.runAsNonRoot, true);
    assert.equal(spec.securityContext.seccompProfile.type, 'RuntimeDefault');
    assert.equal(spec.containers.length, 1);
    const c = spec.containers[0];
    assert.equal(c.image, `ghcr.io/kagenti/kagenti-webhook:v${pkg.version}`, 'image tag follows package.json');
    assert.deepEqual(c.args.slice(0, 9), [
      'serve',
      // every address: an IPv6-only cluster's pod is reachable and ready too
      '--host',
      '::',
      '--config',
      '/etc/kagenti-webhook/config.yaml',
      '--tls-cert',
      '/etc/kagenti-webhook/tls/tls.crt',
      '--tls-key',
      '/etc/kagenti-webhook/tls/tls.key',
    ]);
    const flag = (name: string) => {
      const i = c.args.indexOf(name);
      return i < 0 ? undefined : c.args[i + 1];
    };
    const drain = Number(flag('--drain-seconds') ?? 5);
    // The heap flags the memory goal was measured with (BENCHMARKS.md; bench/run.ts runs the server with them).
    const nodeOptions = (c.env ?? []).find((e: { name: string }) => e.name === 'NODE_OPTIONS')?.value ?? '';
    assert.match(nodeOptions, /--max-semi-space-size=8\b/);
    assert.match(nodeOptions, /--max-old-space-size=\d+/);
    // and the allocator setting it was measured with (a string: env values must be)
    assert.equal((c.env ?? []).find((e: { name: string }) => e.name === 'MALLOC_ARENA_MAX')?.value, '2');
    // Drain, then up to 15 s for in-flight admissions (server.close grace), then exit: all inside the grace period.
    assert.ok(spec.terminationGracePeriodSeconds > drain + 15, `terminationGracePeriodSeconds ${spec.terminationGracePeriodSeconds}`);
    const sc = c.securityContext;
    assert.equal(sc.runAsNonRoot, true);
    assert.equal(sc.readOnlyRootFilesystem, true);
    assert.equal(sc.allowPrivilegeEscalation, false);
    assert.deepEqual(sc.capabilities.drop, ['ALL']);
    assert.equal(sc.capabilities.add, undefined);
    assert.equal(sc.privileged, false);
    assert.equal(sc.seccompProfile.type, 'RuntimeDefault');
    for (const kind of ['requests', 'limits']) {
      assert.ok(c.resources[kind].cpu && c.resources[kind].memory, `resources.${kind}`);
    }
    // Probes on the probe port, which is the one the server is told to use.
    const port = (name: string) => c.ports.find((p: Obj) => p.name === name)?.containerPort;
    assert.equal(port('probes'), Number(flag('--probe-port') ?? 8080));
    assert.equal(port('probes'), 8080);
    assert.equal(port('webhook'), Number(flag('--port') ?? 9443));
    assert.equal(port('webhook'), 9443);
    assert.deepEqual(c.readinessProbe.httpGet, { path: '/readyz', port: 'probes' });
    assert.deepEqual(c.livenessProbe.httpGet, { path: '/healthz', port: 'probes' });
    assert.ok(
      c.readinessProbe.periodSeconds * c.readinessProbe.failureThreshold < drain,
      'readiness notices /readyz 503 within the drain period',
    );
    // /readyz shares the admissions' event loop: one slow probe on every replica at once must not empty the endpoints
    assert.ok(c.readinessProbe.failureThreshold >= 3, `readinessProbe.failureThreshold ${c.readinessProbe.failureThreshold}`);
    // The TLS Secret is mounted as a directory (subPath mounts never see renewals).
    const tlsMount = c.volumeMounts.find((m: Obj) => m.mountPath === '/etc/kagenti-webhook/tls');
    assert.ok(tlsMount && !tlsMount.subPath && tlsMount.readOnly);
    const tlsVolume = spec.volumes.find((v: Obj) => v.name === tlsMount.name);
    const secretName = tlsVolume.secret.secretName;
    if (overlay === 'self-signed') {
      const secret = one(docs, 'Secret', 'kagenti-webhook-tls');
      assert.equal(secretName, secret.metadata.name);
      assert.equal(secret.type, 'kubernetes.io/tls');
    } else {
      const cert = one(docs, 'Certificate', 'kagenti-webhook-serving');
      assert.equal(secretName, cert.spec.secretName);
    }
    // The config volume names the generated ConfigMap.
    const cfgVolume = spec.volumes.find((v: Obj) => v.name === c.volumeMounts.find((m: Obj) => m.mountPath === '/etc/kagenti-webhook/config.yaml').name);
    assert.equal(cfgVolume.configMap.name, one(docs, 'ConfigMap', 'kagenti-webhook-config').metadata.name);

    const pdb = one(docs, 'PodDisruptionBudget', SERVICE);
    assert.equal(pdb.spec.minAvailable, 1);
    // two running but unready replicas must not block a node drain
    assert.equal(pdb.spec.unhealthyPodEvictionPolicy, 'AlwaysAllow');
    assert.deepEqual(pdb.spec.selector.matchLabels, dep.spec.selector.matchLabels);
    const quota = one(docs, 'ResourceQuota');
    assert.deepEqual(quota.spec.scopeSelector.matchExpressions[0].values, ['system-cluster-critical']);
  });

  test(`${overlay}: the webhook's pods meet the restricted Pod Security Standard (the namespace only warns)`, async () => {
    const docs = await render(overlay);
    const spec = one(docs, 'Deployment', SERVICE).spec.template.spec;
    // baseline
    for (const f of ['hostNetwork', 'hostPID', 'hostIPC']) assert.equal(spec[f] ?? false, false, f);
    assert.equal(spec.securityContext.sysctls, undefined);
    const containers = [...spec.containers, ...(spec.initContainers ?? []), ...(spec.ephemeralContainers ?? [])];
    for (const c of containers) {
      assert.equal(c.securityContext?.privileged ?? false, false, `${c.name} privileged`);
      for (const p of c.ports ?? []) assert.equal(p.hostPort ?? 0, 0, `${c.name} hostPort`);
      assert.equal(c.securityContext?.seLinuxOptions, undefined);
      assert.ok([undefined, 'Default'].includes(c.securityContext?.procMount), `${c.name} procMount`);
    }
    // restricted
    const allowedVolumes = ['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret'];
    for (const v of spec.volumes) {
      const types = Object.keys(v).filter((k) => k !== 'name');
      assert.ok(types.every((t) => allowedVolumes.includes(t)), `volume ${v.name}: ${types.join(', ')}`);
    }
    assert.equal(spec.securityContext.runAsNonRoot, true);
    assert.notEqual(spec.securityContext.runAsUser, 0);
    assert.equal(spec.securityContext.seccompProfile.type, 'RuntimeDefault');
    for (const c of containers) {
      const sc = c.securityContext;
      assert.equal(sc.allowPrivilegeEscalation, false, `${c.name} allowPrivilegeEscalation`);
      assert.deepEqual(sc.capabilities.drop, ['ALL'], `${c.name} drops ALL`);
      for (const cap of sc.capabilities.add ?? []) assert.equal(cap, 'NET_BIND_SERVICE', `${c.name} adds ${cap}`);
      assert.notEqual(sc.runAsNonRoot, false, c.name);
      assert.notEqual(sc.runAsUser, 0, c.name);
      assert.ok([undefined, 'RuntimeDefault', 'Localhost'].includes(sc.seccompProfile?.type), `${c.name} seccompProfile`);
    }
  });

  test(`${overlay}: the generated ConfigMap and Secret carry the label \`make undeploy\` deletes them by`, async () => {
    const docs = await render(overlay);
    const generated = docs.filter((d) => (d.kind === 'ConfigMap' || d.kind === 'Secret') && /-[a-z0-9]{10}$/.test(d.metadata.name));
    assert.equal(generated.length, overlay === 'self-signed' ? 2 : 1, generated.map((d) => d.metadata.name).join(' '));
    for (const d of generated) assert.equal(d.metadata.labels['app.kubernetes.io/name'], SERVICE, `${d.kind} ${d.metadata.name}`);
  });

  test(`${overlay}: Service 443 -> 9443 selects the webhook pods`, async () => {
    const docs = await render(overlay);
    const svc = one(docs, 'Service', SERVICE);
    const dep = one(docs, 'Deployment', SERVICE);
    assert.equal(svc.spec.ports.length, 1);
    assert.equal(svc.spec.ports[0].port, 443);
    const target = svc.spec.ports[0].targetPort;
    const containerPort = dep.spec.template.spec.containers[0].ports.find((p: Obj) => p.name === target || p.containerPort === target);
    assert.equal(containerPort?.containerPort, 9443);
    for (const [k, v] of Object.entries(svc.spec.selector)) assert.equal(dep.spec.template.metadata.labels[k], v);
  });

  test(`${overlay}: the ConfigMap holds a config the server accepts, in step with the webhooks' ConfigMap names`, async () => {
    const docs = await render(overlay);
    const cm = one(docs, 'ConfigMap', 'kagenti-webhook-config');
    const config = parseConfig(cm.data['config.yaml']);
    const names = config.tokenReview.configMapNames;
    assert.ok(names.length > 0);
    const webhooks = [...one(docs, 'MutatingWebhookConfiguration').webhooks, ...one(docs, 'ValidatingWebhookConfiguration').webhooks];
    // the token-review webhooks; the Helm one takes only release records (HELM_DRIVER=configmap), tested below
    const cmHooks = webhooks.filter((w: Obj) => w.name !== 'helm-releases.validate.kagenti.io' && w.rules.some((r: Obj) => r.resources.includes('configmaps')));
    assert.equal(cmHooks.length, 2);
    for (const w of cmHooks) {
      for (const name of names) assert.ok(matches(w, { kind: 'ConfigMap', metadata: { name, namespace: 'kagent' }, data: {} }), `${w.name} gets ${name}`);
      assert.equal(matches(w, { kind: 'ConfigMap', metadata: { name: 'kube-root-ca.crt', namespace: 'kagent' } }), false, `${w.name} never gets other ConfigMaps`);
    }
    // RBAC reads those ConfigMaps and no other (list/watch by the metadata.name field selector match resourceNames).
    const rules = one(docs, 'ClusterRole', SERVICE).rules.filter((r: Obj) => (r.resources ?? []).includes('configmaps'));
    assert.equal(rules.length, 1);
    assert.deepEqual([...rules[0].resourceNames].sort(), [...names].sort());
    assert.deepEqual(rules[0].resources, ['configmaps']);
  });

  test(`${overlay}: MutatingWebhookConfiguration is exactly as specified`, async () => {
    const docs = await render(overlay);
    const mwc = one(docs, 'MutatingWebhookConfiguration', SERVICE);
    assert.equal(mwc.metadata.name, SERVICE);
    const inject = mwc.webhooks.find((w: Obj) => w.name === 'inject.kagenti.io');
    assert.ok(inject, 'webhook inject.kagenti.io');
    assert.deepEqual(inject.rules, [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }]);
    assert.deepEqual(inject.objectSelector, {
      matchExpressions: [
        { key: 'kagenti.io/type', operator: 'In', values: ['agent', 'tool'] },
        { key: 'kagenti.io/inject', operator: 'NotIn', values: ['disabled'] },
      ],
    });
    assert.equal(inject.failurePolicy, 'Fail');
    assert.equal(inject.reinvocationPolicy, 'IfNeeded');
    assert.equal(inject.clientConfig.service.path, '/mutate');
    for (const w of mwc.webhooks) {
      assert.match(w.name, /(^|\.)inject\.kagenti\.io$/);
      assert.equal(w.clientConfig.service.path, '/mutate');
    }
  });

  test(`${overlay}: ValidatingWebhookConfiguration: validate.kagenti.io names, /validate, scoped by CEL`, async () => {
    const docs = await render(overlay);
    const vwc = one(docs, 'ValidatingWebhookConfiguration', SERVICE);
    const byName = new Map<string, Obj>(vwc.webhooks.map((w: Obj) => [w.name, w]));
    for (const w of vwc.webhooks) {
      assert.match(w.name, /\.validate\.kagenti\.io$/);
      assert.equal(w.clientConfig.service.path, '/validate');
    }
    const pods = byName.get('pods.validate.kagenti.io');
    assert.deepEqual(pods.rules[0].resources, ['pods']);
    assert.deepEqual(pods.objectSelector.matchExpressions[0], { key: 'kagenti.io/type', operator: 'In', values: ['agent', 'tool'] });
    // Every agent pod CREATE is sent; of the UPDATEs (objectSelector: the old or the new pod is labelled), only
    // those that change kagenti.io/type, so relabelling a running agent cannot release its ServiceAccount.
    assert.deepEqual(pods.rules[0].operations, ['CREATE', 'UPDATE']);
    const pod = (labels?: Record<string, string>, extra: Obj = {}) => ({ kind: 'Pod', metadata: { name: 'p', ...(labels ? { labels } : {}), ...extra }, spec: { containers: [] } });
    const AGENT_LABELS = { 'kagenti.io/type': 'agent' };
    assert.equal(matches(pods, pod({ 'kagenti.io/type': 'agent' })), true);
    assert.equal(matches(pods, pod({ 'kagenti.io/type': 'agent' }), { oldObject: pod({ 'kagenti.io/type': 'agent' }) }), false, 'an UPDATE that keeps the label');
    assert.equal(matches(pods, pod({ 'kagenti.io/type': 'agent', app: 'x' }, { annotations: { a: 'b' } }), { oldObject: pod({ 'kagenti.io/type': 'agent' }) }), false);
    assert.equal(matches(pods, pod({ app: 'x' }), { oldObject: pod({ 'kagenti.io/type': 'agent', app: 'x' }) }), true, 'label removed');
    assert.equal(matches(pods, pod(), { oldObject: pod({ 'kagenti.io/type': 'agent' }) }), true, 'every label removed');
    assert.equal(matches(pods, pod({ 'kagenti.io/type': 'tool' }), { oldObject: pod({ 'kagenti.io/type': 'agent' }) }), true, 'value changed');
    assert.equal(matches(pods, pod({ 'kagenti.io/type': 'agent' }), { oldObject: pod() }), true, 'label added');
    assert.equal(matches(pods, { kind: 'Pod' }, { oldObject: { kind: 'Pod' } }), false, 'no metadata: no error');
    const agentA = { 'kagenti.io/type': 'agent', 'kagenti.io/agent': 'a' };
    assert.equal(matches(pods, pod({ ...agentA, 'kagenti.io/agent': 'b' }), { oldObject: pod(agentA) }), true, 'agent label changed');
    assert.equal(matches(pods, pod({ 'kagenti.io/type': 'agent' }), { oldObject: pod(agentA) }), true, 'agent label removed');
    assert.equal(matches(pods, pod({ ...agentA, x: 'y' }), { oldObject: pod(agentA) }), false, 'agent label kept');

    // kubectl debug: UPDATEs of pods/ephemeralcontainers that add a container to a labelled pod with proxy-init, on a
    // webhook of their own with failurePolicy Ignore (only warned), none of it through the mutating webhook
    const debug = byName.get('ephemeral-containers.validate.kagenti.io');
    assert.deepEqual(debug.rules, [{ operations: ['UPDATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods/ephemeralcontainers'], scope: 'Namespaced' }]);
    assert.equal(debug.failurePolicy, 'Ignore');
    assert.deepEqual(debug.objectSelector, pods.objectSelector);
    const mwc = one(docs, 'MutatingWebhookConfiguration', SERVICE);
    for (const w of [...mwc.webhooks, ...vwc.webhooks.filter((x: Obj) => x !== debug)])
      for (const r of w.rules) assert.ok(!r.resources.some((x: string) => x.startsWith('pods/')), `${w.name}: no pod subresource`);
    const redirected = (ephemeral?: Obj[]) => ({ ...pod(AGENT_LABELS), spec: { initContainers: [{ name: 'proxy-init' }], containers: [{ name: 'a' }], ...(ephemeral ? { ephemeralContainers: ephemeral } : {}) } });
    const dbg = { name: 'debugger-x7k2p', image: 'busybox' };
    assert.equal(matches(debug, redirected([dbg]), { oldObject: redirected() }), true, 'the first debug container');
    assert.equal(matches(debug, redirected([dbg, { ...dbg, name: 'd2' }]), { oldObject: redirected([dbg]) }), true, 'another one');
    assert.equal(matches(debug, redirected([dbg]), { oldObject: redirected([dbg]) }), false, 'none added');
    assert.equal(matches(debug, { ...pod(AGENT_LABELS), spec: { containers: [], ephemeralContainers: [dbg] } }, { oldObject: pod(AGENT_LABELS) }), false, 'no proxy-init: no redirect');
    assert.equal(matches(debug, { kind: 'Pod' }, { oldObject: { kind: 'Pod' } }), false, 'no spec: no error');

    const workloads = byName.get('workloads.validate.kagenti.io');
    const resources = workloads.rules.flatMap((r: Obj) => r.resources).sort();
    assert.deepEqual(resources, ['cronjobs', 'daemonsets', 'deployments', 'jobs', 'replicasets', 'statefulsets']);
    for (const r of workloads.rules) assert.deepEqual(r.operations, ['CREATE', 'UPDATE']);
    assert.ok(workloads.matchConditions.length > 0);
    const tmpl = (labels?: Record<string, string>) => ({ metadata: labels ? { labels } : {}, spec: { containers: [] } });
    const dep = (labels?: Record<string, string>, extra: Obj = {}) => ({ kind: 'Deployment', metadata: { name: 'd', ...extra }, spec: { template: tmpl(labels) } });
    assert.equal(matches(workloads, dep({ 'kagenti.io/type': 'agent' })), true);
    assert.equal(matches(workloads, dep({ 'kagenti.io/type': 'tool' })), true);
    assert.equal(matches(workloads, dep({ app: 'web' })), false);
    assert.equal(matches(workloads, dep()), false, 'a template without labels is not sent (and does not error)');
    assert.equal(matches(workloads, { kind: 'Deployment', metadata: { name: 'd' }, spec: {} }), false);
    assert.equal(matches(workloads, { kind: 'Deployment', metadata: { name: 'd' } }), false);
    assert.equal(matches(workloads, null), false, 'DELETE: object is null');
    const cron = (labels?: Record<string, string>) => ({ kind: 'CronJob', metadata: { name: 'c' }, spec: { schedule: '* * * * *', jobTemplate: { spec: { template: tmpl(labels) } } } });
    assert.equal(matches(workloads, cron({ 'kagenti.io/type': 'agent' })), true);
    assert.equal(matches(workloads, cron({ other: 'x' })), false);
    assert.equal(matches(workloads, cron()), false);
    const owned = { ownerReferences: [{ kind: 'Deployment', name: 'd', apiVersion: 'apps/v1', uid: 'u', controller: true }] };
    const rs = (meta: Record<string, unknown>) => ({ ...dep({ 'kagenti.io/type': 'agent' }, meta), kind: 'ReplicaSet' });
    assert.equal(matches(workloads, rs(owned)), false, 'a ReplicaSet a Deployment controls was checked as the Deployment');
    assert.equal(matches(workloads, rs({})), true, 'a bare (or orphaned) ReplicaSet is checked');
    assert.equal(matches(workloads, rs({ ownerReferences: [{ ...owned.ownerReferences[0], controller: false }] })), true, 'a ReplicaSet a Deployment only refers to is checked');
    assert.equal(matches(workloads, rs({ ownerReferences: [{ kind: 'Rollout', name: 'r', apiVersion: 'argoproj.io/v1alpha1', uid: 'u', controller: true }] })), true, 'an Argo Rollout\'s ReplicaSet is checked');
    assert.equal(matches(workloads, dep({ 'kagenti.io/type': 'agent' }, owned)), true, 'only ReplicaSets are skipped, as the webhook skips them');
    assert.equal(matches(workloads, dep({ 'kagenti.io/type': 'agent' }, { ownerReferences: [{ kind: 'CronJob', name: 'c', apiVersion: 'batch/v1', uid: 'u' }] })), true);

    const cms = byName.get('configmaps.validate.kagenti.io');
    assert.deepEqual(cms.rules[0].resources, ['configmaps']);
    assert.equal(matches(cms, null), false);

    const helm = byName.get('helm-releases.validate.kagenti.io');
    // Secrets (Helm's default driver) and ConfigMaps (HELM_DRIVER=configmap), the records only
    assert.deepEqual(helm.rules[0].resources, ['secrets', 'configmaps']);
    const secret = (type?: string) => ({ kind: 'Secret', metadata: { name: 'sh.helm.release.v1.x.v1', labels: { owner: 'helm' } }, ...(type ? { type } : {}) });
    assert.equal(matches(helm, secret('helm.sh/release.v1')), true);
    assert.equal(matches(helm, secret('Opaque')), false);
    assert.equal(matches(helm, secret()), false);
    assert.equal(matches(helm, null), false);
    const configMap = (name: string) => ({ kind: 'ConfigMap', metadata: { name, labels: { owner: 'helm' } }, data: { release: 'x' } });
    assert.equal(matches(helm, configMap('sh.helm.release.v1.x.v1')), true);
    assert.equal(matches(helm, configMap('x-config')), false);
    assert.equal(matches(helm, { kind: 'ConfigMap', metadata: {} }), false);
  });

  test(`${overlay}: every webhook is safe: v1, no side effects, <= 5 s, system and own namespaces excluded, our Service`, async () => {
    const docs = await render(overlay);
    const all = [...one(docs, 'MutatingWebhookConfiguration').webhooks, ...one(docs, 'ValidatingWebhookConfiguration').webhooks];
    assert.ok(all.length >= 6);
    const names = all.map((w: Obj) => w.name);
    assert.equal(new Set(names).size, names.length, 'unique webhook names');
    for (const w of all) {
      assert.deepEqual(w.admissionReviewVersions, ['v1'], w.name);
      assert.equal(w.sideEffects, 'None', w.name);
      assert.ok(w.timeoutSeconds >= 1 && w.timeoutSeconds <= 5, `${w.name} timeoutSeconds ${w.timeoutSeconds}`);
      assert.ok(['Fail', 'Ignore'].includes(w.failurePolicy), w.name);
      // Ignore only where the webhook never denies what it is sent (Helm's early check, kubectl debug's warnings)
      if (w.name !== 'helm-releases.validate.kagenti.io' && w.name !== 'ephemeral-containers.validate.kagenti.io') assert.equal(w.failurePolicy, 'Fail', w.name);
      const excluded = w.namespaceSelector.matchExpressions.find((e: Obj) => e.key === 'kubernetes.io/metadata.name' && e.operator === 'NotIn');
      assert.ok(excluded, `${w.name} namespaceSelector`);
      for (const ns of EXCLUDED) assert.ok(excluded.values.includes(ns), `${w.name} excludes ${ns}`);
      // lint's unwatched-namespace names exactly these
      assert.deepEqual([...excluded.values].sort(), [...UNWATCHED_NAMESPACES].sort(), `${w.name}: UNWATCHED_NAMESPACES (rules.ts)`);
      assert.deepEqual(w.clientConfig.service, { name: SERVICE, namespace: NS, path: w.clientConfig.service.path, port: 443 });
      assert.equal(w.clientConfig.url, undefined);
      for (const r of w.rules) {
        assert.ok(!r.operations.includes('*') && !r.resources.includes('*'), `${w.name}: no wildcard rules`);
        assert.ok(!r.operations.includes('DELETE') || (w.matchConditions ?? []).length > 0, `${w.name}: DELETE only behind null-safe conditions`);
      }
      for (const c of w.matchConditions ?? []) {
        // Any object: never an evaluation error (a CEL error with failurePolicy Fail rejects the request).
        for (const sample of [null, {}, { metadata: {} }, { metadata: { name: 'x', labels: {} }, spec: {} }]) {
          const r = cel(c.expression, sample);
          assert.equal(typeof r, 'boolean', `${w.name}/${c.name} on ${JSON.stringify(sample)}: ${String(r)}`);
        }
      }
    }
  });
}

test('default: cert-manager chain, serving certificate names match the Service, CA injected into both configurations', async () => {
  const docs = await render('default');
  const selfSigned = docs.find((d) => d.kind === 'Issuer' && d.spec.selfSigned);
  assert.ok(selfSigned, 'a self-signed Issuer');
  const ca = docs.find((d) => d.kind === 'Certificate' && d.spec.isCA === true);
  assert.ok(ca, 'a CA Certificate');
  assert.equal(ca.spec.issuerRef.name, selfSigned.metadata.name);
  const caIssuer = docs.find((d) => d.kind === 'Issuer' && d.spec.ca);
  assert.equal(caIssuer.spec.ca.secretName, ca.spec.secretName);
  const serving = one(docs, 'Certificate', 'kagenti-webhook-serving');
  assert.equal(serving.spec.issuerRef.name, caIssuer.metadata.name);
  assert.notEqual(serving.spec.isCA, true);
  const svc = one(docs, 'Service', SERVICE);
  const svcName = `${svc.metadata.name}.${svc.metadata.namespace}.svc`;
  assert.ok(serving.spec.dnsNames.includes(svcName), `dnsNames include ${svcName}`);
  assert.ok(serving.spec.dnsNames.includes(`${svcName}.cluster.local`));
  for (const name of serving.spec.dnsNames) assert.ok(name === svc.metadata.name || name.startsWith(`${svc.metadata.name}.`), name);
  assert.ok(serving.spec.usages.includes('server auth'));
  assert.equal(serving.spec.privateKey.rotationPolicy, 'Always');
  const ref = `${serving.metadata.namespace}/${serving.metadata.name}`;
  for (const kind of ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']) {
    const cfg = one(docs, kind, SERVICE);
    assert.equal(cfg.metadata.annotations['cert-manager.io/inject-ca-from'], ref, kind);
    // Every webhook names the Service the certificate is for.
    for (const w of cfg.webhooks) assert.equal(`${w.clientConfig.service.name}.${w.clientConfig.service.namespace}.svc`, svcName);
  }
  assert.equal(docs.some((d) => d.kind === 'Secret'), false, 'cert-manager creates the Secret; none is rendered');
});

test('self-signed: caBundle is the generated CA, the Secret holds the pair, and the certificate names the Service', async () => {
  const docs = await render('self-signed');
  const caPem = readFileSync(join(selfSignedCerts(), 'ca.crt'), 'utf8');
  const secret = one(docs, 'Secret', 'kagenti-webhook-tls');
  const decode = (b64: string) => Buffer.from(b64.replace(/\s+/g, ''), 'base64').toString('utf8');
  assert.equal(decode(secret.data['ca.crt']), caPem);
  const leaf = new X509Certificate(decode(secret.data['tls.crt']));
  assert.ok(leaf.verify(new X509Certificate(caPem).publicKey));
  const svc = one(docs, 'Service', SERVICE);
  for (const name of serviceDnsNames(svc.metadata.name, svc.metadata.namespace)) assert.equal(leaf.checkHost(name), name);
  for (const kind of ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']) {
    const cfg = one(docs, kind, SERVICE);
    assert.equal(cfg.metadata.annotations?.['cert-manager.io/inject-ca-from'], undefined);
    for (const w of cfg.webhooks) assert.equal(decode(w.clientConfig.caBundle), caPem, `${kind} ${w.name} caBundle`);
  }
  assert.equal(docs.some((d) => d.apiVersion?.startsWith('cert-manager.io/')), false, 'no cert-manager resources');
});

test('self-signed: without `make certs` the overlay does not render, and says which file is missing', (t) => {
  // A copy of the tree with the overlay but no certs directory (the real one may hold certificates).
  const dir = mkdtempSync(join(tmpdir(), 'kagenti-overlay-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(join(ROOT, 'manifests', 'base'), join(dir, 'base'), { recursive: true });
  mkdirSync(join(dir, 'self-signed'));
  cpSync(join(ROOT, 'manifests', 'self-signed', 'kustomization.yaml'), join(dir, 'self-signed', 'kustomization.yaml'));
  const r = spawnSync('kubectl', ['kustomize', join(dir, 'self-signed')], { encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /certs\/ca\.crt|certs\/tls\.crt|certs\/tls\.key/);
});

test('the copy the tests render from leaves out what is not part of manifests/: .test-* directories and the certificates of `make certs`', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kagenti-copy-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const src = join(dir, 'manifests');
  for (const d of ['base', 'self-signed/certs', '.test-pod-monitor-x', 'components/.test-y']) mkdirSync(join(src, d), { recursive: true });
  for (const f of ['base/kustomization.yaml', 'self-signed/kustomization.yaml', 'self-signed/certs/tls.key', '.test-pod-monitor-x/kustomization.yaml', 'components/.test-y/a.yaml', 'components/x.yaml'])
    writeFileSync(join(src, f), f);
  copyManifests(join(dir, 'copy'), src);
  const files = execFileSync('find', ['.', '-type', 'f'], { cwd: join(dir, 'copy'), encoding: 'utf8' }).split('\n').filter(Boolean).sort();
  assert.deepEqual(files, ['./base/kustomization.yaml', './components/x.yaml', './self-signed/kustomization.yaml']);
});

test('generated keys are git-ignored, never committed', () => {
  for (const path of ['manifests/self-signed/certs/tls.key', 'certs/dev/tls.key']) {
    const r = spawnSync('git', ['check-ignore', '-q', path], { cwd: ROOT });
    assert.equal(r.status, 0, `${path} is ignored`);
  }
  const tracked = execFileSync('git', ['ls-files'], { cwd: ROOT, encoding: 'utf8' }).split('\n');
  assert.deepEqual(tracked.filter((f) => /(^|\/)tls\.key$|\.key$/.test(f) && !f.startsWith('test/')), []);
});

test('the NetworkPolicy component admits only the webhook port to the webhook pods', async () => {
  const docs = await render('with-network-policy');
  const np = one(docs, 'NetworkPolicy', SERVICE);
  const dep = one(docs, 'Deployment', SERVICE);
  assert.deepEqual(np.spec.podSelector.matchLabels, dep.spec.selector.matchLabels);
  assert.deepEqual(np.spec.policyTypes, ['Ingress']);
  // the webhook port from anywhere (the API server's address differs between clusters); /metrics on the probe port
  // only from the monitoring namespace (the README's alerts need a scrape)
  assert.deepEqual(np.spec.ingress, [
    { ports: [{ protocol: 'TCP', port: 9443 }] },
    { from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }], ports: [{ protocol: 'TCP', port: 8080 }] },
  ]);
  const probe = dep.spec.template.spec.containers[0].ports.find((p: Obj) => p.name === 'probes');
  assert.equal(probe.containerPort, 8080);
  assert.equal((await render('default')).some((d) => d.kind === 'NetworkPolicy'), false, 'optional: not in default');
});

test('metrics can be scraped: prometheus.io annotations on the pods, and an optional PodMonitor component on the probe port', async () => {
  const dep = one(await render('default'), 'Deployment', SERVICE);
  const args: string[] = dep.spec.template.spec.containers[0].args;
  const probePort = args[args.indexOf('--probe-port') + 1];
  assert.deepEqual(dep.spec.template.metadata.annotations, { 'prometheus.io/scrape': 'true', 'prometheus.io/port': probePort, 'prometheus.io/path': '/metrics' });
  assert.equal((await render('default')).some((d) => d.kind === 'PodMonitor'), false, 'optional: not in default (needs the Prometheus Operator CRDs)');
  // an overlay with the component, as install.md shows it
  // (beside the overlays, in the copy: kustomize takes relative paths only)
  const dir = mkdtempSync(overlayDir('.test-pod-monitor-'));
  writeFileSync(join(dir, 'kustomization.yaml'), 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../default\ncomponents:\n  - ../components/pod-monitor\n');
  const docs = parseAllDocuments(execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8' })).map((d) => d.toJS() as Obj);
  const pm = one(docs, 'PodMonitor', SERVICE);
  assert.equal(pm.apiVersion, 'monitoring.coreos.com/v1');
  assert.equal(pm.metadata.namespace, 'kagenti-system');
  assert.deepEqual(pm.spec.selector.matchLabels, dep.spec.selector.matchLabels);
  assert.deepEqual(pm.spec.podMetricsEndpoints, [{ port: 'probes', path: '/metrics', interval: '30s' }]);
});

test('every rendered document passes `kagenti-webhook lint`', { skip: !existsSync(join(ROOT, 'dist', 'cli.js')) && 'needs the build (npm test builds first)' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kagenti-lint-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const overlay of OVERLAYS) {
    await render(overlay);
    const text = execFileSync('kubectl', ['kustomize', overlayDir(overlay)], { encoding: 'utf8' });
    const file = join(dir, `${overlay}.yaml`);
    writeFileSync(file, text);
    for (const issuer of ['--external-issuer', '--internal-issuer']) {
      const r = spawnSync(process.execPath, [BIN, 'lint', '--strict', '--format', 'json', issuer, file], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${overlay} ${issuer}: ${r.stdout}${r.stderr}`);
      const report = JSON.parse(r.stdout) as { violations: unknown[]; summary: { documents: number } };
      assert.deepEqual(report.violations, []);
      assert.equal(report.summary.documents, (await render(overlay)).length);
    }
  }
});

test('make manifests puts $(IMG) in the Deployment, also with VERSION overridden', { skip: spawnSync('make', ['--version']).status !== 0 && 'make is not installed' }, () => {
  const image = (...vars: string[]) => {
    const r = spawnSync('make', ['-s', 'manifests', ...vars], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return [...new Set(r.stdout.split('\n').filter((l) => /^\s+image: /.test(l)).map((l) => l.trim()))];
  };
  assert.deepEqual(image('VERSION=0.2.0'), ['image: ghcr.io/kagenti/kagenti-webhook:v0.2.0']);
  assert.deepEqual(image('VERSION=0.2.0', 'IMG=reg.example.com/kw:dev'), ['image: reg.example.com/kw:dev']);
  assert.deepEqual(image('IMG=reg.example.com/kw:dev'), ['image: reg.example.com/kw:dev']);
  assert.deepEqual(image('IMG=reg.example.com:5000/team/kw@sha256:' + 'ab'.repeat(32)), ['image: reg.example.com:5000/team/kw@sha256:' + 'ab'.repeat(32)]);
  // a reference no runtime can pull is refused before anything is rendered (it would only show as InvalidImageName)
  for (const [vars, shown] of [
    [['IMG=reg.example.com/KW:dev'], "'reg.example.com/KW:dev' (from IMG=reg.example.com/KW:dev)"],
    [['IMG=reg.example.com/kw dev'], "'reg.example.com/kw dev' (from IMG=reg.example.com/kw dev)"],
    [['IMG=reg.example.com/kw:'], "'reg.example.com/kw:' (from IMG=reg.example.com/kw:)"],
    [['VERSION=1.0 beta'], "'ghcr.io/kagenti/kagenti-webhook:v1.0 beta' (from VERSION=1.0 beta)"],
  ] as const) {
    const r = spawnSync('make', ['-s', 'manifests', ...vars], { cwd: ROOT, encoding: 'utf8' });
    assert.notEqual(r.status, 0, vars.join(' '));
    assert.equal(r.stdout, '', vars.join(' '));
    assert.ok(r.stderr.includes(`make: the image ${shown} is not a valid image reference: the Deployment would name an image no node can pull (InvalidImageName). Fix: `), r.stderr);
  }
});

test("make manifests keeps the image an overlay's images: sets (newTag or digest), as kubectl kustomize does; IMG= or VERSION= replaces it and says so; a renamed image it cannot replace is a warning", { skip: spawnSync('make', ['--version']).status !== 0 && 'make is not installed' }, (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kagenti-image-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const overlay = (name: string, image: string): string => {
    mkdirSync(join(dir, name));
    writeFileSync(
      join(dir, name, 'kustomization.yaml'),
      `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ${relative(join(dir, name), join(ROOT, 'manifests', 'default'))}\nimages:\n  - name: ghcr.io/kagenti/kagenti-webhook\n    ${image}\n`,
    );
    return relative(join(ROOT, 'manifests'), join(dir, name));
  };
  const manifests = (env: NodeJS.ProcessEnv, ...vars: string[]) => {
    const clean: NodeJS.ProcessEnv = { ...process.env, ...env };
    delete clean.MAKEFLAGS;
    if (!('IMG' in env)) delete clean.IMG;
    if (!('VERSION' in env)) delete clean.VERSION;
    const r = spawnSync('make', ['-s', 'manifests', ...vars], { cwd: ROOT, env: clean, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return { images: [...new Set(r.stdout.split('\n').filter((l) => /^\s+image: /.test(l)).map((l) => l.trim().slice('image: '.length)))], stderr: r.stderr };
  };
  const kustomized = (o: string) => execFileSync('kubectl', ['kustomize', join(ROOT, 'manifests', o)], { encoding: 'utf8' }).match(/^\s+image: (\S+)$/m)![1];

  const tag = `OVERLAY=${overlay('tag', 'newTag: sha-abc123')}`;
  const tagged = 'ghcr.io/kagenti/kagenti-webhook:sha-abc123';
  assert.equal(kustomized(tag.slice('OVERLAY='.length)), tagged);
  assert.deepEqual(manifests({}, tag), { images: [tagged], stderr: '' });
  const byImg = manifests({}, tag, 'IMG=reg.example.com/kw:dev');
  assert.deepEqual(byImg.images, ['reg.example.com/kw:dev']);
  assert.match(byImg.stderr, /^make: IMG=reg\.example\.com\/kw:dev replaces ghcr\.io\/kagenti\/kagenti-webhook:sha-abc123, the webhook image manifests\/\S+\/tag sets \(kustomize images:\), with reg\.example\.com\/kw:dev \(without IMG= and VERSION=, make keeps the overlay's image\)\n$/);
  assert.deepEqual(manifests({}, tag, 'VERSION=0.2.0').images, ['ghcr.io/kagenti/kagenti-webhook:v0.2.0']);
  // IMG in the environment counts as given too; VERSION there does not (a CI's VERSION is often about something
  // else): package.json's version stays, for the base and the overlay alike, and make says so
  assert.deepEqual(manifests({ IMG: 'reg.example.com/kw:env' }, tag).images, ['reg.example.com/kw:env']);
  const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version;
  const envVersion = manifests({ VERSION: '2024.10.1' });
  assert.deepEqual(envVersion.images, [`ghcr.io/kagenti/kagenti-webhook:v${version}`]);
  assert.match(envVersion.stderr, /^make: VERSION=2024\.10\.1 in the environment is not used \(package\.json's version is\); give it on the command line to use it: make \.\.\. VERSION=2024\.10\.1\n$/);
  assert.deepEqual(manifests({ VERSION: '2024.10.1' }, tag).images, [tagged]);

  const sha = 'sha256:' + '0123456789abcdef'.repeat(4);
  const digest = `OVERLAY=${overlay('digest', `digest: ${sha}`)}`;
  assert.deepEqual(manifests({}, digest), { images: [`ghcr.io/kagenti/kagenti-webhook@${sha}`], stderr: '' });
  const overDigest = manifests({}, digest, 'IMG=reg.example.com/kw:dev');
  assert.deepEqual(overDigest.images, ['reg.example.com/kw:dev']);
  assert.match(overDigest.stderr, new RegExp(`^make: IMG=reg\\.example\\.com/kw:dev replaces ghcr\\.io/kagenti/kagenti-webhook@${sha}, the webhook image manifests/\\S+/digest sets `));

  // renamed: nothing names ghcr.io/kagenti/kagenti-webhook any more, so IMG= cannot be applied: not silently
  const renamed = `OVERLAY=${overlay('renamed', 'newName: mirror.example/kw\n    newTag: v9')}`;
  assert.deepEqual(manifests({}, renamed), { images: ['mirror.example/kw:v9'], stderr: '' });
  const notApplied = manifests({}, renamed, 'IMG=reg.example.com/kw:dev');
  assert.deepEqual(notApplied.images, ['mirror.example/kw:v9']);
  assert.match(notApplied.stderr, /^make: warning: IMG=reg\.example\.com\/kw:dev is not applied: manifests\/\S+\/renamed names no image ghcr\.io\/kagenti\/kagenti-webhook \(it renders mirror\.example\/kw:v9: .*Fix: set that overlay's images: to reg\.example\.com\/kw:dev .*\n$/);
});

test("the base config lists every policy that denies by default, and install.md's audit-first section names each one to set to warn", () => {
  const denying = Object.entries(defaultConfig().policies).filter(([, action]) => action === 'deny').map(([rule]) => rule);
  assert.ok(denying.includes('pod-resources'), denying.join(' '));
  const base = parseAllDocuments(readFileSync(join(ROOT, 'manifests', 'base', 'config.yaml'), 'utf8'))[0]!.toJS() as { policies: Record<string, string> };
  assert.deepEqual(Object.keys(base.policies).sort(), [...denying].sort());
  const install = readFileSync(join(ROOT, 'docs', 'install.md'), 'utf8');
  const from = install.indexOf('## On a cluster that already runs agents');
  const audit = install.slice(from, install.indexOf('\n## ', from + 1));
  const warnSentence = audit.slice(audit.indexOf('Or install with the policies at `warn`'));
  for (const rule of denying) assert.ok(warnSentence.includes(`\`${rule}\``), `install.md's audit-first section names ${rule}`);
  assert.match(warnSentence, new RegExp(`set the ${['zero', 'one', 'two', 'three', 'four', 'five', 'six'][denying.length]} \`deny\` \`policies\``));
});

test('make manifests fails (exit 2, nothing on stdout) for an overlay that does not exist or does not render', { skip: spawnSync('make', ['--version']).status !== 0 && 'make is not installed' }, () => {
  const missing = spawnSync('make', ['-s', 'manifests', 'OVERLAY=nope'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(missing.status, 2, missing.stderr);
  assert.equal(missing.stdout, '');
  assert.match(missing.stderr, /^make: there is no overlay manifests\/nope: /);
  // a directory whose kustomization kustomize refuses (beside the overlays, in the copy: kustomize takes relative
  // paths only); the checkout's Makefile run in the copy's directory
  const dir = mkdtempSync(overlayDir('.test-broken-'));
  writeFileSync(join(dir, 'kustomization.yaml'), 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../no-such-base\n');
  const broken = spawnSync('make', ['-s', '-f', join(ROOT, 'Makefile'), 'manifests', `OVERLAY=${basename(dir)}`], { cwd: copyRoot(), encoding: 'utf8' });
  assert.equal(broken.status, 2, broken.stderr);
  assert.equal(broken.stdout, '');
  assert.match(broken.stderr, /make: manifests\/\.test-broken-\w+ does not render \(kustomize's error above\); nothing was printed/);
});

test('make help shows the image and the certificates directory, not $(IMG) and $(CERTS_DIR)', { skip: spawnSync('make', ['--version']).status !== 0 && 'make is not installed' }, () => {
  const r = spawnSync('make', ['-s', 'help', 'IMG=reg.example.com/kw:dev'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^ {2}image {6}Build the container image reg\.example\.com\/kw:dev$/m);
  assert.match(r.stdout, /self-signed overlay \(manifests\/self-signed\/certs, git-ignored\)/);
  assert.doesNotMatch(r.stdout, /\$\(IMG\)|\$\(CERTS_DIR\)/);
});

test('the optional egress component lets the webhook pods reach only DNS and the API server ports; with-network-policy stays Ingress-only', async () => {
  // an overlay with both components, as install.md shows it (beside the overlays, in the copy: kustomize takes
  // relative paths only)
  const dir = mkdtempSync(overlayDir('.test-egress-'));
  writeFileSync(
    join(dir, 'kustomization.yaml'),
    'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../default\ncomponents:\n  - ../components/network-policy\n  - ../components/network-policy-egress\n',
  );
  const docs = parseAllDocuments(execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8' })).map((d) => d.toJS() as Obj);
  const dep = one(docs, 'Deployment', SERVICE);
  const egress = docs.find((d) => d.kind === 'NetworkPolicy' && d.metadata.name === `${SERVICE}-egress`);
  assert.ok(egress, 'the egress NetworkPolicy');
  assert.equal(egress.metadata.namespace, NS);
  assert.deepEqual(egress.spec.podSelector.matchLabels, dep.spec.selector.matchLabels);
  assert.deepEqual(egress.spec.policyTypes, ['Egress']);
  // ports only, any peer: the API server's addresses differ between clusters
  assert.deepEqual(egress.spec.egress, [
    { ports: [{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }] },
    { ports: [{ protocol: 'TCP', port: 443 }, { protocol: 'TCP', port: 6443 }] },
  ]);
  // the ingress policy is still there, unchanged, and the shipped overlays have no egress policy
  const ingress = docs.find((d) => d.kind === 'NetworkPolicy' && d.metadata.name === SERVICE);
  assert.deepEqual(ingress.spec, one(await render('with-network-policy'), 'NetworkPolicy', SERVICE).spec);
  assert.deepEqual(ingress.spec.policyTypes, ['Ingress']);
  for (const overlay of OVERLAYS) assert.equal((await render(overlay)).some((d) => d.kind === 'NetworkPolicy' && d.spec.policyTypes.includes('Egress')), false, overlay);
});
