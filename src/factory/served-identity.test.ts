/**
 * The openai factory against a real `selfdev serve` process: request fields in the ranges real
 * servers take, and the same programs as the in-process builtin factory when the builtin model is
 * served (promptStyle builtin + the per-sample seeds of seedForRow).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { makeTempDir } from '../io/testing.ts';
import { makeRandomModel, startServeProcess } from '../serve/testing.ts';
import { seedForRow } from '../nn/rng.ts';
import { Tokenizer } from '../nn/tokenizer.ts';
import { BuiltinFactory } from './builtin.ts';
import { OpenAIFactory } from './openai.ts';
import { buildPrompt } from './prompt.ts';

const PROG = 'function merge(taskVectors, ctx) {\n  return taskVectors[0].mul(0.5);\n}';
const prompt = buildPrompt({ apiReference: '# API\n\n`t.mul(x)` multiplies.', example: { name: 'ex.js', code: PROG } });

let tmp: ReturnType<typeof makeTempDir>;
let dir: string;
let srv: Awaited<ReturnType<typeof startServeProcess>>;
before(async () => {
  tmp = makeTempDir('factory-served-');
  dir = join(tmp.path, 'coder');
  await makeRandomModel(dir, { max_position_embeddings: 256 }, 5);
  srv = await startServeProcess(dir, { name: 'coder' });
});
after(async () => {
  await srv?.stop();
  tmp?.cleanup();
});

async function post(path: string, body: unknown): Promise<{ status: number; json: any }> {
  const r = await fetch(`${srv.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, json: await r.json() };
}

test('selfdev serve takes seeds anywhere in the signed 64-bit range, n choices, token-id prompts and default-valued OpenAI fields', async () => {
  const base = { model: 'coder', prompt: 'function merge', max_tokens: 6, temperature: 1.3 };
  for (const seed of [0, 2 ** 31, 2 ** 32 - 2, 2 ** 32 + 7, 2 ** 53 - 1, -(2 ** 63), 2 ** 63, -1]) {
    const r = await post('/completions', { ...base, seed });
    assert.equal(r.status, 200, `seed ${seed}: ${JSON.stringify(r.json)}`);
  }
  // only the seed's value mod 2^32 selects the stream
  const a = await post('/completions', { ...base, seed: 7 });
  const b = await post('/completions', { ...base, seed: 2 ** 32 + 7 });
  assert.equal(a.json.choices[0].text, b.json.choices[0].text);
  // n choices: choice j is row j of the request; seedForRow(s, j) as a one-row request gives the same text
  const many = await post('/completions', { ...base, seed: 3_000_000_000, n: 4 });
  assert.deepEqual(many.json.choices.map((c: any) => c.index), [0, 1, 2, 3]);
  for (let j = 0; j < 4; j++) {
    const one = await post('/completions', { ...base, seed: seedForRow(3_000_000_000, j) });
    assert.equal(one.json.choices[0].text, many.json.choices[j].text, `row ${j}`);
  }
  assert.ok(new Set(many.json.choices.map((c: any) => c.text)).size > 1, 'the n choices differ');
  // a token-id prompt (bos + ids, as given) = the text prompt (the server adds bos to text)
  const tok = Tokenizer.load(dir);
  const ids = tok.encodePrompt('function merge');
  const t = await post('/completions', { ...base, prompt: ids, seed: 11 });
  const s = await post('/completions', { ...base, seed: 11 });
  assert.equal(t.json.choices[0].text, s.json.choices[0].text);
  assert.equal(t.json.usage.prompt_tokens, ids.length);
  const lists = await post('/completions', { ...base, prompt: [ids, ids], temperature: 0 });
  assert.equal(lists.json.choices.length, 2);
  // default-valued fields a client sends (OpenAI SDKs, lm-eval, TRL's vLLM client) are accepted
  const full = await post('/chat/completions', {
    model: 'coder', messages: [{ role: 'user', content: 'hi' }], max_completion_tokens: 4, temperature: 0, top_p: 1, n: 2, seed: 2 ** 40,
    frequency_penalty: 0, presence_penalty: 0, logprobs: false, top_logprobs: null, stream: false, stream_options: null, user: 'u-1',
    response_format: { type: 'text' }, logit_bias: {}, tool_choice: 'none', metadata: { run: 'x' }, store: false,
  });
  assert.equal(full.status, 200, JSON.stringify(full.json));
  assert.equal(full.json.choices.length, 2);
  // what is not implemented is a 400 naming the field
  for (const [k, v, re] of [['presence_penalty', 0.3, /only 0/], ['logprobs', 2, /'logprobs' is not supported/], ['n', 129, /\[1, 128\]/], ['seed', 2 ** 64, /'seed' must be an integer/], ['best_of', 3, /only 1/]] as const) {
    const r = await post('/completions', { ...base, [k]: v });
    assert.equal(r.status, 400, k);
    assert.match(r.json.error.message, re);
    assert.equal(r.json.error.param, k);
  }
});

test('the builtin model served: promptStyle builtin gives the in-process builtin factory’s programs, sample for sample', async () => {
  const maxPromptTokens = 20;
  const opts = { temperature: 1.2, topP: 1, seed: 3_987_654_321, maxTokens: 24 };
  const local = await BuiltinFactory.load(dir, { maxPromptTokens, batchSize: 3 });
  const served = new OpenAIFactory({ baseURL: srv.url, model: 'coder', mode: 'completions', promptStyle: 'builtin', tokenizer: dir, maxPromptTokens, concurrency: 2, timeoutMs: 60_000 });
  try {
    await served.checkModel();
    const body = served.requestBody(prompt, opts, 5);
    assert.deepEqual(body.prompt, local.promptIds(prompt.text, 24), 'the same prompt tokens (bos + the last 20)');
    assert.ok((body.seed as number) >= 0 && (body.seed as number) < 2 ** 32);
    const a = await local.sample(prompt, 7, opts);
    const b = await served.sample(prompt, 7, opts);
    assert.deepEqual(b.map((c) => c.raw), a.map((c) => c.raw));
    assert.deepEqual(b.map((c) => c.tokens), a.map((c) => c.tokens));
    assert.ok(new Set(a.map((c) => c.raw)).size > 1);
    // the paper's full prompt through the same server is another prompt: other programs
    const paper = new OpenAIFactory({ baseURL: srv.url, model: 'coder', mode: 'completions', concurrency: 2 });
    const c = await paper.sample(prompt, 3, opts);
    assert.notDeepEqual(c.map((x) => x.raw), a.slice(0, 3).map((x) => x.raw));
    await paper.close();
  } finally {
    await local.close();
    await served.close();
  }
  assert.throws(() => new OpenAIFactory({ baseURL: srv.url, model: 'coder', promptStyle: 'builtin', tokenizer: dir }), /promptStyle builtin sends token ids, which only \/completions takes/);
  assert.throws(() => new OpenAIFactory({ baseURL: srv.url, model: 'coder', mode: 'completions', promptStyle: 'builtin' }), /needs tokenizer/);
  assert.throws(() => new OpenAIFactory({ baseURL: srv.url, model: 'coder', mode: 'completions', promptStyle: 'builtin', tokenizer: tmp.path }), /tokenizer\.json not found/);
  assert.throws(() => new OpenAIFactory({ baseURL: srv.url, model: 'coder', maxPromptTokens: 5 }), /belong to promptStyle builtin/);
});
