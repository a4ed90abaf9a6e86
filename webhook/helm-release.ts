// Helm release records at admission: the same lint engine as `kagenti-webhook lint`, run by /validate over
// the manifest Helm is about to apply.
//
// `helm install|upgrade` first writes the release record: a Secret `sh.helm.release.v1.<release>.v<rev>` of
// `type: helm.sh/release.v1`, labels `owner: helm`, `name`, `status: pending-install|pending-upgrade|pending-rollback`.
// Its `data.release` is base64 (the API's encoding of Secret data) of base64 of gzip of the release JSON,
// whose `manifest` is the whole rendered stream with `# Source:` comments. (With HELM_DRIVER=configmap the
// record is a ConfigMap and the API's base64 layer is absent; both are handled.)
//
// API for the validation service:
//
//   checkHelmRelease(obj, { config, issuer }): HelmReleaseResult
//
// - `obj` is request.object of a CREATE or UPDATE (a Secret, or a ConfigMap from the configmap driver).
// - Returns `{ releaseName, namespace, status, checked, violations, warnings }`:
//   - `checked: false` (with `skipped` saying why) when the object is not a release record or its status
//     is not pending-install / pending-upgrade / pending-rollback (Helm rewrites old records as superseded: never block that).
//   - `violations`: lint findings over the manifest, each a rules.ts Violation plus `source` (the chart
//     template), `line` in the manifest, and a message that names the release and the template, e.g.
//     `[token-review-value] ConfigMap kagent/kagent-enterprise-config (Helm release kagent/kagent,
//     template kagent/templates/config.yaml): data.K8S_TOKEN_REVIEW is the YAML boolean true, ...`.
//     Severity follows config.policies: `error` → deny, `warning` → allow with a warnings entry.
//   - `warnings`: one-line strings for the AdmissionResponse (undecodable records: allowed with a warning,
//     never blocked on our own parsing).
//   Deny when any violation has severity `error` (message: the first error's message, plus `(and N more)`).
// - Pure and synchronous; decompression is capped (MAX_RELEASE_JSON) against gzip bombs. The webhook runs it in a
//   child process with a time budget (helm-check.ts), never on the event loop.
// Objects without metadata.namespace in the manifest take the release's namespace (the JSON's `namespace`,
// else the record's own namespace).
import { gunzipSync, gzipSync } from 'node:zlib';
import type { Config } from './config.ts';
import { INJECTION_RULES } from './inject.ts';
import { Linter } from './lint.ts';
import { MiB } from './manifest-stream.ts';
import type { IssuerInfo, Violation } from './rules.ts';
import { noteBeforeFix } from './rules.ts';
import { isObject } from './json.ts';
import { shown } from './admission.ts';

export const HELM_RELEASE_TYPE = 'helm.sh/release.v1';
export const PENDING_STATUSES = ['pending-install', 'pending-upgrade', 'pending-rollback'] as const;
/**
 * Largest release JSON we decompress. Helm's own limit is the 1 MiB Secret, about 750 KiB of gzip: a few MiB of
 * JSON for real charts (templates are stored base64, which compresses little), more only for a record built to be
 * large. The check runs in a child process within a time budget (helm-check.ts), and this bounds its memory.
 */
export const MAX_RELEASE_JSON = 16 * MiB;
/** Largest encoded data.release we look at. */
const MAX_ENCODED = 8 * MiB;

export interface HelmViolation extends Violation {
  /** the chart template from `# Source:` */
  source?: string;
  /** line of the offending key in the release manifest (1-based) */
  line: number;
  column: number;
}

export interface HelmReleaseResult {
  /** the release name (label `name`, else the JSON's `name`), '' when unknown */
  releaseName: string;
  namespace: string;
  status: string;
  /** whether the manifest was linted */
  checked: boolean;
  /** why it was not checked */
  skipped?: string;
  violations: HelmViolation[];
  warnings: string[];
}

/** The name every Helm 3 release record has: `sh.helm.release.v1.<release>.v<revision>`. */
export const HELM_RECORD_PREFIX = 'sh.helm.release.v1.';

/**
 * Whether an admission object is a Helm release record (Secret of type helm.sh/release.v1, or the configmap
 * driver's). A ConfigMap must also have a record's name: labels and a `release` key alone are anyone's to set,
 * and kagent's own ConfigMap dressed up that way must still get the token-review checks.
 */
/**
 * The warning on a release record the webhook let through unchecked (`[helm-release-unchecked]`): Helm is never
 * blocked on the webhook's own limits or parsing. `why` is cut to keep the line short; the fix is always kept.
 */
export function uncheckedWarning(what: string, why: string): string {
  const reason = why.length > 120 ? `${why.slice(0, 117)}...` : why;
  return `[helm-release-unchecked] ${what} was not checked: ${reason.replace(/\.$/, '')}. Its objects are still checked as Helm applies them, one by one. Fix: run kagenti-webhook lint on the chart's render to check the release as a whole.`;
}

export function isHelmRelease(obj: unknown): boolean {
  if (!isObject(obj)) return false;
  if (obj.kind === 'Secret') return obj.type === HELM_RELEASE_TYPE;
  if (obj.kind === 'ConfigMap') {
    const md = isObject(obj.metadata) ? obj.metadata : {};
    const labels = isObject(md.labels) ? md.labels : {};
    return (
      typeof md.name === 'string' && md.name.startsWith(HELM_RECORD_PREFIX) && labels.owner === 'helm' && isObject(obj.data) && typeof obj.data.release === 'string'
    );
  }
  return false;
}

class DecodeError extends Error {}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function b64(s: string, what: string): Buffer {
  const t = s.replace(/\s+/g, '');
  if (t.length % 4 !== 0 || !BASE64.test(t)) throw new DecodeError(`${what} is not base64`);
  return Buffer.from(t, 'base64');
}

/** Decodes data.release into the release JSON. Throws DecodeError. */
export function decodeRelease(obj: Record<string, any>): Record<string, any> {
  const data = isObject(obj.data) ? obj.data : undefined;
  const raw = data?.release;
  if (typeof raw !== 'string' || raw === '') throw new DecodeError('data.release is missing');
  if (raw.length > MAX_ENCODED) throw new DecodeError(`data.release is larger than ${MAX_ENCODED / MiB} MiB`);
  // Secret data arrives base64-encoded by the API; the configmap driver stores the inner layer as text
  const inner = obj.kind === 'Secret' ? b64(raw, 'data.release').toString('latin1') : raw;
  const packed = b64(inner, 'the release payload');
  let json: Buffer;
  if (packed.length >= 2 && packed[0] === 0x1f && packed[1] === 0x8b) {
    try {
      json = gunzipSync(packed, { maxOutputLength: MAX_RELEASE_JSON });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ERR_BUFFER_TOO_LARGE' || /too large|maxOutputLength/i.test(e.message))
        throw new DecodeError(`the release JSON is larger than ${MAX_RELEASE_JSON / MiB} MiB uncompressed`);
      throw new DecodeError(`the release payload is not valid gzip: ${e.message}`);
    }
  } else json = packed; // Helm reads uncompressed JSON too
  let rel: unknown;
  try {
    rel = JSON.parse(json.toString('utf8'));
  } catch {
    throw new DecodeError('the release payload is not JSON');
  }
  if (!isObject(rel)) throw new DecodeError('the release payload is not a JSON object');
  return rel;
}

/**
 * Lints the manifest of a pending Helm release record. See the top of this file for the contract.
 * Never throws.
 */
export function checkHelmRelease(obj: unknown, ctx: { config: Config; issuer: IssuerInfo }): HelmReleaseResult {
  const md = isObject(obj) && isObject(obj.metadata) ? obj.metadata : {};
  const labels = isObject(md.labels) ? md.labels : {};
  const recordName = typeof md.name === 'string' ? md.name : '';
  const recordNs = typeof md.namespace === 'string' && md.namespace ? md.namespace : 'default';
  const status = typeof labels.status === 'string' ? labels.status : '';
  const result: HelmReleaseResult = {
    releaseName: typeof labels.name === 'string' ? labels.name : '',
    namespace: recordNs,
    status,
    checked: false,
    violations: [],
    warnings: [],
  };
  if (!isObject(obj) || !isHelmRelease(obj)) {
    result.skipped = 'not a Helm release record';
    return result;
  }
  if (!(PENDING_STATUSES as readonly string[]).includes(status)) {
    result.skipped = `status ${JSON.stringify(shown(status))} is not pending-install, pending-upgrade or pending-rollback`;
    return result;
  }
  let rel: Record<string, any>;
  try {
    rel = decodeRelease(obj);
  } catch (err) {
    const why = err instanceof DecodeError ? err.message : 'unexpected error';
    result.skipped = `undecodable: ${why}`;
    result.warnings.push(uncheckedWarning(`Helm release record ${recordNs}/${recordName}`, why));
    return result;
  }
  if (!result.releaseName && typeof rel.name === 'string') result.releaseName = rel.name;
  if (typeof rel.namespace === 'string' && rel.namespace) result.namespace = rel.namespace;
  const manifest = rel.manifest;
  // Hooks (pre-install Jobs and the like) are applied by the same release: their manifests are checked too.
  // Hooks run by this operation are checked too. A pre-install hook runs before anything of the release exists,
  // so it is checked on its own (a ServiceAccount it shares with the manifest is not two agents at once); the
  // others run beside the release's objects and are checked with the manifest. Hooks this operation does not run
  // (`helm test`, delete hooks, another operation's) are not checked.
  const op = status.replace(/^pending-/, '');
  const hooks: { name: string; manifest: string; alone: boolean }[] = Array.isArray(rel.hooks)
    ? rel.hooks.flatMap((h: unknown, i: number) => {
        if (!isObject(h) || typeof h.manifest !== 'string' || !h.manifest) return [];
        const events = Array.isArray(h.events) ? h.events.filter((e: unknown): e is string => typeof e === 'string') : undefined;
        const now = events?.filter((e) => e === `pre-${op}` || e === `post-${op}`);
        if (now && !now.length) return [];
        return [{ name: typeof h.name === 'string' && h.name ? h.name : `#${i + 1}`, manifest: h.manifest, alone: !!now && now.every((e) => e === 'pre-install') }];
      })
    : [];
  if ((manifest === undefined || manifest === null || manifest === '') && !hooks.length) {
    result.checked = true;
    return result;
  }
  if (manifest !== undefined && manifest !== null && typeof manifest !== 'string') {
    result.skipped = 'undecodable: manifest is not a string';
    result.warnings.push(uncheckedWarning(`Helm release record ${recordNs}/${recordName}`, 'its manifest is not a string'));
    return result;
  }
  const releaseRef = `${result.namespace}/${result.releaseName || recordName}`;
  const newLinter = () => new Linter({ config: ctx.config, issuer: ctx.issuer, namespace: result.namespace, updatesCluster: status !== 'pending-install' });
  const main = newLinter();
  const linters: Linter[] = [main];
  const streams = [
    ...(manifest ? [{ linter: main, file: `release ${releaseRef}`, text: manifest }] : []),
    ...hooks.map((h) => ({ linter: h.alone ? newLinter() : main, file: `release ${releaseRef} hook ${h.name}`, text: h.manifest })),
  ];
  try {
    for (const st of streams) {
      st.linter.lintText(st.file, st.text);
      if (st.linter !== main) linters.push(st.linter);
    }
    for (const l of linters)
      if (l.problems.length) {
        const p = l.problems[0];
        const what = p.file === `release ${releaseRef}` ? 'manifest' : p.file.slice(`release ${releaseRef} `.length);
        const problem = p.message.length > 120 ? `${p.message.slice(0, 117)}...` : p.message;
        result.warnings.push(
          `[helm-release-unchecked] Helm release ${releaseRef}: ${what} line ${p.line ?? '?'} could not be read (${problem}), so its document was not checked; the other documents were. Fix: run kagenti-webhook lint on the chart's render to see the document.`,
        );
      }
  } catch (err) {
    result.skipped = `undecodable: ${(err as Error).message}`;
    result.warnings.push(uncheckedWarning(`Helm release ${releaseRef}`, (err as Error).message));
    return result;
  }
  result.checked = true;
  for (const f of linters.flatMap((l) => l.findings)) {
    const where = `(Helm release ${releaseRef}${f.source ? `, template ${f.source}` : ''})`;
    const head = `[${f.rule}] ${f.kind} ${f.namespace}/${f.name}`;
    const message = f.message.startsWith(`${head}: `)
      ? `${head} ${where}: ${f.message.slice(head.length + 2)}`
      : `${f.message} ${where}`;
    let text = message.replace(` defined at release ${releaseRef}:`, ' defined at manifest line ');
    // An injection denial that depends on what the record does not hold is a warning here: port-conflict,
    // reserved-name, unsupported-os, pod-resources and host-network depend on the namespace's mode label (ports,
    // container names, which containers are injected, if any: no proxy in waypoint mode, so a hostNetwork pod is
    // admitted; nothing with spiffe-helper opted out too), and on an upgrade or
    // rollback any of them may be on a pod template the release does not change (not denied at /validate either).
    // /validate checks each workload again as Helm applies it, with both. A new install's mode-independent ones deny.
    // dedicated-service-account on an upgrade or rollback likewise: /validate warns an UPDATE of a workload on
    // "default" that leaves its pod template as it was (and denies one that changes it, or moves an agent onto
    // "default"), which the record cannot tell apart.
    // And a token finding on a ConfigMap an upgrade updates and marks immutable: if it already is in the cluster,
    // /validate warns its UPDATE (it can change only metadata) and the fix is to recreate it; if this upgrade makes it
    // immutable, /validate denies the UPDATE as usual (it reads immutable from the old object, which the record does
    // not hold). The message gives both fixes.
    const warnedHere =
      f.severity === 'error' &&
      (((INJECTION_RULES as readonly string[]).includes(f.rule) && (status !== 'pending-install' || MODE_DEPENDENT.has(f.rule))) ||
        (f.rule === 'dedicated-service-account' && status !== 'pending-install') ||
        f.immutable === true);
    if (warnedHere) text = noteBeforeFix(text, `Not denied here: /validate checks the ${f.kind === 'ConfigMap' ? 'ConfigMap' : 'workload'} again as Helm applies it.`);
    const v: HelmViolation = {
      rule: f.rule,
      severity: warnedHere ? 'warning' : f.severity,
      message: text,
      path: f.path,
      kind: f.kind,
      namespace: f.namespace,
      name: f.name,
      line: f.line,
      column: f.column,
    };
    if (f.source) v.source = f.source;
    result.violations.push(v);
  }
  return result;
}

/** Injection denials that depend on the namespace's kagenti.io/authbridge-mode label, which a release record does not hold. */
const MODE_DEPENDENT = new Set<string>(['port-conflict', 'reserved-name', 'unsupported-os', 'pod-resources', 'host-network', 'istio-sidecar']);

/** Encodes a release JSON as Helm stores it in a Secret's data.release (for tests and tools). */
export function encodeReleaseForSecret(release: unknown): string {
  const inner = gzipSync(Buffer.from(JSON.stringify(release))).toString('base64');
  return Buffer.from(inner).toString('base64');
}
