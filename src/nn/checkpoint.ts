/**
 * Save / load a Llama + tokenizer as a Hugging Face model folder: config.json (as transformers
 * writes LlamaConfig), model.safetensors, generation_config.json and the tokenizer files.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { Checkpoint, CheckpointWriter, INDEX_FILE, planShards, replaceDir, shardName } from '../io/checkpoint.ts';
import { SafetensorsFile, writeSafetensors } from '../io/safetensors.ts';
import { decodeToF32, DTYPE_BYTES, encodeFromF32, isFloatDType, torchDTypeName } from '../tensor/dtype.ts';
import type { FloatDType } from '../tensor/dtype.ts';
import { Llama, makeConfig, paramShapes } from './model.ts';
import type { LlamaConfig } from './model.ts';
import { InferModel } from './infer.ts';
import type { Tokenizer } from './tokenizer.ts';
import { readArchFeatures, readModelType } from '../io/architectures.ts';
import { closeTokenizer, loadEngineTokenizer, loadTokenizer } from './load-tokenizer.ts';
import type { TextTokenizer } from './load-tokenizer.ts';

export const TRANSFORMERS_VERSION = '4.46.0';

/**
 * config.json content for the config's architecture (LlamaForCausalLM, MistralForCausalLM or
 * Qwen2ForCausalLM), field for field as transformers writes it.
 */
export function hfConfigJson(cfg: LlamaConfig, dtype: FloatDType = 'F32'): Record<string, unknown> {
  if (cfg.model_type === 'mistral' || cfg.model_type === 'qwen2') return hfConfigJsonOther(cfg, dtype);
  if (cfg.qkv_bias !== cfg.o_bias) throw new Error('llama config: attention_bias gives q, k, v and o biases together');
  if (cfg.sliding_window !== null) throw new Error('llama config: LlamaForCausalLM has no sliding window');
  return sortedKeys({
    ...sharedConfigFields(cfg, dtype),
    architectures: ['LlamaForCausalLM'],
    attention_bias: cfg.qkv_bias,
    mlp_bias: false,
    model_type: 'llama',
    pretraining_tp: 1,
    rope_scaling: cfg.rope_scaling ? { ...cfg.rope_scaling } : null,
  });
}

/** The config.json fields LlamaConfig, MistralConfig and Qwen2Config write alike. */
function sharedConfigFields(cfg: LlamaConfig, dtype: FloatDType): Record<string, unknown> {
  return {
    attention_dropout: 0.0,
    bos_token_id: cfg.bos_token_id,
    eos_token_id: cfg.eos_token_id,
    head_dim: cfg.head_dim,
    hidden_act: 'silu',
    hidden_size: cfg.hidden_size,
    initializer_range: 0.02,
    intermediate_size: cfg.intermediate_size,
    max_position_embeddings: cfg.max_position_embeddings,
    model_type: cfg.model_type,
    num_attention_heads: cfg.num_attention_heads,
    num_hidden_layers: cfg.num_hidden_layers,
    num_key_value_heads: cfg.num_key_value_heads,
    pad_token_id: cfg.pad_token_id,
    rms_norm_eps: cfg.rms_norm_eps,
    rope_theta: cfg.rope_theta,
    tie_word_embeddings: cfg.tie_word_embeddings,
    torch_dtype: torchDTypeName(dtype),
    transformers_version: TRANSFORMERS_VERSION,
    use_cache: true,
    vocab_size: cfg.vocab_size,
  };
}

/** Keys in sorted order, as save_pretrained writes them. */
function sortedKeys(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** MistralConfig / Qwen2Config as transformers writes them. */
function hfConfigJsonOther(cfg: LlamaConfig, dtype: FloatDType): Record<string, unknown> {
  if (cfg.rope_scaling) throw new Error(`${cfg.model_type} config: rope_scaling "llama3" belongs to LlamaForCausalLM`);
  const qwen = cfg.model_type === 'qwen2';
  const base: Record<string, unknown> = {
    ...sharedConfigFields(cfg, dtype),
    architectures: [qwen ? 'Qwen2ForCausalLM' : 'MistralForCausalLM'],
    sliding_window: cfg.sliding_window,
  };
  if (qwen) {
    base.max_window_layers = cfg.sliding_window === null ? cfg.num_hidden_layers : cfg.sliding_window_from;
    base.rope_scaling = null;
    base.use_sliding_window = cfg.sliding_window !== null;
    if (cfg.sliding_window === null) base.sliding_window = null;
  } else if (cfg.sliding_window_from !== 0) throw new Error('mistral config: the sliding window applies to every layer');
  return sortedKeys(base);
}

/**
 * Parse an HF config.json object (LlamaForCausalLM, MistralForCausalLM or Qwen2ForCausalLM) into
 * our config (rope_theta from the top level or rope_parameters; architecture features as
 * io/architectures.ts reads them).
 */
export function configFromHf(j: any, file = 'config.json'): LlamaConfig {
  if (typeof j !== 'object' || j === null) throw new Error(`${file}: not a JSON object`);
  const bad = (msg: string): never => {
    throw new Error(`${file}: ${msg}`);
  };
  if (j.model_type === undefined && j.architectures === undefined) j = { ...j, model_type: 'llama' }; // bare configs of older tests and tools
  const modelType = readModelType(j, bad);
  if (j.hidden_act !== undefined && j.hidden_act !== 'silu') throw new Error(`${file}: hidden_act ${j.hidden_act} unsupported (silu only)`);
  for (const k of ['vocab_size', 'hidden_size']) if (typeof j[k] !== 'number') throw new Error(`${file}: missing number field ${k}`);
  const layers = typeof j.num_hidden_layers === 'number' ? j.num_hidden_layers : 32;
  const features = readArchFeatures(j, modelType, layers, j.max_position_embeddings ?? 2048, bad);
  const first = (v: unknown) => (Array.isArray(v) ? v[0] : v);
  const ropeTheta = j.rope_theta ?? j.rope_parameters?.rope_theta;
  try {
    return makeConfig({
      ...features,
      vocab_size: j.vocab_size,
      hidden_size: j.hidden_size,
      intermediate_size: j.intermediate_size ?? 11008,
      num_hidden_layers: j.num_hidden_layers ?? 32,
      num_attention_heads: j.num_attention_heads ?? 32,
      num_key_value_heads: j.num_key_value_heads ?? j.num_attention_heads ?? 32,
      head_dim: j.head_dim ?? undefined,
      rms_norm_eps: j.rms_norm_eps ?? 1e-6,
      rope_theta: ropeTheta ?? 10000,
      max_position_embeddings: j.max_position_embeddings ?? 2048,
      tie_word_embeddings: j.tie_word_embeddings ?? false,
      bos_token_id: first(j.bos_token_id) ?? 1,
      eos_token_id: first(j.eos_token_id) ?? 2,
      pad_token_id: first(j.pad_token_id) ?? 0,
    });
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
}

export interface SaveOptions {
  /** Weight dtype on disk (default F32). */
  dtype?: FloatDType;
  /** Extra JSON files to write into the folder (name → object), e.g. a training state. */
  extraJson?: Record<string, unknown>;
  /** Extra safetensors files (name → tensors as f32), e.g. optimizer moments. */
  extraTensors?: Record<string, Map<string, Float32Array>>;
  /**
   * Largest weight shard in bytes: above it the weights go to `model-0000i-of-0000n.safetensors`
   * shards with `model.safetensors.index.json`, as save_pretrained splits them (default: one file
   * up to io/checkpoint's DEFAULT_MAX_SHARD_BYTES).
   */
  maxShardBytes?: number;
}

/**
 * Write `model` (+ tokenizer) as an HF folder at `dir`, atomically: everything goes to a temp
 * sibling first, which then replaces `dir`.
 */
export function saveModel(dir: string, model: Llama, tokenizer: Tokenizer | null, opts: SaveOptions = {}): void {
  saveWeights(dir, model.config, model.getWeights(), tokenizer, opts);
}

/**
 * Write f32 `weights` (every tensor of `cfg`, by HF name) + tokenizer as an HF folder at `dir`,
 * atomically (CheckpointWriter: a temp sibling replaces `dir` on commit): config.json,
 * generation_config.json, the weights (one file or shards + index, see `maxShardBytes`), the
 * tokenizer files and the extra files.
 */
export function saveWeights(dir: string, cfg: LlamaConfig, weights: Map<string, Float32Array>, tokenizer: Tokenizer | null, opts: SaveOptions = {}): void {
  const dtype = opts.dtype ?? 'F32';
  const shapes = paramShapes(cfg);
  for (const [name, shape] of shapes) {
    const a = weights.get(name);
    const n = shape.reduce((x, y) => x * y, 1);
    if (!a) throw new Error(`save: missing tensor ${name}`);
    if (a.length !== n) throw new Error(`save: tensor ${name} has ${a.length} values, shape [${shape}] needs ${n}`);
  }
  const config = hfConfigJson(cfg, dtype); // refuses an inconsistent config before anything is written
  const target = resolve(dir);
  mkdirSync(dirname(target), { recursive: true });
  const tmp = join(dirname(target), `.${basename(target)}.tmp-${process.pid}-${Date.now()}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    const planned = shapes.map(([name, shape]) => ({ name, dtype, shape }));
    const shards = planShards(planned, opts.maxShardBytes ?? Infinity);
    const files = shards.map((_, i) => (shards.length === 1 ? 'model.safetensors' : shardName(i, shards.length)));
    shards.forEach((ts, i) => writeSafetensors(join(tmp, files[i]!), ts.map((t) => ({ ...t, data: encodeFromF32(weights.get(t.name)!, dtype) })), { format: 'pt' }));
    if (shards.length > 1) {
      const total = planned.reduce((n, t) => n + t.shape.reduce((x, y) => x * y, 1) * DTYPE_BYTES[dtype], 0);
      const map = shards.flatMap((ts, i) => ts.map((t) => [t.name, files[i]!] as const)).sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
      writeJson(join(tmp, INDEX_FILE), { metadata: { total_size: total }, weight_map: Object.fromEntries(map) });
    }
    writeJson(join(tmp, 'config.json'), config);
    writeJson(join(tmp, 'generation_config.json'), {
      _from_model_config: true,
      bos_token_id: cfg.bos_token_id,
      eos_token_id: cfg.eos_token_id,
      pad_token_id: cfg.pad_token_id,
      transformers_version: TRANSFORMERS_VERSION,
    });
    tokenizer?.save(tmp, { modelMaxLength: cfg.max_position_embeddings });
    for (const [name, obj] of Object.entries(opts.extraJson ?? {})) writeJson(join(tmp, name), obj);
    for (const [name, ts] of Object.entries(opts.extraTensors ?? {})) {
      writeSafetensors(join(tmp, name), [...ts].map(([n, data]) => ({ name: n, dtype: 'F32' as const, shape: [data.length], data: encodeFromF32(data, 'F32') })));
    }
    replaceDir(tmp, target);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

function writeJson(path: string, obj: unknown): void {
  writeFileSync(path, JSON.stringify(obj, null, 2) + '\n');
}

/** Files carried from the seed folder into a merged model's folder (besides the weights). */
const CARRIED_FILES = [
  'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.model',
  'added_tokens.json', 'vocab.json', 'merges.txt', 'chat_template.jinja', 'chat_template.json',
];

/**
 * Writes merged `weights` (f32, by HF name) as an HF folder at `dir` (atomically, via
 * CheckpointWriter), driven by the seed folder's safetensors headers, not by the engine's idea of
 * the architecture: every tensor of the seed, in the seed's order and shapes — from `weights` in
 * `dtype` (default F32) when merged, else copied byte for byte in the seed's dtype (e.g. a tensor
 * the engine does not use). Beside them the seed's config.json (only torch_dtype/dtype set to
 * `dtype` when given), generation config and tokenizer files, copied verbatim. `config` (the
 * engine's, when it has one) must be covered by `weights`. Used for a served candidate
 * (eval.server) and for the recursive mode's merged factory.
 */
export function saveMergedModel(dir: string, seedDir: string, config: LlamaConfig | null, weights: Map<string, Float32Array>, dtype?: FloatDType): void {
  const cfgPath = join(seedDir, 'config.json');
  let hf: Record<string, unknown>;
  try {
    hf = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`eval.server: cannot read the seed model's config ${cfgPath} (${(e as Error).message})`);
  }
  for (const [name] of config ? paramShapes(config) : []) if (!weights.has(name)) throw new Error(`eval.server: merged weights have no tensor ${name}`);
  const dt = dtype ?? 'F32';
  const seed = Checkpoint.open(seedDir);
  try {
    const names = seed.tensorNames();
    const known = new Set(names);
    for (const name of weights.keys()) if (!known.has(name)) throw new Error(`eval.server: merged tensor ${name} is not in the seed model ${seedDir}`);
    const planned = names.map((name) => {
      const { shape, dtype: seedDtype } = seed.info(name);
      const w = weights.get(name);
      if (!w) return { name, dtype: seedDtype, shape: [...shape] };
      const n = shape.reduce((a, b) => a * b, 1);
      if (w.length !== n) throw new Error(`eval.server: merged tensor ${name} has ${w.length} elements, shape ${JSON.stringify(shape)} needs ${n}`);
      return { name, dtype: dt, shape: [...shape] };
    });
    const w = new CheckpointWriter(dir);
    try {
      w.plan(planned);
      for (const { name } of planned) {
        const m = weights.get(name);
        w.write(name, m ? encodeFromF32(m, dt) : seed.readBytes(name));
      }
      if (dtype) {
        const t = torchDTypeName(dtype);
        if ('dtype' in hf) hf.dtype = t;
        hf.torch_dtype = t;
      }
      w.writeJson('config.json', hf);
      for (const f of CARRIED_FILES) if (existsSync(join(seedDir, f))) w.copyFile(join(seedDir, f), f);
      w.commit();
    } finally {
      w.abort(); // no-op after commit
    }
  } finally {
    seed.close();
  }
}

/**
 * Whether `dir` holds a complete checkpoint of `config` (config.json, tokenizer.json, every tensor of
 * the config with its shape, safetensors headers and sizes valid); never throws.
 */
export function isCompleteCheckpoint(dir: string, config: LlamaConfig): boolean {
  if (!existsSync(join(dir, 'config.json')) || !existsSync(join(dir, 'tokenizer.json'))) return false;
  let ck: Checkpoint | null = null;
  try {
    readConfig(dir);
    ck = Checkpoint.open(dir);
    for (const [name, shape] of paramShapes(config)) {
      if (!ck.has(name)) return false;
      const s = ck.info(name).shape;
      if (s.length !== shape.length || s.some((x, i) => x !== shape[i])) return false;
    }
    return true;
  } catch {
    return false;
  } finally {
    ck?.close();
  }
}

/** Read config.json of an HF folder. */
export function readConfig(dir: string): LlamaConfig {
  const path = join(dir, 'config.json');
  let j: unknown;
  try {
    j = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: cannot read config (${(e as Error).message})`);
  }
  return configFromHf(j, path);
}

/**
 * Which tokenizer `loadModel` loads: 'engine' (default) the engine's own byte-level layout, which
 * training, DPO and the tiny factory need (`path` names the caller in the error when the folder has
 * another layout); 'any' the folder's own tokenizer whatever its layout (`load-tokenizer.ts`: the
 * engine's when the files are its layout, else the Hugging Face library's), for inference; 'none'
 * no tokenizer (weights only).
 */
export type LoadModelOptions = { tokenizer?: 'engine'; path?: string } | { tokenizer: 'any' } | { tokenizer: 'none' };

/** Load an HF Llama folder: config, tokenizer (if present; checked first) and weights (any float dtype → f32). */
export function loadModel(dir: string, opts?: { tokenizer?: 'engine'; path?: string }): { model: Llama; tokenizer: Tokenizer | null; config: LlamaConfig };
export function loadModel(dir: string, opts: { tokenizer: 'any' }): { model: Llama; tokenizer: TextTokenizer | null; config: LlamaConfig };
export function loadModel(dir: string, opts: { tokenizer: 'none' }): { model: Llama; tokenizer: null; config: LlamaConfig };
export function loadModel(dir: string, opts: LoadModelOptions = {}): { model: Llama; tokenizer: TextTokenizer | null; config: LlamaConfig } {
  const config = readConfig(dir);
  const mode = opts.tokenizer ?? 'engine';
  let tokenizer: TextTokenizer | null = null;
  if (mode !== 'none' && existsSync(join(dir, 'tokenizer.json'))) {
    tokenizer = mode === 'any'
      ? loadTokenizer(dir, { vocabSize: config.vocab_size })
      : loadEngineTokenizer(dir, ('path' in opts && opts.path) || 'this command', { vocabSize: config.vocab_size });
  }
  const ck = Checkpoint.open(dir);
  try {
    const weights = new Map<string, Float32Array>();
    for (const [name, shape] of paramShapes(config)) {
      if (!ck.has(name)) throw new Error(`${dir}: missing tensor ${name}`);
      const info = ck.info(name);
      if (info.shape.length !== shape.length || info.shape.some((s, i) => s !== shape[i])) {
        throw new Error(`${dir}: tensor ${name} has shape [${info.shape}], config implies [${shape}]`);
      }
      weights.set(name, decodeToF32(ck.readBytes(name), info.dtype));
    }
    return { model: Llama.fromWeights(config, weights), tokenizer, config };
  } catch (e) {
    void closeTokenizer(tokenizer);
    throw e;
  } finally {
    ck.close();
  }
}

/**
 * Load an HF Llama folder straight into the inference engine (`InferModel`, infer.ts), never through
 * the framework (whose 32-bit wasm heap caps a model at ≈ 1B parameters): every tensor's presence,
 * shape and dtype checked against config.json before anything is allocated, then each tensor read
 * and decoded (bf16 / f16 / f32, one file or shards) into a scratch buffer and packed into the form
 * the kernels read, one at a time. Peak memory: the engine's packed weights (4 bytes per parameter)
 * plus the largest tensor twice (raw and f32). Same f32 values as `loadModel` + `InferModel.of`, so
 * the same logits and generations. The tokenizer as loadModel's 'any' / 'none'. `useNative` as
 * `InferModel.fromWeights` (default: the addon's kernels when loaded).
 */
export function loadInferModel(dir: string, opts: { tokenizer?: 'any' | 'none'; useNative?: boolean } = {}): { model: InferModel; tokenizer: TextTokenizer | null; config: LlamaConfig } {
  const config = readConfig(dir);
  const ck = Checkpoint.open(dir);
  let tokenizer: TextTokenizer | null = null;
  try {
    let maxBytes = 0;
    let maxNumel = 0;
    for (const [name, shape] of paramShapes(config)) {
      if (!ck.has(name)) throw new Error(`${dir}: missing tensor ${name}`);
      const info = ck.info(name);
      if (info.shape.length !== shape.length || info.shape.some((s, i) => s !== shape[i])) {
        throw new Error(`${dir}: tensor ${name} has shape [${info.shape}], config implies [${shape}]`);
      }
      if (!isFloatDType(info.dtype) && info.dtype !== 'F64') throw new Error(`${dir}: tensor ${name} has dtype ${info.dtype} (not a float type)`);
      maxNumel = Math.max(maxNumel, shape.reduce((a, b) => a * b, 1));
      if (info.dtype !== 'F32') maxBytes = Math.max(maxBytes, info.byteLength);
    }
    if ((opts.tokenizer ?? 'any') === 'any' && existsSync(join(dir, 'tokenizer.json'))) tokenizer = loadTokenizer(dir, { vocabSize: config.vocab_size });
    const raw = new Uint8Array(maxBytes);
    const f32 = new Float32Array(maxNumel);
    const model = InferModel.fromSource(config, (name, keep) => {
      const n = ck.info(name).shape.reduce((a, b) => a * b, 1);
      return ck.readF32(name, keep ? undefined : f32.subarray(0, n), raw);
    }, { useNative: opts.useNative });
    return { model, tokenizer, config };
  } catch (e) {
    void closeTokenizer(tokenizer);
    throw e;
  } finally {
    ck.close();
  }
}

/** Read an extra f32 safetensors file written by saveModel (name → flat array). */
export function loadExtraTensors(dir: string, file: string): Map<string, Float32Array> {
  const f = SafetensorsFile.open(join(dir, file));
  try {
    const out = new Map<string, Float32Array>();
    for (const [name, e] of f.tensors) out.set(name, decodeToF32(f.readBytes(name), e.dtype));
    return out;
  } finally {
    f.close();
  }
}
