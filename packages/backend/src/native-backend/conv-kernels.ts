import { _FusedMatMul, BatchMatMul, Conv2D, Conv2DBackpropFilter, Conv2DBackpropInput, FusedConv2D, util } from '@tensorflow/tfjs-core';
import type { _FusedMatMulAttrs, Conv2DAttrs, Conv2DBackpropFilterAttrs, Conv2DBackpropInputAttrs, FusedConv2DAttrs, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import type { ConvGeometry } from '@wrn/native';
import {
  GROUPED_CONV2D_BACKPROP_FILTER_KERNEL,
  GROUPED_CONV2D_BACKPROP_INPUT_KERNEL,
  groupedConvGeometry,
  type GroupedConvKernelAttrs,
} from '../wasm/native-grouped-conv';
import { GROUPED_CONV2D_KERNEL } from '@wrn/blocks';
import type { NativeConvKernels } from '@wrn/native';
import { nativeGeometry } from '../wasm/native-conv';
import { allFloat32, cpuBackendOf, float32Values, newValues, outputOf, requireInput, NATIVE_BACKEND_NAME, type KernelArgs } from './tensor-data';

// Convolutions of the wrn-native backend: dense (Conv2D, FusedConv2D with bias and ReLU) and grouped, and both
// gradients of each, and matMul (the dense layer) as 1x1 convolutions, all on @wrn/native over the tensors' own Float32Arrays. The dense ones hand what the addon
// does not cover (dilation, NCHW, other activations or dtypes) to tfjs-backend-cpu's kernel.

type Fallback = KernelFunc | undefined;

function fallback(kernel: string, cpu: Fallback, args: KernelArgs): ReturnType<KernelFunc> {
  if (cpu == null) throw new Error(`${kernel} (${NATIVE_BACKEND_NAME}): not covered by @wrn/native and tfjs-backend-cpu has no kernel for it`);
  return cpu(args);
}

function conv2D(native: NativeConvKernels, cpu: Fallback): KernelFunc {
  return (args) => {
    const { x, filter } = args.inputs;
    const attrs = args.attrs as unknown as Conv2DAttrs;
    const g = x && filter && allFloat32(x, filter) ? nativeGeometry(x.shape, filter.shape, attrs, attrs.dilations) : undefined;
    if (g == null || filter!.shape[2] !== g.ci) return fallback(Conv2D, cpu, args);
    const backend = cpuBackendOf(args);
    const shape = [g.n, g.ho, g.wo, g.co];
    const out = newValues(backend, shape);
    native.conv2d(g, float32Values(backend, x!, Conv2D), float32Values(backend, filter!, Conv2D), out);
    return outputOf(backend, shape, out);
  };
}

function fusedConv2D(native: NativeConvKernels, cpu: Fallback): KernelFunc {
  return (args) => {
    const { x, filter, bias, preluActivationWeights } = args.inputs;
    const attrs = args.attrs as unknown as FusedConv2DAttrs;
    const activationOk = attrs.activation == null || attrs.activation === 'linear' || attrs.activation === 'relu';
    const g =
      x && filter && activationOk && preluActivationWeights == null && allFloat32(x, filter, bias)
        ? nativeGeometry(x.shape, filter.shape, attrs, attrs.dilations)
        : undefined;
    if (g == null || filter!.shape[2] !== g.ci || (bias != null && util.sizeFromShape(bias.shape) !== g.co)) return fallback(FusedConv2D, cpu, args);
    const backend = cpuBackendOf(args);
    const shape = [g.n, g.ho, g.wo, g.co];
    const out = newValues(backend, shape);
    const view = (t: Parameters<typeof float32Values>[1]) => float32Values(backend, t, FusedConv2D);
    native.conv2d(g, view(x!), view(filter!), out, bias ? view(bias) : null, attrs.activation === 'relu');
    return outputOf(backend, shape, out);
  };
}

function conv2DBackpropInput(native: NativeConvKernels, cpu: Fallback): KernelFunc {
  return (args) => {
    const { dy, filter } = args.inputs;
    const attrs = args.attrs as unknown as Conv2DBackpropInputAttrs;
    const g = dy && filter && allFloat32(dy, filter) ? nativeGeometry(attrs.inputShape, filter.shape, attrs) : undefined;
    if (g == null || !util.arraysEqual(dy!.shape, [g.n, g.ho, g.wo, g.co])) return fallback(Conv2DBackpropInput, cpu, args);
    const backend = cpuBackendOf(args);
    const shape = [g.n, g.h, g.w, g.ci];
    const dx = newValues(backend, shape);
    native.conv2dBackpropInput(g, float32Values(backend, dy!, Conv2DBackpropInput), float32Values(backend, filter!, Conv2DBackpropInput), dx);
    return outputOf(backend, shape, dx);
  };
}

function conv2DBackpropFilter(native: NativeConvKernels, cpu: Fallback): KernelFunc {
  return (args) => {
    const { x, dy } = args.inputs;
    const attrs = args.attrs as unknown as Conv2DBackpropFilterAttrs;
    const g = x && dy && allFloat32(x, dy) ? nativeGeometry(x.shape, attrs.filterShape, attrs) : undefined;
    if (g == null || !util.arraysEqual(dy!.shape, [g.n, g.ho, g.wo, g.co])) return fallback(Conv2DBackpropFilter, cpu, args);
    const backend = cpuBackendOf(args);
    const shape = [g.kh, g.kw, g.ci, g.co];
    const dw = newValues(backend, shape);
    native.conv2dBackpropFilter(g, float32Values(backend, x!, Conv2DBackpropFilter), float32Values(backend, dy!, Conv2DBackpropFilter), dw);
    return outputOf(backend, shape, dw);
  };
}

// blocks' groupedConv2d runs these only on non-empty float32 tensors with padding below the filter size: all that
// @wrn/native covers. A direct runKernel with anything else is told so (tfjs-backend-cpu has no such kernel).
function notCovered(kernel: string, what: string): Error {
  return new Error(`${kernel} (${NATIVE_BACKEND_NAME}, @wrn/native): not covered: ${what}; use groupedConv2d's 'split' method`);
}

function groupedConv2D(native: NativeConvKernels): KernelFunc {
  const name = GROUPED_CONV2D_KERNEL;
  return (args) => {
    const x = requireInput(args, 'x', name);
    const filter = requireInput(args, 'filter', name);
    const attrs = args.attrs as unknown as GroupedConvKernelAttrs;
    const g = groupedConvGeometry(name, x.shape, filter.shape, attrs);
    if (!allFloat32(x, filter)) throw notCovered(name, `dtypes ${x.dtype} and ${filter.dtype} (float32 only)`);
    if (g == null) throw notCovered(name, `x [${x.shape.join(',')}], filter [${filter.shape.join(',')}], padding ${JSON.stringify(attrs.pad)} (an empty tensor or padding past the filter)`);
    const backend = cpuBackendOf(args);
    const shape = [g.n, g.ho, g.wo, g.co];
    const out = newValues(backend, shape);
    native.conv2d(g, float32Values(backend, x, name), float32Values(backend, filter, name), out);
    return outputOf(backend, shape, out);
  };
}

function groupedConv2DBackpropInput(native: NativeConvKernels): KernelFunc {
  const name = GROUPED_CONV2D_BACKPROP_INPUT_KERNEL;
  return (args) => {
    const dy = requireInput(args, 'dy', name);
    const filter = requireInput(args, 'filter', name);
    const attrs = args.attrs as unknown as GroupedConvKernelAttrs;
    const g = groupedConvGeometry(name, attrs.inputShape ?? [], filter.shape, attrs);
    if (g == null || !util.arraysEqual(dy.shape, [g.n, g.ho, g.wo, g.co]) || !allFloat32(dy, filter)) {
      throw new Error(`${name}: dy ${dy.dtype} [${dy.shape.join(',')}] is not the float32 output of a grouped conv of x [${(attrs.inputShape ?? []).join(',')}] with filter [${filter.shape.join(',')}]`);
    }
    const backend = cpuBackendOf(args);
    const shape = [g.n, g.h, g.w, g.ci * g.groups!];
    const dx = newValues(backend, shape);
    native.conv2dBackpropInput(g, float32Values(backend, dy, name), float32Values(backend, filter, name), dx);
    return outputOf(backend, shape, dx);
  };
}

function groupedConv2DBackpropFilter(native: NativeConvKernels): KernelFunc {
  const name = GROUPED_CONV2D_BACKPROP_FILTER_KERNEL;
  return (args) => {
    const x = requireInput(args, 'x', name);
    const dy = requireInput(args, 'dy', name);
    const attrs = args.attrs as unknown as GroupedConvKernelAttrs;
    const g = groupedConvGeometry(name, x.shape, attrs.filterShape ?? [], attrs);
    if (g == null || !util.arraysEqual(dy.shape, [g.n, g.ho, g.wo, g.co]) || !allFloat32(x, dy)) {
      throw new Error(`${name}: dy ${dy.dtype} [${dy.shape.join(',')}] is not the float32 output of a grouped conv of x [${x.shape.join(',')}] with a filter [${(attrs.filterShape ?? []).join(',')}]`);
    }
    const backend = cpuBackendOf(args);
    const shape = [g.kh, g.kw, g.ci, g.co];
    const dw = newValues(backend, shape);
    native.conv2dBackpropFilter(g, float32Values(backend, x, name), float32Values(backend, dy, name), dw);
    return outputOf(backend, shape, dw);
  };
}

/** A 1x1, stride-1 convolution over `positions` pixels: the GEMM each matMul case below runs as. */
function gemmGeometry(positions: number, ci: number, co: number): ConvGeometry {
  return { n: 1, h: 1, w: positions, ci, kh: 1, kw: 1, co, ho: 1, wo: positions, sh: 1, sw: 1, padTop: 0, padLeft: 0 };
}

/** [rows, cols] of a matMul operand whose batch axes are all 1 (the dense layer's), else undefined. */
function matrixShape(info: TensorInfo): [number, number] | undefined {
  const rank = info.shape.length;
  if (rank < 2 || info.shape.slice(0, rank - 2).some((d) => d !== 1)) return undefined;
  const [rows, cols] = info.shape.slice(rank - 2) as [number, number];
  return rows > 0 && cols > 0 ? [rows, cols] : undefined;
}

/**
 * BatchMatMul and _FusedMatMul (the dense layer: logits = x W + b, and its two gradients x^T dy and dy W^T) as
 * @wrn/native GEMMs, a matMul being a 1x1 convolution of M pixels: a b = conv2d, a^T b = the filter gradient (a and
 * b as [K pixels, M] and [K pixels, N]), a b^T = the input gradient (b as a [N, K] filter). Batched products, both
 * operands transposed, and activations other than relu go to the cpu kernel.
 */
function matMul(native: NativeConvKernels, kernel: typeof BatchMatMul | typeof _FusedMatMul, cpu: Fallback): KernelFunc {
  return (args) => {
    const { a, b, bias, preluActivationWeights } = args.inputs;
    const attrs = args.attrs as unknown as _FusedMatMulAttrs;
    const activation = kernel === _FusedMatMul ? attrs.activation : 'linear';
    const [sa, sb] = a && b && allFloat32(a, b, bias) ? [matrixShape(a), matrixShape(b)] : [undefined, undefined];
    if (sa == null || sb == null || (attrs.transposeA && attrs.transposeB) || preluActivationWeights != null || !(activation == null || activation === 'linear' || activation === 'relu')) {
      return fallback(kernel, cpu, args);
    }
    const [m, k] = attrs.transposeA ? [sa[1], sa[0]] : sa;
    const [kb, n] = attrs.transposeB ? [sb[1], sb[0]] : sb;
    if (k !== kb || (bias != null && util.sizeFromShape(bias.shape) !== n && util.sizeFromShape(bias.shape) !== 1)) return fallback(kernel, cpu, args);
    const backend = cpuBackendOf(args);
    const outShape = [...(a!.shape.length >= b!.shape.length ? a! : b!).shape.slice(0, -2), m, n];
    const out = newValues(backend, outShape);
    const [va, vb] = [float32Values(backend, a!, kernel), float32Values(backend, b!, kernel)];
    const fuseHere = !attrs.transposeA && !attrs.transposeB && (bias == null || util.sizeFromShape(bias.shape) === n);
    if (fuseHere) {
      native.conv2d(gemmGeometry(m, k, n), va, vb, out, bias != null ? float32Values(backend, bias, kernel) : null, activation === 'relu');
      return outputOf(backend, outShape, out);
    }
    if (attrs.transposeA) native.conv2dBackpropFilter(gemmGeometry(k, m, n), va, vb, out);
    else if (attrs.transposeB) native.conv2dBackpropInput(gemmGeometry(m, n, k), va, vb, out);
    else native.conv2d(gemmGeometry(m, k, n), va, vb, out);
    if (bias != null) native.binary('add', out, float32Values(backend, bias, kernel), out);
    if (activation === 'relu') native.relu(out, out);
    return outputOf(backend, outShape, out);
  };
}

/** The wrn-native convolution kernels by name, each given @wrn/native and tfjs-backend-cpu's kernel of that name. */
export const nativeBackendConvKernels: Record<string, (native: NativeConvKernels, cpu: Fallback) => KernelFunc> = {
  [Conv2D]: conv2D,
  [FusedConv2D]: fusedConv2D,
  [Conv2DBackpropInput]: conv2DBackpropInput,
  [Conv2DBackpropFilter]: conv2DBackpropFilter,
  [BatchMatMul]: (native, cpu) => matMul(native, BatchMatMul, cpu),
  [_FusedMatMul]: (native, cpu) => matMul(native, _FusedMatMul, cpu),
  [GROUPED_CONV2D_KERNEL]: (native) => groupedConv2D(native),
  [GROUPED_CONV2D_BACKPROP_INPUT_KERNEL]: (native) => groupedConv2DBackpropInput(native),
  [GROUPED_CONV2D_BACKPROP_FILTER_KERNEL]: (native) => groupedConv2DBackpropFilter(native),
};
