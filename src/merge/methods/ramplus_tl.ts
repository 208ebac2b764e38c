/**
 * `ramplus_tl` (mergekit; RAM+ tensor-local): like `ram`, but model i's UNIQUE entries (it is the
 * only active model) are multiplied by λ_i = 1 + r·clip(ρ_i, 0, α), where
 * ρ_i = (#entries where i is active and shared with another model) / max(#entries where i alone is
 * active, ε). Shared entries are averaged as in `ram`.
 */
import type { MergeMethod } from '../types.ts';
import { checkInput, numParam, where } from './common.ts';
import { ramCombine, taskVectors } from './ram.ts';

export const ramplusTl: MergeMethod = {
  name: 'ramplus_tl',
  summary: 'RAM+ (tensor-local): RAM with each model’s unique entries boosted by 1 + r·clip(shared/unique, 0, alpha).',
  base: 'required',
  minModels: 1,
  globalParams: [
    { name: 'r', type: 'number', default: 0.1, description: 'boost strength' },
    { name: 'alpha', type: 'number', default: 0.2, description: 'cap on the shared/unique ratio' },
    { name: 'epsilon', type: 'number', default: 1e-5, range: { min: 0 }, description: 'activity threshold on |δ|' },
  ],
  modelParams: [],
  merge(input) {
    const n = checkInput('ramplus_tl', input, { base: 'required', min: 1 });
    const wh = where('ramplus_tl', input);
    const r = numParam(input.params, 'r', 0.1, wh);
    const alpha = numParam(input.params, 'alpha', 0.2, wh);
    const eps = numParam(input.params, 'epsilon', 1e-5, wh);
    const deltas = taskVectors(input.base!, input.models);
    const shared = new Array<number>(deltas.length).fill(0);
    const unique = new Array<number>(deltas.length).fill(0);
    for (let j = 0; j < n; j++) {
      let count = 0;
      for (const d of deltas) if (Math.abs(d[j]!) > eps) count++;
      if (count === 0) continue;
      deltas.forEach((d, k) => {
        if (Math.abs(d[j]!) > eps) {
          if (count === 1) unique[k]!++;
          else shared[k]!++;
        }
      });
    }
    const scales = deltas.map((_, k) => {
      const rho = shared[k]! / Math.max(unique[k]!, eps);
      return 1 + r * Math.min(alpha, Math.max(0, rho));
    });
    return ramCombine(input.base!, deltas, eps, scales);
  },
};
