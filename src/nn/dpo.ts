/**
 * Direct Preference Optimization of a policy against a frozen reference whose completion log-probs
 * are computed once before training (or taken from the data). Loss per pair, with
 * ρ(y) = log π_θ(y|x) − log π_ref(y|x) summed over completion tokens (+ eos):
 *   sigmoid: −log σ(β·(ρ⁺ − ρ⁻))             ipo: (ρ̄⁺ − ρ̄⁻ − 1/(2β))², ρ̄ = ρ / tokens
 * plus optionally α · (−log π_θ(y⁺|x) / |y⁺|) (length-normalised NLL of the chosen completion).
 */
import * as O from './ops.ts';
import type { Llama, LlamaConfig } from './model.ts';
import type { Tokenizer } from './tokenizer.ts';
import { batchLogprobs, encodePair, makeBatch, readJsonl, rowCounts } from './data.ts';
import type { Example } from './data.ts';
import { exampleLogprobs } from './generate.ts';
import { AdamW, lrAt } from './train.ts';
import { Rng } from './rng.ts';
import { saveModel } from './checkpoint.ts';
import { NativeTrainer, nativeTrainingAvailable, preferNativeTraining } from './train-native.ts';
import { formatSeconds, plural, stderrStatus } from '../io/status.ts';

export interface PreferencePair {
  prompt: string;
  chosen: string;
  rejected: string;
  ref_chosen_logps?: number;
  ref_rejected_logps?: number;
}

export interface DpoOptions {
  steps: number;
  lr: number;
  /** Pairs per step. */
  batchSize: number;
  beta?: number;
  lossType?: 'sigmoid' | 'ipo';
  /** Weight of the length-normalised NLL on chosen (0 = off). */
  nllAlpha?: number;
  warmup?: number;
  minLrFrac?: number;
  weightDecay?: number;
  clip?: number;
  seed?: number;
  /** Max tokens per sequence (prompt + completion; the end is cut). */
  maxLen?: number;
  /** Keep only the last N tokens of each prompt (as a short-context model sees it); default: all. */
  maxPromptLen?: number;
  outDir?: string;
  /**
   * Gradient engine, as in `train`: 'native' (train-native.ts; the default when the addon has
   * AVX2+FMA) or 'tfjs'. Both compute the same loss and gradients up to float32 rounding.
   */
  engine?: 'native' | 'tfjs';
  /** Threads of the native engine (results do not depend on it). */
  threads?: number;
  onStep?: (s: DpoStepLog) => void;
  progress?: boolean;
}

export interface DpoStepLog {
  step: number;
  loss: number;
  'rewards/chosen': number;
  'rewards/rejected': number;
  'rewards/margins': number;
  'rewards/accuracies': number;
  'logps/chosen': number;
  'logps/rejected': number;
  lr: number;
  gradNorm: number;
}

/** Read TRL-style preference JSONL {prompt, chosen, rejected[, ref_chosen_logps, ref_rejected_logps]}. */
export function readPairs(path: string): PreferencePair[] {
  return readJsonl(path).map((r, i) => {
    for (const k of ['prompt', 'chosen', 'rejected']) {
      if (typeof r?.[k] !== 'string') throw new Error(`${path}: row ${i + 1}: field "${k}" must be a string (conversational format is not supported)`);
    }
    return r as PreferencePair;
  });
}

function tokenizePair(tok: Tokenizer, p: PreferencePair, maxPromptTokens?: number): [Example, Example] {
  return [encodePair(tok, p.prompt, p.chosen, { maxPromptTokens }), encodePair(tok, p.prompt, p.rejected, { maxPromptTokens })];
}

function pickEngine(engine: 'native' | 'tfjs' | undefined, config: LlamaConfig): 'native' | 'tfjs' {
  const e = engine ?? (preferNativeTraining(config) ? 'native' : 'tfjs');
  if (e === 'native' && !nativeTrainingAvailable()) throw new Error("dpo: engine 'native' needs the native addon (npm install builds it); use engine 'tfjs'");
  return e;
}

/** Sum of masked-token log-probs of each example through the native trainer's forward pass. */
function nativeLogprobs(m: Llama, examples: Example[], maxLen: number, threads?: number, batchSize = 16): number[] {
  const nt = new NativeTrainer(m.config, { threads });
  const all = m.getWeights();
  const w = nt.names.map((n) => all.get(n)!);
  const out: number[] = [];
  for (let i = 0; i < examples.length; i += batchSize) {
    const batch = makeBatch(examples.slice(i, i + batchSize), m.config.pad_token_id, maxLen);
    out.push(...nt.rowLogprobs(w, batch));
  }
  return out;
}

/** Reference log-probs of chosen and rejected for every pair (from the data when present). */
export function referenceLogps(ref: Llama, tok: Tokenizer, pairs: PreferencePair[], maxLen?: number, opts: { engine?: 'native' | 'tfjs'; threads?: number; maxPromptLen?: number } = {}): Array<[number, number]> {
  const need = pairs.map((p, i) => [p, i] as const).filter(([p]) => p.ref_chosen_logps === undefined || p.ref_rejected_logps === undefined);
  const ex: Example[] = [];
  for (const [p] of need) ex.push(...tokenizePair(tok, p, opts.maxPromptLen));
  const lp =
    pickEngine(opts.engine, ref.config) === 'native'
      ? nativeLogprobs(ref, ex, maxLen ?? ref.config.max_position_embeddings, opts.threads).map((logprob) => ({ logprob }))
      : exampleLogprobs(ref, ex, { maxLen });
  const out = pairs.map((p) => [p.ref_chosen_logps ?? NaN, p.ref_rejected_logps ?? NaN] as [number, number]);
  need.forEach(([, i], k) => (out[i] = [lp[2 * k].logprob, lp[2 * k + 1].logprob]));
  return out;
}

/**
 * The DPO loss of a batch (P chosen rows, then P rejected rows) from the rows' policy log-probs `lp`,
 * and its derivative with respect to each of them (what the native engine back-propagates).
 */
export function dpoObjective(
  lp: ArrayLike<number>, refC: Float32Array, refR: Float32Array, nC: Float32Array, nR: Float32Array,
  beta: number, lossType: 'sigmoid' | 'ipo', alpha: number,
): { loss: number; dRow: Float64Array } {
  const P = refC.length;
  const dRow = new Float64Array(2 * P);
  let loss = 0;
  for (let k = 0; k < P; k++) {
    const rc = lp[k] - refC[k];
    const rr = lp[P + k] - refR[k];
    if (lossType === 'ipo') {
      const d = rc / nC[k] - rr / nR[k] - 1 / (2 * beta);
      loss += (d * d) / P;
      dRow[k] += (2 * d) / (P * nC[k]);
      dRow[P + k] -= (2 * d) / (P * nR[k]);
    } else {
      // −log σ(z) = softplus(−z), computed stably; d/dz = −σ(−z)
      const z = beta * (rc - rr);
      loss += (Math.max(-z, 0) + Math.log1p(Math.exp(-Math.abs(z)))) / P;
      const s = 1 / (1 + Math.exp(z));
      dRow[k] -= (beta * s) / P;
      dRow[P + k] += (beta * s) / P;
    }
    if (alpha > 0) {
      loss -= (alpha * lp[k]) / (nC[k] * P);
      dRow[k] -= alpha / (nC[k] * P);
    }
  }
  return { loss, dRow };
}

/** One DPO loss-and-gradient evaluation with tfjs autograd; returns the rows' policy log-probs too. */
function tfjsLossAndGrads(
  policy: Llama, batch: ReturnType<typeof makeBatch>, refC: Float32Array, refR: Float32Array, nC: Float32Array, nR: Float32Array,
  beta: number, lossType: 'sigmoid' | 'ipo', alpha: number,
): { loss: number; lp: Float32Array; grads: Float32Array[] } {
  const P = refC.length;
  const kept: { lp: O.Tensor | null } = { lp: null };
  const { value, grads } = O.valueAndGrads(() => {
    const lp = batchLogprobs(policy.forward(O.intTensor(batch.inputs, [batch.B, batch.T])).logits, batch);
    kept.lp = O.keep(lp);
    const lpc = O.slice(lp, [0], [P]);
    const lpr = O.slice(lp, [P], [P]);
    const rc = O.sub(lpc, O.tensor(refC, [P]));
    const rr = O.sub(lpr, O.tensor(refR, [P]));
    let loss: O.Tensor;
    if (lossType === 'ipo') {
      const d = O.sub(O.div(rc, O.tensor(nC, [P])), O.div(rr, O.tensor(nR, [P])));
      loss = O.mean(O.square(O.addScalar(d, -1 / (2 * beta))));
    } else {
      loss = O.neg(O.mean(O.logSigmoid(O.mulScalar(O.sub(rc, rr), beta))));
    }
    if (alpha > 0) loss = O.add(loss, O.mulScalar(O.mean(O.div(lpc, O.tensor(nC, [P]))), -alpha));
    return loss;
  }, [...policy.params.values()]);
  const loss = O.read(value)[0];
  const lp = O.read(kept.lp!).slice();
  const g = grads.map((t) => O.read(t));
  O.dispose([value, ...grads, kept.lp!]);
  return { loss, lp, grads: g };
}

/** Train `policy` in place by DPO. `ref` defaults to the policy itself before training. */
export function dpoTrain(policy: Llama, tok: Tokenizer, pairs: PreferencePair[], o: DpoOptions, ref?: Llama): DpoStepLog[] {
  if (pairs.length === 0) throw new Error('dpo: no pairs');
  const beta = o.beta ?? 0.1;
  const lossType = o.lossType ?? 'sigmoid';
  const alpha = o.nllAlpha ?? 0;
  const seed = o.seed ?? 0;
  const maxLen = o.maxLen ?? policy.config.max_position_embeddings;
  if (!(beta > 0)) throw new Error(`dpo: beta must be > 0, got ${beta}`);
  const engine = pickEngine(o.engine, policy.config);
  const tokPairs = pairs.map((p) => tokenizePair(tok, p, o.maxPromptLen));
  tokPairs.forEach((ex, i) => {
    for (const [e, which] of [[ex[0], 'chosen'], [ex[1], 'rejected']] as const) {
      // the target of position t is token t + 1: a completion token must fall within the first maxLen + 1
      if (!e.mask.slice(1, maxLen + 1).some((m) => m > 0)) {
        throw new Error(`dpo: pair ${i + 1}: no ${which} token within maxLen ${maxLen} (the prompt alone is ${e.mask.filter((m) => m === 0).length} tokens); shorten the prompt (maxPromptLen) or raise maxLen`);
      }
    }
  });
  const refLp = referenceLogps(ref ?? policy, tok, pairs, maxLen, { engine, threads: o.threads, maxPromptLen: o.maxPromptLen });
  const opt = new AdamW(policy, { weightDecay: o.weightDecay ?? 0 });
  const nt = engine === 'native' ? new NativeTrainer(policy.config, { threads: o.threads }) : null;
  if (nt && nt.names.join() !== opt.names.join()) throw new Error('dpo: the model and the native trainer order the parameters differently');
  const warmup = o.warmup ?? Math.min(10, Math.floor(o.steps / 10));
  const logs: DpoStepLog[] = [];
  // progress: redrawn on a terminal, else a line at the start and end and a heartbeat every 15 s
  const status = (o.progress ?? true) ? stderrStatus() : null;
  status?.phase(`dpo: ${plural(o.steps, 'step')} on ${plural(pairs.length, 'pair')}`);
  const t0 = performance.now();
  let order: number[] = [];
  let cursor = 0;
  let epoch = 0;
  for (let it = 0; it < o.steps; it++) {
    const idx: number[] = [];
    while (idx.length < Math.min(o.batchSize, pairs.length)) {
      if (cursor >= order.length) {
        order = new Rng(seed * 1_000_003 + epoch++).shuffle([...pairs.keys()]);
        cursor = 0;
      }
      idx.push(order[cursor++]);
    }
    const P = idx.length;
    const batch = makeBatch([...idx.map((i) => tokPairs[i][0]), ...idx.map((i) => tokPairs[i][1])], policy.config.pad_token_id, maxLen);
    const counts = rowCounts(batch);
    const refC = Float32Array.from(idx.map((i) => refLp[i][0]));
    const refR = Float32Array.from(idx.map((i) => refLp[i][1]));
    const nC = Float32Array.from(counts.slice(0, P));
    const nR = Float32Array.from(counts.slice(P));
    let loss: number;
    let lp: ArrayLike<number>;
    let grads: Float32Array[];
    if (nt) {
      let rows = new Float64Array(0);
      // the native engine reads the optimizer's f32 master copies (identical to the model's weights)
      ({ loss, grads } = nt.sequenceLossAndGrads(opt.weights, batch, (r) => {
        rows = r.slice();
        return dpoObjective(r, refC, refR, nC, nR, beta, lossType, alpha);
      }));
      lp = rows;
    } else {
      ({ loss, lp, grads } = tfjsLossAndGrads(policy, batch, refC, refR, nC, nR, beta, lossType, alpha));
    }
    const lr = lrAt(it, o.lr, o.steps, warmup, o.minLrFrac ?? 0.1);
    const gradNorm = opt.step(grads, lr, o.clip ?? 1);
    let rcs = 0, rrs = 0, acc = 0, lc = 0, lr_ = 0;
    for (let k = 0; k < P; k++) {
      const rc = beta * (lp[k] - refC[k]);
      const rr = beta * (lp[P + k] - refR[k]);
      rcs += rc;
      rrs += rr;
      acc += rc > rr ? 1 : 0;
      lc += lp[k];
      lr_ += lp[P + k];
    }
    const log: DpoStepLog = {
      step: it + 1, loss,
      'rewards/chosen': rcs / P, 'rewards/rejected': rrs / P, 'rewards/margins': (rcs - rrs) / P, 'rewards/accuracies': acc / P,
      'logps/chosen': lc / P, 'logps/rejected': lr_ / P, lr, gradNorm,
    };
    logs.push(log);
    o.onStep?.(log);
    status?.update(`dpo step ${it + 1}/${o.steps} loss ${loss.toFixed(4)} margin ${log['rewards/margins'].toFixed(3)} acc ${log['rewards/accuracies'].toFixed(2)}`);
  }
  const last = logs[logs.length - 1];
  status?.line(`dpo: ${plural(o.steps, 'step')}, loss ${logs[0]?.loss.toFixed(4) ?? '-'} → ${last?.loss.toFixed(4) ?? '-'}, margin ${last?.['rewards/margins'].toFixed(3) ?? '-'}, ${formatSeconds((performance.now() - t0) / 1000)}`);
  if (o.outDir) saveModel(o.outDir, policy, tok);
  return logs;
}
