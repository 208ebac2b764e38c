/**
 * The native addon's loops for the n-d array library (native/nd_ops.cc): element-wise binary ops
 * over any broadcast layout, where, unary ops and grouped reductions, used by nd-elementwise.ts and
 * nd-reduce.ts for arrays of at least the native min length (kernels.ts setNativeMinLength). Each
 * returns null when the addon is not loaded or the array is short, and the caller runs its JS loop;
 * the native loops compute exactly what those JS loops compute (float32 inputs widened to double,
 * the same operations in the same order, one rounding to float32), so results are bit-identical
 * (NaN payloads aside), whatever the thread count. Also the sandbox's input checksum and
 * non-finite count, with their JS fallbacks.
 */
import { DTYPE_BYTES, decodeToF32, encodeFromF32, type FloatDType } from './dtype.ts';
import { axpy, sub, useNative } from './kernels.ts';
import { NATIVE_DT, native } from './native.ts';
export { copyInto } from './nd-core.ts';
import { NDArray, broadcastMap, broadcastShapes, bstrides, f32w as f32, numelOf, sameShape } from './nd-core.ts';

export const ND_BINARY = { add: 0, sub: 1, mul: 2, div: 3, maximum: 4, minimum: 5, gt: 6, ge: 7, lt: 8, le: 9, eq: 10 } as const;
export type NativeBinary = keyof typeof ND_BINARY;
const ND_SCALE = 11;
export const ND_UNARY = { abs: 0, neg: 1, sign: 2, sqrt: 3, relu: 4, square: 5, clamp: 6, copy: 7 } as const;
export type NativeUnary = keyof typeof ND_UNARY;
export const ND_REDUCE = { sum: 0, sumsq: 1, mean: 2, norm2: 3, amax: 4, amin: 5 } as const;
export type NativeReduce = keyof typeof ND_REDUCE;

/**
 * a op b with broadcasting (alpha: add/sub's multiplier of b), or null (no addon / short output).
 * Rows are the output's last dim; each row's start in a and b comes from the broadcast strides.
 */
export function nativeBinary(op: NativeBinary, A: NDArray, B: NDArray, alpha = 1): NDArray | null {
  const shape = broadcastShapes(A.shape, B.shape);
  const n = numelOf(shape);
  if (!useNative(n)) return null;
  const out = f32(n);
  if (sameShape(A.shape, B.shape)) native!.ndBinary(ND_BINARY[op], alpha, out, A.data, B.data, n, 1, 1, null, null);
  else if (B.numel === 1 && B.rank <= A.rank) native!.ndBinary(ND_BINARY[op], alpha, out, A.data, B.data, n, 1, 0, null, null);
  else if (A.numel === 1 && A.rank <= B.rank) native!.ndBinary(ND_BINARY[op], alpha, out, A.data, B.data, n, 0, 1, null, null);
  else {
    const r = shape.length;
    const inner = shape[r - 1]!;
    const sa = bstrides(A.shape, shape)[r - 1]!;
    const sb = bstrides(B.shape, shape)[r - 1]!;
    const aInner = A.rank > 0 ? A.shape[A.rank - 1]! : 1;
    const bInner = B.rank > 0 ? B.shape[B.rank - 1]! : 1;
    const rows = n / inner;
    const offA = new Uint32Array(rows);
    const offB = new Uint32Array(rows);
    if (rows > 1)
      broadcastMap(shape.slice(0, r - 1), [A.shape.slice(0, Math.max(0, A.rank - 1)), B.shape.slice(0, Math.max(0, B.rank - 1))], (o, offs) => {
        offA[o] = offs[0]! * aInner;
        offB[o] = offs[1]! * bInner;
      });
    native!.ndBinary(ND_BINARY[op], alpha, out, A.data, B.data, inner, sa, sb, offA, offB);
  }
  return new NDArray(out, shape);
}

/** A · s with s a JS number (a float64 product rounded to float32, as kernels.scale), or null. */
export function nativeScale(A: NDArray, s: number): NDArray | null {
  if (!useNative(A.numel)) return null;
  const out = f32(A.numel);
  native!.ndBinary(ND_SCALE, s, out, A.data, A.data, A.numel, 1, 0, null, null);
  return new NDArray(out, A.shape);
}

/** The 0/1 mask of nd.topkMask given its threshold (the k-th largest |x|) and k, or null. */
export function nativeTopkMask(A: NDArray, thr: number, k: number): NDArray | null {
  if (!useNative(A.numel)) return null;
  const out = f32(A.numel);
  native!.ndTopkMask(out, A.data, thr, k);
  return new NDArray(out, A.shape);
}

/** where(c, a, b) when every operand is a scalar or of the output's shape (else null). */
export function nativeWhere(C: NDArray, A: NDArray, B: NDArray, shape: readonly number[]): NDArray | null {
  const n = numelOf(shape);
  if (!useNative(n)) return null;
  const s = (x: NDArray): number => (x.numel === 1 && n !== 1 ? 0 : 1);
  const out = f32(n);
  native!.ndWhere(out, C.data, A.data, B.data, s(C), s(A), s(B));
  return new NDArray(out, shape);
}

export function nativeUnary(op: NativeUnary, A: NDArray, lo = 0, hi = 0): NDArray | null {
  if (!useNative(A.numel)) return null;
  const out = f32(A.numel);
  native!.ndUnary(ND_UNARY[op], out, A.data, lo, hi);
  return new NDArray(out, A.shape);
}

/**
 * A reduction over `groups` groups of `size` elements, contiguous (leading = false: group g is
 * [g·size, (g+1)·size)) or strided (leading = true: g, g + groups, …), into a new array of outShape.
 */
export function nativeReduce(kind: NativeReduce, A: NDArray, groups: number, size: number, leading: boolean, outShape: readonly number[]): NDArray | null {
  if (!useNative(A.numel)) return null;
  const out = f32(groups);
  native!.ndReduce(ND_REDUCE[kind], out, A.data, groups, size, leading ? 1 : 0);
  return new NDArray(out, outShape);
}

/**
 * The reduction over dim 0 of a stack whose copy was not made (NDArray.stacked): group g is
 * parts[0][g], parts[1][g], … — the order nativeReduce visits the copied stack in (leading
 * layout), so the result is the same, without the copy. null: no addon or short array.
 */
export function nativeReduceParts(kind: NativeReduce, parts: readonly Float32Array[], outShape: readonly number[]): NDArray | null {
  const groups = parts[0]!.length;
  if (!useNative(groups * parts.length)) return null;
  const out = f32(groups);
  native!.ndReduceParts(ND_REDUCE[kind], out, [...parts]);
  return new NDArray(out, outShape);
}

const CBLOCK = 1 << 16;
/**
 * 32-bit checksum of a float32 array's bits: FNV-1a in 8 interleaved lanes over each 65536-element
 * block, lanes and then block hashes combined in order by FNV-1a (native: blocks in parallel, lanes
 * in SIMD; the same value either way).
 */
export function checksum32(a: Float32Array): number {
  if (native && a.length >= CBLOCK) return native.ndChecksum(a);
  const u = new Uint32Array(a.buffer, a.byteOffset, a.length);
  let h = 0x811c9dc5;
  for (let b = 0; b < u.length; b += CBLOCK) {
    const lanes = new Array<number>(8).fill(0x811c9dc5);
    const end = Math.min(u.length, b + CBLOCK);
    for (let i = b; i < end; i++) lanes[i & 7] = Math.imul(lanes[i & 7]! ^ u[i]!, 16777619);
    let bh = 0x811c9dc5;
    for (const l of lanes) bh = Math.imul(bh ^ l, 16777619);
    h = Math.imul(h ^ bh, 16777619);
  }
  return h >>> 0;
}

/** Number of NaN / ±Inf values, and the first one's index (-1 when none). */
export function countNonFinite(x: Float32Array): { count: number; first: number } {
  if (useNative(x.length)) {
    const [count, first] = native!.ndNonFinite(x);
    return { count, first };
  }
  let count = 0;
  let first = -1;
  for (let i = 0; i < x.length; i++)
    if (!Number.isFinite(x[i]!)) {
      if (first < 0) first = i;
      count++;
    }
  return { count, first };
}

/** Number of 16-bit values (BF16 or F16 bytes) with an all-ones exponent: NaN or ±Inf. */
export function countOverflow16(bytes: Uint8Array, dtype: 'BF16' | 'F16'): number {
  const mask = dtype === 'BF16' ? 0x7f80 : 0x7c00;
  if (bytes.byteLength % 2 !== 0) throw new Error(`countOverflow16: odd byte length ${bytes.byteLength}`);
  if (native && useNative(bytes.byteLength / 2) && bytes.byteOffset % 2 === 0) return native.ndOverflow16(new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2), mask);
  let n = 0;
  for (let i = 1; i < bytes.length; i += 2) if ((((bytes[i]! << 8) | bytes[i - 1]!) & mask) === mask) n++;
  return n;
}

const aligned = (b: Uint8Array, dt: FloatDType): boolean => b.byteOffset % DTYPE_BYTES[dt] === 0;

/**
 * A task vector straight from stored bytes: out = decode(x) − decode(base) (float32 subtraction,
 * as kernels.sub after decodeToF32), and checksum32(out), natively in one pass over the bytes.
 * The JS path decodes, subtracts and hashes in separate passes (same values, same checksum).
 */
export function taskVectorInto(out: Float32Array, x: Uint8Array, xDt: FloatDType, base: Uint8Array, baseDt: FloatDType): number {
  const n = out.length;
  if (x.byteLength !== n * DTYPE_BYTES[xDt] || base.byteLength !== n * DTYPE_BYTES[baseDt])
    throw new Error(`taskVectorInto: ${x.byteLength} bytes of ${xDt} and ${base.byteLength} bytes of ${baseDt} for ${n} elements`);
  if (native && useNative(n) && aligned(x, xDt) && aligned(base, baseDt)) return native.ndTaskVector(out, x, NATIVE_DT[xDt], base, NATIVE_DT[baseDt]);
  const b = decodeToF32(base, baseDt);
  decodeToF32(x, xDt, out);
  sub(out, out, b);
  return checksum32(out);
}

/**
 * The merged tensor from the stored base bytes and a merge result r: out = encode(decode(base) + r)
 * in `outDt`, the sum rounded as kernels.axpy(base, 1, r) rounds it; natively in one pass. Returns
 * the number of encoded values with an all-ones exponent (NaN/±Inf, or beyond the range of a 16-bit
 * dtype) and the first one's index (-1 when none).
 */
export function addEncodeInto(out: Uint8Array, outDt: FloatDType, base: Uint8Array, baseDt: FloatDType, r: Float32Array): { count: number; first: number } {
  const n = r.length;
  if (out.byteLength !== n * DTYPE_BYTES[outDt] || base.byteLength !== n * DTYPE_BYTES[baseDt])
    throw new Error(`addEncodeInto: ${out.byteLength} bytes of ${outDt} and ${base.byteLength} bytes of ${baseDt} for ${n} elements`);
  if (native && useNative(n) && aligned(out, outDt) && aligned(base, baseDt)) {
    const [count, first] = native.ndAddEncode(out, NATIVE_DT[outDt], base, NATIVE_DT[baseDt], r);
    return { count, first };
  }
  const sum = decodeToF32(base, baseDt);
  axpy(sum, 1, r);
  if (outDt === 'F32') {
    encodeFromF32(sum, 'F32', out);
    return countNonFinite(sum);
  }
  encodeFromF32(sum, outDt, out);
  const mask = outDt === 'BF16' ? 0x7f80 : 0x7c00;
  let count = 0;
  let first = -1;
  for (let i = 0; i < n; i++)
    if ((((out[2 * i + 1]! << 8) | out[2 * i]!) & mask) === mask) {
      if (first < 0) first = i;
      count++;
    }
  return { count, first };
}
