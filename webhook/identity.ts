// Agent identity: which top-level workload (or kagenti.io/agent name) a Pod or workload belongs to.
// Pure functions; the cluster cache supplies an OwnerLookup so Job pods of a CronJob and ReplicaSets of a
// Deployment resolve to their top-level owner. Never puts a pod-template hash into an identity.
import type { KubeObject } from './admission.ts';
import type { Config } from './config.ts';
import { isAgentType } from './config.ts';
import { getPodTemplate, isWorkloadKind } from './workloads.ts';
import { isObject } from './json.ts';

export const AGENT_LABEL = 'kagenti.io/agent';

export interface OwnerRef {
  kind: string;
  name: string;
}

/**
 * Looks up the controller owner of a cached object. Returns the owner, `null` when the object is cached
 * and has no controller owner, `undefined` when the object is not in the cache (unknown).
 */
export type OwnerLookup = (kind: string, namespace: string, name: string) => OwnerRef | null | undefined;

/** The controller ownerReference of an object (kind/name), or null. */
export function controllerOf(obj: unknown): OwnerRef | null {
  const refs = isObject(obj) && isObject(obj.metadata) ? obj.metadata.ownerReferences : undefined;
  if (!Array.isArray(refs)) return null;
  const valid = refs.filter(
    (r): r is KubeObject => isObject(r) && typeof r.kind === 'string' && typeof r.name === 'string' && r.name !== '',
  );
  const ctl = valid.find((r) => r.controller === true) ?? (valid.length === 1 ? valid[0] : undefined);
  return ctl ? { kind: ctl.kind, name: ctl.name } : null;
}

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
 * The top-level workload an object belongs to.
 * - Pod → its controller: ReplicaSet of a Deployment → the Deployment (the cache, or the pod-template hash
 *   when the ReplicaSet is not cached); Job → the CronJob when the cache says so, else the Job;
 *   StatefulSet/DaemonSet/other controllers → that owner; no owner → the Pod itself.
 * - ReplicaSet owned by a Deployment → the Deployment; Job owned by a CronJob → the CronJob; other
 *   workloads → themselves.
 */
export function topLevelWorkload(obj: KubeObject, namespace: string, lookup?: OwnerLookup): OwnerRef {
  const kind = typeof obj.kind === 'string' ? obj.kind : 'Pod';
  const self: OwnerRef = { kind, name: objectName(obj) };
  const owner = controllerOf(obj);
  if (!owner) return self;
  if (kind === 'Pod') {
    if (owner.kind === 'ReplicaSet') {
      const cached = lookup?.('ReplicaSet', namespace, owner.name);
      if (cached && cached.kind === 'Deployment') return cached;
      if (cached === null) return owner; // a bare ReplicaSet the cache knows about
      const labels = isObject(obj.metadata) && isObject(obj.metadata.labels) ? obj.metadata.labels : {};
      const dep = stripTemplateHash(owner.name, labels['pod-template-hash']);
      return dep ? { kind: 'Deployment', name: dep } : owner;
    }
    if (owner.kind === 'Job') {
      const cached = lookup?.('Job', namespace, owner.name);
      if (cached && cached.kind === 'CronJob') return cached;
      return owner; // a Job that is not in the cache counts as itself
    }
    return owner;
  }
  if (kind === 'ReplicaSet' && owner.kind === 'Deployment') return owner;
  if (kind === 'Job' && owner.kind === 'CronJob') return owner;
  if (isWorkloadKind(kind)) return self; // e.g. a StatefulSet owned by an operator's CR is still its own workload
  return owner;
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
): AgentIdentity | null {
  if (!isObject(obj)) return null;
  const tpl = getPodTemplate(obj);
  if (!tpl) return null;
  if (!isAgentType(tpl.labels, config)) return null;
  const ns = objectNamespace(obj, namespace ?? 'default');
  const top = topLevelWorkload(obj, ns, lookup);
  const out: AgentIdentity = {
    kind: top.kind,
    name: top.name,
    namespace: ns,
    serviceAccount: effectiveServiceAccount(tpl.spec),
  };
  const agent = tpl.labels[AGENT_LABEL];
  if (typeof agent === 'string' && agent !== '') out.agent = agent;
  const selfKind = obj.kind as string;
  const selfName = objectName(obj);
  if (selfKind !== top.kind || selfName !== top.name) out.source = { kind: selfKind, name: selfName };
  return out;
}

/** The key that says whether two claims are the same agent: the agent label when set, else the workload. */
export function identityKey(a: { kind: string; name: string; agent?: string }): string {
  return a.agent ? `agent:${a.agent}` : `${a.kind}/${a.name}`;
}

export function spiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}
