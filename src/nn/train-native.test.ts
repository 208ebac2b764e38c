import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as O from './ops.ts';
import { Llama, makeConfig, paramShapes } from './model.ts';
import type { LlamaConfig } from './model.ts';
import { makeBatch } from './data.ts';
import type { Batch, Example } from './data.ts';
import { AdamW, lossAndGrads, train } from './train.ts';
import { NativeTrainer, nativeAdamW, nativeTrainingAvailable } from './train-native.ts';
import { referenceLogits } from './reference.ts';
import { Rng } from './rng.ts';

before(async () => {
  await O.initBackend();
});

const skip = nativeTrainingAvailable() ? false : 'native training kernels not built';

/** Variable-length examples (right padding) with partly masked targets. */
function examples(n: number, vocab: number, maxLen: number, seed: number): Example[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, (_, i) => {
    const len = i === 0 ? maxLen : 3 + Math.floor(rng.next() * (maxLen - 3));
    const ids = Array.from({ length: len }, () => 3 + Math.floor(rng.next() * (vocab - 3)));
    return { ids, mask: ids.map((_, j) => (j > 1 && rng.next() < 0.8 ? 1 : 0)) };
  });
}

function relErr(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

function weightsOf(m: Llama, cfg: LlamaConfig): Float32Array[] {
  const w = m.getWeights();
  return paramShapes(cfg).map(([n]) => w.get(n)!);
}

const configs: Array<[string, LlamaConfig]> = [
  ['untied GQA', makeConfig({ vocab_size: 67, hidden_size: 48, num_attention_heads: 4, num_key_value_heads: 2, num_hidden_layers: 2, intermediate_size: 80 })],
  ['tied MHA', makeConfig({ vocab_size: 67, hidden_size: 32, num_attention_heads: 2, num_hidden_layers: 3, intermediate_size: 64, tie_word_embeddings: true })],
];

for (const [label, cfg] of configs) {
  test(`gradients match the tfjs trainer (${label}, padding + masks, 1 and 2 threads identical)`, { skip }, () => {
    const m = Llama.init(cfg, 7);
    // larger weights than the init so every path carries signal
    const w = m.getWeights();
    const rng = new Rng(3);
    for (const a of w.values()) for (let i = 0; i < a.length; i++) a[i] += (rng.next() - 0.5) * 0.2;
    m.setWeights(w);
    const batch = makeBatch(examples(5, cfg.vocab_size, 21, 11), 0, 40);
    const ref = lossAndGrads(m, batch);
    const n1 = new NativeTrainer(cfg, { threads: 1 }).lossAndGrads(weightsOf(m, cfg), batch);
    const n2 = new NativeTrainer(cfg, { threads: 2 }).lossAndGrads(weightsOf(m, cfg), batch);
    assert.ok(Math.abs(n1.loss - ref.loss) <= 1e-5 * Math.abs(ref.loss), `loss ${n1.loss} vs tfjs ${ref.loss}`);
    const names = paramShapes(cfg).map(([n]) => n);
    names.forEach((n, i) => {
      const e = relErr(n1.grads[i], ref.grads[i]);
      assert.ok(e <= 1e-4, `${n}: relative error ${e}`);
      assert.deepEqual(n2.grads[i], n1.grads[i], `${n}: 2 threads differ from 1`);
    });
    assert.equal(n2.loss, n1.loss);
    m.dispose();
  });
}

test('1 and 2 threads give bit-identical loss and gradients on a batch large enough to split every kernel', { skip }, () => {
  const cfg = configs[0][1];
  const m = Llama.init(cfg, 3);
  const ws = weightsOf(m, cfg);
  m.dispose();
  const batch = makeBatch(examples(24, cfg.vocab_size, 97, 8), 0, 96);
  assert.ok(batch.B * batch.T * cfg.hidden_size >= 65536, 'batch too small to split the row kernels');
  const a = new NativeTrainer(cfg, { threads: 1 }).lossAndGrads(ws, batch);
  const b = new NativeTrainer(cfg, { threads: 2 }).lossAndGrads(ws, batch);
  assert.equal(b.loss, a.loss);
  a.grads.forEach((g, i) => assert.deepEqual(b.grads[i], g));
});

test('gradients match central finite differences of the float64 reference forward', { skip }, () => {
  const cfg = makeConfig({ vocab_size: 23, hidden_size: 16, num_attention_heads: 2, num_key_value_heads: 1, num_hidden_layers: 2, intermediate_size: 24 });
  const m = Llama.init(cfg, 1);
  const w = m.getWeights();
  const rng = new Rng(5);
  for (const a of w.values()) for (let i = 0; i < a.length; i++) a[i] += (rng.next() - 0.5) * 0.5;
  m.dispose();
  const batch: Batch = makeBatch(examples(3, cfg.vocab_size, 7, 2), 0, 16);
  const refLoss = (): number => {
    let s = 0;
    let count = 0;
    for (let b = 0; b < batch.B; b++) {
      const row = Array.from(batch.inputs.subarray(b * batch.T, (b + 1) * batch.T));
      const logits = referenceLogits(w, cfg as unknown as Record<string, unknown>, row);
      for (let t = 0; t < batch.T; t++) {
        const wt = batch.weights[b * batch.T + t];
        if (!wt) continue;
        const z = logits[t];
        let mx = -Infinity;
        for (const v of z) mx = Math.max(mx, v);
        let se = 0;
        for (const v of z) se += Math.exp(v - mx);
        s += wt * (z[batch.targets[b * batch.T + t]] - mx - Math.log(se));
        count += wt;
      }
    }
    return -s / count;
  };
  const names = paramShapes(cfg).map(([n]) => n);
  const { loss, grads } = new NativeTrainer(cfg, { threads: 1 }).lossAndGrads(names.map((n) => w.get(n)!), batch);
  assert.ok(Math.abs(loss - refLoss()) < 1e-5, `loss ${loss} vs reference ${refLoss()}`);
  const h = 1e-3;
  let checked = 0;
  names.forEach((n, p) => {
    const a = w.get(n)!;
    const g = grads[p];
    // the 3 largest-magnitude gradient entries of each tensor (zero rows of unused tokens say little)
    const idx = [...g.keys()].sort((i, j) => Math.abs(g[j]) - Math.abs(g[i])).slice(0, 3);
    for (const i of idx) {
      const keep = a[i];
      a[i] = keep + h;
      const up = refLoss();
      a[i] = keep - h;
      const down = refLoss();
      a[i] = keep;
      const fd = (up - down) / (Math.fround(keep + h) - Math.fround(keep - h));
      assert.ok(Math.abs(fd - g[i]) <= 2e-3 * Math.abs(fd) + 2e-5, `${n}[${i}]: native ${g[i]} vs finite difference ${fd}`);
      checked++;
    }
  });
  assert.equal(checked, names.length * 3);
});

test('a few AdamW steps on native gradients follow the tfjs trainer', { skip }, () => {
  const cfg = configs[0][1];
  const exs = examples(24, cfg.vocab_size, 17, 9);
  const a = Llama.init(cfg, 2);
  const b = Llama.init(cfg, 2);
  const oa = new AdamW(a, { weightDecay: 0.1 });
  const ob = new AdamW(b, { weightDecay: 0.1 });
  const nt = new NativeTrainer(cfg);
  for (let s = 0; s < 6; s++) {
    const batch = makeBatch(exs.slice((s * 4) % 24, ((s * 4) % 24) + 4), 0, 32);
    const ra = lossAndGrads(a, batch);
    const rb = nt.lossAndGrads(ob.weights, batch);
    assert.ok(Math.abs(ra.loss - rb.loss) <= 1e-4 * ra.loss, `step ${s}: tfjs loss ${ra.loss} vs native ${rb.loss}`);
    oa.step(ra.grads, 3e-3, 1);
    ob.step(rb.grads, 3e-3, 1);
  }
  a.dispose();
  b.dispose();
});

test('bad input is rejected with a specific message', { skip }, () => {
  const cfg = configs[1][1];
  const nt = new NativeTrainer(cfg);
  const m = Llama.init(cfg, 0);
  const ws = weightsOf(m, cfg);
  m.dispose();
  const batch = makeBatch([{ ids: [1, 5, 6], mask: [0, 1, 1] }], 0, 8);
  assert.throws(() => nt.lossAndGrads(ws.slice(1), batch), /expected/);
  const bad = makeBatch([{ ids: [1, 500, 6], mask: [0, 1, 1] }], 0, 8);
  assert.throws(() => nt.lossAndGrads(ws, bad), /token id 500 outside the vocabulary/);
  const none = makeBatch([{ ids: [1, 5, 6], mask: [0, 0, 0] }], 0, 8);
  assert.throws(() => nt.lossAndGrads(ws, none), /no target tokens/);
});

test("train(): engine 'native' gives the tfjs loss curve, is deterministic and resumes bit-exactly", { skip }, () => {
  const cfg = configs[0][1];
  const exs = examples(20, cfg.vocab_size, 15, 4);
  const opts = { steps: 8, lr: 3e-3, batchSize: 4, seqLen: 16, seed: 3, weightDecay: 0.1, warmup: 2, progress: false };
  const curve = (engine: 'native' | 'tfjs', threads?: number) => {
    const m = Llama.init(cfg, 6);
    const losses: number[] = [];
    train(m, null, exs, { ...opts, engine, threads, onStep: (s) => losses.push(s.loss) });
    return { m, losses };
  };
  const t = curve('tfjs');
  const n1 = curve('native', 1);
  const n2 = curve('native', 2);
  t.losses.forEach((l, i) => assert.ok(Math.abs(n1.losses[i] - l) <= 1e-4 * l, `step ${i + 1}: native ${n1.losses[i]} vs tfjs ${l}`));
  assert.deepEqual(n2.losses, n1.losses);
  assert.deepEqual(n2.m.getWeights(), n1.m.getWeights());
  const dir = mkdtempSync(join(tmpdir(), 'nn-train-native-'));
  try {
    const part = Llama.init(cfg, 6);
    train(part, null, exs, { ...opts, engine: 'native', outDir: dir, stopAfter: 3 });
    part.dispose();
    const resumed = Llama.init(cfg, 99);
    const r = train(resumed, null, exs, { ...opts, engine: 'native', outDir: dir, resume: true });
    assert.equal(r.steps, 5);
    assert.deepEqual(resumed.getWeights(), n1.m.getWeights());
    resumed.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  for (const m of [t.m, n1.m, n2.m]) m.dispose();
});

test('AdamW steps with the native update are bit-identical to the formula in float64 with f32 storage', { skip }, () => {
  const cfg = configs[1][1];
  const m = Llama.init(cfg, 4);
  const opt = new AdamW(m, { weightDecay: 0.1, beta1: 0.8, beta2: 0.99 });
  const rng = new Rng(12);
  const ref = { w: opt.weights.map((a) => a.slice()), m: opt.m.map((a) => a.slice()), v: opt.v.map((a) => a.slice()) };
  for (let t = 1; t <= 3; t++) {
    const grads = opt.weights.map((a) => Float32Array.from(a, () => (rng.next() - 0.5) * 10 ** (rng.next() * 4 - 3)));
    const lr = 1e-3 * t;
    let sq = 0;
    for (const g of grads) for (const x of g) sq += x * x;
    const norm = Math.sqrt(sq);
    const scale = norm > 1 ? 1 / (norm + 1e-6) : 1;
    grads.forEach((g, p) => {
      const wd = opt.decay[p] ? 1 - lr * 0.1 : 1;
      const [w, mm, v] = [ref.w[p], ref.m[p], ref.v[p]];
      for (let i = 0; i < g.length; i++) {
        const gi = g[i] * scale;
        mm[i] = 0.8 * mm[i] + (1 - 0.8) * gi;
        v[i] = 0.99 * v[i] + (1 - 0.99) * gi * gi;
        w[i] = w[i] * wd - ((lr / (1 - 0.8 ** t)) * mm[i]) / (Math.sqrt(v[i] / (1 - 0.99 ** t)) + 1e-8);
      }
    });
    assert.equal(opt.step(grads, lr, 1), norm);
    opt.weights.forEach((w, p) => {
      assert.deepEqual(w, ref.w[p], `step ${t}: weights of ${opt.names[p]}`);
      assert.deepEqual(opt.m[p], ref.m[p]);
      assert.deepEqual(opt.v[p], ref.v[p]);
    });
  }
  assert.deepEqual(m.getWeights().get(opt.names[1]), opt.weights[1], 'model variables hold the updated weights');
  m.dispose();
  assert.throws(() => nativeAdamW(new Float32Array(3), new Float32Array(2), new Float32Array(3), new Float32Array(3), 1, 0.9, 0.95, 1, 1e-3, 1e-8, 1), /lengths differ/);
});
