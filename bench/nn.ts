/**
 * Speed of the tiny-Llama engine (src/nn) on tfjs + wasm, single thread.
 *   npm run bench:nn [-- --quick]
 * Measures training tokens/s and generation tokens/s (batch 1 and 32; the default inference engine
 * of infer.ts and the framework engine 'tfjs' as its baseline, 16-token prompts) for a ~0.5M and a ~3M
 * model, plus — in the same process, as the baseline — the 0.47M GPT of
 * shared/anchors/torch_gpt_step.py written the straightforward tfjs way (tf.matMul with its own
 * gradients, tf.train.adam). PyTorch runs that GPT at ~8k tok/s on this machine (anchor, not
 * re-measured here). Training rows also compare the native engine (src/nn/train-native.ts, 1 and 2
 * threads) with the tfjs trainer on the small shape and the tiny-world shape (D=96, 3 layers, 4 heads,
 * MLP 256, B=32, T=256). The final line is JSON.
 */
import * as tf from '@tensorflow/tfjs';
import * as O from '../src/nn/ops.ts';
import { Llama, makeConfig, numParams } from '../src/nn/model.ts';
import type { LlamaConfig } from '../src/nn/model.ts';
import { makeBatch } from '../src/nn/data.ts';
import { AdamW, lossAndGrads } from '../src/nn/train.ts';
import { NativeTrainer, nativeTrainingAvailable } from '../src/nn/train-native.ts';
import { generateIds } from '../src/nn/generate.ts';
import { Tokenizer } from '../src/nn/tokenizer.ts';

const quick = process.argv.includes('--quick');
const STEPS = quick ? 2 : 5;
const PYTORCH_ANCHOR_TOK_S = 8000;

/** Fastest of n timed calls (s) after `warm` untimed ones — the least disturbed by other load. */
function timeIt(warm: number, n: number, f: () => void): number {
  for (let i = 0; i < warm; i++) f();
  let best = Infinity;
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    f();
    best = Math.min(best, performance.now() - t);
  }
  return best / 1000;
}

/** The anchor GPT (V=256, D=128, L=2, H=4, T=64, B=16) in straightforward tfjs: one training step. */
function baselineStep(): { tokens: number; step: () => void } {
  const V = 256, D = 128, L = 2, H = 4, T = 64, B = 16, hd = D / H;
  const v = (shape: number[], std = 0.02) => tf.variable(tf.randomNormal(shape, 0, std, 'float32', 1));
  const P: Record<string, tf.Variable> = { e: v([V, D]), p: v([T, D]), h: v([D, V]), hb: tf.variable(tf.zeros([V])), lng: tf.variable(tf.ones([D])), lnb: tf.variable(tf.zeros([D])) };
  for (let l = 0; l < L; l++) {
    Object.assign(P, {
      [`qkv${l}`]: v([D, 3 * D]), [`qkvb${l}`]: tf.variable(tf.zeros([3 * D])), [`o${l}`]: v([D, D]), [`ob${l}`]: tf.variable(tf.zeros([D])),
      [`f1${l}`]: v([D, 4 * D]), [`f1b${l}`]: tf.variable(tf.zeros([4 * D])), [`f2${l}`]: v([4 * D, D]), [`f2b${l}`]: tf.variable(tf.zeros([D])),
      [`g1${l}`]: tf.variable(tf.ones([D])), [`b1${l}`]: tf.variable(tf.zeros([D])), [`g2${l}`]: tf.variable(tf.ones([D])), [`b2${l}`]: tf.variable(tf.zeros([D])),
    });
  }
  const ln = (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-5))), g), b);
  };
  const gelu = (x: tf.Tensor) => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.tanh(tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI)))));
  const mask = tf.linalg.bandPart(tf.ones([T, T]), -1, 0);
  const negMask = tf.mul(tf.sub(1, mask), -1e9);
  const xIds = tf.tensor2d(Array.from({ length: B * T }, (_, i) => (i * 37) % V), [B, T], 'int32');
  const yIds = tf.tensor1d(Array.from({ length: B * T }, (_, i) => (i * 11) % V), 'int32');
  const opt = tf.train.adam(1e-3);
  const step = () => {
    tf.tidy(() => {
      opt.minimize(() => {
        let x = tf.add(tf.reshape(tf.matMul(tf.oneHot(tf.reshape(xIds, [-1]), V).toFloat(), P.e), [B, T, D]), P.p);
        for (let l = 0; l < L; l++) {
          const qkv = tf.add(tf.matMul(tf.reshape(ln(x, P[`g1${l}`], P[`b1${l}`]), [B * T, D]), P[`qkv${l}`]), P[`qkvb${l}`]);
          const [q, k, vv] = tf.split(qkv, 3, -1).map((t) => tf.transpose(tf.reshape(t, [B, T, H, hd]), [0, 2, 1, 3]));
          const a = tf.softmax(tf.add(tf.div(tf.matMul(q, k, false, true), Math.sqrt(hd)), negMask));
          const y = tf.reshape(tf.transpose(tf.matMul(a, vv), [0, 2, 1, 3]), [B * T, D]);
          x = tf.add(x, tf.reshape(tf.add(tf.matMul(y, P[`o${l}`]), P[`ob${l}`]), [B, T, D]));
          const f = tf.add(tf.matMul(gelu(tf.add(tf.matMul(tf.reshape(ln(x, P[`g2${l}`], P[`b2${l}`]), [B * T, D]), P[`f1${l}`]), P[`f1b${l}`])), P[`f2${l}`]), P[`f2b${l}`]);
          x = tf.add(x, tf.reshape(f, [B, T, D]));
        }
        const logits = tf.add(tf.matMul(tf.reshape(ln(x, P.lng, P.lnb), [B * T, D]), P.h), P.hb);
        return tf.losses.softmaxCrossEntropy(tf.oneHot(yIds, V), logits) as tf.Scalar;
      });
    });
    tf.tidy(() => tf.sum(P.e).dataSync());
  };
  return { tokens: B * T, step };
}

/** One AdamW training step of the Llama: tfjs gradients (the baseline) or the native engine (train-native.ts) with `threads`. */
function llamaStep(cfg: LlamaConfig, B: number, T: number, threads = 0): { tokens: number; step: () => void } {
  const m = Llama.init(cfg, 0);
  const ex = Array.from({ length: B }, (_, b) => ({ ids: Array.from({ length: T + 1 }, (_, i) => 3 + ((b * 31 + i * 7) % 250)), mask: Array(T + 1).fill(1) }));
  const batch = makeBatch(ex, 0, T);
  const opt = new AdamW(m, { weightDecay: 0.1 });
  if (threads > 0) {
    const nt = new NativeTrainer(cfg, { threads });
    return { tokens: B * T, step: () => opt.step(nt.lossAndGrads(opt.weights, batch).grads, 1e-3, 1) };
  }
  return { tokens: B * T, step: () => opt.step(lossAndGrads(m, batch).grads, 1e-3, 1) };
}

/** Tokens/s of several training steps, measured interleaved (so load changes hit all alike). */
function interleaved(runs: Array<{ tokens: number; step: () => void }>, steps = STEPS): number[] {
  for (const r of runs) r.step();
  const best = runs.map(() => Infinity);
  for (let i = 0; i < steps; i++) {
    runs.forEach((r, k) => {
      const t = performance.now();
      r.step();
      best[k] = Math.min(best[k], performance.now() - t);
    });
  }
  return runs.map((r, k) => (r.tokens * 1000) / best[k]);
}

/** Generated tokens per wall second (best run) and per CPU-second of this process (best run). */
function genTokPerSec(cfg: LlamaConfig, B: number, newTokens: number, engine: 'infer' | 'tfjs'): { wall: number; cpu: number } {
  const m = Llama.init(cfg, 1);
  const tok = new Tokenizer();
  const prompts = Array.from({ length: B }, (_, b) => [1, ...Array.from({ length: 16 }, (_, i) => 3 + ((b * 13 + i * 5) % 250))]);
  // counts the tokens actually generated (a random model rarely emits eos)
  let generated = 0;
  const run = () => {
    const g = generateIds(m, tok, prompts, { maxTokens: newTokens, engine });
    for (const r of g) generated += r.ids.length;
  };
  let n = 0;
  let bestCpu = Infinity;
  const s = timeIt(1, quick ? 1 : 3, () => {
    generated = 0;
    const c0 = process.cpuUsage();
    run();
    const c = process.cpuUsage(c0);
    bestCpu = Math.min(bestCpu, (c.user + c.system) / 1e6);
    n = generated;
  });
  m.dispose();
  return { wall: n / s, cpu: n / bestCpu };
}

await O.initBackend();
const tok = new Tokenizer();
const small = makeConfig({ vocab_size: tok.vocabSize, hidden_size: 128, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 352, max_position_embeddings: 512 });
const big = makeConfig({ vocab_size: tok.vocabSize, hidden_size: 256, num_hidden_layers: 4, num_attention_heads: 8, num_key_value_heads: 4, intermediate_size: 688, max_position_embeddings: 512 });
const r: Record<string, number> = {};
[r.baseline_tfjs_gpt_train_tok_s, r.small_train_tok_s] = interleaved([baselineStep(), llamaStep(small, 16, 64)]);
[r.big_train_tok_s] = interleaved([llamaStep(big, 16, 128)]);
console.log(`baseline (anchor GPT, plain tfjs): ${r.baseline_tfjs_gpt_train_tok_s.toFixed(0)} tok/s`);
if (nativeTrainingAvailable()) {
  // the native training engine against the tfjs trainer (same shape, same process, interleaved)
  const world = makeConfig({ vocab_size: tok.vocabSize, hidden_size: 96, num_hidden_layers: 3, num_attention_heads: 4, intermediate_size: 256, max_position_embeddings: 512 });
  const shapes = [['small', small, 16, 64, STEPS], ['world', world, 32, 256, quick ? 1 : 2]] as const;
  for (const [name, cfg, B, T, n] of shapes) {
    const [base, t1, t2] = interleaved([llamaStep(cfg, B, T), llamaStep(cfg, B, T, 1), llamaStep(cfg, B, T, 2)], n);
    r[`${name}_train_tfjs_tok_s`] = base;
    r[`${name}_train_native_t1_tok_s`] = t1;
    r[`${name}_train_native_t2_tok_s`] = t2;
    r[`${name}_train_native_vs_tfjs`] = Math.max(t1, t2) / base;
    console.log(`${name} train B=${B} T=${T}: native ${t1.toFixed(0)} tok/s (1 thread), ${t2.toFixed(0)} (2 threads); tfjs ${base.toFixed(0)}; ×${r[`${name}_train_native_vs_tfjs`].toFixed(1)}`);
  }
  r.small_native_vs_pytorch_anchor = Math.max(r.small_train_native_t1_tok_s, r.small_train_native_t2_tok_s) / PYTORCH_ANCHOR_TOK_S;
}
for (const [name, cfg, T] of [['small', small, 64], ['big', big, 128]] as const) {
  r[`${name}_params`] = numParams(cfg);
  console.log(`${name} (${r[`${name}_params`]} params) train B=16 T=${T}: ${r[`${name}_train_tok_s`].toFixed(0)} tok/s`);
  for (const B of [1, 32]) {
    // the default engine (infer.ts) and, as the baseline, the framework engine (tfjs)
    const fast = genTokPerSec(cfg, B, quick ? 8 : 32, 'infer');
    const base = genTokPerSec(cfg, B, quick ? 8 : 32, 'tfjs');
    r[`${name}_gen_b${B}_tok_s`] = fast.wall;
    r[`${name}_gen_b${B}_tfjs_tok_s`] = base.wall;
    r[`${name}_gen_b${B}_vs_tfjs`] = fast.wall / base.wall;
    r[`${name}_gen_b${B}_tok_per_cpu_s`] = fast.cpu;
    r[`${name}_gen_b${B}_tfjs_tok_per_cpu_s`] = base.cpu;
    r[`${name}_gen_b${B}_vs_tfjs_cpu`] = fast.cpu / base.cpu;
    console.log(`${name} generate batch ${B}: ${fast.wall.toFixed(0)} tok/s, ${fast.cpu.toFixed(0)} per CPU-s (tfjs engine ${base.wall.toFixed(0)}, ${base.cpu.toFixed(0)} per CPU-s; ×${(fast.wall / base.wall).toFixed(1)} wall, ×${(fast.cpu / base.cpu).toFixed(1)} CPU)`);
  }
}
r.small_vs_baseline = r.small_train_tok_s / r.baseline_tfjs_gpt_train_tok_s;
r.small_vs_pytorch_anchor = r.small_train_tok_s / PYTORCH_ANCHOR_TOK_S;
console.log(JSON.stringify(Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Math.round(v * 1000) / 1000]))));
