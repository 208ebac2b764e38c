// Numeric kernels shared by the inference (infer.cc) and training (train.cc) kernels of small Llamas:
// the AVX2+FMA register tile of the matrix products, the vectorised exp for x <= 0 (softmax rows,
// sigmoid), SwiGLU forward and the RMSNorm scale. The AVX2 functions carry target attributes and are
// only called after a run-time CPU check by their callers; float32 with FMA contraction there (only
// where written as _mm256_fmadd), plain loops otherwise (-ffp-contract=off for the whole addon).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdlib>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SD_X86 1
#endif

namespace sd {
namespace nn {

// Whether the AVX2+FMA kernels may run: the CPU has both and SELFDEV_NO_AVX2 is not set.
static inline bool avx2fma_enabled() {
#ifdef SD_X86
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && !std::getenv("SELFDEV_NO_AVX2");
#else
  return false;
#endif
}

// x[i] = exp(x[i] - mx) for i < n, returns Σ in index order (float)
static inline float exp_sub_sum_base(float* x, size_t n, float mx) {
  float z = 0;
  for (size_t i = 0; i < n; i++) {
    x[i] = std::exp(x[i] - mx);
    z += x[i];
  }
  return z;
}

// act[n, i] = silu(gu[n, i]) · gu[n, I + i] for i >= i0
static inline void swiglu_fwd_base(float* act, const float* gu, size_t N, size_t I, size_t i0) {
  for (size_t n = 0; n < N; n++) {
    const float* g = gu + n * 2 * I;
    const float* u = g + I;
    float* a = act + n * I;
    for (size_t i = i0; i < I; i++) a[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  }
}

// 1 / sqrt(mean(x²) + eps) of one row, the sum of squares in double
static inline double inv_rms(const float* x, size_t D, double eps) {
  double ss = 0;
  for (size_t i = 0; i < D; i++) ss += static_cast<double>(x[i]) * x[i];
  return 1.0 / std::sqrt(ss / D + eps);
}

#ifdef SD_X86
// exp(x) for x <= 0 (Cephes-style range reduction + degree-6 polynomial, ~1 ulp); x < -87 → 0
__attribute__((target("avx2,fma"))) static inline __m256 exp_neg8(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.0f);
  const __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_max_ps(x, lo);
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

// x[i] = exp(x[i] - mx) for i < n, returns Σ (float, 8 lanes then the lanes summed in order, then the
// scalar tail); x[i] <= mx is assumed (softmax rows)
__attribute__((target("avx2,fma"))) static inline float exp_sub_sum_avx2(float* x, size_t n, float mx) {
  const __m256 mv = _mm256_set1_ps(mx);
  __m256 zv = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp_neg8(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
    _mm256_storeu_ps(x + i, e);
    zv = _mm256_add_ps(zv, e);
  }
  alignas(32) float t[8];
  _mm256_store_ps(t, zv);
  float z = 0;
  for (int k = 0; k < 8; k++) z += t[k];
  for (; i < n; i++) {
    x[i] = std::exp(x[i] - mx);
    z += x[i];
  }
  return z;
}

// sigmoid(g) from exp(−|g|) (never overflows): 1/(1+e) for g >= 0, e/(1+e) for g < 0
__attribute__((target("avx2,fma"))) static inline __m256 sigmoid8(__m256 g) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 e = exp_neg8(_mm256_or_ps(g, _mm256_set1_ps(-0.0f)));
  const __m256 neg = _mm256_cmp_ps(g, _mm256_setzero_ps(), _CMP_LT_OQ);
  return _mm256_div_ps(_mm256_blendv_ps(one, e, neg), _mm256_add_ps(one, e));
}

// act[n, i] = silu(gu[n, i]) · gu[n, I + i]
__attribute__((target("avx2,fma"))) static inline void swiglu_fwd_avx2(float* act, const float* gu, size_t N, size_t I) {
  const size_t I8 = I & ~size_t(7);
  for (size_t n = 0; n < N; n++) {
    const float* g = gu + n * 2 * I;
    const float* u = g + I;
    float* a = act + n * I;
    for (size_t i = 0; i < I8; i += 8) {
      const __m256 gv = _mm256_loadu_ps(g + i);
      _mm256_storeu_ps(a + i, _mm256_mul_ps(_mm256_mul_ps(gv, sigmoid8(gv)), _mm256_loadu_ps(u + i)));
    }
  }
  if (I8 < I) swiglu_fwd_base(act, gu, N, I, I8);
}

// The register tile of both matrix products: C[r, c] (+)= Σ_k A(r, k) · B(k, c) for r < rn, c < cn
// (cn <= 16), k < kn, with A(r, k) = *a(r, k) and B(k, c) = b[k·ldb + c] (16 readable columns per k).
// R rows of two 8-wide FMA accumulators (HALF: one, when only the first 8 columns are valid), summed
// in k order, so the result does not depend on how A is laid out.
template <int R, bool HALF, class APtr>
__attribute__((target("avx2,fma"))) static inline void tile16(float* C, size_t ldc, APtr a, const float* b, size_t ldb, size_t kn,
                                                              size_t rn, size_t cn, bool add) {
  __m256 c0[R], c1[R];
#pragma GCC unroll 6
  for (int r = 0; r < R; r++) c0[r] = c1[r] = _mm256_setzero_ps();
  for (size_t k = 0; k < kn; k++, b += ldb) {
    const __m256 b0 = _mm256_loadu_ps(b);
    const __m256 b1 = HALF ? b0 : _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
      const __m256 x = _mm256_broadcast_ss(a(r, k));
      c0[r] = _mm256_fmadd_ps(x, b0, c0[r]);
      if (!HALF) c1[r] = _mm256_fmadd_ps(x, b1, c1[r]);
    }
  }
  alignas(32) float t[R][16];
#pragma GCC unroll 6
  for (int r = 0; r < R; r++) {
    _mm256_store_ps(t[r], c0[r]);
    _mm256_store_ps(t[r] + 8, HALF ? c0[r] : c1[r]);
  }
  if (cn == 16) {
    for (size_t r = 0; r < rn; r++) {
      float* cr = C + r * ldc;
      __m256 v0 = _mm256_load_ps(t[r]), v1 = _mm256_load_ps(t[r] + 8);
      if (add) {
        v0 = _mm256_add_ps(v0, _mm256_loadu_ps(cr));
        v1 = _mm256_add_ps(v1, _mm256_loadu_ps(cr + 8));
      }
      _mm256_storeu_ps(cr, v0);
      _mm256_storeu_ps(cr + 8, v1);
    }
  } else {
    for (size_t r = 0; r < rn; r++) {
      float* cr = C + r * ldc;
      for (size_t c = 0; c < cn; c++) cr[c] = add ? cr[c] + t[r][c] : t[r][c];
    }
  }
}
#endif

}  // namespace nn
}  // namespace sd
