/**
 * Scoring a merged candidate through an OpenAI-compatible server (the real-LLM path, config
 * `eval.server`): the merged weights are written as a Hugging Face folder into a fresh temp folder
 * (`$TMPDIR/selfdev-served-XXXX/model`: config.json and tokenizer files copied from the seed model's
 * folder, weights as model.safetensors — sharded above 5 GB), the user's command is started with
 * `sh -c` in its own process group with env MODEL (that folder) and PORT (a free port picked just
 * before), `GET {url}/models` is polled until the server answers and lists the model id, the
 * problems are scored with `OpenAIBackend` + `evaluate()` (same options as in-process), then the
 * whole process group is stopped (SIGTERM, SIGKILL after a grace period) and the temp folder
 * removed — on failure too.
 *
 * One server per scored candidate: each start pays the server's load time (≈ 1–2 s for
 * `selfdev serve` on the tiny world, tens of seconds to minutes for vLLM with a 7B model) plus the
 * checkpoint write (≈ model size on disk). The loop scores a promoted candidate up to three times
 * (dev subset, full dev, test), each a separate start.
 * With `eval.server.reload` one server per process is started once and reloaded per candidate
 * instead (served-session.ts).
 *
 * Orphans: the command runs under a small `sh` wrapper whose watchdog reads a pipe from this
 * process; if this process dies without cleaning up (e.g. a worker killed by the pool), the pipe
 * closes and the watchdog SIGTERMs the group, removes the temp folder and SIGKILLs what is left
 * after WATCHDOG_GRACE_SEC.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { saveMergedModel } from '../nn/checkpoint.ts';
import type { LlamaConfig } from '../nn/model.ts';
import { OpenAIBackend, completionsUrl } from './backends.ts';
import { evaluate, type EvalProblem, type EvalResult, type ShotSpec } from './evaluate.ts';
import type { TaskName } from './tasks.ts';

/** SIGTERM → SIGKILL grace when stopping a server. */
const STOP_GRACE_MS = 10_000;
/** Grace of the orphan watchdog (the parent died) between its SIGTERM and SIGKILL. */
const WATCHDOG_GRACE_SEC = 5;
const POLL_MS = 200;
const TAIL_CHARS = 4000;

/**
 * The wrapper run as `sh -c`: fd 3 is a pipe from this process, kept open while we live (not stdin:
 * Node closes a child's stdin when the child exits). The watchdog (a background subshell reading
 * it) wakes on EOF only, i.e. when this process is gone; a normal stop SIGTERMs the group first,
 * which ends the watchdog too. The command itself does not get fd 3.
 */
const WRAPPER = [
  `( cat <&3 >/dev/null; trap '' TERM; kill -TERM 0 2>/dev/null; rm -rf "$SELFDEV_SERVED_DIR"; sleep ${WATCHDOG_GRACE_SEC}; kill -KILL 0 ) &`,
  'exec 3<&-',
  'sh -c "$SELFDEV_SERVER_COMMAND"',
].join('\n');

/** eval.server: how to serve a merged checkpoint (the loop's config key; scored by evaluateServed below). */
export interface EvalServerConfig {
  /** Run with `sh -c`, env MODEL (merged HF folder) and PORT (a free port); must serve `model` at `url`. */
  command: string;
  /** Model id sent in requests (and expected in GET {url}/models). */
  model: string;
  /** Base URL; $PORT is replaced (default http://127.0.0.1:$PORT/v1). */
  url?: string;
  /** Seconds to wait for GET {url}/models to answer (default 600). */
  readyTimeoutSec: number;
  /** Weight dtype written to disk (default F32; when set, config.json's torch_dtype says so too). */
  dtype?: 'F32' | 'F16' | 'BF16';
  /** Requests in flight at once (default 4). */
  concurrency?: number;
  /** One server per evaluating process, reloaded per candidate instead of restarted (served-session.ts). */
  reload?: ServerReload;
}

/**
 * eval.server.reload: how a running server is told to load the next candidate's folder. `$MODEL`
 * (the folder) and `$PORT` are replaced in `url` and in every string of `body`; the request must
 * answer 2xx (and not `"success": false`, SGLang's failure shape), then GET {url}/models must list
 * eval.server.model again. Defaults fit `selfdev serve`: POST {origin}/selfdev/load with
 * `{"model": "$MODEL", "name": <eval.server.model>}`.
 */
export interface ServerReload {
  url?: string;
  method?: 'POST' | 'PUT';
  body?: Record<string, unknown>;
  /** Seconds the reload may take (default eval.server.readyTimeoutSec). */
  timeoutSec?: number;
}

export class ServedEvalError extends Error {
  override name = 'ServedEvalError';
  constructor(
    message: string,
    /** The server could not bind its port (another process took it): worth one retry on a new port. */
    readonly addressInUse = false,
  ) {
    super(message);
  }
}

// ------------------------------------------------------------------------------ process group

/** A free TCP port on 127.0.0.1 (bind port 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => (port ? resolve(port) : reject(new Error('could not pick a free port'))));
    });
  });
}

/** Live (non-zombie) processes of process group `pgid` (from /proc; elsewhere: kill(-pgid, 0)). */
export function processGroupMembers(pgid: number): number[] {
  if (!existsSync('/proc/self/stat')) {
    try {
      process.kill(-pgid, 0);
      return [pgid];
    } catch {
      return [];
    }
  }
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${d}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // "pid (comm) state ppid pgrp …" — comm may hold spaces and parentheses
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(f[2]) === pgid && f[0] !== 'Z' && f[0] !== 'X') out.push(Number(d));
  }
  return out;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** An OpenAI-compatible server started from a command, in its own process group. */
export class ServerProcess {
  /** Process group id (= the wrapper's pid). */
  readonly pgid: number;
  private readonly child: ChildProcess;
  private stdoutTail = '';
  private stderrTail = '';
  /** Set once the wrapper (hence the command) has exited. */
  exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  readonly exited: Promise<void>;
  private stopped: Promise<void> | null = null;

  constructor(
    readonly command: string,
    readonly port: number,
    readonly modelDir: string,
    servedDir: string,
    /** The config key named in errors ('eval.server', or 'factory.server' for the loop's factory server). */
    readonly role = 'eval.server',
  ) {
    this.child = spawn('sh', ['-c', WRAPPER], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
      env: { ...process.env, MODEL: modelDir, PORT: String(port), SELFDEV_SERVER_COMMAND: command, SELFDEV_SERVED_DIR: servedDir },
    });
    if (this.child.pid === undefined) throw new ServedEvalError(`${role}: could not start sh for command: ${command}`);
    this.pgid = this.child.pid;
    this.lifeline().on('error', () => undefined);
    this.child.stdout!.on('data', (d: Buffer) => (this.stdoutTail = (this.stdoutTail + d.toString()).slice(-TAIL_CHARS)));
    this.child.stderr!.on('data', (d: Buffer) => (this.stderrTail = (this.stderrTail + d.toString()).slice(-TAIL_CHARS)));
    this.child.on('error', () => undefined); // 'exit' follows
    this.exited = new Promise((r) =>
      this.child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        r();
      }),
    );
  }

  /** The pipe the watchdog reads (fd 3 of the wrapper). */
  private lifeline(): NodeJS.ReadWriteStream & { destroy(): void } {
    return this.child.stdio[3] as unknown as NodeJS.ReadWriteStream & { destroy(): void };
  }

  /** The last output of the server, for error messages. */
  tail(): string {
    const last = (s: string, n: number) => s.trimEnd().split('\n').slice(-n).join('\n');
    const err = last(this.stderrTail, 15);
    const out = last(this.stdoutTail, 8);
    return [err ? `stderr (last lines):\n${err}` : 'stderr: (empty)', out ? `stdout (last lines):\n${out}` : ''].filter(Boolean).join('\n');
  }

  private exitText(): string {
    const e = this.exit!;
    return e.signal ? `was killed by ${e.signal}` : `exited with code ${e.code}`;
  }

  private fail(what: string): ServedEvalError {
    const tail = this.tail();
    const inUse = /EADDRINUSE|address already in use|address in use|couldn't bind|could not bind|bind\(\) failed/i.test(tail);
    return new ServedEvalError(`${this.role}: ${what} (command: ${this.command}; MODEL=${this.modelDir} PORT=${this.port})\n${tail}`, inUse);
  }

  /** Polls GET `modelsUrl` until it answers 200 and lists `model`; fails if the command exits or the timeout passes. */
  async waitReady(modelsUrl: string, model: string, timeoutSec: number): Promise<void> {
    const deadline = Date.now() + timeoutSec * 1000;
    let last = 'no answer yet';
    while (true) {
      if (this.exit) throw this.fail(`the server command ${this.exitText()} before it was ready`);
      const left = deadline - Date.now();
      if (left <= 0) throw this.fail(`the server did not answer GET ${modelsUrl} within ${timeoutSec} s (last: ${last})`);
      try {
        const res = await fetch(modelsUrl, { signal: AbortSignal.timeout(Math.max(100, Math.min(5000, left))) });
        const text = await res.text();
        if (res.ok) {
          let ids: string[] = [];
          try {
            const j = JSON.parse(text) as { data?: Array<{ id?: unknown }> };
            ids = (j.data ?? []).map((m) => String(m.id));
          } catch {
            throw this.fail(`GET ${modelsUrl} answered 200 but not with JSON: ${text.slice(0, 200)}`);
          }
          if (!ids.includes(model)) throw this.fail(`the server is up but does not serve model '${model}' (GET ${modelsUrl} lists: ${ids.join(', ') || 'nothing'}); set ${this.role}.model to the id the command serves`);
          return;
        }
        // a client error (a wrong path, missing credentials) will not pass by waiting
        if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) throw this.fail(`GET ${modelsUrl} → HTTP ${res.status}: ${text.slice(0, 300)}; check ${this.role}.url (the base URL with its version path, e.g. http://127.0.0.1:$PORT/v1)`);
        last = `HTTP ${res.status}`; // e.g. llama-server answers 503 while loading
      } catch (e) {
        if (e instanceof ServedEvalError) throw e;
        const err = e as Error & { cause?: { code?: string } };
        last = err.cause?.code ?? err.name;
      }
      await Promise.race([sleep(Math.min(POLL_MS, Math.max(0, deadline - Date.now()))), this.exited]);
    }
  }

  /** Rejects (with the server's output) if the server exits before `p` settles. */
  async whileAlive<T>(p: Promise<T>, what: string): Promise<T> {
    let onExit: (() => void) | null = null;
    const died = new Promise<never>((_, reject) => {
      onExit = () => reject(this.fail(`the server ${this.exitText()} during ${what}`));
      void this.exited.then(() => onExit?.());
    });
    try {
      return await Promise.race([p, died]);
    } finally {
      onExit = null;
      died.catch(() => undefined);
    }
  }

  /** SIGTERM the group, SIGKILL it after `graceMs`, wait until no member is left (idempotent). */
  stop(graceMs = STOP_GRACE_MS): Promise<void> {
    this.stopped ??= (async () => {
      const signal = (s: NodeJS.Signals) => {
        try {
          process.kill(-this.pgid, s);
        } catch {
          // group already gone
        }
      };
      const gone = async (ms: number) => {
        const until = Date.now() + ms;
        while (processGroupMembers(this.pgid).length > 0) {
          if (Date.now() >= until) return false;
          await sleep(25);
        }
        return true;
      };
      signal('SIGTERM');
      if (!(await gone(graceMs))) {
        signal('SIGKILL');
        await gone(5000);
      }
      this.lifeline().destroy(); // after the group is gone: the watchdog must not see EOF first
      this.child.stdout!.destroy();
      this.child.stderr!.destroy();
    })();
    return this.stopped;
  }
}

// ------------------------------------------------------------------------------ evaluation

/** How a model is scored through a server: what every served scoring takes. */
export interface ServedScoring {
  server: EvalServerConfig;
  problems: readonly EvalProblem[];
  maxTokens: number;
  calculator: boolean;
  /** lm-eval task and few-shot examples (default gsm8k, zero-shot). */
  task?: TaskName;
  shots?: ShotSpec;
  /** Called when a server process is started (tests). */
  onStart?: (s: ServerProcess) => void;
}

export interface ServedEvalOptions extends ServedScoring {
  /** Folder of the seed model (config.json and tokenizer files are copied from it). */
  seedDir: string;
  config: LlamaConfig;
  weights: Map<string, Float32Array>;
}

export interface ServedEvalResult {
  result: EvalResult;
  /** Wall times (ms): checkpoint write, server start until ready, scoring, stop + cleanup. */
  timings: { writeMs: number; startMs: number; evalMs: number; stopMs: number };
  /** Server starts (2 after an address-in-use retry; 0 when a running server was reloaded). */
  starts: number;
  /** 1 when a running server was reloaded with this model (eval.server.reload), else 0. */
  reloads?: number;
}

/** The server's base URL for `port` ($PORT / ${PORT} in `url` replaced; default http://127.0.0.1:$PORT/v1). */
export function serverUrl(server: EvalServerConfig, port: number): string {
  return (server.url ?? 'http://127.0.0.1:$PORT/v1').replace(/\$\{PORT\}|\$PORT\b/g, String(port));
}

/** `{url}/models` for a base URL given in any form completionsUrl accepts. */
export function modelsUrl(url: string): string {
  return completionsUrl(url).replace(/\/completions$/, '/models');
}

/** Write the merged checkpoint, start the server, score `problems` through it, stop it, clean up. */
export async function evaluateServed(o: ServedEvalOptions): Promise<ServedEvalResult> {
  const t0 = performance.now();
  const servedDir = mkdtempSync(join(tmpdir(), 'selfdev-served-'));
  const modelDir = join(servedDir, 'model');
  try {
    saveMergedModel(modelDir, o.seedDir, o.config, o.weights, o.server.dtype);
    const writeMs = performance.now() - t0;
    const r = await scoreServedFolder({ ...o, servedDir, modelDir });
    return { ...r, timings: { ...r.timings, writeMs } };
  } finally {
    rmSync(servedDir, { recursive: true, force: true });
  }
}

/** A fresh `$TMPDIR/selfdev-served-XXXX` folder; the model goes to its `model/` (see scoreServedFolder). */
export function makeServedDir(): { servedDir: string; modelDir: string } {
  const servedDir = mkdtempSync(join(tmpdir(), 'selfdev-served-'));
  return { servedDir, modelDir: join(servedDir, 'model') };
}

export interface ServedFolderOptions extends ServedScoring {
  /** The temp folder holding `modelDir` (removed by the orphan watchdog if this process dies). */
  servedDir: string;
  /** The complete model folder the server loads ($MODEL). */
  modelDir: string;
}

/** Start the server on an already written model folder, score `problems`, stop it (writeMs is 0; the caller removes `servedDir`). */
export async function scoreServedFolder(o: ServedFolderOptions): Promise<ServedEvalResult> {
  const { servedDir, modelDir } = o;
  let proc: ServerProcess | null = null;
  const timings = { writeMs: 0, startMs: 0, evalMs: 0, stopMs: 0 };
  let starts = 0;
  try {
    const t1 = performance.now();
    const started = await startServer(o.server, modelDir, servedDir, o.onStart);
    proc = started.proc;
    starts = started.starts;
    const url = started.url;
    const t2 = performance.now();
    timings.startMs = t2 - t1;
    const result = await scoreOnServer(proc, url, o);
    timings.evalMs = performance.now() - t2;
    const t3 = performance.now();
    await proc.stop();
    proc = null;
    timings.stopMs = performance.now() - t3;
    return { result, timings, starts };
  } finally {
    if (proc) await proc.stop();
  }
}

/** Score `o.problems` through a ready server at `url` (an endpoint failure is a ServedEvalError with the server's log). */
export async function scoreOnServer(proc: ServerProcess, url: string, o: ServedScoring): Promise<EvalResult> {
  const be = new OpenAIBackend({ endpoint: url, modelName: o.server.model, concurrency: o.server.concurrency });
  try {
    return await proc.whileAlive(evaluate(be, o.problems, { maxTokens: o.maxTokens, calculator: o.calculator, task: o.task, shots: o.shots }), 'evaluation').catch((e: Error) => {
      if (e instanceof ServedEvalError) throw e;
      // the endpoint refused or kept failing (EndpointError): a configuration error, the run stops
      throw new ServedEvalError(`eval.server: scoring through ${url} (model '${o.server.model}') failed: ${e.message}\nWhat to change: an HTTP 400 names the request field the server rejects (eval.maxTokens must fit the served model's context; eval.calculator sends stop strings); 401/403: the API key (OPENAI_API_KEY); 404: eval.server.url / eval.server.model; 5xx or no answer: the server's log (below)\n${proc.tail()}`);
    });
  } finally {
    await be.close();
  }
}

/** Start `server.command` on `modelDir` (a fresh free port; one retry on a new port when the port was taken); ready when GET {url}/models lists the model. */
export async function startServer(server: EvalServerConfig, modelDir: string, servedDir: string, onStart?: (s: ServerProcess) => void): Promise<{ proc: ServerProcess; url: string; starts: number }> {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const url = serverUrl(server, port);
    const proc = new ServerProcess(server.command, port, modelDir, servedDir);
    onStart?.(proc);
    try {
      await proc.waitReady(modelsUrl(url), server.model, server.readyTimeoutSec);
      return { proc, url, starts: attempt + 1 };
    } catch (e) {
      await proc.stop();
      if (attempt === 0 && e instanceof ServedEvalError && e.addressInUse) continue;
      throw e;
    }
  }
}
