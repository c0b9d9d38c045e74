// @wrn/backend/node: everything of the main entry, plus what needs Node: selectBackend (it loads the native
// TensorFlow binding, @wrn/native's addon and Dawn's `webgpu` package by name), the threaded wasm set-up
// (worker_threads), the wrn-native backend (tfjs-backend-cpu's data store with @wrn/native's kernels), and listWebGpuAdapters asking Dawn in a child process where there is no navigator.gpu.
import type { WebGpuAdapterList } from './webgpu';
import { listWebGpuAdapters as listAdapters } from './webgpu';
import * as dawn from './webgpu-dawn';

export { selectBackend, NATIVE_PACKAGES, TENSORFLOW_INSTALL_ADVICE } from './select-backend';
export { initWasmBackendWithThreads } from './wasm/threads';
export { NativeBackend, registerNativeBackend, NATIVE_BACKEND_KERNEL_NAMES } from './native-backend/backend';
export { NATIVE_BACKEND_NAME } from './native-backend/tensor-data';
export { BACKEND_CHOICES, BackendUnavailableError } from './selection';
export type { BackendChoice, BackendAttempt, BackendSelection, SelectBackendOptions } from './selection';
export { DEFAULT_WASM_THREADS, WASM_THREADS_ENV, wasmThreadsFromEnv, NATIVE_CONV_ENV, nativeConvFromEnv } from './env';
export { checkConvGradients, checkConvGradientsAsync } from './conv-gradient-check';
export { registerWasmTrainingKernels, wasmTrainingKernelsRegistered, wasmNativeConvKernels, WASM_TRAINING_KERNEL_NAMES } from './wasm/training-kernels';
export type { WasmTrainingKernelOptions } from './wasm/training-kernels';
export { NATIVE_BATCH_NORM_TRAINING_GRAD } from './wasm/native-batch-norm';
export { NATIVE_RELU_GRAD, registerReluGradientFromOutput } from './wasm/native-relu-grad';
export { NATIVE_SGD_UPDATE } from './wasm/native-sgd';
export type { SgdUpdateAttrs } from './wasm/native-sgd';
export { WASM_NATIVE_CONV_KERNEL_NAMES } from './wasm/native-conv';
export { registerWasmTrainingGradients, wasmTrainingGradientsRegistered, WASM_TRAINING_GRADIENT_NAMES } from './wasm/training-gradients';
export { adapterLabel, isSoftwareAdapter, webgpuBufferCounts, WEBGPU_INSTALL_ADVICE, WEBGPU_GROUPED_CONV_METHODS } from './webgpu';
export type { WebGpuAdapterReport, WebGpuAdapterList } from './webgpu';
export type { WasmThreadsResult } from './wasm/threads';

/** The WebGPU adapters here: navigator.gpu's where there is one, else Dawn's, asked in a child process. */
export function listWebGpuAdapters(): Promise<WebGpuAdapterList> {
  return listAdapters({ dawn });
}
