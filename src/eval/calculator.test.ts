import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { calculatorCompletion, evaluateExpression, formatResult, calculatorSpans, CalculatorError } from './calculator.ts';

test('evaluateExpression: precedence, associativity, parentheses, unary minus, decimals', () => {
  assert.equal(evaluateExpression('16-3-4'), 9);
  assert.equal(evaluateExpression('2+3*4'), 14);
  assert.equal(evaluateExpression('(2+3)*4'), 20);
  assert.equal(evaluateExpression('100/10/2'), 5);
  assert.equal(evaluateExpression('-3+5'), 2);
  assert.equal(evaluateExpression('2*-3'), -6);
  assert.equal(evaluateExpression('-(2+3)*2'), -10);
  assert.equal(evaluateExpression('--4'), 4);
  assert.equal(evaluateExpression('18*.5'), 9);
  assert.equal(evaluateExpression('5.+1'), 6);
  assert.equal(evaluateExpression(' 12 / 60 '), 0.2);
  assert.equal(evaluateExpression('3*(2/3)'), 3 * (2 / 3));
  assert.equal(evaluateExpression('560//10'), 56);
  assert.equal(evaluateExpression('7//2*2'), 6);
  assert.equal(evaluateExpression('-7//2'), -4); // Python floors toward -inf
});

test('evaluateExpression refuses garbage with CalculatorError', () => {
  for (const bad of ['', '1+', '(1+2', '1+2)', '1,000+2', '2^3', '5%', 'x+1', '1..2', '1.2.3', '.', '1/0', '3/(2-2)', '1//0', '1///2', '()', '1 2']) {
    assert.throws(() => evaluateExpression(bad), CalculatorError, bad);
  }
  assert.throws(() => evaluateExpression('('.repeat(100) + '1' + ')'.repeat(100)), CalculatorError);
});

test('formatResult: integers plainly, decimals to at most 6 places, no -0', () => {
  assert.equal(formatResult(38), '38');
  assert.equal(formatResult(-10), '-10');
  assert.equal(formatResult(0.1 + 0.2), '0.3');
  assert.equal(formatResult(1 / 8), '0.125');
  assert.equal(formatResult(2 / 3), '0.666667');
  assert.equal(formatResult(-1e-9), '0');
  assert.equal(formatResult(1e15), '1000000000000000');
});

test('calculatorCompletion forces "c>>" only after an open <<EXPR=', () => {
  assert.equal(calculatorCompletion('Janet sells 16 - 3 - 4 = <<16-3-4='), '9>>');
  assert.equal(calculatorCompletion('23 + 15 = <<23+15='), '38>>');
  assert.equal(calculatorCompletion('23 + 15 ='), null); // no annotation opened
  assert.equal(calculatorCompletion('<<23+15=38>>38 and 4 ='), null); // last call already closed
  assert.equal(calculatorCompletion('<<23+15=38'), null);
  assert.equal(calculatorCompletion('<<1/0='), null);
  assert.equal(calculatorCompletion('<<2 apples='), null);
  assert.equal(calculatorCompletion('<<1,000*2='), null);
  assert.equal(calculatorCompletion('a <<2=3>> b <<7*6='), '42>>');
  assert.equal(calculatorCompletion('<<='), null);
});

test('calculatorSpans marks the forced text of every annotation', () => {
  const s = '23 + 15 = <<23+15=38>>38\n38 - 4 = <<38-4=34>>34\n#### 34';
  const spans = calculatorSpans(s);
  assert.deepEqual(spans.map(([a, b]) => s.slice(a, b)), ['38>>', '34>>']);
  for (const [a] of spans) assert.equal(calculatorCompletion(s.slice(0, a)), s.slice(a, spans.find((x) => x[0] === a)![1]));
});

const TRAIN = new URL('../../../shared/data/gsm8k/train.jsonl', import.meta.url);
test('agreement with every <<expr=result>> annotation of the GSM8k train file', { skip: !existsSync(TRAIN) && 'no GSM8k data' }, () => {
  const lines = readFileSync(TRAIN, 'utf8').split('\n').filter((l) => l.length > 0);
  let total = 0;
  let sameText = 0;
  let sameValue = 0;
  const categories = new Map<string, string[]>();
  const note = (cat: string, ann: string) => {
    const l = categories.get(cat) ?? [];
    l.push(ann);
    categories.set(cat, l);
  };
  for (const line of lines) {
    const answer = (JSON.parse(line) as { answer: string }).answer;
    for (const m of answer.matchAll(/<<([^<>]*)>>/g)) {
      total++;
      const ann = m[1];
      const eq = ann.lastIndexOf('=');
      const expected = ann.slice(eq + 1);
      const forced = calculatorCompletion(answer.slice(0, (m.index ?? 0) + 2 + eq + 1));
      if (forced === null) {
        note('calculator refused', ann);
        continue;
      }
      const got = forced.slice(0, -2);
      if (got === expected) {
        sameText++;
        sameValue++;
        continue;
      }
      const ev = Number(expected);
      if (Number.isFinite(ev) && Math.abs(ev - Number(got)) <= 1e-9 * Math.max(1, Math.abs(ev))) {
        sameValue++;
        note(/\.\d*0$/.test(expected) ? 'same value, GSM8k keeps trailing zeros (144.00)' : /^-?\./.test(expected) ? 'same value, GSM8k omits the leading 0 (.4)' : 'same value, other text', ann);
      } else if (Number.isFinite(ev) && Math.abs(ev - Number(got)) < 0.01) {
        note('GSM8k rounded', ann);
      } else {
        note('different value', ann);
      }
    }
  }
  const report = [...categories].map(([k, v]) => `${k}: ${v.length} (e.g. ${v.slice(0, 3).join(', ')})`).join('; ');
  console.log(`calculator vs GSM8k train: ${total} annotations, text agreement ${sameText} (${(100 * sameText / total).toFixed(2)}%), value agreement ${sameValue} (${(100 * sameValue / total).toFixed(2)}%); ${report}`);
  assert.equal(total, 23716);
  assert.equal(sameValue, total, `value agreement ${sameValue}/${total}`);
  assert.ok(sameText / total >= 0.97, `text agreement ${sameText}/${total}`);
});
