/**
 * The scoring protocol of a run, as recorded in its store and shown in its report: which lm-eval
 * task, how many shots drawn how (and from which file, by content hash), the generation budget, the
 * calculator, the stops, the metric the loop ranks by, and where generation ran.
 */
import { TASKS, type TaskName } from './tasks.ts';

export const RANK_METRICS = ['strict', 'flexible'] as const;
export type RankMetric = (typeof RANK_METRICS)[number];

export interface EvalProtocol {
  task: TaskName;
  shots: number;
  /** 'lm-eval' (random draws as lm-eval's default sampler), 'first_n' (fixed exemplars) or null (zero-shot). */
  sampler: 'lm-eval' | 'first_n' | null;
  /** lm-eval's fewshot_random_seed (random sampler only). */
  shotSeed: number | null;
  /** The shot pool file as configured and its sha256 (random sampler only). */
  train: string | null;
  trainSha256: string | null;
  maxTokens: number;
  calculator: boolean;
  stop: string[];
  rankBy: RankMetric;
  backend: 'in-process' | 'server';
}

export interface ProtocolSettings {
  task: TaskName;
  shots: number;
  shotSeed: number;
  train?: string;
  trainSha256?: string;
  maxTokens: number;
  calculator: boolean;
  rankBy: RankMetric;
  server: boolean;
}

export function makeProtocol(s: ProtocolSettings): EvalProtocol {
  const t = TASKS[s.task];
  const random = s.shots > 0 && !t.fixedShots;
  return {
    task: s.task,
    shots: s.shots,
    sampler: s.shots === 0 ? null : random ? 'lm-eval' : 'first_n',
    shotSeed: random ? s.shotSeed : null,
    train: random ? (s.train ?? null) : null,
    trainSha256: random ? (s.trainSha256 ?? null) : null,
    maxTokens: s.maxTokens,
    calculator: s.calculator,
    stop: [...t.stops],
    rankBy: s.rankBy,
    backend: s.server ? 'server' : 'in-process',
  };
}

const METRIC: Record<RankMetric, string> = { strict: 'strict-match', flexible: 'flexible-extract' };

/** One line, e.g. `gsm8k, 5-shot (lm-eval sampler, seed 1234), ≤ 256 new tokens, calculator off, ranked by strict-match, through eval.server`. */
export function describeProtocol(p: EvalProtocol): string {
  const shots = p.shots === 0 ? 'zero-shot' : p.sampler === 'first_n' ? `${p.shots}-shot (fixed exemplars)` : `${p.shots}-shot (lm-eval sampler, seed ${p.shotSeed}${p.train ? `, from ${p.train}` : ''})`;
  return `${p.task}, ${shots}, ≤ ${p.maxTokens} new tokens, calculator ${p.calculator ? 'on' : 'off'}, ranked by ${METRIC[p.rankBy]}, ${p.backend === 'server' ? 'through eval.server' : 'in process'}`;
}
