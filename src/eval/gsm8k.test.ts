import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { parseGsm8kJsonl, loadGsm8k, finalAnswer, splitDevTest, seededPermutation, Gsm8kFormatError } from './gsm8k.ts';

const ok = '{"question": "q1", "answer": "1 + 1 = <<1+1=2>>2\\n#### 2"}';

test('parseGsm8kJsonl: valid lines, optional final newline, CRLF, extra family field', () => {
  assert.deepEqual(parseGsm8kJsonl(`${ok}\n${ok}\n`, 'f'), [
    { question: 'q1', answer: '1 + 1 = <<1+1=2>>2\n#### 2' },
    { question: 'q1', answer: '1 + 1 = <<1+1=2>>2\n#### 2' },
  ]);
  assert.equal(parseGsm8kJsonl(`${ok}\r\n${ok}`, 'f').length, 2);
  assert.deepEqual(parseGsm8kJsonl('{"question":"q","answer":"#### 5","family":"mix"}', 'f'), [{ question: 'q', answer: '#### 5', family: 'mix' }]);
});

test('parseGsm8kJsonl: clear errors naming file and line', () => {
  const cases: Array<[string, RegExp]> = [
    [`${ok}\n{"question": "q"`, /^data\.jsonl:2: invalid JSON/],
    [`${ok}\n{"question": "q"}`, /^data\.jsonl:2: missing field "answer"/],
    [`{"answer": "#### 1"}`, /^data\.jsonl:1: missing field "question"/],
    [`{"question": 3, "answer": "#### 1"}`, /^data\.jsonl:1: field "question" must be a string, got number/],
    [`${ok}\n${ok}\n{"question": "q", "answer": "42"}`, /^data\.jsonl:3: answer has no "#### "/],
    [`{"question": "q", "answer": "#### abc"}`, /^data\.jsonl:1: no number after/],
    [`[1, 2]`, /^data\.jsonl:1: expected a JSON object/],
    [`${ok}\n\n${ok}`, /^data\.jsonl:2: empty line/],
    [``, /^data\.jsonl:1: empty file/],
  ];
  for (const [text, re] of cases) {
    assert.throws(() => parseGsm8kJsonl(text, 'data.jsonl'), (e: unknown) => e instanceof Gsm8kFormatError && re.test(e.message), text);
  }
});

test('loadGsm8k reads a file and names it in errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gsm8k-'));
  try {
    const f = join(dir, 'bad.jsonl');
    writeFileSync(f, `${ok}\nnot json\n`);
    assert.throws(() => loadGsm8k(f), new RegExp(`${f.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:2: invalid JSON`));
    assert.throws(() => loadGsm8k(join(dir, 'missing.jsonl')), /cannot read GSM8k file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('finalAnswer returns the text after the last ####', () => {
  assert.equal(finalAnswer('a\n#### 1,080'), '1,080');
  assert.equal(finalAnswer('#### -10'), '-10');
  assert.throws(() => finalAnswer('no marker'), /no "####"/);
});

test('splitDevTest: a seeded partition, file order kept, deterministic', () => {
  const docs = Array.from({ length: 1319 }, (_, i) => i);
  const s = splitDevTest(docs, 100, 7);
  assert.equal(s.dev.length, 100);
  assert.equal(s.test.length, 1219);
  assert.deepEqual([...s.dev, ...s.test].sort((a, b) => a - b), docs);
  assert.deepEqual(s.dev, s.devIndices);
  for (let i = 1; i < s.dev.length; i++) assert.ok(s.dev[i] > s.dev[i - 1]);
  assert.deepEqual(splitDevTest(docs, 100, 7), s);
  assert.notDeepEqual(splitDevTest(docs, 100, 8).devIndices, s.devIndices);
  assert.ok(s.dev[99] - s.dev[0] > 1000, 'dev is spread over the file, not a prefix');
  assert.throws(() => splitDevTest(docs, 2000), /nDev 2000/);
  const p = seededPermutation(10, 3);
  assert.deepEqual([...p].sort((a, b) => a - b), [...Array(10).keys()]);
});

const TEST = new URL('../../../shared/data/gsm8k/test.jsonl', import.meta.url);
const TRAIN = new URL('../../../shared/data/gsm8k/train.jsonl', import.meta.url);
test('the real GSM8k files load and validate', { skip: !existsSync(TEST) && 'no GSM8k data' }, () => {
  const test = loadGsm8k(TEST.pathname);
  const train = loadGsm8k(TRAIN.pathname);
  assert.equal(test.length, 1319);
  assert.equal(train.length, 7473);
  assert.equal(test.filter((d) => finalAnswer(d.answer).includes(',')).length, 14);
  assert.equal(train.filter((d) => finalAnswer(d.answer).startsWith('-')).length, 3);
  const s = splitDevTest(test, 100, 0);
  assert.equal(s.dev.length + s.test.length, 1319);
});
