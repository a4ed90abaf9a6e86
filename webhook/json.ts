// Small helpers for JSON values (parsed request bodies and YAML documents).

export function isObject(v: unknown): v is Record<string, any> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Deep equality of JSON values, ignoring key order; identical references are equal at once. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false;
    return true;
  }
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a);
    if (ka.length !== Object.keys(b).length) return false;
    for (const k of ka) if (!Object.hasOwn(b, k) || !jsonEqual(a[k], b[k])) return false;
    return true;
  }
  return false;
}

// ---------- JSON text kept with frozen values ----------
// Values the injection core renders once and reuses (the sidecars for one mode, namespace and service account)
// are frozen and keep their JSON text here, so the patch of every admission does not serialize them again.

const texts = new WeakMap<object, string>();

/** Freezes a JSON value and everything in it. Returns the value. */
export function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return value;
  for (const k of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[k]);
  Object.freeze(value);
  return value;
}

/** Deep-freezes a JSON value and remembers its JSON text (jsonText reuses it). Returns the value. */
export function sealJson<T extends object>(value: T): T {
  deepFreeze(value);
  texts.set(value, JSON.stringify(value));
  return value;
}

/**
 * JSON.stringify(value), byte for byte, reusing the text of sealed values (the value itself, or the items of
 * an array). Like JSON.stringify, an undefined value gives undefined and an undefined array item gives null.
 */
export function jsonText(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return JSON.stringify(value);
  const sealed = texts.get(value);
  if (sealed !== undefined) return sealed;
  if (!Array.isArray(value) || !value.some((v) => typeof v === 'object' && v !== null && texts.has(v))) return JSON.stringify(value);
  let s = '[';
  for (let i = 0; i < value.length; i++) {
    if (i) s += ',';
    s += jsonText(value[i]) ?? 'null';
  }
  return `${s}]`;
}

/** The most characters of a value or key a message quotes: a message is one line, and the value may be any size. */
export const MAX_QUOTED = 40;

/** Where to cut `s` at `max` characters without splitting a surrogate pair. */
function cutAt(s: string, max: number): number {
  return /[\uD800-\uDBFF]/.test(s.charAt(max - 1)) ? max - 1 : max;
}

/**
 * A string for a message, quoted (JSON), cut to MAX_QUOTED characters with its length when longer
 * (`"xxxx..." (200000 characters)`), so a huge value never pushes a message's why and Fix past the size a denial
 * or a warning is cut at.
 */
export function quoted(s: string): string {
  if (s.length <= MAX_QUOTED) return JSON.stringify(s);
  return `${JSON.stringify(s.slice(0, cutAt(s, MAX_QUOTED))).slice(0, -1)}..." (${s.length} characters)`;
}

/** A key or path segment for a message, unquoted, cut as quoted() cuts (`xxxx... (3000 characters)`). */
export function cutKey(s: string): string {
  return s.length <= MAX_QUOTED ? s : `${s.slice(0, cutAt(s, MAX_QUOTED))}... (${s.length} characters)`;
}

/** An error message as one line: its first non-empty line, at most 300 characters (a plugin's stderr, a parser's report). */
export function oneLine(message: string): string {
  const first = message.split('\n').map((l) => l.trim()).find(Boolean) ?? 'error';
  return first.length > 300 ? `${first.slice(0, 300)}…` : first;
}

/** Characters a terminal acts on, or that break a line: C0 controls (ESC, CR, LF...), DEL, C1 controls, U+2028/2029. */
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
const UNPRINTABLE_ALL = new RegExp(UNPRINTABLE.source, 'g');
const ESCAPES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\b': '\\b', '\f': '\\f' };

/**
 * Text for a message or a log field with the characters of UNPRINTABLE escaped as JSON escapes them (`\n`,
 * `\u001b`). Names and values in messages come from the request (anything that reaches the port can send one) or the
 * input (a file name, a YAML error's text): raw, `x\e[2K\r\nFix: run ...` would erase the line kubectl prints and write a fix of its own under it.
 */
export function printable(text: string): string {
  if (!UNPRINTABLE.test(text)) return text;
  return text.replace(UNPRINTABLE_ALL, (c) => ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
