/**
 * A one-iteration loop run with `eval.server` (a real `selfdev serve` process per scoring job) on
 * tiny Mistral-, Qwen2- (sharded seed) and Llama-3-shaped worlds: the run finishes, candidates are
 * scored through the server, and every served folder's config.json equals the seed's (torch_dtype
 * aside) with the same tokenizer files. (The test tokenizer is the engine's own byte-level one.)
 *
 * Each run starts `selfdev serve` once per scoring job (≈ 10 starts), so by default only the
 * Qwen2-shaped world runs (q/k/v biases, tied embeddings, sliding window on the upper layers,
 * sharded seed); SELFDEV_ARCH_LOOP=all runs the Mistral- and Llama-3-shaped worlds too (measured
 * 82 s, 100 s and 109 s wall on a machine at load 28).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTempDir } from '../src/io/testing.ts';
import { makeArchCheckpoint, TEST_ARCHS } from '../src/nn/arch-testing.ts';
import { runLoop } from '../src/loop/controller.ts';
import { RunStore } from '../src/store/store.ts';

const ROOT = resolve(fileURLToPath(import.meta.url), '../..');
const tmp = makeTempDir('selfdev-arch-loop-');
after(() => tmp.cleanup());

const json = (p: string) => JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
const lines = (src: string, n: number) => readFileSync(join(ROOT, src), 'utf8').split('\n').filter(Boolean).slice(0, n).join('\n') + '\n';

const ARCHS = process.env.SELFDEV_ARCH_LOOP === 'all' ? TEST_ARCHS : (['qwen2'] as const);
for (const arch of ARCHS) {
  test(`${arch}: a 1-iteration loop with eval.server scores through selfdev serve; served folders carry the seed's config and tokenizer`, async () => {
    const dir = join(tmp.path, arch);
    const seed = join(dir, 'seed');
    makeArchCheckpoint(seed, arch, { seed: 1, maxShardBytes: arch === 'qwen2' ? 40_000 : undefined });
    const experts = [2, 3].map((s) => {
      const d = join(dir, `expert-${s}`);
      makeArchCheckpoint(d, arch, { seed: s });
      return d;
    });
    mkdirSync(join(dir, 'bench'));
    for (const [k, n] of [['dev', 2], ['test', 2], ['select', 2]] as const) writeFileSync(join(dir, 'bench', `${k}.jsonl`), lines(`world/bench/${k}.jsonl`, n));
    const seen = join(dir, 'served');
    mkdirSync(seen);
    // the server command keeps a copy of what it was given, then serves it
    const command = `cp "$MODEL/config.json" "${seen}/config-$$.json" && cp "$MODEL/tokenizer.json" "${seen}/tokenizer-$$.json" && exec node ${JSON.stringify(join(ROOT, 'bin/selfdev.mjs'))} serve "$MODEL" --port "$PORT" --name merged --quiet`;
    const cfg = {
      name: arch, seed: 1, iterations: 1, samplesPerIteration: 3, tensorFilter: 'mlp', workers: 1,
      eval: { devSubset: 2, maxTokens: 6, batchSize: 4, shots: 0 /* no shot pool in this tiny world */, server: { command, model: 'merged', readyTimeoutSec: 60 } },
      topKTest: 1, selectTopK: 1, baselines: { lambdas: [0.5] },
      world: { seedModel: seed, experts, oodExperts: [], dev: join(dir, 'bench/dev.jsonl'), test: join(dir, 'bench/test.jsonl'), select: join(dir, 'bench/select.jsonl'), algorithms: join(ROOT, 'algorithms'), example: join(ROOT, 'algorithms/task_arithmetic.js') },
    };
    const runDir = join(dir, 'run');
    await runLoop(cfg, runDir, {});
    const store = RunStore.open(runDir, { readonly: true });
    try {
      const its = store.iterations();
      assert.equal(its.length, 1);
      assert.equal(its[0]!.status, 'done');
      assert.ok(store.leaderboard(3).some((x) => x.devStrict !== null), 'some program was scored');
    } finally {
      store.close();
    }
    const configs = readdirSync(seen).filter((f) => f.startsWith('config-'));
    assert.ok(configs.length >= 2, `served at least twice (got ${configs.length})`);
    const strip = (c: Record<string, unknown>) => {
      const { torch_dtype: _t, ...rest } = c;
      return rest;
    };
    for (const f of configs) assert.deepEqual(strip(json(join(seen, f))), strip(json(join(seed, 'config.json'))), f);
    for (const f of readdirSync(seen).filter((x) => x.startsWith('tokenizer-'))) assert.equal(readFileSync(join(seen, f), 'utf8'), readFileSync(join(seed, 'tokenizer.json'), 'utf8'), f);
  });
}
