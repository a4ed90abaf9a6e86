// Read-only cluster state through @kubernetes/client-node informers (ListWatch): agent pods, workloads,
// namespaces, CSIDrivers and the token-review ConfigMaps. Objects are slimmed to what the index needs
// before they enter the cache. client-node's informers stop on an error: we restart them with backoff,
// and keep serving from the cache meanwhile. Lists and watches go over node:http(s) with the KubeConfig's
// credentials (kube-http.ts); ListWatch drives them.
import { existsSync } from 'node:fs';
import { delimiter } from 'node:path';
import { UsageError } from './usage.ts';
import { KubeConfig, ListWatch } from './kube-client.ts';
import { KubeWatch, ResponseTooLargeError, kubeGetJson } from './kube-http.ts';
import type { KubernetesObject } from './kube-client.ts';
import type { Logger } from 'pino';
import type { KubeObject } from './admission.ts';
import { shown } from './admission.ts';
import type { Config } from './config.ts';
import { isAgentType } from './config.ts';
import type { OwnerLookup, OwnerRef } from './identity.ts';
import {
  AGENT_LABEL,
  DEPLOYMENT_CONFIG_LABEL,
  KNATIVE_CONFIGURATION_LABEL,
  KNATIVE_REVISION_LABEL,
  JOBSET_NAME_LABEL,
  LWS_NAME_LABEL,
  RAY_SERVE_LABEL,
  agentIdentity,
  controllerOf,
  copySelector,
  effectiveServiceAccount,
  orphanWorkload,
} from './identity.ts';
import type { AgentRef } from './rules.ts';
import { ADMITTED_TTL_MS, TOKEN_REVIEW_KEY, envConfigMapRefs, envFromSecret, sharesWith, tokenReviewEnv } from './rules.ts';
import { getPodTemplate, podTemplatePath } from './workloads.ts';
import { admittedClaimsChecked, clusterCacheAgeFrom } from './metrics.ts';
import { CONFIRM_AFTER_MS, CONFIRM_BUDGET_MS, CONFIRM_LIST_MS } from './limits.ts';

export { CONFIRM_AFTER_MS, CONFIRM_BUDGET_MS, CONFIRM_LIST_MS };
import { isObject, oneLine } from './json.ts';
import { errField, type ErrField } from './log-fields.ts';

export { KubeHttpError, ResponseTooLargeError, kubeGetJson } from './kube-http.ts';

/**
 * Resolves the connection for `serve --cluster auto` as client-node's loadFromDefault() does (KUBECONFIG,
 * then ~/.kube/config, then the in-cluster service account). Returns null when none exists (or for `none`).
 */
export function loadKubeConfig(mode: 'auto' | 'none', log?: Logger): KubeConfig | null {
  if (mode === 'none') return null;
  const kc = new KubeConfig();
  // A KUBECONFIG someone set and that cannot be used is a start-up problem, not a reason to run without cluster
  // state (unique-service-account would only warn, and /readyz would say all is well).
  const explicit = process.env.KUBECONFIG;
  const broken = (why: string) =>
    new UsageError(`KUBECONFIG=${explicit}: ${why}. Fix it, unset KUBECONFIG (in a cluster the pod's service account is used), or pass --cluster none`);
  try {
    if (explicit) {
      // As kubectl reads a list: files that do not exist are skipped; the rest are merged in order.
      const files = explicit.split(delimiter).filter(Boolean);
      const present = files.filter((f) => existsSync(f));
      if (!present.length) throw broken(files.length > 1 ? 'none of its files exists' : 'the file does not exist');
      // kubectl's merge: the first file to set the current context, or to name a cluster, user or context, wins
      // (client-node's mergeConfig lets the last current context win and throws on a name seen twice)
      const configs = present.map((f) => {
        const one = new KubeConfig();
        one.loadFromFile(f);
        return one;
      });
      const first = <T extends { name: string }>(lists: T[][]): T[] => {
        const seen = new Set<string>();
        return lists.flat().filter((x) => !seen.has(x.name) && (seen.add(x.name), true));
      };
      kc.loadFromOptions({
        clusters: first(configs.map((c) => c.clusters)),
        users: first(configs.map((c) => c.users)),
        contexts: first(configs.map((c) => c.contexts)),
        currentContext: configs.find((c) => c.currentContext)?.currentContext ?? '',
      });
    } else kc.loadFromDefault();
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const why = (err as Error).message.split('\n')[0]!;
    if (explicit) throw broken(`cannot be read (${why})`);
    log?.error({ err: errField(err) }, 'cannot load kubeconfig; running without cluster state');
    return null;
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster && explicit)
    throw broken(kc.getCurrentContext() ? `its current-context ${JSON.stringify(kc.getCurrentContext())} names no context with a cluster` : 'it sets no current-context');
  // loadFromDefault's last resort when nothing exists: an unauthenticated http://localhost:8080
  if (!cluster || (cluster.name === 'cluster' && cluster.server === 'http://localhost:8080' && !process.env.KUBECONFIG))
    return null;
  return kc;
}

// ---------------------------------------------------------------------------------------------------
// Slimming: keep only what the index, the audit and the injection lookups need.

// Interned strings: namespaces, ServiceAccounts and label values repeat across thousands of pods.
const interned = new Map<string, string>();
function intern(s: string): string {
  const hit = interned.get(s);
  if (hit !== undefined) return hit;
  if (interned.size < 100_000) interned.set(s, s);
  return s;
}

function slimMeta(obj: KubeObject, labelKeys?: readonly string[], orphan = false): KubeObject {
  const md = isObject(obj.metadata) ? obj.metadata : {};
  const out: KubeObject = { name: String(md.name ?? ''), resourceVersion: md.resourceVersion };
  if (typeof md.namespace === 'string') out.namespace = intern(md.namespace);
  // a claim being deleted is still a claim; the denial says when it goes away
  if (typeof md.deletionTimestamp === 'string') out.deletionTimestamp = md.deletionTimestamp;
  if (orphan && isObject(md.labels)) {
    const all = orphanLabels(md.labels);
    if (all) {
      out.labels = all;
      labelKeys = undefined;
    } else labelKeys = labelKeys?.filter((k) => !NAME_TIE_LABELS.has(k));
  }
  if (labelKeys && isObject(md.labels)) {
    const labels: Record<string, string> = {};
    let any = false;
    for (const k of labelKeys)
      if (typeof md.labels[k] === 'string') {
        labels[k] = intern(md.labels[k]);
        any = true;
      }
    if (any) out.labels = labels;
  }
  const owner = controllerOf(obj);
  if (owner) {
    // its apiVersion says which group's kind it is (a flagger.app Canary, a LeaderWorkerSet): identity.ts's controllerWorkload
    const ref: KubeObject = { kind: owner.kind, name: owner.name };
    if (owner.controller) ref.controller = true;
    if (owner.apiVersion) ref.apiVersion = intern(owner.apiVersion);
    out.ownerReferences = [ref];
  }
  return out;
}

/** Labels identity.ts reads: the agent labels, and what ties a pod or ReplicaSet to its workload by name. */
const POD_LABELS = [
  'kagenti.io/type',
  AGENT_LABEL,
  'pod-template-hash',
  'rollouts-pod-template-hash',
  'statefulset.kubernetes.io/pod-name',
  // identity.ts's versionedWorkload: a Knative Revision's pods, an OpenShift DeploymentConfig's
  KNATIVE_CONFIGURATION_LABEL,
  KNATIVE_REVISION_LABEL,
  DEPLOYMENT_CONFIG_LABEL,
  // identity.ts's controllerWorkload: a LeaderWorkerSet's, a RayService's and a JobSet's pods
  LWS_NAME_LABEL,
  RAY_SERVE_LABEL,
  JOBSET_NAME_LABEL,
] as const;
const REPLICASET_LABELS = ['pod-template-hash', 'rollouts-pod-template-hash'] as const;
// and controllerWorkload's: a LeaderWorkerSet's StatefulSets, an Argo Rollouts Experiment's ReplicaSets
const TEMPLATE_LABELS = ['kagenti.io/type', AGENT_LABEL, KNATIVE_CONFIGURATION_LABEL, KNATIVE_REVISION_LABEL, LWS_NAME_LABEL, 'rollouts-pod-template-hash'] as const;
const NAME_TIE_LABELS = new Set<string>(['pod-template-hash', 'rollouts-pod-template-hash', 'statefulset.kubernetes.io/pod-name']);

/** Label bytes (keys and values) an orphan keeps in the cache; real label sets are far below it. */
const ORPHAN_LABEL_BYTES = 8192;

/**
 * All the labels of an orphan (a ReplicaSet or pod without a workload owner that its name ties to a Deployment
 * or StatefulSet: identity.ts's orphanWorkload), interned: whether it counts as that workload depends on whether
 * the workload's selector selects them, and the selector may name any label. Owned objects, the common case, keep
 * only the few labels above. Null when they exceed ORPHAN_LABEL_BYTES: the object then keeps the few labels
 * without those that tie it to a workload by name, so it counts as itself, never as a workload it cannot be
 * checked against (a user's orphan with such labels conflicts with its re-created workload until adopted).
 */
function orphanLabels(labels: Record<string, unknown>): Record<string, string> | null {
  let bytes = 0;
  for (const [k, v] of Object.entries(labels)) if (typeof v === 'string') bytes += k.length + v.length;
  if (bytes > ORPHAN_LABEL_BYTES) return null;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels)) if (typeof v === 'string') out[intern(k)] = intern(v);
  return out;
}

function slimPod(obj: KubeObject): KubeObject {
  const spec = isObject(obj.spec) ? obj.spec : undefined;
  const phase = isObject(obj.status) && typeof obj.status.phase === 'string' ? obj.status.phase : undefined;
  return {
    kind: 'Pod',
    metadata: slimMeta(obj, POD_LABELS, orphanWorkload('Pod', obj) !== null),
    spec: { serviceAccountName: intern(effectiveServiceAccount(spec)) },
    status: phase ? { phase: intern(phase) } : {},
  };
}

function slimWorkload(kind: string, controllerDeployment?: string): (obj: KubeObject) => KubeObject {
  return (obj) => {
    const out: KubeObject = {
      kind,
      metadata: slimMeta(obj, kind === 'ReplicaSet' ? REPLICASET_LABELS : undefined, kind === 'ReplicaSet' && orphanWorkload(kind, obj) !== null),
    };
    // history that runs nothing does not claim: a Deployment's old ReplicaSets (0 replicas), finished Jobs
    const spec = isObject(obj.spec) ? obj.spec : {};
    const status = isObject(obj.status) ? obj.status : {};
    if (kind === 'ReplicaSet' && spec.replicas === 0) out.inactive = true;
    // a Deployment scaled to 0 still claims (it is scaled up again as it was), but runs nothing now (the audit's
    // kagent-controller check reads this)
    if (kind === 'Deployment' && spec.replicas === 0) out.scaledToZero = true;
    // kagent's controller: the ConfigMaps it reads its environment from (the audit's kagent-controller check)
    // and a K8S_TOKEN_REVIEW its env sets itself, which overrides them
    if (kind === 'Deployment' && controllerDeployment !== undefined && out.metadata.name === controllerDeployment) {
      out.configMapRefs = envConfigMapRefs({ ...obj, kind }).map((r) => ({ name: intern(r.name), path: intern(r.path), ...(r.delivers ? { delivers: true } : {}) }));
      const literal = tokenReviewEnv({ ...obj, kind });
      if (literal) out.tokenReviewEnv = { path: intern(literal.path), ...(literal.value !== undefined ? { value: literal.value.slice(0, 64) } : {}) };
      if (envFromSecret({ ...obj, kind })) out.envFromSecret = true;
    }
    if (
      kind === 'Job' &&
      (typeof status.completionTime === 'string' ||
        (Array.isArray(status.conditions) &&
          status.conditions.some((c: unknown) => isObject(c) && (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True')))
    )
      out.inactive = true;
    const tpl = getPodTemplate({ ...obj, kind });
    if (tpl && typeof tpl.labels['kagenti.io/type'] === 'string') {
      // only templates that may be agents keep their labels and ServiceAccount
      const labels: Record<string, string> = {};
      for (const k of TEMPLATE_LABELS) if (typeof tpl.labels[k] === 'string') labels[k] = intern(tpl.labels[k] as string);
      let node: KubeObject = out;
      const path = podTemplatePath(kind)!;
      for (let i = 0; i < path.length - 1; i++) node = node[path[i]] = {};
      node[path[path.length - 1]] = {
        metadata: { labels },
        spec: { serviceAccountName: intern(effectiveServiceAccount(tpl.spec)) },
      };
    }
    // which orphans (ReplicaSets, pods) their controller would adopt: identity.ts's countsAsWorkload
    if (kind === 'Deployment' || kind === 'StatefulSet') (out.spec ??= {}).selector = copySelector(spec.selector, intern);
    return out;
  };
}

function slimNamespace(obj: KubeObject): KubeObject {
  const md = isObject(obj.metadata) ? obj.metadata : {};
  const labels: Record<string, string> = {};
  if (isObject(md.labels)) for (const [k, v] of Object.entries(md.labels)) if (typeof v === 'string') labels[k] = v;
  return { kind: 'Namespace', metadata: { name: String(md.name ?? ''), resourceVersion: md.resourceVersion, labels } };
}

function slimCsiDriver(obj: KubeObject): KubeObject {
  const md = isObject(obj.metadata) ? obj.metadata : {};
  return { kind: 'CSIDriver', metadata: { name: String(md.name ?? ''), resourceVersion: md.resourceVersion } };
}

/** Keys like K8S_TOKEN_REVIEW but for case or spaces a slimmed ConfigMap keeps at most. */
const MAX_LOOKALIKE_KEYS = 3;

function slimConfigMap(obj: KubeObject): KubeObject {
  const out: KubeObject = { kind: 'ConfigMap', metadata: slimMeta(obj) };
  if (isObject(obj.data)) {
    out.data = {};
    if (Object.hasOwn(obj.data, TOKEN_REVIEW_KEY)) out.data[TOKEN_REVIEW_KEY] = obj.data[TOKEN_REVIEW_KEY];
    // keys that differ from it only in case or surrounding spaces, for the message's hint (a few; their values are
    // not read)
    let lookalikes = 0;
    for (const k of Object.keys(obj.data)) {
      if (k === TOKEN_REVIEW_KEY || k.length > TOKEN_REVIEW_KEY.length + 8 || k.trim().toUpperCase() !== TOKEN_REVIEW_KEY) continue;
      out.data[intern(k)] = '';
      if (++lookalikes === MAX_LOOKALIKE_KEYS) break;
    }
  }
  if (isObject(obj.binaryData) && Object.hasOwn(obj.binaryData, TOKEN_REVIEW_KEY))
    out.binaryData = { [TOKEN_REVIEW_KEY]: '' };
  // the audit's fix for an immutable one is to recreate it
  if (obj.immutable === true) out.immutable = true;
  return out;
}

// ---------------------------------------------------------------------------------------------------
// One resource: a client-node ListWatch over slimmed objects, restarted with backoff after errors.

/** The most one list page may hold: it is parsed whole (the JSON text and its objects) before it is slimmed. */
export const PAGE_BYTES = 16 * 1024 * 1024;

/**
 * List pages the informers of one ClusterState fetch and slim at once (each held whole, as its text and its parsed
 * objects, until it is slimmed): the others wait their turn, so a start-up or a relist of every informer at once
 * holds two pages of workloads, not ten. Watches are not limited.
 */
export const LIST_PAGES_AT_ONCE = 2;

/**
 * At most `n` runs at once; the others wait, first come first served. With `until` (a Date.now() time), a run that
 * has not got a slot by then is not started: its promise rejects with `full()`'s error.
 */
class Slots {
  private free: number;
  private readonly waiting: (() => void)[] = [];
  readonly size: number;
  constructor(n: number) {
    this.free = this.size = n;
  }
  async run<T>(fn: () => Promise<T>, until?: number, full?: () => Error): Promise<T> {
    if (this.free > 0) this.free--;
    else
      await new Promise<void>((resolve, reject) => {
        let timer: NodeJS.Timeout | undefined;
        const grant = () => {
          clearTimeout(timer);
          resolve();
        };
        if (until !== undefined)
          timer = setTimeout(() => {
            const i = this.waiting.indexOf(grant);
            if (i >= 0) this.waiting.splice(i, 1);
            reject(full?.() ?? new Error('no slot free in time'));
          }, Math.max(0, until - Date.now()));
        this.waiting.push(grant);
      });
    try {
      return await fn();
    } finally {
      // the slot passes to the next run waiting, if any
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    }
  }
}

export interface ResourceSpec {
  /** informer id for logs and readiness, e.g. `pods`, `deployments.apps`, `configmaps/kagent-enterprise-config` */
  id: string;
  /** resource as RBAC names it, e.g. `pods`, `deployments.apps` */
  rbac: string;
  kind: string;
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** the one object listed (fieldSelector metadata.name): RBAC grants it by resourceNames */
  resourceName?: string;
  slim: (obj: KubeObject) => KubeObject;
}

export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
  /**
   * How long a watch must stay connected, without an error, before the backoff starts again from baseMs
   * (default RESET_AFTER_MS).
   */
  resetAfterMs?: number;
}

/**
 * A watch connected this long without an error has outlived what breaks at once (credentials or RBAC refused after
 * the headers, a proxy or load balancer resetting new streams, an API server that accepts and falls over), so the
 * next failure backs off from the start. 30 s, the default watch timeout of client-node's Watch (and KubeWatch's):
 * anything that breaks sooner, over and over, backs off to maxMs. (The backoff's current delay would not do: at 1 s, a watch that breaks after
 * 2 s every time would be retried every 3 s forever.)
 */
export const RESET_AFTER_MS = 30_000;

/**
 * Each watch asks the API server to end it after 60-90 s (`timeoutSeconds`, jittered so replicas and informers do
 * not reconnect in step) and for BOOKMARK events (`allowWatchBookmarks`), which the API server sends at least
 * before that end: the next watch resumes from the bookmark's resourceVersion. Without them a watch that sees few
 * events (agent pods by label, one ConfigMap by name) resumes from an ever older resourceVersion, falls out of the
 * API server's watch window (410) and lists again, from etcd, every pod of the cluster it then filters by label.
 */
const WATCH_SERVER_TIMEOUT_S = [60, 90] as const;
/**
 * A watch's timeout for its response headers and then for a connected watch without a byte (KubeWatch's
 * requestTimeoutMs): above the server's own end (client-node's Watch, used before, cut a quiet watch at its 30 s
 * default, before its bookmark), and still within the README's stale-cache alert (300 s) for a connection that died
 * without a close.
 */
const WATCH_CLIENT_TIMEOUT_MS = 120_000;
/** A watch connected this long before a clean end was ended by the API server's timeout, not refused at once. */
const CLEAN_END_AFTER_MS = 10_000;

type Callback = (obj: KubeObject) => void;

class ResilientInformer {
  readonly spec: ResourceSpec;
  private readonly kc: KubeConfig;
  private readonly log: Logger;
  private readonly backoff: BackoffOptions;
  private readonly pageSize: number;
  /** objects asked for per list page: pageSize, halved while pages come back over pageBytes */
  private pageLimit: number;
  private readonly pageBytes: number;
  /** shared by the ClusterState's informers: LIST_PAGES_AT_ONCE */
  private readonly pageSlots: Slots;
  readonly lw: ListWatch<KubernetesObject>;
  synced = false;
  /** set while the informer is down (after an error, until a restart gets through) */
  brokenSince: number | undefined;
  /**
   * When the cache was last known current, while no watch is connected: from a watch's end (an error, a clean
   * close, a timeout: whatever the reason) or the list that follows it, until the next watch's response headers.
   * Undefined while a watch is connected.
   */
  staleSince: number | undefined = Date.now();
  lastError: string | undefined;
  lastSyncAt: number | undefined;
  /** called once, after the first list (ListWatch applies it in the same synchronous run) */
  onFirstSync: (() => void) | undefined;
  failures = 0;
  /** since when the watches have been connected without an error (the first response headers after the last error) */
  private healthySince: number | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** aborted by stop(): ends a watch still waiting for its response headers too (ListWatch.stop() cannot reach it) */
  private readonly stopping = new AbortController();
  private attempt = 0;

  constructor(
    kc: KubeConfig,
    spec: ResourceSpec,
    log: Logger,
    backoff: BackoffOptions,
    pageSize: number,
    pageBytes = PAGE_BYTES,
    watchTimeoutMs?: number,
    pageSlots = new Slots(LIST_PAGES_AT_ONCE),
  ) {
    this.kc = kc;
    this.spec = spec;
    this.log = log;
    this.backoff = backoff;
    this.pageSize = pageSize;
    this.pageLimit = pageSize;
    this.pageBytes = pageBytes;
    this.pageSlots = pageSlots;
    const real = new KubeWatch(kc);
    // the time a watch request gets for its response headers, then as much without a byte once connected (tests set less)
    real.requestTimeoutMs = watchTimeoutMs ?? WATCH_CLIENT_TIMEOUT_MS;
    const answerWithinS = real.requestTimeoutMs / 1000;
    const slimmingWatch = {
      // ListWatch calls this from its doneHandler, which nobody awaits when a watch ends (a clean close, a timeout):
      // so it never rejects, and nothing that goes wrong in it or in a watch line escapes as an unhandled rejection
      // (which ends the process). Every failure ends the watch through `done` with an error instead: onError logs
      // it and restarts with backoff, and the cache keeps serving.
      watch: async (
        path: string,
        q: Record<string, string | number | boolean | undefined>,
        cb: (phase: string, obj: any, raw: any) => unknown,
        done: (err: unknown) => unknown,
      ) => {
        let ended = false;
        let connected = false;
        let connectedAt = 0;
        const end = (err: unknown) => {
          if (ended) return;
          ended = true;
          this.staleSince ??= Date.now();
          // A clean end of a watch that stayed connected is the API server's timeoutSeconds: reconnect at once.
          // ListWatch doubles its reconnect delay (up to 30 s) at each clean end that brought no event (an
          // event or a BOOKMARK resets it), so without bookmarks a quiet watch would lag by up to 30 s.
          if (err == null && connected && Date.now() - connectedAt >= CLEAN_END_AFTER_MS) (this.lw as unknown as { reconnectDelayMs: number }).reconnectDelayMs = 0;
          // ListWatch takes every timeout for a quiet reconnect, and so it is once connected (a quiet resource).
          // A request that got no response headers at all is an API server or load balancer that accepts and never
          // answers: a failure, logged and backed off, not a silent reconnect at every timeout.
          if (!connected && (err as { name?: unknown } | null)?.name === 'TimeoutError')
            err = new Error(`the watch request got no response within ${answerWithinS} s`);
          try {
            // ListWatch.doneHandler: async; it relists and calls watch() again on a clean end
            const p = done(err);
            if (p instanceof Promise) p.catch((e: unknown) => this.onError(e, 'watch'));
          } catch (e) {
            this.onError(e, 'watch');
          }
        };
        const line = (phase: string, obj: any, raw: any) => {
          if (ended) return;
          try {
            if (!isObject(obj)) {
              // An ERROR without its Status says nothing of what went wrong: the watch ends as failed (backoff,
              // then resume from the last resourceVersion; a 410 then relists). Any other line without an object
              // (a BOOKMARK, an ADDED with null) has nothing to apply: dropped. ListWatch would throw on both.
              if (phase === 'ERROR') end(new Error('the API server sent an ERROR watch event without a Status object'));
              return;
            }
            if (phase === 'ERROR' && obj.code !== 410) {
              // ListWatch acts on a 410 Status only (it relists) and ignores any other: the stream then ends
              // cleanly and the watch resumes from the same resourceVersion, over and over, with nothing logged and
              // the cache age back to 0 at each reconnect. So any other Status ends the watch as failed (logged, in
              // /readyz's errors, backoff). One saying the API server is behind the watch's resourceVersion (one API
              // server whose cache lags the others, or an etcd restored from a backup, where it never catches up)
              // also forgets that resourceVersion, so the restart after the backoff lists again.
              const msg = oneLine(`${typeof obj.code === 'number' ? `${obj.code} ` : ''}${typeof obj.reason === 'string' ? `${obj.reason}: ` : ''}${typeof obj.message === 'string' ? obj.message : 'no message'}`).slice(0, 500);
              const causes = isObject(obj.details) && Array.isArray(obj.details.causes) ? obj.details.causes : [];
              if (causes.some((c: unknown) => isObject(c) && c.reason === 'ResourceVersionTooLarge') || /too large resource version/i.test(msg)) {
                // (ListWatch's field: the resourceVersion it resumes from; empty, its restart lists first)
                (this.lw as unknown as { resourceVersion: string }).resourceVersion = '';
                end(new Error(`the API server is behind the watch's resourceVersion (an API server whose cache lags, or an etcd restored from a backup); listing again after the backoff: ${msg}`));
              } else end(Object.assign(new Error(`the API server ended the watch with an ERROR event: ${msg}`), typeof obj.code === 'number' ? { code: obj.code } : {}));
              return;
            }
            // a BOOKMARK's only content is its resourceVersion; one without it would make the next reconnect relist
            if (phase === 'BOOKMARK' && !(isObject(obj.metadata) && typeof obj.metadata.resourceVersion === 'string' && obj.metadata.resourceVersion)) return;
            const slim = phase === 'ADDED' || phase === 'MODIFIED' || phase === 'DELETED' ? spec.slim(obj) : obj;
            // ListWatch.watchHandler is async: what throws in it (or in our index callbacks) is a rejection
            const p = cb(phase, slim, raw);
            if (p instanceof Promise) p.catch((e: unknown) => end(e));
          } catch (e) {
            // what applying an event throws ends the watch as failed (logged, restarted with backoff), not lost without a word
            end(e);
          }
        };
        let ctl: AbortController;
        const [lo, hi] = WATCH_SERVER_TIMEOUT_S;
        const query = { ...q, allowWatchBookmarks: true, timeoutSeconds: lo + Math.floor(Math.random() * (hi - lo)) };
        try {
          ctl = await real.watch(path, query, line, (err) => end(err), this.stopping.signal);
        } catch (err) {
          // Before any request: the credentials could not be had (an exec plugin such as `aws eks get-token` failing
          // after its session expired, an unreadable token file). A failed watch like any other.
          end(err);
          return new AbortController();
        }
        if (!ended) {
          connected = true;
          connectedAt = Date.now();
          this.healthy(); // the watch is connected: the cache is current again
        }
        return ctl;
      },
    };
    this.lw = new ListWatch<KubernetesObject>(
      spec.path,
      slimmingWatch as unknown as ConstructorParameters<typeof ListWatch>[1],
      () => this.listAll(),
      false,
      spec.labelSelector,
      spec.fieldSelector,
      { delayFn: (ms) => new Promise<void>((resolve) => setTimeout(resolve, Math.min(ms, backoff.maxMs)).unref()) },
    );
    this.lw.on('error', (err) => this.onError(err, 'watch'));
  }

  private healthy(): void {
    this.recovered('watch');
    this.brokenSince = undefined;
    this.staleSince = undefined;
    this.healthySince ??= Date.now();
  }

  private async listAll(): Promise<any> {
    const items: KubeObject[] = [];
    let cont: string | undefined;
    let rv = '';
    for (;;) {
      const q = new URLSearchParams();
      if (this.spec.labelSelector) q.set('labelSelector', this.spec.labelSelector);
      if (this.spec.fieldSelector) q.set('fieldSelector', this.spec.fieldSelector);
      q.set('limit', String(this.pageLimit));
      if (cont) q.set('continue', cont);
      let page: { rv?: string; cont?: string } | undefined;
      let bytes = 0;
      try {
        // the page is held whole only within its slot: fetched, parsed and slimmed there
        page = await this.pageSlots.run(async () => {
          const body = await kubeGetJson(this.kc, `${this.spec.path}?${q}`, { maxBytes: this.pageBytes, onBytes: (n) => (bytes = n) });
          if (!isObject(body) || !Array.isArray(body.items)) return undefined;
          for (const it of body.items) if (isObject(it)) items.push(this.spec.slim(it));
          const md = isObject(body.metadata) ? body.metadata : {};
          return {
            rv: typeof md.resourceVersion === 'string' ? md.resourceVersion : undefined,
            cont: typeof md.continue === 'string' && md.continue ? md.continue : undefined,
          };
        });
      } catch (err) {
        // A page is parsed whole before it is slimmed, so its size is what the heap must hold at once. Objects are
        // up to about 1.5 MiB each (etcd's limit), so 500 large workloads (a tenant's, with no agent label) would
        // be 700 MB: ask again for half as many, from the same point (the continue token pins the snapshot).
        if (err instanceof ResponseTooLargeError && this.pageLimit > 1) {
          this.pageLimit = Math.max(1, this.pageLimit >> 1);
          this.log.warn({ resource: this.spec.id, limit: this.pageLimit, maxBytes: this.pageBytes }, `cluster cache: a page of ${this.spec.rbac} was over ${this.pageBytes} bytes; listing ${this.pageLimit} at a time`);
          continue;
        }
        (err as { verb?: string }).verb = 'list';
        throw err;
      }
      // pages well under the cap: back towards the configured size
      if (bytes < this.pageBytes / 4 && this.pageLimit < this.pageSize) this.pageLimit = Math.min(this.pageSize, this.pageLimit * 2);
      if (!page) throw Object.assign(new Error('list response has no items'), { verb: 'list' });
      rv = page.rv ?? rv;
      cont = page.cont;
      if (!cont) break;
    }
    const first = !this.synced;
    this.synced = true;
    this.lastSyncAt = Date.now();
    // current as of this list; ListWatch applies it next, then starts a watch, which is not connected yet
    this.staleSince = this.lastSyncAt;
    this.recovered('list');
    this.brokenSince = undefined;
    this.lastError = undefined;
    if (first) {
      this.log.info({ resource: this.spec.id, count: items.length }, `cluster cache: ${this.spec.id} synced`);
      this.onFirstSync?.();
    }
    return { metadata: { resourceVersion: rv }, items };
  }

  /**
   * One info line when a resource that was failing works again (its list or watch succeeded), so the log says when
   * the errors before it ended: how long it was broken and what the last error was.
   */
  private recovered(verb: 'list' | 'watch'): void {
    if (this.brokenSince === undefined || this.stopped) return;
    const seconds = Math.round((Date.now() - this.brokenSince) / 100) / 10;
    this.log.info(
      { resource: this.spec.id, verb, brokenSeconds: seconds },
      `cluster cache: ${verb} ${this.spec.rbac} works again after ${seconds} s of errors (the last: ${this.lastError ?? 'unknown'}); the cache is current`,
    );
  }

  private onError(err: unknown, fallbackVerb: 'list' | 'watch'): void {
    if (this.stopped) return;
    const e = err as { statusCode?: number; code?: unknown; verb?: string; message?: string };
    const verb = e.verb === 'list' ? 'list' : fallbackVerb;
    const status = typeof e.statusCode === 'number' ? e.statusCode : typeof e.code === 'number' ? e.code : undefined;
    this.brokenSince ??= Date.now();
    this.staleSince ??= this.brokenSince;
    // failures count from the last watch that stayed connected: one that breaks soon after its headers is no recovery
    if (this.healthySince !== undefined && Date.now() - this.healthySince >= (this.backoff.resetAfterMs ?? RESET_AFTER_MS)) this.failures = 0;
    this.healthySince = undefined;
    this.failures++;
    const delay = Math.min(this.backoff.maxMs, this.backoff.baseMs * 2 ** Math.min(this.failures - 1, 20));
    const fields = { resource: this.spec.id, verb, status, retryInMs: delay, synced: this.synced };
    if (status === 403) {
      const perm = `${verb} ${this.spec.rbac}`;
      const name = this.spec.resourceName;
      const notReady = this.synced ? '' : '; not ready until it is granted';
      if (name !== undefined) {
        // The shipped ClusterRole grants the token-review ConfigMaps by name only (resourceNames), never all of them
        const quoted = JSON.stringify(name);
        this.lastError = `forbidden: missing permission "${perm}" on resourceName ${quoted}`;
        this.log.error(
          { ...fields, permission: perm, resourceName: name },
          `cluster cache: cannot ${perm} named ${quoted}: missing permission "${perm}" on resourceName ${quoted} for the webhook's ServiceAccount; ` +
            `add ${quoted} to resourceNames in its ClusterRole's configmaps rule (list, watch), as for every name in tokenReview.configMapNames ` +
            `(the ConfigMap webhooks' matchConditions list them too)${notReady}`,
        );
      } else {
        this.lastError = `forbidden: missing permission "${perm}" (cluster-wide)`;
        this.log.error(
          { ...fields, permission: perm },
          `cluster cache: cannot ${perm}: missing permission "${perm}" (cluster-wide) for the webhook's ServiceAccount; ` +
            `grant list and watch on ${this.spec.rbac}${notReady}`,
        );
      }
    } else {
      // errField appends an error's cause where it has one (`connect ECONNREFUSED 10.96.0.1:443`)
      const failure = errField(err);
      this.lastError = `${verb} ${this.spec.rbac}: ${failure.message}`;
      this.log.warn(
        { ...fields, err: failure },
        `cluster cache: ${verb} ${this.spec.rbac} failed; ${this.synced ? 'serving from cache, ' : ''}retrying in ${delay} ms`,
      );
    }
    this.scheduleRestart(delay);
  }

  private scheduleRestart(delay: number): void {
    if (this.stopped || this.restartTimer) return;
    // jitter: up to 20% so many replicas do not reconnect in step
    const jittered = Math.round(delay * (1 + Math.random() * 0.2));
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      void this.start();
    }, jittered);
    this.restartTimer.unref();
  }

  async start(): Promise<void> {
    if (this.stopped) return;
    const attempt = ++this.attempt;
    try {
      await this.lw.start();
    } catch (err) {
      if (attempt === this.attempt) this.onError(err, 'watch');
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    void this.lw.stop();
    this.stopping.abort();
  }

  get(name: string, namespace?: string): KubeObject | undefined {
    return this.lw.get(name, namespace) as KubeObject | undefined;
  }

  list(namespace?: string): KubeObject[] {
    return this.lw.list(namespace) as KubeObject[];
  }

  on(verb: 'add' | 'update' | 'delete', cb: Callback): void {
    this.lw.on(verb, cb as (o: KubernetesObject) => void);
  }

  /** Objects per list page that its last list learned (pageSize, less where its pages were over pageBytes): confirmAdmitted starts from it. */
  learnedPageLimit(): number {
    return this.pageLimit;
  }
}

// ---------------------------------------------------------------------------------------------------
// The cluster state: informers plus the (namespace, serviceAccount) → claims index.

const WORKLOADS: { kind: string; path: string; rbac: string }[] = [
  { kind: 'Deployment', path: '/apis/apps/v1/deployments', rbac: 'deployments.apps' },
  { kind: 'StatefulSet', path: '/apis/apps/v1/statefulsets', rbac: 'statefulsets.apps' },
  { kind: 'DaemonSet', path: '/apis/apps/v1/daemonsets', rbac: 'daemonsets.apps' },
  { kind: 'ReplicaSet', path: '/apis/apps/v1/replicasets', rbac: 'replicasets.apps' },
  { kind: 'Job', path: '/apis/batch/v1/jobs', rbac: 'jobs.batch' },
  { kind: 'CronJob', path: '/apis/batch/v1/cronjobs', rbac: 'cronjobs.batch' },
];

export function resourceSpecs(config: Config): ResourceSpec[] {
  return [
    { id: 'pods', rbac: 'pods', kind: 'Pod', path: '/api/v1/pods', labelSelector: 'kagenti.io/type', slim: slimPod },
    ...WORKLOADS.map((w) => ({ id: w.rbac, rbac: w.rbac, kind: w.kind, path: w.path, slim: slimWorkload(w.kind, config.tokenReview.controllerDeployment) })),
    { id: 'namespaces', rbac: 'namespaces', kind: 'Namespace', path: '/api/v1/namespaces', slim: slimNamespace },
    {
      id: 'csidrivers.storage.k8s.io',
      rbac: 'csidrivers.storage.k8s.io',
      kind: 'CSIDriver',
      path: '/apis/storage.k8s.io/v1/csidrivers',
      slim: slimCsiDriver,
    },
    ...config.tokenReview.configMapNames.map((name) => ({
      id: `configmaps/${name}`,
      rbac: 'configmaps',
      kind: 'ConfigMap',
      path: '/api/v1/configmaps',
      fieldSelector: `metadata.name=${name}`,
      resourceName: name,
      slim: slimConfigMap,
    })),
  ];
}

let currentState: ClusterState | undefined;
// cluster_cache_age_seconds (metrics.ts, 0 without cluster state) reads the running ClusterState's age at each scrape
clusterCacheAgeFrom(() => currentState?.cacheAgeSeconds() ?? 0);

export interface ClusterStateOptions {
  kubeConfig: KubeConfig;
  config: Config;
  log: Logger;
  backoff?: BackoffOptions;
  /** list page size (`limit`) */
  pageSize?: number;
  /** the most a list page may hold, in bytes (default PAGE_BYTES; tests set less) */
  pageBytes?: number;
  /** the watches' timeouts (response headers; then inactivity), default WATCH_CLIENT_TIMEOUT_MS (tests set less) */
  watchTimeoutMs?: number;
  /** confirmAdmitted's timings and list slots, default CONFIRM_AFTER_MS, CONFIRM_LIST_MS and CONFIRM_LISTS_MAX (tests set less) */
  confirm?: { afterMs?: number; listMs?: number; maxLists?: number };
}

function claimKey(ns: string, sa: string): string {
  return `${ns}\u0000${sa}`;
}

/**
 * The group of a claim within its (namespace, serviceAccount): objects whose AgentRefs differ only in `source` and
 * `deleting`, so that one of them says for all whether they are another agent than a candidate. Pods with the same
 * controller owner and the same labels (all but a StatefulSet pod's own name, which identity.ts reads only for pods
 * without an owner) resolve to the same agent: their identity comes from that owner and those labels alone. Any other
 * object (a workload, a pod without a controller, or one owned by a pod) is a group of its own (`key`).
 */
function claimGroupKey(o: KubeObject, key: string): string {
  if (o.kind !== 'Pod') return key;
  const owner = controllerOf(o);
  if (!owner?.controller || owner.kind === 'Pod') return key;
  const labels = isObject(o.metadata?.labels) ? o.metadata.labels : {};
  let out = `Pod\u0000${owner.kind}\u0000${owner.name}`;
  for (const k of Object.keys(labels).sort())
    if (k !== 'statefulset.kubernetes.io/pod-name' && typeof labels[k] === 'string') out += `\u0000${k}\u0001${labels[k]}`;
  return out;
}

/** A claim group: its key and its members' object keys. */
interface ClaimGroup {
  key: string;
  members: Set<string>;
}

/** AgentRefs built from cached objects (refOf) by this process so far: what a unique-service-account check costs (the tests count them). */
let refsBuilt = 0;
export function agentRefsBuilt(): number {
  return refsBuilt;
}

/** Admitted claims kept at most (an admission flood of new names cannot grow memory without bound). */
const ADMITTED_MAX = 10_000;
/** How long the controller of a Job /validate admitted answers for it while the cache does not hold it (noteJobOwner). */
const JOB_OWNER_TTL_MS = ADMITTED_TTL_MS;

interface Admitted {
  claim: string;
  ref: AgentRef;
  until: number;
  kind: string;
  namespace: string;
  name: string;
  /** when it was admitted, and its place in the order of admissions (ClusterState.admittedSeq) */
  at: number;
  seq: number;
  /** the API server was found to hold it (confirmAdmitted): it is not listed again */
  confirmed?: true;
}

/**
 * Confirming lists sent at once by this process, whatever the number of requests and claims; more wait for a slot
 * (within their request's budget; a request whose list gets none keeps its denial).
 */
export const CONFIRM_LISTS_MAX = 4;
/** Less time than this left in a check (a quarter of CONFIRM_LIST_MS at most): no list is sent, as none would be answered. */
const CONFIRM_MIN_LIST_MS = 250;
/**
 * At most this many unconfirmed claims of one kind in one namespace: each is listed by its name
 * (fieldSelector=metadata.name), a list of one object, whatever the namespace holds. More: the namespace's objects of
 * that kind are listed, once for them all.
 */
export const CONFIRM_BY_NAME_MAX = 8;
/** A scheduled confirming list (the second one, for claims not CONFIRM_AFTER_MS old yet) that a request takes as its own first one, at most this much later than it needs. */
const CONFIRM_SHARE_MS = 250;

type CheckResult = 'confirmed' | 'dropped' | 'unanswered';

/** One confirming list of a kind in a namespace: the objects found claiming a ServiceAccount, by name → claim key. */
interface KindList {
  /** sent no earlier than this (a scheduled one: when it will be) */
  startedAt: number;
  held: Promise<Map<string, string>>;
}

/** The claims of one kind a check decided, by result; `err`: why the unanswered ones were not. */
type KindResult = Record<CheckResult, Admitted[]> & { err?: ErrField };

/** `Pod team-b/a`, or `Pod team-b/a, Pod team-b/b, Pod team-b/c and 9,997 more`, and the first one's log fields. */
function describeClaims(claims: Admitted[]): { names: string; sa: string; fields: Record<string, unknown>; one: boolean } {
  const a = claims[0]!;
  const shownNames = claims.slice(0, 3).map((c) => `${c.kind} ${shown(c.namespace)}/${shown(c.name)}`);
  const more = claims.length - shownNames.length;
  const sa = `ServiceAccount ${shown(a.ref.namespace)}/${shown(a.ref.serviceAccount || 'default')}`;
  return {
    names: `${shownNames.join(', ')}${more > 0 ? ` and ${more.toLocaleString('en-US')} more` : ''}`,
    sa,
    fields: { kind: a.kind, namespace: shown(a.namespace), name: shown(a.name), serviceAccount: shown(a.ref.serviceAccount), count: claims.length },
    one: claims.length === 1,
  };
}

/** What confirmAdmitted found, claim by claim. */
export type ConfirmResult = Record<CheckResult, number>;


/** Names the API server can store: a DNS subdomain (every kind a claim is noted for), in a namespace (a DNS label). */
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** `/apis/apps/v1/deployments` in namespace `ns`: `/apis/apps/v1/namespaces/ns/deployments`. */
function namespacedPath(path: string, ns: string): string {
  const i = path.lastIndexOf('/');
  return `${path.slice(0, i)}/namespaces/${encodeURIComponent(ns)}${path.slice(i)}`;
}

/** `run`, given up after `ms` (its request aborted): the whole call, credentials and all, not only a quiet socket. */
function withDeadline<T>(ms: number, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ctl = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      const err = new Error(`no answer within ${ms} ms`);
      ctl.abort(err);
      reject(err);
    }, ms);
  });
  return Promise.race([run(ctl.signal), deadline]).finally(() => clearTimeout(timer));
}

export class ClusterState {
  private readonly config: Config;
  private readonly log: Logger;
  private readonly startedAt = Date.now();
  readonly informers: ResilientInformer[];
  private readonly byKind = new Map<string, ResilientInformer>();
  private readonly configMapInformers: ResilientInformer[] = [];
  /** (ns, sa) → object keys (`Kind\0name`) of the claims */
  private readonly index = new Map<string, Set<string>>();
  /** object key (`Kind\0ns\0name`) → its claim key, to move or drop it on update/delete */
  private readonly claimOf = new Map<string, string>();
  /**
   * (ns, sa) → its claims by group (claimGroupKey: a workload's pods are one group), and object key → its group: a
   * check of one agent reads one claim per group (claimsOn's `candidate`), not one per pod.
   */
  private readonly groups = new Map<string, Map<string, ClaimGroup>>();
  private readonly groupOf = new Map<string, ClaimGroup>();
  /**
   * Agents this webhook admitted that the cache does not hold yet: object key → its claim, in the order admitted
   * (so the oldest expire first); and claim key → those object keys.
   */
  private readonly admitted = new Map<string, Admitted>();
  private readonly admittedOn = new Map<string, Set<string>>();
  /** admissions noted so far (Admitted.seq) */
  private seq = 0;
  /**
   * confirmAdmitted's lists by (namespace, kind), under way or scheduled (the second list, for claims not
   * CONFIRM_AFTER_MS old yet), shared by the requests that need them; gone once answered.
   */
  private readonly kindLists = new Map<string, KindList[]>();
  /** the confirming lists' slots (CONFIRM_LISTS_MAX), first come first served */
  private readonly listSlots: Slots;
  private readonly kc: KubeConfig;
  private readonly confirmAfterMs: number;
  private readonly confirmListMs: number;
  private readonly confirmBudgetMs: number;
  private readonly confirmMinListMs: number;
  private readonly pageSize: number;
  private readonly pageBytes: number;
  /**
   * Jobs `/validate` has seen created, by `ns\0name`, in the order seen (the oldest expire first): their controller
   * owner (null: none), until the cache holds them or JOB_OWNER_TTL_MS have passed. At most ADMITTED_MAX.
   */
  private readonly jobOwners = new Map<string, { owner: OwnerRef | null; until: number }>();
  readonly lookup: OwnerLookup;
  /**
   * Whether the informers behind claimsOn (pods and the workload kinds) have all listed once: before that, a claim
   * may be missing. A property, for /validate's hot path; it never turns false again.
   */
  claimsSynced = false;

  constructor(opts: ClusterStateOptions) {
    this.config = opts.config;
    this.log = opts.log;
    this.kc = opts.kubeConfig;
    this.confirmAfterMs = opts.confirm?.afterMs ?? CONFIRM_AFTER_MS;
    this.confirmListMs = opts.confirm?.listMs ?? CONFIRM_LIST_MS;
    this.confirmBudgetMs = this.confirmAfterMs + this.confirmListMs;
    this.confirmMinListMs = Math.min(CONFIRM_MIN_LIST_MS, this.confirmListMs / 4);
    this.listSlots = new Slots(opts.confirm?.maxLists ?? CONFIRM_LISTS_MAX);
    this.pageSize = opts.pageSize ?? 500;
    this.pageBytes = opts.pageBytes ?? PAGE_BYTES;
    const backoff = opts.backoff ?? { baseMs: 1000, maxMs: 60_000 };
    const pageSlots = new Slots(LIST_PAGES_AT_ONCE);
    this.informers = resourceSpecs(opts.config).map(
      (s) => new ResilientInformer(opts.kubeConfig, s, opts.log, backoff, this.pageSize, this.pageBytes, opts.watchTimeoutMs, pageSlots),
    );
    for (const inf of this.informers) {
      if (inf.spec.kind === 'ConfigMap') this.configMapInformers.push(inf);
      else this.byKind.set(inf.spec.kind, inf);
    }
    const claimInformers = ['Pod', ...WORKLOADS.map((w) => w.kind)].map((k) => this.byKind.get(k)!);
    for (const inf of claimInformers) {
      inf.onFirstSync = () => {
        this.claimsSynced = claimInformers.every((i) => i.synced);
      };
      inf.on('add', (o) => this.indexObject(o));
      inf.on('update', (o) => this.indexObject(o));
      inf.on('delete', (o) => this.unindex(o));
    }
    const cached = (kind: string, namespace: string, name: string) => this.byKind.get(kind)?.get(name, namespace);
    const lookup: OwnerLookup = (kind, namespace, name) => {
      const o = cached(kind, namespace, name);
      if (o) return controllerOf(o);
      // a Job /validate admitted moments ago that the cache does not hold yet: the controller it was created with
      return kind === 'Job' && this.jobOwners.size ? this.recentJobOwner(namespace, name) : undefined;
    };
    lookup.selector = (kind, namespace, name) => {
      if (kind !== 'Deployment' && kind !== 'StatefulSet') return undefined;
      const o = cached(kind, namespace, name);
      return o ? (o.spec?.selector ?? null) : undefined;
    };
    lookup.labels = (kind, namespace, name) => {
      const o = cached(kind, namespace, name);
      return o ? (o.metadata?.labels ?? {}) : undefined;
    };
    this.lookup = lookup;
    currentState = this;
  }

  start(): void {
    for (const inf of this.informers) void inf.start();
  }

  stop(): void {
    for (const inf of this.informers) inf.stop();
    if (currentState === this) currentState = undefined;
  }

  private objKey(o: KubeObject): string {
    return `${o.kind}\u0000${o.metadata?.namespace ?? ''}\u0000${o.metadata?.name ?? ''}`;
  }

  private claims(o: KubeObject): string | null {
    const tpl = getPodTemplate(o);
    if (!tpl || !isAgentType(tpl.labels, this.config)) return null;
    if (o.kind === 'Pod') {
      const phase = o.status?.phase;
      if (phase === 'Succeeded' || phase === 'Failed') return null;
    } else if (o.inactive === true) return null;
    return claimKey(o.metadata?.namespace ?? '', effectiveServiceAccount(tpl.spec));
  }

  private indexObject(o: KubeObject): void {
    const key = this.objKey(o);
    if (this.admitted.size) this.forgetAdmitted(key);
    const next = this.claims(o);
    const prev = this.claimOf.get(key);
    // its group can change while its claim does not (a pod released by its ReplicaSet, relabelled)
    const group = next === null ? undefined : claimGroupKey(o, key);
    if (prev !== next || this.groupOf.get(key)?.key !== group) {
      this.ungroup(key);
      if (next !== null) this.group(next, group!, key);
    }
    if (prev === next) return;
    if (prev !== undefined) this.dropFrom(prev, key);
    if (next === null) {
      this.claimOf.delete(key);
      return;
    }
    this.claimOf.set(key, next);
    let set = this.index.get(next);
    if (!set) this.index.set(next, (set = new Set()));
    set.add(key);
  }

  private group(claim: string, groupKey: string, key: string): void {
    let byKey = this.groups.get(claim);
    if (!byKey) this.groups.set(claim, (byKey = new Map()));
    let g = byKey.get(groupKey);
    if (!g) byKey.set(groupKey, (g = { key: groupKey, members: new Set() }));
    g.members.add(key);
    this.groupOf.set(key, g);
  }

  private ungroup(key: string): void {
    const g = this.groupOf.get(key);
    if (!g) return;
    this.groupOf.delete(key);
    g.members.delete(key);
    if (g.members.size) return;
    const claim = this.claimOf.get(key)!;
    const byKey = this.groups.get(claim);
    byKey?.delete(g.key);
    if (byKey && !byKey.size) this.groups.delete(claim);
  }

  private dropFrom(claim: string, key: string): void {
    const set = this.index.get(claim);
    if (!set) return;
    set.delete(key);
    if (set.size === 0) this.index.delete(claim);
  }

  private unindex(o: KubeObject): void {
    const key = this.objKey(o);
    if (this.admitted.size) this.forgetAdmitted(key);
    const prev = this.claimOf.get(key);
    if (prev === undefined) return;
    this.ungroup(key);
    this.dropFrom(prev, key);
    this.claimOf.delete(key);
  }

  private refOf(key: string, lookup = this.lookup): AgentRef | null {
    const [kind, ns, name] = key.split('\u0000');
    const o = this.byKind.get(kind)?.get(name, ns);
    if (!o) return null;
    refsBuilt++;
    const r: AgentRef | null = agentIdentity(o, this.config, ns, lookup, Date.now());
    // A pod or ReplicaSet of a workload whose template, as cached, no longer claims this ServiceAccount (another one,
    // or no agent now): what is left of it from before, not the workload itself (checkUnique says so). Judged against
    // the workload its owners lead to (a Flagger primary's pod: the primary, not its target), and only for what is
    // part of it: a workload that is another's agent (a Flagger primary, a LeaderWorkerSet's StatefulSet) is live.
    const own = r?.workload ?? r;
    if (r?.source && (r.source.kind !== own!.kind || r.source.name !== own!.name)) {
      const top = this.byKind.get(own!.kind)?.get(own!.name, ns);
      const claim = top ? this.claimOf.get(this.objKey(top)) : null;
      if (claim === undefined) r.former = top!.inactive === true ? 'stopped' : 'no-agent';
      else if (claim !== null && claim !== claimKey(ns, r.serviceAccount)) r.former = 'moved';
    } else if (r && r.kind === 'Pod') {
      const released = this.releasedFrom(o, ns);
      if (released) r.released = released;
    }
    return r;
  }

  /**
   * The ReplicaSet (and its workload) a pod without an owner was released by, as after `kubectl label pod <name>
   * app-` for debugging: the ReplicaSet controller drops its ownerReference, and the pod keeps its
   * `pod-template-hash` label and its name, `<replicaset>-<5 characters>`, while that ReplicaSet (cached) is
   * `<workload>-<hash>`. Only for what the message says: such a pod counts as itself (its workload's selector no
   * longer selects it, and no controller will delete it), so a bare pod named like that is never taken for a
   * workload's.
   */
  private releasedFrom(o: KubeObject, ns: string): AgentRef['released'] | undefined {
    const hash = o.metadata?.labels?.['pod-template-hash'];
    const m = /^(.+)-[a-z0-9]{5}$/.exec(typeof o.metadata?.name === 'string' ? o.metadata.name : '');
    if (typeof hash !== 'string' || !hash || !m || !m[1]!.endsWith(`-${hash}`)) return undefined;
    const rs = this.byKind.get('ReplicaSet')?.get(m[1]!, ns);
    if (!rs) return undefined;
    const owner = controllerOf(rs);
    return owner ? { replicaSet: m[1]!, workload: { kind: owner.kind, name: owner.name } } : { replicaSet: m[1]! };
  }

  /** The claim of a cached object (a workload, say), or null when it is not cached or claims nothing now. */
  claimOfObject(kind: string, namespace: string, name: string): AgentRef | null {
    const key = `${kind}\u0000${namespace}\u0000${name}`;
    return this.claimOf.has(key) ? this.refOf(key) : null;
  }

  /**
   * The live agent claims on (namespace, serviceAccount): the cache's, and those of agents this webhook admitted
   * that the cache does not hold yet (`admitted`). `admitting`: a Deployment or StatefulSet being admitted there,
   * taken as cached with its selector, so orphans it would not adopt count as themselves (not as it).
   * `admittedUpTo`: only the admitted agents noted up to that admittedSeq() count (those noted later are left out).
   * `candidate`: the agent being checked (checkUnique, checkUniqueSince). While no cached claim is another agent than
   * it (sharesWith), the cache's claims are one per group (a workload's pods are one: claimGroupKey), which those
   * checks find nothing in either, so a new pod of a 5,000-replica agent costs one AgentRef, not 5,000; once one is,
   * every claim, as without it, for the message.
   */
  claimsOn(namespace: string, serviceAccount: string, admitting?: KubeObject, admittedUpTo?: number, candidate?: AgentRef): AgentRef[] {
    const claim = claimKey(namespace, serviceAccount);
    const set = this.index.get(claim);
    const out: AgentRef[] = [];
    if (set) {
      const lookup = admitting ? this.lookupAdmitting(admitting, namespace) : this.lookup;
      let all = !candidate;
      if (candidate)
        for (const g of this.groups.get(claim)?.values() ?? []) {
          let r: AgentRef | null = null;
          for (const k of g.members) if ((r = this.refOf(k, lookup))) break;
          if (!r) continue;
          if (sharesWith(candidate, r)) {
            all = true;
            out.length = 0;
            break;
          }
          out.push(r);
        }
      if (all)
        for (const k of set) {
          const r = this.refOf(k, lookup);
          if (r) out.push(r);
        }
    }
    const admitted = this.admittedOn.get(claim);
    if (admitted) {
      const now = Date.now();
      for (const k of admitted) {
        const a = this.admitted.get(k)!;
        if (a.until > now && (admittedUpTo === undefined || a.seq <= admittedUpTo)) out.push(a.ref);
      }
    }
    return out;
  }

  /**
   * An agent `/validate` has just admitted (a CREATE, or an UPDATE onto this ServiceAccount; never a dry run): a
   * claim until the informer's event for that object arrives, or ADMITTED_TTL_MS (an object another admission
   * step refused after us is never stored, and is forgotten then). Only objects with a name, and not a
   * controller's pods, nor the ReplicaSets and Jobs of a workload kind the cache holds.
   */
  noteAdmitted(kind: string, namespace: string, name: string, ref: AgentRef): void {
    // A pod of a controller (its claim is its workload's, `source` set) is not remembered: its workload was admitted
    // or cached before it. At /validate a generated name is already filled in, so such pods do have a name; one the
    // API server then refuses (a ResourceQuota, another validating webhook) would hold its workload's claim. Nor is a
    // ReplicaSet or Job of a workload the cache holds (a Deployment's, a CronJob's), for the same reason. A workload
    // whose identity is another resource the cache does not hold (a LeaderWorkerSet's StatefulSet, a JobSet's Job,
    // a Knative Revision's Deployment) or another workload (a Flagger primary's target) is noted: it is the claim.
    if (!name || (ref.source && (kind === 'Pod' || ((kind === 'ReplicaSet' || kind === 'Job') && this.byKind.has(ref.kind))))) return;
    const key = `${kind}\u0000${namespace}\u0000${name}`;
    const claim = claimKey(ref.namespace, ref.serviceAccount);
    // what it claimed before this admission (an UPDATE that moved it, and another back) is not its claim now
    this.forgetAdmitted(key);
    if (this.claimOf.get(key) === claim) return; // the cache holds it on this ServiceAccount already
    const now = Date.now();
    // expired ones first (the oldest are first in the map), then the oldest over the cap
    for (const [k, a] of this.admitted) {
      if (a.until > now && this.admitted.size < ADMITTED_MAX) break;
      this.forgetAdmitted(k);
    }
    this.admitted.set(key, { claim, ref: { ...ref, recent: true }, until: now + ADMITTED_TTL_MS, kind, namespace, name, at: now, seq: ++this.seq });
    let set = this.admittedOn.get(claim);
    if (!set) this.admittedOn.set(claim, (set = new Set()));
    set.add(key);
  }

  /** The place of the last admission noted, for claimsOn's `admittedUpTo`. */
  admittedSeq(): number {
    return this.seq;
  }

  /**
   * Checks with the API server the agents admitted moments ago (noted up to `upTo`, an admittedSeq()) that claim
   * (namespace, serviceAccount) and that the cache does not hold yet, before a denial that rests on them alone. Up to
   * CONFIRM_BY_NAME_MAX claims of a kind in a namespace are listed each by its name (fieldSelector metadata.name: a
   * list of at most one object, whatever else the namespace holds; the webhook's RBAC grants list, not get). More
   * (a forger's thousands) are not listed one by one: their kind is listed in the namespace, once for them all (pods
   * by the agent label the pod informer selects on, workload kinds whole; paged from the page limit that kind's
   * informer learned, each page at most the informers' page bytes), and the names are looked up in what came back.
   * Held there, on this ServiceAccount: the claim stays (`confirmed`, and is not listed again). Not held: if it was
   * admitted less than CONFIRM_AFTER_MS ago its create may still be on its way (two requests at once), so it is
   * listed once more when it is that old (a namespace list: when the youngest of its claims is); still not held, it
   * is forgotten (`dropped`), and logged. A list is shared by the requests that need the same one (namespace, kind,
   * and name for a by-name list) at the same time, and at most CONFIRM_LISTS_MAX are sent at once. A list that fails, or gets no slot or no answer within this request's CONFIRM_BUDGET_MS, leaves
   * its claims as they are (`unanswered`: the denial stands) and is logged. Never rejects.
   */
  async confirmAdmitted(namespace: string, serviceAccount: string, upTo: number): Promise<ConfirmResult> {
    const out: ConfirmResult = { confirmed: 0, dropped: 0, unanswered: 0 };
    const now = Date.now();
    const byKind = this.toConfirm(namespace, serviceAccount, upTo, now, out);
    if (!byKind.size) return out;
    // one timer for the request: whatever the lists it shares do, it stops waiting for them at its budget's end
    let timer: NodeJS.Timeout | undefined;
    const budgetEnd = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.confirmBudgetMs} ms, the time this check has`)), this.confirmBudgetMs);
    });
    budgetEnd.catch(() => {});
    const deadline = now + this.confirmBudgetMs;
    try {
      const found = await Promise.all(
        [...byKind.values()].map((claims) =>
          claims.length <= CONFIRM_BY_NAME_MAX ? this.confirmByName(claims, deadline, budgetEnd) : this.confirmKind(claims, undefined, deadline, budgetEnd),
        ),
      );
      for (const r of found) this.settle(r, out, 'listed');
    } finally {
      clearTimeout(timer);
    }
    return out;
  }

  /**
   * What confirmAdmitted would check, left unchecked (`why`: the reason, logged): the claims stand, counted and logged
   * as `unanswered` (their denial stands), as when the API server does not answer. Names no object can have are
   * dropped, as confirmAdmitted drops them, without a list. Sends nothing.
   */
  leaveUnconfirmed(namespace: string, serviceAccount: string, upTo: number, why: string): ConfirmResult {
    const out: ConfirmResult = { confirmed: 0, dropped: 0, unanswered: 0 };
    for (const claims of this.toConfirm(namespace, serviceAccount, upTo, Date.now(), out).values())
      this.settle({ confirmed: [], dropped: [], unanswered: claims, err: { type: 'ConfirmError', message: why } }, out, 'listed');
    return out;
  }

  /**
   * The claims on (namespace, serviceAccount) noted up to `upTo` that a check would list, by (namespace, kind); the
   * ones confirmed already are counted into `out`, and the ones named as no object can be are dropped (settled).
   */
  private toConfirm(namespace: string, serviceAccount: string, upTo: number, now: number, out: ConfirmResult): Map<string, Admitted[]> {
    const byKind = new Map<string, Admitted[]>();
    const set = this.admittedOn.get(claimKey(namespace, serviceAccount));
    if (!set) return byKind;
    const unstorable: Admitted[] = [];
    for (const k of set) {
      const a = this.admitted.get(k)!;
      if (a.seq > upTo || a.until <= now) continue;
      if (a.confirmed) out.confirmed++;
      // a name the API server refuses is never stored (only a request that did not come from it carries one)
      else if (!this.byKind.has(a.kind) || a.name.length > 253 || !DNS_SUBDOMAIN.test(a.name) || a.namespace.length > 63 || !DNS_LABEL.test(a.namespace))
        unstorable.push(a);
      else {
        const g = `${a.namespace}\u0000${a.kind}`;
        let claims = byKind.get(g);
        if (!claims) byKind.set(g, (claims = []));
        claims.push(a);
      }
    }
    this.settle({ confirmed: [], dropped: unstorable, unanswered: [] }, out, 'unstorable');
    return byKind;
  }

  /** A few claims of one kind in one namespace, each decided by lists of its name: one result for them all. */
  private async confirmByName(claims: Admitted[], deadline: number, budgetEnd: Promise<never>): Promise<KindResult> {
    const each = await Promise.all(claims.map((a) => this.confirmKind([a], a.name, deadline, budgetEnd)));
    const out: KindResult = { confirmed: [], dropped: [], unanswered: [] };
    for (const r of each) {
      out.confirmed.push(...r.confirmed);
      out.dropped.push(...r.dropped);
      out.unanswered.push(...r.unanswered);
      out.err ??= r.err;
    }
    return out;
  }

  /**
   * The claims of one kind in one namespace (all named `name`, when given: a by-name list), decided by one list (two
   * when some are not CONFIRM_AFTER_MS old).
   */
  private async confirmKind(claims: Admitted[], name: string | undefined, deadline: number, budgetEnd: Promise<never>): Promise<KindResult> {
    const { namespace, kind } = claims[0]!;
    const inf = this.byKind.get(kind)!;
    const out: KindResult = { confirmed: [], dropped: [], unanswered: [] };
    let pending = claims;
    // the first list: any sent after the latest of them was admitted
    let notBefore = 0;
    for (const a of pending) notBefore = Math.max(notBefore, a.at);
    try {
      for (;;) {
        const list = this.kindList(inf, namespace, name, notBefore, deadline);
        const held = await Promise.race([list.held, budgetEnd]);
        const next: Admitted[] = [];
        for (const a of pending) {
          if (held.get(a.name) === a.claim) out.confirmed.push(a);
          else if (list.startedAt >= a.at + this.confirmAfterMs) out.dropped.push(a);
          else next.push(a);
        }
        if (!next.length) break;
        // the second: sent once the youngest of those left is CONFIRM_AFTER_MS old (it decides them all)
        pending = next;
        for (const a of pending) notBefore = Math.max(notBefore, a.at + this.confirmAfterMs);
      }
    } catch (err) {
      out.unanswered = pending;
      out.err = errField(err, { type: 'ConfirmError' });
    }
    return out;
  }

  /**
   * A list of `inf`'s kind in `namespace` (of the object named `name` only, when given) sent no earlier than
   * `notBefore`: one under way or scheduled that another request started (sent by then, and not more than
   * CONFIRM_SHARE_MS later than this one needs), or a new one, given up at `deadline`.
   */
  private kindList(inf: ResilientInformer, namespace: string, name: string | undefined, notBefore: number, deadline: number): KindList {
    const key = `${namespace}\u0000${inf.spec.kind}${name === undefined ? '' : `\u0000${name}`}`;
    const now = Date.now();
    const at = Math.max(now, notBefore);
    let lists = this.kindLists.get(key);
    const shared = lists?.find((l) => l.startedAt >= notBefore && l.startedAt <= at + CONFIRM_SHARE_MS);
    if (shared) return shared;
    const held = (async () => {
      if (at > now) await new Promise((resolve) => setTimeout(resolve, at - now));
      return this.withListSlot(deadline - this.confirmMinListMs, () => this.listHeld(inf, namespace, name, deadline));
    })();
    const list: KindList = { startedAt: at, held };
    if (!lists) this.kindLists.set(key, (lists = []));
    lists.push(list);
    const done = () => {
      const l = this.kindLists.get(key);
      const i = l ? l.indexOf(list) : -1;
      if (i < 0) return;
      l!.splice(i, 1);
      if (!l!.length) this.kindLists.delete(key);
    };
    held.then(done, done);
    return list;
  }

  /** `run` in one of the CONFIRM_LISTS_MAX list slots, waiting for one until `until` (then it rejects). */
  private withListSlot<T>(until: number, run: () => Promise<T>): Promise<T> {
    return this.listSlots.run(run, until, () => new Error(`no list slot free in the time this check has (at most ${this.listSlots.size} confirming lists at once)`));
  }

  /**
   * The objects of `inf`'s kind in `namespace` (only the one named `name`, when given: fieldSelector metadata.name,
   * one page) that claim a ServiceAccount, by name → claim key. A namespace list is paged as the informers' are,
   * from the page limit `inf` learned (a page over the page bytes is asked again with half as many). Given up after
   * CONFIRM_LIST_MS or at `deadline` (not sent with less than CONFIRM_MIN_LIST_MS left). Throws when it fails.
   */
  private async listHeld(inf: ResilientInformer, namespace: string, name: string | undefined, deadline: number): Promise<Map<string, string>> {
    const ms = Math.min(this.confirmListMs, deadline - Date.now());
    if (ms < this.confirmMinListMs) throw new Error('no time left for a list in the time this check has');
    return withDeadline(ms, async (signal) => {
      const held = new Map<string, string>();
      // by name: at most one object, no paging
      let limit = name === undefined ? inf.learnedPageLimit() : 0;
      let cont: string | undefined;
      for (;;) {
        const q = new URLSearchParams();
        if (inf.spec.labelSelector) q.set('labelSelector', inf.spec.labelSelector);
        if (name !== undefined) q.set('fieldSelector', `metadata.name=${name}`);
        if (limit) q.set('limit', String(limit));
        if (cont) q.set('continue', cont);
        let page: any;
        try {
          page = await kubeGetJson(this.kc, `${namespacedPath(inf.spec.path, namespace)}?${q}`, { maxBytes: this.pageBytes, timeoutMs: ms, signal });
        } catch (err) {
          if (err instanceof ResponseTooLargeError && limit > 1 && !signal.aborted) {
            limit = Math.max(1, limit >> 1);
            continue;
          }
          throw err;
        }
        if (!isObject(page) || !Array.isArray(page.items)) throw new Error('list response has no items');
        for (const it of page.items) {
          if (!isObject(it) || !isObject(it.metadata) || typeof it.metadata.name !== 'string' || it.metadata.namespace !== namespace) continue;
          if (name !== undefined && it.metadata.name !== name) continue;
          const claim = this.claims(inf.spec.slim(it));
          if (claim !== null) held.set(it.metadata.name, claim);
        }
        cont = isObject(page.metadata) && typeof page.metadata.continue === 'string' && page.metadata.continue ? page.metadata.continue : undefined;
        if (!cont) return held;
        if (signal.aborted) throw signal.reason;
      }
    });
  }

  /**
   * What a check found, into `out`, the metric and the log: confirmed claims are marked (not listed again), dropped
   * ones forgotten (unless a later admission replaced them, or another request forgot them first). One log line per
   * kind and result, naming the first few claims, however many there are. `why`: how dropped ones were found.
   */
  private settle(r: KindResult, out: ConfirmResult, why: 'listed' | 'unstorable'): void {
    out.confirmed += r.confirmed.length;
    out.dropped += r.dropped.length;
    out.unanswered += r.unanswered.length;
    let confirmed = 0;
    for (const a of r.confirmed)
      if (!a.confirmed) {
        a.confirmed = true;
        confirmed++;
      }
    if (confirmed) admittedClaimsChecked.inc({ result: 'confirmed' }, confirmed);
    // a later admission of the same object (noted again meanwhile) is not this one
    const gone = r.dropped.filter((a) => this.admitted.get(`${a.kind}\u0000${a.namespace}\u0000${a.name}`) === a);
    for (const a of gone) this.forgetAdmitted(`${a.kind}\u0000${a.namespace}\u0000${a.name}`);
    if (gone.length) {
      admittedClaimsChecked.inc({ result: 'dropped' }, gone.length);
      const { names, sa, fields, one } = describeClaims(gone);
      const reason =
        why === 'unstorable'
          ? 'named as no object the API server stores can be (only a request that did not come from the API server carries such a name)'
          : `admitted by this webhook but not stored by the API server ${this.confirmAfterMs / 1000} s later (refused after the webhooks, by another ` +
            'webhook or a quota; stored later still, after a slow validating webhook; or a request that did not come from the API server)';
      this.log.warn(
        { ...fields, admittedMsAgo: Date.now() - gone[0]!.at },
        `unique-service-account: forgot ${names} on ${sa}, ${reason}; ${one ? 'it no longer counts as a claim' : 'they no longer count as claims'}`,
      );
    }
    if (r.unanswered.length) {
      admittedClaimsChecked.inc({ result: 'unanswered' }, r.unanswered.length);
      const { names, sa, fields, one } = describeClaims(r.unanswered);
      this.log.warn(
        { ...fields, err: r.err ?? { type: 'ConfirmError', message: 'no answer' } },
        `unique-service-account: could not check with the API server whether ${names}, admitted moments ago on ${sa}, ${one ? 'was' : 'were'} stored; ` +
          `${one ? 'it still counts, so the denial it causes stands' : 'they still count, so the denial they cause stands'}`,
      );
    }
  }

  private forgetAdmitted(key: string): void {
    const a = this.admitted.get(key);
    if (!a) return;
    this.admitted.delete(key);
    const set = this.admittedOn.get(a.claim);
    if (!set) return;
    set.delete(key);
    if (set.size === 0) this.admittedOn.delete(a.claim);
  }

  /**
   * A Job `/validate` is admitting (a CREATE; never a dry run) and its controller owner, as controllerOf reads it:
   * the Job controller creates its pods right after it, before its watch event reaches the cache, and until then the
   * lookup answers for it with this owner (a KEDA ScaledJob, the CronJob of `kubectl create job --from=cronjob/x`), so
   * its pods count as that agent. Kept JOB_OWNER_TTL_MS at most, and at most ADMITTED_MAX of them (the oldest go
   * first); a Job refused after the webhooks is never created, and its pods never come.
   */
  noteJobOwner(namespace: string, name: string, owner: OwnerRef | null): void {
    if (!name) return;
    const key = `${namespace}\u0000${name}`;
    const now = Date.now();
    this.jobOwners.delete(key);
    for (const [k, j] of this.jobOwners) {
      if (j.until > now && this.jobOwners.size < ADMITTED_MAX) break;
      this.jobOwners.delete(k);
    }
    this.jobOwners.set(key, { owner: owner && { ...owner }, until: now + JOB_OWNER_TTL_MS });
  }

  private recentJobOwner(namespace: string, name: string): OwnerRef | null | undefined {
    const key = `${namespace}\u0000${name}`;
    const j = this.jobOwners.get(key);
    if (!j) return undefined;
    if (j.until > Date.now()) return j.owner;
    this.jobOwners.delete(key);
    return undefined;
  }

  /** Whether the cache holds objects of this kind (Pods and the workload kinds it lists); an Argo Rollout, say, it does not. */
  holdsKind(kind: string): boolean {
    return kind !== 'Namespace' && kind !== 'CSIDriver' && kind !== 'ConfigMap' && this.byKind.has(kind);
  }

  /**
   * The lookup with a Deployment or StatefulSet being admitted in `namespace` answering for its selector: when it
   * is (re-)created after `kubectl delete --cascade=orphan` it is not cached yet, and its orphans are the same agent
   * only if it adopts them. One without a selector (the API server never admits that) changes nothing.
   */
  private lookupAdmitting(obj: KubeObject, namespace: string): OwnerLookup {
    const kind = obj.kind;
    const name = isObject(obj.metadata) ? obj.metadata.name : undefined;
    const selector = isObject(obj.spec) ? obj.spec.selector : undefined;
    if ((kind !== 'Deployment' && kind !== 'StatefulSet') || typeof name !== 'string' || !isObject(selector)) return this.lookup;
    const base = this.lookup;
    const lookup: OwnerLookup = (k, ns, n) => base(k, ns, n);
    lookup.selector = (k, ns, n) => (k === kind && ns === namespace && n === name ? selector : base.selector?.(k, ns, n));
    lookup.labels = base.labels;
    return lookup;
  }

  /** Every (namespace, serviceAccount) group with its claims, for the audit. */
  *claimGroups(): Generator<AgentRef[]> {
    for (const set of this.index.values()) {
      const out: AgentRef[] = [];
      for (const k of set) {
        const r = this.refOf(k);
        if (r) out.push(r);
      }
      yield out;
    }
  }

  /** Slimmed cached objects of a kind (Pods and workloads keep labels, owner and ServiceAccount only). */
  objects(kind: string): KubeObject[] {
    return this.byKind.get(kind)?.list() ?? [];
  }

  configMaps(): KubeObject[] {
    return this.configMapInformers.flatMap((i) => i.list());
  }

  namespaceLabels(namespace: string): Record<string, string> | undefined {
    const inf = this.byKind.get('Namespace')!;
    if (!inf.synced) return undefined;
    const ns = inf.get(namespace);
    return ns ? { ...(ns.metadata?.labels ?? {}) } : undefined;
  }

  csiDriverExists(name: string): boolean | undefined {
    const inf = this.byKind.get('CSIDriver')!;
    if (!inf.synced) return undefined;
    return inf.get(name) !== undefined;
  }

  ready(): boolean {
    return this.informers.every((i) => i.synced);
  }

  cacheAgeSeconds(now = Date.now()): number {
    let oldest = now;
    for (const i of this.informers) {
      if (!i.synced) oldest = Math.min(oldest, this.startedAt);
      // not connected, whatever the reason: an error, or a clean close whose next watch is not answered
      else if (i.staleSince !== undefined) oldest = Math.min(oldest, i.staleSince);
    }
    return Math.max(0, (now - oldest) / 1000);
  }

  detail(): Record<string, unknown> {
    const notSynced = this.informers.filter((i) => !i.synced).map((i) => i.spec.id);
    const errors: Record<string, string> = {};
    for (const i of this.informers) if (i.lastError && (i.brokenSince !== undefined || !i.synced)) errors[i.spec.id] = i.lastError;
    const out: Record<string, unknown> = {
      cluster: this.ready() ? 'synced' : 'syncing',
      cacheAgeSeconds: Math.round(this.cacheAgeSeconds()),
      agentClaims: this.claimOf.size,
    };
    if (notSynced.length) out.notSynced = notSynced;
    if (Object.keys(errors).length) out.errors = errors;
    return out;
  }
}
