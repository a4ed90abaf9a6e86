// Policy rules: pure functions, objects and context in, violations out. Shared by `/validate`, the
// background audit and `kagenti-webhook lint`. Rule names are stable (messages, metrics, logs, docs, CLI).
import type { Config, PolicyAction } from './config.ts';
import { isAgentType } from './config.ts';
import type { AgentIdentity, OwnerLookup, PodMaker } from './identity.ts';
import {
  AGENT_LABEL,
  KNATIVE_CONFIGURATION_LABEL,
  agentIdentity,
  cronJobJobParts,
  effectiveServiceAccount,
  identityKey,
  podMaker,
  objectName,
  objectNamespace,
  spiffeId,
} from './identity.ts';
import { apiGroup, getPodTemplate, isWorkloadKind, JOB_IMMUTABLE, kindGroup, otherPodTemplates, pathText, podSpecFieldPath, templateFieldText, workloadTemplateAt } from './workloads.ts';
import type { TemplateOwner } from './workloads.ts';
import type { InjectionPolicy, InjectionRule, InjectionWarning } from './inject.ts';
import { ANNOTATION_ISTIO_STATUS, ANNOTATION_MODE, ANNOTATION_STATUS, eligibility, injectTemplate, LABEL_TYPE, PROXY_UID, staleInjection, warningName } from './inject.ts';
import { cutKey, isObject, jsonEqual, MAX_QUOTED, quoted } from './json.ts';
import { shown } from './admission.ts';

export { MAX_QUOTED, quoted };

/** The rules whose action the config sets (policies: deny, warn or off). */
export type PolicyRule = 'dedicated-service-account' | 'unique-service-account' | 'token-review-value' | 'token-review-required';
/**
 * What only lint (and inject) report: an object the webhook would check, in a namespace the webhook never sees (its
 * registrations' namespaceSelector, manifests/base/webhooks.yaml), where nothing is injected or checked; and an
 * agent pod template in an object that is none of the workloads lint and inject know (checkUncheckedTemplate).
 */
export type LintRule = 'unwatched-namespace' | 'unchecked-template';
/**
 * Every rule a violation can name: the policy rules, the injection core's denials and warnings checked on pod
 * templates, and lint's own.
 */
export type RuleName = PolicyRule | InjectionRule | InjectionWarning | LintRule;
/** The namespaces every webhook registration leaves out (namespaceSelector NotIn, manifests/base/webhooks.yaml). */
export const UNWATCHED_NAMESPACES: readonly string[] = ['kube-system', 'kube-public', 'kube-node-lease', 'kagenti-system'];

/**
 * Whether an object holds a pod template the webhook would inject (a kind inject and lint read; labels an agent, or a
 * tool under featureGates.injectTools, not opted out): in a namespace the webhook never sees, inject and lint give
 * it one unwatched-namespace warning (unwatchedNamespaceText).
 */
export function injectableTemplate(obj: unknown, cfg: Config): boolean {
  const tpl = getPodTemplate(obj);
  return tpl !== null && eligibility(tpl.labels, cfg) === null;
}

/**
 * The unwatched-namespace warning, the same text from inject and lint: `ref` (`Kind namespace/name`) is in `ns`, one
 * of UNWATCHED_NAMESPACES, where the webhook never sees it. `agent`: an injectable template (injectableTemplate),
 * whose pods get no sidecars; else an object only the webhook's checks would read (kagent's ConfigMap). `rules`: what
 * lint reports on such an object elsewhere, not enforced there (inject names none).
 */
export function unwatchedNamespaceText(ref: string, ns: string, agent: boolean, rules: readonly string[] = []): string {
  const others = UNWATCHED_NAMESPACES.filter((n) => n !== ns);
  const what = agent ? 'its pods get no sidecars and nothing is checked there' : 'nothing is checked there';
  const fix = agent ? 'move the agent to a namespace of its own' : "deploy agents and kagent's ConfigMap to a namespace of their own";
  return (
    `[unwatched-namespace] ${ref}: not injected or checked: the webhook never sees namespace ${ns} ` +
    `(its registrations' namespaceSelector leaves out ${ns}, ${others.slice(0, -1).join(', ')} and ${others[others.length - 1]}), ` +
    `so ${what}${rules.length ? `, and what lint reports elsewhere is not enforced here: ${rules.join(', ')}` : ''}. ` +
    `Fix: ${fix}; an object that is not meant to be an agent needs no ${LABEL_TYPE} label.`
  );
}
export const RULE_NAMES: readonly PolicyRule[] = [
  'dedicated-service-account',
  'unique-service-account',
  'token-review-value',
  'token-review-required',
];
export type Severity = 'error' | 'warning';

export interface Violation {
  rule: RuleName;
  /** from config.policies[rule]: deny → error, warn → warning ('off' → no violation at all) */
  severity: Severity;
  /** one line: `[rule] Kind ns/name: what is wrong (field path, value). Why. Fix: how.` */
  message: string;
  /** dotted field path of the offending key; the enclosing mapping's path when the key is missing; '' = root */
  path: string;
  kind: string;
  namespace: string;
  name: string;
  /**
   * The API server refuses the object as it is, whatever the webhooks do (in every namespace): a K8S_TOKEN_REVIEW in
   * data that is a boolean, number, mapping or list (a JSON string field cannot hold it; null it decodes as ""), and
   * the malformed-object denials of InjectDenial.schema. Lint keeps these in namespaces the webhook never sees.
   */
  schema?: true;
}

export interface IssuerInfo {
  classification: 'external' | 'internal' | 'unknown';
  issuer?: string;
  /** 'EKS' | 'GKE' | 'AKS' when recognised */
  provider?: string;
}

export interface AgentRef {
  /** the agent's top-level workload (Deployment for its pods, CronJob for its Jobs' pods...) */
  kind: string;
  name: string;
  namespace: string;
  serviceAccount: string;
  /** kagenti.io/agent label */
  agent?: string;
  /** the object the claim was read from, when it is not the top-level workload itself (e.g. a Pod) */
  source?: { kind: string; name: string };
  /**
   * the top-level workload the object's owners lead to, when the identity is another (identity.ts AgentIdentity:
   * a Flagger primary's pod → its primary Deployment): `former` is judged against it
   */
  workload?: { kind: string; name: string };
  /** the manifest names the ServiceAccount in the deprecated `serviceAccount` field only (messages name that field) */
  serviceAccountField?: 'serviceAccount';
  /** the object is being deleted; for a Pod, until when its containers may run */
  deleting?: { until?: string };
  /**
   * the object (`source`: a pod, a ReplicaSet, a Job) is left from before its top-level workload moved off this
   * ServiceAccount: the workload, as the cache holds it, claims another one now (`moved`), or none (`no-agent`: its
   * template is no agent now; `stopped`: a ReplicaSet scaled to 0, a finished Job)
   */
  former?: 'moved' | 'no-agent' | 'stopped';
  /**
   * a bare Pod (its own agent) that a ReplicaSet released: no owner now, named and labelled as that cached
   * ReplicaSet's pod (`kubectl label pod <name> app-` for debugging); the ReplicaSet and its controller
   */
  released?: { replicaSet: string; workload?: { kind: string; name: string } };
  /** an agent this webhook admitted moments ago that the cluster cache does not hold yet */
  recent?: boolean;
  /** the custom resource whose controller makes the workload from its fields (identity.ts podMaker) */
  maker?: PodMaker;
}

/**
 * How a fix names a maker (identity.ts podMaker) and its field for the pods' ServiceAccount: `kagent Agent team-a/weather
 * (kubectl -n team-a edit agents.kagent.dev weather)` and kagent.dev/v1alpha2's SharedDeploymentSpec field, with what
 * kagent does when it is unset; `KServe InferenceService team-a/llm (...)` and its component's field.
 */
function makerText(m: PodMaker, ns: string): { owner: string; field: string; unset: string } {
  // (names cut as other messages cut them: a lint input's may be longer than Kubernetes allows)
  const name = shown(m.name);
  if (m.kind === 'Agent')
    return {
      owner: `kagent Agent ${ns}/${name} (kubectl -n ${ns} edit agents.kagent.dev ${name})`,
      field: 'spec.declarative.deployment.serviceAccountName (spec.byo.deployment.serviceAccountName for a BYO agent)',
      unset: `with neither it nor --default-service-account-name on kagent's controller set, kagent creates ServiceAccount "${name}"`,
    };
  return { owner: `KServe InferenceService ${ns}/${name} (kubectl -n ${ns} edit inferenceservices.serving.kserve.io ${name})`, field: `spec.${m.component}.serviceAccountName`, unset: '' };
}

export const TOKEN_REVIEW_KEY = 'K8S_TOKEN_REVIEW';

/**
 * How long an agent the webhook admitted counts as a claim while the cluster cache does not hold it yet (its watch
 * event normally arrives well under a second later, and ends it sooner). `kubectl apply -f dir/` and Argo CD send
 * the next object milliseconds after the first one's answer, before the cache could know it.
 */
export const ADMITTED_TTL_MS = 30_000;

/** deny → error, warn → warning, off → null. */
export function severityFor(action: PolicyAction | undefined): Severity | null {
  if (action === 'off') return null;
  return action === 'warn' ? 'warning' : 'error';
}

export function describeIssuer(issuer: IssuerInfo): string {
  const who = issuer.issuer ? ` ${issuer.issuer}` : '';
  if (issuer.classification === 'external')
    return `the cluster's service-account issuer${who} is external${issuer.provider ? ` (${issuer.provider})` : ''}`;
  if (issuer.classification === 'internal') return `the cluster's service-account issuer${who} is internal`;
  return `the cluster's service-account issuer could not be determined`;
}

/** One sentence on the issuer and what it means for K8S_TOKEN_REVIEW, for the token-review-value messages. */
function issuerNote(issuer: IssuerInfo): string {
  const d = cap(describeIssuer(issuer));
  if (issuer.classification === 'external') return `${d}, so kagent needs "true".`;
  if (issuer.classification === 'internal') return `${d}, so either value works.`;
  return `${d}; "true" works on any cluster.`;
}

export function cap(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function jsonValue(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return `the YAML boolean ${v}`;
  if (typeof v === 'number') return `the number ${v}`;
  if (typeof v === 'string') return quoted(v);
  if (Array.isArray(v)) return 'a list';
  return 'a mapping';
}

/** The label Knative puts on a Revision's pods when a Knative Service owns its Configuration: the Service's name. */
const KNATIVE_SERVICE_LABEL = 'serving.knative.dev/service';

/**
 * Where to set the ServiceAccount of a pod of Knative Configuration `name` (identity.ts's versionedWorkload): a
 * Knative Service owns its Configuration and writes its template over every edit, so the fix names the Service's
 * template (from the pod's label), or, unknown, the Service that owns it, else the Configuration's own.
 */
function knativeTemplate(name: string, ns: string, labels: Record<string, unknown>): string {
  const svc = labels[KNATIVE_SERVICE_LABEL];
  if (typeof svc === 'string' && svc)
    return `spec.template.spec.serviceAccountName in Knative Service ${svc} (kubectl -n ${ns} edit ksvc ${svc}), the owner of Configuration/${name}, which creates this pod (the Service reverts edits made to its Configuration)`;
  return `spec.template.spec.serviceAccountName in the Knative Service that owns Configuration/${name}, which creates this pod (the Service reverts edits made to its Configuration), or in Configuration/${name} itself if no Service owns it`;
}

/**
 * Dedicated ServiceAccount check on a Pod or workload pod template. `workload`: the top-level workload a
 * controller's pod belongs to (its Deployment, CronJob...): the fix is made in its template, not in the pod.
 */
function checkDedicated(obj: Record<string, any>, config: Config, ns: string, workload?: { kind: string; name: string }): Violation[] {
  const sev = severityFor(config.policies['dedicated-service-account']);
  if (!sev) return [];
  const tpl = getPodTemplate(obj);
  if (!tpl || !isAgentType(tpl.labels, config)) return [];
  const sa = effectiveServiceAccount(tpl.spec);
  if (sa !== 'default') return [];
  const kind = obj.kind as string;
  const name = objectName(obj);
  const specPath = podSpecFieldPath(kind);
  const spec = tpl.spec;
  let path: string;
  let what: string;
  if (spec && typeof spec.serviceAccountName === 'string' && spec.serviceAccountName !== '') {
    path = `${specPath}.serviceAccountName`;
    what = `${path} is "default"`;
  } else if (spec && typeof spec.serviceAccount === 'string' && spec.serviceAccount !== '') {
    path = `${specPath}.serviceAccount`;
    what = `${path} is "default"`;
  } else {
    path = spec ? specPath : (tpl.path.join('.') as string);
    what = `${specPath}.serviceAccountName is not set ("default")`;
  }
  // a controller's pod: set in the template it is created from (a change to the pod itself would not last)
  const controllerPod = kind === 'Pod' && workload !== undefined && (workload.kind !== 'Pod' || workload.name !== name);
  // a workload a custom resource makes (a kagent Agent's Deployment, a KServe InferenceService's), or its pod: set in
  // that resource, whose controller reverts edits to the workload
  const maker = controllerPod ? podMaker(workload!, tpl.labels) : kind === 'Pod' ? undefined : podMaker({ kind, name }, tpl.labels);
  let fix: string;
  if (maker) {
    const m = makerText(maker, ns);
    const made = controllerPod ? `${workload!.kind}/${workload!.name}, which creates this pod,` : `this ${kind}`;
    fix = `in ${m.owner}, whose controller makes ${made} and reverts edits to it, set ${m.field} to a ServiceAccount of the agent's own${m.unset ? `, or leave it unset: ${m.unset}` : ''}`;
  } else {
    let where = `${specPath}.serviceAccountName`;
    if (controllerPod) {
      const labels = podLabels(obj);
      // a Knative Revision's pod (identity.ts counts it as its Configuration)
      if (workload!.kind === 'Configuration' && labels[KNATIVE_CONFIGURATION_LABEL] === workload!.name) where = knativeTemplate(workload!.name, ns, labels);
      else {
        // as the other fixes for a controller's pod name it (templateOwner: a CronJob's Job, a LeaderWorkerSet's leader...)
        const owner = templateOwner(workload!, labels);
        where = owner.at
          ? `${templateFieldText(owner.at, 'spec.serviceAccountName')} in ${owner.label}, which creates this pod`
          : `serviceAccountName in the pod template of ${owner.label}, which creates this pod`;
        if (owner.immutable) where += ` (${JOB_IMMUTABLE})`;
      }
    }
    fix = `create a ServiceAccount for the agent and set ${where}`;
  }
  return [
    {
      rule: 'dedicated-service-account',
      severity: sev,
      message:
        `[dedicated-service-account] ${kind} ${ns}/${name}: ${what}. ` +
        `Any pod in the namespace can use "default", so its SPIFFE ID identifies no single agent. ` +
        `Fix: ${fix}.`,
      path,
      kind,
      namespace: ns,
      name,
    },
  ];
}

/**
 * Whether `/mutate` would fix this ConfigMap's token-review findings when it is applied: with
 * tokenReview.action: mutate on an external-issuer cluster it sets K8S_TOKEN_REVIEW: "true" (and drops it from
 * binaryData). A value that is not a string never gets that far: the API server rejects it first.
 */
export function remediatedAtAdmission(obj: unknown, config: Config, issuer: IssuerInfo): boolean {
  if (config.tokenReview.action !== 'mutate' || issuer.classification !== 'external') return false;
  if (!isObject(obj) || !isCoreConfigMap(obj) || !config.tokenReview.configMapNames.includes(objectName(obj))) return false;
  const data = isObject(obj.data) ? obj.data : undefined;
  return !(data && Object.hasOwn(data, TOKEN_REVIEW_KEY) && typeof data[TOKEN_REVIEW_KEY] !== 'string');
}

/**
 * Whether a `kind: ConfigMap` object is the core one kagent reads (apiVersion `v1`), not a custom resource that
 * happens to be named ConfigMap (`apiVersion: example.com/v1`). No apiVersion at all counts as core: lint never gets
 * that far without one, and the admission request and the cluster cache (whose list items carry none) name the core
 * resource themselves.
 */
export function isCoreConfigMap(obj: Record<string, any>): boolean {
  return obj.kind === 'ConfigMap' && (obj.apiVersion === 'v1' || obj.apiVersion === undefined);
}

/**
 * The configured name a kustomize configMapGenerator turned into `name`, or undefined: kustomize appends `-` and a
 * 10-character hash of the content in its own alphabet (hex digits with 0→g, 1→h, 3→k, a→m, e→t) and rewrites the
 * references to it (a Deployment's envFrom), so kagent reads `kagent-enterprise-config-9k6bh8fd92`.
 */
export function kustomizeGeneratedFrom(name: string, names: readonly string[]): string | undefined {
  if (name.length < 12 || name.charAt(name.length - 11) !== '-' || !/^[2456789bcdfghkmt]{10}$/.test(name.slice(-10))) return undefined;
  const base = name.slice(0, -11);
  return names.includes(base) ? base : undefined;
}

/**
 * The configured name that `name` holds with something before or after it (a kustomize namePrefix or nameSuffix:
 * `prod-kagent-enterprise-config`, and `-<hash>` after it from a configMapGenerator), or undefined: the name itself
 * and `<name>-<hash>` (kustomizeGeneratedFrom) are not. `hashed`: a kustomize hash ends it.
 */
export function kustomizeAffixedFrom(name: string, names: readonly string[]): { from: string; hashed: boolean } | undefined {
  if (names.includes(name) || kustomizeGeneratedFrom(name, names)) return undefined;
  const hashed = name.length >= 12 && name.charAt(name.length - 11) === '-' && /^[2456789bcdfghkmt]{10}$/.test(name.slice(-10));
  const stable = hashed ? name.slice(0, -11) : name;
  const from = names.find((n) => n !== '' && stable !== n && stable.includes(n));
  return from ? { from, hashed } : undefined;
}

/**
 * lint's check of a ConfigMap whose name holds a configured one with a prefix or suffix (kustomizeAffixedFrom): the
 * webhook, which matches exact names, never checks it, and it may well be kagent's settings (kustomize's namePrefix
 * renames the controller's envFrom with it). Checked as the configured one, every finding a warning (it may be
 * another ConfigMap), with the note that tokenReview.configMapNames does not list it and the fix to list it; a
 * ConfigMap whose value is right still gets that warning, except where the issuer is internal or the rule is off.
 */
function checkAffixed(
  obj: Record<string, any>,
  config: Config,
  issuer: IssuerInfo,
  ns: string,
  opts: { immutable: boolean; generatedNames: boolean; affixed: { from: string; hashed: boolean } },
): Violation[] {
  const name = objectName(obj);
  const { from, hashed } = opts.affixed;
  const stable = hashed ? name.slice(0, -11) : name;
  const list = `add ${stable} to tokenReview.configMapNames in the webhook config${hashed ? ' (with generatorOptions: disableNameSuffixHash: true in the kustomization, so that the name does not change with the content)' : ''}`;
  const note = `tokenReview.configMapNames does not list this name, so the webhook never checks it at admission; lint checks it as ${from}.`;
  const found = checkTokenReview(obj, config, issuer, ns, opts);
  if (found.length)
    return found.map((v) => ({ ...v, severity: 'warning', message: `${noteBeforeFix(v.message, note).replace(/\.$/, '')}; and ${list}.` }));
  if (issuer.classification === 'internal' || !severityFor(config.policies['token-review-required'])) return [];
  return [
    {
      rule: 'token-review-required',
      severity: 'warning',
      kind: 'ConfigMap',
      namespace: ns,
      name,
      path: 'metadata.name',
      message:
        `[token-review-required] ConfigMap ${ns}/${name}: its name is ${from} with a prefix or suffix (a kustomize namePrefix or nameSuffix?), which tokenReview.configMapNames does not list, ` +
        `so the webhook never checks its ${TOKEN_REVIEW_KEY} at admission; if kagent's controller reads it, a wrong value would reach it unchecked, and agent callbacks fail with 401. Fix: ${list}.`,
    },
  ];
}

/** A ConfigMap a pod spec's containers read their environment from, and the field that names it. */
export interface EnvConfigMapRef {
  name: string;
  /** e.g. `spec.template.spec.containers[0].envFrom[0].configMapRef.name` */
  path: string;
  /**
   * the reference gives a container (not an init container) the variable K8S_TOKEN_REVIEW from that ConfigMap's key
   * K8S_TOKEN_REVIEW: an `envFrom[].configMapRef` without a `prefix`, or an `env[]` entry K8S_TOKEN_REVIEW with
   * `valueFrom.configMapKeyRef.key: K8S_TOKEN_REVIEW` (`path` is then that reference's)
   */
  delivers?: true;
}

/**
 * The ConfigMaps a workload's pod template reads its environment from (`envFrom[].configMapRef`,
 * `env[].valueFrom.configMapKeyRef`, in containers and init containers), in order, once each: where kagent's
 * controller gets K8S_TOKEN_REVIEW.
 */
export function envConfigMapRefs(obj: unknown): EnvConfigMapRef[] {
  const tpl = getPodTemplate(obj);
  if (!tpl || !tpl.spec) return [];
  const specPath = [...tpl.path, 'spec'].join('.');
  const out: EnvConfigMapRef[] = [];
  const seen = new Map<string, EnvConfigMapRef>();
  const add = (name: unknown, path: string, delivers: boolean) => {
    if (typeof name !== 'string' || !name) return;
    const had = seen.get(name);
    if (had) {
      // the first reference that delivers the key is the one to name
      if (delivers && !had.delivers) {
        had.path = path;
        had.delivers = true;
      }
      return;
    }
    const r: EnvConfigMapRef = { name, path };
    if (delivers) r.delivers = true;
    seen.set(name, r);
    out.push(r);
  };
  for (const list of ['containers', 'initContainers']) {
    const cs: unknown = tpl.spec[list];
    if (!Array.isArray(cs)) continue;
    const main = list === 'containers';
    cs.forEach((c: unknown, i: number) => {
      if (!isObject(c)) return;
      const at = `${specPath}.${list}[${i}]`;
      if (Array.isArray(c.envFrom))
        c.envFrom.forEach((e: unknown, j: number) => {
          if (isObject(e) && isObject(e.configMapRef))
            add(e.configMapRef.name, `${at}.envFrom[${j}].configMapRef.name`, main && (e.prefix === undefined || e.prefix === null || e.prefix === ''));
        });
      if (Array.isArray(c.env))
        c.env.forEach((e: unknown, j: number) => {
          if (isObject(e) && isObject(e.valueFrom) && isObject(e.valueFrom.configMapKeyRef))
            add(
              e.valueFrom.configMapKeyRef.name,
              `${at}.env[${j}].valueFrom.configMapKeyRef.name`,
              main && e.name === TOKEN_REVIEW_KEY && e.valueFrom.configMapKeyRef.key === TOKEN_REVIEW_KEY,
            );
        });
    });
  }
  return out;
}

/**
 * K8S_TOKEN_REVIEW as a container's `env` sets it itself, which takes precedence over any `envFrom`: the last entry
 * of that name in a container (`containers`, not init containers). `value`: a literal's (`value:`; none is ""),
 * undefined when it comes from elsewhere than a literal or a ConfigMap (a Secret, a field): not known. A
 * `configMapKeyRef` entry is not returned (envConfigMapRefs has it). The first container's whose value is not
 * "true", else the first one's; undefined when no container sets it so.
 */
export function tokenReviewEnv(obj: unknown): { path: string; value?: string } | undefined {
  const tpl = getPodTemplate(obj);
  if (!tpl || !tpl.spec || !Array.isArray(tpl.spec.containers)) return undefined;
  const specPath = [...tpl.path, 'spec'].join('.');
  let first: { path: string; value?: string } | undefined;
  for (const [i, c] of (tpl.spec.containers as unknown[]).entries()) {
    if (!isObject(c) || !Array.isArray(c.env)) continue;
    let last: { path: string; value?: string } | null = null;
    c.env.forEach((e: unknown, j: number) => {
      if (!isObject(e) || e.name !== TOKEN_REVIEW_KEY) return;
      const path = `${specPath}.containers[${i}].env[${j}]`;
      if (!isObject(e.valueFrom)) last = { path, value: typeof e.value === 'string' ? e.value : '' };
      else if (isObject(e.valueFrom.configMapKeyRef)) last = null;
      else last = { path };
    });
    const found = last as { path: string; value?: string } | null;
    if (!found) continue;
    if (found.value !== undefined && found.value !== 'true') return found;
    first ??= found;
  }
  return first;
}

/**
 * Whether a container of the workload (not an init container) takes its environment from a Secret without a prefix
 * (`envFrom[].secretRef`) and names no K8S_TOKEN_REVIEW in its `env`: that Secret may carry the setting (External
 * Secrets, say), which cannot be checked, so the controller is not said to miss it.
 */
export function envFromSecret(obj: unknown): boolean {
  const tpl = getPodTemplate(obj);
  if (!tpl || !tpl.spec || !Array.isArray(tpl.spec.containers)) return false;
  return (tpl.spec.containers as unknown[]).some(
    (c) =>
      isObject(c) &&
      Array.isArray(c.envFrom) &&
      c.envFrom.some((e: unknown) => isObject(e) && isObject(e.secretRef) && (e.prefix === undefined || e.prefix === null || e.prefix === '')) &&
      !(Array.isArray(c.env) && c.env.some((e: unknown) => isObject(e) && e.name === TOKEN_REVIEW_KEY)),
  );
}

/** ` (data has "k8s_token_review": keys are case-sensitive)` when a key differs from ours only in case or spaces. */
function lookalikeNote(data: Record<string, unknown> | undefined): string {
  if (!data) return '';
  for (const k of Object.keys(data))
    if (k !== TOKEN_REVIEW_KEY && k.trim().toUpperCase() === TOKEN_REVIEW_KEY)
      return ` (data has ${quoted(k)}: ${k.trim() === k ? 'keys are case-sensitive' : 'keys must match exactly, spaces included'})`;
  return '';
}

/** Token-review checks on a ConfigMap named in config.tokenReview.configMapNames. */
function checkTokenReview(
  obj: Record<string, any>,
  config: Config,
  issuer: IssuerInfo,
  ns: string,
  opts: { immutable: boolean; generatedNames: boolean; affixed?: { from: string; hashed: boolean } },
): Violation[] {
  const { immutable } = opts;
  const name = objectName(obj);
  const names = config.tokenReview.configMapNames;
  const generatedFrom = names.includes(name) || !opts.generatedNames || opts.affixed ? undefined : kustomizeGeneratedFrom(name, names);
  if (!names.includes(name) && !generatedFrom && !opts.affixed) {
    const affixed = opts.generatedNames ? kustomizeAffixedFrom(name, names) : undefined;
    return affixed ? checkAffixed(obj, config, issuer, ns, { ...opts, affixed }) : [];
  }
  const out: Violation[] = [];
  const ref = `ConfigMap ${ns}/${name}`;
  // the message's subject; a generated name says where it comes from
  const subject = generatedFrom
    ? `${ref} (generated by kustomize from ${generatedFrom})`
    : opts.affixed
      ? `${ref} (${opts.affixed.from} with a kustomize namePrefix or nameSuffix?)`
      : ref;
  // The fix where the ConfigMap in the cluster is immutable: the API server refuses any change to its data (setting
  // the key included), so the only way is a new object.
  const recreate = (want: string) =>
    `delete ${ref} and create it again with ${want}, since it is immutable (immutable: true) and the API server refuses any change to its data: kubectl replace --force -f <file>, or kubectl delete, then kubectl apply`;
  const base = { kind: 'ConfigMap', namespace: ns, name };
  const data = isObject(obj.data) ? obj.data : undefined;
  const binary = isObject(obj.binaryData) ? obj.binaryData : undefined;
  const hasData = data !== undefined && Object.hasOwn(data, TOKEN_REVIEW_KEY);
  const hasBinary = binary !== undefined && Object.hasOwn(binary, TOKEN_REVIEW_KEY);
  const value: unknown = hasData ? data![TOKEN_REVIEW_KEY] : undefined;
  // a value the API server cannot decode into ConfigMap data (map[string]string): it refuses the ConfigMap itself
  const refused = hasData && typeof value !== 'string' && value !== null && value !== undefined ? { schema: true as const } : {};
  const wantTrue = issuer.classification !== 'internal';

  // token-review-required's severity here, null when it does not apply: off, an internal issuer, or the value is
  // "true". An unknown issuer only ever warns.
  let reqSev = severityFor(config.policies['token-review-required']);
  if (issuer.classification === 'internal' || value === 'true') reqSev = null;
  else if (issuer.classification === 'unknown' && reqSev) reqSev = 'warning';

  const valueSev = severityFor(config.policies['token-review-value']);
  if (valueSev) {
    // The value to suggest: "true" where kagent needs TokenReview (or the issuer is unknown), else what the
    // user meant, read leniently ("False", "no", 0 → "false").
    const meantFalse = value === false || value === 0 || (typeof value === 'string' && /^\s*(false|no|off|n|f|0)?\s*$/i.test(value));
    const suggest = wantTrue || !meantFalse ? 'true' : 'false';
    let finding: { path: string; problem: string; why: string; fix: string } | undefined;
    if (hasBinary) {
      finding = {
        path: `binaryData.${TOKEN_REVIEW_KEY}`,
        problem: 'is set.',
        why: 'kagent reads the setting from data as a string, never from binaryData.',
        fix: immutable
          ? `${recreate(`${TOKEN_REVIEW_KEY}: "${suggest}" under data and not in binaryData`)}.`
          : `remove it from binaryData and set ${TOKEN_REVIEW_KEY}: "${suggest}" under data.`,
      };
    } else if (hasData && typeof value !== 'string') {
      finding = {
        path: `data.${TOKEN_REVIEW_KEY}`,
        problem: `is ${jsonValue(value)}, not a string.`,
        // null (`K8S_TOKEN_REVIEW:` with no value, or `~`) decodes as the empty string; anything else is refused
        why:
          value === null
            ? 'The API server stores it as the empty string "", which kagent does not read as "true".'
            : 'ConfigMap data holds only strings, so the API server rejects it and the setting never takes effect.',
        fix: immutable ? `${recreate(`${TOKEN_REVIEW_KEY}: "${suggest}" (quoted) in data`)}.` : `quote it: ${TOKEN_REVIEW_KEY}: "${suggest}".`,
      };
    } else if (hasData && value !== 'true' && value !== 'false') {
      finding = {
        path: `data.${TOKEN_REVIEW_KEY}`,
        problem: `is ${quoted(value as string)}.`,
        why: 'Only the exact strings "true" and "false" are unambiguous; anything else may leave TokenReview off.',
        fix: immutable ? `${recreate(`${TOKEN_REVIEW_KEY}: "${suggest}" in data`)}.` : `set ${TOKEN_REVIEW_KEY}: "${suggest}".`,
      };
    }
    if (finding) {
      const { path, problem, why, fix } = finding;
      // One violation for one mistake: the value's message, the more precise one. When token-review-required also
      // applies and is the stricter (it denies where token-review-value only warns: an external issuer), it is
      // reported under token-review-required, at its severity: `warn` on the value rule never admits what `off`
      // would have denied.
      if (reqSev === 'error' && valueSev === 'warning')
        return [
          {
            ...base,
            rule: 'token-review-required',
            severity: 'error',
            path,
            ...(path === `data.${TOKEN_REVIEW_KEY}` ? refused : {}),
            message:
              `[token-review-required] ${subject}: ${path} ${problem} ${why} ${cap(describeIssuer(issuer))}, so kagent needs "true": ` +
              `without it, it cannot verify agent tokens locally and agent callbacks fail with 401. Fix: ${fix}`,
          },
        ];
      return [{ ...base, rule: 'token-review-value', severity: valueSev, path, ...(path === `data.${TOKEN_REVIEW_KEY}` ? refused : {}), message: `[token-review-value] ${subject}: ${path} ${problem} ${why} ${issuerNote(issuer)} Fix: ${fix}` }];
    }
  }

  if (!reqSev) return out;
  // an empty `data:` (null, as Helm renders a template with no entries) is still where the key goes
  const path = hasData ? `data.${TOKEN_REVIEW_KEY}` : hasBinary ? `binaryData.${TOKEN_REVIEW_KEY}` : Object.hasOwn(obj, 'data') ? 'data' : '';
  // a value that is no string (a boolean true, a number: lint and Helm records see them) is named as what it is, not
  // printed as if it were the string kagent wants
  const notString = hasData && typeof value !== 'string';
  const what = hasData
    ? `data.${TOKEN_REVIEW_KEY} is ${notString ? `${jsonValue(value)}, not the string "true"` : quoted(value as string)}`
    : hasBinary
      ? `${TOKEN_REVIEW_KEY} is in binaryData, not data`
      : `data.${TOKEN_REVIEW_KEY} is not set${lookalikeNote(data)}`;
  if (issuer.classification === 'external') {
    out.push({
      ...base,
      rule: 'token-review-required',
      severity: reqSev,
      path,
      ...(notString ? refused : {}),
      message:
        `[token-review-required] ${subject}: ${what}. ` +
        `${cap(describeIssuer(issuer))}, so kagent cannot verify agent tokens locally and agent callbacks fail with 401. ` +
        `Fix: ${immutable ? `${recreate(`${TOKEN_REVIEW_KEY}: "true" in data`)}.` : notString ? `quote it: ${TOKEN_REVIEW_KEY}: "true".` : generatedFrom ? `set ${TOKEN_REVIEW_KEY}: "true" in data (in the configMapGenerator of ${generatedFrom}: the literal ${TOKEN_REVIEW_KEY}=true).` : `set ${TOKEN_REVIEW_KEY}: "true" in data.`}`,
    });
  } else {
    // unknown issuer: never a pass, never a deny
    out.push({
      ...base,
      rule: 'token-review-required',
      severity: 'warning',
      path,
      ...(notString ? refused : {}),
      message:
        `[token-review-required] ${subject}: ${what}${notString ? ',' : ''} and ${describeIssuer(issuer)}. ` +
        `On clusters with an external issuer (EKS, GKE, AKS) agent callbacks fail with 401 without it. ` +
        `Fix: ${immutable ? `if the issuer is external, ${recreate(`${TOKEN_REVIEW_KEY}: "true" in data`)}; ` : `${notString ? 'quote it: ' : 'set '}${TOKEN_REVIEW_KEY}: "true" if the issuer is external, `}or set tokenReview.issuer ` +
        `(external, internal or the issuer URL) in the webhook config.`,
    });
  }
  return out;
}

/** The controller's path for a field path with `[N]` indices, as a Violation's path (`.N`). */
function dotted(path: string): string {
  return path.replace(/\[(\d+)\]/g, '.$1');
}

/**
 * token-review-required on kagent's controller Deployment (`tokenReview.controllerDeployment`), from its own pod
 * template, on a cluster whose issuer is external: the ConfigMap can hold "true" while the controller never gets it.
 *   - a container's `env` sets K8S_TOKEN_REVIEW to a literal other than "true": env takes precedence over envFrom;
 *   - none of its containers' `envFrom[].configMapRef` (without a prefix) or `env` K8S_TOKEN_REVIEW
 *     `configMapKeyRef` names a ConfigMap of `tokenReview.configMapNames` (`watched`: lint counts a kustomize
 *     `<name>-<hash>` too), so the value set there never reaches it (kagent-enterprise#1829: the chart's controller
 *     reads only its own ConfigMap).
 * A literal "true" is enough on its own; an entry from a Secret or a field cannot be checked and counts as set, and
 * so, for the second case, does an envFrom Secret without a prefix (`secretFrom`, envFromSecret).
 * null when neither applies. `refs`/`literal`: the template's (envConfigMapRefs, tokenReviewEnv), or the cache's.
 * `cm`: the ConfigMap to name in the fix. Used by lint (on the render's Deployment) and the audit (on the cache's).
 */
function controllerNotReading(
  d: { ns: string; name: string; refs: readonly EnvConfigMapRef[]; literal: { path: string; value?: string } | undefined; secretFrom?: boolean },
  config: Config,
  issuer: IssuerInfo,
  sev: Severity,
  watched: (name: string) => boolean,
  cm: string,
): Violation | null | 'reads' {
  const { ns, name, refs, literal } = d;
  const base = { rule: 'token-review-required' as const, severity: sev, kind: 'Deployment', namespace: ns, name };
  const why = `${cap(describeIssuer(issuer))}, so kagent needs "true": without it, it cannot verify agent tokens locally and agent callbacks fail with 401.`;
  if (literal) {
    if (literal.value === undefined || literal.value === 'true') return null;
    return {
      ...base,
      path: dotted(literal.path),
      message:
        `[token-review-required] Deployment ${ns}/${name}: ${literal.path} sets ${TOKEN_REVIEW_KEY} to ${quoted(literal.value)} in kagent's controller, ` +
        `which takes precedence over the value from ConfigMap ${ns}/${cm} (env overrides envFrom). ${why} ` +
        `Fix: remove that env entry, so the ConfigMap's ${TOKEN_REVIEW_KEY}: "true" applies (or set its value to "true"), then restart deploy/${name}.`,
    };
  }
  if (refs.some((r) => r.delivers && watched(r.name))) return 'reads';
  // an envFrom Secret may carry it (envFromSecret): not known, so not said to be missing
  if (d.secretFrom) return null;
  // it reads the ConfigMap, but not that key under that name: only in an init container, through an envFrom with a
  // prefix, or in env entries of other keys (the reference's path tells which: a reference from the main containers
  // without a prefix, or of that key as K8S_TOKEN_REVIEW, delivers)
  const near = refs.find((r) => watched(r.name));
  if (near) {
    const init = near.path.includes('.initContainers[');
    const envFrom = !init && near.path.includes('.envFrom[');
    const how = init
      ? `only in an init container (${near.path}), whose environment the controller's container does not get`
      : envFrom
        ? `through an envFrom entry with a prefix (${near.path}), so the variable it gets is named with that prefix, not ${TOKEN_REVIEW_KEY}`
        : `in env entries (${near.path}), but none named ${TOKEN_REVIEW_KEY} takes its key ${TOKEN_REVIEW_KEY}`;
    const fix = init
      ? `add an envFrom entry with configMapRef name ${near.name} to the controller's container (spec.template.spec.containers[0].envFrom)`
      : envFrom
        ? `remove that envFrom entry's prefix, or add an env entry to the controller's container: name ${TOKEN_REVIEW_KEY}, valueFrom.configMapKeyRef name ${near.name}, key ${TOKEN_REVIEW_KEY}`
        : `add an env entry to the controller's container: name ${TOKEN_REVIEW_KEY}, valueFrom.configMapKeyRef name ${near.name}, key ${TOKEN_REVIEW_KEY}`;
    return {
      ...base,
      path: dotted(near.path),
      message:
        `[token-review-required] Deployment ${ns}/${name}: kagent's controller reads ConfigMap ${ns}/${near.name} ${how}, so the value set there never reaches it. ${why} ` +
        `Fix: ${fix}, then restart deploy/${name}.`,
    };
  }
  const other = refs[0];
  const reads = other
    ? ` (it reads ConfigMap ${ns}/${other.name}, ${other.path}${refs.length > 1 ? `, and ${refs.length - 1} more` : ''})`
    : ' (it reads no ConfigMap)';
  // a ConfigMap it reads under another name may be kagent's settings renamed (a kustomize namePrefix or nameSuffix)
  const names = config.tokenReview.configMapNames;
  const renamed = refs.find((r) => !watched(r.name) && kustomizeAffixedFrom(r.name, names));
  const rename = renamed
    ? `; or, if ConfigMap ${renamed.name} is ${kustomizeAffixedFrom(renamed.name, names)!.from} renamed (a kustomize namePrefix or nameSuffix), add its name to tokenReview.configMapNames in the webhook config (with generatorOptions: disableNameSuffixHash: true, for a name that does not change with the content)`
    : '';
  return {
    ...base,
    path: other ? dotted(other.path) : 'spec.template.spec.containers.0',
    message:
      `[token-review-required] Deployment ${ns}/${name}: kagent's controller does not read ${TOKEN_REVIEW_KEY} from ConfigMap ${ns}/${cm}: ` +
      `no envFrom configMapRef (without a prefix) or env configMapKeyRef of its containers names it${reads}, so the value set there never reaches it. ${why} ` +
      `Fix: add an envFrom entry with configMapRef name ${cm} to the controller's container (spec.template.spec.containers[0].envFrom), then restart deploy/${name}${rename}.`,
  };
}

/**
 * token-review-required on kagent's controller Deployment in a render (lint): controllerNotReading, with a
 * kustomize `<configured name>-<hash>` counted as the configured name. Nothing for another object, an issuer that is
 * not external (kagent's settings are checked on the ConfigMap there), or with the rule off. Whether the ConfigMap
 * itself is in the render is not asked: it may come from elsewhere.
 */
export function checkControllerTokenReview(obj: Record<string, any>, ctx: { config: Config; issuer: IssuerInfo; namespace?: string }): Violation[] {
  const sev = severityFor(ctx.config.policies['token-review-required']);
  if (!sev || ctx.issuer.classification !== 'external') return [];
  if (!isObject(obj) || obj.kind !== 'Deployment' || objectName(obj) !== ctx.config.tokenReview.controllerDeployment || !getPodTemplate(obj)) return [];
  const names = ctx.config.tokenReview.configMapNames;
  const watched = (n: string) => names.includes(n) || kustomizeGeneratedFrom(n, names) !== undefined;
  const v = controllerNotReading(
    { ns: objectNamespace(obj, ctx.namespace || 'default'), name: objectName(obj), refs: envConfigMapRefs(obj), literal: tokenReviewEnv(obj), secretFrom: envFromSecret(obj) },
    ctx.config,
    ctx.issuer,
    sev,
    watched,
    names[0] ?? TOKEN_REVIEW_KEY,
  );
  return v && v !== 'reads' ? [v] : [];
}

/**
 * token-review-required on kagent's controller Deployment as the cluster holds it (the background audit), on a
 * cluster whose issuer is external (an unknown one is already warned about where the ConfigMap is applied):
 *   - it reads a ConfigMap of `tokenReview.configMapNames` that does not exist, or it reads no ConfigMap and none of
 *     them exists in its namespace: kagent then verifies tokens locally and agent callbacks fail with 401, and no
 *     admission shows it: ConfigMap deletes are not sent to this webhook (so that uninstalling kagent is never
 *     blocked);
 *   - it reads only ConfigMaps that are not in configMapNames and none of those exists: the finding says that the
 *     webhook does not watch that ConfigMap (kustomize's configMapGenerator names it `<name>-<hash>`), so it cannot
 *     tell whether K8S_TOKEN_REVIEW is set there, and how to make it watched;
 *   - else, what controllerNotReading finds: a literal env K8S_TOKEN_REVIEW that is not "true", or no reference to
 *     a ConfigMap of configMapNames (one that exists, holding "true", does not reach the controller).
 * `configMapRefs` and `tokenReviewEnv` of the cache's slimmed Deployment, else its pod template's; a Deployment with
 * neither (no pod template) is checked for the ConfigMap's existence only.
 */
export function checkMissingTokenReview(
  deployments: readonly Record<string, any>[],
  configMaps: readonly Record<string, any>[],
  config: Config,
  issuer: IssuerInfo,
): Violation[] {
  const sev = severityFor(config.policies['token-review-required']);
  if (!sev || issuer.classification !== 'external') return [];
  const want = config.tokenReview.controllerDeployment;
  const names = config.tokenReview.configMapNames;
  /** namespace → the configured names that exist there */
  const haveIn = new Map<string, Set<string>>();
  for (const cm of configMaps)
    if (isObject(cm) && isObject(cm.metadata) && names.includes(cm.metadata.name)) {
      const ns = objectNamespace(cm, '');
      let set = haveIn.get(ns);
      if (!set) haveIn.set(ns, (set = new Set()));
      set.add(cm.metadata.name);
    }
  const out: Violation[] = [];
  for (const d of deployments) {
    if (!isObject(d) || objectName(d) !== want) continue;
    // not running: scaled to 0 (the cache marks it) or being deleted
    if (d.scaledToZero === true || (isObject(d.metadata) && d.metadata.deletionTimestamp)) continue;
    const ns = objectNamespace(d, '');
    if (!ns) continue;
    const have = haveIn.get(ns);
    const slim = Array.isArray(d.configMapRefs);
    const full = { ...d, kind: 'Deployment' };
    const known = slim || getPodTemplate(full) !== null;
    const refs: EnvConfigMapRef[] = slim ? d.configMapRefs : envConfigMapRefs(full);
    const literal: { path: string; value?: string } | undefined = slim ? (isObject(d.tokenReviewEnv) ? (d.tokenReviewEnv as { path: string; value?: string }) : undefined) : tokenReviewEnv(full);
    const base = { rule: 'token-review-required' as const, severity: sev, kind: 'Deployment', namespace: ns, name: want };
    // a literal "true" (or a value from a Secret, which cannot be checked) is what the controller gets, whatever the ConfigMaps
    if (literal && (literal.value === undefined || literal.value === 'true')) continue;
    const delivering = refs.find((r) => r.delivers && names.includes(r.name));
    // the ConfigMap to name: the one it reads, else one that exists, else the first configured
    const cm = delivering?.name ?? (have ? [...have][0]! : undefined) ?? refs.find((r) => names.includes(r.name))?.name ?? names[0]!;
    const unwatched = refs.filter((r) => !names.includes(r.name));
    let envFromFix = false;
    if (literal) {
      // a literal K8S_TOKEN_REVIEW that is not "true": whatever the ConfigMap holds
      const v = controllerNotReading({ ns, name: want, refs, literal }, config, issuer, sev, (n) => names.includes(n), cm);
      if (v && v !== 'reads') out.push(v);
      continue;
    } else if (!known) {
      // no pod template to read: only whether the ConfigMap exists
      if (have) continue;
    } else if (delivering) {
      // it reads a watched ConfigMap: that one has to exist (its value is checked on it)
      if (have?.has(delivering.name)) continue;
    } else if (!have && unwatched.length && unwatched.length === refs.length) {
      // it reads ConfigMaps the webhook does not watch, none that it does: whether they hold the key is not known
      const r = unwatched[0]!;
      const from = kustomizeGeneratedFrom(r.name, names);
      const more = unwatched.length > 1 ? ` (and ${unwatched.length - 1} more ConfigMaps it does not watch either)` : '';
      out.push({
        ...base,
        path: dotted(r.path),
        message:
          `[token-review-required] Deployment ${ns}/${want}: kagent's controller reads its environment from ConfigMap ${ns}/${r.name} (${r.path})${more}, ` +
          `${from ? `which kustomize's configMapGenerator made from ${from}, ` : ''}` +
          `but the webhook does not watch that ConfigMap (tokenReview.configMapNames: ${names.join(', ')}), so it cannot check that ${TOKEN_REVIEW_KEY} is "true" there, at admission or here. ` +
          `${cap(describeIssuer(issuer))}, so without it kagent cannot verify agent tokens locally and agent callbacks fail with 401. ` +
          (from
            ? `Fix: set generatorOptions: disableNameSuffixHash: true in the kustomization, so the ConfigMap is named ${from}, which the webhook watches, and set ${TOKEN_REVIEW_KEY}: "true" in it (adding ${r.name} to tokenReview.configMapNames holds only until the content, and so the hash, changes).`
            : `Fix: add ${r.name} to tokenReview.configMapNames in the webhook config (or, if a kustomize configMapGenerator named it, set generatorOptions: disableNameSuffixHash: true), and set ${TOKEN_REVIEW_KEY}: "true" in it.`),
      });
      continue;
    } else if (have || refs.length) {
      // the ConfigMap is there (or the controller reads others), but the controller does not read it
      const secretFrom = slim ? d.envFromSecret === true : envFromSecret(full);
      const v = controllerNotReading({ ns, name: want, refs, literal, secretFrom }, config, issuer, sev, (n) => names.includes(n), cm);
      if (v && v !== 'reads') out.push(v);
      continue;
    } else envFromFix = true;
    out.push({
      ...base,
      path: '',
      message:
        `[token-review-required] Deployment ${ns}/${want}: kagent's controller runs, but ConfigMap ${ns}/${cm} does not exist, so ${TOKEN_REVIEW_KEY} is not "true". ` +
        `${cap(describeIssuer(issuer))}, so kagent cannot verify agent tokens locally and agent callbacks fail with 401. ` +
        `Fix: create ConfigMap ${ns}/${cm} with ${TOKEN_REVIEW_KEY}: "true" in data (in what the pipeline renders)` +
        `${envFromFix ? `, add an envFrom entry with configMapRef name ${cm} to the controller's container (spec.template.spec.containers[0].envFrom: kagent reads the setting from its environment)` : ''}, then restart deploy/${want}.`,
    });
  }
  return out;
}

/**
 * Per-object checks with no cross-object state: dedicated-service-account on agent Pods and pod templates,
 * token-review-value / token-review-required on ConfigMaps named in config.tokenReview.configMapNames.
 * `namespace` is the default for objects without metadata.namespace. `immutable`: the ConfigMap as the cluster holds
 * it is immutable (an UPDATE's oldObject, the audit's cached object), so the token rules' fix is to delete and
 * recreate it: the API server refuses any change to its data. `generatedNames` (lint, which sees the whole render): a
 * ConfigMap named `<configured name>-<kustomize hash>` is checked as the configured one (kustomizeGeneratedFrom); the
 * webhook sees exact names only (its matchConditions and its cache's field selector), so admission never sets it.
 * `workload` (a Pod only): the top-level workload whose controller creates it, named in dedicated-service-account's fix.
 */
export function checkObject(
  obj: Record<string, any>,
  ctx: { config: Config; issuer: IssuerInfo; namespace?: string; immutable?: boolean; generatedNames?: boolean; workload?: { kind: string; name: string } },
): Violation[] {
  if (!isObject(obj)) return [];
  const ns = objectNamespace(obj, ctx.namespace || 'default');
  if (obj.kind === 'ConfigMap') return isCoreConfigMap(obj) ? checkTokenReview(obj, ctx.config, ctx.issuer, ns, { immutable: ctx.immutable === true, generatedNames: ctx.generatedNames === true }) : [];
  if (isWorkloadKind(obj.kind)) return checkDedicated(obj, ctx.config, ns, ctx.workload);
  return [];
}

/**
 * Where a template's injection denial points (for lint's line and column): the field the injection core names,
 * else (a malformed template) the part the message names.
 */
function injectionPath(message: string, field: readonly (string | number)[] | undefined, tplPath: string[], spec: unknown): string {
  if (field) return [...tplPath, ...field].join('.');
  const meta = [...tplPath, 'metadata'].join('.');
  if (message.includes(`${meta}.annotations`)) return `${meta}.annotations`;
  if (message.includes(`${meta}.labels`)) return `${meta}.labels`;
  return spec ? [...tplPath, 'spec'].join('.') : tplPath.join('.');
}

/** Where a template's injection warning points (for lint): the field it is about when there is one. */
function injectionWarningPath(rule: InjectionWarning | InjectionPolicy, message: string, tplPath: string[], annotations: Record<string, unknown>, spec: unknown): string {
  const specPath = [...tplPath, 'spec'].join('.');
  switch (rule) {
    case 'pod-resources': {
      // the pod-level request or limit the message names (the API server's own paths in it are left aside)
      const m = / [a-zA-Z.]*\bspec\.resources\.(requests|limits)\.(cpu|memory)\b/.exec(message);
      return m ? `${specPath}.resources.${m[1]}.${m[2]}` : `${specPath}.resources`;
    }
    case 'proxy-uid': {
      // the first container that sets the proxy's uid itself, else the pod's securityContext
      if (isObject(spec))
        for (const list of ['containers', 'initContainers'])
          if (Array.isArray(spec[list]))
            for (let i = 0; i < spec[list].length; i++) {
              const c: unknown = spec[list][i];
              if (isObject(c) && isObject(c.securityContext) && c.securityContext.runAsUser === PROXY_UID) return `${specPath}.${list}.${i}.securityContext.runAsUser`;
            }
      return `${specPath}.securityContext.runAsUser`;
    }
    case 'probe-through-proxy': {
      // the first probe the message lists (`... redirects to the proxy (<podspec>.containers[0].readinessProbe on port
      // 8080, ...`); the last such text, since the container names before it are the client's
      const lead = `redirects to the proxy (${specPath}.`;
      const at = message.lastIndexOf(lead);
      const m = at === -1 ? null : /^(containers|initContainers)\[(\d+)\]\.(livenessProbe|readinessProbe|startupProbe) on port /.exec(message.slice(at + lead.length));
      return m ? `${specPath}.${m[1]}.${m[2]}.${m[3]}` : specPath;
    }
    case 'istio-sidecar': {
      // the istio-proxy container the message names, else the annotation, else (a namespace label) the template's labels
      const m = new RegExp(`\\(${specPath.replace(/[.]/g, '\\.')}\\.(containers|initContainers)\\[(\\d+)\\]\\.name\\)`).exec(message);
      if (m) return `${specPath}.${m[1]}.${m[2]}.name`;
      const meta = [...tplPath, 'metadata'].join('.');
      return ANNOTATION_ISTIO_STATUS in annotations ? `${meta}.annotations.${ANNOTATION_ISTIO_STATUS}` : `${meta}.labels`;
    }
    case 'mesh-sidecar': {
      // the other mesh's proxy container the message names (`container linkerd-proxy (<podspec>.containers[0].name)`)
      const m = new RegExp(`\\(${specPath.replace(/[.]/g, '\\.')}\\.(containers|initContainers)\\[(\\d+)\\]\\.name\\) is `).exec(message);
      if (m) return `${specPath}.${m[1]}.${m[2]}.name`;
      // else the annotation or label that asks for the mesh's injection (`annotation linkerd.io/inject: enabled (<meta>.annotations)`)
      const meta = [...tplPath, 'metadata'].join('.');
      const asked = / (annotation|label) (\S+): \S+ \(/.exec(message);
      return asked ? `${meta}.${asked[1]}s.${asked[2]}` : specPath;
    }
    case 'net-admin': {
      // the first field the message lists (`... (adds NET_ADMIN: <podspec>.containers[1].securityContext.capabilities.add`)
      const lead = `: ${specPath}.`;
      const at = message.indexOf(lead, message.lastIndexOf(' may change the pod\'s iptables rules ('));
      const m = at === -1 ? null : /^(containers|initContainers)\[(\d+)\]\.securityContext\.(privileged|capabilities\.add)/.exec(message.slice(at + lead.length));
      return m ? `${specPath}.${m[1]}.${m[2]}.securityContext.${m[3]}` : specPath;
    }
    case 'sidecars-block-completion':
      return `${specPath}.restartPolicy`;
    case 'init-before-proxy':
      return `${specPath}.initContainers`;
    case 'waypoint-mode':
      return ANNOTATION_MODE in annotations ? `${[...tplPath, 'metadata'].join('.')}.annotations.${ANNOTATION_MODE}` : specPath;
    default:
      return specPath;
  }
}

/**
 * The pod template as the workload's controller turns it into pods, where that differs in what injection reads: the
 * StatefulSet controller adds a persistentVolumeClaim volume for each of `spec.volumeClaimTemplates`, in place of a
 * template volume of the same name. The template itself when nothing differs; else a copy along spec.volumes (the
 * volumes it keeps are the template's own objects). Checked by /validate and lint, injected by `inject`.
 */
export function asCreated(obj: Record<string, any>, template: Record<string, any>): Record<string, any> {
  const claims = claimNames(obj).filter((n) => n !== '');
  if (!claims.length || !isObject(template.spec)) return template;
  const spec = template.spec;
  // volumes that are not a list: left for the injection core's shape check to deny (malformed-object)
  if (spec.volumes !== undefined && spec.volumes !== null && !Array.isArray(spec.volumes)) return template;
  const claimed = new Set<unknown>(claims);
  const own = Array.isArray(spec.volumes) ? spec.volumes.filter((v: unknown) => !(isObject(v) && claimed.has(v.name))) : [];
  const pvcs = claims.map((n) => ({ name: n, persistentVolumeClaim: { claimName: `${n}-${objectName(obj)}-0` } }));
  return { ...template, spec: { ...spec, volumes: [...own, ...pvcs] } };
}

/** A StatefulSet's `spec.volumeClaimTemplates[*].metadata.name`, in order (empty for other kinds). */
function claimNames(obj: Record<string, any>): string[] {
  if (obj.kind !== 'StatefulSet' || !isObject(obj.spec) || !Array.isArray(obj.spec.volumeClaimTemplates)) return [];
  return obj.spec.volumeClaimTemplates.map((c: unknown) => (isObject(c) && isObject(c.metadata) && typeof c.metadata.name === 'string' ? c.metadata.name : ''));
}

/**
 * A denial about a volume of the pod as its controller creates it (asCreated), put back on the field that made it:
 * the template volume's index in the template as written, or the StatefulSet's claim
 * (`spec.volumeClaimTemplates[k].metadata.name`), with the message saying so. `path` is then the whole object's.
 * Used by /validate, lint and `inject`, so that all three word such a denial alike.
 */
export function ownField(
  obj: Record<string, any>,
  template: Record<string, any>,
  created: Record<string, any>,
  r: { message: string; field?: readonly (string | number)[] },
  tplPath: string[],
): { message: string; field?: readonly (string | number)[]; path?: string } {
  const f = r.field;
  if (created === template || !f || f[0] !== 'spec' || f[1] !== 'volumes' || typeof f[2] !== 'number') return r;
  const specPath = [...tplPath, 'spec'].join('.');
  const name: unknown = created.spec.volumes[f[2]]?.name;
  const k = claimNames(obj).indexOf(name as string);
  if (k === -1) {
    const i = Array.isArray(template.spec?.volumes) ? template.spec.volumes.findIndex((v: unknown) => isObject(v) && v.name === name) : -1;
    return { message: r.message.replace(`${specPath}.volumes[${f[2]}]`, `${specPath}.volumes[${i}]`), field: ['spec', 'volumes', i, ...f.slice(3)] };
  }
  return {
    message: r.message.replace(
      `${specPath}.volumes[${f[2]}].name is ${name as string},`,
      `spec.volumeClaimTemplates[${k}].metadata.name is ${name as string} (the StatefulSet controller adds a volume of that name to each pod),`,
    ).replace('Fix: rename your volume,', 'Fix: rename the claim,'),
    path: `spec.volumeClaimTemplates.${k}.metadata.name`,
  };
}

/** A message with a sentence added just before its `Fix:` (at the end when it has none), keeping the one-line form. */
export function noteBeforeFix(message: string, note: string): string {
  const at = message.lastIndexOf(' Fix: ');
  return at === -1 ? `${message} ${note}` : `${message.slice(0, at)} ${note}${message.slice(at)}`;
}

/**
 * The injection core's checks on the pod template of an agent workload (or an agent Pod, for lint): what
 * `/mutate` would deny when the workload's controller creates a pod (invalid-annotation, reserved-name,
 * port-conflict, host-network, unsupported-os, malformed-object, pod-resources, istio-sidecar under deny), as error violations of the workload, and the
 * warnings it would give (named as INJECTION_WARNINGS, and pod-resources or istio-sidecar under their policy's warn), as warning violations. Checked on the workload, `kubectl apply` and `lint` report them; otherwise the apply
 * succeeds and the pods never come (FailedCreate events on a ReplicaSet). Not configurable, except pod-resources and istio-sidecar
 * (`policies.pod-resources`, `policies.istio-sidecar`, read by the injection core): `/mutate` always denies the others. The same code as `/mutate` and `inject`; they can disagree only where the pod differs from its
 * template by what other admission steps add (PodNodeSelector, another injector) or the namespace's labels change.
 */
export function checkInjection(
  obj: Record<string, any>,
  ctx: { config: Config; namespace?: string; namespaceLabels?: Record<string, string> },
): { violations: Violation[]; warnings: Violation[]; csiVolume: boolean } {
  const none = { violations: [], warnings: [], csiVolume: false };
  if (!isObject(obj) || !isWorkloadKind(obj.kind)) return none;
  const tpl = getPodTemplate(obj);
  if (!tpl) return none;
  const kind = obj.kind as string;
  const ns = objectNamespace(obj, ctx.namespace || 'default');
  const name = objectName(obj);
  const created = asCreated(obj, tpl.template);
  const r = injectTemplate(created, ctx.config, { namespace: ns, namespaceLabels: ctx.namespaceLabels, ref: `${kind} ${ns}/${name}`, checkOnly: true }, podSpecFieldPath(kind));
  if (r.outcome === 'skip') return none;
  if (r.outcome === 'inject') {
    const warnings: Violation[] = [];
    for (const message of r.warnings) {
      const rule = warningName(message);
      if (!rule) continue;
      warnings.push({ rule, severity: 'warning', message, path: injectionWarningPath(rule, message, tpl.path, tpl.annotations, tpl.spec), kind, namespace: ns, name });
    }
    // an earlier injection's pieces left in a template that no longer asks for one (withoutInjection took them out)
    // (the pieces of the template as written: a StatefulSet's claim that asCreated adds under a reserved name is not one)
    const own = r.removed && new Set([...namesIn(tpl.spec?.containers), ...namesIn(tpl.spec?.initContainers), ...namesIn(tpl.spec?.volumes)]);
    const removed = r.removed && { ...r.removed, pieces: r.removed.pieces.filter((p) => own!.has(p)) };
    const stale = removed && ctx.config.policies['stale-injection'] !== 'off' ? staleInjection(`${kind} ${ns}/${name}`, [...tpl.path, 'metadata'].join('.'), removed, kind === 'Job') : undefined;
    if (stale) warnings.push({ rule: 'stale-injection', severity: 'warning', message: stale, path: [...tpl.path, 'metadata', 'annotations', ANNOTATION_STATUS].join('.'), kind, namespace: ns, name });
    return { violations: [], warnings, csiVolume: r.status.volumes.length > 0 };
  }
  const violations: Violation[] = r.all.map((d) => {
    const own = ownField(obj, tpl.template, created, d, tpl.path);
    const v: Violation = { rule: d.rule, severity: 'error', message: own.message, path: own.path ?? injectionPath(own.message, own.field, tpl.path, tpl.spec), kind, namespace: ns, name };
    if (d.schema) v.schema = true;
    return v;
  });
  const last = violations[violations.length - 1]!;
  if (r.unlisted) last.message += ` (${r.unlisted} more injection denials of this template are not listed.)`;
  return {
    violations,
    warnings: [],
    csiVolume: false,
  };
}

/** The string names of a list's items (containers, volumes), for a list of anything. */
function namesIn(list: unknown): string[] {
  return Array.isArray(list) ? list.flatMap((x: unknown) => (isObject(x) && typeof x.name === 'string' ? [x.name] : [])) : [];
}

/** Namespaces whose labels a RenderedNamespaces keeps; past this, further ones are not kept (as lint's selectors). */
export const MAX_RENDERED_NAMESPACES = 50_000;

/**
 * The labels of the Namespace documents a render has shown so far (kustomize puts them first), by name: what lint
 * and `inject` pass to the injection checks as `namespaceLabels` where the webhook reads the cluster's (the
 * authbridge-mode label, Pod Security's enforce level). The first document of a name counts, and only its string
 * labels; a namespace the render has not shown (yet) has none, as for a webhook whose cache has not seen it.
 */
export class RenderedNamespaces {
  private readonly byName = new Map<string, Record<string, string>>();
  /** how the kept strings are copied (lint: so that they do not retain the input's text) */
  private readonly copy: (s: string) => string;

  constructor(copy: (s: string) => string = (s) => s) {
    this.copy = copy;
  }

  /** Records a Namespace object's labels (at most MAX_RENDERED_NAMESPACES namespaces); ignores any other object. */
  note(obj: unknown): void {
    if (!isObject(obj) || obj.kind !== 'Namespace' || !isObject(obj.metadata)) return;
    const name: unknown = obj.metadata.name;
    if (typeof name !== 'string' || this.byName.has(name) || this.byName.size >= MAX_RENDERED_NAMESPACES) return;
    const labels: Record<string, string> = {};
    const md = isObject(obj.metadata.labels) ? obj.metadata.labels : {};
    for (const [k, v] of Object.entries(md)) if (typeof v === 'string') labels[this.copy(k)] = this.copy(v);
    this.byName.set(this.copy(name), labels);
  }

  /** The labels of a namespace the render has shown, else undefined. */
  labels(namespace: string): Record<string, string> | undefined {
    return this.byName.get(namespace);
  }
}

/** Whether two objects of a workload kind carry the same pod template (an UPDATE that leaves it as it was). */
export function samePodTemplate(a: unknown, b: unknown): boolean {
  const ta = getPodTemplate(a);
  const tb = getPodTemplate(b);
  if (!ta || !tb) return false;
  try {
    return jsonEqual(ta.template, tb.template);
  } catch (err) {
    // nested deeper than the stack allows (only a client other than the API server can send that): changed
    if (err instanceof RangeError) return false;
    throw err;
  }
}

/**
 * The agent identity of a Pod or workload for unique-service-account; null when not an agent (or not a workload kind).
 * `now`: the request's time (identity.ts topLevelWorkload).
 */
export function agentOf(obj: Record<string, any>, config: Config, namespace?: string, lookup?: OwnerLookup, now?: number): AgentRef | null {
  const id: AgentIdentity | null = agentIdentity(obj, config, namespace, lookup, now);
  return id;
}

const TOOLS_AS_AGENTS = new WeakMap<Config, Config>();

/**
 * `config` with tools read as agents (featureGates.injectTools on): how a tool's identity is read while tools are no
 * agents to the webhook (checkToolSharesAgent, the fix texts of a tool's pod). One per config object (configs are
 * frozen once loaded).
 */
export function toolsAsAgents(config: Config): Config {
  if (config.featureGates.injectTools) return config;
  let c = TOOLS_AS_AGENTS.get(config);
  if (!c) TOOLS_AS_AGENTS.set(config, (c = { ...config, featureGates: { ...config.featureGates, injectTools: true } }));
  return c;
}

/**
 * The workload whose pod template a controller's pod is made from (its Deployment, CronJob...), found as
 * dedicated-service-account's fix finds it (agentOf; a tool's pod as an agent's): where a per-pod annotation or
 * label has to go, since the controller's next pod comes from the template. Undefined for a pod of its own.
 */
export function templateWorkload(pod: Record<string, any>, config: Config, namespace?: string, lookup?: OwnerLookup, now?: number): TemplateOwner | undefined {
  const a = agentOf(pod, toolsAsAgents(config), namespace, lookup, now);
  return a?.source ? templateOwner(a, podLabels(pod)) : undefined;
}

function podLabels(pod: Record<string, any>): Record<string, unknown> {
  return isObject(pod.metadata) && isObject(pod.metadata.labels) ? pod.metadata.labels : {};
}

/**
 * The workload a fix for a controller's pod names, from the one that creates it (`workload`, as agentOf finds it) and
 * the pod's labels: where the user writes the template, which the controller copies into what makes the pods.
 * - A Job named `<cronjob>-<minutes>` (8 to 12 digits: the CronJob controller names its Jobs after their scheduled
 *   minute since the epoch) that agentOf could not tie to its CronJob (not cached, or no cluster) → that CronJob:
 *   a Job's template cannot be changed, and the next run is a new Job made from the CronJob's jobTemplate.
 * - Another Job → itself, `immutable`: the fix is to create it again with the change.
 * - A Knative Configuration whose pods carry `serving.knative.dev/service: <svc>` → the Knative Service, which owns
 *   the Configuration and writes its template over every edit (its pods carry the Configuration's label: else a
 *   Configuration of another group, whose template is not known).
 * - Else the workload, its template where workloadTemplateAt finds it from the pod's labels.
 * With `made` when a custom resource makes that workload from its own fields (identity.ts podMaker: a kagent Agent, a
 * KServe InferenceService): the fixes that label or annotate the pod name that resource's fields.
 */
export function templateOwner(workload: { kind: string; name: string }, labels: Record<string, unknown>): TemplateOwner {
  const owner = workloadOwnerOf(workload, labels);
  // a workload a custom resource makes from its fields: per-pod labels and annotations are set there
  const maker = podMaker(workload, labels);
  if (maker?.kind === 'Agent')
    // (kagent's Agent has deployment annotations too, but where they go is not confirmed: its pod annotations stay the template's)
    owner.made = { label: `kagent Agent/${shown(maker.name)}`, labels: 'spec.declarative.deployment.labels; spec.byo.deployment.labels for a BYO agent' };
  else if (maker) owner.made = { label: `KServe InferenceService/${shown(maker.name)}`, labels: `spec.${maker.component}.labels`, annotations: `spec.${maker.component}.annotations` };
  return owner;
}

/** templateOwner without the maker: the workload whose template the controller copies. */
function workloadOwnerOf(workload: { kind: string; name: string }, labels: Record<string, unknown>): TemplateOwner {
  const { kind, name } = workload;
  if (kind === 'Job') {
    // (no clock here, unlike identity's cache fallback: a minute of 8 digits or more, from 1989 on, is taken for one)
    const job = cronJobJobParts(name);
    if (job && job.minutes >= 10_000_000) return { kind: 'CronJob', name: job.cronJob, label: `CronJob/${job.cronJob}`, at: workloadTemplateAt('CronJob') };
    return { kind, name, label: `Job/${name}`, at: workloadTemplateAt(kind), immutable: true };
  }
  if (kind === 'Configuration' && labels[KNATIVE_CONFIGURATION_LABEL] === name) {
    const svc = labels[KNATIVE_SERVICE_LABEL];
    if (typeof svc === 'string' && svc) return { kind: 'Service', name: svc, label: `Knative Service/${svc}`, at: { path: 'spec.template' } };
    return { kind, name, label: `Configuration/${name}`, at: { path: 'spec.template' } };
  }
  return { kind, name, label: `${kind}/${name}`, at: workloadTemplateAt(kind, labels) };
}

function refText(a: AgentRef): string {
  return `${a.kind}/${a.name}`;
}

const TYPE_LABEL = 'kagenti.io/type';

function labelText(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : 'unset';
}

/**
 * unique-service-account on a Pod UPDATE: `kagenti.io/type` and `kagenti.io/agent` are read once, when the pod is
 * created (injection and the ServiceAccount claim follow them).
 * - A running pod whose type leaves an agent type keeps its sidecars and SPIFFE ID but stops counting as the agent
 *   on its ServiceAccount, so another agent could be admitted with the same identity; one whose type enters an
 *   agent type counts as an agent without the wiring.
 * - A running agent pod whose `kagenti.io/agent` changes would count as another agent on the same ServiceAccount
 *   (pods admitted as one agent, relabelled apart, are many agents sharing one identity).
 * All are denied. A type change that keeps the pod an agent (agent to tool with tools enabled), or one between
 * non-agent values, changes no claim; nor does any change on a pod that has finished (Succeeded or Failed).
 */
export function checkAgentLabelChange(
  pod: Record<string, any>,
  old: Record<string, any> | null | undefined,
  config: Config,
  namespace?: string,
): Violation[] {
  const sev = severityFor(config.policies['unique-service-account']);
  if (!sev || !isObject(pod) || !isObject(old)) return [];
  // A pod that has finished (Succeeded, Failed: its containers are stopped for good) runs nothing and claims no
  // ServiceAccount, so relabelling it (cleanup tools, a Job's pods kept for their logs) changes no claim. The phase
  // is the stored one: an UPDATE of a pod cannot change its status.
  const phase = isObject(old.status) ? old.status.phase : undefined;
  if (phase === 'Succeeded' || phase === 'Failed') return [];
  const labels = isObject(pod.metadata) && isObject(pod.metadata.labels) ? pod.metadata.labels : {};
  const oldLabels = isObject(old.metadata) && isObject(old.metadata.labels) ? old.metadata.labels : {};
  const wasAgent = isAgentType(oldLabels, config);
  const isAgent = isAgentType(labels, config);
  let label: string;
  let why: (sa: string, id: string) => string;
  if (labels[TYPE_LABEL] !== oldLabels[TYPE_LABEL] && wasAgent !== isAgent) {
    label = TYPE_LABEL;
    why = wasAgent
      ? (sa, id) => `The pod keeps its sidecars and SPIFFE ID ${id}, but would stop counting as the agent on ServiceAccount "${sa}", so another agent could be admitted with the same identity.`
      : (sa) => `The label is read when a pod is created: this pod was not set up as an agent, yet it would count as one on ServiceAccount "${sa}".`;
  } else if (wasAgent && isAgent && (labels[AGENT_LABEL] || undefined) !== (oldLabels[AGENT_LABEL] || undefined)) {
    label = AGENT_LABEL;
    why = (sa, id) => `The label names the agent the pod belongs to and is read when it is created: relabelled, the pod would count as another agent on ServiceAccount "${sa}" while keeping ${id}, so two agents would share it.`;
  } else return [];
  const ns = objectNamespace(pod, namespace || 'default');
  const name = objectName(pod);
  const sa = effectiveServiceAccount(isObject(pod.spec) ? pod.spec : undefined);
  const path = `metadata.labels["${label}"]`;
  const what = `${path} changes from ${labelText(oldLabels[label])} to ${labelText(labels[label])} on a ${phase === 'Pending' ? 'pending' : 'running'} pod`;
  return [
    {
      rule: 'unique-service-account',
      severity: sev,
      kind: 'Pod',
      namespace: ns,
      name,
      path,
      message:
        `[unique-service-account] Pod ${ns}/${name}: ${what}. ${why(sa, spiffeId(config.trustDomain, ns, sa))} ` +
        `Fix: change the label in the pod's workload template (which replaces the pod), or delete the pod and create it with the label it needs.`,
    },
  ];
}

/**
 * Whether dedicated-service-account already denies this agent for running as `default` (or no ServiceAccount):
 * its fix, an own ServiceAccount, also ends any sharing, so an apply or lint reports one error, not two (the
 * second naming a serviceAccountName the manifest may not even have). The audit reports both: it counts state.
 */
export function dedicatedDenies(candidate: AgentRef, config: Config): boolean {
  return (candidate.serviceAccount === 'default' || !candidate.serviceAccount) && severityFor(config.policies['dedicated-service-account']) === 'error';
}

/**
 * Whether claim `o` is another agent on `a`'s ServiceAccount (not `a` itself or its pods, not the same agent label):
 * checkUnique and checkUniqueSince read nothing of a claim for which this is false.
 */
export function sharesWith(a: AgentRef, o: AgentRef): boolean {
  if (o.namespace !== a.namespace || o.serviceAccount !== a.serviceAccount) return false;
  if (o.kind === a.kind && o.name === a.name) return false; // self (e.g. UPDATE, or its own pods)
  return identityKey(o) !== identityKey(a); // same agent (kagenti.io/agent), e.g. blue/green
}

/**
 * unique-service-account: candidate vs the other claims on the same (namespace, serviceAccount). `warned`: the
 * result is given as a warning on an allowed request (checkUniqueSince), so a fix that says to retry is worded as
 * what ends the sharing instead (nothing was refused).
 */
export function checkUnique(candidate: AgentRef, others: AgentRef[], config: Config, warned = false): Violation[] {
  const sev = severityFor(config.policies['unique-service-account']);
  if (!sev) return [];
  // One entry per other agent. It is being deleted only when every claim behind it is (the Deployment and its
  // pods); it is former when every claim is an object left from before its workload moved off the ServiceAccount
  // (then the workload itself is not among them, and what is deleted, or stops, is those objects, not it).
  interface Conflict {
    ref: AgentRef;
    deleting: boolean;
    until?: string;
    former?: AgentRef['former'];
    /** the first former object, a ReplicaSet (or Job) rather than a pod when there is one; how many there are */
    old?: { kind: string; name: string };
    olds: number;
  }
  const conflicts = new Map<string, Conflict>();
  for (const o of others) {
    if (!sharesWith(candidate, o)) continue;
    const label = o.agent ? `${refText(o)} (agent ${o.agent})` : refText(o);
    let c = conflicts.get(label);
    if (!c) conflicts.set(label, (c = { ref: o, deleting: !!o.deleting, until: o.deleting?.until, former: o.former, olds: 0 }));
    else {
      c.deleting &&= !!o.deleting;
      if (!o.former) c.former = undefined;
      const until = o.deleting?.until;
      if (until && (!c.until || until > c.until)) c.until = until;
    }
    if (o.former && o.source) {
      c.olds++;
      if (!c.old || (c.old.kind === 'Pod' && o.source.kind !== 'Pod')) c.old = o.source;
    }
  }
  if (!conflicts.size) return [];
  const self = candidate.source ?? { kind: candidate.kind, name: candidate.name };
  const ns = candidate.namespace;
  const sa = candidate.serviceAccount;
  // The other agents, each once (one workload can be two entries: mid-rollout of a kagenti.io/agent label, its old
  // pods count as the workload, its new ones as the label), named with the label its template has now (the fix needs
  // it), those that stay first: a plain one, then one admitted moments ago or a released pod; then those going away
  // (being deleted, or only what is left from before a move). Its entry: the one that says most of its state.
  const rank = (c: Conflict) => (c.deleting ? 3 : c.former ? 2 : c.ref.released || c.ref.recent ? 1 : 0);
  const agents = new Map<string, { c: Conflict; label?: string }>();
  for (const c of [...conflicts.values()].sort((a, b) => rank(a) - rank(b))) {
    const a = agents.get(refText(c.ref));
    if (!a) agents.set(refText(c.ref), { c, label: c.ref.agent });
    else a.label ??= c.ref.agent;
  }
  const list = [...agents.values()];
  const staying = list.filter((a) => rank(a.c) < 2).length;
  // what an agent's state adds to its name, and (for the first one named) the retry the fix starts with
  const andOthers = list.length > 1 ? ' (and the others)' : '';
  const stateOf = (c: Conflict): { note: string; retry: string } => {
    const r = c.ref;
    if (c.former && c.old) {
      // the workload has moved off this ServiceAccount; only what is left of it from before still runs as it
      const old = c.old;
      const more = c.olds > 1 ? ` (and ${c.olds - 1} more)` : '';
      const one = c.olds === 1;
      const by = c.deleting && c.until ? `, being deleted; ${one && old.kind === 'Pod' ? 'it stops' : 'they stop'} by ${c.until}` : '';
      const now = { moved: 'whose template uses another ServiceAccount now', 'no-agent': 'whose template is no agent now', stopped: 'which runs no pods now' }[c.former];
      const onePod = one && old.kind === 'Pod';
      const pods = `the old ${onePod ? 'pod' : 'pods'} of ${refText(r)}`;
      return {
        note: `, ${now}, but whose old ${old.kind} ${old.name}${more} still ${one ? 'runs' : 'run'} as it${by}`,
        retry: warned ? `none needed: it ends once ${pods} ${onePod ? 'has' : 'have'} stopped${andOthers}; to end it sooner, ` : `retry once ${pods} ${onePod ? 'has' : 'have'} stopped${andOthers}, or `,
      };
    }
    if (c.deleting) {
      const by = c.until ? `; ${r.kind === 'Pod' ? 'it stops' : 'its pods stop'} by ${c.until}` : '';
      return {
        note: `, which is being deleted${by}`,
        retry: warned ? `none needed: it ends once ${refText(r)} is gone${andOthers}; to end it sooner, ` : `retry once ${refText(r)} is gone${andOthers}, or `,
      };
    }
    if (r.recent)
      // admitted by this webhook moments ago, not in its cache yet: if that create failed after the webhooks (another
      // webhook, a quota), it holds nothing, and is forgotten within the TTL
      return {
        note: ', admitted moments ago',
        retry: warned ? `none needed if ${refText(r)} was not created after all; else ` : `if ${refText(r)} was not created after all, retry in ${ADMITTED_TTL_MS / 1000} seconds; else `,
      };
    if (r.released) {
      // a pod taken out of its ReplicaSet (for debugging): not that workload's any more, and nothing will delete it
      const { replicaSet, workload } = r.released;
      return {
        note: `, a pod released by ReplicaSet ${replicaSet}${workload ? ` of ${workload.kind}/${workload.name}` : ''}: it has no owner now (its labels no longer match the selector), so it runs on as an agent of its own`,
        retry: `delete ${refText(r)} when you are done with it (kubectl -n ${r.namespace} delete pod ${r.name}), or `,
      };
    }
    return { note: '', retry: '' };
  };
  const nameOf = (a: { c: Conflict; label?: string }) => `${refText(a.c.ref)}${a.label ? ` (kagenti.io/agent=${a.label})` : ''}${stateOf(a.c).note}`;
  const retry = stateOf(list[0]!.c).retry;
  // the first two named, each with its state; then how many more, and how many of those are going away
  const rest = list.length - 2;
  const restGoing = list.slice(2).filter((a) => rank(a.c) >= 2).length;
  const moreText = restGoing === 0 ? `${rest} more` : restGoing === rest ? `${rest} more going away` : `${rest} more (${restGoing} of them going away)`;
  const named =
    list.length === 1 ? `agent ${nameOf(list[0]!)}` : list.length === 2 ? `agents ${nameOf(list[0]!)} and ${nameOf(list[1]!)}` : `agents ${nameOf(list[0]!)}, ${nameOf(list[1]!)} and ${moreText}`;
  // this agent and the others that stay (all of them when none does: they share until those go)
  const total = (staying || list.length) + 1;
  const share = total === 2 ? 'Both would share' : `All ${total} would share`;
  const apart = total === 2 ? 'neither agent can be told apart' : 'none of them can be told apart';
  const onAll = total === 2 ? 'on both' : 'on all of them';
  const path = `${podSpecFieldPath(self.kind)}.${candidate.serviceAccountField ?? 'serviceAccountName'}`;
  // a workload a custom resource makes (a kagent Agent's Deployment...): the ServiceAccount is set in that resource
  const made = candidate.maker && makerText(candidate.maker, ns);
  const makerOwn = made ? ` (for ${made.owner}: ${made.field}${made.unset ? `; ${made.unset}` : ''})` : '';
  return [
    {
      rule: 'unique-service-account',
      severity: sev,
      kind: self.kind,
      namespace: ns,
      name: self.name,
      path,
      message:
        `[unique-service-account] ${self.kind} ${ns}/${self.name}: ServiceAccount "${sa}" (${path}) is already ` +
        `the identity of ${named}. ${share} ${spiffeId(config.trustDomain, ns, sa)}, so ` +
        `${apart}. Fix: ${retry}give each agent its own ServiceAccount${makerOwn}, or set the same ` +
        `kagenti.io/agent label ${onAll} if they are one agent.`,
    },
  ];
}

/**
 * unique-service-account for an agent that already claimed a ServiceAccount as `previous`: a workload UPDATE
 * (`previous`: its oldObject's claim), or a new pod of a workload the cache holds (`previous`: that workload's
 * claim). Sharing that already existed (`previous`, on the same ServiceAccount, shared it with the same other
 * agent: two agents admitted before the webhook, or while the rule was `warn`) is a warning that still names the
 * other agent and the fix: denying it would block every unrelated change (an image bump, and the pods it rolls
 * out, or a pod replaced after a node drain) and the very fix the message gives (the same kagenti.io/agent label
 * on both, one workload at a time). Sharing the update or pod adds (another ServiceAccount, a template that was no
 * agent, another agent label) is denied as checkUnique denies it. Without `previous` (a CREATE of a workload, a
 * bare pod, a pod whose workload is not cached or claims another ServiceAccount), checkUnique.
 */
export function checkUniqueSince(candidate: AgentRef, previous: AgentRef | null | undefined, others: AgentRef[], config: Config): Violation[] {
  if (!previous) return checkUnique(candidate, others, config);
  const added: AgentRef[] = [];
  const before: AgentRef[] = [];
  for (const o of others) (sharesWith(previous, o) ? before : added).push(o);
  const out = checkUnique(candidate, added, config);
  const self = candidate.source?.kind;
  const note = self
    ? `Not denied: its workload ${refText(previous)} already shares it, and this ${self === 'Pod' ? 'pod' : self} adds no sharing.`
    : `Not denied: ${refText(previous)} shared it before this update, which adds no sharing.`;
  for (const v of checkUnique(candidate, before, config, true))
    out.push({ ...v, severity: 'warning', message: noteBeforeFix(v.message.replace(/\. (Both|All [0-9]+) would share /, '. $1 share '), note) });
  return out;
}

/**
 * Where checkToolSharesAgent reports a tool: the object itself (its `source` when it counts as its workload) and its
 * ServiceAccount field. Lint locates it when it reads the tool, before it knows whether an agent shares the account.
 */
export function toolSharingSite(tool: AgentRef): { kind: string; name: string; path: string } {
  const self = tool.source ?? { kind: tool.kind, name: tool.name };
  return { kind: self.kind, name: self.name, path: `${podSpecFieldPath(self.kind)}.${tool.serviceAccountField ?? 'serviceAccountName'}` };
}

/**
 * unique-service-account for a tool (`kagenti.io/type: tool`) while featureGates.injectTools is off: no agent to the
 * webhook, so it claims nothing and is never denied, but a SPIRE registration whose pod selector includes `tool` gives
 * it the SPIFFE ID of its ServiceAccount, which an agent in `others` (the claims on it) may hold. A warning naming
 * that agent; none when the rule is off. `tool`: the tool's identity read as if tools were agents.
 */
export function checkToolSharesAgent(tool: AgentRef, others: AgentRef[], config: Config): Violation[] {
  if (!severityFor(config.policies['unique-service-account'])) return [];
  const sharing = others.filter((o) => sharesWith(tool, o));
  if (!sharing.length) return [];
  const first = sharing.find((o) => !o.deleting && !o.former && !o.recent) ?? sharing[0]!;
  const more = new Set(sharing.map(refText)).size - 1;
  const self = toolSharingSite(tool);
  const path = self.path;
  const { namespace: ns, serviceAccount: sa } = tool;
  return [
    {
      rule: 'unique-service-account',
      severity: 'warning',
      kind: self.kind,
      namespace: ns,
      name: self.name,
      path,
      message:
        `[unique-service-account] ${self.kind} ${ns}/${self.name}: ServiceAccount "${sa}" (${path}) is the identity of agent ` +
        `${refText(first)}${more > 0 ? ` and ${more} more` : ''}. This tool (kagenti.io/type: tool) is not denied, as it is no agent while ` +
        `featureGates.injectTools is off, but a SPIRE registration whose pod selector includes tool would give it that agent's ` +
        `SPIFFE ID ${spiffeId(config.trustDomain, ns, sa)}. Fix: give the tool its own ServiceAccount.`,
    },
  ];
}

/**
 * unchecked-template: an object that is none of the workloads lint and inject know (an Argo Rollout, a KEDA
 * ScaledJob's kin, a custom resource of another group with a known kind such as OpenKruise's apps.kruise.io
 * StatefulSet, a LeaderWorkerSet, a JobSet, a RayCluster) whose pod template (spec.template,
 * spec.jobTemplate.spec.template, or one nested deeper: workloads.ts otherPodTemplates) asks for injection. Its
 * controller's pods reach /mutate and /validate like any other, so the webhook injects into them and denies what it
 * denies, but nothing here read the template: one warning says so, with how to check the pods. Null otherwise, and
 * in a namespace the webhook never sees (nothing is injected there). `tool`: who says it.
 */
export function checkUncheckedTemplate(obj: unknown, ctx: { config: Config; namespace?: string; tool: 'lint' | 'inject' }): Violation | null {
  // the first template that asks for injection (a LeaderWorkerSet's worker template, when its leader's does not)
  const tpl = otherPodTemplates(obj).find((t) => eligibility(t.labels, ctx.config) === null);
  if (!tpl || !isObject(obj)) return null;
  const ns = objectNamespace(obj, ctx.namespace || 'default');
  if (UNWATCHED_NAMESPACES.includes(ns)) return null;
  const kind = typeof obj.kind === 'string' ? obj.kind : '<no kind>';
  const name = objectName(obj);
  const apiVersion = typeof obj.apiVersion === 'string' ? obj.apiVersion : '';
  const type = String(tpl.labels[LABEL_TYPE]);
  const at = `${pathText(tpl.path)}.metadata.labels`;
  const full = cutKey(apiVersion ? `${apiVersion} ${kind}` : kind);
  const what = isWorkloadKind(kind)
    ? `${full} is a custom resource of group ${cutKey(apiGroup(apiVersion) ?? '')}, not the ${kindGroup(kind) ? `${kindGroup(kind)} group's` : 'core'} ${kind} that ${ctx.tool} knows`
    : `${full} is not a kind ${ctx.tool} knows`;
  // the pods to look at: the template's own labels, the agent label first (a few, as a selector)
  const selector = [[LABEL_TYPE, type], ...Object.entries(tpl.labels).filter(([k, v]) => k !== LABEL_TYPE && typeof v === 'string' && v !== '').slice(0, 2)]
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  return {
    rule: 'unchecked-template',
    severity: 'warning',
    kind,
    namespace: ns,
    name,
    path: `${tpl.path.join('.')}.metadata.labels.${LABEL_TYPE}`,
    message:
      `[unchecked-template] ${cutKey(kind)} ${ns}/${cutKey(name)}: its pod template is labelled ${LABEL_TYPE}: ${type} (${at}), so the webhook will inject AuthBridge into the pods its controller creates, and deny those it cannot inject, at admission; ` +
      `but ${what}: this template was not checked or injected offline. ` +
      `Fix: check its pods once they are created (kubectl get pod -n ${ns} -l ${selector} -o yaml | kagenti-webhook lint -; a denied pod shows in its controller's events), or label the template ${LABEL_INJECT_TEXT} if it is not meant to get the sidecars.`,
  };
}

const LABEL_INJECT_TEXT = 'kagenti.io/inject: disabled';
