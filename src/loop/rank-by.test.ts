// eval.rankBy: the loop ranks programs by lm-eval's gsm8k strict-match (default) or flexible-extract.
// A fake job runner scores every program with flexible = 1 − strict, so the two orders are reversed:
// with rankBy flexible the leaderboard, the screening score, the pairs, the evolution pool, the
// selection and the exported best program all follow flexible; with the default they follow strict.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from '../io/testing.ts';
import { RunStore, programHash } from '../store/store.ts';
import { resolveConfig } from './config.ts';
import { runLoop } from './controller.ts';
import { evolutionPool } from './arms.ts';
import { rankByFullDev } from './recursive.ts';
import { bestBySelection, bestByTest } from './selection.ts';
import type { EvalJob, JobResult, JobRunner } from './pool.ts';

/** Strict accuracy of a program on any split: from its hash (distinct programs, distinct scores); flexible is 1 − strict. */
const strictOf = (hash: string, set: string) => ((parseInt(hash.slice(0, 8), 16) + (set === 'select' ? 7 : set === 'test' ? 13 : 0)) % 1000) / 1000;

class ReversedRunner implements JobRunner {
  readonly concurrency = 1;
  run(job: EvalJob): Promise<JobResult> {
    // baselines (no code): λ 0.5 is better by strict, λ 1 by flexible
    const strict = 'code' in job ? strictOf(programHash(job.code), job.set) : 'baseline' in job && typeof job.baseline === 'object' ? (job.baseline.lambda === 0.5 ? 0.6 : 0.2) : 0.3;
    return Promise.resolve({ ok: true, scores: { strict, flexible: 1 - strict, families: {} }, sandboxMs: 0, mergeMs: 0, evalMs: 0 });
  }
  async close(): Promise<void> {}
}

function setup(dir: string, rankBy?: string) {
  const lines = (f: string) => readFileSync(join('world', 'bench', f), 'utf8').split('\n').filter(Boolean).slice(0, 2).join('\n') + '\n';
  for (const f of ['dev.jsonl', 'test.jsonl', 'select.jsonl']) writeFileSync(join(dir, f), lines(f));
  return {
    name: 'rank', seed: 5, workers: 1, iterations: 1, samplesPerIteration: 12, factory: { kind: 'corpus' }, pWin: 0.2, pLose: 0.2,
    eval: { devSubset: 2, ...(rankBy ? { rankBy } : {}) }, topKTest: 2, selectTopK: 3, baselines: { lambdas: [0.5, 1] },
    world: { seedModel: 'unused-seed', experts: ['unused-expert'], dev: join(dir, 'dev.jsonl'), test: join(dir, 'test.jsonl'), select: join(dir, 'select.jsonl') },
  };
}

async function run(rankBy: 'strict' | 'flexible' | undefined) {
  const tmp = makeTempDir('selfdev-rankby-');
  const runDir = join(tmp.path, 'run');
  const res = await runLoop(setup(tmp.path, rankBy), runDir, { runner: new ReversedRunner() });
  return { tmp, runDir, res, store: RunStore.open(runDir, { readonly: true }) };
}

test('eval.rankBy flexible: leaderboard, screening score, pairs, evolution pool, selection, best program and baselines follow flexible-extract (strict order reversed)', async () => {
  const flex = await run('flexible');
  const strict = await run(undefined);
  try {
    for (const [r, metric] of [[flex, 'flexible'], [strict, 'strict']] as const) {
      const s = r.store;
      const score = (x: { devStrict: number | null; devFlex: number | null }) => (metric === 'flexible' ? x.devFlex! : x.devStrict!);
      assert.equal(s.rankMetric(), metric);
      assert.equal((s.run().evalProtocol as { rankBy: string }).rankBy, metric, 'recorded with the protocol');
      const all = s.rankedPrograms();
      assert.ok(all.length >= 6, `enough programs (${all.length})`);
      for (const x of all) assert.equal(x.devFlex, 1 - x.devStrict!, 'the fake runner reverses the orders');
      assert.deepEqual(all.map(score), all.map(score).sort((a, b) => b - a), `leaderboard by dev ${metric}, best first`);
      for (const x of all) assert.equal(x.devSubset, score(x), 'the screening score is in the ranking metric');
      // the best program: best on select among the top 3 by dev, in the metric
      const top3 = all.slice(0, 3);
      const sel = (x: (typeof all)[number]) => (metric === 'flexible' ? x.selectFlex! : x.selectStrict!);
      const want = [...top3].sort((a, b) => sel(b) - sel(a))[0]!;
      assert.equal(r.res.best?.hash, want.hash);
      assert.equal(bestBySelection(top3, metric)?.hash, want.hash);
      assert.match(readFileSync(join(r.runDir, 'best-algorithm.js'), 'utf8'), new RegExp(`program ${want.hash}`));
      const testOf = (x: (typeof all)[number]) => (metric === 'flexible' ? x.testFlex! : x.testStrict!);
      const top2 = s.leaderboard(2);
      assert.equal(r.res.bestByTestTopK?.hash, [...top2].sort((a, b) => testOf(b) - testOf(a))[0]!.hash);
      assert.equal(bestByTest(top2, metric)?.hash, r.res.bestByTestTopK?.hash);
      // pairs: chosen from the top, rejected from the bottom, by the metric
      const it = s.iterations()[0]!;
      const pairs = s.pairs(it.id);
      assert.ok(pairs.length > 0);
      const byHash = new Map(all.map((x) => [x.hash, x]));
      for (const p of pairs) {
        assert.equal(p.chosenScore, score(byHash.get(p.chosenHash)!));
        assert.equal(p.rejectedScore, score(byHash.get(p.rejectedHash)!));
        assert.ok(p.chosenScore > p.rejectedScore);
      }
      assert.ok(pairs.some((p) => p.chosenHash === all[0]!.hash), 'the top program is chosen');
      // evolution pool and the recursive mode's ranking
      assert.deepEqual(evolutionPool(s, 'dpo', 4).map((p) => p.hash), all.slice(0, 4).map((x) => x.hash));
      assert.deepEqual(rankByFullDev(s, it.id).map((p) => p.hash), all.map((x) => x.hash));
      // baselines: λ chosen on dev by the metric (0.5 by strict, 1 by flexible)
      const ta = s.baselines({ selectedOnly: true }).find((b) => b.name === 'task_arithmetic')!;
      assert.deepEqual(ta.params, { lambda: metric === 'flexible' ? 1 : 0.5 });
      // the report says which metric ranks
      assert.match(readFileSync(r.res.reportPath, 'utf8'), metric === 'flexible' ? /by full-dev flexible-extract accuracy/ : /by full-dev strict accuracy/);
    }
    // the orders really differ: the two runs pick different programs
    assert.notEqual(flex.store.rankedPrograms()[0]!.hash, strict.store.rankedPrograms()[0]!.hash);
    assert.notEqual(flex.res.best?.hash, strict.res.best?.hash);
    // and the eval key differs only for flexible (strict runs keep the keys they had)
    assert.equal((strict.store.evalConfig(strict.store.run().evalKey) as Record<string, unknown>).rankBy, undefined);
    assert.equal((flex.store.evalConfig(flex.store.run().evalKey) as Record<string, unknown>).rankBy, 'flexible');
  } finally {
    for (const r of [flex, strict]) {
      r.store.close();
      r.tmp.cleanup();
    }
  }
});

test('eval.rankBy config: default strict; unknown values rejected by name', () => {
  const world = { seedModel: 's', experts: ['e'] };
  assert.equal(resolveConfig({ world }).eval.rankBy, 'strict');
  assert.equal(resolveConfig({ world, eval: { rankBy: 'flexible' } }).eval.rankBy, 'flexible');
  for (const bad of ['exact', 'Flexible', 'flexible-extract', 1, null]) {
    assert.throws(() => resolveConfig({ world, eval: { rankBy: bad } }), new RegExp(`config: eval\\.rankBy must be 'strict' or 'flexible' \\(lm-eval's gsm8k strict-match or flexible-extract\\), got ${JSON.stringify(bad).replace(/[.[\]]/g, '\\$&')}`));
  }
  assert.throws(() => resolveConfig({ world, eval: { rankby: 'strict' } }), /unknown key eval\.rankby/);
});
