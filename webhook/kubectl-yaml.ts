// YAML read the way kubectl reads it.
//
// kubectl (apply, create, patch -f) turns YAML into JSON with sigs.k8s.io/yaml, which resolves plain scalars as
// go-yaml v2 does: YAML 1.1 booleans (y, on, off...), nulls (~) and merge keys (<<), but its own rule for numbers.
// The yaml package's YAML 1.1 schema differs from that rule in ways that change data:
// - `.`, `-.`, `e5`, `E1`, `.e5` are strings to kubectl; YAML 1.1's float patterns make them NaN (and `.: {}`,
//   common in managedFields, a key named "NaN");
// - `1:30` and `8080:80` are strings to kubectl; YAML 1.1 reads them as base-60 numbers (90, 484880);
// - `2024-01-02T10:20:30Z` is the same string to kubectl (go-yaml keeps timestamps as strings when it decodes into
//   plain values); YAML 1.1 makes it a Date, written back without its zone;
// - `0o17` is 15 to kubectl and a string to YAML 1.1; `._5` is a string to kubectl and 0.5 to YAML 1.1.
// KUBECTL_YAML keeps the yaml package's YAML 1.1 schema and swaps its int, float and timestamp resolution for
// goYamlNumber(). Writing uses the same rule: a string kubectl would read as a number is quoted, and `e5` is not.
// (Numbers themselves are still written by the schema's own int and float tags.)
// Merge keys (`<<`) are applied as go-yaml v2 applies them, in document order (see GO_MERGE), where the yaml package
// lets a mapping's own keys win wherever they are.
import { Scalar, isAlias, isCollection, isMap, isScalar, isSeq, visit } from 'yaml';
import type { Document, Node, ScalarTag, Tags } from 'yaml';

const INT = /^([-+]?)(?:0[xX]([0-9a-fA-F]+)|0[oO]([0-7]+)|0[bB]([01]+)|0([0-7]+)|([1-9][0-9]*|0))$/;
const FLOAT = /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$/;
const DOT_FLOAT = /^\.[0-9]+(?:[eE][-+]?[0-9]+)?$/;
export const INT64_MIN = -(2n ** 63n);
export const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;
/** Digits of 2^64 - 1 by base prefix: decimal, hex, octal, binary. */
const MAX_DIGITS: Record<string, number> = { '': 20, '0x': 16, '0o': 22, '0b': 64 };

/** go-yaml v2's special floats (kubectl cannot put them into JSON, but reads them as numbers). */
const SPECIAL_FLOATS = new Map<string, number>([
  ...['.inf', '.Inf', '.INF', '+.inf', '+.Inf', '+.INF'].map((k) => [k, Infinity] as const),
  ...['-.inf', '-.Inf', '-.INF'].map((k) => [k, -Infinity] as const),
  ...['.nan', '.NaN', '.NAN'].map((k) => [k, NaN] as const),
]);

/** The integer go-yaml v2 (kubectl) makes of a plain scalar (int64, or uint64 without a sign), exactly; undefined
 *  when the scalar is not one (a float, a string, or an integer past 64 bits, which go-yaml reads as a float). */
export function goYamlInteger(s: string): bigint | undefined {
  const c = s.charCodeAt(0);
  if (!((c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2d)) return undefined;
  const plain = s.includes('_') ? s.replaceAll('_', '') : s;
  // strconv.ParseInt(plain, 0, 64), then ParseUint for what is over int64 (no sign).
  const m = INT.exec(plain);
  if (!m) return undefined;
  const [, sign, hex, oct0o, bin, oct, dec] = m;
  const [prefix, digits] = hex !== undefined ? ['0x', hex] : oct0o !== undefined ? ['0o', oct0o] : bin !== undefined ? ['0b', bin] : oct !== undefined ? ['0o', oct] : ['', dec!];
  // More significant digits than any 64-bit value has cannot be in range (and BigInt() of a huge string is slow).
  const significant = digits.replace(/^0+/, '');
  if (significant.length > MAX_DIGITS[prefix]!) return undefined;
  const magnitude = BigInt(`${prefix}${significant || '0'}`);
  const v = sign === '-' ? -magnitude : magnitude;
  return v >= INT64_MIN && (v <= INT64_MAX || (sign === '' && v <= UINT64_MAX)) ? v : undefined;
}

/** The number go-yaml v2 (kubectl) makes of a plain scalar, or undefined when it stays a string. */
export function goYamlNumber(s: string): number | undefined {
  const c = s.charCodeAt(0);
  const special = SPECIAL_FLOATS.get(s);
  if (special !== undefined) return special;
  // A leading dot: strconv.ParseFloat of the text as written.
  if (c === 0x2e) return DOT_FLOAT.test(s) ? Number(s) : undefined;
  // Otherwise only a digit or a sign can start a number.
  if (!((c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2d)) return undefined;
  const int = goYamlInteger(s);
  if (int !== undefined) return Number(int);
  const plain = s.includes('_') ? s.replaceAll('_', '') : s;
  // strconv.ParseFloat, for go-yaml's float pattern; out of float64's range stays a string.
  if (FLOAT.test(plain)) {
    const v = Number(plain);
    if (Number.isFinite(v)) return v;
  }
  return undefined;
}

/** A RegExp whose test() asks goYamlNumber (the yaml package takes a tag's `test` as a RegExp and calls test()). */
const NUMBER_TEST = Object.assign(/(?:)/, { test: (s: string) => goYamlNumber(s) !== undefined });
const NEVER = /(?!)/;

/**
 * Reading only (identify() is false: numbers are written by the schema's own int and float tags). The int and
 * float entries resolve the same way; there are two so that an explicit `!!int 0x1F` or `!!float 1.5` finds one.
 * An explicit `!!timestamp` stays the string it is, as in kubectl.
 */
const GO_NUMBERS: ScalarTag[] = [
  { tag: 'tag:yaml.org,2002:int', default: true, test: NUMBER_TEST, resolve: (s: string) => goYamlNumber(s)!, identify: () => false },
  { tag: 'tag:yaml.org,2002:float', default: true, test: NUMBER_TEST, resolve: (s: string) => goYamlNumber(s)!, identify: () => false },
  { tag: 'tag:yaml.org,2002:timestamp', default: false, resolve: (s: string) => s, identify: () => false },
];

const NUMERIC_TAGS = new Set(['tag:yaml.org,2002:int', 'tag:yaml.org,2002:float', 'tag:yaml.org,2002:timestamp']);
const MERGE_TAG = 'tag:yaml.org,2002:merge';

/** What toJS() passes to a key's addToJSMap (the yaml package's ToJSContext, as far as this reads it). */
interface MergeContext {
  doc: Document;
}

/**
 * `<<: VALUE` as go-yaml v2 (kubectl) applies it, in document order: a mapping's keys are set into the mapping being
 * read, replacing the keys set before the `<<` (a key after it replaces the merged one in turn); a sequence of
 * mappings is applied from its last to its first, so the first wins among them (and all of them over earlier keys).
 * The yaml package instead lets the mapping's own keys win wherever they stand, and a value kubectl applies would
 * not be the one lint reads (`K8S_TOKEN_REVIEW: "true"` then `<<: {K8S_TOKEN_REVIEW: "yes"}`: kubectl applies "yes").
 */
function goMergeToJSMap(ctx: MergeContext | undefined, map: unknown, value: unknown): unknown {
  const resolve = (v: unknown): unknown => (ctx && isAlias(v) ? v.resolve(ctx.doc, ctx as never) : v);
  const source = resolve(value);
  const sources = isSeq(source) ? [...source.items].reverse() : Array.isArray(source) ? [...source].reverse() : [source];
  for (const it of sources) {
    const m = resolve(it);
    // go-yaml: "map merge requires map or sequence of maps as the value"
    if (!isMap(m)) throw new Error('Merge sources must be maps or map aliases');
    const entries = m.toJSON(null, ctx as never, Map) as Map<unknown, unknown>;
    for (const [k, v] of entries) {
      if (map instanceof Map) map.set(k, v);
      else if (map instanceof Set) map.add(k);
      else Object.defineProperty(map, k === null ? '' : String(k), { value: v, writable: true, enumerable: true, configurable: true });
    }
  }
  return map;
}

/**
 * The YAML 1.1 merge key (`<<`, plain, or tagged !!merge) with go-yaml v2's order (goMergeToJSMap). Only a merge
 * is written as a plain `<<`: a key that is the string "<<" (a quoted `"<<"` read back) is written quoted, or
 * kubectl would read it as a merge.
 */
const GO_MERGE = (yaml11: ScalarTag): ScalarTag => ({
  ...yaml11,
  identify: (v: unknown) => typeof v === 'symbol' && v.description === '<<',
  resolve: () => Object.assign(new Scalar(Symbol('<<')), { addToJSMap: goMergeToJSMap }),
});

/** The YAML 1.1 tags with their number and timestamp patterns replaced by GO_NUMBERS, and merges by GO_MERGE. */
function kubectlTags(tags: Tags): Tags {
  const out = tags.map((t) => {
    if (typeof t === 'string') return t; // a tag by name: none of the numeric ones arrive this way
    if (t.tag === MERGE_TAG) return GO_MERGE(t as ScalarTag);
    if (!NUMERIC_TAGS.has(t.tag) || !(t as ScalarTag).test) return t;
    return { ...t, test: NEVER } as ScalarTag;
  });
  return [...GO_NUMBERS, ...out];
}

/** Options for the yaml package: YAML 1.1, with scalars resolved as kubectl resolves them. */
export const KUBECTL_YAML = { version: '1.1', customTags: kubectlTags } as const;

/** A JSON number token: in a JSON document read as YAML, the plain scalars other than true, false and null. */
const JSON_NUMBER = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$/;

/**
 * In a JSON document read as YAML: the first number past float64's range (`1e400`, 400 digits), and what to say
 * about it. YAML reads it as a string; kubectl reads JSON with a JSON decoder, which refuses the file.
 */
export function jsonNumberPastFloat64(doc: Document): { node: Scalar; message: string } | undefined {
  const node = findValue(doc, (n) => n.type === 'PLAIN' && typeof n.source === 'string' && JSON_NUMBER.test(n.source) && !Number.isFinite(Number(n.source)));
  if (!node) return undefined;
  const src = node.source!.length > 40 ? `${node.source!.slice(0, 37)}...` : node.source!;
  return {
    node,
    message: `not valid for kubectl: the number ${src} is past the range of a 64-bit float (kubectl fails with "json: cannot unmarshal number ${src} into Go value of type float64"); quote it if it is meant as a string`,
  };
}

/** The first scalar in value position (not a mapping key: kubectl turns keys into strings) that `test` picks. */
export function findValue(doc: Document, test: (node: Scalar) => boolean): Scalar | undefined {
  let found: Scalar | undefined;
  visit(doc, {
    Scalar(key, node) {
      if (key === 'key' || !test(node)) return undefined;
      found = node;
      return visit.BREAK;
    },
  });
  return found;
}

/** A finite double as an exact fraction: numerator and a power-of-two denominator. */
function exactFraction(x: number): [bigint, bigint] {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const exp = Number((bits >> 52n) & 0x7ffn);
  let mant = bits & 0xfffffffffffffn;
  if (exp) mant |= 1n << 52n;
  const e = (exp || 1) - 1075; // x = mant × 2^e
  const num = bits >> 63n ? -mant : mant;
  return e >= 0 ? [num << BigInt(e), 1n] : [num, 1n << BigInt(-e)];
}

/**
 * The shortest decimal digits that read back as the float32 `v` (finite, not zero), as Go's strconv finds them
 * (of several, the nearest; of two as near, the even one): `digits` without trailing zeros, `point` where the
 * decimal point goes (v = 0.digits × 10^point).
 */
function shortestFloat32(v: number): { digits: string; point: number } {
  const [vn, vd] = exactFraction(Math.abs(v));
  /** |c × 10^scale − |v|| as a fraction. */
  const distance = (c: number, scale: number): [bigint, bigint] => {
    const [cn, cd] = scale >= 0 ? [BigInt(c) * 10n ** BigInt(scale), 1n] : [BigInt(c), 10n ** BigInt(-scale)];
    const n = cn * vd - vn * cd;
    return [n < 0n ? -n : n, cd * vd];
  };
  for (let p = 1; p <= 9; p++) {
    // the nearest p-digit decimal, and its neighbours (the interval that reads back is not always centred)
    const [mant, e] = Math.abs(v).toExponential(p - 1).split('e') as [string, string];
    const m = Number(mant.replace('.', ''));
    const scale = Number(e) - (p - 1);
    let best: { c: number; d: [bigint, bigint] } | undefined;
    for (const c of [m - 1, m, m + 1]) {
      if (c <= 0 || Math.fround(Number(`${c}e${scale}`)) !== Math.abs(v)) continue;
      const d = distance(c, scale);
      const cmp = best === undefined ? -1n : d[0] * best.d[1] - best.d[0] * d[1];
      if (cmp < 0n || (cmp === 0n && c % 2 === 0)) best = { c, d };
    }
    if (best !== undefined) {
      const all = String(best.c);
      return { digits: all.replace(/0+$/, ''), point: all.length + scale };
    }
  }
  throw new Error(`no float32 digits for ${v}`); // unreachable: 9 digits always identify a float32
}

/**
 * The string kubectl (sigs.k8s.io/yaml) makes of a float mapping key: strconv.FormatFloat(f, 'g', -1, 32), so the
 * float32 nearest to the key, in its shortest form (`1.5e+10`, `1e-05`, `3.1415927`, `100000`), with `.inf`,
 * `-.inf` and `.nan` for the special values.
 */
export function goFloatKey(f: number): string {
  const v = Math.fround(f);
  if (Number.isNaN(v)) return '.nan';
  if (v === Infinity) return '.inf';
  if (v === -Infinity) return '-.inf';
  const sign = v < 0 || Object.is(v, -0) ? '-' : '';
  if (v === 0) return `${sign}0`;
  const { digits, point } = shortestFloat32(v);
  const exp = point - 1;
  // 'g' with the shortest digits: %e when the exponent is under -4 or at least 6 (Go's rule for precision -1)
  if (exp < -4 || exp >= 6) {
    const abs = Math.abs(exp);
    return `${sign}${digits[0]}${digits.length > 1 ? `.${digits.slice(1)}` : ''}e${exp < 0 ? '-' : '+'}${abs < 10 ? '0' : ''}${abs}`;
  }
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return `${sign}${digits}${'0'.repeat(point - digits.length)}`;
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

/**
 * The string kubectl makes of a scalar mapping key that YAML reads as something else (sigs.k8s.io/yaml turns keys
 * into strings): booleans `true`/`false`, integers in decimal (exact, as go-yaml reads them), floats by goFloatKey.
 * Undefined where kubectl refuses the key: null, or an integer past int64 (go-yaml's uint64).
 */
export function kubectlKeyString(node: Scalar): string | undefined {
  const v = node.value;
  if (typeof v === 'string') return v;
  if (typeof v === 'boolean') return String(v);
  if (typeof v !== 'number') return undefined;
  if (node.tag !== 'tag:yaml.org,2002:float' && typeof node.source === 'string') {
    const int = goYamlInteger(node.source);
    if (int !== undefined) return int <= INT64_MAX ? String(int) : undefined;
  }
  return goFloatKey(v);
}

/**
 * Makes every mapping key of `doc` a string, as kubectl reads it: a scalar key YAML reads as a number or a boolean
 * (`1.5e10`, `.inf`, `y`, or an alias of one) becomes the string kubectl makes of it, where the yaml package's
 * toJS() would write JavaScript's (`15000000000`, `Infinity`). Returns the first key kubectl cannot read (null, an
 * integer past int64, a mapping or sequence), left as it is.
 */
export function stringifyKeys(doc: Document): { node: Node; why: string } | undefined {
  let bad: { node: Node; why: string } | undefined;
  visit(doc, {
    Pair(_, pair) {
      const key = pair.key as Node | null;
      if (key === null) {
        bad ??= { node: pair.value as Node, why: 'an empty (null) key' };
        return;
      }
      const target = isAlias(key) ? key.resolve(doc) : key;
      if (isCollection(target)) {
        bad ??= { node: key, why: `a ${isSeq(target) ? 'sequence' : 'mapping'} as a key` };
        return;
      }
      if (!isScalar(target) || typeof target.value === 'string' || typeof target.value === 'symbol') return; // `<<` is a merge
      if (!['number', 'boolean'].includes(typeof target.value) && target.value !== null) return; // e.g. !!binary
      const s = kubectlKeyString(target);
      if (s === undefined) {
        bad ??= { node: key, why: target.value === null ? `the null key ${target.source ?? ''}`.trimEnd() : `the key ${target.source}, an integer past int64` };
        return;
      }
      const str = new Scalar(s);
      str.range = key.range;
      pair.key = str;
    },
  });
  return bad;
}

/**
 * go-yaml v2's guard against alias bombs (decode.go, allowedAliasRatio): how much of a document's decoding may come
 * from alias expansion, by how many nodes it decodes in all: 99% up to 400,000, scaling down to 10% at 4,000,000.
 */
function allowedAliasRatio(decodeCount: number): number {
  if (decodeCount <= 400_000) return 0.99;
  if (decodeCount >= 4_000_000) return 0.1;
  return 0.99 - 0.89 * ((decodeCount - 400_000) / 3_600_000);
}

/**
 * What kubectl (go-yaml v2) refuses in a document's aliases, without expanding them: an anchor whose value holds
 * an alias to itself ("anchor 'a' value contains itself"), or more expansion than go-yaml allows ("document contains
 * excessive aliasing": past 100 nodes decoded through aliases and 1,000 in all, a share of them over
 * allowedAliasRatio, checked as go-yaml checks it, node by node in document order). Each anchor's expanded size is
 * computed once, so a billion-laughs document is measured in the time of its text. Returns the alias node at which
 * kubectl fails, with its message; undefined when kubectl reads the document. Everything it accepts expands to at
 * most about 100 times the document's nodes (under 400,000 nodes), else 1.11 times.
 */
export function aliasProblem(doc: Document): { node: Node; message: string } | undefined {
  const anchors = new Map<string, Node>();
  /** expanded size (nodes go-yaml decodes) of each anchored node, once walked */
  const sizes = new Map<Node, number>();
  /** anchored nodes being walked: an alias to one is an anchor containing itself */
  const open = new Set<Node>();
  let decodeCount = 1; // the document node
  let aliasCount = 0;
  let problem: { node: Node; message: string } | undefined;
  const walk = (node: unknown): number => {
    if (problem) return 0;
    decodeCount++;
    if (isAlias(node)) {
      const target = anchors.get(node.source);
      if (target === undefined) return 1; // an unresolved alias: the parser reports it
      if (open.has(target)) {
        problem = { node, message: `anchor '${node.source}' value contains itself` };
        return 0;
      }
      const size = sizes.get(target) ?? 1;
      decodeCount += size;
      aliasCount += size;
      if (aliasCount > 100 && decodeCount > 1000 && aliasCount / decodeCount > allowedAliasRatio(decodeCount))
        problem = {
          node,
          message: `document contains excessive aliasing: its aliases expand it to ${decodeCount} nodes, ${aliasCount} of them copies of anchored ones`,
        };
      return 1 + size;
    }
    const anchor = isScalar(node) || isCollection(node) ? node.anchor : undefined;
    if (anchor) {
      anchors.set(anchor, node as Node);
      open.add(node as Node);
    }
    let size = 1;
    if (isMap(node)) for (const pair of node.items) size += walk(pair.key) + walk(pair.value);
    else if (isSeq(node)) for (const item of node.items) size += walk(item);
    if (anchor) {
      open.delete(node as Node);
      sizes.set(node as Node, size);
    }
    return size;
  };
  walk(doc.contents);
  return problem;
}
