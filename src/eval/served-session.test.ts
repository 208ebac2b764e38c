import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { liveProcesses } from '../io/testing.ts';
import { makeMicroWorld } from '../world/testing.ts';
import { resolveConfig, type LoopConfig } from '../loop/config.ts';
import { memoryEvaluator, openEvalContext, runJob, WorkerPool, type EvalJob, type JobResult } from '../loop/pool.ts';
import { ServerSession, reloadRequest } from './served-session.ts';

// eval.server.reload: one server per evaluating process, started on the first candidate and reloaded
// (POST /selfdev/load on a real `selfdev serve`) for every later one, scores exactly like a server
// started per candidate; the server is stopped at close, and nothing is left behind.

const ROOT = resolve(fileURLToPath(import.meta.url), '../../..');
// a private TMPDIR (inherited by the pool's workers): "no folder left" is checked where nobody else writes
const PRIV = mkdtempSync(join(tmpdir(), 'selfdev-session-test-'));
process.env.TMPDIR = PRIV;
after(() => rmSync(PRIV, { recursive: true, force: true }));

const SERVE = `node ${JSON.stringify(join(ROOT, 'bin/selfdev.mjs'))} serve "$MODEL" --port "$PORT" --name merged --quiet`;
const SERVER = { command: SERVE, model: 'merged', readyTimeoutSec: 60 };
const worldP = makeMicroWorld(join(PRIV, 'world'), { nExperts: 2, nOod: 1, nDev: 4, nTest: 4, trainSteps: 60 });
const config = async (server?: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<LoopConfig> =>
  resolveConfig({
    name: 'session', seed: 3, tensorFilter: 'all', ...extra,
    eval: { maxTokens: 12, batchSize: 8, devSubset: 2, ...(server ? { server, shots: 0, calculator: true } : {}) },
    world: { ...(await worldP), algorithms: 'algorithms', example: 'algorithms/task_arithmetic.js' },
  });

const JOBS: EvalJob[] = [
  { code: 'function merge(tv, ctx) { return tv[0]; }', seed: 1, set: 'dev' },
  { code: 'function merge(tv, ctx) { return tv[1]; }', seed: 1, set: 'test' },
  { code: 'function merge(tv, ctx) { throw new Error("nope"); }', seed: 1, set: 'dev' },
  { baseline: { lambda: 0.5 }, set: 'subset' },
  { baseline: 'seed', set: 'dev' },
  { code: 'function merge(tv, ctx) { return tv[0]; }', seed: 1, set: 'dev', experts: 'ood' },
];
const scores = (rs: JobResult[]) => rs.map((r) => (r.ok ? r.scores : r.verdict));
/** The in-process results of JOBS (the reference every mode must reproduce), computed once. */
let inProcessP: Promise<JobResult[]> | null = null;
const inProcess = async () => (inProcessP ??= config().then(async (c) => (await runAll(c)).results));
const servedDirs = () => readdirSync(PRIV).filter((n) => n.startsWith('selfdev-served-'));
/** Live `selfdev serve` processes started from this file (their command line holds our private TMPDIR's model folders). */
const servers = () => liveProcesses().filter((p) => p.args.includes(' serve ') && p.args.includes(PRIV));
async function cleanedUp(withinMs = 0): Promise<void> {
  const until = Date.now() + withinMs;
  while (Date.now() < until && (servedDirs().length > 0 || servers().length > 0)) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(servedDirs(), [], 'no served folder left');
  assert.deepEqual(servers().map((p) => `${p.pid} ${p.args}`), [], 'no server process left');
}

async function runAll(cfg: LoopConfig, only?: number[]): Promise<{ results: JobResult[]; stats: { starts: number; reloads: number } | null }> {
  const ctx = await openEvalContext(cfg, ROOT);
  try {
    const results: JobResult[] = [];
    for (const j of only ? only.map((i) => JOBS[i]) : JOBS) {
      results.push(await runJob(ctx, j));
      if (ctx.session && results.length > 1) assert.equal(servers().length, 1, 'one server runs between candidates');
    }
    return { results, stats: ctx.session ? { ...ctx.session.stats } : null };
  } finally {
    await ctx.close();
  }
}

test('eval.server.reload config: true / {} / a mapping; unknown keys and bad values are named', async () => {
  const w = { seedModel: 's', experts: ['e'] };
  const srv = (reload: unknown) => resolveConfig({ world: w, eval: { server: { command: 'x', model: 'm', reload } } }, 'my.yml').eval.server;
  assert.deepEqual(srv(true)?.reload, {});
  assert.equal(srv(false)?.reload, undefined);
  assert.equal('reload' in srv(null)!, false);
  const sglang = { url: 'http://127.0.0.1:$PORT/update_weights_from_disk', body: { model_path: '$MODEL' }, timeoutSec: 900 };
  assert.deepEqual(srv(sglang)?.reload, sglang);
  const bad = (reload: unknown, re: RegExp) => assert.throws(() => srv(reload), re);
  bad({ path: '/x' }, /my\.yml: eval\.server\.reload: unknown key eval\.server\.reload\.path \(known: url, method, body, timeoutSec\)/);
  bad('yes', /eval\.server\.reload must be true or a mapping/);
  bad({ url: 'localhost/reload' }, /eval\.server\.reload\.url must be an http\(s\) URL/);
  bad({ method: 'GET' }, /eval\.server\.reload\.method must be POST or PUT/);
  bad({ body: 'model=$MODEL' }, /eval\.server\.reload\.body must be a mapping/);
  bad({ timeoutSec: 0 }, /eval\.server\.reload\.timeoutSec must be a number > 0/);
  // the request: defaults for selfdev serve; $MODEL / $PORT replaced in url and body strings
  const s = srv(true)!;
  assert.deepEqual(reloadRequest(s, 'http://127.0.0.1:4321/v1', 4321, '/tmp/c2/model'), { url: 'http://127.0.0.1:4321/selfdev/load', method: 'POST', body: { model: '/tmp/c2/model', name: 'm' } });
  assert.deepEqual(reloadRequest(srv(sglang)!, 'http://127.0.0.1:4321/v1', 4321, '/tmp/c2/model'), { url: 'http://127.0.0.1:4321/update_weights_from_disk', method: 'POST', body: { model_path: '/tmp/c2/model' } });
});

test('reload mode scores exactly like per-candidate mode and in-process (in-memory and streamed worlds); one start per process; stopped at close', async () => {
  const ref = await inProcess();
  const want = scores(ref);
  assert.ok(ref.some((r) => r.ok && r.scores.strict > 0) && want.includes('runtime'), 'non-trivial scores and a failing program');
  // per-candidate mode (a server started per scored job) on two candidates that score differently
  const perCandidate = await runAll(await config(SERVER), [0, 1]);
  await cleanedUp();
  assert.deepEqual(scores(perCandidate.results), [want[0], want[1]]);
  const reload = await runAll(await config({ ...SERVER, reload: true }));
  await cleanedUp();
  assert.deepEqual(scores(reload.results), want);
  // one start (the first candidate), a reload for each later scored candidate (the failing program is never served)
  assert.deepEqual(reload.stats, { starts: 1, reloads: JOBS.length - 2 });
  const stream = await runAll(await config({ ...SERVER, reload: true }, { merge: { stream: true, maxMemory: '4GiB' } }));
  await cleanedUp();
  assert.deepEqual(scores(stream.results), want);
  assert.deepEqual(stream.stats, { starts: 1, reloads: JOBS.length - 2 });
});

test('reload mode with 2 worker processes: same scores; one server per worker; no server or folder left after the pool closes', async () => {
  const cfg = await config({ ...SERVER, reload: true });
  const want = await inProcess();
  const pool = new WorkerPool(2, cfg, ROOT);
  try {
    const got = await Promise.all(JOBS.map((j) => pool.run(j)));
    assert.deepEqual(scores(got), scores(want));
    assert.ok(servers().length >= 1 && servers().length <= 2, `${servers().length} servers for 2 workers`);
  } finally {
    await pool.close();
  }
  // the workers were killed: each server's orphan watchdog stops it and removes its folder
  await cleanedUp(15_000);
});

test('a failing reload stops the server with a clear error; the next candidate starts a new one', async () => {
  const cfg = await config({ ...SERVER, reload: { url: 'http://127.0.0.1:$PORT/no/such/reload' } });
  const ctx = await openEvalContext(cfg, ROOT);
  try {
    const ev = memoryEvaluator(ctx);
    const weights = ev.world.taskArithmetic(0.5);
    const session = ctx.session as ServerSession;
    const o = { server: cfg.eval.server!, seedDir: ev.seedDir, config: ev.world.config, weights, problems: ctx.sets.subset, maxTokens: 12, calculator: true };
    const first = await session.evaluate(o);
    assert.deepEqual([first.starts, first.reloads], [1, 0]);
    await assert.rejects(session.evaluate(o), /eval\.server\.reload: HTTP 404: .*unknown route POST \/no\/such\/reload.*\(POST http:\/\/127\.0\.0\.1:\d+\/no\/such\/reload with \{"model":".*\/c2\/model","name":"merged"\}; the server was stopped, the next candidate starts a new one\)/s);
    assert.equal(servers().length, 0, 'the server was stopped');
    const third = await session.evaluate(o);
    assert.deepEqual([third.starts, third.reloads], [1, 0]);
    assert.deepEqual(third.result.strict, first.result.strict);
    assert.deepEqual(session.stats, { starts: 2, reloads: 0 });
  } finally {
    await ctx.close();
  }
  await cleanedUp();
});

test('a loop run (2 workers) with eval.server.reload: at most one server start per worker, the run completes, nothing left behind', async () => {
  const { runLoop } = await import('../loop/controller.ts');
  const { RunStore } = await import('../store/store.ts');
  const { readFileSync, existsSync } = await import('node:fs');
  const starts = join(PRIV, 'starts.log');
  const cfg = await config({ command: `echo "$PORT" >> ${JSON.stringify(starts)}; exec ${SERVE}`, model: 'merged', readyTimeoutSec: 60, url: 'http://127.0.0.1:$PORT/v1', reload: true }, {
    iterations: 1, samplesPerIteration: 3, workers: 2, topKTest: 1, selectTopK: 1, baselines: { lambdas: [0.5] }, arm: 'random',
  });
  const runDir = join(PRIV, 'run');
  await runLoop(cfg, runDir, { root: ROOT });
  const store = RunStore.open(runDir, { readonly: true });
  let scored = 0;
  try {
    assert.equal(store.iterations()[0]!.status, 'done');
    scored = store.leaderboard(10).filter((x) => x.devStrict !== null).length;
  } finally {
    store.close();
  }
  assert.ok(scored >= 1, 'some program was scored');
  const n = existsSync(starts) ? readFileSync(starts, 'utf8').trim().split('\n').length : 0;
  assert.ok(n >= 1 && n <= 2, `${n} server starts for 2 workers`);
  await cleanedUp(15_000);
});

test('a server that died between candidates is started again for the next one', async () => {
  const cfg = await config({ ...SERVER, reload: true });
  const ctx = await openEvalContext(cfg, ROOT);
  const pgids: number[] = [];
  const session = new ServerSession(cfg.eval.server!, (p) => pgids.push(p.pgid));
  try {
    const ev = memoryEvaluator(ctx);
    const o = { server: cfg.eval.server!, seedDir: ev.seedDir, config: ev.world.config, weights: ev.world.taskArithmetic(0.5), problems: ctx.sets.subset, maxTokens: 12, calculator: true };
    const first = await session.evaluate(o);
    process.kill(-pgids[0]!, 'SIGKILL');
    for (let i = 0; i < 100 && liveProcesses().some((p) => p.pgid === pgids[0]); i++) await new Promise((r) => setTimeout(r, 50));
    const again = await session.evaluate(o);
    assert.deepEqual([again.starts, again.reloads], [1, 0]);
    assert.equal(again.result.strict, first.result.strict);
    assert.equal(pgids.length, 2);
    const third = await session.evaluate(o);
    assert.deepEqual([third.starts, third.reloads], [0, 1]);
  } finally {
    await session.close();
    await ctx.close();
  }
  await cleanedUp();
});
