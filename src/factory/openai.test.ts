import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeRandomModel } from '../serve/testing.ts';
import { FactoryEndpointError, OpenAIFactory, backoffDelay } from './openai.ts';
import { seedForRow } from '../nn/rng.ts';
import { buildPrompt } from './prompt.ts';

const PROG = 'function merge(taskVectors, ctx) {\n  return taskVectors[0].mul(0.5);\n}';
const prompt = buildPrompt({ apiReference: '# API\n\n`t.mul(x)`', example: { name: 'ex.js', code: PROG } });

interface Seen {
  url: string;
  headers: IncomingMessage['headers'];
  body: any;
}

/** A scripted local server: `handle(k, body, res)` answers the k-th request (0-based). */
async function scripted(handle: (k: number, req: Seen, res: ServerResponse) => void): Promise<{ url: string; seen: Seen[]; server: Server; maxInFlight: () => number }> {
  const seen: Seen[] = [];
  let inFlight = 0;
  let maxIn = 0;
  const server = createServer((req, res) => {
    let data = '';
    req.on('data', (c) => (data += c));
    req.on('end', () => {
      const s: Seen = { url: req.url ?? '', headers: req.headers, body: JSON.parse(data) };
      const k = seen.push(s) - 1;
      inFlight++;
      maxIn = Math.max(maxIn, inFlight);
      res.on('close', () => inFlight--);
      handle(k, s, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  servers.push(server);
  const port = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}/v1`, seen, server, maxInFlight: () => maxIn };
}
const servers: Server[] = [];
after(() => {
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
});

function json(res: ServerResponse, status: number, obj: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(obj));
}
const chatReply = (content: string, tokens = 7) => ({ choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }], usage: { completion_tokens: tokens } });
const fast = { backoffMs: 5, maxBackoffMs: 50 };

test('chat mode: one request per sample with seedForRow(seed, i), code extracted, tokens reported', async () => {
  const srv = await scripted((k, s, res) => json(res, 200, chatReply(`Here:\n\`\`\`js\n${PROG.replace('0.5', String(s.body.seed))}\n\`\`\``, 10 + k)));
  const f = new OpenAIFactory({ baseURL: srv.url, model: 'm1', ...fast });
  const c = await f.sample(prompt, 3, { temperature: 0.8, topP: 0.9, seed: 100, maxTokens: 64 });
  assert.equal(srv.seen.length, 3);
  for (const s of srv.seen) {
    assert.equal(s.url, '/v1/chat/completions');
    assert.deepEqual(s.body.messages, prompt.messages);
    assert.equal(s.body.model, 'm1');
    assert.equal(s.body.temperature, 0.8);
    assert.equal(s.body.top_p, 0.9);
    assert.equal(s.body.max_tokens, 64);
    assert.equal(s.body.n, 1);
    assert.equal(s.body.stop, undefined);
  }
  const seeds = [0, 1, 2].map((i) => seedForRow(100, i));
  assert.equal(seeds[0], 100);
  assert.deepEqual(srv.seen.map((s) => s.body.seed).sort(), [...seeds].sort());
  assert.deepEqual(c.map((x) => x.code), seeds.map((s) => PROG.replace('0.5', String(s))), 'candidate i comes from seedForRow(seed, i)');
  for (const x of c) {
    assert.equal(x.error, undefined);
    assert.ok(x.tokens! >= 10 && x.ms >= 0);
  }
  await f.close();
});

test('completions mode: prompt text and stop strings sent, raw = prefix + text', async () => {
  const srv = await scripted((_k, _s, res) => json(res, 200, { choices: [{ text: PROG, finish_reason: 'stop' }] }));
  const f = new OpenAIFactory({ baseURL: srv.url + '/', model: 'm', mode: 'completions', ...fast });
  const [c] = await f.sample(prompt, 1, { temperature: 0, seed: 1 });
  assert.equal(srv.seen[0].url, '/v1/completions');
  assert.equal(srv.seen[0].body.prompt, prompt.text);
  assert.deepEqual(srv.seen[0].body.stop, prompt.stop);
  assert.equal(srv.seen[0].body.max_tokens, 1024);
  assert.equal(c.raw, prompt.prefix + PROG);
  assert.equal(c.code, PROG);
  assert.equal(c.tokens, undefined);
});

test('500 then 200: retried and succeeds; with retries=0 the whole call rejects with the server text', async () => {
  const srv = await scripted((k, _s, res) => (k === 0 ? json(res, 500, { error: { message: 'engine crashed' } }) : json(res, 200, chatReply('```js\n' + PROG + '\n```'))));
  const f = new OpenAIFactory({ baseURL: srv.url, model: 'm', ...fast });
  const [c] = await f.sample(prompt, 1, { temperature: 1, seed: 3 });
  assert.equal(srv.seen.length, 2);
  assert.equal(c.code, PROG);
  const srv2 = await scripted((_k, _s, res) => json(res, 503, { error: { message: 'overloaded' } }));
  const g = new OpenAIFactory({ baseURL: srv2.url, model: 'm', retries: 0 });
  await assert.rejects(g.sample(prompt, 1, { temperature: 1, seed: 3 }), (e: Error) => e instanceof FactoryEndpointError && /^openai factory: POST http:\/\/127\.0\.0\.1:\d+\/v1\/chat\/completions → HTTP 503: overloaded; .*factory\.retries/.test(e.message));
  assert.equal(srv2.seen.length, 1);
});

test('429 with Retry-After is retried; 400 is not retried: the call rejects with the server message and what to change', async () => {
  const srv = await scripted((k, _s, res) => (k < 2 ? json(res, 429, { error: { message: 'slow down' } }, { 'retry-after': '0' }) : json(res, 200, chatReply('```js\n' + PROG + '\n```'))));
  const f = new OpenAIFactory({ baseURL: srv.url, model: 'm', ...fast });
  const [c] = await f.sample(prompt, 1, { temperature: 1, seed: 3 });
  assert.equal(srv.seen.length, 3);
  assert.equal(c.code, PROG);
  const bad = await scripted((_k, _s, res) => json(res, 400, { error: { message: "'temperature' must be >= 0" } }));
  const g = new OpenAIFactory({ baseURL: bad.url, model: 'm', ...fast });
  await assert.rejects(g.sample(prompt, 4, { temperature: 1, seed: 3 }), /HTTP 400: 'temperature' must be >= 0; the server rejected a request field .*factory\.extraBody/);
  assert.ok(bad.seen.length <= 4, 'no retries, no new request after the failure');
});

test('a hanging server: per-request timeout, retried, then the call rejects', async () => {
  const srv = await scripted(() => {
    /* never answers */
  });
  const f = new OpenAIFactory({ baseURL: srv.url, model: 'm', timeoutMs: 150, retries: 1, ...fast });
  const t0 = Date.now();
  await assert.rejects(f.sample(prompt, 1, { temperature: 1, seed: 3 }), /^FactoryEndpointError: openai factory: timeout after 150 ms \(POST .*\) \(after 2 attempts\); .*factory\.timeoutMs/);
  const dt = Date.now() - t0;
  assert.equal(srv.seen.length, 2);
  assert.ok(dt >= 300 && dt < 3000, `took ${dt} ms`);
  await f.close();
});

test('a body that stalls midway is covered by the timeout', async () => {
  const srv = await scripted((_k, _s, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"choices": [');
  });
  const f = new OpenAIFactory({ baseURL: srv.url, model: 'm', timeoutMs: 150, retries: 0 });
  await assert.rejects(f.sample(prompt, 1, { temperature: 1, seed: 3 }), /openai factory: timeout after 150 ms/);
});

test('connection refused is retried, then the call rejects naming the endpoint', async () => {
  const srv = await scripted(() => {});
  const url = srv.url;
  await new Promise<void>((r) => srv.server.close(() => r()));
  const f = new OpenAIFactory({ baseURL: url, model: 'm', retries: 2, ...fast });
  await assert.rejects(f.sample(prompt, 1, { temperature: 1, seed: 3 }), (e: Error) => e.message.includes(`network error: ECONNREFUSED (POST ${url}/chat/completions) (after 3 attempts); is the server running? start it, or fix factory.url (now ${url})`));
  await assert.rejects(f.checkModel(), /GET .*\/models failed after 3 attempt\(s\): ECONNREFUSED; is the server running/);
});

test('malformed 200 responses: no retry for a missing field, retry for invalid JSON', async () => {
  const srv = await scripted((k, _s, res) => (k === 0 ? (res.writeHead(200), res.end('<html>oops')) : json(res, 200, { choices: [{ message: {} }] })));
  const f = new OpenAIFactory({ baseURL: srv.url, model: 'm', ...fast });
  await assert.rejects(f.sample(prompt, 1, { temperature: 1, seed: 3 }), /has no choices\[0\]\.message\.content \(is factory\.mode right\?\)/);
  assert.equal(srv.seen.length, 2);
});

test('an answer without a merge function: code null with the extraction reason', async () => {
  const srv = await scripted((_k, _s, res) => json(res, 200, chatReply('I cannot write code today.')));
  const f = new OpenAIFactory({ baseURL: srv.url, model: 'm' });
  const [c] = await f.sample(prompt, 1, { temperature: 1, seed: 3 });
  assert.equal(c.code, null);
  assert.equal(c.raw, 'I cannot write code today.');
  assert.match(c.error!, /no merge function found/);
});

test('concurrency limit is respected and all samples are returned in order', async () => {
  const srv = await scripted((_k, s, res) => setTimeout(() => json(res, 200, chatReply('```js\n' + PROG.replace('0.5', String(s.body.seed)) + '\n```')), 40));
  const f = new OpenAIFactory({ baseURL: srv.url, model: 'm', concurrency: 3 });
  const c = await f.sample(prompt, 8, { temperature: 1, seed: 0 });
  assert.equal(srv.maxInFlight(), 3);
  assert.deepEqual(c.map((x) => x.code), [0, 1, 2, 3, 4, 5, 6, 7].map((i) => PROG.replace('0.5', String(seedForRow(0, i)))));
});

test('API key from a configurable environment variable; none when unset', async () => {
  const srv = await scripted((_k, _s, res) => json(res, 200, chatReply('```js\n' + PROG + '\n```')));
  process.env.SELFDEV_TEST_KEY = 'sk-test-123';
  const f = new OpenAIFactory({ baseURL: srv.url, model: 'm', apiKeyEnv: 'SELFDEV_TEST_KEY' });
  await f.sample(prompt, 1, { temperature: 1, seed: 3 });
  delete process.env.SELFDEV_TEST_KEY;
  await f.sample(prompt, 1, { temperature: 1, seed: 3 });
  assert.equal(srv.seen[0].headers.authorization, 'Bearer sk-test-123');
  assert.equal(srv.seen[1].headers.authorization, undefined);
});

test('close() aborts in-flight requests and pending backoffs quickly', async () => {
  const srv = await scripted(() => {});
  const f = new OpenAIFactory({ baseURL: srv.url, model: 'm', timeoutMs: 60_000 });
  const t0 = Date.now();
  const p = f.sample(prompt, 2, { temperature: 1, seed: 3 });
  setTimeout(() => void f.close(), 100);
  const c = await p;
  assert.ok(Date.now() - t0 < 2000);
  for (const x of c) assert.match(x.error!, /factory closed/);
  await assert.rejects(f.sample(prompt, 1, { temperature: 1, seed: 3 }), /closed/);
});

test('backoff: doubles, capped, jitter in [0.5, 1), Retry-After raises it', () => {
  assert.equal(backoffDelay(0, 100, 10_000, 0), 50);
  assert.equal(backoffDelay(3, 100, 10_000, 0.5), 800 * 0.75);
  assert.equal(backoffDelay(20, 100, 10_000, 0.999999), 10_000 * (0.5 + 0.5 * 0.999999));
  assert.equal(backoffDelay(0, 100, 10_000, 0, 2000), 2000);
  assert.equal(backoffDelay(0, 100, 10_000, 0, 60_000), 10_000);
});

test('bad options and arguments are rejected', async () => {
  assert.throws(() => new OpenAIFactory({ baseURL: 'nope', model: 'm' }), /baseURL "nope" is not a URL/);
  assert.throws(() => new OpenAIFactory({ baseURL: 'ftp://x/v1', model: 'm' }), /http\(s\)/);
  assert.throws(() => new OpenAIFactory({ baseURL: 'http://x/v1', model: '' }), /model is required/);
  assert.throws(() => new OpenAIFactory({ baseURL: 'http://x/v1', model: 'm', concurrency: 0 }), /concurrency must be a positive integer/);
  const f = new OpenAIFactory({ baseURL: 'http://127.0.0.1:9/v1', model: 'm' });
  await assert.rejects(f.sample(prompt, 1, { temperature: -1, seed: 0 }), /temperature must be/);
  await assert.rejects(f.sample(prompt, 1.5, { temperature: 1, seed: 0 }), /n must be a non-negative integer/);
  assert.deepEqual(await f.sample(prompt, 0, { temperature: 1, seed: 0 }), []);
});

test('against the real `selfdev serve` over a small model of ours (child process)', { skip: !existsSync('src/cli/serve.ts') && 'selfdev serve not present' }, async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'factory-serve-'));
  const dir = join(tmp, 'tiny');
  await makeRandomModel(dir, { max_position_embeddings: 1024 }, 2);
  const child = spawn(process.execPath, ['bin/selfdev.mjs', 'serve', dir, '--port', '0', '--quiet'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`serve did not start in 15 s: ${stderr}`)), 15_000);
      child.stdout.on('data', (d) => {
        out += d;
        const m = /listening on (\S+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
      child.on('exit', (code) => reject(new Error(`serve exited with ${code}: ${stderr}`)));
    });
    const base = url.replace(/\/+$/, '').replace(/(?<!\/v1)$/, '/v1');
    const small = buildPrompt({ task: 'Merge.', apiReference: '`t.add(u)`', example: { name: 'e.js', code: PROG } });
    for (const mode of ['completions', 'chat'] as const) {
      const f = new OpenAIFactory({ baseURL: base, model: 'tiny', mode, timeoutMs: 30_000, concurrency: 2 });
      const opts = { temperature: 1, topP: 0.9, seed: 40, maxTokens: 12 };
      const a = await f.sample(small, 3, opts);
      const b = await f.sample(small, 3, opts);
      assert.equal(a.length, 3);
      for (const c of a) {
        assert.ok(!c.error || /no merge function/.test(c.error), `${mode}: ${c.error}`);
        assert.ok(c.tokens! >= 1 && c.tokens! <= 12, `${mode}: tokens ${c.tokens}`);
        if (mode === 'completions') assert.ok(c.raw.startsWith(small.prefix));
      }
      assert.deepEqual(a.map((c) => c.raw), b.map((c) => c.raw), `${mode}: the server honours seed`);
      assert.ok(new Set(a.map((c) => c.raw)).size > 1, `${mode}: seedForRow(seed, i) gives different samples`);
      await f.close();
    }
    // an unknown model name: the /models check and the first request (a 404, not retried) both stop
    const g = new OpenAIFactory({ baseURL: base, model: 'other', mode: 'completions', ...fast });
    await assert.rejects(g.checkModel(), /does not serve model 'other' \(GET .*\/v1\/models lists: tiny\); set factory\.model/);
    await assert.rejects(g.sample(small, 1, { temperature: 1, seed: 0, maxTokens: 4 }), /HTTP 404: The model 'other' does not exist .*check factory\.url .*factory\.model 'other'/);
    await new OpenAIFactory({ baseURL: base, model: 'tiny' }).checkModel();
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
    rmSync(tmp, { recursive: true, force: true });
  }
});
