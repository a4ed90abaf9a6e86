// Multi-document manifest reading for `lint` and Helm release records: split a stream into YAML documents
// (holding one document's text at a time), parse each one fast, and find source positions only for the
// documents that have something to report.
//
// Two parsers, one semantics (YAML 1.1 as kubectl reads it):
// - fastParse: a line-based reader for the block-style subset that `helm template`, `kustomize build` and
//   `kubectl get -o yaml` emit. It builds plain values and gives up (returns BAIL) on anything outside that
//   subset: flow collections, anchors, tags, folded scalars, multi-line plain or quoted scalars, tabs,
//   control characters, duplicate keys, unusual keys. Plain scalars are resolved by the rule the full parser
//   uses too (booleans and nulls of YAML 1.1, numbers by goYamlNumber in kubectl-yaml.ts), so the two paths
//   cannot disagree on values.
// - fullParse: the `yaml` package (KUBECTL_YAML: version 1.1, kubectl's numbers; unique keys) with source ranges, for documents the fast
//   reader gave up on, for parse errors (with line and column), and for positions where the fast path
//   was not used.
import { TextDecoder } from 'node:util';
import { Lexer, LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument } from 'yaml';
import type { Document, Node as YamlNode } from 'yaml';
import { aliasProblem, findValue, goYamlNumber, jsonNumberPastFloat64, KUBECTL_YAML, stringifyKeys } from './kubectl-yaml.ts';
import { GO_JSON_MAX_DEPTH, goJsonSyntaxError, goQuoteByte, jsonRefusal } from './go-json.ts';
import { goYamlScanProblem } from './go-yaml-scan.ts';
import { oneLine } from './json.ts';

export const MiB = 1024 * 1024;

/** One document of a stream: its text (without the `---` line). */
export interface RawDocument {
  text: string;
  /** 1-based line of `text`'s first line in the whole stream */
  line: number;
  /** 0-based index of the document in its stream (empty documents included) */
  index: number;
  /** an object of a JSON stream (one that starts with `{`), which kubectl reads as JSON, never as YAML */
  json?: boolean;
}

/** Input that cannot be read as manifests: the command exits 2 and prints `file:line:col: message`. */
export class InputError extends Error {
  readonly line: number | undefined;
  readonly column: number | undefined;
  constructor(message: string, line?: number, column?: number) {
    super(message);
    this.name = 'InputError';
    this.line = line;
    this.column = column;
  }
}

export interface SplitLimits {
  /** longest accepted line, in characters */
  maxLine: number;
  /** largest accepted document, in characters */
  maxDocument: number;
}

/** Kubernetes objects are at most ~1.5 MiB in etcd; a List from `kubectl get -o yaml` can be larger. */
export const DEFAULT_LIMITS: SplitLimits = { maxLine: 16 * MiB, maxDocument: 256 * MiB };

function countNewlines(s: string, from = 0, to = s.length): number {
  let n = 0;
  let i = s.indexOf('\n', from);
  while (i !== -1 && i < to) {
    n++;
    i = s.indexOf('\n', i + 1);
  }
  return n;
}

// A document marker at the start of a line: `---` or `...`, then whitespace or the end of the line; and any other line
// that starts with `---` (`----`, `---x`), which kubectl's reader takes for a separator too (and refuses, below).
const MARKER = /^(?:---|\.\.\.)(?=[ \t\r\n]|$)|^---/gm;

/**
 * Characters outside YAML's printable set as go-yaml v2 (kubectl's reader) applies it: C0 controls but tab, line feed
 * and carriage return, DEL, the C1 controls but U+0085 (NEXT LINE), U+FFFE and U+FFFF.
 */
export const NOT_PRINTABLE = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ufffe\uffff]/;

const C0_NAMES = ['NUL', 'SOH', 'STX', 'ETX', 'EOT', 'ENQ', 'ACK', 'BEL', 'BS', 'HT', 'LF', 'VT', 'FF', 'CR', 'SO', 'SI', 'DLE', 'DC1', 'DC2', 'DC3', 'DC4', 'NAK', 'SYN', 'ETB', 'CAN', 'EM', 'SUB', 'ESC', 'FS', 'GS', 'RS', 'US'];

/** `U+007F (DEL)`, `U+001B (ESC)`, `U+0080 (a C1 control)`, `U+FFFE (a noncharacter)`. */
function characterName(c: string): string {
  const code = c.charCodeAt(0);
  const hex = `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
  const name = code < 0x20 ? C0_NAMES[code] : code === 0x7f ? 'DEL' : code <= 0x9f ? 'a C1 control' : 'a noncharacter';
  return `${hex} (${name})`;
}

/** The double-quoted YAML escape of a character: \xNN, or \uNNNN. */
function escapeOf(c: string): string {
  const code = c.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

function sizeText(chars: number): string {
  return chars >= MiB ? `${Math.round(chars / MiB)} MiB` : `${Math.round(chars / 1024)} KiB`;
}

/** Go's unicode.IsSpace: what kubectl's GuessJSONStream trims before it looks for the `{` of a JSON stream. */
const NOT_GO_SPACE = /[^\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;

/** How many bytes of a stream kubectl peeks at to tell JSON from YAML: NewYAMLOrJSONDecoder(r, 4096). */
export const JSON_SNIFF_BYTES = 4096;

/**
 * How kubectl reads a stream, given its start (after a byte-order mark, which kubectl's reader drops): as JSON objects
 * when its first character that is not whitespace (Go's unicode.IsSpace) is a `{` within its first 4096 bytes of
 * UTF-8 (UTF-16 is read as UTF-8: its bytes are counted as UTF-8), as YAML otherwise, also after 4096 bytes of
 * whitespace. Undefined while `text`, only the start of the stream (`final` false), is whitespace shorter than that.
 */
export function kubectlStreamMode(text: string, final = true): 'json' | 'yaml' | undefined {
  // each character is at least one byte: a `{` past the first 4096 characters is past the first 4096 bytes
  const head = text.slice(0, JSON_SNIFF_BYTES);
  const m = NOT_GO_SPACE.exec(head);
  if (!m) return final || text.length >= JSON_SNIFF_BYTES ? 'yaml' : undefined;
  return m[0] === '{' && Buffer.byteLength(head.slice(0, m.index)) < JSON_SNIFF_BYTES ? 'json' : 'yaml';
}

/**
 * Splits a stream of text chunks into documents. Holds only the current document (plus the last partial
 * line). `push` returns the documents completed by that chunk; `end` the last one.
 */
export class DocumentSplitter {
  private buf = '';
  /** offset in buf where the current document's text starts */
  private docStart = 0;
  /** line number of buf[docStart] */
  private docLine = 1;
  /** offset in buf from which to look for the next marker (always the start of a line) */
  private scanFrom = 0;
  /** offset in buf just after the last newline seen, for the line-length limit */
  private lineStart = 0;
  private index = 0;
  private readonly limits: SplitLimits;
  /**
   * How the stream is read, decided by its first character that is not whitespace, as kubectl's
   * YAMLOrJSONDecoder does (kubectlStreamMode): `{` in its first 4096 bytes makes it a stream of JSON objects
   * (`jq -c '.items[]'`), one document each; anything else YAML documents between `---` lines.
   */
  private mode: 'unknown' | 'yaml' | 'json' = 'unknown';
  /** JSON mode: nesting depth at scanFrom, whether scanFrom is inside a string (and after a backslash). */
  private depth = 0;
  private inString = false;
  private escaped = false;
  /** JSON mode: line number of buf[scanFrom]. */
  private scanLine = 1;
  /**
   * Whether kubectl's reader (apimachinery's YAMLReader) has nothing buffered at docStart: at the start of the
   * stream, and after a `---` line that ended a document. A `---` line read then does not end a document (there is
   * none): the reader keeps the line as content of the next one, which YAML reads as a document start only when a
   * space or the end of the line follows the `---`.
   */
  private kubectlEmpty = true;

  constructor(limits: SplitLimits = DEFAULT_LIMITS) {
    this.limits = limits;
  }

  /**
   * YAML mode: text that kubectl's reader gives go-yaml (a document, quoted values, keys and comments included, or a
   * `---` line it keeps as content) holding a raw character outside YAML's printable set is refused, as kubectl
   * refuses the whole file ("yaml: control characters are not allowed"). The `---` lines that separate documents
   * are dropped by that reader, whatever their comment holds. A JSON stream is not checked: kubectl's JSON decoder
   * takes DEL and C1 controls in strings. `from` and `to` are offsets in the buffer, `from` on the current
   * document's line `docLine` or after it.
   */
  private refuseNotPrintable(from: number, to: number): void {
    if (to <= from) return;
    // only [from, to): a search of the whole buffer from `from` ran to its end on every document when nothing
    // matched, which made splitting quadratic (a 2 MB file took seconds). A slice of a flat string is a view.
    const part = this.buf.slice(from, to);
    const i = part.search(NOT_PRINTABLE);
    if (i < 0) return;
    const at = from + i;
    const m = [part[i]!];
    const line = this.docLine + countNewlines(this.buf, this.docStart, at);
    const column = at - Math.max(this.buf.lastIndexOf('\n', at - 1), this.docStart - 1);
    throw new InputError(
      `not valid for kubectl: a raw ${characterName(m[0])}, which kubectl refuses anywhere in a YAML file, in quotes and comments too ("yaml: control characters are not allowed"), so it would apply nothing from this file. Fix: remove it, or write it as the escape ${escapeOf(m[0])} inside a double-quoted string`,
      line,
      column,
    );
  }

  push(chunk: string): RawDocument[] {
    if (chunk === '') return [];
    const base = this.buf.length;
    this.buf += chunk;
    const nl = chunk.lastIndexOf('\n');
    if (nl !== -1) this.lineStart = base + nl + 1;
    const out: RawDocument[] = [];
    if (this.mode === 'unknown') this.mode = kubectlStreamMode(this.buf, false) ?? 'unknown';
    if (this.mode === 'json') this.scanJson(out);
    else if (this.mode === 'yaml') this.scan(out, false);
    if (this.buf.length - this.lineStart > this.limits.maxLine) {
      const line = this.docLine + countNewlines(this.buf, this.docStart, this.lineStart);
      throw new InputError(
        `line ${line} is longer than ${sizeText(this.limits.maxLine)}: not a Kubernetes manifest`,
        line,
        1,
      );
    }
    if (this.buf.length - this.docStart > this.limits.maxDocument)
      throw new InputError(
        `the document starting at line ${this.docLine} is larger than ${sizeText(this.limits.maxDocument)}`,
        this.docLine,
        1,
      );
    if (this.docStart > 0) {
      this.buf = this.buf.slice(this.docStart);
      this.scanFrom -= this.docStart;
      this.lineStart -= this.docStart;
      this.docStart = 0;
    }
    return out;
  }

  end(): RawDocument[] {
    const out: RawDocument[] = [];
    if (this.mode === 'json') {
      this.scanJson(out);
      if (this.depth > 0 || this.inString)
        throw new InputError(`not valid JSON: the object starting at line ${this.docLine} does not end`, this.docLine, 1);
      this.buf = '';
      this.docStart = this.scanFrom = this.lineStart = 0;
      return out;
    }
    this.scan(out, true);
    this.refuseNotPrintable(this.docStart, this.buf.length);
    out.push({ text: this.buf.slice(this.docStart), line: this.docLine, index: this.index++ });
    this.buf = '';
    this.docStart = this.scanFrom = this.lineStart = 0;
    return out;
  }

  /**
   * JSON mode: each top-level object is a document, from its `{` to its `}` (whitespace between them is
   * dropped). Strings are followed so that braces in them do not count; the objects themselves are checked by
   * the parser later, as any document is. Anything but an object at the top level is an InputError.
   */
  private scanJson(out: RawDocument[]): void {
    const buf = this.buf;
    let i = this.scanFrom;
    for (; i < buf.length; i++) {
      const c = buf.charCodeAt(i);
      if (c === 0x0a) this.scanLine++;
      if (this.inString) {
        // Go's JSON decoder (kubectl's) refuses a raw control character in a string, a tab too
        if (c < 0x20) {
          const column = i - (buf.lastIndexOf('\n', i - 1) + 1) + 1;
          throw new InputError(
            `not valid JSON: a raw ${characterName(buf[i]!)} inside a string, which kubectl's JSON decoder refuses ("invalid character ... in string literal"), so it would apply nothing from this file. Fix: write it as the escape \\u${c.toString(16).padStart(4, '0')}`,
            this.scanLine - (c === 0x0a ? 1 : 0),
            column,
          );
        }
        if (this.escaped) this.escaped = false;
        else if (c === 0x5c) this.escaped = true;
        else if (c === 0x22) this.inString = false;
        continue;
      }
      if (this.depth === 0) {
        if (c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a) {
          this.docStart = i + 1;
          continue;
        }
        if (c !== 0x7b) {
          const column = i - (buf.lastIndexOf('\n', i - 1) + 1) + 1;
          throw new InputError(
            `not valid JSON: a stream that starts with { holds JSON objects only (as kubectl reads it), found ${c > 0x20 && c < 0x7f ? JSON.stringify(buf[i]) : `U+${buf.codePointAt(i)!.toString(16).toUpperCase().padStart(4, '0')}`}`,
            this.scanLine,
            column,
          );
        }
        this.docStart = i;
        this.docLine = this.scanLine;
      }
      if (c === 0x22) this.inString = true;
      else if (c === 0x7b || c === 0x5b) {
        // Go's JSON decoder (kubectl's) stops at the object or array nested one level too deep, valid or not; JSON.parse
        // and the parsers after it would run out of stack long after that
        if (++this.depth > GO_JSON_MAX_DEPTH) {
          const column = i - (buf.lastIndexOf('\n', i - 1) + 1) + 1;
          throw new InputError(
            `not valid JSON: invalid character ${goQuoteByte(c)} exceeded max depth, as kubectl's JSON decoder says when it refuses the file: it reads objects and arrays nested at most ${GO_JSON_MAX_DEPTH} deep, so it would apply nothing from this file. Fix: nest them less deeply (a value that deep is rather a string)`,
            this.scanLine,
            column,
          );
        }
      } else if (c === 0x7d || c === 0x5d) {
        this.depth--;
        if (this.depth === 0) {
          out.push({ text: buf.slice(this.docStart, i + 1), line: this.docLine, index: this.index++, json: true });
          this.docStart = i + 1;
        }
      }
    }
    this.scanFrom = i;
  }

  private scan(out: RawDocument[], final: boolean): void {
    const buf = this.buf;
    MARKER.lastIndex = this.scanFrom;
    for (;;) {
      const m = MARKER.exec(buf);
      if (!m) {
        // no marker in the complete lines: resume at the start of the last (partial) line
        this.scanFrom = Math.max(this.scanFrom, this.lineStart);
        return;
      }
      const p = m.index;
      let e = buf.indexOf('\n', p);
      if (e === -1) {
        if (!final) {
          this.scanFrom = p;
          return;
        }
        e = buf.length;
      }
      const text = buf.slice(this.docStart, p);
      const markerLine = this.docLine + countNewlines(text);
      // `--- <content>` (a flow mapping, a tag, a block scalar header), `----`: kubectl's reader (apimachinery's
      // YAMLReader) allows only spaces and a comment after the `---` that starts a line, and refuses the file
      const rest = buf.slice(p + 3, e).trim();
      if (m[0] === '---' && rest !== '' && !rest.startsWith('#')) {
        const column = buf.slice(p + 3, e).search(/\S/) + 4;
        const shown = rest.length > 40 ? `${rest.slice(0, 40)}…` : rest;
        throw new InputError(
          `kubectl refuses the file: "invalid Yaml document separator: ${shown}" (only spaces and a comment may follow a line's leading ---). Fix: start the document on the line after ---`,
          markerLine,
          column,
        );
      }
      if (m[0] === '---') {
        if (text === '' && this.kubectlEmpty) {
          // `---#x` with nothing before it: kubectl's YAML reads the line as the string "---#x" and refuses the file
          if (buf.charCodeAt(p + 3) === 0x23)
            throw new InputError(
              `kubectl refuses the file: it reads "${buf.slice(p, e).trim().slice(0, 40)}" as content, not as a separator, where no document precedes it (at the start of the file, or right after the --- that ends a document), and YAML reads it as a string. Fix: put a space after --- (--- #...)`,
              markerLine,
              1,
            );
          this.kubectlEmpty = false;
        } else this.kubectlEmpty = true;
      } else this.kubectlEmpty = false; // `...`: content to kubectl's reader
      this.refuseNotPrintable(this.docStart, p);
      // a `---` line kubectl's reader keeps (nothing before it) is content to go-yaml
      if (m[0] === '---' && text === '' && !this.kubectlEmpty) this.refuseNotPrintable(p, e);
      out.push({ text, line: this.docLine, index: this.index++ });
      this.docStart = Math.min(e + 1, buf.length);
      this.docLine = markerLine + 1;
      this.scanFrom = Math.min(e + 1, buf.length);
      MARKER.lastIndex = this.scanFrom;
      if (e >= buf.length) {
        this.scanFrom = buf.length;
        return;
      }
    }
  }
}

/** Splits a whole string (e.g. a Helm release's manifest) into documents. */
export function splitDocuments(text: string, limits: SplitLimits = DEFAULT_LIMITS): RawDocument[] {
  const s = new DocumentSplitter(limits);
  return [...s.push(text), ...s.end()];
}

/**
 * The text encoding of a byte stream by its byte-order mark, as kubectl reads files and stdin
 * (unicode.BOMOverride): UTF-16 (big- or little-endian) with its BOM, which PowerShell 5's `>` writes; else UTF-8
 * (its BOM dropped). The BOM itself is dropped by the decoder.
 */
function decoderFor(first: Uint8Array): { decoder: TextDecoder; name: string } {
  const utf16 = first[0] === 0xfe && first[1] === 0xff ? 'utf-16be' : first[0] === 0xff && first[1] === 0xfe ? 'utf-16le' : undefined;
  if (utf16) return { decoder: new TextDecoder(utf16, { fatal: true, ignoreBOM: false }), name: 'UTF-16' };
  return { decoder: new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }), name: 'UTF-8' };
}

/**
 * A whole file's text, decoded as readDocuments decodes a stream (UTF-8, a BOM dropped, or UTF-16 with its BOM);
 * anything else is an InputError naming the line.
 */
export function decodeText(bytes: Uint8Array): string {
  const { decoder, name } = decoderFor(bytes);
  try {
    return decoder.decode(bytes);
  } catch {
    // the line of the first byte sequence that is not text (UTF-16: a lone surrogate, or an odd length at the end)
    const loose = new TextDecoder(decoder.encoding).decode(bytes);
    const line = 1 + countNewlines(loose, 0, Math.max(loose.indexOf('\uFFFD'), 0));
    throw new InputError(`not ${name} text (a binary file?) near line ${line}`, line, 1);
  }
}

/**
 * The line breaks in a chunk of a stream before its first byte sequence that is not text in `encoding`, for the line
 * of a decoding error (the decoder only says that the chunk holds one). The bad sequence may start in the bytes
 * before the chunk, which the decoder held back (a character cut at the chunk's end): `tail` is the last bytes
 * before the chunk (at most 4, enough for what a decoder holds back), from offset `tailStart` of the stream. They
 * are decoded in front of the chunk, from their first character start on (they hold complete characters too, whose
 * line breaks were counted already: not counted again). Found by bisection on prefixes, each decoded anew: only when
 * the input is refused.
 */
function linesBeforeBadBytes(tail: Uint8Array, chunk: Uint8Array, encoding: string, tailStart: number): number {
  const bytes = Buffer.concat([tail, chunk]);
  let skip = 0;
  if (encoding === 'utf-8') while (skip < tail.length && (bytes[skip]! & 0xc0) === 0x80) skip++;
  else {
    skip = tailStart % 2;
    const unit = encoding === 'utf-16be' ? (bytes[skip]! << 8) | bytes[skip + 1]! : bytes[skip]! | (bytes[skip + 1]! << 8);
    if (skip + 2 <= tail.length && unit >= 0xdc00 && unit <= 0xdfff) skip += 2; // the second half of a surrogate pair
  }
  const decode = (to: number, fatal: boolean) =>
    new TextDecoder(encoding, { fatal, ignoreBOM: true }).decode(bytes.subarray(skip, to), { stream: true });
  // the longest prefix that decodes: a prefix that ends inside a character decodes too (stream)
  let lo = skip;
  let hi = bytes.length;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    try {
      decode(mid, true);
      lo = mid;
    } catch {
      hi = mid - 1;
    }
  }
  // the tail's own line breaks were counted with the chunk before (it decoded then, so decodes alone too)
  return Math.max(0, countNewlines(decode(lo, false)) - countNewlines(decode(Math.max(tail.length, skip), false)));
}

/** The last `n` bytes of `a` then `b`. */
function lastBytes(a: Uint8Array, b: Uint8Array, n: number): Uint8Array {
  if (b.length >= n) return Uint8Array.from(b.subarray(b.length - n));
  const keep = Math.min(a.length, n - b.length);
  return Uint8Array.from(Buffer.concat([a.subarray(a.length - keep), b]));
}

/**
 * Reads documents from a byte stream (a file or stdin). The bytes must be UTF-8 (a leading BOM is
 * dropped), or UTF-16 with its BOM; anything else is an InputError, as are over-long lines and documents.
 */
export async function* readDocuments(
  source: AsyncIterable<Buffer | Uint8Array | string>,
  limits: SplitLimits = DEFAULT_LIMITS,
): AsyncGenerator<RawDocument> {
  let enc: { decoder: TextDecoder; name: string } | undefined;
  /** the first byte, while the stream has given only one (the BOM takes two) */
  let head: Uint8Array | undefined;
  const splitter = new DocumentSplitter(limits);
  let linesSoFar = 1;
  /** bytes decoded before the current chunk */
  let bytesSoFar = 0;
  /** the last bytes decoded (at most 4): the decoder may hold back the start of a character among them */
  let tail: Uint8Array = new Uint8Array(0);
  for await (const chunk of source) {
    let text: string;
    if (typeof chunk === 'string') text = chunk;
    else {
      let bytes = chunk;
      if (enc === undefined) {
        if (head) bytes = Buffer.concat([head, bytes]);
        if (bytes.length < 2) {
          head = Uint8Array.from(bytes);
          continue;
        }
        head = undefined;
        enc = decoderFor(bytes);
      }
      try {
        text = enc.decoder.decode(bytes, { stream: true });
      } catch {
        const line = linesSoFar + linesBeforeBadBytes(tail, bytes, enc.decoder.encoding, bytesSoFar - tail.length);
        throw new InputError(`not ${enc.name} text (a binary file?) near line ${line}`, line, 1);
      }
      bytesSoFar += bytes.length;
      tail = lastBytes(tail, bytes, 4);
    }
    linesSoFar += countNewlines(text);
    yield* splitter.push(text);
  }
  if (head) enc = decoderFor(head);
  try {
    const tail = enc ? enc.decoder.decode(head ?? new Uint8Array(0)) : '';
    if (tail) yield* splitter.push(tail);
  } catch {
    throw new InputError(`not ${enc!.name} text (a binary file?): the input ends inside a character`, linesSoFar, 1);
  }
  yield* splitter.end();
}

/**
 * True when a document holds nothing but blank lines and comments (Helm emits these for empty templates). A tab outside
 * a comment makes it not blank: kubectl refuses it, as the parser says.
 */
export function isBlankDocument(text: string): boolean {
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    // (a tab outside a comment is refused by kubectl: the parser says where)
    if (c === 32 || c === 10 || c === 13 || c === 0xfeff) {
      i++;
      continue;
    }
    if (c === 35) {
      const e = text.indexOf('\n', i);
      if (e === -1) return true;
      i = e + 1;
      continue;
    }
    return false;
  }
  return true;
}

/** Helm's `# Source: <chart>/templates/<file>` comment at the top of a document, if any. */
export function sourceOf(text: string): string | undefined {
  let i = 0;
  const n = Math.min(text.length, 64 * 1024);
  while (i < n) {
    const e0 = text.indexOf('\n', i);
    const e = e0 === -1 ? text.length : e0;
    const line = text.slice(i, e).trim();
    if (line.startsWith('# Source:')) return line.slice(9).trim() || undefined;
    if (line !== '' && !line.startsWith('#')) return undefined;
    if (e0 === -1) return undefined;
    i = e + 1;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------
// Fast parser

export const BAIL: unique symbol = Symbol('bail');

/** Whether the last fastParse() read its document with JSON.parse (a JSON document), also when it then bailed. */
let readAsJson = false;

/** Positions of keys (and sequence items) per container: [line, column], both 1-based, document-relative. */
export type PositionMap = Map<object, Map<string | number, [number, number]>>;

const TRUE = /^(?:Y|y|[Yy]es|YES|[Tt]rue|TRUE|[Oo]n|ON)$/;
const FALSE = /^(?:N|n|[Nn]o|NO|[Ff]alse|FALSE|[Oo]ff|OFF)$/;
const NULL = /^(?:~|[Nn]ull|NULL)$/;
const SAFE_KEY = /^[A-Za-z_/][A-Za-z0-9_./-]*$/;
const SIMPLE_INT = /^(?:0|[1-9][0-9]{0,14})$/;
// control characters (and tabs) send a document to the full parser, which knows the exact rules
const UNUSUAL = /[\x00-\x09\x0b\x0c\x0e-\x1f\x7f\x85\u2028\u2029\ufeff]|\r(?!\n)/;
/** Resolves a plain scalar as kubectl does (KUBECTL_YAML): null, booleans, numbers, strings (timestamps too). */
function resolvePlain(s: string): unknown {
  const c = s.charCodeAt(0);
  const len = s.length;
  if (len <= 5) {
    if (TRUE.test(s)) return true;
    if (FALSE.test(s)) return false;
    if (NULL.test(s)) return null;
  }
  // only scalars starting with a digit, a sign or a dot can be numbers
  if ((c >= 48 && c <= 57) || c === 43 || c === 45 || c === 46) {
    if (SIMPLE_INT.test(s)) return Number(s);
    const n = goYamlNumber(s);
    if (n === undefined) return s;
    // .inf and .nan: kubectl cannot put them into JSON; the full parser says where
    return Number.isFinite(n) ? n : BAIL;
  }
  return s;
}

/** Text that may hold a JSON number past float64's range: an exponent of three digits, or 309 digits in a row. */
const MAYBE_HUGE_NUMBER = /[0-9][eE]\+?[0-9]{3}|[0-9]{309}/;

function hasInfinity(v: unknown): boolean {
  if (typeof v === 'number') return !Number.isFinite(v);
  if (typeof v !== 'object' || v === null) return false;
  for (const x of Array.isArray(v) ? v : Object.values(v)) if (hasInfinity(x)) return true;
  return false;
}

interface Frame {
  indent: number;
  seq: boolean;
  c: any;
}

function isKeyword(key: string): boolean {
  return key.length <= 5 && (TRUE.test(key) || FALSE.test(key) || NULL.test(key));
}

/**
 * Parses one document of the block-style subset into plain values, or returns BAIL when the document uses
 * anything else (the caller then uses fullParse). `undefined` for a document without content. With `pos`,
 * records the position of every key and sequence item.
 */
/** JSON escapes go-yaml (kubectl's YAML reader) refuses in a double-quoted scalar: \/ and \uD800-\uDFFF (may match more). */
const GO_YAML_REFUSED_ESCAPE = /\\\/|\\u[dD][89abAB]/;

export function fastParse(text: string, pos?: PositionMap): unknown {
  readAsJson = false;
  if (UNUSUAL.test(text)) return BAIL;
  const n = text.length;
  let i = 0;
  // skip leading blank and comment lines to find the first content character
  let first = 0;
  while (first < n) {
    const c = text.charCodeAt(first);
    if (c === 32 || c === 10 || c === 13) first++;
    else if (c === 35) {
      const e = text.indexOf('\n', first);
      first = e === -1 ? n : e + 1;
    } else break;
  }
  if (first >= n) return null; // an empty document reads as null, as the yaml package reads it
  const c0 = text.charCodeAt(first);
  // (a YAML document: escapes JSON has and go-yaml refuses, \/ and surrogate halves, go to the full parser, which says so)
  if (c0 === 123 /* { */ && !pos && !GO_YAML_REFUSED_ESCAPE.test(text)) {
    try {
      // of duplicate keys the last wins, as kubectl (encoding/json) reads them: fullParse(text, true) agrees
      const v = JSON.parse(text);
      // a number past float64's range (1e400) is Infinity here and an error for kubectl: the full parser says where
      readAsJson = true;
      if (MAYBE_HUGE_NUMBER.test(text) && hasInfinity(v)) return BAIL;
      return v;
    } catch {
      return BAIL;
    }
  }
  if (c0 === 45 && text.startsWith('---', first)) return BAIL;

  const stack: Frame[] = [];
  let root: any;
  // a key or sequence item whose value is on the following lines
  let pc: any = null;
  let pk: string | number = 0;
  let pIndent = -1;
  let pSeqOk = false;
  let lineNo = 0;

  const posOf = (c: object): Map<string | number, [number, number]> => {
    let m = pos!.get(c);
    if (!m) pos!.set(c, (m = new Map()));
    return m;
  };

  while (i < n) {
    let e = text.indexOf('\n', i);
    if (e === -1) e = n;
    lineNo++;
    let end = e;
    if (end > i && text.charCodeAt(end - 1) === 13) end--;
    let j = i;
    while (j < end && text.charCodeAt(j) === 32) j++;
    if (j === end) {
      i = e + 1;
      continue;
    }
    let ch = text.charCodeAt(j);
    if (ch === 35) {
      i = e + 1;
      continue;
    }
    const ind = j - i;
    let isSeq = ch === 45 && (j + 1 === end || text.charCodeAt(j + 1) === 32);

    if (pc !== null) {
      if (ind > pIndent || (isSeq && ind === pIndent && pSeqOk)) {
        const c = isSeq ? [] : {};
        pc[pk] = c;
        stack.push({ indent: ind, seq: isSeq, c });
      }
      pc = null;
    }
    if (root === undefined) {
      if (isSeq) return BAIL; // not a mapping: the full parser says what it is
      root = {};
      stack.push({ indent: ind, seq: false, c: root });
    }
    let top = stack[stack.length - 1];
    while (top.indent > ind) {
      stack.pop();
      if (stack.length === 0) return BAIL;
      top = stack[stack.length - 1];
    }
    if (top.indent < ind) return BAIL; // a continuation line or bad indentation
    if (top.seq && !isSeq) {
      stack.pop();
      if (stack.length === 0) return BAIL;
      top = stack[stack.length - 1];
      if (top.indent !== ind || top.seq) return BAIL;
    }
    if (isSeq !== top.seq) return BAIL;

    // the container and column of the entry on this line
    let container: any = top.c;
    let col = j;
    let ownerIndent = ind;
    let key: string | number;

    if (isSeq) {
      const arr = container as unknown[];
      let k = j + 1;
      while (k < end && text.charCodeAt(k) === 32) k++;
      key = arr.length;
      arr.push(null);
      if (pos) posOf(arr).set(key, [lineNo, j - i + 1]);
      if (k === end || text.charCodeAt(k) === 35) {
        // `-` alone: the item is on the following lines
        pc = arr;
        pk = key;
        pIndent = ind;
        pSeqOk = false;
        i = e + 1;
        continue;
      }
      ch = text.charCodeAt(k);
      if (ch === 45 && (k + 1 === end || text.charCodeAt(k + 1) === 32)) return BAIL; // `- - x`
      // `- key: value` opens a mapping at the key's column
      const kc = findKeyColon(text, k, end);
      if (kc === -2) return BAIL;
      if (kc >= 0) {
        const m = {};
        arr[key as number] = m;
        stack.push({ indent: k - i, seq: false, c: m });
        container = m;
        col = k;
        ownerIndent = k - i;
      } else {
        ownerIndent = ind;
        col = k;
        // a scalar item: fall through to the value reader with the item as the slot
        const r = readValue(text, k, end, e, ownerIndent, arr, key);
        if (r === BAIL) return BAIL;
        if (r === PENDING) {
          pc = arr;
          pk = key;
          pIndent = ind;
          pSeqOk = false;
          i = e + 1;
        } else i = r as number;
        lineNo += blockLines;
        continue;
      }
    }

    // a mapping entry at `col`
    const kc = findKeyColon(text, col, end);
    if (kc < 0) return BAIL;
    let keyText: string;
    const q = text.charCodeAt(col);
    if (q === 34 || q === 39) {
      keyText = text.slice(col + 1, kc - 1);
    } else {
      keyText = text.slice(col, kc);
      if (!SAFE_KEY.test(keyText) || isKeyword(keyText)) return BAIL;
    }
    if (keyText === '__proto__' || Object.hasOwn(container, keyText)) return BAIL;
    key = keyText;
    container[key] = null;
    if (pos) posOf(container).set(key, [lineNo, col - i + 1]);
    let v = kc + 1;
    while (v < end && text.charCodeAt(v) === 32) v++;
    const r = readValue(text, v, end, e, ownerIndent, container, key);
    if (r === BAIL) return BAIL;
    if (r === PENDING) {
      pc = container;
      pk = key;
      pIndent = ownerIndent;
      pSeqOk = true;
      i = e + 1;
    } else i = r as number;
    lineNo += blockLines;
  }
  return root;
}

/** indexOf bounded to [from, end): -1 when not found (never scans past the line). */
function find(text: string, code: number, from: number, end: number): number {
  for (let k = from; k < end; k++) if (text.charCodeAt(k) === code) return k;
  return -1;
}

/** The offset of ` #` (a comment start) in [from, end), or -1. */
function findComment(text: string, from: number, end: number): number {
  for (let k = from + 1; k < end; k++) if (text.charCodeAt(k) === 35 && text.charCodeAt(k - 1) === 32) return k - 1;
  return -1;
}

/**
 * Where the `:` of a mapping key on this line is: its offset; -1 when the line holds no key (a scalar);
 * -2 when the key is something the fast reader does not handle.
 */
function findKeyColon(text: string, j: number, end: number): number {
  const q = text.charCodeAt(j);
  if (q === 34 || q === 39) {
    // a quoted key on one line, without escapes
    const close = find(text, q, j + 1, end);
    if (close === -1) return -2;
    if (q === 34 && find(text, 92, j + 1, close) !== -1) return -2;
    if (close + 1 < end && text.charCodeAt(close + 1) === 58) {
      if (close + 2 === end || text.charCodeAt(close + 2) === 32) return close + 1;
      return -2;
    }
    if (q === 39 && close + 1 < end && text.charCodeAt(close + 1) === 39) return -2;
    // a quoted scalar followed by something: not a key; let the value reader check it
    const c = find(text, 58, close, end);
    if (c !== -1) return -2;
    return -1;
  }
  if (q === 63 /* ? */ || q === 38 || q === 42 || q === 33 || q === 91 || q === 123 || q === 124 || q === 62) {
    // `? complex key`, anchors, aliases, tags, flow collections, block scalars: not a plain key
    return find(text, 58, j, end) !== -1 ? -2 : -1;
  }
  for (let k = j; k < end; k++) {
    const c = text.charCodeAt(k);
    if (c === 58) {
      if (k + 1 === end || text.charCodeAt(k + 1) === 32) return k;
    } else if (c === 35 && k > j && text.charCodeAt(k - 1) === 32) return -1; // a comment starts first
  }
  return -1;
}

const PENDING: unique symbol = Symbol('pending');
/** lines consumed by the last block scalar, beyond its header line */
let blockLines = 0;

/**
 * Reads the value starting at `v` on a line ending at `end` (next newline at `e`) into c[k]. Returns the
 * offset of the next line to read, PENDING when the value is on the following lines, or BAIL.
 */
function readValue(text: string, v: number, end: number, e: number, ownerIndent: number, c: any, k: string | number): number | typeof PENDING | typeof BAIL {
  blockLines = 0;
  if (v === end) return PENDING;
  const ch = text.charCodeAt(v);
  switch (ch) {
    case 35: // #
      return PENDING;
    case 34: {
      // "double quoted" on one line, no escapes
      const close = find(text, 34, v + 1, end);
      if (close === -1) return BAIL;
      if (find(text, 92, v + 1, close) !== -1) return BAIL;
      if (!restIsBlank(text, close + 1, end)) return BAIL;
      c[k] = text.slice(v + 1, close);
      return e + 1;
    }
    case 39: {
      // 'single quoted' on one line; '' is a quote
      let p = v + 1;
      let out = '';
      for (;;) {
        const close = find(text, 39, p, end);
        if (close === -1) return BAIL;
        if (text.charCodeAt(close + 1) === 39 && close + 1 < end) {
          out += text.slice(p, close + 1);
          p = close + 2;
          continue;
        }
        out += text.slice(p, close);
        if (!restIsBlank(text, close + 1, end)) return BAIL;
        c[k] = out;
        return e + 1;
      }
    }
    case 124: // | literal block scalar
      return readLiteral(text, v, end, e, ownerIndent, c, k);
    case 123: // {
    case 91: // [
      if (text.charCodeAt(v + 1) === (ch === 123 ? 125 : 93) && restIsBlank(text, v + 2, end)) {
        c[k] = ch === 123 ? {} : [];
        return e + 1;
      }
      if (ch === 91) {
        const seq = readFlowSeq(text, v, end);
        if (seq === BAIL) return BAIL;
        c[k] = seq;
        return e + 1;
      }
      return BAIL;
    case 62: // > folded
    case 38: // & anchor
    case 42: // * alias
    case 33: // ! tag
    case 37: // %
    case 64: // @
    case 96: // `
    case 63: // ?
    case 44: // ,
    case 93: // ]
    case 125: // }
      return BAIL;
    case 45: // -
      if (v + 1 === end || text.charCodeAt(v + 1) === 32) return BAIL;
      break;
    case 58: // :
      if (v + 1 === end || text.charCodeAt(v + 1) === 32) return BAIL;
      break;
  }
  // a plain scalar: up to a ` #` comment, trailing spaces trimmed
  let stop = end;
  const h = findComment(text, v, end);
  if (h !== -1) stop = h;
  while (stop > v && text.charCodeAt(stop - 1) === 32) stop--;
  const s = text.slice(v, stop);
  if (s.includes(': ') || s.charCodeAt(s.length - 1) === 58) return BAIL;
  const val = resolvePlain(s);
  if (val === BAIL) return BAIL;
  c[k] = val;
  return e + 1;
}

/** `[a, "b", 'c']` on one line: scalars only (no nesting, no escapes). */
function readFlowSeq(text: string, v: number, end: number): unknown[] | typeof BAIL {
  const out: unknown[] = [];
  let p = v + 1;
  for (;;) {
    while (p < end && text.charCodeAt(p) === 32) p++;
    if (p >= end) return BAIL;
    const ch = text.charCodeAt(p);
    if (ch === 34) {
      const close = find(text, 34, p + 1, end);
      if (close === -1 || find(text, 92, p + 1, close) !== -1) return BAIL;
      out.push(text.slice(p + 1, close));
      p = close + 1;
    } else if (ch === 39) {
      const close = find(text, 39, p + 1, end);
      if (close === -1 || (close + 1 < end && text.charCodeAt(close + 1) === 39)) return BAIL;
      out.push(text.slice(p + 1, close));
      p = close + 1;
    } else {
      let q = p;
      for (; q < end; q++) {
        const c = text.charCodeAt(q);
        if (c === 44 || c === 93) break;
        // nested collections, pairs, comments, anchors, tags, aliases: the full parser
        if (c === 91 || c === 123 || c === 125 || c === 58 || c === 35 || c === 38 || c === 42 || c === 33 || c === 63 || c === 124 || c === 62 || c === 34 || c === 39 || c === 37 || c === 64 || c === 96)
          return BAIL;
      }
      let r = q;
      while (r > p && text.charCodeAt(r - 1) === 32) r--;
      if (r === p) return BAIL; // an empty entry
      if (text.charCodeAt(p) === 45 && (p + 1 === r || text.charCodeAt(p + 1) === 32)) return BAIL;
      const val = resolvePlain(text.slice(p, r));
      if (val === BAIL) return BAIL;
      out.push(val);
      p = q;
    }
    while (p < end && text.charCodeAt(p) === 32) p++;
    if (p >= end) return BAIL;
    const sep = text.charCodeAt(p);
    if (sep === 93) return restIsBlank(text, p + 1, end) ? out : BAIL;
    if (sep !== 44) return BAIL;
    p++;
  }
}

function restIsBlank(text: string, p: number, end: number): boolean {
  if (p >= end) return true;
  if (text.charCodeAt(p) !== 32) return false;
  while (p < end && text.charCodeAt(p) === 32) p++;
  return p === end || text.charCodeAt(p) === 35;
}

function readLiteral(text: string, v: number, end: number, e: number, n: number, c: any, k: string | number): number | typeof BAIL {
  let header = text.slice(v + 1, end);
  const h = header.indexOf(' #');
  if (h !== -1) header = header.slice(0, h);
  header = header.trimEnd();
  if (header !== '' && header !== '-' && header !== '+') return BAIL;
  const len = text.length;
  let p = e + 1;
  let blockIndent = -1;
  const lines: string[] = [];
  let consumed = 0;
  while (p < len) {
    let e2 = text.indexOf('\n', p);
    if (e2 === -1) return BAIL; // a block scalar at the very end without a newline: let the full parser decide
    let end2 = e2;
    if (end2 > p && text.charCodeAt(end2 - 1) === 13) end2--;
    let q = p;
    while (q < end2 && text.charCodeAt(q) === 32) q++;
    if (q === end2) {
      if (blockIndent < 0 && q > p) return BAIL; // leading whitespace-only lines: exact rules are subtle
      lines.push(blockIndent < 0 ? '' : text.slice(p + blockIndent, end2));
      p = e2 + 1;
      consumed++;
      continue;
    }
    const ind2 = q - p;
    if (blockIndent < 0) {
      if (ind2 <= n) break;
      blockIndent = ind2;
    } else if (ind2 < blockIndent) break;
    lines.push(text.slice(p + blockIndent, end2));
    p = e2 + 1;
    consumed++;
  }
  let last = lines.length;
  while (last > 0 && lines[last - 1] === '') last--;
  let value: string;
  if (last === 0) {
    if (header === '+' && lines.length) return BAIL;
    value = '';
  } else {
    const body = (last === lines.length ? lines : lines.slice(0, last)).join('\n');
    value = header === '-' ? body : header === '+' ? `${lines.join('\n')}\n` : `${body}\n`;
  }
  c[k] = value;
  blockLines = consumed;
  return p;
}

// ---------------------------------------------------------------------------------------------------
// Full parser and positions

/** A parse error with its position (document-relative, 1-based). */
export class ManifestParseError extends Error {
  readonly line: number;
  readonly column: number;
  constructor(message: string, line: number, column: number) {
    super(message);
    this.name = 'ManifestParseError';
    this.line = line;
    this.column = column;
  }
}

/**
 * The yaml package's error, one line, with what kubectl reads otherwise: go-yaml v2 (kubectl) reads a quoted string,
 * or a `[...]`/`{...}` value, continued on lines at its key's indentation or less; the yaml package, as YAML itself,
 * wants them indented more than the key, and fails with one of these two errors.
 */
export function yamlErrorText(e: { code: string; message: string }): string {
  const first = oneLine(e.message).replace(/ at line \d+, column \d+:?$/, '');
  const quoted = e.code === 'MISSING_CHAR' && /^Missing closing ["']quote/.test(first);
  const flow = e.code === 'BAD_INDENT' && /^Flow (sequence|map) in block collection must be sufficiently indented/.test(first);
  if (!quoted && !flow) return first;
  return `${first}. If the ${quoted ? 'string' : 'value'} goes on in the next lines, indent them more than its key: kubectl reads such lines at the key's indentation or less, kagenti-webhook's YAML reader (as YAML itself) does not`;
}

/** A JSON object JSON.parse refused, as kubectl's JSON decoder refuses it: where Go's scanner stops, in its words. */
export function jsonParseError(text: string, err: unknown): ManifestParseError {
  const go = goJsonSyntaxError(text);
  const index = go?.index ?? 0;
  const line = 1 + countNewlines(text, 0, index);
  const column = index - (index > 0 ? text.lastIndexOf('\n', index - 1) : -1);
  return new ManifestParseError(jsonRefusal(go?.reason ?? oneLine((err as Error).message)), line, column);
}

export interface FullParse {
  value: unknown;
  doc: Document;
  lc: LineCounter;
}

/**
 * Parses one document with the `yaml` package (YAML 1.1, unique keys); throws ManifestParseError. `json`: the text
 * is a JSON document (JSON.parse read it), where the last of duplicate keys wins, as kubectl reads JSON.
 */
/**
 * Offset of the first raw U+0085 (NEXT LINE) in `text` outside a quoted scalar (in a plain or block scalar, a key, or a
 * comment with text after it), or -1. go-yaml v2 counts it as a line break there; inside quotes it folds it like one, which is left as
 * this parser reads it. The lexer's own markers (\x02, \x18, \x1f) are not source text: NOT_PRINTABLE refuses those
 * characters before any document is parsed.
 */
/**
 * In a comment, the first U+0085 after which comes text other than blanks, further U+0085 or another comment (kubectl
 * then reads that text as content), or -1. One pass from the end: linear whatever the number of breaks.
 */
function commentBreak(comment: string): number {
  let found = -1;
  // the first character after the current position that is not a blank or U+0085 (none: '')
  let next = '';
  for (let i = comment.length - 1; i >= 0; i--) {
    const c = comment[i]!;
    if (c === '\x85') {
      if (next !== '' && next !== '#') found = i;
    } else if (c !== ' ' && c !== '\t') next = c;
  }
  return found;
}

function nextLineOutsideQuotes(text: string): number {
  if (!text.includes('\x85')) return -1;
  let at = 0;
  for (const token of new Lexer().lex(text)) {
    if (token === '\x02' || token === '\x18' || token === '\x1f') continue;
    if (token[0] !== '"' && token[0] !== "'") {
      const i = token[0] === '#' ? commentBreak(token) : token.indexOf('\x85');
      if (i >= 0) return at + i;
    }
    at += token.length;
  }
  return -1;
}

/** About how deep the yaml package reads nested collections before it runs out of stack (for messages). */
const READER_DEPTH = '1,000';

export function fullParse(text: string, json = false): FullParse {
  const lc = new LineCounter();
  let doc: Document;
  try {
    doc = parseDocument(text, { ...KUBECTL_YAML, uniqueKeys: !json, lineCounter: lc, prettyErrors: false, strict: true });
  } catch (err) {
    throw new ManifestParseError(`not valid YAML: ${oneLine((err as Error).message)}`, 1, 1);
  }
  const errs = doc.errors;
  if (errs.length) {
    const e = errs[0];
    const at = lc.linePos(e.pos[0]);
    // the yaml package is recursive: it runs out of stack about 1,000 levels deep, where kubectl reads up to 10,000
    if (/Maximum call stack size exceeded/.test(e.message))
      throw new ManifestParseError(
        `nested too deeply for kagenti-webhook's YAML reader, which runs out of stack about ${READER_DEPTH} levels deep (kubectl reads up to 10000), so this document cannot be checked or rewritten here. Fix: nest it less deeply (a value that deep is rather a string)`,
        at.line,
        at.col,
      );
    throw new ManifestParseError(`not valid YAML: ${yamlErrorText(e)}`, at.line, at.col);
  }
  // what go-yaml v2 (kubectl's reader) refuses and this parser reads: tabs where a token would start, anchor names
  // past [A-Za-z0-9_-], escapes YAML 1.2 added; each a character fastParse bails on, so only these documents pay
  const scan = json ? undefined : goYamlScanProblem(text);
  if (scan) {
    const at = lc.linePos(scan.offset);
    throw new ManifestParseError(scan.message, at.line, at.col);
  }
  // a raw NEXT LINE outside quotes: go-yaml v2 (kubectl's reader) breaks the line there, YAML 1.2 (this parser) does not
  const nel = json ? -1 : nextLineOutsideQuotes(text);
  if (nel >= 0) {
    const at = lc.linePos(nel);
    throw new ManifestParseError(
      `not valid for kubectl: a raw U+0085 (NEXT LINE) outside quotes, which kubectl's YAML reader takes for a line break, so it refuses the file or reads another value than this file shows. Fix: remove it, or write it as the escape \\N inside a double-quoted string`,
      at.line,
      at.col,
    );
  }
  // .inf and .nan: kubectl reads them as floats, then cannot put them into JSON and rejects the whole file
  const bad = findValue(doc, (node) => typeof node.value === 'number' && !Number.isFinite(node.value));
  if (bad) {
    const at = lc.linePos(bad.range?.[0] ?? 0);
    const src = bad.range ? text.slice(bad.range[0], bad.range[1]) : String(bad.value);
    const go = Number.isNaN(bad.value) ? 'NaN' : (bad.value as number) > 0 ? '+Inf' : '-Inf';
    throw new ManifestParseError(
      `not valid for kubectl: ${src} is the YAML float ${go}, which JSON has no value for (kubectl fails with "json: unsupported value: ${go}"); quote it ('${src}') if it is meant as a string`,
      at.line,
      at.col,
    );
  }
  // a JSON number past float64's range: kubectl's JSON decoder refuses the file (YAML reads it as a string)
  const huge = json ? jsonNumberPastFloat64(doc) : undefined;
  if (huge) {
    const at = lc.linePos(huge.node.range?.[0] ?? 0);
    throw new ManifestParseError(huge.message, at.line, at.col);
  }
  // keys as kubectl reads them: every key a string (`1.5e10` is "1.5e+10"), and a mapping, sequence or null key, which
  // kubectl cannot make one of, refused ("error converting YAML to JSON"); JSON keys are strings already
  const badKey = json ? undefined : stringifyKeys(doc);
  if (badKey) {
    const at = lc.linePos(badKey.node.range?.[0] ?? 0);
    throw new ManifestParseError(
      `not valid for kubectl: ${badKey.why}, which kubectl cannot read (it makes every key a string and has none for this one: "error converting YAML to JSON"). Fix: write the key as a string, quoted if it looks like null or a number`,
      at.line,
      at.col,
    );
  }
  // aliases: what kubectl refuses (an anchor containing itself, an alias bomb), before anything is expanded; then no
  // count of uses (a hundred uses of one anchor are fine for kubectl), the size being bounded by that check
  const alias = aliasProblem(doc);
  if (alias) {
    const at = lc.linePos(alias.node.range?.[0] ?? 0);
    throw new ManifestParseError(`not valid for kubectl: ${alias.message} (kubectl fails with "yaml: ${alias.message.split(':')[0]}")`, at.line, at.col);
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: -1 });
  } catch (err) {
    throw new ManifestParseError(`not valid YAML: ${oneLine((err as Error).message)}`, 1, 1);
  }
  return { value, doc, lc };
}


/** A document's value, parsed by the fast path when it can, with positions on demand. */
export class ParsedDocument {
  readonly text: string;
  readonly value: unknown;
  private full: FullParse | undefined;
  private fastPos: { value: unknown; pos: PositionMap } | undefined;
  /** read by JSON.parse: positions come from fullParse(text, true) */
  private readonly json: boolean;

  private constructor(text: string, value: unknown, full?: FullParse, json = false) {
    this.text = text;
    this.value = value;
    this.full = full;
    this.json = json;
  }

  /**
   * Parses a document; throws ManifestParseError. `value` is undefined/null for an empty document. `json`: an object
   * of a JSON stream (RawDocument.json), which kubectl reads with its JSON decoder: JSON.parse reads it, and what
   * JSON.parse refuses is refused as kubectl refuses it, never read as YAML.
   */
  static parse(text: string, json = false): ParsedDocument {
    if (json) {
      let v: unknown;
      try {
        v = JSON.parse(text);
      } catch (err) {
        throw jsonParseError(text, err);
      }
      // a number past float64's range (1e400) is Infinity here and an error for kubectl: the full parser says where
      if (!(MAYBE_HUGE_NUMBER.test(text) && hasInfinity(v))) return new ParsedDocument(text, v, undefined, true);
      const full = fullParse(text, true);
      return new ParsedDocument(text, full.value, full, true);
    }
    const v = fastParse(text);
    if (v !== BAIL) return new ParsedDocument(text, v, undefined, readAsJson);
    // a JSON document the fast path read but will not answer for (a number past float64) is parsed as JSON
    const asJson = readAsJson;
    const full = fullParse(text, asJson);
    return new ParsedDocument(text, full.value, full, asJson);
  }

  /** Whether the fast path read this document (for tests and benchmarks). */
  get fast(): boolean {
    return this.full === undefined;
  }

  /**
   * The position (document-relative line and column, 1-based) of the key at a dotted field path; the
   * nearest enclosing key that exists when it does not; else the root's `kind:` key; else the first line.
   * Throws ManifestParseError when the full parser rejects what the fast path read (a JSON number past float64).
   */
  locate(path: string): { line: number; column: number } {
    const segs = path === '' ? [] : path.split('.');
    if (this.full === undefined) {
      if (this.fastPos === undefined) {
        const pos: PositionMap = new Map();
        const v = fastParse(this.text, pos);
        if (v === BAIL) this.full = fullParse(this.text, this.json);
        else this.fastPos = { value: v, pos };
      }
    }
    if (this.fastPos) return locateFast(this.fastPos.value, this.fastPos.pos, segs, this.text);
    return locateFull(this.full!, segs);
  }
}

function firstContentLine(text: string): { line: number; column: number } {
  const lines = text.split('\n', 10000);
  for (let i = 0; i < lines.length; i++) {
    const t = lines[i].replace(/\r$/, '');
    const c = t.search(/\S/);
    if (c !== -1 && t[c] !== '#') return { line: i + 1, column: c + 1 };
  }
  return { line: 1, column: 1 };
}

/** Walks a dotted path where keys may themselves contain dots (tries the longest key first). */
function walkSegments<T>(
  segs: string[],
  root: T,
  child: (node: T, key: string) => T | undefined,
  found: (parent: T, key: string) => void,
): void {
  let node = root;
  let i = 0;
  while (i < segs.length) {
    let matched = false;
    for (let j = segs.length; j > i; j--) {
      const key = segs.slice(i, j).join('.');
      const next = child(node, key);
      if (next !== undefined) {
        found(node, key);
        node = next;
        i = j;
        matched = true;
        break;
      }
    }
    if (!matched) return;
  }
}

function locateFast(value: unknown, pos: PositionMap, segs: string[], text: string): { line: number; column: number } {
  let best: [number, number] | undefined;
  walkSegments<unknown>(
    segs,
    value,
    (node, key) => {
      if (typeof node !== 'object' || node === null) return undefined;
      if (Array.isArray(node)) {
        if (!/^[0-9]+$/.test(key)) return undefined;
        const idx = Number(key);
        return idx < node.length ? (node[idx] ?? null) : undefined;
      }
      return Object.hasOwn(node, key) ? ((node as Record<string, unknown>)[key] ?? null) : undefined;
    },
    (parent, key) => {
      const m = pos.get(parent as object);
      const p = m?.get(Array.isArray(parent) ? Number(key) : key);
      if (p) best = p;
    },
  );
  if (!best && value && typeof value === 'object') best = pos.get(value)?.get('kind');
  return best ? { line: best[0], column: best[1] } : firstContentLine(text);
}

/** Whether a mapping key is a merge (`<<` plain or !!merge: the merge tag resolves it to a symbol). */
function isMergeKey(k: unknown): boolean {
  return isScalar(k) && typeof k.value === 'symbol';
}

/**
 * The pair of a mapping that gives `key` its value as kubectl reads the mapping (go-yaml v2: in document order, each
 * key and each `<<` replacing what came before; of the mappings a `<<` lists, the first wins): the key's own pair, or
 * the `<<` pair that brought the value in (`via`), with the value node. Undefined when the mapping has no such key.
 */
function effectivePair(doc: Document, map: YamlNode, key: string, depth = 0): { key: YamlNode; value: YamlNode | null; via: boolean } | undefined {
  if (!isMap(map) || depth > 64) return undefined; // deeper: a self-containing anchor, which kubectl rejects
  const keyOf = (k: unknown): string | undefined => (isScalar(k) ? String(k.value) : undefined);
  const resolve = (n: unknown): unknown => (isAlias(n) ? n.resolve(doc) : n);
  let out: { key: YamlNode; value: YamlNode | null; via: boolean } | undefined;
  for (const pair of map.items) {
    if (isMergeKey(pair.key)) {
      const source = resolve(pair.value);
      const sources = isSeq(source) ? source.items : [source];
      // the first listed mapping that has the key wins among them
      for (const it of sources) {
        const m = resolve(it) as YamlNode;
        const hit = effectivePair(doc, m, key, depth + 1);
        if (hit) {
          out = { key: pair.key as YamlNode, value: hit.value, via: true };
          break;
        }
      }
    } else if (keyOf(pair.key) === key) out = { key: pair.key as YamlNode, value: (pair.value as YamlNode | null) ?? null, via: false };
  }
  return out;
}

function locateFull(full: FullParse, segs: string[]): { line: number; column: number } {
  let best: number | undefined;
  const root = full.doc.contents as YamlNode | null;
  const keyOf = (k: unknown): string | undefined => (isScalar(k) ? String(k.value) : undefined);
  // past a key that a `<<` brought in, the rest of the path is in the merged mapping (written elsewhere, under an
  // anchor): the position stays that of the `<<` in the object the path is about
  let merged = false;
  walkSegments<YamlNode | null>(
    segs,
    root,
    (node, key) => {
      if (isMap(node)) {
        const pair = effectivePair(full.doc, node, key);
        return pair ? pair.value : undefined;
      }
      if (isSeq(node)) {
        if (!/^[0-9]+$/.test(key)) return undefined;
        const idx = Number(key);
        return idx < node.items.length ? ((node.items[idx] as YamlNode | null) ?? null) : undefined;
      }
      return undefined;
    },
    (parent, key) => {
      if (merged) return;
      if (isMap(parent)) {
        const pair = effectivePair(full.doc, parent, key);
        const r = pair?.key.range;
        if (r) best = r[0];
        if (pair?.via) merged = true;
      } else if (isSeq(parent)) {
        const r = (parent.items[Number(key)] as YamlNode | undefined)?.range;
        if (r) best = r[0];
      }
    },
  );
  if (best === undefined && isMap(root)) {
    const pair = root.items.find((p) => keyOf(p.key) === 'kind');
    const r = (pair?.key as YamlNode | undefined)?.range;
    if (r) best = r[0];
  }
  if (best === undefined) best = (root?.range?.[0] ?? 0);
  const at = full.lc.linePos(best);
  return { line: at.line, column: at.col };
}
