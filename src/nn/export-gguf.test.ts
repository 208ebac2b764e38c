import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { makeLlamaCheckpoint, makeTempDir } from '../io/testing.ts';
import { Checkpoint } from '../io/checkpoint.ts';
import { readGguf, ggufGet, readGgufTensorF32 } from '../io/gguf.ts';
import { exportGguf, permuteRopeRows, ExportError } from './export-gguf.ts';
import { Tokenizer, trainBpe } from './tokenizer.ts';
import { referenceGreedy, referenceLogits, loadReferenceModel, argmax } from './reference.ts';

// ---------------------------------------------------------------- fixtures

/** GPT-2 bytes_to_unicode: the printable character standing for each byte. */
function byteToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const map: string[] = new Array(256);
  for (const b of bs) map[b] = String.fromCodePoint(b);
  let n = 0;
  for (let b = 0; b < 256; b++) if (map[b] === undefined) map[b] = String.fromCodePoint(256 + n++);
  return map;
}
const B2U = byteToUnicode();

/**
 * Writes the project's tokenizer.json: ids 0 <pad>, 1 <s>, 2 </s> (special), 3..258 the bytes, then
 * one token per merge. `pairStyle` picks ["a","b"] (new) or "a b" (old) merge encoding.
 */
function writeTokenizer(dir: string, merges: Array<[string, string]>, pairStyle: 'array' | 'string' = 'array'): void {
  const vocab: Record<string, number> = { '<pad>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[B2U[b]!] = 3 + b;
  merges.forEach(([a, b], i) => (vocab[a + b] = 259 + i));
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const tj = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(0, '<pad>'), special(1, '<s>'), special(2, '</s>')],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab,
      merges: merges.map(([a, b]) => (pairStyle === 'array' ? [a, b] : `${a} ${b}`)),
    },
  };
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tj));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ add_bos_token: false, bos_token: '<s>', eos_token: '</s>', pad_token: '<pad>', model_max_length: 2048 }));
}

/** A random tiny Llama with weights ~ N(0, std) (norms 1 + N(0, std)), so greedy argmax margins are clear. */
function makeModel(root: string, name: string, o: { vocab: number; tied: boolean; seed: number; std: number; merges?: Array<[string, string]> }): string {
  const base = join(root, `${name}-base`);
  const shape = { layers: 2, hidden: 64, intermediate: 96, vocab: o.vocab, heads: 4, kvHeads: 2, dtype: 'F32' as const, tieEmbeddings: o.tied };
  makeLlamaCheckpoint(base, { ...shape, seed: o.seed });
  const dir = join(root, name);
  // perturb adds N(0, 1)·std to the N(0, 0.02) base: weights ≈ N(0, std)
  makeLlamaCheckpoint(dir, { ...shape, seed: o.seed + 1, perturb: { from: base, scale: o.std } });
  rmSync(base, { recursive: true, force: true });
  writeTokenizer(dir, o.merges ?? []);
  return dir;
}

// ---------------------------------------------------------------- llama.cpp (lazy)

type NodeLlamaCpp = typeof import('node-llama-cpp');
type Llama = Awaited<ReturnType<NodeLlamaCpp['getLlama']>>;
let nlc: NodeLlamaCpp;
let llama: Llama;
let tmp: { path: string; cleanup: () => void };

before(async () => {
  tmp = makeTempDir('selfdev-gguf-');
  nlc = await import('node-llama-cpp');
  llama = await nlc.getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, skipDownload: true, progressLogs: false, logLevel: nlc.LlamaLogLevel.error, maxThreads: 1 });
});
after(async () => {
  await llama?.dispose();
  tmp?.cleanup();
});

async function withModel<T>(path: string, fn: (m: Awaited<ReturnType<Llama['loadModel']>>) => Promise<T>): Promise<T> {
  const model = await llama.loadModel({ modelPath: path, gpuLayers: 0, useMmap: false });
  try {
    return await fn(model);
  } finally {
    await model.dispose();
  }
}

/** llama.cpp greedy continuation (temperature 0) of `prompt`, and its next-token distributions along prompt+continuation. */
async function llamaGreedy(path: string, prompts: number[][], n: number): Promise<Array<{ tokens: number[]; probs: Array<Map<number, number>> }>> {
  return withModel(path, async (model) => {
    // f32 KV cache and no flash attention: llama.cpp's defaults (f16 cache) would add ~1e-3 noise
    const ctx = await model.createContext({
      contextSize: 64, batchSize: 64, threads: 1, sequences: 1, flashAttention: false,
      experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32',
    });
    try {
      const seq = ctx.getSequence();
      const res: Array<{ tokens: number[]; probs: Array<Map<number, number>> }> = [];
      for (const p of prompts) {
        await seq.clearHistory();
        const tokens: number[] = [];
        for await (const t of seq.evaluate(p as never, { temperature: 0 })) {
          tokens.push(t as number);
          if (tokens.length >= n) break;
        }
        await seq.clearHistory();
        // teacher-forced: the distribution after every position of prompt + continuation
        const full = [...p, ...tokens];
        const out = await seq.controlledEvaluate(full.map((t) => [t, { generateNext: { probabilities: true } }] as never));
        const probs = full.map((_, i) => {
          const m = out[i]?.next?.probabilities;
          assert.ok(m, `llama.cpp gave no probabilities at position ${i}`);
          return m as Map<number, number>;
        });
        res.push({ tokens, probs });
      }
      return res;
    } finally {
      await ctx.dispose();
    }
  });
}

function softmax(x: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of x) if (v > max) max = v;
  const e = Float64Array.from(x, (v) => Math.exp(v - max));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

const PROMPTS = [[3 + 72, 3 + 105], [3 + 104, 3 + 101, 3 + 108, 3 + 108, 3 + 111], [1, 50, 200, 7]];
const N_NEW = 8;

/** Gap between the largest and second-largest logit. */
function margin(x: Float32Array): number {
  const top = argmax(x);
  let second = -Infinity;
  for (let i = 0; i < x.length; i++) if (i !== top && x[i]! > second) second = x[i]!;
  return x[top]! - second;
}

/**
 * Greedy continuations must agree token for token, except that a step whose reference top-2 logit
 * margin is below `minMargin` is a near tie the two float orders may break differently: comparison of
 * that prompt stops there (its later tokens have different prefixes). Next-token probabilities
 * (teacher-forced along llama.cpp's sequence) must agree within `maxProbDiff` everywhere.
 */
async function checkAgreement(dir: string, gguf: string, opts: { maxProbDiff: number; minMargin: number; minCompared: number }): Promise<{ compared: number; total: number; maxDiff: number }> {
  const { weights, config } = loadReferenceModel(dir);
  const got = await llamaGreedy(gguf, PROMPTS, N_NEW);
  let compared = 0;
  let maxDiff = 0;
  for (let k = 0; k < PROMPTS.length; k++) {
    const prompt = PROMPTS[k]!;
    const ref = referenceGreedy(weights, config, prompt, N_NEW);
    const { tokens, probs } = got[k]!;
    const full = [...prompt, ...tokens];
    const logits = referenceLogits(weights, config, full);
    for (let i = 0; i < full.length; i++) {
      const p = softmax(logits[i]!);
      for (const [tok, q] of probs[i]!) maxDiff = Math.max(maxDiff, Math.abs(q - p[tok]!));
    }
    for (let i = 0; i < N_NEW; i++) {
      const refLogits = referenceLogits(weights, config, [...prompt, ...ref.slice(0, i)]);
      if (margin(refLogits[refLogits.length - 1]!) < opts.minMargin) break;
      assert.equal(tokens[i], ref[i], `prompt ${k} [${prompt}] step ${i}: llama.cpp [${tokens}] vs reference [${ref}]`);
      compared++;
    }
  }
  const total = PROMPTS.length * N_NEW;
  assert.ok(maxDiff <= opts.maxProbDiff, `next-token probabilities differ by up to ${maxDiff} (allowed ${opts.maxProbDiff})`);
  assert.ok(compared >= opts.minCompared * total, `only ${compared}/${total} greedy steps had a clear reference margin`);
  return { compared, total, maxDiff };
}

// ---------------------------------------------------------------- tests

test('f32 GGUF of an untied GQA Llama: llama.cpp greedy = reference greedy, token for token', async (t) => {
  const dir = makeModel(tmp.path, 'untied', { vocab: 300, tied: false, seed: 11, std: 0.3 });
  const out = join(tmp.path, 'untied.gguf');
  exportGguf(dir, out, { dtype: 'f32' });
  const r = await checkAgreement(dir, out, { maxProbDiff: 1e-4, minMargin: 1e-3, minCompared: 0.75 });
  t.diagnostic(`greedy steps compared ${r.compared}/${r.total}, max |Δp| ${r.maxDiff.toExponential(2)}`);
});

test('f32 GGUF of a tied-embedding Llama (no output.weight): llama.cpp agrees with the reference', async (t) => {
  const dir = makeModel(tmp.path, 'tied', { vocab: 277, tied: true, seed: 23, std: 0.3 });
  const out = join(tmp.path, 'tied.gguf');
  exportGguf(dir, out, { dtype: 'f32' });
  const f = readGguf(out);
  assert.ok(!f.tensors.some((t) => t.name === 'output.weight'));
  const r = await checkAgreement(dir, out, { maxProbDiff: 1e-4, minMargin: 1e-3, minCompared: 0.75 });
  t.diagnostic(`greedy steps compared ${r.compared}/${r.total}, max |Δp| ${r.maxDiff.toExponential(2)}`);
});

test('f16 GGUF loads and mostly agrees (f16 weights, f32 norms)', async (t) => {
  const dir = makeModel(tmp.path, 'half', { vocab: 300, tied: false, seed: 31, std: 0.3 });
  const out = join(tmp.path, 'half.gguf');
  exportGguf(dir, out, { dtype: 'f16' });
  const f = readGguf(out);
  assert.equal(ggufGet(f, 'general.file_type'), 1);
  for (const t of f.tensors) assert.equal(t.typeName, t.shape.length === 1 ? 'F32' : 'F16', t.name);
  // f16 rounding (relative 2^-11) of every weight moves logits by ~1e-2: only clear margins compared
  const r = await checkAgreement(dir, out, { maxProbDiff: 0.02, minMargin: 0.1, minCompared: 0.5 });
  t.diagnostic(`greedy steps compared ${r.compared}/${r.total}, max |Δp| ${r.maxDiff.toExponential(2)}`);
});

test('llama.cpp tokenizes ASCII with the exported vocab like byte-level BPE does', async () => {
  const merges: Array<[string, string]> = [['h', 'e'], ['l', 'l'], ['Ġ', 't'], ['he', 'll']];
  const plain = makeModel(tmp.path, 'tok0', { vocab: 259, tied: true, seed: 5, std: 0.3 });
  const merged = makeModel(tmp.path, 'tok4', { vocab: 270, tied: true, seed: 6, std: 0.3, merges });
  exportGguf(plain, join(tmp.path, 'tok0.gguf'));
  exportGguf(merged, join(tmp.path, 'tok4.gguf'));
  const bytesOf = (s: string) => [...Buffer.from(s, 'utf8')].map((b) => b + 3);
  const strings = ['hello world', 'The cat sat.\nOn 12 mats!', 'a  b\tc', '~{}|`'];
  await withModel(join(tmp.path, 'tok0.gguf'), async (m) => {
    for (const s of strings) assert.deepEqual(m.tokenize(s, false) as number[], bytesOf(s), JSON.stringify(s));
  });
  // merges: he=259, ll=260, Ġt=261, hell=262 (rank order); pre-tokens split before spaces
  const c = (ch: string) => ch.charCodeAt(0) + 3;
  const expected: Array<[string, number[]]> = [
    ['hello', [262, c('o')]],
    ['the hell', [c('t'), 259, c(' '), 262]],
    [' then', [261, 259, c('n')]],
    ['shell', [c('s'), 262]],
  ];
  await withModel(join(tmp.path, 'tok4.gguf'), async (m) => {
    for (const [s, ids] of expected) assert.deepEqual(m.tokenize(s, false) as number[], ids, JSON.stringify(s));
    assert.equal(m.tokens.bos, 1);
    assert.equal(m.tokens.eos, 2);
  });
});

test("llama.cpp tokenizes like the project's Tokenizer (trained BPE saved by Tokenizer.save)", async () => {
  const corpus = [
    'Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May.',
    "How many clips did Natalia sell altogether in April and May? She's got 72 clips; they'll sell.",
    'Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting.\n#### 10',
  ];
  const tok = trainBpe(corpus, 60);
  const dir = makeModel(tmp.path, 'trained', { vocab: tok.vocabSize, tied: true, seed: 8, std: 0.3 });
  tok.save(dir);
  const reloaded = Tokenizer.load(dir);
  const out = join(tmp.path, 'trained.gguf');
  exportGguf(dir, out);
  const strings = [...corpus, 'She sold 1234567 clips!!  Then   3 more.\n\nAnswer: 42', "it's we're I'd you've", 'tabs\tand\r\nCRLF', 'café – naïve 🙂'];
  await withModel(out, async (m) => {
    for (const s of strings) assert.deepEqual(m.tokenize(s, false) as number[], reloaded.encode(s), JSON.stringify(s));
  });
});

test('GGUF metadata, names, permutation and values match the HF folder', () => {
  const dir = makeModel(tmp.path, 'meta', { vocab: 262, tied: false, seed: 41, std: 0.1, merges: [['a', 'b'], ['c', 'd'], ['ab', 'cd']] });
  const cfgPath = join(dir, 'config.json');
  const cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
  delete cfg.rope_theta;
  cfg.rope_parameters = { rope_type: 'default', rope_theta: 50000 };
  writeFileSync(cfgPath, JSON.stringify(cfg));
  const out = join(tmp.path, 'meta.gguf');
  const res = exportGguf(dir, out, { name: 'tiny' });
  assert.equal(res.tensors, 2 * 9 + 3);
  const f = readGguf(out);
  assert.equal(f.version, 3);
  const g = (k: string) => ggufGet(f, k);
  assert.equal(g('general.architecture'), 'llama');
  assert.equal(g('general.name'), 'tiny');
  assert.equal(g('general.file_type'), 0);
  assert.equal(g('llama.rope.freq_base'), 50000);
  assert.equal(g('llama.context_length'), 2048);
  assert.equal(g('llama.embedding_length'), 64);
  assert.equal(g('llama.block_count'), 2);
  assert.equal(g('llama.feed_forward_length'), 96);
  assert.equal(g('llama.attention.head_count'), 4);
  assert.equal(g('llama.attention.head_count_kv'), 2);
  assert.equal(g('llama.rope.dimension_count'), 16);
  assert.equal(g('llama.vocab_size'), 262);
  assert.equal(f.metadata.get('llama.attention.layer_norm_rms_epsilon')?.type, 'f32');
  assert.equal(g('llama.attention.layer_norm_rms_epsilon'), Math.fround(1e-6));
  assert.equal(g('tokenizer.ggml.model'), 'gpt2');
  assert.equal(g('tokenizer.ggml.pre'), 'gpt-2');
  const tokens = g('tokenizer.ggml.tokens') as string[];
  assert.equal(tokens.length, 262);
  assert.deepEqual(tokens.slice(0, 3), ['<pad>', '<s>', '</s>']);
  assert.equal(tokens[3 + 32], 'Ġ');
  assert.equal(tokens[3 + 10], 'Ċ');
  assert.equal(tokens[3 + 65], 'A');
  assert.deepEqual(tokens.slice(259), ['ab', 'cd', 'abcd']);
  const types = g('tokenizer.ggml.token_type') as number[];
  assert.deepEqual(types.slice(0, 4), [3, 3, 3, 1]);
  assert.ok(types.slice(3).every((t) => t === 1));
  assert.deepEqual(g('tokenizer.ggml.merges'), ['a b', 'c d', 'ab cd']);
  assert.equal(g('tokenizer.ggml.bos_token_id'), 1);
  assert.equal(g('tokenizer.ggml.eos_token_id'), 2);
  assert.equal(g('tokenizer.ggml.padding_token_id'), 0);
  assert.equal(g('tokenizer.ggml.add_bos_token'), false);

  const ck = Checkpoint.open(dir);
  try {
    for (const t of f.tensors) assert.equal(t.offset % 32, 0, t.name);
    const q = ck.readF32('model.layers.1.self_attn.q_proj.weight');
    const gq = readGgufTensorF32(f, 'blk.1.attn_q.weight');
    const qInfo = f.tensors.find((t) => t.name === 'blk.1.attn_q.weight')!;
    assert.deepEqual(qInfo.dims, [64, 64]);
    // row s·8 + j of head h (d = 16) lands at row 2j + s: check two rows by hand
    const row = (a: Float32Array, r: number) => Array.from(a.subarray(r * 64, (r + 1) * 64));
    assert.deepEqual(row(gq, 16 * 2 + 2 * 3 + 1), row(q, 16 * 2 + 8 + 3));
    assert.deepEqual(row(gq, 16 * 2 + 2 * 3), row(q, 16 * 2 + 3));
    assert.deepEqual(Array.from(gq), Array.from(permuteRopeRows(q, 4, 16, 64)));
    const k = ck.readF32('model.layers.0.self_attn.k_proj.weight');
    assert.deepEqual(f.tensors.find((t) => t.name === 'blk.0.attn_k.weight')!.dims, [64, 32]);
    assert.deepEqual(Array.from(readGgufTensorF32(f, 'blk.0.attn_k.weight')), Array.from(permuteRopeRows(k, 2, 16, 64)));
    for (const [hf, gg] of [['model.layers.0.mlp.down_proj.weight', 'blk.0.ffn_down.weight'], ['model.norm.weight', 'output_norm.weight'], ['lm_head.weight', 'output.weight'], ['model.embed_tokens.weight', 'token_embd.weight']] as const) {
      assert.deepEqual(Array.from(readGgufTensorF32(f, gg)), Array.from(ck.readF32(hf)), gg);
    }
    assert.deepEqual(f.tensors.find((t) => t.name === 'blk.0.ffn_down.weight')!.dims, [96, 64]);
  } finally {
    ck.close();
  }
});

test('bad model folders fail with specific errors before any output is written', () => {
  const dir = makeModel(tmp.path, 'bad', { vocab: 259, tied: false, seed: 3, std: 0.1 });
  const cfgPath = join(dir, 'config.json');
  const good = readFileSync(cfgPath, 'utf8');
  const o = join(tmp.path, 'bad-out.gguf');
  const expectFail = (re: RegExp) => {
    assert.throws(() => exportGguf(dir, o), (e: Error) => e instanceof ExportError && re.test(e.message), String(re));
    assert.ok(!readdirSync(tmp.path).some((n) => n.startsWith('bad-out')), 'no output or temp file left behind');
  };
  const tryWith = (edit: (c: Record<string, unknown>) => void, re: RegExp) => {
    const c = JSON.parse(good) as Record<string, unknown>;
    edit(c);
    writeFileSync(cfgPath, JSON.stringify(c));
    expectFail(re);
  };
  tryWith((c) => delete c.hidden_size, /config\.json: missing required field 'hidden_size'/);
  tryWith((c) => (c.architectures = ['MistralForCausalLM']), /unsupported architecture 'MistralForCausalLM'/);
  tryWith((c) => (c.rope_scaling = { type: 'linear', factor: 2 }), /rope_scaling .* is not supported/);
  tryWith((c) => (c.rope_parameters = { rope_type: 'yarn', rope_theta: 1e4 }), /rope_type 'yarn' is not supported/);
  tryWith((c) => (c.num_key_value_heads = 3), /not a multiple of num_key_value_heads 3/);
  tryWith((c) => (c.intermediate_size = 95), /tensor 'model\.layers\.0\.mlp\.gate_proj\.weight' has shape \[96,64\], config implies \[95,64\]/);
  tryWith((c) => (c.vocab_size = 258), /id 258, but config vocab_size is 258/);
  writeFileSync(cfgPath, good);
  rmSync(join(dir, 'tokenizer.json'));
  expectFail(/tokenizer\.json: missing/);
  assert.throws(() => exportGguf(dir, o, { dtype: 'q8' as never }), /unsupported GGUF dtype 'q8'/);
});
