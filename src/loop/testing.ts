/** Test helpers of the loop: worker liveness, a factory prompt with programs to teach a factory model. */
import { join } from 'node:path';
import { Llama, Tokenizer, makeConfig, saveModel, train, encodePair } from '../nn/index.ts';
import { RunStore } from '../store/store.ts';
import { buildPrompt as buildFactoryPrompt, loadPromptFiles, type FactoryPrompt } from '../factory/index.ts';

/** The micro world lives in src/world/testing.ts (re-exported for loop tests that import it from here). */
export { makeMicroWorld, type MicroWorld } from '../world/testing.ts';
import { makeMicroWorld, type MicroWorld } from '../world/testing.ts';

/** Whether a process with this pid exists (signal 0), for tests that check workers exit. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * For loop tests with a model factory: the loop's factory prompt (example algorithms/task_arithmetic.js),
 * its last `tailTokens` tokens under the byte-level tokenizer, and `exprs` as the merge programs a
 * factory writes (`return EXPR;`, closed by the prompt's stop string).
 */
export function loopPromptAndPrograms(tailTokens: number, exprs: string[], root = process.cwd()): { prompt: FactoryPrompt; tail: string; programs: string[] } {
  const files = loadPromptFiles(root, join(root, 'algorithms', 'task_arithmetic.js'));
  const prompt = buildFactoryPrompt({ apiReference: files.apiReference, example: files.example });
  const tok = new Tokenizer();
  const tail = tok.decode(tok.encode(prompt.text).slice(-tailTokens));
  const programs = exprs.map((e) => `function merge(taskVectors, ctx) {\n  return ${e};\n}${prompt.stop[0]}`);
  return { prompt, tail, programs };
}

/** Trains `model` in place (250 steps, lr 1e-2, seed 1) to write one of `programs` after `tail`. */
export function teachPrograms(model: Llama, tok: Tokenizer, tail: string, programs: string[], seqLen: number): void {
  train(model, tok, programs.map((p) => encodePair(tok, tail, p)), { steps: 250, lr: 1e-2, batchSize: programs.length, seqLen, seed: 1, progress: false });
}

/**
 * Saves at `dir` a tiny code model (byte-level tokenizer, hidden 32, one layer, context 128) taught
 * to write one of `exprs` as a merge program after the last 8 tokens of the loop's factory prompt: a
 * builtin factory for loop tests. The default programs (expert 0 alone, expert 1 alone, the seed)
 * score differently on a micro world, so DPO gets pairs.
 */
export function saveTaughtFactory(dir: string, exprs: string[] = ['taskVectors[0].mul(1)', 'taskVectors[1].mul(1)', 'taskVectors[0].mul(0)']): void {
  const tok = new Tokenizer();
  const { tail, programs } = loopPromptAndPrograms(8, exprs);
  const fm = Llama.init(makeConfig({ vocab_size: tok.vocabSize, hidden_size: 32, num_attention_heads: 2, num_hidden_layers: 1, intermediate_size: 64, max_position_embeddings: 128 }), 9);
  teachPrograms(fm, tok, tail, programs, 128);
  saveModel(dir, fm, tok);
  fm.dispose();
}

/** A loop config that runs in seconds: 2 iterations × 6 programs from the builtin factory at `factoryDir` (see saveTaughtFactory) on micro world `w`, DPO after each. */
export function builtinLoopConfig(w: MicroWorld, factoryDir: string): Record<string, unknown> {
  return {
    name: 'builtin', seed: 2, iterations: 2, samplesPerIteration: 6, tensorFilter: 'all', pWin: 0.2, pLose: 0.4,
    eval: { devSubset: 4, maxTokens: 10, batchSize: 8 }, topKTest: 2, baselines: { lambdas: [0.5] },
    dpo: { beta: 0.1, lr: 1e-3, epochs: 1, batchSize: 2 },
    factory: { kind: 'builtin', dir: factoryDir, maxPromptTokens: 8, maxTokens: 90 },
    world: w,
  };
}

/** In `dir`: a micro world (2 experts trained on disjoint problems, `nOod` OOD experts) and a taught builtin factory (saveTaughtFactory). */
export async function microBuiltinWorld(dir: string, nOod = 0): Promise<{ world: MicroWorld; factoryDir: string }> {
  const world = await makeMicroWorld(dir, { nExperts: 2, nOod, nDev: 4, nTest: 2, trainSteps: 60 });
  const factoryDir = join(dir, 'factory0');
  saveTaughtFactory(factoryDir);
  return { world, factoryDir };
}

/** Everything a run computed, in a form that does not depend on the order results arrived in. */
export function runSnapshot(runDir: string) {
  const s = RunStore.open(runDir, { readonly: true });
  try {
    const its = s.iterations();
    const hashes = [...new Set(its.flatMap((it) => s.samples(it.id).map((x) => x.hash)))].sort();
    const evals = hashes.map((h) => {
      const e = s.evaluationFor(h);
      return e && [h, e.verdict, e.message, e.devSubset, e.devStrict, e.devFlex, e.testStrict, e.testFlex, e.families];
    });
    const lb = s.leaderboard(100).map((r) => [r.rank, r.hash, r.devSubset, r.devStrict, r.devFlex, r.testStrict, r.testFlex]);
    const base = s.baselines().map((b) => [b.name, b.expertSet, JSON.stringify(b.params), b.selected, b.devStrict, b.testStrict]).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
    const tr = s.transfers().map((t) => [t.hash, t.sourceRank, t.devStrict, t.testStrict]).sort((a, b) => (a[1] as number) - (b[1] as number));
    const pairs = its.flatMap((it) => s.pairs(it.id).map((p) => [p.chosenHash, p.rejectedHash, p.chosenScore, p.rejectedScore, p.source])).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
    return { evals, lb, base, tr, pairs };
  } finally {
    s.close();
  }
}
