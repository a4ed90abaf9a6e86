// Agent identity: which top-level workload (or kagenti.io/agent name) a Pod or workload belongs to.
// Pure functions; the cluster cache supplies an OwnerLookup so Job pods of a CronJob and ReplicaSets of a
// Deployment resolve to their top-level owner, and an orphan is taken for its workload only when that
// workload's selector would adopt it. Never puts a pod-template hash into an identity.
import type { KubeObject } from './admission.ts';
import type { Config } from './config.ts';
import { isAgentType } from './config.ts';
import { apiGroup, getPodTemplate, isWorkloadKind } from './workloads.ts';
import { isObject } from './json.ts';

export const AGENT_LABEL = 'kagenti.io/agent';

/**
 * The labels kagent's controller puts on the Deployment it writes for a kagent.dev Agent, and on its pod template:
 * `app.kubernetes.io/managed-by: kagent` and `kagent: <agent>`; the Deployment is named after the Agent.
 */
const KAGENT_MANAGED_BY = 'app.kubernetes.io/managed-by';
const KAGENT_AGENT = 'kagent';

/**
 * Whether Deployment `name`, whose pod template (or pod) has these labels, is the one kagent's controller writes for
 * the kagent Agent of the same name: its template comes from the Agent and edits to it are reverted, so fixes name
 * the Agent's fields (rules.ts).
 */
function isKagentDeployment(name: string, labels: Record<string, unknown>): boolean {
  return labels[KAGENT_MANAGED_BY] === 'kagent' && labels[KAGENT_AGENT] === name;
}

/** The labels KServe puts on an InferenceService's pods (and its Deployment's or Knative Service's template). */
const KSERVE_ISVC = 'serving.kserve.io/inferenceservice';
const KSERVE_COMPONENT = 'component';
const KSERVE_COMPONENTS = new Set(['predictor', 'transformer', 'explainer']);

/**
 * A custom resource whose controller makes an agent's workload from its own fields and reverts edits to the
 * workload's template, so that a fix names its field: a kagent Agent (its Deployment), a KServe InferenceService
 * (the Deployment, or the Knative Service, of one of its components).
 */
export type PodMaker = { kind: 'Agent'; name: string } | { kind: 'InferenceService'; name: string; component: string };

/**
 * The maker of workload `top` (a Deployment, a Knative Configuration...) whose pod template, or pod, has these
 * labels, or undefined: a kagent Agent for the Deployment it names (isKagentDeployment); a KServe InferenceService
 * for a workload named `<isvc>-...` whose pods carry `serving.kserve.io/inferenceservice: <isvc>` and
 * `component: predictor|transformer|explainer`.
 */
export function podMaker(top: OwnerRef, labels: Record<string, unknown>): PodMaker | undefined {
  if (top.kind === 'Deployment' && isKagentDeployment(top.name, labels)) return { kind: 'Agent', name: top.name };
  const isvc = labels[KSERVE_ISVC];
  const component = labels[KSERVE_COMPONENT];
  if (typeof isvc === 'string' && isvc && typeof component === 'string' && KSERVE_COMPONENTS.has(component) && top.name.startsWith(`${isvc}-`))
    return { kind: 'InferenceService', name: isvc, component };
  return undefined;
}

export interface OwnerRef {
  kind: string;
  name: string;
  /** set when the ownerReference says `controller: true` (not just the object's only owner) */
  controller?: true;
  /** the ownerReference's apiVersion, when it has one (which API group the owner's kind is of) */
  apiVersion?: string;
}

/**
 * Looks up the controller owner of a cached object. Returns the owner, `null` when the object is cached
 * and has no controller owner, `undefined` when the object is not in the cache (unknown).
 * The optional members answer for objects left without an owner (see orphanWorkload); a lookup without them
 * is taken to cache no Deployment or StatefulSet, so orphans resolve by name alone.
 */
export interface OwnerLookup {
  (kind: string, namespace: string, name: string): OwnerRef | null | undefined;
  /** `spec.selector` of a cached Deployment or StatefulSet (`null` when it has none); `undefined` when not cached */
  selector?: (kind: string, namespace: string, name: string) => unknown;
  /** `metadata.labels` of a cached object (`{}` when it has none); `undefined` when not cached */
  labels?: (kind: string, namespace: string, name: string) => Record<string, unknown> | undefined;
}

/**
 * The controller ownerReference of an object (kind/name, and `controller` when it says so), else its only
 * ownerReference unless that says `controller: false`, or null.
 */
export function controllerOf(obj: unknown): OwnerRef | null {
  const refs = isObject(obj) && isObject(obj.metadata) ? obj.metadata.ownerReferences : undefined;
  if (!Array.isArray(refs)) return null;
  const valid = refs.filter(
    (r): r is KubeObject => isObject(r) && typeof r.kind === 'string' && typeof r.name === 'string' && r.name !== '',
  );
  const ctl = valid.find((r) => r.controller === true);
  const version = (r: KubeObject) => (typeof r.apiVersion === 'string' && r.apiVersion ? { apiVersion: r.apiVersion } : {});
  if (ctl) return { kind: ctl.kind, name: ctl.name, controller: true, ...version(ctl) };
  // an only owner that does not say `controller: false`
  return valid.length === 1 && valid[0]!.controller !== false ? { kind: valid[0]!.kind, name: valid[0]!.name, ...version(valid[0]!) } : null;
}

/**
 * The workload whose pod template this object's is, so that it is checked there and not again: a Deployment's
 * ReplicaSet, a CronJob's Job; with `pods`, also a Pod its ReplicaSet, Job, StatefulSet or DaemonSet made (for a
 * `kubectl get -o yaml` dump in lint; at admission a Pod is checked itself). Only a controller's ownerReference
 * counts, as that controller writes it (`controller: true` and the owner's apiVersion, apps/v1 or batch/v1): an
 * only owner without `controller: true`, or a kind of that name from another API group (a custom Deployment), leaves
 * the object to be checked itself. So /validate skips no more than its registration's matchConditions drop (a
 * ReplicaSet with a `controller: true` Deployment owner). Null otherwise.
 */
export function templateOwner(obj: unknown, pods = false): OwnerRef | null {
  const kind = isObject(obj) ? obj.kind : undefined;
  const owners = kind === 'ReplicaSet' ? REPLICASET_OWNERS : kind === 'Job' ? JOB_OWNERS : pods && kind === 'Pod' ? POD_OWNERS : undefined;
  const refs = isObject(obj) && isObject(obj.metadata) ? obj.metadata.ownerReferences : undefined;
  if (!owners || !Array.isArray(refs)) return null;
  // the controller's reference, the one controllerOf takes when there is one (the API server allows one at most)
  const ref = refs.find((r): r is KubeObject => isObject(r) && r.controller === true && typeof r.kind === 'string' && typeof r.name === 'string' && r.name !== '');
  const apiVersion = ref ? owners.get(ref.kind) : undefined;
  return apiVersion !== undefined && ref!.apiVersion === apiVersion ? { kind: ref!.kind, name: ref!.name, controller: true } : null;
}
const REPLICASET_OWNERS = new Map([['Deployment', 'apps/v1']]);
const JOB_OWNERS = new Map([['CronJob', 'batch/v1']]);
const POD_OWNERS = new Map([
  ['ReplicaSet', 'apps/v1'],
  ['Job', 'batch/v1'],
  ['StatefulSet', 'apps/v1'],
  ['DaemonSet', 'apps/v1'],
  ['ReplicationController', 'v1'],
]);

/** The name of an object for messages: metadata.name, else `<generateName><generated>`, else `<unnamed>`. */
export function objectName(obj: unknown): string {
  const md = isObject(obj) && isObject(obj.metadata) ? obj.metadata : {};
  if (typeof md.name === 'string' && md.name) return md.name;
  if (typeof md.generateName === 'string' && md.generateName) return `${md.generateName}<generated>`;
  return '<unnamed>';
}

export function objectNamespace(obj: unknown, fallback = 'default'): string {
  const md = isObject(obj) && isObject(obj.metadata) ? obj.metadata : {};
  return typeof md.namespace === 'string' && md.namespace ? md.namespace : fallback;
}

/**
 * The Deployment name of a ReplicaSet created by a Deployment: `<deployment>-<pod-template-hash>`.
 * Returns null when the name does not end in the hash (then the ReplicaSet is not taken for a Deployment's).
 */
export function stripTemplateHash(rsName: string, hash: unknown): string | null {
  if (typeof hash !== 'string' || hash === '') return null;
  const suffix = `-${hash}`;
  if (rsName.length > suffix.length && rsName.endsWith(suffix)) return rsName.slice(0, -suffix.length);
  return null;
}

/**
 * Which owner makes an object part of a larger workload (one agent with it): a controller (an ownerReference
 * with `controller: true`, as every controller sets it: a Deployment, an Argo Rollout, a CronJob, a KEDA
 * ScaledJob, a JobSet...), or an only owner of a kind that controls such objects. An owner that is neither (a
 * resource set only for garbage collection, a ConfigMap say) leaves the object a workload of its own, so two
 * agents cannot merge into one identity through a shared owner.
 */
const CONTROLLER_KINDS = new Set(['Deployment', 'ReplicaSet', 'StatefulSet', 'DaemonSet', 'Job', 'CronJob', 'Rollout', 'ScaledJob']);

function workloadOwner(owner: OwnerRef | null | undefined): OwnerRef | undefined {
  return owner && (owner.controller || CONTROLLER_KINDS.has(owner.kind)) ? { kind: owner.kind, name: owner.name } : undefined;
}

/** A Kubernetes label selector, as a Deployment's or StatefulSet's `spec.selector` holds it. */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

/**
 * Whether `selector` selects an object with these labels, as a Deployment or StatefulSet controller decides
 * what it adopts: every `matchLabels` pair is set, and every `matchExpressions` requirement holds (`In`: the
 * label is set to one of the values; `NotIn`: it is unset or set to none of them; `Exists`; `DoesNotExist`).
 * A missing or empty selector selects nothing here (the API server requires one on both kinds), and so does one
 * it would reject: an unknown operator, `In`/`NotIn` without values, `Exists`/`DoesNotExist` with values, a
 * value that is not a string.
 */
export function selectorMatches(selector: unknown, labels: Record<string, unknown>): boolean {
  if (!isObject(selector)) return false;
  const label = (k: string): string | undefined => (Object.hasOwn(labels, k) && typeof labels[k] === 'string' ? labels[k] : undefined);
  let terms = 0;
  const { matchLabels, matchExpressions } = selector;
  if (matchLabels !== undefined && matchLabels !== null) {
    if (!isObject(matchLabels)) return false;
    for (const [k, v] of Object.entries(matchLabels)) {
      if (typeof v !== 'string' || label(k) !== v) return false;
      terms++;
    }
  }
  if (matchExpressions !== undefined && matchExpressions !== null) {
    if (!Array.isArray(matchExpressions)) return false;
    for (const r of matchExpressions) {
      if (!isObject(r) || typeof r.key !== 'string') return false;
      const values: unknown = r.values ?? [];
      if (!Array.isArray(values) || !values.every((v) => typeof v === 'string')) return false;
      const v = label(r.key);
      switch (r.operator) {
        case 'In':
          if (!values.length || v === undefined || !values.includes(v)) return false;
          break;
        case 'NotIn':
          if (!values.length || (v !== undefined && values.includes(v))) return false;
          break;
        case 'Exists':
          if (values.length || v === undefined) return false;
          break;
        case 'DoesNotExist':
          if (values.length || v !== undefined) return false;
          break;
        default:
          return false;
      }
      terms++;
    }
  }
  return terms > 0;
}

/**
 * A copy of a label selector with only what selectorMatches reads (strings passed through `copy`, to intern or
 * detach them), or null when it is missing or malformed (it then selects nothing either way).
 */
export function copySelector(selector: unknown, copy: (s: string) => string = (s) => s): LabelSelector | null {
  if (!isObject(selector)) return null;
  const out: LabelSelector = {};
  const { matchLabels, matchExpressions } = selector;
  if (matchLabels !== undefined && matchLabels !== null) {
    if (!isObject(matchLabels)) return null;
    const ml: Record<string, string> = {};
    for (const [k, v] of Object.entries(matchLabels)) {
      if (typeof v !== 'string') return null;
      ml[copy(k)] = copy(v);
    }
    out.matchLabels = ml;
  }
  if (matchExpressions !== undefined && matchExpressions !== null) {
    if (!Array.isArray(matchExpressions)) return null;
    const me: NonNullable<LabelSelector['matchExpressions']> = [];
    for (const r of matchExpressions) {
      if (!isObject(r) || typeof r.key !== 'string' || typeof r.operator !== 'string') return null;
      const values: unknown = r.values ?? [];
      if (!Array.isArray(values) || !values.every((v) => typeof v === 'string')) return null;
      me.push(values.length ? { key: copy(r.key), operator: copy(r.operator), values: values.map(copy) } : { key: copy(r.key), operator: copy(r.operator) });
    }
    out.matchExpressions = me;
  }
  return out;
}

/**
 * A StatefulSet's pod by its labels: the StatefulSet controller labels each pod with its own name
 * (`statefulset.kubernetes.io/pod-name`), and names it `<statefulset>-<ordinal>`.
 */
function statefulSetOfPod(name: string, labels: Record<string, unknown>): OwnerRef | null {
  if (labels['statefulset.kubernetes.io/pod-name'] !== name) return null;
  const m = /^(.+)-(0|[1-9][0-9]*)$/.exec(name);
  return m ? { kind: 'StatefulSet', name: m[1]! } : null;
}

/**
 * The workload behind a ReplicaSet a pod (or the ReplicaSet itself) names, when the cache cannot say: a
 * Deployment's ReplicaSets are `<deployment>-<pod-template-hash>`, an Argo Rollout's
 * `<rollout>-<rollouts-pod-template-hash>`.
 */
function replicaSetOwnerByName(rsName: string, labels: Record<string, unknown>): OwnerRef | null {
  const dep = stripTemplateHash(rsName, labels['pod-template-hash']);
  if (dep) return { kind: 'Deployment', name: dep };
  const rollout = stripTemplateHash(rsName, labels['rollouts-pod-template-hash']);
  return rollout ? { kind: 'Rollout', name: rollout } : null;
}

function labelsOf(obj: unknown): Record<string, unknown> {
  return isObject(obj) && isObject(obj.metadata) && isObject(obj.metadata.labels) ? obj.metadata.labels : {};
}

/**
 * The workload the name heuristics tie an object without a workload owner to, as `kubectl delete
 * --cascade=orphan` leaves them: a ReplicaSet named `<deployment>-<pod-template-hash>` (or a Rollout's, by
 * `rollouts-pod-template-hash`), a pod named `<statefulset>-<ordinal>` and labelled with that name
 * (`statefulset.kubernetes.io/pod-name`). Null for anything else, and for objects that have a workload owner.
 * Whether the object then counts as that workload is orphanOf's decision.
 */
export function orphanWorkload(kind: string, obj: unknown): OwnerRef | null {
  if ((kind !== 'ReplicaSet' && kind !== 'Pod') || !isObject(obj) || workloadOwner(controllerOf(obj))) return null;
  const name = objectName(obj);
  return kind === 'ReplicaSet' ? replicaSetOwnerByName(name, labelsOf(obj)) : statefulSetOfPod(name, labelsOf(obj));
}

/**
 * Whether an orphan with these labels counts as `workload` (what its name names). While that workload is not
 * cached (deleted with --cascade=orphan and not re-created yet, or no cache at all) it does: re-creating it is
 * the same agent. Once it is cached, only if its `spec.selector` selects the orphan's labels, that is, when its
 * controller adopts the orphan; otherwise the orphan runs on beside it, a second agent, and counts as itself.
 */
export function countsAsWorkload(workload: OwnerRef, namespace: string, labels: Record<string, unknown>, lookup?: OwnerLookup): boolean {
  const selector = lookup?.selector?.(workload.kind, namespace, workload.name);
  return selector === undefined || selectorMatches(selector, labels);
}

/** The workload an orphaned ReplicaSet named `rsName` with these labels counts as, or the ReplicaSet itself. */
function orphanReplicaSet(rsName: string, labels: Record<string, unknown>, namespace: string, lookup?: OwnerLookup): OwnerRef {
  const w = replicaSetOwnerByName(rsName, labels);
  return w && countsAsWorkload(w, namespace, labels, lookup) ? w : { kind: 'ReplicaSet', name: rsName };
}

/**
 * The CronJob behind a Job a pod names, when the cache has no such Job yet: the CronJob controller names its
 * Jobs `<cronjob>-<scheduled time in minutes since the epoch>`, and the Job controller creates the pod right
 * after the Job, so the pod can reach the webhook before the Job reaches the cache. Taken only when the suffix
 * is such a time from the last week and a CronJob of that name is cached in the namespace (the identity the Job
 * resolves to once cached); otherwise null.
 */
function cronJobOfUncachedJob(jobName: string, namespace: string, lookup: OwnerLookup, now: number): OwnerRef | null {
  const job = cronJobJobParts(jobName);
  if (!job) return null;
  // The suffix must be a scheduled time the controller could be creating a Job for now (within the last week, or
  // a day ahead for clock skew): a Job someone named `backup-2` by hand is not taken for CronJob backup's.
  const nowMinutes = now / 60_000;
  if (job.minutes < nowMinutes - SCHEDULE_WINDOW_MINUTES || job.minutes > nowMinutes + 24 * 60) return null;
  return lookup('CronJob', namespace, job.cronJob) !== undefined ? { kind: 'CronJob', name: job.cronJob } : null;
}

/**
 * The CronJob and the scheduled minute (since the epoch) a Job's name carries as the CronJob controller names its
 * Jobs (`<cronjob>-<minutes>`, cronJobJobName), or null for a name of another shape. The name alone does not say
 * the Job is a CronJob's: callers check the minute against a clock or a plausible range.
 */
export function cronJobJobParts(jobName: string): { cronJob: string; minutes: number } | null {
  const m = /^(.+)-([0-9]{1,12})$/.exec(jobName);
  return m ? { cronJob: m[1]!, minutes: Number(m[2]) } : null;
}

/** How far back a CronJob's Job name (its scheduled time in minutes) is taken for one (see cronJobOfUncachedJob). */
const SCHEDULE_WINDOW_MINUTES = 7 * 24 * 60;

/** The name the CronJob controller gives the Job it creates for a schedule at `at` (ms since the epoch). */
export function cronJobJobName(cronJob: string, at: number): string {
  return `${cronJob}-${Math.floor(at / 60_000)}`;
}

/**
 * The top-level workload an object belongs to.
 * - Pod → its controller (workloadOwner): a ReplicaSet → whatever controls it (the cache, or the ReplicaSet's
 *   name and the pod-template hash when the cache has none for it); a Job → whatever controls it when the Job is
 *   cached; a Job not in the cache yet, named `<cronjob>-<digits>` while that CronJob is cached → the CronJob;
 *   else the Job; StatefulSet, DaemonSet and other controllers → that owner.
 * - ReplicaSet or Job → its controller (workloadOwner: a `controller: true` reference of any kind, or an only
 *   owner of a controller kind); owned by anything else → itself.
 * - Objects left without an owner by `kubectl delete --cascade=orphan`, until a re-created owner adopts them:
 *   a Deployment's ReplicaSet (by its name and hash) and a StatefulSet's pod (by its pod-name label) count as
 *   that Deployment or StatefulSet while it is not cached, so re-creating it is not taken for a second agent;
 *   once it is cached, only if its selector selects the orphan's labels (countsAsWorkload). A pod of a cached
 *   ReplicaSet without an owner counts as that ReplicaSet does.
 * - Other workloads → themselves (a StatefulSet owned by an operator's custom resource is its own workload);
 *   a pod with no owner → itself.
 * `now` (ms since the epoch): the time of the request, for the CronJob's Job not cached yet; without it (no clock
 * given) that Job's pod counts as the Job. This module reads no clock: the caller passes it.
 */
export function topLevelWorkload(obj: KubeObject, namespace: string, lookup?: OwnerLookup, now?: number): OwnerRef {
  const kind = typeof obj.kind === 'string' ? obj.kind : 'Pod';
  const self: OwnerRef = { kind, name: objectName(obj) };
  const labels = labelsOf(obj);
  const owner = workloadOwner(controllerOf(obj));
  if (!owner) {
    if (kind === 'ReplicaSet') return orphanReplicaSet(self.name, labels, namespace, lookup);
    if (kind === 'Pod') {
      const sts = statefulSetOfPod(self.name, labels);
      return sts && countsAsWorkload(sts, namespace, labels, lookup) ? sts : self;
    }
    return self;
  }
  if (kind === 'Pod') {
    if (owner.kind === 'ReplicaSet') {
      const rs = lookup?.('ReplicaSet', namespace, owner.name);
      // not cached (the pod can reach us before its ReplicaSet reaches the cache): by its name and the pod's hash
      if (rs === undefined) return replicaSetOwnerByName(owner.name, labels) || owner;
      // a cached ReplicaSet counts as its controller, or, without one, as an orphaned ReplicaSet counts
      return workloadOwner(rs) || orphanReplicaSet(owner.name, lookup!.labels?.('ReplicaSet', namespace, owner.name) ?? labels, namespace, lookup);
    }
    if (owner.kind === 'Job') {
      const job = lookup?.('Job', namespace, owner.name);
      if (job !== undefined) return workloadOwner(job) || owner; // a cached Job: its own ownerReference says
      return (lookup && now !== undefined && cronJobOfUncachedJob(owner.name, namespace, lookup, now)) || owner;
    }
    return owner;
  }
  if (kind === 'ReplicaSet' || kind === 'Job') return owner;
  if (isWorkloadKind(kind)) return self;
  return owner;
}

/** Labels Knative Serving sets on a Revision's Deployment template and pods, and OpenShift on a DeploymentConfig's pods. */
export const KNATIVE_CONFIGURATION_LABEL = 'serving.knative.dev/configuration';
export const KNATIVE_REVISION_LABEL = 'serving.knative.dev/revision';
export const DEPLOYMENT_CONFIG_LABEL = 'deploymentconfig';

/**
 * The workload that stays one agent across versions, for controllers that make a new workload per version (the
 * top-level workload otherwise): a Knative Revision's Deployment (`<revision>-deployment`, its template labelled
 * `serving.knative.dev/revision: <revision>` and `serving.knative.dev/configuration: <c>`, as are its pods) counts as
 * `Configuration/<c>`, so the Deployments of old revisions, kept at 0 replicas, and of the one rolling out are one
 * agent; an OpenShift DeploymentConfig's ReplicationController (`<dc>-<version>`, its pods labelled
 * `deploymentconfig: <dc>`) counts as `DeploymentConfig/<dc>`. Tied by name and label both, as a Deployment's
 * ReplicaSet is by its hash. `labels`: the pod's, or the workload's template's.
 */
export function versionedWorkload(top: OwnerRef, labels: Record<string, unknown>): OwnerRef {
  if (top.kind === 'Deployment') {
    const cfg = labels[KNATIVE_CONFIGURATION_LABEL];
    const rev = labels[KNATIVE_REVISION_LABEL];
    if (typeof cfg === 'string' && cfg && typeof rev === 'string' && rev && top.name === `${rev}-deployment`) return { kind: 'Configuration', name: cfg };
  } else if (top.kind === 'ReplicationController') {
    const dc = labels[DEPLOYMENT_CONFIG_LABEL];
    if (typeof dc === 'string' && dc && top.name.startsWith(`${dc}-`) && /^[0-9]+$/.test(top.name.slice(dc.length + 1))) return { kind: 'DeploymentConfig', name: dc };
  }
  return top;
}

/** Labels other controllers set on the pods (and workloads) they make, read by controllerWorkload. */
export const LWS_NAME_LABEL = 'leaderworkerset.sigs.k8s.io/name';
export const RAY_SERVE_LABEL = 'ray.io/serve';
export const JOBSET_NAME_LABEL = 'jobset.sigs.k8s.io/jobset-name';
/** The label KEDA's operator sets on a ScaledJob's Jobs and their pod template: the ScaledJob's name. */
export const SCALEDJOB_NAME_LABEL = 'scaledjob.keda.sh/name';

/**
 * Whether a Job's name is one the API server generated from a ScaledJob's (KEDA creates each Job with generateName
 * `<scaledjob>-`: that prefix, cut to 58 characters, and 5 characters of the name generator's alphabet).
 */
function isScaledJobJobName(job: string, scaledJob: string): boolean {
  const base = `${scaledJob}-`.slice(0, 58);
  return job.length === base.length + 5 && job.startsWith(base) && /^[bcdfghjklmnpqrstvwxz2456789]{5}$/.test(job.slice(base.length));
}
const LWS_GROUP = 'leaderworkerset.x-k8s.io';
const FLAGGER_GROUP = 'flagger.app';
const RAY_GROUP = 'ray.io';
const ARGO_GROUP = 'argoproj.io';
const ROLLOUT_HASH_LABEL = 'rollouts-pod-template-hash';

/** Whether `ref` is the controller reference of a `kind` of API group `group` (its apiVersion names it). */
function isController(ref: OwnerRef | null | undefined, kind: string, group: string): boolean {
  return !!ref && ref.controller === true && ref.kind === kind && apiGroup(ref.apiVersion) === group;
}

/** `<prefix>-<digits>` */
function isIndexed(name: string, prefix: string): boolean {
  return name.length > prefix.length + 1 && name.startsWith(`${prefix}-`) && /^(0|[1-9][0-9]*)$/.test(name.slice(prefix.length + 1));
}

/**
 * The controller of `top`: the object's own when `top` is the object, else what the lookup says of the cached
 * `top` (undefined: not known).
 */
function controllerOfTop(top: OwnerRef, obj: KubeObject, namespace: string, lookup?: OwnerLookup): OwnerRef | null | undefined {
  if (top.kind === obj.kind && top.name === objectName(obj)) return controllerOf(obj);
  return lookup?.(top.kind, namespace, top.name);
}

/**
 * The ownerReference that made `top` the object's top-level workload, with its apiVersion: the object's own
 * controller, or, for a pod, its ReplicaSet's or Job's as the lookup holds it; undefined when neither names `top`.
 */
function referenceTo(top: OwnerRef, obj: KubeObject, namespace: string, lookup?: OwnerLookup): OwnerRef | undefined {
  const own = controllerOf(obj);
  if (own && own.kind === top.kind && own.name === top.name) return own;
  if (obj.kind !== 'Pod' || !own?.controller || (own.kind !== 'ReplicaSet' && own.kind !== 'Job')) return undefined;
  const up = lookup?.(own.kind, namespace, own.name);
  return up && up.kind === top.kind && up.name === top.name ? up : undefined;
}

/**
 * The RayService whose RayCluster `top` is, for a pod of it: KubeRay names the RayClusters a RayService creates
 * `<svc>-raycluster-<5 random lowercase letters and digits>` and labels their pods `ray.io/serve` (the RayService's
 * serve Service selects on it). It sets `ray.io/originated-from-crd` and `-cr-name` on the RayCluster object only,
 * which the webhook does not cache, so the pod's controller reference (a `ray.io` RayCluster), its name and that
 * label are what tie it. Null otherwise (a RayCluster of its own, a RayJob's).
 */
function rayServiceOf(top: OwnerRef, obj: KubeObject, labels: Record<string, unknown>): OwnerRef | null {
  if (obj.kind !== 'Pod' || typeof labels[RAY_SERVE_LABEL] !== 'string' || !isController(controllerOf(obj), 'RayCluster', RAY_GROUP)) return null;
  const m = /^(.+)-raycluster-[a-z0-9]{5}$/.exec(top.name);
  return m ? { kind: 'RayService', name: m[1]! } : null;
}

/**
 * The LeaderWorkerSet a StatefulSet (`top`) belongs to, or null. Its controller makes a leader StatefulSet
 * `<lws>` (controller: the LeaderWorkerSet), whose pods `<lws>-<group>` are the leaders, and per group a worker
 * StatefulSet `<lws>-<group>` whose controller is that leader pod; all of them, and their pods, are labelled
 * `leaderworkerset.sigs.k8s.io/name: <lws>`. By the owner chain while the cache holds it (a worker StatefulSet's
 * leader pod, that pod's StatefulSet); by that label and the name where a link is not cached; a chain that is
 * known and ends elsewhere is not the LeaderWorkerSet's, whatever the labels say.
 */
function leaderWorkerSetOf(top: OwnerRef, owner: OwnerRef | null | undefined, namespace: string, labels: Record<string, unknown>, lookup?: OwnerLookup): OwnerRef | null {
  if (owner && owner.controller && owner.kind === 'Pod') {
    const leader = lookup?.('Pod', namespace, owner.name);
    owner = leader === undefined ? undefined : leader?.controller && leader.kind === 'StatefulSet' ? lookup!('StatefulSet', namespace, leader.name) : null;
  }
  if (isController(owner, 'LeaderWorkerSet', LWS_GROUP)) return { kind: 'LeaderWorkerSet', name: owner!.name };
  if (owner !== undefined) return null;
  const lws = labels[LWS_NAME_LABEL];
  return typeof lws === 'string' && lws && (top.name === lws || isIndexed(top.name, lws)) ? { kind: 'LeaderWorkerSet', name: lws } : null;
}

/**
 * The one agent behind workloads that other controllers make from one resource, as versionedWorkload does for
 * Knative and OpenShift (`top`: what that gives; `labels`: the pod's, or the workload's template's):
 * - a LeaderWorkerSet's leader and worker StatefulSets, of every group, and their pods → `LeaderWorkerSet/<lws>`
 *   (leaderWorkerSetOf);
 * - a Flagger Canary's primary (a Deployment or DaemonSet `<target>-primary` whose controller is a flagger.app
 *   Canary, into which Flagger copies the target's template) → the target, `Deployment/<target>`: the target and its
 *   primary are one agent, whatever the Canary is named;
 * - a pod labelled `ray.io/serve` of a KubeRay RayCluster `<svc>-raycluster-<5 characters>` → `RayService/<svc>`
 *   (rayServiceOf): the RayService runs a second RayCluster while it upgrades, and both are the service;
 * - an Argo Rollouts (`argoproj.io`) Experiment named `<rollout>-<hash>-<revision>-<step>` (as a Rollout names those
 *   it creates), whose ReplicaSet's pods carry `rollouts-pod-template-hash` → `Rollout/<rollout>`;
 * - a pod of a Job not in the cache, labelled `jobset.sigs.k8s.io/jobset-name: <js>` and named
 *   `<js>-<replicated job>-<index>` → `JobSet/<js>` (a cached Job resolves through its ownerReference already);
 * - likewise a pod of a Job not in the cache, labelled `scaledjob.keda.sh/name: <sj>`, whose Job's name is one
 *   generated from `<sj>-` → `ScaledJob/<sj>` (KEDA's).
 */
export function controllerWorkload(top: OwnerRef, obj: KubeObject, namespace: string, labels: Record<string, unknown>, lookup?: OwnerLookup): OwnerRef {
  switch (top.kind) {
    case 'StatefulSet':
      return leaderWorkerSetOf(top, controllerOfTop(top, obj, namespace, lookup), namespace, labels, lookup) ?? top;
    case 'Deployment':
    case 'DaemonSet': {
      const suffix = '-primary';
      if (top.name.length > suffix.length && top.name.endsWith(suffix) && isController(controllerOfTop(top, obj, namespace, lookup), 'Canary', FLAGGER_GROUP))
        return { kind: top.kind, name: top.name.slice(0, -suffix.length) };
      return top;
    }
    case 'RayCluster':
      return rayServiceOf(top, obj, labels) ?? top;
    case 'Experiment': {
      const m = /^(.+)-[a-z0-9]+-[0-9]+-[0-9]+$/.exec(top.name);
      if (!m || typeof labels[ROLLOUT_HASH_LABEL] !== 'string' || !labels[ROLLOUT_HASH_LABEL]) return top;
      return apiGroup(referenceTo(top, obj, namespace, lookup)?.apiVersion) === ARGO_GROUP ? { kind: 'Rollout', name: m[1]! } : top;
    }
    case 'Job': {
      if (obj.kind !== 'Pod') return top;
      const js = labels[JOBSET_NAME_LABEL];
      const sj = labels[SCALEDJOB_NAME_LABEL];
      let to: OwnerRef | undefined;
      if (typeof js === 'string' && js && top.name.startsWith(`${js}-`) && /^.+-(0|[1-9][0-9]*)$/.test(top.name.slice(js.length + 1))) to = { kind: 'JobSet', name: js };
      else if (typeof sj === 'string' && sj && isScaledJobJobName(top.name, sj)) to = { kind: 'ScaledJob', name: sj };
      return to && lookup?.('Job', namespace, top.name) === undefined ? to : top;
    }
  }
  return top;
}

export interface AgentIdentity {
  /** top-level workload */
  kind: string;
  name: string;
  namespace: string;
  serviceAccount: string;
  /** kagenti.io/agent label, when set */
  agent?: string;
  /** the object itself when it differs from the top-level workload (e.g. a Pod of a Deployment) */
  source?: OwnerRef;
  /**
   * the top-level workload its owners lead to, when the identity is another one (versionedWorkload,
   * controllerWorkload): a Flagger primary's pods are Deployment/<target>, their workload Deployment/<target>-primary;
   * a LeaderWorkerSet's leader StatefulSet is LeaderWorkerSet/<lws>, its workload itself. What is left of that
   * workload from before is judged against it (cluster.ts refOf)
   */
  workload?: OwnerRef;
  /**
   * set when the object is being deleted (metadata.deletionTimestamp); for a Pod, `until` is that timestamp,
   * the time by which its containers are stopped
   */
  deleting?: { until?: string };
  /** set when the manifest names the ServiceAccount in the deprecated `serviceAccount` field only (for messages) */
  serviceAccountField?: 'serviceAccount';
  /** the custom resource whose controller makes the workload from its fields (podMaker; for messages) */
  maker?: PodMaker;
}

/** The ServiceAccount a pod spec runs as: serviceAccountName, else the deprecated serviceAccount, else `default`. */
export function effectiveServiceAccount(spec: KubeObject | undefined): string {
  const n = spec?.serviceAccountName;
  if (typeof n === 'string' && n !== '') return n;
  const old = spec?.serviceAccount;
  if (typeof old === 'string' && old !== '') return old;
  return 'default';
}

/** The agent identity of a Pod or workload, or null when it is not an agent (or not a workload kind). */
export function agentIdentity(
  obj: unknown,
  config: Config,
  namespace?: string,
  lookup?: OwnerLookup,
  /** the request's time, for topLevelWorkload */
  now?: number,
): AgentIdentity | null {
  if (!isObject(obj)) return null;
  const tpl = getPodTemplate(obj);
  if (!tpl) return null;
  if (!isAgentType(tpl.labels, config)) return null;
  const ns = objectNamespace(obj, namespace ?? 'default');
  const own = topLevelWorkload(obj, ns, lookup, now);
  const top = controllerWorkload(versionedWorkload(own, tpl.labels), obj, ns, tpl.labels, lookup);
  const out: AgentIdentity = {
    kind: top.kind,
    name: top.name,
    namespace: ns,
    serviceAccount: effectiveServiceAccount(tpl.spec),
  };
  const agent = tpl.labels[AGENT_LABEL];
  if (typeof agent === 'string' && agent !== '') out.agent = agent;
  const spec = tpl.spec;
  if (isObject(spec) && !(typeof spec.serviceAccountName === 'string' && spec.serviceAccountName !== '') && typeof spec.serviceAccount === 'string' && spec.serviceAccount !== '')
    out.serviceAccountField = 'serviceAccount';
  const selfKind = obj.kind as string;
  const selfName = objectName(obj);
  if (selfKind !== top.kind || selfName !== top.name) out.source = { kind: selfKind, name: selfName };
  if (own.kind !== top.kind || own.name !== top.name) out.workload = { kind: own.kind, name: own.name };
  const deletion = isObject(obj.metadata) ? obj.metadata.deletionTimestamp : undefined;
  if (typeof deletion === 'string' && deletion) out.deleting = selfKind === 'Pod' ? { until: deletion } : {};
  const maker = podMaker(top, tpl.labels);
  if (maker) out.maker = maker;
  return out;
}

/** The key that says whether two claims are the same agent: the agent label when set, else the workload. */
export function identityKey(a: { kind: string; name: string; agent?: string }): string {
  return a.agent ? `agent:${a.agent}` : `${a.kind}/${a.name}`;
}

/** An RFC 1123 label (at most 63 lowercase letters, digits and '-'), as Kubernetes requires of a namespace name. */
export function isDnsLabel(s: string): boolean {
  return /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(s);
}

export function spiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}
