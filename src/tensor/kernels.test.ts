import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  axpy, sub, scale, deltaAxpy, l1, l2sq, dot, absMax, topkMagnitudeInPlace, kthLargestAbs,
  bernoulliMaskInPlace, bernoulliMaskL1, uniformAt, gtaMerge, tiesCombine, reference,
  setThreads, setNativeMinLength, configureNative, nativeStatus,
} from './kernels.ts';
import type { GtaOptions, TensorData } from './kernels.ts';
import { decodeToF32, encodeFromF32, decodeToF32Reference, encodeFromF32Reference, bf16BitsToF32, f32ToBf16Bits, f16BitsToF32 } from './dtype.ts';
import type { FloatDType } from './dtype.ts';

const status = nativeStatus();
// Run every kernel natively for any length (when the addon is built), and split across threads
// from 64K elements so the threaded paths are exercised with small arrays.
setNativeMinLength(0);
configureNative({ parallelMin: 1 << 16 });

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}
const SPECIALS = [NaN, Infinity, -Infinity, 0, -0, 1e-45, -3e-39, 3.4e38, 65504, 1];
function data(n: number, seed: number, specials = true): Float32Array {
  const r = rng(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = (r() - 0.5) * 2 ** Math.floor(r() * 8 - 4);
  if (specials) for (let i = 0; i < Math.min(n, 40); i++) x[Math.floor(r() * n)] = SPECIALS[i % SPECIALS.length]!;
  return x;
}
function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(a[i]!) && Number.isNaN(b[i]!)) continue;
    if (ua[i] !== ub[i]) assert.fail(`${what}: index ${i}: ${a[i]} (0x${ua[i]!.toString(16)}) vs ${b[i]} (0x${ub[i]!.toString(16)})`);
  }
}
const LENGTHS = [0, 1, 7, 8, 9, 33, 1023, 2049, 70001, 200003];

/** Runs f under both thread counts and both ISA paths; returns the results. */
function variants<T>(f: () => T): T[] {
  const out: T[] = [];
  for (const avx2 of [true, false]) {
    configureNative({ avx2 });
    for (const t of [1, 2]) {
      setThreads(t);
      out.push(f());
    }
  }
  configureNative({ avx2: true });
  setThreads(2);
  return out;
}

test('native addon status is reported', () => {
  assert.equal(typeof status.loaded, 'boolean');
  if (process.env.SELFDEV_NO_NATIVE !== '1' && !status.loaded) console.warn('native addon not built: testing the JS path only');
});

test('elementwise kernels: native == JS reference bit for bit (odd lengths, specials, 1/2 threads, both ISAs)', () => {
  for (const n of LENGTHS) {
    const x = data(n, 1 + n);
    const y = data(n, 2 + n);
    const b = data(n, 3 + n);
    const ops: Array<[string, (o: Float32Array) => void, (o: Float32Array) => void]> = [
      ['axpy', (o) => axpy(o, 0.3, x), (o) => reference.axpy(o, 0.3, x)],
      ['axpy-neg', (o) => axpy(o, -1.7e-3, x), (o) => reference.axpy(o, -1.7e-3, x)],
      ['scale', (o) => scale(o, 1 / 3), (o) => reference.scale(o, 1 / 3)],
      ['sub', (o) => sub(o, x, b), (o) => reference.sub(o, x, b)],
      ['deltaAxpy', (o) => deltaAxpy(o, 0.1, x, b), (o) => reference.deltaAxpy(o, 0.1, x, b)],
    ];
    for (const [name, fast, ref] of ops) {
      const want = y.slice();
      ref(want);
      for (const got of variants(() => {
        const o = y.slice();
        fast(o);
        return o;
      })) sameBits(got, want, `${name} n=${n}`);
    }
  }
});

test('deltaAxpy follows its float32 formula', () => {
  const acc = new Float32Array([1, 2, 3]);
  deltaAxpy(acc, 0.1, new Float32Array([1.5, 0, 1e8]), new Float32Array([0.5, 1, 0]));
  const w = Math.fround(0.1);
  assert.deepEqual([...acc], [Math.fround(1 + Math.fround(w * 1)), Math.fround(2 - w), Math.fround(3 + Math.fround(w * 1e8))]);
});

test('reductions: native within float64 rounding of JS, identical across threads and ISAs', () => {
  for (const n of LENGTHS) {
    const x = data(n, 10 + n, false);
    const y = data(n, 11 + n, false);
    for (const [name, f, ref] of [
      ['l1', () => l1(x), () => reference.l1(x)],
      ['l2sq', () => l2sq(x), () => reference.l2sq(x)],
      ['dot', () => dot(x, y), () => reference.dot(x, y)],
      ['absMax', () => absMax(x), () => reference.absMax(x)],
    ] as Array<[string, () => number, () => number]>) {
      const want = ref();
      const got = variants(f);
      for (const g of got) assert.equal(g, got[0], `${name} n=${n}: differs across threads/ISA`);
      if (name === 'absMax') assert.equal(got[0], want);
      else assert.ok(Math.abs(got[0]! - want) <= 1e-12 * Math.max(1, Math.abs(want)), `${name} n=${n}: ${got[0]} vs ${want}`);
    }
  }
  assert.equal(l1(new Float32Array(0)), 0);
  assert.equal(absMax(new Float32Array(0)), 0);
  const z = data(5000, 3, false);
  z[4321] = NaN;
  assert.ok(Number.isNaN(l1(z)) && Number.isNaN(absMax(z)) && Number.isNaN(dot(z, z)));
  z[4321] = -Infinity;
  assert.equal(absMax(z), Infinity);
});

test('bf16/f16 decode of all 65536 patterns and encode of their values match the JS functions', () => {
  const bytes = new Uint8Array(65536 * 2);
  const dv = new DataView(bytes.buffer);
  for (let h = 0; h < 65536; h++) dv.setUint16(h * 2, h, true);
  for (const dt of ['BF16', 'F16'] as const) {
    const want = decodeToF32Reference(bytes, dt);
    for (const got of variants(() => decodeToF32(bytes, dt))) sameBits(got, want, `decode ${dt}`);
    const one = dt === 'BF16' ? bf16BitsToF32 : f16BitsToF32;
    for (let h = 0; h < 65536; h += 997) assert.ok(Object.is(want[h], one(h)) || (Number.isNaN(want[h]!) && Number.isNaN(one(h))));
    // encoding every decoded value back gives the same bytes (NaNs: a quiet NaN of the same sign)
    for (const enc of variants(() => encodeFromF32(want, dt))) {
      const ref = encodeFromF32Reference(want, dt);
      for (let i = 0; i < enc.length; i++) if (enc[i] !== ref[i]) assert.fail(`${dt} encode differs at byte ${i}`);
    }
  }
});

test('bf16/f16 encode of random float32 bit patterns (rounding boundaries, subnormals, overflow) matches JS', () => {
  const n = 300_000;
  const u = new Uint32Array(n);
  const r = rng(77);
  for (let i = 0; i < n; i++) {
    let v = Math.floor(r() * 4294967296) >>> 0;
    if (i % 4 === 1) v = (v & 0xffff0000) | 0x8000; // exact bf16 ties
    if (i % 4 === 2) v = (v & 0xffffe000) | 0x1000; // exact f16 ties (normal range)
    if (i % 4 === 3) v = (v & 0x807fffff) | ((100 + (v % 50)) << 23); // around the f16 subnormal range
    u[i] = v >>> 0;
  }
  const x = new Float32Array(u.buffer);
  for (const dt of ['BF16', 'F16'] as const) {
    const ref = encodeFromF32Reference(x, dt);
    const refU = new Uint16Array(ref.buffer);
    for (const got of variants(() => encodeFromF32(x, dt))) {
      const g = new Uint16Array(got.buffer, got.byteOffset, n);
      for (let i = 0; i < n; i++) {
        if (g[i] === refU[i]) continue;
        const nan = dt === 'BF16' ? (h: number) => (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0 : (h: number) => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
        if (Number.isNaN(x[i]!) && nan(g[i]!) && nan(refU[i]!)) continue; // JS may not preserve a NaN's sign
        assert.fail(`${dt} encode of 0x${u[i]!.toString(16)}: native 0x${g[i]!.toString(16)} vs JS 0x${refU[i]!.toString(16)}`);
      }
    }
    assert.equal(f32ToBf16Bits(1.00390625), 0x3f80);
  }
});

test('decode/encode handle F32, unaligned views and odd lengths', () => {
  const x = data(2051, 5);
  const bytes = encodeFromF32(x, 'F32');
  sameBits(decodeToF32(bytes, 'F32'), x, 'f32 roundtrip');
  const buf = new Uint8Array(2051 * 2 + 1);
  const un = buf.subarray(1);
  encodeFromF32(x, 'BF16', un);
  sameBits(decodeToF32(un, 'BF16'), decodeToF32Reference(encodeFromF32Reference(x, 'BF16'), 'BF16'), 'unaligned bf16');
});

/** Independent top-k reference: indices sorted by |x| desc then index asc, NaN excluded. */
function magnitudeOrder(x: Float32Array): number[] {
  const idx = [...Array(x.length).keys()].filter((i) => !Number.isNaN(x[i]!));
  return idx.sort((a, b) => Math.abs(x[b]!) - Math.abs(x[a]!) || a - b);
}
function topkBySort(x: Float32Array, order: number[], k: number): Float32Array {
  if (k >= x.length) return x.slice();
  const out = new Float32Array(x.length);
  for (const i of order.slice(0, Math.max(0, k))) out[i] = x[i]!;
  return out;
}

test('top-k: exact k with ties by lower index, native == JS == sort reference', () => {
  const r = rng(9);
  for (const n of [1, 2, 9, 100, 1001, 5003, 70001, 150001]) {
    for (const kind of ['ties', 'continuous', 'nan']) {
      const x = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        x[i] = kind === 'ties' ? Math.floor(r() * 7) - 3 : (r() - 0.5) * 10;
        if (kind === 'ties' && r() < 0.1) x[i] = -0;
      }
      if (kind === 'nan') for (let i = 0; i < n; i += 13) x[i] = NaN;
      const order = magnitudeOrder(x);
      for (const k of [0, 1, Math.floor(n / 3), Math.floor(n / 2), n - 1, n, n + 5]) {
        const want = topkBySort(x, order, k);
        const js = x.slice();
        reference.topkMagnitudeInPlace(js, k);
        sameBits(js, want, `js topk n=${n} k=${k} ${kind}`);
        for (const got of variants(() => {
          const o = x.slice();
          topkMagnitudeInPlace(o, k);
          return o;
        })) sameBits(got, want, `native topk n=${n} k=${k} ${kind}`);
      }
      if (order.length === 0) continue;
      const k = Math.max(1, Math.floor(order.length / 4));
      const kth = Math.abs(x[order[k - 1]!]!);
      assert.equal(kthLargestAbs(x, k), kth);
      assert.equal(reference.kthLargestAbs(x, k), kth);
    }
  }
  assert.throws(() => kthLargestAbs(new Float32Array([1, NaN]), 2), /out of range 1\.\.1/);
});

test('bernoulli mask: native == JS (same hash) for any thread count, fused L1 bookkeeping', () => {
  for (const n of [0, 5, 1027, 70001, 200003]) {
    const x = data(n, 20 + n, false);
    for (const p of [0, 0.3, 0.5, 1, 1.5, NaN]) {
      for (const seed of [0, 123456789, 0xffffffff]) {
        const want = x.slice();
        reference.bernoulliMaskInPlace(want, p, seed);
        for (const got of variants(() => {
          const o = x.slice();
          bernoulliMaskInPlace(o, p, seed);
          return o;
        })) sameBits(got, want, `bernoulli n=${n} p=${p} seed=${seed}`);
        const o = x.slice();
        const { l1Before, l1After } = bernoulliMaskL1(o, p, seed);
        sameBits(o, want, 'bernoulliMaskL1 mask');
        assert.ok(Math.abs(l1Before - reference.l1(x)) <= 1e-12 * Math.max(1, l1Before));
        assert.ok(Math.abs(l1After - reference.l1(want)) <= 1e-12 * Math.max(1, l1After));
      }
    }
  }
  // the mask really is Bernoulli(p): keep rate close to p
  const ones = new Float32Array(200_000).fill(1);
  bernoulliMaskInPlace(ones, 0.3, 42);
  const rate = l1(ones) / ones.length;
  assert.ok(Math.abs(rate - 0.3) < 0.005, `keep rate ${rate}`);
  assert.equal(uniformAt(7, 3), uniformAt(7, 3));
});

function asTensor(x: Float32Array, dt: FloatDType | 'arr'): TensorData {
  return dt === 'arr' ? x : { bytes: encodeFromF32Reference(x, dt), dtype: dt };
}
function outTensor(n: number, dt: FloatDType | 'arr'): TensorData {
  return dt === 'arr' ? new Float32Array(n) : { bytes: new Uint8Array(n * (dt === 'F32' ? 4 : 2)), dtype: dt };
}
function outValues(t: TensorData): Float32Array {
  return t instanceof Float32Array ? t : decodeToF32Reference(t.bytes, t.dtype);
}

const CONFIGS: Record<string, GtaOptions> = {
  task_arithmetic: { weights: [0.5, 0.7, -0.2] },
  task_arithmetic_norm: { weights: [0.5, 0.7, -0.2], normalize: true, lambda: 0.9 },
  ties: { weights: [0.5, 0.7, -0.2], sparsify: 'magnitude', density: 0.5, consensus: 'sum', normalize: true },
  ties_lambda: { weights: [1, 1, 1], sparsify: 'magnitude', density: 0.2, consensus: 'sum', normalize: true, lambda: 1.3 },
  dare_linear: { weights: [0.5, 0.7, -0.2], sparsify: 'random', density: 0.5, rescale: true, seeds: [1, 2, 3] },
  dare_ties: { weights: [0.5, 0.7, 0.3], sparsify: 'random', density: 0.3, rescale: true, consensus: 'sum', seeds: [7, 8, 9] },
  magnitude_rescale: { weights: [0.5, 0.5, 0.5], sparsify: 'magnitude', density: 0.4, rescale: true },
};

test('gtaMerge: native == JS reference bit for bit (all dtypes, odd lengths, threads, ISAs)', () => {
  for (const n of [1, 9, 1031, 70001]) {
    const r = rng(n);
    const b = new Float32Array(n).map(() => (r() - 0.5) * 0.04);
    const xs = [0, 1, 2].map(() => b.map((v) => v + (r() - 0.5) * 2e-3 * (r() < 0.1 ? 0 : 1)));
    if (n > 100) xs[0]![5] = NaN;
    for (const [name, cfg] of Object.entries(CONFIGS)) {
      for (const [inDt, outDt] of [['BF16', 'BF16'], ['arr', 'arr'], ['F16', 'F32'], ['F32', 'BF16']] as const) {
        if (n === 1 && cfg.sparsify === 'magnitude' && (cfg.density ?? 1) < 1) continue; // k = 0
        const base = asTensor(b, inDt);
        const models = xs.map((x) => asTensor(x, inDt));
        const want = outTensor(n, outDt);
        reference.gtaMerge(want, base, models, cfg);
        for (const got of variants(() => {
          const o = outTensor(n, outDt);
          gtaMerge(o, base, models, cfg);
          return outValues(o);
        })) sameBits(got, outValues(want), `gta ${name} n=${n} ${inDt}->${outDt}`);
      }
    }
  }
});

test('gtaMerge may write into its base or a model (same view)', () => {
  const n = 5000;
  const r = rng(5);
  const b = new Float32Array(n).map(() => r());
  const xs = [0, 1].map(() => b.map((v) => v + r() * 0.1));
  const cfg: GtaOptions = { weights: [0.6, 0.4], sparsify: 'magnitude', density: 0.3, consensus: 'sum', normalize: true };
  const want = new Float32Array(n);
  gtaMerge(want, b, xs, cfg);
  const b2 = b.slice();
  gtaMerge(b2, b2, xs, cfg);
  sameBits(b2, want, 'out = base');
  const x0 = xs[0]!.slice();
  gtaMerge(x0, b, [x0, xs[1]!], cfg);
  sameBits(x0, want, 'out = model 0');
  const bb = { bytes: encodeFromF32Reference(b, 'BF16'), dtype: 'BF16' as const };
  const xb = xs.map((x) => ({ bytes: encodeFromF32Reference(x, 'BF16'), dtype: 'BF16' as const }));
  const wantB = outTensor(n, 'BF16');
  gtaMerge(wantB, bb, xb, cfg);
  gtaMerge(bb, bb, xb, cfg);
  assert.deepEqual(bb.bytes, (wantB as { bytes: Uint8Array }).bytes);
});

test('gtaMerge follows the TIES / task-arithmetic formulas on a hand example', () => {
  // exact small values: base 1; deltas chosen so every step is exact in float32
  const b = new Float32Array([1, 1, 1, 1, 1, 1]);
  const x1 = new Float32Array([1.5, 0.5, 1, 1.25, 3, 1]);
  const x2 = new Float32Array([1.25, 1.5, 0, 0.5, 1, 1]);
  const out = new Float32Array(6);
  gtaMerge(out, b, [x1, x2], { weights: [1, 0.5] });
  // task arithmetic: b + Σ w δ
  assert.deepEqual([...out], [1 + 0.5 + 0.125, 1 - 0.5 + 0.25, 1 + 0 - 0.5, 1 + 0.25 - 0.25, 1 + 2 + 0, 1]);
  // ties, density 1 (no sparsification): elected sign of Σ wδ, average of agreeing w δ over agreeing w
  gtaMerge(out, b, [x1, x2], { weights: [1, 0.5], consensus: 'sum', normalize: true, sparsify: 'magnitude', density: 1 });
  // i0: wδ = .5, .125 -> (0.625)/(1.5); i1: -.5, .25 sum<0 -> -.5/1; i2: 0, -.5 -> -.5/.5 = -1;
  // i3: .25, -.25 sum 0 -> +1: .25/1; i4: 2, 0 -> 2/1; i5: all zero -> D=1, 0
  assert.deepEqual([...out], [1 + Math.fround(0.625 / 1.5), 0.5, 0, 1.25, 3, 1].map(Math.fround));
  // ties with density 0.5 on 6 entries: k = 3 per model, ties by index
  gtaMerge(out, b, [x1, x2], { weights: [1, 1], consensus: 'sum', normalize: true, sparsify: 'magnitude', density: 0.5 });
  // δ1 = [.5,-.5,0,.25,2,0] keep |.|-top3: 2 (i4), .5 (i0), .5 (i1);  δ2 = [.25,.5,-1,-.5,0,0] keep -1 (i2), .5 (i1), -.5 (i3)
  assert.deepEqual([...out], [1.5, 1.5, 0, 0.5, 3, 1]);
  const deltas = [new Float32Array([0.5, -0.5, 0]), new Float32Array([0.25, 0.25, 0])];
  const d = new Float32Array(3);
  tiesCombine(d, deltas, [1, 1]);
  assert.deepEqual([...d], [0.375, -0.5, 0]);
  assert.throws(() => gtaMerge(out, b, [x1, x2], { weights: [1, 1], sparsify: 'magnitude', density: 0.1 }), /k = 0/);
  assert.throws(() => gtaMerge(out, b, [x1], { weights: [1, 1] }), /2 weights for 1 models/);
  assert.throws(() => gtaMerge(out, b, [x1.subarray(1)], { weights: [1] }), /model 0 has 5 elements/);
});
