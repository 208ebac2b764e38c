/**
 * `selfdev dashboard`: a local web server that follows one run folder.
 *
 * - Reads RUN_DIR/run.sqlite read-only. SQLite's WAL lets the run go on writing; a second read-only
 *   connection watches `PRAGMA data_version`, which changes whenever another connection commits, so
 *   the report is re-rendered only after a write (checked every `intervalMs`). A change of the file
 *   itself (replaced, truncated, checkpointed) reopens it.
 * - Renders with the report's own code (collectReportData + renderReportBody, in one read
 *   transaction: a consistent snapshot) plus a live panel (live.ts), and pushes each new state to
 *   every open page as a server-sent event; GET /state returns it as JSON.
 * - No store yet, or one that cannot be read: the page says so and the server keeps checking.
 * - Binds 127.0.0.1 by default, and then answers only requests addressed to a loopback name (a
 *   guard against DNS rebinding).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { openDatabase, type Database } from '../store/sqlite.ts';
import { DB_FILE, RunStore } from '../store/store.ts';
import { collectReportData, renderReportBody } from '../report/report.ts';
import { liveStatus, type LiveStatus } from './live.ts';
import { renderDashboardPage, renderLive, renderMessage, type DashboardState } from './page.ts';

export interface DashboardOptions {
  runDir: string;
  /** TCP port (0: any free port; default 8484). */
  port?: number;
  /** Address to bind (default 127.0.0.1). */
  host?: string;
  /** How often the store is checked for new writes, in ms (default 1000). */
  intervalMs?: number;
}

export interface Dashboard {
  /** http://host:port/ */
  url: string;
  port: number;
  /** The state the pages show now. */
  state(): DashboardState;
  close(): Promise<void>;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);
const CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; connect-src 'self'";

/** Watches one run folder's store and renders its state whenever the store changes. */
export class RunWatcher {
  private store: RunStore | null = null;
  private watch: Database | null = null;
  private seen: { dataVersion: unknown; file: string } | null = null;
  private current: DashboardState;
  private version = 0;

  /** `label`: the folder as the user named it (shown on the page). */
  constructor(readonly runDir: string, private readonly intervalMs: number, private readonly label = runDir) {
    this.current = this.render();
  }

  state(): DashboardState {
    return this.current;
  }

  /** Checks the store; returns true when the state changed. Never throws: problems become the state. */
  poll(): boolean {
    const next = this.render();
    if (next.live === this.current.live && next.report === this.current.report && next.title === this.current.title) return false;
    this.current = { ...next, version: ++this.version };
    return true;
  }

  close(): void {
    this.closeStore();
  }

  private render(): DashboardState {
    const path = join(this.runDir, DB_FILE);
    if (!existsSync(path)) {
      this.closeStore();
      const experiment = existsSync(join(this.runDir, 'experiment.json')) ? 'this is an experiment folder: open one of its runs, e.g. DIR/dpo/r0' : existsSync(this.runDir) ? '' : 'the folder does not exist yet';
      return this.message('waiting', experiment);
    }
    try {
      // the file itself changed (replaced, truncated, or a WAL checkpoint wrote into it): open it afresh
      const st = statSync(path);
      const file = `${st.ino}:${st.size}:${st.mtimeMs}`;
      if (this.seen && this.seen.file !== file) this.closeStore();
      if (!this.store || !this.watch) {
        this.store = RunStore.open(this.runDir, { readonly: true });
        this.watch = openDatabase(path, { readonly: true, fileMustExist: true });
      }
      const dataVersion = this.watch.pragma('data_version', { simple: true });
      if (this.seen && this.seen.file === file && this.seen.dataVersion === dataVersion && this.current) return this.current;
      const store = this.store;
      const watch = this.watch;
      const { data, lastWrite } = store.transaction(() => ({ data: collectReportData(store), lastWrite: lastWriteOf(watch) }));
      const status = liveStatus(data);
      const { title, body } = renderReportBody(data);
      this.seen = { dataVersion, file };
      return { version: this.version, title: `${status.state === 'running' ? '● ' : ''}${title.replace(/^selfdev report/, 'selfdev dashboard')}`, live: renderLive(status, this.label, lastWrite), report: body, status, lastWrite };
    } catch (e) {
      this.closeStore();
      return this.message('error', (e as Error).message);
    }
  }

  private message(kind: 'waiting' | 'error', detail: string): DashboardState {
    const status: LiveStatus = {
      state: kind, phase: kind === 'waiting' ? `no run store at ${join(this.runDir, DB_FILE)} yet` : 'the run store cannot be read', progress: null, iteration: null, sampled: 0, scored: 0, valid: 0, bestDev: null,
    };
    return { version: this.version, title: `selfdev dashboard — ${kind === 'waiting' ? 'waiting for a run' : 'store unreadable'}`, live: renderLive(status, this.label, null), report: renderMessage(kind, this.label, detail, this.intervalMs), status, lastWrite: null };
  }

  private closeStore(): void {
    try {
      this.store?.close();
      this.watch?.close();
    } catch {
      /* closing anyway */
    }
    this.store = null;
    this.watch = null;
    this.seen = null;
  }
}

/** The latest time stamp the run wrote (evaluations, samples, the run row), or null. */
function lastWriteOf(db: Database): string | null {
  const r = db.prepare('SELECT MAX(t) AS t FROM (SELECT MAX(updated_at) AS t FROM evaluations UNION ALL SELECT MAX(created_at) FROM samples UNION ALL SELECT MAX(updated_at) FROM runs)').get() as { t: string | null } | undefined;
  return r?.t ?? null;
}

export async function startDashboard(o: DashboardOptions): Promise<Dashboard> {
  const runDir = resolve(o.runDir);
  const host = o.host ?? '127.0.0.1';
  const intervalMs = o.intervalMs ?? 1000;
  const watcher = new RunWatcher(runDir, intervalMs, o.runDir);
  const clients = new Set<ServerResponse>();
  const send = (res: ServerResponse) => res.write(`event: update\ndata: ${JSON.stringify(watcher.state())}\n\n`);

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const hostHeader = (req.headers.host ?? '').replace(/:\d+$/, '');
    if (LOOPBACK.has(host) && !LOOPBACK.has(hostHeader)) {
      res.writeHead(403, { 'Content-Type': 'text/plain; charset=utf-8' }).end(`selfdev dashboard: requests must be addressed to ${host} (got Host: ${req.headers.host ?? 'none'})\n`);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('selfdev dashboard: read-only (GET only)\n');
      return;
    }
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/') {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store', 'Content-Security-Policy': CSP }).end(renderDashboardPage(watcher.state(), o.runDir));
    } else if (path === '/state') {
      res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' }).end(JSON.stringify(watcher.state()));
    } else if (path === '/events') {
      res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', Connection: 'keep-alive' });
      res.write('retry: 2000\n\n');
      send(res);
      clients.add(res);
      req.on('close', () => clients.delete(res));
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end(`selfdev dashboard: no page ${path} (the dashboard is at /)\n`);
    }
  });
  const timer = setInterval(() => {
    if (watcher.poll()) for (const c of clients) send(c);
  }, intervalMs);
  // a comment line now and then keeps proxies and idle connections from closing the stream
  const keepAlive = setInterval(() => {
    for (const c of clients) c.write(': keep-alive\n\n');
  }, 15_000);

  await new Promise<void>((ok, fail) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      clearInterval(timer);
      clearInterval(keepAlive);
      watcher.close();
      fail(e.code === 'EADDRINUSE' ? new Error(`port ${o.port ?? 8484} on ${host} is in use; pass another --port (0 picks a free one)`) : e);
    });
    server.listen(o.port ?? 8484, host, () => ok());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : (o.port ?? 8484);
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}/`,
    port,
    state: () => watcher.state(),
    close: async () => {
      clearInterval(timer);
      clearInterval(keepAlive);
      for (const c of clients) c.end();
      clients.clear();
      const closed = new Promise<void>((ok) => server.close(() => ok()));
      server.closeAllConnections(); // idle keep-alive and half-read connections too: stopping must not wait on a client
      await closed;
      watcher.close();
    },
  };
}
