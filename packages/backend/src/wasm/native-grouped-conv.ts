import { engine, getGradient, getKernel, registerGradient, registerKernel, unregisterKernel, util } from '@tensorflow/tfjs-core';
import type { GradConfig, KernelFunc, NamedAttrMap, Tensor, TensorInfo } from '@tensorflow/tfjs-core';
import { GROUPED_CONV2D_KERNEL, type GroupedConv2DKernelAttrs, type GroupedConvContext, type GroupedConvMethod } from '@wrn/blocks';
import type { ConvGeometry, NativeConvKernels } from '@wrn/native';
import { heapView, requireInput, type KernelArgs, type WasmHeapBackend } from './heap';
import { nativeGeometry } from './native-conv';

// @wrn/blocks' grouped convolution as one kernel on @wrn/native (its `native` method), for the wasm backend: one
// GEMM per group on strided views of the heap, where the `split` method ran G slices, G convs and a concat (and
// its gradient as many again). The gradient saves only x and the filter: split saved a copy of each group's slice.

/** The input gradient of {@link GROUPED_CONV2D_KERNEL}: inputs dy, filter; attrs its own plus `inputShape`. */
export const GROUPED_CONV2D_BACKPROP_INPUT_KERNEL = 'WrnGroupedConv2DBackpropInput';
/** The filter gradient of {@link GROUPED_CONV2D_KERNEL}: inputs x, dy; attrs its own plus `filterShape`. */
export const GROUPED_CONV2D_BACKPROP_FILTER_KERNEL = 'WrnGroupedConv2DBackpropFilter';

/** The kernels {@link registerNativeGroupedConv} registers for the wasm backend. */
export const WASM_NATIVE_GROUPED_CONV_KERNEL_NAMES: readonly string[] = [
  GROUPED_CONV2D_KERNEL,
  GROUPED_CONV2D_BACKPROP_INPUT_KERNEL,
  GROUPED_CONV2D_BACKPROP_FILTER_KERNEL,
];

const BACKEND = 'wasm';

type Attrs = GroupedConv2DKernelAttrs & { inputShape?: number[]; filterShape?: number[] };

/** The attributes of the grouped conv kernels: the forward's, plus the gradients' `inputShape` / `filterShape`. */
export type GroupedConvKernelAttrs = Attrs;

function attrsOf(args: KernelArgs): Attrs {
  return args.attrs as unknown as Attrs;
}

/**
 * The native geometry of a grouped conv of an input of `inputShape` with a [kh,kw,Cin/G,Cout] filter, or undefined
 * where @wrn/native does not cover it (an empty tensor, padding past the filter). Throws where the shapes do not
 * make a grouped conv: blocks' groupedConv2d checks them first, so only a direct runKernel gets here.
 */
function groupedGeometry(kernel: string, inputShape: readonly number[], filterShape: readonly number[], attrs: Attrs): ConvGeometry | undefined {
  const { groups, strides, pad } = attrs;
  if (inputShape.length !== 4 || filterShape.length !== 4) {
    throw new Error(`${kernel}: x and filter must be rank 4, got [${inputShape.join(',')}] and [${filterShape.join(',')}]`);
  }
  const [, , perGroup, outChannels] = filterShape as [number, number, number, number];
  if (!Number.isInteger(groups) || groups < 1 || perGroup * groups !== inputShape[3] || outChannels % groups !== 0) {
    throw new Error(
      `${kernel}: groups ${String(groups)} do not fit x [${inputShape.join(',')}] and filter [${filterShape.join(',')}] ` +
        `(expected x's channels = groups * filter's third axis, and filter's last axis a multiple of groups)`,
    );
  }
  // nativeGeometry takes the dense view (a filter of all input channels) for the sizes; the groups then say how many.
  const dense = nativeGeometry(inputShape, [filterShape[0]!, filterShape[1]!, inputShape[3]!, outChannels], { strides, pad, dataFormat: 'NHWC' });
  return dense == null ? undefined : { ...dense, ci: perGroup, groups };
}

// blocks' groupedConv2d runs this kernel only on float32 tensors that are not empty, with padding below the filter
// size (the layer's rule): all that @wrn/native covers. A direct runKernel with anything else is told so.
function notCovered(kernel: string, what: string): Error {
  return new Error(`${kernel} (wasm, @wrn/native): not covered: ${what}; use groupedConv2d's 'split' method`);
}

function makeForward(native: NativeConvKernels): KernelFunc {
  return (args) => {
    const x = requireInput(args.inputs, 'x', GROUPED_CONV2D_KERNEL);
    const filter = requireInput(args.inputs, 'filter', GROUPED_CONV2D_KERNEL);
    const attrs = attrsOf(args);
    const g = groupedGeometry(GROUPED_CONV2D_KERNEL, x.shape, filter.shape, attrs);
    if (x.dtype !== 'float32' || filter.dtype !== 'float32') throw notCovered(GROUPED_CONV2D_KERNEL, `dtypes ${x.dtype} and ${filter.dtype} (float32 only)`);
    if (g == null) throw notCovered(GROUPED_CONV2D_KERNEL, `x [${x.shape.join(',')}], filter [${filter.shape.join(',')}], padding ${JSON.stringify(attrs.pad)} (an empty tensor or padding past the filter)`);
    const bias = args.inputs['bias'];
    if (bias != null && (bias.dtype !== 'float32' || util.sizeFromShape(bias.shape) !== g.co)) {
      throw notCovered(GROUPED_CONV2D_KERNEL, `bias ${bias.dtype} [${bias.shape.join(',')}] (float32 [${g.co}] only)`);
    }
    const backend = args.backend as unknown as WasmHeapBackend;
    const out = backend.makeOutput([g.n, g.ho, g.wo, g.co], 'float32');
    const view = (t: TensorInfo) => heapView(backend, t, GROUPED_CONV2D_KERNEL);
    native.conv2d(g, view(x), view(filter), view(out), bias == null ? null : view(bias), attrs.activation === 'relu');
    return out;
  };
}

function makeBackpropInput(native: NativeConvKernels): KernelFunc {
  const name = GROUPED_CONV2D_BACKPROP_INPUT_KERNEL;
  return (args) => {
    const dy = requireInput(args.inputs, 'dy', name);
    const filter = requireInput(args.inputs, 'filter', name);
    const attrs = attrsOf(args);
    const g = groupedGeometry(name, attrs.inputShape ?? [], filter.shape, attrs);
    if (g == null || !util.arraysEqual(dy.shape, [g.n, g.ho, g.wo, g.co])) {
      throw new Error(`${name}: dy [${dy.shape.join(',')}] is not the output of a grouped conv of x [${(attrs.inputShape ?? []).join(',')}] with filter [${filter.shape.join(',')}]`);
    }
    const backend = args.backend as unknown as WasmHeapBackend;
    const dx = backend.makeOutput([g.n, g.h, g.w, g.ci * g.groups!], 'float32');
    native.conv2dBackpropInput(g, heapView(backend, dy, name), heapView(backend, filter, name), heapView(backend, dx, name));
    return dx;
  };
}

function makeBackpropFilter(native: NativeConvKernels): KernelFunc {
  const name = GROUPED_CONV2D_BACKPROP_FILTER_KERNEL;
  return (args) => {
    const x = requireInput(args.inputs, 'x', name);
    const dy = requireInput(args.inputs, 'dy', name);
    const attrs = attrsOf(args);
    const g = groupedGeometry(name, x.shape, attrs.filterShape ?? [], attrs);
    if (g == null || !util.arraysEqual(dy.shape, [g.n, g.ho, g.wo, g.co])) {
      throw new Error(`${name}: dy [${dy.shape.join(',')}] is not the output of a grouped conv of x [${x.shape.join(',')}] with a filter [${(attrs.filterShape ?? []).join(',')}]`);
    }
    const backend = args.backend as unknown as WasmHeapBackend;
    const dw = backend.makeOutput([g.kh, g.kw, g.ci, g.co], 'float32');
    native.conv2dBackpropFilter(g, heapView(backend, x, name), heapView(backend, dy, name), heapView(backend, dw, name));
    return dw;
  };
}

/** The gradient of {@link GROUPED_CONV2D_KERNEL}: its two gradient kernels, on the backend the forward ran on. */
const groupedConvGradient: GradConfig = {
  kernelName: GROUPED_CONV2D_KERNEL,
  inputsToSave: ['x', 'filter'],
  gradFunc: (dy: Tensor | Tensor[], saved: Tensor[], attrs: NamedAttrMap) => {
    const [x, filter] = saved as [Tensor, Tensor];
    const gradient = dy as Tensor;
    return {
      x: () => engine().runKernel(GROUPED_CONV2D_BACKPROP_INPUT_KERNEL, { dy: gradient, filter }, { ...attrs, inputShape: x.shape }) as Tensor,
      filter: () => engine().runKernel(GROUPED_CONV2D_BACKPROP_FILTER_KERNEL, { x, dy: gradient }, { ...attrs, filterShape: filter.shape }) as Tensor,
    };
  },
};

const ours = new Map<string, KernelFunc>();

/** The native geometry of a grouped conv (or undefined where @wrn/native does not cover it); the wrn-native backend's too. */
export const groupedConvGeometry = groupedGeometry;

/** Registers the gradient of {@link GROUPED_CONV2D_KERNEL} (its two gradient kernels on the active backend), once. */
export function registerGroupedConvGradient(): void {
  if (getGradient(GROUPED_CONV2D_KERNEL) !== groupedConvGradient) registerGradient(groupedConvGradient);
}

/**
 * Registers (with `native`) or removes (undefined) the native grouped conv kernels on the wasm backend, and the
 * forward kernel's gradient (which stays: it only runs where the forward kernel ran). Idempotent.
 */
export function registerNativeGroupedConv(native: NativeConvKernels | undefined): void {
  const makers: Record<string, (n: NativeConvKernels) => KernelFunc> = {
    [GROUPED_CONV2D_KERNEL]: makeForward,
    [GROUPED_CONV2D_BACKPROP_INPUT_KERNEL]: makeBackpropInput,
    [GROUPED_CONV2D_BACKPROP_FILTER_KERNEL]: makeBackpropFilter,
  };
  for (const kernelName of WASM_NATIVE_GROUPED_CONV_KERNEL_NAMES) {
    const current = getKernel(kernelName, BACKEND);
    if (current != null && current.kernelFunc === ours.get(kernelName)) unregisterKernel(kernelName, BACKEND);
    ours.delete(kernelName);
    if (native == null) continue;
    const kernelFunc = makers[kernelName]!(native);
    ours.set(kernelName, kernelFunc);
    registerKernel({ kernelName, backendName: BACKEND, kernelFunc });
  }
  if (native != null) registerGroupedConvGradient();
}

/**
 * The grouped conv method of wasm's layers while the native kernels are on: `native` in both modes (measured in
 * tools/bench/grouped-conv.ts and the bench's ResNeXt-29 figures, packages/backend/README.md).
 */
export function nativeGroupedConvMethod(context: GroupedConvContext): GroupedConvMethod {
  void context;
  return 'native';
}
