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
  dpoTrain(m, tok, train, { steps: 30, lr: 3e-3, batchSize: 8, beta: 0.5, lossType: 'ipo', nllAlpha: 1, seed: 1, progress: false });
  assert.ok(margin(m, held) > before + 1);
  m.dispose();
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
