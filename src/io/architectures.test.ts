import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from './testing.ts';
import { readLlamaFolder } from './model-config.ts';
import { scaledInvFreq, SUPPORTED_ARCHITECTURES } from './architectures.ts';
import { makeArchCheckpoint } from '../nn/arch-testing.ts';
import { readConfig, hfConfigJson } from '../nn/checkpoint.ts';

const tmp = makeTempDir('selfdev-arch-');
after(() => tmp.cleanup());

let n = 0;
/** A tiny checkpoint of `arch` whose config.json is then edited by `edit` (fields as HF writes them). */
function folder(arch: 'mistral' | 'qwen2' | 'llama3', edit: (c: Record<string, unknown>) => void = () => {}): string {
  const dir = join(tmp.path, `m${n++}`);
  makeArchCheckpoint(dir, arch, { seed: 7 });
  const p = join(dir, 'config.json');
  const c = JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
  edit(c);
  writeFileSync(p, JSON.stringify(c, null, 2));
  return dir;
}

test('a MistralForCausalLM config as HF writes it (openchat-3.5 / Mistral-7B fields): GQA, sliding_window carried, no biases', () => {
  const dir = folder('mistral', (c) => {
    // the fields of Mistral-7B-v0.1's config.json, at tiny sizes
    Object.assign(c, { architectures: ['MistralForCausalLM'], model_type: 'mistral', sliding_window: 4096, rope_theta: 10000.0, torch_dtype: 'bfloat16', use_cache: true });
    delete c.head_dim;
  });
  const s = readLlamaFolder(dir);
  assert.equal(s.model_type, 'mistral');
  assert.equal(s.sliding_window, 4096);
  assert.equal(s.sliding_window_from, 0);
  assert.equal(s.num_key_value_heads, 2);
  assert.equal(s.head_dim, 8);
  assert.equal(s.qkv_bias, false);
  assert.equal(s.tie_word_embeddings, false);
  // sliding_window null (Mistral-7B-v0.2 and later) is full attention
  assert.equal(readLlamaFolder(folder('mistral', (c) => (c.sliding_window = null))).sliding_window, null);
});

test('a Qwen2ForCausalLM config as HF writes it (Qwen2.5 fields): q/k/v biases, tied embeddings, use_sliding_window and max_window_layers', () => {
  const qwen = (c: Record<string, unknown>) =>
    Object.assign(c, { architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', max_window_layers: 2, rope_theta: 1000000.0, sliding_window: 32768, tie_word_embeddings: true, use_sliding_window: false });
  const off = readLlamaFolder(folder('qwen2', qwen));
  assert.equal(off.model_type, 'qwen2');
  assert.equal(off.qkv_bias, true);
  assert.equal(off.o_bias, false);
  assert.equal(off.tie_word_embeddings, true);
  assert.equal(off.sliding_window, null, 'use_sliding_window false: full attention whatever sliding_window says');
  const on = readLlamaFolder(folder('qwen2', (c) => (qwen(c), Object.assign(c, { use_sliding_window: true, sliding_window: 5 }))));
  assert.deepEqual([on.sliding_window, on.sliding_window_from], [5, 2]);
  // transformers >= 4.53 writes layer_types
  const lt = readLlamaFolder(folder('qwen2', (c) => Object.assign(c, { use_sliding_window: true, sliding_window: 5, layer_types: ['full_attention', 'sliding_attention', 'sliding_attention'] })));
  assert.deepEqual([lt.sliding_window, lt.sliding_window_from], [5, 1]);
  const ltOff = readLlamaFolder(folder('qwen2', (c) => Object.assign(c, { use_sliding_window: false, sliding_window: 5, layer_types: ['full_attention', 'sliding_attention', 'sliding_attention'] })));
  assert.equal(ltOff.sliding_window, null, 'layer_types without use_sliding_window: no window (as transformers)');
  // the q/k/v biases are part of the checkpoint: a Qwen2 config over bias-free tensors is refused
  assert.throws(() => readLlamaFolder(folder('mistral', (c) => Object.assign(c, { architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2' }))), /tensor 'model\.layers\.0\.self_attn\.q_proj\.bias' is missing/);
});

test('a Llama-3 config as HF writes it: rope_scaling rope_type "llama3", rope_theta 500000, attention_bias, head_dim given', () => {
  const dir = folder('llama3', (c) => {
    c.rope_scaling = { factor: 8.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 16, rope_type: 'llama3' };
    c.bos_token_id = 1;
    c.eos_token_id = [2, 3]; // Llama-3-Instruct lists several
  });
  const s = readLlamaFolder(dir);
  assert.equal(s.model_type, 'llama');
  assert.deepEqual(s.rope_scaling, { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 });
  assert.equal(s.rope_theta, 500000);
  assert.equal(s.head_dim, 24);
  assert.deepEqual([s.qkv_bias, s.o_bias], [true, true]);
  // the engine's loader reads the same
  const cfg = readConfig(dir);
  assert.deepEqual([cfg.model_type, cfg.qkv_bias, cfg.o_bias, cfg.rope_scaling?.factor, cfg.head_dim], ['llama', true, true, 8, 24]);
  // transformers 5 writes rope_parameters instead
  const v5 = readLlamaFolder(folder('llama3', (c) => {
    c.rope_parameters = { ...(c.rope_scaling as object), rope_theta: 500000 };
    delete c.rope_scaling;
  }));
  assert.equal(v5.rope_scaling?.factor, 8);
});

test('Llama 3 frequency scaling: short wavelengths kept, long ones divided by factor, smooth in between', () => {
  const s = { rope_type: 'llama3' as const, factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
  const d = 128;
  const base = Float64Array.from({ length: d / 2 }, (_, i) => 1 / Math.pow(500000, (2 * i) / d));
  const scaled = scaledInvFreq(base.slice(), s);
  let kept = 0, divided = 0, mixed = 0;
  for (let i = 0; i < d / 2; i++) {
    const wave = (2 * Math.PI) / base[i]!;
    if (wave < 8192 / 4) {
      assert.equal(scaled[i], base[i]);
      kept++;
    } else if (wave > 8192) {
      assert.ok(Math.abs(scaled[i]! - base[i]! / 8) <= 1e-18);
      divided++;
    } else {
      assert.ok(scaled[i]! < base[i]! && scaled[i]! > base[i]! / 8, `band ${i} lies between`);
      mixed++;
    }
  }
  assert.ok(kept > 0 && divided > 0 && mixed > 0, `all three bands used: ${kept} kept, ${mixed} interpolated, ${divided} divided`);
  // the highest frequency is never scaled, the lowest is divided by factor exactly
  assert.equal(scaled[0], 1);
  assert.ok(Math.abs(scaled[63]! - base[63]! / 8) < 1e-20);
});

test('an unsupported architecture fails naming it and the supported ones', () => {
  const supported = /supported: LlamaForCausalLM \(model_type "llama"\), MistralForCausalLM \(model_type "mistral"\), Qwen2ForCausalLM \(model_type "qwen2"\)/;
  for (const [edit, what] of [
    [(c: Record<string, unknown>) => Object.assign(c, { architectures: ['GemmaForCausalLM'], model_type: 'gemma' }), /unsupported architecture "GemmaForCausalLM"/],
    [(c: Record<string, unknown>) => (delete c.architectures, (c.model_type = 'phi3')), /unsupported model_type "phi3"/],
    [(c: Record<string, unknown>) => (c.model_type = null), /model_type must be a string/],
  ] as const) {
    assert.throws(() => readLlamaFolder(folder('mistral', edit)), (e: Error) => what.test(e.message) && supported.test(e.message));
    assert.throws(() => readConfig(folder('mistral', edit)), (e: Error) => what.test(e.message) && supported.test(e.message));
  }
  assert.deepEqual(Object.keys(SUPPORTED_ARCHITECTURES), ['LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM']);
});

test('features the engine does not run are refused by name, never ignored', () => {
  const cases: Array<[(c: Record<string, unknown>) => void, RegExp]> = [
    [(c) => (c.model_type = 'llama'), /model_type "llama" does not match architectures \["MistralForCausalLM"\]/],
    [(c) => (c.mlp_bias = true), /mlp_bias is not supported/],
    [(c) => (c.attention_bias = true), /attention_bias true does not fit model_type "mistral"/],
    [(c) => (c.sliding_window = 0), /sliding_window must be a positive integer or null, got 0/],
    [(c) => (c.rope_scaling = { rope_type: 'yarn', factor: 4 }), /rope_scaling\.rope_type "yarn" is not supported \(only "default" and "llama3"\)/],
    [(c) => (c.rope_scaling = { rope_type: 'llama3', factor: 8, low_freq_factor: 4, high_freq_factor: 1, original_max_position_embeddings: 16 }), /high_freq_factor 1 must be more than low_freq_factor 4/],
    [(c) => (c.rope_scaling = { type: 'linear', factor: 2 }), /rope_type "linear" is not supported/],
    [(c) => Object.assign(c, { layer_types: ['sliding_attention', 'full_attention', 'full_attention'] }), /full attention after sliding-window layers is not supported/],
  ];
  for (const [edit, re] of cases) assert.throws(() => readLlamaFolder(folder('mistral', edit)), re);
  assert.throws(() => readLlamaFolder(folder('llama3', (c) => (c.sliding_window = 4))), /sliding_window is not part of model_type "llama"/);
});

test('config.json written by the engine for each architecture reads back to the same config', () => {
  for (const arch of ['mistral', 'qwen2', 'llama3'] as const) {
    const dir = folder(arch);
    const cfg = readConfig(dir);
    const j = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(j, hfConfigJson(cfg, 'F32'), arch);
    assert.equal((j.architectures as string[])[0], { mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM', llama3: 'LlamaForCausalLM' }[arch]);
    const s = readLlamaFolder(dir);
    for (const k of ['model_type', 'qkv_bias', 'o_bias', 'sliding_window', 'sliding_window_from', 'tie_word_embeddings', 'head_dim', 'rope_theta'] as const) assert.deepEqual(s[k], cfg[k], `${arch} ${k}`);
    assert.deepEqual(s.rope_scaling, cfg.rope_scaling, `${arch} rope_scaling`);
  }
});
