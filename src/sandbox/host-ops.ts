/**
 * The host side of the torch-like API: every op a sandboxed program calls arrives here as
 * (op name, JSON text of the arguments). Nothing coming from the isolate is trusted: arguments are
 * parsed from a string, every type, handle, shape and dim is checked, the op count and the total
 * number of allocated elements are capped BEFORE allocating, and no op ever writes into an
 * existing tensor (inputs are immutable by construction).
 */
import * as nd from '../tensor/nd.ts';
import { NDArray, fmtShape, numelOf } from '../tensor/nd.ts';
import type { FailureCategory, SandboxLimits } from './types.ts';
import { CpuBudget } from './cpu-time.ts';

type Arg = number | boolean | string | null | NDArray | Arg[];

/** An error that ends the candidate with a category, even if the program catches it. */
export class FatalOpError extends Error {
  readonly category: FailureCategory;
  constructor(category: FailureCategory, message: string) {
    super(message);
    this.category = category;
  }
}

export interface OpState {
  tensors: Map<number, NDArray>;
  nextId: number;
  ops: number;
  elements: number;
  rngCalls: number;
  seed: number;
  limits: SandboxLimits;
  fatal: FatalOpError | null;
  testHooks: boolean;
  /** CPU budget of the run: once it is used up every op fails with 'timeout' (isolated-vm's own
   * timeout is wall time and does not see time spent inside host callbacks) */
  cpu: CpuBudget;
}

export function newOpState(seed: number, limits: SandboxLimits, testHooks = false): OpState {
  return { tensors: new Map(), nextId: 1, ops: 0, elements: 0, rngCalls: 0, seed: seed >>> 0, limits, fatal: null, testHooks, cpu: new CpuBudget(limits.timeoutMs) };
}

export function register(st: OpState, t: NDArray): number {
  const id = st.nextId++;
  st.tensors.set(id, t);
  return id;
}

const MAX_LIST = 4096;

function decode(st: OpState, v: unknown, depth: number): Arg {
  if (v === null || typeof v === 'number' || typeof v === 'boolean') return v;
  if (typeof v === 'string') {
    if (v.length > 16) throw new TypeError('string arguments longer than 16 characters are not accepted');
    return v;
  }
  if (Array.isArray(v)) {
    if (depth > 3) throw new TypeError('arguments nested deeper than 3 lists are not accepted');
    if (v.length > MAX_LIST) throw new TypeError(`lists longer than ${MAX_LIST} are not accepted`);
    return v.map((x) => decode(st, x, depth + 1));
  }
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.length === 1 && keys[0] === '$t' && Number.isInteger(o.$t)) {
      const t = st.tensors.get(o.$t as number);
      if (!t) throw new TypeError(`tensor handle ${String(o.$t)} does not exist in this run`);
      return t;
    }
    if (keys.length === 1 && keys[0] === '$n') {
      if (o.$n === 'NaN') return NaN;
      if (o.$n === 'Infinity') return Infinity;
      if (o.$n === '-Infinity') return -Infinity;
    }
  }
  throw new TypeError('unsupported argument value');
}

function kind(a: Arg | undefined): string {
  if (a === undefined) return 'nothing';
  if (a === null) return 'null';
  if (a instanceof NDArray) return `a tensor of shape ${fmtShape(a.shape)}`;
  if (Array.isArray(a)) return 'a list';
  return `a ${typeof a}`;
}

class Args {
  constructor(readonly op: string, readonly a: Arg[]) {}
  private err(i: number, want: string): never {
    throw new TypeError(`torch.${this.op}: argument ${i + 1} must be ${want}, got ${kind(this.a[i])}`);
  }
  operand(i: number): nd.Operand {
    const v = this.a[i];
    if (v instanceof NDArray || typeof v === 'number') return v;
    if (typeof v === 'boolean') return v ? 1 : 0;
    return this.err(i, 'a tensor or a number');
  }
  tensor(i: number): NDArray {
    const v = this.a[i];
    if (v instanceof NDArray) return v;
    if (typeof v === 'number') return nd.scalar(v);
    return this.err(i, 'a tensor');
  }
  num(i: number, dflt?: number): number {
    const v = this.a[i];
    if ((v === undefined || v === null) && dflt !== undefined) return dflt;
    if (typeof v === 'number') return v;
    if (v instanceof NDArray && v.numel === 1) return v.data[0]!;
    return this.err(i, 'a number');
  }
  optNum(i: number): number | null {
    const v = this.a[i];
    return v === undefined || v === null ? null : this.num(i);
  }
  bool(i: number): boolean {
    const v = this.a[i];
    if (v === undefined || v === null) return false;
    if (typeof v === 'boolean') return v;
    if (v === 0 || v === 1) return v === 1;
    return this.err(i, 'a boolean (keepdim)');
  }
  dims(i: number): number | number[] | null {
    const v = this.a[i];
    if (v === undefined || v === null) return null;
    if (typeof v === 'number' && Number.isInteger(v)) return v;
    if (Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isInteger(x))) return v as number[];
    return this.err(i, 'a dim (integer), a list of dims, or null');
  }
  dim(i: number, dflt: number): number {
    const v = this.a[i];
    if (v === undefined || v === null) return dflt;
    if (typeof v === 'number' && Number.isInteger(v)) return v;
    return this.err(i, 'an integer dim');
  }
  shape(i: number): number[] {
    let v = this.a[i];
    if (typeof v === 'number') v = [v];
    if (Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0)) return v as number[];
    return this.err(i, 'a shape (list of non-negative integers)');
  }
  tensorList(i: number): NDArray[] {
    const v = this.a[i];
    if (Array.isArray(v) && v.length > 0 && v.every((x) => x instanceof NDArray)) return v as NDArray[];
    return this.err(i, 'a non-empty list of tensors');
  }
}

function charge(st: OpState, op: string, n: number): void {
  if (!Number.isFinite(n) || st.elements + n > st.limits.maxElements) {
    throw fatal(st, 'memory', `torch.${op} would allocate ${n} elements; this run may allocate at most ${st.limits.maxElements} in total (${st.elements} used). Use fewer or smaller intermediate tensors.`);
  }
}

function fatal(st: OpState, category: FailureCategory, message: string): FatalOpError {
  st.fatal ??= new FatalOpError(category, message);
  return st.fatal;
}

function nextSeed(st: OpState): number {
  st.rngCalls++;
  let h = (st.seed ^ Math.imul(st.rngCalls, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

const binaryOps: Record<string, (a: nd.Operand, b: nd.Operand) => NDArray> = {
  mul: nd.mul, div: nd.div, pow: nd.pow, maximum: nd.maximum, minimum: nd.minimum,
  gt: nd.gt, ge: nd.ge, lt: nd.lt, le: nd.le, eq: nd.eq,
};
const unaryOps: Record<string, (a: nd.Operand) => NDArray> = {
  abs: nd.abs, neg: nd.neg, sign: nd.sign, sqrt: nd.sqrt, exp: nd.exp, log: nd.log, sigmoid: nd.sigmoid,
  tanh: nd.tanh, relu: nd.relu, square: nd.square,
};
const reduceOps: Record<string, (a: nd.Operand, dim: number | number[] | null, keepdim: boolean) => NDArray> = {
  sum: nd.sum, mean: nd.mean, amax: nd.amax, amin: nd.amin, max: nd.amax, min: nd.amin,
  std: (a, d, k) => nd.std(a, d, k), var: (a, d, k) => nd.variance(a, d, k),
};

function shapeOf(x: nd.Operand): readonly number[] {
  return typeof x === 'number' ? [] : x.shape;
}

function compute(st: OpState, op: string, A: Args): NDArray | number {
  if (op in binaryOps) {
    const a = A.operand(0);
    const b = A.operand(1);
    charge(st, op, numelOf(nd.broadcastShapes(shapeOf(a), shapeOf(b))));
    return binaryOps[op]!(a, b);
  }
  if (op === 'add' || op === 'sub') {
    const a = A.operand(0);
    const b = A.operand(1);
    charge(st, op, numelOf(nd.broadcastShapes(shapeOf(a), shapeOf(b))));
    return op === 'add' ? nd.add(a, b, A.num(2, 1)) : nd.sub(a, b, A.num(2, 1));
  }
  if (op in unaryOps) return unaryOps[op]!(A.operand(0));
  if (op in reduceOps) return reduceOps[op]!(A.operand(0), A.dims(1), A.bool(2));
  switch (op) {
    case 'where': {
      const c = A.operand(0);
      const a = A.operand(1);
      const b = A.operand(2);
      charge(st, op, numelOf(nd.broadcastShapes(nd.broadcastShapes(shapeOf(c), shapeOf(a)), shapeOf(b))));
      return nd.where(c, a, b);
    }
    case 'clamp':
      return nd.clamp(A.operand(0), A.optNum(1), A.optNum(2));
    case 'norm': {
      const p = A.a[1];
      const pv = p === undefined || p === null ? 2 : p === 'fro' ? 'fro' : A.num(1);
      return nd.norm(A.operand(0), pv, A.dims(2), A.bool(3));
    }
    case 'quantile':
      return nd.quantile(A.operand(0), A.num(1), A.dims(2), A.bool(3));
    case 'topk_mask':
      return nd.topkMask(A.operand(0), A.num(1));
    case 'cosine_similarity': {
      const d = A.a[2];
      return nd.cosineSimilarity(A.tensor(0), A.tensor(1), d === undefined || d === null ? null : A.dim(2, 0));
    }
    case 'dot':
      return nd.dot(A.tensor(0), A.tensor(1));
    case 'matmul': {
      const a = A.tensor(0);
      const b = A.tensor(1);
      const m = a.rank === 1 ? 1 : a.shape[0]!;
      const n = b.rank === 1 ? 1 : b.shape[1] ?? 1;
      charge(st, op, m * n + Math.floor((m * n * (a.shape[a.rank - 1] ?? 1)) / 16));
      return nd.matmul(a, b);
    }
    case 'stack':
    case 'cat': {
      const list = A.tensorList(0);
      charge(st, op, list.reduce((s, t) => s + t.numel, 0));
      return op === 'stack' ? nd.stack(list, A.dim(1, 0)) : nd.cat(list, A.dim(1, 0));
    }
    case 'reshape': {
      const t = A.tensor(0);
      const v = A.a[1];
      const shape = Array.isArray(v) ? v : A.a.slice(1);
      if (!shape.every((x) => typeof x === 'number' && Number.isInteger(x))) throw new TypeError('torch.reshape: the shape must be integers');
      return nd.reshape(t, shape as number[]);
    }
    case 'flatten':
      return nd.reshape(A.tensor(0), [-1]);
    case 'unsqueeze': {
      const t = A.tensor(0);
      const r = t.rank + 1;
      const d0 = A.dim(1, 0);
      const d = d0 < 0 ? d0 + r : d0;
      if (d < 0 || d >= r) throw new RangeError(`torch.unsqueeze: dim ${d0} out of range for result rank ${r}`);
      const s = [...t.shape];
      s.splice(d, 0, 1);
      return nd.reshape(t, s);
    }
    case 'squeeze': {
      const t = A.tensor(0);
      const v = A.a[1];
      if (v === undefined || v === null) return nd.reshape(t, t.shape.filter((x) => x !== 1));
      const d = nd.normDims(A.dim(1, 0), t.rank);
      return nd.reshape(t, t.shape.filter((x, i) => !(x === 1 && d.includes(i))));
    }
    case 't':
      return nd.transpose2d(A.tensor(0));
    case 'broadcast_to':
    case 'expand_as': {
      const t = A.tensor(0);
      const shape = op === 'expand_as' ? [...A.tensor(1).shape] : A.shape(1);
      charge(st, op, numelOf(shape));
      return nd.broadcastTo(t, shape);
    }
    case 'clone':
      return new NDArray(new Float32Array(A.tensor(0).data), A.tensor(0).shape);
    case 'zeros':
    case 'ones':
    case 'full':
    case 'rand':
    case 'randn': {
      const shape = A.shape(0);
      charge(st, op, numelOf(shape));
      if (op === 'rand') return nd.rand(shape, nextSeed(st));
      if (op === 'randn') return nd.randn(shape, nextSeed(st));
      return nd.full(shape, op === 'zeros' ? 0 : op === 'ones' ? 1 : A.num(1));
    }
    case 'zeros_like':
    case 'ones_like':
    case 'full_like':
    case 'rand_like':
    case 'randn_like': {
      const shape = shapeOf(A.operand(0));
      charge(st, op, numelOf(shape));
      if (op === 'rand_like') return nd.rand(shape, nextSeed(st));
      if (op === 'randn_like') return nd.randn(shape, nextSeed(st));
      return nd.full(shape, op === 'zeros_like' ? 0 : op === 'ones_like' ? 1 : A.num(1));
    }
    case 'bernoulli': {
      const p = A.operand(0);
      if (typeof p === 'number') {
        const shape = A.shape(1);
        charge(st, op, numelOf(shape));
        return nd.bernoulli(p, shape, nextSeed(st));
      }
      return nd.bernoulli(p, null, nextSeed(st));
    }
    case 'tensor': {
      const v = A.a[0];
      if (typeof v === 'number') return nd.scalar(v);
      if (Array.isArray(v) && v.every((x) => typeof x === 'number')) return new NDArray(Float32Array.from(v as number[]), [v.length]);
      if (Array.isArray(v) && v.length > 0 && v.every((r) => Array.isArray(r) && r.length === (v[0] as Arg[]).length && r.every((x) => typeof x === 'number')))
        return new NDArray(Float32Array.from((v as number[][]).flat()), [v.length, (v[0] as Arg[]).length]);
      throw new TypeError('torch.tensor: expects a number, a list of numbers, or a list of equal-length lists of numbers');
    }
    case 'item': {
      const t = A.tensor(0);
      if (t.numel !== 1) throw new RangeError(`item(): only a tensor with one element can be converted to a number, this one has shape ${fmtShape(t.shape)}`);
      return t.data[0]!;
    }
    case '__hang':
      if (st.testHooks) for (;;);
      break;
    case '__crash':
      if (st.testHooks) process.exit(70);
      break;
  }
  throw new TypeError(`torch.${op} is not a function of this API`);
}

/** Encodes a number for the isolate (JSON has no NaN/Infinity). */
function encNum(x: number): string {
  return Number.isFinite(x) ? JSON.stringify(x) : JSON.stringify(String(x));
}

/**
 * One op call from the isolate. Returns JSON text: {"t":id,"s":shape} for a tensor, {"n":x} for a
 * number. Throws (into the isolate) on any error; budget errors are sticky (see FatalOpError).
 */
export function hostOp(st: OpState, op: unknown, argsJson: unknown): string {
  if (st.fatal) throw new Error(st.fatal.message);
  if (typeof op !== 'string' || typeof argsJson !== 'string') throw new TypeError('internal op protocol violated');
  if (st.cpu.exceeded()) {
    fatal(st, 'timeout', `the program used more than its CPU-time limit of ${st.limits.timeoutMs} ms (tensor ops included); use fewer or cheaper ops`);
    throw new Error(st.fatal!.message);
  }
  if (++st.ops > st.limits.maxOps) {
    fatal(st, 'op-limit', `more than ${st.limits.maxOps} tensor ops in one call; use whole-tensor ops instead of loops over elements or rows`);
    throw new Error(st.fatal!.message);
  }
  if (argsJson.length > 1 << 20) throw new TypeError(`torch.${op}: arguments too large`);
  let raw: unknown;
  try {
    raw = JSON.parse(argsJson);
  } catch {
    throw new TypeError('internal op protocol violated');
  }
  if (!Array.isArray(raw)) throw new TypeError('internal op protocol violated');
  const args = new Args(op, raw.map((x) => decode(st, x, 0)));
  let out: NDArray | number;
  try {
    out = compute(st, op, args);
  } catch (e) {
    if (e instanceof FatalOpError) throw new Error(e.message);
    const msg = e instanceof Error ? e.message : String(e);
    throw new Error(msg.startsWith('torch.') ? msg : `torch.${op}: ${msg}`);
  }
  if (typeof out === 'number') return `{"n":${encNum(out)}}`;
  if (st.elements + out.numel > st.limits.maxElements) charge(st, op, out.numel);
  st.elements += out.numel;
  const id = register(st, out);
  return `{"t":${id},"s":${JSON.stringify(out.shape)}}`;
}
