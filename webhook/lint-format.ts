// Output formats of `kagenti-webhook lint`: text (for people), json, sarif (code scanning), junit (CI test
// reports). Pure functions: a report in, a string out.
import type { RuleName, Severity } from './rules.ts';
import { INJECTION_WARNINGS } from './config.ts';
import { VERSION } from './version.ts';
import { printable } from './json.ts';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';

/** The file name findings read from stdin have. */
export const STDIN_NAME = '<stdin>';

export const FORMATS = ['text', 'json', 'sarif', 'junit'] as const;
export type Format = (typeof FORMATS)[number];

export interface Finding {
  rule: RuleName;
  severity: Severity;
  /** one line, beginning with `[rule]`, as the webhook says it */
  message: string;
  file: string;
  line: number;
  column: number;
  /** the chart template from Helm's `# Source:` comment, when the document has one */
  source?: string;
  kind: string;
  namespace: string;
  name: string;
  /** dotted field path of the offending key, e.g. data.K8S_TOKEN_REVIEW */
  path: string;
  /** a token finding on an immutable ConfigMap the input updates (LintContext.updatesCluster); not in any output */
  immutable?: true;
  /** the API server refuses the object so, in any namespace (Violation.schema); not in any output */
  schema?: true;
}

/** An input that could not be read or parsed (lint exits 2): nothing in it was checked. */
export interface InputProblem {
  file: string;
  line?: number;
  column?: number;
  message: string;
}

/** Where an input problem is: `FILE:LINE:COL`, or the file alone when it has no position. */
export function problemAt(p: InputProblem): string {
  return p.line !== undefined ? `${p.file}:${p.line}:${p.column ?? 1}` : p.file;
}

export interface FileSummary {
  file: string;
  documents: number;
}

export interface LintReport {
  findings: Finding[];
  files: FileSummary[];
  documents: number;
  /** --strict: warnings count as failures (exit code, JUnit failures) */
  strict: boolean;
  /** Inputs that could not be read or parsed: the report says so instead of claiming a pass. */
  problems?: InputProblem[];
}

export interface Summary {
  errors: number;
  warnings: number;
  documents: number;
  files: number;
}

export function summarize(r: LintReport): Summary {
  let errors = 0;
  let warnings = 0;
  for (const f of r.findings) if (f.severity === 'error') errors++;
    else warnings++;
  return { errors, warnings, documents: r.documents, files: r.files.length };
}

export const RULE_HELP: Record<RuleName, { short: string; full: string }> = {
  'dedicated-service-account': {
    short: 'An agent runs under its own ServiceAccount, not "default".',
    full:
      "An agent's SPIFFE ID is derived from its namespace and ServiceAccount. Every pod of a namespace may run " +
      'as "default", so an agent without a ServiceAccount of its own has no identity that tells it apart.',
  },
  'unique-service-account': {
    short: 'Two different agents do not share one ServiceAccount.',
    full:
      'Agents that share a ServiceAccount share a SPIFFE ID and cannot be told apart. Give each agent its own ' +
      'ServiceAccount, or label both workloads with the same kagenti.io/agent if they are one agent.',
  },
  'token-review-value': {
    short: 'K8S_TOKEN_REVIEW is the string "true" or "false".',
    full:
      'ConfigMap data holds only strings: an unquoted true is a YAML boolean the API server rejects, and values ' +
      'such as "yes" or "True" may leave TokenReview off. Quote it: K8S_TOKEN_REVIEW: "true".',
  },
  'token-review-required': {
    short: 'K8S_TOKEN_REVIEW is "true" on clusters with an external service-account issuer.',
    full:
      'On EKS, GKE, AKS and other clusters whose service-account issuer is external, kagent cannot verify agent ' +
      'tokens locally and agent callbacks fail with 401 unless K8S_TOKEN_REVIEW is "true".',
  },
  // The injection core's denials, checked on agent pod templates: the webhook denies such pods when they are created.
  'invalid-annotation': {
    short: 'The injection annotations of an agent pod have valid values.',
    full:
      'kagenti.io/authbridge-mode, kagenti.io/mtls-mode and kagenti.io/native-sidecars take fixed values, and so do the ' +
      'opt-out labels (kagenti.io/inject: disabled or enabled; the per-sidecar labels "true" or "false"). An unknown ' +
      'value is never replaced by a default or guessed: the webhook denies the pod.',
  },
  'reserved-name': {
    short: "An agent pod's own containers and volumes do not use the injected names.",
    full:
      'The webhook injects authbridge-proxy or envoy-proxy, proxy-init, spiffe-helper and the volumes ' +
      'spire-agent-socket, svid-output and spiffe-helper-config. A pod that already has one of them (and not from an ' +
      "earlier injection), or mounts one the injection it opted out of would provide, is denied.",
  },
  'port-conflict': {
    short: "An agent pod's containers do not declare the TCP ports the proxy needs.",
    full:
      'The AuthBridge proxy listens on fixed ports in the pod network namespace. A container declaring one of them ' +
      'over TCP would clash with it. Change the container port, or move the proxy with authBridge.ports in the webhook config.',
  },
  'host-network': {
    short: 'An agent pod that gets a proxy does not use hostNetwork.',
    full:
      "With hostNetwork the sidecars share the node's network: the proxy binds the node's ports and proxy-init " +
      "rewrites the node's iptables. Remove hostNetwork, opt out of the proxy (kagenti.io/authbridge-inject: \"false\", " +
      'spiffe-helper alone binds no port), or label the pod kagenti.io/inject: disabled.',
  },
  'unsupported-os': {
    short: 'An agent pod runs on Linux.',
    full: 'The injected containers are Linux-only. Windows pods (spec.os.name, a nodeSelector on kubernetes.io/os or beta.kubernetes.io/os, or a required node affinity that rules out Linux in every term) are denied.',
  },
  'malformed-object': {
    short: 'An agent pod template has the shape of a Pod.',
    full: 'Fields of the wrong type, no container of its own, or annotations over the 256 KiB Kubernetes allows: the pod cannot be injected and is denied.',
  },
  'pod-resources': {
    short: "An agent pod's pod-level resources (spec.resources) leave room for the injected containers.",
    full:
      'With the PodLevelResources feature gate on (the default from Kubernetes 1.34) the API server rejects a pod whose ' +
      'spec.resources requests less than its containers request together, or whose regular container has a higher limit ' +
      'than spec.resources.limits. The injected sidecars add their requests and limits, so the webhook denies such a pod ' +
      'with the minimum values that pass. policies.pod-resources: warn (where the gate is off) or off.',
  },
  'istio-sidecar': {
    short: 'An agent pod that gets the AuthBridge proxy does not carry Istio\'s sidecar too.',
    full:
      "Istio's injector runs before the webhook. Both proxies run as uid 1337 and leave it out of their redirects, so the " +
      "agent's traffic leaves AuthBridge without Istio's mTLS, and inbound mesh traffic reaches AuthBridge first. Use Istio's " +
      'ambient mode, kagenti.io/authbridge-mode: waypoint, or sidecar.istio.io/inject: "false" on the agent. A warning by ' +
      'default; policies.istio-sidecar: deny or off. On a pod template: when the namespace is labelled istio-injection=enabled.',
  },
  // The injection core's warnings: the pod is injected, but something will not work as its author expects.
  'namespace-mode-label': {
    short: "The namespace's kagenti.io/authbridge-mode label names a mode.",
    full: 'An unknown value in the namespace label is ignored and the configured default mode is used.',
  },
  'waypoint-mode': {
    short: 'In waypoint mode no AuthBridge sidecar is injected.',
    full: "The mesh's waypoint must handle the agent's traffic; nothing in the pod does.",
  },
  'all-opted-out': {
    short: 'Every kagenti sidecar of an agent pod is opted out.',
    full: 'Nothing is injected; an earlier injection recorded on the pod is taken out.',
  },
  'sidecars-block-completion': {
    short: 'A pod meant to finish gets native sidecars.',
    full:
      'A Job pod (restartPolicy Never or OnFailure) with ordinary sidecars never completes, and neither does its Job. ' +
      'Annotate it kagenti.io/native-sidecars: "true" (Kubernetes 1.29+ on the API server and every node\'s kubelet), or set featureGates.nativeSidecars: true in the webhook config.',
  },
  'pod-security': {
    short: "proxy-init is not injected into a namespace whose Pod Security level forbids it.",
    full:
      'proxy-init runs as root with NET_ADMIN and NET_RAW, which only the privileged level allows: Pod Security ' +
      'admission rejects the pod in a namespace that enforces baseline or restricted, unless the cluster exempts it.',
  },
  'init-before-proxy': {
    short: "An agent pod's own init containers do not need the network before the proxy starts.",
    full:
      'Without native sidecars they run after proxy-init redirects outbound traffic and before the proxy exists, so ' +
      'their outbound connections fail.',
  },
  'proxy-uid': {
    short: "An agent pod's containers do not run as the proxy's uid (1337).",
    full: "proxy-init leaves the proxy's uid out of the redirect, so such a container's traffic skips AuthBridge.",
  },
  'probe-through-proxy': {
    short: "An agent pod's own probes do not go through the proxy under mTLS strict.",
    full:
      'proxy-init redirects inbound TCP to the proxy, the kubelet\'s probes too. An httpGet or grpc probe on a redirected ' +
      'port reaches AuthBridge\'s inbound listener, which under mtls-mode strict refuses it without a client certificate: ' +
      'the pod never becomes ready, and a failing liveness probe restarts the container. Use an exec probe, or mtls-mode permissive.',
  },
  'net-admin': {
    short: "An agent pod's containers cannot change its iptables rules.",
    full:
      "A container with NET_ADMIN or ALL in capabilities.add, or privileged: true, shares the pod's network " +
      "namespace and can take out proxy-init's redirect, so traffic skips AuthBridge. Drop them, or move that work out of the agent pod.",
  },
  'mesh-sidecar': {
    short: "An agent pod that gets proxy-init does not carry another mesh's sidecar (Linkerd's, Kuma's) too.",
    full:
      "Linkerd's (linkerd-proxy) and Kuma's (kuma-sidecar) injectors run after the webhook. Both that mesh and proxy-init " +
      "redirect the pod's traffic with iptables, each leaving only its own proxy's uid out, so traffic may bypass one of the " +
      'proxies. Use one mesh for the agent, or opt it out of the other one: linkerd.io/inject: disabled, kuma.io/sidecar-injection: disabled. ' +
      "That mesh's init container (linkerd-init, kuma-init) is then left out of the warnings about the pod's own containers.",
  },
  'stale-injection': {
    short: 'A pod template that no longer asks for injection does not keep the sidecars an earlier `inject` wrote into it.',
    full:
      'The webhook does not inject pods labelled kagenti.io/inject: disabled or without kagenti.io/type, so sidecars left in their ' +
      "template run as written and are never updated. Re-run `kagenti-webhook inject` on the manifest (it takes them out), or remove the opt-out.",
  },
  'csi-driver-missing': {
    short: 'The SPIFFE CSI driver is installed.',
    full: 'Without the CSIDriver the pod waits in Init: its Workload API socket volume cannot be mounted.',
  },
  // lint's own: what the webhook cannot say, since it never sees the object
  'unwatched-namespace': {
    short: 'Agents and the ConfigMaps the webhook checks are not in a namespace the webhook never sees.',
    full:
      'The webhook registrations leave out kube-system, kube-public, kube-node-lease and kagenti-system: an agent there ' +
      'gets no sidecars and nothing is checked. Lint reports one warning per such agent (as inject does), and per other object with ' +
      'findings, instead of the findings only the webhook would act on; what the API server itself refuses (a K8S_TOKEN_REVIEW that ' +
      'is not a string, a malformed pod) is still reported.',
  },
  'unchecked-template': {
    short: 'Agent pod templates are in workload kinds lint and inject know.',
    full:
      'An object of another kind (an Argo Rollout, a custom resource of another group named Deployment or StatefulSet) whose ' +
      'pod template (spec.template, spec.jobTemplate.spec.template) is labelled kagenti.io/type: agent gets the sidecars in its ' +
      'pods at admission, and the webhook denies those it cannot inject, but lint and inject do not read its template. ' +
      'Check its pods once created: kubectl get pod -o yaml | kagenti-webhook lint -.',
  },
};

const RULES = Object.keys(RULE_HELP) as RuleName[];

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

const C = { red: '\x1b[31m', yellow: '\x1b[33m', bold: '\x1b[1m', dim: '\x1b[2m', green: '\x1b[32m', reset: '\x1b[0m' };

/**
 * Text for a terminal or a CI log (admission.ts's printable, which admission messages use too): control characters
 * escaped JSON-style. Object names and file names come from the input, so a name carrying ESC or a newline would
 * otherwise move the cursor, recolour the output or print a line that reads as a finding of its own.
 */
export { printable };

/**
 * `FILE:LINE:COL: error|warning <message>` per finding, then a summary line. File names and messages go through
 * printable(): one finding is one line, whatever the input's names hold.
 */
export function formatText(r: LintReport, opts: { color?: boolean } = {}): string {
  const color = opts.color === true;
  const paint = (code: string, s: string): string => (color ? `${code}${s}${C.reset}` : s);
  const lines: string[] = [];
  for (const f of r.findings) {
    const sev = f.severity === 'error' ? paint(C.red, 'error') : paint(C.yellow, 'warning');
    lines.push(`${paint(C.bold, `${printable(f.file)}:${f.line}:${f.column}`)}: ${sev} ${printable(f.message)}`);
  }
  const s = summarize(r);
  const where = `${plural(s.documents, 'document')} in ${plural(s.files, 'file')}`;
  const problems = r.problems?.length ?? 0;
  if (problems > 0)
    lines.push(paint(C.red, `${plural(problems, 'input error')} (on stderr: what they name was not checked), ${plural(s.errors, 'error')}, ${plural(s.warnings, 'warning')} (${where})`));
  else if (s.errors === 0 && s.warnings === 0) lines.push(paint(C.green, `no problems (${where})`));
  else {
    const failing = s.errors > 0 || (r.strict && s.warnings > 0);
    const text = `${plural(s.errors, 'error')}, ${plural(s.warnings, 'warning')} (${where})${r.strict && s.warnings > 0 ? ', warnings count as errors (--strict)' : ''}`;
    lines.push(paint(failing ? C.red : C.yellow, text));
  }
  return `${lines.join('\n')}\n`;
}

/** `{"violations":[...],"summary":{"errors","warnings","documents","files"}}` */
export function formatJson(r: LintReport): string {
  const violations = r.findings.map((f) => ({
    rule: f.rule,
    severity: f.severity,
    message: f.message,
    file: f.file,
    line: f.line,
    column: f.column,
    source: f.source ?? null,
    kind: f.kind,
    namespace: f.namespace,
    name: f.name,
    path: f.path,
  }));
  // inputErrors only when there are some: the documented shape stays as it is for every run that read its input
  const inputErrors = r.problems?.length ? { inputErrors: r.problems.map(problemJson) } : {};
  return `${JSON.stringify({ violations, summary: summarize(r), ...inputErrors }, null, 2)}\n`;
}

function problemJson(p: InputProblem): { file: string; line: number | null; column: number | null; message: string } {
  return { file: p.file, line: p.line ?? null, column: p.line !== undefined ? (p.column ?? 1) : null, message: p.message };
}

/** Where SARIF's relative artifact URIs start: the checkout (GITHUB_WORKSPACE) when set, else the working directory. */
export interface SarifBase {
  cwd: string;
  workspace?: string;
}

/**
 * A file name as a SARIF artifact URI: relative to the workspace when the file is under it (code scanning resolves a
 * relative URI against the checkout), else relative to the working directory when under it, else an absolute file://
 * URI; undefined for stdin, which has none. Relative URIs have `/` separators and percent-encoded names.
 */
export function artifactUri(file: string, base: SarifBase): string | undefined {
  if (file === STDIN_NAME) return undefined;
  const abs = resolve(base.cwd, file);
  for (const root of [base.workspace, base.cwd]) {
    if (!root) continue;
    const rel = relative(resolve(base.cwd, root), abs);
    if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) continue;
    return rel
      .split(sep)
      .map((seg) => encodeURIComponent(seg))
      .join('/');
  }
  return pathToFileURL(abs).href;
}

/** A SARIF physicalLocation of a file, or nothing for stdin (a physicalLocation needs an artifactLocation). */
function physical(file: string, base: SarifBase, region: Record<string, number> | undefined): Record<string, unknown> {
  const uri = artifactUri(file, base);
  if (uri === undefined) return {};
  return { physicalLocation: { artifactLocation: { uri }, ...(region ? { region } : {}) } };
}

/** The artifact URI of a finding read from stdin when it has no `# Source:` to name: `<stdin>`, encoded. */
export const STDIN_URI = encodeURIComponent(STDIN_NAME);

/**
 * A result's artifact URI. GitHub code scanning rejects the whole SARIF file when one result has no artifact
 * location ("locationFromSarifResult: expected artifact location"), so a finding read from stdin has one too: the
 * chart template of Helm's `# Source:` comment (relative, as Helm writes it: `chart/templates/x.yaml`), else STDIN_URI.
 */
export function resultUri(f: Pick<Finding, 'file' | 'source'>, base: SarifBase): string {
  const uri = artifactUri(f.file, base);
  if (uri !== undefined) return uri;
  // Helm writes chart-relative paths; one that is absolute or climbs out with `..` names no file of the checkout
  const raw = f.source ?? '';
  if (raw.startsWith('/') || /^[A-Za-z]:[\\/]/.test(raw) || raw.split(/[\\/]/).includes('..')) return STDIN_URI;
  const source = raw
    .split('/')
    .filter((seg) => seg !== '' && seg !== '.')
    .map((seg) => encodeURIComponent(seg))
    .join('/');
  return source || STDIN_URI;
}

/** SARIF 2.1.0, for GitHub code scanning (`github/codeql-action/upload-sarif`) and other SARIF viewers. */
export function formatSarif(r: LintReport, base: SarifBase = { cwd: process.cwd() }): string {
  const results = r.findings.map((f) => {
    const result: Record<string, unknown> = {
      ruleId: f.rule,
      ruleIndex: RULES.indexOf(f.rule),
      level: f.severity === 'error' || r.strict ? 'error' : 'warning',
      message: { text: f.message },
      locations: [
        {
          // the region is the finding's line in its input: for stdin, that of the stream, even where the URI is its template
          physicalLocation: { artifactLocation: { uri: resultUri(f, base) }, region: { startLine: f.line, startColumn: f.column } },
          logicalLocations: [{ name: `${f.kind}/${f.namespace}/${f.name}`, fullyQualifiedName: `${f.kind}/${f.namespace}/${f.name}.${f.path}`, kind: 'object' }],
        },
      ],
      partialFingerprints: { 'kagentiObject/v1': `${f.rule}:${f.kind}/${f.namespace}/${f.name}:${f.path}` },
    };
    const props: Record<string, unknown> = { path: f.path, kind: f.kind, namespace: f.namespace, name: f.name };
    if (f.source) props.source = f.source;
    result.properties = props;
    return result;
  });
  const sarif = {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: {
          driver: {
            name: 'kagenti-webhook',
            version: VERSION,
            semanticVersion: VERSION,
            rules: RULES.map((id) => ({
              id,
              name: id,
              shortDescription: { text: RULE_HELP[id].short },
              fullDescription: { text: RULE_HELP[id].full },
              help: { text: RULE_HELP[id].full },
              // the injection's warnings, lint's own and istio-sidecar (policies default warn) are warnings (the other policy rules' and denials' default is error)
              defaultConfiguration: { level: (INJECTION_WARNINGS as readonly string[]).includes(id) || id === 'unwatched-namespace' || id === 'unchecked-template' || id === 'istio-sidecar' ? 'warning' : 'error' },
            })),
          },
        },
        results,
        // An input that could not be read: the run did not check everything, which a viewer shows as a failed run.
        ...(r.problems?.length
          ? {
              invocations: [
                {
                  executionSuccessful: false,
                  toolExecutionNotifications: r.problems.map((p) => ({
                    level: 'error',
                    message: { text: p.message },
                    ...(artifactUri(p.file, base) !== undefined
                      ? { locations: [physical(p.file, base, p.line !== undefined ? { startLine: p.line, startColumn: p.column ?? 1 } : undefined)] }
                      : {}),
                  })),
                },
              ],
            }
          : {}),
      },
    ],
  };
  return `${JSON.stringify(sarif, null, 2)}\n`;
}

function xml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    // characters XML 1.0 cannot hold
    .replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]/g, '\ufffd');
}

/**
 * JUnit XML (GitLab `artifacts:reports:junit`, Jenkins...): a testsuite per file, a testcase per document
 * with findings (errors are failures; warnings are failures only with --strict, else system-out), and
 * one passing testcase for the file's other documents.
 */
export function formatJunit(r: LintReport): string {
  const byFile = new Map<string, Finding[]>();
  for (const f of r.findings) {
    let list = byFile.get(f.file);
    if (!list) byFile.set(f.file, (list = []));
    list.push(f);
  }
  const problemsOf = new Map<string, InputProblem[]>();
  for (const p of r.problems ?? []) {
    let list = problemsOf.get(p.file);
    if (!list) problemsOf.set(p.file, (list = []));
    list.push(p);
  }
  const suites: string[] = [];
  let totalTests = 0;
  let totalFailures = 0;
  let totalErrors = 0;
  const files = [...r.files];
  for (const file of [...byFile.keys(), ...problemsOf.keys()]) if (!files.some((x) => x.file === file)) files.push({ file, documents: 0 });
  for (const fs of files) {
    const findings = byFile.get(fs.file) ?? [];
    // one testcase per document (object) with findings, in input order
    const docs = new Map<string, Finding[]>();
    for (const f of findings) {
      const key = `${f.kind} ${f.namespace}/${f.name}`;
      let list = docs.get(key);
      if (!list) docs.set(key, (list = []));
      list.push(f);
    }
    const cases: string[] = [];
    let failures = 0;
    for (const [key, list] of docs) {
      const fails = list.filter((f) => f.severity === 'error' || r.strict);
      const warns = list.filter((f) => !(f.severity === 'error' || r.strict));
      const name = `${key} (${fs.file}:${list[0].line})`;
      let body = '';
      for (const f of fails)
        body += `\n      <failure type="${f.rule}" message="${xml(f.message)}">${xml(`${f.file}:${f.line}:${f.column}: ${f.severity} ${f.message}${f.source ? `\nsource: ${f.source}` : ''}`)}</failure>`;
      if (warns.length)
        body += `\n      <system-out>${xml(warns.map((f) => `${f.file}:${f.line}:${f.column}: warning ${f.message}`).join('\n'))}</system-out>`;
      if (fails.length) failures++;
      cases.push(`    <testcase classname="${xml(fs.file)}" name="${xml(name)}">${body}${body ? '\n    ' : ''}</testcase>`);
    }
    // an input error is a JUnit error (the test could not run), not a failure
    const errors = problemsOf.get(fs.file) ?? [];
    for (const p of errors) {
      const at = problemAt(p);
      cases.push(
        `    <testcase classname="${xml(fs.file)}" name="${xml(`input error (${at})`)}">\n      <error type="input" message="${xml(p.message)}">${xml(`${at}: error: ${p.message}`)}</error>\n    </testcase>`,
      );
    }
    const others = Math.max(0, fs.documents - docs.size);
    if (others > 0 || cases.length === 0)
      cases.push(`    <testcase classname="${xml(fs.file)}" name="${xml(`${plural(others, 'other document')} ${others === 1 ? 'passes' : 'pass'} every rule`)}"></testcase>`);
    totalTests += cases.length;
    totalFailures += failures;
    totalErrors += errors.length;
    suites.push(
      `  <testsuite name="${xml(fs.file)}" tests="${cases.length}" failures="${failures}" errors="${errors.length}" skipped="0">\n${cases.join('\n')}\n  </testsuite>`,
    );
  }
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n` +
    `<testsuites name="kagenti-webhook lint" tests="${totalTests}" failures="${totalFailures}" errors="${totalErrors}">\n` +
    `${suites.join('\n')}${suites.length ? '\n' : ''}</testsuites>\n`
  );
}

export function formatReport(format: Format, r: LintReport, opts: { color?: boolean; sarif?: SarifBase } = {}): string {
  switch (format) {
    case 'json':
      return formatJson(r);
    case 'sarif':
      return formatSarif(r, opts.sarif);
    case 'junit':
      return formatJunit(r);
    default:
      return formatText(r, opts);
  }
}
