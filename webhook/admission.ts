// The AdmissionReview v1 envelope: parse and check a request body, build responses.
// No I/O here; the server turns AdmissionError into HTTP 400 and everything else into a response.
import type { Operation } from 'fast-json-patch';
import { objectName } from './identity.ts';
import { isObject } from './json.ts';
import { patchJson } from './patch.ts';

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';

export type KubeObject = Record<string, any>;

export interface GroupVersionKind {
  group: string;
  version: string;
  kind: string;
}

export interface AdmissionRequest {
  uid: string;
  kind: GroupVersionKind;
  resource?: { group: string; version: string; resource: string };
  subResource?: string;
  name?: string;
  namespace?: string;
  operation: 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT' | string;
  userInfo?: { username?: string; uid?: string; groups?: string[] };
  object?: KubeObject | null;
  oldObject?: KubeObject | null;
  dryRun?: boolean;
  options?: unknown;
}

export interface AdmissionStatus {
  code: number;
  reason: string;
  message: string;
}

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  status?: AdmissionStatus;
  patchType?: 'JSONPatch';
  patch?: string;
  warnings?: string[];
  auditAnnotations?: Record<string, string>;
}

export interface AdmissionReviewResponse {
  apiVersion: typeof ADMISSION_API_VERSION;
  kind: 'AdmissionReview';
  response: AdmissionResponse;
}

/** A request that is not a usable AdmissionReview v1: the server answers HTTP 400 with this message. */
export class AdmissionError extends Error {
  readonly httpStatus: number;
  constructor(message: string, httpStatus = 400) {
    super(message);
    this.name = 'AdmissionError';
    this.httpStatus = httpStatus;
  }
}

/** AdmissionRequest operations (admission.k8s.io/v1). */
export const OPERATIONS = ['CREATE', 'UPDATE', 'DELETE', 'CONNECT'] as const;

/**
 * A value the client sent, quoted for an error message: a string cut at 40 characters, anything else by its JSON
 * type. The 400 and its log line never carry more than that of what the client sent (a 3 MiB `kind` was repeated
 * whole in both).
 */
function quoted(v: unknown): string {
  if (typeof v === 'string') return `${JSON.stringify(v.slice(0, 40))}${v.length > 40 ? ' (cut)' : ''}`;
  if (v === undefined || v === null) return 'null';
  return Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

/** Checks the envelope of a parsed body and returns its request. Throws AdmissionError when it is not one. */
export function parseAdmissionReview(body: unknown): AdmissionRequest {
  if (!isObject(body)) throw new AdmissionError('request body must be a JSON object (an AdmissionReview)');
  if (body.kind !== 'AdmissionReview') throw new AdmissionError(`expected kind AdmissionReview, got ${quoted(body.kind)}`);
  if (body.apiVersion !== ADMISSION_API_VERSION)
    throw new AdmissionError(`expected apiVersion ${ADMISSION_API_VERSION}, got ${quoted(body.apiVersion)}; configure admissionReviewVersions: [v1]`);
  const req = body.request;
  if (!isObject(req)) throw new AdmissionError('AdmissionReview has no request object');
  if (typeof req.uid !== 'string' || req.uid === '') throw new AdmissionError('request.uid is missing or not a string');
  if (!isObject(req.kind) || typeof req.kind.kind !== 'string')
    throw new AdmissionError('request.kind is missing or has no kind');
  if (typeof req.operation !== 'string') throw new AdmissionError('request.operation is missing or not a string');
  // The operation is a metric label: only the four the API server sends, so a client cannot mint label values.
  if (!(OPERATIONS as readonly string[]).includes(req.operation))
    throw new AdmissionError(`request.operation must be one of ${OPERATIONS.join(', ')}, got ${quoted(req.operation)}`);
  if (req.object !== undefined && req.object !== null && !isObject(req.object))
    throw new AdmissionError('request.object must be an object');
  if (req.oldObject !== undefined && req.oldObject !== null && !isObject(req.oldObject))
    throw new AdmissionError('request.oldObject must be an object');
  for (const k of ['namespace', 'name', 'subResource'] as const)
    if (req[k] !== undefined && req[k] !== null && typeof req[k] !== 'string')
      throw new AdmissionError(`request.${k} must be a string`);
  if (req.userInfo !== undefined && req.userInfo !== null && !isObject(req.userInfo))
    throw new AdmissionError('request.userInfo must be an object');
  if (req.dryRun !== undefined && req.dryRun !== null && typeof req.dryRun !== 'boolean')
    throw new AdmissionError('request.dryRun must be a boolean');
  return req as unknown as AdmissionRequest;
}

export function review(response: AdmissionResponse): AdmissionReviewResponse {
  return { apiVersion: ADMISSION_API_VERSION, kind: 'AdmissionReview', response };
}

/**
 * The response allowWithPatch built last and the base64 patch it put there. One slot, no WeakMap: the server
 * serializes each response right after building it, and a WeakMap entry per admission would load every
 * garbage collection until the next full one.
 */
let lastEncoded: { response: AdmissionResponse | undefined; patch: string } = { response: undefined, patch: '' };

/**
 * JSON.stringify(review(response)), byte for byte. A patch allowWithPatch encoded (and not replaced since) is
 * put in as it is: JSON.stringify would scan its 5 KB or more for characters to escape, and base64 has none.
 */
export function reviewJson(response: AdmissionResponse): string {
  const patch = response.patch;
  if (patch === undefined || lastEncoded.response !== response || lastEncoded.patch !== patch) return JSON.stringify(review(response));
  let text = `{"apiVersion":"${ADMISSION_API_VERSION}","kind":"AdmissionReview","response":{"uid":${JSON.stringify(response.uid)},"allowed":${response.allowed === true}`;
  for (const key in response) {
    if (key === 'uid' || key === 'allowed') continue;
    if (key === 'patch') {
      text += `,"patch":"${patch}"`;
      continue;
    }
    const json = JSON.stringify((response as unknown as Record<string, unknown>)[key]);
    if (json !== undefined) text += `,${JSON.stringify(key)}:${json}`;
  }
  return `${text}}}`;
}

/** kubectl shows each warning on a line of its own; longer ones may be cut by clients (admission-protocol.md). */
export const WARNING_MAX = 120;

/**
 * Splits a message into warnings of at most WARNING_MAX characters: at sentence ends, else at spaces, and a
 * word longer than a line is cut. Continuation lines start with `[rule] ` when a rule is given or the message
 * begins with one.
 */
export function toWarnings(message: string, rule?: string): string[] {
  if (message.length <= WARNING_MAX) return [message];
  // a message that begins with its `[rule] ` (as every rule's and injection warning's does) names it itself
  rule ??= /^\[([a-z][a-z-]{0,62})\] /.exec(message)?.[1];
  const prefix = rule ? `[${rule}] ` : '';
  const room = WARNING_MAX - prefix.length;
  const pieces = message.split(/(?<=\.)\s+(?=[A-Z"[])/).flatMap((s) => wrap(s, room));
  const out: string[] = [];
  let cur = '';
  for (const s of pieces) {
    if (!cur) cur = s;
    else if (cur.length + 1 + s.length <= WARNING_MAX) cur += ` ${s}`;
    else {
      out.push(cur);
      cur = `${prefix}${s}`;
    }
  }
  if (cur) out.push(cur);
  return out;
}

/**
 * Lines of at most `max` characters, broken at spaces (a longer word is cut; spaces at a break are dropped).
 * Slices of the text, not words joined again: a warning is wrapped on every admission that carries it.
 */
export function wrap(text: string, max: number): string[] {
  if (text.length <= max) return [text];
  const lines: string[] = [];
  let start = 0;
  for (;;) {
    while (text.charCodeAt(start) === 0x20) start++;
    if (text.length - start <= max) break;
    const cut = text.lastIndexOf(' ', start + max);
    if (cut <= start) {
      lines.push(text.slice(start, start + max));
      start += max;
    } else {
      let end = cut;
      while (end > start && text.charCodeAt(end - 1) === 0x20) end--;
      lines.push(text.slice(start, end));
      start = cut + 1;
    }
  }
  if (start < text.length) lines.push(text.slice(start));
  return lines;
}

/**
 * Warning lines one answer carries at most. The API server keeps about 4 KB of an answer's warnings and drops the
 * rest; a hostile pod (thousands of containers, a megabyte-long name) would otherwise make a megabyte of them.
 */
export const MAX_WARNING_LINES = 40;
/** Characters of a denial's message at most (a person reads it; hostile input could make it megabytes). */
export const MAX_MESSAGE = 16 * 1024;

/** The warnings, each of them fitted into WARNING_MAX characters, at most MAX_WARNING_LINES of them. */
function fitted(warnings: string[]): string[] {
  const lines = warnings.every((w) => w.length <= WARNING_MAX) ? warnings : warnings.flatMap((w) => toWarnings(w));
  if (lines.length <= MAX_WARNING_LINES) return lines;
  return [...lines.slice(0, MAX_WARNING_LINES - 1), `(${lines.length - MAX_WARNING_LINES + 1} more warning lines are not sent.)`];
}

/** A denial's message, cut to MAX_MESSAGE characters with a note that it was. */
function fittedMessage(message: string): string {
  if (message.length <= MAX_MESSAGE) return message;
  return `${message.slice(0, MAX_MESSAGE - 60)} ... (cut: the message has ${message.length} characters)`;
}

export function allow(uid: string, warnings: string[] = []): AdmissionResponse {
  const r: AdmissionResponse = { uid, allowed: true };
  if (warnings.length) r.warnings = fitted(warnings);
  return r;
}

export function allowWithPatch(uid: string, patch: readonly unknown[], warnings: string[] = []): AdmissionResponse {
  const r = allow(uid, warnings);
  if (patch.length) {
    r.patchType = 'JSONPatch';
    r.patch = base64(patchJson(patch as Operation[]));
    lastEncoded = { response: r, patch: r.patch };
  }
  return r;
}

/** One buffer, reused: the UTF-8 of each patch goes there on its way to base64 (no allocation per patch). */
const scratch = Buffer.allocUnsafe(64 * 1024);

function base64(text: string): string {
  // at most 3 bytes of UTF-8 per UTF-16 unit; a larger patch (rare) gets a buffer of its own
  if (text.length * 3 > scratch.length) return Buffer.from(text).toString('base64');
  const n = scratch.write(text, 0, 'utf8');
  return scratch.toString('base64', 0, n);
}

/** A denial as kubectl shows it: `Error from server (Forbidden): ... denied the request: <message>`. */
export function deny(uid: string, message: string, warnings: string[] = []): AdmissionResponse {
  const r: AdmissionResponse = { uid, allowed: false, status: { code: 403, reason: 'Forbidden', message: fittedMessage(message) } };
  if (warnings.length) r.warnings = fitted(warnings);
  return r;
}

/**
 * A name as a message shows it: whole up to 253 characters (the longest a Kubernetes name can be), else its start
 * and its length. The API server checks names after the mutating webhooks, so a request can carry any length.
 */
export function shown(name: string): string {
  return name.length <= 253 ? name : `${name.slice(0, 60)}...(${name.length} characters)`;
}

/** `Kind namespace/name` (or generateName…) for messages and logs. */
export function objectRef(kind: string, obj: KubeObject | null | undefined, fallbackNs?: string): string {
  const md = isObject(obj?.metadata) ? (obj!.metadata as Record<string, unknown>) : {};
  const ns = typeof md.namespace === 'string' && md.namespace ? md.namespace : fallbackNs;
  const name = shown(objectName(obj));
  return ns ? `${kind} ${shown(ns)}/${name}` : `${kind} ${name}`;
}

/**
 * `Kind namespace/name` of an admission request, for messages: its name, else its object's as objectRef gives it
 * (`<generateName><generated>` for a create with generateName, whose request has no name yet).
 */
export function requestRef(req: AdmissionRequest | null | undefined): string {
  const kind = typeof req?.kind?.kind === 'string' && req.kind.kind ? req.kind.kind : 'object';
  const ns = typeof req?.namespace === 'string' && req.namespace ? req.namespace : undefined;
  const obj = typeof req?.name === 'string' && req.name ? { metadata: { name: req.name } } : isObject(req?.object) ? req.object : req?.oldObject;
  return objectRef(kind, obj, ns);
}

/** What a handler decided, for the response, the metrics and the one log line per admission. */
export interface Decision {
  response: AdmissionResponse;
  /** metrics/log label: `allowed` (unchanged), `patched`, `denied`, `warned` (allowed with warnings, no patch),
   *  `error` (the webhook could not evaluate the object: denied with HTTP 500, see internalError) */
  result: 'allowed' | 'patched' | 'denied' | 'warned' | 'error';
  /** rule names that fired (denied or warned), each once */
  rules?: string[];
  /** one rule name per violation, for `rule_violations_total` (as /validate counts); `rules` when not set */
  violations?: string[];
  /** extra fields for the log line: injected pieces, skip reason, mode... */
  detail?: Record<string, unknown>;
}

export function decisionFor(response: AdmissionResponse, rules: string[] = [], detail?: Record<string, unknown>): Decision {
  const result = !response.allowed ? 'denied' : response.patch ? 'patched' : response.warnings?.length ? 'warned' : 'allowed';
  return { response, result, rules, detail };
}

/**
 * The answer when the webhook could not evaluate an object: denied (fail closed: never admitted unchecked) with
 * HTTP 500 InternalError, rule `internal-error`, and result `error`, so it is not counted among policy denials.
 */
export function internalError(uid: string, message: string, detail?: Record<string, unknown>): Decision {
  const response = deny(uid, message);
  response.status = { code: 500, reason: 'InternalError', message };
  return { response, result: 'error', rules: ['internal-error'], detail };
}
