import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer, pretokenize, trainBpe } from './tokenizer.ts';

test('byte layout: specials 0..2, bytes 3..258 as GPT-2 bytes_to_unicode', () => {
  const t = new Tokenizer();
  assert.equal(t.vocabSize, 259);
  assert.deepEqual([t.padId, t.bosId, t.eosId], [0, 1, 2]);
  assert.deepEqual(t.tokens.slice(0, 3), ['<pad>', '<s>', '</s>']);
  assert.equal(t.tokens[3 + 0x41], 'A');
  assert.equal(t.tokens[3 + 0x20], '\u0120');
  assert.equal(t.tokens[3 + 0x0a], '\u010a');
  assert.equal(t.tokens[3 + 0x00], '\u0100');
  assert.equal(t.tokens[3 + 0x7f], '\u0121');
  assert.equal(t.tokens[3 + 0xad], '\u0143');
  assert.deepEqual(t.encode('Hi \n'), [3 + 72, 3 + 105, 3 + 32, 3 + 10]);
  assert.deepEqual(t.encode('é'), [3 + 0xc3, 3 + 0xa9]);
});

test('GPT-2 pre-tokenisation', () => {
  assert.deepEqual(pretokenize("I'll pay 42 dollars!!  ok\n"), ['I', "'ll", ' pay', ' 42', ' dollars', '!!', ' ', ' ok', '\n']);
});

test('encode/decode round-trip, specials in text, decode options', () => {
  const t = new Tokenizer();
  const s = 'Question: 12 * 7 = <<12*7=84>>84\nÜber 😀 done';
  assert.equal(t.decode(t.encode(s)), s);
  assert.deepEqual(t.encode('a</s>b'), [3 + 97, 2, 3 + 98]);
  assert.equal(t.decode([1, 3 + 97, 2]), 'a');
  assert.equal(t.decode([1, 3 + 97, 2], { keepSpecial: true }), '<s>a</s>');
  assert.throws(() => t.decode([999]), /out of range/);
});

test('trainBpe: frequent pairs merge, never across pre-tokens, round-trips', () => {
  const texts = Array.from({ length: 50 }, (_, i) => `def merge_models(a, b):\n    return a + b * ${i}\n`);
  const t = trainBpe(texts, 20);
  assert.equal(t.merges.length, 20);
  assert.equal(t.vocabSize, 259 + 20);
  // the first merge is the most frequent adjacent byte pair (counted here independently)
  const counts = new Map<string, number>();
  for (const x of texts) for (const w of pretokenize(x)) {
    const b = [...Buffer.from(w)];
    for (let i = 0; i + 1 < b.length; i++) counts.set(`${b[i]},${b[i + 1]}`, (counts.get(`${b[i]},${b[i + 1]}`) ?? 0) + 1);
  }
  const best = Math.max(...counts.values());
  const [a, b] = t.merges[0];
  assert.equal(counts.get(`${a - 3},${b - 3}`), best);
  const s = 'def merge_models(x, y):\n    return x + y * 3\n';
  const ids = t.encode(s);
  assert.ok(ids.length < Buffer.byteLength(s) * 0.7, `compressed ${ids.length} vs ${Buffer.byteLength(s)} bytes`);
  assert.equal(t.decode(ids), s);
  for (const id of ids) {
    const piece = t.decode([id]);
    assert.ok(pretokenize(piece).length <= 1 || /^\s+$/.test(piece), `token ${JSON.stringify(piece)} crosses a pre-token boundary`);
  }
});

test('save/load as HF tokenizer.json', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nn-tok-'));
  try {
    const t = trainBpe(['hello hello hello world world'], 6);
    t.save(dir);
    const j = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
    assert.equal(j.model.type, 'BPE');
    assert.equal(j.pre_tokenizer.type, 'ByteLevel');
    assert.equal(j.pre_tokenizer.add_prefix_space, false);
    assert.equal(j.pre_tokenizer.use_regex, true);
    assert.equal(j.decoder.type, 'ByteLevel');
    assert.deepEqual(j.added_tokens.map((x: any) => [x.id, x.content, x.special]), [[0, '<pad>', true], [1, '<s>', true], [2, '</s>', true]]);
    assert.ok(Array.isArray(j.model.merges[0]) && j.model.merges[0].length === 2);
    assert.equal(j.model.vocab[j.model.merges[0].join('')], 259);
    assert.equal(Object.keys(j.model.vocab).length, t.vocabSize);
    const cfg = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'));
    assert.equal(cfg.eos_token, '</s>');
    const u = Tokenizer.load(dir);
    assert.deepEqual(u.merges, t.merges);
    assert.deepEqual(u.encode('hello world'), t.encode('hello world'));
    // older "a b" merge strings are accepted
    j.model.merges = j.model.merges.map((m: string[]) => m.join(' '));
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(j));
    assert.deepEqual(Tokenizer.load(dir).merges, t.merges);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
