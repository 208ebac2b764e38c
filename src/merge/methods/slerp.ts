/**
 * `slerp` (mergekit): spherical interpolation between the base (v0, t = 0) and the one other model
 * (v1, t = 1), over the whole flattened tensor, in float32 storage / float64 arithmetic.
 * θ is the angle between v0/‖v0‖ and v1/‖v1‖ (a vector is normalised only if its norm > 1e-8);
 * if |cos θ| > 0.9995 it falls back to lerp (1−t)·v0 + t·v1; otherwise
 * sin((1−t)θ)/sin θ · v0 + sin(tθ)/sin θ · v1 — the coefficients apply to the UNnormalised tensors.
 */
import { dot } from '../../tensor/kernels.ts';
import type { MergeMethod } from '../types.ts';
import { checkInput, numParam, where } from './common.ts';

/** Returns the (s0, s1) coefficients of slerp(t, v0, v1) (mergekit's rules, see file comment). */
export function slerpCoefficients(t: number, v0: Float32Array, v1: Float32Array): [number, number] {
  const n0 = Math.sqrt(dot(v0, v0));
  const n1 = Math.sqrt(dot(v1, v1));
  let c = dot(v0, v1) / ((n0 > 1e-8 ? n0 : 1) * (n1 > 1e-8 ? n1 : 1));
  if (Math.abs(c) > 0.9995) return [1 - t, t];
  c = Math.max(-1, Math.min(1, c));
  const theta = Math.acos(c);
  const s = Math.sin(theta);
  return [Math.sin(theta - theta * t) / s, Math.sin(theta * t) / s];
}

/** slerp(t, v0, v1) as a new array. */
export function slerpVectors(t: number, v0: Float32Array, v1: Float32Array): Float32Array {
  if (v0.length !== v1.length) throw new Error(`slerp: length mismatch ${v0.length} vs ${v1.length}`);
  const [s0, s1] = slerpCoefficients(t, v0, v1);
  const out = new Float32Array(v0.length);
  for (let i = 0; i < out.length; i++) out[i] = s0 * v0[i]! + s1 * v1[i]!;
  return out;
}

export const slerp: MergeMethod = {
  name: 'slerp',
  summary: 'Spherical interpolation from the base (t=0) to the other model (t=1).',
  base: 'required',
  minModels: 1,
  maxModels: 1,
  globalParams: [{ name: 't', type: 'number', required: true, description: 'interpolation factor: 0 = base, 1 = other model' }],
  modelParams: [],
  merge(input) {
    checkInput('slerp', input, { base: 'required', min: 1, max: 1 });
    const t = numParam(input.params, 't', undefined, where('slerp', input));
    return slerpVectors(t, input.base!, input.models[0]!);
  },
};
