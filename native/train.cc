// Training kernels for small Llamas (src/nn/train-native.ts): a packed, blocked GEMM with optional
// transposes of either operand (AVX2+FMA 6×16 register tiles, the pool's threads split the rows),
// causal attention forward/backward on the fused q|k|v row layout (threads split batch rows × kv
// heads), RoPE, RMSNorm and SwiGLU forward/backward, and a fused masked cross-entropy (loss + dlogits).
//
// Determinism: every output element is computed by exactly one thread in a fixed order that does not
// depend on the thread count, so results are identical for 1 or 2 threads and across runs.
// Float32 with FMA contraction in the AVX2 paths (differs from the tfjs trainer by rounding only).
#include <node_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "napi_util.h"
#include "nn_kernels.h"
#include "pool.h"

namespace sdtrain {

using namespace sd::nn;
using sd::napi::Err;
using sd::napi::check;
using sd::napi::guarded;

static bool g_avx2fma = false;

// ---------------------------------------------------------------- GEMM
// C[N,M] (+)= op(A)[N,K] · op(B)[K,M]; op(A) = A [N,K] or (transA) A stored [K,N]; op(B) = B [K,M] or
// (transB) B stored [M,K]. B is packed once into 16-column panels [M/16][K][16]; each thread packs
// its row blocks of A into 6-row micro-panels [kc][6] per K block.

static const size_t MR = 6, NR = 16, KC = 256, MC = 96;

static void pack_b(float* bp, const float* B, size_t K, size_t M, bool transB) {
  const size_t np = (M + NR - 1) / NR;
  for (size_t p = 0; p < np; p++) {
    float* dst = bp + p * K * NR;
    const size_t c0 = p * NR, cn = std::min(NR, M - c0);
    if (!transB) {
      for (size_t k = 0; k < K; k++) {
        const float* src = B + k * M + c0;
        float* d = dst + k * NR;
        size_t c = 0;
        for (; c < cn; c++) d[c] = src[c];
        for (; c < NR; c++) d[c] = 0.f;
      }
    } else {
      if (cn < NR) std::memset(dst, 0, K * NR * sizeof(float));
      for (size_t c = 0; c < cn; c++) {
        const float* src = B + (c0 + c) * K;
        for (size_t k = 0; k < K; k++) dst[k * NR + c] = src[k];
      }
    }
  }
}

// rows [r0, r0+rn) of op(A), columns [k0, k0+kn) → micro-panels of MR rows, [kn][MR] each, zero padded
static void pack_a(float* ap, const float* A, size_t N, size_t K, bool transA, size_t r0, size_t rn, size_t k0, size_t kn) {
  for (size_t m = 0; m < rn; m += MR) {
    float* dst = ap + m * kn;
    const size_t mn = std::min(MR, rn - m);
    if (!transA) {
      for (size_t r = 0; r < MR; r++) {
        if (r < mn) {
          const float* src = A + (r0 + m + r) * K + k0;
          for (size_t k = 0; k < kn; k++) dst[k * MR + r] = src[k];
        } else {
          for (size_t k = 0; k < kn; k++) dst[k * MR + r] = 0.f;
        }
      }
    } else {
      for (size_t k = 0; k < kn; k++) {
        const float* src = A + (k0 + k) * N + r0 + m;
        float* d = dst + k * MR;
        size_t r = 0;
        for (; r < mn; r++) d[r] = src[r];
        for (; r < MR; r++) d[r] = 0.f;
      }
    }
  }
}

// one MR×NR tile: acc = Σ_k ap[k][r] · bp[k][c]; C tile (rows rn, cols cn valid) = acc (+ C when add)
static void micro_base(float* C, size_t ldc, const float* ap, const float* bp, size_t kn, size_t rn, size_t cn, bool add) {
  float acc[MR][NR] = {};
  for (size_t k = 0; k < kn; k++) {
    const float* a = ap + k * MR;
    const float* b = bp + k * NR;
    for (size_t r = 0; r < MR; r++)
      for (size_t c = 0; c < NR; c++) acc[r][c] += a[r] * b[c];
  }
  for (size_t r = 0; r < rn; r++)
    for (size_t c = 0; c < cn; c++) C[r * ldc + c] = add ? C[r * ldc + c] + acc[r][c] : acc[r][c];
}

#ifdef SD_X86
// one MR×NR tile of packed panels on the shared register tile (nn_kernels.h)
__attribute__((target("avx2,fma"))) static void micro_avx2(float* C, size_t ldc, const float* ap, const float* bp, size_t kn,
                                                           size_t rn, size_t cn, bool add) {
  const auto a = [ap](int r, size_t k) { return ap + k * MR + r; };
  if (cn <= 8) tile16<MR, true>(C, ldc, a, bp, NR, kn, rn, cn, add);
  else tile16<MR, false>(C, ldc, a, bp, NR, kn, rn, cn, add);
}
#endif

static void gemm(float* C, const float* A, const float* B, size_t N, size_t K, size_t M, bool transA, bool transB, bool accumulate,
                 int threads) {
  if (N == 0 || M == 0) return;
  if (K == 0) {
    if (!accumulate) std::memset(C, 0, N * M * sizeof(float));
    return;
  }
  const size_t np = (M + NR - 1) / NR;
  std::vector<float> bp(np * K * NR);
  pack_b(bp.data(), B, K, M, transB);
  // row blocks of MC (multiple of MR), dealt out contiguously to the threads
  const size_t nblk = (N + MC - 1) / MC;
  int nt = std::max(1, std::min<int>(threads, static_cast<int>(nblk)));
  if (static_cast<double>(N) * K * M < 2e5) nt = 1;
  auto micro = micro_base;
#ifdef SD_X86
  if (g_avx2fma) micro = micro_avx2;
#endif
  sd::Pool::get().run(nt, [&](int t) {
    const size_t b0 = nblk * t / nt, b1 = nblk * (t + 1) / nt;
    std::vector<float> ap(MC * KC);
    for (size_t blk = b0; blk < b1; blk++) {
      const size_t r0 = blk * MC, rn = std::min(MC, N - r0);
      for (size_t k0 = 0; k0 < K; k0 += KC) {
        const size_t kn = std::min(KC, K - k0);
        pack_a(ap.data(), A, N, K, transA, r0, rn, k0, kn);
        const bool add = accumulate || k0 > 0;
        for (size_t p = 0; p < np; p++) {
          const float* bpp = bp.data() + p * K * NR + k0 * NR;
          const size_t c0 = p * NR, cn = std::min(NR, M - c0);
          for (size_t m = 0; m < rn; m += MR)
            micro(C + (r0 + m) * M + c0, M, ap.data() + m * kn, bpp, kn, std::min(MR, rn - m), cn, add);
        }
      }
    }
  });
}

// ---------------------------------------------------------------- softmax rows

static inline float exp_sub_sum(float* x, size_t n, float mx) {
#ifdef SD_X86
  if (g_avx2fma) return exp_sub_sum_avx2(x, n, mx);
#endif
  return exp_sub_sum_base(x, n, mx);
}

// ---------------------------------------------------------------- attention
// qkv rows [N = B·T, W] with W = (H + 2·KV)·d: q heads, then k heads, then v heads (q, k after RoPE).
// Causal over each row's T positions. The forward saves per query row only its score maximum and
// 1/Σexp (stats [B, H, T, 2]); the backward recomputes the probabilities P bit-identically from them, so
// memory stays O(B·H·T) instead of O(B·H·T²). Per (batch row, kv head) the products run on the GEMM micro-kernel, skipping tiles above the diagonal:
// S = (q·scale)·Kᵀ, Y = P·V; backward dP = dY·Vᵀ, dS = P ⊙ (dP − rowsum(P ⊙ dP)), dQ = dS·K·scale,
// dK = dSᵀ·(q·scale), dV = Pᵀ·dY (dK, dV summed over the kv head's query heads).

struct AttnShape {
  size_t B, T, H, KV, d, W;
};

// one micro-panel of ≤ MR rows: ap[k][r] = scale · src[(r0 + r)·rs + (k0 + k)·cs], zero padded
static void pack_a6(float* ap, const float* src, size_t rs, size_t cs, size_t r0, size_t rn, size_t k0, size_t kn, float scale) {
  for (size_t k = 0; k < kn; k++) {
    float* d = ap + k * MR;
    const float* s = src + (k0 + k) * cs + r0 * rs;
    size_t r = 0;
    for (; r < rn; r++) d[r] = scale * s[r * rs];
    for (; r < MR; r++) d[r] = 0.f;
  }
}

// panels of NR columns [ceil(M/NR)][K][NR]: bp[p][k][c] = scale · src[k·rs + (p·NR + c)·cs], zero padded
static void pack_b16(float* bp, const float* src, size_t rs, size_t cs, size_t K, size_t M, float scale) {
  const size_t np = (M + NR - 1) / NR;
  for (size_t p = 0; p < np; p++) {
    const size_t c0 = p * NR, cn = std::min(NR, M - c0);
    float* dst = bp + p * K * NR;
    for (size_t k = 0; k < K; k++) {
      float* d = dst + k * NR;
      const float* s = src + k * rs + c0 * cs;
      size_t c = 0;
      for (; c < cn; c++) d[c] = scale * s[c * cs];
      for (; c < NR; c++) d[c] = 0.f;
    }
  }
}

using MicroFn = void (*)(float*, size_t, const float*, const float*, size_t, size_t, size_t, bool);

static MicroFn micro_fn() {
#ifdef SD_X86
  if (g_avx2fma) return micro_avx2;
#endif
  return micro_base;
}

// causal S[t, j] for j ≤ t (tiles may write a few entries above the diagonal): S = A·Bᵀ-panels, A rows from src
static void causal_scores(float* S, size_t T, const float* asrc, size_t ars, float ascale, const float* bpan, size_t d, float* ap,
                          MicroFn micro) {
  for (size_t r0 = 0; r0 < T; r0 += MR) {
    const size_t rn = std::min(MR, T - r0);
    pack_a6(ap, asrc, ars, 1, r0, rn, 0, d, ascale);
    for (size_t c0 = 0; c0 < r0 + rn; c0 += NR) micro(S + r0 * T + c0, T, ap, bpan + (c0 / NR) * d * NR, d, rn, std::min(NR, T - c0), false);
  }
}

// C[t, :d] (+)= Σ_{j ≤ t} M[t, j] · Bpanel[j, :] with M [T, T] lower-triangular (zeros above)
static void causal_rows(float* C, size_t ldc, const float* Mx, size_t T, const float* bpan, size_t d, float* ap, MicroFn micro, bool add) {
  for (size_t r0 = 0; r0 < T; r0 += MR) {
    const size_t rn = std::min(MR, T - r0), kn = r0 + rn;
    pack_a6(ap, Mx, T, 1, r0, rn, 0, kn, 1.f);
    for (size_t c0 = 0; c0 < d; c0 += NR) micro(C + r0 * ldc + c0, ldc, ap, bpan + (c0 / NR) * T * NR, kn, rn, std::min(NR, d - c0), add);
  }
}

// C[j, :d] += Σ_{t ≥ j} M[t, j] · Bpanel[t, :] (M lower-triangular)
static void causal_cols(float* C, size_t ldc, const float* Mx, size_t T, const float* bpan, size_t d, float* ap, MicroFn micro) {
  for (size_t j0 = 0; j0 < T; j0 += MR) {
    const size_t rn = std::min(MR, T - j0), kn = T - j0;
    pack_a6(ap, Mx, 1, T, j0, rn, j0, kn, 1.f);
    for (size_t c0 = 0; c0 < d; c0 += NR) micro(C + j0 * ldc + c0, ldc, ap, bpan + (c0 / NR) * T * NR + j0 * NR, kn, rn, std::min(NR, d - c0), true);
  }
}

// P[t, j] = exp(S[t, j] − max_t) · inv_t for j ≤ t, 0 above the diagonal
static void probs_from_stats(float* S, size_t T, const float* st) {
  for (size_t t = 0; t < T; t++) {
    float* row = S + t * T;
    const size_t lim = t + 1;
    exp_sub_sum(row, lim, st[2 * t]);
    const float inv = st[2 * t + 1];
    for (size_t j = 0; j < lim; j++) row[j] *= inv;
    for (size_t j = lim; j < T; j++) row[j] = 0.f;
  }
}

static void attn_fwd_tasks(float* Y, float* stats, const float* qkv, const AttnShape& s, size_t t0, size_t t1) {
  const size_t T = s.T, d = s.d, W = s.W, G = s.H / s.KV, Hd = s.H * s.d;
  const size_t pd = (d + NR - 1) / NR, pt = (T + NR - 1) / NR;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const MicroFn micro = micro_fn();
  std::vector<float> kp(pt * d * NR), vp(pd * T * NR), ap(MR * std::max(T, d)), Sbuf(T * T);
  float* S = Sbuf.data();
  for (size_t task = t0; task < t1; task++) {
    const size_t b = task / s.KV, g = task % s.KV;
    const float* base = qkv + b * T * W;
    pack_b16(kp.data(), base + (s.H + g) * d, 1, W, d, T, 1.f);           // Kᵀ: [d][T]
    pack_b16(vp.data(), base + (s.H + s.KV + g) * d, W, 1, T, d, 1.f);    // V: [T][d]
    for (size_t h = g * G; h < (g + 1) * G; h++) {
      float* st = stats + (b * s.H + h) * T * 2;
      causal_scores(S, T, base + h * d, W, scale, kp.data(), d, ap.data(), micro);
      for (size_t t = 0; t < T; t++) {
        const float* row = S + t * T;
        float mx = -INFINITY;
        for (size_t j = 0; j <= t; j++) mx = std::max(mx, row[j]);
        st[2 * t] = mx;
      }
      // the same S buffer → P; 1/Σ comes from a separate pass so the backward can redo it exactly
      for (size_t t = 0; t < T; t++) {
        float* row = S + t * T;
        st[2 * t + 1] = 1.0f / exp_sub_sum(row, t + 1, st[2 * t]);
        const float inv = st[2 * t + 1];
        for (size_t j = 0; j <= t; j++) row[j] *= inv;
        for (size_t j = t + 1; j < T; j++) row[j] = 0.f;
      }
      causal_rows(Y + b * T * Hd + h * d, Hd, S, T, vp.data(), d, ap.data(), micro, false);
    }
  }
}

static void attn_bwd_tasks(float* dqkv, const float* dY, const float* stats, const float* qkv, const AttnShape& s, size_t t0, size_t t1) {
  const size_t T = s.T, d = s.d, W = s.W, G = s.H / s.KV, Hd = s.H * s.d;
  const size_t pd = (d + NR - 1) / NR, pt = (T + NR - 1) / NR;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const MicroFn micro = micro_fn();
  std::vector<float> vtp(pt * d * NR), kp(pd * T * NR), qp(pd * T * NR), dyp(pd * T * NR), ap(MR * std::max(T, d)), dS(T * T),
      Pbuf(T * T), kqp(pt * d * NR), dkb(T * d), dvb(T * d);
  float* Pb = Pbuf.data();
  for (size_t task = t0; task < t1; task++) {
    const size_t b = task / s.KV, g = task % s.KV;
    const float* base = qkv + b * T * W;
    float* dbase = dqkv + b * T * W;
    pack_b16(vtp.data(), base + (s.H + s.KV + g) * d, 1, W, d, T, 1.f);   // Vᵀ: [d][T]
    pack_b16(kp.data(), base + (s.H + g) * d, W, 1, T, d, 1.f);           // K: [T][d]
    pack_b16(kqp.data(), base + (s.H + g) * d, 1, W, d, T, 1.f);          // Kᵀ: [d][T] (recomputing S)
    std::fill(dkb.begin(), dkb.end(), 0.f);
    std::fill(dvb.begin(), dvb.end(), 0.f);
    for (size_t h = g * G; h < (g + 1) * G; h++) {
      causal_scores(Pb, T, base + h * d, W, scale, kqp.data(), d, ap.data(), micro);
      probs_from_stats(Pb, T, stats + (b * s.H + h) * T * 2);
      const float* dyb = dY + b * T * Hd + h * d;
      causal_scores(dS.data(), T, dyb, Hd, 1.f, vtp.data(), d, ap.data(), micro);  // dP
      for (size_t t = 0; t < T; t++) {
        float* row = dS.data() + t * T;
        const float* pr = Pb + t * T;
        const size_t lim = t + 1;
        float sum = 0.f;
        for (size_t j = 0; j < lim; j++) sum += pr[j] * row[j];
        for (size_t j = 0; j < lim; j++) row[j] = pr[j] * (row[j] - sum);
        for (size_t j = lim; j < T; j++) row[j] = 0.f;
      }
      float* dq = dbase + h * d;
      causal_rows(dq, W, dS.data(), T, kp.data(), d, ap.data(), micro, false);
      for (size_t t = 0; t < T; t++)
        for (size_t i = 0; i < d; i++) dq[t * W + i] *= scale;
      pack_b16(qp.data(), base + h * d, W, 1, T, d, scale);                 // q·scale: [T][d]
      pack_b16(dyp.data(), dyb, Hd, 1, T, d, 1.f);                          // dY: [T][d]
      causal_cols(dkb.data(), d, dS.data(), T, qp.data(), d, ap.data(), micro);
      causal_cols(dvb.data(), d, Pb, T, dyp.data(), d, ap.data(), micro);
    }
    for (size_t j = 0; j < T; j++) {
      std::memcpy(dbase + j * W + (s.H + g) * d, dkb.data() + j * d, d * sizeof(float));
      std::memcpy(dbase + j * W + (s.H + s.KV + g) * d, dvb.data() + j * d, d * sizeof(float));
    }
  }
}

static void attn_fwd(float* Y, float* stats, const float* qkv, const AttnShape& s, int threads) {
  const size_t tasks = s.B * s.KV;
  const int nt = std::max(1, std::min<int>(threads, static_cast<int>(tasks)));
  sd::Pool::get().run(nt, [&](int t) { attn_fwd_tasks(Y, stats, qkv, s, tasks * t / nt, tasks * (t + 1) / nt); });
}

static void attn_bwd(float* dqkv, const float* dY, const float* stats, const float* qkv, const AttnShape& s, int threads) {
  const size_t tasks = s.B * s.KV;
  const int nt = std::max(1, std::min<int>(threads, static_cast<int>(tasks)));
  sd::Pool::get().run(nt, [&](int t) { attn_bwd_tasks(dqkv, dY, stats, qkv, s, tasks * t / nt, tasks * (t + 1) / nt); });
}

// ---------------------------------------------------------------- elementwise kernels

// RoPE (rotate_half) in place on the first `heads` heads of each row [N, W]; tables [T, d/2], row n at
// position n % T; sign -1 applies the inverse rotation (the backward pass).
static void rope(float* x, size_t n0, size_t n1, size_t W, size_t heads, size_t d, const float* cs, const float* sn, size_t T, float sign) {
  const size_t half = d / 2;
  for (size_t n = n0; n < n1; n++) {
    const float* c = cs + (n % T) * half;
    const float* s = sn + (n % T) * half;
    for (size_t hd = 0; hd < heads; hd++) {
      float* r = x + n * W + hd * d;
      for (size_t i = 0; i < half; i++) {
        const float a = r[i], b = r[i + half], si = sign * s[i];
        r[i] = a * c[i] - b * si;
        r[i + half] = b * c[i] + a * si;
      }
    }
  }
}

// y = x · r · w, r = 1/sqrt(mean(x²) + eps) per row (saved)
static void rms_fwd(float* y, float* rs, const float* x, const float* w, size_t N, size_t D, double eps) {
  for (size_t n = 0; n < N; n++) {
    const float* xr = x + n * D;
    const float r = static_cast<float>(inv_rms(xr, D, eps));
    rs[n] = r;
    float* yr = y + n * D;
    for (size_t i = 0; i < D; i++) yr[i] = xr[i] * r * w[i];
  }
}

// dx += r·dy·w − x·(Σ dy·w·x)·r³/D ; dw += Σ_n dy·x·r (dw accumulated in double, then added)
static void rms_bwd(float* dx, float* dw, const float* dy, const float* x, const float* rs, const float* w, size_t N, size_t D) {
  std::vector<double> acc(D, 0.0);
  for (size_t n = 0; n < N; n++) {
    const float* xr = x + n * D;
    const float* g = dy + n * D;
    const float r = rs[n];
    double dot = 0;
    for (size_t i = 0; i < D; i++) {
      dot += static_cast<double>(g[i]) * w[i] * xr[i];
      acc[i] += static_cast<double>(g[i]) * xr[i] * r;
    }
    const float c = static_cast<float>(dot * r * r * r / D);
    float* o = dx + n * D;
    for (size_t i = 0; i < D; i++) o[i] += r * g[i] * w[i] - xr[i] * c;
  }
  for (size_t i = 0; i < D; i++) dw[i] += static_cast<float>(acc[i]);
}

// row n of the SwiGLU backward: gate g, up u, dact da in; dgate dg, dup du out
struct SwigluRow {
  const float *g, *u, *da;
  float *dg, *du;
  SwigluRow(float* dgu, const float* dact, const float* gu, size_t n, size_t I)
      : g(gu + n * 2 * I), u(g + I), da(dact + n * I), dg(dgu + n * 2 * I), du(dg + I) {}
};

// dgu[n, i] = dact · u · s · (1 + g·(1 − s)), dgu[n, I + i] = dact · g · s
static void swiglu_bwd_base(float* dgu, const float* dact, const float* gu, size_t N, size_t I, size_t i0) {
  for (size_t n = 0; n < N; n++) {
    const SwigluRow r(dgu, dact, gu, n, I);
    for (size_t i = i0; i < I; i++) {
      const float s = 1.0f / (1.0f + std::exp(-r.g[i]));
      r.du[i] = r.da[i] * r.g[i] * s;
      r.dg[i] = r.da[i] * r.u[i] * s * (1.0f + r.g[i] * (1.0f - s));
    }
  }
}

#ifdef SD_X86
__attribute__((target("avx2,fma"))) static void swiglu_bwd_avx2(float* dgu, const float* dact, const float* gu, size_t N, size_t I) {
  const size_t I8 = I & ~size_t(7);
  const __m256 one = _mm256_set1_ps(1.0f);
  for (size_t n = 0; n < N; n++) {
    const SwigluRow r(dgu, dact, gu, n, I);
    for (size_t i = 0; i < I8; i += 8) {
      const __m256 gv = _mm256_loadu_ps(r.g + i), dav = _mm256_loadu_ps(r.da + i);
      const __m256 sv = sigmoid8(gv);
      _mm256_storeu_ps(r.du + i, _mm256_mul_ps(_mm256_mul_ps(dav, gv), sv));
      const __m256 t = _mm256_add_ps(one, _mm256_mul_ps(gv, _mm256_sub_ps(one, sv)));
      _mm256_storeu_ps(r.dg + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(dav, _mm256_loadu_ps(r.u + i)), sv), t));
    }
  }
  if (I8 < I) swiglu_bwd_base(dgu, dact, gu, N, I, I8);
}
#endif

static void swiglu_fwd(float* act, const float* gu, size_t N, size_t I) {
#ifdef SD_X86
  if (g_avx2fma) return swiglu_fwd_avx2(act, gu, N, I);
#endif
  swiglu_fwd_base(act, gu, N, I, 0);
}

static void swiglu_bwd(float* dgu, const float* dact, const float* gu, size_t N, size_t I) {
#ifdef SD_X86
  if (g_avx2fma) return swiglu_bwd_avx2(dgu, dact, gu, N, I);
#endif
  swiglu_bwd_base(dgu, dact, gu, N, I, 0);
}

// logits [N, V] → dlogits in place: (softmax − onehot(target)) · weight · scale; returns Σ weight · logp(target)
// rows [n0, n1); per-row weight · logp(target) into lp_out[n] (0 for unweighted rows)
static void xent(float* L, const int32_t* tg, const float* wt, size_t n0, size_t n1, size_t V, float scale, double* lp_out) {
  for (size_t n = n0; n < n1; n++) {
    float* row = L + n * V;
    const float w = wt[n];
    lp_out[n] = 0;
    if (w == 0.f) {
      std::memset(row, 0, V * sizeof(float));
      continue;
    }
    float mx = -INFINITY;
    for (size_t j = 0; j < V; j++) mx = std::max(mx, row[j]);
    const float xt = row[tg[n]];
    const float z = exp_sub_sum(row, V, mx);
    const double lp = static_cast<double>(xt) - mx - std::log(static_cast<double>(z));
    lp_out[n] = w * lp;
    const float f = w * scale / z;
    for (size_t j = 0; j < V; j++) row[j] *= f;
    row[tg[n]] -= w * scale;
  }
}

// f(n0, n1) over row ranges on up to `threads` pool threads (rows are independent, so results do not
// depend on the split); small jobs stay on the calling thread
template <class F>
static void par_rows(size_t N, size_t width, int threads, F f) {
  int nt = std::max(1, std::min<int>(threads, static_cast<int>(N)));
  if (N * width < 65536) nt = 1;
  if (nt == 1) return f(size_t(0), N);
  sd::Pool::get().run(nt, [&](int t) { f(N * t / nt, N * (t + 1) / nt); });
}

// ---------------------------------------------------------------- AdamW
// The exact arithmetic of AdamW.step in src/nn/train.ts (double precision, float32 storage, the same
// operation order, no FMA contraction: -ffp-contract=off), so results are bit-identical to it.
#define SD_ADAMW_BODY                                                                                  \
  for (size_t i = 0; i < n; i++) {                                                                     \
    const double gi = static_cast<double>(g[i]) * scale;                                               \
    m[i] = static_cast<float>(b1 * m[i] + (1 - b1) * gi);                                              \
    v[i] = static_cast<float>(b2 * v[i] + (1 - b2) * gi * gi);                                         \
    w[i] = static_cast<float>(w[i] * wd - (step * m[i]) / (std::sqrt(v[i] / bc2) + eps));              \
  }

static void adamw_base(float* w, const float* g, float* m, float* v, size_t n, double scale, double b1, double b2, double bc2,
                       double step, double eps, double wd) {
  SD_ADAMW_BODY
}
#ifdef SD_X86
__attribute__((target("avx2"))) static void adamw_avx2(float* w, const float* g, float* m, float* v, size_t n, double scale, double b1,
                                                       double b2, double bc2, double step, double eps, double wd) {
  SD_ADAMW_BODY
}
#endif

// ---------------------------------------------------------------- N-API glue

struct Args {
  napi_env env;
  napi_value v[16];
  const char* fn;
  size_t argc = 16;
  Args(napi_env e, napi_callback_info info, size_t want, const char* name) : env(e), fn(name) {
    check(napi_get_cb_info(e, info, &argc, v, nullptr, nullptr), "get_cb_info");
    if (argc < want) throw Err{std::string(fn) + ": expected " + std::to_string(want) + " arguments"};
  }
  size_t size(size_t i) const {
    size_t n;
    if (!sd::napi::size_value(env, v[i], &n)) throw Err{std::string(fn) + ": argument " + std::to_string(i) + " must be a non-negative integer"};
    return n;
  }
  double num(size_t i) const {
    double d;
    if (napi_get_value_double(env, v[i], &d) != napi_ok) throw Err{std::string(fn) + ": argument " + std::to_string(i) + " must be a number"};
    return d;
  }
  template <class T>
  T* arr(size_t i, size_t need, napi_typedarray_type want = napi_float32_array) const {
    size_t length = 0;
    void* data = sd::napi::typed_data(env, v[i], want, &length);
    if (!data)
      throw Err{std::string(fn) + ": argument " + std::to_string(i) + " must be a" +
                (want == napi_float32_array ? " Float32Array" : want == napi_float64_array ? " Float64Array" : "n Int32Array")};
    if (length < need)
      throw Err{std::string(fn) + ": argument " + std::to_string(i) + " has " + std::to_string(length) + " elements, needs " + std::to_string(need)};
    return static_cast<T*>(data);
  }
};

// An entry point returning undefined: `body` reads its `want` arguments from an Args named `name`.
template <class F>
static napi_value entry(napi_env env, napi_callback_info info, size_t want, const char* name, F body) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, want, name);
    body(a);
    return nullptr;
  });
}

static int threads_arg(const Args& a, size_t i) {
  if (a.argc <= i) return 1;  // optional trailing argument
  const size_t t = a.size(i);
  return static_cast<int>(std::max<size_t>(1, std::min<size_t>(t, 64)));
}

// trainGemm(C, A, B, N, K, M, transA, transB, accumulate, threads)
static napi_value js_gemm(napi_env env, napi_callback_info info) {
  return entry(env, info, 10, "trainGemm", [&](const Args& a) {
    const size_t N = a.size(3), K = a.size(4), M = a.size(5);
    const bool ta = a.num(6) != 0, tb = a.num(7) != 0, acc = a.num(8) != 0;
    float* C = a.arr<float>(0, N * M);
    const float* A = a.arr<float>(1, N * K);
    const float* B = a.arr<float>(2, K * M);
    gemm(C, A, B, N, K, M, ta, tb, acc, threads_arg(a, 9));
  });
}

static AttnShape attn_shape(const Args& a, size_t i) {
  AttnShape s{a.size(i), a.size(i + 1), a.size(i + 2), a.size(i + 3), a.size(i + 4), 0};
  if (!s.B || !s.T || !s.H || !s.KV || !s.d || s.H % s.KV) throw Err{std::string(a.fn) + ": bad attention shape"};
  s.W = (s.H + 2 * s.KV) * s.d;
  return s;
}

// trainAttnFwd2(Y, stats, qkv, B, T, H, KV, d, threads): stats [B, H, T, 2] saved for the backward
static napi_value js_attn_fwd(napi_env env, napi_callback_info info) {
  return entry(env, info, 9, "trainAttnFwd2", [&](const Args& a) {
    const AttnShape s = attn_shape(a, 3);
    const size_t N = s.B * s.T;
    float* Y = a.arr<float>(0, N * s.H * s.d);
    float* st = a.arr<float>(1, s.B * s.H * s.T * 2);
    const float* qkv = a.arr<float>(2, N * s.W);
    attn_fwd(Y, st, qkv, s, threads_arg(a, 8));
  });
}

// trainAttnBwd2(dqkv, dY, stats, qkv, B, T, H, KV, d, threads): writes every element of dqkv
static napi_value js_attn_bwd(napi_env env, napi_callback_info info) {
  return entry(env, info, 10, "trainAttnBwd2", [&](const Args& a) {
    const AttnShape s = attn_shape(a, 4);
    const size_t N = s.B * s.T;
    float* dqkv = a.arr<float>(0, N * s.W);
    const float* dY = a.arr<float>(1, N * s.H * s.d);
    const float* st = a.arr<float>(2, s.B * s.H * s.T * 2);
    const float* qkv = a.arr<float>(3, N * s.W);
    attn_bwd(dqkv, dY, st, qkv, s, threads_arg(a, 9));
  });
}

// trainRope(x, N, W, heads, d, cos, sin, T, sign[, threads])
static napi_value js_rope(napi_env env, napi_callback_info info) {
  return entry(env, info, 9, "trainRope", [&](const Args& a) {
    const size_t N = a.size(1), W = a.size(2), heads = a.size(3), d = a.size(4), T = a.size(7);
    if (d % 2 || heads * d > W || T == 0) throw Err{"trainRope: bad sizes"};
    float* x = a.arr<float>(0, N * W);
    const float* cs = a.arr<float>(5, T * (d / 2));
    const float* sn = a.arr<float>(6, T * (d / 2));
    const float sign = static_cast<float>(a.num(8));
    par_rows(N, heads * d, threads_arg(a, 9), [&](size_t n0, size_t n1) { rope(x, n0, n1, W, heads, d, cs, sn, T, sign); });
  });
}

// trainRmsFwd(y, r, x, w, N, D, eps[, threads])
static napi_value js_rms_fwd(napi_env env, napi_callback_info info) {
  return entry(env, info, 7, "trainRmsFwd", [&](const Args& a) {
    const size_t N = a.size(4), D = a.size(5);
    float* y = a.arr<float>(0, N * D);
    float* r = a.arr<float>(1, N);
    const float* x = a.arr<float>(2, N * D);
    const float* w = a.arr<float>(3, D);
    const double eps = a.num(6);
    par_rows(N, D, threads_arg(a, 7), [&](size_t n0, size_t n1) { rms_fwd(y + n0 * D, r + n0, x + n0 * D, w, n1 - n0, D, eps); });
  });
}

// trainRmsBwd(dx, dw, dy, x, r, w, N, D): dx += ..., dw += ...
static napi_value js_rms_bwd(napi_env env, napi_callback_info info) {
  return entry(env, info, 8, "trainRmsBwd", [&](const Args& a) {
    const size_t N = a.size(6), D = a.size(7);
    rms_bwd(a.arr<float>(0, N * D), a.arr<float>(1, D), a.arr<float>(2, N * D), a.arr<float>(3, N * D), a.arr<float>(4, N),
            a.arr<float>(5, D), N, D);
  });
}

// trainSwigluFwd(act, gu, N, I[, threads])
static napi_value js_swiglu_fwd(napi_env env, napi_callback_info info) {
  return entry(env, info, 4, "trainSwigluFwd", [&](const Args& a) {
    const size_t N = a.size(2), I = a.size(3);
    float* act = a.arr<float>(0, N * I);
    const float* gu = a.arr<float>(1, 2 * N * I);
    par_rows(N, I, threads_arg(a, 4), [&](size_t n0, size_t n1) { swiglu_fwd(act + n0 * I, gu + n0 * 2 * I, n1 - n0, I); });
  });
}

// trainSwigluBwd(dgu, dact, gu, N, I[, threads])
static napi_value js_swiglu_bwd(napi_env env, napi_callback_info info) {
  return entry(env, info, 5, "trainSwigluBwd", [&](const Args& a) {
    const size_t N = a.size(3), I = a.size(4);
    float* dgu = a.arr<float>(0, 2 * N * I);
    const float* dact = a.arr<float>(1, N * I);
    const float* gu = a.arr<float>(2, 2 * N * I);
    par_rows(N, 2 * I, threads_arg(a, 5), [&](size_t n0, size_t n1) { swiglu_bwd(dgu + n0 * 2 * I, dact + n0 * I, gu + n0 * 2 * I, n1 - n0, I); });
  });
}

// trainXent(logits→dlogits, targets, weights, N, V, scale[, threads[, lpOut]]) → Σ weight·logp(target) (summed in row
// order); lpOut (Float64Array of N), when given, receives each row's weight·logp(target)
static napi_value js_xent(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, 6, "trainXent");
    const size_t N = a.size(3), V = a.size(4);
    float* L = a.arr<float>(0, N * V);
    const int32_t* tg = a.arr<int32_t>(1, N, napi_int32_array);
    const float* wt = a.arr<float>(2, N);
    for (size_t n = 0; n < N; n++)
      if (tg[n] < 0 || static_cast<size_t>(tg[n]) >= V) throw Err{"trainXent: target id " + std::to_string(tg[n]) + " outside the vocabulary"};
    const float scale = static_cast<float>(a.num(5));
    std::vector<double> lp(N);
    par_rows(N, V, threads_arg(a, 6), [&](size_t n0, size_t n1) { xent(L, tg, wt, n0, n1, V, scale, lp.data()); });
    double s = 0;
    for (size_t n = 0; n < N; n++) s += lp[n];
    if (a.argc > 7) std::copy(lp.begin(), lp.end(), a.arr<double>(7, N, napi_float64_array));
    napi_value out;
    check(napi_create_double(env, s, &out), "create_double");
    return out;
  });
}

// trainAdamW(w, g, m, v, scale, beta1, beta2, bc2, stepSize, eps, decayFactor): one tensor's update
static napi_value js_adamw(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, 11, "trainAdamW");
    size_t n = 0;
    if (!sd::napi::typed_data(env, a.v[0], napi_float32_array, &n)) throw Err{"trainAdamW: argument 0 must be a Float32Array"};
    float* w = a.arr<float>(0, n);
    const float* g = a.arr<float>(1, n);
    float* m = a.arr<float>(2, n);
    float* v = a.arr<float>(3, n);
    const double scale = a.num(4), b1 = a.num(5), b2 = a.num(6), bc2 = a.num(7), step = a.num(8), eps = a.num(9), wd = a.num(10);
#ifdef SD_X86
    if (g_avx2fma) {
      adamw_avx2(w, g, m, v, n, scale, b1, b2, bc2, step, eps, wd);
      return nullptr;
    }
#endif
    adamw_base(w, g, m, v, n, scale, b1, b2, bc2, step, eps, wd);
    return nullptr;
  });
}

// trainInfo() → { simd: true when the AVX2+FMA kernels are in use (else plain loops, slower than tfjs) }
static napi_value js_info(napi_env env, napi_callback_info) {
  return guarded(env, [&]() -> napi_value {
    napi_value out, v;
    check(napi_create_object(env, &out), "create_object");
    check(napi_get_boolean(env, g_avx2fma, &v), "get_boolean");
    check(napi_set_named_property(env, out, "simd", v), "set_property");
    return out;
  });
}

const std::pair<const char*, napi_callback> FUNCTIONS[] = {
    {"trainGemm", js_gemm},          {"trainAttnFwd2", js_attn_fwd},    {"trainAttnBwd2", js_attn_bwd}, {"trainRope", js_rope},
    {"trainRmsFwd", js_rms_fwd},     {"trainRmsBwd", js_rms_bwd},       {"trainSwigluFwd", js_swiglu_fwd},
    {"trainSwigluBwd", js_swiglu_bwd}, {"trainXent", js_xent},          {"trainInfo", js_info},         {"trainAdamW", js_adamw}};

}  // namespace sdtrain

// Called from the module init in kernels.cc.
bool sd::register_train(napi_env env, napi_value exports) {
  sdtrain::g_avx2fma = sd::nn::avx2fma_enabled();
  return sd::napi::export_functions(env, exports, sdtrain::FUNCTIONS);
}
