/**
 * `sce` (mergekit; Select-Calculate-Erase, FuseChat 2.0): task vectors δ_i = W_i − B;
 * Select: if `select_topk` < 1, keep only the k = ⌊select_topk · #(entries with nonzero variance)⌋
 * entries of largest variance across models (population variance; ties: lower index first),
 * k = 0 → all zero; Calculate: c_i = mean(δ_i²) / Σ_j mean(δ_j²) (equal 1/N if that sum is 0);
 * Erase: sign election by "sum" on the unweighted δ_i (m_i = [sign δ_i = sign Σ δ]), zero never
 * selected; result B + Σ c_i m_i δ_i / D with D = Σ c_i m_i per entry (D = 0 → 1). No per-model weight.
 */
import { topkMagnitudeInPlace } from '../../tensor/kernels.ts';
import type { MergeMethod } from '../types.ts';
import { checkInput, numParam, where } from './common.ts';

export const sce: MergeMethod = {
  name: 'sce',
  summary: 'SCE: variance top-k selection, mean-square coefficients, sign-consensus erase.',
  base: 'required',
  minModels: 1,
  globalParams: [
    { name: 'select_topk', type: 'number', default: 1, range: { min: 0, max: 1, minExclusive: true }, description: 'fraction of the highest-variance entries kept' },
    { name: 'int8_mask', type: 'boolean', default: false, description: 'mergekit memory option; no effect here' },
  ],
  modelParams: [],
  merge(input) {
    const n = checkInput('sce', input, { base: 'required', min: 1 });
    const wh = where('sce', input);
    const topk = numParam(input.params, 'select_topk', 1, wh);
    if (!Number.isFinite(topk)) throw new Error(`${wh}: select_topk must be finite, got ${topk}`);
    const base = input.base!;
    const N = input.models.length;
    const deltas = input.models.map((m) => {
      const d = new Float32Array(n);
      for (let i = 0; i < n; i++) d[i] = m[i]! - base[i]!;
      return d;
    });
    if (topk < 1) {
      // population variance across models per entry — kernel candidate
      const variance = new Float32Array(n);
      let nonzero = 0;
      for (let i = 0; i < n; i++) {
        let mean = 0;
        for (let k = 0; k < N; k++) mean += deltas[k]![i]!;
        mean /= N;
        let v = 0;
        for (let k = 0; k < N; k++) {
          const e = deltas[k]![i]! - mean;
          v += e * e;
        }
        variance[i] = v / N;
        if (variance[i] !== 0) nonzero++;
      }
      const k = Math.floor(Math.abs(topk) * nonzero);
      topkMagnitudeInPlace(variance, k);
      for (const d of deltas) for (let i = 0; i < n; i++) if (variance[i] === 0) d[i] = 0;
    }
    let coef = deltas.map((d) => {
      let s = 0;
      for (let i = 0; i < n; i++) s += d[i]! * d[i]!;
      return n === 0 ? 0 : s / n;
    });
    const total = coef.reduce((a, b) => a + b, 0);
    coef = total === 0 ? coef.map(() => 1 / N) : coef.map((c) => c / total);
    // sign election on the unweighted deltas, masked coefficient-weighted mean — kernel candidate
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      let vote = 0;
      for (let k = 0; k < N; k++) vote += deltas[k]![i]!;
      const positive = vote >= 0;
      let mixed = 0;
      let div = 0;
      for (let k = 0; k < N; k++) {
        const v = deltas[k]![i]!;
        if (v === 0 || v > 0 !== positive) continue;
        mixed += coef[k]! * v;
        div += coef[k]!;
      }
      out[i] = base[i]! + mixed / (div === 0 ? 1 : div);
    }
    return out;
  },
};
