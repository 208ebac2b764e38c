/**
 * Distributed evaluation against the local pool on the micro world, in one run (a private
 * redis-server, real `selfdev worker` processes):
 *
 * - overhead: the same batch of cheap jobs (one program, distinct ctx seeds, the dev subset) one at
 *   a time on a started local pool of 1 worker and on the queue with 1 worker; the per-job
 *   difference is what the queue adds (add, delivery, lock, result, event).
 * - throughput: a batch of costlier jobs (full dev, longer answers) on the queue with 1 and with 2
 *   workers, all in flight; the ratio of their times.
 *
 * Every job has its own id (the seeds differ between phases), so nothing is read back from an
 * earlier phase. Prints one JSON line.
 *
 *   npm run bench:distributed -- [--jobs 24] [--heavy 12]
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { makeTempDir } from '../src/io/testing.ts';
import { resolveConfig, type LoopConfig } from '../src/loop/config.ts';
import { WorkerPool, type EvalJob, type JobRunner } from '../src/loop/pool.ts';
import { QueueRunner } from '../src/distributed/queue-runner.ts';
import { microRoot, startRedis, startWorker, stopWorkers, type WorkerHandle } from '../src/distributed/testing.ts';

const { values } = parseArgs({ options: { jobs: { type: 'string', default: '24' }, heavy: { type: 'string', default: '12' } } });
const nJobs = Number(values.jobs);
const nHeavy = Number(values.heavy);
for (const [k, v] of Object.entries({ jobs: nJobs, heavy: nHeavy })) if (!Number.isInteger(v) || v < 1) throw new Error(`--${k} must be a positive integer`);

const CODE = 'function merge(taskVectors, ctx) {\n  return taskVectors[0].mul(0.5).add(taskVectors[1].mul(0.5));\n}';
const jobs = (n: number, seed0: number, set: 'subset' | 'dev'): EvalJob[] => Array.from({ length: n }, (_, i) => ({ code: CODE, seed: seed0 + i, set }));

async function timeBatch(runner: JobRunner, batch: EvalJob[]): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  const lane = async () => {
    while (next < batch.length) {
      const r = await runner.run(batch[next++]!);
      if (!r.ok) throw new Error(`bench job failed: ${r.verdict}: ${r.message}`);
    }
  };
  await Promise.all(Array.from({ length: runner.concurrency }, lane));
  return performance.now() - t0;
}

const tmp = makeTempDir('selfdev-distributed-bench-');
const workers: WorkerHandle[] = [];
try {
  const root = join(tmp.path, 'root');
  const world = await microRoot(root, { nExperts: 2, nOod: 0, nDev: 8, nTest: 2, trainSteps: 60 });
  const redis = await startRedis(join(tmp.path, 'redis'));
  const light: LoopConfig = resolveConfig({ world, tensorFilter: 'all', eval: { devSubset: 1, maxTokens: 4, batchSize: 8 } });
  const heavy: LoopConfig = resolveConfig({ world, tensorFilter: 'all', eval: { devSubset: 1, maxTokens: 48, batchSize: 8 } });
  const queue = (cfg: LoopConfig, db: number, maxInFlight: number) => QueueRunner.open({ cfg, root, url: redis.url.replace(/\/0$/, `/${db}`), maxInFlight, lockDurationMs: 30_000, attempts: 2, pollMs: 1000 });

  // overhead: local pool of 1 vs queue with 1 worker, one job at a time, both warmed by one job
  const pool = new WorkerPool(1, light, root);
  await timeBatch(pool, jobs(1, 1_000_000, 'subset'));
  const localMs = await timeBatch(pool, jobs(nJobs, 0, 'subset'));
  await pool.close();
  const q1 = await queue(light, 1, 1);
  workers.push(startWorker(redis.url.replace(/\/0$/, '/1'), root));
  await timeBatch(q1, jobs(1, 1_000_000, 'subset'));
  const queueMs = await timeBatch(q1, jobs(nJobs, 0, 'subset'));
  await q1.close();
  await stopWorkers(workers.splice(0));

  // throughput: costly jobs on 1 and on 2 queue workers, all in flight
  const through = async (nWorkers: number, db: number) => {
    const url = redis.url.replace(/\/0$/, `/${db}`);
    const r = await queue(heavy, db, 2 * nWorkers);
    for (let i = 0; i < nWorkers; i++) workers.push(startWorker(url, root));
    await timeBatch(r, jobs(nWorkers, 2_000_000, 'dev')); // warm every worker
    const ms = await timeBatch(r, jobs(nHeavy, 10_000 * db, 'dev'));
    await r.close();
    await stopWorkers(workers.splice(0));
    return ms;
  };
  const one = await through(1, 2);
  const two = await through(2, 3);
  await redis.stop();
  process.stdout.write(JSON.stringify({
    overhead: { jobs: nJobs, localPoolMsPerJob: +(localMs / nJobs).toFixed(1), queueMsPerJob: +(queueMs / nJobs).toFixed(1), overheadMsPerJob: +((queueMs - localMs) / nJobs).toFixed(1) },
    throughput: { jobs: nHeavy, oneWorkerMs: Math.round(one), twoWorkersMs: Math.round(two), msPerJob1: +(one / nHeavy).toFixed(0), ratio2over1: +(one / two).toFixed(2) },
  }) + '\n');
} finally {
  for (const w of workers) w.child.kill('SIGKILL');
  tmp.cleanup();
}
