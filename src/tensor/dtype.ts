/**
 * safetensors dtypes and conversion to/from float32 (the compute type of merging).
 * f32 -> bf16/f16 rounds to nearest, ties to even; NaN becomes a quiet NaN (PyTorch's choice).
 * `decodeToF32` / `encodeFromF32` use the native addon (SIMD, threads; see ./native.ts) for long
 * BF16/F16 arrays and a plain copy for F32; results are bit-identical to the `...Reference`
 * versions except NaN payloads (always a NaN, sign kept by encoders).
 */
import { native, NATIVE_DT } from './native.ts';

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
/** Arrays at least this long use the addon when it is loaded. */
const NATIVE_MIN = 1024;

export const DTYPE_BYTES = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
} as const;

export type DType = keyof typeof DTYPE_BYTES;
/** The dtypes merging computes on and writes. */
export type FloatDType = 'F32' | 'F16' | 'BF16';

export function isDType(s: string): s is DType {
  return Object.prototype.hasOwnProperty.call(DTYPE_BYTES, s);
}
export function isFloatDType(s: string): s is FloatDType {
  return s === 'F32' || s === 'F16' || s === 'BF16';
}

/** mergekit / PyTorch dtype names (float32, bfloat16, ...) to safetensors names. */
export function parseDTypeName(name: string): FloatDType {
  const n = name.toLowerCase();
  if (n === 'float32' || n === 'fp32' || n === 'f32') return 'F32';
  if (n === 'bfloat16' || n === 'bf16') return 'BF16';
  if (n === 'float16' || n === 'fp16' || n === 'f16' || n === 'half') return 'F16';
  throw new Error(`unsupported dtype '${name}' (use float32, bfloat16 or float16)`);
}
export function torchDTypeName(d: FloatDType): string {
  return d === 'F32' ? 'float32' : d === 'BF16' ? 'bfloat16' : 'float16';
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function bf16BitsToF32(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0]!;
}
export function f32ToBf16Bits(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) & 0x8000) | 0x7fc0;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

export function f16BitsToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}
export function f32ToF16Bits(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  const man = u & 0x7fffff;
  if (exp === 0xff) return man ? sign | 0x7e00 : sign | 0x7c00;
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal (2^-25 and less) -> ±0
    const full = man | 0x800000; // 24-bit significand
    const shift = 14 - e; // bits to drop so the result is in units of 2^-24
    const half = 1 << (shift - 1);
    let r = full >>> shift;
    const rest = full & ((1 << shift) - 1);
    if (rest > half || (rest === half && (r & 1))) r++;
    return sign | r;
  }
  let r = (e << 10) | (man >>> 13);
  const rest = man & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (r & 1))) r++; // may carry into the exponent: correct
  return sign | r;
}

/** Decodes little-endian raw tensor bytes of a float dtype into float32. */
export function decodeToF32(bytes: Uint8Array, dtype: DType, out?: Float32Array): Float32Array {
  const size = DTYPE_BYTES[dtype];
  if (bytes.byteLength % size !== 0) throw new Error(`${bytes.byteLength} bytes is not a whole number of ${dtype} values`);
  const n = bytes.byteLength / size;
  if (LITTLE_ENDIAN && (dtype === 'F32' || dtype === 'BF16' || dtype === 'F16') && bytes.byteOffset % size === 0) {
    const res = out ?? new Float32Array(n);
    if (res.length !== n) throw new Error(`decode: output has ${res.length} elements, expected ${n}`);
    if (dtype === 'F32') {
      res.set(new Float32Array(bytes.buffer, bytes.byteOffset, n));
      return res;
    }
    if (native && n >= NATIVE_MIN) {
      native.decode(NATIVE_DT[dtype], bytes, res);
      return res;
    }
  }
  return decodeToF32Reference(bytes, dtype, out);
}

/** Plain-JS `decodeToF32` (the reference semantics). */
export function decodeToF32Reference(bytes: Uint8Array, dtype: DType, out?: Float32Array): Float32Array {
  const size = DTYPE_BYTES[dtype];
  if (bytes.byteLength % size !== 0) throw new Error(`${bytes.byteLength} bytes is not a whole number of ${dtype} values`);
  const n = bytes.byteLength / size;
  const res = out ?? new Float32Array(n);
  if (res.length !== n) throw new Error(`decode: output has ${res.length} elements, expected ${n}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < n; i++) res[i] = dv.getFloat32(i * 4, true);
      break;
    case 'BF16':
      for (let i = 0; i < n; i++) res[i] = bf16BitsToF32(dv.getUint16(i * 2, true));
      break;
    case 'F16':
      for (let i = 0; i < n; i++) res[i] = f16BitsToF32(dv.getUint16(i * 2, true));
      break;
    case 'F64':
      for (let i = 0; i < n; i++) res[i] = dv.getFloat64(i * 8, true);
      break;
    default:
      throw new Error(`cannot compute on dtype ${dtype} (only F32, F16, BF16 and F64 are float types)`);
  }
  return res;
}

/** Encodes float32 values as little-endian bytes of a float dtype (round to nearest even). */
export function encodeFromF32(x: Float32Array, dtype: FloatDType, out?: Uint8Array): Uint8Array {
  const size = DTYPE_BYTES[dtype];
  if (LITTLE_ENDIAN && (out === undefined || out.byteOffset % size === 0)) {
    const res = out ?? new Uint8Array(x.length * size);
    if (res.byteLength !== x.length * size) throw new Error(`encode: output has ${res.byteLength} bytes, expected ${x.length * size}`);
    if (dtype === 'F32') {
      res.set(new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
      return res;
    }
    if (native && x.length >= NATIVE_MIN) {
      native.encode(NATIVE_DT[dtype], x, res);
      return res;
    }
  }
  return encodeFromF32Reference(x, dtype, out);
}

/** Plain-JS `encodeFromF32` (the reference semantics). */
export function encodeFromF32Reference(x: Float32Array, dtype: FloatDType, out?: Uint8Array): Uint8Array {
  const size = DTYPE_BYTES[dtype];
  const res = out ?? new Uint8Array(x.length * size);
  if (res.byteLength !== x.length * size) throw new Error(`encode: output has ${res.byteLength} bytes, expected ${x.length * size}`);
  const dv = new DataView(res.buffer, res.byteOffset, res.byteLength);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < x.length; i++) dv.setFloat32(i * 4, x[i]!, true);
      break;
    case 'BF16':
      for (let i = 0; i < x.length; i++) dv.setUint16(i * 2, f32ToBf16Bits(x[i]!), true);
      break;
    case 'F16':
      for (let i = 0; i < x.length; i++) dv.setUint16(i * 2, f32ToF16Bits(x[i]!), true);
      break;
  }
  return res;
}
