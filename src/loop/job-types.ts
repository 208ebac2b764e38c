/** Results of evaluation jobs (pool.ts runs them; stream-eval.ts too). */
import type { EvalResult, ShotSpec } from '../eval/evaluate.ts';
import type { LoopConfig } from './config.ts';

export interface Scores {
  strict: number;
  flexible: number;
  families: Record<string, number>;
}

/** `worker`: the queue worker (HOST:PID) that produced it (distributed evaluation only). */
export type JobResult =
  | { ok: true; scores: Scores; sandboxMs: number; mergeMs: number; evalMs: number; worker?: string }
  | { ok: false; verdict: string; message: string; sandboxMs: number; worker?: string };

/** A job's scores from an evaluation (in process or served): family scores are strict accuracies. */
export function scoresOf(r: Pick<EvalResult, 'strict' | 'flexible' | 'perFamily'>): Scores {
  return { strict: r.strict, flexible: r.flexible, families: Object.fromEntries(Object.entries(r.perFamily).map(([k, a]) => [k, a.strict])) };
}

/** How the run scores a candidate (the same for the in-process engine and a server). */
export function scoringOptions(cfg: LoopConfig, shots: ShotSpec | undefined): { maxTokens: number; calculator: boolean; task: LoopConfig['eval']['task']; shots: ShotSpec | undefined } {
  return { maxTokens: cfg.eval.maxTokens, calculator: cfg.eval.calculator, task: cfg.eval.task, shots };
}
