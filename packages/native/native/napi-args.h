// What the addon's memory-bound kernels (elementwise.cc, inference.cc) share: reading and checking N-API arguments
// (each error names the argument and what it had to be), and choosing at run time between a loop compiled for
// AVX2+FMA and its portable build (WRN_PICK(name) -> nameAvx2 or namePortable).
#pragma once

#include <node_api.h>

#include <cstdint>
#include <string>

#include "parallel.h"

#if defined(__x86_64__) || defined(_M_X64)
#define WRN_NATIVE_X86 1
#define WRN_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define WRN_PICK(name) (wrn::avx2Fma() ? name##Avx2 : name##Portable)
#else
#define WRN_PICK(name) name##Portable
#endif
#define WRN_INLINE __attribute__((always_inline)) inline

namespace wrn {

// Throws a TypeError (code ERR_WRN_NATIVE) with `message`; returns the nullptr an N-API callback then returns.
inline napi_value fail(napi_env env, const std::string& message) {
  napi_throw_type_error(env, "ERR_WRN_NATIVE", message.c_str());
  return nullptr;
}

// A Float32Array argument (null allowed when `optional`): its data and length, or an error naming it.
inline bool floats(napi_env env, napi_value value, const char* name, float** data, int64_t* length, std::string& error, bool optional = false) {
  napi_valuetype type;
  napi_typeof(env, value, &type);
  if (optional && (type == napi_null || type == napi_undefined)) {
    *data = nullptr;
    *length = 0;
    return true;
  }
  bool isTypedArray = false;
  napi_is_typedarray(env, value, &isTypedArray);
  napi_typedarray_type arrayType;
  size_t size = 0;
  void* ptr = nullptr;
  napi_value buffer = nullptr;
  if (!isTypedArray || napi_get_typedarray_info(env, value, &arrayType, &size, &ptr, &buffer, nullptr) != napi_ok || arrayType != napi_float32_array) {
    error = std::string(name) + " must be a Float32Array" + (optional ? " or null" : "");
    return false;
  }
  // A view of a detached buffer reads as empty with no data, which a kernel could mistake for an absent argument: a
  // view of the wasm heap taken before an allocation that grew it is one (a BatchNorm ran as the identity that way).
  bool detached = false;
  if (napi_is_detached_arraybuffer(env, buffer, &detached) == napi_ok && detached) {
    error = std::string(name) + " is a view of a detached ArrayBuffer (a wasm heap view taken before the heap grew?)";
    return false;
  }
  *data = static_cast<float*>(ptr);
  *length = static_cast<int64_t>(size);
  return true;
}

inline bool integer(napi_env env, napi_value value, const char* name, int64_t min, int64_t* out, std::string& error) {
  if (napi_get_value_int64(env, value, out) != napi_ok || *out < min) {
    error = std::string(name) + " must be an integer >= " + std::to_string(min);
    return false;
  }
  return true;
}

inline bool number(napi_env env, napi_value value, const char* name, double* out, std::string& error) {
  if (napi_get_value_double(env, value, out) != napi_ok) {
    error = std::string(name) + " must be a number";
    return false;
  }
  return true;
}

// Fills argv with the call's first N arguments (undefined past the ones given); with fewer than `required` (default
// all N), throws "fn: takes signature" and returns false.
template <size_t N>
bool args(napi_env env, napi_callback_info info, napi_value (&argv)[N], const char* fn, const char* signature, size_t required = N) {
  size_t argc = N;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc < required) {
    fail(env, std::string(fn) + ": takes " + signature);
    return false;
  }
  return true;
}

}  // namespace wrn
