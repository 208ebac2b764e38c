/**
 * Distributed evaluation for real: a private redis-server, `selfdev worker` processes (each running
 * its jobs in a child), the loop's controller, a micro world. Every test uses its own Redis database
 * (the job ids of one world are the same in every test), and asserts the store's final rows.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { copyFileSync, cpSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { deriveSeed, runLoop } from '../loop/controller.ts';
import { resolveConfig, type Arm } from '../loop/config.ts';
import { runExperiment } from '../loop/experiment.ts';
import { runSnapshot } from '../loop/testing.ts';
import { RunStore } from '../store/store.ts';
import { evalSpecOf, jobIdOf, makeMessage } from './message.ts';
import { QueueRunner } from './queue-runner.ts';
import { distributedFixture, dupes, openQueue, queueCounts, startWorker, startedJobs, stopWorkers, type WorkerHandle } from './testing.ts';

const fx = distributedFixture('distributed');
const { root, worldP, db, config, local } = fx;

test('queue run with 2 workers: the same evaluations, leaderboard, pairs, baselines and transfers as a local workers: 2 run; every job run once', async () => {
  const ref = await local();
  assert.ok(ref.lb.some((r) => ((r[3] as number | null) ?? 0) > 0), 'non-trivial scores (the comparison is not all zeros)');
  assert.ok(ref.tr.length >= 1 && ref.base.length >= 2);
  const url = await db(1);
  const ws = [startWorker(url, root), startWorker(url, root)];
  try {
    const t0 = performance.now();
    const dir = join(fx.tmp, 'queued');
    await runLoop(await config(), dir, { root, queue: url });
    const ms = performance.now() - t0;
    assert.deepEqual(runSnapshot(dir), ref);
    // the store and the report say which worker scored each program
    const names = new Set(ws.map((w) => `${hostname()}:${w.child.pid}`));
    const st = RunStore.open(dir, { readonly: true });
    const seen = new Set<string>();
    try {
      for (const x of st.samples(st.iteration(1)!.id)) {
        const e = st.evaluationFor(x.hash)!;
        if (e.verdict === 'extract') continue; // never a job
        assert.ok(names.has(e.scoredBy ?? ''), `program ${x.hash} scored by ${e.scoredBy}`);
        seen.add(e.scoredBy!);
      }
    } finally {
      st.close();
    }
    assert.match(readFileSync(join(dir, 'report.html'), 'utf8'), new RegExp(`Scored by ${seen.size} queue workers?: `));
    const a = startedJobs(ws[0]!.lines);
    const b = startedJobs(ws[1]!.lines);
    assert.ok(a.length > 0 && b.length > 0, `both workers took jobs (${a.length}, ${b.length})`);
    assert.deepEqual(dupes([...a, ...b]), [], 'no job ran twice');
    const c = await queueCounts(url);
    assert.equal(c.completed, a.length + b.length);
    assert.equal(c.failed, 0);
    process.stdout.write(`# queue run: ${c.completed} jobs on 2 workers in ${(ms / 1000).toFixed(1)} s\n`);
  } finally {
    await stopWorkers(ws);
  }
});

test('a worker SIGKILLed mid-job: the job is rerun by another worker, one row per program, same scores as local', async () => {
  const ref = await local();
  const url = await db(2);
  const cfg = { ...(await config()), distributed: { url, lockDurationMs: 2000, attempts: 2 } };
  const a = startWorker(url, root);
  let b: WorkerHandle | null = null;
  try {
    const run = runLoop(cfg, join(fx.tmp, 'killed-worker'), { root });
    const line = await a.waitFor(/ job \S+ start /);
    a.child.kill('SIGKILL'); // mid-job: its first job waits for the evaluation child to load
    const killedJob = / job (\S+) start /.exec(line)![1]!;
    assert.equal((await a.exited).signal, 'SIGKILL');
    b = startWorker(url, root);
    await run;
    assert.deepEqual(runSnapshot(join(fx.tmp, 'killed-worker')), ref);
    const ranByB = startedJobs(b.lines);
    assert.ok(ranByB.includes(killedJob), `the killed worker's job ${killedJob} was rerun by the other worker`);
    assert.deepEqual(dupes(ranByB), []);
    assert.equal((await queueCounts(url)).failed, 0);
  } finally {
    await stopWorkers([a, ...(b ? [b] : [])]);
  }
});

test('controller kill -9 mid-run and resume: jobs that finished while it was down are read back, not rerun; same scores as local', async () => {
  const ref = await local();
  const url = await db(3);
  const ws = [startWorker(url, root), startWorker(url, root)];
  const runDir = join(fx.tmp, 'killed-controller');
  const cfgPath = join(fx.tmp, 'killed-controller.json');
  writeFileSync(cfgPath, JSON.stringify(await config()));
  try {
    const child = spawn(process.execPath, ['--import', 'tsx', new URL('./controller-child.ts', import.meta.url).pathname, cfgPath, runDir, root, url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stderr.on('data', (d) => (out += d));
    let seen = 0;
    let finished = false;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`controller made ${seen} evaluations in 90 s; stderr: ${out}`)), 90_000);
      child.stdout.on('data', (d: Buffer) => {
        seen += (d.toString().match(/^evaluated /gm) ?? []).length;
        if (/finished/.test(d.toString())) finished = true;
        if (seen >= 3) {
          child.kill('SIGKILL');
          clearTimeout(timer);
          resolve();
        }
      });
      child.on('exit', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    await new Promise((r) => child.once('close', r));
    assert.ok(!finished, 'the controller was killed before finishing');
    // the workers finish what the dead controller had queued
    for (let i = 0; i < 300; i++) {
      const c = await queueCounts(url);
      if (c.waiting + c.active + c.delayed + c.prioritized === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const ranBefore = [...startedJobs(ws[0]!.lines), ...startedJobs(ws[1]!.lines)];
    const s = RunStore.open(runDir, { readonly: true });
    const recorded = s.samples(s.iteration(1)!.id).filter((x) => s.evaluationFor(x.hash)).length;
    s.close();
    assert.ok(ranBefore.length > recorded, `jobs finished after the kill that the store does not hold yet (${ranBefore.length} run, ${recorded} recorded)`);

    const cfg = resolveConfig(await config());
    const runner = await QueueRunner.open({ cfg, root, url, maxInFlight: 16, lockDurationMs: 30_000, attempts: 2 });
    await runLoop(undefined, runDir, { root, runner });
    assert.ok(runner.stats.existing >= ranBefore.length - recorded, `the resumed controller read back the jobs finished while it was down (${runner.stats.existing} read back)`);
    const all = [...startedJobs(ws[0]!.lines), ...startedJobs(ws[1]!.lines)];
    assert.deepEqual(dupes(all), [], 'no job ran twice');
    assert.deepEqual(runSnapshot(runDir), ref);
  } finally {
    await stopWorkers(ws);
  }
});

test('duplicate adds: the same job added 4 times by 2 controllers runs once and all get the same result', async () => {
  const url = await db(4);
  const cfg = resolveConfig(await config());
  const w = startWorker(url, root);
  const r1 = await QueueRunner.open({ cfg, root, url, maxInFlight: 4, lockDurationMs: 30_000, attempts: 2 });
  const r2 = await QueueRunner.open({ cfg, root, url, maxInFlight: 4, lockDurationMs: 30_000, attempts: 2 });
  try {
    const job = { code: 'function merge(taskVectors, ctx) {\n  return taskVectors[0].mul(0.5).add(taskVectors[1].mul(0.5));\n}', seed: 11, set: 'dev' as const };
    const rs = await Promise.all([r1.run(job), r1.run(job), r1.run(job), r2.run(job)]);
    assert.equal(rs[0]!.ok, true);
    for (const r of rs) assert.deepEqual(r, rs[0]);
    assert.deepEqual(startedJobs(w.lines), [r1.idOf(job)], 'one execution');
    assert.ok(r1.stats.added + r2.stats.added <= 2, 'one add request per controller (the repeats share the wait)');
    const c = await queueCounts(url);
    assert.deepEqual([c.completed, c.failed, c.waiting, c.active], [1, 0, 0, 0], 'one job in the queue');
    // asking again later reads the stored result back
    assert.deepEqual(await r2.run(job), rs[0]);
    assert.equal(startedJobs(w.lines).length, 1);
    // selfdev queue status sees the job and the live worker
    const st = spawnSync(process.execPath, [fileURLToPath(new URL('../../bin/selfdev.mjs', import.meta.url)), 'queue', 'status', url, '--json'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(st.status, 0, st.stderr);
    const status = JSON.parse(st.stdout) as { counts: Record<string, number>; workers: unknown[]; settings: { lockDurationMs: number } };
    assert.deepEqual(status.counts, { waiting: 0, active: 0, delayed: 0, completed: 1, failed: 0 });
    assert.equal(status.workers.length, 1);
    assert.equal(status.settings.lockDurationMs, 30_000);
  } finally {
    await r1.close();
    await r2.close();
    await stopWorkers([w]);
  }
});

test('fingerprint mismatch and malformed messages: the job fails at once with the reason, is never executed nor retried; a resume with a matching worker finishes', async () => {
  const ref = await local();
  const url = await db(5);
  const world = await worldP;
  const other = join(fx.tmp, 'other-root');
  cpSync(root, other, { recursive: true, verbatimSymlinks: true });
  copyFileSync(join(other, world.experts[0]!, 'model.safetensors'), join(other, world.experts[1]!, 'model.safetensors'));
  const bad = startWorker(url, other);
  const runDir = join(fx.tmp, 'mismatch');
  let good: WorkerHandle | null = null;
  try {
    await assert.rejects(runLoop(await config(), runDir, { root, queue: url }), new RegExp(`failed on the queue: refused by worker \\S+: fingerprint mismatch: ${world.experts[1]!.replace(/[/.]/g, '\\$&')} resolves to `));
    assert.ok(!bad.lines.some((l) => / done /.test(l)), 'nothing was evaluated');
    const refused = startedJobs(bad.lines);
    assert.ok(refused.length >= 1);
    const { q, done } = openQueue(url);
    try {
      const j = (await q.getJob(refused[0]!))!;
      assert.equal(await j.getState(), 'failed');
      assert.equal(j.attemptsMade, 1, 'not retried (the job allows 2 attempts)');
      // a malformed message
      await q.add('eval', { v: 1, junk: true }, { jobId: 'evmalformed1', attempts: 3 });
      let m = await q.getJob('evmalformed1');
      for (let i = 0; i < 100 && (await m!.getState()) !== 'failed'; i++) {
        await new Promise((r) => setTimeout(r, 100));
        m = await q.getJob('evmalformed1');
      }
      assert.equal(await m!.getState(), 'failed');
      assert.match(m!.failedReason, /refused by worker \S+: malformed job message: the message has an unknown key "junk"/);
      assert.equal(m!.attemptsMade, 1);
    } finally {
      await done();
    }
    await stopWorkers([bad]);
    good = startWorker(url, root);
    await runLoop(undefined, runDir, { root, queue: url });
    assert.deepEqual(runSnapshot(runDir), ref);
  } finally {
    await stopWorkers([bad, ...(good ? [good] : [])]);
  }
});

test('--exit-when-idle: a worker with nothing to do exits 0 by itself, also when no controller has used the queue yet', async () => {
  const url = await db(6);
  const w = startWorker(url, root, ['--exit-when-idle', '1']);
  const r = await w.exited;
  assert.equal(r.code, 0, w.lines.join('\n'));
  assert.ok(w.lines.some((l) => /idle before any controller came; exiting/.test(l)), w.lines.join('\n'));
});

test('experiment on the queue (arms dpo,random × 2 repeats): each run under its own job ids although the arms sample the same programs; interrupted and resumed; the same runs and summary as a local experiment', { timeout: 1_200_000 }, async () => {
  const url = await db(7);
  const base = { ...(await config()), name: 'exp', samplesPerIteration: 4, topKTest: 2 };
  const arms: Arm[] = ['dpo', 'random'];
  const localDir = join(fx.tmp, 'exp-local');
  const t0 = performance.now();
  await runExperiment({ ...base, workers: 2 }, localDir, { arms, repeats: 2, root });
  const tLocal = performance.now() - t0;
  const ws = [startWorker(url, root), startWorker(url, root)];
  const dir = join(fx.tmp, 'exp-queue');
  try {
    // interrupted in its second run, once that run has recorded 2 evaluations
    const ac = new AbortController();
    let seen = 0;
    await assert.rejects(
      runExperiment(base, dir, { arms, repeats: 2, root, queue: url, signal: ac.signal, onEvent: (e) => {
        if (e.type === 'loop' && e.arm === 'random' && e.event.type === 'evaluated' && ++seen === 2) ac.abort();
      } }),
      /aborted/,
    );
    // resumed with the same config plus a distributed block (not a config change; --queue overrides its url)
    const states: string[] = [];
    const summary = await runExperiment({ ...base, distributed: { url: 'redis://127.0.0.1:1/0', attempts: 3 } }, dir, { arms, repeats: 2, root, queue: url, onEvent: (e) => {
      if (e.type === 'run') states.push(`${e.arm}/r${e.repeat} ${e.state}`);
    } });
    assert.deepEqual(states, ['dpo/r0 skip', 'random/r0 resume', 'dpo/r1 start', 'random/r1 start']);
    for (const arm of arms) for (const k of [0, 1]) assert.deepEqual(runSnapshot(join(dir, arm, `r${k}`)), runSnapshot(join(localDir, arm, `r${k}`)), `${arm}/r${k} as in the local experiment`);
    assert.deepEqual(summary, JSON.parse(readFileSync(join(localDir, 'summary.json'), 'utf8')));

    // every job ran once, on the queue; each run's screening jobs carry its namespace
    const started = [...startedJobs(ws[0]!.lines), ...startedJobs(ws[1]!.lines)];
    assert.deepEqual(dupes(started), [], 'no job ran twice (the interrupted run read its finished jobs back)');
    const c = await queueCounts(url);
    assert.deepEqual([c.completed, c.failed], [started.length, 0]);
    const screening = (arm: Arm, k: number) => {
      const st = RunStore.open(join(dir, arm, `r${k}`), { readonly: true });
      try {
        const cfg = resolveConfig(st.getRun()!.config);
        const spec = evalSpecOf(cfg, root);
        return new Map(st.samples(st.iteration(1, arm)!.id).filter((x) => st.evaluationFor(x.hash)?.verdict !== 'extract').map((x) => [x.hash, jobIdOf(makeMessage(spec, { code: st.programByHash(x.hash)!.code, seed: deriveSeed(cfg.seed, `program:${x.hash}`), set: 'subset' }, root, undefined, `${arm}/r${k}`))]));
      } finally {
        st.close();
      }
    };
    const runs = arms.flatMap((arm) => [0, 1].map((k) => screening(arm, k)));
    for (const r of runs) for (const id of r.values()) assert.ok(started.includes(id), `screening job ${id} ran on the queue`);
    const [dpo0, , random0] = [runs[0]!, runs[1]!, runs[2]!];
    const shared = [...dpo0.keys()].filter((h) => random0.has(h));
    assert.ok(shared.length >= 2, `the two arms of repeat 0 sampled the same programs (${shared.length} shared): the case where ids could collide`);
    for (const h of shared) assert.notEqual(dpo0.get(h), random0.get(h), `program ${h}: one job per arm`);
    assert.equal(new Set(runs.flatMap((r) => [...r.values()])).size, runs.reduce((n, r) => n + r.size, 0), 'no two runs share a screening job');
    process.stdout.write(`# experiment: local (workers: 2) ${(tLocal / 1000).toFixed(1)} s; on the queue ${((performance.now() - t0 - tLocal) / 1000).toFixed(1)} s, ${started.length} jobs, ${shared.length} programs shared by dpo/r0 and random/r0\n`);
  } finally {
    await stopWorkers(ws);
  }
});

test.after(async () => {
  await (await fx.redisP).stop();
});
