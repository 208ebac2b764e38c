/**
 * Generalized task arithmetic (mergekit `generalized_task_arithmetic.py`): one engine for
 * task_arithmetic, ties, dare_linear, dare_ties, breadcrumbs, breadcrumbs_ties, della, della_linear,
 * and any other (sparsifier × consensus × normalize × rescale) combination.
 *
 * Per tensor:  δ_i = W_i − B → sparsify(δ_i) → w_i·δ_i → optional sign consensus m_i → mix
 *              → divide (only if `normalize`) → × λ → + B.
 * - Consensus 'sum': elected sign s = +1 where Σ_i w_i δ̃_i ≥ 0 else −1; 'count': from Σ_i sign(w_i δ̃_i).
 *   m_i = [sign(w_i δ̃_i) = s]; a zero entry (sign 0) is never selected. The sign is taken AFTER
 *   weighting, so a negative weight flips a model's vote.
 * - Divisor: with consensus D = Σ_i w_i m_i per entry, D = 0 → 1 (result 0, not NaN); without,
 *   D = Σ_i w_i, |D| < 1e-8 → 1. Division happens only if `normalize`; λ is applied after it.
 */
import { axpy, gtaMerge as gtaKernel, scale, sub } from '../../tensor/kernels.ts';
import type { MergeMethod, MergeTensorInput, ParamRange, ParamSpec, RawMergeInput, RawTensor } from '../types.ts';
import { boolParam, checkInput, numParam, subSeed, where } from './common.ts';
import { checkDensity, SPARSIFY_METHODS, sparsifyInPlace } from './sparsify.ts';
import type { RescaleNorm, SparsifyMethod } from './sparsify.ts';

export type Consensus = 'sum' | 'count';

export interface GtaOptions {
  /** null = no sparsification. */
  sparsification: SparsifyMethod | null;
  /** null = no sign election. */
  consensus: Consensus | null;
  /** Divide the mixed delta by the divisor (see the file comment). */
  normalize: boolean;
  /** Norm matched after sparsification (null = no rescale). mergekit's `rescale: true` is 'l1'. */
  rescale: RescaleNorm | null;
  /** λ, applied after the division. Default 1. */
  lambda?: number;
  /** Reproduce mergekit's empty breadcrumbs band when n_top = 0 (see sparsify.ts). Default false. */
  emptyBandQuirk?: boolean;
  /**
   * Use the fused `gtaMerge` kernel of kernels.ts (native when available) where its semantics
   * apply. Default true; false forces the plain-JS path of this file (same results up to float32
   * rounding: the kernel rounds every step to float32 as PyTorch does).
   */
  useFusedKernel?: boolean;
}

export interface GtaModelParams {
  weight: number;
  /** Fraction kept by the sparsifier (ignored without one). Default 1. */
  density?: number;
  /** magnitude_outliers γ. Default 0.01. */
  gamma?: number;
  /** della_magprune ε. Default 0.15. */
  epsilon?: number;
}

export interface GtaInput {
  base: Float32Array;
  models: Float32Array[];
  params: GtaModelParams[];
  /** Tensor shape (della rows); defaults to flat. */
  shape?: readonly number[];
  /** 32-bit seed; model i draws from subSeed(seed, i). */
  seed?: number;
  /** Error message prefix. */
  where?: string;
  /** Optional array (of the tensor's length) to write the result into, instead of allocating. */
  out?: Float32Array;
}

/**
 * Runs generalized task arithmetic on one tensor and returns the result (in `input.out` when given). Inputs are not modified.
 * Throws on bad densities / gamma / epsilon or length mismatch before any heavy work.
 */
export function gtaMerge(input: GtaInput, options: GtaOptions): Float32Array {
  const w = input.where ?? 'task arithmetic';
  const opts = checkOptions(options, w);
  const { base, models, params } = input;
  const n = base.length;
  if (params.length !== models.length) throw new Error(`${w}: ${params.length} parameter sets for ${models.length} models`);
  models.forEach((m, i) => {
    if (m.length !== n) throw new Error(`${w}: model ${i} has ${m.length} elements, base has ${n} (shape mismatch)`);
  });
  const lambda = validateGta(n, params, opts, w);

  const out = input.out && input.out.length === n ? input.out.fill(0) : new Float32Array(n);
  if (models.length === 0) {
    out.set(base);
    return out;
  }
  const weights = params.map((p) => p.weight);
  const seeds = models.map((_, i) => subSeed(input.seed ?? 0, i));
  const normalize = opts.normalize;
  const fused = opts.useFusedKernel !== false;

  // Whole merge in one fused kernel call: sparsifier none/magnitude/random with one density for all
  // models, rescale none/L1, consensus none/sum (task_arithmetic, ties, dare_linear, dare_ties).
  const densities = params.map((p) => (opts.sparsification ? (p.density ?? 1) : 1));
  if (fused && fusedEligible(opts, densities)) {
    gtaKernel(out, base, models, {
      weights,
      sparsify: (opts.sparsification ?? 'none') as 'none' | 'magnitude' | 'random',
      density: densities[0]!,
      seeds,
      consensus: (opts.consensus ?? 'none') as 'none' | 'sum',
      normalize,
      rescale: opts.rescale === 'l1',
      lambda,
    });
    return out;
  }

  // task vectors, sparsified
  const deltas = models.map((m, i) => {
    const d = new Float32Array(n);
    sub(d, m, base);
    if (opts.sparsification) {
      const p = params[i]!;
      sparsifyInPlace(d, {
        method: opts.sparsification,
        density: p.density ?? 1,
        gamma: p.gamma,
        epsilon: p.epsilon,
        rescale: opts.rescale,
        seed: seeds[i]!,
        shape: input.shape,
        emptyBandQuirk: opts.emptyBandQuirk,
        where: `${w}: model ${i}`,
      });
    }
    return d;
  });

  if (fused && opts.consensus !== 'count') {
    // mix (+ election) of the sparsified deltas in the fused kernel (base null → merged delta · λ)
    gtaKernel(out, null, deltas, { weights, consensus: (opts.consensus ?? 'none') as 'none' | 'sum', normalize, lambda });
  } else if (!opts.consensus) {
    for (let i = 0; i < deltas.length; i++) axpy(out, weights[i]!, deltas[i]!);
    let divisor = weights.reduce((a, b) => a + b, 0);
    if (Math.abs(divisor) < 1e-8) divisor = 1;
    // mergekit divides then multiplies by λ; one multiply by λ/D differs only by rounding
    const factor = normalize ? lambda / divisor : lambda;
    if (factor !== 1) scale(out, factor);
  } else {
    electAndMix(out, deltas, weights, opts.consensus, normalize, lambda);
  }
  // + base
  axpy(out, 1, base);
  return out;
}

/** Checks λ, weights and each model's density / ε / γ before any work; returns λ. */
function validateGta(n: number, params: GtaModelParams[], opts: GtaOptions, w: string): number {
  const lambda = opts.lambda ?? 1;
  if (!Number.isFinite(lambda)) throw new Error(`${w}: lambda must be finite, got ${lambda}`);
  params.forEach((p, i) => {
    if (!Number.isFinite(p.weight)) throw new Error(`${w}: model ${i}: weight must be finite, got ${p.weight}`);
    if (opts.sparsification) {
      const d = p.density ?? 1;
      checkDensity(d, `${w}: model ${i}`);
      if (opts.sparsification === 'magnitude' && d < 1 && Math.floor(d * n) <= 0)
        throw new Error(`${w}: model ${i}: density ${d} too small for a tensor of ${n} elements (it would keep 0)`);
      const eps = p.epsilon ?? 0.15;
      if (opts.sparsification === 'della_magprune' && d < 1 && d > 0 && !(d - eps > 0 && d + eps < 1))
        throw new Error(`${w}: model ${i}: density ± epsilon must lie in (0, 1), got density=${d}, epsilon=${eps}`);
      const g = p.gamma ?? 0.01;
      if (opts.sparsification === 'magnitude_outliers' && !(g >= 0 && g < 1)) throw new Error(`${w}: model ${i}: gamma must be in [0, 1), got ${g}`);
    }
  });

  return lambda;
}

/** True when the fused kernel implements these options exactly (one density, L1 or no rescale, no 'count'). */
function fusedEligible(opts: GtaOptions, densities: number[]): boolean {
  return (
    (opts.sparsification === null || opts.sparsification === 'magnitude' || opts.sparsification === 'random') &&
    densities.every((d) => d === densities[0]) &&
    (opts.rescale === null || opts.rescale === 'l1') &&
    opts.consensus !== 'count'
  );
}

/**
 * The fused kernel on raw bytes (bf16/f16/f32 in and out, decoding inside the kernel): returns
 * false, doing nothing, when the options need the general path of gtaMerge.
 */
export function gtaMergeRaw(input: Omit<RawMergeInput, 'modelParams' | 'params'> & { base: RawTensor; params: GtaModelParams[]; where?: string }, options: GtaOptions): boolean {
  const w = input.where ?? 'task arithmetic';
  const opts = checkOptions(options, w);
  const n = input.out.bytes.byteLength / (input.out.dtype === 'F32' ? 4 : 2);
  if (input.params.length !== input.models.length) throw new Error(`${w}: ${input.params.length} parameter sets for ${input.models.length} models`);
  const densities = input.params.map((p) => (opts.sparsification ? (p.density ?? 1) : 1));
  if (input.models.length === 0 || !fusedEligible(opts, densities)) return false;
  const lambda = validateGta(n, input.params, opts, w);
  gtaKernel(input.out, input.base, input.models, {
    weights: input.params.map((p) => p.weight),
    sparsify: (opts.sparsification ?? 'none') as 'none' | 'magnitude' | 'random',
    density: densities[0]!,
    seeds: input.models.map((_, i) => subSeed(input.seed ?? 0, i)),
    consensus: (opts.consensus ?? 'none') as 'none' | 'sum',
    normalize: opts.normalize,
    rescale: opts.rescale === 'l1',
    lambda,
  });
  return true;
}

/** Validates the option names (the engine is callable from generated code) and fills defaults. */
function checkOptions(o: GtaOptions, w: string): GtaOptions {
  const sparsification = o.sparsification ?? null;
  const consensus = o.consensus ?? null;
  const rescale = o.rescale ?? null;
  if (sparsification !== null && !SPARSIFY_METHODS.includes(sparsification))
    throw new Error(`${w}: unknown sparsification '${String(sparsification)}' (known: ${SPARSIFY_METHODS.join(', ')}, or null)`);
  if (consensus !== null && consensus !== 'sum' && consensus !== 'count')
    throw new Error(`${w}: unknown consensus '${String(consensus)}' (known: sum, count, or null)`);
  if (rescale !== null && rescale !== 'l1' && rescale !== 'l2' && rescale !== 'linf')
    throw new Error(`${w}: unknown rescale norm '${String(rescale)}' (known: l1, l2, linf, or null)`);
  if (typeof o.normalize !== 'boolean') throw new Error(`${w}: normalize must be true or false, got ${String(o.normalize)}`);
  return { ...o, sparsification, consensus, rescale };
}

/**
 * Sign election and the masked mix, written to `out` (which starts at zero): out = λ·mixed / D
 * (or λ·mixed without normalize).
 * kernel candidate (fused sign election + masked weighted sum + divisor; O(models · n)).
 */
function electAndMix(
  out: Float32Array,
  deltas: Float32Array[],
  weights: number[],
  consensus: Consensus,
  normalize: boolean,
  lambda: number,
): void {
  const n = out.length;
  const m = deltas.length;
  // elected sign source: Σ w_i δ_i ('sum') or Σ sign(w_i δ_i) ('count'), in float64
  const vote = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    const d = deltas[i]!;
    const wi = weights[i]!;
    if (consensus === 'sum') for (let j = 0; j < n; j++) vote[j] = vote[j]! + Math.fround(wi * d[j]!);
    else for (let j = 0; j < n; j++) vote[j] = vote[j]! + Math.sign(wi * d[j]!);
  }
  const mixed = new Float64Array(n);
  const divisor = normalize ? new Float64Array(n) : null;
  for (let i = 0; i < m; i++) {
    const d = deltas[i]!;
    const wi = weights[i]!;
    for (let j = 0; j < n; j++) {
      const v = Math.fround(wi * d[j]!);
      if (v === 0 || v !== v) continue;
      const positive = vote[j]! >= 0;
      if (v > 0 === positive) {
        mixed[j] = mixed[j]! + v;
        if (divisor) divisor[j] = divisor[j]! + wi;
      }
    }
  }
  for (let j = 0; j < n; j++) {
    let v = mixed[j]!;
    if (divisor) {
      const dv = divisor[j]!;
      v = v / (dv === 0 ? 1 : dv);
    }
    out[j] = v * lambda;
  }
}

/**
 * The one valid range of `density` in every method that takes it (ties, dare_*, breadcrumbs*, della*,
 * and task_arithmetic, which ignores it): a kept fraction, 0 < density ≤ 1. Checked for every value a
 * tensor resolves to when the merge is planned.
 */
export const DENSITY_RANGE: ParamRange = { min: 0, max: 1, minExclusive: true };

/** Description of one GTA-family registry method. */
export interface GtaMethodSpec {
  name: string;
  summary: string;
  sparsification: SparsifyMethod | null;
  consensus: Consensus | null;
  defaultNormalize: boolean;
  defaultRescale: boolean;
}

/**
 * Builds a registry MergeMethod over the engine with mergekit's parameters:
 * global `normalize`, `rescale` (true → L1), `lambda` = 1, `int8_mask` = false (accepted, no effect in
 * float32); per model `weight` (required), `density` = 1, plus `gamma` = 0.01 (magnitude_outliers)
 * or `epsilon` = 0.15 (della_magprune).
 */
export function makeGtaMethod(spec: GtaMethodSpec): MergeMethod {
  const globalParams: ParamSpec[] = [
    { name: 'normalize', type: 'boolean', default: spec.defaultNormalize, description: 'divide the mixed delta by the (masked) weight sum' },
    { name: 'rescale', type: 'boolean', default: spec.defaultRescale, description: 'L1-rescale each sparsified task vector to its original norm' },
    { name: 'lambda', type: 'number', default: 1, description: 'scale of the merged task vector, applied after normalisation' },
    { name: 'int8_mask', type: 'boolean', default: false, description: 'mergekit memory option; no effect here' },
  ];
  const modelParams: ParamSpec[] = [
    { name: 'weight', type: 'number', required: true, description: 'task-vector weight' },
    { name: 'density', type: 'number', default: 1, range: DENSITY_RANGE, description: spec.sparsification ? 'fraction of the task vector kept' : 'unused (no sparsification)' },
  ];
  if (spec.sparsification === 'magnitude_outliers')
    modelParams.push({ name: 'gamma', type: 'number', default: 0.01, range: { min: 0, max: 1, maxExclusive: true }, description: 'fraction of the largest magnitudes dropped' });
  if (spec.sparsification === 'della_magprune')
    modelParams.push({ name: 'epsilon', type: 'number', default: 0.15, range: { min: 0, max: 1, maxExclusive: true }, description: 'half-width of the rank-based keep probability' });

  return {
    name: spec.name,
    summary: spec.summary,
    base: 'required',
    minModels: 1,
    globalParams,
    modelParams,
    random: spec.sparsification === 'random' || spec.sparsification === 'della_magprune',
    merge(input: MergeTensorInput): Float32Array {
      checkInput(spec.name, input, { base: 'required', min: 1 });
      const { wh, options, params } = readParams(spec, input);
      return gtaMerge({ base: input.base!, models: input.models, params, shape: input.shape, seed: input.seed, where: wh, out: input.out }, options);
    },
    mergeRaw(input: RawMergeInput): boolean {
      if (!input.base || input.models.length === 0) return false;
      const { wh, options, params } = readParams(spec, input);
      return gtaMergeRaw({ ...input, base: input.base, params, where: wh }, options);
    },
  };
}

function readParams(spec: GtaMethodSpec, input: Pick<MergeTensorInput, 'name' | 'params' | 'modelParams' | 'layer'>): { wh: string; options: GtaOptions; params: GtaModelParams[] } {
  const wh = where(spec.name, input as MergeTensorInput);
  const normalize = boolParam(input.params, 'normalize', spec.defaultNormalize, wh);
  const rescale = boolParam(input.params, 'rescale', spec.defaultRescale, wh);
  const lambda = numParam(input.params, 'lambda', 1, wh);
  const params = input.modelParams.map((p, i): GtaModelParams => {
    const mw = `${wh}, model ${i}`;
    return {
      weight: numParam(p, 'weight', undefined, mw),
      density: numParam(p, 'density', 1, mw),
      gamma: numParam(p, 'gamma', 0.01, mw),
      epsilon: numParam(p, 'epsilon', 0.15, mw),
    };
  });
  return { wh, options: { sparsification: spec.sparsification, consensus: spec.consensus, normalize, rescale: rescale ? 'l1' : null, lambda }, params };
}
