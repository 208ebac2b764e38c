/**
 * The loop's merge world at any model size: seed and experts stay on disk as safetensors (one file
 * or shards with model.safetensors.index.json; BF16, F16 or F32), nothing goes through the tfjs
 * loader, and a candidate's merged checkpoint is written tensor by tensor, shard by shard, straight
 * into the folder the evaluator reads (atomically: CheckpointWriter stages it in a sibling temp
 * folder renamed only when complete).
 *
 * Per selected tensor the sandbox child (Sandbox.runFile) reads the seed's and experts' bytes from
 * their files, forms the task vectors, runs the program, adds the result to the seed and answers
 * with the encoded bytes; tensors outside the filter are copied through byte for byte. Only
 * headers, config.json (num_hidden_layers, else the largest layer index) and tensors are read: the
 * architecture does not matter, and every other file of the seed folder is copied verbatim.
 *
 * Memory is bounded by a multiple of the largest tensor times the number of experts, whatever the
 * model size (`memoryBound`); `open` refuses up front when that bound exceeds `maxMemoryBytes`.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Checkpoint, CheckpointWriter, INDEX_FILE, type PlannedTensor } from '../io/checkpoint.ts';
import { DTYPE_BYTES, decodeToF32, encodeFromF32, isFloatDType, torchDTypeName, type FloatDType } from '../tensor/dtype.ts';
import { axpy, dot, sub } from '../tensor/kernels.ts';
import { DEFAULT_LIMITS, tensorKind, tensorLayer, type FileMergeFunction, type ModelStats, type SandboxLimits, type TensorRef } from '../sandbox/index.ts';
import { tensorSelector, type TensorFilter } from './tensor-filter.ts';

/** Fixed share of the bound: the two Node processes (loop + sandbox child) before any tensor. */
export const PROCESS_OVERHEAD_BYTES = 512 * 2 ** 20;

/** Default for the memory a streamed merge may use: 3/4 of the machine's RAM. */
export function defaultMaxMergeMemory(totalmem: number): number {
  return Math.floor(totalmem * 0.75);
}

/** How a candidate's merged tensors are computed. */
export type StreamMerger =
  | { kind: 'program'; fn: FileMergeFunction; seed: number }
  /** seed + λ Σ τ_i, computed here with the native kernels (the loop's TA baseline) */
  | { kind: 'task-arithmetic'; lambda: number }
  /** the seed model as it is */
  | { kind: 'seed' };

export interface StreamWriteSummary {
  merged: number;
  copied: number;
  bytesWritten: number;
  seconds: number;
}

export interface MemoryBound {
  bytes: number;
  /** the terms, for error messages and reports */
  parts: Record<string, number>;
}

/** Files never copied from the seed folder: weights (written anew) and other weight formats. */
function isWeightFile(f: string): boolean {
  return f.endsWith('.safetensors') || f === INDEX_FILE || /\.(bin|pt|pth|gguf|h5|msgpack|ckpt|onnx)$/.test(f) || f.startsWith('.');
}

const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;

export class StreamWorld {
  readonly kind = 'stream';
  /** Selected tensor names, in the seed's order. */
  readonly names: string[];
  readonly numLayers: number;
  /** Elements of the largest selected tensor. */
  readonly maxNumel: number;
  private statsCache: ModelStats | null = null;
  /** receives each merged tensor's bytes from the sandbox (grown to the largest) */
  private mergedSlot = new Uint8Array(0);

  private constructor(
    readonly seedDir: string,
    readonly expertDirs: string[],
    private readonly seed: Checkpoint,
    private readonly experts: Checkpoint[],
    private readonly selected: Set<string>,
    private readonly timeScale: number,
  ) {
    this.names = seed.tensorNames().filter((n) => selected.has(n));
    this.maxNumel = Math.max(...this.names.map((n) => numel(seed.info(n).shape)));
    const cfgLayers = Number(seed.config?.num_hidden_layers);
    let maxLayer = -1;
    for (const n of seed.tensorNames()) maxLayer = Math.max(maxLayer, tensorLayer(n) ?? -1);
    this.numLayers = Number.isInteger(cfgLayers) && cfgLayers > 0 ? cfgLayers : maxLayer + 1;
  }

  /**
   * Opens seed + experts (headers only) and checks, before any tensor data is read: every selected
   * tensor is a float tensor present in every expert with the seed's shape, and the memory bound
   * (writing in `dtype`, default the stored dtypes) fits `maxMemoryBytes`.
   */
  static open(seedDir: string, expertDirs: string[], filter: TensorFilter = 'mlp', opts: { maxMemoryBytes: number; timeScale?: number; dtype?: FloatDType }): StreamWorld {
    if (expertDirs.length === 0) throw new Error('merge world: no experts given');
    const opened: Checkpoint[] = [];
    try {
      const seed = Checkpoint.open(seedDir);
      opened.push(seed);
      if (!seed.config) throw new Error(`${seedDir}: no config.json (the merged model needs the seed's)`);
      const experts = expertDirs.map((d) => {
        const c = Checkpoint.open(d);
        opened.push(c);
        return c;
      });
      const sel = tensorSelector(filter);
      const selected = new Set(seed.tensorNames().filter(sel));
      if (selected.size === 0) throw new Error(`merge world: tensor filter ${JSON.stringify(filter)} selects no tensor of ${seedDir}`);
      for (const n of selected) {
        const s = seed.info(n);
        if (!isFloatDType(s.dtype)) throw new Error(`${seedDir}: tensor ${n} has dtype ${s.dtype}; only F32, F16 and BF16 tensors can be merged (narrow the tensor filter)`);
        for (const [i, e] of experts.entries()) {
          if (!e.has(n)) throw new Error(`${expertDirs[i]}: tensor ${n} missing (expert does not match the seed ${seedDir})`);
          const x = e.info(n);
          if (x.shape.join(',') !== s.shape.join(',')) throw new Error(`${expertDirs[i]}: tensor ${n} has shape [${x.shape}], the seed has [${s.shape}]`);
          if (!isFloatDType(x.dtype)) throw new Error(`${expertDirs[i]}: tensor ${n} has dtype ${x.dtype}; only F32, F16 and BF16 tensors can be merged`);
        }
      }
      const w = new StreamWorld(seedDir, expertDirs, seed, experts, selected, opts.timeScale ?? 1);
      const b = w.memoryBound(opts.dtype);
      if (b.bytes > opts.maxMemoryBytes) {
        const parts = Object.entries(b.parts).map(([k, v]) => `${k} ${gib(v)}`).join(', ');
        throw new Error(
          `merge world: a streamed merge of ${seedDir} with ${expertDirs.length} experts needs up to ${gib(b.bytes)} (${parts}; largest merged tensor ${w.maxNumel.toLocaleString('en-US')} elements), ` +
            `more than the ${gib(opts.maxMemoryBytes)} allowed (merge.maxMemory); raise merge.maxMemory or narrow the tensor filter`,
        );
      }
      return w;
    } catch (e) {
      opened.forEach((c) => c.close());
      throw e;
    }
  }

  /** Sandbox limits for the largest selected tensor (same formula as the in-memory world). */
  limits(): Partial<SandboxLimits> {
    return streamLimits(this.maxNumel, this.experts.length, this.timeScale);
  }

  /**
   * Worst-case memory of one candidate, in bytes: the sandbox child holds the k task vectors in
   * float32, two read buffers (the seed's stored bytes and one expert's), the program's allocation
   * budget (limits().maxElements) and the encoded result; the loop holds the result as received
   * (one reused buffer), one copy buffer for the largest tensor passed through, and (prepare's
   * statistics, the TA baseline) k + 1 float32 tensors.
   */
  memoryBound(dtype?: FloatDType): MemoryBound {
    const k = this.experts.length;
    const n = this.maxNumel;
    let maxAll = 0;
    let maxAllNumel = 0;
    for (const name of this.seed.tensorNames()) {
      maxAll = Math.max(maxAll, this.seed.info(name).byteLength);
      maxAllNumel = Math.max(maxAllNumel, numel(this.seed.info(name).shape));
    }
    let maxSelBytes = 0;
    for (const name of this.names) for (const c of [this.seed, ...this.experts]) maxSelBytes = Math.max(maxSelBytes, c.info(name).byteLength);
    const outBytes = dtype ? DTYPE_BYTES[dtype] : Math.max(...this.names.map((x) => DTYPE_BYTES[this.seed.info(x).dtype]));
    const elements = this.limits().maxElements ?? DEFAULT_LIMITS.maxElements;
    const parts = {
      processes: PROCESS_OVERHEAD_BYTES,
      'inputs f32': k * 4 * n + 2 * maxSelBytes,
      'program budget': elements * 4,
      result: 3 * outBytes * n,
      'copy-through': maxAll + (dtype ? maxAllNumel * (4 + DTYPE_BYTES[dtype]) : 0),
    };
    return { bytes: Object.values(parts).reduce((a, b) => a + b, 0), parts };
  }

  shapeOf(name: string): number[] {
    return [...this.seed.info(name).shape];
  }

  /** Whole-model statistics for programs with prepare(stats), streamed one tensor at a time (cached). */
  stats(): ModelStats {
    if (this.statsCache) return this.statsCache;
    const stats: ModelStats = {};
    for (const name of this.names) {
      const b = this.seed.readF32(name);
      const taus = this.experts.map((m) => {
        const t = m.readF32(name);
        sub(t, t, b);
        return t;
      });
      const norms = taus.map((t) => Math.sqrt(dot(t, t)));
      const cosine = taus.map((a, i) => taus.map((c, j) => (norms[i]! > 0 && norms[j]! > 0 ? dot(a, c) / (norms[i]! * norms[j]!) : 0)));
      stats[name] = { shape: this.shapeOf(name), layer: tensorLayer(name), kind: tensorKind(name), norms, cosine };
    }
    return (this.statsCache = stats);
  }

  private ref(c: Checkpoint, name: string): TensorRef {
    const e = c.info(name);
    return { path: e.file, offset: e.offset, byteLength: e.byteLength, dtype: e.dtype as TensorRef['dtype'] };
  }

  /**
   * Writes the merged checkpoint into `outDir` (created; `overwrite` replaces an existing model
   * folder): selected tensors merged by `merger` in `dtype` (default: the seed's stored dtype),
   * other tensors copied (converted only when `dtype` differs from theirs), config.json (with
   * torch_dtype set when `dtype` is given) and every non-weight file of the seed folder copied.
   * On any failure nothing is left at `outDir`.
   */
  async write(outDir: string, merger: StreamMerger, opts: { dtype?: FloatDType; overwrite?: boolean; maxShardBytes?: number } = {}): Promise<StreamWriteSummary> {
    const t0 = performance.now();
    const names = this.seed.tensorNames();
    const outDtypeOf = (name: string): string => {
      const d = this.seed.info(name).dtype;
      return opts.dtype && isFloatDType(d) ? opts.dtype : d;
    };
    const writer = new CheckpointWriter(outDir, { overwrite: opts.overwrite, maxShardBytes: opts.maxShardBytes });
    let merged = 0;
    let bytesWritten = 0;
    try {
      writer.plan(names.map((name): PlannedTensor => ({ name, dtype: outDtypeOf(name) as PlannedTensor['dtype'], shape: [...this.seed.info(name).shape] })));
      let slot = new Uint8Array(0);
      for (const name of names) {
        const info = this.seed.info(name);
        const outDt = outDtypeOf(name);
        let bytes: Uint8Array;
        if (this.selected.has(name) && merger.kind !== 'seed') {
          bytes = await this.mergeOne(name, outDt as FloatDType, merger);
          merged++;
        } else {
          if (slot.byteLength < info.byteLength) slot = new Uint8Array(info.byteLength);
          bytes = this.seed.readBytes(name, slot);
          if (outDt !== info.dtype) bytes = encodeFromF32(decodeToF32(bytes, info.dtype), outDt as FloatDType);
        }
        writer.write(name, bytes);
        bytesWritten += bytes.byteLength;
      }
      const cfg = { ...this.seed.config } as Record<string, unknown>;
      if (opts.dtype) {
        if ('dtype' in cfg) cfg.dtype = torchDTypeName(opts.dtype);
        cfg.torch_dtype = torchDTypeName(opts.dtype);
        writer.writeJson('config.json', cfg);
      } else writer.copyFile(join(this.seedDir, 'config.json'), 'config.json');
      for (const f of readdirSync(this.seedDir).sort()) {
        if (f === 'config.json' || isWeightFile(f)) continue;
        const p = join(this.seedDir, f);
        if (statSync(p).isFile()) writer.copyFile(p, f);
      }
      writer.commit();
    } catch (e) {
      writer.abort();
      throw e;
    }
    return { merged, copied: names.length - merged, bytesWritten, seconds: (performance.now() - t0) / 1000 };
  }

  private async mergeOne(name: string, outDt: FloatDType, merger: Exclude<StreamMerger, { kind: 'seed' }>): Promise<Uint8Array> {
    const shape = this.shapeOf(name);
    if (merger.kind === 'program') {
      const ctx = { name, layer: tensorLayer(name), numLayers: this.numLayers, shape, seed: merger.seed };
      // the merged bytes land in one buffer reused from tensor to tensor (written out before the next tensor)
      const size = numel(shape) * DTYPE_BYTES[outDt];
      if (this.mergedSlot.byteLength < size) this.mergedSlot = new Uint8Array(size);
      return merger.fn(this.ref(this.seed, name), this.experts.map((e) => this.ref(e, name)), outDt, ctx, this.mergedSlot);
    }
    const base = this.seed.readF32(name);
    const w = Float32Array.from(base);
    for (const e of this.experts) {
      const x = e.readF32(name);
      sub(x, x, base);
      axpy(w, merger.lambda, x);
    }
    return encodeFromF32(w, outDt);
  }

  close(): void {
    this.seed.close();
    this.experts.forEach((e) => e.close());
  }
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Program CPU time allowed per tensor element (ns): 47 s for a 58.7M-element Mistral-7B MLP tensor.
 * algorithms/ties.js (the classic TIES, ~20 whole-tensor passes and three top-k masks) needs 300–400
 * ns per element on its first 14.7M tensor (times out at 300, passes at 400: `npm run bench:scale
 * -- --params-b 1.5 --programs ties` with --time-scale 1.5 and 2, 2026-12-07, the sandbox child's
 * two kernel threads both counted), so the limit leaves it 2× headroom; it was 200 ns, which
 * rejected TIES at scale.
 */
export const PROGRAM_NS_PER_ELEMENT = 800;
/** CPU time of the sandbox child allowed per element on top of the program's (ns): reading, decoding, encoding, IPC. */
export const IO_NS_PER_ELEMENT = 400;

/**
 * Sandbox limits for merging tensors of up to `maxNumel` elements with k task vectors, one formula
 * for the in-memory world, the streamed world and `selfdev merge` (custom): the allocation budget
 * (k + 8)·4 tensors, the program's CPU time PROGRAM_NS_PER_ELEMENT per element, and the child's
 * CPU time per request (the parent kills the sandbox child) that plus IO_NS_PER_ELEMENT per element;
 * never below the defaults. A program too slow for the tensor fails with `timeout` within these
 * bounds instead of holding the run. `timeScale` multiplies both time limits (merge.timeScale: a
 * slow machine; both are CPU time, so load from other processes does not change a verdict, see
 * src/sandbox/cpu-time.ts).
 */
export function streamLimits(maxNumel: number, k: number, timeScale = 1): Partial<SandboxLimits> {
  if (!(timeScale > 0 && Number.isFinite(timeScale))) throw new Error(`time scale must be a positive number, got ${timeScale}`);
  const timeoutMs = Math.max(DEFAULT_LIMITS.timeoutMs, Math.ceil((maxNumel * PROGRAM_NS_PER_ELEMENT * timeScale) / 1e6));
  return {
    maxElements: Math.max(DEFAULT_LIMITS.maxElements, maxNumel * (k + 8) * 4),
    timeoutMs,
    wallMs: Math.max(DEFAULT_LIMITS.wallMs, timeoutMs + Math.ceil((maxNumel * IO_NS_PER_ELEMENT * timeScale) / 1e6)),
    memoryMb: 64,
  };
}
