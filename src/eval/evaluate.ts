/**
 * The evaluator: greedy completions from a backend, scored as an lm-eval task (tasks.ts: `gsm8k`
 * by default — strict-match and flexible-extract exact match, scoring.ts — or `gsm8k_cot`),
 * per question records and per-family accuracy.
 *
 * Prompting: the tiny world is zero-shot `Question: {q}\nAnswer:` (the format its models are trained
 * on); real GSM8k is K-shot as lm-eval (shots = full train answers, "\n\n" between them), with the
 * shots lm-eval's default sampler draws (tasks.ts: CPython's `Random(seed).sample`, seed 1234).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadGsm8k, splitDevTest } from './gsm8k.ts';
import { loadMath } from './math.ts';
import type { GsmDoc } from './gsm8k.ts';
import { cutAtStop, DEFAULT_NUM_SHOTS } from './prompt.ts';
import { TASKS, taskPrompts, type ShotSpec, type ShotSampler, type TaskName } from './tasks.ts';
import type { EvalBackend, FinishReason } from './backends.ts';
import type { SplitName } from '../world/bench.ts';

export interface EvalProblem extends GsmDoc {
  /** Position in the source file (0-based); seeds the problem's shot set. */
  index?: number;
}

export type { ShotSpec } from './tasks.ts';

export interface EvaluateOptions {
  /** The lm-eval task whose prompt, stops and scoring are used (default 'gsm8k'). */
  task?: TaskName;
  /** Few-shot examples; omitted → zero-shot. */
  shots?: ShotSpec;
  /** New-token budget per question (default 256). */
  maxTokens?: number;
  /** Calculator-augmented decoding (default false here; the CLI turns it on for the tiny world). */
  calculator?: boolean;
  /** Stop strings (default: the task's). */
  stop?: readonly string[];
  /** Questions handed to the backend per call (progress granularity; default 200). */
  chunk?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface EvalRecord {
  index: number;
  family: string | null;
  question: string;
  /** The reference final answer (GSM8k: text after the last `#### `; MATH: the boxed answer). */
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
  settings: { backend: string; task: TaskName; maxTokens: number; calculator: boolean; shots: number; shotSeed: number | null; sampler: ShotSampler | null; stop: string[] };
}

/** The prompt of problem `i` under `shots` (and `task`, default gsm8k). */
export function promptFor(p: EvalProblem, i: number, shots?: ShotSpec, task: TaskName = 'gsm8k'): string {
  return taskPrompts(TASKS[task], [{ question: p.question, answer: p.answer, index: p.index ?? i }], shots)[0];
}

/** The prompts `evaluate` sends for `problems` (one per problem, in order). */
export function promptsFor(problems: readonly EvalProblem[], shots?: ShotSpec, task: TaskName = 'gsm8k'): string[] {
  return taskPrompts(TASKS[task], problems.map((p, i) => ({ question: p.question, answer: p.answer, index: p.index ?? i })), shots);
}

/** Evaluate `problems` with greedy decoding on `backend`. */
export async function evaluate(backend: EvalBackend, problems: readonly EvalProblem[], opts: EvaluateOptions = {}): Promise<EvalResult> {
  const t0 = performance.now();
  const maxTokens = opts.maxTokens ?? 256;
  const taskName = opts.task ?? 'gsm8k';
  const task = TASKS[taskName];
  if (!task) throw new Error(`unknown task '${String(taskName)}'`);
  const stop = [...(opts.stop ?? task.stops)];
  const calculator = opts.calculator ?? false;
  const chunk = Math.max(1, opts.chunk ?? 200);
  const prompts = promptsFor(problems, opts.shots, taskName);
  const records: EvalRecord[] = [];
  for (let i = 0; i < problems.length; i += chunk) {
    const part = prompts.slice(i, i + chunk);
    const outs = await backend.complete(part, { maxTokens, stop, calculator });
    if (outs.length !== part.length) throw new Error(`${backend.description}: returned ${outs.length} completions for ${part.length} prompts`);
    outs.forEach((c, k) => {
      const p = problems[i + k];
      const generation = cutAtStop(c.text, stop);
      const sc = task.score(generation, p.answer);
      records.push({
        index: p.index ?? i + k,
        family: p.family ?? null,
        question: p.question,
        reference: sc.reference,
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
    settings: {
      backend: backend.description, task: taskName, maxTokens, calculator, shots: opts.shots?.k ?? 0,
      shotSeed: opts.shots && opts.shots.k > 0 && !task.fixedShots ? opts.shots.seed : null,
      sampler: opts.shots && opts.shots.k > 0 && !task.fixedShots ? (opts.shots.sampler ?? 'lm-eval') : null, stop,
    },
  };
}

// ------------------------------------------------------------------------------ bench specs

export type BenchSpec = { kind: 'tiny' } | { kind: 'gsm8k'; path: string } | { kind: 'math'; path: string };
/** A shipped split (dev: screening, select: choosing the best program, test: reporting), or 'all' = dev + test. */
export type Split = SplitName | 'all';
export const SPLIT_NAMES: readonly Split[] = ['dev', 'test', 'select', 'all'];

/** Parse `tiny`, `gsm8k:PATH` or `math:PATH`. */
export function parseBenchSpec(s: string): BenchSpec {
  if (s === 'tiny') return { kind: 'tiny' };
  if (s.startsWith('gsm8k:') && s.length > 'gsm8k:'.length) return { kind: 'gsm8k', path: s.slice('gsm8k:'.length) };
  if (s.startsWith('math:') && s.length > 'math:'.length) return { kind: 'math', path: s.slice('math:'.length) };
  throw new Error(`bad bench spec '${s}': expected 'tiny', 'gsm8k:PATH' (a GSM8k JSONL file) or 'math:PATH' (MATH JSONL: problem, solution with \\boxed{})`);
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
 * dev + test, as before the selection split existed). GSM8k or MATH file: 'dev' = 100 problems carved
 * by splitDevTest(seed 0), 'test' = the rest, 'all' = the whole file; each problem keeps its file
 * index. Such a file has no selection split ('select' is an error).
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
  const what = spec.kind === 'gsm8k' ? 'GSM8k' : 'MATH';
  if (split === 'select') throw new Error(`a ${what} file has no selection split: use dev, test or all with ${spec.kind}:${spec.path} (the select split is the tiny world's world/bench/select.jsonl)`);
  if (!existsSync(spec.path)) throw new Error(`${what} file not found: ${spec.path}`);
  const docs: EvalProblem[] = (spec.kind === 'gsm8k' ? loadGsm8k(spec.path) : loadMath(spec.path)).map((d, i) => ({ ...d, index: i }));
  if (split === 'all') return docs;
  const sp = splitDevTest(docs, Math.min(GSM8K_DEV_SIZE, docs.length), GSM8K_SPLIT_SEED);
  return split === 'dev' ? sp.dev : sp.test;
}

export { DEFAULT_NUM_SHOTS };
