// The data of report.html, read from the run's store once: run, iterations, leaderboard, failures,
// baselines, transfer, repeats, DPO log and evaluation timings; and the choices the page shows
// (the chosen program, the test pool, dev-tuned Task Arithmetic).
import type {
  RunStore, RunRecord, IterationSummary, LeaderboardRow, BaselineRecord, TransferRecord, RepeatRecord, DpoStepRecord, FailureRecord,
} from '../store/store.ts';
import { bestBySelection } from '../loop/selection.ts';
import type { RankMetric } from '../eval/protocol.ts';

export interface ReportOptions {
  /** Size of the final test pool (top-k by dev); 15 in the paper. */
  topK?: number;
  /** Seed of the bootstrap intervals. */
  seed?: number;
  /** Bootstrap resamples. */
  resamples?: number;
  /** Failure examples shown per category. */
  failuresPerCategory?: number;
  /** Time stamp written in the footer (defaults to now). */
  generatedAt?: string;
}

/** Everything the page shows, read from the store once. */
export interface ReportData {
  run: RunRecord | undefined;
  evalConfig: unknown;
  primaryArm: string;
  /** The metric the run ranked programs by (eval.rankBy, recorded with its protocol). */
  rankBy: RankMetric;
  summaries: IterationSummary[];
  leaderboard: LeaderboardRow[];
  /** Every valid program of the primary arm (repeat 0) in leaderboard order: the rank correlations and the scatter use them. */
  ranked: LeaderboardRow[];
  failures: FailureRecord[];
  baselines: BaselineRecord[];
  transfers: TransferRecord[];
  repeats: RepeatRecord[];
  dpo: (DpoStepRecord & { t: number; arm: string; repeatIndex: number })[];
  evalTimings: { iterationId: number; sandbox: number[]; merge: number[]; evaluate: number[] }[];
  /** Distributed evaluation: each sampled program's queue worker (HOST:PID), in sample order; empty for local runs. */
  scoredBy: { hash: string; worker: string }[];
}

export function collectReportData(store: RunStore, options: ReportOptions = {}): ReportData {
  const run = store.getRun();
  const empty: ReportData = {
    run, evalConfig: undefined, primaryArm: 'dpo', rankBy: 'strict', summaries: [], leaderboard: [], ranked: [], failures: [], baselines: [], transfers: [], repeats: [], dpo: [], evalTimings: [], scoredBy: [],
  };
  if (!run) return empty;
  const its = store.iterations();
  const arms = [...new Set(its.map((i) => i.arm))];
  const primaryArm = arms.includes('dpo') || arms.length === 0 ? 'dpo' : arms[0];
  const byId = new Map(its.map((i) => [i.id, i]));
  const scoredBy: { hash: string; worker: string }[] = [];
  const evalTimings = its.map((it) => {
    const seen = new Set<string>();
    const out = { iterationId: it.id, sandbox: [] as number[], merge: [] as number[], evaluate: [] as number[] };
    for (const s of store.samples(it.id)) {
      if (seen.has(s.hash)) continue;
      seen.add(s.hash);
      const e = store.evaluationFor(s.hash);
      if (!e) continue;
      if (e.sandboxMs !== null) out.sandbox.push(e.sandboxMs);
      if (e.mergeMs !== null) out.merge.push(e.mergeMs);
      if (e.evalMs !== null) out.evaluate.push(e.evalMs);
      if (e.scoredBy) scoredBy.push({ hash: s.hash, worker: e.scoredBy });
    }
    return out;
  });
  return {
    run,
    evalConfig: store.evalConfig(run.evalKey),
    primaryArm,
    rankBy: store.rankMetric(),
    summaries: store.iterationSummary(),
    leaderboard: store.leaderboard(options.topK ?? 15, { arm: primaryArm, repeatIndex: 0 }),
    ranked: store.rankedPrograms({ arm: primaryArm, repeatIndex: 0 }),
    failures: store.failures({ limitPerVerdict: options.failuresPerCategory ?? 3, arm: primaryArm }),
    baselines: store.baselines(),
    transfers: store.transfers(),
    repeats: store.repeats(),
    dpo: store.dpoSteps().map((s) => {
      const it = byId.get(s.iterationId)!;
      return { ...s, t: it.t, arm: it.arm, repeatIndex: it.repeatIndex };
    }),
    evalTimings,
    scoredBy,
  };
}

/** Writes report.html for the run in `store` to outPath (atomically). Returns the HTML. */

export function taSelected(d: ReportData, expertSet: 'in-domain' | 'ood'): BaselineRecord[] {
  const ta = d.baselines.filter((b) => b.expertSet === expertSet && (b.method === 'task_arithmetic' || /task.?arithmetic/i.test(b.name)));
  const reps = [...new Set(ta.map((b) => b.repeatIndex))];
  const out: BaselineRecord[] = [];
  for (const rep of reps) {
    const rows = ta.filter((b) => b.repeatIndex === rep);
    const sel = rows.find((b) => b.selected) ?? [...rows].filter((b) => b.devStrict !== null).sort((a, b) => b.devStrict! - a.devStrict!)[0];
    if (sel) out.push(sel);
  }
  return out;
}

/** The run's configured size of the test set (top-k by dev), when the stored config says; else the leaderboard's length. */
export function testTopK(d: ReportData): number {
  const k = (d.run?.config as { topKTest?: unknown } | null | undefined)?.topKTest;
  return typeof k === 'number' && Number.isInteger(k) && k > 0 ? k : d.leaderboard.length;
}

/** The run's best program: the best by the selection split; without selection scores (runs from before it, or not there yet), the top program by dev. */
export function bestProgram(d: ReportData): { row: LeaderboardRow; by: 'select' | 'dev' } | null {
  const sel = bestBySelection(d.ranked, d.rankBy);
  if (sel) return { row: sel, by: 'select' };
  return d.leaderboard[0] ? { row: d.leaderboard[0], by: 'dev' } : null;
}
