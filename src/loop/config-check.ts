/**
 * Type and range checks of a loop config, so that a bad value is refused before the run's store is
 * created (a rejected config never leaves a `run.sqlite` behind to block the corrected rerun):
 * `checkConfigTypes` (called by resolveConfig) checks every field. The paths a run reads are checked
 * by `checkRunPaths` (run-paths.ts).
 */
import { parseTensorFilter } from '../merge/tensor-filter.ts';

/** Largest values that size work or memory from the config (far beyond any sensible run). */
export const RUN_LIMITS = { samplesPerIteration: 100_000, iterations: 10_000, workers: 64 };

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const show = (v: unknown) => JSON.stringify(v) ?? String(v);

/**
 * Type and range of every field of a resolved config (beyond what resolveConfig checks inline). The
 * config is read as untyped data (a LoopConfig from resolveConfig; its types are what is checked
 * here, so this module does not import config.ts, which calls it).
 */
export function checkConfigTypes(config: object, where: string): void {
  const c = config as Record<string, any>;
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
  (c.baselines.lambdas as unknown[]).forEach((l, i) => num(l, `baselines.lambdas[${i}]`, () => true, '(finite)'));
}
