// The AdmissionReview v1 envelope: parse and check a request body, build responses.
// No I/O here; the server turns AdmissionError into HTTP 400 and everything else into a response.
import type { Operation } from 'fast-json-patch';
import { objectName } from './identity.ts';
import { isObject, printable } from './json.ts';
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
 * word longer than a line is cut. Every continuation line starts with the rule (`[rule] `, when a rule is given
 * or the message begins with one) and, when the message begins `[rule] Kind namespace/name: `, that object's kind,
 * namespace and name (continuationPrefix):
 * kubectl shows a warning text once per run and the API server keeps it once per request, so a continuation line
 * that two objects' messages share ("... and agent callbacks fail with 401.") would be shown for the first only.
 * `prefix`: the continuation lines' start when the caller knows it (a message that begins with the short label
 * continuationPrefix made already, `[rule] name16~hash: `, from which the label cannot be found again).
 */
export function toWarnings(message: string, rule?: string, prefix?: string): string[] {
  if (message.length <= WARNING_MAX) return [message];
  prefix ??= continuationPrefix(message, rule);
  // a flag and its value (`--cluster none`) are one word to the wrapping: the space between them is GLUE meanwhile
  const glued = !message.includes(GLUE) && FLAG_VALUE.test(message);
  if (glued) message = message.replace(FLAG_VALUE, `$1${GLUE}`);
  const room = WARNING_MAX - prefix.length;
  const out: string[] = [];
  let cur = '';
  for (const s of message.split(/(?<=\.)\s+(?=[A-Z"[])/)) {
    if (cur && cur.length + 1 + s.length <= WARNING_MAX) {
      cur += ` ${s}`;
      continue;
    }
    if (cur) out.push(cur);
    // the first line is the message's start, which names the rule and object itself: the whole width is its own
    const lead = out.length === 0 ? '' : prefix;
    // a URL or a quoted value is never cut (copied from the terminal, a cut one is wrong): such a sentence is wrapped
    // word by word, one that does not fit going to a line of its own, up to the API server's WARNING_LIMIT
    const lines = s.length <= WARNING_MAX - lead.length
      ? [s] // fits: nothing to cut
      : s.length <= 65_536 && KEEP_WHOLE.test(s)
      ? wrapWhole(s, WARNING_MAX - lead.length, room, WARNING_LIMIT - lead.length, WARNING_LIMIT - prefix.length)
      : wrapFirst(s, WARNING_MAX - lead.length, room);
    for (let i = 0; i < lines.length - 1; i++) out.push((i === 0 ? lead : prefix) + lines[i]);
    cur = (lines.length === 1 ? lead : prefix) + lines[lines.length - 1];
  }
  if (cur) out.push(cur);
  return glued ? out.map((l) => l.replaceAll(GLUE, ' ')) : out;
}

/** A command-line flag and the space before its value (`--cluster none`; `--cluster=none` has none to keep). */
const FLAG_VALUE = /((?:^|[ (])--[a-z][a-z0-9-]{0,40}) (?=[a-z0-9])/g;
/** Stands for a space no line may break at, while toWarnings wraps (a private-use character: no message has one). */
const GLUE = '\ue000';

/**
 * What each continuation line of a message starts with: `[rule] ` and, for a message that begins `[rule] Kind
 * ns/name: ` (or `[rule] Kind ns/name (Helm release ..., template ...): `), a label of that object: `Kind ns/name`
 * (`Kind/name` for one without a namespace) when at most MAX_LABEL characters (a chart's Deployment and CronJob often
 * share a name; one base rendered into two namespaces by `kubectl apply -k` makes the same kind and name twice), else
 * the name's first 16 and `~` with 6 hex digits of a hash of that whole label (Helm names share long prefixes:
 * `<release>-<chart>-...`). Short, so the line keeps room for the text; distinct for the objects of one apply.
 */
export function continuationPrefix(message: string, rule?: string): string {
  const head = /^\[([a-z][a-z-]{0,62})\] (?:([A-Z][A-Za-z]{0,62}) (?:([^\s:()/]{1,300})\/)?([^\s:()/]{1,600})(?: \([^()]{0,600}\))?: )?/.exec(message);
  rule ??= head?.[1];
  if (!rule) return '';
  const name = head?.[1] === rule ? head[4] : undefined;
  if (name === undefined) return `[${rule}] `;
  const ns = head![3];
  const label = ns === undefined ? `${head![2]}/${name}` : `${head![2]} ${ns}/${name}`;
  return `[${rule}] ${label.length <= MAX_LABEL ? label : `${name.slice(0, 16)}~${hash6(label)}`}: `;
}

/** The longest `Kind ns/name` a continuation line names whole (`ConfigMap kagent/kagent-enterprise-config` is 41). */
export const MAX_LABEL = 48;

/**
 * The API server's limit for one warning: it may truncate a longer one (admission webhooks' documentation). A line
 * holding a URL or quoted value longer than WARNING_MAX goes up to it; only a longer one is cut.
 */
export const WARNING_LIMIT = 256;

/** A sentence with a URL or a quoted value, which toWarnings keeps whole on a line. */
const KEEP_WHOLE = /:\/\/|"/;

/**
 * The words of a text (spaces between them dropped), a double-quoted value with spaces in it being one word (a
 * backslash escapes the next character inside it), unless it is longer than `hard`: then it is its space-separated
 * parts, as is one that is never closed.
 */
function words(text: string, hard: number): string[] {
  const out: string[] = [];
  const n = text.length;
  let i = 0;
  let nextQuote = text.indexOf('"');
  while (i < n) {
    while (i < n && text.charCodeAt(i) === 0x20) i++;
    if (i >= n) break;
    // most words hold no quote: up to the next space
    const space = text.indexOf(' ', i);
    const end = space === -1 ? n : space;
    // (the next quote is looked up again only once passed: one scan of the text in all)
    if (nextQuote !== -1 && nextQuote < i) nextQuote = text.indexOf('"', i);
    if (nextQuote === -1 || nextQuote >= end) {
      out.push(text.slice(i, end));
      i = end;
      continue;
    }
    let j = i;
    let quoted = false;
    let open = -1;
    for (; j < n; j++) {
      const c = text.charCodeAt(j);
      if (c === 0x22) {
        quoted = !quoted;
        if (quoted) open = j;
      } else if (c === 0x5c && quoted) j++;
      else if (c === 0x20 && !quoted) break;
      // a quote open past the limit (or never closed): the word ends at the first space after it opened
      if (quoted && j - i > hard) break;
    }
    if (quoted) {
      // (a quote open past the limit, or one the text never closes: `ServiceAccount team-a/"` when a name holds one)
      j = text.indexOf(' ', open);
      if (j === -1) j = n;
    }
    out.push(text.slice(i, j));
    i = j;
  }
  return out;
}

/**
 * Lines of a text for toWarnings: words joined up to `firstMax` (first line) and `max` characters; a word that does
 * not fit starts a line. One longer than the line: a URL or quoted value gets a line of its own, up to `hardFirst` /
 * `hard` characters (the API server's limit), and is cut only past that; any other word is cut at the line's width.
 */
function wrapWhole(text: string, firstMax: number, max: number, hardFirst: number, hard: number): string[] {
  const lines: string[] = [];
  let line = '';
  let width = firstMax;
  let limit = hardFirst;
  const push = (l: string) => {
    lines.push(l);
    width = max;
    limit = hard;
  };
  for (let w of words(text, hard)) {
    if (line && line.length + 1 + w.length <= width) {
      line += ` ${w}`;
      continue;
    }
    if (line) push(line);
    line = '';
    const whole = KEEP_WHOLE.test(w);
    while (w.length > (whole ? limit : width)) {
      const at = whole ? limit : width;
      push(w.slice(0, at));
      w = w.slice(at);
    }
    if (w.length > width) push(w);
    else line = w;
  }
  if (line || !lines.length) lines.push(line);
  return lines;
}

/** 6 hex digits of FNV-1a over the text: a label, not a secret. */
function hash6(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return ((h >>> 0) & 0xffffff).toString(16).padStart(6, '0');
}

/**
 * wrap(), with a first line of its own width. A first line left under half its width (the next word, a field path
 * or a quoted value, is that long) is filled, the word broken at a '.', '[' or '(' (else cut): else it would say
 * little more than the message's head.
 */
function wrapFirst(text: string, firstMax: number, max: number): string[] {
  if (text.length <= firstMax) return [text];
  if (firstMax === max) return wrap(text, max);
  // the first line as wrap() would cut it (text starts with no space: a sentence, or a message)
  let end = text.lastIndexOf(' ', firstMax);
  let next = end + 1;
  while (end > 0 && text.charCodeAt(end - 1) === 0x20) end--;
  if (end < firstMax / 2) {
    // inside the long word (a field path): after its last '.', or before its last '[' or '(', that fits
    const word = end < 0 ? 0 : next;
    const cut = Math.max(text.lastIndexOf('.', firstMax - 1) + 1, text.lastIndexOf('[', firstMax), text.lastIndexOf('(', firstMax));
    end = next = cut > word && cut >= firstMax / 2 ? cut : firstMax;
  }
  while (text.charCodeAt(next) === 0x20) next++;
  return next < text.length ? [text.slice(0, end), ...wrap(text.slice(next), max)] : [text.slice(0, end)];
}

/**
 * Lines of at most `max` characters, broken at spaces (a longer word is cut; spaces at a break are dropped).
 * Slices of the text, not words joined again: a warning is wrapped on every admission that carries it.
 */
export function wrap(text: string, max: number): string[] {
  if (text.length <= max) return [text];
  const lines: string[] = [];
  let start = 0;
  // the first space at or after `start` (-1: none left). A line with none up to its end is cut: lastIndexOf is
  // asked only when a space is known to lie within the line, so it never scans back over a long word's earlier
  // lines (quadratic for a megabyte-long word).
  let next = text.indexOf(' ');
  for (;;) {
    while (text.charCodeAt(start) === 0x20) start++;
    if (text.length - start <= max) break;
    if (next !== -1 && next < start) next = text.indexOf(' ', start);
    const cut = next !== -1 && next <= start + max ? text.lastIndexOf(' ', start + max) : -1;
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
 * Warning lines one answer carries at most, and their characters at most. The API server passes on about 4,096
 * characters of warnings per request (its own and every webhook's; a duplicate text once) and drops the rest; a
 * hostile pod (thousands of containers, a megabyte-long name) would otherwise make a megabyte of them.
 */
export const MAX_WARNING_LINES = 40;
export const MAX_WARNING_CHARS = 3_600;
/** What the API server keeps of one request's warnings, every webhook's together: past it, later ones are dropped. */
export const API_SERVER_WARNING_CHARS = 4_096;
/**
 * /validate's share for a Pod CREATE: /mutate answered for the same pod first and may have taken MAX_WARNING_CHARS,
 * so /validate keeps to what is left (496), else its last lines would be dropped, a fix among them.
 */
export const POD_VALIDATE_WARNING_CHARS = API_SERVER_WARNING_CHARS - MAX_WARNING_CHARS;
/** Characters of a denial's message at most (a person reads it; hostile input could make it megabytes). */
export const MAX_MESSAGE = 16 * 1024;

/**
 * When not all warnings fit: first those about what fails outright (the pod never starts, or is rejected after the
 * webhooks; the injection denials given as warnings), last those that say what the author chose or remind.
 */
const FIRST = new Set(['csi-driver-missing', 'pod-resources', 'port-conflict', 'reserved-name', 'host-network', 'unsupported-os', 'malformed-object', 'invalid-annotation', 'token-review-required']);
const NOTICES = new Set(['waypoint-mode', 'namespace-mode-label', 'all-opted-out', 'kagent-restart']);

/**
 * The warnings (whole messages), each fitted into lines of WARNING_MAX characters, at most MAX_WARNING_LINES lines
 * and MAX_WARNING_CHARS characters. When not all fit, whole messages are left out, never part of one (the notices
 * first, those about what fails outright last), and the last lines (leftOut) say so for the object `ref` names.
 */
function fitted(warnings: string[], ref?: string, maxChars = MAX_WARNING_CHARS): string[] {
  let chars = 0;
  let long = false;
  for (const w of warnings) {
    chars += w.length;
    if (w.length > WARNING_MAX) long = true;
  }
  if (!long && warnings.length <= MAX_WARNING_LINES && chars <= maxChars) return warnings;
  const split = (w: string) => (w.length > WARNING_MAX ? toWarnings(w) : [w]);
  if (chars <= maxChars) {
    const out: string[] = [];
    let size = 0;
    for (const w of warnings)
      for (const l of split(w)) {
        out.push(l);
        size += l.length;
      }
    if (out.length <= MAX_WARNING_LINES && size <= maxChars) return out;
  }
  const order = [...warnings.keys()];
  const rank = (i: number) => {
    const rule = ruleOf(warnings[i]!);
    return FIRST.has(rule) ? 0 : NOTICES.has(rule) ? 2 : 1;
  };
  order.sort((a, b) => rank(a) - rank(b) || a - b);
  const kept = new Map<number, string[]>();
  const left: string[] = [];
  const hit = { lines: false, chars: false };
  let used = 0;
  let usedLines = 0;
  // room kept for the last lines, which say what was left out
  const room = maxChars - NOTE_LINES * WARNING_MAX;
  for (const i of order) {
    const w = warnings[i]!;
    // a message longer than the room left is not split to find out (a hostile pod may bring thousands)
    if (used + w.length > room + 40) {
      left.push(ruleOf(w));
      hit.chars = true;
      continue;
    }
    const lines = split(w);
    const size = lines.reduce((n, l) => n + l.length, 0);
    const linesFit = usedLines + lines.length <= MAX_WARNING_LINES - NOTE_LINES;
    const charsFit = used + size <= room;
    if (linesFit && charsFit) {
      kept.set(i, lines);
      used += size;
      usedLines += lines.length;
    } else {
      left.push(ruleOf(w));
      if (!linesFit) hit.lines = true;
      if (!charsFit) hit.chars = true;
    }
  }
  const out: string[] = [];
  for (let i = 0; i < warnings.length; i++) {
    const lines = kept.get(i);
    if (lines) out.push(...lines);
  }
  out.push(...leftOut(left, hit, ref, maxChars));
  return out;
}

function ruleOf(warning: string): string {
  return /^\[([a-z][a-z-]{0,62})\] /.exec(warning)?.[1] ?? '';
}

/** Lines fitted() keeps for what it left out (leftOut), in at most as many times WARNING_MAX characters. */
const NOTE_LINES = 2;

/**
 * The last lines when warnings were left out, at most NOTE_LINES: the object (by its continuation label: kubectl
 * shows a repeated text once per run, so a note two objects shared would be shown for the first only), how many were
 * left out, the limit that left them out (lines or characters), and as many of their rules as fit.
 */
function leftOut(rules: string[], hit: { lines: boolean; chars: boolean }, ref: string | undefined, maxChars: number): string[] {
  const n = rules.length;
  const names = [...new Set(rules.filter(Boolean))];
  const head = continuationPrefix(`[kagenti] ${ref ?? ''}: `);
  const lines = `${MAX_WARNING_LINES}-line`;
  const chars = `${String(maxChars).replace(/\B(?=(\d{3})+$)/g, ',')}-character`;
  const limit = hit.lines && hit.chars ? `${lines} and ${chars} limits` : `${hit.lines ? lines : chars} limit`;
  const start = `${head}${n} more warning${n === 1 ? '' : 's'} not sent (${limit})`;
  const end = `; run kagenti-webhook lint to see ${n === 1 ? 'it' : 'them'}.`;
  // all the rules if they fit, else the most that fit with ', ...' after them
  for (let k = names.length; k >= 0; k--) {
    const list = k === 0 ? '' : `: ${names.slice(0, k).map((r) => `[${r}]`).join(', ')}${k < names.length ? ', ...' : ''}`;
    // continued with `head` itself: a long ref's head is its short label, in which toWarnings finds no object
    const note = toWarnings(`${start}${list}${end}`, 'kagenti', head);
    if (note.length <= NOTE_LINES && note.every((l) => l.length <= WARNING_MAX)) return note;
  }
  return toWarnings(`${start}${end}`, 'kagenti', head).slice(0, NOTE_LINES);
}

/** A denial's message, cut to MAX_MESSAGE characters with a note that it was. */
function fittedMessage(message: string): string {
  if (message.length <= MAX_MESSAGE) return message;
  return `${message.slice(0, MAX_MESSAGE - 60)} ... (cut: the message has ${message.length} characters)`;
}

/**
 * `ref`: the request's object (`Kind ns/name`), named in the note on warnings left out when not all fit; `maxChars`:
 * the warnings' characters at most (POD_VALIDATE_WARNING_CHARS for /validate's answer on a Pod CREATE).
 */
export function allow(uid: string, warnings: string[] = [], ref?: string, maxChars = MAX_WARNING_CHARS): AdmissionResponse {
  const r: AdmissionResponse = { uid, allowed: true };
  if (warnings.length) r.warnings = fitted(warnings.map(printable), ref, maxChars);
  return r;
}

export function allowWithPatch(uid: string, patch: readonly unknown[], warnings: string[] = [], ref?: string): AdmissionResponse {
  const r = allow(uid, warnings, ref);
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

/**
 * A denial as kubectl shows it: `Error from server (Forbidden): ... denied the request: <message>`. Several
 * messages (a list) go one a line. Each message, and each warning, is one line: printable() escapes what a request
 * put in it that a terminal would act on.
 */
export function deny(uid: string, message: string | readonly string[], warnings: string[] = [], ref?: string, maxChars = MAX_WARNING_CHARS): AdmissionResponse {
  const text = typeof message === 'string' ? printable(message) : message.map(printable).join('\n');
  const r: AdmissionResponse = { uid, allowed: false, status: { code: 403, reason: 'Forbidden', message: fittedMessage(text) } };
  if (warnings.length) r.warnings = fitted(warnings.map(printable), ref, maxChars);
  return r;
}

export { printable };

/**
 * A name as a message shows it: whole up to 253 characters (the longest a Kubernetes name can be), else its start
 * and its length, with control characters escaped (printable). The API server checks names after the mutating
 * webhooks, and anything that reaches the port can send a request, so a name can carry any length and any character.
 */
export function shown(name: string): string {
  return printable(name.length <= 253 ? name : `${name.slice(0, 60)}...(${name.length} characters)`);
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
  response.status = { code: 500, reason: 'InternalError', message: response.status!.message };
  return { response, result: 'error', rules: ['internal-error'], detail };
}
