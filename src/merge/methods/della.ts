/**
 * `della` (mergekit): DELLA: per-row rank-based random keep (density ± epsilon), L1 rescale, sign election, normalised.
 * Generalized task arithmetic (gta.ts) with sparsification=della_magprune, consensus=sum; defaults
 * normalize=true, rescale=true. Error unless 0 < density ± epsilon < 1 (when density < 1). Seeded per model.
 */
import { makeGtaMethod } from './gta.ts';

export const della = makeGtaMethod({
  name: 'della',
  summary: 'DELLA: per-row rank-based random keep (density ± epsilon), L1 rescale, sign election, normalised.',
  sparsification: 'della_magprune',
  consensus: 'sum',
  defaultNormalize: true,
  defaultRescale: true,
});
