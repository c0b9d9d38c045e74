// Winograd F(m x m, 3x3) convolutions, m = 2 or 4 (Lavin & Gray 2016), NHWC float32. Per block of output tiles:
// transform each (m+2)x(m+2) input tile channel-wise (V = B^T d B), then for each of the (m+2)^2 transform
// positions one GEMM [tiles x ci] x [ci x co] against the transformed filter (U = G g G^T, once per call), then
// the output transform (Y = A^T M A) with bias and relu. The transforms run along channels, which NHWC keeps
// contiguous, with 16-float vectors compiled three times (portable, AVX2, AVX-512) and picked at run time.
// A block's transformed tiles are a few MB per thread, never the whole batch.
#include "winograd.h"

#include "gemm.h"
#include "parallel.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

// The 16-float vectors are only ever passed between always-inlined functions of one target.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace wrn {
namespace {

// 16 floats: one AVX-512 register, two AVX2 ones, four SSE ones; the compiler splits it per target.
typedef float Vec __attribute__((vector_size(64)));

#define WRN_INLINE __attribute__((always_inline)) inline

template <typename T>
WRN_INLINE T load(const float* p) {
  T v;
  __builtin_memcpy(&v, p, sizeof(T));
  return v;
}

template <typename T>
WRN_INLINE void store(float* p, T v) {
  __builtin_memcpy(p, &v, sizeof(T));
}

template <typename T>
WRN_INLINE T zero() {
  return T{} * 0.f;
}

template <typename T>
WRN_INLINE T relu(T v) {
  if constexpr (sizeof(T) == sizeof(float)) {
    return v > 0.f ? v : 0.f;
  } else {
    const T z = zero<T>();
    return v > z ? v : z;
  }
}

// v = B^T d along one line of the tile: d[k * ds], v[k * vs].
template <int M, typename T>
WRN_INLINE void inputTransform1d(const T* d, int ds, T* v, int vs) {
  if constexpr (M == 2) {
    const T d0 = d[0], d1 = d[ds], d2 = d[2 * ds], d3 = d[3 * ds];
    v[0] = d0 - d2;
    v[vs] = d1 + d2;
    v[2 * vs] = d2 - d1;
    v[3 * vs] = d1 - d3;
  } else {
    const T d0 = d[0], d1 = d[ds], d2 = d[2 * ds], d3 = d[3 * ds], d4 = d[4 * ds], d5 = d[5 * ds];
    v[0] = d0 * 4.f - d2 * 5.f + d4;
    v[vs] = d3 + d4 - (d1 + d2) * 4.f;
    v[2 * vs] = (d1 - d2) * 4.f - d3 + d4;
    v[3 * vs] = (d3 - d1) * 2.f - d2 + d4;
    v[4 * vs] = (d1 - d3) * 2.f - d2 + d4;
    v[5 * vs] = d1 * 4.f - d3 * 5.f + d5;
  }
}

// y = A^T t along one line: t[k * ts] (m + 2 of them), y[k * ys] (m).
template <int M, typename T>
WRN_INLINE void outputTransform1d(const T* t, int ts, T* y, int ys) {
  if constexpr (M == 2) {
    const T t1 = t[ts], t2 = t[2 * ts];
    y[0] = t[0] + t1 + t2;
    y[ys] = t1 - t2 - t[3 * ts];
  } else {
    const T t1 = t[ts], t2 = t[2 * ts], t3 = t[3 * ts], t4 = t[4 * ts];
    const T a = t1 + t2, b = t1 - t2, c = t3 + t4, d = t3 - t4;
    y[0] = t[0] + a + c;
    y[ys] = b + d * 2.f;
    y[2 * ys] = a + c * 4.f;
    y[3 * ys] = b + d * 8.f + t[5 * ts];
  }
}

// Channels [c, c + lanes) of one input tile: pixels[p] points at pixel p's channels (a zero row past the edge);
// writes V[pos] at v + pos * posStride.
template <int M, typename T>
WRN_INLINE void inputTile(const float* const* pixels, int64_t c, float* v, int64_t posStride) {
  constexpr int A = M + 2;
  T d[A * A], t[A * A], col[A];
  for (int p = 0; p < A * A; p++) d[p] = load<T>(pixels[p] + c);
  for (int r = 0; r < A; r++) inputTransform1d<M>(d + r * A, 1, t + r * A, 1);
  for (int j = 0; j < A; j++) {
    inputTransform1d<M>(t + j, A, col, 1);
    for (int i = 0; i < A; i++) store(v + (i * A + j) * posStride, col[i]);
  }
}

// Channels [o, o + lanes) of one output tile from M[pos] at m + pos * posStride; pixels[p] is output pixel p's
// channels, null past the edge.
template <int M, typename T>
WRN_INLINE void outputTile(const float* m, int64_t posStride, const float* bias, bool applyRelu, float* const* pixels, int64_t o) {
  constexpr int A = M + 2;
  T mm[A * A], t[A * M], col[M];
  for (int p = 0; p < A * A; p++) mm[p] = load<T>(m + p * posStride);
  for (int r = 0; r < A; r++) outputTransform1d<M>(mm + r * A, 1, t + r * M, 1);
  const T b = bias != nullptr ? load<T>(bias + o) : zero<T>();
  for (int j = 0; j < M; j++) {
    outputTransform1d<M>(t + j, M, col, 1);
    for (int i = 0; i < M; i++) {
      float* dst = pixels[i * M + j];
      if (dst == nullptr) continue;
      T y = col[i] + b;
      if (applyRelu) y = relu(y);
      store(dst + o, y);
    }
  }
}

// The geometry of one call in tiles.
struct Tiling {
  WinogradShape s;
  int64_t tilesY, tilesX;
  int64_t tiles() const { return s.n * tilesY * tilesX; }
};

// Input transforms of tiles [t0, t0 + count) into v (V[pos][tile][c], posStride = block * ci).
template <int M>
WRN_INLINE void inputBlockBody(const Tiling& g, const float* x, const float* zeros, int64_t t0, int64_t count, float* v, int64_t posStride) {
  constexpr int A = M + 2;
  const WinogradShape& s = g.s;
  const float* pixels[A * A];
  for (int64_t i = 0; i < count; i++) {
    const int64_t t = t0 + i;
    const int64_t b = t / (g.tilesY * g.tilesX);
    const int64_t y0 = (t / g.tilesX) % g.tilesY * M - s.pt;
    const int64_t x0 = t % g.tilesX * M - s.pl;
    for (int r = 0; r < A; r++) {
      const int64_t iy = y0 + r;
      for (int q = 0; q < A; q++) {
        const int64_t ix = x0 + q;
        pixels[r * A + q] = iy < 0 || iy >= s.h || ix < 0 || ix >= s.w ? zeros : x + ((b * s.h + iy) * s.w + ix) * s.ci;
      }
    }
    float* vt = v + i * s.ci;
    int64_t c = 0;
    for (; c + 16 <= s.ci; c += 16) inputTile<M, Vec>(pixels, c, vt + c, posStride);
    for (; c < s.ci; c++) inputTile<M, float>(pixels, c, vt + c, posStride);
  }
}

// Output transforms of tiles [t0, t0 + count) from mb (M[pos][tile][o], posStride = block * co) into out.
template <int M>
WRN_INLINE void outputBlockBody(const Tiling& g, const float* mb, int64_t posStride, const float* bias, bool applyRelu, int64_t t0, int64_t count,
                                float* out) {
  const WinogradShape& s = g.s;
  float* pixels[M * M];
  for (int64_t i = 0; i < count; i++) {
    const int64_t t = t0 + i;
    const int64_t b = t / (g.tilesY * g.tilesX);
    const int64_t y0 = (t / g.tilesX) % g.tilesY * M;
    const int64_t x0 = t % g.tilesX * M;
    for (int r = 0; r < M; r++) {
      for (int q = 0; q < M; q++) {
        const int64_t oy = y0 + r, ox = x0 + q;
        pixels[r * M + q] = oy < s.ho && ox < s.wo ? out + ((b * s.ho + oy) * s.wo + ox) * s.co : nullptr;
      }
    }
    const float* mt = mb + i * s.co;
    int64_t o = 0;
    for (; o + 16 <= s.co; o += 16) outputTile<M, Vec>(mt + o, posStride, bias, applyRelu, pixels, o);
    for (; o < s.co; o++) outputTile<M, float>(mt + o, posStride, bias, applyRelu, pixels, o);
  }
}

// u = A y along one line of a dy tile (m values in, m + 2 out): the transpose of the output transform, which the
// filter gradient applies to dy (dL/dg = G^T [sum over tiles of (B^T d B) * (A dy A^T)] G).
template <int M, typename T>
WRN_INLINE void gradTransform1d(const T* y, int ys, T* u, int us) {
  if constexpr (M == 2) {
    const T y0 = y[0], y1 = y[ys];
    u[0] = y0;
    u[us] = y0 + y1;
    u[2 * us] = y0 - y1;
    u[3 * us] = zero<T>() - y1;
  } else {
    const T y0 = y[0], y1 = y[ys], y2 = y[2 * ys], y3 = y[3 * ys];
    const T a = y0 + y2, b = y1 + y3, c = y0 + y2 * 4.f, d = (y1 + y3 * 4.f) * 2.f;
    u[0] = y0;
    u[us] = a + b;
    u[2 * us] = a - b;
    u[3 * us] = c + d;
    u[4 * us] = c - d;
    u[5 * us] = y3;
  }
}

// Channels [o, o + lanes) of one dy tile: pixels[p] points at output pixel p's channels (a zero row past the edge);
// writes (A dy A^T)[pos] at w + pos * posStride.
template <int M, typename T>
WRN_INLINE void gradTile(const float* const* pixels, int64_t o, float* w, int64_t posStride) {
  constexpr int A = M + 2;
  T y[M * M], t[M * A], col[A];
  for (int p = 0; p < M * M; p++) y[p] = load<T>(pixels[p] + o);
  for (int r = 0; r < M; r++) gradTransform1d<M>(y + r * M, 1, t + r * A, 1);
  for (int j = 0; j < A; j++) {
    gradTransform1d<M>(t + j, A, col, 1);
    for (int i = 0; i < A; i++) store(w + (i * A + j) * posStride, col[i]);
  }
}

// dy's transforms of tiles [t0, t0 + count) into w (W[pos][tile][o], posStride = block * co).
template <int M>
WRN_INLINE void gradBlockBody(const Tiling& g, const float* dy, const float* zeros, int64_t t0, int64_t count, float* w, int64_t posStride) {
  const WinogradShape& s = g.s;
  const float* pixels[M * M];
  for (int64_t i = 0; i < count; i++) {
    const int64_t t = t0 + i;
    const int64_t b = t / (g.tilesY * g.tilesX);
    const int64_t y0 = (t / g.tilesX) % g.tilesY * M;
    const int64_t x0 = t % g.tilesX * M;
    for (int r = 0; r < M; r++) {
      for (int q = 0; q < M; q++) {
        const int64_t oy = y0 + r, ox = x0 + q;
        pixels[r * M + q] = oy < s.ho && ox < s.wo ? dy + ((b * s.ho + oy) * s.wo + ox) * s.co : zeros;
      }
    }
    float* wt = w + i * s.co;
    int64_t o = 0;
    for (; o + 16 <= s.co; o += 16) gradTile<M, Vec>(pixels, o, wt + o, posStride);
    for (; o < s.co; o++) gradTile<M, float>(pixels, o, wt + o, posStride);
  }
}

#if defined(__x86_64__) || defined(_M_X64)
#define WRN_X86 1
#endif

// The transforms compiled for each ISA: the bodies are inlined into each, so each gets its own vector code.
#define WRN_BLOCK_FUNCTIONS(SUFFIX, TARGET)                                                                                            \
  template <int M>                                                                                                                   \
  TARGET void inputBlock##SUFFIX(const Tiling& g, const float* x, const float* zeros, int64_t t0, int64_t count, float* v, int64_t ps) { \
    inputBlockBody<M>(g, x, zeros, t0, count, v, ps);                                                                                \
  }                                                                                                                                  \
  template <int M>                                                                                                                   \
  TARGET void outputBlock##SUFFIX(const Tiling& g, const float* mb, int64_t ps, const float* bias, bool r, int64_t t0, int64_t count,    \
                                  float* out) {                                                                                      \
    outputBlockBody<M>(g, mb, ps, bias, r, t0, count, out);                                                                          \
  }                                                                                                                                  \
  template <int M>                                                                                                                   \
  TARGET void gradBlock##SUFFIX(const Tiling& g, const float* dy, const float* zeros, int64_t t0, int64_t count, float* w, int64_t ps) { \
    gradBlockBody<M>(g, dy, zeros, t0, count, w, ps);                                                                                \
  }

WRN_BLOCK_FUNCTIONS(Portable, )
#ifdef WRN_X86
WRN_BLOCK_FUNCTIONS(Avx2, __attribute__((target("avx2,fma"))))
WRN_BLOCK_FUNCTIONS(Avx512, __attribute__((target("avx512f"))))
#endif

enum class TransformIsa { Portable, Avx2, Avx512 };

// WRN_NATIVE_ISA=portable forces the portable transforms, =avx2 (or avx2+fma) caps them at AVX2.
TransformIsa pickTransformIsa() {
  const char* forced = std::getenv("WRN_NATIVE_ISA");
  const std::string cap = forced != nullptr ? forced : "";
  if (cap == "portable") return TransformIsa::Portable;
#ifdef WRN_X86
  __builtin_cpu_init();
  if (cap != "avx2" && cap != "avx2+fma" && __builtin_cpu_supports("avx512f")) return TransformIsa::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return TransformIsa::Avx2;
#endif
  return TransformIsa::Portable;
}

const TransformIsa TRANSFORM_ISA = pickTransformIsa();

const char* transformIsaName() {
  switch (TRANSFORM_ISA) {
    case TransformIsa::Avx512:
      return "avx512f";
    case TransformIsa::Avx2:
      return "avx2+fma";
    default:
      return "portable";
  }
}

template <int M>
void inputBlock(const Tiling& g, const float* x, const float* zeros, int64_t t0, int64_t count, float* v, int64_t ps) {
#ifdef WRN_X86
  if (TRANSFORM_ISA == TransformIsa::Avx512) return inputBlockAvx512<M>(g, x, zeros, t0, count, v, ps);
  if (TRANSFORM_ISA == TransformIsa::Avx2) return inputBlockAvx2<M>(g, x, zeros, t0, count, v, ps);
#endif
  inputBlockPortable<M>(g, x, zeros, t0, count, v, ps);
}

template <int M>
void outputBlock(const Tiling& g, const float* mb, int64_t ps, const float* bias, bool r, int64_t t0, int64_t count, float* out) {
#ifdef WRN_X86
  if (TRANSFORM_ISA == TransformIsa::Avx512) return outputBlockAvx512<M>(g, mb, ps, bias, r, t0, count, out);
  if (TRANSFORM_ISA == TransformIsa::Avx2) return outputBlockAvx2<M>(g, mb, ps, bias, r, t0, count, out);
#endif
  outputBlockPortable<M>(g, mb, ps, bias, r, t0, count, out);
}

template <int M>
void gradBlock(const Tiling& g, const float* dy, const float* zeros, int64_t t0, int64_t count, float* w, int64_t ps) {
#ifdef WRN_X86
  if (TRANSFORM_ISA == TransformIsa::Avx512) return gradBlockAvx512<M>(g, dy, zeros, t0, count, w, ps);
  if (TRANSFORM_ISA == TransformIsa::Avx2) return gradBlockAvx2<M>(g, dy, zeros, t0, count, w, ps);
#endif
  gradBlockPortable<M>(g, dy, zeros, t0, count, w, ps);
}

// G, the filter transform's (m + 2) x 3 matrix.
constexpr float G2[4][3] = {{1.f, 0.f, 0.f}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0.f, 0.f, 1.f}};
constexpr float G4[6][3] = {{1.f / 4, 0.f, 0.f},         {-1.f / 6, -1.f / 6, -1.f / 6}, {-1.f / 6, 1.f / 6, -1.f / 6},
                            {1.f / 24, 1.f / 12, 1.f / 6}, {1.f / 24, -1.f / 12, 1.f / 6}, {0.f, 0.f, 1.f}};

// U[pos][c][o] = (G g G^T)[pos] for g = filter[., ., c, o] ([3, 3, ci, co]); u holds (m + 2)^2 * ci * co floats.
template <int M>
void filterTransform(const float* filter, int64_t ci, int64_t co, float* u) {
  constexpr int A = M + 2;
  const float(*G)[3] = M == 2 ? G2 : G4;
  parallelFor(ci, 1, [&](int, int64_t c0, int64_t c1) {
    std::vector<float> tmp(static_cast<size_t>(A * 3 * co));  // (G g)[i][kx][o]
    for (int64_t c = c0; c < c1; c++) {
      std::fill(tmp.begin(), tmp.end(), 0.f);
      for (int i = 0; i < A; i++) {
        for (int ky = 0; ky < 3; ky++) {
          const float gi = G[i][ky];
          if (gi == 0.f) continue;
          for (int kx = 0; kx < 3; kx++) {
            const float* f = filter + ((ky * 3 + kx) * ci + c) * co;
            float* t = tmp.data() + (i * 3 + kx) * co;
            for (int64_t o = 0; o < co; o++) t[o] += gi * f[o];
          }
        }
      }
      for (int i = 0; i < A; i++) {
        for (int j = 0; j < A; j++) {
          float* dst = u + ((i * A + j) * ci + c) * co;
          std::fill(dst, dst + co, 0.f);
          for (int kx = 0; kx < 3; kx++) {
            const float gj = G[j][kx];
            if (gj == 0.f) continue;
            const float* t = tmp.data() + (i * 3 + kx) * co;
            for (int64_t o = 0; o < co; o++) dst[o] += gj * t[o];
          }
        }
      }
    }
  });
}

// Tiles per block: the block's V and M (positions x tiles x (ci + co) floats) near 8 MB per thread, within 96..180
// tiles, so that the GEMMs' packing of U is spread over many rows (tools/bench/winograd-ab.ts --blocks: 48 was
// up to 1.4x slower than 180 on WRN-16-4's 256 channels, 240 no faster). WRN_NATIVE_WINOGRAD_BLOCK=N sets N tiles,
// read at each call so that tools/bench/winograd-ab.ts --blocks can interleave block sizes in one process.
int64_t blockTiles(int a2, int64_t ci, int64_t co) {
  const char* env = std::getenv("WRN_NATIVE_WINOGRAD_BLOCK");
  const int64_t forced = env != nullptr ? std::atoll(env) : 0;
  if (forced > 0) return forced;
  constexpr int64_t BYTES = int64_t{8} << 20;
  const int64_t tiles = BYTES / (a2 * (ci + co) * int64_t{sizeof(float)});
  return std::clamp<int64_t>(tiles / 6 * 6, 96, 180);
}

// A block no larger than `block` that splits `tiles` evenly over the threads, in whole micro-kernel rows: 8x8 px at
// batch 64 is 256 tiles, which blocks of 180 split 180 / 76 over 2 threads, blocks of 132 132 / 124 (4-5% faster
// per forward conv, 3 rounds of interleaved medians, WRN_NATIVE_WINOGRAD_BLOCK=180 vs 132; 128, no whole rows, was
// 10% slower). Larger layers keep their block. A forced WRN_NATIVE_WINOGRAD_BLOCK is kept as it is.
int64_t balancedBlock(int64_t tiles, int64_t block) {
  if (std::getenv("WRN_NATIVE_WINOGRAD_BLOCK") != nullptr) return block;
  const int64_t threads = threadCount();
  const int64_t blocks = (tiles + block - 1) / block;
  const int64_t parts = (blocks + threads - 1) / threads * threads;  // blocks rounded up to a multiple of the threads
  const int64_t even = (tiles + parts - 1) / parts;
  const int64_t rowTile = gemmRowTile();
  return std::min(block, (even + rowTile - 1) / rowTile * rowTile);
}

// Per thread, reused across calls.
struct WinogradBuffers {
  GemmWorkspace ws;
  std::vector<float> v, m, zeros;
};

WinogradBuffers& winogradBuffers() {
  thread_local WinogradBuffers buffers;
  return buffers;
}

float* sized(std::vector<float>& buffer, int64_t size) {
  if (buffer.size() < static_cast<size_t>(size)) buffer.assign(static_cast<size_t>(size), 0.f);
  return buffer.data();
}

// The calling thread's transformed filter, reused across calls.
std::vector<float>& filterBuffer() {
  thread_local std::vector<float> u;
  return u;
}

template <int M>
void conv(const WinogradShape& s, const float* x, const float* filter, const float* bias, bool relu, float* out) {
  constexpr int A = M + 2;
  const Tiling g{s, (s.ho + M - 1) / M, (s.wo + M - 1) / M};
  float* u = sized(filterBuffer(), int64_t{A * A} * s.ci * s.co);
  filterTransform<M>(filter, s.ci, s.co, u);
  const int64_t block = balancedBlock(g.tiles(), blockTiles(A * A, s.ci, s.co));
  parallelFor(g.tiles(), block, [&](int, int64_t begin, int64_t end) {
    WinogradBuffers& buffers = winogradBuffers();
    float* v = sized(buffers.v, A * A * block * s.ci);
    float* mb = sized(buffers.m, A * A * block * s.co);
    const float* zeros = sized(buffers.zeros, s.ci);  // never written: sized() zero-fills
    for (int64_t t0 = begin; t0 < end; t0 += block) {
      const int64_t count = std::min(block, end - t0);
      inputBlock<M>(g, x, zeros, t0, count, v, block * s.ci);
      for (int pos = 0; pos < A * A; pos++) {
        gemm(count, s.co, s.ci, {v + pos * block * s.ci, s.ci, 1}, {u + pos * s.ci * s.co, s.co, 1}, mb + pos * block * s.co, s.co, false, buffers.ws);
      }
      outputBlock<M>(g, mb, block * s.co, bias, relu, t0, count, out);
    }
  });
}

// dw = sum over tiles of G^T [(B^T d B) * (A dy A^T)] G: per block, x's and dy's tiles transformed, then per
// position one GEMM [ci x tiles] x [tiles x co] accumulated into the thread's own sums S[pos][ci][co]; the threads'
// sums added, then G^T S G once.
template <int M>
void filterGrad(const WinogradShape& s, const float* x, const float* dy, float* dw) {
  constexpr int A = M + 2;
  const Tiling g{s, (s.ho + M - 1) / M, (s.wo + M - 1) / M};
  const int64_t block = blockTiles(A * A, s.ci, s.co);
  const int64_t sums = int64_t{A * A} * s.ci * s.co;
  std::vector<std::vector<float>> partials(static_cast<size_t>(threadCount()));
  parallelFor(g.tiles(), block, [&](int thread, int64_t begin, int64_t end) {
    WinogradBuffers& buffers = winogradBuffers();
    float* v = sized(buffers.v, A * A * block * s.ci);
    float* w = sized(buffers.m, A * A * block * s.co);
    const float* zeros = sized(buffers.zeros, std::max(s.ci, s.co));
    std::vector<float>& acc = partials[static_cast<size_t>(thread)];
    acc.resize(static_cast<size_t>(sums));
    for (int64_t t0 = begin; t0 < end; t0 += block) {
      const int64_t count = std::min(block, end - t0);
      inputBlock<M>(g, x, zeros, t0, count, v, block * s.ci);
      gradBlock<M>(g, dy, zeros, t0, count, w, block * s.co);
      for (int pos = 0; pos < A * A; pos++) {
        // A(c, t) = V[pos][t][c]: the transposed tiles, which gemm packs.
        gemm(s.ci, s.co, count, {v + pos * block * s.ci, 1, s.ci}, {w + pos * block * s.co, s.co, 1}, acc.data() + pos * s.ci * s.co, s.co, t0 != begin,
             buffers.ws);
      }
    }
  });
  float* total = partials[0].data();
  for (size_t t = 1; t < partials.size(); t++) {
    if (partials[t].empty()) continue;
    const float* p = partials[t].data();
    for (int64_t i = 0; i < sums; i++) total[i] += p[i];
  }
  const float(*G)[3] = M == 2 ? G2 : G4;
  parallelFor(s.ci, 1, [&](int, int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; c++) {
      for (int ky = 0; ky < 3; ky++) {
        for (int kx = 0; kx < 3; kx++) {
          float* dst = dw + ((ky * 3 + kx) * s.ci + c) * s.co;
          std::fill(dst, dst + s.co, 0.f);
          for (int i = 0; i < A; i++) {
            for (int j = 0; j < A; j++) {
              const float gij = G[i][ky] * G[j][kx];
              if (gij == 0.f) continue;
              const float* src = total + ((i * A + j) * s.ci + c) * s.co;
              for (int64_t o = 0; o < s.co; o++) dst[o] += gij * src[o];
            }
          }
        }
      }
    }
  });
}

// The env switch: -1 = the rule, 0 = off, 2 or 4 = forced. Read at each call (a getenv, nothing beside a conv),
// so that an A/B (tools/bench/winograd-ab.ts --models) can switch it between the steps of one process.
int winogradSetting() {
  const char* env = std::getenv("WRN_NATIVE_WINOGRAD");
  if (env == nullptr) return -1;
  const std::string v(env);
  if (v == "0" || v == "off") return 0;
  if (v == "2") return 2;
  if (v == "4") return 4;
  return -1;
}

}  // namespace

int winogradTile(const WinogradShape& s, WinogradPass pass) {
  const int setting = winogradSetting();
  if (setting == 0 || s.pt > 2 || s.pl > 2 || s.pt < 0 || s.pl < 0) return 0;
  if (setting > 0) return setting;
  // The measured rule (tools/bench/winograd-ab.ts, batch 64, 2 threads): F(4x4) beat the im2col GEMM by 1.3-3x,
  // and F(2x2), in all three passes of every 3x3 stride-1 shape of ResNet-20, WRN-16-4 and ResNeXt-29's groups,
  // except the gradients of the 3-channel stem (a tie or a loss: the transforms' scalar tail over 3 channels
  // costs what Winograd saves). Its forward pass gains.
  if (pass != WinogradPass::Forward && s.ci < 16) return 0;
  return 4;
}

void winogradConv2d(const WinogradShape& s, int tile, const float* x, const float* filter, const float* bias, bool relu, float* out) {
  if (tile == 2) {
    conv<2>(s, x, filter, bias, relu, out);
  } else {
    conv<4>(s, x, filter, bias, relu, out);
  }
}

void winogradConv2dBackpropInput(const WinogradShape& s, int tile, const float* dy, const float* filter, float* dx) {
  // rotated[ky][kx][o][c] = filter[2 - ky][2 - kx][c][o]: dx is dy convolved with it, dy's channels in.
  thread_local std::vector<float> rotated;
  float* r = sized(rotated, 9 * s.ci * s.co);
  for (int k = 0; k < 9; k++) {
    const float* src = filter + (8 - k) * s.ci * s.co;
    float* dst = r + k * s.ci * s.co;
    for (int64_t c = 0; c < s.ci; c++) {
      for (int64_t o = 0; o < s.co; o++) dst[o * s.ci + c] = src[c * s.co + o];
    }
  }
  const WinogradShape back{s.n, s.ho, s.wo, s.co, s.ci, s.h, s.w, 2 - s.pt, 2 - s.pl};
  winogradConv2d(back, tile, dy, r, nullptr, false, dx);
}

void winogradConv2dBackpropFilter(const WinogradShape& s, int tile, const float* x, const float* dy, float* dw) {
  if (tile == 2) {
    filterGrad<2>(s, x, dy, dw);
  } else {
    filterGrad<4>(s, x, dy, dw);
  }
}

bool winogradConv2dIfFaster(const WinogradShape& s, const float* x, const float* filter, const float* bias, bool relu, float* out) {
  const int tile = winogradTile(s, WinogradPass::Forward);
  if (tile == 0) return false;
  winogradConv2d(s, tile, x, filter, bias, relu, out);
  return true;
}

bool winogradConv2dBackpropInputIfFaster(const WinogradShape& s, const float* dy, const float* filter, float* dx) {
  const int tile = winogradTile(s, WinogradPass::InputGrad);
  if (tile == 0) return false;
  winogradConv2dBackpropInput(s, tile, dy, filter, dx);
  return true;
}

bool winogradConv2dBackpropFilterIfFaster(const WinogradShape& s, const float* x, const float* dy, float* dw) {
  const int tile = winogradTile(s, WinogradPass::FilterGrad);
  if (tile == 0) return false;
  winogradConv2dBackpropFilter(s, tile, x, dy, dw);
  return true;
}

// ---- N-API glue ----
namespace {

napi_value throwError(napi_env env, const std::string& message) {
  napi_throw_type_error(env, "ERR_WRN_NATIVE", message.c_str());
  return nullptr;
}

// [n, h, w, ci, kh, kw, co, ho, wo, sh, sw, padTop, padLeft], as conv2d takes it; must be 3x3, stride 1, pads 0..2.
bool readShape(napi_env env, napi_value value, WinogradShape& s, std::string& error) {
  int64_t v[13];
  for (uint32_t i = 0; i < 13; i++) {
    napi_value item;
    if (napi_get_element(env, value, i, &item) != napi_ok || napi_get_value_int64(env, item, &v[i]) != napi_ok) {
      error = "shape must be 13 integers [n, h, w, ci, kh, kw, co, ho, wo, sh, sw, padTop, padLeft]";
      return false;
    }
  }
  for (int i = 0; i < 11; i++) {
    if (v[i] < 1) {
      error = "shape[" + std::to_string(i) + "] must be at least 1, got " + std::to_string(v[i]);
      return false;
    }
  }
  if (v[4] != 3 || v[5] != 3 || v[9] != 1 || v[10] != 1) {
    error = "the filter must be 3x3 with stride 1, got " + std::to_string(v[4]) + "x" + std::to_string(v[5]) + " stride " + std::to_string(v[9]) + "x" +
            std::to_string(v[10]);
    return false;
  }
  if (v[11] < 0 || v[11] > 2 || v[12] < 0 || v[12] > 2) {
    error = "padding (" + std::to_string(v[11]) + ", " + std::to_string(v[12]) + ") must be 0..2";
    return false;
  }
  s = {v[0], v[1], v[2], v[3], v[6], v[7], v[8], v[11], v[12]};
  return true;
}

bool floats(napi_env env, napi_value value, const char* name, int64_t expected, float** data, std::string& error) {
  bool isTypedArray = false;
  napi_is_typedarray(env, value, &isTypedArray);
  napi_typedarray_type type;
  size_t length = 0;
  void* ptr = nullptr;
  if (!isTypedArray || napi_get_typedarray_info(env, value, &type, &length, &ptr, nullptr, nullptr) != napi_ok || type != napi_float32_array) {
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

bool readTile(napi_env env, napi_value value, int& tile, std::string& error) {
  int32_t t = 0;
  if (napi_get_value_int32(env, value, &t) != napi_ok || (t != 2 && t != 4)) {
    error = "tile must be 2 or 4";
    return false;
  }
  tile = t;
  return true;
}

// winogradConv2d(shape, x, filter, out, bias | null, relu, tile)
napi_value Conv2d(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value args[7];
  napi_get_cb_info(env, info, &argc, args, nullptr, nullptr);
  std::string error;
  WinogradShape s{};
  float *x = nullptr, *filter = nullptr, *out = nullptr, *bias = nullptr;
  bool relu = false;
  int tile = 0;
  if (argc < 7) {
    error = "takes the geometry, x, filter, out, bias | null, relu, tile";
  } else if (readShape(env, args[0], s, error) && floats(env, args[1], "x", s.n * s.h * s.w * s.ci, &x, error) &&
             floats(env, args[2], "filter", 9 * s.ci * s.co, &filter, error) && floats(env, args[3], "out", s.n * s.ho * s.wo * s.co, &out, error) &&
             readTile(env, args[6], tile, error)) {
    napi_valuetype type;
    napi_typeof(env, args[4], &type);
    if (type != napi_null && type != napi_undefined) floats(env, args[4], "bias", s.co, &bias, error);
    napi_get_value_bool(env, args[5], &relu);
  }
  if (!error.empty()) return throwError(env, "winogradConv2d: " + error);
  winogradConv2d(s, tile, x, filter, bias, relu, out);
  return nullptr;
}

// winogradConv2dBackpropInput(shape, dy, filter, dx, tile)
napi_value Conv2dBackpropInput(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value args[5];
  napi_get_cb_info(env, info, &argc, args, nullptr, nullptr);
  std::string error;
  WinogradShape s{};
  float *dy = nullptr, *filter = nullptr, *dx = nullptr;
  int tile = 0;
  if (argc < 5) {
    error = "takes the geometry, dy, filter, dx, tile";
  } else if (readShape(env, args[0], s, error) && floats(env, args[1], "dy", s.n * s.ho * s.wo * s.co, &dy, error) &&
             floats(env, args[2], "filter", 9 * s.ci * s.co, &filter, error) && floats(env, args[3], "dx", s.n * s.h * s.w * s.ci, &dx, error)) {
    readTile(env, args[4], tile, error);
  }
  if (!error.empty()) return throwError(env, "winogradConv2dBackpropInput: " + error);
  winogradConv2dBackpropInput(s, tile, dy, filter, dx);
  return nullptr;
}

// winogradConv2dBackpropFilter(shape, x, dy, dw, tile)
napi_value Conv2dBackpropFilter(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value args[5];
  napi_get_cb_info(env, info, &argc, args, nullptr, nullptr);
  std::string error;
  WinogradShape s{};
  float *x = nullptr, *dy = nullptr, *dw = nullptr;
  int tile = 0;
  if (argc < 5) {
    error = "takes the geometry, x, dy, dw, tile";
  } else if (readShape(env, args[0], s, error) && floats(env, args[1], "x", s.n * s.h * s.w * s.ci, &x, error) &&
             floats(env, args[2], "dy", s.n * s.ho * s.wo * s.co, &dy, error) && floats(env, args[3], "dw", 9 * s.ci * s.co, &dw, error)) {
    readTile(env, args[4], tile, error);
  }
  if (!error.empty()) return throwError(env, "winogradConv2dBackpropFilter: " + error);
  winogradConv2dBackpropFilter(s, tile, x, dy, dw);
  return nullptr;
}

// winogradTile(shape, pass): the tile conv2d (pass 0), conv2dBackpropInput (1) or conv2dBackpropFilter (2) uses
// for this shape, 0 = im2col (also for any shape Winograd does not compute).
napi_value Tile(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value args[2];
  napi_get_cb_info(env, info, &argc, args, nullptr, nullptr);
  std::string error;
  WinogradShape s{};
  int32_t pass = -1;
  int tile = 0;
  if (argc < 2 || napi_get_value_int32(env, args[1], &pass) != napi_ok || pass < 0 || pass > 2) {
    return throwError(env, "winogradTile: takes the geometry and the pass (0 forward, 1 input gradient, 2 filter gradient)");
  }
  if (readShape(env, args[0], s, error)) tile = winogradTile(s, static_cast<WinogradPass>(pass));
  napi_value result;
  napi_create_int32(env, tile, &result);
  return result;
}

}  // namespace

void registerWinograd(napi_env env, napi_value exports) {
  const struct {
    const char* name;
    napi_callback fn;
  } functions[] = {{"winogradConv2d", Conv2d}, {"winogradConv2dBackpropInput", Conv2dBackpropInput}, {"winogradConv2dBackpropFilter", Conv2dBackpropFilter}, {"winogradTile", Tile}};
  for (const auto& f : functions) {
    napi_value fn;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.fn, nullptr, &fn);
    napi_set_named_property(env, exports, f.name, fn);
  }
  napi_value isa;
  napi_create_string_utf8(env, transformIsaName(), NAPI_AUTO_LENGTH, &isa);
  napi_set_named_property(env, exports, "winogradIsa", isa);
}

}  // namespace wrn
