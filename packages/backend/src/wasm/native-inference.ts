import { Add, add, batchNorm, FusedBatchNorm, Relu, relu, tidy, util, type Tensor } from '@tensorflow/tfjs-core';
import type { FusedBatchNormAttrs, KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { ADD_RELU_INFERENCE_KERNEL, BATCH_NORM_RELU_INFERENCE_KERNEL, ZERO_PAD_SHORTCUT_KERNEL, type BatchNormTrainingAttrs, type ZeroPadShortcutAttrs } from '@wrn/blocks';
import type { NativeConvKernels } from '@wrn/native';
import { asTensor, heapView, requireInput, type KernelArgs, type WasmHeapBackend } from './heap';
import { makeBatchNormViaDepthwise } from './kernels/fused-batch-norm';
import { nativeElementwiseKernelMakers } from './native-elementwise';

/**
 * The memory-bound kernels of model.predict on @wrn/native: BatchNorm with its moving statistics, ReLU, same-shape
 * Add, Add + ReLU (@wrn/blocks' ResidualAdd with activation 'relu'), and the option-A shortcut as one kernel (@wrn/blocks' ZeroPadShortcut runs it where it is registered, in
 * place of its Slice, Slice and PadV2). Each computes straight into the wasm heap, with no intermediate tensors,
 * and falls back to the kernel it replaced for what it does not cover (other dtypes, broadcasts, parameters that
 * are neither one value nor one per channel).
 */
export const WASM_NATIVE_INFERENCE_KERNEL_NAMES: readonly string[] = [FusedBatchNorm, Relu, Add, ZERO_PAD_SHORTCUT_KERNEL, BATCH_NORM_RELU_INFERENCE_KERNEL, ADD_RELU_INFERENCE_KERNEL];

function fallback(kernelName: string, previous: KernelFunc | undefined, args: KernelArgs): TensorInfo | TensorInfo[] {
  if (previous == null) throw new Error(`${kernelName} (native inference kernel): no wasm kernel to fall back to for these inputs`);
  return previous(args);
}

/** FusedBatchNorm over x [..., C] with mean/variance/offset/scale each of C values or one; `previous` does the rest. */
function makeNativeBatchNorm(native: NativeConvKernels, previous: KernelFunc): KernelFunc {
  return (args: KernelArgs) => {
    const x = requireInput(args.inputs, 'x', FusedBatchNorm);
    const mean = requireInput(args.inputs, 'mean', FusedBatchNorm);
    const variance = requireInput(args.inputs, 'variance', FusedBatchNorm);
    const { offset, scale } = args.inputs;
    const channels = x.shape[x.shape.length - 1] ?? 0;
    const params = [mean, variance, offset, scale];
    const fits =
      x.dtype === 'float32' &&
      channels > 0 &&
      util.sizeFromShape(x.shape) > 0 &&
      params.every((p) => p == null || (p.dtype === 'float32' && [1, channels].includes(util.sizeFromShape(p.shape))));
    if (!fits) return previous(args);
    const backend = args.backend as unknown as WasmHeapBackend;
    const out = backend.makeOutput([...x.shape], 'float32');
    const view = (t: TensorInfo | undefined) => (t == null ? null : heapView(backend, t, FusedBatchNorm));
    const { varianceEpsilon } = args.attrs as unknown as FusedBatchNormAttrs;
    // The addon takes the channel count from the longest parameter: where every one is a single value it sees x as
    // [size, 1], which applies the same values to every element.
    native.batchNormInference(view(x)!, view(mean)!, view(variance)!, view(offset), view(scale), varianceEpsilon, view(out)!);
    return out;
  };
}

/**
 * @wrn/blocks' BatchNorm + ReLU of inference (a TorchBatchNormalization with activation 'relu'): one native pass
 * where x is float32 and every parameter has x's channel count, else the native (or depthwise) BatchNorm and Relu.
 */
function makeNativeBatchNormRelu(native: NativeConvKernels): KernelFunc {
  return (args: KernelArgs) => {
    const kernel = BATCH_NORM_RELU_INFERENCE_KERNEL;
    const x = requireInput(args.inputs, 'x', kernel);
    const params = (['mean', 'variance', 'offset', 'scale'] as const).map((name) => requireInput(args.inputs, name, kernel));
    const channels = x.shape[x.shape.length - 1] ?? 0;
    const { varianceEpsilon } = args.attrs as unknown as BatchNormTrainingAttrs;
    const fits = x.dtype === 'float32' && channels > 0 && util.sizeFromShape(x.shape) > 0 && params.every((p) => p.dtype === 'float32' && util.sizeFromShape(p.shape) === channels);
    if (!fits) {
      const [mean, variance, offset, scale] = params.map(asTensor) as [Tensor, Tensor, Tensor, Tensor];
      return tidy(() => relu(batchNorm(asTensor(x), mean, variance, offset, scale, varianceEpsilon)));
    }
    const backend = args.backend as unknown as WasmHeapBackend;
    // makeOutput may grow the wasm heap, which detaches every view taken before it: views only after it.
    const out = backend.makeOutput([...x.shape], 'float32');
    const [mean, variance, offset, scale] = params.map((p) => heapView(backend, p, kernel)) as [Float32Array, Float32Array, Float32Array, Float32Array];
    native.batchNormInference(heapView(backend, x, kernel), mean, variance, offset, scale, varianceEpsilon, heapView(backend, out, kernel), true);
    return out;
  };
}

/** Relu on float32; `previous` (wasm's XNNPACK kernel) for other dtypes and empty tensors. */
function makeNativeRelu(native: NativeConvKernels, previous: KernelFunc | undefined): KernelFunc {
  return (args: KernelArgs) => {
    const x = requireInput(args.inputs, 'x', Relu);
    if (x.dtype !== 'float32' || util.sizeFromShape(x.shape) === 0) return fallback(Relu, previous, args);
    const backend = args.backend as unknown as WasmHeapBackend;
    const out = backend.makeOutput([...x.shape], 'float32');
    native.relu(heapView(backend, x, Relu), heapView(backend, out, Relu));
    return out;
  };
}

/** Add of two float32 tensors of one shape (a residual block's sum); `previous` broadcasts and other dtypes. */
function makeNativeAdd(native: NativeConvKernels, previous: KernelFunc | undefined): KernelFunc {
  return (args: KernelArgs) => {
    const a = requireInput(args.inputs, 'a', Add);
    const b = requireInput(args.inputs, 'b', Add);
    if (a.dtype !== 'float32' || b.dtype !== 'float32' || !util.arraysEqual(a.shape, b.shape) || util.sizeFromShape(a.shape) === 0) {
      return fallback(Add, previous, args);
    }
    const backend = args.backend as unknown as WasmHeapBackend;
    const out = backend.makeOutput([...a.shape], 'float32');
    native.add(heapView(backend, a, Add), heapView(backend, b, Add), heapView(backend, out, Add));
    return out;
  };
}

/**
 * @wrn/blocks' residual Add + ReLU of inference (a ResidualAdd with activation 'relu'): one native pass where a and b
 * are float32 of one non-empty shape, else tf.add + tf.relu (the kernels installed for those).
 */
function makeNativeAddRelu(native: NativeConvKernels): KernelFunc {
  return (args: KernelArgs) => {
    const kernel = ADD_RELU_INFERENCE_KERNEL;
    const a = requireInput(args.inputs, 'a', kernel);
    const b = requireInput(args.inputs, 'b', kernel);
    if (a.dtype !== 'float32' || b.dtype !== 'float32' || !util.arraysEqual(a.shape, b.shape) || util.sizeFromShape(a.shape) === 0) {
      return tidy(() => relu(add(asTensor(a), asTensor(b))));
    }
    const backend = args.backend as unknown as WasmHeapBackend;
    const out = backend.makeOutput([...a.shape], 'float32');
    native.add(heapView(backend, a, kernel), heapView(backend, b, kernel), heapView(backend, out, kernel), true);
    return out;
  };
}

/** @wrn/blocks' option-A shortcut kernel: x [n, h, w, c] float32 -> [n, ceil(h/s), ceil(w/s), outChannels]. */
function makeNativeZeroPadShortcut(native: NativeConvKernels): KernelFunc {
  return (args: KernelArgs) => {
    const x = requireInput(args.inputs, 'x', ZERO_PAD_SHORTCUT_KERNEL);
    const { strides, outChannels } = args.attrs as unknown as ZeroPadShortcutAttrs;
    const [n, h, w, c] = x.shape as [number, number, number, number];
    if (x.dtype !== 'float32' || x.shape.length !== 4) {
      throw new Error(`${ZERO_PAD_SHORTCUT_KERNEL} (native inference kernel): expected a float32 NHWC tensor, got ${x.dtype} [${x.shape.join(',')}]`);
    }
    const backend = args.backend as unknown as WasmHeapBackend;
    const out = backend.makeOutput([n, Math.ceil(h / strides), Math.ceil(w / strides), outChannels], 'float32');
    if (util.sizeFromShape(x.shape) > 0) native.zeroPadShortcut(heapView(backend, x, ZERO_PAD_SHORTCUT_KERNEL), [n, h, w, c], strides, outChannels, heapView(backend, out, ZERO_PAD_SHORTCUT_KERNEL));
    return out;
  };
}

type Install = (kernelName: string, make: (original: KernelConfig | undefined) => KernelFunc) => void;

/**
 * Installs the native inference kernels on `native` with training-kernels.ts's install (which keeps the wasm kernel
 * each replaces), or with `native` undefined takes away those only this module installs. FusedBatchNorm falls back
 * to the depthwise formulation, Add to the native broadcasting one where `elementwise` is given, else to wasm's.
 */
export function installNativeInferenceKernels(
  install: Install,
  restore: (kernelName: string) => void,
  native: NativeConvKernels | undefined,
  elementwise: NativeConvKernels | undefined,
): void {
  if (native == null) {
    // FusedBatchNorm and Add were just reinstalled by the training kernels' own lines.
    restore(Relu);
    restore(ZERO_PAD_SHORTCUT_KERNEL);
    restore(BATCH_NORM_RELU_INFERENCE_KERNEL);
    restore(ADD_RELU_INFERENCE_KERNEL);
    return;
  }
  install(FusedBatchNorm, (original) => makeNativeBatchNorm(native, makeBatchNormViaDepthwise(original) as unknown as KernelFunc));
  install(Relu, (original) => makeNativeRelu(native, original?.kernelFunc));
  install(BATCH_NORM_RELU_INFERENCE_KERNEL, () => makeNativeBatchNormRelu(native));
  install(ADD_RELU_INFERENCE_KERNEL, () => makeNativeAddRelu(native));
  install(Add, (original) => makeNativeAdd(native, elementwise ? nativeElementwiseKernelMakers[Add]!(elementwise, original) : original?.kernelFunc));
  install(ZERO_PAD_SHORTCUT_KERNEL, () => makeNativeZeroPadShortcut(native));
}
