/**
 * `nuslerp` (mergekit): slerp between exactly two models with t = w_2 / (w_1 + w_2)
 * (t = 0.5 when |w_1 + w_2| < 1e-6). With a base model it interpolates the task vectors:
 * B + slerp(t, W_1 − B, W_2 − B).
 * - `nuslerp_flatten` = true: one slerp over the whole flattened tensor.
 * - flatten = false: one slerp per vector along the last axis (each row of a matrix), or with
 *   `nuslerp_row_wise` = true along axis 0 (each column of a matrix).
 * Per vector: unit vectors use max(‖v‖, 1e-7); θ = acos(clamp(cos, −1, 1)); |sin θ| < 1e-8 → lerp
 * (1−t)·v0 + t·v1; else (sin((1−t)θ)·v0 + sin(tθ)·v1) / sin θ.
 */
import type { MergeMethod } from '../types.ts';
import { axisLayout, boolParam, checkInput, numParam, where } from './common.ts';

/** nuslerp of v0, v1 (same layout `shape`) into a new array; axis per the file comment. */
export function nuslerpVectors(
  t: number,
  v0: Float32Array,
  v1: Float32Array,
  shape: readonly number[],
  axis: 'flat' | 'last' | 'first',
): Float32Array {
  const out = new Float32Array(v0.length);
  const lay = axisLayout(shape, axis);
  const { length: len, stride } = lay;
  for (let v = 0; v < lay.count; v++) {
    const s = lay.start(v);
    let aa = 0;
    let bb = 0;
    let ab = 0;
    for (let j = 0, k = s; j < len; j++, k += stride) {
      const a = v0[k]!;
      const b = v1[k]!;
      aa += a * a;
      bb += b * b;
      ab += a * b;
    }
    const c = ab / (Math.max(Math.sqrt(aa), 1e-7) * Math.max(Math.sqrt(bb), 1e-7));
    const theta = Math.acos(Math.max(-1, Math.min(1, c)));
    const sin = Math.sin(theta);
    let c0: number;
    let c1: number;
    if (Math.abs(sin) < 1e-8) {
      c0 = 1 - t;
      c1 = t;
    } else {
      c0 = Math.sin((1 - t) * theta) / sin;
      c1 = Math.sin(t * theta) / sin;
    }
    for (let j = 0, k = s; j < len; j++, k += stride) out[k] = c0 * v0[k]! + c1 * v1[k]!;
  }
  return out;
}

export const nuslerp: MergeMethod = {
  name: 'nuslerp',
  summary: 'Slerp of two models (or of their task vectors with a base) with t = w2/(w1+w2); whole-tensor, per-row or per-column.',
  base: 'optional',
  minModels: 2,
  maxModels: 2,
  globalParams: [
    { name: 'nuslerp_flatten', type: 'boolean', default: true, description: 'one slerp over the flattened tensor' },
    { name: 'nuslerp_row_wise', type: 'boolean', default: false, description: 'with flatten=false: slerp columns (axis 0) instead of rows' },
  ],
  modelParams: [{ name: 'weight', type: 'number', required: true, description: 'relative weight; t = w2 / (w1 + w2)' }],
  merge(input) {
    checkInput('nuslerp', input, { base: 'optional', min: 2, max: 2 });
    const wh = where('nuslerp', input);
    const flatten = boolParam(input.params, 'nuslerp_flatten', true, wh);
    const rowWise = boolParam(input.params, 'nuslerp_row_wise', false, wh);
    const w1 = numParam(input.modelParams[0]!, 'weight', undefined, `${wh}, model 0`);
    const w2 = numParam(input.modelParams[1]!, 'weight', undefined, `${wh}, model 1`);
    const t = Math.abs(w1 + w2) < 1e-6 ? 0.5 : w2 / (w1 + w2);
    const axis = flatten ? 'flat' : rowWise ? 'first' : 'last';
    const base = input.base;
    let [a, b] = input.models as [Float32Array, Float32Array];
    if (base) {
      const da = new Float32Array(a.length);
      const db = new Float32Array(a.length);
      for (let i = 0; i < a.length; i++) {
        da[i] = a[i]! - base[i]!;
        db[i] = b[i]! - base[i]!;
      }
      a = da;
      b = db;
    }
    const out = nuslerpVectors(t, a, b, input.shape, axis);
    if (base) for (let i = 0; i < out.length; i++) out[i] = out[i]! + base[i]!;
    return out;
  },
};
