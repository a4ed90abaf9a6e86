// Realistic AdmissionReviews for benchmarks, the soak test and the robustness tests. Shapes follow what the
// API server sends for a Pod CREATE: kind/resource/requestKind, userInfo, options, and a pod that has
// already been through defaulting (terminationMessagePath, dnsPolicy, tolerations, the token volume...).
import type { KubeObject } from '../webhook/admission.ts';

export interface Fixture {
  /** short name used in tables */
  name: string;
  /** what it is, for BENCHMARKS.md */
  description: string;
  /** the AdmissionReview request body (a fresh object each call) */
  review(uid?: string, options?: ReviewOptions): KubeObject;
}

let counter = 0;
function nextUid(): string {
  counter = (counter + 1) % 1e9;
  return `0b1f3c2e-7d4a-4f7e-9a51-${String(counter).padStart(12, '0')}`;
}

function tokenVolume(suffix: string): KubeObject {
  return {
    name: `kube-api-access-${suffix}`,
    projected: {
      sources: [
        { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
        { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
        { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
      ],
      defaultMode: 420,
    },
  };
}

// Container fields in the Go struct order the API server encodes them in.
const CONTAINER_ORDER = ['name', 'image', 'command', 'args', 'workingDir', 'ports', 'envFrom', 'env', 'resources', 'volumeMounts', 'livenessProbe', 'readinessProbe', 'startupProbe', 'lifecycle', 'terminationMessagePath', 'terminationMessagePolicy', 'imagePullPolicy', 'securityContext'];

function container(name: string, image: string, extra: KubeObject = {}): KubeObject {
  const all: KubeObject = {
    name,
    image,
    resources: { limits: { cpu: '1', memory: '512Mi' }, requests: { cpu: '100m', memory: '128Mi' } },
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'File',
    imagePullPolicy: 'IfNotPresent',
    ...extra,
  };
  const c: KubeObject = {};
  for (const k of CONTAINER_ORDER) if (k in all) c[k] = all[k];
  return c;
}

// PodSpec fields in Go struct order.
const SPEC_ORDER = ['volumes', 'initContainers', 'containers', 'restartPolicy', 'terminationGracePeriodSeconds', 'dnsPolicy', 'serviceAccountName', 'serviceAccount', 'securityContext', 'affinity', 'schedulerName', 'tolerations', 'priority', 'enableServiceLinks', 'preemptionPolicy'];

function defaultedSpec(extra: KubeObject): KubeObject {
  const all: KubeObject = {
    restartPolicy: 'Always',
    terminationGracePeriodSeconds: 30,
    dnsPolicy: 'ClusterFirst',
    securityContext: {},
    schedulerName: 'default-scheduler',
    tolerations: [
      { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
      { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
    ],
    priority: 0,
    enableServiceLinks: true,
    preemptionPolicy: 'PreemptLowerPriority',
    ...extra,
  };
  const spec: KubeObject = {};
  for (const k of SPEC_ORDER) if (k in all) spec[k] = all[k];
  for (const k of Object.keys(all)) if (!(k in spec)) spec[k] = all[k];
  return spec;
}

// ---------- metadata.managedFields, as the API server adds them before admission ----------
// Since Kubernetes 1.18 the create handler records field ownership before the admission chain runs, so a
// webhook receives the pod with `metadata.managedFields`: one entry for the manager that created it, whose
// fieldsV1 names every field of the request (after defaulting, before the admission plugins add the token
// volume, tolerations and priority). An approximation of the field manager's output, built from the pod:
// structs as `f:<field>`, maps and lists with `.`, list items under their keys (`k:{"name":...}`), keys
// sorted.

/** Associative list keys, by list field name (others are atomic: `{}`). */
const LIST_KEYS: Record<string, string[]> = {
  containers: ['name'],
  initContainers: ['name'],
  volumes: ['name'],
  env: ['name'],
  ports: ['containerPort', 'protocol'],
  volumeMounts: ['mountPath'],
  ownerReferences: ['uid'],
};
/** Struct fields whose members are named (`f:`), not a map (`.` plus entries). */
const MAPS = new Set(['labels', 'annotations', 'limits', 'requests', 'matchLabels', 'nodeSelector']);

/** The field manager writes fieldsV1 with sorted keys (`.` first). */
function sortedKeys(o: KubeObject): KubeObject {
  return Object.fromEntries(Object.keys(o).sort().map((k) => [k, o[k]]));
}

function fieldsOf(value: unknown, field: string): KubeObject {
  return sortedKeys(fieldsOfUnsorted(value, field));
}

function fieldsOfUnsorted(value: unknown, field: string): KubeObject {
  if (Array.isArray(value)) {
    const keys = LIST_KEYS[field];
    if (!keys) return {};
    const out: KubeObject = { '.': {} };
    for (const item of value) {
      const k: KubeObject = {};
      for (const key of keys) if (item[key] !== undefined) k[key] = item[key];
      out[`k:${JSON.stringify(k)}`] = { '.': {}, ...fieldsOf(item, '') };
    }
    return out;
  }
  if (typeof value !== 'object' || value === null || Object.keys(value).length === 0) return {};
  const out: KubeObject = MAPS.has(field) ? { '.': {} } : {};
  for (const [k, v] of Object.entries(value)) out[`f:${k}`] = fieldsOf(v, k);
  return out;
}

/** What the admission plugins add after managedFields are recorded: not in the creating manager's fields. */
function withoutAdmissionAdditions(pod: KubeObject): KubeObject {
  const spec = { ...pod.spec };
  for (const k of ['tolerations', 'priority', 'preemptionPolicy']) delete spec[k];
  const isToken = (v: KubeObject) => typeof v.name === 'string' && v.name.startsWith('kube-api-access-');
  const isTokenMount = (m: KubeObject) => m.mountPath === '/var/run/secrets/kubernetes.io/serviceaccount';
  spec.volumes = (spec.volumes ?? []).filter((v: KubeObject) => !isToken(v));
  if (!spec.volumes.length) delete spec.volumes;
  for (const list of ['containers', 'initContainers'])
    if (spec[list])
      spec[list] = spec[list].map((c: KubeObject) => {
        const mounts = (c.volumeMounts ?? []).filter((m: KubeObject) => !isTokenMount(m));
        const { volumeMounts: _, ...rest } = c;
        return mounts.length ? { ...rest, volumeMounts: mounts } : rest;
      });
  const { namespace: _ns, managedFields: _mf, ...metadata } = pod.metadata;
  return { metadata, spec };
}

/** Adds metadata.managedFields (last, where the API server's Go encoder writes it) for `manager`. */
export function withManagedFields(pod: KubeObject, manager: string): KubeObject {
  const owned = withoutAdmissionAdditions(pod);
  pod.metadata.managedFields = [
    {
      manager,
      operation: 'Update',
      apiVersion: 'v1',
      time: '2026-11-20T09:14:07Z',
      fieldsType: 'FieldsV1',
      fieldsV1: { 'f:metadata': fieldsOf(owned.metadata, 'metadata'), 'f:spec': fieldsOf(owned.spec, 'spec') },
    },
  ];
  return pod;
}

/** Who sent the request and with what options: the AdmissionRequest's `userInfo` and `options`. */
export interface Envelope {
  userInfo: KubeObject;
  options: KubeObject;
}

/** A pod a controller creates: the ReplicaSet controller's service account, CreateOptions with no field manager. */
export const CONTROLLER_ENVELOPE: Envelope = {
  userInfo: {
    username: 'system:serviceaccount:kube-system:replicaset-controller',
    uid: '5e0c2a7b-3f40-4c44-8c55-3a4b1b9f2d11',
    groups: ['system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated'],
  },
  options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1' },
};

/**
 * A pod a person creates with `kubectl apply` on EKS: the user as aws-iam-authenticator names an assumed IAM role
 * (its session ARN, with the IAM identity in `extra`), and CreateOptions with kubectl's client-side-apply field
 * manager and the strict field validation kubectl asks for by default (`--validate=strict`).
 */
export const KUBECTL_APPLY_ENVELOPE: Envelope = {
  userInfo: {
    username: 'arn:aws:sts::111122223333:assumed-role/PlatformAdmin/jane.doe',
    uid: 'aws-iam-authenticator:111122223333:AROA3EXAMPLEROLEID1234',
    groups: ['system:authenticated'],
    extra: {
      accessKeyId: ['ASIA3EXAMPLEKEYID567'],
      arn: ['arn:aws:sts::111122223333:assumed-role/PlatformAdmin/jane.doe'],
      canonicalArn: ['arn:aws:iam::111122223333:role/PlatformAdmin'],
      principalId: ['AROA3EXAMPLEROLEID1234'],
      sessionName: ['jane.doe'],
      'sigs.k8s.io/aws-iam-authenticator/principalId': ['AROA3EXAMPLEROLEID1234'],
    },
  },
  options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1', fieldManager: 'kubectl-client-side-apply', fieldValidation: 'Strict' },
};

export function wrap(pod: KubeObject, uid = nextUid(), namespace = 'team-a', envelope: Envelope = CONTROLLER_ENVELOPE): KubeObject {
  return {
    kind: 'AdmissionReview',
    apiVersion: 'admission.k8s.io/v1',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      name: pod.metadata?.name ?? '',
      namespace,
      operation: 'CREATE',
      userInfo: structuredClone(envelope.userInfo),
      object: pod,
      oldObject: null,
      dryRun: false,
      options: structuredClone(envelope.options),
    },
  };
}

/** A small agent pod as a user would `kubectl apply` it. */
export function smallAgentPod(namespace = 'team-a'): KubeObject {
  return {
    kind: 'Pod',
    apiVersion: 'v1',
    metadata: {
      name: 'weather-agent',
      namespace,
      labels: { app: 'weather-agent', 'kagenti.io/type': 'agent' },
      annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{"apiVersion":"v1","kind":"Pod"}' },
    },
    spec: defaultedSpec({
      serviceAccountName: 'weather-agent',
      serviceAccount: 'weather-agent',
      containers: [
        container('agent', 'ghcr.io/example/weather-agent:1.4.2', {
          ports: [{ name: 'http', containerPort: 8000, protocol: 'TCP' }],
          env: [
            { name: 'LLM_MODEL', value: 'gpt-4o-mini' },
            { name: 'MCP_URL', value: 'http://weather-tool.team-a.svc:8000/mcp' },
            { name: 'LOG_LEVEL', value: 'info' },
          ],
          volumeMounts: [{ name: 'kube-api-access-x7k2p', readOnly: true, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' }],
        }),
      ],
      volumes: [tokenVolume('x7k2p')],
    }),
    status: {},
  };
}

/** A pod made by a Deployment's ReplicaSet: generateName, ownerReferences, 10 containers, many volumes. */
export function deploymentPod(namespace = 'team-a'): KubeObject {
  const containers: KubeObject[] = [];
  const volumes: KubeObject[] = [tokenVolume('q9w8e')];
  for (let i = 0; i < 10; i++) {
    const name = i === 0 ? 'agent' : `worker-${i}`;
    volumes.push({ name: `data-${i}`, emptyDir: {} });
    volumes.push({ name: `config-${i}`, configMap: { name: `research-agent-config-${i}`, defaultMode: 420 } });
    containers.push(
      container(name, `ghcr.io/example/research-agent-${name}:2.0.${i}`, {
        args: ['--listen', `:${8000 + i}`, '--config', `/etc/config-${i}/config.yaml`],
        ports: [{ name: `http-${i}`, containerPort: 8000 + i, protocol: 'TCP' }],
        env: Array.from({ length: 12 }, (_, j) => ({ name: `SETTING_${i}_${j}`, value: `value-${i}-${j}` })).concat([
          { name: 'POD_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } } as any,
        ]),
        volumeMounts: [
          { name: `data-${i}`, mountPath: `/data/${i}` },
          { name: `config-${i}`, readOnly: true, mountPath: `/etc/config-${i}` },
          { name: 'kube-api-access-q9w8e', readOnly: true, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' },
        ],
        readinessProbe: { httpGet: { path: '/healthz', port: 8000 + i, scheme: 'HTTP' }, timeoutSeconds: 1, periodSeconds: 10, successThreshold: 1, failureThreshold: 3 },
        securityContext: { capabilities: { drop: ['ALL'] }, runAsNonRoot: true, allowPrivilegeEscalation: false },
      }),
    );
  }
  return {
    kind: 'Pod',
    apiVersion: 'v1',
    metadata: {
      generateName: 'research-agent-7d9c6b5f4-',
      namespace,
      labels: {
        app: 'research-agent',
        'app.kubernetes.io/name': 'research-agent',
        'app.kubernetes.io/part-of': 'kagenti',
        'kagenti.io/type': 'agent',
        'pod-template-hash': '7d9c6b5f4',
      },
      annotations: { 'kagenti.io/authbridge-mode': 'proxy-sidecar', 'prometheus.io/scrape': 'true' },
      ownerReferences: [
        {
          apiVersion: 'apps/v1',
          kind: 'ReplicaSet',
          name: 'research-agent-7d9c6b5f4',
          uid: '9a7e4c1d-2b3f-4e5a-8c6d-7e8f9a0b1c2d',
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec: defaultedSpec({
      serviceAccountName: 'research-agent',
      serviceAccount: 'research-agent',
      affinity: {
        podAntiAffinity: {
          preferredDuringSchedulingIgnoredDuringExecution: [
            { weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { app: 'research-agent' } } } },
          ],
        },
      },
      initContainers: [container('migrate', 'ghcr.io/example/research-agent-migrate:2.0.0', { command: ['/bin/migrate', '--up'] })],
      containers,
      volumes,
    }),
    status: {},
  };
}

/**
 * An agent pod whose one container has 1,500 env vars (an injector once took 15 s on such a pod). Its own
 * ServiceAccount (a name as long as the small pod's): with cluster state, a second agent on the small pod's would
 * be denied (unique-service-account).
 */
export function manyEnvPod(count = 1500, namespace = 'team-a'): KubeObject {
  const pod = smallAgentPod(namespace);
  pod.metadata.name = 'big-env-agent';
  pod.spec.serviceAccountName = 'big-env-agent';
  pod.spec.serviceAccount = 'big-env-agent';
  pod.spec.containers[0].env = Array.from({ length: count }, (_, i) =>
    i % 10 === 9
      ? { name: `SECRET_${i}`, valueFrom: { secretKeyRef: { name: 'agent-secrets', key: `key-${i}` } } }
      : { name: `FEATURE_FLAG_${String(i).padStart(4, '0')}`, value: `enabled-for-cohort-${i % 37}-${'x'.repeat(i % 16)}` },
  );
  return pod;
}

/**
 * What `kubectl apply` (client-side) leaves on the object it sends: the manifest as written, JSON with sorted
 * keys and a newline, in the last-applied-configuration annotation. The manifest of our fixture pods: name,
 * namespace, labels, and per container name, image, ports (number and name) and env.
 */
export function kubectlApplied(pod: KubeObject): KubeObject {
  const sorted = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(sorted) : typeof v === 'object' && v !== null ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted((v as KubeObject)[k])])) : v;
  const manifest = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { annotations: {}, labels: pod.metadata.labels, name: pod.metadata.name, namespace: pod.metadata.namespace },
    spec: {
      containers: pod.spec.containers.map((c: KubeObject) => ({
        env: c.env,
        image: c.image,
        name: c.name,
        ports: c.ports?.map((p: KubeObject) => ({ containerPort: p.containerPort, name: p.name })),
      })),
      serviceAccountName: pod.spec.serviceAccountName,
    },
  };
  pod.metadata.annotations = { ...pod.metadata.annotations, 'kubectl.kubernetes.io/last-applied-configuration': `${JSON.stringify(sorted(manifest))}\n` };
  return pod;
}

export interface ReviewOptions {
  /**
   * The bodies before this session's fidelity fix: no managedFields, a stub last-applied annotation, and the
   * ReplicaSet controller's envelope on every fixture.
   */
  lean?: boolean;
}

/** A pod `kubectl apply` created: the last-applied annotation and the client-side-apply manager's fields. */
function applied(pod: KubeObject, o: ReviewOptions): KubeObject {
  return o.lean ? pod : withManagedFields(kubectlApplied(pod), 'kubectl-client-side-apply');
}

/** What `kubectl apply` sends around such a pod (the controller's envelope with --lean-fixtures). */
const appliedEnvelope = (o: ReviewOptions): Envelope => (o.lean ? CONTROLLER_ENVELOPE : KUBECTL_APPLY_ENVELOPE);

export const FIXTURES: Fixture[] = [
  {
    name: 'small',
    description:
      'small agent pod as `kubectl apply` sends it (1 container, 3 env vars, token volume, last-applied annotation, managedFields; an EKS IAM user, fieldManager kubectl-client-side-apply)',
    review: (uid, o = {}) => wrap(applied(smallAgentPod(), o), uid, undefined, appliedEnvelope(o)),
  },
  {
    name: 'deployment',
    description:
      "Deployment-made pod: generateName, ownerReferences to a ReplicaSet, pod-template-hash, 10 containers, 21 volumes, the controller manager's managedFields; sent by the ReplicaSet controller",
    review: (uid, o = {}) => wrap(o.lean ? deploymentPod() : withManagedFields(deploymentPod(), 'kube-controller-manager'), uid),
  },
  {
    name: 'env1500',
    description: 'agent pod with 1,500 env vars in one container, as `kubectl apply` sends it (an EKS IAM user, fieldManager kubectl-client-side-apply)',
    review: (uid, o = {}) => wrap(applied(manyEnvPod(), o), uid, undefined, appliedEnvelope(o)),
  },
];

export function fixture(name: string): Fixture {
  const f = FIXTURES.find((x) => x.name === name);
  if (!f) throw new Error(`no fixture ${name}`);
  return f;
}
