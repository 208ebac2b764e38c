/**
 * A long-lived evaluation server (config `eval.server.reload`): one server per evaluating process,
 * started on the first candidate's folder and told to load each later candidate's folder
 * (`eval.server.reload`: an HTTP request, `POST /selfdev/load` for `selfdev serve`) instead of being
 * restarted, so the server's start-up (process, runtime, allocator, compilation) is paid once per
 * worker instead of once per candidate.
 *
 * Folders: every candidate is written to `$TMPDIR/selfdev-served-XXXX/cN/model` (one parent per
 * session) and removed once scored; the server has its weights in memory by then. Lifetime: the
 * server runs under served.ts's `ServerProcess` wrapper with the session's parent folder, so if this
 * process dies (a worker killed, or exiting on its parent's disconnect) the orphan watchdog stops
 * the server's process group and removes the folder; `close()` stops it at the end of a run. A
 * reload that fails (an error status, `"success": false`, a timeout, or a server that no longer
 * lists eval.server.model) stops the server and fails the job with the server's log; the next
 * candidate starts a fresh one. A server that died between candidates is restarted.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { saveMergedModel } from '../nn/checkpoint.ts';
import { ServedEvalError, modelsUrl, processGroupMembers, scoreOnServer, startServer, type EvalServerConfig, type ServedEvalOptions, type ServedEvalResult, type ServedScoring, type ServerProcess } from './served.ts';

/** The reload request for `modelDir` on a server at base URL `url` (eval.server.reload with its defaults). */
export function reloadRequest(server: EvalServerConfig, url: string, port: number, modelDir: string): { url: string; method: string; body: unknown } {
  const r = server.reload ?? {};
  const sub = (x: string) => x.replace(/\$\{PORT\}|\$PORT\b/g, String(port)).replace(/\$\{MODEL\}|\$MODEL\b/g, modelDir);
  const deep = (v: unknown): unknown => (typeof v === 'string' ? sub(v) : Array.isArray(v) ? v.map(deep) : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, deep(x)])) : v);
  return {
    url: r.url !== undefined ? sub(r.url) : `${new URL(url).origin}/selfdev/load`,
    method: r.method ?? 'POST',
    body: deep(r.body ?? { model: '$MODEL', name: server.model }),
  };
}

export class ServerSession {
  private proc: ServerProcess | null = null;
  private url = '';
  private root: string | null = null;
  private n = 0;
  /** Server starts and reloads so far (tests, benchmarks). */
  readonly stats = { starts: 0, reloads: 0 };

  constructor(
    readonly server: EvalServerConfig,
    /** Called when a server process is started (tests). */
    private readonly onStart?: (s: ServerProcess) => void,
  ) {}

  /** A fresh folder for the next candidate: `{servedDir}/model` (the caller removes servedDir once scored). */
  folder(): { servedDir: string; modelDir: string } {
    const servedDir = join(this.parent(), `c${++this.n}`);
    mkdirSync(servedDir);
    return { servedDir, modelDir: join(servedDir, 'model') };
  }

  /** The session's parent folder (the watchdog removes it if this process dies). */
  private parent(): string {
    return (this.root ??= mkdtempSync(join(tmpdir(), 'selfdev-served-')));
  }

  /** Serve the complete model folder `modelDir` (start the server, or reload it) and score `o.problems` through it. */
  async score(o: ServedScoring & { modelDir: string }): Promise<ServedEvalResult> {
    const timings = { writeMs: 0, startMs: 0, evalMs: 0, stopMs: 0 };
    const t1 = performance.now();
    // died between candidates (its exit may not be reported yet: the process group is the truth): start a new one
    if (this.proc && (this.proc.exit || processGroupMembers(this.proc.pgid).length === 0)) await this.stopServer();
    let starts = 0;
    let reloads = 0;
    if (!this.proc) {
      const s = await startServer(this.server, o.modelDir, this.parent(), (p) => (this.onStart?.(p), o.onStart?.(p)));
      this.proc = s.proc;
      this.url = s.url;
      starts = s.starts;
      this.stats.starts += s.starts;
    } else {
      await this.reload(o.modelDir);
      reloads = 1;
      this.stats.reloads++;
    }
    const t2 = performance.now();
    timings.startMs = t2 - t1;
    const proc = this.proc;
    try {
      const result = await scoreOnServer(proc, this.url, o);
      timings.evalMs = performance.now() - t2;
      return { result, timings, starts, reloads };
    } catch (e) {
      await this.stopServer();
      throw e;
    }
  }

  /** Write the merged weights to a fresh folder, score them (score above), remove the folder. */
  async evaluate(o: ServedEvalOptions): Promise<ServedEvalResult> {
    const t0 = performance.now();
    const { servedDir, modelDir } = this.folder();
    try {
      saveMergedModel(modelDir, o.seedDir, o.config, o.weights, o.server.dtype);
      const writeMs = performance.now() - t0;
      const r = await this.score({ ...o, modelDir });
      return { ...r, timings: { ...r.timings, writeMs } };
    } finally {
      rmSync(servedDir, { recursive: true, force: true });
    }
  }

  private async reload(modelDir: string): Promise<void> {
    const proc = this.proc!;
    const port = proc.port;
    const req = reloadRequest(this.server, this.url, port, modelDir);
    const timeoutSec = this.server.reload?.timeoutSec ?? this.server.readyTimeoutSec;
    const fail = async (what: string) => {
      const tail = proc.tail();
      await this.stopServer();
      return new ServedEvalError(`eval.server.reload: ${what} (${req.method} ${req.url} with ${JSON.stringify(req.body)}; the server was stopped, the next candidate starts a new one)\n${tail}`);
    };
    let status = 0;
    let text = '';
    try {
      const res = await proc.whileAlive(fetch(req.url, { method: req.method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(req.body), signal: AbortSignal.timeout(timeoutSec * 1000) }), 'a reload');
      status = res.status;
      text = await res.text();
    } catch (e) {
      if (e instanceof ServedEvalError) {
        await this.stopServer();
        throw e;
      }
      const err = e as Error & { cause?: { code?: string } };
      throw await fail(err.name === 'TimeoutError' ? `no answer within ${timeoutSec} s` : `the request failed (${err.cause?.code ?? err.message})`);
    }
    let success: unknown = true;
    try {
      success = (JSON.parse(text) as { success?: unknown }).success ?? true;
    } catch {
      // not JSON: the status decides
    }
    if (status < 200 || status >= 300 || success === false) throw await fail(`HTTP ${status}: ${text.slice(0, 500)}`);
    try {
      await proc.waitReady(modelsUrl(this.url), this.server.model, timeoutSec);
    } catch (e) {
      await this.stopServer();
      throw e;
    }
  }

  private async stopServer(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    await p?.stop();
  }

  /** Stop the server (its whole process group) and remove the session's folder. */
  async close(): Promise<void> {
    await this.stopServer();
    if (this.root) rmSync(this.root, { recursive: true, force: true });
    this.root = null;
  }
}
