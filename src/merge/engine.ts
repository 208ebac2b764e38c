/**
 * The merge engine: plans a merge (opens and validates every checkpoint, resolves every parameter
 * for every tensor) before any heavy work, then streams tensor by tensor: read the inputs of one
 * tensor, merge in float32, round to the output dtype, append to the output shard. Peak memory is
 * about (models + 2) tensors, independent of model size. Output goes to a temporary folder that is
 * renamed only when complete.
 */
import { closeSync, existsSync, lstatSync, readdirSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { Checkpoint, CheckpointWriter, type PlannedTensor } from '../io/checkpoint.ts';
import { checkOutputPath, openRegularFile, readJsonObject } from '../io/files.ts';
import { checkConfigAgainstTensors, checkTokenizerFile } from '../io/model-config.ts';
import { DTYPE_BYTES, decodeToF32, encodeFromF32, isFloatDType, torchDTypeName, type DType, type FloatDType } from '../tensor/dtype.ts';
import { sub, axpy } from '../tensor/kernels.ts';
import { matchesPattern, type MergeConfig, type ModelEntry, ConfigError } from './config.ts';
import { layerOf, resolveParams, tensorSeed } from './params.ts';
import { getMethod } from './registry.ts';
import type { MergeMethod, MergeTensorInput, ParamSpec, ParamValue, RawTensor } from './types.ts';
import type { TensorRef } from '../sandbox/types.ts';

/** Parameters mergekit accepts that change nothing numerically here (memory layout hints). */
const NO_OP_PARAMS = new Set(['int8_mask']);

/** Files of a model folder carried into the output, and where they come from. */
const MODEL_FILES = ['config.json', 'generation_config.json'];
const TOKENIZER_FILES = [
  'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.model', 'added_tokens.json',
  'vocab.json', 'merges.txt', 'chat_template.jinja', 'chat_template.json',
];

export type TensorMerger = (input: MergeTensorInput) => Float32Array | Promise<Float32Array>;

/**
 * One tensor merged from its place on disk (merge_method: custom through Sandbox.runFile): the
 * merger reads base and model tensors from their files itself and returns the merged tensor
 * (base + result) already encoded as `outDtype`, its values checked finite. The engine reads no
 * input bytes for it.
 */
export type FileTensorMerger = (input: {
  name: string;
  shape: number[];
  layer: number | null;
  numLayers: number;
  seed: number;
  base: TensorRef;
  models: TensorRef[];
  outDtype: FloatDType;
}) => Promise<Uint8Array>;

export interface MergeOptions {
  seed?: number;
  maxShardBytes?: number;
  overwrite?: boolean;
  /** Write NaN / ±Inf results (else the merge stops at the first tensor holding any; see also allow_non_finite). */
  allowNonFinite?: boolean;
  /**
   * Replaces the registry method (merge_method: custom): spec of parameters plus the merge function;
   * `mergeFile`, when given, merges every tensor it can take (see `fileMergeable`) from the files.
   */
  custom?: { method: Omit<MergeMethod, 'merge'>; merge: TensorMerger; mergeFile?: FileTensorMerger };
  onProgress?: (p: MergeProgress) => void;
}

export interface MergeProgress {
  done: number;
  total: number;
  bytesRead: number;
  bytesWritten: number;
  seconds: number;
  tensor: string;
}

export interface MergeSummary {
  outDir: string;
  tensors: number;
  merged: number;
  copied: number;
  parameters: number;
  bytesRead: number;
  bytesWritten: number;
  seconds: number;
  shards: number;
}

interface TensorPlan {
  name: string;
  shape: number[];
  outDtype: FloatDType;
  /** null: copied from the base model unchanged (filtered out or not mergeable). */
  modelParams: Array<Record<string, ParamValue>> | null;
  params: Record<string, ParamValue>;
  layer: number | null;
  seed: number;
}

export interface MergePlan {
  method: Omit<MergeMethod, 'merge'>;
  merge: TensorMerger;
  mergeFile: FileTensorMerger | null;
  base: Checkpoint | null;
  models: Checkpoint[];
  modelEntries: ModelEntry[];
  taskVectorBase: Checkpoint | null;
  reference: Checkpoint;
  tensors: TensorPlan[];
  numLayers: number;
  tokenizerDir: string;
  close(): void;
}

function knownParamNames(m: Omit<MergeMethod, 'merge'>): Set<string> {
  return new Set([...m.globalParams, ...m.modelParams].map((p: ParamSpec) => p.name).concat([...NO_OP_PARAMS]));
}

/** Opens every checkpoint and validates the whole merge. Throws before any tensor data is read. */
export function planMerge(config: MergeConfig, opts: MergeOptions = {}): MergePlan {
  const seed = opts.seed ?? 0;
  let method: Omit<MergeMethod, 'merge'>;
  let merge: TensorMerger;
  let mergeFile: FileTensorMerger | null = null;
  if (config.method === 'custom') {
    if (!opts.custom) throw new ConfigError('merge_method: custom needs an algorithm runner (use `selfdev merge`, which loads `algorithm:` into the sandbox)');
    method = opts.custom.method;
    merge = opts.custom.merge;
    mergeFile = opts.custom.mergeFile ?? null;
  } else {
    const m = getMethod(config.method);
    method = m;
    merge = (input) => m.merge(input);
  }

  const known = knownParamNames(method);
  const checkNames = (params: Record<string, unknown>, where: string, allowed: Set<string>) => {
    for (const k of Object.keys(params))
      if (!allowed.has(k)) throw new ConfigError(`${where}: ${config.method} has no parameter '${k}' (it takes: ${[...allowed].filter((n) => !NO_OP_PARAMS.has(n)).join(', ') || 'none'})`);
  };
  checkNames(config.parameters, 'parameters', known);
  const perModel = new Set(method.modelParams.map((p) => p.name).concat([...NO_OP_PARAMS]));
  config.models.forEach((m, i) => checkNames(m.parameters, `models[${i}] (${m.spec}).parameters`, perModel));

  if (method.base === 'required' && !config.base) throw new ConfigError(`${config.method} needs base_model`);
  if (config.taskVectorBase && method.base === 'none') throw new ConfigError(`task_vector_base needs a method that uses a base model; ${config.method} does not`);
  const usesBase = method.base !== 'none' && config.base !== null;
  const entries = usesBase ? config.models.filter((m) => m.path !== config.base!.path) : config.models;
  if (method.minModels !== undefined && entries.length < method.minModels)
    throw new ConfigError(`${config.method} needs at least ${method.minModels} model(s) besides the base, got ${entries.length}`);
  if (method.maxModels !== undefined && entries.length > method.maxModels)
    throw new ConfigError(`${config.method} takes at most ${method.maxModels} model(s) besides the base, got ${entries.length}`);

  const opened: Checkpoint[] = [];
  const open = (path: string): Checkpoint => {
    const c = Checkpoint.open(path);
    opened.push(c);
    return c;
  };
  try {
    const base = usesBase ? open(config.base!.path) : null;
    const models = entries.map((e) => open(e.path));
    const tvb = config.taskVectorBase ? open(config.taskVectorBase.path) : null;
    const reference = base ?? models[0]!;
    // every input's config.json agrees with its tensors (the shared reader); the reference's is
    // required, since it becomes the output's
    const refSpecName = base ? config.base!.spec : entries[0]!.spec;
    if (!reference.config) throw new ConfigError(`${join(reference.dir, 'config.json')}: config.json is missing in ${refSpecName}, whose config the merged model gets`);
    for (const c of opened) checkConfigAgainstTensors(c);
    const names = reference.tensorNames();
    const cfgLayers = Number((reference.config as Record<string, unknown> | null)?.num_hidden_layers);
    let maxLayer = -1;
    for (const n of names) maxLayer = Math.max(maxLayer, layerOf(n) ?? -1);
    const numLayers = Number.isInteger(cfgLayers) && cfgLayers > 0 ? cfgLayers : maxLayer + 1;

    const others: Array<[string, Checkpoint]> = [
      ...models.map((c, i) => [entries[i]!.spec, c] as [string, Checkpoint]),
      ...(tvb ? [[config.taskVectorBase!.spec, tvb] as [string, Checkpoint]] : []),
    ];
    const refSpec = base ? config.base!.spec : entries[0]!.spec;
    const refNames = new Set(names);
    for (const [spec, c] of others) {
      for (const n of c.tensorNames())
        if (!refNames.has(n)) throw new ConfigError(`tensor ${n} is in ${spec} but not in ${refSpec}; the models must have the same architecture`);
    }

    const tensors: TensorPlan[] = [];
    for (const name of names) {
      const info = reference.info(name);
      const shape = info.shape;
      for (const [spec, c] of others) {
        if (!c.has(name)) throw new ConfigError(`tensor ${name} is missing from ${spec} (present in ${refSpec})`);
        const o = c.info(name);
        if (o.shape.join(',') !== shape.join(','))
          throw new ConfigError(`tensor ${name} has shape [${o.shape}] in ${spec} but [${shape}] in ${refSpec}${/embed_tokens|lm_head/.test(name) ? ' (different vocabulary sizes are not supported yet)' : ''}`);
        if (!isFloatDType(o.dtype) && o.dtype !== info.dtype) throw new ConfigError(`tensor ${name} has dtype ${o.dtype} in ${spec} but ${info.dtype} in ${refSpec}`);
      }
      const float = isFloatDType(info.dtype);
      const outDtype: FloatDType = config.outDtype ?? config.dtype ?? (float ? (info.dtype as FloatDType) : 'F32');
      const layer = layerOf(name);
      let selected = float;
      if (config.includeTensors.length > 0) selected &&= config.includeTensors.some((p) => matchesPattern(name, p));
      if (config.excludeTensors.length > 0) selected &&= !config.excludeTensors.some((p) => matchesPattern(name, p));
      if (!float && !base) throw new ConfigError(`tensor ${name} has non-float dtype ${info.dtype}; only float tensors can be merged`);
      if (!selected && !base) throw new ConfigError(`tensor ${name} is excluded by include_tensors/exclude_tensors, but there is no base model to copy it from`);
      // modelParams is filled below, once every tensor's shape has been checked
      tensors.push({ name, shape, outDtype, modelParams: selected ? [] : null, params: {}, layer, seed: tensorSeed(seed, name) });
    }
    for (const t of tensors) {
      if (t.modelParams === null) continue;
      t.params = resolveParams(method.globalParams, null, config.parameters, t.name, t.layer, numLayers, 'parameters');
      t.modelParams = entries.map((e, i) =>
        resolveParams(method.modelParams, e.parameters, config.parameters, t.name, t.layer, numLayers, `models[${i}] (${e.spec})`),
      );
    }
    if (!tensors.some((t) => t.modelParams !== null)) throw new ConfigError('no tensor is selected for merging (check include_tensors / exclude_tensors)');

    const tokenizerDir = config.tokenizerSource ?? base?.dir ?? config.base?.path ?? models[0]!.dir;
    checkCarriedFiles(reference.dir, tokenizerDir, reference);
    return {
      method, merge, mergeFile, base, models, modelEntries: entries, taskVectorBase: tvb, reference, tensors, numLayers, tokenizerDir,
      close: () => opened.forEach((c) => c.close()),
    };
  } catch (e) {
    opened.forEach((c) => c.close());
    throw e;
  }
}

/**
 * The files a merged model carries: config.json (required, from the reference model) and a tokenizer
 * (required: tokenizer.json or tokenizer.model, from the tokenizer source), every one a regular file,
 * every JSON one a valid JSON object, tokenizer.json a valid tokenizer whose ids fit the embedding.
 */
function checkCarriedFiles(modelDir: string, tokenizerDir: string, reference: Checkpoint): void {
  for (const f of MODEL_FILES) if (hasEntry(modelDir, f)) readJsonObject(join(modelDir, f), f);
  const hasJson = hasEntry(tokenizerDir, 'tokenizer.json');
  if (!hasJson && !hasEntry(tokenizerDir, 'tokenizer.model'))
    throw new ConfigError(`${tokenizerDir}: no tokenizer (tokenizer.json or tokenizer.model), so the merged model would be incomplete; give tokenizer_source a model folder that has one`);
  const cfg = reference.config as Record<string, unknown>;
  const emb = reference.has('model.embed_tokens.weight') ? reference.info('model.embed_tokens.weight').shape[0] : undefined;
  const vocabSize = typeof cfg.vocab_size === 'number' ? cfg.vocab_size : emb ?? null;
  for (const f of TOKENIZER_FILES) {
    if (!hasEntry(tokenizerDir, f)) continue;
    const p = join(tokenizerDir, f);
    if (f === 'tokenizer.json') checkTokenizerFile(p, { vocabSize });
    else if (f.endsWith('.json')) readJsonObject(p, f);
    else closeSync(openRegularFile(p, f).fd);
  }
}

function hasEntry(dir: string, name: string): boolean {
  try {
    lstatSync(join(dir, name));
    return true;
  } catch {
    return false;
  }
}

/** Number of NaN / ±Inf values in raw little-endian float bytes (all exponent bits set). */
export function countNonFinite(bytes: Uint8Array, dtype: DType): number {
  let n = 0;
  if (dtype === 'BF16') {
    for (let i = 1; i < bytes.length; i += 2) if ((bytes[i]! & 0x7f) === 0x7f && (bytes[i - 1]! & 0x80) !== 0) n++;
  } else if (dtype === 'F16') {
    for (let i = 1; i < bytes.length; i += 2) if ((bytes[i]! & 0x7c) === 0x7c) n++;
  } else if (dtype === 'F32') {
    for (let i = 3; i < bytes.length; i += 4) if ((bytes[i]! & 0x7f) === 0x7f && (bytes[i - 1]! & 0x80) !== 0) n++;
  } else if (dtype === 'F64') {
    for (let i = 7; i < bytes.length; i += 8) if ((bytes[i]! & 0x7f) === 0x7f && (bytes[i - 1]! & 0xf0) === 0xf0) n++;
  }
  return n;
}

/** Refuses an output folder that is, contains or lies inside any input of the merge (real paths). */
function checkMergeOutput(plan: MergePlan, outDir: string, config: MergeConfig): void {
  const inputs = [
    ...(config.base ? [{ path: config.base.path, what: `base_model ${config.base.spec}` }] : []),
    ...config.models.map((m, i) => ({ path: m.path, what: `models[${i}] ${m.spec}` })),
    ...(config.taskVectorBase ? [{ path: config.taskVectorBase.path, what: `task_vector_base ${config.taskVectorBase.spec}` }] : []),
    { path: plan.tokenizerDir, what: `tokenizer source ${plan.tokenizerDir}` },
    ...(config.algorithm ? [{ path: config.algorithm, what: `algorithm ${config.algorithm}` }] : []),
    ...(config.configFile ? [{ path: config.configFile, what: `the config file ${config.configFile}` }] : []),
  ];
  checkOutputPath(outDir, inputs, 'OUT_DIR');
}

/** Runs a planned merge into outDir. */
export async function executeMerge(plan: MergePlan, outDir: string, config: MergeConfig, opts: MergeOptions = {}): Promise<MergeSummary> {
  const t0 = performance.now();
  checkMergeOutput(plan, outDir, config);
  const allowNonFinite = opts.allowNonFinite === true || config.allowNonFinite === true;
  const writer = new CheckpointWriter(outDir, { maxShardBytes: opts.maxShardBytes, overwrite: opts.overwrite });
  let bytesRead = 0;
  let bytesWritten = 0;
  let merged = 0;
  try {
    const planned: PlannedTensor[] = plan.tensors.map((t) => ({ name: t.name, dtype: t.outDtype, shape: t.shape }));
    writer.plan(planned);
    // Working memory is allocated once, sized to the largest tensor, and reused for every tensor.
    // Methods with a raw fast path (task_arithmetic, ties, dare_*) merge straight from the stored
    // bytes into the encoded output: one bytes slot per input and one for the output. The float32
    // slots of the general path are allocated only when a tensor needs them.
    let maxNumel = 0;
    let maxBytes = 0;
    for (const t of plan.tensors) {
      maxNumel = Math.max(maxNumel, t.shape.reduce((a, b) => a * b, 1));
      for (const c of [plan.reference, ...plan.models]) maxBytes = Math.max(maxBytes, c.info(t.name).byteLength);
    }
    const inputs: Checkpoint[] = [...(plan.base ? [plan.base] : []), ...plan.models];
    const rawSlots = inputs.map(() => new Uint8Array(maxBytes));
    const encoded = new Uint8Array(maxNumel * Math.max(...plan.tensors.map((t) => DTYPE_BYTES[t.outDtype]), config.dtype ? DTYPE_BYTES[config.dtype] : 0));
    let f32: { inputs: Float32Array[]; tvb: Float32Array | null; shift: Float32Array | null; out: Float32Array } | null = null;
    const f32Slots = () =>
      (f32 ??= {
        inputs: inputs.map(() => new Float32Array(maxNumel)),
        tvb: plan.taskVectorBase ? new Float32Array(maxNumel) : null,
        shift: plan.taskVectorBase ? new Float32Array(maxNumel) : null,
        out: new Float32Array(maxNumel),
      });
    const mergeRaw = plan.method.mergeRaw?.bind(plan.method);
    /** Decodes raw bytes to float32, rounding to the config's `dtype:` first when it asks for that. */
    const toF32 = (bytes: Uint8Array, dtype: DType, into: Float32Array): Float32Array => {
      const x = decodeToF32(bytes, dtype, into.subarray(0, bytes.byteLength / DTYPE_BYTES[dtype]));
      if (config.dtype && config.dtype !== dtype && config.dtype !== 'F32') {
        const tmp = encodeFromF32(x, config.dtype, encoded.subarray(0, x.length * DTYPE_BYTES[config.dtype]));
        decodeToF32(tmp, config.dtype, x);
      }
      return x;
    };
    let done = 0;
    const progress = (name: string) => {
      done++;
      opts.onProgress?.({ done, total: plan.tensors.length, bytesRead, bytesWritten, seconds: (performance.now() - t0) / 1000, tensor: name });
    };
    /** `checked`: the bytes come from a merger that already refused non-finite values (mergeFile) */
    const write = (name: string, bytes: Uint8Array, dtype: DType, checked = false) => {
      if (!allowNonFinite && !checked) {
        const bad = countNonFinite(bytes, dtype);
        if (bad > 0) {
          throw new ConfigError(
            `tensor '${name}': the merge gives ${bad.toLocaleString('en-US')} non-finite value${bad === 1 ? '' : 's'} (NaN or ±Inf) of ${(bytes.byteLength / DTYPE_BYTES[dtype]).toLocaleString('en-US')} in ${dtype}; nothing was written ` +
              `(weights or lambda too large for the output dtype, or non-finite inputs; --allow-non-finite or allow_non_finite: true writes them anyway)`,
          );
        }
      }
      writer.write(name, bytes);
      bytesWritten += bytes.byteLength;
      progress(name);
    };
    for (const t of plan.tensors) {
      const n = t.shape.reduce((a, b) => a * b, 1);
      const outBytes = encoded.subarray(0, n * DTYPE_BYTES[t.outDtype]);
      if (t.modelParams === null) {
        const info = plan.reference.info(t.name);
        const bytes = plan.reference.readBytes(t.name, rawSlots[0]!);
        bytesRead += bytes.byteLength;
        if (info.dtype === t.outDtype) write(t.name, bytes, t.outDtype);
        else write(t.name, encodeFromF32(decodeToF32(bytes, info.dtype, f32Slots().out.subarray(0, n)), t.outDtype, outBytes), t.outDtype);
        continue;
      }
      const common = { name: t.name, shape: t.shape, modelParams: t.modelParams, params: t.params, layer: t.layer, numLayers: plan.numLayers, seed: t.seed };
      if (plan.mergeFile && fileMergeable(plan, inputs, t.name, config, allowNonFinite)) {
        // the merger reads the inputs from their files itself (counted in bytesRead all the same): none are read or sent from here
        const refs = inputs.map((c) => tensorRef(c, t.name));
        bytesRead += refs.reduce((a, r) => a + r.byteLength, 0);
        const bytes = await plan.mergeFile({ name: t.name, shape: t.shape, layer: t.layer, numLayers: plan.numLayers, seed: t.seed, base: refs[0]!, models: refs.slice(1), outDtype: t.outDtype });
        if (bytes.byteLength !== outBytes.byteLength) throw new Error(`merge method ${config.method} returned ${bytes.byteLength} bytes for tensor ${t.name}, expected ${outBytes.byteLength} (${n} × ${t.outDtype})`);
        merged++;
        write(t.name, bytes, t.outDtype, true);
        continue;
      }
      const raws = inputs.map((c, i) => {
        const b = c.readBytes(t.name, rawSlots[i]!);
        bytesRead += b.byteLength;
        return { bytes: b, dtype: c.info(t.name).dtype };
      });
      const rawOk =
        mergeRaw !== undefined && !plan.taskVectorBase &&
        raws.every((r) => isFloatDType(r.dtype) && (config.dtype === null || config.dtype === 'F32' || config.dtype === r.dtype));
      if (rawOk) {
        const rt = raws as RawTensor[];
        const ok = mergeRaw!({ ...common, base: plan.base ? rt[0]! : null, models: plan.base ? rt.slice(1) : rt, out: { bytes: outBytes, dtype: t.outDtype } });
        if (ok) {
          merged++;
          write(t.name, outBytes, t.outDtype);
          continue;
        }
      }
      const slots = f32Slots();
      const xs = raws.map((r, i) => toF32(r.bytes, r.dtype, slots.inputs[i]!));
      const base = plan.base ? xs[0]! : null;
      let tvb: Float32Array | null = null;
      if (plan.taskVectorBase) {
        const info = plan.taskVectorBase.info(t.name);
        const b = plan.taskVectorBase.readBytes(t.name, encoded.subarray(0, info.byteLength));
        bytesRead += b.byteLength;
        tvb = toF32(b, info.dtype, slots.tvb!);
      }
      const models = plan.base ? xs.slice(1) : xs;
      const out = await plan.merge({ ...common, base: tvb ?? base, models, out: slots.out.subarray(0, n) });
      if (!(out instanceof Float32Array) || out.length !== n)
        throw new Error(`merge method ${config.method} returned ${out instanceof Float32Array ? out.length + ' values' : typeof out} for tensor ${t.name} of ${n} elements`);
      if (tvb && base) {
        // task vectors were taken relative to task_vector_base R: result = B + f(W − R) = f-result + (B − R)
        const shift = slots.shift!.subarray(0, n);
        sub(shift, base, tvb);
        axpy(out, 1, shift);
      }
      merged++;
      write(t.name, encodeFromF32(out, t.outDtype, outBytes), t.outDtype);
    }

    // carry config, generation config and tokenizer files
    const modelDir = plan.base?.dir ?? plan.models[0]!.dir;
    const dtypes = new Set(plan.tensors.map((t) => t.outDtype));
    for (const f of MODEL_FILES) {
      const src = join(modelDir, f);
      if (!existsFile(src)) continue;
      if (f === 'config.json' && plan.reference.config) {
        const cfg = { ...plan.reference.config } as Record<string, unknown>;
        if (dtypes.size === 1) {
          const name = torchDTypeName([...dtypes][0]!);
          if ('dtype' in cfg) cfg.dtype = name;
          cfg.torch_dtype = name;
        }
        writer.writeJson('config.json', cfg);
      } else writer.copyFile(src, f);
    }
    for (const f of TOKENIZER_FILES) {
      const src = join(plan.tokenizerDir, f);
      if (existsFile(src)) writer.copyFile(src, f);
    }
    writer.writeJson('selfdev_merge.json', {
      merge_method: config.method,
      base_model: config.base ? basename(config.base.path) : null,
      models: plan.modelEntries.map((e) => basename(e.path)),
      seed: opts.seed ?? 0,
      tokenizer_source: basename(plan.tokenizerDir),
    });
    writer.commit();
  } catch (e) {
    writer.abort();
    throw e;
  }
  const seconds = (performance.now() - t0) / 1000;
  const parameters = plan.tensors.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
  return {
    outDir, tensors: plan.tensors.length, merged, copied: plan.tensors.length - merged, parameters,
    bytesRead, bytesWritten, seconds, shards: readdirSync(outDir).filter((f) => f.endsWith('.safetensors')).length,
  };
}

/**
 * Whether the file merger can take this tensor with the same result as the float32 path: inputs
 * relative to the base (no task_vector_base), stored as F32/F16/BF16 and not rounded to another
 * `dtype:` first, and non-finite results refused (the merger always refuses them).
 */
function fileMergeable(plan: MergePlan, inputs: Checkpoint[], name: string, config: MergeConfig, allowNonFinite: boolean): boolean {
  if (!plan.base || plan.taskVectorBase || allowNonFinite) return false;
  return inputs.every((c) => {
    const d = c.info(name).dtype;
    return isFloatDType(d) && (config.dtype === null || config.dtype === 'F32' || config.dtype === d);
  });
}

function tensorRef(c: Checkpoint, name: string): TensorRef {
  const e = c.info(name);
  return { path: resolve(e.file), offset: e.offset, byteLength: e.byteLength, dtype: e.dtype as TensorRef['dtype'] };
}

function existsFile(p: string): boolean {
  return existsSync(p) && statSync(p).isFile();
}

/** Plans and runs a merge; closes every file afterwards. */
export async function runMerge(config: MergeConfig, outDir: string, opts: MergeOptions = {}): Promise<MergeSummary> {
  const plan = planMerge(config, opts);
  try {
    return await executeMerge(plan, outDir, config, opts);
  } finally {
    plan.close();
  }
}
