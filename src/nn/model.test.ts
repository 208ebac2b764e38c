import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as O from './ops.ts';
import { Llama, makeConfig, numParams, paramShapes } from './model.ts';
import type { LlamaConfig } from './model.ts';
import { loadModel, saveModel } from './checkpoint.ts';
import { makeBatch } from './data.ts';
import { lossAndGrads, evalLoss } from './train.ts';
import { Tokenizer } from './tokenizer.ts';

before(async () => {
  await O.initBackend();
});

/** Plain-JS Llama forward from the formulas (HF semantics), logits [B*T*V]. */
function refForward(cfg: LlamaConfig, W: Map<string, Float32Array>, ids: number[][]): Float64Array {
  const D = cfg.hidden_size, H = cfg.num_attention_heads, KV = cfg.num_key_value_heads, d = cfg.head_dim, I = cfg.intermediate_size, V = cfg.vocab_size;
  const lin = (x: number[], w: Float32Array, out: number, inn: number) => {
    const y = new Array(out).fill(0);
    for (let o = 0; o < out; o++) for (let i = 0; i < inn; i++) y[o] += w[o * inn + i] * x[i];
    return y;
  };
  const rms = (x: number[], w: Float32Array) => {
    const ms = x.reduce((s, v) => s + v * v, 0) / x.length;
    const r = 1 / Math.sqrt(ms + cfg.rms_norm_eps);
    return x.map((v, i) => v * r * w[i]);
  };
  const rope = (v: number[], pos: number) => {
    const out = v.slice();
    for (let i = 0; i < d / 2; i++) {
      const a = pos / Math.pow(cfg.rope_theta, (2 * i) / d);
      const x1 = v[i], x2 = v[i + d / 2];
      out[i] = x1 * Math.cos(a) - x2 * Math.sin(a);
      out[i + d / 2] = x2 * Math.cos(a) + x1 * Math.sin(a);
    }
    return out;
  };
  const res: number[] = [];
  for (const row of ids) {
    const T = row.length;
    let xs = row.map((t) => Array.from(W.get('model.embed_tokens.weight')!.subarray(t * D, (t + 1) * D)));
    for (let l = 0; l < cfg.num_hidden_layers; l++) {
      const p = `model.layers.${l}.`;
      const hs = xs.map((x) => rms(x, W.get(p + 'input_layernorm.weight')!));
      const q = hs.map((h) => lin(h, W.get(p + 'self_attn.q_proj.weight')!, H * d, D));
      const k = hs.map((h) => lin(h, W.get(p + 'self_attn.k_proj.weight')!, KV * d, D));
      const v = hs.map((h) => lin(h, W.get(p + 'self_attn.v_proj.weight')!, KV * d, D));
      const ys = xs.map(() => new Array(H * d).fill(0));
      for (let h = 0; h < H; h++) {
        const g = Math.floor(h / (H / KV));
        for (let t = 0; t < T; t++) {
          const qt = rope(q[t].slice(h * d, (h + 1) * d), t);
          const sc: number[] = [];
          for (let s = 0; s <= t; s++) {
            const ks = rope(k[s].slice(g * d, (g + 1) * d), s);
            sc.push(qt.reduce((a, b, i) => a + b * ks[i], 0) / Math.sqrt(d));
          }
          const mx = Math.max(...sc);
          const e = sc.map((z) => Math.exp(z - mx));
          const z = e.reduce((a, b) => a + b, 0);
          for (let s = 0; s <= t; s++) for (let i = 0; i < d; i++) ys[t][h * d + i] += (e[s] / z) * v[s][g * d + i];
        }
      }
      xs = xs.map((x, t) => {
        const o = lin(ys[t], W.get(p + 'self_attn.o_proj.weight')!, D, H * d);
        const x1 = x.map((val, i) => val + o[i]);
        const h2 = rms(x1, W.get(p + 'post_attention_layernorm.weight')!);
        const gt = lin(h2, W.get(p + 'mlp.gate_proj.weight')!, I, D);
        const up = lin(h2, W.get(p + 'mlp.up_proj.weight')!, I, D);
        const act = gt.map((gv, i) => (gv / (1 + Math.exp(-gv))) * up[i]);
        const dn = lin(act, W.get(p + 'mlp.down_proj.weight')!, D, I);
        return x1.map((val, i) => val + dn[i]);
      });
    }
    const head = W.get(cfg.tie_word_embeddings ? 'model.embed_tokens.weight' : 'lm_head.weight')!;
    for (const x of xs) res.push(...lin(rms(x, W.get('model.norm.weight')!), head, V, D));
  }
  return Float64Array.from(res);
}

function logitsOf(m: Llama, ids: number[][]): Float32Array {
  const t = O.tidy(() => m.forward(O.intTensor(Int32Array.from(ids.flat()), [ids.length, ids[0].length])).logits);
  const a = O.read(t).slice();
  t.dispose();
  return a;
}

/** Randomise norm weights too, so the test sees them. */
function perturbed(cfg: LlamaConfig, seed: number): Llama {
  const m = Llama.init(cfg, seed);
  const w = m.getWeights();
  let s = 1;
  for (const [name, a] of w) if (name.endsWith('norm.weight')) for (let i = 0; i < a.length; i++) a[i] = 1 + 0.3 * Math.sin(s++);
  m.setWeights(w);
  return m;
}

test('parameter names and shapes follow HF LlamaForCausalLM', () => {
  const cfg = makeConfig({ vocab_size: 50, hidden_size: 32, num_attention_heads: 4, num_key_value_heads: 2, num_hidden_layers: 1, intermediate_size: 40 });
  const shapes = new Map(paramShapes(cfg));
  assert.deepEqual(shapes.get('model.embed_tokens.weight'), [50, 32]);
  assert.deepEqual(shapes.get('model.layers.0.self_attn.q_proj.weight'), [32, 32]);
  assert.deepEqual(shapes.get('model.layers.0.self_attn.k_proj.weight'), [16, 32]);
  assert.deepEqual(shapes.get('model.layers.0.self_attn.o_proj.weight'), [32, 32]);
  assert.deepEqual(shapes.get('model.layers.0.mlp.down_proj.weight'), [32, 40]);
  assert.deepEqual(shapes.get('lm_head.weight'), [50, 32]);
  assert.equal(numParams(cfg), 50 * 32 * 2 + 32 * 3 + 32 * 32 * 2 + 16 * 32 * 2 + 40 * 32 * 3);
  assert.equal(new Map(paramShapes({ ...cfg, tie_word_embeddings: true })).has('lm_head.weight'), false);
  assert.throws(() => makeConfig({ vocab_size: 50, hidden_size: 32, num_attention_heads: 3, num_key_value_heads: 2 }), /multiple of num_key_value_heads/);
});

test('forward matches a plain-JS reference (GQA, untied and tied)', () => {
  for (const tie of [false, true]) {
    const cfg = makeConfig({ vocab_size: 40, hidden_size: 32, num_attention_heads: 4, num_key_value_heads: 2, num_hidden_layers: 2, intermediate_size: 48, tie_word_embeddings: tie, rope_theta: 500 });
    const m = perturbed(cfg, 3);
    const ids = [[1, 5, 9, 33, 2, 7], [1, 39, 0, 12, 12, 4]];
    const got = logitsOf(m, ids);
    const want = refForward(cfg, m.getWeights(), ids);
    let maxErr = 0, maxAbs = 0;
    for (let i = 0; i < want.length; i++) {
      maxErr = Math.max(maxErr, Math.abs(got[i] - want[i]));
      maxAbs = Math.max(maxAbs, Math.abs(want[i]));
    }
    assert.ok(maxAbs > 0.05, 'logits are not trivially small');
    assert.ok(maxErr < 1e-5 * Math.max(1, maxAbs) + 1e-6, `max error ${maxErr} (tie=${tie})`);
    m.dispose();
  }
});

test('gradients match central finite differences', () => {
  const cfg = makeConfig({ vocab_size: 24, hidden_size: 16, num_attention_heads: 2, num_key_value_heads: 1, num_hidden_layers: 1, intermediate_size: 24 });
  const m = Llama.init(cfg, 7);
  // larger weights so that every part of the network has sizeable gradients
  const w0 = m.getWeights();
  for (const [n, a] of w0) if (!n.endsWith('norm.weight')) for (let i = 0; i < a.length; i++) a[i] *= 15;
  m.setWeights(w0);
  const batch = makeBatch([
    { ids: [1, 4, 9, 13, 20, 3], mask: [0, 0, 1, 1, 1, 1] },
    { ids: [1, 7, 7, 2], mask: [0, 1, 1, 1] },
  ], 0, 16);
  const { grads } = lossAndGrads(m, batch);
  const names = [...m.params.keys()];
  let checked = 0;
  const checkNames = [
    'model.embed_tokens.weight', 'model.layers.0.input_layernorm.weight', 'model.layers.0.self_attn.q_proj.weight',
    'model.layers.0.self_attn.k_proj.weight', 'model.layers.0.self_attn.v_proj.weight', 'model.layers.0.self_attn.o_proj.weight',
    'model.layers.0.post_attention_layernorm.weight', 'model.layers.0.mlp.gate_proj.weight', 'model.layers.0.mlp.up_proj.weight',
    'model.layers.0.mlp.down_proj.weight', 'model.norm.weight', 'lm_head.weight',
  ];
  for (const name of checkNames) {
    const pi = names.indexOf(name);
    const g = grads[pi];
    // the two coordinates with the largest gradient
    const idx = [...g.keys()].sort((a, b) => Math.abs(g[b]) - Math.abs(g[a])).slice(0, 2);
    for (const i of idx) {
      const w = m.getWeights();
      const a = w.get(name)!;
      const orig = a[i];
      const h = 1e-2 * Math.max(1, Math.abs(orig));
      a[i] = orig + h;
      m.setWeights(w);
      const lp = evalLoss(m, batch);
      a[i] = orig - h;
      m.setWeights(w);
      const lm = evalLoss(m, batch);
      a[i] = orig;
      m.setWeights(w);
      const fd = (lp - lm) / (2 * h);
      const rel = Math.abs(fd - g[i]) / Math.max(Math.abs(fd), Math.abs(g[i]));
      assert.ok(rel < 0.03, `${name}[${i}]: analytic ${g[i]} vs finite difference ${fd} (rel ${rel})`);
      checked++;
    }
  }
  assert.equal(checked, 2 * checkNames.length);
  m.dispose();
});

test('save → reload gives identical logits; HF config.json fields; bf16 is close', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nn-ck-'));
  try {
    const tok = new Tokenizer();
    const cfg = makeConfig({ vocab_size: tok.vocabSize, hidden_size: 32, num_attention_heads: 4, num_key_value_heads: 2, num_hidden_layers: 2 });
    const m = perturbed(cfg, 11);
    const ids = [[1, 70, 71, 72, 35]];
    saveModel(join(dir, 'f32'), m, tok);
    const { model: m2, tokenizer, config } = loadModel(join(dir, 'f32'));
    assert.deepEqual(config, cfg);
    assert.equal(tokenizer?.vocabSize, tok.vocabSize);
    assert.deepEqual(logitsOf(m2, ids), logitsOf(m, ids));
    const cj = JSON.parse(readFileSync(join(dir, 'f32', 'config.json'), 'utf8'));
    assert.deepEqual(cj.architectures, ['LlamaForCausalLM']);
    assert.equal(cj.model_type, 'llama');
    assert.equal(cj.torch_dtype, 'float32');
    assert.equal(cj.num_key_value_heads, 2);
    const gc = JSON.parse(readFileSync(join(dir, 'f32', 'generation_config.json'), 'utf8'));
    assert.equal(gc.eos_token_id, 2);
    saveModel(join(dir, 'bf16'), m, tok, { dtype: 'BF16' });
    const { model: m3 } = loadModel(join(dir, 'bf16'));
    const a = logitsOf(m, ids), b = logitsOf(m3, ids);
    let mx = 0;
    for (let i = 0; i < a.length; i++) mx = Math.max(mx, Math.abs(a[i] - b[i]));
    assert.ok(mx > 0 && mx < 0.05, `bf16 logits differ by ${mx}`);
    m.dispose(); m2.dispose(); m3.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('no tensors leak across forward / backward steps', () => {
  const cfg = makeConfig({ vocab_size: 30, hidden_size: 16, num_attention_heads: 2, num_hidden_layers: 1 });
  const m = Llama.init(cfg, 1);
  const batch = makeBatch([{ ids: [1, 4, 5, 6], mask: [0, 1, 1, 1] }], 0, 8);
  lossAndGrads(m, batch);
  const n0 = O.numTensors();
  for (let i = 0; i < 3; i++) {
    lossAndGrads(m, batch);
    evalLoss(m, batch);
  }
  assert.equal(O.numTensors(), n0);
  m.dispose();
});

test('JS attention kernel equals the batched-matMul one (values and gradients, GQA, masks)', () => {
  const B = 2, T = 3, Tk = 5, H = 4, KV = 2, d = 8;
  const rnd = (n: number, s: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 1.7 + s) * 1.5);
  const q = O.tensor(rnd(B * T * H * d, 1), [B * T, H * d]);
  const k = O.tensor(rnd(B * Tk * KV * d, 2), [B * Tk, KV * d]);
  const v = O.tensor(rnd(B * Tk * KV * d, 3), [B * Tk, KV * d]);
  const w = O.tensor(rnd(B * T * H * d, 4), [B * T, H * d]);
  const mask = new Float32Array(B * T * Tk);
  for (let i = 0; i < mask.length; i++) if (i % 3 === 1) mask[i] = -1e9;
  for (const m of [null, mask]) {
    const run = (f: typeof O.attention) => {
      const vars = [q, k, v].map((t) => O.variable(O.read(t).slice(), t.shape));
      const { value, grads } = O.valueAndGrads(() => O.sum(O.mul(f(vars[0], vars[1], vars[2], B, T, Tk, H, KV, d, m), w)), vars);
      const out = [O.read(value).slice(), ...grads.map((g) => O.read(g).slice())];
      O.dispose([value, ...grads, ...vars]);
      return out;
    };
    const a = run(O.attention), b = run(O.attentionBatched);
    for (let t = 0; t < a.length; t++) {
      for (let i = 0; i < a[t].length; i++) assert.ok(Math.abs(a[t][i] - b[t][i]) < 1e-4 * Math.max(1, Math.abs(b[t][i])), `part ${t} [${i}]: ${a[t][i]} vs ${b[t][i]} (mask ${m ? 'on' : 'off'})`);
    }
  }
  O.dispose([q, k, v, w]);
});
