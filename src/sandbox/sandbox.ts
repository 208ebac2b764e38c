/**
 * Parent side of the merge-algorithm sandbox: one killable child process (runner.ts, forked with
 * tsx) reused across candidates, restarted after a crash or a kill. Every run gets a fresh
 * isolate in the child. The parent kills the child when it used more than `wallMs` of CPU time on
 * one request (read from /proc; a hang in host code), plus timeoutMs + 1 s for each retry the
 * child announces (a run starved of CPU by machine load, see cpu-time.ts), or at a far wall-clock
 * backstop. Without /proc (not Linux) it falls back to the wall clock: wallMs, plus each retry's
 * wall timeout.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { processCpuMs } from './cpu-time.ts';
import { DEFAULT_LIMITS, type RetryNotice, type TensorRef, type MergeContext, type ModelStats, type RunOutcome, type RunRequest, type RunResponse, type SandboxLimits } from './types.ts';

/** tsx's loader as an absolute URL, so the child starts whatever the current directory is. */
const TSX_LOADER = import.meta.resolve('tsx');

const RUNNER = fileURLToPath(new URL('./runner.ts', import.meta.url));
const BOOT_TIMEOUT_MS = 60_000;
/** How often the parent reads the child's CPU time while a request runs (ms). */
const POLL_MS = 100;
/** Kill budget added per announced retry on top of the run's timeoutMs (ms): fresh isolate, compile. */
const RETRY_SLACK_MS = 1000;
/** Added to the parent's wall-clock backstop (ms): the host work of a starved child is slow too. */
const BACKSTOP_SLACK_MS = 60_000;

export interface SandboxOptions {
  /** default limits for every run (merged over DEFAULT_LIMITS) */
  limits?: Partial<SandboxLimits>;
  /** enables torch.__hang / torch.__crash (tests of the kill and crash recovery only) */
  testHooks?: boolean;
}

let sandboxes = 0;

type Pending = {
  id: number;
  resolve: (r: RunOutcome) => void;
  timer: NodeJS.Timeout | null;
  limits: SandboxLimits;
  /** 'cpu': the child's CPU time from /proc counts against `budgetMs`; 'wall': the wall clock does */
  mode: 'cpu' | 'wall';
  budgetMs: number;
  /** child CPU (ms) and wall clock at the send */
  cpu0: number;
  t0: number;
  retries: number;
};

export class Sandbox {
  readonly limits: SandboxLimits;
  private readonly testHooks: boolean;
  private child: ChildProcess | null = null;
  private ready: Promise<ChildProcess> | null = null;
  private pending: Pending | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private nextId = 1;
  private closed = false;
  private stderrTail = '';
  /** distinguishes the scratch files of several sandboxes in one process */
  private readonly id = ++sandboxes;
  private readonly scratchPath = join(tmpdir(), `selfdev-merge-${process.pid}-${this.id}.bin`);
  /** number of child processes started (1 + restarts) */
  spawns = 0;
  /** number of kills of a hung child (CPU-time limit or wall-clock backstop) */
  kills = 0;
  /** number of runs re-started by the child because machine load starved them of CPU */
  retries = 0;

  constructor(opts: SandboxOptions = {}) {
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.testHooks = opts.testHooks === true;
  }

  /** Compile only: syntax check with line:col. */
  check(source: string, limits?: Partial<SandboxLimits>): Promise<RunOutcome> {
    return this.enqueue({ type: 'check', id: 0, source, limits: this.lim(limits) });
  }

  /** Run merge(taskVectors, ctx) for one tensor. Inputs are copied to the child; never modified. */
  run(source: string, inputs: Float32Array[], ctx: MergeContext, limits?: Partial<SandboxLimits>): Promise<RunOutcome> {
    const n = ctx.shape.reduce((a, b) => a * b, 1);
    for (const [i, x] of inputs.entries())
      if (!(x instanceof Float32Array) || x.length !== n) throw new Error(`Sandbox.run: input ${i} for ${ctx.name} must be a Float32Array of ${n} elements`);
    // compact copies: a view's whole underlying buffer would otherwise be serialised
    const compact = inputs.map((x) => (x.byteOffset === 0 && x.byteLength === x.buffer.byteLength ? x : new Float32Array(x)));
    return this.enqueue({ type: 'merge', id: 0, source, inputs: compact, ctx, limits: this.lim(limits), testHooks: this.testHooks });
  }

  /**
   * Streamed merge of one tensor: the child reads `base` and `experts` from their files, runs
   * merge(expert − base, ctx) and answers with base + result encoded as `outDtype` (`bytes`).
   * With `into` (large enough), `bytes` is a view of it: the caller's buffer, reused from tensor
   * to tensor, instead of a fresh allocation per tensor (first touches of fresh memory cost
   * ~100 ms per 29 MB on our VM, more than the merge of the tensor itself).
   */
  async runFile(source: string, base: TensorRef, experts: TensorRef[], outDtype: TensorRef['dtype'], ctx: MergeContext, limits?: Partial<SandboxLimits>, into?: Uint8Array): Promise<RunOutcome> {
    // The merged bytes come back through a scratch file, not the IPC channel: a 29 MB message over
    // child_process IPC took 0.6–1 s per round trip on our 2-core VM, more than the merge itself.
    // One file per sandbox, overwritten in place from tensor to tensor (its pages stay in the page
    // cache: a new file per tensor, then its unlink, cost ~30 ms per 29 MB under load) and read
    // back before the next request is sent (inside the queue), removed by close().
    const outPath = this.scratchPath;
    return this.enqueue({ type: 'merge-file', id: 0, source, base, experts, outDtype, ctx, limits: this.lim(limits), testHooks: this.testHooks, outPath }, (r) => {
      if (!r.ok || r.bytesWritten === undefined) return r;
      let bytes: Uint8Array;
      try {
        bytes = readScratch(outPath, r.bytesWritten, into);
      } catch (e) {
        return { ok: false, category: 'crash', message: `the sandbox wrote ${r.bytesWritten} bytes for ${ctx.name} but they could not be read back: ${(e as Error).message}` };
      }
      if (bytes.byteLength !== r.bytesWritten) return { ok: false, category: 'crash', message: `the sandbox wrote ${r.bytesWritten} bytes for ${ctx.name} but ${bytes.byteLength} arrived` };
      const { bytesWritten: _n, ...rest } = r;
      return { ...rest, bytes };
    });
  }

  /** Run the optional prepare(stats) entry point; `stateJson` holds its JSON result. */
  prepare(source: string, stats: ModelStats, numModels: number, seed: number, limits?: Partial<SandboxLimits>): Promise<RunOutcome> {
    return this.enqueue({ type: 'prepare', id: 0, source, stats, numModels, seed, limits: this.lim(limits), testHooks: this.testHooks });
  }

  /** Starts the child process now (otherwise the first run does); resolves when it is ready. */
  async start(): Promise<void> {
    await this.spawn();
  }

  /** Process id of the current child (undefined before the first start and after a kill). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  close(): void {
    this.closed = true;
    this.kill();
    rmSync(this.scratchPath, { force: true });
  }

  private lim(l?: Partial<SandboxLimits>): SandboxLimits {
    const out = { ...this.limits, ...l };
    for (const [k, v] of Object.entries(out)) if (!(typeof v === 'number' && v > 0)) throw new Error(`Sandbox: limit ${k} must be a positive number, got ${String(v)}`);
    // the parent's kill must never fire before the program's own CPU limit had a chance
    out.wallMs = Math.max(out.wallMs, out.timeoutMs + 1000);
    return out;
  }

  /** Sends `req` after every earlier request is answered; `after` runs on the answer before the next request is sent. */
  private enqueue(req: RunRequest, after?: (r: RunOutcome) => RunOutcome): Promise<RunOutcome> {
    const p = this.queue.then(() => this.send(req)).then((r) => (after ? after(r) : r));
    this.queue = p.catch(() => undefined);
    return p;
  }

  private spawn(): Promise<ChildProcess> {
    if (this.ready) return this.ready;
    this.spawns++;
    const child = fork(RUNNER, [], { execArgv: ['--import', TSX_LOADER], serialization: 'advanced', stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    this.child = child;
    this.stderrTail = '';
    child.stderr?.on('data', (d: Buffer) => {
      this.stderrTail = (this.stderrTail + d.toString()).slice(-2000);
    });
    this.ready = new Promise<ChildProcess>((resolve, reject) => {
      const boot = setTimeout(() => {
        reject(new Error(`sandbox child did not start within ${BOOT_TIMEOUT_MS} ms: ${this.stderrTail}`));
        child.kill('SIGKILL');
      }, BOOT_TIMEOUT_MS);
      child.on('message', (m: RunResponse | RetryNotice | { type: 'ready' }) => {
        if ('type' in m && m.type === 'ready') {
          clearTimeout(boot);
          resolve(child);
          return;
        }
        const p = this.pending;
        if ('type' in m) {
          if (m.type === 'retry' && p && m.id === p.id) {
            p.retries++;
            this.retries++;
            p.budgetMs += p.mode === 'cpu' ? p.limits.timeoutMs + RETRY_SLACK_MS : m.wallMs + RETRY_SLACK_MS;
          }
          return;
        }
        if (p && 'id' in m && m.id === p.id) {
          this.pending = null;
          if (p.timer) clearInterval(p.timer);
          const { id: _id, ...out } = m;
          p.resolve(out);
        }
      });
      child.on('exit', (code, signal) => {
        clearTimeout(boot);
        if (this.child === child) {
          this.child = null;
          this.ready = null;
        }
        reject(new Error(`sandbox child exited during start (code ${code}, signal ${signal}): ${this.stderrTail}`));
        const p = this.pending;
        if (p) {
          this.pending = null;
          if (p.timer) clearInterval(p.timer);
          p.resolve({ ok: false, category: 'crash', message: `the sandbox process died (exit code ${code}, signal ${signal}) while running the program` });
        }
      });
    });
    this.ready.catch(() => undefined);
    child.unref();
    (child as unknown as { channel?: { unref(): void } }).channel?.unref();
    return this.ready;
  }

  private kill(): void {
    const c = this.child;
    this.child = null;
    this.ready = null;
    if (c && c.exitCode === null) c.kill('SIGKILL');
  }

  private async send(req: RunRequest): Promise<RunOutcome> {
    if (this.closed) throw new Error('Sandbox is closed');
    const child = await this.spawn();
    const id = this.nextId++;
    return new Promise<RunOutcome>((resolve) => {
      const limits = req.limits;
      const cpu0 = child.pid === undefined ? null : processCpuMs(child.pid);
      const p: Pending = { id, resolve, timer: null, limits, mode: cpu0 === null ? 'wall' : 'cpu', budgetMs: limits.wallMs, cpu0: cpu0 ?? 0, t0: performance.now(), retries: 0 };
      // far wall-clock backstop in 'cpu' mode, for a child blocked without using CPU: all attempts
      // of the child (each at most backstopFactor × timeoutMs, growing at least 2×) and their
      // host work, which takes long too when the machine starves the child
      const backstopMs = 2 * limits.backstopFactor * limits.wallMs + BACKSTOP_SLACK_MS;
      this.pending = p;
      const stop = (message: string): void => {
        if (this.pending !== p) return;
        this.pending = null;
        if (p.timer) clearInterval(p.timer);
        this.kills++;
        this.kill();
        resolve({ ok: false, category: 'timeout', message });
      };
      p.timer = setInterval(() => {
        if (this.pending !== p) return;
        const wall = performance.now() - p.t0;
        const retried = p.retries > 0 ? ` (${p.retries} retries after machine load starved it)` : '';
        if (p.mode === 'wall') {
          if (wall > p.budgetMs) stop(`killed after the wall-clock limit of ${Math.round(p.budgetMs)} ms${retried} (the program hung the sandbox)`);
          return;
        }
        const cpu = processCpuMs(child.pid!);
        if (cpu !== null && cpu - p.cpu0 > p.budgetMs)
          stop(`killed after using more than ${Math.round(p.budgetMs)} ms of CPU time in the sandbox process${retried} (the program hung the sandbox)`);
        else if (wall > backstopMs) stop(`killed at the wall-clock backstop of ${Math.round(backstopMs)} ms (the program hung the sandbox, or the machine is too loaded)`);
      }, POLL_MS);
      try {
        child.send({ ...req, id });
      } catch (e) {
        this.pending = null;
        if (p.timer) clearInterval(p.timer);
        this.kill();
        resolve({ ok: false, category: 'crash', message: `could not reach the sandbox process: ${(e as Error).message}` });
      }
    });
  }
}

/** The first `size` bytes of the file at `path`, read into `into` when they fit (a view of it), else into a new buffer. */
function readScratch(path: string, size: number, into?: Uint8Array): Uint8Array {
  const fd = openSync(path, 'r');
  try {
    const buf = into && into.byteLength >= size ? into.subarray(0, size) : new Uint8Array(size);
    let done = 0;
    while (done < size) {
      const got = readSync(fd, buf, done, size - done, done);
      if (got === 0) return buf.subarray(0, done);
      done += got;
    }
    return buf;
  } finally {
    closeSync(fd);
  }
}
