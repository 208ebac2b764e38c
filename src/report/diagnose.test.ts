import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { makeTempDir } from '../io/testing.ts';
import { RunStore } from '../store/store.ts';
import { generateProgram } from '../factory/corpus.ts';
import { corpusIndex, diagnoseRuns, entropyBits, experimentRuns, formatDiagnosis, jaccard, nearestCorpus, tokenSet } from './diagnose.ts';

test('tokenSet / jaccard / entropy: constants, comments and layout do not count', () => {
  const a = tokenSet('function merge(tv) {\n  // weight\n  return tv[0].mul(0.3);\n}');
  const b = tokenSet('function merge(tv){ return tv[0].mul(1.7e-2); } /* other */');
  assert.equal(jaccard(a, b), 1);
  assert.ok(jaccard(a, tokenSet('function merge(tv) { return tv[1].add(tv[0]); }')) < 1);
  assert.equal(entropyBits([4]), 0);
  assert.equal(entropyBits([2, 2, 2, 2]), 2);
  assert.equal(entropyBits([]), 0);
  // a corpus program is its own nearest neighbour, with its family
  const idx = corpusIndex(48);
  const p = generateProgram(13, 'ties');
  const n = nearestCorpus(generateProgram(13 + 48 * 12, 'ties').code, { items: [...idx.items] });
  assert.ok(n.similarity > 0 && n.similarity <= 1);
  assert.deepEqual(nearestCorpus(p.code, { items: [{ family: 'ties', tokens: tokenSet(p.code) }, ...idx.items] }), { family: 'ties', similarity: 1 });
});

test('diagnoseRuns: counts repeats, new programs, failed rejected pairs and families per arm and iteration, pooled over repeats', () => {
  const tmp = makeTempDir('selfdev-diagnose-');
  try {
    const ta = generateProgram(1, 'task_arithmetic').code;
    const ties = generateProgram(2, 'ties').code;
    const bad = 'function merge( {';
    for (const r of [0, 1]) {
      const store = RunStore.open(join(tmp.path, 'exp', 'dpo', `r${r}`));
      store.createRun({ name: 'd', config: {}, seed: r, evalConfig: {}, selfdevVersion: 'test' });
      const it1 = store.startIteration({ t: 1, arm: 'dpo' });
      const s1 = store.addSamples([ta, ties, bad].map((code) => ({ iterationId: it1.id, code })));
      store.recordEvaluation({ hash: s1[0]!.hash, verdict: 'ok', devSubset: 0.3 + r / 10 });
      store.recordEvaluation({ hash: s1[1]!.hash, verdict: 'ok', devSubset: 0.1 });
      store.recordEvaluation({ hash: s1[2]!.hash, verdict: 'syntax' });
      store.addPairs(it1.id, 'P', [
        { chosenHash: s1[0]!.hash, rejectedHash: s1[1]!.hash, chosenScore: 0.3, rejectedScore: 0.1 },
        { chosenHash: s1[0]!.hash, rejectedHash: s1[2]!.hash, chosenScore: 0.3, rejectedScore: 0 },
      ]);
      store.updateIteration(it1.id, { status: 'done' });
      // iteration 2 draws the TA program three times (collapse) and nothing new
      const it2 = store.startIteration({ t: 2, arm: 'dpo' });
      store.addSamples([ta, ta, ta].map((code) => ({ iterationId: it2.id, code })));
      store.updateIteration(it2.id, { status: 'done', timings: { repeats: 5 } });
      store.close();
    }
    const runs = experimentRuns(join(tmp.path, 'exp'));
    assert.deepEqual(runs.map((x) => x.arm), ['dpo', 'dpo']);
    const rows = diagnoseRuns(runs, 24);
    assert.equal(rows.length, 2);
    const [a, b] = rows as [typeof rows[0], typeof rows[0]];
    assert.deepEqual([a.t, a.repeats, a.sampled, a.distinct, a.newToRun, a.valid, a.pairs, a.distinctChosen], [1, 2, 6, 6, 6, 4, 4, 2]);
    assert.equal(a.rejectedFailedShare, 0.5);
    assert.equal(a.carriedShare, 0);
    assert.ok(Math.abs(a.medianScreen! - 0.225) < 1e-9, 'median: mean over repeats of 0.2 and 0.25');
    assert.ok(Math.abs(a.bestScreen! - 0.35) < 1e-9, 'best: mean over repeats of 0.3 and 0.4');
    assert.equal(a.familyEntropy, 1, 'two valid programs, two families');
    assert.deepEqual([b.t, b.sampled, b.distinct, b.newToRun, b.droppedRepeats, b.pairs], [2, 6, 2, 0, 10, 0]);
    assert.equal(b.rejectedFailedShare, null);
    const md = formatDiagnosis(rows);
    assert.match(md, /^\| dpo \| 2 \| 2 \| 6 \| 2 \| 0 \| 10 \|/m);
    // a single run folder is read with its arms
    assert.deepEqual(experimentRuns(join(tmp.path, 'exp', 'dpo', 'r0')).map((x) => x.arm), ['dpo']);
    assert.throws(() => experimentRuns(join(tmp.path, 'nope')), /no such experiment folder/);
    assert.throws(() => experimentRuns(tmp.path), /no run found/);
  } finally {
    tmp.cleanup();
  }
});
