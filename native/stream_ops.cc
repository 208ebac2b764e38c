// Fused passes of the streamed merge's sandbox child (src/sandbox/file-merge.ts, wrappers in
// src/tensor/nd-native.ts): a task vector and its input checksum straight from the stored bytes, and
// base + merge result encoded with its non-finite count, each in one pass over memory. Bit-identical
// to the separate passes (decode, kernels.sub, checksum32; decode, kernels.axpy, encode, count).
#include <node_api.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "nd_args.h"

namespace sd {
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

// ---------------------------------------------------------------- fused streamed-merge passes

inline size_t dt_bytes(int dt) { return dt == DT_F32 ? 4 : 2; }

const size_t FTILE = 2048;  // floats per tile (a multiple of 8: checksum lanes stay aligned)

// float values of p[start, start + len) (dtype dt): the F32 bytes themselves, else decoded into buf
inline const float* tile_of(const Leaf* L, const uint8_t* p, int dt, size_t start, size_t len, float* buf) {
  if (dt == DT_F32) return reinterpret_cast<const float*>(p) + start;
  const uint16_t* h = reinterpret_cast<const uint16_t*>(p) + start;
  if (dt == DT_BF16)
    L->cvt_bf16_f32(h, buf, len);
  else
    L->cvt_f16_f32(h, buf, len);
  return buf;
}

// taskVector(out, x, xDt, base, baseDt): out = decode(x) − decode(base) (float subtraction, as
// kernels.sub after decodeToF32), in one pass over the stored bytes; returns checksum32(out), the
// sandbox's input checksum (same blocks, lanes and order as js_checksum).
napi_value js_task_vector(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info, 5);
    size_t n;
    float* out = a.f32(0, &n, "ndTaskVector out");
    const int xdt = a.dtype(2), bdt = a.dtype(4);
    const uint8_t* x = a.bytes(1, n * dt_bytes(xdt), dt_bytes(xdt), "ndTaskVector x");
    const uint8_t* b = a.bytes(3, n * dt_bytes(bdt), dt_bytes(bdt), "ndTaskVector base");
    const Leaf* L = kernel_leaf();
    const size_t nb = (n + CBLOCK - 1) / CBLOCK;
    std::vector<uint32_t> bh(nb);
    par(nb, n, [&](size_t b0, size_t b1) {
      std::vector<float> scratch(2 * FTILE);
      float* tx = scratch.data();
      float* tb = tx + FTILE;
      for (size_t blk = b0; blk < b1; blk++) {
        uint32_t l[8];
        for (int k = 0; k < 8; k++) l[k] = FNV_BASIS;
        const size_t s = blk * CBLOCK, e = std::min(n, s + CBLOCK);
        for (size_t t = s; t < e; t += FTILE) {
          const size_t len = std::min(FTILE, e - t);
          const float* xv = tile_of(L, x, xdt, t, len, tx);
          const float* bv = tile_of(L, b, bdt, t, len, tb);
          float* o = out + t;
          for (size_t i = 0; i < len; i++) o[i] = xv[i] - bv[i];
          fnv_feed(l, reinterpret_cast<const uint32_t*>(o), len);
        }
        bh[blk] = fnv_fold(l, 8);
      }
    });
    const uint32_t h = fnv_fold(bh.data(), nb);
    napi_value r;
    napi::check(napi_create_double(env, static_cast<double>(h), &r), "create_double");
    return r;
  });
}

// addEncode(out, outDt, base, baseDt, r): out = encode(decode(base) + r) with the sum as
// kernels.axpy(base, 1, r) rounds it (the float32 sum), in one pass; returns
// [number of encoded values with an all-ones exponent (NaN/±Inf, or outside the 16-bit range),
// index of the first or -1].
napi_value js_add_encode(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info, 5);
    const int odt = a.dtype(1), bdt = a.dtype(3);
    size_t n;
    const float* r = a.f32(4, &n, "ndAddEncode r");
    uint8_t* out = const_cast<uint8_t*>(a.bytes(0, n * dt_bytes(odt), dt_bytes(odt), "ndAddEncode out"));
    const uint8_t* b = a.bytes(2, n * dt_bytes(bdt), dt_bytes(bdt), "ndAddEncode base");
    const Leaf* L = kernel_leaf();
    const size_t nb = (n + CBLOCK - 1) / CBLOCK;
    std::vector<size_t> cnt(nb, 0), first(nb, SIZE_MAX);
    par(nb, n, [&](size_t b0, size_t b1) {
      std::vector<float> scratch(2 * FTILE);
      float* tb = scratch.data();
      float* sum = tb + FTILE;
      for (size_t blk = b0; blk < b1; blk++) {
        size_t c = 0, f = SIZE_MAX;
        const size_t s = blk * CBLOCK, e = std::min(n, s + CBLOCK);
        for (size_t t = s; t < e; t += FTILE) {
          const size_t len = std::min(FTILE, e - t);
          const float* bv = tile_of(L, b, bdt, t, len, tb);
          const float* rv = r + t;
          // kernels.axpy(base, 1, r) rounds the double sum to float32 once; that is the float32 sum
          // itself (a double holds more than 2 × 24 + 2 bits, so rounding twice changes nothing)
          for (size_t i = 0; i < len; i++) sum[i] = bv[i] + rv[i];
          if (odt == DT_F32) {
            std::memcpy(reinterpret_cast<float*>(out) + t, sum, len * 4);
            const uint32_t* u = reinterpret_cast<const uint32_t*>(sum);
            for (size_t i = 0; i < len; i++)
              if ((u[i] & 0x7f800000u) == 0x7f800000u) {
                if (f == SIZE_MAX) f = t + i;
                c++;
              }
          } else {
            uint16_t* h = reinterpret_cast<uint16_t*>(out) + t;
            uint16_t mask;
            if (odt == DT_BF16) {
              L->cvt_f32_bf16(sum, h, len);
              mask = 0x7f80;
            } else {
              L->cvt_f32_f16(sum, h, len);
              mask = 0x7c00;
            }
            for (size_t i = 0; i < len; i++)
              if ((h[i] & mask) == mask) {
                if (f == SIZE_MAX) f = t + i;
                c++;
              }
          }
        }
        cnt[blk] = c;
        first[blk] = f;
      }
    });
    return count_first(env, cnt.data(), first.data(), nb);
  });
}

const std::pair<const char*, napi_callback> FUNCTIONS[] = {{"ndTaskVector", js_task_vector}, {"ndAddEncode", js_add_encode}};

}  // namespace

// Called from register_nd (nd_ops.cc).
bool register_stream_ops(napi_env env, napi_value exports) { return napi::export_functions(env, exports, FUNCTIONS); }

}  // namespace sd
