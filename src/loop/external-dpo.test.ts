import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { makeTempDir } from '../io/testing.ts';
import { RunStore } from '../store/store.ts';
import { initBackend, Llama, makeConfig, saveModel, Tokenizer } from '../nn/index.ts';
import { exportGguf } from '../nn/export-gguf.ts';
import { openFactory } from '../factory/index.ts';
import { deriveSeed, runLoop } from './controller.ts';
import { loopPromptAndPrograms, makeMicroWorld, teachPrograms } from './testing.ts';

const BIN = resolve('bin/selfdev.mjs');
const CTX = 128;
const MAX_TOKENS = 90;
// what llama.cpp keeps of the prompt in a CTX-token context: CTX − maxTokens − 1 tokens
const TAIL = CTX - MAX_TOKENS - 1;

test('llama.cpp factory + external DPO trainer (dpo.command): the command gets PAIRS/OUT/ITER/PREV, writes OUT/model.gguf, and iteration 2 samples from it', async () => {
  await initBackend();
  const tmp = makeTempDir('selfdev-loop-extdpo-');
  try {
    const w = await makeMicroWorld(tmp.path, { nExperts: 2, nOod: 0, nDev: 4, nTest: 2, trainSteps: 60 });
    // a tiny code model that writes one of four programs after the prompt's last TAIL tokens, as GGUF
    const tok = new Tokenizer();
    const { prompt, tail, programs } = loopPromptAndPrograms(TAIL, ['taskVectors[0].mul(1)', 'taskVectors[1].mul(1)', 'taskVectors[0].add(taskVectors[1]).mul(0.5)', 'taskVectors[0].mul(0.7)', 'taskVectors[0].mul(0)']);
    const fm = Llama.init(makeConfig({ vocab_size: tok.vocabSize, hidden_size: 32, num_attention_heads: 2, num_hidden_layers: 1, intermediate_size: 64, max_position_embeddings: CTX }), 9);
    teachPrograms(fm, tok, tail, programs, CTX);
    const baseHf = join(tmp.path, 'factory0');
    saveModel(baseHf, fm, tok, { dtype: 'F32' });
    fm.dispose();
    const baseGguf = join(tmp.path, 'factory0.gguf');
    exportGguf(baseHf, baseGguf, { dtype: 'f32' });

    // the external trainer: our own `selfdev dpo` (from the previous trained folder, else the base),
    // then `selfdev export-gguf` into $OUT/model.gguf; it logs its environment
    const envLog = join(tmp.path, 'env.log');
    const command = [
      `echo "$ITER|$PREV|$PAIRS|$OUT" >> ${JSON.stringify(envLog)}`,
      `SRC=${JSON.stringify(baseHf)}; if [ -n "$PREV" ]; then SRC="$PREV/hf"; fi`,
      `node ${JSON.stringify(BIN)} dpo --model "$SRC" --data "$PAIRS" --out "$OUT/hf" --steps 3 --batch 2 --lr 1e-3 --max-prompt-len ${TAIL} > /dev/null`,
      `node ${JSON.stringify(BIN)} export-gguf "$OUT/hf" "$OUT/model.gguf" > /dev/null`,
    ].join(' && ');
    const runDir = join(tmp.path, 'run');
    const cfg = {
      name: 'extdpo', seed: 2, iterations: 2, samplesPerIteration: 8, tensorFilter: 'all', pWin: 0.2, pLose: 0.4, failedAsRejected: true, workers: 1,
      eval: { devSubset: 4, maxTokens: 10, batchSize: 8 }, topKTest: 2, baselines: { lambdas: [0.5] },
      dpo: { beta: 0.1, lr: 1e-3, epochs: 1, batchSize: 2, command },
      factory: { kind: 'llamacpp' as const, path: baseGguf, maxTokens: MAX_TOKENS },
      world: w,
    };
    await runLoop(cfg, runDir);

    const calls = readFileSync(envLog, 'utf8').trim().split('\n').map((l) => l.split('|'));
    assert.equal(calls.length, 2, 'the trainer ran once per iteration');
    assert.deepEqual(calls.map((c) => c[0]), ['1', '2']);
    assert.equal(calls[0][1], '', 'no previous trained factory in iteration 1');
    assert.equal(calls[1][1], join(runDir, 'factory', 'iter-1'), 'iteration 2 trains from iteration 1’s output');
    assert.equal(calls[0][2], join(runDir, 'pairs', 'iter-1.jsonl'));
    assert.equal(calls[0][3], join(runDir, 'factory', '.iter-1.partial'), 'the trainer writes into a scratch folder, renamed when it succeeds');
    assert.ok(!existsSync(calls[0][3]));
    const trained = join(runDir, 'factory', 'iter-1', 'model.gguf');
    assert.ok(existsSync(trained));

    const store = RunStore.open(runDir, { readonly: true });
    try {
      const [it1, it2] = store.iterations();
      assert.ok(store.iterationSummary()[0]!.nValid > 0, 'the GGUF factory writes valid programs');
      assert.ok(store.pairs(it1!.id).length > 0);
      assert.equal(it1!.factoryCheckpoint, join('factory', 'iter-1'));
      // iteration 2's programs are exactly what the trained GGUF samples with the loop's seed and temperature
      // (and not what the base GGUF samples with them)
      const stored = store.samples(it2!.id).map((s) => store.programByHash(s.hash)!.code);
      const sampleFrom = async (path: string) => {
        const f = await openFactory({ kind: 'llamacpp', path, defaultMaxTokens: MAX_TOKENS });
        try {
          const c = await f.sample(prompt, 8, { temperature: it2!.temperature!, seed: deriveSeed(2, 'sample:2'), maxTokens: MAX_TOKENS });
          return c.map((x) => x.code ?? `/* no program extracted: ${x.error ?? 'unknown'} */\n${x.raw}`);
        } finally {
          await f.close();
        }
      };
      assert.deepEqual(await sampleFrom(trained), stored);
      assert.notDeepEqual(await sampleFrom(baseGguf), stored);
      assert.ok(store.pairs(it2!.id).length > 0, 'failed programs are rejected → pairs in iteration 2 too');
      assert.ok(existsSync(join(runDir, 'factory', 'iter-2', 'model.gguf')));
    } finally {
      store.close();
    }

    // a trainer that writes nothing, or fails: a clear error, and nothing that looks like a trained factory
    for (const [cmd, msg] of [['true', /dpo\.command finished but wrote no .*model\.gguf/], ['echo broken >&2; exit 3', /dpo\.command failed in iteration 1/]] as const) {
      const bad = join(tmp.path, `bad-${cmd.length}`);
      await assert.rejects(runLoop({ ...cfg, iterations: 1, dpo: { ...cfg.dpo, command: cmd } }, bad), msg);
      assert.ok(!existsSync(join(bad, 'factory', 'iter-1')));
    }
  } finally {
    tmp.cleanup();
  }
});
