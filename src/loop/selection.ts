/**
 * Choosing the run's best program honestly: dev (200 questions in the tiny world) screens every
 * candidate, the selection split re-scores the top `selectTopK` by dev and decides, test only
 * reports. Picking by dev alone is noisy (programs within a point on dev spread over several points
 * on test), and picking the best test score among the top-k (the paper's protocol) selects on test.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { LeaderboardRow } from '../store/store.ts';
import { DEFAULT_CONFIG, type LoopConfig } from './config.ts';
import type { RankMetric } from '../eval/protocol.ts';
import { spearman } from '../report/stats.ts';

type Split = 'dev' | 'select' | 'test';
type SplitScores = { [K in `${Split}${'Strict' | 'Flex'}`]?: number | null };

/** A program's score on `split` in the ranking metric (eval.rankBy): strict-match or flexible-extract accuracy; null when not measured. */
export function scoreIn(r: SplitScores, split: Split, metric: RankMetric): number | null {
  return r[`${split}${metric === 'flexible' ? 'Flex' : 'Strict'}`] ?? null;
}

/** The screening score the loop ranks a program by: its full-dev score in `metric` when measured, else the dev subset score (recorded in the same metric). */
export function screenScoreIn(r: SplitScores & { devSubset?: number | null }, metric: RankMetric): number | null {
  return scoreIn(r, 'dev', metric) ?? r.devSubset ?? null;
}

/**
 * The best program by the selection split among `rows` (leaderboard rows; only those with a
 * selection score count): highest select accuracy in `metric` (default strict), ties by higher
 * full-dev accuracy in it, then by leaderboard rank. Null when no row has a selection score.
 */
export function bestBySelection<R extends Pick<LeaderboardRow, 'rank'> & SplitScores>(rows: readonly R[], metric: RankMetric = 'strict'): R | null {
  const sel = (r: R) => scoreIn(r, 'select', metric);
  const dev = (r: R) => scoreIn(r, 'dev', metric) ?? -Infinity;
  const scored = rows.filter((r) => sel(r) !== null);
  scored.sort((a, b) => sel(b)! - sel(a)! || dev(b) - dev(a) || a.rank - b.rank);
  return scored[0] ?? null;
}

/** The paper's protocol (selects on test, so optimistic): the best test score in `metric` among `rows` (the top-k by dev), ties by rank. */
export function bestByTest<R extends Pick<LeaderboardRow, 'rank'> & SplitScores>(rows: readonly R[], metric: RankMetric = 'strict'): R | null {
  const test = (r: R) => scoreIn(r, 'test', metric);
  return [...rows].filter((r) => test(r) !== null).sort((a, b) => test(b)! - test(a)! || a.rank - b.rank)[0] ?? null;
}

export interface RankCorrelation {
  /** Spearman's rank correlation (average ranks for ties); null when undefined (n < 2 or a constant side). */
  rho: number | null;
  /** Programs with both scores. */
  n: number;
}

/** Spearman rank correlations of dev vs test, dev vs select and select vs test, each over the programs that have both scores (dev = full-dev strict). */
export function rankCorrelations(rows: readonly Pick<LeaderboardRow, 'devStrict' | 'selectStrict' | 'testStrict'>[]): { devTest: RankCorrelation; devSelect: RankCorrelation; selectTest: RankCorrelation } {
  const pair = (a: 'devStrict' | 'selectStrict', b: 'selectStrict' | 'testStrict'): RankCorrelation => {
    const both = rows.filter((r) => r[a] !== null && r[b] !== null);
    return { rho: spearman(both.map((r) => r[a]!), both.map((r) => r[b]!)), n: both.length };
  };
  return { devTest: pair('devStrict', 'testStrict'), devSelect: pair('devStrict', 'selectStrict'), selectTest: pair('selectStrict', 'testStrict') };
}

/** Questions of a GSM8k-format JSONL file (one object per line with a string `question`). */
function splitQuestions(file: string, what: string): string[] {
  const out: string[] = [];
  readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let q: unknown;
    try {
      q = (JSON.parse(line) as { question?: unknown }).question;
    } catch {
      q = undefined;
    }
    if (typeof q !== 'string') throw new Error(`${what}: ${file} line ${i + 1} is not a JSON object with a string "question" (GSM8k format: {"question", "answer"})`);
    out.push(q.trim());
  });
  return out;
}

/**
 * Run-start check of the selection split (world.select), before anything is recorded or loaded: the
 * file exists, holds problems, and shares no question with dev or test (choosing on problems the
 * programs were screened or are reported on would not be an honest choice); and it is not the tiny
 * world's default while dev or test are another benchmark's (select must come from the same one).
 */
export function checkSelectionSplit(cfg: LoopConfig, root: string): void {
  const p = (x: string) => resolve(root, x);
  const file = p(cfg.world.select);
  const role = 'the top selectTopK programs by dev are re-scored on it and the best there is the run\'s best program';
  const tinyDefault = file === p(DEFAULT_CONFIG.world.select);
  const custom = [['world.dev', cfg.world.dev, DEFAULT_CONFIG.world.dev], ['world.test', cfg.world.test, DEFAULT_CONFIG.world.test]].filter(([, v, d]) => p(v!) !== p(d!));
  if (tinyDefault && custom.length) {
    throw new Error(`world.select is not set, so it is the tiny world's selection split (${file}), but ${custom.map(([k, v]) => `${k} is ${p(v!)}`).join(' and ')}: set world.select to a selection split of the same benchmark, disjoint from dev and test (${role})`);
  }
  if (!existsSync(file)) throw new Error(`world.select: ${file} not found (the selection split: ${role}; the tiny world ships world/bench/select.jsonl)`);
  const select = splitQuestions(file, 'world.select');
  if (select.length === 0) throw new Error(`world.select: ${file} holds no problems (the selection split: ${role})`);
  const mine = new Set(select);
  for (const [key, path] of [['world.dev', cfg.world.dev], ['world.test', cfg.world.test]] as const) {
    const f = p(path);
    if (!existsSync(f)) continue; // a missing dev or test file fails where it is loaded, with its own message
    const shared = splitQuestions(f, key).filter((q) => mine.has(q));
    if (shared.length) throw new Error(`world.select (${file}) shares ${shared.length} question(s) with ${key} (${f}), e.g. ${JSON.stringify(shared[0]!.slice(0, 80))}: the selection split must be disjoint from dev and test`);
  }
}
