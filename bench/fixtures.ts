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
  review(uid?: string): KubeObject;
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

export function wrap(pod: KubeObject, uid = nextUid(), namespace = 'team-a'): KubeObject {
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
      userInfo: {
        username: 'system:serviceaccount:kube-system:replicaset-controller',
        uid: '5e0c2a7b-3f40-4c44-8c55-3a4b1b9f2d11',
        groups: ['system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated'],
      },
      object: pod,
      oldObject: null,
      dryRun: false,
      options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1' },
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

/** An agent pod whose one container has 1,500 env vars (an injector once took 15 s on such a pod). */
export function manyEnvPod(count = 1500, namespace = 'team-a'): KubeObject {
  const pod = smallAgentPod(namespace);
  pod.metadata.name = 'big-env-agent';
  pod.spec.containers[0].env = Array.from({ length: count }, (_, i) =>
    i % 10 === 9
      ? { name: `SECRET_${i}`, valueFrom: { secretKeyRef: { name: 'agent-secrets', key: `key-${i}` } } }
      : { name: `FEATURE_FLAG_${String(i).padStart(4, '0')}`, value: `enabled-for-cohort-${i % 37}-${'x'.repeat(i % 16)}` },
  );
  return pod;
}

export const FIXTURES: Fixture[] = [
  { name: 'small', description: 'small agent pod (1 container, 3 env vars, token volume)', review: (uid) => wrap(smallAgentPod(), uid) },
  {
    name: 'deployment',
    description: 'Deployment-made pod: generateName, ownerReferences to a ReplicaSet, pod-template-hash, 10 containers, 21 volumes',
    review: (uid) => wrap(deploymentPod(), uid),
  },
  { name: 'env1500', description: 'agent pod with 1,500 env vars in one container', review: (uid) => wrap(manyEnvPod(), uid) },
];

export function fixture(name: string): Fixture {
  const f = FIXTURES.find((x) => x.name === name);
  if (!f) throw new Error(`no fixture ${name}`);
  return f;
}
