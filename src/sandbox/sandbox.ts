/**
 * Parent side of the merge-algorithm sandbox: one killable child process (runner.ts, forked with
 * tsx) reused across candidates, restarted after a crash or a wall-clock kill. Every run gets a
 * fresh isolate in the child; the parent enforces the wall-clock limit by killing the child.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_LIMITS, type TensorRef, type MergeContext, type ModelStats, type RunOutcome, type RunRequest, type RunResponse, type SandboxLimits } from './types.ts';

/** tsx's loader as an absolute URL, so the child starts whatever the current directory is. */
const TSX_LOADER = import.meta.resolve('tsx');

const RUNNER = fileURLToPath(new URL('./runner.ts', import.meta.url));
const BOOT_TIMEOUT_MS = 60_000;

export interface SandboxOptions {
  /** default limits for every run (merged over DEFAULT_LIMITS) */
  limits?: Partial<SandboxLimits>;
  /** enables torch.__hang / torch.__crash (tests of the wall-clock kill and crash recovery only) */
  testHooks?: boolean;
}

let sandboxes = 0;

type Pending = { id: number; resolve: (r: RunOutcome) => void; timer: NodeJS.Timeout | null; wallMs: number };

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
  private files = 0;
  /** number of child processes started (1 + restarts) */
  spawns = 0;
  /** number of wall-clock kills */
  kills = 0;

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
   */
  async runFile(source: string, base: TensorRef, experts: TensorRef[], outDtype: TensorRef['dtype'], ctx: MergeContext, limits?: Partial<SandboxLimits>): Promise<RunOutcome> {
    // The merged bytes come back through a scratch file, not the IPC channel: a 29 MB message over
    // child_process IPC took 0.6–1 s per round trip on our 2-core VM, more than the merge itself.
    const outPath = join(tmpdir(), `selfdev-merge-${process.pid}-${this.id}-${++this.files}.bin`);
    try {
      const r = await this.enqueue({ type: 'merge-file', id: 0, source, base, experts, outDtype, ctx, limits: this.lim(limits), testHooks: this.testHooks, outPath });
      if (!r.ok || r.bytesWritten === undefined) return r;
      const bytes = readFileSync(outPath);
      if (bytes.byteLength !== r.bytesWritten) return { ok: false, category: 'crash', message: `the sandbox wrote ${r.bytesWritten} bytes for ${ctx.name} but ${bytes.byteLength} arrived` };
      const { bytesWritten: _n, ...rest } = r;
      return { ...rest, bytes: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
    } finally {
      rmSync(outPath, { force: true });
    }
  }

  /** Run the optional prepare(stats) entry point; `stateJson` holds its JSON result. */
  prepare(source: string, stats: ModelStats, numModels: number, seed: number, limits?: Partial<SandboxLimits>): Promise<RunOutcome> {
    return this.enqueue({ type: 'prepare', id: 0, source, stats, numModels, seed, limits: this.lim(limits), testHooks: this.testHooks });
  }

  /** Starts the child process now (otherwise the first run does); resolves when it is ready. */
  async start(): Promise<void> {
    await this.spawn();
  }

  close(): void {
    this.closed = true;
    this.kill();
  }

  private lim(l?: Partial<SandboxLimits>): SandboxLimits {
    const out = { ...this.limits, ...l };
    for (const [k, v] of Object.entries(out)) if (!(typeof v === 'number' && v > 0)) throw new Error(`Sandbox: limit ${k} must be a positive number, got ${String(v)}`);
    // the parent's kill must never fire before the isolate's own timeout had a chance
    out.wallMs = Math.max(out.wallMs, out.timeoutMs + 1000);
    return out;
  }

  private enqueue(req: RunRequest): Promise<RunOutcome> {
    const p = this.queue.then(() => this.send(req));
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
      child.on('message', (m: RunResponse | { type: 'ready' }) => {
        if ('type' in m && m.type === 'ready') {
          clearTimeout(boot);
          resolve(child);
          return;
        }
        const p = this.pending;
        if (p && 'id' in m && m.id === p.id) {
          this.pending = null;
          if (p.timer) clearTimeout(p.timer);
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
          if (p.timer) clearTimeout(p.timer);
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
      const wallMs = req.limits.wallMs;
      const p: Pending = { id, resolve, timer: null, wallMs };
      this.pending = p;
      p.timer = setTimeout(() => {
        if (this.pending !== p) return;
        this.pending = null;
        this.kills++;
        this.kill();
        resolve({ ok: false, category: 'timeout', message: `killed after the wall-clock limit of ${wallMs} ms (the program hung the sandbox)` });
      }, wallMs);
      try {
        child.send({ ...req, id });
      } catch (e) {
        this.pending = null;
        if (p.timer) clearTimeout(p.timer);
        this.kill();
        resolve({ ok: false, category: 'crash', message: `could not reach the sandbox process: ${(e as Error).message}` });
      }
    });
  }
}
