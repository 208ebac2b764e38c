/**
 * `breadcrumbs_ties` (mergekit): Model Breadcrumbs band sparsification followed by TIES sign election.
 * Generalized task arithmetic (gta.ts) with sparsification=magnitude_outliers, consensus=sum; defaults
 * normalize=false, rescale=false. Quirk decision (see sparsify.ts): when n_top = ⌊γ·numel⌋ is 0, mergekit keeps an empty band and zeroes the delta; we keep the n_keep largest instead.
 */
import { makeGtaMethod } from './gta.ts';

export const breadcrumbsTies = makeGtaMethod({
  name: 'breadcrumbs_ties',
  summary: 'Model Breadcrumbs band sparsification followed by TIES sign election.',
  sparsification: 'magnitude_outliers',
  consensus: 'sum',
  defaultNormalize: false,
  defaultRescale: false,
});
