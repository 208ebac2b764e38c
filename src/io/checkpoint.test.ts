import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Checkpoint, CheckpointWriter, parseSize, planShards } from './checkpoint.ts';
import type { PlannedTensor } from './checkpoint.ts';
import { SafetensorsFile, writeSafetensors } from './safetensors.ts';
import { CheckpointError } from './errors.ts';
import { Rng, makeLlamaCheckpoint, makeTempDir } from './testing.ts';
import { DTYPE_BYTES } from '../tensor/dtype.ts';

const tmp = makeTempDir('selfdev-ckpt-');
test.after(() => tmp.cleanup());
let counter = 0;
function newDir(): string {
  return join(tmp.path, `d${counter++}`);
}
function bytesOf(t: PlannedTensor, seed: number): Uint8Array {
  const n = t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
  const r = new Rng(seed);
  return new Uint8Array(n).map(() => r.u32() & 0xff);
}
function writeModel(dir: string, tensors: PlannedTensor[], maxShardBytes?: number): Map<string, Uint8Array> {
  const data = new Map(tensors.map((t, i) => [t.name, bytesOf(t, i + 1)] as const));
  const w = new CheckpointWriter(dir, { maxShardBytes });
  w.plan(tensors);
  for (const t of tensors) w.write(t.name, data.get(t.name)!);
  w.writeJson('config.json', { architectures: ['Test'] });
  w.commit();
  return data;
}
function siblingsOf(dir: string): string[] {
  const base = dir.split('/').pop()!;
  return readdirSync(dirname(dir)).filter((n) => n.startsWith(base + '.'));
}
function assertCheckpointFails(dir: string, re: RegExp, opts: { file?: string; tensor?: string } = {}): void {
  assert.throws(
    () => Checkpoint.open(dir),
    (e: unknown) => {
      assert.ok(e instanceof CheckpointError, `expected CheckpointError, got ${String(e)}`);
      assert.match(e.message, re);
      if (opts.file !== undefined) {
        assert.equal(e.file, opts.file);
        assert.ok(e.message.includes(opts.file));
      }
      if (opts.tensor !== undefined) assert.equal(e.tensor, opts.tensor);
      return true;
    },
  );
}

const T = (name: string, bytes: number): PlannedTensor => ({ name, dtype: 'U8', shape: [bytes] });

test('shard planning follows HF save_pretrained: split before overflow, oversized tensor alone', () => {
  const ts = [T('a', 40), T('b', 50), T('c', 20), T('d', 150), T('e', 10), T('f', 100), T('g', 1)];
  const names = planShards(ts, 100).map((s) => s.map((t) => t.name).join(''));
  // a+b=90; +c would be 110 > 100 → new shard; d (150) alone; e; e+f = 110 → f alone (exactly 100), then g.
  assert.deepEqual(names, ['ab', 'c', 'd', 'e', 'f', 'g']);
  assert.deepEqual(planShards(ts, 1e9).map((s) => s.length), [7]);
  // the example of transformers' shard_checkpoint docstring: [6,6,2,6,2,2] GB with a 10 GB limit → [6], [6+2], [6+2+2]
  const gb = [6, 6, 2, 6, 2, 2].map((g, i) => T(`w${i}`, g * 1e9));
  assert.deepEqual(planShards(gb, 10e9).map((s) => s.map((t) => t.shape[0]! / 1e9)), [[6], [6, 2], [6, 2, 2]]);
});

test('sharded and unsharded outputs hold identical tensors; names, index and total_size are right', () => {
  const tensors: PlannedTensor[] = [
    { name: 'model.embed_tokens.weight', dtype: 'BF16', shape: [10, 8] }, // 160 B
    { name: 'model.layers.0.mlp.up_proj.weight', dtype: 'F32', shape: [4, 8] }, // 128 B
    { name: 'model.layers.0.input_layernorm.weight', dtype: 'F16', shape: [8] }, // 16 B
    { name: 'lm_head.weight', dtype: 'F32', shape: [10, 8] }, // 320 B: oversized at 200
    { name: 'model.norm.weight', dtype: 'F32', shape: [8] }, // 32 B
  ];
  const one = newDir();
  const many = newDir();
  const data = writeModel(one, tensors);
  writeModel(many, tensors, 200);
  assert.deepEqual(readdirSync(one).sort(), ['config.json', 'model.safetensors']);
  const shardNames = ['model-00001-of-00004.safetensors', 'model-00002-of-00004.safetensors', 'model-00003-of-00004.safetensors', 'model-00004-of-00004.safetensors'];
  assert.deepEqual(readdirSync(many).sort(), ['config.json', ...shardNames, 'model.safetensors.index.json']);
  const index = JSON.parse(readFileSync(join(many, 'model.safetensors.index.json'), 'utf8'));
  assert.deepEqual(index.metadata, { total_size: 160 + 128 + 16 + 320 + 32 });
  assert.deepEqual(Object.keys(index.weight_map), tensors.map((t) => t.name).sort());
  assert.deepEqual(index.weight_map, {
    'model.embed_tokens.weight': shardNames[0],
    'model.layers.0.mlp.up_proj.weight': shardNames[1],
    'model.layers.0.input_layernorm.weight': shardNames[1],
    'lm_head.weight': shardNames[2],
    'model.norm.weight': shardNames[3],
  });
  const shard2 = SafetensorsFile.open(join(many, shardNames[1]!));
  assert.deepEqual([...shard2.tensors.keys()], ['model.layers.0.mlp.up_proj.weight', 'model.layers.0.input_layernorm.weight']);
  assert.deepEqual(shard2.metadata, { format: 'pt' });
  shard2.close();
  const a = Checkpoint.open(one);
  const b = Checkpoint.open(many);
  try {
    assert.deepEqual(a.tensorNames(), tensors.map((t) => t.name));
    assert.deepEqual(b.tensorNames(), tensors.map((t) => t.name));
    assert.equal(a.indexPath, null);
    assert.equal(b.shards.length, 4);
    for (const t of tensors) {
      assert.deepEqual(a.readBytes(t.name), data.get(t.name), t.name);
      assert.deepEqual(b.readBytes(t.name), data.get(t.name), t.name);
      assert.deepEqual({ ...b.info(t.name), file: '', offset: 0 }, { ...a.info(t.name), file: '', offset: 0 });
    }
    assert.equal(a.parameterCount(), 80 + 32 + 8 + 80 + 8);
    assert.equal(b.parameterCount(), a.parameterCount());
    assert.deepEqual(b.config, { architectures: ['Test'] });
    assert.deepEqual(b.auxFiles(), ['config.json']);
    assert.equal(b.has('lm_head.weight'), true);
    assert.equal(b.has('nope'), false);
    assert.throws(() => b.info('nope'), (e: unknown) => e instanceof CheckpointError && e.tensor === 'nope' && /no such tensor/.test(e.message));
  } finally {
    a.close();
    b.close();
  }
});

test('a Llama fixture over several shards reads back the same values as an unsharded one', () => {
  const opts = { layers: 2, hidden: 16, intermediate: 32, vocab: 40, dtype: 'BF16' as const, seed: 3 };
  const one = makeLlamaCheckpoint(newDir(), opts);
  const many = makeLlamaCheckpoint(newDir(), { ...opts, maxShardBytes: 2000 });
  const a = Checkpoint.open(one.dir);
  const b = Checkpoint.open(many.dir);
  try {
    assert.ok(b.shards.length >= 3, `expected several shards, got ${b.shards.length}`);
    assert.deepEqual(b.tensorNames(), a.tensorNames());
    for (const n of a.tensorNames()) assert.deepEqual(b.readF32(n), a.readF32(n), n);
    assert.deepEqual(b.auxFiles(), ['config.json', 'generation_config.json']);
  } finally {
    a.close();
    b.close();
  }
});

test('writer: abort() leaves neither the output nor a temp folder', () => {
  const out = newDir();
  const w = new CheckpointWriter(out);
  w.plan([T('a', 4), T('b', 4)]);
  w.write('a', new Uint8Array(4));
  w.abort();
  assert.equal(existsSync(out), false);
  assert.deepEqual(siblingsOf(out), []);
  assert.throws(() => w.write('b', new Uint8Array(4)), /already aborted/);
});

test('writer: an error mid-write (wrong byte length) removes the temp folder and leaves no output', () => {
  const out = newDir();
  const w = new CheckpointWriter(out, { maxShardBytes: 4 });
  w.plan([T('a', 4), T('b', 4)]);
  w.write('a', new Uint8Array(4));
  assert.throws(() => w.write('b', new Uint8Array(3)), /tensor 'b': data is 3 bytes but shape \[4\] of U8 needs 4/);
  assert.equal(existsSync(out), false);
  assert.deepEqual(siblingsOf(out), []);
});

test('writer: a caller error between writes + abort() in finally leaves no output', () => {
  const out = newDir();
  assert.throws(() => {
    const w = new CheckpointWriter(out);
    try {
      w.plan([T('a', 4), T('b', 4)]);
      w.write('a', new Uint8Array(4));
      throw new Error('merge failed');
    } finally {
      w.abort();
    }
  }, /merge failed/);
  assert.equal(existsSync(out), false);
  assert.deepEqual(siblingsOf(out), []);
});

test('writer: temp folders left by a dead writer process are removed, a live one is kept', () => {
  const out = newDir();
  // a pid far above Linux's pid_max cannot be alive
  const dead = `${out}.tmp-99999999-0123abcd`;
  const live = `${out}.tmp-${process.pid}-0123abcd`;
  mkdirSync(dead);
  writeFileSync(join(dead, 'model.safetensors'), 'partial');
  mkdirSync(live);
  const w = new CheckpointWriter(out);
  assert.equal(existsSync(dead), false);
  assert.equal(existsSync(live), true);
  w.abort();
  assert.deepEqual(siblingsOf(out), [live.split('/').pop()]);
});

test('writer: writes must follow plan order, and commit needs every planned tensor', () => {
  const w1 = new CheckpointWriter(newDir());
  w1.plan([T('a', 1), T('b', 1)]);
  assert.throws(() => w1.write('b', new Uint8Array(1)), /tensor 'b': written out of plan order: expected 'a' next/);
  const out = newDir();
  const w2 = new CheckpointWriter(out);
  w2.plan([T('a', 1), T('b', 1)]);
  w2.write('a', new Uint8Array(1));
  assert.throws(() => w2.commit(), /1 planned tensor\(s\) not written/);
  assert.equal(existsSync(out), false);
  const w3 = new CheckpointWriter(newDir());
  assert.throws(() => w3.write('a', new Uint8Array(1)), /before plan/);
});

test('writer: refuses a non-empty output folder unless overwrite, which replaces it only at commit', () => {
  const out = newDir();
  writeModel(out, [T('old', 2)]);
  assert.throws(() => new CheckpointWriter(out), /exists and is not empty/);
  const w = new CheckpointWriter(out, { overwrite: true });
  w.plan([T('new', 3)]);
  w.write('new', new Uint8Array([7, 8, 9]));
  const before = Checkpoint.open(out);
  assert.deepEqual(before.tensorNames(), ['old']);
  before.close();
  w.commit();
  const after = Checkpoint.open(out);
  assert.deepEqual(after.tensorNames(), ['new']);
  assert.deepEqual([...after.readBytes('new')], [7, 8, 9]);
  assert.equal(after.config, null);
  after.close();
  assert.deepEqual(siblingsOf(out), []);
  const notModel = newDir();
  mkdirSync(notModel);
  writeFileSync(join(notModel, 'notes.txt'), 'mine');
  assert.throws(() => new CheckpointWriter(notModel, { overwrite: true }), /does not look like a model folder/);
});

test('writer: an existing empty output folder is fine; copyFile and writeJson land in the output', () => {
  const out = newDir();
  mkdirSync(out);
  const src = join(tmp.path, 'tokenizer.json');
  writeFileSync(src, '{"model": {}}');
  const w = new CheckpointWriter(out);
  w.plan([T('x', 1)]);
  w.write('x', new Uint8Array([1]));
  w.copyFile(src);
  w.copyFile(src, 'tokenizer_copy.json');
  w.writeJson('config.json', { a: 1 });
  assert.equal(existsSync(join(out, 'tokenizer.json')), false);
  w.commit();
  assert.equal(readFileSync(join(out, 'tokenizer.json'), 'utf8'), '{"model": {}}');
  assert.deepEqual(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')), { a: 1 });
  const c = Checkpoint.open(out);
  assert.deepEqual(c.auxFiles(), ['config.json', 'tokenizer.json', 'tokenizer_copy.json']);
  c.close();
});

test('writer: a bad aux file name is refused (and, like every writer error, aborts the write)', () => {
  const out = newDir();
  const w = new CheckpointWriter(out);
  w.plan([T('x', 1)]);
  assert.throws(() => w.writeJson('model.safetensors', {}), /'model\.safetensors' is a weight file name/);
  assert.throws(() => w.commit(), /already aborted/);
  assert.equal(existsSync(out), false);
  assert.deepEqual(siblingsOf(out), []);
  const w2 = new CheckpointWriter(out);
  assert.throws(() => w2.copyFile(join(tmp.path, 'missing.json')), /missing\.json: cannot copy/);
  assert.deepEqual(siblingsOf(out), []);
});

test('parseSize: decimal and binary units, plain bytes, clear error on garbage', () => {
  assert.equal(parseSize('5GB'), 5e9);
  assert.equal(parseSize('500MB'), 5e8);
  assert.equal(parseSize('1.5 kb'), 1500);
  assert.equal(parseSize('2GiB'), 2 * 2 ** 30);
  assert.equal(parseSize('3MiB'), 3 * 2 ** 20);
  assert.equal(parseSize('1KiB'), 1024);
  assert.equal(parseSize('1TB'), 1e12);
  assert.equal(parseSize('123'), 123);
  assert.equal(parseSize(4096), 4096);
  assert.equal(parseSize('1e9'), 1e9);
  for (const bad of ['', 'abc', '5XB', '-1GB', 'GB', '1.2.3MB']) assert.throws(() => parseSize(bad), /invalid size/, bad);
  assert.throws(() => parseSize(0), /positive/);
});

// ---- checkpoint folder validation ----

function shardedFixture(): { dir: string; index: { metadata: object; weight_map: Record<string, string> } } {
  const dir = newDir();
  writeModel(dir, [T('a', 4), T('b', 4), T('c', 4)], 4);
  return { dir, index: JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')) };
}
const S = (i: number) => `model-0000${i}-of-00003.safetensors`;

test('checkpoint: broken index JSON', () => {
  const { dir } = shardedFixture();
  writeFileSync(join(dir, 'model.safetensors.index.json'), '{"weight_map": {');
  assertCheckpointFails(dir, /index is not valid JSON/, { file: join(dir, 'model.safetensors.index.json') });
});

test('checkpoint: index without weight_map', () => {
  const { dir } = shardedFixture();
  writeFileSync(join(dir, 'model.safetensors.index.json'), '{"metadata": {}}');
  assertCheckpointFails(dir, /index has no 'weight_map'/, { file: join(dir, 'model.safetensors.index.json') });
});

test('checkpoint: a shard listed in the index is missing', () => {
  const { dir, index } = shardedFixture();
  index.weight_map.c = 'model-00009-of-00009.safetensors';
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify(index));
  assertCheckpointFails(dir, /shard 'model-00009-of-00009\.safetensors' is listed in the index but missing/, { tensor: 'c' });
});

test('checkpoint: a tensor listed in the index is not in its shard', () => {
  const { dir, index } = shardedFixture();
  index.weight_map.ghost = S(2);
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify(index));
  assertCheckpointFails(dir, /listed in the index but not in its shard/, { file: join(dir, S(2)), tensor: 'ghost' });
});

test('checkpoint: a tensor in a shard but not in the index', () => {
  const { dir, index } = shardedFixture();
  delete index.weight_map.b;
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify(index));
  assertCheckpointFails(dir, /in this shard but not in the index/, { file: join(dir, S(2)), tensor: 'b' });
});

test('checkpoint: a shard holding an extra tensor the index does not list', () => {
  const { dir } = shardedFixture();
  writeSafetensors(join(dir, S(3)), [{ name: 'c', dtype: 'U8', shape: [4], data: new Uint8Array(4) }, { name: 'extra', dtype: 'U8', shape: [1], data: new Uint8Array(1) }]);
  assertCheckpointFails(dir, /in this shard but not in the index/, { file: join(dir, S(3)), tensor: 'extra' });
});

test('checkpoint: the same tensor in two shards', () => {
  const { dir } = shardedFixture();
  writeSafetensors(join(dir, S(3)), [{ name: 'c', dtype: 'U8', shape: [4], data: new Uint8Array(4) }, { name: 'a', dtype: 'U8', shape: [1], data: new Uint8Array(1) }]);
  assertCheckpointFails(dir, /stored in two shards: 'model-00001-of-00003\.safetensors' and 'model-00003-of-00003\.safetensors'/, { tensor: 'a' });
});

test('checkpoint: a corrupt shard is reported with the shard file', () => {
  const { dir } = shardedFixture();
  writeFileSync(join(dir, S(2)), new Uint8Array(3));
  assertCheckpointFails(dir, /too small/, { file: join(dir, S(2)) });
});

test('checkpoint: pickle-only folder gets a clear "convert to safetensors" error', () => {
  const dir = newDir();
  mkdirSync(dir);
  writeFileSync(join(dir, 'config.json'), '{}');
  writeFileSync(join(dir, 'pytorch_model.bin'), 'PK');
  assertCheckpointFails(dir, /pickle checkpoints are not supported, convert to safetensors/, { file: dir });
});

test('checkpoint: a folder without weights', () => {
  const dir = newDir();
  mkdirSync(dir);
  writeFileSync(join(dir, 'config.json'), '{}');
  assertCheckpointFails(dir, /no model weights found/, { file: dir });
  writeFileSync(join(dir, 'adapter_model.safetensors'), '');
  assertCheckpointFails(dir, /no model\.safetensors or model\.safetensors\.index\.json \(found adapter_model\.safetensors/, { file: dir });
  assertCheckpointFails(join(tmp.path, 'no-such-dir'), /model folder not found/);
});

test('checkpoint: a broken config.json is named', () => {
  const dir = newDir();
  writeModel(dir, [T('a', 1)]);
  writeFileSync(join(dir, 'config.json'), '{"hidden_size": ');
  assertCheckpointFails(dir, /config\.json is not valid JSON/, { file: join(dir, 'config.json') });
});

test('writer: an empty plan and zero-size tensors give valid files', () => {
  const empty = newDir();
  const w = new CheckpointWriter(empty);
  w.plan([]);
  w.commit();
  const c = Checkpoint.open(empty);
  assert.deepEqual(c.tensorNames(), []);
  assert.equal(c.parameterCount(), 0);
  c.close();
  const zeros = newDir();
  const data = writeModel(zeros, [{ name: 'e', dtype: 'F32', shape: [0, 3] }, T('x', 2), { name: 's', dtype: 'F64', shape: [] }], 2);
  const z = Checkpoint.open(zeros);
  assert.deepEqual(z.shards.map((s) => [...s.tensors.keys()]), [['e', 'x'], ['s']]);
  for (const n of ['e', 'x', 's']) assert.deepEqual(z.readBytes(n), data.get(n));
  z.close();
});
