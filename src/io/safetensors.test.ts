import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile, topLevelKeys, writeSafetensors } from './safetensors.ts';
import { CheckpointError } from './errors.ts';
import { Rng, makeSafetensorsBytes, makeTempDir, rawSafetensorsBytes } from './testing.ts';
import { bf16BitsToF32, f16BitsToF32 } from '../tensor/dtype.ts';
import type { DType } from '../tensor/dtype.ts';

const tmp = makeTempDir('selfdev-st-');
test.after(() => tmp.cleanup());
let counter = 0;
function fileWith(bytes: Uint8Array): string {
  const p = join(tmp.path, `f${counter++}.safetensors`);
  writeFileSync(p, bytes);
  return p;
}
function randomBytes(n: number, seed: number): Uint8Array {
  const r = new Rng(seed);
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = r.u32() & 0xff;
  return b;
}
/** Asserts that opening `path` fails with a CheckpointError naming the file (and tensor) and matching `re`. */
function assertOpenFails(path: string, re: RegExp, tensor?: string): void {
  assert.throws(
    () => SafetensorsFile.open(path),
    (e: unknown) => {
      assert.ok(e instanceof CheckpointError, `expected CheckpointError, got ${String(e)}`);
      assert.equal(e.file, path);
      assert.ok(e.message.includes(path), `message should name the file: ${e.message}`);
      assert.match(e.message, re);
      if (tensor !== undefined) {
        assert.equal(e.tensor, tensor);
        assert.ok(e.message.includes(`'${tensor}'`), `message should name the tensor: ${e.message}`);
      }
      return true;
    },
  );
}

test('every float dtype round-trips byte for byte through write → read', () => {
  const dtypes: Array<[DType, number]> = [['F32', 4], ['F16', 2], ['BF16', 2], ['F64', 8]];
  const tensors = dtypes.map(([dtype, size], i) => ({ name: `t.${dtype}`, dtype, shape: [3, 5], data: randomBytes(15 * size, i + 1) }));
  tensors.push({ name: 'ints', dtype: 'I64', shape: [2], data: randomBytes(16, 9) });
  tensors.push({ name: 'scalar', dtype: 'U8', shape: [], data: randomBytes(1, 10) });
  tensors.push({ name: 'empty', dtype: 'F32', shape: [0, 4], data: new Uint8Array(0) });
  const p = join(tmp.path, 'roundtrip.safetensors');
  writeSafetensors(p, tensors);
  const f = SafetensorsFile.open(p);
  try {
    assert.deepEqual([...f.tensors.keys()], tensors.map((t) => t.name));
    assert.deepEqual(f.metadata, { format: 'pt' });
    for (const t of tensors) {
      const e = f.tensors.get(t.name)!;
      assert.equal(e.dtype, t.dtype);
      assert.deepEqual(e.shape, t.shape);
      assert.equal(e.byteLength, t.data.byteLength);
      assert.deepEqual(f.readBytes(t.name), t.data, t.name);
    }
  } finally {
    f.close();
  }
  assert.deepEqual(readdirSync(tmp.path).filter((n) => n.includes('.tmp-')), [], 'no temp file left behind');
});

test('readF32 decodes F32, BF16 and F16 exactly (checked against bit-level decoding)', () => {
  const r = new Rng(5);
  const f32 = new Float32Array(33).map(() => r.normal());
  const bf = new Uint16Array(33).map(() => r.u32() & 0x7f7f); // finite values
  const hf = new Uint16Array(33).map(() => r.u32() & 0x7bff); // finite values
  const p = join(tmp.path, 'decode.safetensors');
  writeSafetensors(p, [
    { name: 'a', dtype: 'F32', shape: [33], data: new Uint8Array(f32.buffer) },
    { name: 'b', dtype: 'BF16', shape: [3, 11], data: new Uint8Array(bf.buffer) },
    { name: 'c', dtype: 'F16', shape: [33], data: new Uint8Array(hf.buffer) },
    { name: 'i', dtype: 'I32', shape: [1], data: new Uint8Array(4) },
  ]);
  const f = SafetensorsFile.open(p);
  try {
    assert.deepEqual(f.readF32('a'), f32);
    assert.deepEqual([...f.readF32('b')], [...bf].map(bf16BitsToF32));
    assert.deepEqual([...f.readF32('c')], [...hf].map(f16BitsToF32));
    const out = new Float32Array(33);
    assert.equal(f.readF32('a', out), out);
    assert.deepEqual(out, f32);
    const scratch = new Uint8Array(100);
    assert.deepEqual([...f.readF32('b', new Float32Array(33), scratch)], [...bf].map(bf16BitsToF32));
    assert.deepEqual(new Uint16Array(scratch.buffer, 0, 33), bf, 'BF16 bytes were read through the scratch buffer');
    assert.throws(() => f.readF32('i'), /'i'.*I32 is not a float type/);
    assert.throws(() => f.readBytes('nope'), /decode\.safetensors: tensor 'nope': no such tensor/);
  } finally {
    f.close();
  }
  assert.throws(() => f.readBytes('a'), /file is closed/);
});

test('readBytes reads into a caller buffer', () => {
  const p = fileWith(makeSafetensorsBytes([{ name: 'x', dtype: 'F32', shape: [4] }, { name: 'y', dtype: 'U8', shape: [3] }]));
  const f = SafetensorsFile.open(p);
  const buf = new Uint8Array(64);
  const got = f.readBytes('y', buf);
  assert.equal(got.buffer, buf.buffer);
  assert.deepEqual([...got], [0, 1, 2]);
  assert.throws(() => f.readBytes('x', new Uint8Array(3)), /too small/);
  f.close();
});

test('written layout: u64 LE header length, space padding to 8, __metadata__, consecutive offsets in given order', () => {
  const p = join(tmp.path, 'layout.safetensors');
  const tensors = [
    { name: 'z.last', dtype: 'BF16' as const, shape: [3], data: randomBytes(6, 1) },
    { name: 'a.first', dtype: 'F32' as const, shape: [2, 2], data: randomBytes(16, 2) },
  ];
  writeSafetensors(p, tensors, { format: 'pt', note: 'x' });
  const bytes = readFileSync(p);
  const n = Number(bytes.readBigUInt64LE(0));
  assert.equal((8 + n) % 8, 0);
  const text = bytes.subarray(8, 8 + n).toString('utf8');
  const json = text.trimEnd();
  assert.match(text.slice(json.length), /^ *$/);
  const header = JSON.parse(json);
  assert.deepEqual(Object.keys(header), ['__metadata__', 'z.last', 'a.first']);
  assert.deepEqual(header.__metadata__, { format: 'pt', note: 'x' });
  assert.deepEqual(header['z.last'], { dtype: 'BF16', shape: [3], data_offsets: [0, 6] });
  assert.deepEqual(header['a.first'], { dtype: 'F32', shape: [2, 2], data_offsets: [6, 22] });
  assert.equal(bytes.length, 8 + n + 22);
  assert.deepEqual(new Uint8Array(bytes.subarray(8 + n, 8 + n + 6)), tensors[0]!.data);
});

test('writeSafetensors rejects data whose length does not match dtype × shape', () => {
  const p = join(tmp.path, 'bad-write.safetensors');
  assert.throws(() => writeSafetensors(p, [{ name: 'w', dtype: 'F16', shape: [3], data: new Uint8Array(5) }]), /tensor 'w': data is 5 bytes but shape \[3\] of F16 needs 6/);
  assert.throws(() => readFileSync(p), /ENOENT/);
});

test('accepts zero-size tensors, scalars and header keys in any order', () => {
  const header = {
    b: { dtype: 'F32', shape: [], data_offsets: [8, 12] },
    e: { dtype: 'F16', shape: [0], data_offsets: [8, 8] },
    a: { dtype: 'F64', shape: [1], data_offsets: [0, 8] },
  };
  const p = fileWith(rawSafetensorsBytes(header, 12));
  const f = SafetensorsFile.open(p);
  assert.deepEqual([...f.tensors.keys()], ['a', 'e', 'b']);
  assert.equal(f.tensors.get('b')!.offset, f.dataStart + 8);
  assert.deepEqual(f.metadata, {});
  f.close();
});

test('topLevelKeys lists duplicates and ignores nested keys and escaped quotes', () => {
  assert.deepEqual(topLevelKeys('{"a\\"b": {"x": 1, "y": "}"}, "c": [1, {"d": 2}], "a\\"b": 3}'), ['a"b', 'c', 'a"b']);
});

// ---- corruption: one test per case, each with its own message ----

test('rejects a file shorter than 8 bytes', () => {
  assertOpenFails(fileWith(new Uint8Array(5)), /5 bytes, too small/);
});

test('rejects a header length over 100 MB', () => {
  assertOpenFails(fileWith(rawSafetensorsBytes('{}', 0, { headerLength: 100_000_001 })), /header over 100 MB/);
});

test('rejects a header length that runs past the end of the file', () => {
  assertOpenFails(fileWith(rawSafetensorsBytes('{"__metadata__":{}}', 0, { headerLength: 500 })), /truncated: header length is 500 bytes/);
});

test('rejects a header that is not UTF-8', () => {
  assertOpenFails(fileWith(rawSafetensorsBytes(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]))), /not valid UTF-8/);
});

test('rejects a header that is not JSON', () => {
  assertOpenFails(fileWith(rawSafetensorsBytes('{"a": [1, 2')), /not valid JSON/);
});

test('rejects a header that is a JSON array instead of an object', () => {
  assertOpenFails(fileWith(rawSafetensorsBytes('[1, 2]')), /not a JSON object/);
});

test('rejects __metadata__ that is not string → string', () => {
  assertOpenFails(fileWith(rawSafetensorsBytes({ __metadata__: { format: 'pt', n: 3 } })), /__metadata__ value of 'n' must be a string/);
  assertOpenFails(fileWith(rawSafetensorsBytes({ __metadata__: ['pt'] })), /__metadata__ must be an object/);
});

test('rejects a tensor entry missing dtype, shape or data_offsets', () => {
  for (const field of ['dtype', 'shape', 'data_offsets']) {
    const entry: Record<string, unknown> = { dtype: 'F32', shape: [1], data_offsets: [0, 4] };
    delete entry[field];
    assertOpenFails(fileWith(rawSafetensorsBytes({ w: entry }, 4)), new RegExp(`no '${field}'`), 'w');
  }
});

test('rejects tensor entry fields of the wrong type', () => {
  assertOpenFails(fileWith(rawSafetensorsBytes({ w: 7 }, 4)), /must be an object/, 'w');
  assertOpenFails(fileWith(rawSafetensorsBytes({ w: { dtype: 1, shape: [1], data_offsets: [0, 4] } }, 4)), /dtype must be a string/, 'w');
  assertOpenFails(fileWith(rawSafetensorsBytes({ w: { dtype: 'F32', shape: '1', data_offsets: [0, 4] } }, 4)), /shape must be an array/, 'w');
  assertOpenFails(fileWith(rawSafetensorsBytes({ w: { dtype: 'F32', shape: [1], data_offsets: [0] } }, 4)), /data_offsets must be \[begin, end\]/, 'w');
  assertOpenFails(fileWith(rawSafetensorsBytes({ w: { dtype: 'F32', shape: [1], data_offsets: ['0', 4] } }, 4)), /data_offsets must be non-negative integers/, 'w');
});

test('rejects an unknown dtype', () => {
  assertOpenFails(fileWith(rawSafetensorsBytes({ w: { dtype: 'F12', shape: [1], data_offsets: [0, 4] } }, 4)), /unknown or unsupported dtype 'F12'/, 'w');
});

test('rejects negative or non-integer shape dimensions', () => {
  assertOpenFails(fileWith(rawSafetensorsBytes({ w: { dtype: 'U8', shape: [-1, 2], data_offsets: [0, 0] } })), /dimension that is not a non-negative integer \(-1\)/, 'w');
  assertOpenFails(fileWith(rawSafetensorsBytes({ w: { dtype: 'U8', shape: [1.5], data_offsets: [0, 0] } })), /not a non-negative integer \(1\.5\)/, 'w');
});

test('rejects data_offsets whose end is before begin', () => {
  assertOpenFails(fileWith(rawSafetensorsBytes({ w: { dtype: 'U8', shape: [0], data_offsets: [4, 0] } }, 4)), /end 0 is before begin 4/, 'w');
});

test('rejects a byte length that differs from numel × dtype size', () => {
  assertOpenFails(fileWith(rawSafetensorsBytes({ w: { dtype: 'BF16', shape: [2, 3], data_offsets: [0, 10] } }, 10)), /span 10 bytes but shape \[2,3\] of BF16 needs 12/, 'w');
});

test('rejects overlapping tensors', () => {
  const h = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } };
  assertOpenFails(fileWith(rawSafetensorsBytes(h, 12)), /overlaps tensor 'a'/, 'b');
});

test('rejects a gap between tensors (or before the first)', () => {
  const h = { a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } };
  assertOpenFails(fileWith(rawSafetensorsBytes(h, 12)), /gap of 4 unused bytes/, 'b');
  assertOpenFails(fileWith(rawSafetensorsBytes({ c: { dtype: 'U8', shape: [1], data_offsets: [2, 3] } }, 3)), /gap of 2/, 'c');
});

test('rejects a data buffer shorter than the tensors (truncated file)', () => {
  const full = makeSafetensorsBytes([{ name: 'a', dtype: 'F32', shape: [4] }]);
  assertOpenFails(fileWith(full.subarray(0, full.length - 3)), /truncated: tensors need a 16-byte data buffer but only 13/);
});

test('rejects trailing garbage after the last tensor', () => {
  const full = makeSafetensorsBytes([{ name: 'a', dtype: 'F32', shape: [4] }]);
  const bytes = new Uint8Array(full.length + 5);
  bytes.set(full);
  assertOpenFails(fileWith(bytes), /5 bytes of trailing garbage/);
});

test('rejects a tensor name that appears twice in the header', () => {
  const text = '{"w": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}, "w": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}';
  assertOpenFails(fileWith(rawSafetensorsBytes(text, 2)), /appears twice/, 'w');
});

test('opening a missing file or a folder names it', () => {
  assertOpenFails(join(tmp.path, 'nope.safetensors'), /file not found/);
  assertOpenFails(tmp.path, /is a directory/);
});
