/**
 * `selfdev merge` with merge_method: custom takes the streamed world's route (Sandbox.runFile): the
 * sandbox child reads the tensors from the safetensors files, and no tensor data crosses the IPC
 * channel either way. Observed on the real messages: child_process.fork is wrapped (before the
 * sandbox forks its child) so that every message to and from the child is measured as Node's
 * advanced serialization encodes it (v8.serialize). The previous route (task vectors sent over
 * IPC, kept as the fallback) is run on the same merges for the byte-for-byte comparison.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import childProcess, { type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serialize } from 'node:v8';
import { makeLlamaCheckpoint } from '../io/testing.ts';
import { Checkpoint } from '../io/checkpoint.ts';
import { AlgorithmRejected } from '../sandbox/index.ts';
import { parseMergeConfig } from './config.ts';
import { runMerge, type MergeProgress } from './engine.ts';
import { loadCustomAlgorithm, type CustomAlgorithmOptions } from './custom.ts';

// ------------------------------------------------------------------ every IPC message, measured
interface Msg {
  dir: 'sent' | 'received';
  type: string;
  /** the tensor a merge request is for */
  name?: string;
  bytes: number;
}
const log: Msg[] = [];
const realFork = childProcess.fork;
childProcess.fork = ((...args: Parameters<typeof realFork>) => {
  const child: ChildProcess = realFork(...args);
  const send = child.send.bind(child) as (...a: unknown[]) => boolean;
  child.send = ((msg: { type?: string; ctx?: { name?: string } }, ...rest: unknown[]) => {
    log.push({ dir: 'sent', type: String(msg.type), name: msg.ctx?.name, bytes: serialize(msg).byteLength });
    return send(msg, ...rest);
  }) as ChildProcess['send'];
  child.on('message', (m: { type?: string; stateJson?: string }) =>
    log.push({ dir: 'received', type: m.type ?? (m.stateJson === undefined ? 'response' : 'prepare-response'), bytes: serialize(m).byteLength }),
  );
  return child;
}) as typeof realFork;
syncBuiltinESMExports();
test.after(() => {
  childProcess.fork = realFork;
  syncBuiltinESMExports();
});

const algorithms = fileURLToPath(new URL('../../algorithms/', import.meta.url));
const bin = fileURLToPath(new URL('../../bin/selfdev.mjs', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'selfdev-custom-route-'));
test.after(() => rmSync(root, { recursive: true, force: true }));

// bf16, sharded: seed + 3 experts (shards cut at different sizes)
const dims = { layers: 3, hidden: 32, intermediate: 96, vocab: 64, heads: 4, kvHeads: 2, dtype: 'BF16' as const };
const seed = join(root, 'seed');
const experts = [1, 2, 3].map((i) => join(root, `e${i}`));
makeLlamaCheckpoint(seed, { ...dims, seed: 1, tokenizer: true, maxShardBytes: 20_000 });
experts.forEach((d, i) => makeLlamaCheckpoint(d, { ...dims, seed: 20 + i, perturb: { from: seed, scale: 0.01 }, maxShardBytes: 30_000 }));

function tensorsOf(dir: string): Map<string, Buffer> {
  const c = Checkpoint.open(dir);
  try {
    return new Map(c.tensorNames().map((n) => [n, Buffer.from(c.readBytes(n))]));
  } finally {
    c.close();
  }
}

/** Runs the merge as `selfdev merge` does (cli/merge.ts) and returns the IPC messages of the merge itself (after validation). */
async function merge(raw: Record<string, unknown>, out: string, opts: CustomAlgorithmOptions & { seed: number }): Promise<{ msgs: Msg[]; progress: MergeProgress[]; merged: number }> {
  const cfg = parseMergeConfig({ merge_method: 'custom', base_model: seed, models: experts.map((m) => ({ model: m })), ...raw }, root);
  const custom = await loadCustomAlgorithm(cfg, opts);
  const from = log.length;
  const progress: MergeProgress[] = [];
  try {
    const s = await runMerge(cfg, out, { seed: opts.seed, custom: custom.custom, maxShardBytes: 25_000, onProgress: (p) => progress.push(p) });
    return { msgs: log.slice(from), progress, merged: s.merged };
  } finally {
    custom.close();
  }
}

const CASES: Array<{ what: string; raw: Record<string, unknown> }> = [
  { what: 'TIES, every tensor', raw: { algorithm: join(algorithms, 'ties.js') } },
  // seeded per tensor (ctx.seed from the merge seed and the tensor name)
  { what: 'DARE, MLP and embedding tensors, written as F16', raw: { algorithm: join(algorithms, 'dare.js'), include_tensors: ['.mlp.', 'embed_tokens'], out_dtype: 'float16' } },
  // prepare(stats): the state reaches the child by the file route too
  { what: 'cosine_weighted (prepare)', raw: { algorithm: join(algorithms, 'cosine_weighted.js') } },
];

for (const [i, c] of CASES.entries()) {
  test(`custom merge (${c.what}): no tensor data over IPC; same bytes as the IPC route`, async () => {
    const viaFile = join(root, `file-${i}`);
    const viaIpc = join(root, `ipc-${i}`);
    const f = await merge(c.raw, viaFile, { seed: 5 });
    const p = await merge(c.raw, viaIpc, { seed: 5, route: 'ipc' });
    const seedTensors = tensorsOf(seed);
    /** bytes of a tensor's 3 task vectors in float32 (the stored tensors are BF16) */
    const tvBytes = (name: string) => 3 * 4 * (seedTensors.get(name)!.byteLength / 2);
    assert.ok(f.merged > 0 && f.merged === p.merged, `${f.merged} merged tensors`);

    // the IPC route: every merged tensor's 3 task vectors go out in float32, the result comes back
    const pMerge = p.msgs.filter((m) => m.dir === 'sent' && m.type === 'merge');
    assert.equal(pMerge.length, p.merged);
    for (const m of pMerge) assert.ok(m.bytes > tvBytes(m.name!), `IPC route: ${m.bytes} bytes for ${m.name}`);
    const pBack = p.msgs.filter((m) => m.dir === 'received' && m.type === 'response');
    assert.ok(pBack.reduce((a, m) => a + m.bytes, 0) > pMerge.reduce((a, m) => a + tvBytes(m.name!) / 3, 0), 'IPC route: the results come back over IPC');
    // the file route: one request per merged tensor whose size does not grow with the tensor (the
    // program's source, the tensor's name, shape and file offsets), small answers, nothing else
    const fSent = f.msgs.filter((m) => m.dir === 'sent');
    assert.deepEqual([...new Set(fSent.map((m) => m.type))].filter((t) => t !== 'prepare'), ['merge-file']);
    const fMerge = fSent.filter((m) => m.type === 'merge-file');
    assert.deepEqual(fMerge.map((m) => m.name).sort(), pMerge.map((m) => m.name).sort());
    const sizes = fMerge.map((m) => m.bytes);
    const spread = Math.max(...sizes) - Math.min(...sizes);
    const tvRange = Math.max(...fMerge.map((m) => tvBytes(m.name!))) - Math.min(...fMerge.map((m) => tvBytes(m.name!)));
    assert.ok(spread < 300 && tvRange > 10_000, `file route requests of ${Math.min(...sizes)}–${Math.max(...sizes)} bytes for tensors whose task vectors span ${tvRange} bytes`);
    const answers = f.msgs.filter((m) => m.dir === 'received' && m.type !== 'prepare-response');
    assert.ok(answers.length >= f.merged && answers.every((m) => m.bytes < 300), `file route answers: ${Math.max(...answers.map((m) => m.bytes))} bytes at most`);

    // byte for byte: every tensor, and the files written beside them
    const a = tensorsOf(viaFile);
    const b = tensorsOf(viaIpc);
    assert.deepEqual([...a.keys()], [...b.keys()]);
    let changed = 0;
    for (const [n, x] of a) {
      assert.ok(x.equals(b.get(n)!), `differs from the IPC route: ${n}`);
      if (!x.equals(seedTensors.get(n)!)) changed++;
    }
    assert.ok(changed >= f.merged - 1, `${changed} of ${f.merged} merged tensors differ from the seed`);
    assert.deepEqual(readdirSync(viaFile).sort(), readdirSync(viaIpc).sort());
    assert.ok(readdirSync(viaFile).filter((x) => x.endsWith('.safetensors')).length > 1, 'sharded output');
    for (const x of readdirSync(viaFile)) assert.ok(readFileSync(join(viaFile, x)).equals(readFileSync(join(viaIpc, x))), x);

    // progress as before: one report per tensor, the inputs' bytes counted as read
    assert.equal(f.progress.length, seedTensors.size);
    assert.deepEqual(f.progress.map((x) => x.tensor), p.progress.map((x) => x.tensor));
    assert.equal(f.progress.at(-1)!.bytesRead, p.progress.at(-1)!.bytesRead);
    // the scratch files the child wrote the results to are gone
    assert.deepEqual(readdirSync(tmpdir()).filter((x) => x.startsWith(`selfdev-merge-${process.pid}-`)), []);
  });
}

test('what the file route does not do goes over IPC, with the same result as before (allow_non_finite, task_vector_base)', async () => {
  const ta = join(algorithms, 'task_arithmetic.js');
  const a = await merge({ algorithm: ta, allow_non_finite: true }, join(root, 'anf'), { seed: 1 });
  assert.equal(a.msgs.filter((m) => m.type === 'merge').length, a.merged);
  assert.equal(a.msgs.filter((m) => m.type === 'merge-file').length, 0);
  const plain = await merge({ algorithm: ta }, join(root, 'plain'), { seed: 1 });
  assert.equal(plain.msgs.filter((m) => m.type === 'merge').length, 0);
  const x = tensorsOf(join(root, 'anf'));
  for (const [n, y] of tensorsOf(join(root, 'plain'))) assert.ok(y.equals(x.get(n)!), n);
  const t = await merge({ algorithm: ta, task_vector_base: experts[0] }, join(root, 'tvb'), { seed: 1 });
  assert.equal(t.msgs.filter((m) => m.type === 'merge').length, t.merged);
});

test('a program failing on a later tensor: the error names the tensor and the failure, nothing is left behind', async () => {
  const bad = join(root, 'boom.js');
  writeFileSync(bad, 'function merge(tv, ctx) { if (ctx.layer === 2 && ctx.name.includes("up_proj")) throw new Error("boom"); return tv[0].mul(0.5); }\n');
  const out = join(root, 'out-boom');
  await assert.rejects(
    merge({ algorithm: bad }, out, { seed: 1 }),
    (e: unknown) => e instanceof AlgorithmRejected && e.category === 'runtime' && /boom/.test(e.message) && /\[tensor model\.layers\.2\.mlp\.up_proj\.weight\]/.test(e.message),
  );
  assert.ok(!existsSync(out));
  assert.deepEqual(readdirSync(root).filter((f) => f.startsWith('out-boom')), []);
  // the sandbox's limits hold on this route too: a program that never returns on one tensor fails with
  // `timeout` at the CPU-time limit streamLimits gives these small tensors (2000 ms)
  const spin = join(root, 'spin.js');
  writeFileSync(spin, 'function merge(tv, ctx) { if (ctx.name === "model.layers.1.mlp.down_proj.weight") for (;;) {} return tv[0]; }\n');
  await assert.rejects(
    merge({ algorithm: spin }, out, { seed: 1 }),
    (e: unknown) => e instanceof AlgorithmRejected && e.category === 'timeout' && /CPU-time limit of 2000 ms/.test(e.message) && /\[tensor model\.layers\.1\.mlp\.down_proj\.weight\]/.test(e.message),
  );
  assert.ok(!existsSync(out));
  assert.deepEqual(readdirSync(root).filter((f) => f.startsWith('out-boom')), []);
  // finite in float32, not in the output dtype (F16 max 65504)
  const big = join(root, 'big.js');
  writeFileSync(big, 'function merge(tv, ctx) { return ctx.layer === 1 ? torch.full_like(tv[0], 1e5) : tv[0]; }\n');
  await assert.rejects(
    merge({ algorithm: big, out_dtype: 'float16' }, out, { seed: 1 }),
    (e: unknown) => e instanceof AlgorithmRejected && e.category === 'non-finite' && /outside the range of F16/.test(e.message) && /model\.layers\.1\./.test(e.message) && /--allow-non-finite/.test(e.message),
  );
  assert.ok(!existsSync(out));
  assert.deepEqual(readdirSync(root).filter((f) => f.startsWith('out-boom')), []);
  // the command: one line naming the tensor and the failure, exit 1, no output
  writeFileSync(join(root, 'boom.yml'), `merge_method: custom\nalgorithm: boom.js\nbase_model: seed\nmodels: [e1, e2, e3]\n`);
  const r = childProcess.spawnSync(process.execPath, [bin, 'merge', join(root, 'boom.yml'), out], { encoding: 'utf8', cwd: root });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /^selfdev merge: runtime: .*boom.*\[tensor model\.layers\.2\.mlp\.up_proj\.weight\]\n$/);
  assert.ok(!existsSync(out));
});
