// `selfdev serve`'s loader (load.ts → checkpoint.ts loadInferModel, no framework): a served folder
// answers exactly like the framework model of the same folder (the path serve used before), and a
// folder with a missing tensor or a tensor of the wrong shape is a ModelFolderError, for a start and
// for POST /selfdev/load, which leaves the running model serving unchanged.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as O from '../nn/ops.ts';
import { loadModel } from '../nn/checkpoint.ts';
import { InferModel } from '../nn/infer.ts';
import { makeArchCheckpoint } from '../nn/arch-testing.ts';
import { rewriteWeights } from '../nn/folder-testing.ts';
import { engineGenerate } from '../eval/backends.ts';
import { ModelFolderError, loadServedModel } from './load.ts';
import { serveModelDir } from './server.ts';

const root = mkdtempSync(join(tmpdir(), 'selfdev-serve-load-'));
after(() => rmSync(root, { recursive: true, force: true }));

const A = join(root, 'a');
const B = join(root, 'b');
makeArchCheckpoint(A, 'mistral', { seed: 31, dtype: 'BF16', maxShardBytes: 8000, window: 5 });
makeArchCheckpoint(B, 'llama3', { seed: 32, dtype: 'F16' });
// B's folder with up_proj of layer 0 left out, and with gate_proj of layer 1 stored transposed (same bytes)
const missing = rewriteWeights(B, join(root, 'missing-tensor'), (ts) => ts.filter((t) => t.name !== 'model.layers.0.mlp.up_proj.weight'));
const wrongShape = rewriteWeights(B, join(root, 'wrong-shape'), (ts) => ts.map((t) => (t.name === 'model.layers.1.mlp.gate_proj.weight' ? { ...t, shape: [t.shape[1]!, t.shape[0]!] } : t)));
const PROMPTS = ['the cat sat on the', 'Question: 2 + 3 =', 'HELLO world'];

async function post(base: string, path: string, body: unknown): Promise<{ status: number; json: any }> {
  const r = await fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, json: await r.json() };
}
async function texts(base: string): Promise<string[]> {
  const r = await post(base, '/v1/completions', { prompt: PROMPTS, max_tokens: 20, temperature: 0 });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json.choices.map((c: { text: string }) => c.text);
}

test('the served model is the engine-only model and answers as the framework model of the folder did', async () => {
  const served = await loadServedModel(A, 'a');
  try {
    assert.ok(served.model instanceof InferModel, 'no framework model behind selfdev serve');
    await O.initBackend();
    const old = loadModel(A, { tokenizer: 'any' });
    try {
      for (const temperature of [0, 0.8]) {
        const o = { maxTokens: 20, temperature, seed: 3, batchSize: 2 };
        assert.deepEqual(await engineGenerate(served.model, served.tok, PROMPTS, o), await engineGenerate(old.model, old.tokenizer!, PROMPTS, o), `temperature ${temperature}`);
      }
      // the tfjs engine needs the framework model: a clear error, not a crash
      await assert.rejects(engineGenerate(served.model, served.tok, PROMPTS, { maxTokens: 2, engine: 'tfjs' }), /needs the framework model/);
    } finally {
      old.model.dispose();
    }
  } finally {
    await served.release();
  }
});

test('a folder with a missing tensor or a wrong shape is a ModelFolderError; POST /selfdev/load leaves the running model serving', async () => {
  await assert.rejects(loadServedModel(missing), (e: Error) => e instanceof ModelFolderError && /model\.layers\.0\.mlp\.up_proj\.weight/.test(e.message) && /missing/i.test(e.message));
  await assert.rejects(loadServedModel(wrongShape), (e: Error) => e instanceof ModelFolderError && /model\.layers\.1\.mlp\.gate_proj\.weight/.test(e.message) && /shape/.test(e.message));
  const { url, server } = await serveModelDir(A, { port: 0, host: '127.0.0.1', name: 'a' });
  try {
    const want = await texts(url);
    for (const [dir, re] of [[missing, /up_proj/], [wrongShape, /gate_proj.*shape|shape.*gate_proj/]] as const) {
      const r = await post(url, '/selfdev/load', { model: dir, name: 'bad' });
      assert.equal(r.status, 400, JSON.stringify(r.json));
      assert.equal(r.json.error.code, 'invalid_model_folder');
      assert.match(r.json.error.message, re);
      assert.match(r.json.error.message, /still serving 'a'/);
      assert.equal(server.modelName, 'a');
      assert.deepEqual(await texts(url), want, 'the running model is untouched');
    }
    // a good folder still loads afterwards, and answers like a fresh server on it
    const ok = await post(url, '/selfdev/load', { model: B, name: 'b' });
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    const fresh = await serveModelDir(B, { port: 0, host: '127.0.0.1', name: 'b' });
    try {
      assert.deepEqual(await texts(url), await texts(fresh.url));
    } finally {
      await fresh.server.close();
    }
  } finally {
    await server.close();
  }
});
