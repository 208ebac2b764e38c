// Direct cross-check of our decoding engine against llama.cpp (node-llama-cpp, CPU, 1 thread, F32 KV
// cache): a Llama saved by saveModel and exported to an f32 GGUF continues greedily in llama.cpp
// exactly as `generateIds` (the default infer.ts engine, batched, per-row KV caches) does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { initBackend } from './ops.ts';
import { Llama, makeConfig } from './model.ts';
import { saveModel } from './checkpoint.ts';
import { trainBpe } from './tokenizer.ts';
import { generateIds } from './generate.ts';
import { exportGguf } from './export-gguf.ts';
import { Rng, makeTempDir } from '../io/testing.ts';

test('llama.cpp greedy continuation == generateIds (infer engine), token for token', async () => {
  await initBackend();
  const tmp = makeTempDir('selfdev-llamacpp-engine-');
  const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
  const llama = await getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, skipDownload: true, progressLogs: false, logLevel: LlamaLogLevel.error, maxThreads: 1 });
  try {
    const tok = trainBpe(['Question: Ann has 12 apples and buys 30 more. How many? Answer: 12 + 30 = <<12+30=42>>42', 'the cat sat on the mat'], 40);
    const cfg = makeConfig({ vocab_size: tok.vocabSize, hidden_size: 64, num_attention_heads: 4, num_key_value_heads: 2, num_hidden_layers: 3, intermediate_size: 160, max_position_embeddings: 128 });
    // weights ~ N(0, 0.3) (norms 1 + N(0, 0.3)) so greedy margins are clear
    const rng = new Rng(21);
    const w = new Map<string, Float32Array>();
    const init = Llama.init(cfg, 1);
    for (const [name, a] of init.getWeights()) w.set(name, a.map(() => (name.endsWith('norm.weight') ? 1 : 0) + 0.3 * rng.normal()));
    init.dispose();
    const model = Llama.fromWeights(cfg, w);
    const dir = join(tmp.path, 'm');
    saveModel(dir, model, tok);
    const gguf = join(tmp.path, 'm.gguf');
    exportGguf(dir, gguf);

    const texts = ['Question: Ann has 12 apples', 'the cat', '12 + 30 =', 'x'];
    const prompts = texts.map((t) => [tok.bosId, ...tok.encode(t)]);
    const N = 20;
    const ours = generateIds(model, tok, prompts, { maxTokens: N });
    model.dispose();

    const m = await llama.loadModel({ modelPath: gguf, gpuLayers: 0, useMmap: false });
    try {
      for (const [i, p] of prompts.entries()) {
        const ctx = await m.createContext({ contextSize: 64, threads: 1, flashAttention: false, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' });
        const got: number[] = [];
        for await (const t of ctx.getSequence().evaluate(p as never, { temperature: 0 })) {
          if ((t as number) === cfg.eos_token_id) break;
          got.push(t as number);
          if (got.length >= N) break;
        }
        await ctx.dispose();
        assert.deepEqual(ours[i].ids, got, `prompt ${JSON.stringify(texts[i])}`);
      }
      assert.ok(ours.some((g) => g.ids.length >= 10), 'long continuations were compared');
    } finally {
      await m.dispose();
    }
  } finally {
    await llama.dispose();
    tmp.cleanup();
  }
});
