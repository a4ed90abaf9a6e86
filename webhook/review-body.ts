// Parsing an AdmissionReview body, without building `request.object.metadata.managedFields`.
//
// The API server puts the object's managedFields into every admission request. No rule and no part of injection
// reads them, and the patch never touches them, but they are the costliest part of the body to parse: every
// entry is a tree of keys such as `f:containers` and `k:{"name":"app"}` that JSON.parse has not seen before.
// In a Deployment-made pod they are half of the 40 KB body and two thirds of its parse time.
//
// So the body is scanned up to that one value, which is checked against the JSON grammar without building it,
// and replaced by a marker string before JSON.parse sees the text. Nothing is trusted to the scan alone:
// - the replaced value must be well-formed JSON (otherwise the body is parsed whole, and a malformed body gets
//   JSON.parse's own error, as before);
// - after parsing, the marker must sit exactly at request.object.metadata.managedFields of the parsed object
//   (the marker carries a random nonce the sender cannot know). If the scan took a wrong turn, or a duplicate key
//   makes JSON.parse keep another occurrence, the marker is elsewhere or gone, and the body is parsed whole.
// So the result is always JSON.parse(body) with that one member removed, or JSON.parse(body) itself.
import { randomUUID } from 'node:crypto';

/** The path of the value left out, from the top of the AdmissionReview. */
const PATH = ['request', 'object', 'metadata', 'managedFields'].map((k) => Buffer.from(k, 'latin1'));
/** Nesting the grammar check follows before it gives up (the body is then parsed whole). */
const MAX_DEPTH = 1024;

const MARKER = `kagenti-webhook:managedFields-not-parsed:${randomUUID()}`;
const MARKER_JSON = JSON.stringify(MARKER);

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function skipSpace(b: Uint8Array, i: number): number {
  while (i < b.length && isSpace(b[i]!)) i++;
  return i;
}

function isHex(c: number | undefined): boolean {
  return c !== undefined && ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66));
}

function isDigit(c: number | undefined): boolean {
  return c !== undefined && c >= 0x30 && c <= 0x39;
}

/** The index after the string that starts at b[i] (a quote), or -1 if it is not a well-formed JSON string. */
function skipString(b: Uint8Array, i: number): number {
  const n = b.length;
  i++;
  for (;;) {
    let c = 0;
    while (i < n && (c = b[i]!) >= 0x20 && c !== QUOTE && c !== BACKSLASH) i++;
    if (i >= n || c < 0x20) return -1;
    if (c === QUOTE) return i + 1;
    const e = b[i + 1];
    if (e === 0x75) {
      // \uXXXX
      if (!isHex(b[i + 2]) || !isHex(b[i + 3]) || !isHex(b[i + 4]) || !isHex(b[i + 5])) return -1;
      i += 6;
    } else if (e === QUOTE || e === BACKSLASH || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) {
      i += 2;
    } else return -1;
  }
}

/** The index after the number that starts at b[i], or -1 (RFC 8259: -? int frac? exp?). */
function skipNumber(b: Uint8Array, i: number): number {
  if (b[i] === 0x2d) i++;
  if (b[i] === 0x30) i++;
  else if (isDigit(b[i])) while (isDigit(b[i])) i++;
  else return -1;
  if (b[i] === 0x2e) {
    i++;
    if (!isDigit(b[i])) return -1;
    while (isDigit(b[i])) i++;
  }
  if (b[i] === 0x65 || b[i] === 0x45) {
    i++;
    if (b[i] === 0x2b || b[i] === 0x2d) i++;
    if (!isDigit(b[i])) return -1;
    while (isDigit(b[i])) i++;
  }
  return i;
}

function skipWord(b: Uint8Array, i: number, word: string): number {
  for (let k = 0; k < word.length; k++) if (b[i + k] !== word.charCodeAt(k)) return -1;
  return i + word.length;
}

/** Open containers of the value being checked: 1 an object, 2 an array. */
const open = new Uint8Array(MAX_DEPTH);

/**
 * The index after the JSON value that starts at b[i] (no leading space), or -1 if it is not well-formed or nests
 * deeper than MAX_DEPTH. One loop with its own stack: no call per value, and no recursion for deep input.
 */
function skipValue(b: Uint8Array, i: number): number {
  let depth = 0;
  for (;;) {
    // A value starts at b[i].
    const c = b[i];
    if (c === QUOTE) {
      i = skipString(b, i);
      if (i < 0) return -1;
    } else if (c === 0x7b || c === 0x5b) {
      if (depth === MAX_DEPTH) return -1;
      i = skipSpace(b, i + 1);
      if (b[i] === (c === 0x7b ? 0x7d : 0x5d)) {
        i++; // an empty object or array: a complete value
      } else {
        open[depth++] = c === 0x7b ? 1 : 2;
        if (c === 0x7b) {
          i = skipKey(b, i);
          if (i < 0) return -1;
        }
        continue;
      }
    } else if (c === 0x74) {
      i = skipWord(b, i, 'true');
      if (i < 0) return -1;
    } else if (c === 0x66) {
      i = skipWord(b, i, 'false');
      if (i < 0) return -1;
    } else if (c === 0x6e) {
      i = skipWord(b, i, 'null');
      if (i < 0) return -1;
    } else {
      i = skipNumber(b, i);
      if (i < 0) return -1;
    }
    // A value ended before b[i]: close containers until one continues with a comma.
    for (;;) {
      if (depth === 0) return i;
      i = skipSpace(b, i);
      const inObject = open[depth - 1] === 1;
      const d = b[i];
      if (d === 0x2c) {
        i = skipSpace(b, i + 1);
        if (inObject) {
          i = skipKey(b, i);
          if (i < 0) return -1;
        }
        break;
      }
      if (d !== (inObject ? 0x7d : 0x5d)) return -1;
      i++;
      depth--;
    }
  }
}

/** A member's key and colon at b[i]: the index of its value (spaces skipped), or -1. */
function skipKey(b: Uint8Array, i: number): number {
  if (b[i] !== QUOTE) return -1;
  const keyEnd = skipString(b, i);
  return keyEnd < 0 ? -1 : valueAfterKey(b, keyEnd);
}

/** After a key that ends before b[i]: the index of its value (the colon and spaces skipped), or -1. */
function valueAfterKey(b: Uint8Array, i: number): number {
  i = skipSpace(b, i);
  return b[i] === 0x3a ? skipSpace(b, i + 1) : -1;
}

/** Whether the raw key b[start, end) is exactly `name` (a key written with escapes never matches). */
function keyIs(b: Uint8Array, start: number, end: number, name: Buffer): boolean {
  if (end - start !== name.length) return false;
  for (let k = 0; k < name.length; k++) if (b[start + k] !== name[k]) return false;
  return true;
}

/**
 * The span [start, end) of the value at PATH[level..] inside the object that starts at b[i], following only the
 * first member with each name; undefined when it is not there or the text is not what JSON would make of it.
 */
function findSpan(b: Uint8Array, i: number, level: number): [number, number] | undefined {
  i = skipSpace(b, i + 1);
  if (b[i] === 0x7d) return undefined;
  for (;;) {
    if (b[i] !== QUOTE) return undefined;
    const keyEnd = skipString(b, i);
    if (keyEnd < 0) return undefined;
    const named = keyIs(b, i + 1, keyEnd - 1, PATH[level]!);
    i = valueAfterKey(b, keyEnd);
    if (i < 0) return undefined;
    if (named) {
      if (level === PATH.length - 1) {
        const end = skipValue(b, i);
        return end < 0 ? undefined : [i, end];
      }
      return b[i] === 0x7b ? findSpan(b, i, level + 1) : undefined;
    }
    i = skipValue(b, i);
    if (i < 0) return undefined;
    i = skipSpace(b, i);
    if (b[i] !== 0x2c) return undefined;
    i = skipSpace(b, i + 1);
  }
}

/** Where the body's request.object.metadata.managedFields value is, when the scan finds it. */
function managedFieldsSpan(body: Buffer): [number, number] | undefined {
  const start = skipSpace(body, 0);
  return body[start] === 0x7b ? findSpan(body, start, 0) : undefined;
}

/**
 * JSON.parse of an AdmissionReview body, minus `request.object.metadata.managedFields` when the body has them.
 * Throws what JSON.parse(body) throws for a body that is not JSON.
 */
export function parseReviewBody(body: Buffer): unknown {
  const span = managedFieldsSpan(body);
  if (span) {
    let parsed: any;
    try {
      parsed = JSON.parse(body.toString('utf8', 0, span[0]) + MARKER_JSON + body.toString('utf8', span[1]));
    } catch {
      parsed = undefined;
    }
    const metadata = parsed?.request?.object?.metadata;
    if (typeof metadata === 'object' && metadata !== null && Object.hasOwn(metadata, 'managedFields') && metadata.managedFields === MARKER) {
      delete metadata.managedFields;
      return parsed;
    }
  }
  return JSON.parse(body.toString('utf8'));
}

/** For tests: the span parseReviewBody would leave out, and the grammar check on its own. */
export const internals = { findSpan: managedFieldsSpan, skipValue, MARKER };
