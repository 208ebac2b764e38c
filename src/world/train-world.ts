/**
 * Train a whole tiny world from a recipe: each stage in order, cached by its stage hash (which
 * includes every ancestor), each written atomically as an HF folder `outDir/<name>/` with
 * `README.md` (model card) and `world.json` ({recipe, hash, stage, result}).
 *
 * Deterministic: the data stream, its order and the initial weights are functions of the stage
 * seeds, training is single-process, and a child starts from its parent's weights as saved on disk,
 * so the same recipe gives byte-identical model.safetensors (wall times in the cards differ).
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { initBackend } from '../nn/ops.ts';
import { Llama, makeConfig } from '../nn/model.ts';
import { Tokenizer } from '../nn/tokenizer.ts';
import { loadModel, saveModel } from '../nn/checkpoint.ts';
import { replaceDir } from '../io/checkpoint.ts';
import { encodePair } from '../nn/data.ts';
import type { Example } from '../nn/data.ts';
import { train } from '../nn/train.ts';
import type { StepInfo } from '../nn/train.ts';
import { calculatorSpans } from '../eval/calculator.ts';
import { formatQuery } from '../eval/prompt.ts';
import { defaultBenchmarkKeys, trainingStream } from './bench.ts';
import { BenchRng, seedFrom } from './problems.ts';
import type { Problem } from './problems.ts';
import { lineage, seedAncestor, stageHashes, validateRecipe, RecipeError, TRAINER_VERSION } from './recipe.ts';
import type { Recipe, Stage } from './recipe.ts';
import { renderCard } from './cards.ts';
import { tensorKind } from '../sandbox/types.ts';
import type { SplitScore, StageResult } from './cards.ts';

export const WORLD_JSON = 'world.json';

export type WorldEvent =
  | { kind: 'skip'; stage: string; index: number; total: number }
  | { kind: 'start'; stage: string; index: number; total: number; steps: number }
  | { kind: 'step'; stage: string; info: StepInfo }
  | { kind: 'eval'; stage: string; split: 'dev' | 'test' }
  | { kind: 'done'; stage: string; result: StageResult };

export interface TrainWorldOptions {
  /** Train only these stages (and whichever of their ancestors are missing or stale). */
  only?: string[];
  /** Retrain the selected stages even when their cached output matches. */
  force?: boolean;
  /** Splits to evaluate each newly trained model on (default: recipe.evalSplits). */
  evalSplits?: Array<'dev' | 'test'>;
  /** Evaluate only the first N problems of each split (quick checks). */
  evalLimit?: number;
  /** Problems per generation batch in evaluation (default 50). */
  evalBatch?: number;
  /** Also evaluate cached models that lack a requested split (their card and world.json are rewritten). */
  evalCached?: boolean;
  onProgress?: (e: WorldEvent) => void;
}

export interface WorldStageReport extends StageResult {
  hash: string;
  /** True when the cached folder was reused. */
  cached: boolean;
}

/** Number of self-distilled examples of a stage (0 without `data.distill`). */
export function distillCount(stage: Stage): number {
  const d = stage.data.distill;
  return d ? Math.round(d.share * stage.steps * stage.batch) : 0;
}

/**
 * Examples of a stage from its mix: `steps × batch` fresh problems (no repeats), benchmark-disjoint,
 * less the self-distilled share (`distillCount`).
 */
export function stageProblems(stage: Stage, exclude: ReadonlySet<string> = defaultBenchmarkKeys()): StageProblem[] {
  const mix = stage.data.mix;
  const total = mix.reduce((s, e) => s + e.weight, 0);
  const streams = mix.map((e) => trainingStream(e.family, { seed: seedFrom(stage.seed, 'world', e.family, e.hint === true ? 'hint' : 'plain', ...(e.step ? [`step${e.step}`] : [])), hint: e.hint === true, exclude }));
  const pick = new BenchRng(seedFrom(stage.seed, 'world-mix', mix.map((e) => `${e.family}${e.hint ? '+h' : ''}${e.step ? `+s${e.step}` : ''}`).join(',')));
  const n = stage.steps * stage.batch - distillCount(stage);
  const out: StageProblem[] = [];
  for (let i = 0; i < n; i++) {
    let u = pick.next() * total;
    let k = mix.length - 1;
    for (let j = 0; j < mix.length; j++) {
      u -= mix[j].weight;
      if (u < 0) {
        k = j;
        break;
      }
    }
    const p = streams[k].next().value as Problem;
    out.push(mix[k].step === undefined ? p : { ...p, step: mix[k].step });
  }
  return out;
}

/** A stage's problem; `step` = only that step's line is a loss target (MixEntry.step). */
export type StageProblem = Problem & { step?: 1 | 2 };

/**
 * Character spans of a `gsm` completion (` {line 1}\n{line 2}\n#### N`) that are context, not
 * targets, when only `step` is trained: step 1 masks everything after the first line's newline,
 * step 2 masks the first line with its newline.
 */
export function stepContextSpans(completion: string, step: 1 | 2): Array<[number, number]> {
  const nl = completion.indexOf('\n');
  if (nl < 0 || completion.indexOf('\n', nl + 1) < 0) throw new Error(`step ${step} target: the answer ${JSON.stringify(completion)} has fewer than two steps`);
  return step === 1 ? [[nl + 1, completion.length]] : [[0, nl + 1]];
}

/** The union of character spans, sorted and merged. */
function unionSpans(spans: Array<[number, number]>): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const [s, e] of [...spans].sort((a, b) => a[0] - b[0])) {
    const last = out[out.length - 1];
    if (last && s <= last[1]) last[1] = Math.max(last[1], e);
    else out.push([s, e]);
  }
  return out;
}

/**
 * The stories a stage distils from its parent: `distillCount` un-hinted problems, the families taken
 * in turn, each from its own stream (benchmark-disjoint). Their answers are replaced by the parent's.
 */
export function distillProblems(stage: Stage, exclude: ReadonlySet<string> = defaultBenchmarkKeys()): Problem[] {
  const d = stage.data.distill;
  if (!d) return [];
  const streams = d.families.map((f) => trainingStream(f, { seed: seedFrom(stage.seed, 'distill', f), exclude }));
  return Array.from({ length: distillCount(stage) }, (_, i) => streams[i % streams.length].next().value as Problem);
}

/**
 * Training examples of a self-distilled share: the parent's greedy answers (calculator on, as in
 * evaluation) to `problems`, as completions; calculator outputs are masked like every other target.
 */
export async function distilledExamples(parent: Llama, tok: Tokenizer, problems: readonly Problem[], loss: 'completion' | 'all' = 'completion'): Promise<Example[]> {
  if (problems.length === 0) return [];
  const { engineGenerate } = await import('../eval/backends.ts');
  const { cutAtStop, STOP_STRINGS } = await import('../eval/prompt.ts');
  const prompts = problems.map((p) => formatQuery(p.question));
  const maxTokens = Math.min(96, parent.config.max_position_embeddings - 160);
  const gens = await engineGenerate(parent, tok, prompts, { maxTokens, stop: STOP_STRINGS, calculator: true, batchSize: 64 });
  return gens.map((g, i) => {
    const c = cutAtStop(g.text, STOP_STRINGS);
    return encodePair(tok, prompts[i], c, { completionOnly: loss === 'completion', maskSpans: calculatorSpans(c) });
  });
}

/** The (prompt, completion) text of a problem in a stage format (see StageData.format). */
export function formatProblem(p: Problem, format: 'gsm' | 'pre' = 'gsm'): { prompt: string; completion: string } {
  if (format === 'gsm') return { prompt: formatQuery(p.question), completion: ` ${p.answer}` };
  const lines = p.answer.split('\n');
  const last = lines.pop() ?? '';
  const m = /^#### (.+)$/.exec(last);
  if (!m) throw new Error(`problem '${p.question}': answer does not end with a '#### N' line`);
  const steps = lines.map((l) => l.replace(/\.$/, ''));
  return { prompt: `Q: ${p.question}\nA:`, completion: ` ${[...steps, `So the answer is ${m[1]}`].join('. ')}.` };
}

/**
 * One training example (bos + prompt + completion + eos), calculator outputs masked from the loss,
 * and with `p.step` the other step's line too (stepContextSpans).
 */
export function encodeProblem(tok: Tokenizer, p: StageProblem, loss: 'completion' | 'all' = 'completion', format: 'gsm' | 'pre' = 'gsm'): Example {
  const { prompt, completion } = formatProblem(p, format);
  if (p.step !== undefined && (format !== 'gsm' || loss !== 'completion')) throw new Error('step targets need the gsm format with loss on the completion');
  const spans = p.step === undefined ? calculatorSpans(completion) : unionSpans([...calculatorSpans(completion), ...stepContextSpans(completion, p.step)]);
  return encodePair(tok, prompt, completion, { completionOnly: loss === 'completion', maskSpans: spans });
}

/** Read `outDir/<name>/world.json` if it is a finished stage folder. */
export function readWorldJson(dir: string): { hash: string; result: StageResult } | null {
  const p = join(dir, WORLD_JSON);
  if (!existsSync(p) || !existsSync(join(dir, 'model.safetensors'))) return null;
  try {
    const j = JSON.parse(readFileSync(p, 'utf8'));
    return typeof j.hash === 'string' && j.result ? { hash: j.hash, result: j.result } : null;
  } catch {
    return null;
  }
}

/** ‖a − b‖/‖b‖ over all tensors and over MLP tensors only. */
export function taskVectorRatio(model: Map<string, Float32Array>, seed: Map<string, Float32Array>): { all: number; mlp: number } {
  let d = 0, n = 0, dm = 0, nm = 0;
  for (const [name, s] of seed) {
    const w = model.get(name);
    if (!w || w.length !== s.length) throw new Error(`task vector: tensor ${name} missing or of another size`);
    let dd = 0, nn = 0;
    for (let i = 0; i < s.length; i++) {
      const x = w[i] - s[i];
      dd += x * x;
      nn += s[i] * s[i];
    }
    d += dd;
    n += nn;
    if (name.includes('.mlp.')) {
      dm += dd;
      nm += nn;
    }
  }
  return { all: Math.sqrt(d / n), mlp: nm > 0 ? Math.sqrt(dm / nm) : 0 };
}

async function splitSize(split: 'dev' | 'test', limit: number | undefined): Promise<number> {
  const { loadProblems } = await import('../eval/evaluate.ts');
  const n = loadProblems({ kind: 'tiny' }, split).length;
  return limit === undefined ? n : Math.min(n, limit);
}

async function evaluateModel(model: Llama, tok: Tokenizer, split: 'dev' | 'test', limit: number | undefined, batch: number): Promise<SplitScore> {
  const { evaluate, loadProblems } = await import('../eval/evaluate.ts');
  const { BuiltinBackend } = await import('../eval/backends.ts');
  let problems = loadProblems({ kind: 'tiny' }, split);
  if (limit !== undefined) problems = problems.slice(0, limit);
  const backend = BuiltinBackend.fromModel(model, tok, { batchSize: batch });
  const maxTokens = Math.min(96, model.config.max_position_embeddings - 160);
  if (maxTokens < 16) throw new Error(`evaluation needs max_position_embeddings ≥ 176 (prompts up to 160 tokens + answer), got ${model.config.max_position_embeddings}`);
  const r = await evaluate(backend, problems, { calculator: true, maxTokens });
  return { n: r.n, strict: r.strict, flexible: r.flexible, perFamily: r.perFamily };
}

/** Write README.md and world.json of a stage folder (each via a temp file + rename). */
function writeMeta(dir: string, recipe: Recipe, stage: Stage, hash: string, result: StageResult): void {
  const put = (name: string, text: string) => {
    const t = join(dir, `.${name}.tmp-${process.pid}`);
    writeFileSync(t, text);
    renameSync(t, join(dir, name));
  };
  put('README.md', renderCard(recipe, stage, hash, result));
  put(WORLD_JSON, JSON.stringify({ trainer_version: TRAINER_VERSION, recipe: recipe.name, hash, model: recipe.model, dtype: recipe.dtype, stage, result }, null, 2) + '\n');
}

/**
 * Train (or reuse) every stage of `recipe` into `outDir`. Returns one report per stage that was
 * selected (all stages without `only`), in recipe order.
 */
export async function trainWorld(recipe: Recipe, outDir: string, opts: TrainWorldOptions = {}): Promise<WorldStageReport[]> {
  validateRecipe(recipe);
  const hashes = stageHashes(recipe);
  const selected = new Set<string>();
  const wanted = opts.only ?? recipe.stages.map((s) => s.name);
  for (const name of wanted) {
    if (!hashes.has(name)) throw new RecipeError(`recipe '${recipe.name}': no stage '${name}' (stages: ${recipe.stages.map((s) => s.name).join(', ')})`);
    for (const s of lineage(recipe, name)) selected.add(s.name);
  }
  const evalSplits = opts.evalSplits ?? recipe.evalSplits;
  if (opts.evalLimit !== undefined && !(Number.isInteger(opts.evalLimit) && opts.evalLimit > 0)) throw new Error(`evalLimit must be a positive integer, got ${opts.evalLimit}`);
  await initBackend();
  const root = resolve(outDir);
  mkdirSync(root, { recursive: true });
  const tok = new Tokenizer();
  const m = recipe.model;
  const cfg = makeConfig({
    vocab_size: tok.vocabSize, hidden_size: m.hidden, num_hidden_layers: m.layers, num_attention_heads: m.heads,
    num_key_value_heads: m.kvHeads, intermediate_size: m.intermediate, max_position_embeddings: m.maxPositions,
  });
  const stages = recipe.stages.filter((s) => selected.has(s.name));
  const reports: WorldStageReport[] = [];
  const rebuilt = new Set<string>();
  for (const [index, stage] of stages.entries()) {
    const hash = hashes.get(stage.name)!;
    const dir = join(root, stage.name);
    const cached = readWorldJson(dir);
    const parentRebuilt = stage.initFrom !== null && rebuilt.has(stage.initFrom);
    const forced = opts.force === true && wanted.includes(stage.name);
    if (cached && cached.hash === hash && !forced && !parentRebuilt) {
      opts.onProgress?.({ kind: 'skip', stage: stage.name, index, total: stages.length });
      // a split is missing when not measured, or measured on another number of problems (e.g. an --eval-limit run)
      const missing: Array<'dev' | 'test'> = [];
      if (opts.evalCached) for (const s of evalSplits) if (cached.result.eval[s]?.n !== await splitSize(s, opts.evalLimit)) missing.push(s);
      if (missing.length > 0) {
        const saved = loadModel(dir).model;
        const te = performance.now();
        for (const split of missing) {
          opts.onProgress?.({ kind: 'eval', stage: stage.name, split });
          cached.result.eval[split] = await evaluateModel(saved, tok, split, opts.evalLimit, opts.evalBatch ?? 50);
        }
        cached.result.evalSeconds = (cached.result.evalSeconds ?? 0) + (performance.now() - te) / 1000;
        saved.dispose();
        writeMeta(dir, recipe, stage, hash, cached.result);
      }
      reports.push({ ...cached.result, hash, cached: true });
      continue;
    }
    opts.onProgress?.({ kind: 'start', stage: stage.name, index, total: stages.length, steps: stage.steps });
    let model: Llama;
    if (stage.initFrom === null) model = Llama.init(cfg, stage.seed);
    else {
      const pdir = join(root, stage.initFrom);
      const pj = readWorldJson(pdir);
      if (!pj || pj.hash !== hashes.get(stage.initFrom)) throw new Error(`${pdir}: parent of '${stage.name}' is missing or stale (internal ordering error)`);
      model = loadModel(pdir).model;
    }
    const own = stageProblems(stage).map((p) => encodeProblem(tok, p, stage.data.loss ?? 'completion', stage.data.format ?? 'gsm'));
    const distilled = await distilledExamples(model, tok, distillProblems(stage), stage.data.loss ?? 'completion');
    const examples = distilled.length === 0 ? own : new BenchRng(seedFrom(stage.seed, 'distill-mix')).shuffle([...own, ...distilled]);
    let exampleTokens = 0, targetTokens = 0;
    for (const e of examples) {
      exampleTokens += e.ids.length;
      for (const x of e.mask) targetTokens += x;
    }
    const source = (step: number, bs: number) => examples.slice(step * bs, step * bs + bs);
    const every = Math.max(1, Math.floor(stage.steps / 20));
    const lossCurve: Array<[number, number]> = [];
    let smooth = NaN;
    const tr = train(model, tok, source, {
      steps: stage.steps, lr: stage.lr, batchSize: stage.batch, seqLen: stage.seqLen, warmup: stage.warmup,
      minLrFrac: stage.minLrFrac, weightDecay: stage.weightDecay, clip: 1, seed: stage.seed, progress: false,
      trainable: stage.trainable === undefined ? undefined : (name) => stage.trainable!.includes(tensorKind(name)),
      onStep: (info) => {
        smooth = Number.isNaN(smooth) ? info.loss : 0.9 * smooth + 0.1 * info.loss;
        if (info.step % every === 0 || info.step === stage.steps) lossCurve.push([info.step, Number(smooth.toFixed(5))]);
        opts.onProgress?.({ kind: 'step', stage: stage.name, info });
      },
    });
    const tmp = join(root, `.${stage.name}.staging-${process.pid}`);
    rmSync(tmp, { recursive: true, force: true });
    saveModel(tmp, model, tok, { dtype: recipe.dtype });
    model.dispose();
    // Everything below reads the model as saved (rounded to the stored dtype).
    const saved = loadModel(tmp).model;
    const result: StageResult = {
      name: stage.name, role: stage.role, parent: stage.initFrom, steps: stage.steps, seconds: tr.seconds, tokens: tr.tokens,
      exampleTokens, targetTokens, finalLoss: tr.loss, lossCurve, truncated: tr.truncated, eval: {},
    };
    if (stage.maxFinalLoss !== undefined) result.lossCheck = { max: stage.maxFinalLoss, ok: tr.loss <= stage.maxFinalLoss };
    const seed = seedAncestor(recipe, stage.name);
    if (seed) {
      const sm = loadModel(join(root, seed.name)).model;
      result.tau = { seed: seed.name, ...taskVectorRatio(saved.getWeights(), sm.getWeights()) };
      sm.dispose();
    }
    const te = performance.now();
    for (const split of evalSplits) {
      opts.onProgress?.({ kind: 'eval', stage: stage.name, split });
      result.eval[split] = await evaluateModel(saved, tok, split, opts.evalLimit, opts.evalBatch ?? 50);
    }
    if (evalSplits.length > 0) result.evalSeconds = (performance.now() - te) / 1000;
    saved.dispose();
    writeMeta(tmp, recipe, stage, hash, result);
    replaceDir(tmp, dir);
    rebuilt.add(stage.name);
    opts.onProgress?.({ kind: 'done', stage: stage.name, result });
    reports.push({ ...result, hash, cached: false });
  }
  return reports;
}
