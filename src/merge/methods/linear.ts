/**
 * `linear` (mergekit): Σ_i w_i W_i, divided by Σ_i w_i when `normalize` (default true).
 * No base model (a base_model listed under `models` is just another input).
 * Deliberate deviation: mergekit has no zero guard, so weights summing to 0 with `normalize` give
 * inf/NaN tensors; we throw a clear error instead.
 */
import { axpy, scale } from '../../tensor/kernels.ts';
import type { MergeMethod } from '../types.ts';
import { boolParam, checkInput, numParam, where } from './common.ts';

export const linear: MergeMethod = {
  name: 'linear',
  summary: 'Weighted average Σ w_i W_i (÷ Σ w_i when normalize).',
  base: 'none',
  minModels: 1,
  globalParams: [{ name: 'normalize', type: 'boolean', default: true, description: 'divide by the sum of the weights' }],
  modelParams: [{ name: 'weight', type: 'number', required: true, description: 'weight of this model' }],
  merge(input) {
    const n = checkInput('linear', input, { base: 'none', min: 1 });
    const wh = where('linear', input);
    const normalize = boolParam(input.params, 'normalize', true, wh);
    const weights = input.modelParams.map((p, i) => numParam(p, 'weight', undefined, `${wh}, model ${i}`));
    const sum = weights.reduce((a, b) => a + b, 0);
    if (normalize && sum === 0) throw new Error(`${wh}: the weights sum to 0 with normalize: true (division by zero)`);
    const out = new Float32Array(n);
    weights.forEach((w, i) => axpy(out, w, input.models[i]!));
    if (normalize && sum !== 1) scale(out, 1 / sum);
    return out;
  },
};
