/**
 * mergekit-compatible merge configuration (YAML), parsed and validated before any tensor is read.
 *
 * Supported (mergekit semantics): merge_method, base_model, models[].model (local folders),
 * models[].parameters, global parameters, values that are scalars, gradients (lists of numbers
 * interpolated across layers) or filter lists ([{filter, value}]), dtype, out_dtype,
 * tokenizer_source / tokenizer.source (base | <model>).
 * selfdev extensions: task_vector_base (task vectors relative to another model), include_tensors /
 * exclude_tensors (restrict the merge to some tensors; the rest is copied from the base model),
 * algorithm (the program file for merge_method: custom).
 * Anything else mergekit has (slices, modules, union tokenizers, LoRA "+" paths, …) is rejected
 * with a message saying so, never silently ignored.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import YAML from 'yaml';
import { parseDTypeName, type FloatDType } from '../tensor/dtype.ts';
import { CheckpointError } from '../io/errors.ts';
import { readRegularText } from '../io/files.ts';

/** A parameter value as written in the config: scalar, gradient, or filter list. */
export type RawValue = number | boolean | number[] | Array<{ filter?: string; value: number | boolean | number[] }>;

export interface ModelEntry {
  /** Absolute path of the model folder. */
  path: string;
  /** The path as written in the config (for messages). */
  spec: string;
  parameters: Record<string, RawValue>;
}

export interface MergeConfig {
  method: string;
  base: ModelEntry | null;
  /** Models in config order, as written (may include the base model's entry). */
  models: ModelEntry[];
  parameters: Record<string, RawValue>;
  dtype: FloatDType | null;
  outDtype: FloatDType | null;
  /** Absolute path of the model whose tokenizer files are copied (null: base, or first model). */
  tokenizerSource: string | null;
  taskVectorBase: ModelEntry | null;
  includeTensors: string[];
  excludeTensors: string[];
  /** For merge_method: custom — absolute path of the algorithm source. */
  algorithm: string | null;
  /** Directory relative paths were resolved against (the config file's folder). */
  baseDir: string;
  /** The config file (an input the output may not overwrite), when read from one. */
  configFile?: string;
  /** allow_non_finite: write NaN / ±Inf results instead of stopping at the first tensor that has them. */
  allowNonFinite: boolean;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const TOP_KEYS = new Set([
  'merge_method', 'base_model', 'models', 'parameters', 'dtype', 'out_dtype', 'tokenizer_source', 'tokenizer',
  'task_vector_base', 'include_tensors', 'exclude_tensors', 'algorithm', 'name', 'allow_non_finite',
]);
const UNSUPPORTED_TOP: Record<string, string> = {
  slices: 'slices (frankenmerges over layer ranges) are not supported yet; list whole models under `models:`',
  modules: 'modules (per-module merges) are not supported yet',
  chat_template: 'chat_template is not supported yet; the tokenizer source\'s files are copied as they are',
  random_seed: 'set the seed with `selfdev merge --seed N`, not in the config',
};

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Largest finite float32: every merge computes in float32, so a parameter beyond it would be ±Inf there. */
export const F32_MAX = 3.4028234663852886e38;

function checkValue(v: unknown, where: string): RawValue {
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new ConfigError(`${where}: value must be a finite number, got ${v}`);
    if (Math.abs(v) > F32_MAX) throw new ConfigError(`${where}: ${v} is outside the float32 range (|x| ≤ 3.4e38) that merges compute in`);
    return v;
  }
  if (typeof v === 'boolean') return v;
  if (Array.isArray(v)) {
    if (v.length === 0) throw new ConfigError(`${where}: empty list`);
    if (v.every((x) => typeof x === 'number')) {
      for (const x of v) if (!Number.isFinite(x)) throw new ConfigError(`${where}: gradient values must be finite numbers`);
      for (const x of v) if (Math.abs(x) > F32_MAX) throw new ConfigError(`${where}: ${x} is outside the float32 range (|x| ≤ 3.4e38) that merges compute in`);
      return v as number[];
    }
    if (v.every(isPlainObject)) {
      return v.map((e, i) => {
        for (const k of Object.keys(e)) if (k !== 'filter' && k !== 'value') throw new ConfigError(`${where}[${i}]: unknown key '${k}' (expected filter, value)`);
        if (!('value' in e)) throw new ConfigError(`${where}[${i}]: missing 'value'`);
        if (e.filter !== undefined && typeof e.filter !== 'string') throw new ConfigError(`${where}[${i}].filter must be a string`);
        if (typeof e.filter === 'string') checkPattern(e.filter, `${where}[${i}].filter`);
        const inner = checkValue(e.value, `${where}[${i}].value`);
        if (Array.isArray(inner) && inner.length > 0 && typeof inner[0] !== 'number') throw new ConfigError(`${where}[${i}].value: filter lists cannot nest`);
        return { filter: e.filter as string | undefined, value: inner as number | boolean | number[] };
      });
    }
    throw new ConfigError(`${where}: a list must be all numbers (a gradient) or all {filter, value} entries`);
  }
  if (typeof v === 'string') throw new ConfigError(`${where}: expected a number, boolean or list, got the string '${v}'`);
  throw new ConfigError(`${where}: expected a number, boolean or list, got ${v === null ? 'null' : typeof v}`);
}

function checkParams(p: unknown, where: string): Record<string, RawValue> {
  if (p === undefined || p === null) return {};
  if (!isPlainObject(p)) throw new ConfigError(`${where} must be a mapping of parameter names to values`);
  const out: Record<string, RawValue> = {};
  for (const [k, v] of Object.entries(p)) out[k] = checkValue(v, `${where}.${k}`);
  return out;
}

export function resolveModelPath(spec: string, baseDir: string, where: string): string {
  if (spec.includes('+')) throw new ConfigError(`${where}: '${spec}': LoRA adapters ("model+lora") are not supported yet`);
  if (/^[\w.-]+\/[\w.-]+(@[\w.-]+)?$/.test(spec) && !existsSync(spec) && !existsSync(resolve(baseDir, spec)))
    throw new ConfigError(`${where}: '${spec}' looks like a Hugging Face Hub id, and no local folder has that path; selfdev works offline: download the model first and give its folder`);
  const candidates = isAbsolute(spec) ? [spec] : [resolve(process.cwd(), spec), resolve(baseDir, spec)];
  for (const c of candidates) if (existsSync(c) && statSync(c).isDirectory()) return c;
  throw new ConfigError(`${where}: model folder '${spec}' not found (looked in ${[...new Set(candidates)].join(' and ')})`);
}

function modelSpec(x: unknown, where: string): string {
  if (typeof x === 'string' && x.trim() !== '') return x.trim();
  if (isPlainObject(x) && typeof x.model === 'string') return modelSpec(x.model, where);
  throw new ConfigError(`${where} must be a model folder path`);
}

/**
 * The one tensor-name pattern syntax of a merge config (include_tensors, exclude_tensors and the
 * `filter` of parameter lists): `/regex/` (a JavaScript regular expression, tested anywhere in the
 * name), `*` (everything), else a substring. Throws a ConfigError naming `where` for an invalid regex.
 */
export function checkPattern(s: string, where: string): void {
  if (s.length === 0) throw new ConfigError(`${where} must be a non-empty string (a substring, or /regex/)`);
  if (isRegexPattern(s)) {
    try {
      compiled(s);
    } catch (e) {
      throw new ConfigError(`${where}: bad regex ${s}: ${(e as Error).message}`);
    }
  } else if (s.startsWith('/')) {
    // tensor names never contain '/': a leading '/' means a /regex/ that is not written as one
    throw new ConfigError(`${where}: ${JSON.stringify(s)} starts with / but is not a /regex/ (write /regex/ without flags, or a substring)`);
  }
}

function isRegexPattern(s: string): boolean {
  return s.length > 2 && s.startsWith('/') && s.endsWith('/');
}
const regexCache = new Map<string, RegExp>();
function compiled(pattern: string): RegExp {
  let re = regexCache.get(pattern);
  if (!re) {
    re = new RegExp(pattern.slice(1, -1));
    regexCache.set(pattern, re);
  }
  return re;
}

function patternList(x: unknown, where: string): string[] {
  if (x === undefined || x === null) return [];
  const list = typeof x === 'string' ? [x] : x;
  if (!Array.isArray(list) || !list.every((s) => typeof s === 'string' && s.length > 0))
    throw new ConfigError(`${where} must be a list of non-empty strings (substrings, or /regex/)`);
  list.forEach((s: string, i: number) => checkPattern(s, `${where}[${i}]`));
  return list;
}

/** Parses a config object (already loaded from YAML). `baseDir` resolves relative paths. */
export function parseMergeConfig(raw: unknown, baseDir: string): MergeConfig {
  if (!isPlainObject(raw)) throw new ConfigError('the config must be a YAML mapping');
  for (const k of Object.keys(raw)) {
    if (UNSUPPORTED_TOP[k]) throw new ConfigError(UNSUPPORTED_TOP[k]);
    if (!TOP_KEYS.has(k)) throw new ConfigError(`unknown config key '${k}' (known: ${[...TOP_KEYS].join(', ')})`);
  }
  const method = raw.merge_method;
  if (typeof method !== 'string' || method === '') throw new ConfigError('merge_method is required (e.g. task_arithmetic, ties, slerp)');

  const models: ModelEntry[] = [];
  if (raw.models === undefined) throw new ConfigError('models is required: a list of {model: <folder>, parameters: {...}}');
  if (!Array.isArray(raw.models) || raw.models.length === 0) throw new ConfigError('models must be a non-empty list');
  raw.models.forEach((m, i) => {
    const where = `models[${i}]`;
    if (typeof m === 'string') {
      models.push({ spec: m, path: resolveModelPath(m, baseDir, where), parameters: {} });
      return;
    }
    if (!isPlainObject(m)) throw new ConfigError(`${where} must be {model: <folder>, parameters: {...}}`);
    for (const k of Object.keys(m)) if (k !== 'model' && k !== 'parameters') throw new ConfigError(`${where}: unknown key '${k}' (expected model, parameters)`);
    const spec = modelSpec(m.model, `${where}.model`);
    models.push({ spec, path: resolveModelPath(spec, baseDir, `${where}.model`), parameters: checkParams(m.parameters, `${where}.parameters`) });
  });

  let base: ModelEntry | null = null;
  if (raw.base_model !== undefined && raw.base_model !== null) {
    const spec = modelSpec(raw.base_model, 'base_model');
    const path = resolveModelPath(spec, baseDir, 'base_model');
    const listed = models.find((m) => m.path === path);
    base = { spec, path, parameters: listed ? listed.parameters : {} };
  }

  const dtype = raw.dtype === undefined || raw.dtype === null ? null : parseDt(raw.dtype, 'dtype');
  const outDtype = raw.out_dtype === undefined || raw.out_dtype === null ? null : parseDt(raw.out_dtype, 'out_dtype');

  if (raw.tokenizer_source !== undefined && raw.tokenizer !== undefined) throw new ConfigError('give either tokenizer_source or tokenizer, not both');
  let tokSpec: unknown = raw.tokenizer_source;
  if (raw.tokenizer !== undefined) {
    if (!isPlainObject(raw.tokenizer)) throw new ConfigError('tokenizer must be a mapping like {source: base}');
    for (const k of Object.keys(raw.tokenizer)) if (k !== 'source') throw new ConfigError(`tokenizer.${k} is not supported yet (only tokenizer.source)`);
    tokSpec = raw.tokenizer.source;
  }
  let tokenizerSource: string | null = null;
  if (tokSpec !== undefined && tokSpec !== null && tokSpec !== 'base') {
    if (typeof tokSpec !== 'string') throw new ConfigError('tokenizer source must be "base" or a model folder');
    if (tokSpec === 'union') throw new ConfigError('tokenizer source "union" is not supported yet (use base or one model)');
    const spec = tokSpec.startsWith('model:') ? tokSpec.slice(6) : tokSpec;
    tokenizerSource = resolveModelPath(spec, baseDir, 'tokenizer source');
  }

  let taskVectorBase: ModelEntry | null = null;
  if (raw.task_vector_base !== undefined && raw.task_vector_base !== null) {
    const spec = modelSpec(raw.task_vector_base, 'task_vector_base');
    taskVectorBase = { spec, path: resolveModelPath(spec, baseDir, 'task_vector_base'), parameters: {} };
  }

  let algorithm: string | null = null;
  if (raw.algorithm !== undefined) {
    if (typeof raw.algorithm !== 'string') throw new ConfigError('algorithm must be the path of a merge-algorithm file');
    algorithm = isAbsolute(raw.algorithm) ? raw.algorithm : resolve(baseDir, raw.algorithm);
    if (!existsSync(algorithm)) throw new ConfigError(`algorithm file '${raw.algorithm}' not found (${algorithm})`);
    if (!statSync(algorithm).isFile()) throw new ConfigError(`algorithm '${raw.algorithm}' is not a regular file (${algorithm})`);
    if (method !== 'custom') throw new ConfigError(`algorithm is only used with merge_method: custom (got ${method})`);
  } else if (method === 'custom') throw new ConfigError('merge_method: custom needs `algorithm: <file.js>`');
  if (raw.allow_non_finite !== undefined && typeof raw.allow_non_finite !== 'boolean') throw new ConfigError(`allow_non_finite must be true or false, got ${JSON.stringify(raw.allow_non_finite)}`);

  return {
    method,
    base,
    models,
    parameters: checkParams(raw.parameters, 'parameters'),
    dtype,
    outDtype,
    tokenizerSource,
    taskVectorBase,
    includeTensors: patternList(raw.include_tensors, 'include_tensors'),
    excludeTensors: patternList(raw.exclude_tensors, 'exclude_tensors'),
    algorithm,
    baseDir,
    allowNonFinite: raw.allow_non_finite === true,
  };
}

function parseDt(x: unknown, where: string): FloatDType {
  if (typeof x !== 'string') throw new ConfigError(`${where} must be a string like float32 or bfloat16`);
  try {
    return parseDTypeName(x);
  } catch (e) {
    throw new ConfigError(`${where}: ${(e as Error).message}`);
  }
}

/** Reads and parses a YAML config file; relative model paths resolve against cwd, then the file's folder. */
export function loadMergeConfig(file: string): MergeConfig {
  let text: string;
  try {
    text = readRegularText(file, 'config file', 64 << 20);
  } catch (e) {
    if (e instanceof CheckpointError) throw new ConfigError(`cannot read config ${file}: ${/ not found$/.test(e.problem) ? 'ENOENT (no such file)' : e.problem}`);
    throw new ConfigError(`cannot read config ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = YAML.parse(text, { uniqueKeys: true });
  } catch (e) {
    throw new ConfigError(`${file}: invalid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  try {
    return { ...parseMergeConfig(raw, dirname(resolve(file))), configFile: resolve(file) };
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(`${file}: ${e.message}`);
    throw e;
  }
}

/** True when `name` matches a pattern: a substring, or /regex/. */
export function matchesPattern(name: string, pattern: string): boolean {
  if (isRegexPattern(pattern)) return compiled(pattern).test(name);
  return pattern === '*' || name.includes(pattern);
}
