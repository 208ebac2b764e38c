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
  const keys: Record<string, string[]> = { corpus: ['kind'], builtin: ['kind', 'dir', 'batchSize', 'maxTokens', 'maxPromptTokens'], openai: OPENAI_FACTORY_KEYS, llamacpp: ['kind', 'path', 'maxTokens', 'maxPromptTokens'] };
  const allowed = keys[f.kind as string];
  if (allowed) for (const k of Object.keys(f)) if (!allowed.includes(k)) fail(`unknown key factory.${k} for factory.kind ${f.kind} (known: ${allowed.join(', ')})`);
  if (f.kind === 'builtin') str(f.dir, 'factory.dir');
  if (f.kind === 'openai') {
    if (typeof f.url !== 'string' || !/^https?:\/\//.test(f.url)) fail(`factory.url must be an http(s) URL, got ${show(f.url)}`);
    str(f.model, 'factory.model');
    checkOpenAIFactory(f, fail);
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

/** The keys of `factory` for kind openai (docs/real-llm.md, "Factory"). */
export const OPENAI_FACTORY_KEYS = ['kind', 'url', 'model', 'maxTokens', 'mode', 'concurrency', 'timeoutMs', 'retries', 'apiKeyEnv', 'extraBody', 'promptStyle', 'tokenizer', 'maxPromptTokens', 'server'];
const FACTORY_SERVER_KEYS = ['command', 'dir', 'readyTimeoutSec'];

/** factory.kind openai: every key's type and the combinations the factory needs. */
function checkOpenAIFactory(f: Record<string, unknown>, fail: (msg: string) => never): void {
  const posInt = (k: string, min = 1) => {
    const v = f[k];
    if (v !== undefined && (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min)) fail(`factory.${k} must be an integer ≥ ${min}, got ${show(v)}`);
  };
  posInt('concurrency');
  posInt('timeoutMs');
  posInt('retries', 0);
  if (f.mode !== undefined && f.mode !== 'chat' && f.mode !== 'completions') fail(`factory.mode must be chat or completions, got ${show(f.mode)}`);
  if (f.apiKeyEnv !== undefined && (typeof f.apiKeyEnv !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(f.apiKeyEnv))) fail(`factory.apiKeyEnv must be the name of an environment variable, got ${show(f.apiKeyEnv)}`);
  if (f.extraBody !== undefined && !isObj(f.extraBody)) fail(`factory.extraBody must be a mapping of request fields, got ${show(f.extraBody)}`);
  if (f.promptStyle !== undefined && f.promptStyle !== 'paper' && f.promptStyle !== 'builtin') fail(`factory.promptStyle must be paper (the paper's full prompt, for real LLMs) or builtin (the builtin model's own prompt, when it is served), got ${show(f.promptStyle)}`);
  const builtinStyle = f.promptStyle === 'builtin';
  if (builtinStyle && f.mode !== 'completions') fail('factory.promptStyle builtin sends token ids, which only /completions takes: set factory.mode: completions');
  if (!builtinStyle && (f.tokenizer !== undefined || f.maxPromptTokens !== undefined)) fail('factory.tokenizer and factory.maxPromptTokens belong to promptStyle: builtin (the paper style sends the whole prompt)');
  posInt('maxPromptTokens');
  if (f.tokenizer !== undefined && (typeof f.tokenizer !== 'string' || !f.tokenizer.trim())) fail(`factory.tokenizer must be a model folder, got ${show(f.tokenizer)}`);
  const srv = f.server;
  if (srv !== undefined) {
    if (!isObj(srv)) fail(`factory.server must be a mapping {command, dir, readyTimeoutSec?}, got ${show(srv)}`);
    const s = srv as Record<string, unknown>;
    for (const k of Object.keys(s)) if (!FACTORY_SERVER_KEYS.includes(k)) fail(`unknown key factory.server.${k} (known: ${FACTORY_SERVER_KEYS.join(', ')})`);
    for (const k of ['command', 'dir']) if (typeof s[k] !== 'string' || !(s[k] as string).trim()) fail(`factory.server.${k} must be a non-empty string (command: started with MODEL = the current factory folder, PORT; dir: the untrained factory's folder), got ${show(s[k])}`);
    if (s.readyTimeoutSec !== undefined && (typeof s.readyTimeoutSec !== 'number' || !(s.readyTimeoutSec > 0))) fail(`factory.server.readyTimeoutSec must be a number > 0, got ${show(s.readyTimeoutSec)}`);
  }
  if (builtinStyle && f.tokenizer === undefined && srv === undefined) fail('factory.promptStyle builtin needs factory.tokenizer (the served model\'s folder), or factory.server.dir');
}

export const SERVER_RELOAD_KEYS = ['url', 'method', 'body', 'timeoutSec'];

/**
 * eval.server.reload, resolved: `true` or `{}` = the defaults for `selfdev serve` (POST
 * /selfdev/load), a mapping {url, method, body, timeoutSec} otherwise; false / null = off (undefined).
 */
export function resolveServerReload(v: unknown, where: string): Record<string, unknown> | undefined {
  const fail = (msg: string): never => {
    throw new Error(`${where}: eval.server.reload${msg}`);
  };
  if (v === false || v === null || v === undefined) return undefined;
  if (v === true) return {};
  if (!isObj(v)) return fail(` must be true or a mapping {url, method, body, timeoutSec} (the request that makes the running server load $MODEL), got ${show(v)}`);
  for (const k of Object.keys(v)) if (!SERVER_RELOAD_KEYS.includes(k)) fail(`: unknown key eval.server.reload.${k} (known: ${SERVER_RELOAD_KEYS.join(', ')})`);
  if (v.url !== undefined && (typeof v.url !== 'string' || !/^https?:\/\//.test(v.url))) fail(`.url must be an http(s) URL (may contain $PORT), got ${show(v.url)}`);
  if (v.method !== undefined && v.method !== 'POST' && v.method !== 'PUT') fail(`.method must be POST or PUT, got ${show(v.method)}`);
  if (v.body !== undefined && !isObj(v.body)) fail(`.body must be a mapping (the JSON body; $MODEL and $PORT are replaced in its strings), got ${show(v.body)}`);
  if (v.timeoutSec !== undefined && (typeof v.timeoutSec !== 'number' || !(v.timeoutSec > 0))) fail(`.timeoutSec must be a number > 0, got ${show(v.timeoutSec)}`);
  return { ...v };
}
