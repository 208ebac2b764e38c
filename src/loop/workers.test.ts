import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { liveProcesses, makeTempDir } from '../io/testing.ts';
import { RunStore } from '../store/store.ts';
import { runLoop } from './controller.ts';
import { makeMicroWorld, runSnapshot as snapshot } from './testing.ts';

// one micro world for this file: 2 experts trained on disjoint problems (non-trivial scores), 1 OOD expert
const shared = makeTempDir('selfdev-workers-world-');
const worldP = makeMicroWorld(shared.path, { nExperts: 2, nOod: 1, nDev: 4, nTest: 4, trainSteps: 60 });
process.on('exit', () => shared.cleanup());

const config = async (o: Record<string, unknown> = {}) => ({
  name: 'workers', seed: 3, iterations: 1, samplesPerIteration: 8, tensorFilter: 'all',
  eval: { devSubset: 2, maxTokens: 10, batchSize: 8, promoteTopFraction: 0.5 }, topKTest: 4, pWin: 0.2, pLose: 0.4,
  baselines: { lambdas: [0.5] },
  world: { ...(await worldP), algorithms: 'algorithms', example: 'algorithms/task_arithmetic.js' },
  ...o,
});

/** Loop worker processes that are children of this process. */
function workerChildren(): number[] {
  return liveProcesses().filter((p) => p.ppid === process.pid && /src\/loop\/worker\.ts/.test(p.args)).map((p) => p.pid);
}

test('workers 1 and 2 give the same evaluations, leaderboard, pairs, baselines and transfers; the workers are gone afterwards', async () => {
  const tmp = makeTempDir('selfdev-workers-');
  try {
    const cfg = await config();
    const one = await runLoop({ ...cfg, workers: 1 }, join(tmp.path, 'w1'));
    let during = -1;
    const two = await runLoop({ ...cfg, workers: 2 }, join(tmp.path, 'w2'), {
      onEvent: (e) => {
        if (e.type === 'evaluated' && during < 0) during = workerChildren().length;
      },
    });
    assert.equal(during, 2, 'two worker processes ran while the run evaluated (the process listing sees them)');
    assert.deepEqual(workerChildren(), [], 'no worker process outlives its run');
    const a = snapshot(join(tmp.path, 'w1'));
    const b = snapshot(join(tmp.path, 'w2'));
    assert.ok(a.evals.length >= 4 && a.evals.every((e) => e !== undefined), 'every sampled program was evaluated');
    assert.ok(a.lb.length >= 2, 'several valid programs');
    assert.ok(a.lb.some((r) => ((r[3] as number | null) ?? 0) > 0), 'non-trivial scores (the comparison is not all zeros)');
    assert.ok(a.lb.filter((r) => r[3] !== null).length >= 2, 'more than one program promoted to full dev (promotion ran in parallel)');
    assert.ok(a.lb.filter((r) => r[5] !== null).length >= 2, 'more than one program has a test score (test stage ran in parallel)');
    assert.ok(a.tr.length >= 1);
    assert.deepEqual(b, a);
    assert.deepEqual(two.leaderboard.map((r) => [r.hash, r.devStrict, r.testStrict]), one.leaderboard.map((r) => [r.hash, r.devStrict, r.testStrict]));
    assert.equal(two.best?.hash, one.best?.hash);
  } finally {
    tmp.cleanup();
  }
});

test('workers 2: an abort stops the run at once, kills the workers, keeps finished evaluations, and a resume completes', async () => {
  const tmp = makeTempDir('selfdev-workers-');
  try {
    const cfg = await config({ workers: 2 });
    const runDir = join(tmp.path, 'run');
    const ac = new AbortController();
    const first: string[] = [];
    await assert.rejects(
      runLoop(cfg, runDir, {
        signal: ac.signal,
        onEvent: (e) => {
          if (e.type === 'evaluated' && !e.cached) {
            first.push(e.hash);
            ac.abort();
          }
        },
      }),
      /aborted/,
    );
    assert.deepEqual(workerChildren(), [], 'the workers were killed with the aborted run');
    const s = RunStore.open(runDir, { readonly: true });
    const kept = new Set(s.samples(s.iteration(1)!.id).map((x) => x.hash).filter((h) => s.evaluationFor(h)));
    assert.equal(s.run().status, 'interrupted');
    s.close();
    assert.ok(first.length >= 1 && first.every((h) => kept.has(h)), 'evaluations reported before the abort are in the store');
    const again: string[] = [];
    const r = await runLoop(undefined, runDir, { onEvent: (e) => e.type === 'evaluated' && !e.cached && again.push(e.hash) });
    for (const h of again) assert.ok(!kept.has(h), `program ${h} was evaluated again after resume`);
    assert.ok(r.leaderboard.length > 0);
    assert.deepEqual(workerChildren(), []);
  } finally {
    tmp.cleanup();
  }
});
