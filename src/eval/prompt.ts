/**
 * Prompts and stop strings of lm-evaluation-harness `gsm8k` (v3.0), plain text, no chat template:
 *
 *   Question: <shot 1 question>\nAnswer: <shot 1 full answer>\n\n … \n\nQuestion: <q>\nAnswer:
 *
 * (target delimiter " ", few-shot delimiter "\n\n", nothing after the final "Answer:").
 *
 * Shot selection: tasks.ts draws the shots as lm-eval's default sampler does (CPython's
 * `random.Random(1234).sample`, pyrandom.ts). `selectShots` below is selfdev's older scheme (sampler
 * 'seeded'): a mulberry32 permutation of the pool, `fixed` (the same k shots for every doc — lets a
 * decoder reuse the prompt prefix) or per doc (seeded by seed and doc index). Scores depend on the shot
 * set; the sampler and seed are recorded with results.
 */
import { mulberry32 } from './gsm8k.ts';

export interface QA {
  question: string;
  answer: string;
}

/** Generation stops of the gsm8k task (the HF backend adds the tokenizer's EOS text if missing). */
export const STOP_STRINGS: readonly string[] = ['Question:', '</s>', '<|im_end|>'];

export const DEFAULT_NUM_SHOTS = 5;

/** `Question: {q}\nAnswer:` */
export function formatQuery(question: string): string {
  return `Question: ${question}\nAnswer:`;
}

/** `Question: {q}\nAnswer: {full answer}` */
export function formatShot(shot: QA): string {
  return `${formatQuery(shot.question)} ${shot.answer}`;
}

/** The full few-shot prompt; with no shots, just the query. */
export function buildPrompt(question: string, shots: readonly QA[] = []): string {
  if (shots.length === 0) return formatQuery(question);
  return `${shots.map(formatShot).join('\n\n')}\n\n${formatQuery(question)}`;
}

/** Index of the earliest occurrence of any stop string (−1 if none). */
export function firstStopIndex(text: string, stops: readonly string[] = STOP_STRINGS): number {
  let best = -1;
  for (const s of stops) {
    if (s.length === 0) continue;
    const i = text.indexOf(s);
    if (i >= 0 && (best < 0 || i < best)) best = i;
  }
  return best;
}

/** Cut a generation at the first stop string (the stop itself is dropped, as lm-eval does). */
export function cutAtStop(text: string, stops: readonly string[] = STOP_STRINGS): string {
  const i = firstStopIndex(text, stops);
  return i < 0 ? text : text.slice(0, i);
}

/** Derive a per-doc seed from a base seed and a doc index (a 32-bit mix). */
function docSeed(seed: number, docIndex: number): number {
  let h = Math.imul((seed >>> 0) ^ 0x9e3779b9, 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (docIndex >>> 0) ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

export interface ShotOptions<T extends QA> {
  k?: number;
  seed: number;
  /** Omit → the fixed shot set; a number → that doc's own shot set. */
  docIndex?: number;
  /** Never use a pool entry with this question (the evaluated doc, when pool and eval set overlap). */
  excludeQuestion?: string;
  /** Extra filter on pool entries. */
  accept?: (shot: T) => boolean;
}

/** Draw k distinct shots from the pool (a partial seeded Fisher–Yates), in draw order. */
export function selectShots<T extends QA>(pool: readonly T[], opts: ShotOptions<T>): T[] {
  const k = opts.k ?? DEFAULT_NUM_SHOTS;
  if (!Number.isInteger(k) || k < 0) throw new Error(`selectShots: k must be a non-negative integer, got ${k}`);
  const rnd = mulberry32(opts.docIndex === undefined ? opts.seed : docSeed(opts.seed, opts.docIndex));
  const idx = Array.from({ length: pool.length }, (_, i) => i);
  const out: T[] = [];
  for (let i = 0; i < idx.length && out.length < k; i++) {
    const j = i + Math.floor(rnd() * (idx.length - i));
    [idx[i], idx[j]] = [idx[j], idx[i]];
    const cand = pool[idx[i]];
    if (opts.excludeQuestion !== undefined && cand.question === opts.excludeQuestion) continue;
    if (opts.accept !== undefined && !opts.accept(cand)) continue;
    out.push(cand);
  }
  if (out.length < k) throw new Error(`selectShots: only ${out.length} usable shots in a pool of ${pool.length}, need ${k}`);
  return out;
}
