import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { makeBenchmark, makeTrainingSet, toJsonl, trainingStream, defaultBenchmarkKeys, benchmarkKeys } from './bench.ts';
import { BENCH_FAMILIES, SEED_FAMILIES, FAMILY_INFO, BenchRng, makeProblem, problemKey, withHint, seedFrom, type Problem } from './problems.ts';
import { FEMALE_NAMES } from './names.ts';
import { calculatorCompletion } from '../eval/calculator.ts';
import { scoreResponse } from '../eval/scoring.ts';

const bench = makeBenchmark();
const all = [...bench.dev, ...bench.test, ...bench.select];

test('the shipped world/bench splits are byte-identical to a fresh generation', () => {
  for (const split of ['dev', 'test', 'select'] as const) {
    const shipped = readFileSync(new URL(`../../world/bench/${split}.jsonl`, import.meta.url), 'utf8');
    assert.equal(shipped, toJsonl(bench[split]), `world/bench/${split}.jsonl is stale: run npx tsx scripts/make-bench.ts`);
    assert.deepEqual(Object.keys(JSON.parse(shipped.split('\n')[0])), ['question', 'answer', 'family']);
  }
});

test('split sizes and equal family shares; deduplicated by key across splits', () => {
  assert.equal(bench.dev.length, 200);
  assert.equal(bench.test.length, 1000);
  assert.equal(bench.select.length, 1000);
  for (const [split, per] of [['dev', 25], ['test', 125], ['select', 125]] as const) {
    for (const f of BENCH_FAMILIES) assert.equal(bench[split].filter((p) => p.family === f).length, per, `${split} ${f}`);
  }
  assert.equal(new Set(all.map(problemKey)).size, all.length);
  assert.equal(new Set(all.map((p) => p.question)).size, all.length);
});

test('same seed → same data; another seed → other data', () => {
  assert.deepEqual(makeBenchmark(1234, { dev: 16, test: 16 }), makeBenchmark(1234, { dev: 16, test: 16 }));
  assert.notDeepEqual(makeBenchmark(1, { dev: 16, test: 16 }).dev, makeBenchmark(2, { dev: 16, test: 16 }).dev);
  assert.throws(() => makeBenchmark(1, { dev: 10, test: 16 }), /multiple of the 8 families/);
  const a = new BenchRng(seedFrom(5, 'x'));
  const b = new BenchRng(seedFrom(5, 'x'));
  for (let i = 0; i < 5; i++) assert.equal(a.next(), b.next());
});

const STEP = /^(\d+) ([-+*/]) (\d+) = <<(\d+)([-+*/])(\d+)=(\d+)>>(\d+)$/;
const CONSTANTS = new Set([60, 24, 7, 12, 100]);

/** Independent check of one problem: format, arithmetic, chaining, operand order, lengths. */
function checkProblem(p: Problem, maxQ = 140): void {
  const ctx = JSON.stringify(p);
  assert.match(p.question + p.answer, /^[\x20-\x7e\n]*$/, `non-ASCII: ${ctx}`);
  assert.ok(p.question.length <= maxQ, `question too long: ${ctx}`);
  assert.ok(!p.question.includes('\n'), ctx);
  const lines = p.answer.split('\n');
  const final = lines.pop()!;
  const m = /^#### (\d+)$/.exec(final);
  assert.ok(m, `no final #### line: ${ctx}`);
  const result = Number(m[1]);
  // the answer scores itself correct with both lm-eval filters
  const s = scoreResponse(p.answer, p.answer);
  assert.ok(s.strict.correct && s.flexible.correct, ctx);
  if (p.family === 'lookup') {
    assert.equal(lines.length, 1);
    assert.ok(p.question.includes(String(result)), ctx);
    return;
  }
  const qnums = (p.question.match(/\d+/g) ?? []).map(Number);
  let prev: number | null = null;
  let qpos = 0;
  lines.forEach((line, i) => {
    const e = STEP.exec(line);
    assert.ok(e, `bad step line ${JSON.stringify(line)} in ${ctx}`);
    const [a, op, b, a2, op2, b2, c, c2] = [Number(e[1]), e[2], Number(e[3]), Number(e[4]), e[5], Number(e[6]), Number(e[7]), Number(e[8])];
    assert.deepEqual([a2, op2, b2, c2], [a, op, b, c], ctx);
    const expect = op === '+' ? a + b : op === '-' ? a - b : op === '*' ? a * b : a / b;
    assert.equal(c, expect, ctx);
    assert.ok(Number.isInteger(c) && c >= 0, ctx);
    // the calculator forces exactly this result
    const upto = line.indexOf('=', line.indexOf('<<'));
    assert.equal(calculatorCompletion(line.slice(0, upto + 1)), `${c}>>`);
    // operands: copied from the question in order (a unit constant may be the only exception);
    // the second step starts from the first result
    const operands = i === 0 ? [a, b] : [b];
    if (i > 0) assert.equal(a, prev, `step ${i + 1} must start from the previous result: ${ctx}`);
    for (const x of operands) {
      const at = qnums.indexOf(x, qpos);
      if (at >= 0) qpos = at + 1;
      else assert.ok(CONSTANTS.has(x) && p.family.startsWith('unit'), `operand ${x} not found in order in ${ctx}`);
    }
    prev = c;
  });
  assert.equal(prev, result, ctx);
  const info = FAMILY_INFO.find((f) => f.name === p.family)!;
  assert.equal(lines.length, info.steps, ctx);
}

test('every benchmark problem: ASCII, ≤140 chars, annotated steps that compute, chain and copy in order', () => {
  for (const p of all) checkProblem(p);
  const qlen = all.map((p) => p.question.length);
  assert.ok(Math.max(...qlen) <= 140);
});

test('each family has varied templates, names and numbers', () => {
  for (const f of BENCH_FAMILIES) {
    const ps = bench.test.filter((p) => p.family === f);
    const templates = new Set(ps.map((p) => problemKey(p).split('|')[1]));
    const results = new Set(ps.map((p) => p.answer.split('#### ')[1]));
    assert.ok(templates.size >= 6, `${f}: only ${templates.size} templates`);
    assert.ok(results.size >= 30, `${f}: only ${results.size} distinct answers`);
  }
});

test('training streams are disjoint from dev, test and select (keys and questions), for every family', () => {
  const keys = defaultBenchmarkKeys();
  const questions = new Set(all.map((p) => p.question));
  for (const f of [...BENCH_FAMILIES, ...SEED_FAMILIES]) {
    const it = trainingStream(f, { seed: 99 });
    for (let i = 0; i < 1500; i++) {
      const p = it.next().value as Problem;
      assert.equal(p.family, f);
      assert.ok(!keys.has(problemKey(p)) && !questions.has(p.question), `training item overlaps: ${JSON.stringify(p)}`);
      if (i < 300) checkProblem(p);
    }
  }
});

test('the key holds out problems up to names/objects: a renamed benchmark problem is excluded', () => {
  const names: readonly string[] = FEMALE_NAMES;
  const p = bench.dev.find((x) => x.family === 'addsub' && names.includes(x.question.split(' ')[0]))!;
  const name = p.question.split(' ')[0];
  const renamed = { ...p, question: p.question.split(name).join(name === 'Zoe' ? 'Ava' : 'Zoe') };
  assert.notEqual(renamed.question, p.question);
  assert.equal(problemKey(renamed), problemKey(p));
  assert.notEqual(problemKey({ ...p, question: p.question.replace(/\d+/, (d) => String(Number(d) + 1)) }), problemKey(p));
});

test('makeTrainingSet: deterministic, honours the mix, hints name the operations', () => {
  const a = makeTrainingSet({ addsub: 3, muldiv: 1 }, 400, { seed: 3 });
  assert.deepEqual(a, makeTrainingSet({ addsub: 3, muldiv: 1 }, 400, { seed: 3 }));
  assert.notDeepEqual(a, makeTrainingSet({ addsub: 3, muldiv: 1 }, 400, { seed: 4 }));
  const share = a.filter((p) => p.family === 'addsub').length / a.length;
  assert.ok(share > 0.68 && share < 0.82, `addsub share ${share}`);
  const h = makeTrainingSet({ mix: 1 }, 50, { seed: 3, hint: true });
  const plain = makeTrainingSet({ mix: 1 }, 50, { seed: 3 });
  for (let i = 0; i < h.length; i++) {
    const ops = [...plain[i].answer.matchAll(/<<\d+([-+*/])/g)].map((m) => m[1]);
    assert.equal(h[i].question, `${plain[i].question} (use ${ops.join(' then ')})`);
    checkProblem(h[i], 160);
  }
  // another benchmark seed: pass its keys as exclude
  const other = makeBenchmark(77, { dev: 8, test: 80 });
  const otherKeys = benchmarkKeys(other);
  for (const p of makeTrainingSet({ muldiv: 1, units: 1 }, 3000, { seed: 5, exclude: otherKeys })) assert.ok(!otherKeys.has(problemKey(p)));
  assert.equal(withHint({ question: 'q', answer: 'Mia has 3.\n#### 3', family: 'lookup' }).question, 'q');
  assert.throws(() => makeTrainingSet({}, 1, { seed: 1 }), /no family/);
  assert.throws(() => makeProblem('nope' as never, new BenchRng(1)), /unknown family 'nope'/);
});

test('FAMILY_INFO describes every family once', () => {
  assert.deepEqual(FAMILY_INFO.map((f) => f.name), [...BENCH_FAMILIES, ...SEED_FAMILIES]);
  for (const f of FAMILY_INFO) assert.equal(f.inBenchmark, (BENCH_FAMILIES as readonly string[]).includes(f.name));
});
