/**
 * Training data: tokenised examples with per-token loss masks, right-padded batches, packing.
 *
 * An `Example` is one token sequence plus `mask[i] = 1` when token i is a training target (the
 * model learns to predict it from tokens < i). Prompt tokens, padding and e.g. calculator outputs
 * have mask 0.
 */
import { readFileSync } from 'node:fs';
import * as O from './ops.ts';
import type { Tensor } from './ops.ts';
import type { Tokenizer } from './tokenizer.ts';

export interface Example {
  ids: number[];
  mask: number[];
}

export interface PairOptions {
  /** Learn only the completion (+ eos); default true. When false every token after bos is a target. */
  completionOnly?: boolean;
  /** Character spans [start, end) of the completion whose tokens are not targets (e.g. calculator outputs). */
  maskSpans?: Array<[number, number]>;
  /** Prepend bos (default true) / append eos (default true). */
  bos?: boolean;
  eos?: boolean;
  /** Keep only the last N prompt tokens (the end of the prompt: what a model with a short context sees). */
  maxPromptTokens?: number;
}

/**
 * Tokens of bos + prompt + completion + eos. With `maskSpans` the completion is encoded piecewise at
 * span boundaries (the same way a decoder that injects those spans would see them).
 */
export function encodePair(tok: Tokenizer, prompt: string, completion: string, opts: PairOptions = {}): Example {
  const completionOnly = opts.completionOnly ?? true;
  const ids: number[] = [];
  const mask: number[] = [];
  if (opts.bos ?? true) {
    ids.push(tok.bosId);
    mask.push(0);
  }
  const promptIds = tok.encode(prompt);
  const keep = opts.maxPromptTokens;
  if (keep !== undefined && !(Number.isInteger(keep) && keep >= 0)) throw new Error(`encodePair: maxPromptTokens must be a non-negative integer, got ${keep}`);
  for (const t of keep !== undefined && promptIds.length > keep ? promptIds.slice(promptIds.length - keep) : promptIds) {
    ids.push(t);
    mask.push(completionOnly ? 0 : 1);
  }
  const spans = (opts.maskSpans ?? []).slice().sort((a, b) => a[0] - b[0]);
  let at = 0;
  const pieces: Array<[string, number]> = [];
  for (const [s, e] of spans) {
    if (!(s >= at && e >= s && e <= completion.length)) throw new Error(`encodePair: bad or overlapping mask span [${s}, ${e}) for a completion of ${completion.length} chars`);
    if (s > at) pieces.push([completion.slice(at, s), 1]);
    if (e > s) pieces.push([completion.slice(s, e), 0]);
    at = e;
  }
  if (at < completion.length) pieces.push([completion.slice(at), 1]);
  for (const [text, m] of pieces) {
    for (const t of tok.encode(text)) {
      ids.push(t);
      mask.push(m);
    }
  }
  if (opts.eos ?? true) {
    ids.push(tok.eosId);
    mask.push(1);
  }
  return { ids, mask };
}

/** Pack documents (bos + text + eos each) into examples of exactly `len` tokens, all targets. */
export function packTexts(tok: Tokenizer, texts: Iterable<string>, len: number): Example[] {
  const stream: number[] = [];
  for (const t of texts) stream.push(tok.bosId, ...tok.encode(t), tok.eosId);
  const out: Example[] = [];
  for (let i = 0; i + len <= stream.length; i += len - 1) {
    // chunks overlap by one token so every token (but the very first) is a target once
    const ids = stream.slice(i, i + len);
    out.push({ ids, mask: ids.map((_, j) => (j === 0 ? 0 : 1)) });
  }
  if (out.length === 0 && stream.length >= 2) out.push({ ids: stream.slice(), mask: stream.map((_, j) => (j === 0 ? 0 : 1)) });
  return out;
}

/** A batch: inputs [B, T], targets [B*T] and weights [B*T] (1 = counted in the loss). */
export interface Batch {
  B: number;
  T: number;
  inputs: Int32Array;
  targets: Int32Array;
  weights: Float32Array;
  /** Number of real (non-pad) input tokens. */
  tokens: number;
}

/** Right-padded batch from examples; sequences longer than maxLen+1 tokens keep their start. */
export function makeBatch(examples: Example[], padId: number, maxLen: number): Batch {
  const B = examples.length;
  let T = 1;
  for (const e of examples) T = Math.max(T, Math.min(e.ids.length, maxLen + 1) - 1);
  const inputs = new Int32Array(B * T).fill(padId);
  const targets = new Int32Array(B * T).fill(padId);
  const weights = new Float32Array(B * T);
  let tokens = 0;
  examples.forEach((e, b) => {
    const n = Math.min(e.ids.length, maxLen + 1);
    for (let t = 0; t + 1 < n; t++) {
      inputs[b * T + t] = e.ids[t];
      targets[b * T + t] = e.ids[t + 1];
      weights[b * T + t] = e.mask[t + 1] ? 1 : 0;
      tokens++;
    }
  });
  return { B, T, inputs, targets, weights, tokens };
}

/**
 * Per-row sum of target log-probs (weights applied) [B] and per-row token counts, differentiable.
 * Call inside `O.tidy`.
 */
export function batchLogprobs(logits: Tensor, batch: Batch): Tensor {
  const picked = O.targetLogprobs(logits, batch.targets);
  const w = O.tensor(batch.weights, [batch.B * batch.T]);
  return O.sum(O.reshape(O.mul(picked, w), [batch.B, batch.T]), -1);
}

export function rowCounts(batch: Batch): number[] {
  const out = new Array<number>(batch.B).fill(0);
  for (let i = 0; i < batch.B * batch.T; i++) out[Math.floor(i / batch.T)] += batch.weights[i];
  return out;
}

/** Read a JSONL file into objects, naming the file and line on errors. */
export function readJsonl(path: string): any[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`${path}: cannot read (${(e as Error).message})`);
  }
  const out: any[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    try {
      out.push(JSON.parse(line));
    } catch (e) {
      throw new Error(`${path}:${i + 1}: invalid JSON (${(e as Error).message})`);
    }
  });
  return out;
}

/**
 * Examples from a data file: JSONL of {prompt, completion[, mask_spans]} pairs, JSONL of {text}, or
 * plain text (documents separated by blank lines), packed to seqLen+1 tokens.
 */
export function loadExamples(path: string, tok: Tokenizer, seqLen: number, opts: { completionOnly?: boolean } = {}): Example[] {
  if (path.endsWith('.jsonl') || path.endsWith('.json')) {
    const rows = readJsonl(path);
    if (rows.length === 0) throw new Error(`${path}: no examples`);
    if (typeof rows[0]?.text === 'string' && rows[0].prompt === undefined) {
      return packTexts(tok, rows.map((r, i) => {
        if (typeof r?.text !== 'string') throw new Error(`${path}:${i + 1}: expected a string field "text"`);
        return r.text as string;
      }), seqLen + 1);
    }
    return rows.map((r, i) => {
      if (typeof r?.prompt !== 'string' || typeof r?.completion !== 'string') {
        throw new Error(`${path}: row ${i + 1}: expected string fields "prompt" and "completion" (or "text")`);
      }
      return encodePair(tok, r.prompt, r.completion, { completionOnly: opts.completionOnly, maskSpans: r.mask_spans });
    });
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`${path}: cannot read (${(e as Error).message})`);
  }
  return packTexts(tok, text.split(/\n\s*\n/).filter((s) => s.trim()), seqLen + 1);
}
