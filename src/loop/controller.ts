/**
 * The Self-Developing controller. Split (OpenEvolve-style): this file schedules; the store
 * (src/store) holds every result as soon as it exists; `ProgramEvaluator` (below) runs the cascade +
 * in-memory merge + dev scoring; the factory prompt comes from src/factory.
 *
 * Resumability: the sample batch of an iteration is written before evaluation starts; each
 * evaluation is recorded as it finishes; pairs, DPO steps, factory checkpoints, baselines and
 * transfers are each recorded once. A restart on the same folder reloads the stored config and
 * continues with the pending work. All randomness derives from the run seed.
 *
 * External DPO trainer (factory kind openai/llamacpp): `dpo.command` is run by `sh -c` with
 * PAIRS (the TRL JSONL path), OUT (an empty folder to write into; renamed to factory/iter-ITER when
 * the command succeeds), ITER, and PREV (the previous iteration's trained folder, empty in iteration
 * 1) and SEED (the seed the in-process DPO of iteration ITER uses) in the environment. A llamacpp factory loads the next iteration from OUT/model.gguf (required);
 * for an openai factory the command must make the server serve the new model itself. A TRL
 * recipe: docs/real-llm.md.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringify as yamlStringify } from 'yaml';
import { replaceDir } from '../io/checkpoint.ts';
import { RunStore, writeFileAtomic, type EvaluationRecord, type LeaderboardRow } from '../store/store.ts';
import { initBackend } from '../nn/index.ts';
import { dpoTrainBuiltinFactory } from '../factory/dpo.ts';
import { buildPrompt, loadPromptFiles, type Candidate, type FactoryPrompt } from '../factory/index.ts';
import { writeReport } from '../report/report.ts';
import { EvolutionSampler, evolutionPool, skipTraining } from './arms.ts';
import { factoryMaxTokens, openLoopFactory } from './factory-open.ts';
import { conversationalPair, samplesInChat } from './pairs-format.ts';
import { resolveConfig, runEvalRecord, temperatureAt, trainsFactory, type LoopConfig } from './config.ts';
import { loadProblems, memoryEvaluator, openEvalContext, type EvalContext, type EvalSet, type JobRunner, type Scores } from './pool.ts';
import { openJobRunner, type RunnerOptions } from './runner.ts';
import { checkRecursiveWorld, ensureMergedFactory } from './recursive.ts';
import { bestBySelection, bestByTest, checkSelectionSplit, scoreIn, screenScoreIn } from './selection.ts';
import type { RankMetric } from '../eval/protocol.ts';
import { factoryDraw, mutationDraw, sampleNovel } from './sampling.ts';

/** dpo-novel / dpo-mutate: rounds of samples drawn at most per iteration to reach samplesPerIteration new programs. */
const NOVEL_MAX_ROUNDS = 4;

export { ProgramEvaluator } from './pool.ts';

export type LoopEvent =
  | { type: 'iteration'; t: number; temperature: number }
  | { type: 'sampled'; t: number; n: number }
  | { type: 'evaluated'; t: number; hash: string; done: number; total: number; verdict: string; score: number | null; cached: boolean }
  | { type: 'phase'; t: number | null; phase: string }
  /** Distributed evaluation (every few seconds): the queue's jobs by state (all runs on its database) and its live workers. */
  | { type: 'queue'; waiting: number; active: number; completed: number; failed: number; workers: number }
  /** best: the run's best program (by the selection split); bestByTestTopK: the paper's best test score among the top topKTest by dev (selects on test; reported, never chosen). */
  | { type: 'done'; best: LeaderboardRow | null; bestByTestTopK: LeaderboardRow | null };

/** `workers`, `queue`, `distributed`, `queueNamespace`, `runner` (tests): how this invocation evaluates (runner.ts). */
export interface LoopOptions extends RunnerOptions {
  signal?: AbortSignal;
  onEvent?: (e: LoopEvent) => void;
  /** Repository root (for docs/algorithm-contract.md and relative world paths); default cwd. */
  root?: string;
}

export interface LoopResult {
  runDir: string;
  leaderboard: LeaderboardRow[];
  /** The best program: the best by the selection split among the top selectTopK by dev (falls back to the top by dev when none has a selection score). */
  best: LeaderboardRow | null;
  /** The paper's protocol, reported as a secondary row: the best test score among the top topKTest by dev (selects on test). */
  bestByTestTopK: LeaderboardRow | null;
  baselines: { name: string; devStrict: number | null; testStrict: number | null }[];
  reportPath: string;
}

/** 32-bit seed derived from (seed, key) by FNV-1a. */
export function deriveSeed(seed: number, key: string): number {
  let h = (0x811c9dc5 ^ (seed >>> 0)) >>> 0;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193) >>> 0;
  return h >>> 0;
}

class Aborted extends Error {}

function screenScore(e: EvaluationRecord | undefined, metric: RankMetric): number | null {
  if (!e || e.verdict !== 'ok') return null;
  return screenScoreIn(e, metric);
}

function byScoreThenHash(a: { hash: string; score: number }, b: { hash: string; score: number }): number {
  return b.score - a.score || (a.hash < b.hash ? -1 : a.hash > b.hash ? 1 : 0);
}

/**
 * Calls `fn` on the items in order with at most `concurrency` calls in flight; `check` runs before
 * each start (an abort stops the pulling). With concurrency 1 this is the plain sequential loop
 * (an abort is seen between items). With more, an abort also ends the wait at once: the jobs in
 * flight are dropped (the caller's disposers kill the workers) and are redone on resume.
 */
export async function drainJobs<T>(items: T[], concurrency: number, fn: (x: T) => Promise<void>, check: () => void, signal?: AbortSignal): Promise<void> {
  let next = 0;
  let stop = false;
  const lane = async () => {
    try {
      while (!stop && next < items.length) {
        check();
        await fn(items[next++]!);
      }
    } catch (e) {
      stop = true;
      throw e;
    }
  };
  const all = Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, lane));
  if (concurrency === 1 || !signal) return void (await all);
  let onAbort = () => {};
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => {
      stop = true;
      reject(new Aborted('aborted'));
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    await Promise.race([all, aborted]);
  } finally {
    signal.removeEventListener('abort', onAbort);
    all.catch(() => undefined);
    aborted.catch(() => undefined);
  }
}

/** Runs (or resumes) the loop in `runDir`. `config` is required for a new run and ignored on resume (the stored one wins). */
export async function runLoop(config: unknown, runDir: string, opts: LoopOptions = {}): Promise<LoopResult> {
  const root = resolve(opts.root ?? process.cwd());
  mkdirSync(runDir, { recursive: true });
  const store = RunStore.open(runDir);
  const emit = (e: LoopEvent) => opts.onEvent?.(e);
  const check = () => {
    if (opts.signal?.aborted) throw new Aborted('aborted');
  };
  const disposers: (() => void | Promise<void>)[] = [() => store.close()];
  try {
    let run = store.getRun();
    let cfg: LoopConfig;
    if (!run) {
      if (config === undefined || config === null) throw new Error(`${runDir}: no run here yet; a config is required to start one`);
      cfg = resolveConfig(config);
      checkRecursiveWorld(cfg, root); // before the run is recorded or anything heavy starts
      checkSelectionSplit(cfg, root);
      run = store.createRun({ name: cfg.name, config: cfg, seed: cfg.seed, ...runEvalRecord(cfg, root) });
    } else {
      cfg = resolveConfig(run.config, `${runDir} stored config`, { stored: true });
      checkRecursiveWorld(cfg, root);
      checkSelectionSplit(cfg, root);
      store.setRunStatus('running');
    }
    const p = (x: string) => resolve(root, x);
    await initBackend();
    const dev = loadProblems(p(cfg.world.dev));
    const subsetIsFull = Math.min(cfg.eval.devSubset, dev.length) === dev.length;
    const rankBy = cfg.eval.rankBy; // every choice below ranks by it (strict-match or flexible-extract)
    // every evaluation (candidates, promotion, test, baselines, transfer): in this process (workers = 1, world + sandbox
    // loaded here), drained by worker processes started once per run (this process then loads no world), or on a queue
    const { runner, localCtx } = await openJobRunner(cfg, root, opts, run.status === 'done', (s) => emit({ type: 'queue', ...s }));
    if (localCtx) disposers.push(() => localCtx.close()); // workers = 1: recursive mode merges with this context too
    disposers.push(() => runner.close());
    const drain = <T>(items: T[], fn: (x: T) => Promise<void>) => drainJobs(items, runner.concurrency, fn, check, opts.signal);
    const files = loadPromptFiles(root, p(cfg.world.example));
    const prompt: FactoryPrompt = buildPrompt({ apiReference: files.apiReference, example: files.example });
    const seedOf = (hash: string) => deriveSeed(cfg.seed, `program:${hash}`);

    // --------------------------------------------------------------- iterations
    for (let t = 1; t <= cfg.iterations; t++) {
      check();
      const temperature = temperatureAt(cfg, t);
      const it = store.startIteration({ t, arm: cfg.arm, temperature, nTarget: cfg.samplesPerIteration });
      if (it.status === 'done') continue;
      emit({ type: 'iteration', t, temperature });
      const timings: Record<string, number> = { ...it.timings };

      // (1) sample — stored before any evaluation
      if (store.samples(it.id).length === 0) {
        const t0 = performance.now();
        // an endpoint or configuration error of the factory (FactoryEndpointError) ends the run here: nothing of the batch is stored
        const opened = await openLoopFactory(cfg, root, runDir, t, store);
        const factory = opened.factory;
        store.updateIteration(it.id, { sampledFrom: opened.source });
        try {
          const opts = { temperature, seed: deriveSeed(cfg.seed, `sample:${t}`), maxTokens: factoryMaxTokens(cfg) };
          let cands: Candidate[];
          let parents: (string | null)[] | null = null; // first parent of each sample (evolution and dpo-mutate)
          if (cfg.arm === 'dpo-novel' || cfg.arm === 'dpo-mutate') {
            // new programs only; dpo-mutate continues prefixes of the best programs so far from iteration 2
            const seen = new Set<string>();
            for (let u = 1; u < t; u++) {
              const prev = store.iteration(u, cfg.arm);
              if (prev) for (const s of store.samples(prev.id)) seen.add(s.hash);
            }
            const pool = cfg.arm === 'dpo-mutate' && t > 1 ? evolutionPool(store, cfg.arm) : [];
            const draw = pool.length ? mutationDraw(factory, prompt, pool, opts, cfg.factory.kind === 'builtin' ? (cfg.factory.batchSize ?? 8) : 8) : factoryDraw(factory, prompt, opts);
            const r = await sampleNovel(cfg.samplesPerIteration, seen, NOVEL_MAX_ROUNDS, draw);
            cands = r.drawn.map((d) => d.candidate);
            if (pool.length) parents = r.drawn.map((d) => d.parent);
            Object.assign(timings, { draws: r.draws, repeats: r.repeats, rounds: r.rounds });
          } else {
            cands = await factory.sample(prompt, cfg.samplesPerIteration, opts);
            if (factory instanceof EvolutionSampler) parents = factory.lastLineage.map((l) => l.parents[0] ?? null);
          }
          const res = store.addSamples(cands.map((c, i) => ({ iterationId: it.id, code: c.code ?? `/* no program extracted: ${c.error ?? 'unknown'} */\n${c.raw}`, origin: parents ? ('mutation' as const) : ('factory' as const), parentHash: parents?.[i] ?? null })));
          cands.forEach((c, i) => {
            const hash = res[i]!.hash;
            if (c.code === null && !store.evaluationFor(hash)) store.recordEvaluation({ hash, verdict: 'extract', message: c.error ?? 'no program extracted' });
          });
        } finally {
          await opened.release(); // also stops the factory server the loop started (before DPO)
        }
        timings.sample = performance.now() - t0;
        store.updateIteration(it.id, { status: 'evaluating', timings });
      }
      const samples = store.samples(it.id);
      emit({ type: 'sampled', t, n: samples.length });

      // (2) cascade + merge + dev subset, each recorded as it finishes (in completion order with workers > 1)
      const t1 = performance.now();
      const distinct = [...new Set(samples.map((s) => s.hash))];
      let done = 0;
      const evaluated = (hash: string, e: EvaluationRecord, cached: boolean) => emit({ type: 'evaluated', t, hash, done: ++done, total: distinct.length, verdict: e.verdict, score: screenScore(e, rankBy), cached });
      for (const hash of distinct) {
        const e = store.evaluationFor(hash);
        if (e) evaluated(hash, e, true);
      }
      await drain(distinct.filter((h) => !store.evaluationFor(h)), async (hash) => {
        const r = await runner.run({ code: store.programByHash(hash)!.code, seed: seedOf(hash), set: 'subset' });
        const e = r.ok
          ? store.recordEvaluation({ hash, verdict: 'ok', devSubset: rankBy === 'flexible' ? r.scores.flexible : r.scores.strict, ...(subsetIsFull ? { devStrict: r.scores.strict, devFlex: r.scores.flexible, families: r.scores.families } : {}), sandboxMs: r.sandboxMs, mergeMs: r.mergeMs, evalMs: r.evalMs, scoredBy: r.worker })
          : store.recordEvaluation({ hash, verdict: r.verdict, message: r.message, sandboxMs: r.sandboxMs, scoredBy: r.worker });
        evaluated(hash, e, false);
      });
      // promotion: the top fraction by subset score gets the full dev set
      const valid = distinct.flatMap((h) => {
        const e = store.evaluationFor(h);
        return e && e.verdict === 'ok' && e.devSubset !== null ? [{ hash: h, score: e.devSubset, e }] : [];
      });
      valid.sort(byScoreThenHash);
      const nPromote = Math.max(1, Math.ceil(valid.length * cfg.eval.promoteTopFraction));
      await drain(valid.slice(0, nPromote).filter((v) => v.e.devStrict === null), async (v) => {
        const r = await runner.run({ code: store.programByHash(v.hash)!.code, seed: seedOf(v.hash), set: 'dev' });
        // a failure (e.g. a time limit hit under load): the program leaves the valid set, the run goes on
        if (!r.ok) store.recordEvaluation({ hash: v.hash, verdict: r.verdict, message: `failed on re-merge for full dev: ${r.message}` });
        else store.recordEvaluation({ hash: v.hash, devStrict: r.scores.strict, devFlex: r.scores.flexible, families: r.scores.families });
      });
      timings.evaluate = (timings.evaluate ?? 0) + (performance.now() - t1);
      store.updateIteration(it.id, { status: 'training', timings });

      // (3) preference pairs
      check();
      if (store.pairs(it.id).length === 0) {
        const ranked = distinct.flatMap((h) => {
          const s = screenScore(store.evaluationFor(h), rankBy);
          return s === null ? [] : [{ hash: h, score: s }];
        }).sort(byScoreThenHash);
        const nWin = ranked.length ? Math.max(1, Math.round(ranked.length * cfg.pWin)) : 0;
        const nLose = ranked.length > 1 ? Math.max(1, Math.round(ranked.length * cfg.pLose)) : 0;
        const chosen: { hash: string; score: number; source: 'current' | 'carried' }[] = ranked.slice(0, nWin).map((r) => ({ ...r, source: 'current' as const }));
        const rejected = ranked.slice(Math.max(nWin, ranked.length - nLose));
        if (cfg.failedAsRejected) for (const h of distinct) if (screenScore(store.evaluationFor(h), rankBy) === null) rejected.push({ hash: h, score: 0 });
        for (let u = 1; u < t; u++) {
          const prev = store.iteration(u, cfg.arm);
          if (!prev) continue;
          const prevRanked = store.iterationPrograms(prev.id).flatMap((r) => (r.verdict === 'ok' ? [{ hash: r.hash, score: screenScoreIn(r, rankBy) ?? 0 }] : [])).sort(byScoreThenHash);
          for (const c of prevRanked.slice(0, cfg.carryTopK)) if (!chosen.some((x) => x.hash === c.hash)) chosen.push({ ...c, source: 'carried' as const });
        }
        const pairs = chosen.flatMap((c) => rejected.filter((r) => r.hash !== c.hash && r.score < c.score).map((r) => ({ chosenHash: c.hash, rejectedHash: r.hash, chosenScore: c.score, rejectedScore: r.score, source: c.source })));
        if (pairs.length) store.addPairs(it.id, prompt.text, pairs);
      }

      // (4a) recursive mode: the merge of this iteration's best program as a full HF folder (recursive.ts) —
      // the next factory, DPO-trained first when there are pairs. With workers > 1 this process loads
      // its own world for the merge, only while it writes (freed before the next iteration).
      if (cfg.recursive && cfg.arm === 'dpo') {
        check();
        const t2 = performance.now();
        const own: { ctx?: EvalContext } = {};
        try {
          await ensureMergedFactory({
            cfg, root, runDir, t, iterationId: it.id, store, seedOf,
            evaluator: async () => memoryEvaluator(localCtx ?? (own.ctx ??= await openEvalContext(cfg, root))),
          });
        } finally {
          own.ctx?.close();
        }
        timings.mergedFactory = performance.now() - t2;
      }

      // (4) DPO on the factory
      check();
      const t3 = performance.now();
      const ckpt = trainsFactory(cfg.arm) ? await trainFactory(cfg, root, runDir, t, it.id, store, prompt) : skipTraining(cfg.arm, runDir, t, it.id, store);
      timings.dpo = performance.now() - t3;
      store.updateIteration(it.id, { status: 'done', factoryCheckpoint: ckpt.checkpoint, timings: { ...timings, ...ckpt.timings } });
    }

    // --------------------------------------------------------------- final stage
    // dev screens, the selection split chooses, test only reports: the top selectTopK by full dev are scored on
    // world.select and the best of them there is the run's best program; the top topKTest by dev, plus that program
    // when it is not among them, are scored on test; with eval.testAll every valid program too (measurement only).
    // Each score is stored as it arrives, so a resumed run scores only what is missing. Passes repeat until none has
    // work: a program that fails on re-merge leaves the valid set and the next one enters a top-k (new work for an
    // earlier phase).
    const scoreOn = (set: 'select' | 'test') => async (a: { hash: string }) => {
      const r = await runner.run({ code: store.programByHash(a.hash)!.code, seed: seedOf(a.hash), set });
      if (!r.ok) store.recordEvaluation({ hash: a.hash, verdict: r.verdict, message: `failed on re-merge for ${set}: ${r.message}` });
      else if (set === 'select') store.recordEvaluation({ hash: a.hash, selectStrict: r.scores.strict, selectFlex: r.scores.flexible });
      else store.recordEvaluation({ hash: a.hash, testStrict: r.scores.strict, testFlex: r.scores.flexible });
    };
    const chosen = () => bestBySelection(store.leaderboard(cfg.selectTopK, { arm: cfg.arm }), rankBy);
    const phases: { name: string; pending: () => { hash: string }[]; run: (a: { hash: string }) => Promise<void> }[] = [
      { name: 'select', pending: () => store.pendingWork({ selectTopK: cfg.selectTopK, arm: cfg.arm }).awaitingSelect, run: scoreOn('select') },
      {
        name: 'test',
        pending: () => {
          const pend: { hash: string }[] = store.pendingWork({ topK: cfg.topKTest, arm: cfg.arm }).awaitingTest;
          const b = chosen();
          if (b && b.testStrict === null && !pend.some((x) => x.hash === b.hash)) pend.push({ hash: b.hash });
          return pend;
        },
        run: scoreOn('test'),
      },
      ...(cfg.eval.testAll ? [{ name: 'test-all', pending: () => store.rankedPrograms({ arm: cfg.arm }).filter((r) => r.devStrict !== null && r.testStrict === null), run: scoreOn('test') }] : []),
    ];
    const announced = new Set<string>();
    for (let busy = true; busy; ) {
      busy = false;
      for (const ph of phases) {
        if (!announced.has(ph.name)) {
          announced.add(ph.name);
          emit({ type: 'phase', t: null, phase: ph.name });
        }
        for (let pend = ph.pending(); pend.length; pend = ph.pending()) {
          busy = true;
          await drain(pend, ph.run);
        }
      }
    }

    emit({ type: 'phase', t: null, phase: 'baselines' });
    await runBaselines(store, runner, drain, 'in-domain', cfg);
    const top = store.leaderboard(cfg.topKTest, { arm: cfg.arm });
    if (cfg.world.oodExperts.length) {
      emit({ type: 'phase', t: null, phase: 'transfer' });
      const have = new Set(store.transfers().map((r) => r.hash));
      await drain([...top.slice(0, 3).entries()].filter(([, row]) => !have.has(row.hash)), async ([i, row]) => {
        const job = { code: row.code, seed: seedOf(row.hash), experts: 'ood' as const };
        const d = await runner.run({ ...job, set: 'dev' });
        const s = d.ok ? await runner.run({ ...job, set: 'test' }) : d;
        if (!d.ok || !s.ok) store.addTransfer({ hash: row.hash, sourceRank: i + 1, expertSet: 'ood' });
        else store.addTransfer({ hash: row.hash, sourceRank: i + 1, expertSet: 'ood', devStrict: d.scores.strict, devFlex: d.scores.flexible, testStrict: s.scores.strict, testFlex: s.scores.flexible });
      });
      await runBaselines(store, runner, drain, 'ood', cfg);
    }

    // exports: the best program by the selection split (the top program by dev only when nothing has a selection score)
    const best = chosen() ?? top[0] ?? null;
    const byTest = bestByTest(top, rankBy);
    if (best) {
      writeFileAtomic(join(runDir, 'best-algorithm.js'), exportableProgram(best.code, cfg.tensorFilter, seedOf(best.hash), best));
      const yml = yamlStringify({ merge_method: 'custom', algorithm: 'best-algorithm.js', base_model: resolve(p(cfg.world.seedModel)), models: cfg.world.experts.map((e) => ({ model: resolve(p(e)) })), dtype: 'float32' });
      writeFileAtomic(join(runDir, 'best-merge.yml'), yml);
    }
    const reportPath = join(runDir, 'report.html');
    store.setRunStatus('done'); // first: the report shows the finished run (status, finish time)
    writeReport(store, reportPath);
    emit({ type: 'done', best, bestByTestTopK: byTest });
    return {
      runDir,
      leaderboard: store.leaderboard(cfg.topKTest, { arm: cfg.arm }),
      best,
      bestByTestTopK: byTest,
      baselines: store.baselines({ selectedOnly: true }).map((b) => ({ name: `${b.name} (${b.expertSet})`, devStrict: b.devStrict, testStrict: b.testStrict })),
      reportPath,
    };
  } catch (e) {
    if (e instanceof Aborted) {
      try {
        store.setRunStatus('interrupted');
      } catch {
        /* closing anyway */
      }
    }
    throw e;
  } finally {
    for (const d of disposers.reverse()) await d();
  }
}

/**
 * The program as `selfdev merge` (merge_method: custom) should run it: the loop merged only the
 * tensors of its tensor filter, so unless the filter is 'all' the program's merge is renamed and
 * wrapped to return a zero task vector (= keep the seed) for the other tensors.
 */
export function exportableProgram(code: string, filter: string, seed: number, row: { hash: string; devStrict: number | null; testStrict: number | null; selectStrict?: number | null }): string {
  const header = `// Discovered by selfdev run (program ${row.hash}; dev ${row.devStrict ?? '-'}, select ${row.selectStrict ?? '-'}, test ${row.testStrict ?? '-'}).\n// The loop merged with ctx.seed = ${seed} and tensor filter ${JSON.stringify(filter)}.\n`;
  if (filter === 'all') return header + code;
  const re = /\bfunction\s+merge\s*\(/;
  if (!re.test(code)) return header + code;
  const test = filter.startsWith('re:') ? `new RegExp(${JSON.stringify(filter.slice(3))}).test(ctx.name)` : `${JSON.stringify(filter.split(',').map((k) => k.trim()))}.includes(ctx.kind)`;
  return `${header}${code.replace(re, 'function discoveredMerge(')}\n// tensor filter of the loop: other tensors keep the seed\nfunction merge(taskVectors, ctx) {\n  if (!(${test})) return taskVectors[0].mul(0);\n  return discoveredMerge(taskVectors, ctx);\n}\n`;
}

/** Seed and task arithmetic (λ grid tuned on dev, the best λ then on test), as runner jobs: in parallel with workers > 1. */
async function runBaselines(store: RunStore, runner: JobRunner, drain: <T>(items: T[], fn: (x: T) => Promise<void>) => Promise<void>, expertSet: 'in-domain' | 'ood', cfg: LoopConfig): Promise<void> {
  const have = store.baselines({ expertSet });
  const find = (name: string, params: unknown) => have.find((b) => b.name === name && JSON.stringify(b.params) === JSON.stringify(params));
  const score = async (baseline: 'seed' | { lambda: number }, set: EvalSet): Promise<Scores> => {
    const r = await runner.run({ baseline, set, experts: expertSet });
    if (!r.ok) throw new Error(`baseline ${JSON.stringify(baseline)} (${expertSet}) on ${set}: ${r.verdict}: ${r.message}`);
    return r.scores;
  };
  const lambdas = [...new Set(cfg.baselines.lambdas)];
  // dev scores per λ (both metrics); the λ is chosen by the run's ranking metric
  const devOf = new Map(lambdas.flatMap((l) => {
    const prev = find('task_arithmetic', { lambda: l });
    return prev ? [[l, { strict: prev.devStrict, flex: prev.devFlex }] as const] : [];
  }));
  const todo: ('seed' | number)[] = [...(find('seed', {}) ? [] : ['seed' as const]), ...lambdas.filter((l) => !devOf.has(l))];
  await drain(todo, async (x) => {
    if (x === 'seed') {
      const d = await score('seed', 'dev');
      const s = await score('seed', 'test');
      store.addBaseline({ name: 'seed', method: 'none', params: {}, expertSet, selected: true, devStrict: d.strict, devFlex: d.flexible, testStrict: s.strict, testFlex: s.flexible });
      return;
    }
    const d = await score({ lambda: x }, 'dev');
    store.addBaseline({ name: 'task_arithmetic', method: 'task_arithmetic', params: { lambda: x }, expertSet, selected: false, devStrict: d.strict, devFlex: d.flexible });
    devOf.set(x, { strict: d.strict, flex: d.flexible });
  });
  const rankDev = (l: number) => scoreIn({ devStrict: devOf.get(l)!.strict, devFlex: devOf.get(l)!.flex }, 'dev', cfg.eval.rankBy) ?? 0;
  const bestL = [...lambdas].sort((a, b) => rankDev(b) - rankDev(a) || a - b)[0]!;
  const sel = find('task_arithmetic', { lambda: bestL });
  if (!sel || sel.testStrict === null || !sel.selected) {
    const s = await score({ lambda: bestL }, 'test');
    const d = devOf.get(bestL)!;
    store.addBaseline({ name: 'task_arithmetic', method: 'task_arithmetic', params: { lambda: bestL }, expertSet, selected: true, devStrict: d.strict ?? 0, devFlex: d.flex, testStrict: s.strict, testFlex: s.flexible });
  }
}

/** Step (4). Returns the factory checkpoint (relative to runDir) or null, plus timing flags. */
export async function trainFactory(cfg: LoopConfig, root: string, runDir: string, t: number, iterationId: number, store: RunStore, prompt: FactoryPrompt): Promise<{ checkpoint: string | null; timings: Record<string, number> }> {
  const pairsPath = join(runDir, 'pairs', `iter-${t}.jsonl`);
  // in the format the factory samples in (pairs-format.ts): TRL conversational for chat, standard otherwise
  const nPairs = store.exportPairsJsonl(iterationId, pairsPath, samplesInChat(cfg) ? { format: conversationalPair(prompt.messages) } : {});
  const f = cfg.factory;
  // recursive mode: DPO starts from (and is referenced to) this iteration's best merge, when there is one
  const merged = cfg.recursive ? (store.iterationById(iterationId)?.mergedCheckpoint ?? null) : null;
  if (nPairs === 0) return { checkpoint: merged ?? store.iteration(t - 1, cfg.arm)?.factoryCheckpoint ?? null, timings: { dpoSkipped: 1, pairs: 0 } };
  if (f.kind === 'builtin') {
    const rel = join('factory', `iter-${t}`);
    const out = join(runDir, rel);
    if (existsSync(join(out, 'config.json')) && store.dpoSteps(iterationId).length > 0) return { checkpoint: rel, timings: { pairs: nPairs } };
    const prev = merged ?? (t > 1 ? store.iteration(t - 1, cfg.arm)?.factoryCheckpoint : null);
    const src = prev ? resolve(runDir, prev) : resolve(root, f.dir);
    const pairs = store.pairs(iterationId).map((r) => ({ chosen: store.programByHash(r.chosenHash)!.code, rejected: store.programByHash(r.rejectedHash)!.code }));
    const log = dpoTrainBuiltinFactory({
      src, out, prompt: prompt.text, maxPromptTokens: f.maxPromptTokens, pairs,
      dpo: { epochs: cfg.dpo.epochs, lr: cfg.dpo.lr, batchSize: cfg.dpo.batchSize, beta: cfg.dpo.beta, lossType: cfg.dpo.lossType, nllAlpha: cfg.dpo.nllAlpha, seed: deriveSeed(cfg.seed, `dpo:${t}`), maxLen: cfg.dpo.maxLen },
    });
    store.addDpoSteps(iterationId, log.map((s) => ({ step: s.step, loss: s.loss, rewardsChosen: s['rewards/chosen'], rewardsRejected: s['rewards/rejected'], margin: s['rewards/margins'], accuracy: s['rewards/accuracies'], logpsChosen: s['logps/chosen'], logpsRejected: s['logps/rejected'], lr: s.lr })));
    return { checkpoint: rel, timings: { pairs: nPairs } };
  }
  if ((f.kind === 'openai' || f.kind === 'llamacpp') && cfg.dpo.command) {
    const rel = join('factory', `iter-${t}`);
    const out = join(runDir, rel);
    const complete = (dir: string) => existsSync(dir) && (f.kind !== 'llamacpp' || existsSync(join(dir, 'model.gguf')));
    if (complete(out)) return { checkpoint: rel, timings: { pairs: nPairs } }; // resumed after the trainer finished
    // the trainer writes into a scratch folder, renamed to factory/iter-t only when it succeeded
    const partial = join(runDir, 'factory', `.iter-${t}.partial`);
    rmSync(partial, { recursive: true, force: true });
    mkdirSync(partial, { recursive: true });
    const prev = t > 1 ? store.iteration(t - 1, cfg.arm)?.factoryCheckpoint : null;
    try {
      execFileSync('sh', ['-c', cfg.dpo.command], { stdio: 'inherit', env: { ...process.env, PAIRS: pairsPath, OUT: partial, ITER: String(t), PREV: prev ? resolve(runDir, prev) : '', SEED: String(deriveSeed(cfg.seed, `dpo:${t}`)) } });
    } catch (e) {
      throw new Error(`dpo.command failed in iteration ${t} (${(e as Error).message.split('\n')[0]}); its output folder was ${partial}`);
    }
    if (!complete(partial)) throw new Error(`dpo.command finished but wrote no ${join(partial, 'model.gguf')}: a llamacpp factory loads the next iteration's model from $OUT/model.gguf`);
    replaceDir(partial, out);
    return { checkpoint: rel, timings: { pairs: nPairs } };
  }
  // corpus arm, or no trainer configured: nothing to train (recorded as skipped)
  writeFileSync(join(runDir, 'pairs', `iter-${t}.skipped`), `no trainer for factory kind ${f.kind}\n`);
  return { checkpoint: null, timings: { dpoSkipped: 1, pairs: nPairs } };
}
