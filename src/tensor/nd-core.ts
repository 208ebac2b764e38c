/**
 * The core of the float32 n-d array library (see nd.ts): the NDArray type, the output-buffer pool,
 * shapes and PyTorch broadcasting. Helpers exported here are for the nd-*.ts modules; the public
 * surface is nd.ts.
 */
import { useNative } from './kernels.ts';
import { native } from './native.ts';

/** The parts of stacks along dim 0 whose copy is not made yet (NDArray.stacked). */
const lazyParts = new WeakMap<NDArray, readonly Float32Array[]>();

export class NDArray {
  readonly data: Float32Array;
  readonly shape: readonly number[];
  constructor(data: Float32Array, shape: readonly number[]) {
    if (data.length !== numelOf(shape)) throw new Error(`NDArray: data length ${data.length} does not match shape [${shape.join(', ')}]`);
    this.data = data;
    this.shape = Object.freeze([...shape]);
  }
  get numel(): number {
    return numelOf(this.shape);
  }
  get rank(): number {
    return this.shape.length;
  }

  /**
   * The stack of `parts` (equal lengths) along a new leading dim, copied only when its `data` is
   * first read (`data` is then an accessor until the copy is made): a reduction over that dim (sum,
   * mean, … of torch.stack(list)) reads the parts in place instead (nd-reduce.ts), the same values
   * in the same order as over the copy. The parts must never change (arrays of this library never do).
   */
  static stacked(parts: readonly Float32Array[], shape: readonly number[]): NDArray {
    const each = parts[0]?.length ?? 0;
    if (parts.length === 0 || parts.some((p) => p.length !== each) || numelOf(shape) !== parts.length * each || shape[0] !== parts.length)
      throw new Error(`NDArray.stacked: ${parts.length} parts do not make shape [${shape.join(', ')}]`);
    const t = new NDArray(parts[0]!, shape.slice(1));
    (t as { shape: readonly number[] }).shape = Object.freeze([...shape]);
    const list = [...parts];
    lazyParts.set(t, list);
    Object.defineProperty(t, 'data', {
      enumerable: true,
      configurable: true,
      get(): Float32Array {
        const out = f32w(numelOf(shape));
        for (let k = 0; k < list.length; k++) copyInto(out.subarray(k * each, (k + 1) * each), list[k]!);
        Object.defineProperty(t, 'data', { value: out, enumerable: true, writable: false, configurable: false });
        lazyParts.delete(t);
        return out;
      },
    });
    return t;
  }

  /** The parts of a stack along dim 0 while its copy is not made (else null). */
  get stackedParts(): readonly Float32Array[] | null {
    return lazyParts.get(this) ?? null;
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
  /** An array the caller overwrites entirely: may hold a previous run's values (no zeroing pass). */
  f32Dirty?(n: number): Float32Array;
}
let arrayPool: ArrayPool | null = null;
/** Arrays below this length are always allocated fresh (cheap). */
const POOL_MIN = 1 << 16;
export function setArrayPool(p: ArrayPool | null): void {
  arrayPool = p;
}
export function f32(n: number): Float32Array {
  return arrayPool && n >= POOL_MIN ? arrayPool.f32(n) : new Float32Array(n);
}
/** An output array the op overwrites entirely (from the pool: not zeroed first). */
export function f32w(n: number): Float32Array {
  if (!arrayPool || n < POOL_MIN) return new Float32Array(n);
  return arrayPool.f32Dirty ? arrayPool.f32Dirty(n) : arrayPool.f32(n);
}
export function f64(n: number): Float64Array {
  return arrayPool && n >= POOL_MIN ? arrayPool.f64(n) : new Float64Array(n);
}
export function copyOf(x: Float32Array): Float32Array {
  const o = f32(x.length);
  o.set(x);
  return o;
}
/** Float32 copy of float64 values (optionally mapped), rounded like Float32Array.from. */
export function toF32(x: Float64Array, fn?: (v: number) => number): Float32Array {
  const o = f32(x.length);
  if (fn) for (let i = 0; i < x.length; i++) o[i] = fn(x[i]!);
  else for (let i = 0; i < x.length; i++) o[i] = x[i]!;
  return o;
}

/** Copies src into out (same length), natively in parallel for long arrays (the native unary op 7, ND_UNARY.copy in nd-native.ts). */
export function copyInto(out: Float32Array, src: Float32Array): void {
  if (out.length !== src.length) throw new Error(`copyInto: lengths ${out.length} and ${src.length} differ`);
  if (native && useNative(src.length) && src.length >= 1 << 16) native.ndUnary(7, out, src, 0, 0);
  else out.set(src);
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

export function asND(x: Operand): NDArray {
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
export function bstrides(shape: readonly number[], outShape: readonly number[]): number[] {
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
export function broadcastMap(outShape: readonly number[], inputs: readonly (readonly number[])[], fn: (o: number, offs: number[]) => void): void {
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

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
