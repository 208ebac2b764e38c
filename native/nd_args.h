// Shared by the n-d op files (nd_ops.cc, stream_ops.cc): the thread split and the argument
// reader of their N-API entry points.
#pragma once
#include <node_api.h>

#include <cstdint>
#include <functional>
#include <string>

#include "kernels.h"
#include "napi_util.h"
#include "pool.h"

namespace sd {
int kernel_threads(size_t n);  // kernels.cc: threads for an array of n elements
const Leaf* kernel_leaf();     // kernels.cc: the leaf loops in use (baseline or AVX2)

namespace nd {
using napi::Err;

// checksum blocks (src/tensor/nd-native.ts checksum32): 65536 elements
const size_t CBLOCK = 1u << 16;

// The checksum's FNV-1a in 8 interleaved lanes (src/tensor/nd-native.ts checksum32): fnv_feed adds a
// run of words (word i of the run in lane i mod 8, so a run must start at a multiple of 8 within its
// block), fnv_fold combines words in order (a block's lanes, then the blocks' hashes).
const uint32_t FNV_BASIS = 0x811c9dc5u;
const uint32_t FNV_PRIME = 16777619u;
inline void fnv_feed(uint32_t l[8], const uint32_t* u, size_t len) {
  size_t i = 0;
  for (; i + 8 <= len; i += 8)
    for (int k = 0; k < 8; k++) l[k] = (l[k] ^ u[i + k]) * FNV_PRIME;
  for (; i < len; i++) l[i & 7] = (l[i & 7] ^ u[i]) * FNV_PRIME;
}
inline uint32_t fnv_fold(const uint32_t* v, size_t n) {
  uint32_t h = FNV_BASIS;
  for (size_t k = 0; k < n; k++) h = (h ^ v[k]) * FNV_PRIME;
  return h;
}

// [total count, first index or -1] of per-range counts and first indices (SIZE_MAX: none), ranges
// in index order: the JS array the counting entry points return
inline napi_value count_first(napi_env env, const size_t* cnt, const size_t* first, size_t n) {
  size_t c = 0, f = SIZE_MAX;
  for (size_t k = 0; k < n; k++) {
    c += cnt[k];
    if (f == SIZE_MAX) f = first[k];
  }
  napi_value arr, v0, v1;
  napi::check(napi_create_array_with_length(env, 2, &arr), "array");
  napi::check(napi_create_double(env, static_cast<double>(c), &v0), "double");
  napi::check(napi_create_double(env, f == SIZE_MAX ? -1.0 : static_cast<double>(f), &v1), "double");
  napi::check(napi_set_element(env, arr, 0, v0), "set");
  napi::check(napi_set_element(env, arr, 1, v1), "set");
  return arr;
}

// f(begin, end) over [0, n) split into one contiguous range per thread
template <class F>
inline void par(size_t n, size_t work, F f) {
  int nt = kernel_threads(work);
  if (nt > static_cast<int>(n)) nt = static_cast<int>(n);
  if (nt <= 1) {
    if (n > 0) f(size_t(0), n);
    return;
  }
  std::function<void(int)> job = [&](int t) {
    size_t b = n * static_cast<size_t>(t) / nt;
    size_t e = n * static_cast<size_t>(t + 1) / nt;
    if (b < e) f(b, e);
  };
  Pool::get().run(nt, job);
}

struct Args {
  napi_env env;
  napi_value v[12];
  size_t argc = 12;
  Args(napi_env e, napi_callback_info info, size_t want) : env(e) {
    napi::check(napi_get_cb_info(e, info, &argc, v, nullptr, nullptr), "cb_info");
    if (argc < want) throw Err{"too few arguments"};
  }
  double num(int i) const {
    double d;
    if (napi_get_value_double(env, v[i], &d) != napi_ok) throw Err{"expected a number"};
    return d;
  }
  size_t size(int i, const char* what) const {
    size_t s;
    if (!napi::size_value(env, v[i], &s)) throw Err{std::string(what) + ": expected a non-negative integer"};
    return s;
  }
  float* f32(int i, size_t* n, const char* what) const {
    void* p = napi::typed_data(env, v[i], napi_float32_array, n);
    if (!p && *n != 0) throw Err{std::string(what) + ": expected a Float32Array"};
    if (!p) {
      bool is_ta = false;
      napi::check(napi_is_typedarray(env, v[i], &is_ta), "is_typedarray");
      if (!is_ta) throw Err{std::string(what) + ": expected a Float32Array"};
    }
    return static_cast<float*>(p);
  }
  // the bytes of a Uint8Array of exactly `want` bytes, aligned to `align`
  const uint8_t* bytes(int i, size_t want, size_t align, const char* what) const {
    size_t n;
    void* p = napi::typed_data(env, v[i], napi_uint8_array, &n);
    if (!p && n != 0) throw Err{std::string(what) + ": expected a Uint8Array"};
    if (n != want) throw Err{std::string(what) + ": " + std::to_string(n) + " bytes, expected " + std::to_string(want)};
    if (p && reinterpret_cast<uintptr_t>(p) % align != 0) throw Err{std::string(what) + ": bytes not aligned to their dtype"};
    return static_cast<const uint8_t*>(p);
  }
  int dtype(int i) const {
    const double d = num(i);
    if (d != DT_F32 && d != DT_BF16 && d != DT_F16) throw Err{"unknown dtype code"};
    return static_cast<int>(d);
  }
  const uint32_t* u32(int i, size_t* n, const char* what) const {
    napi_valuetype t;
    napi::check(napi_typeof(env, v[i], &t), "typeof");
    if (t == napi_null || t == napi_undefined) {
      *n = 0;
      return nullptr;
    }
    void* p = napi::typed_data(env, v[i], napi_uint32_array, n);
    if (!p && *n != 0) throw Err{std::string(what) + ": expected a Uint32Array or null"};
    return static_cast<const uint32_t*>(p);
  }
};

}  // namespace nd
}  // namespace sd
