// The elementwise, reduction and BatchNorm-gradient kernels (elementwise.cc), added to the addon's exports.
#pragma once

#include <node_api.h>

namespace wrn {

void registerElementwise(napi_env env, napi_value exports);

}  // namespace wrn
