/**
 * GGUF version 3 (llama.cpp's model file): a streaming writer and a validating header reader.
 *
 * Layout: "GGUF" · u32 version · u64 tensor_count · u64 kv_count · key/values · tensor infos ·
 * zero padding to the alignment · tensor data (each tensor at a multiple of the alignment, offsets
 * relative to the data section). Little-endian. Tensor dims are stored innermost first; this module's
 * API uses PyTorch order (outermost first, `shape`) and converts.
 */
import { closeSync, fstatSync, fsyncSync, openSync, readSync, renameSync, rmSync } from 'node:fs';
import { tempSibling, writeFully } from './safetensors.ts';
import { decodeToF32 } from '../tensor/dtype.ts';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as u32 LE
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Metadata value type ids. */
export const GGUF_TYPE = {
  u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12,
} as const;
export type GgufScalarType = Exclude<keyof typeof GGUF_TYPE, 'array'>;
const TYPE_NAMES: Record<number, keyof typeof GGUF_TYPE> = Object.fromEntries(Object.entries(GGUF_TYPE).map(([k, v]) => [v, k as keyof typeof GGUF_TYPE]));

/** ggml tensor types: id → [name, values per block, bytes per block]. */
export const GGML_TYPES: Record<number, { name: string; blockValues: number; blockBytes: number }> = {
  0: { name: 'F32', blockValues: 1, blockBytes: 4 },
  1: { name: 'F16', blockValues: 1, blockBytes: 2 },
  2: { name: 'Q4_0', blockValues: 32, blockBytes: 18 },
  3: { name: 'Q4_1', blockValues: 32, blockBytes: 20 },
  6: { name: 'Q5_0', blockValues: 32, blockBytes: 22 },
  7: { name: 'Q5_1', blockValues: 32, blockBytes: 24 },
  8: { name: 'Q8_0', blockValues: 32, blockBytes: 34 },
  9: { name: 'Q8_1', blockValues: 32, blockBytes: 36 },
  10: { name: 'Q2_K', blockValues: 256, blockBytes: 84 },
  11: { name: 'Q3_K', blockValues: 256, blockBytes: 110 },
  12: { name: 'Q4_K', blockValues: 256, blockBytes: 144 },
  13: { name: 'Q5_K', blockValues: 256, blockBytes: 176 },
  14: { name: 'Q6_K', blockValues: 256, blockBytes: 210 },
  15: { name: 'Q8_K', blockValues: 256, blockBytes: 292 },
  24: { name: 'I8', blockValues: 1, blockBytes: 1 },
  25: { name: 'I16', blockValues: 1, blockBytes: 2 },
  26: { name: 'I32', blockValues: 1, blockBytes: 4 },
  27: { name: 'I64', blockValues: 1, blockBytes: 8 },
  28: { name: 'F64', blockValues: 1, blockBytes: 8 },
  30: { name: 'BF16', blockValues: 1, blockBytes: 2 },
};
export const GGML_TYPE = { F32: 0, F16: 1, BF16: 30 } as const;
/** The tensor types this writer accepts (unquantized floats). */
export type GgmlFloatType = keyof typeof GGML_TYPE;

/** A metadata value: a scalar of `type`, or an array of `itemType` (nested arrays: items are GgufValue). */
export type GgufValue =
  | { type: GgufScalarType; value: number | bigint | boolean | string }
  | { type: 'array'; itemType: keyof typeof GGUF_TYPE; value: Array<number | bigint | boolean | string | GgufValue> };

export interface GgufTensorInfo {
  name: string;
  /** PyTorch order (outermost first). */
  shape: number[];
  /** As stored: innermost first. */
  dims: number[];
  /** ggml type id and name. */
  type: number;
  typeName: string;
  /** Offset relative to the data section. */
  offset: number;
  /** Absolute offset in the file. */
  fileOffset: number;
  /** Bytes of data, null for a ggml type this module does not know. */
  byteLength: number | null;
}

export class GgufError extends Error {
  override name = 'GgufError';
  constructor(readonly file: string, readonly problem: string) {
    super(`${file}: ${problem}`);
  }
}

export function alignUp(x: number, a: number): number {
  return x + ((a - (x % a)) % a);
}

function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Bytes of a tensor of `shape` and ggml `type` (rows are whole blocks), or null if the type is unknown. */
export function ggmlByteLength(type: number, shape: readonly number[]): number | null {
  const t = GGML_TYPES[type];
  if (!t) return null;
  const inner = shape.length === 0 ? 1 : shape[shape.length - 1]!;
  if (inner % t.blockValues !== 0) return null;
  return (numel(shape) / t.blockValues) * t.blockBytes;
}

// ---------------------------------------------------------------- writer

const enc = new TextEncoder();

/** Growable little-endian byte buffer for the header part. */
class ByteSink {
  private buf = new Uint8Array(1 << 16);
  private dv = new DataView(this.buf.buffer);
  length = 0;
  private ensure(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.length + n) cap *= 2;
    const nb = new Uint8Array(cap);
    nb.set(this.buf.subarray(0, this.length));
    this.buf = nb;
    this.dv = new DataView(nb.buffer);
  }
  u8(v: number): void { this.ensure(1); this.dv.setUint8(this.length, v); this.length += 1; }
  i8(v: number): void { this.ensure(1); this.dv.setInt8(this.length, v); this.length += 1; }
  u16(v: number): void { this.ensure(2); this.dv.setUint16(this.length, v, true); this.length += 2; }
  i16(v: number): void { this.ensure(2); this.dv.setInt16(this.length, v, true); this.length += 2; }
  u32(v: number): void { this.ensure(4); this.dv.setUint32(this.length, v, true); this.length += 4; }
  i32(v: number): void { this.ensure(4); this.dv.setInt32(this.length, v, true); this.length += 4; }
  f32(v: number): void { this.ensure(4); this.dv.setFloat32(this.length, v, true); this.length += 4; }
  f64(v: number): void { this.ensure(8); this.dv.setFloat64(this.length, v, true); this.length += 8; }
  u64(v: number | bigint): void { this.ensure(8); this.dv.setBigUint64(this.length, BigInt(v), true); this.length += 8; }
  i64(v: number | bigint): void { this.ensure(8); this.dv.setBigInt64(this.length, BigInt(v), true); this.length += 8; }
  bytes(b: Uint8Array): void { this.ensure(b.length); this.buf.set(b, this.length); this.length += b.length; }
  str(s: string): void { const b = enc.encode(s); this.u64(b.length); this.bytes(b); }
  zeros(n: number): void { this.ensure(n); this.buf.fill(0, this.length, this.length + n); this.length += n; }
  view(): Uint8Array { return this.buf.subarray(0, this.length); }
}

const INT_RANGES: Partial<Record<GgufScalarType, [number, number]>> = {
  u8: [0, 0xff], i8: [-0x80, 0x7f], u16: [0, 0xffff], i16: [-0x8000, 0x7fff], u32: [0, 0xffffffff], i32: [-0x80000000, 0x7fffffff],
};

function writeScalar(s: ByteSink, type: keyof typeof GGUF_TYPE, v: unknown, key: string): void {
  const bad = (want: string) => new Error(`GGUF metadata '${key}': ${type} value must be ${want}, got ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`);
  const range = INT_RANGES[type as GgufScalarType];
  if (range) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < range[0] || v > range[1]) throw bad(`an integer in [${range[0]}, ${range[1]}]`);
  }
  switch (type) {
    case 'u8': s.u8(v as number); return;
    case 'i8': s.i8(v as number); return;
    case 'u16': s.u16(v as number); return;
    case 'i16': s.i16(v as number); return;
    case 'u32': s.u32(v as number); return;
    case 'i32': s.i32(v as number); return;
    case 'f32': case 'f64':
      if (typeof v !== 'number') throw bad('a number');
      if (type === 'f32') s.f32(v); else s.f64(v);
      return;
    case 'u64': case 'i64':
      if (!(typeof v === 'bigint' || (typeof v === 'number' && Number.isSafeInteger(v)))) throw bad('an integer');
      if (type === 'u64') {
        if (BigInt(v) < 0n || BigInt(v) >= 1n << 64n) throw bad('in u64 range');
        s.u64(v);
      } else {
        if (BigInt(v) < -(1n << 63n) || BigInt(v) >= 1n << 63n) throw bad('in i64 range');
        s.i64(v);
      }
      return;
    case 'bool':
      if (typeof v !== 'boolean') throw bad('a boolean');
      s.u8(v ? 1 : 0);
      return;
    case 'string':
      if (typeof v !== 'string') throw bad('a string');
      s.str(v);
      return;
    case 'array': {
      const g = v as GgufValue;
      if (typeof g !== 'object' || g === null || g.type !== 'array' || !Array.isArray(g.value)) throw bad('a nested { type: "array", itemType, value } object');
      writeArray(s, g.itemType, g.value, key);
      return;
    }
  }
}

function writeArray(s: ByteSink, itemType: keyof typeof GGUF_TYPE, items: readonly unknown[], key: string): void {
  if (!(itemType in GGUF_TYPE)) throw new Error(`GGUF metadata '${key}': unknown array item type '${String(itemType)}'`);
  s.u32(GGUF_TYPE[itemType]);
  s.u64(items.length);
  for (const it of items) writeScalar(s, itemType, it, key);
}

interface PlannedGgufTensor {
  name: string;
  shape: number[];
  type: number;
  offset: number;
  byteLength: number;
  written: boolean;
}

/**
 * Streaming GGUF writer. Add metadata and tensor declarations, call `begin()` (writes the header to a
 * temp file), then `writeTensor` each tensor's bytes in declaration order, then `commit()` (fsync +
 * rename). `abort()` removes the temp file. Only one tensor's bytes are ever held by the caller.
 */
export class GgufWriter {
  readonly path: string;
  readonly alignment: number;
  private readonly kv = new Map<string, GgufValue>();
  private readonly tensors: PlannedGgufTensor[] = [];
  private readonly byName = new Map<string, PlannedGgufTensor>();
  private tmp: string | null = null;
  private fd: number | null = null;
  private next = 0;
  private pos = 0;
  private dataStart = 0;

  constructor(path: string, opts: { alignment?: number } = {}) {
    this.path = path;
    this.alignment = opts.alignment ?? GGUF_DEFAULT_ALIGNMENT;
    if (!Number.isInteger(this.alignment) || this.alignment < 8 || this.alignment % 8 !== 0 || (this.alignment & (this.alignment - 1)) !== 0) {
      throw new Error(`GGUF alignment must be a power of two and a multiple of 8, got ${this.alignment}`);
    }
    if (this.alignment !== GGUF_DEFAULT_ALIGNMENT) this.kv.set('general.alignment', { type: 'u32', value: this.alignment });
  }

  private checkOpen(what: string): void {
    if (this.fd !== null || this.tmp !== null) throw new Error(`GgufWriter(${this.path}): cannot ${what} after begin()`);
  }

  /** Sets a metadata key (insertion order is kept; setting a key twice is an error). */
  set(key: string, value: GgufValue): this {
    this.checkOpen(`set '${key}'`);
    if (!/^[A-Za-z0-9_.-]+$/.test(key) || key.length > 65535) throw new Error(`GGUF metadata key '${key}' is not a dot-separated ASCII name`);
    if (this.kv.has(key)) throw new Error(`GGUF metadata key '${key}' set twice`);
    // validate now, so errors name the key before any file is written
    writeScalar(new ByteSink(), value.type, value.type === 'array' ? value : value.value, key);
    this.kv.set(key, value);
    return this;
  }
  setString(key: string, v: string): this { return this.set(key, { type: 'string', value: v }); }
  setU32(key: string, v: number): this { return this.set(key, { type: 'u32', value: v }); }
  setI32(key: string, v: number): this { return this.set(key, { type: 'i32', value: v }); }
  setF32(key: string, v: number): this { return this.set(key, { type: 'f32', value: v }); }
  setBool(key: string, v: boolean): this { return this.set(key, { type: 'bool', value: v }); }
  setArray(key: string, itemType: keyof typeof GGUF_TYPE, values: GgufValue['value'][] | readonly (string | number | boolean)[]): this {
    return this.set(key, { type: 'array', itemType, value: values as Array<number | bigint | boolean | string | GgufValue> });
  }

  /** Declares a tensor; `shape` in PyTorch order (outermost first), 1–4 dims. */
  addTensor(name: string, shape: readonly number[], type: GgmlFloatType | number): void {
    this.checkOpen(`add tensor '${name}'`);
    const t = typeof type === 'number' ? type : GGML_TYPE[type];
    const nameBytes = enc.encode(name).length;
    if (nameBytes === 0 || nameBytes > 64) throw new Error(`GGUF tensor name '${name}' must be 1–64 bytes`);
    if (this.byName.has(name)) throw new Error(`GGUF tensor '${name}' declared twice`);
    if (shape.length < 1 || shape.length > 4) throw new Error(`GGUF tensor '${name}': ${shape.length} dims (1–4 allowed)`);
    if (shape.some((d) => !Number.isSafeInteger(d) || d < 1)) throw new Error(`GGUF tensor '${name}': bad shape [${shape}]`);
    const byteLength = ggmlByteLength(t, shape);
    if (byteLength === null) throw new Error(`GGUF tensor '${name}': ggml type ${t} unknown or inner dim ${shape[shape.length - 1]} not a multiple of its block size`);
    const last = this.tensors[this.tensors.length - 1];
    const offset = last ? alignUp(last.offset + last.byteLength, this.alignment) : 0;
    const p: PlannedGgufTensor = { name, shape: [...shape], type: t, offset, byteLength, written: false };
    this.tensors.push(p);
    this.byName.set(name, p);
  }

  /** Writes header, metadata and tensor infos to a temp file next to `path`. */
  begin(): void {
    this.checkOpen('begin() twice');
    const s = new ByteSink();
    s.u32(GGUF_MAGIC);
    s.u32(GGUF_VERSION);
    s.u64(this.tensors.length);
    s.u64(this.kv.size);
    for (const [key, v] of this.kv) {
      s.str(key);
      s.u32(GGUF_TYPE[v.type]);
      writeScalar(s, v.type, v.type === 'array' ? v : v.value, key);
    }
    for (const t of this.tensors) {
      s.str(t.name);
      s.u32(t.shape.length);
      for (let i = t.shape.length - 1; i >= 0; i--) s.u64(t.shape[i]!);
      s.u32(t.type);
      s.u64(t.offset);
    }
    s.zeros(alignUp(s.length, this.alignment) - s.length);
    this.dataStart = s.length;
    this.tmp = tempSibling(this.path);
    this.fd = openSync(this.tmp, 'wx');
    try {
      writeFully(this.fd, s.view());
    } catch (e) {
      this.abort();
      throw e;
    }
    this.pos = 0;
  }

  /** Writes the next tensor's raw little-endian bytes (tensors must come in declaration order). */
  writeTensor(name: string, data: Uint8Array): void {
    if (this.fd === null) throw new Error(`GgufWriter(${this.path}): writeTensor('${name}') before begin()`);
    const t = this.tensors[this.next];
    if (!t) throw new Error(`GgufWriter(${this.path}): tensor '${name}' was not declared (all ${this.tensors.length} already written)`);
    if (t.name !== name) throw new Error(`GgufWriter(${this.path}): expected tensor '${t.name}' next, got '${name}'`);
    if (data.byteLength !== t.byteLength) throw new Error(`GgufWriter(${this.path}): tensor '${name}' needs ${t.byteLength} bytes, got ${data.byteLength}`);
    if (this.pos < t.offset) writeFully(this.fd, new Uint8Array(t.offset - this.pos));
    writeFully(this.fd, data);
    this.pos = t.offset + t.byteLength;
    t.written = true;
    this.next++;
  }

  /** Pads the file, fsyncs and renames it into place. */
  commit(): void {
    if (this.fd === null || this.tmp === null) throw new Error(`GgufWriter(${this.path}): commit() before begin()`);
    const missing = this.tensors.filter((t) => !t.written).map((t) => t.name);
    if (missing.length > 0) {
      this.abort();
      throw new Error(`GgufWriter(${this.path}): tensors not written: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}`);
    }
    const end = alignUp(this.pos, this.alignment);
    if (end > this.pos) writeFully(this.fd, new Uint8Array(end - this.pos));
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = null;
    renameSync(this.tmp, this.path);
    this.tmp = null;
  }

  abort(): void {
    if (this.fd !== null) {
      try { closeSync(this.fd); } catch { /* already closed */ }
      this.fd = null;
    }
    if (this.tmp !== null) {
      rmSync(this.tmp, { force: true });
      this.tmp = null;
    }
  }

  /** Absolute offset of the data section (valid after begin()). */
  get dataOffset(): number {
    return this.dataStart;
  }
}

// ---------------------------------------------------------------- reader

export interface GgufFile {
  path: string;
  version: number;
  fileSize: number;
  alignment: number;
  /** Metadata in file order. */
  metadata: Map<string, GgufValue>;
  tensors: GgufTensorInfo[];
  /** Absolute offset of the data section. */
  dataStart: number;
}

/** Reads forward through a file descriptor in chunks, so huge vocab arrays never need the whole file. */
class Cursor {
  private buf = new Uint8Array(0);
  private bufStart = 0;
  pos = 0;
  constructor(private readonly fd: number, readonly size: number, private readonly file: string) {}
  fail(problem: string): never {
    throw new GgufError(this.file, problem);
  }
  private need(n: number, what: string): DataView {
    if (this.pos + n > this.size) this.fail(`truncated: ${what} at byte ${this.pos} needs ${n} bytes, file has ${this.size}`);
    if (this.pos < this.bufStart || this.pos + n > this.bufStart + this.buf.length) {
      const len = Math.min(Math.max(n, 1 << 20), this.size - this.pos);
      const b = new Uint8Array(len);
      let got = 0;
      while (got < len) {
        const r = readSync(this.fd, b, got, len - got, this.pos + got);
        if (r === 0) this.fail(`unexpected end of file at byte ${this.pos + got}`);
        got += r;
      }
      this.buf = b;
      this.bufStart = this.pos;
    }
    const dv = new DataView(this.buf.buffer, this.pos - this.bufStart, n);
    this.pos += n;
    return dv;
  }
  u8(w: string): number { return this.need(1, w).getUint8(0); }
  i8(w: string): number { return this.need(1, w).getInt8(0); }
  u16(w: string): number { return this.need(2, w).getUint16(0, true); }
  i16(w: string): number { return this.need(2, w).getInt16(0, true); }
  u32(w: string): number { return this.need(4, w).getUint32(0, true); }
  i32(w: string): number { return this.need(4, w).getInt32(0, true); }
  f32(w: string): number { return this.need(4, w).getFloat32(0, true); }
  f64(w: string): number { return this.need(8, w).getFloat64(0, true); }
  u64big(w: string): bigint { return this.need(8, w).getBigUint64(0, true); }
  i64big(w: string): bigint { return this.need(8, w).getBigInt64(0, true); }
  /** u64 that must fit a JS number (counts, lengths, offsets). */
  count(w: string): number {
    const v = this.u64big(w);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${w} ${v} is too large`);
    return Number(v);
  }
  str(w: string, maxBytes = Number.MAX_SAFE_INTEGER): string {
    const n = this.count(`${w} length`);
    if (n > maxBytes) this.fail(`${w} is ${n} bytes (at most ${maxBytes} allowed)`);
    if (this.pos + n > this.size) this.fail(`truncated: ${w} of ${n} bytes at byte ${this.pos - 8}`);
    const dv = this.need(n, w);
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array(dv.buffer, dv.byteOffset, n));
    } catch {
      return this.fail(`${w} is not valid UTF-8`);
    }
  }
}

function num64(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function readScalar(c: Cursor, typeId: number, w: string): number | bigint | boolean | string | GgufValue {
  switch (typeId) {
    case 0: return c.u8(w);
    case 1: return c.i8(w);
    case 2: return c.u16(w);
    case 3: return c.i16(w);
    case 4: return c.u32(w);
    case 5: return c.i32(w);
    case 6: return c.f32(w);
    case 7: {
      const b = c.u8(w);
      if (b > 1) c.fail(`${w}: bool byte is ${b} (must be 0 or 1)`);
      return b === 1;
    }
    case 8: return c.str(w);
    case 9: return readArray(c, w);
    case 10: return num64(c.u64big(w));
    case 11: return num64(c.i64big(w));
    case 12: return c.f64(w);
    default: return c.fail(`${w}: unknown metadata value type ${typeId}`);
  }
}

function readArray(c: Cursor, w: string): GgufValue {
  const itemTypeId = c.u32(`${w} array item type`);
  const itemType = TYPE_NAMES[itemTypeId];
  if (itemType === undefined) c.fail(`${w}: unknown array item type ${itemTypeId}`);
  const n = c.count(`${w} array length`);
  // every item takes at least one byte: a cheap bound against absurd lengths
  if (n > c.size - c.pos) c.fail(`${w}: array of ${n} items cannot fit in the ${c.size - c.pos} bytes left`);
  const value: Array<number | bigint | boolean | string | GgufValue> = new Array(n);
  for (let i = 0; i < n; i++) value[i] = readScalar(c, itemTypeId, `${w}[${i}]`);
  return { type: 'array', itemType, value };
}

/** Parses and validates a GGUF (v2/v3) file's header, metadata and tensor infos (tensor data is not read). */
export function readGguf(path: string): GgufFile {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const c: Cursor = new Cursor(fd, size, path);
    if (size < 24) c.fail(`too small for a GGUF header (${size} bytes)`);
    const magic = c.u32('magic');
    if (magic !== GGUF_MAGIC) c.fail(`not a GGUF file (magic 0x${magic.toString(16).padStart(8, '0')}, expected "GGUF")`);
    const version = c.u32('version');
    if (version !== 3 && version !== 2) c.fail(`unsupported GGUF version ${version} (2 or 3 supported)`);
    const nTensors = c.count('tensor_count');
    const nKv = c.count('kv_count');
    if (nTensors > size / 24) c.fail(`tensor_count ${nTensors} cannot fit in a ${size}-byte file`);
    if (nKv > size / 13) c.fail(`kv_count ${nKv} cannot fit in a ${size}-byte file`);
    const metadata = new Map<string, GgufValue>();
    for (let i = 0; i < nKv; i++) {
      const key = c.str(`metadata key #${i}`, 65535);
      if (metadata.has(key)) c.fail(`metadata key '${key}' appears twice`);
      const typeId = c.u32(`type of '${key}'`);
      const type = TYPE_NAMES[typeId];
      if (type === undefined) c.fail(`metadata '${key}': unknown value type ${typeId}`);
      const v = readScalar(c, typeId, `metadata '${key}'`);
      metadata.set(key, type === 'array' ? (v as GgufValue) : { type, value: v as number | bigint | boolean | string });
    }
    let alignment = GGUF_DEFAULT_ALIGNMENT;
    const al = metadata.get('general.alignment');
    if (al) {
      if (al.type !== 'u32' || typeof al.value !== 'number' || al.value === 0 || al.value % 8 !== 0 || (al.value & (al.value - 1)) !== 0) {
        c.fail(`general.alignment must be a u32 power of two and a multiple of 8, got ${al.type} ${String(al.value)}`);
      }
      alignment = al.value;
    }
    const infos: Array<Omit<GgufTensorInfo, 'fileOffset'>> = [];
    const names = new Set<string>();
    for (let i = 0; i < nTensors; i++) {
      const name = c.str(`tensor #${i} name`, 1024);
      if (names.has(name)) c.fail(`tensor '${name}' appears twice`);
      names.add(name);
      const nDims = c.u32(`tensor '${name}' n_dims`);
      if (nDims < 1 || nDims > 4) c.fail(`tensor '${name}': n_dims ${nDims} (1–4 allowed)`);
      const dims: number[] = [];
      for (let d = 0; d < nDims; d++) {
        const v = c.count(`tensor '${name}' dim ${d}`);
        if (v < 1) c.fail(`tensor '${name}': dim ${d} is ${v}`);
        dims.push(v);
      }
      const type = c.u32(`tensor '${name}' type`);
      const offset = c.count(`tensor '${name}' offset`);
      if (offset % alignment !== 0) c.fail(`tensor '${name}': offset ${offset} is not a multiple of the alignment ${alignment}`);
      const shape = [...dims].reverse();
      const byteLength = ggmlByteLength(type, shape);
      if (GGML_TYPES[type] && byteLength === null) c.fail(`tensor '${name}': inner dim ${dims[0]} is not a multiple of the ${GGML_TYPES[type]!.name} block size`);
      infos.push({ name, shape, dims, type, typeName: GGML_TYPES[type]?.name ?? `type${type}`, offset, byteLength });
    }
    const dataStart = alignUp(c.pos, alignment);
    if (nTensors > 0 && dataStart > size) c.fail(`data section would start at byte ${dataStart}, past the end of the ${size}-byte file`);
    const tensors: GgufTensorInfo[] = infos.map((t) => ({ ...t, fileOffset: dataStart + t.offset }));
    const sorted = [...tensors].sort((a, b) => a.offset - b.offset);
    let end = 0;
    let prev = '';
    for (const t of sorted) {
      if (t.offset < end) c.fail(`tensor '${t.name}' (offset ${t.offset}) overlaps tensor '${prev}'`);
      if (t.byteLength !== null) {
        if (t.fileOffset + t.byteLength > size) c.fail(`tensor '${t.name}' ends at byte ${t.fileOffset + t.byteLength}, past the end of the ${size}-byte file`);
        end = t.offset + t.byteLength;
      } else {
        end = t.offset + 1;
      }
      prev = t.name;
    }
    return { path, version, fileSize: size, alignment, metadata, tensors, dataStart };
  } finally {
    closeSync(fd);
  }
}

/** A metadata value as a plain JS value (arrays of scalars become JS arrays). Throws if the key is absent. */
export function ggufGet(f: GgufFile, key: string): unknown {
  const v = f.metadata.get(key);
  if (!v) throw new GgufError(f.path, `no metadata key '${key}'`);
  return plain(v);
}
function plain(v: GgufValue): unknown {
  if (v.type !== 'array') return v.value;
  return v.value.map((x) => (typeof x === 'object' && x !== null ? plain(x as GgufValue) : x));
}

/** Reads a F32/F16/BF16 tensor's data as float32 (values in ggml memory order = PyTorch row-major). */
export function readGgufTensorF32(f: GgufFile, name: string): Float32Array {
  const t = f.tensors.find((x) => x.name === name);
  if (!t) throw new GgufError(f.path, `no tensor '${name}'`);
  const dt = t.type === 0 ? 'F32' : t.type === 1 ? 'F16' : t.type === 30 ? 'BF16' : null;
  if (dt === null || t.byteLength === null) throw new GgufError(f.path, `tensor '${name}' is ${t.typeName}; only F32, F16 and BF16 can be decoded`);
  const bytes = new Uint8Array(t.byteLength);
  const fd = openSync(f.path, 'r');
  try {
    let got = 0;
    while (got < bytes.length) {
      const r = readSync(fd, bytes, got, bytes.length - got, t.fileOffset + got);
      if (r === 0) throw new GgufError(f.path, `tensor '${name}' is truncated`);
      got += r;
    }
  } finally {
    closeSync(fd);
  }
  return decodeToF32(bytes, dt);
}
