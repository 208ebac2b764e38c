// The framework-free inference engine (infer.ts) against the plain-TS reference forward
// (reference.ts, float64) and against the framework engine (model.ts directly and through generate.ts), with
// the native kernels when the addon is loaded and with the JS kernels.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as O from './ops.ts';
import { Llama, makeConfig } from './model.ts';
import type { LlamaConfig } from './model.ts';
import { Tokenizer } from './tokenizer.ts';
import { generate } from './generate.ts';
import { referenceLogits } from './reference.ts';
import { InferModel, inferNative } from './infer.ts';
import { Rng } from './rng.ts';

before(async () => {
  await O.initBackend();
});

const kernels = inferNative() ? [true, false] : [false];

function randomModel(cfg: LlamaConfig, seed: number, std: number): Map<string, Float32Array> {
  const m = Llama.init(cfg, seed);
  const w = m.getWeights();
  m.dispose();
  const rng = new Rng(seed + 100);
  for (const [n, a] of w) {
    if (n.endsWith('norm.weight')) for (let i = 0; i < a.length; i++) a[i] = 1 + 0.2 * rng.normal();
    else for (let i = 0; i < a.length; i++) a[i] = std * rng.normal();
  }
  return w;
}

/** max |a − b| / max |b|. */
function relErr(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let s = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
  }
  return d / s;
}

for (const tied of [false, true]) {
  test(`logits equal the reference forward (GQA, ${tied ? 'tied' : 'untied'}, rows fed in pieces)`, () => {
    // head_dim 16 (native vector path) and 12 (native scalar path)
    for (const [hidden, heads, kv] of [[64, 4, 2], [48, 4, 4]] as const) {
      const cfg = makeConfig({ vocab_size: 67, hidden_size: hidden, num_attention_heads: heads, num_key_value_heads: kv, num_hidden_layers: 2, intermediate_size: 80, tie_word_embeddings: tied, max_position_embeddings: 64 });
      const w = randomModel(cfg, tied ? 3 : 4, 0.15);
      const rng = new Rng(9);
      const seqs = [13, 1, 7, 20].map((n) => Array.from({ length: n }, () => Math.floor(rng.next() * 67)));
      const ref = seqs.map((s) => referenceLogits(w, cfg as unknown as Record<string, unknown>, s));
      // the framework engine's logits too (the path generation used before infer.ts)
      const fw = Llama.fromWeights(cfg, w);
      const tf = seqs.map((s) => O.tidy(() => O.read(fw.forward(O.intTensor(Int32Array.from(s), [1, s.length]), { inference: true }).logits).slice()));
      fw.dispose();
      for (const useNative of kernels) {
        const im = InferModel.fromWeights(cfg, w, { useNative });
        const sess = im.session(seqs.length, 32);
        // rows advance unevenly: a prefix for some rows, then single tokens, then the rest
        const done = seqs.map(() => 0);
        const plan = [[0, 5], [2, 3], [3, 1]] as const;
        const check = (rows: number[], counts: number[]) => {
          const lg = sess.feed(rows, rows.map((r, i) => seqs[r].slice(done[r], done[r] + counts[i])));
          rows.forEach((r, i) => {
            done[r] += counts[i];
            const got = lg.subarray(i * 67, (i + 1) * 67);
            const e = relErr(got, ref[r][done[r] - 1]);
            assert.ok(e < 1e-4, `row ${r} at ${done[r]} tokens (native ${useNative}, hidden ${hidden}): relative error ${e}`);
            const t = done[r] - 1;
            const ef = relErr(got, tf[r].subarray(t * 67, (t + 1) * 67));
            assert.ok(ef < 1e-4, `row ${r} at ${done[r]} tokens (native ${useNative}, hidden ${hidden}): relative error vs tfjs ${ef}`);
          });
        };
        check(plan.map((p) => p[0]), plan.map((p) => p[1]));
        check([1, 0, 3], [1, 1, 1]);
        while (done.some((d, r) => d < seqs[r].length)) {
          const rows = seqs.map((_, r) => r).filter((r) => done[r] < seqs[r].length);
          check(rows, rows.map((r) => Math.min(2, seqs[r].length - done[r])));
        }
        assert.deepEqual([...sess.lengths], seqs.map((s) => s.length));
      }
    }
  });
}

test('bad input: unknown token, capacity, repeated row', () => {
  const cfg = makeConfig({ vocab_size: 20, hidden_size: 16, num_attention_heads: 2, num_hidden_layers: 1, max_position_embeddings: 16 });
  const im = InferModel.fromWeights(cfg, randomModel(cfg, 1, 0.1));
  const s = im.session(2, 4);
  assert.throws(() => s.feed([0], [[20]]), /token id 20 outside the vocabulary/);
  assert.throws(() => s.feed([1], [[1, 2, 3, 4, 5]]), /row 1 would hold 5 tokens, capacity 4/);
  assert.throws(() => s.feed([0, 0], [[1], [2]]), /row 0 given twice/);
  assert.throws(() => s.feed([2], [[1]]), /row 2 outside/);
  assert.throws(() => im.session(0, 4), /rows must be a positive integer/);
});

test('greedy generation equals the framework engine (batched, forcing hook, stop strings)', () => {
  const tok = new Tokenizer();
  const cfg = makeConfig({ vocab_size: tok.vocabSize, hidden_size: 48, num_attention_heads: 4, num_key_value_heads: 2, num_hidden_layers: 2, intermediate_size: 96 });
  const m = Llama.fromWeights(cfg, randomModel(cfg, 5, 0.5));
  const prompts = ['Question: Ann has 3 apples and buys 4 more. How many now?\nAnswer:', 'Hi', 'x = 12 * 3 =', 'The cat sat on the mat. The cat'];
  // force "7>>" after every "=" the model writes (like the calculator)
  const onToken = (_row: number, text: string) => (text.endsWith('=') ? tok.encode('7>>') : null);
  const opts = { maxTokens: 24, onToken, stop: ['\n\n'] };
  const ref = generate(m, tok, prompts, { ...opts, engine: 'tfjs' });
  assert.ok(ref.some((g) => g.ids.length > 10), 'something was generated');
  for (const bs of [1, 3]) assert.deepEqual(generate(m, tok, prompts, { ...opts, batchSize: bs }), ref, `batch size ${bs}`);
  m.dispose();
});

test('the cached snapshot follows weight changes', () => {
  const tok = new Tokenizer();
  const cfg = makeConfig({ vocab_size: tok.vocabSize, hidden_size: 32, num_attention_heads: 2, num_hidden_layers: 1, intermediate_size: 64 });
  const m = Llama.fromWeights(cfg, randomModel(cfg, 6, 0.6));
  const a = InferModel.of(m);
  assert.equal(InferModel.of(m), a, 'reused while the weights are unchanged');
  const before = generate(m, tok, ['abc'], { maxTokens: 8 });
  m.setWeights(randomModel(cfg, 7, 0.6));
  assert.notEqual(InferModel.of(m), a, 'rebuilt after setWeights');
  assert.deepEqual(generate(m, tok, ['abc'], { maxTokens: 8 }), generate(m, tok, ['abc'], { maxTokens: 8, engine: 'tfjs' }));
  assert.notDeepEqual(generate(m, tok, ['abc'], { maxTokens: 8 }), before);
  m.dispose();
});
