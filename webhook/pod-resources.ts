// Pod-level resources (spec.resources, KEP-2837 "PodLevelResources"): whether the containers injection adds would
// make the API server reject the pod. Pure, no I/O; called by the injection core (inject.ts) only for a pod that has
// spec.resources, so other pods pay one property lookup.
//
// What the API server does, as this module models it (Kubernetes sources read for it):
// - The feature gate PodLevelResources is alpha (off by default) in 1.32 and 1.33, beta and on by default from 1.34
//   (kubernetes/website feature-gates/PodLevelResources.md). With it off, the API server drops spec.resources from a
//   new pod (kubernetes/kubernetes#128133, "logic for dropping disabled fields") and checks nothing of it; pod-level
//   validation runs only when it is on (ValidatePodSpec calls validatePodResources under
//   opts.PodLevelResourcesEnabled, pkg/apis/core/validation/validation.go).
// - Pod-level resources are cpu, memory and hugepages-* (component-helpers/resource/helpers.go,
//   SupportedPodLevelResources). The injected containers request only cpu and memory, so only those two can be made
//   invalid by injection.
// - Requests (validatePodResourceConsistency): for each resource, the pod-level request must be at least the
//   aggregate of the containers' requests, `spec.resources.requests[cpu]: Invalid value: "100m": must be greater
//   than or equal to aggregate container requests of 160m`. The aggregate is AggregateContainerRequests (KEP-753's
//   formula): the sum over the regular containers and the restartable (restartPolicy: Always, "native sidecar")
//   init containers, or, if larger, the largest of what each init container needs while it runs: a non-restartable
//   init container's request plus those of the restartable init containers listed before it (for a restartable one,
//   the sum of the restartable ones up to and including it). Pod overhead is not part of it.
// - Limits (same function): each regular container's limit (spec.containers only; init containers, native sidecars
//   included, are not compared) must be at most the pod-level limit of that resource when the pod sets one, at the
//   odd path `spec.resources.containers[0][cpu].limits: Invalid value: "500m": must be less than or equal to pod
//   limits of 200m`. The sum of the containers' limits may exceed the pod's.
// - Defaulting (pkg/apis/core/v1/defaults.go, SetDefaults_Pod; a Pod only, never a PodTemplate), applied when the
//   pod is decoded, before the mutating webhooks, and again after each webhook's patch
//   (webhook/mutating/dispatcher.go calls the defaulter on the patched object): a container's missing request takes
//   its limit; with the gate on and pod-level limits set, a missing pod-level cpu or memory request takes the
//   aggregate of the containers' requests when some container requests it, else the pod-level limit. So a pod that
//   sets only limits gets requests from its own containers before the webhook runs, and the injected sidecars then
//   exceed them. Quantities are rounded up to milli units (SetDefaults_ResourceList).
// - A resource the pod sets no request for (and no limit, so nothing is defaulted) was compared as 0 in the first
//   releases (kubernetes/kubernetes#132449: `Invalid value: "0": must be greater than or equal to aggregate
//   container requests of 10Mi`); #132551 (1.34) skips resources pod-level resources do not support, and whether a
//   supported one left unset is still compared as 0 depends on the version. Reported as uncertain (a warning).
// - 1.36 also defaults missing pod-level limits from the containers' limits when pod-level requests are set and every
//   container has a limit (defaultPodLimits). Not modelled here: a pod at /mutate arrives with it already applied,
//   so only a pod template (lint, /validate) can miss it.
import type { KubeObject } from './admission.ts';
import { isObject } from './json.ts';
import type { Quantity } from './quantity.ts';
import { exceedsMaxQuantity, formatQuantity, parseQuantity, QuantityError } from './quantity.ts';

/** The pod-level resources the injected containers can request. */
export const INJECTED_RESOURCES = ['cpu', 'memory'] as const;
export type InjectedResource = (typeof INJECTED_RESOURCES)[number];

/** How the pod-level request compared was obtained. */
export type RequestSource = 'set' | 'from-requests' | 'from-limit';

export type PodResourceFinding =
  | {
      /** the pod-level request is below the aggregate of the containers' requests with the injected ones */
      kind: 'requests';
      resource: InjectedResource;
      /** the pod-level request compared, as written or as the API server defaults it */
      request: string;
      source: RequestSource;
      /** the aggregate with the injected containers: the least pod-level request that passes */
      minimum: string;
      /** the aggregate of the pod's own containers */
      own: string;
      /** the pod-level limit, when the minimum exceeds it (requests may not exceed limits: it must rise too) */
      limit?: string;
    }
  | {
      /** the pod sets no request (nor limit) for the resource, and the injected containers request some */
      kind: 'unset';
      resource: InjectedResource;
      minimum: string;
    }
  | {
      /** injected regular containers whose limit exceeds the pod-level limit */
      kind: 'limits';
      resource: InjectedResource;
      limit: string;
      /** the largest injected limit: the least pod-level limit that passes */
      minimum: string;
      containers: string[];
    };

/** A quantity in milli units, rounded up as the API server's defaulting does; null when it is not a usable one. */
function milli(v: unknown): bigint | null {
  let text: string;
  if (typeof v === 'string') text = v;
  else if (typeof v === 'number' && Number.isFinite(v)) text = String(v);
  else return null;
  let q: Quantity;
  try {
    q = parseQuantity(text);
  } catch (err) {
    if (err instanceof QuantityError) return null;
    throw err;
  }
  // Negative or beyond 2^63-1: the API server rejects it on its own; nothing to compare.
  if (q.negative || exceedsMaxQuantity(q)) return null;
  const e = q.exponent + 3;
  if (e >= 0) return q.coefficient * 10n ** BigInt(e);
  const d = 10n ** BigInt(-e);
  return (q.coefficient + d - 1n) / d;
}

function text(m: bigint, r: InjectedResource): string {
  return formatQuantity({ negative: false, coefficient: m, exponent: -3, format: r === 'memory' ? 'BinarySI' : 'DecimalSI' });
}

/** A resource list's entry for r, or undefined when the list has none. */
function entry(list: unknown, r: string): unknown {
  return isObject(list) && Object.hasOwn(list, r) ? list[r] : undefined;
}

/**
 * A container's request for r after defaulting (a missing request takes the limit): undefined when it has neither,
 * null when the value is not a usable quantity.
 */
function request(c: KubeObject, r: InjectedResource): bigint | null | undefined {
  const res = c.resources;
  if (!isObject(res)) return undefined;
  const v = entry(res.requests, r) ?? entry(res.limits, r);
  return v === undefined || v === null ? undefined : milli(v);
}

/**
 * AggregateContainerRequests for one resource: undefined when no container requests it, null when a request is not
 * a usable quantity (the API server rejects the pod for that on its own).
 */
function aggregate(containers: readonly KubeObject[], initContainers: readonly KubeObject[], r: InjectedResource): bigint | null | undefined {
  let any = false;
  let sum = 0n;
  for (const c of containers) {
    const q = request(c, r);
    if (q === null) return null;
    if (q === undefined) continue;
    any = true;
    sum += q;
  }
  let restartable = 0n;
  let initMax = 0n;
  for (const c of initContainers) {
    const q = request(c, r);
    if (q === null) return null;
    const v = q ?? 0n;
    if (q !== undefined) any = true;
    let need: bigint;
    if (c.restartPolicy === 'Always') {
      sum += v;
      restartable += v;
      need = restartable;
    } else need = v + restartable;
    if (need > initMax) initMax = need;
  }
  if (!any) return undefined;
  return sum > initMax ? sum : initMax;
}

function hasKeys(o: unknown): boolean {
  if (!isObject(o)) return false;
  for (const k in o) if (Object.hasOwn(o, k)) return true;
  return false;
}

/**
 * What the API server would reject in the pod once injected, as it validates pod-level resources with the feature gate
 * on. `own*` are the pod's containers before injection (without an earlier injection's), `final*` the lists the pod
 * gets, and `injected` the containers injection adds to spec.containers (the limit check covers only those).
 * Only problems injection causes are reported: a request the pod's own containers already exceed, or a limit of the
 * pod's own container above the pod's, is the API server's to name. Never throws, whatever the shapes.
 */
export function podResourceFindings(
  podResources: unknown,
  own: { containers: readonly KubeObject[]; initContainers: readonly KubeObject[] },
  final: { containers: readonly KubeObject[]; initContainers: readonly KubeObject[] },
  injectedRegular: readonly KubeObject[],
): PodResourceFinding[] {
  if (!isObject(podResources)) return [];
  const podRequests = podResources.requests;
  const podLimits = podResources.limits;
  const limitsSet = hasKeys(podLimits);
  const out: PodResourceFinding[] = [];
  for (const r of INJECTED_RESOURCES) {
    const before = aggregate(own.containers, own.initContainers, r);
    const after = aggregate(final.containers, final.initContainers, r);
    if (before === null || after === null) continue;
    const limitRaw = entry(podLimits, r);
    const limit = limitRaw === undefined || limitRaw === null ? undefined : milli(limitRaw);
    if (limit === null) continue;
    // requests: as written, else as defaulted when pod-level limits are set (before the webhook: from the pod's own
    // containers), else unset
    const requestRaw = entry(podRequests, r);
    let podRequest: bigint | null | undefined;
    let source: RequestSource = 'set';
    if (requestRaw !== undefined && requestRaw !== null) podRequest = milli(requestRaw);
    else if (limitsSet && before !== undefined) [podRequest, source] = [before, 'from-requests'];
    else if (limitsSet && limit !== undefined) [podRequest, source] = [limit, 'from-limit'];
    if (podRequest === null) continue;
    const added = after !== undefined && after > (before ?? 0n);
    if (podRequest !== undefined) {
      if (added && after! > podRequest)
        out.push({
          kind: 'requests',
          resource: r,
          request: text(podRequest, r),
          source,
          minimum: text(after!, r),
          own: text(before ?? 0n, r),
          ...(limit !== undefined && after! > limit ? { limit: text(limit, r) } : {}),
        });
    } else if (added && (before ?? 0n) === 0n) out.push({ kind: 'unset', resource: r, minimum: text(after!, r) });
    // limits: the injected regular containers' against the pod's
    if (limit === undefined) continue;
    let max = 0n;
    const names: string[] = [];
    for (const c of injectedRegular) {
      const q = isObject(c.resources) ? entry(c.resources.limits, r) : undefined;
      const m = q === undefined || q === null ? undefined : milli(q);
      if (m === undefined || m === null || m <= limit) continue;
      names.push(String(c.name));
      if (m > max) max = m;
    }
    if (names.length) out.push({ kind: 'limits', resource: r, limit: text(limit, r), minimum: text(max, r), containers: names });
  }
  return out;
}
