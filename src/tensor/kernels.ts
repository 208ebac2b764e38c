/**
 * Numeric kernels on Float32Array: the hot loops of merging. Every function here has a plain-JS
 * reference implementation (collected in `reference`); the native addon (native/, built by
 * node-gyp on install, loaded by ./native.ts) replaces them with SIMD, multi-threaded versions of
 * the SAME semantics when it is available and the arrays are long enough to be worth the call
 * (`setNativeMinLength`, default 1024 elements). Callers never see which one runs. All functions
 * are synchronous. SELFDEV_NO_NATIVE=1 forces the JS path.
 *
 * Conventions: `out` may alias an input unless stated; lengths must match (checked).
 *
 * Exactness contract between native and JS:
 * - elementwise kernels are bit-identical (same float32 / float64 operation order, no FMA);
 *   NaN inputs give NaN outputs, but the NaN payload/sign bits are not guaranteed;
 * - reductions (`l1`, `l2sq`, `dot`) accumulate in float64 in both, the native code in 8 lanes
 *   over fixed 65536-element blocks, so results differ from the JS sequential sum only by float64
 *   rounding (relative ~1e-15), and do NOT depend on the thread count; `absMax` is exact;
 * - random masks (`uniformAt`, `bernoulliMaskInPlace`, `gtaMerge` with random sparsification)
 *   are identical for any thread count: the random number at index i depends only on (seed, i).
 */
import type { FloatDType } from './dtype.ts';
import { decodeToF32Reference, encodeFromF32Reference } from './dtype.ts';
import { native, NATIVE_DT } from './native.ts';

/** Number of threads the native kernels may use (1 = single-threaded). */
let threads = 2;
export function setThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new Error(`threads must be a positive integer, got ${n}`);
  threads = n;
  native?.setThreads(Math.min(n, 256));
}
export function getThreads(): number {
  return threads;
}
if (native) native.setThreads(threads);

/** Arrays shorter than this use the JS kernels even when the addon is loaded. */
let nativeMin = 1024;
/** Sets the length from which calls go to the native addon (0 = always, for tests). */
export function setNativeMinLength(n: number): void {
  if (!Number.isInteger(n) || n < 0) throw new Error(`native min length must be a non-negative integer, got ${n}`);
  nativeMin = n;
}
/** Whether the native addon is loaded, and its configuration. */
export function nativeStatus(): { loaded: boolean; avx2: boolean; avx2Available: boolean; threads: number; parallelMin: number; spawnPerCall: boolean; nativeMinLength: number } {
  if (!native) return { loaded: false, avx2: false, avx2Available: false, threads, parallelMin: 0, spawnPerCall: false, nativeMinLength: nativeMin };
  return { loaded: true, ...native.config(-1, -1, -1), nativeMinLength: nativeMin };
}
/**
 * Tuning/testing knobs of the addon: `parallelMin` = array length from which the native kernels
 * split work across threads (default 262144); `avx2: false` forces the baseline SSE4 code path;
 * `spawnPerCall: true` starts fresh threads on every call instead of using the persistent pool
 * (only to measure the pool's benefit). No-op without the addon.
 */
export function configureNative(opts: { parallelMin?: number; avx2?: boolean; spawnPerCall?: boolean }): void {
  if (!native) return;
  const flag = (b: boolean | undefined) => (b === undefined ? -1 : b ? 1 : 0);
  native.config(opts.parallelMin ?? -1, flag(opts.avx2), flag(opts.spawnPerCall));
}
/** Whether an array of n elements goes to the native addon (loaded, and n >= the native min length). */
export function useNative(n: number): boolean {
  return native !== null && n >= nativeMin && n > 0;
}

function sameLength(...xs: ArrayLike<number>[]): number {
  const n = xs[0]!.length;
  for (const x of xs) if (x.length !== n) throw new Error(`kernel length mismatch: ${xs.map((a) => a.length).join(' vs ')}`);
  return n;
}

const fr = Math.fround;

// ------------------------------------------------------------------ elementwise

function axpyJs(y: Float32Array, a: number, x: Float32Array): void {
  const n = sameLength(y, x);
  for (let i = 0; i < n; i++) y[i] = y[i]! + a * x[i]!;
}
/** y += a * x  (computed in float64 per element, then rounded to float32) */
export function axpy(y: Float32Array, a: number, x: Float32Array): void {
  const n = sameLength(y, x);
  if (useNative(n)) native!.axpy(y, a, x);
  else axpyJs(y, a, x);
}

function subJs(out: Float32Array, a: Float32Array, b: Float32Array): void {
  const n = sameLength(out, a, b);
  for (let i = 0; i < n; i++) out[i] = a[i]! - b[i]!;
}
/** out = a - b */
export function sub(out: Float32Array, a: Float32Array, b: Float32Array): void {
  const n = sameLength(out, a, b);
  if (useNative(n)) native!.sub(out, a, b);
  else subJs(out, a, b);
}

function scaleJs(x: Float32Array, a: number): void {
  for (let i = 0; i < x.length; i++) x[i] = x[i]! * a;
}
/** x *= a  (float64 product rounded to float32) */
export function scale(x: Float32Array, a: number): void {
  if (useNative(x.length)) native!.scale(x, a);
  else scaleJs(x, a);
}

function deltaAxpyJs(acc: Float32Array, w: number, x: Float32Array, base: Float32Array): void {
  const n = sameLength(acc, x, base);
  const wf = fr(w);
  for (let i = 0; i < n; i++) acc[i] = fr(acc[i]! + fr(wf * fr(x[i]! - base[i]!)));
}
/**
 * Fused task-vector accumulation, all in float32:
 * `acc[i] = f32(acc[i] + f32(f32(w) · f32(x[i] − base[i])))`
 * (w is rounded to float32 first; every operation rounds to float32, as PyTorch does in fp32).
 */
export function deltaAxpy(acc: Float32Array, w: number, x: Float32Array, base: Float32Array): void {
  const n = sameLength(acc, x, base);
  if (useNative(n)) native!.deltaAxpy(acc, w, x, base);
  else deltaAxpyJs(acc, w, x, base);
}

// ------------------------------------------------------------------ reductions

function l1Js(x: Float32Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += Math.abs(x[i]!);
  return s;
}
/** Σ|x| in float64 accumulation. */
export function l1(x: Float32Array): number {
  return useNative(x.length) ? native!.reduce(0, x, null) : l1Js(x);
}

function l2sqJs(x: Float32Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  return s;
}
/** Σ x² in float64 accumulation (each square computed in float64). */
export function l2sq(x: Float32Array): number {
  return useNative(x.length) ? native!.reduce(1, x, null) : l2sqJs(x);
}

function dotJs(a: Float32Array, b: Float32Array): number {
  const n = sameLength(a, b);
  let s = 0;
  for (let i = 0; i < n; i++) s += a[i]! * b[i]!;
  return s;
}
/** Σ a·b in float64 accumulation. */
export function dot(a: Float32Array, b: Float32Array): number {
  const n = sameLength(a, b);
  return useNative(n) ? native!.reduce(2, a, b) : dotJs(a, b);
}

function absMaxJs(x: Float32Array): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) {
    const a = Math.abs(x[i]!);
    if (Number.isNaN(a)) return NaN;
    if (a > m) m = a;
  }
  return m;
}
/** max |x[i]| (exact); 0 for an empty array; NaN if any entry is NaN. */
export function absMax(x: Float32Array): number {
  return useNative(x.length) ? native!.reduce(3, x, null) : absMaxJs(x);
}

// ------------------------------------------------------------------ top-k by magnitude

function topkJs(x: Float32Array, k: number): void {
  if (Number.isNaN(k)) throw new Error('topkMagnitudeInPlace: k is NaN');
  const n = x.length;
  k = Math.floor(k);
  if (k >= n) return;
  if (k <= 0) {
    x.fill(0);
    return;
  }
  let valid = 0;
  for (let i = 0; i < n; i++) if (!Number.isNaN(x[i]!)) valid++;
  if (k >= valid) {
    for (let i = 0; i < n; i++) if (Number.isNaN(x[i]!)) x[i] = 0;
    return;
  }
  const thr = kthJs(x, k);
  let greater = 0;
  for (let i = 0; i < n; i++) if (Math.abs(x[i]!) > thr) greater++;
  let equalBudget = k - greater;
  for (let i = 0; i < n; i++) {
    const a = Math.abs(x[i]!);
    if (a > thr) continue;
    if (a === thr && equalBudget > 0) {
      equalBudget--;
      continue;
    }
    x[i] = 0; // includes NaN (comparisons false)
  }
}
/**
 * Keep exactly the k entries of largest |x| (ties broken by lower index first), zero the rest.
 * Linear time (selection, never a full sort). k is floored; k <= 0 zeroes everything; k >= n keeps
 * everything. NaN entries rank below every number: they are zeroed whenever k < n (so fewer than
 * k entries survive only when there are fewer than k non-NaN entries). Zeroed entries become +0.
 */
export function topkMagnitudeInPlace(x: Float32Array, k: number): void {
  if (Number.isNaN(k)) throw new Error('topkMagnitudeInPlace: k is NaN');
  if (useNative(x.length)) native!.topk(x, Math.floor(k));
  else topkJs(x, k);
}

function kthJs(x: Float32Array, k: number): number {
  const n = x.length;
  let valid = 0;
  for (let i = 0; i < n; i++) if (!Number.isNaN(x[i]!)) valid++;
  if (!Number.isInteger(k) || k < 1 || k > valid) throw new Error(`kthLargestAbs: k=${k} out of range 1..${valid}`);
  const a = new Float32Array(valid);
  let j = 0;
  for (let i = 0; i < n; i++) if (!Number.isNaN(x[i]!)) a[j++] = Math.abs(x[i]!);
  // the k-th largest is the (valid-k)-th smallest (0-based)
  return quickselect(a, valid - k);
}
/** The k-th largest value of |x| (1-based integer k, 1 <= k <= number of non-NaN entries; NaN entries are ignored). Linear time. */
export function kthLargestAbs(x: Float32Array, k: number): number {
  if (!useNative(x.length)) return kthJs(x, k);
  let valid = 0;
  for (let i = 0; i < x.length; i++) if (x[i] !== x[i]) valid++;
  valid = x.length - valid;
  if (!Number.isInteger(k) || k < 1 || k > valid) throw new Error(`kthLargestAbs: k=${k} out of range 1..${valid}`);
  if (k === valid) {
    // the smallest magnitude (the native selection treats k >= #non-NaN as "keep all")
    let m = Infinity;
    for (let i = 0; i < x.length; i++) {
      const a = Math.abs(x[i]!);
      if (a < m) m = a;
    }
    return m;
  }
  return native!.kthAbs(x, k);
}

/**
 * The k-th smallest value (0-based) of `a`, which is reordered in place: quickselect with a fixed
 * pseudo-random pivot sequence, expected linear time. Repeated calls on the same array stay correct.
 */
export function kthSmallestInPlace(a: Float32Array | Float64Array, k: number): number {
  if (!Number.isInteger(k) || k < 0 || k >= a.length) throw new Error(`kthSmallest: k=${k} out of range 0..${a.length - 1}`);
  return quickselect(a, k);
}

function quickselect(a: Float32Array | Float64Array, target: number): number {
  let lo = 0;
  let hi = a.length - 1;
  let seed = 0x9e3779b9;
  while (lo < hi) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    const pivot = a[lo + (seed % (hi - lo + 1))]!;
    let i = lo;
    let lt = lo;
    let gt = hi;
    while (i <= gt) {
      const v = a[i]!;
      if (v < pivot) {
        a[i] = a[lt]!;
        a[lt] = v;
        lt++;
        i++;
      } else if (v > pivot) {
        a[i] = a[gt]!;
        a[gt] = v;
        gt--;
      } else i++;
    }
    if (target < lt) hi = lt - 1;
    else if (target > gt) lo = gt + 1;
    else return pivot;
  }
  return a[lo]!;
}

// ------------------------------------------------------------------ randomness

/**
 * Counter-based uniform random numbers in [0, 1): u(seed, i) depends only on (seed, i), so results
 * are identical whatever the thread count or chunking. seed is a 32-bit unsigned integer stream id.
 * The native addon implements the same hash (native/kernels.h `hash_at`).
 */
export function uniformAt(seed: number, i: number): number {
  // splitmix32-style finaliser over (seed, i); 24 random bits -> [0,1)
  let h = (seed ^ Math.imul(i, 0x9e3779b1) ^ Math.imul((i / 4294967296) | 0, 0x85ebca77)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  h = (h ^ (h >>> 16)) >>> 0;
  return (h >>> 8) / 16777216;
}

/** The integer c with (uniformAt(seed, i) < p) === ((h >>> 8) < c) for every 24-bit h. */
function keepThreshold(p: number): number {
  if (!(p > 0)) return 0;
  if (p >= 1) return 16777216;
  return Math.ceil(p * 16777216);
}

function bernoulliJs(x: Float32Array, p: number, seed: number): void {
  for (let i = 0; i < x.length; i++) if (!(uniformAt(seed, i) < p)) x[i] = 0;
}
/** Keep x[i] where uniformAt(seed, i) < p, else set it to 0. */
export function bernoulliMaskInPlace(x: Float32Array, p: number, seed: number): void {
  if (useNative(x.length) && x.length < 2 ** 32) native!.bernoulli(x, keepThreshold(p), seed >>> 0, 0);
  else bernoulliJs(x, p, seed);
}

function bernoulliL1Js(x: Float32Array, p: number, seed: number): { l1Before: number; l1After: number } {
  let before = 0;
  let after = 0;
  for (let i = 0; i < x.length; i++) {
    const a = Math.abs(x[i]!);
    before += a;
    if (uniformAt(seed, i) < p) after += a;
    else x[i] = 0;
  }
  return { l1Before: before, l1After: after };
}
/**
 * `bernoulliMaskInPlace` fused with the bookkeeping of DARE's L1 rescale: returns
 * `l1Before = Σ|x|` (before masking) and `l1After = Σ|kept x|`, float64 accumulation. The caller
 * then rescales by l1Before / l1After (mergekit skips that when either is < 1e-7).
 */
export function bernoulliMaskL1(x: Float32Array, p: number, seed: number): { l1Before: number; l1After: number } {
  if (useNative(x.length) && x.length < 2 ** 32) {
    const r = native!.bernoulli(x, keepThreshold(p), seed >>> 0, 1)!;
    return { l1Before: r[0], l1After: r[1] };
  }
  return bernoulliL1Js(x, p, seed);
}

// ------------------------------------------------------------------ fused generalized task arithmetic

/** A tensor given either as float32 values or as raw little-endian bytes of a float dtype. */
export type TensorData = Float32Array | { bytes: Uint8Array; dtype: FloatDType };

export interface GtaOptions {
  /** Per-model weights w_j (rounded to float32). */
  weights: number[];
  /** 'magnitude': exact top-k of |δ_j|, k = ⌊density·n⌋; 'random': keep where uniformAt(seed_j, i) < density. Default 'none'. */
  sparsify?: 'none' | 'magnitude' | 'random';
  /** Fraction kept by the sparsifier (default 1). */
  density?: number;
  /** One 32-bit seed per model (required for 'random'). */
  seeds?: number[];
  /** 'sum': TIES sign election on the weighted deltas. Default 'none'. */
  consensus?: 'none' | 'sum';
  /** Divide by the (selected) weight sum. Default false. */
  normalize?: boolean;
  /** L1 rescale of each sparsified delta by ‖δ_j‖₁ / ‖kept δ_j‖₁ (skipped if either < 1e-7). Default false. */
  rescale?: boolean;
  /** λ, applied after the division (rounded to float32). Default 1. */
  lambda?: number;
}

function tdLength(t: TensorData): number {
  if (t instanceof Float32Array) return t.length;
  const size = t.dtype === 'F32' ? 4 : 2;
  if (t.bytes.byteLength % size !== 0) throw new Error(`${t.bytes.byteLength} bytes is not a whole number of ${t.dtype} values`);
  return t.bytes.byteLength / size;
}

/**
 * Generalized task arithmetic (mergekit's engine for task_arithmetic, ties, dare_linear, dare_ties,
 * …) over one tensor in one call, reading base/models and writing `out` in F32, BF16 or F16
 * directly (decoding is fused, so no float32 copies of the inputs are made). With b = base (or 0
 * when `base` is null: then the models are already deltas and the result is the merged delta
 * without adding a base), all operations in float32 except the L1 norms (float64):
 *
 *   δ_j    = f32(x_j − b)
 *   keep_j = sparsify 'none': 1 · 'magnitude': exact top-k of |δ_j| (topkMagnitudeInPlace rule,
 *            k = ⌊density·n⌋, density ≥ 1 keeps all, k = 0 is an error) ·
 *            'random': uniformAt(seed_j, i) < density
 *   r_j    = rescale && sparsify ≠ 'none' && ‖δ_j‖₁ ≥ 1e-7 && ‖keep_j δ_j‖₁ ≥ 1e-7
 *            ? f32(‖δ_j‖₁ / ‖keep_j δ_j‖₁) : 1
 *   v_j    = f32(f32(w_j) · f32(keep_j δ_j · r_j))
 *   S      = v_0 + v_1 + … (float32, in model order, starting from +0)
 *   consensus 'sum': s = (S ≥ 0 ? +1 : −1); m_j = (s > 0 ? v_j > 0 : v_j < 0) (zeros never vote);
 *            M = Σ_{m_j} v_j, D = Σ_{m_j} f32(w_j) (float32, model order); D = 0 → 1
 *   consensus 'none': M = S, D = Σ_j f32(w_j); |D| < 1e-8 → 1
 *   R      = normalize ? f32(M / D) : M
 *   out    = f32(b + f32(f32(λ) · R))   (base null: f32(f32(λ) · R)), encoded with RNE.
 *
 * `out` may be the very same view as `base` or a model (each tile is read before it is written),
 * never a partially overlapping one. Lengths, weights, density and seeds are checked first.
 *
 * task_arithmetic = {}; ties = {sparsify:'magnitude', consensus:'sum', normalize:true};
 * dare_linear = {sparsify:'random', rescale:true}; dare_ties = dare_linear + consensus 'sum'.
 * Native and JS results are bit-identical except that r_j may differ when the two float64 L1 sums
 * round differently (summation order), which is rare and changes results by ≤ 1 ulp.
 */
export function gtaMerge(out: TensorData, base: TensorData | null, models: TensorData[], opts: GtaOptions): void {
  const n = tdLength(out);
  if (base && tdLength(base) !== n) throw new Error(`gtaMerge: base has ${tdLength(base)} elements, out has ${n}`);
  models.forEach((m, j) => {
    if (tdLength(m) !== n) throw new Error(`gtaMerge: model ${j} has ${tdLength(m)} elements, out has ${n}`);
  });
  if (opts.weights.length !== models.length) throw new Error(`gtaMerge: ${opts.weights.length} weights for ${models.length} models`);
  const sparsify = opts.sparsify ?? 'none';
  const density = opts.density ?? 1;
  if (sparsify !== 'none' && !(density >= 0)) throw new Error(`gtaMerge: density must be >= 0, got ${density}`);
  let k = n;
  if (sparsify === 'magnitude' && density < 1) {
    k = Math.floor(density * n);
    if (k === 0 && n > 0) throw new Error(`gtaMerge: density ${density} keeps no entry of a ${n}-element tensor (k = 0)`);
  }
  const seeds = opts.seeds ?? [];
  if (sparsify === 'random') {
    if (seeds.length !== models.length) throw new Error(`gtaMerge: random sparsification needs one seed per model (${seeds.length} for ${models.length})`);
    for (const s of seeds) if (!Number.isInteger(s) || s < 0 || s > 0xffffffff) throw new Error(`gtaMerge: seed ${s} is not a 32-bit unsigned integer`);
  }
  if (useNative(n) && n < 2 ** 32) {
    const o = nativeView(out);
    const b = base ? nativeView(base) : null;
    const ms = models.map(nativeView);
    native!.gta(
      o.data, o.dt, b ? b.data : null, b ? b.dt : 0,
      ms.map((m) => m.data), ms.map((m) => m.dt), opts.weights,
      sparsify === 'none' ? 0 : sparsify === 'magnitude' ? 1 : 2, k, sparsify === 'random' ? keepThreshold(density) : 0,
      sparsify === 'random' ? seeds : [],
      opts.consensus === 'sum' ? 1 : 0, opts.normalize ? 1 : 0, opts.rescale ? 1 : 0, opts.lambda ?? 1,
    );
    if (o.copyBack) o.copyBack();
    return;
  }
  gtaMergeJs(out, base, models, { ...opts, sparsify, density, seeds }, k);
}

function nativeView(t: TensorData): { data: Uint8Array | Float32Array; dt: number; copyBack?: () => void } {
  if (t instanceof Float32Array) return { data: t, dt: NATIVE_DT.F32 };
  const size = t.dtype === 'F32' ? 4 : 2;
  if (t.bytes.byteOffset % size === 0) return { data: t.bytes, dt: NATIVE_DT[t.dtype] };
  const copy = new Uint8Array(t.bytes); // aligned copy (rare: safetensors data is 8-byte aligned)
  return { data: copy, dt: NATIVE_DT[t.dtype], copyBack: () => t.bytes.set(copy) };
}

function toF32Copy(t: TensorData): Float32Array {
  return t instanceof Float32Array ? t.slice() : decodeToF32Reference(t.bytes, t.dtype);
}

function gtaMergeJs(out: TensorData, base: TensorData | null, models: TensorData[], opts: GtaOptions, k: number): void {
  const n = tdLength(out);
  const m = models.length;
  const b = base ? toF32Copy(base) : null;
  const deltas = models.map((x) => {
    const d = toF32Copy(x);
    if (b) for (let i = 0; i < n; i++) d[i] = fr(d[i]! - b[i]!);
    return d;
  });
  const r = new Array<number>(m).fill(1);
  for (let j = 0; j < m; j++) {
    const d = deltas[j]!;
    const before = opts.rescale && opts.sparsify !== 'none' ? l1Js(d) : 0;
    if (opts.sparsify === 'magnitude') topkJs(d, k);
    else if (opts.sparsify === 'random') bernoulliJs(d, opts.density!, opts.seeds![j]!);
    if (opts.rescale && opts.sparsify !== 'none') {
      const after = l1Js(d);
      r[j] = before < 1e-7 || after < 1e-7 ? 1 : fr(before / after);
    }
  }
  const wf = opts.weights.map(fr);
  let wsum = 0;
  for (const w of wf) wsum = fr(wsum + w);
  const dnone = Math.abs(wsum) < 1e-8 ? 1 : wsum;
  const lam = fr(opts.lambda ?? 1);
  const consensus = opts.consensus === 'sum';
  const res = new Float32Array(n);
  const v = new Float64Array(m);
  for (let i = 0; i < n; i++) {
    let S = 0;
    for (let j = 0; j < m; j++) {
      const t = fr(wf[j]! * fr(deltas[j]![i]! * r[j]!));
      v[j] = t;
      S = fr(S + t);
    }
    let R: number;
    if (consensus) {
      const pos = S >= 0;
      let M = 0;
      let D = 0;
      for (let j = 0; j < m; j++) {
        const t = v[j]!;
        if (pos ? t > 0 : t < 0) {
          M = fr(M + t);
          D = fr(D + wf[j]!);
        }
      }
      if (opts.normalize) {
        if (D === 0) D = 1;
        M = fr(M / D);
      }
      R = M;
    } else R = opts.normalize ? fr(S / dnone) : S;
    res[i] = b ? fr(b[i]! + fr(lam * R)) : fr(lam * R);
  }
  if (out instanceof Float32Array) out.set(res);
  else encodeFromF32Reference(res, out.dtype, out.bytes);
}

/**
 * TIES combine of already-sparsified deltas (mergekit "sum" consensus, normalize):
 * `out[i] = f32(λ · M / D)` with the election of `gtaMerge` (its `base: null` form). Convenience for
 * methods that sparsify themselves; equivalent to
 * `gtaMerge(out, null, deltas, { weights, consensus: 'sum', normalize, lambda })`.
 */
export function tiesCombine(out: Float32Array, deltas: Float32Array[], weights: number[], opts: { lambda?: number; normalize?: boolean } = {}): void {
  gtaMerge(out, null, deltas, { weights, consensus: 'sum', normalize: opts.normalize ?? true, lambda: opts.lambda ?? 1 });
}

/** The pure-JS implementations (reference semantics; used for short arrays and without the addon). */
export const reference = {
  axpy: axpyJs,
  sub: subJs,
  scale: scaleJs,
  deltaAxpy: deltaAxpyJs,
  l1: l1Js,
  l2sq: l2sqJs,
  dot: dotJs,
  absMax: absMaxJs,
  topkMagnitudeInPlace: topkJs,
  kthLargestAbs: kthJs,
  bernoulliMaskInPlace: bernoulliJs,
  bernoulliMaskL1: bernoulliL1Js,
  gtaMerge(out: TensorData, base: TensorData | null, models: TensorData[], opts: GtaOptions): void {
    const saved = nativeMin;
    nativeMin = Infinity;
    try {
      gtaMerge(out, base, models, opts);
    } finally {
      nativeMin = saved;
    }
  },
};
