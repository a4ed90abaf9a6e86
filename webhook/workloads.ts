// Where each workload kind keeps its pod template. Shared by injection, validation, inject and lint.
import type { KubeObject } from './admission.ts';
import { isObject } from './json.ts';

export const WORKLOAD_KINDS = ['Pod', 'Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job', 'CronJob', 'ReplicationController'] as const;
export type WorkloadKind = (typeof WORKLOAD_KINDS)[number];

const TEMPLATE_PATHS: Record<WorkloadKind, string[]> = {
  Pod: [],
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
  ReplicationController: ['spec', 'template'],
};

/**
 * The API group of each kind ('' is the core group, `apiVersion: v1`). A custom resource of another group may have
 * the same kind (OpenKruise's apps.kruise.io StatefulSet and DaemonSet, an `example.com/v1` Deployment): it is not
 * this kind, its template is not where this one's is, and the webhook's registrations never send it.
 */
const KIND_GROUPS: Record<WorkloadKind, string> = {
  Pod: '',
  ReplicationController: '',
  Deployment: 'apps',
  StatefulSet: 'apps',
  DaemonSet: 'apps',
  ReplicaSet: 'apps',
  Job: 'batch',
  CronJob: 'batch',
};

/** The API group of a workload kind this webhook knows ('' for the core group). */
export function kindGroup(kind: WorkloadKind): string {
  return KIND_GROUPS[kind];
}

export function isWorkloadKind(kind: unknown): kind is WorkloadKind {
  return typeof kind === 'string' && Object.hasOwn(TEMPLATE_PATHS, kind);
}

/** The group of an apiVersion (`apps/v1` → apps, `v1` → the core group ''), or undefined when it is not a string. */
export function apiGroup(apiVersion: unknown): string | undefined {
  if (typeof apiVersion !== 'string') return undefined;
  const slash = apiVersion.indexOf('/');
  return slash < 0 ? '' : apiVersion.slice(0, slash);
}

/**
 * Whether an object is one of the workload kinds this webhook knows: its kind, and its group when it has an
 * apiVersion (a manifest always does; an object from the cache or an admission request's may be given without one,
 * and then its kind is the request's or the informer's).
 */
export function isWorkloadObject(obj: unknown): boolean {
  if (!isObject(obj) || !isWorkloadKind(obj.kind)) return false;
  const group = apiGroup(obj.apiVersion);
  return group === undefined || group === KIND_GROUPS[obj.kind];
}

/** Path from the object's root to its pod template ({metadata, spec}); `[]` for a Pod itself. */
export function podTemplatePath(kind: string): string[] | null {
  return isWorkloadKind(kind) ? TEMPLATE_PATHS[kind] : null;
}

export interface PodTemplateRef {
  /** path of the template from the object root; the pod spec is at [...path, 'spec'] */
  path: string[];
  /** the template object itself (a Pod, or the `template` mapping), by reference */
  template: KubeObject;
  labels: Record<string, unknown>;
  annotations: Record<string, unknown>;
  spec: KubeObject | undefined;
}

/**
 * The pod template of a Pod or workload object, by reference (mutations land in `obj`), or null; null too for an
 * object of another group with one of these kinds (isWorkloadObject).
 */
export function getPodTemplate(obj: unknown): PodTemplateRef | null {
  if (!isObject(obj) || !isWorkloadObject(obj)) return null;
  const path = podTemplatePath(obj.kind);
  if (!path) return null;
  let cur: unknown = obj;
  for (const key of path) {
    if (!isObject(cur)) return null;
    cur = cur[key];
  }
  if (!isObject(cur)) return null;
  const md = isObject(cur.metadata) ? cur.metadata : {};
  return {
    path,
    template: cur,
    labels: isObject(md.labels) ? md.labels : {},
    annotations: isObject(md.annotations) ? md.annotations : {},
    spec: isObject(cur.spec) ? cur.spec : undefined,
  };
}

/** The dotted field path of the pod spec inside an object of this kind, e.g. `spec.template.spec`. */
export function podSpecFieldPath(kind: string): string {
  const p = podTemplatePath(kind) ?? [];
  return [...p, 'spec'].join('.');
}

/**
 * Where the pod spec of a controller's pods is: the pod spec field of its workload's template (`spec.template.spec`
 * of a Deployment, `spec.jobTemplate.spec.template.spec` of a CronJob, `spec.template.spec` of an Argo Rollout), or
 * null for a kind whose template this webhook does not know (a custom resource of an operator), or whose pods come from one of
 * several templates (workloadTemplateAt says which).
 */
export function workloadSpecPath(kind: string): string | null {
  const at = workloadTemplateAt(kind);
  return at && !at.alt ? `${at.path}.spec` : null;
}

/**
 * Where a controller's pod's template is in the workload that creates it: `path`, the template's dotted path (its
 * `metadata` and `spec` inside), and `alt`, another template the pod may come from, said after it with `when`.
 * A list item is named by its key (`spec.replicatedJobs[name=workers]`), `[]` when the pod does not say which.
 */
export interface TemplateAt {
  path: string;
  alt?: { path: string; when: string };
}

/** The label LeaderWorkerSet puts on its pods: `0` on a group's leader, 1, 2... on its workers. */
const LWS_WORKER_INDEX_LABEL = 'leaderworkerset.sigs.k8s.io/worker-index';
/** The label JobSet puts on its pods: the name of the replicated Job (spec.replicatedJobs[].name) they come from. */
const JOBSET_REPLICATED_JOB_LABEL = 'jobset.sigs.k8s.io/replicatedjob-name';
/** The labels KubeRay puts on its pods: `head` or `worker`, and the worker group's name (workerGroupSpecs[].groupName). */
const RAY_NODE_TYPE_LABEL = 'ray.io/node-type';
const RAY_GROUP_LABEL = 'ray.io/group';

/** A label value as a path may show it (one a pod sent that Kubernetes would not take is not shown). */
function labelValue(labels: Record<string, unknown>, key: string): string | undefined {
  const v = labels[key];
  return typeof v === 'string' && /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/.test(v) ? v : undefined;
}

/**
 * workloadTemplateAt: the template in a workload of `kind` that a pod with these `labels` comes from, or null for a
 * kind whose template is not known (an operator's custom resource; a Pod, which has none). The kinds this webhook knows, an Argo
 * Rollout and an OpenShift DeploymentConfig keep one; a LeaderWorkerSet's leader
 * (worker-index `0`) comes from its leaderTemplate (its workerTemplate when it has none), a worker from its
 * workerTemplate; a JobSet's pod from its replicated Job's; a RayService's or RayCluster's from its head group or
 * its worker group (ray.io/node-type, ray.io/group).
 */
export function workloadTemplateAt(kind: string, labels: Record<string, unknown> = {}): TemplateAt | null {
  if (kind === 'Pod') return null;
  if (isWorkloadKind(kind)) return { path: TEMPLATE_PATHS[kind].join('.') };
  switch (kind) {
    case 'Rollout':
    case 'DeploymentConfig':
      return { path: 'spec.template' };
    case 'ScaledJob':
      // KEDA's: the Job spec it creates its Jobs from
      return { path: 'spec.jobTargetRef.template' };
    case 'LeaderWorkerSet': {
      const index = labelValue(labels, LWS_WORKER_INDEX_LABEL);
      const leader = 'spec.leaderWorkerTemplate.leaderTemplate';
      const worker = 'spec.leaderWorkerTemplate.workerTemplate';
      if (index !== undefined && /^[1-9][0-9]*$/.test(index)) return { path: worker };
      return { path: leader, alt: { path: worker, when: index === '0' ? 'if it has no leaderTemplate' : 'for a worker pod' } };
    }
    case 'JobSet': {
      const job = labelValue(labels, JOBSET_REPLICATED_JOB_LABEL);
      return { path: `spec.replicatedJobs[${job === undefined ? '' : `name=${job}`}].template.spec.template` };
    }
    case 'RayService':
    case 'RayCluster': {
      const base = kind === 'RayService' ? 'spec.rayClusterConfig.' : 'spec.';
      const type = labels[RAY_NODE_TYPE_LABEL];
      const group = labelValue(labels, RAY_GROUP_LABEL);
      const head = `${base}headGroupSpec.template`;
      const worker = `${base}workerGroupSpecs[${group === undefined ? '' : `groupName=${group}`}].template`;
      if (type === 'head') return { path: head };
      if (type === 'worker') return { path: worker };
      return { path: head, alt: { path: worker, when: 'for a worker pod' } };
    }
  }
  return null;
}

/** A field of the template `at` names (`metadata.annotations`, `spec.serviceAccountName`) as a person reads it. */
export function templateFieldText(at: TemplateAt, field: string): string {
  return at.alt ? `${at.path}.${field}, or ${at.alt.path}.${field} ${at.alt.when}` : `${at.path}.${field}`;
}

/**
 * The workload whose pod template a fix for a controller's pod edits (rules.ts templateOwner): its kind and name,
 * how the fix names it (`label`: `Kind/name`, `Knative Service/hello`), where its template is (`at`, null when not
 * known), and `immutable` for a Job, whose template cannot be changed once it is created.
 */
export interface TemplateOwner {
  kind: string;
  name: string;
  label: string;
  at: TemplateAt | null;
  immutable?: boolean;
  /**
   * The custom resource that makes the workload from its own fields and reverts edits to its template (identity.ts
   * podMaker: a kagent Agent, a KServe InferenceService): how a fix names it, and its fields for the pods' labels and
   * annotations where known (a fix then names those in place of the template's).
   */
  made?: { label: string; labels: string; annotations?: string };
}

/**
 * Where a kind this webhook does not know may keep a pod template: where the kinds it knows keep theirs, and where
 * the controllers that nest them deeper do (`*`: each item of a list): a LeaderWorkerSet's leader and worker
 * templates, a JobSet's replicated Jobs' pod templates, a KubeRay RayCluster's head and worker groups, and those of the
 * RayCluster a RayService (`spec.rayClusterConfig`) or a RayJob (`spec.rayClusterSpec`) creates, and the Job spec a
 * KEDA ScaledJob makes its Jobs from (`spec.jobTargetRef.template`).
 */
const OTHER_TEMPLATE_PATHS = [
  ['spec', 'template'],
  ['spec', 'jobTemplate', 'spec', 'template'],
  ['spec', 'leaderWorkerTemplate', 'leaderTemplate'],
  ['spec', 'leaderWorkerTemplate', 'workerTemplate'],
  ['spec', 'replicatedJobs', '*', 'template', 'spec', 'template'],
  ['spec', 'headGroupSpec', 'template'],
  ['spec', 'workerGroupSpecs', '*', 'template'],
  ['spec', 'rayClusterConfig', 'headGroupSpec', 'template'],
  ['spec', 'rayClusterConfig', 'workerGroupSpecs', '*', 'template'],
  ['spec', 'rayClusterSpec', 'headGroupSpec', 'template'],
  ['spec', 'rayClusterSpec', 'workerGroupSpecs', '*', 'template'],
  ['spec', 'jobTargetRef', 'template'],
];

/**
 * The pod templates (with labels) of an object that is none of the workloads this webhook knows (an Argo Rollout,
 * a LeaderWorkerSet, a JobSet, a RayCluster, a RayService, a RayJob, a custom resource of another group with a known kind), at the
 * OTHER_TEMPLATE_PATHS, in that order (a list's items in order; their index is a path segment): lint and inject do
 * not check or inject them, while its controller's pods are injected and checked at admission. Empty when the
 * object is a known workload, or has no template with labels there.
 */
export function otherPodTemplates(obj: unknown): PodTemplateRef[] {
  if (!isObject(obj) || isWorkloadObject(obj) || (typeof obj.kind === 'string' && obj.kind.endsWith('List'))) return [];
  const out: PodTemplateRef[] = [];
  const walk = (cur: unknown, pattern: string[], at: number, path: string[]): void => {
    if (at === pattern.length) {
      if (!isObject(cur) || !isObject(cur.metadata) || !isObject(cur.metadata.labels)) return;
      out.push({
        path,
        template: cur,
        labels: cur.metadata.labels,
        annotations: isObject(cur.metadata.annotations) ? cur.metadata.annotations : {},
        spec: isObject(cur.spec) ? cur.spec : undefined,
      });
    } else if (pattern[at] === '*') {
      if (Array.isArray(cur)) cur.forEach((item, i) => walk(item, pattern, at + 1, [...path, String(i)]));
    } else if (isObject(cur)) walk(cur[pattern[at]!], pattern, at + 1, [...path, pattern[at]!]);
  };
  for (const pattern of OTHER_TEMPLATE_PATHS) walk(obj, pattern, 0, []);
  return out;
}

/** The first of otherPodTemplates, or null. */
export function otherPodTemplate(obj: unknown): PodTemplateRef | null {
  return otherPodTemplates(obj)[0] ?? null;
}

/** A template path as a person reads it: `spec.replicatedJobs[0].template.spec.template`. */
export function pathText(path: readonly string[]): string {
  return path.reduce((s, seg) => (/^[0-9]+$/.test(seg) ? `${s}[${seg}]` : s ? `${s}.${seg}` : seg), '');
}

/** Said of a Job's template in a fix that edits it (TemplateOwner.immutable): it cannot be changed on the Job there is. */
export const JOB_IMMUTABLE = "a Job's pod template cannot be changed: delete the Job and create it again with the change";
