// Winograd convolutions F(2x2,3x3) and F(4x4,3x3) for float32 NHWC 3x3 stride-1 layers (winograd.cc): 2.25x and
// 4x fewer multiplies than the direct convolution, the multiplies done as one gemm.h GEMM per transform position.
#pragma once

#include <node_api.h>

#include <cstdint>

namespace wrn {

// A 3x3, stride-1, dilation-1 convolution: x [n, h, w, ci], filter [3, 3, ci, co], out [n, ho, wo, co], zero
// padding (pt, pl) before the first row and column (0..2); what lies past the input's edge reads as zero.
struct WinogradShape {
  int64_t n, h, w, ci, co, ho, wo, pt, pl;
};

// What a call computes: the convolution, or its gradient with respect to the input or the filter.
enum class WinogradPass { Forward = 0, InputGrad = 1, FilterGrad = 2 };

// The output tile conv.cc's dispatch picks for this shape and pass: 0 (the im2col GEMM), 2 or 4.
// WRN_NATIVE_WINOGRAD=0 turns Winograd off, =2 or =4 forces that tile wherever a 3x3 stride-1 layer allows it;
// unset, the measured rule (winograd.cc) decides.
int winogradTile(const WinogradShape& s, WinogradPass pass);

// out = conv(x, filter) (+ bias) (relu) with output tiles of `tile` (2 or 4).
void winogradConv2d(const WinogradShape& s, int tile, const float* x, const float* filter, const float* bias, bool relu, float* out);

// dx = the input gradient of s's convolution: a 3x3 stride-1 conv of dy with the filter turned 180 degrees and its
// channels swapped, padded by (2 - pt, 2 - pl).
void winogradConv2dBackpropInput(const WinogradShape& s, int tile, const float* dy, const float* filter, float* dx);

// dw = the filter gradient of s's convolution, Winograd's transforms applied to x and dy tiles and the sum over
// tiles done as GEMMs.
void winogradConv2dBackpropFilter(const WinogradShape& s, int tile, const float* x, const float* dy, float* dw);

// conv.cc's one-line dispatch: runs Winograd and returns true where winogradTile picks it, else returns false
// having done nothing.
bool winogradConv2dIfFaster(const WinogradShape& s, const float* x, const float* filter, const float* bias, bool relu, float* out);
bool winogradConv2dBackpropInputIfFaster(const WinogradShape& s, const float* dy, const float* filter, float* dx);
bool winogradConv2dBackpropFilterIfFaster(const WinogradShape& s, const float* x, const float* dy, float* dw);

// Adds winogradConv2d, winogradConv2dBackpropInput, winogradConv2dBackpropFilter, winogradTile and winogradIsa to
// the addon's exports.
void registerWinograd(napi_env env, napi_value exports);

}  // namespace wrn
