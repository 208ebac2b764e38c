/**
 * `breadcrumbs` (mergekit): Model Breadcrumbs: keep the middle band of |δ| (drop the top gamma and the smallest), weighted sum.
 * Generalized task arithmetic (gta.ts) with sparsification=magnitude_outliers, consensus=none; defaults
 * normalize=false, rescale=false. Quirk decision (see sparsify.ts): when n_top = ⌊γ·numel⌋ is 0, mergekit keeps an empty band and zeroes the delta; we keep the n_keep largest instead.
 */
import { makeGtaMethod } from './gta.ts';

export const breadcrumbs = makeGtaMethod({
  name: 'breadcrumbs',
  summary: 'Model Breadcrumbs: keep the middle band of |δ| (drop the top gamma and the smallest), weighted sum.',
  sparsification: 'magnitude_outliers',
  consensus: null,
  defaultNormalize: false,
  defaultRescale: false,
});
