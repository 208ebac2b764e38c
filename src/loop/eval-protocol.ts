/**
 * lm-eval's protocol inside the loop (config keys `eval.task`, `eval.shots`, `eval.shotSeed`,
 * `eval.train`, and the server defaults of `eval.maxTokens` / `eval.calculator`).
 *
 * In process (the tiny world): zero-shot, `maxTokens` 96, calculator on — what its models are
 * trained for (`npm start` unchanged). With `eval.server` (real LLMs) the defaults become lm-eval's:
 * the task's shots (gsm8k: 5, drawn as lm-eval's sampler draws them from `eval.train`, default the
 * `train.jsonl` beside `world.dev`; gsm8k_cot: its 8 fixed exemplars), 256 new tokens, no calculator.
 * Every key can still be set explicitly. The prompts the loop sends for problem i of a file are those
 * of `selfdev eval --bench gsm8k:FILE --split all --shots K --seed S --train TRAIN` (tasks.ts).
 *
 * A stored config without `eval.shots` (a run started before the key existed) resumes zero-shot, as
 * it was scored.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { loadGsm8k } from '../eval/gsm8k.ts';
import { makeProtocol, type EvalProtocol, type RankMetric } from '../eval/protocol.ts';
import { TASKS, type ShotSpec, type TaskName } from '../eval/tasks.ts';

/** Tasks the loop scores with (GSM8k-format files; MATH is `selfdev eval --bench math:` only). */
export const LOOP_TASKS: readonly TaskName[] = ['gsm8k', 'gsm8k_cot'];
export const LM_EVAL_MAX_TOKENS = 256;

/** The protocol keys of the loop's `eval` block, after resolution. */
export interface EvalProtocolKeys {
  task: TaskName;
  /** Few-shot examples per prompt. */
  shots: number;
  /** lm-eval's fewshot_random_seed. */
  shotSeed: number;
  /** Shot pool (GSM8k train file), set when the task draws shots at random and shots > 0. */
  train?: string;
  maxTokens: number;
  calculator: boolean;
  server?: unknown;
}

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/**
 * Fill the protocol defaults of a merged `eval` block (server-dependent) and check the keys.
 * `userEval` is the config's own `eval` block (to tell "not given" from "given as the default").
 */
export function resolveEvalProtocol(ev: EvalProtocolKeys, userEval: unknown, worldDev: string, where: string, stored = false): void {
  const given = (k: string) => isObj(userEval) && userEval[k] !== undefined;
  const server = ev.server !== undefined;
  if (!LOOP_TASKS.includes(ev.task)) throw new Error(`${where}: eval.task must be ${LOOP_TASKS.join(' or ')}, got ${JSON.stringify(ev.task)}`);
  const task = TASKS[ev.task];
  if (server && !given('maxTokens')) ev.maxTokens = LM_EVAL_MAX_TOKENS;
  if (server && !given('calculator')) ev.calculator = false;
  if (!given('shots')) ev.shots = !stored && server ? task.defaultShots : 0;
  const max = task.fixedShots?.length ?? 64;
  if (typeof ev.shots !== 'number' || !Number.isInteger(ev.shots) || ev.shots < 0 || ev.shots > max) throw new Error(`${where}: eval.shots must be an integer from 0 to ${max}${task.fixedShots ? ` (${ev.task} has ${max} fixed exemplars)` : ''}, got ${JSON.stringify(ev.shots)}`);
  if (typeof ev.shotSeed !== 'number' || !Number.isSafeInteger(ev.shotSeed)) throw new Error(`${where}: eval.shotSeed must be an integer (lm-eval's fewshot_random_seed, default 1234), got ${JSON.stringify(ev.shotSeed)}`);
  const drawsShots = ev.shots > 0 && !task.fixedShots;
  if (given('train') && (typeof ev.train !== 'string' || !ev.train.trim())) throw new Error(`${where}: eval.train must be the path of the GSM8k train file the shots are drawn from, got ${JSON.stringify(ev.train)}`);
  if (drawsShots && ev.train === undefined) ev.train = join(dirname(worldDev), 'train.jsonl');
  if (!drawsShots) delete ev.train;
}

/** The shot pool and settings the evaluator uses (undefined for zero-shot); a missing or bad file is a clear error. */
export function loadShotSpec(ev: EvalProtocolKeys, root: string): ShotSpec | undefined {
  if (ev.shots === 0) return undefined;
  if (TASKS[ev.task].fixedShots) return { pool: [], k: ev.shots, seed: ev.shotSeed };
  const path = resolve(root, ev.train!);
  let pool;
  try {
    pool = loadGsm8k(path);
  } catch (e) {
    throw new Error(`eval.train (the shot pool of eval.shots ${ev.shots}; set eval.train, or eval.shots: 0): ${(e as Error).message}`);
  }
  if (pool.length < ev.shots) throw new Error(`eval.train ${ev.train}: ${pool.length} examples, eval.shots is ${ev.shots}`);
  return { pool, k: ev.shots, seed: ev.shotSeed, sampler: 'lm-eval' };
}

/** The protocol of a resolved config, for the store and the report (the train file by content hash). */
export function evalProtocolOf(ev: EvalProtocolKeys, root: string, rankBy: RankMetric = 'strict'): EvalProtocol {
  let trainSha256: string | undefined;
  if (ev.train !== undefined) {
    try {
      trainSha256 = createHash('sha256').update(readFileSync(resolve(root, ev.train))).digest('hex');
    } catch {
      trainSha256 = undefined; // loadShotSpec reports the missing file
    }
  }
  return makeProtocol({ task: ev.task, shots: ev.shots, shotSeed: ev.shotSeed, train: ev.train, trainSha256, maxTokens: ev.maxTokens, calculator: ev.calculator, rankBy, server: ev.server !== undefined });
}

/**
 * The protocol part of the evaluation key: nothing for the tiny world's zero-shot gsm8k (so keys, and
 * cached scores of earlier runs, stay as they were), else the task, shots, seed and pool.
 */
export function evalKeyProtocol(ev: EvalProtocolKeys): Record<string, unknown> {
  if (ev.shots === 0 && ev.task === 'gsm8k') return {};
  return { task: ev.task, shots: ev.shots, ...(ev.train !== undefined ? { shotSeed: ev.shotSeed, train: ev.train } : {}) };
}
