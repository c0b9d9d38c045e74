// The GEMM that @wrn/native's convolutions are built on (gemm.cc).
#pragma once

#include <cstdint>
#include <vector>

namespace wrn {

// A strided matrix view: element (i, j) is at data[i * rs + j * cs].
struct View {
  const float* data;
  int64_t rs;
  int64_t cs;
  const float* at(int64_t i, int64_t j) const { return data + i * rs + j * cs; }
};

// One thread's packing buffers, reused across calls (sized by gemm.cc's blocking).
struct GemmWorkspace {
  std::vector<float> a;
  std::vector<float> b;
  GemmWorkspace();
};

// B [k x n] packed once into the micro-kernel's column panels, for every block of K: read-only once made, so one
// packing serves every row block and every thread of a call (the filter of a convolution, re-packed per block of
// 192 output pixels before, cost up to a tenth of a layer's time).
struct PackedB {
  int64_t k = 0;
  int64_t n = 0;
  int nr = 0;          // the panels' width: the micro-kernel this B was packed for
  int kc = 0;          // the K blocking it was packed with
  int64_t nPadded = 0; // n rounded up to nr
  std::vector<float> data;
};

// Packs B [k x n] for gemmPacked, splitting the copy over the thread pool; `out` keeps its storage across calls.
void packB(int64_t k, int64_t n, View b, PackedB& out);

// C[m x n] (row-major, ldc) (+)= A[m x k] * B[k x n], single-threaded.
void gemm(int64_t m, int64_t n, int64_t k, View a, View b, float* c, int64_t ldc, bool accumulate, GemmWorkspace& ws);

// The same with B packed by packB (its k and n), single-threaded; any number of threads may share one PackedB.
void gemmPacked(int64_t m, View a, const PackedB& b, float* c, int64_t ldc, bool accumulate, GemmWorkspace& ws);

// The micro-kernel's rows: callers splitting m over threads split it in multiples of this.
int gemmRowTile();

// The micro-kernel in use: "avx512f", "avx2+fma" or "portable" (WRN_NATIVE_ISA=avx512|avx2|portable forces one the
// CPU has).
const char* gemmIsa();

}  // namespace wrn
