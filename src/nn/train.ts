/**
 * Training: AdamW (decoupled weight decay, not on 1-D norm weights), warmup + cosine schedule to a
 * floor, global-norm clipping, masked token loss, deterministic data order, save + exact resume.
 *
 * The optimizer runs in plain JS on f32 master copies of the weights (one read of the gradients and
 * one upload of the weights per step), which keeps its state easy to save and bit-reproducible.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as O from './ops.ts';
import { Llama } from './model.ts';
import { batchLogprobs, makeBatch } from './data.ts';
import type { Batch, Example } from './data.ts';
import { loadExtraTensors, loadModel, saveModel } from './checkpoint.ts';
import type { Tokenizer } from './tokenizer.ts';
import type { FloatDType } from '../tensor/dtype.ts';
import { Rng } from './rng.ts';
import { NativeTrainer, nativeAdamW, nativeTrainingAvailable, preferNativeTraining } from './train-native.ts';
import { formatSeconds, stderrStatus } from '../io/status.ts';

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /**
   * Which parameters are updated (default all). The others are frozen: never updated, no weight
   * decay, and left out of the global gradient norm used for clipping.
   */
  trainable?: (name: string) => boolean;
}

export class AdamW {
  readonly names: string[];
  readonly weights: Float32Array[];
  readonly m: Float32Array[];
  readonly v: Float32Array[];
  readonly decay: boolean[];
  readonly frozen: boolean[];
  t = 0;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;

  constructor(private readonly model: Llama, opts: AdamWOptions = {}) {
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.95;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    this.names = [...model.params.keys()];
    const w = model.getWeights();
    this.weights = this.names.map((n) => w.get(n)!);
    this.m = this.weights.map((a) => new Float32Array(a.length));
    this.v = this.weights.map((a) => new Float32Array(a.length));
    this.decay = this.names.map((n) => model.params.get(n)!.rank >= 2);
    const trainable = opts.trainable;
    this.frozen = this.names.map((n) => trainable !== undefined && !trainable(n));
    if (this.frozen.every((f) => f)) throw new Error('AdamW: the trainable filter matches no parameter');
  }

  /** Clip `grads` to global norm `clip` (0 = off), take one step at `lr`, upload. Returns the pre-clip norm. */
  step(grads: Float32Array[], lr: number, clip: number): number {
    let sq = 0;
    for (let p = 0; p < grads.length; p++) {
      if (this.frozen[p]) continue;
      const g = grads[p];
      for (let i = 0; i < g.length; i++) sq += g[i] * g[i];
    }
    const norm = Math.sqrt(sq);
    const scale = clip > 0 && norm > clip ? clip / (norm + 1e-6) : 1;
    this.t++;
    const b1 = this.beta1;
    const b2 = this.beta2;
    const bc1 = 1 - Math.pow(b1, this.t);
    const bc2 = 1 - Math.pow(b2, this.t);
    const stepSize = lr / bc1;
    const eps = this.eps;
    for (let p = 0; p < grads.length; p++) {
      if (this.frozen[p]) continue;
      const g = grads[p];
      const w = this.weights[p];
      const m = this.m[p];
      const v = this.v[p];
      const wd = this.decay[p] ? 1 - lr * this.weightDecay : 1;
      // the native kernel does exactly this loop (bit-identical), ~4× faster
      if (!nativeAdamW(w, g, m, v, scale, b1, b2, bc2, stepSize, eps, wd)) for (let i = 0; i < w.length; i++) {
        const gi = g[i] * scale;
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        w[i] = w[i] * wd - (stepSize * m[i]) / (Math.sqrt(v[i] / bc2) + eps);
      }
      O.assign(this.model.params.get(this.names[p])!, w);
    }
    this.model.invalidate();
    return norm;
  }

  /** Optimizer moments as named flat arrays (for saving). */
  stateTensors(): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    this.names.forEach((n, i) => {
      out.set(`exp_avg.${n}`, this.m[i]);
      out.set(`exp_avg_sq.${n}`, this.v[i]);
    });
    return out;
  }

  loadState(t: number, tensors: Map<string, Float32Array>): void {
    this.t = t;
    this.names.forEach((n, i) => {
      const m = tensors.get(`exp_avg.${n}`);
      const v = tensors.get(`exp_avg_sq.${n}`);
      if (!m || !v || m.length !== this.m[i].length || v.length !== this.v[i].length) throw new Error(`optimizer state: missing or wrong-size moments for ${n}`);
      this.m[i].set(m);
      this.v[i].set(v);
    });
    // weights may have been reloaded from disk in a lower precision: re-sync master copies
    const w = this.model.getWeights();
    this.names.forEach((n, i) => this.weights[i].set(w.get(n)!));
  }
}

/** Learning rate at step `it` (0-based): linear warmup, then cosine from lr to lr·minLrFrac. */
export function lrAt(it: number, lr: number, steps: number, warmup: number, minLrFrac: number): number {
  if (it < warmup) return (lr * (it + 1)) / warmup;
  const pr = Math.min(1, (it - warmup) / Math.max(1, steps - warmup));
  return lr * (minLrFrac + (1 - minLrFrac) * 0.5 * (1 + Math.cos(Math.PI * pr)));
}

/** Mean masked next-token loss of a batch and the gradients of every parameter (HF order). */
export function lossAndGrads(model: Llama, batch: Batch): { loss: number; grads: Float32Array[] } {
  const vars = [...model.params.values()];
  let count = 0;
  for (const w of batch.weights) count += w;
  if (count === 0) throw new Error('training batch has no target tokens (all masked)');
  const { value, grads } = O.valueAndGrads(() => {
    const ids = O.intTensor(batch.inputs, [batch.B, batch.T]);
    const { logits } = model.forward(ids);
    return O.mulScalar(O.sum(batchLogprobs(logits, batch)), -1 / count);
  }, vars);
  const loss = O.read(value)[0];
  const out = grads.map((g) => O.read(g));
  O.dispose([value, ...grads]);
  return { loss, grads: out };
}

/** Mean masked next-token loss without gradients. */
export function evalLoss(model: Llama, batch: Batch): number {
  let count = 0;
  for (const w of batch.weights) count += w;
  const t = O.tidy(() => {
    const { logits } = model.forward(O.intTensor(batch.inputs, [batch.B, batch.T]));
    return O.sum(batchLogprobs(logits, batch));
  });
  const v = O.read(t)[0];
  t.dispose();
  return -v / Math.max(1, count);
}

export interface TrainOptions {
  steps: number;
  lr: number;
  batchSize: number;
  seqLen: number;
  warmup?: number;
  minLrFrac?: number;
  weightDecay?: number;
  clip?: number;
  beta1?: number;
  beta2?: number;
  /** Seed of the data order. */
  seed?: number;
  /** Folder to save the final model (and periodic checkpoints) to. */
  outDir?: string;
  /** Save a resumable checkpoint every N steps into outDir (0 = only at the end). */
  saveEvery?: number;
  /** Resume from outDir if it holds a trainer_state.json. */
  resume?: boolean;
  /** Stop after this many steps of this call (for tests of resume), keeping the schedule of `steps`. */
  stopAfter?: number;
  /** Weight dtype of saved checkpoints (default F32; exact resume needs F32). */
  dtype?: FloatDType;
  /** Called after every step. */
  onStep?: (info: StepInfo) => void;
  /** Progress line on stderr when it is a TTY (default true). */
  progress?: boolean;
  /**
   * Gradient engine: 'native' (train-native.ts, framework-free AVX2 kernels; the default when the
   * addon is built and AVX2+FMA is available) or 'tfjs' (the fallback). Same loss, gradients equal up
   * to float32 rounding.
   */
  engine?: 'native' | 'tfjs';
  /** Threads of the native engine (default: `setThreads` of src/tensor/kernels.ts; results do not depend on it). */
  threads?: number;
  /** Which parameters are updated (default all); see AdamWOptions.trainable. */
  trainable?: (name: string) => boolean;
}

export interface StepInfo {
  step: number;
  steps: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokens: number;
  tokPerSec: number;
}

export const TRAINER_STATE = 'trainer_state.json';
export const OPTIMIZER_FILE = 'optimizer.safetensors';

/** Examples for step `it`: epoch-wise shuffles seeded by (seed, epoch), consumed in order. */
export function batchAt(examples: Example[], it: number, batchSize: number, seed: number): Example[] {
  const out: Example[] = [];
  const n = examples.length;
  let cachedEpoch = -1;
  let order: number[] = [];
  for (let j = 0; j < batchSize; j++) {
    const k = it * batchSize + j;
    const epoch = Math.floor(k / n);
    if (epoch !== cachedEpoch) {
      order = new Rng(seed * 1_000_003 + epoch).shuffle([...Array(n).keys()]);
      cachedEpoch = epoch;
    }
    out.push(examples[order[k % n]]);
  }
  return out;
}

/** Examples for a step, as a function of the step number (must be deterministic for exact resume). */
export type BatchSource = (step: number, batchSize: number) => Example[];

/**
 * Train `model` in place on `examples` (a fixed list, shuffled per epoch with `seed`, or a
 * BatchSource giving each step's examples). Returns the final smoothed loss. With outDir, the model is
 * saved there at the end (and every saveEvery steps, with optimizer state for exact resume).
 */
export function train(model: Llama, tokenizer: Tokenizer | null, examples: Example[] | BatchSource, o: TrainOptions): { loss: number; steps: number; tokens: number; seconds: number; truncated: number } {
  if (Array.isArray(examples) && examples.length === 0) throw new Error('train: no examples');
  if (!(Number.isInteger(o.batchSize) && o.batchSize >= 1)) throw new Error(`train: batchSize must be a positive integer, got ${o.batchSize}`);
  if (!(Number.isInteger(o.seqLen) && o.seqLen >= 1)) throw new Error(`train: seqLen must be a positive integer, got ${o.seqLen}`);
  if (!(Number.isInteger(o.steps) && o.steps >= 0)) throw new Error(`train: steps must be a non-negative integer, got ${o.steps}`);
  if (!(o.lr >= 0)) throw new Error(`train: lr must be >= 0, got ${o.lr}`);
  let truncated = Array.isArray(examples) ? examples.filter((e) => e.ids.length > o.seqLen + 1).length : 0;
  const seed = o.seed ?? 0;
  const warmup = o.warmup ?? Math.min(20, Math.floor(o.steps / 10));
  const minLrFrac = o.minLrFrac ?? 0.1;
  const clip = o.clip ?? 1;
  const opt = new AdamW(model, { beta1: o.beta1, beta2: o.beta2, weightDecay: o.weightDecay ?? 0, trainable: o.trainable });
  const engine = o.engine ?? (preferNativeTraining(model.config) ? 'native' : 'tfjs');
  if (engine === 'native' && !nativeTrainingAvailable()) throw new Error("train: engine 'native' needs the native addon (npm install builds it); use engine 'tfjs'");
  const nt = engine === 'native' ? new NativeTrainer(model.config, { threads: o.threads }) : null;
  let start = 0;
  if (o.resume && o.outDir && existsSync(join(o.outDir, TRAINER_STATE))) {
    const st = JSON.parse(readFileSync(join(o.outDir, TRAINER_STATE), 'utf8'));
    if (st.steps !== o.steps || st.batch_size !== o.batchSize || st.seed !== seed) {
      throw new Error(`${join(o.outDir, TRAINER_STATE)}: run was started with steps=${st.steps} batch_size=${st.batch_size} seed=${st.seed}; resume needs the same values`);
    }
    const { model: saved } = loadModel(o.outDir);
    model.setWeights(saved.getWeights());
    saved.dispose();
    opt.loadState(st.optimizer_step, loadExtraTensors(o.outDir, OPTIMIZER_FILE));
    start = st.step;
  }
  const save = (step: number) => {
    if (!o.outDir) return;
    saveModel(o.outDir, model, tokenizer, {
      dtype: o.dtype,
      extraJson: { [TRAINER_STATE]: { step, steps: o.steps, batch_size: o.batchSize, seed, optimizer_step: opt.t, lr: o.lr } },
      extraTensors: { [OPTIMIZER_FILE]: opt.stateTensors() },
    });
  };
  // progress: redrawn on a terminal, else a line at the start and end and a heartbeat every 15 s
  const status = (o.progress ?? true) ? stderrStatus() : null;
  const end = o.stopAfter !== undefined ? Math.min(o.steps, start + o.stopAfter) : o.steps;
  status?.phase(`train: steps ${start + 1}-${end} of ${o.steps}`);
  const t0 = performance.now();
  let tokens = 0;
  let smooth = NaN;
  for (let it = start; it < end; it++) {
    let exs: Example[];
    if (Array.isArray(examples)) exs = batchAt(examples, it, o.batchSize, seed);
    else {
      exs = examples(it, o.batchSize);
      if (exs.length === 0) throw new Error(`train: the batch source returned no examples for step ${it}`);
      truncated += exs.filter((e) => e.ids.length > o.seqLen + 1).length;
    }
    const batch = makeBatch(exs, model.config.pad_token_id, o.seqLen);
    const lr = lrAt(it, o.lr, o.steps, warmup, minLrFrac);
    // the native engine reads the optimizer's f32 master copies (identical to the model's weights)
    const { loss, grads } = nt ? nt.lossAndGrads(opt.weights, batch) : lossAndGrads(model, batch);
    if (!Number.isFinite(loss)) throw new Error(`train: loss is ${loss} at step ${it + 1}`);
    const gradNorm = opt.step(grads, lr, clip);
    tokens += batch.B * batch.T;
    smooth = Number.isNaN(smooth) ? loss : 0.9 * smooth + 0.1 * loss;
    const secs = (performance.now() - t0) / 1000;
    const info: StepInfo = { step: it + 1, steps: o.steps, loss, lr, gradNorm, tokens, tokPerSec: tokens / secs };
    o.onStep?.(info);
    if (status) {
      const eta = ((o.steps - it - 1) * secs) / (it + 1 - start);
      status.update(`step ${it + 1}/${o.steps} loss ${smooth.toFixed(4)} lr ${lr.toExponential(2)} ${Math.round(info.tokPerSec)} tok/s ETA ${formatSeconds(eta)}`);
    }
    if (o.saveEvery && (it + 1) % o.saveEvery === 0 && it + 1 < end) save(it + 1);
  }
  status?.line(`train: step ${end}/${o.steps} loss ${smooth.toFixed(4)}, ${formatSeconds((performance.now() - t0) / 1000)}`);
  save(end);
  return { loss: smooth, steps: end - start, tokens, seconds: (performance.now() - t0) / 1000, truncated };
}

