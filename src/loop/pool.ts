/**
 * Candidate evaluation for the loop: cascade → in-memory merge → greedy scoring, either in this
 * process (`workers: 1`) or drained by N forked worker processes (worker.ts), each with its own
 * MergeWorld, Sandbox and tfjs backend, loaded once and reused for the whole run.
 *
 * A job is (program code + ctx seed, or a baseline; expert set; problem set); its result is a
 * failure verdict or the scores. Both paths run the same `runJob`, so results do not depend on the
 * number of workers. The parent (controller.ts) writes every result to the store as it arrives.
 * A worker loads the out-of-domain world on its first OOD job. A worker that dies while holding a
 * job is replaced and the job retried once; a second death gives the verdict 'crash' (the process
 * pool itself is fork-pool.ts, shared with the tiny world's baselines).
 */
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import { Sandbox, validateAlgorithm, makeMergeFunction, AlgorithmRejected, type MergeFunction } from '../sandbox/index.ts';
import { initBackend, readJsonl } from '../nn/index.ts';
import { evaluate, type EvalProblem, type ShotSpec } from '../eval/evaluate.ts';
import { BuiltinBackend } from '../eval/backends.ts';
import { MergeWorld } from '../merge/world.ts';
import type { LoopConfig } from './config.ts';
import { ForkPool } from './fork-pool.ts';
import { loadShotSpec } from './eval-protocol.ts';
import { scoresOf, scoringOptions, type JobResult, type Scores } from './job-types.ts';
import { StreamEvaluator, openStreamWorld } from './stream-eval.ts';
import type { StreamWorld } from '../merge/stream-world.ts';
import type { ServerSession } from '../eval/served-session.ts';

/** Which problems a job is scored on: the first eval.devSubset dev problems, all dev, the selection split (world.select), or test. */
export type EvalSet = 'subset' | 'dev' | 'select' | 'test';

/**
 * A program's merge (ctx.seed = `seed`, derived from the run seed and the program hash), or a
 * baseline computed directly: the seed model, or task arithmetic seed + λ Σ τ. `experts: 'ood'`
 * uses the out-of-domain experts (world.oodExperts) instead of the in-domain ones.
 */
export type EvalJob =
  | { code: string; seed: number; set: EvalSet; experts?: 'in-domain' | 'ood' }
  | { baseline: 'seed' | { lambda: number }; set: EvalSet; experts?: 'in-domain' | 'ood' };

export type { Scores, JobResult } from './job-types.ts';

/** The evaluator: cascade → in-memory merge → greedy dev scoring. */
export class ProgramEvaluator {
  readonly kind = 'memory';
  constructor(
    readonly world: MergeWorld,
    readonly sandbox: Sandbox,
    readonly cfg: LoopConfig,
    /** The seed model's folder (eval.server copies its config and tokenizer files). */
    readonly seedDir: string = resolve(cfg.world.seedModel),
    /** Few-shot examples of the protocol (eval-protocol.ts); undefined = zero-shot. */
    readonly shots?: ShotSpec,
    /** The process's long-lived server (eval.server.reload), shared by its evaluators. */
    readonly session?: ServerSession,
  ) {}

  async mergeFunction(code: string, seed: number): Promise<{ fn: MergeFunction } | { verdict: string; message: string; ms: number }> {
    const t0 = performance.now();
    const v = await validateAlgorithm(code, { sandbox: this.sandbox, seed });
    if (!v.ok) return { verdict: v.category ?? 'runtime', message: `${v.stage}: ${v.message ?? ''}`, ms: performance.now() - t0 };
    return { fn: makeMergeFunction(code, this.sandbox, { stats: v.hasPrepare ? this.world.stats() : undefined, seed, limits: this.world.limits() }) };
  }

  async score(weights: Map<string, Float32Array>, problems: EvalProblem[]): Promise<Scores> {
    const server = this.cfg.eval.server;
    if (server) {
      // the real-LLM path: merged checkpoint on disk → the configured server → OpenAI-compatible scoring
      const { evaluateServed } = await import('../eval/served.ts');
      const o = { server, seedDir: this.seedDir, config: this.world.config, weights, problems, ...scoringOptions(this.cfg, this.shots) };
      const { result: r } = await (this.session ? this.session.evaluate(o) : evaluateServed(o));
      return scoresOf(r);
    }
    const model = this.world.model(weights);
    try {
      const be = BuiltinBackend.fromModel(model, this.world.tokenizer, { batchSize: this.cfg.eval.batchSize });
      const r = await evaluate(be, problems, scoringOptions(this.cfg, this.shots));
      return scoresOf(r);
    } finally {
      model.dispose();
    }
  }

  /** Merge with a program; returns weights or a failure. */
  async mergeProgram(code: string, seed: number): Promise<{ weights: Map<string, Float32Array>; sandboxMs: number; mergeMs: number } | { verdict: string; message: string; sandboxMs: number }> {
    const t0 = performance.now();
    const m = await this.mergeFunction(code, seed);
    const sandboxMs = performance.now() - t0;
    if (!('fn' in m)) return { verdict: m.verdict, message: m.message, sandboxMs };
    const t1 = performance.now();
    try {
      const weights = await this.world.merge(m.fn, seed);
      return { weights, sandboxMs, mergeMs: performance.now() - t1 };
    } catch (e) {
      if (e instanceof AlgorithmRejected) return { verdict: e.category, message: `merge: ${e.message}`, sandboxMs };
      const msg = (e as Error).message;
      return { verdict: /non-finite/.test(msg) ? 'non-finite' : 'runtime', message: `merge: ${msg}`, sandboxMs };
    }
  }
}

export function loadProblems(path: string): EvalProblem[] {
  return (readJsonl(path) as EvalProblem[]).map((p, i) => ({ ...p, index: i }));
}

/** Everything one evaluating process holds: the in-domain world, a sandbox and the problem sets (the OOD world on first use). */
export interface EvalContext {
  world: MergeWorld | StreamWorld;
  sandbox: Sandbox;
  /** ProgramEvaluator (in-memory world) or StreamEvaluator (merge.stream: true). */
  ev: ProgramEvaluator | StreamEvaluator;
  ood(): ProgramEvaluator | StreamEvaluator;
  sets: Record<EvalSet, EvalProblem[]>;
  /** The long-lived evaluation server (eval.server.reload), started by the first served job. */
  session: ServerSession | null;
  /** Frees the context; with a session, resolves once its server is stopped. */
  close(): void | Promise<void>;
}

export async function openEvalContext(cfg: LoopConfig, root: string): Promise<EvalContext> {
  const p = (x: string) => resolve(root, x);
  const sandbox = new Sandbox();
  sandbox.start().catch(() => undefined); // boot the sandbox child while the world loads (a failure shows on first use)
  const stream = cfg.merge?.stream === true;
  const openWorld = (experts: string[]) => (stream ? openStreamWorld(cfg, p(cfg.world.seedModel), experts.map(p)) : MergeWorld.load(p(cfg.world.seedModel), experts.map(p), cfg.tensorFilter));
  let dev: EvalProblem[], test: EvalProblem[], select: EvalProblem[], world: MergeWorld | StreamWorld, shots: ShotSpec | undefined;
  try {
    shots = loadShotSpec(cfg.eval, root); // a missing shot pool fails before the world loads
    if (!stream) await initBackend();
    dev = loadProblems(p(cfg.world.dev));
    test = loadProblems(p(cfg.world.test));
    select = loadProblems(p(cfg.world.select));
    world = openWorld(cfg.world.experts);
  } catch (e) {
    sandbox.close();
    throw e;
  }
  const spec = shots;
  const server = cfg.eval.server;
  const session = server?.reload ? new (await import('../eval/served-session.ts')).ServerSession(server) : null;
  const evaluator = (w: MergeWorld | StreamWorld) =>
    w instanceof MergeWorld ? new ProgramEvaluator(w, sandbox, cfg, p(cfg.world.seedModel), spec, session ?? undefined) : new StreamEvaluator(w, sandbox, cfg, p(cfg.world.seedModel), spec, session ?? undefined);
  const subset = dev.slice(0, Math.min(cfg.eval.devSubset, dev.length));
  let ood: ProgramEvaluator | StreamEvaluator | null = null;
  return {
    world, sandbox, ev: evaluator(world), sets: { subset, dev, select, test }, session,
    close: () => {
      sandbox.close();
      for (const e of [world, ood?.world]) if (e && !(e instanceof MergeWorld)) e.close();
      return session?.close();
    },
    ood: () => {
      if (cfg.world.oodExperts.length === 0) throw new Error('an out-of-domain job, but world.oodExperts is empty');
      return (ood ??= evaluator(openWorld(cfg.world.oodExperts)));
    },
  };
}

/** The in-memory evaluator of a context (recursive mode merges in memory; merge.stream is refused with it). */
export function memoryEvaluator(ctx: EvalContext): ProgramEvaluator {
  if (!(ctx.ev instanceof ProgramEvaluator)) throw new Error('recursive mode needs the in-memory merge world (merge.stream: false)');
  return ctx.ev;
}

/** One job: merge with the program (or build the baseline's weights), then score on the job's problem set. */
export async function runJob(ctx: EvalContext, job: EvalJob): Promise<JobResult> {
  const ev = job.experts === 'ood' ? ctx.ood() : ctx.ev;
  const problems = ctx.sets[job.set];
  if (ev instanceof StreamEvaluator) return ev.run('baseline' in job ? { baseline: job.baseline } : { code: job.code, seed: job.seed }, problems);
  if ('baseline' in job) {
    const t0 = performance.now();
    const weights = job.baseline === 'seed' ? ev.world.seed : ev.world.taskArithmetic(job.baseline.lambda);
    const t1 = performance.now();
    const scores = await ev.score(weights, problems);
    return { ok: true, scores, sandboxMs: 0, mergeMs: t1 - t0, evalMs: performance.now() - t1 };
  }
  const m = await ev.mergeProgram(job.code, job.seed);
  if (!('weights' in m)) return { ok: false, verdict: m.verdict, message: m.message, sandboxMs: m.sandboxMs };
  const t0 = performance.now();
  const scores = await ev.score(m.weights, problems);
  return { ok: true, scores, sandboxMs: m.sandboxMs, mergeMs: m.mergeMs, evalMs: performance.now() - t0 };
}

/** Runs jobs: `concurrency` of them may be in flight at once. */
export interface JobRunner {
  readonly concurrency: number;
  run(job: EvalJob): Promise<JobResult>;
  close(): Promise<void>;
}

/** workers = 1: jobs run in this process, one at a time, on the caller's context. */
export class LocalRunner implements JobRunner {
  readonly concurrency = 1;
  constructor(readonly ctx: EvalContext) {}
  run(job: EvalJob): Promise<JobResult> {
    return runJob(this.ctx, job);
  }
  async close(): Promise<void> {}
}

// ------------------------------------------------------------------------------ worker pool

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));

/** What every evaluation worker loads (worker.ts → openEvalContext). */
export interface WorkerInit {
  cfg: LoopConfig;
  root: string;
}

export interface PoolOptions {
  /** Called when a job is sent to a worker (tests use it to kill the worker mid-job). */
  onDispatch?: (pid: number, job: EvalJob, attempt: number) => void;
}

/**
 * N evaluation workers (worker.ts, each with its own world and sandbox) on the shared ForkPool; a job
 * whose worker dies is retried once, a second death gives the verdict 'crash'.
 */
export class WorkerPool extends ForkPool<WorkerInit, EvalJob, JobResult> implements JobRunner {
  constructor(concurrency: number, cfg: LoopConfig, root: string, opts: PoolOptions = {}) {
    super(concurrency, {
      worker: WORKER,
      init: { cfg, root },
      name: 'evaluation worker',
      maxAttempts: 2,
      onDispatch: opts.onDispatch,
      onGiveUp: (_job, d) => ({ ok: false, verdict: 'crash', message: `the evaluation worker died twice while evaluating this program (last: exit code ${d.code}, signal ${d.signal}); stderr: ${d.stderr.trim().slice(-500)}`, sandboxMs: 0 }),
    });
  }
}
