import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { makeTempDir } from '../io/testing.ts';
import { RunStore, programHash } from '../store/store.ts';
import { initBackend, Llama, loadModel, makeConfig, saveModel, Tokenizer, train, trainBpe, encodePair } from '../nn/index.ts';
import { buildPrompt as evalPrompt } from '../eval/prompt.ts';
import { buildPrompt, loadPromptFiles } from '../factory/index.ts';
import { BuiltinFactory } from '../factory/builtin.ts';
import { deriveSeed, runLoop } from './controller.ts';
import { resolveConfig, temperatureAt } from './config.ts';
import { memoryEvaluator, openEvalContext } from './pool.ts';
import { loopPromptAndPrograms, teachPrograms } from './testing.ts';

const ROOT = process.cwd();
const files = loadPromptFiles(ROOT, resolve('algorithms/task_arithmetic.js'));
const PROMPT = buildPrompt({ apiReference: files.apiReference, example: files.example });

/**
 * A world whose models are builtin factories: the seed is a tiny byte-level Llama that has learned
 * three programs after the prompt's last 8 tokens (expert 0 alone, expert 1 alone, the seed); expert
 * k is the seed trained to answer the benchmark problems with index ≡ k (mod 2), on the programs too
 * (so that merges still write programs). The factory of
 * iteration 1 is the seed itself, so every merge is loadable as the next factory.
 */
async function makeFactoryWorld(dir: string) {
  await initBackend();
  const tok = new Tokenizer();
  const cfg = makeConfig({ vocab_size: tok.vocabSize, hidden_size: 32, num_attention_heads: 2, num_hidden_layers: 1, intermediate_size: 64, max_position_embeddings: 160 });
  const { tail, programs } = loopPromptAndPrograms(8, ['taskVectors[0].mul(1)', 'taskVectors[1].mul(1)', 'taskVectors[0].mul(0)'], ROOT);
  const seed = Llama.init(cfg, 9);
  teachPrograms(seed, tok, tail, programs, 128);
  const base = seed.getWeights();
  saveModel(join(dir, 'seed'), seed, tok);
  seed.dispose();
  const read = (src: string, n: number) => readFileSync(join(ROOT, src), 'utf8').split('\n').filter(Boolean).slice(0, n);
  const devLines = read('world/bench/dev.jsonl', 4);
  const testLines = read('world/bench/test.jsonl', 2);
  const problems = [...devLines, ...testLines].map((l) => JSON.parse(l) as { question: string; answer: string });
  const experts = [0, 1].map((k) => {
    const m = Llama.fromWeights(cfg, base);
    // its half of the problems, and the programs again (so that merges still write programs)
    const ex = problems.filter((_, i) => i % 2 === k).map((p) => encodePair(tok, evalPrompt(p.question), ' #### ' + p.answer.split('#### ')[1]! + '\n\n'));
    ex.push(...programs.map((p) => encodePair(tok, tail, p)));
    train(m, tok, ex, { steps: 60, lr: 1e-2, batchSize: ex.length, seqLen: 160, seed: k + 1, progress: false });
    saveModel(join(dir, `expert-${k}`), m, tok);
    m.dispose();
    return join(dir, `expert-${k}`);
  });
  mkdirSync(join(dir, 'bench'));
  writeFileSync(join(dir, 'bench', 'dev.jsonl'), devLines.join('\n') + '\n');
  writeFileSync(join(dir, 'bench', 'test.jsonl'), testLines.join('\n') + '\n');
  writeFileSync(join(dir, 'bench', 'select.jsonl'), read('world/bench/select.jsonl', 2).join('\n') + '\n');
  return { seedModel: join(dir, 'seed'), experts, oodExperts: [] as string[], dev: join(dir, 'bench', 'dev.jsonl'), test: join(dir, 'bench', 'test.jsonl'), select: join(dir, 'bench', 'select.jsonl') };
}

function runConfig(world: Awaited<ReturnType<typeof makeFactoryWorld>>, workers: number) {
  return {
    name: 'recursive', seed: 2, iterations: 2, samplesPerIteration: 6, tensorFilter: 'all', pWin: 0.2, pLose: 0.4,
    eval: { devSubset: 4, maxTokens: 10, batchSize: 8 }, topKTest: 2, baselines: { lambdas: [0.5] },
    dpo: { beta: 0.1, lr: 1e-3, epochs: 1, batchSize: 2 },
    factory: { kind: 'builtin', dir: world.seedModel, maxPromptTokens: 8, maxTokens: 90 },
    world, recursive: true, workers,
  };
}

/** Runs the loop in a child process that kills itself with SIGKILL when iteration `killAt` starts. */
async function runAndKill(cfg: unknown, runDir: string, killAt: number): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  const controller = pathToFileURL(resolve('src/loop/controller.ts')).href;
  const script = `const { runLoop } = await import(${JSON.stringify(controller)});
await runLoop(${JSON.stringify(cfg)}, ${JSON.stringify(runDir)}, { onEvent: (e) => { if (e.type === 'iteration' && e.t === ${killAt}) process.kill(process.pid, 'SIGKILL'); } });
process.stdout.write('finished\\n');`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  child.stdout.on('data', (d) => (stderr += d));
  return new Promise((res) => child.on('close', (code, signal) => res({ code, signal, stderr })));
}

const weightsOf = (dir: string) => {
  const m = loadModel(dir);
  const w = m.model.getWeights();
  m.model.dispose();
  return w;
};
const l2 = (a: Map<string, Float32Array>, b: Map<string, Float32Array>) => {
  let s = 0;
  for (const [n, x] of a) {
    const y = b.get(n)!;
    for (let i = 0; i < x.length; i++) s += (x[i]! - y[i]!) ** 2;
  }
  return Math.sqrt(s);
};

test('recursive mode: the best merge of iteration 1 is written as an HF folder, DPO-trained, and iteration 2 samples from it; kill -9 + resume reproduces the uninterrupted run', async () => {
  const tmp = makeTempDir('selfdev-recursive-');
  try {
    const world = await makeFactoryWorld(tmp.path);
    const straightDir = join(tmp.path, 'straight');
    const cfgIn = runConfig(world, 1);
    const straight = await runLoop(cfgIn, straightDir);
    const cfg = resolveConfig(cfgIn);

    const store = RunStore.open(straightDir, { readonly: true });
    let it1, it2;
    try {
      [it1, it2] = store.iterations();
      assert.ok(it1 && it2);
      // the best of iteration 1 by full dev, ties by hash (computed here from the stored evaluations)
      const best = store.iterationPrograms(it1.id).filter((r) => r.verdict === 'ok' && r.devStrict !== null)
        .sort((a, b) => b.devStrict! - a.devStrict! || (a.hash < b.hash ? -1 : 1))[0];
      assert.ok(best, 'iteration 1 has a valid program');
      assert.ok(best.devStrict! > 0, `the best merge answers something (${best.devStrict})`);
      assert.equal(it1.mergedCheckpoint, join('factory', 'merged-iter-1'));
      assert.equal(it1.mergedProgram, best.hash);
      assert.equal(it1.sampledFrom, resolve(world.seedModel), 'iteration 1 samples from the configured factory');
      // the folder is a loadable HF checkpoint equal to the best program's merge, recomputed in the world
      const mergedDir = join(straightDir, it1.mergedCheckpoint!);
      for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'generation_config.json']) assert.ok(existsSync(join(mergedDir, f)), f);
      assert.equal(JSON.parse(readFileSync(join(mergedDir, 'config.json'), 'utf8')).torch_dtype, 'float32');
      const merged = weightsOf(mergedDir);
      const ctx = await openEvalContext(cfg, ROOT);
      try {
        const m = await memoryEvaluator(ctx).mergeProgram(store.programByHash(best.hash)!.code, deriveSeed(cfg.seed, `program:${best.hash}`));
        assert.ok('weights' in m);
        assert.equal(merged.size, m.weights.size);
        for (const [n, w] of m.weights) assert.deepEqual(merged.get(n), w, `tensor ${n} of the merged folder`);
      } finally {
        ctx.close();
      }
      const seedW = weightsOf(world.seedModel);
      assert.ok(l2(merged, seedW) > 0.1, 'the best merge differs from the seed');
      // DPO ran on the merged model (policy and reference): factory/iter-1 = DPO(merge) is next to the merge, far from the seed
      assert.ok(store.pairs(it1.id).length > 0 && store.dpoSteps(it1.id).length > 0, 'pairs → DPO');
      assert.equal(it1.factoryCheckpoint, join('factory', 'iter-1'));
      const trained = weightsOf(join(straightDir, 'factory', 'iter-1'));
      const dMerged = l2(trained, merged);
      const dSeed = l2(trained, seedW);
      assert.ok(dMerged > 0 && dMerged < 0.2 * dSeed, `DPO starts from the merge: |iter1 − merge| ${dMerged} vs |iter1 − seed| ${dSeed}`);
      // iteration 2 sampled from that folder: sampling it again with the stored seed gives the stored batch
      assert.equal(it2.sampledFrom, join('factory', 'iter-1'));
      const f = cfg.factory as { maxPromptTokens: number; maxTokens: number };
      const sample = async (dir: string) => {
        const fac = await BuiltinFactory.load(dir, { maxPromptTokens: f.maxPromptTokens, defaultMaxTokens: f.maxTokens });
        try {
          const c = await fac.sample(PROMPT, cfg.samplesPerIteration, { temperature: temperatureAt(cfg, 2), seed: deriveSeed(cfg.seed, 'sample:2'), maxTokens: f.maxTokens });
          return c.map((x) => programHash(x.code ?? `/* no program extracted: ${x.error ?? 'unknown'} */\n${x.raw}`));
        } finally {
          await fac.close();
        }
      };
      const stored2 = store.samples(it2.id).map((s) => s.hash);
      assert.deepEqual(await sample(join(straightDir, it2.sampledFrom!)), stored2);
      assert.notDeepEqual(await sample(world.seedModel), stored2, 'the original factory would have sampled another batch');
      // the last iteration leaves its best merge too (the run's final recursive factory)
      assert.equal(it2.mergedCheckpoint === null, rankedEmpty(store, it2.id));
    } finally {
      store.close();
    }

    // kill -9 as iteration 2 starts (2 workers: the parent loads its own world for the merge)
    const killedDir = join(tmp.path, 'killed');
    const k = await runAndKill(runConfig(world, 2), killedDir, 2);
    assert.equal(k.signal, 'SIGKILL', `child was killed (exit ${k.code}): ${k.stderr.slice(-2000)}`);
    const folder1 = join(killedDir, 'factory', 'merged-iter-1');
    assert.ok(existsSync(join(folder1, 'config.json')), 'iteration 1 wrote its merged folder before the kill');
    // state of a kill right after the folder's rename, before the store knew (iteration 1 back to training,
    // its merge and DPO output not recorded), plus an incomplete folder where iteration 2's merge goes
    const raw = RunStore.open(killedDir);
    try {
      const i1 = raw.iteration(1)!;
      assert.equal(raw.iteration(2)?.status, 'sampling', 'killed as iteration 2 started');
      raw.updateIteration(i1.id, { status: 'training', factoryCheckpoint: null, mergedCheckpoint: null, mergedProgram: null });
    } finally {
      raw.close();
    }
    const before = statSync(join(folder1, 'model.safetensors'));
    const folder2 = join(killedDir, 'factory', 'merged-iter-2');
    mkdirSync(folder2);
    cpSync(join(folder1, 'config.json'), join(folder2, 'config.json'));
    cpSync(join(folder1, 'tokenizer.json'), join(folder2, 'tokenizer.json'));
    writeFileSync(join(folder2, 'model.safetensors'), readFileSync(join(folder1, 'model.safetensors')).subarray(0, 200));

    const resumed = await runLoop(undefined, killedDir, { workers: 1 });
    const after = statSync(join(folder1, 'model.safetensors'));
    assert.equal(after.ino, before.ino, 'the complete merged folder of iteration 1 is reused, not rewritten');
    assert.equal(after.mtimeMs, before.mtimeMs);
    const key = (r: typeof straight) => r.leaderboard.map((x) => [x.hash, x.devSubset, x.devStrict, x.testStrict]);
    assert.deepEqual(key(resumed), key(straight));
    const a = RunStore.open(killedDir, { readonly: true });
    const b = RunStore.open(straightDir, { readonly: true });
    try {
      for (const t of [1, 2]) {
        const [x, y] = [a.iteration(t)!, b.iteration(t)!];
        assert.deepEqual(a.samples(x.id).map((s) => s.hash), b.samples(y.id).map((s) => s.hash), `iteration ${t} batch`);
        assert.deepEqual([x.sampledFrom, x.mergedCheckpoint, x.mergedProgram, x.factoryCheckpoint], [y.sampledFrom, y.mergedCheckpoint, y.mergedProgram, y.factoryCheckpoint]);
        if (x.mergedCheckpoint) assert.ok(readFileSync(join(killedDir, x.mergedCheckpoint, 'model.safetensors')).equals(readFileSync(join(straightDir, y.mergedCheckpoint!, 'model.safetensors'))), `merged-iter-${t} bytes`);
      }
      assert.ok(a.iteration(2)!.mergedCheckpoint, 'iteration 2 has a merge (the incomplete folder was rewritten)');
    } finally {
      a.close();
      b.close();
    }
  } finally {
    tmp.cleanup();
  }
});

function rankedEmpty(store: RunStore, iterationId: number): boolean {
  return !store.iterationPrograms(iterationId).some((r) => r.verdict === 'ok' && r.devStrict !== null);
}

test('recursive mode: unsupported setups fail with specific errors before any work', async () => {
  await initBackend();
  const base = { world: { seedModel: 's', experts: ['e'] }, recursive: true };
  assert.throws(() => resolveConfig({ ...base }), /recursive: true needs factory.kind: builtin .*corpus has no model/);
  assert.throws(() => resolveConfig({ ...base, factory: { kind: 'openai', url: 'http://x/v1', model: 'm' } }), /recursive: true with factory.kind openai is not supported yet/);
  assert.throws(() => resolveConfig({ ...base, factory: { kind: 'llamacpp', path: 'm.gguf' } }), /recursive: true with factory.kind llamacpp is not supported yet/);
  assert.throws(() => resolveConfig({ ...base, recursive: 'yes', factory: { kind: 'builtin', dir: 'f' } }), /recursive must be true or false/);
  assert.equal(resolveConfig({ world: base.world }).recursive, false, 'off by default');

  const tmp = makeTempDir('selfdev-recursive-val-');
  try {
    const tok = new Tokenizer();
    const small = { vocab_size: 300, hidden_size: 16, num_attention_heads: 2, num_hidden_layers: 1, intermediate_size: 32, max_position_embeddings: 64 };
    const save = (name: string, arch: typeof small, t: Tokenizer | null) => {
      const m = Llama.init(makeConfig(arch), 1);
      saveModel(join(tmp.path, name), m, t);
      m.dispose();
      return join(tmp.path, name);
    };
    const seed = save('seed', small, tok);
    const expert = save('expert', small, tok);
    const sameFactory = save('factory', small, tok);
    const bpeFactory = save('bpe-factory', small, trainBpe(['function merge(taskVectors, ctx) { return taskVectors[0]; }'], 20));
    const wideFactory = save('wide-factory', { ...small, hidden_size: 32 }, tok);
    const wideExpert = save('wide-expert', { ...small, intermediate_size: 48 }, tok);
    const noTok = join(tmp.path, 'no-tok');
    cpSync(seed, noTok, { recursive: true });
    rmSync(join(noTok, 'tokenizer.json'));
    writeFileSync(join(tmp.path, 'dev.jsonl'), '{"question":"1+1?","answer":"#### 2"}\n');
    const cfg = (factoryDir: string, seedModel = seed, experts = [expert]) => ({
      recursive: true, factory: { kind: 'builtin', dir: factoryDir }, workers: 1,
      world: { seedModel, experts, dev: join(tmp.path, 'dev.jsonl'), test: join(tmp.path, 'dev.jsonl') },
    });
    const fails = async (c: unknown, re: RegExp, name: string) => {
      const dir = join(tmp.path, `run-${name}`);
      const t0 = performance.now();
      await assert.rejects(runLoop(c, dir), re);
      assert.ok(performance.now() - t0 < 5000, `${name}: failed fast`);
      const s = RunStore.open(dir, { readonly: true });
      try {
        assert.equal(s.getRun(), undefined, `${name}: no run recorded`);
      } finally {
        s.close();
      }
    };
    await fails(cfg(wideFactory), /recursive: the world seed model .* and the factory .* are not the same model family \(seed vs factory: hidden_size 16 vs 32/, 'arch');
    await fails(cfg(bpeFactory), /recursive: .* use different tokenizers \(259 vs 2\d\d tokens, first difference at id 259\)/, 'tokenizer');
    await fails(cfg(sameFactory, noTok), /recursive: the world seed model .*no-tok has no tokenizer.json/, 'no-tokenizer');
    await fails(cfg(sameFactory, seed, [expert, wideExpert]), /recursive: expert .*wide-expert does not have the seed's architecture \(seed vs expert: intermediate_size 32 vs 48\)/, 'expert');
    await fails(cfg(join(tmp.path, 'missing')), /recursive: the factory \(factory.dir\) .*missing is not a Llama folder/, 'missing');
  } finally {
    tmp.cleanup();
  }
});
