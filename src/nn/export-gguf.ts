/**
 * Hugging Face Llama folder → GGUF (v3) that llama.cpp loads: llama.* metadata from config.json, a
 * byte-level BPE ("gpt2") vocabulary from tokenizer.json, HF → GGUF tensor names, Q/K rows permuted
 * from HF's rotate-half layout to llama.cpp's interleaved pairs. Everything is validated before the
 * output file is created; tensors are streamed one at a time; the output appears atomically.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { Checkpoint } from '../io/checkpoint.ts';
import { GgufWriter } from '../io/gguf.ts';
import type { GgmlFloatType } from '../io/gguf.ts';
import { encodeFromF32 } from '../tensor/dtype.ts';

export class ExportError extends Error {
  override name = 'ExportError';
}

/** The llama hyper-parameters export and the reference forward need, validated. */
export interface LlamaHyper {
  vocabSize: number;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  rmsEps: number;
  ropeTheta: number;
  contextLength: number;
  tieEmbeddings: boolean;
  bosTokenId: number | null;
  eosTokenId: number | null;
  padTokenId: number | null;
}

function intField(cfg: Record<string, unknown>, key: string, where: string, dflt?: number): number {
  const v = cfg[key];
  if (v === undefined || v === null) {
    if (dflt !== undefined) return dflt;
    throw new ExportError(`${where}: missing required field '${key}'`);
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new ExportError(`${where}: '${key}' must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}
function numField(cfg: Record<string, unknown>, key: string, where: string, dflt: number): number {
  const v = cfg[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new ExportError(`${where}: '${key}' must be a positive number, got ${JSON.stringify(v)}`);
  return v;
}
function tokenId(v: unknown, key: string, where: string): number | null {
  if (v === undefined || v === null) return null;
  const x = Array.isArray(v) ? v[0] : v;
  if (typeof x !== 'number' || !Number.isInteger(x) || x < 0) throw new ExportError(`${where}: '${key}' must be a token id, got ${JSON.stringify(v)}`);
  return x;
}

/**
 * Reads and validates a LlamaForCausalLM config.json object (LlamaConfig defaults where HF has them).
 * Refuses what this exporter / the reference forward do not implement: rope scaling, biases, non-SiLU.
 */
export function parseLlamaConfig(cfg: Record<string, unknown>, where = 'config.json'): LlamaHyper {
  const archs = cfg.architectures;
  const arch = Array.isArray(archs) ? archs[0] : undefined;
  if (arch !== undefined && arch !== 'LlamaForCausalLM') throw new ExportError(`${where}: unsupported architecture '${String(arch)}' (only LlamaForCausalLM)`);
  if (arch === undefined && cfg.model_type !== 'llama') throw new ExportError(`${where}: not a Llama config (architectures missing and model_type is ${JSON.stringify(cfg.model_type)})`);
  if (cfg.rope_scaling !== undefined && cfg.rope_scaling !== null) throw new ExportError(`${where}: rope_scaling ${JSON.stringify(cfg.rope_scaling)} is not supported (only plain RoPE)`);
  const rp = cfg.rope_parameters;
  let ropeTheta: number | undefined;
  if (rp !== undefined && rp !== null) {
    if (typeof rp !== 'object') throw new ExportError(`${where}: rope_parameters must be an object`);
    const r = rp as Record<string, unknown>;
    if (r.rope_type !== undefined && r.rope_type !== 'default') throw new ExportError(`${where}: rope_parameters.rope_type '${String(r.rope_type)}' is not supported (only 'default')`);
    if (r.rope_theta !== undefined) ropeTheta = numField(r, 'rope_theta', `${where} rope_parameters`, 10000);
  }
  if (ropeTheta === undefined) ropeTheta = numField(cfg, 'rope_theta', where, 10000);
  if (cfg.attention_bias === true) throw new ExportError(`${where}: attention_bias is not supported`);
  if (cfg.mlp_bias === true) throw new ExportError(`${where}: mlp_bias is not supported`);
  if (cfg.hidden_act !== undefined && cfg.hidden_act !== 'silu') throw new ExportError(`${where}: hidden_act '${String(cfg.hidden_act)}' is not supported (only silu)`);
  const hidden = intField(cfg, 'hidden_size', where);
  const heads = intField(cfg, 'num_attention_heads', where);
  const kvHeads = intField(cfg, 'num_key_value_heads', where, heads);
  if (heads % kvHeads !== 0) throw new ExportError(`${where}: num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kvHeads}`);
  if (cfg.head_dim === undefined && hidden % heads !== 0) throw new ExportError(`${where}: hidden_size ${hidden} is not a multiple of num_attention_heads ${heads}`);
  const headDim = intField(cfg, 'head_dim', where, hidden / heads);
  if (headDim % 2 !== 0) throw new ExportError(`${where}: head_dim ${headDim} must be even for RoPE`);
  return {
    vocabSize: intField(cfg, 'vocab_size', where),
    hidden,
    intermediate: intField(cfg, 'intermediate_size', where),
    layers: intField(cfg, 'num_hidden_layers', where),
    heads,
    kvHeads,
    headDim,
    rmsEps: numField(cfg, 'rms_norm_eps', where, 1e-6),
    ropeTheta,
    contextLength: intField(cfg, 'max_position_embeddings', where, 2048),
    tieEmbeddings: cfg.tie_word_embeddings === true,
    bosTokenId: tokenId(cfg.bos_token_id, 'bos_token_id', where),
    eosTokenId: tokenId(cfg.eos_token_id, 'eos_token_id', where),
    padTokenId: tokenId(cfg.pad_token_id, 'pad_token_id', where),
  };
}

/** HF tensor names with shapes ([out, in]) a Llama of these hyper-parameters has. */
export function expectedLlamaTensors(h: LlamaHyper): Array<{ hf: string; gguf: string; shape: number[] }> {
  const out: Array<{ hf: string; gguf: string; shape: number[] }> = [];
  out.push({ hf: 'model.embed_tokens.weight', gguf: 'token_embd.weight', shape: [h.vocabSize, h.hidden] });
  for (let i = 0; i < h.layers; i++) {
    const p = `model.layers.${i}.`;
    const b = `blk.${i}.`;
    out.push({ hf: p + 'input_layernorm.weight', gguf: b + 'attn_norm.weight', shape: [h.hidden] });
    out.push({ hf: p + 'self_attn.q_proj.weight', gguf: b + 'attn_q.weight', shape: [h.heads * h.headDim, h.hidden] });
    out.push({ hf: p + 'self_attn.k_proj.weight', gguf: b + 'attn_k.weight', shape: [h.kvHeads * h.headDim, h.hidden] });
    out.push({ hf: p + 'self_attn.v_proj.weight', gguf: b + 'attn_v.weight', shape: [h.kvHeads * h.headDim, h.hidden] });
    out.push({ hf: p + 'self_attn.o_proj.weight', gguf: b + 'attn_output.weight', shape: [h.hidden, h.heads * h.headDim] });
    out.push({ hf: p + 'post_attention_layernorm.weight', gguf: b + 'ffn_norm.weight', shape: [h.hidden] });
    out.push({ hf: p + 'mlp.gate_proj.weight', gguf: b + 'ffn_gate.weight', shape: [h.intermediate, h.hidden] });
    out.push({ hf: p + 'mlp.up_proj.weight', gguf: b + 'ffn_up.weight', shape: [h.intermediate, h.hidden] });
    out.push({ hf: p + 'mlp.down_proj.weight', gguf: b + 'ffn_down.weight', shape: [h.hidden, h.intermediate] });
  }
  out.push({ hf: 'model.norm.weight', gguf: 'output_norm.weight', shape: [h.hidden] });
  if (!h.tieEmbeddings) out.push({ hf: 'lm_head.weight', gguf: 'output.weight', shape: [h.vocabSize, h.hidden] });
  return out;
}

/**
 * HF rotate-half → llama.cpp interleaved rows: inside each head of `headDim` rows, row s·(d/2)+j
 * moves to row 2j+s. `w` is [nHeads·headDim, cols] row-major.
 */
export function permuteRopeRows(w: Float32Array, nHeads: number, headDim: number, cols: number): Float32Array {
  if (w.length !== nHeads * headDim * cols) throw new Error(`permuteRopeRows: ${w.length} values, expected ${nHeads}×${headDim}×${cols}`);
  const out = new Float32Array(w.length);
  const half = headDim / 2;
  for (let h = 0; h < nHeads; h++) {
    for (let s = 0; s < 2; s++) {
      for (let j = 0; j < half; j++) {
        const src = (h * headDim + s * half + j) * cols;
        const dst = (h * headDim + 2 * j + s) * cols;
        out.set(w.subarray(src, src + cols), dst);
      }
    }
  }
  return out;
}

/** A byte-level BPE vocabulary in GGUF form. */
export interface GgufVocab {
  tokens: string[];
  tokenTypes: number[];
  merges: string[];
  /** id of an added token by content, for special-token lookup. */
  added: Map<string, number>;
}

const TOKEN_NORMAL = 1;
const TOKEN_CONTROL = 3;
const TOKEN_USER_DEFINED = 4;
const TOKEN_UNUSED = 5;

/** Reads an HF tokenizer.json (BPE model) into GGUF token / type / merge arrays padded to `vocabSize`. */
export function readBpeVocab(path: string, vocabSize: number): GgufVocab {
  let tj: Record<string, unknown>;
  try {
    tj = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new ExportError(`${path}: cannot read tokenizer (${(e as Error).message})`);
  }
  const model = tj.model as Record<string, unknown> | undefined;
  if (!model || typeof model !== 'object') throw new ExportError(`${path}: no 'model' object`);
  if (model.type !== 'BPE') throw new ExportError(`${path}: tokenizer model type ${JSON.stringify(model.type)} is not supported (only byte-level BPE)`);
  const vocab = model.vocab as Record<string, unknown> | undefined;
  if (!vocab || typeof vocab !== 'object') throw new ExportError(`${path}: model.vocab missing`);
  const tokens: Array<string | undefined> = new Array(vocabSize);
  const types: number[] = new Array(vocabSize).fill(TOKEN_NORMAL);
  const place = (content: string, id: unknown, what: string): number => {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) throw new ExportError(`${path}: ${what} '${content}' has a bad id ${JSON.stringify(id)}`);
    if (id >= vocabSize) throw new ExportError(`${path}: ${what} '${content}' has id ${id}, but config vocab_size is ${vocabSize}`);
    if (tokens[id] !== undefined && tokens[id] !== content) throw new ExportError(`${path}: id ${id} is both '${tokens[id]}' and '${content}'`);
    tokens[id] = content;
    return id;
  };
  for (const [content, id] of Object.entries(vocab)) place(content, id, 'token');
  const added = new Map<string, number>();
  const at = tj.added_tokens;
  if (at !== undefined && !Array.isArray(at)) throw new ExportError(`${path}: added_tokens must be an array`);
  for (const t of (at ?? []) as Array<Record<string, unknown>>) {
    if (typeof t.content !== 'string') throw new ExportError(`${path}: an added token has no string 'content'`);
    const id = place(t.content, t.id, 'added token');
    types[id] = t.special === true ? TOKEN_CONTROL : TOKEN_USER_DEFINED;
    added.set(t.content, id);
  }
  const out: string[] = [];
  for (let i = 0; i < vocabSize; i++) {
    if (tokens[i] === undefined) {
      out.push(`[PAD${i}]`);
      types[i] = TOKEN_UNUSED;
    } else {
      out.push(tokens[i]!);
    }
  }
  const rawMerges = model.merges ?? [];
  if (!Array.isArray(rawMerges)) throw new ExportError(`${path}: model.merges must be an array`);
  const merges = rawMerges.map((m, i) => {
    if (typeof m === 'string') {
      if (m.split(' ').length !== 2) throw new ExportError(`${path}: merge #${i} ${JSON.stringify(m)} is not "a b"`);
      return m;
    }
    if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') {
      if (m[0].includes(' ') || m[1].includes(' ')) throw new ExportError(`${path}: merge #${i} ${JSON.stringify(m)} contains a space (GGUF stores merges as "a b")`);
      return `${m[0]} ${m[1]}`;
    }
    throw new ExportError(`${path}: merge #${i} ${JSON.stringify(m)} is neither "a b" nor ["a", "b"]`);
  });
  return { tokens: out, tokenTypes: types, merges, added };
}

export interface ExportGgufOptions {
  dtype?: 'f32' | 'f16';
  /** general.name (default: the folder's name). */
  name?: string;
  /** Called after each tensor is written (for a progress line). */
  onTensor?: (done: number, total: number, name: string) => void;
}

export interface ExportGgufResult {
  outPath: string;
  tensors: number;
  bytes: number;
  vocabSize: number;
}

function readJsonIfExists(path: string): Record<string, unknown> | null {
  if (!existsSync(path)) return null;
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Record<string, unknown>;
  } catch (e) {
    throw new ExportError(`${path}: ${(e as Error).message}`);
  }
}

function specialId(tc: Record<string, unknown> | null, key: string, vocab: GgufVocab): number | null {
  const v = tc?.[key];
  const content = typeof v === 'string' ? v : v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string' ? (v as { content: string }).content : null;
  if (content === null) return null;
  return vocab.added.get(content) ?? null;
}

/** Converts the HF Llama folder `modelDir` into a GGUF file at `outPath`. */
export function exportGguf(modelDir: string, outPath: string, opts: ExportGgufOptions = {}): ExportGgufResult {
  const dtype = opts.dtype ?? 'f32';
  if (dtype !== 'f32' && dtype !== 'f16') throw new ExportError(`unsupported GGUF dtype '${String(dtype)}' (f32 or f16)`);
  const ck = Checkpoint.open(modelDir);
  let writer: GgufWriter | null = null;
  try {
    if (!ck.config) throw new ExportError(`${join(modelDir, 'config.json')}: missing (needed for the llama.* metadata)`);
    const h = parseLlamaConfig(ck.config, join(modelDir, 'config.json'));
    const tokPath = join(modelDir, 'tokenizer.json');
    if (!existsSync(tokPath)) throw new ExportError(`${tokPath}: missing (llama.cpp needs the vocabulary inside the GGUF)`);
    const vocab = readBpeVocab(tokPath, h.vocabSize);
    const tc = readJsonIfExists(join(modelDir, 'tokenizer_config.json'));

    // tensors: all expected present with the right shapes, nothing unexplained left over
    const expected = expectedLlamaTensors(h);
    const known = new Set(expected.map((e) => e.hf));
    for (const e of expected) {
      if (!ck.has(e.hf)) throw new ExportError(`${modelDir}: tensor '${e.hf}' is missing${e.hf === 'lm_head.weight' ? ' (config says tie_word_embeddings is false)' : ''}`);
      const info = ck.info(e.hf);
      if (info.shape.join(',') !== e.shape.join(',')) throw new ExportError(`${modelDir}: tensor '${e.hf}' has shape [${info.shape}], config implies [${e.shape}]`);
      if (info.dtype !== 'F32' && info.dtype !== 'F16' && info.dtype !== 'BF16') throw new ExportError(`${modelDir}: tensor '${e.hf}' has dtype ${info.dtype} (float tensors only)`);
    }
    for (const n of ck.tensorNames()) {
      if (known.has(n) || n.endsWith('.rotary_emb.inv_freq')) continue;
      if (n === 'lm_head.weight' && h.tieEmbeddings) continue; // tied: the embedding is the output projection
      throw new ExportError(`${modelDir}: unexpected tensor '${n}' (not part of a plain Llama)`);
    }

    const w = new GgufWriter(resolve(outPath));
    writer = w;
    w.setString('general.architecture', 'llama');
    w.setString('general.name', opts.name ?? basename(resolve(modelDir)));
    w.setU32('general.file_type', dtype === 'f32' ? 0 : 1);
    w.setU32('llama.vocab_size', h.vocabSize);
    w.setU32('llama.context_length', h.contextLength);
    w.setU32('llama.embedding_length', h.hidden);
    w.setU32('llama.block_count', h.layers);
    w.setU32('llama.feed_forward_length', h.intermediate);
    w.setU32('llama.rope.dimension_count', h.headDim);
    w.setU32('llama.attention.head_count', h.heads);
    w.setU32('llama.attention.head_count_kv', h.kvHeads);
    if (h.headDim * h.heads !== h.hidden) {
      w.setU32('llama.attention.key_length', h.headDim);
      w.setU32('llama.attention.value_length', h.headDim);
    }
    w.setF32('llama.attention.layer_norm_rms_epsilon', h.rmsEps);
    w.setF32('llama.rope.freq_base', h.ropeTheta);
    w.setString('tokenizer.ggml.model', 'gpt2');
    // llama.cpp's name for the GPT-2 regex pre-tokenizer is "gpt-2" ("gpt2" is rejected as unknown)
    w.setString('tokenizer.ggml.pre', 'gpt-2');
    w.setArray('tokenizer.ggml.tokens', 'string', vocab.tokens);
    w.setArray('tokenizer.ggml.token_type', 'i32', vocab.tokenTypes);
    w.setArray('tokenizer.ggml.merges', 'string', vocab.merges);
    const bos = h.bosTokenId ?? specialId(tc, 'bos_token', vocab);
    const eos = h.eosTokenId ?? specialId(tc, 'eos_token', vocab);
    const pad = h.padTokenId ?? specialId(tc, 'pad_token', vocab) ?? vocab.added.get('<pad>') ?? null;
    for (const [k, v] of [['bos', bos], ['eos', eos], ['padding', pad]] as const) {
      if (v === null) continue;
      if (v >= h.vocabSize) throw new ExportError(`${modelDir}: ${k} token id ${v} is outside the vocabulary (${h.vocabSize})`);
      w.setU32(`tokenizer.ggml.${k}_token_id`, v);
    }
    w.setBool('tokenizer.ggml.add_bos_token', tc?.add_bos_token === true);
    w.setBool('tokenizer.ggml.add_eos_token', tc?.add_eos_token === true);

    const ggType = (e: { shape: number[] }): GgmlFloatType => (dtype === 'f16' && e.shape.length >= 2 ? 'F16' : 'F32');
    for (const e of expected) w.addTensor(e.gguf, e.shape, ggType(e));
    w.begin();
    let done = 0;
    for (const e of expected) {
      let x = ck.readF32(e.hf);
      if (e.hf.endsWith('self_attn.q_proj.weight')) x = permuteRopeRows(x, h.heads, h.headDim, h.hidden);
      else if (e.hf.endsWith('self_attn.k_proj.weight')) x = permuteRopeRows(x, h.kvHeads, h.headDim, h.hidden);
      w.writeTensor(e.gguf, encodeFromF32(x, ggType(e)));
      opts.onTensor?.(++done, expected.length, e.gguf);
    }
    w.commit();
    writer = null;
    const bytes = expected.reduce((n, e) => n + e.shape.reduce((a, b) => a * b, 1) * (ggType(e) === 'F16' ? 2 : 4), 0);
    return { outPath: resolve(outPath), tensors: expected.length, bytes, vocabSize: h.vocabSize };
  } finally {
    writer?.abort();
    ck.close();
  }
}

export interface VerifyResult {
  /** Greedy steps compared (a prompt stops at its first near tie: margin below `minMargin`). */
  compared: number;
  /** Steps where llama.cpp's greedy token equals the reference's. */
  agreed: number;
  /** First disagreement, if any. */
  mismatch: { prompt: string; step: number; llama: number[]; reference: number[] } | null;
  /** Largest |p_llama − p_reference| over every next-token probability llama.cpp reported. */
  maxProbDiff: number;
  /** The ids the model's files put before a prompt (BOS when they say so), as the Hugging Face library reads them. */
  promptPrefix: number[];
  /** First prompt that llama.cpp tokenizes (with the GGUF's add_bos_token) differently from the model's files, if any. */
  tokenMismatch: { prompt: string; files: number[]; llama: number[] } | null;
}

/**
 * Loads `ggufPath` with llama.cpp (node-llama-cpp, CPU prebuilt, imported only here) and checks that
 * its greedy continuation of each prompt equals the plain-TypeScript reference forward of the HF
 * folder. Prompts are tokenized as the model's files say (tokenizer.json + tokenizer_config.json read
 * by the Hugging Face `tokenizers` library: BOS when they add it), and llama.cpp's own tokenization
 * (its text tokens, BOS when the GGUF says add_bos_token) must give the same ids — a prompt where it
 * does not is reported (`tokenMismatch`) and not compared. For small models only: the reference
 * recomputes every prefix in Float64 loops.
 */
export async function verifyGgufWithLlamaCpp(modelDir: string, ggufPath: string, opts: { prompts?: string[]; tokens?: number; minMargin?: number } = {}): Promise<VerifyResult> {
  const { loadReferenceModel, referenceLogits, argmax } = await import('./reference.ts');
  const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
  const prompts = opts.prompts ?? ['The answer is', 'Q: What is 12 + 30?\nA:', 'Natalia sold clips'];
  const n = opts.tokens ?? 6;
  const minMargin = opts.minMargin ?? 1e-3;
  const { weights, config } = loadReferenceModel(modelDir);
  const lastLogits = (ids: number[]) => referenceLogits(weights, config, ids).pop()!;
  const llama = await getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, skipDownload: true, progressLogs: false, logLevel: LlamaLogLevel.error, maxThreads: 1 });
  const { HfTokenizer } = await import('./hf-tokenizer.ts');
  const files = HfTokenizer.load(modelDir);
  const res: VerifyResult = { compared: 0, agreed: 0, mismatch: null, maxProbDiff: 0, promptPrefix: [...files.promptPrefix], tokenMismatch: null };
  try {
    const model = await llama.loadModel({ modelPath: ggufPath, gpuLayers: 0 });
    try {
      // f32 KV cache: llama.cpp's default f16 cache alone moves probabilities by ~1e-3
      const ctx = await model.createContext({ contextSize: 256, threads: 1, flashAttention: false, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' });
      const seq = ctx.getSequence();
      for (const text of prompts) {
        const ids = files.encodePrompt(text);
        const bos = model.tokens.shouldPrependBosToken && model.tokens.bos !== null ? [model.tokens.bos as number] : [];
        const cpp = [...bos, ...(model.tokenize(text, true) as number[])];
        if (cpp.length !== ids.length || cpp.some((t, i) => t !== ids[i])) {
          res.tokenMismatch ??= { prompt: text, files: ids, llama: cpp };
          continue;
        }
        if (ids.length === 0) continue;
        await seq.clearHistory();
        const got: number[] = [];
        for await (const t of seq.evaluateWithMetadata(ids as never, { probabilities: true }, { temperature: 0 })) {
          const ref = lastLogits([...ids, ...got]);
          let max = -Infinity;
          for (const v of ref) max = Math.max(max, v);
          let z = 0;
          for (const v of ref) z += Math.exp(v - max);
          for (const [tok, p] of t.probabilities) res.maxProbDiff = Math.max(res.maxProbDiff, Math.abs(p - Math.exp(ref[tok]! - max) / z));
          got.push(t.token as number);
          if (got.length >= n) break;
        }
        const refTokens: number[] = [];
        for (let i = 0; i < got.length; i++) {
          const logits = lastLogits([...ids, ...refTokens]);
          const top = argmax(logits);
          let second = -Infinity;
          for (let v = 0; v < logits.length; v++) if (v !== top) second = Math.max(second, logits[v]!);
          if (logits[top]! - second < minMargin) break;
          res.compared++;
          refTokens.push(top);
          if (top === got[i]) res.agreed++;
          else {
            res.mismatch ??= { prompt: text, step: i, llama: got, reference: refTokens };
            break;
          }
        }
      }
      await ctx.dispose();
    } finally {
      await model.dispose();
    }
  } finally {
    await llama.dispose();
    await files.close();
  }
  return res;
}
