/**
 * The summary of a controlled experiment (arms × repeats; `summary.json`): computed from the run
 * stores by src/loop/experiment.ts, rendered by src/report/experiment.ts.
 */
import type { Arm } from '../loop/config.ts';
import type { RankCorrelation } from '../loop/selection.ts';

export interface Scored {
  hash: string;
  dev: number | null;
  /** Score on the selection split (null when not scored there). */
  select: number | null;
  test: number | null;
}

export interface RunSummary {
  arm: Arm;
  repeat: number;
  seed: number;
  /** Relative to the experiment folder. */
  dir: string;
  status: string;
  /** Headline: the run's best program, chosen on the selection split among the top selectTopK by dev, and its test score. */
  bestBySelect: Scored | null;
  /** The top program by dev (full dev, then flexible, then subset) and its test score: what choosing on dev alone gives. */
  bestByDev: Scored | null;
  /** Paper protocol (optimistic: selects on test): the best test score among the top-k by dev. */
  bestByTestTopK: Scored | null;
  topK: number;
  /** Spearman rank correlations between the splits over the run's valid programs with both scores (all of them on test with eval.testAll). */
  rank: { devTest: RankCorrelation; devSelect: RankCorrelation; selectTest: RankCorrelation };
  taTest: number | null;
  seedTest: number | null;
  /** Transfer: the run's top programs by dev applied unchanged to the out-of-domain experts (test, by source rank), and dev-tuned TA there. */
  transfer: { topTest: number[]; oodTaTest: number | null };
  /** Per iteration t = 1..: median and best screening dev score of the valid programs, pass rate. */
  iterations: { t: number; medianDev: number | null; bestDev: number | null; passRate: number | null; nValid: number; nSampled: number }[];
}

export interface Estimate {
  values: number[];
  mean: number | null;
  /** Percentile bootstrap 95% interval of the mean (null with fewer than 2 values). */
  ci: { lo: number; hi: number } | null;
}

export interface ArmSummary {
  arm: Arm;
  repeats: number;
  finished: number;
  /** Headline: test accuracy of the best program (chosen on the selection split). */
  testBestBySelect: Estimate;
  /** Paired by repeat: test of the best program − test of dev-tuned Task Arithmetic. */
  marginBySelectVsTa: Estimate;
  /** Paired by repeat (same seed): this arm − dpo, for the test accuracy of the best program (chosen on select). */
  diffVsDpoBySelect: Estimate | null;
  testBestByDev: Estimate;
  testBestByTestTopK: Estimate;
  devBestByDev: Estimate;
  taTest: Estimate;
  /** Paired by repeat (same seed): this arm − dpo, for the test accuracy of the best-by-dev program. */
  diffVsDpo: Estimate | null;
  /** Spearman ρ of dev vs test per run (runs where it is defined). */
  rankDevTest: Estimate;
  /** Per run: mean OOD test of the transferred top programs − OOD dev-tuned TA. */
  transferMarginVsOodTa: Estimate;
  /** Per run: OOD test of the best transferred program (among the top 3 by dev). */
  transferBest: Estimate;
  medianDevByIteration: { t: number; mean: number | null; values: number[] }[];
  passRate: number | null;
}

export interface ExperimentSummary {
  name: string;
  seed: number;
  arms: Arm[];
  repeats: number;
  budget: { iterations: number; samplesPerIteration: number; topKTest: number; selectTopK: number; factory: string };
  runs: RunSummary[];
  perArm: ArmSummary[];
}
