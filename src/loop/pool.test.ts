import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeTempDir } from '../io/testing.ts';
import { resolveConfig } from './config.ts';
import { makeMicroWorld, processAlive as alive } from './testing.ts';
import { openEvalContext, runJob, WorkerPool, type EvalJob } from './pool.ts';


test('worker pool: results equal the in-process ones; a worker killed mid-job is replaced and the job retried; two deaths give verdict crash; close kills all', async () => {
  const tmp = makeTempDir('selfdev-pool-');
  try {
    const w = await makeMicroWorld(tmp.path, { nExperts: 2, nOod: 0, nDev: 4, nTest: 4, trainSteps: 60 });
    const cfg = resolveConfig({ tensorFilter: 'all', eval: { devSubset: 2, maxTokens: 10, batchSize: 8 }, world: { ...w } });
    // expert 0's task vector alone answers some problems (a non-zero score to compare)
    const retried: EvalJob = { code: 'function merge(tv, ctx) { return tv[0]; }', seed: 11, set: 'dev' };
    const doomed: EvalJob = { code: 'function merge(tv, ctx) { return tv[1].mul(0.9); }', seed: 12, set: 'subset' };
    const plain: EvalJob = { code: 'function merge(tv, ctx) { return torch.stack(tv).mean(0); }', seed: 13, set: 'test' };
    const broken: EvalJob = { code: 'function merge(tv, ctx) { return tv[0].reshape([7]); }', seed: 14, set: 'subset' };
    const ctx = await openEvalContext(cfg, process.cwd());
    const ref = await Promise.all([retried, plain, broken].map((j) => runJob(ctx, j)));
    ctx.close();
    assert.ok(ref[0]!.ok && ref[0].scores.strict > 0, 'the reference scores above 0');
    assert.ok(!ref[2]!.ok, 'the broken program fails the cascade');

    const seen: number[] = [];
    const pool = new WorkerPool(2, cfg, process.cwd(), {
      onDispatch: (pid, job) => {
        seen.push(pid);
        if (job === retried && seen.length === 1) process.kill(pid, 'SIGKILL'); // first attempt only
        if (job === doomed) process.kill(pid, 'SIGKILL'); // every attempt
      },
    });
    try {
      // `retried` goes first so that the first dispatch is its first attempt
      const out = await Promise.all([retried, doomed, plain, broken].map((j) => pool.run(j)));
      const strip = (r: (typeof out)[number]) => (r.ok ? { ok: true, scores: r.scores } : { ok: false, verdict: r.verdict, message: r.message });
      assert.deepEqual(strip(out[0]!), strip(ref[0]!), 'the retried job gives the in-process result');
      assert.deepEqual(strip(out[2]!), strip(ref[1]!));
      assert.deepEqual(strip(out[3]!), strip(ref[2]!));
      assert.ok(!out[1]!.ok && out[1].verdict === 'crash' && /died twice/.test(out[1].message), JSON.stringify(out[1]));
      assert.equal(pool.crashes, 3);
      assert.equal(pool.spawns, 2 + 3, 'one replacement per death');
      assert.equal(pool.pids().length, 2);
    } finally {
      const pids = pool.pids();
      await pool.close();
      assert.ok(pids.every((p) => !alive(p)), 'close() kills the workers');
    }
    await assert.rejects(pool.run(plain), /closed/);
  } finally {
    tmp.cleanup();
  }
});

test('worker pool: a world that cannot load fails every job with the loading error (no respawn loop)', async () => {
  const cfg = resolveConfig({ world: { seedModel: '/nonexistent/seed', experts: ['/nonexistent/e'] } });
  const pool = new WorkerPool(2, cfg, process.cwd());
  try {
    await assert.rejects(pool.run({ code: 'function merge(tv) { return tv[0]; }', seed: 1, set: 'subset' }), /evaluation worker could not start: .*nonexistent/);
    assert.equal(pool.spawns, 2);
  } finally {
    await pool.close();
  }
});
