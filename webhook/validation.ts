// Validation service: the object the server asks about policy and cluster state. `/validate` decisions,
// the opt-in ConfigMap remediation for `/mutate`, namespace labels and CSIDriver lookups for injection,
// readiness, and the background audit. Read-only: nothing here writes to the cluster.
import type { KubeConfig } from './kube-client.ts';
import type { Logger } from 'pino';
import type { AdmissionRequest, Decision, KubeObject } from './admission.ts';
import { allow, allowWithPatch, decisionFor, deny, internalError, MAX_WARNING_CHARS, POD_VALIDATE_WARNING_CHARS, requestRef, shown, toWarnings } from './admission.ts';
import type { Config } from './config.ts';
import type { BackoffOptions } from './cluster.ts';
import { controllerOf, identityKey, objectName, objectNamespace, templateOwner } from './identity.ts';
import { HelmChecker } from './helm-check.ts';
import { checkHelmRelease, isHelmRelease } from './helm-release.ts';
import type { HelmReleaseResult } from './helm-release.ts';
import { IssuerDetector } from './issuer.ts';
import { Gauge, PREFIX, clusterStateEnabled, registry, ruleViolations } from './metrics.ts';
import type { AgentRef, IssuerInfo, RuleName, Violation } from './rules.ts';
import {
  RULE_NAMES,
  TOKEN_REVIEW_KEY,
  agentOf,
  templateWorkload,
  checkAgentLabelChange,
  checkInjection,
  checkMissingTokenReview,
  checkObject,
  checkUnique,
  checkUniqueSince,
  checkToolSharesAgent,
  cap,
  dedicatedDenies,
  describeIssuer,
  noteBeforeFix,
  quoted,
  samePodTemplate,
  severityFor,
  toolsAsAgents,
} from './rules.ts';
import { isWorkloadKind } from './workloads.ts';
import type { TemplateOwner } from './workloads.ts';
import { isObject, jsonEqual } from './json.ts';
import { MAX_WAITING_BODY_BYTES } from './limits.ts';
import { ANNOTATION_STATUS, csiDriverMissing, ephemeralContainerWarnings } from './inject.ts';
import { cappedText, errField } from './log-fields.ts';

/** Metadata an UPDATE of an object being deleted may change without being checked again. */
const BOOKKEEPING = ['finalizers', 'managedFields', 'resourceVersion', 'generation', 'deletionTimestamp', 'deletionGracePeriodSeconds'];

/** Whether two versions of an object differ at most in their status and BOOKKEEPING metadata. */
function sameButBookkeeping(obj: KubeObject, old: KubeObject | null | undefined): boolean {
  if (!isObject(old)) return false;
  const strip = (o: KubeObject): KubeObject => {
    const { status: _status, ...rest } = o;
    if (!isObject(o.metadata)) return rest;
    const metadata: KubeObject = { ...o.metadata };
    for (const k of BOOKKEEPING) delete metadata[k];
    return { ...rest, metadata };
  };
  try {
    return jsonEqual(strip(obj), strip(old));
  } catch (err) {
    // nested deeper than the stack allows (only a client other than the API server can send that): changed, so the
    // object is checked, as samePodTemplate does
    if (err instanceof RangeError) return false;
    throw err;
  }
}

export interface ValidationService {
  /**
   * Answer a `/validate` AdmissionReview request (never throws; denials are Decisions), from the cache alone: a
   * unique-service-account denial that rests only on agents admitted moments ago stands unchecked (see answer).
   */
  validate(req: AdmissionRequest): Decision;
  /**
   * What the server answers at `/validate`: validate()'s decision, except that a unique-service-account denial
   * resting only on agents this webhook admitted moments ago, which the cluster cache does not hold yet, is first
   * checked with the API server (ClusterState.confirmAdmitted; a promise then, and only then, of at most about 4 s).
   * Agents it does not hold are forgotten and the request is decided again without them. `bodyBytes`: the size of
   * the request's body (the server passes it): a request whose check would make the bodies of the requests waiting
   * for one exceed MAX_WAITING_BODY_BYTES is not checked, and is answered at once with the denial as it stands (an
   * `unanswered` check). Without it the request counts as 0 bytes. Never rejects.
   */
  answer?(req: AdmissionRequest, bodyBytes?: number): Decision | Promise<Decision>;
  /**
   * The same answer for a request whose check is too heavy for the event loop (a Helm release record: its
   * manifest is linted in a child process, within a time budget; see helm-check.ts), or undefined for every
   * other request, which validate() answers. Never rejects.
   */
  validateLater?(req: AdmissionRequest): Promise<Decision> | undefined;
  /**
   * Called by `/mutate` for ConfigMaps (tokenReview.action: mutate remediation). Returns null when
   * it has nothing to do with this request; otherwise the decision (possibly with a patch).
   */
  mutateConfigMap(req: AdmissionRequest): Decision | null;
  /** Labels of a namespace from the cache, or undefined when unknown (no cluster state / not cached). */
  namespaceLabels(namespace: string): Record<string, string> | undefined;
  /** Whether a CSIDriver of that name exists; undefined when unknown (no cluster state). */
  csiDriverExists(name: string): boolean | undefined;
  /**
   * The workload a controller's pod is made from (rules.ts templateWorkload under the caller's config, with the
   * cache); undefined for a pod of its own.
   */
  podWorkload(pod: KubeObject, namespace: string, config: Config): TemplateOwner | undefined;
  /** For /readyz: ready is false until the first sync. detail goes into the JSON body. */
  readiness(): { ready: boolean; detail: Record<string, unknown> };
  close(): Promise<void> | void;
}

export interface ValidationOptions {
  config: Config;
  log: Logger;
  /** `auto`: kubeconfig / in-cluster when available, else none. `none`: no cluster state. */
  cluster: 'auto' | 'none';
  /** Overrides the resolved connection (tests): a KubeConfig, or null for none. Ignored with cluster: none. */
  kubeConfig?: KubeConfig | null;
  /** Background audit period; default 5 minutes. */
  auditIntervalMs?: number;
  /** Informer restart backoff; default 1 s doubling to 60 s. */
  backoff?: BackoffOptions;
  /** Reads the service-account token file (tests). */
  readToken?: (path: string) => Promise<string>;
  /** Time budget for one Helm release record's check (default HELM_CHECK_MS; tests set less). */
  helmCheckMs?: number;
  /** The most one list page of the cluster cache may hold, in bytes (default PAGE_BYTES; tests set less). */
  listPageBytes?: number;
  /** the watches' timeouts (response headers, then silence), default 120 s (tests set less) */
  watchTimeoutMs?: number;
  /** The checks of admitted agents with the API server: CONFIRM_AFTER_MS, CONFIRM_LIST_MS and CONFIRM_LISTS_MAX (tests set less). */
  confirmAdmitted?: { afterMs?: number; listMs?: number; maxLists?: number };
}

/** A first pass (validateUnsafe) whose denial rests only on agents admitted moments ago: check those, then decide. */
interface Unconfirmed {
  unconfirmed: { namespace: string; serviceAccount: string; upTo: number };
}

/** Audit findings logged per rule and run; the rest are counted only. */
const AUDIT_LOGGED = 50;
/** Agents the background audit walks before it gives the event loop a turn. */
const AUDIT_CHUNK = 1000;

const policyViolations = new Gauge({
  name: `${PREFIX}policy_violations`,
  help: 'Violations found by the last background audit of the cached cluster state, by rule.',
  labelNames: ['rule'] as const,
  registers: [registry],
});

export { toWarnings };

function tokenValue(obj: KubeObject | null | undefined): string {
  if (!isObject(obj)) return 'absent';
  const d = isObject(obj.data) && Object.hasOwn(obj.data, TOKEN_REVIEW_KEY) ? JSON.stringify(obj.data[TOKEN_REVIEW_KEY]) : 'absent';
  const b = isObject(obj.binaryData) && Object.hasOwn(obj.binaryData, TOKEN_REVIEW_KEY) ? 'binary' : '';
  return `${d}${b}`;
}

function requestNamespace(req: AdmissionRequest, obj: KubeObject): string {
  if (typeof req.namespace === 'string' && req.namespace) return req.namespace;
  return objectNamespace(obj, 'default');
}

function configMapName(req: AdmissionRequest, obj: KubeObject): string {
  const n = objectName(obj);
  return n === '<unnamed>' && req.name ? req.name : n;
}

/**
 * An injection denial on a workload UPDATE that leaves the pod template as it was: a warning, so an unrelated edit
 * (a label, a finalizer, a no-op apply) is never blocked; its pods are denied at /mutate until the template is fixed.
 */
function templateUnchanged(v: Violation): Violation {
  // The DaemonSet controller replaces a template's required node affinity with one naming the node, in every pod it
  // creates: /mutate never sees the affinity that picks Windows nodes, injects, and the pods fail there.
  const note =
    v.kind === 'DaemonSet' && v.rule === 'unsupported-os' && v.path.endsWith('.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution')
      ? "Not denied: this update leaves the pod template as it was. The DaemonSet controller replaces this node affinity with the node's name in each pod it creates, so the pods are injected and fail on those nodes until it is fixed."
      : 'Not denied: this update leaves the pod template as it was, and its pods are denied until it is fixed.';
  return warnedWith(v, note);
}

/** A denial given as a warning, with why it is not denied said before its fix. */
function warnedWith(v: Violation, note: string): Violation {
  return { ...v, severity: 'warning', message: noteBeforeFix(v.message, note) };
}

function immutableUnchanged(v: Violation): Violation {
  if (v.severity !== 'error') return v;
  return warnedWith(v, "Not denied: this update cannot change an immutable ConfigMap's data, and kagent's controller reads it as it is until it is recreated.");
}

export async function startValidation(opts: ValidationOptions): Promise<ValidationService> {
  const { config, log } = opts;
  let kc: KubeConfig | null = null;
  // cluster.ts (and @kubernetes/client-node, ~90 MB of RSS) is loaded only when cluster state is wanted.
  const clusterModule = opts.cluster !== 'none' ? await import('./cluster.ts') : null;
  if (clusterModule) kc = opts.kubeConfig !== undefined ? opts.kubeConfig : clusterModule.loadKubeConfig('auto', log);
  if (opts.cluster === 'auto' && !kc) {
    // in a pod (the API server's address is in the environment) this is a missing token, not a laptop: say it louder
    if (process.env.KUBERNETES_SERVICE_HOST)
      log.warn('running in a pod without a ServiceAccount token (automountServiceAccountToken: false?), and no kubeconfig: running without cluster state; unique-service-account and token-review-required are not checked');
    else log.info('no kubeconfig or in-cluster service account: running without cluster state');
  }
  clusterStateEnabled.set(kc ? 1 : 0);
  const noClusterWhy = opts.cluster === 'none' ? '--cluster none' : 'no kubeconfig or in-cluster account';

  const issuer = new IssuerDetector({ config, log, kubeConfig: kc, readToken: opts.readToken });
  const cluster = kc && clusterModule ? new clusterModule.ClusterState({ kubeConfig: kc, config, log, backoff: opts.backoff, pageBytes: opts.listPageBytes, watchTimeoutMs: opts.watchTimeoutMs, confirm: opts.confirmAdmitted }) : null;
  cluster?.start();
  await issuer.start();
  const helm = new HelmChecker({ config, log, budgetMs: opts.helmCheckMs });

  // ---- background audit ----------------------------------------------------------------------------
  async function audit(): Promise<Map<RuleName, number>> {
    const counts = new Map<RuleName, number>(RULE_NAMES.map((r) => [r, 0]));
    if (!cluster) return counts;
    const found: Violation[] = [];
    // unique-service-account: every agent of a group with another agent in it violates. Counted for all, and
    // checked (an O(group) message each) only for the ones that get logged, so a group of thousands of agents
    // on one ServiceAccount costs O(group), not O(group^2).
    let uniqueCount = 0;
    const uniqueOn = severityFor(config.policies['unique-service-account']) !== null;
    // The walk gives the event loop a turn after every AUDIT_CHUNK agents: in one go, 20,000 agent pods held it
    // about 120 ms, and admissions waited behind it. The cache may change between turns: the audit is a periodic
    // report, and the next one sees the change.
    let walked = 0;
    for (const group of cluster.claimGroups()) {
      walked += group.length;
      if (walked >= AUDIT_CHUNK) {
        walked = 0;
        await new Promise((resolve) => setImmediate(resolve));
        if (closed) return counts;
      }
      // one representative per agent: prefer the top-level workload over its pods
      const reps = new Map<string, AgentRef>();
      for (const ref of group) {
        const k = identityKey(ref);
        const cur = reps.get(k);
        if (!cur || (cur.source && !ref.source)) reps.set(k, ref);
      }
      const agents = [...reps.values()];
      if (agents.length > 1 && uniqueOn) {
        // checkUnique never counts the same workload against itself (a pod relabelled apart from its Deployment)
        const perWorkload = new Map<string, number>();
        for (const a of agents) perWorkload.set(`${a.kind}/${a.name}`, (perWorkload.get(`${a.kind}/${a.name}`) ?? 0) + 1);
        for (const a of agents) {
          if (agents.length === perWorkload.get(`${a.kind}/${a.name}`)) continue;
          if (++uniqueCount <= AUDIT_LOGGED) found.push(...checkUnique(a, agents, config));
        }
      }
      const sev = severityFor(config.policies['dedicated-service-account']);
      if (sev)
        for (const a of agents)
          if (a.serviceAccount === 'default') {
            const self = a.source ?? { kind: a.kind, name: a.name };
            found.push({
              rule: 'dedicated-service-account',
              severity: sev,
              kind: self.kind,
              namespace: a.namespace,
              name: self.name,
              path: '',
              message: `[dedicated-service-account] ${self.kind} ${a.namespace}/${self.name}: agent ${a.kind}/${a.name} runs as ServiceAccount "default". Any pod in the namespace can take that identity. Fix: give the agent its own ServiceAccount.`,
            });
          }
    }
    const iss = issuer.current();
    const configMaps = cluster.configMaps();
    for (const cm of configMaps) found.push(...checkObject(cm, { config, issuer: iss, immutable: cm.immutable === true }));
    found.push(...checkMissingTokenReview(cluster.objects('Deployment'), configMaps, config, iss));
    const logged = new Map<RuleName, number>();
    for (const v of found) {
      if (v.rule !== 'unique-service-account') counts.set(v.rule, (counts.get(v.rule) ?? 0) + 1);
      const n = (logged.get(v.rule) ?? 0) + 1;
      logged.set(v.rule, n);
      if (n <= AUDIT_LOGGED) log.warn({ audit: true, rule: v.rule, kind: v.kind, namespace: v.namespace, name: v.name, path: v.path }, v.message);
    }
    counts.set('unique-service-account', uniqueCount);
    for (const [rule, n] of counts)
      if (n > AUDIT_LOGGED) log.warn({ audit: true, rule, count: n }, `audit: ${n} ${rule} violations (first ${AUDIT_LOGGED} logged)`);
    for (const [rule, n] of counts) policyViolations.set({ rule }, n);
    return counts;
  }

  let auditTimer: NodeJS.Timeout | undefined;
  let waitTimer: NodeJS.Timeout | undefined;
  let closed = false;
  /** body bytes of the requests that answer() keeps waiting for a check with the API server (their parsed request is held) */
  let waitingBytes = 0;
  let auditing = false;
  const runAudit = () => {
    if (auditing) return; // the last one is still walking (a huge cluster, a short interval)
    auditing = true;
    audit()
      .catch((err) => log.error({ err: errField(err, { stack: true }) }, 'audit failed'))
      .finally(() => {
        auditing = false;
      });
  };
  if (cluster) {
    const waitForSync = () => {
      if (closed) return;
      if (cluster.ready()) {
        runAudit();
        auditTimer = setInterval(runAudit, opts.auditIntervalMs ?? 300_000);
        auditTimer.unref();
      } else {
        waitTimer = setTimeout(waitForSync, 1000);
        waitTimer.unref();
      }
    };
    waitForSync();
  }

  // ---- admission ----------------------------------------------------------------------------------
  /** The config with tools as agents: how a tool's identity is read while featureGates.injectTools is off. */
  const toolsAsAgentsConfig = toolsAsAgents(config);

  /**
   * A tool while featureGates.injectTools is off, on a ServiceAccount that an agent in the cache already uses: the
   * warning checkToolSharesAgent gives (a SPIRE selector that includes tool would give it that agent's identity).
   * Not for a controller's pod (its workload was warned when written), nor for an UPDATE that keeps the template.
   */
  function toolSharing(obj: KubeObject, ns: string, op: string | undefined, old: unknown, now: number): Violation[] {
    if (config.featureGates.injectTools || !cluster?.claimsSynced) return [];
    const tool = agentOf(obj, toolsAsAgentsConfig, ns, cluster.lookup, now);
    if (!tool || tool.source) return [];
    if (op === 'UPDATE' && isObject(old) && samePodTemplate(obj, old.kind === obj.kind ? old : { ...old, kind: obj.kind })) return [];
    return checkToolSharesAgent(tool, cluster.claimsOn(tool.namespace, tool.serviceAccount, obj, undefined, tool), config);
  }

  /** Why a request is not checked at all (operation, subresource, a delete in progress), or undefined. */
  function notChecked(req: AdmissionRequest): string | undefined {
    const obj = req.object;
    const op = req.operation;
    // of the subresources, only ephemeral containers being added to a pod (kubectl debug) are looked at
    const ephemeral = req.subResource === 'ephemeralcontainers' && op === 'UPDATE' && req.kind?.kind === 'Pod';
    if ((op !== 'CREATE' && op !== 'UPDATE') || !isObject(obj) || (req.subResource && !ephemeral)) return 'not checked (operation, subresource or no object)';
    // An object held by a finalizer after a delete still exists and can still be edited: only an UPDATE that
    // changes nothing the rules read (a controller removing its finalizer) goes through unchecked.
    if (isObject(obj.metadata) && obj.metadata.deletionTimestamp && op === 'UPDATE' && sameButBookkeeping(obj, req.oldObject))
      return 'being deleted; only finalizers or bookkeeping changed';
    return undefined;
  }

  /** The request's object with its kind, and whether it is a Helm release record to check (never kagent's ConfigMap). */
  function routed(req: AdmissionRequest): { obj: KubeObject; cmName: string; tokenReviewConfigMap: boolean; helmRecord: boolean } {
    const kind = req.kind?.kind;
    const obj = req.object as KubeObject;
    const objWithKind: KubeObject = obj.kind === kind ? obj : { ...obj, kind };
    const cmName = kind === 'ConfigMap' ? configMapName(req, objWithKind) : '';
    const tokenReviewConfigMap = kind === 'ConfigMap' && config.tokenReview.configMapNames.includes(cmName);
    return { obj: objWithKind, cmName, tokenReviewConfigMap, helmRecord: !tokenReviewConfigMap && isHelmRelease(objWithKind) };
  }

  /**
   * `pass.confirm`: a denial resting only on admitted agents not checked yet is returned as Unconfirmed rather than
   * decided. `pass.upTo`: only the admitted agents noted up to then count (the decision after their check: those
   * admitted while it waited are left out, or a stream of forged requests would keep every check from ending).
   */
  function validateUnsafe(req: AdmissionRequest, pass: { confirm?: boolean; upTo?: number } = {}): Decision | Unconfirmed {
    const kind = req.kind?.kind;
    const obj = req.object as KubeObject;
    const op = req.operation;
    const skip = notChecked(req);
    if (skip) return decisionFor(allow(req.uid), [], { skipped: skip });
    const { obj: objWithKind, cmName, tokenReviewConfigMap, helmRecord } = routed(req);
    if (helmRecord) return helmDecision(req, checkHelmRelease(objWithKind, { config, issuer: issuer.current() }));
    const ns = requestNamespace(req, objWithKind);
    const iss: IssuerInfo = issuer.current();
    /** the request's time: a pod of a CronJob's Job not cached yet counts as that CronJob by the Job's name (identity.ts) */
    const now = Date.now();
    const violations: Violation[] = [];
    const warnings: string[] = [];
    let restartHint = false;
    /** the agent to remember as admitted (until the cache holds it), if it is */
    let admitting: AgentRef | undefined;
    /** the unique-service-account denials that rest only on admitted agents the cache does not hold, and where */
    let unconfirmed: { found: Violation[]; at: Unconfirmed['unconfirmed'] } | undefined;

    if (kind === 'ConfigMap') {
      if (!tokenReviewConfigMap) return decisionFor(allow(req.uid), [], { skipped: 'not a token-review ConfigMap' });
      const named = objWithKind.metadata?.name ? objWithKind : { ...objWithKind, metadata: { ...(objWithKind.metadata ?? {}), name: cmName } };
      // an immutable ConfigMap's data cannot change (the API server refuses it before /validate is asked): the fix is
      // a new object, and the message says so
      const immutable = op === 'UPDATE' && isObject(req.oldObject) && req.oldObject.immutable === true;
      const found = checkObject(named, { config, issuer: iss, namespace: ns, immutable });
      // ... and an UPDATE of it (a label, an annotation, an owner: all the API server lets change) cannot fix the
      // value, so denying it would only block the tools that label it: warned, with the same fix
      const unfixable = immutable && tokenValue(obj) === tokenValue(req.oldObject);
      violations.push(...(unfixable ? found.map(immutableUnchanged) : found));
      // the value kagent reads changes: /mutate's remediation has already been applied to `obj`, so an UPDATE whose
      // "true" the webhook put back compares equal, and the reminder is given here only, once
      restartHint = op === 'CREATE' || tokenValue(obj) !== tokenValue(req.oldObject);
    } else if (req.subResource === 'ephemeralcontainers') {
      // kubectl debug on an agent pod with proxy-init: what the added containers could do to the redirect is warned
      // (net-admin, proxy-uid), never denied; the registration sends these with failurePolicy: Ignore
      const ref = `Pod ${ns}/${objectName(objWithKind)}`;
      for (const w of ephemeralContainerWarnings(objWithKind, req.oldObject, config, ref))
        violations.push({ ...w, severity: 'warning', kind: 'Pod', namespace: ns, name: objectName(objWithKind) });
      if (!violations.length) return decisionFor(allow(req.uid), [], { skipped: 'ephemeral containers: none added that can bypass the proxy' });
    } else if (kind === 'Pod' && op !== 'CREATE') {
      // The webhook registration sends only the pod UPDATEs that change kagenti.io/type or kagenti.io/agent.
      violations.push(...checkAgentLabelChange(objWithKind, req.oldObject, config, ns));
      if (!violations.length) return decisionFor(allow(req.uid), [], { skipped: 'pod update: whether it is an agent is unchanged' });
    } else if (isWorkloadKind(kind)) {
      // The Job controller creates a Job's pods right after the Job, often before the Job reaches the cache: its
      // controller (a KEDA ScaledJob, the CronJob of `kubectl create job --from=cronjob/...`) is remembered for a
      // while, so those pods count as that agent and not as another one.
      if (kind === 'Job' && op === 'CREATE' && !req.dryRun && typeof objWithKind.metadata?.name === 'string')
        cluster?.noteJobOwner(ns, objWithKind.metadata.name, controllerOf(objWithKind));
      const owner = templateOwner(objWithKind);
      if (owner)
        return decisionFor(allow(req.uid), [], { skipped: `owned by ${owner.kind} ${shown(owner.name)} (checked there)` });
      const agent = agentOf(objWithKind, config, ns, cluster?.lookup, now);
      if (!agent) {
        const tool = toolSharing(objWithKind, ns, op, req.oldObject, now);
        if (!tool.length) return decisionFor(allow(req.uid), [], { skipped: 'not an agent' });
        for (const v of tool) ruleViolations.inc({ rule: v.rule, action: 'warned' });
        const detail = { violations: tool.map((v) => ({ rule: v.rule, severity: v.severity, path: v.path })), ...(req.dryRun ? { dryRun: true } : {}) };
        return decisionFor(allow(req.uid, tool.map((v) => v.message), undefined, warningBudget(kind, op, objWithKind)), ['unique-service-account'], detail);
      }
      // a controller's pod: dedicated-service-account's fix names the template of the workload that creates it
      const own = checkObject(objWithKind, { config, issuer: iss, namespace: ns, workload: kind === 'Pod' && agent.source ? { kind: agent.kind, name: agent.name } : undefined });
      // Whether this is an UPDATE that leaves the pod template as it was (a label, an annotation, a finalizer, a scale,
      // a reconcile's no-op apply); computed once, when a check needs it.
      let kept: boolean | undefined;
      const templateKept = (): boolean =>
        (kept ??= op === 'UPDATE' && isObject(req.oldObject) && samePodTemplate(objWithKind, req.oldObject.kind === kind ? req.oldObject : { ...req.oldObject, kind }));
      // An UPDATE of an agent on "default" that leaves its template as it was cannot be what made it so: warned, so
      // the tools that label or scale it are not blocked; its pods are denied at creation until it is fixed. One that
      // changes the template (an image bump, kubectl rollout restart) would start a rollout whose every pod is
      // denied: denied here, so the apply reports it and no rollout starts.
      if (own.some((v) => v.rule === 'dedicated-service-account' && v.severity === 'error') && templateKept())
        for (let i = 0; i < own.length; i++) if (own[i]!.rule === 'dedicated-service-account') own[i] = templateUnchanged(own[i]!);
      violations.push(...own);
      // What /mutate will deny in this workload's pods, denied on the workload so that the apply reports it (a
      // Pod got these checks at /mutate already). An UPDATE that leaves the pod template as it was (a label, an
      // annotation, a finalizer) is warned, not blocked: the template's pods are denied either way.
      if (kind !== 'Pod') {
        const inj = checkInjection(objWithKind, { config, namespace: ns, namespaceLabels: cluster?.namespaceLabels(ns) });
        if (inj.csiVolume && config.policies['csi-driver-missing'] !== 'off' && cluster?.csiDriverExists(config.spire.csiDriver) === false) {
          const name = objectName(objWithKind);
          const message = csiDriverMissing(`${kind} ${ns}/${name}`, config.spire.csiDriver);
          inj.warnings.push({ rule: 'csi-driver-missing', severity: 'warning', message, path: '', kind, namespace: ns, name });
        }
        // An UPDATE that leaves the template as it was (a label, a revision annotation, a reconcile's no-op apply)
        // gets its denials as warnings and no injection warnings: they were given when the template was written,
        // and repeating them on every reconcile would only be noise (and count as violations each time).
        const unchanged = (inj.violations.length > 0 || inj.warnings.length > 0) && templateKept();
        for (const v of inj.violations) violations.push(unchanged ? templateUnchanged(v) : v);
        if (!unchanged) violations.push(...inj.warnings);
      }
      if (config.policies['unique-service-account'] !== 'off' && !dedicatedDenies(agent, config)) {
        if (cluster?.claimsSynced) {
          // What this agent claimed already: on an UPDATE the workload as it was; for a new pod of a workload, the
          // workload's claim in the cache. Sharing it had already is warned, not denied (checkUniqueSince).
          let previous: AgentRef | null = null;
          if (op === 'UPDATE' && isObject(req.oldObject))
            previous = agentOf(req.oldObject.kind === kind ? req.oldObject : { ...req.oldObject, kind }, config, ns, cluster.lookup, now);
          else if (kind === 'Pod' && agent.source) previous = cluster.claimOfObject(agent.kind, agent.namespace, agent.name);
          const upTo = pass.upTo ?? cluster.admittedSeq();
          const claims = cluster.claimsOn(agent.namespace, agent.serviceAccount, objWithKind, upTo, agent);
          // A workload of a kind the cache does not hold (an Argo Rollout, a KEDA ScaledJob, a JobSet, a Knative
          // Configuration) has no claim of its own there: a new pod, ReplicaSet or Job of it compares with what the
          // cache holds of it (its ReplicaSet or Job, its other pods), the claims of the same agent on this
          // ServiceAccount that are not left from before a move.
          if (!previous && op === 'CREATE' && agent.source && !cluster.holdsKind(agent.kind)) {
            const key = identityKey(agent);
            previous = claims.find((o) => !o.former && !o.recent && identityKey(o) === key) ?? null;
          }
          const found = checkUniqueSince(agent, previous, claims, config);
          // Only when this denies (the rare path): does it rest on admitted agents alone? A forged /validate request
          // leaves such a claim too, so those are checked with the API server before they deny anything.
          if (
            pass.confirm &&
            found.some((v) => v.severity === 'error') &&
            claims.some((c) => c.recent) &&
            !checkUniqueSince(agent, previous, claims.filter((c) => !c.recent), config).some((v) => v.severity === 'error')
          )
            unconfirmed = { found, at: { namespace: agent.namespace, serviceAccount: agent.serviceAccount, upTo } };
          violations.push(...found);
          if (!req.dryRun) admitting = agent;
        } else {
          // Without cluster state, or before its first sync (/readyz keeps the webhook out of the Service until then,
          // so only a direct call gets here): allowed, and said so
          const [why, fix] = cluster
            ? ["the webhook's cluster cache has not synced yet (it is not ready)", 'send it again once the webhook is ready (its /readyz names what it cannot list)']
            : [`the webhook runs without cluster state (${noClusterWhy})`, 'run the webhook with cluster access (--cluster auto, with its RBAC)'];
          warnings.push(
            `[unique-service-account] ${kind} ${agent.namespace}/${objectName(objWithKind)}: not checked, because ${why}, so another agent on ServiceAccount ${agent.namespace}/${agent.serviceAccount || 'default'} (one SPIFFE ID) would not be caught here. Fix: ${fix}, and check releases in CI with kagenti-webhook lint.`,
          );
        }
      }
    } else {
      return decisionFor(allow(req.uid), [], { skipped: `kind ${shown(String(kind))} not validated` });
    }

    const errors = violations.filter((v) => v.severity === 'error');
    // nothing else denies it: check those agents first (nothing counted or remembered for this pass)
    if (unconfirmed && errors.every((v) => unconfirmed!.found.includes(v))) return { unconfirmed: unconfirmed.at };
    // whole messages: allow() and deny() fit them into lines, and leave out whole ones when not all fit
    for (const v of violations) if (v.severity === 'warning') warnings.push(v.message);
    const rules = [...new Set(violations.map((v) => v.rule))];
    for (const v of violations) ruleViolations.inc({ rule: v.rule, action: v.severity === 'error' ? 'denied' : 'warned' });
    const detail: Record<string, unknown> = {
      violations: violations.map((v) => ({ rule: v.rule, severity: v.severity, path: v.path })),
    };
    if (kind === 'ConfigMap') detail.issuer = iss.classification;
    if (req.dryRun) detail.dryRun = true;
    if (errors.length) return decisionFor(deny(req.uid, errors.map((v) => v.message), warnings, requestRef(req), warningBudget(kind, op, objWithKind)), rules, detail);
    // a second agent on its ServiceAccount sent before the cache knows this one (kubectl apply -f dir/) is denied
    if (admitting && typeof objWithKind.metadata?.name === 'string') cluster!.noteAdmitted(kind!, ns, objWithKind.metadata.name, admitting);
    if (restartHint) warnings.push(...restartWarning(ns, cmName));
    return decisionFor(allow(req.uid, warnings, requestRef(req), warningBudget(kind, op, objWithKind)), rules, detail);
  }

  /**
   * The decision on a Helm release record (helm install/upgrade writes it before touching any resource) from
   * the lint engine's check of its whole rendered manifest, so a bad release stops before anything is changed.
   * Records not checked (undecodable, or out of time in the worker) are allowed with a warning: Helm is never
   * blocked on our own parsing.
   */
  function helmDecision(req: AdmissionRequest, r: HelmReleaseResult): Decision {
    const warnings = [...r.warnings];
    const detail: Record<string, unknown> = { helmRelease: `${r.namespace}/${r.releaseName}`, helmStatus: r.status };
    if (!r.checked) return decisionFor(allow(req.uid, warnings, requestRef(req)), [], { ...detail, skipped: r.skipped });
    for (const v of r.violations) {
      ruleViolations.inc({ rule: v.rule, action: v.severity === 'error' ? 'denied' : 'warned' });
      if (v.severity === 'warning') warnings.push(v.message);
    }
    const errors = r.violations.filter((v) => v.severity === 'error');
    const rules = [...new Set(r.violations.map((v) => v.rule))];
    detail.violations = r.violations.map((v) => ({ rule: v.rule, severity: v.severity, source: v.source, line: v.line }));
    if (errors.length) {
      const more = errors.length > 1 ? ` (and ${errors.length - 1} more: run kagenti-webhook lint on the chart's render)` : '';
      return decisionFor(deny(req.uid, `${errors[0].message}${more}`, warnings, requestRef(req)), rules, detail);
    }
    return decisionFor(allow(req.uid, warnings, requestRef(req)), rules, detail);
  }

  /**
   * The reminder after a token-review ConfigMap is created or its value changed (`[kagent-restart]`), in a warning.
   * Given by /validate only (never by /mutate's remediation as well), so a request gets it at most once.
   */
  function restartWarning(ns: string, name: string): string[] {
    const dep = config.tokenReview.controllerDeployment;
    // With cluster state, only where the controller's Deployment exists (a first `helm install` creates the ConfigMap
    // before it, and a restart of what is not there fails NotFound); without, worded for either case.
    if (cluster?.ready()) {
      const cached = cluster.objects('Deployment').some((d) => d.metadata?.name === dep && d.metadata?.namespace === ns);
      if (!cached) return [];
      return [
        `[kagent-restart] ConfigMap ${ns}/${name}: kagent's controller reads ${TOKEN_REVIEW_KEY} only when it starts, so this change takes effect after a restart. Fix: kubectl -n ${ns} rollout restart deploy/${dep}`,
      ];
    }
    return [
      `[kagent-restart] ConfigMap ${ns}/${name}: kagent's controller reads ${TOKEN_REVIEW_KEY} only when it starts, so if it is already running, this change takes effect after a restart. Fix: kubectl -n ${ns} rollout restart deploy/${dep}`,
    ];
  }

  function mutateConfigMapUnsafe(req: AdmissionRequest): Decision | null {
    if (config.tokenReview.action !== 'mutate') return null;
    if (req.kind?.kind !== 'ConfigMap' || (req.operation !== 'CREATE' && req.operation !== 'UPDATE')) return null;
    const obj = req.object;
    if (!isObject(obj)) return null;
    const name = configMapName(req, obj);
    if (!config.tokenReview.configMapNames.includes(name)) return null;
    const iss = issuer.current();
    if (iss.classification !== 'external') return null;
    // An immutable ConfigMap's data cannot change: the API server would reject the patched UPDATE with a message
    // that names no webhook. Left unpatched, /validate denies it with the fix that works (delete and recreate it).
    if (req.operation === 'UPDATE' && isObject(req.oldObject) && req.oldObject.immutable === true) return null;
    const data = isObject(obj.data) ? obj.data : undefined;
    const inBinary = isObject(obj.binaryData) && Object.hasOwn(obj.binaryData, TOKEN_REVIEW_KEY);
    if (data?.[TOKEN_REVIEW_KEY] === 'true' && !inBinary) return null;
    const ns = requestNamespace(req, obj);
    // Set only what a token rule finds, under that rule's name, as lint reports it: with the rule off
    // (policies.token-review-required or token-review-value: off) the value the user wrote stays as it is
    const named: KubeObject = { ...obj, kind: 'ConfigMap', metadata: { ...(isObject(obj.metadata) ? obj.metadata : {}), name } };
    const found = checkObject(named, { config, issuer: iss, namespace: ns }).filter((v) => v.rule === 'token-review-required' || v.rule === 'token-review-value');
    if (!found.length) return null;
    const rule = found[0]!.rule;
    const patch: unknown[] = [];
    if (inBinary) patch.push({ op: 'remove', path: `/binaryData/${TOKEN_REVIEW_KEY}` });
    if (!data) patch.push({ op: 'add', path: '/data', value: { [TOKEN_REVIEW_KEY]: 'true' } });
    else patch.push({ op: 'add', path: `/data/${TOKEN_REVIEW_KEY}`, value: 'true' });
    const had: unknown = data && Object.hasOwn(data, TOKEN_REVIEW_KEY) ? data[TOKEN_REVIEW_KEY] : undefined;
    const before = had !== undefined ? (typeof had === 'string' ? quoted(had) : JSON.stringify(had)) : inBinary ? 'in binaryData' : 'unset';
    // No [kagent-restart] here: /validate gives it, once, on the object as patched, and only when the value kagent
    // reads changes (a CREATE, or an UPDATE whose old object had another value; not a helm upgrade that dropped a
    // "true" the webhook puts back).
    const warnings = [
      `[${rule}] ConfigMap ${ns}/${name}: the webhook set data.${TOKEN_REVIEW_KEY} to "true" (it was ${before}; tokenReview.action: mutate). ${cap(describeIssuer(iss))}, so without it kagent cannot verify agent tokens and agent callbacks fail with 401. Fix: set it in what your pipeline renders, so the source matches the cluster.`,
    ];
    return decisionFor(allowWithPatch(req.uid, patch, warnings, requestRef(req)), [rule], {
      remediation: 'token-review',
      before,
      dryRun: req.dryRun || undefined,
    });
  }

  /** validateUnsafe, failing closed. Without `pass.confirm`, always a Decision. */
  function decided(req: AdmissionRequest, pass: { confirm?: boolean; upTo?: number }): Decision | Unconfirmed {
    try {
      return validateUnsafe(req, pass);
    } catch (err) {
      // fail closed, as the server does for any handler error: never admit an object we could not evaluate
      log.error({ err: errField(err, { stack: true }), uid: req?.uid }, 'validation failed with an internal error; denying');
      return internalError(
        req?.uid ?? '',
        `[internal-error] ${requestRef(req)}: the webhook could not evaluate this object. It is denied rather than admitted unchecked. Fix: check the manifest; if it is valid, report this to the platform team.`,
        { err: errField(err) },
      );
    }
  }

  return {
    validateLater(req) {
      const kind = req.kind?.kind;
      if (kind !== 'Secret' && kind !== 'ConfigMap') return undefined;
      let obj: KubeObject;
      try {
        if (notChecked(req)) return undefined;
        const r = routed(req);
        if (!r.helmRecord) return undefined;
        obj = r.obj;
      } catch {
        return undefined; // validate() answers it, and fails closed on what threw here
      }
      // HelmChecker never rejects; whatever else fails, the record goes through as an undecodable one does
      const unchecked = (err: unknown) =>
        decisionFor(allow(req.uid, [`Helm release record was not checked: ${(err as Error)?.message ?? 'internal error'}`.slice(0, 120)]), [], {});
      return helm.check(obj, issuer.current()).then((r) => {
        try {
          return helmDecision(req, r);
        } catch (err) {
          return unchecked(err);
        }
      }, unchecked);
    },
    validate(req) {
      return decided(req, {}) as Decision;
    },
    answer(req, bodyBytes = 0) {
      const first = decided(req, { confirm: true });
      if (!('unconfirmed' in first)) return first;
      const { namespace, serviceAccount, upTo } = first.unconfirmed;
      const withChecked = (checked: unknown) => {
        const d = decided(req, { upTo }) as Decision;
        d.detail = { ...d.detail, admittedChecked: checked };
        return d;
      };
      // A waiting request keeps its parsed object (and oldObject) for up to about 4 s: all of them together are
      // bounded, or a few padded requests would fill the heap. Over the budget: no check, the denial as it stands.
      if (waitingBytes + bodyBytes > MAX_WAITING_BODY_BYTES)
        return withChecked(
          cluster!.leaveUnconfirmed(
            namespace,
            serviceAccount,
            upTo,
            `not checked: requests waiting for such a check already hold ${waitingBytes} bytes of request bodies and this one has ${bodyBytes}, over the ${MAX_WAITING_BODY_BYTES} bytes they may hold at once`,
          ),
        );
      waitingBytes += bodyBytes;
      return cluster!
        .confirmAdmitted(namespace, serviceAccount, upTo)
        .then(
          withChecked,
          // never expected (confirmAdmitted never rejects): decided as validate() decides
          () => decided(req, { upTo }) as Decision,
        )
        .finally(() => {
          waitingBytes -= bodyBytes;
        });
    },
    mutateConfigMap(req) {
      try {
        return mutateConfigMapUnsafe(req);
      } catch (err) {
        log.error({ err: errField(err, { stack: true }), uid: req?.uid }, 'ConfigMap remediation failed with an internal error');
        return null;
      }
    },
    namespaceLabels: (ns) => cluster?.namespaceLabels(ns),
    csiDriverExists: (name) => cluster?.csiDriverExists(name),
    podWorkload: (pod, ns, cfg) => templateWorkload(pod, cfg, ns, cluster?.lookup, Date.now()),
    readiness() {
      const iss = issuer.detail();
      const issuerDetail = { classification: iss.classification, issuer: iss.issuer ?? null, provider: iss.provider ?? null, source: iss.source };
      if (!cluster) return { ready: true, detail: { cluster: 'none', issuer: issuerDetail } };
      return { ready: cluster.ready(), detail: { ...cluster.detail(), issuer: issuerDetail } };
    },
    close() {
      closed = true;
      if (auditTimer) clearInterval(auditTimer);
      if (waitTimer) clearTimeout(waitTimer);
      issuer.stop();
      cluster?.stop();
      return helm.close();
    },
  };
}

/**
 * The characters of warnings /validate's answer may carry: for a Pod CREATE that /mutate injected (it carries the
 * injection's record, ANNOTATION_STATUS), what /mutate's answer for the same request leaves of the 4,096 the API
 * server keeps (POD_VALIDATE_WARNING_CHARS: the validating webhooks answer after the mutating ones, and what passes
 * the total is dropped); else the whole MAX_WARNING_CHARS (/mutate warns only when it injects).
 */
function warningBudget(kind: unknown, op: unknown, obj: KubeObject): number {
  if (kind !== 'Pod' || op !== 'CREATE') return MAX_WARNING_CHARS;
  const annotations = isObject(obj.metadata) && isObject(obj.metadata.annotations) ? obj.metadata.annotations : {};
  return Object.hasOwn(annotations, ANNOTATION_STATUS) ? POD_VALIDATE_WARNING_CHARS : MAX_WARNING_CHARS;
}
