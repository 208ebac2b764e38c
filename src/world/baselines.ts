/**
 * Baselines on a tiny world (issue 4): the seed M0, each expert alone, the oracles, and the mergekit
 * methods (task arithmetic over a λ grid, TIES, DARE, breadcrumbs, DELLA, Model Stock, SLERP of
 * expert pairs) on the in-domain experts and on the out-of-domain experts. Every config is scored on
 * dev; per method family the best config by dev (strict, then flexible, then grid order) is scored on
 * test — tuned on dev, reported on dev and test.
 *
 * Merging is in memory with the registry's method implementations (src/merge/in-memory.ts), so a
 * row's weights are bit-identical to what `selfdev merge` writes for the row's `mergekit` config
 * (checked by a test). With `jobs` > 1 the evaluations run in worker processes
 * (baselines-worker.ts) on the loop's process pool (src/loop/fork-pool.ts).
 *
 * Results are cached per (method, params, model hashes, tensor filter, seed, split, problem set,
 * decoding settings) in a JSON file, rewritten atomically after every evaluation, so an interrupted
 * run resumes where it stopped and a rerun recomputes nothing.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getMethod } from '../merge/registry.ts';
import { mergekitConfig, mergeWeights, modelLoader, type LoadedModel, type MergeSpec } from '../merge/in-memory.ts';
import { tensorSelector, type TensorFilter } from '../merge/tensor-filter.ts';
import type { ParamValue } from '../merge/types.ts';
import { initBackend, Llama, Tokenizer } from '../nn/index.ts';
import { evaluate, type EvalProblem } from '../eval/evaluate.ts';
import { loadGsm8k } from '../eval/gsm8k.ts';
import { BuiltinBackend } from '../eval/backends.ts';
import { ForkPool } from '../loop/fork-pool.ts';
import { DEFAULT_RECIPE } from './recipe.ts';

export type ExpertSet = 'in-domain' | 'ood';
export type SplitName = 'dev' | 'test';

/** The models and benchmark files of a world. Paths are model folders. */
export interface BaselineWorld {
  seed: string;
  experts: string[];
  ood: string[];
  oracles: string[];
  dev: string;
  test: string;
  /** Display names of the model folders (default: folder base names). */
  names?: Record<string, string>;
}

/** One configuration to score: a model as it is (`model`), or a merge with a registry method. */
export interface Candidate extends MergeSpec {
  set: ExpertSet;
  /** kind 'model': the model folder. */
  model?: string;
}

export interface SplitScore {
  n: number;
  strict: number;
  flexible: number;
  perFamily: Record<string, number>;
  seconds: number;
  cached: boolean;
}

export interface BaselineRow {
  set: ExpertSet;
  family: string;
  label: string;
  method: string;
  models: string[];
  params: Record<string, ParamValue>;
  modelParams: Record<string, ParamValue>;
  /** Best of its family by dev (then scored on test). */
  selected: boolean;
  dev: SplitScore | null;
  test: SplitScore | null;
  /** The equivalent `selfdev merge` (mergekit) config, with model paths. Null for single models. */
  mergekit: Record<string, unknown> | null;
}

export interface Headroom {
  set: ExpertSet;
  split: SplitName;
  m0: number | null;
  bestTa: number | null;
  /** Oracle name → strict accuracy. */
  oracles: Record<string, number>;
}

export interface BaselinesReport {
  world: { seed: string; experts: string[]; ood: string[]; oracles: string[] };
  settings: { splits: SplitName[]; limit: number | null; devN: number; testN: number; tensors: string; seed: number; maxTokens: number; calculator: boolean; batchSize: number };
  rows: BaselineRow[];
  headroom: Headroom[];
  evaluations: { computed: number; cached: number };
  seconds: number;
}

export interface BaselineOptions {
  /** Splits to score (default dev,test). 'test' requires 'dev' (configs are tuned on dev). */
  splits?: SplitName[];
  /** First N questions of each split. */
  limit?: number;
  /** Tensor filter of the merges (src/merge/tensor-filter.ts; default 'mlp', the loop's default). */
  tensors?: TensorFilter;
  /** Run seed of random methods (per-tensor seeds as the merge engine derives them). Default 0. */
  seed?: number;
  maxTokens?: number;
  calculator?: boolean;
  batchSize?: number;
  /** Configs to score (default `defaultGrid(world)`). */
  grid?: Candidate[];
  /** JSON file holding the cache and the last report. */
  cacheFile?: string;
  /**
   * Evaluations run at once: 1 (default) in this process; N > 1 in N forked worker processes (each
   * loads the models itself; scores do not depend on N — every evaluation is greedy and independent).
   */
  jobs?: number;
  onProgress?: (e: BaselineProgress) => void;
}

export interface BaselineProgress {
  split: SplitName;
  done: number;
  total: number;
  candidate: Candidate;
  score: SplitScore;
}

export const DEFAULT_LAMBDAS = [0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0];
const CACHE_FORMAT = 'selfdev-baselines';
const CACHE_VERSION = 1;

// ------------------------------------------------------------------------------ world discovery

/** Where the shipped world lives (`world/models` of this package). */
export function defaultWorldDir(): string {
  return fileURLToPath(new URL('../../world/models', import.meta.url));
}

interface StageInfo {
  dir: string;
  name: string;
  role: string;
}

/**
 * Finds the models of a trained world in `dir` by the role in each `<stage>/world.json` (seed,
 * expert, ood, oracle), with the benchmark in `<dir>/../bench/{dev,test}.jsonl` unless given.
 * Throws naming what is missing: the folder, stages without model.safetensors, stages of the default
 * recipe not trained yet, or roles absent. `partial` uses whatever stages are trained (a seed and one
 * expert are still required).
 */
export function discoverWorld(dir: string, bench?: { dev?: string; test?: string }, o: { partial?: boolean } = {}): BaselineWorld {
  const root = resolve(dir);
  const hint = 'train it with `npm run world:train` (or pass --world DIR)';
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new Error(`world folder not found: ${root}; ${hint}`);
  const stages: StageInfo[] = [];
  const incomplete: string[] = [];
  let recipeName: string | null = null;
  for (const e of readdirSync(root).sort()) {
    const sub = join(root, e);
    if (e.startsWith('.') || !statSync(sub).isDirectory()) continue;
    const wj = join(sub, 'world.json');
    if (!existsSync(wj)) continue;
    let j: { recipe?: unknown; stage?: { name?: unknown; role?: unknown } };
    try {
      j = JSON.parse(readFileSync(wj, 'utf8'));
    } catch (err) {
      throw new Error(`${wj}: not valid JSON (${(err as Error).message})`);
    }
    const role = j.stage?.role;
    if (typeof role !== 'string') throw new Error(`${wj}: no stage.role`);
    if (typeof j.recipe === 'string') recipeName ??= j.recipe;
    if (!existsSync(join(sub, 'model.safetensors'))) {
      incomplete.push(e);
      continue;
    }
    stages.push({ dir: sub, name: typeof j.stage?.name === 'string' ? j.stage.name : e, role });
  }
  if (incomplete.length && !o.partial) throw new Error(`${root}: stage(s) without model.safetensors (training not finished?): ${incomplete.join(', ')}; ${hint}`);
  if (recipeName === DEFAULT_RECIPE.name && !o.partial) {
    const have = new Set(stages.map((s) => s.name));
    const missing = DEFAULT_RECIPE.stages.filter((s) => s.role !== 'base' && !have.has(s.name)).map((s) => `${s.name} (${s.role})`);
    if (missing.length) throw new Error(`${root}: the world is not fully trained; missing stage(s): ${missing.join(', ')}; ${hint}`);
  }
  const byRole = (r: string) => stages.filter((s) => s.role === r);
  const seeds = byRole('seed');
  if (seeds.length === 0) throw new Error(`${root}: no trained model with role 'seed' (M0)${stages.length ? ` (found: ${stages.map((s) => `${s.name}:${s.role}`).join(', ')})` : ''}; ${hint}`);
  if (seeds.length > 1) throw new Error(`${root}: ${seeds.length} models with role 'seed' (${seeds.map((s) => s.name).join(', ')}); expected one`);
  const experts = byRole('expert');
  if (experts.length === 0) throw new Error(`${root}: no trained model with role 'expert'; ${hint}`);
  const benchDir = resolve(root, '..', 'bench');
  const dev = resolve(bench?.dev ?? join(benchDir, 'dev.jsonl'));
  const test = resolve(bench?.test ?? join(benchDir, 'test.jsonl'));
  const names: Record<string, string> = {};
  for (const s of stages) names[s.dir] = s.name;
  return { seed: seeds[0]!.dir, experts: experts.map((s) => s.dir), ood: byRole('ood').map((s) => s.dir), oracles: byRole('oracle').map((s) => s.dir), dev, test, names };
}

function nameOf(w: BaselineWorld, dir: string): string {
  return w.names?.[dir] ?? basename(dir);
}

// ------------------------------------------------------------------------------ grids

function fmt(p: Record<string, ParamValue>): string {
  return Object.entries(p).map(([k, v]) => `${k}=${v}`).join(' ');
}

/**
 * The default grid. Normalising methods (ties, dare_ties, della: the merged delta is divided by the
 * weight sum, so a uniform weight cancels) are gridded over density × lambda; the summing ones
 * (dare_linear, breadcrumbs) over density × weight. `quick` keeps a few configs per family, a subset
 * of the full grid (so a full run reuses a quick run's cache entries).
 */
export function defaultGrid(w: BaselineWorld, o: { quick?: boolean; lambdas?: number[] } = {}): Candidate[] {
  const q = o.quick === true;
  const out: Candidate[] = [];
  const model = (set: ExpertSet, family: string, dir: string) => out.push({ set, family, label: nameOf(w, dir), kind: 'model', model: dir });
  const merge = (set: ExpertSet, family: string, method: string, base: string, models: string[], params: Record<string, ParamValue>, modelParams: Record<string, ParamValue>, label?: string) =>
    out.push({ set, family, label: label ?? fmt({ ...modelParams, ...params }), kind: 'merge', method, base, models, params, modelParams });
  const grid2 = <A, B>(as: A[], bs: B[]) => as.flatMap((a) => bs.map((b) => [a, b] as const));

  model('in-domain', 'M0', w.seed);
  for (const e of w.experts) model('in-domain', 'expert', e);
  for (const r of w.oracles) model('in-domain', nameOf(w, r), r);
  const sets: Array<[ExpertSet, string[]]> = [['in-domain', w.experts]];
  if (w.ood.length) sets.push(['ood', w.ood]);
  for (const [set, ex] of sets) {
    if (set === 'ood') {
      model('ood', 'M0', w.seed);
      for (const e of ex) model('ood', 'expert', e);
    }
    const lambdas = o.lambdas ?? (q ? [0.2, 0.4, 0.6] : DEFAULT_LAMBDAS);
    for (const l of lambdas) merge(set, 'task_arithmetic', 'task_arithmetic', w.seed, ex, { lambda: l }, { weight: 1 }, `lambda=${l}`);
    const dens = q ? [0.5] : [0.3, 0.5, 0.7];
    const ood = set === 'ood';
    for (const [d, l] of grid2(dens, q ? [1] : [1, 1.5])) merge(set, 'ties', 'ties', w.seed, ex, { lambda: l }, { weight: 1, density: d });
    for (const [d, l] of grid2(dens, q ? [1] : [1, 1.5])) merge(set, 'dare_ties', 'dare_ties', w.seed, ex, { lambda: l }, { weight: 1, density: d });
    if (!ood) {
      for (const [d, wt] of grid2(dens, q ? [0.5] : [0.3, 0.5])) merge(set, 'dare_linear', 'dare_linear', w.seed, ex, {}, { weight: wt, density: d });
      for (const [d, wt] of grid2(q ? [0.8] : [0.5, 0.8], q ? [0.5] : [0.3, 0.5])) merge(set, 'breadcrumbs', 'breadcrumbs', w.seed, ex, {}, { weight: wt, density: d, gamma: 0.01 });
      for (const [d, l] of grid2(q ? [0.5] : [0.5, 0.7], q ? [1] : [1, 1.5])) merge(set, 'della', 'della', w.seed, ex, { lambda: l }, { weight: 1, density: d, epsilon: 0.1 });
    }
    if (ex.length >= 2) {
      for (const fw of q ? [false] : [false, true]) merge(set, 'model_stock', 'model_stock', w.seed, ex, { filter_wise: fw }, {});
      const ts = q ? [0.5] : [0.3, 0.5, 0.7];
      for (let i = 0; i < ex.length; i++)
        for (let j = i + 1; j < ex.length; j++)
          for (const t of ts) merge(set, 'slerp', 'slerp', ex[i]!, [ex[j]!], { t }, {}, `${nameOf(w, ex[i]!)}→${nameOf(w, ex[j]!)} t=${t}`);
    }
  }
  return out;
}

// ------------------------------------------------------------------------------ cache

interface CacheEntry {
  family: string;
  label: string;
  split: SplitName;
  n: number;
  strict: number;
  flexible: number;
  perFamily: Record<string, number>;
  seconds: number;
}

interface CacheFile {
  format: string;
  version: number;
  entries: Record<string, CacheEntry>;
  report?: BaselinesReport;
}

function readCache(file: string | undefined): CacheFile {
  const empty: CacheFile = { format: CACHE_FORMAT, version: CACHE_VERSION, entries: {} };
  if (!file || !existsSync(file)) return empty;
  let j: CacheFile;
  try {
    j = JSON.parse(readFileSync(file, 'utf8')) as CacheFile;
  } catch (e) {
    throw new Error(`${file}: not a readable baselines file (${(e as Error).message}); remove it or pass another --out`);
  }
  if (j?.format !== CACHE_FORMAT || typeof j.entries !== 'object' || j.entries === null) throw new Error(`${file}: not a selfdev baselines file (format '${String(j?.format)}'); remove it or pass another --out`);
  if (j.version !== CACHE_VERSION) return empty;
  return j;
}

function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

function sha256(s: string | Buffer): string {
  return createHash('sha256').update(s).digest('hex');
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).sort().filter((k) => o[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

// ------------------------------------------------------------------------------ runner

function loadSplit(file: string, limit: number | undefined): EvalProblem[] {
  if (!existsSync(file)) throw new Error(`benchmark file not found: ${file}`);
  const docs = loadGsm8k(file).map((d, i) => ({ ...d, index: i }));
  return limit === undefined ? docs : docs.slice(0, limit);
}

/** Better by dev: strict, then flexible; ties keep the earlier (grid order). */
function better(a: SplitScore, b: SplitScore): boolean {
  return a.strict > b.strict || (a.strict === b.strict && a.flexible > b.flexible);
}

/** Scores the grid (see the file comment). */
export async function runBaselines(world: BaselineWorld, opts: BaselineOptions = {}): Promise<BaselinesReport> {
  const t0 = performance.now();
  const splits = opts.splits ?? ['dev', 'test'];
  for (const s of splits) if (s !== 'dev' && s !== 'test') throw new Error(`unknown split '${String(s)}' (use dev, test)`);
  if (!splits.includes('dev')) throw new Error('the test split needs dev too: configs are tuned on dev (use --split dev,test)');
  if (opts.limit !== undefined && !(Number.isInteger(opts.limit) && opts.limit > 0)) throw new Error(`limit must be a positive integer, got ${opts.limit}`);
  const tensors = opts.tensors ?? 'mlp';
  tensorSelector(tensors);
  const seed = opts.seed ?? 0;
  const maxTokens = opts.maxTokens ?? 96;
  const calculator = opts.calculator ?? true;
  const batchSize = opts.batchSize ?? 50;
  const grid = opts.grid ?? defaultGrid(world);
  for (const c of grid) {
    if (c.kind === 'merge') getMethod(c.method ?? '');
    for (const d of c.kind === 'model' ? [c.model!] : [c.base!, ...c.models!])
      if (!existsSync(join(d, 'config.json'))) throw new Error(`baseline ${c.family} ${c.label}: model folder not found or incomplete: ${d}`);
  }
  const problems: Record<SplitName, EvalProblem[]> = { dev: loadSplit(world.dev, opts.limit), test: splits.includes('test') ? loadSplit(world.test, opts.limit) : [] };
  const benchHash: Record<SplitName, string> = {
    dev: sha256(canonical(problems.dev.map((p) => [p.question, p.answer]))),
    test: sha256(canonical(problems.test.map((p) => [p.question, p.answer]))),
  };
  const cache = readCache(opts.cacheFile);
  const saveCache = (report?: BaselinesReport) => {
    if (!opts.cacheFile) return;
    if (report) cache.report = report;
    writeAtomic(opts.cacheFile, JSON.stringify(cache, null, 1) + '\n');
  };

  await initBackend();
  const load = modelLoader();
  const settings: EvalSettings = { tensors, seed, maxTokens, calculator, batchSize, tokenizerDir: world.seed, files: { dev: world.dev, test: world.test }, limit: opts.limit };
  const jobs = opts.jobs ?? 1;
  if (!(Number.isInteger(jobs) && jobs >= 1)) throw new Error(`jobs must be a positive integer, got ${jobs}`);
  const pool = jobs > 1 ? baselinesPool(jobs, settings) : null;
  const local = pool ? null : localEvaluator(settings, load, problems);
  const evaluator = (candidate: Candidate, split: SplitName) => (pool ? pool.run({ candidate, split }) : local!(candidate, split));

  const keyOf = (c: Candidate, split: SplitName): string => {
    const id = c.kind === 'model'
      ? { kind: 'model', model: load(c.model!).hash }
      : { kind: 'merge', method: c.method, base: load(c.base!).hash, models: c.models!.map((m) => load(m).hash), params: c.params ?? {}, modelParams: c.modelParams ?? {}, modelParamsEach: c.modelParamsEach, tensors, seed: getMethod(c.method!).random ? seed : null };
    return sha256(canonical({ v: CACHE_VERSION, id, split, bench: benchHash[split], maxTokens, calculator }));
  };
  let computed = 0;
  let cachedN = 0;
  /** Evaluations started but not finished, by key (the same config twice in a grid runs once). */
  const inflight = new Map<string, Promise<SplitScore>>();
  const score = async (c: Candidate, split: SplitName): Promise<SplitScore> => {
    const key = keyOf(c, split);
    const hit = cache.entries[key];
    if (hit) {
      cachedN++;
      return { n: hit.n, strict: hit.strict, flexible: hit.flexible, perFamily: hit.perFamily, seconds: hit.seconds, cached: true };
    }
    const running = inflight.get(key);
    if (running) {
      cachedN++;
      return { ...(await running), cached: true };
    }
    const p = evaluator(c, split).then((s) => {
      cache.entries[key] = { family: c.family, label: c.label, split, n: s.n, strict: s.strict, flexible: s.flexible, perFamily: s.perFamily, seconds: s.seconds };
      computed++;
      saveCache();
      return s;
    });
    inflight.set(key, p);
    return p;
  };

  try {
    return await runGrid();
  } finally {
    await pool?.close();
  }
  async function runGrid(): Promise<BaselinesReport> {
    let done = 0;
    const devScores: SplitScore[] = await Promise.all(grid.map(async (c) => {
      const s = await score(c, 'dev');
      opts.onProgress?.({ split: 'dev', done: ++done, total: grid.length, candidate: c, score: s });
      return s;
    }));
    const best = new Map<string, number>();
    grid.forEach((c, i) => {
      const k = `${c.set}\u0000${c.family}`;
      const b = best.get(k);
      if (b === undefined || better(devScores[i]!, devScores[b]!)) best.set(k, i);
    });
    const selected = new Set(best.values());
    const testScores = new Map<number, SplitScore>();
    if (splits.includes('test')) {
      const order = [...selected].sort((a, b) => a - b);
      done = 0;
      await Promise.all(order.map(async (i) => {
        const s = await score(grid[i]!, 'test');
        testScores.set(i, s);
        opts.onProgress?.({ split: 'test', done: ++done, total: order.length, candidate: grid[i]!, score: s });
      }));
    }
    const allNames = world.seed ? load(world.seed).names : [];
    const rows: BaselineRow[] = grid.map((c, i) => ({
      set: c.set,
      family: c.family,
      label: c.label,
      method: c.kind === 'model' ? 'none' : c.method!,
      models: (c.kind === 'model' ? [c.model!] : [c.base!, ...c.models!]).map((d) => nameOf(world, d)),
      params: c.params ?? {},
      modelParams: c.modelParams ?? {},
      selected: selected.has(i),
      dev: devScores[i]!,
      test: testScores.get(i) ?? null,
      mergekit: c.kind === 'merge' ? mergekitConfig(c, allNames, tensors) : null,
    }));
    const headroom: Headroom[] = [];
    const split: SplitName = splits.includes('test') ? 'test' : 'dev';
    const pick = (r: BaselineRow | undefined) => (r ? (split === 'test' ? r.test?.strict ?? null : r.dev?.strict ?? null) : null);
    for (const set of ['in-domain', 'ood'] as const) {
      const rs = rows.filter((r) => r.set === set && r.selected);
      if (rs.length === 0) continue;
      const oracles: Record<string, number> = {};
      for (const d of world.oracles) {
        const r = rows.find((x) => x.selected && x.method === 'none' && x.family === nameOf(world, d));
        const v = pick(r);
        if (v !== null) oracles[nameOf(world, d)] = v;
      }
      headroom.push({ set, split, m0: pick(rs.find((r) => r.family === 'M0')), bestTa: pick(rs.find((r) => r.family === 'task_arithmetic')), oracles });
    }
    const report: BaselinesReport = {
      world: { seed: nameOf(world, world.seed), experts: world.experts.map((d) => nameOf(world, d)), ood: world.ood.map((d) => nameOf(world, d)), oracles: world.oracles.map((d) => nameOf(world, d)) },
      settings: { splits, limit: opts.limit ?? null, devN: problems.dev.length, testN: problems.test.length, tensors, seed, maxTokens, calculator, batchSize },
      rows,
      headroom,
      evaluations: { computed, cached: cachedN },
      seconds: (performance.now() - t0) / 1000,
    };
    saveCache(report);
    return report;
  }
}

export interface EvalSettings {
  tensors: TensorFilter;
  seed: number;
  maxTokens: number;
  calculator: boolean;
  batchSize: number;
  tokenizerDir: string;
  files: Record<SplitName, string>;
  limit: number | undefined;
}

export type Evaluator = (c: Candidate, split: SplitName) => Promise<SplitScore>;

/** Scores candidates in this process, one at a time (calls are serialised). */
export function localEvaluator(st: EvalSettings, load: (dir: string) => LoadedModel, problems: Partial<Record<SplitName, EvalProblem[]>>): Evaluator {
  const tokenizer = Tokenizer.load(st.tokenizerDir);
  let chain: Promise<unknown> = Promise.resolve();
  const one = async (c: Candidate, split: SplitName): Promise<SplitScore> => {
    const t = performance.now();
    const ps = (problems[split] ??= loadSplit(st.files[split], st.limit));
    const weights = c.kind === 'model' ? load(c.model!).weights : mergeWeights(c, load, st.tensors, st.seed);
    const model = Llama.fromWeights(load(c.kind === 'model' ? c.model! : c.base!).config, weights);
    try {
      const r = await evaluate(BuiltinBackend.fromModel(model, tokenizer, { batchSize: st.batchSize }), ps, { maxTokens: st.maxTokens, calculator: st.calculator, chunk: Math.max(1, ps.length) });
      const perFamily = Object.fromEntries(Object.entries(r.perFamily).map(([k, a]) => [k, a.strict]));
      return { n: r.n, strict: r.strict, flexible: r.flexible, perFamily, seconds: (performance.now() - t) / 1000, cached: false };
    } finally {
      model.dispose();
    }
  };
  return (c, split) => {
    const p = chain.then(() => one(c, split));
    chain = p.catch(() => undefined);
    return p;
  };
}

// ------------------------------------------------------------------------------ worker processes

/** One evaluation in a worker process (baselines-worker.ts). */
export interface BaselineJob {
  candidate: Candidate;
  split: SplitName;
}

/** N worker processes, each loading the models itself and scoring one candidate at a time. */
function baselinesPool(n: number, settings: EvalSettings): ForkPool<EvalSettings, BaselineJob, SplitScore> {
  return new ForkPool<EvalSettings, BaselineJob, SplitScore>(n, {
    worker: fileURLToPath(new URL('./baselines-worker.ts', import.meta.url)),
    init: settings,
    name: 'baselines worker',
    maxAttempts: 1,
    onGiveUp: (_job, d) => new Error(`baselines worker exited with code ${d.code}`),
  });
}

// ------------------------------------------------------------------------------ table

const pct = (x: number | null | undefined) => (x === null || x === undefined ? '-' : `${(100 * x).toFixed(1)}`);
const pts = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)} pts`;

/** The report as a plain-text table grouped per set and family ('*' marks the config picked on dev). */
export function formatBaselines(r: BaselinesReport): string {
  const lines: string[] = [];
  const s = r.settings;
  lines.push(`baselines: seed ${r.world.seed}; experts ${r.world.experts.join(', ')}${r.world.ood.length ? `; ood ${r.world.ood.join(', ')}` : ''}${r.world.oracles.length ? `; oracles ${r.world.oracles.join(', ')}` : ''}`);
  lines.push(`merged tensors: ${s.tensors}; dev n=${s.devN}${s.testN ? `, test n=${s.testN}` : ''}; greedy, max ${s.maxTokens} tokens, calculator ${s.calculator ? 'on' : 'off'}; seed ${s.seed}; accuracy in %, strict / flexible`);
  const head = ['family', 'params', 'dev strict', 'dev flex', 'test strict', 'test flex'];
  for (const set of ['in-domain', 'ood'] as const) {
    const rows = r.rows.filter((x) => x.set === set);
    if (rows.length === 0) continue;
    lines.push('', `== ${set} experts ==`);
    const body: string[][] = [];
    let prev = '';
    for (const x of rows) {
      body.push([x.family === prev ? '' : x.family, `${x.selected ? '* ' : '  '}${x.label}`, pct(x.dev?.strict), pct(x.dev?.flexible), pct(x.test?.strict), pct(x.test?.flexible)]);
      prev = x.family;
    }
    const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
    const line = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
    lines.push(line(head), widths.map((w) => '-'.repeat(w)).join('  '));
    for (const b of body) lines.push(line(b));
  }
  const picked = r.rows.filter((x) => x.selected);
  if (picked.length) {
    lines.push('', `== picked on dev, per family (${r.settings.testN ? 'reported on dev and test' : 'dev only'}) ==`);
    const body = picked.map((x) => [x.set, x.family, x.label, pct(x.dev?.strict), pct(x.dev?.flexible), pct(x.test?.strict), pct(x.test?.flexible)]);
    const hd = ['set', 'family', 'params', 'dev strict', 'dev flex', 'test strict', 'test flex'];
    const widths = hd.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
    const line = (cells: string[]) => cells.map((c, i) => (i < 3 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
    lines.push(line(hd), widths.map((w) => '-'.repeat(w)).join('  '));
    for (const b of body) lines.push(line(b));
  }
  lines.push('');
  for (const h of r.headroom) {
    const parts: string[] = [];
    if (h.bestTa !== null && h.m0 !== null) parts.push(`best TA − M0 = ${pts(h.bestTa - h.m0)}`);
    if (h.bestTa !== null) for (const [k, v] of Object.entries(h.oracles)) parts.push(`${k} − best TA = ${pts(v - h.bestTa)}`);
    if (parts.length) lines.push(`headroom (${h.set}, ${h.split} strict): ${parts.join('; ')}`);
  }
  lines.push(`${r.evaluations.computed} evaluations computed, ${r.evaluations.cached} from the cache, ${r.seconds.toFixed(0)} s`);
  return lines.join('\n');
}
