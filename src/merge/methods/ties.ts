/**
 * `ties` (mergekit): TIES: magnitude top-k of each task vector, sign election, average of the agreeing weighted deltas.
 * Generalized task arithmetic (gta.ts) with sparsification=magnitude, consensus=sum; defaults
 * normalize=true, rescale=false. k = ⌊density·numel⌋ over the whole flattened tensor (density ≥ 1 keeps all; k = 0 is an error).
 */
import { makeGtaMethod } from './gta.ts';

export const ties = makeGtaMethod({
  name: 'ties',
  summary: 'TIES: magnitude top-k of each task vector, sign election, average of the agreeing weighted deltas.',
  sparsification: 'magnitude',
  consensus: 'sum',
  defaultNormalize: true,
  defaultRescale: false,
});
