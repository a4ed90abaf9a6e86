// Start-up warm-up of the admission path, run before the listener opens (so before the pod is ready).
//
// V8 compiles the hot functions (injection, the diff, the log line) with its optimizing compiler only after
// thousands of calls, on a background thread: on a 2-CPU pod that compile (50-70 ms for injectTemplate)
// competes with the event loop for CPU and holds up its garbage collections, so the first real admissions
// after the threshold waited 20-60 ms (measured in BENCHMARKS.md). A compile also repeats when a new pod
// shape makes the optimized code bail out. Running varied synthetic admissions through the same
// answerAdmission() here moves that work before the first request and makes the feedback varied from the
// start. Nothing leaves the process: no log lines are written and the per-admission metrics are reset after.
import type { KubeObject } from './admission.ts';
import type { Config } from './config.ts';
import { createLogger } from './log.ts';
import { resetAdmissionMetrics } from './metrics.ts';
import { answerAdmission } from './server.ts';
import type { ValidationService } from './validation.ts';
import { injectTemplate } from './inject.ts';

export interface WarmUpOptions {
  config: Config;
  validation: ValidationService;
  /** Admissions to run; 0 skips the warm-up. */
  requests: number;
  /** Stop early after this much wall time (slow or throttled CPUs). */
  budgetMs?: number;
  /** Log level of the throw-away logger: the same as the real one, so the same code gets warm. */
  logLevel?: string;
}

export interface WarmUpResult {
  requests: number;
  ms: number;
  /**
   * Admissions that failed: the handler threw (answered as an internal error), or the warm-up itself could not run.
   * Set only when some did; serve logs a warning then, as real admissions under this config may fail the same way.
   */
  failed?: number;
  /** the first failure's message */
  firstError?: string;
}

const NAMESPACE = 'kagenti-webhook-warmup';

// Objects are written in the field order the API server's Go encoder uses (struct order: kind before
// apiVersion, name before namespace, volumes before containers...). Their shapes vary on purpose: V8 keeps
// optimized code for up to four object shapes per property access and bails out (then recompiles) on a
// fifth; with many shapes from the start, those accesses are generic before the first real request.
const CONTAINER_FIELDS = ['name', 'image', 'command', 'args', 'ports', 'env', 'resources', 'volumeMounts', 'readinessProbe', 'terminationMessagePath', 'terminationMessagePolicy', 'imagePullPolicy', 'securityContext'];

function container(name: string, v: number, i: number, env: number): KubeObject {
  const all: KubeObject = {
    name,
    image: `registry.example/warmup/${name}:1.${i}`,
    command: ['/bin/agent'],
    args: ['--port', String(8000 + i)],
    ports: [{ name: `http-${i}`, containerPort: 8000 + i, protocol: 'TCP' }],
    env: Array.from({ length: env }, (_, k) =>
      k % 7 === 6 ? { name: `WARMUP_${k}`, valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } } : { name: `WARMUP_${k}`, value: `value-${k}` },
    ),
    resources: v % 2 ? { limits: { cpu: '1', memory: '512Mi' }, requests: { cpu: '100m', memory: '128Mi' } } : {},
    volumeMounts: [{ name: 'kube-api-access-warm', readOnly: true, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' }],
    readinessProbe: { httpGet: { path: '/healthz', port: 8000 + i, scheme: 'HTTP' }, timeoutSeconds: 1, periodSeconds: 10, successThreshold: 1, failureThreshold: 3 },
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'File',
    imagePullPolicy: 'IfNotPresent',
    securityContext: { capabilities: { drop: ['ALL'] }, runAsNonRoot: true, allowPrivilegeEscalation: false },
  };
  // Variant v leaves out a different subset of the optional fields.
  const c: KubeObject = {};
  CONTAINER_FIELDS.forEach((k, j) => {
    if (j < 2 || ((v + i) >> (j % 4)) % 2 === 0 || k === 'volumeMounts') c[k] = all[k];
  });
  return c;
}

interface PodVariant {
  containers?: number;
  env?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  owned?: boolean;
  hostNetwork?: boolean;
  init?: boolean;
}

function pod(name: string, v: number, opts: PodVariant = {}): KubeObject {
  const n = opts.containers ?? 1;
  const metadata: KubeObject = opts.owned ? { generateName: `${name}-7d9f8b6c5-`, namespace: NAMESPACE } : { name, namespace: NAMESPACE };
  if (v % 3 === 0) metadata.uid = `00000000-0000-4000-8000-${String(v).padStart(12, '0')}`;
  if (v % 3 !== 2) metadata.creationTimestamp = '2026-01-01T00:00:00Z';
  const labels: Record<string, string> = { app: name };
  for (let k = 0; k < v % 5; k++) labels[`warmup.kagenti.io/l${(v + k) % 7}`] = String(k);
  labels['kagenti.io/type'] = 'agent';
  if (opts.owned) labels['pod-template-hash'] = '7d9f8b6c5';
  metadata.labels = { ...labels, ...opts.labels };
  const annotations: Record<string, string> = {};
  for (let k = 0; k < v % 4; k++) annotations[`warmup.kagenti.io/a${(v + k) % 5}`] = 'x';
  Object.assign(annotations, opts.annotations);
  if (Object.keys(annotations).length) metadata.annotations = annotations;
  if (opts.owned)
    metadata.ownerReferences = [
      { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${name}-7d9f8b6c5`, uid: '00000000-0000-4000-8000-000000000001', controller: true, blockOwnerDeletion: true },
    ];
  const spec: KubeObject = {
    volumes: [
      {
        name: 'kube-api-access-warm',
        projected: { sources: [{ serviceAccountToken: { expirationSeconds: 3607, path: 'token' } }], defaultMode: 420 },
      },
      ...Array.from({ length: n - 1 }, (_, i) => (i % 2 ? { name: `data-${i}`, emptyDir: {} } : { name: `data-${i}`, configMap: { name: `cfg-${i}`, defaultMode: 420 } })),
    ],
  };
  if (opts.init) spec.initContainers = [container(`${name}-init`, v + 1, 9, 1)];
  spec.containers = Array.from({ length: n }, (_, i) => container(i === 0 ? name : `${name}-${i}`, v, i, opts.env ?? 3));
  Object.assign(spec, { restartPolicy: 'Always', terminationGracePeriodSeconds: 30, dnsPolicy: 'ClusterFirst' });
  if (v % 4 !== 3) Object.assign(spec, { serviceAccountName: name, serviceAccount: name });
  if (opts.hostNetwork) spec.hostNetwork = true;
  spec.securityContext = v % 2 ? {} : { runAsNonRoot: true, fsGroup: 2000 };
  if (v % 3 === 1) spec.affinity = { podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname' } }] } };
  spec.schedulerName = 'default-scheduler';
  if (v % 2 === 0)
    spec.tolerations = [{ key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 }];
  Object.assign(spec, { priority: 0, enableServiceLinks: true, preemptionPolicy: 'PreemptLowerPriority' });
  return { kind: 'Pod', apiVersion: 'v1', metadata, spec, status: {} };
}

/**
 * An AdmissionReview of `object`. `dryRun`: the warm-up's /validate requests are dry runs, so that an agent they admit
 * is not remembered as a claim on its ServiceAccount (ValidationService notes what it admits until the cache holds it,
 * and checks it with the API server later): the synthetic pods are never stored, and must leave nothing behind.
 */
function review(uid: number, object: KubeObject, kind: KubeObject = { group: '', version: 'v1', kind: 'Pod' }, dryRun = false): Buffer {
  const resource = kind.kind === 'Pod' ? 'pods' : `${String(kind.kind).toLowerCase()}s`;
  return Buffer.from(
    JSON.stringify({
      kind: 'AdmissionReview',
      apiVersion: 'admission.k8s.io/v1',
      request: {
        uid: `00000000-0000-4000-8000-${String(uid).padStart(12, '0')}`,
        kind,
        resource: { group: kind.group, version: kind.version, resource },
        requestKind: kind,
        requestResource: { group: kind.group, version: kind.version, resource },
        name: object.metadata?.name ?? '',
        namespace: NAMESPACE,
        operation: 'CREATE',
        userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller', uid: '00000000-0000-4000-8000-00000000000b', groups: ['system:serviceaccounts', 'system:authenticated'] },
        object,
        oldObject: null,
        dryRun,
        options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1' },
      },
    }),
  );
}

/** The synthetic admissions: the pod shapes and outcomes the webhook sees (inject, re-inject, skip, deny). */
export function warmUpCorpus(config: Config): { webhook: 'mutate' | 'validate'; body: Buffer }[] {
  const variants: PodVariant[] = [
    {},
    { containers: 8, owned: true, init: true },
    { env: 300 },
    { annotations: { 'kagenti.io/authbridge-mode': 'lite' } },
    { annotations: { 'kagenti.io/authbridge-mode': 'envoy-sidecar' }, containers: 2 },
    { annotations: { 'kagenti.io/native-sidecars': 'true', 'kagenti.io/mtls-mode': 'strict' }, init: true },
    { labels: { 'kagenti.io/spiffe-helper-inject': 'false' } },
    { containers: 3, owned: true },
    { env: 40, init: true },
    { annotations: { 'kagenti.io/authbridge-mode': 'proxy-sidecar' }, containers: 4 },
    { labels: { 'kagenti.io/type': 'service' } },
    { hostNetwork: true },
  ];
  const pods = variants.map((o, v) => pod(`warm-${v}`, v, o));
  // Already-injected pods (what a re-admission or a controller's re-create sends).
  for (const p of pods.slice(0, 4)) {
    const r = injectTemplate(p, config, { namespace: NAMESPACE, ref: `Pod ${NAMESPACE}/${p.metadata.name}` });
    if (r.outcome === 'inject') pods.push(r.template);
  }
  const out: { webhook: 'mutate' | 'validate'; body: Buffer }[] = [];
  let uid = 0;
  for (const p of pods) out.push({ webhook: 'mutate', body: review(++uid, p) });
  for (const p of pods.slice(0, 4)) out.push({ webhook: 'validate', body: review(++uid, p, undefined, true) });
  const configMap = {
    kind: 'ConfigMap',
    apiVersion: 'v1',
    metadata: { name: config.tokenReview.configMapNames[0] ?? 'kagent-enterprise-config', namespace: NAMESPACE },
    data: { K8S_TOKEN_REVIEW: 'true' },
  };
  out.push({ webhook: 'validate', body: review(++uid, configMap, { group: '', version: 'v1', kind: 'ConfigMap' }, true) });
  return out;
}

/**
 * Runs `requests` synthetic admissions through answerAdmission() (or stops after `budgetMs`), then gives the
 * background compiler a moment to install what it compiled. Never throws: a warm-up problem only means a
 * colder start, but the admissions that failed (and the corpus not built) are counted, with the first message, for
 * serve to log.
 */
/** An answer's denial message (its status message), else the start of its text. */
function answerMessage(text: string): string {
  try {
    const message: unknown = JSON.parse(text)?.response?.status?.message;
    if (typeof message === 'string') return message.slice(0, 300);
  } catch {
    // not JSON: the text itself
  }
  return text.slice(0, 300);
}

export async function warmUp(opts: WarmUpOptions): Promise<WarmUpResult> {
  const started = performance.now();
  if (opts.requests <= 0) return { requests: 0, ms: 0 };
  const budget = opts.budgetMs ?? 3000;
  let done = 0;
  let failed = 0;
  let firstError: string | undefined;
  const failure = (message: string) => {
    failed++;
    firstError ??= message;
  };
  try {
    const items = warmUpCorpus(opts.config);
    // A logger like the real one whose lines go nowhere, but for the handler's failures: answerAdmission answers
    // an exception with an internal-error denial and logs its message (at error), which is all there is to say why.
    let logged: string | undefined;
    const log = createLogger(opts.logLevel, {
      write: (line: string) => {
        // the handler's failure line, or (for /validate, which catches its own errors) the admission line of an
        // internal-error denial, whose detail carries the error (not at log levels above info)
        if (line.includes('"admission handler failed"') || line.includes('[internal-error]')) {
          try {
            const message: unknown = JSON.parse(line).err?.message;
            if (typeof message === 'string' && message) logged ||= message;
          } catch {
            // not a line to read
          }
        }
        return true;
      },
    });
    const deps = { config: opts.config, log, validation: opts.validation };
    const check = (answer: { status: number; text: string }) => {
      if (answer.status === 200 && !answer.text.includes('[internal-error]')) return;
      failure(logged || `${answer.status} ${answerMessage(answer.text)}`);
    };
    while (done < opts.requests && performance.now() - started < budget) {
      // Yield now and then, so timers and the background compiler's results are not starved.
      for (let i = 0; i < 250 && done < opts.requests; i++, done++) {
        const item = items[done % items.length]!;
        logged = undefined;
        try {
          const answer = answerAdmission(item.webhook, item.body, deps);
          if (answer instanceof Promise) answer.then(check, (err: unknown) => failure(String((err as Error)?.message ?? err)));
          else check(answer);
        } catch (err) {
          failure(String((err as Error)?.message ?? err));
        }
      }
      await new Promise((r) => setImmediate(r));
    }
    await new Promise((r) => setTimeout(r, 100));
  } catch (err) {
    // a colder start: the corpus could not be built (the injection threw on this config)
    failure(`the warm-up could not run: ${String((err as Error)?.message ?? err)}`);
  } finally {
    resetAdmissionMetrics();
  }
  return { requests: done, ms: Math.round(performance.now() - started), ...(failed ? { failed, firstError } : {}) };
}
