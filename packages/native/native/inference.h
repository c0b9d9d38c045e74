// The inference kernels (inference.cc): BatchNorm with moving statistics, ReLU, Add, the option-A shortcut.
#pragma once

#include <node_api.h>

namespace wrn {

void registerInference(napi_env env, napi_value exports);

}  // namespace wrn
