/**
 * A plain-TypeScript Llama forward pass (LlamaForCausalLM semantics, HF weight layout), written to
 * be obviously correct rather than fast: Float64 accumulation, no caching, every position recomputed.
 * It is the oracle the tfjs engine and the GGUF export are tested against. Do not optimise it.
 *
 *   h = embed[token]
 *   per layer: h += o_proj(attn(rope(q_proj(n)), rope(k_proj(n)), v_proj(n))), n = rmsnorm(h)·w_in
 *              h += down(silu(gate(n)) ⊙ up(n)),                                n = rmsnorm(h)·w_post
 *   logits = lm_head(rmsnorm(h)·w_final)     (lm_head = embed when tie_word_embeddings)
 * RoPE in HF's rotate_half layout: for j < d/2, angle = pos / theta^(2j/d),
 *   out[j] = x[j]cos − x[j+d/2]sin,  out[j+d/2] = x[j+d/2]cos + x[j]sin.
 * GQA: query head h reads key/value head floor(h / (heads / kv_heads)).
 */
import { Checkpoint } from '../io/checkpoint.ts';

/** Tensors by HF name, as float32 in PyTorch row-major layout. A Map works. */
export interface ReferenceWeights {
  get(name: string): Float32Array | undefined;
}

interface Dims {
  vocab: number;
  hidden: number;
  inter: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  eps: number;
  theta: number;
  tied: boolean;
}

function dims(config: Record<string, unknown>): Dims {
  const num = (k: string, dflt?: number): number => {
    const v = config[k] ?? dflt;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`reference: config '${k}' must be a number, got ${JSON.stringify(config[k])}`);
    return v;
  };
  if (config.rope_scaling !== undefined && config.rope_scaling !== null) throw new Error('reference: rope_scaling is not implemented');
  const rp = config.rope_parameters as Record<string, unknown> | undefined | null;
  if (rp && rp.rope_type !== undefined && rp.rope_type !== 'default') throw new Error(`reference: rope type '${String(rp.rope_type)}' is not implemented`);
  const heads = num('num_attention_heads');
  const hidden = num('hidden_size');
  return {
    vocab: num('vocab_size'),
    hidden,
    inter: num('intermediate_size'),
    layers: num('num_hidden_layers'),
    heads,
    kvHeads: num('num_key_value_heads', heads),
    headDim: num('head_dim', hidden / heads),
    eps: num('rms_norm_eps', 1e-6),
    theta: typeof rp?.rope_theta === 'number' ? rp.rope_theta : num('rope_theta', 10000),
    tied: config.tie_word_embeddings === true,
  };
}

function tensor(w: ReferenceWeights, name: string, n: number): Float32Array {
  const t = w.get(name);
  if (!t) throw new Error(`reference: missing tensor '${name}'`);
  if (t.length !== n) throw new Error(`reference: tensor '${name}' has ${t.length} values, expected ${n}`);
  return t;
}

/** y = W x for W [rows, cols] row-major. */
function matvec(W: Float32Array, x: Float64Array, rows: number, cols: number): Float64Array {
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    const o = r * cols;
    for (let c = 0; c < cols; c++) s += W[o + c]! * x[c]!;
    y[r] = s;
  }
  return y;
}

function rmsnorm(x: Float64Array, w: Float32Array, eps: number): Float64Array {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i]! * x[i]!;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = x[i]! * inv * w[i]!;
  return y;
}

/** Rotates each head of `v` ([nHeads·d]) in place for position `pos`. */
function rope(v: Float64Array, nHeads: number, d: number, pos: number, theta: number): void {
  const half = d / 2;
  for (let h = 0; h < nHeads; h++) {
    const o = h * d;
    for (let j = 0; j < half; j++) {
      const angle = pos / Math.pow(theta, (2 * j) / d);
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      const a = v[o + j]!;
      const b = v[o + j + half]!;
      v[o + j] = a * c - b * s;
      v[o + j + half] = b * c + a * s;
    }
  }
}

const silu = (x: number): number => x / (1 + Math.exp(-x));

/** Logits after every position of `tokenIds` (one Float32Array of vocab_size per token). */
export function referenceLogits(weights: ReferenceWeights, config: Record<string, unknown>, tokenIds: readonly number[]): Float32Array[] {
  const D = dims(config);
  const { hidden: H, heads, kvHeads, headDim: d, layers, inter, vocab } = D;
  const T = tokenIds.length;
  const embed = tensor(weights, 'model.embed_tokens.weight', vocab * H);
  const x: Float64Array[] = tokenIds.map((id, t) => {
    if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new Error(`reference: token ${t} has id ${id}, outside [0, ${vocab})`);
    return Float64Array.from(embed.subarray(id * H, (id + 1) * H));
  });
  const group = heads / kvHeads;
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}.`;
    const wIn = tensor(weights, p + 'input_layernorm.weight', H);
    const wq = tensor(weights, p + 'self_attn.q_proj.weight', heads * d * H);
    const wk = tensor(weights, p + 'self_attn.k_proj.weight', kvHeads * d * H);
    const wv = tensor(weights, p + 'self_attn.v_proj.weight', kvHeads * d * H);
    const wo = tensor(weights, p + 'self_attn.o_proj.weight', H * heads * d);
    const wPost = tensor(weights, p + 'post_attention_layernorm.weight', H);
    const wg = tensor(weights, p + 'mlp.gate_proj.weight', inter * H);
    const wu = tensor(weights, p + 'mlp.up_proj.weight', inter * H);
    const wd = tensor(weights, p + 'mlp.down_proj.weight', H * inter);

    const q: Float64Array[] = [];
    const k: Float64Array[] = [];
    const v: Float64Array[] = [];
    for (let t = 0; t < T; t++) {
      const n = rmsnorm(x[t]!, wIn, D.eps);
      const qt = matvec(wq, n, heads * d, H);
      const kt = matvec(wk, n, kvHeads * d, H);
      rope(qt, heads, d, t, D.theta);
      rope(kt, kvHeads, d, t, D.theta);
      q.push(qt);
      k.push(kt);
      v.push(matvec(wv, n, kvHeads * d, H));
    }
    const scale = 1 / Math.sqrt(d);
    for (let t = 0; t < T; t++) {
      const attn = new Float64Array(heads * d);
      for (let h = 0; h < heads; h++) {
        const kvh = Math.floor(h / group);
        const scores = new Float64Array(t + 1);
        let max = -Infinity;
        for (let s = 0; s <= t; s++) {
          let dot = 0;
          for (let i = 0; i < d; i++) dot += q[t]![h * d + i]! * k[s]![kvh * d + i]!;
          scores[s] = dot * scale;
          if (scores[s]! > max) max = scores[s]!;
        }
        let sum = 0;
        for (let s = 0; s <= t; s++) {
          scores[s] = Math.exp(scores[s]! - max);
          sum += scores[s]!;
        }
        for (let s = 0; s <= t; s++) {
          const a = scores[s]! / sum;
          for (let i = 0; i < d; i++) attn[h * d + i]! += a * v[s]![kvh * d + i]!;
        }
      }
      const o = matvec(wo, attn, H, heads * d);
      for (let i = 0; i < H; i++) x[t]![i]! += o[i]!;
    }
    for (let t = 0; t < T; t++) {
      const n = rmsnorm(x[t]!, wPost, D.eps);
      const g = matvec(wg, n, inter, H);
      const u = matvec(wu, n, inter, H);
      const act = new Float64Array(inter);
      for (let i = 0; i < inter; i++) act[i] = silu(g[i]!) * u[i]!;
      const down = matvec(wd, act, H, inter);
      for (let i = 0; i < H; i++) x[t]![i]! += down[i]!;
    }
  }
  const wNorm = tensor(weights, 'model.norm.weight', H);
  const head = D.tied ? embed : tensor(weights, 'lm_head.weight', vocab * H);
  return x.map((xt) => Float32Array.from(matvec(head, rmsnorm(xt, wNorm, D.eps), vocab, H)));
}

/** Index of the largest value (lowest index on ties). */
export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

/** Greedy continuation: `n` new token ids after `promptIds` (the full prefix is recomputed each step). */
export function referenceGreedy(weights: ReferenceWeights, config: Record<string, unknown>, promptIds: readonly number[], n: number): number[] {
  if (promptIds.length === 0) throw new Error('reference: empty prompt');
  const seq = [...promptIds];
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const logits = referenceLogits(weights, config, seq);
    const next = argmax(logits[logits.length - 1]!);
    out.push(next);
    seq.push(next);
  }
  return out;
}

/** Every tensor of an HF folder as float32, plus its config.json (for small models: loads everything). */
export function loadReferenceModel(dir: string): { weights: Map<string, Float32Array>; config: Record<string, unknown> } {
  const ck = Checkpoint.open(dir);
  try {
    if (!ck.config) throw new Error(`reference: ${dir} has no config.json`);
    const weights = new Map<string, Float32Array>();
    for (const name of ck.tensorNames()) weights.set(name, ck.readF32(name));
    return { weights, config: ck.config };
  } finally {
    ck.close();
  }
}
