/**
 * `ram` (mergekit; Reinforced Agent Merging): task vectors δ_i = W_i − B; model i is active at an
 * entry when |δ_i| > ε (`epsilon`, default 1e-5). Per entry: one active model → its δ; several →
 * the mean of the active δ; none → 0. Result B + that.
 * Also exports the shared core used by `ramplus_tl`.
 */
import type { MergeMethod } from '../types.ts';
import { checkInput, numParam, where } from './common.ts';

/**
 * RAM core: returns B + merged delta. `uniqueScale[i]` multiplies model i's entries where it is the
 * only active model (1 for plain RAM). kernel candidate (fused count + masked mean).
 */
export function ramCombine(base: Float32Array, deltas: Float32Array[], epsilon: number, uniqueScale: number[]): Float32Array {
  const n = base.length;
  const out = new Float32Array(n);
  for (let j = 0; j < n; j++) {
    let count = 0;
    let sum = 0;
    let last = -1;
    for (let k = 0; k < deltas.length; k++) {
      const v = deltas[k]![j]!;
      if (Math.abs(v) > epsilon) {
        count++;
        sum += v;
        last = k;
      }
    }
    let d = 0;
    if (count === 1) d = deltas[last]![j]! * uniqueScale[last]!;
    else if (count > 1) d = sum / count;
    out[j] = base[j]! + d;
  }
  return out;
}

/** δ_i = W_i − B for every model. */
export function taskVectors(base: Float32Array, models: Float32Array[]): Float32Array[] {
  return models.map((m) => {
    const d = new Float32Array(base.length);
    for (let i = 0; i < d.length; i++) d[i] = m[i]! - base[i]!;
    return d;
  });
}

export const ram: MergeMethod = {
  name: 'ram',
  summary: 'RAM: per entry, the mean of the task vectors that are active (|δ| > epsilon); a lone active one is kept whole.',
  base: 'required',
  minModels: 1,
  globalParams: [{ name: 'epsilon', type: 'number', default: 1e-5, range: { min: 0 }, description: 'activity threshold on |δ|' }],
  modelParams: [],
  merge(input) {
    checkInput('ram', input, { base: 'required', min: 1 });
    const eps = numParam(input.params, 'epsilon', 1e-5, where('ram', input));
    const deltas = taskVectors(input.base!, input.models);
    return ramCombine(input.base!, deltas, eps, deltas.map(() => 1));
  },
};
