/**
 * Save / load a Llama + tokenizer as a Hugging Face model folder: config.json (as transformers
 * writes LlamaConfig), model.safetensors, generation_config.json and the tokenizer files.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { Checkpoint, CheckpointWriter, replaceDir } from '../io/checkpoint.ts';
import { SafetensorsFile, writeSafetensors } from '../io/safetensors.ts';
import { decodeToF32, encodeFromF32, torchDTypeName } from '../tensor/dtype.ts';
import type { FloatDType } from '../tensor/dtype.ts';
import { Llama, makeConfig, paramShapes } from './model.ts';
import type { LlamaConfig } from './model.ts';
import type { Tokenizer } from './tokenizer.ts';
import { closeTokenizer, loadEngineTokenizer, loadTokenizer } from './load-tokenizer.ts';
import type { TextTokenizer } from './load-tokenizer.ts';

export const TRANSFORMERS_VERSION = '4.46.0';

/** config.json content for a LlamaForCausalLM, field for field as transformers writes it. */
export function hfConfigJson(cfg: LlamaConfig, dtype: FloatDType = 'F32'): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: cfg.bos_token_id,
    eos_token_id: cfg.eos_token_id,
    head_dim: cfg.head_dim,
    hidden_act: 'silu',
    hidden_size: cfg.hidden_size,
    initializer_range: 0.02,
    intermediate_size: cfg.intermediate_size,
    max_position_embeddings: cfg.max_position_embeddings,
    mlp_bias: false,
    model_type: 'llama',
    num_attention_heads: cfg.num_attention_heads,
    num_hidden_layers: cfg.num_hidden_layers,
    num_key_value_heads: cfg.num_key_value_heads,
    pad_token_id: cfg.pad_token_id,
    pretraining_tp: 1,
    rms_norm_eps: cfg.rms_norm_eps,
    rope_scaling: null,
    rope_theta: cfg.rope_theta,
    tie_word_embeddings: cfg.tie_word_embeddings,
    torch_dtype: torchDTypeName(dtype),
    transformers_version: TRANSFORMERS_VERSION,
    use_cache: true,
    vocab_size: cfg.vocab_size,
  };
}

/** Parse an HF config.json object into our config (rope_theta from the top level or rope_parameters). */
export function configFromHf(j: any, file = 'config.json'): LlamaConfig {
  if (typeof j !== 'object' || j === null) throw new Error(`${file}: not a JSON object`);
  if (j.model_type !== undefined && j.model_type !== 'llama') throw new Error(`${file}: model_type is ${JSON.stringify(j.model_type)}, only "llama" is supported`);
  if (j.hidden_act !== undefined && j.hidden_act !== 'silu') throw new Error(`${file}: hidden_act ${j.hidden_act} unsupported (silu only)`);
  if (j.attention_bias || j.mlp_bias) throw new Error(`${file}: attention_bias/mlp_bias are not supported`);
  if (j.rope_scaling) throw new Error(`${file}: rope_scaling is not supported`);
  for (const k of ['vocab_size', 'hidden_size']) if (typeof j[k] !== 'number') throw new Error(`${file}: missing number field ${k}`);
  const first = (v: unknown) => (Array.isArray(v) ? v[0] : v);
  const ropeTheta = j.rope_theta ?? j.rope_parameters?.rope_theta;
  try {
    return makeConfig({
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
}

/**
 * Write `model` (+ tokenizer) as an HF folder at `dir`, atomically: everything goes to a temp
 * sibling first, which then replaces `dir`.
 */
export function saveModel(dir: string, model: Llama, tokenizer: Tokenizer | null, opts: SaveOptions = {}): void {
  const dtype = opts.dtype ?? 'F32';
  const target = resolve(dir);
  mkdirSync(dirname(target), { recursive: true });
  const tmp = join(dirname(target), `.${basename(target)}.tmp-${process.pid}-${Date.now()}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    const cfg = model.config;
    const weights = model.getWeights();
    const shapes = new Map(paramShapes(cfg));
    writeSafetensors(
      join(tmp, 'model.safetensors'),
      [...weights].map(([name, data]) => ({ name, dtype, shape: shapes.get(name)!, data: encodeFromF32(data, dtype) })),
      { format: 'pt' },
    );
    writeJson(join(tmp, 'config.json'), hfConfigJson(cfg, dtype));
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
 * Writes merged `weights` (every tensor of `config`, f32) as an HF folder at `dir` (atomically, via
 * CheckpointWriter): the seed's config.json (torch_dtype set to `dtype` when given), its
 * generation config and tokenizer files, and the weights in `dtype` (default F32). Used for a
 * served candidate (eval.server) and for the recursive mode's merged factory.
 */
export function saveMergedModel(dir: string, seedDir: string, config: LlamaConfig, weights: Map<string, Float32Array>, dtype?: FloatDType): void {
  const cfgPath = join(seedDir, 'config.json');
  let hf: Record<string, unknown>;
  try {
    hf = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`eval.server: cannot read the seed model's config ${cfgPath} (${(e as Error).message})`);
  }
  const shapes = paramShapes(config);
  for (const [name, shape] of shapes) {
    const w = weights.get(name);
    if (!w) throw new Error(`eval.server: merged weights have no tensor ${name}`);
    const n = shape.reduce((a, b) => a * b, 1);
    if (w.length !== n) throw new Error(`eval.server: merged tensor ${name} has ${w.length} elements, shape ${JSON.stringify(shape)} needs ${n}`);
  }
  const dt = dtype ?? 'F32';
  const w = new CheckpointWriter(dir);
  try {
    w.plan(shapes.map(([name, shape]) => ({ name, dtype: dt, shape })));
    for (const [name] of shapes) w.write(name, encodeFromF32(weights.get(name)!, dt));
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
