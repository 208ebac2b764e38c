import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixtureTokenizerJson, makeLlamaCheckpoint } from '../io/testing.ts';
import { Checkpoint } from '../io/checkpoint.ts';
import { loadMergeConfig, parseMergeConfig } from './config.ts';
import { runMerge } from './engine.ts';
import { decodeToF32, encodeFromF32 } from '../tensor/dtype.ts';
import { layerOf } from './params.ts';

const root = mkdtempSync(join(tmpdir(), 'selfdev-engine-'));
test.after(() => rmSync(root, { recursive: true, force: true }));
const dims = { layers: 3, hidden: 32, intermediate: 64, vocab: 96, heads: 4, kvHeads: 2, dtype: 'BF16' as const };
const base = join(root, 'base');
const m1 = join(root, 'm1');
const m2 = join(root, 'm2');
makeLlamaCheckpoint(base, { ...dims, seed: 1 });
makeLlamaCheckpoint(m1, { ...dims, seed: 2, perturb: { from: base, scale: 0.05 } });
makeLlamaCheckpoint(m2, { ...dims, seed: 3, perturb: { from: base, scale: 0.05 } });
// valid tokenizers (a merge needs one), told apart by their "from" field
const baseTokenizer = fixtureTokenizerJson(dims.vocab, 'base');
const m1Tokenizer = fixtureTokenizerJson(dims.vocab, 'm1');
writeFileSync(join(base, 'tokenizer.json'), baseTokenizer);
writeFileSync(join(m1, 'tokenizer.json'), m1Tokenizer);
writeFileSync(join(m2, 'tokenizer.json'), fixtureTokenizerJson(dims.vocab, 'm2'));

function tensors(dir: string): Map<string, Float32Array> {
  const c = Checkpoint.open(dir);
  const out = new Map(c.tensorNames().map((n) => [n, c.readF32(n)]));
  c.close();
  return out;
}
const bf16 = (x: Float32Array) => decodeToF32(encodeFromF32(x, 'BF16'), 'BF16');
let k = 0;
const out = () => join(root, `out${k++}`);
function config(obj: Record<string, unknown>) {
  return parseMergeConfig(obj, root);
}

test('task_arithmetic with a per-layer gradient equals B + Σ w_i(W_i − B), rounded once to bf16', async () => {
  const o = out();
  const s = await runMerge(config({
    merge_method: 'task_arithmetic', base_model: 'base',
    models: [{ model: 'm1', parameters: { weight: [0, 1] } }, { model: 'm2', parameters: { weight: 0.5 } }],
  }), o);
  assert.equal(s.tensors, s.merged);
  const B = tensors(base), W1 = tensors(m1), W2 = tensors(m2), R = tensors(o);
  for (const [name, b] of B) {
    const layer = layerOf(name);
    const w1 = layer === null ? 0 : layer / (dims.layers - 1);
    const expect = new Float32Array(b.length);
    for (let i = 0; i < b.length; i++) expect[i] = b[i]! + w1 * (W1.get(name)![i]! - b[i]!) + 0.5 * (W2.get(name)![i]! - b[i]!);
    assert.deepEqual(R.get(name), bf16(expect), name);
  }
  const cfg = JSON.parse(readFileSync(join(o, 'config.json'), 'utf8'));
  assert.equal(cfg.torch_dtype, 'bfloat16');
  assert.equal(readFileSync(join(o, 'tokenizer.json'), 'utf8'), baseTokenizer);
  assert.ok(existsSync(join(o, 'generation_config.json')));
});

test('sharded and unsharded outputs hold identical tensors; tokenizer comes from tokenizer_source', async () => {
  const spec = { merge_method: 'linear', models: [{ model: 'm1', parameters: { weight: 1 } }, { model: 'm2', parameters: { weight: 3 } }], tokenizer_source: 'm1', out_dtype: 'float32' };
  const a = out();
  const b = out();
  await runMerge(config(spec), a);
  const s = await runMerge(config(spec), b, { maxShardBytes: 40_000 });
  assert.ok(s.shards > 1, `expected several shards, got ${s.shards}`);
  assert.ok(existsSync(join(b, 'model.safetensors.index.json')));
  assert.ok(readdirSync(b).includes(`model-00001-of-${String(s.shards).padStart(5, '0')}.safetensors`));
  assert.deepEqual(tensors(a), tensors(b));
  assert.equal(readFileSync(join(b, 'tokenizer.json'), 'utf8'), m1Tokenizer);
  const W1 = tensors(m1), W2 = tensors(m2);
  for (const [name, r] of tensors(a)) {
    const x = W1.get(name)!, y = W2.get(name)!;
    for (let i = 0; i < r.length; i++) assert.ok(Math.abs(r[i]! - (x[i]! + 3 * y[i]!) / 4) < 1e-6);
  }
});

test('merging a model with itself returns it; weight 0 returns the base', async () => {
  const o1 = out();
  await runMerge(config({ merge_method: 'linear', models: [{ model: 'm1', parameters: { weight: 0.3 } }, { model: 'm1', parameters: { weight: 0.7 } }] }), o1);
  assert.deepEqual(tensors(o1), tensors(m1));
  const o2 = out();
  await runMerge(config({ merge_method: 'task_arithmetic', base_model: 'base', models: [{ model: 'm1', parameters: { weight: 0 } }] }), o2);
  assert.deepEqual(tensors(o2), tensors(base));
});

test('include/exclude_tensors merge only matching tensors and copy the rest from the base', async () => {
  const o = out();
  const s = await runMerge(config({ merge_method: 'task_arithmetic', base_model: 'base', include_tensors: ['mlp'], exclude_tensors: ['/layers\\.0\\./'], models: [{ model: 'm1', parameters: { weight: 1 } }] }), o);
  const B = tensors(base), W1 = tensors(m1), R = tensors(o);
  let merged = 0;
  for (const [name, r] of R) {
    const want = name.includes('mlp') && !name.includes('layers.0.') ? W1.get(name)! : B.get(name)!;
    if (want === W1.get(name)) merged++;
    assert.deepEqual(r, want, name);
  }
  assert.equal(merged, s.merged);
  assert.equal(merged, 3 * (dims.layers - 1));
});

test('task_vector_base: task vectors relative to another model, added to the base', async () => {
  const o = out();
  await runMerge(config({ merge_method: 'task_arithmetic', base_model: 'base', task_vector_base: 'm2', models: [{ model: 'm1', parameters: { weight: 0.5 } }] }), o);
  const B = tensors(base), W1 = tensors(m1), W2 = tensors(m2), R = tensors(o);
  for (const [name, r] of R) {
    const b = B.get(name)!, w1 = W1.get(name)!, w2 = W2.get(name)!;
    const expect = new Float32Array(b.length);
    for (let i = 0; i < b.length; i++) expect[i] = Math.fround(w2[i]! + 0.5 * (w1[i]! - w2[i]!)) + (b[i]! - w2[i]!);
    const got = r;
    for (let i = 0; i < b.length; i++) assert.ok(Math.abs(got[i]! - expect[i]!) <= Math.abs(expect[i]!) * 2 ** -7 + 1e-6, `${name}[${i}]`);
  }
});

test('random methods are reproducible by seed', async () => {
  const spec = { merge_method: 'dare_linear', base_model: 'base', models: [{ model: 'm1', parameters: { weight: 1, density: 0.5 } }, { model: 'm2', parameters: { weight: 1, density: 0.5 } }] };
  const [a, b, c] = [out(), out(), out()];
  await runMerge(config(spec), a, { seed: 7 });
  await runMerge(config(spec), b, { seed: 7 });
  await runMerge(config(spec), c, { seed: 8 });
  assert.deepEqual(readFileSync(join(a, 'model.safetensors')), readFileSync(join(b, 'model.safetensors')));
  assert.notDeepEqual(readFileSync(join(a, 'model.safetensors')), readFileSync(join(c, 'model.safetensors')));
});

test('bad merges fail before writing and leave nothing that looks like a model', async () => {
  const odd = join(root, 'odd');
  makeLlamaCheckpoint(odd, { ...dims, intermediate: 48, seed: 4 });
  const o = out();
  await assert.rejects(runMerge(config({ merge_method: 'task_arithmetic', base_model: 'base', models: [{ model: 'm1', parameters: { weight: 1 } }, { model: 'odd', parameters: { weight: 1 } }] }), o), /tensor model\.layers\.0\.mlp\.(gate|up|down)_proj\.weight has shape \[.*\] in odd but \[.*\] in base/);
  await assert.rejects(runMerge(config({ merge_method: 'task_arithmetic', models: ['m1'] }), o), /task_arithmetic needs base_model/);
  await assert.rejects(runMerge(config({ merge_method: 'ties', base_model: 'base', models: [{ model: 'm1', parameters: { weight: 1, densty: 0.5 } }] }), o), /ties has no parameter 'densty'/);
  await assert.rejects(runMerge(config({ merge_method: 'slerp', base_model: 'base', models: ['m1', 'm2'], parameters: { t: 0.5 } }), o), /slerp/);
  await assert.rejects(runMerge(config({ merge_method: 'no_such_method', models: ['m1'] }), o), /no_such_method/);
  // a failure in the middle of the stream (a method error on one tensor) removes the partial output
  await assert.rejects(
    runMerge(config({ merge_method: 'custom', base_model: 'base', models: ['m1'], algorithm: join(root, 'm1', 'config.json') }), o, {
      custom: {
        method: { name: 'custom', summary: '', base: 'required', globalParams: [], modelParams: [] },
        merge: (input) => {
          if (input.name.includes('layers.2')) throw new Error('boom in layer 2');
          return input.models[0]!;
        },
      },
    }),
    /boom in layer 2/,
  );
  assert.equal(existsSync(o), false);
  assert.deepEqual(readdirSync(root).filter((f) => f.includes('.tmp')), []);
});

test('a YAML config file runs end to end through loadMergeConfig', async () => {
  const file = join(root, 'ties.yml');
  writeFileSync(file, `merge_method: ties\nbase_model: base\nmodels:\n  - model: m1\n    parameters: {weight: 1, density: 0.5}\n  - model: m2\n    parameters: {weight: 1, density: 0.5}\nparameters: {int8_mask: true}\ndtype: float32\nout_dtype: float16\n`);
  const o = out();
  const s = await runMerge(loadMergeConfig(file), o);
  assert.equal(s.merged, s.tensors);
  const c = Checkpoint.open(o);
  assert.ok(c.tensorNames().every((n) => c.info(n).dtype === 'F16'));
  c.close();
});

test('the raw-bytes fast path gives the same bytes as the float32 path', async () => {
  // task_vector_base = base forces the general float32 path with identical semantics
  for (const method of ['task_arithmetic', 'ties', 'dare_ties', 'dare_linear']) {
    const models = [{ model: 'm1', parameters: { weight: 0.7, density: 0.5 } }, { model: 'm2', parameters: { weight: 0.4, density: 0.5 } }];
    const spec = method === 'task_arithmetic' ? models.map((m) => ({ model: m.model, parameters: { weight: m.parameters.weight } })) : models;
    const [a, b] = [out(), out()];
    await runMerge(config({ merge_method: method, base_model: 'base', models: spec }), a, { seed: 3 });
    await runMerge(config({ merge_method: method, base_model: 'base', task_vector_base: 'base', models: spec }), b, { seed: 3 });
    assert.deepEqual(tensors(a), tensors(b), method);
  }
});
