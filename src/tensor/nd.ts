/**
 * A small float32 n-d array library with PyTorch-like semantics: broadcasting binary ops, unary
 * ops, reductions over dims (with keepdim), quantiles, magnitude top-k masks and seeded random
 * tensors. Every op returns a NEW array; nothing here writes into its inputs. This is the
 * host side of the sandboxed merge-algorithm API (src/sandbox): sandboxed programs only hold
 * handles to these arrays.
 */
import { axpy, dot as kdot, kthLargestAbs, scale as kscale, sub as ksub, uniformAt } from './kernels.ts';

export class NDArray {
  readonly data: Float32Array;
  readonly shape: readonly number[];
  constructor(data: Float32Array, shape: readonly number[]) {
    if (data.length !== numelOf(shape)) throw new Error(`NDArray: data length ${data.length} does not match shape [${shape.join(', ')}]`);
    this.data = data;
    this.shape = Object.freeze([...shape]);
  }
  get numel(): number {
    return this.data.length;
  }
  get rank(): number {
    return this.shape.length;
  }
}

export type Operand = NDArray | number;

/**
 * Where op outputs come from: plain `new Float32Array(n)`, or (setArrayPool) a pool of zeroed,
 * already-touched buffers. The sandbox child recycles one run's intermediates into the next run,
 * because touching fresh memory (page faults) can cost more than the op itself on large tensors.
 * Outputs are zeroed either way, so results do not depend on the pool.
 */
export interface ArrayPool {
  f32(n: number): Float32Array;
  f64(n: number): Float64Array;
}
let arrayPool: ArrayPool | null = null;
/** Arrays below this length are always allocated fresh (cheap). */
const POOL_MIN = 1 << 16;
export function setArrayPool(p: ArrayPool | null): void {
  arrayPool = p;
}
function f32(n: number): Float32Array {
  return arrayPool && n >= POOL_MIN ? arrayPool.f32(n) : new Float32Array(n);
}
function f64(n: number): Float64Array {
  return arrayPool && n >= POOL_MIN ? arrayPool.f64(n) : new Float64Array(n);
}
function copyOf(x: Float32Array): Float32Array {
  const o = f32(x.length);
  o.set(x);
  return o;
}
/** Float32 copy of float64 values (optionally mapped), rounded like Float32Array.from. */
function toF32(x: Float64Array, fn?: (v: number) => number): Float32Array {
  const o = f32(x.length);
  if (fn) for (let i = 0; i < x.length; i++) o[i] = fn(x[i]!);
  else for (let i = 0; i < x.length; i++) o[i] = x[i]!;
  return o;
}

export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function checkShape(shape: readonly number[], what = 'shape'): number[] {
  if (!Array.isArray(shape)) throw new Error(`${what} must be an array of non-negative integers`);
  for (const d of shape) if (!Number.isInteger(d) || d < 0) throw new Error(`${what} [${shape.join(', ')}] must contain non-negative integers`);
  return [...shape];
}

export function scalar(v: number): NDArray {
  return new NDArray(Float32Array.of(v), []);
}

function asND(x: Operand): NDArray {
  return typeof x === 'number' ? scalar(x) : x;
}

export function fmtShape(s: readonly number[]): string {
  return `[${s.join(', ')}]`;
}

/** PyTorch broadcasting of two shapes (aligned on the right; size-1 dims stretch). */
export function broadcastShapes(a: readonly number[], b: readonly number[]): number[] {
  const r = Math.max(a.length, b.length);
  const out: number[] = new Array(r);
  for (let i = 0; i < r; i++) {
    const da = a[a.length - r + i] ?? 1;
    const db = b[b.length - r + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new Error(`shapes ${fmtShape(a)} and ${fmtShape(b)} are not broadcastable (dim ${i - r}: ${da} vs ${db})`);
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Strides of `shape` seen through broadcasting into `outShape` (0 where the dim is stretched). */
function bstrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const r = outShape.length;
  const st: number[] = new Array(r).fill(0);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    const oi = r - shape.length + i;
    st[oi] = shape[i] === 1 ? 0 : s;
    s *= shape[i]!;
  }
  return st;
}

/** For every element of outShape, the flat offset into each broadcast input. */
function broadcastMap(outShape: readonly number[], inputs: readonly (readonly number[])[], fn: (o: number, offs: number[]) => void): void {
  const n = numelOf(outShape);
  if (n === 0) return;
  const r = outShape.length;
  const strides = inputs.map((s) => bstrides(s, outShape));
  const idx = new Array(r).fill(0);
  const offs = new Array(inputs.length).fill(0);
  for (let o = 0; o < n; o++) {
    fn(o, offs);
    for (let d = r - 1; d >= 0; d--) {
      idx[d]++;
      for (let k = 0; k < offs.length; k++) offs[k] += strides[k]![d]!;
      if (idx[d] < outShape[d]!) break;
      for (let k = 0; k < offs.length; k++) offs[k] -= strides[k]![d]! * outShape[d]!;
      idx[d] = 0;
    }
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export type BinaryFn = (x: number, y: number) => number;

/**
 * Per-op loops for the three common layouts (same shape, scalar right, scalar left): each loop is
 * its own function, so V8 compiles it monomorphic with the arithmetic inlined, at memory speed on
 * large tensors, where the generic path below calls a closure per element. Same arithmetic as the
 * ops' closures (results bit-identical).
 */
type Loop = (o: Float32Array, a: Float32Array, b: Float32Array) => void;
type SLoop = (o: Float32Array, a: Float32Array, y: number) => void;
interface OpLoops {
  same: Loop;
  right: SLoop;
  left: SLoop;
}
const LOOPS: Record<string, OpLoops> = {
  mul: {
    same: (o, a, b) => { for (let i = 0; i < o.length; i++) o[i] = a[i]! * b[i]!; },
    right: (o, a, y) => { for (let i = 0; i < o.length; i++) o[i] = a[i]! * y; },
    left: (o, b, x) => { for (let i = 0; i < o.length; i++) o[i] = x * b[i]!; },
  },
  div: {
    same: (o, a, b) => { for (let i = 0; i < o.length; i++) o[i] = a[i]! / b[i]!; },
    right: (o, a, y) => { for (let i = 0; i < o.length; i++) o[i] = a[i]! / y; },
    left: (o, b, x) => { for (let i = 0; i < o.length; i++) o[i] = x / b[i]!; },
  },
  maximum: {
    same: (o, a, b) => { for (let i = 0; i < o.length; i++) { const x = a[i]!, y = b[i]!; o[i] = x !== x || y !== y ? NaN : Math.max(x, y); } },
    right: (o, a, y) => { for (let i = 0; i < o.length; i++) { const x = a[i]!; o[i] = x !== x || y !== y ? NaN : Math.max(x, y); } },
    left: (o, b, x) => { for (let i = 0; i < o.length; i++) { const y = b[i]!; o[i] = x !== x || y !== y ? NaN : Math.max(x, y); } },
  },
  minimum: {
    same: (o, a, b) => { for (let i = 0; i < o.length; i++) { const x = a[i]!, y = b[i]!; o[i] = x !== x || y !== y ? NaN : Math.min(x, y); } },
    right: (o, a, y) => { for (let i = 0; i < o.length; i++) { const x = a[i]!; o[i] = x !== x || y !== y ? NaN : Math.min(x, y); } },
    left: (o, b, x) => { for (let i = 0; i < o.length; i++) { const y = b[i]!; o[i] = x !== x || y !== y ? NaN : Math.min(x, y); } },
  },
  gt: {
    same: (o, a, b) => { for (let i = 0; i < o.length; i++) o[i] = a[i]! > b[i]! ? 1 : 0; },
    right: (o, a, y) => { for (let i = 0; i < o.length; i++) o[i] = a[i]! > y ? 1 : 0; },
    left: (o, b, x) => { for (let i = 0; i < o.length; i++) o[i] = x > b[i]! ? 1 : 0; },
  },
  ge: {
    same: (o, a, b) => { for (let i = 0; i < o.length; i++) o[i] = a[i]! >= b[i]! ? 1 : 0; },
    right: (o, a, y) => { for (let i = 0; i < o.length; i++) o[i] = a[i]! >= y ? 1 : 0; },
    left: (o, b, x) => { for (let i = 0; i < o.length; i++) o[i] = x >= b[i]! ? 1 : 0; },
  },
  lt: {
    same: (o, a, b) => { for (let i = 0; i < o.length; i++) o[i] = a[i]! < b[i]! ? 1 : 0; },
    right: (o, a, y) => { for (let i = 0; i < o.length; i++) o[i] = a[i]! < y ? 1 : 0; },
    left: (o, b, x) => { for (let i = 0; i < o.length; i++) o[i] = x < b[i]! ? 1 : 0; },
  },
  le: {
    same: (o, a, b) => { for (let i = 0; i < o.length; i++) o[i] = a[i]! <= b[i]! ? 1 : 0; },
    right: (o, a, y) => { for (let i = 0; i < o.length; i++) o[i] = a[i]! <= y ? 1 : 0; },
    left: (o, b, x) => { for (let i = 0; i < o.length; i++) o[i] = x <= b[i]! ? 1 : 0; },
  },
  eq: {
    same: (o, a, b) => { for (let i = 0; i < o.length; i++) o[i] = a[i]! === b[i]! ? 1 : 0; },
    right: (o, a, y) => { for (let i = 0; i < o.length; i++) o[i] = a[i]! === y ? 1 : 0; },
    left: (o, b, x) => { for (let i = 0; i < o.length; i++) o[i] = x === b[i]! ? 1 : 0; },
  },
};

/** `binary` with the op's fast loops when the layout allows (else the generic path with `f`). */
function binaryOp(name: keyof typeof LOOPS, a: Operand, b: Operand, f: BinaryFn): NDArray {
  const A = asND(a);
  const B = asND(b);
  const L = LOOPS[name]!;
  if (sameShape(A.shape, B.shape)) {
    const out = f32(A.numel);
    L.same(out, A.data, B.data);
    return new NDArray(out, A.shape);
  }
  if (B.numel === 1 && B.rank <= A.rank) {
    const out = f32(A.numel);
    L.right(out, A.data, B.data[0]!);
    return new NDArray(out, A.shape);
  }
  if (A.numel === 1 && A.rank <= B.rank) {
    const out = f32(B.numel);
    L.left(out, B.data, A.data[0]!);
    return new NDArray(out, B.shape);
  }
  return binary(A, B, f);
}

export function binary(a: Operand, b: Operand, f: BinaryFn): NDArray {
  const A = asND(a);
  const B = asND(b);
  const shape = broadcastShapes(A.shape, B.shape);
  const out = f32(numelOf(shape));
  const ad = A.data;
  const bd = B.data;
  if (sameShape(A.shape, B.shape)) {
    for (let i = 0; i < out.length; i++) out[i] = f(ad[i]!, bd[i]!);
  } else if (B.numel === 1) {
    const y = bd[0]!;
    for (let i = 0; i < out.length; i++) out[i] = f(ad[i]!, y);
  } else if (A.numel === 1) {
    const x = ad[0]!;
    for (let i = 0; i < out.length; i++) out[i] = f(x, bd[i]!);
  } else if (shape.length > 0) {
    // outer loop over all but the last dim (base offsets via broadcastMap), tight inner loop
    const r = shape.length;
    const inner = shape[r - 1]!;
    const sa = bstrides(A.shape, shape)[r - 1]!;
    const sb = bstrides(B.shape, shape)[r - 1]!;
    const outerShape = shape.slice(0, r - 1);
    const aOuter = [...A.shape.slice(0, Math.max(0, A.shape.length - 1))];
    const bOuter = [...B.shape.slice(0, Math.max(0, B.shape.length - 1))];
    const aInner = A.shape.length > 0 ? A.shape[A.shape.length - 1]! : 1;
    const bInner = B.shape.length > 0 ? B.shape[B.shape.length - 1]! : 1;
    const visit = (o: number, offs: number[]): void => {
      let ia = offs[0]! * aInner;
      let ib = offs[1]! * bInner;
      const base = o * inner;
      for (let j = 0; j < inner; j++, ia += sa, ib += sb) out[base + j] = f(ad[ia]!, bd[ib]!);
    };
    if (outerShape.length === 0) visit(0, [0, 0]);
    else broadcastMap(outerShape, [aOuter, bOuter], visit);
  }
  return new NDArray(out, shape);
}

export function add(a: Operand, b: Operand, alpha = 1): NDArray {
  if (typeof a !== 'number' && typeof b !== 'number' && sameShape(a.shape, b.shape)) {
    const out = copyOf(a.data);
    axpy(out, alpha, b.data);
    return new NDArray(out, a.shape);
  }
  return alpha === 1 ? binary(a, b, (x, y) => x + y) : binary(a, b, (x, y) => x + alpha * y);
}
export function sub(a: Operand, b: Operand, alpha = 1): NDArray {
  if (alpha === 1 && typeof a !== 'number' && typeof b !== 'number' && sameShape(a.shape, b.shape)) {
    const out = f32(a.numel);
    ksub(out, a.data, b.data);
    return new NDArray(out, a.shape);
  }
  return binary(a, b, (x, y) => x - alpha * y);
}
export function mul(a: Operand, b: Operand): NDArray {
  if (typeof b === 'number' && typeof a !== 'number') {
    const out = copyOf(a.data);
    kscale(out, b);
    return new NDArray(out, a.shape);
  }
  if (typeof a === 'number' && typeof b !== 'number') return mul(b, a);
  return binaryOp('mul', a, b, (x, y) => x * y);
}
export const div = (a: Operand, b: Operand): NDArray => binaryOp('div', a, b, (x, y) => x / y);
export const pow = (a: Operand, b: Operand): NDArray => binary(a, b, (x, y) => Math.pow(x, y));
export const maximum = (a: Operand, b: Operand): NDArray => binaryOp('maximum', a, b, (x, y) => (x !== x || y !== y ? NaN : Math.max(x, y)));
export const minimum = (a: Operand, b: Operand): NDArray => binaryOp('minimum', a, b, (x, y) => (x !== x || y !== y ? NaN : Math.min(x, y)));
export const gt = (a: Operand, b: Operand): NDArray => binaryOp('gt', a, b, (x, y) => (x > y ? 1 : 0));
export const ge = (a: Operand, b: Operand): NDArray => binaryOp('ge', a, b, (x, y) => (x >= y ? 1 : 0));
export const lt = (a: Operand, b: Operand): NDArray => binaryOp('lt', a, b, (x, y) => (x < y ? 1 : 0));
export const le = (a: Operand, b: Operand): NDArray => binaryOp('le', a, b, (x, y) => (x <= y ? 1 : 0));
export const eq = (a: Operand, b: Operand): NDArray => binaryOp('eq', a, b, (x, y) => (x === y ? 1 : 0));

/** where(cond, a, b): a where cond != 0, else b (all three broadcast together). */
export function where(cond: Operand, a: Operand, b: Operand): NDArray {
  const C = asND(cond);
  const A = asND(a);
  const B = asND(b);
  const shape = broadcastShapes(broadcastShapes(C.shape, A.shape), B.shape);
  const n = numelOf(shape);
  const out = f32(n);
  const cd = C.data;
  const ad = A.data;
  const bd = B.data;
  const simple = [C, A, B].every((x) => x.numel === 1 || sameShape(x.shape, shape));
  if (simple) {
    const sc = C.numel === 1 && n !== 1 ? 0 : 1;
    const sa = A.numel === 1 && n !== 1 ? 0 : 1;
    const sb = B.numel === 1 && n !== 1 ? 0 : 1;
    for (let i = 0; i < n; i++) out[i] = cd[i * sc]! !== 0 ? ad[i * sa]! : bd[i * sb]!;
    return new NDArray(out, shape);
  }
  broadcastMap(shape, [C.shape, A.shape, B.shape], (o, offs) => {
    out[o] = cd[offs[0]!]! !== 0 ? ad[offs[1]!]! : bd[offs[2]!]!;
  });
  return new NDArray(out, shape);
}

export function unary(a: Operand, f: (x: number) => number): NDArray {
  const A = asND(a);
  const out = f32(A.numel);
  const d = A.data;
  for (let i = 0; i < out.length; i++) out[i] = f(d[i]!);
  return new NDArray(out, A.shape);
}
/** A unary op with its own loop (monomorphic, see LOOPS). */
function unaryLoop(a: Operand, loop: (o: Float32Array, d: Float32Array) => void): NDArray {
  const A = asND(a);
  const out = f32(A.numel);
  loop(out, A.data);
  return new NDArray(out, A.shape);
}
export const abs = (a: Operand): NDArray => unaryLoop(a, (o, d) => { for (let i = 0; i < o.length; i++) o[i] = Math.abs(d[i]!); });
export const neg = (a: Operand): NDArray => unaryLoop(a, (o, d) => { for (let i = 0; i < o.length; i++) o[i] = -d[i]!; });
export const sign = (a: Operand): NDArray => unaryLoop(a, (o, d) => { for (let i = 0; i < o.length; i++) { const x = d[i]!; o[i] = x > 0 ? 1 : x < 0 ? -1 : x === 0 ? 0 : NaN; } });
export const sqrt = (a: Operand): NDArray => unaryLoop(a, (o, d) => { for (let i = 0; i < o.length; i++) o[i] = Math.sqrt(d[i]!); });
export const exp = (a: Operand): NDArray => unary(a, Math.exp);
export const log = (a: Operand): NDArray => unary(a, Math.log);
export const sigmoid = (a: Operand): NDArray => unary(a, (x) => 1 / (1 + Math.exp(-x)));
export const tanh = (a: Operand): NDArray => unary(a, Math.tanh);
export const relu = (a: Operand): NDArray => unaryLoop(a, (o, d) => { for (let i = 0; i < o.length; i++) { const x = d[i]!; o[i] = x > 0 ? x : 0; } });
export const square = (a: Operand): NDArray => unaryLoop(a, (o, d) => { for (let i = 0; i < o.length; i++) { const x = d[i]!; o[i] = x * x; } });
export function clamp(a: Operand, min: number | null, max: number | null): NDArray {
  const lo = min ?? -Infinity;
  const hi = max ?? Infinity;
  return unaryLoop(a, (o, d) => { for (let i = 0; i < o.length; i++) { const x = d[i]!; o[i] = x < lo ? lo : x > hi ? hi : x; } });
}

// ---------------------------------------------------------------------------------------------
// Reductions

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
  const reduced = new Set(dims);
  const keptShape = shape.map((d, i) => (reduced.has(i) ? 1 : d));
  const outShape = keepdim ? keptShape : shape.filter((_, i) => !reduced.has(i));
  const groups = numelOf(keptShape);
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
  return { outShape, keptShape, groups, groupSize: groups === 0 ? 0 : n / groups, map };
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

export function sum(a: Operand, dim?: number | number[] | null, keepdim = false): NDArray {
  const A = asND(a);
  const { sums, plan } = reduceSum(A, normDims(dim, A.rank), keepdim);
  return new NDArray(toF32(sums), plan.outShape);
}
export function mean(a: Operand, dim?: number | number[] | null, keepdim = false): NDArray {
  const A = asND(a);
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
    const { sums, plan } = reduceSum(A, dims, keepdim, true);
    return new NDArray(toF32(sums, Math.sqrt), plan.outShape);
  }
  if (p === 1) {
    const { sums, plan } = reduceSum(abs(A), dims, keepdim);
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
  const out = f32(n);
  if (!(frac >= 0)) throw new Error(`topk_mask: fraction must be in [0, 1], got ${frac}`);
  const k = Math.min(n, Math.floor(frac * n));
  if (k >= n) return new NDArray(out.fill(1), A.shape);
  if (k <= 0) return new NDArray(out, A.shape);
  const d = A.data;
  const thr = kthLargestAbs(d, k);
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

export function broadcastTo(a: NDArray, shape: readonly number[]): NDArray {
  const s = broadcastShapes(a.shape, shape);
  if (!sameShape(s, shape)) throw new Error(`cannot expand ${fmtShape(a.shape)} to ${fmtShape(shape)}`);
  const out = f32(numelOf(s));
  const d = a.data;
  broadcastMap(s, [a.shape], (o, offs) => {
    out[o] = d[offs[0]!]!;
  });
  return new NDArray(out, s);
}

/** Stack same-shape tensors along a new dim. */
export function stack(list: readonly NDArray[], dim = 0): NDArray {
  if (list.length === 0) throw new Error('stack: expects a non-empty list of tensors');
  const s0 = list[0]!.shape;
  for (const t of list) if (!sameShape(t.shape, s0)) throw new Error(`stack: all tensors must have the same shape, got ${fmtShape(s0)} and ${fmtShape(t.shape)}`);
  const r = s0.length + 1;
  const d = dim < 0 ? dim + r : dim;
  if (!Number.isInteger(d) || d < 0 || d >= r) throw new Error(`stack: dim ${dim} out of range for result rank ${r}`);
  const outer = numelOf(s0.slice(0, d));
  const inner = numelOf(s0.slice(d));
  const out = f32(outer * list.length * inner);
  for (let o = 0; o < outer; o++)
    for (let k = 0; k < list.length; k++) out.set(list[k]!.data.subarray(o * inner, (o + 1) * inner), (o * list.length + k) * inner);
  return new NDArray(out, [...s0.slice(0, d), list.length, ...s0.slice(d)]);
}

/** Concatenate along an existing dim. */
export function cat(list: readonly NDArray[], dim = 0): NDArray {
  if (list.length === 0) throw new Error('cat: expects a non-empty list of tensors');
  const s0 = list[0]!.shape;
  const r = s0.length;
  if (r === 0) throw new Error('cat: zero-dimensional tensors cannot be concatenated');
  const d = dim < 0 ? dim + r : dim;
  if (!Number.isInteger(d) || d < 0 || d >= r) throw new Error(`cat: dim ${dim} out of range for rank ${r}`);
  for (const t of list)
    if (t.rank !== r || t.shape.some((x, i) => i !== d && x !== s0[i])) throw new Error(`cat: shapes ${fmtShape(s0)} and ${fmtShape(t.shape)} differ outside dim ${d}`);
  const outer = numelOf(s0.slice(0, d));
  const inners = list.map((t) => numelOf(t.shape.slice(d)));
  const tot = inners.reduce((x, y) => x + y, 0);
  const out = f32(outer * tot);
  let off = 0;
  for (let o = 0; o < outer; o++)
    for (let k = 0; k < list.length; k++) {
      out.set(list[k]!.data.subarray(o * inners[k]!, (o + 1) * inners[k]!), off);
      off += inners[k]!;
    }
  const shape = [...s0];
  shape[d] = list.reduce((acc, t) => acc + t.shape[d]!, 0);
  return new NDArray(out, shape);
}

/** Reshape (one dim may be -1). Copies the data (arrays are immutable anyway). */
export function reshape(a: NDArray, shape: readonly number[]): NDArray {
  const s = [...shape];
  const neg1 = s.filter((d) => d === -1).length;
  if (neg1 > 1) throw new Error('reshape: only one dim may be -1');
  for (const d of s) if (!Number.isInteger(d) || d < -1) throw new Error(`reshape: invalid shape ${fmtShape(shape)}`);
  if (neg1 === 1) {
    const known = numelOf(s.filter((d) => d !== -1));
    if (known === 0 || a.numel % known !== 0) throw new Error(`reshape: cannot reshape ${fmtShape(a.shape)} into ${fmtShape(shape)}`);
    s[s.indexOf(-1)] = a.numel / known;
  }
  if (numelOf(s) !== a.numel) throw new Error(`reshape: cannot reshape ${fmtShape(a.shape)} (${a.numel} elements) into ${fmtShape(shape)}`);
  return new NDArray(copyOf(a.data), s);
}

/** Transpose of a 2-D tensor (1-D and 0-D are returned as copies). */
export function transpose2d(a: NDArray): NDArray {
  if (a.rank < 2) return new NDArray(copyOf(a.data), a.shape);
  if (a.rank !== 2) throw new Error(`t(): expects a tensor of rank <= 2, got ${fmtShape(a.shape)}`);
  const [r, c] = a.shape as [number, number];
  const out = f32(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = a.data[i * c + j]!;
  return new NDArray(out, [c, r]);
}

/** 2-D matrix product [m,k]·[k,n] (1-D operands are treated as vectors like torch.matmul). */
export function matmul(a: NDArray, b: NDArray): NDArray {
  const A = a.rank === 1 ? reshape(a, [1, a.numel]) : a;
  const B = b.rank === 1 ? reshape(b, [b.numel, 1]) : b;
  if (A.rank !== 2 || B.rank !== 2 || A.shape[1] !== B.shape[0]) throw new Error(`matmul: shapes ${fmtShape(a.shape)} and ${fmtShape(b.shape)} are not compatible`);
  const [m, k] = A.shape as [number, number];
  const n = B.shape[1]!;
  const out = f32(m * n);
  for (let i = 0; i < m; i++)
    for (let p = 0; p < k; p++) {
      const av = A.data[i * k + p]!;
      if (av === 0) continue;
      for (let j = 0; j < n; j++) out[i * n + j] += av * B.data[p * n + j]!;
    }
  const shape = a.rank === 1 && b.rank === 1 ? [] : a.rank === 1 ? [n] : b.rank === 1 ? [m] : [m, n];
  return new NDArray(out, shape);
}

export function full(shape: readonly number[], v: number): NDArray {
  return new NDArray(f32(numelOf(shape)).fill(v), shape);
}

/** Uniform [0, 1) from a counter-based generator: identical for the same seed. */
export function rand(shape: readonly number[], seed: number): NDArray {
  const out = f32(numelOf(shape));
  for (let i = 0; i < out.length; i++) out[i] = uniformAt(seed, i);
  return new NDArray(out, shape);
}

/** Standard normal (Box–Muller over two counter-based streams). */
export function randn(shape: readonly number[], seed: number): NDArray {
  const out = f32(numelOf(shape));
  for (let i = 0; i < out.length; i++) {
    const u1 = 1 - uniformAt(seed, 2 * i);
    const u2 = uniformAt(seed, 2 * i + 1);
    out[i] = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }
  return new NDArray(out, shape);
}

/** 1 with probability p (p a number or a tensor of probabilities), else 0. */
export function bernoulli(p: Operand, shape: readonly number[] | null, seed: number): NDArray {
  if (typeof p === 'number') {
    if (!shape) throw new Error('bernoulli: a numeric probability needs a shape');
    const out = f32(numelOf(shape));
    for (let i = 0; i < out.length; i++) out[i] = uniformAt(seed, i) < p ? 1 : 0;
    return new NDArray(out, shape);
  }
  const out = f32(p.numel);
  for (let i = 0; i < out.length; i++) out[i] = uniformAt(seed, i) < p.data[i]! ? 1 : 0;
  return new NDArray(out, p.shape);
}
