/**
 * Numeric kernels on Float32Array: the hot loops of merging. Every function here has a plain-JS
 * reference implementation; a native addon (native/, built by node-gyp on install) replaces them
 * with SIMD, multi-threaded versions of the SAME semantics when it is available.
 * Callers never see which one runs. All functions are synchronous.
 *
 * Conventions: `out` may alias an input unless stated; lengths must match (checked).
 */

/** Number of threads the native kernels may use (1 = single-threaded). */
let threads = 2;
export function setThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new Error(`threads must be a positive integer, got ${n}`);
  threads = n;
}
export function getThreads(): number {
  return threads;
}

function sameLength(...xs: ArrayLike<number>[]): number {
  const n = xs[0]!.length;
  for (const x of xs) if (x.length !== n) throw new Error(`kernel length mismatch: ${xs.map((a) => a.length).join(' vs ')}`);
  return n;
}

/** y += a * x */
export function axpy(y: Float32Array, a: number, x: Float32Array): void {
  const n = sameLength(y, x);
  for (let i = 0; i < n; i++) y[i] = y[i]! + a * x[i]!;
}

/** out = a - b */
export function sub(out: Float32Array, a: Float32Array, b: Float32Array): void {
  const n = sameLength(out, a, b);
  for (let i = 0; i < n; i++) out[i] = a[i]! - b[i]!;
}

/** x *= a */
export function scale(x: Float32Array, a: number): void {
  for (let i = 0; i < x.length; i++) x[i] = x[i]! * a;
}

/** Σ|x| in float64 accumulation. */
export function l1(x: Float32Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += Math.abs(x[i]!);
  return s;
}

/** Σ a·b in float64 accumulation. */
export function dot(a: Float32Array, b: Float32Array): number {
  const n = sameLength(a, b);
  let s = 0;
  for (let i = 0; i < n; i++) s += a[i]! * b[i]!;
  return s;
}

/**
 * Keep exactly the k entries of largest |x| (ties broken by lower index first), zero the rest.
 * Linear time (selection, never a full sort). k <= 0 zeroes everything; k >= n keeps everything.
 */
export function topkMagnitudeInPlace(x: Float32Array, k: number): void {
  const n = x.length;
  if (k >= n) return;
  if (k <= 0) {
    x.fill(0);
    return;
  }
  const thr = kthLargestAbs(x, k);
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
    x[i] = 0;
  }
}

/** The k-th largest value of |x| (1-based k, 1 <= k <= n), by quickselect on a copy. */
export function kthLargestAbs(x: Float32Array, k: number): number {
  const n = x.length;
  if (k < 1 || k > n) throw new Error(`kthLargestAbs: k=${k} out of range 1..${n}`);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.abs(x[i]!);
  // the k-th largest is the (n-k)-th smallest (0-based)
  return quickselect(a, n - k);
}

function quickselect(a: Float32Array, target: number): number {
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

/**
 * Counter-based uniform random numbers in [0, 1): u(seed, i) depends only on (seed, i), so results
 * are identical whatever the thread count or chunking. seed is a 32-bit unsigned integer stream id;
 * `offset` shifts the counter (for taking several independent draws from one seed).
 */
export function uniformAt(seed: number, i: number): number {
  // splitmix32-style finaliser over (seed, i); 24 random bits -> [0,1)
  let h = (seed ^ Math.imul(i, 0x9e3779b1) ^ Math.imul((i / 4294967296) | 0, 0x85ebca77)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  h = (h ^ (h >>> 16)) >>> 0;
  return (h >>> 8) / 16777216;
}

/** Keep x[i] where uniformAt(seed, i) < p, else set it to 0. */
export function bernoulliMaskInPlace(x: Float32Array, p: number, seed: number): void {
  for (let i = 0; i < x.length; i++) if (!(uniformAt(seed, i) < p)) x[i] = 0;
}
