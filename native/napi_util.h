// N-API glue shared by the inference (infer.cc) and training (train.cc) kernels: a C++ error type that
// becomes a JS exception ("selfdev_native: …"), and the readers of typed-array and size arguments.
#pragma once
#include <node_api.h>

#include <cmath>
#include <exception>
#include <string>
#include <type_traits>
#include <utility>

namespace sd {
namespace napi {

struct Err {
  std::string msg;
};

inline void check(napi_status s, const char* what) {
  if (s != napi_ok) throw Err{std::string("napi call failed: ") + what};
}

// Runs f (returning a napi_value, or nothing) with C++ errors turned into JS exceptions.
template <class F>
napi_value guarded(napi_env env, F f) {
  try {
    if constexpr (std::is_void_v<decltype(f())>) {
      f();
      return nullptr;
    } else {
      return f();
    }
  } catch (const Err& e) {
    napi_throw_error(env, nullptr, ("selfdev_native: " + e.msg).c_str());
  } catch (const std::exception& e) {
    napi_throw_error(env, nullptr, (std::string("selfdev_native: ") + e.what()).c_str());
  }
  return nullptr;
}

// The data and length of `v` when it is a typed array of type `want`, else nullptr.
inline void* typed_data(napi_env env, napi_value v, napi_typedarray_type want, size_t* length) {
  bool is_ta = false;
  check(napi_is_typedarray(env, v, &is_ta), "is_typedarray");
  if (!is_ta) return nullptr;
  napi_typedarray_type type;
  void* data;
  napi_value ab;
  size_t off;
  check(napi_get_typedarray_info(env, v, &type, length, &data, &ab, &off), "typedarray_info");
  return type == want ? data : nullptr;
}

// Whether `v` is a non-negative integer below 1e15 (then stored in *out).
inline bool size_value(napi_env env, napi_value v, size_t* out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0) || d != std::floor(d) || d > 1e15) return false;
  *out = static_cast<size_t>(d);
  return true;
}

// Creates the functions of `fns` (name, callback) as properties of `exports`.
template <size_t N>
bool export_functions(napi_env env, napi_value exports, const std::pair<const char*, napi_callback> (&fns)[N]) {
  for (const auto& f : fns) {
    napi_value fn;
    if (napi_create_function(env, f.first, NAPI_AUTO_LENGTH, f.second, nullptr, &fn) != napi_ok) return false;
    if (napi_set_named_property(env, exports, f.first, fn) != napi_ok) return false;
  }
  return true;
}

}  // namespace napi

// The inference and training kernels' exports, added by the module init in kernels.cc.
bool register_infer(napi_env env, napi_value exports);  // infer.cc
bool register_train(napi_env env, napi_value exports);  // train.cc
bool register_nd(napi_env env, napi_value exports);     // nd_ops.cc

}  // namespace sd
