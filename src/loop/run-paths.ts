/**
 * Every path a run reads, checked by `selfdev run` before the loop starts and before the store is
 * created: every model folder through the shared model reader (config.json against the tensors,
 * tokenizer.json), the experts against the seed's architecture, the benchmark files, the algorithms
 * folder, the example program and the factory's model or file.
 */
import { lstatSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { LoopConfig } from './config.ts';
import { readRegularText } from '../io/files.ts';
import { CheckpointError } from '../io/errors.ts';
import { checkTokenizerFile, readLlamaFolder, type LlamaSpec } from '../io/model-config.ts';
import { parseGsm8kJsonl } from '../eval/gsm8k.ts';
import { openStreamWorld } from './stream-eval.ts';

/** What kind of entry `path` is: 'file', 'dir', 'other' or null (absent). */
function kindAt(path: string): 'file' | 'dir' | 'other' | null {
  try {
    const st = statSync(path);
    return st.isFile() ? 'file' : st.isDirectory() ? 'dir' : 'other';
  } catch {
    try {
      lstatSync(path);
      return 'other'; // a dangling link
    } catch {
      return null;
    }
  }
}

const ARCH_FIELDS: Array<keyof LlamaSpec> = ['model_type', 'qkv_bias', 'o_bias', 'vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'head_dim', 'tie_word_embeddings'];

/**
 * Every path a run reads, checked before the store is created (relative paths against `root`): the
 * seed, experts and OOD experts as complete Llama folders of one architecture, the benchmark files
 * and the shot pool (eval.train) as GSM8k JSONL, the algorithms folder and the example program, the factory's model or file; and
 * dpo.maxLen against the builtin factory (it must leave room for a completion after the prompt).
 */
export async function checkRunPaths(c: LoopConfig, root: string, where: string): Promise<void> {
  const p = (x: string) => resolve(root, x);
  const fail = (msg: string): never => {
    throw new Error(`${where}: ${msg}`);
  };
  const model = (dir: string, field: string): LlamaSpec => {
    const k = kindAt(p(dir));
    if (k === null) fail(`${field}: model folder ${JSON.stringify(dir)} not found (${p(dir)})`);
    if (k !== 'dir') fail(`${field}: ${JSON.stringify(dir)} is not a folder`);
    try {
      // any tokenizer.json layout (the engine's byte-level one or the model's own, run by the tokenizers
      // library); well-formed, ids inside the embedding. The builtin factory's own check is in recursive.ts.
      const spec = readLlamaFolder(p(dir), { tokenizer: false });
      const tok = join(p(dir), 'tokenizer.json');
      if (kindAt(tok) !== 'file') throw new CheckpointError(tok, 'tokenizer.json is missing (the model folder needs its tokenizer)');
      checkTokenizerFile(tok, { vocabSize: spec.vocab_size });
      return spec;
    } catch (e) {
      return fail(`${field}: ${e instanceof CheckpointError ? e.message : (e as Error).message}`);
    }
  };
  if (c.merge?.stream) checkStreamWorld(c, p, fail);
  else {
    const seed = model(c.world.seedModel, 'world.seedModel');
    const sameArch = (s: LlamaSpec, field: string, dir: string) => {
      const diff = ARCH_FIELDS.find((k) => s[k] !== seed[k]);
      if (diff) fail(`${field}: ${JSON.stringify(dir)} has ${diff} ${s[diff]}, the seed model has ${seed[diff]} (experts must share the seed's architecture)`);
    };
    c.world.experts.forEach((e, i) => sameArch(model(e, `world.experts[${i}]`), `world.experts[${i}]`, e));
    c.world.oodExperts.forEach((e, i) => sameArch(model(e, `world.oodExperts[${i}]`), `world.oodExperts[${i}]`, e));
  }
  for (const k of ['dev', 'test', 'select'] as const) {
    const f = c.world[k];
    const kind = kindAt(p(f));
    if (kind === null) fail(`world.${k}: file ${JSON.stringify(f)} not found (${p(f)})`);
    try {
      parseGsm8kJsonl(readRegularText(p(f), `world.${k} file`), p(f));
    } catch (e) {
      fail(`world.${k}: ${(e as Error).message}`);
    }
  }
  if (c.eval.train !== undefined) {
    // the shot pool of eval.shots (eval-protocol.ts): a GSM8k file
    if (kindAt(p(c.eval.train)) === null) fail(`eval.train: file ${JSON.stringify(c.eval.train)} not found (${p(c.eval.train)}): the shot pool of eval.shots ${c.eval.shots} (set eval.train, or eval.shots: 0)`);
    try {
      parseGsm8kJsonl(readRegularText(p(c.eval.train), 'eval.train file'), p(c.eval.train));
    } catch (e) {
      fail(`eval.train: ${(e as Error).message}`);
    }
  }
  if (kindAt(p(c.world.algorithms)) !== 'dir') fail(`world.algorithms: ${JSON.stringify(c.world.algorithms)} is not a folder (${p(c.world.algorithms)})`);
  if (kindAt(p(c.world.example)) !== 'file') fail(`world.example: ${JSON.stringify(c.world.example)} is not a file (${p(c.world.example)})`);
  const f = c.factory;
  if (f.kind === 'builtin') {
    const spec = model(f.dir, 'factory.dir');
    if (c.dpo.maxLen !== undefined) {
      if (c.dpo.maxLen > spec.max_position_embeddings) fail(`dpo.maxLen ${c.dpo.maxLen} is more than the factory's max_position_embeddings ${spec.max_position_embeddings}`);
      const promptTokens = f.maxPromptTokens ?? (await factoryPromptTokens(c, root));
      // bos + the prompt + at least one completion token
      if (c.dpo.maxLen < promptTokens + 2) fail(`dpo.maxLen ${c.dpo.maxLen} leaves no room for a completion: the factory prompt is ${promptTokens} tokens (dpo.maxLen must be at least ${promptTokens + 2})`);
    }
  } else if (f.kind === 'llamacpp') {
    if (kindAt(p(f.path)) !== 'file') fail(`factory.path: ${JSON.stringify(f.path)} is not a file (${p(f.path)})`);
  }
}

/**
 * merge.stream: the model folders as the streamed merge world reads them, whatever the architecture
 * (headers, config.json, tensors; no engine, no GPU): every folder exists and holds readable
 * safetensors, every selected tensor of the seed is in every expert with its shape, and one
 * candidate's memory bound fits merge.maxMemory.
 */
function checkStreamWorld(c: LoopConfig, p: (x: string) => string, fail: (msg: string) => never): void {
  const dirs: Array<[string, string]> = [[c.world.seedModel, 'world.seedModel'], ...c.world.experts.map((e, i): [string, string] => [e, `world.experts[${i}]`]), ...c.world.oodExperts.map((e, i): [string, string] => [e, `world.oodExperts[${i}]`])];
  for (const [d, field] of dirs) {
    const k = kindAt(p(d));
    if (k === null) fail(`${field}: model folder ${JSON.stringify(d)} not found (${p(d)})`);
    if (k !== 'dir') fail(`${field}: ${JSON.stringify(d)} is not a folder`);
  }
  for (const [experts, field] of [[c.world.experts, 'world.experts'], [c.world.oodExperts, 'world.oodExperts']] as const) {
    if (experts.length === 0) continue;
    try {
      openStreamWorld(c, p(c.world.seedModel), experts.map(p)).close();
    } catch (e) {
      fail(`${field}: ${(e as Error).message}`);
    }
  }
}

/** Tokens of the loop's factory prompt under the builtin factory's tokenizer. */
async function factoryPromptTokens(c: LoopConfig, root: string): Promise<number> {
  const { loadPromptFiles, buildPrompt } = await import('../factory/prompt.ts');
  const { Tokenizer } = await import('../nn/tokenizer.ts');
  const files = loadPromptFiles(root, resolve(root, c.world.example));
  const prompt = buildPrompt({ apiReference: files.apiReference, example: files.example });
  const dir = c.factory.kind === 'builtin' ? resolve(root, c.factory.dir) : root;
  return Tokenizer.load(dir).encode(prompt.text).length;
}
