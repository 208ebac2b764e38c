// Native loops of the sandbox's n-d array library (src/tensor/nd-*.ts, wrappers in
// src/tensor/nd-native.ts): element-wise binary ops over row-broadcast layouts, where, unary ops,
// grouped reductions (sum, sum of squares, mean, 2-norm, amax, amin), a blocked input checksum and a
// non-finite count. Every loop computes exactly what the JS loop it replaces computes: a float32
// input widened to double, the same double operations in the same order (no FMA contraction: the
// build uses -ffp-contract=off), rounded once to float32 on store; reductions add each group's
// elements in the JS visiting order, one group per thread, so sums are bit-identical too.
#include <node_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <vector>

#include "nd_args.h"

namespace sd {
bool register_stream_ops(napi_env env, napi_value exports);  // stream_ops.cc

namespace {
using napi::Err;
using napi::guarded;
using nd::Args;
using nd::CBLOCK;
using nd::par;
using nd::FNV_BASIS;
using nd::fnv_feed;
using nd::fnv_fold;
using nd::count_first;


// ---------------------------------------------------------------- binary ops

// SCALE: x · alpha (alpha a double: a JS number, not rounded to float32 first); b unused
enum BinOp { ADD = 0, SUB, MUL, DIV, MAXIMUM, MINIMUM, GT, GE, LT, LE, EQ, SCALE, NBIN };

template <int OP>
inline float bin(float xf, float yf, double alpha) {
  const double x = xf, y = yf;
  if constexpr (OP == ADD) return static_cast<float>(x + alpha * y);
  if constexpr (OP == SUB) return static_cast<float>(x - alpha * y);
  if constexpr (OP == MUL) return static_cast<float>(x * y);
  if constexpr (OP == DIV) return static_cast<float>(x / y);
  if constexpr (OP == MAXIMUM || OP == MINIMUM) {
    // JS: NaN if either is NaN, else Math.max / Math.min (+0 > -0 for max, -0 < +0 for min)
    if (x != x || y != y) return std::numeric_limits<float>::quiet_NaN();
    if (x == y) return static_cast<float>((OP == MAXIMUM) == std::signbit(x) ? y : x);
    return static_cast<float>((OP == MAXIMUM) == (x > y) ? x : y);
  }
  if constexpr (OP == GT) return x > y ? 1.0f : 0.0f;
  if constexpr (OP == GE) return x >= y ? 1.0f : 0.0f;
  if constexpr (OP == LT) return x < y ? 1.0f : 0.0f;
  if constexpr (OP == LE) return x <= y ? 1.0f : 0.0f;
  if constexpr (OP == EQ) return x == y ? 1.0f : 0.0f;
  if constexpr (OP == SCALE) return static_cast<float>(x * alpha);
  return 0.0f;
}

// one row: out[j] = op(a[j*sa], b[j*sb]) for j in [0, len), sa and sb in {0, 1}
template <int OP>
void bin_row(float* o, const float* a, const float* b, size_t len, int sa, int sb, double alpha) {
  if (sa && sb) {
    for (size_t j = 0; j < len; j++) o[j] = bin<OP>(a[j], b[j], alpha);
  } else if (sa) {
    const float y = b[0];
    for (size_t j = 0; j < len; j++) o[j] = bin<OP>(a[j], y, alpha);
  } else if (sb) {
    const float x = a[0];
    for (size_t j = 0; j < len; j++) o[j] = bin<OP>(x, b[j], alpha);
  } else {
    const float v = bin<OP>(a[0], b[0], alpha);
    for (size_t j = 0; j < len; j++) o[j] = v;
  }
}

using RowFn = void (*)(float*, const float*, const float*, size_t, int, int, double);
const RowFn BIN_ROWS[NBIN] = {bin_row<ADD>, bin_row<SUB>, bin_row<MUL>,     bin_row<DIV>, bin_row<MAXIMUM>, bin_row<MINIMUM>,
                              bin_row<GT>,  bin_row<GE>,  bin_row<LT>,      bin_row<LE>,  bin_row<EQ>, bin_row<SCALE>};

// binary(op, alpha, out, a, b, inner, sa, sb, offA, offB): out is rows × inner; row r reads a from
// offA[r] (stride sa along the row) and b from offB[r]; offsets null = 0 for every row.
napi_value js_binary(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info, 10);
    const int op = static_cast<int>(a.num(0));
    if (op < 0 || op >= NBIN) throw Err{"ndBinary: unknown op"};
    const double alpha = a.num(1);
    size_t n, na, nb, noa, nob;
    float* out = a.f32(2, &n, "ndBinary out");
    const float* pa = a.f32(3, &na, "ndBinary a");
    const float* pb = a.f32(4, &nb, "ndBinary b");
    const size_t inner = a.size(5, "ndBinary inner");
    const int sa = static_cast<int>(a.num(6)), sb = static_cast<int>(a.num(7));
    const uint32_t* oa = a.u32(8, &noa, "ndBinary offA");
    const uint32_t* ob = a.u32(9, &nob, "ndBinary offB");
    if (n == 0) return static_cast<napi_value>(nullptr);
    if (inner == 0 || n % inner != 0) throw Err{"ndBinary: output length is not a multiple of the row length"};
    if ((sa != 0 && sa != 1) || (sb != 0 && sb != 1)) throw Err{"ndBinary: strides must be 0 or 1"};
    const size_t rows = n / inner;
    if ((oa && noa != rows) || (ob && nob != rows)) throw Err{"ndBinary: one offset per row required"};
    if (rows > 1 && (!oa || !ob)) throw Err{"ndBinary: offsets required for more than one row"};
    // bounds: every row's last read must stay inside its input
    const size_t la = sa ? inner : 1, lb = sb ? inner : 1;
    for (size_t r = 0; r < rows; r++) {
      if ((oa ? oa[r] : 0) + la > na || (ob ? ob[r] : 0) + lb > nb) throw Err{"ndBinary: a row reads past its input"};
    }
    const RowFn fn = BIN_ROWS[op];
    if (rows == 1) {
      const size_t a0 = oa ? oa[0] : 0, b0 = ob ? ob[0] : 0;
      par(inner, inner, [&](size_t s, size_t e) { fn(out + s, pa + a0 + s * sa, pb + b0 + s * sb, e - s, sa, sb, alpha); });
    } else {
      par(rows, n, [&](size_t r0, size_t r1) {
        for (size_t r = r0; r < r1; r++) fn(out + r * inner, pa + oa[r], pb + ob[r], inner, sa, sb, alpha);
      });
    }
    return static_cast<napi_value>(nullptr);
  });
}

// where(out, c, a, b, sc, sa, sb): out[i] = c[i*sc] != 0 ? a[i*sa] : b[i*sb]
napi_value js_where(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info, 7);
    size_t n, nc, na, nb;
    float* out = a.f32(0, &n, "ndWhere out");
    const float* c = a.f32(1, &nc, "ndWhere cond");
    const float* x = a.f32(2, &na, "ndWhere a");
    const float* y = a.f32(3, &nb, "ndWhere b");
    const size_t sc = a.size(4, "sc"), sa = a.size(5, "sa"), sb = a.size(6, "sb");
    if (sc > 1 || sa > 1 || sb > 1) throw Err{"ndWhere: strides must be 0 or 1"};
    if (n == 0) return static_cast<napi_value>(nullptr);
    if (nc < (sc ? n : 1) || na < (sa ? n : 1) || nb < (sb ? n : 1)) throw Err{"ndWhere: input too short"};
    par(n, n, [&](size_t s, size_t e) {
      for (size_t i = s; i < e; i++) out[i] = c[i * sc] != 0.0f ? x[i * sa] : y[i * sb];
    });
    return static_cast<napi_value>(nullptr);
  });
}

// ---------------------------------------------------------------- unary ops

enum UnOp { ABS = 0, NEG, SIGN, SQRT, RELU, SQUARE, CLAMP, COPY, NUN };

template <int OP>
void un_loop(float* o, const float* x, size_t n, double lo, double hi) {
  if constexpr (OP == COPY) {  // the bits, NaN payloads included (TypedArray.set)
    std::memcpy(o, x, n * 4);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    const double v = x[i];
    if constexpr (OP == ABS) o[i] = static_cast<float>(std::fabs(v));
    if constexpr (OP == NEG) o[i] = static_cast<float>(-v);
    if constexpr (OP == SIGN) o[i] = v > 0 ? 1.0f : v < 0 ? -1.0f : v == 0 ? 0.0f : std::numeric_limits<float>::quiet_NaN();
    if constexpr (OP == SQRT) o[i] = static_cast<float>(std::sqrt(v));
    if constexpr (OP == RELU) o[i] = v > 0 ? static_cast<float>(v) : 0.0f;
    if constexpr (OP == SQUARE) o[i] = static_cast<float>(v * v);
    if constexpr (OP == CLAMP) o[i] = static_cast<float>(v < lo ? lo : v > hi ? hi : v);
  }
}
using UnFn = void (*)(float*, const float*, size_t, double, double);
const UnFn UN_LOOPS[NUN] = {un_loop<ABS>, un_loop<NEG>, un_loop<SIGN>, un_loop<SQRT>, un_loop<RELU>, un_loop<SQUARE>, un_loop<CLAMP>, un_loop<COPY>};

// unary(op, out, x, lo, hi)
napi_value js_unary(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info, 5);
    const int op = static_cast<int>(a.num(0));
    if (op < 0 || op >= NUN) throw Err{"ndUnary: unknown op"};
    size_t n, nx;
    float* out = a.f32(1, &n, "ndUnary out");
    const float* x = a.f32(2, &nx, "ndUnary x");
    if (n != nx) throw Err{"ndUnary: length mismatch"};
    const double lo = a.num(3), hi = a.num(4);
    const UnFn fn = UN_LOOPS[op];
    par(n, n, [&](size_t s, size_t e) { fn(out + s, x + s, e - s, lo, hi); });
    return static_cast<napi_value>(nullptr);
  });
}

// ---------------------------------------------------------------- grouped reductions

enum RedKind { R_SUM = 0, R_SUMSQ, R_MEAN, R_NORM2, R_AMAX, R_AMIN };

inline float finish(int kind, double s, size_t size) {
  if (kind == R_MEAN) return static_cast<float>(s / static_cast<double>(size));
  if (kind == R_NORM2) return static_cast<float>(std::sqrt(s));
  return static_cast<float>(s);
}

// JS: v !== v → NaN (sticky); else v > acc (max) / v < acc (min) replaces acc
template <bool MAX>
inline float ext_step(float acc, float v) {
  if (v != v) return std::numeric_limits<float>::quiet_NaN();
  return (MAX ? v > acc : v < acc) ? v : acc;
}

// The leading layout: group g is row(0)[g], row(1)[g], …, row(size − 1)[g]. Tiles of 256 groups,
// rows visited in order (every group's elements in index order), one tile per thread at a time.
template <class Row>
void leading_reduce(int kind, float* out, size_t G, size_t size, size_t work, Row row) {
  const bool ext = kind == R_AMAX || kind == R_AMIN;
  const bool sq = kind == R_SUMSQ || kind == R_NORM2;
  const size_t T = 256;
  par((G + T - 1) / T, work, [&](size_t t0, size_t t1) {
    double s[T];
    float m[T];
    for (size_t t = t0; t < t1; t++) {
      const size_t g0 = t * T, len = std::min(T, G - g0);
      if (ext) {
        for (size_t j = 0; j < len; j++) m[j] = kind == R_AMAX ? -INFINITY : INFINITY;
        for (size_t r = 0; r < size; r++) {
          const float* p = row(r) + g0;
          if (kind == R_AMAX)
            for (size_t j = 0; j < len; j++) m[j] = ext_step<true>(m[j], p[j]);
          else
            for (size_t j = 0; j < len; j++) m[j] = ext_step<false>(m[j], p[j]);
        }
        std::memcpy(out + g0, m, len * 4);
        continue;
      }
      for (size_t j = 0; j < len; j++) s[j] = 0;
      for (size_t r = 0; r < size; r++) {
        const float* p = row(r) + g0;
        if (sq)
          for (size_t j = 0; j < len; j++) s[j] += static_cast<double>(p[j]) * static_cast<double>(p[j]);
        else
          for (size_t j = 0; j < len; j++) s[j] += static_cast<double>(p[j]);
      }
      for (size_t j = 0; j < len; j++) out[g0 + j] = finish(kind, s[j], size);
    }
  });
}

// reduce(kind, out, x, groups, size, leading): group g is x[g*size .. (g+1)*size) (leading = 0) or
// x[g], x[g+groups], … (leading = 1); elements are visited in increasing index order per group.
napi_value js_reduce(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info, 6);
    const int kind = static_cast<int>(a.num(0));
    if (kind < R_SUM || kind > R_AMIN) throw Err{"ndReduce: unknown kind"};
    size_t no, n;
    float* out = a.f32(1, &no, "ndReduce out");
    const float* x = a.f32(2, &n, "ndReduce x");
    const size_t G = a.size(3, "groups"), size = a.size(4, "size");
    const bool leading = a.num(5) != 0;
    if (no != G || G * size != n) throw Err{"ndReduce: groups × size must equal the input length, out one per group"};
    if (G == 0) return static_cast<napi_value>(nullptr);
    const bool ext = kind == R_AMAX || kind == R_AMIN;
    if (ext && size == 0) throw Err{"ndReduce: amax/amin of an empty tensor"};
    const bool sq = kind == R_SUMSQ || kind == R_NORM2;
    if (!leading) {
      par(G, n, [&](size_t g0, size_t g1) {
        for (size_t g = g0; g < g1; g++) {
          const float* p = x + g * size;
          if (ext) {
            float acc = kind == R_AMAX ? -INFINITY : INFINITY;
            if (kind == R_AMAX)
              for (size_t i = 0; i < size; i++) acc = ext_step<true>(acc, p[i]);
            else
              for (size_t i = 0; i < size; i++) acc = ext_step<false>(acc, p[i]);
            out[g] = acc;
            continue;
          }
          double s = 0;
          if (sq)
            for (size_t i = 0; i < size; i++) s += static_cast<double>(p[i]) * static_cast<double>(p[i]);
          else
            for (size_t i = 0; i < size; i++) s += static_cast<double>(p[i]);
          out[g] = finish(kind, s, size);
        }
      });
      return static_cast<napi_value>(nullptr);
    }
    leading_reduce(kind, out, G, size, n, [&](size_t r) { return x + r * G; });
    return static_cast<napi_value>(nullptr);
  });
}

// reduceParts(kind, out, parts): the leading-layout reduction of the stack of `parts` (each of
// out's length) without the stack's copy: group g is parts[0][g], parts[1][g], … in that order,
// exactly the visiting order of reduce(kind, out, stack, G, parts.length, leading = 1).
napi_value js_reduce_parts(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info, 3);
    const int kind = static_cast<int>(a.num(0));
    if (kind < R_SUM || kind > R_AMIN) throw Err{"ndReduceParts: unknown kind"};
    size_t G;
    float* out = a.f32(1, &G, "ndReduceParts out");
    bool is_array = false;
    napi::check(napi_is_array(env, a.v[2], &is_array), "is_array");
    if (!is_array) throw Err{"ndReduceParts: parts must be an array of Float32Arrays"};
    uint32_t k = 0;
    napi::check(napi_get_array_length(env, a.v[2], &k), "array_length");
    if (k == 0) throw Err{"ndReduceParts: no parts"};
    std::vector<const float*> rows(k);
    for (uint32_t r = 0; r < k; r++) {
      napi_value e;
      napi::check(napi_get_element(env, a.v[2], r, &e), "get_element");
      size_t len;
      void* p = napi::typed_data(env, e, napi_float32_array, &len);
      if ((!p && len != 0) || len != G) throw Err{"ndReduceParts: every part must be a Float32Array of the output's length"};
      rows[r] = static_cast<const float*>(p);
    }
    if (G == 0) return static_cast<napi_value>(nullptr);
    leading_reduce(kind, out, G, k, G * k, [&](size_t r) { return rows[r]; });
    return static_cast<napi_value>(nullptr);
  });
}

// ---------------------------------------------------------------- top-k mask

// topkMask(out, x, thr, k): out[i] = 1 where |x[i]| > thr, and for the first k − #{|x| > thr}
// entries (in index order) with |x[i]| == thr; else 0 (NaN never kept). Two passes: counts per
// thread range, then each range keeps its share of the ties (the ranges before it take theirs first).
napi_value js_topk_mask(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info, 4);
    size_t n, nx;
    float* out = a.f32(0, &n, "ndTopkMask out");
    const float* x = a.f32(1, &nx, "ndTopkMask x");
    if (n != nx) throw Err{"ndTopkMask: length mismatch"};
    const double thr = a.num(2);
    const double k = a.num(3);
    const int nt = std::max(1, std::min<int>(kernel_threads(n), static_cast<int>(std::max<size_t>(n, 1))));
    std::vector<size_t> gt(nt, 0), eq(nt, 0);
    auto range = [&](size_t t, size_t* s, size_t* e) {
      *s = n * t / nt;
      *e = n * (t + 1) / nt;
    };
    par(static_cast<size_t>(nt), n, [&](size_t t0, size_t t1) {
      for (size_t t = t0; t < t1; t++) {
        size_t s, e, g = 0, q = 0;
        range(t, &s, &e);
        for (size_t i = s; i < e; i++) {
          const double v = std::fabs(static_cast<double>(x[i]));
          g += v > thr;
          q += v == thr;
        }
        gt[t] = g;
        eq[t] = q;
      }
    });
    double budget = k;
    for (int t = 0; t < nt; t++) budget -= static_cast<double>(gt[t]);
    std::vector<size_t> share(nt, 0);
    for (int t = 0; t < nt; t++) {
      const double take = std::max(0.0, std::min(budget, static_cast<double>(eq[t])));
      share[t] = static_cast<size_t>(take);
      budget -= take;
    }
    par(static_cast<size_t>(nt), n, [&](size_t t0, size_t t1) {
      for (size_t t = t0; t < t1; t++) {
        size_t s, e, left = share[t];
        range(t, &s, &e);
        for (size_t i = s; i < e; i++) {
          const double v = std::fabs(static_cast<double>(x[i]));
          if (v > thr) {
            out[i] = 1.0f;
          } else if (v == thr && left > 0) {
            left--;
            out[i] = 1.0f;
          } else {
            out[i] = 0.0f;
          }
        }
      }
    });
    return static_cast<napi_value>(nullptr);
  });
}

// ---------------------------------------------------------------- checks


// FNV-1a in 8 interleaved lanes (word i in lane i mod 8) over each 65536-element block, the lanes
// then the block hashes combined in order the same way (the same value as checksum32 in src/tensor/nd-native.ts, whatever the thread count)
napi_value js_checksum(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info, 1);
    size_t n;
    const float* x = a.f32(0, &n, "ndChecksum x");
    const uint32_t* u = reinterpret_cast<const uint32_t*>(x);
    const size_t nb = (n + CBLOCK - 1) / CBLOCK;
    std::vector<uint32_t> bh(nb);
    par(nb, n, [&](size_t b0, size_t b1) {
      for (size_t b = b0; b < b1; b++) {
        uint32_t l[8];
        for (int k = 0; k < 8; k++) l[k] = FNV_BASIS;
        const size_t s = b * CBLOCK, e = std::min(n, (b + 1) * CBLOCK);
        fnv_feed(l, u + s, e - s);
        bh[b] = fnv_fold(l, 8);
      }
    });
    const uint32_t h = fnv_fold(bh.data(), nb);
    napi_value r;
    napi::check(napi_create_double(env, static_cast<double>(h), &r), "create_double");
    return r;
  });
}

// nonFinite(x): [count of NaN/±Inf, first index or -1]
napi_value js_non_finite(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info, 1);
    size_t n;
    const float* x = a.f32(0, &n, "ndNonFinite x");
    const uint32_t* u = reinterpret_cast<const uint32_t*>(x);
    const int nt = std::max(1, kernel_threads(n));
    std::vector<size_t> cnt(nt, 0), first(nt, SIZE_MAX);
    par(static_cast<size_t>(nt), n, [&](size_t t0, size_t t1) {
      for (size_t t = t0; t < t1; t++) {
        const size_t s = n * t / nt, e = n * (t + 1) / nt;
        size_t c = 0, f = SIZE_MAX;
        for (size_t i = s; i < e; i++)
          if ((u[i] & 0x7f800000u) == 0x7f800000u) {
            if (f == SIZE_MAX) f = i;
            c++;
          }
        cnt[t] = c;
        first[t] = f;
      }
    });
    return count_first(env, cnt.data(), first.data(), cnt.size());
  });
}

// overflow16(u16, mask): number of 16-bit values with every bit of mask set (an all-ones exponent:
// 0x7f80 for bf16, 0x7c00 for f16)
napi_value js_overflow16(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info, 2);
    size_t n;
    void* p = napi::typed_data(env, a.v[0], napi_uint16_array, &n);
    if (!p && n != 0) throw Err{"ndOverflow16: expected a Uint16Array"};
    const uint16_t* u = static_cast<const uint16_t*>(p);
    const uint16_t mask = static_cast<uint16_t>(a.num(1));
    const int nt = std::max(1, kernel_threads(n));
    std::vector<size_t> cnt(nt, 0);
    par(static_cast<size_t>(nt), n, [&](size_t t0, size_t t1) {
      for (size_t t = t0; t < t1; t++) {
        size_t c = 0;
        for (size_t i = n * t / nt, e = n * (t + 1) / nt; i < e; i++) c += (u[i] & mask) == mask;
        cnt[t] = c;
      }
    });
    size_t c = 0;
    for (int t = 0; t < nt; t++) c += cnt[t];
    napi_value r;
    napi::check(napi_create_double(env, static_cast<double>(c), &r), "create_double");
    return r;
  });
}

const std::pair<const char*, napi_callback> FUNCTIONS[] = {
    {"ndBinary", js_binary}, {"ndWhere", js_where},       {"ndUnary", js_unary},
    {"ndReduce", js_reduce}, {"ndChecksum", js_checksum}, {"ndNonFinite", js_non_finite},
    {"ndOverflow16", js_overflow16}, {"ndTopkMask", js_topk_mask}, {"ndReduceParts", js_reduce_parts}};

}  // namespace

// Called from the module init in kernels.cc.
bool register_nd(napi_env env, napi_value exports) { return napi::export_functions(env, exports, FUNCTIONS) && register_stream_ops(env, exports); }

}  // namespace sd
