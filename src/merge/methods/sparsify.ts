/**
 * Sparsification of task vectors (mergekit `sparsify.py` semantics), in place on a Float32Array:
 * - `magnitude` (TIES): keep the k = ⌊density·numel⌋ entries of largest |δ| over the whole
 *   flattened tensor (ties: lower index first); density ≥ 1 → unchanged; k = 0 → error.
 * - `random` (DARE): keep each entry with probability `density` (counter-based, seeded);
 *   density ≥ 1 → unchanged.
 * - `magnitude_outliers` (Model Breadcrumbs): drop the top n_top = ⌊γ·numel⌋ magnitudes and the
 *   smallest ones, keeping n_keep = ⌊density·numel⌋ (if n_top + n_keep > numel, n_top shrinks).
 *   QUIRK DECISION: mergekit slices `sorted[n_bottom:-n_top]`, which is EMPTY when n_top = 0
 *   (tensors with fewer than 1/γ entries, or when n_top shrinks to 0), zeroing the whole delta.
 *   We FIX this: n_top = 0 keeps the n_keep largest entries (nothing is dropped at the top), which
 *   is what the method describes. `emptyBandQuirk: true` reproduces mergekit exactly.
 *   Like mergekit, n_keep = 0 is not an error here (the delta becomes zero).
 * - `della_magprune` (DELLA): per row (rows = shape[0], row length = numel/shape[0]; a vector is
 *   one row), |δ| ranks (ascending, ties by index) scaled to [0, 1]; keep probability
 *   p = (density − ε) + 2ε·rank. density ≥ 1 → unchanged; density ≤ 0 → zero; otherwise error
 *   unless 0 < density ± ε < 1. A row of length 1 uses rank 0.5 (p = density; mergekit would
 *   divide 0 by 0 there and fail).
 * Rescale (optional): multiply the kept entries by ‖δ‖ / ‖mask⊙δ‖ in the chosen norm (the realised
 * ratio, not 1/density); skipped when either norm < 1e-7.
 */
import { absMax, bernoulliMaskInPlace, l1, l2sq, scale, topkMagnitudeInPlace, uniformAt } from '../../tensor/kernels.ts';
import { numelOf, rowsOf } from './common.ts';

export type SparsifyMethod = 'magnitude' | 'random' | 'magnitude_outliers' | 'della_magprune';
export type RescaleNorm = 'l1' | 'l2' | 'linf';

export const SPARSIFY_METHODS: readonly SparsifyMethod[] = ['magnitude', 'random', 'magnitude_outliers', 'della_magprune'];

export interface SparsifyOptions {
  method: SparsifyMethod;
  density: number;
  /** magnitude_outliers: fraction of the largest magnitudes to drop (mergekit default 0.01). */
  gamma?: number;
  /** della_magprune: half-width of the keep-probability range (mergekit default 0.15). */
  epsilon?: number;
  rescale?: RescaleNorm | null;
  /** Seed of the random stream (random, della_magprune). */
  seed?: number;
  /** Tensor shape (della_magprune rows); defaults to a flat vector. */
  shape?: readonly number[];
  /** magnitude_outliers: reproduce mergekit's empty band when n_top = 0 (see the file comment). */
  emptyBandQuirk?: boolean;
  /** Prefix for error messages (e.g. `ties: tensor x, model 1`). */
  where?: string;
}

export function normOf(x: Float32Array, norm: RescaleNorm): number {
  if (norm === 'l1') return l1(x);
  if (norm === 'l2') return Math.sqrt(l2sq(x));
  return absMax(x);
}

/** Checks a density value (finite, ≥ 0). */
export function checkDensity(density: number, where: string): void {
  if (!Number.isFinite(density) || density < 0) throw new Error(`${where}: density must be a finite number ≥ 0, got ${density}`);
}

/** Sparsifies `x` in place. Validates everything before changing `x`. */
export function sparsifyInPlace(x: Float32Array, o: SparsifyOptions): void {
  const w = o.where ?? o.method;
  checkDensity(o.density, w);
  const n = x.length;
  if (o.shape && numelOf(o.shape) !== n) throw new Error(`${w}: ${n} elements do not fit shape [${o.shape.join(', ')}]`);
  if (o.density >= 1) return;
  const gamma = o.gamma ?? 0.01;
  const epsilon = o.epsilon ?? 0.15;
  if (o.method === 'magnitude_outliers' && (!Number.isFinite(gamma) || gamma < 0 || gamma >= 1))
    throw new Error(`${w}: gamma must be in [0, 1), got ${gamma}`);
  if (o.method === 'della_magprune' && o.density > 0 && (!(o.density - epsilon > 0) || !(o.density + epsilon < 1)))
    throw new Error(`${w}: density ± epsilon must lie in (0, 1), got density=${o.density}, epsilon=${epsilon}`);
  if (o.method === 'magnitude' && Math.floor(o.density * n) <= 0)
    throw new Error(`${w}: density ${o.density} too small for a tensor of ${n} elements (it would keep 0)`);

  const before = o.rescale ? normOf(x, o.rescale) : 0;
  switch (o.method) {
    case 'magnitude':
      topkMagnitudeInPlace(x, Math.floor(o.density * n));
      break;
    case 'random':
      bernoulliMaskInPlace(x, o.density, (o.seed ?? 0) >>> 0);
      break;
    case 'magnitude_outliers':
      magnitudeOutliersInPlace(x, o.density, gamma, o.emptyBandQuirk ?? false);
      break;
    case 'della_magprune':
      if (o.density <= 0) x.fill(0);
      else dellaMaskInPlace(x, o.density, epsilon, (o.seed ?? 0) >>> 0, o.shape ?? [n]);
      break;
    default:
      throw new Error(`${w}: unknown sparsification method '${String(o.method)}' (known: ${SPARSIFY_METHODS.join(', ')})`);
  }
  if (o.rescale) {
    const after = normOf(x, o.rescale);
    if (before >= 1e-7 && after >= 1e-7) scale(x, before / after);
  }
}

/** The breadcrumbs band (see the file comment). Two linear-time selections, no sort. */
function magnitudeOutliersInPlace(x: Float32Array, density: number, gamma: number, quirk: boolean): void {
  const n = x.length;
  const nKeep = Math.floor(density * n);
  let nTop = Math.floor(gamma * n);
  let nBot = n - nKeep - nTop;
  if (nBot < 0) {
    nTop += nBot;
    nBot = 0;
  }
  if (nTop === 0) {
    if (quirk) x.fill(0);
    else topkMagnitudeInPlace(x, nKeep);
    return;
  }
  // band = (top n − nBot) minus (top nTop); both selections break ties by lower index, so nested
  const outliers = x.slice();
  topkMagnitudeInPlace(outliers, nTop);
  topkMagnitudeInPlace(x, n - nBot);
  for (let i = 0; i < n; i++) if (outliers[i] !== 0) x[i] = 0;
}

/**
 * DELLA MagPrune mask per row. Ranks by a numeric sort of packed keys (|x| float bits · 2^21 +
 * column), exact in float64 for rows up to 2^21 entries; longer rows use a comparator sort.
 * kernel candidate (per-row rank + Bernoulli keep).
 */
function dellaMaskInPlace(x: Float32Array, density: number, epsilon: number, seed: number, shape: readonly number[]): void {
  const { rows, rowLen } = rowsOf(shape);
  if (rowLen === 0) return;
  const absF = new Float32Array(rowLen);
  const absBits = new Uint32Array(absF.buffer);
  const keys = new Float64Array(rowLen);
  const order = new Uint32Array(rowLen);
  const packed = rowLen <= 1 << 21;
  const lo = density - epsilon;
  for (let r = 0; r < rows; r++) {
    const off = r * rowLen;
    for (let j = 0; j < rowLen; j++) absF[j] = Math.abs(x[off + j]!);
    if (packed) {
      for (let j = 0; j < rowLen; j++) keys[j] = absBits[j]! * 2097152 + j;
      keys.sort();
      for (let j = 0; j < rowLen; j++) order[j] = keys[j]! % 2097152;
    } else {
      for (let j = 0; j < rowLen; j++) order[j] = j;
      order.sort((a, b) => absF[a]! - absF[b]! || a - b);
    }
    for (let rank = 0; rank < rowLen; rank++) {
      const j = order[rank]!;
      const rn = rowLen > 1 ? rank / (rowLen - 1) : 0.5;
      const p = lo + rn * 2 * epsilon;
      if (!(uniformAt(seed, off + j) < p)) x[off + j] = 0;
    }
  }
}
