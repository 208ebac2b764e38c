/**
 * A tiny-world recipe: everything needed to train the miniature of the paper's setting (a pre-trained
 * base, a seed model M0, experts fine-tuned from M0, out-of-domain experts, a multi-task oracle) from
 * scratch, reproducibly. `trainWorld` (train-world.ts) runs it; changing a stage retrains that stage
 * and every stage initialised from it.
 *
 * Format of every training example (the benchmark's format, see eval/prompt.ts):
 *   prompt     `Question: {question}\nAnswer:`            (loss only with `loss: 'all'`)
 *   completion ` {annotated answer}` + `</s>` (eos)        (loss, except calculator outputs)
 * Calculator outputs (`c>>` after `<<a op b=`, eval/calculator.ts `calculatorSpans`) are never
 * targets: the decoder forces them.
 */
import { createHash } from 'node:crypto';
import { FAMILY_INFO } from './bench.ts';
import type { Family } from './bench.ts';

export type Role = 'base' | 'seed' | 'expert' | 'ood' | 'oracle';
export const ROLES: readonly Role[] = ['base', 'seed', 'expert', 'ood', 'oracle'];

/** Llama dimensions (vocab = the byte-level tokenizer's 259 ids; not configurable). */
export interface ModelDims {
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  intermediate: number;
  maxPositions: number;
}

/** One family of a stage's data mix. */
export interface MixEntry {
  family: Family;
  /** Sampling weight (> 0; weights of a mix need not sum to 1). */
  weight: number;
  /** Append the operation hint " (use + then -)" to the question (training device; never in the benchmark). */
  hint?: boolean;
}

export interface StageData {
  mix: MixEntry[];
  /** Which tokens are targets: the completion only (default) or prompt + completion. */
  loss?: 'completion' | 'all';
  /**
   * 'gsm' (default): `Question: {q}\nAnswer:` → ` {step lines}\n#### {N}</s>` (the benchmark format).
   * 'pre' (pre-training, docs/tiny-world.md §4): `Q: {q}\nA:` → ` {step1}. {step2}. So the answer is {N}.</s>`.
   */
  format?: 'gsm' | 'pre';
}

export interface Stage {
  /** Output folder name (`outDir/<name>/`): letters, digits, `_ - .`. */
  name: string;
  role: Role;
  /** Stage whose output initialises this one; null = random init (seeded by `seed`). */
  initFrom: string | null;
  data: StageData;
  steps: number;
  /** Sequences per step (right-padded to the longest). */
  batch: number;
  /** Longest sequence kept (longer examples are truncated; should not happen in this world). */
  seqLen: number;
  lr: number;
  warmup: number;
  /** The cosine schedule ends at lr · minLrFrac. */
  minLrFrac: number;
  weightDecay: number;
  /** Seeds the data stream, the data order and (for initFrom null) the initial weights. */
  seed: number;
  /**
   * Sanity bound on the final smoothed loss (e.g. the base must finish the copy transition): when
   * exceeded, the model is still saved but its card and world.json carry a failed loss check.
   */
  maxFinalLoss?: number;
  /** One line for the model card. */
  note?: string;
}

export interface Recipe {
  name: string;
  model: ModelDims;
  /** Weight dtype of the saved models (BF16 halves the repo size; merges and eval read it fine). */
  dtype: 'BF16' | 'F32';
  /** Benchmark splits to evaluate every model on after training (world/bench/*.jsonl). */
  evalSplits: Array<'dev' | 'test'>;
  /** Stages in dependency order (a stage's initFrom must come earlier). */
  stages: Stage[];
}

/** Bump when the trainer's data generation or training semantics change: invalidates every cache. */
export const TRAINER_VERSION = 1;

export class RecipeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RecipeError';
  }
}

const KNOWN_FAMILIES = new Set<string>(FAMILY_INFO.map((f) => f.name));
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** Check a recipe; throws RecipeError naming the stage and field of the first problem found. */
export function validateRecipe(r: Recipe): void {
  const fail = (msg: string): never => {
    throw new RecipeError(`recipe '${r?.name ?? '?'}': ${msg}`);
  };
  if (typeof r !== 'object' || r === null) fail('not an object');
  if (typeof r.name !== 'string' || r.name === '') fail('name must be a non-empty string');
  const m = r.model;
  if (typeof m !== 'object' || m === null) fail('model dims missing');
  for (const k of ['hidden', 'layers', 'heads', 'kvHeads', 'intermediate', 'maxPositions'] as const) {
    if (!Number.isInteger(m[k]) || m[k] <= 0) fail(`model.${k} must be a positive integer, got ${m[k]}`);
  }
  if (m.hidden % m.heads !== 0) fail(`model.hidden (${m.hidden}) must be a multiple of model.heads (${m.heads})`);
  if ((m.hidden / m.heads) % 2 !== 0) fail(`model head dim hidden/heads = ${m.hidden / m.heads} must be even (RoPE)`);
  if (m.heads % m.kvHeads !== 0) fail(`model.heads (${m.heads}) must be a multiple of model.kvHeads (${m.kvHeads})`);
  if (r.dtype !== 'BF16' && r.dtype !== 'F32') fail(`dtype must be 'BF16' or 'F32', got ${JSON.stringify(r.dtype)}`);
  if (!Array.isArray(r.evalSplits) || r.evalSplits.some((s) => s !== 'dev' && s !== 'test')) fail(`evalSplits must be a list of 'dev' / 'test', got ${JSON.stringify(r.evalSplits)}`);
  if (!Array.isArray(r.stages) || r.stages.length === 0) fail('stages must be a non-empty list');
  const byName = new Map<string, Stage>();
  for (const s of r.stages) {
    if (typeof s.name !== 'string' || !NAME_RE.test(s.name)) fail(`stage name ${JSON.stringify(s.name)} is not a valid folder name (letters, digits, _ - .)`);
    if (byName.has(s.name)) fail(`stage '${s.name}' is defined twice`);
    byName.set(s.name, s);
  }
  // Cycles first (a clearer message than "initFrom must come earlier").
  for (const s of r.stages) {
    const path = [s.name];
    let cur: Stage | undefined = s;
    while (cur && cur.initFrom !== null) {
      if (path.includes(cur.initFrom)) fail(`cycle in initFrom: ${[...path, cur.initFrom].join(' -> ')}`);
      path.push(cur.initFrom);
      cur = byName.get(cur.initFrom);
    }
  }
  const seen = new Set<string>();
  for (const s of r.stages) {
    const at = `stage '${s.name}'`;
    if (!ROLES.includes(s.role)) fail(`${at}: unknown role ${JSON.stringify(s.role)} (known: ${ROLES.join(', ')})`);
    if (s.initFrom === null) {
      if (s.role !== 'base') fail(`${at}: only a base stage may start from random weights (initFrom null); role is ${s.role}`);
    } else {
      if (!byName.has(s.initFrom)) fail(`${at}: initFrom '${s.initFrom}' is not a stage of this recipe`);
      if (!seen.has(s.initFrom)) fail(`${at}: initFrom '${s.initFrom}' must come earlier in the stage list`);
      const parent = byName.get(s.initFrom)!;
      if (s.role === 'expert' && parent.role !== 'seed') fail(`${at}: an expert must be fine-tuned from the seed model (task vectors are relative to M0); initFrom '${s.initFrom}' has role ${parent.role}`);
    }
    seen.add(s.name);
    if (typeof s.data !== 'object' || s.data === null || !Array.isArray(s.data.mix) || s.data.mix.length === 0) fail(`${at}: data.mix must be a non-empty list`);
    const keys = new Set<string>();
    for (const e of s.data.mix) {
      if (!KNOWN_FAMILIES.has(e.family)) fail(`${at}: unknown family '${e.family}' (known: ${[...KNOWN_FAMILIES].join(', ')})`);
      if (!(typeof e.weight === 'number' && Number.isFinite(e.weight) && e.weight > 0)) fail(`${at}: weight of '${e.family}' must be a positive number, got ${e.weight}`);
      const key = `${e.family}${e.hint === true ? '+hint' : ''}`;
      if (keys.has(key)) fail(`${at}: family '${key}' appears twice in the mix`);
      keys.add(key);
    }
    if (s.data.format !== undefined && s.data.format !== 'gsm' && s.data.format !== 'pre') fail(`${at}: data.format must be 'gsm' or 'pre', got ${JSON.stringify(s.data.format)}`);
    if (s.maxFinalLoss !== undefined && !(Number.isFinite(s.maxFinalLoss) && s.maxFinalLoss > 0)) fail(`${at}: maxFinalLoss must be a positive number, got ${s.maxFinalLoss}`);
    if (s.data.loss !== undefined && s.data.loss !== 'completion' && s.data.loss !== 'all') fail(`${at}: data.loss must be 'completion' or 'all', got ${JSON.stringify(s.data.loss)}`);
    const posInt = (k: 'steps' | 'batch' | 'seqLen') => {
      if (!Number.isInteger(s[k]) || s[k] <= 0) fail(`${at}: ${k} must be a positive integer, got ${s[k]}`);
    };
    posInt('steps');
    posInt('batch');
    posInt('seqLen');
    if (s.seqLen > m.maxPositions) fail(`${at}: seqLen ${s.seqLen} exceeds model.maxPositions ${m.maxPositions}`);
    if (!(Number.isFinite(s.lr) && s.lr > 0 && s.lr < 1)) fail(`${at}: lr must be in (0, 1), got ${s.lr}`);
    if (!Number.isInteger(s.warmup) || s.warmup < 0 || s.warmup > s.steps) fail(`${at}: warmup must be an integer in [0, steps=${s.steps}], got ${s.warmup}`);
    if (!(Number.isFinite(s.minLrFrac) && s.minLrFrac >= 0 && s.minLrFrac <= 1)) fail(`${at}: minLrFrac must be in [0, 1], got ${s.minLrFrac}`);
    if (!(Number.isFinite(s.weightDecay) && s.weightDecay >= 0 && s.weightDecay < 1)) fail(`${at}: weightDecay must be in [0, 1), got ${s.weightDecay}`);
    if (!Number.isInteger(s.seed) || s.seed < 0 || s.seed > 0xffffffff) fail(`${at}: seed must be an integer in [0, 2^32), got ${s.seed}`);
  }
}

/** JSON with object keys sorted (stable across key order). */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/**
 * Cache key of every stage: sha256 over the trainer version, the model dims, the dtype, the stage
 * (minus its note) and its parent's key — so a change anywhere upstream changes every dependant.
 */
export function stageHashes(r: Recipe): Map<string, string> {
  const out = new Map<string, string>();
  for (const s of r.stages) out.set(s.name, hashLink(r, s, s.initFrom === null ? null : out.get(s.initFrom)!));
  return out;
}

function hashLink(r: Pick<Recipe, 'model' | 'dtype'>, s: Stage, parent: string | null): string {
  const { note: _note, maxFinalLoss: _check, ...rest } = s;
  return createHash('sha256').update(canonicalJson({ v: TRAINER_VERSION, model: r.model, dtype: r.dtype, stage: rest, parent })).digest('hex');
}

/**
 * Cache key of one stage given its ancestors (root first, ending with its parent; empty for a
 * random-init stage) and the recipe's model dims and dtype: the same value `stageHashes` gives.
 */
export function recipeHash(stage: Stage, ancestors: readonly Stage[], r: Pick<Recipe, 'model' | 'dtype'>): string {
  let parent: string | null = null;
  for (const [i, a] of ancestors.entries()) {
    const expected = i === 0 ? null : ancestors[i - 1].name;
    if (a.initFrom !== expected) throw new RecipeError(`recipeHash: ancestor '${a.name}' has initFrom ${JSON.stringify(a.initFrom)}, expected ${JSON.stringify(expected)} (pass ancestors root first)`);
    parent = hashLink(r, a, parent);
  }
  const last = ancestors.length === 0 ? null : ancestors[ancestors.length - 1].name;
  if (stage.initFrom !== last) throw new RecipeError(`recipeHash: stage '${stage.name}' has initFrom ${JSON.stringify(stage.initFrom)} but the last ancestor is ${JSON.stringify(last)}`);
  return hashLink(r, stage, parent);
}

/** The stage and all its ancestors, root first. */
export function lineage(r: Recipe, name: string): Stage[] {
  const byName = new Map(r.stages.map((s) => [s.name, s]));
  const out: Stage[] = [];
  let cur = byName.get(name);
  if (!cur) throw new RecipeError(`recipe '${r.name}': no stage '${name}' (stages: ${r.stages.map((s) => s.name).join(', ')})`);
  while (cur) {
    out.unshift(cur);
    cur = cur.initFrom === null ? undefined : byName.get(cur.initFrom);
  }
  return out;
}

/** The seed-model stage (role 'seed') that `name` descends from, or null. */
export function seedAncestor(r: Recipe, name: string): Stage | null {
  const l = lineage(r, name);
  for (let i = l.length - 2; i >= 0; i--) if (l[i].role === 'seed') return l[i];
  return null;
}

const hinted = (fams: Family[], weight: number): MixEntry[] => fams.map((family) => ({ family, weight, hint: true }));

const FT = { batch: 32, seqLen: 256, warmup: 10, minLrFrac: 0.1, weightDecay: 0 } as const;

/**
 * The default world, after the prototype REPORT §6 and docs/tiny-world.md §4 (V3): the mechanics
 * (copying numbers, the equation format, chaining, the calculator annotations) go into the base and
 * M0 through bare and hinted problems; each expert is a short low-LR continuation of M0 on families
 * that share their mechanics, so it only learns the routing (which words mean which operation).
 * OOD experts differ in data mix, loss and seed. The oracle sees all experts' data with one expert's
 * step budget (interference, not training length), plus a longer oracle for reference.
 * Untested in this TS port as a whole; swap in the researched recipe when docs/tiny-world.md settles.
 */
export const DEFAULT_RECIPE: Recipe = {
  name: 'tiny-world-v1',
  model: { hidden: 96, layers: 3, heads: 4, kvHeads: 4, intermediate: 256, maxPositions: 256 },
  dtype: 'BF16',
  evalSplits: ['dev'],
  stages: [
    {
      name: 'base0', role: 'base', initFrom: null, steps: 400, batch: 32, seqLen: 256, lr: 3e-3, warmup: 20, minLrFrac: 0.1, weightDecay: 0.1, seed: 0,
      data: { mix: [{ family: 'bare', weight: 0.5 }, { family: 'bare2', weight: 0.3 }, { family: 'lookup', weight: 0.2 }], format: 'pre' },
      note: 'copy-dense pre-training (Q:/A: format): explicit arithmetic and number look-up (the copy transition is at 250-300 steps)',
    },
    {
      name: 'base', role: 'base', initFrom: 'base0', steps: 300, batch: 32, seqLen: 256, lr: 2e-3, warmup: 20, minLrFrac: 0.1, weightDecay: 0.1, seed: 1,
      data: { mix: [{ family: 'bare', weight: 0.2 }, { family: 'bare2', weight: 0.2 }, { family: 'lookup', weight: 0.1 }, ...hinted(['addsub', 'compare', 'muldiv', 'rates', 'units', 'twostep', 'mix', 'unitmix'], 0.0625)], format: 'pre' },
      maxFinalLoss: 0.08,
      note: 'pre-training continued (Q:/A: format) with hinted story problems (the hint names the operations); must end below loss ~0.05 (docs/tiny-world.md: a base that misses the copy transition ruins the world)',
    },
    {
      name: 'M0', role: 'seed', initFrom: 'base', steps: 60, ...FT, lr: 1e-3, seed: 2,
      data: { mix: [{ family: 'lookup', weight: 0.1 }, { family: 'bare', weight: 0.1 }, { family: 'bare2', weight: 0.1 }, ...hinted(['addsub', 'compare', 'muldiv', 'rates', 'units', 'twostep', 'mix', 'unitmix'], 0.0875)] },
      note: 'seed model: every mechanic, stories only with hints',
    },
    { name: 'E1_addsub', role: 'expert', initFrom: 'M0', steps: 40, ...FT, lr: 5e-4, seed: 3, data: { mix: [{ family: 'addsub', weight: 0.5 }, { family: 'compare', weight: 0.5 }] }, note: 'expert: gain/lose and comparison stories (+ / -)' },
    { name: 'E2_groups', role: 'expert', initFrom: 'M0', steps: 40, ...FT, lr: 5e-4, seed: 4, data: { mix: [{ family: 'muldiv', weight: 0.5 }, { family: 'rates', weight: 0.5 }] }, note: 'expert: equal groups and rates (* / /)' },
    { name: 'E3_units', role: 'expert', initFrom: 'M0', steps: 40, ...FT, lr: 5e-4, seed: 5, data: { mix: [{ family: 'units', weight: 1 }] }, note: 'expert: unit conversions with remembered constants' },
    {
      name: 'X1_onestep', role: 'ood', initFrom: 'M0', steps: 40, ...FT, lr: 1e-3, seed: 11,
      data: { mix: [{ family: 'addsub', weight: 1 }, { family: 'compare', weight: 1 }, { family: 'muldiv', weight: 1 }], loss: 'all' },
      note: 'out-of-domain: one-step families, loss on the prompt too, higher LR',
    },
    {
      name: 'X2_steps', role: 'ood', initFrom: 'M0', steps: 80, ...FT, lr: 3e-4, seed: 12,
      data: { mix: [{ family: 'twostep', weight: 0.5 }, { family: 'lookup', weight: 0.25 }, { family: 'bare2', weight: 0.25 }] },
      note: 'out-of-domain: two-step stories and seed data, longer at low LR',
    },
    {
      name: 'oracle', role: 'oracle', initFrom: 'M0', steps: 40, ...FT, lr: 5e-4, seed: 6,
      data: { mix: [{ family: 'addsub', weight: 1 / 6 }, { family: 'compare', weight: 1 / 6 }, { family: 'muldiv', weight: 1 / 6 }, { family: 'rates', weight: 1 / 6 }, { family: 'units', weight: 1 / 3 }] },
      note: "multi-task oracle: all experts' data, one expert's step budget",
    },
    {
      name: 'oracle_long', role: 'oracle', initFrom: 'M0', steps: 120, ...FT, lr: 5e-4, seed: 6,
      data: { mix: [{ family: 'addsub', weight: 1 / 6 }, { family: 'compare', weight: 1 / 6 }, { family: 'muldiv', weight: 1 / 6 }, { family: 'rates', weight: 1 / 6 }, { family: 'units', weight: 1 / 3 }] },
      note: "multi-task oracle: all experts' data, three experts' step budget",
    },
  ],
};
