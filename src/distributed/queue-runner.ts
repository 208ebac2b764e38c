/**
 * The controller's side of distributed evaluation: a `JobRunner` (src/loop/pool.ts) whose jobs go to
 * a BullMQ queue on Redis and are run by `selfdev worker` processes (worker.ts) wherever they are.
 * The rest of the loop is unchanged: it calls `run(job)` and writes each result to its store once.
 *
 * - Each job's id is a hash of its message (message.ts), so adding it again (after a controller
 *   restart, or after the broker lost its data) is harmless: a job that already exists is not added
 *   twice, and one that finished while the controller was down is read back, not rerun.
 * - Results arrive through the queue's event stream; a poll (every `pollMs`) reads the state of
 *   every awaited job as well, so a missed event (broker restart) only delays a result, and a job
 *   that vanished (broker data wiped) is added again.
 * - A job whose workers died or lost the lock more often than `attempts` allows gets the verdict
 *   `crash` (as with local workers); a worker's refusal (fingerprint mismatch, malformed message)
 *   or another failure stops the run with the reason. On resume, such a failed job is added afresh.
 */
import { Queue, QueueEvents, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { LoopConfig } from '../loop/config.ts';
import type { EvalJob, JobResult, JobRunner } from '../loop/pool.ts';
import { FingerprintCache, evalSpecOf, jobIdOf, makeMessage, type EvalSpec, type JobMessage } from './message.ts';
import { PREFIX, QUEUE_NAME, STALLED_REASON, connect, redactUrl, urlWarning, writeSettings } from './queue.ts';

export interface QueueRunnerOptions {
  cfg: LoopConfig;
  /** The run's root: world paths are sent relative to it. */
  root: string;
  url: string;
  maxInFlight: number;
  lockDurationMs: number;
  attempts: number;
  /** The run's namespace, part of every job id (experiments: "ARM/rK", so two runs never share a job); none for a single run. */
  namespace?: string;
  /** How often the state of every awaited job is read (default 1000 ms). */
  pollMs?: number;
  /** Where warnings go (default stderr). */
  warn?: (line: string) => void;
  /** Called every `statusMs` (default 5000 ms) with the queue's jobs by state and its live workers. */
  onStatus?: (s: { waiting: number; active: number; completed: number; failed: number; workers: number }) => void;
  statusMs?: number;
}

/** What a worker returns for a job. */
export interface QueueReturn {
  result: JobResult;
  /** hostname:pid of the worker that scored it. */
  worker: string;
}

interface Waiter {
  msg: JobMessage;
  resolve: (r: JobResult) => void;
  reject: (e: Error) => void;
}

/** Seven days: finished jobs stay readable this long (a resumed controller reads them back). */
const KEEP_SECONDS = 7 * 86_400;

export class QueueRunner implements JobRunner {
  readonly concurrency: number;
  /** Counts for tests and the progress line: add requests for new jobs (idempotent: a job added by two controllers at once exists once), jobs found already in the queue, added again after they vanished, failed jobs added afresh, results read. */
  readonly stats = { added: 0, existing: 0, readded: 0, retried: 0, completed: 0 };
  /** job id → the worker that scored it (hostname:pid). */
  readonly scoredBy = new Map<string, string>();
  private readonly waiters = new Map<string, Waiter[]>();
  private readonly checking = new Set<string>();
  /** Failed jobs this controller already added afresh (a second failure is final). */
  private readonly refreshed = new Set<string>();
  private readonly fp = new FingerprintCache();
  private readonly spec: EvalSpec;
  private timer: NodeJS.Timeout | null = null;
  private statusTimer: NodeJS.Timeout | null = null;
  private closed = false;

  private constructor(
    private readonly o: QueueRunnerOptions,
    private readonly conns: Redis[],
    private readonly queue: Queue,
    private readonly events: QueueEvents,
  ) {
    this.concurrency = o.maxInFlight;
    this.spec = evalSpecOf(o.cfg, o.root);
  }

  /** Connects, publishes the lock settings for the workers, and starts following the queue's events. */
  static async open(o: QueueRunnerOptions): Promise<QueueRunner> {
    const w = urlWarning(o.url);
    if (w) (o.warn ?? ((l) => process.stderr.write(l + '\n')))(w);
    const conn = connect(o.url, 'selfdev-controller');
    const evConn = connect(o.url, 'selfdev-controller-events');
    const queue = new Queue(QUEUE_NAME, { connection: conn, prefix: PREFIX });
    const events = new QueueEvents(QUEUE_NAME, { connection: evConn, prefix: PREFIX, autorun: true });
    const r = new QueueRunner(o, [conn, evConn], queue, events);
    try {
      await Promise.race([
        (async () => {
          await conn.ping();
          await writeSettings(conn, { lockDurationMs: o.lockDurationMs, maxStalledCount: o.attempts - 1 });
          await events.waitUntilReady();
        })(),
        new Promise((_, reject) => setTimeout(() => reject(new Error(`cannot reach the queue at ${redactUrl(o.url)} within 10 s (is redis-server running there?)`)), 10_000).unref()),
      ]);
    } catch (e) {
      await r.close();
      throw e;
    }
    events.on('completed', ({ jobId }) => void r.check(jobId));
    events.on('failed', ({ jobId }) => void r.check(jobId));
    // connection errors (a broker restart) are retried by ioredis; the poll picks up what was missed
    events.on('error', () => undefined);
    queue.on('error', () => undefined);
    r.timer = setInterval(() => {
      for (const id of r.waiters.keys()) void r.check(id);
    }, o.pollMs ?? 1000);
    r.timer.unref();
    if (o.onStatus) {
      const onStatus = o.onStatus;
      let busy = false;
      r.statusTimer = setInterval(() => {
        if (busy || r.closed) return;
        busy = true;
        void (async () => {
          const c = await queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'completed', 'failed');
          const workers = (await queue.getWorkers()).length;
          if (!r.closed) onStatus({ waiting: (c.waiting ?? 0) + (c.prioritized ?? 0) + (c.delayed ?? 0), active: c.active ?? 0, completed: c.completed ?? 0, failed: c.failed ?? 0, workers });
        })()
          .catch(() => undefined)
          .finally(() => (busy = false));
      }, o.statusMs ?? 5000);
      r.statusTimer.unref();
    }
    return r;
  }

  /** The job id this runner gives `job` (tests). */
  idOf(job: EvalJob): string {
    return jobIdOf(makeMessage(this.spec, job, this.o.root, this.fp, this.o.namespace));
  }

  async run(job: EvalJob): Promise<JobResult> {
    if (this.closed) throw new Error('queue runner is closed');
    const msg = makeMessage(this.spec, job, this.o.root, this.fp, this.o.namespace);
    const id = jobIdOf(msg);
    const awaited = this.waiters.get(id);
    const p = new Promise<JobResult>((resolve, reject) => {
      if (awaited) awaited.push({ msg, resolve, reject });
      else this.waiters.set(id, [{ msg, resolve, reject }]);
    });
    if (!awaited) {
      // the same job asked for again while it is awaited shares the wait (one add)
      try {
        await this.ensure(id, msg);
      } catch (e) {
        this.settle(id, () => {
          throw new Error(`queue: adding job ${id}: ${(e as Error).message}`);
        });
      }
      void this.check(id);
    }
    return p;
  }

  /** Adds the job unless it is already in the queue; a failed job (other than a crash) is added afresh, once per controller. */
  private async ensure(id: string, msg: JobMessage): Promise<void> {
    const state = await this.queue.getJobState(id);
    if (state === 'unknown') {
      await this.add(id, msg);
      this.stats.added++;
    } else if (state === 'failed') {
      const job = await this.queue.getJob(id);
      if (job && !STALLED_REASON.test(job.failedReason ?? '') && !this.refreshed.has(id)) {
        this.refreshed.add(id);
        await job.remove();
        await this.add(id, msg);
        this.stats.retried++;
      } else this.stats.existing++;
    } else this.stats.existing++;
  }

  private add(id: string, msg: JobMessage): Promise<Job> {
    return this.queue.add('eval', msg, { jobId: id, attempts: this.o.attempts, backoff: { type: 'fixed', delay: 1000 }, removeOnComplete: { age: KEEP_SECONDS }, removeOnFail: { age: KEEP_SECONDS } });
  }

  /** Reads the job's state and settles its waiters when it finished; adds it again when it vanished. */
  private async check(id: string): Promise<void> {
    if (this.closed || !this.waiters.has(id) || this.checking.has(id)) return;
    this.checking.add(id);
    try {
      // the state first: once it is final, the job's result (or reason) is there to read
      const state = await this.queue.getJobState(id);
      if (state === 'unknown') {
        const w = this.waiters.get(id);
        if (w) {
          await this.add(id, w[0]!.msg);
          this.stats.readded++;
        }
        return;
      }
      if (state !== 'completed' && state !== 'failed') return;
      const job = await this.queue.getJob(id);
      if (!job) return; // removed in between (age limit): the next check adds it again
      if (state === 'completed') this.settle(id, () => this.resultOf(id, job));
      else {
        const reason = job.failedReason ?? 'no reason given';
        this.settle(id, () => {
          if (STALLED_REASON.test(reason)) return { ok: false, verdict: 'crash', message: `the queue worker died or lost its lock on every one of ${this.o.attempts} attempt(s) while evaluating this program (${reason})`, sandboxMs: 0 };
          throw new Error(`evaluation job ${id} failed on the queue: ${reason}`);
        });
      }
    } catch (e) {
      if (!this.closed) this.settle(id, () => {
        throw new Error(`queue: reading job ${id}: ${(e as Error).message}`);
      });
    } finally {
      this.checking.delete(id);
    }
  }

  private resultOf(id: string, job: Job): JobResult {
    const rv = job.returnvalue as unknown;
    const r = rv as QueueReturn | null;
    if (!r || typeof r !== 'object' || !r.result || typeof r.result !== 'object' || typeof r.result.ok !== 'boolean') throw new Error(`evaluation job ${id}: the worker returned no result (${JSON.stringify(rv)?.slice(0, 200)})`);
    this.scoredBy.set(id, String(r.worker));
    this.stats.completed++;
    return { ...r.result, worker: String(r.worker) };
  }

  private settle(id: string, outcome: () => JobResult): void {
    const list = this.waiters.get(id);
    if (!list) return;
    this.waiters.delete(id);
    let r: JobResult;
    try {
      r = outcome();
    } catch (e) {
      for (const w of list) w.reject(e as Error);
      return;
    }
    for (const w of list) w.resolve(r);
  }

  /** Live workers on the queue (BullMQ's client list). */
  async workers(): Promise<number> {
    return (await this.queue.getWorkers()).length;
  }

  /** Stops waiting (jobs in the queue stay there: workers finish them and a resumed controller reads them back). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    if (this.statusTimer) clearInterval(this.statusTimer);
    const err = new Error('queue runner closed');
    for (const list of this.waiters.values()) for (const w of list) w.reject(err);
    this.waiters.clear();
    await Promise.allSettled([this.events.close(), this.queue.close()]);
    for (const c of this.conns) c.disconnect(); // BullMQ leaves connections it was given open
  }
}
