import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import {
  MathFormatError, boxedReference, hendrycksAnswer, hendrycksEquivalent, lastBoxedOnlyString, loadMath, minervaEquivalent,
  minervaUnnormalizedAnswer, normalizeFinalAnswer, parseMathJsonl, scoreMath, stripString,
} from './math.ts';
import { evaluate, loadProblems, parseBenchSpec, promptsFor } from './evaluate.ts';
import { OpenAIBackend } from './backends.ts';
import { startCannedServer } from './canned-server.ts';
import { TASKS } from './tasks.ts';

const FIXTURE = fileURLToPath(new URL('../../test/fixtures/math/problems.jsonl', import.meta.url));

test('boxed answers: the last \\boxed{}, braces balanced; "\\boxed " up to a $; \\fbox; unclosed → none', () => {
  assert.equal(lastBoxedOnlyString('a $\\boxed{1}$ then $\\boxed{\\frac{1}{2}}$.'), '\\boxed{\\frac{1}{2}}');
  assert.equal(boxedReference('so $\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}.$'), '\\left( 3, \\frac{\\pi}{2} \\right)');
  assert.equal(boxedReference('the answer is $\\boxed 7$.'), '7');
  assert.equal(lastBoxedOnlyString('\\fbox{x}'), '\\fbox{x}');
  assert.throws(() => boxedReference('\\fbox{x}'), /not a \\boxed\{…\} answer/, 'lm-eval asserts on \\fbox too');
  assert.equal(lastBoxedOnlyString('$\\boxed{1$'), null);
  assert.throws(() => boxedReference('no box'), /no closed \\boxed/);
});

test('MATH files: problem + solution with a \\boxed answer; type → family; clear errors with file:line', () => {
  const docs = loadMath(FIXTURE);
  assert.equal(docs.length, 13);
  assert.equal(docs[0].family, 'Prealgebra');
  assert.equal(docs[0].level, 'Level 1');
  const bad: Array<[string, RegExp]> = [
    ['', /x\.jsonl:1: empty file/],
    ['{"question": "q", "answer": "#### 1"}\n', /x\.jsonl:1: missing field "problem" \(this looks like GSM8k: use gsm8k:PATH\)/],
    ['{"problem": "p", "solution": "s"}\n', /x\.jsonl:1: solution: the solution has no closed \\boxed/],
    ['{"problem": "p", "solution": "\\\\boxed{1}"}\n{"problem": 3, "solution": "s"}\n', /x\.jsonl:2: field "problem" must be a string/],
    ['{"problem": "p", "solution": "\\\\boxed{1}", "type": 1}\n', /x\.jsonl:1: field "type" must be a string/],
    ['not json\n', /x\.jsonl:1: invalid JSON/],
  ];
  for (const [text, re] of bad) assert.throws(() => parseMathJsonl(text, 'x.jsonl'), (e: Error) => e instanceof MathFormatError && re.test(e.message));
  assert.deepEqual(parseBenchSpec('math:/a.jsonl'), { kind: 'math', path: '/a.jsonl' });
  assert.throws(() => parseBenchSpec('math:'), /bad bench spec/);
  assert.equal(loadProblems({ kind: 'math', path: FIXTURE }, 'all').length, 13);
  assert.throws(() => loadProblems({ kind: 'math', path: '/no/such.jsonl' }, 'all'), /MATH file not found: \/no\/such\.jsonl/);
});

test('minerva_math normalisation (Lewkowycz et al. appendix D, as lm-eval writes it)', () => {
  assert.equal(minervaUnnormalizedAnswer('x\nFinal Answer: The final answer is $5$ cm. I hope it is correct.'), '$5$ cm');
  assert.equal(minervaUnnormalizedAnswer('Final Answer: The final answer is 7. '), '7', 'the end sequence is appended');
  assert.equal(minervaUnnormalizedAnswer('Final Answer: The final answer is $7$'), '[invalidanswer]', 'no character before the appended sentence');
  assert.equal(minervaUnnormalizedAnswer('no final line'), '[invalidanswer]');
  const cases: Array<[string, string]> = [
    ['$5$ cm', '5'], ['$30$ degrees', '30'], ['30^\\circ', '30'], ['10,\\!000', '10000'], ['1,000', '1000'], ['$x = -2$', '-2'],
    ['\\text{(C)}', '(C)'], ['\\frac{\\sqrt3}{2}', '\\frac{\\sqrt{3}}{2}'], ['\\frac12', '\\frac{1}{2}'], ['\\boxed{4}', '4'],
    ['\\textbf{yes}', 'yes'], ['4 integers', '4'], ['\\$18.50', '18.50'], ['5\\text{ cm}', '5'], ['\\mbox{ inches}', ''],
  ];
  for (const [raw, want] of cases) assert.equal(normalizeFinalAnswer(raw), want, raw);
  assert.ok(minervaEquivalent('5.0', '5'), 'numbers compare by value (sympy: 5.0 − 5 = 0)');
  assert.ok(minervaEquivalent('\\dfrac{4}{8}', '0.5'));
  assert.ok(minervaEquivalent('-\\frac{2}{3}', '\\frac{-2}{3}'));
  assert.ok(!minervaEquivalent('0.333', '\\frac{1}{3}'));
  assert.ok(!minervaEquivalent('[invalidanswer]', '[invalidanswer]'));
  assert.ok(!minervaEquivalent('2\\sqrt{2}', '\\sqrt{8}'), 'documented gap: only numbers are compared by value');
});

test('hendrycks_math strip_string (the MATH paper\'s normalisation, as lm-eval writes it)', () => {
  const same: Array<[string, string]> = [
    ['\\dfrac{1}{2}', '\\frac{1}{2}'], ['\\tfrac12', '\\frac{1}{2}'], ['0.5', '\\frac{1}{2}'], ['3/4', '\\frac{3}{4}'],
    ['\\left( 3, \\frac{\\pi}{2} \\right)', '(3,\\frac{\\pi}{2})'], ['30^{\\circ}', '30^\\circ'], ['5\\text{ cm}', '5'],
    ['25\\%', '25'], ['.5', '0.5'], ['k = 7', '7'], ['\\sqrt3', '\\sqrt{3}'], ['10,\\!000', '10,000'], ['\\$5', '5'], ['a\n+b', 'a+b'],
  ];
  for (const [a, b] of same) assert.ok(hendrycksEquivalent(a, b), `${a} ≡ ${b}`);
  const differ: Array<[string, string]> = [['5.0', '5'], ['10000', '10,000'], ['\\frac{\\sqrt{3}}2', '\\frac{\\sqrt{3}}{2}'], ['x/y', 'x/y ']];
  for (const [a, b] of differ) assert.ok(!hendrycksEquivalent(a, b), `${a} ≢ ${b}`);
  assert.equal(stripString('\\frac{1}{2}'), '\\frac{1}{2}');
  assert.throws(() => stripString('1/x'), /int\(\) failed/, 'Python int() raises: is_equiv then compares the raw strings');
  assert.ok(hendrycksEquivalent('1/x', '1/x'));
  assert.throws(() => stripString('a\\text{ b}\\text{ c}'), /several/);
  assert.equal(hendrycksAnswer(' so $\\frac{1}{2}$.'), '\\frac{1}{2}');
  assert.equal(hendrycksAnswer(' $1$ or $2$'), '1$ or $2', 'between the first and the last $');
  assert.equal(hendrycksAnswer(' 7'), ' 7');
});

// The fixture's completions and their verdicts, derived by hand from the rules above (row = line of
// test/fixtures/math/problems.jsonl). minerva: Final Answer line → normalize_final_answer → equal string
// or equal number; hendrycks: between the first and last $ → strip_string equality.
const MINERVA: Array<[number, string, boolean]> = [
  [0, ' Dividing by 2 gives $\\dfrac{1}{2}$.\nFinal Answer: The final answer is $\\dfrac{1}{2}$. I hope it is correct.', true], // \dfrac{1}{2} = 1/2 by value
  [1, ' So it is $(3,\\frac{\\pi}{3})$.\nFinal Answer: The final answer is $(3,\\frac{\\pi}{3})$. I hope it is correct.', false],
  [2, ' So it is 5 cm.\nFinal Answer: The final answer is $5$ cm. I hope it is correct.', true], // " " and "cm" removed
  [3, ' Final Answer: The final answer is $30$ degrees. I hope it is correct.', true], // "degrees", "^\circ" removed
  [4, ' Final Answer: The final answer is $5.0$. I hope it is correct.', true], // trailing zero: 5.0 = 5 by value
  [5, ' Final Answer: The final answer is $10000$. I hope it is correct.', true], // ",\!" removed from 10,\!000
  [6, ' Final Answer: The final answer is $\\text{(C)}$. I hope it is correct.', true], // \text{} unwrapped
  [7, ' 3 + 4 = 7.\nFinal Answer: The final answer is $7$', false], // no sentence end → [invalidanswer]
  [8, ' Final Answer: The final answer is $3/4$. I hope it is correct.', true], // 3/4 = \frac{3}{4}
  [9, ' Final Answer: The final answer is $\\frac{\\sqrt3}{2}$. I hope it is correct.', true], // \sqrt3 → \sqrt{3}
  [10, ' Final Answer: The final answer is $x = -2$. I hope it is correct.', true], // after the last "="
  // row 11: no completion → "" → [invalidanswer]
  [12, ' The sum is 7.\nFinal Answer: The final answer is 7. I hope it is correct.', true], // reference from "\boxed 7$"
];
const HENDRYCKS: Array<[number, string, boolean]> = [
  [0, ' $\\dfrac{1}{2}$', true], // dfrac → frac
  [1, ' $(3,\\frac{\\pi}{2})$', true], // \left, \right and spaces removed from the reference
  [2, ' $5\\text{ cm}$', true], // unit after "\text{ " dropped
  [3, ' $30^{\\circ}$', true], // degrees removed on both sides
  [4, ' $5.0$', false], // no trailing-zero rule
  [5, ' $10,000$', true], // "\!" removed from the reference
  [6, ' $\\text{(C)}$', true],
  [7, ' 7', true], // no $: the whole generation; spaces removed
  [8, ' $3/4$', true], // a/b → \frac{a}{b}
  [9, ' $\\tfrac{\\sqrt3}{2}$', true], // tfrac → frac, \sqrt3 → \sqrt{3}
  [10, ' $x = -2$', true], // short "x =" prefix dropped
  [11, ' $25$', true], // "\%" removed from the reference
  [12, ' The sum is $7$ and then $8$', false], // first…last $: "7$andthen$8"
];

for (const [task, rows] of [['minerva_math', MINERVA], ['hendrycks_math', HENDRYCKS]] as const) {
  test(`${task} on the MATH fixture through a real OpenAI-compatible HTTP server: hand-derived exact_match`, async () => {
    const problems = loadProblems({ kind: 'math', path: FIXTURE }, 'all');
    const proto = TASKS[task];
    const table = Object.fromEntries(rows.map(([i, c]) => [proto.query(problems[i].question), c]));
    const srv = await startCannedServer({ model: 'canned', table, fallback: '' });
    try {
      const shots = task === 'minerva_math' ? { pool: [], k: 4, seed: 1234 } : undefined;
      const r = await evaluate(new OpenAIBackend({ endpoint: srv.url, modelName: 'canned' }), problems, { task, shots, maxTokens: 256, calculator: false });
      const want = problems.map((_, i) => rows.find((x) => x[0] === i)?.[2] ?? false);
      assert.deepEqual(r.records.map((x) => x.strict_correct), want);
      assert.deepEqual(r.records.map((x) => x.flexible_correct), want, 'one metric: flexible = strict');
      assert.equal(r.strict, want.filter(Boolean).length / 13);
      assert.equal(Math.round(r.strict * 13), task === 'minerva_math' ? 10 : 11);
      assert.deepEqual(srv.requests[0].stop, ['Problem:']);
      assert.equal(srv.requests[0].prompt, promptsFor(problems, shots, task)[0]);
      assert.ok(r.perFamily.Prealgebra.n > 0, 'subjects as families');
      if (task === 'minerva_math') {
        assert.equal(r.records[0].reference, '\\frac{1}{2}');
        assert.equal(r.records[7].strict_extracted, '[invalidanswer]');
        const blocks = (srv.requests[0].prompt as string).split('\n\nProblem:\n');
        assert.equal(blocks.length, 5, '4 fixed Minerva exemplars + the problem');
        assert.ok(blocks[0].startsWith('Problem:\nFind the domain of the expression  $\\frac{\\sqrt{x-2}}{\\sqrt{5-x}}$.}\n\nSolution: The expressions inside'));
        assert.ok(blocks[3].endsWith('Final Answer: The final answer is $-\\frac{2}{3}$. I hope it is correct.'));
        assert.equal(blocks[4], `${problems[0].question}\n\nSolution:`);
      } else {
        assert.equal(srv.requests[0].prompt, `Problem: ${problems[0].question}\nAnswer:`, 'zero-shot');
        assert.equal(r.records[12].strict_extracted, '7$ and then $8');
      }
    } finally {
      await srv.close();
    }
  });
}

test('scoreMath: the reference is the normalised boxed answer (minerva) or the boxed answer (hendrycks)', () => {
  const sol = 'So $\\boxed{10,\\!000}$.';
  assert.equal(scoreMath('minerva_math', 'Final Answer: The final answer is $10,000$. I hope it is correct.', sol).reference, '10000');
  assert.equal(scoreMath('minerva_math', 'Final Answer: The final answer is $10,000$. I hope it is correct.', sol).strict.correct, true);
  assert.equal(scoreMath('hendrycks_math', '$10000$', sol).reference, '10,\\!000');
  assert.equal(scoreMath('hendrycks_math', '$10000$', sol).strict.correct, false);
});
