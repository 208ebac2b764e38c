import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { evaluate, loadProblems, parseBenchSpec, promptFor, tinyBenchFile } from './evaluate.ts';
import type { EvalProblem } from './evaluate.ts';
import type { Completion, CompletionRequest, EvalBackend } from './backends.ts';
import { loadGsm8k } from './gsm8k.ts';

/** A backend that answers from a table (question text inside the prompt → completion). */
class TableBackend implements EvalBackend {
  readonly description = 'table';
  calls: Array<{ prompts: readonly string[]; req: CompletionRequest }> = [];
  constructor(private readonly table: Map<string, string>) {}
  async complete(prompts: readonly string[], req: CompletionRequest): Promise<Completion[]> {
    this.calls.push({ prompts, req });
    return prompts.map((p) => {
      const q = p.slice(p.lastIndexOf('Question: ') + 10, p.lastIndexOf('\nAnswer:'));
      return { text: this.table.get(q) ?? '', finish: 'eos', calculatorCalls: 0 };
    });
  }
  async close(): Promise<void> {}
}

const problems: EvalProblem[] = [
  { question: 'q0', answer: 'x\n#### 18', family: 'a' },
  { question: 'q1', answer: 'x\n#### 1,080', family: 'a' },
  { question: 'q2', answer: 'x\n#### 5', family: 'b' },
  { question: 'q3', answer: 'x\n#### -3', family: 'b' },
  { question: 'q4', answer: 'x\n#### 7', family: 'b' },
];
const gens = new Map([
  ['q0', ' so she makes $18.\n#### 18\n\nQuestion: more #### 3'], // strict ✓ flex ✓ (cut at Question:)
  ['q1', ' #### 1080 is the total 1,080'], // strict ✓ flex ✓ (commas removed)
  ['q2', ' The answer is 5.00'], // strict ✗ flex ✗ (5.00 ≠ 5)
  ['q3', ' 2 - 5 = -3\n#### -4'], // strict ✗ (-4) flex ✗ (last match -4)
  ['q4', ' 3 + 4 = 7, so 7'], // strict ✗ ([invalid]) flex ✓
]);

test('evaluate: lm-eval strict/flexible scores, per-family accuracy, records, chunking', async () => {
  const be = new TableBackend(gens);
  const r = await evaluate(be, problems, { maxTokens: 33, chunk: 2, calculator: true });
  assert.equal(r.n, 5);
  assert.equal(r.strict, 2 / 5);
  assert.equal(r.flexible, 3 / 5);
  assert.deepEqual(r.perFamily, { a: { n: 2, strict: 1, flexible: 1 }, b: { n: 3, strict: 0, flexible: 1 / 3 } });
  assert.equal(be.calls.length, 3, 'chunks of 2');
  assert.deepEqual(be.calls[0].req, { maxTokens: 33, stop: ['Question:', '</s>', '<|im_end|>'], calculator: true });
  assert.equal(be.calls[0].prompts[0], 'Question: q0\nAnswer:', 'zero-shot lm-eval query');
  const r0 = r.records[0];
  assert.equal(r0.generation, ' so she makes $18.\n#### 18\n\n', 'generation cut at the stop string');
  assert.equal(r0.reference, '18');
  assert.equal(r0.strict_extracted, '18');
  assert.equal(r0.flexible_extracted, '18', 'last flexible match after the cut');
  assert.deepEqual(r.records.map((x) => [x.index, x.strict_correct, x.flexible_correct, x.family]), [
    [0, true, true, 'a'], [1, true, true, 'a'], [2, false, false, 'b'], [3, false, false, 'b'], [4, false, true, 'b'],
  ]);
  assert.equal(r.records[4].strict_extracted, '[invalid]');
  assert.equal(r.records[2].flexible_extracted, '5.00');
});

test('few-shot prompts (sampler seeded): k shots from the pool, per-doc seeded, never the doc itself, reproducible', () => {
  const pool = Array.from({ length: 20 }, (_, i) => ({ question: `p${i}`, answer: `a${i}\n#### ${i}` }));
  const doc: EvalProblem = { question: 'p3', answer: 'x\n#### 1', index: 7 };
  const a = promptFor(doc, 0, { pool, k: 5, seed: 1, sampler: 'seeded' });
  assert.equal(a, promptFor({ ...doc }, 99, { pool, k: 5, seed: 1, sampler: 'seeded' }), 'the file index, not the position, seeds the shots');
  assert.notEqual(a, promptFor({ ...doc, index: 8 }, 0, { pool, k: 5, seed: 1, sampler: 'seeded' }));
  // the default sampler (lm-eval's): also selected by the file index, not the position
  assert.equal(promptFor(doc, 0, { pool, k: 5, seed: 1 }), promptFor(doc, 3, { pool, k: 5, seed: 1 }));
  const blocks = a.split('\n\n');
  assert.equal(blocks.length, 6);
  assert.equal(blocks[5], 'Question: p3\nAnswer:');
  for (const b of blocks.slice(0, 5)) {
    const m = /^Question: (p\d+)\nAnswer: (a\d+\n#### \d+)$/.exec(b);
    assert.ok(m, b);
    assert.notEqual(m[1], 'p3');
    assert.equal(m[2], pool.find((p) => p.question === m[1])!.answer, 'full answer as the shot target');
  }
  assert.equal(promptFor(doc, 0, { pool, k: 0, seed: 1 }), 'Question: p3\nAnswer:');
});

test('bench specs and splits', () => {
  assert.deepEqual(parseBenchSpec('tiny'), { kind: 'tiny' });
  assert.deepEqual(parseBenchSpec('gsm8k:/a/b.jsonl'), { kind: 'gsm8k', path: '/a/b.jsonl' });
  for (const bad of ['gsm8k:', 'gsm', 'tiny2', '']) assert.throws(() => parseBenchSpec(bad), /bad bench spec/);
  const dev = loadProblems({ kind: 'tiny' }, 'dev');
  assert.equal(dev.length, loadGsm8k(tinyBenchFile('dev')).length);
  assert.ok(dev.every((p) => typeof p.family === 'string'));
  assert.equal(loadProblems({ kind: 'tiny' }, 'all').length, dev.length + loadGsm8k(tinyBenchFile('test')).length);
  assert.throws(() => loadProblems({ kind: 'gsm8k', path: '/nonexistent/x.jsonl' }, 'dev'), /GSM8k file not found: \/nonexistent\/x.jsonl/);
  // the selection split: 1,000 shipped problems, disjoint from dev and test, every family; 'all' stays dev + test
  const select = loadProblems({ kind: 'tiny' }, 'select');
  assert.equal(select.length, 1000);
  assert.equal(select.length, loadGsm8k(tinyBenchFile('select')).length);
  assert.deepEqual(select.map((p) => p.index), Array.from({ length: 1000 }, (_, i) => i));
  const seen = new Set([...dev, ...loadProblems({ kind: 'tiny' }, 'test')].map((p) => p.question));
  assert.equal(select.filter((p) => seen.has(p.question)).length, 0, 'select shares no question with dev or test');
  assert.deepEqual([...new Set(select.map((p) => p.family))].sort(), [...new Set(dev.map((p) => p.family))].sort());
  assert.throws(() => loadProblems({ kind: 'gsm8k', path: '/a/b.jsonl' }, 'select'), /a GSM8k file has no selection split/);
  assert.throws(() => loadProblems({ kind: 'tiny' }, 'train' as never), /unknown split 'train': expected dev, test, select, all/);
  const real = '../shared/data/gsm8k/test.jsonl';
  if (existsSync(real)) {
    const d = loadProblems({ kind: 'gsm8k', path: real }, 'dev');
    const t = loadProblems({ kind: 'gsm8k', path: real }, 'test');
    assert.equal(d.length, 100);
    assert.equal(t.length, 1219);
    const idx = new Set([...d, ...t].map((p) => p.index));
    assert.equal(idx.size, 1319, 'dev and test are disjoint and cover the file');
  }
});
