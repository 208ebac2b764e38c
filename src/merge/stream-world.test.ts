import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeLlamaCheckpoint } from '../io/testing.ts';
import { Checkpoint } from '../io/checkpoint.ts';
import { encodeFromF32 } from '../tensor/dtype.ts';
import { initBackend, Llama, makeConfig, saveModel, trainBpe } from '../nn/index.ts';
import { Sandbox, makeMergeFunction, makeFileMergeFunction, AlgorithmRejected } from '../sandbox/index.ts';
import { processCpuMs } from '../sandbox/cpu-time.ts';
import { MergeWorld } from './world.ts';
import { StreamWorld, streamLimits } from './stream-world.ts';
import { parseMergeConfig } from './config.ts';
import { runMerge } from './engine.ts';
import { loadCustomAlgorithm } from './custom.ts';

const root = mkdtempSync(join(tmpdir(), 'selfdev-stream-world-'));
test.after(() => rmSync(root, { recursive: true, force: true }));
const sb = new Sandbox();
test.after(() => sb.close());

const GB = 2 ** 30;
const TA = 'function merge(tv, ctx) { return torch.stack(tv).sum(0).mul(0.4); }';
const TIES = readFileSync(new URL('../../algorithms/ties.js', import.meta.url), 'utf8');
const ROWMEAN = readFileSync(new URL('../../algorithms/algorithm_a.js', import.meta.url), 'utf8');

function bytesOf(dir: string): Map<string, Buffer> {
  const c = Checkpoint.open(dir);
  try {
    return new Map(c.tensorNames().map((n) => [n, Buffer.from(c.readBytes(n))]));
  } finally {
    c.close();
  }
}

// a micro world the tiny engine loads (F32, its tokenizer): seed + 2 experts
const mSeed = join(root, 'm-seed');
const mExperts = [join(root, 'm-e1'), join(root, 'm-e2')];
async function makeMicro(): Promise<void> {
  await initBackend();
  const tok = trainBpe(['Question: Ann has 12 apples. Answer: 12 + 30 = 42'], 20);
  const m = Llama.init(makeConfig({ vocab_size: tok.vocabSize, hidden_size: 16, num_attention_heads: 2, num_key_value_heads: 2, num_hidden_layers: 2, intermediate_size: 40, max_position_embeddings: 32 }), 1);
  saveModel(mSeed, m, tok);
  m.dispose();
  const micro = { layers: 2, hidden: 16, intermediate: 40, vocab: tok.vocabSize, heads: 2, kvHeads: 2, dtype: 'F32' as const };
  mExperts.forEach((d, i) => makeLlamaCheckpoint(d, { ...micro, seed: 10 + i, perturb: { from: mSeed, scale: 0.01 } }));
}

// a bf16, sharded world: seed + 3 experts, extra files in the seed folder
const big = { layers: 3, hidden: 32, intermediate: 96, vocab: 64, heads: 4, kvHeads: 2, dtype: 'BF16' as const };
const bSeed = join(root, 'b-seed');
const bExperts = [1, 2, 3].map((i) => join(root, `b-e${i}`));
makeLlamaCheckpoint(bSeed, { ...big, seed: 1, tokenizer: true, maxShardBytes: 20_000 });
bExperts.forEach((d, i) => makeLlamaCheckpoint(d, { ...big, seed: 20 + i, perturb: { from: bSeed, scale: 0.01 }, maxShardBytes: 30_000 }));
writeFileSync(join(bSeed, 'README.md'), '# seed\n');
writeFileSync(join(bSeed, 'custom_code.py'), 'print(1)\n');

test('micro world: the same program gives byte-identical merged weights in memory and streamed', async () => {
  await makeMicro();
  const mem = MergeWorld.load(mSeed, mExperts, 'mlp');
  const st = StreamWorld.open(mSeed, mExperts, 'mlp', { maxMemoryBytes: 8 * GB });
  try {
    assert.deepEqual(st.names, mem.names);
    assert.deepEqual(st.limits(), mem.limits());
    for (const [i, src] of [TA, TIES, ROWMEAN].entries()) {
      const weights = await mem.merge(makeMergeFunction(src, sb, { limits: mem.limits() }), 7);
      const out = join(root, `micro-${i}`);
      const s = await st.write(out, { kind: 'program', fn: makeFileMergeFunction(src, sb, { limits: st.limits() }), seed: 7 });
      assert.equal(s.merged, mem.names.length);
      const got = bytesOf(out);
      assert.equal(got.size, weights.size);
      for (const [n, w] of weights) assert.ok(Buffer.from(encodeFromF32(w, 'F32')).equals(got.get(n)!), `program ${i}: ${n}`);
    }
    // the TA baseline computed in the loop process equals the in-memory one
    const out = join(root, 'micro-ta');
    await st.write(out, { kind: 'task-arithmetic', lambda: 0.4 });
    const got = bytesOf(out);
    for (const [n, w] of mem.taskArithmetic(0.4)) assert.ok(Buffer.from(encodeFromF32(w, 'F32')).equals(got.get(n)!), n);
  } finally {
    st.close();
  }
});

test('a file merge hands its bytes back in the caller\'s buffer when it fits (a view of it), else in a new one; same bytes either way', async () => {
  const seed = Checkpoint.open(bSeed);
  const experts = bExperts.map((d) => Checkpoint.open(d));
  try {
    const name = seed.tensorNames().find((n) => /\.mlp\./.test(n))!;
    const ref = (c: Checkpoint) => {
      const e = c.info(name);
      return { path: e.file, offset: e.offset, byteLength: e.byteLength, dtype: e.dtype as 'BF16' };
    };
    const shape = [...seed.info(name).shape];
    const fn = makeFileMergeFunction(TA, sb, { limits: streamLimits(shape[0]! * shape[1]!, 3) });
    const ctx = { name, layer: 0, numLayers: big.layers, shape, seed: 3 };
    const fresh = await fn(ref(seed), experts.map(ref), 'BF16', ctx);
    const into = new Uint8Array(fresh.byteLength + 10).fill(0xee);
    const viaInto = await fn(ref(seed), experts.map(ref), 'BF16', ctx, into);
    assert.equal(viaInto.buffer, into.buffer);
    assert.equal(viaInto.byteLength, fresh.byteLength);
    assert.ok(Buffer.from(viaInto).equals(Buffer.from(fresh)));
    assert.ok(!Buffer.from(fresh).equals(Buffer.from(seed.readBytes(name))), 'the merge changed the tensor');
    assert.equal(into[fresh.byteLength], 0xee, 'nothing written past the tensor');
    const small = new Uint8Array(fresh.byteLength - 1);
    const viaSmall = await fn(ref(seed), experts.map(ref), 'BF16', ctx, small);
    assert.notEqual(viaSmall.buffer, small.buffer);
    assert.ok(Buffer.from(viaSmall).equals(Buffer.from(fresh)));
  } finally {
    seed.close();
    experts.forEach((e) => e.close());
  }
});

test('one scratch file per sandbox, overwritten in place: a smaller tensor after a larger one gets exactly its own bytes; close() removes the file', async () => {
  const seed = Checkpoint.open(bSeed);
  const experts = bExperts.map((d) => Checkpoint.open(d));
  const own = new Sandbox();
  const scratch = () => readdirSync(tmpdir()).filter((f) => f.startsWith(`selfdev-merge-${process.pid}-`));
  let before = new Set(scratch());
  try {
    const names = [seed.tensorNames().find((n) => /\.mlp\.down_proj/.test(n))!, seed.tensorNames().find((n) => /self_attn\.k_proj\.weight/.test(n))!];
    const sizes = names.map((n) => seed.info(n).byteLength);
    assert.ok(sizes[0]! > sizes[1]!, 'the second tensor is smaller');
    const run = async (sb2: Sandbox, name: string) => {
      const ref = (c: Checkpoint) => {
        const e = c.info(name);
        return { path: e.file, offset: e.offset, byteLength: e.byteLength, dtype: e.dtype as 'BF16' };
      };
      const shape = [...seed.info(name).shape];
      const fn = makeFileMergeFunction(TA, sb2, { limits: streamLimits(shape.reduce((a, b) => a * b, 1), 3) });
      return Buffer.from(await fn(ref(seed), experts.map(ref), 'BF16', { name, layer: 0, numLayers: big.layers, shape, seed: 3 }));
    };
    const expected = await run(sb, names[1]!); // the shared sandbox's own scratch file exists from here on
    before = new Set(scratch());
    const first = await run(own, names[0]!);
    const second = await run(own, names[1]!);
    assert.equal(first.byteLength, sizes[0]);
    assert.equal(second.byteLength, sizes[1]);
    assert.ok(second.equals(expected), 'same bytes as a sandbox that merged only this tensor');
    assert.equal(scratch().filter((f) => !before.has(f)).length, 1, 'one scratch file while the sandbox is open');
  } finally {
    own.close();
    seed.close();
    experts.forEach((e) => e.close());
  }
  assert.deepEqual(scratch().filter((f) => !before.has(f)), [], 'close() removed it');
});

test('bf16 shards: streamed merge equals `selfdev merge` (custom algorithm) byte for byte; other tensors and files copied verbatim', async () => {
  const st = StreamWorld.open(bSeed, bExperts, 'mlp', { maxMemoryBytes: 8 * GB });
  try {
    const out = join(root, 'b-stream');
    const s = await st.write(out, { kind: 'program', fn: makeFileMergeFunction(TIES, sb, { limits: st.limits() }), seed: 5 }, { maxShardBytes: 25_000 });
    assert.equal(s.merged, 3 * big.layers);
    assert.ok(readdirSync(out).filter((f) => f.endsWith('.safetensors')).length > 1, 'sharded output');
    const algo = join(root, 'ties.js');
    writeFileSync(algo, TIES);
    const cfg = parseMergeConfig({ merge_method: 'custom', algorithm: algo, base_model: bSeed, models: bExperts.map((m) => ({ model: m })), include_tensors: ['.mlp.'] }, root);
    const custom = await loadCustomAlgorithm(cfg, { seed: 5 });
    const cli = join(root, 'b-cli');
    try {
      await runMerge(cfg, cli, { seed: 5, custom: custom.custom });
    } finally {
      custom.close();
    }
    const a = bytesOf(out);
    const b = bytesOf(cli);
    const seed = bytesOf(bSeed);
    assert.deepEqual([...a.keys()], [...seed.keys()]);
    let changed = 0;
    for (const [n, x] of a) {
      assert.ok(x.equals(b.get(n)!), `differs from selfdev merge: ${n}`);
      if (!/\.mlp\./.test(n)) assert.ok(x.equals(seed.get(n)!), `not copied through: ${n}`);
      else if (!x.equals(seed.get(n)!)) changed++;
    }
    assert.equal(changed, 3 * big.layers);
    for (const f of ['config.json', 'generation_config.json', 'tokenizer.json', 'README.md', 'custom_code.py']) assert.equal(readFileSync(join(out, f), 'utf8'), readFileSync(join(bSeed, f), 'utf8'), f);
    assert.ok(!readdirSync(out).includes('selfdev_merge.json'));
  } finally {
    st.close();
  }
});

test('the memory bound: refused up front with the numbers, nothing written', () => {
  const probe = StreamWorld.open(bSeed, bExperts, 'mlp', { maxMemoryBytes: 64 * GB });
  const need = probe.memoryBound().bytes;
  probe.close();
  assert.ok(need > 512 * 2 ** 20);
  assert.throws(() => StreamWorld.open(bSeed, bExperts, 'mlp', { maxMemoryBytes: need - 1 }), /needs up to [\d.]+ GiB \(processes .*program budget .*\), more than the [\d.]+ GiB allowed \(merge\.maxMemory\)/);
  StreamWorld.open(bSeed, bExperts, 'mlp', { maxMemoryBytes: need }).close();
  const other = join(root, 'b-other');
  makeLlamaCheckpoint(other, { ...big, intermediate: 40, seed: 3 });
  assert.throws(() => StreamWorld.open(bSeed, [other], 'mlp', { maxMemoryBytes: 64 * GB }), /b-other: tensor model\.layers\.0\.mlp\.gate_proj\.weight has shape \[40,32\], the seed has \[96,32\]/);
  assert.throws(() => StreamWorld.open(bSeed, bExperts, 're:nothing', { maxMemoryBytes: 64 * GB }), /selects no tensor/);
});

test('a program failing on a later tensor leaves no folder behind (atomic write)', async () => {
  const st = StreamWorld.open(bSeed, bExperts, 'mlp', { maxMemoryBytes: 8 * GB });
  try {
    const bad = 'function merge(tv, ctx) { if (ctx.layer === 2) throw new Error("boom"); return tv[0].mul(0.5); }';
    const out = join(root, 'b-fail');
    await assert.rejects(st.write(out, { kind: 'program', fn: makeFileMergeFunction(bad, sb, { limits: st.limits() }), seed: 1 }), (e: unknown) => e instanceof AlgorithmRejected && e.category === 'runtime' && /boom/.test(e.message));
    assert.ok(!existsSync(out));
    assert.deepEqual(readdirSync(root).filter((f) => f.startsWith('b-fail')), []);
    const nan = 'function merge(tv, ctx) { return tv[0].mul(1e38).mul(1e38); }';
    await assert.rejects(st.write(out, { kind: 'program', fn: makeFileMergeFunction(nan, sb, { limits: st.limits() }), seed: 1 }), (e: unknown) => e instanceof AlgorithmRejected && e.category === 'non-finite');
    assert.ok(!existsSync(out));
    // finite in float32, but not in the output dtype (F16 max 65504)
    const big = 'function merge(tv, ctx) { return torch.full_like(tv[0], 1e5); }';
    await assert.rejects(st.write(out, { kind: 'program', fn: makeFileMergeFunction(big, sb, { limits: st.limits() }), seed: 1 }, { dtype: 'F16' }), (e: unknown) => e instanceof AlgorithmRejected && e.category === 'non-finite' && /outside the range of F16/.test(e.message));
    assert.ok(!existsSync(out));
  } finally {
    st.close();
  }
});

test('limits scale with the tensor (one formula for every merge path); a program too slow fails with timeout and the run goes on', async () => {
  const n7 = 14336 * 4096; // a Mistral-7B MLP tensor
  // 800 ns of program CPU per element, 400 ns more for the child's reading and encoding
  assert.deepEqual(streamLimits(n7, 3), { maxElements: n7 * 44, timeoutMs: 46_977, wallMs: 46_977 + 23_489, memoryMb: 64 });
  assert.deepEqual(streamLimits(n7, 3, 2), { maxElements: n7 * 44, timeoutMs: 93_953, wallMs: 93_953 + 46_977, memoryMb: 64 });
  assert.deepEqual(streamLimits(1000, 3), { maxElements: 1 << 26, timeoutMs: 2000, wallMs: 6000, memoryMb: 64 });
  const st = StreamWorld.open(bSeed, bExperts, 'mlp', { maxMemoryBytes: 8 * GB });
  try {
    const out = join(root, 'b-slow');
    // the limit is the sandbox child's CPU time (machine load does not count): read it from /proc
    await sb.start();
    const cpu0 = processCpuMs(sb.pid!)!;
    const spin = 'function merge(tv, ctx) { for (;;) {} }';
    await assert.rejects(
      st.write(out, { kind: 'program', fn: makeFileMergeFunction(spin, sb, { limits: st.limits() }), seed: 1 }),
      (e: unknown) => e instanceof AlgorithmRejected && e.category === 'timeout' && /CPU-time limit of 2000 ms/.test(e.message),
    );
    const cpu = processCpuMs(sb.pid!)! - cpu0;
    assert.ok(cpu >= 2000 && cpu < 2000 + 5000, `stopped at the time limit (${cpu} ms of CPU)`);
    assert.ok(!existsSync(out));
    // the same sandbox merges the next candidate; a program run again after others (recycled buffers) gives the same bytes
    const a = join(root, 'b-again-1');
    const b = join(root, 'b-again-2');
    await st.write(a, { kind: 'program', fn: makeFileMergeFunction(TIES, sb, { limits: st.limits() }), seed: 3 });
    await st.write(join(root, 'b-between'), { kind: 'program', fn: makeFileMergeFunction(ROWMEAN, sb, { limits: st.limits() }), seed: 3 });
    await st.write(b, { kind: 'program', fn: makeFileMergeFunction(TIES, sb, { limits: st.limits() }), seed: 3 });
    const x = bytesOf(a);
    for (const [n, y] of bytesOf(b)) assert.ok(y.equals(x.get(n)!), n);
  } finally {
    st.close();
  }
});
