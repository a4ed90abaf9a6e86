// Where each workload kind keeps its pod template. Shared by injection, validation, inject and lint.
import type { KubeObject } from './admission.ts';
import { isObject } from './json.ts';

export const WORKLOAD_KINDS = ['Pod', 'Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job', 'CronJob'] as const;
export type WorkloadKind = (typeof WORKLOAD_KINDS)[number];

const TEMPLATE_PATHS: Record<WorkloadKind, string[]> = {
  Pod: [],
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
};

export function isWorkloadKind(kind: unknown): kind is WorkloadKind {
  return typeof kind === 'string' && Object.hasOwn(TEMPLATE_PATHS, kind);
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

/** The pod template of a Pod or workload object, by reference (mutations land in `obj`), or null. */
export function getPodTemplate(obj: unknown): PodTemplateRef | null {
  if (!isObject(obj)) return null;
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
