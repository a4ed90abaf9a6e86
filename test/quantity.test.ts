// Kubernetes quantities: the grammar apimachinery accepts, and the canonical form the API server writes back
// (Quantity.String()), which the injected sidecars must use for a re-invocation to be a no-op.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { QuantityError, canonicalQuantity, compareQuantities, exceedsMaxQuantity, parseQuantity } from '../webhook/quantity.ts';

// [written, as the API server writes it back]
const canonical: [string, string][] = [
  // decimal SI: the largest exponent that is a multiple of 3 and keeps the mantissa integral
  ['0', '0'],
  ['0.05', '50m'],
  ['1000', '1k'],
  ['2000m', '2'],
  ['1.5', '1500m'],
  ['1500', '1500'],
  ['1025', '1025'],
  ['1.0', '1'],
  ['100m', '100m'],
  ['1.', '1'],
  ['.5', '500m'],
  ['+1', '1'],
  ['0.5', '500m'],
  ['1.1', '1100m'],
  ['1000n', '1u'],
  ['1000000k', '1G'],
  ['10E', '10E'],
  ['1.1E', '1100P'],
  ['1E', '1E'],
  ['007', '7'],
  // below nano: rounded up (away from zero) to 1n
  ['0.1n', '1n'],
  ['0.0000000001', '1n'],
  ['1.5n', '2n'],
  ['100n', '100n'],
  // decimal exponent stays an exponent
  ['1e3', '1e3'],
  ['1E3', '1e3'],
  ['12e6', '12e6'],
  ['1e-9', '1e-9'],
  ['1e-10', '1e-9'],
  ['1.5e+3', '1500'],
  ['15e-1', '1500e-3'],
  ['1e0', '1'],
  ['1e+21', '1e21'],
  ['1e4', '10e3'],
  // binary SI: integral and at least 1024, else written as decimal SI
  ['100Mi', '100Mi'],
  ['1024Mi', '1Gi'],
  ['1.5Gi', '1536Mi'],
  ['0.5Gi', '512Mi'],
  ['1Ki', '1Ki'],
  ['1023Ki', '1023Ki'],
  ['1024Ki', '1Mi'],
  ['1.5Ki', '1536'],
  ['0.5Ki', '512'],
  ['1.1Ki', '1126400m'],
  ['0.001Ki', '1024m'],
  ['7Ei', '7Ei'],
  ['8Ei', '9223372036854775807'], // binary SI is capped at 2^63-1
  ['0Gi', '0'],
  // signs
  ['-1', '-1'],
  ['-1Ki', '-1Ki'],
  ['-1.5', '-1500m'],
  ['-0', '0'],
  ['-0.1n', '-1n'],
  // apimachinery has no decimal SI suffix beyond E and writes the bare mantissa (callers keep such values out)
  ['1000E', '1'],
];
for (const [written, expected] of canonical)
  test(`canonical form: ${written} -> ${expected}`, () => {
    assert.equal(canonicalQuantity(written), expected);
  });

const invalid = ['', 'lots', '.', '-', '+', '1.5.5', '1e', '1e+', '1e1.5', 'e3', '1K', '1Kb', '1mi', '1ki', ' 1', '1 ', '0x10', 'Infinity', 'NaN', '1..5', '1-', '--1', '1Mi1', '1e99999999999'];
for (const text of invalid)
  test(`not a quantity: ${JSON.stringify(text)}`, () => {
    assert.throws(() => parseQuantity(text), QuantityError);
  });

test('comparison is exact, after rounding to nano', () => {
  const cmp = (a: string, b: string) => compareQuantities(parseQuantity(a), parseQuantity(b));
  assert.equal(cmp('0.25Gi', '256Mi'), 0);
  assert.equal(cmp('1', '999m'), 1);
  assert.equal(cmp('999m', '1'), -1);
  assert.equal(cmp('1e-10', '1n'), 0);
  assert.equal(cmp('1e30', '1e29'), 1);
  assert.equal(cmp('-1', '1n'), -1);
  assert.equal(cmp('-2', '-1'), -1);
  assert.equal(cmp('0', '-0'), 0);
  assert.equal(cmp('1000000000000000000001', '1e21'), 1);
  assert.equal(cmp('1e3', '1k'), 0);
  assert.equal(cmp('1Ki', '1k'), 1);
});

test('the largest quantity Kubernetes stores is 2^63-1', () => {
  assert.equal(exceedsMaxQuantity(parseQuantity('9223372036854775807')), false);
  assert.equal(exceedsMaxQuantity(parseQuantity('9223372036854775808')), true);
  assert.equal(exceedsMaxQuantity(parseQuantity('1e21')), true);
  assert.equal(exceedsMaxQuantity(parseQuantity('1e2147483647')), true);
  assert.equal(exceedsMaxQuantity(parseQuantity('8Ei')), false, 'binary SI is capped, not refused');
  assert.equal(exceedsMaxQuantity(parseQuantity('-1e21')), true);
});

test('huge and tiny exponents are handled without materialising the power of ten', () => {
  assert.equal(canonicalQuantity('1e-2147483647'), '1e-9');
  assert.equal(canonicalQuantity('1e2147483646'), '1e2147483646');
});

const quantityText = fc
  .tuple(
    fc.constantFrom('', '+', '-'),
    fc.stringMatching(/^[0-9]{0,12}$/),
    fc.option(fc.stringMatching(/^[0-9]{0,12}$/), { nil: undefined }),
    fc.oneof(
      fc.constantFrom('', 'n', 'u', 'm', 'k', 'M', 'G', 'T', 'P', 'E', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'),
      fc.tuple(fc.constantFrom('e', 'E'), fc.constantFrom('', '+', '-'), fc.integer({ min: 0, max: 30 })).map(([e, s, n]) => `${e}${s}${n}`),
    ),
  )
  .map(([sign, whole, frac, suffix]) => `${sign}${whole}${frac === undefined ? '' : `.${frac}`}${suffix}`)
  .filter((t) => /[0-9]/.test(t.split(/[eE]/)[0]!) && !/^[+-]?\.?(?:[eE]|$)/.test(t));

test('a binary-SI amount of whole bytes that no power of 1024 divides is written in decimal SI, the form apimachinery reads its own bare bytes back as (a fixed point; the property below found 687.5Ki)', () => {
  assert.equal(canonicalQuantity('687.5Ki'), '704k');
  assert.equal(canonicalQuantity('704k'), '704k');
  assert.equal(canonicalQuantity('1.0009765625Ki'), '1025');
  assert.equal(canonicalQuantity('1.5Gi'), '1536Mi');
  assert.equal(canonicalQuantity('0.5Ki'), '512');
});

test('the canonical form is a fixed point with the same value: the API server hands back what it was given', () => {
  fc.assert(
    fc.property(quantityText, (text) => {
      const q = parseQuantity(text);
      const c = canonicalQuantity(text);
      if (exceedsMaxQuantity(q)) return; // decimal SI beyond E loses its suffix in apimachinery itself
      assert.equal(canonicalQuantity(c), c, `${text} -> ${c} is not canonical`);
      assert.equal(compareQuantities(parseQuantity(c), q), 0, `${text} -> ${c} changed the value`);
    }),
    { numRuns: 3000 },
  );
});
