/**
 * Complete checks of a loop config, so that a bad value is refused before the run's store is
 * created (a rejected config never leaves a `run.sqlite` behind to block the corrected rerun):
 * - `checkConfigTypes` (called by resolveConfig): the type and range of every field;
 * - `checkRunPaths` (called by `selfdev run` before the loop starts): every path the loop will read,
 *   and every model folder through the shared model reader (config.json against the tensors,
 *   tokenizer.json), the experts against the seed's architecture.
 */
import { lstatSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { LoopConfig } from './config.ts';
import type { TensorKind } from '../sandbox/types.ts';
import { readRegularText } from '../io/files.ts';
import { CheckpointError } from '../io/errors.ts';
import { readLlamaFolder, type LlamaSpec } from '../io/model-config.ts';
import { parseGsm8kJsonl } from '../eval/gsm8k.ts';

const KINDS: TensorKind[] = ['attention', 'mlp', 'embedding', 'norm', 'other'];

/** Largest values that size work or memory from the config (far beyond any sensible run). */
export const RUN_LIMITS = { samplesPerIteration: 100_000, iterations: 10_000, workers: 64 };

export type ParsedTensorFilter = { kind: 'all' } | { kind: 're'; re: RegExp } | { kind: 'kinds'; kinds: TensorKind[] };

/** The loop's tensor filter: `all`, `re:REGEX`, or a comma list of kinds. Throws naming `where`. */
export function parseTensorFilter(filter: unknown, where = 'tensorFilter'): ParsedTensorFilter {
  if (typeof filter !== 'string' || filter.trim() === '') throw new Error(`${where} must be all, re:REGEX or a comma list of ${KINDS.join(', ')}, got ${JSON.stringify(filter)}`);
  if (filter === 'all') return { kind: 'all' };
  if (filter.startsWith('re:')) {
    try {
      return { kind: 're', re: new RegExp(filter.slice(3)) };
    } catch (e) {
      throw new Error(`${where} ${JSON.stringify(filter)}: not a valid regular expression (${(e as Error).message})`);
    }
  }
  const kinds = filter.split(',').map((s) => s.trim()) as TensorKind[];
  for (const k of kinds) if (!KINDS.includes(k)) throw new Error(`${where} ${JSON.stringify(filter)}: unknown kind '${k}' (use all, re:REGEX, or a comma list of ${KINDS.join(', ')})`);
  return { kind: 'kinds', kinds };
}

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const show = (v: unknown) => JSON.stringify(v) ?? String(v);

/** Type and range of every field of a resolved config (beyond what resolveConfig checks inline). */
export function checkConfigTypes(c: LoopConfig, where: string): void {
  const fail = (msg: string): never => {
    throw new Error(`${where}: ${msg}`);
  };
  const str = (v: unknown, n: string) => {
    if (typeof v !== 'string' || v.trim() === '') fail(`${n} must be a non-empty string, got ${show(v)}`);
  };
  const bool = (v: unknown, n: string) => {
    if (typeof v !== 'boolean') fail(`${n} must be true or false, got ${show(v)}`);
  };
  const num = (v: unknown, n: string, ok: (x: number) => boolean, range: string) => {
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) fail(`${n} must be a number ${range}, got ${show(v)}`);
  };
  const int = (v: unknown, n: string, min: number, max = Number.MAX_SAFE_INTEGER) => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) fail(`${n} must be an integer from ${min} to ${max}, got ${show(v)}`);
  };
  str(c.name, 'name');
  int(c.seed, 'seed', Number.MIN_SAFE_INTEGER);
  int(c.iterations, 'iterations', 1, RUN_LIMITS.iterations);
  int(c.samplesPerIteration, 'samplesPerIteration', 1, RUN_LIMITS.samplesPerIteration);
  int(c.workers, 'workers', 1, RUN_LIMITS.workers);
  if (!isObj(c.temperature)) fail('temperature must be a mapping {t1, decay}');
  num(c.temperature.t1, 'temperature.t1', (x) => x >= 0, '≥ 0');
  num(c.temperature.decay, 'temperature.decay', (x) => x >= 0, '≥ 0');
  bool(c.failedAsRejected, 'failedAsRejected');
  try {
    parseTensorFilter(c.tensorFilter);
  } catch (e) {
    fail((e as Error).message);
  }
  bool(c.eval.calculator, 'eval.calculator');
  const d = c.dpo;
  num(d.beta, 'dpo.beta', (x) => x > 0, '> 0');
  num(d.lr, 'dpo.lr', (x) => x > 0, '> 0');
  num(d.nllAlpha, 'dpo.nllAlpha', (x) => x >= 0, '≥ 0');
  if (d.maxLen !== undefined) int(d.maxLen, 'dpo.maxLen', 2);
  if (d.command !== undefined) str(d.command, 'dpo.command');
  const f = c.factory as unknown as Record<string, unknown>;
  const keys: Record<string, string[]> = { corpus: ['kind'], builtin: ['kind', 'dir', 'batchSize', 'maxTokens', 'maxPromptTokens'], openai: ['kind', 'url', 'model', 'maxTokens'], llamacpp: ['kind', 'path', 'maxTokens'] };
  const allowed = keys[f.kind as string];
  if (allowed) for (const k of Object.keys(f)) if (!allowed.includes(k)) fail(`unknown key factory.${k} for factory.kind ${f.kind} (known: ${allowed.join(', ')})`);
  if (f.kind === 'builtin') str(f.dir, 'factory.dir');
  if (f.kind === 'openai') {
    if (typeof f.url !== 'string' || !/^https?:\/\//.test(f.url)) fail(`factory.url must be an http(s) URL, got ${show(f.url)}`);
    str(f.model, 'factory.model');
  }
  if (f.kind === 'llamacpp') str(f.path, 'factory.path');
  for (const k of ['batchSize', 'maxTokens']) if (f[k] !== undefined) int(f[k], `factory.${k}`, 1);
  if (f.maxPromptTokens !== undefined) int(f.maxPromptTokens, 'factory.maxPromptTokens', 1);
  const w = c.world as unknown as Record<string, unknown>;
  str(w.seedModel, 'world.seedModel');
  (w.experts as unknown[]).forEach((e, i) => str(e, `world.experts[${i}]`));
  (w.oodExperts as unknown[]).forEach((e, i) => str(e, `world.oodExperts[${i}]`));
  for (const k of ['dev', 'test', 'select', 'algorithms', 'example']) str(w[k], `world.${k}`);
  c.baselines.lambdas.forEach((l, i) => num(l, `baselines.lambdas[${i}]`, () => true, '(finite)'));
}

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

const ARCH_FIELDS: Array<keyof LlamaSpec> = ['vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'head_dim', 'tie_word_embeddings'];

/**
 * Every path a run reads, checked before the store is created (relative paths against `root`): the
 * seed, experts and OOD experts as complete Llama folders of one architecture, the benchmark files as
 * GSM8k JSONL, the algorithms folder and the example program, the factory's model or file; and
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
      return readLlamaFolder(p(dir));
    } catch (e) {
      return fail(`${field}: ${e instanceof CheckpointError ? e.message : (e as Error).message}`);
    }
  };
  const seed = model(c.world.seedModel, 'world.seedModel');
  const sameArch = (s: LlamaSpec, field: string, dir: string) => {
    const diff = ARCH_FIELDS.find((k) => s[k] !== seed[k]);
    if (diff) fail(`${field}: ${JSON.stringify(dir)} has ${diff} ${s[diff]}, the seed model has ${seed[diff]} (experts must share the seed's architecture)`);
  };
  c.world.experts.forEach((e, i) => sameArch(model(e, `world.experts[${i}]`), `world.experts[${i}]`, e));
  c.world.oodExperts.forEach((e, i) => sameArch(model(e, `world.oodExperts[${i}]`), `world.oodExperts[${i}]`, e));
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

/** Tokens of the loop's factory prompt under the builtin factory's tokenizer. */
async function factoryPromptTokens(c: LoopConfig, root: string): Promise<number> {
  const { loadPromptFiles, buildPrompt } = await import('../factory/prompt.ts');
  const { Tokenizer } = await import('../nn/tokenizer.ts');
  const files = loadPromptFiles(root, resolve(root, c.world.example));
  const prompt = buildPrompt({ apiReference: files.apiReference, example: files.example });
  const dir = c.factory.kind === 'builtin' ? resolve(root, c.factory.dir) : root;
  return Tokenizer.load(dir).encode(prompt.text).length;
}
