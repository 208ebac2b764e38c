/**
 * Element-wise ops of the n-d array library (see nd.ts): broadcasting binary ops, where, unary ops
 * and clamp. Every op returns a new array.
 */
import { axpy, scale as kscale, sub as ksub } from './kernels.ts';
import { NDArray, asND, broadcastMap, broadcastShapes, bstrides, copyOf, f32, numelOf, sameShape, type Operand } from './nd-core.ts';
import { nativeBinary, nativeScale, nativeUnary, nativeWhere, type NativeBinary, type NativeUnary } from './nd-native.ts';

export type BinaryFn = (x: number, y: number) => number;

/**
 * Per-op loops for the three common layouts (same shape, scalar right, scalar left): each loop is
 * its own function, so V8 compiles it monomorphic with the arithmetic inlined, at memory speed on
 * large tensors, where the generic path below calls a closure per element. Same arithmetic as the
 * ops' closures (results bit-identical).
 */
type Loop = (o: Float32Array, a: Float32Array, b: Float32Array) => void;
type SLoop = (o: Float32Array, a: Float32Array, y: number) => void;
interface OpLoops {
  same: Loop;
  right: SLoop;
  left: SLoop;
}
const LOOPS: Record<string, OpLoops> = {
  mul: {
    same: (o, a, b) => { for (let i = 0; i < o.length; i++) o[i] = a[i]! * b[i]!; },
    right: (o, a, y) => { for (let i = 0; i < o.length; i++) o[i] = a[i]! * y; },
    left: (o, b, x) => { for (let i = 0; i < o.length; i++) o[i] = x * b[i]!; },
  },
  div: {
    same: (o, a, b) => { for (let i = 0; i < o.length; i++) o[i] = a[i]! / b[i]!; },
    right: (o, a, y) => { for (let i = 0; i < o.length; i++) o[i] = a[i]! / y; },
    left: (o, b, x) => { for (let i = 0; i < o.length; i++) o[i] = x / b[i]!; },
  },
  maximum: {
    same: (o, a, b) => { for (let i = 0; i < o.length; i++) { const x = a[i]!, y = b[i]!; o[i] = x !== x || y !== y ? NaN : Math.max(x, y); } },
    right: (o, a, y) => { for (let i = 0; i < o.length; i++) { const x = a[i]!; o[i] = x !== x || y !== y ? NaN : Math.max(x, y); } },
    left: (o, b, x) => { for (let i = 0; i < o.length; i++) { const y = b[i]!; o[i] = x !== x || y !== y ? NaN : Math.max(x, y); } },
  },
  minimum: {
    same: (o, a, b) => { for (let i = 0; i < o.length; i++) { const x = a[i]!, y = b[i]!; o[i] = x !== x || y !== y ? NaN : Math.min(x, y); } },
    right: (o, a, y) => { for (let i = 0; i < o.length; i++) { const x = a[i]!; o[i] = x !== x || y !== y ? NaN : Math.min(x, y); } },
    left: (o, b, x) => { for (let i = 0; i < o.length; i++) { const y = b[i]!; o[i] = x !== x || y !== y ? NaN : Math.min(x, y); } },
  },
  gt: {
    same: (o, a, b) => { for (let i = 0; i < o.length; i++) o[i] = a[i]! > b[i]! ? 1 : 0; },
    right: (o, a, y) => { for (let i = 0; i < o.length; i++) o[i] = a[i]! > y ? 1 : 0; },
    left: (o, b, x) => { for (let i = 0; i < o.length; i++) o[i] = x > b[i]! ? 1 : 0; },
  },
  ge: {
    same: (o, a, b) => { for (let i = 0; i < o.length; i++) o[i] = a[i]! >= b[i]! ? 1 : 0; },
    right: (o, a, y) => { for (let i = 0; i < o.length; i++) o[i] = a[i]! >= y ? 1 : 0; },
    left: (o, b, x) => { for (let i = 0; i < o.length; i++) o[i] = x >= b[i]! ? 1 : 0; },
  },
  lt: {
    same: (o, a, b) => { for (let i = 0; i < o.length; i++) o[i] = a[i]! < b[i]! ? 1 : 0; },
    right: (o, a, y) => { for (let i = 0; i < o.length; i++) o[i] = a[i]! < y ? 1 : 0; },
    left: (o, b, x) => { for (let i = 0; i < o.length; i++) o[i] = x < b[i]! ? 1 : 0; },
  },
  le: {
    same: (o, a, b) => { for (let i = 0; i < o.length; i++) o[i] = a[i]! <= b[i]! ? 1 : 0; },
    right: (o, a, y) => { for (let i = 0; i < o.length; i++) o[i] = a[i]! <= y ? 1 : 0; },
    left: (o, b, x) => { for (let i = 0; i < o.length; i++) o[i] = x <= b[i]! ? 1 : 0; },
  },
  eq: {
    same: (o, a, b) => { for (let i = 0; i < o.length; i++) o[i] = a[i]! === b[i]! ? 1 : 0; },
    right: (o, a, y) => { for (let i = 0; i < o.length; i++) o[i] = a[i]! === y ? 1 : 0; },
    left: (o, b, x) => { for (let i = 0; i < o.length; i++) o[i] = x === b[i]! ? 1 : 0; },
  },
};

/** `binary` with the op's fast loops when the layout allows (else the generic path with `f`). */
function binaryOp(name: NativeBinary, a: Operand, b: Operand, f: BinaryFn): NDArray {
  const A = asND(a);
  const B = asND(b);
  const nat = nativeBinary(name, A, B);
  if (nat) return nat;
  const L = LOOPS[name]!;
  if (sameShape(A.shape, B.shape)) {
    const out = f32(A.numel);
    L.same(out, A.data, B.data);
    return new NDArray(out, A.shape);
  }
  if (B.numel === 1 && B.rank <= A.rank) {
    const out = f32(A.numel);
    L.right(out, A.data, B.data[0]!);
    return new NDArray(out, A.shape);
  }
  if (A.numel === 1 && A.rank <= B.rank) {
    const out = f32(B.numel);
    L.left(out, B.data, A.data[0]!);
    return new NDArray(out, B.shape);
  }
  return binary(A, B, f);
}

export function binary(a: Operand, b: Operand, f: BinaryFn): NDArray {
  const A = asND(a);
  const B = asND(b);
  const shape = broadcastShapes(A.shape, B.shape);
  const out = f32(numelOf(shape));
  const ad = A.data;
  const bd = B.data;
  if (sameShape(A.shape, B.shape)) {
    for (let i = 0; i < out.length; i++) out[i] = f(ad[i]!, bd[i]!);
  } else if (B.numel === 1) {
    const y = bd[0]!;
    for (let i = 0; i < out.length; i++) out[i] = f(ad[i]!, y);
  } else if (A.numel === 1) {
    const x = ad[0]!;
    for (let i = 0; i < out.length; i++) out[i] = f(x, bd[i]!);
  } else if (shape.length > 0) {
    // outer loop over all but the last dim (base offsets via broadcastMap), tight inner loop
    const r = shape.length;
    const inner = shape[r - 1]!;
    const sa = bstrides(A.shape, shape)[r - 1]!;
    const sb = bstrides(B.shape, shape)[r - 1]!;
    const outerShape = shape.slice(0, r - 1);
    const aOuter = [...A.shape.slice(0, Math.max(0, A.shape.length - 1))];
    const bOuter = [...B.shape.slice(0, Math.max(0, B.shape.length - 1))];
    const aInner = A.shape.length > 0 ? A.shape[A.shape.length - 1]! : 1;
    const bInner = B.shape.length > 0 ? B.shape[B.shape.length - 1]! : 1;
    const visit = (o: number, offs: number[]): void => {
      let ia = offs[0]! * aInner;
      let ib = offs[1]! * bInner;
      const base = o * inner;
      for (let j = 0; j < inner; j++, ia += sa, ib += sb) out[base + j] = f(ad[ia]!, bd[ib]!);
    };
    if (outerShape.length === 0) visit(0, [0, 0]);
    else broadcastMap(outerShape, [aOuter, bOuter], visit);
  }
  return new NDArray(out, shape);
}

export function add(a: Operand, b: Operand, alpha = 1): NDArray {
  const nat = nativeBinary('add', asND(a), asND(b), alpha);
  if (nat) return nat;
  if (typeof a !== 'number' && typeof b !== 'number' && sameShape(a.shape, b.shape)) {
    const out = copyOf(a.data);
    axpy(out, alpha, b.data);
    return new NDArray(out, a.shape);
  }
  return alpha === 1 ? binary(a, b, (x, y) => x + y) : binary(a, b, (x, y) => x + alpha * y);
}
export function sub(a: Operand, b: Operand, alpha = 1): NDArray {
  const nat = nativeBinary('sub', asND(a), asND(b), alpha);
  if (nat) return nat;
  if (alpha === 1 && typeof a !== 'number' && typeof b !== 'number' && sameShape(a.shape, b.shape)) {
    const out = f32(a.numel);
    ksub(out, a.data, b.data);
    return new NDArray(out, a.shape);
  }
  return binary(a, b, (x, y) => x - alpha * y);
}
export function mul(a: Operand, b: Operand): NDArray {
  if (typeof b === 'number' && typeof a !== 'number') {
    const nat = nativeScale(a, b); // b stays a float64 here (not a float32 scalar tensor)
    if (nat) return nat;
    const out = copyOf(a.data);
    kscale(out, b);
    return new NDArray(out, a.shape);
  }
  if (typeof a === 'number' && typeof b !== 'number') return mul(b, a);
  return binaryOp('mul', a, b, (x, y) => x * y);
}
export const div = (a: Operand, b: Operand): NDArray => binaryOp('div', a, b, (x, y) => x / y);
export const pow = (a: Operand, b: Operand): NDArray => binary(a, b, (x, y) => Math.pow(x, y));
export const maximum = (a: Operand, b: Operand): NDArray => binaryOp('maximum', a, b, (x, y) => (x !== x || y !== y ? NaN : Math.max(x, y)));
export const minimum = (a: Operand, b: Operand): NDArray => binaryOp('minimum', a, b, (x, y) => (x !== x || y !== y ? NaN : Math.min(x, y)));
export const gt = (a: Operand, b: Operand): NDArray => binaryOp('gt', a, b, (x, y) => (x > y ? 1 : 0));
export const ge = (a: Operand, b: Operand): NDArray => binaryOp('ge', a, b, (x, y) => (x >= y ? 1 : 0));
export const lt = (a: Operand, b: Operand): NDArray => binaryOp('lt', a, b, (x, y) => (x < y ? 1 : 0));
export const le = (a: Operand, b: Operand): NDArray => binaryOp('le', a, b, (x, y) => (x <= y ? 1 : 0));
export const eq = (a: Operand, b: Operand): NDArray => binaryOp('eq', a, b, (x, y) => (x === y ? 1 : 0));

/** where(cond, a, b): a where cond != 0, else b (all three broadcast together). */
export function where(cond: Operand, a: Operand, b: Operand): NDArray {
  const C = asND(cond);
  const A = asND(a);
  const B = asND(b);
  const shape = broadcastShapes(broadcastShapes(C.shape, A.shape), B.shape);
  const n = numelOf(shape);
  const simple = [C, A, B].every((x) => x.numel === 1 || sameShape(x.shape, shape));
  const nat = simple ? nativeWhere(C, A, B, shape) : null;
  if (nat) return nat;
  const out = f32(n);
  const cd = C.data;
  const ad = A.data;
  const bd = B.data;
  if (simple) {
    const sc = C.numel === 1 && n !== 1 ? 0 : 1;
    const sa = A.numel === 1 && n !== 1 ? 0 : 1;
    const sb = B.numel === 1 && n !== 1 ? 0 : 1;
    for (let i = 0; i < n; i++) out[i] = cd[i * sc]! !== 0 ? ad[i * sa]! : bd[i * sb]!;
    return new NDArray(out, shape);
  }
  broadcastMap(shape, [C.shape, A.shape, B.shape], (o, offs) => {
    out[o] = cd[offs[0]!]! !== 0 ? ad[offs[1]!]! : bd[offs[2]!]!;
  });
  return new NDArray(out, shape);
}

export function unary(a: Operand, f: (x: number) => number): NDArray {
  const A = asND(a);
  const out = f32(A.numel);
  const d = A.data;
  for (let i = 0; i < out.length; i++) out[i] = f(d[i]!);
  return new NDArray(out, A.shape);
}
/** A unary op with its own loop (monomorphic, see LOOPS). */
function unaryLoop(a: Operand, op: NativeUnary, loop: (o: Float32Array, d: Float32Array) => void, lo = 0, hi = 0): NDArray {
  const A = asND(a);
  const nat = nativeUnary(op, A, lo, hi);
  if (nat) return nat;
  const out = f32(A.numel);
  loop(out, A.data);
  return new NDArray(out, A.shape);
}
export const abs = (a: Operand): NDArray => unaryLoop(a, 'abs', (o, d) => { for (let i = 0; i < o.length; i++) o[i] = Math.abs(d[i]!); });
export const neg = (a: Operand): NDArray => unaryLoop(a, 'neg', (o, d) => { for (let i = 0; i < o.length; i++) o[i] = -d[i]!; });
export const sign = (a: Operand): NDArray => unaryLoop(a, 'sign', (o, d) => { for (let i = 0; i < o.length; i++) { const x = d[i]!; o[i] = x > 0 ? 1 : x < 0 ? -1 : x === 0 ? 0 : NaN; } });
export const sqrt = (a: Operand): NDArray => unaryLoop(a, 'sqrt', (o, d) => { for (let i = 0; i < o.length; i++) o[i] = Math.sqrt(d[i]!); });
export const exp = (a: Operand): NDArray => unary(a, Math.exp);
export const log = (a: Operand): NDArray => unary(a, Math.log);
export const sigmoid = (a: Operand): NDArray => unary(a, (x) => 1 / (1 + Math.exp(-x)));
export const tanh = (a: Operand): NDArray => unary(a, Math.tanh);
export const relu = (a: Operand): NDArray => unaryLoop(a, 'relu', (o, d) => { for (let i = 0; i < o.length; i++) { const x = d[i]!; o[i] = x > 0 ? x : 0; } });
export const square = (a: Operand): NDArray => unaryLoop(a, 'square', (o, d) => { for (let i = 0; i < o.length; i++) { const x = d[i]!; o[i] = x * x; } });
export function clamp(a: Operand, min: number | null, max: number | null): NDArray {
  const lo = min ?? -Infinity;
  const hi = max ?? Infinity;
  return unaryLoop(a, 'clamp', (o, d) => { for (let i = 0; i < o.length; i++) { const x = d[i]!; o[i] = x < lo ? lo : x > hi ? hi : x; } }, lo, hi);
}
