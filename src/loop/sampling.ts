/**
 * Sampling for the two DPO variants (config.ts, `Arm`).
 *
 * Measured on the DPO arm (docs/world-v2.md, "Why DPO does not beat random"): after two rounds of
 * DPO the builtin factory draws the programs it was trained to prefer again and again (iteration 3
 * of `npm start`: 48 samples, 12 distinct programs), so most of the iteration's evaluation budget
 * re-scores known programs and the best program cannot move past iteration 1's. The evolution control
 * never spends budget on a repeat (a child equal to a parent or a sibling is retried).
 *
 * - `sampleNovel` gives a DPO arm the same rule: draw rounds of samples until the iteration holds
 *   `n` programs that the arm has never drawn before (or `maxRounds` rounds were drawn).
 * - `mutationDraw` makes the factory the mutation operator: each group of samples continues a
 *   prefix of one parent (rank-biased pick among the best programs so far), cut at a random
 *   statement boundary between 30 % and 90 % of its lines, so the factory rewrites the parent's
 *   tail. The prefix is the prompt's `continuation`, which a backend that keeps only the prompt's
 *   last tokens keeps whole. (The first version cut anywhere and let the builtin factory see only
 *   the prefix's last 20 tokens: after one DPO round it wrote 1 valid program of 48.) Chat
 *   backends get the whole parent in the user message instead.
 * Deterministic in the seed (round r of sample i uses seed + r·ROUND_STRIDE + i).
 */
import type { AlgorithmFactory, Candidate, FactoryPrompt, SampleOptions } from '../factory/index.ts';
import { Rng } from '../nn/index.ts';
import { programHash } from '../store/store.ts';
import type { Parent } from './arms.ts';

/** Seed distance between sampling rounds (larger than any batch). */
export const ROUND_STRIDE = 100_003;

export interface Drawn {
  candidate: Candidate;
  /** The parent program's hash for a mutation, else null. */
  parent: string | null;
}

export interface NovelResult {
  drawn: Drawn[];
  /** Samples drawn in all (kept + repeats). */
  draws: number;
  /** Samples dropped as repeats of a program drawn before (in an earlier iteration or this one). */
  repeats: number;
  rounds: number;
}

/** Identity of a sample for novelty: its program, or its raw text when no program was extracted. */
export const sampleKey = (c: Candidate): string => programHash(c.code ?? c.raw);

/**
 * Keeps only samples whose program is new (not in `seen`, not kept already), drawing round after
 * round (`draw(round, need)`) until `n` are kept or `maxRounds` rounds are drawn. Unextractable
 * samples count as programs (their raw text is the identity): they are part of the budget.
 */
export async function sampleNovel(n: number, seen: ReadonlySet<string>, maxRounds: number, draw: (round: number, need: number) => Promise<Drawn[]>): Promise<NovelResult> {
  if (!(Number.isInteger(maxRounds) && maxRounds >= 1)) throw new Error(`sampleNovel: maxRounds must be a positive integer, got ${maxRounds}`);
  const keys = new Set(seen);
  const drawn: Drawn[] = [];
  let draws = 0;
  let repeats = 0;
  let round = 0;
  while (drawn.length < n && round < maxRounds) {
    const batch = await draw(round, n - drawn.length);
    round++;
    for (const d of batch) {
      draws++;
      const k = sampleKey(d.candidate);
      if (keys.has(k) || drawn.length >= n) {
        repeats++;
        continue;
      }
      keys.add(k);
      drawn.push(d);
    }
  }
  return { drawn, draws, repeats, rounds: round };
}

/** Plain draws from the factory: round r is a batch of `need` samples seeded seed + r·ROUND_STRIDE. */
export function factoryDraw(factory: AlgorithmFactory, prompt: FactoryPrompt, opts: SampleOptions): (round: number, need: number) => Promise<Drawn[]> {
  return async (round, need) => {
    const cands = await factory.sample(prompt, need, { ...opts, seed: (opts.seed + round * ROUND_STRIDE) >>> 0 });
    return cands.map((candidate) => ({ candidate, parent: null }));
  };
}

/** The prompt that asks the factory to continue `prefix` of a parent (completion) or to improve the parent (chat). */
export function mutationPrompt(prompt: FactoryPrompt, parentCode: string, prefix: string): FactoryPrompt {
  const messages = prompt.messages.map((m, i) =>
    i === prompt.messages.length - 1 && m.role === 'user'
      ? { ...m, content: `${m.content}\n\nOne of the best programs so far; write an improved variant of it:\n\`\`\`js\n${parentCode.trim()}\n\`\`\`` }
      : m,
  );
  return { ...prompt, text: prompt.text + prefix, prefix: prompt.prefix + prefix, continuation: prefix, messages };
}

/** Bracket depth ((), [], {}) at the end of each line, strings and comments skipped (a scan, not a parser: regex literals are not recognised). */
export function depthAfterLines(code: string): number[] {
  const out: number[] = [];
  let depth = 0;
  let i = 0;
  let quote = '';
  let block = false;
  while (i < code.length) {
    const c = code[i]!;
    if (c === '\n') {
      out.push(depth);
      i++;
      continue;
    }
    if (block) {
      if (c === '*' && code[i + 1] === '/') {
        block = false;
        i += 2;
      } else i++;
      continue;
    }
    if (quote) {
      if (c === '\\') i += 2;
      else {
        if (c === quote) quote = '';
        i++;
      }
      continue;
    }
    if (c === '/' && code[i + 1] === '/') {
      while (i < code.length && code[i] !== '\n') i++;
      continue;
    }
    if (c === '/' && code[i + 1] === '*') {
      block = true;
      i += 2;
      continue;
    }
    if (c === '"' || c === "'" || c === '`') quote = c;
    else if ('([{'.includes(c)) depth++;
    else if (')]}'.includes(c)) depth--;
    i++;
  }
  out.push(depth);
  return out;
}

/**
 * The first lines of `code` up to a cut between 30 % and 90 % of its lines (at least one line kept,
 * at least one cut), at a statement boundary of the top level or of a top-level function's body
 * (bracket depth ≤ 1) when the range has one: cut inside a nested block, the tiny factory tends to
 * close the block and the program at once (e.g. 0–1 of 8 continuations parse after `for (…) {`,
 * 8 of 8 after the loop's closing brace).
 */
export function cutPrefix(code: string, rng: Rng): string {
  const lines = code.replace(/\s+$/, '').split('\n');
  if (lines.length < 2) return '';
  const lo = Math.max(1, Math.floor(0.3 * lines.length));
  const hi = Math.max(lo, Math.min(lines.length - 1, Math.floor(0.9 * lines.length)));
  const depth = depthAfterLines(lines.join('\n'));
  const all = Array.from({ length: hi - lo + 1 }, (_, j) => lo + j);
  const shallow = all.filter((k) => depth[k - 1]! <= 1 && depth[k - 1]! >= 0);
  const pool = shallow.length ? shallow : all;
  const k = pool[Math.floor(rng.next() * pool.length)]!;
  return lines.slice(0, k).join('\n') + '\n';
}

/**
 * The factory as mutation operator: groups of `groupSize` samples, each group continuing a prefix of
 * one parent from `pool` (best first; rank-biased: the better of two uniform draws).
 */
export function mutationDraw(factory: AlgorithmFactory, prompt: FactoryPrompt, pool: readonly Parent[], opts: SampleOptions, groupSize = 8): (round: number, need: number) => Promise<Drawn[]> {
  if (pool.length === 0) throw new Error('mutationDraw: empty parent pool');
  if (!(Number.isInteger(groupSize) && groupSize >= 1)) throw new Error(`mutationDraw: groupSize must be a positive integer, got ${groupSize}`);
  return async (round, need) => {
    const out: Drawn[] = [];
    for (let g = 0; out.length < need; g++) {
      const seed = (opts.seed + round * ROUND_STRIDE + g * groupSize) >>> 0;
      const rng = new Rng(seed);
      const parent = pool[Math.min(rng.int(pool.length), rng.int(pool.length))]!;
      const rows = Math.min(groupSize, need - out.length);
      const cands = await factory.sample(mutationPrompt(prompt, parent.code, cutPrefix(parent.code, rng)), rows, { ...opts, seed });
      for (const candidate of cands) out.push({ candidate, parent: parent.hash });
    }
    return out;
  };
}
