/**
 * `karcher` (mergekit): Riemannian (Fréchet/Karcher) mean of the models' unit tensors on the
 * hypersphere, EQUAL weights α = 1/N, times the mean norm Σ α‖W_i‖. No base model.
 * Tensors with norm ≤ tol are left out of the direction (all of them → zeros); the start is the
 * normalised weighted mean of the unit tensors (or the first one if that is < tol); each step
 * T = Σ α_i θ_i/sin θ_i (u_i − cos θ_i m) over inputs with θ_i ≥ tol, stop when ‖T‖ < tol,
 * m ← cos‖T‖ m + sin‖T‖ T/‖T‖, renormalised; at most `max_iter` steps. One model → itself.
 */
import { dot } from '../../tensor/kernels.ts';
import type { MergeMethod } from '../types.ts';
import { checkInput, numParam, where } from './common.ts';

/** Weighted Karcher mean (α need not be normalised; direction uses α normalised over valid inputs). */
export function karcherMean(tensors: Float32Array[], alphas: number[], maxIter: number, tol: number): Float32Array {
  if (tensors.length === 1) return tensors[0]!.slice();
  const n = tensors[0]!.length;
  const norms = tensors.map((t) => Math.sqrt(dot(t, t)));
  const valid = norms.map((nm, i) => (nm > tol ? i : -1)).filter((i) => i >= 0);
  if (valid.length === 0) return new Float32Array(n);
  const aSum = valid.reduce((s, i) => s + alphas[i]!, 0);
  const a = valid.map((i) => alphas[i]! / aSum);
  const units = valid.map((i) => {
    const u = new Float64Array(n);
    const t = tensors[i]!;
    const inv = 1 / norms[i]!;
    for (let j = 0; j < n; j++) u[j] = t[j]! * inv;
    return u;
  });
  let mean = new Float64Array(n);
  units.forEach((u, k) => {
    for (let j = 0; j < n; j++) mean[j] = mean[j]! + a[k]! * u[j]!;
  });
  const mn = norm64(mean);
  if (mn < tol) mean = units[0]!.slice();
  else for (let j = 0; j < n; j++) mean[j] = mean[j]! / mn;

  const tangent = new Float64Array(n);
  for (let it = 0; it < maxIter; it++) {
    tangent.fill(0);
    units.forEach((u, k) => {
      let d = 0;
      for (let j = 0; j < n; j++) d += mean[j]! * u[j]!;
      d = Math.max(-1, Math.min(1, d));
      const theta = Math.acos(d);
      if (theta < tol) return;
      const c = (a[k]! * theta) / Math.sin(theta);
      for (let j = 0; j < n; j++) tangent[j] = tangent[j]! + c * (u[j]! - d * mean[j]!);
    });
    const tn = norm64(tangent);
    if (tn < tol) break;
    const cs = Math.cos(tn);
    const sn = Math.sin(tn) / tn;
    for (let j = 0; j < n; j++) mean[j] = cs * mean[j]! + sn * tangent[j]!;
    const un = norm64(mean);
    if (un > tol) for (let j = 0; j < n; j++) mean[j] = mean[j]! / un;
  }
  const s = norms.reduce((acc, nm, i) => acc + alphas[i]! * nm, 0);
  const out = new Float32Array(n);
  for (let j = 0; j < n; j++) out[j] = s * mean[j]!;
  return out;
}

function norm64(x: Float64Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  return Math.sqrt(s);
}

export const karcher: MergeMethod = {
  name: 'karcher',
  summary: 'Karcher (spherical Fréchet) mean of the unit tensors, equal weights, times the mean norm.',
  base: 'none',
  minModels: 1,
  globalParams: [
    { name: 'max_iter', type: 'number', default: 10, range: { min: 0, integer: true }, description: 'maximum iterations' },
    { name: 'tol', type: 'number', default: 1e-5, description: 'convergence tolerance' },
  ],
  modelParams: [],
  merge(input) {
    checkInput('karcher', input, { base: 'none', min: 1 });
    const wh = where('karcher', input);
    const maxIter = numParam(input.params, 'max_iter', 10, wh);
    const tol = numParam(input.params, 'tol', 1e-5, wh);
    if (!Number.isInteger(maxIter) || maxIter < 0) throw new Error(`${wh}: max_iter must be a non-negative integer, got ${maxIter}`);
    const m = input.models.length;
    return karcherMean(input.models, new Array<number>(m).fill(1 / m), maxIter, tol);
  },
};
