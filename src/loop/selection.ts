/**
 * Choosing the run's best program honestly: dev (200 questions in the tiny world) screens every
 * candidate, the selection split re-scores the top `selectTopK` by dev and decides, test only
 * reports. Picking by dev alone is noisy (programs within a point on dev spread over several points
 * on test), and picking the best test score among the top-k (the paper's protocol) selects on test.
 */
import type { LeaderboardRow } from '../store/store.ts';
import { spearman } from '../report/stats.ts';

/**
 * The best program by the selection split among `rows` (leaderboard rows; only those with a
 * selection score count): highest select strict accuracy, ties by higher full-dev strict accuracy,
 * then by leaderboard rank. Null when no row has a selection score.
 */
export function bestBySelection<R extends Pick<LeaderboardRow, 'rank' | 'devStrict' | 'selectStrict'>>(rows: readonly R[]): R | null {
  const scored = rows.filter((r) => r.selectStrict !== null);
  scored.sort((a, b) => b.selectStrict! - a.selectStrict! || (b.devStrict ?? -Infinity) - (a.devStrict ?? -Infinity) || a.rank - b.rank);
  return scored[0] ?? null;
}

/** The paper's protocol (selects on test, so optimistic): the best test score among `rows` (the top-k by dev), ties by rank. */
export function bestByTest<R extends Pick<LeaderboardRow, 'rank' | 'testStrict'>>(rows: readonly R[]): R | null {
  return [...rows].filter((r) => r.testStrict !== null).sort((a, b) => b.testStrict! - a.testStrict! || a.rank - b.rank)[0] ?? null;
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
