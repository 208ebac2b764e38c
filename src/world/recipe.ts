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
import { FAMILY_INFO } from './problems.ts';
import type { Family } from './problems.ts';
import type { TensorKind } from '../sandbox/types.ts';

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
  /**
   * Two-step families only: only this step's line is a loss target (step 2: with the final `#### N`
   * line); the other step's line is context the model reads but is not trained to write. An expert
   * learns its own decision inside a composite story without learning the other expert's.
   */
  step?: 1 | 2;
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
  /**
   * Self-distilled contrast: this share of the stage's `steps × batch` examples are un-hinted stories
   * of `families` whose targets are the parent model's own greedy answers (calculator on), i.e.
   * "behave like your parent elsewhere"; the rest come from `mix`. Shuffled together.
   */
  distill?: { families: Family[]; share: number };
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
  /**
   * Tensor kinds that are trained (default: all). With ['mlp'] the task vector of the stage is zero
   * outside the MLP tensors, so a merge of MLP tensors carries the whole skill.
   */
  trainable?: TensorKind[];
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
/** 2: training streams also exclude the `select` split; `trainable` and `data.distill`. */
export const TRAINER_VERSION = 2;

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
      if (e.step !== undefined) {
        if (e.step !== 1 && e.step !== 2) fail(`${at}: step of '${e.family}' must be 1 or 2, got ${JSON.stringify(e.step)}`);
        if (FAMILY_INFO.find((f) => f.name === e.family)!.steps !== 2) fail(`${at}: step ${e.step} of '${e.family}': only two-step families have steps to choose`);
        if (e.hint === true) fail(`${at}: '${e.family}' has both hint and step (a hinted story names both operations)`);
        if ((s.data.format ?? 'gsm') !== 'gsm' || s.data.loss === 'all') fail(`${at}: step targets need the gsm format with loss on the completion`);
      }
      const key = `${e.family}${e.hint === true ? '+hint' : ''}${e.step !== undefined ? `+step${e.step}` : ''}`;
      if (keys.has(key)) fail(`${at}: family '${key}' appears twice in the mix`);
      keys.add(key);
    }
    const d = s.data.distill;
    if (d !== undefined) {
      if (typeof d !== 'object' || d === null || !Array.isArray(d.families) || d.families.length === 0) fail(`${at}: data.distill.families must be a non-empty list`);
      for (const f of d.families) if (!KNOWN_FAMILIES.has(f)) fail(`${at}: unknown distill family '${f}' (known: ${[...KNOWN_FAMILIES].join(', ')})`);
      if (!(typeof d.share === 'number' && d.share > 0 && d.share < 1)) fail(`${at}: data.distill.share must be in (0, 1), got ${d.share}`);
      if (s.initFrom === null) fail(`${at}: data.distill needs a parent model (initFrom) to answer the distilled stories`);
    }
    if (s.trainable !== undefined) {
      const kinds: readonly string[] = ['attention', 'mlp', 'embedding', 'norm', 'other'];
      if (!Array.isArray(s.trainable) || s.trainable.length === 0 || s.trainable.some((k) => !kinds.includes(k))) fail(`${at}: trainable must be a non-empty list of tensor kinds (${kinds.join(', ')}), got ${JSON.stringify(s.trainable)}`);
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
const IN_DOMAIN: Family[] = ['addsub', 'compare', 'muldiv', 'rates', 'units'];
const others = (own: Family[]): Family[] => IN_DOMAIN.filter((f) => !own.includes(f));
const even = (fams: Family[]): MixEntry[] => fams.map((family) => ({ family, weight: 1 / fams.length }));

/**
 * A skill expert of world v2: MLP tensors only (so M0 + τ_i on the MLP tensors is exactly E_i), its
 * own families for half of `steps × 32` examples, and self-distilled contrast for the other half
 * (stories of the other in-domain families answered by M0 itself: "behave like M0 elsewhere", which
 * removes the unconditional operator prior experts learn from their own families alone). Measured in
 * ../shared/findings/world-probe.md §6 (recipe V1) and again in docs/tiny-world.md.
 */
function skillExpert(name: string, role: 'expert' | 'ood', own: Family[], seed: number, o: { steps?: number; lr?: number; share?: number; note: string }): Stage {
  return {
    name, role, initFrom: 'M0', steps: o.steps ?? 80, ...FT, lr: o.lr ?? 1e-3, seed, trainable: ['mlp'],
    data: { mix: even(own), distill: { families: others(own), share: o.share ?? 0.5 } },
    note: o.note,
  };
}

/**
 * The default world (v2). Base, base and M0 as in v1 (docs/tiny-world.md §4: the mechanics — copying
 * numbers, the equation format, chaining, the calculator annotations — go into the base and M0 through
 * bare and hinted problems). Experts and OOD experts are `skillExpert`s; the OOD experts split the
 * same skills differently, with other seeds, learning rate and contrast share. The oracle sees every
 * in-domain family with one expert's budget and the same trainable tensors (interference, not
 * training length or capacity), plus a 3×-budget oracle for reference.
 */
export const DEFAULT_RECIPE: Recipe = {
  name: 'tiny-world-v2',
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
    skillExpert('E1_addsub', 'expert', ['addsub', 'compare'], 3, { note: 'expert: gain/lose and comparison stories (+ / -); MLP only; half self-distilled contrast' }),
    skillExpert('E2_groups', 'expert', ['muldiv', 'rates'], 4, { note: 'expert: equal groups and rates (* / /); MLP only; half self-distilled contrast' }),
    // unit constants are knowledge and learned slowest: 1.5x the steps, a third contrast (units 24 -> 36 % dev, TA +2 test on seed 0)
    skillExpert('E3_units', 'expert', ['units'], 5, { steps: 120, share: 1 / 3, note: 'expert: unit conversions with remembered constants; MLP only; a third self-distilled contrast, 120 steps' }),
    skillExpert('X1_gainsgroups', 'ood', ['addsub', 'muldiv'], 11, { lr: 8e-4, share: 0.4, note: 'out-of-domain: gain/lose and equal-group stories (another split of the skills), lr 8e-4, 40 % contrast' }),
    skillExpert('X2_comparerates', 'ood', ['compare', 'rates'], 12, { lr: 8e-4, share: 0.4, note: 'out-of-domain: comparison and rate stories, lr 8e-4, 40 % contrast' }),
    {
      name: 'oracle', role: 'oracle', initFrom: 'M0', steps: 80, ...FT, lr: 1e-3, seed: 6, trainable: ['mlp'],
      data: { mix: [{ family: 'addsub', weight: 1 / 6 }, { family: 'compare', weight: 1 / 6 }, { family: 'muldiv', weight: 1 / 6 }, { family: 'rates', weight: 1 / 6 }, { family: 'units', weight: 1 / 3 }] },
      note: "multi-task oracle: all experts' families, one expert's step budget, MLP only",
    },
    {
      name: 'oracle_long', role: 'oracle', initFrom: 'M0', steps: 240, ...FT, lr: 1e-3, seed: 6, trainable: ['mlp'],
      data: { mix: [{ family: 'addsub', weight: 1 / 6 }, { family: 'compare', weight: 1 / 6 }, { family: 'muldiv', weight: 1 / 6 }, { family: 'rates', weight: 1 / 6 }, { family: 'units', weight: 1 / 3 }] },
      note: "multi-task oracle: all experts' families, three experts' step budget, MLP only",
    },
  ],
};

/**
 * The same recipe with other training seeds: every stage whose role is in `roles` (default: all)
 * has its seed moved by 1000·k (k = 0 returns the recipe unchanged). `k` replicates of the experts
 * from one shared M0: roles ['expert', 'ood', 'oracle']; a second world: all roles.
 */
export function withSeedOffset(r: Recipe, k: number, roles: readonly Role[] = ROLES): Recipe {
  if (!Number.isInteger(k) || k < 0) throw new RecipeError(`seed offset must be a non-negative integer, got ${k}`);
  for (const role of roles) if (!ROLES.includes(role)) throw new RecipeError(`seed offset: unknown role '${role}' (known: ${ROLES.join(', ')})`);
  if (k === 0) return r;
  return {
    ...r,
    name: `${r.name}-seeds+${k}${roles.length === ROLES.length ? '' : `(${roles.join(',')})`}`,
    stages: r.stages.map((s) => (roles.includes(s.role) ? { ...s, seed: s.seed + 1000 * k } : s)),
  };
}
