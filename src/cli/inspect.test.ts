import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { makeLlamaCheckpoint, makeTempDir } from '../io/testing.ts';
import { writeSafetensors } from '../io/safetensors.ts';

const bin = fileURLToPath(new URL('../../bin/selfdev.mjs', import.meta.url));
const tmp = makeTempDir('selfdev-inspect-');
test.after(() => tmp.cleanup());
const run = (...args: string[]) => spawnSync(process.execPath, [bin, 'inspect', ...args], { encoding: 'utf8' });

const dims = { layers: 2, hidden: 16, intermediate: 24, vocab: 30, heads: 4, kvHeads: 2 };
// parameters computed from the Llama shapes: embed + lm_head + per layer (q, k, v, o, gate, up, down, 2 norms) + final norm
const d = dims.hidden / dims.heads;
const perLayer = dims.heads * d * dims.hidden + 2 * dims.kvHeads * d * dims.hidden + dims.hidden * dims.heads * d + 3 * dims.intermediate * dims.hidden + 2 * dims.hidden;
const params = 2 * dims.vocab * dims.hidden + dims.layers * perLayer + dims.hidden;

test('inspect prints tensors, totals and the config summary of a sharded checkpoint', () => {
  const dir = join(tmp.path, 'sharded');
  makeLlamaCheckpoint(dir, { ...dims, dtype: 'BF16', seed: 1, maxShardBytes: 2000 });
  const r = run(dir);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /valid safetensors checkpoint, \d+ shards \+ index/);
  assert.match(r.stdout, /architecture\s+LlamaForCausalLM \(llama\)/);
  assert.match(r.stdout, /layers\s+2\n/);
  assert.match(r.stdout, /hidden size\s+16\n/);
  assert.match(r.stdout, /vocab\s+30\n/);
  assert.match(r.stdout, /heads\s+4 \(2 key\/value\)/);
  assert.match(r.stdout, /model\.layers\.1\.self_attn\.k_proj\.weight\s+BF16\s+\[8, 16\]\s+128\s+model-000\d\d-of-000\d\d\.safetensors/);
  assert.match(r.stdout, new RegExp(`parameters\\s+${params.toLocaleString('en-US')}`));
  assert.match(r.stdout, new RegExp(`BF16 ${(2 * params).toLocaleString('en-US')} B`));
});

test('inspect --json gives the same facts as one JSON object', () => {
  const dir = join(tmp.path, 'single');
  makeLlamaCheckpoint(dir, { ...dims, dtype: 'F32', seed: 2, tieEmbeddings: true });
  const r = run(dir, '--json');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  const tiedParams = params - dims.vocab * dims.hidden;
  assert.equal(j.valid, true);
  assert.equal(j.shardCount, 1);
  assert.deepEqual(j.files, ['model.safetensors']);
  assert.equal(j.parameterCount, tiedParams);
  assert.deepEqual(j.bytesByDtype, { F32: 4 * tiedParams });
  assert.equal(j.tensorCount, 1 + dims.layers * 9 + 1);
  assert.equal(j.config.layers, 2);
  assert.equal(j.config.tieWordEmbeddings, true);
  assert.deepEqual(j.warnings, []);
  assert.deepEqual(j.tensors[0], { name: 'model.embed_tokens.weight', dtype: 'F32', shape: [30, 16], numel: 480, file: 'model.safetensors' });
});

test('inspect warns when config.json disagrees with the tensors', () => {
  const dir = join(tmp.path, 'mismatch');
  makeLlamaCheckpoint(dir, { ...dims, dtype: 'F16', seed: 3 });
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, num_hidden_layers: 3, vocab_size: 32 }));
  const r = run(dir);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /warning: config\.json has num_hidden_layers 3 but tensors of layer\(s\) 2 are missing/);
  assert.match(r.stdout, /warning: config\.json has vocab_size 32 but model\.embed_tokens\.weight has 30 rows/);
});

test('inspect exits 1 with the specific error for an invalid checkpoint', () => {
  const dir = join(tmp.path, 'broken');
  makeLlamaCheckpoint(dir, { ...dims, dtype: 'BF16', seed: 4 });
  const file = join(dir, 'model.safetensors');
  const bytes = readFileSync(file);
  writeFileSync(file, bytes.subarray(0, bytes.length - 2));
  const r = run(dir);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /selfdev inspect: .*model\.safetensors: file is truncated/);
  const j = run(dir, '--json');
  assert.equal(j.status, 1);
  assert.equal(JSON.parse(j.stdout).valid, false);
  assert.equal(JSON.parse(j.stdout).file, file);
  const missing = run(join(tmp.path, 'nope'));
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /nope: model folder not found/);
});

test('inspect without a folder is a usage error', () => {
  const r = run();
  assert.equal(r.status, 2);
  assert.match(r.stderr, /expected exactly one MODEL_DIR/);
});

test('inspect --stats reports per-tensor statistics and fails on NaN / Inf', () => {
  const dir = join(tmp.path, 'stats');
  mkdirSync(dir);
  const good = new Float32Array([1, -3, 2, 0.5]);
  const bad = new Float32Array([1, NaN, Infinity, -Infinity, 4]);
  writeSafetensors(join(dir, 'model.safetensors'), [
    { name: 'good', dtype: 'F32', shape: [2, 2], data: new Uint8Array(good.buffer) },
    { name: 'ids', dtype: 'I64', shape: [1], data: new Uint8Array(8) },
  ]);
  const r = run(dir, '--stats', '--json');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  const mean = (1 - 3 + 2 + 0.5) / 4;
  const std = Math.sqrt([1, -3, 2, 0.5].reduce((s, v) => s + (v - mean) ** 2, 0) / 4);
  assert.deepEqual(j.tensors[0].stats, { mean, std, maxAbs: 3, nan: 0, inf: 0 });
  assert.equal(j.tensors[1].stats, undefined);
  writeSafetensors(join(dir, 'model.safetensors'), [{ name: 'bad', dtype: 'F32', shape: [5], data: new Uint8Array(bad.buffer) }]);
  const b = run(dir, '--stats');
  assert.equal(b.status, 1);
  assert.match(b.stdout, /bad\s+F32\s+\[5\]\s+5\s+2\.500\s+1\.500\s+4\.000\s+1\s+2/);
  assert.match(b.stderr, /1 tensor\(s\) hold non-finite values, first 'bad' \(1 NaN, 2 Inf\)/);
});
