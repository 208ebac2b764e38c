/**
 * A baselines worker (forked by baselines.ts through the loop's process pool, src/loop/fork-pool.ts):
 * loads the tfjs backend on 'init', then scores one candidate at a time with the same evaluator as
 * the in-process path (models loaded on first use).
 */
import { initBackend } from '../nn/index.ts';
import { modelLoader } from '../merge/in-memory.ts';
import { serveJobs } from '../loop/fork-pool.ts';
import { localEvaluator, type BaselineJob, type EvalSettings, type Evaluator, type SplitScore } from './baselines.ts';

serveJobs<EvalSettings, Evaluator, BaselineJob, SplitScore>(
  'baselines worker',
  async (settings) => {
    await initBackend();
    return localEvaluator(settings, modelLoader(), {});
  },
  (ev, job) => ev(job.candidate, job.split),
);
