/**
 * `dare_ties` (mergekit): DARE + TIES: random drop with L1 rescale, then sign election.
 * Generalized task arithmetic (gta.ts) with sparsification=random, consensus=sum; defaults
 * normalize=false, rescale=true. Seeded: model i draws from subSeed(seed, i).
 */
import { makeGtaMethod } from './gta.ts';

export const dareTies = makeGtaMethod({
  name: 'dare_ties',
  summary: 'DARE + TIES: random drop with L1 rescale, then sign election.',
  sparsification: 'random',
  consensus: 'sum',
  defaultNormalize: false,
  defaultRescale: true,
});
