/**
 * Inference engine for small Llamas without the tensor framework: weights and the KV cache live in
 * Float32Arrays, a forward call is a dozen fused kernels per layer. At the sizes this project uses
 * (hidden 64–256, a few layers) the framework's per-op overhead (tens of µs per op plus a
 * synchronous read of every intermediate) costs more than the arithmetic. Kernels: native
 * (native/infer.cc: AVX2+FMA matmul tiles, attention over the cache, RoPE + cache writes, SwiGLU,
 * residual + RMSNorm) when the addon is loaded; JS loops otherwise (`SELFDEV_NO_NATIVE=1`, missing
 * addon, or an addon built before these kernels existed).
 *
 * Semantics are those of `Llama.forward` (model.ts), with one simplification that does not change
 * results: every row keeps its own cache of valid tokens only, so there is no left padding and no
 * mask (a padded key of the framework path gets probability exactly 0). Row r's t-th token has
 * position t. The JS kernels repeat the arithmetic of the JS kernels in ops.ts (double
 * accumulation, float32 storage); the native ones compute in float32 with FMA. Either way the
 * results differ from the framework path by rounding only (infer.test.ts: within 1e-4 relative of
 * the float64 reference forward and of the framework's logits; greedy outputs identical).
 *
 * A decoding step at batch 32–64 of the tiny-world model spends ~40% in the matrix products and
 * ~40% in attention, which streams each row's whole KV cache (f32; memory-bound once the batch's
 * caches outgrow the L2/L3 caches), so questions/s per CPU-second hardly grow with the batch size.
 *
 * Memory: each weight is kept once, in the form its kernel reads (Wᵀ padded to 16 columns for the
 * native matmul, W for the JS one; q|k|v and gate|up packed from their parts): ≈ 4 bytes per
 * parameter. checkpoint.ts `loadInferModel` fills it from a model folder one tensor at a time, with
 * no framework model in between (`selfdev serve`, `selfdev eval`: any size that fits in RAM).
 *
 * Architectures (io/architectures.ts): q/k/v biases are added to the fused q|k|v product and the o
 * bias to o_proj's, Llama 3 rope scaling lives in the rotary tables (model.ts `ropeTables`), and a
 * layer with a sliding window attends to slots slot − window + 1..slot (`inferAttentionWindow`; the
 * cache keeps every slot, which costs only memory at the sizes this engine runs).
 */
import { native } from '../tensor/native.ts';
import { ropeTables, type Llama, type LlamaConfig } from './model.ts';
import { layerWindow } from '../io/architectures.ts';
import { addRows, attentionJs, MatBuilder, matmulJs, matRows, type Mat } from './infer-mat.ts';

/** Addon entry points used here (native/infer.cc); absent from older builds of the addon. */
interface InferKernels {
  /** out[N, M] = x[N, K] · wt[K, Mp] (wt = Wᵀ zero-padded to Mp columns, Mp a multiple of 16). */
  inferMatmul(out: Float32Array, x: Float32Array, wt: Float32Array, N: number, K: number, M: number, Mp: number): void;
  /**
   * Causal attention of `n` new tokens: token i is row rows[i] at slot slots[i] (keys 0..slot of
   * that row). q [n, qStride] (heads at 0..H·d), caches in the session layout → out [n, H·d].
   */
  inferAttention3(out: Float32Array, q: Float32Array, qStride: number, kc: Float32Array, vc: Float32Array, cap: number, rows: Int32Array, slots: Int32Array, H: number, KV: number, d: number): void;
  /** RoPE of the q and k heads of qkv rows [n, W] at position slots[i], then k and v into the caches. */
  inferRopeStore3(qkv: Float32Array, W: number, H: number, KV: number, d: number, cos: Float32Array, sin: Float32Array, rows: Int32Array, slots: Int32Array, kc: Float32Array, vc: Float32Array, cap: number): void;
  /** inferAttention3 over the keys lo..slot of each token, lo = max(0, slot − window + 1). */
  inferAttentionWindow?(out: Float32Array, q: Float32Array, qStride: number, kc: Float32Array, vc: Float32Array, cap: number, rows: Int32Array, slots: Int32Array, H: number, KV: number, d: number, window: number): void;
  /** act[n, i] = silu(gu[n, i]) · gu[n, I + i]. */
  inferSwiglu(act: Float32Array, gu: Float32Array, N: number, I: number): void;
  /** x += delta (unless null); y = rmsnorm(x) · w over rows of w.length. */
  inferAddRmsnorm(x: Float32Array, delta: Float32Array | null, y: Float32Array, w: Float32Array, N: number, eps: number): void;
}

const nativeInfer: InferKernels | null = (() => {
  const n = native as unknown as Partial<InferKernels> | null;
  if (!n) return null;
  const names = ['inferMatmul', 'inferAttention3', 'inferRopeStore3', 'inferSwiglu', 'inferAddRmsnorm'] as const;
  return names.every((k) => typeof n[k] === 'function') ? (n as InferKernels) : null;
})();

/** Whether the native inference kernels are in use (false → JS loops). */
export function inferNative(): boolean {
  return nativeInfer !== null;
}


interface Layer {
  inNorm: Float32Array;
  postNorm: Float32Array;
  /** q, k, v projections stacked: [(H + 2·KV)·d, D]. */
  qkv: Mat;
  o: Mat;
  /** gate and up stacked: [2I, D]. */
  gateUp: Mat;
  down: Mat;
  /** q, k, v biases stacked [(H + 2·KV)·d], or null. */
  qkvBias: Float32Array | null;
  /** o_proj's bias [D], or null. */
  oBias: Float32Array | null;
  /** Sliding window of this layer (tokens), or null for full causal attention. */
  window: number | null;
}

/**
 * Where the engine reads its weights: `get(name, keep)` returns tensor `name` (HF name) as f32,
 * row-major in its PyTorch shape. keep = true: the engine keeps the array (it must not change
 * afterwards); keep = false: the array is only read before the next call (it may be a scratch
 * buffer reused for the next tensor). Throws for a tensor it does not have.
 */
export type WeightSource = (name: string, keep: boolean) => Float32Array;

const snapshots = new WeakMap<Llama, { version: number; infer: InferModel }>();

/** A Llama's weights prepared for the inference kernels (immutable snapshot). */
export class InferModel {
  readonly config: LlamaConfig;
  readonly native: boolean;
  private readonly embed: Float32Array;
  private readonly layers: Layer[];
  private readonly finalNorm: Float32Array;
  private readonly head: Mat;
  /** cos/sin of every position's rotary angles [maxPos, d/2] (as model.ts computes them). */
  private cos = new Float32Array(0);
  private sin = new Float32Array(0);

  private constructor(config: LlamaConfig, get: WeightSource, useNative: boolean) {
    this.config = config;
    this.native = useNative;
    const D = config.hidden_size;
    const I = config.intermediate_size;
    const d = config.head_dim;
    const H = config.num_attention_heads;
    const KV = config.num_key_value_heads;
    // a vector kept by the engine, checked against its size
    const vec = (n: string, len: number): Float32Array => {
      const a = get(n, true);
      if (a.length !== len) throw new Error(`infer: tensor ${n} has ${a.length} values, the config implies ${len}`);
      return a;
    };
    // a matrix of row blocks (each read, handed over and dropped before the next is read)
    const mat = (names: string[], M: number, K: number, what: string): Mat => {
      const b = new MatBuilder(M, K, useNative);
      // on the JS path a lone block is kept as the matrix itself
      for (const n of names) b.rows(get(n, !useNative && names.length === 1), n);
      return b.done(what);
    };
    this.embed = vec('model.embed_tokens.weight', config.vocab_size * D);
    this.layers = [];
    for (let l = 0; l < config.num_hidden_layers; l++) {
      const p = `model.layers.${l}.`;
      let qkvBias: Float32Array | null = null;
      if (config.qkv_bias) {
        qkvBias = new Float32Array((H + 2 * KV) * d);
        const parts: Array<[string, number, number]> = [['q', 0, H * d], ['k', H * d, KV * d], ['v', (H + KV) * d, KV * d]];
        for (const [x, at, len] of parts) {
          const n = `${p}self_attn.${x}_proj.bias`;
          const v = get(n, false);
          if (v.length !== len) throw new Error(`infer: tensor ${n} has ${v.length} values, the config implies ${len}`);
          qkvBias.set(v, at);
        }
      }
      this.layers.push({
        qkvBias,
        oBias: config.o_bias ? vec(p + 'self_attn.o_proj.bias', D) : null,
        window: layerWindow(config, l),
        inNorm: vec(p + 'input_layernorm.weight', D),
        postNorm: vec(p + 'post_attention_layernorm.weight', D),
        qkv: mat(['q', 'k', 'v'].map((x) => `${p}self_attn.${x}_proj.weight`), (H + 2 * KV) * d, D, `layer ${l} q|k|v`),
        o: mat([p + 'self_attn.o_proj.weight'], D, H * d, `layer ${l} o_proj`),
        gateUp: mat([p + 'mlp.gate_proj.weight', p + 'mlp.up_proj.weight'], 2 * I, D, `layer ${l} gate|up`),
        down: mat([p + 'mlp.down_proj.weight'], D, I, `layer ${l} down_proj`),
      });
    }
    this.finalNorm = vec('model.norm.weight', D);
    if (config.tie_word_embeddings) this.head = new MatBuilder(config.vocab_size, D, useNative).rows(this.embed, 'model.embed_tokens.weight').done('lm_head (tied)');
    else this.head = mat(['lm_head.weight'], config.vocab_size, D, 'lm_head');
    this.ensurePositions(config.max_position_embeddings);
  }

  /** Rotary tables for positions 0..P-1 (like model.ts, positions past max_position_embeddings are allowed). */
  ensurePositions(P: number): void {
    if (this.cos.length >= (P * this.config.head_dim) / 2) return;
    ({ cos: this.cos, sin: this.sin } = ropeTables(this.config, P));
  }

  /**
   * From f32 weights by HF name. Some arrays are kept, not copied (the embedding and norms; on the
   * JS path also the unstacked matrices): do not change them afterwards. `useNative` defaults to
   * the addon's availability.
   */
  static fromWeights(config: LlamaConfig, weights: Map<string, Float32Array>, opts: { useNative?: boolean } = {}): InferModel {
    return InferModel.fromSource(config, (n) => {
      const a = weights.get(n);
      if (!a) throw new Error(`infer: missing tensor ${n}`);
      return a;
    }, opts);
  }

  /**
   * From a weight source read tensor by tensor (`WeightSource`; e.g. a checkpoint decoded one tensor
   * at a time, checkpoint.ts `loadInferModel`): the engine's memory is its own packed weights plus
   * the tensor being read. `useNative` defaults to the addon's availability.
   */
  static fromSource(config: LlamaConfig, get: WeightSource, opts: { useNative?: boolean } = {}): InferModel {
    const useNative = (opts.useNative ?? true) && nativeInfer !== null;
    return new InferModel(config, get, useNative);
  }

  /**
   * The weights by HF name as row-major f32 copies, unpacked from the forms the kernels read (checks
   * and tests: the values the engine computes with).
   */
  weights(): Map<string, Float32Array> {
    const c = this.config;
    const [H, KV, d, I] = [c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.intermediate_size];
    const out = new Map<string, Float32Array>([['model.embed_tokens.weight', this.embed.slice()]]);
    this.layers.forEach((L, l) => {
      const p = `model.layers.${l}.`;
      out.set(p + 'input_layernorm.weight', L.inNorm.slice());
      out.set(p + 'post_attention_layernorm.weight', L.postNorm.slice());
      const qkv: Array<[string, number, number]> = [['q', 0, H * d], ['k', H * d, KV * d], ['v', (H + KV) * d, KV * d]];
      for (const [x, at, n] of qkv) {
        out.set(`${p}self_attn.${x}_proj.weight`, matRows(L.qkv, at, n));
        if (L.qkvBias) out.set(`${p}self_attn.${x}_proj.bias`, L.qkvBias.slice(at, at + n));
      }
      out.set(p + 'self_attn.o_proj.weight', matRows(L.o, 0, L.o.M));
      if (L.oBias) out.set(p + 'self_attn.o_proj.bias', L.oBias.slice());
      out.set(p + 'mlp.gate_proj.weight', matRows(L.gateUp, 0, I));
      out.set(p + 'mlp.up_proj.weight', matRows(L.gateUp, I, I));
      out.set(p + 'mlp.down_proj.weight', matRows(L.down, 0, L.down.M));
    });
    out.set('model.norm.weight', this.finalNorm.slice());
    if (!c.tie_word_embeddings) out.set('lm_head.weight', matRows(this.head, 0, this.head.M));
    return out;
  }

  /** Bytes of the weights the kernels read (packed matrices, embedding, norms, biases). */
  weightBytes(): number {
    const m = (x: Mat) => (x.wt ?? x.w!).byteLength;
    let n = this.embed.byteLength + this.finalNorm.byteLength + (this.head.w === this.embed ? 0 : m(this.head));
    for (const L of this.layers) n += L.inNorm.byteLength + L.postNorm.byteLength + m(L.qkv) + m(L.o) + m(L.gateUp) + m(L.down) + (L.qkvBias?.byteLength ?? 0) + (L.oBias?.byteLength ?? 0);
    return n;
  }

  /** Snapshot of a framework model's current weights. */
  static fromLlama(model: Llama, opts: { useNative?: boolean } = {}): InferModel {
    return InferModel.fromWeights(model.config, model.getWeights(), opts);
  }

  /**
   * The snapshot of `model` for the default kernels, reused while the model's weights are unchanged
   * (`Llama.weightsVersion`, bumped by setWeights / optimizer steps through `invalidate()`).
   */
  static of(model: Llama): InferModel {
    const c = snapshots.get(model);
    if (c && c.version === model.weightsVersion) return c.infer;
    const infer = InferModel.fromLlama(model);
    snapshots.set(model, { version: model.weightsVersion, infer });
    return infer;
  }

  /** A KV cache for `rows` sequences of up to `capacity` tokens each. */
  session(rows: number, capacity: number): InferSession {
    return new InferSession(this, rows, capacity);
  }

  private matmul(out: Float32Array, x: Float32Array, m: Mat, N: number): void {
    if (this.native && m.wt) nativeInfer!.inferMatmul(out, x, m.wt, N, m.K, m.M, m.Mp);
    else matmulJs(out, x, m, N);
  }

  /** x += delta (unless null), then y[n] = x[n] / sqrt(mean(x²) + eps) · w over rows of width D (ops.ts rmsnorm arithmetic). */
  private rmsnorm(y: Float32Array, x: Float32Array, w: Float32Array, N: number, delta: Float32Array | null = null): void {
    const D = w.length;
    const eps = this.config.rms_norm_eps;
    if (this.native) return nativeInfer!.inferAddRmsnorm(x, delta, y, w, N, eps);
    if (delta) for (let i = 0; i < N * D; i++) x[i] += delta[i];
    for (let n = 0; n < N; n++) {
      const o = n * D;
      let ss = 0;
      for (let i = 0; i < D; i++) ss += x[o + i] * x[o + i];
      const r = 1 / Math.sqrt(ss / D + eps);
      for (let i = 0; i < D; i++) y[o + i] = x[o + i] * r * w[i];
    }
  }

  /** Rotate `heads` heads starting at column `col` of each row of x (row stride `stride`) by the row's position. */
  private rope(x: Float32Array, stride: number, col: number, heads: number, pos: Int32Array, N: number): void {
    const d = this.config.head_dim;
    const h = d / 2;
    for (let n = 0; n < N; n++) {
      const tb = pos[n] * h;
      for (let hd = 0; hd < heads; hd++) {
        const o = n * stride + col + hd * d;
        for (let i = 0; i < h; i++) {
          const c = this.cos[tb + i];
          const s = this.sin[tb + i];
          const a = x[o + i];
          const b = x[o + i + h];
          x[o + i] = a * c - b * s;
          x[o + i + h] = b * c + a * s;
        }
      }
    }
  }

  /**
   * Run `n` new tokens through the model: token i belongs to cache row rows[i] at slot slots[i]
   * (its position); its k/v are written into the cache. Returns the final hidden states (after the
   * last layer, before the final norm) [n, D].
   */
  forwardTokens(s: InferSession, ids: Int32Array, rows: Int32Array, slots: Int32Array): Float32Array {
    const cfg = this.config;
    const N = ids.length;
    const D = cfg.hidden_size;
    const I = cfg.intermediate_size;
    const H = cfg.num_attention_heads;
    const KV = cfg.num_key_value_heads;
    const d = cfg.head_dim;
    const kvw = KV * d;
    const qw = H * d;
    const Wqkv = qw + 2 * kvw;
    const V = cfg.vocab_size;
    const x = new Float32Array(N * D);
    for (let n = 0; n < N; n++) {
      const t = ids[n];
      if (!(t >= 0 && t < V)) throw new Error(`infer: token id ${t} outside the vocabulary [0, ${V})`);
      x.set(this.embed.subarray(t * D, (t + 1) * D), n * D);
    }
    const h = new Float32Array(N * D);
    const qkv = new Float32Array(N * Wqkv);
    const att = new Float32Array(N * qw);
    const tmp = new Float32Array(N * D);
    const gu = new Float32Array(N * 2 * I);
    const act = new Float32Array(N * I);
    const cap = s.slotsPerRow;
    for (let l = 0; l < this.layers.length; l++) {
      const L = this.layers[l];
      this.rmsnorm(h, x, L.inNorm, N);
      this.matmul(qkv, h, L.qkv, N);
      if (L.qkvBias) addRows(qkv, L.qkvBias, N);
      const kc = s.k[l];
      const vc = s.v[l];
      // the window matters once a token sits at slot ≥ window
      const win = L.window !== null && slots.some((j) => j >= L.window!) ? L.window : null;
      if (this.native && (win === null || nativeInfer!.inferAttentionWindow)) {
        nativeInfer!.inferRopeStore3(qkv, Wqkv, H, KV, d, this.cos, this.sin, rows, slots, kc, vc, cap);
        if (win === null) nativeInfer!.inferAttention3(att, qkv, Wqkv, kc, vc, cap, rows, slots, H, KV, d);
        else nativeInfer!.inferAttentionWindow!(att, qkv, Wqkv, kc, vc, cap, rows, slots, H, KV, d, win);
      } else {
        this.rope(qkv, Wqkv, 0, H, slots, N);
        this.rope(qkv, Wqkv, qw, KV, slots, N);
        for (let n = 0; n < N; n++) {
          const src = n * Wqkv + qw;
          const j = slots[n];
          for (let g = 0; g < KV; g++) {
            const kb = (rows[n] * KV + g) * cap * d + (j & ~7) * d + (j & 7);
            for (let i = 0; i < d; i++) kc[kb + i * 8] = qkv[src + g * d + i];
            const vb = ((rows[n] * KV + g) * cap + slots[n]) * d;
            vc.set(qkv.subarray(src + kvw + g * d, src + kvw + (g + 1) * d), vb);
          }
        }
        attentionJs(att, qkv, Wqkv, kc, vc, cap, rows, slots, H, KV, d, win);
      }
      this.matmul(tmp, att, L.o, N);
      if (L.oBias) addRows(tmp, L.oBias, N);
      this.rmsnorm(h, x, L.postNorm, N, tmp);
      this.matmul(gu, h, L.gateUp, N);
      if (this.native) nativeInfer!.inferSwiglu(act, gu, N, I);
      else {
        for (let n = 0; n < N; n++) {
          const go = n * 2 * I;
          const ao = n * I;
          for (let i = 0; i < I; i++) {
            const g = gu[go + i];
            const sg = 1 / (1 + Math.exp(-g));
            act[ao + i] = g * sg * gu[go + I + i];
          }
        }
      }
      this.matmul(tmp, act, L.down, N);
      for (let i = 0; i < N * D; i++) x[i] += tmp[i];
    }
    return x;
  }

  /** Logits [N, V] of final hidden states x [N, D]. */
  logits(x: Float32Array, N: number): Float32Array {
    const D = this.config.hidden_size;
    const h = new Float32Array(N * D);
    this.rmsnorm(h, x, this.finalNorm, N);
    const out = new Float32Array(N * this.config.vocab_size);
    this.matmul(out, h, this.head, N);
    return out;
  }
}


/** Per-row KV caches of a batch of sequences (valid tokens only, no padding). */
export class InferSession {
  readonly model: InferModel;
  readonly rows: number;
  readonly capacity: number;
  /** Tokens cached per row. */
  readonly lengths: Int32Array;
  /** Slots per row in the cache arrays: capacity rounded up to a multiple of 8. */
  readonly slotsPerRow: number;
  /** Per layer: keys [rows, KV, slotsPerRow/8, head_dim, 8], values [rows, KV, slotsPerRow, head_dim]. */
  readonly k: Float32Array[];
  readonly v: Float32Array[];

  constructor(model: InferModel, rows: number, capacity: number) {
    const cfg = model.config;
    if (!(Number.isInteger(rows) && rows > 0)) throw new Error(`infer: rows must be a positive integer, got ${rows}`);
    if (!(Number.isInteger(capacity) && capacity > 0)) throw new Error(`infer: capacity must be a positive integer, got ${capacity}`);
    this.model = model;
    this.rows = rows;
    this.capacity = capacity;
    this.lengths = new Int32Array(rows);
    this.slotsPerRow = Math.ceil(capacity / 8) * 8;
    model.ensurePositions(this.slotsPerRow);
    const kvw = cfg.num_key_value_heads * cfg.head_dim;
    this.k = [];
    this.v = [];
    for (let l = 0; l < cfg.num_hidden_layers; l++) {
      this.k.push(new Float32Array(rows * this.slotsPerRow * kvw));
      this.v.push(new Float32Array(rows * this.slotsPerRow * kvw));
    }
  }

  /**
   * Append tokens[i] to row rows[i] (each row at most once per call) and return the logits after
   * each row's last appended token, [rows.length, V] row-major.
   */
  feed(rows: ArrayLike<number>, tokens: ArrayLike<number>[]): Float32Array {
    if (rows.length !== tokens.length) throw new Error(`infer: ${rows.length} rows but ${tokens.length} token lists`);
    let N = 0;
    const seen = new Set<number>();
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i];
      if (!(Number.isInteger(r) && r >= 0 && r < this.rows)) throw new Error(`infer: row ${r} outside [0, ${this.rows})`);
      if (seen.has(r)) throw new Error(`infer: row ${r} given twice in one feed`);
      seen.add(r);
      const n = tokens[i].length;
      if (n === 0) throw new Error(`infer: no tokens for row ${r}`);
      if (this.lengths[r] + n > this.capacity) throw new Error(`infer: row ${r} would hold ${this.lengths[r] + n} tokens, capacity ${this.capacity}`);
      N += n;
    }
    const ids = new Int32Array(N);
    const rowOf = new Int32Array(N);
    const slot = new Int32Array(N);
    const last = new Int32Array(rows.length);
    let o = 0;
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i];
      const t = tokens[i];
      for (let j = 0; j < t.length; j++, o++) {
        ids[o] = t[j];
        rowOf[o] = r;
        slot[o] = this.lengths[r] + j;
      }
      last[i] = o - 1;
    }
    const x = this.model.forwardTokens(this, ids, rowOf, slot);
    for (let i = 0; i < rows.length; i++) this.lengths[rows[i]] += tokens[i].length;
    const D = this.model.config.hidden_size;
    const xl = new Float32Array(rows.length * D);
    for (let i = 0; i < rows.length; i++) xl.set(x.subarray(last[i] * D, (last[i] + 1) * D), i * D);
    return this.model.logits(xl, rows.length);
  }
}
