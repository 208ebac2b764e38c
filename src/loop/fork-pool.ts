/**
 * The one process pool: N forked worker processes (TypeScript modules started with tsx's loader)
 * draining a FIFO queue of jobs. The loop's evaluation workers (pool.ts / worker.ts) and the tiny
 * world's baselines (src/world/baselines.ts / baselines-worker.ts) run on it.
 *
 * Protocol: the parent sends `init` once (the worker loads what it needs, then answers `ready` or
 * `init-error`), then one `job` at a time per worker (answered by `result` or `job-error`). A worker
 * that fails to load makes every job fail with its error (no respawn loop); a worker that dies while
 * holding a job is replaced and the job retried until `maxAttempts`, then `onGiveUp` decides its
 * outcome. `serveJobs` is the worker side.
 */
import { fork, type ChildProcess } from 'node:child_process';

/** tsx's loader as an absolute URL, so a worker starts whatever the current directory is. */
const TSX_LOADER = import.meta.resolve('tsx');
/** Loaded before the TypeScript loader: under `selfdev worker`, ignore SIGTERM/SIGINT from the start (hold-signals.mjs). */
const HOLD_SIGNALS = import.meta.resolve('./hold-signals.mjs');
const BOOT_TIMEOUT_MS = 120_000;

/** Parent → worker. */
export type ToWorker<I, J> = { type: 'init'; init: I } | { type: 'job'; id: number; job: J };
/** Worker → parent. */
export type FromWorker<R> =
  | { type: 'ready' }
  | { type: 'init-error'; message: string }
  | { type: 'result'; id: number; result: R }
  | { type: 'job-error'; id: number; message: string };

/** How a worker that held a job ended. */
export interface WorkerDeath {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The last 2000 characters the worker wrote to stderr. */
  stderr: string;
}

export interface ForkPoolOptions<I, J, R> {
  /** The worker module (absolute path); it calls `serveJobs`. */
  worker: string;
  /** Sent to every worker as its `init` message (structured clone). */
  init: I;
  /** What a worker is called in errors ('evaluation worker'). */
  name: string;
  /** Attempts of a job whose worker dies (1: no retry). */
  maxAttempts: number;
  /** The outcome of a job whose worker died `maxAttempts` times: a result, or an Error to reject with. */
  onGiveUp: (job: J, death: WorkerDeath) => R | Error;
  /** Called when a job is sent to a worker (tests use it to kill the worker mid-job). */
  onDispatch?: (pid: number, job: J, attempt: number) => void;
}

interface Task<J, R> {
  id: number;
  job: J;
  attempts: number;
  resolve: (r: R) => void;
  reject: (e: Error) => void;
}

interface Slot<J, R> {
  child: ChildProcess;
  ready: boolean;
  task: Task<J, R> | null;
  stderrTail: string;
}

/** N worker processes draining a FIFO queue of jobs, started by `start()` or the first job; `close()` kills them. */
export class ForkPool<I, J, R> {
  private readonly slots = new Set<Slot<J, R>>();
  private readonly queue: Task<J, R>[] = [];
  private nextId = 1;
  private started = false;
  private closed = false;
  private fatal: Error | null = null;
  /** Worker processes started (n + replacements). */
  spawns = 0;
  /** Worker deaths while holding a job. */
  crashes = 0;

  constructor(
    readonly concurrency: number,
    private readonly o: ForkPoolOptions<I, J, R>,
  ) {
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new Error(`worker pool: size must be a positive integer, got ${concurrency}`);
  }

  /** Forks the workers now (they load in the background); idempotent. */
  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    for (let i = 0; i < this.concurrency; i++) this.spawn();
  }

  /** Process ids of the live workers. */
  pids(): number[] {
    return [...this.slots].map((s) => s.child.pid!).filter((x) => x !== undefined);
  }

  run(job: J): Promise<R> {
    if (this.closed) return Promise.reject(new Error('worker pool is closed'));
    if (this.fatal) return Promise.reject(this.fatal);
    this.start();
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ id: this.nextId++, job, attempts: 0, resolve, reject });
      this.pump();
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = new Error('worker pool closed');
    for (const t of this.queue.splice(0)) t.reject(err);
    const exits: Promise<unknown>[] = [];
    for (const s of this.slots) {
      if (s.task) s.task.reject(err);
      s.task = null;
      if (s.child.exitCode === null && s.child.signalCode === null) {
        exits.push(new Promise((r) => s.child.once('exit', r)));
        s.child.kill('SIGKILL');
      }
    }
    this.slots.clear();
    await Promise.all(exits);
  }

  private spawn(): void {
    this.spawns++;
    const name = this.o.name;
    const child = fork(this.o.worker, [], { execArgv: ['--import', HOLD_SIGNALS, '--import', TSX_LOADER], serialization: 'advanced', stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    const slot: Slot<J, R> = { child, ready: false, task: null, stderrTail: '' };
    this.slots.add(slot);
    child.stderr?.on('data', (d: Buffer) => {
      slot.stderrTail = (slot.stderrTail + d.toString()).slice(-2000);
    });
    const boot = setTimeout(() => {
      this.fail(new Error(`${name} did not load within ${BOOT_TIMEOUT_MS} ms: ${slot.stderrTail}`));
    }, BOOT_TIMEOUT_MS);
    child.on('message', (m: FromWorker<R>) => {
      if (m.type === 'ready') {
        clearTimeout(boot);
        slot.ready = true;
        this.pump();
      } else if (m.type === 'init-error') {
        clearTimeout(boot);
        this.fail(new Error(`${name} could not start: ${m.message}`));
      } else {
        const t = slot.task;
        if (!t || t.id !== m.id) return;
        slot.task = null;
        if (m.type === 'result') t.resolve(m.result);
        else t.reject(new Error(m.message));
        this.pump();
      }
    });
    child.on('error', () => undefined); // 'exit' follows and does the bookkeeping
    child.on('exit', (code, signal) => {
      clearTimeout(boot);
      if (!this.slots.delete(slot) || this.closed) return;
      if (!slot.ready) {
        this.fail(new Error(`${name} exited while loading (exit code ${code}, signal ${signal}): ${slot.stderrTail}`));
        return;
      }
      const t = slot.task;
      slot.task = null;
      if (t) {
        this.crashes++;
        if (t.attempts < this.o.maxAttempts) this.queue.unshift(t);
        else {
          const out = this.o.onGiveUp(t.job, { code, signal, stderr: slot.stderrTail });
          if (out instanceof Error) t.reject(out);
          else t.resolve(out);
        }
      }
      this.spawn();
      this.pump();
    });
    child.send({ type: 'init', init: this.o.init } satisfies ToWorker<I, J>);
  }

  private fail(e: Error): void {
    if (this.fatal || this.closed) return;
    this.fatal = e;
    for (const t of this.queue.splice(0)) t.reject(e);
    for (const s of this.slots) {
      s.task?.reject(e);
      s.task = null;
      s.child.kill('SIGKILL');
    }
    this.slots.clear();
  }

  private pump(): void {
    if (this.closed || this.fatal) return;
    for (const s of this.slots) {
      if (!s.ready || s.task || this.queue.length === 0) continue;
      const t = this.queue.shift()!;
      t.attempts++;
      s.task = t;
      s.child.send({ type: 'job', id: t.id, job: t.job } satisfies ToWorker<I, J>);
      this.o.onDispatch?.(s.child.pid!, t.job, t.attempts);
    }
  }
}

/**
 * The worker side of a ForkPool (call it at the top level of the worker module): on `init`, `open`
 * loads the worker's state once; each `job` then runs `run(state, job)`, one at a time, in arrival
 * order. Exits when the parent disconnects (or closes the pool). `name` prefixes job errors.
 */
export function serveJobs<I, C, J, R>(name: string, open: (init: I) => Promise<C>, run: (state: C, job: J) => Promise<R>): void {
  if (!process.send) throw new Error(`${name} must be started with child_process.fork`);
  const reply = (m: FromWorker<R>) => process.send!(m);
  let state: Promise<C> | null = null;
  let chain: Promise<unknown> = Promise.resolve();
  process.on('message', (m: ToWorker<I, J>) => {
    if (m.type === 'init') {
      if (state) return;
      state = open(m.init);
      state.then(
        () => reply({ type: 'ready' }),
        (e: unknown) => reply({ type: 'init-error', message: e instanceof Error ? e.message : String(e) }),
      );
      return;
    }
    if (!state) return reply({ type: 'job-error', id: m.id, message: `${name}: job before init` });
    const s = state;
    chain = chain.then(async () => {
      try {
        reply({ type: 'result', id: m.id, result: await run(await s, m.job) });
      } catch (e) {
        reply({ type: 'job-error', id: m.id, message: `${name}: ${e instanceof Error ? e.message : String(e)}` });
      }
    });
  });
  // the parent is gone (or closed the pool): stop; children of the worker (a sandbox) exit on their own disconnect
  process.on('disconnect', () => process.exit(0));
}
