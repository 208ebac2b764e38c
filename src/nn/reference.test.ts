// The reference forward's own checks: hand-computed small cases and structural identities. Its
// agreement with an independent implementation (llama.cpp on the exported GGUF) is tested in
// export-gguf.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../io/testing.ts';
import { referenceLogits, referenceGreedy, argmax } from './reference.ts';

interface Shape { vocab: number; hidden: number; inter: number; layers: number; heads: number; kvHeads: number; tied?: boolean }

function config(s: Shape, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'], vocab_size: s.vocab, hidden_size: s.hidden, intermediate_size: s.inter,
    num_hidden_layers: s.layers, num_attention_heads: s.heads, num_key_value_heads: s.kvHeads, rms_norm_eps: 1e-6,
    rope_theta: 10000, tie_word_embeddings: s.tied ?? false, ...extra,
  };
}

function randomWeights(s: Shape, seed: number, std = 0.3): Map<string, Float32Array> {
  const rng = new Rng(seed);
  const d = s.hidden / s.heads;
  const w = new Map<string, Float32Array>();
  const add = (name: string, n: number, mean = 0) => w.set(name, rng.fillNormal(new Float32Array(n), mean, std));
  add('model.embed_tokens.weight', s.vocab * s.hidden);
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}.`;
    add(p + 'input_layernorm.weight', s.hidden, 1);
    add(p + 'self_attn.q_proj.weight', s.heads * d * s.hidden);
    add(p + 'self_attn.k_proj.weight', s.kvHeads * d * s.hidden);
    add(p + 'self_attn.v_proj.weight', s.kvHeads * d * s.hidden);
    add(p + 'self_attn.o_proj.weight', s.hidden * s.heads * d);
    add(p + 'post_attention_layernorm.weight', s.hidden, 1);
    add(p + 'mlp.gate_proj.weight', s.inter * s.hidden);
    add(p + 'mlp.up_proj.weight', s.inter * s.hidden);
    add(p + 'mlp.down_proj.weight', s.hidden * s.inter);
  }
  add('model.norm.weight', s.hidden, 1);
  if (!s.tied) add('lm_head.weight', s.vocab * s.hidden);
  return w;
}

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string) => {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= tol * (1 + Math.abs(b[i]!)), `${what}[${i}]: ${a[i]} vs ${b[i]}`);
};

test('0 layers: logits = lm_head · rmsnorm(embed) (tied uses the embedding), by hand', () => {
  const s: Shape = { vocab: 3, hidden: 2, inter: 1, layers: 0, heads: 1, kvHeads: 1 };
  const w = new Map<string, Float32Array>([
    ['model.embed_tokens.weight', Float32Array.from([3, 4, 1, 0, 0, -2])],
    ['model.norm.weight', Float32Array.from([1, 2])],
    ['lm_head.weight', Float32Array.from([1, 0, 0, 1, 1, 1])],
  ]);
  // token 0: e = (3, 4), rms = sqrt((9+16)/2) → n = (3, 4)/sqrt(12.5+eps) · (1, 2)
  const r = Math.sqrt(12.5 + 1e-6);
  const n = [3 / r, 8 / r];
  close(referenceLogits(w, config(s), [0])[0]!, [n[0]!, n[1]!, n[0]! + n[1]!], 1e-6, 'untied');
  w.delete('lm_head.weight');
  // tied: rows of the embedding (3,4), (1,0), (0,-2)
  close(referenceLogits(w, config({ ...s, tied: true }), [0])[0]!, [3 * n[0]! + 4 * n[1]!, n[0]!, -2 * n[1]!], 1e-6, 'tied');
});

test('RoPE: 2-d head, identity projections: attention weights follow cos(angle difference) with HF rotation sign', () => {
  // hidden 2, one head of d = 2: inv_freq = 1, so position p rotates by p radians. q = k = v = n (identity),
  // o_proj identity, MLP zero. Position 1 attends to keys 0 and 1 with scores
  // (R(1)n1)·(R(0)n0) = |n1||n0|cos(φ1 + 1 − φ0) and |n1|² (same rotation), scaled by 1/sqrt(2).
  const s: Shape = { vocab: 2, hidden: 2, inter: 1, layers: 1, heads: 1, kvHeads: 1 };
  const I = Float32Array.from([1, 0, 0, 1]);
  const w = new Map<string, Float32Array>([
    ['model.embed_tokens.weight', Float32Array.from([1, 0, 0.6, 0.8])],
    ['model.layers.0.input_layernorm.weight', Float32Array.from([1, 1])],
    ['model.layers.0.self_attn.q_proj.weight', I],
    ['model.layers.0.self_attn.k_proj.weight', I],
    ['model.layers.0.self_attn.v_proj.weight', I],
    ['model.layers.0.self_attn.o_proj.weight', I],
    ['model.layers.0.post_attention_layernorm.weight', Float32Array.from([1, 1])],
    ['model.layers.0.mlp.gate_proj.weight', new Float32Array(2)],
    ['model.layers.0.mlp.up_proj.weight', new Float32Array(2)],
    ['model.layers.0.mlp.down_proj.weight', new Float32Array(2)],
    ['model.norm.weight', Float32Array.from([1, 1])],
    ['lm_head.weight', I],
  ]);
  // rmsnorm of a unit vector in 2-d multiplies it by sqrt(2)
  const eps = 1e-6;
  const g = 1 / Math.sqrt(0.5 + eps);
  const e0 = [1, 0];
  const e1 = [0.6, 0.8];
  const n0 = e0.map((x) => x * g);
  const n1 = e1.map((x) => x * g);
  const phi0 = 0;
  const phi1 = Math.atan2(0.8, 0.6);
  const s10 = (g * g * Math.cos(phi1 + 1 - phi0)) / Math.sqrt(2);
  const s11 = (g * g) / Math.sqrt(2);
  const a0 = Math.exp(s10) / (Math.exp(s10) + Math.exp(s11));
  const attn = [a0 * n0[0]! + (1 - a0) * n1[0]!, a0 * n0[1]! + (1 - a0) * n1[1]!];
  const h = [e1[0]! + attn[0]!, e1[1]! + attn[1]!];
  const rr = Math.sqrt((h[0]! ** 2 + h[1]! ** 2) / 2 + eps);
  const logits = referenceLogits(w, config(s, { rope_theta: 1e9 }), [0, 1]);
  close(logits[1]!, [h[0]! / rr, h[1]! / rr], 1e-6, 'position 1');
});

test('causal: logits at a position do not depend on later tokens', () => {
  const s: Shape = { vocab: 20, hidden: 16, inter: 24, layers: 2, heads: 4, kvHeads: 2 };
  const w = randomWeights(s, 1);
  const a = referenceLogits(w, config(s), [3, 7, 1, 9]);
  const b = referenceLogits(w, config(s), [3, 7, 1, 12, 0]);
  for (let t = 0; t < 3; t++) close(a[t]!, b[t]!, 1e-9, `position ${t}`);
  assert.notDeepEqual(Array.from(a[3]!), Array.from(b[3]!));
});

test('GQA: kv_heads 2 equals kv_heads 4 with each kv head duplicated for its pair of query heads', () => {
  const s: Shape = { vocab: 20, hidden: 16, inter: 24, layers: 2, heads: 4, kvHeads: 2 };
  const w = randomWeights(s, 2);
  const d = 4;
  const wide = new Map(w);
  for (let l = 0; l < s.layers; l++) {
    for (const proj of ['k_proj', 'v_proj']) {
      const name = `model.layers.${l}.self_attn.${proj}.weight`;
      const src = w.get(name)!;
      const dst = new Float32Array(4 * d * s.hidden);
      for (let h = 0; h < 4; h++) dst.set(src.subarray(Math.floor(h / 2) * d * s.hidden, (Math.floor(h / 2) + 1) * d * s.hidden), h * d * s.hidden);
      wide.set(name, dst);
    }
  }
  const ids = [5, 2, 19, 0, 7];
  const a = referenceLogits(w, config(s), ids);
  const b = referenceLogits(wide, config({ ...s, kvHeads: 4 }), ids);
  for (let t = 0; t < ids.length; t++) close(a[t]!, b[t]!, 1e-9, `position ${t}`);
});

test('rope_parameters.rope_theta is used (newer configs) and matters', () => {
  const s: Shape = { vocab: 20, hidden: 16, inter: 24, layers: 1, heads: 2, kvHeads: 2 };
  const w = randomWeights(s, 3);
  const ids = [1, 2, 3, 4];
  const top = referenceLogits(w, config(s, { rope_theta: 500 }), ids);
  const nested = referenceLogits(w, config(s, { rope_theta: undefined, rope_parameters: { rope_type: 'default', rope_theta: 500 } }), ids);
  const dflt = referenceLogits(w, config(s, { rope_theta: undefined }), ids);
  close(nested[3]!, top[3]!, 0, 'nested theta');
  assert.ok(Math.abs(dflt[3]![0]! - top[3]![0]!) > 1e-6, 'theta changes the result');
  close(dflt[0]!, top[0]!, 1e-12, 'position 0 has no rotation');
  assert.throws(() => referenceLogits(w, config(s, { rope_scaling: { type: 'linear', factor: 2 } }), ids), /rope_scaling is not implemented/);
});

test('greedy = argmax of the last position, fed back; bad ids and missing tensors are named', () => {
  const s: Shape = { vocab: 20, hidden: 16, inter: 24, layers: 1, heads: 2, kvHeads: 1, tied: true };
  const w = randomWeights(s, 4);
  const out = referenceGreedy(w, config(s), [3, 4], 3);
  const seq = [3, 4];
  for (let i = 0; i < 3; i++) {
    const l = referenceLogits(w, config(s), seq);
    seq.push(argmax(l[l.length - 1]!));
  }
  assert.deepEqual(out, seq.slice(2));
  assert.throws(() => referenceLogits(w, config(s), [20]), /token 0 has id 20, outside \[0, 20\)/);
  w.delete('model.layers.0.mlp.up_proj.weight');
  assert.throws(() => referenceLogits(w, config(s), [1]), /missing tensor 'model\.layers\.0\.mlp\.up_proj\.weight'/);
});
