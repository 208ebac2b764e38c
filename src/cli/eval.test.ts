import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from './main.ts';
import { captureConsole } from './testing.ts';
import { makeRandomModel } from '../serve/testing.ts';
import { loadProblems } from '../eval/evaluate.ts';
import { startCannedServer } from '../eval/canned-server.ts';

const MATH = fileURLToPath(new URL('../../test/fixtures/math/problems.jsonl', import.meta.url));

const root = mkdtempSync(join(tmpdir(), 'selfdev-eval-cli-'));
const model = join(root, 'rand');

before(async () => {
  await makeRandomModel(model, { max_position_embeddings: 256 });
});
after(() => rmSync(root, { recursive: true, force: true }));

const run = (args: string[]) => captureConsole(() => main(['eval', ...args]));

test('eval: clear usage errors', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['--model', join(root, 'nope')], /model folder not found: .*nope/],
    [['--model', model, '--bench', 'gsm9k:x'], /bad bench spec 'gsm9k:x'/],
    [['--model', model, '--bench', 'gsm8k:/no/such.jsonl'], /GSM8k file not found: \/no\/such.jsonl/],
    [['--model', model, '--split', 'train'], /--split must be dev, test, select or all/],
    [['--model', model, '--bench', 'gsm8k:/no/such.jsonl', '--split', 'select'], /--split select is the tiny world's selection split/],
    [[], /give --model DIR or --endpoint/],
    [['--endpoint', 'http://127.0.0.1:9'], /--model-name/],
    [['--model', model, '--shots', '3'], /zero-shot/],
    [['--model', model, '--calculator', '--no-calculator'], /not both/],
    [['--model', model, '--limit', '-1'], /--limit/],
    [['--model', model, '--task', 'gsm9k'], /--task must be gsm8k, gsm8k_cot, minerva_math, hendrycks_math/],
    [['--model', model, '--bench', `math:${MATH}`, '--task', 'gsm8k'], /--task gsm8k does not score MATH/],
    [['--model', model, '--bench', 'gsm8k:x.jsonl', '--task', 'minerva_math'], /math tasks need --bench math:PATH/],
    [['--model', model, '--bench', `math:${MATH}`, '--shots', '5'], /minerva_math has 4 fixed exemplars/],
    [['--model', model, '--bench', `math:${MATH}`, '--shot-sampler', 'x'], /--shot-sampler must be lm-eval or seeded/],
  ];
  for (const [args, re] of cases) {
    const r = await run(args);
    assert.notEqual(r.code, 0, args.join(' '));
    assert.match(r.err, re, args.join(' '));
  }
});

test('eval: unreachable endpoint fails after retries, naming the URL', async () => {
  // a port that was free a moment ago
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  const r = await run(['--endpoint', `http://127.0.0.1:${port}/v1`, '--model-name', 'x', '--limit', '1', '--retries', '1']);
  assert.equal(r.code, 1);
  assert.match(r.err, new RegExp(`http://127\\.0\\.0\\.1:${port}/v1/completions: unreachable after 2 attempts`));
});

test('eval: tiny world with a random model — text and JSON summaries, records file, per family', async () => {
  const out = join(root, 'sub', 'rec.jsonl');
  const r = await run(['--model', model, '--limit', '6', '--max-tokens', '8', '--out', out]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^tiny dev: n=6 {2}strict \d+\.\d% {2}flexible \d+\.\d% .*calculator on, zero-shot/);
  const recs = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const probs = loadProblems({ kind: 'tiny' }, 'dev').slice(0, 6);
  assert.deepEqual(recs.map((x) => x.question), probs.map((p) => p.question));
  assert.deepEqual(recs.map((x) => x.family), probs.map((p) => p.family));
  for (const x of recs) {
    assert.ok(['eos', 'stop', 'length'].includes(x.finish));
    for (const k of ['generation', 'reference', 'strict_extracted', 'flexible_extracted']) assert.equal(typeof x[k], 'string');
  }
  const j = await run(['--model', model, '--limit', '6', '--max-tokens', '8', '--json', '--no-calculator']);
  const s = JSON.parse(j.out.split('\n').pop()!);
  assert.equal(s.n, 6);
  assert.equal(s.settings.calculator, false);
  const fams = [...new Set(probs.map((p) => p.family!))].sort();
  assert.deepEqual(Object.keys(s.perFamily), fams);
  assert.equal(Object.values(s.perFamily as Record<string, { n: number }>).reduce((a, f) => a + f.n, 0), 6);
});

test('eval: --split select scores the tiny world\'s selection split', async () => {
  const out = join(root, 'select.jsonl');
  const r = await run(['--model', model, '--split', 'select', '--limit', '3', '--max-tokens', '4', '--json', '--out', out]);
  assert.equal(r.code, 0, r.err);
  const s = JSON.parse(r.out.split('\n').pop()!);
  assert.equal(s.split, 'select');
  assert.equal(s.n, 3);
  const recs = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { question: string });
  assert.deepEqual(recs.map((x) => x.question), loadProblems({ kind: 'tiny' }, 'select').slice(0, 3).map((p) => p.question));
});

test('eval: real GSM8k file with few-shot prompts from train.jsonl beside it', { skip: !existsSync('../shared/data/gsm8k/test.jsonl') }, async () => {
  const out = join(root, 'g.jsonl');
  const r = await run(['--model', model, '--bench', 'gsm8k:../shared/data/gsm8k/test.jsonl', '--split', 'test', '--limit', '2', '--shots', '2', '--max-tokens', '6', '--json', '--out', out]);
  assert.equal(r.code, 0, r.err);
  const s = JSON.parse(r.out);
  assert.equal(s.n, 2);
  assert.match(r.err, /warning: 2 prompt\(s\) were left-truncated/, '2-shot GSM8k prompts exceed 256 byte tokens');
  assert.equal(s.settings.shots, 2);
  assert.equal(s.settings.shotSeed, 1234);
  assert.equal(s.settings.calculator, false);
  const recs = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const test = loadProblems({ kind: 'gsm8k', path: '../shared/data/gsm8k/test.jsonl' }, 'test').slice(0, 2);
  assert.deepEqual(recs.map((x) => [x.index, x.question]), test.map((p) => [p.index, p.question]));
  assert.deepEqual(recs.map((x) => x.reference), test.map((p) => p.answer.slice(p.answer.lastIndexOf('#### ') + 5).trim()));
});

test('eval: MATH (minerva_math) and gsm8k_cot through an OpenAI-compatible endpoint', async () => {
  const srv = await startCannedServer({ model: 'm', table: { '\n\nSolution:': ' Final Answer: The final answer is $7$. I hope it is correct.', '\nA:': ' The answer is 7.' } });
  try {
    const r = await run(['--endpoint', srv.url, '--model-name', 'm', '--bench', `math:${MATH}`, '--split', 'all', '--json']);
    assert.equal(r.code, 0, r.err);
    const s = JSON.parse(r.out);
    assert.equal(s.bench, `math:${MATH}`);
    assert.equal(s.n, 13);
    assert.equal(s.settings.task, 'minerva_math');
    assert.equal(s.settings.shots, 4);
    assert.deepEqual([s.settings.calculator, s.settings.maxTokens, s.settings.stop], [false, 256, ['Problem:']]);
    // "7" is the reference of rows 7 and 12 of the fixture only
    assert.equal(s.strict, 2 / 13);
    assert.ok(Object.keys(s.perFamily).includes('Precalculus'));
    const gsm = join(root, 'cot.jsonl');
    writeFileSync(gsm, '{"question": "a?", "answer": "x\\n#### 7"}\n{"question": "b?", "answer": "y\\n#### 8"}\n');
    const txt = await run(['--endpoint', srv.url, '--model-name', 'm', '--bench', `gsm8k:${gsm}`, '--task', 'gsm8k_cot', '--split', 'all']);
    assert.equal(txt.code, 0, txt.err);
    assert.match(txt.out, /n=2 {2}strict 50\.0% {2}flexible 50\.0% .*gsm8k_cot, calculator off, 8-shot fixed exemplars/);
    assert.ok((srv.requests.at(-1)!.prompt as string).startsWith('Q: There are 15 trees in the grove.'));
  } finally {
    await srv.close();
  }
});
