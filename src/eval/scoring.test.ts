import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import {
  INVALID, extractStrict, extractFlexible, normalizeForExactMatch, exactMatch, referenceFor, scoreResponse, summarize, pyStrip,
} from './scoring.ts';

const JANET = 'Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\nShe makes 9 * 2 = $<<9*2=18>>18 every day at the farmer\u2019s market.\n#### 18';

test('strict-match takes the first "#### N"; the reference is the full answer field', () => {
  assert.equal(extractStrict(JANET), '18');
  assert.deepEqual(scoreResponse(JANET, JANET).strict, { extracted: '18', correct: true });
  assert.equal(extractStrict('x\n#### 5\nmore\n#### 7'), '5');
  assert.equal(scoreResponse('x\n#### 5\nmore\n#### 7', 'y\n#### 5').strict.correct, true);
  assert.equal(scoreResponse('x\n#### 5\nmore\n#### 7', 'y\n#### 7').strict.correct, false);
  // flexible takes the last number instead
  assert.equal(scoreResponse('x\n#### 5\nmore\n#### 7', 'y\n#### 7').flexible.correct, true);
});

test('strict-match needs a digit, dot, comma or minus right after "#### "', () => {
  assert.equal(extractStrict('#### $18'), INVALID);
  assert.equal(extractStrict('####18'), INVALID);
  assert.equal(extractStrict('The answer: 18'), INVALID);
  assert.equal(scoreResponse('#### $18', '#### 18').strict.correct, false);
});

test('18.00 is wrong: string comparison, no numeric equivalence', () => {
  const r = scoreResponse('So 18.00\n#### 18.00', '#### 18');
  assert.equal(r.strict.extracted, '18.00');
  assert.equal(r.strict.correct, false);
  assert.equal(r.flexible.correct, false);
});

test('flexible-extract: last match, first non-empty group, $ and trailing dot ignored', () => {
  assert.equal(extractFlexible('...so she makes $18.\n'), '$18.');
  assert.equal(scoreResponse('...so she makes $18.\n', JANET).flexible.correct, true);
  assert.equal(extractFlexible('the answer is 5'), '5'); // second alternative (single character)
  assert.equal(scoreResponse('the answer is 5', '#### 5').flexible.correct, true);
  assert.equal(extractFlexible('it costs 1,000.'), '1,000.');
  assert.equal(normalizeForExactMatch('1,000.'), '1000');
  assert.equal(extractFlexible('no digits here'), INVALID);
  assert.equal(extractStrict('no digits here'), INVALID);
  assert.equal(exactMatch(INVALID, '#### 0'), false);
});

test('an output ending in "..." makes "..." the last match, which scores wrong', () => {
  const r = scoreResponse('The answer is 18 and then...', '#### 18');
  assert.equal(r.flexible.extracted, '...');
  assert.equal(normalizeForExactMatch('...'), '..');
  assert.equal(r.flexible.correct, false);
});

test('thousands separators and negative numbers', () => {
  assert.equal(normalizeForExactMatch('Total is 1,080 pages.\n#### 1,080'), '1080');
  assert.equal(scoreResponse('#### 1080', 'x\n#### 1,080').strict.correct, true);
  assert.equal(scoreResponse('#### 1,080', 'x\n#### 1,080').strict.correct, true);
  assert.equal(scoreResponse('so -10 degrees', 'x\n#### -10').flexible.correct, true);
  assert.equal(scoreResponse('#### -10', '-10').strict.correct, true);
  assert.equal(scoreResponse('#### 10', 'x\n#### -10').strict.correct, false);
  assert.equal(extractFlexible('from 5 down to -3'), '-3');
});

test('exact_match normalisation: ignore regexes in order, replace-all, then lowercase', () => {
  assert.equal(normalizeForExactMatch('$18.'), '18');
  assert.equal(normalizeForExactMatch('$1,2$3,4'), '1234');
  // (?s).*#### is greedy: everything up to the LAST "#### " goes, across newlines
  assert.equal(normalizeForExactMatch('a\n#### 3\nb #### 5'), '5');
  // Python \.$ also matches before one final newline, not before two
  assert.equal(normalizeForExactMatch('18.\n'), '18\n');
  assert.equal(normalizeForExactMatch('18.\n\n'), '18.\n\n');
  assert.equal(normalizeForExactMatch('18..'), '18.');
  assert.equal(normalizeForExactMatch('ABC'), 'abc');
  // the order matters: "$" removal runs before the trailing-dot rule, "," before "#### "
  assert.equal(normalizeForExactMatch('7.$'), '7');
});

test('gsm8k_cot: reference is the text after the last ####, strict regex keeps its quirk', () => {
  assert.equal(referenceFor('a\n#### 1,080', 'gsm8k_cot'), '1,080');
  assert.equal(extractStrict('The answer is 18.', 'gsm8k_cot'), '18');
  assert.equal(extractStrict('The answer is 18', 'gsm8k_cot'), '1'); // the unescaped final "." eats the 8
  assert.equal(extractStrict('The answer is 18\n', 'gsm8k_cot'), '1'); // "." refuses "\n" → backtrack
  assert.equal(extractStrict('The answer is 1,080 apples.', 'gsm8k_cot'), '1,080');
  assert.equal(extractStrict('answer is 18.', 'gsm8k_cot'), INVALID);
  const r = scoreResponse('Q stuff. The answer is 1,080.', 'x\n#### 1,080', 'gsm8k_cot');
  assert.deepEqual(r.strict, { extracted: '1,080', correct: true });
  assert.equal(r.flexible.extracted, '1,080.');
  assert.equal(r.flexible.correct, true);
});

test('Python str.strip whitespace set', () => {
  assert.equal(pyStrip('\x1c 5 \x85'), '5');
  assert.equal(pyStrip('\ufeff5'), '\ufeff5'); // BOM is not whitespace for Python
});

test('summarize counts both filters', () => {
  const s = summarize([
    { completion: '#### 3', answer: '3' },
    { completion: 'it is 3', answer: '#### 3' },
    { completion: 'nothing', answer: '#### 3' },
    { completion: '#### 4', answer: '3' },
  ]);
  assert.deepEqual(s, { n: 4, strict: { correct: 1, accuracy: 0.25 }, flexible: { correct: 2, accuracy: 0.5 } });
});

const TEST_FILE = new URL('../../../shared/data/gsm8k/test.jsonl', import.meta.url);
test('every real GSM8k test answer scores itself correct under both filters', { skip: !existsSync(TEST_FILE) && 'no GSM8k data' }, () => {
  const lines = readFileSync(TEST_FILE, 'utf8').split('\n').filter((l) => l.length > 0);
  assert.equal(lines.length, 1319);
  const items = lines.map((l) => {
    const d = JSON.parse(l) as { answer: string };
    return { completion: d.answer, answer: d.answer };
  });
  const s = summarize(items);
  assert.equal(s.strict.correct, 1319);
  assert.equal(s.flexible.correct, 1319);
  // and the cot reference of each answer equals its strict extraction
  for (const it of items) assert.equal(referenceFor(it.answer, 'gsm8k_cot'), extractStrict(it.answer));
});
