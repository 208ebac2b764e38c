import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sparsifyInPlace } from './sparsify.ts';
import { rng, randArray } from './testing.ts';


test('magnitude: keeps exactly ⌊density·n⌋ largest |x| over the whole tensor, ties to the lower index', () => {
  const x = new Float32Array([0.5, -2, 2, 1, -1, 0.1, 3, -0.5]);
  const y = x.slice();
  sparsifyInPlace(y, { method: 'magnitude', density: 0.5, shape: [2, 4] }); // k = 4: 3, -2, 2, then 1 (index 3) over -1
  assert.deepEqual(Array.from(y), [0, -2, 2, 1, 0, 0, 3, 0]);
  const z = x.slice();
  sparsifyInPlace(z, { method: 'magnitude', density: 1 });
  assert.deepEqual(z, x, 'density ≥ 1 leaves the tensor unchanged');
  assert.throws(() => sparsifyInPlace(x.slice(), { method: 'magnitude', density: 0.1 }), /density 0\.1 too small for a tensor of 8 elements/);
});

test('rescale matches the realised norm ratio (l1, l2, linf) and is skipped for tiny norms', () => {
  const x = randArray(100, 3);
  for (const norm of ['l1', 'l2', 'linf'] as const) {
    const y = x.slice();
    sparsifyInPlace(y, { method: 'magnitude', density: 0.3, rescale: norm });
    const kept = x.map((v, i) => (y[i] !== 0 ? v : 0));
    const nrm = (a: Float32Array) =>
      norm === 'l1' ? a.reduce((s, v) => s + Math.abs(v), 0) : norm === 'l2' ? Math.sqrt(a.reduce((s, v) => s + v * v, 0)) : a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const ratio = nrm(x) / nrm(kept);
    for (let i = 0; i < 100; i++) assert.ok(Math.abs(y[i]! - kept[i]! * ratio) < 1e-5, `${norm} @${i}`);
  }
  const tiny = new Float32Array(10).fill(1e-9);
  sparsifyInPlace(tiny, { method: 'magnitude', density: 0.5, rescale: 'l1' });
  assert.equal(tiny.filter((v) => v !== 0).length, 5);
  assert.ok(tiny.every((v) => v === 0 || Math.abs(v - 1e-9) < 1e-15), 'no rescale below 1e-7');
});

test('random: keep rate ≈ density, deterministic per seed, density ≥ 1 unchanged', () => {
  const x = Float32Array.from({ length: 20000 }, () => 1);
  const a = x.slice();
  sparsifyInPlace(a, { method: 'random', density: 0.3, seed: 42 });
  const rate = a.filter((v) => v !== 0).length / a.length;
  assert.ok(Math.abs(rate - 0.3) < 0.015, `keep rate ${rate}`);
  const b = x.slice();
  sparsifyInPlace(b, { method: 'random', density: 0.3, seed: 42 });
  assert.deepEqual(a, b);
  const c = x.slice();
  sparsifyInPlace(c, { method: 'random', density: 0.3, seed: 43 });
  assert.notDeepEqual(a, c);
  const d = x.slice();
  sparsifyInPlace(d, { method: 'random', density: 1.5, seed: 1 });
  assert.deepEqual(d, x);
});

test('della: keep probability rises linearly with the per-row rank from d−ε to d+ε', () => {
  const rows = 400;
  const L = 10;
  // every row holds magnitudes 1..10 in a shuffled order; rank of value v is v − 1
  const r = rng(9);
  const x = new Float32Array(rows * L);
  for (let i = 0; i < rows; i++) {
    const vals = Array.from({ length: L }, (_, j) => j + 1);
    for (let j = L - 1; j > 0; j--) {
      const k = Math.floor(r() * (j + 1));
      [vals[j], vals[k]] = [vals[k]!, vals[j]!];
    }
    vals.forEach((v, j) => (x[i * L + j] = r() < 0.5 ? -v : v));
  }
  const y = x.slice();
  sparsifyInPlace(y, { method: 'della_magprune', density: 0.5, epsilon: 0.3, seed: 3, shape: [rows, L] });
  for (const [v, p] of [
    [1, 0.2],
    [10, 0.8],
  ] as const) {
    let kept = 0;
    for (let i = 0; i < x.length; i++) if (Math.abs(x[i]!) === v && y[i] !== 0) kept++;
    assert.ok(Math.abs(kept / rows - p) < 0.07, `magnitude ${v}: keep rate ${kept / rows}, expected ${p}`);
  }
  assert.throws(() => sparsifyInPlace(x.slice(), { method: 'della_magprune', density: 0.9, epsilon: 0.15, shape: [rows, L] }), /density ± epsilon/);
  const z = x.slice();
  sparsifyInPlace(z, { method: 'della_magprune', density: 0, epsilon: 0.15, shape: [rows, L] });
  assert.ok(z.every((v) => v === 0), 'density 0 → zero');
});

test('magnitude_outliers: n_top shrinks when n_top + n_keep > n; n_keep = 0 zeroes; quirk option', () => {
  const x = Float32Array.from({ length: 100 }, (_, i) => (i % 2 ? -1 : 1) * (i + 1)); // |x| = 1..100
  // density 0.95, gamma 0.1 → n_keep 95, n_top 10, n_bot −5 → n_top 5, n_bot 0: keep |x| 1..95
  const y = x.slice();
  sparsifyInPlace(y, { method: 'magnitude_outliers', density: 0.95, gamma: 0.1 });
  y.forEach((v, i) => assert.equal(v, i < 95 ? x[i] : 0));
  // density 0.2, gamma 0.05 → drop top 5 (96..100) and bottom 75 (1..75): keep 76..95
  const z = x.slice();
  sparsifyInPlace(z, { method: 'magnitude_outliers', density: 0.2, gamma: 0.05 });
  z.forEach((v, i) => assert.equal(v, i >= 75 && i < 95 ? x[i] : 0));
  const e = x.slice();
  sparsifyInPlace(e, { method: 'magnitude_outliers', density: 0.001, gamma: 0.05 });
  assert.ok(e.every((v) => v === 0));
  const q = x.slice();
  sparsifyInPlace(q, { method: 'magnitude_outliers', density: 0.5, gamma: 0.001, emptyBandQuirk: true });
  assert.ok(q.every((v) => v === 0), 'mergekit quirk reproduced on request');
  assert.throws(() => sparsifyInPlace(x.slice(), { method: 'magnitude_outliers', density: 0.5, gamma: 1 }), /gamma must be in \[0, 1\)/);
});
