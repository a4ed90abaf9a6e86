// The benchmark's memory verdicts (bench/verdicts.ts): a steady leak fails them, a flat series with GC noise and a
// start-up climb passes. Scripted RSS series, no server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MEMORY_RUN_BOUNDS, MiB, SOAK_BOUNDS, growthText, growthWord, judgeGrowth, leastSquaresSlope, soakGrowth, splitAtHalf } from '../bench/verdicts.ts';
import type { RssSample } from '../bench/verdicts.ts';
import { countStats, countText } from '../bench/run.ts';

/** A deterministic noise source in [-1, 1) (a linear congruential generator), so a failure reproduces. */
function noise(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return (x / 2 ** 31) * 2 - 1;
  };
}

/** A 1M-request memory run sampled every 4,000 requests: a start-up climb, then `leak` bytes per request on top of ±1 MiB of noise. */
function memorySeries(leakBytesPerRequest: number, seed = 7): RssSample[] {
  const r = noise(seed);
  const out: RssSample[] = [];
  for (let requests = 4000; requests <= 1_000_000; requests += 4000) {
    const warm = 14 * MiB * Math.min(1, requests / 300_000); // RSS climbs while the JIT and the heap settle
    out.push({ requests, rss: 125 * MiB + warm + leakBytesPerRequest * requests + r() * MiB });
  }
  return out;
}

function judgeMemoryRun(samples: RssSample[]) {
  const { firstHalf, lastHalf } = splitAtHalf(samples, 1_000_000);
  return judgeGrowth(firstHalf, lastHalf, MEMORY_RUN_BOUNDS);
}

test('a leak of 10 bytes per admission fails the memory run on its slope and on its rise, though the old rule (max rise under 5 MB) passed it', () => {
  const samples = memorySeries(10);
  const v = judgeMemoryRun(samples);
  assert.equal(v.slopeOk, false);
  assert.equal(v.growthOk, false);
  assert.equal(v.ok, false);
  assert.equal(growthWord(v), 'grew (slope, max)');
  // what the audit found: the rule before only compared the maxima with 5 MB
  assert.ok(v.growth < 5 * MiB, `rise ${v.growth / MiB} MB`);
  assert.ok(Math.abs(v.slopePerRequest - 10) < 1.5, `slope ${v.slopePerRequest} B per request`);
});

test('a flat series with ±1 MB of GC noise after a start-up climb passes the memory run, whatever the seed', () => {
  for (let seed = 1; seed <= 20; seed++) {
    const v = judgeMemoryRun(memorySeries(0, seed));
    assert.ok(v.ok, `seed ${seed}: ${growthText(v)}`);
    assert.equal(growthWord(v), 'no growth');
  }
});

test('a leak the maxima hide (a start-up peak above the rest of the run) still fails on the slope', () => {
  const samples = memorySeries(8).map((s, i) => (i === 3 ? { ...s, rss: s.rss + 30 * MiB } : s));
  const v = judgeMemoryRun(samples);
  assert.equal(v.growthOk, true, 'the peak in the first half hides the rise');
  assert.equal(v.slopeOk, false);
  assert.equal(growthWord(v), 'grew (slope)');
});

test('the verdict line gives both figures and both bounds, with the leak the slope bound stands for', () => {
  const v = judgeMemoryRun(memorySeries(0));
  const text = growthText(v);
  assert.match(text, /^slope over the last half −?\d+\.\d\d MB per 100k requests \(bound 0\.57: a leak of 6 B per admission\), max last half − max first half [+−]\d+\.\d MB \(bound 3\.0 MB\)$/);
});

test('leastSquaresSlope: exact on a line, 0 on too few points', () => {
  assert.equal(leastSquaresSlope([{ requests: 0, rss: 100 }, { requests: 10, rss: 150 }, { requests: 20, rss: 200 }]), 5);
  assert.equal(leastSquaresSlope([{ requests: 5, rss: 1 }]), 0);
  assert.equal(leastSquaresSlope([]), 0);
});

// The soak's windows as BENCHMARKS.md records them (requests per window, RSS MB at its end).
const mbWindows = (rss: number[]) => rss.map((r) => ({ requests: 30_000, rss: r * MiB }));

test('the soak passes the recorded soaks (round 21, and round 10 whose RSS fell then rose again)', () => {
  for (const rss of [
    [134.8, 135.3, 135.3, 136.0, 136.1, 135.9, 135.7, 135.7, 135.7, 135.2],
    [120.4, 119.4, 117.7, 113.6, 113.9, 112.3, 113.1, 112.7, 113.3, 114.8],
    [114.2, 114.6, 114.7, 114.7, 114.8, 115.3, 116.3, 116.2, 116.3, 116.7],
  ]) {
    const v = soakGrowth(mbWindows(rss));
    assert.ok(v.ok, `${rss}: ${growthText(v)}`);
  }
});

test('the soak fails a leak of 30 bytes per admission, and a second half that steps up 4 MB, which the old rule (20% over half-way) passed', () => {
  const leak = soakGrowth(mbWindows(Array.from({ length: 10 }, (_, i) => 120 + (30 * 30_000 * (i + 1)) / MiB)));
  assert.equal(leak.slopeOk, false);
  assert.equal(leak.ok, false);
  const step = soakGrowth(mbWindows([118, 120, 120.2, 119.8, 120.1, 120, 124.1, 124, 124.2, 124.1]));
  assert.equal(step.growthOk, false);
  assert.equal(step.ok, false);
  assert.ok(124.1 < 120 * 1.2, 'the 20% rule would have passed it');
  assert.deepEqual(step.bounds, SOAK_BOUNDS);
});

test('the soak leaves window 1 (start-up) out of the first half, and one window is judged against itself', () => {
  // a start-up peak in window 1 would hide a 4 MB rise
  const v = soakGrowth(mbWindows([130, 120, 120, 120, 120, 124, 124, 124, 124, 124]));
  assert.equal(v.maxFirstHalf, 120 * MiB);
  assert.equal(v.growthOk, false);
  const one = soakGrowth(mbWindows([130]));
  assert.equal(one.ok, true);
  assert.equal(one.growth, 0);
});

test('open-connection counts of an abuse window: min / median / max', () => {
  assert.deepEqual(countStats([2016, 16, 1984, 116, 2000]), { min: 16, median: 1984, max: 2016, samples: 5 });
  assert.equal(countText(countStats([2016, 16, 1984, 116, 2000])), '16 / 1,984 / 2,016');
  assert.equal(countStats([]), undefined);
  assert.equal(countText(undefined), '-');
});
