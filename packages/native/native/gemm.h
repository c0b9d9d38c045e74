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

// C[m x n] (row-major, ldc) (+)= A[m x k] * B[k x n], single-threaded.
void gemm(int64_t m, int64_t n, int64_t k, View a, View b, float* c, int64_t ldc, bool accumulate, GemmWorkspace& ws);

// The micro-kernel's rows: callers splitting m over threads split it in multiples of this.
int gemmRowTile();

// The micro-kernel in use: "avx2+fma" or "portable".
const char* gemmIsa();

}  // namespace wrn
