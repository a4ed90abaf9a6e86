// Shared test helpers: an in-process HTTPS webhook with certificates from the project's own generator,
// an AdmissionReview client that verifies TLS against that CA, the real `kubectl patch --local`, and a
// structural validity check of pods (what the API server validates after applying a webhook patch).
import { execFileSync, spawnSync } from 'node:child_process';
import { webcrypto } from 'node:crypto';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { AdmissionRequest, KubeObject } from '../webhook/admission.ts';
import { continuationPrefix } from '../webhook/admission.ts';
import { getPodTemplate } from '../webhook/workloads.ts';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { generateCertificates } from '../webhook/certs.ts';
import type { Config } from '../webhook/config.ts';
import { defaultConfig } from '../webhook/config.ts';
import { silentLogger } from '../webhook/log.ts';
import { LOG_SERIALIZERS } from '../webhook/log-fields.ts';
import { Writable } from 'node:stream';
import pino from 'pino';
import type { RunningServer, ServerOptions } from '../webhook/server.ts';
import { startServer } from '../webhook/server.ts';
import type { ValidationService } from '../webhook/validation.ts';
import { startValidation } from '../webhook/validation.ts';

export const ROOT = new URL('..', import.meta.url).pathname;
export const BIN = join(ROOT, 'bin', 'kagenti-webhook.js');
export const SERVER_NAME = 'kagenti-webhook.kagenti-system.svc';

/**
 * Copies the checkout's manifests/ (or `src`, a directory laid out as it is) to `dest` (which must not exist), without what is not part of it: the `.test-*`
 * directories a test may have left there, and the git-ignored certificates of `make certs` (manifests/self-signed/
 * certs). Tests change or add overlays in such a copy, never in the checkout: `npm test` runs two test files at once,
 * and a directory that appears or vanishes under a copy being made breaks it.
 */
export function copyManifests(dest: string, src = join(ROOT, 'manifests')): void {
  const certs = join(src, 'self-signed', 'certs');
  cpSync(src, dest, { recursive: true, filter: (from) => from !== certs && !basename(from).startsWith('.test-') });
}

/**
 * `p`, or a rejection naming `what` once `ms` have passed without it settling: a wait for an event that never comes
 * (a connection that is never closed, a process that never exits) fails its test instead of hanging the run. A bound,
 * not a timing assertion: `ms` is far over what the event takes on a busy machine.
 */
export async function within<T>(p: Promise<T>, what: string, ms = 30_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`gave up waiting for ${what} after ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

let certsPromise: ReturnType<typeof generateCertificates> | undefined;
/** One CA + serving certificate per test process, from the project's own generator. */
export function testCerts() {
  certsPromise ??= generateCertificates({ service: 'kagenti-webhook', namespace: 'kagenti-system', dev: true });
  return certsPromise;
}

export interface TestServer {
  server: RunningServer;
  port: number;
  ca: string;
  post(path: string, body: unknown | string | Buffer): Promise<{ status: number; body: any; text: string }>;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests poke at optional fields freely
  review(path: string, request: Record<string, unknown>): Promise<any>;
  close(): Promise<void>;
}

export function postTls(
  port: number,
  ca: string,
  path: string,
  payload: string | Buffer,
  headers: Record<string, string> = {},
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'POST',
        ca,
        servername: SERVER_NAME,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...headers },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * What a test may set on the in-process server besides its config and validation service. `tls` replaces the test
 * certificates (the returned `ca` and `post` then no longer fit it); `onHttpsServer` is where serve attaches its
 * CertificateReloader.
 */
export interface TestServerOptions extends Partial<Pick<ServerOptions, 'handshakeReportMs' | 'clientErrorReportMs' | 'onHttpsServer' | 'tls'>> {
  /** The server's (and a validation service started here's) logger; silent by default. */
  log?: pino.Logger;
}

/** Starts the real HTTPS server in-process on a random port (probe port random too). */
export async function startTestServer(
  config: Config = defaultConfig(),
  validation?: ValidationService,
  options: TestServerOptions = {},
): Promise<TestServer> {
  const certs = await testCerts();
  const { log = silentLogger(), tls = { cert: certs.tlsCert, key: certs.tlsKey }, ...serverOptions } = options;
  const svc = validation ?? (await startValidation({ config, log, cluster: 'none' }));
  const server = await startServer({
    config,
    log,
    validation: svc,
    host: '127.0.0.1',
    port: 0,
    probePort: 0,
    tls,
    ...serverOptions,
  });
  const post = async (path: string, body: unknown) => {
    const payload = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
    const r = await postTls(server.port, certs.caCert, path, payload);
    let parsed: any;
    try {
      parsed = JSON.parse(r.text);
    } catch {
      parsed = undefined;
    }
    return { status: r.status, body: parsed, text: r.text };
  };
  return {
    server,
    port: server.port,
    ca: certs.caCert,
    post,
    review: async (path, request) => {
      const r = await post(path, { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request });
      if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${r.text}`);
      return r.body.response;
    },
    close: async () => {
      await server.close(1000);
      await svc.close();
    },
  };
}

let uidCounter = 0;
/** An AdmissionReview request for a Pod CREATE, as the API server sends it. */
export function podCreateRequest(pod: KubeObject, namespace?: string): Record<string, unknown> {
  const ns = namespace ?? pod.metadata?.namespace ?? 'default';
  return {
    uid: `test-${++uidCounter}-${Date.now()}`,
    kind: { group: '', version: 'v1', kind: 'Pod' },
    resource: { group: '', version: 'v1', resource: 'pods' },
    requestKind: { group: '', version: 'v1', kind: 'Pod' },
    name: pod.metadata?.name ?? '',
    namespace: ns,
    operation: 'CREATE',
    userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller' },
    object: pod,
    oldObject: null,
    dryRun: false,
    options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
  };
}

/** Applies a JSON patch with the real `kubectl patch --local` (the API server's patch library). */
export function kubectlPatch(obj: KubeObject, patch: unknown[]): KubeObject {
  const dir = mkdtempSync(join(tmpdir(), 'kw-patch-'));
  try {
    const objFile = join(dir, 'obj.json');
    const patchFile = join(dir, 'patch.json');
    writeFileSync(objFile, JSON.stringify(obj));
    writeFileSync(patchFile, JSON.stringify(patch));
    const out = execFileSync(
      'kubectl',
      // --show-managed-fields: kubectl leaves metadata.managedFields out of its output otherwise, and a patch that
      // dropped them would go unseen.
      ['patch', '--local', '-f', objFile, '--type', 'json', '--patch-file', patchFile, '-o', 'json', '--show-managed-fields'],
      { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    return JSON.parse(out);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function decodePatch(response: { patch?: string }): unknown[] {
  return response.patch ? JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) : [];
}

/**
 * A copy of a pod with the v1 defaults the API server applies after every mutating webhook's patch (and before
 * it calls a webhook again on reinvocation): the container, volume and pod fields of SetDefaults_* that can
 * touch a pod like ours. Not every default, but every one that reaches what the injection writes.
 */
export function apiServerDefaults(pod: KubeObject): KubeObject {
  const out = structuredClone(pod);
  const spec = (out.spec ??= {});
  spec.restartPolicy ??= 'Always';
  spec.terminationGracePeriodSeconds ??= 30;
  spec.dnsPolicy ??= 'ClusterFirst';
  spec.securityContext ??= {};
  spec.schedulerName ??= 'default-scheduler';
  spec.enableServiceLinks ??= true;
  for (const list of ['containers', 'initContainers', 'ephemeralContainers'])
    for (const c of spec[list] ?? []) {
      c.terminationMessagePath ??= '/dev/termination-log';
      c.terminationMessagePolicy ??= 'File';
      if (c.imagePullPolicy === undefined) {
        const tag = /:([^:/@]+)$/.exec(String(c.image ?? ''))?.[1];
        c.imagePullPolicy = tag === undefined || tag === 'latest' ? 'Always' : 'IfNotPresent';
      }
      for (const port of c.ports ?? []) port.protocol ??= 'TCP';
      for (const e of c.env ?? []) if (e.valueFrom?.fieldRef) e.valueFrom.fieldRef.apiVersion ??= 'v1';
    }
  for (const v of spec.volumes ?? []) {
    for (const k of ['configMap', 'secret', 'downwardAPI', 'projected']) if (v[k]) v[k].defaultMode ??= 420;
    for (const item of v.downwardAPI?.items ?? []) if (item.fieldRef) item.fieldRef.apiVersion ??= 'v1';
  }
  return out;
}

/** A Kubernetes quantity as a number (the suffixes resources use: m, k/M/G/T, Ki/Mi/Gi/Ti). */
export function quantity(q: string | number): number {
  const m = /^([0-9.]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(String(q));
  if (!m) return NaN;
  const unit: Record<string, number> = { m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };
  return Number(m[1]) * (m[2] ? unit[m[2]]! : 1);
}

/** What the API server would reject in a pod spec after mutation; [] when valid. */
export function podProblems(pod: KubeObject): string[] {
  const problems: string[] = [];
  const spec = pod.spec ?? {};
  const containers: KubeObject[] = spec.containers ?? [];
  const inits: KubeObject[] = spec.initContainers ?? [];
  const ephemeral: KubeObject[] = spec.ephemeralContainers ?? [];
  const volumes: KubeObject[] = spec.volumes ?? [];
  const names = new Set<string>();
  for (const c of [...containers, ...inits, ...ephemeral]) {
    if (names.has(c.name)) problems.push(`duplicate container name ${c.name}`);
    names.add(c.name);
  }
  const vnames = new Set<string>();
  for (const v of volumes) {
    if (vnames.has(v.name)) problems.push(`duplicate volume name ${v.name}`);
    vnames.add(v.name);
    if (v.csi && v.csi.readOnly !== true) problems.push(`CSI volume ${v.name} is not readOnly`);
  }
  for (const c of [...containers, ...inits]) {
    for (const m of c.volumeMounts ?? []) if (!vnames.has(m.name)) problems.push(`${c.name} mounts missing volume ${m.name}`);
    for (const p of c.ports ?? []) if (p.name && p.name.length > 15) problems.push(`${c.name} port name ${p.name} longer than 15`);
    const paths = (c.volumeMounts ?? []).map((m: KubeObject) => m.mountPath);
    for (const [i, path] of paths.entries()) if (paths.indexOf(path) !== i) problems.push(`${c.name} mounts ${path} twice`);
    for (const [r, limit] of Object.entries((c.resources?.limits ?? {}) as Record<string, string>)) {
      const request = c.resources?.requests?.[r];
      if (request !== undefined && quantity(request) > quantity(limit)) problems.push(`${c.name} requests more ${r} (${request}) than its limit (${limit})`);
    }
  }
  for (const c of containers) if (c.restartPolicy !== undefined) problems.push(`container ${c.name} has restartPolicy`);
  problems.push(...podLevelResourceProblems(spec));
  for (const c of inits)
    if (c.restartPolicy !== undefined && c.restartPolicy !== 'Always') problems.push(`init container ${c.name} restartPolicy ${c.restartPolicy}`);
  return problems;
}

/**
 * The API server's pod-level resources checks (PodLevelResources on; validatePodResourceConsistency), written apart
 * from webhook/pod-resources.ts as a second opinion, on the pod-level values the pod carries (not defaulted here):
 * a pod-level cpu/memory request below the containers' aggregate (KEP-753: regular and restartable init containers
 * summed, or an init container's need if larger), and a regular container's limit above the pod-level limit.
 */
export function podLevelResourceProblems(spec: KubeObject): string[] {
  const pod = spec.resources;
  if (!pod || typeof pod !== 'object') return [];
  const problems: string[] = [];
  const req = (c: KubeObject, r: string): number => quantity(c.resources?.requests?.[r] ?? c.resources?.limits?.[r] ?? 0);
  for (const r of ['cpu', 'memory']) {
    const regular = (spec.containers ?? []).reduce((n: number, c: KubeObject) => n + req(c, r), 0);
    let sidecars = 0;
    let init = 0;
    let total = regular;
    for (const c of spec.initContainers ?? []) {
      if (c.restartPolicy === 'Always') {
        sidecars += req(c, r);
        total += req(c, r);
        init = Math.max(init, sidecars);
      } else init = Math.max(init, sidecars + req(c, r));
    }
    const aggregate = Math.max(total, init);
    const podRequest = pod.requests?.[r];
    // a float sum: allow for rounding (the quantities used in tests are far apart otherwise)
    if (podRequest !== undefined && aggregate > quantity(podRequest) * (1 + 1e-9))
      problems.push(`spec.resources.requests[${r}] ${podRequest} is below the aggregate container requests ${aggregate}`);
    const podLimit = pod.limits?.[r];
    if (podLimit !== undefined)
      for (const c of spec.containers ?? []) {
        const l = c.resources?.limits?.[r];
        if (l !== undefined && quantity(l) > quantity(podLimit)) problems.push(`${c.name} limit ${r} ${l} is above the pod limit ${podLimit}`);
      }
  }
  return problems;
}

/** Runs the CLI (the built bin) with stdin; returns code, stdout, stderr. */
export function runCli(args: string[], input?: string): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    input,
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    env: { ...process.env, NO_COLOR: '1' },
    // A command that should have exited but hangs fails its test (code -1) instead of the whole run.
    timeout: 120_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A JSON log line as pino writes it. */
export type Line = Record<string, unknown> & { level: number; msg: string };

/** A real pino logger whose lines the test can read back (parsed). */
export function capturingLogger(level = 'info'): { log: pino.Logger; lines: () => Line[] } {
  const out: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      out.push(String(chunk));
      cb();
    },
  });
  return {
    log: pino({ level, serializers: LOG_SERIALIZERS }, stream),
    lines: () =>
      out
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Line),
  };
}

/**
 * An answer's warning lines as one text, a message a line: continuation lines of a long message repeat its
 * `[name] Kind ns/name: ` (continuationPrefix), dropped here.
 */
export function joinWarnings(warnings: readonly string[]): string {
  const messages: string[] = [];
  for (const w of warnings) {
    const cur = messages.at(-1);
    // a continuation line starts with the prefix the server made from the whole message: `[rule] label: ` (or
    // `[rule] `); the first line alone may end inside the message's head, so the label is checked on the message
    // with this line's text added
    const m = /^(\[[a-z][a-z-]*\] )((?:[A-Z][A-Za-z]* )?[^\s:]+: )?/.exec(w);
    let joined = false;
    if (cur !== undefined && m && cur.startsWith(m[1]!))
      for (const p of m[2] ? [m[0], m[1]!] : [m[1]!]) {
        const candidate = `${cur} ${w.slice(p.length)}`;
        if (continuationPrefix(candidate) === p) {
          messages[messages.length - 1] = candidate;
          joined = true;
          break;
        }
      }
    if (!joined) messages.push(w);
  }
  return messages.join('\n');
}

/**
 * The pod a workload's controller creates from its template (generateName, namespace; a StatefulSet's
 * volumeClaimTemplates as persistentVolumeClaim volumes in place of template volumes of the same name, first);
 * a Pod as it is; null for what has no pod template.
 */
export function podOfWorkload(obj: KubeObject): KubeObject | null {
  const tpl = getPodTemplate(obj);
  if (!tpl) return null;
  if (obj.kind === 'Pod') return obj;
  const md = structuredClone(tpl.template.metadata ?? {});
  md.generateName = `${obj.metadata?.name ?? 'workload'}-`;
  md.namespace = obj.metadata?.namespace ?? 'default';
  const spec = structuredClone(tpl.template.spec);
  const claims: string[] = obj.kind === 'StatefulSet' ? (obj.spec?.volumeClaimTemplates ?? []).map((c: KubeObject) => c.metadata.name) : [];
  if (claims.length)
    spec.volumes = [
      ...claims.map((c) => ({ name: c, persistentVolumeClaim: { claimName: `${c}-${obj.metadata.name}-0` } })),
      ...(spec.volumes ?? []).filter((v: KubeObject) => !claims.includes(v.name)),
    ];
  return { apiVersion: 'v1', kind: 'Pod', metadata: md, spec };
}

let deploymentUid = 0;
/**
 * A Deployment's `/validate` request as the API server sends it: a CREATE, or an UPDATE whose old object is the same
 * (a label or reconcile that changes nothing of the template). Each gets a uid of its own.
 */
export function deploymentRequest(obj: Record<string, any>, operation: 'CREATE' | 'UPDATE' = 'CREATE'): AdmissionRequest {
  return {
    uid: `d${++deploymentUid}`,
    kind: { group: 'apps', version: 'v1', kind: 'Deployment' },
    operation,
    namespace: obj.metadata.namespace,
    name: obj.metadata.name,
    object: { apiVersion: 'apps/v1', kind: 'Deployment', ...obj },
    oldObject: operation === 'UPDATE' ? { apiVersion: 'apps/v1', kind: 'Deployment', ...obj } : null,
  };
}

const DAY_MS = 86_400_000;
let pairCount = 0;

/**
 * A self-signed P-256 pair named CN=kagenti-webhook.kagenti-system.svc, PEM: with `extensions` as given (none by
 * default: no subjectAltName), valid from `notBefore` (a day ago) to `notAfter` (in 90 days).
 */
export async function selfSignedPair(opts: { extensions?: x509.Extension[]; notBefore?: Date; notAfter?: Date } = {}): Promise<{ cert: string; key: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: 'CN=kagenti-webhook.kagenti-system.svc',
    keys,
    signingAlgorithm: alg,
    notBefore: opts.notBefore ?? new Date(Date.now() - DAY_MS),
    notAfter: opts.notAfter ?? new Date(Date.now() + 90 * DAY_MS),
    serialNumber: (0x10000000 + ((Date.now() + ++pairCount) % 0x0fffffff)).toString(16),
    extensions: opts.extensions ?? [],
  });
  const key = x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY');
  return { cert: cert.toString('pem'), key };
}
