/**
 * `dare_linear` (mergekit): DARE: random drop (keep probability density) with L1 rescale, weighted sum of task vectors.
 * Generalized task arithmetic (gta.ts) with sparsification=random, consensus=none; defaults
 * normalize=false, rescale=true. Seeded: model i draws from subSeed(seed, i).
 */
import { makeGtaMethod } from './gta.ts';

export const dareLinear = makeGtaMethod({
  name: 'dare_linear',
  summary: 'DARE: random drop (keep probability density) with L1 rescale, weighted sum of task vectors.',
  sparsification: 'random',
  consensus: null,
  defaultNormalize: false,
  defaultRescale: true,
});
