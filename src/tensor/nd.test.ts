import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as nd from './nd.ts';
import { NDArray } from './nd.ts';

const T = (shape: number[], f: (i: number) => number): NDArray => new NDArray(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => f(i)), shape);
const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-5): void => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= tol * (1 + Math.abs(b[i]!)), `index ${i}: ${a[i]} vs ${b[i]}`);
};

test('broadcastShapes follows PyTorch rules and names both shapes on error', () => {
  assert.deepEqual(nd.broadcastShapes([4, 1], [3]), [4, 3]);
  assert.deepEqual(nd.broadcastShapes([], [2, 3]), [2, 3]);
  assert.deepEqual(nd.broadcastShapes([2, 1, 5], [4, 1]), [2, 4, 5]);
  assert.throws(() => nd.broadcastShapes([4, 8], [4]), /\[4, 8\] and \[4\] are not broadcastable/);
});

test('binary ops broadcast like an explicit index loop (ranks 0..4)', () => {
  const cases: Array<[number[], number[]]> = [[[3, 4], [4]], [[3, 1], [1, 4]], [[2, 3, 4], [3, 1]], [[2, 1, 3, 1], [4, 1, 5]], [[], [2, 2]], [[5], [5]]];
  for (const [sa, sb] of cases) {
    const a = T(sa, (i) => i * 0.5 - 1);
    const b = T(sb, (i) => 2 - i * 0.25);
    const out = nd.sub(a, b);
    const os = nd.broadcastShapes(sa, sb);
    assert.deepEqual(out.shape, os);
    // reference: unravel each output index and map into the inputs
    const idx = (shape: number[], full: number[]): number => {
      let off = 0;
      for (let d = 0; d < shape.length; d++) off = off * shape[d]! + (shape[d] === 1 ? 0 : full[full.length - shape.length + d]!);
      return off;
    };
    for (let o = 0; o < out.numel; o++) {
      const full: number[] = [];
      let r = o;
      for (let d = os.length - 1; d >= 0; d--) {
        full.unshift(r % os[d]!);
        r = Math.floor(r / os[d]!);
      }
      assert.equal(out.data[o], Math.fround(a.data[idx(sa, full)]! - b.data[idx(sb, full)]!));
    }
  }
  assert.deepEqual([...nd.add(T([2], (i) => i), 3, 2).data], [6, 7]);
  assert.deepEqual([...nd.mul(2, T([2], (i) => i + 1)).data], [2, 4]);
  assert.deepEqual([...nd.where(T([3], (i) => i - 1), 5, T([3], () => 7)).data], [5, 7, 5]);
});

test('reductions over dims with keepdim, std/var unbiased, norms', () => {
  const x = T([2, 3], (i) => i + 1); // [[1,2,3],[4,5,6]]
  assert.deepEqual([...nd.sum(x).data], [21]);
  assert.deepEqual(nd.sum(x).shape, []);
  assert.deepEqual([...nd.sum(x, 0).data], [5, 7, 9]);
  assert.deepEqual(nd.mean(x, -1, true).shape, [2, 1]);
  assert.deepEqual([...nd.mean(x, -1, true).data], [2, 5]);
  assert.deepEqual([...nd.sum(x, [0, 1]).data], [21]);
  close(nd.variance(x, 1).data, [1, 1]);
  close(nd.std(x).data, [Math.sqrt(17.5 / 5)]);
  close(nd.norm(x).data, [Math.sqrt(91)]);
  close(nd.norm(x, 1, 1).data, [6, 15]);
  close(nd.norm(T([2], (i) => (i ? -7 : 3)), Infinity).data, [7]);
  assert.deepEqual([...nd.amax(x, 0).data], [4, 5, 6]);
  assert.deepEqual([...nd.amin(x, 1, true).data], [1, 4]);
  assert.throws(() => nd.sum(x, 2), /dim 2 is out of range for a tensor of rank 2/);
});

test('reductions over middle / mixed dims of a rank-3 tensor match explicit loops; where broadcasts', () => {
  const x = T([2, 3, 4], (i) => ((i * 7) % 11) - 5);
  const at = (i: number, j: number, k: number): number => x.data[i * 12 + j * 4 + k]!;
  const s1 = nd.sum(x, 1);
  assert.deepEqual(s1.shape, [2, 4]);
  for (let i = 0; i < 2; i++) for (let k = 0; k < 4; k++) assert.equal(s1.data[i * 4 + k], at(i, 0, k) + at(i, 1, k) + at(i, 2, k));
  const s02 = nd.sum(x, [0, 2], true);
  assert.deepEqual(s02.shape, [1, 3, 1]);
  for (let j = 0; j < 3; j++) {
    let ref = 0;
    for (let i = 0; i < 2; i++) for (let k = 0; k < 4; k++) ref += at(i, j, k);
    assert.equal(s02.data[j], ref);
  }
  const s0 = nd.amax(x, 0);
  for (let j = 0; j < 12; j++) assert.equal(s0.data[j], Math.max(x.data[j]!, x.data[12 + j]!));
  const w = nd.where(T([2, 1], (i) => i), T([3], (i) => i + 10), -1);
  assert.deepEqual(w.shape, [2, 3]);
  assert.deepEqual([...w.data], [-1, -1, -1, 10, 11, 12]);
});

test('quantile matches linear interpolation; topk_mask keeps exactly k by magnitude', () => {
  const x = T([5], (i) => [3, -1, 4, 1, 5][i]!);
  close(nd.quantile(x, 0.5).data, [3]);
  close(nd.quantile(x, 0.3).data, [1 + 0.2 * 2]); // sorted -1,1,3,4,5; pos 1.2
  close(nd.quantile(T([2, 3], (i) => i), 1, 1).data, [2, 5]);
  assert.deepEqual([...nd.topkMask(x, 0.4).data], [0, 0, 1, 0, 1]);
  assert.deepEqual([...nd.topkMask(T([4], () => 2), 0.5).data], [1, 1, 0, 0]); // ties: lower index first
  assert.deepEqual([...nd.topkMask(x, 0).data], [0, 0, 0, 0, 0]);
  assert.deepEqual([...nd.topkMask(x, 1).data], [1, 1, 1, 1, 1]);
});

test('cosine, dot, stack, cat, reshape, transpose, matmul', () => {
  const a = T([2, 2], (i) => [1, 0, 0, 1][i]!);
  const b = T([2, 2], (i) => [1, 1, 0, 1][i]!);
  close(nd.cosineSimilarity(a, b).data, [2 / (Math.sqrt(2) * Math.sqrt(3))]);
  close(nd.cosineSimilarity(a, b, 1).data, [1 / Math.sqrt(2), 1]);
  assert.deepEqual([...nd.dot(a, b).data], [2]);
  const s = nd.stack([a, b], 1);
  assert.deepEqual(s.shape, [2, 2, 2]);
  assert.deepEqual([...s.data], [1, 0, 1, 1, 0, 1, 0, 1]);
  assert.deepEqual([...nd.cat([a, b], 1).data], [1, 0, 1, 1, 0, 1, 0, 1]);
  assert.deepEqual(nd.cat([a, b], 0).shape, [4, 2]);
  assert.deepEqual(nd.reshape(a, [-1]).shape, [4]);
  assert.throws(() => nd.reshape(a, [3]), /cannot reshape \[2, 2\]/);
  assert.deepEqual([...nd.transpose2d(T([2, 3], (i) => i)).data], [0, 3, 1, 4, 2, 5]);
  assert.deepEqual([...nd.matmul(T([2, 3], (i) => i), T([3, 1], () => 1)).data], [3, 12]);
});

test('random tensors are seeded and never modify inputs', () => {
  const r1 = nd.rand([100], 9);
  assert.deepEqual(r1, nd.rand([100], 9));
  assert.notDeepEqual(r1, nd.rand([100], 10));
  assert.ok(r1.data.every((v) => v >= 0 && v < 1));
  const m = nd.bernoulli(0.3, [10000], 4);
  const frac = m.data.reduce((s, v) => s + v, 0) / 10000;
  assert.ok(Math.abs(frac - 0.3) < 0.02, `bernoulli frac ${frac}`);
  const p = T([3], (i) => [0, 1, 0][i]!);
  assert.deepEqual([...nd.bernoulli(p, null, 1).data], [0, 1, 0]);
  const n = nd.randn([20000], 3);
  const mean = n.data.reduce((s, v) => s + v, 0) / n.numel;
  const varc = n.data.reduce((s, v) => s + (v - mean) ** 2, 0) / n.numel;
  assert.ok(Math.abs(mean) < 0.03 && Math.abs(varc - 1) < 0.05, `randn mean ${mean} var ${varc}`);
  const x = T([3], (i) => i - 1);
  const copy = new Float32Array(x.data);
  nd.add(x, x);
  nd.mul(x, 3);
  nd.sub(x, x);
  nd.topkMask(x, 0.5);
  nd.quantile(x, 0.5);
  assert.deepEqual(x.data, copy);
});
