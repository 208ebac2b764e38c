import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from '../io/testing.ts';
import { RunStore } from '../store/store.ts';
import { initBackend, Llama, makeConfig, saveModel, Tokenizer } from '../nn/index.ts';
import { runLoop } from './controller.ts';
import { loopPromptAndPrograms, makeMicroWorld, teachPrograms } from './testing.ts';

test('builtin factory through the loop: samples programs, DPO-trains on their pairs, iteration 2 samples from the iteration-1 checkpoint', async () => {
  await initBackend();
  const tmp = makeTempDir('selfdev-loop-builtin-');
  try {
    const w = await makeMicroWorld(tmp.path, { nExperts: 2, nOod: 0, nDev: 4, nTest: 2, trainSteps: 60 });
    // a tiny code model that has learned three programs after the prompt's last 8 tokens:
    // expert 0 alone, expert 1 alone (each answers its half of the problems), and the seed (answers none)
    const tok = new Tokenizer();
    const { tail, programs } = loopPromptAndPrograms(8, ['taskVectors[0].mul(1)', 'taskVectors[1].mul(1)', 'taskVectors[0].mul(0)']);
    const fm = Llama.init(makeConfig({ vocab_size: tok.vocabSize, hidden_size: 32, num_attention_heads: 2, num_hidden_layers: 1, intermediate_size: 64, max_position_embeddings: 128 }), 9);
    teachPrograms(fm, tok, tail, programs, 128);
    const factoryDir = join(tmp.path, 'factory0');
    saveModel(factoryDir, fm, tok);
    fm.dispose();

    const runDir = join(tmp.path, 'run');
    const r = await runLoop({
      name: 'builtin', seed: 2, iterations: 2, samplesPerIteration: 6, tensorFilter: 'all', pWin: 0.2, pLose: 0.4,
      eval: { devSubset: 4, maxTokens: 10, batchSize: 8 }, topKTest: 2, baselines: { lambdas: [0.5] },
      dpo: { beta: 0.1, lr: 1e-3, epochs: 1, batchSize: 2 },
      factory: { kind: 'builtin', dir: factoryDir, maxPromptTokens: 8, maxTokens: 90 },
      world: w,
    }, runDir);
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
