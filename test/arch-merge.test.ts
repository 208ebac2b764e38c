/**
 * Merging Mistral-, Qwen2- and Llama-3-shaped checkpoints needs only their tensor headers, config and
 * files copied verbatim: `selfdev merge` (the streaming file engine) and the served-candidate writer
 * (`saveMergedModel`, eval.server) keep the seed's config.json (torch_dtype aside) and tokenizer files
 * byte for byte, merge every tensor the headers list (biases included), copy tensors the engine
 * does not know verbatim, and read sharded inputs.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from '../src/io/testing.ts';
import { Checkpoint } from '../src/io/checkpoint.ts';
import { writeSafetensors } from '../src/io/safetensors.ts';
import { encodeFromF32 } from '../src/tensor/dtype.ts';
import { makeArchCheckpoint, TEST_ARCHS, type TestArch } from '../src/nn/arch-testing.ts';
import { readConfig, saveMergedModel } from '../src/nn/checkpoint.ts';
import { parseMergeConfig } from '../src/merge/config.ts';
import { runMerge } from '../src/merge/engine.ts';

const tmp = makeTempDir('selfdev-arch-merge-');
after(() => tmp.cleanup());

function tensors(dir: string): Map<string, Float32Array> {
  const c = Checkpoint.open(dir);
  try {
    return new Map(c.tensorNames().map((n) => [n, c.readF32(n)]));
  } finally {
    c.close();
  }
}

/** seed + two experts of `arch` (different seeds, same shapes); the seed is sharded for Qwen2. */
function trio(arch: TestArch): { seed: string; experts: string[] } {
  const root = join(tmp.path, arch);
  const seed = join(root, 'seed');
  makeArchCheckpoint(seed, arch, { seed: 1, maxShardBytes: arch === 'qwen2' ? 40_000 : undefined });
  const experts = [2, 3].map((s) => {
    const d = join(root, `e${s}`);
    makeArchCheckpoint(d, arch, { seed: s });
    return d;
  });
  return { seed, experts };
}

const json = (p: string) => JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
const withoutDtype = (c: Record<string, unknown>) => {
  const { torch_dtype: _t, ...rest } = c;
  return rest;
};

for (const arch of TEST_ARCHS) {
  test(`${arch}: selfdev merge (task_arithmetic) keeps the seed's config and tokenizer files and merges every tensor`, async () => {
    const { seed, experts } = trio(arch);
    const out = join(tmp.path, `${arch}-merged`);
    const spec = parseMergeConfig(
      { merge_method: 'task_arithmetic', base_model: seed, dtype: 'float32', models: experts.map((m) => ({ model: m, parameters: { weight: 0.5 } })) },
      tmp.path,
    );
    const s = await runMerge(spec, out);
    const B = tensors(seed);
    assert.equal(s.tensors, B.size);
    assert.deepEqual(json(join(out, 'config.json')), json(join(seed, 'config.json')));
    for (const f of readdirSync(seed).filter((f) => f.startsWith('tokenizer'))) assert.equal(readFileSync(join(out, f), 'utf8'), readFileSync(join(seed, f), 'utf8'), f);
    const R = tensors(out);
    assert.deepEqual([...R.keys()].sort(), [...B.keys()].sort());
    const E = experts.map(tensors);
    // biases are merged like every other tensor: B + 0.5 Σ (E_i − B) (float32 arithmetic)
    const bias = [...B.keys()].find((n) => n.endsWith('.bias'));
    assert.equal(bias !== undefined, arch !== 'mistral');
    for (const n of [bias ?? 'model.layers.1.mlp.up_proj.weight', 'model.norm.weight']) {
      const b = B.get(n)!;
      const r = R.get(n)!;
      for (let i = 0; i < b.length; i++) {
        const want = b[i]! + 0.5 * (E[0]!.get(n)![i]! - b[i]!) + 0.5 * (E[1]!.get(n)![i]! - b[i]!);
        assert.ok(Math.abs(r[i]! - want) <= 1e-6, `${n}[${i}]: ${r[i]} vs ${want}`);
      }
    }
    // the engine reads the merged folder as the seed's architecture
    const c = readConfig(out);
    const c0 = readConfig(seed);
    assert.deepEqual([c.model_type, c.qkv_bias, c.o_bias, c.sliding_window, c.rope_scaling], [c0.model_type, c0.qkv_bias, c0.o_bias, c0.sliding_window, c0.rope_scaling]);
  });

  test(`${arch}: the served-candidate writer follows the seed's headers: config and tokenizer verbatim, unknown tensors copied`, () => {
    const { seed } = trio(arch);
    const seed2 = join(tmp.path, `${arch}-seed-extra`);
    makeArchCheckpoint(seed2, arch, { seed: 1 });
    // a tensor the engine does not use (old Llama checkpoints carry rotary inv_freq buffers)
    const extra = Float32Array.from({ length: 4 }, (_, i) => i + 0.5);
    const seedCk = Checkpoint.open(seed2);
    const shapes = new Map(seedCk.tensorNames().map((n) => [n, seedCk.info(n).shape.slice()]));
    const names = seedCk.tensorNames();
    seedCk.close();
    writeSafetensors(join(seed2, 'model.safetensors'), [
      ...[...tensors(seed2)].map(([name, data]) => ({ name, dtype: 'F32' as const, shape: shapes.get(name)!, data: encodeFromF32(data, 'F32') })),
      { name: 'model.layers.0.self_attn.rotary_emb.inv_freq', dtype: 'F32' as const, shape: [4], data: encodeFromF32(extra, 'F32') },
    ]);
    const W = tensors(seed2);
    const merged = new Map([...W].filter(([n]) => !n.endsWith('inv_freq')).map(([n, a]) => [n, a.map((x) => x * 1.5)]));
    const out = join(tmp.path, `${arch}-served`);
    saveMergedModel(out, seed2, readConfig(seed2), merged, 'BF16');
    assert.deepEqual(withoutDtype(json(join(out, 'config.json'))), withoutDtype(json(join(seed2, 'config.json'))));
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) assert.equal(readFileSync(join(out, f), 'utf8'), readFileSync(join(seed2, f), 'utf8'), f);
    const ck = Checkpoint.open(out);
    try {
      assert.equal(ck.info('model.layers.0.self_attn.rotary_emb.inv_freq').dtype, 'F32');
      assert.deepEqual(ck.readF32('model.layers.0.self_attn.rotary_emb.inv_freq'), extra);
      assert.equal(ck.info('model.norm.weight').dtype, 'BF16');
      assert.deepEqual(ck.tensorNames(), [...names, 'model.layers.0.self_attn.rotary_emb.inv_freq']);
    } finally {
      ck.close();
    }
    // a merged tensor the seed does not have is refused before anything is written
    assert.throws(() => saveMergedModel(join(tmp.path, `${arch}-bad`), seed, null, new Map([['model.layers.9.mlp.up_proj.weight', new Float32Array(1)]])), /not in the seed model/);
    // sharded seed: the writer reads its headers across the shards
    saveMergedModel(join(tmp.path, `${arch}-served-2`), seed, null, new Map());
    assert.deepEqual(tensors(join(tmp.path, `${arch}-served-2`)), tensors(seed));
  });
}
