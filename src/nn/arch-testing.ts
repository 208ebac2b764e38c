/**
 * Tiny seeded checkpoints of each supported architecture, as Hugging Face writes them (for tests and
 * the PyTorch comparison in scripts/torch-compare.ts): a Mistral-shaped one (sliding window, GQA,
 * untied), a Qwen2-shaped one (q/k/v biases, tied embeddings, use_sliding_window on the upper
 * layers) and a Llama-3-shaped one (rope_scaling "llama3", rope_theta 500000, attention_bias with o
 * bias). Weights are N(0, std) per tensor from (seed, name), norms 1 + N(0, 0.1), biases N(0, 0.1),
 * so every feature moves the logits. The tokenizer is the engine's byte-level BPE learnt from a
 * fixed text (the repo's own tokenizer format).
 */
import { deriveSeed, Rng } from '../io/testing.ts';
import { makeConfig, paramShapes, type LlamaConfig } from './model.ts';
import { saveWeights } from './checkpoint.ts';
import { trainBpe, type Tokenizer } from './tokenizer.ts';
import type { FloatDType } from '../tensor/dtype.ts';

export const TEST_ARCHS = ['mistral', 'qwen2', 'llama3'] as const;
export type TestArch = (typeof TEST_ARCHS)[number];

const TEXT = 'Question: Tom has 3 apples and buys 5 more. How many apples does he have? Answer: 3 + 5 = 8. #### 8\n';

/** The engine's byte-level tokenizer with a few merges (vocab 259 + merges). */
export function testTokenizer(merges = 24): Tokenizer {
  return trainBpe([TEXT, TEXT.toUpperCase()], merges);
}

/** The config of a tiny checkpoint of `arch` (vocab from the test tokenizer unless given). */
export function archConfig(arch: TestArch, o: { vocab?: number; window?: number; layers?: number } = {}): LlamaConfig {
  const vocab = o.vocab ?? testTokenizer().tokens.length;
  const common = { vocab_size: vocab, hidden_size: 32, intermediate_size: 48, num_hidden_layers: o.layers ?? 3, rms_norm_eps: 1e-6, max_position_embeddings: 256 };
  if (arch === 'mistral') return makeConfig({ ...common, model_type: 'mistral', num_attention_heads: 4, num_key_value_heads: 2, rope_theta: 10000, sliding_window: o.window ?? 8 });
  if (arch === 'qwen2')
    return makeConfig({
      ...common,
      model_type: 'qwen2',
      num_attention_heads: 4,
      num_key_value_heads: 1,
      rope_theta: 1000000,
      qkv_bias: true,
      tie_word_embeddings: true,
      sliding_window: o.window ?? 6,
      sliding_window_from: 1,
    });
  return makeConfig({
    ...common,
    model_type: 'llama',
    num_attention_heads: 2,
    num_key_value_heads: 1,
    head_dim: 24, // head_dim given explicitly, not hidden / heads
    rope_theta: 500000,
    qkv_bias: true,
    o_bias: true,
    // original 16 positions, so the scaling bends the frequencies the test positions use
    rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 },
  });
}

/** Seeded weights of `config` (see the file comment for the distributions). */
export function archWeights(config: LlamaConfig, seed: number): Map<string, Float32Array> {
  const w = new Map<string, Float32Array>();
  for (const [name, shape] of paramShapes(config)) {
    const a = new Float32Array(shape.reduce((x, y) => x * y, 1));
    const rng = new Rng(deriveSeed(seed, name));
    if (name.endsWith('norm.weight')) rng.fillNormal(a, 1, 0.1);
    else if (name.endsWith('.bias')) rng.fillNormal(a, 0, 0.1);
    else rng.fillNormal(a, 0, name === 'model.embed_tokens.weight' || name === 'lm_head.weight' ? 0.5 : 0.15);
    w.set(name, a);
  }
  return w;
}

/** Writes a tiny checkpoint of `arch` into `dir` (HF folder: config.json, weights, tokenizer). */
export function makeArchCheckpoint(dir: string, arch: TestArch, o: { seed: number; dtype?: FloatDType; maxShardBytes?: number; window?: number; layers?: number }): LlamaConfig {
  const tok = testTokenizer();
  const config = archConfig(arch, { vocab: tok.tokens.length, window: o.window, layers: o.layers });
  saveWeights(dir, config, archWeights(config, o.seed), tok, { dtype: o.dtype ?? 'F32', maxShardBytes: o.maxShardBytes });
  return config;
}
