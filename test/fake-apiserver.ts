// A stand-in for the Kubernetes API server, for cluster-state tests. No kube-apiserver can be installed
// on the machines these tests run on, so this in-test HTTP server replays what one sends over the wire:
// list responses (`{kind: PodList, metadata: {resourceVersion, continue}, items}`, paged with limit and
// continue, filtered by labelSelector and by fieldSelector metadata.name), watch streams (`?watch=true`: one JSON
// event `{"type": "ADDED", "object": {...}}` per line, chunked, held open), `Status` bodies for 403 Forbidden, and the
// OIDC discovery document. Lists in one namespace (`/api/v1/namespaces/<ns>/pods`,
// `/apis/apps/v1/namespaces/<ns>/deployments`) answer as the cluster-wide list does, with that namespace's objects.
// The real @kubernetes/client-node KubeConfig, Watch and ListWatch talk to it.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { configFromObject } from '../webhook/config.ts';
import type { ValidationOptions, ValidationService } from '../webhook/validation.ts';
import { startValidation } from '../webhook/validation.ts';

type Obj = Record<string, any>;

const LIST_KINDS: Record<string, { kind: string; apiVersion: string; itemKind: string }> = {
  '/api/v1/pods': { kind: 'PodList', apiVersion: 'v1', itemKind: 'Pod' },
  '/api/v1/namespaces': { kind: 'NamespaceList', apiVersion: 'v1', itemKind: 'Namespace' },
  '/api/v1/configmaps': { kind: 'ConfigMapList', apiVersion: 'v1', itemKind: 'ConfigMap' },
  '/api/v1/serviceaccounts': { kind: 'ServiceAccountList', apiVersion: 'v1', itemKind: 'ServiceAccount' },
  '/apis/apps/v1/deployments': { kind: 'DeploymentList', apiVersion: 'apps/v1', itemKind: 'Deployment' },
  '/apis/apps/v1/statefulsets': { kind: 'StatefulSetList', apiVersion: 'apps/v1', itemKind: 'StatefulSet' },
  '/apis/apps/v1/daemonsets': { kind: 'DaemonSetList', apiVersion: 'apps/v1', itemKind: 'DaemonSet' },
  '/apis/apps/v1/replicasets': { kind: 'ReplicaSetList', apiVersion: 'apps/v1', itemKind: 'ReplicaSet' },
  '/apis/batch/v1/jobs': { kind: 'JobList', apiVersion: 'batch/v1', itemKind: 'Job' },
  '/apis/batch/v1/cronjobs': { kind: 'CronJobList', apiVersion: 'batch/v1', itemKind: 'CronJob' },
  '/apis/storage.k8s.io/v1/csidrivers': { kind: 'CSIDriverList', apiVersion: 'storage.k8s.io/v1', itemKind: 'CSIDriver' },
};

const RESOURCE_OF: Record<string, [string, string]> = {
  '/api/v1/pods': ['pods', ''],
  '/api/v1/namespaces': ['namespaces', ''],
  '/api/v1/configmaps': ['configmaps', ''],
  '/api/v1/serviceaccounts': ['serviceaccounts', ''],
  '/apis/apps/v1/deployments': ['deployments', 'apps'],
  '/apis/apps/v1/statefulsets': ['statefulsets', 'apps'],
  '/apis/apps/v1/daemonsets': ['daemonsets', 'apps'],
  '/apis/apps/v1/replicasets': ['replicasets', 'apps'],
  '/apis/batch/v1/jobs': ['jobs', 'batch'],
  '/apis/batch/v1/cronjobs': ['cronjobs', 'batch'],
  '/apis/storage.k8s.io/v1/csidrivers': ['csidrivers', 'storage.k8s.io'],
};

/**
 * Whether a labelSelector in its string form selects `labels`: terms joined by commas, each `key` (exists), `!key`,
 * `key=value` (or `==`) or `key!=value`, as the API server reads them (set-based `in`/`notin` are not used here).
 */
function selects(selector: string, labels: Record<string, unknown>): boolean {
  return selector.split(',').every((term) => {
    const t = term.trim();
    const ne = /^([^!=]+)!=(.*)$/.exec(t);
    if (ne) return labels[ne[1]!.trim()] !== ne[2]!.trim();
    const eq = /^([^!=]+)==?(.*)$/.exec(t);
    if (eq) return labels[eq[1]!.trim()] === eq[2]!.trim();
    if (t.startsWith('!')) return !Object.hasOwn(labels, t.slice(1).trim());
    return Object.hasOwn(labels, t);
  });
}

function key(o: Obj): string {
  return `${o.metadata?.namespace ?? ''}/${o.metadata?.name}`;
}

export class FakeApiServer {
  readonly server: http.Server;
  url = '';
  private rv = 1000;
  private readonly store = new Map<string, Map<string, Obj>>();
  private readonly watchers = new Map<string, Set<http.ServerResponse>>();
  private readonly watchWaiters: { path: string; n: number; resolve: () => void }[] = [];
  private readonly connectsByPath = new Map<string, number>();
  /**
   * `list <path>` / `watch <path>` entries answered with 403 Forbidden; `list <path> <name>` for a request whose
   * fieldSelector is `metadata.name=<name>` only (a name RBAC's resourceNames does not grant)
   */
  readonly forbidden = new Set<string>();
  /**
   * Paths whose watch requests are accepted and never answered (no response headers), as an overloaded API server
   * or a load balancer holding connections to a dead backend does.
   */
  readonly hungWatches = new Set<string>();
  private readonly held = new Set<http.ServerResponse>();
  /**
   * Paths (cluster-wide, e.g. PATHS.pods) whose lists in one namespace are accepted and never answered, as an
   * overloaded API server does.
   */
  readonly hungNamespacedLists = new Set<string>();
  /** Paths whose watch requests get their response headers and are then reset (TCP) after 5 ms: a flapping watch. */
  readonly flappingWatches = new Set<string>();
  /** Cluster-wide list requests are answered this many ms late (0: at once); listsInFlightMax: the most unanswered at once. */
  listDelayMs = 0;
  listsInFlightMax = 0;
  private listsInFlight = 0;
  /** every request: `GET <path>?<query>` */
  readonly requests: string[] = [];
  discovery: Obj | null = null;

  constructor() {
    this.server = http.createServer((req, res) => this.handle(req, res));
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    for (const set of this.watchers.values()) for (const r of set) r.destroy();
    for (const r of this.held) r.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** A KubeConfig for this server, as a user's kubeconfig file would give (token auth, http with skipTLSVerify). */
  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'fake', server: this.url, skipTLSVerify: true }],
      users: [{ name: 'webhook', token: 'test-token' }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'webhook' }],
      currentContext: 'fake',
    });
    return kc;
  }

  private objects(path: string): Map<string, Obj> {
    let m = this.store.get(path);
    if (!m) this.store.set(path, (m = new Map()));
    return m;
  }

  private stamp(path: string, o: Obj): Obj {
    const meta = LIST_KINDS[path];
    return {
      apiVersion: meta.apiVersion,
      kind: meta.itemKind,
      ...o,
      metadata: { uid: `uid-${key(o)}`, ...o.metadata, resourceVersion: String(++this.rv) },
    };
  }

  /** Seeds objects before the informers list them. */
  seed(path: string, items: Obj[]): void {
    for (const o of items) this.objects(path).set(key(o), this.stamp(path, o));
  }

  /** Removes every object seeded on `path` before the informers list them. */
  clear(path: string): void {
    this.objects(path).clear();
  }

  /** Changes the store and sends the event to every open watch on `path`. */
  emit(path: string, type: 'ADDED' | 'MODIFIED' | 'DELETED', o: Obj): void {
    const stamped = this.stamp(path, o);
    if (type === 'DELETED') this.objects(path).delete(key(o));
    else this.objects(path).set(key(o), stamped);
    const line = `${JSON.stringify({ type, object: stamped })}\n`;
    for (const r of this.watchers.get(path) ?? []) r.write(line);
  }

  /** Breaks every open watch on `path` abruptly (TCP reset), as a crashed API server or a broken LB would. */
  dropWatches(path: string): number {
    const set = this.watchers.get(path) ?? new Set();
    const n = set.size;
    for (const r of set) r.socket?.destroy();
    set.clear();
    return n;
  }

  /** Ends every open watch on `path` cleanly (the chunked body is finished), as an API server does at its watch timeout. */
  closeWatches(path: string): number {
    const set = this.watchers.get(path) ?? new Set();
    const n = set.size;
    for (const r of set) r.end();
    set.clear();
    return n;
  }

  /** Writes a raw line to every open watch on `path` (a malformed event, say). */
  writeLine(path: string, line: string): void {
    for (const r of this.watchers.get(path) ?? []) r.write(`${line}\n`);
  }

  /** Requests accepted and not answered (hung watches and lists) still open. */
  heldRequests(): number {
    return this.held.size;
  }

  openWatches(path: string): number {
    return this.watchers.get(path)?.size ?? 0;
  }

  /** Resolves once `path` has seen `n` watch connections in total. */
  waitForWatch(path: string, n = 1): Promise<void> {
    if ((this.connectsByPath.get(path) ?? 0) >= n) return Promise.resolve();
    return new Promise((resolve) => this.watchWaiters.push({ path, n, resolve }));
  }

  watchConnects(path: string): number {
    return this.connectsByPath.get(path) ?? 0;
  }

  private forbid(res: http.ServerResponse, verb: string, path: string): void {
    const [resource, group] = RESOURCE_OF[path] ?? ['unknown', ''];
    res.writeHead(403, { 'Content-Type': 'application/json' });
    res.end(
      JSON.stringify({
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message: `${resource} is forbidden: User "system:serviceaccount:kagenti-system:kagenti-webhook" cannot ${verb} resource "${resource}" in API group "${group}" at the cluster scope`,
        reason: 'Forbidden',
        details: { kind: resource },
        code: 403,
      }),
    );
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const u = new URL(req.url ?? '/', 'http://x');
    this.requests.push(`${req.method} ${u.pathname}${u.search}`);
    if (u.pathname === '/.well-known/openid-configuration') {
      if (!this.discovery) {
        res.writeHead(404, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'the server could not find the requested resource', reason: 'NotFound', code: 404 }));
        return;
      }
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(this.discovery));
      return;
    }
    // a list in one namespace: the cluster-wide path's objects in that namespace
    const inNs = /^(\/api\/v1|\/apis\/[^/]+\/[^/]+)\/namespaces\/([^/]+)\/([^/]+)$/.exec(u.pathname);
    const path = inNs && LIST_KINDS[`${inNs[1]}/${inNs[3]}`] ? `${inNs[1]}/${inNs[3]}` : u.pathname;
    const namespace = path !== u.pathname ? decodeURIComponent(inNs![2]!) : undefined;
    const meta = LIST_KINDS[path];
    if (!meta) {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404, message: 'not found' }));
      return;
    }
    const isWatch = u.searchParams.get('watch') === 'true';
    const field = u.searchParams.get('fieldSelector');
    const nameFilter = field?.startsWith('metadata.name=') ? field.slice('metadata.name='.length) : undefined;
    const verb = isWatch ? 'watch' : 'list';
    if (this.forbidden.has(`${verb} ${path}`) || (nameFilter !== undefined && this.forbidden.has(`${verb} ${path} ${nameFilter}`)))
      return this.forbid(res, verb, path);
    if (namespace !== undefined && !isWatch && this.hungNamespacedLists.has(path)) {
      this.held.add(res);
      res.on('close', () => this.held.delete(res));
      return;
    }
    if (isWatch && this.hungWatches.has(u.pathname)) {
      this.held.add(res);
      res.on('close', () => this.held.delete(res));
      return;
    }
    if (isWatch) {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
      res.flushHeaders();
      if (this.flappingWatches.has(u.pathname)) {
        this.held.add(res);
        res.on('close', () => this.held.delete(res));
        setTimeout(() => res.socket?.destroy(), 5);
        return;
      }
      let set = this.watchers.get(u.pathname);
      if (!set) this.watchers.set(u.pathname, (set = new Set()));
      set.add(res);
      res.on('close', () => set!.delete(res));
      const n = (this.connectsByPath.get(u.pathname) ?? 0) + 1;
      this.connectsByPath.set(u.pathname, n);
      for (let i = this.watchWaiters.length - 1; i >= 0; i--) {
        const w = this.watchWaiters[i];
        if (w.path === u.pathname && n >= w.n) {
          this.watchWaiters.splice(i, 1);
          w.resolve();
        }
      }
      return;
    }
    if (this.listDelayMs > 0 && namespace === undefined) {
      this.listsInFlightMax = Math.max(this.listsInFlightMax, ++this.listsInFlight);
      setTimeout(() => {
        this.listsInFlight--;
        this.answerList(res, u, path, namespace, nameFilter);
      }, this.listDelayMs);
      return;
    }
    this.answerList(res, u, path, namespace, nameFilter);
  }

  private answerList(res: http.ServerResponse, u: URL, path: string, namespace: string | undefined, nameFilter: string | undefined): void {
    const meta = LIST_KINDS[path];
    let items = [...this.objects(path).values()];
    if (namespace !== undefined) items = items.filter((o) => o.metadata?.namespace === namespace);
    if (nameFilter !== undefined) items = items.filter((o) => o.metadata?.name === nameFilter);
    const labelSelector = u.searchParams.get('labelSelector');
    if (labelSelector) items = items.filter((o) => selects(labelSelector, o.metadata?.labels ?? {}));
    const limit = Number(u.searchParams.get('limit') ?? '0');
    const offset = Number(u.searchParams.get('continue') ?? '0');
    let cont: string | undefined;
    if (limit > 0) {
      if (offset + limit < items.length) cont = String(offset + limit);
      items = items.slice(offset, offset + limit);
    }
    // items in a list carry no kind/apiVersion, as the API server sends them
    const bare = items.map(({ kind: _k, apiVersion: _a, ...rest }) => rest);
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(
      JSON.stringify({
        kind: meta.kind,
        apiVersion: meta.apiVersion,
        metadata: { resourceVersion: String(this.rv), ...(cont ? { continue: cont } : {}) },
        items: bare,
      }),
    );
  }
}

export const PATHS = {
  pods: '/api/v1/pods',
  namespaces: '/api/v1/namespaces',
  configmaps: '/api/v1/configmaps',
  serviceaccounts: '/api/v1/serviceaccounts',
  deployments: '/apis/apps/v1/deployments',
  statefulsets: '/apis/apps/v1/statefulsets',
  daemonsets: '/apis/apps/v1/daemonsets',
  replicasets: '/apis/apps/v1/replicasets',
  jobs: '/apis/batch/v1/jobs',
  cronjobs: '/apis/batch/v1/cronjobs',
  csidrivers: '/apis/storage.k8s.io/v1/csidrivers',
} as const;

/** A pino-compatible logger that records lines (level, msg, fields) for assertions. */
export function recordingLogger() {
  const lines: { level: string; msg: string; [k: string]: unknown }[] = [];
  const make = (bindings: Record<string, unknown> = {}): any => {
    const at = (level: string) => (a: unknown, b?: unknown) => {
      if (typeof a === 'string') lines.push({ level, msg: a, ...bindings });
      else lines.push({ level, msg: String(b ?? ''), ...bindings, ...(a as object) });
    };
    return {
      level: 'debug',
      trace: at('trace'),
      debug: at('debug'),
      info: at('info'),
      warn: at('warn'),
      error: at('error'),
      fatal: at('fatal'),
      child: (b: Record<string, unknown>) => make({ ...bindings, ...b }),
    };
  };
  return { log: make(), lines };
}

/** Polls `cond` every 10 ms until true (a condition wait, not a timed assertion); fails after `ms`. */
export async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * The validation service with cluster state from a fake API server seeded by `seed`: an external issuer unless the
 * config says otherwise, a fast backoff, no service-account token (issuer detection reads the config), and the audit
 * out of the way. `options` overrides any of the service's options (a kubeconfig, the backoff, timeouts).
 */
export async function startOnFakeApi(
  seed: (api: FakeApiServer) => void,
  configInput: Record<string, unknown> = {},
  options: (api: FakeApiServer) => Partial<ValidationOptions> = () => ({}),
): Promise<{ api: FakeApiServer; svc: ValidationService; lines: ReturnType<typeof recordingLogger>['lines']; close: () => Promise<void> }> {
  const api = new FakeApiServer();
  seed(api);
  await api.start();
  const { log, lines } = recordingLogger();
  const svc = await startValidation({
    config: configFromObject({ tokenReview: { issuer: 'external' }, ...configInput }),
    log,
    cluster: 'auto',
    kubeConfig: api.kubeConfig(),
    backoff: { baseMs: 20, maxMs: 200 },
    readToken: async () => {
      throw Object.assign(new Error('no token'), { code: 'ENOENT' });
    },
    auditIntervalMs: 60_000,
    ...options(api),
  });
  return {
    api,
    svc,
    lines,
    close: async () => {
      await svc.close();
      await api.stop();
    },
  };
}
