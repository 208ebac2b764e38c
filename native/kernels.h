// Leaf loops of the selfdev kernels, compiled twice: once for the build's baseline ISA
// (x86-64-v2: SSE4.2) and once for AVX2+F16C, chosen at run time (see kernels.cc).
// Every loop keeps the exact operation order of the JS reference in src/tensor/kernels.ts:
// float ops stay float, double ops stay double, no FMA contraction (-ffp-contract=off), and
// reductions use a fixed 8-lane accumulator structure so the result does not depend on the ISA.
#pragma once
#include <cstddef>
#include <cstdint>

namespace sd {

enum DT : int { DT_F32 = 0, DT_BF16 = 1, DT_F16 = 2 };

struct Leaf {
  void (*cvt_bf16_f32)(const uint16_t* s, float* d, size_t n);
  void (*cvt_f16_f32)(const uint16_t* s, float* d, size_t n);
  void (*cvt_f32_bf16)(const float* s, uint16_t* d, size_t n);
  void (*cvt_f32_f16)(const float* s, uint16_t* d, size_t n);
  void (*axpy_d)(float* y, double a, const float* x, size_t n);
  void (*scale_d)(float* x, double a, size_t n);
  void (*sub_f)(float* out, const float* a, const float* b, size_t n);
  void (*delta_axpy)(float* acc, float w, const float* x, const float* b, size_t n);
  double (*red_l1)(const float* x, size_t n);
  double (*red_l2sq)(const float* x, size_t n);
  double (*red_dot)(const float* a, const float* b, size_t n);
  // max |x| over the range; sets *nan when a NaN is seen
  float (*red_absmax)(const float* x, size_t n, int* nan);
  // Bernoulli keep of x[i] iff (hash(seed, start+i) >> 8) < c, else +0; out may alias x
  void (*bern)(const float* x, float* out, size_t n, uint32_t start, uint32_t seed, uint32_t c);
  // bits[i/8] bit i%8 = (hash(seed, start+i) >> 8) < c, for i < n (start, and so bits, byte-aligned)
  void (*bern_bits)(size_t n, uint32_t start, uint32_t seed, uint32_t c, uint8_t* bits);
  // out[i] = bit i of bits ? x[i] : +0 (out may alias x)
  void (*apply_bits)(const float* x, const uint8_t* bits, float* out, size_t n);
  // in place top-k mask apply: keep iff (key > thr && key <= 0x7f800000) || (key == thr && idx <= cut)
  void (*topk_apply)(float* x, size_t n, int64_t start, uint32_t thr, int64_t cut);
  // d[i] = x[i] - b[i] (float)
  void (*sub_inplace)(float* x, const float* b, size_t n);
  // appends (start+i, key) for every i whose key = bits(|v[i]|) is in [lo, hi) (hi <= 0x7f800001);
  // returns the number appended (index order)
  size_t (*collect)(const float* v, size_t n, uint32_t start, uint32_t lo, uint32_t hi, uint32_t* idx, uint32_t* key);
  // gtaMerge tail for one tile: wd holds m tiles (stride apart) of masked deltas, overwritten by
  // the weighted deltas; S, M, D are scratch tiles; out = b + lam * R (b omitted when bp == null)
  void (*combine)(float* wd, size_t stride, size_t m, const float* w, const float* r, const float* bp, float* S,
                  float* M, float* D, float* out, size_t n, int consensus, int normalize, float dnone, float lam);
};

extern const Leaf leaf_base;
extern const Leaf leaf_avx2;

// splitmix-style counter hash shared with uniformAt() in kernels.ts (indices < 2^32)
static inline uint32_t hash_at(uint32_t seed, uint32_t i) {
  uint32_t h = seed ^ (i * 0x9e3779b1u);
  h = (h ^ (h >> 16)) * 0x85ebca6bu;
  h = (h ^ (h >> 13)) * 0xc2b2ae35u;
  return h ^ (h >> 16);
}

}  // namespace sd
