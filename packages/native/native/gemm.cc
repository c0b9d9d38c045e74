// The one GEMM under @wrn/native's convolutions, BLIS-style: pack a KC x NC block of B and an MC x KC block of A
// into panels, then an MR x NR register-blocked micro-kernel. The micro-kernel is chosen at run time: AVX-512F
// (12 x 32, or 12 x 16 where C has at most 16 columns) where the CPU has it, else AVX2+FMA (6 x 16), else portable
// C++ that the compiler vectorises. Single-threaded (but for packB): callers split the work.
#include "gemm.h"

#include "parallel.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define WRN_X86 1
#endif

namespace wrn {
namespace {

// A tile of A as a micro-kernel reads it: element (r, k) is a[r * rowStride + k * kStride]. Either a packed panel
// (rowStride 1, kStride MR) or A itself when its rows are contiguous (rowStride lda, kStride 1): for narrow outputs
// (16 channels) packing A costs as much as the multiply-adds it feeds.
struct TileA {
  const float* a;
  int64_t rowStride;
  int64_t kStride;
};

using Kernel = void (*)(int kc, const TileA& a, const float* b, float* c, int64_t ldc, int mr, int nr, bool accumulate);

// A micro-kernel, the shape of its tile and the cache blocking that feeds it.
struct MicroKernel {
  Kernel fn;
  int mr, nr;      // the tile C[mr x nr] it computes
  int mc, kc, nc;  // A blocks of mc x kc (L2), B panels of kc x nr (L1), B blocks of kc x nc
  bool inPlaceA;   // reads A's contiguous rows where they are, unpacked
};

constexpr int MAX_MC = 192;
constexpr int MAX_KC = 256;
constexpr int MAX_NC = 512;

// C[mr x nr] (+)= A[MR x kc] * B[kc x NR panel].
template <int MR, int NR>
void kernelPortable(int kc, const TileA& a, const float* b, float* c, int64_t ldc, int mr, int nr, bool accumulate) {
  float t[MR][NR] = {};
  for (int k = 0; k < kc; k++) {
    const float* bk = b + k * NR;
    for (int i = 0; i < MR; i++) {
      const float ai = a.a[i * a.rowStride + k * a.kStride];
      for (int j = 0; j < NR; j++) t[i][j] += ai * bk[j];
    }
  }
  for (int i = 0; i < mr; i++) {
    float* ci = c + i * ldc;
    if (accumulate) {
      for (int j = 0; j < nr; j++) ci[j] += t[i][j];
    } else {
      for (int j = 0; j < nr; j++) ci[j] = t[i][j];
    }
  }
}

#ifdef WRN_X86
// Packed A (or A transposed) is one pointer stepping kStride per k; A read in place is six row pointers stepping 1
// (six more adds per k, which measurably slows the packed case, so each case gets its own loop).
template <bool Packed>
__attribute__((target("avx2,fma"), always_inline)) inline void kernelAvx2Body(int kc, const TileA& a, const float* b, float* c, int64_t ldc,
                                                                          int mr, int nr, bool accumulate) {
  constexpr int MR = 6;
  constexpr int NR = 16;
  const int64_t lda = a.rowStride;
  const float *a0 = a.a, *a1 = a.a + lda, *a2 = a.a + 2 * lda, *a3 = a.a + 3 * lda, *a4 = a.a + 4 * lda, *a5 = a.a + 5 * lda;
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(), c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  for (int k = 0; k < kc; k++) {
    const __m256 b0 = _mm256_loadu_ps(b);
    const __m256 b1 = _mm256_loadu_ps(b + 8);
    __m256 ai = _mm256_broadcast_ss(a0);
    c00 = _mm256_fmadd_ps(ai, b0, c00);
    c01 = _mm256_fmadd_ps(ai, b1, c01);
    ai = _mm256_broadcast_ss(Packed ? a0 + 1 : a1);
    c10 = _mm256_fmadd_ps(ai, b0, c10);
    c11 = _mm256_fmadd_ps(ai, b1, c11);
    ai = _mm256_broadcast_ss(Packed ? a0 + 2 : a2);
    c20 = _mm256_fmadd_ps(ai, b0, c20);
    c21 = _mm256_fmadd_ps(ai, b1, c21);
    ai = _mm256_broadcast_ss(Packed ? a0 + 3 : a3);
    c30 = _mm256_fmadd_ps(ai, b0, c30);
    c31 = _mm256_fmadd_ps(ai, b1, c31);
    ai = _mm256_broadcast_ss(Packed ? a0 + 4 : a4);
    c40 = _mm256_fmadd_ps(ai, b0, c40);
    c41 = _mm256_fmadd_ps(ai, b1, c41);
    ai = _mm256_broadcast_ss(Packed ? a0 + 5 : a5);
    c50 = _mm256_fmadd_ps(ai, b0, c50);
    c51 = _mm256_fmadd_ps(ai, b1, c51);
    if (Packed) {
      a0 += a.kStride;
    } else {
      a0++;
      a1++;
      a2++;
      a3++;
      a4++;
      a5++;
    }
    b += NR;
  }
  alignas(32) float t[MR][NR];
  _mm256_store_ps(t[0], c00);
  _mm256_store_ps(t[0] + 8, c01);
  _mm256_store_ps(t[1], c10);
  _mm256_store_ps(t[1] + 8, c11);
  _mm256_store_ps(t[2], c20);
  _mm256_store_ps(t[2] + 8, c21);
  _mm256_store_ps(t[3], c30);
  _mm256_store_ps(t[3] + 8, c31);
  _mm256_store_ps(t[4], c40);
  _mm256_store_ps(t[4] + 8, c41);
  _mm256_store_ps(t[5], c50);
  _mm256_store_ps(t[5] + 8, c51);
  if (nr == NR) {
    for (int i = 0; i < mr; i++) {
      float* ci = c + i * ldc;
      __m256 lo = _mm256_load_ps(t[i]);
      __m256 hi = _mm256_load_ps(t[i] + 8);
      if (accumulate) {
        lo = _mm256_add_ps(lo, _mm256_loadu_ps(ci));
        hi = _mm256_add_ps(hi, _mm256_loadu_ps(ci + 8));
      }
      _mm256_storeu_ps(ci, lo);
      _mm256_storeu_ps(ci + 8, hi);
    }
    return;
  }
  for (int i = 0; i < mr; i++) {
    float* ci = c + i * ldc;
    if (accumulate) {
      for (int j = 0; j < nr; j++) ci[j] += t[i][j];
    } else {
      for (int j = 0; j < nr; j++) ci[j] = t[i][j];
    }
  }
}

__attribute__((target("avx2,fma"))) void kernelAvx2(int kc, const TileA& a, const float* b, float* c, int64_t ldc, int mr, int nr,
                                                   bool accumulate) {
  if (a.kStride == 1) {
    kernelAvx2Body<false>(kc, a, b, c, ldc, mr, nr, accumulate);
  } else {
    kernelAvx2Body<true>(kc, a, b, c, ldc, mr, nr, accumulate);
  }
}

// C[mr x nr] (+)= A[MR x kc] * B[kc x 16V panel] in MR x V zmm accumulators; A's element broadcast from memory.
// A read in place keeps one pointer per three rows (row r is base[r / 3] + (r % 3) * lda, an address mode x86 has)
// so that the row pointers fit the 16 general registers beside the loop's own.
template <int MR, int V, bool Packed>
__attribute__((target("avx512f"), always_inline)) inline void kernelAvx512Body(int kc, const TileA& a, const float* b, float* c, int64_t ldc,
                                                                            int mr, int nr, bool accumulate) {
  constexpr int NR = 16 * V;
  constexpr int BASES = (MR + 2) / 3;
  __m512 acc[MR][V];
#pragma GCC unroll 32
  for (int i = 0; i < MR; i++) {
#pragma GCC unroll 4
    for (int j = 0; j < V; j++) acc[i][j] = _mm512_setzero_ps();
  }
  const int64_t lda = a.rowStride;
  const float* base[BASES];
#pragma GCC unroll 16
  for (int g = 0; g < BASES; g++) base[g] = a.a + (Packed ? 0 : 3 * g * lda);
  for (int k = 0; k < kc; k++) {
    __m512 bv[V];
#pragma GCC unroll 4
    for (int j = 0; j < V; j++) bv[j] = _mm512_loadu_ps(b + 16 * j);
#pragma GCC unroll 32
    for (int i = 0; i < MR; i++) {
      const __m512 ai = _mm512_set1_ps(Packed ? base[0][i] : base[i / 3][(i % 3) * lda]);
#pragma GCC unroll 4
      for (int j = 0; j < V; j++) acc[i][j] = _mm512_fmadd_ps(ai, bv[j], acc[i][j]);
    }
    if (Packed) {
      base[0] += a.kStride;
    } else {
#pragma GCC unroll 16
      for (int g = 0; g < BASES; g++) base[g]++;
    }
    b += NR;
  }
  __mmask16 masks[V];
#pragma GCC unroll 4
  for (int j = 0; j < V; j++) {
    const int cols = std::clamp(nr - 16 * j, 0, 16);
    masks[j] = static_cast<__mmask16>((1u << cols) - 1u);
  }
#pragma GCC unroll 32
  for (int i = 0; i < MR; i++) {
    if (i >= mr) break;
    float* ci = c + i * ldc;
#pragma GCC unroll 4
    for (int j = 0; j < V; j++) {
      __m512 v = acc[i][j];
      if (nr == NR) {
        if (accumulate) v = _mm512_add_ps(v, _mm512_loadu_ps(ci + 16 * j));
        _mm512_storeu_ps(ci + 16 * j, v);
      } else {
        if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(masks[j], ci + 16 * j));
        _mm512_mask_storeu_ps(ci + 16 * j, masks[j], v);
      }
    }
  }
}

template <int MR, int V>
__attribute__((target("avx512f"))) void kernelAvx512(int kc, const TileA& a, const float* b, float* c, int64_t ldc, int mr, int nr,
                                                    bool accumulate) {
  if (a.kStride == 1) {
    kernelAvx512Body<MR, V, false>(kc, a, b, c, ldc, mr, nr, accumulate);
  } else {
    kernelAvx512Body<MR, V, true>(kc, a, b, c, ldc, mr, nr, accumulate);
  }
}

bool cpuHasAvx2Fma() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

bool cpuHasAvx512f() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f");
}
#endif

// The micro-kernels of one ISA: `wide` for C with more than 16 columns, `narrow` for the rest.
struct Isa {
  const char* name;
  MicroKernel wide;
  MicroKernel narrow;
};

Isa pickIsa() {
  const char* env = std::getenv("WRN_NATIVE_ISA");
  const std::string forced = env != nullptr ? env : "";
  const Isa portable{"portable", {kernelPortable<6, 16>, 6, 16, 96, 256, 512, true}, {kernelPortable<6, 16>, 6, 16, 96, 256, 512, true}};
  if (forced == "portable") return portable;
#ifdef WRN_X86
  const bool avx2 = cpuHasAvx2Fma();
  if (forced != "avx2" && avx2 && cpuHasAvx512f()) {
    return {"avx512f", {kernelAvx512<12, 2>, 12, 32, 192, 256, 512, true}, {kernelAvx512<12, 1>, 12, 16, 192, 256, 512, true}};
  }
  if (avx2) return {"avx2+fma", {kernelAvx2, 6, 16, 96, 256, 512, true}, {kernelAvx2, 6, 16, 96, 256, 512, true}};
#endif
  return portable;
}

const Isa ISA = pickIsa();

const MicroKernel& kernelFor(int64_t n) { return n > 16 ? ISA.wide : ISA.narrow; }

// Panels of mr rows: out[p][k][r] = A(p*mr + r, k), zero beyond rows.
void packA(View a, int rows, int kc, int mr, float* out) {
  for (int p = 0; p < rows; p += mr) {
    const int panelRows = std::min(mr, rows - p);
    float* panel = out + static_cast<int64_t>(p) * kc;
    if (a.cs == 1) {
      for (int r = 0; r < panelRows; r++) {
        const float* src = a.at(p + r, 0);
        for (int k = 0; k < kc; k++) panel[k * mr + r] = src[k];
      }
    } else {
      for (int k = 0; k < kc; k++) {
        const float* src = a.at(p, k);
        for (int r = 0; r < panelRows; r++) panel[k * mr + r] = src[r * a.rs];
      }
    }
    for (int r = panelRows; r < mr; r++) {
      for (int k = 0; k < kc; k++) panel[k * mr + r] = 0.f;
    }
  }
}

// One panel of nr columns: out[k][j] = B(k, j), zero beyond cols.
void packPanel(View b, int kc, int cols, int nr, float* out) {
  for (int k = 0; k < kc; k++) {
    float* dst = out + static_cast<int64_t>(k) * nr;
    if (b.cs == 1) {
      std::memcpy(dst, b.at(k, 0), sizeof(float) * cols);
    } else {
      for (int j = 0; j < cols; j++) dst[j] = *b.at(k, j);
    }
    for (int j = cols; j < nr; j++) dst[j] = 0.f;
  }
}

// C[m x nc] (+)= A[m x kc] * (the packed B block bp: panels of kc x nr, nc columns), A blocked by mk.mc.
void macroKernel(const MicroKernel& mk, int64_t m, int nc, int kc, View a, const float* bp, float* c, int64_t ldc, bool accumulate,
                 float* packedA) {
  const bool inPlace = mk.inPlaceA && a.cs == 1;
  // A transposed (the filter gradient's im2col, rs 1): a tile's MR rows at one k are contiguous, the packed layout
  // with a longer step, so it is read in place too.
  const bool stridedK = mk.inPlaceA && !inPlace && a.rs == 1;
  for (int64_t ic = 0; ic < m; ic += mk.mc) {
    const int mc = static_cast<int>(std::min<int64_t>(mk.mc, m - ic));
    const View block{a.at(ic, 0), a.rs, a.cs};
    // Whole tiles are read in place; a ragged last tile (and everything, where A's rows are strided) is packed.
    const int inPlaceRows = inPlace || stridedK ? mc / mk.mr * mk.mr : 0;
    if (mc > inPlaceRows) packA({block.at(inPlaceRows, 0), a.rs, a.cs}, mc - inPlaceRows, kc, mk.mr, packedA);
    for (int jr = 0; jr < nc; jr += mk.nr) {
      const float* panel = bp + static_cast<int64_t>(jr) * kc;
      const int nr = std::min(mk.nr, nc - jr);
      for (int ir = 0; ir < mc; ir += mk.mr) {
        const TileA tile = ir >= inPlaceRows ? TileA{packedA + static_cast<int64_t>(ir - inPlaceRows) * kc, 1, mk.mr}
                           : inPlace       ? TileA{block.at(ir, 0), a.rs, 1}
                                           : TileA{block.at(ir, 0), 1, a.cs};
        mk.fn(kc, tile, panel, c + (ic + ir) * ldc + jr, ldc, std::min(mk.mr, mc - ir), nr, accumulate);
      }
    }
  }
}

}  // namespace

GemmWorkspace::GemmWorkspace() : a(static_cast<size_t>(MAX_MC) * MAX_KC), b(static_cast<size_t>(MAX_KC) * MAX_NC) {}

int gemmRowTile() { return ISA.wide.mr; }

const char* gemmIsa() { return ISA.name; }

void packB(int64_t k, int64_t n, View b, PackedB& out) {
  const MicroKernel& mk = kernelFor(n);
  out.k = k;
  out.n = n;
  out.nr = mk.nr;
  out.kc = mk.kc;
  out.nPadded = (n + mk.nr - 1) / mk.nr * mk.nr;
  const size_t size = static_cast<size_t>(k * out.nPadded);
  if (out.data.size() < size) out.data.resize(size);
  // Block p of K starts at p*kc*nPadded; its panel q (columns q*nr...) at + q*nr*kcOfBlock.
  const int64_t panels = out.nPadded / mk.nr;
  const int64_t blocks = (k + mk.kc - 1) / mk.kc;
  parallelFor(panels * blocks, 1, [&](int, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i++) {
      const int64_t pc = i / panels * mk.kc;
      const int64_t jc = i % panels * mk.nr;
      const int kc = static_cast<int>(std::min<int64_t>(mk.kc, k - pc));
      const int cols = static_cast<int>(std::min<int64_t>(mk.nr, n - jc));
      packPanel({b.at(pc, jc), b.rs, b.cs}, kc, cols, mk.nr, out.data.data() + pc * out.nPadded + jc * kc);
    }
  });
}

// C[m x n] (row-major, ldc) (+)= A[m x k] * B[k x n], single-threaded.
void gemm(int64_t m, int64_t n, int64_t k, View a, View b, float* c, int64_t ldc, bool accumulate, GemmWorkspace& ws) {
  const MicroKernel& mk = kernelFor(n);
  for (int64_t jc = 0; jc < n; jc += mk.nc) {
    const int nc = static_cast<int>(std::min<int64_t>(mk.nc, n - jc));
    for (int64_t pc = 0; pc < k; pc += mk.kc) {
      const int kc = static_cast<int>(std::min<int64_t>(mk.kc, k - pc));
      for (int jr = 0; jr < nc; jr += mk.nr) {
        packPanel({b.at(pc, jc + jr), b.rs, b.cs}, kc, std::min(mk.nr, nc - jr), mk.nr, ws.b.data() + static_cast<int64_t>(jr) * kc);
      }
      macroKernel(mk, m, nc, kc, {a.at(0, pc), a.rs, a.cs}, ws.b.data(), c + jc, ldc, accumulate || pc > 0, ws.a.data());
    }
  }
}

void gemmPacked(int64_t m, View a, const PackedB& b, float* c, int64_t ldc, bool accumulate, GemmWorkspace& ws) {
  const MicroKernel& mk = kernelFor(b.n);
  for (int64_t jc = 0; jc < b.n; jc += mk.nc) {
    const int nc = static_cast<int>(std::min<int64_t>(mk.nc, b.n - jc));
    for (int64_t pc = 0; pc < b.k; pc += b.kc) {
      const int kc = static_cast<int>(std::min<int64_t>(b.kc, b.k - pc));
      const float* block = b.data.data() + pc * b.nPadded + jc * kc;
      macroKernel(mk, m, nc, kc, {a.at(0, pc), a.rs, a.cs}, block, c + jc, ldc, accumulate || pc > 0, ws.a.data());
    }
  }
}

}  // namespace wrn
