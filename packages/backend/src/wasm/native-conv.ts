import { backend_util, Conv2D, Conv2DBackpropFilter, Conv2DBackpropInput, FusedConv2D, util } from '@tensorflow/tfjs-core';
import type {
  Conv2DAttrs,
  Conv2DBackpropFilterAttrs,
  Conv2DBackpropInputAttrs,
  FusedConv2DAttrs,
  KernelConfig,
  KernelFunc,
  TensorInfo,
} from '@tensorflow/tfjs-core';
import type { ConvGeometry, NativeConvKernels } from '@wrn/native';
import { heapView, type KernelArgs, type WasmHeapBackend } from './heap';

/** The kernels that native convolutions replace on the wasm backend (each falls back for what it does not cover). */
export const WASM_NATIVE_CONV_KERNEL_NAMES: readonly string[] = [Conv2D, FusedConv2D, Conv2DBackpropInput, Conv2DBackpropFilter];

/**
 * A tensor's data as a Float32Array over the wasm heap: the native kernels read and write it in place. Take the
 * views only after every makeOutput of the call, since allocating may grow (and so replace) the heap.
 */
export function nativeGeometry(
  inputShape: readonly number[],
  filterShape: readonly number[],
  attrs: { strides: number | [number, number]; pad: Conv2DAttrs['pad']; dataFormat: string; dimRoundingMode?: 'floor' | 'round' | 'ceil' },
  dilations: number | [number, number] = 1,
): ConvGeometry | undefined {
  if (attrs.dataFormat !== 'NHWC' || inputShape.length !== 4 || filterShape.length !== 4) return undefined;
  const info = backend_util.computeConv2DInfo(
    inputShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides,
    dilations,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
  const { top, left } = info.padInfo;
  if (info.dilationHeight !== 1 || info.dilationWidth !== 1 || top < 0 || left < 0 || top >= info.filterHeight || left >= info.filterWidth) return undefined;
  const geometry: ConvGeometry = {
    n: info.batchSize,
    h: info.inHeight,
    w: info.inWidth,
    ci: info.inChannels,
    kh: info.filterHeight,
    kw: info.filterWidth,
    co: info.outChannels,
    ho: info.outHeight,
    wo: info.outWidth,
    sh: info.strideHeight,
    sw: info.strideWidth,
    padTop: top,
    padLeft: left,
  };
  const { padTop, padLeft, ...sizes } = geometry;
  // An empty tensor (a zero size) has nothing to compute: the replaced kernel handles it.
  return Object.values(sizes).every((v) => Number.isInteger(v) && v > 0) && Number.isInteger(padTop) && Number.isInteger(padLeft)
    ? geometry
    : undefined;
}

function float32(...infos: (TensorInfo | undefined)[]): boolean {
  return infos.every((info) => info == null || info.dtype === 'float32');
}

function fallback(original: KernelConfig | undefined, kernelName: string, args: KernelArgs): TensorInfo | TensorInfo[] {
  if (original == null) throw new Error(`${kernelName}: this case is not covered by the native kernels and the wasm backend has no kernel for it`);
  return original.kernelFunc(args);
}

function makeConv2D(native: NativeConvKernels, original: KernelConfig | undefined): KernelFunc {
  return (args) => {
    const { x, filter } = args.inputs;
    const attrs = args.attrs as unknown as Conv2DAttrs;
    const g = x && filter && float32(x, filter) ? nativeGeometry(x.shape, filter.shape, attrs, attrs.dilations) : undefined;
    if (g == null || filter!.shape[2] !== g.ci) return fallback(original, Conv2D, args);
    const backend = args.backend as unknown as WasmHeapBackend;
    const out = backend.makeOutput([g.n, g.ho, g.wo, g.co], 'float32');
    native.conv2d(g, heapView(backend, x!, Conv2D), heapView(backend, filter!, Conv2D), heapView(backend, out, Conv2D));
    return out;
  };
}

function makeFusedConv2D(native: NativeConvKernels, original: KernelConfig | undefined): KernelFunc {
  return (args) => {
    const { x, filter, bias, preluActivationWeights } = args.inputs;
    const attrs = args.attrs as unknown as FusedConv2DAttrs;
    const activationOk = attrs.activation === 'linear' || attrs.activation === 'relu' || attrs.activation == null;
    const g =
      x && filter && activationOk && preluActivationWeights == null && float32(x, filter, bias)
        ? nativeGeometry(x.shape, filter.shape, attrs, attrs.dilations)
        : undefined;
    if (g == null || filter!.shape[2] !== g.ci || (bias != null && util.sizeFromShape(bias.shape) !== g.co)) return fallback(original, FusedConv2D, args);
    const backend = args.backend as unknown as WasmHeapBackend;
    const out = backend.makeOutput([g.n, g.ho, g.wo, g.co], 'float32');
    native.conv2d(g, heapView(backend, x!, FusedConv2D), heapView(backend, filter!, FusedConv2D), heapView(backend, out, FusedConv2D), bias ? heapView(backend, bias, FusedConv2D) : null, attrs.activation === 'relu');
    return out;
  };
}

function makeConv2DBackpropInput(native: NativeConvKernels, previous: KernelFunc): KernelFunc {
  return (args) => {
    const { dy, filter } = args.inputs;
    const attrs = args.attrs as unknown as Conv2DBackpropInputAttrs;
    const g = dy && filter && float32(dy, filter) ? nativeGeometry(attrs.inputShape, filter.shape, attrs) : undefined;
    if (g == null || !util.arraysEqual(dy!.shape, [g.n, g.ho, g.wo, g.co])) return previous(args);
    const backend = args.backend as unknown as WasmHeapBackend;
    const dx = backend.makeOutput([g.n, g.h, g.w, g.ci], 'float32');
    native.conv2dBackpropInput(g, heapView(backend, dy!, Conv2DBackpropInput), heapView(backend, filter!, Conv2DBackpropInput), heapView(backend, dx, Conv2DBackpropInput));
    return dx;
  };
}

function makeConv2DBackpropFilter(native: NativeConvKernels, previous: KernelFunc): KernelFunc {
  return (args) => {
    const { x, dy } = args.inputs;
    const attrs = args.attrs as unknown as Conv2DBackpropFilterAttrs;
    const g = x && dy && float32(x, dy) ? nativeGeometry(x.shape, attrs.filterShape, attrs) : undefined;
    if (g == null || !util.arraysEqual(dy!.shape, [g.n, g.ho, g.wo, g.co])) return previous(args);
    const backend = args.backend as unknown as WasmHeapBackend;
    const dw = backend.makeOutput([g.kh, g.kw, g.ci, g.co], 'float32');
    native.conv2dBackpropFilter(g, heapView(backend, x!, Conv2DBackpropFilter), heapView(backend, dy!, Conv2DBackpropFilter), heapView(backend, dw, Conv2DBackpropFilter));
    return dw;
  };
}

/**
 * Kernel functions backed by @wrn/native for the wasm backend. Conv2D and FusedConv2D fall back to wasm's own
 * (XNNPACK) kernels, the gradients to @wrn's wasm formulations, for what the native kernels do not cover:
 * dilation, NCHW, activations other than relu, non-float32 data.
 */
export const nativeConvKernelMakers = {
  [Conv2D]: (native: NativeConvKernels, original: KernelConfig | undefined) => makeConv2D(native, original),
  [FusedConv2D]: (native: NativeConvKernels, original: KernelConfig | undefined) => makeFusedConv2D(native, original),
  [Conv2DBackpropInput]: (native: NativeConvKernels, previous: KernelFunc) => makeConv2DBackpropInput(native, previous),
  [Conv2DBackpropFilter]: (native: NativeConvKernels, previous: KernelFunc) => makeConv2DBackpropFilter(native, previous),
};
