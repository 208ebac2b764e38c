/**
 * Controlled experiments: the DPO arm against its controls with the same budget (iterations ×
 * samples per iteration, same temperature schedule, same evaluation), repeated with different seeds.
 *
 * Layout: DIR/experiment.json (the base config), DIR/<arm>/r<k>/ (one ordinary resumable run each),
 * DIR/summary.json and DIR/report.html (the comparison). Repeat k of every arm uses the seed
 * deriveSeed(seed, "repeat:k"), so the arms of one repeat share the world, the starting factory and
 * (for the corpus factory) the iteration-1 sample. Rerunning continues unfinished runs and skips
 * finished ones; the summary is computed from the run stores alone (no timings, no dates), so the
 * same seed gives the same summary.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { RunStore, writeFileAtomic } from '../store/store.ts';
import { bootstrapCI, mean, median } from '../report/stats.ts';
import { writeExperimentReport } from '../report/experiment.ts';
import type { ArmSummary, Estimate, ExperimentSummary, RunSummary, Scored } from '../report/summary.ts';
import { deriveSeed, runLoop, type LoopEvent } from './controller.ts';
import { ARMS, resolveConfig, resolveDistributed, type Arm, type DistributedConfig, type LoopConfig } from './config.ts';
import { bestBySelection, bestByTest, rankCorrelations, type RankCorrelation } from './selection.ts';

export type ExperimentEvent =
  | { type: 'run'; arm: Arm; repeat: number; runDir: string; state: 'start' | 'resume' | 'skip' }
  | { type: 'loop'; arm: Arm; repeat: number; event: LoopEvent };

export interface ExperimentOptions {
  arms: Arm[];
  repeats: number;
  root?: string;
  /** A queue URL (`--queue`): every run's jobs through it (sets the url of the distributed block in effect). */
  queue?: string;
  signal?: AbortSignal;
  onEvent?: (e: ExperimentEvent) => void;
}

export const armRunDir = (arm: Arm, repeat: number): string => join(arm, `r${repeat}`);
export const repeatSeed = (seed: number, repeat: number): number => deriveSeed(seed, `repeat:${repeat}`);

/** Parses `--arms a,b,c`: known arm names, no duplicates. */
export function parseArms(s: string): Arm[] {
  const arms = s.split(',').map((x) => x.trim()).filter(Boolean);
  if (arms.length === 0) throw new Error('--arms: give at least one of dpo, random, evolution');
  for (const a of arms) if (!ARMS.includes(a as Arm)) throw new Error(`--arms: unknown arm '${a}' (known: ${ARMS.join(', ')})`);
  if (new Set(arms).size !== arms.length) throw new Error(`--arms: '${s}' names an arm twice`);
  return arms as Arm[];
}

function canonical(x: unknown): string {
  return JSON.stringify(x, (_k, v: unknown) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1))) : v));
}

/** The part of a config that decides results: all but `workers` and `distributed` (how the jobs run). */
function computed(cfg: LoopConfig): Omit<LoopConfig, 'workers' | 'distributed'> {
  const { workers: _w, distributed: _d, ...rest } = cfg;
  return rest;
}

/**
 * How this invocation evaluates the runs: `workers` and `distributed` of the config given now (else
 * of the stored one), `queue` as the distributed url. Resumed runs use it too (not their stored one).
 */
export function experimentExecution(config: unknown, stored: LoopConfig, queue?: string): { workers: number; distributed: DistributedConfig | null } {
  const from = config === undefined || config === null ? stored : resolveConfig(config);
  const distributed = queue ? resolveDistributed({ ...from.distributed, url: queue }, '--queue') : (from.distributed ?? null);
  return { workers: from.workers, distributed };
}

/**
 * Loads or creates DIR/experiment.json. A config given for an existing experiment must resolve to
 * the stored one (a different config in the same folder would mix two experiments).
 */
export function experimentConfig(config: unknown, outDir: string): LoopConfig {
  const path = join(outDir, 'experiment.json');
  if (existsSync(path)) {
    let stored: LoopConfig;
    try {
      stored = resolveConfig((JSON.parse(readFileSync(path, 'utf8')) as { config: unknown }).config, path);
    } catch (e) {
      throw new Error(`${path}: unreadable experiment file: ${(e as Error).message}`);
    }
    if (config !== undefined && config !== null) {
      const given = resolveConfig(config);
      // `workers` and `distributed` are how the runs are evaluated, not what they compute: they may differ between invocations
      if (canonical(computed(given)) !== canonical(computed(stored))) throw new Error(`${outDir} holds an experiment with a different config; use another --out or omit the config to continue it`);
    }
    return stored;
  }
  if (config === undefined || config === null) throw new Error(`${outDir}: no experiment here yet; a config is required to start one`);
  const cfg = resolveConfig(config);
  if (cfg.arm !== 'dpo') throw new Error(`config: leave 'arm' out of an experiment config (the arms come from --arms), got arm: ${cfg.arm}`);
  writeFileAtomic(path, JSON.stringify({ config: cfg }, null, 2) + '\n');
  return cfg;
}

function runStatus(dir: string): string | null {
  if (!existsSync(join(dir, 'run.sqlite'))) return null;
  const s = RunStore.open(dir, { readonly: true });
  try {
    return s.getRun()?.status ?? null;
  } finally {
    s.close();
  }
}

/** Runs (or continues) every (arm, repeat), then writes DIR/summary.json and DIR/report.html. */
export async function runExperiment(config: unknown, outDir: string, opts: ExperimentOptions): Promise<ExperimentSummary> {
  if (!Number.isInteger(opts.repeats) || opts.repeats < 1) throw new Error(`--repeats must be a positive integer, got ${opts.repeats}`);
  if (opts.arms.length === 0) throw new Error('experiment: no arms');
  const out = resolve(outDir);
  const base = experimentConfig(config, out);
  const exec = experimentExecution(config, base, opts.queue);
  for (let k = 0; k < opts.repeats; k++) {
    for (const arm of opts.arms) {
      if (opts.signal?.aborted) throw new Error('aborted');
      const dir = join(out, armRunDir(arm, k));
      const status = runStatus(dir);
      if (status === 'done') {
        opts.onEvent?.({ type: 'run', arm, repeat: k, runDir: dir, state: 'skip' });
        continue;
      }
      opts.onEvent?.({ type: 'run', arm, repeat: k, runDir: dir, state: status === null ? 'start' : 'resume' });
      const cfg: LoopConfig = { ...base, arm, seed: repeatSeed(base.seed, k), name: `${base.name} ${arm} r${k}` };
      // on a queue, the run's jobs carry its own namespace: the arms of a repeat (which often sample the same programs) never share a job
      await runLoop(status === null ? cfg : undefined, dir, { root: opts.root, signal: opts.signal, ...exec, queueNamespace: `${arm}/r${k}`, onEvent: (event) => opts.onEvent?.({ type: 'loop', arm, repeat: k, event }) });
    }
  }
  const summary = summarizeExperiment(out, base, opts.arms, opts.repeats);
  writeFileAtomic(join(out, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
  writeExperimentReport(summary, join(out, 'report.html'));
  return summary;
}

/** Reads one finished (or partial) run's store. */
export function summarizeRun(outDir: string, arm: Arm, repeat: number, seed: number, topK: number, selectTopK: number): RunSummary {
  const rel = armRunDir(arm, repeat);
  const dir = join(outDir, rel);
  const noRank: RankCorrelation = { rho: null, n: 0 };
  const empty: RunSummary = { arm, repeat, seed, dir: rel, status: 'missing', bestBySelect: null, bestByDev: null, bestByTestTopK: null, topK, rank: { devTest: noRank, devSelect: noRank, selectTest: noRank }, taTest: null, seedTest: null, transfer: { topTest: [], oodTaTest: null }, iterations: [] };
  if (!existsSync(join(dir, 'run.sqlite'))) return empty;
  const s = RunStore.open(dir, { readonly: true });
  try {
    const run = s.getRun();
    if (!run) return empty;
    const top = s.leaderboard(topK, { arm });
    const sc = (r: (typeof top)[number]): Scored => ({ hash: r.hash, dev: r.devStrict ?? r.devSubset, select: r.selectStrict, test: r.testStrict });
    const byDev = top.find((r) => r.testStrict !== null) ?? top[0];
    const byTest = bestByTest(top, s.rankMetric());
    const bySelect = bestBySelection(s.leaderboard(selectTopK, { arm }), s.rankMetric());
    const bl = s.baselines({ expertSet: 'in-domain', selectedOnly: true });
    return {
      arm, repeat, seed, dir: rel, status: run.status,
      bestBySelect: bySelect ? sc(bySelect) : null,
      bestByDev: byDev ? sc(byDev) : null,
      bestByTestTopK: byTest ? sc(byTest) : null,
      topK,
      rank: rankCorrelations(s.rankedPrograms({ arm })),
      taTest: bl.find((b) => b.name === 'task_arithmetic')?.testStrict ?? null,
      seedTest: bl.find((b) => b.name === 'seed')?.testStrict ?? null,
      transfer: {
        topTest: s.transfers().filter((x) => x.expertSet === 'ood' && x.testStrict !== null).sort((a, b) => a.sourceRank - b.sourceRank).map((x) => x.testStrict!),
        oodTaTest: s.baselines({ expertSet: 'ood', selectedOnly: true }).find((b) => b.name === 'task_arithmetic')?.testStrict ?? null,
      },
      iterations: s.iterationSummary({ arm }).map((it) => ({ t: it.t, medianDev: it.medianScreen, bestDev: it.bestScreen, passRate: it.passRate, nValid: it.nValid, nSampled: it.nSampled })),
    };
  } finally {
    s.close();
  }
}

function estimate(values: number[], seed: number): Estimate {
  const ci = bootstrapCI(values, { seed, resamples: 2000 });
  return { values, mean: mean(values), ci: ci ? { lo: ci.lo, hi: ci.hi } : null };
}

/** The summary of the runs in `outDir` (deterministic: bootstrap seeds derive from the experiment seed). */
export function summarizeExperiment(outDir: string, base: LoopConfig, arms: Arm[], repeats: number): ExperimentSummary {
  const runs: RunSummary[] = [];
  for (const arm of arms) for (let k = 0; k < repeats; k++) runs.push(summarizeRun(outDir, arm, k, repeatSeed(base.seed, k), base.topKTest, base.selectTopK));
  const nums = (xs: (number | null | undefined)[]) => xs.filter((x): x is number => typeof x === 'number');
  const perArm = arms.map((arm): ArmSummary => {
    const rs = runs.filter((r) => r.arm === arm);
    const bs = (metric: string) => deriveSeed(base.seed, `bootstrap:${arm}:${metric}`);
    const ts = [...new Set(rs.flatMap((r) => r.iterations.map((i) => i.t)))].sort((a, b) => a - b);
    let diffVsDpo: Estimate | null = null;
    let diffVsDpoBySelect: Estimate | null = null;
    if (arm !== 'dpo' && arms.includes('dpo')) {
      const d: number[] = [];
      const ds: number[] = [];
      for (const r of rs) {
        const o = runs.find((x) => x.arm === 'dpo' && x.repeat === r.repeat);
        if (r.bestByDev?.test != null && o?.bestByDev?.test != null) d.push(r.bestByDev.test - o.bestByDev.test);
        if (r.bestBySelect?.test != null && o?.bestBySelect?.test != null) ds.push(r.bestBySelect.test - o.bestBySelect.test);
      }
      diffVsDpo = estimate(d, bs('diff'));
      diffVsDpoBySelect = estimate(ds, bs('diff-by-select'));
    }
    const pass = rs.flatMap((r) => r.iterations.flatMap((i) => (i.passRate === null ? [] : [i.passRate])));  // per (repeat, iteration)
    return {
      arm, repeats: rs.length, finished: rs.filter((r) => r.status === 'done').length,
      testBestBySelect: estimate(nums(rs.map((r) => r.bestBySelect?.test)), bs('test-by-select')),
      marginBySelectVsTa: estimate(rs.flatMap((r) => (r.bestBySelect?.test != null && r.taTest !== null ? [r.bestBySelect.test - r.taTest] : [])), bs('margin-by-select')),
      diffVsDpoBySelect,
      testBestByDev: estimate(nums(rs.map((r) => r.bestByDev?.test)), bs('test-by-dev')),
      testBestByTestTopK: estimate(nums(rs.map((r) => r.bestByTestTopK?.test)), bs('test-by-test')),
      devBestByDev: estimate(nums(rs.map((r) => r.bestByDev?.dev)), bs('dev-by-dev')),
      taTest: estimate(nums(rs.map((r) => r.taTest)), bs('ta')),
      diffVsDpo,
      rankDevTest: estimate(nums(rs.map((r) => r.rank.devTest.rho)), bs('rank-dev-test')),
      transferMarginVsOodTa: estimate(rs.flatMap((r) => (r.transfer.topTest.length && r.transfer.oodTaTest !== null ? [mean(r.transfer.topTest)! - r.transfer.oodTaTest] : [])), bs('transfer-margin')),
      transferBest: estimate(rs.flatMap((r) => (r.transfer.topTest.length ? [Math.max(...r.transfer.topTest)] : [])), bs('transfer-best')),
      medianDevByIteration: ts.map((t) => {
        const values = nums(rs.map((r) => r.iterations.find((i) => i.t === t)?.medianDev));
        return { t, mean: mean(values), values };
      }),
      passRate: pass.length ? median(pass) : null,
    };
  });
  return {
    name: base.name, seed: base.seed, arms, repeats,
    budget: { iterations: base.iterations, samplesPerIteration: base.samplesPerIteration, topKTest: base.topKTest, selectTopK: base.selectTopK, factory: base.factory.kind },
    runs, perArm,
  };
}
