import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MergeTensorInput, ParamValue } from '../types.ts';
import { uniformAt } from '../../tensor/kernels.ts';
import { subSeed } from './common.ts';
import { gtaMerge } from './gta.ts';
import { taskArithmetic } from './task_arithmetic.ts';
import { ties } from './ties.ts';
import { dareLinear } from './dare_linear.ts';
import { dareTies } from './dare_ties.ts';
import { breadcrumbs } from './breadcrumbs.ts';
import { breadcrumbsTies } from './breadcrumbs_ties.ts';
import { della } from './della.ts';
import { dellaLinear } from './della_linear.ts';
import { randArray, assertClose } from './testing.ts';

function input(
  base: Float32Array,
  models: Float32Array[],
  modelParams: Array<Record<string, ParamValue>>,
  params: Record<string, ParamValue> = {},
  shape: number[] = [base.length],
  seed = 1234,
): MergeTensorInput {
  return { name: 'model.layers.0.mlp.up_proj.weight', shape, base, models, modelParams, params, layer: 0, numLayers: 1, seed };
}

// ---------- naive reference (plain arrays, real sorts) ----------
type Sparsifier = (delta: number[], modelIndex: number) => number[];

function refTopK(delta: number[], density: number): number[] {
  if (density >= 1) return delta.slice();
  const k = Math.floor(density * delta.length);
  const order = delta.map((_, i) => i).sort((a, b) => Math.abs(delta[b]!) - Math.abs(delta[a]!) || a - b);
  const keep = new Set(order.slice(0, k));
  return delta.map((v, i) => (keep.has(i) ? v : 0));
}
function refL1Rescale(orig: number[], masked: number[]): number[] {
  const before = orig.reduce((s, v) => s + Math.abs(v), 0);
  const after = masked.reduce((s, v) => s + Math.abs(v), 0);
  if (before < 1e-7 || after < 1e-7) return masked;
  return masked.map((v) => (v * before) / after);
}
function refBernoulli(delta: number[], density: number, seed: number, rescale: boolean): number[] {
  if (density >= 1) return delta.slice();
  const masked = delta.map((v, j) => (uniformAt(seed, j) < density ? v : 0));
  return rescale ? refL1Rescale(delta, masked) : masked;
}
function refBand(delta: number[], density: number, gamma: number): number[] {
  if (density >= 1) return delta.slice();
  const n = delta.length;
  const nKeep = Math.floor(density * n);
  let nTop = Math.floor(gamma * n);
  let nBot = n - nKeep - nTop;
  if (nBot < 0) {
    nTop += nBot;
    nBot = 0;
  }
  const asc = delta.map((_, i) => i).sort((a, b) => Math.abs(delta[a]!) - Math.abs(delta[b]!) || b - a);
  const keep = new Set(asc.slice(nBot, n - nTop)); // our documented fix: nTop = 0 keeps up to the end
  return delta.map((v, i) => (keep.has(i) ? v : 0));
}
function refDella(delta: number[], density: number, eps: number, rows: number, seed: number): number[] {
  if (density >= 1) return delta.slice();
  const L = delta.length / rows;
  const masked = delta.slice();
  for (let r = 0; r < rows; r++) {
    const idx = Array.from({ length: L }, (_, j) => r * L + j);
    const asc = idx.slice().sort((a, b) => Math.abs(delta[a]!) - Math.abs(delta[b]!) || a - b);
    asc.forEach((flat, rank) => {
      const p = density - eps + (L > 1 ? rank / (L - 1) : 0.5) * 2 * eps;
      if (!(uniformAt(seed, flat) < p)) masked[flat] = 0;
    });
  }
  return refL1Rescale(delta, masked);
}

function refGta(
  base: Float32Array,
  models: Float32Array[],
  weights: number[],
  o: { sparsify?: Sparsifier; consensus?: 'sum' | 'count'; normalize: boolean; lambda?: number },
): number[] {
  const n = base.length;
  const deltas = models.map((m, i) => {
    const d = Array.from(m, (v, j) => Math.fround(v - base[j]!));
    return o.sparsify ? o.sparsify(d, i) : d;
  });
  const out: number[] = [];
  for (let j = 0; j < n; j++) {
    const wd = deltas.map((d, i) => weights[i]! * d[j]!);
    let mixed = 0;
    let div = 0;
    if (o.consensus) {
      const s = o.consensus === 'sum' ? wd.reduce((a, b) => a + b, 0) : wd.reduce((a, b) => a + Math.sign(b), 0);
      const elected = s >= 0 ? 1 : -1;
      wd.forEach((v, i) => {
        if (Math.sign(v) === elected) {
          mixed += v;
          div += weights[i]!;
        }
      });
      if (div === 0) div = 1;
    } else {
      mixed = wd.reduce((a, b) => a + b, 0);
      div = weights.reduce((a, b) => a + b, 0);
      if (Math.abs(div) < 1e-8) div = 1;
    }
    if (o.normalize) mixed /= div;
    out.push(base[j]! + mixed * (o.lambda ?? 1));
  }
  return out;
}

const N = 60;
const base = randArray(N, 1);
const m1 = Float32Array.from(randArray(N, 2, 0.5), (v, i) => base[i]! + v);
const m2 = Float32Array.from(randArray(N, 3, 0.5), (v, i) => base[i]! + v);
const m3 = Float32Array.from(randArray(N, 4, 0.5), (v, i) => base[i]! + v);

test('task_arithmetic matches B + λ Σ w δ (and ÷ Σ w with normalize)', () => {
  const w = [0.7, -0.3, 1.1];
  const got = taskArithmetic.merge(input(base, [m1, m2, m3], w.map((x) => ({ weight: x })), { lambda: 0.8 }));
  assertClose(got, refGta(base, [m1, m2, m3], w, { normalize: false, lambda: 0.8 }), 1e-5, 'TA');
  const got2 = taskArithmetic.merge(input(base, [m1, m2, m3], w.map((x) => ({ weight: x })), { lambda: 0.8, normalize: true }));
  assertClose(got2, refGta(base, [m1, m2, m3], w, { normalize: true, lambda: 0.8 }), 1e-5, 'TA normalize');
});

test('ties matches the reference (top-k over the flattened tensor, sum election, masked mean, λ after)', () => {
  const w = [1, 0.5, -0.4];
  const dens = [0.5, 0.3, 0.8];
  const shape = [6, 10];
  const got = ties.merge(input(base, [m1, m2, m3], w.map((x, i) => ({ weight: x, density: dens[i]! })), { lambda: 1.3 }, shape));
  const ref = refGta(base, [m1, m2, m3], w, { sparsify: (d, i) => refTopK(d, dens[i]!), consensus: 'sum', normalize: true, lambda: 1.3 });
  assertClose(got, ref, 1e-5, 'ties');
  // normalize: false sums instead of averaging
  const got2 = ties.merge(input(base, [m1, m2, m3], w.map((x, i) => ({ weight: x, density: dens[i]! })), { normalize: false }, shape));
  const ref2 = refGta(base, [m1, m2, m3], w, { sparsify: (d, i) => refTopK(d, dens[i]!), consensus: 'sum', normalize: false });
  assertClose(got2, ref2, 1e-5, 'ties no-normalize');
});

test('sign election happens after weighting: a negative weight flips the vote', () => {
  const b = new Float32Array([0, 0]);
  const a1 = new Float32Array([1, 1]);
  const a2 = new Float32Array([2, -3]);
  // weights 1 and -1: weighted deltas [1,1] and [-2,3]; sums -1 → elected −, 4 → elected +
  const got = ties.merge(input(b, [a1, a2], [{ weight: 1 }, { weight: -1 }], {}, [2]));
  // entry 0: only model 2 agrees (−2), divisor −1 → 2; entry 1: both agree (1 + 3), divisor 0 → 1 → 4
  assertClose(got, [2, 4], 1e-6);
});

test('ties: entries where no model is selected give the base (divisor 0 → 1), zero never votes', () => {
  const b = new Float32Array([5, 5, 5]);
  const a = new Float32Array([5, 6, 4]);
  const got = ties.merge(input(b, [a], [{ weight: 1 }], {}, [3]));
  assertClose(got, [5, 6, 4], 1e-6);
});

test('ties at density 1 with one model equals task arithmetic (both normalised, or both not)', () => {
  for (const normalize of [true, false]) {
    const p = { normalize, lambda: 0.9 };
    const t = ties.merge(input(base, [m1], [{ weight: 0.6, density: 1 }], p));
    const ta = taskArithmetic.merge(input(base, [m1], [{ weight: 0.6 }], p));
    assertClose(t, ta, 1e-6, `normalize=${normalize}`);
  }
  // with ties' default (normalize: true) and TA's default (false), a weight ≠ 1 differs: B + λδ vs B + λwδ
  const t = ties.merge(input(base, [m1], [{ weight: 0.6 }]));
  assertClose(t, m1, 1e-6, 'ties default normalize returns the model');
});

test('weight 0 returns the base for every GTA method', () => {
  for (const m of [taskArithmetic, ties, dareLinear, dareTies, breadcrumbs, breadcrumbsTies, della, dellaLinear]) {
    const got = m.merge(input(base, [m1, m2], [{ weight: 0, density: 0.5 }, { weight: 0, density: 0.5 }], {}, [6, 10]));
    assertClose(got, base, 1e-6, m.name);
  }
});

test('merging a model with itself returns it (ties/normalised methods at density 1; TA with one model)', () => {
  assertClose(ties.merge(input(base, [m1, m1], [{ weight: 0.3 }, { weight: 0.9 }])), m1, 1e-6, 'ties');
  assertClose(della.merge(input(base, [m1, m1], [{ weight: 1 }, { weight: 2 }])), m1, 1e-6, 'della at density 1');
  assertClose(taskArithmetic.merge(input(base, [m1], [{ weight: 1 }])), m1, 1e-6, 'TA');
  assertClose(taskArithmetic.merge(input(base, [m1, m1], [{ weight: 1 }, { weight: 1 }], { normalize: true })), m1, 1e-6, 'TA normalize');
});

test('dare_linear and dare_ties match the reference (Bernoulli keep with the per-model stream, L1 rescale)', () => {
  const seed = 99;
  const w = [0.8, 0.6];
  const dens = [0.5, 0.7];
  const mp = w.map((x, i) => ({ weight: x, density: dens[i]! }));
  const sp: Sparsifier = (d, i) => refBernoulli(d, dens[i]!, subSeed(seed, i), true);
  assertClose(dareLinear.merge(input(base, [m1, m2], mp, {}, [N], seed)), refGta(base, [m1, m2], w, { sparsify: sp, normalize: false }), 1e-5, 'dare_linear');
  assertClose(dareTies.merge(input(base, [m1, m2], mp, {}, [N], seed)), refGta(base, [m1, m2], w, { sparsify: sp, consensus: 'sum', normalize: false }), 1e-5, 'dare_ties');
  // rescale: false keeps the raw masked entries
  const spNo: Sparsifier = (d, i) => refBernoulli(d, dens[i]!, subSeed(seed, i), false);
  assertClose(
    dareLinear.merge(input(base, [m1, m2], mp, { rescale: false }, [N], seed)),
    refGta(base, [m1, m2], w, { sparsify: spNo, normalize: false }),
    1e-5,
    'dare_linear no rescale',
  );
});

test('seeded methods: same seed → identical output, another seed → different output', () => {
  for (const m of [dareLinear, dareTies, della, dellaLinear]) {
    const mk = (seed: number) => m.merge(input(base, [m1, m2], [{ weight: 1, density: 0.5 }, { weight: 1, density: 0.5 }], {}, [6, 10], seed));
    assert.deepEqual(mk(7), mk(7), m.name);
    assert.notDeepEqual(mk(7), mk(8), m.name);
    assert.equal(m.random, true);
  }
});

test('breadcrumbs / breadcrumbs_ties match the reference band', () => {
  const n = 200; // n_top = ⌊0.01·200⌋ = 2 at the default gamma
  const b = randArray(n, 11);
  const a1 = Float32Array.from(randArray(n, 12), (v, i) => b[i]! + v);
  const a2 = Float32Array.from(randArray(n, 13), (v, i) => b[i]! + v);
  const w = [1, 0.5];
  for (const gamma of [0.01, 0.1]) {
    const mp = w.map((x) => ({ weight: x, density: 0.3, gamma }));
    const sp: Sparsifier = (d) => refBand(d, 0.3, gamma);
    assertClose(breadcrumbs.merge(input(b, [a1, a2], mp)), refGta(b, [a1, a2], w, { sparsify: sp, normalize: false }), 1e-5, `breadcrumbs γ=${gamma}`);
    assertClose(
      breadcrumbsTies.merge(input(b, [a1, a2], mp)),
      refGta(b, [a1, a2], w, { sparsify: sp, consensus: 'sum', normalize: false }),
      1e-5,
      `breadcrumbs_ties γ=${gamma}`,
    );
  }
});

test('breadcrumbs quirk decision: n_top = 0 keeps the n_keep largest (mergekit would zero the delta)', () => {
  // 60 entries, γ = 0.01 → n_top = 0
  const got = breadcrumbs.merge(input(base, [m1], [{ weight: 1, density: 0.5 }]));
  const ref = refGta(base, [m1], [1], { sparsify: (d) => refTopK(d, 0.5), normalize: false });
  assertClose(got, ref, 1e-6);
  assert.ok(got.some((v, i) => v !== base[i]), 'delta must not be zeroed');
  // the engine option reproduces mergekit exactly when asked
  const quirk = gtaMerge(
    { base, models: [m1], params: [{ weight: 1, density: 0.5 }] },
    { sparsification: 'magnitude_outliers', consensus: null, normalize: false, rescale: null, emptyBandQuirk: true },
  );
  assertClose(quirk, base, 0);
});

test('della / della_linear match the reference (per-row ranks, p = d − ε + 2ε·rank, L1 rescale)', () => {
  const seed = 5;
  const w = [1, 0.7];
  const dens = [0.5, 0.4];
  const eps = [0.15, 0.1];
  const mp = w.map((x, i) => ({ weight: x, density: dens[i]!, epsilon: eps[i]! }));
  const sp: Sparsifier = (d, i) => refDella(d, dens[i]!, eps[i]!, 6, subSeed(seed, i));
  assertClose(della.merge(input(base, [m1, m2], mp, {}, [6, 10], seed)), refGta(base, [m1, m2], w, { sparsify: sp, consensus: 'sum', normalize: true }), 1e-5, 'della');
  assertClose(
    dellaLinear.merge(input(base, [m1, m2], mp, { lambda: 0.5 }, [6, 10], seed)),
    refGta(base, [m1, m2], w, { sparsify: sp, normalize: false, lambda: 0.5 }),
    1e-5,
    'della_linear',
  );
});

test('count consensus through the exposed engine matches the reference', () => {
  const w = [1, 1, 1];
  const got = gtaMerge(
    { base, models: [m1, m2, m3], params: w.map((x) => ({ weight: x, density: 0.6 })) },
    { sparsification: 'magnitude', consensus: 'count', normalize: true, rescale: null, lambda: 1 },
  );
  const ref = refGta(base, [m1, m2, m3], w, { sparsify: (d) => refTopK(d, 0.6), consensus: 'count', normalize: true });
  assertClose(got, ref, 1e-5);
});

test('errors: density too small, bad density, della range, missing weight, model count, shape mismatch', () => {
  const small = new Float32Array(4);
  assert.throws(() => ties.merge(input(small, [small], [{ weight: 1, density: 0.1 }])), /density 0\.1 too small for a tensor of 4 elements/);
  assert.throws(() => ties.merge(input(base, [m1], [{ weight: 1, density: -0.5 }])), /density must be a finite number/);
  assert.throws(() => della.merge(input(base, [m1], [{ weight: 1, density: 0.1, epsilon: 0.15 }])), /density ± epsilon must lie in \(0, 1\)/);
  assert.throws(() => taskArithmetic.merge(input(base, [m1], [{}])), /parameter 'weight' is required/);
  assert.throws(() => ties.merge(input(base, [], [])), /at least 1 model/);
  assert.throws(() => ties.merge(input(base, [m1.subarray(1)], [{ weight: 1 }])), /shape mismatch/);
});

test('fused-kernel path and plain-JS path agree for every sparsifier × consensus × normalize × rescale', () => {
  const shape = [6, 10];
  for (const sparsification of [null, 'magnitude', 'random', 'magnitude_outliers', 'della_magprune'] as const)
    for (const consensus of [null, 'sum', 'count'] as const)
      for (const normalize of [false, true])
        for (const rescale of [null, 'l1', 'l2', 'linf'] as const)
          for (const sameDensity of [true, false]) {
            const params = [
              { weight: 0.9, density: 0.5 },
              { weight: -0.4, density: sameDensity ? 0.5 : 0.4 },
              { weight: 0.7, density: 0.5, gamma: 0.05 },
            ];
            const run = (useFusedKernel: boolean) =>
              gtaMerge({ base, models: [m1, m2, m3], params, shape, seed: 77 }, { sparsification, consensus, normalize, rescale, lambda: 1.2, useFusedKernel });
            assertClose(run(true), run(false), 2e-5, `${sparsification}/${consensus}/${normalize}/${rescale}/${sameDensity}`);
          }
});

test('large tensor (native-kernel sized): ties and dare_ties agree with the JS path', () => {
  const n = 5000;
  const b = randArray(n, 21);
  const ms = [22, 23, 24].map((s) => Float32Array.from(randArray(n, s, 0.1), (v, i) => b[i]! + v));
  const params = [{ weight: 1, density: 0.3 }, { weight: 0.5, density: 0.3 }, { weight: 0.8, density: 0.3 }];
  for (const sparsification of ['magnitude', 'random'] as const) {
    const run = (useFusedKernel: boolean) =>
      gtaMerge({ base: b, models: ms, params, seed: 3 }, { sparsification, consensus: 'sum', normalize: true, rescale: 'l1', useFusedKernel });
    assertClose(run(true), run(false), 2e-5, sparsification);
  }
});

test('the exposed engine rejects unknown option values with a clear message', () => {
  const p = [{ weight: 1 }];
  const bad = (o: Record<string, unknown>) => () =>
    gtaMerge({ base, models: [m1], params: p }, { sparsification: null, consensus: null, normalize: false, rescale: null, ...o } as never);
  assert.throws(bad({ sparsification: 'magnitud' }), /unknown sparsification 'magnitud'/);
  assert.throws(bad({ consensus: 'vote' }), /unknown consensus 'vote'/);
  assert.throws(bad({ rescale: 'l3' }), /unknown rescale norm 'l3'/);
  assert.throws(bad({ normalize: 'yes' }), /normalize must be true or false/);
  // undefined options mean "none"
  assertClose(gtaMerge({ base, models: [m1], params: p }, { normalize: false } as never), m1, 1e-6);
});
