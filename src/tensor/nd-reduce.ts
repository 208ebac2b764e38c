/**
 * Reductions of the n-d array library (see nd.ts): sum/mean/var/std/norm/amax/amin over dims,
 * quantile, magnitude top-k masks, dot and cosine similarity.
 */
import { dot as kdot, kthLargestAbs } from './kernels.ts';
import { NDArray, asND, broadcastMap, broadcastShapes, f32, f64, numelOf, scalar, toF32, type Operand } from './nd-core.ts';
import { abs, div, maximum, mul, unary } from './nd-elementwise.ts';
import { broadcastTo } from './nd-shape.ts';
import { nativeReduce, nativeReduceParts, nativeTopkMask, type NativeReduce } from './nd-native.ts';

/** Normalises `dim` (number, array, or null/undefined = all dims) into a sorted list of dims. */
export function normDims(dim: number | readonly number[] | null | undefined, rank: number): number[] {
  if (dim === null || dim === undefined) return [...Array(rank).keys()];
  const list = typeof dim === 'number' ? [dim] : [...dim];
  const r = Math.max(rank, 1);
  const out = new Set<number>();
  for (const d of list) {
    if (!Number.isInteger(d) || d < -r || d >= r) throw new Error(`dim ${d} is out of range for a tensor of rank ${rank} (valid: ${-r}..${r - 1})`);
    if (rank > 0) out.add(d < 0 ? d + rank : d);
  }
  return [...out].sort((x, y) => x - y);
}

interface ReducePlan {
  outShape: number[];
  keptShape: number[];
  groups: number;
  groupSize: number;
  /** output group index of every input element */
  map: Int32Array;
}

function reducePlan(shape: readonly number[], dims: number[], keepdim: boolean): ReducePlan {
  const plan = planShape(shape, dims, keepdim);
  const { keptShape, groups } = plan;
  const n = numelOf(shape);
  const map = new Int32Array(n);
  const r = shape.length;
  const trailing = dims.length > 0 && dims.every((d, i) => d === r - dims.length + i);
  const leading = dims.length > 0 && dims.every((d, i) => d === i);
  if (groups === 1 || n === 0) {
    // all reduced: map stays 0
  } else if (trailing) {
    const size = n / groups;
    for (let i = 0; i < n; i++) map[i] = (i / size) | 0;
  } else if (leading) {
    for (let i = 0; i < n; i++) map[i] = i % groups;
  } else {
    broadcastMap(shape, [keptShape], (o, offs) => {
      map[o] = offs[0]!;
    });
  }
  return { ...plan, map };
}

/**
 * The reduced groups as contiguous blocks: 'all' (one group), 'trailing' (group g = elements
 * [g·size, (g+1)·size)), 'leading' (group g = elements g, g + groups, g + 2·groups, …), or null
 * (other dims: use the plan's map). The fast paths visit each group's elements in the same order
 * as the map loop, so the sums are bit-identical.
 */
function layoutOf(shape: readonly number[], dims: number[]): 'all' | 'trailing' | 'leading' | null {
  const r = shape.length;
  const n = numelOf(shape);
  const groups = numelOf(shape.map((d, i) => (dims.includes(i) ? 1 : d)));
  if (groups === 1 || n === 0) return 'all';
  if (dims.length > 0 && dims.every((d, i) => d === r - dims.length + i)) return 'trailing';
  if (dims.length > 0 && dims.every((d, i) => d === i)) return 'leading';
  return null;
}

/** reducePlan without the per-element map (fast layouts only). */
function planShape(shape: readonly number[], dims: number[], keepdim: boolean): ReducePlan {
  const reduced = new Set(dims);
  const keptShape = shape.map((d, i) => (reduced.has(i) ? 1 : d));
  const outShape = keepdim ? keptShape : shape.filter((_, i) => !reduced.has(i));
  const groups = numelOf(keptShape);
  const n = numelOf(shape);
  return { outShape, keptShape, groups, groupSize: groups === 0 ? 0 : n / groups, map: new Int32Array(0) };
}

function reduceSum(A: NDArray, dims: number[], keepdim: boolean, square = false): { sums: Float64Array; plan: ReducePlan } {
  const layout = layoutOf(A.shape, dims);
  if (layout !== null) {
    const plan = planShape(A.shape, dims, keepdim);
    const sums = f64(plan.groups);
    const d = A.data;
    const G = plan.groups;
    if (layout === 'all' || layout === 'trailing') {
      const size = plan.groupSize;
      for (let g = 0; g < G; g++) {
        let s = 0;
        const end = (g + 1) * size;
        if (square) for (let i = g * size; i < end; i++) s += d[i]! * d[i]!;
        else for (let i = g * size; i < end; i++) s += d[i]!;
        sums[g] = s;
      }
    } else {
      for (let i = 0; i < d.length; i += G) {
        if (square) for (let g = 0; g < G; g++) sums[g] += d[i + g]! * d[i + g]!;
        else for (let g = 0; g < G; g++) sums[g] += d[i + g]!;
      }
    }
    return { sums, plan };
  }
  const plan = reducePlan(A.shape, dims, keepdim);
  const sums = new Float64Array(plan.groups);
  const d = A.data;
  const m = plan.map;
  if (square) for (let i = 0; i < d.length; i++) sums[m[i]!] += d[i]! * d[i]!;
  else for (let i = 0; i < d.length; i++) sums[m[i]!] += d[i]!;
  return { sums, plan };
}

/** The native reduction for the contiguous and leading layouts, visiting the same order (null: use JS). */
function reduceNative(kind: NativeReduce, A: NDArray, dims: number[], keepdim: boolean): NDArray | null {
  const layout = layoutOf(A.shape, dims);
  if (layout === null || A.numel === 0) return null;
  const plan = planShape(A.shape, dims, keepdim);
  // torch.stack(list) reduced over its new dim 0: read the parts in place (same order, no copy)
  const parts = A.stackedParts;
  if (parts && dims.length === 1 && dims[0] === 0) {
    const nat = nativeReduceParts(kind, parts, plan.outShape);
    if (nat) return nat;
  }
  return nativeReduce(kind, A, plan.groups, plan.groupSize, layout === 'leading', plan.outShape);
}

export function sum(a: Operand, dim?: number | number[] | null, keepdim = false): NDArray {
  const A = asND(a);
  const nat = reduceNative('sum', A, normDims(dim, A.rank), keepdim);
  if (nat) return nat;
  const { sums, plan } = reduceSum(A, normDims(dim, A.rank), keepdim);
  return new NDArray(toF32(sums), plan.outShape);
}
export function mean(a: Operand, dim?: number | number[] | null, keepdim = false): NDArray {
  const A = asND(a);
  const nat = reduceNative('mean', A, normDims(dim, A.rank), keepdim);
  if (nat) return nat;
  const { sums, plan } = reduceSum(A, normDims(dim, A.rank), keepdim);
  const n = plan.groupSize;
  return new NDArray(toF32(sums, (s) => s / n), plan.outShape);
}
/** Variance with Bessel's correction by default (like torch: correction = 1). */
export function variance(a: Operand, dim?: number | number[] | null, keepdim = false, correction = 1): NDArray {
  const A = asND(a);
  const dims = normDims(dim, A.rank);
  const { sums } = reduceSum(A, dims, keepdim);
  const plan = reducePlan(A.shape, dims, keepdim);
  const n = plan.groupSize;
  const m = plan.map;
  const acc = new Float64Array(plan.groups);
  const d = A.data;
  for (let i = 0; i < d.length; i++) {
    const g = m[i]!;
    const dv = d[i]! - sums[g]! / n;
    acc[g] += dv * dv;
  }
  return new NDArray(toF32(acc, (s) => s / Math.max(0, n - correction)), plan.outShape);
}
export function std(a: Operand, dim?: number | number[] | null, keepdim = false, correction = 1): NDArray {
  return unary(variance(a, dim, keepdim, correction), Math.sqrt);
}
/** p-norm (p = 1, 2, Infinity; 'fro' = 2) over dims. */
export function norm(a: Operand, p: number | 'fro' = 2, dim?: number | number[] | null, keepdim = false): NDArray {
  const A = asND(a);
  const dims = normDims(dim, A.rank);
  if (p === 'fro' || p === 2) {
    const nat = reduceNative('norm2', A, dims, keepdim);
    if (nat) return nat;
    const { sums, plan } = reduceSum(A, dims, keepdim, true);
    return new NDArray(toF32(sums, Math.sqrt), plan.outShape);
  }
  if (p === 1) {
    const absA = abs(A);
    const nat = reduceNative('sum', absA, dims, keepdim);
    if (nat) return nat;
    const { sums, plan } = reduceSum(absA, dims, keepdim);
    return new NDArray(toF32(sums), plan.outShape);
  }
  if (p === Infinity) return amax(abs(A), dims, keepdim);
  throw new Error(`norm: p must be 1, 2, 'fro' or Infinity, got ${String(p)}`);
}
function reduceExtreme(a: Operand, dim: number | number[] | null | undefined, keepdim: boolean, isMax: boolean): NDArray {
  const A = asND(a);
  const dims = normDims(dim, A.rank);
  const layout = layoutOf(A.shape, dims);
  const plan = layout === 'all' || layout === 'trailing' ? planShape(A.shape, dims, keepdim) : reducePlan(A.shape, dims, keepdim);
  if (plan.groupSize === 0) throw new Error(`${isMax ? 'amax' : 'amin'} of an empty tensor`);
  const nat = reduceNative(isMax ? 'amax' : 'amin', A, dims, keepdim);
  if (nat) return nat;
  const acc = f32(plan.groups).fill(isMax ? -Infinity : Infinity);
  const d = A.data;
  if (layout === 'all' || layout === 'trailing') {
    // contiguous groups, visited in the same order as the map loop below
    const size = plan.groupSize;
    for (let g = 0; g < plan.groups; g++) {
      let v0 = acc[g]!;
      for (let i = g * size, end = (g + 1) * size; i < end; i++) {
        const v = d[i]!;
        if (v !== v) v0 = NaN;
        else if (isMax ? v > v0 : v < v0) v0 = v;
      }
      acc[g] = v0;
    }
    return new NDArray(acc, plan.outShape);
  }
  const m = plan.map;
  for (let i = 0; i < d.length; i++) {
    const g = m[i]!;
    const v = d[i]!;
    if (v !== v) acc[g] = NaN;
    else if (isMax ? v > acc[g]! : v < acc[g]!) acc[g] = v;
  }
  return new NDArray(acc, plan.outShape);
}
export const amax = (a: Operand, dim?: number | number[] | null, keepdim = false): NDArray => reduceExtreme(a, dim, keepdim, true);
export const amin = (a: Operand, dim?: number | number[] | null, keepdim = false): NDArray => reduceExtreme(a, dim, keepdim, false);

/** Quantile with linear interpolation (torch default), q in [0, 1], over dims (default: all). */
export function quantile(a: Operand, q: number, dim?: number | number[] | null, keepdim = false): NDArray {
  if (!(q >= 0 && q <= 1)) throw new Error(`quantile: q must be in [0, 1], got ${q}`);
  const A = asND(a);
  const plan = reducePlan(A.shape, normDims(dim, A.rank), keepdim);
  const n = plan.groupSize;
  if (n === 0) throw new Error('quantile of an empty tensor');
  const buckets = Array.from({ length: plan.groups }, () => new Float32Array(n)); // sorted scratch, not an output
  const fill = new Int32Array(plan.groups);
  const d = A.data;
  for (let i = 0; i < d.length; i++) {
    const g = plan.map[i]!;
    buckets[g]![fill[g]!++] = d[i]!;
  }
  const out = f32(plan.groups);
  for (let g = 0; g < plan.groups; g++) {
    const b = buckets[g]!.sort();
    if (b.some((v) => v !== v)) {
      out[g] = NaN;
      continue;
    }
    const pos = q * (n - 1);
    const lo = Math.floor(pos);
    const hi = Math.min(n - 1, lo + 1);
    out[g] = b[lo]! + (b[hi]! - b[lo]!) * (pos - lo);
  }
  return new NDArray(out, plan.outShape);
}

/**
 * 0/1 mask keeping the k = floor(frac·numel) entries of largest |x| over the whole tensor (ties:
 * lower index first, the same rule as kernels.topkMagnitudeInPlace). frac >= 1 keeps all.
 */
export function topkMask(a: Operand, frac: number): NDArray {
  const A = asND(a);
  const n = A.numel;
  if (!(frac >= 0)) throw new Error(`topk_mask: fraction must be in [0, 1], got ${frac}`);
  const k = Math.min(n, Math.floor(frac * n));
  if (k >= n) return new NDArray(f32(n).fill(1), A.shape);
  if (k <= 0) return new NDArray(f32(n), A.shape);
  const d = A.data;
  const thr = kthLargestAbs(d, k);
  const nat = nativeTopkMask(A, thr, k);
  if (nat) return nat;
  const out = f32(n);
  let greater = 0;
  for (let i = 0; i < n; i++) if (Math.abs(d[i]!) > thr) greater++;
  let equalBudget = k - greater;
  for (let i = 0; i < n; i++) {
    const v = Math.abs(d[i]!);
    if (v > thr) out[i] = 1;
    else if (v === thr && equalBudget > 0) {
      equalBudget--;
      out[i] = 1;
    }
  }
  return new NDArray(out, A.shape);
}

/** Σ a·b over all elements (same numel required), as a 0-d tensor. */
export function dot(a: NDArray, b: NDArray): NDArray {
  if (a.numel !== b.numel) throw new Error(`dot: tensors have ${a.numel} and ${b.numel} elements`);
  return scalar(kdot(a.data, b.data));
}

/** Cosine similarity. dim = null: over all elements (0-d result); else along `dim` with broadcasting. */
export function cosineSimilarity(a: NDArray, b: NDArray, dim: number | null = null, eps = 1e-8): NDArray {
  if (dim === null) {
    if (a.numel !== b.numel) throw new Error(`cosine_similarity: tensors have ${a.numel} and ${b.numel} elements`);
    const ab = kdot(a.data, b.data);
    const na = Math.sqrt(kdot(a.data, a.data));
    const nb = Math.sqrt(kdot(b.data, b.data));
    return scalar(ab / Math.max(na * nb, eps));
  }
  const ab = sum(mul(a, b), dim);
  const na = norm(a, 2, dim);
  const nb = norm(b, 2, dim);
  return div(ab, maximum(mul(broadcastTo(na, broadcastShapes(na.shape, nb.shape)), nb), eps));
}
