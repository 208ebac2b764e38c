/**
 * Hugging Face model folders: reading (single or sharded safetensors, fully validated on open) and
 * writing (HF `save_pretrained` sharding, streamed tensor by tensor, atomic via a temp dir).
 */
import { closeSync, copyFileSync, existsSync, fsyncSync, lstatSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { DTYPE_BYTES } from '../tensor/dtype.ts';
import type { DType } from '../tensor/dtype.ts';
import { CheckpointError } from './errors.ts';
import { openRegularFile, readRegularText } from './files.ts';
import { SafetensorsFile, buildHeader, checkTensorSpec, numelOf, tempSibling, writeFully } from './safetensors.ts';
import type { TensorEntry } from './safetensors.ts';

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';
export const DEFAULT_MAX_SHARD_BYTES = 5e9;

/** Non-weight files a model folder may carry (tokenizer, configs, templates). */
const AUX_NAMES = new Set([
  'config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json',
  'tokenizer.model', 'chat_template.jinja', 'chat_template.json', 'added_tokens.json', 'vocab.json', 'vocab.txt',
  'merges.txt', 'preprocessor_config.json', 'processor_config.json',
]);
function isAuxName(name: string): boolean {
  return AUX_NAMES.has(name) || /^tokenizer[._-]/.test(name) || /\.tiktoken$/.test(name);
}

/** Whether a directory entry exists (a dangling symlink or a FIFO counts: opening it then says what it is). */
function lexists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** `model-0000i-of-0000n.safetensors`, as save_pretrained names shard i (0-based) of n. */
export function shardName(i: number, n: number): string {
  return `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
}

function readJson(path: string, what: string): unknown {
  let text: string;
  try {
    text = readRegularText(path, what);
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    throw new CheckpointError(path, `cannot read ${what} (${(e as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(path, `${what} is not valid JSON (${(e as Error).message})`);
  }
}

/** A Hugging Face model folder with safetensors weights (one file or shards + index). */
export class Checkpoint {
  readonly dir: string;
  /** config.json parsed, null if absent. */
  readonly config: Record<string, unknown> | null;
  /** The safetensors files, in shard order. */
  readonly shards: readonly SafetensorsFile[];
  /** The index file (null for a single-file checkpoint). */
  readonly indexPath: string | null;
  private readonly byName: Map<string, { entry: TensorEntry; shard: SafetensorsFile }>;
  private readonly order: string[];

  private constructor(dir: string, config: Record<string, unknown> | null, shards: SafetensorsFile[], indexPath: string | null) {
    this.dir = dir;
    this.config = config;
    this.shards = shards;
    this.indexPath = indexPath;
    this.byName = new Map();
    this.order = [];
    for (const s of shards) {
      for (const e of s.tensors.values()) {
        this.byName.set(e.name, { entry: e, shard: s });
        this.order.push(e.name);
      }
    }
  }

  /**
   * Opens a model folder: `model.safetensors`, else `model.safetensors.index.json` and its shards.
   * Validates every header and the index against the shards before returning.
   */
  static open(dir: string): Checkpoint {
    let st;
    try {
      st = statSync(dir);
    } catch {
      throw new CheckpointError(dir, 'model folder not found');
    }
    if (!st.isDirectory()) throw new CheckpointError(dir, 'is not a folder (expected a Hugging Face model folder with config.json and *.safetensors)');
    const configPath = join(dir, 'config.json');
    let config: Record<string, unknown> | null = null;
    if (lexists(configPath)) {
      const c = readJson(configPath, 'config.json');
      if (typeof c !== 'object' || c === null || Array.isArray(c)) throw new CheckpointError(configPath, 'config.json is not a JSON object');
      config = c as Record<string, unknown>;
    }
    const single = join(dir, SINGLE_FILE);
    const indexPath = join(dir, INDEX_FILE);
    if (lexists(single)) return new Checkpoint(dir, config, [SafetensorsFile.open(single)], null);
    if (lexists(indexPath)) return new Checkpoint(dir, config, openSharded(dir, indexPath), indexPath);
    const files = readdirSync(dir);
    if (files.some((f) => f === 'pytorch_model.bin' || f === 'pytorch_model.bin.index.json' || /^pytorch_model-\d+-of-\d+\.bin$/.test(f))) {
      throw new CheckpointError(dir, 'has only PyTorch pickle weights (pytorch_model*.bin): pickle checkpoints are not supported, convert to safetensors (e.g. save_pretrained(..., safe_serialization=True))');
    }
    const others = files.filter((f) => f.endsWith('.safetensors'));
    if (others.length > 0) {
      throw new CheckpointError(dir, `no ${SINGLE_FILE} or ${INDEX_FILE} (found ${others.slice(0, 5).join(', ')}${others.length > 5 ? ', …' : ''}; only standard model weight names are read)`);
    }
    throw new CheckpointError(dir, `no model weights found (expected ${SINGLE_FILE} or ${INDEX_FILE} with shards)`);
  }

  /** Tensor names in shard order, then data-offset order. */
  tensorNames(): string[] {
    return this.order.slice();
  }
  has(name: string): boolean {
    return this.byName.has(name);
  }
  info(name: string): TensorEntry {
    const t = this.byName.get(name);
    if (!t) throw new CheckpointError(this.dir, 'no such tensor in this checkpoint', name);
    return t.entry;
  }
  readBytes(name: string, into?: Uint8Array): Uint8Array {
    const t = this.byName.get(name);
    if (!t) throw new CheckpointError(this.dir, 'no such tensor in this checkpoint', name);
    return t.shard.readBytes(name, into);
  }
  /** See SafetensorsFile.readF32: F32 is read straight into `out`; other float dtypes via `scratch`. */
  readF32(name: string, out?: Float32Array, scratch?: Uint8Array): Float32Array {
    const t = this.byName.get(name);
    if (!t) throw new CheckpointError(this.dir, 'no such tensor in this checkpoint', name);
    return t.shard.readF32(name, out, scratch);
  }
  /** File names (relative to `dir`) of the non-weight files present: configs, tokenizer, templates. */
  auxFiles(): string[] {
    return readdirSync(this.dir)
      .filter((f) => isAuxName(f))
      .filter((f) => statSync(join(this.dir, f)).isFile())
      .sort();
  }
  parameterCount(): number {
    let n = 0;
    for (const { entry } of this.byName.values()) n += numelOf(entry.shape);
    return n;
  }
  /** Sum of tensor data bytes (what an index's total_size holds). */
  totalBytes(): number {
    let n = 0;
    for (const { entry } of this.byName.values()) n += entry.byteLength;
    return n;
  }
  close(): void {
    for (const s of this.shards) s.close();
  }
}

function openSharded(dir: string, indexPath: string): SafetensorsFile[] {
  const idx = readJson(indexPath, 'index');
  if (typeof idx !== 'object' || idx === null || Array.isArray(idx)) throw new CheckpointError(indexPath, 'index is not a JSON object');
  const wm = (idx as Record<string, unknown>).weight_map;
  if (wm === undefined) throw new CheckpointError(indexPath, "index has no 'weight_map'");
  if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) throw new CheckpointError(indexPath, "'weight_map' must be an object {tensor name: shard file}");
  const weightMap = wm as Record<string, unknown>;
  const shardFiles = new Set<string>();
  for (const [name, f] of Object.entries(weightMap)) {
    if (typeof f !== 'string' || f.length === 0) throw new CheckpointError(indexPath, `weight_map value must be a shard file name, got ${JSON.stringify(f)}`, name);
    if (f.includes('/') || f.includes('\\') || f === '.' || f === '..') throw new CheckpointError(indexPath, `shard '${f}' must be a plain file name inside the folder`, name);
    shardFiles.add(f);
  }
  if (shardFiles.size === 0) throw new CheckpointError(indexPath, 'weight_map is empty (no tensors)');
  for (const f of shardFiles) {
    if (!existsSync(join(dir, f))) {
      const example = Object.keys(weightMap).find((k) => weightMap[k] === f);
      throw new CheckpointError(indexPath, `shard '${f}' is listed in the index but missing from the folder`, example);
    }
  }
  // Shard files of the same series (…-of-N) that the index does not reference are checked too: their
  // tensors are either missing from the index or duplicates.
  const series = new Set([...shardFiles].map((f) => /^model-\d+-of-(\d+)\.safetensors$/.exec(f)?.[1]).filter((n) => n !== undefined));
  for (const f of readdirSync(dir)) {
    const m = /^model-\d+-of-(\d+)\.safetensors$/.exec(f);
    if (m && series.has(m[1]!)) shardFiles.add(f);
  }
  const names = [...shardFiles].sort();
  const opened: SafetensorsFile[] = [];
  try {
    const where = new Map<string, string>();
    for (const f of names) {
      const sf = SafetensorsFile.open(join(dir, f));
      opened.push(sf);
      for (const t of sf.tensors.keys()) {
        const other = where.get(t);
        if (other !== undefined) throw new CheckpointError(dir, `tensor is stored in two shards: '${other}' and '${f}'`, t);
        where.set(t, f);
        const listed = weightMap[t];
        if (listed === undefined) throw new CheckpointError(sf.path, `tensor is in this shard but not in the index ${INDEX_FILE}`, t);
        if (listed !== f) throw new CheckpointError(sf.path, `tensor is in this shard but the index lists it in '${listed as string}'`, t);
      }
    }
    for (const [t, f] of Object.entries(weightMap)) {
      if (!where.has(t)) throw new CheckpointError(join(dir, f as string), `tensor is listed in the index but not in its shard`, t);
    }
    return opened;
  } catch (e) {
    for (const s of opened) s.close();
    throw e;
  }
}

/** Parses a size like "5GB" (decimal units as in HF: KB, MB, GB, TB), "2GiB", "1.5 MB" or bytes. */
/**
 * Replace the folder `target` by the finished folder `staging`: the old folder is renamed aside
 * first and removed only after `staging` took its place, so `target` is always a complete folder
 * (or absent when it did not exist before).
 */
export function replaceDir(staging: string, target: string): void {
  if (existsSync(target)) {
    const old = `${staging}.old`;
    renameSync(target, old);
    renameSync(staging, target);
    rmSync(old, { recursive: true, force: true });
  } else renameSync(staging, target);
}

export function parseSize(s: string | number): number {
  if (typeof s === 'number') {
    if (!Number.isFinite(s) || s <= 0) throw new Error(`invalid size ${s}: must be a positive number of bytes`);
    return Math.floor(s);
  }
  const m = /^\s*(\d+(?:\.\d+)?|\.\d+)(?:[eE]([+-]?\d+))?\s*([a-zA-Z]*)\s*$/.exec(String(s));
  const units: Record<string, number> = {
    '': 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, k: 1e3, m: 1e6, g: 1e9, t: 1e12,
    kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40,
  };
  const unit = m ? units[m[3]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new Error(`invalid size '${s}' (use e.g. 5GB, 500MB, 2GiB or a plain number of bytes)`);
  const v = Number(m[1]) * 10 ** Number(m[2] ?? 0) * unit;
  if (!Number.isFinite(v) || v < 1) throw new Error(`invalid size '${s}': must be at least 1 byte`);
  return Math.floor(v);
}

export interface PlannedTensor {
  name: string;
  dtype: DType;
  shape: number[];
}

interface Shard {
  file: string;
  tensors: PlannedTensor[];
}

/**
 * Splits tensors into shards like Hugging Face `save_pretrained`: walk in order, start a new shard
 * when the next tensor would push the current one over `maxShardBytes` (only if the current shard is
 * not empty); a tensor larger than the limit therefore ends up alone in its shard.
 */
export function planShards(tensors: readonly PlannedTensor[], maxShardBytes: number): PlannedTensor[][] {
  const shards: PlannedTensor[][] = [[]];
  let size = 0;
  for (const t of tensors) {
    const bytes = numelOf(t.shape) * DTYPE_BYTES[t.dtype];
    if (size + bytes > maxShardBytes && shards[shards.length - 1]!.length > 0) {
      shards.push([]);
      size = 0;
    }
    shards[shards.length - 1]!.push(t);
    size += bytes;
  }
  return shards;
}

function looksLikeModelDir(dir: string): boolean {
  return readdirSync(dir).some((f) => f.endsWith('.safetensors') || f === INDEX_FILE || f === 'config.json');
}

/**
 * Writes a Hugging Face model folder tensor by tensor. Everything goes to a sibling temp folder
 * `<out>.tmp-<pid>-<random>`, renamed to `outDir` on commit(); any error thrown by write/commit (and
 * abort()) removes the temp folder, so `outDir` never holds a partial model.
 */
export class CheckpointWriter {
  readonly outDir: string;
  readonly tmpDir: string;
  readonly maxShardBytes: number;
  private readonly metadata: Record<string, string>;
  private readonly overwrite: boolean;
  private shards: Shard[] | null = null;
  private queue: Array<{ t: PlannedTensor; shard: number; bytes: number; lastInShard: boolean }> = [];
  private next = 0;
  private fd: number | null = null;
  private readonly extraFiles = new Set<string>();
  private state: 'open' | 'committed' | 'aborted' = 'open';

  constructor(outDir: string, opts: { maxShardBytes?: number; metadata?: Record<string, string>; overwrite?: boolean } = {}) {
    this.outDir = resolve(outDir);
    this.maxShardBytes = opts.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
    if (!(this.maxShardBytes > 0)) throw new CheckpointError(this.outDir, `maxShardBytes must be positive, got ${opts.maxShardBytes}`);
    this.metadata = { format: 'pt', ...(opts.metadata ?? {}) };
    this.overwrite = opts.overwrite ?? false;
    this.checkTarget();
    mkdirSync(dirname(this.outDir), { recursive: true });
    removeStaleTemps(this.outDir);
    this.tmpDir = tempSibling(this.outDir);
    mkdirSync(this.tmpDir);
  }

  private checkTarget(): void {
    if (!existsSync(this.outDir)) return;
    if (!statSync(this.outDir).isDirectory()) throw new CheckpointError(this.outDir, 'output path exists and is not a folder');
    if (readdirSync(this.outDir).length === 0) return;
    if (!this.overwrite) throw new CheckpointError(this.outDir, 'output folder exists and is not empty (pass overwrite to replace it)');
    if (!looksLikeModelDir(this.outDir)) throw new CheckpointError(this.outDir, 'refusing to overwrite: the existing folder does not look like a model folder (no config.json or *.safetensors)');
  }

  private fail(e: unknown): never {
    this.abort();
    throw e;
  }

  private ensureOpen(): void {
    if (this.state !== 'open') throw new CheckpointError(this.outDir, `writer is already ${this.state}`);
  }

  /** Fixes the tensor order and shard layout; must be called once, before write(). */
  plan(tensors: PlannedTensor[]): void {
    this.ensureOpen();
    if (this.shards) throw new CheckpointError(this.outDir, 'plan() was already called');
    try {
      const seen = new Set<string>();
      for (const t of tensors) {
        checkTensorSpec(t, this.outDir);
        if (seen.has(t.name)) throw new CheckpointError(this.outDir, 'tensor planned twice', t.name);
        seen.add(t.name);
      }
      const groups = planShards(tensors, this.maxShardBytes);
      this.shards = groups.map((g, i) => ({ file: groups.length === 1 ? SINGLE_FILE : shardName(i, groups.length), tensors: g }));
      this.queue = [];
      this.shards.forEach((s, si) =>
        s.tensors.forEach((t, ti) => this.queue.push({ t, shard: si, bytes: numelOf(t.shape) * DTYPE_BYTES[t.dtype], lastInShard: ti === s.tensors.length - 1 })),
      );
      this.next = 0;
      // An empty plan has nothing to write(): its header-only model.safetensors is written now.
      this.flushEmptyShards();
    } catch (e) {
      this.fail(e);
    }
  }

  /** Output shard file names, in order (after plan()). */
  shardFiles(): string[] {
    if (!this.shards) throw new CheckpointError(this.outDir, 'plan() has not been called');
    return this.shards.map((s) => s.file);
  }

  private openShard(si: number): void {
    const s = this.shards![si]!;
    this.fd = openSync(join(this.tmpDir, s.file), 'wx');
    writeFully(this.fd, buildHeader(s.tensors, this.metadata, join(this.outDir, s.file)));
  }
  private closeShard(): void {
    if (this.fd === null) return;
    const fd = this.fd;
    this.fd = null;
    fsyncSync(fd);
    closeSync(fd);
  }
  private flushEmptyShards(): void {
    if (this.queue.length === 0 && this.shards!.length === 1 && this.shards![0]!.tensors.length === 0) {
      this.openShard(0);
      this.closeShard();
    }
  }

  /** Writes the next planned tensor's data (raw little-endian bytes of its dtype). */
  write(name: string, data: Uint8Array): void {
    this.ensureOpen();
    try {
      if (!this.shards) throw new CheckpointError(this.outDir, 'write() before plan()', name);
      const q = this.queue[this.next];
      if (!q) throw new CheckpointError(this.outDir, 'write() of a tensor that is not in the plan (all planned tensors are already written)', name);
      if (q.t.name !== name) throw new CheckpointError(this.outDir, `written out of plan order: expected '${q.t.name}' next`, name);
      if (!(data instanceof Uint8Array)) throw new CheckpointError(this.outDir, 'data must be a Uint8Array of raw bytes', name);
      if (data.byteLength !== q.bytes) {
        throw new CheckpointError(this.outDir, `data is ${data.byteLength} bytes but shape ${JSON.stringify(q.t.shape)} of ${q.t.dtype} needs ${q.bytes}`, name);
      }
      if (this.fd === null) this.openShard(q.shard);
      writeFully(this.fd!, data);
      this.next++;
      if (q.lastInShard) this.closeShard();
    } catch (e) {
      this.fail(e);
    }
  }

  private checkExtraName(name: string): void {
    if (!name || name.includes('/') || name.includes('\\') || name === '.' || name === '..') throw new CheckpointError(this.outDir, `'${name}' must be a plain file name`);
    if (name.endsWith('.safetensors') || name === INDEX_FILE) throw new CheckpointError(this.outDir, `'${name}' is a weight file name; weights are written by plan()/write()`);
    if (this.extraFiles.has(name)) throw new CheckpointError(this.outDir, `'${name}' was already added`);
  }

  /** Copies a non-weight file (tokenizer, config…) into the output, under `name` (default: its base name). */
  copyFile(srcPath: string, name = basename(srcPath)): void {
    this.ensureOpen();
    try {
      this.checkExtraName(name);
      try {
        closeSync(openRegularFile(srcPath, name).fd); // a FIFO or folder is refused, never copied or waited on
      } catch (e) {
        throw new CheckpointError(srcPath, `cannot copy into the output (${e instanceof CheckpointError ? e.problem : (e as Error).message})`);
      }
      copyFileSync(srcPath, join(this.tmpDir, name));
      this.extraFiles.add(name);
    } catch (e) {
      if (e instanceof CheckpointError) this.fail(e);
      this.fail(new CheckpointError(srcPath, `cannot copy into the output (${(e as Error).message})`));
    }
  }

  /** Writes a JSON file (2-space indented) into the output. */
  writeJson(name: string, value: unknown): void {
    this.ensureOpen();
    try {
      this.checkExtraName(name);
      writeFileSync(join(this.tmpDir, name), JSON.stringify(value, null, 2) + '\n', { flag: 'wx' });
      this.extraFiles.add(name);
    } catch (e) {
      this.fail(e);
    }
  }

  /** Writes the index (if several shards), fsyncs, and moves the temp folder to `outDir`. */
  commit(): void {
    this.ensureOpen();
    try {
      if (!this.shards) throw new CheckpointError(this.outDir, 'commit() before plan()');
      if (this.next < this.queue.length) {
        throw new CheckpointError(this.outDir, `commit() with ${this.queue.length - this.next} planned tensor(s) not written`, this.queue[this.next]!.t.name);
      }
      if (this.shards.length > 1) {
        const weightMap: Record<string, string> = {};
        let total = 0;
        const entries: Array<[string, string]> = [];
        for (const s of this.shards) {
          for (const t of s.tensors) {
            entries.push([t.name, s.file]);
            total += numelOf(t.shape) * DTYPE_BYTES[t.dtype];
          }
        }
        entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
        for (const [k, v] of entries) weightMap[k] = v;
        writeFileSync(join(this.tmpDir, INDEX_FILE), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2) + '\n');
      }
      for (const f of readdirSync(this.tmpDir)) fsyncPath(join(this.tmpDir, f));
      fsyncPath(this.tmpDir);
      this.checkTarget();
      if (existsSync(this.outDir)) {
        if (readdirSync(this.outDir).length === 0) {
          rmdirSync(this.outDir);
          renameSync(this.tmpDir, this.outDir);
        } else {
          const old = tempSibling(this.outDir, 'old');
          renameSync(this.outDir, old);
          renameSync(this.tmpDir, this.outDir);
          rmSync(old, { recursive: true, force: true });
        }
      } else {
        renameSync(this.tmpDir, this.outDir);
      }
      fsyncPath(dirname(this.outDir));
      this.state = 'committed';
    } catch (e) {
      this.fail(e);
    }
  }

  /** Discards everything written so far (idempotent; a no-op after commit). */
  abort(): void {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    if (this.fd !== null) {
      try {
        closeSync(this.fd);
      } catch {
        // already closed
      }
      this.fd = null;
    }
    rmSync(this.tmpDir, { recursive: true, force: true });
  }
}

/** Removes `<out>.tmp-<pid>-<hex>` / `<out>.old-<pid>-<hex>` folders left by writers whose process is gone. */
function removeStaleTemps(outDir: string): void {
  const base = basename(outDir);
  let names: string[];
  try {
    names = readdirSync(dirname(outDir));
  } catch {
    return;
  }
  for (const n of names) {
    if (!n.startsWith(base + '.')) continue;
    const m = /^\.(?:tmp|old)-(\d+)-[0-9a-f]{8}$/.exec(n.slice(base.length));
    if (!m) continue;
    const pid = Number(m[1]);
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch (e) {
      alive = (e as NodeJS.ErrnoException).code !== 'ESRCH';
    }
    if (!alive) rmSync(join(dirname(outDir), n), { recursive: true, force: true });
  }
}

function fsyncPath(p: string): void {
  let fd: number | null = null;
  try {
    fd = openSync(p, 'r');
    fsyncSync(fd);
  } catch {
    // some filesystems refuse fsync on directories; the data files were synced already
  } finally {
    if (fd !== null) closeSync(fd);
  }
}
