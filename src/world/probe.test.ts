import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { EvalRecord } from '../eval/evaluate.ts';
import { firstOp, formatSeedTable, meanMetrics, operatorTable, priorLeak, probeGrid, targetsOf, taskVectorGeometry, WEIGHT_GRID, type ProbeMetrics } from './probe.ts';

const rec = (family: string, generation: string, right = false): EvalRecord => ({
  index: 0, family, question: 'q', reference: '1', generation, finish: 'stop', calculator_calls: 0,
  strict_extracted: '', strict_correct: right, flexible_extracted: '', flexible_correct: right,
});

test('firstOp reads the first operation of an answer, annotated or not', () => {
  assert.equal(firstOp(' 23 + 15 = <<23+15=38>>38\n#### 38'), '+');
  assert.equal(firstOp(' 60 / 5 = <<60/5=12>>12\n12 - 3 = <<12-3=9>>9\n#### 9'), '/');
  assert.equal(firstOp(' 7 * 3 = 21\n#### 21'), '*');
  assert.equal(firstOp(' Mia has 23 pens.\n#### 23'), 'none');
  assert.equal(firstOp(' 40 - 12 = <<40-12=28>>28'), '-');
});

test('operatorTable counts first operations and right answers per family; priorLeak measures own operations elsewhere', () => {
  const records = [
    rec('addsub', ' 1 + 2 = <<1+2=3>>3', true), rec('addsub', ' 6 / 2 = <<6/2=3>>3'), rec('addsub', ' 5 / 5 = <<5/5=1>>1'),
    rec('muldiv', ' 3 * 4 = <<3*4=12>>12', true), rec('muldiv', ' 3 - 1 = <<3-1=2>>2'),
    rec('units', ' x'), rec('twostep', ' 1 + 1 = <<1+1=2>>2'), { ...rec('addsub', ''), family: null },
  ];
  const t = operatorTable(records);
  assert.deepEqual(Object.keys(t), ['addsub', 'compare', 'muldiv', 'rates', 'units']);
  assert.deepEqual(t.addsub, { n: 3, right: 1, ops: { '+': 1, '-': 0, '*': 0, '/': 2, none: 0 } });
  assert.deepEqual(t.muldiv.ops, { '+': 0, '-': 1, '*': 1, '/': 0, none: 0 });
  assert.equal(t.compare.n, 0);
  // an expert trained on muldiv (* /) that divides on 2 of 3 addsub stories
  const l = priorLeak(t, ['muldiv']);
  assert.deepEqual(l.ownOps, ['*', '/']);
  assert.deepEqual(l.leak, { addsub: 2 / 3 });
  assert.equal(l.worst, 2 / 3);
  // an add/subtract expert: the multiplicative families are "other" (rates has no records: left out)
  assert.deepEqual(priorLeak(t, ['addsub', 'compare']).leak, { muldiv: 0.5, units: 0 });
});

test('taskVectorGeometry: norms and cosines of the task vectors over the selected tensors', () => {
  const seed = new Map([['a.mlp.w', new Float32Array([1, 1])], ['a.attn.w', new Float32Array([0, 0])]]);
  const e1 = new Map([['a.mlp.w', new Float32Array([4, 1])], ['a.attn.w', new Float32Array([9, 9])]]);
  const e2 = new Map([['a.mlp.w', new Float32Array([1, 3])], ['a.attn.w', new Float32Array([9, 9])]]);
  const e3 = new Map([['a.mlp.w', new Float32Array([2, 2])], ['a.attn.w', new Float32Array([0, 0])]]);
  const g = taskVectorGeometry(seed, [['E1', e1], ['E2', e2], ['E3', e3]], (n) => n.includes('.mlp.'));
  assert.deepEqual(g.norms, { E1: 3, E2: 2, E3: Math.SQRT2 });
  assert.equal(g.cosines['E1·E2'], 0);
  assert.ok(Math.abs(g.cosines['E1·E3'] - Math.SQRT1_2) < 1e-12);
  assert.ok(Math.abs(g.cosines['E2·E3'] - Math.SQRT1_2) < 1e-12);
});

test('probeGrid adds each expert alone and as M0 + τ_i, and the per-expert weighting grid', () => {
  const w = { seed: '/w/M0', experts: ['/w/E1', '/w/E2', '/w/E3'], ood: ['/w/X1', '/w/X2'], oracles: ['/w/oracle'], dev: 'd', test: 't' };
  const g = probeGrid(w);
  const fam = (f: string) => g.filter((c) => c.family === f);
  assert.equal(fam('weights').length, WEIGHT_GRID.length ** 3);
  assert.deepEqual(fam('weights')[1].modelParamsEach, [{ weight: 0.3 }, { weight: 0.3 }, { weight: 0.6 }]);
  for (const e of ['E1', 'E2', 'E3', 'X1', 'X2']) {
    assert.equal(fam(`alone:${e}`).length, 1);
    const tau = fam(`tau:${e}`);
    assert.equal(tau.length, 1);
    assert.deepEqual([tau[0].method, tau[0].base, tau[0].models, tau[0].params], ['task_arithmetic', '/w/M0', [`/w/${e}`], { lambda: 1 }]);
  }
  assert.ok(fam('task_arithmetic').length > 0 && fam('ties').length > 0);
});

const metrics = (over: Partial<ProbeMetrics> = {}): ProbeMetrics => ({
  keep: { E1: 1, E2: 0.97 }, m0: 2, ta: 27, bestExpert: 21, oracle: 40,
  methods: { task_arithmetic: 27, ties: 25, della: 28.5 }, weights: 30, weightsLabel: 'weights=(1,1,0.3)',
  oodDev: { X1: 24, X2: 16 }, oodTa: 30, oodBestExpert: 26, leak: { E1: 0.4, E2: 0.2 }, ...over,
});

test('targetsOf decides T1-T6 on the metrics at their thresholds', () => {
  const pass = (m: ProbeMetrics) => Object.fromEntries(targetsOf(m).map((t) => [t.id, t.pass]));
  assert.deepEqual(pass(metrics()), { T1: true, T2: true, T3: true, T4: true, T5: true, T6: true });
  assert.equal(pass(metrics({ keep: { E1: 0.94 } })).T1, false);
  assert.equal(pass(metrics({ ta: 25.9 })).T2, false); // 25.9 < 21 + 5
  assert.equal(pass(metrics({ oracle: 36.9 })).T3, false);
  assert.equal(pass(metrics({ methods: { task_arithmetic: 27, ties: 25 } })).T4, false); // spread 2
  assert.equal(pass(metrics({ weights: 28.9 })).T4, false);
  assert.equal(pass(metrics({ oodDev: { X1: 24, X2: 14.5 } })).T5, false);
  assert.equal(pass(metrics({ oodTa: 28.9 })).T5, false);
  assert.equal(pass(metrics({ leak: { E1: 0.52 } })).T6, false);
  assert.equal(pass(metrics({ ta: null })).T2, null);
});

test('meanMetrics averages over seeds; the seed table shows each seed, the mean and the targets on the mean', () => {
  const a = metrics(), b = metrics({ ta: 23, keep: { E1: 0.9, E2: 1 }, methods: { task_arithmetic: 23, ties: 25, della: 28.5 } });
  const m = meanMetrics([a, b]);
  assert.equal(m.ta, 25);
  assert.deepEqual(m.keep, { E1: 0.95, E2: 0.985 });
  assert.deepEqual(m.methods, { task_arithmetic: 25, ties: 25, della: 28.5 });
  // a method missing in one seed (below M0 + 10 there) is not averaged
  assert.deepEqual(meanMetrics([a, metrics({ methods: { task_arithmetic: 27 } })]).methods, { task_arithmetic: 27 });
  const t = formatSeedTable([{ label: 's0', metrics: a }, { label: 's1', metrics: b }]);
  assert.match(t, /\| s0 \| 2\.0 \| 21\.0 \| 27\.0 \| 6\.0 \|/);
  assert.match(t, /\| \*\*mean of 2\*\* \| 2\.0 \| 21\.0 \| 25\.0 \| 4\.0 \|/);
  assert.match(t, /T2: .* \| no \|/);
  assert.throws(() => meanMetrics([]), /no probes/);
});
