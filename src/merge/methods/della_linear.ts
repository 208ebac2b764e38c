/**
 * `della_linear` (mergekit): DELLA without sign election: per-row rank-based random keep, L1 rescale, weighted sum.
 * Generalized task arithmetic (gta.ts) with sparsification=della_magprune, consensus=none; defaults
 * normalize=false, rescale=true. Error unless 0 < density ± epsilon < 1 (when density < 1). Seeded per model.
 */
import { makeGtaMethod } from './gta.ts';

export const dellaLinear = makeGtaMethod({
  name: 'della_linear',
  summary: 'DELLA without sign election: per-row rank-based random keep, L1 rescale, weighted sum.',
  sparsification: 'della_magprune',
  consensus: null,
  defaultNormalize: false,
  defaultRescale: true,
});
