import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as O from '../nn/ops.ts';
import { Llama, makeConfig } from '../nn/model.ts';
import { Tokenizer } from '../nn/tokenizer.ts';
import { saveModel } from '../nn/checkpoint.ts';
import { encodePair } from '../nn/data.ts';
import { train } from '../nn/train.ts';
import { makeRandomModel } from '../serve/testing.ts';
import { BuiltinFactory } from './builtin.ts';
import { buildPrompt, CODE_CLOSE, PROGRAM_HEADER } from './prompt.ts';
import type { FactoryPrompt } from './types.ts';
import { freshStopPosition } from './testing.ts';

let tmp: string;
before(async () => {
  await O.initBackend();
  tmp = mkdtempSync(join(tmpdir(), 'factory-builtin-'));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

const PROG = 'function merge(taskVectors, ctx) {\n  return taskVectors[0];\n}';
const prompt = buildPrompt({ apiReference: '# API\n\n`t.add(u)` adds.', example: { name: 'ex.js', code: PROG } });

test('random model: n candidates, same seed → same output regardless of batch size, max tokens honoured', async () => {
  const dir = join(tmp, 'rand');
  await makeRandomModel(dir, { max_position_embeddings: 256 }, 5);
  const a = await BuiltinFactory.load(dir, { batchSize: 2 });
  const b = await BuiltinFactory.load(dir, { batchSize: 5 });
  try {
    const opts = { temperature: 1, topP: 0.95, seed: 11, maxTokens: 12 };
    const ca = await a.sample(prompt, 5, opts);
    const cb = await b.sample(prompt, 5, opts);
    assert.equal(ca.length, 5);
    assert.deepEqual(ca.map((c) => c.raw), cb.map((c) => c.raw));
    assert.equal(new Set(ca.map((c) => c.raw)).size > 1, true, 'different rows draw different streams');
    for (const c of ca) {
      assert.ok(c.raw.startsWith(prompt.prefix));
      assert.ok(c.tokens! <= 12);
      assert.ok(c.ms >= 0);
      assert.equal(c.code, null, 'an untrained model writes no merge function');
      assert.ok(c.error && c.error.length > 0);
    }
    const other = await a.sample(prompt, 5, { ...opts, seed: 12 });
    assert.notDeepEqual(other.map((c) => c.raw), ca.map((c) => c.raw));
    // the long prompt was left-truncated to fit 256 positions
    const ids = a.promptIds(prompt.text, 12);
    assert.equal(ids.length, 256 - 12);
    assert.equal(ids[0], 1);
    assert.throws(() => a.promptIds('x', 256), /leaves no room/);
    const c = await BuiltinFactory.load(dir, { maxPromptTokens: 20 });
    assert.deepEqual(c.promptIds(prompt.text, 12), [1, ...ids.slice(-20)]);
    // a continuation (a parent program's first lines) is kept whole after the last 20 prompt tokens
    const cont = 'function merge(taskVectors, ctx) {\n  const w = 0.5;\n  const keep = taskVectors.map((t) => t.mul(w));\n';
    const contIds = Tokenizer.load(dir).encode(cont);
    assert.ok(contIds.length > 20, 'longer than the prompt budget');
    assert.deepEqual(c.promptIds(prompt.text + cont, 12, cont), [1, ...ids.slice(-20), ...contIds]);
    assert.throws(() => c.promptIds(prompt.text, 12, cont), /does not end with its continuation/);
    assert.throws(() => a.promptIds(prompt.text + cont, 256 - contIds.length - 1, cont), /and a continuation of \d+ tokens leave no room/);
    const [withCont] = await c.sample({ ...prompt, text: prompt.text + cont, prefix: prompt.prefix + cont, continuation: cont }, 1, { temperature: 1, seed: 3, maxTokens: 4 });
    assert.ok(withCont!.raw.startsWith(prompt.prefix + cont), 'the output is read after the continuation');
    // the continuation counts against maxTokens: a budget that fills the context with new tokens still samples
    const [long] = await a.sample({ ...prompt, text: prompt.text + cont, prefix: prompt.prefix + cont, continuation: cont }, 1, { temperature: 1, seed: 3, maxTokens: 250 });
    assert.ok(long!.tokens! <= 250 - contIds.length, `${long!.tokens} new tokens`);
    await c.close();
    await assert.rejects(BuiltinFactory.load(dir, { maxPromptTokens: 0 }), /maxPromptTokens must be a positive integer/);
  } finally {
    await a.close();
    await b.close();
  }
  await assert.rejects(a.sample(prompt, 1, { temperature: 1, seed: 0 }), /closed/);
});

test('stop strings end a sample (text cut before the stop)', async () => {
  const dir = join(tmp, 'rand2');
  await makeRandomModel(dir, { max_position_embeddings: 128 }, 9);
  const f = await BuiltinFactory.load(dir);
  try {
    const p: FactoryPrompt = { ...prompt, stop: [] };
    const [free] = await f.sample(p, 1, { temperature: 1, seed: 3, maxTokens: 48 });
    const gen = free.raw.slice(p.prefix.length);
    // a stop string that first occurs somewhere inside the free-running text
    const at = freshStopPosition(gen);
    assert.ok(at > 0, `no printable character after a printable one in ${JSON.stringify(gen)}`);
    const [stopped] = await f.sample({ ...p, stop: [gen[at]] }, 1, { temperature: 1, seed: 3, maxTokens: 48 });
    assert.equal(stopped.raw, p.prefix + gen.slice(0, at));
  } finally {
    await f.close();
  }
});

test('a model trained on one program writes it back, and the factory extracts it', async () => {
  const dir = join(tmp, 'trained');
  const tok = new Tokenizer();
  const cfg = makeConfig({ vocab_size: tok.vocabSize, hidden_size: 48, num_attention_heads: 4, num_hidden_layers: 1, intermediate_size: 96, max_position_embeddings: 160 });
  const m = Llama.init(cfg, 3);
  const ex = [encodePair(tok, PROGRAM_HEADER, PROG + CODE_CLOSE, { eos: true })];
  const r = train(m, tok, ex, { steps: 80, lr: 2e-2, batchSize: 1, seqLen: 96, warmup: 5, seed: 1, progress: false });
  saveModel(dir, m, tok);
  m.dispose();
  const f = await BuiltinFactory.load(dir);
  try {
    const p: FactoryPrompt = { text: PROGRAM_HEADER, messages: [], prefix: prompt.prefix, stop: prompt.stop };
    const [c] = await f.sample(p, 1, { temperature: 0, seed: 0, maxTokens: 80 });
    assert.equal(c.code, PROG, `loss ${r.loss}; raw ${JSON.stringify(c.raw)}`);
  } finally {
    await f.close();
  }
});

test('a folder without a tokenizer is rejected', async () => {
  const dir = join(tmp, 'notok');
  const cfg = makeConfig({ vocab_size: 259, hidden_size: 16, num_attention_heads: 2, num_hidden_layers: 1 });
  const m = Llama.init(cfg, 1);
  saveModel(dir, m, null);
  m.dispose();
  await assert.rejects(BuiltinFactory.load(dir), /has no tokenizer\.json/);
});
