import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Checkpoint } from './checkpoint.ts';
import { Rng, makeLlamaCheckpoint, makeTempDir } from './testing.ts';

const tmp = makeTempDir('selfdev-fixture-');
test.after(() => tmp.cleanup());

test('Rng: same seed → same stream; normal() has mean ≈ 0 and std ≈ 1', () => {
  const a = new Rng(42);
  const b = new Rng(42);
  const c = new Rng(43);
  const xa = Array.from({ length: 20 }, () => a.u32());
  assert.deepEqual(xa, Array.from({ length: 20 }, () => b.u32()));
  assert.notDeepEqual(xa, Array.from({ length: 20 }, () => c.u32()));
  const x = new Rng(7).fillNormal(new Float32Array(100_000));
  const mean = x.reduce((s, v) => s + v, 0) / x.length;
  const std = Math.sqrt(x.reduce((s, v) => s + (v - mean) ** 2, 0) / x.length);
  assert.ok(Math.abs(mean) < 0.02, `mean ${mean}`);
  assert.ok(Math.abs(std - 1) < 0.02, `std ${std}`);
  const u = Array.from({ length: 1000 }, () => new Rng(1).uniform());
  assert.ok(u.every((v) => v >= 0 && v < 1));
});

test('makeLlamaCheckpoint writes an HF Llama folder with HF names, shapes and config (GQA, F32)', () => {
  const dir = join(tmp.path, 'gqa');
  const fx = makeLlamaCheckpoint(dir, { layers: 2, hidden: 32, intermediate: 48, vocab: 50, heads: 4, kvHeads: 2, dtype: 'F32', seed: 1 });
  assert.deepEqual(readdirSync(dir).sort(), ['config.json', 'generation_config.json', 'model.safetensors']);
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  assert.deepEqual(cfg.architectures, ['LlamaForCausalLM']);
  assert.equal(cfg.model_type, 'llama');
  assert.equal(cfg.num_hidden_layers, 2);
  assert.equal(cfg.hidden_size, 32);
  assert.equal(cfg.intermediate_size, 48);
  assert.equal(cfg.vocab_size, 50);
  assert.equal(cfg.num_attention_heads, 4);
  assert.equal(cfg.num_key_value_heads, 2);
  assert.equal(cfg.head_dim, 8);
  assert.equal(cfg.torch_dtype, 'float32');
  assert.equal(cfg.tie_word_embeddings, false);
  const c = Checkpoint.open(dir);
  try {
    const shapes = Object.fromEntries(c.tensorNames().map((n) => [n, c.info(n).shape]));
    assert.deepEqual(shapes['model.embed_tokens.weight'], [50, 32]);
    assert.deepEqual(shapes['model.layers.1.self_attn.q_proj.weight'], [32, 32]);
    assert.deepEqual(shapes['model.layers.1.self_attn.k_proj.weight'], [16, 32]);
    assert.deepEqual(shapes['model.layers.1.self_attn.v_proj.weight'], [16, 32]);
    assert.deepEqual(shapes['model.layers.1.self_attn.o_proj.weight'], [32, 32]);
    assert.deepEqual(shapes['model.layers.0.mlp.gate_proj.weight'], [48, 32]);
    assert.deepEqual(shapes['model.layers.0.mlp.up_proj.weight'], [48, 32]);
    assert.deepEqual(shapes['model.layers.0.mlp.down_proj.weight'], [32, 48]);
    assert.deepEqual(shapes['model.layers.0.input_layernorm.weight'], [32]);
    assert.deepEqual(shapes['model.layers.0.post_attention_layernorm.weight'], [32]);
    assert.deepEqual(shapes['model.norm.weight'], [32]);
    assert.deepEqual(shapes['lm_head.weight'], [50, 32]);
    assert.equal(c.tensorNames().length, 1 + 2 * 9 + 2);
    assert.equal(c.parameterCount(), fx.parameterCount);
    const w = c.readF32('model.layers.0.mlp.up_proj.weight');
    const std = Math.sqrt(w.reduce((s, v) => s + v * v, 0) / w.length);
    assert.ok(Math.abs(std - 0.02) < 0.002, `weight std ${std}`);
    const norm = c.readF32('model.norm.weight');
    assert.ok(Math.abs(norm.reduce((s, v) => s + v, 0) / norm.length - 1) < 0.02);
  } finally {
    c.close();
  }
});

test('makeLlamaCheckpoint is deterministic and independent of sharding; seeds differ; tied embeddings drop lm_head', () => {
  const o = { layers: 1, hidden: 16, intermediate: 24, vocab: 30, dtype: 'BF16' as const, seed: 9 };
  const a = makeLlamaCheckpoint(join(tmp.path, 'a'), o);
  const a2 = makeLlamaCheckpoint(join(tmp.path, 'a2'), o);
  assert.deepEqual(readFileSync(join(a.dir, 'model.safetensors')), readFileSync(join(a2.dir, 'model.safetensors')));
  const sharded = makeLlamaCheckpoint(join(tmp.path, 'as'), { ...o, maxShardBytes: 1000 });
  const other = makeLlamaCheckpoint(join(tmp.path, 'b'), { ...o, seed: 10 });
  const tied = makeLlamaCheckpoint(join(tmp.path, 't'), { ...o, tieEmbeddings: true });
  const [ca, cs, cb, ct] = [a, sharded, other, tied].map((f) => Checkpoint.open(f.dir));
  try {
    assert.ok(cs!.shards.length > 1);
    for (const n of ca!.tensorNames()) assert.deepEqual(cs!.readBytes(n), ca!.readBytes(n), n);
    assert.notDeepEqual(cb!.readBytes('model.embed_tokens.weight'), ca!.readBytes('model.embed_tokens.weight'));
    assert.equal(ct!.has('lm_head.weight'), false);
    assert.equal(ct!.config!.tie_word_embeddings, true);
    assert.deepEqual(ct!.readBytes('model.embed_tokens.weight'), ca!.readBytes('model.embed_tokens.weight'));
  } finally {
    for (const c of [ca, cs, cb, ct]) c!.close();
  }
});

test('perturb: a fine-tune-like copy of a base with seeded noise of the given scale', () => {
  const o = { layers: 1, hidden: 32, intermediate: 64, vocab: 64, dtype: 'F32' as const, seed: 1 };
  const base = makeLlamaCheckpoint(join(tmp.path, 'base'), o);
  const ft = makeLlamaCheckpoint(join(tmp.path, 'ft'), { ...o, seed: 2, perturb: { from: base.dir, scale: 0.001 } });
  const ft2 = makeLlamaCheckpoint(join(tmp.path, 'ft2'), { ...o, seed: 2, dtype: 'F16', perturb: { from: base.dir, scale: 0.001 } });
  const cb = Checkpoint.open(base.dir);
  const cf = Checkpoint.open(ft.dir);
  const cf2 = Checkpoint.open(ft2.dir);
  try {
    for (const n of ['model.embed_tokens.weight', 'model.layers.0.mlp.down_proj.weight']) {
      const b = cb.readF32(n);
      const f = cf.readF32(n);
      const f2 = cf2.readF32(n);
      let ss = 0;
      for (let i = 0; i < b.length; i++) {
        ss += (f[i]! - b[i]!) ** 2;
        assert.ok(Math.abs(f2[i]! - f[i]!) <= Math.abs(f[i]!) * 2 ** -10 + 2 ** -24, 'F16 copy rounds the same values');
      }
      const std = Math.sqrt(ss / b.length);
      assert.ok(Math.abs(std - 0.001) < 0.0001, `${n}: delta std ${std}`);
    }
    assert.equal(cf2.info('model.norm.weight').dtype, 'F16');
  } finally {
    cb.close();
    cf.close();
    cf2.close();
  }
  assert.throws(
    () => makeLlamaCheckpoint(join(tmp.path, 'bad'), { ...o, hidden: 16, perturb: { from: base.dir, scale: 0.1 } }),
    /perturb base .* has model\.embed_tokens\.weight of shape \[64,32\], expected \[64,16\]/,
  );
  assert.deepEqual(readdirSync(tmp.path).filter((n) => n.startsWith('bad')), []);
});
