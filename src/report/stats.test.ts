import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mean, median, quantile, sd, bootstrapCI, seededRandom, averageRanks, spearman } from './stats.ts';

test('mean, sd, median and type-7 quantiles on known values', () => {
  assert.equal(mean([]), null);
  assert.equal(mean([1, 2, 3, 4]), 2.5);
  assert.equal(sd([5]), null);
  // sample sd of 2,4,4,4,5,5,7,9 is sqrt(32/7)
  assert.ok(Math.abs(sd([2, 4, 4, 4, 5, 5, 7, 9])! - Math.sqrt(32 / 7)) < 1e-12);
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([]), null);
  // numpy.quantile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.25) == 3.25, 0.9 -> 9.1
  const ten = [10, 9, 8, 7, 6, 5, 4, 3, 2, 1];
  assert.ok(Math.abs(quantile(ten, 0.25)! - 3.25) < 1e-12);
  assert.ok(Math.abs(quantile(ten, 0.9)! - 9.1) < 1e-12);
  assert.equal(quantile(ten, 0), 1);
  assert.equal(quantile(ten, 1), 10);
  assert.throws(() => quantile(ten, 1.5), /q must be in \[0, 1\]/);
  assert.throws(() => mean([1, Number.NaN]), /finite/);
});

test('seeded generator: same seed same stream, different seeds differ, roughly uniform', () => {
  const a = seededRandom(5);
  const b = seededRandom(5);
  const c = seededRandom(6);
  const xa = Array.from({ length: 1000 }, a);
  assert.deepEqual(xa, Array.from({ length: 1000 }, b));
  assert.notDeepEqual(xa, Array.from({ length: 1000 }, c));
  assert.ok(xa.every((x) => x >= 0 && x < 1));
  assert.ok(Math.abs(mean(xa)! - 0.5) < 0.03);
});

test('bootstrap CI: deterministic under a seed, degenerate cases, and width matches the normal approximation', () => {
  assert.equal(bootstrapCI([0.7]), null);
  const c = bootstrapCI([0.5, 0.5, 0.5], { seed: 1 })!;
  assert.deepEqual([c.lo, c.estimate, c.hi], [0.5, 0.5, 0.5]);
  const xs = [0.71, 0.74, 0.69, 0.76, 0.72];
  assert.deepEqual(bootstrapCI(xs, { seed: 3 }), bootstrapCI(xs, { seed: 3 }));
  assert.notDeepEqual(bootstrapCI(xs, { seed: 3 }), bootstrapCI(xs, { seed: 4 }));
  const ci = bootstrapCI(xs, { seed: 3 })!;
  assert.ok(ci.lo <= ci.estimate && ci.estimate <= ci.hi);
  assert.ok(ci.lo >= Math.min(...xs) && ci.hi <= Math.max(...xs));

  // Large sample from N(0, 1) by Box-Muller: the 95% interval of the mean has width ≈ 2·1.96/√n.
  const r = seededRandom(99);
  const n = 400;
  const z = Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r()));
  const big = bootstrapCI(z, { seed: 1, resamples: 2000 })!;
  const expectedWidth = (2 * 1.96 * sd(z)!) / Math.sqrt(n);
  assert.ok(Math.abs(big.hi - big.lo - expectedWidth) / expectedWidth < 0.12, `width ${big.hi - big.lo} vs ${expectedWidth}`);
  assert.ok(big.lo < mean(z)! && mean(z)! < big.hi);
  // A different statistic (median) is honoured.
  const med = bootstrapCI([1, 2, 3, 100], { seed: 2, statistic: (s) => median(s)! })!;
  assert.equal(med.estimate, 2.5);
  assert.ok(med.hi <= 100);
});

test('average ranks and Spearman rank correlation against hand-computed values', () => {
  assert.deepEqual(averageRanks([3, 1, 4, 1, 5]), [3, 1.5, 4, 1.5, 5]);
  assert.deepEqual(averageRanks([2, 2, 2]), [2, 2, 2]);
  assert.deepEqual(averageRanks([]), []);
  // no ties: 1 − 6 Σd² / (n (n² − 1)); ranks of y are 2, 1, 4, 3, d = ∓1, Σd² = 4 → 1 − 24/60 = 0.6
  assert.ok(Math.abs(spearman([10, 20, 30, 40], [2, 1, 4, 3])! - 0.6) < 1e-12);
  assert.equal(spearman([1, 2, 3], [10, 20, 30]), 1);
  assert.equal(spearman([1, 2, 3], [30, 20, 10]), -1);
  // ties in y: ranks 1, 2, 3.5, 5, 3.5; centred products sum to 8, squares 10 and 9.5 → 8 / √95
  // (scipy.stats.spearmanr([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) = 0.8207826816681233)
  assert.ok(Math.abs(spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7])! - 8 / Math.sqrt(95)) < 1e-12);
  assert.ok(Math.abs(8 / Math.sqrt(95) - 0.8207826816681233) < 1e-15);
  // ties on both sides: ranks 1.5, 1.5, 3.5, 3.5 vs 1.5, 3.5, 1.5, 3.5 → products −1·−1, −1·1, 1·−1, 1·1 sum to 0
  assert.equal(spearman([1, 1, 2, 2], [1, 2, 1, 2]), 0);
  // only ranks matter: x ranks 1, 3, 2, 4 and y ranks 1, 3, 4, 2 → Σd² = 8 → 1 − 48/60 = 0.2, for any monotone rescaling
  assert.ok(Math.abs(spearman([0.1, 0.5, 0.2, 0.9], [3, 7, 100, 4])! - 0.2) < 1e-12);
  assert.ok(Math.abs(spearman([1, 5, 2, 9], [0.3, 0.7, 1, 0.4])! - 0.2) < 1e-12);
  // undefined: fewer than 2 pairs, or a constant side
  assert.equal(spearman([1], [2]), null);
  assert.equal(spearman([], []), null);
  assert.equal(spearman([1, 2, 3], [4, 4, 4]), null);
  assert.throws(() => spearman([1, 2], [1]), /paired values, got 2 and 1/);
  assert.throws(() => spearman([1, Number.NaN], [1, 2]), /finite/);
});
