/**
 * `selfdev worker`: takes evaluation jobs from the queue and runs each in a child process (the
 * loop's evaluation workers, src/loop/worker.ts on the ForkPool), so this process's event loop only
 * holds the job locks and renews them however long a merge takes.
 *
 * Before a job runs, its message is checked in full (message.ts: shape, types, its id) and the
 * fingerprints of the files it names are compared with the files under --root: a malformed message
 * or a mismatch fails that job at once, not retried, with the reason (the program never runs).
 * SIGTERM (scancel, pod eviction) or SIGINT: take no new job, finish the running ones, exit 0; a
 * second signal exits at once (the jobs' locks lapse and the queue redelivers them elsewhere).
 */
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { resolveConfig } from '../loop/config.ts';
import { WorkerPool, type JobResult } from '../loop/pool.ts';
import { FingerprintCache, MalformedJob, canonicalJson, fingerprintMismatch, parseJobMessage, type JobMessage } from './message.ts';
import { PREFIX, QUEUE_NAME, REFUSED, connect, readSettings, urlWarning } from './queue.ts';
import type { QueueReturn } from './queue-runner.ts';

export interface QueueWorkerOptions {
  url: string;
  /** Where the world paths of a job are resolved. */
  root: string;
  /** Jobs at once (one child process each). */
  concurrency: number;
  /** Exit (0) after this many seconds without a job (also while waiting for a controller's settings). */
  exitWhenIdleSec?: number;
  /** One line per event (default stdout). */
  log?: (line: string) => void;
  /** Resolves when the worker should stop gracefully (the CLI wires SIGTERM/SIGINT). */
  stop?: Promise<void>;
}

/** At most this many evaluation specs (worlds) keep their child processes loaded at once. */
const MAX_POOLS = 2;

/** Runs a worker until it is stopped or idle; returns the exit code. */
export async function runQueueWorker(o: QueueWorkerOptions): Promise<number> {
  const name = `${hostname()}:${process.pid}`;
  const log = o.log ?? ((l: string) => process.stdout.write(l + '\n'));
  const root = resolve(o.root);
  const warning = urlWarning(o.url);
  if (warning) log(warning);
  // the evaluation children ignore SIGTERM/SIGINT (a scheduler signals the whole process group): this
  // process decides, and its children exit when it does
  process.env.SELFDEV_WORKER_CHILD = '1';
  const conn = connect(o.url, `selfdev-worker-${name}`);
  let stopping = false;
  let lastBusy = Date.now();
  let active = 0;
  const idleOver = () => o.exitWhenIdleSec !== undefined && active === 0 && Date.now() - lastBusy > o.exitWhenIdleSec * 1000;
  const stop = o.stop?.then(() => {
    stopping = true;
  });

  // the controller publishes the lock settings; wait for the first one
  let settings = await readSettings(conn);
  if (!settings) log(`worker ${name}: waiting for a controller on ${new URL(o.url).host}`);
  while (!settings) {
    if (stopping || idleOver()) {
      conn.disconnect();
      log(`worker ${name}: ${stopping ? 'stopped' : 'idle'} before any controller came; exiting`);
      return 0;
    }
    await new Promise((r) => setTimeout(r, 250));
    settings = await readSettings(conn);
  }

  const fp = new FingerprintCache();
  const pools = new Map<string, WorkerPool>();
  const poolFor = async (m: JobMessage): Promise<WorkerPool> => {
    const key = canonicalJson(m.spec);
    const have = pools.get(key);
    if (have) {
      pools.delete(key);
      pools.set(key, have); // most recently used last
      return have;
    }
    let cfg;
    try {
      cfg = resolveConfig({ name: 'queue-job', tensorFilter: m.spec.tensorFilter, eval: m.spec.eval, world: m.spec.world, workers: 1 }, 'job message');
    } catch (e) {
      throw new MalformedJob((e as Error).message);
    }
    const pool = new WorkerPool(o.concurrency, cfg, root);
    pools.set(key, pool);
    for (const [k, p] of pools) {
      if (pools.size <= MAX_POOLS) break;
      if (k !== key) {
        pools.delete(k);
        await p.close();
      }
    }
    return pool;
  };

  const processor = async (job: Job): Promise<QueueReturn> => {
    active++;
    const t0 = performance.now();
    log(`worker ${name}: job ${job.id} start (attempt ${job.attemptsMade + 1})`);
    try {
      let m: JobMessage;
      let pool: WorkerPool;
      try {
        m = parseJobMessage(job.data, job.id);
        const mismatch = fingerprintMismatch(m, root, fp);
        if (mismatch) throw new UnrecoverableError(`${REFUSED} ${name}: fingerprint mismatch: ${mismatch}`);
        pool = await poolFor(m);
      } catch (e) {
        if (e instanceof MalformedJob) throw new UnrecoverableError(`${REFUSED} ${name}: malformed job message: ${e.message}`);
        throw e;
      }
      let result: JobResult;
      for (let tries = 1; ; tries++) {
        try {
          result = await pool.run(m.job);
          break;
        } catch (e) {
          const msg = (e as Error).message;
          // the evaluation children could not load (the pool refuses every job from then on): the next job starts a new pool
          if (/evaluation worker (could not start|did not load|exited while loading)/.test(msg)) {
            const key = canonicalJson(m.spec);
            if (pools.get(key) === pool) pools.delete(key);
            await pool.close();
          }
          // a scheduler's SIGTERM to every process of the job reached a child in the first moments of its
          // start, before it could ignore it (hold-signals.mjs): not the job's fault, so once more on a fresh child
          if (tries === 1 && /exited while loading \(exit code null, signal SIG(TERM|INT)\)/.test(msg)) {
            log(`worker ${name}: job ${job.id}: the evaluation child was stopped by ${/SIG(TERM|INT)/.exec(msg)![0]} while starting; starting another`);
            pool = await poolFor(m);
            continue;
          }
          throw e;
        }
      }
      log(`worker ${name}: job ${job.id} done ${result.ok ? 'ok' : result.verdict} ${(performance.now() - t0).toFixed(0)} ms`);
      return { result, worker: name };
    } catch (e) {
      log(`worker ${name}: job ${job.id} failed: ${(e as Error).message}`);
      throw e;
    } finally {
      active--;
      lastBusy = Date.now();
    }
  };

  const worker = new Worker(QUEUE_NAME, processor, {
    connection: conn,
    prefix: PREFIX,
    concurrency: o.concurrency,
    lockDuration: settings.lockDurationMs,
    stalledInterval: Math.max(500, Math.floor(settings.lockDurationMs / 2)),
    maxStalledCount: settings.maxStalledCount,
    name,
    autorun: true,
  });
  worker.on('error', (e) => log(`worker ${name}: queue error: ${e.message}`));
  log(`worker ${name}: taking jobs from ${new URL(o.url).host} (concurrency ${o.concurrency}, lock ${settings.lockDurationMs} ms, root ${root})`);

  await new Promise<void>((done) => {
    const t = setInterval(() => {
      if (stopping || idleOver()) {
        clearInterval(t);
        done();
      }
    }, 200);
    void stop?.then(() => {
      clearInterval(t);
      done();
    });
  });
  log(`worker ${name}: ${stopping ? 'stopping: no new jobs; finishing the running ones' : `idle for ${o.exitWhenIdleSec} s; exiting`}`);
  await worker.close(); // waits for the running jobs
  for (const p of pools.values()) await p.close();
  conn.disconnect();
  log(`worker ${name}: exited`);
  return 0;
}
