/**
 * `arcee_fusion` (mergekit): importance = |W − B| × KL(softmax(W) ‖ softmax(B)) of its vector
 * (softmax along the last axis, i.e. per row of a matrix; +1e-8 added to both distributions);
 * threshold = median + 1.5·(q3 − q1) of the importance, quantile q taken as the sorted value at
 * index ⌊q·(numel − 1)⌋; result B + (W − B)·[importance ≥ threshold]. No parameters.
 * Deliberate deviation: mergekit estimates the quantiles from a random sample of 10^6 entries for
 * larger tensors; we compute them exactly (linear-time selection), so the result is deterministic.
 */
import type { MergeMethod } from '../types.ts';
import { axisLayout, checkInput, kthSmallestInPlace } from './common.ts';

/** Per-entry importance |W − B| · KL(softmax W ‖ softmax B) per last-axis vector. */
export function fusionImportance(w: Float32Array, b: Float32Array, shape: readonly number[]): Float32Array {
  const lay = axisLayout(shape, 'last');
  const imp = new Float32Array(w.length);
  const len = lay.length;
  for (let v = 0; v < lay.count; v++) {
    const s = lay.start(v);
    let mw = -Infinity;
    let mb = -Infinity;
    for (let j = s; j < s + len; j++) {
      if (w[j]! > mw) mw = w[j]!;
      if (b[j]! > mb) mb = b[j]!;
    }
    let zw = 0;
    let zb = 0;
    for (let j = s; j < s + len; j++) {
      zw += Math.exp(w[j]! - mw);
      zb += Math.exp(b[j]! - mb);
    }
    let kl = 0;
    for (let j = s; j < s + len; j++) {
      const p = Math.exp(w[j]! - mw) / zw + 1e-8;
      const q = Math.exp(b[j]! - mb) / zb + 1e-8;
      kl += p * Math.log(p / q);
    }
    for (let j = s; j < s + len; j++) imp[j] = Math.abs(w[j]! - b[j]!) * kl;
  }
  return imp;
}

/** median + 1.5·IQR with mergekit's index rule ⌊q·(n − 1)⌋ (q·(n−1) rounded to float32 first). */
export function fusionThreshold(importance: Float32Array): number {
  const a = importance.slice();
  const n = a.length;
  const at = (q: number) => kthSmallestInPlace(a, Math.trunc(Math.fround(q * (n - 1))));
  const q1 = at(0.25);
  const med = at(0.5);
  const q3 = at(0.75);
  return med + 1.5 * (q3 - q1);
}

export const arceeFusion: MergeMethod = {
  name: 'arcee_fusion',
  summary: 'Keep the other model’s changes whose |δ|×KL importance is an outlier (≥ median + 1.5·IQR).',
  base: 'required',
  minModels: 1,
  maxModels: 1,
  globalParams: [],
  modelParams: [],
  merge(input) {
    const n = checkInput('arcee_fusion', input, { base: 'required', min: 1, max: 1 });
    const b = input.base!;
    const w = input.models[0]!;
    const out = b.slice();
    if (n === 0) return out;
    const imp = fusionImportance(w, b, input.shape);
    const thr = Math.fround(fusionThreshold(imp));
    for (let i = 0; i < n; i++) if (imp[i]! >= thr) out[i] = b[i]! + (w[i]! - b[i]!);
    return out;
  },
};
