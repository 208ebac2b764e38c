/**
 * Small helpers shared by the merge methods: parameter readers, input checks, seed derivation,
 * vector layout along an axis, and a selection routine for quantiles.
 */
import type { MergeTensorInput, ParamValue } from '../types.ts';

/** Number of elements of a shape (a scalar shape [] has one element). */
export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Reads a number parameter; `fallback` when absent; throws naming the tensor when required. */
export function numParam(
  rec: Record<string, ParamValue>,
  name: string,
  fallback: number | undefined,
  where: string,
): number {
  const v = rec[name];
  if (v === undefined) {
    if (fallback === undefined) throw new Error(`${where}: parameter '${name}' is required`);
    return fallback;
  }
  if (typeof v !== 'number' || Number.isNaN(v)) throw new Error(`${where}: parameter '${name}' must be a number, got ${String(v)}`);
  return v;
}

/** Reads a boolean parameter (0/1 accepted); `fallback` when absent. */
export function boolParam(rec: Record<string, ParamValue>, name: string, fallback: boolean, where: string): boolean {
  const v = rec[name];
  if (v === undefined) return fallback;
  if (typeof v === 'boolean') return v;
  if (v === 0 || v === 1) return v === 1;
  throw new Error(`${where}: parameter '${name}' must be true or false, got ${String(v)}`);
}

/** `method (tensor name)` for error messages. */
export function where(method: string, input: MergeTensorInput): string {
  return `${method}: tensor ${input.name}`;
}

/**
 * Checks lengths of base and models against the shape and the model count bounds.
 * Returns numel.
 */
export function checkInput(
  method: string,
  input: MergeTensorInput,
  opts: { base: 'required' | 'optional' | 'none'; min?: number; max?: number },
): number {
  const w = where(method, input);
  const n = numelOf(input.shape);
  const count = input.models.length;
  if (opts.min !== undefined && opts.max !== undefined && opts.min === opts.max && count !== opts.min)
    throw new Error(`${w}: needs exactly ${opts.min} model(s) besides the base, got ${count}`);
  if (opts.min !== undefined && count < opts.min) throw new Error(`${w}: needs at least ${opts.min} model(s) besides the base, got ${count}`);
  if (opts.max !== undefined && count > opts.max) throw new Error(`${w}: takes at most ${opts.max} model(s) besides the base, got ${count}`);
  if (opts.base === 'required' && !input.base) throw new Error(`${w}: needs a base model tensor`);
  if (input.base && input.base.length !== n)
    throw new Error(`${w}: base tensor has ${input.base.length} elements but shape [${input.shape.join(', ')}] has ${n}`);
  input.models.forEach((m, i) => {
    if (m.length !== n) throw new Error(`${w}: model ${i} has ${m.length} elements but shape [${input.shape.join(', ')}] has ${n} (shape mismatch)`);
  });
  if (input.modelParams.length !== count)
    throw new Error(`${w}: got ${input.modelParams.length} per-model parameter sets for ${count} models`);
  return n;
}

/**
 * A 32-bit sub-seed for model `index` of a tensor whose seed is `seed` (murmur3 finaliser over
 * the pair), so every model draws an independent stream whatever the thread count or order.
 */
export function subSeed(seed: number, index: number): number {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b9)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * Vectors along one axis of a row-major tensor: `count` vectors of `length` entries, vector v's
 * entry j at flat index `start(v) + j * stride`.
 * - 'last': along the last axis (PyTorch `dim=-1`): contiguous chunks of shape[last].
 * - 'first': along axis 0 (PyTorch `transpose(0, -1)` then `dim=-1`): for a matrix, its columns.
 * - 'flat': the whole flattened tensor as one vector.
 */
export interface AxisLayout {
  count: number;
  length: number;
  stride: number;
  start(v: number): number;
}

export function axisLayout(shape: readonly number[], axis: 'last' | 'first' | 'flat'): AxisLayout {
  const n = numelOf(shape);
  if (axis === 'flat' || shape.length <= 1) return { count: 1, length: n, stride: 1, start: () => 0 };
  if (axis === 'last') {
    const len = shape[shape.length - 1]!;
    return { count: len === 0 ? 0 : n / len, length: len, stride: 1, start: (v) => v * len };
  }
  const len = shape[0]!;
  const stride = len === 0 ? 0 : n / len;
  return { count: stride, length: len, stride, start: (v) => v };
}

/** Rows in the brief's sense: shape[0] rows of numel/shape[0] entries (a vector is one row). */
export function rowsOf(shape: readonly number[]): { rows: number; rowLen: number } {
  const n = numelOf(shape);
  if (shape.length <= 1) return { rows: 1, rowLen: n };
  const rows = shape[0]!;
  return { rows, rowLen: rows === 0 ? 0 : n / rows };
}

/** Selection without |x| (used for quantiles); lives with the other kernels. */
export { kthSmallestInPlace } from '../../tensor/kernels.ts';
