import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from '../io/testing.ts';
import { RunStore } from '../store/store.ts';
import { initBackend, Llama, makeConfig, saveModel, loadModel, referenceLogps, Tokenizer } from '../nn/index.ts';
import { trainFactory } from './controller.ts';
import { resolveConfig } from './config.ts';
import { generateProgram } from '../factory/index.ts';

for (const lossType of ['sigmoid', 'ipo'] as const) test(`factory DPO step (builtin, ${lossType}): pairs → TRL JSONL → dpoTrain against the previous factory → checkpoint + dpo_steps; chosen gains on rejected`, async () => {
  await initBackend();
  const tmp = makeTempDir('selfdev-loop-dpo-');
  try {
    const tok = new Tokenizer();
    const cfgM = makeConfig({ vocab_size: tok.vocabSize, hidden_size: 32, num_attention_heads: 2, num_hidden_layers: 1, intermediate_size: 64, max_position_embeddings: 256 });
    const m = Llama.init(cfgM, 4);
    const factoryDir = join(tmp.path, 'factory0');
    saveModel(factoryDir, m, tok);
    m.dispose();
    const cfg = resolveConfig({
      seed: 5, dpo: { beta: 0.1, lr: 3e-3, epochs: 4, batchSize: 2, maxLen: 200, lossType },
      factory: { kind: 'builtin', dir: factoryDir, maxPromptTokens: 12 },
      world: { seedModel: 'x', experts: ['y'] },
    });
    const runDir = join(tmp.path, 'run');
    const store = RunStore.open(runDir);
    try {
      store.createRun({ name: 'dpo', config: cfg, seed: 5, evalConfig: {} });
      const it = store.startIteration({ t: 1, arm: 'dpo', temperature: 1.2, nTarget: 4 });
      const codes = [0, 1, 2, 3].map((i) => generateProgram(100 + i).code.slice(0, 120));
      const res = store.addSamples(codes.map((code) => ({ iterationId: it.id, code })));
      const [a, b, c, d] = res.map((r) => r.hash) as [string, string, string, string];
      const pairsIn = [
        { chosenHash: a, rejectedHash: c, chosenScore: 0.5, rejectedScore: 0 },
        { chosenHash: b, rejectedHash: d, chosenScore: 0.4, rejectedScore: 0.1 },
      ];
      const promptText = 'A long factory prompt that the builtin factory only sees the end of.\n## New algorithm\n```js\n';
      store.addPairs(it.id, promptText, pairsIn);
      const r = await trainFactory(cfg, process.cwd(), runDir, 1, it.id, store, { text: promptText, messages: [], prefix: '```js\n', stop: [] });
      assert.equal(r.checkpoint, join('factory', 'iter-1'));
      assert.ok(existsSync(join(runDir, 'pairs', 'iter-1.jsonl')));
      const steps = store.dpoSteps(it.id);
      assert.equal(steps.length, Math.ceil((2 * 4) / 2));
      // first step: policy = reference, so the loss is the loss at zero margin: ln 2, or IPO's (1/(2β))²
      const atZero = lossType === 'ipo' ? (1 / (2 * 0.1)) ** 2 : Math.LN2;
      assert.ok(Math.abs(steps[0]!.loss - atZero) < 1e-4 * atZero, `${lossType} first loss ${steps[0]!.loss} vs ${atZero}`);
      // independent check: log-ratio margins of the trained factory against the original
      const src = loadModel(factoryDir);
      const trained = loadModel(join(runDir, r.checkpoint!));
      try {
        const tail = tok.decode(tok.encode(promptText).slice(-12));
        const pairs = pairsIn.map((p) => ({ prompt: tail, chosen: store.programByHash(p.chosenHash)!.code, rejected: store.programByHash(p.rejectedHash)!.code }));
        const before = referenceLogps(src.model, tok, pairs, 200);
        const after = referenceLogps(trained.model, tok, pairs, 200);
        const margin = pairs.map((_, i) => after[i]![0] - before[i]![0] - (after[i]![1] - before[i]![1]));
        assert.ok(margin.every((x) => x > 0), `chosen gains on rejected for every pair: ${margin}`);
      } finally {
        src.model.dispose();
        trained.model.dispose();
      }
      // rerun is a no-op (resume): no second set of steps
      await trainFactory(cfg, process.cwd(), runDir, 1, it.id, store, { text: promptText, messages: [], prefix: '```js\n', stop: [] });
      assert.equal(store.dpoSteps(it.id).length, steps.length);
    } finally {
      store.close();
    }
  } finally {
    tmp.cleanup();
  }
});

test('dpo.lossType is validated', () => {
  assert.throws(() => resolveConfig({ dpo: { lossType: 'kto' }, world: { seedModel: 'x', experts: ['y'] } }), /dpo\.lossType must be sigmoid or ipo, got "kto"/);
  assert.equal(resolveConfig({ world: { seedModel: 'x', experts: ['y'] } }).dpo.lossType, 'sigmoid');
});
