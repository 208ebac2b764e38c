// Inference kernels for small Llamas (src/nn/infer.ts): a matrix product against a pre-transposed,
// zero-padded weight (out[N, M] = x[N, K] · wt[K, Mp], Mp a multiple of 16) and causal attention of
// single queries over per-row KV caches. Both run on the calling thread (the decoding loop calls
// them thousands of times with small sizes; a pool hand-off would cost more than it saves).
// AVX2+FMA versions are chosen at run time; the baseline versions are plain loops. Results are
// float32 with FMA contraction, so they differ from the JS kernels by rounding only.
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

namespace sdinfer {

using namespace sd::nn;
using sd::napi::Err;
using sd::napi::check;
using sd::napi::guarded;

// ---------------------------------------------------------------- matmul

// rows of x processed together share each loaded weight vector
static const size_t NCHUNK = 48;

static void mm_base(float* out, const float* x, const float* wt, size_t N, size_t K, size_t M, size_t Mp) {
  std::vector<float> acc(Mp);
  for (size_t n = 0; n < N; n++) {
    std::fill(acc.begin(), acc.end(), 0.f);
    const float* xr = x + n * K;
    for (size_t k = 0; k < K; k++) {
      const float xv = xr[k];
      const float* w = wt + k * Mp;
      for (size_t m = 0; m < Mp; m++) acc[m] += xv * w[m];
    }
    std::memcpy(out + n * M, acc.data(), M * sizeof(float));
  }
}

#ifdef SD_X86
// R rows of x against the 16 weight columns from m0 (the shared register tile, nn_kernels.h)
template <int R>
__attribute__((target("avx2,fma"))) static inline void mm_tile(float* out, const float* x, const float* wt, size_t K, size_t M,
                                                               size_t Mp, size_t m0) {
  const size_t cn = std::min<size_t>(16, M - m0);
  const auto a = [x, K](int r, size_t k) { return x + r * K + k; };
  if (cn <= 8) tile16<R, true>(out + m0, M, a, wt + m0, Mp, K, R, cn, false);
  else tile16<R, false>(out + m0, M, a, wt + m0, Mp, K, R, cn, false);
}

__attribute__((target("avx2,fma"))) static void mm_avx2(float* out, const float* x, const float* wt, size_t N, size_t K,
                                                        size_t M, size_t Mp) {
  for (size_t c0 = 0; c0 < N; c0 += NCHUNK) {
    const size_t c1 = std::min(N, c0 + NCHUNK);
    // weight tile outer (stays in L1), row blocks of 6 inner
    for (size_t m0 = 0; m0 < M; m0 += 16) {
      size_t n = c0;
      for (; n + 6 <= c1; n += 6) mm_tile<6>(out + n * M, x + n * K, wt, K, M, Mp, m0);
      switch (c1 - n) {
        case 5: mm_tile<5>(out + n * M, x + n * K, wt, K, M, Mp, m0); break;
        case 4: mm_tile<4>(out + n * M, x + n * K, wt, K, M, Mp, m0); break;
        case 3: mm_tile<3>(out + n * M, x + n * K, wt, K, M, Mp, m0); break;
        case 2: mm_tile<2>(out + n * M, x + n * K, wt, K, M, Mp, m0); break;
        case 1: mm_tile<1>(out + n * M, x + n * K, wt, K, M, Mp, m0); break;
        default: break;
      }
    }
  }
}
#endif

// ---------------------------------------------------------------- attention and elementwise kernels
// Cache layout per layer (cap a multiple of 8): keys [rows, KV, cap/8, d, 8] (blocks of 8 slots, one
// vector per head dimension, each block contiguous), values [rows, KV, cap, d].

static inline size_t kbase(size_t row, size_t g, size_t KV, size_t d, size_t cap) { return ((row * KV + g) * cap) * d; }
static inline size_t vbase(size_t row, size_t g, size_t KV, size_t d, size_t cap) { return ((row * KV + g) * cap) * d; }
// offset of key slot j, dimension i inside a head's block
static inline size_t koff(size_t j, size_t i, size_t d) { return (j & ~size_t(7)) * d + i * 8 + (j & 7); }

// One head of one query token: o = softmax(qr · Kᵀ) · V over the key slots lo..lim-1 (qr already scaled
// by 1/sqrt(d); slots below lo, outside a sliding window, get probability 0); sc holds at least lim
// rounded up to 8 scores, acc d floats.
static void attn_head_base(float* o, const float* qr, const float* kp, const float* vp, size_t lo, size_t lim, int d, float* sc, float* acc) {
  std::fill(sc, sc + lim, 0.f);
  for (int i = 0; i < d; i++)
    for (size_t j = 0; j < lim; j++) sc[j] += qr[i] * kp[koff(j, i, d)];
  for (size_t j = 0; j < lo; j++) sc[j] = -INFINITY;
  float mx = -INFINITY;
  for (size_t j = 0; j < lim; j++) mx = std::max(mx, sc[j]);
  const float inv = 1.0f / exp_sub_sum_base(sc, lim, mx);
  std::fill(acc, acc + d, 0.f);
  for (size_t j = 0; j < lim; j++) {
    const float p = sc[j] * inv;
    for (int i = 0; i < d; i++) acc[i] += p * vp[j * d + i];
  }
  std::memcpy(o, acc, d * sizeof(float));
}

#ifdef SD_X86
// any d; keys processed 8 at a time
__attribute__((target("avx2,fma"))) static void attn_head_avx2(float* o, const float* qr, const float* kp, const float* vp, size_t lo,
                                                               size_t lim, int d, float* sc, float*) {
  // scores of whole 8-slot blocks (slots past lim hold finite values and are set to -inf below)
  const size_t limr = (lim + 7) & ~size_t(7);
  size_t j = 0;
  for (; j + 32 <= limr; j += 32) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    const float* k0 = kp + j * d;
    const size_t bs = 8 * static_cast<size_t>(d);
    for (int i = 0; i < d; i++) {
      const __m256 qb = _mm256_set1_ps(qr[i]);
      s0 = _mm256_fmadd_ps(qb, _mm256_loadu_ps(k0 + i * 8), s0);
      s1 = _mm256_fmadd_ps(qb, _mm256_loadu_ps(k0 + bs + i * 8), s1);
      s2 = _mm256_fmadd_ps(qb, _mm256_loadu_ps(k0 + 2 * bs + i * 8), s2);
      s3 = _mm256_fmadd_ps(qb, _mm256_loadu_ps(k0 + 3 * bs + i * 8), s3);
    }
    _mm256_storeu_ps(sc + j, s0);
    _mm256_storeu_ps(sc + j + 8, s1);
    _mm256_storeu_ps(sc + j + 16, s2);
    _mm256_storeu_ps(sc + j + 24, s3);
  }
  for (; j < limr; j += 8) {
    __m256 s0 = _mm256_setzero_ps();
    const float* k0 = kp + j * d;
    for (int i = 0; i < d; i++) s0 = _mm256_fmadd_ps(_mm256_set1_ps(qr[i]), _mm256_loadu_ps(k0 + i * 8), s0);
    _mm256_storeu_ps(sc + j, s0);
  }
  for (j = lim; j < limr; j++) sc[j] = -INFINITY;
  for (j = 0; j < lo; j++) sc[j] = -INFINITY;  // outside the sliding window
  __m256 mxv = _mm256_set1_ps(-INFINITY);
  for (j = 0; j < limr; j += 8) mxv = _mm256_max_ps(mxv, _mm256_loadu_ps(sc + j));
  alignas(32) float t[8];
  _mm256_store_ps(t, mxv);
  float mx = t[0];
  for (int k = 1; k < 8; k++) mx = std::max(mx, t[k]);
  // whole blocks: the -inf slots give exp 0
  const float inv = 1.0f / exp_sub_sum_avx2(sc, limr, mx);
  const int d8 = d & ~7;
  // values: blocks of up to 8 vectors of the head, keys two at a time (independent chains)
  for (int i0 = 0; i0 < d8; i0 += 64) {
    const int nv = std::min(8, (d8 - i0) / 8);
    __m256 a0[8], a1[8];
    for (int v = 0; v < nv; v++) a0[v] = a1[v] = _mm256_setzero_ps();
    size_t jj = 0;
    for (; jj + 2 <= lim; jj += 2) {
      const __m256 p0 = _mm256_set1_ps(sc[jj]), p1 = _mm256_set1_ps(sc[jj + 1]);
      const float* v0 = vp + jj * d + i0;
      const float* v1 = v0 + d;
      for (int v = 0; v < nv; v++) {
        a0[v] = _mm256_fmadd_ps(p0, _mm256_loadu_ps(v0 + 8 * v), a0[v]);
        a1[v] = _mm256_fmadd_ps(p1, _mm256_loadu_ps(v1 + 8 * v), a1[v]);
      }
    }
    if (jj < lim) {
      const __m256 p0 = _mm256_set1_ps(sc[jj]);
      for (int v = 0; v < nv; v++) a0[v] = _mm256_fmadd_ps(p0, _mm256_loadu_ps(vp + jj * d + i0 + 8 * v), a0[v]);
    }
    const __m256 iv = _mm256_set1_ps(inv);
    for (int v = 0; v < nv; v++) _mm256_storeu_ps(o + i0 + 8 * v, _mm256_mul_ps(_mm256_add_ps(a0[v], a1[v]), iv));
  }
  for (int i = d8; i < d; i++) {
    float a = 0;
    for (size_t j = 0; j < lim; j++) a += sc[j] * vp[j * d + i];
    o[i] = a * inv;
  }
}
#endif

using HeadFn = void (*)(float*, const float*, const float*, const float*, size_t, size_t, int, float*, float*);

// Causal attention of N query tokens: token n is cache row rows[n] at slot slots[n] and attends to
// slots 0..slot of its row (with window > 0: slot − window + 1..slot); `head` computes one (token,
// head) pair.
static void attention(HeadFn head, float* out, const float* q, size_t qs, const float* kc, const float* vc, size_t cap,
                      const int32_t* rows, const int32_t* slots, size_t N, int H, int KV, int d, size_t window) {
  const int G = H / KV;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  std::vector<float> sc(cap + 8), qr(d), acc(d);
  for (size_t n = 0; n < N; n++) {
    const size_t lim = static_cast<size_t>(slots[n]) + 1;
    const size_t lo = window > 0 && lim > window ? lim - window : 0;
    for (int h = 0; h < H; h++) {
      const int g = h / G;
      const float* qh = q + n * qs + static_cast<size_t>(h) * d;
      for (int i = 0; i < d; i++) qr[i] = qh[i] * scale;
      head(out + (n * H + h) * d, qr.data(), kc + kbase(rows[n], g, KV, d, cap), vc + vbase(rows[n], g, KV, d, cap), lo, lim, d, sc.data(),
           acc.data());
    }
  }
}

// RoPE (rotate_half) on the q and k heads of each qkv row, then k, v into the caches
static void rope_store(float* qkv, size_t N, size_t W, int H, int KV, int d, const float* cos, const float* sin,
                       const int32_t* rows, const int32_t* slots, float* kc, float* vc, size_t cap) {
  const int half = d / 2;
  const size_t qw = static_cast<size_t>(H) * d, kvw = static_cast<size_t>(KV) * d;
  for (size_t n = 0; n < N; n++) {
    float* r = qkv + n * W;
    const float* c = cos + static_cast<size_t>(slots[n]) * half;
    const float* s = sin + static_cast<size_t>(slots[n]) * half;
    for (int hd = 0; hd < H + KV; hd++) {
      float* x = r + static_cast<size_t>(hd) * d;
      for (int i = 0; i < half; i++) {
        const float a = x[i], b = x[i + half];
        x[i] = a * c[i] - b * s[i];
        x[i + half] = b * c[i] + a * s[i];
      }
    }
    const float* k = r + qw;
    const float* v = k + kvw;
    for (int g = 0; g < KV; g++) {
      float* kp = kc + kbase(rows[n], g, KV, d, cap);
      for (int i = 0; i < d; i++) kp[koff(slots[n], i, d)] = k[g * d + i];
      std::memcpy(vc + vbase(rows[n], g, KV, d, cap) + static_cast<size_t>(slots[n]) * d, v + g * d, d * sizeof(float));
    }
  }
}

// x += delta (when delta is given); y = x / sqrt(mean(x²) + eps) · w
static void add_rmsnorm(float* x, const float* delta, float* y, const float* w, size_t N, size_t D, double eps) {
  for (size_t n = 0; n < N; n++) {
    float* xr = x + n * D;
    if (delta)
      for (size_t i = 0; i < D; i++) xr[i] += delta[n * D + i];
    const double r = inv_rms(xr, D, eps);
    float* yr = y + n * D;
    for (size_t i = 0; i < D; i++) yr[i] = static_cast<float>(xr[i] * r * w[i]);
  }
}

static bool g_avx2fma = false;

// ---------------------------------------------------------------- N-API glue

struct Argv {
  napi_env env;
  napi_value v[12];
  Argv(napi_env e, napi_callback_info info, size_t want) : env(e) {
    size_t argc = want;
    check(napi_get_cb_info(e, info, &argc, v, nullptr, nullptr), "get_cb_info");
    if (argc < want) throw Err{"expected " + std::to_string(want) + " arguments"};
  }
  size_t size(size_t i, const char* what) const {
    size_t n;
    if (!sd::napi::size_value(env, v[i], &n)) throw Err{std::string(what) + " must be a non-negative integer"};
    return n;
  }
  template <class T>
  T* arr(size_t i, napi_typedarray_type want, size_t* n, const char* what) const {
    void* data = sd::napi::typed_data(env, v[i], want, n);
    if (!data) throw Err{std::string(what) + (want == napi_float32_array ? ": expected a Float32Array" : ": expected an Int32Array")};
    return static_cast<T*>(data);
  }
};

// inferMatmul(out, x, wt, N, K, M, Mp)
static napi_value js_matmul(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Argv a(env, info, 7);
    size_t no, nx, nw;
    float* out = a.arr<float>(0, napi_float32_array, &no, "inferMatmul: out");
    const float* x = a.arr<float>(1, napi_float32_array, &nx, "inferMatmul: x");
    const float* wt = a.arr<float>(2, napi_float32_array, &nw, "inferMatmul: wt");
    const size_t N = a.size(3, "inferMatmul: N"), K = a.size(4, "inferMatmul: K"), M = a.size(5, "inferMatmul: M"),
                 Mp = a.size(6, "inferMatmul: Mp");
    if (Mp % 16 || Mp < M || Mp >= M + 16) throw Err{"inferMatmul: Mp must be M rounded up to a multiple of 16"};
    if (nx < N * K || no < N * M || nw != K * Mp) throw Err{"inferMatmul: array sizes do not match N, K, M, Mp"};
#ifdef SD_X86
    if (g_avx2fma) {
      mm_avx2(out, x, wt, N, K, M, Mp);
      return;
    }
#endif
    mm_base(out, x, wt, N, K, M, Mp);
  });
}

// Checks rows/slots against a cache of `nk` floats = rows·KV·d·cap; returns N.
static size_t check_rows(const int32_t* rows, size_t nr, const int32_t* slots, size_t ns, size_t nk, size_t cap,
                         size_t kvw, const char* fn) {
  if (ns != nr) throw Err{std::string(fn) + ": rows and slots differ in length"};
  if (cap == 0 || cap % 8 || kvw == 0 || nk % (cap * kvw)) throw Err{std::string(fn) + ": cache size is not rows·KV·d·cap (cap a multiple of 8)"};
  const size_t nrows = nk / (cap * kvw);
  for (size_t i = 0; i < nr; i++)
    if (rows[i] < 0 || static_cast<size_t>(rows[i]) >= nrows || slots[i] < 0 || static_cast<size_t>(slots[i]) >= cap)
      throw Err{std::string(fn) + ": row or slot out of range"};
  return nr;
}

// inferAttention3(out, q, qStride, kc, vc, cap, rows, slots, H, KV, d) and
// inferAttentionWindow(…, window): the same over the last `window` slots of each token
static napi_value attention_impl(napi_env env, napi_callback_info info, bool windowed) {
  const char* fn = windowed ? "inferAttentionWindow" : "inferAttention3";
  return guarded(env, [&] {
    Argv a(env, info, windowed ? 12 : 11);
    const std::string f(fn);
    size_t no, nq, nk, nv, nr, ns;
    float* out = a.arr<float>(0, napi_float32_array, &no, (f + ": out").c_str());
    const float* q = a.arr<float>(1, napi_float32_array, &nq, (f + ": q").c_str());
    const size_t qs = a.size(2, (f + ": qStride").c_str());
    const float* kc = a.arr<float>(3, napi_float32_array, &nk, (f + ": k cache").c_str());
    const float* vc = a.arr<float>(4, napi_float32_array, &nv, (f + ": v cache").c_str());
    const size_t cap = a.size(5, (f + ": cap").c_str());
    const int32_t* rows = a.arr<int32_t>(6, napi_int32_array, &nr, (f + ": rows").c_str());
    const int32_t* slots = a.arr<int32_t>(7, napi_int32_array, &ns, (f + ": slots").c_str());
    const size_t H = a.size(8, (f + ": H").c_str()), KV = a.size(9, (f + ": KV").c_str()), d = a.size(10, (f + ": d").c_str());
    const size_t window = windowed ? a.size(11, (f + ": window").c_str()) : 0;
    if (windowed && window == 0) throw Err{f + ": window must be positive"};
    if (H == 0 || KV == 0 || d == 0 || H % KV) throw Err{f + ": bad head counts"};
    if (nk != nv) throw Err{f + ": k and v caches differ in size"};
    const size_t N = check_rows(rows, nr, slots, ns, nk, cap, KV * d, fn);
    if (qs < H * d || (N && nq < (N - 1) * qs + H * d) || no < N * H * d) throw Err{f + ": q/out too small"};
#ifdef SD_X86
    if (g_avx2fma) {
      attention(attn_head_avx2, out, q, qs, kc, vc, cap, rows, slots, N, (int)H, (int)KV, (int)d, window);
      return;
    }
#endif
    attention(attn_head_base, out, q, qs, kc, vc, cap, rows, slots, N, (int)H, (int)KV, (int)d, window);
  });
}
static napi_value js_attention(napi_env env, napi_callback_info info) { return attention_impl(env, info, false); }
static napi_value js_attention_window(napi_env env, napi_callback_info info) { return attention_impl(env, info, true); }

// inferRopeStore3(qkv, W, H, KV, d, cos, sin, rows, slots, kc, vc, cap)
static napi_value js_rope_store(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Argv a(env, info, 12);
    size_t nx, nc, nsn, nr, ns, nk, nv;
    float* qkv = a.arr<float>(0, napi_float32_array, &nx, "inferRopeStore3: qkv");
    const size_t W = a.size(1, "inferRopeStore3: W"), H = a.size(2, "inferRopeStore3: H"), KV = a.size(3, "inferRopeStore3: KV"),
                 d = a.size(4, "inferRopeStore3: d");
    const float* cs = a.arr<float>(5, napi_float32_array, &nc, "inferRopeStore3: cos");
    const float* sn = a.arr<float>(6, napi_float32_array, &nsn, "inferRopeStore3: sin");
    const int32_t* rows = a.arr<int32_t>(7, napi_int32_array, &nr, "inferRopeStore3: rows");
    const int32_t* slots = a.arr<int32_t>(8, napi_int32_array, &ns, "inferRopeStore3: slots");
    float* kc = a.arr<float>(9, napi_float32_array, &nk, "inferRopeStore3: k cache");
    float* vc = a.arr<float>(10, napi_float32_array, &nv, "inferRopeStore3: v cache");
    const size_t cap = a.size(11, "inferRopeStore3: cap");
    if (H == 0 || KV == 0 || d == 0 || d % 2 || W != (H + 2 * KV) * d) throw Err{"inferRopeStore3: bad head sizes"};
    if (nk != nv) throw Err{"inferRopeStore3: k and v caches differ in size"};
    const size_t N = check_rows(rows, nr, slots, ns, nk, cap, KV * d, "inferRopeStore3");
    if (nx < N * W || nc != nsn || nc < cap * (d / 2)) throw Err{"inferRopeStore3: qkv or rotary tables too small"};
    rope_store(qkv, N, W, (int)H, (int)KV, (int)d, cs, sn, rows, slots, kc, vc, cap);
  });
}

// inferSwiglu(act, gu, N, I): act[n, i] = silu(gu[n, i]) · gu[n, I + i]
static napi_value js_swiglu(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Argv a(env, info, 4);
    size_t na, ng;
    float* act = a.arr<float>(0, napi_float32_array, &na, "inferSwiglu: act");
    const float* gu = a.arr<float>(1, napi_float32_array, &ng, "inferSwiglu: gu");
    const size_t N = a.size(2, "inferSwiglu: N"), I = a.size(3, "inferSwiglu: I");
    if (na < N * I || ng < 2 * N * I) throw Err{"inferSwiglu: arrays too small"};
#ifdef SD_X86
    if (g_avx2fma) {
      swiglu_fwd_avx2(act, gu, N, I);
      return;
    }
#endif
    swiglu_fwd_base(act, gu, N, I, 0);
  });
}

// inferAddRmsnorm(x, delta | null, y, w, N, eps): x += delta; y = rmsnorm(x) · w (rows of w.length)
static napi_value js_add_rmsnorm(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Argv a(env, info, 6);
    size_t nx, nd = 0, ny, nw;
    float* x = a.arr<float>(0, napi_float32_array, &nx, "inferAddRmsnorm: x");
    napi_valuetype t;
    check(napi_typeof(env, a.v[1], &t), "typeof");
    const float* delta = t == napi_null || t == napi_undefined ? nullptr : a.arr<float>(1, napi_float32_array, &nd, "inferAddRmsnorm: delta");
    float* y = a.arr<float>(2, napi_float32_array, &ny, "inferAddRmsnorm: y");
    const float* w = a.arr<float>(3, napi_float32_array, &nw, "inferAddRmsnorm: w");
    const size_t N = a.size(4, "inferAddRmsnorm: N");
    double eps;
    check(napi_get_value_double(env, a.v[5], &eps), "eps");
    if (nw == 0 || nx < N * nw || ny < N * nw || (delta && nd < N * nw)) throw Err{"inferAddRmsnorm: arrays too small"};
    add_rmsnorm(x, delta, y, w, N, nw, eps);
  });
}

const std::pair<const char*, napi_callback> FUNCTIONS[] = {
    {"inferMatmul", js_matmul}, {"inferAttention3", js_attention}, {"inferAttentionWindow", js_attention_window}, {"inferRopeStore3", js_rope_store},
    {"inferSwiglu", js_swiglu}, {"inferAddRmsnorm", js_add_rmsnorm}};

}  // namespace sdinfer

// Called from the module init in kernels.cc.
bool sd::register_infer(napi_env env, napi_value exports) {
  sdinfer::g_avx2fma = sd::nn::avx2fma_enabled();
  return sd::napi::export_functions(env, exports, sdinfer::FUNCTIONS);
}
