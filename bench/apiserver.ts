// A stand-in for the Kubernetes API server, for the benchmark's runs with cluster state (`bench/run.ts
// --cluster-state`, and the memory run's second pass). It is NOT an API server: it is the project's recorded-response
// fake (test/fake-apiserver.ts: lists, watch streams and the OIDC discovery document as the API server sends them),
// in a process of its own, seeded with a small cluster so that the webhook's informers hold something: agents in
// three namespaces (a Deployment, its ReplicaSet and its pods, and a ServiceAccount each), tools and system
// Deployments that are not agents, the research-agent Deployment the benchmark's Deployment pod belongs to,
// kagent's controller with its kagent-enterprise-config ConfigMap, the SPIFFE CSIDriver, and an EKS-like issuer
// in the discovery document. One agent pod is updated every `--churn-ms` (default 2,000 ms), as pods' status
// changes in a cluster, so the watches carry events.
//   node bench/apiserver.ts --kubeconfig FILE [--agents N] [--pods-per-agent N] [--churn-ms MS]
// Writes a kubeconfig for it to FILE (token auth, plain HTTP on 127.0.0.1) and prints one JSON line
// {"url", "kubeconfig", "objects": {...}} once listening; stops on SIGTERM.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { FakeApiServer, PATHS } from '../test/fake-apiserver.ts';

type Obj = Record<string, any>;

export interface BenchClusterOptions {
  /** agents (each a Deployment, a ReplicaSet, a ServiceAccount and its pods), spread over three namespaces */
  agents?: number;
  podsPerAgent?: number;
}

const NAMESPACES = ['team-a', 'team-b', 'team-c'];

function agentPod(name: string, rs: string, rsUid: string, ns: string, sa: string, hash: string, i: number): Obj {
  return {
    metadata: {
      name: `${rs}-${(i * 7919 + 12345).toString(36).slice(-5)}`,
      generateName: `${rs}-`,
      namespace: ns,
      labels: { app: name, 'kagenti.io/type': 'agent', 'pod-template-hash': hash },
      annotations: { 'kagenti.io/status': JSON.stringify({ containers: ['authbridge-proxy', 'spiffe-helper'], volumes: ['spire-agent-socket', 'svid-output'] }) },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: rs, uid: rsUid, controller: true, blockOwnerDeletion: true }],
    },
    spec: {
      serviceAccountName: sa,
      serviceAccount: sa,
      containers: [
        { name: 'agent', image: `ghcr.io/example/${name}:1.0.0`, ports: [{ name: 'http', containerPort: 8000, protocol: 'TCP' }] },
        { name: 'authbridge-proxy', image: 'ghcr.io/kagenti/authbridge:0.3.0' },
        { name: 'spiffe-helper', image: 'ghcr.io/spiffe/spiffe-helper:0.10.0' },
      ],
      volumes: [{ name: 'spire-agent-socket', csi: { driver: 'csi.spiffe.io', readOnly: true } }, { name: 'svid-output', emptyDir: {} }],
    },
    status: { phase: 'Running', podIP: `10.0.${i % 250}.${(i * 7) % 250}`, conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: '2026-11-20T09:14:07Z' }] },
  };
}

function deployment(name: string, ns: string, sa: string, labels: Obj, replicas: number, extra: Obj = {}): Obj {
  return {
    metadata: { name, namespace: ns, labels: { app: name, ...labels }, annotations: { 'deployment.kubernetes.io/revision': '1' } },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name, ...labels } },
        spec: { serviceAccountName: sa, containers: [{ name: 'main', image: `ghcr.io/example/${name}:1.0.0`, ...extra }] },
      },
    },
    status: { replicas, readyReplicas: replicas, availableReplicas: replicas },
  };
}

function replicaSet(dep: Obj, hash: string, uid: string): Obj {
  const name = `${dep.metadata.name}-${hash}`;
  return {
    metadata: {
      name,
      namespace: dep.metadata.namespace,
      uid,
      labels: { ...dep.spec.template.metadata.labels, 'pod-template-hash': hash },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: dep.metadata.name, uid: `uid-${dep.metadata.namespace}/${dep.metadata.name}`, controller: true, blockOwnerDeletion: true }],
    },
    spec: { replicas: dep.spec.replicas, selector: { matchLabels: { ...dep.spec.selector.matchLabels, 'pod-template-hash': hash } }, template: dep.spec.template },
    status: { replicas: dep.spec.replicas, readyReplicas: dep.spec.replicas },
  };
}

/** The seeded cluster: objects by the stand-in's list path (PATHS). Pure: the same objects each call. */
export function benchCluster(o: BenchClusterOptions = {}): Record<string, Obj[]> {
  const agents = o.agents ?? 12;
  const podsPerAgent = o.podsPerAgent ?? 3;
  const out: Record<string, Obj[]> = {
    [PATHS.namespaces]: [...NAMESPACES, 'kagent', 'kube-system', 'default'].map((name) => ({
      metadata: { name, labels: { 'kubernetes.io/metadata.name': name } },
    })),
    [PATHS.csidrivers]: [{ metadata: { name: 'csi.spiffe.io' }, spec: { attachRequired: false, podInfoOnMount: true, volumeLifecycleModes: ['Ephemeral'] } }],
    [PATHS.pods]: [],
    [PATHS.deployments]: [],
    [PATHS.replicasets]: [],
    [PATHS.serviceaccounts]: [],
    [PATHS.configmaps]: [
      {
        metadata: { name: 'kagent-enterprise-config', namespace: 'kagent', labels: { 'app.kubernetes.io/name': 'kagent' } },
        data: { K8S_TOKEN_REVIEW: 'true', LOG_LEVEL: 'info', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel-collector.observability:4317' },
      },
    ],
  };
  const add = (path: string, ...objs: Obj[]) => out[path]!.push(...objs);
  const hashOf = (i: number) => `5f7c9d8b${i.toString(36).padStart(2, '0')}`.slice(0, 10);
  for (let a = 0; a < agents; a++) {
    const name = `agent-${a}`;
    const ns = NAMESPACES[a % NAMESPACES.length]!;
    const sa = `${name}-sa`;
    const hash = hashOf(a);
    const dep = deployment(name, ns, sa, { 'kagenti.io/type': 'agent' }, podsPerAgent);
    const rsUid = `rs-uid-${ns}-${name}`;
    const rs = replicaSet(dep, hash, rsUid);
    add(PATHS.deployments, dep);
    add(PATHS.replicasets, rs);
    add(PATHS.serviceaccounts, { metadata: { name: sa, namespace: ns } });
    for (let i = 0; i < podsPerAgent; i++) add(PATHS.pods, agentPod(name, rs.metadata.name, rsUid, ns, sa, hash, a * podsPerAgent + i));
  }
  // the owner of the benchmark's Deployment pod (bench/fixtures.ts deploymentPod), as it would be in the cluster
  const research = deployment('research-agent', 'team-a', 'research-agent', { 'kagenti.io/type': 'agent' }, 2);
  const researchRs = replicaSet(research, '7d9c6b5f4', '9a7e4c1d-2b3f-4e5a-8c6d-7e8f9a0b1c2d');
  add(PATHS.deployments, research);
  add(PATHS.replicasets, researchRs);
  add(PATHS.serviceaccounts, { metadata: { name: 'research-agent', namespace: 'team-a' } });
  for (let i = 0; i < 2; i++) add(PATHS.pods, agentPod('research-agent', researchRs.metadata.name, researchRs.metadata.uid, 'team-a', 'research-agent', '7d9c6b5f4', 900 + i));
  // Deployments that are not agents: tools the agents call, and what runs in kube-system and kagent
  const others = [
    ...NAMESPACES.map((ns) => deployment(`weather-tool-${ns}`, ns, 'default', {}, 1)),
    deployment('coredns', 'kube-system', 'coredns', { 'k8s-app': 'kube-dns' }, 2),
    deployment('metrics-server', 'kube-system', 'metrics-server', {}, 1),
    deployment('kagent-controller', 'kagent', 'kagent-controller', {}, 1, { envFrom: [{ configMapRef: { name: 'kagent-enterprise-config' } }] }),
    deployment('kagent-ui', 'kagent', 'kagent-ui', {}, 1),
  ];
  others.forEach((d, i) => {
    add(PATHS.deployments, d);
    add(PATHS.replicasets, replicaSet(d, hashOf(100 + i), `rs-uid-${d.metadata.namespace}-${d.metadata.name}`));
    add(PATHS.serviceaccounts, { metadata: { name: d.spec.template.spec.serviceAccountName, namespace: d.metadata.namespace } });
  });
  // one ServiceAccount per name and namespace (the tools share "default")
  const seen = new Set<string>();
  out[PATHS.serviceaccounts] = out[PATHS.serviceaccounts]!.filter((s) => !seen.has(`${s.metadata.namespace}/${s.metadata.name}`) && !!seen.add(`${s.metadata.namespace}/${s.metadata.name}`));
  return out;
}

/** A kubeconfig (YAML is a superset of JSON) for a server at `url`: token auth, plain HTTP. */
export function kubeconfigText(url: string): string {
  return `${JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'bench-stand-in', cluster: { server: url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'webhook', user: { token: 'bench-token' } }],
      contexts: [{ name: 'bench-stand-in', context: { cluster: 'bench-stand-in', user: 'webhook' } }],
      'current-context': 'bench-stand-in',
    },
    null,
    2,
  )}\n`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      kubeconfig: { type: 'string' },
      agents: { type: 'string', default: '12' },
      'pods-per-agent': { type: 'string', default: '3' },
      'churn-ms': { type: 'string', default: '2000' },
    },
  });
  if (!values.kubeconfig) {
    process.stderr.write('usage: node bench/apiserver.ts --kubeconfig FILE [--agents N] [--pods-per-agent N] [--churn-ms MS]\n');
    process.exit(2);
  }
  const api = new FakeApiServer();
  const cluster = benchCluster({ agents: Number(values.agents), podsPerAgent: Number(values['pods-per-agent']) });
  for (const [path, items] of Object.entries(cluster)) api.seed(path, items);
  // what EKS's discovery document says: an external issuer, so kagent-enterprise-config must say "true" (it does)
  const issuer = 'https://oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B716D3041E';
  api.discovery = { issuer, jwks_uri: `${issuer}/keys`, response_types_supported: ['id_token'], subject_types_supported: ['public'], id_token_signing_alg_values_supported: ['RS256'] };
  await api.start();
  writeFileSync(values.kubeconfig, kubeconfigText(api.url));
  const pods = cluster[PATHS.pods]!;
  const churnMs = Number(values['churn-ms']);
  let n = 0;
  const churn =
    churnMs > 0
      ? setInterval(() => {
          const pod = structuredClone(pods[n++ % pods.length]!);
          pod.status.conditions[0].lastTransitionTime = new Date().toISOString();
          api.emit(PATHS.pods, 'MODIFIED', pod);
        }, churnMs)
      : undefined;
  const objects = Object.fromEntries(Object.entries(cluster).map(([path, items]) => [path.split('/').at(-1), items.length]));
  process.stdout.write(`${JSON.stringify({ url: api.url, kubeconfig: values.kubeconfig, objects, standIn: 'test/fake-apiserver.ts, not an API server' })}\n`);
  process.once('SIGTERM', async () => {
    if (churn) clearInterval(churn);
    await api.stop();
    process.exit(0);
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
