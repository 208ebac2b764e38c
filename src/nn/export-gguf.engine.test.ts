// End to end with the project's own engine: a Llama saved by saveModel (with a trained BPE
// tokenizer) exports to a GGUF on which llama.cpp tokenizes like our Tokenizer and continues greedily
// like the reference forward, whose logits also match the tfjs engine's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from './ops.ts';
import { Llama, makeConfig } from './model.ts';
import { saveModel } from './checkpoint.ts';
import { trainBpe } from './tokenizer.ts';
import { loadReferenceModel, referenceGreedy, referenceLogits } from './reference.ts';
import { exportGguf } from './export-gguf.ts';
import { Rng, makeTempDir } from '../io/testing.ts';

test('saveModel folder → GGUF: llama.cpp tokenizer and greedy match our Tokenizer / reference; tfjs logits match the reference', async () => {
  await initBackend();
  const tmp = makeTempDir('selfdev-gguf-engine-');
  const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
  const llama = await getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, skipDownload: true, progressLogs: false, logLevel: LlamaLogLevel.error, maxThreads: 1 });
  try {
    const tok = trainBpe(['the cat sat on the mat. 12 + 30 = 42', 'Natalia sold 48 clips in April and half as many in May.'], 30);
    const cfg = makeConfig({ vocab_size: tok.vocabSize + 5, hidden_size: 64, num_attention_heads: 4, num_key_value_heads: 2, num_hidden_layers: 2, tie_word_embeddings: true });
    // weights ~ N(0, 0.3) (norms 1 + N(0, 0.3)) so greedy margins are clear
    const w = new Map<string, Float32Array>();
    const rng = new Rng(7);
    for (const [name, a] of Llama.init(cfg, 1).getWeights()) w.set(name, a.map(() => (name.endsWith('norm.weight') ? 1 : 0) + 0.3 * rng.normal()));
    const model = Llama.fromWeights(cfg, w);
    const dir = join(tmp.path, 'm');
    saveModel(dir, model, tok);
    const out = join(tmp.path, 'm.gguf');
    exportGguf(dir, out);

    const prompt = 'the cat sat';
    const ids = tok.encode(prompt);
    const { weights, config } = loadReferenceModel(dir);
    const ref = referenceLogits(weights, config, ids);
    const logits = tf.tidy(() => model.forward(tf.tensor2d([ids], [1, ids.length], 'int32'), { inference: true }).logits.dataSync());
    let maxDiff = 0;
    for (let t = 0; t < ids.length; t++) for (let v = 0; v < cfg.vocab_size; v++) maxDiff = Math.max(maxDiff, Math.abs(logits[t * cfg.vocab_size + v]! - ref[t]![v]!));
    assert.ok(maxDiff < 1e-3, `tfjs vs reference logits differ by ${maxDiff}`);
    model.dispose();

    const m = await llama.loadModel({ modelPath: out, gpuLayers: 0 });
    try {
      assert.deepEqual(m.tokenize(prompt, false) as number[], ids);
      const ctx = await m.createContext({ contextSize: 64, threads: 1, flashAttention: false, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' });
      const got: number[] = [];
      for await (const t of ctx.getSequence().evaluate(ids as never, { temperature: 0 })) {
        got.push(t as number);
        if (got.length >= 6) break;
      }
      await ctx.dispose();
      assert.deepEqual(got, referenceGreedy(weights, config, ids, 6));
    } finally {
      await m.dispose();
    }
  } finally {
    await llama.dispose();
    tmp.cleanup();
  }
});
