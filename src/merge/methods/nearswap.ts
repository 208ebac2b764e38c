/**
 * `nearswap` (mergekit): per entry w = clamp(t / max(|B − W|, 1e-6), 0, 1), result w·W + (1 − w)·B:
 * entries where the two models are within t of each other take the other model's value, distant
 * ones stay near the base. Needs the base and exactly one other model; t must be > 0 (as mergekit).
 */
import type { MergeMethod } from '../types.ts';
import { checkInput, numParam, where } from './common.ts';

export const nearswap: MergeMethod = {
  name: 'nearswap',
  summary: 'Per entry, move from the base toward the other model by clamp(t/|B−W|, 0, 1).',
  base: 'required',
  minModels: 1,
  maxModels: 1,
  globalParams: [{ name: 't', type: 'number', required: true, range: { min: 0, minExclusive: true }, description: 'sameness threshold (> 0)' }],
  modelParams: [],
  merge(input) {
    const n = checkInput('nearswap', input, { base: 'required', min: 1, max: 1 });
    const wh = where('nearswap', input);
    const t = numParam(input.params, 't', undefined, wh);
    if (!(t > 0)) throw new Error(`${wh}: t must be > 0, got ${t}`);
    const b = input.base!;
    const m = input.models[0]!;
    const out = new Float32Array(n);
    // kernel candidate (elementwise)
    for (let i = 0; i < n; i++) {
      const d = Math.abs(b[i]! - m[i]!);
      const w = Math.min(1, Math.max(0, t / Math.max(d, 1e-6)));
      out[i] = w * m[i]! + (1 - w) * b[i]!;
    }
    return out;
  },
};
