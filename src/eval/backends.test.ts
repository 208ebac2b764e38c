import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BuiltinBackend, OpenAIBackend, completionsUrl, segmentedCompletion } from './backends.ts';
import type { RawComplete, RawCompletion, StopReasonSupport } from './backends.ts';
import { calculatorCompletion } from './calculator.ts';
import * as O from '../nn/ops.ts';
import { Llama, makeConfig } from '../nn/model.ts';
import { Tokenizer } from '../nn/tokenizer.ts';
import { buildPrompt } from './prompt.ts';

before(async () => {
  await O.initBackend();
});

/**
 * A fake deterministic "model" over characters: given the text generated so far, the next character
 * or null (end of text). It writes `script` but, right after a forced calculator value, copies the
 * forced value (as a trained model would): the script's own value is skipped.
 */
function scriptedModel(script: string): (generated: string) => string | null {
  return (generated) => {
    // align: walk the script and the generated text together; forced spans `VALUE>>` replace the
    // script's `SCRIPTVALUE>>`
    let i = 0;
    let j = 0;
    while (j < generated.length) {
      if (i < script.length && generated[j] === script[i]) {
        i++;
        j++;
        continue;
      }
      // a forced value differs from the script: skip both to after '>>'
      const gi = generated.indexOf('>>', j);
      const si = script.indexOf('>>', i);
      if (gi < 0 || si < 0) throw new Error(`fake model: cannot align ${JSON.stringify(generated)} with script`);
      j = gi + 2;
      i = si + 2;
    }
    return i < script.length ? script[i] : null;
  };
}

/** A fake /v1/completions over the scripted model: greedy, char tokens, stop strings. */
function fakeRaw(model: (g: string) => string | null, prompt0: string, reportStopReason: boolean, log: Array<{ stop: readonly string[]; max: number }>): RawComplete {
  return async (prompt, stop, maxTokens) => {
    log.push({ stop, max: maxTokens });
    assert.ok(prompt.startsWith(prompt0));
    const before = prompt.slice(prompt0.length);
    let text = '';
    let n = 0;
    let result: RawCompletion | null = null;
    while (n < maxTokens) {
      const c = model(before + text);
      if (c === null) {
        result = { text, finishReason: 'stop', stopReason: null };
        break;
      }
      text += c;
      n++;
      const hit = stop.map((s) => ({ s, i: text.indexOf(s) })).filter((h) => h.i >= 0).sort((a, b) => a.i - b.i)[0];
      if (hit) {
        result = { text: text.slice(0, hit.i), finishReason: 'stop', stopReason: hit.s };
        break;
      }
    }
    result ??= { text, finishReason: 'length', stopReason: null };
    result.promptTokens = prompt.length;
    result.completionTokens = n;
    if (!reportStopReason) delete result.stopReason;
    return result;
  };
}

/** Reference: the same model decoded char by char with the calculator hook applied after each char. */
function referenceDecode(model: (g: string) => string | null, stop: string[], maxTokens: number): { text: string; finish: string; calls: number } {
  let g = '';
  let calls = 0;
  let n = 0;
  while (n < maxTokens) {
    const c = model(g);
    if (c === null) return { text: g, finish: 'eos', calls };
    g += c;
    n++;
    const cut = Math.min(...stop.map((s) => g.indexOf(s)).filter((i) => i >= 0));
    if (Number.isFinite(cut)) return { text: g.slice(0, cut), finish: 'stop', calls };
    const f = calculatorCompletion(g);
    if (f) {
      g += f;
      n += f.length;
      calls++;
    }
  }
  return { text: g, finish: 'length', calls };
}

const SCRIPT = ' 12 + 30 = <<12+30=99>>42 apples. Then 42 / 4 = <<42/4=1>>10.5 each.\n#### 10.5\n\nQuestion: next';

test('segmented calculator decoding over an endpoint equals char-by-char decoding with the hook', async () => {
  const model = scriptedModel(SCRIPT);
  const stop = ['Question:', '</s>'];
  const ref = referenceDecode(model, stop, 500);
  assert.equal(ref.calls, 2);
  assert.ok(ref.text.includes('<<12+30=42>>') && ref.text.includes('<<42/4=10.5>>'), ref.text);
  assert.equal(ref.finish, 'stop');
  for (const report of [true, false]) {
    const log: Array<{ stop: readonly string[]; max: number }> = [];
    const support: StopReasonSupport = { value: 'unknown' };
    const got = await segmentedCompletion(fakeRaw(model, 'P:', report, log), 'P:', { maxTokens: 500, stop, calculator: true }, support);
    assert.deepEqual({ text: got.text, finish: got.finish, calls: got.calculatorCalls }, ref, `stop_reason reported: ${report}`);
    assert.equal(support.value, report ? 'yes' : 'no');
    if (report) {
      // one request per '=' (4 of them) + the last one
      assert.equal(log.length, 5);
      assert.ok(log.every((l) => l.stop.includes('=') && l.stop.includes('Question:')));
    } else {
      assert.ok(log.slice(1).every((l) => l.stop.length <= 1), 'fallback stops at = only');
      assert.ok(log.some((l) => l.max === 1), 'fallback probes one token');
    }
  }
  // without the calculator: one request, the script's own (wrong) values stay
  const plain = await segmentedCompletion(fakeRaw(model, 'P:', true, []), 'P:', { maxTokens: 500, stop, calculator: false });
  assert.equal(plain.text, SCRIPT.slice(0, SCRIPT.indexOf('Question:')));
  assert.equal(plain.finish, 'stop');
});

test('segmented decoding: token budget counts forced tokens, eos finish', async () => {
  const model = scriptedModel(SCRIPT);
  for (const max of [5, 16, 20, 40]) {
    const ref = referenceDecode(model, ['Question:'], max);
    const got = await segmentedCompletion(fakeRaw(model, '', true, []), '', { maxTokens: max, stop: ['Question:'], calculator: true });
    // the reference may cut a forced value mid-way; the endpoint appends it whole (documented)
    assert.equal(got.finish, 'length');
    assert.ok(got.text.startsWith(ref.text) || ref.text.startsWith(got.text), `${max}: ${JSON.stringify(got.text)} vs ${JSON.stringify(ref.text)}`);
    assert.ok(got.text.length <= ref.text.length + 4);
  }
  const short = scriptedModel(' 1 + 1 = <<1+1=3>>2');
  const got = await segmentedCompletion(fakeRaw(short, '', true, []), '', { maxTokens: 100, stop: [], calculator: true });
  assert.deepEqual(got, { text: ' 1 + 1 = <<1+1=2>>2', finish: 'eos', calculatorCalls: 1 });
});

test('completionsUrl normalises endpoints', () => {
  assert.equal(completionsUrl('http://127.0.0.1:8080'), 'http://127.0.0.1:8080/v1/completions');
  assert.equal(completionsUrl('http://127.0.0.1:8080/v1/'), 'http://127.0.0.1:8080/v1/completions');
  assert.equal(completionsUrl('https://h/x/v1/completions'), 'https://h/x/v1/completions');
  assert.throws(() => completionsUrl('localhost:80'), /http/);
  assert.throws(() => completionsUrl('nope'), /not a URL/);
});

test('openai backend: retries 503/429 with backoff, fails fast on 400, names the URL when unreachable', async () => {
  let calls = 0;
  const bodies: any[] = [];
  const srv = createServer((req, res) => {
    let b = '';
    req.on('data', (c) => (b += c));
    req.on('end', () => {
      calls++;
      bodies.push({ body: JSON.parse(b), auth: req.headers.authorization });
      const status = calls === 1 ? 503 : calls === 2 ? 429 : 200;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(status === 200 ? JSON.stringify({ choices: [{ text: ' 7', finish_reason: 'stop', stop_reason: null }], usage: { prompt_tokens: 3, completion_tokens: 2 } }) : '{"error":{"message":"busy"}}');
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as AddressInfo).port;
  try {
    const be = new OpenAIBackend({ endpoint: `http://127.0.0.1:${port}/v1`, modelName: 'm', apiKey: 'k1', backoffMs: 5 });
    const [c] = await be.complete(['Q'], { maxTokens: 9, stop: ['Question:'], calculator: false });
    assert.deepEqual(c, { text: ' 7', finish: 'eos', calculatorCalls: 0 });
    assert.equal(calls, 3);
    assert.equal(be.requests, 3);
    assert.deepEqual(bodies[2].body, { model: 'm', prompt: 'Q', max_tokens: 9, temperature: 0, n: 1, stop: ['Question:'] });
    assert.equal(bodies[2].auth, 'Bearer k1');
    const few = new OpenAIBackend({ endpoint: `http://127.0.0.1:${port}`, modelName: 'm', retries: 0, backoffMs: 1 });
    calls = 0;
    await assert.rejects(few.complete(['Q'], { maxTokens: 9, stop: [], calculator: false }), /HTTP 503.*|unreachable after 1 attempts: HTTP 503/);
  } finally {
    await new Promise((r) => srv.close(r));
  }
  const bad = createServer((_req, res) => {
    res.writeHead(400, { 'content-type': 'application/json' });
    res.end('{"error":{"message":"max_tokens too large"}}');
  });
  await new Promise<void>((r) => bad.listen(0, '127.0.0.1', () => r()));
  const bport = (bad.address() as AddressInfo).port;
  try {
    const be = new OpenAIBackend({ endpoint: `http://127.0.0.1:${bport}`, modelName: 'm', backoffMs: 1 });
    await assert.rejects(be.complete(['Q'], { maxTokens: 9, stop: [], calculator: false }), /HTTP 400: .*max_tokens too large/);
    assert.equal(be.requests, 1, 'no retry on 400');
  } finally {
    await new Promise((r) => bad.close(r));
  }
  // a port nobody listens on (the one just closed)
  const gone = new OpenAIBackend({ endpoint: `http://127.0.0.1:${bport}/v1`, modelName: 'm', retries: 2, backoffMs: 1 });
  await assert.rejects(gone.complete(['Q'], { maxTokens: 9, stop: [], calculator: false }), (e: Error) => {
    assert.match(e.message, new RegExp(`http://127\\.0\\.0\\.1:${bport}/v1/completions: unreachable after 3 attempts`));
    return true;
  });
});

test('builtin backend: batched rows equal unbatched rows, stop strings cut, long prompts are left-truncated', async () => {
  const tok = new Tokenizer();
  const cfg = makeConfig({ vocab_size: tok.vocabSize, hidden_size: 32, num_attention_heads: 4, num_hidden_layers: 2, intermediate_size: 64, max_position_embeddings: 128 });
  const m = Llama.init(cfg, 5);
  const w = m.getWeights();
  for (const [n, a] of w) if (!n.endsWith('norm.weight')) for (let i = 0; i < a.length; i++) a[i] *= 30;
  m.setWeights(w);
  try {
    const prompts = ['Raj has 48 buttons.', 'Each bowl costs $6. How much do 8 bowls cost?', 'x', 'y'.repeat(300)].map((q) => buildPrompt(q));
    const req = { maxTokens: 12, stop: ['Question:'], calculator: true };
    const be7 = BuiltinBackend.fromModel(m, tok, { batchSize: 7 });
    const b7 = await be7.complete(prompts, req);
    assert.equal(be7.truncatedPrompts, 1, 'the 300-char prompt does not fit 128 positions');
    const b1 = await BuiltinBackend.fromModel(m, tok, { batchSize: 1 }).complete(prompts, req);
    assert.deepEqual(b7, b1);
    assert.ok(b7.every((c) => c.finish !== 'stop' || !c.text.includes('Question:')));
    assert.ok(b7.some((c) => c.text.length > 0));
    // a stop string taken from a free generation cuts it there
    const free = await BuiltinBackend.fromModel(m, tok).complete(prompts.slice(0, 1), { maxTokens: 12, stop: [], calculator: false });
    const s = free[0].text.slice(4, 6);
    if (s.length === 2) {
      const [cut] = await BuiltinBackend.fromModel(m, tok).complete(prompts.slice(0, 1), { maxTokens: 12, stop: [s], calculator: false });
      assert.equal(cut.finish, 'stop');
      assert.equal(cut.text, free[0].text.slice(0, free[0].text.indexOf(s)));
    }
  } finally {
    m.dispose();
  }
});
