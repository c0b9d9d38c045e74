import {
  Cast,
  Concat,
  Conv2D,
  Conv2DBackpropFilter,
  Conv2DBackpropInput,
  FusedBatchNorm,
  FusedConv2D,
  getKernel,
  Identity,
  MaxPoolGrad,
  Mean,
  registerKernel,
  Slice,
  SplitV,
  Sum,
  Tile,
  Transpose,
  unregisterKernel,
} from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc } from '@tensorflow/tfjs-core';
import { registerGroupedConvMethodResolver } from '@wrn/blocks';
import type { NativeConvKernels } from '@wrn/native';
import { conv2DBackpropFilterViaConv } from './kernels/conv2d-backprop-filter';
import { makeConv2DBackpropInputViaConv } from './kernels/conv2d-backprop-input';
import { makeCastSharingData } from './kernels/cast';
import { makeConcatOnHeap } from './kernels/concat';
import { makeBatchNormViaDepthwise } from './kernels/fused-batch-norm';
import { makeIdentitySharingData } from './kernels/identity';
import { makeMaxPoolGradOnHeap } from './kernels/max-pool-grad';
import { makeMeanViaAvgPool } from './kernels/mean';
import { makeSliceOnHeap } from './kernels/slice';
import { makeSplitOnHeap } from './kernels/split-v';
import { makeSumViaAvgPool } from './kernels/sum';
import { makeTileOnHeap } from './kernels/tile';
import { makeTransposeOnHeap } from './kernels/transpose';
import { setNativeBatchNormTraining } from './native-batch-norm';
import { nativeConvKernelMakers } from './native-conv';
import { nativeGroupedConvMethod, registerNativeGroupedConv } from './native-grouped-conv';
import { setNativeReluGrad } from './native-relu-grad';
import { setNativeSgdUpdate } from './native-sgd';
import { installNativeInferenceKernels, WASM_NATIVE_INFERENCE_KERNEL_NAMES } from './native-inference';
import { makeNativeReduction, nativeElementwiseKernelMakers, setNativeBatchNormGradient, WASM_NATIVE_ELEMENTWISE_KERNEL_NAMES } from './native-elementwise';

// Registration of the wasm training kernels: which kernel replaces which, and putting wasm's own back. Each
// kernel's formulation is in ./kernels/<kernel>.ts; what they share on the wasm heap in ./heap.ts.

/** The backend whose kernels this module adds or replaces. */
export const WASM_BACKEND_NAME = 'wasm';

/** Kernels that {@link registerWasmTrainingKernels} registers for the wasm backend. */
export const WASM_TRAINING_KERNEL_NAMES: readonly string[] = [
  Conv2DBackpropFilter,
  Conv2DBackpropInput,
  Tile,
  Sum,
  Mean,
  Transpose,
  Identity,
  Cast,
  FusedBatchNorm,
  Slice,
  SplitV,
  Concat,
  MaxPoolGrad,
];

// The wasm kernels we replace, kept for their setup functions (their kernelFuncs call C functions
// bound in setup) and for the rare cases our formulations do not cover.
const originals = new Map<string, KernelConfig | undefined>();
const ours = new Map<string, KernelFunc>();

function install(kernelName: string, make: (original: KernelConfig | undefined) => KernelFunc): void {
  const current = getKernel(kernelName, WASM_BACKEND_NAME);
  // Installing again (with or without native convolutions) wraps the wasm kernel we replaced, never our own.
  const original = current != null && current.kernelFunc === ours.get(kernelName) ? originals.get(kernelName) : current;
  originals.set(kernelName, original);
  const kernelFunc = make(original);
  ours.set(kernelName, kernelFunc);
  if (current != null) unregisterKernel(kernelName, WASM_BACKEND_NAME);
  const config: KernelConfig = { kernelName, backendName: WASM_BACKEND_NAME, kernelFunc };
  if (original?.setupFunc != null) config.setupFunc = original.setupFunc;
  if (original?.disposeFunc != null) config.disposeFunc = original.disposeFunc;
  registerKernel(config);
}

/** Puts back the wasm backend's own kernel where we had replaced it. */
function restore(kernelName: string): void {
  const current = getKernel(kernelName, WASM_BACKEND_NAME);
  if (current == null || current.kernelFunc !== ours.get(kernelName)) return;
  unregisterKernel(kernelName, WASM_BACKEND_NAME);
  ours.delete(kernelName);
  const original = originals.get(kernelName);
  if (original != null) registerKernel(original);
}

/** What {@link registerWasmTrainingKernels} can add. */
export interface WasmTrainingKernelOptions {
  /**
   * Native convolutions (@wrn/native's loadNativeConvKernels): Conv2D, FusedConv2D and both conv gradients then
   * run on them, about 3x faster than XNNPACK on wasm. `null` takes them away again (the wasm formulations below);
   * left out, whatever an earlier call (selectBackend's) installed stays.
   */
  native?: NativeConvKernels | null;
  /**
   * With `native`: also run broadcasting Add/Sub/Multiply, Step, Sum and BatchNorm's gradient on it
   * (native-elementwise.ts). Default true; false keeps them on wasm (for A/B measurements).
   */
  nativeElementwise?: boolean;
  /**
   * With `native`: also run model.predict's BatchNorm, ReLU, same-shape Add and option-A shortcut on it
   * (native-inference.ts). Default true; false keeps them on wasm (for A/B measurements).
   */
  nativeInference?: boolean;
}

let nativeInUse: NativeConvKernels | undefined;
let nativeElementwiseInUse = false;
let nativeInferenceInUse = false;
let removeGroupedConvMethods: (() => void) | undefined;

// With native convolutions the grouped convs run as one native kernel each (native-grouped-conv.ts; split measured
// 85 img/s in ResNeXt-29 4x16d inference, depthwise 34). Plain wasm keeps @wrn/blocks' measured default.

/**
 * Registers, for the 'wasm' backend, the kernels a training step of our residual networks needs that
 * tfjs-backend-wasm 4.22 lacks (Conv2DBackpropFilter) or runs slowly (Conv2DBackpropInput, Tile, Sum and
 * Mean over leading axes), each computed on wasm's XNNPACK forward conv, matMul or broadcasting binary ops; with
 * `native`, every convolution and both its gradients run on @wrn/native instead. Idempotent. Call it before the
 * wasm backend is first used, or at any time after: kernels are looked up per call.
 */
export function registerWasmTrainingKernels(options: WasmTrainingKernelOptions = {}): readonly string[] {
  const native = options.native === undefined ? nativeInUse : (options.native ?? undefined);
  const elementwise = native != null && (options.nativeElementwise ?? (options.native === undefined ? nativeElementwiseInUse : true));
  const inference = native != null && (options.nativeInference ?? (options.native === undefined ? nativeInferenceInUse : true));
  const names = native
    ? [...WASM_TRAINING_KERNEL_NAMES, Conv2D, FusedConv2D, ...(elementwise ? WASM_NATIVE_ELEMENTWISE_KERNEL_NAMES : []), ...(inference ? WASM_NATIVE_INFERENCE_KERNEL_NAMES : [])]
    : WASM_TRAINING_KERNEL_NAMES;
  if (native === nativeInUse && elementwise === nativeElementwiseInUse && inference === nativeInferenceInUse && names.every((name) => ours.has(name) && getKernel(name, WASM_BACKEND_NAME)?.kernelFunc === ours.get(name))) return names;
  const viaConvFilter = conv2DBackpropFilterViaConv as unknown as KernelFunc;
  install(Conv2DBackpropFilter, () => (native ? nativeConvKernelMakers[Conv2DBackpropFilter](native, viaConvFilter) : viaConvFilter));
  install(Conv2DBackpropInput, (original) => {
    const viaConv = makeConv2DBackpropInputViaConv(original) as unknown as KernelFunc;
    return native ? nativeConvKernelMakers[Conv2DBackpropInput](native, viaConv) : viaConv;
  });
  if (native) {
    install(Conv2D, (original) => nativeConvKernelMakers[Conv2D](native, original));
    install(FusedConv2D, (original) => nativeConvKernelMakers[FusedConv2D](native, original));
  } else {
    restore(Conv2D);
    restore(FusedConv2D);
  }
  nativeInUse = native;
  removeGroupedConvMethods?.();
  registerNativeGroupedConv(native);
  removeGroupedConvMethods = native ? registerGroupedConvMethodResolver(WASM_BACKEND_NAME, nativeGroupedConvMethod) : undefined;
  install(Tile, (original) => makeTileOnHeap(original) as unknown as KernelFunc);
  install(Sum, (original) => {
    const viaPool = makeSumViaAvgPool(original) as unknown as KernelFunc;
    return elementwise ? makeNativeReduction(native!, Sum, viaPool) : viaPool;
  });
  install(Mean, (original) => makeMeanViaAvgPool(original) as unknown as KernelFunc);
  for (const name of WASM_NATIVE_ELEMENTWISE_KERNEL_NAMES) {
    if (elementwise) install(name, (original) => nativeElementwiseKernelMakers[name]!(native!, original));
    else restore(name);
  }
  setNativeBatchNormGradient(elementwise ? native : undefined);
  setNativeBatchNormTraining(elementwise ? native : undefined);
  setNativeSgdUpdate(elementwise ? native : undefined);
  setNativeReluGrad(elementwise ? native : undefined);
  nativeElementwiseInUse = elementwise;
  install(Transpose, (original) => makeTransposeOnHeap(original) as unknown as KernelFunc);
  install(Identity, (original) => makeIdentitySharingData(original) as unknown as KernelFunc);
  install(Cast, (original) => makeCastSharingData(original) as unknown as KernelFunc);
  install(FusedBatchNorm, (original) => makeBatchNormViaDepthwise(original) as unknown as KernelFunc);
  install(Slice, (original) => makeSliceOnHeap(original) as unknown as KernelFunc);
  install(SplitV, (original) => makeSplitOnHeap(original) as unknown as KernelFunc);
  install(Concat, (original) => makeConcatOnHeap(original) as unknown as KernelFunc);
  // tfjs-backend-wasm 4.22's gives a tied window's gradient to a later maximum and drops negative windows.
  install(MaxPoolGrad, makeMaxPoolGradOnHeap);
  installNativeInferenceKernels(install, restore, inference ? native : undefined, elementwise ? native : undefined);
  nativeInferenceInUse = inference;
  return names;
}

/** The native convolutions the wasm backend's conv kernels run on now, if {@link registerWasmTrainingKernels} was given them. */
export function wasmNativeConvKernels(): NativeConvKernels | undefined {
  return nativeInUse;
}

/** Whether {@link registerWasmTrainingKernels} has installed every kernel it owns. */
export function wasmTrainingKernelsRegistered(): boolean {
  return WASM_TRAINING_KERNEL_NAMES.every((name) => {
    const fn = ours.get(name);
    return fn != null && getKernel(name, WASM_BACKEND_NAME)?.kernelFunc === fn;
  });
}
