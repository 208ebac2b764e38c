/**
 * A tiny Llama (HF LlamaForCausalLM semantics and parameter names) on the ops module.
 *
 *   x = embed_tokens[ids]
 *   per layer: x += o_proj(attn(rope(q_proj(n)), rope(k_proj(n)), v_proj(n))), n = rmsnorm(x)
 *              x += down_proj(silu(gate_proj(n)) * up_proj(n)),              n = rmsnorm(x)
 *   logits = lm_head(rmsnorm(x))            (lm_head = embed_tokens when tied)
 *
 * RoPE uses the HF `rotate_half` layout (each head's rotary pairs are its two halves). Grouped-query
 * attention: query head h reads key/value head floor(h / (heads / kv_heads)). The architecture
 * features of io/architectures.ts: q/k/v (Qwen2, Llama attention_bias) and o biases (Llama
 * attention_bias) added after the projections, Llama 3 rope frequencies (`ropeInvFreq`), and a
 * sliding window (Mistral, Qwen2) on the layers that use it.
 * Weights live as framework variables in PyTorch layout (Linear = [out, in]).
 *
 * Kernels (src/nn/ops.ts): linears are matMuls with hand-written gradients (no transposed matMul),
 * the embedding is a JS gather (scatter-add gradient), RMSNorm / RoPE / SwiGLU / the target log-prob are fused JS
 * kernels, attention uses batched matMuls for blocks of queries and a JS loop for single-token
 * decoding (both checked against each other in model.test.ts).
 */
import * as O from './ops.ts';
import type { Tensor, Variable } from './ops.ts';
import { Rng } from './rng.ts';
import { llamaTensorShapes, type LlamaSpec } from '../io/model-config.ts';
import { layerWindow, scaledInvFreq } from '../io/architectures.ts';

/**
 * The fields of HF LlamaConfig this engine uses (snake_case as in config.json): the validated spec
 * of io/model-config.ts, with the special ids always set (the engine's fixed layout).
 */
export interface LlamaConfig extends Omit<LlamaSpec, 'bos_token_id' | 'eos_token_id' | 'pad_token_id'> {
  bos_token_id: number;
  eos_token_id: number;
  pad_token_id: number;
}

/** Fill defaults (HF LlamaConfig semantics, our special ids) and validate. */
export function makeConfig(c: Partial<LlamaConfig> & Pick<LlamaConfig, 'vocab_size' | 'hidden_size'>): LlamaConfig {
  const heads = c.num_attention_heads ?? Math.max(1, Math.round(c.hidden_size / 32));
  const cfg: LlamaConfig = {
    vocab_size: c.vocab_size,
    hidden_size: c.hidden_size,
    intermediate_size: c.intermediate_size ?? Math.ceil((8 * c.hidden_size) / 3 / 16) * 16,
    num_hidden_layers: c.num_hidden_layers ?? 2,
    num_attention_heads: heads,
    num_key_value_heads: c.num_key_value_heads ?? heads,
    head_dim: c.head_dim ?? Math.floor(c.hidden_size / heads),
    rms_norm_eps: c.rms_norm_eps ?? 1e-5,
    rope_theta: c.rope_theta ?? 10000,
    max_position_embeddings: c.max_position_embeddings ?? 512,
    tie_word_embeddings: c.tie_word_embeddings ?? false,
    model_type: c.model_type ?? 'llama',
    qkv_bias: c.qkv_bias ?? false,
    o_bias: c.o_bias ?? false,
    rope_scaling: c.rope_scaling ?? null,
    sliding_window: c.sliding_window ?? null,
    sliding_window_from: c.sliding_window_from ?? 0,
    bos_token_id: c.bos_token_id ?? 1,
    eos_token_id: c.eos_token_id ?? 2,
    pad_token_id: c.pad_token_id ?? 0,
  };
  const bad = (f: string, why: string) => new Error(`llama config: ${f} ${why}`);
  for (const k of ['vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'head_dim', 'max_position_embeddings'] as const) {
    if (!Number.isInteger(cfg[k]) || cfg[k] <= 0) throw bad(k, `must be a positive integer, got ${cfg[k]}`);
  }
  if (cfg.num_attention_heads % cfg.num_key_value_heads !== 0) throw bad('num_attention_heads', `(${cfg.num_attention_heads}) must be a multiple of num_key_value_heads (${cfg.num_key_value_heads})`);
  if (cfg.head_dim % 2 !== 0) throw bad('head_dim', `must be even for RoPE, got ${cfg.head_dim}`);
  if (!(cfg.rms_norm_eps > 0)) throw bad('rms_norm_eps', 'must be > 0');
  if (!(cfg.rope_theta > 0)) throw bad('rope_theta', 'must be > 0');
  if (cfg.sliding_window !== null && !(Number.isInteger(cfg.sliding_window) && cfg.sliding_window > 0)) throw bad('sliding_window', `must be a positive integer or null, got ${cfg.sliding_window}`);
  if (cfg.model_type === 'mistral' && (cfg.qkv_bias || cfg.o_bias)) throw bad('model_type', '"mistral" has no biases');
  if (cfg.model_type === 'qwen2' && (!cfg.qkv_bias || cfg.o_bias)) throw bad('model_type', '"qwen2" has q/k/v biases and no o_proj bias');
  return cfg;
}

/** Parameter names and shapes, in HF order (biases after their weights). */
export function paramShapes(cfg: LlamaConfig): Array<[string, number[]]> {
  return [...llamaTensorShapes(cfg)];
}

/** The fused projections of one layer. */
export interface FusedLayer {
  /** q, k and v projections stacked: [(H + 2·KV)·d, D]. */
  qkv: Float32Array;
  /** gate and up projections stacked: [2I, D]. */
  gateUp: Float32Array;
}

/**
 * Layer l's weights as the native inference and training kernels multiply them (one product for
 * q|k|v, one for gate|up), read by HF name through `get`. Written into `into` when given (buffers
 * reused between training steps), else into new arrays.
 */
export function fusedLayerWeights(get: (name: string) => Float32Array, l: number, into?: FusedLayer): FusedLayer {
  const p = `model.layers.${l}.`;
  const stack = (names: string[], out?: Float32Array): Float32Array => {
    const ws = names.map((n) => get(p + n));
    const o = out ?? new Float32Array(ws.reduce((s, w) => s + w.length, 0));
    let at = 0;
    for (const w of ws) {
      o.set(w, at);
      at += w.length;
    }
    if (at !== o.length) throw new Error(`layer ${l}: the stacked ${names.join(' | ')} weights have ${at} values, the buffer ${o.length}`);
    return o;
  };
  return {
    qkv: stack(['self_attn.q_proj.weight', 'self_attn.k_proj.weight', 'self_attn.v_proj.weight'], into?.qkv),
    gateUp: stack(['mlp.gate_proj.weight', 'mlp.up_proj.weight'], into?.gateUp),
  };
}

export function numParams(cfg: LlamaConfig): number {
  return paramShapes(cfg).reduce((s, [, sh]) => s + sh.reduce((a, b) => a * b, 1), 0);
}

/** Per-layer key/value cache: k (after RoPE) and v as [B, Tk, kvHeads·headDim]. */
export interface KVCache {
  k: Tensor[];
  v: Tensor[];
  length: number;
}

export interface ForwardOptions {
  /** Position of every token, row-major [B*T]; default 0..T-1 in each row (or cache.length.. with a cache). */
  positions?: Int32Array;
  /**
   * Additive attention mask [B, T, Tk] row-major (0 = attend, MASKED = blocked), Tk = cache length
   * + T. Default: causal over the T new tokens, everything in the cache visible.
   */
  mask?: Float32Array;
  /** Past keys/values; when given, the new ones are returned in `cache` of the result. */
  cache?: KVCache;
  /** Only compute logits of each row's last position (result [B, V]). */
  lastOnly?: boolean;
  /**
   * No gradients will be taken: linear layers use cached transposed weights (valid until
   * `setWeights` / an optimizer step, which call `invalidate()`).
   */
  inference?: boolean;
}

export const MASKED = -1e9;

export class Llama {
  readonly config: LlamaConfig;
  /** Parameters by HF name, in HF order. */
  readonly params: Map<string, Variable>;
  private readonly invFreq: Float64Array;
  private transposed = new Map<string, Tensor>();
  private version = 0;

  private constructor(config: LlamaConfig, params: Map<string, Variable>) {
    this.config = config;
    this.params = params;
    this.invFreq = ropeInvFreq(config);
  }

  /** Random init: N(0, 0.02), o_proj/down_proj N(0, 0.02/sqrt(2L)), norms 1. Same seed → same weights. */
  static init(config: LlamaConfig, seed: number): Llama {
    const rng = new Rng(seed);
    const weights = new Map<string, Float32Array>();
    const small = 0.02 / Math.sqrt(2 * config.num_hidden_layers);
    for (const [name, shape] of paramShapes(config)) {
      const n = shape.reduce((a, b) => a * b, 1);
      const a = new Float32Array(n);
      if (name.endsWith('.bias')) a.fill(0); // HF initialises Linear biases of these models to 0
      else if (shape.length === 1) a.fill(1);
      else {
        const std = name.endsWith('o_proj.weight') || name.endsWith('down_proj.weight') ? small : 0.02;
        for (let i = 0; i < n; i++) a[i] = rng.normal() * std;
      }
      weights.set(name, a);
    }
    return Llama.fromWeights(config, weights);
  }

  /** Build from f32 arrays by HF name; every expected tensor must be present with the right size. */
  static fromWeights(config: LlamaConfig, weights: Map<string, Float32Array>): Llama {
    const params = new Map<string, Variable>();
    for (const [name, shape] of paramShapes(config)) {
      const a = weights.get(name);
      const n = shape.reduce((x, y) => x * y, 1);
      if (!a) throw new Error(`llama: missing tensor ${name}`);
      if (a.length !== n) throw new Error(`llama: tensor ${name} has ${a.length} values, expected ${n} (shape [${shape}])`);
    }
    for (const [name, shape] of paramShapes(config)) params.set(name, O.variable(weights.get(name)!, shape));
    return new Llama(config, params);
  }

  /** Copy of all weights as f32 arrays by HF name (HF shapes). */
  getWeights(): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    for (const [name, v] of this.params) out.set(name, O.read(v).slice());
    return out;
  }

  /** Incremented by every `invalidate()` (weights changed): lets derived caches (infer.ts) detect stale copies. */
  get weightsVersion(): number {
    return this.version;
  }

  /** Drop cached derived tensors; call after changing the variables directly. */
  invalidate(): void {
    this.version++;
    for (const t of this.transposed.values()) t.dispose();
    this.transposed.clear();
  }

  setWeights(weights: Map<string, Float32Array>): void {
    this.invalidate();
    for (const [name, v] of this.params) {
      const a = weights.get(name);
      if (!a || a.length !== v.size) throw new Error(`llama: setWeights: tensor ${name} missing or wrong size`);
      O.assign(v, a);
    }
  }

  clone(): Llama {
    return Llama.fromWeights(this.config, this.getWeights());
  }

  dispose(): void {
    this.invalidate();
    for (const v of this.params.values()) v.dispose();
  }

  private p(name: string): Tensor {
    return this.params.get(name)!;
  }

  /** x · Wᵀ for the weight `name` (+ its bias when `bias`); in inference mode with a cached transposed copy of W. */
  private lin(x: Tensor, name: string, inference: boolean, bias = false): Tensor {
    let y: Tensor;
    if (!inference) y = O.linear(x, this.p(name));
    else {
      let wt = this.transposed.get(name);
      if (!wt) {
        wt = O.keep(O.transpose(this.p(name), [1, 0]));
        this.transposed.set(name, wt);
      }
      y = O.matMulNoGrad(x, wt);
    }
    return bias ? O.add(y, this.p(name.replace(/\.weight$/, '.bias'))) : y;
  }

  /**
   * The additive mask of a sliding-window layer ([B, T, Tk]: the caller's mask, or the default causal
   * one, with keys at distance ≥ window also blocked). Key j of a row is taken at position j (the
   * default positions, right padding), so custom `positions` (left padding) are refused when the
   * window matters (Tk > window).
   */
  private windowMask(opts: ForwardOptions, B: number, T: number, Tk: number, window: number): Float32Array | null {
    if (Tk <= window) return opts.mask ?? null;
    if (opts.positions) throw new Error(`llama: a sliding window of ${window} with ${Tk} keys needs the default positions (custom positions are not supported with a window; use the infer engine)`);
    const past = Tk - T;
    const m = opts.mask ? Float32Array.from(opts.mask) : new Float32Array(B * T * Tk);
    for (let b = 0; b < B; b++)
      for (let t = 0; t < T; t++) {
        const i = past + t;
        const o = (b * T + t) * Tk;
        for (let j = 0; j < Tk; j++) if ((!opts.mask && j > i) || i - j >= window) m[o + j] = MASKED;
      }
    return m;
  }

  /** cos/sin of every row's rotary angles, [N, d/2] each. */
  private ropeTables(positions: Int32Array): { cos: Float32Array; sin: Float32Array } {
    const h = this.config.head_dim / 2;
    const n = positions.length;
    const c = new Float32Array(n * h);
    const s = new Float32Array(n * h);
    for (let t = 0; t < n; t++) {
      for (let i = 0; i < h; i++) {
        const a = positions[t] * this.invFreq[i];
        c[t * h + i] = Math.cos(a);
        s[t * h + i] = Math.sin(a);
      }
    }
    return { cos: c, sin: s };
  }

  private rmsnorm(x: Tensor, w: Tensor): Tensor {
    return O.rmsnorm(x, w, this.config.rms_norm_eps);
  }

  /**
   * Logits [B*T, V] (or [B, V] with lastOnly) for int32 ids [B, T]. Call inside `O.tidy` (training/scoring) — with a cache the
   * returned cache tensors must be kept by the caller.
   */
  forward(ids: Tensor, opts: ForwardOptions = {}): { logits: Tensor; cache?: KVCache } {
    const cfg = this.config;
    const [B, T] = ids.shape;
    const N = B * T;
    const H = cfg.num_attention_heads;
    const KV = cfg.num_key_value_heads;
    const d = cfg.head_dim;
    const past = opts.cache?.length ?? 0;
    const Tk = past + T;

    let positions = opts.positions;
    if (!positions) {
      positions = new Int32Array(N);
      for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) positions[b * T + t] = past + t;
    } else if (positions.length !== N) throw new Error(`llama: positions has ${positions.length} entries, expected ${N}`);
    const { cos, sin } = this.ropeTables(positions);
    const kvw = KV * d;
    const inf = opts.inference ?? false;

    let x = O.reshape(O.embed(ids, this.p('model.embed_tokens.weight')), [N, cfg.hidden_size]);
    const newK: Tensor[] = [];
    const newV: Tensor[] = [];
    for (let l = 0; l < cfg.num_hidden_layers; l++) {
      const p = `model.layers.${l}.`;
      const h = this.rmsnorm(x, this.p(p + 'input_layernorm.weight'));
      const qb = cfg.qkv_bias;
      const q = O.rope(this.lin(h, p + 'self_attn.q_proj.weight', inf, qb), H, d, cos, sin);
      let k = O.rope(this.lin(h, p + 'self_attn.k_proj.weight', inf, qb), KV, d, cos, sin);
      let v = this.lin(h, p + 'self_attn.v_proj.weight', inf, qb);
      if (opts.cache) {
        if (past > 0) {
          k = O.reshape(O.concat([opts.cache.k[l], O.reshape(k, [B, T, kvw])], 1), [B * Tk, kvw]);
          v = O.reshape(O.concat([opts.cache.v[l], O.reshape(v, [B, T, kvw])], 1), [B * Tk, kvw]);
        }
        newK.push(O.reshape(k, [B, Tk, kvw]));
        newV.push(O.reshape(v, [B, Tk, kvw]));
      }
      // single-token decoding: plain JS loops beat the framework's per-op overhead
      const win = layerWindow(cfg, l);
      const mask = win === null ? (opts.mask ?? null) : this.windowMask(opts, B, T, Tk, win);
      const y = (T === 1 ? O.attention : O.attentionBatched)(q, k, v, B, T, Tk, H, KV, d, mask);
      x = O.add(x, this.lin(y, p + 'self_attn.o_proj.weight', inf, cfg.o_bias));
      const h2 = this.rmsnorm(x, this.p(p + 'post_attention_layernorm.weight'));
      const act = O.swiglu(this.lin(h2, p + 'mlp.gate_proj.weight', inf), this.lin(h2, p + 'mlp.up_proj.weight', inf));
      x = O.add(x, this.lin(act, p + 'mlp.down_proj.weight', inf));
    }
    if (opts.lastOnly && T > 1) x = O.reshape(O.slice(O.reshape(x, [B, T, cfg.hidden_size]), [0, T - 1, 0], [B, 1, cfg.hidden_size]), [B, cfg.hidden_size]);
    x = this.rmsnorm(x, this.p('model.norm.weight'));
    const logits = this.lin(x, cfg.tie_word_embeddings ? 'model.embed_tokens.weight' : 'lm_head.weight', inf);
    return { logits, cache: opts.cache ? { k: newK, v: newV, length: Tk } : undefined };
  }
}

/** Rotary inverse frequencies 1 / θ^(2i/d), i < head_dim/2 (double precision), Llama 3-scaled when the config says so. */
export function ropeInvFreq(config: Pick<LlamaConfig, 'head_dim' | 'rope_theta' | 'rope_scaling'>): Float64Array {
  const d = config.head_dim;
  const inv = new Float64Array(d / 2);
  for (let i = 0; i < d / 2; i++) inv[i] = 1 / Math.pow(config.rope_theta, (2 * i) / d);
  return config.rope_scaling ? scaledInvFreq(inv, config.rope_scaling) : inv;
}

/** cos/sin of the rotary angles of positions 0..P-1, [P, head_dim/2] each (the angles `Llama.forward` uses). */
export function ropeTables(config: LlamaConfig, P: number): { cos: Float32Array<ArrayBuffer>; sin: Float32Array<ArrayBuffer> } {
  const inv = ropeInvFreq(config);
  const h = inv.length;
  const cos = new Float32Array(P * h);
  const sin = new Float32Array(P * h);
  for (let t = 0; t < P; t++) {
    for (let i = 0; i < h; i++) {
      const a = t * inv[i];
      cos[t * h + i] = Math.cos(a);
      sin[t * h + i] = Math.sin(a);
    }
  }
  return { cos, sin };
}
