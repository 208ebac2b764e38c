import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { OVERFIT_DATA, makeOverfitModel } from './testing.ts';
import { CompletionServer, chatPrompt } from './server.ts';
import { BuiltinBackend, engineGenerate } from '../eval/backends.ts';
import { main } from '../cli/main.ts';
import { captureConsole } from '../cli/testing.ts';

const root = mkdtempSync(join(tmpdir(), 'selfdev-serve-test-'));
const modelDir = join(root, 'tiny');
const bin = fileURLToPath(new URL('../../bin/selfdev.mjs', import.meta.url));
let child: ChildProcess;
let url = '';
let builtin: BuiltinBackend;

before(async () => {
  await makeOverfitModel(modelDir);
  builtin = await BuiltinBackend.load(modelDir);
  child = spawn(process.execPath, [bin, 'serve', modelDir, '--port', '0', '--quiet'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (c) => (err += c));
  url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`serve did not start: ${err}`)), 30_000);
    child.stdout!.on('data', (c) => {
      out += c;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(m[1]);
      }
    });
    child.on('exit', (code) => reject(new Error(`serve exited with ${code}: ${err}`)));
  });
});

after(async () => {
  child?.kill('SIGTERM');
  await builtin?.close();
  rmSync(root, { recursive: true, force: true });
});

async function post(path: string, body: unknown, raw = false): Promise<{ status: number; json: any }> {
  const res = await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: raw ? (body as string) : JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}

const q = (i: number) => `Question: ${OVERFIT_DATA[i].question}\nAnswer:`;

test('serve binds to loopback and lists the model', async () => {
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
  const r = await fetch(`${url}/v1/models`);
  assert.equal(r.status, 200);
  const j = (await r.json()) as { data: Array<{ id: string; object: string }> };
  assert.deepEqual(j.data.map((m) => [m.id, m.object]), [['tiny', 'model']]);
});

test('/v1/completions: same text as the engine, list prompts, stop, finish_reason, stop_reason, usage', async () => {
  const { status, json } = await post('/v1/completions', { model: 'tiny', prompt: [q(0), q(1)], max_tokens: 40, temperature: 0 });
  assert.equal(status, 200);
  assert.equal(json.object, 'text_completion');
  const ref = await engineGenerate(builtin.model, builtin.tokenizer, [q(0), q(1)], { maxTokens: 40 });
  assert.deepEqual(json.choices.map((c: any) => c.text), ref.map((g) => g.text));
  assert.equal(json.choices[0].text, OVERFIT_DATA[0].completion, 'the overfit model reproduces its answer');
  assert.deepEqual(json.choices.map((c: any) => [c.index, c.finish_reason, c.stop_reason]), [[0, 'stop', null], [1, 'stop', null]]);
  assert.equal(json.usage.prompt_tokens, ref.reduce((a, g) => a + g.promptTokens, 0));
  assert.equal(json.usage.completion_tokens, ref.reduce((a, g) => a + g.completionTokens, 0));
  assert.equal(json.usage.total_tokens, json.usage.prompt_tokens + json.usage.completion_tokens);
  const s = await post('/v1/completions', { prompt: q(0), max_tokens: 40, temperature: 0, stop: ['<<', '=', 'zz'] });
  assert.deepEqual([s.json.choices[0].text, s.json.choices[0].finish_reason, s.json.choices[0].stop_reason], [' 2 + 3 ', 'stop', '=']);
  const l = await post('/v1/completions', { prompt: q(0), max_tokens: 5, temperature: 0 });
  assert.deepEqual([l.json.choices[0].text, l.json.choices[0].finish_reason, l.json.usage.completion_tokens], [' 2 + ', 'length', 5]);
  // sampling is seeded: same seed → same text
  const a = await post('/v1/completions', { prompt: 'Question:', max_tokens: 12, temperature: 1.5, seed: 4 });
  const b = await post('/v1/completions', { prompt: 'Question:', max_tokens: 12, temperature: 1.5, seed: 4 });
  assert.equal(a.json.choices[0].text, b.json.choices[0].text);
});

test('/v1/chat/completions uses the documented template', async () => {
  const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }];
  assert.equal(chatPrompt(messages), 'System: Be brief.\n\nUser: Hi\n\nAssistant:');
  const { status, json } = await post('/v1/chat/completions', { model: 'tiny', messages, max_tokens: 6, temperature: 0 });
  assert.equal(status, 200);
  assert.equal(json.object, 'chat.completion');
  const [ref] = await engineGenerate(builtin.model, builtin.tokenizer, [chatPrompt(messages)], { maxTokens: 6, stop: ['\nUser:', '\nSystem:'] });
  assert.equal(json.choices[0].message.role, 'assistant');
  assert.equal(json.choices[0].message.content, ref.text.replace(/^ /, ''));
});

test('errors are OpenAI-style JSON with proper status codes', async () => {
  const cases: Array<[string, unknown, number, RegExp, boolean?]> = [
    ['/v1/completions', '{"prompt": ', 400, /not valid JSON/, true],
    ['/v1/completions', '[1]', 400, /JSON object/, true],
    ['/v1/completions', { max_tokens: 3 }, 400, /'prompt'/],
    ['/v1/completions', { prompt: [1, -2] }, 400, /'prompt'\[1\] must be a token id/],
    ['/v1/completions', { prompt: [[1], 'x'] }, 400, /'prompt'/],
    ['/v1/completions', { prompt: 'x', max_tokens: 0 }, 400, /'max_tokens'/],
    ['/v1/completions', { prompt: 'x', max_tokens: 1e6 }, 400, /'max_tokens'/],
    ['/v1/completions', { prompt: 'x', temperature: -1 }, 400, /'temperature'/],
    ['/v1/completions', { prompt: 'x', stop: [3] }, 400, /'stop'/],
    ['/v1/completions', { prompt: 'x', n: 0 }, 400, /'n' must be an integer in \[1, 128\]/],
    ['/v1/completions', { prompt: 'x', seed: 1.5 }, 400, /'seed' must be an integer/],
    ['/v1/completions', { prompt: 'x', presence_penalty: 0.5 }, 400, /presence_penalty' 0.5 is not supported/],
    ['/v1/completions', { prompt: 'x', frequency_penalty: 3 }, 400, /'frequency_penalty' must be a number in \[-2, 2\]/],
    ['/v1/completions', { prompt: 'x', stream: true }, 400, /'stream'/],
    ['/v1/completions', { prompt: 'x', model: 'gpt-4' }, 404, /gpt-4.*does not exist/],
    ['/v1/chat/completions', { messages: [{ role: 'robot', content: 'x' }] }, 400, /role/],
    ['/v1/nothing', {}, 404, /unknown route/],
  ];
  for (const [path, body, status, re, raw] of cases) {
    const r = await post(path, body, raw);
    assert.equal(r.status, status, `${path} ${JSON.stringify(body)}`);
    assert.match(r.json.error.message, re);
    assert.ok('type' in r.json.error && 'param' in r.json.error && 'code' in r.json.error);
  }
  const g = await fetch(`${url}/v1/completions`);
  assert.equal(g.status, 405);
});

test('selfdev eval --endpoint against selfdev serve equals the builtin engine (greedy, calculator)', async () => {
  const bench = join(root, 'bench.jsonl');
  const tinyDev = readFileSync(fileURLToPath(new URL('../../world/bench/dev.jsonl', import.meta.url)), 'utf8').split('\n').slice(0, 4).join('\n');
  writeFileSync(bench, OVERFIT_DATA.map((d) => JSON.stringify({ question: d.question, answer: d.answer, family: d.family })).join('\n') + '\n' + tinyDev + '\n');
  const run = async (args: string[]) => {
    const r = await captureConsole(() => main(['eval', '--bench', `gsm8k:${bench}`, '--split', 'all', '--shots', '0', '--max-tokens', '40', '--json', ...args]));
    assert.equal(r.code, 0, `${r.out}\n${r.err}`);
    return JSON.parse(r.out.split('\n').at(-1)!);
  };
  const recs = (f: string) => readFileSync(f, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const eOut = join(root, 'endpoint.jsonl');
  const bOut = join(root, 'builtin.jsonl');
  const e = await run(['--endpoint', `${url}/v1`, '--model-name', 'tiny', '--calculator', '--out', eOut]);
  const b = await run(['--model', modelDir, '--calculator', '--out', bOut, '--batch', '3']);
  assert.equal(e.n, 6);
  assert.deepEqual([e.strict, e.flexible, e.perFamily], [b.strict, b.flexible, b.perFamily]);
  const er = recs(eOut);
  const br = recs(bOut);
  assert.deepEqual(er, br, 'identical per-question records');
  // the calculator really forced the right value over the memorised wrong one
  assert.equal(br[0].calculator_calls, 1);
  assert.ok(br[0].generation.startsWith(' 2 + 3 = <<2+3=5>>'), br[0].generation);
  assert.ok(br[1].generation.startsWith(' 6 * 4 = <<6*4=24>>24'), br[1].generation);
  const n = await run(['--model', modelDir, '--no-calculator', '--out', bOut]);
  assert.equal(n.n, 6);
  const nr = recs(bOut);
  assert.equal(nr[0].generation, OVERFIT_DATA[0].completion);
  assert.equal(nr[0].calculator_calls, 0);
  assert.equal(nr[0].strict_extracted, '7');
  assert.equal(nr[0].strict_correct, false);
  assert.equal(nr[1].strict_correct, true);
});

test('requests that arrive together are batched, and batching does not change results', async () => {
  const srv = new CompletionServer(builtin.model, builtin.tokenizer, { name: 'm', batchWindowMs: 20 });
  const base = await srv.listen(0);
  try {
    const prompts = [q(0), q(1), 'Question: x\nAnswer:', 'Hello', q(1), 'abc'];
    const one = async (p: string) => {
      const r = await fetch(`${base}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: p, max_tokens: 10, temperature: 0 }) });
      return ((await r.json()) as { choices: Array<{ text: string }> }).choices[0].text;
    };
    const together = await Promise.all(prompts.map(one));
    assert.ok(srv.stats.batches < prompts.length, `batches ${srv.stats.batches} for ${prompts.length} requests`);
    const ref = await engineGenerate(builtin.model, builtin.tokenizer, prompts, { maxTokens: 10, batchSize: 1 });
    assert.deepEqual(together, ref.map((g) => g.text));
  } finally {
    await srv.close();
  }
});
