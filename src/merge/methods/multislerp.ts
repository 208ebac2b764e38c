/**
 * `multislerp` (mergekit): weighted spherical barycentre of any number of models (or of their task
 * vectors when a base is given), over the flattened tensors:
 * weights normalised to sum 1 (if `normalize_weights`); u_i = x_i / (‖x_i‖ + eps);
 * m = Σ w_i u_i, error if ‖m‖ < eps (with exactly two models: fall back to Σ w_i x_i);
 * m̂ = m/‖m‖; tangent T = Σ w_i (u_i − (u_i·m̂) m̂); result = (m̂ cos‖T‖' + T sin‖T‖'/‖T‖') · Σ w_i ‖x_i‖
 * with ‖T‖' = ‖T‖ + eps; + B when a base is given. One model → returned unchanged.
 * (As in mergekit, T is the tangent projection of m itself, so it is ≈ 0 and the result is the
 * normalised weighted mean direction times the weighted mean norm.)
 */
import { dot } from '../../tensor/kernels.ts';
import type { MergeMethod } from '../types.ts';
import { boolParam, checkInput, numParam, where } from './common.ts';

export const multislerp: MergeMethod = {
  name: 'multislerp',
  summary: 'Weighted spherical barycentre of several models (task vectors with a base), times the weighted mean norm.',
  base: 'optional',
  minModels: 1,
  globalParams: [
    { name: 'normalize_weights', type: 'boolean', default: true, description: 'scale the weights to sum to 1' },
    { name: 'eps', type: 'number', default: 1e-8, description: 'numerical-stability constant' },
  ],
  modelParams: [{ name: 'weight', type: 'number', required: true, description: 'barycentric weight' }],
  merge(input) {
    const n = checkInput('multislerp', input, { base: 'optional', min: 1 });
    const wh = where('multislerp', input);
    const normalizeWeights = boolParam(input.params, 'normalize_weights', true, wh);
    const eps = numParam(input.params, 'eps', 1e-8, wh);
    let weights = input.modelParams.map((p, i) => numParam(p, 'weight', undefined, `${wh}, model ${i}`));
    if (input.models.length === 1) return input.models[0]!.slice();
    if (normalizeWeights) {
      const s = weights.reduce((a, b) => a + b, 0);
      if (s === 0) throw new Error(`${wh}: the weights sum to 0 and cannot be normalised`);
      weights = weights.map((w) => w / s);
    }
    const base = input.base;
    const xs = input.models.map((m) => {
      if (!base) return m;
      const d = new Float32Array(n);
      for (let i = 0; i < n; i++) d[i] = m[i]! - base[i]!;
      return d;
    });
    const norms = xs.map((x) => Math.sqrt(dot(x, x)));
    const mean = new Float64Array(n);
    xs.forEach((x, k) => {
      const c = weights[k]! / (norms[k]! + eps);
      for (let i = 0; i < n; i++) mean[i] = mean[i]! + c * x[i]!;
    });
    let mn = 0;
    for (let i = 0; i < n; i++) mn += mean[i]! * mean[i]!;
    mn = Math.sqrt(mn);
    const out = new Float32Array(n);
    if (mn < eps) {
      if (xs.length === 2) {
        for (let i = 0; i < n; i++) out[i] = weights[0]! * xs[0]![i]! + weights[1]! * xs[1]![i]! + (base ? base[i]! : 0);
        return out;
      }
      throw new Error(`${wh}: the weighted sum of the unit tensors is zero (antipodal inputs with balancing weights); use different weights`);
    }
    for (let i = 0; i < n; i++) mean[i] = mean[i]! / mn;
    // tangent-space average T = Σ w_k (u_k − (u_k·m̂) m̂)
    const tangent = new Float64Array(n);
    xs.forEach((x, k) => {
      const inv = 1 / (norms[k]! + eps);
      let d = 0;
      for (let i = 0; i < n; i++) d += x[i]! * inv * mean[i]!;
      const w = weights[k]!;
      for (let i = 0; i < n; i++) tangent[i] = tangent[i]! + w * (x[i]! * inv - d * mean[i]!);
    });
    let tn = 0;
    for (let i = 0; i < n; i++) tn += tangent[i]! * tangent[i]!;
    tn = Math.sqrt(tn) + eps;
    const avgNorm = norms.reduce((a, nk, k) => a + nk * weights[k]!, 0);
    const cm = Math.cos(tn) * avgNorm;
    const ct = (Math.sin(tn) / tn) * avgNorm;
    for (let i = 0; i < n; i++) out[i] = mean[i]! * cm + tangent[i]! * ct + (base ? base[i]! : 0);
    return out;
  },
};
