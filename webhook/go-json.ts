// Why kubectl's JSON decoder (Go's encoding/json) refuses a JSON object, in its own words. Used only after JSON.parse
// has refused the text, to say where and why as kubectl would ("invalid character '}' looking for beginning of
// object key string"): a stream that starts with `{` is JSON to kubectl, never YAML.

/**
 * Go's quoteChar: the byte Go's scanner stopped at, in single quotes, as strconv.Quote writes that byte taken for a
 * character of Latin-1 (the first byte of é, 0xC3, is 'Ã'): `'\''` for a quote, `'\x01'` and `'\x7f'` for a control,
 * `'\n'` for a line break, `'\u0085'` for a byte Go does not print.
 */
export function goQuoteByte(b: number): string {
  if (b === 0x27) return `'\\''`;
  if (b === 0x22) return `'"'`;
  const esc = ESCAPES[b];
  if (esc !== undefined) return `'${esc}'`;
  if (b < 0x20 || b === 0x7f) return `'\\x${b.toString(16).padStart(2, '0')}'`;
  // strconv.IsPrint for Latin-1: ASCII from space to ~, and ¡ to ÿ but the soft hyphen
  if (b <= 0x7e || (b >= 0xa1 && b !== 0xad)) return `'${String.fromCharCode(b)}'`;
  return `'\\u${b.toString(16).padStart(4, '0')}'`;
}

const ESCAPES: Record<number, string> = { 0x07: '\\a', 0x08: '\\b', 0x09: '\\t', 0x0a: '\\n', 0x0b: '\\v', 0x0c: '\\f', 0x0d: '\\r', 0x5c: '\\\\' };

/** The first byte of a code point's UTF-8 form: the byte Go's scanner reads first. */
function firstUtf8Byte(cp: number): number {
  return cp < 0x80 ? cp : cp < 0x800 ? 0xc0 | (cp >> 6) : cp < 0x10000 ? 0xe0 | (cp >> 12) : 0xf0 | (cp >> 18);
}

/** Go's encoding/json nests objects and arrays at most this deep (maxNestingDepth), kubectl's JSON decoder too. */
export const GO_JSON_MAX_DEPTH = 10000;

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);
const HEX = /[0-9a-fA-F]/;

/**
 * The first syntax error of one JSON value as Go's scanner reports it: the offset of the character it stops at and
 * its message. Undefined when Go's scanner accepts the text (JSON.parse and Go differ on nothing the caller passes,
 * but the caller keeps JSON.parse's message then).
 */
export function goJsonSyntaxError(text: string): { index: number; reason: string } | undefined {
  let i = 0;
  const n = text.length;
  class Stop extends Error {
    readonly index: number;
    readonly reason: string;
    constructor(index: number, reason: string) {
      super(reason);
      this.index = index;
      this.reason = reason;
    }
  }
  const fail = (context: string): never => {
    if (i >= n) throw new Stop(n, 'unexpected end of JSON input');
    throw new Stop(i, `invalid character ${goQuoteByte(firstUtf8Byte(text.codePointAt(i)!))} ${context}`);
  };
  const skipWs = () => {
    while (i < n && WS.has(text.charCodeAt(i))) i++;
  };
  const literal = (word: string) => {
    for (let k = 1; k < word.length; k++) {
      i++;
      if (text[i] !== word[k]) fail(`in literal ${word} (expecting ${goQuoteByte(word.charCodeAt(k))})`);
    }
    i++;
  };
  const digits = () => {
    while (i < n && text.charCodeAt(i) >= 0x30 && text.charCodeAt(i) <= 0x39) i++;
  };
  const number = () => {
    if (text[i] === '-') {
      i++;
      if (!(text.charCodeAt(i) >= 0x30 && text.charCodeAt(i) <= 0x39)) fail('in numeric literal');
    }
    if (text[i] === '0') i++;
    else digits();
    if (text[i] === '.') {
      i++;
      if (!(text.charCodeAt(i) >= 0x30 && text.charCodeAt(i) <= 0x39)) fail('after decimal point in numeric literal');
      digits();
    }
    if (text[i] === 'e' || text[i] === 'E') {
      i++;
      if (text[i] === '+' || text[i] === '-') i++;
      if (!(text.charCodeAt(i) >= 0x30 && text.charCodeAt(i) <= 0x39)) fail('in exponent of numeric literal');
      digits();
    }
  };
  const string = () => {
    i++; // the opening quote
    for (;;) {
      if (i >= n) fail('');
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return;
      }
      if (c < 0x20) fail('in string literal');
      if (c === 0x5c) {
        i++;
        const e = text[i];
        if (e === 'u') {
          for (let k = 0; k < 4; k++) {
            i++;
            if (!HEX.test(text[i] ?? '')) fail('in \\u hexadecimal character escape');
          }
        } else if (e === undefined || !'bfnrt\\/"'.includes(e)) fail('in string escape code');
      }
      i++;
    }
  };
  // nesting depth: Go stops at the object or array one past GO_JSON_MAX_DEPTH, and so does this (recursive) scanner
  let depth = 0;
  const value = (): void => {
    skipWs();
    const c = text[i];
    if ((c === '{' || c === '[') && ++depth > GO_JSON_MAX_DEPTH) fail('exceeded max depth');
    if (c === '{') {
      i++;
      skipWs();
      if (text[i] === '}') {
        i++;
        depth--;
        return;
      }
      for (;;) {
        if (text[i] !== '"') fail('looking for beginning of object key string');
        string();
        skipWs();
        if (text[i] !== ':') fail('after object key');
        i++;
        value();
        skipWs();
        if (text[i] === ',') {
          i++;
          skipWs();
          continue;
        }
        if (text[i] === '}') {
          i++;
          depth--;
          return;
        }
        fail('after object key:value pair');
      }
    }
    if (c === '[') {
      i++;
      skipWs();
      if (text[i] === ']') {
        i++;
        depth--;
        return;
      }
      for (;;) {
        value();
        skipWs();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          depth--;
          return;
        }
        fail('after array element');
      }
    }
    if (c === '"') return string();
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return number();
    if (c === 't') return literal('true');
    if (c === 'f') return literal('false');
    if (c === 'n') return literal('null');
    fail('looking for beginning of value');
  };
  try {
    value();
    skipWs();
    if (i < n) fail('after top-level value');
    return undefined;
  } catch (err) {
    if (err instanceof Stop) return { index: err.index, reason: err.reason };
    throw err;
  }
}

/**
 * The input error for a JSON object kubectl refuses: Go's reason, why it matters, and the fix. `reason` is
 * goJsonSyntaxError's, or JSON.parse's message when Go's scanner found nothing.
 */
export function jsonRefusal(reason: string): string {
  return `not valid JSON: ${reason}, as kubectl's JSON decoder says when it refuses the file (a stream that starts with { is JSON objects to kubectl, not YAML), so it would apply nothing from this file. Fix: write it as JSON (keys and strings in double quotes, no trailing commas, no comments), or as YAML that does not start with { (e.g. a first line ---)`;
}
