/**
 * Loader for the optional native kernels addon (native/*.cc, built by `npm install` through
 * scripts/build-native.mjs into build/Release/selfdev_native.node). `native` is null when the file
 * is missing or fails to load, or when SELFDEV_NO_NATIVE=1; kernels.ts and dtype.ts then use their
 * JS implementations. Nothing outside src/tensor should import this module.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

/** dtype codes understood by the addon */
export const NATIVE_DT = { F32: 0, BF16: 1, F16: 2 } as const;

/** Raw addon surface (argument checks live in kernels.ts / dtype.ts). */
export interface NativeKernels {
  setThreads(n: number): number;
  /** Negative arguments leave a setting unchanged. spawnPerCall: 1 = fresh threads per call instead of the pool (benchmark only). */
  config(parMin: number, useAvx2: number, spawnPerCall: number): { avx2Available: boolean; avx2: boolean; threads: number; parallelMin: number; spawnPerCall: boolean };
  decode(dt: number, bytes: Uint8Array, out: Float32Array): void;
  encode(dt: number, x: Float32Array, out: Uint8Array): void;
  axpy(y: Float32Array, a: number, x: Float32Array): void;
  scale(x: Float32Array, a: number): void;
  sub(out: Float32Array, a: Float32Array, b: Float32Array): void;
  deltaAxpy(acc: Float32Array, w: number, x: Float32Array, base: Float32Array): void;
  /** kind: 0 l1, 1 l2sq, 2 dot, 3 absMax */
  reduce(kind: number, a: Float32Array, b: Float32Array | null): number;
  bernoulli(x: Float32Array, c: number, seed: number, wantL1: number): [number, number] | undefined;
  topk(x: Float32Array, k: number): void;
  kthAbs(x: Float32Array, k: number): number;
  /** op: see ND_BINARY in nd-native.ts; out is rows × inner, row r reads a at offA[r] (stride sa), b at offB[r] (stride sb) */
  ndBinary(op: number, alpha: number, out: Float32Array, a: Float32Array, b: Float32Array, inner: number, sa: number, sb: number, offA: Uint32Array | null, offB: Uint32Array | null): void;
  ndWhere(out: Float32Array, c: Float32Array, a: Float32Array, b: Float32Array, sc: number, sa: number, sb: number): void;
  ndUnary(op: number, out: Float32Array, x: Float32Array, lo: number, hi: number): void;
  /** kind: 0 sum, 1 sum of squares, 2 mean, 3 2-norm, 4 amax, 5 amin; leading: 0 contiguous groups, 1 strided */
  ndReduce(kind: number, out: Float32Array, x: Float32Array, groups: number, size: number, leading: number): void;
  /** the leading-layout reduction of the stack of `parts` (each of out's length), without copying them */
  ndReduceParts(kind: number, out: Float32Array, parts: Float32Array[]): void;
  ndChecksum(x: Float32Array): number;
  ndNonFinite(x: Float32Array): [number, number];
  ndOverflow16(x: Uint16Array, mask: number): number;
  ndTopkMask(out: Float32Array, x: Float32Array, thr: number, k: number): void;
  /** out = decode(x) − decode(base) (dtype codes NATIVE_DT), returns checksum32(out) */
  ndTaskVector(out: Float32Array, x: Uint8Array, xDt: number, base: Uint8Array, baseDt: number): number;
  /** out = encode(decode(base) + r) in outDt; returns [values with an all-ones exponent, first index or -1] */
  ndAddEncode(out: Uint8Array, outDt: number, base: Uint8Array, baseDt: number, r: Float32Array): [number, number];
  gta(
    out: Uint8Array | Float32Array, outDt: number,
    base: Uint8Array | Float32Array | null, baseDt: number,
    models: Array<Uint8Array | Float32Array>, modelDts: number[], weights: number[],
    sparsify: number, k: number, c: number, seeds: number[],
    consensus: number, normalize: number, rescale: number, lambda: number,
  ): void;
}

function load(): NativeKernels | null {
  if (process.env.SELFDEV_NO_NATIVE === '1') return null;
  const here = dirname(fileURLToPath(import.meta.url));
  const file = join(here, '..', '..', 'build', 'Release', 'selfdev_native.node');
  if (!existsSync(file)) return null;
  try {
    const require = createRequire(import.meta.url);
    return require(file) as NativeKernels;
  } catch (e) {
    process.emitWarning(`selfdev: native kernels at ${file} failed to load (${(e as Error).message}); using JS kernels`);
    return null;
  }
}

/** The loaded addon, or null (JS kernels only). */
export const native: NativeKernels | null = load();

/** True when the native addon is loaded (kernels may run natively). */
export function nativeAvailable(): boolean {
  return native !== null;
}
