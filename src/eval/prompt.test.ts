import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildPrompt, formatQuery, formatShot, cutAtStop, firstStopIndex, selectShots, STOP_STRINGS } from './prompt.ts';

const shots = [
  { question: 'A?', answer: '1 + 1 = <<1+1=2>>2\n#### 2' },
  { question: 'B?', answer: '#### 7' },
];

test('prompt assembly is exactly lm-eval gsm8k', () => {
  assert.equal(formatQuery('How many?'), 'Question: How many?\nAnswer:');
  assert.equal(formatShot(shots[1]), 'Question: B?\nAnswer: #### 7');
  assert.equal(
    buildPrompt('C?', shots),
    'Question: A?\nAnswer: 1 + 1 = <<1+1=2>>2\n#### 2\n\nQuestion: B?\nAnswer: #### 7\n\nQuestion: C?\nAnswer:',
  );
  assert.equal(buildPrompt('C?'), 'Question: C?\nAnswer:');
});

test('stop strings and cutting at the first one', () => {
  assert.deepEqual(STOP_STRINGS, ['Question:', '</s>', '<|im_end|>']);
  assert.equal(cutAtStop(' 2 + 2 = 4\n#### 4\n\nQuestion: next'), ' 2 + 2 = 4\n#### 4\n\n');
  assert.equal(cutAtStop('x</s>y Question: z'), 'x');
  assert.equal(cutAtStop('a<|im_end|>'), 'a');
  assert.equal(cutAtStop('no stop'), 'no stop');
  assert.equal(cutAtStop('Q: a\nQ: b', ['Q:']), '');
  assert.equal(firstStopIndex('abc', ['', 'c']), 2);
});

test('selectShots: k distinct pool entries, seeded, fixed or per doc, excluding the doc', () => {
  const pool = Array.from({ length: 50 }, (_, i) => ({ question: `q${i}`, answer: `#### ${i}` }));
  const fixed = selectShots(pool, { seed: 1 });
  assert.equal(fixed.length, 5);
  assert.equal(new Set(fixed).size, 5);
  assert.deepEqual(selectShots(pool, { seed: 1 }), fixed);
  assert.notDeepEqual(selectShots(pool, { seed: 2 }), fixed);
  const d3 = selectShots(pool, { seed: 1, docIndex: 3 });
  assert.deepEqual(selectShots(pool, { seed: 1, docIndex: 3 }), d3);
  assert.notDeepEqual(selectShots(pool, { seed: 1, docIndex: 4 }), d3);
  // excluding: over many docs the excluded question never appears, and k is still met
  for (let d = 0; d < 40; d++) {
    const s = selectShots(pool, { seed: 9, docIndex: d, k: 8, excludeQuestion: `q${d}` });
    assert.equal(s.length, 8);
    assert.ok(!s.some((x) => x.question === `q${d}`));
  }
  // the draw is uniform-ish: every entry shows up across docs
  const seen = new Set<string>();
  for (let d = 0; d < 200; d++) for (const s of selectShots(pool, { seed: 5, docIndex: d })) seen.add(s.question);
  assert.equal(seen.size, 50);
  assert.throws(() => selectShots(pool.slice(0, 3), { seed: 1, k: 5 }), /only 3 usable shots/);
  assert.deepEqual(selectShots(pool, { seed: 1, k: 0 }), []);
});
