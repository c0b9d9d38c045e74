// The one GEMM under @wrn/native's convolutions, BLIS-style: pack a KC x NC block of B and an MC x KC block of A
// into panels, then an MR x NR register-blocked micro-kernel. The micro-kernel is chosen at run time: AVX2+FMA
// where the CPU has it, else portable C++ that the compiler vectorises. Single-threaded: callers split the work.
#include "gemm.h"

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


constexpr int MR = 6;
constexpr int NR = 16;
constexpr int KC = 256;
constexpr int MC = 96;   // multiple of MR
constexpr int NC = 512;  // multiple of NR
constexpr int64_t REDUCTION_BLOCK = 256;  // output pixels per step of the filter gradient's reduction

// The MR rows of A a micro-kernel reads: row r's element k is rows[r][k * step]. Either a packed panel
// (rows[r] = panel + r, step MR) or A itself when its rows are contiguous (step 1): for narrow outputs
// (16 channels) packing A costs as much as the multiply-adds it feeds.
struct RowsOfA {
  const float* rows[MR];
  int64_t step;
};

using Kernel = void (*)(int kc, const RowsOfA& a, const float* b, float* c, int64_t ldc, int mr, int nr, bool accumulate);

// C[mr x nr] (+)= A[MR x kc] * B[kc x NR panel].
void kernelPortable(int kc, const RowsOfA& a, const float* b, float* c, int64_t ldc, int mr, int nr, bool accumulate) {
  float t[MR][NR] = {};
  for (int k = 0; k < kc; k++) {
    const float* bk = b + k * NR;
    for (int i = 0; i < MR; i++) {
      const float ai = a.rows[i][k * a.step];
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
// Packed A is one pointer stepping MR per k; A read in place is six row pointers stepping 1 (six more adds
// per k, which measurably slows the packed case, so each case gets its own loop).
template <bool Packed>
__attribute__((target("avx2,fma"), always_inline)) inline void kernelAvx2Body(int kc, const RowsOfA& a, const float* b, float* c, int64_t ldc,
                                                                          int mr, int nr, bool accumulate) {
  const float *a0 = a.rows[0], *a1 = a.rows[1], *a2 = a.rows[2], *a3 = a.rows[3], *a4 = a.rows[4], *a5 = a.rows[5];
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
      a0 += MR;
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

__attribute__((target("avx2,fma"))) void kernelAvx2(int kc, const RowsOfA& a, const float* b, float* c, int64_t ldc, int mr, int nr,
                                                   bool accumulate) {
  if (a.step == 1) {
    kernelAvx2Body<false>(kc, a, b, c, ldc, mr, nr, accumulate);
  } else {
    kernelAvx2Body<true>(kc, a, b, c, ldc, mr, nr, accumulate);
  }
}

bool cpuHasAvx2Fma() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

struct Isa {
  Kernel kernel;
  const char* name;
};

Isa pickIsa() {
  const char* forced = std::getenv("WRN_NATIVE_ISA");
  bool portable = forced != nullptr && std::string(forced) == "portable";
#ifdef WRN_X86
  if (!portable && cpuHasAvx2Fma()) return {kernelAvx2, "avx2+fma"};
#endif
  (void)portable;
  return {kernelPortable, "portable"};
}

const Isa ISA = pickIsa();

// Panels of MR rows: out[p][k][r] = A(p*MR + r, k), zero beyond mc.
void packA(View a, int mc, int kc, float* out) {
  for (int p = 0; p < mc; p += MR) {
    const int rows = std::min(MR, mc - p);
    float* panel = out + static_cast<int64_t>(p) * kc;
    if (a.cs == 1) {
      for (int r = 0; r < rows; r++) {
        const float* src = a.at(p + r, 0);
        for (int k = 0; k < kc; k++) panel[k * MR + r] = src[k];
      }
    } else {
      for (int k = 0; k < kc; k++) {
        const float* src = a.at(p, k);
        for (int r = 0; r < rows; r++) panel[k * MR + r] = src[r * a.rs];
      }
    }
    for (int r = rows; r < MR; r++) {
      for (int k = 0; k < kc; k++) panel[k * MR + r] = 0.f;
    }
  }
}

// Panels of NR columns: out[q][k][j] = B(k, q*NR + j), zero beyond nc.
void packB(View b, int kc, int nc, float* out) {
  for (int q = 0; q < nc; q += NR) {
    const int cols = std::min(NR, nc - q);
    float* panel = out + static_cast<int64_t>(q) * kc;
    for (int k = 0; k < kc; k++) {
      float* dst = panel + k * NR;
      if (b.cs == 1) {
        std::memcpy(dst, b.at(k, q), sizeof(float) * cols);
      } else {
        for (int j = 0; j < cols; j++) dst[j] = *b.at(k, q + j);
      }
      for (int j = cols; j < NR; j++) dst[j] = 0.f;
    }
  }
}

}  // namespace

GemmWorkspace::GemmWorkspace() : a(static_cast<size_t>(MC) * KC), b(static_cast<size_t>(KC) * NC) {}

int gemmRowTile() { return MR; }

const char* gemmIsa() { return ISA.name; }

// C[m x n] (row-major, ldc) (+)= A[m x k] * B[k x n], single-threaded.
void gemm(int64_t m, int64_t n, int64_t k, View a, View b, float* c, int64_t ldc, bool accumulate, GemmWorkspace& ws) {
  for (int64_t jc = 0; jc < n; jc += NC) {
    const int nc = static_cast<int>(std::min<int64_t>(NC, n - jc));
    for (int64_t pc = 0; pc < k; pc += KC) {
      const int kc = static_cast<int>(std::min<int64_t>(KC, k - pc));
      packB({b.at(pc, jc), b.rs, b.cs}, kc, nc, ws.b.data());
      const bool acc = accumulate || pc > 0;
      for (int64_t ic = 0; ic < m; ic += MC) {
        const int mc = static_cast<int>(std::min<int64_t>(MC, m - ic));
        const bool packed = a.cs != 1;
        if (packed) packA({a.at(ic, pc), a.rs, a.cs}, mc, kc, ws.a.data());
        for (int jr = 0; jr < nc; jr += NR) {
          const float* bp = ws.b.data() + static_cast<int64_t>(jr) * kc;
          for (int ir = 0; ir < mc; ir += MR) {
            const int mr = std::min(MR, mc - ir);
            RowsOfA rows{};
            if (packed) {
              for (int r = 0; r < MR; r++) rows.rows[r] = ws.a.data() + static_cast<int64_t>(ir) * kc + r;
              rows.step = MR;
            } else {
              // Rows past mr repeat the last real one: read, computed and dropped, never out of bounds.
              for (int r = 0; r < MR; r++) rows.rows[r] = a.at(ic + ir + std::min(r, mr - 1), pc);
              rows.step = 1;
            }
            ISA.kernel(kc, rows, bp, c + (ic + ir) * ldc + jc + jr, ldc, mr, std::min(NR, nc - jr), acc);
          }
        }
      }
    }
  }
}

}  // namespace wrn
