/**
 * Distributed evaluation under faults, for real (private redis-server with appendonly and fsync
 * always, `selfdev worker` processes, a micro world): a worker SIGTERMed mid-job, a job whose
 * worker is killed on every attempt, a worker blocked past its lock, the broker killed and
 * restarted mid-run, the broker's data wiped mid-run. Each test uses its own Redis database and asserts the store's final rows.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { runLoop } from '../loop/controller.ts';
import { resolveConfig } from '../loop/config.ts';
import { runSnapshot } from '../loop/testing.ts';
import { RunStore } from '../store/store.ts';
import { programHash } from '../store/util.ts';
import { QueueRunner } from './queue-runner.ts';
import { distributedFixture, dupes, openQueue, queueCounts, startWorker, startedJobs, stopWorkers, type WorkerHandle } from './testing.ts';

const fx = distributedFixture('faults', { aof: true });
const { root, db, config, local } = fx;

/** Resolves when the workers together have started `n` jobs. */
async function startsReach(ws: WorkerHandle[], n: number, ms = 60_000): Promise<void> {
  const t0 = Date.now();
  while (ws.reduce((k, w) => k + startedJobs(w.lines).length, 0) < n) {
    if (Date.now() - t0 > ms) throw new Error(`fewer than ${n} jobs started in ${ms} ms:\n${ws.map((w) => w.lines.join('\n')).join('\n---\n')}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('a worker SIGTERMed mid-job finishes that job, takes no other, exits 0; the run finishes on another worker with the local scores', async () => {
  const ref = await local();
  const url = await db(1);
  const a = startWorker(url, root);
  let b: WorkerHandle | null = null;
  try {
    const run = runLoop(await config(), join(fx.tmp, 'sigterm'), { root, queue: url });
    const line = await a.waitFor(/ job \S+ start /);
    const job = / job (\S+) start /.exec(line)![1]!;
    a.child.kill('SIGTERM');
    b = startWorker(url, root);
    assert.equal((await a.exited).code, 0, a.lines.join('\n'));
    await run;
    assert.deepEqual(startedJobs(a.lines), [job], 'the stopping worker took no other job');
    assert.ok(a.lines.some((l) => l.includes(`job ${job} done`)), `it finished its job:\n${a.lines.join('\n')}`);
    assert.ok(a.lines.some((l) => /stopping: no new jobs/.test(l)));
    assert.ok(!startedJobs(b.lines).includes(job), 'the finished job was not run again');
    assert.deepEqual(runSnapshot(join(fx.tmp, 'sigterm')), ref);
  } finally {
    await stopWorkers([a, ...(b ? [b] : [])]);
  }
});

test('a job whose worker is killed on every attempt gets the verdict crash; the run goes on and every other program keeps its local score', async () => {
  const ref = await local();
  const url = await db(2);
  const runDir = join(fx.tmp, 'crash');
  const cfg = { ...(await config()), distributed: { url, lockDurationMs: 2000, attempts: 2 } };
  const ws: WorkerHandle[] = [startWorker(url, root)];
  try {
    const run = runLoop(cfg, runDir, { root });
    const first = await ws[0]!.waitFor(/ job \S+ start /);
    const job = / job (\S+) start /.exec(first)![1]!;
    ws[0]!.child.kill('SIGKILL');
    ws.push(startWorker(url, root));
    await ws[1]!.waitFor(new RegExp(` job ${job} start `), 60_000); // redelivered after the lock lapsed
    ws[1]!.child.kill('SIGKILL');
    ws.push(startWorker(url, root));
    await run;
    const { q, done } = openQueue(url);
    let code: string;
    try {
      const j = (await q.getJob(job))!;
      assert.equal(await j.getState(), 'failed');
      assert.match(j.failedReason, /stalled more than allowable limit/);
      code = (j.data as { job: { code: string } }).job.code;
    } finally {
      await done();
    }
    assert.ok(!startedJobs(ws[2]!.lines).includes(job) || !ws[2]!.lines.some((l) => l.includes(`job ${job} done`)), 'the third worker did not evaluate it');
    const s = RunStore.open(runDir, { readonly: true });
    try {
      assert.equal(s.run().status, 'done');
      const e = s.evaluationFor(programHash(code))!;
      assert.equal(e.verdict, 'crash');
      assert.match(e.message ?? '', /the queue worker died or lost its lock on every one of 2 attempt\(s\)/);
    } finally {
      s.close();
    }
    const mine = runSnapshot(runDir);
    const crashed = programHash(code);
    const subsetOf = (ev: typeof mine.evals) => ev.filter((e) => e && e[0] !== crashed).map((e) => [e![0], e![1], e![3]]);
    assert.deepEqual(subsetOf(mine.evals), subsetOf(ref.evals), 'every other program has its local screening score');
    assert.ok(mine.lb.length > 0);
  } finally {
    await stopWorkers(ws);
  }
});

test('a worker blocked past its lock (SIGSTOP): the job is rerun elsewhere; its late completion is rejected and changes nothing', async () => {
  const ref = await local();
  const url = await db(5);
  const runDir = join(fx.tmp, 'blocked');
  const a = startWorker(url, root);
  let b: WorkerHandle | null = null;
  try {
    const run = runLoop({ ...(await config()), distributed: { url, lockDurationMs: 2000, attempts: 3 } }, runDir, { root });
    const line = await a.waitFor(/ job \S+ start /);
    const job = / job (\S+) start /.exec(line)![1]!;
    a.child.kill('SIGSTOP'); // its event loop stops: no lock renewal (its evaluation child goes on)
    b = startWorker(url, root);
    await b.waitFor(new RegExp(` job ${job} done `), 60_000);
    a.child.kill('SIGCONT');
    await a.waitFor(new RegExp(` job ${job} done `), 60_000); // the late result, which BullMQ refuses (lock lost)
    await run;
    assert.deepEqual(runSnapshot(runDir), ref);
    const c = await queueCounts(url);
    assert.equal(c.failed, 0);
    const { q, done } = openQueue(url);
    try {
      const j = (await q.getJob(job))!;
      assert.equal(await j.getState(), 'completed');
      assert.match(String((j.returnvalue as { worker: string }).worker), new RegExp(`:${b.child.pid}$`), 'the stored result is the rerun\'s');
    } finally {
      await done();
    }
  } finally {
    a.child.kill('SIGCONT');
    await stopWorkers([a, ...(b ? [b] : [])]);
  }
});

test('the broker killed (SIGKILL) and restarted mid-run with appendonly: nothing lost, no job failed, the local scores', async () => {
  const ref = await local();
  const redis = await fx.redisP;
  const url = await db(3);
  const ws = [startWorker(url, root), startWorker(url, root)];
  try {
    const runDir = join(fx.tmp, 'broker-restart');
    const run = runLoop(await config(), runDir, { root, queue: url });
    await startsReach(ws, 4);
    await redis.kill();
    await new Promise((r) => setTimeout(r, 300));
    await redis.restart();
    await run;
    assert.deepEqual(runSnapshot(runDir), ref);
    const c = await queueCounts(url);
    assert.equal(c.failed, 0);
    const ran = [...startedJobs(ws[0]!.lines), ...startedJobs(ws[1]!.lines)];
    assert.equal(c.completed, new Set(ran).size, 'every job that ran is in the queue as completed');
  } finally {
    await stopWorkers(ws);
  }
});

test('the broker data wiped (FLUSHDB) mid-run: the controller adds the pending jobs again by id and finishes with the local scores', async () => {
  const ref = await local();
  const url = await db(4);
  const ws = [startWorker(url, root), startWorker(url, root)];
  const runner = await QueueRunner.open({ cfg: resolveConfig(await config()), root, url, maxInFlight: 16, lockDurationMs: 30_000, attempts: 2, pollMs: 300 });
  const admin = new Redis(url, { maxRetriesPerRequest: null });
  try {
    const runDir = join(fx.tmp, 'flushed');
    const run = runLoop(await config(), runDir, { root, runner });
    await startsReach(ws, 3);
    await admin.flushdb();
    await run;
    assert.ok(runner.stats.readded >= 1, `jobs added again after the wipe (${runner.stats.readded})`);
    assert.deepEqual(runSnapshot(runDir), ref);
    const ran = [...startedJobs(ws[0]!.lines), ...startedJobs(ws[1]!.lines)];
    assert.ok(dupes(ran).length <= runner.stats.readded, 'only jobs lost with the wipe ran again');
  } finally {
    admin.disconnect();
    await stopWorkers(ws);
  }
});

test.after(async () => {
  await (await fx.redisP).stop();
});
