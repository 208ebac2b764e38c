import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { liveProcesses, makeTempDir } from '../io/testing.ts';
import { RunStore } from '../store/store.ts';
import { runLoop } from './controller.ts';
import { makeMicroWorld, processAlive as alive } from './testing.ts';

/** Evaluation worker processes whose parent is `ppid`. */
function loopWorkers(ppid: number): number[] {
  return liveProcesses().filter((p) => p.ppid === ppid && /src\/loop\/worker\.ts/.test(p.args)).map((p) => p.pid);
}

test('kill -9 mid-run (2 evaluation workers) and resume: same final leaderboard as an uninterrupted run with 1; no finished program evaluated twice; orphaned workers exit', async () => {
  const here = new URL('.', import.meta.url).pathname;
  const tmp = makeTempDir('selfdev-loop-');
  try {
    const w = await makeMicroWorld(tmp.path, { nExperts: 2, nOod: 0, nDev: 4, nTest: 4, trainSteps: 60 });
    const cfg = {
      name: 'resume', seed: 3, iterations: 2, samplesPerIteration: 6, tensorFilter: 'all',
      eval: { devSubset: 2, maxTokens: 10, batchSize: 8 }, topKTest: 4, pWin: 0.2, pLose: 0.4,
      baselines: { lambdas: [0.5] },
      world: { ...w, algorithms: 'algorithms', example: 'algorithms/task_arithmetic.js' },
      workers: 2,
    };
    const cfgPath = join(tmp.path, 'cfg.json');
    writeFileSync(cfgPath, JSON.stringify(cfg));
    const killedDir = join(tmp.path, 'killed');
    const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'resume-child.ts'), cfgPath, killedDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    let seen = 0;
    let finished = false;
    let workers: number[] = [];
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`child made ${seen} evaluations in 60 s; stderr: ${stderr}`)), 60_000);
      child.stdout.on('data', (d: Buffer) => {
        seen += (d.toString().match(/^evaluated /gm) ?? []).length;
        if (/finished/.test(d.toString())) finished = true;
        if (seen >= 3) {
          workers = loopWorkers(child.pid!);
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
    await new Promise((r) => child.once('exit', r).once('close', r));
    assert.ok(!finished, 'the child was killed before finishing');
    assert.equal(workers.length, 2, 'the child ran 2 evaluation workers');
    for (let i = 0; i < 100 && workers.some(alive); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(!workers.some(alive), 'the workers of a killed run exit by themselves');
    const before = RunStore.open(killedDir, { readonly: true });
    const doneBefore = new Set(before.iterations().flatMap((it) => before.samples(it.id).map((s) => s.hash)).filter((h) => before.evaluationFor(h)));
    before.close();
    assert.ok(doneBefore.size >= 3, `at least 3 evaluations recorded before the kill (got ${doneBefore.size})`);

    const fresh: string[] = [];
    const resumed = await runLoop(undefined, killedDir, { onEvent: (e) => e.type === 'evaluated' && !e.cached && fresh.push(e.hash) });
    for (const h of fresh) assert.ok(!doneBefore.has(h), `program ${h} was evaluated again after resume`);
    const straight = await runLoop(cfg, join(tmp.path, 'straight'), { workers: 1 });
    const key = (r: typeof straight) => r.leaderboard.map((x) => [x.hash, x.devSubset, x.devStrict, x.testStrict]);
    assert.ok(straight.leaderboard.length > 0);
    assert.ok(straight.leaderboard.some((x) => (x.devSubset ?? 0) > 0), 'non-trivial scores (the comparison is not all zeros)');
    assert.deepEqual(key(resumed), key(straight));
    assert.equal(resumed.best?.hash, straight.best?.hash);
    // same sampled batches
    const a = RunStore.open(killedDir, { readonly: true });
    const b = RunStore.open(join(tmp.path, 'straight'), { readonly: true });
    try {
      for (const t of [1, 2]) assert.deepEqual(a.samples(a.iteration(t)!.id).map((s) => s.hash), b.samples(b.iteration(t)!.id).map((s) => s.hash));
    } finally {
      a.close();
      b.close();
    }
  } finally {
    tmp.cleanup();
  }
});
