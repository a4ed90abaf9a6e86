// The benchmark's memory verdicts, as pure functions of RSS samples (bench/run.ts's memory runs, bench/soak.ts):
// whether a server's resident memory grew over the last half of a run. Two figures, both bounded:
//
// - the least-squares slope of RSS over the last half's samples, against the requests answered, in bytes per
//   request: a leak of N bytes per admission shows as a slope of about N (a steady climb the maxima can hide
//   when the first half's maximum is a start-up peak);
// - the last half's highest RSS minus the first half's highest: how much higher the process went (a step the
//   slope spreads thin when it comes late).
//
// Either one over its bound fails the verdict. The bounds are stated as the leak they stand for.

export const MiB = 1024 * 1024;

/** One RSS reading: the requests answered when it was taken, and the resident set size in bytes. */
export interface RssSample {
  requests: number;
  rss: number;
}

export interface GrowthBounds {
  /** the largest slope that passes, bytes of RSS per request answered (a leak of this many bytes per admission) */
  slopeBytesPerRequest: number;
  /** the largest rise of the last half's maximum over the first half's that passes, bytes */
  growthBytes: number;
}

/**
 * The memory runs of `npm run bench` (1M requests): 6 bytes per request is 0.57 MB per 100k requests, and 3 MB is
 * what a 6-byte-per-admission leak adds over the last half of 1M requests (500k × 6 B = 2.9 MB). A leak of 10 bytes
 * per admission (0.95 MB per 100k, 4.8 MB over the last half) fails both. The 22 1M runs recorded in BENCHMARKS.md
 * since the young generation was capped (commit ad25cef on) measured slopes of −0.19 to 0.49 MB per 100k and rises
 * of −1.9 to +2.3 MB, and pass, but for 227dfc1's slope of 0.80 (a 2.3 MB step late in its run), which fails; of
 * the three before the cap, the two that climbed (slopes of 15.6 and 17.6 MB per 100k, one of them a 62 MB rise) fail.
 */
export const MEMORY_RUN_BOUNDS: GrowthBounds = { slopeBytesPerRequest: 6, growthBytes: 3 * MiB };

/**
 * The soak (300k requests in 10 minutes, one RSS reading per window): 25 bytes per request is 2.4 MB per 100k. Its
 * last half is five readings, over 150k requests, so one reading 1 MB off moves the slope by up to 0.7 MB per 100k:
 * the nine soaks recorded in BENCHMARKS.md measured −0.5 to 1.7 MB per 100k and rises of −5.8 to +1.9 MB (window 1,
 * start-up, left out). A smaller leak is the memory run's to find (1M requests, a reading a second).
 */
export const SOAK_BOUNDS: GrowthBounds = { slopeBytesPerRequest: 25, growthBytes: 3 * MiB };

/** Least-squares slope of rss over requests, bytes per request (0 for fewer than two distinct request counts). */
export function leastSquaresSlope(samples: readonly RssSample[]): number {
  const n = samples.length;
  if (n < 2) return 0;
  const mx = samples.reduce((a, s) => a + s.requests, 0) / n;
  const my = samples.reduce((a, s) => a + s.rss, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (const s of samples) {
    sxy += (s.requests - mx) * (s.rss - my);
    sxx += (s.requests - mx) ** 2;
  }
  return sxx ? sxy / sxx : 0;
}

export interface GrowthVerdict {
  /** highest RSS in the first half, bytes */
  maxFirstHalf: number;
  /** highest RSS in the last half, bytes */
  maxLastHalf: number;
  /** maxLastHalf − maxFirstHalf, bytes */
  growth: number;
  /** least-squares slope over the last half, bytes per request */
  slopePerRequest: number;
  slopeOk: boolean;
  growthOk: boolean;
  /** both under their bounds */
  ok: boolean;
  bounds: GrowthBounds;
}

/** Judges growth from the first half's samples and the last half's (the slope is fitted to the last half only). */
export function judgeGrowth(firstHalf: readonly RssSample[], lastHalf: readonly RssSample[], bounds: GrowthBounds): GrowthVerdict {
  const max = (xs: readonly RssSample[]) => xs.reduce((m, s) => Math.max(m, s.rss), 0);
  const maxFirstHalf = max(firstHalf);
  const maxLastHalf = max(lastHalf);
  const growth = maxLastHalf - maxFirstHalf;
  const slopePerRequest = leastSquaresSlope(lastHalf);
  const slopeOk = slopePerRequest < bounds.slopeBytesPerRequest;
  const growthOk = growth < bounds.growthBytes;
  return { maxFirstHalf, maxLastHalf, growth, slopePerRequest, slopeOk, growthOk, ok: slopeOk && growthOk, bounds };
}

/** Splits a run's samples at half its requests: before `total / 2`, and from it on. */
export function splitAtHalf(samples: readonly RssSample[], total: number): { firstHalf: RssSample[]; lastHalf: RssSample[] } {
  return { firstHalf: samples.filter((s) => s.requests < total / 2), lastHalf: samples.filter((s) => s.requests >= total / 2) };
}

const mb = (b: number) => (b / MiB).toFixed(2);
const signedMb = (b: number) => `${b >= 0 ? '+' : '−'}${(Math.abs(b) / MiB).toFixed(1)}`;
/** A slope in bytes per request as MB per 100k requests. */
export const per100kMb = (bytesPerRequest: number): string => `${bytesPerRequest < 0 ? '−' : ''}${mb(Math.abs(bytesPerRequest) * 100_000)}`;

/**
 * The figures and their bounds in one line, e.g. `slope over the last half 0.01 MB per 100k requests (bound 0.57:
 * a leak of 6 B per admission), max last half − max first half −0.6 MB (bound 3.0 MB)`.
 */
export function growthText(v: GrowthVerdict): string {
  const b = v.bounds;
  return (
    `slope over the last half ${per100kMb(v.slopePerRequest)} MB per 100k requests (bound ${per100kMb(b.slopeBytesPerRequest)}: a leak of ${b.slopeBytesPerRequest} B per admission), ` +
    `max last half − max first half ${signedMb(v.growth)} MB (bound ${(b.growthBytes / MiB).toFixed(1)} MB)`
  );
}

/** `no growth`, or what grew: `grew (slope)`, `grew (max)`, `grew (slope, max)`. */
export function growthWord(v: GrowthVerdict): string {
  if (v.ok) return 'no growth';
  return `grew (${[v.slopeOk ? '' : 'slope', v.growthOk ? '' : 'max'].filter(Boolean).join(', ')})`;
}

/**
 * The soak's verdict from its windows in order (requests answered in each, RSS when it closed): the slope over the
 * last half's windows (the second half of the list, against the requests answered by each one's end), and their
 * highest RSS against the first half's. Window 1 holds the start-up and is left out of the first half when there
 * are three windows or more, as the latency drift leaves it out.
 */
export function soakGrowth(windows: readonly { requests: number; rss: number }[], bounds: GrowthBounds = SOAK_BOUNDS): GrowthVerdict {
  let answered = 0;
  const samples = windows.map((w) => ({ requests: (answered += w.requests), rss: w.rss }));
  // one window: nothing to compare it with
  if (samples.length < 2) return judgeGrowth(samples, samples, bounds);
  const h = Math.floor(samples.length / 2);
  return judgeGrowth(samples.slice(samples.length >= 3 ? 1 : 0, h), samples.slice(h), bounds);
}
