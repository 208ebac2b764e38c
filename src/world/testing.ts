/** Test helpers: a micro world (seed + experts as tiny random Llamas, a few bench problems). */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initBackend, Llama, makeConfig, saveModel, Tokenizer, Rng, train, encodePair } from '../nn/index.ts';
import { buildPrompt } from '../eval/prompt.ts';

export interface MicroWorld {
  seedModel: string;
  experts: string[];
  oodExperts: string[];
  dev: string;
  test: string;
  /** The selection split: the first `nSelect` problems of world/bench/select.jsonl (no expert is trained on them). */
  select: string;
}

/**
 * Writes a seed (random init) + `nExperts` + `nOod` experts into `dir`, and dev/test files of
 * `nDev`/`nTest`/`nSelect` problems from world/bench. With `trainSteps`, expert i is the seed trained to
 * answer the problems (dev ∪ test) with index ≡ i (mod number of experts) — so merges score
 * differently; otherwise experts are seeded perturbations (every model scores 0).
 */
export async function makeMicroWorld(dir: string, o: { nExperts?: number; nOod?: number; nDev?: number; nTest?: number; nSelect?: number; seed?: number; root?: string; trainSteps?: number } = {}): Promise<MicroWorld> {
  await initBackend();
  const root = o.root ?? process.cwd();
  const tok = new Tokenizer();
  const cfg = makeConfig({ vocab_size: tok.vocabSize, hidden_size: 32, num_attention_heads: 2, num_hidden_layers: 1, intermediate_size: 64, max_position_embeddings: 160 });
  const seedModel = Llama.init(cfg, o.seed ?? 1);
  const base = seedModel.getWeights();
  const save = (name: string, w: Map<string, Float32Array>) => {
    const m = Llama.fromWeights(cfg, w);
    saveModel(join(dir, name), m, tok);
    m.dispose();
    return join(dir, name);
  };
  const seedDir = save('seed', base);
  seedModel.dispose();
  const read = (src: string, n: number) => readFileSync(join(root, src), 'utf8').split('\n').filter(Boolean).slice(0, n);
  const devLines = read('world/bench/dev.jsonl', o.nDev ?? 6);
  const testLines = read('world/bench/test.jsonl', o.nTest ?? 6);
  const problems = [...devLines, ...testLines].map((l) => JSON.parse(l) as { question: string; answer: string });
  const expert = (k: number, of: number, salt: number) => {
    if (!o.trainSteps) {
      const rng = new Rng((o.seed ?? 1) * 1000 + salt);
      return new Map([...base].map(([n, a]) => [n, Float32Array.from(a, (v) => v + 0.05 * rng.normal())]));
    }
    const m = Llama.fromWeights(cfg, base);
    const ex = problems.filter((_, i) => i % of === k).map((p) => encodePair(tok, buildPrompt(p.question), ' #### ' + p.answer.split('#### ')[1]! + '\n\n'));
    train(m, tok, ex, { steps: o.trainSteps, lr: 1e-2, batchSize: ex.length, seqLen: 160, seed: salt, progress: false });
    const w = m.getWeights();
    m.dispose();
    return w;
  };
  const nE = o.nExperts ?? 2;
  const experts = Array.from({ length: nE }, (_, i) => save(`expert-${i}`, expert(i, nE, i + 1)));
  const nO = o.nOod ?? 1;
  const oodExperts = Array.from({ length: nO }, (_, i) => save(`ood-${i}`, expert((i + 1) % nO, nO, 100 + i)));
  mkdirSync(join(dir, 'bench'), { recursive: true });
  const write = (lines: string[], out: string) => {
    writeFileSync(join(dir, 'bench', out), lines.join('\n') + '\n');
    return join(dir, 'bench', out);
  };
  const selectLines = read('world/bench/select.jsonl', o.nSelect ?? 4);
  return { seedModel: seedDir, experts, oodExperts, dev: write(devLines, 'dev.jsonl'), test: write(testLines, 'test.jsonl'), select: write(selectLines, 'select.jsonl') };
}
