// Float32 NHWC convolutions and their gradients for @wrn's TF.js backends, dense or grouped (ResNeXt's), on
// gemm.h's packed GEMM with implicit im2col per block of output pixels and per group. Work is split over threads by output pixels (forward, input
// gradient) or by the reduction (filter gradient, with one partial sum per thread). The caller's buffers can be
// any memory, the wasm backend's heap included.
#include <node_api.h>

#include "elementwise.h"
#include "gemm.h"
#include "inference.h"
#include "parallel.h"
#include "winograd.h"

#include <algorithm>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

namespace {

using wrn::GemmWorkspace;
using wrn::gemm;
using wrn::parallelFor;
using wrn::threadCount;
using wrn::View;

constexpr int64_t ROW_BLOCK = 192;  // output pixels im2col'd at once (forward, input gradient)
constexpr int64_t REDUCTION_BLOCK = 256;  // output pixels per step of the filter gradient's reduction

struct ConvShape {
  int64_t n, h, w, ci;   // input [n, h, w, g * ci]: ci is one group's channels (the filter's)
  int64_t kh, kw, co;    // filter [kh, kw, ci, co]
  int64_t ho, wo;        // output [n, ho, wo, co]
  int64_t sh, sw;        // strides
  int64_t pt, pl;        // padding before (top, left); after is implied by ho, wo
  // Groups: output channels [j * co/g, (j+1) * co/g) see input channels [j * ci, (j+1) * ci) only. 1 is a dense
  // conv. Each group is its own GEMM on strided views of x, the filter and y, so no group is ever copied out.
  int64_t g = 1;
  int64_t k() const { return kh * kw * ci; }  // one group's reduction
  int64_t m() const { return n * ho * wo; }
  int64_t cin() const { return g * ci; }      // input channels: the distance between two pixels of x
  int64_t cog() const { return co / g; }      // one group's output channels
  bool pointwise() const { return kh == 1 && kw == 1 && sh == 1 && sw == 1 && pt == 0 && pl == 0 && ho == h && wo == w; }
};

// Rows [m0, m0 + rows) of group `group`'s im2col(x):
// col[r][(ky*kw + kx)*ci + c] = x[b, oy*sh - pt + ky, ox*sw - pl + kx, group*ci + c].
void im2col(const ConvShape& s, const float* x, int64_t group, int64_t m0, int64_t rows, float* col) {
  const int64_t k = s.k();
  for (int64_t r = 0; r < rows; r++) {
    const int64_t m = m0 + r;
    const int64_t b = m / (s.ho * s.wo);
    const int64_t oy = (m / s.wo) % s.ho;
    const int64_t ox = m % s.wo;
    float* dst = col + r * k;
    for (int64_t ky = 0; ky < s.kh; ky++) {
      const int64_t iy = oy * s.sh - s.pt + ky;
      for (int64_t kx = 0; kx < s.kw; kx++) {
        const int64_t ix = ox * s.sw - s.pl + kx;
        float* d = dst + (ky * s.kw + kx) * s.ci;
        if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) {
          std::fill(d, d + s.ci, 0.f);
        } else {
          // A plain loop, not memcpy: the runs are one pixel's channels (16-64 floats in CIFAR nets), where a
          // library call per run cost more than the copy.
          const float* src = x + ((b * s.h + iy) * s.w + ix) * s.cin() + group * s.ci;
          for (int64_t c = 0; c < s.ci; c++) d[c] = src[c];
        }
      }
    }
  }
}

// dx[b, oy*sh - pt + ky, ox*sw - pl + kx, group*ci + c] += col[r][(ky*kw + kx)*ci + c] for rows [m0, m0 + rows).
void col2imAdd(const ConvShape& s, const float* col, int64_t group, int64_t m0, int64_t rows, float* dx) {
  const int64_t k = s.k();
  for (int64_t r = 0; r < rows; r++) {
    const int64_t m = m0 + r;
    const int64_t b = m / (s.ho * s.wo);
    const int64_t oy = (m / s.wo) % s.ho;
    const int64_t ox = m % s.wo;
    const float* src = col + r * k;
    for (int64_t ky = 0; ky < s.kh; ky++) {
      const int64_t iy = oy * s.sh - s.pt + ky;
      if (iy < 0 || iy >= s.h) continue;
      for (int64_t kx = 0; kx < s.kw; kx++) {
        const int64_t ix = ox * s.sw - s.pl + kx;
        if (ix < 0 || ix >= s.w) continue;
        const float* sv = src + (ky * s.kw + kx) * s.ci;
        float* d = dx + ((b * s.h + iy) * s.w + ix) * s.cin() + group * s.ci;
        for (int64_t c = 0; c < s.ci; c++) d[c] += sv[c];
      }
    }
  }
}

// Per thread, reused across calls: packing panels and the im2col block.
struct ThreadBuffers {
  GemmWorkspace ws;
  std::vector<float> col;
  float* colFor(int64_t size) {
    if (col.size() < static_cast<size_t>(size)) col.resize(static_cast<size_t>(size));
    return col.data();
  }
};

ThreadBuffers& threadBuffers() {
  thread_local ThreadBuffers buffers;
  return buffers;
}

#if defined(__x86_64__) || defined(_M_X64)
// Direct convolution for 16 or 32 output channels (ResNet-20's stem and its stride-2 16->32): each output pixel's
// channels are one or two AVX-512 registers, accumulated over kh x kw x ci broadcasts of x, P pixels at a time (the
// FMA latency hidden by independent accumulators). Winograd's transforms and im2col's copies cost more than they
// save at so few channels (tools/bench/conv-gflops.ts --env WRN_NATIVE_DIRECT=0). Per output row, the kh input rows it reads are
// copied with their zero padding into a scratch [kh][wp][ci], so that the inner loops have no bounds.
template <int NV, int P, int CI>
__attribute__((target("avx512f"), always_inline)) inline void directPixels(const ConvShape& s, const float* rows, int64_t wp, const float* filter, int64_t ox0,
                                                                             const float* bias, bool relu, float* out) {
  __m512 acc[P][NV];
  for (int p = 0; p < P; p++) {
    for (int v = 0; v < NV; v++) acc[p][v] = bias != nullptr ? _mm512_loadu_ps(bias + 16 * v) : _mm512_setzero_ps();
  }
  const int64_t ci = CI > 0 ? CI : s.ci;  // CI: a channel count known at compile time (the stem's 3), else 0
  const int64_t step = s.sw * ci;  // between two output pixels' inputs
  for (int64_t ky = 0; ky < s.kh; ky++) {
    for (int64_t kx = 0; kx < s.kw; kx++) {
      const float* xs = rows + (ky * wp + ox0 * s.sw + kx) * ci;
      const float* fk = filter + (ky * s.kw + kx) * ci * (16 * NV);
      for (int64_t c = 0; c < ci; c++) {
        __m512 w[NV];
        for (int v = 0; v < NV; v++) w[v] = _mm512_loadu_ps(fk + c * (16 * NV) + 16 * v);
        for (int p = 0; p < P; p++) {
          const __m512 xv = _mm512_set1_ps(xs[p * step + c]);
          for (int v = 0; v < NV; v++) acc[p][v] = _mm512_fmadd_ps(xv, w[v], acc[p][v]);
        }
      }
    }
  }
  const __m512 zero = _mm512_setzero_ps();
  for (int p = 0; p < P; p++) {
    for (int v = 0; v < NV; v++) _mm512_storeu_ps(out + (ox0 + p) * (16 * NV) + 16 * v, relu ? _mm512_max_ps(acc[p][v], zero) : acc[p][v]);
  }
}

template <int NV, int P, int CI>
__attribute__((target("avx512f"))) void directRows(const ConvShape& s, const float* x, const float* filter, const float* bias, bool relu, float* out, int64_t r0, int64_t r1) {
  const int64_t wp = (s.wo - 1) * s.sw + s.kw;  // padded row width
  thread_local std::vector<float> scratch;
  if (scratch.size() < static_cast<size_t>(s.kh * wp * s.ci)) scratch.resize(static_cast<size_t>(s.kh * wp * s.ci));
  float* rows = scratch.data();
  for (int64_t r = r0; r < r1; r++) {
    const int64_t b = r / s.ho;
    const int64_t oy = r % s.ho;
    for (int64_t ky = 0; ky < s.kh; ky++) {
      const int64_t iy = oy * s.sh - s.pt + ky;
      float* dst = rows + ky * wp * s.ci;
      for (int64_t j = 0; j < wp; j++) {
        const int64_t ix = j - s.pl;
        float* d = dst + j * s.ci;
        if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) {
          std::fill(d, d + s.ci, 0.f);
        } else {
          const float* src = x + ((b * s.h + iy) * s.w + ix) * s.ci;
          for (int64_t c = 0; c < s.ci; c++) d[c] = src[c];
        }
      }
    }
    float* o = out + r * s.wo * s.co;
    int64_t ox = 0;
    for (; ox + P <= s.wo; ox += P) directPixels<NV, P, CI>(s, rows, wp, filter, ox, bias, relu, o);
    for (; ox < s.wo; ox++) directPixels<NV, 1, CI>(s, rows, wp, filter, ox, bias, relu, o);
  }
}

// WRN_NATIVE_DIRECT=0 turns it off, read at each call so that an A/B can switch it in one process.
bool directConvIfFaster(const ConvShape& s, const float* x, const float* filter, const float* bias, bool relu, float* out) {
  if (s.g != 1 || s.kh != 3 || s.kw != 3 || (s.co != 16 && s.co != 32) || std::string(wrn::gemmIsa()) != "avx512f") return false;
  // 3x3 stride 1 over 16 or more channels: Winograd F(4x4) was 1.5-1.7x faster (the same A/B).
  if (s.kh == 3 && s.kw == 3 && s.sh == 1 && s.sw == 1 && s.ci >= 16) return false;
  const char* env = std::getenv("WRN_NATIVE_DIRECT");
  if (env != nullptr && std::string(env) == "0") return false;
  parallelFor(s.n * s.ho, 1, [&](int, int64_t r0, int64_t r1) {
    if (s.co == 16 && s.ci == 3) {
      directRows<1, 8, 3>(s, x, filter, bias, relu, out, r0, r1);
    } else if (s.co == 16) {
      directRows<1, 8, 0>(s, x, filter, bias, relu, out, r0, r1);
    } else {
      directRows<2, 4, 0>(s, x, filter, bias, relu, out, r0, r1);
    }
  });
  return true;
}
#else
bool directConvIfFaster(const ConvShape&, const float*, const float*, const float*, bool, float*) { return false; }
#endif

void convForward(const ConvShape& s, const float* x, const float* filter, const float* bias, bool relu, float* out) {
  if (directConvIfFaster(s, x, filter, bias, relu, out)) return;
  if (s.g == 1 && s.kh == 3 && s.kw == 3 && s.sh == 1 && s.sw == 1 && wrn::winogradConv2dIfFaster({s.n, s.h, s.w, s.ci, s.co, s.ho, s.wo, s.pt, s.pl}, x, filter, bias, relu, out)) return;
  const int64_t k = s.k();
  const int64_t cog = s.cog();
  // Each group's filter [k x cog] packed once per call and shared read-only by every row block and thread (by
  // reference: a thread_local named in the lambdas would be each worker's own).
  thread_local std::vector<wrn::PackedB> callersPackedB;
  std::vector<wrn::PackedB>& packedB = callersPackedB;
  packedB.resize(static_cast<size_t>(s.g));
  for (int64_t group = 0; group < s.g; group++) wrn::packB(k, cog, View{filter + group * cog, s.co, 1}, packedB[static_cast<size_t>(group)]);
  parallelFor(s.m(), wrn::gemmRowTile(), [&](int, int64_t begin, int64_t end) {
    ThreadBuffers& buffers = threadBuffers();
    GemmWorkspace& ws = buffers.ws;
    float* col = s.pointwise() ? nullptr : buffers.colFor(ROW_BLOCK * k);
    for (int64_t m0 = begin; m0 < end; m0 += ROW_BLOCK) {
      const int64_t rows = std::min(ROW_BLOCK, end - m0);
      float* c = out + m0 * s.co;
      for (int64_t group = 0; group < s.g; group++) {
        View a{x + m0 * s.cin() + group * s.ci, s.cin(), 1};
        if (col != nullptr) {
          im2col(s, x, group, m0, rows, col);
          a = {col, k, 1};
        }
        wrn::gemmPacked(rows, a, packedB[static_cast<size_t>(group)], c + group * cog, s.co, false, ws);
      }
      if (bias != nullptr || relu) {
        for (int64_t r = 0; r < rows; r++) {
          float* cr = c + r * s.co;
          if (bias != nullptr) {
            for (int64_t o = 0; o < s.co; o++) cr[o] += bias[o];
          }
          if (relu) {
            for (int64_t o = 0; o < s.co; o++) cr[o] = std::max(cr[o], 0.f);
          }
        }
      }
    }
  });
}

void convBackpropInput(const ConvShape& s, const float* dy, const float* filter, float* dx) {
  if (s.g == 1 && s.kh == 3 && s.kw == 3 && s.sh == 1 && s.sw == 1 && wrn::winogradConv2dBackpropInputIfFaster({s.n, s.h, s.w, s.ci, s.co, s.ho, s.wo, s.pt, s.pl}, dy, filter, dx)) return;
  const int64_t k = s.k();
  // B(o, j) = filter[j][o]: the filter transposed once to [co x kh*kw*ci], so that packing reads it in rows.
  std::vector<float> filterT(static_cast<size_t>(k * s.co));
  for (int64_t j = 0; j < k; j++) {
    for (int64_t o = 0; o < s.co; o++) filterT[static_cast<size_t>(o * k + j)] = filter[j * s.co + o];
  }
  // Group j's rows of filterT, B_j(o, c) for its cog output channels, packed once per call (as in convForward).
  const int64_t cog = s.cog();
  thread_local std::vector<wrn::PackedB> callersPackedB;
  std::vector<wrn::PackedB>& packedB = callersPackedB;
  packedB.resize(static_cast<size_t>(s.g));
  for (int64_t group = 0; group < s.g; group++) wrn::packB(cog, k, View{filterT.data() + group * cog * k, k, 1}, packedB[static_cast<size_t>(group)]);
  if (s.pointwise()) {
    parallelFor(s.m(), wrn::gemmRowTile(), [&](int, int64_t begin, int64_t end) {
      for (int64_t group = 0; group < s.g; group++) {
        wrn::gemmPacked(end - begin, {dy + begin * s.co + group * cog, s.co, 1}, packedB[static_cast<size_t>(group)], dx + begin * s.cin() + group * s.ci, s.cin(), false,
                        threadBuffers().ws);
      }
    });
    return;
  }
  std::memset(dx, 0, sizeof(float) * s.n * s.h * s.w * s.cin());
  // Whole images per thread: col2im adds into neighbouring pixels, which never cross an image.
  const int64_t perImage = s.ho * s.wo;
  parallelFor(s.n, 1, [&](int, int64_t b0, int64_t b1) {
    ThreadBuffers& buffers = threadBuffers();
    float* col = buffers.colFor(ROW_BLOCK * k);
    for (int64_t m0 = b0 * perImage; m0 < b1 * perImage; m0 += ROW_BLOCK) {
      const int64_t rows = std::min(ROW_BLOCK, b1 * perImage - m0);
      for (int64_t group = 0; group < s.g; group++) {
        wrn::gemmPacked(rows, {dy + m0 * s.co + group * cog, s.co, 1}, packedB[static_cast<size_t>(group)], col, k, false, buffers.ws);
        col2imAdd(s, col, group, m0, rows, dx);
      }
    }
  });
}

void convBackpropFilter(const ConvShape& s, const float* x, const float* dy, float* dw) {
  if (s.g == 1 && s.kh == 3 && s.kw == 3 && s.sh == 1 && s.sw == 1 && wrn::winogradConv2dBackpropFilterIfFaster({s.n, s.h, s.w, s.ci, s.co, s.ho, s.wo, s.pt, s.pl}, x, dy, dw)) return;
  const int64_t k = s.k();
  const int threads = threadCount();
  std::vector<std::vector<float>> partials(static_cast<size_t>(threads));
  parallelFor(s.m(), REDUCTION_BLOCK, [&](int t, int64_t begin, int64_t end) {
    ThreadBuffers& buffers = threadBuffers();
    float* acc = dw;
    if (t > 0) {
      partials[t].assign(static_cast<size_t>(k * s.co), 0.f);
      acc = partials[t].data();
    }
    float* col = s.pointwise() ? nullptr : buffers.colFor(REDUCTION_BLOCK * k);
    const int64_t cog = s.cog();
    bool accumulate = false;
    for (int64_t m0 = begin; m0 < end; m0 += REDUCTION_BLOCK) {
      const int64_t rows = std::min(REDUCTION_BLOCK, end - m0);
      for (int64_t group = 0; group < s.g; group++) {
        // A(j, r) = col[r][j]: group's im2col read transposed, [kh*kw*ci x rows].
        View a{x + m0 * s.cin() + group * s.ci, 1, s.cin()};
        if (col != nullptr) {
          im2col(s, x, group, m0, rows, col);
          a = {col, 1, k};
        }
        gemm(k, cog, rows, a, {dy + m0 * s.co + group * cog, s.co, 1}, acc + group * cog, s.co, accumulate, buffers.ws);
      }
      accumulate = true;
    }
    if (!accumulate) std::fill(acc, acc + k * s.co, 0.f);
  });
  for (const auto& p : partials) {
    if (p.empty()) continue;
    for (int64_t i = 0; i < k * s.co; i++) dw[i] += p[static_cast<size_t>(i)];
  }
}

// ---- N-API glue ----

napi_value throwError(napi_env env, const std::string& message) {
  napi_throw_type_error(env, "ERR_WRN_NATIVE", message.c_str());
  return nullptr;
}

bool float32Arg(napi_env env, napi_value value, const char* name, int64_t expected, float** data, std::string& error) {
  bool isTypedArray = false;
  napi_is_typedarray(env, value, &isTypedArray);
  if (!isTypedArray) {
    error = std::string(name) + " must be a Float32Array";
    return false;
  }
  napi_typedarray_type type;
  size_t length = 0;
  void* ptr = nullptr;
  if (napi_get_typedarray_info(env, value, &type, &length, &ptr, nullptr, nullptr) != napi_ok || type != napi_float32_array) {
    error = std::string(name) + " must be a Float32Array";
    return false;
  }
  if (static_cast<int64_t>(length) != expected) {
    error = std::string(name) + " has " + std::to_string(length) + " elements; the shape needs " + std::to_string(expected);
    return false;
  }
  *data = static_cast<float*>(ptr);
  return true;
}

bool shapeArg(napi_env env, napi_value value, ConvShape& s, std::string& error) {
  // 13 integers, or 14 with the groups last (13: a dense conv).
  uint32_t length = 0;
  bool isArray = false;
  napi_is_array(env, value, &isArray);
  if (isArray) napi_get_array_length(env, value, &length);
  int64_t v[14] = {};
  v[13] = 1;
  bool ok = isArray && (length == 13 || length == 14);
  for (uint32_t i = 0; ok && i < length; i++) {
    napi_value item;
    ok = napi_get_element(env, value, i, &item) == napi_ok && napi_get_value_int64(env, item, &v[i]) == napi_ok;
  }
  if (!ok) {
    error = "shape must be 13 integers [n, h, w, ci, kh, kw, co, ho, wo, sh, sw, padTop, padLeft], or 14 with groups last";
    return false;
  }
  s = {v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12]};
  s.g = v[13];
  for (int i = 0; i < 14; i++) {
    if (i != 11 && i != 12 && v[i] < 1) {
      error = "shape[" + std::to_string(i) + "]" + (i == 13 ? " (groups)" : "") + " must be at least 1, got " + std::to_string(v[i]);
      return false;
    }
  }
  if (s.co % s.g != 0) {
    error = "co (" + std::to_string(s.co) + ") must be a multiple of groups (" + std::to_string(s.g) + ")";
    return false;
  }
  if (s.pt < 0 || s.pl < 0 || s.pt >= s.kh || s.pl >= s.kw) {
    error = "padding (" + std::to_string(s.pt) + ", " + std::to_string(s.pl) + ") must be within the filter's size";
    return false;
  }
  return true;
}

// The buffers of a call, by role: each must hold exactly the elements the geometry gives it.
enum class Buffer { X, Filter, Y };

int64_t elements(const ConvShape& s, Buffer role) {
  switch (role) {
    case Buffer::X:
      return s.n * s.h * s.w * s.cin();
    case Buffer::Filter:
      return s.k() * s.co;
    case Buffer::Y:
      return s.m() * s.co;
  }
  return 0;
}

struct BufferArg {
  const char* name;
  Buffer role;
};

// One call's arguments: the geometry, its three buffers, and what follows them.
struct Call {
  ConvShape s{};
  float* data[3] = {};
  napi_value extra[2] = {};
  size_t extraCount = 0;
};

// Reads `fn(shape, a, b, c, ...)` into `call`; false (with a JS error thrown, naming `fn` and the argument) when
// the geometry or a buffer does not fit.
bool readCall(napi_env env, napi_callback_info info, const char* fn, const BufferArg (&roles)[3], Call& call) {
  size_t argc = 6;
  napi_value args[6];
  napi_get_cb_info(env, info, &argc, args, nullptr, nullptr);
  std::string error;
  if (argc < 4) {
    error = std::string("takes the geometry and the buffers ") + roles[0].name + ", " + roles[1].name + ", " + roles[2].name;
  } else if (shapeArg(env, args[0], call.s, error)) {
    for (int i = 0; i < 3 && error.empty(); i++) float32Arg(env, args[i + 1], roles[i].name, elements(call.s, roles[i].role), &call.data[i], error);
  }
  if (!error.empty()) {
    throwError(env, std::string(fn) + ": " + error);
    return false;
  }
  call.extraCount = std::min<size_t>(argc - 4, 2);
  for (size_t i = 0; i < call.extraCount; i++) call.extra[i] = args[i + 4];
  return true;
}

// conv2d(shape, x, filter, out, bias | null, relu)
napi_value Conv2d(napi_env env, napi_callback_info info) {
  Call call;
  if (!readCall(env, info, "conv2d", {{"x", Buffer::X}, {"filter", Buffer::Filter}, {"out", Buffer::Y}}, call)) return nullptr;
  float* bias = nullptr;
  if (call.extraCount > 0) {
    napi_valuetype type;
    napi_typeof(env, call.extra[0], &type);
    std::string error;
    if (type != napi_null && type != napi_undefined && !float32Arg(env, call.extra[0], "bias", call.s.co, &bias, error)) {
      return throwError(env, "conv2d: " + error);
    }
  }
  bool relu = false;
  if (call.extraCount > 1) napi_get_value_bool(env, call.extra[1], &relu);
  convForward(call.s, call.data[0], call.data[1], bias, relu, call.data[2]);
  return nullptr;
}

// conv2dBackpropInput(shape, dy, filter, dx)
napi_value Conv2dBackpropInput(napi_env env, napi_callback_info info) {
  Call call;
  if (readCall(env, info, "conv2dBackpropInput", {{"dy", Buffer::Y}, {"filter", Buffer::Filter}, {"dx", Buffer::X}}, call)) {
    convBackpropInput(call.s, call.data[0], call.data[1], call.data[2]);
  }
  return nullptr;
}

// conv2dBackpropFilter(shape, x, dy, dw)
napi_value Conv2dBackpropFilter(napi_env env, napi_callback_info info) {
  Call call;
  if (readCall(env, info, "conv2dBackpropFilter", {{"x", Buffer::X}, {"dy", Buffer::Y}, {"dw", Buffer::Filter}}, call)) {
    convBackpropFilter(call.s, call.data[0], call.data[1], call.data[2]);
  }
  return nullptr;
}

}  // namespace

NAPI_MODULE_INIT() {
  const struct {
    const char* name;
    napi_callback fn;
  } functions[] = {{"conv2d", Conv2d}, {"conv2dBackpropInput", Conv2dBackpropInput}, {"conv2dBackpropFilter", Conv2dBackpropFilter}};
  for (const auto& f : functions) {
    napi_value fn;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.fn, nullptr, &fn);
    napi_set_named_property(env, exports, f.name, fn);
  }
  wrn::registerElementwise(env, exports);
  wrn::registerWinograd(env, exports);
  wrn::registerInference(env, exports);
  napi_value isa, threads;
  napi_create_string_utf8(env, wrn::gemmIsa(), NAPI_AUTO_LENGTH, &isa);
  napi_set_named_property(env, exports, "isa", isa);
  napi_create_int32(env, threadCount(), &threads);
  napi_set_named_property(env, exports, "threads", threads);
  return exports;
}
