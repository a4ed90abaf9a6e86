// The pod's QoS class, as far as injection can change it. Pure, no I/O; called by the injection core (inject.ts).
//
// Kubernetes fixes a pod's QoS class when it is created (ComputePodQOS, pkg/apis/core/helper/qos): the pod is
// Guaranteed when every container, init containers included (ephemeral ones cannot set resources), has a cpu and a
// memory limit above zero, and the requests of those two resources equal the limits (the API server's defaulting
// gives a container a missing request its limit, before the webhooks run). Only cpu and memory count. Sidecars with
// requests below their limits would turn such a pod Burstable: with the static CPU manager policy it loses its
// exclusive CPUs, its OOM score is worse, and it is evicted before Guaranteed pods. So the injected containers of a
// Guaranteed pod request what they are limited to.
//
// With pod-level resources (spec.resources, the PodLevelResources feature), the class follows those instead when the
// feature gate is on; injection then leaves the requests as configured (raising them would only make the
// pod-resources check fail sooner), and a pod that sets any is never treated as Guaranteed here.
import type { KubeObject } from './admission.ts';
import type { Resources } from './config.ts';
import { isObject } from './json.ts';
import { compareQuantities, parseQuantity, QuantityError } from './quantity.ts';
import type { Quantity } from './quantity.ts';

const QOS_RESOURCES = ['cpu', 'memory'] as const;

/**
 * Parsed quantities by their text (null: not a quantity), for the few values pods repeat ("1", "500m", "512Mi"):
 * parsing them anew on every injection was most of this check's cost. Cleared when full, so hostile pods with
 * many distinct values cannot grow it. The parsed objects are only read (compareQuantities).
 */
const parsed = new Map<string, Quantity | null>();
const PARSED_MAX = 256;

function quantity(v: unknown): Quantity | null {
  if (typeof v !== 'string' && !(typeof v === 'number' && Number.isFinite(v))) return null;
  const text = String(v);
  let q = parsed.get(text);
  if (q !== undefined) return q;
  try {
    q = parseQuantity(text);
  } catch (err) {
    if (!(err instanceof QuantityError)) throw err;
    q = null;
  }
  if (text.length <= 64) {
    if (parsed.size >= PARSED_MAX) parsed.clear();
    parsed.set(text, q);
  }
  return q;
}

const ZERO = parseQuantity('0');

/** Whether one container counts as Guaranteed: a cpu and a memory limit above zero, each request unset or equal to it. */
function containerGuaranteed(c: KubeObject): boolean {
  const res = c.resources;
  if (!isObject(res) || !isObject(res.limits)) return false;
  const requests = isObject(res.requests) ? res.requests : {};
  for (const r of QOS_RESOURCES) {
    const limit = Object.hasOwn(res.limits, r) ? quantity(res.limits[r]) : null;
    if (!limit || compareQuantities(limit, ZERO) <= 0) return false;
    if (!Object.hasOwn(requests, r) || requests[r] === null || requests[r] === undefined) continue;
    if (requests[r] === res.limits[r]) continue; // the same text: equal (the limit parsed above)
    const request = quantity(requests[r]);
    if (!request || compareQuantities(request, limit) !== 0) return false;
  }
  return true;
}

function setsAny(list: unknown): boolean {
  if (!isObject(list)) return false;
  for (const k in list) if (Object.hasOwn(list, k)) return true;
  return false;
}

/**
 * Whether a pod with these containers (its own: without what an earlier injection added) is of QoS class Guaranteed
 * by its containers, so that the injected containers must keep it so. False for a pod that sets pod-level resources
 * (`spec.resources`), whose class those decide. Never throws, whatever the shapes.
 */
export function guaranteedPod(podResources: unknown, containers: readonly KubeObject[], initContainers: readonly KubeObject[]): boolean {
  if (isObject(podResources) && (setsAny(podResources.requests) || setsAny(podResources.limits))) return false;
  if (!containers.length) return false;
  for (const c of containers) if (!isObject(c) || !containerGuaranteed(c)) return false;
  for (const c of initContainers) if (!isObject(c) || !containerGuaranteed(c)) return false;
  return true;
}

/**
 * The resources an injected container gets: as configured, or in a Guaranteed pod with each request equal to its
 * limit (the config always has a cpu and a memory limit). A fresh object every call.
 */
export function injectedResources(r: Resources, guaranteed: boolean): KubeObject {
  return guaranteed ? { requests: { ...r.limits }, limits: { ...r.limits } } : { requests: { ...r.requests }, limits: { ...r.limits } };
}
