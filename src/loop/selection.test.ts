// The selection split in the loop, on a fake job runner (no world is loaded): scores are a function of
// the program's rank by dev, designed so that the best program by dev, by the selection split and by
// test among the top-k are three different programs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from '../io/testing.ts';
import { RunStore, programHash } from '../store/store.ts';
import { resolveConfig } from './config.ts';
import { runLoop, type LoopEvent } from './controller.ts';
import type { EvalJob, JobResult, JobRunner } from './pool.ts';
import { bestBySelection, bestByTest } from './selection.ts';

/** By dev rank (1 = best by dev): select makes rank 3 the best, test (top-2) makes rank 2 the best, ranks ≥ 4 are best on test of all. */
const SELECT_BY_RANK = [0.3, 0.4, 0.5];
const TEST_BY_RANK = [0.6, 0.7, 0.55];
const TEST_BELOW = 0.9;

/** Dev score of a program: from its hash, so distinct programs get (almost surely) distinct scores. */
const devOf = (hash: string) => parseInt(hash.slice(0, 8), 16) / 2 ** 32;

class FakeRunner implements JobRunner {
  readonly concurrency = 1;
  readonly jobs: { hash: string | null; set: string }[] = [];
  /**
   * crash: throws (a simulated crash of the run) when it returns true for the job about to run (n: jobs of that set so far).
   * valid: the programs scored on dev so far, which define the ranks (a resumed run's runner gets the crashed one's).
   */
  constructor(
    private readonly crash: (job: { hash: string | null; set: string }, n: number) => boolean = () => false,
    readonly valid = new Set<string>(),
  ) {}

  rank(hash: string): number {
    return [...this.valid].sort((a, b) => devOf(b) - devOf(a)).indexOf(hash) + 1;
  }

  run(job: EvalJob): Promise<JobResult> {
    const hash = 'code' in job ? programHash(job.code) : null;
    const rec = { hash, set: job.set };
    if (this.crash(rec, this.jobs.filter((j) => j.set === job.set).length)) return Promise.reject(new Error('simulated crash'));
    this.jobs.push(rec);
    const ok = (strict: number): Promise<JobResult> => Promise.resolve({ ok: true, scores: { strict, flexible: strict, families: {} }, sandboxMs: 0, mergeMs: 0, evalMs: 0 });
    if (hash === null) return ok(0.25); // baselines
    if (job.set === 'subset' || job.set === 'dev') {
      this.valid.add(hash);
      return ok(devOf(hash));
    }
    const r = this.rank(hash);
    assert.ok(r >= 1, `a ${job.set} job for a program never scored on dev`);
    if (job.set === 'select') return ok(SELECT_BY_RANK[r - 1] ?? 0.1);
    return ok(TEST_BY_RANK[r - 1] ?? TEST_BELOW);
  }

  async close(): Promise<void> {}
}

function setup(dir: string, over: Record<string, unknown> = {}, worldOver: Record<string, unknown> = {}) {
  const lines = (f: string, n: number, from = 0) => readFileSync(join('world', 'bench', f), 'utf8').split('\n').filter(Boolean).slice(from, from + n).join('\n') + '\n';
  writeFileSync(join(dir, 'dev.jsonl'), lines('dev.jsonl', 2));
  writeFileSync(join(dir, 'test.jsonl'), lines('test.jsonl', 2));
  writeFileSync(join(dir, 'select.jsonl'), lines('select.jsonl', 2));
  return {
    name: 'fake', seed: 11, workers: 1, iterations: 1, samplesPerIteration: 12, factory: { kind: 'corpus' },
    eval: { devSubset: 2 }, topKTest: 2, selectTopK: 3, baselines: { lambdas: [0.5] },
    world: { seedModel: 'unused-seed', experts: ['unused-expert'], dev: join(dir, 'dev.jsonl'), test: join(dir, 'test.jsonl'), select: join(dir, 'select.jsonl'), ...worldOver },
    ...over,
  };
}

test('the best program is chosen on the selection split: best by dev, by select and by test among the top-k are three programs, the run exports the select one', async () => {
  const tmp = makeTempDir('selfdev-select-');
  try {
    const runner = new FakeRunner();
    const events: LoopEvent[] = [];
    const runDir = join(tmp.path, 'run');
    const res = await runLoop(setup(tmp.path), runDir, { runner, onEvent: (e) => events.push(e) });
    const store = RunStore.open(runDir, { readonly: true });
    try {
      const all = store.rankedPrograms({ arm: 'dpo' });
      assert.ok(all.length >= 5, `enough distinct valid programs (${all.length})`);
      assert.equal(new Set(all.map((r) => r.devStrict)).size, all.length, 'distinct dev scores: the ranks are the fake runner\'s');
      const [r1, r2, r3] = all;
      // the construction: three different winners
      assert.equal(res.leaderboard[0]!.hash, r1!.hash, 'best by dev is rank 1');
      assert.equal(res.bestByTestTopK?.hash, r2!.hash, 'best of the top 2 by test is rank 2');
      assert.equal(res.best?.hash, r3!.hash, 'best by the selection split is rank 3');
      assert.deepEqual([res.best!.selectStrict, res.best!.testStrict, res.best!.devStrict], [0.5, 0.55, r3!.devStrict]);
      assert.equal(res.bestByTestTopK!.testStrict, 0.7);
      // select: exactly the top selectTopK by dev, each once; test: the top topKTest + the chosen one (rank 3), each once
      const jobs = (set: string) => runner.jobs.filter((j) => j.set === set && j.hash !== null).map((j) => j.hash);
      assert.deepEqual(jobs('select').sort(), [r1, r2, r3].map((r) => r!.hash).sort());
      assert.deepEqual(jobs('test').sort(), [r1, r2, r3].map((r) => r!.hash).sort());
      assert.deepEqual(all.slice(3).map((r) => [r.selectStrict, r.testStrict]), all.slice(3).map(() => [null, null]), 'nothing below the top 3 is scored on select or test');
      // exports and events follow the choice
      assert.match(readFileSync(join(runDir, 'best-algorithm.js'), 'utf8'), new RegExp(`program ${r3!.hash}; dev ${r3!.devStrict}, select 0\\.5, test 0\\.55`));
      const done = events.find((e) => e.type === 'done');
      assert.ok(done && done.type === 'done');
      assert.equal(done.best?.hash, r3!.hash);
      assert.equal(done.bestByTestTopK?.hash, r2!.hash);
      assert.deepEqual(events.flatMap((e) => (e.type === 'phase' ? [e.phase] : [])), ['select', 'test', 'baselines']);
      // the report shows the choice
      const html = readFileSync(res.reportPath, 'utf8');
      assert.match(html, /id="choosing"/);
      assert.ok(html.includes(r3!.hash.slice(0, 10)));
      // helpers agree with the store
      assert.equal(bestBySelection(store.leaderboard(3))!.hash, r3!.hash);
      assert.equal(bestByTest(store.leaderboard(2))!.hash, r2!.hash);
    } finally {
      store.close();
    }
  } finally {
    tmp.cleanup();
  }
});

test('a crash in the select phase resumes without re-scoring anything stored; a crash in the test phase too; same result as an uninterrupted run', async () => {
  const tmp = makeTempDir('selfdev-select-');
  try {
    const straight = await runLoop(setup(tmp.path), join(tmp.path, 'straight'), { runner: new FakeRunner() });
    const runDir = join(tmp.path, 'crashed');
    // crash on the second select job: one select score is stored
    const first = new FakeRunner((j, n) => j.set === 'select' && n === 1);
    await assert.rejects(runLoop(setup(tmp.path), runDir, { runner: first }), /simulated crash/);
    let s = RunStore.open(runDir, { readonly: true });
    const selected = s.rankedPrograms().filter((r) => r.selectStrict !== null).map((r) => r.hash);
    assert.equal(s.run().status, 'running');
    s.close();
    assert.equal(selected.length, 1, 'one select score stored before the crash');
    // resume, crash again in the test phase after one test score
    const second = new FakeRunner((j, n) => j.set === 'test' && n === 1, first.valid);
    await assert.rejects(runLoop(undefined, runDir, { runner: second }), /simulated crash/);
    assert.deepEqual(second.jobs.filter((j) => j.set === 'subset' || j.set === 'dev'), [], 'no candidate is scored again on dev');
    const sel2 = second.jobs.filter((j) => j.set === 'select').map((j) => j.hash);
    assert.equal(sel2.length, 2, 'the two missing select scores');
    assert.ok(!sel2.includes(selected[0]!), 'the stored select score is not recomputed');
    s = RunStore.open(runDir, { readonly: true });
    const tested = s.rankedPrograms().filter((r) => r.testStrict !== null).map((r) => r.hash);
    s.close();
    assert.equal(tested.length, 1);
    // resume to the end
    const third = new FakeRunner(undefined, first.valid);
    const resumed = await runLoop(undefined, runDir, { runner: third });
    assert.deepEqual(third.jobs.filter((j) => j.set !== 'test' && j.hash !== null), [], 'nothing but the missing test scores (and baselines)');
    const test3 = third.jobs.filter((j) => j.set === 'test' && j.hash !== null).map((j) => j.hash);
    assert.equal(test3.length, 2);
    assert.ok(!test3.includes(tested[0]!), 'the stored test score is not recomputed');
    assert.equal(resumed.best?.hash, straight.best?.hash);
    assert.equal(resumed.bestByTestTopK?.hash, straight.bestByTestTopK?.hash);
    const key = (r: typeof straight) => r.leaderboard.map((x) => [x.hash, x.devStrict, x.selectStrict, x.testStrict]);
    assert.deepEqual(key(resumed), key(straight));
    // a finished run rerun scores nothing
    const fourth = new FakeRunner(undefined, first.valid);
    assert.equal((await runLoop(undefined, runDir, { runner: fourth })).best?.hash, straight.best?.hash);
    assert.deepEqual(fourth.jobs.filter((j) => j.hash !== null), []);
  } finally {
    tmp.cleanup();
  }
});

test('eval.testAll scores every valid program on test, and changes no choice', async () => {
  const tmp = makeTempDir('selfdev-select-');
  try {
    const runner = new FakeRunner();
    const events: string[] = [];
    const runDir = join(tmp.path, 'run');
    const res = await runLoop(setup(tmp.path, { eval: { devSubset: 2, testAll: true } }), runDir, { runner, onEvent: (e) => e.type === 'phase' && events.push(e.phase) });
    assert.deepEqual(events, ['select', 'test', 'test-all', 'baselines']);
    const s = RunStore.open(runDir, { readonly: true });
    try {
      const all = s.rankedPrograms();
      assert.ok(all.length >= 5);
      assert.ok(all.every((r) => r.devStrict !== null && r.testStrict !== null), 'every valid program has a test score');
      assert.deepEqual(all.slice(3).map((r) => r.testStrict), all.slice(3).map(() => TEST_BELOW), 'programs below the top 3 score best on test');
      const tests = runner.jobs.filter((j) => j.set === 'test' && j.hash !== null).map((j) => j.hash);
      assert.equal(tests.length, all.length, 'each scored on test exactly once');
      assert.equal(new Set(tests).size, all.length);
      // still chosen on select (rank 3), the paper's row still within the top 2 by dev
      assert.equal(res.best?.hash, all[2]!.hash);
      assert.equal(res.bestByTestTopK?.hash, all[1]!.hash);
      assert.deepEqual(all.slice(3).map((r) => r.selectStrict), all.slice(3).map(() => null), 'testAll scores nothing on select');
    } finally {
      s.close();
    }
  } finally {
    tmp.cleanup();
  }
});

test('selection config: defaults, specific errors, and run-start checks of the split file (no run recorded)', async () => {
  const world = { seedModel: 's', experts: ['e'] };
  const c = resolveConfig({ world });
  assert.deepEqual([c.selectTopK, c.eval.testAll, c.world.select], [10, false, 'world/bench/select.jsonl']);
  for (const bad of [0, -1, 1.5, '3', null]) assert.throws(() => resolveConfig({ selectTopK: bad, world }), new RegExp(`config: selectTopK must be a positive integer, got ${JSON.stringify(bad)?.replace(/[.[\]]/g, '\\$&')}`));
  assert.throws(() => resolveConfig({ eval: { testAll: 'yes' }, world }), /config: eval\.testAll must be true or false, got "yes"/);
  assert.throws(() => resolveConfig({ world: { ...world, select: '' } }), /config: world\.select must be the path of the selection split/);
  assert.throws(() => resolveConfig({ world: { ...world, selects: 'x' } }), /unknown key world\.selects/);

  const tmp = makeTempDir('selfdev-select-');
  try {
    const fails = async (cfg: unknown, re: RegExp, name: string) => {
      const dir = join(tmp.path, `run-${name}`);
      await assert.rejects(runLoop(cfg, dir, { runner: new FakeRunner() }), re);
      const s = RunStore.open(dir, { readonly: true });
      try {
        assert.equal(s.getRun(), undefined, `${name}: no run recorded`);
      } finally {
        s.close();
      }
    };
    await fails(setup(tmp.path, {}, { select: join(tmp.path, 'nope.jsonl') }), /world\.select: .*nope\.jsonl not found \(the selection split: the top selectTopK programs by dev are re-scored on it/, 'missing');
    writeFileSync(join(tmp.path, 'empty.jsonl'), '\n');
    await fails(setup(tmp.path, {}, { select: join(tmp.path, 'empty.jsonl') }), /world\.select: .*empty\.jsonl holds no problems/, 'empty');
    writeFileSync(join(tmp.path, 'garbage.jsonl'), '{"question":"q?","answer":"#### 1"}\nnot json\n');
    await fails(setup(tmp.path, {}, { select: join(tmp.path, 'garbage.jsonl') }), /world\.select: .*garbage\.jsonl line 2 is not a JSON object with a string "question"/, 'garbage');
    await fails(setup(tmp.path, {}, { select: join(tmp.path, 'dev.jsonl') }), /world\.select \(.*dev\.jsonl\) shares 2 question\(s\) with world\.dev .*: the selection split must be disjoint from dev and test/, 'overlap-dev');
    // a select file with one test question among others
    const testQ = readFileSync(join(tmp.path, 'test.jsonl'), 'utf8').split('\n')[1]!;
    writeFileSync(join(tmp.path, 'leaky.jsonl'), readFileSync(join(tmp.path, 'select.jsonl'), 'utf8') + testQ + '\n');
    await fails(setup(tmp.path, {}, { select: join(tmp.path, 'leaky.jsonl') }), /shares 1 question\(s\) with world\.test/, 'overlap-test');
    // custom dev/test with the tiny world's default select: another benchmark's selection split
    const noSelect = setup(tmp.path);
    delete (noSelect.world as { select?: string }).select;
    await fails(noSelect, /world\.select is not set, so it is the tiny world's selection split .* but world\.dev is .*dev\.jsonl and world\.test is .*test\.jsonl: set world\.select to a selection split of the same benchmark/, 'default-select');
  } finally {
    tmp.cleanup();
  }
});
