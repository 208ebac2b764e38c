/**
 * safetensors reading and writing, streaming: the header is read and fully validated when a file is
 * opened; tensor data is read on demand, one `readSync` at the tensor's offset into a preallocated
 * buffer. Nothing ever reads a whole file into memory.
 *
 * Layout: u64 LE header length N · N bytes UTF-8 JSON header · data buffer (tensors tile it).
 */
import { closeSync, fsyncSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { endianness } from 'node:os';
import { DTYPE_BYTES, decodeToF32, isDType, isFloatDType } from '../tensor/dtype.ts';
import type { DType } from '../tensor/dtype.ts';
import { CheckpointError } from './errors.ts';
import { openRegularFile } from './files.ts';

export interface TensorEntry {
  name: string;
  dtype: DType;
  shape: number[];
  /** The safetensors file holding the tensor. */
  file: string;
  /** absolute byte offset in file */
  offset: number;
  byteLength: number;
}

/** Largest header the reference implementation accepts. */
export const MAX_HEADER_BYTES = 100_000_000;
const LITTLE_ENDIAN_HOST = endianness() === 'LE';
/** Largest single read/write call (Node caps one call below 2 GiB). */
const IO_CHUNK = 1 << 30;

/** Number of elements of a shape (1 for a scalar). */
export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Reads exactly `length` bytes at `position` into `buf` (from its start), or throws. */
export function readFully(fd: number, buf: Uint8Array, position: number, file: string, tensor?: string): void {
  let done = 0;
  while (done < buf.byteLength) {
    const want = Math.min(IO_CHUNK, buf.byteLength - done);
    const got = readSync(fd, buf, done, want, position + done);
    if (got === 0) throw new CheckpointError(file, `unexpected end of file at byte ${position + done} (file shrank while open?)`, tensor);
    done += got;
  }
}

/** Writes all of `buf` at the current position of `fd`. */
export function writeFully(fd: number, buf: Uint8Array): void {
  let done = 0;
  while (done < buf.byteLength) done += writeSync(fd, buf, done, Math.min(IO_CHUNK, buf.byteLength - done));
}

/**
 * Names of the top-level keys of a JSON object text in document order, duplicates included
 * (JSON.parse silently keeps the last of duplicated keys). The text must already be valid JSON.
 */
export function topLevelKeys(text: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i;
      i++;
      while (i < text.length) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) i += 2;
        else if (d === 0x22) break;
        else i++;
      }
      if (depth === 1 && expectKey) {
        keys.push(JSON.parse(text.slice(start, i + 1)) as string);
        expectKey = false;
      }
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      depth++;
      if (depth === 1) expectKey = true;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth--;
    } else if (c === 0x2c /* , */ && depth === 1) {
      expectKey = true;
    }
  }
  return keys;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
function isNonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Parses and validates a safetensors header (JSON text) for a data buffer of `dataBytes` bytes.
 * Returns metadata and entries in data-offset order, with offsets relative to the data buffer.
 */
function parseHeader(file: string, text: string, dataBytes: number): { metadata: Record<string, string>; entries: TensorEntry[] } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(file, `header is not valid JSON (${(e as Error).message})`);
  }
  if (!isPlainObject(json)) throw new CheckpointError(file, `header is not a JSON object (got ${Array.isArray(json) ? 'an array' : json === null ? 'null' : typeof json})`);
  const seen = new Set<string>();
  for (const k of topLevelKeys(text)) {
    if (seen.has(k)) throw new CheckpointError(file, k === '__metadata__' ? 'header has __metadata__ twice' : 'tensor name appears twice in the header', k === '__metadata__' ? undefined : k);
    seen.add(k);
  }
  const metadata: Record<string, string> = {};
  const entries: Array<TensorEntry & { begin: number; end: number }> = [];
  for (const [name, v] of Object.entries(json)) {
    if (name === '__metadata__') {
      if (!isPlainObject(v)) throw new CheckpointError(file, '__metadata__ must be an object of string values');
      for (const [mk, mv] of Object.entries(v)) {
        if (typeof mv !== 'string') throw new CheckpointError(file, `__metadata__ value of '${mk}' must be a string, got ${JSON.stringify(mv)}`);
        metadata[mk] = mv;
      }
      continue;
    }
    if (!isPlainObject(v)) throw new CheckpointError(file, 'header entry must be an object with dtype, shape and data_offsets', name);
    for (const field of ['dtype', 'shape', 'data_offsets']) {
      if (!(field in v)) throw new CheckpointError(file, `header entry has no '${field}'`, name);
    }
    const { dtype, shape, data_offsets: offs } = v as { dtype: unknown; shape: unknown; data_offsets: unknown };
    if (typeof dtype !== 'string') throw new CheckpointError(file, `dtype must be a string, got ${JSON.stringify(dtype)}`, name);
    if (!isDType(dtype)) throw new CheckpointError(file, `unknown or unsupported dtype '${dtype}' (supported: ${Object.keys(DTYPE_BYTES).join(', ')})`, name);
    if (!Array.isArray(shape)) throw new CheckpointError(file, `shape must be an array of integers, got ${JSON.stringify(shape)}`, name);
    for (const d of shape) {
      if (!isNonNegInt(d)) throw new CheckpointError(file, `shape ${JSON.stringify(shape)} has a dimension that is not a non-negative integer (${JSON.stringify(d)})`, name);
    }
    if (!Array.isArray(offs) || offs.length !== 2) throw new CheckpointError(file, `data_offsets must be [begin, end], got ${JSON.stringify(offs)}`, name);
    const [begin, end] = offs as unknown[];
    if (!isNonNegInt(begin) || !isNonNegInt(end)) throw new CheckpointError(file, `data_offsets must be non-negative integers, got ${JSON.stringify(offs)}`, name);
    if (end < begin) throw new CheckpointError(file, `data_offsets end ${end} is before begin ${begin}`, name);
    const numel = numelOf(shape as number[]);
    const expected = numel * DTYPE_BYTES[dtype];
    if (!Number.isSafeInteger(expected)) throw new CheckpointError(file, `shape ${JSON.stringify(shape)} is too large`, name);
    if (end - begin !== expected) {
      throw new CheckpointError(file, `data_offsets [${begin}, ${end}] span ${end - begin} bytes but shape ${JSON.stringify(shape)} of ${dtype} needs ${expected}`, name);
    }
    entries.push({ name, dtype, shape: (shape as number[]).slice(), file, offset: begin, byteLength: expected, begin, end });
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  let prev: string | undefined;
  for (const e of entries) {
    if (e.begin < pos) throw new CheckpointError(file, `data [${e.begin}, ${e.end}) overlaps tensor '${prev}' (which ends at ${pos})`, e.name);
    if (e.begin > pos) {
      throw new CheckpointError(file, `data starts at ${e.begin} but the previous tensor${prev === undefined ? 's end' : ` '${prev}' ends`} at ${pos}: gap of ${e.begin - pos} unused bytes`, e.name);
    }
    pos = e.end;
    prev = e.name;
  }
  if (dataBytes < pos) throw new CheckpointError(file, `file is truncated: tensors need a ${pos}-byte data buffer but only ${dataBytes} bytes follow the header`);
  if (dataBytes > pos) throw new CheckpointError(file, `${dataBytes - pos} bytes of trailing garbage after the last tensor (data buffer is ${dataBytes} bytes, tensors end at ${pos})`);
  return { metadata, entries: entries.map(({ begin: _b, end: _e, ...rest }) => rest) };
}

export class SafetensorsFile {
  readonly path: string;
  readonly metadata: Record<string, string>;
  /** In data-offset order; `offset` is absolute in the file. */
  readonly tensors: Map<string, TensorEntry>;
  /** Bytes before the data buffer (8 + header length). */
  readonly dataStart: number;
  readonly fileSize: number;
  private fd: number | null;

  private constructor(path: string, fd: number, fileSize: number, dataStart: number, metadata: Record<string, string>, tensors: Map<string, TensorEntry>) {
    this.path = path;
    this.fd = fd;
    this.fileSize = fileSize;
    this.dataStart = dataStart;
    this.metadata = metadata;
    this.tensors = tensors;
  }

  /** Opens a file and validates its whole header (throws CheckpointError naming the file). */
  static open(path: string): SafetensorsFile {
    let fd: number;
    let size: number;
    try {
      // a FIFO / socket / device under a weight file name is refused before any read (never blocks)
      ({ fd, size } = openRegularFile(path, 'safetensors file'));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (e instanceof CheckpointError) {
        if (/ not found$/.test(e.problem)) throw new CheckpointError(path, 'file not found');
        if (/it is a folder/.test(e.problem)) throw new CheckpointError(path, 'is a directory, not a safetensors file');
        throw e;
      }
      throw new CheckpointError(path, code === 'ENOENT' ? 'file not found' : `cannot open (${(e as Error).message})`);
    }
    try {
      if (size < 8) throw new CheckpointError(path, `file is ${size} bytes, too small for a safetensors file (needs at least the 8-byte header length)`);
      const lenBuf = new Uint8Array(8);
      readFully(fd, lenBuf, 0, path);
      const n64 = new DataView(lenBuf.buffer).getBigUint64(0, true);
      if (n64 > BigInt(MAX_HEADER_BYTES)) throw new CheckpointError(path, `header over 100 MB (header length field says ${n64} bytes; corrupt or not a safetensors file)`);
      const n = Number(n64);
      if (8 + n > size) throw new CheckpointError(path, `file is truncated: header length is ${n} bytes but the file has only ${size - 8} bytes after the length field`);
      if (n === 0) throw new CheckpointError(path, 'header is empty (length 0); expected a JSON object');
      const headerBytes = new Uint8Array(n);
      readFully(fd, headerBytes, 8, path);
      let text: string;
      try {
        text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes);
      } catch {
        throw new CheckpointError(path, 'header is not valid UTF-8');
      }
      if (text.trimStart()[0] !== '{') throw new CheckpointError(path, 'header is not a JSON object (does not start with {)');
      const { metadata, entries } = parseHeader(path, text, size - 8 - n);
      const tensors = new Map<string, TensorEntry>();
      for (const e of entries) {
        e.offset += 8 + n;
        tensors.set(e.name, e);
      }
      return new SafetensorsFile(path, fd, size, 8 + n, metadata, tensors);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /** The entry of a tensor (throws naming the file and tensor if absent). */
  info(name: string): TensorEntry {
    const e = this.tensors.get(name);
    if (!e) throw new CheckpointError(this.path, 'no such tensor in this file', name);
    return e;
  }

  private openFd(name?: string): number {
    if (this.fd === null) throw new CheckpointError(this.path, 'file is closed', name);
    return this.fd;
  }

  /**
   * Raw little-endian bytes of a tensor, read with one `readSync`. With `into`, reads into its first
   * byteLength bytes (it must be at least that large) and returns that view.
   */
  readBytes(name: string, into?: Uint8Array): Uint8Array {
    const e = this.info(name);
    const fd = this.openFd(name);
    let buf: Uint8Array;
    if (into) {
      if (into.byteLength < e.byteLength) throw new CheckpointError(this.path, `buffer of ${into.byteLength} bytes is too small for ${e.byteLength} bytes`, name);
      buf = into.byteLength === e.byteLength ? into : into.subarray(0, e.byteLength);
    } else {
      buf = new Uint8Array(e.byteLength);
    }
    readFully(fd, buf, e.offset, this.path, name);
    return buf;
  }

  /**
   * A float tensor (F32, F16, BF16, F64) as float32, into `out` if given (exactly numel long). F32 is
   * read straight into the result; other dtypes are read into `scratch` (if given and large enough,
   * else a new buffer) and decoded.
   */
  readF32(name: string, out?: Float32Array, scratch?: Uint8Array): Float32Array {
    const e = this.info(name);
    if (!isFloatDType(e.dtype) && e.dtype !== 'F64') throw new CheckpointError(this.path, `dtype ${e.dtype} is not a float type; cannot read as float32`, name);
    const n = numelOf(e.shape);
    if (out && out.length !== n) throw new CheckpointError(this.path, `output has ${out.length} elements, tensor has ${n}`, name);
    if (e.dtype === 'F32' && LITTLE_ENDIAN_HOST) {
      const res = out ?? new Float32Array(n);
      readFully(this.openFd(name), new Uint8Array(res.buffer, res.byteOffset, e.byteLength), e.offset, this.path, name);
      return res;
    }
    return decodeToF32(this.readBytes(name, scratch && scratch.byteLength >= e.byteLength ? scratch : undefined), e.dtype, out);
  }

  close(): void {
    if (this.fd !== null) {
      closeSync(this.fd);
      this.fd = null;
    }
  }
}

export interface HeaderTensor {
  name: string;
  dtype: DType;
  shape: number[];
}

/** Checks a tensor description to be written; returns its byte length. */
export function checkTensorSpec(t: HeaderTensor, file: string): number {
  if (typeof t.name !== 'string' || t.name.length === 0) throw new CheckpointError(file, `tensor name must be a non-empty string, got ${JSON.stringify(t.name)}`);
  if (t.name === '__metadata__') throw new CheckpointError(file, "'__metadata__' is reserved and cannot be a tensor name");
  if (!isDType(t.dtype)) throw new CheckpointError(file, `unknown dtype '${String(t.dtype)}'`, t.name);
  if (!Array.isArray(t.shape) || !t.shape.every(isNonNegInt)) throw new CheckpointError(file, `shape ${JSON.stringify(t.shape)} must be non-negative integers`, t.name);
  const bytes = numelOf(t.shape) * DTYPE_BYTES[t.dtype];
  if (!Number.isSafeInteger(bytes)) throw new CheckpointError(file, `shape ${JSON.stringify(t.shape)} is too large`, t.name);
  return bytes;
}

/**
 * The bytes before the data buffer: u64 LE header length, then the JSON header (`__metadata__`
 * first, then tensors with consecutive data offsets in the given order), padded with spaces so that
 * the data buffer starts at a multiple of 8.
 */
export function buildHeader(tensors: readonly HeaderTensor[], metadata: Record<string, string> | undefined, file = '<header>'): Uint8Array {
  const header: Record<string, unknown> = {};
  const md = metadata ?? { format: 'pt' };
  for (const [k, v] of Object.entries(md)) {
    if (typeof v !== 'string') throw new CheckpointError(file, `metadata value of '${k}' must be a string`);
  }
  if (Object.keys(md).length > 0) header.__metadata__ = md;
  let pos = 0;
  const names = new Set<string>();
  for (const t of tensors) {
    const bytes = checkTensorSpec(t, file);
    if (names.has(t.name)) throw new CheckpointError(file, 'tensor name given twice', t.name);
    names.add(t.name);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [pos, pos + bytes] };
    pos += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const n = Math.ceil((8 + json.byteLength) / 8) * 8 - 8;
  const out = new Uint8Array(8 + n).fill(0x20, 8 + json.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(n), true);
  out.set(json, 8);
  return out;
}

/** A unique temporary sibling name for `path`. */
export function tempSibling(path: string, kind = 'tmp'): string {
  return `${path}.${kind}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/**
 * Writes a safetensors file atomically (temp file, fsync, rename). Tensors are stored in the given
 * order. `metadata` defaults to {"format": "pt"} (pass {} for no __metadata__).
 */
export function writeSafetensors(path: string, tensors: Array<{ name: string; dtype: DType; shape: number[]; data: Uint8Array }>, metadata?: Record<string, string>): void {
  for (const t of tensors) {
    const bytes = checkTensorSpec(t, path);
    if (!(t.data instanceof Uint8Array)) throw new CheckpointError(path, 'data must be a Uint8Array', t.name);
    if (t.data.byteLength !== bytes) throw new CheckpointError(path, `data is ${t.data.byteLength} bytes but shape ${JSON.stringify(t.shape)} of ${t.dtype} needs ${bytes}`, t.name);
  }
  const head = buildHeader(tensors, metadata, path);
  const tmp = tempSibling(path);
  let fd: number | null = null;
  try {
    fd = openSync(tmp, 'wx');
    writeFully(fd, head);
    for (const t of tensors) writeFully(fd, t.data);
    fsyncSync(fd);
    closeSync(fd);
    fd = null;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== null) closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
}
