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

// The output tile conv2d's dispatch picks for this shape: 0 (the im2col GEMM), 2 or 4. WRN_NATIVE_WINOGRAD=0
// turns Winograd off, =2 or =4 forces that tile wherever a 3x3 stride-1 layer allows it; unset, the measured
// rule (winograd.cc) decides. `backward`: the shape's input gradient (itself a Winograd conv of dy).
int winogradTile(const WinogradShape& s, bool backward);

// out = conv(x, filter) (+ bias) (relu) with output tiles of `tile` (2 or 4).
void winogradConv2d(const WinogradShape& s, int tile, const float* x, const float* filter, const float* bias, bool relu, float* out);

// dx = the input gradient of s's convolution: a 3x3 stride-1 conv of dy with the filter turned 180 degrees and its
// channels swapped, padded by (2 - pt, 2 - pl).
void winogradConv2dBackpropInput(const WinogradShape& s, int tile, const float* dy, const float* filter, float* dx);

// conv.cc's one-line dispatch: runs Winograd and returns true where winogradTile picks it, else returns false
// having done nothing.
bool winogradConv2dIfFaster(const WinogradShape& s, const float* x, const float* filter, const float* bias, bool relu, float* out);
bool winogradConv2dBackpropInputIfFaster(const WinogradShape& s, const float* dy, const float* filter, float* dx);

// Adds winogradConv2d, winogradConv2dBackpropInput, winogradTile and winogradIsa to the addon's exports.
void registerWinograd(napi_env env, napi_value exports);

}  // namespace wrn
