/**
 * Which job runner evaluates a run's candidates: a runner given by a test, a BullMQ queue
 * (`distributed`, src/distributed, loaded only then), worker processes (`workers` > 1), or this
 * process (`workers` = 1, whose evaluation context the loop also uses for recursive merges).
 */
import { resolveDistributed, type DistributedConfig, type LoopConfig } from './config.ts';
import { LocalRunner, WorkerPool, openEvalContext, type EvalContext, type JobRunner } from './pool.ts';

/** How one invocation of the loop evaluates (none of it changes the results). */
export interface RunnerOptions {
  /** Overrides the config's `workers`. */
  workers?: number;
  /** A queue URL: sets (or overrides) the url of the distributed block in effect. */
  queue?: string;
  /** Overrides the config's `distributed` block for this invocation (null: evaluate on this machine unless `queue` is set). */
  distributed?: DistributedConfig | null;
  /** Part of every queue job id of this run (experiments: "ARM/rK"), so two runs' jobs never share an id. */
  queueNamespace?: string;
  /** Tests: this runner instead of the world. */
  runner?: JobRunner;
}

/** The queue's state, for the progress line. */
export interface QueueStatus {
  waiting: number;
  active: number;
  completed: number;
  failed: number;
  workers: number;
}

/** The distributed block in effect: the invocation's (or the config's), with `queue` as its url. */
export function distributedOf(cfg: LoopConfig, o: RunnerOptions): DistributedConfig | undefined {
  const block = o.distributed === undefined ? cfg.distributed : (o.distributed ?? undefined);
  return o.queue ? resolveDistributed({ ...block, url: o.queue }, '--queue') : block;
}

/**
 * Opens the run's job runner. `runDone`: a finished run starts its worker processes only if a job
 * comes; otherwise they load while the factory samples. `localCtx` is set when evaluation runs in
 * this process (the caller closes it after the runner).
 */
export async function openJobRunner(cfg: LoopConfig, root: string, o: RunnerOptions, runDone: boolean, onQueue: (s: QueueStatus) => void): Promise<{ runner: JobRunner; localCtx: EvalContext | null }> {
  const workers = o.workers ?? cfg.workers;
  if (!Number.isInteger(workers) || workers < 1) throw new Error(`workers must be a positive integer, got ${String(workers)}`);
  if (o.runner) return { runner: o.runner, localCtx: null };
  const dist = distributedOf(cfg, o);
  if (dist) {
    const { QueueRunner } = await import('../distributed/queue-runner.ts');
    const runner = await QueueRunner.open({ cfg, root, url: dist.url, maxInFlight: dist.maxInFlight, lockDurationMs: dist.lockDurationMs, attempts: dist.attempts, namespace: o.queueNamespace, onStatus: onQueue });
    return { runner, localCtx: null };
  }
  if (workers > 1) {
    const pool = new WorkerPool(workers, cfg, root);
    if (!runDone) pool.start();
    return { runner: pool, localCtx: null };
  }
  const ctx = await openEvalContext(cfg, root);
  return { runner: new LocalRunner(ctx), localCtx: ctx };
}
