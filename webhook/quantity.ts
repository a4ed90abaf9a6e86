// Kubernetes resource quantities (k8s.io/apimachinery/pkg/api/resource): parsing, comparison and the canonical
// form the API server writes them back in.
//
// The API server decodes every quantity of an object it stores and encodes it again in canonical form, so a
// webhook called again (reinvocationPolicy: IfNeeded) sees "1Gi" where it wrote "1024Mi". A sidecar rendered
// with the canonical form is the one it gets back, and re-invocation stays a no-op.
//
// Grammar:  [+-] ( digits [ . [digits] ] | . digits ) [ suffix ]
//   suffix: binary SI   Ki Mi Gi Ti Pi Ei          (powers of 1024)
//           decimal SI  n u m "" k M G T P E       (powers of 1000)
//           exponent    e or E, an optional sign, digits   (a power of 10)
// Values are exact (BigInt coefficient and a power of ten, never floats).

export type QuantityFormat = 'DecimalSI' | 'BinarySI' | 'DecimalExponent';

/** A parsed quantity: sign × coefficient × 10^exponent, written in `format` when canonical. */
export interface Quantity {
  negative: boolean;
  /** The magnitude's digits; 0n for zero. */
  coefficient: bigint;
  exponent: number;
  format: QuantityFormat;
}

/** The text is not a quantity; the message says why, for a caller to put after the field's name. */
export class QuantityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QuantityError';
  }
}

const BINARY_SI: Record<string, number> = { Ki: 1, Mi: 2, Gi: 3, Ti: 4, Pi: 5, Ei: 6 }; // powers of 1024
const DECIMAL_SI: Record<string, number> = { n: -9, u: -6, m: -3, '': 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };
const DECIMAL_SUFFIX = new Map(Object.entries(DECIMAL_SI).map(([s, e]) => [e, s]));
const BINARY_SUFFIX = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'];

const GRAMMAR = /^([+-]?)(?:([0-9]+)(?:\.([0-9]*))?|\.([0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$/;

/** The largest magnitude Kubernetes stores for a binary SI quantity (and the documented bound for all). */
export const MAX_QUANTITY = (1n << 63n) - 1n;
/** Quantities keep at most nine decimal places: anything finer is rounded up, away from zero, to 1n. */
const NANO = -9;
/** Exponents are read as int32 by apimachinery (larger ones wrap there); refused here. */
const MAX_EXPONENT = 2 ** 31 - 1;

const pow10 = (n: number): bigint => 10n ** BigInt(n);
const digitCount = (n: bigint): number => (n === 0n ? 0 : n.toString().length);

/** Parses a quantity (throws QuantityError). The value is what the API server stores: rounded up to 1n, binary SI capped at 2^63-1. */
export function parseQuantity(text: string): Quantity {
  const m = GRAMMAR.exec(text);
  if (!m)
    throw new QuantityError(
      'a quantity is a number, optionally signed, then nothing or one of the suffixes n u m k M G T P E, Ki Mi Gi Ti Pi Ei, or an exponent such as e3',
    );
  const [, sign, whole, frac1, frac2, suffix = ''] = m;
  const frac = frac1 ?? frac2 ?? '';
  const negative = sign === '-';
  let coefficient = BigInt(`${whole ?? ''}${frac}` || '0');
  let exponent = -frac.length;
  let format: QuantityFormat;
  if (suffix in BINARY_SI) {
    format = 'BinarySI';
    coefficient *= 1n << BigInt(10 * BINARY_SI[suffix]!);
  } else if (suffix in DECIMAL_SI) {
    format = 'DecimalSI';
    exponent += DECIMAL_SI[suffix]!;
  } else {
    format = 'DecimalExponent';
    const e = BigInt(suffix.slice(1));
    if (e > BigInt(MAX_EXPONENT) || e < -BigInt(MAX_EXPONENT))
      throw new QuantityError(`its exponent is out of range (at most ${MAX_EXPONENT} either way)`);
    exponent += Number(e);
  }
  if (coefficient === 0n) return { negative: false, coefficient: 0n, exponent: 0, format: 'DecimalSI' };
  // Finer than nano: round the magnitude up to the next 1n.
  if (exponent < NANO) {
    const shift = NANO - exponent;
    coefficient = shift > digitCount(coefficient) ? 1n : (coefficient + pow10(shift) - 1n) / pow10(shift);
    exponent = NANO;
  }
  if (format === 'BinarySI' && exponent <= 0 && coefficient > MAX_QUANTITY * pow10(-exponent)) {
    coefficient = MAX_QUANTITY;
    exponent = 0;
  }
  return { negative, coefficient, exponent, format };
}

/** o such that 10^(o-1) <= |q| < 10^o, for a non-zero q. */
function order(q: Quantity): number {
  return digitCount(q.coefficient) + q.exponent;
}

/** Compares magnitudes and signs exactly: -1, 0 or 1. */
export function compareQuantities(a: Quantity, b: Quantity): number {
  const sa = a.coefficient === 0n ? 0 : a.negative ? -1 : 1;
  const sb = b.coefficient === 0n ? 0 : b.negative ? -1 : 1;
  if (sa !== sb || sa === 0) return Math.sign(sa - sb);
  const oa = order(a);
  const ob = order(b);
  // Same number of integer digits: the exponents differ by at most the coefficients' lengths.
  let cmp = oa !== ob ? Math.sign(oa - ob) : 0;
  if (cmp === 0) {
    const e = Math.min(a.exponent, b.exponent);
    const x = a.coefficient * pow10(a.exponent - e);
    const y = b.coefficient * pow10(b.exponent - e);
    cmp = x === y ? 0 : x > y ? 1 : -1;
  }
  return cmp === 0 ? 0 : sa * cmp;
}

/** True when |q| > 2^63-1, the largest quantity Kubernetes documents (binary SI values are capped there). */
export function exceedsMaxQuantity(q: Quantity): boolean {
  return compareQuantities({ ...q, negative: false }, { negative: false, coefficient: MAX_QUANTITY, exponent: 0, format: 'DecimalSI' }) > 0;
}

/**
 * The canonical text of a quantity, as Quantity.String() writes it:
 * - zero is "0";
 * - binary SI stays binary SI only for an integral value of magnitude 1024 or more that a power of 1024 divides: the
 *   largest such power becomes the suffix ("1.5Gi" -> "1536Mi"); otherwise it is written as decimal SI ("0.5Ki" ->
 *   "512"; "687.5Ki" -> "704k", where apimachinery writes "704000" once and "704k" after reading that back);
 * - decimal SI and decimal exponent: the largest exponent that is a multiple of 3 and keeps the mantissa an integer
 *   ("1.5" -> "1500m", "1000" -> "1k", "12e6" -> "12e6"), written with the decimal SI suffix or as e<exponent>.
 *   A decimal SI exponent beyond E (10^18) has no suffix, and apimachinery then writes the bare mantissa
 *   ("1000E" -> "1"): reproduced here; callers keep such values out (see exceedsMaxQuantity).
 */
export function formatQuantity(q: Quantity): string {
  if (q.coefficient === 0n) return '0';
  const sign = q.negative ? '-' : '';
  let format = q.format;
  if (format === 'BinarySI') {
    const integral = q.exponent >= 0 || q.coefficient % pow10(-q.exponent) === 0n;
    const below1024 = compareQuantities({ ...q, negative: false }, { negative: false, coefficient: 1024n, exponent: 0, format }) < 0;
    if (below1024 || !integral) format = 'DecimalSI';
    else {
      let n = q.exponent >= 0 ? q.coefficient * pow10(q.exponent) : q.coefficient / pow10(-q.exponent);
      let k = 0;
      while (n >= 1024n && n % 1024n === 0n) {
        n /= 1024n;
        k++;
      }
      // no power of 1024 divides it (687.5Ki): apimachinery writes the bare bytes (704000), which it reads back as
      // decimal SI and then writes as 704k; written in that second form, which the API server hands back
      if (k > 0) return `${sign}${n}${BINARY_SUFFIX[k] ?? ''}`;
      format = 'DecimalSI';
    }
  }
  let n = q.coefficient;
  let e = q.exponent;
  while (n % 10n === 0n) {
    n /= 10n;
    e++;
  }
  const down = ((e % 3) + 3) % 3; // lower the exponent to a multiple of 3
  n *= pow10(down);
  e -= down;
  const suffix = format === 'DecimalExponent' ? (e === 0 ? '' : `e${e}`) : (DECIMAL_SUFFIX.get(e) ?? '');
  return `${sign}${n}${suffix}`;
}

/** The canonical text of a quantity given as text (throws QuantityError). */
export function canonicalQuantity(text: string): string {
  return formatQuantity(parseQuantity(text));
}
