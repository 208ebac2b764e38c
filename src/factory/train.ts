/**
 * Training and measuring the shipped builtin code model (the "algorithm factory"): seed corpus →
 * byte-level BPE → a tiny Llama trained on `PROGRAM_HEADER + program + CODE_CLOSE` (loss on the
 * completion only) → an HF folder with a model card; and the pass rate of its samples through the
 * sandbox cascade at several temperatures.
 *
 * Deterministic: corpus, tokenizer, initial weights and batch order are functions of the recipe's
 * seeds, and sampling is seeded, so the same recipe gives the same weights and the same samples.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initBackend } from '../nn/ops.ts';
import { Llama, makeConfig, numParams } from '../nn/model.ts';
import { trainBpe } from '../nn/tokenizer.ts';
import type { Tokenizer } from '../nn/tokenizer.ts';
import { saveModel } from '../nn/checkpoint.ts';
import { encodePair } from '../nn/data.ts';
import type { Example } from '../nn/data.ts';
import { train } from '../nn/train.ts';
import type { BatchSource, StepInfo } from '../nn/train.ts';
import { Rng } from '../nn/rng.ts';
import type { FloatDType } from '../tensor/dtype.ts';
import { Sandbox, validateAlgorithm } from '../sandbox/index.ts';
import { BuiltinFactory } from './builtin.ts';
import { generateCorpus, trainingExample } from './corpus.ts';
import type { CorpusProgram, CorpusStyle } from './corpus.ts';
import { CODE_CLOSE, CODE_OPEN, PROGRAM_HEADER } from './prompt.ts';
import type { FactoryPrompt } from './types.ts';

export const FACTORY_JSON = 'factory.json';

export interface FactoryRecipe {
  /** Seed corpus; style absent = 'varied' (recipes from before the option); the default recipe uses 'canonical'. */
  corpus: { programs: number; seed: number; style?: CorpusStyle };
  /** BPE merges learned on the corpus programs (vocab = 259 + merges). */
  tokenizer: { merges: number };
  model: { hidden: number; layers: number; heads: number; kvHeads: number; intermediate: number; maxPositions: number; tied: boolean; seed: number };
  train: { steps: number; batch: number; lr: number; warmup: number; minLrFrac: number; weightDecay: number; seed: number };
  dtype: FloatDType;
}

export const DEFAULT_FACTORY_RECIPE: FactoryRecipe = {
  corpus: { programs: 8000, seed: 1, style: 'canonical' },
  tokenizer: { merges: 768 },
  model: { hidden: 128, layers: 4, heads: 4, kvHeads: 2, intermediate: 344, maxPositions: 1024, tied: true, seed: 7 },
  train: { steps: 1500, batch: 8, lr: 3e-3, warmup: 20, minLrFrac: 0.05, weightDecay: 0.01, seed: 11 },
  dtype: 'BF16',
};

export function validateFactoryRecipe(r: FactoryRecipe): void {
  const posInt = (v: unknown, f: string) => {
    if (!(Number.isInteger(v) && (v as number) > 0)) throw new Error(`factory recipe: ${f} must be a positive integer, got ${v}`);
  };
  posInt(r.corpus.programs, 'corpus.programs');
  posInt(r.tokenizer.merges, 'tokenizer.merges');
  for (const k of ['hidden', 'layers', 'heads', 'kvHeads', 'intermediate', 'maxPositions'] as const) posInt(r.model[k], `model.${k}`);
  posInt(r.train.steps, 'train.steps');
  posInt(r.train.batch, 'train.batch');
  if (!(r.train.lr > 0)) throw new Error(`factory recipe: train.lr must be > 0, got ${r.train.lr}`);
  if (!(Number.isInteger(r.train.warmup) && r.train.warmup >= 0)) throw new Error(`factory recipe: train.warmup must be a non-negative integer, got ${r.train.warmup}`);
  if (!['F32', 'BF16', 'F16'].includes(r.dtype)) throw new Error(`factory recipe: dtype must be F32, BF16 or F16, got ${r.dtype}`);
}

export interface FactoryData {
  programs: CorpusProgram[];
  tokenizer: Tokenizer;
  examples: Example[];
  /** Tokens per example (bos + header + program + close + eos), sorted ascending. */
  lengths: number[];
}

/** Corpus, tokenizer (BPE on the program texts) and tokenised examples (loss on the completion + eos). */
export function buildFactoryData(r: FactoryRecipe): FactoryData {
  const programs = generateCorpus(r.corpus.programs, r.corpus.seed, r.corpus.style ?? 'varied');
  const tokenizer = trainBpe(programs.map((p) => p.code), r.tokenizer.merges);
  const examples = programs.map((p) => {
    const t = trainingExample(p.code);
    return encodePair(tokenizer, t.prompt, t.completion, { completionOnly: true, eos: true });
  });
  return { programs, tokenizer, examples, lengths: examples.map((e) => e.ids.length).sort((a, b) => a - b) };
}

/**
 * Length-bucketed batches (little padding): per epoch, a seeded shuffle is cut into pools of 32
 * batches, each pool sorted by length and sliced into batches, and the batches of the epoch shuffled.
 * Every example appears once per epoch; the batch of a step is a pure function of (seed, step).
 */
export function bucketedSource(examples: Example[], batchSize: number, seed: number): BatchSource {
  if (examples.length === 0) throw new Error('bucketedSource: no examples');
  const perEpoch = Math.max(1, Math.floor(examples.length / batchSize));
  let cachedEpoch = -1;
  let batches: Example[][] = [];
  return (step: number, bs: number) => {
    if (bs !== batchSize) throw new Error(`bucketedSource: built for batch size ${batchSize}, asked for ${bs}`);
    const epoch = Math.floor(step / perEpoch);
    if (epoch !== cachedEpoch) {
      const rng = new Rng((seed * 1_000_003 + epoch) >>> 0);
      const order = rng.shuffle([...examples.keys()]);
      const pool = 32 * batchSize;
      batches = [];
      for (let i = 0; i + batchSize <= order.length; i += pool) {
        const chunk = order.slice(i, Math.min(order.length, i + pool)).sort((a, b) => examples[a].ids.length - examples[b].ids.length || a - b);
        for (let j = 0; j + batchSize <= chunk.length; j += batchSize) batches.push(chunk.slice(j, j + batchSize).map((k) => examples[k]));
      }
      batches = rng.shuffle(batches);
      cachedEpoch = epoch;
    }
    return batches[step % perEpoch % batches.length];
  };
}

export interface FactoryTrainResult {
  programs: number;
  distinctPrograms: number;
  vocabSize: number;
  params: number;
  steps: number;
  /** Tokens processed including padding. */
  tokens: number;
  /** Tokens of the examples seen (no padding) and loss targets among them. */
  exampleTokens: number;
  epochs: number;
  medianProgramTokens: number;
  maxProgramTokens: number;
  truncated: number;
  seconds: number;
  finalLoss: number;
  lossCurve: Array<[number, number]>;
  headerTokens: number;
}

/** Train a model from the recipe and save it (recipe dtype) as an HF folder at `dir` (written atomically by saveModel). */
export async function trainFactoryModel(r: FactoryRecipe, dir: string, onStep?: (info: StepInfo) => void): Promise<FactoryTrainResult> {
  validateFactoryRecipe(r);
  await initBackend();
  const data = buildFactoryData(r);
  const tok = data.tokenizer;
  const m = r.model;
  const cfg = makeConfig({
    vocab_size: tok.vocabSize, hidden_size: m.hidden, num_hidden_layers: m.layers, num_attention_heads: m.heads,
    num_key_value_heads: m.kvHeads, intermediate_size: m.intermediate, max_position_embeddings: m.maxPositions, tie_word_embeddings: m.tied,
  });
  const model = Llama.init(cfg, m.seed);
  const seqLen = m.maxPositions - 1;
  const source = bucketedSource(data.examples, r.train.batch, r.train.seed);
  let exampleTokens = 0;
  let smooth = NaN;
  const every = Math.max(1, Math.floor(r.train.steps / 25));
  const lossCurve: Array<[number, number]> = [];
  const counted: BatchSource = (step, bs) => {
    const b = source(step, bs);
    for (const e of b) exampleTokens += Math.min(e.ids.length, seqLen + 1);
    return b;
  };
  try {
    const tr = train(model, tok, counted, {
      steps: r.train.steps, lr: r.train.lr, batchSize: r.train.batch, seqLen, warmup: r.train.warmup, minLrFrac: r.train.minLrFrac,
      weightDecay: r.train.weightDecay, clip: 1, seed: r.train.seed, progress: false,
      onStep: (info) => {
        smooth = Number.isNaN(smooth) ? info.loss : 0.9 * smooth + 0.1 * info.loss;
        if (info.step % every === 0 || info.step === r.train.steps) lossCurve.push([info.step, Number(smooth.toFixed(5))]);
        onStep?.(info);
      },
    });
    saveModel(dir, model, tok, { dtype: r.dtype });
    const L = data.lengths;
    return {
      programs: data.programs.length,
      distinctPrograms: new Set(data.programs.map((p) => p.code)).size,
      vocabSize: tok.vocabSize,
      params: numParams(cfg),
      steps: tr.steps,
      tokens: tr.tokens,
      exampleTokens,
      epochs: (r.train.steps * r.train.batch) / data.examples.length,
      medianProgramTokens: L[L.length >> 1],
      maxProgramTokens: L[L.length - 1],
      truncated: tr.truncated,
      seconds: tr.seconds,
      finalLoss: tr.loss,
      lossCurve,
      headerTokens: tok.encode(PROGRAM_HEADER).length,
    };
  } finally {
    model.dispose();
  }
}

/** The completion prompt the model was trained on: bos (added by the factory) + PROGRAM_HEADER. */
export function headerPrompt(): FactoryPrompt {
  return { text: PROGRAM_HEADER, messages: [], prefix: CODE_OPEN, stop: [CODE_CLOSE] };
}

export interface PassRate {
  temperature: number;
  topP: number;
  k: number;
  /** Samples with a code block that defines merge. */
  extracted: number;
  /** Samples whose program passed the cascade (parse + smoke). */
  passed: number;
  passRate: number;
  /** Distinct programs among the extracted / among those that passed. */
  distinct: number;
  distinctPassed: number;
  /** Distinct programs not in the training corpus verbatim (all extracted / passed ones). */
  novel: number;
  novelPassed: number;
  /** Failure categories of the rejected samples (incl. 'no-program'). */
  failures: Record<string, number>;
  /** Mean generated tokens per sample and generation seconds for the whole batch. */
  meanTokens: number;
  seconds: number;
}

export interface PassRateOptions {
  temperatures: number[];
  k: number;
  seed: number;
  /** Top-p as the loop samples (the loop passes none: 1 = off). */
  topP?: number;
  maxTokens?: number;
  batchSize?: number;
  /** Programs of the training corpus (for novelty), compared after trimming trailing whitespace. */
  corpus: Iterable<string>;
  onProgress?: (msg: string) => void;
}

/**
 * Sample `k` programs per temperature from the model folder and run each through the sandbox
 * cascade (parse → smoke: shapes, finiteness, determinism, zeros → ~0).
 */
export async function measurePassRates(dir: string, o: PassRateOptions): Promise<PassRate[]> {
  const known = new Set([...o.corpus].map((c) => c.replace(/\s+$/, '')));
  const factory = await BuiltinFactory.load(dir, { batchSize: o.batchSize ?? 8 });
  const sandbox = new Sandbox();
  const out: PassRate[] = [];
  try {
    const prompt = headerPrompt();
    const ctx = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).max_position_embeddings as number;
    const maxTokens = o.maxTokens ?? ctx - factory.promptIds(prompt.text, 1).length;
    for (const temperature of o.temperatures) {
      const t0 = performance.now();
      o.onProgress?.(`sampling ${o.k} at T=${temperature}`);
      const cands = await factory.sample(prompt, o.k, { temperature, topP: o.topP ?? 1, seed: o.seed, maxTokens });
      const seconds = (performance.now() - t0) / 1000;
      const failures: Record<string, number> = {};
      const extracted: string[] = [];
      const passed: string[] = [];
      for (const [i, c] of cands.entries()) {
        o.onProgress?.(`T=${temperature}: cascade ${i + 1}/${cands.length}`);
        if (c.code === null) {
          failures['no-program'] = (failures['no-program'] ?? 0) + 1;
          continue;
        }
        extracted.push(c.code);
        const v = await validateAlgorithm(c.code, { sandbox, seed: 1234 });
        if (v.ok) passed.push(c.code);
        else failures[v.category ?? 'runtime'] = (failures[v.category ?? 'runtime'] ?? 0) + 1;
      }
      const novel = (xs: string[]) => [...new Set(xs)].filter((x) => !known.has(x.replace(/\s+$/, ''))).length;
      out.push({
        temperature, topP: o.topP ?? 1, k: o.k,
        extracted: extracted.length, passed: passed.length, passRate: passed.length / o.k,
        distinct: new Set(extracted).size, distinctPassed: new Set(passed).size,
        novel: novel(extracted), novelPassed: novel(passed),
        failures, meanTokens: cands.reduce((s, c) => s + (c.tokens ?? 0), 0) / Math.max(1, cands.length), seconds,
      });
    }
  } finally {
    await factory.close();
    sandbox.close();
  }
  return out;
}

export interface FactoryMeta {
  recipe: FactoryRecipe;
  train: FactoryTrainResult;
  eval?: { seed: number; maxTokens: number | null; rates: PassRate[]; seconds: number };
  sizeBytes?: number;
}

const pct = (x: number) => `${(100 * x).toFixed(1)} %`;

/** The model card (README.md). */
export function renderFactoryCard(meta: FactoryMeta): string {
  const { recipe: r, train: t } = meta;
  const m = r.model;
  const lines = [
    '---',
    'library_name: transformers',
    'pipeline_tag: text-generation',
    'tags: [llama, selfdev, code, model-merging]',
    '---',
    '',
    '# selfdev builtin algorithm factory',
    '',
    'A tiny Llama that writes model-merging algorithms (`function merge(taskVectors, ctx)` against the',
    "sandbox's torch-like API, see docs/algorithm-contract.md). It is the offline code model the",
    'Self-Developing loop samples from (`factory.kind: builtin`) and DPO-trains on its best and worst',
    'programs. Trained by `npm run factory:train` (scripts/factory-train.ts, src/factory/train.ts).',
    '',
    '## Prompt',
    '',
    `Trained on \`<s>${JSON.stringify(PROGRAM_HEADER).slice(1, -1)}\` + program + \`${JSON.stringify(CODE_CLOSE).slice(1, -1)}</s>\` (loss on the`,
    `program, the closing fence and eos). The header is ${t.headerTokens} tokens: with the loop's long prompt set`,
    `\`factory.maxPromptTokens: ${t.headerTokens}\` so the model sees exactly what it was trained on, and`,
    `\`factory.maxTokens\` up to ${m.maxPositions - t.headerTokens - 1} (the longest training program is ${t.maxProgramTokens} tokens).`,
    '',
    '## Training',
    '',
    '| | |',
    '|---|---|',
    `| corpus | ${t.programs} programs (${t.distinctPrograms} distinct) from src/factory/corpus.ts, seed ${r.corpus.seed} |`,
    `| tokenizer | byte-level BPE, ${r.tokenizer.merges} merges on the corpus, vocab ${t.vocabSize}; median example ${t.medianProgramTokens} tokens, max ${t.maxProgramTokens} |`,
    `| model | Llama, hidden ${m.hidden}, ${m.layers} layers, ${m.heads} heads / ${m.kvHeads} kv heads, intermediate ${m.intermediate}, context ${m.maxPositions}, ${m.tied ? 'tied' : 'untied'} embeddings, ${t.params} parameters, stored ${r.dtype} |`,
    `| optimiser | AdamW lr ${r.train.lr}, warmup ${r.train.warmup}, cosine to ${r.train.minLrFrac}×, weight decay ${r.train.weightDecay}, clip 1, batch ${r.train.batch} (length-bucketed), seed ${r.train.seed} |`,
    `| steps | ${t.steps} (${t.epochs.toFixed(2)} epochs) |`,
    `| tokens | ${t.exampleTokens} example tokens, ${t.tokens} incl. padding |`,
    `| wall time | ${t.seconds.toFixed(0)} s (${Math.round(t.tokens / t.seconds)} tok/s incl. padding; tfjs wasm, one thread, on a shared 2-core machine) |`,
    `| final loss | ${t.finalLoss.toFixed(4)} (smoothed, nats/token) |`,
    '',
    'Loss curve (step: smoothed loss): ' + t.lossCurve.map(([s, l]) => `${s}: ${l.toFixed(3)}`).join(', ') + '.',
    '',
  ];
  if (meta.eval) {
    const e = meta.eval;
    lines.push(
      '## Pass rate through the sandbox cascade',
      '',
      `K samples per temperature, top-p ${e.rates[0]?.topP ?? 1} (as the loop samples), sampling seed ${e.seed}, up to ${e.maxTokens ?? '(context)'} new tokens,`,
      'each program run through `validateAlgorithm` (parse, then smoke runs: shapes, finite values,',
      'determinism, all-zero task vectors → 0). Novel = distinct programs not in the training corpus verbatim.',
      '',
      '| T | K | code block | passed | pass rate | distinct (passed) | novel (passed) | mean tokens | failures |',
      '|---|---|---|---|---|---|---|---|---|',
      ...e.rates.map((x) => `| ${x.temperature} | ${x.k} | ${x.extracted} | ${x.passed} | ${pct(x.passRate)} | ${x.distinct} (${x.distinctPassed}) | ${x.novel} (${x.novelPassed}) | ${x.meanTokens.toFixed(0)} | ${Object.entries(x.failures).map(([k, v]) => `${k} ${v}`).join(', ') || '–'} |`),
      '',
      `Measured in ${e.seconds.toFixed(0)} s.`,
      '',
    );
  }
  if (meta.sizeBytes !== undefined) lines.push(`model.safetensors: ${(meta.sizeBytes / 1e6).toFixed(2)} MB.`, '');
  return lines.join('\n');
}

/** Write README.md and factory.json into `dir`, each via a temp file + rename. */
export function writeFactoryMeta(dir: string, meta: FactoryMeta): void {
  const put = (name: string, text: string) => {
    const t = join(dir, `.${name}.tmp-${process.pid}`);
    writeFileSync(t, text);
    renameSync(t, join(dir, name));
  };
  put('README.md', renderFactoryCard(meta));
  put(FACTORY_JSON, JSON.stringify(meta, null, 2) + '\n');
}

export function readFactoryMeta(dir: string): FactoryMeta {
  const p = join(dir, FACTORY_JSON);
  if (!existsSync(p)) throw new Error(`${p}: missing (not a folder written by factory:train)`);
  let j: FactoryMeta;
  try {
    j = JSON.parse(readFileSync(p, 'utf8')) as FactoryMeta;
  } catch (e) {
    throw new Error(`${p}: invalid JSON (${(e as Error).message})`);
  }
  if (!j.recipe || !j.train) throw new Error(`${p}: expected fields recipe and train`);
  return j;
}

