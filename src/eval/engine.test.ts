// The builtin backend's two decoding engines (generate.ts: 'infer' = framework-free, default;
// 'tfjs' = the framework forward) give the same greedy completions, calculator forcing included, on
// the shipped tiny-world dev prompts.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as O from '../nn/ops.ts';
import { Llama, makeConfig } from '../nn/model.ts';
import { Tokenizer } from '../nn/tokenizer.ts';
import { engineGenerate } from './backends.ts';
import { loadProblems, promptFor } from './evaluate.ts';
import { STOP_STRINGS } from './prompt.ts';

before(async () => {
  await O.initBackend();
});

test('infer engine == tfjs engine on dev prompts (greedy, calculator, batched)', async () => {
  const tok = new Tokenizer();
  // the shape of the tiny-world models (hidden 96, 3 layers, 4 heads); random weights scaled up
  // so that the model writes digits, '=' and '<<' often enough to trigger the calculator
  const cfg = makeConfig({ vocab_size: tok.vocabSize, hidden_size: 96, num_attention_heads: 4, num_hidden_layers: 3, intermediate_size: 256, max_position_embeddings: 256 });
  const m = Llama.init(cfg, 11);
  const w = m.getWeights();
  for (const [n, a] of w) if (!n.endsWith('norm.weight')) for (let i = 0; i < a.length; i++) a[i] *= 12;
  m.setWeights(w);
  const prompts = loadProblems({ kind: 'tiny' }, 'dev').slice(0, 24).map((p, i) => promptFor(p, i));
  const o = { maxTokens: 40, stop: [...STOP_STRINGS], calculator: true };
  const ref = await engineGenerate(m, tok, prompts, { ...o, engine: 'tfjs', batchSize: 8 });
  const fast = await engineGenerate(m, tok, prompts, { ...o, batchSize: 24 });
  assert.deepEqual(fast, ref);
  assert.ok(ref.some((g) => g.completionTokens > 20), 'long generations');
  m.dispose();
});
