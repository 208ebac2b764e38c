// Included by leaf_base.cc and leaf_avx2.cc (the latter under `#pragma GCC target("avx2,f16c")`
// with SD_F16C defined). Plain loops that GCC auto-vectorises for whichever ISA is active.
// Do not include elsewhere.
#include <cmath>
#include <cstring>

#include "kernels.h"

namespace {

typedef uint32_t __attribute__((may_alias)) u32a;
typedef float __attribute__((may_alias)) f32a;

inline uint32_t fbits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
}
inline float bitsf(uint32_t u) {
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

void cvt_bf16_f32(const uint16_t* s, float* d, size_t n) {
  u32a* du = reinterpret_cast<u32a*>(d);
  for (size_t i = 0; i < n; i++) du[i] = static_cast<uint32_t>(s[i]) << 16;
}

void cvt_f32_bf16(const float* s, uint16_t* d, size_t n) {
  const u32a* su = reinterpret_cast<const u32a*>(s);
  for (size_t i = 0; i < n; i++) {
    uint32_t u = su[i];
    uint32_t nanv = ((u >> 16) & 0x8000u) | 0x7fc0u;
    uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    d[i] = static_cast<uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? nanv : r);
  }
}

inline float f16_to_f32_scalar(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  uint32_t bits;
  if (e == 0) {
    float f = static_cast<float>(m) * 5.9604644775390625e-8f;  // m * 2^-24, exact
    bits = fbits(f) | sign;
  } else if (e == 31) {
    bits = m ? 0x7fc00000u : (sign | 0x7f800000u);
  } else {
    bits = sign | ((e + 112u) << 23) | (m << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint16_t f32_to_f16_scalar(float x) {
  uint32_t u = fbits(x);
  uint32_t sign = (u >> 16) & 0x8000u;
  int32_t exp = static_cast<int32_t>((u >> 23) & 0xffu);
  uint32_t man = u & 0x7fffffu;
  if (exp == 0xff) return static_cast<uint16_t>(man ? (sign | 0x7e00u) : (sign | 0x7c00u));
  int32_t e = exp - 127 + 15;
  if (e >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
  if (e <= 0) {
    if (e < -10) return static_cast<uint16_t>(sign);
    uint32_t full = man | 0x800000u;
    uint32_t shift = static_cast<uint32_t>(14 - e);
    uint32_t half = 1u << (shift - 1);
    uint32_t r = full >> shift;
    uint32_t rest = full & ((1u << shift) - 1);
    if (rest > half || (rest == half && (r & 1))) r++;
    return static_cast<uint16_t>(sign | r);
  }
  uint32_t r = (static_cast<uint32_t>(e) << 10) | (man >> 13);
  uint32_t rest = man & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (r & 1))) r++;
  return static_cast<uint16_t>(sign | r);
}

void cvt_f16_f32(const uint16_t* s, float* d, size_t n) {
  size_t i = 0;
#ifdef SD_F16C
  for (; i + 8 <= n; i += 8) {
    __m128i h;
    std::memcpy(&h, s + i, 16);
    __m256 f = _mm256_cvtph_ps(h);
    // F16C keeps NaN payloads; the JS reference yields the canonical quiet NaN
    __m256 isnan = _mm256_cmp_ps(f, f, _CMP_UNORD_Q);
    f = _mm256_blendv_ps(f, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fc00000)), isnan);
    _mm256_storeu_ps(d + i, f);
  }
#endif
  for (; i < n; i++) d[i] = f16_to_f32_scalar(s[i]);
}

void cvt_f32_f16(const float* s, uint16_t* d, size_t n) {
  size_t i = 0;
#ifdef SD_F16C
  for (; i + 8 <= n; i += 8) {
    __m256 f = _mm256_loadu_ps(s + i);
    __m128i h = _mm256_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 isnan = _mm256_cmp_ps(f, f, _CMP_UNORD_Q);
    if (_mm256_movemask_ps(isnan)) {
      alignas(16) uint16_t tmp[8];
      _mm_store_si128(reinterpret_cast<__m128i*>(tmp), h);
      for (int j = 0; j < 8; j++) {
        uint32_t u = fbits(s[i + j]);
        if ((u & 0x7fffffffu) > 0x7f800000u) tmp[j] = static_cast<uint16_t>(((u >> 16) & 0x8000u) | 0x7e00u);
      }
      std::memcpy(d + i, tmp, 16);
    } else {
      std::memcpy(d + i, &h, 16);
    }
  }
#endif
  for (; i < n; i++) d[i] = f32_to_f16_scalar(s[i]);
}

void axpy_d(float* y, double a, const float* x, size_t n) {
  for (size_t i = 0; i < n; i++) y[i] = static_cast<float>(static_cast<double>(y[i]) + a * static_cast<double>(x[i]));
}

void scale_d(float* x, double a, size_t n) {
  for (size_t i = 0; i < n; i++) x[i] = static_cast<float>(static_cast<double>(x[i]) * a);
}

void sub_f(float* out, const float* a, const float* b, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = a[i] - b[i];
}

void sub_inplace(float* x, const float* b, size_t n) {
  for (size_t i = 0; i < n; i++) x[i] = x[i] - b[i];
}

void delta_axpy(float* acc, float w, const float* x, const float* b, size_t n) {
  for (size_t i = 0; i < n; i++) acc[i] = acc[i] + w * (x[i] - b[i]);
}

inline double fold8(const double* a) { return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])); }

double red_l1(const float* x, size_t n) {
  double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) a[j] += std::fabs(static_cast<double>(x[i + j]));
  for (int j = 0; i < n; i++, j++) a[j] += std::fabs(static_cast<double>(x[i]));
  return fold8(a);
}

double red_l2sq(const float* x, size_t n) {
  double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) {
      double v = static_cast<double>(x[i + j]);
      a[j] += v * v;
    }
  for (int j = 0; i < n; i++, j++) {
    double v = static_cast<double>(x[i]);
    a[j] += v * v;
  }
  return fold8(a);
}

double red_dot(const float* p, const float* q, size_t n) {
  double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) a[j] += static_cast<double>(p[i + j]) * static_cast<double>(q[i + j]);
  for (int j = 0; i < n; i++, j++) a[j] += static_cast<double>(p[i]) * static_cast<double>(q[i]);
  return fold8(a);
}

float red_absmax(const float* x, size_t n, int* nan) {
  // max over the bit patterns of |x|: for non-NaN floats the order of |x| bits is the numeric order
  const u32a* u = reinterpret_cast<const u32a*>(x);
  uint32_t m = 0, bad = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t k = u[i] & 0x7fffffffu;
    bad |= k > 0x7f800000u ? 1u : 0u;
    m = k > m ? k : m;
  }
  if (bad) *nan = 1;
  float f;
  std::memcpy(&f, &m, 4);
  return f;
}

void bern(const float* x, float* out, size_t n, uint32_t start, uint32_t seed, uint32_t c) {
  for (size_t i = 0; i < n; i++) {
    uint32_t h = sd::hash_at(seed, start + static_cast<uint32_t>(i));
    out[i] = (h >> 8) < c ? x[i] : 0.0f;
  }
}

void bern_bits(size_t n, uint32_t start, uint32_t seed, uint32_t c, uint8_t* bits) {
  size_t i = 0;
#ifdef SD_F16C
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i seedv = _mm256_set1_epi32(static_cast<int>(seed));
  const __m256i c1 = _mm256_set1_epi32(static_cast<int>(0x9e3779b1u));
  const __m256i c2 = _mm256_set1_epi32(static_cast<int>(0x85ebca6bu));
  const __m256i c3 = _mm256_set1_epi32(static_cast<int>(0xc2b2ae35u));
  const __m256i cv = _mm256_set1_epi32(static_cast<int>(c));  // c <= 2^24: signed compare is fine
  for (; i + 8 <= n; i += 8) {
    __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(start + static_cast<uint32_t>(i))), lane);
    __m256i h = _mm256_xor_si256(seedv, _mm256_mullo_epi32(idx, c1));
    h = _mm256_mullo_epi32(_mm256_xor_si256(h, _mm256_srli_epi32(h, 16)), c2);
    h = _mm256_mullo_epi32(_mm256_xor_si256(h, _mm256_srli_epi32(h, 13)), c3);
    h = _mm256_xor_si256(h, _mm256_srli_epi32(h, 16));
    __m256i keep = _mm256_cmpgt_epi32(cv, _mm256_srli_epi32(h, 8));
    bits[i >> 3] = static_cast<uint8_t>(_mm256_movemask_ps(_mm256_castsi256_ps(keep)));
  }
#endif
  for (; i < n; i += 8) {
    uint8_t b = 0;
    for (size_t k = 0; k < 8 && i + k < n; k++)
      b = static_cast<uint8_t>(b | (((sd::hash_at(seed, start + static_cast<uint32_t>(i + k)) >> 8) < c ? 1u : 0u) << k));
    bits[i >> 3] = b;
  }
}

void apply_bits(const float* x, const uint8_t* bits, float* out, size_t n) {
  size_t i = 0;
#ifdef SD_F16C
  const __m256i sel = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  for (; i + 8 <= n; i += 8) {
    __m256i bb = _mm256_set1_epi32(bits[i >> 3]);
    __m256i m = _mm256_cmpeq_epi32(_mm256_and_si256(bb, sel), sel);
    _mm256_storeu_ps(out + i, _mm256_and_ps(_mm256_loadu_ps(x + i), _mm256_castsi256_ps(m)));
  }
#endif
  for (; i < n; i++) out[i] = (bits[i >> 3] >> (i & 7)) & 1u ? x[i] : 0.0f;
}

void combine(float* wd, size_t stride, size_t m, const float* w, const float* r, const float* bp, float* S_, float* M_,
             float* D_, float* out, size_t n, int consensus, int normalize, float dnone, float lam) {
  float* __restrict__ S = S_;
  float* __restrict__ M = M_;
  float* __restrict__ D = D_;
  for (size_t i = 0; i < n; i++) S[i] = 0.0f;
  for (size_t j = 0; j < m; j++) {
    float* __restrict__ d = wd + j * stride;
    const float wj = w[j], rj = r[j];
    for (size_t i = 0; i < n; i++) {
      float v = wj * (d[i] * rj);
      d[i] = v;
      S[i] = S[i] + v;
    }
  }
  const float* R = S;
  if (consensus) {
    for (size_t i = 0; i < n; i++) M[i] = 0.0f, D[i] = 0.0f;
    for (size_t j = 0; j < m; j++) {
      const float* __restrict__ d = wd + j * stride;
      const uint32_t wbits = fbits(w[j]);
      for (size_t i = 0; i < n; i++) {
        float v = d[i];
        float s = S[i];
        // selected: v has the elected sign (S >= 0 -> +, else -); zeros and NaN never.
        // Branch-free so it vectorises: unselected terms become +0 through a bit mask, and
        // adding +0 equals skipping the model (M and D are never -0 here).
        uint32_t ps = s >= 0.0f, gt = v > 0.0f, lt = v < 0.0f;
        uint32_t mask = 0u - ((ps & gt) | ((ps ^ 1u) & lt));
        M[i] = M[i] + bitsf(fbits(v) & mask);
        D[i] = D[i] + bitsf(wbits & mask);
      }
    }
    if (normalize)
      for (size_t i = 0; i < n; i++) {
        float den = D[i] == 0.0f ? 1.0f : D[i];
        M[i] = M[i] / den;
      }
    R = M;
  } else if (normalize) {
    for (size_t i = 0; i < n; i++) M[i] = S[i] / dnone;
    R = M;
  }
  float* __restrict__ o = out;
  if (bp)
    for (size_t i = 0; i < n; i++) o[i] = bp[i] + lam * R[i];
  else
    for (size_t i = 0; i < n; i++) o[i] = lam * R[i];
}

size_t collect(const float* v, size_t n, uint32_t start, uint32_t lo, uint32_t hi, uint32_t* ci, uint32_t* ck) {
  size_t p = 0, i = 0;
  const u32a* u = reinterpret_cast<const u32a*>(v);
#ifdef SD_F16C
  const __m256i absm = _mm256_set1_epi32(0x7fffffff);
  const __m256i lo1 = _mm256_set1_epi32(static_cast<int>(lo) - 1);  // keys are < 2^31: signed compares work
  const __m256i hiv = _mm256_set1_epi32(static_cast<int>(hi));
  for (; i + 8 <= n; i += 8) {
    __m256i k = _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + i)), absm);
    __m256i m = _mm256_and_si256(_mm256_cmpgt_epi32(k, lo1), _mm256_cmpgt_epi32(hiv, k));
    unsigned bits = static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(m)));
    while (bits) {
      unsigned b = static_cast<unsigned>(__builtin_ctz(bits));
      bits &= bits - 1;
      ci[p] = start + static_cast<uint32_t>(i + b);
      ck[p] = u[i + b] & 0x7fffffffu;
      p++;
    }
  }
#endif
  for (; i < n; i++) {
    uint32_t key = u[i] & 0x7fffffffu;
    if (key >= lo && key < hi) {
      ci[p] = start + static_cast<uint32_t>(i);
      ck[p] = key;
      p++;
    }
  }
  return p;
}

void topk_apply(float* x, size_t n, int64_t start, uint32_t thr, int64_t cut) {
  u32a* u = reinterpret_cast<u32a*>(x);
  const int64_t last = start + static_cast<int64_t>(n) - 1;
  if (cut >= last || cut < start) {
    // the tie cut is outside this range: keep iff lo <= key <= INF (keys < 2^31: int compares)
    const uint64_t lo64 = cut >= last ? thr : static_cast<uint64_t>(thr) + 1;
    if (lo64 > 0x7f800000u) {
      for (size_t i = 0; i < n; i++) u[i] = 0u;
      return;
    }
    const int32_t lo = static_cast<int32_t>(lo64);
    for (size_t i = 0; i < n; i++) {
      int32_t k = static_cast<int32_t>(u[i] & 0x7fffffffu);
      u[i] = (k >= lo && k <= 0x7f800000) ? u[i] : 0u;
    }
    return;
  }
  for (size_t i = 0; i < n; i++) {
    uint32_t k = u[i] & 0x7fffffffu;
    bool keep = (k > thr && k <= 0x7f800000u) || (k == thr && static_cast<int64_t>(i) + start <= cut);
    u[i] = keep ? u[i] : 0u;
  }
}

}  // namespace

const sd::Leaf SD_LEAF_NAME = {
    cvt_bf16_f32, cvt_f16_f32, cvt_f32_bf16, cvt_f32_f16, axpy_d,    scale_d,    sub_f,       delta_axpy,
    red_l1,       red_l2sq,    red_dot,      red_absmax,  bern,      bern_bits, apply_bits, topk_apply, sub_inplace, collect, combine,
};
