// checkpoint.ts `loadInferModel` (a folder straight into the inference engine, no framework) against
// the framework path it replaces (`loadModel` → Llama → `InferModel.of`): the same logits bit for
// bit and the same generations, for every test architecture, in f32, bf16 (sharded) and f16, with the
// native kernels when the addon is loaded and with the JS kernels; a bad folder fails up front.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as O from './ops.ts';
import { loadInferModel, loadModel } from './checkpoint.ts';
import { InferModel, inferNative } from './infer.ts';
import { exampleLogprobs, generateIds } from './generate.ts';
import type { EngineModel } from './generate.ts';
import { makeArchCheckpoint, TEST_ARCHS } from './arch-testing.ts';
import type { TestArch } from './arch-testing.ts';
import { numParams } from './model.ts';
import type { FloatDType } from '../tensor/dtype.ts';
import type { TextTokenizer } from './load-tokenizer.ts';
import { rewriteWeights } from './folder-testing.ts';

const root = mkdtempSync(join(tmpdir(), 'selfdev-infer-load-'));
before(async () => {
  await O.initBackend();
});
after(() => rmSync(root, { recursive: true, force: true }));

const kernels = inferNative() ? [true, false] : [false];
const PROMPTS = ['the cat sat on', 'Question: 2 + 3 =', 'HELLO there, world', 'a'];

/** Logits after each prompt (rows fed as whole prompts, then two greedy tokens each) as raw bytes. */
function logitBytes(m: InferModel, prompts: number[][]): Buffer[] {
  const s = m.session(prompts.length, 64);
  const rows = prompts.map((_, i) => i);
  const out: Buffer[] = [];
  let lg = s.feed(rows, prompts);
  for (let step = 0; step < 3; step++) {
    out.push(Buffer.from(lg.buffer, lg.byteOffset, lg.byteLength));
    if (step === 2) break;
    const V = m.config.vocab_size;
    const next = rows.map((r) => {
      let best = 0;
      for (let j = 1; j < V; j++) if (lg[r * V + j] > lg[r * V + best]) best = j;
      return [best];
    });
    lg = s.feed(rows, next);
  }
  return out;
}

function gens(model: EngineModel, tok: TextTokenizer, prompts: number[][]) {
  const greedy = generateIds(model, tok, prompts, { maxTokens: 24 });
  const sampled = generateIds(model, tok, prompts, { maxTokens: 24, temperature: 0.9, topP: 0.8, seed: 7 });
  return { greedy, sampled };
}

const cases: Array<[TestArch, FloatDType, number | undefined]> = [
  ['mistral', 'BF16', 6000],
  ['qwen2', 'F16', undefined],
  ['llama3', 'F32', 9000],
  ...TEST_ARCHS.filter((a) => a !== 'mistral').map((a): [TestArch, FloatDType, number | undefined] => [a, 'BF16', undefined]),
];

for (const [arch, dtype, maxShardBytes] of cases) {
  test(`loadInferModel equals loadModel + InferModel.of: ${arch}, ${dtype}${maxShardBytes ? ', sharded' : ''} (same logits bit for bit, same generations)`, () => {
    const dir = join(root, `${arch}-${dtype}-${maxShardBytes ?? 1}`);
    makeArchCheckpoint(dir, arch, { seed: 11, dtype, maxShardBytes, window: 5 });
    const old = loadModel(dir, { tokenizer: 'any' });
    const tok = old.tokenizer!;
    const prompts = PROMPTS.map((p) => tok.encodePrompt(p));
    try {
      const want = old.model.getWeights();
      for (const useNative of kernels) {
        const fresh = loadInferModel(dir, { tokenizer: 'none', useNative });
        assert.equal(fresh.tokenizer, null);
        assert.equal(fresh.model.native, useNative);
        // the engine computes with exactly the framework model's f32 weights
        const got = fresh.model.weights();
        assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
        for (const [name, w] of want) assert.ok(Buffer.from(got.get(name)!.buffer).equals(Buffer.from(w.buffer)), `${name} (native ${useNative})`);
        const ref = InferModel.fromLlama(old.model, { useNative });
        assert.deepEqual(logitBytes(fresh.model, prompts), logitBytes(ref, prompts), `logits (native ${useNative})`);
      }
      // generation as the server and the evaluator run it: the framework model vs the engine-only one
      const fresh = loadInferModel(dir, { tokenizer: 'any' });
      assert.ok(fresh.tokenizer);
      const a = gens(old.model, tok, prompts);
      const b = gens(fresh.model, fresh.tokenizer, prompts);
      assert.deepEqual(b, a);
      assert.ok(a.greedy.some((g) => g.ids.length > 3), 'the models generate something');
    } finally {
      old.model.dispose();
    }
  });
}

test('the engine keeps one f32 copy of each weight: 4 bytes per parameter plus the matrices\' padding', () => {
  const dir = join(root, 'bytes');
  const cfg = makeArchCheckpoint(dir, 'mistral', { seed: 3, dtype: 'BF16' });
  const D = cfg.hidden_size;
  const V = cfg.vocab_size;
  // every matrix of this config has a multiple of 16 rows except lm_head (V rows, padded to 16 on the native path)
  const padded = (Math.ceil(V / 16) * 16 - V) * D;
  for (const useNative of kernels) {
    const { model } = loadInferModel(dir, { tokenizer: 'none', useNative });
    assert.equal(model.weightBytes(), 4 * (numParams(cfg) + (useNative ? padded : 0)), `native ${useNative}`);
  }
});

test('an engine-only model refuses the framework paths with a clear error', () => {
  const dir = join(root, 'refuse');
  makeArchCheckpoint(dir, 'qwen2', { seed: 4 });
  const { model, tokenizer } = loadInferModel(dir);
  const ids = [tokenizer!.encodePrompt('abc')];
  assert.throws(() => generateIds(model, tokenizer!, ids, { maxTokens: 2, engine: 'tfjs' }), /generate with engine 'tfjs' needs the framework model .*loaded for the inference engine only/);
  assert.throws(() => generateIds(model, tokenizer!, ids, { maxTokens: 2, useCache: false }), /generate with useCache: false needs the framework model/);
  assert.throws(() => exampleLogprobs(model as never, [{ ids: ids[0], mask: ids[0].map(() => 1) }]), /log-probs needs the framework model/);
});

test('a bad folder fails before the weights are read: missing tensor, wrong shape, non-float dtype', () => {
  const good = join(root, 'good');
  makeArchCheckpoint(good, 'llama3', { seed: 5, dtype: 'BF16' });
  const missing = rewriteWeights(good, join(root, 'missing'), (ts) => ts.filter((t) => t.name !== 'model.layers.1.mlp.up_proj.weight'));
  assert.throws(() => loadInferModel(missing), /missing'?: missing tensor model\.layers\.1\.mlp\.up_proj\.weight/);
  // gate_proj [I, D] stored as [D, I]: same bytes, wrong shape
  const shape = rewriteWeights(good, join(root, 'shape'), (ts) => ts.map((t) => (t.name === 'model.layers.2.mlp.gate_proj.weight' ? { ...t, shape: [t.shape[1]!, t.shape[0]!] } : t)));
  assert.throws(() => loadInferModel(shape), /tensor model\.layers\.2\.mlp\.gate_proj\.weight has shape \[32,48\], config implies \[48,32\]/);
  const ints = rewriteWeights(good, join(root, 'ints'), (ts) => ts.map((t) => (t.name === 'model.norm.weight' ? { ...t, dtype: 'I16' } : t)));
  assert.throws(() => loadInferModel(ints), /tensor model\.norm\.weight has dtype I16 \(not a float type\)/);
});
