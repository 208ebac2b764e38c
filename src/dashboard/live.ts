/**
 * Where a run is now, read from the same data as its report (src/report/data.ts): the run's status,
 * the current iteration and its phase (sampling, evaluating, DPO) with progress, then the final
 * phases (selection split, test, baselines and transfer), and the running counts. A pure function
 * of the report data, so the live panel never disagrees with the report below it.
 */
import type { ReportData } from '../report/data.ts';

export interface LiveStatus {
  /** 'waiting' (no store yet), 'error' (store unreadable), 'no-run' (store without a run), or the run's status. */
  state: 'waiting' | 'error' | 'no-run' | 'running' | 'done' | 'failed' | 'interrupted';
  /** One line: what the run is doing (or why nothing is shown). */
  phase: string;
  /** Progress of the phase, when it has a known size. */
  progress: { done: number; total: number } | null;
  /** Iteration being worked on (or the last one), of the configured number. */
  iteration: { t: number; of: number | null; status: string } | null;
  /** Sampled programs (sampling events) and those with a verdict so far, over the whole run. */
  sampled: number;
  scored: number;
  valid: number;
  /** Best full-dev strict accuracy so far (else the best screening score). */
  bestDev: number | null;
}

interface RunConfigFields {
  iterations?: unknown;
  topKTest?: unknown;
  selectTopK?: unknown;
}

const posInt = (v: unknown): number | null => (typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : null);

export function liveStatus(d: ReportData): LiveStatus {
  const sampled = d.summaries.reduce((a, s) => a + s.nSampled, 0);
  const scored = d.summaries.reduce((a, s) => a + s.nEvaluated, 0);
  const valid = d.summaries.reduce((a, s) => a + s.nValid, 0);
  const devs = d.summaries.flatMap((s) => (s.bestDevStrict ?? s.bestScreen) === null ? [] : [(s.bestDevStrict ?? s.bestScreen)!]);
  const base = { sampled, scored, valid, bestDev: devs.length ? Math.max(...devs) : null };
  if (!d.run) return { ...base, state: 'no-run', phase: 'the store holds no run yet', progress: null, iteration: null };
  const cfg = (d.run.config ?? {}) as RunConfigFields;
  const of = posInt(cfg.iterations);
  const primary = d.summaries.filter((s) => s.arm === d.primaryArm && s.repeatIndex === 0);
  const open = d.summaries.find((s) => s.status !== 'done' && s.status !== 'failed');
  const last = open ?? primary[primary.length - 1] ?? null;
  const iteration = last ? { t: last.t, of, status: last.status } : null;
  const state = d.run.status;
  if (state !== 'running') {
    const phase = state === 'done' ? 'all phases done: below is the final report (= report.html)' : state === 'failed' ? 'failed (see the run\'s output)' : 'interrupted (continue it with selfdev run --out DIR --resume)';
    return { ...base, state, phase, progress: null, iteration };
  }
  const itName = (t: number) => `iteration ${t}${of ? ` of ${of}` : ''}`;
  if (open) {
    if (open.status === 'sampling') return { ...base, state, phase: `${itName(open.t)}: sampling programs`, progress: null, iteration };
    if (open.status === 'evaluating') return { ...base, state, phase: `${itName(open.t)}: scoring candidates`, progress: { done: open.nEvaluated, total: open.nSampled }, iteration };
    if (open.status === 'training') return { ...base, state, phase: `${itName(open.t)}: DPO training of the factory`, progress: null, iteration };
  }
  if (of !== null && primary.filter((s) => s.status === 'done').length < of) {
    return { ...base, state, phase: `${itName(primary.length + 1)}: starting`, progress: null, iteration };
  }
  // after the last iteration: the top programs by full dev on the selection split, then on test, then baselines and transfer
  const withDev = d.ranked.filter((r) => r.devStrict !== null);
  const sel = withDev.slice(0, posInt(cfg.selectTopK) ?? 10);
  const selDone = sel.filter((r) => r.selectStrict !== null).length;
  if (selDone < sel.length) return { ...base, state, phase: 'selection split: scoring the top programs by dev', progress: { done: selDone, total: sel.length }, iteration };
  const top = withDev.slice(0, posInt(cfg.topKTest) ?? 15);
  const testDone = top.filter((r) => r.testStrict !== null).length;
  if (testDone < top.length) return { ...base, state, phase: 'test: scoring the top programs by dev', progress: { done: testDone, total: top.length }, iteration };
  return { ...base, state, phase: `baselines and transfer (${d.baselines.length} baseline and ${d.transfers.length} transfer scores so far)`, progress: null, iteration };
}
