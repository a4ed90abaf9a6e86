// The benchmark stream for `npm run bench:lint`: about 50,000 documents / 20 MB of realistic agent
// Deployments, Services, ServiceAccounts and ConfigMaps as `helm template` renders them, a few violating.

export interface StreamOptions {
  documents: number;
}

function deployment(i: number, sa: string, ns: string): string {
  return `---
# Source: agents/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: agent-${i}
  namespace: ${ns}
  labels:
    app.kubernetes.io/name: agent-${i}
    app.kubernetes.io/managed-by: Helm
    kagenti.io/type: agent
spec:
  replicas: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: agent-${i}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: agent-${i}
        kagenti.io/type: agent
        kagenti.io/agent: agent-${i}
    spec:
${sa === '' ? '' : `      serviceAccountName: ${sa}\n`}      containers:
        - name: agent
          image: "ghcr.io/example/agents/agent:1.${i % 17}.${i % 5}"
          imagePullPolicy: IfNotPresent
          ports:
            - name: http
              containerPort: 8080
              protocol: TCP
          resources:
            requests:
              cpu: 100m
              memory: 128Mi
            limits:
              cpu: 500m
              memory: 512Mi
`;
}

function service(i: number, ns: string): string {
  return `---
# Source: agents/templates/service.yaml
apiVersion: v1
kind: Service
metadata:
  name: agent-${i}
  namespace: ${ns}
  labels:
    app.kubernetes.io/name: agent-${i}
    app.kubernetes.io/managed-by: Helm
spec:
  type: ClusterIP
  ports:
    - port: 80
      targetPort: http
      protocol: TCP
      name: http
  selector:
    app.kubernetes.io/name: agent-${i}
`;
}

function serviceAccount(i: number, ns: string): string {
  return `---
# Source: agents/templates/serviceaccount.yaml
apiVersion: v1
kind: ServiceAccount
metadata:
  name: agent-${i}
  namespace: ${ns}
  labels:
    app.kubernetes.io/name: agent-${i}
automountServiceAccountToken: true
`;
}

function configMap(i: number, ns: string): string {
  return `---
# Source: agents/templates/configmap.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: agent-${i}-config
  namespace: ${ns}
data:
  MODEL_PROVIDER: openai
  MAX_TOKENS: "4096"
  TEMPERATURE: "0.2"
  system_prompt.txt: |
    You are agent ${i}. Answer briefly.
    Use the tools you are given; never invent results.
`;
}

const KAGENT_BAD = `---
# Source: kagent/templates/enterprise-config.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: kagent-enterprise-config
  namespace: kagent
data:
  K8S_TOKEN_REVIEW: true
  LOG_LEVEL: info
`;

/** Generates the stream; every 1,000th Deployment violates something. */
export function generateStream(opts: StreamOptions = { documents: 50_000 }): string {
  const parts: string[] = [];
  let docs = 0;
  let i = 0;
  while (docs < opts.documents) {
    const ns = `team-${i % 40}`;
    let sa = `agent-${i}`;
    if (i % 1000 === 17) sa = ''; // dedicated-service-account
    if (i % 1000 === 503) sa = `agent-${i - 40}`; // unique-service-account: same namespace (i-40 ≡ i mod 40)
    parts.push(deployment(i, sa, ns), service(i, ns), serviceAccount(i, ns), configMap(i, ns));
    docs += 4;
    if (i === 2000) {
      parts.push(KAGENT_BAD);
      docs++;
    }
    i++;
  }
  return parts.join('');
}
