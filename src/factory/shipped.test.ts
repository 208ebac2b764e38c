/**
 * The shipped builtin factory (factory/model/, trained by `npm run factory:train`): it loads, its
 * samples at T 0.7 pass the real sandbox cascade, sampling is reproducible, and the loop's long
 * prompt cut to the header length is exactly the header the model was trained on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { BuiltinFactory } from './builtin.ts';
import { buildPrompt, loadPromptFiles, PROGRAM_HEADER } from './prompt.ts';
import { headerPrompt } from './train.ts';
import { Tokenizer } from '../nn/tokenizer.ts';
import { Sandbox, validateAlgorithm } from '../sandbox/index.ts';

const DIR = 'factory/model';

// The shipped model (canonical-names corpus, 1500 steps × 8) passed 48/48 samples at T 0.7 when trained.
test('shipped factory: samples at T 0.7 pass the sandbox cascade', async () => {
  assert.ok(existsSync(`${DIR}/model.safetensors`), `${DIR} is missing: run npm run factory:train`);
  const meta = JSON.parse(readFileSync(`${DIR}/factory.json`, 'utf8'));
  assert.ok(meta.train.finalLoss < 1.5, `final training loss ${meta.train.finalLoss} is implausibly high for a shipped model`);
  const f = await BuiltinFactory.load(DIR, { batchSize: 4 });
  const sandbox = new Sandbox();
  try {
    const opts = { temperature: 0.7, seed: 5, maxTokens: 700 };
    const cands = await f.sample(headerPrompt(), 4, opts);
    const verdicts = [];
    for (const c of cands) verdicts.push(c.code === null ? null : await validateAlgorithm(c.code, { sandbox, seed: 1234 }));
    const passed = verdicts.filter((v) => v?.ok).length;
    const detail = verdicts.map((v, i) => (v ? `${i}: ${v.ok ? 'ok' : `${v.stage} ${v.category} ${v.message}`}` : `${i}: ${cands[i].error}`)).join('\n');
    assert.ok(passed >= 3, `only ${passed}/4 samples passed the cascade:\n${detail}`);
    for (const c of cands) if (c.code !== null) assert.match(c.code, /function merge\(taskVectors, ctx\)/);
  } finally {
    await f.close();
    sandbox.close();
  }
});

test('shipped factory: samples at T 0.7 are merge programs in a code block, same seed → same programs', async () => {
  const f = await BuiltinFactory.load(DIR, { batchSize: 4 });
  try {
    const opts = { temperature: 0.7, seed: 5, maxTokens: 700 };
    const cands = await f.sample(headerPrompt(), 8, opts);
    const withCode = cands.filter((c) => c.code !== null);
    // measured for the shipped model: 42/48 samples at T 0.7 hold a fenced program defining merge
    assert.ok(withCode.length >= 4, `only ${withCode.length}/8 samples hold a code block defining merge: ${cands.map((c) => c.error ?? 'ok').join('; ')}`);
    for (const c of withCode) assert.match(c.code!, /function merge\(/);
    assert.ok(cands.every((c) => c.raw.startsWith('```js\n/**')), 'every sample starts with the doc-comment header the corpus uses');
    // sample i draws from its own stream (seed, i): a smaller call with the same seed repeats the first ones
    const again = await f.sample(headerPrompt(), 2, opts);
    assert.deepEqual(again.map((c) => c.raw), cands.slice(0, 2).map((c) => c.raw));
    const other = await f.sample(headerPrompt(), 1, { ...opts, seed: 6 });
    assert.notEqual(other[0].raw, cands[0].raw, 'another seed gives another program');
  } finally {
    await f.close();
  }
});

test('shipped factory: the loop prompt cut to the header length is the training header', async () => {
  const tok = Tokenizer.load(DIR);
  const header = tok.encode(PROGRAM_HEADER);
  const f = await BuiltinFactory.load(DIR, { maxPromptTokens: header.length });
  try {
    const prompt = buildPrompt(loadPromptFiles('.', 'algorithms/task_arithmetic.js'));
    assert.ok(prompt.text.length > 10 * PROGRAM_HEADER.length);
    assert.deepEqual(f.promptIds(prompt.text, 512), [tok.bosId, ...header]);
  } finally {
    await f.close();
  }
});
