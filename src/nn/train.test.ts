import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as O from './ops.ts';
import { Llama, makeConfig } from './model.ts';
import { Tokenizer } from './tokenizer.ts';
import { encodePair, makeBatch, packTexts } from './data.ts';
import { batchAt, lrAt, train, evalLoss } from './train.ts';
import { generate } from './generate.ts';

before(async () => {
  await O.initBackend();
});

const tok = new Tokenizer();
const cfg = makeConfig({ vocab_size: tok.vocabSize, hidden_size: 32, num_attention_heads: 2, num_hidden_layers: 2, intermediate_size: 64 });
const letters = 'abcdefghijklmnopqrstuvwxyz';
const examples = [...letters].map((c, i) => encodePair(tok, `${c}>`, letters[(i + 1) % 26] + letters[(i + 2) % 26]));

function sameWeights(a: Llama, b: Llama): boolean {
  const wa = a.getWeights(), wb = b.getWeights();
  for (const [n, x] of wa) {
    const y = wb.get(n)!;
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  }
  return true;
}

test('encodePair masks prompt (and mask spans), makeBatch right-pads', () => {
  const e = encodePair(tok, 'Q', 'a<<1+1=2>>b', { maskSpans: [[7, 10]] });
  assert.deepEqual(e.ids, [1, 3 + 81, ...[...'a<<1+1=2>>b'].map((c) => 3 + c.charCodeAt(0)), 2]);
  assert.deepEqual(e.mask, [0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1]);
  const b = makeBatch([e, { ids: [1, 5, 6], mask: [0, 1, 1] }], 0, 100);
  assert.equal(b.T, 13);
  assert.deepEqual(Array.from(b.inputs.slice(13, 16)), [1, 5, 0]);
  assert.deepEqual(Array.from(b.weights.slice(13, 16)), [1, 1, 0]);
  const p = packTexts(tok, ['abc', 'de'], 4);
  assert.deepEqual(p.map((x) => x.ids), [[1, 100, 101, 102], [102, 2, 1, 103]]);
  assert.ok(Math.abs(lrAt(0, 1, 100, 10, 0.1) - 0.1) < 1e-12);
  assert.ok(Math.abs(lrAt(99, 1, 100, 10, 0.1) - 0.1) < 1e-3);
});

test('learns a toy task to near-zero loss and generates it', () => {
  const m = Llama.init(cfg, 0);
  const r = train(m, tok, examples, { steps: 150, lr: 1e-2, batchSize: 16, seqLen: 8, seed: 1, warmup: 10, progress: false });
  const loss = evalLoss(m, makeBatch(examples, 0, 8));
  assert.ok(loss < 0.02, `final loss ${loss} (running ${r.loss})`);
  const g = generate(m, tok, ['c>', 'y>'], { maxTokens: 4 });
  assert.deepEqual(g.map((x) => x.text), ['de', 'za']);
  m.dispose();
});

test('same seed → same weights; different data seed → different weights', () => {
  const run = (seed: number) => {
    const m = Llama.init(cfg, 5);
    train(m, tok, examples, { steps: 6, lr: 3e-3, batchSize: 4, seqLen: 8, seed, weightDecay: 0.1, progress: false });
    return m;
  };
  const a = run(1), b = run(1), c = run(2);
  assert.ok(sameWeights(a, b));
  assert.ok(!sameWeights(a, c));
  const i1 = Llama.init(cfg, 9), i2 = Llama.init(cfg, 9), i3 = Llama.init(cfg, 10);
  assert.ok(sameWeights(i1, i2) && !sameWeights(i1, i3));
  for (const m of [a, b, c, i1, i2, i3]) m.dispose();
});

test('save + resume gives the same weights as an uninterrupted run', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nn-train-'));
  try {
    const opts = { steps: 12, lr: 3e-3, batchSize: 8, seqLen: 8, seed: 3, weightDecay: 0.1, warmup: 3, progress: false };
    const full = Llama.init(cfg, 4);
    train(full, tok, examples, { ...opts, outDir: join(dir, 'full') });
    const part = Llama.init(cfg, 4);
    train(part, tok, examples, { ...opts, outDir: join(dir, 'part'), stopAfter: 5 });
    part.dispose();
    const resumed = Llama.init(cfg, 123); // weights come from the checkpoint
    const r = train(resumed, tok, examples, { ...opts, outDir: join(dir, 'part'), resume: true });
    assert.equal(r.steps, 7);
    assert.ok(sameWeights(full, resumed));
    full.dispose();
    resumed.dispose();
    // a BatchSource that reproduces the list's order trains identically
    const a = Llama.init(cfg, 4), b = Llama.init(cfg, 4);
    train(a, tok, examples, { ...opts, steps: 4 });
    train(b, tok, (step, bs) => batchAt(examples, step, bs, opts.seed), { ...opts, steps: 4 });
    assert.ok(sameWeights(a, b));
    a.dispose();
    b.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('trainable: frozen parameters never change, the others train, and a filter that matches nothing is refused', () => {
  const m = Llama.init(cfg, 3);
  const before = m.getWeights();
  const isMlp = (n: string) => n.includes('.mlp.');
  train(m, tok, examples, { steps: 5, lr: 1e-2, batchSize: 4, seqLen: 8, seed: 1, weightDecay: 0.1, progress: false, trainable: isMlp });
  const after = m.getWeights();
  let frozen = 0, moved = 0;
  for (const [n, x] of before) {
    const y = after.get(n)!;
    const same = x.every((v, i) => v === y[i]);
    if (isMlp(n)) assert.ok(!same, `${n} should have trained`);
    else assert.ok(same, `${n} is frozen but changed`);
    if (isMlp(n)) moved++;
    else frozen++;
  }
  assert.ok(frozen > 0 && moved > 0);
  assert.throws(() => train(m, tok, examples, { steps: 1, lr: 1e-2, batchSize: 4, seqLen: 8, progress: false, trainable: () => false }), /trainable filter matches no parameter/);
  m.dispose();
});
