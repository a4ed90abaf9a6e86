// Prometheus metrics (prefix kagenti_webhook_), one registry for the process.
import { Counter, Histogram, Registry, Gauge, collectDefaultMetrics } from 'prom-client';
import { CONFIRM_AFTER_MS, CONFIRM_BUDGET_MS, CONFIRM_LIST_MS, MAX_HELD_BODY_BYTES, REQUEST_MS } from './limits.ts';

export const registry = new Registry();
export const PREFIX = 'kagenti_webhook_';

export const admissionRequests = new Counter({
  name: `${PREFIX}admission_requests_total`,
  help: 'Admission requests answered, by webhook (mutate|validate), operation (CREATE|UPDATE|DELETE|CONNECT, unknown for a body that is not an AdmissionReview) and result (allowed|patched|warned|denied; error for an object the webhook could not evaluate, denied with a 500; bad-request for a 400 or a 415 (a compressed body), too-large for a 413).',
  labelNames: ['webhook', 'operation', 'result'] as const,
  registers: [registry],
});

export const admissionDuration = new Histogram({
  name: `${PREFIX}admission_duration_seconds`,
  help: 'Time to answer an admission request, from body received to response written, by webhook (mutate|validate) and object (pod|workload|configmap|helm-release|other; helm-release: a Helm release record, checked in a child process within 3 s).',
  labelNames: ['webhook', 'object'] as const,
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  registers: [registry],
});

export const injections = new Counter({
  name: `${PREFIX}injections_total`,
  help: 'Pods injected, by AuthBridge mode.',
  labelNames: ['mode'] as const,
  registers: [registry],
});

export const injectionSkipped = new Counter({
  name: `${PREFIX}injection_skipped_total`,
  help: 'Admissions that injected nothing, by reason.',
  labelNames: ['reason'] as const,
  registers: [registry],
});

export const ruleViolations = new Counter({
  name: `${PREFIX}rule_violations_total`,
  help: 'Rule violations found at admission, by rule and action (denied|warned): the validation rules of /validate, the injection denials (invalid-annotation, reserved-name, port-conflict, host-network, unsupported-os, malformed-object, pod-resources, istio-sidecar) at /mutate and on workload templates at /validate (pod-resources and istio-sidecar as warned under policies.<rule>: warn, the default of istio-sidecar), and the injection warnings (warned) on workload templates at /validate and on each pod /mutate injects with them.',
  labelNames: ['rule', 'action'] as const,
  registers: [registry],
});

export const connectionsClosed = new Counter({
  name: `${PREFIX}connections_closed_total`,
  help: `Admission-port connections the server closed: quiet (no request header in time), evicted (the longest-idle, to stay under --max-connections), refused (at the cap with every connection busy), request-timeout (a request still in progress ${REQUEST_MS / 1000} s after its header), body-budget (sending a request body the longest while bodies held passed ${MAX_HELD_BODY_BYTES / 1024 / 1024} MiB).`,
  labelNames: ['reason'] as const,
  registers: [registry],
});

export const httpClientErrors = new Counter({
  name: `${PREFIX}http_client_errors_total`,
  help: 'Requests on the admission port answered before any admission handler saw them, by status: 404 (no such route or method: a webhook configuration whose path is not /mutate or /validate), 400 (a request Node\'s HTTP parser refuses: a bad Content-Length, Content-Length with Transfer-Encoding, a broken chunk), 431 (headers too large), 408 (Node\'s own request timeout; the connection guard\'s is connections_closed_total{reason="request-timeout"}).',
  labelNames: ['status'] as const,
  registers: [registry],
});

export const tlsCertificateExpiry = new Gauge({
  name: `${PREFIX}tls_certificate_expiry_timestamp_seconds`,
  help: 'When the serving certificate in use expires (its notAfter), in seconds since the Unix epoch; set when it is loaded at start-up and on each reload.',
  registers: [registry],
});

export const tlsReloads = new Counter({
  name: `${PREFIX}tls_reloads_total`,
  help: 'Changes of the serving certificate files, by result: ok (a valid pair, installed for new connections) or rejected (not a valid pair, or expired or not yet valid while the served one is valid; counted once per distinct content; the previous certificate is still served).',
  labelNames: ['result'] as const,
  registers: [registry],
});
// both series from the start, so a rate or an increase over them is defined before the first reload
tlsReloads.inc({ result: 'ok' }, 0);
tlsReloads.inc({ result: 'rejected' }, 0);

export const tlsHandshakeErrors = new Counter({
  name: `${PREFIX}tls_handshake_errors_total`,
  help: 'TLS handshakes on the admission port that failed: a client that does not trust the serving certificate (a stale caBundle, an expired certificate), does not speak TLS, or gave up.',
  registers: [registry],
});

export const logLinesDropped = new Counter({
  name: `${PREFIX}log_lines_dropped_total`,
  help: 'Log lines dropped because stdout did not drain (32 MiB of lines pending): a stuck or too slow log pipe.',
  registers: [registry],
});

export const unhandledRejections = new Counter({
  name: `${PREFIX}unhandled_rejections_total`,
  help: 'Promise rejections nothing handled (a background task that failed: cluster informers, issuer re-checks, certificate reloads). Each is logged; the process keeps serving.',
  registers: [registry],
});

let openConnectionsSource: () => number = () => 0;
/** The open-connections gauge reads this function at each scrape. */
export function openConnectionsFrom(source: () => number): void {
  openConnectionsSource = source;
}
export const openConnections = new Gauge({
  name: `${PREFIX}open_connections`,
  help: 'Connections open on the admission port.',
  registers: [registry],
  collect() {
    this.set(openConnectionsSource());
  },
});

let processMetrics = false;
/**
 * prom-client's process and runtime metrics on the registry, under their usual names (process_cpu_seconds_total,
 * process_resident_memory_bytes, nodejs_eventloop_lag_*, nodejs_heap_*, nodejs_gc_duration_seconds, ...). Called by
 * the server once (not at import, so the lint and inject commands do not run the event-loop monitor). Nothing
 * per request: they are read at each scrape, except the GC histogram (one observation per collection).
 */
export function collectProcessMetrics(): void {
  if (processMetrics) return;
  processMetrics = true;
  collectDefaultMetrics({ register: registry });
}

/**
 * The series the README's alerts watch, at 0 from the start: a counter series that first appears at 1 shows no
 * increase, so the first internal error or wrong-path call of each replica would never fire its alert.
 */
function initAlertSeries(): void {
  for (const webhook of ['mutate', 'validate'])
    for (const operation of ['CREATE', 'UPDATE', 'DELETE', 'CONNECT']) admissionRequests.inc({ webhook, operation, result: 'error' }, 0);
  httpClientErrors.inc({ status: '404' }, 0);
}
initAlertSeries();

/** Forgets what the per-admission metrics counted (after the start-up warm-up, before the first real request). */
export function resetAdmissionMetrics(): void {
  for (const m of [admissionRequests, admissionDuration, injections, injectionSkipped, ruleViolations]) m.reset();
  initAlertSeries();
}

export const buildInfo = new Gauge({
  name: `${PREFIX}build_info`,
  help: 'Always 1; its version label is the running version of kagenti-webhook, its revision label the build (the git commit the image was made from, unknown outside an image built by make image): which replicas run which build, during a rollout.',
  labelNames: ['version', 'revision'] as const,
  registers: [registry],
});

export const clusterStateEnabled = new Gauge({
  name: `${PREFIX}cluster_state_enabled`,
  help: 'Whether the webhook runs with cluster state (1) or without (0: --cluster none, or no kubeconfig or in-cluster ServiceAccount token found): without it, unique-service-account and token-review-required are not checked (agents are allowed with a warning), and cluster_cache_age_seconds stays 0.',
  registers: [registry],
});

// The cluster state's metrics are here, not in cluster.ts (loaded only with cluster state), so that they exist at 0
// under --cluster none too, as cluster_state_enabled's help and the README's alerts say.
let clusterCacheAgeSource: () => number = () => 0;
/** cluster_cache_age_seconds reads this function at each scrape (cluster.ts: the running ClusterState's age). */
export function clusterCacheAgeFrom(source: () => number): void {
  clusterCacheAgeSource = source;
}
export const clusterCacheAge = new Gauge({
  name: `${PREFIX}cluster_cache_age_seconds`,
  help: 'Seconds since the cluster cache was last known current (0 while every watch is connected, and without cluster state; before the first sync, seconds since start).',
  registers: [registry],
  collect() {
    this.set(clusterCacheAgeSource());
  },
});

export const admittedClaimsChecked = new Counter({
  name: `${PREFIX}admitted_claims_checked_total`,
  help:
    'Agents /validate admitted moments ago, not in the cluster cache yet, that a unique-service-account denial rested on alone, checked with the API server before denying, by result: ' +
    `confirmed (the API server holds it: the denial stands), dropped (not stored ${CONFIRM_AFTER_MS / 1000} s after its admission: forgotten, and the request is decided without it), ` +
    `unanswered (the list failed, took over ${CONFIRM_LIST_MS / 1000} s, or did not end within the check's ${CONFIRM_BUDGET_MS / 1000} s, or the request was not checked because the requests waiting for checks held their budget of body bytes: the claim stands, and so does the denial).`,
  labelNames: ['result'] as const,
  registers: [registry],
});
for (const result of ['confirmed', 'dropped', 'unanswered'] as const) admittedClaimsChecked.inc({ result }, 0);

export { Counter, Gauge, Histogram };
