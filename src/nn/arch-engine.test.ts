/**
 * The engine on tiny Mistral-, Qwen2- and Llama-3-shaped checkpoints (seeded, src/nn/arch-testing.ts)
 * against a float64 forward pass written here from Hugging Face's definitions of the three models,
 * reading config.json and the tensors directly (not the engine's parsed config): the infer engine
 * (native kernels and JS loops), the framework forward (model.ts) and greedy generation.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import * as O from './ops.ts';
import { loadModel, saveModel } from './checkpoint.ts';
import { InferModel, inferNative } from './infer.ts';
import { generateIds } from './generate.ts';
import { makeArchCheckpoint, TEST_ARCHS, type TestArch } from './arch-testing.ts';
import { Checkpoint } from '../io/checkpoint.ts';
import { makeTempDir } from '../io/testing.ts';

const tmp = makeTempDir('selfdev-arch-engine-');
before(async () => {
  await O.initBackend();
});
after(() => tmp.cleanup());

// ------------------------------------------------------------------ float64 reference (HF semantics)

type Cfg = Record<string, any>;

/** Inverse rotary frequencies as transformers computes them (default, or rope_type "llama3"). */
function refInvFreq(c: Cfg, d: number): number[] {
  const inv = Array.from({ length: d / 2 }, (_, i) => 1 / Math.pow(c.rope_theta ?? 10000, (2 * i) / d));
  const rs = c.rope_scaling;
  if (!rs || (rs.rope_type ?? rs.type) !== 'llama3') return inv;
  const lowWavelen = rs.original_max_position_embeddings / rs.low_freq_factor;
  const highWavelen = rs.original_max_position_embeddings / rs.high_freq_factor;
  return inv.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    const llama = wavelen > lowWavelen ? f / rs.factor : f;
    const smooth = (rs.original_max_position_embeddings / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
    const smoothed = ((1 - smooth) * llama) / rs.factor + smooth * llama;
    const medium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
    return medium ? smoothed : llama;
  });
}

/** Window of layer l (keys j with i − window < j ≤ i), or Infinity. */
function refWindow(c: Cfg, l: number): number {
  if (c.model_type === 'mistral') return c.sliding_window ?? Infinity;
  if (c.model_type === 'qwen2') return c.use_sliding_window && c.sliding_window && l >= (c.max_window_layers ?? 28) ? c.sliding_window : Infinity;
  return Infinity;
}

/** Logits [T][V] of `ids` (float64 throughout). */
function refForward(c: Cfg, W: Map<string, Float32Array>, ids: number[]): number[][] {
  const D: number = c.hidden_size, H: number = c.num_attention_heads, KV: number = c.num_key_value_heads ?? H;
  const d: number = c.head_dim ?? D / H, I: number = c.intermediate_size, V: number = c.vocab_size, eps: number = c.rms_norm_eps;
  const qkvBias = c.model_type === 'qwen2' || (c.model_type === 'llama' && c.attention_bias === true);
  const oBias = c.model_type === 'llama' && c.attention_bias === true;
  const w = (n: string) => {
    const a = W.get(n);
    if (!a) throw new Error(`reference: no tensor ${n}`);
    return a;
  };
  const lin = (x: number[], n: string, out: number, bias: boolean) => {
    const m = w(n + '.weight');
    const b = bias ? w(n + '.bias') : null;
    return Array.from({ length: out }, (_, o) => {
      let s = b ? b[o]! : 0;
      for (let i = 0; i < x.length; i++) s += m[o * x.length + i]! * x[i]!;
      return s;
    });
  };
  const rms = (x: number[], n: string) => {
    const g = w(n);
    const r = 1 / Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length + eps);
    return x.map((v, i) => v * r * g[i]!);
  };
  const inv = refInvFreq(c, d);
  const rope = (v: number[], head: number, pos: number) => {
    const o = head * d;
    for (let i = 0; i < d / 2; i++) {
      const a = pos * inv[i]!;
      const x1 = v[o + i]!, x2 = v[o + i + d / 2]!;
      v[o + i] = x1 * Math.cos(a) - x2 * Math.sin(a);
      v[o + i + d / 2] = x2 * Math.cos(a) + x1 * Math.sin(a);
    }
  };
  const E = w('model.embed_tokens.weight');
  let xs = ids.map((t) => Array.from(E.subarray(t * D, (t + 1) * D)));
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    const win = refWindow(c, l);
    const hs = xs.map((x) => rms(x, p + 'input_layernorm.weight'));
    const qs = hs.map((h, t) => {
      const q = lin(h, p + 'self_attn.q_proj', H * d, qkvBias);
      for (let hd = 0; hd < H; hd++) rope(q, hd, t);
      return q;
    });
    const ks = hs.map((h, t) => {
      const k = lin(h, p + 'self_attn.k_proj', KV * d, qkvBias);
      for (let g = 0; g < KV; g++) rope(k, g, t);
      return k;
    });
    const vs = hs.map((h) => lin(h, p + 'self_attn.v_proj', KV * d, qkvBias));
    xs = xs.map((x, i) => {
      const att = new Array<number>(H * d).fill(0);
      for (let hd = 0; hd < H; hd++) {
        const g = Math.floor(hd / (H / KV));
        const js = [...Array(i + 1).keys()].filter((j) => i - j < win);
        const sc = js.map((j) => {
          let s = 0;
          for (let e = 0; e < d; e++) s += qs[i]![hd * d + e]! * ks[j]![g * d + e]!;
          return s / Math.sqrt(d);
        });
        const mx = Math.max(...sc);
        const ex = sc.map((s) => Math.exp(s - mx));
        const z = ex.reduce((a, b) => a + b, 0);
        js.forEach((j, n) => {
          for (let e = 0; e < d; e++) att[hd * d + e] += (ex[n]! / z) * vs[j]![g * d + e]!;
        });
      }
      const y = x.map((v, e) => v + lin(att, p + 'self_attn.o_proj', D, oBias)[e]!);
      const h2 = rms(y, p + 'post_attention_layernorm.weight');
      const gate = lin(h2, p + 'mlp.gate_proj', I, false);
      const up = lin(h2, p + 'mlp.up_proj', I, false);
      const act = gate.map((gv, e) => (gv / (1 + Math.exp(-gv))) * up[e]!);
      const down = lin(act, p + 'mlp.down_proj', D, false);
      return y.map((v, e) => v + down[e]!);
    });
  }
  const head = c.tie_word_embeddings ? E : w('lm_head.weight');
  return xs.map((x) => {
    const h = rms(x, 'model.norm.weight');
    return Array.from({ length: V }, (_, v) => {
      let s = 0;
      for (let e = 0; e < D; e++) s += head[v * D + e]! * h[e]!;
      return s;
    });
  });
}

/** config.json and every tensor of a folder, read directly. */
function readFolder(dir: string): { c: Cfg; W: Map<string, Float32Array> } {
  const ck = Checkpoint.open(dir);
  try {
    const W = new Map<string, Float32Array>();
    for (const n of ck.tensorNames()) W.set(n, ck.readF32(n));
    return { c: JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Cfg, W };
  } finally {
    ck.close();
  }
}

const argmax = (x: ArrayLike<number>) => {
  let b = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[b]!) b = i;
  return b;
};

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): { diff: number; scale: number } {
  let diff = 0, scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return { diff, scale };
}

// the prompt is longer than every test window (8 for Mistral, 6 for Qwen2), so the window is exercised
const PROMPT = [1, 40, 77, 12, 200, 5, 9, 133, 250, 31, 64, 17, 3, 99, 150, 201, 45, 8, 260, 70];
const TOL = 2e-4; // of the largest |logit|: float32 storage and accumulation vs float64

const dirs = new Map<TestArch, string>();
function folder(arch: TestArch): string {
  let d = dirs.get(arch);
  if (!d) {
    d = join(tmp.path, arch);
    // Qwen2 is written in shards (model.safetensors.index.json), the loader reads them
    makeArchCheckpoint(d, arch, { seed: 11, maxShardBytes: arch === 'qwen2' ? 40_000 : undefined });
    dirs.set(arch, d);
  }
  return d;
}

for (const arch of TEST_ARCHS) {
  test(`${arch}: infer engine (native and JS) and the framework forward match the float64 reference, every position`, (t) => {
    const dir = folder(arch);
    const { c, W } = readFolder(dir);
    const vocab = c.vocab_size as number;
    const ids = PROMPT.map((t) => t % vocab);
    const ref = refForward(c, W, ids);
    const { model } = loadModel(dir);
    try {
      const engines: Array<[string, InferModel]> = [['js', InferModel.fromLlama(model, { useNative: false })]];
      if (inferNative()) engines.push(['native', InferModel.fromLlama(model)]);
      for (const [name, im] of engines) {
        // token by token: every position's logits
        const s = im.session(1, ids.length);
        let worst = 0;
        ids.forEach((tok, i) => {
          const { diff, scale } = maxDiff(s.feed([0], [[tok]]), ref[i]!);
          assert.ok(diff <= TOL * Math.max(1, scale), `${arch} ${name} position ${i}: max |Δlogit| ${diff} (max |logit| ${scale})`);
          worst = Math.max(worst, diff);
        });
        t.diagnostic(`${name}: max |Δlogit| over ${ids.length} positions ${worst.toExponential(2)}`);
        // the whole prompt in one call (several tokens past the window at once), then one more
        const s2 = im.session(2, ids.length);
        const last = s2.feed([1, 0], [ids.slice(0, 15), ids.slice(0, 3)]);
        assert.ok(maxDiff(last.subarray(0, vocab), ref[14]!).diff <= TOL * Math.max(1, maxDiff(ref[14]!, ref[14]!).scale), `${arch} ${name}: batched prompt`);
        assert.ok(maxDiff(last.subarray(vocab), ref[2]!).diff <= TOL * 10, `${arch} ${name}: second row`);
        const next = s2.feed([1], [ids.slice(15)]);
        assert.ok(maxDiff(next, ref[ids.length - 1]!).diff <= TOL * Math.max(1, maxDiff(ref[ids.length - 1]!, ref[ids.length - 1]!).scale), `${arch} ${name}: continued prompt`);
      }
      // the framework forward (training / log-prob scoring), all positions at once
      const fw = O.tidy(() => O.read(model.forward(O.intTensor(Int32Array.from(ids), [1, ids.length])).logits));
      let worst = 0;
      ids.forEach((_, i) => {
        const { diff, scale } = maxDiff(fw.subarray(i * vocab, (i + 1) * vocab), ref[i]!);
        assert.ok(diff <= TOL * Math.max(1, scale), `${arch} framework position ${i}: max |Δlogit| ${diff}`);
        worst = Math.max(worst, diff);
      });
      t.diagnostic(`framework: max |Δlogit| ${worst.toExponential(2)}`);
    } finally {
      model.dispose();
    }
  });

  test(`${arch}: greedy generation equals the reference's greedy tokens`, (t) => {
    const dir = folder(arch);
    const { c, W } = readFolder(dir);
    const prompt = PROMPT.slice(0, 5).map((t) => t % (c.vocab_size as number));
    const n = 14; // the sequence grows past the window
    const want: number[] = [];
    const seq = prompt.slice();
    for (let i = 0; i < n; i++) {
      const logits = refForward(c, W, seq);
      const t = argmax(logits[logits.length - 1]!);
      if (t === c.eos_token_id) break;
      want.push(t);
      seq.push(t);
    }
    const { model, tokenizer } = loadModel(dir);
    try {
      const got = generateIds(model, tokenizer!, [prompt], { maxTokens: n })[0]!;
      assert.deepEqual(got.ids, want, `${arch}: engine greedy`);
      assert.ok(want.length >= 8, `${arch}: at least 8 tokens compared (got ${want.length})`);
      t.diagnostic(`greedy: ${got.ids.length}/${want.length} tokens equal`);
    } finally {
      model.dispose();
    }
  });
}

test('sharded checkpoints: the saver writes shards + index as save_pretrained does, the loader reads them back exactly', () => {
  const dir = folder('qwen2');
  const files = readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort();
  assert.ok(files.length >= 2 && files.every((f, i) => f === `model-${String(i + 1).padStart(5, '0')}-of-${String(files.length).padStart(5, '0')}.safetensors`), files.join(' '));
  const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')) as { metadata: { total_size: number }; weight_map: Record<string, string> };
  const { W } = readFolder(dir);
  assert.deepEqual(Object.keys(index.weight_map).sort(), [...W.keys()].sort());
  assert.equal(index.metadata.total_size, [...W.values()].reduce((s, a) => s + a.length * 4, 0));
  // load the shards, save unsharded, save sharded again: the same tensors every time
  const { model, tokenizer } = loadModel(dir);
  try {
    const one = join(tmp.path, 'qwen2-one');
    const again = join(tmp.path, 'qwen2-again');
    saveModel(one, model, tokenizer);
    saveModel(again, model, tokenizer, { maxShardBytes: 25_000 });
    assert.ok(existsSync(join(one, 'model.safetensors')) && !existsSync(join(one, 'model.safetensors.index.json')));
    assert.ok(readdirSync(again).filter((f) => f.endsWith('.safetensors')).length > files.length);
    for (const d of [one, again]) {
      const r = readFolder(d).W;
      for (const [n, a] of W) assert.deepEqual(r.get(n), a, `${d} ${n}`);
      assert.equal(r.size, W.size);
    }
  } finally {
    model.dispose();
  }
});
