import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as O from './ops.ts';
import { Llama, makeConfig } from './model.ts';
import { Tokenizer } from './tokenizer.ts';
import { generate, logprobs } from './generate.ts';

before(async () => {
  await O.initBackend();
});

const tok = new Tokenizer();
const cfg = makeConfig({ vocab_size: tok.vocabSize, hidden_size: 32, num_attention_heads: 4, num_key_value_heads: 2, num_hidden_layers: 2, intermediate_size: 64 });

/** Random model with large weights, so that next-token distributions are peaked (no near-ties). */
function peaked(seed: number): Llama {
  const m = Llama.init(cfg, seed);
  const w = m.getWeights();
  for (const [n, a] of w) if (!n.endsWith('norm.weight')) for (let i = 0; i < a.length; i++) a[i] *= 40;
  m.setWeights(w);
  return m;
}

const prompts = ['Question: 3 + 4 =', 'Hi', 'abc abc abc', 'x'];

test('KV-cache generation equals full recomputation, greedy and sampled', () => {
  const m = peaked(1);
  generate(m, tok, ['warm'], { maxTokens: 1, useCache: false }); // creates the framework engine's cached transposed weights
  const n0 = O.numTensors();
  for (const temperature of [0, 1]) {
    const a = generate(m, tok, prompts, { maxTokens: 16, temperature, topP: 0.9, seed: 5 });
    const b = generate(m, tok, prompts, { maxTokens: 16, temperature, topP: 0.9, seed: 5, useCache: false });
    assert.deepEqual(a, b);
    assert.ok(a.some((g) => g.ids.length > 3), 'something was generated');
  }
  assert.equal(O.numTensors(), n0, 'no leaked tensors');
  m.dispose();
});

test('rows do not depend on batching (left padding, per-row positions)', () => {
  const m = peaked(2);
  const together = generate(m, tok, prompts, { maxTokens: 10, temperature: 0.8, seed: 9 });
  const alone = generate(m, tok, prompts, { maxTokens: 10, temperature: 0.8, seed: 9, batchSize: 1 });
  assert.deepEqual(together, alone);
  m.dispose();
});

test('stop strings, max tokens and the forcing hook', () => {
  const m = peaked(3);
  const [free] = generate(m, tok, ['Hi'], { maxTokens: 8 });
  assert.equal(free.ids.length, 8);
  assert.equal(free.finish, 'length');
  const stopAt = free.text.slice(3, 5);
  const [stopped] = generate(m, tok, ['Hi'], { maxTokens: 8, stop: [stopAt] });
  assert.equal(stopped.finish, 'stop');
  assert.equal(stopped.text, free.text.slice(0, free.text.indexOf(stopAt)));
  const seen: string[] = [];
  const [forced] = generate(m, tok, ['Hi'], {
    maxTokens: 8,
    onToken: (row, text) => {
      seen.push(text);
      return text.length === 2 ? tok.encode('=42>>') : null;
    },
  });
  assert.equal(forced.text.slice(0, 7), free.text.slice(0, 2) + '=42>>');
  assert.equal(forced.ids.length, 8);
  assert.ok(!seen.includes(free.text.slice(0, 2) + '=4'), 'hook is not called while forced tokens are pending');
  // the continuation after the forced text is what the model predicts for that prefix
  const [cont] = generate(m, tok, ['Hi' + free.text.slice(0, 2) + '=42>>'], { maxTokens: 1 });
  assert.equal(forced.text.slice(7, 7 + cont.text.length), cont.text);
  m.dispose();
});

test('logprobs = sum of completion-token log-softmax from a full forward', () => {
  const m = peaked(4);
  const got = logprobs(m, tok, ['ab', 'Question:'], ['cd', ' 7']);
  assert.deepEqual(got.map((g) => g.tokens), [2, 2]);
  for (const [k, [p, c]] of [['ab', 'cd'], ['Question:', ' 7']].entries()) {
    const ids = [1, ...tok.encode(p + c)];
    const t = O.tidy(() => m.forward(O.intTensor(Int32Array.from(ids), [1, ids.length])).logits);
    const lg = O.read(t);
    t.dispose();
    const V = cfg.vocab_size;
    let want = 0;
    for (let pos = ids.length - 3; pos < ids.length - 1; pos++) {
      let mx = -Infinity;
      for (let j = 0; j < V; j++) mx = Math.max(mx, lg[pos * V + j]);
      let z = 0;
      for (let j = 0; j < V; j++) z += Math.exp(lg[pos * V + j] - mx);
      want += lg[pos * V + ids[pos + 1]] - mx - Math.log(z);
    }
    assert.ok(Math.abs(got[k].logprob - want) < 1e-3 * Math.max(1, Math.abs(want)), `${got[k].logprob} vs ${want}`);
  }
  m.dispose();
});
