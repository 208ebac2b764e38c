import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bf16BitsToF32, f32ToBf16Bits, f16BitsToF32, f32ToF16Bits, decodeToF32, encodeFromF32 } from './dtype.ts';

test('bf16 rounds to nearest even (reference ties)', () => {
  assert.equal(bf16BitsToF32(f32ToBf16Bits(1.00390625)), 1.0);
  assert.equal(bf16BitsToF32(f32ToBf16Bits(1.01171875)), 1.015625);
  assert.equal(f32ToBf16Bits(NaN), 0x7fc0);
  assert.equal(bf16BitsToF32(f32ToBf16Bits(Infinity)), Infinity);
  assert.equal(bf16BitsToF32(f32ToBf16Bits(3.5e38)), Infinity);
});

test('every bf16 bit pattern round-trips exactly', () => {
  for (let h = 0; h < 0x10000; h++) {
    const x = bf16BitsToF32(h);
    if (Number.isNaN(x)) continue;
    assert.equal(f32ToBf16Bits(x), h);
  }
});

test('every f16 bit pattern round-trips exactly, and edge values round as IEEE', () => {
  for (let h = 0; h < 0x10000; h++) {
    const x = f16BitsToF32(h);
    if (Number.isNaN(x)) continue;
    assert.equal(f32ToF16Bits(x), h, `h=${h.toString(16)}`);
  }
  assert.equal(f32ToF16Bits(65520), 0x7c00);
  assert.equal(f16BitsToF32(f32ToF16Bits(65519)), 65504);
  assert.equal(f32ToF16Bits(2 ** -25), 0); // tie to even at half the smallest subnormal
  assert.equal(f32ToF16Bits(2 ** -25 * 1.5), 1);
  assert.equal(f32ToF16Bits(NaN), 0x7e00);
});

test('decode/encode buffers agree with the scalar conversions', () => {
  const x = new Float32Array([0, -0, 1.5, -2.25, 1e-3, 65504, 3.14159]);
  for (const d of ['F32', 'BF16', 'F16'] as const) {
    const back = decodeToF32(encodeFromF32(x, d), d);
    const once = decodeToF32(encodeFromF32(back, d), d);
    assert.deepEqual(once, back, d);
  }
});
