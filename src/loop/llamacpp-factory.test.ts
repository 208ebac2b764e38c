/**
 * The llama.cpp factory in the loop: the shipped code model (factory/model) exported by
 * `selfdev export-gguf` and sampled in process through node-llama-cpp writes programs that pass the
 * cascade at a rate similar to the builtin factory's (the same model in our engine), one iteration
 * each on a micro world with the embedded run's prompt length and program budget (measured rates below).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { makeTempDir } from '../io/testing.ts';
import { RunStore } from '../store/store.ts';
import { initBackend } from '../nn/index.ts';
import { runLoop } from './controller.ts';
import { makeMicroWorld } from './testing.ts';

const FACTORY = resolve('factory/model');

function validRate(runDir: string): { valid: number; sampled: number; source: string | null } {
  const s = RunStore.open(runDir, { readonly: true });
  try {
    const it = s.iterations()[0]!;
    const samples = s.samples(it.id);
    const valid = samples.filter((x) => s.evaluationFor(x.hash)?.verdict === 'ok').length;
    return { valid, sampled: samples.length, source: it.sampledFrom ?? null };
  } finally {
    s.close();
  }
}

test('one iteration with a GGUF from selfdev export-gguf (node-llama-cpp, in process): programs valid, at a rate not more than 0.3 below the builtin factory’s (measured: higher)', { skip: !existsSync(join(FACTORY, 'model.safetensors')) && 'factory/model not shipped here' }, async () => {
  await initBackend();
  const tmp = makeTempDir('selfdev-llamacpp-loop-');
  try {
    const gguf = join(tmp.path, 'coder.gguf');
    execFileSync(process.execPath, ['bin/selfdev.mjs', 'export-gguf', FACTORY, gguf], { stdio: 'pipe' });
    const world = await makeMicroWorld(tmp.path, { nExperts: 2, nOod: 0, nDev: 4, nTest: 2, trainSteps: 30 });
    // the embedded run's sampling: T 1.2 in iteration 1, programs up to 700 tokens after the prompt's last 20
    const base = {
      seed: 5, iterations: 1, samplesPerIteration: 16, tensorFilter: 'all', workers: 1, temperature: { t1: 1.2, decay: 0.2 },
      eval: { devSubset: 2, maxTokens: 8, batchSize: 8 }, topKTest: 1, selectTopK: 1, baselines: { lambdas: [0.5] }, world,
    };
    const t0 = performance.now();
    await runLoop({ ...base, name: 'builtin', factory: { kind: 'builtin', dir: FACTORY, maxTokens: 700, maxPromptTokens: 20 } }, join(tmp.path, 'builtin'));
    const tb = performance.now();
    await runLoop({ ...base, name: 'llamacpp', factory: { kind: 'llamacpp', path: gguf, maxTokens: 700, maxPromptTokens: 20 } }, join(tmp.path, 'llamacpp'));
    const t1 = performance.now();
    const b = validRate(join(tmp.path, 'builtin'));
    const l = validRate(join(tmp.path, 'llamacpp'));
    console.log(`valid programs: builtin ${b.valid}/${b.sampled} (run ${((tb - t0) / 1000).toFixed(0)} s), llama.cpp ${l.valid}/${l.sampled} (run ${((t1 - tb) / 1000).toFixed(0)} s)`);
    assert.equal(l.source, `llamacpp:${gguf}`);
    assert.equal(l.sampled, 16);
    assert.ok(b.valid >= 4, `the builtin factory writes valid programs (${b.valid}/16)`);
    // Measured (seed 5, 16 samples each): builtin 11/16, llama.cpp 15/16 and 16/16 in three runs — the
    // GGUF is consistently MORE often valid, by 0.25–0.31 (not explained yet: llama.cpp tokenizes the
    // prompt itself, and node-llama-cpp's sampler differs from ours). What this test holds the path
    // to: the GGUF writes valid programs, and not at a rate more than 0.3 below the builtin factory's.
    assert.ok(l.valid >= 4, `the GGUF writes valid programs (${l.valid}/16)`);
    assert.ok((b.valid - l.valid) / 16 <= 0.3, `valid rates ${l.valid}/16 (llama.cpp) vs ${b.valid}/16 (builtin)`);
  } finally {
    tmp.cleanup();
  }
});
