/**
 * Merging in memory with the registry's method implementations, called per tensor exactly as the
 * file engine (engine.ts) calls them: same parameter resolution, same per-tensor seeds
 * (`tensorSeed(seed, name)`), inputs decoded from the stored dtype, results rounded to the base
 * model's stored dtype; tensors outside the tensor filter come from the merge's base model
 * (mergekit's include_tensors semantics). So the weights are bit-identical to what `selfdev merge`
 * writes for `mergekitConfig(spec)` (checked by src/world/baselines.test.ts). Used by the tiny
 * world's baselines and probe.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Checkpoint } from '../io/checkpoint.ts';
import { decodeToF32, encodeFromF32, isFloatDType, type FloatDType } from '../tensor/dtype.ts';
import { readConfig } from '../nn/checkpoint.ts';
import type { LlamaConfig } from '../nn/model.ts';
import { matchesPattern, type RawValue } from './config.ts';
import { layerOf, resolveParams, tensorSeed } from './params.ts';
import { getMethod } from './registry.ts';
import { tensorSelector, type TensorFilter } from './tensor-filter.ts';
import type { ParamValue } from './types.ts';

/** A model as it is, or a merge with a registry method (one row of a baselines grid). */
export interface MergeSpec {
  /** Selection group (baselines: the best config by dev of each family is scored on test). */
  family: string;
  /** Human-readable parameters (table column). */
  label: string;
  kind: 'model' | 'merge';
  /** kind 'merge': registry method name, base model folder, other model folders. */
  method?: string;
  base?: string;
  models?: string[];
  /** Global parameters (mergekit `parameters:`). */
  params?: Record<string, ParamValue>;
  /** Parameters set on every model entry (mergekit `models[].parameters`). */
  modelParams?: Record<string, ParamValue>;
  /** Parameters of each model entry in turn (over `modelParams`), e.g. a weight per expert. */
  modelParamsEach?: Array<Record<string, ParamValue>>;
}

export interface LoadedModel {
  dir: string;
  config: LlamaConfig;
  names: string[];
  shapes: Map<string, number[]>;
  dtypes: Map<string, FloatDType>;
  weights: Map<string, Float32Array>;
  hash: string;
}

/** Loads every float tensor of a model folder (f32), its stored dtypes, and a content hash. */
export function loadWeights(dir: string): LoadedModel {
  if (!existsSync(join(dir, 'config.json'))) throw new Error(`${dir}: not a model folder (no config.json)`);
  const config = readConfig(dir);
  const ck = Checkpoint.open(dir);
  try {
    const h = createHash('sha256');
    const names = ck.tensorNames();
    const shapes = new Map<string, number[]>();
    const dtypes = new Map<string, FloatDType>();
    const weights = new Map<string, Float32Array>();
    for (const n of names) {
      const info = ck.info(n);
      if (!isFloatDType(info.dtype)) throw new Error(`${dir}: tensor ${n} has non-float dtype ${info.dtype}`);
      const bytes = ck.readBytes(n);
      h.update(`${n}:${info.dtype}:${info.shape.join('x')}\n`).update(bytes);
      shapes.set(n, [...info.shape]);
      dtypes.set(n, info.dtype as FloatDType);
      weights.set(n, decodeToF32(bytes, info.dtype));
    }
    return { dir, config, names, shapes, dtypes, weights, hash: h.digest('hex') };
  } finally {
    ck.close();
  }
}

/**
 * Merged weights of a merge spec, computed as the file engine computes them (see the file comment): per selected tensor `method.merge` on fresh f32 copies of the inputs, rounded to the base
 * model's stored dtype; other tensors are the base model's.
 */
export function mergeWeights(c: MergeSpec, load: (dir: string) => LoadedModel, tensors: TensorFilter = 'mlp', seed = 0): Map<string, Float32Array> {
  if (c.kind !== 'merge' || !c.method || !c.base || !c.models) throw new Error(`baseline ${c.family} ${c.label}: not a merge candidate`);
  const method = getMethod(c.method);
  const base = load(c.base);
  const models = c.models.map(load);
  const params = c.params ?? {};
  const modelParams = c.modelParams ?? {};
  if (c.modelParamsEach && c.modelParamsEach.length !== c.models.length) throw new Error(`baseline ${c.family} ${c.label}: modelParamsEach has ${c.modelParamsEach.length} entries for ${c.models.length} models`);
  const each = c.models.map((_, i) => ({ ...modelParams, ...(c.modelParamsEach?.[i] ?? {}) }));
  const known = new Set([...method.globalParams, ...method.modelParams].map((p) => p.name));
  for (const k of [...Object.keys(params), ...each.flatMap((e) => Object.keys(e))]) if (!known.has(k)) throw new Error(`baseline ${c.family} ${c.label}: ${c.method} has no parameter '${k}'`);
  const perModel = new Set(method.modelParams.map((p) => p.name));
  for (const k of each.flatMap((e) => Object.keys(e))) if (!perModel.has(k)) throw new Error(`baseline ${c.family} ${c.label}: '${k}' is not a per-model parameter of ${c.method}`);
  const sel = tensorSelector(tensors);
  const numLayers = base.config.num_hidden_layers;
  const out = new Map<string, Float32Array>();
  let merged = 0;
  for (const name of base.names) {
    const b = base.weights.get(name)!;
    if (!sel(name)) {
      out.set(name, b);
      continue;
    }
    const shape = base.shapes.get(name)!;
    const xs = models.map((m) => {
      const x = m.weights.get(name);
      if (!x || x.length !== b.length) throw new Error(`${m.dir}: tensor ${name} missing or of another size than in ${base.dir}`);
      return Float32Array.from(x);
    });
    const layer = layerOf(name);
    const g = resolveParams(method.globalParams, null, params as Record<string, RawValue>, name, layer, numLayers, 'parameters');
    const mp = models.map((m, i) => resolveParams(method.modelParams, each[i] as Record<string, RawValue>, params as Record<string, RawValue>, name, layer, numLayers, `models[${i}] (${m.dir})`));
    const r = method.merge({ name, shape, base: method.base === 'none' ? null : Float32Array.from(b), models: xs, modelParams: mp, params: g, layer, numLayers, seed: tensorSeed(seed, name) });
    if (r.length !== b.length) throw new Error(`${c.method} returned ${r.length} values for tensor ${name} of ${b.length}`);
    const dt = base.dtypes.get(name)!;
    out.set(name, dt === 'F32' ? Float32Array.from(r) : decodeToF32(encodeFromF32(r, dt), dt));
    merged++;
  }
  if (merged === 0) throw new Error(`tensor filter ${JSON.stringify(tensors)} selects no tensor of ${base.dir}`);
  return out;
}

/** The `selfdev merge` (mergekit YAML) config reproducing a merge spec. */
export function mergekitConfig(c: MergeSpec, allNames: string[], tensors: TensorFilter = 'mlp'): Record<string, unknown> {
  if (c.kind !== 'merge') throw new Error('mergekitConfig: not a merge candidate');
  const cfg: Record<string, unknown> = {
    merge_method: c.method,
    base_model: c.base,
    models: c.models!.map((m, i) => {
      const p = { ...(c.modelParams ?? {}), ...(c.modelParamsEach?.[i] ?? {}) };
      return Object.keys(p).length ? { model: m, parameters: p } : { model: m };
    }),
  };
  if (Object.keys(c.params ?? {}).length) cfg.parameters = { ...c.params };
  if (tensors !== 'all') {
    const sel = tensorSelector(tensors);
    const chosen = allNames.filter(sel);
    const compact = tensors === 'mlp' ? ['.mlp.'] : null;
    const same = compact && allNames.every((n) => compact.some((p) => matchesPattern(n, p)) === sel(n));
    cfg.include_tensors = same ? compact : chosen.map((n) => `/^${n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$/`);
  }
  return cfg;
}

/** `loadWeights` memoised per folder (each model is read once). */
export function modelLoader(): (dir: string) => LoadedModel {
  const loaded = new Map<string, LoadedModel>();
  return (dir) => {
    let m = loaded.get(dir);
    if (!m) loaded.set(dir, (m = loadWeights(dir)));
    return m;
  };
}
