import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeRandomModel } from '../serve/testing.ts';
import { exportGguf } from '../nn/export-gguf.ts';
import { LlamaCppFactory } from './llamacpp.ts';
import { buildPrompt } from './prompt.ts';
import type { FactoryPrompt } from './types.ts';
import { freshStopPosition } from './testing.ts';

let tmp: string;
let gguf: string;
let f: LlamaCppFactory;
before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'factory-llamacpp-'));
  const dir = join(tmp, 'model');
  await makeRandomModel(dir, { max_position_embeddings: 256 }, 4);
  gguf = join(tmp, 'model.gguf');
  exportGguf(dir, gguf, { dtype: 'f32' });
  f = await LlamaCppFactory.load(gguf, { contextSize: 192, threads: 1 });
});
after(async () => {
  await f?.close();
  rmSync(tmp, { recursive: true, force: true });
});

const PROG = 'function merge(taskVectors, ctx) {\n  return taskVectors[0];\n}';
const prompt = buildPrompt({ apiReference: '# API\n\n`t.add(u)` adds.', example: { name: 'ex.js', code: PROG } });

test('n candidates with timing and token counts; the long prompt is left-truncated to fit', async () => {
  const t0 = performance.now();
  const c = await f.sample(prompt, 3, { temperature: 1, topP: 0.95, seed: 7, maxTokens: 16 });
  const wall = performance.now() - t0;
  assert.equal(c.length, 3);
  for (const x of c) {
    assert.ok(x.raw.startsWith(prompt.prefix));
    assert.ok(x.tokens! >= 1 && x.tokens! <= 16, `tokens ${x.tokens}`);
    assert.ok(x.ms > 0 && x.ms <= wall + 1);
    assert.equal(x.code, null, 'an untrained model writes no merge function');
    assert.ok(x.error);
  }
  assert.ok(prompt.text.length > 192);
  assert.equal(f.promptTokens(prompt.text, 16).length, 192 - 16 - 1);
  assert.throws(() => f.promptTokens('x', 192), /leaves no room/);
});

test('same seed → same candidates; another seed → different ones', async () => {
  const opts = { temperature: 1, seed: 21, maxTokens: 16 };
  const a = await f.sample(prompt, 3, opts);
  const b = await f.sample(prompt, 3, opts);
  assert.deepEqual(a.map((x) => x.raw), b.map((x) => x.raw));
  assert.ok(new Set(a.map((x) => x.raw)).size > 1, 'sample i uses seed + i');
  const c = await f.sample(prompt, 3, { ...opts, seed: 22 });
  assert.equal(c[0].raw, a[1].raw, 'sample 0 of seed 22 = sample 1 of seed 21');
  assert.notEqual(c[2].raw, a[2].raw);
});

test('stop strings are honoured (text cut before the stop)', async () => {
  const p: FactoryPrompt = { ...prompt, stop: [] };
  const [free] = await f.sample(p, 1, { temperature: 1, seed: 5, maxTokens: 48 });
  const gen = free.raw.slice(p.prefix.length);
  const at = freshStopPosition(gen);
  assert.ok(at > 0, `no printable character after a printable one in ${JSON.stringify(gen)}`);
  const [stopped] = await f.sample({ ...p, stop: [gen[at]] }, 1, { temperature: 1, seed: 5, maxTokens: 48 });
  assert.equal(stopped.raw, p.prefix + gen.slice(0, at));
});

test('two sequences sample concurrently and return n candidates in order', async () => {
  const g = await LlamaCppFactory.load(gguf, { contextSize: 192, threads: 1, sequences: 2 });
  try {
    const c = await g.sample(prompt, 4, { temperature: 0, seed: 1, maxTokens: 8 });
    assert.equal(c.length, 4);
    assert.equal(new Set(c.map((x) => x.raw)).size, 1, 'greedy: every sample is the same');
  } finally {
    await g.close();
  }
  await assert.rejects(g.sample(prompt, 1, { temperature: 0, seed: 1 }), /closed/);
});

test('missing file and bad options are specific errors', async () => {
  await assert.rejects(LlamaCppFactory.load(join(tmp, 'nope.gguf')), /model file not found: .*nope\.gguf/);
  await assert.rejects(LlamaCppFactory.load(gguf, { sequences: 0 }), /sequences must be a positive integer/);
});
