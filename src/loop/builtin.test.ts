import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from '../io/testing.ts';
import { RunStore } from '../store/store.ts';
import { initBackend } from '../nn/index.ts';
import { runLoop } from './controller.ts';
import { builtinLoopConfig, microBuiltinWorld } from './testing.ts';

test('builtin factory through the loop: samples programs, DPO-trains on their pairs, iteration 2 samples from the iteration-1 checkpoint', async () => {
  await initBackend();
  const tmp = makeTempDir('selfdev-loop-builtin-');
  try {
    // a tiny code model that has learned three programs after the prompt's last 8 tokens:
    // expert 0 alone, expert 1 alone (each answers its half of the problems), and the seed (answers none)
    const { world: w, factoryDir } = await microBuiltinWorld(tmp.path);

    const runDir = join(tmp.path, 'run');
    const r = await runLoop(builtinLoopConfig(w, factoryDir), runDir);
    const store = RunStore.open(runDir, { readonly: true });
    try {
      const [it1, it2] = store.iterations();
      const s1 = store.iterationSummary()[0]!;
      assert.ok(s1.nValid > 0, `the trained factory writes valid programs (verdicts ${JSON.stringify(s1.verdicts)})`);
      assert.equal(store.samples(it2!.id).length, 6);
      assert.ok(store.pairs(it1!.id).length > 0, 'the three programs score differently → pairs');
      assert.equal(it1!.factoryCheckpoint, join('factory', 'iter-1'));
      assert.ok(existsSync(join(runDir, 'factory', 'iter-1', 'config.json')));
      assert.ok(store.dpoSteps(it1!.id).length > 0);
      assert.ok(existsSync(join(runDir, 'pairs', 'iter-1.jsonl')));
      assert.ok(existsSync(r.reportPath));
    } finally {
      store.close();
    }
  } finally {
    tmp.cleanup();
  }
});
