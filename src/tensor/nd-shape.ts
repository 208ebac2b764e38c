/**
 * Shape ops, constructors and seeded random tensors of the n-d array library (see nd.ts).
 */
import { uniformAt } from './kernels.ts';
import { NDArray, broadcastMap, broadcastShapes, copyOf, f32, f32w, fmtShape, numelOf, sameShape, type Operand } from './nd-core.ts';
import { copyInto } from './nd-native.ts';

export function broadcastTo(a: NDArray, shape: readonly number[]): NDArray {
  const s = broadcastShapes(a.shape, shape);
  if (!sameShape(s, shape)) throw new Error(`cannot expand ${fmtShape(a.shape)} to ${fmtShape(shape)}`);
  const out = f32(numelOf(s));
  const d = a.data;
  broadcastMap(s, [a.shape], (o, offs) => {
    out[o] = d[offs[0]!]!;
  });
  return new NDArray(out, s);
}

/** Stack same-shape tensors along a new dim. */
export function stack(list: readonly NDArray[], dim = 0): NDArray {
  if (list.length === 0) throw new Error('stack: expects a non-empty list of tensors');
  const s0 = list[0]!.shape;
  for (const t of list) if (!sameShape(t.shape, s0)) throw new Error(`stack: all tensors must have the same shape, got ${fmtShape(s0)} and ${fmtShape(t.shape)}`);
  const r = s0.length + 1;
  const d = dim < 0 ? dim + r : dim;
  if (!Number.isInteger(d) || d < 0 || d >= r) throw new Error(`stack: dim ${dim} out of range for result rank ${r}`);
  // along a new leading dim the stack is its parts one after the other: its copy is made only when its data is read (NDArray.stacked)
  if (d === 0 && numelOf(s0) > 0) return NDArray.stacked(list.map((t) => t.data), [list.length, ...s0]);
  const outer = numelOf(s0.slice(0, d));
  const inner = numelOf(s0.slice(d));
  const out = f32w(outer * list.length * inner);
  for (let o = 0; o < outer; o++)
    for (let k = 0; k < list.length; k++) {
      const at = (o * list.length + k) * inner;
      copyInto(out.subarray(at, at + inner), list[k]!.data.subarray(o * inner, (o + 1) * inner));
    }
  return new NDArray(out, [...s0.slice(0, d), list.length, ...s0.slice(d)]);
}

/** Concatenate along an existing dim. */
export function cat(list: readonly NDArray[], dim = 0): NDArray {
  if (list.length === 0) throw new Error('cat: expects a non-empty list of tensors');
  const s0 = list[0]!.shape;
  const r = s0.length;
  if (r === 0) throw new Error('cat: zero-dimensional tensors cannot be concatenated');
  const d = dim < 0 ? dim + r : dim;
  if (!Number.isInteger(d) || d < 0 || d >= r) throw new Error(`cat: dim ${dim} out of range for rank ${r}`);
  for (const t of list)
    if (t.rank !== r || t.shape.some((x, i) => i !== d && x !== s0[i])) throw new Error(`cat: shapes ${fmtShape(s0)} and ${fmtShape(t.shape)} differ outside dim ${d}`);
  const outer = numelOf(s0.slice(0, d));
  const inners = list.map((t) => numelOf(t.shape.slice(d)));
  const tot = inners.reduce((x, y) => x + y, 0);
  const out = f32(outer * tot);
  let off = 0;
  for (let o = 0; o < outer; o++)
    for (let k = 0; k < list.length; k++) {
      out.set(list[k]!.data.subarray(o * inners[k]!, (o + 1) * inners[k]!), off);
      off += inners[k]!;
    }
  const shape = [...s0];
  shape[d] = list.reduce((acc, t) => acc + t.shape[d]!, 0);
  return new NDArray(out, shape);
}

/** Reshape (one dim may be -1). Copies the data (arrays are immutable anyway). */
export function reshape(a: NDArray, shape: readonly number[]): NDArray {
  const s = [...shape];
  const neg1 = s.filter((d) => d === -1).length;
  if (neg1 > 1) throw new Error('reshape: only one dim may be -1');
  for (const d of s) if (!Number.isInteger(d) || d < -1) throw new Error(`reshape: invalid shape ${fmtShape(shape)}`);
  if (neg1 === 1) {
    const known = numelOf(s.filter((d) => d !== -1));
    if (known === 0 || a.numel % known !== 0) throw new Error(`reshape: cannot reshape ${fmtShape(a.shape)} into ${fmtShape(shape)}`);
    s[s.indexOf(-1)] = a.numel / known;
  }
  if (numelOf(s) !== a.numel) throw new Error(`reshape: cannot reshape ${fmtShape(a.shape)} (${a.numel} elements) into ${fmtShape(shape)}`);
  return new NDArray(copyOf(a.data), s);
}

/** Transpose of a 2-D tensor (1-D and 0-D are returned as copies). */
export function transpose2d(a: NDArray): NDArray {
  if (a.rank < 2) return new NDArray(copyOf(a.data), a.shape);
  if (a.rank !== 2) throw new Error(`t(): expects a tensor of rank <= 2, got ${fmtShape(a.shape)}`);
  const [r, c] = a.shape as [number, number];
  const out = f32(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = a.data[i * c + j]!;
  return new NDArray(out, [c, r]);
}

/** 2-D matrix product [m,k]·[k,n] (1-D operands are treated as vectors like torch.matmul). */
export function matmul(a: NDArray, b: NDArray): NDArray {
  const A = a.rank === 1 ? reshape(a, [1, a.numel]) : a;
  const B = b.rank === 1 ? reshape(b, [b.numel, 1]) : b;
  if (A.rank !== 2 || B.rank !== 2 || A.shape[1] !== B.shape[0]) throw new Error(`matmul: shapes ${fmtShape(a.shape)} and ${fmtShape(b.shape)} are not compatible`);
  const [m, k] = A.shape as [number, number];
  const n = B.shape[1]!;
  const out = f32(m * n);
  for (let i = 0; i < m; i++)
    for (let p = 0; p < k; p++) {
      const av = A.data[i * k + p]!;
      if (av === 0) continue;
      for (let j = 0; j < n; j++) out[i * n + j] += av * B.data[p * n + j]!;
    }
  const shape = a.rank === 1 && b.rank === 1 ? [] : a.rank === 1 ? [n] : b.rank === 1 ? [m] : [m, n];
  return new NDArray(out, shape);
}

export function full(shape: readonly number[], v: number): NDArray {
  return new NDArray(f32(numelOf(shape)).fill(v), shape);
}

/** Uniform [0, 1) from a counter-based generator: identical for the same seed. */
export function rand(shape: readonly number[], seed: number): NDArray {
  const out = f32(numelOf(shape));
  for (let i = 0; i < out.length; i++) out[i] = uniformAt(seed, i);
  return new NDArray(out, shape);
}

/** Standard normal (Box–Muller over two counter-based streams). */
export function randn(shape: readonly number[], seed: number): NDArray {
  const out = f32(numelOf(shape));
  for (let i = 0; i < out.length; i++) {
    const u1 = 1 - uniformAt(seed, 2 * i);
    const u2 = uniformAt(seed, 2 * i + 1);
    out[i] = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }
  return new NDArray(out, shape);
}

/** 1 with probability p (p a number or a tensor of probabilities), else 0. */
export function bernoulli(p: Operand, shape: readonly number[] | null, seed: number): NDArray {
  if (typeof p === 'number') {
    if (!shape) throw new Error('bernoulli: a numeric probability needs a shape');
    const out = f32(numelOf(shape));
    for (let i = 0; i < out.length; i++) out[i] = uniformAt(seed, i) < p ? 1 : 0;
    return new NDArray(out, shape);
  }
  const out = f32(p.numel);
  for (let i = 0; i < out.length; i++) out[i] = uniformAt(seed, i) < p.data[i]! ? 1 : 0;
  return new NDArray(out, p.shape);
}
