/**
 * The inference engine's weight matrices in the form their kernel reads (`Mat`, built by
 * `MatBuilder` from row blocks) and its plain-JS kernels (the fallback without the native addon):
 * the matrix product and the attention over the KV cache, with the arithmetic of ops.ts (double
 * accumulation, float32 storage).
 */
/**
 * A weight matrix W [M, K] (PyTorch Linear layout) in the one form its kernel reads: `wt` for the
 * native kernel, else `w` for the JS one (never both: at 1.5B parameters a second f32 copy is 6 GB).
 */
export interface Mat {
  M: number;
  K: number;
  /** W itself, row-major [M, K] (JS kernel), or null on the native path. */
  w: Float32Array | null;
  /** Wᵀ padded to Mp columns (native kernel), or null on the JS path. */
  wt: Float32Array | null;
  Mp: number;
}

/**
 * Tile edge of the blocked transpose (contiguous writes along a destination row, reads down a
 * source column): 16 was the fastest of 16–128 on this project's VM for a 7168 × 2048 matrix
 * (33 ms vs 84 ms at 64 and 168 ms untiled, warm buffers).
 */
const TILE = 16;

/**
 * Builds a Mat from row blocks of W given one at a time (e.g. q, k and v of a stacked q|k|v), so a
 * caller can drop each block after handing it over. Native: each block is transposed into the
 * padded Wᵀ (values copied exactly, zero padding). JS: a single block covering all rows is kept as
 * is (no copy, the caller must not change it); blocks of a stack are copied into one row-major W.
 */
export class MatBuilder {
  private readonly Mp: number;
  private w: Float32Array | null = null;
  private readonly wt: Float32Array | null;
  private filled = 0;

  constructor(
    private readonly M: number,
    private readonly K: number,
    private readonly useNative: boolean,
  ) {
    this.Mp = Math.ceil(M / 16) * 16;
    this.wt = useNative ? new Float32Array(K * this.Mp) : null;
  }

  /** The next `block.length / K` rows of W. */
  rows(block: Float32Array, what: string): this {
    const { K, M, Mp } = this;
    const R = block.length / K;
    const m0 = this.filled;
    if (!Number.isInteger(R) || m0 + R > M) throw new Error(`infer: ${what} has ${block.length} values, not whole rows of ${K} within the ${M} rows of its matrix`);
    if (this.wt) {
      const wt = this.wt;
      for (let mb = 0; mb < R; mb += TILE) {
        const me = Math.min(R, mb + TILE);
        for (let kb = 0; kb < K; kb += TILE) {
          const ke = Math.min(K, kb + TILE);
          for (let k = kb; k < ke; k++) {
            const dst = k * Mp + m0;
            for (let m = mb; m < me; m++) wt[dst + m] = block[m * K + k];
          }
        }
      }
    } else if (m0 === 0 && R === M) this.w = block;
    else {
      this.w ??= new Float32Array(M * K);
      this.w.set(block, m0 * K);
    }
    this.filled += R;
    return this;
  }

  done(what: string): Mat {
    if (this.filled !== this.M) throw new Error(`infer: ${what} got ${this.filled} of its ${this.M} rows`);
    return { M: this.M, K: this.K, w: this.useNative ? null : this.w, wt: this.wt, Mp: this.Mp };
  }
}

/** Rows r0..r0+R-1 of W as a new row-major [R, K] array, from whichever form `m` holds. */
export function matRows(m: Mat, r0: number, R: number): Float32Array {
  const { K, Mp } = m;
  if (m.w) return m.w.slice(r0 * K, (r0 + R) * K);
  const wt = m.wt!;
  const a = new Float32Array(R * K);
  for (let r = 0; r < R; r++) for (let k = 0; k < K; k++) a[r * K + k] = wt[k * Mp + r0 + r];
  return a;
}

/** out[N, M] = x[N, K] · Wᵀ (JS: dot products accumulated in double). */
export function matmulJs(out: Float32Array, x: Float32Array, m: Mat, N: number): void {
  const { M, K } = m;
  const w = m.w;
  if (!w) throw new Error('infer: this matrix was prepared for the native kernel only');
  for (let n = 0; n < N; n++) {
    const xo = n * K;
    const oo = n * M;
    let j = 0;
    for (; j + 4 <= M; j += 4) {
      const w0 = j * K;
      const w1 = w0 + K;
      const w2 = w1 + K;
      const w3 = w2 + K;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let k = 0; k < K; k++) {
        const xv = x[xo + k];
        s0 += xv * w[w0 + k];
        s1 += xv * w[w1 + k];
        s2 += xv * w[w2 + k];
        s3 += xv * w[w3 + k];
      }
      out[oo + j] = s0;
      out[oo + j + 1] = s1;
      out[oo + j + 2] = s2;
      out[oo + j + 3] = s3;
    }
    for (; j < M; j++) {
      const wo = j * K;
      let s = 0;
      for (let k = 0; k < K; k++) s += x[xo + k] * w[wo + k];
      out[oo + j] = s;
    }
  }
}

/** x[n, :] += b for each of the N rows of x (width b.length). */
export function addRows(x: Float32Array, b: Float32Array, N: number): void {
  const W = b.length;
  for (let n = 0; n < N; n++) for (let i = 0, o = n * W; i < W; i++) x[o + i] += b[i];
}

/**
 * ops.ts `attention` arithmetic for single queries over a row's cached keys 0..slot (or, with a
 * `window`, slot − window + 1..slot). Cache layout (per layer, cap a multiple of 8): keys
 * [rows, KV, cap/8, d, 8] (blocks of 8 slots), values [rows, KV, cap, d].
 */
export function attentionJs(out: Float32Array, q: Float32Array, qStride: number, kc: Float32Array, vc: Float32Array, cap: number, rows: Int32Array, slots: Int32Array, H: number, KV: number, d: number, window: number | null = null): void {
  const G = H / KV;
  const scale = 1 / Math.sqrt(d);
  const N = rows.length;
  let sc = new Float64Array(64);
  const qr = new Float64Array(d);
  const acc = new Float64Array(d);
  for (let n = 0; n < N; n++) {
    const lim = slots[n] + 1;
    const lo = window === null ? 0 : Math.max(0, lim - window);
    if (sc.length < lim) sc = new Float64Array(Math.max(lim, sc.length * 2));
    for (let hh = 0; hh < H; hh++) {
      const g = Math.floor(hh / G);
      const kb = (rows[n] * KV + g) * cap * d;
      const vb = kb;
      const qo = n * qStride + hh * d;
      for (let i = 0; i < d; i++) qr[i] = q[qo + i] * scale;
      let mx = -Infinity;
      for (let j = lo; j < lim; j++) {
        let s = 0;
        for (let i = 0, ko = kb + (j & ~7) * d + (j & 7); i < d; i++, ko += 8) s += qr[i] * kc[ko];
        sc[j] = s;
        if (s > mx) mx = s;
      }
      let z = 0;
      for (let j = lo; j < lim; j++) {
        const e = Math.exp(sc[j] - mx);
        sc[j] = e;
        z += e;
      }
      const inv = 1 / z;
      acc.fill(0);
      for (let j = lo, vo = vb + lo * d; j < lim; j++, vo += d) {
        const p = sc[j] * inv;
        if (p === 0) continue;
        for (let i = 0; i < d; i++) acc[i] += p * vc[vo + i];
      }
      const oo = n * H * d + hh * d;
      for (let i = 0; i < d; i++) out[oo + i] = acc[i];
    }
  }
}
