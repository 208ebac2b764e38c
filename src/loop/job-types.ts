/** Results of evaluation jobs (pool.ts runs them; stream-eval.ts too). */

export interface Scores {
  strict: number;
  flexible: number;
  families: Record<string, number>;
}

/** `worker`: the queue worker (HOST:PID) that produced it (distributed evaluation only). */
export type JobResult =
  | { ok: true; scores: Scores; sandboxMs: number; mergeMs: number; evalMs: number; worker?: string }
  | { ok: false; verdict: string; message: string; sandboxMs: number; worker?: string };
