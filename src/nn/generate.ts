/**
 * Inference: batched generation (KV cache, left padding with per-row positions, greedy /
 * temperature / top-p with per-prompt seeded sampling, stop strings, a per-row forcing hook) and
 * batched completion log-probs.
 */
import * as O from './ops.ts';
import { MASKED } from './model.ts';
import { InferModel } from './infer.ts';
import type { KVCache, Llama } from './model.ts';
import type { Tokenizer } from './tokenizer.ts';
import type { TextTokenizer } from './hf-tokenizer.ts';
import { Rng, rowStreamKey } from './rng.ts';
import { batchLogprobs, encodePair, makeBatch, rowCounts } from './data.ts';
import type { Example } from './data.ts';

/**
 * A model generation runs on: a framework `Llama` (training, DPO, the in-memory worlds; decoded on
 * its `InferModel.of` snapshot) or an engine-only `InferModel` (checkpoint.ts `loadInferModel`:
 * `selfdev serve`, `selfdev eval`), which has no framework forward: the 'tfjs' engine, useCache
 * false and log-probs need a `Llama`.
 */
export type EngineModel = Llama | InferModel;

/** `model` as a framework Llama, or a clear error naming `what` for an engine-only model. */
export function frameworkModel(model: EngineModel, what: string): Llama {
  if (model instanceof InferModel) throw new Error(`${what} needs the framework model (src/nn/model.ts Llama); this model was loaded for the inference engine only (loadInferModel): use the default 'infer' engine`);
  return model;
}

export interface GenerateOptions {
  /** Maximum number of new tokens per row (forced tokens included). */
  maxTokens: number;
  /** 0 (default) = greedy. */
  temperature?: number;
  /** Nucleus sampling mass (default 1 = off). */
  topP?: number;
  /** Sampling seed; prompt i of the call uses its own stream seeded by (seed, i). */
  seed?: number;
  /** Stop when the generated text contains one of these (the text is cut before it). */
  stop?: string[];
  /**
   * Called after every token appended to row `row` (when no forced tokens are pending) with the
   * text generated so far; return token ids to force next (e.g. a calculator result), or null.
   */
  onToken?: (row: number, text: string) => number[] | null;
  /** Rows per forward batch (default 32). */
  batchSize?: number;
  /** More ids that end a row like eos (e.g. a chat model's end-of-turn token); config.json's eos_token_id always does. */
  eosIds?: readonly number[];
  /** Prepend bos to every prompt (default true). */
  addBos?: boolean;
  /** false = recompute the whole sequence every step (reference path for tests, framework engine). Default true. */
  useCache?: boolean;
  /**
   * 'infer' (default): the framework-free engine of infer.ts (typed-array KV cache per row, native
   * kernels when the addon is loaded); 'tfjs': the framework forward of model.ts with a padded KV
   * cache (the previous path, kept as a baseline and cross-check). useCache false implies 'tfjs'.
   */
  engine?: 'infer' | 'tfjs';
}

export interface Generation {
  /** Generated text (stop string excluded). */
  text: string;
  /** Generated token ids (eos excluded). */
  ids: number[];
  finish: 'eos' | 'stop' | 'length';
}

/** Generate completions for `prompts`. Rows are independent of how the call batches them. */
export function generate(model: EngineModel, tok: TextTokenizer, prompts: string[], opts: GenerateOptions): Generation[] {
  const bs = Math.max(1, opts.batchSize ?? 32);
  const out: Generation[] = [];
  for (let i = 0; i < prompts.length; i += bs) {
    const chunk = prompts.slice(i, i + bs).map((p) => (opts.addBos ?? true ? tok.encodePrompt(p) : tok.encode(p)));
    out.push(...generateIds(model, tok, chunk, opts, i));
  }
  return out;
}

function sample(logits: Float32Array, off: number, V: number, temperature: number, topP: number, rng: Rng | null): number {
  if (!(temperature > 0) || !rng) {
    let best = 0;
    let bv = -Infinity;
    for (let j = 0; j < V; j++) if (logits[off + j] > bv) { bv = logits[off + j]; best = j; }
    return best;
  }
  let mx = -Infinity;
  for (let j = 0; j < V; j++) mx = Math.max(mx, logits[off + j]);
  const p = new Float64Array(V);
  let z = 0;
  for (let j = 0; j < V; j++) z += p[j] = Math.exp((logits[off + j] - mx) / temperature);
  let idx = [...Array(V).keys()];
  let total = 1;
  if (topP < 1) {
    idx.sort((a, b) => p[b] - p[a] || a - b);
    let acc = 0;
    let k = 0;
    while (k < V && acc < topP * z) acc += p[idx[k++]];
    idx = idx.slice(0, Math.max(1, k));
    total = acc / z;
  }
  let r = rng.next() * total * z;
  for (const j of idx) {
    r -= p[j];
    if (r <= 0) return j;
  }
  return idx[idx.length - 1];
}

/** Generate from token-id prompts (one batch). `rowBase` offsets row numbers for seeds and onToken. */
export function generateIds(model: EngineModel, tok: TextTokenizer, prompts: number[][], opts: GenerateOptions, rowBase = 0): Generation[] {
  const B = prompts.length;
  if (B === 0) return [];
  const useCache = opts.useCache ?? true;
  const useInfer = useCache && (opts.engine ?? 'infer') === 'infer';
  const fw = useInfer ? null : frameworkModel(model, `generate with ${useCache ? "engine 'tfjs'" : 'useCache: false'}`);
  const V = model.config.vocab_size;
  const eos = model.config.eos_token_id;
  const ends = new Set([eos, ...(opts.eosIds ?? [])]);
  const pad = model.config.pad_token_id;
  const temperature = opts.temperature ?? 0;
  const topP = opts.topP ?? 1;
  const rngs = prompts.map((_, i) => (temperature > 0 ? new Rng(rowStreamKey(opts.seed ?? 0, rowBase + i)) : null));
  for (const [i, p] of prompts.entries()) if (p.length === 0) throw new Error(`generate: prompt ${rowBase + i} is empty (use addBos)`);
  const L = Math.max(...prompts.map((p) => p.length));
  // per-row token history (left padded), key validity, next position
  const seq: number[][] = prompts.map((p) => [...Array(L - p.length).fill(pad), ...p]);
  const valid: number[][] = prompts.map((p) => [...Array(L - p.length).fill(0), ...Array(p.length).fill(1)]);
  const nextPos = prompts.map((p) => p.length);
  const gen: number[][] = prompts.map(() => []);
  const finish: Array<Generation['finish'] | null> = prompts.map(() => null);
  const texts: string[] = prompts.map(() => '');
  const queue: number[][] = prompts.map(() => []);

  const fullMask = (T: number, Tk: number, offset: number): Float32Array => {
    // queries are positions offset..offset+T-1 of the row's sequence, keys 0..Tk-1
    const m = new Float32Array(B * T * Tk);
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < T; i++) {
        const qi = offset + i;
        for (let j = 0; j < Tk; j++) {
          const ok = (j <= qi && valid[b][j]) || j === qi;
          if (!ok) m[(b * T + i) * Tk + j] = MASKED;
        }
      }
    }
    return m;
  };
  const posOf = (b: number, j: number): number => {
    // position of sequence slot j in row b = number of valid slots before it
    let c = 0;
    for (let k = 0; k < j; k++) c += valid[b][k];
    return c;
  };

  // infer engine: rows keep unpadded caches; finished rows are dropped from the batch, so `at[b]`
  // tells which row of the returned logits belongs to row b
  const at = Int32Array.from(prompts.keys());
  const session = useInfer ? (model instanceof InferModel ? model : InferModel.of(model)).session(B, L + opts.maxTokens) : null;
  const stepInfer = (first: boolean): Float32Array => {
    const rows: number[] = [];
    const toks: number[][] = [];
    at.fill(-1);
    for (let b = 0; b < B; b++) {
      if (!first && finish[b]) continue;
      at[b] = rows.length;
      rows.push(b);
      toks.push(first ? prompts[b] : [seq[b][seq[b].length - 1]]);
    }
    return session!.feed(rows, toks);
  };

  let cache: KVCache | undefined;
  const stepTfjs = (first: boolean): Float32Array => {
    const Tk = seq[0].length;
    const T = useCache && !first ? 1 : Tk;
    const offset = Tk - T;
    const ids = new Int32Array(B * T);
    const positions = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < T; i++) {
        ids[b * T + i] = seq[b][offset + i];
        positions[b * T + i] = posOf(b, offset + i);
      }
    }
    const res = O.tidy(() => {
      const r = fw!.forward(O.intTensor(ids, [B, T]), {
        positions,
        mask: fullMask(T, Tk, offset),
        cache: useCache ? (cache ?? { k: [], v: [], length: 0 }) : undefined,
        lastOnly: true,
        inference: true,
      });
      return { logits: r.logits, k: r.cache?.k ?? [], v: r.cache?.v ?? [] };
    });
    if (useCache) {
      if (cache) O.dispose([...cache.k, ...cache.v]);
      cache = { k: res.k, v: res.v, length: Tk };
    }
    const lg = O.read(res.logits).slice();
    res.logits.dispose();
    return lg;
  };
  const step = session ? stepInfer : stepTfjs;

  try {
    let logits = step(true);
    for (let s = 0; s < opts.maxTokens; s++) {
      for (let b = 0; b < B; b++) {
        let t: number;
        if (finish[b]) t = pad;
        else {
          t = queue[b].length ? queue[b].shift()! : sample(logits, at[b] * V, V, temperature, topP, rngs[b]);
          if (ends.has(t)) finish[b] = 'eos';
          else {
            gen[b].push(t);
            texts[b] = tok.decodeContinuation(gen[b]);
            const hit = firstStop(texts[b], opts.stop);
            if (hit >= 0) {
              texts[b] = texts[b].slice(0, hit);
              finish[b] = 'stop';
            } else if (gen[b].length >= opts.maxTokens) finish[b] = 'length';
            else if (opts.onToken && queue[b].length === 0) {
              const f = opts.onToken(rowBase + b, texts[b]);
              if (f && f.length) queue[b].push(...f);
            }
          }
        }
        seq[b].push(t);
        valid[b].push(1);
        nextPos[b]++;
      }
      if (finish.every((f) => f)) break;
      logits = step(false);
    }
  } finally {
    if (cache) O.dispose([...cache.k, ...cache.v]);
  }
  return prompts.map((_, b) => ({ text: texts[b], ids: gen[b], finish: finish[b] ?? 'length' }));
}

function firstStop(text: string, stop: string[] | undefined): number {
  let best = -1;
  for (const s of stop ?? []) {
    if (!s) continue;
    const i = text.indexOf(s);
    if (i >= 0 && (best < 0 || i < best)) best = i;
  }
  return best;
}

export interface LogprobResult {
  /** Sum of completion-token log-probs (eos included when `eos`). */
  logprob: number;
  /** Number of completion tokens scored. */
  tokens: number;
}

/**
 * Batched log π(completion | prompt): sum over completion tokens of log-probs, with the text
 * tokenised as bos + prompt + completion (+ eos when opts.eos).
 */
export function logprobs(model: Llama, tok: Tokenizer, prompts: string[], completions: string[], opts: { batchSize?: number; eos?: boolean; maxLen?: number } = {}): LogprobResult[] {
  if (prompts.length !== completions.length) throw new Error(`logprobs: ${prompts.length} prompts but ${completions.length} completions`);
  const ex = prompts.map((p, i) => encodePair(tok, p, completions[i], { eos: opts.eos ?? false }));
  return exampleLogprobs(model, ex, opts);
}

/** Sum of masked-token log-probs for each example (tokens with mask 1 are scored). */
export function exampleLogprobs(model: Llama, examples: Example[], opts: { batchSize?: number; maxLen?: number } = {}): LogprobResult[] {
  frameworkModel(model, 'log-probs');
  const bs = Math.max(1, opts.batchSize ?? 16);
  const maxLen = opts.maxLen ?? model.config.max_position_embeddings;
  const out: LogprobResult[] = [];
  for (let i = 0; i < examples.length; i += bs) {
    const batch = makeBatch(examples.slice(i, i + bs), model.config.pad_token_id, maxLen);
    const t = O.tidy(() => batchLogprobs(model.forward(O.intTensor(batch.inputs, [batch.B, batch.T]), { inference: true }).logits, batch));
    const lp = O.read(t);
    t.dispose();
    const counts = rowCounts(batch);
    for (let b = 0; b < batch.B; b++) out.push({ logprob: lp[b], tokens: counts[b] });
  }
  return out;
}
