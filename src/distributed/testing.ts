/**
 * Test helpers of distributed evaluation: a private redis-server per test file (free loopback port,
 * own data folder, killed by pid), `selfdev worker` processes whose output lines are collected, and
 * a micro world laid out under a root folder the way workers resolve it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, symlinkSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { join, relative } from 'node:path';
import assert from 'node:assert/strict';
import { Queue } from 'bullmq';
import { makeTempDir } from '../io/testing.ts';
import { runLoop } from '../loop/controller.ts';
import { runSnapshot } from '../loop/testing.ts';
import { PREFIX, QUEUE_NAME, connect } from './queue.ts';
import { fileURLToPath } from 'node:url';
import { makeMicroWorld, type MicroWorld } from '../world/testing.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(REPO, 'bin', 'selfdev.mjs');
export const REDIS_SERVER = process.env.REDIS_SERVER ?? 'redis-server';

/** Processes started here that are still running; killed when the test process exits. */
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/** A free TCP port on 127.0.0.1 (bound, read, released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Whether a Redis server answers PING on 127.0.0.1:port. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    let got = '';
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(5000, () => done(false));
    sock.on('error', () => done(false));
    sock.on('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d) => {
      got += d.toString();
      if (got.includes('\r\n')) done(got.startsWith('+PONG'));
    });
  });
}

export interface RedisHandle {
  url: string;
  port: number;
  dir: string;
  pid: () => number;
  /** SIGKILL the server (data in memory is lost unless appendonly). */
  kill(): Promise<void>;
  /** Start it again on the same port and data folder. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts redis-server on a free loopback port with `dir` as its data folder (appendonly with
 * fsync always when `aof`). Fails (never skips) when redis-server is missing: the distributed tests
 * need it (`.ci/run` installs it).
 */
export async function startRedis(dir: string, o: { aof?: boolean } = {}): Promise<RedisHandle> {
  const probe = spawnSync(REDIS_SERVER, ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) throw new Error(`redis-server is needed by the distributed tests and was not found (${REDIS_SERVER}: ${probe.error?.message ?? probe.stderr}); install it (Debian: apt-get install redis-server)`);
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  let child: ChildProcess | null = null;
  const launch = async () => {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--daemonize', 'no', '--maxmemory-policy', 'noeviction', '--loglevel', 'warning', ...(o.aof ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'])];
    const c = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    live.add(c);
    c.once('exit', () => live.delete(c));
    let out = '';
    c.stdout!.on('data', (d) => (out += d));
    c.stderr!.on('data', (d) => (out += d));
    // ready when it answers PING
    const t0 = Date.now();
    for (;;) {
      if (c.exitCode !== null) throw new Error(`redis-server exited at start (code ${c.exitCode}): ${out}`);
      if (await ping(port)) return;
      // generous: the fixture trains its micro world in this process meanwhile, which can hold this loop for many seconds on busy cores
      if (Date.now() - t0 > 60_000) {
        c.kill('SIGKILL'); // a server left running would keep the test process alive
        throw new Error(`redis-server on port ${port} did not answer within 60 s: ${out}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const killIt = async (sig: NodeJS.Signals) => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((r) => {
      c.once('exit', () => r());
      process.kill(c.pid!, sig);
    });
  };
  await launch();
  const h: RedisHandle = {
    url: `redis://127.0.0.1:${port}/0`,
    port,
    dir,
    pid: () => child!.pid!,
    kill: () => killIt('SIGKILL'),
    restart: launch,
    stop: () => killIt('SIGTERM'),
  };
  return h;
}

/** A `selfdev worker` process and the lines it printed. */
export interface WorkerHandle {
  child: ChildProcess;
  lines: string[];
  /** Resolves with the first line matching `re` (rejects after `ms`). */
  waitFor(re: RegExp, ms?: number): Promise<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function startWorker(url: string, root: string, extra: string[] = []): WorkerHandle {
  const child = spawn(process.execPath, [BIN, 'worker', '--queue', url, '--root', root, ...extra], { stdio: ['ignore', 'pipe', 'pipe'], cwd: REPO });
  const lines: string[] = [];
  const listeners = new Set<() => void>();
  let buf = '';
  const onData = (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop()!;
    lines.push(...parts);
    for (const l of [...listeners]) l();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
  live.add(child);
  child.once('exit', () => live.delete(child));
  return {
    child,
    lines,
    exited,
    waitFor: (re, ms = 60_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const hit = lines.find((l) => re.test(l));
          if (hit !== undefined) {
            listeners.delete(check);
            clearTimeout(timer);
            resolve(hit);
          }
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`worker ${child.pid}: no line matching ${re} within ${ms} ms; output:\n${lines.join('\n')}`));
        }, ms);
        listeners.add(check);
        check();
      }),
  };
}

/** Ids of the jobs a worker started, one entry per start. */
export function startedJobs(lines: string[]): string[] {
  return lines.flatMap((l) => {
    const m = / job (\S+) start /.exec(l);
    return m ? [m[1]!] : [];
  });
}

/**
 * A run root as workers see it: `docs` and `algorithms` linked from the repository (the factory
 * prompt reads them), a micro world in `world/`; returns the world with paths relative to `root`.
 */
export async function microRoot(root: string, o: Parameters<typeof makeMicroWorld>[1] = {}): Promise<MicroWorld> {
  mkdirSync(root, { recursive: true });
  for (const d of ['docs', 'algorithms']) symlinkSync(join(REPO, d), join(root, d));
  const w = await makeMicroWorld(join(root, 'world'), { root: REPO, ...o });
  const rel = (p: string) => relative(root, p);
  return { seedModel: rel(w.seedModel), experts: w.experts.map(rel), oodExperts: w.oodExperts.map(rel), dev: rel(w.dev), test: rel(w.test), select: rel(w.select) };
}

/** SIGTERM the workers and wait: each that was not SIGKILLed must exit 0 (graceful stop). */
export async function stopWorkers(ws: WorkerHandle[]): Promise<void> {
  for (const w of ws) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGTERM');
  for (const w of ws) {
    const r = await w.exited;
    if (r.signal !== 'SIGKILL') assert.equal(r.code, 0, `worker ${w.child.pid} exits 0 on SIGTERM; output:\n${w.lines.join('\n')}`);
  }
}

/** The items that occur more than once. */
export const dupes = (ids: string[]): string[] => ids.filter((x, i) => ids.indexOf(x) !== i);

/** The queue at `url` for a test's own reads and adds; `done` closes it and its connection. */
export function openQueue(url: string): { q: Queue; done: () => Promise<void> } {
  const conn = connect(url, 'test');
  const q = new Queue(QUEUE_NAME, { connection: conn, prefix: PREFIX });
  return {
    q,
    done: async () => {
      await q.close();
      conn.disconnect();
    },
  };
}

export async function queueCounts(url: string) {
  const { q, done } = openQueue(url);
  try {
    return await q.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed');
  } finally {
    await done();
  }
}

/**
 * One test file's setting: a temp folder (removed at exit), a run root with a micro world (2 experts
 * trained on disjoint problems, 1 OOD expert), a private redis-server (`db(n)`: its database n),
 * a small loop config, and the local reference (`local()`: the config run with workers: 2, once).
 */
export function distributedFixture(name: string, o: { aof?: boolean } = {}) {
  const tmp = makeTempDir(`selfdev-${name}-`);
  process.on('exit', () => tmp.cleanup());
  const root = join(tmp.path, 'root');
  const worldP = microRoot(root, { nExperts: 2, nOod: 1, nDev: 4, nTest: 4, trainSteps: 60 });
  // Redis after the world: the world's training runs in this process and can hold its event loop past
  // the readiness pings' timeouts on busy cores
  const redisP = worldP.then(() => startRedis(join(tmp.path, 'redis'), o));
  const config = async () => ({
    name, seed: 3, iterations: 1, samplesPerIteration: 8, tensorFilter: 'all',
    eval: { devSubset: 2, maxTokens: 10, batchSize: 8, promoteTopFraction: 0.5 }, topKTest: 4, pWin: 0.2, pLose: 0.4,
    baselines: { lambdas: [0.5] },
    world: { ...(await worldP), algorithms: 'algorithms', example: 'algorithms/task_arithmetic.js' },
  });
  let localP: Promise<ReturnType<typeof runSnapshot>> | null = null;
  return {
    tmp: tmp.path,
    root,
    worldP,
    redisP,
    db: async (n: number) => (await redisP).url.replace(/\/0$/, `/${n}`),
    config,
    local: () =>
      (localP ??= (async () => {
        const dir = join(tmp.path, 'local');
        await runLoop({ ...(await config()), workers: 2 }, dir, { root });
        return runSnapshot(dir);
      })()),
  };
}
