import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MergeTensorInput, ParamValue } from '../types.ts';
import { getMethod, METHODS } from '../registry.ts';
import { linear } from './linear.ts';
import { passthrough } from './passthrough.ts';
import { modelStock } from './model_stock.ts';
import { nearswap } from './nearswap.ts';
import { arceeFusion } from './arcee_fusion.ts';
import { sce } from './sce.ts';
import { ram } from './ram.ts';
import { ramplusTl } from './ramplus_tl.ts';
import { rng, randArray, assertClose } from './testing.ts';

function input(
  base: Float32Array | null,
  models: Float32Array[],
  modelParams: Array<Record<string, ParamValue>>,
  params: Record<string, ParamValue>,
  shape: number[],
): MergeTensorInput {
  return { name: 'x.weight', shape, base, models, modelParams, params, layer: null, numLayers: 2, seed: 0 };
}
const empty = (n: number) => Array.from({ length: n }, () => ({}));

const B = randArray(12, 1);
const W1 = Float32Array.from(randArray(12, 2, 0.3), (v, i) => B[i]! + v);
const W2 = Float32Array.from(randArray(12, 3, 0.3), (v, i) => B[i]! + v);
const W3 = Float32Array.from(randArray(12, 4, 0.3), (v, i) => B[i]! + v);

test('linear: Σ w W / Σ w (normalize), Σ w W (not), self-merge, zero-sum error', () => {
  const w = [0.2, 0.5, 0.3];
  const ref = Array.from(W1, (_, i) => (0.2 * W1[i]! + 0.5 * W2[i]! + 0.3 * W3[i]!) / 1.0);
  assertClose(linear.merge(input(null, [W1, W2, W3], w.map((x) => ({ weight: x })), {}, [12])), ref, 1e-6);
  const ref2 = Array.from(W1, (_, i) => 2 * W1[i]! - 1 * W2[i]!);
  assertClose(linear.merge(input(null, [W1, W2], [{ weight: 2 }, { weight: -1 }], { normalize: false }, [12])), ref2, 1e-6);
  assertClose(linear.merge(input(null, [W1, W1], [{ weight: 3 }, { weight: 1 }], {}, [12])), W1, 1e-6, 'self');
  assert.throws(() => linear.merge(input(null, [W1, W2], [{ weight: 1 }, { weight: -1 }], {}, [12])), /sum to 0/);
  assert.throws(() => linear.merge(input(null, [W1, W2.subarray(2)], [{ weight: 1 }, { weight: 1 }], {}, [12])), /shape mismatch/);
});

test('passthrough copies (× scale) one tensor', () => {
  assertClose(passthrough.merge(input(null, [W1], [{}], {}, [12])), W1, 0);
  assertClose(passthrough.merge(input(null, [W1], [{ scale: 0.5 }], {}, [12])), Array.from(W1, (x) => x * 0.5), 1e-7);
  assert.throws(() => passthrough.merge(input(null, [W1, W2], [{}, {}], {}, [12])), /exactly 1 model/);
});

function refModelStock(base: number[], ws: number[][], groups: number[][]): number[] {
  const out = base.slice();
  const N = ws.length;
  for (const g of groups) {
    const offs = ws.map((w) => g.map((i) => w[i]! - base[i]!));
    const cs: number[] = [];
    for (let i = 0; i < N; i++)
      for (let j = i + 1; j < N; j++) {
        const d = offs[i]!.reduce((s, x, k) => s + x * offs[j]![k]!, 0);
        const na = Math.sqrt(offs[i]!.reduce((s, x) => s + x * x, 0));
        const nb = Math.sqrt(offs[j]!.reduce((s, x) => s + x * x, 0));
        cs.push(Math.min(1, Math.max(-1, d / Math.max(na * nb, 1e-6))));
      }
    const c = cs.reduce((a, b) => a + b, 0) / cs.length;
    const t = (N * c) / (1 + (N - 1) * c);
    for (const i of g) out[i] = (t * ws.reduce((s, w) => s + w[i]!, 0)) / N + (1 - t) * base[i]!;
  }
  return out;
}

test('model_stock matches the reference (whole tensor and filter-wise) and known facts', () => {
  const all = [Array.from({ length: 12 }, (_, i) => i)];
  const rows = [0, 1, 2].map((r) => [0, 1, 2, 3].map((c) => r * 4 + c));
  const ms = [W1, W2, W3];
  assertClose(modelStock.merge(input(B, ms, empty(3), {}, [3, 4])), refModelStock([...B], ms.map((m) => [...m]), all), 1e-5, 'flat');
  assertClose(modelStock.merge(input(B, ms, empty(3), { filter_wise: true }, [3, 4])), refModelStock([...B], ms.map((m) => [...m]), rows), 1e-5, 'rows');
  assertClose(modelStock.merge(input(B, [W1, W1.slice()], empty(2), {}, [12])), W1, 1e-6, 'identical models → that model');
  // orthogonal offsets: cos 0 → t = 0 → base
  const b = new Float32Array([1, 1]);
  assertClose(modelStock.merge(input(b, [new Float32Array([2, 1]), new Float32Array([1, 3])], empty(2), {}, [2])), b, 1e-7, 'orthogonal');
  assert.throws(() => modelStock.merge(input(B, [W1], empty(1), {}, [12])), /at least 2 model/);
});

test('nearswap matches w = clamp(t / max(|B − W|, 1e-6), 0, 1) per entry', () => {
  const t = 0.1;
  const ref = Array.from(B, (b, i) => {
    const w = Math.min(1, Math.max(0, t / Math.max(Math.abs(b - W1[i]!), 1e-6)));
    return w * W1[i]! + (1 - w) * b;
  });
  const got = nearswap.merge(input(B, [W1], [{}], { t }, [12]));
  assertClose(got, ref, 1e-6);
  assert.ok(got.some((v, i) => v === W1[i]) && got.some((v, i) => v !== W1[i]), 'both regimes exercised');
  assertClose(nearswap.merge(input(W1, [W1.slice()], [{}], { t }, [12])), W1, 0, 'self');
  assert.throws(() => nearswap.merge(input(B, [W1], [{}], { t: 0 }, [12])), /t must be > 0/);
  assert.throws(() => nearswap.merge(input(B, [W1, W2], [{}, {}], { t }, [12])), /exactly 1 model/);
});

function refFusion(b: number[], w: number[], R: number, C: number): number[] {
  const imp: number[] = [];
  for (let r = 0; r < R; r++) {
    const wr = w.slice(r * C, r * C + C);
    const br = b.slice(r * C, r * C + C);
    const sm = (v: number[]) => {
      const m = Math.max(...v);
      const e = v.map((x) => Math.exp(x - m));
      const z = e.reduce((a, c) => a + c, 0);
      return e.map((x) => x / z + 1e-8);
    };
    const p = sm(wr);
    const q = sm(br);
    const kl = p.reduce((s, pi, i) => s + pi * Math.log(pi / q[i]!), 0);
    for (let c = 0; c < C; c++) imp.push(Math.abs(wr[c]! - br[c]!) * kl);
  }
  const sorted = imp.slice().sort((x, y) => x - y);
  const qv = (q: number) => sorted[Math.floor(q * (sorted.length - 1))]!;
  const thr = qv(0.5) + 1.5 * (qv(0.75) - qv(0.25));
  return b.map((x, i) => (imp[i]! >= thr ? w[i]! : x));
}

test('arcee_fusion matches the reference (row KL × |δ|, median + 1.5 IQR threshold)', () => {
  const R = 8;
  const C = 16;
  const b = randArray(R * C, 7);
  // a few rows change a lot, the rest barely: importance has outliers
  const w = Float32Array.from(b, (x, i) => x + (Math.floor(i / C) % 3 === 0 ? (((i * 7919) % 13) - 6) * 0.3 : 0.001 * ((i % 5) - 2)));
  const got = arceeFusion.merge(input(b, [w], [{}], {}, [R, C]));
  const ref = refFusion([...b], [...w], R, C);
  assertClose(got, ref, 1e-6);
  const kept = Array.from(got).filter((v, i) => v === w[i] && w[i] !== b[i]).length;
  assert.ok(kept > 0 && kept < R * C / 2, `kept ${kept} changes`);
  assertClose(arceeFusion.merge(input(w, [w.slice()], [{}], {}, [R, C])), w, 0, 'self');
  assert.throws(() => arceeFusion.merge(input(b, [w, w], [{}, {}], {}, [R, C])), /exactly 1 model/);
});

function refSce(base: number[], ws: number[][], topk: number): number[] {
  const n = base.length;
  const N = ws.length;
  let ds = ws.map((w) => w.map((x, i) => Math.fround(x - base[i]!)));
  if (topk < 1) {
    const v = base.map((_, i) => {
      const m = ds.reduce((s, d) => s + d[i]!, 0) / N;
      return ds.reduce((s, d) => s + (d[i]! - m) ** 2, 0) / N;
    });
    const nonzero = v.filter((x) => x !== 0).length;
    const k = Math.floor(topk * nonzero);
    const order = v.map((_, i) => i).sort((a, b) => v[b]! - v[a]! || a - b);
    const keep = new Set(order.slice(0, k));
    ds = ds.map((d) => d.map((x, i) => (keep.has(i) ? x : 0)));
  }
  const ms = ds.map((d) => d.reduce((s, x) => s + x * x, 0) / n);
  const tot = ms.reduce((a, b) => a + b, 0);
  const c = tot === 0 ? ms.map(() => 1 / N) : ms.map((x) => x / tot);
  return base.map((b, i) => {
    const s = ds.reduce((acc, d) => acc + d[i]!, 0) >= 0 ? 1 : -1;
    let num = 0;
    let den = 0;
    ds.forEach((d, k) => {
      if (Math.sign(d[i]!) === s) {
        num += c[k]! * d[i]!;
        den += c[k]!;
      }
    });
    return b + num / (den === 0 ? 1 : den);
  });
}

test('sce matches the reference (variance top-k, mean-square coefficients, sign erase)', () => {
  const ms = [W1, W2, W3];
  for (const topk of [1, 0.5, 0.1]) {
    assertClose(sce.merge(input(B, ms, empty(3), { select_topk: topk }, [3, 4])), refSce([...B], ms.map((m) => [...m]), topk), 1e-5, `topk ${topk}`);
  }
  assertClose(sce.merge(input(B, [W1, W1.slice()], empty(2), {}, [12])), W1, 1e-6, 'self');
  assertClose(sce.merge(input(B, [B.slice(), B.slice()], empty(2), { select_topk: 0.5 }, [12])), B, 0, 'zero task vectors');
});

function refRam(base: number[], ws: number[][], eps: number, plus: { r: number; alpha: number } | null): number[] {
  const ds = ws.map((w) => w.map((x, i) => Math.fround(x - base[i]!)));
  const active = ds.map((d) => d.map((x) => Math.abs(x) > eps));
  const count = base.map((_, i) => active.reduce((s, a) => s + (a[i] ? 1 : 0), 0));
  const lam = ds.map((_, k) => {
    if (!plus) return 1;
    const shared = count.filter((c, i) => active[k]![i] && c > 1).length;
    const unique = count.filter((c, i) => active[k]![i] && c === 1).length;
    const rho = shared / Math.max(unique, eps);
    return 1 + plus.r * Math.min(plus.alpha, Math.max(0, rho));
  });
  return base.map((b, i) => {
    let d = 0;
    ds.forEach((dk, k) => {
      if (!active[k]![i]) return;
      d += count[i] === 1 ? dk[i]! * lam[k]! : dk[i]! / count[i]!;
    });
    return b + d;
  });
}

test('ram / ramplus_tl match the reference (unique entries kept, shared averaged, RAM+ boost)', () => {
  // sparse task vectors so that unique, shared and inactive entries all occur
  const mk = (seed: number) => {
    const r = rng(seed);
    return Float32Array.from(B, (b) => (r() < 0.5 ? b : b + (r() * 2 - 1) * 0.5));
  };
  const ms = [mk(31), mk(32), mk(33)];
  const ref = refRam([...B], ms.map((m) => [...m]), 1e-5, null);
  assertClose(ram.merge(input(B, ms, empty(3), {}, [12])), ref, 1e-6, 'ram');
  const refPlus = refRam([...B], ms.map((m) => [...m]), 1e-5, { r: 0.3, alpha: 0.5 });
  assertClose(ramplusTl.merge(input(B, ms, empty(3), { r: 0.3, alpha: 0.5 }, [12])), refPlus, 1e-6, 'ramplus_tl');
  assert.notDeepEqual(refPlus, ref, 'the boost changes something');
  assertClose(ram.merge(input(B, [W1, W1.slice()], empty(2), {}, [12])), W1, 1e-6, 'self');
});

test('registry: every mergekit method, by name, with a clear error for unknown names', () => {
  const names = [
    'linear', 'task_arithmetic', 'ties', 'dare_linear', 'dare_ties', 'breadcrumbs', 'breadcrumbs_ties', 'della', 'della_linear', 'sce',
    'ram', 'ramplus_tl', 'slerp', 'nuslerp', 'multislerp', 'karcher', 'model_stock', 'nearswap', 'arcee_fusion', 'passthrough',
  ];
  assert.deepEqual([...METHODS.keys()].sort(), names.slice().sort());
  for (const n of names) assert.equal(getMethod(n).name, n);
  assert.throws(() => getMethod('tie'), /unknown merge method 'tie'; known methods: linear, task_arithmetic/);
  for (const m of METHODS.values()) {
    const specs = [...m.globalParams, ...m.modelParams];
    assert.equal(new Set(specs.map((s) => s.name)).size, specs.length, `${m.name}: duplicate parameter names`);
    for (const s of specs) if (s.default !== undefined) assert.equal(typeof s.default, s.type, `${m.name}.${s.name}`);
  }
});
