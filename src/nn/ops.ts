/**
 * The only module that talks to the tensor framework (tfjs + wasm backend). Everything else in
 * src/nn calls these functions, so kernels can be swapped (e.g. for a native addon) in one place.
 *
 * Two measured wasm traps are handled here:
 * - matMul with transposeA/transposeB is 10–25× slower on wasm, and tfjs' own matMul gradient uses
 *   it. `mm` and `linear` define their gradients with an explicit `transpose` + plain matMul.
 * - `gather` has no gradient on wasm; `embed` is one-hot × matrix.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';

export type Tensor = tf.Tensor;
export type Variable = tf.Variable;

let ready: Promise<void> | null = null;

/** Load the wasm backend (SIMD, single thread). Idempotent; call before any other op. */
export function initBackend(): Promise<void> {
  if (ready) return ready;
  ready = (async () => {
    const require = createRequire(import.meta.url);
    const entry = require.resolve('@tensorflow/tfjs-backend-wasm');
    // entry = .../tfjs-backend-wasm/dist/tf-backend-wasm.node.js
    setWasmPaths(join(dirname(entry), '/'));
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    const ok = await tf.setBackend('wasm');
    if (!ok) throw new Error('tfjs: could not initialise the wasm backend');
    await tf.ready();
  })();
  return ready;
}

export const tidy = tf.tidy;
export const keep = tf.keep;
export const dispose = tf.dispose;
export function numTensors(): number {
  return tf.memory().numTensors;
}

// ---------------------------------------------------------------- creation / transfer
export function tensor(data: Float32Array, shape: number[]): Tensor {
  return tf.tensor(data, shape, 'float32');
}
export function intTensor(data: Int32Array, shape: number[]): Tensor {
  return tf.tensor(data, shape, 'int32');
}
export function variable(data: Float32Array, shape: number[], name?: string): Variable {
  return tf.variable(tf.tensor(data, shape, 'float32'), true, name);
}
/** Replace a variable's value with new data (same shape). */
export function assign(v: Variable, data: Float32Array): void {
  const t = tf.tensor(data, v.shape, 'float32');
  v.assign(t);
  t.dispose();
}
export function read(t: Tensor): Float32Array {
  return t.dataSync() as Float32Array;
}
export function readInt(t: Tensor): Int32Array {
  return t.dataSync() as Int32Array;
}
export function scalar(x: number): Tensor {
  return tf.scalar(x, 'float32');
}

// ---------------------------------------------------------------- shape ops
export const reshape = (x: Tensor, shape: number[]): Tensor => tf.reshape(x, shape);
export const transpose = (x: Tensor, perm: number[]): Tensor => tf.transpose(x, perm);
export const concat = (xs: Tensor[], axis: number): Tensor => tf.concat(xs, axis);
export const slice = (x: Tensor, begin: number[], size: number[]): Tensor => tf.slice(x, begin, size);
export const split = (x: Tensor, sizes: number[], axis: number): Tensor[] => tf.split(x, sizes, axis);

// ---------------------------------------------------------------- elementwise
export const add = (a: Tensor, b: Tensor): Tensor => tf.add(a, b);
export const sub = (a: Tensor, b: Tensor): Tensor => tf.sub(a, b);
export const mul = (a: Tensor, b: Tensor): Tensor => tf.mul(a, b);
export const mulScalar = (a: Tensor, s: number): Tensor => tf.mul(a, tf.scalar(s));
export const neg = (a: Tensor): Tensor => tf.neg(a);
export const sigmoid = (a: Tensor): Tensor => tf.sigmoid(a);
/** log σ(x) = −softplus(−x) (tfjs' own logSigmoid gradient reads a disposed tensor inside variableGrads). */
export const logSigmoid = (a: Tensor): Tensor => tf.neg(tf.softplus(tf.neg(a)));
export const rsqrt = (a: Tensor): Tensor => tf.rsqrt(a);
export const addScalar = (a: Tensor, s: number): Tensor => tf.add(a, tf.scalar(s));
export const square = (a: Tensor): Tensor => tf.square(a);
export const silu = (a: Tensor): Tensor => tf.mul(a, tf.sigmoid(a));
export const sum = (a: Tensor, axis?: number | number[], keepDims = false): Tensor => tf.sum(a, axis, keepDims);
export const mean = (a: Tensor, axis?: number | number[], keepDims = false): Tensor => tf.mean(a, axis, keepDims);
export const div = (a: Tensor, b: Tensor): Tensor => tf.div(a, b);
export const softmax = (a: Tensor): Tensor => tf.softmax(a);
export const logSoftmax = (a: Tensor): Tensor => tf.logSoftmax(a);
export const argMax = (a: Tensor, axis: number): Tensor => tf.argMax(a, axis);

// ---------------------------------------------------------------- matmul with wasm-friendly gradients
const mmImpl = tf.customGrad(((a: Tensor, b: Tensor, save: tf.GradSaveFunc) => {
  save([a, b]);
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy: Tensor, saved: Tensor[]) => {
      const [sa, sb] = saved;
      const r = sa.rank;
      const perm = [...Array(r - 2).keys(), r - 1, r - 2];
      return [tf.matMul(dy, tf.transpose(sb, perm)), tf.matMul(tf.transpose(sa, perm), dy)];
    },
  };
}) as any) as (a: Tensor, b: Tensor) => Tensor;

/** a[..., m, k] · b[..., k, n] (same batch dims). */
export function mm(a: Tensor, b: Tensor): Tensor {
  return mmImpl(a, b);
}

const linearImpl = tf.customGrad(((x: Tensor, w: Tensor, save: tf.GradSaveFunc) => {
  save([x, w]);
  return {
    value: tf.matMul(x, tf.transpose(w)),
    gradFunc: (dy: Tensor, saved: Tensor[]) => {
      const [sx, sw] = saved;
      // dx = dy · W ; dW = dyᵀ · x, or (xᵀ · dy)ᵀ when x is the narrower activation to transpose
      const [out, inn] = sw.shape;
      const dw = out > inn ? tf.transpose(tf.matMul(tf.transpose(sx), dy)) : tf.matMul(tf.transpose(dy), sx);
      return [tf.matMul(dy, sw), dw];
    },
  };
}) as any) as (x: Tensor, w: Tensor) => Tensor;

/** y = x · Wᵀ with x [N, in], W [out, in] (PyTorch Linear layout). */
export function linear(x: Tensor, w: Tensor): Tensor {
  return linearImpl(x, w);
}

/** Plain a · b without a custom gradient (inference only). */
export function matMulNoGrad(a: Tensor, b: Tensor): Tensor {
  return tf.matMul(a, b);
}

/** x [N, in] · C [in, out] for a constant C (no gradient to C). */
const constMmImpl = tf.customGrad(((x: Tensor, c: Tensor, save: tf.GradSaveFunc) => {
  save([c]);
  return {
    value: tf.matMul(x, c),
    gradFunc: (dy: Tensor, saved: Tensor[]) => [tf.matMul(dy, tf.transpose(saved[0])), tf.zerosLike(saved[0])],
  };
}) as any) as (x: Tensor, c: Tensor) => Tensor;
export function mmConst(x: Tensor, c: Tensor): Tensor {
  return constMmImpl(x, c);
}

/**
 * Rows of `table` [V, D] for int ids [B, T] → [B, T, D]; differentiable in `table` (a JS
 * gather / scatter-add kernel: tfjs' gather has no gradient on wasm).
 */
export function embed(ids: Tensor, table: Tensor): Tensor {
  const [V, D] = table.shape as [number, number];
  const I = ids.dataSync() as Int32Array;
  for (let n = 0; n < I.length; n++) if (!(I[n] >= 0 && I[n] < V)) throw new Error(`embed: token id ${I[n]} outside the vocabulary [0, ${V})`);
  const f = tf.customGrad(((tt: Tensor) => {
    const E = tt.dataSync() as Float32Array;
    const out = new Float32Array(I.length * D);
    for (let n = 0; n < I.length; n++) out.set(E.subarray(I[n] * D, (I[n] + 1) * D), n * D);
    return {
      value: tf.tensor(out, [...ids.shape, D], 'float32'),
      gradFunc: (dyt: Tensor) => {
        const dY = dyt.dataSync() as Float32Array;
        const dE = new Float32Array(V * D);
        for (let n = 0; n < I.length; n++) {
          const o = I[n] * D;
          const s = n * D;
          for (let i = 0; i < D; i++) dE[o + i] += dY[s + i];
        }
        return tf.tensor(dE, [V, D], 'float32');
      },
    };
  }) as any) as (t: Tensor) => Tensor;
  return f(table);
}

/** One-hot float [N, V] of int ids [N]. */
export function oneHot(ids: Tensor, depth: number): Tensor {
  return tf.oneHot(ids, depth).toFloat();
}

// ---------------------------------------------------------------- gradients
/** Value and gradients of f w.r.t. the given variables. Caller disposes the returned tensors. */
export function valueAndGrads(f: () => Tensor, vars: Variable[]): { value: Tensor; grads: Tensor[] } {
  const { value, grads } = tf.variableGrads(f as () => tf.Scalar, vars);
  return { value, grads: vars.map((v) => grads[v.name]) };
}

// ---------------------------------------------------------------- fused kernels written in JS
/**
 * RoPE (HF rotate_half layout) on x [N, heads·d] with per-row tables cos/sin [N, d/2]:
 * for each head and i < d/2, (x_i, x_{i+d/2}) is rotated by the row's angle i.
 */
export function rope(x: Tensor, heads: number, d: number, cos: Float32Array, sin: Float32Array): Tensor {
  const N = x.shape[0]!;
  const h = d / 2;
  const rotate = (src: Float32Array, sign: number): Float32Array => {
    const out = new Float32Array(src.length);
    for (let n = 0; n < N; n++) {
      const tb = n * h;
      for (let hd = 0; hd < heads; hd++) {
        const o = (n * heads + hd) * d;
        for (let i = 0; i < h; i++) {
          const c = cos[tb + i];
          const s = sign * sin[tb + i];
          const a = src[o + i];
          const b = src[o + i + h];
          out[o + i] = a * c - b * s;
          out[o + i + h] = b * c + a * s;
        }
      }
    }
    return out;
  };
  const f = tf.customGrad(((xi: Tensor) => ({
    value: tf.tensor(rotate(xi.dataSync() as Float32Array, 1), xi.shape, 'float32'),
    gradFunc: (dy: Tensor) => tf.tensor(rotate(dy.dataSync() as Float32Array, -1), dy.shape, 'float32'),
  })) as any) as (a: Tensor) => Tensor;
  return f(x);
}

/**
 * Scaled dot-product attention with grouped-query heads, on row-major layouts (no transposes):
 * q [B·T, H·d], k and v [B·Tk, KV·d] (query head h reads kv head floor(h·KV/H)). Without `mask`
 * it is causal with the T queries at the last T of the Tk key slots; `mask` [B·T·Tk] is additive
 * (0 or a large negative). Returns [B·T, H·d]. Forward and backward are plain loops in JS.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, B: number, T: number, Tk: number, H: number, KV: number, d: number, mask: Float32Array | null): Tensor {
  const G = H / KV;
  const scale = 1 / Math.sqrt(d);
  const ks = KV * d;
  /** Copy the keys (or values) of batch row b, kv head g into a contiguous [Tk, d] block. */
  const pack = (src: Float32Array, dst: Float32Array, b: number, g: number) => {
    for (let j = 0; j < Tk; j++) {
      const o = (b * Tk + j) * ks + g * d;
      dst.set(src.subarray(o, o + d), j * d);
    }
  };
  const f = tf.customGrad(((qt: Tensor, kt: Tensor, vt: Tensor) => {
    const Q = qt.dataSync() as Float32Array;
    const K = kt.dataSync() as Float32Array;
    const Vv = vt.dataSync() as Float32Array;
    const Y = new Float32Array(B * T * H * d);
    const P = new Float32Array(B * H * T * Tk);
    const sc = new Float64Array(Tk);
    const kb = new Float32Array(Tk * d);
    const vb = new Float32Array(Tk * d);
    const qr = new Float64Array(d);
    const acc = new Float64Array(d);
    for (let b = 0; b < B; b++) {
      for (let g = 0; g < KV; g++) {
        pack(K, kb, b, g);
        pack(Vv, vb, b, g);
        for (let hh = g * G; hh < (g + 1) * G; hh++) {
          for (let t = 0; t < T; t++) {
            const qo = ((b * T + t) * H + hh) * d;
            for (let i = 0; i < d; i++) qr[i] = Q[qo + i] * scale;
            const lim = mask ? Tk : Tk - T + t + 1;
            const mo = (b * T + t) * Tk;
            let mx = -Infinity;
            for (let j = 0, ko = 0; j < lim; j++, ko += d) {
              let s = 0;
              for (let i = 0; i < d; i++) s += qr[i] * kb[ko + i];
              if (mask) s += mask[mo + j];
              sc[j] = s;
              if (s > mx) mx = s;
            }
            let z = 0;
            for (let j = 0; j < lim; j++) {
              const e = Math.exp(sc[j] - mx);
              sc[j] = e;
              z += e;
            }
            const po = ((b * H + hh) * T + t) * Tk;
            const inv = 1 / z;
            acc.fill(0);
            for (let j = 0, vo = 0; j < lim; j++, vo += d) {
              const p = sc[j] * inv;
              P[po + j] = p;
              if (p === 0) continue;
              for (let i = 0; i < d; i++) acc[i] += p * vb[vo + i];
            }
            for (let i = 0; i < d; i++) Y[qo + i] = acc[i];
          }
        }
      }
    }
    return {
      value: tf.tensor(Y, [B * T, H * d], 'float32'),
      gradFunc: (dyt: Tensor) => {
        const dY = dyt.dataSync() as Float32Array;
        const dQ = new Float32Array(Q.length);
        const dK = new Float32Array(K.length);
        const dV = new Float32Array(Vv.length);
        const dkb = new Float64Array(Tk * d);
        const dvb = new Float64Array(Tk * d);
        const dp = new Float64Array(Tk);
        const dy = new Float64Array(d);
        const dq = new Float64Array(d);
        for (let b = 0; b < B; b++) {
          for (let g = 0; g < KV; g++) {
            pack(K, kb, b, g);
            pack(Vv, vb, b, g);
            dkb.fill(0);
            dvb.fill(0);
            for (let hh = g * G; hh < (g + 1) * G; hh++) {
              for (let t = 0; t < T; t++) {
                const qo = ((b * T + t) * H + hh) * d;
                for (let i = 0; i < d; i++) {
                  dy[i] = dY[qo + i];
                  qr[i] = Q[qo + i] * scale;
                }
                const lim = mask ? Tk : Tk - T + t + 1;
                const po = ((b * H + hh) * T + t) * Tk;
                let sum = 0;
                for (let j = 0, vo = 0; j < lim; j++, vo += d) {
                  const p = P[po + j];
                  if (p === 0) {
                    dp[j] = 0;
                    continue;
                  }
                  let s = 0;
                  for (let i = 0; i < d; i++) {
                    s += dy[i] * vb[vo + i];
                    dvb[vo + i] += p * dy[i];
                  }
                  dp[j] = s;
                  sum += p * s;
                }
                dq.fill(0);
                for (let j = 0, ko = 0; j < lim; j++, ko += d) {
                  const p = P[po + j];
                  if (p === 0) continue;
                  const ds = p * (dp[j] - sum);
                  for (let i = 0; i < d; i++) {
                    dq[i] += ds * kb[ko + i];
                    dkb[ko + i] += ds * qr[i];
                  }
                }
                for (let i = 0; i < d; i++) dQ[qo + i] = dq[i] * scale;
              }
            }
            for (let j = 0; j < Tk; j++) {
              const o = (b * Tk + j) * ks + g * d;
              for (let i = 0; i < d; i++) {
                dK[o + i] = dkb[j * d + i];
                dV[o + i] = dvb[j * d + i];
              }
            }
          }
        }
        return [tf.tensor(dQ, qt.shape, 'float32'), tf.tensor(dK, kt.shape, 'float32'), tf.tensor(dV, vt.shape, 'float32')];
      },
    };
  }) as any) as (a: Tensor, b: Tensor, c: Tensor) => Tensor;
  return f(q, k, v);
}

/**
 * The same attention as `attention`, composed of framework ops (batched matMuls): q [B·T, H·d],
 * k, v [B·Tk, KV·d]; mask [B·T·Tk] additive or null (causal). Faster than the JS loops for long
 * query blocks (training, prefill); the JS version wins for single-token decoding steps.
 */
export function attentionBatched(q: Tensor, k: Tensor, v: Tensor, B: number, T: number, Tk: number, H: number, KV: number, d: number, mask: Float32Array | null): Tensor {
  const G = H / KV;
  let m: Tensor;
  if (mask) m = tf.tensor(mask, [B, 1, T, Tk], 'float32');
  else {
    const a = new Float32Array(T * Tk);
    for (let i = 0; i < T; i++) for (let j = Tk - T + i + 1; j < Tk; j++) a[i * Tk + j] = -1e9;
    m = tf.tensor(a, [1, 1, T, Tk], 'float32');
  }
  const qh = tf.reshape(tf.transpose(tf.reshape(q, [B, T, H, d]), [0, 2, 1, 3]), [B, KV, G * T, d]);
  const kt = tf.transpose(tf.reshape(k, [B, Tk, KV, d]), [0, 2, 3, 1]);
  const vh = tf.transpose(tf.reshape(v, [B, Tk, KV, d]), [0, 2, 1, 3]);
  const scores = tf.add(tf.reshape(mm(mulScalar(qh, 1 / Math.sqrt(d)), kt), [B, H, T, Tk]), m);
  const att = tf.reshape(tf.softmax(scores), [B, KV, G * T, Tk]);
  return tf.reshape(tf.transpose(tf.reshape(mm(att, vh), [B, H, T, d]), [0, 2, 1, 3]), [B * T, H * d]);
}

/** RMSNorm over the last axis of x [N, D] with weight w [D]: x / sqrt(mean(x²) + eps) · w (JS kernel). */
export function rmsnorm(x: Tensor, w: Tensor, eps: number): Tensor {
  const f = tf.customGrad(((xt: Tensor, wt: Tensor) => {
    const X = xt.dataSync() as Float32Array;
    const W = wt.dataSync() as Float32Array;
    const D = W.length;
    const N = X.length / D;
    const R = new Float32Array(N);
    const Y = new Float32Array(X.length);
    for (let n = 0; n < N; n++) {
      const o = n * D;
      let ss = 0;
      for (let i = 0; i < D; i++) ss += X[o + i] * X[o + i];
      const r = 1 / Math.sqrt(ss / D + eps);
      R[n] = r;
      for (let i = 0; i < D; i++) Y[o + i] = X[o + i] * r * W[i];
    }
    return {
      value: tf.tensor(Y, xt.shape, 'float32'),
      gradFunc: (dyt: Tensor) => {
        const dY = dyt.dataSync() as Float32Array;
        const dX = new Float32Array(X.length);
        const dW = new Float64Array(D);
        for (let n = 0; n < N; n++) {
          const o = n * D;
          const r = R[n];
          let dot = 0;
          for (let i = 0; i < D; i++) {
            dot += dY[o + i] * W[i] * X[o + i];
            dW[i] += dY[o + i] * X[o + i] * r;
          }
          const c = (dot * r * r * r) / D;
          for (let i = 0; i < D; i++) dX[o + i] = r * dY[o + i] * W[i] - X[o + i] * c;
        }
        return [tf.tensor(dX, xt.shape, 'float32'), tf.tensor(Float32Array.from(dW), wt.shape, 'float32')];
      },
    };
  }) as any) as (a: Tensor, b: Tensor) => Tensor;
  return f(x, w);
}

/** SwiGLU: silu(g) · u elementwise (JS kernel). */
export function swiglu(g: Tensor, u: Tensor): Tensor {
  const f = tf.customGrad(((gt: Tensor, ut: Tensor) => {
    const G = gt.dataSync() as Float32Array;
    const U = ut.dataSync() as Float32Array;
    const S = new Float32Array(G.length);
    const Y = new Float32Array(G.length);
    for (let i = 0; i < G.length; i++) {
      const s = 1 / (1 + Math.exp(-G[i]));
      S[i] = s;
      Y[i] = G[i] * s * U[i];
    }
    return {
      value: tf.tensor(Y, gt.shape, 'float32'),
      gradFunc: (dyt: Tensor) => {
        const dY = dyt.dataSync() as Float32Array;
        const dG = new Float32Array(G.length);
        const dU = new Float32Array(G.length);
        for (let i = 0; i < G.length; i++) {
          const s = S[i];
          dU[i] = dY[i] * G[i] * s;
          dG[i] = dY[i] * U[i] * s * (1 + G[i] * (1 - s));
        }
        return [tf.tensor(dG, gt.shape, 'float32'), tf.tensor(dU, ut.shape, 'float32')];
      },
    };
  }) as any) as (a: Tensor, b: Tensor) => Tensor;
  return f(g, u);
}

/** log softmax(logits[n])[targets[n]] for logits [N, V] → [N] (JS kernel). */
export function targetLogprobs(logits: Tensor, targets: Int32Array): Tensor {
  const f = tf.customGrad(((lt: Tensor) => {
    const L = lt.dataSync() as Float32Array;
    const V = lt.shape[1]!;
    const N = L.length / V;
    if (targets.length !== N) throw new Error(`targetLogprobs: ${targets.length} targets for ${N} rows`);
    const lse = new Float64Array(N);
    const out = new Float32Array(N);
    for (let n = 0; n < N; n++) {
      const o = n * V;
      let mx = -Infinity;
      for (let j = 0; j < V; j++) if (L[o + j] > mx) mx = L[o + j];
      let z = 0;
      for (let j = 0; j < V; j++) z += Math.exp(L[o + j] - mx);
      lse[n] = mx + Math.log(z);
      out[n] = L[o + targets[n]] - lse[n];
    }
    return {
      value: tf.tensor(out, [N], 'float32'),
      gradFunc: (dyt: Tensor) => {
        const dY = dyt.dataSync() as Float32Array;
        const dL = new Float32Array(L.length);
        for (let n = 0; n < N; n++) {
          const g = dY[n];
          if (g === 0) continue;
          const o = n * V;
          const l = lse[n];
          for (let j = 0; j < V; j++) dL[o + j] = -g * Math.exp(L[o + j] - l);
          dL[o + targets[n]] += g;
        }
        return tf.tensor(dL, lt.shape, 'float32');
      },
    };
  }) as any) as (a: Tensor) => Tensor;
  return f(logits);
}
