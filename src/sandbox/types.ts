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
  /** CPU-time limit of one run (top-level code + merge + its tensor ops), ms; the program's
   * verdict does not depend on machine load (see cpu-time.ts) */
  timeoutMs: number;
  /** isolate heap limit, MB (isolated-vm minimum is 8) */
  memoryMb: number;
  /** max number of torch op calls per run */
  maxOps: number;
  /** max total tensor elements the ops of one run may allocate on the host */
  maxElements: number;
  /** CPU-time limit of the child process for one request, after which the parent kills it (a
   * hang in host code; reading and encoding the tensors of a streamed merge count too), ms; each
   * retry of a run starved by machine load adds timeoutMs + 1000 to it */
  wallMs: number;
  /** wall-clock backstop of one run as a multiple of timeoutMs: a run starved of CPU by machine
   * load is retried with larger wall timeouts up to this, then fails with `timeout` */
  backstopFactor: number;
}

export const DEFAULT_LIMITS: SandboxLimits = {
  timeoutMs: 2000,
  memoryMb: 32,
  maxOps: 20000,
  maxElements: 1 << 26,
  wallMs: 6000,
  backstopFactor: 30,
};

export interface RunOutcome {
  ok: boolean;
  result?: Float32Array;
  /** Sandbox.runFile: the merged tensor (base + program result), encoded in the requested dtype (read back from the child's file) */
  bytes?: Uint8Array;
  /** merge-file: the number of bytes the child wrote to the request's outPath */
  bytesWritten?: number;
  /** prepare(): the JSON text of the returned state */
  stateJson?: string;
  category?: FailureCategory;
  message?: string;
  /** op calls made, elements allocated, wall time inside the child (all attempts) */
  ops?: number;
  elements?: number;
  ms?: number;
  /** CPU time charged to the program (its last attempt), ms */
  cpuMs?: number;
  /** attempts made (more than 1 when machine load starved the program of CPU, see cpu-time.ts) */
  attempts?: number;
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
  /** Streamed merge of one tensor: the child reads base and experts from their files, forms the task vectors, runs the program, adds the result to the base and writes the encoded bytes at the start of outPath (created if missing, not truncated: the parent reads back bytesWritten bytes). */
  | { type: 'merge-file'; id: number; source: string; base: TensorRef; experts: TensorRef[]; outDtype: 'F32' | 'F16' | 'BF16'; ctx: MergeContext; limits: SandboxLimits; testHooks?: boolean; outPath: string };

export interface RunResponse extends RunOutcome {
  id: number;
}

/** Child -> parent while a request runs: the program is re-run (machine load starved it of CPU). */
export interface RetryNotice {
  type: 'retry';
  id: number;
  /** the coming attempt (2, 3, …) and its wall timeout */
  attempt: number;
  wallMs: number;
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
