/**
 * Distributed evaluation against the local pool on the micro world, in one run (a private
 * redis-server, real `selfdev worker` processes):
 *
 * - overhead: the same batch of cheap jobs (one program, distinct ctx seeds, the dev subset) one at
 *   a time on a started local pool of 1 worker and on the queue with 1 worker, interleaved
 *   (`--repeats` rounds; medians), and directly: each queue job's round trip at the controller
 *   minus the time the worker reports for it (start to done) — what the queue adds (add, delivery,
 *   lock, result, event), independent of how busy the cores are.
 * - throughput: a batch of costlier jobs (full dev, longer answers) on the queue with 1 and with 2
 *   workers, all in flight; the ratio of their times.
 *
 * Every job has its own id (the seeds differ between phases), so nothing is read back from an
 * earlier phase. Prints one JSON line.
 *
 *   npm run bench:distributed -- [--jobs 12] [--heavy 12] [--repeats 3]
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { makeTempDir } from '../src/io/testing.ts';
import { resolveConfig, type LoopConfig } from '../src/loop/config.ts';
import { WorkerPool, type EvalJob, type JobRunner } from '../src/loop/pool.ts';
import { QueueRunner } from '../src/distributed/queue-runner.ts';
import { microRoot, startRedis, startWorker, stopWorkers, type WorkerHandle } from '../src/distributed/testing.ts';

const { values } = parseArgs({ options: { jobs: { type: 'string', default: '12' }, heavy: { type: 'string', default: '12' }, repeats: { type: 'string', default: '3' } } });
const nJobs = Number(values.jobs);
const nHeavy = Number(values.heavy);
const repeats = Number(values.repeats);
for (const [k, v] of Object.entries({ jobs: nJobs, heavy: nHeavy, repeats })) if (!Number.isInteger(v) || v < 1) throw new Error(`--${k} must be a positive integer`);

const CODE = 'function merge(taskVectors, ctx) {\n  return taskVectors[0].mul(0.5).add(taskVectors[1].mul(0.5));\n}';
const jobs = (n: number, seed0: number, set: 'subset' | 'dev'): EvalJob[] => Array.from({ length: n }, (_, i) => ({ code: CODE, seed: seed0 + i, set }));

/** Runs the batch with `runner.concurrency` in flight; returns the wall time (and each job's round trip in `trips`). */
async function timeBatch(runner: JobRunner, batch: EvalJob[], trips: number[] = []): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  const lane = async () => {
    while (next < batch.length) {
      const i = next++;
      const t = performance.now();
      const r = await runner.run(batch[i]!);
      trips[i] = performance.now() - t;
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

  // overhead: local pool of 1 vs queue with 1 worker, one job at a time, both warmed, interleaved
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const pool = new WorkerPool(1, light, root);
  await timeBatch(pool, jobs(1, 1_000_000, 'subset'));
  const q1 = await queue(light, 1, 1);
  const w1 = startWorker(redis.url.replace(/\/0$/, '/1'), root);
  workers.push(w1);
  await timeBatch(q1, jobs(1, 1_000_000, 'subset'));
  const localMs: number[] = [];
  const queueMs: number[] = [];
  const direct: number[] = [];
  for (let r = 0; r < repeats; r++) {
    localMs.push(await timeBatch(pool, jobs(nJobs, 100 * r, 'subset')) / nJobs);
    const batch = jobs(nJobs, 100 * r, 'subset');
    const trips: number[] = [];
    queueMs.push(await timeBatch(q1, batch, trips) / nJobs);
    batch.forEach((j, i) => {
      const id = q1.idOf(j);
      const line = w1.lines.find((l) => l.includes(`job ${id} done`));
      const m = line && / done \S+ (\d+) ms/.exec(line);
      if (!m) throw new Error(`no worker time for job ${id}`);
      direct.push(trips[i]! - Number(m[1]));
    });
  }
  await pool.close();
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
    overhead: {
      jobs: nJobs, repeats,
      localPoolMsPerJob: +median(localMs).toFixed(1), queueMsPerJob: +median(queueMs).toFixed(1), differenceMsPerJob: +(median(queueMs) - median(localMs)).toFixed(1),
      directMsPerJob: { median: +median(direct).toFixed(1), max: +Math.max(...direct).toFixed(1) },
    },
    throughput: { jobs: nHeavy, oneWorkerMs: Math.round(one), twoWorkersMs: Math.round(two), msPerJob1: +(one / nHeavy).toFixed(0), ratio2over1: +(one / two).toFixed(2) },
  }) + '\n');
} finally {
  for (const w of workers) w.child.kill('SIGKILL');
  tmp.cleanup();
}
