// @wrn/backend: the TF.js backends @wrn trains on, browser-safe. What backend selection is asked and answers; the
// wasm backend's training kernels (one module per kernel under wasm/kernels) and leaner gradients; WebGPU through
// navigator.gpu; the check that a backend's conv gradients are right. Node's selectBackend (native TensorFlow,
// Dawn, @wrn/native's convolutions, the threaded wasm build) is in @wrn/backend/node.
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
export { listWebGpuAdapters, adapterLabel, isSoftwareAdapter, webgpuBufferCounts, WEBGPU_INSTALL_ADVICE, WEBGPU_GROUPED_CONV_METHODS } from './webgpu';
export type { WebGpuAdapterReport, WebGpuAdapterList } from './webgpu';
export type { WasmThreadsResult } from './wasm/threads';
