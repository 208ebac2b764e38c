import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from '../io/testing.ts';
import { RunStore } from '../store/store.ts';
import { runLoop } from './controller.ts';
import { makeMicroWorld } from './testing.ts';
import { MergeWorld } from '../merge/world.ts';
import { Sandbox, makeMergeFunction } from '../sandbox/index.ts';
import { bestBySelection } from './selection.ts';

// one micro world for this file: a random-init seed, 2 experts trained on disjoint problems, 1 OOD expert
const shared = makeTempDir('selfdev-loop-world-');
const worldP = makeMicroWorld(shared.path, { nExperts: 2, nOod: 1, nDev: 4, nTest: 4, trainSteps: 60 });
process.on('exit', () => shared.cleanup());

test('merge world: task arithmetic program through the sandbox equals seed + λ Σ τ computed directly', async () => {
  const tmp = makeTempDir('selfdev-loop-');
  try {
    const w = await worldP;
    const world = MergeWorld.load(w.seedModel, w.experts, 'mlp');
    assert.ok(world.names.length > 0 && world.names.every((n) => /mlp/.test(n)));
    const sb = new Sandbox();
    try {
      const fn = makeMergeFunction('function merge(tv, ctx) { return torch.stack(tv).sum(0).mul(0.4); }', sb, { limits: world.limits() });
      const merged = await world.merge(fn, 7);
      const direct = world.taskArithmetic(0.4);
      for (const [n, a] of direct) {
        const b = merged.get(n)!;
        for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) < 1e-6, `${n}[${i}]`);
      }
      // unselected tensors stay the seed
      for (const n of world.seed.keys()) if (!world.names.includes(n)) assert.equal(merged.get(n), world.seed.get(n));
    } finally {
      sb.close();
    }
  } finally {
    tmp.cleanup();
  }
});

test('2-iteration run end to end writes the store, pairs, baselines, transfer, report and best-merge.yml', async () => {
  const tmp = makeTempDir('selfdev-loop-');
  try {
    const w = await worldP;
    const runDir = join(tmp.path, 'run');
    const cfg = {
      name: 'micro', seed: 3, iterations: 2, samplesPerIteration: 6, tensorFilter: 'all',
      eval: { devSubset: 2, maxTokens: 10, batchSize: 8 }, topKTest: 3, pWin: 0.2, pLose: 0.4,
      baselines: { lambdas: [0.5, 1.0] },
      world: { ...w, algorithms: 'algorithms', example: 'algorithms/task_arithmetic.js' },
    };
    const events: string[] = [];
    const r = await runLoop(cfg, runDir, { onEvent: (e) => events.push(e.type) });
    assert.ok(existsSync(r.reportPath));
    assert.ok(existsSync(join(runDir, 'best-algorithm.js')));
    assert.match(readFileSync(join(runDir, 'best-merge.yml'), 'utf8'), /merge_method: custom/);
    const store = RunStore.open(runDir, { readonly: true });
    try {
      const its = store.iterations();
      assert.equal(its.length, 2);
      assert.ok(its.every((i) => i.status === 'done'));
      assert.deepEqual(its.map((i) => Number(i.temperature!.toFixed(3))), [1.2, 1.0]);
      assert.equal(store.samples(its[0]!.id).length, 6);
      const base = store.baselines({ selectedOnly: true });
      assert.ok(base.some((b) => b.name === 'task_arithmetic' && b.expertSet === 'in-domain'));
      assert.ok(base.some((b) => b.name === 'seed'));
      assert.ok(store.transfers().length >= 1 || r.leaderboard.length === 0);
      for (const row of r.leaderboard) assert.notEqual(row.testStrict, null, 'top-k have test scores');
      // the selection split: the top selectTopK (default 10) by dev with a full-dev score are scored on it, nothing else;
      // the best program is the best there, it has a test score, and it is the one exported
      const top10 = store.leaderboard(10);
      const ranked = store.rankedPrograms();
      assert.ok(top10.some((x) => x.devStrict !== null));
      for (const x of ranked) assert.equal(x.selectStrict !== null, x.devStrict !== null && top10.some((y) => y.hash === x.hash), `select score of ${x.hash}`);
      assert.equal(r.best?.hash, bestBySelection(top10)!.hash);
      assert.notEqual(r.best!.testStrict, null, 'the best program has a test score');
      assert.ok(readFileSync(join(runDir, 'best-algorithm.js'), 'utf8').includes(`program ${r.best!.hash};`));
      assert.equal(store.run().status, 'done');
      // the micro world gives a signal: some merges answer some problems
      assert.ok(r.leaderboard.some((x) => (x.devStrict ?? 0) > 0), 'some program scores above 0 on dev');
      // pairs: chosen beats rejected; iteration 2 carries iteration 1's best forward as chosen
      for (const it of its) for (const pr of store.pairs(it.id)) assert.ok(pr.chosenScore > pr.rejectedScore);
      const carried = store.pairs(its[1]!.id).filter((x) => x.source === 'carried');
      const top1 = store.iterationPrograms(its[0]!.id).filter((x) => x.verdict === 'ok').map((x) => x.devStrict ?? x.devSubset ?? 0);
      const anyRejectedBelowTop1 = store.pairs(its[1]!.id).length > 0 && Math.max(...top1) > 0;
      if (anyRejectedBelowTop1) assert.ok(carried.length > 0, 'carried pairs in iteration 2');
      const jsonl = readFileSync(join(runDir, 'pairs', 'iter-1.jsonl'), 'utf8').trim().split('\n').filter(Boolean);
      assert.equal(jsonl.length, store.pairs(its[0]!.id).length);
      for (const l of jsonl) assert.ok(['prompt', 'chosen', 'rejected'].every((k) => typeof (JSON.parse(l) as Record<string, unknown>)[k] === 'string'));
    } finally {
      store.close();
    }
    assert.ok(events.includes('evaluated') && events.includes('done'));
  } finally {
    tmp.cleanup();
  }
});
