import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as O from './ops.ts';
import { Llama, makeConfig } from './model.ts';
import { Tokenizer } from './tokenizer.ts';
import { dpoTrain, readPairs, referenceLogps } from './dpo.ts';
import type { PreferencePair } from './dpo.ts';
import { logprobs } from './generate.ts';
import { Rng } from './rng.ts';
import { nativeTrainingAvailable } from './train-native.ts';

before(async () => {
  await O.initBackend();
});

const tok = new Tokenizer();
const cfg = makeConfig({ vocab_size: tok.vocabSize, hidden_size: 32, num_attention_heads: 2, num_hidden_layers: 2, intermediate_size: 64 });

/** Random words; chosen completions use letters a–e, rejected ones v–z (fresh words when held out). */
function pairs(seed: number, n: number): PreferencePair[] {
  const r = new Rng(seed);
  const word = (abc: string) => Array.from({ length: 4 }, () => abc[r.int(abc.length)]).join('');
  return Array.from({ length: n }, () => ({ prompt: `${word('klmnop')}:`, chosen: word('abcde'), rejected: word('vwxyz') }));
}

function margin(m: Llama, ps: PreferencePair[]): number {
  const c = logprobs(m, tok, ps.map((p) => p.prompt), ps.map((p) => p.chosen), { eos: true });
  const r = logprobs(m, tok, ps.map((p) => p.prompt), ps.map((p) => p.rejected), { eos: true });
  return c.reduce((s, x, i) => s + x.logprob - r[i].logprob, 0) / ps.length;
}

test('DPO raises log p(chosen) − log p(rejected) on held-out pairs', () => {
  const train = pairs(1, 64);
  const held = pairs(2, 32);
  const m = Llama.init(cfg, 3);
  const before = margin(m, held);
  const logs = dpoTrain(m, tok, train, { steps: 40, lr: 3e-3, batchSize: 8, beta: 0.1, seed: 0, progress: false });
  const after = margin(m, held);
  assert.ok(after > before + 2, `held-out margin ${before.toFixed(3)} → ${after.toFixed(3)}`);
  assert.ok(logs[0].loss > 0.69 && logs[0].loss < 0.7, `first loss ${logs[0].loss} ≈ ln 2 (policy = reference)`);
  assert.ok(Math.abs(logs[0]['rewards/margins']) < 1e-4);
  const last = logs.slice(-5);
  assert.ok(last.every((l) => l['rewards/margins'] > 0 && l.loss < 0.6), JSON.stringify(last.map((l) => l.loss)));
  m.dispose();
});

test('IPO and NLL term train too; reference log-probs from data are used as given', () => {
  const train = pairs(4, 32);
  const held = pairs(5, 16);
  const m = Llama.init(cfg, 6);
  const ref = referenceLogps(m, tok, train.slice(0, 2));
  assert.equal(ref.length, 2);
  const direct = logprobs(m, tok, [train[0].prompt], [train[0].chosen], { eos: true })[0].logprob;
  assert.ok(Math.abs(ref[0][0] - direct) < 1e-5 * Math.abs(direct), `${ref[0][0]} vs ${direct}`);
  const given = referenceLogps(m, tok, [{ ...train[0], ref_chosen_logps: -1.5, ref_rejected_logps: -2.5 }]);
  assert.deepEqual(given, [[-1.5, -2.5]]);
  const before = margin(m, held);
  // a prompt that fills maxLen leaves nothing to learn: a clear error before any work
  assert.throws(() => dpoTrain(m, tok, [train[0], { ...train[1], prompt: 'x'.repeat(50) }], { steps: 1, lr: 1e-3, batchSize: 2, maxLen: 20, progress: false }), /pair 2: no chosen token within maxLen 20/);
  // keeping the prompt's last tokens makes the same pair trainable; with the
  // byte-level tokenizer the last 5 tokens are the last 5 characters
  const long = { ...train[1], prompt: 'x'.repeat(45) + 'abcde' };
  const cut = referenceLogps(m, tok, [long], 20, { maxPromptLen: 5 });
  const short = referenceLogps(m, tok, [{ ...long, prompt: 'abcde' }], 20);
  assert.ok(Math.abs(cut[0][0] - short[0][0]) < 1e-5 && Math.abs(cut[0][1] - short[0][1]) < 1e-5, `${cut} vs ${short}`);
  assert.equal(dpoTrain(Llama.init(cfg, 9), tok, [long], { steps: 1, lr: 1e-3, batchSize: 1, maxLen: 20, maxPromptLen: 5, progress: false }).length, 1);
  dpoTrain(m, tok, train, { steps: 30, lr: 3e-3, batchSize: 8, beta: 0.5, lossType: 'ipo', nllAlpha: 1, seed: 1, progress: false });
  assert.ok(margin(m, held) > before + 1);
  m.dispose();
});

test('native and tfjs engines: same reference log-probs, losses, rewards and weights (sigmoid + NLL, IPO)', { skip: !nativeTrainingAvailable() && 'native addon not built' }, () => {
  const train = pairs(7, 24);
  // long enough sequences to cross the native kernels' threading threshold
  for (const p of train.slice(0, 4)) p.chosen = p.chosen.repeat(12);
  const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(1e-3, Math.abs(a), Math.abs(b));
  const r0 = Llama.init(cfg, 8);
  const refN = referenceLogps(r0, tok, train, undefined, { engine: 'native' });
  const refT = referenceLogps(r0, tok, train, undefined, { engine: 'tfjs' });
  refN.forEach((r, i) => r.forEach((v, j) => assert.ok(rel(v, refT[i][j]) < 1e-5, `ref logp ${i}/${j}: ${v} vs ${refT[i][j]}`)));
  r0.dispose();
  for (const opts of [{ beta: 0.2, nllAlpha: 0.5, lossType: 'sigmoid' as const }, { beta: 0.5, nllAlpha: 0, lossType: 'ipo' as const }]) {
    const run = (engine: 'native' | 'tfjs') => {
      const m = Llama.init(cfg, 8);
      const logs = dpoTrain(m, tok, train, { steps: 6, lr: 3e-3, batchSize: 6, seed: 2, progress: false, engine, ...opts });
      const w = m.getWeights();
      m.dispose();
      return { logs, w };
    };
    const n = run('native');
    const t = run('tfjs');
    n.logs.forEach((l, i) => {
      for (const k of ['loss', 'rewards/margins', 'logps/chosen', 'logps/rejected', 'gradNorm'] as const) {
        assert.ok(rel(l[k], t.logs[i][k]) < 2e-3, `${opts.lossType} step ${i + 1} ${k}: native ${l[k]} vs tfjs ${t.logs[i][k]}`);
      }
    });
    assert.ok(n.logs.at(-1)!.loss < n.logs[0].loss, `${opts.lossType}: loss ${n.logs[0].loss} → ${n.logs.at(-1)!.loss}`);
    let diff = 0, norm = 0;
    for (const [name, a] of n.w) {
      const b = t.w.get(name)!;
      for (let i = 0; i < a.length; i++) {
        diff = Math.max(diff, Math.abs(a[i] - b[i]));
        norm = Math.max(norm, Math.abs(a[i]));
      }
    }
    assert.ok(diff < 1e-3 * norm, `${opts.lossType}: weights differ by ${diff} (max |w| ${norm})`);
  }
});

test('readPairs validates TRL JSONL', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nn-dpo-'));
  try {
    const f = join(dir, 'p.jsonl');
    writeFileSync(f, '{"prompt":"a","chosen":" b","rejected":" c"}\n{"prompt":"a","chosen":" b"}\n');
    assert.throws(() => readPairs(f), /row 2: field "rejected"/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
