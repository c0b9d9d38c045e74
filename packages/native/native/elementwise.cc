// The memory-bound rest of a training step, for @wrn's TF.js wasm backend: broadcasting add/subtract/multiply,
// relu/step/square, sums over leading axes, BatchNorm's whole backward pass in one sweep, BatchNorm in training
// mode (statistics and normalisation, and its backward pass), ReLU's gradient and the SGD update in place. On wasm each of
// these is a single-threaded loop (or several kernels and materialised broadcasts: tfjs-core's BatchNorm
// gradient tiles the per-channel factors to the activation's full size); here every call is split over the
// shared thread pool and each loop is compiled twice, for AVX2+FMA and portable, chosen at run time like the
// convolutions' micro-kernel. Reductions accumulate in double, so their result does not depend on how the
// work was split between threads.
#include "elementwise.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "napi-args.h"
#include "parallel.h"

namespace {

using wrn::args;
using wrn::fail;
using wrn::floats;
using wrn::integer;
using wrn::number;
using wrn::parallelFor;

// Elements per unit of work handed to a thread. These loops run at memory speed, and a second thread paid
// off only on large tensors: on CIFAR-sized activations ([64,32,32,16], 4 MB) waking the pool made a call 2-10x
// slower on a loaded 2-core machine (tools/bench/native-elementwise-ab.ts), so below 16 MB a call stays on the
// calling thread. WRN_NATIVE_ELEMENTWISE_GRAIN=N changes it (the tests split small tensors with it).
int64_t grainSize() {
  static const int64_t grain = [] {
    const char* env = std::getenv("WRN_NATIVE_ELEMENTWISE_GRAIN");
    const long long n = env != nullptr ? std::atoll(env) : 0;
    return n > 0 ? static_cast<int64_t>(n) : int64_t{1} << 22;
  }();
  return grain;
}

enum BinaryOp { ADD = 0, SUB = 1, MUL = 2 };
enum UnaryOp { RELU = 0, STEP = 1, SQUARE = 2 };
// How an operand of a binary op is read along a run: element i, or its one value for every i.
enum Kind { FULL, SCALAR };

template <int Op>
WRN_INLINE float apply(float a, float b) {
  if (Op == ADD) return a + b;
  if (Op == SUB) return a - b;
  return a * b;
}

template <int Op, int A, int B>
WRN_INLINE void binaryRun(const float* __restrict a, const float* __restrict b, float* __restrict out, int64_t len) {
  const float as = a[0];
  const float bs = b[0];
  for (int64_t i = 0; i < len; i++) out[i] = apply<Op>(A == SCALAR ? as : a[i], B == SCALAR ? bs : b[i]);
}

// One thread's part of out = a op b. `period` is the length of the operand that repeats (the other is full
// length): 0 when both are full; then [begin, end) are elements, else rows of `period` elements.
template <int Op>
WRN_INLINE void binaryChunkOp(const float* a, int64_t na, const float* b, int64_t nb, float* out, int64_t begin, int64_t end) {
  if (na == nb) {
    binaryRun<Op, FULL, FULL>(a + begin, b + begin, out + begin, end - begin);
  } else if (nb == 1) {
    binaryRun<Op, FULL, SCALAR>(a + begin, b, out + begin, end - begin);
  } else if (na == 1) {
    binaryRun<Op, SCALAR, FULL>(a, b + begin, out + begin, end - begin);
  } else if (nb < na) {
    for (int64_t r = begin; r < end; r++) binaryRun<Op, FULL, FULL>(a + r * nb, b, out + r * nb, nb);
  } else {
    for (int64_t r = begin; r < end; r++) binaryRun<Op, FULL, FULL>(a, b + r * na, out + r * na, na);
  }
}

WRN_INLINE void binaryChunk(int op, const float* a, int64_t na, const float* b, int64_t nb, float* out, int64_t begin, int64_t end) {
  if (op == ADD) binaryChunkOp<ADD>(a, na, b, nb, out, begin, end);
  else if (op == SUB) binaryChunkOp<SUB>(a, na, b, nb, out, begin, end);
  else binaryChunkOp<MUL>(a, na, b, nb, out, begin, end);
}

template <int Op>
WRN_INLINE void unaryRun(const float* __restrict x, float* __restrict out, int64_t len, float alpha) {
  for (int64_t i = 0; i < len; i++) {
    const float v = x[i];
    if (Op == RELU) out[i] = v < 0.f ? 0.f : v;  // NaN stays NaN, as in tfjs-core's cpu kernel
    if (Op == STEP) out[i] = v > 0.f ? 1.f : (v != v ? v : alpha);
    if (Op == SQUARE) out[i] = v * v;
  }
}

WRN_INLINE void unaryChunk(int op, const float* x, float* out, int64_t begin, int64_t end, float alpha) {
  if (op == RELU) unaryRun<RELU>(x + begin, out + begin, end - begin, alpha);
  else if (op == STEP) unaryRun<STEP>(x + begin, out + begin, end - begin, alpha);
  else unaryRun<SQUARE>(x + begin, out + begin, end - begin, alpha);
}

// acc[o * kept + c] += sum over rows [r0, r1) of x[(o * reduced + r) * kept + c].
WRN_INLINE void sumChunk(const float* x, int64_t outer, int64_t reduced, int64_t kept, double* __restrict acc, int64_t r0, int64_t r1) {
  for (int64_t o = 0; o < outer; o++) {
    double* a = acc + o * kept;
    for (int64_t r = r0; r < r1; r++) {
      const float* __restrict row = x + (o * reduced + r) * kept;
      for (int64_t c = 0; c < kept; c++) a[c] += row[c];
    }
  }
}

// Rows [r0, r1) of BatchNorm's backward pass over [rows, channels]: dx = dy * factor (per channel), and the
// per-channel sums of dy and of dy * (x - mean) that the other gradients are made of.
WRN_INLINE void batchNormGradChunk(const float* __restrict x, const float* __restrict dy, const float* __restrict mean,
                                   const float* __restrict factor, int64_t channels, float* __restrict dx, double* __restrict sumDy,
                                   double* __restrict sumDyXm, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; r++) {
    const float* xr = x + r * channels;
    const float* dyr = dy + r * channels;
    float* dxr = dx + r * channels;
    for (int64_t c = 0; c < channels; c++) {
      const float g = dyr[c];
      dxr[c] = g * factor[c];
      sumDy[c] += g;
      sumDyXm[c] += static_cast<double>(g) * (xr[c] - mean[c]);
    }
  }
}

// Rows [r0, r1) of BatchNorm's training statistics: per-channel sums of x - shift and of its square, shift being
// the first row's value, so that the one-pass variance E[(x-s)^2] - E[x-s]^2 does not cancel when |mean| >> std.
WRN_INLINE void batchNormStatsChunk(const float* __restrict x, const float* __restrict shift, int64_t channels, double* __restrict sum,
                                    double* __restrict sumSq, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; r++) {
    const float* xr = x + r * channels;
    for (int64_t c = 0; c < channels; c++) {
      const double v = static_cast<double>(xr[c]) - shift[c];
      sum[c] += v;
      sumSq[c] += v * v;
    }
  }
}

// y = (x - mean) * a + b per channel (a = scale / sqrt(variance + epsilon), b = offset), rows [r0, r1).
WRN_INLINE void batchNormApplyChunk(const float* __restrict x, const float* __restrict mean, const float* __restrict a, const float* __restrict b,
                                    int64_t channels, float* __restrict y, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; r++) {
    const float* xr = x + r * channels;
    float* yr = y + r * channels;
    for (int64_t c = 0; c < channels; c++) yr[c] = (xr[c] - mean[c]) * a[c] + b[c];
  }
}

// Per-channel sums of dy and dy * (x - mean) over rows [r0, r1): the two reductions of BatchNorm's backward pass.
WRN_INLINE void batchNormGradSumsChunk(const float* __restrict x, const float* __restrict dy, const float* __restrict mean, int64_t channels,
                                       double* __restrict sumDy, double* __restrict sumDyXm, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; r++) {
    const float* xr = x + r * channels;
    const float* dyr = dy + r * channels;
    for (int64_t c = 0; c < channels; c++) {
      const float g = dyr[c];
      sumDy[c] += g;
      sumDyXm[c] += static_cast<double>(g) * (xr[c] - mean[c]);
    }
  }
}

// dx = kDy * dy + kXm * (x - mean) + k0 per channel, rows [r0, r1).
WRN_INLINE void batchNormGradApplyChunk(const float* __restrict x, const float* __restrict dy, const float* __restrict mean,
                                        const float* __restrict kDy, const float* __restrict kXm, const float* __restrict k0, int64_t channels,
                                        float* __restrict dx, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; r++) {
    const float* xr = x + r * channels;
    const float* dyr = dy + r * channels;
    float* dxr = dx + r * channels;
    for (int64_t c = 0; c < channels; c++) dxr[c] = kDy[c] * dyr[c] + kXm[c] * (xr[c] - mean[c]) + k0[c];
  }
}

// ReLU's gradient from its output y: dx = dy * step(y), step(y) = 1 where y > 0, NaN where y is NaN, else 0 (the
// product tfjs-core's gradient takes, so infinities and NaN in dy come out as they do there).
WRN_INLINE void reluGradChunk(const float* __restrict y, const float* __restrict dy, float* __restrict dx, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; i++) {
    // Written as selects without a branch: with a branch on the sign, half the elements of an activation
    // mispredict (measured 40x slower than this).
    const float v = y[i];
    const float positive = static_cast<float>(v > 0.f);
    dx[i] = dy[i] * (v != v ? v : positive);
  }
}

// Elements [begin, end) of one SGD step in Torch's order of operations (torch.optim.SGD, sgd.ts), in place:
//   d = g + wd * p;  buf = first ? d : momentum * buf + keep * d;  d = nesterov ? d + momentum * buf : buf;  p -= lr * d.
struct SgdHyper {
  float lr, momentum, keep, weightDecay;
  bool nesterov, first;
};

template <bool HasMomentum>
WRN_INLINE void sgdRun(float* __restrict p, const float* __restrict g, float* __restrict buf, const SgdHyper& h, int64_t begin, int64_t end) {
  const float lr = h.lr, momentum = h.momentum, keep = h.keep, wd = h.weightDecay;
  for (int64_t i = begin; i < end; i++) {
    float d = wd != 0.f ? g[i] + p[i] * wd : g[i];
    if (HasMomentum) {
      const float b = h.first ? d : buf[i] * momentum + (keep == 1.f ? d : d * keep);
      buf[i] = b;
      d = h.nesterov ? d + b * momentum : b;
    }
    p[i] = p[i] - d * lr;
  }
}

WRN_INLINE void sgdChunk(float* p, const float* g, float* buf, const SgdHyper& h, int64_t begin, int64_t end) {
  if (buf != nullptr) sgdRun<true>(p, g, buf, h, begin, end);
  else sgdRun<false>(p, g, buf, h, begin, end);
}

// Each loop above, compiled for AVX2+FMA and for the baseline ISA.
void binaryPortable(int op, const float* a, int64_t na, const float* b, int64_t nb, float* out, int64_t begin, int64_t end) {
  binaryChunk(op, a, na, b, nb, out, begin, end);
}
void unaryPortable(int op, const float* x, float* out, int64_t begin, int64_t end, float alpha) { unaryChunk(op, x, out, begin, end, alpha); }
void sumPortable(const float* x, int64_t outer, int64_t reduced, int64_t kept, double* acc, int64_t r0, int64_t r1) {
  sumChunk(x, outer, reduced, kept, acc, r0, r1);
}
void batchNormGradPortable(const float* x, const float* dy, const float* mean, const float* factor, int64_t channels, float* dx, double* sumDy,
                           double* sumDyXm, int64_t r0, int64_t r1) {
  batchNormGradChunk(x, dy, mean, factor, channels, dx, sumDy, sumDyXm, r0, r1);
}

void batchNormStatsPortable(const float* x, const float* shift, int64_t channels, double* sum, double* sumSq, int64_t r0, int64_t r1) {
  batchNormStatsChunk(x, shift, channels, sum, sumSq, r0, r1);
}
void batchNormApplyPortable(const float* x, const float* mean, const float* a, const float* b, int64_t channels, float* y, int64_t r0, int64_t r1) {
  batchNormApplyChunk(x, mean, a, b, channels, y, r0, r1);
}
void batchNormGradSumsPortable(const float* x, const float* dy, const float* mean, int64_t channels, double* sumDy, double* sumDyXm, int64_t r0,
                               int64_t r1) {
  batchNormGradSumsChunk(x, dy, mean, channels, sumDy, sumDyXm, r0, r1);
}
void batchNormGradApplyPortable(const float* x, const float* dy, const float* mean, const float* kDy, const float* kXm, const float* k0,
                                int64_t channels, float* dx, int64_t r0, int64_t r1) {
  batchNormGradApplyChunk(x, dy, mean, kDy, kXm, k0, channels, dx, r0, r1);
}
void reluGradPortable(const float* y, const float* dy, float* dx, int64_t begin, int64_t end) { reluGradChunk(y, dy, dx, begin, end); }
void sgdPortable(float* p, const float* g, float* buf, const SgdHyper& h, int64_t begin, int64_t end) { sgdChunk(p, g, buf, h, begin, end); }

#ifdef WRN_NATIVE_X86
WRN_TARGET_AVX2 void binaryAvx2(int op, const float* a, int64_t na, const float* b, int64_t nb, float* out, int64_t begin, int64_t end) {
  binaryChunk(op, a, na, b, nb, out, begin, end);
}
WRN_TARGET_AVX2 void unaryAvx2(int op, const float* x, float* out, int64_t begin, int64_t end, float alpha) { unaryChunk(op, x, out, begin, end, alpha); }
WRN_TARGET_AVX2 void sumAvx2(const float* x, int64_t outer, int64_t reduced, int64_t kept, double* acc, int64_t r0, int64_t r1) {
  sumChunk(x, outer, reduced, kept, acc, r0, r1);
}
WRN_TARGET_AVX2 void batchNormGradAvx2(const float* x, const float* dy, const float* mean, const float* factor, int64_t channels, float* dx,
                                       double* sumDy, double* sumDyXm, int64_t r0, int64_t r1) {
  batchNormGradChunk(x, dy, mean, factor, channels, dx, sumDy, sumDyXm, r0, r1);
}
WRN_TARGET_AVX2 void batchNormStatsAvx2(const float* x, const float* shift, int64_t channels, double* sum, double* sumSq, int64_t r0, int64_t r1) {
  batchNormStatsChunk(x, shift, channels, sum, sumSq, r0, r1);
}
WRN_TARGET_AVX2 void batchNormApplyAvx2(const float* x, const float* mean, const float* a, const float* b, int64_t channels, float* y, int64_t r0,
                                        int64_t r1) {
  batchNormApplyChunk(x, mean, a, b, channels, y, r0, r1);
}
WRN_TARGET_AVX2 void batchNormGradSumsAvx2(const float* x, const float* dy, const float* mean, int64_t channels, double* sumDy, double* sumDyXm,
                                           int64_t r0, int64_t r1) {
  batchNormGradSumsChunk(x, dy, mean, channels, sumDy, sumDyXm, r0, r1);
}
WRN_TARGET_AVX2 void batchNormGradApplyAvx2(const float* x, const float* dy, const float* mean, const float* kDy, const float* kXm, const float* k0,
                                            int64_t channels, float* dx, int64_t r0, int64_t r1) {
  batchNormGradApplyChunk(x, dy, mean, kDy, kXm, k0, channels, dx, r0, r1);
}
WRN_TARGET_AVX2 void reluGradAvx2(const float* y, const float* dy, float* dx, int64_t begin, int64_t end) { reluGradChunk(y, dy, dx, begin, end); }
WRN_TARGET_AVX2 void sgdAvx2(float* p, const float* g, float* buf, const SgdHyper& h, int64_t begin, int64_t end) { sgdChunk(p, g, buf, h, begin, end); }
#endif

void binary(int op, const float* a, int64_t na, const float* b, int64_t nb, float* out, int64_t n, int64_t grainElements = grainSize()) {
  const auto chunk = WRN_PICK(binary);
  const int64_t period = na == nb || na == 1 || nb == 1 ? 0 : std::min(na, nb);
  const int64_t units = period == 0 ? n : n / period;
  const int64_t grain = period == 0 ? grainElements : std::max<int64_t>(1, grainElements / period);
  parallelFor(units, grain, [&](int, int64_t begin, int64_t end) { chunk(op, a, na, b, nb, out, begin, end); });
}

void unary(int op, const float* x, float* out, int64_t n, float alpha, int64_t grainElements = grainSize()) {
  const auto chunk = WRN_PICK(unary);
  parallelFor(n, grainElements, [&](int, int64_t begin, int64_t end) { chunk(op, x, out, begin, end, alpha); });
}

void sum(const float* x, int64_t outer, int64_t reduced, int64_t kept, float scale, float* out) {
  const auto chunk = WRN_PICK(sum);
  const int64_t grainElements = grainSize();
  const int threads = wrn::threadCount();
  std::vector<std::vector<double>> partials(static_cast<size_t>(threads));
  parallelFor(reduced, std::max<int64_t>(1, grainElements / std::max<int64_t>(1, outer * kept)), [&](int t, int64_t r0, int64_t r1) {
    partials[t].assign(static_cast<size_t>(outer * kept), 0.0);
    chunk(x, outer, reduced, kept, partials[t].data(), r0, r1);
  });
  for (int64_t i = 0; i < outer * kept; i++) {
    double total = 0;
    for (const auto& p : partials) total += p.empty() ? 0.0 : p[static_cast<size_t>(i)];
    out[i] = static_cast<float>(total * scale);
  }
}

struct BatchNormGradOut {
  float *dx, *dmean, *dvariance, *dscale, *doffset;
};

void batchNormGrad(const float* x, const float* dy, const float* mean, const float* variance, const float* scale, float epsilon, int64_t n,
                   int64_t channels, const BatchNormGradOut& out) {
  const auto chunk = WRN_PICK(batchNormGrad);
  const int64_t grainElements = grainSize();
  // In float, as tfjs-core's gradient computes rsqrt(variance + epsilon) and its products.
  std::vector<float> rstd(static_cast<size_t>(channels));
  std::vector<float> factor(static_cast<size_t>(channels));
  for (int64_t c = 0; c < channels; c++) {
    rstd[c] = 1.f / std::sqrt(variance[c] + epsilon);
    factor[c] = rstd[c] * (scale != nullptr ? scale[c] : 1.f);
  }
  const int threads = wrn::threadCount();
  std::vector<std::vector<double>> sums(static_cast<size_t>(threads));
  const int64_t rows = n / channels;
  parallelFor(rows, std::max<int64_t>(1, grainElements / channels), [&](int t, int64_t r0, int64_t r1) {
    sums[t].assign(static_cast<size_t>(2 * channels), 0.0);
    chunk(x, dy, mean, factor.data(), channels, out.dx, sums[t].data(), sums[t].data() + channels, r0, r1);
  });
  for (int64_t c = 0; c < channels; c++) {
    double sumDy = 0, sumDyXm = 0;
    for (const auto& s : sums) {
      if (s.empty()) continue;
      sumDy += s[static_cast<size_t>(c)];
      sumDyXm += s[static_cast<size_t>(channels + c)];
    }
    const double r = rstd[c];
    const double sc = scale != nullptr ? scale[c] : 1.0;
    out.doffset[c] = static_cast<float>(sumDy);
    out.dscale[c] = static_cast<float>(sumDyXm * r);
    out.dmean[c] = static_cast<float>(-sumDy * sc * r);
    out.dvariance[c] = static_cast<float>(-0.5 * r * r * r * sc * sumDyXm);
  }
}

// Per-thread double partials of `width` values each, summed in thread order: the result does not depend on the split.
template <typename F>
std::vector<double> rowSums(int64_t rows, int64_t channels, int64_t width, F chunk) {
  const int threads = wrn::threadCount();
  std::vector<std::vector<double>> partials(static_cast<size_t>(threads));
  parallelFor(rows, std::max<int64_t>(1, grainSize() / channels), [&](int t, int64_t r0, int64_t r1) {
    if (partials[t].empty()) partials[t].assign(static_cast<size_t>(width), 0.0);
    chunk(partials[t].data(), r0, r1);
  });
  std::vector<double> total(static_cast<size_t>(width), 0.0);
  for (const auto& p : partials) {
    for (size_t i = 0; i < p.size(); i++) total[i] += p[i];
  }
  return total;
}

// BatchNorm in training mode over x [rows, channels]: the batch's mean and biased variance per channel (in double,
// one pass), then y = (x - mean) / sqrt(variance + epsilon) * scale + offset (scale and offset may be null: 1, 0).
void batchNormTraining(const float* x, const float* scale, const float* offset, float epsilon, int64_t n, int64_t channels, float* y, float* mean,
                       float* variance) {
  const auto stats = WRN_PICK(batchNormStats);
  const auto apply = WRN_PICK(batchNormApply);
  const int64_t rows = n / channels;
  const std::vector<float> shift(x, x + channels);
  const std::vector<double> sums = rowSums(rows, channels, 2 * channels, [&](double* acc, int64_t r0, int64_t r1) {
    stats(x, shift.data(), channels, acc, acc + channels, r0, r1);
  });
  std::vector<float> a(static_cast<size_t>(channels)), b(static_cast<size_t>(channels));
  for (int64_t c = 0; c < channels; c++) {
    const double m = sums[c] / static_cast<double>(rows);
    const double v = std::max(0.0, sums[channels + c] / static_cast<double>(rows) - m * m);
    mean[c] = static_cast<float>(shift[c] + m);
    variance[c] = static_cast<float>(v);
    a[c] = static_cast<float>((scale != nullptr ? scale[c] : 1.0) / std::sqrt(v + epsilon));
    b[c] = offset != nullptr ? offset[c] : 0.f;
  }
  parallelFor(rows, std::max<int64_t>(1, grainSize() / channels), [&](int, int64_t r0, int64_t r1) { apply(x, mean, a.data(), b.data(), channels, y, r0, r1); });
}

struct BatchNormTrainingGradOut {
  float *dx, *dscale, *doffset;
};

// The backward pass of batchNormTraining (mean and variance being functions of x), PyTorch's formula with
// xhat = (x - mean) * rstd:  dx = scale * rstd * (dy - mean(dy) - xhat * mean(dy * xhat)), dscale = sum(dy * xhat),
// doffset = sum(dy); plus, where the mean and variance outputs got gradients of their own (dmean, dvariance, may be
// null), dmean / N + dvariance * 2 (x - mean) / N.
void batchNormTrainingGrad(const float* x, const float* dy, const float* scale, const float* mean, const float* variance, float epsilon,
                           const float* dmean, const float* dvariance, int64_t n, int64_t channels, const BatchNormTrainingGradOut& out) {
  const auto sumsChunk = WRN_PICK(batchNormGradSums);
  const auto apply = WRN_PICK(batchNormGradApply);
  const int64_t rows = n / channels;
  const std::vector<double> sums = rowSums(rows, channels, 2 * channels, [&](double* acc, int64_t r0, int64_t r1) {
    sumsChunk(x, dy, mean, channels, acc, acc + channels, r0, r1);
  });
  std::vector<float> kDy(static_cast<size_t>(channels)), kXm(static_cast<size_t>(channels)), k0(static_cast<size_t>(channels));
  const double count = static_cast<double>(rows);
  for (int64_t c = 0; c < channels; c++) {
    const double rstd = 1.0 / std::sqrt(static_cast<double>(variance[c]) + epsilon);
    const double g = scale != nullptr ? scale[c] : 1.0;
    const double sumDy = sums[c], sumDyXm = sums[channels + c];
    kDy[c] = static_cast<float>(g * rstd);
    kXm[c] = static_cast<float>(-g * rstd * rstd * rstd * sumDyXm / count + (dvariance != nullptr ? 2.0 * dvariance[c] / count : 0.0));
    k0[c] = static_cast<float>(-g * rstd * sumDy / count + (dmean != nullptr ? dmean[c] / count : 0.0));
    out.dscale[c] = static_cast<float>(sumDyXm * rstd);
    out.doffset[c] = static_cast<float>(sumDy);
  }
  parallelFor(rows, std::max<int64_t>(1, grainSize() / channels),
              [&](int, int64_t r0, int64_t r1) { apply(x, dy, mean, kDy.data(), kXm.data(), k0.data(), channels, out.dx, r0, r1); });
}

void reluGrad(const float* y, const float* dy, float* dx, int64_t n) {
  const auto chunk = WRN_PICK(reluGrad);
  parallelFor(n, grainSize(), [&](int, int64_t begin, int64_t end) { chunk(y, dy, dx, begin, end); });
}

void sgdUpdate(float* p, const float* g, float* buf, int64_t n, const SgdHyper& h) {
  const auto chunk = WRN_PICK(sgd);
  parallelFor(n, grainSize(), [&](int, int64_t begin, int64_t end) { chunk(p, g, buf, h, begin, end); });
}

// ---- N-API glue ----

std::string sizeMismatch(const char* name, int64_t has, const std::string& needs) {
  return std::string(name) + " has " + std::to_string(has) + " elements; " + needs;
}

// binary(op, a, b, out): out = a op b (op 0 add, 1 subtract, 2 multiply). Each operand has out's length, or
// one value, or a length dividing it that it repeats with (a trailing-axes broadcast).
napi_value Binary(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!args(env, info, argv, "binary", "(op, a, b, out)")) return nullptr;
  std::string error;
  int64_t op = 0, na = 0, nb = 0, n = 0;
  float *a = nullptr, *b = nullptr, *out = nullptr;
  if (integer(env, argv[0], "op", 0, &op, error) && floats(env, argv[1], "a", &a, &na, error) && floats(env, argv[2], "b", &b, &nb, error) &&
      floats(env, argv[3], "out", &out, &n, error)) {
    if (op > MUL) error = "op must be 0 (add), 1 (subtract) or 2 (multiply), got " + std::to_string(op);
    for (const auto& [name, len] : {std::pair<const char*, int64_t>{"a", na}, {"b", nb}}) {
      if (error.empty() && (len < 1 || n % len != 0)) error = sizeMismatch(name, len, "out's " + std::to_string(n) + " must be a multiple of it");
    }
    if (error.empty() && na != n && nb != n) error = "a (" + std::to_string(na) + ") or b (" + std::to_string(nb) + ") must have out's length " + std::to_string(n);
  }
  if (!error.empty()) return fail(env, "binary: " + error);
  if (n > 0) binary(static_cast<int>(op), a, na, b, nb, out, n);
  return nullptr;
}

// unary(op, x, out, alpha): out = relu(x) (op 0), step(x) = x > 0 ? 1 : alpha (op 1), x * x (op 2).
napi_value Unary(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!args(env, info, argv, "unary", "(op, x, out, alpha)")) return nullptr;
  std::string error;
  int64_t op = 0, nx = 0, n = 0;
  double alpha = 0;
  float *x = nullptr, *out = nullptr;
  if (integer(env, argv[0], "op", 0, &op, error) && floats(env, argv[1], "x", &x, &nx, error) && floats(env, argv[2], "out", &out, &n, error) &&
      number(env, argv[3], "alpha", &alpha, error)) {
    if (op > SQUARE) error = "op must be 0 (relu), 1 (step) or 2 (square), got " + std::to_string(op);
    else if (nx != n) error = sizeMismatch("out", n, "x has " + std::to_string(nx));
  }
  if (!error.empty()) return fail(env, "unary: " + error);
  unary(static_cast<int>(op), x, out, n, static_cast<float>(alpha));
  return nullptr;
}

// sum(x, outer, reduced, kept, scale, out): x viewed as [outer, reduced, kept]; out[o, k] = scale * sum over r.
napi_value Sum(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  if (!args(env, info, argv, "sum", "(x, outer, reduced, kept, scale, out)")) return nullptr;
  std::string error;
  int64_t nx = 0, outer = 0, reduced = 0, kept = 0, n = 0;
  double scale = 1;
  float *x = nullptr, *out = nullptr;
  if (floats(env, argv[0], "x", &x, &nx, error) && integer(env, argv[1], "outer", 1, &outer, error) && integer(env, argv[2], "reduced", 1, &reduced, error) &&
      integer(env, argv[3], "kept", 1, &kept, error) && number(env, argv[4], "scale", &scale, error) && floats(env, argv[5], "out", &out, &n, error)) {
    if (nx != outer * reduced * kept) error = sizeMismatch("x", nx, "[outer, reduced, kept] needs " + std::to_string(outer * reduced * kept));
    else if (n != outer * kept) error = sizeMismatch("out", n, "[outer, kept] needs " + std::to_string(outer * kept));
  }
  if (!error.empty()) return fail(env, "sum: " + error);
  sum(x, outer, reduced, kept, static_cast<float>(scale), out);
  return nullptr;
}

// batchNormGrad(x, dy, mean, variance, scale | null, epsilon, dx, dmean, dvariance, dscale, doffset): the
// gradients of y = (x - mean) * scale / sqrt(variance + epsilon) + offset with respect to each input, x and dy
// [rows, channels], the rest [channels].
napi_value BatchNormGrad(napi_env env, napi_callback_info info) {
  napi_value argv[11];
  if (!args(env, info, argv, "batchNormGrad", "(x, dy, mean, variance, scale, epsilon, dx, dmean, dvariance, dscale, doffset)")) return nullptr;
  std::string error;
  const char* names[11] = {"x", "dy", "mean", "variance", "scale", "epsilon", "dx", "dmean", "dvariance", "dscale", "doffset"};
  float* p[11] = {};
  int64_t len[11] = {};
  double epsilon = 0;
  for (int i = 0; i < 11 && error.empty(); i++) {
    if (i == 5) number(env, argv[i], "epsilon", &epsilon, error);
    else floats(env, argv[i], names[i], &p[i], &len[i], error, i == 4);
  }
  const int64_t n = len[0];
  const int64_t channels = len[2];
  if (error.empty() && (channels < 1 || n % channels != 0)) error = sizeMismatch("mean", channels, "x's " + std::to_string(n) + " must be a multiple of it");
  for (int i : {1, 6}) {
    if (error.empty() && len[i] != n) error = sizeMismatch(names[i], len[i], "x has " + std::to_string(n));
  }
  for (int i : {3, 4, 7, 8, 9, 10}) {
    if (error.empty() && len[i] != channels && !(i == 4 && p[i] == nullptr)) error = sizeMismatch(names[i], len[i], "mean has " + std::to_string(channels));
  }
  if (!error.empty()) return fail(env, std::string("batchNormGrad: ") + error);
  batchNormGrad(p[0], p[1], p[2], p[3], p[4], static_cast<float>(epsilon), n, channels, {p[6], p[7], p[8], p[9], p[10]});
  return nullptr;
}

// batchNormTraining(x, scale | null, offset | null, epsilon, y, mean, variance): x and y [rows, channels], the rest
// [channels]; writes y and the batch's mean and biased variance.
napi_value BatchNormTraining(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  if (!args(env, info, argv, "batchNormTraining", "(x, scale, offset, epsilon, y, mean, variance)")) return nullptr;
  std::string error;
  const char* names[7] = {"x", "scale", "offset", "epsilon", "y", "mean", "variance"};
  float* p[7] = {};
  int64_t len[7] = {};
  double epsilon = 0;
  for (int i = 0; i < 7 && error.empty(); i++) {
    if (i == 3) number(env, argv[i], "epsilon", &epsilon, error);
    else floats(env, argv[i], names[i], &p[i], &len[i], error, i == 1 || i == 2);
  }
  const int64_t n = len[0];
  const int64_t channels = len[5];
  if (error.empty() && !(epsilon > 0)) error = "epsilon must be > 0, got " + std::to_string(epsilon);
  if (error.empty() && (channels < 1 || n < channels || n % channels != 0)) error = sizeMismatch("mean", channels, "x's " + std::to_string(n) + " must be a positive multiple of it");
  if (error.empty() && len[4] != n) error = sizeMismatch("y", len[4], "x has " + std::to_string(n));
  for (int i : {1, 2, 6}) {
    if (error.empty() && p[i] != nullptr && len[i] != channels) error = sizeMismatch(names[i], len[i], "mean has " + std::to_string(channels));
  }
  if (!error.empty()) return fail(env, std::string("batchNormTraining: ") + error);
  batchNormTraining(p[0], p[1], p[2], static_cast<float>(epsilon), n, channels, p[4], p[5], p[6]);
  return nullptr;
}

// batchNormTrainingGrad(x, dy, scale | null, mean, variance, epsilon, dmean | null, dvariance | null, dx, dscale,
// doffset): the gradients of batchNormTraining's y (and of its mean and variance outputs, where given).
napi_value BatchNormTrainingGrad(napi_env env, napi_callback_info info) {
  napi_value argv[11];
  if (!args(env, info, argv, "batchNormTrainingGrad", "(x, dy, scale, mean, variance, epsilon, dmean, dvariance, dx, dscale, doffset)")) return nullptr;
  std::string error;
  const char* names[11] = {"x", "dy", "scale", "mean", "variance", "epsilon", "dmean", "dvariance", "dx", "dscale", "doffset"};
  float* p[11] = {};
  int64_t len[11] = {};
  double epsilon = 0;
  for (int i = 0; i < 11 && error.empty(); i++) {
    if (i == 5) number(env, argv[i], "epsilon", &epsilon, error);
    else floats(env, argv[i], names[i], &p[i], &len[i], error, i == 2 || i == 6 || i == 7);
  }
  const int64_t n = len[0];
  const int64_t channels = len[3];
  if (error.empty() && !(epsilon > 0)) error = "epsilon must be > 0, got " + std::to_string(epsilon);
  if (error.empty() && (channels < 1 || n < channels || n % channels != 0)) error = sizeMismatch("mean", channels, "x's " + std::to_string(n) + " must be a positive multiple of it");
  for (int i : {1, 8}) {
    if (error.empty() && len[i] != n) error = sizeMismatch(names[i], len[i], "x has " + std::to_string(n));
  }
  for (int i : {2, 4, 6, 7, 9, 10}) {
    if (error.empty() && p[i] != nullptr && len[i] != channels) error = sizeMismatch(names[i], len[i], "mean has " + std::to_string(channels));
  }
  if (!error.empty()) return fail(env, std::string("batchNormTrainingGrad: ") + error);
  batchNormTrainingGrad(p[0], p[1], p[2], p[3], p[4], static_cast<float>(epsilon), p[6], p[7], n, channels, {p[8], p[9], p[10]});
  return nullptr;
}

// reluGrad(y, dy, dx): dx = dy * step(y), y being ReLU's output (or input: the same mask).
napi_value ReluGrad(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!args(env, info, argv, "reluGrad", "(y, dy, dx)")) return nullptr;
  std::string error;
  float *y = nullptr, *dy = nullptr, *dx = nullptr;
  int64_t ny = 0, ndy = 0, ndx = 0;
  if (floats(env, argv[0], "y", &y, &ny, error) && floats(env, argv[1], "dy", &dy, &ndy, error) && floats(env, argv[2], "dx", &dx, &ndx, error)) {
    if (ndy != ny) error = sizeMismatch("dy", ndy, "y has " + std::to_string(ny));
    else if (ndx != ny) error = sizeMismatch("dx", ndx, "y has " + std::to_string(ny));
  }
  if (!error.empty()) return fail(env, "reluGrad: " + error);
  reluGrad(y, dy, dx, ny);
  return nullptr;
}

// sgdUpdate(param, grad, buffer | null, lr, momentum, dampening, weightDecay, nesterov, first): one torch.optim.SGD
// step in place on param and (with momentum) buffer; `first` sets buffer = d, as Torch does on its first step.
napi_value SgdUpdate(napi_env env, napi_callback_info info) {
  napi_value argv[9];
  if (!args(env, info, argv, "sgdUpdate", "(param, grad, buffer, lr, momentum, dampening, weightDecay, nesterov, first)")) return nullptr;
  std::string error;
  float *p = nullptr, *g = nullptr, *buf = nullptr;
  int64_t np = 0, ng = 0, nb = 0;
  double hyper[4] = {};
  const char* hyperNames[4] = {"lr", "momentum", "dampening", "weightDecay"};
  bool flags[2] = {};
  if (floats(env, argv[0], "param", &p, &np, error) && floats(env, argv[1], "grad", &g, &ng, error) && floats(env, argv[2], "buffer", &buf, &nb, error, true)) {
    for (int i = 0; i < 4 && error.empty(); i++) number(env, argv[3 + i], hyperNames[i], &hyper[i], error);
    for (int i = 0; i < 2 && error.empty(); i++) {
      if (napi_get_value_bool(env, argv[7 + i], &flags[i]) != napi_ok) error = std::string(i == 0 ? "nesterov" : "first") + " must be a boolean";
    }
  }
  if (error.empty() && ng != np) error = sizeMismatch("grad", ng, "param has " + std::to_string(np));
  if (error.empty() && buf != nullptr && nb != np) error = sizeMismatch("buffer", nb, "param has " + std::to_string(np));
  if (error.empty() && buf == nullptr && hyper[1] != 0) error = "buffer must be a Float32Array when momentum is not 0";
  if (!error.empty()) return fail(env, "sgdUpdate: " + error);
  const SgdHyper h{static_cast<float>(hyper[0]), static_cast<float>(hyper[1]), static_cast<float>(1 - hyper[2]), static_cast<float>(hyper[3]), flags[0], flags[1]};
  if (np > 0) sgdUpdate(p, g, hyper[1] != 0 ? buf : nullptr, np, h);
  return nullptr;
}

}  // namespace

namespace wrn {

void reluForward(const float* x, float* out, int64_t n, int64_t grain) { unary(RELU, x, out, n, 0.f, grain); }

void addSameLength(const float* a, const float* b, float* out, int64_t n, int64_t grain) { binary(ADD, a, n, b, n, out, n, grain); }

void registerElementwise(napi_env env, napi_value exports) {
  const struct {
    const char* name;
    napi_callback fn;
  } functions[] = {{"binary", Binary}, {"unary", Unary}, {"sum", Sum}, {"batchNormGrad", BatchNormGrad},
                 {"batchNormTraining", BatchNormTraining}, {"batchNormTrainingGrad", BatchNormTrainingGrad}, {"sgdUpdate", SgdUpdate}, {"reluGrad", ReluGrad}};
  for (const auto& f : functions) {
    napi_value fn;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.fn, nullptr, &fn);
    napi_set_named_property(env, exports, f.name, fn);
  }
}

}  // namespace wrn
