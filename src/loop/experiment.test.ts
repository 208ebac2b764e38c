import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { makeTempDir } from '../io/testing.ts';
import { RunStore } from '../store/store.ts';
import { bootstrapCI, mean } from '../report/stats.ts';
import { experimentConfig, experimentExecution, parseArms, repeatSeed, runExperiment } from './experiment.ts';
import type { ExperimentSummary } from '../report/summary.ts';
import { makeMicroWorld } from './testing.ts';
import { deriveSeed } from './controller.ts';

const bin = fileURLToPath(new URL('../../bin/selfdev.mjs', import.meta.url));
const cli = (args: string[]) => spawnSync(process.execPath, [bin, 'run', ...args], { encoding: 'utf8' });

test('arms and experiment config: specific errors', () => {
  assert.deepEqual(parseArms('dpo, evolution'), ['dpo', 'evolution']);
  assert.throws(() => parseArms('dpo,greedy'), /unknown arm 'greedy'/);
  assert.throws(() => parseArms('dpo,dpo'), /names an arm twice/);
  const tmp = makeTempDir('selfdev-exp-');
  try {
    const world = { seedModel: 's', experts: ['e'] };
    assert.throws(() => experimentConfig({ arm: 'random', world }, tmp.path), /leave 'arm' out/);
    assert.throws(() => experimentConfig(undefined, tmp.path), /a config is required/);
    experimentConfig({ seed: 1, world }, tmp.path);
    assert.equal(experimentConfig(undefined, tmp.path).seed, 1);
    assert.equal(experimentConfig({ seed: 1, world }, tmp.path).seed, 1);
    assert.throws(() => experimentConfig({ seed: 2, world }, tmp.path), /different config/);
    assert.equal(experimentConfig({ seed: 1, workers: 1, world }, tmp.path).workers, 2, 'workers may differ between invocations; the stored config is used');
    // the distributed block (like --queue) says how the runs are evaluated, not what they compute: ignored by the check
    const dist = { url: 'redis://127.0.0.1:6390/3', attempts: 3 };
    assert.equal(experimentConfig({ seed: 1, world, distributed: dist }, tmp.path).distributed, undefined, 'accepted; the stored config is returned');
    assert.equal(experimentConfig({ seed: 1, workers: 4, world, distributed: { url: 'redis://127.0.0.1:6391/0' } }, tmp.path).seed, 1);
    // … but a real change beside it is still refused
    assert.throws(() => experimentConfig({ seed: 1, world, distributed: dist, iterations: 5 }, tmp.path), /different config/);
    assert.throws(() => experimentConfig({ seed: 1, world, distributed: dist, eval: { maxTokens: 7 } }, tmp.path), /different config/);
    assert.throws(() => experimentConfig({ seed: 1, world, distributed: { url: 'http://x' } }, tmp.path), /distributed\.url must start with redis:\/\//, 'a bad block is still an error');
    // how this invocation evaluates: the config given now, else the stored one; --queue sets the url
    const stored = experimentConfig(undefined, tmp.path);
    assert.deepEqual(experimentExecution(undefined, stored), { workers: 2, distributed: null });
    assert.deepEqual(experimentExecution(undefined, stored, 'redis://127.0.0.1:6390/1'), { workers: 2, distributed: { url: 'redis://127.0.0.1:6390/1', maxInFlight: 16, lockDurationMs: 30_000, attempts: 2 } });
    assert.deepEqual(experimentExecution({ seed: 1, workers: 1, world, distributed: dist }, stored), { workers: 1, distributed: { url: dist.url, maxInFlight: 16, lockDurationMs: 30_000, attempts: 3 } });
    assert.deepEqual(experimentExecution({ seed: 1, world, distributed: dist }, stored, 'redis://127.0.0.1:6390/2').distributed, { url: 'redis://127.0.0.1:6390/2', maxInFlight: 16, lockDurationMs: 30_000, attempts: 3 }, '--queue overrides the url only');
    const r = cli(['--out', join(tmp.path, 'x'), '--arms', 'dpo', '--repeats', '0']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--repeats must be a positive integer, got '0'/);
  } finally {
    tmp.cleanup();
  }
});

test('experiment: 2 arms × 2 repeats end to end through the CLI; rerun skips; interrupted and deleted runs redo to the same summary', { timeout: 240_000 }, async () => {
  const tmp = makeTempDir('selfdev-exp-');
  try {
    const w = await makeMicroWorld(tmp.path, { nExperts: 2, nOod: 0, nDev: 3, nTest: 2, trainSteps: 40 });
    const cfg = {
      name: 'exp', seed: 5, workers: 1, iterations: 2, samplesPerIteration: 3, tensorFilter: 'all',
      eval: { devSubset: 2, maxTokens: 8, batchSize: 8 }, topKTest: 2, pWin: 0.25, pLose: 0.5, baselines: { lambdas: [1.0] },
      world: { ...w, algorithms: 'algorithms', example: 'algorithms/task_arithmetic.js' },
    };
    const cfgPath = join(tmp.path, 'exp.yml');
    writeFileSync(cfgPath, stringify(cfg));
    const out = join(tmp.path, 'exp');
    const args = [cfgPath, '--out', out, '--arms', 'dpo,evolution', '--repeats', '2'];
    let r = cli(args);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^dpo\s+2\/2/m);
    assert.match(r.stdout, /^evolution\s+2\/2/m);
    const s1 = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as ExperimentSummary;
    assert.deepEqual(s1.arms, ['dpo', 'evolution']);
    assert.equal(s1.runs.length, 4);
    for (const run of s1.runs) {
      assert.equal(run.status, 'done');
      assert.equal(run.seed, repeatSeed(5, run.repeat));
      assert.ok(run.bestByDev && run.bestByDev.test !== null, 'the best-by-dev program has a test score');
      assert.ok(run.bestByTestTopK!.test! >= run.bestByDev.test!, 'best-by-test among the top-k is at least the best-by-dev test');
      assert.ok(run.bestBySelect && run.bestBySelect.select !== null && run.bestBySelect.test !== null, 'the best program (chosen on select) has select and test scores');
      assert.ok(run.rank.devTest.n >= 1 && run.rank.devTest.n <= 3, 'dev vs test over the top-2 by dev plus the chosen program');
      assert.deepEqual(run.iterations.map((i) => i.t), [1, 2]);
      assert.ok(existsSync(join(out, run.dir, 'report.html')));
    }
    // the intervals: recomputed here from the per-run values with the same bootstrap
    for (const a of s1.perArm) {
      const vals = s1.runs.filter((x) => x.arm === a.arm).map((x) => x.bestByDev!.test!);
      assert.deepEqual(a.testBestByDev.values, vals);
      assert.equal(a.testBestByDev.mean, mean(vals));
      assert.ok(a.testBestByDev.ci, 'an interval with 2 repeats');
      const ci = bootstrapCI(vals, { resamples: 2000, seed: deriveSeed(5, `bootstrap:${a.arm}:test-by-dev`) })!;
      assert.deepEqual(a.testBestByDev.ci, { lo: ci.lo, hi: ci.hi });
      assert.ok(ci.lo >= Math.min(...vals) && ci.hi <= Math.max(...vals) && ci.lo <= mean(vals)! && mean(vals)! <= ci.hi);
      assert.equal(a.medianDevByIteration.length, 2);
    }
    assert.equal(s1.budget.selectTopK, 10);
    for (const a of s1.perArm) {
      const rs = s1.runs.filter((x) => x.arm === a.arm);
      assert.deepEqual(a.testBestBySelect.values, rs.map((x) => x.bestBySelect!.test!));
      assert.deepEqual(a.marginBySelectVsTa.values, rs.map((x) => x.bestBySelect!.test! - x.taTest!));
      assert.deepEqual(a.rankDevTest.values, rs.flatMap((x) => (x.rank.devTest.rho === null ? [] : [x.rank.devTest.rho])));
    }
    const evo = s1.perArm.find((a) => a.arm === 'evolution')!;
    assert.deepEqual(evo.diffVsDpo!.values, [0, 1].map((k) => s1.runs.find((x) => x.arm === 'evolution' && x.repeat === k)!.bestByDev!.test! - s1.runs.find((x) => x.arm === 'dpo' && x.repeat === k)!.bestByDev!.test!));
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    for (const run of s1.runs) assert.ok(html.includes(`href="${run.dir}/report.html"`), run.dir);

    // same seed per repeat across arms: iteration 1 is the same sample; iteration 2 of evolution is made of mutations, with DPO recorded as skipped
    for (const k of [0, 1]) {
      const d = RunStore.open(join(out, 'dpo', `r${k}`), { readonly: true });
      const e = RunStore.open(join(out, 'evolution', `r${k}`), { readonly: true });
      try {
        const codes = (st: RunStore, arm: string, t: number) => st.samples(st.iteration(t, arm)!.id).map((x) => x.hash);
        assert.deepEqual(codes(e, 'evolution', 1), codes(d, 'dpo', 1));
        assert.notDeepEqual(codes(e, 'evolution', 2), codes(d, 'dpo', 2));
        assert.equal(e.iteration(2, 'evolution')!.timings.dpoSkipped, 1);
        // children record their first parent: a valid program of iteration 1
        const it1 = new Set(e.iterationPrograms(e.iteration(1, 'evolution')!.id).filter((x) => x.verdict === 'ok').map((x) => x.hash));
        for (const smp of e.samples(e.iteration(2, 'evolution')!.id)) {
          assert.equal(smp.origin, 'mutation');
          assert.ok(smp.parentHash && it1.has(smp.parentHash), `parent ${smp.parentHash} is a valid iteration-1 program`);
        }
        assert.ok(e.samples(e.iteration(1, 'evolution')!.id).every((x) => x.origin === 'factory'));
        assert.match(readFileSync(join(out, 'evolution', `r${k}`, 'pairs', 'iter-2.skipped'), 'utf8'), /control arm evolution/);
        assert.equal(e.iterations({ arm: 'dpo' }).length, 0, 'the evolution run records its iterations under its own arm');
      } finally {
        d.close();
        e.close();
      }
    }

    // rerun: every run is skipped, the summary is unchanged
    r = cli(['--out', out, '--arms', 'dpo,evolution', '--repeats', '2']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.match(/finished earlier, skipped/g)?.length, 4);
    assert.deepEqual(JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')), s1);

    // same seed → same result: delete one run, interrupt another mid-way, then continue
    rmSync(join(out, 'dpo', 'r1'), { recursive: true });
    rmSync(join(out, 'evolution', 'r0'), { recursive: true });
    const ac = new AbortController();
    let evaluated = 0;
    await assert.rejects(
      runExperiment(undefined, out, {
        arms: ['dpo', 'evolution'], repeats: 2, signal: ac.signal,
        onEvent: (e) => {
          if (e.type === 'loop' && e.event.type === 'evaluated' && !e.event.cached && ++evaluated === 3) ac.abort();
        },
      }),
      /aborted/,
    );
    const st = RunStore.open(join(out, 'evolution', 'r0'), { readonly: true });
    assert.equal(st.getRun()!.status, 'interrupted');
    st.close();
    r = cli(['--out', out, '--arms', 'dpo,evolution', '--repeats', '2']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /evolution r0: resuming/);
    assert.equal(r.stderr.match(/finished earlier, skipped/g)?.length, 2);
    assert.deepEqual(JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')), s1);
  } finally {
    tmp.cleanup();
  }
});
