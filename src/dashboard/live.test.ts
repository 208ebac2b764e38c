import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { makeTempDir } from '../io/testing.ts';
import { RunStore } from '../store/store.ts';
import { collectReportData } from '../report/report.ts';
import { liveStatus } from './live.ts';

test('live status follows a run through its phases: sampling, scoring with progress, DPO, selection split, test, baselines, finished', () => {
  const tmp = makeTempDir('selfdev-live-');
  const store = RunStore.open(join(tmp.path, 'run'));
  try {
    const now = () => liveStatus(collectReportData(store));
    assert.deepEqual(now(), { state: 'no-run', phase: 'the store holds no run yet', progress: null, iteration: null, sampled: 0, scored: 0, valid: 0, bestDev: null });
    store.createRun({ name: 'phases', config: { iterations: 1, topKTest: 2, selectTopK: 2 }, seed: 1, evalConfig: { dev: 10 } });
    const it = store.startIteration({ t: 1, temperature: 1.2, nTarget: 3 });
    assert.deepEqual(now(), { state: 'running', phase: 'iteration 1 of 1: sampling programs', progress: null, iteration: { t: 1, of: 1, status: 'sampling' }, sampled: 0, scored: 0, valid: 0, bestDev: null });
    const hashes = ['a', 'b', 'c'].map((x) => store.addSample({ iterationId: it.id, code: `function merge(tv) { return tv[0].mul(${x === 'a' ? 1 : x === 'b' ? 2 : 3}); }` }).hash);
    store.updateIteration(it.id, { status: 'evaluating' });
    store.recordEvaluation({ hash: hashes[0]!, verdict: 'ok', devSubset: 0.3 });
    store.recordEvaluation({ hash: hashes[1]!, verdict: 'syntax', message: 'x' });
    let s = now();
    assert.equal(s.phase, 'iteration 1 of 1: scoring candidates');
    assert.deepEqual(s.progress, { done: 2, total: 3 });
    assert.deepEqual([s.sampled, s.scored, s.valid, s.bestDev], [3, 2, 1, 0.3]);
    store.recordEvaluation({ hash: hashes[2]!, verdict: 'ok', devSubset: 0.2, devStrict: 0.25 });
    store.recordEvaluation({ hash: hashes[0]!, verdict: 'ok', devSubset: 0.3, devStrict: 0.35 });
    store.updateIteration(it.id, { status: 'training' });
    assert.equal(now().phase, 'iteration 1 of 1: DPO training of the factory');
    store.updateIteration(it.id, { status: 'done' });
    s = now();
    assert.equal(s.phase, 'selection split: scoring the top programs by dev');
    assert.deepEqual(s.progress, { done: 0, total: 2 });
    assert.equal(s.bestDev, 0.35);
    store.recordEvaluation({ hash: hashes[0]!, verdict: 'ok', devSubset: 0.3, devStrict: 0.35, selectStrict: 0.3 });
    store.recordEvaluation({ hash: hashes[2]!, verdict: 'ok', devSubset: 0.2, devStrict: 0.25, selectStrict: 0.2 });
    s = now();
    assert.equal(s.phase, 'test: scoring the top programs by dev');
    assert.deepEqual(s.progress, { done: 0, total: 2 });
    store.recordEvaluation({ hash: hashes[0]!, verdict: 'ok', devSubset: 0.3, devStrict: 0.35, selectStrict: 0.3, testStrict: 0.32 });
    store.recordEvaluation({ hash: hashes[2]!, verdict: 'ok', devSubset: 0.2, devStrict: 0.25, selectStrict: 0.2, testStrict: 0.22 });
    assert.equal(now().phase, 'baselines and transfer (0 baseline and 0 transfer scores so far)');
    store.setRunStatus('done');
    assert.deepEqual(now(), { state: 'done', phase: 'all phases done: below is the final report (= report.html)', progress: null, iteration: { t: 1, of: 1, status: 'done' }, sampled: 3, scored: 3, valid: 2, bestDev: 0.35 });
  } finally {
    store.close();
    tmp.cleanup();
  }
});
