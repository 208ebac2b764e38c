// Small statistics helpers for the report: mean, median, quantiles, bootstrap confidence intervals.
// Every random step takes a seed.
import { mulberry32 } from '../tensor/random.ts';

/** Seeded uniform generator in [0, 1) (mulberry32). */
export function seededRandom(seed: number): () => number {
  return mulberry32((Math.floor(seed) ^ 0x6d2b79f5) >>> 0);
}

function finite(xs: readonly number[], what: string): void {
  for (const x of xs) if (!Number.isFinite(x)) throw new Error(`stats: ${what} needs finite numbers, got ${x}`);
}

export function mean(xs: readonly number[]): number | null {
  if (xs.length === 0) return null;
  finite(xs, 'mean');
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

/** Sample standard deviation (n − 1); null for fewer than 2 values. */
export function sd(xs: readonly number[]): number | null {
  if (xs.length < 2) return null;
  const m = mean(xs)!;
  let s = 0;
  for (const x of xs) s += (x - m) ** 2;
  return Math.sqrt(s / (xs.length - 1));
}

/** Quantile with linear interpolation between order statistics (R type 7, numpy's default). */
export function quantile(xs: readonly number[], q: number): number | null {
  if (!(q >= 0 && q <= 1)) throw new Error(`stats: quantile q must be in [0, 1], got ${q}`);
  if (xs.length === 0) return null;
  finite(xs, 'quantile');
  const s = [...xs].sort((a, b) => a - b);
  const h = (s.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.ceil(h);
  return s[lo] + (h - lo) * (s[hi] - s[lo]);
}

export function median(xs: readonly number[]): number | null {
  return quantile(xs, 0.5);
}

export interface Interval {
  estimate: number;
  lo: number;
  hi: number;
  n: number;
}

/**
 * Percentile bootstrap interval of a statistic (default: the mean): `resamples` resamples with
 * replacement drawn with a seeded generator; the interval is the (α/2, 1 − α/2) quantiles of the
 * resampled statistic. Null for fewer than 2 values (no interval can be estimated).
 */
export function bootstrapCI(
  xs: readonly number[],
  options: { seed?: number; resamples?: number; level?: number; statistic?: (sample: number[]) => number } = {},
): Interval | null {
  if (xs.length < 2) return null;
  finite(xs, 'bootstrapCI');
  const level = options.level ?? 0.95;
  if (!(level > 0 && level < 1)) throw new Error(`stats: bootstrap level must be in (0, 1), got ${level}`);
  const B = options.resamples ?? 2000;
  if (!Number.isInteger(B) || B < 1) throw new Error(`stats: bootstrap resamples must be a positive integer, got ${B}`);
  const stat = options.statistic ?? ((s: number[]) => mean(s)!);
  const rnd = seededRandom(options.seed ?? 0);
  const n = xs.length;
  const stats = new Array<number>(B);
  const buf = new Array<number>(n);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < n; i++) buf[i] = xs[Math.floor(rnd() * n)];
    stats[b] = stat(buf);
  }
  const a = (1 - level) / 2;
  return { estimate: stat([...xs]), lo: quantile(stats, a)!, hi: quantile(stats, 1 - a)!, n };
}

/** Ranks 1..n of `xs` (smallest = 1); tied values share the average of the ranks they span. */
export function averageRanks(xs: readonly number[]): number[] {
  finite(xs, 'averageRanks');
  const order = xs.map((x, i) => [x, i] as const).sort((a, b) => a[0] - b[0]);
  const ranks = new Array<number>(xs.length);
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j + 1 < order.length && order[j + 1]![0] === order[i]![0]) j++;
    const r = (i + j) / 2 + 1; // positions i..j hold ranks i+1..j+1
    for (let k = i; k <= j; k++) ranks[order[k]![1]] = r;
    i = j + 1;
  }
  return ranks;
}

/**
 * Spearman's rank correlation of paired values: the Pearson correlation of their average ranks
 * (ties get average ranks). Null for fewer than 2 pairs or when one side is constant (undefined).
 */
export function spearman(xs: readonly number[], ys: readonly number[]): number | null {
  if (xs.length !== ys.length) throw new Error(`stats: spearman needs paired values, got ${xs.length} and ${ys.length}`);
  if (xs.length < 2) return null;
  const rx = averageRanks(xs);
  const ry = averageRanks(ys);
  const mx = mean(rx)!;
  const my = mean(ry)!;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < rx.length; i++) {
    const dx = rx[i]! - mx;
    const dy = ry[i]! - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (sxx === 0 || syy === 0) return null;
  return Math.max(-1, Math.min(1, sxy / Math.sqrt(sxx * syy)));
}
