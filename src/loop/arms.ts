/**
 * Control arms (strategies that produce programs without a trained factory).
 *
 * `CorpusSampler` is the random-search control: it draws programs from the seed corpus generator
 * (src/factory/corpus.ts, human-style algorithms) and from the human algorithms in `algorithms/`
 * with seeded mutations of their numeric constants. Fully determined by the sampling seed.
 *
 * `EvolutionSampler` is the evolutionary control (no DPO, no factory training): children of the
 * best programs so far by dev score, made by source-level operators — constant perturbation,
 * adding/removing a modifier (kind-dependent scale, layer schedule, clamping, strength), swapping a
 * same-named helper between parents, crossover (one parent's merge with the other's helpers and
 * constants) and blending two parents' outputs. Children only pass a syntax check here; they go
 * through the sandbox cascade like any program.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Script } from 'node:vm';
import { generateProgram } from '../factory/index.ts';
import type { AlgorithmFactory, Candidate, FactoryPrompt, SampleOptions } from '../factory/index.ts';
import { Rng } from '../nn/index.ts';
import type { RunStore } from '../store/store.ts';
import { screenScoreIn } from './selection.ts';

/** Multiplies every decimal constant of `code` by a seeded factor in [1 − s, 1 + s] (s = 0.5·temperature). */
export function mutateConstants(code: string, rng: Rng, temperature: number): string {
  const s = Math.min(0.9, 0.5 * temperature);
  return code.replace(/(?<![\w.])(\d+\.\d+)(?![\w.])/g, (m) => {
    const v = Number(m) * (1 + s * (2 * rng.next() - 1));
    return String(Math.round(v * 1000) / 1000);
  });
}

export class CorpusSampler implements AlgorithmFactory {
  readonly name = 'corpus';
  private readonly human: { name: string; code: string }[];
  constructor(algorithmsDir: string) {
    this.human = readdirSync(algorithmsDir)
      .filter((f) => f.endsWith('.js'))
      .sort()
      .map((f) => ({ name: f, code: readFileSync(join(algorithmsDir, f), 'utf8') }));
  }

  sample(_prompt: FactoryPrompt, n: number, opts: SampleOptions): Promise<Candidate[]> {
    const out: Candidate[] = [];
    for (let i = 0; i < n; i++) {
      const rng = new Rng((opts.seed + i) >>> 0);
      const t0 = performance.now();
      let code: string;
      if (this.human.length > 0 && rng.next() < 0.3) {
        const h = this.human[Math.floor(rng.next() * this.human.length)]!;
        code = mutateConstants(h.code, rng, opts.temperature);
      } else {
        code = generateProgram((opts.seed * 7919 + i * 104729) >>> 0).code;
      }
      out.push({ code, raw: code, ms: performance.now() - t0 });
    }
    return Promise.resolve(out);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

// ------------------------------------------------------------------------------ evolution arm

/** True when `code` compiles as a script (syntax only: nothing runs) and declares `function merge`. */
export function parses(code: string): boolean {
  if (!/\bfunction\s+merge\s*\(/.test(code)) return false;
  try {
    new Script(code);
    return true;
  } catch {
    return false;
  }
}

/** One top-level statement of a program: a function declaration, a variable declaration, or anything else (comments included in the text). */
export interface TopItem {
  kind: 'function' | 'decl' | 'other';
  name: string | null;
  text: string;
}

/**
 * Splits a program into its top-level statements by scanning brackets, strings and comments
 * (not a full parser: regex literals are not recognised). Leading comments belong to the next
 * statement. Null when the brackets do not balance.
 */
export function splitTopLevel(code: string): TopItem[] | null {
  const items: TopItem[] = [];
  let depth = 0;
  let start = -1; // start of the current item (-1: between items)
  let i = 0;
  const classify = (text: string): TopItem => {
    const body = text.replace(/^(\s*(\/\/[^\n]*|\/\*[\s\S]*?\*\/))*\s*/, '');
    let m = /^(?:async\s+)?function\s*\*?\s*([A-Za-z_$][\w$]*)/.exec(body);
    if (m) return { kind: 'function', name: m[1]!, text };
    m = /^(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*=/.exec(body);
    if (m) return { kind: 'decl', name: m[1]!, text };
    return { kind: 'other', name: null, text };
  };
  const end = (to: number) => {
    items.push(classify(code.slice(start, to)));
    start = -1;
  };
  while (i < code.length) {
    const c = code[i]!;
    if (start < 0 && /\s/.test(c)) {
      i++;
      continue;
    }
    if (start < 0) start = i;
    if (c === '/' && code[i + 1] === '/') {
      const nl = code.indexOf('\n', i);
      i = nl < 0 ? code.length : nl + 1;
      continue;
    }
    if (c === '/' && code[i + 1] === '*') {
      const e = code.indexOf('*/', i + 2);
      if (e < 0) return null;
      i = e + 2;
      continue;
    }
    if (c === '"' || c === "'" || c === '`') {
      let j = i + 1;
      while (j < code.length && code[j] !== c) j += code[j] === '\\' ? 2 : 1;
      if (j >= code.length) return null;
      i = j + 1;
      continue;
    }
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') {
      depth--;
      if (depth < 0) return null;
      if (depth === 0 && c === '}' && classify(code.slice(start, i + 1)).kind === 'function') {
        // a function declaration ends at its closing brace (unless it is an expression statement)
        i++;
        end(i);
        continue;
      }
    } else if (c === ';' && depth === 0) {
      i++;
      end(i);
      continue;
    }
    i++;
  }
  if (depth !== 0) return null;
  if (start >= 0) end(code.length);
  return items;
}

const join2 = (items: TopItem[]): string => items.map((x) => x.text.trim()).join('\n\n') + '\n';

/** Rounds to 3 significant digits (keeps mutated constants readable). */
function sig3(v: number): number {
  if (v === 0) return 0;
  const p = Math.pow(10, 2 - Math.floor(Math.log10(Math.abs(v))));
  return Math.round(v * p) / p;
}

/** Index of the final `return EXPR;` of a function text (depth 1 inside its body), with EXPR's span; null if the body does not end with one. */
function finalReturn(fnText: string): { at: number; exprStart: number; exprEnd: number } | null {
  const close = fnText.lastIndexOf('}');
  const before = fnText.slice(0, close).trimEnd();
  if (!before.endsWith(';')) return null;
  const m = /\breturn\s+/g;
  let last: RegExpExecArray | null = null;
  for (let r = m.exec(before); r; r = m.exec(before)) last = r;
  if (!last) return null;
  const expr = before.slice(last.index + last[0].length, before.length - 1);
  // the expression must be balanced and hold no statement separator (then it is the last statement)
  let d = 0;
  for (const ch of expr) {
    if ('([{'.includes(ch)) d++;
    else if (')]}'.includes(ch)) d--;
    if (d < 0) return null;
    if (ch === ';' && d === 0) return null;
  }
  if (d !== 0) return null;
  return { at: last.index, exprStart: last.index + last[0].length, exprEnd: before.length - 1 };
}

export type MutationOp = 'constants' | 'modifier-add' | 'modifier-remove' | 'swap-helper' | 'crossover' | 'blend';
export const MUTATION_OPS: readonly MutationOp[] = ['constants', 'modifier-add', 'modifier-remove', 'swap-helper', 'crossover', 'blend'];
/** Relative frequency of each operator. */
const OP_WEIGHTS: Record<MutationOp, number> = { constants: 4, 'modifier-add': 2, 'modifier-remove': 1, 'swap-helper': 1, crossover: 1.5, blend: 0.5 };

const NUM_RE = /(?<![\w$.])(\d+\.\d+(?:e-?\d+)?|\d+e-?\d+)(?![\w$.])/g;
const INT_DECL_RE = /(\bconst\s+[A-Za-z_$][\w$]*\s*=\s*)(\d+)(\s*;)/g;

/**
 * Perturbs 1–3 numeric constants (decimal literals anywhere, integer literals only as the whole
 * initialiser of a const — never loop indices) by a log-normal factor of spread 0.35·temperature; values in (0, 1)
 * stay in (0, 1) (they are usually fractions: densities, quantiles, interpolation weights).
 */
export function perturbConstants(code: string, rng: Rng, temperature: number): string | null {
  const spots: { start: number; end: number; value: number; prefix: string; suffix: string }[] = [];
  for (const m of code.matchAll(NUM_RE)) spots.push({ start: m.index, end: m.index + m[0].length, value: Number(m[0]), prefix: '', suffix: '' });
  for (const m of code.matchAll(INT_DECL_RE)) {
    const s = m.index + m[1]!.length;
    spots.push({ start: s, end: s + m[2]!.length, value: Number(m[2]), prefix: '', suffix: '' });
  }
  const live = spots.filter((s) => s.value !== 0 && !(s.value < 1e-3)); // leave epsilons (1e-12) alone
  if (live.length === 0) return null;
  live.sort((a, b) => a.start - b.start);
  const k = Math.min(live.length, 1 + rng.int(3));
  const chosen = new Set<number>();
  while (chosen.size < k) chosen.add(rng.int(live.length));
  const sigma = 0.35 * Math.max(0.2, temperature);
  let out = code;
  for (const idx of [...chosen].sort((a, b) => b - a)) {
    const s = live[idx]!;
    let v = s.value * Math.exp(sigma * rng.normal());
    if (s.value < 1) v = Math.min(0.99, Math.max(0.01, v));
    v = sig3(v);
    if (v === s.value) v = sig3(s.value * (rng.next() < 0.5 ? 0.9 : 1.1));
    const lit = Number.isInteger(v) && s.value < 1 ? v.toFixed(1) : String(v);
    out = out.slice(0, s.start) + lit + out.slice(s.end);
  }
  return out;
}

const EVO_LAYER = `function evoLayer(ctx, lo, hi) {
  if (ctx.layer === null || ctx.numLayers <= 1) {
    return 1;
  }
  return lo + ((hi - lo) * ctx.layer) / (ctx.numLayers - 1);
}`;
const EVO_CLAMP = `function evoClamp(x, q) {
  const cap = x.abs().quantile(q).item();
  return x.clamp(-cap, cap);
}`;

function mergeIndex(items: TopItem[]): number {
  return items.findIndex((x) => x.kind === 'function' && x.name === 'merge');
}

/** Adds a modifier to the final return of merge: a kind-dependent scale, a linear layer schedule, outlier clamping or a global strength. */
export function addModifier(code: string, rng: Rng): string | null {
  const items = splitTopLevel(code);
  if (!items) return null;
  const mi = mergeIndex(items);
  if (mi < 0) return null;
  const fn = items[mi]!.text;
  const ret = finalReturn(fn);
  if (!ret) return null;
  const expr = fn.slice(ret.exprStart, ret.exprEnd).trim();
  const r2 = (lo: number, hi: number) => sig3(lo + (hi - lo) * rng.next());
  const names = new Set(items.map((x) => x.name));
  let wrapped: string;
  let helper: { name: string; text: string } | null = null;
  switch (rng.int(4)) {
    case 0: {
      const kinds = ['attention', 'mlp'];
      wrapped = `(${expr}).mul(ctx.kind === '${kinds[rng.int(2)]}' ? ${r2(0.2, 1.5)} : ${r2(0.5, 1.5)})`;
      break;
    }
    case 1:
      wrapped = `(${expr}).mul(evoLayer(ctx, ${r2(0.2, 1.5)}, ${r2(0.2, 1.5)}))`;
      if (!names.has('evoLayer')) helper = { name: 'evoLayer', text: EVO_LAYER };
      break;
    case 2:
      wrapped = `evoClamp(${expr}, ${r2(0.8, 0.995)})`;
      if (!names.has('evoClamp')) helper = { name: 'evoClamp', text: EVO_CLAMP };
      break;
    default:
      wrapped = `(${expr}).mul(${r2(0.5, 2)})`;
  }
  const next = [...items];
  next[mi] = { ...items[mi]!, text: fn.slice(0, ret.exprStart) + wrapped + fn.slice(ret.exprEnd) };
  if (helper) next.splice(mi, 0, { kind: 'function', ...helper });
  return join2(next);
}

/** Removes one modifier: a whole-line self-update `v = v.mul|div|clamp(…);` inside merge, or a `.mul(…)` added by addModifier. */
export function removeModifier(code: string, rng: Rng): string | null {
  const items = splitTopLevel(code);
  if (!items) return null;
  const mi = mergeIndex(items);
  if (mi < 0) return null;
  const fn = items[mi]!.text;
  const spots: [number, number][] = [];
  const lineRe = /^[ \t]*([A-Za-z_$][\w$]*) = \1\.(?:mul|div|clamp)\((.*)\);[ \t]*\n/gm;
  for (const m of fn.matchAll(lineRe)) {
    const inner = m[2]!;
    let d = 0;
    let ok = true;
    for (const ch of inner) {
      if (ch === '(') d++;
      else if (ch === ')') d--;
      if (d < 0) ok = false;
    }
    if (ok && d === 0) spots.push([m.index, m.index + m[0].length]);
  }
  for (const m of fn.matchAll(/\.mul\((?:evoLayer\(ctx, [\d.e-]+, [\d.e-]+\)|ctx\.kind === '\w+' \? [\d.e-]+ : [\d.e-]+)\)/g)) spots.push([m.index, m.index + m[0].length]);
  if (spots.length === 0) return null;
  const [a, b] = spots[rng.int(spots.length)]!;
  const next = [...items];
  next[mi] = { ...items[mi]!, text: fn.slice(0, a) + fn.slice(b) };
  return join2(next);
}

/** Replaces a helper (function or constant, not merge/prepare) of `a` with the same-named one of `b` when they differ. */
export function swapHelper(a: string, b: string, rng: Rng): string | null {
  const ia = splitTopLevel(a);
  const ib = splitTopLevel(b);
  if (!ia || !ib) return null;
  const shared = ia.flatMap((x, k) => {
    if (x.kind === 'other' || x.name === 'merge' || x.name === 'prepare') return [];
    const y = ib.find((z) => z.kind === x.kind && z.name === x.name);
    return y && y.text.trim() !== x.text.trim() ? [{ k, y }] : [];
  });
  if (shared.length === 0) return null;
  const pick = shared[rng.int(shared.length)]!;
  const next = [...ia];
  next[pick.k] = pick.y;
  return join2(next);
}

/**
 * Crossover: parent b's merge (and prepare) with parent a's helpers and constants; b's helpers
 * that a lacks come along. Same-named constants keep a's values, so b's procedure runs with a's settings.
 */
export function crossover(a: string, b: string): string | null {
  const ia = splitTopLevel(a);
  const ib = splitTopLevel(b);
  if (!ia || !ib || mergeIndex(ib) < 0) return null;
  const entry = (x: TopItem) => x.kind === 'function' && (x.name === 'merge' || x.name === 'prepare');
  const keepA = ia.filter((x) => !entry(x));
  const names = new Set<string | null>(keepA.map((x) => x.name).filter((n) => n !== null));
  const fromB = ib.filter((x) => x.kind !== 'other' && !entry(x) && !names.has(x.name));
  const out = join2([...keepA, ...fromB, ...ib.filter(entry)]);
  return out.trim() === a.trim() || out.trim() === b.trim() ? null : out;
}

/** Blend: a new merge returning w·merge_a + (1 − w)·merge_b, each parent kept whole in its own function scope. Parents with prepare are not blended. */
export function blend(a: string, b: string, rng: Rng, maxChars = 6000): string | null {
  if (a.length + b.length > maxChars) return null;
  if (/\bfunction\s+prepare\s*\(/.test(a) || /\bfunction\s+prepare\s*\(/.test(b)) return null;
  const w = sig3(0.2 + 0.6 * rng.next());
  let k = 1;
  while (a.includes(`evoParentA${k}`) || b.includes(`evoParentA${k}`)) k++;
  const wrap = (name: string, code: string) => `const ${name} = (() => {\n${code.trim()}\n\nreturn merge;\n})();`;
  return `${wrap(`evoParentA${k}`, a)}\n\n${wrap(`evoParentB${k}`, b)}\n\nfunction merge(taskVectors, ctx) {\n  return evoParentA${k}(taskVectors, ctx).mul(${w}).add(evoParentB${k}(taskVectors, ctx).mul(${sig3(1 - w)}));\n}\n`;
}

/** Applies one operator; null when it does not apply to these parents. */
export function applyMutation(op: MutationOp, a: string, b: string, rng: Rng, temperature: number): string | null {
  switch (op) {
    case 'constants':
      return perturbConstants(a, rng, temperature);
    case 'modifier-add':
      return addModifier(a, rng);
    case 'modifier-remove':
      return removeModifier(a, rng);
    case 'swap-helper':
      return swapHelper(a, b, rng);
    case 'crossover':
      return crossover(a, b);
    case 'blend':
      return blend(a, b, rng);
  }
}

function pickOp(rng: Rng): MutationOp {
  const total = MUTATION_OPS.reduce((s, o) => s + OP_WEIGHTS[o], 0);
  let u = rng.next() * total;
  for (const o of MUTATION_OPS) {
    u -= OP_WEIGHTS[o];
    if (u < 0) return o;
  }
  return 'constants';
}

export interface Parent {
  hash: string;
  code: string;
  score: number;
}

export interface Offspring {
  code: string;
  op: MutationOp;
  parents: string[];
  /** Operator attempts that did not apply or did not parse before this one. */
  retries: number;
}

/**
 * One child from the parent pool (sorted best first): parents by rank-biased tournament (2 draws,
 * the better wins), an operator by weight; an operator that does not apply, does not parse (syntax
 * check only) or reproduces a parent or a sibling (`siblings`: trimmed codes) is retried (at most `maxTries`); the last resort is a constant
 * perturbation of the best parent. Deterministic in `rng`.
 */
export function makeOffspring(pool: readonly Parent[], rng: Rng, temperature: number, maxTries = 6, siblings: ReadonlySet<string> = new Set()): Offspring {
  if (pool.length === 0) throw new Error('evolution: empty parent pool');
  const pick = () => Math.min(rng.int(pool.length), rng.int(pool.length));
  const known = new Set([...pool.map((p) => p.code.trim()), ...siblings]);
  for (let tries = 0; tries < maxTries; tries++) {
    const ia = pick();
    let ib = pick();
    if (pool.length > 1 && ib === ia) ib = (ia + 1 + rng.int(pool.length - 1)) % pool.length;
    const op = pickOp(rng);
    const a = pool[ia]!;
    const b = pool[ib]!;
    const code = applyMutation(op, a.code, b.code, rng, temperature);
    if (code !== null && !known.has(code.trim()) && parses(code)) return { code, op, parents: op === 'constants' || op.startsWith('modifier') ? [a.hash] : [a.hash, b.hash], retries: tries };
  }
  const best = pool[0]!;
  return { code: perturbConstants(best.code, rng, temperature) ?? mutateConstants(best.code, rng, Math.max(1, temperature)), op: 'constants', parents: [best.hash], retries: maxTries };
}

/**
 * The evolution control arm for iterations ≥ 2: N children of the top programs so far (by dev
 * score), no factory and no training. Sample i uses the generator seeded with `seed + i`, like the
 * other factories; a child that repeats an earlier sibling is retried, so the batch has few duplicates.
 */
export class EvolutionSampler implements AlgorithmFactory {
  readonly name = 'evolution';
  /** Per sampled child: the operator and parent hashes (same order as the last sample() result). */
  lastLineage: Offspring[] = [];
  constructor(private readonly pool: readonly Parent[]) {
    if (pool.length === 0) throw new Error('evolution: no valid program to mutate yet');
  }

  sample(_prompt: FactoryPrompt, n: number, opts: SampleOptions): Promise<Candidate[]> {
    this.lastLineage = [];
    const out: Candidate[] = [];
    const siblings = new Set<string>();
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const child = makeOffspring(this.pool, new Rng((opts.seed + i) >>> 0), opts.temperature, 6, siblings);
      siblings.add(child.code.trim());
      this.lastLineage.push(child);
      out.push({ code: child.code, raw: `/* evolution: ${child.op} of ${child.parents.map((h) => h.slice(0, 12)).join(' + ')} */\n${child.code}`, ms: performance.now() - t0 });
    }
    return Promise.resolve(out);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Number of parents the evolution arm draws from. */
export const EVOLUTION_POOL = 8;

/** The top `k` distinct valid programs of `arm` so far, best first by dev in the run's ranking metric (full dev when measured, else the subset score). */
export function evolutionPool(store: RunStore, arm: string, k = EVOLUTION_POOL): Parent[] {
  const metric = store.rankMetric();
  return store.leaderboard(k, { arm }).map((r) => ({ hash: r.hash, code: r.code, score: screenScoreIn(r, metric) ?? 0 }));
}

/** Step (4) for the control arms: no training. The pairs are still exported (for inspection) and the skip is recorded. */
export function skipTraining(arm: string, runDir: string, t: number, iterationId: number, store: RunStore): { checkpoint: null; timings: Record<string, number> } {
  const nPairs = store.exportPairsJsonl(iterationId, join(runDir, 'pairs', `iter-${t}.jsonl`));
  mkdirSync(join(runDir, 'pairs'), { recursive: true });
  writeFileSync(join(runDir, 'pairs', `iter-${t}.skipped`), `control arm ${arm}: no DPO\n`);
  return { checkpoint: null, timings: { dpoSkipped: 1, pairs: nPairs } };
}
