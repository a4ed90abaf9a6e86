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
 * null for a kind whose template this webhook does not know (a KEDA ScaledJob, a JobSet).
 */
export function workloadSpecPath(kind: string): string | null {
  if (kind === 'Pod') return null;
  if (isWorkloadKind(kind)) return podSpecFieldPath(kind);
  return kind === 'Rollout' ? 'spec.template.spec' : null;
}

/**
 * Where a kind this webhook does not know may keep a pod template: where the kinds it knows keep theirs, and where
 * the controllers that nest them deeper do (`*`: each item of a list): a LeaderWorkerSet's leader and worker
 * templates, a JobSet's replicated Jobs' pod templates, a KubeRay RayCluster's head and worker groups, and those of the
 * RayCluster a RayService (`spec.rayClusterConfig`) or a RayJob (`spec.rayClusterSpec`) creates.
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
