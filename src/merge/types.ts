/**
 * The contract between the merge engine and the merge methods. A method merges ONE tensor name
 * at a time; the engine handles files, dtypes, parameters, seeds and streaming.
 */

export type ParamValue = number | boolean;

export interface ParamSpec {
  name: string;
  type: 'number' | 'boolean';
  /** Used when neither the model's nor the global `parameters` give a value. */
  default?: ParamValue;
  /** An error is raised when a required parameter has no value for some tensor. */
  required?: boolean;
  description?: string;
  /**
   * Valid values of a number parameter. Every value a tensor resolves to is checked against it when
   * the merge is planned (before any tensor is read), and the message states the range.
   */
  range?: ParamRange;
}

/** A closed, open or half-open interval (either end optional), optionally of integers. */
export interface ParamRange {
  min?: number;
  max?: number;
  /** min is excluded: (min, … */
  minExclusive?: boolean;
  /** max is excluded: …, max) */
  maxExclusive?: boolean;
  integer?: boolean;
}

export interface MergeTensorInput {
  /** Tensor name, e.g. `model.layers.3.mlp.up_proj.weight`. */
  name: string;
  shape: readonly number[];
  /** The base model's tensor in float32 (null when the method takes no base / none was given). */
  base: Float32Array | null;
  /** The other models' tensors in float32, in config order (the base model is never in here). */
  models: Float32Array[];
  /** Resolved per-model parameters (one object per entry of `models`), for this tensor. */
  modelParams: Array<Record<string, ParamValue>>;
  /** Resolved global parameters for this tensor. */
  params: Record<string, ParamValue>;
  /** Layer index of this tensor (`model.layers.N.`) or null for embeddings, final norm, lm_head. */
  layer: number | null;
  numLayers: number;
  /** A 32-bit seed for this tensor, derived from the run seed and the tensor name. */
  seed: number;
  /**
   * Optional scratch array of the tensor's length, owned by the engine and reused across tensors:
   * a method may write its result into it and return it instead of allocating (bounded memory).
   */
  out?: Float32Array;
}

/** A tensor as raw little-endian bytes of a float dtype (what the checkpoint stores). */
export interface RawTensor {
  bytes: Uint8Array;
  dtype: 'F32' | 'F16' | 'BF16';
}

/** The input of `mergeRaw`: like MergeTensorInput, with raw tensors and a raw output to fill. */
export interface RawMergeInput extends Omit<MergeTensorInput, 'base' | 'models' | 'out'> {
  base: RawTensor | null;
  models: RawTensor[];
  out: RawTensor;
}

export interface MergeMethod {
  name: string;
  /** One line for docs and `--help`. */
  summary: string;
  /** Whether the method uses a base model. */
  base: 'required' | 'optional' | 'none';
  /** Bounds on the number of non-base models. */
  minModels?: number;
  maxModels?: number;
  /** Parameters read from the global `parameters:` block (a model's own block may not set these). */
  globalParams: ParamSpec[];
  /** Parameters read per model (falling back to the global block, then the default). */
  modelParams: ParamSpec[];
  /** True when the method draws random numbers (then `seed` matters). */
  random?: boolean;
  /**
   * Returns the merged tensor: a new array, or one of the input arrays, which the method may
   * overwrite (the engine owns them and reuses them for the next tensor, so never keep a reference
   * after returning). Throws an Error with a clear message on bad input.
   */
  merge(input: MergeTensorInput): Float32Array;
  /**
   * Optional fast path on raw bytes (decoding fused into the kernel, no float32 copies): writes the
   * merged tensor into `input.out` and returns true, or returns false without side effects when
   * this input needs the general path (then the engine calls `merge`). Same results as `merge`.
   */
  mergeRaw?(input: RawMergeInput): boolean;
}
