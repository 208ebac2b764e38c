/**
 * The evaluator: greedy completions from a backend, scored with lm-eval's gsm8k strict-match and
 * flexible-extract exact match (scoring.ts), per question records and per-family accuracy.
 *
 * Prompting: the tiny world is zero-shot `Question: {q}\nAnswer:` (the format its models are trained
 * on); real GSM8k is K-shot as lm-eval (shots = full train answers, "\n\n" between them), with shots
 * drawn per document by prompt.ts `selectShots` (mulberry32, seeded by (seed, doc index) — NOT
 * lm-eval's Python-random shot sets; record the seed with the scores).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { finalAnswer, loadGsm8k, splitDevTest } from './gsm8k.ts';
import type { GsmDoc } from './gsm8k.ts';
import { buildPrompt, cutAtStop, selectShots, STOP_STRINGS, DEFAULT_NUM_SHOTS } from './prompt.ts';
import type { QA } from './prompt.ts';
import { scoreResponse } from './scoring.ts';
import type { EvalBackend, FinishReason } from './backends.ts';
import type { SplitName } from '../world/bench.ts';

export interface EvalProblem extends GsmDoc {
  /** Position in the source file (0-based); seeds the problem's shot set. */
  index?: number;
}

export interface ShotSpec {
  pool: readonly QA[];
  k: number;
  seed: number;
}

export interface EvaluateOptions {
  /** Few-shot examples (GSM8k); omitted → zero-shot. */
  shots?: ShotSpec;
  /** New-token budget per question (default 256). */
  maxTokens?: number;
  /** Calculator-augmented decoding (default false here; the CLI turns it on for the tiny world). */
  calculator?: boolean;
  /** Stop strings (default lm-eval's gsm8k stops). */
  stop?: readonly string[];
  /** Questions handed to the backend per call (progress granularity; default 200). */
  chunk?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface EvalRecord {
  index: number;
  family: string | null;
  question: string;
  /** The reference final answer (text after the last `#### `). */
  reference: string;
  /** Raw generation, cut at the stop strings. */
  generation: string;
  finish: FinishReason;
  calculator_calls: number;
  strict_extracted: string;
  strict_correct: boolean;
  flexible_extracted: string;
  flexible_correct: boolean;
}

export interface Accuracy {
  n: number;
  strict: number;
  flexible: number;
}

export interface EvalResult {
  n: number;
  /** Accuracy (0..1) of lm-eval strict-match. */
  strict: number;
  /** Accuracy (0..1) of lm-eval flexible-extract. */
  flexible: number;
  perFamily: Record<string, Accuracy>;
  records: EvalRecord[];
  seconds: number;
  settings: { backend: string; maxTokens: number; calculator: boolean; shots: number; shotSeed: number | null; stop: string[] };
}

/** The prompt of problem `i` under `shots`. */
export function promptFor(p: EvalProblem, i: number, shots?: ShotSpec): string {
  if (!shots || shots.k === 0) return buildPrompt(p.question);
  const s = selectShots(shots.pool, { k: shots.k, seed: shots.seed, docIndex: p.index ?? i, excludeQuestion: p.question });
  return buildPrompt(p.question, s);
}

/** Evaluate `problems` with greedy decoding on `backend`. */
export async function evaluate(backend: EvalBackend, problems: readonly EvalProblem[], opts: EvaluateOptions = {}): Promise<EvalResult> {
  const t0 = performance.now();
  const maxTokens = opts.maxTokens ?? 256;
  const stop = [...(opts.stop ?? STOP_STRINGS)];
  const calculator = opts.calculator ?? false;
  const chunk = Math.max(1, opts.chunk ?? 200);
  const prompts = problems.map((p, i) => promptFor(p, i, opts.shots));
  const records: EvalRecord[] = [];
  for (let i = 0; i < problems.length; i += chunk) {
    const part = prompts.slice(i, i + chunk);
    const outs = await backend.complete(part, { maxTokens, stop, calculator });
    if (outs.length !== part.length) throw new Error(`${backend.description}: returned ${outs.length} completions for ${part.length} prompts`);
    outs.forEach((c, k) => {
      const p = problems[i + k];
      const generation = cutAtStop(c.text, stop);
      const sc = scoreResponse(generation, p.answer);
      records.push({
        index: p.index ?? i + k,
        family: p.family ?? null,
        question: p.question,
        reference: finalAnswer(p.answer),
        generation,
        finish: c.finish,
        calculator_calls: c.calculatorCalls,
        strict_extracted: sc.strict.extracted,
        strict_correct: sc.strict.correct,
        flexible_extracted: sc.flexible.extracted,
        flexible_correct: sc.flexible.correct,
      });
    });
    opts.onProgress?.(Math.min(problems.length, i + chunk), problems.length);
  }
  const acc = (rs: EvalRecord[]): Accuracy => ({
    n: rs.length,
    strict: rs.length ? rs.filter((r) => r.strict_correct).length / rs.length : 0,
    flexible: rs.length ? rs.filter((r) => r.flexible_correct).length / rs.length : 0,
  });
  const perFamily: Record<string, Accuracy> = {};
  const fams = [...new Set(records.map((r) => r.family).filter((f): f is string => f !== null))].sort();
  for (const f of fams) perFamily[f] = acc(records.filter((r) => r.family === f));
  const all = acc(records);
  return {
    n: all.n,
    strict: all.strict,
    flexible: all.flexible,
    perFamily,
    records,
    seconds: (performance.now() - t0) / 1000,
    settings: { backend: backend.description, maxTokens, calculator, shots: opts.shots?.k ?? 0, shotSeed: opts.shots && opts.shots.k > 0 ? opts.shots.seed : null, stop },
  };
}

// ------------------------------------------------------------------------------ bench specs

export type BenchSpec = { kind: 'tiny' } | { kind: 'gsm8k'; path: string };
/** A shipped split (dev: screening, select: choosing the best program, test: reporting), or 'all' = dev + test. */
export type Split = SplitName | 'all';
export const SPLIT_NAMES: readonly Split[] = ['dev', 'test', 'select', 'all'];

/** Parse `tiny` or `gsm8k:PATH`. */
export function parseBenchSpec(s: string): BenchSpec {
  if (s === 'tiny') return { kind: 'tiny' };
  if (s.startsWith('gsm8k:') && s.length > 'gsm8k:'.length) return { kind: 'gsm8k', path: s.slice('gsm8k:'.length) };
  throw new Error(`bad bench spec '${s}': expected 'tiny' or 'gsm8k:PATH' (a GSM8k JSONL file)`);
}

/** The shipped tiny-world benchmark file of a split (world/bench/{dev,test,select}.jsonl). */
export function tinyBenchFile(split: SplitName): string {
  return fileURLToPath(new URL(`../../world/bench/${split}.jsonl`, import.meta.url));
}

/** GSM8k dev/test carving used by the loop: 100 dev problems, seed 0 (gsm8k.ts splitDevTest). */
export const GSM8K_DEV_SIZE = 100;
export const GSM8K_SPLIT_SEED = 0;

/**
 * Problems of a bench + split. Tiny world: the shipped `world/bench/{dev,test,select}.jsonl` ('all' =
 * dev + test, as before the selection split existed). GSM8k file: 'dev' = 100 problems carved by
 * splitDevTest(seed 0), 'test' = the rest, 'all' = the whole file; each problem keeps its file index.
 * A GSM8k file has no selection split ('select' is an error).
 */
export function loadProblems(spec: BenchSpec, split: Split): EvalProblem[] {
  if (!SPLIT_NAMES.includes(split)) throw new Error(`unknown split '${String(split)}': expected ${SPLIT_NAMES.join(', ')}`);
  if (spec.kind === 'tiny') {
    const splits: SplitName[] = split === 'all' ? ['dev', 'test'] : [split];
    const out: EvalProblem[] = [];
    for (const s of splits) {
      const f = tinyBenchFile(s);
      if (!existsSync(f)) throw new Error(`tiny-world benchmark file missing: ${f}`);
      out.push(...loadGsm8k(f));
    }
    return out.map((d, i) => ({ ...d, index: i }));
  }
  if (split === 'select') throw new Error(`a GSM8k file has no selection split: use dev, test or all with gsm8k:${spec.path} (the select split is the tiny world's world/bench/select.jsonl)`);
  if (!existsSync(spec.path)) throw new Error(`GSM8k file not found: ${spec.path}`);
  const docs: EvalProblem[] = loadGsm8k(spec.path).map((d, i) => ({ ...d, index: i }));
  if (split === 'all') return docs;
  const sp = splitDevTest(docs, Math.min(GSM8K_DEV_SIZE, docs.length), GSM8K_SPLIT_SEED);
  return split === 'dev' ? sp.dev : sp.test;
}

export { DEFAULT_NUM_SHOTS };
