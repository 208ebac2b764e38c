/**
 * `task_arithmetic` (mergekit): B + λ·Σ w_i (W_i − B); divided by Σ w_i only when normalize is set.
 * Generalized task arithmetic (gta.ts) with sparsification=none, consensus=none; defaults
 * normalize=false, rescale=false. Parameters: weight (required), lambda=1, normalize=false; density/rescale accepted but unused.
 */
import { makeGtaMethod } from './gta.ts';

export const taskArithmetic = makeGtaMethod({
  name: 'task_arithmetic',
  summary: 'B + λ·Σ w_i (W_i − B); divided by Σ w_i only when normalize is set.',
  sparsification: null,
  consensus: null,
  defaultNormalize: false,
  defaultRescale: false,
});
