import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { GgufWriter, GgufError, readGguf, ggufGet, readGgufTensorF32, alignUp, ggmlByteLength } from './gguf.ts';
import { makeTempDir } from './testing.ts';
import { f16BitsToF32, f32ToF16Bits } from '../tensor/dtype.ts';

/** Hand-assembled little-endian bytes, independent of the writer. */
class Bytes {
  parts: number[] = [];
  u8(v: number) { this.parts.push(v & 0xff); return this; }
  u32(v: number) { for (let i = 0; i < 4; i++) this.parts.push((v >>> (8 * i)) & 0xff); return this; }
  u64(v: number) { this.u32(v % 2 ** 32); this.u32(Math.floor(v / 2 ** 32)); return this; }
  f32(v: number) { const b = new Uint8Array(new Float32Array([v]).buffer); this.parts.push(...b); return this; }
  str(s: string) { const b = Buffer.from(s, 'utf8'); this.u64(b.length); this.parts.push(...b); return this; }
  pad(a: number) { while (this.parts.length % a) this.parts.push(0); return this; }
  get length() { return this.parts.length; }
  bytes() { return Uint8Array.from(this.parts); }
}

test('writer output is byte-identical to a hand-assembled GGUF v3 file', () => {
  const tmp = makeTempDir();
  try {
    const path = join(tmp.path, 'a.gguf');
    const w = new GgufWriter(path);
    w.setString('general.architecture', 'llama');
    w.setU32('llama.block_count', 2);
    w.setF32('llama.rope.freq_base', 10000);
    w.setBool('tokenizer.ggml.add_bos_token', true);
    w.setArray('tokenizer.ggml.tokens', 'string', ['a', 'Ġb']);
    w.setArray('tokenizer.ggml.token_type', 'i32', [3, -1]);
    w.addTensor('w', [2, 3], 'F32'); // PyTorch [out=2, in=3] → dims [3, 2]
    w.addTensor('n', [5], 'F16');
    w.begin();
    const wData = new Float32Array([1, 2, 3, 4, 5, 6]);
    w.writeTensor('w', new Uint8Array(wData.buffer));
    const nBits = new Uint16Array([1, 2, 3, 4, 5].map((x) => f32ToF16Bits(x / 4)));
    w.writeTensor('n', new Uint8Array(nBits.buffer));
    w.commit();

    const e = new Bytes();
    e.u8(0x47).u8(0x47).u8(0x55).u8(0x46).u32(3).u64(2).u64(6);
    e.str('general.architecture').u32(8).str('llama');
    e.str('llama.block_count').u32(4).u32(2);
    e.str('llama.rope.freq_base').u32(6).f32(10000);
    e.str('tokenizer.ggml.add_bos_token').u32(7).u8(1);
    e.str('tokenizer.ggml.tokens').u32(9).u32(8).u64(2).str('a').str('Ġb');
    e.str('tokenizer.ggml.token_type').u32(9).u32(5).u64(2).u32(3).u32(0xffffffff);
    e.str('w').u32(2).u64(3).u64(2).u32(0).u64(0);
    e.str('n').u32(1).u64(5).u32(1).u64(32); // 24 bytes of w, next aligned offset is 32
    e.pad(32);
    for (const x of wData) e.f32(x);
    e.pad(32);
    for (const b of nBits) e.u8(b & 0xff).u8(b >> 8);
    e.pad(32);
    assert.deepEqual(new Uint8Array(readFileSync(path)), e.bytes());
    assert.deepEqual(readdirSync(tmp.path), ['a.gguf'], 'no temp file left');

    const f = readGguf(path);
    assert.equal(f.version, 3);
    assert.equal(f.alignment, 32);
    assert.deepEqual([...f.metadata.keys()], ['general.architecture', 'llama.block_count', 'llama.rope.freq_base', 'tokenizer.ggml.add_bos_token', 'tokenizer.ggml.tokens', 'tokenizer.ggml.token_type']);
    assert.deepEqual(f.metadata.get('llama.block_count'), { type: 'u32', value: 2 });
    assert.deepEqual(ggufGet(f, 'tokenizer.ggml.tokens'), ['a', 'Ġb']);
    assert.deepEqual(ggufGet(f, 'tokenizer.ggml.token_type'), [3, -1]);
    assert.equal(ggufGet(f, 'tokenizer.ggml.add_bos_token'), true);
    assert.deepEqual(f.tensors.map((t) => [t.name, t.shape, t.dims, t.typeName, t.offset, t.byteLength]), [
      ['w', [2, 3], [3, 2], 'F32', 0, 24],
      ['n', [5], [5], 'F16', 32, 10],
    ]);
    assert.deepEqual(Array.from(readGgufTensorF32(f, 'w')), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(Array.from(readGgufTensorF32(f, 'n')), [1, 2, 3, 4, 5].map((x) => f16BitsToF32(f32ToF16Bits(x / 4))));
  } finally {
    tmp.cleanup();
  }
});

test('custom alignment, u64/i64/f64/nested arrays round-trip', () => {
  const tmp = makeTempDir();
  try {
    const path = join(tmp.path, 'b.gguf');
    const w = new GgufWriter(path, { alignment: 64 });
    w.set('x.u64', { type: 'u64', value: 2n ** 40n + 3n });
    w.set('x.i64', { type: 'i64', value: -5 });
    w.set('x.f64', { type: 'f64', value: Math.PI });
    w.set('x.i8', { type: 'i8', value: -128 });
    w.set('x.nested', { type: 'array', itemType: 'array', value: [{ type: 'array', itemType: 'u8', value: [1, 2] }, { type: 'array', itemType: 'string', value: [] }] });
    w.addTensor('a', [3], 'F32');
    w.addTensor('b', [2, 2], 'BF16');
    w.begin();
    w.writeTensor('a', new Uint8Array(12));
    w.writeTensor('b', new Uint8Array([0, 0x3f, 0x80, 0x3f, 0, 0x40, 0, 0xc0])); // bf16 0.5, 1, 2, -2
    w.commit();
    const f = readGguf(path);
    assert.equal(f.alignment, 64);
    assert.equal(ggufGet(f, 'general.alignment'), 64);
    assert.equal(ggufGet(f, 'x.u64'), 2 ** 40 + 3);
    assert.equal(ggufGet(f, 'x.i64'), -5);
    assert.equal(ggufGet(f, 'x.f64'), Math.PI);
    assert.equal(ggufGet(f, 'x.i8'), -128);
    assert.deepEqual(ggufGet(f, 'x.nested'), [[1, 2], []]);
    assert.equal(f.dataStart % 64, 0);
    assert.equal(f.tensors[1]!.offset, 64);
    assert.deepEqual(Array.from(readGgufTensorF32(f, 'b')), [0.5, 1, 2, -2]);
  } finally {
    tmp.cleanup();
  }
});

test('writer rejects misuse with specific errors and leaves no file', () => {
  const tmp = makeTempDir();
  try {
    const path = join(tmp.path, 'c.gguf');
    const w = new GgufWriter(path);
    assert.throws(() => w.setU32('k', -1), /'k': u32 value must be an integer in \[0, 4294967295\], got -1/);
    assert.throws(() => w.setI32('k', 2 ** 31), /i32 value must be an integer/);
    assert.throws(() => w.setArray('k', 'string', ['a', 3] as never), /'k': string value must be a string, got 3/);
    assert.throws(() => w.setString('bad key', 'x'), /not a dot-separated ASCII name/);
    w.setString('k', 'v');
    assert.throws(() => w.setString('k', 'again'), /set twice/);
    assert.throws(() => w.addTensor('t', [2, 0], 'F32'), /bad shape/);
    assert.throws(() => w.addTensor('t', [1, 2, 3, 4, 5], 'F32'), /5 dims/);
    assert.throws(() => w.addTensor('x'.repeat(65), [1], 'F32'), /1–64 bytes/);
    w.addTensor('t', [4], 'F32');
    assert.throws(() => w.addTensor('t', [4], 'F32'), /declared twice/);
    w.addTensor('u', [2], 'F16');
    w.begin();
    assert.throws(() => w.writeTensor('u', new Uint8Array(4)), /expected tensor 't' next, got 'u'/);
    assert.throws(() => w.writeTensor('t', new Uint8Array(15)), /needs 16 bytes, got 15/);
    w.writeTensor('t', new Uint8Array(16));
    assert.throws(() => w.commit(), /tensors not written: u/);
    assert.deepEqual(readdirSync(tmp.path), []);
    assert.throws(() => new GgufWriter(path, { alignment: 12 }), /power of two/);
  } finally {
    tmp.cleanup();
  }
});

test('reader rejects corrupt files with clear errors', () => {
  const tmp = makeTempDir();
  try {
    const p = join(tmp.path, 'bad.gguf');
    const expectErr = (bytes: Uint8Array, re: RegExp) => {
      writeFileSync(p, bytes);
      assert.throws(() => readGguf(p), (e: Error) => e instanceof GgufError && e.message.startsWith(p) && re.test(e.message), String(re));
    };
    const head = (version = 3, nT = 0, nKv = 0) => new Bytes().u8(0x47).u8(0x47).u8(0x55).u8(0x46).u32(version).u64(nT).u64(nKv);
    expectErr(new Uint8Array(10), /too small/);
    expectErr(new Bytes().str('safetensors?').u64(0).u64(0).bytes(), /not a GGUF file/);
    expectErr(head(4).bytes(), /unsupported GGUF version 4/);
    expectErr(head(3, 0, 1).str('a').u32(99).u32(0).bytes(), /'a': unknown value type 99/);
    expectErr(head(3, 0, 1).str('a').u32(8).u64(1000).bytes(), /truncated/);
    expectErr(head(3, 0, 1).str('a').u32(7).u8(2).u64(0).bytes(), /bool byte is 2/);
    expectErr(head(3, 0, 2).str('a').u32(4).u32(1).str('a').u32(4).u32(1).bytes(), /key 'a' appears twice/);
    expectErr(head(3, 0, 1).str('general.alignment').u32(4).u32(12).u64(0).bytes(), /general\.alignment must be/);
    expectErr(head(3, 0, 1).str('a').u32(9).u32(4).u64(1e9).bytes(), /array of 1000000000 items cannot fit/);
    expectErr(head(3, 1000, 0).bytes(), /tensor_count 1000 cannot fit/);
    const t1 = () => head(3, 1, 0).str('w').u32(1).u64(8);
    expectErr(head(3, 1, 0).str('w').u32(5).bytes().slice(), /truncated|n_dims 5/);
    expectErr(t1().u32(0).u64(16).pad(32).bytes(), /offset 16 is not a multiple of the alignment 32/);
    expectErr(t1().u32(0).u64(0).pad(32).u64(0).bytes(), /tensor 'w' ends at byte \d+, past the end/);
    expectErr(t1().u32(8).u64(0).pad(32).bytes(), /inner dim 8 is not a multiple of the Q8_0 block size/);
    const two = head(3, 2, 0).str('w').u32(1).u64(16).u32(0).u64(0).str('v').u32(1).u64(4).u32(0).u64(32).pad(32);
    for (let i = 0; i < 80; i++) two.u8(0);
    expectErr(two.bytes(), /tensor 'v' \(offset 32\) overlaps tensor 'w'/);
  } finally {
    tmp.cleanup();
  }
});

test('alignUp and ggml sizes follow the spec', () => {
  assert.equal(alignUp(0, 32), 0);
  assert.equal(alignUp(1, 32), 32);
  assert.equal(alignUp(64, 32), 64);
  assert.equal(ggmlByteLength(0, [3, 4]), 48);
  assert.equal(ggmlByteLength(1, [3, 4]), 24);
  assert.equal(ggmlByteLength(8, [2, 64]), 2 * 2 * 34); // Q8_0: 34 bytes per 32 values
  assert.equal(ggmlByteLength(8, [2, 33]), null);
  assert.equal(ggmlByteLength(999, [1]), null);
});
