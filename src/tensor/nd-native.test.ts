import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as nd from './nd.ts';
import { NDArray } from './nd.ts';
import { configureNative, nativeStatus, setNativeMinLength } from './kernels.ts';
import { nativeAvailable } from './native.ts';
import { addEncodeInto, checksum32, countNonFinite, countOverflow16, taskVectorInto } from './nd-native.ts';
import { DTYPE_BYTES, decodeToF32, encodeFromF32 } from './dtype.ts';
import { mulberry32 } from './random.ts';

// Every nd op with a native loop is run twice on the same seeded inputs: once with the JS loops
// (native min length above every array) and once natively (min length 0, threads splitting arrays
// from 64 elements), and the results must be the same float32 values element by element (NaN
// counts as equal to NaN: payloads are not part of the contract).
const skip = nativeAvailable() ? false : 'the native addon is not built';
const JS_ONLY = 1 << 30;
const defaultMin = nativeStatus().nativeMinLength;
const defaultParMin = nativeStatus().parallelMin;

/** Values that stress the exactness: normal, tiny, huge, ±0, ±Inf, NaN, exact duplicates. */
function values(n: number, seed: number, special = true): Float32Array {
  const r = mulberry32(seed);
  const specials = [0, -0, Infinity, -Infinity, NaN, 1e-40, -3e38, 3e38, 1, -1, 0.5];
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = r();
    if (special && u < 0.08) x[i] = specials[Math.floor(r() * specials.length)]!;
    else if (u < 0.12) x[i] = x[Math.floor(r() * Math.max(1, i))] ?? 0;
    else x[i] = (r() - 0.5) * 10 ** Math.floor(r() * 8 - 4);
  }
  return x;
}
const T = (shape: number[], seed: number, special = true): NDArray => new NDArray(values(shape.reduce((a, b) => a * b, 1), seed, special), shape);

function both<R>(f: () => R): { js: R; native: R } {
  try {
    setNativeMinLength(JS_ONLY);
    const js = f();
    setNativeMinLength(0);
    configureNative({ parallelMin: 64 });
    const native = f();
    return { js, native };
  } finally {
    setNativeMinLength(defaultMin);
    configureNative({ parallelMin: defaultParMin });
  }
}

function same(what: string, a: NDArray, b: NDArray): void {
  assert.deepEqual(b.shape, a.shape, `${what}: shape`);
  for (let i = 0; i < a.numel; i++)
    if (!Object.is(a.data[i], b.data[i]) && !(Number.isNaN(a.data[i]) && Number.isNaN(b.data[i]))) assert.fail(`${what}: index ${i}: JS ${a.data[i]} vs native ${b.data[i]}`);
}

const SHAPE_PAIRS: Array<[number[], number[]]> = [
  [[37, 53], [37, 53]], // same shape
  [[37, 53], []], // scalar right
  [[], [37, 53]], // scalar left
  [[37, 53], [53]], // row broadcast
  [[37, 1], [1, 53]], // outer product layout
  [[5, 1, 29], [7, 1]], // rank 3 with stretched middle
  [[2, 3, 1, 41], [3, 17, 1]], // inner stride 0 on both sides of the broadcast
  [[4, 1], [1, 1, 1]], // a scalar-sized operand of higher rank
];

test('binary ops: native = JS on random arrays with NaN/±Inf/±0, same shapes, scalars and broadcasting', { skip }, () => {
  const ops: Array<[string, (a: nd.Operand, b: nd.Operand) => NDArray]> = [
    ['add', (a, b) => nd.add(a, b)], ['add α', (a, b) => nd.add(a, b, -0.3)], ['sub', (a, b) => nd.sub(a, b)], ['sub α', (a, b) => nd.sub(a, b, 2.5)],
    ['mul', nd.mul], ['div', nd.div], ['maximum', nd.maximum], ['minimum', nd.minimum],
    ['gt', nd.gt], ['ge', nd.ge], ['lt', nd.lt], ['le', nd.le], ['eq', nd.eq],
  ];
  let seed = 1;
  for (const [sa, sb] of SHAPE_PAIRS)
    for (const [name, f] of ops) {
      const a = T(sa, seed++);
      const b = T(sb, seed++);
      const r = both(() => f(a, b));
      same(`${name} ${nd.fmtShape(sa)} ${nd.fmtShape(sb)}`, r.js, r.native);
    }
  // a plain JS number operand: mul keeps it in float64, the other ops round it to float32 first
  const a = T([64, 33], 99);
  for (const s of [0.4, 1 / 3, -0, NaN, Infinity, 1e-45]) {
    for (const [name, f] of ops) {
      const r = both(() => f(a, s));
      same(`${name} by ${s}`, r.js, r.native);
      const l = both(() => f(s, a));
      same(`${s} ${name}`, l.js, l.native);
    }
  }
  // ±0 ordering in maximum/minimum
  const z = new NDArray(Float32Array.from([0, -0, -0, 0, NaN, 1, -0]), [7]);
  const w = new NDArray(Float32Array.from([-0, 0, -0, 0, 0, NaN, -1]), [7]);
  for (const f of [nd.maximum, nd.minimum]) {
    const r = both(() => f(z, w));
    same('±0', r.js, r.native);
  }
});

test('where and unary ops: native = JS (NaN conditions pick a, clamp bounds from float64)', { skip }, () => {
  const c = T([41, 29], 7);
  const a = T([41, 29], 8);
  const b = T([41, 29], 9);
  for (const [cc, aa, bb] of [[c, a, b], [c, 1, -1], [c, a, 0.25], [nd.scalar(NaN), a, b], [nd.scalar(0), a, b], [c, nd.scalar(-0), b]] as Array<[NDArray, nd.Operand, nd.Operand]>) {
    const r = both(() => nd.where(cc, aa, bb));
    same('where', r.js, r.native);
  }
  const r = both(() => nd.where(T([41, 1], 10), T([29], 11), -2)); // broadcast: JS path both times
  same('where broadcast', r.js, r.native);
  const x = T([53, 61], 12);
  for (const [name, f] of [['abs', nd.abs], ['neg', nd.neg], ['sign', nd.sign], ['sqrt', nd.sqrt], ['relu', nd.relu], ['square', nd.square]] as const) {
    const u = both(() => f(x));
    same(name, u.js, u.native);
  }
  for (const [lo, hi] of [[-0.1, 0.2], [null, 0], [1 / 3, null], [0.3, 0.1]] as Array<[number | null, number | null]>) {
    const u = both(() => nd.clamp(x, lo, hi));
    same(`clamp ${lo} ${hi}`, u.js, u.native);
  }
});

test('reductions: native = JS bit for bit over all, trailing, leading and middle dims (keepdim too)', { skip }, () => {
  const shapes = [[3, 40, 50], [6000], [2, 3, 4, 5, 6], [1, 300, 1]];
  let seed = 100;
  for (const shape of shapes) {
    for (const special of [false, true]) {
      const x = T(shape, seed++, special);
      const dimsList: Array<number | number[] | null> = shape.length > 2 ? [null, 0, -1, [0, 1], 1, [1, 2]] : [null, 0, -1];
      for (const d of dimsList)
        for (const keep of [false, true]) {
          const ops: Array<[string, () => NDArray]> = [
            ['sum', () => nd.sum(x, d, keep)], ['mean', () => nd.mean(x, d, keep)], ['norm2', () => nd.norm(x, 2, d, keep)],
            ['norm1', () => nd.norm(x, 1, d, keep)], ['normInf', () => nd.norm(x, Infinity, d, keep)], ['amax', () => nd.amax(x, d, keep)], ['amin', () => nd.amin(x, d, keep)],
          ];
          for (const [name, f] of ops) {
            const r = both(f);
            same(`${name} ${nd.fmtShape(shape)} dim ${JSON.stringify(d)} keepdim ${keep} special ${special}`, r.js, r.native);
          }
        }
    }
  }
  // top-k masks by magnitude: ties at the threshold kept in index order, NaN never kept
  const tied = new NDArray(Float32Array.from({ length: 5000 }, (_, i) => [0.5, -0.5, 0.25, NaN, 1, -0][i % 6]!), [50, 100]);
  for (const src of [tied, T([61, 47], 21), T([3000], 22, false)])
    for (const frac of [0, 0.001, 0.2, 0.5, 0.8, 1]) {
      const r = both(() => nd.topkMask(src, frac));
      same(`topkMask ${nd.fmtShape(src.shape)} ${frac}`, r.js, r.native);
    }
  // the TA shape: stack of 3 task vectors summed over dim 0, scaled by a float64 lambda
  const tvs = [T([96, 130], 7, false), T([96, 130], 8, false), T([96, 130], 9, false)];
  const r = both(() => nd.mul(nd.sum(nd.stack(tvs), 0), 0.4));
  same('stack·sum(0)·0.4', r.js, r.native);
});

test('stack and cat copy natively (bits preserved); checksum32, countNonFinite and countOverflow16 agree with their JS fallbacks', { skip }, () => {
  const parts = [T([70000], 1), T([70000], 2)];
  for (const dim of [0, 1, -1]) {
    const r = both(() => nd.stack(parts, dim));
    same(`stack dim ${dim}`, r.js, r.native);
  }
  const x = values(200_003, 5);
  const c = both(() => checksum32(x));
  assert.equal(c.native, c.js);
  const y = Float32Array.from(x);
  y[123_457] = x[123_457] === 12345.5 ? 2 : 12345.5;
  assert.notEqual(checksum32(y), checksum32(x), 'a changed element changes the checksum');
  const nf = both(() => countNonFinite(x));
  assert.deepEqual(nf.native, nf.js);
  assert.ok(nf.js.count > 0 && nf.js.first >= 0);
  const finite = values(5000, 6, false);
  assert.deepEqual(both(() => countNonFinite(finite)).native, { count: 0, first: -1 });
  for (const dt of ['BF16', 'F16'] as const) {
    const bytes = encodeFromF32(x, dt);
    const o = both(() => countOverflow16(bytes, dt));
    assert.equal(o.native, o.js);
    assert.ok(o.js >= nf.js.count, `${dt}: every float32 NaN/Inf is one in ${dt} too`);
  }
});

test('fused streamed-merge passes: taskVectorInto (decode − decode + checksum) and addEncodeInto (base + r, encode, count) = their separate JS passes', { skip }, () => {
  const n = 3 * 65536 + 4099; // several checksum blocks and a tail that is not a multiple of 8
  const dts = ['F32', 'BF16', 'F16'] as const;
  let seed = 300;
  for (const xDt of dts)
    for (const bDt of dts) {
      const x = encodeFromF32(values(n, seed++), xDt);
      const b = encodeFromF32(values(n, seed++), bDt);
      const r = both(() => {
        const out = new Float32Array(n);
        return { out, sum: taskVectorInto(out, x, xDt, b, bDt) };
      });
      same(`task vector ${xDt} − ${bDt}`, new NDArray(r.js.out, [n]), new NDArray(r.native.out, [n]));
      assert.equal(r.native.sum, r.js.sum, `checksum ${xDt} − ${bDt}`);
      assert.equal(r.native.sum, checksum32(r.native.out), 'the fused checksum is checksum32 of the task vector');
      // the values are decode(x) − decode(b)
      const xv = decodeToF32(x, xDt);
      const bv = decodeToF32(b, bDt);
      for (let i = 0; i < n; i += 997) {
        const want = Math.fround(xv[i]! - bv[i]!);
        assert.ok(Object.is(r.native.out[i], want) || (Number.isNaN(want) && Number.isNaN(r.native.out[i])), `element ${i}`);
      }
    }
  for (const bDt of dts)
    for (const oDt of dts) {
      const b = encodeFromF32(values(n, seed++), bDt);
      const res = values(n, seed++);
      const r = both(() => {
        const out = new Uint8Array(n * DTYPE_BYTES[oDt]);
        return { out, bad: addEncodeInto(out, oDt, b, bDt, res) };
      });
      same(`base ${bDt} + r → ${oDt}`, new NDArray(decodeToF32(r.js.out, oDt), [n]), new NDArray(decodeToF32(r.native.out, oDt), [n]));
      assert.deepEqual(r.native.bad, r.js.bad, `non-finite count ${bDt} → ${oDt}`);
      assert.ok(r.js.bad.count > 0 && r.js.bad.first >= 0, 'the special values give non-finite sums');
      const finite = both(() => addEncodeInto(new Uint8Array(4096 * DTYPE_BYTES[oDt]), oDt, encodeFromF32(values(4096, seed, false), bDt), bDt, values(4096, seed + 1, false)));
      assert.deepEqual(finite.native, finite.js);
    }
  assert.throws(() => taskVectorInto(new Float32Array(10), new Uint8Array(20), 'BF16', new Uint8Array(19), 'BF16'), /bytes/);
  assert.throws(() => addEncodeInto(new Uint8Array(20), 'BF16', new Uint8Array(20), 'BF16', new Float32Array(11)), /bytes/);
});

test('stack along dim 0 is copied only when read: reductions over dim 0 read its parts in place, bit-identical to the copy and to JS', { skip }, () => {
  let seed = 500;
  for (const shape of [[300, 257], [70000], [1]]) {
    for (const k of [1, 3, 4]) {
      const parts = Array.from({ length: k }, () => T(shape, seed++));
      for (const keep of [false, true])
        for (const [name, f] of [
          ['sum', (x: NDArray) => nd.sum(x, 0, keep)], ['mean', (x: NDArray) => nd.mean(x, 0, keep)], ['norm2', (x: NDArray) => nd.norm(x, 2, 0, keep)],
          ['amax', (x: NDArray) => nd.amax(x, 0, keep)], ['amin', (x: NDArray) => nd.amin(x, 0, keep)], ['sum -k', (x: NDArray) => nd.sum(x, -(shape.length + 1), keep)],
        ] as const) {
          const r = both(() => {
            const st = nd.stack(parts, 0);
            const v = f(st);
            return { v, lazy: st.stackedParts !== null, copied: f(new NDArray(Float32Array.from(st.data), st.shape)) };
          });
          const what = `${name} of a stack of ${k} × ${nd.fmtShape(shape)} keepdim ${keep}`;
          same(what, r.js.v, r.native.v);
          same(`${what} (vs the copy)`, r.native.copied, r.native.v);
          if (shape[0]! > 1) assert.ok(r.native.lazy, `${what}: the stack was not copied`);
        }
    }
  }
  // the copy, once read, holds the parts' bits one after the other; other ops see the same data
  const parts = [T([5, 7000], 1), T([5, 7000], 2)];
  const st = nd.stack(parts);
  assert.ok(st.stackedParts);
  assert.equal(st.numel, 70000);
  const bits = new Uint32Array(st.data.buffer, st.data.byteOffset, st.numel);
  assert.equal(st.stackedParts, null);
  parts.forEach((p, k) => assert.deepEqual(bits.subarray(k * 35000, (k + 1) * 35000), new Uint32Array(p.data.buffer, p.data.byteOffset, 35000)));
  same('sum over dim 1 of a stack (copied)', nd.sum(new NDArray(Float32Array.from(st.data), st.shape), 1), nd.sum(nd.stack(parts, 0), 1));
});
