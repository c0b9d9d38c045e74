// The elementwise, reduction and BatchNorm-gradient kernels (elementwise.cc), added to the addon's exports.
#pragma once

#include <node_api.h>

#include <cstdint>

namespace wrn {

// out = max(0, x) over n elements (NaN stays NaN), split over the thread pool in shares of at least `grain`
// elements: elementwise's relu with the caller's grain (inference.cc's relu runs on it).
void reluForward(const float* x, float* out, int64_t n, int64_t grain);

// out = a + b over n elements each, split likewise (inference.cc's add).
void addSameLength(const float* a, const float* b, float* out, int64_t n, int64_t grain);

void registerElementwise(napi_env env, napi_value exports);

}  // namespace wrn
