// Parsing an AdmissionReview body, without building the managedFields of `request.object` and `request.oldObject`.
//
// The API server puts the object's managedFields into every admission request, and on UPDATE the old object's
// too. No rule and no part of injection reads them, and the patch never touches them, but they are the costliest
// part of the body to parse: every entry is a tree of keys such as `f:containers` and `k:{"name":"app"}` that
// JSON.parse has not seen before. In a Deployment-made pod they are half of the 40 KB body and two thirds of its
// parse time; an UPDATE carries them twice.
//
// So the body is scanned up to those values, each is checked against the JSON grammar without building it, and
// each is replaced by a marker string before JSON.parse sees the text. Nothing is trusted to the scan alone:
// - a replaced value must be well-formed JSON (otherwise the body is parsed whole, and a malformed body gets
//   JSON.parse's own error, as before);
// - after parsing, each marker must sit exactly at its place, request.object.metadata.managedFields or
//   request.oldObject.metadata.managedFields of the parsed object (the markers carry a random nonce the sender
//   cannot know, and differ from each other). If the scan took a wrong turn, or a duplicate key makes JSON.parse
//   keep another occurrence, a marker is elsewhere or gone, and the body is parsed whole.
// So the result is always JSON.parse(body) with those members removed, or JSON.parse(body) itself.
//
// The old object comes after the object (the API server writes request's members in the Go struct's order), so
// reaching it means scanning the rest of the object. That is done only for an UPDATE (an `operation` member before
// the object says so); for a CREATE the scan stops at the object's managedFields, as it always did.
import { randomUUID } from 'node:crypto';

const key = (k: string) => Buffer.from(k, 'latin1');
const REQUEST = key('request');
const OPERATION = key('operation');
const OBJECT = key('object');
const OLD_OBJECT = key('oldObject');
/** The path of the value left out, from the object or the old object. */
const IN_OBJECT = [key('metadata'), key('managedFields')];
/** `operation`'s value (with its quotes) that makes the scan go on to the old object. */
const UPDATE = key('"UPDATE"');
/** Nesting the grammar check follows before it gives up (the body is then parsed whole). */
const MAX_DEPTH = 1024;

const NONCE = randomUUID();
/** What replaces the object's managedFields, and the old object's. */
const MARKERS = { object: `kagenti-webhook:managedFields-not-parsed:${NONCE}`, oldObject: `kagenti-webhook:old-managedFields-not-parsed:${NONCE}` };
type Which = keyof typeof MARKERS;

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

type Span = [number, number];

/**
 * The object that starts at b[i] (a brace), member by member: `visit` gets each member's key as [start, end) of
 * its text without the quotes, and the index of its value, and returns the index after that value, -1 to give up,
 * or -2 to stop there. Returns the index after the object's closing brace, -1, or -2 when `visit` stopped.
 */
function eachMember(b: Uint8Array, i: number, visit: (keyStart: number, keyEnd: number, value: number) => number): number {
  i = skipSpace(b, i + 1);
  if (b[i] === 0x7d) return i + 1;
  for (;;) {
    if (b[i] !== QUOTE) return -1;
    const keyEnd = skipString(b, i);
    if (keyEnd < 0) return -1;
    const value = valueAfterKey(b, keyEnd);
    if (value < 0) return -1;
    i = visit(i + 1, keyEnd - 1, value);
    if (i < 0) return i;
    i = skipSpace(b, i);
    if (b[i] === 0x7d) return i + 1;
    if (b[i] !== 0x2c) return -1;
    i = skipSpace(b, i + 1);
  }
}

/**
 * In the object (or old object) that starts at b[i]: the span of its metadata.managedFields value, following only
 * the first member with each name, and, with `toEnd`, the index after the object (-1 when it is not scanned to
 * its end or not well-formed). No span when it is not there or the text is not what JSON would make of it.
 */
function managedFieldsIn(b: Uint8Array, i: number, toEnd: boolean): { span?: Span; end: number } {
  let span: Span | undefined;
  let seenMetadata = false;
  const end = eachMember(b, i, (ks, ke, v) => {
    if (seenMetadata || !keyIs(b, ks, ke, IN_OBJECT[0]!)) return skipValue(b, v);
    seenMetadata = true;
    if (b[v] !== 0x7b) return skipValue(b, v);
    let seenField = false;
    return eachMember(b, v, (ks2, ke2, v2) => {
      const after = skipValue(b, v2);
      if (seenField || !keyIs(b, ks2, ke2, IN_OBJECT[1]!)) return after;
      seenField = true;
      if (after < 0) return -1;
      span = [v2, after];
      return toEnd ? after : -2;
    });
  });
  return { span, end: toEnd ? end : -1 };
}

/**
 * Where the body's request.object.metadata.managedFields value is, and for an UPDATE request.oldObject's, when
 * the scan finds them.
 */
function managedFieldsSpans(body: Buffer): Partial<Record<Which, Span>> {
  const spans: Partial<Record<Which, Span>> = {};
  const start = skipSpace(body, 0);
  if (body[start] !== 0x7b) return spans;
  let seenRequest = false;
  eachMember(body, start, (ks, ke, v) => {
    if (seenRequest || !keyIs(body, ks, ke, REQUEST)) return skipValue(body, v);
    seenRequest = true;
    if (body[v] !== 0x7b) return -2;
    let update = false;
    const seen = { object: false, oldObject: false };
    eachMember(body, v, (ks2, ke2, v2) => {
      if (keyIs(body, ks2, ke2, OPERATION)) {
        update = keyIs(body, v2, v2 + UPDATE.length, UPDATE);
        return skipValue(body, v2);
      }
      const which: Which | undefined = keyIs(body, ks2, ke2, OBJECT) ? 'object' : keyIs(body, ks2, ke2, OLD_OBJECT) ? 'oldObject' : undefined;
      if (!which || seen[which] || body[v2] !== 0x7b || (which === 'oldObject' && !update)) return skipValue(body, v2);
      seen[which] = true;
      const other = which === 'object' ? 'oldObject' : 'object';
      const more = update && !seen[other];
      const found = managedFieldsIn(body, v2, more);
      if (found.span) spans[which] = found.span;
      return more ? found.end : -2;
    });
    return -2;
  });
  return spans;
}

/**
 * JSON.parse of an AdmissionReview body, minus `request.object.metadata.managedFields` when the body has them, and
 * minus `request.oldObject.metadata.managedFields` in an UPDATE. Throws what JSON.parse(body) throws for a body
 * that is not JSON.
 */
export function parseReviewBody(body: Buffer): unknown {
  const spans = managedFieldsSpans(body);
  const found = (Object.keys(spans) as Which[]).sort((a, b) => spans[a]![0] - spans[b]![0]);
  if (found.length) {
    let text = '';
    let from = 0;
    for (const which of found) {
      const [start, end] = spans[which]!;
      text += body.toString('utf8', from, start) + JSON.stringify(MARKERS[which]);
      from = end;
    }
    let parsed: any;
    try {
      parsed = JSON.parse(text + body.toString('utf8', from));
    } catch {
      parsed = undefined;
    }
    if (found.every((which) => markerAt(parsed?.request?.[which]?.metadata, which))) {
      for (const which of found) delete parsed.request[which].metadata.managedFields;
      return parsed;
    }
  }
  return JSON.parse(body.toString('utf8'));
}

/** Whether metadata.managedFields is the marker put in for `which`. */
function markerAt(metadata: unknown, which: Which): boolean {
  return typeof metadata === 'object' && metadata !== null && Object.hasOwn(metadata, 'managedFields') && (metadata as { managedFields: unknown }).managedFields === MARKERS[which];
}

/** For tests: the spans parseReviewBody would leave out, and the grammar check on its own. */
export const internals = { spans: managedFieldsSpans, skipValue, MARKERS };
