// The injection core: pure, no I/O. A pod (or a workload's pod template) and the config in, a decision
// and a mutated copy out. The webhook and the offline `inject` command both call injectTemplate().
import type { KubeObject } from './admission.ts';
import { shown } from './admission.ts';
import type { AuthBridgeMode, Config, MtlsMode } from './config.ts';
import { AUTHBRIDGE_MODES, HELPER_CONFIG_DIR, INJECTION_POLICIES, INJECTION_WARNINGS, MTLS_MODES, SVID_DIR, isAgentType } from './config.ts';
import type { InjectionPolicy, InjectionWarning } from './config.ts';
import { cutKey, isObject, jsonEqual, quoted, sealJson } from './json.ts';
import type { PodResourceFinding } from './pod-resources.ts';
import { podResourceFindings } from './pod-resources.ts';
import { defaultPullPolicy } from './image-ref.ts';
import { guaranteedPod, injectedResources } from './qos.ts';
import { VERSION } from './version.ts';
import { JOB_IMMUTABLE, templateFieldText } from './workloads.ts';
import type { TemplateOwner } from './workloads.ts';

export const LABEL_TYPE = 'kagenti.io/type';
export const LABEL_INJECT = 'kagenti.io/inject';
export const LABEL_SPIFFE_HELPER_INJECT = 'kagenti.io/spiffe-helper-inject';
export const LABEL_AUTHBRIDGE_INJECT = 'kagenti.io/authbridge-inject';
export const LABEL_ENVOY_PROXY_INJECT = 'kagenti.io/envoy-proxy-inject';
export const ANNOTATION_MODE = 'kagenti.io/authbridge-mode';
export const ANNOTATION_MTLS = 'kagenti.io/mtls-mode';
export const ANNOTATION_NATIVE_SIDECARS = 'kagenti.io/native-sidecars';
export const ANNOTATION_STATUS = 'kagenti.io/authbridge-status';
export const ANNOTATION_HELPER_CONFIG = 'kagenti.io/spiffe-helper-config';
export const ANNOTATION_DEFAULT_CONTAINER = 'kubectl.kubernetes.io/default-container';
/** Namespace label that sets the default mode for the namespace's pods (the pod annotation still wins). */
export const NAMESPACE_LABEL_MODE = 'kagenti.io/authbridge-mode';
/** Pod Security admission's namespace label: the level it enforces (privileged, baseline, restricted). */
export const NAMESPACE_LABEL_PSA_ENFORCE = 'pod-security.kubernetes.io/enforce';

export const CONTAINER_AUTHBRIDGE = 'authbridge-proxy';
export const CONTAINER_ENVOY = 'envoy-proxy';
export const CONTAINER_SPIFFE_HELPER = 'spiffe-helper';
export const CONTAINER_PROXY_INIT = 'proxy-init';
export const VOLUME_SOCKET = 'spire-agent-socket';
export const VOLUME_SVID = 'svid-output';
export const VOLUME_HELPER_CONFIG = 'spiffe-helper-config';

export const RESERVED_CONTAINERS = [CONTAINER_AUTHBRIDGE, CONTAINER_ENVOY, CONTAINER_SPIFFE_HELPER, CONTAINER_PROXY_INIT];
export const RESERVED_VOLUMES = [VOLUME_SOCKET, VOLUME_SVID, VOLUME_HELPER_CONFIG];

export { HELPER_CONFIG_DIR, SVID_DIR };
export const HELPER_CONFIG_FILE = 'helper.conf';
export const PROXY_UID = 1337;

/** Istio's sidecar: its proxy container, the init containers its injector adds, and the annotation it records them in. */
export const ISTIO_PROXY = 'istio-proxy';
const ISTIO_CONTAINERS: ReadonlySet<unknown> = new Set([ISTIO_PROXY, 'istio-init', 'istio-validation']);
/**
 * Other meshes' sidecars, as their injectors add them: the proxy container (a regular one, or a native sidecar in the
 * init containers) and the init container that sets up the mesh's iptables rules (NET_ADMIN, NET_RAW; it makes no
 * outbound connection), and how a pod opts out of that injection. Beside the proxy, both are the injector's, not the
 * user's: the warnings about the pod's own containers (init-before-proxy, net-admin, proxy-uid, probe-through-proxy),
 * whose fixes cannot be applied to them, leave them out, as Istio's, and mesh-sidecar covers the pod. An init
 * container of that name without the mesh's proxy is the pod's own. README ("Warnings") lists them.
 */
export const OTHER_MESHES: readonly { mesh: string; proxy: string; init: string; optOut: string }[] = [
  { mesh: 'Linkerd', proxy: 'linkerd-proxy', init: 'linkerd-init', optOut: 'annotate {annotate} linkerd.io/inject: disabled' },
  { mesh: 'Kuma', proxy: 'kuma-sidecar', init: 'kuma-init', optOut: 'label {label} kuma.io/sidecar-injection: disabled (older Kuma reads it as an annotation)' },
];
/** Linkerd's per-pod (and namespace) injection annotation, and Kuma's injection label (older Kuma: an annotation). */
export const ANNOTATION_LINKERD_INJECT = 'linkerd.io/inject';
export const LABEL_KUMA_INJECTION = 'kuma.io/sidecar-injection';
export const ANNOTATION_ISTIO_STATUS = 'sidecar.istio.io/status';
/** Istio's per-pod opt-out (a label, or the older annotation) and its namespace label that turns its injection on. */
export const LABEL_ISTIO_INJECT = 'sidecar.istio.io/inject';
export const NAMESPACE_LABEL_ISTIO_INJECTION = 'istio-injection';
/** Istio's revision label, on a namespace or a pod (template): which control plane revision injects its sidecar. */
export const LABEL_ISTIO_REV = 'istio.io/rev';

export const INJECTION_RULES = ['invalid-annotation', 'reserved-name', 'port-conflict', 'host-network', 'unsupported-os', 'malformed-object', 'pod-resources', 'istio-sidecar'] as const;
export type InjectionRule = (typeof INJECTION_RULES)[number];
// The injection's warnings have stable names too (config.ts INJECTION_WARNINGS): each begins with `[name] `, as a
// denial begins with its rule, and `policies.<name>: off` silences it. An injection denial with a policy
// (config.ts INJECTION_POLICIES: pod-resources, istio-sidecar) is a warning of the same name under `warn`, and is not
// checked under `off`.
export { INJECTION_POLICIES, INJECTION_WARNINGS };
export type { InjectionPolicy, InjectionWarning };

/** The csi-driver-missing warning (given where the cluster's CSIDrivers are known: /mutate, /validate of a workload). */
export function csiDriverMissing(ref: string, driver: string): string {
  const who = ref.startsWith('Pod ') ? 'the pod waits' : 'its pods wait';
  return `[csi-driver-missing] ${ref}: CSIDriver ${driver} is not installed, so ${who} in Init until the SPIFFE CSI driver is installed. Fix: install the SPIFFE CSI driver (or set spire.csiDriver to the one the cluster has).`;
}
/** The node label a nodeSelector names to pick the nodes' operating system. */
const NODE_LABEL_OS = 'kubernetes.io/os';
/** The deprecated node label the kubelet still sets beside kubernetes.io/os; older manifests select on it. */
const NODE_LABEL_OS_BETA = 'beta.kubernetes.io/os';

export interface InjectionStatus {
  version: string;
  mode: AuthBridgeMode;
  containers: string[];
  initContainers: string[];
  volumes: string[];
  /**
   * The kubectl.kubernetes.io/default-container value the injection set (to the pod's first own container, while our
   * sidecars come first in its containers): it then owns the annotation, keeps it pointing there and removes it once
   * it is no longer needed. Absent when the injection did not set it (the user did, or none was needed), and in
   * records written before the field existed, which are read as they were.
   */
  defaultContainer?: string;
}

export interface InjectContext {
  /** Namespace of the pod (request namespace; metadata.namespace may be empty on CREATE). */
  namespace: string;
  /** Labels of the pod's namespace when known (namespace default mode). */
  namespaceLabels?: Record<string, string>;
  /** Kind and name for messages, e.g. `Pod team-a/weather-agent-abc12`. */
  ref: string;
  /**
   * The workload a controller's pod is made from (rules.ts templateWorkload), when the pod is one: a fix that
   * annotates or labels the pod names that workload's pod template instead (the controller's next pod comes from it).
   * A function is called only when a message needs it (most admissions need none: no owner lookup for them).
   */
  owner?: TemplateOwner | (() => TemplateOwner | undefined);
  /**
   * Only the outcome, denial and warnings are wanted (lint, /validate of a workload), never the template: the
   * injected pieces are rendered for a placeholder identity (one cache entry per plan, not one per namespace and
   * ServiceAccount). Names, ports and volumes, all the checks read, do not depend on the identity.
   */
  checkOnly?: boolean;
}

export interface InjectDenial {
  rule: InjectionRule;
  /** one line, beginning with `[rule] ` */
  message: string;
  /**
   * The offending field, relative to the pod template (`['spec', 'containers', 1, 'ports', 0, 'containerPort']`),
   * when the denial is about one: lint points at it. Indices are those of the template as it came.
   */
  field?: readonly (string | number)[];
  /**
   * The API server itself refuses the pod (or workload) in this shape, whatever the webhooks do: a shape error of
   * checkShape other than a null label or annotation value (which Kubernetes decodes as ""). Lint keeps such a
   * denial in a namespace the webhook never sees, where it folds the webhook's own into one warning.
   */
  schema?: true;
}

/** Denials listed in one answer; a hostile pod with thousands of clashing ports gets a count of the rest. */
export const MAX_DENIALS = 10;

/** The denial message of an admission answer: each denial on its own line, and a count of those not listed. */
export function denialText(r: { all: readonly InjectDenial[]; unlisted: number }): string {
  return denialLines(r).join('\n');
}

/** denialText's messages, one each (admission.ts's deny() makes each one line before it joins them). */
export function denialLines(r: { all: readonly InjectDenial[]; unlisted: number }): string[] {
  const lines = r.all.map((d) => d.message);
  if (r.unlisted > 0) lines.push(`(${r.unlisted} more injection denials of the same pod are not listed.)`);
  return lines;
}

export type SkipReason = 'global-disabled' | 'not-agent' | 'tools-disabled' | 'inject-disabled' | 'all-opted-out';

export type InjectResult =
  | { outcome: 'skip'; reason: SkipReason }
  | ({ outcome: 'deny' } & InjectDenial & {
      /**
       * Every denial found, this one first, in the order the checks run (at most MAX_DENIALS; `unlisted` counts the
       * rest), so that one apply or one lint run shows them all. A malformed template or an invalid annotation
       * stops the checks there: what follows depends on them.
       */
      all: readonly InjectDenial[];
      unlisted: number;
    })
  | {
      outcome: 'inject';
      /** the injected template: unchanged subtrees shared with the input, injected pieces frozen; never write into it */
      template: KubeObject;
      mode: AuthBridgeMode;
      status: InjectionStatus;
      /** injected pieces for logs: container, init container and volume names */
      injected: readonly string[];
      warnings: string[];
      /**
       * Set when the template no longer asks for injection (`reason`) and an earlier injection's pieces were taken out
       * (withoutInjection): `pieces`, the container, init container and volume names removed, in the template's order.
       */
      removed?: { reason: SkipReason; pieces: readonly string[] };
    };

// ---------- structural checks: hostile or malformed pods get a clean denial, never a crash ----------

/** -1 when `v` is absent or a list of mappings, -2 when it is not a list, else the index of an item that is not a mapping. */
function badItem(v: unknown): number {
  if (v === undefined || v === null) return -1;
  if (!Array.isArray(v)) return -2;
  for (let j = 0; j < v.length; j++) if (!isObject(v[j])) return j;
  return -1;
}

/** The shape each list of the pod spec takes, for malformed-object's fix: `write ports as a list of {containerPort: N}`. */
const ITEM_SHAPES: Record<string, string> = {
  containers: '{name: NAME, image: IMAGE}',
  initContainers: '{name: NAME, image: IMAGE}',
  ephemeralContainers: '{name: NAME, image: IMAGE}',
  volumes: '{name: NAME, <source>: {...}}',
  ports: '{containerPort: N}',
  env: '{name: NAME, value: "..."}',
  volumeMounts: '{name: VOLUME, mountPath: /path}',
};

/** A list that is not a list, or an item of it that is not a mapping: where (`field`, from the pod template), and the shape it takes. */
function listProblem(v: unknown, path: string, field: readonly (string | number)[], key: string): ShapeError | null {
  const at = badItem(v);
  if (at === -1) return null;
  const item = ITEM_SHAPES[key]!;
  return at === -2
    ? { problem: `${path} must be a list`, fix: `write ${key} as a list of ${item}.`, field }
    : { problem: `${path}[${at}] must be a mapping`, fix: `write each item of ${key} as ${item}.`, field: [...field, at] };
}

/** What is wrong with one of the spec's lists (containers, volumes...), or null. Messages are built only on failure. */
function checkList(arr: unknown, specPath: string, key: 'containers' | 'initContainers' | 'ephemeralContainers' | 'volumes'): ShapeError | null {
  const path = `${specPath}.${key}`;
  const bad = listProblem(arr, path, ['spec', key], key);
  if (bad || arr === undefined || arr === null) return bad;
  const list = arr as KubeObject[];
  for (let i = 0; i < list.length; i++) {
    const item = list[i]!;
    if (typeof item.name !== 'string') return { problem: `${path}[${i}].name must be a string`, fix: `give it a name (name: NAME).`, field: ['spec', key, i, 'name'] };
    if (key === 'volumes') continue;
    for (const sub of ['ports', 'env', 'volumeMounts']) {
      const problem = listProblem(item[sub], `${path}[${i}].${sub}`, ['spec', key, i, sub], sub);
      if (problem) return problem;
    }
  }
  return null;
}

/** What is wrong with a pod's shape, and the fix when it is more specific than "match the Pod schema". */
interface ShapeError {
  problem: string;
  fix?: string;
  /** the offending field, relative to the pod template, where one key or item is at fault */
  field?: readonly (string | number)[];
  /** the API server admits it (a null label or annotation value, which it decodes as ""): only the webhook's check */
  admitted?: true;
}

/**
 * The most a pod's annotations may hold, keys and values together, in bytes (Kubernetes'
 * TotalAnnotationSizeLimitB). The API server enforces it only after the mutating webhooks, so the webhook sees
 * larger ones, and copying and diffing 200,000 annotations (a 3 MiB body) took it about 0.6 s.
 */
export const MAX_ANNOTATION_BYTES = 256 * 1024;

/**
 * Labels or annotations: a mapping of strings, and for annotations at most MAX_ANNOTATION_BYTES, checked in the
 * same pass. Sizes are counted in UTF-16 units, never more than the UTF-8 bytes Kubernetes counts, so over the
 * limit here is over it there too.
 */
function checkStrings(m: unknown, key: 'labels' | 'annotations', metaPath: string): ShapeError | null {
  if (m === undefined || m === null) return null;
  if (!isObject(m)) return { problem: `${metaPath}.${key} must be a mapping of strings`, fix: `write ${key} as a mapping of strings (key: "value").`, field: ['metadata', key] };
  let size = 0;
  for (const k in m) {
    if (!Object.hasOwn(m, k)) continue;
    const v = m[k];
    if (typeof v !== 'string') {
      const where = `${metaPath}.${key}[${quoted(k)}]`;
      // YAML reads true, false, yes, no, on, off and numbers unquoted as other types (kubectl then refuses the
      // manifest with a decoding error that names no field): the fix is the quotes
      if (typeof v === 'boolean' || typeof v === 'number')
        return { problem: `${where} is ${String(v)}, a ${typeof v}, but ${key} are strings`, fix: `put the value in quotes as you wrote it (${cutKey(k)}: "..."), or YAML reads it as a ${typeof v}.`, field: ['metadata', key, k] };
      return { problem: `${where} must be a string`, field: ['metadata', key, k], ...(v === null ? { admitted: true as const } : {}) };
    }
    size += k.length + v.length;
  }
  if (key !== 'annotations' || size <= MAX_ANNOTATION_BYTES) return null;
  return {
    problem: `${metaPath}.annotations hold more than ${MAX_ANNOTATION_BYTES} bytes, the most Kubernetes allows (the API server would reject the pod after the webhooks)`,
    fix: annotationsFix(metaPath),
  };
}

/** The fix for annotations over the limit: a Pod's may hold kubectl's copy of the manifest, a template's never do. */
function annotationsFix(metaPath: string): string {
  return metaPath === 'metadata'
    ? 'move large values out of the annotations (into a ConfigMap, for example); with kubectl apply, --server-side does not copy the manifest into the last-applied-configuration annotation.'
    : `move large values out of ${metaPath}.annotations (into a ConfigMap, for example).`;
}

/** The dotted path of the pod's metadata beside a pod spec path: `metadata`, `spec.template.metadata`... */
function metadataPath(specPath: string): string {
  return specPath.endsWith('.spec') ? `${specPath.slice(0, -'.spec'.length)}.metadata` : 'metadata';
}

/**
 * Where a per-pod annotation goes: on a workload's pod template (not on the workload itself), on the pod of its own,
 * or, for a controller's pod (`owner`), on its workload's pod template, as dedicated-service-account's fix says.
 */
function annotateTarget(specPath: string, owner?: InjectContext['owner']): string {
  return podTarget(specPath, 'annotations', owner);
}

/** Where the opt-out label goes: as annotateTarget (a label on the workload itself does nothing). */
function optOutTarget(specPath: string, owner?: InjectContext['owner']): string {
  return podTarget(specPath, 'labels', owner);
}

/**
 * `the pod template of <owner> (<field path>)`: the field in the template that makes a controller's pods (rules.ts
 * templateOwner: a CronJob's for its Job's pod, a LeaderWorkerSet's leader or worker template...), said in words
 * when the kind's template is not known; a Job's adds that its template cannot be changed.
 */
function podTarget(specPath: string, field: 'annotations' | 'labels', ownerOf?: InjectContext['owner']): string {
  if (specPath !== 'spec') return `the pod template (${metadataPath(specPath)}.${field})`;
  const owner = typeof ownerOf === 'function' ? ownerOf() : ownerOf;
  if (!owner) return 'the pod';
  // made by a custom resource (a kagent Agent, a KServe InferenceService), which writes its pods' labels or annotations
  const made = owner.made?.[field];
  if (made) return `the pods of ${owner.made!.label} (${made})`;
  const where = owner.at ? templateFieldText(owner.at, `metadata.${field}`) : `metadata.${field} of its pod template`;
  return `the pod template of ${owner.label} (${where}${owner.immutable ? `; ${JOB_IMMUTABLE}` : ''})`;
}

/** Keys and values of a string mapping in UTF-8 bytes, as Kubernetes counts them (for messages). */
function utf8Size(m: Record<string, string>): number {
  let size = 0;
  for (const k in m) if (Object.hasOwn(m, k)) size += Buffer.byteLength(k) + Buffer.byteLength(m[k]!);
  return size;
}

/** Keys and values of a string mapping, in UTF-16 units (as checkStrings counts them): at most the UTF-8 bytes. */
function sizeOf(m: Record<string, string>): number {
  let size = 0;
  for (const k in m) if (Object.hasOwn(m, k)) size += k.length + m[k]!.length;
  return size;
}

/**
 * Whether the pod's required node affinity admits no Linux node: every nodeSelectorTerm (terms are ORed) has a
 * matchExpressions entry on kubernetes.io/os that rules linux out (expressions within a term are ANDed, so one
 * suffices). Conservative: a missing, empty or unreadable term, or one whose expressions could still match a
 * Linux node, counts as admitting Linux. Never throws, whatever the shapes (checkShape does not look at them).
 */
function affinityExcludesLinux(spec: KubeObject): boolean {
  const affinity = spec.affinity;
  if (!isObject(affinity) || !isObject(affinity.nodeAffinity)) return false;
  const required = affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution;
  if (!isObject(required)) return false;
  const terms: unknown = required.nodeSelectorTerms;
  if (!Array.isArray(terms) || terms.length === 0) return false;
  return terms.every((term: unknown) => isObject(term) && Array.isArray(term.matchExpressions) && term.matchExpressions.some(expressionExcludesLinux));
}

/** A node selector requirement on kubernetes.io/os that no Linux node satisfies (In without linux, NotIn with it). */
function expressionExcludesLinux(e: unknown): boolean {
  if (!isObject(e) || (e.key !== NODE_LABEL_OS && e.key !== NODE_LABEL_OS_BETA)) return false;
  const values: unknown = e.values;
  if (!Array.isArray(values) || values.length === 0 || !values.every((v) => typeof v === 'string')) return false;
  if (e.operator === 'In') return !values.includes('linux');
  if (e.operator === 'NotIn') return values.includes('linux');
  return false;
}

/**
 * What is wrong with a pod template's shape, or null. Each of these the API server refuses too, before or after the
 * webhooks and in any namespace (InjectDenial.schema): a decoding error (metadata, labels or annotations not a
 * mapping of strings, spec not a mapping, a list that is not a list of mappings, a name or serviceAccountName that is
 * not a string, hostNetwork that is not a boolean), a required value (containers missing or empty, a container or
 * volume without a name) or annotations over MAX_ANNOTATION_BYTES. Except a null label or annotation value: the API
 * server decodes it as "" (ShapeError.admitted).
 */
function checkShape(t: KubeObject, specPath: string): ShapeError | null {
  const metaPath = metadataPath(specPath);
  if (t.metadata !== undefined && !isObject(t.metadata)) return { problem: `${metaPath} must be a mapping`, fix: `write ${metaPath} as a mapping (labels: {...}, annotations: {...}).`, field: ['metadata'] };
  const md = isObject(t.metadata) ? t.metadata : {};
  const meta = checkStrings(md.labels, 'labels', metaPath) ?? checkStrings(md.annotations, 'annotations', metaPath);
  if (meta) return meta;
  const spec = t.spec;
  if (!isObject(spec)) return { problem: `${specPath} must be a mapping`, fix: `write ${specPath} as a mapping, with containers: a list of ${ITEM_SHAPES.containers}.`, ...(spec === undefined ? {} : { field: ['spec'] }) };
  if (!Array.isArray(spec.containers))
    return { problem: `${specPath}.containers must be a list`, fix: `write containers as a list of ${ITEM_SHAPES.containers}.`, ...(spec.containers === undefined ? { field: ['spec'] } : { field: ['spec', 'containers'] }) };
  // The API server rejects a pod without containers (Required value); injected, it would run only our sidecars.
  if (spec.containers.length === 0)
    return { problem: `${specPath}.containers is empty: a pod needs at least one container of its own`, fix: `add the pod's own container to containers (${ITEM_SHAPES.containers}).`, field: ['spec', 'containers'] };
  const lists = checkList(spec.containers, specPath, 'containers') ?? checkList(spec.initContainers, specPath, 'initContainers') ?? checkList(spec.ephemeralContainers, specPath, 'ephemeralContainers') ?? checkList(spec.volumes, specPath, 'volumes');
  if (lists) return lists;
  if (spec.serviceAccountName !== undefined && spec.serviceAccountName !== null && typeof spec.serviceAccountName !== 'string')
    return { problem: `${specPath}.serviceAccountName must be a string`, fix: "write the ServiceAccount's name as a string.", field: ['spec', 'serviceAccountName'] };
  if (spec.hostNetwork !== undefined && spec.hostNetwork !== null && typeof spec.hostNetwork !== 'boolean')
    return { problem: `${specPath}.hostNetwork must be a boolean`, fix: 'write true or false, without quotes.', field: ['spec', 'hostNetwork'] };
  return null;
}

// ---------- eligibility ----------

/** Whether the template's labels ask for injection under this config; the skip reason when not. */
export function eligibility(labels: Record<string, unknown>, cfg: Config): SkipReason | null {
  if (!cfg.featureGates.globalEnabled) return 'global-disabled';
  const type = labels[LABEL_TYPE];
  if (type !== 'agent' && type !== 'tool') return 'not-agent';
  if (type === 'tool' && !cfg.featureGates.injectTools) return 'tools-disabled';
  if (labels[LABEL_INJECT] === 'disabled') return 'inject-disabled';
  return null;
}

// ---------- the status annotation ----------

/** Parses our status annotation; a malformed one counts as absent (it then accounts for nothing). */
export function parseStatus(value: unknown): InjectionStatus | null {
  if (typeof value !== 'string') return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return null;
  }
  if (!isObject(parsed)) return null;
  const names = (v: unknown) => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  return {
    version: typeof parsed.version === 'string' ? parsed.version : '',
    mode: (AUTHBRIDGE_MODES as readonly string[]).includes(parsed.mode) ? parsed.mode : 'proxy-sidecar',
    containers: names(parsed.containers),
    initContainers: names(parsed.initContainers),
    volumes: names(parsed.volumes),
    ...(typeof parsed.defaultContainer === 'string' ? { defaultContainer: parsed.defaultContainer } : {}),
  };
}

/** Whether the default-container annotation is the one an earlier injection set (its record says so, with this value). */
function ownsDefaultContainer(prev: InjectionStatus | null, annotations: Record<string, unknown>): boolean {
  return prev?.defaultContainer !== undefined && annotations[ANNOTATION_DEFAULT_CONTAINER] === prev.defaultContainer;
}

// ---------- rendering ----------

export function spiffeId(cfg: Config, namespace: string, serviceAccount: string | undefined): string {
  return `spiffe://${cfg.trustDomain}/ns/${namespace}/sa/${serviceAccount || 'default'}`;
}

export function socketPath(cfg: Config): string {
  return `${cfg.spire.socketDir.replace(/\/+$/, '')}/${cfg.spire.socketName}`;
}

/** spiffe-helper's helper.conf, rendered per pod (no ConfigMap needs to exist in the namespace). */
export function renderHelperConfig(cfg: Config): string {
  return [
    `agent_address = "${socketPath(cfg)}"`,
    `cert_dir = "${SVID_DIR}"`,
    `svid_file_name = "svid.pem"`,
    `svid_key_file_name = "svid_key.pem"`,
    `svid_bundle_file_name = "svid_bundle.pem"`,
    `daemon_mode = true`,
    '',
  ].join('\n');
}

function hardened(): KubeObject {
  return {
    runAsNonRoot: true,
    runAsUser: PROXY_UID,
    runAsGroup: PROXY_UID,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    privileged: false,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

// What the API server's defaulting (SetDefaults_Container, SetDefaults_DownwardAPIVolumeSource, ...) would add to
// the pieces we inject. They are written out, so that the pod the API server hands back on a re-invocation, after
// defaulting it, holds exactly what injection renders and the re-invocation is a no-op. The imagePullPolicy is the
// one it would give the image (defaultPullPolicy: Always for `latest` or no tag), so a new `latest` is pulled.
const CONTAINER_DEFAULTS = { terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'File' } as const;
/** 0644, the API server's default file mode for configMap, secret, downwardAPI and projected volumes. */
const DEFAULT_MODE = 420;

/**
 * A volume as the API server's defaulting leaves it, for the defaults that touch the volume kinds we inject
 * (configMap, downwardAPI; csi and emptyDir have none): a user's volume written without them still counts as ours.
 */
function withVolumeDefaults(v: KubeObject): KubeObject {
  if (isObject(v.configMap) && v.configMap.defaultMode === undefined) return { ...v, configMap: { ...v.configMap, defaultMode: DEFAULT_MODE } };
  if (isObject(v.downwardAPI)) {
    const d = v.downwardAPI;
    const items = Array.isArray(d.items)
      ? d.items.map((it: unknown) => (isObject(it) && isObject(it.fieldRef) && it.fieldRef.apiVersion === undefined ? { ...it, fieldRef: { apiVersion: 'v1', ...it.fieldRef } } : it))
      : d.items;
    return { ...v, downwardAPI: { ...d, items, defaultMode: d.defaultMode ?? DEFAULT_MODE } };
  }
  return v;
}

interface Plan {
  mode: AuthBridgeMode;
  mtls: MtlsMode;
  native: boolean;
  authBridge: boolean;
  proxyInit: boolean;
  spire: boolean;
  /** the pod's own containers make it Guaranteed (qos.ts): the injected ones request what they are limited to */
  guaranteed: boolean;
}

/** What each of the proxy's ports is, for port-conflict's message (keys of authBridge.ports). */
const PORT_ROLES: Record<string, string> = {
  outbound: "its outbound listener, which the pod's outgoing traffic goes through",
  inbound: 'its inbound listener, which traffic to the pod goes through',
  admin: 'its admin and health endpoint',
  extProc: 'the ext_proc server Envoy asks about each request',
};

function authBridgePorts(cfg: Config, mode: AuthBridgeMode): { key: string; name: string; port: number }[] {
  const p = cfg.authBridge.ports;
  const out = [
    { key: 'outbound', name: 'ab-outbound', port: p.outbound },
    { key: 'inbound', name: 'ab-inbound', port: p.inbound },
    { key: 'admin', name: 'ab-admin', port: p.admin },
  ];
  if (mode === 'envoy-sidecar') out.push({ key: 'extProc', name: 'ab-ext-proc', port: p.extProc });
  return out;
}

function renderAuthBridge(cfg: Config, plan: Plan, namespace: string, sa: string | undefined): KubeObject {
  const envoy = plan.mode === 'envoy-sidecar';
  const image =
    plan.mode === 'lite' ? cfg.authBridge.images.lite : envoy ? cfg.authBridge.images.envoy : cfg.authBridge.images.proxySidecar;
  const c: KubeObject = {
    name: envoy ? CONTAINER_ENVOY : CONTAINER_AUTHBRIDGE,
    image,
    imagePullPolicy: defaultPullPolicy(image),
    ports: authBridgePorts(cfg, plan.mode).map((p) => ({ name: p.name, containerPort: p.port, protocol: 'TCP' })),
    env: [
      { name: 'AUTHBRIDGE_MODE', value: plan.mode },
      { name: 'SPIRE_ENABLED', value: plan.spire ? 'true' : 'false' },
      { name: 'SPIFFE_ENDPOINT_SOCKET', value: `unix://${socketPath(cfg)}` },
      { name: 'SPIFFE_ID', value: spiffeId(cfg, namespace, sa) },
      { name: 'MTLS_MODE', value: plan.mtls },
      { name: 'SVID_DIR', value: SVID_DIR },
      { name: 'OUTBOUND_PORT', value: String(cfg.authBridge.ports.outbound) },
      { name: 'INBOUND_PORT', value: String(cfg.authBridge.ports.inbound) },
      { name: 'ADMIN_PORT', value: String(cfg.authBridge.ports.admin) },
    ],
    resources: injectedResources(cfg.authBridge.resources, plan.guaranteed),
    ...CONTAINER_DEFAULTS,
    securityContext: hardened(),
  };
  if (envoy) c.env.push({ name: 'EXT_PROC_PORT', value: String(cfg.authBridge.ports.extProc) });
  if (plan.spire)
    c.volumeMounts = [
      { name: VOLUME_SOCKET, mountPath: cfg.spire.socketDir, readOnly: true },
      { name: VOLUME_SVID, mountPath: SVID_DIR, readOnly: true },
    ];
  if (plan.native) c.restartPolicy = 'Always';
  if (plan.native && plan.proxyInit) {
    // A native sidecar counts as started once its process runs, and the kubelet then starts the next init container
    // (the pod's own, whose traffic proxy-init already sends to the proxy). With this probe it waits until the proxy
    // listens. The inbound port, because it must accept on the pod's address for proxy-init's inbound redirect to
    // work (the kubelet probes that address). Written with the API server's probe defaults (a re-invocation sees no
    // change); 600 one-second tries leave a slow start 10 minutes before the kubelet restarts the proxy.
    c.startupProbe = {
      tcpSocket: { port: cfg.authBridge.ports.inbound },
      timeoutSeconds: 1,
      periodSeconds: 1,
      successThreshold: 1,
      failureThreshold: 600,
    };
  }
  return c;
}

/** The inbound ports proxy-init leaves out of the redirect (INBOUND_PORTS_EXCLUDE): the proxy's admin, and in envoy-sidecar mode its ext-proc. */
function inboundExcluded(cfg: Config, mode: AuthBridgeMode): number[] {
  const p = cfg.authBridge.ports;
  return [p.admin, ...(mode === 'envoy-sidecar' ? [p.extProc] : [])];
}

function renderProxyInit(cfg: Config, plan: Plan): KubeObject {
  const p = cfg.authBridge.ports;
  return {
    name: CONTAINER_PROXY_INIT,
    image: cfg.authBridge.images.proxyInit,
    imagePullPolicy: defaultPullPolicy(cfg.authBridge.images.proxyInit),
    // The names kagenti's proxy-init script reads (init-iptables.sh: PROXY_PORT, INBOUND_PROXY_PORT, PROXY_UID,
    // INBOUND_PORTS_EXCLUDE; its defaults are 15123, 15124, 1337 and none). Other names would be ignored, and a
    // moved port would send the pod's traffic where nothing listens.
    env: [
      { name: 'PROXY_UID', value: String(PROXY_UID) },
      // the versions that work beside Istio's ambient mesh stop without it
      { name: 'POD_IP', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'status.podIP' } } },
      { name: 'PROXY_PORT', value: String(p.outbound) },
      { name: 'INBOUND_PROXY_PORT', value: String(p.inbound) },
      { name: 'INBOUND_PORTS_EXCLUDE', value: inboundExcluded(cfg, plan.mode).join(',') },
    ],
    resources: injectedResources(cfg.authBridge.resources, plan.guaranteed),
    ...CONTAINER_DEFAULTS,
    securityContext: {
      runAsNonRoot: false,
      runAsUser: 0,
      runAsGroup: 0,
      privileged: false,
      allowPrivilegeEscalation: false,
      // iptables takes its lock under /run/xtables.lock, so proxy-init keeps a writable root filesystem
      // (as Istio's istio-init does); it exits before the pod's containers start.
      readOnlyRootFilesystem: false,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
  };
}

function renderSpiffeHelper(cfg: Config, plan: Plan): KubeObject {
  const c: KubeObject = {
    name: CONTAINER_SPIFFE_HELPER,
    image: cfg.spiffeHelper.image,
    imagePullPolicy: defaultPullPolicy(cfg.spiffeHelper.image),
    args: ['-config', `${HELPER_CONFIG_DIR}/${HELPER_CONFIG_FILE}`],
    env: [{ name: 'SPIFFE_ENDPOINT_SOCKET', value: `unix://${socketPath(cfg)}` }],
    volumeMounts: [
      { name: VOLUME_SOCKET, mountPath: cfg.spire.socketDir, readOnly: true },
      { name: VOLUME_SVID, mountPath: SVID_DIR },
      { name: VOLUME_HELPER_CONFIG, mountPath: HELPER_CONFIG_DIR, readOnly: true },
    ],
    resources: injectedResources(cfg.spiffeHelper.resources, plan.guaranteed),
    ...CONTAINER_DEFAULTS,
    securityContext: hardened(),
  };
  if (plan.native) c.restartPolicy = 'Always';
  return c;
}

function renderVolumes(cfg: Config): KubeObject[] {
  const helperConfig: KubeObject = cfg.spiffeHelper.configMap
    ? {
        name: VOLUME_HELPER_CONFIG,
        configMap: { name: cfg.spiffeHelper.configMap, items: [{ key: HELPER_CONFIG_FILE, path: HELPER_CONFIG_FILE }], defaultMode: DEFAULT_MODE },
      }
    : {
        name: VOLUME_HELPER_CONFIG,
        downwardAPI: {
          items: [{ path: HELPER_CONFIG_FILE, fieldRef: { apiVersion: 'v1', fieldPath: `metadata.annotations['${ANNOTATION_HELPER_CONFIG}']` } }],
          defaultMode: DEFAULT_MODE,
        },
      };
  return [
    { name: VOLUME_SOCKET, csi: { driver: cfg.spire.csiDriver, readOnly: true } },
    { name: VOLUME_SVID, emptyDir: { medium: 'Memory' } },
    helperConfig,
  ];
}

// ---------- what one plan renders, kept ----------

interface Rendered {
  addInit: readonly KubeObject[];
  addSidecars: readonly KubeObject[];
  addVolumes: readonly KubeObject[];
  /** the ports the AuthBridge proxy binds (port-conflict) */
  ports: readonly { key: string; name: string; port: number }[];
  /** the status annotation when every piece is added (no volume of ours already there) */
  status: InjectionStatus;
  statusJson: string;
  injected: readonly string[];
}

/**
 * Renders per config object: a config never changes (config.ts deep-freezes every config it returns; to change
 * settings, build a new config object, which starts afresh). At most RENDERED_MAX plans per
 * config, oldest out.
 */
const renderedByConfig = new WeakMap<Config, Map<string, Rendered>>();
const RENDERED_MAX = 1024;
/** A namespace (at most 63 characters) and a service account name (at most 253) fit well within this. */
const MAX_KEPT_NAMES = 512;
const helperConfigs = new WeakMap<Config, string>();

/**
 * The containers and volumes a plan injects. They depend only on the config, the plan, the namespace and the
 * service account (the SPIFFE ID), so they are rendered once for each and shared, deep-frozen, by every pod
 * that needs them; sealJson keeps their JSON text for the patch.
 */
function rendered(cfg: Config, plan: Plan, namespace: string, sa: string): Rendered {
  let byKey = renderedByConfig.get(cfg);
  if (!byKey) renderedByConfig.set(cfg, (byKey = new Map()));
  // Names longer than Kubernetes allows (the API server validates the pod only after the mutating webhooks) are
  // rendered every time and never kept, so hostile pods cannot fill the cache with megabyte-long keys.
  const keep = namespace.length + sa.length <= MAX_KEPT_NAMES;
  // namespace is length-prefixed and the service account comes last, so no two inputs share a key
  const key = keep ? `${plan.mode}|${plan.mtls}|${+plan.native}${+plan.authBridge}${+plan.proxyInit}${+plan.spire}${+plan.guaranteed}|${namespace.length}:${namespace}|${sa}` : '';
  let r = keep ? byKey.get(key) : undefined;
  if (r) return r;
  const addInit: KubeObject[] = [];
  const addSidecars: KubeObject[] = [];
  if (plan.proxyInit) addInit.push(renderProxyInit(cfg, plan));
  if (plan.spire) addSidecars.push(renderSpiffeHelper(cfg, plan));
  if (plan.authBridge) addSidecars.push(renderAuthBridge(cfg, plan, namespace, sa || undefined));
  const addVolumes = plan.spire ? renderVolumes(cfg) : [];
  const seal = (list: KubeObject[]) => Object.freeze(list.map((o) => sealJson(o)));
  const status = sealJson(statusOf(plan, addInit, addSidecars, addVolumes));
  r = {
    addInit: seal(addInit),
    addSidecars: seal(addSidecars),
    addVolumes: seal(addVolumes),
    ports: sealJson(authBridgePorts(cfg, plan.mode)),
    status,
    statusJson: JSON.stringify(status),
    injected: Object.freeze(injectedOf(status)),
  };
  if (!keep) return r;
  if (byKey.size >= RENDERED_MAX) byKey.delete(byKey.keys().next().value!);
  byKey.set(key, r);
  return r;
}

function statusOf(plan: Plan, addInit: readonly KubeObject[], addSidecars: readonly KubeObject[], volumes: readonly KubeObject[]): InjectionStatus {
  return {
    version: VERSION,
    mode: plan.mode,
    containers: plan.native ? [] : addSidecars.map((c) => c.name),
    initContainers: [...addInit, ...(plan.native ? addSidecars : [])].map((c) => c.name),
    volumes: volumes.map((v) => v.name),
  };
}

function injectedOf(status: InjectionStatus): string[] {
  return [...status.initContainers, ...status.containers, ...status.volumes];
}

/** An image without its tag or digest (`registry/repo`). */
function imageRepository(image: unknown): string {
  if (typeof image !== 'string') return '';
  const at = image.indexOf('@');
  const ref = at === -1 ? image : image.slice(0, at);
  const colon = ref.lastIndexOf(':');
  return colon > ref.lastIndexOf('/') ? ref.slice(0, colon) : ref;
}

/** Whether `image` is (in any tag) one injection puts in a container of that name, in any mode. */
function injectedImage(cfg: Config, name: string, image: unknown): boolean {
  const repo = imageRepository(image);
  const i = cfg.authBridge.images;
  const candidates =
    name === CONTAINER_SPIFFE_HELPER ? [cfg.spiffeHelper.image] : name === CONTAINER_PROXY_INIT ? [i.proxyInit] : [i.proxySidecar, i.lite, i.envoy];
  return repo !== '' && candidates.some((c) => imageRepository(c) === repo);
}

/** The index of `item` in the template's own list (the pod as it came, before a stale record's pieces were taken out). */
function indexIn(list: unknown, item: unknown): number {
  return Array.isArray(list) ? list.indexOf(item) : -1;
}

/**
 * indexIn for many items of one list: the index of each item by a map built on first use, so a denial per item
 * of a long list costs no pass over the list each.
 */
function indexer(list: unknown): (item: unknown) => number {
  let at: Map<unknown, number> | undefined;
  return (item) => {
    if (!Array.isArray(list)) return -1;
    if (!at) {
      at = new Map();
      for (let i = list.length - 1; i >= 0; i--) at.set(list[i], i); // the first index wins, as with indexOf
    }
    return at.get(item) ?? -1;
  };
}

function hasName(list: readonly KubeObject[], name: string): boolean {
  for (const c of list) if (c.name === name) return true;
  return false;
}

/** A volume equal to an injected one, as written or with the API server's defaults (a copy made only when needed). */
function volumeEqual(v: KubeObject, piece: KubeObject): boolean {
  return jsonEqual(v, piece) || jsonEqual(withVolumeDefaults(v), piece);
}

/**
 * An extended resource: a resource name with a domain prefix (`vpc.amazonaws.com/pod-eni`, `nvidia.com/gpu`).
 * Injection never renders one (the config's resources have no such names), so one in the requests or limits
 * of a container of ours is another webhook's: EKS's vpc-resource-mutating-webhook (Security Groups for Pods) adds
 * `vpc.amazonaws.com/pod-eni` to the pod's first container, which without native sidecars is ours.
 */
function isExtendedResource(name: string): boolean {
  return name.includes('/');
}

/**
 * The extended resources another webhook added to a container of ours, by `requests` and `limits`: those of the
 * item's the piece does not set. Undefined when there are none (most pods: two property lookups and a short scan).
 */
function addedResources(item: KubeObject, piece: KubeObject): { requests?: Record<string, unknown>; limits?: Record<string, unknown> } | undefined {
  const r: unknown = item.resources;
  if (!isObject(r)) return undefined;
  const mine: unknown = piece.resources;
  let out: { requests?: Record<string, unknown>; limits?: Record<string, unknown> } | undefined;
  for (const key of ['requests', 'limits'] as const) {
    const m: unknown = r[key];
    if (!isObject(m)) continue;
    const own: unknown = isObject(mine) ? mine[key] : undefined;
    for (const name in m)
      if (Object.hasOwn(m, name) && isExtendedResource(name) && !(isObject(own) && Object.hasOwn(own, name))) ((out ??= {})[key] ??= {})[name] = m[name];
  }
  return out;
}

/** A container with `added` (addedResources) put into its requests and limits, or taken out of them (`keep` false). */
function withResources(c: KubeObject, added: NonNullable<ReturnType<typeof addedResources>>, keep: boolean): KubeObject {
  const r: Record<string, unknown> = isObject(c.resources) ? { ...c.resources } : {};
  for (const key of ['requests', 'limits'] as const) {
    const extra = added[key];
    if (!extra) continue;
    const m: Record<string, unknown> = isObject(r[key]) ? { ...r[key] } : {};
    for (const name in extra) if (keep) m[name] = extra[name];
    else delete m[name];
    r[key] = m;
  }
  return { ...c, resources: r };
}

/** Where the API server's ServiceAccount admission plugin mounts the token volume in every container. */
const SERVICE_ACCOUNT_MOUNT_PATH = '/var/run/secrets/kubernetes.io/serviceaccount';

/**
 * The volumeMount the API server's ServiceAccount admission plugin appended to a container (it runs before the
 * mutating webhooks, and adds `kube-api-access-<5 characters>`, read-only at SERVICE_ACCOUNT_MOUNT_PATH, as the
 * last mount of every container and init container that has no mount at that path, ours included when the pod
 * comes from a template `inject` rendered): the item's last mount, when it is exactly that and the piece has no
 * mount of that name or path. Else undefined.
 */
function serviceAccountMount(item: KubeObject, piece: KubeObject): KubeObject | undefined {
  const mounts: unknown = item.volumeMounts;
  if (!Array.isArray(mounts) || !mounts.length) return undefined;
  const m: unknown = mounts[mounts.length - 1];
  if (!isObject(m) || Object.keys(m).length !== 3 || m.readOnly !== true || m.mountPath !== SERVICE_ACCOUNT_MOUNT_PATH) return undefined;
  if (typeof m.name !== 'string' || !/^kube-api-access-[a-z0-9]{5}$/.test(m.name)) return undefined;
  const own: unknown = piece.volumeMounts;
  if (Array.isArray(own) && own.some((o) => isObject(o) && (o.name === m.name || o.mountPath === SERVICE_ACCOUNT_MOUNT_PATH))) return undefined;
  return m;
}

/** A container with the ServiceAccount plugin's mount `m` appended (`keep`), or taken off the end of its mounts. */
function withMount(c: KubeObject, m: KubeObject, keep: boolean): KubeObject {
  const mounts: KubeObject[] = Array.isArray(c.volumeMounts) ? c.volumeMounts : [];
  const out = { ...c };
  if (keep) out.volumeMounts = [...mounts, m];
  else if (mounts.length > 1) out.volumeMounts = mounts.slice(0, -1);
  else delete out.volumeMounts;
  return out;
}

/**
 * Whether a container found under a piece's name equals the piece, or differs from it only by extended resources
 * another webhook added to its requests or limits (addedResources), and by the ServiceAccount token mount the API
 * server added (serviceAccountMount): such a container stays as it is. Without this, a re-invocation would render
 * the piece again and take the other webhook's resources out (on EKS the pod would never get its branch network
 * interface, and would run with the node's security groups); and every pod of a template `inject` rendered (the
 * GitOps flow) would have ours removed and injected again at its first admission.
 */
function sameContainer(item: KubeObject, piece: KubeObject): boolean {
  if (jsonEqual(item, piece)) return true;
  const mount = serviceAccountMount(item, piece);
  const base = mount ? withMount(item, mount, false) : item;
  if (mount && jsonEqual(base, piece)) return true;
  const added = addedResources(base, piece);
  return added !== undefined && jsonEqual(withResources(base, added, false), piece);
}

/** Where a re-invocation finds the pieces of ours in a list. */
interface Found {
  /** for each piece, in order, the item of the list whose place it takes, or undefined (missing) */
  items: (KubeObject | undefined)[];
  /** for each piece, what goes in that place: the item itself when it equals the piece (kept), else the piece */
  now: KubeObject[];
  /** how many pieces have an item */
  count: number;
}

/**
 * Where the pieces already are in a list (as it came): for each piece, the first item of its name that the record
 * accounts for (a name in `recorded`, taken out otherwise) and that equals it, kept; else the first such item of
 * its name, which the piece replaces in place. One pass per piece (at most three), so linear in the list's length.
 * A container that differs from its piece only by extended resources another webhook added counts as equal
 * (sameContainer), and so does one that differs only by the ServiceAccount token mount the API server appended; a
 * piece that replaces a container carries such resources and that mount over: injection resets the fields it
 * renders, and leaves what it never renders to whoever added it.
 */
function findPieces(list: readonly KubeObject[], pieces: readonly KubeObject[], recorded: ReadonlySet<string>, volumes: boolean): Found {
  const items: (KubeObject | undefined)[] = [];
  const now: KubeObject[] = [];
  let count = 0;
  for (const piece of pieces) {
    let same: KubeObject | undefined;
    let stale: KubeObject | undefined;
    if (recorded.has(piece.name))
      for (let i = 0; i < list.length; i++) {
        const item = list[i]!;
        if (item.name !== piece.name || items.includes(item)) continue;
        if (volumes ? volumeEqual(item, piece) : sameContainer(item, piece)) {
          same = item;
          break;
        }
        stale ??= item;
      }
    const item = same ?? stale;
    if (item) count++;
    items.push(item);
    const added = !same && stale && !volumes ? addedResources(stale, piece) : undefined;
    // a piece rendered again keeps the API server's ServiceAccount token mount, which nothing would add back
    const mount = !same && stale && !volumes ? serviceAccountMount(stale, piece) : undefined;
    const renewed = added ? withResources(piece, added, true) : piece;
    now.push(same ?? (mount ? withMount(renewed, mount, true) : renewed));
  }
  return { items, now, count };
}

/**
 * The list as it came, with each piece found in the place of its item (the item itself when it is kept), the other
 * recorded items taken out, and the missing pieces placed beside the found ones in the order pieces are rendered:
 * right after the found piece that precedes them, or right before the first found one. Everything else keeps its
 * place. (In a pod nobody else changed, the pieces of ours sit together and this gives what a fresh injection
 * gives.) `found` holds at least one item.
 */
function placeAmongFound(list: readonly KubeObject[], recorded: ReadonlySet<string>, pieces: readonly KubeObject[], found: Found): KubeObject[] {
  const { items, now } = found;
  // nothing moved, added or taken out (a re-invocation): the list itself, which the diff skips by reference
  let same = found.count === pieces.length;
  for (let i = 0; same && i < pieces.length; i++) same = now[i] === items[i];
  if (same) for (let i = 0; same && i < list.length; i++) same = !recorded.has(list[i]!.name) || items.includes(list[i]);
  if (same) return list as KubeObject[];
  // the missing pieces, by the found item they go before or after
  let before: Map<KubeObject, KubeObject[]> | undefined;
  let after: Map<KubeObject, KubeObject[]> | undefined;
  let pending: KubeObject[] = [];
  let last: KubeObject | undefined;
  for (let i = 0; i < pieces.length; i++) {
    const item = items[i];
    if (item) {
      if (pending.length) (before ??= new Map()).set(item, pending);
      pending = [];
      last = item;
    } else if (last) {
      let next = (after ??= new Map()).get(last);
      if (!next) after.set(last, (next = []));
      next.push(pieces[i]!);
    } else pending.push(pieces[i]!);
  }
  const out: KubeObject[] = [];
  for (const item of list) {
    const k = recorded.has(item.name) ? items.indexOf(item) : -1;
    if (k === -1 && recorded.has(item.name)) continue;
    const b = before?.get(item);
    if (b) out.push(...b);
    out.push(k === -1 ? item : now[k]!);
    const n = after?.get(item);
    if (n) out.push(...n);
  }
  return out;
}

/**
 * Whether the init containers of ours found (one at least) sit in the order they are rendered, and, when `first`
 * (proxy-init is injected), as the list's first items, with only recorded items (taken out) before or between them:
 * placeAmongFound then keeps all of ours first, in their order.
 */
function initInPlace(list: readonly KubeObject[], found: Found, first: boolean, recorded: ReadonlySet<string>): boolean {
  const order = found.items.filter((x) => x !== undefined);
  if (!order.length) return false;
  let k = 0;
  for (const item of list) {
    if (k === order.length) return true;
    if (item === order[k]) k++;
    else if (found.items.includes(item)) return false;
    else if (first && !recorded.has(item.name)) return false;
  }
  return k === order.length;
}

function hasKeys(o: object): boolean {
  for (const k in o) if (Object.hasOwn(o, k)) return true;
  return false;
}

function helperConfigOf(cfg: Config): string {
  let text = helperConfigs.get(cfg);
  if (text === undefined) helperConfigs.set(cfg, (text = renderHelperConfig(cfg)));
  return text;
}

/** The pod's lists without what an earlier injection recorded (stripRecorded), and the names taken out. */
interface Stripped {
  containers: KubeObject[];
  initContainers: KubeObject[];
  volumes: KubeObject[];
  /** the container and init container names taken out */
  strip: Set<string>;
  /** the volume names taken out */
  ownV: Set<string>;
}

/**
 * Takes out of the pod's lists (never written: new lists) what an earlier injection recorded, only under reserved
 * names. A piece injected this time (`injectedNow`) replaces what the record lists under its names. A piece no longer
 * injected (opted out, another mode, or no injection at all) is taken out too, since the record says it is ours,
 * unless it is not: a container whose image is none we inject for that name, or a volume a container the pod keeps
 * still mounts (checked when spiffe-helper, which mounts them, is not injected: `spire` false). So a stale or forged
 * record never leaves the pod with a mount of a missing volume, and never removes a container or volume the user
 * brought under a name we give back.
 */
function stripRecorded(
  prev: InjectionStatus,
  cfg: Config,
  lists: { containers: KubeObject[]; initContainers: KubeObject[]; volumes: KubeObject[] },
  injectedNow: (name: string) => boolean,
  spire: boolean,
): Stripped {
  const recordedC = new Set([...prev.containers, ...prev.initContainers].filter((n) => RESERVED_CONTAINERS.includes(n)));
  // A recorded proxy that binds our proxy ports is ours too, whatever its image (a mirror, a rewritten image):
  // kept, it could only clash with the proxy injected now.
  const ourPorts = new Set(Object.values(cfg.authBridge.ports));
  const bindsOurPorts = (c: KubeObject) =>
    (c.name === CONTAINER_AUTHBRIDGE || c.name === CONTAINER_ENVOY) && Array.isArray(c.ports) && c.ports.some((p: unknown) => isObject(p) && ourPorts.has(p.containerPort));
  const strip = new Set<string>();
  for (const c of [...lists.containers, ...lists.initContainers])
    if (recordedC.has(c.name) && (injectedNow(c.name) || injectedImage(cfg, c.name, c.image) || bindsOurPorts(c))) strip.add(c.name);
  // proxy-init redirects the pod's traffic to the proxy: it goes with a proxy of ours that goes.
  if (recordedC.has(CONTAINER_PROXY_INIT) && (strip.has(CONTAINER_AUTHBRIDGE) || strip.has(CONTAINER_ENVOY))) strip.add(CONTAINER_PROXY_INIT);
  const containers = lists.containers.filter((c) => !strip.has(c.name));
  const initContainers = lists.initContainers.filter((c) => !strip.has(c.name));
  const mounted = new Set<unknown>();
  if (!spire) for (const c of [...containers, ...initContainers]) if (Array.isArray(c.volumeMounts)) for (const m of c.volumeMounts) if (isObject(m)) mounted.add(m.name);
  const ownV = new Set(prev.volumes.filter((n) => RESERVED_VOLUMES.includes(n) && !mounted.has(n)));
  const volumes = lists.volumes.filter((v) => !ownV.has(v.name));
  return { containers, initContainers, volumes, strip, ownV };
}

/**
 * A template not to be injected (`reason`: labelled kagenti.io/inject: disabled, without an agent or tool type, a
 * tool while featureGates.injectTools is off) that carries an earlier injection's record (re-running `inject` on its
 * output after the label changed; a pod of a template `inject` rendered): the pieces the record lists are taken out
 * (stripRecorded, as with every sidecar opted out), with the record, the helper's config and a default-container
 * annotation the injection set, so the result is the template as the injection found it. Without a record, or with
 * one that would leave the pod no container of its own, or in a shape the injection cannot read: skipped, as it came.
 * (The webhook's registration never sends a pod labelled inject: disabled or without the type; `inject` and lint read
 * any template.)
 */
function withoutInjection(input: KubeObject, cfg: Config, specPath: string, reason: SkipReason): InjectResult {
  const skip: InjectResult = { outcome: 'skip', reason };
  const md0 = isObject(input.metadata) ? input.metadata : undefined;
  const ann0: Record<string, unknown> | undefined = md0 && isObject(md0.annotations) ? md0.annotations : undefined;
  if (ann0?.[ANNOTATION_STATUS] === undefined) return skip;
  const prev = parseStatus(ann0[ANNOTATION_STATUS]);
  if (!prev || checkShape(input, specPath)) return skip;
  const spec0 = input.spec as KubeObject;
  const lists = {
    containers: spec0.containers as KubeObject[],
    initContainers: (Array.isArray(spec0.initContainers) ? spec0.initContainers : []) as KubeObject[],
    volumes: (Array.isArray(spec0.volumes) ? spec0.volumes : []) as KubeObject[],
  };
  const kept = stripRecorded(prev, cfg, lists, () => false, false);
  if (!kept.containers.length) return skip;
  const spec: KubeObject = { ...spec0 };
  for (const key of ['containers', 'initContainers', 'volumes'] as const) {
    if (kept[key].length === lists[key].length) continue; // as it came (an empty list too)
    if (kept[key].length) spec[key] = kept[key];
    else delete spec[key];
  }
  const annotations: Record<string, unknown> = { ...ann0 };
  delete annotations[ANNOTATION_STATUS];
  if (ANNOTATION_HELPER_CONFIG in annotations && !hasName(kept.volumes, VOLUME_HELPER_CONFIG)) delete annotations[ANNOTATION_HELPER_CONFIG];
  if (ownsDefaultContainer(prev, ann0)) delete annotations[ANNOTATION_DEFAULT_CONTAINER];
  const metadata: KubeObject = { ...md0 };
  if (hasKeys(annotations)) metadata.annotations = annotations;
  else delete metadata.annotations;
  const status: InjectionStatus = { version: VERSION, mode: prev.mode, containers: [], initContainers: [], volumes: [] };
  const pieces = [...lists.containers, ...lists.initContainers].filter((c) => kept.strip.has(c.name)).map((c) => String(c.name));
  for (const v of lists.volumes) if (kept.ownV.has(v.name)) pieces.push(String(v.name));
  const result: InjectResult = { outcome: 'inject', template: { ...input, metadata, spec }, mode: prev.mode, status, injected: [], warnings: [] };
  // a tool also labelled inject: disabled is not sent to /mutate either (eligibility names the tool first)
  const labels0: Record<string, unknown> = md0 && isObject(md0.labels) ? md0.labels : {};
  if (pieces.length) result.removed = { reason: reason === 'tools-disabled' && labels0[LABEL_INJECT] === 'disabled' ? 'inject-disabled' : reason, pieces };
  return result;
}

/** How staleInjection says why a template is not injected. */
const NOT_ASKED: Partial<Record<SkipReason, { why: string; fix: string }>> = {
  'inject-disabled': { why: `it is labelled ${LABEL_INJECT}: disabled`, fix: 'remove that label' },
  'not-agent': { why: `it has no ${LABEL_TYPE}: agent label`, fix: `label it ${LABEL_TYPE}: agent again` },
};

/**
 * The `stale-injection` warning (lint, and /validate on a workload) for a template that no longer asks for injection
 * but still holds the pieces an earlier injection wrote into it (`removed`: withoutInjection's), or undefined when
 * there is nothing to say. Not for a tool while featureGates.injectTools is off: /mutate still gets its pods and takes
 * the pieces out at admission (the registration's objectSelector sends type agent or tool, without inject: disabled),
 * unless it is labelled inject: disabled as well (withoutInjection gives that reason then).
 * `metaPath`: where the template's metadata is (`spec.template.metadata`; `metadata` for a Pod); `job`: the template
 * is a Job's, which cannot be changed once created.
 */
export function staleInjection(ref: string, metaPath: string, removed: { reason: SkipReason; pieces: readonly string[] }, job = false): string | undefined {
  const not = NOT_ASKED[removed.reason];
  if (!not || !removed.pieces.length) return undefined;
  const what = metaPath === 'metadata' ? 'pod' : 'template';
  const again = job ? ` (${JOB_IMMUTABLE})` : '';
  return (
    `[stale-injection] ${ref}: ${metaPath}.annotations["${ANNOTATION_STATUS}"] records an earlier injection whose pieces are still in the ${what} (${nameList(removed.pieces)}), ` +
    `but ${not.why}, so the webhook does not inject ${what === 'pod' ? 'it' : 'its pods'} and never updates or removes those pieces: ${what === 'pod' ? 'the pod runs' : 'every pod runs'} them as written, with the images and settings of that earlier run. ` +
    `Fix: run \`kagenti-webhook inject\` on the manifest again (it takes them and the annotation out), or ${not.fix} to have them injected and kept current${again}.`
  );
}

// ---------- helpers ----------

function invalidAnnotation(ctx: InjectContext, key: string, value: string, valid: readonly string[], specPath: string): InjectDenial {
  const where = specPath === 'spec' ? '' : ` (${metadataPath(specPath)}.annotations)`;
  return {
    rule: 'invalid-annotation',
    field: ['metadata', 'annotations', key],
    message: `[invalid-annotation] ${ctx.ref}: annotation ${key}${where} is ${JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}...` : value)}, which is not a valid value. An unknown value is never replaced silently by a default. Fix: set ${key} to one of ${valid.join(', ')}, or remove it.`,
  };
}

/** The per-sidecar opt-out labels: each takes "true" or "false" (kagenti.io/inject takes disabled or enabled). */
const SIDECAR_OPT_OUT_LABELS = [LABEL_AUTHBRIDGE_INJECT, LABEL_ENVOY_PROXY_INJECT, LABEL_SPIFFE_HELPER_INJECT] as const;

/** An opt-out label with a value it does not take: denied like an invalid annotation (same rule), never guessed. */
function invalidLabel(ctx: InjectContext, key: string, value: string, valid: readonly string[], specPath: string): InjectDenial {
  const where = specPath === 'spec' ? '' : ` (${metadataPath(specPath)}.labels)`;
  return {
    rule: 'invalid-annotation',
    field: ['metadata', 'labels', key],
    message: `[invalid-annotation] ${ctx.ref}: label ${key}${where} is ${JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}...` : value)}, which is not a value it takes, so whether the pod opts out is unclear and nothing is injected on a guess. Fix: set ${key} to one of ${valid.map((x) => JSON.stringify(x)).join(', ')}, or remove it.`,
  };
}

function denial(rule: InjectionRule, message: string, field?: readonly (string | number)[]): InjectDenial {
  return field ? { rule, message: `[${rule}] ${message}`, field } : { rule, message: `[${rule}] ${message}` };
}

/** The denials found so far, as the result (the first one's rule, message and field on top). */
function denied(found: { list: InjectDenial[]; unlisted: number }): InjectResult {
  return { outcome: 'deny', ...found.list[0]!, all: found.list, unlisted: found.unlisted };
}

function deny(rule: InjectionRule, message: string, field?: readonly (string | number)[]): InjectResult {
  return denied({ list: [denial(rule, message, field)], unlisted: 0 });
}

/** A field as a message names it: fieldText for the spec, `metadata.annotations` (of the pod or the template) for an annotation. */
function annotationOrField(specPath: string, field: readonly (string | number)[]): string {
  return field[0] === 'metadata' ? `${metadataPath(specPath)}.${String(field[1])}` : fieldText(specPath, field);
}

/** `spec.containers[1].ports[0]`: a field as a message names it. */
function fieldText(specPath: string, field: readonly (string | number)[]): string {
  let out = specPath;
  for (const f of field.slice(1)) out += typeof f === 'number' ? `[${f}]` : `.${f}`;
  return out;
}

/**
 * Injects into a pod template ({metadata, spec}: a Pod, or a workload's `template`).
 * `specPath` is the dotted path of the pod spec in the whole object, for messages (`spec`, `spec.template.spec`).
 * The input is never modified. On `inject` the result is a new object that shares every unchanged subtree with
 * the input and holds the injected pieces frozen (shared with other results): read it, serialize it or copy it,
 * never write into it.
 */
export function injectTemplate(input: KubeObject, cfg: Config, ctx: InjectContext, specPath = 'spec'): InjectResult {
  const md0 = isObject(input.metadata) ? input.metadata : {};
  const labels0 = isObject(md0.labels) ? md0.labels : {};
  const skip = eligibility(labels0, cfg);
  // (the global switch leaves every pod as it comes; the other reasons take an earlier injection out)
  if (skip) return skip === 'global-disabled' ? { outcome: 'skip', reason: skip } : withoutInjection(input, cfg, specPath, skip);

  const shapeError = checkShape(input, specPath);
  if (shapeError) {
    const d = denial(
      'malformed-object',
      `${ctx.ref}: ${shapeError.problem}. The pod cannot be injected or admitted in this shape. Fix: ${shapeError.fix ?? 'correct the manifest so it matches the Pod schema.'}`,
      shapeError.field,
    );
    return denied({ list: [shapeError.admitted ? d : { ...d, schema: true }], unlisted: 0 });
  }

  // A copy along the paths injection writes (metadata, annotations, spec; the lists are rebuilt below); every
  // other subtree, the pod's own containers included, is shared with the input and never written. Sharing
  // makes the diff cheap: createPatch skips identical references without looking inside.
  const t: KubeObject = { ...input };
  t.metadata = isObject(input.metadata) ? { ...input.metadata } : {};
  const md = t.metadata;
  if (isObject(md.annotations)) md.annotations = { ...md.annotations };
  t.spec = { ...(input.spec as KubeObject) };
  const labels: Record<string, string> = isObject(md.labels) ? md.labels : {};
  const annotations: Record<string, string> = isObject(md.annotations) ? md.annotations : {};
  const spec = t.spec as KubeObject;
  const warnings: string[] = [];
  // Denials are collected, so that one answer lists every problem of the template (up to MAX_DENIALS).
  const found = { list: [] as InjectDenial[], unlisted: 0 };
  const add = (d: InjectDenial) => {
    if (found.list.length < MAX_DENIALS) found.list.push(d);
    else found.unlisted++;
  };

  // Mode: pod annotation, else the namespace's label (ignored with a warning when invalid), else config.
  let mode: AuthBridgeMode = cfg.authBridge.defaultMode;
  const modeAnn = annotations[ANNOTATION_MODE];
  if (modeAnn !== undefined) {
    if (!(AUTHBRIDGE_MODES as readonly string[]).includes(modeAnn)) add(invalidAnnotation(ctx, ANNOTATION_MODE, modeAnn, AUTHBRIDGE_MODES, specPath));
    else mode = modeAnn as AuthBridgeMode;
  } else {
    const nsMode = ctx.namespaceLabels?.[NAMESPACE_LABEL_MODE];
    if (nsMode !== undefined) {
      if ((AUTHBRIDGE_MODES as readonly string[]).includes(nsMode)) mode = nsMode as AuthBridgeMode;
      else
        warnings.push(
          `[namespace-mode-label] ${ctx.ref}: namespace ${ctx.namespace} label ${NAMESPACE_LABEL_MODE}=${quoted(nsMode)} is not a mode, so it is ignored and mode ${mode} is used. Fix: set the label to one of ${AUTHBRIDGE_MODES.join(', ')}, or remove it.`,
        );
    }
  }

  let mtls: MtlsMode = cfg.authBridge.mtlsMode;
  const mtlsAnn = annotations[ANNOTATION_MTLS];
  if (mtlsAnn !== undefined) {
    if (!(MTLS_MODES as readonly string[]).includes(mtlsAnn)) add(invalidAnnotation(ctx, ANNOTATION_MTLS, mtlsAnn, MTLS_MODES, specPath));
    else mtls = mtlsAnn as MtlsMode;
  }

  let native = cfg.featureGates.nativeSidecars;
  const nativeAnn = annotations[ANNOTATION_NATIVE_SIDECARS];
  if (nativeAnn !== undefined) {
    if (nativeAnn !== 'true' && nativeAnn !== 'false') add(invalidAnnotation(ctx, ANNOTATION_NATIVE_SIDECARS, nativeAnn, ['true', 'false'], specPath));
    else native = nativeAnn === 'true';
  }
  // The opt-out labels take only their documented values: a pod labelled kagenti.io/inject: "false" or
  // spiffe-helper-inject: "no" meant to opt out, and would otherwise get every sidecar without a word.
  // (most pods set none of them: four lookups)
  const injectLabel = labels[LABEL_INJECT];
  if (injectLabel !== undefined && injectLabel !== 'enabled') add(invalidLabel(ctx, LABEL_INJECT, injectLabel, ['disabled', 'enabled'], specPath));
  for (const key of SIDECAR_OPT_OUT_LABELS) {
    const v = labels[key];
    if (v !== undefined && v !== 'true' && v !== 'false') add(invalidLabel(ctx, key, v, ['true', 'false'], specPath));
  }
  // What the pod gets depends on the annotations and labels: with one invalid, the checks below would judge another pod.
  if (found.list.some((d) => d.rule === 'invalid-annotation')) return denied(found);

  const authBridgeOptOut = labels[LABEL_AUTHBRIDGE_INJECT] === 'false' || labels[LABEL_ENVOY_PROXY_INJECT] === 'false';
  const spire = labels[LABEL_SPIFFE_HELPER_INJECT] !== 'false';
  const authBridge = !authBridgeOptOut && mode !== 'waypoint';
  const proxyInit = authBridge && (mode === 'envoy-sidecar' || cfg.authBridge.egressEnforcement !== 'none');
  const plan: Plan = { mode, mtls, native, authBridge, proxyInit, spire, guaranteed: false };

  // hostNetwork: the proxy would bind the node's ports and proxy-init rewrite the node's iptables. spiffe-helper
  // alone (waypoint mode, or AuthBridge opted out) binds no port and touches no iptables: no denial then.
  if (spec.hostNetwork === true && authBridge)
    add(denial(
      'host-network',
      `${ctx.ref}: ${specPath}.hostNetwork is true on an agent pod. Its sidecars would share the node's network: the proxy would bind the node's ports${proxyInit ? ", and proxy-init would rewrite the node's iptables, intercepting every pod on the node" : ''}. Fix: remove hostNetwork, label ${optOutTarget(specPath, ctx.owner)} ${LABEL_AUTHBRIDGE_INJECT}: "false" to inject spiffe-helper only, or ${LABEL_INJECT}: disabled.`,
      ['spec', 'hostNetwork'],
    ));

  // Strip what a previous injection recorded (only reserved names), then inject afresh. The pod's own lists are
  // shared, never written: the new lists are built below.
  const prev = parseStatus(annotations[ANNOTATION_STATUS]);
  let containers = spec.containers as KubeObject[];
  let initContainers: KubeObject[] = Array.isArray(spec.initContainers) ? spec.initContainers : [];
  let volumes: KubeObject[] = Array.isArray(spec.volumes) ? spec.volumes : [];
  // The names taken out, and the lists as they came (a piece still equal to ours stays in place: see Placement).
  let strip: Set<string> | undefined;
  let ownV: Set<string> | undefined;
  const inContainers = containers;
  const inInitContainers = initContainers;
  const inVolumes = volumes;
  if (prev) {
    // A name is injected this time when its piece is (the AuthBridge container's name depends on the mode).
    const envoy = mode === 'envoy-sidecar';
    const injectedNow = (n: string) =>
      n === CONTAINER_PROXY_INIT ? proxyInit : n === CONTAINER_AUTHBRIDGE ? authBridge && !envoy : n === CONTAINER_ENVOY ? authBridge && envoy : spire;
    ({ containers, initContainers, volumes, strip, ownV } = stripRecorded(prev, cfg, { containers, initContainers, volumes }, injectedNow, spire));
    // A record that names every container of the pod leaves it none of its own: the API server rejects a pod
    // without containers (spec.containers: Required value), and injecting the result again would be denied.
    if (!containers.length) {
      const names = (spec.containers as KubeObject[]).map((c) => String(c.name));
      add(denial(
        'malformed-object',
        `${ctx.ref}: every container in ${specPath}.containers (${nameList(names)}) is one an earlier injection added, by the ${ANNOTATION_STATUS} record, so the pod would keep no container of its own and the API server rejects a pod without containers. Fix: create it from its manifest without the injected sidecars and without the ${ANNOTATION_STATUS} annotation; if ${names.length > 1 ? 'those containers are' : 'that container is'} your own, remove the annotation.`,
        ['spec', 'containers'],
      ));
    }
  }
  if (ANNOTATION_STATUS in annotations) delete annotations[ANNOTATION_STATUS];
  // The helper's config stays while a volume the pod keeps (spiffe-helper opted out) still reads it.
  if (ANNOTATION_HELPER_CONFIG in annotations && (spire || !hasName(volumes, VOLUME_HELPER_CONFIG))) delete annotations[ANNOTATION_HELPER_CONFIG];

  // What we are about to add (rendered once per config, plan, namespace and service account; frozen).
  // The API server copies the deprecated serviceAccount into serviceAccountName before any webhook sees the pod;
  // offline (`inject`), a manifest may still have only the old field.
  const sa: string = spec.serviceAccountName || (typeof spec.serviceAccount === 'string' ? spec.serviceAccount : '');
  // A pod whose own containers make it Guaranteed stays so: the injected ones then request what they are limited to
  // (qos.ts). Judged without an earlier injection's pieces (stripped above), so a re-invocation renders the same.
  plan.guaranteed = guaranteedPod(spec.resources, containers, initContainers);
  const r = ctx.checkOnly ? rendered(cfg, plan, '', '') : rendered(cfg, plan, ctx.namespace, sa);
  const { addInit, addSidecars, addVolumes } = r;

  if (!addInit.length && !addSidecars.length && !addVolumes.length) {
    // Nothing to inject (every piece opted out): leave the pod as it came, minus a stale record of ours.
    if (!prev) return found.list.length ? denied(found) : { outcome: 'skip', reason: 'all-opted-out' };
  }

  // reserved-name: with spiffe-helper opted out, none of our volumes is injected, so a mount of one of their names
  // that the pod does not define itself points at nothing (the API server: `volumeMounts[0].name: Not found`).
  // Names and indexes are looked up in sets and maps built once: a pod's lists are the client's to make long.
  if (!spire) {
    const volumeNames = new Set(volumes.map((v) => v.name));
    for (const [list, arr] of [
      ['containers', containers],
      ['initContainers', initContainers],
    ] as const) {
      const indexOfOwn = indexer(spec[list]);
      for (const c of arr) {
        const mounts = c.volumeMounts as KubeObject[] | undefined | null;
        if (!mounts) continue;
        for (let j = 0; j < mounts.length; j++) {
          const m = mounts[j]!.name;
          if (!RESERVED_VOLUMES.includes(m) || volumeNames.has(m)) continue;
          const field = ['spec', list, indexOfOwn(c), 'volumeMounts', j, 'name'];
          add(denial(
            'reserved-name',
            `${ctx.ref}: container ${shown(String(c.name))} mounts volume ${m} (${fieldText(specPath, field)}), which only the spiffe-helper injection provides, but the pod opts out of it (label ${LABEL_SPIFFE_HELPER_INJECT}: "false") and defines no volume of that name. The API server would reject the pod (volumeMounts[${j}].name: Not found). Fix: remove the label ${LABEL_SPIFFE_HELPER_INJECT} so spiffe-helper and its volumes are injected, or remove the mount.`,
            field,
          ));
        }
      }
    }
  }

  // unsupported-os: the injected containers are Linux containers (Linux securityContext fields, proxy-init's
  // iptables), which a Windows pod cannot hold and a Windows node cannot run.
  if (addInit.length || addSidecars.length) {
    const osName = isObject(spec.os) ? spec.os.name : undefined;
    const selector = isObject(spec.nodeSelector) ? spec.nodeSelector : {};
    const osKey = selector[NODE_LABEL_OS] === 'windows' || selector[NODE_LABEL_OS_BETA] !== 'windows' ? NODE_LABEL_OS : NODE_LABEL_OS_BETA;
    const nodeOs = selector[osKey];
    if (osName === 'windows' || nodeOs === 'windows' || affinityExcludesLinux(spec)) {
      const names = [...addInit, ...addSidecars].map((c) => c.name).join(', ');
      const why =
        osName === 'windows'
          ? `${specPath}.os.name is windows, but the injected containers (${names}) are Linux-only. The API server rejects their Linux securityContext fields (runAsUser, capabilities, seccompProfile) in a Windows pod`
          : nodeOs === 'windows'
            ? `${specPath}.nodeSelector["${osKey}"] is windows, so the pod runs on Windows nodes, but the injected containers (${names}) are Linux-only. A Windows node cannot run them`
            : `${specPath}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution rules out ${NODE_LABEL_OS}=linux in every nodeSelectorTerm, so the pod runs only on non-Linux (Windows) nodes, but the injected containers (${names}) are Linux-only. A Windows node cannot run them`;
      add(denial(
        'unsupported-os',
        `${ctx.ref}: ${why}${addInit.length ? ", and proxy-init's traffic redirect (iptables) exists only on Linux" : ''}. Fix: run the agent on Linux nodes, or label ${optOutTarget(specPath, ctx.owner)} ${LABEL_INJECT}: disabled.`,
        osName === 'windows'
          ? ['spec', 'os', 'name']
          : nodeOs === 'windows'
            ? ['spec', 'nodeSelector', osKey]
            : ['spec', 'affinity', 'nodeAffinity', 'requiredDuringSchedulingIgnoredDuringExecution'],
      ));
    }
  }

  // reserved-name: our names already taken by something our record does not account for (the last list that
  // has the name is the one named).
  const ephemeral: KubeObject[] = Array.isArray(spec.ephemeralContainers) ? spec.ephemeralContainers : [];
  for (const pieces of [addInit, addSidecars])
    for (const c of pieces) {
      const list = hasName(ephemeral, c.name)
        ? 'ephemeralContainers'
        : hasName(initContainers, c.name)
          ? 'initContainers'
          : hasName(containers, c.name)
            ? 'containers'
            : undefined;
      if (list) {
        const own = (list === 'ephemeralContainers' ? ephemeral : list === 'initContainers' ? initContainers : containers).find((x) => x.name === c.name);
        const field = ['spec', list, indexIn(spec[list], own), 'name'];
        add(denial(
          'reserved-name',
          `${ctx.ref}: ${fieldText(specPath, field)} is ${c.name}, a container name reserved for the injected sidecar. Two containers cannot share a name and ours cannot be skipped. Fix: rename your container, or label ${optOutTarget(specPath, ctx.owner)} ${LABEL_INJECT}: disabled.`,
          field,
        ));
      }
    }
  let reusedVolumes: Set<string> | undefined;
  for (const v of addVolumes) {
    const existing = volumes.find((x) => x.name === v.name);
    if (!existing) continue;
    if (volumeEqual(existing, v)) {
      (reusedVolumes ??= new Set()).add(v.name);
      continue;
    }
    const field = ['spec', 'volumes', indexIn(spec.volumes, existing), 'name'];
    add(denial(
      'reserved-name',
      `${ctx.ref}: ${fieldText(specPath, field)} is ${v.name}, the name of an injected volume, but the volume differs from the injected one. The sidecars mount it by that name and would read the wrong data. Fix: rename your volume, or label ${optOutTarget(specPath, ctx.owner)} ${LABEL_INJECT}: disabled.`,
      field,
    ));
  }

  // port-conflict: a pod container declares a port an injected container needs (one network namespace). The proxy
  // binds TCP only: a UDP or SCTP port of the same number does not clash (a missing protocol is TCP). Only containers
  // that run while the proxy does: the regular ones and the pod's native sidecars (restartPolicy: Always), and its
  // ordinary init containers only when our sidecars are native (they start before them and keep running); otherwise
  // each ordinary init container has run to completion before the proxy, a regular container, starts.
  if (authBridge) {
    for (const [list, arr] of [
      ['containers', containers],
      ['initContainers', initContainers],
    ] as const) {
      let indexOfOwn: ((item: unknown) => number) | undefined; // made at the first clash: most pods have none
      for (const c of arr) {
        if (list === 'initContainers' && !native && c.restartPolicy !== 'Always') continue;
        const ports = c.ports as KubeObject[] | undefined | null;
        if (!ports) continue;
        for (let k = 0; k < ports.length; k++) {
          const p = ports[k]!;
          if (p.protocol !== undefined && p.protocol !== null && p.protocol !== 'TCP') continue;
          const hit = r.ports.find((n) => n.port === p.containerPort);
          if (!hit) continue;
          const field = ['spec', list, (indexOfOwn ??= indexer(spec[list]))(c), 'ports', k, 'containerPort'];
          add(denial(
            'port-conflict',
            `${ctx.ref}: container ${shown(String(c.name))} declares port ${hit.port} (${fieldText(specPath, field)}), which the injected container ${mode === 'envoy-sidecar' ? CONTAINER_ENVOY : CONTAINER_AUTHBRIDGE} (mode ${mode}) needs for ${PORT_ROLES[hit.key]}. Both would bind it in the pod's one network namespace. Fix: move the proxy with config authBridge.ports.${hit.key}, or move your container's port.`,
            field,
          ));
        }
      }
    }
  }

  // pod-resources: a pod with pod-level resources (spec.resources) that the injected containers would take past them,
  // which the API server rejects after the webhooks with an error about containers the user never wrote
  // (pod-resources.ts has the API server's rules). Most pods have no spec.resources: one property lookup.
  const podResources = spec.resources;
  if (podResources !== undefined && podResources !== null && (addInit.length || addSidecars.length)) {
    const action = cfg.policies['pod-resources'];
    if (action !== 'off') {
      const findings = podResourceFindings(
        podResources,
        { containers, initContainers },
        native
          ? { containers, initContainers: [...addInit, ...addSidecars, ...initContainers] }
          : { containers: [...addSidecars, ...containers], initContainers: [...addInit, ...initContainers] },
        native ? [] : addSidecars,
      );
      for (const f of findings) {
        const d = podResourceDenial(ctx, specPath, f, [...addInit, ...addSidecars]);
        // Exactly what the API server rejects (with the feature gate on): denied unless the policy says warn. A
        // pod-level request left unset is compared as 0 by some versions only: a warning, whatever the policy.
        if (action === 'deny' && f.kind !== 'unset') add(d);
        else warnings.push(d.message);
      }
    }
  }

  // istio-sidecar: Istio's sidecar injector (its webhooks, istio-sidecar-injector and istio-revision-tag-default,
  // sort before this one, so it has run) put istio-proxy in the pod. Both proxies leave uid 1337 out of their
  // redirect, and both run as it, so the agent's traffic leaves through AuthBridge without Istio's mTLS. The fixes
  // are about the pod, never Istio's containers: those are left out of the warnings below (this one covers them).
  const istio = podIstio(spec, annotations);
  const istioAction = cfg.policies['istio-sidecar'];
  if (authBridge && istioAction !== 'off') {
    const evidence = istio ?? (specPath !== 'spec' ? istioTemplate(ctx, labels, annotations) : undefined);
    if (evidence) {
      const where = `${evidence.subject}${evidence.field ? ` (${annotationOrField(specPath, evidence.field)})` : ''} ${evidence.says}`;
      const d = denial(
        'istio-sidecar',
        `${ctx.ref}: ${where}, and the injected AuthBridge proxy runs as uid ${PROXY_UID}, which Istio's iptables rules leave out of its redirect, as proxy-init leaves Istio's proxy (uid ${PROXY_UID} too) out of AuthBridge's. The agent's outbound traffic leaves AuthBridge without Istio's mTLS${proxyInit ? ", and inbound mesh traffic reaches AuthBridge before Istio's proxy" : ''}, so the mesh's mTLS and policies do not cover the agent. Fix: run the namespace in Istio's ambient mode (no sidecar), annotate ${annotateTarget(specPath, ctx.owner)} ${ANNOTATION_MODE}: waypoint, or label ${optOutTarget(specPath, ctx.owner)} ${LABEL_ISTIO_INJECT}: "false".`,
        evidence.field ?? ['metadata', 'labels'],
      );
      if (istioAction === 'deny') add(d);
      else warnings.push(d.message);
    }
  }

  // mesh-sidecar: another mesh's injector (Linkerd's, Kuma's; they run after this webhook, which sees their proxy on a
  // re-invocation, or in what lint and inject are given) put its proxy beside AuthBridge. Both set iptables rules in
  // the pod's one network namespace, each leaving only its own proxy's uid out, so one proxy's traffic is redirected
  // to the other and the order of the rules decides which proxy a connection reaches.
  const meshes = otherMeshes(spec, labels, annotations, ctx.namespaceLabels);
  if (proxyInit && cfg.policies['mesh-sidecar'] !== 'off')
    for (const m of meshes)
      warnings.push(
        `[mesh-sidecar] ${ctx.ref}: ${m.subject}${m.field ? ` (${m.field[0] === 'metadata' ? `${metadataPath(specPath)}.${String(m.field[1])}` : fieldText(specPath, m.field)})` : ''} ${m.says}, beside the injected AuthBridge proxy, and both ${m.mesh} and AuthBridge's proxy-init redirect the pod's traffic with iptables. The two redirects conflict: each leaves only its own proxy's uid out, so traffic may bypass one of the proxies (AuthBridge, which then does not see it, or ${m.mesh}'s mTLS). Fix: use one mesh for the agent, or opt it out of ${m.mesh}'s injection: ${m.optOut.replace('{annotate}', annotateTarget(specPath, ctx.owner)).replace('{label}', optOutTarget(specPath, ctx.owner))}.`,
      );

  if (found.list.length) return denied(found);

  // Placement: proxy-init first; native sidecars right after it, before the pod's own init containers;
  // otherwise the sidecars go before the pod's own containers; volumes at the end.
  // On a re-invocation (or any pod injected before), a recorded piece still in the pod and equal to what is injected
  // now stays where it is, the very object that came (the diff skips it by reference); one that changed is replaced
  // in its place; only a missing one is placed, beside ours (placeAmongFound). So what a later webhook inserted
  // since, before, between or after ours (Linkerd's linkerd-proxy first, Vault's vault-agent and its volume last), is
  // not moved, and the answer is no patch. A pod with none of ours in a list gets them placed as above (Istio's
  // injector sorts before this webhook: its istio-init and istio-proxy are there at the first injection).
  const firstOwnContainer = containers[0]?.name as string | undefined;
  // the pod's own containers, for the warnings below: Istio's are not the user's to change (istio-sidecar names them),
  // nor another mesh's proxy and init container once that proxy is in the pod (OTHER_MESHES; mesh-sidecar names the pod)
  const meshContainers: ReadonlySet<unknown> = new Set(meshes.flatMap((m) => [m.proxy, m.init]));
  const theirs = (c: KubeObject) => meshContainers.has(c.name) || (istio !== undefined && ISTIO_CONTAINERS.has(c.name));
  const ownContainers = istio || meshes.length ? containers.filter((c) => !theirs(c)) : containers;
  const ownInitContainers = initContainers.filter((c) => !theirs(c));
  const initGroup = native ? [...addInit, ...addSidecars] : addInit;
  // The init containers start one after the other, so their order is a guarantee, not a placement: proxy-init is the
  // first init container (none of the pod's runs before the redirect), and with native sidecars the proxy follows it
  // before any other (one in between would run after the redirect with no proxy to take its traffic yet). So when
  // another webhook's init container sits before or among ours, or ours are out of order, ours are not left in
  // place but placed again at the front, as rendered: that answer is a patch (and the next re-invocation is a
  // no-op). Without proxy-init nothing depends on what runs before or between our native sidecars: in the order
  // they are rendered, they stay.
  const foundInit = strip?.size && initGroup.length ? findPieces(inInitContainers, initGroup, strip, false) : undefined;
  if (foundInit && initInPlace(inInitContainers, foundInit, addInit.length > 0, strip!)) initContainers = placeAmongFound(inInitContainers, strip!, initGroup, foundInit);
  else if (initGroup.length) initContainers = [...initGroup, ...initContainers];
  if (!native && addSidecars.length) {
    const found = strip?.size ? findPieces(inContainers, addSidecars, strip, false) : undefined;
    containers = found?.count ? placeAmongFound(inContainers, strip!, addSidecars, found) : [...addSidecars, ...containers];
  }
  const ownedVolumes = reusedVolumes ? addVolumes.filter((v) => !reusedVolumes.has(v.name)) : addVolumes;
  const foundV = ownV?.size && ownedVolumes.length ? findPieces(inVolumes, ownedVolumes, ownV, true) : undefined;
  if (foundV?.count) volumes = placeAmongFound(inVolumes, ownV!, ownedVolumes, foundV);
  else if (ownedVolumes.length) volumes = [...volumes, ...ownedVolumes];

  spec.containers = containers;
  if (initContainers.length) spec.initContainers = initContainers;
  else delete spec.initContainers;
  if (volumes.length) spec.volumes = volumes;
  else delete spec.volumes;

  // kubectl's default container (kubectl logs and exec without -c): while our sidecars come first in the containers,
  // the pod's first own container, set when the pod has none and recorded as ours (defaultContainer), so that a
  // later injection keeps it on a container the pod still has (not on one another webhook put first since), points
  // it at the first own one again when that is gone (renamed), and removes it once it is not needed (native
  // sidecars, nothing injected). One the user set (or that a record older than the field does not claim) is theirs.
  let defaultContainer: string | undefined;
  const ownsDefault = ownsDefaultContainer(prev, annotations);
  if (!native && addSidecars.length && firstOwnContainer && (ownsDefault || annotations[ANNOTATION_DEFAULT_CONTAINER] === undefined))
    defaultContainer = ownsDefault && hasName(ownContainers, prev!.defaultContainer!) ? prev!.defaultContainer : (ownContainers[0]?.name ?? firstOwnContainer);
  else if (ownsDefault) delete annotations[ANNOTATION_DEFAULT_CONTAINER];
  let status: InjectionStatus = reusedVolumes ? statusOf(plan, addInit, addSidecars, ownedVolumes) : r.status;
  let statusJson = reusedVolumes ? JSON.stringify(status) : r.statusJson;
  if (defaultContainer !== undefined) {
    status = { ...status, defaultContainer };
    statusJson = `${statusJson.slice(0, -1)},"defaultContainer":${JSON.stringify(defaultContainer)}}`;
  }
  const injected = reusedVolumes ? injectedOf(status) : r.injected;
  if (injected.length) annotations[ANNOTATION_STATUS] = statusJson;
  if (spire && !cfg.spiffeHelper.configMap) annotations[ANNOTATION_HELPER_CONFIG] = helperConfigOf(cfg);
  if (defaultContainer !== undefined) annotations[ANNOTATION_DEFAULT_CONTAINER] = defaultContainer;
  if (hasKeys(annotations)) md.annotations = annotations;
  else delete md.annotations;
  // The limit holds for the pod as injected: what the injection adds could take a pod just under it over.
  // (UTF-16 units are at most the UTF-8 bytes Kubernetes counts and at least a third of them: the bytes are counted
  // only when the units leave the answer open)
  const units = sizeOf(annotations);
  if (units > MAX_ANNOTATION_BYTES || (units * 3 > MAX_ANNOTATION_BYTES && utf8Size(annotations) > MAX_ANNOTATION_BYTES))
    return deny(
      'malformed-object',
      `${ctx.ref}: ${metadataPath(specPath)}.annotations would hold ${utf8Size(annotations)} bytes with the injection's own (${ANNOTATION_STATUS} and others), more than the ${MAX_ANNOTATION_BYTES} Kubernetes allows (the API server would reject the pod after the webhooks). Fix: ${annotationsFix(metadataPath(specPath))}`,
      ['metadata', 'annotations'],
    );

  if (mode === 'waypoint' && !authBridgeOptOut)
    warnings.push(
      `[waypoint-mode] ${ctx.ref}: mode waypoint, so no AuthBridge sidecar is injected. The mesh waypoint must handle its traffic, or it passes unchecked. Fix: nothing if a waypoint serves the namespace; otherwise choose another mode (annotation ${ANNOTATION_MODE}), or set policies.waypoint-mode: off to silence this.`,
    );
  if (authBridgeOptOut && !spire)
    warnings.push(
      `[all-opted-out] ${ctx.ref}: every kagenti sidecar is opted out (labels ${LABEL_AUTHBRIDGE_INJECT} or ${LABEL_ENVOY_PROXY_INJECT}, and ${LABEL_SPIFFE_HELPER_INJECT}), so nothing is injected and the agent has no SPIFFE identity. Fix: remove an opt-out label; if the agent needs no sidecar, set policies.all-opted-out: off to silence this.`,
    );
  // A pod meant to finish (a Job's, or restartPolicy Never/OnFailure) never does while ordinary sidecars run.
  const rp = spec.restartPolicy;
  if (!native && addSidecars.length && (rp === 'Never' || rp === 'OnFailure'))
    warnings.push(
      `[sidecars-block-completion] ${ctx.ref}: ${specPath}.restartPolicy is ${rp}, so it is meant to finish, but the injected sidecars keep running and it never completes (nor does its Job). Fix: annotate ${annotateTarget(specPath, ctx.owner)} ${ANNOTATION_NATIVE_SIDECARS}: "true" (Kubernetes 1.29+ on the API server and every node's kubelet), or set featureGates.nativeSidecars: true in the webhook config.`,
    );

  // Pod Security admission checks the pod after the mutating webhooks. proxy-init (root, NET_ADMIN, NET_RAW) passes
  // only `privileged`, so in a namespace that enforces more the pod is rejected, unless the cluster exempts it
  // (exemptions are in the API server's configuration, which a webhook cannot see: a warning, not a denial).
  const psa = addInit.length ? ctx.namespaceLabels?.[NAMESPACE_LABEL_PSA_ENFORCE] : undefined;
  if (psa === 'baseline' || psa === 'restricted')
    warnings.push(
      `[pod-security] ${ctx.ref}: namespace ${ctx.namespace} enforces Pod Security "${psa}" (label ${NAMESPACE_LABEL_PSA_ENFORCE}), but the injected proxy-init runs as root with NET_ADMIN and NET_RAW, which only "privileged" allows, so Pod Security admission rejects the pod unless the cluster exempts it. Fix: label the namespace ${NAMESPACE_LABEL_PSA_ENFORCE}=privileged, annotate ${annotateTarget(specPath, ctx.owner)} ${ANNOTATION_MODE}: waypoint if a mesh waypoint serves it, or set authBridge.egressEnforcement: none in the webhook config (no proxy-init outside envoy-sidecar mode, but the proxy then sees only the requests the agent sends it itself).`,
    );

  // Without native sidecars, the pod's own init containers run after proxy-init has redirected outbound traffic to
  // the proxy and before the proxy (an ordinary container) starts: their connections go nowhere. The pod's own
  // native sidecars (restartPolicy: Always) start then too, and the proxy waits for them: one whose startup needs
  // the network keeps the pod in Init. One running as the proxy's uid is left out of the redirect (proxy-uid).
  if (!native && addInit.length) {
    const podUid = isObject(spec.securityContext) ? spec.securityContext.runAsUser : undefined;
    let names: string[] | undefined;
    let sidecars: string[] | undefined;
    for (const c of ownInitContainers) {
      const own = isObject(c.securityContext) ? c.securityContext.runAsUser : undefined;
      if ((own ?? podUid) === PROXY_UID) continue;
      (names ??= []).push(c.name);
      if (c.restartPolicy === 'Always') (sidecars ??= []).push(c.name);
    }
    if (names) {
      const many = names.length > 1;
      const own = sidecars
        ? ` ${nameList(sidecars)} ${sidecars.length > 1 ? 'are native sidecars' : 'is a native sidecar'} of the pod: the proxy starts only once ${sidecars.length > 1 ? 'they have' : 'it has'} started, so a startup probe that needs the network never passes.`
        : '';
      warnings.push(
        `[init-before-proxy] ${ctx.ref}: init container${many ? 's' : ''} ${nameList(names)} run${many ? '' : 's'} after proxy-init redirects outbound traffic to the proxy but before the proxy starts (no native sidecars). Any outbound connection ${many ? 'they make' : 'it makes'} fails, and a wait or download loop keeps the pod in Init.${own} Fix: annotate ${annotateTarget(specPath, ctx.owner)} ${ANNOTATION_NATIVE_SIDECARS}: "true" (Kubernetes 1.29+ on the API server and every node's kubelet) so the proxy starts first, or make ${many ? 'those init containers' : 'that init container'} need no network.`,
      );
    }
  }

  // proxy-init leaves the proxy's uid out of the redirect (else the proxy's own traffic would loop): a container of
  // the pod running as that uid sends its traffic past AuthBridge.
  if (addInit.length) {
    const podUid = isObject(spec.securityContext) ? spec.securityContext.runAsUser : undefined;
    let names: string[] | undefined;
    let fromPod = false;
    const fields: string[] = [];
    for (const [listName, list] of [
      ['containers', ownContainers],
      ['initContainers', ownInitContainers],
    ] as const) {
      let indexOfOwn: ((item: unknown) => number) | undefined; // a map, made at the first hit: the list is the client's to make long
      for (let i = 0; i < list.length; i++) {
        const c = list[i]!;
        const own = isObject(c.securityContext) ? c.securityContext.runAsUser : undefined;
        if ((own ?? podUid) !== PROXY_UID) continue;
        (names ??= []).push(c.name);
        if (own === undefined || own === null) fromPod = true;
        else fields.push(`${specPath}.${listName}[${(indexOfOwn ??= indexer((input.spec as KubeObject)[listName]))(c)}].securityContext.runAsUser`);
      }
    }
    if (names) {
      const many = names.length > 1;
      const where = [...(fields.length ? [nameList(fields)] : []), ...(fromPod ? [`${specPath}.securityContext.runAsUser`] : [])].join(' and ');
      warnings.push(
        `[proxy-uid] ${ctx.ref}: container${many ? 's' : ''} ${nameList(names)} run${many ? '' : 's'} as uid ${PROXY_UID} (${where}), the proxy's own uid, which proxy-init leaves out of the redirect. ${many ? 'Their' : 'Its'} outbound traffic skips the proxy, so AuthBridge does not see it. Fix: run ${many ? 'them' : 'it'} as another uid.`,
      );
    }
  }

  // proxy-init's redirect lives in the pod's network namespace, which every container shares: a container that may
  // change iptables (NET_ADMIN, privileged) can take the redirect out, for itself or the whole pod, and
  // its traffic then skips the proxy. (proxy-init itself is ours, and exits before the pod's containers start.)
  if (addInit.length) {
    const names: string[] = [];
    const fields: string[] = [];
    let count = 0;
    for (const [listName, list] of [
      ['containers', ownContainers],
      ['initContainers', ownInitContainers],
    ] as const) {
      let indexOfOwn: ((item: unknown) => number) | undefined; // a map, made at the first hit: the list is the client's to make long
      for (const c of list) {
        const hit = netAdminField(c);
        if (!hit) continue;
        if (count++ < 3) {
          names.push(String(c.name));
          fields.push(`${hit.what}: ${specPath}.${listName}[${(indexOfOwn ??= indexer((input.spec as KubeObject)[listName]))(c)}].${hit.field}`);
        }
      }
    }
    if (count) {
      const many = count > 1;
      warnings.push(
        `[net-admin] ${ctx.ref}: container${many ? 's' : ''} ${countedList(names.map((n) => shown(n)), count)} may change the pod's iptables rules (${countedList(fields, count)}), and the pod's network namespace is shared, so ${many ? 'they' : 'it'} can take out proxy-init's redirect and send traffic past the proxy, which AuthBridge then does not see. Fix: drop NET_ADMIN and ALL from capabilities.add and privileged: true from ${many ? 'them' : 'it'}, or move what needs them out of the agent pod.`,
      );
    }
  }

  // Under mTLS strict, the proxy's inbound listener refuses a connection without a client certificate. proxy-init
  // sends every inbound TCP connection to it but for the excluded ports, the kubelet's probes of the pod's own
  // containers too (from the node, to the pod's address): an httpGet or grpc probe on a redirected port never
  // passes. A tcpSocket probe passes (the proxy accepts the connection), an exec probe never leaves the container,
  // and an httpGet with a host probes another address. The pod's native sidecars (restartPolicy: Always) have
  // probes too; its other init containers have none.
  if (addInit.length && mtls === 'strict' && cfg.policies['probe-through-proxy'] !== 'off') {
    const excluded = inboundExcluded(cfg, mode);
    // counted, and only the first three of each written out (as nameList shows them): a pod may have 60,000 containers
    const names: string[] = [];
    const fields: string[] = [];
    let containerCount = 0;
    let probeCount = 0;
    const kinds = new Set<string>();
    const hitProbes = new Set<(typeof PROBES)[number]>();
    for (const [listName, list] of [
      ['containers', ownContainers],
      ['initContainers', ownInitContainers],
    ] as const) {
      let indexOfOwn: ((item: unknown) => number) | undefined; // a map, made at the first hit: the list is the client's to make long
      for (const c of list) {
        if (listName === 'initContainers' && c.restartPolicy !== 'Always') continue;
        let counted = false;
        for (const probe of PROBES) {
          const hit = probeThroughProxy(c, c[probe], excluded);
          if (!hit) continue;
          if (!counted) {
            counted = true;
            if (containerCount++ < 3) names.push(shown(String(c.name)));
          }
          kinds.add(hit.kind);
          hitProbes.add(probe);
          if (probeCount++ < 3) fields.push(`${specPath}.${listName}[${(indexOfOwn ??= indexer((input.spec as KubeObject)[listName]))(c)}].${probe} on port ${hit.port}`);
        }
      }
    }
    if (containerCount) {
      const many = containerCount > 1;
      const probes = probeCount > 1;
      const kind = kinds.size > 1 ? 'httpGet or grpc' : kinds.has('grpc') ? 'grpc' : 'httpGet';
      const source = mtlsAnn !== undefined ? `annotation ${ANNOTATION_MTLS}` : 'authBridge.mtlsMode in the webhook config';
      warnings.push(
        `[probe-through-proxy] ${ctx.ref}: container${many ? 's' : ''} ${countedList(names, containerCount)} ${many ? 'have' : 'has'} ${probes ? `${kind} probes on ports` : `${kind === 'grpc' ? 'a' : 'an'} ${kind} probe on a port`} that proxy-init redirects to the proxy (${countedList(fields, probeCount)}), and the mTLS mode is strict (${source}). The kubelet's probe reaches AuthBridge's inbound listener, which under mTLS strict refuses it without a client certificate: ${PROBES.filter((p) => hitProbes.has(p)).map((p) => PROBE_FAILS[p]).join('; ')}. Fix: use an exec probe for ${probes ? 'them' : 'it'}, or annotate ${annotateTarget(specPath, ctx.owner)} ${ANNOTATION_MTLS}: permissive.`,
      );
    }
  }

  return { outcome: 'inject', template: t, mode, status, injected, warnings: warnings.length ? unsilenced(warnings, cfg) : warnings };
}

const PROBES = ['livenessProbe', 'readinessProbe', 'startupProbe'] as const;

/** What a probe that always fails does to its container (probe-through-proxy's message). */
const PROBE_FAILS: Record<(typeof PROBES)[number], string> = {
  livenessProbe: 'a failing liveness probe restarts the container over and over',
  readinessProbe: 'a failing readiness probe keeps the container from ever becoming Ready, so the pod gets no Service traffic',
  startupProbe: 'a failing startup probe restarts the container over and over, before its other probes ever run',
};

/** What shows Istio's sidecar in (or for) a pod, for the istio-sidecar message, and the field, when there is one. */
interface IstioEvidence {
  /** what shows it (`container istio-proxy`), the field of that (relative to the template) and the rest of the sentence */
  subject: string;
  field?: readonly (string | number)[];
  says: string;
}

/**
 * Whether the pod carries Istio's sidecar: an istio-proxy container (a regular one, or a native sidecar in the
 * init containers, as Istio injects it with native sidecars on), or the sidecar.istio.io/status annotation its
 * injector records. The first container of that name, by the template as it came; undefined when none.
 */
function podIstio(spec: KubeObject, annotations: Record<string, string>): IstioEvidence | undefined {
  for (const list of ['containers', 'initContainers'] as const) {
    const arr: unknown = spec[list];
    if (!Array.isArray(arr)) continue;
    for (let i = 0; i < arr.length; i++)
      if (isObject(arr[i]) && arr[i].name === ISTIO_PROXY)
        return { subject: `container ${ISTIO_PROXY}`, field: ['spec', list, i, 'name'], says: "is Istio's sidecar, which Istio's injector adds before this webhook runs" };
  }
  if (annotations[ANNOTATION_ISTIO_STATUS] !== undefined)
    return { subject: `annotation ${ANNOTATION_ISTIO_STATUS}`, field: ['metadata', 'annotations', ANNOTATION_ISTIO_STATUS], says: "says Istio's injector, which runs before this webhook, added its sidecar" };
  return undefined;
}

/** Another mesh in (or coming to) the pod: what shows it, the field of that (relative to the template), and the rest of the sentence. */
type MeshEvidence = (typeof OTHER_MESHES)[number] & { subject: string; field?: readonly (string | number)[]; says: string };

/**
 * The other meshes (OTHER_MESHES) whose proxy the pod carries, in containers or initContainers (a native sidecar;
 * the first container of that name as it came), or whose injector, which runs after this webhook, will add it:
 * Linkerd for a pod (template) annotated linkerd.io/inject: enabled or ingress (a namespace's annotation is not
 * seen here), Kuma for one labelled (or, older Kuma, annotated) kuma.io/sidecar-injection: enabled, or in a
 * namespace labelled so unless the pod says disabled.
 */
function otherMeshes(spec: KubeObject, labels: Record<string, string>, annotations: Record<string, string>, namespaceLabels: Record<string, string> | undefined): MeshEvidence[] {
  const out: MeshEvidence[] = [];
  for (const m of OTHER_MESHES) {
    const found = containerNamed(spec, m.proxy);
    if (found) {
      out.push({ ...m, subject: `container ${m.proxy}`, field: found, says: `is ${m.mesh}'s sidecar` });
      continue;
    }
    if (m.proxy === 'linkerd-proxy') {
      const v = annotations[ANNOTATION_LINKERD_INJECT];
      if (v === 'enabled' || v === 'ingress')
        out.push({ ...m, subject: `annotation ${ANNOTATION_LINKERD_INJECT}: ${v}`, field: ['metadata', 'annotations', ANNOTATION_LINKERD_INJECT], says: `asks ${m.mesh}'s injector, which runs after this webhook, for its sidecar` });
    } else {
      const own = labels[LABEL_KUMA_INJECTION] ?? annotations[LABEL_KUMA_INJECTION];
      const where = labels[LABEL_KUMA_INJECTION] !== undefined ? 'labels' : 'annotations';
      if (own === 'enabled')
        out.push({ ...m, subject: `${where === 'labels' ? 'label' : 'annotation'} ${LABEL_KUMA_INJECTION}: enabled`, field: ['metadata', where, LABEL_KUMA_INJECTION], says: `asks ${m.mesh}'s injector, which runs after this webhook, for its sidecar` });
      else if (own === undefined && namespaceLabels?.[LABEL_KUMA_INJECTION] === 'enabled')
        out.push({ ...m, subject: 'the namespace', says: `is labelled ${LABEL_KUMA_INJECTION}: enabled, so ${m.mesh}'s injector, which runs after this webhook, adds its sidecar` });
    }
  }
  return out;
}

/** The field of the first container (or init container) of that name, or undefined. */
function containerNamed(spec: KubeObject, name: string): readonly (string | number)[] | undefined {
  for (const list of ['containers', 'initContainers'] as const) {
    const arr: unknown = spec[list];
    if (!Array.isArray(arr)) continue;
    for (let i = 0; i < arr.length; i++) if (isObject(arr[i]) && arr[i].name === name) return ['spec', list, i, 'name'];
  }
  return undefined;
}

/**
 * For a pod template (its pods are created later): whether Istio will inject its sidecar into the pods, as Istio's
 * injection webhooks select them, unless the template opts out with sidecar.istio.io/inject: "false" (a label, or the
 * older annotation):
 * - the namespace labelled istio-injection=enabled (any other value of that label: no injection at all);
 * - the namespace labelled istio.io/rev=<revision> (a revision or revision tag's webhook);
 * - neither namespace label, and the template labelled istio.io/rev=<revision>, or sidecar.istio.io/inject: "true"
 *   (the default revision's object webhook). Where the namespace's labels are not known (lint, inject without
 *   --namespace-labels), the template's own label counts.
 * A Pod itself is judged by what it carries (podIstio): Istio has run by then.
 */
function istioTemplate(ctx: InjectContext, labels: Record<string, string>, annotations: Record<string, string>): IstioEvidence | undefined {
  if (labels[LABEL_ISTIO_INJECT] === 'false' || (labels[LABEL_ISTIO_INJECT] === undefined && annotations[LABEL_ISTIO_INJECT] === 'false')) return undefined;
  const ns = ctx.namespaceLabels;
  const injection = ns?.[NAMESPACE_LABEL_ISTIO_INJECTION];
  if (injection === 'enabled')
    return { subject: `namespace ${ctx.namespace}`, says: `is labelled ${NAMESPACE_LABEL_ISTIO_INJECTION}=enabled, so Istio's injector adds its sidecar to the pods before this webhook runs` };
  if (injection !== undefined) return undefined;
  const nsRevision = ns?.[LABEL_ISTIO_REV];
  if (nsRevision !== undefined)
    return { subject: `namespace ${ctx.namespace}`, says: `is labelled ${LABEL_ISTIO_REV}=${nsRevision}, so Istio's injector (revision ${nsRevision}) adds its sidecar to the pods before this webhook runs` };
  const revision = labels[LABEL_ISTIO_REV];
  if (revision !== undefined)
    return { subject: `label ${LABEL_ISTIO_REV}=${revision}`, field: ['metadata', 'labels', LABEL_ISTIO_REV], says: `asks Istio's injector (revision ${revision}) to add its sidecar to the pods before this webhook runs` };
  if (labels[LABEL_ISTIO_INJECT] === 'true')
    return { subject: `label ${LABEL_ISTIO_INJECT}=true`, field: ['metadata', 'labels', LABEL_ISTIO_INJECT], says: "asks Istio's injector to add its sidecar to the pods before this webhook runs" };
  return undefined;
}

/**
 * What of a container's securityContext lets it change the pod's iptables rules (the network namespace is the
 * pod's): privileged: true, or NET_ADMIN or ALL in capabilities.add (as written, or with the CAP_ prefix the runtimes
 * accept). Changing netfilter rules needs CAP_NET_ADMIN; SYS_ADMIN (FUSE and mount sidecars add it) does not grant it. The field and what it grants, or undefined. Never throws, whatever the shapes.
 */
function netAdminField(c: KubeObject): { field: string; what: string } | undefined {
  const sc: unknown = c.securityContext;
  if (!isObject(sc)) return undefined;
  if (sc.privileged === true) return { field: 'securityContext.privileged', what: 'is privileged' };
  const caps: unknown = sc.capabilities;
  const add: unknown = isObject(caps) ? caps.add : undefined;
  if (!Array.isArray(add)) return undefined;
  for (const cap of add) {
    if (typeof cap !== 'string') continue;
    const name = cap.toUpperCase().replace(/^CAP_/, '');
    if (name === 'NET_ADMIN' || name === 'ALL') return { field: 'securityContext.capabilities.add', what: `adds ${name}` };
  }
  return undefined;
}

/**
 * net-admin and proxy-uid for the ephemeral containers an UPDATE of pods/ephemeralcontainers adds (`kubectl debug`: in
 * `pod`'s spec.ephemeralContainers, not in `old`'s) to an agent pod with proxy-init (the pod's init containers cannot
 * change once it exists). They share the pod's network namespace as its other containers do: one that may change
 * iptables can take out proxy-init's redirect (the change outlives it), one running as the proxy's uid is left out
 * of it. Warnings only, never a denial: debugging is not blocked. `ref`: `Pod <ns>/<name>`. Never throws, whatever the shapes.
 */
export function ephemeralContainerWarnings(pod: KubeObject, old: unknown, cfg: Config, ref: string): { rule: 'net-admin' | 'proxy-uid'; message: string; path: string }[] {
  const spec: unknown = pod.spec;
  const labels: unknown = isObject(pod.metadata) ? pod.metadata.labels : undefined;
  if (!isObject(spec) || !Array.isArray(spec.ephemeralContainers) || !isAgentType(isObject(labels) ? labels : undefined, cfg)) return [];
  if (!Array.isArray(spec.initContainers) || !spec.initContainers.some((c: unknown) => isObject(c) && c.name === CONTAINER_PROXY_INIT)) return [];
  const before: unknown = isObject(old) && isObject(old.spec) ? old.spec.ephemeralContainers : undefined;
  const had = new Set(Array.isArray(before) ? before.map((c: unknown) => (isObject(c) ? c.name : undefined)) : []);
  const podUid = isObject(spec.securityContext) ? spec.securityContext.runAsUser : undefined;
  const net = { names: [] as string[], fields: [] as string[], count: 0 };
  const uid = { names: [] as string[], fields: [] as string[], count: 0 };
  spec.ephemeralContainers.forEach((c: unknown, i: number) => {
    if (!isObject(c) || had.has(c.name)) return;
    const at = `spec.ephemeralContainers[${i}]`;
    const hit = netAdminField(c);
    if (hit && net.count++ < 3) {
      net.names.push(shown(String(c.name)));
      net.fields.push(`${hit.what}: ${at}.${hit.field}`);
    }
    const own: unknown = isObject(c.securityContext) ? c.securityContext.runAsUser : undefined;
    if ((own ?? podUid) === PROXY_UID && uid.count++ < 3) {
      uid.names.push(shown(String(c.name)));
      uid.fields.push(own === undefined || own === null ? 'spec.securityContext.runAsUser' : `${at}.securityContext.runAsUser`);
    }
  });
  const out: { rule: 'net-admin' | 'proxy-uid'; message: string; path: string }[] = [];
  const lead = (found: typeof net) => {
    const many = found.count > 1;
    return { many, which: `ephemeral container${many ? 's' : ''} ${countedList(found.names, found.count)} (kubectl debug) that this update adds` };
  };
  const note = 'Not denied: debugging is not blocked.';
  if (net.count) {
    const { many, which } = lead(net);
    out.push({
      rule: 'net-admin',
      path: net.fields[0]!.slice(net.fields[0]!.indexOf(': ') + 2).replace(/\[(\d+)\]/, '.$1'),
      message: `[net-admin] ${ref}: ${which} may change the pod's iptables rules (${countedList(net.fields, net.count)}), and the pod's network namespace is shared, so ${many ? 'they' : 'it'} can take out proxy-init's redirect and send traffic past the proxy, which AuthBridge then does not see; the change stays after ${many ? 'they exit' : 'it exits'}. ${note} Fix: debug without NET_ADMIN, ALL or privileged (kubectl debug --profile=baseline), or delete the pod once done, so that its controller replaces it with one whose redirect is intact.`,
    });
  }
  if (uid.count) {
    const { many, which } = lead(uid);
    out.push({
      rule: 'proxy-uid',
      path: uid.fields[0]!.replace(/\[(\d+)\]/, '.$1'),
      message: `[proxy-uid] ${ref}: ${which} run${many ? '' : 's'} as uid ${PROXY_UID} (${[...new Set(uid.fields)].join(' and ')}), the proxy's own uid, which proxy-init leaves out of the redirect. ${many ? 'Their' : 'Its'} outbound traffic skips the proxy, so AuthBridge does not see it. ${note} Fix: debug as another uid (set runAsUser in the container's securityContext, kubectl debug --custom).`,
    });
  }
  return out.filter((w) => !silenced(w.message, cfg));
}

/**
 * The port and kind of a container's probe when the kubelet's request goes through proxy-init's inbound redirect:
 * an httpGet (without a host) or grpc probe on a port not in `excluded`. A named port is the container's own
 * `ports[].name`, as the kubelet resolves it (the first of that name); a name it does not have fails the probe
 * anyway, and is left alone. Never throws, whatever the shapes (checkShape does not look at probes).
 */
function probeThroughProxy(c: KubeObject, probe: unknown, excluded: readonly number[]): { kind: 'httpGet' | 'grpc'; port: number } | undefined {
  if (!isObject(probe)) return undefined;
  let kind: 'httpGet' | 'grpc';
  let port: unknown;
  if (isObject(probe.httpGet)) {
    const host: unknown = probe.httpGet.host;
    if (typeof host === 'string' && host !== '') return undefined;
    kind = 'httpGet';
    port = probe.httpGet.port;
    if (typeof port === 'string') {
      const ports: unknown = c.ports;
      const named = Array.isArray(ports) ? ports.find((p: unknown) => isObject(p) && p.name === port) : undefined;
      port = isObject(named) ? named.containerPort : undefined;
    }
  } else if (isObject(probe.grpc)) {
    kind = 'grpc';
    port = probe.grpc.port;
  } else return undefined;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535 || excluded.includes(port)) return undefined;
  return { kind, port };
}

/** The webhook config keys that set an injected container's resources. */
function resourceKeys(injected: readonly KubeObject[]): string {
  const keys = new Set<string>();
  for (const c of injected) keys.add(c.name === CONTAINER_SPIFFE_HELPER ? 'spiffeHelper.resources' : 'authBridge.resources');
  return [...keys].join(' and ');
}

/** The injected containers that request r (a request, or a limit the request defaults to). */
function requesting(injected: readonly KubeObject[], r: string): KubeObject[] {
  return injected.filter((c) => isObject(c.resources) && ((isObject(c.resources.requests) && c.resources.requests[r] !== undefined) || (isObject(c.resources.limits) && c.resources.limits[r] !== undefined)));
}

/** One pod-resources finding as a denial (its message is the warning's too, under policies.pod-resources: warn). */
function podResourceDenial(ctx: InjectContext, specPath: string, f: PodResourceFinding, injected: readonly KubeObject[]): InjectDenial {
  const r = f.resource;
  const optOut = `label ${optOutTarget(specPath, ctx.owner)} ${LABEL_INJECT}: disabled`;
  if (f.kind === 'limits') {
    const field = ['spec', 'resources', 'limits', r];
    const at = fieldText(specPath, field);
    const who = injected.filter((c) => f.containers.includes(c.name));
    return denial(
      'pod-resources',
      `${ctx.ref}: ${at} is ${f.limit}, below the ${r} limit of the injected ${nameList(f.containers)} (${f.containers.length > 1 ? 'up to ' : ''}${f.minimum}). The API server rejects a pod with a container whose limit is above the pod-level one, after the webhooks (spec.resources.containers[i][${r}].limits: must be less than or equal to pod limits of ${f.limit}). Fix: set ${at} to at least ${f.minimum}, lower limits.${r} in the webhook config (${resourceKeys(who)}), or ${optOut}.`,
      field,
    );
  }
  const field = ['spec', 'resources', 'requests', r];
  const at = fieldText(specPath, field);
  const names = nameList(requesting(injected, r).map((c) => String(c.name)));
  if (f.kind === 'unset')
    return denial(
      'pod-resources',
      `${ctx.ref}: ${specPath}.resources sets no ${r} request (nor a limit it would default from), and the injected containers (${names}) request ${f.minimum} of ${r}. Kubernetes versions that compare a pod-level request left unset as 0 reject the pod after the webhooks (spec.resources.requests[${r}]: Invalid value: "0": must be greater than or equal to aggregate container requests of ${f.minimum}). Fix: set ${at} to at least ${f.minimum}, or ${optOut}.`,
      field,
    );
  const is =
    f.source === 'set'
      ? `is ${f.request}`
      : f.source === 'from-requests'
        ? `is not set, so before the webhooks run the API server sets it to ${f.request}, what the pod's own containers request (as ${specPath}.resources.limits is set)`
        : `is not set, so before the webhooks run the API server sets it to ${f.request}, the pod-level limit (no container of the pod requests ${r})`;
  const limit = f.limit ? ` and ${specPath}.resources.limits.${r} (${f.limit}) to at least as much (a request may not exceed its limit)` : '';
  return denial(
    'pod-resources',
    `${ctx.ref}: ${at} ${is}, below the ${f.minimum} of ${r} the pod's containers request together with the injected ones (${names}; ${f.own} without them). The API server rejects a pod whose pod-level request is below its containers' aggregate, after the webhooks (spec.resources.requests[${r}]: must be greater than or equal to aggregate container requests of ${f.minimum}). Fix: set ${at} to at least ${f.minimum}${limit}, lower requests.${r} in the webhook config (${resourceKeys(requesting(injected, r))}), or ${optOut}.`,
    field,
  );
}

/** The warnings whose name the config does not switch off (`policies.<name>: off`). */
function unsilenced(warnings: string[], cfg: Config): string[] {
  return warnings.filter((w) => !silenced(w, cfg));
}

/** The name an injection warning begins with (`[name] ...`), or undefined: a warning's, or a policy denial's given as a warning. */
export function warningName(warning: string): InjectionWarning | InjectionPolicy | undefined {
  const name = /^\[([a-z-]+)\] /.exec(warning)?.[1];
  if (name === undefined) return undefined;
  if ((INJECTION_WARNINGS as readonly string[]).includes(name)) return name as InjectionWarning;
  return (INJECTION_POLICIES as readonly string[]).includes(name) ? (name as InjectionPolicy) : undefined;
}

/** Whether a warning (`[name] ...`) is switched off in the config. */
export function silenced(warning: string, cfg: Config): boolean {
  const name = warningName(warning);
  return name !== undefined && cfg.policies[name] === 'off';
}

/** Names for a message: at most three, then how many more. */
function nameList(names: readonly string[]): string {
  return countedList(names.slice(0, 3).map((n) => shown(String(n))), names.length);
}

/** The first items of a list as nameList shows them (already shown), and how many more of `total` there are. */
function countedList(first: readonly string[], total: number): string {
  return total > first.length ? `${first.join(', ')} and ${total - first.length} more` : first.join(', ');
}

export { isObject, jsonEqual };
