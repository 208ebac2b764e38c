/**
 * Framework-free training step for the tiny Llama (model.ts semantics): forward with saved
 * activations and a hand-written backward, on flat Float32Arrays, with the native kernels of
 * native/train.cc (packed AVX2+FMA GEMM with transposed operands, causal attention forward/backward,
 * RoPE, RMSNorm, SwiGLU, fused masked cross-entropy). The embedding gather / scatter-add is JS.
 *
 * Layout: the q|k|v projections run as one GEMM against the stacked weight [(H+2·KV)·d, D] and
 * gate|up as one against [2I, D] (stacked copies made every step; in HF order these parameters are
 * adjacent, so their gradients are one contiguous block of the flat gradient buffer).
 *
 * Loss = −Σ weight·log p(target) / Σ weight over the batch (the same as train.ts `lossAndGrads`);
 * attention is causal within each row (right padding never reaches a real token); its forward keeps
 * only each query row's score max and 1/Σexp, and the backward recomputes the probabilities from them
 * (memory O(B·H·T), not O(B·H·T²)). Results match the tfjs trainer up to float32 rounding
 * (train-native.test.ts) and are bit-identical for any thread count. `nativeAdamW` is AdamW.step's
 * update loop in native code (bit-identical to the JS loop). Speed: `npm run bench:nn`.
 */
import { native } from '../tensor/native.ts';
import { getThreads } from '../tensor/kernels.ts';
import { fusedLayerWeights, paramShapes, ropeTables } from './model.ts';
import type { LlamaConfig } from './model.ts';
import type { Batch } from './data.ts';

/** Entry points of native/train.cc (absent from older builds of the addon). */
interface TrainKernels {
  trainGemm(C: Float32Array, A: Float32Array, B: Float32Array, N: number, K: number, M: number, transA: number, transB: number, accumulate: number, threads: number): void;
  trainAttnFwd2(Y: Float32Array, stats: Float32Array, qkv: Float32Array, B: number, T: number, H: number, KV: number, d: number, threads: number): void;
  trainAttnBwd2(dqkv: Float32Array, dY: Float32Array, stats: Float32Array, qkv: Float32Array, B: number, T: number, H: number, KV: number, d: number, threads: number): void;
  trainRope(x: Float32Array, N: number, W: number, heads: number, d: number, cos: Float32Array, sin: Float32Array, T: number, sign: number, threads: number): void;
  trainRmsFwd(y: Float32Array, r: Float32Array, x: Float32Array, w: Float32Array, N: number, D: number, eps: number, threads: number): void;
  trainRmsBwd(dx: Float32Array, dw: Float32Array, dy: Float32Array, x: Float32Array, r: Float32Array, w: Float32Array, N: number, D: number): void;
  trainSwigluFwd(act: Float32Array, gu: Float32Array, N: number, I: number, threads: number): void;
  trainSwigluBwd(dgu: Float32Array, dact: Float32Array, gu: Float32Array, N: number, I: number, threads: number): void;
  trainXent(logits: Float32Array, targets: Int32Array, weights: Float32Array, N: number, V: number, scale: number, threads: number, lpOut?: Float64Array): number;
  trainInfo(): { simd: boolean };
  trainAdamW(w: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, scale: number, beta1: number, beta2: number, bc2: number, stepSize: number, eps: number, decay: number): void;
}

const K: TrainKernels | null = (() => {
  const n = native as unknown as Partial<TrainKernels> | null;
  if (!n) return null;
  const need: Array<keyof TrainKernels> = ['trainGemm', 'trainAttnFwd2', 'trainAttnBwd2', 'trainRope', 'trainRmsFwd', 'trainRmsBwd', 'trainSwigluFwd', 'trainSwigluBwd', 'trainXent', 'trainInfo', 'trainAdamW'];
  return need.every((k) => typeof n[k] === 'function') ? (n as TrainKernels) : null;
})();

/** Whether the native training kernels are loaded (else use the tfjs trainer). */
export function nativeTrainingAvailable(): boolean {
  return K !== null;
}

/**
 * Whether the native engine is the better default: loaded and running its AVX2+FMA kernels (its
 * plain-loop fallback, used without AVX2 or with SELFDEV_NO_AVX2=1, is slower than tfjs).
 */
export function preferNativeTraining(config?: LlamaConfig): boolean {
  return K !== null && K.trainInfo().simd && (config === undefined || nativeTrainingProblem(config) === null);
}

/**
 * Why the native trainer cannot run `config` (biases and sliding windows are not in its kernels), or
 * null when it can. The tfjs trainer runs every architecture the engine reads.
 */
export function nativeTrainingProblem(config: LlamaConfig): string | null {
  if (config.qkv_bias || config.o_bias) return `the native trainer has no attention biases (model_type "${config.model_type}"); use engine 'tfjs'`;
  if (config.sliding_window !== null) return `the native trainer has no sliding-window attention (sliding_window ${config.sliding_window}); use engine 'tfjs'`;
  return null;
}

/**
 * One tensor's AdamW update in place, bit-identical to the JS loop of `AdamW.step` (train.ts):
 * g' = g·scale; m = β1·m + (1−β1)·g'; v = β2·v + (1−β2)·g'²; w = w·decay − stepSize·m / (sqrt(v / bc2) + eps),
 * in double precision with float32 storage. Returns false (nothing done) without the native kernels.
 */
export function nativeAdamW(w: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, scale: number, beta1: number, beta2: number, bc2: number, stepSize: number, eps: number, decay: number): boolean {
  if (!K) return false;
  if (g.length !== w.length || m.length !== w.length || v.length !== w.length) throw new Error(`nativeAdamW: array lengths differ (${w.length}, ${g.length}, ${m.length}, ${v.length})`);
  K.trainAdamW(w, g, m, v, scale, beta1, beta2, bc2, stepSize, eps, decay);
  return true;
}

export interface NativeTrainerOptions {
  /**
   * Threads of the addon's pool for GEMMs and attention (default: the native kernels' setting,
   * `setThreads` in src/tensor/kernels.ts, 2 unless changed). Results do not depend on it.
   */
  threads?: number;
}

interface LayerBufs {
  xin: Float32Array;
  r1: Float32Array;
  h1: Float32Array;
  qkv: Float32Array;
  /** per query row: score max and 1/Σexp ([B, H, T, 2]); the backward recomputes the probabilities */
  stats: Float32Array;
  y: Float32Array;
  xmid: Float32Array;
  r2: Float32Array;
  h2: Float32Array;
  gu: Float32Array;
  act: Float32Array;
}

/** Grow-only scratch arrays; `get` returns a view of exactly n elements. */
class Arena {
  private store = new Map<string, Float32Array>();
  get(name: string, n: number): Float32Array {
    let a = this.store.get(name);
    if (!a || a.length < n) {
      a = new Float32Array(n);
      this.store.set(name, a);
    }
    return a.subarray(0, n);
  }
}

/**
 * Loss and gradients of the Llama for batches, on flat arrays. Keeps scratch buffers between calls
 * (the returned gradient arrays are views into one buffer and are overwritten by the next call).
 */
export class NativeTrainer {
  readonly config: LlamaConfig;
  readonly threads: number;
  readonly names: string[];
  private readonly sizes: number[];
  private readonly offsets: number[];
  private readonly grad: Float32Array;
  private readonly arena = new Arena();
  private ropeT = -1;
  private cos = new Float32Array(0);
  private sin = new Float32Array(0);

  constructor(config: LlamaConfig, opts: NativeTrainerOptions = {}) {
    if (!K) throw new Error('native trainer: the native training kernels are not available (build the addon: npm install, or use the tfjs engine)');
    const problem = nativeTrainingProblem(config);
    if (problem) throw new Error(`native trainer: ${problem}`);
    this.config = config;
    this.threads = Math.max(1, Math.floor(opts.threads ?? getThreads()));
    const shapes = paramShapes(config);
    this.names = shapes.map(([n]) => n);
    this.sizes = shapes.map(([, s]) => s.reduce((a, b) => a * b, 1));
    this.offsets = [];
    let o = 0;
    for (const n of this.sizes) {
      this.offsets.push(o);
      o += n;
    }
    this.grad = new Float32Array(o);
  }

  private idx(name: string): number {
    return this.names.indexOf(name);
  }

  /** Gradient view of the parameters [from, to] (inclusive, HF order; adjacent → one block). */
  private gview(from: string, to = from): Float32Array {
    const a = this.idx(from);
    const b = this.idx(to);
    return this.grad.subarray(this.offsets[a], this.offsets[b] + this.sizes[b]);
  }

  private tables(T: number): void {
    if (this.ropeT === T) return;
    ({ cos: this.cos, sin: this.sin } = ropeTables(this.config, T));
    this.ropeT = T;
  }

  /**
   * Mean masked next-token loss of `batch` and the gradient of every parameter, for `weights` in HF
   * order (`paramShapes`). Gradients are views into an internal buffer, valid until the next call.
   */
  lossAndGrads(weights: Float32Array[], batch: Batch): { loss: number; grads: Float32Array[] } {
    const r = this.pass(weights, batch, (logits, N, V, count) => -K!.trainXent(logits, batch.targets, batch.weights, N, V, 1 / count, this.threads) / count);
    return { loss: r.loss, grads: r.grads! };
  }

  /** Σ weight·log p(target) of every row of `batch` (forward only). */
  rowLogprobs(weights: Float32Array[], batch: Batch): Float64Array {
    const rows = new Float64Array(batch.B);
    this.pass(weights, batch, (logits, N, V) => {
      this.rowSums(logits, batch, N, V, rows);
      return null;
    });
    return rows;
  }

  /**
   * A sequence-level objective and its gradient: `objective` receives each row's Σ weight·log p(target)
   * and returns the loss and its derivative with respect to each of them (e.g. DPO). Gradients are
   * views into an internal buffer, valid until the next call.
   */
  sequenceLossAndGrads(weights: Float32Array[], batch: Batch, objective: (rowLogps: Float64Array) => { loss: number; dRow: Float64Array }): { loss: number; grads: Float32Array[] } {
    const r = this.pass(weights, batch, (logits, N, V) => {
      const rows = new Float64Array(batch.B);
      // logits → weight·(softmax − onehot) = −d(row logp)/dlogits per token
      this.rowSums(logits, batch, N, V, rows);
      const { loss, dRow } = objective(rows);
      if (dRow.length !== batch.B) throw new Error(`native trainer: the objective returned ${dRow.length} row derivatives, expected ${batch.B}`);
      const T = batch.T;
      for (let n = 0; n < N; n++) {
        const f = -dRow[Math.floor(n / T)];
        if (f === 1) continue;
        const row = logits.subarray(n * V, (n + 1) * V);
        for (let j = 0; j < V; j++) row[j] *= f;
      }
      return loss;
    });
    return { loss: r.loss, grads: r.grads! };
  }

  /** Cross-entropy head at scale 1 (logits → −d logp/dlogits) with each row's Σ weight·logp into `rows`. */
  private rowSums(logits: Float32Array, batch: Batch, N: number, V: number, rows: Float64Array): void {
    const lp = new Float64Array(N);
    K!.trainXent(logits, batch.targets, batch.weights, N, V, 1, this.threads, lp);
    for (let n = 0; n < N; n++) rows[Math.floor(n / batch.T)] += lp[n];
  }

  /**
   * Forward pass to the logits, then `head` turns them in place into dloss/dlogits and returns the
   * loss (or null: forward only), then the backward pass into the gradient buffer.
   */
  private pass(weights: Float32Array[], batch: Batch, head: (logits: Float32Array, N: number, V: number, count: number) => number | null): { loss: number; grads: Float32Array[] | null } {
    const k = K!;
    const cfg = this.config;
    const th = this.threads;
    if (weights.length !== this.names.length) throw new Error(`native trainer: got ${weights.length} weight arrays, expected ${this.names.length}`);
    weights.forEach((w, i) => {
      if (w.length !== this.sizes[i]) throw new Error(`native trainer: tensor ${this.names[i]} has ${w.length} values, expected ${this.sizes[i]}`);
    });
    const { B, T } = batch;
    const N = B * T;
    const D = cfg.hidden_size;
    const I = cfg.intermediate_size;
    const H = cfg.num_attention_heads;
    const KVh = cfg.num_key_value_heads;
    const d = cfg.head_dim;
    const V = cfg.vocab_size;
    const L = cfg.num_hidden_layers;
    const Hd = H * d;
    const W = (H + 2 * KVh) * d;
    const eps = cfg.rms_norm_eps;
    const ids = batch.inputs;
    if (ids.length !== N || batch.targets.length !== N || batch.weights.length !== N) throw new Error(`native trainer: batch arrays do not have B·T = ${N} entries`);
    for (let n = 0; n < N; n++) if (!(ids[n] >= 0 && ids[n] < V)) throw new Error(`native trainer: token id ${ids[n]} outside the vocabulary [0, ${V})`);
    let count = 0;
    for (let n = 0; n < N; n++) count += batch.weights[n];
    if (count === 0) throw new Error('training batch has no target tokens (all masked)');
    this.tables(T);
    const w = (name: string) => weights[this.idx(name)];
    const A = this.arena;

    // ---------------- forward
    const embed = w('model.embed_tokens.weight');
    const layers: LayerBufs[] = [];
    let x = A.get('x0', N * D);
    for (let n = 0; n < N; n++) x.set(embed.subarray(ids[n] * D, (ids[n] + 1) * D), n * D);
    for (let l = 0; l < L; l++) {
      const p = `model.layers.${l}.`;
      const { qkv: wqkv, gateUp: wgu } = fusedLayerWeights(w, l, { qkv: A.get(`wqkv${l}`, W * D), gateUp: A.get(`wgu${l}`, 2 * I * D) });
      const b: LayerBufs = {
        xin: x,
        r1: A.get(`r1_${l}`, N),
        h1: A.get(`h1_${l}`, N * D),
        qkv: A.get(`qkv${l}`, N * W),
        stats: A.get(`st${l}`, B * H * T * 2),
        y: A.get(`y${l}`, N * Hd),
        xmid: A.get(`xmid${l}`, N * D),
        r2: A.get(`r2_${l}`, N),
        h2: A.get(`h2_${l}`, N * D),
        gu: A.get(`gu${l}`, N * 2 * I),
        act: A.get(`act${l}`, N * I),
      };
      k.trainRmsFwd(b.h1, b.r1, x, w(p + 'input_layernorm.weight'), N, D, eps, th);
      k.trainGemm(b.qkv, b.h1, wqkv, N, D, W, 0, 1, 0, th);
      k.trainRope(b.qkv, N, W, H + KVh, d, this.cos, this.sin, T, 1, th);
      k.trainAttnFwd2(b.y, b.stats, b.qkv, B, T, H, KVh, d, th);
      b.xmid.set(x);
      k.trainGemm(b.xmid, b.y, w(p + 'self_attn.o_proj.weight'), N, Hd, D, 0, 1, 1, th);
      k.trainRmsFwd(b.h2, b.r2, b.xmid, w(p + 'post_attention_layernorm.weight'), N, D, eps, th);
      k.trainGemm(b.gu, b.h2, wgu, N, D, 2 * I, 0, 1, 0, th);
      k.trainSwigluFwd(b.act, b.gu, N, I, th);
      const xn = A.get(`x${l + 1}`, N * D);
      xn.set(b.xmid);
      k.trainGemm(xn, b.act, w(p + 'mlp.down_proj.weight'), N, I, D, 0, 1, 1, th);
      layers.push(b);
      x = xn;
    }
    const rf = A.get('rf', N);
    const hf = A.get('hf', N * D);
    const normW = w('model.norm.weight');
    k.trainRmsFwd(hf, rf, x, normW, N, D, eps, th);
    const lmName = cfg.tie_word_embeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
    const lm = w(lmName);
    const logits = A.get('logits', N * V);
    k.trainGemm(logits, hf, lm, N, D, V, 0, 1, 0, th);
    const loss = head(logits, N, V, count);
    if (loss === null) return { loss: NaN, grads: null };

    // ---------------- backward (logits now hold dloss/dlogits)
    const G = this.grad;
    G.fill(0);
    k.trainGemm(this.gview(lmName), logits, hf, V, N, D, 1, 0, 1, th);
    const dh = A.get('dh', N * D);
    k.trainGemm(dh, logits, lm, N, V, D, 0, 0, 0, th);
    const dx = A.get('dx', N * D);
    dx.fill(0);
    k.trainRmsBwd(dx, this.gview('model.norm.weight'), dh, x, rf, normW, N, D);
    const dact = A.get('dact', N * I);
    const dgu = A.get('dgu', N * 2 * I);
    const dy = A.get('dy', N * Hd);
    const dqkv = A.get('dqkv', N * W);
    for (let l = L - 1; l >= 0; l--) {
      const p = `model.layers.${l}.`;
      const b = layers[l];
      // x_{l+1} = xmid + act · Wdownᵀ
      k.trainGemm(this.gview(p + 'mlp.down_proj.weight'), dx, b.act, D, N, I, 1, 0, 1, th);
      k.trainGemm(dact, dx, w(p + 'mlp.down_proj.weight'), N, D, I, 0, 0, 0, th);
      k.trainSwigluBwd(dgu, dact, b.gu, N, I, th);
      k.trainGemm(this.gview(p + 'mlp.gate_proj.weight', p + 'mlp.up_proj.weight'), dgu, b.h2, 2 * I, N, D, 1, 0, 1, th);
      k.trainGemm(dh, dgu, A.get(`wgu${l}`, 2 * I * D), N, 2 * I, D, 0, 0, 0, th);
      k.trainRmsBwd(dx, this.gview(p + 'post_attention_layernorm.weight'), dh, b.xmid, b.r2, w(p + 'post_attention_layernorm.weight'), N, D);
      // xmid = xin + y · Woᵀ
      k.trainGemm(this.gview(p + 'self_attn.o_proj.weight'), dx, b.y, D, N, Hd, 1, 0, 1, th);
      k.trainGemm(dy, dx, w(p + 'self_attn.o_proj.weight'), N, D, Hd, 0, 0, 0, th);
      k.trainAttnBwd2(dqkv, dy, b.stats, b.qkv, B, T, H, KVh, d, th);
      k.trainRope(dqkv, N, W, H + KVh, d, this.cos, this.sin, T, -1, th);
      k.trainGemm(this.gview(p + 'self_attn.q_proj.weight', p + 'self_attn.v_proj.weight'), dqkv, b.h1, W, N, D, 1, 0, 1, th);
      k.trainGemm(dh, dqkv, A.get(`wqkv${l}`, W * D), N, W, D, 0, 0, 0, th);
      k.trainRmsBwd(dx, this.gview(p + 'input_layernorm.weight'), dh, b.xin, b.r1, w(p + 'input_layernorm.weight'), N, D);
    }
    const gE = this.gview('model.embed_tokens.weight');
    for (let n = 0; n < N; n++) {
      const o = ids[n] * D;
      const s = n * D;
      for (let i = 0; i < D; i++) gE[o + i] += dx[s + i];
    }
    const grads = this.names.map((_, i) => G.subarray(this.offsets[i], this.offsets[i] + this.sizes[i]));
    return { loss, grads };
  }
}
