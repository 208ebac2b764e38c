/**
 * The decoder architectures the engine runs, read from config.json as Hugging Face transformers
 * writes them: `LlamaForCausalLM` (model_type "llama", Llama 2 and Llama 3 with `rope_scaling`
 * rope_type "llama3"), `MistralForCausalLM` ("mistral": `sliding_window` on every layer) and
 * `Qwen2ForCausalLM` ("qwen2": q/k/v biases, `use_sliding_window` + `max_window_layers`). All three
 * share the Llama tensor layout (`model.layers.N.self_attn.{q,k,v,o}_proj`, `mlp.{gate,up,down}_proj`,
 * RMSNorm, SwiGLU, rotate-half RoPE); what differs is read here into `ArchFeatures`.
 *
 * Semantics (transformers 4.4x–4.5x):
 * - biases: Llama `attention_bias: true` gives q, k, v and o biases; Qwen2 always has q, k, v biases
 *   and none on o; Mistral has none. `mlp_bias` is refused.
 * - sliding window: a query at position i attends to keys j with i − window < j ≤ i. Mistral applies
 *   it on every layer (`sliding_window` null = full attention); Qwen2 only when `use_sliding_window`
 *   is true, on layers i ≥ `max_window_layers` (or as `layer_types` lists them).
 * - Llama 3 RoPE: the inverse frequencies are rescaled by wavelength (see `scaledInvFreq`).
 */

/** Architecture class name → model_type, for every architecture the engine runs. */
export const SUPPORTED_ARCHITECTURES = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'mistral',
  Qwen2ForCausalLM: 'qwen2',
} as const;

export type ModelType = (typeof SUPPORTED_ARCHITECTURES)[keyof typeof SUPPORTED_ARCHITECTURES];

const MODEL_TYPES = new Set<string>(Object.values(SUPPORTED_ARCHITECTURES));
const SUPPORTED_LIST = Object.entries(SUPPORTED_ARCHITECTURES)
  .map(([a, t]) => `${a} (model_type "${t}")`)
  .join(', ');

/** Llama 3 rope scaling (rope_type "llama3"), as in config.json. */
export interface Llama3RopeScaling {
  rope_type: 'llama3';
  factor: number;
  low_freq_factor: number;
  high_freq_factor: number;
  original_max_position_embeddings: number;
}

/** What distinguishes the supported architectures (fields of the engine's config). */
export interface ArchFeatures {
  model_type: ModelType;
  /** q_proj, k_proj and v_proj carry a bias (Qwen2; Llama with attention_bias). */
  qkv_bias: boolean;
  /** o_proj carries a bias (Llama with attention_bias). */
  o_bias: boolean;
  /** Llama 3 frequency scaling of RoPE, or null for plain RoPE. */
  rope_scaling: Llama3RopeScaling | null;
  /** Attention window in tokens (keys i − window < j ≤ i), or null for full causal attention. */
  sliding_window: number | null;
  /** The window applies to layers with index ≥ this (0 for Mistral; Qwen2's max_window_layers). */
  sliding_window_from: number;
}

/** Plain Llama: no biases, plain RoPE, full attention. */
export const PLAIN_LLAMA: ArchFeatures = { model_type: 'llama', qkv_bias: false, o_bias: false, rope_scaling: null, sliding_window: null, sliding_window_from: 0 };

/** Whether layer `l` attends through the sliding window (and the window, else null). */
export function layerWindow(f: Pick<ArchFeatures, 'sliding_window' | 'sliding_window_from'>, l: number): number | null {
  return f.sliding_window !== null && l >= f.sliding_window_from ? f.sliding_window : null;
}

const show = (v: unknown): string => {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
};
const isPosInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
const isPosNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v > 0;

/**
 * The architecture of a config.json object: its `architectures` and `model_type` must name one
 * supported architecture (and agree); `bad` is called with the first problem. Unsupported
 * architectures are named together with the supported ones.
 */
export function readModelType(c: Record<string, unknown>, bad: (msg: string) => never): ModelType {
  const archs = c.architectures;
  let fromArch: ModelType | null = null;
  if (archs !== undefined && archs !== null) {
    if (!Array.isArray(archs) || !archs.every((a) => typeof a === 'string')) bad(`architectures must be a list of class names, got ${show(archs)}`);
    for (const a of archs as string[]) {
      const t = (SUPPORTED_ARCHITECTURES as Record<string, ModelType>)[a];
      if (t === undefined) bad(`unsupported architecture ${show(a)} (supported: ${SUPPORTED_LIST})`);
      if (fromArch !== null && t !== fromArch) bad(`architectures ${show(archs)} name two different architectures`);
      fromArch = t!;
    }
  }
  const mt = c.model_type;
  if (mt === null) bad(`model_type must be a string, got null (supported: ${SUPPORTED_LIST})`);
  if (mt !== undefined) {
    if (typeof mt !== 'string' || !MODEL_TYPES.has(mt)) bad(`unsupported model_type ${show(mt)} (supported: ${SUPPORTED_LIST})`);
    if (fromArch !== null && mt !== fromArch) bad(`model_type ${show(mt)} does not match architectures ${show(archs)}`);
    return mt as ModelType;
  }
  if (fromArch === null) bad(`no model_type and no architectures: cannot tell the architecture (supported: ${SUPPORTED_LIST})`);
  return fromArch!;
}

/**
 * The rope scaling of `rope_scaling` (or transformers 5's `rope_parameters`): null for none or
 * rope_type "default", the Llama 3 parameters for "llama3"; any other type is refused by name.
 */
export function readRopeScaling(c: Record<string, unknown>, bad: (msg: string) => never, maxPos: number): Llama3RopeScaling | null {
  const read = (key: string): Llama3RopeScaling | null => {
    const r = c[key];
    if (r === undefined || r === null) return null;
    if (typeof r !== 'object' || Array.isArray(r)) bad(`${key} must be an object or null, got ${show(r)}`);
    const o = r as Record<string, unknown>;
    const type = o.rope_type ?? o.type ?? 'default';
    if (type === 'default') return null;
    if (type !== 'llama3') bad(`${key}.rope_type ${show(type)} is not supported (only "default" and "llama3")`);
    const num = (k: string): number => (isPosNum(o[k]) ? (o[k] as number) : bad(`${key}.${k} must be a positive number, got ${show(o[k])}`));
    const s: Llama3RopeScaling = {
      rope_type: 'llama3',
      factor: num('factor'),
      low_freq_factor: num('low_freq_factor'),
      high_freq_factor: num('high_freq_factor'),
      original_max_position_embeddings: isPosInt(o.original_max_position_embeddings)
        ? o.original_max_position_embeddings
        : bad(`${key}.original_max_position_embeddings must be a positive integer, got ${show(o.original_max_position_embeddings)}`),
    };
    if (!(s.high_freq_factor > s.low_freq_factor)) bad(`${key}: high_freq_factor ${s.high_freq_factor} must be more than low_freq_factor ${s.low_freq_factor}`);
    if (s.original_max_position_embeddings > maxPos) bad(`${key}.original_max_position_embeddings ${s.original_max_position_embeddings} is more than max_position_embeddings ${maxPos}`);
    return s;
  };
  const a = read('rope_scaling');
  const b = read('rope_parameters');
  if (a && b && JSON.stringify(a) !== JSON.stringify(b)) bad(`rope_scaling and rope_parameters disagree`);
  return a ?? b;
}

/**
 * Biases, rope scaling and sliding window of a config.json of `modelType` for a model of `layers`
 * layers (checked: every value well-typed, nothing unsupported silently ignored).
 */
export function readArchFeatures(c: Record<string, unknown>, modelType: ModelType, layers: number, maxPos: number, bad: (msg: string) => never): ArchFeatures {
  const bool = (k: string): boolean | null => {
    const v = c[k];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'boolean') bad(`${k} must be true or false, got ${show(v)}`);
    return v as boolean;
  };
  if (bool('mlp_bias') === true) bad(`mlp_bias is not supported`);
  const attnBias = bool('attention_bias');
  if (modelType !== 'llama' && attnBias !== null && attnBias !== (modelType === 'qwen2'))
    bad(`attention_bias ${attnBias} does not fit model_type "${modelType}" (${modelType === 'qwen2' ? 'Qwen2 always has q/k/v biases' : 'Mistral has no biases'})`);
  const qkv = modelType === 'qwen2' ? true : modelType === 'llama' ? attnBias === true : false;
  const o = modelType === 'llama' && attnBias === true;
  const rope = readRopeScaling(c, bad, maxPos);

  let window: number | null = null;
  let from = 0;
  const sw = c.sliding_window;
  if (sw !== undefined && sw !== null && !isPosInt(sw)) bad(`sliding_window must be a positive integer or null, got ${show(sw)}`);
  if (modelType === 'mistral') window = (sw as number | null | undefined) ?? null;
  else if (modelType === 'qwen2') {
    const use = bool('use_sliding_window') === true;
    const mwl = c.max_window_layers ?? 28; // Qwen2Config's default
    if (!Number.isSafeInteger(mwl) || (mwl as number) < 0) bad(`max_window_layers must be a non-negative integer, got ${show(mwl)}`);
    if (use && isPosInt(sw)) {
      window = sw;
      from = mwl as number;
    }
  } else if (sw !== undefined && sw !== null) bad(`sliding_window is not part of model_type "llama" (use MistralForCausalLM or Qwen2ForCausalLM)`);
  const lt = c.layer_types;
  if (lt !== undefined && lt !== null) {
    if (!Array.isArray(lt) || lt.length !== layers || !lt.every((t) => t === 'full_attention' || t === 'sliding_attention'))
      bad(`layer_types must list "full_attention" or "sliding_attention" for each of the ${layers} layers, got ${show(lt)}`);
    const first = (lt as string[]).indexOf('sliding_attention');
    if (first >= 0 && (lt as string[]).slice(first).some((t) => t !== 'sliding_attention')) bad(`layer_types with full attention after sliding-window layers is not supported`);
    if (first >= 0 && !isPosInt(sw)) bad(`layer_types has sliding_attention layers but sliding_window is ${show(sw)}`);
    // Qwen2: the window exists only with use_sliding_window (HF sets sliding_window to None otherwise)
    if (first < 0 || (modelType === 'qwen2' && c.use_sliding_window !== true)) window = null;
    else {
      window = sw as number;
      from = first;
    }
  }
  if (window !== null && from >= layers) window = null; // no layer uses it
  if (window === null) from = 0;
  return { model_type: modelType, qkv_bias: qkv, o_bias: o, rope_scaling: rope, sliding_window: window, sliding_window_from: from };
}

/**
 * Llama 3 scaled inverse frequencies (in place): wavelengths above original/low_freq_factor are
 * divided by `factor`, below original/high_freq_factor kept, and interpolated in between.
 */
export function scaledInvFreq(inv: Float64Array, s: Llama3RopeScaling): Float64Array {
  const old = s.original_max_position_embeddings;
  const lowWave = old / s.low_freq_factor;
  const highWave = old / s.high_freq_factor;
  for (let i = 0; i < inv.length; i++) {
    const f = inv[i]!;
    const wave = (2 * Math.PI) / f;
    if (wave < highWave) continue;
    if (wave > lowWave) inv[i] = f / s.factor;
    else {
      const smooth = (old / wave - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      inv[i] = (1 - smooth) * (f / s.factor) + smooth * f;
    }
  }
  return inv;
}
