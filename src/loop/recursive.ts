/**
 * Recursive mode (config `recursive: true`, arm dpo): the factory and the merged models are one
 * model family, so after iteration t the merge of its best program becomes the factory of t+1.
 *
 * - Best program of iteration t: verdict ok with a full-dev score, highest `devStrict`, ties by the
 *   smaller hash. A program whose re-merge fails now is recorded as failed (as in the promotion
 *   stage) and the next one is taken; no valid program → no merged folder (the factory carries over).
 * - Its merge (seed + merged task vectors, the same `MergeWorld.merge` the evaluation ran, same
 *   ctx.seed) is written as a full Hugging Face folder `factory/merged-iter-t/` with the seed's
 *   config and tokenizer files (`saveMergedModel`, src/nn/checkpoint.ts; atomic: temp sibling,
 *   then rename; F32).
 * - Resume: a folder that opens as a complete checkpoint (`isCompleteCheckpoint`: config.json,
 *   tokenizer.json, every tensor of the seed's config with its shape, safetensors headers and sizes
 *   valid) is reused; anything else at that path is removed and rewritten.
 * - The merge world (seed, experts) stays fixed across iterations: only the factory changes.
 *
 * `checkRecursiveWorld` runs at run start, before any heavy work: the merged model must be loadable
 * by the builtin factory, i.e. the seed (and experts) have the factory's architecture and the
 * factory's tokenizer.
 */
import { existsSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readConfig, Tokenizer } from '../nn/index.ts';
import { isCompleteCheckpoint, saveMergedModel } from '../nn/checkpoint.ts';
import type { LlamaConfig } from '../nn/index.ts';
import type { RunStore } from '../store/store.ts';
import { scoreIn } from './selection.ts';
import type { LoopConfig } from './config.ts';
import type { ProgramEvaluator } from './pool.ts';

/** Folder (relative to the run folder) of iteration t's best merge. */
export function mergedCheckpointRel(t: number): string {
  return join('factory', `merged-iter-${t}`);
}

/** Architecture fields that must agree between the factory and the world's models. */
const ARCH_FIELDS = [
  'vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'head_dim',
  'tie_word_embeddings', 'rope_theta', 'rms_norm_eps', 'max_position_embeddings', 'bos_token_id', 'eos_token_id', 'pad_token_id',
] as const;

function archDiff(a: LlamaConfig, b: LlamaConfig): string[] {
  return ARCH_FIELDS.filter((k) => a[k] !== b[k]).map((k) => `${k} ${JSON.stringify(a[k])} vs ${JSON.stringify(b[k])}`);
}

/**
 * Recursive mode's preconditions, checked from config.json and tokenizer.json only (no weights
 * loaded): factory kind builtin; the seed model has a tokenizer.json our engine reads, the same
 * tokenizer as the factory (identical merges) and the same architecture; every expert has the
 * seed's architecture. Throws an error naming the folder and the mismatch.
 */
export function checkRecursiveWorld(cfg: LoopConfig, root: string): void {
  if (!cfg.recursive) return;
  const f = cfg.factory;
  if (f.kind !== 'builtin') throw new Error(`recursive: true needs factory.kind: builtin, got ${f.kind}`);
  const p = (x: string) => resolve(root, x);
  const seedDir = p(cfg.world.seedModel);
  const factoryDir = p(f.dir);
  const read = (dir: string, role: string) => {
    try {
      return readConfig(dir);
    } catch (e) {
      throw new Error(`recursive: the ${role} ${dir} is not a Llama folder the builtin factory can load: ${(e as Error).message}`);
    }
  };
  const tokenizer = (dir: string, role: string) => {
    if (!existsSync(join(dir, 'tokenizer.json'))) throw new Error(`recursive: the ${role} ${dir} has no tokenizer.json; the merged model inherits the seed's tokenizer and the builtin factory needs one`);
    try {
      return Tokenizer.load(dir);
    } catch (e) {
      throw new Error(`recursive: the ${role}'s tokenizer cannot be used by the builtin factory: ${(e as Error).message}`);
    }
  };
  const seedCfg = read(seedDir, 'world seed model');
  const factoryCfg = read(factoryDir, 'factory (factory.dir)');
  const diff = archDiff(seedCfg, factoryCfg);
  if (diff.length) throw new Error(`recursive: the world seed model ${seedDir} and the factory ${factoryDir} are not the same model family (seed vs factory: ${diff.join(', ')}); the merged model must be loadable as the next factory`);
  const st = tokenizer(seedDir, 'world seed model');
  const ft = tokenizer(factoryDir, 'factory (factory.dir)');
  let at = -1;
  for (let i = 0; i < Math.max(st.tokens.length, ft.tokens.length) && at < 0; i++) if (st.tokens[i] !== ft.tokens[i]) at = i;
  if (at >= 0) throw new Error(`recursive: the world seed model ${seedDir} and the factory ${factoryDir} use different tokenizers (${st.vocabSize} vs ${ft.vocabSize} tokens, first difference at id ${at}); the merged model (seed tokenizer) must read the factory's prompt the same way`);
  for (const e of cfg.world.experts) {
    const d = archDiff(seedCfg, read(p(e), 'expert'));
    if (d.length) throw new Error(`recursive: expert ${p(e)} does not have the seed's architecture (seed vs expert: ${d.join(', ')})`);
  }
}

/** Iteration `iterationId`'s programs with a full-dev score, best first in the run's ranking metric (ties: smaller hash). */
export function rankByFullDev(store: RunStore, iterationId: number): { hash: string; score: number }[] {
  const metric = store.rankMetric();
  return store
    .iterationPrograms(iterationId)
    .flatMap((r) => {
      const score = scoreIn(r, 'dev', metric);
      return r.verdict === 'ok' && score !== null ? [{ hash: r.hash, score }] : [];
    })
    .sort((a, b) => b.score - a.score || (a.hash < b.hash ? -1 : a.hash > b.hash ? 1 : 0));
}

/**
 * Step (4a) of iteration t in recursive mode: makes sure `factory/merged-iter-t/` holds the merge of
 * the iteration's best program and records it on the iteration row. `evaluator()` gives a
 * ProgramEvaluator over the run's world (only called when a merge has to be computed).
 * Returns the folder relative to runDir, or null when the iteration has no valid program.
 */
export async function ensureMergedFactory(o: {
  cfg: LoopConfig;
  root: string;
  runDir: string;
  t: number;
  iterationId: number;
  store: RunStore;
  seedOf: (hash: string) => number;
  evaluator: () => Promise<ProgramEvaluator>;
}): Promise<string | null> {
  const { store, iterationId } = o;
  const rel = mergedCheckpointRel(o.t);
  const out = join(o.runDir, rel);
  const seedDir = resolve(o.root, o.cfg.world.seedModel);
  const it = store.iterationById(iterationId);
  if (!it) throw new Error(`recursive: no iteration with id ${iterationId}`);
  const ranked = rankByFullDev(store, iterationId);
  // resume: the program recorded with the folder, or (killed between the rename and the store update) the current best
  const recorded = it.mergedCheckpoint === rel ? it.mergedProgram : null;
  if ((recorded ?? ranked[0]?.hash) && isCompleteCheckpoint(out, readConfig(seedDir))) {
    const hash = recorded ?? ranked[0]!.hash;
    if (!recorded) store.updateIteration(iterationId, { mergedCheckpoint: rel, mergedProgram: hash });
    return rel;
  }
  rmSync(out, { recursive: true, force: true }); // absent, or incomplete (not written by the atomic writer)
  for (const cand of ranked) {
    const ev = await o.evaluator();
    const m = await ev.mergeProgram(store.programByHash(cand.hash)!.code, o.seedOf(cand.hash));
    if (!('weights' in m)) {
      // as in the promotion stage: a program that cannot be re-merged leaves the valid set
      store.recordEvaluation({ hash: cand.hash, verdict: m.verdict, message: `failed on re-merge for the recursive factory: ${m.message}` });
      continue;
    }
    saveMergedModel(out, seedDir, ev.world.config, m.weights, 'F32');
    store.updateIteration(iterationId, { mergedCheckpoint: rel, mergedProgram: cand.hash });
    return rel;
  }
  store.updateIteration(iterationId, { mergedCheckpoint: null, mergedProgram: null });
  return null;
}
