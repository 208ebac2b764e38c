/**
 * `selfdev eval` and `selfdev serve` on tiny Mistral-, Qwen2- (sharded) and Llama-3-shaped
 * checkpoints: the builtin engine scores them in process, a real `selfdev serve` process serves
 * them, and scoring through that server gives the same completions as in process.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from './main.ts';
import { captureConsole } from './testing.ts';
import { makeTempDir } from '../io/testing.ts';
import { makeArchCheckpoint, TEST_ARCHS } from '../nn/arch-testing.ts';

const tmp = makeTempDir('selfdev-arch-cli-');
after(() => tmp.cleanup());
const bin = fileURLToPath(new URL('../../bin/selfdev.mjs', import.meta.url));

const bench = join(tmp.path, 'mini.jsonl');
writeFileSync(
  bench,
  ['Tom has 3 apples and buys 5 more. How many apples does he have?|3 + 5 = 8\n#### 8', 'A box holds 6 pens. How many pens are in 4 boxes?|6 * 4 = 24\n#### 24']
    .map((l) => JSON.stringify({ question: l.split('|')[0], answer: l.split('|')[1] }))
    .join('\n') + '\n',
);

const evalCli = (args: string[]) => captureConsole(() => main(['eval', ...args]));

/** Starts `selfdev serve DIR` as its own process; resolves with its URL and the process. */
function serve(dir: string): Promise<{ url: string; stop: () => void }> {
  const child = spawn(process.execPath, [bin, 'serve', dir, '--port', '0', '--quiet'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (c) => (err += c));
  return new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => (child.kill('SIGTERM'), reject(new Error(`serve did not start: ${err}`))), 60_000);
    child.stdout!.on('data', (c) => {
      out += c;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve({ url: m[1]!, stop: () => child.kill('SIGTERM') });
      }
    });
    child.on('exit', (code) => reject(new Error(`serve exited with ${code}: ${err}`)));
  });
}

const records = (file: string) =>
  readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

for (const arch of TEST_ARCHS) {
  test(`${arch}: selfdev eval scores it in process, and through selfdev serve with the same completions`, async () => {
    const dir = join(tmp.path, arch);
    makeArchCheckpoint(dir, arch, { seed: 5, maxShardBytes: arch === 'qwen2' ? 40_000 : undefined });
    const common = ['--bench', `gsm8k:${bench}`, '--shots', '0', '--max-tokens', '24', '--json'];
    const local = join(tmp.path, `${arch}-local.jsonl`);
    const r1 = await evalCli(['--model', dir, ...common, '--out', local]);
    assert.equal(r1.code, 0, r1.err);
    const recs = records(local);
    assert.equal(recs.length, 2);
    const s = await serve(dir);
    try {
      const models = (await (await fetch(`${s.url}/v1/models`)).json()) as { data: Array<{ id: string }> };
      assert.deepEqual(models.data.map((m) => m.id), [arch]);
      const remote = join(tmp.path, `${arch}-remote.jsonl`);
      const r2 = await evalCli(['--endpoint', `${s.url}/v1`, '--model-name', arch, ...common, '--out', remote]);
      assert.equal(r2.code, 0, r2.err);
      const got = records(remote);
      const text = (r: Record<string, unknown>) => r.generation;
      assert.ok(recs.every((r) => typeof text(r) === 'string'), `records carry the completion: ${Object.keys(recs[0]!).join(', ')}`);
      assert.ok(recs.some((r) => (text(r) as string).length > 0), 'the model generated text');
      assert.deepEqual(got.map(text), recs.map(text), `${arch}: served completions equal the in-process ones`);
    } finally {
      s.stop();
    }
  });
}

test('an unsupported architecture stops selfdev eval and selfdev serve at start, naming it and the supported ones', async () => {
  const dir = join(tmp.path, 'gemma');
  makeArchCheckpoint(dir, 'mistral', { seed: 5 });
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, architectures: ['GemmaForCausalLM'], model_type: 'gemma' }));
  const want = /unsupported architecture "GemmaForCausalLM" \(supported: LlamaForCausalLM \(model_type "llama"\), MistralForCausalLM \(model_type "mistral"\), Qwen2ForCausalLM \(model_type "qwen2"\)\)/;
  const r = await evalCli(['--model', dir, '--bench', `gsm8k:${bench}`, '--shots', '0']);
  assert.notEqual(r.code, 0);
  assert.match(r.err, want);
  const err: string[] = [];
  const error = console.error;
  console.error = (...a: unknown[]) => void err.push(a.join(' '));
  try {
    assert.notEqual(await main(['serve', dir, '--port', '0', '--quiet']), 0);
  } finally {
    console.error = error;
  }
  assert.match(err.join('\n'), want);
});
