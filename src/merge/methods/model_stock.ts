/**
 * `model_stock` (mergekit; Model Stock, arXiv 2403.19522): with offsets d_i = W_i − B, c̄ = mean
 * pairwise cosine of the d_i (cos = d_i·d_j / max(‖d_i‖‖d_j‖, 1e-6), clamped to [−1, 1]),
 * t = N c̄ / (1 + (N − 1) c̄), result t·mean_i W_i + (1 − t)·B. Needs the base and ≥ 2 other models.
 * `filter_wise` = true computes t per vector along the last axis (each row of a matrix; a vector
 * is one row) instead of once over the flattened tensor.
 */
import { dot, sub } from '../../tensor/kernels.ts';
import type { MergeMethod } from '../types.ts';
import { axisLayout, boolParam, checkInput, where } from './common.ts';

export const modelStock: MergeMethod = {
  name: 'model_stock',
  summary: 'Model Stock: interpolate the average of ≥2 fine-tunes toward the base by their mean pairwise cosine.',
  base: 'required',
  minModels: 2,
  globalParams: [{ name: 'filter_wise', type: 'boolean', default: false, description: 'one ratio per row instead of per tensor' }],
  modelParams: [],
  merge(input) {
    const n = checkInput('model_stock', input, { base: 'required', min: 2 });
    const filterWise = boolParam(input.params, 'filter_wise', false, where('model_stock', input));
    const base = input.base!;
    const N = input.models.length;
    const offsets = input.models.map((m) => {
      const d = new Float32Array(n);
      sub(d, m, base);
      return d;
    });
    const lay = axisLayout(input.shape, filterWise ? 'last' : 'flat');
    const out = new Float32Array(n);
    for (let v = 0; v < lay.count; v++) {
      const s = lay.start(v);
      const e = s + lay.length;
      const views = offsets.map((d) => d.subarray(s, e));
      const norms = views.map((d) => Math.sqrt(dot(d, d)));
      let sum = 0;
      let pairs = 0;
      for (let i = 0; i < N; i++)
        for (let j = i + 1; j < N; j++) {
          const c = dot(views[i]!, views[j]!) / Math.max(norms[i]! * norms[j]!, 1e-6);
          sum += Math.max(-1, Math.min(1, c));
          pairs++;
        }
      const cos = sum / pairs;
      const t = (N * cos) / (1 + (N - 1) * cos);
      for (let k = s; k < e; k++) {
        let avg = 0;
        for (let i = 0; i < N; i++) avg += input.models[i]![k]!;
        out[k] = (t * avg) / N + (1 - t) * base[k]!;
      }
    }
    return out;
  },
};
