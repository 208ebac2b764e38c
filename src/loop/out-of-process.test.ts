/**
 * The short version of `npm run demo:out-of-process`: a 2-iteration run on a micro world, once in
 * process (builtin factory, in-process scoring and DPO) and once with every role out of process
 * (the factory behind `selfdev serve` started by the loop, a `selfdev serve` per scored candidate,
 * `selfdev dpo` as dpo.command): the same programs, scores, pairs and trained factories.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from '../io/testing.ts';
import { RunStore } from '../store/store.ts';
import { initBackend } from '../nn/index.ts';
import { runLoop } from './controller.ts';
import { outOfProcessConfig } from './out-of-process.ts';
import { builtinLoopConfig, microBuiltinWorld, runSnapshot } from './testing.ts';

function programsByIteration(runDir: string): { t: number; hashes: string[]; source: string | null }[] {
  const s = RunStore.open(runDir, { readonly: true });
  try {
    return s.iterations().map((it) => ({ t: it.t, hashes: s.samples(it.id).map((x) => x.hash), source: it.sampledFrom ?? null }));
  } finally {
    s.close();
  }
}

test('every role out of process (factory server, eval.server, dpo.command) gives the in-process run’s programs, scores and pairs', async () => {
  await initBackend();
  const tmp = makeTempDir('selfdev-oop-');
  try {
    const { world, factoryDir } = await microBuiltinWorld(tmp.path);
    const cfg = { ...builtinLoopConfig(world, factoryDir), workers: 1 };
    const inDir = join(tmp.path, 'in');
    const outDir = join(tmp.path, 'out');
    const t0 = performance.now();
    await runLoop(cfg, inDir);
    const t1 = performance.now();
    const twin = await outOfProcessConfig(cfg, process.cwd());
    assert.equal(twin.factory.kind, 'openai');
    await runLoop(twin, outDir);
    const t2 = performance.now();
    console.log(`in process ${((t1 - t0) / 1000).toFixed(1)} s, out of process ${((t2 - t1) / 1000).toFixed(1)} s`);

    const a = programsByIteration(inDir);
    const b = programsByIteration(outDir);
    assert.equal(b.length, 2);
    assert.deepEqual(b.map((x) => x.hashes), a.map((x) => x.hashes), 'the same programs, in the same order, every iteration');
    assert.ok(new Set(a.flatMap((x) => x.hashes)).size > 1);
    // the factory server ran on the untrained folder, then on the folder selfdev dpo wrote
    assert.match(b[0]!.source!, /^openai:completions:coder@127\.0\.0\.1:\d+ \(.*factory0\)$/);
    assert.match(b[1]!.source!, /\(factory\/iter-1\)$/);
    assert.equal(a[1]!.source, join('factory', 'iter-1'));
    const sa = runSnapshot(inDir);
    const sb = runSnapshot(outDir);
    assert.ok(sa.lb.length > 0 && sa.pairs.length > 0, 'the run has valid programs and pairs');
    assert.deepEqual(sb, sa, 'the same evaluations, leaderboard, baselines and pairs');
    // the trained factories are the same weights
    for (const it of ['iter-1', 'iter-2']) {
      const wa = readFileSync(join(inDir, 'factory', it, 'model.safetensors'));
      const wb = readFileSync(join(outDir, 'factory', it, 'model.safetensors'));
      assert.ok(wa.equals(wb), `factory/${it}/model.safetensors differs`);
    }
  } finally {
    tmp.cleanup();
  }
});
