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
import { visit } from 'yaml';
import type { Document, Scalar, ScalarTag, Tags } from 'yaml';

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

/** The YAML 1.1 tags with their number and timestamp patterns replaced by GO_NUMBERS. */
function kubectlTags(tags: Tags): Tags {
  const out = tags.map((t) => {
    if (typeof t === 'string') return t; // a tag by name: none of the numeric ones arrive this way
    if (!NUMERIC_TAGS.has(t.tag) || !(t as ScalarTag).test) return t;
    return { ...t, test: NEVER } as ScalarTag;
  });
  return [...GO_NUMBERS, ...out];
}

/** Options for the yaml package: YAML 1.1, with scalars resolved as kubectl resolves them. */
export const KUBECTL_YAML = { version: '1.1', customTags: kubectlTags } as const;

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
