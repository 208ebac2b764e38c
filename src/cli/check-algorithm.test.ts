import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { command, loadWorldTarget, syntheticLlama } from './check-algorithm.ts';
import { UsageError } from './command.ts';
import { captureConsole } from './testing.ts';
import { makeMicroWorld } from '../loop/testing.ts';
import { MergeWorld } from '../merge/world.ts';
import { evaluate } from '../eval/evaluate.ts';
import { loadGsm8k } from '../eval/gsm8k.ts';
import { BuiltinBackend } from '../eval/backends.ts';
import { inferNative } from '../nn/infer.ts';
import { initBackend } from '../nn/index.ts';

const capture = (args: string[]) => captureConsole(() => command.run(args));

test('check-algorithm: accepts a contract algorithm (real stage on a synthetic small Llama), rejects a bad one with exit 1', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'selfdev-check-'));
  try {
    const good = await capture(['algorithms/algorithm_a.js', '--json', '--synthetic']);
    assert.equal(good.code, 0, good.out);
    const v = JSON.parse(good.out) as { ok: boolean; stage: string; timings: { runs: number } };
    assert.equal(v.ok, true);
    assert.equal(v.stage, 'real');
    assert.equal(v.timings.runs, 1 + 1 + 4 + 2 + syntheticLlama(1).tensors.length);
    const bad = join(dir, 'bad.js');
    writeFileSync(bad, 'function merge(taskVectors, ctx) {\n  return taskVectors[0].mean(0);\n}\n');
    const r = await capture([bad, '--synthetic']);
    assert.equal(r.code, 1);
    assert.match(r.out, /REJECTED/);
    assert.match(r.out, /bad-shape \(at smoke\): merge returned shape \[10\] for a tensor of shape \[6, 10\]/);
    await assert.rejects(command.run([]), UsageError);
    await assert.rejects(command.run([bad, '--seed', 'x']), /--seed must be a non-negative integer/);
    await assert.rejects(command.run([join(dir, 'missing.js')]), /cannot read/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('syntheticLlama: shapes of a small Llama, seeded', () => {
  const a = syntheticLlama(1, 2, 8, 16, 10, 1);
  assert.deepEqual(a.tensors.map((t) => [t.name, t.shape.join('x'), t.kind]).slice(0, 3), [
    ['model.embed_tokens.weight', '10x8', 'embedding'],
    ['model.layers.0.input_layernorm.weight', '8', 'norm'],
    ['model.layers.0.self_attn.q_proj.weight', '8x8', 'attention'],
  ]);
  assert.equal(a.tensors.find((t) => t.name.endsWith('down_proj.weight'))!.shape.join('x'), '8x16');
  assert.deepEqual(a.tensors[0]!.taskVectors[1], syntheticLlama(1, 2, 8, 16, 10, 1).tensors[0]!.taskVectors[1]);
});

test('check-algorithm on a tiny world: real stage on M0 + experts (MLP tensors), then the dev score of the merge; real-stage failures; fallback', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'selfdev-check-world-'));
  try {
    const w = await makeMicroWorld(join(dir, 'micro'), { nExperts: 2, nOod: 0, nDev: 4, nTest: 1, trainSteps: 20 });
    const wdir = join(dir, 'world', 'models');
    const put = (name: string, role: string, src: string) => {
      cpSync(src, join(wdir, name), { recursive: true });
      writeFileSync(join(wdir, name, 'world.json'), JSON.stringify({ recipe: 'micro', stage: { name, role } }));
    };
    put('M0', 'seed', w.seedModel);
    put('EA', 'expert', w.experts[0]!);
    put('EB', 'expert', w.experts[1]!);
    mkdirSync(join(dir, 'world', 'bench'));
    cpSync(w.dev, join(dir, 'world', 'bench', 'dev.jsonl'));
    const r = await capture(['algorithms/task_arithmetic.js', '--world', wdir, '--limit', '3', '--json']);
    assert.equal(r.code, 0, r.out);
    const v = JSON.parse(r.out) as { ok: boolean; stage: string; realStage: { seedModel: string; experts: string[]; tensors: number; tensorFilter: string }; dev: { n: number; strict: number; flexible: number }; timings: { runs: number } };
    assert.equal(v.ok, true);
    assert.equal(v.stage, 'real');
    // one layer: gate, up, down projections are the MLP tensors
    assert.deepEqual(v.realStage, { world: wdir, seedModel: 'M0', experts: ['EA', 'EB'], tensorFilter: 'mlp', tensors: 3 });
    assert.equal(v.timings.runs, 1 + 1 + 4 + 2 + 3);
    // the score equals an independent evaluation of seed + 0.4 Σ τ (the algorithm's λ) on the MLP tensors
    const mw = MergeWorld.load(w.seedModel, w.experts, 'mlp');
    const model = mw.model(mw.taskArithmetic(0.4));
    const ind = await evaluate(BuiltinBackend.fromModel(model, mw.tokenizer), loadGsm8k(w.dev).slice(0, 3), { maxTokens: 96, calculator: true });
    model.dispose();
    assert.equal(v.dev.n, 3);
    assert.equal(v.dev.strict, ind.strict);
    assert.equal(v.dev.flexible, ind.flexible);
    // text mode
    const t = await capture(['algorithms/task_arithmetic.js', '--world', wdir, '--limit', '2']);
    assert.match(t.out, /^ACCEPTED/);
    assert.match(t.out, /real stage: tiny world .*: M0 \+ EA, EB, 3 mlp tensors/);
    assert.match(t.out, new RegExp(`dev accuracy \\(n=2, ${inferNative() ? 'native' : 'JavaScript'} engine\\): strict \\d+\\.\\d%, flexible \\d+\\.\\d%`));
    // passes the smoke shapes, fails on the world's [64, 32] tensors
    const big = join(dir, 'big.js');
    writeFileSync(big, "function merge(taskVectors, ctx) {\n  if (ctx.shape[0] === 64) throw new Error('too big');\n  return torch.stack(taskVectors).sum(0);\n}\n");
    const b = await capture([big, '--world', wdir]);
    assert.equal(b.code, 1);
    assert.match(b.out, /REJECTED/);
    assert.match(b.out, /\(at real\): .*too big.*\[tensor model\.layers\.0\.mlp\./);
    // missing world: explicit --world is an error, the default falls back with a note
    await assert.rejects(command.run(['algorithms/task_arithmetic.js', '--world', join(dir, 'nope')]), /world folder not found/);
    await assert.rejects(command.run(['algorithms/task_arithmetic.js', '--synthetic', '--limit', '3']), /--synthetic runs no world/);
    await assert.rejects(command.run(['algorithms/task_arithmetic.js', '--limit', '0']), /--limit must be at least 1/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the README's example scores on the shipped tiny world: `selfdev check-algorithm algorithms/algorithm_a.js` prints a dev score of the merge, and task arithmetic's equals an independent evaluation", { timeout: 180_000 }, async () => {
  const bin = fileURLToPath(new URL('../../bin/selfdev.mjs', import.meta.url));
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const cli = (args: string[]) => spawnSync(process.execPath, [bin, 'check-algorithm', ...args], { cwd: root, encoding: 'utf8' });
  // the README's command, in a fresh process (where the engine is not initialised by anything else)
  const r = cli(['algorithms/algorithm_a.js']);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.doesNotMatch(r.stdout, /note: no trained tiny world/);
  assert.match(r.stdout, /^ACCEPTED algorithms\/algorithm_a\.js$/m);
  assert.match(r.stdout, /real stage: tiny world .*world\/models: M0 \+ E1_addsub, E2_groups, E3_units, 9 mlp tensors/);
  assert.match(r.stdout, new RegExp(`dev accuracy \\(n=200, ${inferNative() ? 'native' : 'JavaScript'} engine\\): strict \\d+\\.\\d%, flexible \\d+\\.\\d%  \\(M0 alone: strict 3\\.0%`));
  // the same path's score of task arithmetic (λ 0.4) equals seed + 0.4 Σ τ evaluated directly on the world's dev set
  const j = cli(['algorithms/task_arithmetic.js', '--json']);
  assert.equal(j.status, 0, j.stdout + j.stderr);
  const v = JSON.parse(j.stdout) as { ok: boolean; dev: { n: number; strict: number; flexible: number } | null };
  assert.equal(v.ok, true);
  await initBackend();
  const w = loadWorldTarget(join(root, 'world', 'models'));
  const model = w.merge.model(w.merge.taskArithmetic(0.4));
  try {
    const ind = await evaluate(BuiltinBackend.fromModel(model, w.merge.tokenizer, { batchSize: 64 }), loadGsm8k(w.dev), { maxTokens: 96, calculator: true });
    assert.deepEqual(v.dev && { n: v.dev.n, strict: v.dev.strict, flexible: v.dev.flexible }, { n: 200, strict: ind.strict, flexible: ind.flexible });
  } finally {
    model.dispose();
  }
});
