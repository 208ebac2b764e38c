import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { PyRandom } from './pyrandom.ts';
import { COT_EXEMPLARS, TASKS, lmEvalShotIndices, shotsFor, taskPrompts } from './tasks.ts';
import { evaluate, promptsFor, type EvalProblem } from './evaluate.ts';
import { OpenAIBackend } from './backends.ts';
import { startCannedServer } from './canned-server.ts';
import { loadGsm8k } from './gsm8k.ts';

// Expected draws printed by CPython 3 (`random.Random(S).sample(range(N), 5)` repeated), not by this code.
test('PyRandom reproduces CPython random.Random(seed).sample', () => {
  assert.deepEqual(lmEvalShotIndices(7473, 5, 1234, 2), [[6374, 3610, 957, 61, 742], [7462, 6610, 4769, 286, 5501]]);
  assert.deepEqual(lmEvalShotIndices(7473, 5, 7, 2), [[2652, 1235, 3234, 5332, 395], [593, 6727, 4389, 771, 2995]]);
  // a population small enough for CPython's pool branch (n <= 21)
  assert.deepEqual(lmEvalShotIndices(10, 5, 1234, 3), [[7, 1, 0, 9, 4], [0, 1, 8, 6, 2], [3, 0, 8, 6, 7]]);
  assert.equal(new PyRandom(2 ** 40 + 7).uint32(), 2635837658, 'a seed above 2^32: two key words');
  assert.equal(new PyRandom(0).uint32(), 3626764237);
  assert.deepEqual(new PyRandom(-5).sampleIndices(10, 4), [9, 4, 5, 6], 'Python seeds with |seed|');
  assert.deepEqual(new PyRandom(3).sampleIndices(100, 8), [30, 75, 69, 16, 47, 77, 60, 80], 'k > 5 changes the set-size threshold');
  assert.throws(() => new PyRandom(3).sampleIndices(4, 5), /sample larger than population/);
});

const python = ['/usr/bin/python3', '/usr/local/bin/python3'].find((p) => existsSync(p));
test('PyRandom against the local CPython over many seeds and sizes', { skip: python ? false : 'no python3 here' }, () => {
  const cases: Array<[number, number, number, number]> = [[1234, 7473, 5, 50], [0, 1319, 8, 20], [99, 30, 5, 20], [2 ** 33 + 1, 21, 6, 20], [42, 500, 30, 5]];
  for (const [seed, n, k, docs] of cases) {
    const py = execFileSync(python!, ['-c', `import random,json\nr=random.Random(${seed})\nprint(json.dumps([r.sample(range(${n}),${k}) for _ in range(${docs})]))`], { encoding: 'utf8' });
    assert.deepEqual(lmEvalShotIndices(n, k, seed, docs), JSON.parse(py), `seed ${seed} n ${n} k ${k}`);
  }
});

const pool = Array.from({ length: 10 }, (_, i) => ({ question: `p${i}?`, answer: `a${i}\n#### ${i}` }));

test('gsm8k shots as lm-eval draws them: doc i gets the (i+1)-th draw of Random(1234), whatever else is evaluated', () => {
  const docs = [{ question: 'x0', answer: '#### 0', index: 0 }, { question: 'x2', answer: '#### 2', index: 2 }];
  const shots = shotsFor(TASKS.gsm8k, docs, { pool, k: 5, seed: 1234 });
  assert.deepEqual(shots[0].map((s) => s.question), ['p7?', 'p1?', 'p0?', 'p9?', 'p4?']);
  assert.deepEqual(shots[1].map((s) => s.question), ['p3?', 'p0?', 'p8?', 'p6?', 'p7?'], 'doc 2: the third draw, not the second');
  const [prompt] = taskPrompts(TASKS.gsm8k, [docs[0]], { pool, k: 2, seed: 1234 });
  // k 2: Random(1234).sample(range(10), 2) = [7, 1] (CPython)
  assert.equal(prompt, 'Question: p7?\nAnswer: a7\n#### 7\n\nQuestion: p1?\nAnswer: a1\n#### 1\n\nQuestion: x0\nAnswer:');
  // the seeded (older) sampler is still there and never uses the doc itself
  const seeded = shotsFor(TASKS.gsm8k, [{ question: 'p3?', answer: '#### 3', index: 4 }], { pool, k: 9, seed: 1, sampler: 'seeded' });
  assert.ok(!seeded[0].some((s) => s.question === 'p3?'));
  assert.throws(() => shotsFor(TASKS.gsm8k, docs, { pool: pool.slice(0, 3), k: 5, seed: 1 }), /pool has 3 examples, 5 shots asked/);
});

test('real GSM8k: test doc 0 gets train docs 6374, 3610, 957, 61, 742 (CPython Random(1234)), in that order', { skip: existsSync('../shared/data/gsm8k/train.jsonl') ? false : 'no ../shared/data/gsm8k' }, () => {
  const train = loadGsm8k('../shared/data/gsm8k/train.jsonl');
  const testDocs = loadGsm8k('../shared/data/gsm8k/test.jsonl').map((d, index) => ({ ...d, index }));
  const [p0, p1] = promptsFor(testDocs.slice(0, 2), { pool: train, k: 5, seed: 1234 });
  const expect = (idx: number[], q: string) => [...idx.map((i) => `Question: ${train[i].question}\nAnswer: ${train[i].answer}`), `Question: ${q}\nAnswer:`].join('\n\n');
  assert.equal(p0, expect([6374, 3610, 957, 61, 742], testDocs[0].question));
  assert.equal(p1, expect([7462, 6610, 4769, 286, 5501], testDocs[1].question));
  assert.ok(p0.startsWith(`Question: ${train[6374].question}`));
});

test('gsm8k_cot: the 8 fixed Wei et al. exemplars in order as "Q: …\\nA: …", stops at "Q:"', () => {
  assert.equal(COT_EXEMPLARS.length, 8);
  const [p] = promptsFor([{ question: 'How many?', answer: '#### 3' }], { pool: [], k: 8, seed: 1234 }, 'gsm8k_cot');
  const blocks = p.split('\n\n');
  assert.equal(blocks.length, 9);
  assert.equal(blocks[0], 'Q: There are 15 trees in the grove. Grove workers will plant trees in the grove today. After they are done, there will be 21 trees. How many trees did the grove workers plant today?\nA: There are 15 trees originally. Then there were 21 trees after some more were planted. So there must have been 21 - 15 = 6. The answer is 6.');
  assert.equal(blocks[7], 'Q: Olivia has $23. She bought five bagels for $3 each. How much money does she have left?\nA: Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she has 23 - 15 dollars left. 23 - 15 is 8. The answer is 8.');
  assert.equal(blocks[8], 'Q: How many?\nA:');
  const [p3] = promptsFor([{ question: 'How many?', answer: '#### 3' }], { pool: [], k: 3, seed: 0 }, 'gsm8k_cot');
  assert.equal(p3.split('\n\n').length, 4, 'first_n: the first 3 exemplars');
  assert.ok(p3.startsWith('Q: There are 15 trees'));
  assert.throws(() => promptsFor([{ question: 'q', answer: '#### 1' }], { pool: [], k: 9, seed: 0 }, 'gsm8k_cot'), /8 fixed few-shot exemplars/);
  assert.deepEqual(TASKS.gsm8k_cot.stops, ['Q:', '</s>', '<|im_end|>']);
});

// Fixture: tricky completions; expected verdicts derived by hand from lm-eval's regexes and
// exact_match rules (ignore ",", "$", "(?s).*#### ", "\.$", then lowercase; string equality).
const GSM: Array<[question: string, answer: string, completion: string, strict: boolean, flexible: boolean]> = [
  // strict "1,080" → 1080; flexible last "1,080" → 1080
  ['g0', 'r\n#### 1,080', ' She pays 1,000 + 80 = 1,080 dollars.\n#### 1,080', true, true],
  // no "#### " → [invalid]; flexible last "$18." → "18."→ "18"
  ['g1', 'r\n#### 18', ' She makes 9 * 2 = $18.\nThe answer is $18.', false, true],
  // strict "-3." (trailing period dropped); flexible last "-3." → -3
  ['g2', 'r\n#### -3', ' 2 - 5 = -3\n#### -3.', true, true],
  // "5.00" ≠ "5": string compare
  ['g3', 'r\n#### 5', ' 5.00 apples, so #### 5.00', false, false],
  // several numbers: flexible takes the last (70)
  ['g4', 'r\n#### 7', ' 3 + 4 = 7 and 7 + 0 = 7, so 70 cents', false, false],
  // strict takes the first "#### ", flexible the last number
  ['g5', 'r\n#### 12', ' #### 12\n#### 15', true, false],
  // cut at the stop "Question:" before scoring: the later "#### 43" is gone
  ['g6', 'r\n#### 42', ' The total is 42\n\nQuestion: What is 6*7?\nAnswer: #### 43', false, true],
  // reference commas removed too: 1000000 = 1,000,000
  ['g7', 'r\n#### 1,000,000', ' That is 1000000.\n#### 1000000', true, true],
  // "####8" (no space) is not strict; flexible "8"
  ['g8', 'r\n#### 8', ' Eight.\n####8', false, true],
  // "25%": flexible "25"
  ['g9', 'r\n#### 25', ' It is 25%', false, true],
  // nothing generated
  ['g10', 'r\n#### 3', '', false, false],
  // ends with "...": the last flexible match is "..." → ".." → wrong
  ['g11', 'r\n#### 4', ' 2 + 2 = 4 and so on...', false, false],
];
const COT: Array<[string, string, string, boolean, boolean]> = [
  // strict "18" (greedy "18." backtracks for the final any-char); flexible "18." → 18
  ['c0', 'r\n#### 18', ' She makes 9 * 2 = 18 dollars. The answer is 18.', true, true],
  // at the very end, "The answer is 18" captures "1" (the unescaped final "." needs one more char)
  ['c1', 'r\n#### 18', ' The answer is 18', false, true],
  // cut at "Q:"; "1,080." + "\n" backtracks to "1,080"
  ['c2', 'r\n#### 1,080', ' The answer is 1,080.\n\nQ: next\nA: The answer is 7.', true, true],
  ['c3', 'r\n#### -4', ' So it is -4 degrees. The answer is -4 degrees.', true, true],
  // gsm8k_cot's strict-match wants "The answer is N", not "#### N"
  ['c4', 'r\n#### 5', ' #### 5', false, true],
  // "$" is not in the strict class
  ['c5', 'r\n#### 7', ' The answer is $7.', false, true],
  // strict "10," → 10; flexible last "100"
  ['c6', 'r\n#### 10', ' The answer is 10, not 100', true, false],
];

for (const [task, rows, query] of [['gsm8k', GSM, (q: string) => `Question: ${q}\nAnswer:`], ['gsm8k_cot', COT, (q: string) => `Q: ${q}\nA:`]] as const) {
  test(`${task} through a real OpenAI-compatible HTTP server: hand-derived strict/flexible on tricky completions`, async () => {
    const table = Object.fromEntries(rows.map(([q, , c]) => [query(q), c]));
    const srv = await startCannedServer({ model: 'canned', table, fallback: 'UNEXPECTED' });
    try {
      const be = new OpenAIBackend({ endpoint: srv.url, modelName: 'canned' });
      const problems: EvalProblem[] = rows.map(([question, answer], index) => ({ question, answer, index }));
      const shots = task === 'gsm8k' ? { pool, k: 5, seed: 1234 } : { pool: [], k: 8, seed: 1234 };
      const r = await evaluate(be, problems, { task, shots, maxTokens: 256, calculator: false });
      assert.deepEqual(r.records.map((x) => [x.question, x.strict_correct, x.flexible_correct]), rows.map(([q, , , s, f]) => [q, s, f]));
      const ns = rows.filter((x) => x[3]).length;
      const nf = rows.filter((x) => x[4]).length;
      assert.equal(r.strict, ns / rows.length);
      assert.equal(r.flexible, nf / rows.length);
      assert.equal(srv.requests.length, rows.length);
      assert.deepEqual(srv.requests[0], { model: 'canned', prompt: promptsFor(problems, shots, task)[0], max_tokens: 256, temperature: 0, n: 1, stop: [...TASKS[task].stops] });
      assert.equal(r.settings.task, task);
      assert.equal(r.settings.sampler, task === 'gsm8k' ? 'lm-eval' : null, 'fixed exemplars have no sampler');
      if (task === 'gsm8k') {
        assert.equal([ns, nf].join('/'), '4/7');
        assert.equal(r.records[1].flexible_extracted, '$18.');
        assert.equal(r.records[6].generation, ' The total is 42\n\n', 'cut at the stop string');
      } else {
        assert.equal([ns, nf].join('/'), '4/6');
        assert.equal(r.records[1].strict_extracted, '1');
        assert.equal(r.records[0].reference, '18');
      }
    } finally {
      await srv.close();
    }
  });
}
