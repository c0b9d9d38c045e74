// The memory-bound kernels of a residual network's forward pass in inference, for @wrn's TF.js wasm backend:
// BatchNorm with its moving statistics (per channel (x - mean) * scale / sqrt(variance + epsilon) + offset),
// ReLU, a same-shape add (optionally with the ReLU after it), and the option-A shortcut (keep every s-th row and column, append zero channels) in one
// pass instead of the Slice, Slice and PadV2 that ZeroPadShortcut's ops run; BatchNorm may apply the ReLU that
// follows it in the same pass. ReLU and Add are elementwise.cc's loops run with this file's grain. On wasm BatchNorm is a scalar loop
// (or, in @wrn's wasm kernel, a 1x1 depthwise conv with two tensors built per call), and ReLU and Add are 128-bit
// SIMD on one thread; here each loop is compiled for AVX2+FMA and portable (chosen at run time like the
// convolutions' micro-kernel) and split over the shared thread pool when the tensor is large enough to pay for it.
#include "inference.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "elementwise.h"
#include "napi-args.h"
#include "parallel.h"

namespace {

using wrn::args;
using wrn::fail;
using wrn::floats;
using wrn::integer;
using wrn::parallelFor;

// Elements per unit of work handed to a thread: below it a call stays on the calling thread. These loops run at
// cache speed (a [64,32,32,16] ReLU in 0.12 ms), and splitting them at 256K elements made Add 5x and the shortcut 14x
// slower on a loaded 2-core machine (tools/bench/native-inference-ab.ts), as elementwise.cc found: so only tensors
// over 4M elements (16 MB) are split. WRN_NATIVE_INFERENCE_GRAIN=N changes it (the tests split small tensors).
std::atomic<int64_t>& grain() {
  static std::atomic<int64_t> elements{[] {
    const char* env = std::getenv("WRN_NATIVE_INFERENCE_GRAIN");
    const long long n = env != nullptr ? std::atoll(env) : 0;
    return n > 0 ? static_cast<int64_t>(n) : int64_t{1} << 22;
  }()};
  return elements;
}

int64_t grainSize() { return grain().load(std::memory_order_relaxed); }

// Rows [r0, r1) of [rows, channels]: out = (x - mean) * factor + offset, per channel, then max(0, .) with Relu
// (a BatchNorm followed by a ReLU in one pass; v < 0 ? 0 : v keeps NaN, as tfjs-core's cpu kernel and torch.relu do).
template <bool Relu>
WRN_INLINE void batchNormChunk(const float* __restrict x, const float* __restrict mean, const float* __restrict factor,
                               const float* __restrict offset, int64_t channels, float* __restrict out, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; r++) {
    const float* __restrict xr = x + r * channels;
    float* __restrict outr = out + r * channels;
    for (int64_t c = 0; c < channels; c++) {
      const float v = (xr[c] - mean[c]) * factor[c] + offset[c];
      outr[c] = Relu && v < 0.f ? 0.f : v;
    }
  }
}

// Output rows [r0, r1) (r = image * outHeight + row) of the option-A shortcut: x [n, h, w, c] -> out [n, ho, wo, co]
// with out[i, y, x, k] = x[i, y * s, x * s, k] for k < c, else 0.
WRN_INLINE void shortcutChunk(const float* __restrict x, int64_t h, int64_t w, int64_t c, int64_t s, int64_t ho, int64_t wo, int64_t co,
                              float* __restrict out, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; r++) {
    const int64_t image = r / ho;
    const int64_t row = r % ho;
    const float* __restrict xr = x + ((image * h + row * s) * w) * c;
    float* __restrict outr = out + r * wo * co;
    for (int64_t j = 0; j < wo; j++) {
      const float* __restrict from = xr + j * s * c;
      float* __restrict to = outr + j * co;
      for (int64_t k = 0; k < c; k++) to[k] = from[k];
      for (int64_t k = c; k < co; k++) to[k] = 0.f;
    }
  }
}

// Elements [i0, i1) of out = max(0, a + b): a residual addition and the ReLU after it in one pass (v < 0 ? 0 : v keeps
// NaN, as relu above). elementwise's binary loop with the ReLU of its unary loop applied before the store.
WRN_INLINE void addReluChunk(const float* __restrict a, const float* __restrict b, float* __restrict out, int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; i++) {
    const float v = a[i] + b[i];
    out[i] = v < 0.f ? 0.f : v;
  }
}

// Each loop above, compiled for AVX2+FMA and for the baseline ISA.
void batchNormPortable(const float* x, const float* mean, const float* factor, const float* offset, int64_t channels, float* out, int64_t r0,
                       int64_t r1) {
  batchNormChunk<false>(x, mean, factor, offset, channels, out, r0, r1);
}
void batchNormReluPortable(const float* x, const float* mean, const float* factor, const float* offset, int64_t channels, float* out, int64_t r0,
                           int64_t r1) {
  batchNormChunk<true>(x, mean, factor, offset, channels, out, r0, r1);
}
void addReluPortable(const float* a, const float* b, float* out, int64_t i0, int64_t i1) { addReluChunk(a, b, out, i0, i1); }
void shortcutPortable(const float* x, int64_t h, int64_t w, int64_t c, int64_t s, int64_t ho, int64_t wo, int64_t co, float* out, int64_t r0,
                      int64_t r1) {
  shortcutChunk(x, h, w, c, s, ho, wo, co, out, r0, r1);
}

#ifdef WRN_NATIVE_X86
WRN_TARGET_AVX2 void batchNormAvx2(const float* x, const float* mean, const float* factor, const float* offset, int64_t channels, float* out,
                                   int64_t r0, int64_t r1) {
  batchNormChunk<false>(x, mean, factor, offset, channels, out, r0, r1);
}
WRN_TARGET_AVX2 void batchNormReluAvx2(const float* x, const float* mean, const float* factor, const float* offset, int64_t channels, float* out,
                                       int64_t r0, int64_t r1) {
  batchNormChunk<true>(x, mean, factor, offset, channels, out, r0, r1);
}
WRN_TARGET_AVX2 void addReluAvx2(const float* a, const float* b, float* out, int64_t i0, int64_t i1) { addReluChunk(a, b, out, i0, i1); }
WRN_TARGET_AVX2 void shortcutAvx2(const float* x, int64_t h, int64_t w, int64_t c, int64_t s, int64_t ho, int64_t wo, int64_t co, float* out,
                                  int64_t r0, int64_t r1) {
  shortcutChunk(x, h, w, c, s, ho, wo, co, out, r0, r1);
}
#endif

// ---- N-API glue ----

std::string count(int64_t n) { return std::to_string(n); }

// batchNormInference(x, mean, variance, offset | null, scale | null, epsilon, out, relu?): x and out [rows, C], C the
// length of the longest parameter; each parameter has C values or one (then it applies to every channel); with
// relu true, out = max(0, BatchNorm(x)) in the same pass.
napi_value BatchNormInference(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  if (!args(env, info, argv, "batchNormInference", "(x, mean, variance, offset, scale, epsilon, out, relu?)", 7)) return nullptr;
  std::string error;
  const char* names[7] = {"x", "mean", "variance", "offset", "scale", "epsilon", "out"};
  float* p[7] = {};
  int64_t len[7] = {};
  double epsilon = 0;
  for (int i = 0; i < 7 && error.empty(); i++) {
    if (i == 5) {
      if (napi_get_value_double(env, argv[i], &epsilon) != napi_ok || !(epsilon >= 0)) error = "epsilon must be a number >= 0";
    } else {
      floats(env, argv[i], names[i], &p[i], &len[i], error, i == 3 || i == 4);
    }
  }
  int64_t channels = 1;
  for (int i = 1; i <= 4; i++) channels = std::max(channels, len[i]);
  // Absent means null or undefined as passed, never an empty array (whose data pointer may also be null).
  bool given[7] = {};
  for (int i = 0; i < 7; i++) {
    napi_valuetype type;
    napi_typeof(env, argv[i], &type);
    given[i] = type != napi_null && type != napi_undefined;
  }
  for (int i = 1; i <= 4 && error.empty(); i++) {
    const bool absent = !given[i];
    if (!absent && len[i] != 1 && len[i] != channels) error = std::string(names[i]) + " has " + count(len[i]) + " values; the channels are " + count(channels) + " (or give 1)";
  }
  const int64_t n = len[0];
  if (error.empty() && n % channels != 0) error = "x has " + count(n) + " elements, not a multiple of the " + count(channels) + " channels";
  if (error.empty() && len[6] != n) error = "out has " + count(len[6]) + " elements; x has " + count(n);
  bool relu = false;
  napi_valuetype reluType;
  napi_typeof(env, argv[7], &reluType);
  if (error.empty() && reluType != napi_undefined && napi_get_value_bool(env, argv[7], &relu) != napi_ok) error = "relu must be a boolean or left out";
  if (!error.empty()) return fail(env, "batchNormInference: " + error);
  if (n == 0) return nullptr;
  // Per channel, once: factor = scale / sqrt(variance + epsilon) (in double, then rounded once), so each element
  // costs a subtract and a multiply-add.
  const auto at = [&](int i, int64_t c, float absent) { return !given[i] ? absent : p[i][len[i] == 1 ? 0 : c]; };
  std::vector<float> mean(static_cast<size_t>(channels)), factor(static_cast<size_t>(channels)), offset(static_cast<size_t>(channels));
  for (int64_t c = 0; c < channels; c++) {
    mean[c] = at(1, c, 0.f);
    factor[c] = static_cast<float>(static_cast<double>(at(4, c, 1.f)) / std::sqrt(static_cast<double>(at(2, c, 1.f)) + epsilon));
    offset[c] = at(3, c, 0.f);
  }
  const auto chunk = relu ? WRN_PICK(batchNormRelu) : WRN_PICK(batchNorm);
  const int64_t rows = n / channels;
  const float* x = p[0];
  float* out = p[6];
  parallelFor(rows, std::max<int64_t>(1, grainSize() / channels),
              [&](int, int64_t r0, int64_t r1) { chunk(x, mean.data(), factor.data(), offset.data(), channels, out, r0, r1); });
  return nullptr;
}

// relu(x, out): out = max(0, x), NaN kept.
napi_value Relu(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!args(env, info, argv, "relu", "(x, out)")) return nullptr;
  std::string error;
  float *x = nullptr, *out = nullptr;
  int64_t nx = 0, n = 0;
  if (floats(env, argv[0], "x", &x, &nx, error) && floats(env, argv[1], "out", &out, &n, error) && nx != n) {
    error = "out has " + count(n) + " elements; x has " + count(nx);
  }
  if (!error.empty()) return fail(env, "relu: " + error);
  wrn::reluForward(x, out, n, grainSize());
  return nullptr;
}

// add(a, b, out, relu?): out = a + b, all of one length; with relu true, out = max(0, a + b) in the same pass (a
// residual block's addition and the ReLU after it, NaN kept). out may be a or b.
napi_value Add(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!args(env, info, argv, "add", "(a, b, out, relu?)", 3)) return nullptr;
  std::string error;
  float *a = nullptr, *b = nullptr, *out = nullptr;
  int64_t na = 0, nb = 0, n = 0;
  if (floats(env, argv[0], "a", &a, &na, error) && floats(env, argv[1], "b", &b, &nb, error) && floats(env, argv[2], "out", &out, &n, error)) {
    if (na != n || nb != n) error = "a has " + count(na) + ", b " + count(nb) + " and out " + count(n) + " elements; they must be equal";
  }
  bool relu = false;
  napi_valuetype reluType;
  napi_typeof(env, argv[3], &reluType);
  if (error.empty() && reluType != napi_undefined && napi_get_value_bool(env, argv[3], &relu) != napi_ok) error = "relu must be a boolean or left out";
  if (!error.empty()) return fail(env, "add: " + error);
  if (!relu) {
    wrn::addSameLength(a, b, out, n, grainSize());
    return nullptr;
  }
  const auto chunk = WRN_PICK(addRelu);
  parallelFor(n, grainSize(), [&](int, int64_t i0, int64_t i1) { chunk(a, b, out, i0, i1); });
  return nullptr;
}

// zeroPadShortcut(x, [n, h, w, c], strides, outChannels, out): out [n, ceil(h/s), ceil(w/s), outChannels] holds
// x[:, ::s, ::s, :] in its first c channels and zeros in the rest.
napi_value ZeroPadShortcutCall(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!args(env, info, argv, "zeroPadShortcut", "(x, [n, h, w, c], strides, outChannels, out)")) return nullptr;
  std::string error;
  float *x = nullptr, *out = nullptr;
  int64_t nx = 0, nOut = 0, s = 0, co = 0;
  int64_t dims[4] = {};
  bool isArray = false;
  if (floats(env, argv[0], "x", &x, &nx, error)) {
    napi_is_array(env, argv[1], &isArray);
    uint32_t length = 0;
    if (isArray) napi_get_array_length(env, argv[1], &length);
    if (!isArray || length != 4) error = "shape must be [n, h, w, c]";
    const char* dimNames[4] = {"n", "h", "w", "c"};
    for (uint32_t i = 0; i < 4 && error.empty(); i++) {
      napi_value d;
      napi_get_element(env, argv[1], i, &d);
      integer(env, d, dimNames[i], 1, &dims[i], error);
    }
  }
  if (error.empty() && integer(env, argv[2], "strides", 1, &s, error) && integer(env, argv[3], "outChannels", 1, &co, error)) {
    floats(env, argv[4], "out", &out, &nOut, error);
  }
  const auto [n, h, w, c] = std::tuple<int64_t, int64_t, int64_t, int64_t>{dims[0], dims[1], dims[2], dims[3]};
  const int64_t ho = (h + s - 1) / (s > 0 ? s : 1);
  const int64_t wo = (w + s - 1) / (s > 0 ? s : 1);
  if (error.empty() && nx != n * h * w * c) error = "x has " + count(nx) + " elements; [n, h, w, c] needs " + count(n * h * w * c);
  if (error.empty() && co < c) error = "outChannels " + count(co) + " is less than the input's " + count(c) + " channels";
  if (error.empty() && nOut != n * ho * wo * co) error = "out has " + count(nOut) + " elements; [n, ceil(h/s), ceil(w/s), outChannels] needs " + count(n * ho * wo * co);
  if (!error.empty()) return fail(env, "zeroPadShortcut: " + error);
  const auto chunk = WRN_PICK(shortcut);
  parallelFor(n * ho, std::max<int64_t>(1, grainSize() / std::max<int64_t>(1, wo * co)),
              [&](int, int64_t r0, int64_t r1) { chunk(x, h, w, c, s, ho, wo, co, out, r0, r1); });
  return nullptr;
}

// setInferenceGrain(elements): from now on these kernels split a call over the thread pool in shares of at least
// `elements` (WRN_NATIVE_INFERENCE_GRAIN's value, 4M by default); returns the previous value. For A/B benches that
// compare grains in one process.
napi_value SetInferenceGrain(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!args(env, info, argv, "setInferenceGrain", "(elements)")) return nullptr;
  std::string error;
  int64_t elements = 0;
  if (!integer(env, argv[0], "elements", 1, &elements, error)) return fail(env, "setInferenceGrain: " + error);
  napi_value previous;
  napi_create_int64(env, grain().exchange(elements), &previous);
  return previous;
}

}  // namespace

namespace wrn {

void registerInference(napi_env env, napi_value exports) {
  const struct {
    const char* name;
    napi_callback fn;
  } functions[] = {{"batchNormInference", BatchNormInference}, {"relu", Relu}, {"add", Add}, {"zeroPadShortcut", ZeroPadShortcutCall},
                   {"setInferenceGrain", SetInferenceGrain}};
  for (const auto& f : functions) {
    napi_value fn;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.fn, nullptr, &fn);
    napi_set_named_property(env, exports, f.name, fn);
  }
}

}  // namespace wrn
