/**
 * The one reader of a model folder's config.json and tokenizer.json, shared by eval, serve, merge,
 * export-gguf, inspect and the loop. Every value is checked for its type and range and against the
 * tensors it describes — before anything is sized from it. A size in config.json is never trusted:
 * it must equal what the safetensors headers hold (layers, rows, columns), so a config cannot make
 * a command allocate more than the checkpoint itself holds.
 *
 * Two levels:
 * - `configProblems` (any architecture with Hugging Face decoder naming, `model.layers.N.…`): the
 *   fields present must be well-typed and agree with the tensors. inspect prints these as warnings;
 *   merge refuses them.
 * - `readLlamaFolder` (the built-in engine, export-gguf, the loop's world models): a complete
 *   LlamaForCausalLM, MistralForCausalLM or Qwen2ForCausalLM (architectures.ts: required fields,
 *   supported features only, exactly the expected tensors with the implied shapes, biases included)
 *   with a byte-level BPE tokenizer.json whose ids fit the embedding. export-gguf refuses what it
 *   does not write (anything but a plain Llama) itself.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Checkpoint } from './checkpoint.ts';
import { CheckpointError } from './errors.ts';
import { readJsonObject } from './files.ts';
import { readArchFeatures, readModelType, type ArchFeatures } from './architectures.ts';

/** Largest max_position_embeddings the engine accepts (its RoPE tables are sized from it): 2^20. */
export const MAX_POSITION_EMBEDDINGS = 1 << 20;

const SIZE_FIELDS = ['vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'head_dim', 'max_position_embeddings'] as const;
const TOKEN_ID_FIELDS = ['bos_token_id', 'eos_token_id', 'pad_token_id'] as const;
const LAYER_RE = /^model\.layers\.(\d+)\./;
/** model_types whose q/k/up projections are exactly heads × head_dim, kv_heads × head_dim, intermediate_size rows. */
const PLAIN_LAYOUTS = new Set(['llama', 'mistral', 'qwen2', 'qwen3']);
const EMBED = 'model.embed_tokens.weight';
const LM_HEAD = 'lm_head.weight';

const show = (v: unknown): string => {
  if (typeof v === 'number' && !Number.isSafeInteger(v) && Number.isFinite(v)) return String(v);
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
};
const isPosInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
const present = (c: Record<string, unknown>, k: string): boolean => c[k] !== undefined && c[k] !== null;

/** Token ids of a bos/eos/pad field: null when absent, else the list (a single id or a list of ids). */
function tokenIds(v: unknown): number[] | null | 'bad' {
  if (v === undefined || v === null) return null;
  const list = Array.isArray(v) ? v : [v];
  if (list.length === 0) return 'bad';
  for (const x of list) if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0) return 'bad';
  return list as number[];
}

/** Distinct `model.layers.N.` indices of the tensors, sorted. */
function layerIndices(ck: Checkpoint): number[] {
  const ids = new Set<number>();
  for (const n of ck.tensorNames()) {
    const m = LAYER_RE.exec(n);
    if (m) ids.add(Number(m[1]));
  }
  return [...ids].sort((a, b) => a - b);
}

function list5(xs: number[], more: boolean): string {
  return xs.slice(0, 5).join(', ') + (more || xs.length > 5 ? ', …' : '');
}

function sameBytes(ck: Checkpoint, a: string, b: string): boolean {
  const ea = ck.info(a);
  const eb = ck.info(b);
  if (ea.dtype !== eb.dtype || ea.shape.join(',') !== eb.shape.join(',')) return false;
  const x = ck.readBytes(a);
  const y = ck.readBytes(b);
  return Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength));
}

/**
 * Disagreements between config.json (`config`) and the tensors of `ck`, and ill-typed fields, as
 * messages starting with "config.json". Only fields present are checked; nothing is allocated from
 * a config value (the loops run over what the checkpoint holds). Reads the embedding and lm_head only
 * when the config says the two are tied and both are stored.
 */
export function configProblems(config: Record<string, unknown>, ck: Checkpoint): string[] {
  const out: string[] = [];
  const c = config;
  for (const k of SIZE_FIELDS) {
    if (present(c, k) && !isPosInt(c[k])) out.push(`config.json: ${k} must be a positive integer, got ${show(c[k])}`);
  }
  if (c.tie_word_embeddings !== undefined && typeof c.tie_word_embeddings !== 'boolean') out.push(`config.json: tie_word_embeddings must be true or false, got ${show(c.tie_word_embeddings)}`);
  if (c.architectures !== undefined && c.architectures !== null && (!Array.isArray(c.architectures) || !c.architectures.every((a) => typeof a === 'string' && a !== '')))
    out.push(`config.json: architectures must be a list of class names, got ${show(c.architectures)}`);
  if (c.model_type !== undefined && (typeof c.model_type !== 'string' || c.model_type === '')) out.push(`config.json: model_type must be a string, got ${show(c.model_type)}`);

  const emb = ck.has(EMBED) ? ck.info(EMBED).shape : null;
  const vocab = isPosInt(c.vocab_size) ? c.vocab_size : emb && emb.length === 2 ? emb[0]! : null;
  for (const k of TOKEN_ID_FIELDS) {
    const ids = tokenIds(c[k]);
    if (ids === 'bad') out.push(`config.json: ${k} must be a token id (a non-negative integer, or a list of them), got ${show(c[k])}`);
    else if (ids && vocab !== null) {
      const bad = ids.find((x) => x >= vocab);
      if (bad !== undefined) out.push(`config.json: ${k} ${bad} is outside the vocabulary (vocab_size ${vocab})`);
    }
  }

  const layers = layerIndices(ck);
  if (isPosInt(c.num_hidden_layers) && layers.length > 0) {
    const n = c.num_hidden_layers;
    const have = new Set(layers);
    const missing: number[] = [];
    for (let i = 0; i < n && missing.length < 6; i++) if (!have.has(i)) missing.push(i); // ≤ layers.length + 6 steps
    const extra = layers.filter((i) => i >= n);
    const holds = `the checkpoint holds ${layers.length} layer${layers.length === 1 ? '' : 's'}`;
    if (missing.length > 0) out.push(`config.json has num_hidden_layers ${n} but tensors of layer(s) ${list5(missing, false)} are missing (${holds})`);
    if (extra.length > 0) out.push(`config.json has num_hidden_layers ${n} but tensors exist for layer(s) ${list5(extra, false)} (${holds})`);
  }
  if (emb && emb.length === 2) {
    if (isPosInt(c.vocab_size) && emb[0] !== c.vocab_size) out.push(`config.json has vocab_size ${c.vocab_size} but ${EMBED} has ${emb[0]} rows`);
    if (isPosInt(c.hidden_size) && emb[1] !== c.hidden_size) out.push(`config.json has hidden_size ${c.hidden_size} but ${EMBED} has ${emb[1]} columns`);
  }
  if (c.tie_word_embeddings === false && emb && !ck.has(LM_HEAD)) out.push(`config.json says tie_word_embeddings false but there is no ${LM_HEAD}`);
  if (c.tie_word_embeddings === true && emb && ck.has(LM_HEAD) && !sameBytes(ck, EMBED, LM_HEAD))
    out.push(`config.json says tie_word_embeddings true but the checkpoint holds a trained ${LM_HEAD} (different from ${EMBED}) that would be ignored; set tie_word_embeddings to false`);

  // attention and MLP widths against layer 0's projections, for the architectures whose layout is
  // known to follow these fields exactly (others, e.g. latent attention, size them differently)
  const archs = Array.isArray(c.architectures) ? c.architectures : [];
  const plainLayout = typeof c.model_type === 'string' ? PLAIN_LAYOUTS.has(c.model_type) : archs.includes('LlamaForCausalLM');
  if (!plainLayout) return out;
  const shapeOf = (n: string) => (ck.has(n) ? ck.info(n).shape : null);
  const q = shapeOf('model.layers.0.self_attn.q_proj.weight');
  const kp = shapeOf('model.layers.0.self_attn.k_proj.weight');
  const up = shapeOf('model.layers.0.mlp.up_proj.weight');
  const heads = isPosInt(c.num_attention_heads) ? c.num_attention_heads : null;
  const kv = isPosInt(c.num_key_value_heads) ? c.num_key_value_heads : heads;
  const hidden = isPosInt(c.hidden_size) ? c.hidden_size : null;
  const headDim = isPosInt(c.head_dim) ? c.head_dim : heads && hidden && hidden % heads === 0 ? hidden / heads : null;
  if (heads !== null && kv !== null && heads % kv !== 0) out.push(`config.json: num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kv}`);
  if (q && q.length === 2 && heads !== null && headDim !== null && q[0] !== heads * headDim)
    out.push(`config.json has num_attention_heads ${heads} × head_dim ${headDim} = ${heads * headDim} but model.layers.0.self_attn.q_proj.weight has ${q[0]} rows`);
  if (kp && kp.length === 2 && kv !== null && headDim !== null && kp[0] !== kv * headDim)
    out.push(`config.json has num_key_value_heads ${kv} × head_dim ${headDim} = ${kv * headDim} but model.layers.0.self_attn.k_proj.weight has ${kp[0]} rows`);
  if (up && up.length === 2 && isPosInt(c.intermediate_size) && up[0] !== c.intermediate_size)
    out.push(`config.json has intermediate_size ${c.intermediate_size} but model.layers.0.mlp.up_proj.weight has ${up[0]} rows`);
  return out;
}

/** Throws the first of `configProblems` (as a CheckpointError naming config.json). */
export function checkConfigAgainstTensors(ck: Checkpoint): void {
  if (!ck.config) return;
  const p = configProblems(ck.config, ck)[0];
  if (p) throw new CheckpointError(join(ck.dir, 'config.json'), p.replace(/^config\.json(: | has | says )/, ''));
}

// ------------------------------------------------------------------------------------ tokenizer

/** GPT-2 bytes_to_unicode (byte → printable character): the 256 characters a byte-level BPE vocabulary must hold. */
export const BYTE_CHARS: readonly string[] = (() => {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const out = new Array<string>(256);
  bs.forEach((b, i) => (out[b] = String.fromCodePoint(cs[i]!)));
  return out;
})();

export interface TokenizerFacts {
  /** model.type (BPE, Unigram, WordPiece, WordLevel). */
  type: string;
  /** Tokens in model.vocab plus added tokens not in it. */
  size: number;
  /** Largest id used (vocab or added tokens). */
  maxId: number;
}

/**
 * Checks a tokenizer.json: a JSON object with a `model` whose vocabulary is non-empty and well-formed;
 * for BPE, unique non-negative ids and merges whose two parts and result are in the vocabulary;
 * `added_tokens` a list of {id, content}; every id below `vocabSize` when given (the embedding rows).
 * `byteLevel`: a byte-level BPE (what export-gguf and the engine read) holding all 256 byte tokens.
 */
export function checkTokenizerFile(path: string, opts: { vocabSize?: number | null; byteLevel?: boolean } = {}): TokenizerFacts {
  const j = readJsonObject(path, 'tokenizer.json');
  const bad = (msg: string): never => {
    throw new CheckpointError(path, msg);
  };
  const model = j.model;
  if (typeof model !== 'object' || model === null || Array.isArray(model)) bad(`tokenizer.json has no 'model' object`);
  const m = model as Record<string, unknown>;
  const type = m.type === undefined && m.merges !== undefined ? 'BPE' : m.type;
  if (typeof type !== 'string') bad(`tokenizer.json: model.type must be a string, got ${show(m.type)}`);
  if (opts.byteLevel && type !== 'BPE') bad(`tokenizer.json: model.type ${show(type)} is not supported (only byte-level BPE)`);
  const limit = opts.vocabSize ?? null;
  const byId = new Map<number, string>();
  let maxId = -1;
  const place = (content: string, id: unknown, what: string) => {
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) bad(`tokenizer.json: ${what} ${show(content)} has a bad id ${show(id)}`);
    const i = id as number;
    if (limit !== null && i >= limit) bad(`tokenizer.json: ${what} ${show(content)} has id ${i}, but the model's vocab_size is ${limit}`);
    const had = byId.get(i);
    if (had !== undefined && had !== content) bad(`tokenizer.json: id ${i} is both ${show(had)} and ${show(content)}`);
    byId.set(i, content);
    if (i > maxId) maxId = i;
  };
  let vocabKeys: Set<string> | null = null;
  if (type === 'Unigram') {
    if (!Array.isArray(m.vocab) || m.vocab.length === 0) bad(`tokenizer.json: model.vocab must be a non-empty list of [piece, score]`);
    (m.vocab as unknown[]).forEach((e, i) => {
      if (!Array.isArray(e) || typeof e[0] !== 'string' || typeof e[1] !== 'number') bad(`tokenizer.json: model.vocab entry ${i} must be [piece, score], got ${show(e)}`);
      place((e as [string])[0], i, 'token');
    });
  } else {
    const v = m.vocab;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(`tokenizer.json: model.vocab must be an object {token: id}, got ${show(v)}`);
    const entries = Object.entries(v as Record<string, unknown>);
    if (entries.length === 0) bad(`tokenizer.json: model.vocab is empty`);
    vocabKeys = new Set();
    for (const [t, id] of entries) {
      place(t, id, 'token');
      vocabKeys.add(t);
    }
  }
  if (type === 'BPE') {
    const merges = m.merges ?? [];
    if (!Array.isArray(merges)) bad(`tokenizer.json: model.merges must be a list, got ${show(merges)}`);
    const prefix = typeof m.continuing_subword_prefix === 'string' ? m.continuing_subword_prefix : '';
    (merges as unknown[]).forEach((e, i) => {
      let a: string, b: string;
      if (typeof e === 'string') {
        const parts = e.split(' ');
        if (parts.length !== 2 || parts[0] === '' || parts[1] === '') bad(`tokenizer.json: merge #${i} ${show(e)} is not "a b"`);
        [a, b] = parts as [string, string];
      } else if (Array.isArray(e) && e.length === 2 && typeof e[0] === 'string' && typeof e[1] === 'string' && e[0] !== '' && e[1] !== '') {
        [a, b] = e as [string, string];
        if (opts.byteLevel && (a.includes(' ') || b.includes(' '))) bad(`tokenizer.json: merge #${i} ${show(e)} contains a space`);
      } else return bad(`tokenizer.json: merge #${i} ${show(e)} is neither "a b" nor ["a", "b"]`);
      for (const t of [a, b]) if (!vocabKeys!.has(t)) bad(`tokenizer.json: merge #${i} ${show(e)} names ${show(t)}, which is not in the vocabulary`);
      const merged = a + (prefix && b.startsWith(prefix) ? b.slice(prefix.length) : b);
      if (!vocabKeys!.has(merged)) bad(`tokenizer.json: merge #${i} ${show(e)} makes ${show(merged)}, which is not in the vocabulary`);
    });
  }
  const at = j.added_tokens;
  if (at !== undefined && at !== null) {
    if (!Array.isArray(at)) bad(`tokenizer.json: added_tokens must be a list of {id, content}, got ${show(at)}`);
    (at as unknown[]).forEach((t, i) => {
      if (typeof t !== 'object' || t === null || Array.isArray(t)) bad(`tokenizer.json: added_tokens[${i}] must be an object {id, content}, got ${show(t)}`);
      const r = t as Record<string, unknown>;
      if (typeof r.content !== 'string' || r.content === '') bad(`tokenizer.json: added_tokens[${i}] has no string 'content'`);
      place(r.content as string, r.id, 'added token');
    });
  }
  if (opts.byteLevel) {
    const missing = BYTE_CHARS.findIndex((ch) => !vocabKeys!.has(ch));
    if (missing >= 0) bad(`tokenizer.json: the byte-level vocabulary has no token for byte 0x${missing.toString(16).padStart(2, '0')} (${show(BYTE_CHARS[missing])})`);
  }
  return { type: type as string, size: byId.size, maxId };
}

// ---------------------------------------------------------------------------------------- Llama

/**
 * A validated Llama-layout decoder (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM):
 * config.json's fields (snake_case, as nn's LlamaConfig) with HF defaults, plus what distinguishes
 * the architectures (`ArchFeatures`: model_type, biases, rope scaling, sliding window).
 */
export interface LlamaSpec extends ArchFeatures {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  rms_norm_eps: number;
  rope_theta: number;
  max_position_embeddings: number;
  tie_word_embeddings: boolean;
  bos_token_id: number | null;
  eos_token_id: number | null;
  pad_token_id: number | null;
}

const FLOATS = new Set(['F32', 'F16', 'BF16']);

/** The HF names and shapes of a Llama-layout model's tensors, layer by layer (a generator: nothing is built in full). */
export function* llamaTensorShapes(s: Pick<LlamaSpec, 'hidden_size' | 'num_attention_heads' | 'num_key_value_heads' | 'head_dim' | 'intermediate_size' | 'vocab_size' | 'num_hidden_layers' | 'tie_word_embeddings' | 'qkv_bias' | 'o_bias'>): Generator<[string, number[]]> {
  const D = s.hidden_size;
  const q = s.num_attention_heads * s.head_dim;
  const kv = s.num_key_value_heads * s.head_dim;
  const I = s.intermediate_size;
  yield [EMBED, [s.vocab_size, D]];
  for (let i = 0; i < s.num_hidden_layers; i++) {
    const p = `model.layers.${i}.`;
    yield [p + 'input_layernorm.weight', [D]];
    yield [p + 'self_attn.q_proj.weight', [q, D]];
    if (s.qkv_bias) yield [p + 'self_attn.q_proj.bias', [q]];
    yield [p + 'self_attn.k_proj.weight', [kv, D]];
    if (s.qkv_bias) yield [p + 'self_attn.k_proj.bias', [kv]];
    yield [p + 'self_attn.v_proj.weight', [kv, D]];
    if (s.qkv_bias) yield [p + 'self_attn.v_proj.bias', [kv]];
    yield [p + 'self_attn.o_proj.weight', [D, q]];
    if (s.o_bias) yield [p + 'self_attn.o_proj.bias', [D]];
    yield [p + 'post_attention_layernorm.weight', [D]];
    yield [p + 'mlp.gate_proj.weight', [I, D]];
    yield [p + 'mlp.up_proj.weight', [I, D]];
    yield [p + 'mlp.down_proj.weight', [D, I]];
  }
  yield ['model.norm.weight', [D]];
  if (!s.tie_word_embeddings) yield [LM_HEAD, [s.vocab_size, D]];
}

/**
 * Reads and validates the config.json of an open checkpoint as one of the engine's architectures
 * (what eval, serve, export-gguf and the loop run; see architectures.ts). Throws a CheckpointError naming
 * config.json (or the folder, for a tensor) with the first problem.
 */
export function readLlamaSpec(ck: Checkpoint): LlamaSpec {
  const file = join(ck.dir, 'config.json');
  const bad = (msg: string): never => {
    throw new CheckpointError(file, msg);
  };
  const c = ck.config;
  if (!c) throw new CheckpointError(file, 'config.json is missing (the model folder needs it)');
  // identity and supported features
  const modelType = readModelType(c, bad);
  if (c.hidden_act !== undefined && c.hidden_act !== 'silu') bad(`hidden_act ${show(c.hidden_act)} is not supported (only "silu")`);
  // generic: types and agreement with the tensors (this is where every size is bounded by the file)
  checkConfigAgainstTensors(ck);
  const int = (k: string, dflt?: number): number => {
    const v = c[k];
    if (v === undefined || v === null) return dflt !== undefined ? dflt : bad(`missing required field '${k}'`);
    if (!isPosInt(v)) bad(`${k} must be a positive integer, got ${show(v)}`);
    return v as number;
  };
  const positive = (v: unknown, k: string, dflt: number): number => {
    if (v === undefined || v === null) return dflt;
    // stored as float32 by GGUF and used in float32 by the engine: it must stay positive and finite there
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || !Number.isFinite(Math.fround(v)) || Math.fround(v) === 0)
      bad(`${k} must be a positive number within float32 range, got ${show(v)}`);
    return v as number;
  };
  const vocab = int('vocab_size');
  const hidden = int('hidden_size');
  const intermediate = int('intermediate_size');
  const layers = int('num_hidden_layers');
  const heads = int('num_attention_heads');
  const kvHeads = int('num_key_value_heads', heads);
  if (heads % kvHeads !== 0) bad(`num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kvHeads}`);
  if (!present(c, 'head_dim') && hidden % heads !== 0) bad(`hidden_size ${hidden} is not a multiple of num_attention_heads ${heads} (and no head_dim is given)`);
  const headDim = int('head_dim', hidden / heads);
  if (headDim % 2 !== 0) bad(`head_dim ${headDim} must be even for RoPE`);
  const maxPos = int('max_position_embeddings', 2048);
  if (maxPos > MAX_POSITION_EMBEDDINGS) bad(`max_position_embeddings ${show(maxPos)} is more than the ${MAX_POSITION_EMBEDDINGS} positions the engine supports`);
  let ropeTheta = positive(c.rope_theta, 'rope_theta', 10000);
  const features = readArchFeatures(c, modelType, layers, maxPos, bad);
  const rp = c.rope_parameters;
  if (rp !== undefined && rp !== null) {
    const r = rp as Record<string, unknown>; // an object: checked by readArchFeatures
    if (r.rope_theta !== undefined) {
      const t = positive(r.rope_theta, 'rope_parameters.rope_theta', 10000);
      if (present(c, 'rope_theta') && t !== ropeTheta) bad(`rope_theta ${ropeTheta} and rope_parameters.rope_theta ${t} disagree`);
      ropeTheta = t;
    }
  }
  const ids = (k: string): number | null => {
    const v = tokenIds(c[k]);
    if (v === 'bad') return bad(`${k} must be a token id, got ${show(c[k])}`);
    return v === null ? null : v[0]!;
  };
  const spec: LlamaSpec = {
    ...features,
    vocab_size: vocab,
    hidden_size: hidden,
    intermediate_size: intermediate,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: headDim,
    rms_norm_eps: positive(c.rms_norm_eps, 'rms_norm_eps', 1e-6),
    rope_theta: ropeTheta,
    max_position_embeddings: maxPos,
    tie_word_embeddings: c.tie_word_embeddings === true,
    bos_token_id: ids('bos_token_id'),
    eos_token_id: ids('eos_token_id'),
    pad_token_id: ids('pad_token_id'),
  };
  // exactly the tensors of this architecture with these shapes (num_hidden_layers already equals the file's layer count)
  const known = new Set<string>();
  for (const [name, shape] of llamaTensorShapes(spec)) {
    known.add(name);
    if (!ck.has(name)) throw new CheckpointError(ck.dir, `tensor '${name}' is missing${name === LM_HEAD ? ' (config.json says tie_word_embeddings is false)' : ''}`);
    const e = ck.info(name);
    if (e.shape.join(',') !== shape.join(',')) throw new CheckpointError(ck.dir, `tensor '${name}' has shape [${e.shape}], config.json implies [${shape}]`);
    if (!FLOATS.has(e.dtype)) throw new CheckpointError(ck.dir, `tensor '${name}' has dtype ${e.dtype} (F32, F16 or BF16 only)`);
  }
  for (const n of ck.tensorNames()) {
    if (known.has(n) || n.endsWith('.rotary_emb.inv_freq') || (n === LM_HEAD && spec.tie_word_embeddings)) continue;
    throw new CheckpointError(ck.dir, `unexpected tensor '${n}' (not part of a ${spec.model_type} model${/\.bias$/.test(n) ? ' without that bias: see attention_bias' : ''})`);
  }
  return spec;
}

/**
 * Opens a model folder and validates it completely for the engine: weights, config.json (readLlamaSpec),
 * tokenizer.json (byte-level BPE, ids below vocab_size) and, when present, tokenizer_config.json and
 * generation_config.json (JSON objects). Closes the folder; returns the spec.
 */
export function readLlamaFolder(dir: string, opts: { tokenizer?: boolean } = {}): LlamaSpec {
  const ck = Checkpoint.open(dir);
  try {
    const spec = readLlamaSpec(ck);
    if (opts.tokenizer !== false) {
      const tok = join(dir, 'tokenizer.json');
      try {
        checkTokenizerFile(tok, { vocabSize: spec.vocab_size, byteLevel: true });
      } catch (e) {
        if (e instanceof CheckpointError && /tokenizer\.json not found$/.test(e.problem)) throw new CheckpointError(tok, 'tokenizer.json is missing (the model folder needs its tokenizer)');
        throw e;
      }
    }
    for (const f of ['tokenizer_config.json', 'generation_config.json']) {
      if (readdirSync(dir).includes(f)) {
        const j = readJsonObject(join(dir, f), f);
        if (f === 'generation_config.json') {
          for (const k of TOKEN_ID_FIELDS) {
            const v = tokenIds(j[k]);
            if (v === 'bad') throw new CheckpointError(join(dir, f), `${k} must be a token id, got ${show(j[k])}`);
            const out = v?.find((x) => x >= spec.vocab_size);
            if (out !== undefined) throw new CheckpointError(join(dir, f), `${k} ${out} is outside the vocabulary (vocab_size ${spec.vocab_size})`);
          }
        }
      }
    }
    return spec;
  } finally {
    ck.close();
  }
}

