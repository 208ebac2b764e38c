/**
 * Candidate evaluation on a streamed merge world (config `merge.stream: true`, any model size):
 * cascade → merged checkpoint written tensor by tensor into a fresh served folder (the sandbox
 * child reads each tensor from the seed's and experts' files) → the configured server scores that
 * folder (eval.server) → the folder is removed. Same job contract and results as the in-memory
 * ProgramEvaluator (pool.ts); a program failing on any tensor leaves no folder behind.
 */
import { totalmem } from 'node:os';
import { resolve } from 'node:path';
import { rmSync } from 'node:fs';
import { validateAlgorithm, makeFileMergeFunction, AlgorithmRejected, type Sandbox } from '../sandbox/index.ts';
import { StreamWorld, defaultMaxMergeMemory, type StreamMerger } from '../merge/stream-world.ts';
import { makeServedDir, scoreServedFolder } from '../eval/served.ts';
import type { EvalProblem, ShotSpec } from '../eval/evaluate.ts';
import { parseSize } from '../io/checkpoint.ts';
import type { LoopConfig } from './config.ts';
import { scoresOf, scoringOptions, type JobResult } from './job-types.ts';
import type { ServerSession } from '../eval/served-session.ts';

/** The memory a streamed candidate merge may use: merge.maxMemory, else 3/4 of the RAM. */
export function maxMergeMemory(cfg: LoopConfig): number {
  const m = cfg.merge?.maxMemory;
  return m === undefined ? defaultMaxMergeMemory(totalmem()) : parseSize(m);
}

export function openStreamWorld(cfg: LoopConfig, seedDir: string, expertDirs: string[]): StreamWorld {
  return StreamWorld.open(seedDir, expertDirs, cfg.tensorFilter, { maxMemoryBytes: maxMergeMemory(cfg), timeScale: cfg.merge?.timeScale, dtype: cfg.eval.server?.dtype });
}

export class StreamEvaluator {
  readonly kind = 'stream';
  constructor(
    readonly world: StreamWorld,
    readonly sandbox: Sandbox,
    readonly cfg: LoopConfig,
    readonly seedDir: string = resolve(cfg.world.seedModel),
    /** Few-shot examples of the run's lm-eval protocol (eval.shots > 0). */
    readonly shots?: ShotSpec,
    /** The process's long-lived server (eval.server.reload): reloaded with each candidate's folder. */
    readonly session?: ServerSession,
  ) {}

  /** Merge (a program, or a baseline) into a served folder, then score it there. */
  async run(what: { code: string; seed: number } | { baseline: 'seed' | { lambda: number } }, problems: EvalProblem[]): Promise<JobResult> {
    const server = this.cfg.eval.server;
    if (!server) throw new Error('merge.stream needs eval.server (the merged checkpoint is scored by a server)');
    const t0 = performance.now();
    let merger: StreamMerger;
    let sandboxMs = 0;
    if ('code' in what) {
      const v = await validateAlgorithm(what.code, { sandbox: this.sandbox, seed: what.seed });
      sandboxMs = performance.now() - t0;
      if (!v.ok) return { ok: false, verdict: v.category ?? 'runtime', message: `${v.stage}: ${v.message ?? ''}`, sandboxMs };
      const fn = makeFileMergeFunction(what.code, this.sandbox, { stats: v.hasPrepare ? this.world.stats() : undefined, seed: what.seed, limits: this.world.limits() });
      merger = { kind: 'program', fn, seed: what.seed };
    } else merger = what.baseline === 'seed' ? { kind: 'seed' } : { kind: 'task-arithmetic', lambda: what.baseline.lambda };
    const { servedDir, modelDir } = this.session ? this.session.folder() : makeServedDir();
    try {
      const t1 = performance.now();
      try {
        await this.world.write(modelDir, merger, { dtype: server.dtype });
      } catch (e) {
        if (e instanceof AlgorithmRejected) return { ok: false, verdict: e.category, message: `merge: ${e.message}`, sandboxMs };
        if ('code' in what) return { ok: false, verdict: 'runtime', message: `merge: ${(e as Error).message}`, sandboxMs };
        throw e;
      }
      const t2 = performance.now();
      const o = { server, servedDir, modelDir, problems, ...scoringOptions(this.cfg, this.shots) };
      const { result: r } = await (this.session ? this.session.score(o) : scoreServedFolder(o));
      return { ok: true, scores: scoresOf(r), sandboxMs, mergeMs: t2 - t1, evalMs: performance.now() - t2 };
    } finally {
      rmSync(servedDir, { recursive: true, force: true });
    }
  }
}
