/**
 * The world probe: does a trained tiny world let merge algorithms be told apart? It scores the
 * baselines grid (baselines.ts: every mergekit family tuned on dev, its pick on test) plus
 * what the targets of a merge-friendly world need — each expert alone and as M0 + τ_i on the merged
 * tensors, a per-expert weighting grid — reads the first operation of every dev generation per
 * family (the "operator prior" of each expert and of Task Arithmetic), the task vectors' norms and
 * cosines, and checks the world targets (docs/tiny-world.md §7):
 *   T1 M0 + τ_i keeps ≥ 95 % of each expert's own-family test score;
 *   T2 dev-tuned TA ≥ best single expert + 5 and ≥ M0 + 15 (test);
 *   T3 same-budget oracle ≥ TA + 10 (test);
 *   T4 the dev-tuned picks of TA / TIES / DARE-linear / breadcrumbs / DELLA (those ≥ M0 + 10) span
 *      ≥ 3 test points, and the best per-expert weighting by dev beats TA by ≥ 2 (test);
 *   T5 every OOD expert ≥ 15 % dev alone, OOD TA ≥ best OOD expert + 3 (test);
 *   T6 no expert applies its own operations on more than half of another family's dev stories.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Llama, Tokenizer, readConfig } from '../nn/index.ts';
import { evaluate, type EvalRecord } from '../eval/evaluate.ts';
import { loadGsm8k } from '../eval/gsm8k.ts';
import { BuiltinBackend } from '../eval/backends.ts';
import { defaultGrid, discoverWorld, runBaselines, type BaselineRow, type BaselinesReport, type BaselineWorld, type Candidate } from './baselines.ts';
import { mergeWeights, modelLoader } from '../merge/in-memory.ts';
import { tensorSelector } from '../merge/tensor-filter.ts';
import { renderCard } from './cards.ts';
import type { StageResult } from './cards.ts';
import type { Recipe, Stage } from './recipe.ts';

export type Op = '+' | '-' | '*' | '/' | 'none';
export const OPS: readonly Op[] = ['+', '-', '*', '/', 'none'];
/** In-domain families (one skill each) and the operations their answers use. */
export const FAMILY_OPS: Record<string, readonly Op[]> = { addsub: ['+', '-'], compare: ['+', '-'], muldiv: ['*', '/'], rates: ['*', '/'], units: ['*', '/'] };
export const IN_DOMAIN = Object.keys(FAMILY_OPS);

/** The first operation of a generated answer (`a op b = <<…`), or 'none'. */
export function firstOp(completion: string): Op {
  const m = /<<\s*-?[\d.,]+\s*([-+*/])/.exec(completion) ?? /-?\d[\d.,]*\s*([-+*/])\s*-?\d/.exec(completion);
  return m ? (m[1] as Op) : 'none';
}

/** Per family: how many generations start with each operation, and how many are right (strict). */
export type OperatorTable = Record<string, { n: number; right: number; ops: Record<Op, number> }>;

export function operatorTable(records: readonly EvalRecord[], families: readonly string[] = IN_DOMAIN): OperatorTable {
  const t: OperatorTable = {};
  for (const f of families) t[f] = { n: 0, right: 0, ops: { '+': 0, '-': 0, '*': 0, '/': 0, none: 0 } };
  for (const r of records) {
    const row = r.family ? t[r.family] : undefined;
    if (!row) continue;
    row.n++;
    if (r.strict_correct) row.right++;
    row.ops[firstOp(r.generation)]++;
  }
  return t;
}

/**
 * The operations an expert is trained on (from its own families), and for each in-domain family that
 * uses none of them, the share of its stories on which the expert starts with one of them.
 */
export function priorLeak(table: OperatorTable, ownFamilies: readonly string[]): { ownOps: Op[]; leak: Record<string, number>; worst: number } {
  const ownOps = [...new Set(ownFamilies.flatMap((f) => FAMILY_OPS[f] ?? []))];
  const leak: Record<string, number> = {};
  for (const [f, ops] of Object.entries(FAMILY_OPS)) {
    if (ops.some((o) => ownOps.includes(o))) continue;
    const row = table[f];
    if (!row || row.n === 0) continue;
    leak[f] = ownOps.reduce((s, o) => s + row.ops[o], 0) / row.n;
  }
  return { ownOps, leak, worst: Math.max(0, ...Object.values(leak)) };
}

export function formatOperatorTable(rows: Array<{ model: string; table: OperatorTable }>, families: readonly string[] = IN_DOMAIN): string {
  const cell = (t: OperatorTable[string]) => {
    const parts = OPS.filter((o) => t.ops[o] > 0).sort((a, b) => t.ops[b] - t.ops[a]).map((o) => `${o === 'none' ? 'none' : o} ${t.ops[o]}`);
    return `${parts.join(', ')} (${t.right} right)`;
  };
  const out = [`| model | ${families.join(' | ')} |`, `|---|${families.map(() => '---|').join('')}`];
  for (const r of rows) out.push(`| ${r.model} | ${families.map((f) => (r.table[f] ? cell(r.table[f]) : '–')).join(' | ')} |`);
  return out.join('\n');
}

// ------------------------------------------------------------------------------ geometry

export interface Geometry {
  /** ‖τ_i‖ over the merged tensors, per expert. */
  norms: Record<string, number>;
  /** cos(τ_i, τ_j) over the merged tensors, per pair `A·B`. */
  cosines: Record<string, number>;
}

export function taskVectorGeometry(seed: Map<string, Float32Array>, experts: Array<[string, Map<string, Float32Array>]>, select: (name: string) => boolean): Geometry {
  const names = [...seed.keys()].filter(select);
  const n = experts.length;
  const dot: number[][] = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  for (const name of names) {
    const s = seed.get(name)!;
    const taus = experts.map(([e, w]) => {
      const x = w.get(name);
      if (!x || x.length !== s.length) throw new Error(`task vector geometry: tensor ${name} missing or of another size in ${e}`);
      const t = new Float64Array(s.length);
      for (let k = 0; k < s.length; k++) t[k] = x[k] - s[k];
      return t;
    });
    for (let i = 0; i < n; i++)
      for (let j = i; j < n; j++) {
        let d = 0;
        const a = taus[i], b = taus[j];
        for (let k = 0; k < a.length; k++) d += a[k] * b[k];
        dot[i][j] += d;
      }
  }
  const norms: Record<string, number> = {};
  const cosines: Record<string, number> = {};
  for (let i = 0; i < n; i++) norms[experts[i][0]] = Math.sqrt(dot[i][i]);
  for (let i = 0; i < n; i++)
    for (let j = i + 1; j < n; j++) cosines[`${experts[i][0]}·${experts[j][0]}`] = dot[i][j] / Math.sqrt(dot[i][i] * dot[j][j] || 1);
  return { norms, cosines };
}

// ------------------------------------------------------------------------------ the probe

export const WEIGHT_GRID = [0.3, 0.6, 1] as const;
/** Merge-method families whose spread target T4 measures. */
export const T4_FAMILIES = ['task_arithmetic', 'ties', 'dare_linear', 'breadcrumbs', 'della'] as const;

/** The baselines grid plus each expert alone / as M0 + τ_i (own families, so each is scored on test) and the per-expert weighting grid. */
export function probeGrid(w: BaselineWorld): Candidate[] {
  const grid = defaultGrid(w);
  const name = (d: string) => w.names?.[d] ?? basename(d);
  for (const [set, ex] of [['in-domain', w.experts], ['ood', w.ood]] as const) {
    for (const e of ex) {
      grid.push({ set, family: `alone:${name(e)}`, label: name(e), kind: 'model', model: e });
      grid.push({ set, family: `tau:${name(e)}`, label: `M0 + τ(${name(e)})`, kind: 'merge', method: 'task_arithmetic', base: w.seed, models: [e], params: { lambda: 1 }, modelParams: { weight: 1 } });
    }
  }
  const ex = w.experts;
  const combos: number[][] = ex.reduce<number[][]>((acc) => acc.flatMap((c) => WEIGHT_GRID.map((x) => [...c, x])), [[]]);
  for (const c of combos) {
    grid.push({
      set: 'in-domain', family: 'weights', label: `weights=(${c.join(',')})`, kind: 'merge', method: 'task_arithmetic', base: w.seed, models: ex,
      params: { lambda: 1 }, modelParamsEach: c.map((x) => ({ weight: x })),
    });
  }
  return grid;
}

export interface Target {
  id: string;
  what: string;
  value: string;
  pass: boolean | null;
}

export interface ProbeReport {
  world: string;
  baselines: BaselinesReport;
  /** Own families of each expert (from its world.json data mix). */
  ownFamilies: Record<string, string[]>;
  operators: Array<{ model: string; table: OperatorTable; leak?: ReturnType<typeof priorLeak> }>;
  geometry: { 'in-domain': Geometry; ood: Geometry | null };
  metrics: ProbeMetrics;
  targets: Target[];
  /** Test accuracy (%) of the headline rows. */
  summary: Record<string, number | null>;
}

interface StageJson {
  recipe: string;
  model: Recipe['model'];
  dtype: Recipe['dtype'];
  stage: Stage;
  hash: string;
  result: StageResult;
}

function readStageJson(dir: string): StageJson | null {
  const p = join(dir, 'world.json');
  return existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as StageJson) : null;
}

const pct = (x: number | null | undefined) => (x === null || x === undefined ? null : 100 * x);

export interface ProbeOptions {
  jobs?: number;
  cacheFile?: string;
  /** Merged tensors (default mlp). */
  tensors?: string;
  /** Benchmark files (default: the world's ../bench/{dev,test}.jsonl). */
  dev?: string;
  test?: string;
  onProgress?: (msg: string) => void;
}

export async function probeWorld(dir: string, o: ProbeOptions = {}): Promise<ProbeReport> {
  const tensors = o.tensors ?? 'mlp';
  const w = discoverWorld(dir, { dev: o.dev, test: o.test });
  const name = (d: string) => w.names?.[d] ?? basename(d);
  const grid = probeGrid(w);
  let last = 0;
  const baselines = await runBaselines(w, {
    splits: ['dev', 'test'], grid, tensors, cacheFile: o.cacheFile, jobs: o.jobs ?? 1,
    onProgress: (e) => {
      const now = performance.now();
      if (now - last > 15000 || e.done === e.total) {
        last = now;
        o.onProgress?.(`baselines ${e.split} ${e.done}/${e.total}`);
      }
    },
  });
  const rows = baselines.rows;
  const picked = (set: string, family: string): BaselineRow | undefined => rows.find((r) => r.set === set && r.family === family && r.selected);
  const test = (r: BaselineRow | undefined) => pct(r?.test?.strict);
  const dev = (r: BaselineRow | undefined) => pct(r?.dev?.strict);

  const ownFamilies: Record<string, string[]> = {};
  for (const e of [...w.experts, ...w.ood]) {
    const j = readStageJson(e);
    ownFamilies[name(e)] = (j?.stage.data.mix ?? []).map((m) => m.family).filter((f) => f in FAMILY_OPS);
  }

  // operator priors on dev: M0, every expert, the dev-tuned TA of each set
  const devProblems = loadGsm8k(w.dev).map((d, i) => ({ ...d, index: i }));
  const tok = Tokenizer.load(w.seed);
  const load = modelLoader();
  const records = async (weights: Map<string, Float32Array>): Promise<EvalRecord[]> => {
    const model = Llama.fromWeights(readConfig(w.seed), weights);
    try {
      return (await evaluate(BuiltinBackend.fromModel(model, tok, { batchSize: 50 }), devProblems, { maxTokens: 96, calculator: true, chunk: devProblems.length })).records;
    } finally {
      model.dispose();
    }
  };
  const operators: ProbeReport['operators'] = [];
  o.onProgress?.('operator priors');
  operators.push({ model: name(w.seed), table: operatorTable(await records(load(w.seed).weights)) });
  for (const e of [...w.experts, ...w.ood]) {
    const table = operatorTable(await records(load(e).weights));
    operators.push({ model: name(e), table, leak: priorLeak(table, ownFamilies[name(e)]) });
  }
  for (const set of ['in-domain', 'ood'] as const) {
    const ta = picked(set, 'task_arithmetic');
    if (!ta) continue;
    const c = grid.find((g) => g.set === set && g.family === 'task_arithmetic' && g.label === ta.label)!;
    operators.push({ model: `TA ${set} (${ta.label})`, table: operatorTable(await records(mergeWeights(c, load, tensors))) });
  }

  const sel = tensorSelector(tensors);
  const geo = (ex: string[]) => taskVectorGeometry(load(w.seed).weights, ex.map((e) => [name(e), load(e).weights] as [string, Map<string, Float32Array>]), sel);
  const geometry = { 'in-domain': geo(w.experts), ood: w.ood.length >= 2 ? geo(w.ood) : null };

  // ---- metrics, then targets
  const keep: Record<string, number> = {};
  for (const e of w.experts) {
    const n = name(e);
    const own = ownFamilies[n];
    const a = picked('in-domain', `alone:${n}`)?.test?.perFamily;
    const t = picked('in-domain', `tau:${n}`)?.test?.perFamily;
    if (!a || !t || own.length === 0) continue;
    const sa = own.reduce((s, f) => s + (a[f] ?? 0), 0);
    const st = own.reduce((s, f) => s + (t[f] ?? 0), 0);
    keep[n] = sa > 0 ? st / sa : 1;
  }
  const ta = test(picked('in-domain', 'task_arithmetic'));
  const m0 = test(picked('in-domain', 'M0'));
  const methods: Record<string, number> = {};
  for (const f of T4_FAMILIES) {
    const v = test(picked('in-domain', f));
    if (v !== null && m0 !== null && v >= m0 + 10) methods[f] = v;
  }
  const leaks = operators.filter((r) => r.leak && w.experts.some((e) => name(e) === r.model));
  const metrics: ProbeMetrics = {
    keep,
    m0, ta,
    bestExpert: test(picked('in-domain', 'expert')),
    oracle: test(rows.find((r) => r.set === 'in-domain' && r.family === 'oracle' && r.selected)),
    methods,
    weights: test(picked('in-domain', 'weights')),
    weightsLabel: picked('in-domain', 'weights')?.label ?? null,
    oodDev: Object.fromEntries(w.ood.map((e) => [name(e), dev(picked('ood', `alone:${name(e)}`))])) as Record<string, number | null>,
    oodTa: test(picked('ood', 'task_arithmetic')),
    oodBestExpert: test(picked('ood', 'expert')),
    leak: Object.fromEntries(leaks.map((r) => [r.model, r.leak!.worst])),
    leakM0: Object.fromEntries(leaks.map((r) => [r.model, priorLeak(operators[0].table, ownFamilies[r.model]).worst])),
  };
  const summary: Record<string, number | null> = { m0, bestExpert: metrics.bestExpert, ta, oracle: metrics.oracle, weights: metrics.weights, oodTa: metrics.oodTa, oodBestExpert: metrics.oodBestExpert };
  for (const f of ['ties', 'dare_ties', 'dare_linear', 'breadcrumbs', 'della', 'model_stock', 'slerp']) summary[f] = test(picked('in-domain', f));
  return { world: dir, baselines, ownFamilies, operators, geometry, metrics, targets: targetsOf(metrics), summary };
}

/** The numbers the world targets are decided on (test %, except OOD experts alone: dev %). */
export interface ProbeMetrics {
  /** Share of each expert's own-family test score that M0 + τ_i keeps. */
  keep: Record<string, number>;
  m0: number | null;
  ta: number | null;
  bestExpert: number | null;
  oracle: number | null;
  /** Dev-tuned picks of the T4 families that reach M0 + 10. */
  methods: Record<string, number>;
  weights: number | null;
  weightsLabel: string | null;
  oodDev: Record<string, number | null>;
  oodTa: number | null;
  oodBestExpert: number | null;
  /** Per expert: the largest share of another family's stories it starts with one of its own operations. */
  leak: Record<string, number>;
  /** The same share for M0 with the expert's operations (what the expert started from). */
  leakM0?: Record<string, number>;
}

const diff = (a: number | null, b: number | null) => (a === null || b === null ? null : a - b);
const f1 = (x: number | null | undefined) => (x === null || x === undefined ? '–' : x.toFixed(1));

/** The targets T1–T6 (see the file comment) decided on `m` (one world, or the mean over seeds). */
export function targetsOf(m: ProbeMetrics): Target[] {
  const vals = Object.values(m.methods);
  const spread = vals.length >= 2 ? Math.max(...vals) - Math.min(...vals) : null;
  const keeps = Object.values(m.keep);
  const oodDevs = Object.values(m.oodDev);
  const leaks = Object.values(m.leak);
  return [
    { id: 'T1', what: 'M0 + τ_i keeps ≥ 95 % of each expert\'s own-family test score', value: Object.entries(m.keep).map(([k, v]) => `${k} ${(100 * v).toFixed(0)} %`).join(', '), pass: keeps.length > 0 ? keeps.every((v) => v >= 0.95) : null },
    {
      id: 'T2', what: 'dev-tuned TA ≥ best single expert + 5 and ≥ M0 + 15 (test)',
      value: `TA ${f1(m.ta)} − best expert ${f1(m.bestExpert)} = ${f1(diff(m.ta, m.bestExpert))}; TA − M0 = ${f1(diff(m.ta, m.m0))}`,
      pass: m.ta !== null && m.bestExpert !== null && m.m0 !== null ? m.ta >= m.bestExpert + 5 && m.ta >= m.m0 + 15 : null,
    },
    { id: 'T3', what: 'same-budget oracle ≥ TA + 10 (test)', value: `oracle ${f1(m.oracle)} − TA ${f1(m.ta)} = ${f1(diff(m.oracle, m.ta))}`, pass: m.oracle !== null && m.ta !== null ? m.oracle >= m.ta + 10 : null },
    {
      id: 'T4', what: 'TA/TIES/DARE-linear/breadcrumbs/DELLA picks (≥ M0 + 10) span ≥ 3 test points; best per-expert weighting by dev ≥ TA + 2',
      value: `${Object.entries(m.methods).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')}: spread ${f1(spread)}; ${m.weightsLabel ?? 'weights'} ${f1(m.weights)} − TA = ${f1(diff(m.weights, m.ta))}`,
      pass: spread !== null && m.weights !== null && m.ta !== null ? spread >= 3 && m.weights >= m.ta + 2 : null,
    },
    oodDevs.length === 0
      ? { id: 'T5', what: 'OOD experts', value: 'none trained', pass: null }
      : {
        id: 'T5', what: 'each OOD expert ≥ 15 % dev alone; OOD TA ≥ best OOD expert + 3 (test)',
        value: `${Object.entries(m.oodDev).map(([k, v]) => `${k} ${f1(v)}`).join(', ')} dev; OOD TA ${f1(m.oodTa)} − best OOD expert ${f1(m.oodBestExpert)} = ${f1(diff(m.oodTa, m.oodBestExpert))}`,
        pass: oodDevs.every((v) => v !== null && v >= 15) && m.oodTa !== null && m.oodBestExpert !== null && m.oodTa >= m.oodBestExpert + 3,
      },
    { id: 'T6', what: 'no expert applies its own operations on more than half of another family\'s dev stories (M0 with the same operations in brackets)', value: Object.entries(m.leak).map(([k, v]) => `${k} ${(100 * v).toFixed(0)} %${m.leakM0?.[k] !== undefined ? ` (M0 ${(100 * m.leakM0[k]).toFixed(0)} %)` : ''}`).join(', '), pass: leaks.length > 0 ? leaks.every((v) => v <= 0.5) : null },
  ];
}

/** Markdown table rows (without the header) of targets: id and what, measured value, pass. */
function targetRows(ts: readonly Target[]): string[] {
  return ts.map((t) => `| ${t.id}: ${t.what} | ${t.value} | ${t.pass === null ? '–' : t.pass ? 'yes' : 'no'} |`);
}

/** The mean of the metrics of several probes of one recipe (other training seeds); labels of the first. */
export function meanMetrics(ms: readonly ProbeMetrics[]): ProbeMetrics {
  if (ms.length === 0) throw new Error('meanMetrics: no probes');
  const mean = (xs: Array<number | null | undefined>): number | null => (xs.some((x) => x === null || x === undefined) ? null : (xs as number[]).reduce((s, x) => s + x, 0) / xs.length);
  const meanRec = (get: (m: ProbeMetrics) => Record<string, number | null>, keysFrom: Record<string, unknown>): Record<string, number> => {
    const out: Record<string, number> = {};
    for (const k of Object.keys(keysFrom)) {
      const v = mean(ms.map((m) => get(m)[k]));
      if (v !== null) out[k] = v;
    }
    return out;
  };
  // a method counts when every seed's pick reached M0 + 10
  return {
    keep: meanRec((m) => m.keep, ms[0].keep),
    m0: mean(ms.map((m) => m.m0)), ta: mean(ms.map((m) => m.ta)), bestExpert: mean(ms.map((m) => m.bestExpert)), oracle: mean(ms.map((m) => m.oracle)),
    methods: meanRec((m) => m.methods, ms[0].methods),
    weights: mean(ms.map((m) => m.weights)), weightsLabel: 'best weighting by dev',
    oodDev: meanRec((m) => m.oodDev, ms[0].oodDev),
    oodTa: mean(ms.map((m) => m.oodTa)), oodBestExpert: mean(ms.map((m) => m.oodBestExpert)),
    leak: meanRec((m) => m.leak, ms[0].leak),
    leakM0: ms.every((m) => m.leakM0) ? meanRec((m) => m.leakM0!, ms[0].leakM0!) : undefined,
  };
}

/**
 * Per-seed and mean table of the headline numbers of several probes (`label`: e.g. world and seed),
 * then the targets decided on the mean.
 */
export function formatSeedTable(probes: ReadonlyArray<{ label: string; metrics: ProbeMetrics }>): string {
  const cols = ['M0', 'best expert', 'TA', 'TA − best', 'TA − M0', 'oracle', 'oracle − TA', 'method spread', 'weights − TA', 'min OOD dev', 'OOD TA − best OOD', 'worst leak %'];
  const row = (m: ProbeMetrics): string[] => {
    const vals = Object.values(m.methods);
    const ood = Object.values(m.oodDev).filter((v): v is number => v !== null);
    return [m.m0, m.bestExpert, m.ta, diff(m.ta, m.bestExpert), diff(m.ta, m.m0), m.oracle, diff(m.oracle, m.ta), vals.length >= 2 ? Math.max(...vals) - Math.min(...vals) : null, diff(m.weights, m.ta), ood.length ? Math.min(...ood) : null, diff(m.oodTa, m.oodBestExpert), Object.values(m.leak).length ? 100 * Math.max(...Object.values(m.leak)) : null].map(f1);
  };
  const L = [`| world / seed | ${cols.join(' | ')} |`, `|---|${cols.map(() => '---|').join('')}`];
  for (const p of probes) L.push(`| ${p.label} | ${row(p.metrics).join(' | ')} |`);
  const mean = meanMetrics(probes.map((p) => p.metrics));
  L.push(`| **mean of ${probes.length}** | ${row(mean).join(' | ')} |`, '', '| target (on the mean) | measured | pass |', '|---|---|---|');
  L.push(...targetRows(targetsOf(mean)));
  return L.join('\n');
}

/** The probe as Markdown: targets, headline test scores, geometry, operator priors. */
export function formatProbe(r: ProbeReport): string {
  const L: string[] = [];
  const f = (x: number | null | undefined) => (x === null || x === undefined ? '–' : x.toFixed(1));
  L.push('| target | measured | pass |', '|---|---|---|');
  L.push(...targetRows(r.targets));
  L.push('', `Test accuracy (strict %, dev-tuned picks): ${Object.entries(r.summary).map(([k, v]) => `${k} ${f(v)}`).join(', ')}`, '');
  const g = r.geometry['in-domain'];
  L.push(`Task vectors (merged tensors): ‖τ‖ ${Object.entries(g.norms).map(([k, v]) => `${k} ${v.toFixed(3)}`).join(', ')}; cos ${Object.entries(g.cosines).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')}`);
  if (r.geometry.ood) L.push(`OOD task vectors: ‖τ‖ ${Object.entries(r.geometry.ood.norms).map(([k, v]) => `${k} ${v.toFixed(3)}`).join(', ')}; cos ${Object.entries(r.geometry.ood.cosines).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')}`);
  L.push('', 'First operation of each dev generation per family (25 stories each):', '', formatOperatorTable(r.operators));
  return L.join('\n');
}

/**
 * Writes the probe into the world: `PROBE.md` and `probe.json` beside the stage folders, and the
 * operator-prior table and the targets into every expert's model card (world.json `result.probe`).
 */
export function writeProbe(dir: string, r: ProbeReport): void {
  const put = (file: string, text: string) => {
    const t = `${file}.tmp-${process.pid}`;
    writeFileSync(t, text);
    renameSync(t, file);
  };
  const md = formatProbe(r);
  put(join(dir, 'PROBE.md'), `# World probe: ${basename(dir)}\n\nWritten by \`npm run world:probe\` (src/world/probe.ts).\n\n${md}\n`);
  const { baselines: _b, ...rest } = r;
  put(join(dir, 'probe.json'), JSON.stringify({ ...rest, baselineRows: r.baselines.rows.filter((x) => x.selected).map((x) => ({ set: x.set, family: x.family, label: x.label, dev: x.dev?.strict ?? null, test: x.test?.strict ?? null, testPerFamily: x.test?.perFamily ?? null })) }, null, 1) + '\n');
  const w = discoverWorld(dir);
  for (const e of [...w.experts, ...w.ood]) {
    const j = readStageJson(e);
    if (!j) continue;
    const n = w.names?.[e] ?? basename(e);
    const own = r.operators.find((x) => x.model === n);
    const section = [
      '## Operator prior (world probe)',
      '',
      'First operation of each dev generation per in-domain family; the seed model and the dev-tuned Task Arithmetic merges for comparison:',
      '',
      formatOperatorTable(r.operators.filter((x) => x.model === n || x.model === (w.names?.[w.seed] ?? basename(w.seed)) || x.model.startsWith('TA '))),
      '',
      own?.leak ? `Own operations ${own.leak.ownOps.join(' ')}; share of other families' stories started with one of them: ${Object.entries(own.leak.leak).map(([k, v]) => `${k} ${(100 * v).toFixed(0)} %`).join(', ')}.` : '',
      '',
      '## World targets (world probe, test unless noted)',
      '',
      '| target | measured | pass |',
      '|---|---|---|',
      ...targetRows(r.targets),
    ].join('\n');
    j.result.probe = { markdown: section, operators: own?.table ?? null, leak: own?.leak ?? null, targets: r.targets };
    const recipe = { name: j.recipe, model: j.model, dtype: j.dtype, evalSplits: [], stages: [] } as Recipe;
    put(join(e, 'README.md'), renderCard(recipe, j.stage, j.hash, j.result));
    put(join(e, 'world.json'), JSON.stringify(j, null, 2) + '\n');
  }
}
