import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OVERFIT_DATA, makeOverfitModel, makeRandomModel, startServeProcess } from './testing.ts';

// POST /selfdev/load on a real `selfdev serve` process: the reloaded server answers exactly like a
// fresh server on the new folder; a bad folder is a 400 and the old model keeps serving; a request in
// flight during a reload finishes on the old weights.

const root = mkdtempSync(join(tmpdir(), 'selfdev-reload-test-'));
const A = join(root, 'a');
const B = join(root, 'b');
const stops: Array<() => Promise<void>> = [];
after(async () => {
  for (const s of stops) await s();
  rmSync(root, { recursive: true, force: true });
});

const made = (async () => {
  await makeOverfitModel(A);
  await makeRandomModel(B, {}, 5);
})();

const PROMPTS = [...OVERFIT_DATA.map((d) => `Question: ${d.question}\nAnswer:`), 'Question: what is 7 + 8?\nAnswer:', 'Hello'];

async function post(base: string, path: string, body: unknown): Promise<{ status: number; json: any }> {
  const r = await fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, json: await r.json() };
}
/** Greedy texts for PROMPTS through `{base}/v1/completions`. */
async function texts(base: string, model: string, maxTokens = 40, prompts = PROMPTS): Promise<string[]> {
  const r = await post(base, '/v1/completions', { model, prompt: prompts, max_tokens: maxTokens, temperature: 0 });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json.choices.map((c: { text: string }) => c.text);
}
const models = async (base: string) => ((await (await fetch(`${base}/v1/models`)).json()) as { data: Array<{ id: string }> }).data.map((m) => m.id);
const start = async (dir: string, name: string, args: string[] = []) => {
  const s = await startServeProcess(dir, { name, args });
  stops.push(s.stop);
  return { ...s, base: s.url.replace(/\/v1$/, '') };
};

test('load A, reload B: the same greedy outputs as a fresh server on B; /v1/models lists the new name; back to A', async () => {
  await made;
  const [srv, freshB] = await Promise.all([start(A, 'a'), start(B, 'b')]);
  const onA = await texts(srv.base, 'a');
  assert.equal(onA[0], OVERFIT_DATA[0].completion, 'A is the overfit model');
  const wantB = await texts(freshB.base, 'b');
  assert.notDeepEqual(onA, wantB, 'A and B answer differently');

  const r = await post(srv.base, '/selfdev/load', { model: B, name: 'b' });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.deepEqual([r.json.object, r.json.id, r.json.model_dir, r.json.previous], ['model', 'b', B, 'a']);
  assert.ok(typeof r.json.load_ms === 'number' && r.json.load_ms >= 0);
  assert.deepEqual(await models(srv.base), ['b']);
  assert.deepEqual(await texts(srv.base, 'b'), wantB, 'reloaded B = fresh B');
  const old = await post(srv.base, '/v1/completions', { model: 'a', prompt: 'x', max_tokens: 2 });
  assert.equal(old.status, 404);
  assert.match(old.json.error.message, /'a' does not exist \(this server serves 'b'\)/);
  // chat goes through the new model too
  const chat = await post(srv.base, '/v1/chat/completions', { messages: [{ role: 'user', content: 'Hi' }], max_tokens: 8, temperature: 0 });
  const chatFresh = await post(freshB.base, '/v1/chat/completions', { messages: [{ role: 'user', content: 'Hi' }], max_tokens: 8, temperature: 0 });
  assert.equal(chat.json.choices[0].message.content, chatFresh.json.choices[0].message.content);

  // name defaults to the folder's name; reloading A gives A's outputs again
  const back = await post(srv.base, '/selfdev/load', { model: A });
  assert.equal(back.status, 200, JSON.stringify(back.json));
  assert.equal(back.json.id, 'a');
  assert.deepEqual(await texts(srv.base, 'a'), onA);
});

test('a bad folder is a clear 400 and the old model keeps serving; bad requests name the field', async () => {
  await made;
  const srv = await start(A, 'a');
  const want = await texts(srv.base, 'a');
  const noWeights = join(root, 'no-weights');
  mkdirSync(noWeights, { recursive: true });
  copyFileSync(join(B, 'config.json'), join(noWeights, 'config.json'));
  copyFileSync(join(B, 'tokenizer.json'), join(noWeights, 'tokenizer.json'));
  const badConfig = join(root, 'bad-config');
  mkdirSync(badConfig, { recursive: true });
  writeFileSync(join(badConfig, 'config.json'), '{"model_type": "llama", ');
  copyFileSync(join(B, 'tokenizer.json'), join(badConfig, 'tokenizer.json'));
  const folder = 'invalid_model_folder';
  const cases: Array<[unknown, RegExp, string | null]> = [
    [{ model: join(root, 'missing') }, /cannot load '.*missing': model folder not found: .*missing \(still serving 'a'\)/, folder],
    [{ model: root }, /not a model folder \(no config\.json\)/, folder],
    [{ model: noWeights }, /cannot load '.*no-weights': .*safetensors/i, folder],
    [{ model: badConfig }, /cannot load '.*bad-config': .*config\.json/, folder],
    [{}, /'model' must be the path of a model folder/, null],
    [{ model: B, name: '' }, /'name' must be a non-empty string/, null],
    [{ model: B, path: B }, /unknown field 'path'/, null],
  ];
  for (const [body, re, code] of cases) {
    const r = await post(srv.base, '/selfdev/load', body);
    assert.equal(r.status, 400, JSON.stringify([body, r.json]));
    assert.match(r.json.error.message, re);
    assert.equal(r.json.error.code, code);
  }
  assert.equal((await fetch(`${srv.base}/selfdev/load`)).status, 405);
  assert.deepEqual(await models(srv.base), ['a']);
  assert.deepEqual(await texts(srv.base, 'a'), want, 'still serving A, unchanged');
});

test('a request in flight during a reload finishes on the old weights; the next one gets the new', async () => {
  await made;
  const srv = await start(B, 'b');
  const freshA = await start(A, 'a');
  // long greedy requests on B (many rows, many tokens; distinct max_tokens = separate engine batches,
  // between which the server reads new requests), then a reload to A while they run
  const long = Array.from({ length: 32 }, (_, i) => `Question: ${i} apples and ${i + 3} pears?\nAnswer:`);
  const lens = [150, 151, 152, 153];
  const wantB = await Promise.all(lens.map((n) => texts(srv.base, 'b', n, long)));
  const wantA = await texts(freshA.base, 'a');
  const order: string[] = [];
  const inFlight = Promise.all(lens.map((n) => texts(srv.base, 'b', n, long).then((t) => (order.push(`b${n}`), t))));
  await new Promise((r) => setTimeout(r, 30));
  const load = post(srv.base, '/selfdev/load', { model: A, name: 'a' }).then((r) => (order.push('load'), r));
  const [gotB, r] = await Promise.all([inFlight, load]);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.deepEqual(gotB, wantB, 'the requests in flight were answered by B in full');
  assert.deepEqual(await texts(srv.base, 'a'), wantA, 'requests after the reload are answered by A');
  // the reload happened while B's requests were still running (they overlapped)
  assert.notEqual(order.indexOf('load'), order.length - 1, `order ${order.join(', ')}`);
});

test('POST /selfdev/load is refused (403) when serve listens beyond loopback without --allow-load', async () => {
  await made;
  const open = await start(A, 'a', ['--host', '0.0.0.0']);
  const r = await post(open.base, '/selfdev/load', { model: B });
  assert.equal(r.status, 403);
  assert.match(r.json.error.message, /listens on 0\.0\.0\.0, not loopback \(start selfdev serve with --allow-load/);
  assert.deepEqual(await models(open.base), ['a']);
  const allowed = await start(A, 'a', ['--host', '0.0.0.0', '--allow-load']);
  const ok = await post(allowed.base, '/selfdev/load', { model: B, name: 'b' });
  assert.equal(ok.status, 200, JSON.stringify(ok.json));
  assert.deepEqual(await models(allowed.base), ['b']);
});
