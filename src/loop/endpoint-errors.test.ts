/**
 * Endpoint and configuration errors stop the run at once, with a message naming the endpoint, the
 * status, the server's text and what to change, and nothing stored as a program or a score: a wrong
 * URL, a wrong model name and a server that answers 400, for the factory (`factory.kind: openai`)
 * and for the scoring server (`eval.server`), against a real `selfdev serve` process.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { makeTempDir } from '../io/testing.ts';
import { RunStore } from '../store/store.ts';
import { initBackend } from '../nn/index.ts';
import { freePort } from '../eval/served.ts';
import { startServeProcess } from '../serve/testing.ts';
import { runLoop } from './controller.ts';
import { builtinLoopConfig, microBuiltinWorld, type MicroWorld } from './testing.ts';

let tmp: ReturnType<typeof makeTempDir>;
let world: MicroWorld;
let factoryDir: string;
let coder: Awaited<ReturnType<typeof startServeProcess>>;
before(async () => {
  await initBackend();
  tmp = makeTempDir('selfdev-endpoint-errors-');
  ({ world, factoryDir } = await microBuiltinWorld(tmp.path));
  coder = await startServeProcess(factoryDir, { name: 'coder' });
});
after(async () => {
  await coder?.stop();
  tmp?.cleanup();
});

let n = 0;
/** Runs `cfg` in a fresh folder; returns the error and what the store holds afterwards. */
async function failingRun(cfg: Record<string, unknown>): Promise<{ err: Error; ms: number; samples: number; evaluated: number; status: string | undefined }> {
  const runDir = join(tmp.path, `run-${n++}`);
  const t0 = performance.now();
  const err = await runLoop(cfg, runDir).then(() => null, (e: Error) => e);
  const ms = performance.now() - t0;
  assert.ok(err, 'the run must stop');
  const s = RunStore.open(runDir, { readonly: true });
  try {
    const its = s.iterations();
    const hashes = its.flatMap((it) => s.samples(it.id).map((x) => x.hash));
    return { err, ms, samples: hashes.length, evaluated: hashes.filter((h) => s.evaluationFor(h)).length, status: s.getRun()?.status };
  } finally {
    s.close();
  }
}

const factoryCfg = (f: Record<string, unknown>) => ({ ...builtinLoopConfig(world, factoryDir), workers: 1, factory: { kind: 'openai', model: 'coder', mode: 'completions', maxTokens: 90, retries: 1, ...f } });

test('factory: a wrong URL (nothing listening, or a wrong path), a wrong model and a 400 stop the run before anything is stored', async () => {
  const closed = `http://127.0.0.1:${await freePort()}/v1`;
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['nothing listening', { url: closed }, new RegExp(`GET ${closed}/models failed after 2 attempt\\(s\\): ECONNREFUSED; is the server running\\? start it, or fix factory\\.url`)],
    ['a wrong path', { url: coder.url.replace(/\/v1$/, '/v2') }, /POST http:\/\/127\.0\.0\.1:\d+\/v2\/completions → HTTP 404: unknown route POST \/v2\/completions; check factory\.url \(the base URL with its version path/],
    ['a wrong model', { url: coder.url, model: 'gpt-4o' }, /the server at http:\/\/127\.0\.0\.1:\d+\/v1 does not serve model 'gpt-4o' \(GET .*\/v1\/models lists: coder\); set factory\.model/],
    ['a 400', { url: coder.url, maxTokens: 5000 }, /POST .*\/v1\/completions → HTTP 400: 'max_tokens' must be an integer in \[1, 127\], got 5000; the server rejected a request field .*factory\.maxTokens/],
  ];
  for (const [what, f, re] of cases) {
    const r = await failingRun(factoryCfg(f));
    assert.match(r.err.message, re, what);
    assert.equal(r.samples, 0, `${what}: nothing stored as a program`);
    assert.notEqual(r.status, 'done');
    assert.ok(r.ms < 30_000, `${what}: stopped after ${r.ms} ms`);
  }
});

test('eval.server: a wrong URL, a wrong model and a 400 stop the run at the first scoring, nothing scored', async () => {
  const serve = `${JSON.stringify(process.execPath)} bin/selfdev.mjs serve "$MODEL" --port "$PORT" --name merged --quiet`;
  const base = { ...builtinLoopConfig(world, factoryDir), workers: 1, samplesPerIteration: 3, factory: { kind: 'corpus' } };
  // zero-shot (the micro world has no GSM8k train split for lm-eval's 5 shots)
  const evalCfg = (server: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({ ...base, eval: { devSubset: 4, maxTokens: 10, batchSize: 8, shots: 0, ...extra, server: { command: serve, model: 'merged', readyTimeoutSec: 60, ...server } } });
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['a wrong path', evalCfg({ url: 'http://127.0.0.1:$PORT/v2' }), /eval\.server: GET http:\/\/127\.0\.0\.1:\d+\/v2(\/v1)?\/models → HTTP 404: .*unknown route.*; check eval\.server\.url/],
    ['a wrong model', evalCfg({ model: 'merged-7b' }), /eval\.server: the server is up but does not serve model 'merged-7b' \(GET .* lists: merged\); set eval\.server\.model/],
    ['a 400', evalCfg({}, { maxTokens: 500 }), /eval\.server: scoring through http:\/\/127\.0\.0\.1:\d+\/v1 \(model 'merged'\) failed: .*HTTP 400: .*'max_tokens' must be an integer in \[1, 159\].*\nWhat to change: an HTTP 400 names the request field/s],
  ];
  for (const [what, cfg, re] of cases) {
    const r = await failingRun(cfg);
    assert.match(r.err.message, re, what);
    assert.ok(r.samples > 0, `${what}: the factory's programs are stored`);
    assert.equal(r.evaluated, 0, `${what}: no program got a score or a verdict`);
    assert.ok(r.ms < 60_000, `${what}: stopped after ${r.ms} ms`);
  }
});
