/** Shared types of the merge-algorithm sandbox (parent process, child runner and cascade). */

export type FailureCategory =
  | 'syntax'
  | 'no-entry-point'
  | 'runtime'
  | 'timeout'
  | 'memory'
  | 'op-limit'
  | 'bad-shape'
  | 'bad-return'
  | 'non-finite'
  | 'nondeterministic'
  | 'crash';

export const FAILURE_CATEGORIES: readonly FailureCategory[] = [
  'syntax', 'no-entry-point', 'runtime', 'timeout', 'memory', 'op-limit', 'bad-shape', 'bad-return', 'non-finite', 'nondeterministic', 'crash',
];

export type TensorKind = 'attention' | 'mlp' | 'embedding' | 'norm' | 'other';

/** What a merge program sees as `ctx` (plus `rng` and `state`, added inside the sandbox). */
export interface MergeContext {
  name: string;
  layer: number | null;
  numLayers: number;
  kind: TensorKind;
  shape: number[];
  numModels: number;
  /** 32-bit seed for ctx.rng, torch.rand and torch.bernoulli. */
  seed: number;
  /** JSON value returned by the program's prepare(stats), if any. */
  state?: unknown;
}

export interface SandboxLimits {
  /** isolate time budget for one run (top-level code + merge), ms */
  timeoutMs: number;
  /** isolate heap limit, MB (isolated-vm minimum is 8) */
  memoryMb: number;
  /** max number of torch op calls per run */
  maxOps: number;
  /** max total tensor elements the ops of one run may allocate on the host */
  maxElements: number;
  /** wall-clock limit after which the parent kills the whole child process, ms */
  wallMs: number;
}

export const DEFAULT_LIMITS: SandboxLimits = {
  timeoutMs: 2000,
  memoryMb: 32,
  maxOps: 20000,
  maxElements: 1 << 26,
  wallMs: 6000,
};

export interface RunOutcome {
  ok: boolean;
  result?: Float32Array;
  /** merge-file: the merged tensor (base + program result), encoded in the requested dtype */
  bytes?: Uint8Array;
  /** merge-file with outPath: the number of bytes the child wrote there (then `bytes` is not sent) */
  bytesWritten?: number;
  /** prepare(): the JSON text of the returned state */
  stateJson?: string;
  category?: FailureCategory;
  message?: string;
  /** op calls made, elements allocated, time inside the child */
  ops?: number;
  elements?: number;
  ms?: number;
}

/** Whole-model statistics handed to prepare(stats): per tensor name. */
export interface TensorStats {
  shape: number[];
  layer: number | null;
  kind: TensorKind;
  /** L2 norm of each task vector */
  norms: number[];
  /** cosine[i][j] between task vectors i and j (flattened) */
  cosine: number[][];
}
export type ModelStats = Record<string, TensorStats>;

/** Where one tensor's bytes lie in a safetensors file (absolute offset), and their dtype. */
export interface TensorRef {
  path: string;
  offset: number;
  byteLength: number;
  dtype: 'F32' | 'F16' | 'BF16';
}

/** Messages parent -> child. */
export type RunRequest =
  | { type: 'check'; id: number; source: string; limits: SandboxLimits }
  | { type: 'merge'; id: number; source: string; inputs: Float32Array[]; ctx: MergeContext; limits: SandboxLimits; testHooks?: boolean }
  | { type: 'prepare'; id: number; source: string; stats: ModelStats; numModels: number; seed: number; limits: SandboxLimits; testHooks?: boolean }
  /** Streamed merge of one tensor: the child reads base and experts from their files, forms the task vectors, runs the program, adds the result to the base and answers with the encoded bytes. */
  | { type: 'merge-file'; id: number; source: string; base: TensorRef; experts: TensorRef[]; outDtype: 'F32' | 'F16' | 'BF16'; ctx: MergeContext; limits: SandboxLimits; testHooks?: boolean; outPath?: string };

export interface RunResponse extends RunOutcome {
  id: number;
}

/** Derive the tensor kind from a Hugging Face Llama-style tensor name. */
export function tensorKind(name: string): TensorKind {
  if (/embed_tokens|lm_head|wte|wpe|tok_embeddings|\.embed/.test(name)) return 'embedding';
  if (/norm|ln_/.test(name)) return 'norm';
  if (/self_attn|attention|attn|q_proj|k_proj|v_proj|o_proj/.test(name)) return 'attention';
  if (/mlp|feed_forward|gate_proj|up_proj|down_proj|ffn/.test(name)) return 'mlp';
  return 'other';
}

/** Layer index from `model.layers.N.` (null for embeddings, final norm, lm_head). */
export function tensorLayer(name: string): number | null {
  const m = /(?:^|\.)(?:layers|h|blocks)\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : null;
}
