import {
  Add,
  backend_util,
  FusedBatchNorm,
  Mean,
  Multiply,
  PadV2,
  Relu,
  Slice,
  slice_util,
  Step,
  Sub,
  Sum,
  Tile,
  util,
} from '@tensorflow/tfjs-core';
import type { FusedBatchNormAttrs, KernelFunc, PadV2Attrs, SliceAttrs, StepAttrs, SumAttrs, TensorInfo, TileAttrs } from '@tensorflow/tfjs-core';
import { BATCH_NORM_TRAINING_KERNEL, ZERO_PAD_SHORTCUT_KERNEL, type BatchNormTrainingAttrs, type ZeroPadShortcutAttrs } from '@wrn/blocks';
import type { NativeBinaryOp, NativeConvKernels } from '@wrn/native';
import { NATIVE_BATCH_NORM_TRAINING_GRAD } from '../wasm/native-batch-norm';
import { NATIVE_RELU_GRAD } from '../wasm/native-relu-grad';
import { NATIVE_SGD_UPDATE, type SgdUpdateAttrs } from '../wasm/native-sgd';
import { allFloat32, cpuBackendOf, float32Values, newValues, outputOf, requireInput, NATIVE_BACKEND_NAME, type KernelArgs } from './tensor-data';

// The memory-bound kernels of a training step and of predict on the wrn-native backend, each on @wrn/native (or,
// for Tile, Slice and PadV2, typed-array block copies) over the tensors' own Float32Arrays: BatchNorm in training mode and its
// gradient, inference BatchNorm, ReLU and its gradient from the output, Step, broadcasting Add/Sub/Multiply,
// Sum/Mean over neighbouring axes (global average pooling), Tile (Mean's gradient), Slice and PadV2 (the option-A
// shortcut in training), the option-A shortcut in predict and the SGD update. What a kernel does not cover goes to tfjs-backend-cpu's kernel of the same name.

type Fallback = KernelFunc | undefined;

function fallback(kernel: string, cpu: Fallback, args: KernelArgs): ReturnType<KernelFunc> {
  if (cpu == null) throw new Error(`${kernel} (${NATIVE_BACKEND_NAME}): not covered by @wrn/native and tfjs-backend-cpu has no kernel for it`);
  return cpu(args);
}

function channelsOf(x: TensorInfo, kernel: string): number {
  const channels = x.shape[x.shape.length - 1];
  if (x.dtype !== 'float32' || channels == null || channels < 1 || util.sizeFromShape(x.shape) === 0) {
    throw new Error(`${kernel} (${NATIVE_BACKEND_NAME} kernel): x must be a non-empty float32 tensor [..., C], got ${x.dtype} [${x.shape.join(',')}]`);
  }
  return channels;
}

function checkPerChannel(info: TensorInfo, name: string, channels: number, kernel: string): void {
  if (info.dtype !== 'float32' || info.shape.length !== 1 || info.shape[0] !== channels) {
    throw new Error(`${kernel} (${NATIVE_BACKEND_NAME} kernel): ${name} must be float32 [${channels}], got ${info.dtype} [${info.shape.join(',')}]`);
  }
}

function batchNormTraining(native: NativeConvKernels): KernelFunc {
  const kernel = BATCH_NORM_TRAINING_KERNEL;
  return (args) => {
    const x = requireInput(args, 'x', kernel);
    const scale = requireInput(args, 'scale', kernel);
    const offset = requireInput(args, 'offset', kernel);
    const channels = channelsOf(x, kernel);
    checkPerChannel(scale, 'scale', channels, kernel);
    checkPerChannel(offset, 'offset', channels, kernel);
    const { varianceEpsilon } = args.attrs as unknown as BatchNormTrainingAttrs;
    const backend = cpuBackendOf(args);
    const [y, mean, variance] = [newValues(backend, x.shape), newValues(backend, [channels]), newValues(backend, [channels])];
    const view = (t: TensorInfo) => float32Values(backend, t, kernel);
    native.batchNormTraining(view(x), view(scale), view(offset), varianceEpsilon, { y, mean, variance });
    return [outputOf(backend, x.shape, y), outputOf(backend, [channels], mean), outputOf(backend, [channels], variance)];
  };
}

function batchNormTrainingGrad(native: NativeConvKernels): KernelFunc {
  const kernel = NATIVE_BATCH_NORM_TRAINING_GRAD;
  return (args) => {
    const [x, dy, scale, mean, variance] = ['x', 'dy', 'scale', 'mean', 'variance'].map((name) => requireInput(args, name, kernel)) as [
      TensorInfo,
      TensorInfo,
      TensorInfo,
      TensorInfo,
      TensorInfo,
    ];
    const { dmean, dvariance } = args.inputs;
    const channels = channelsOf(x, kernel);
    if (!util.arraysEqual(dy.shape, x.shape) || dy.dtype !== 'float32') {
      throw new Error(`${kernel} (${NATIVE_BACKEND_NAME} kernel): dy ${dy.dtype} [${dy.shape.join(',')}] must be float32 of x's shape [${x.shape.join(',')}]`);
    }
    for (const [name, info] of Object.entries({ scale, mean, variance, dmean, dvariance })) if (info != null) checkPerChannel(info, name, channels, kernel);
    const { varianceEpsilon } = args.attrs as unknown as BatchNormTrainingAttrs;
    const backend = cpuBackendOf(args);
    const view = (t: TensorInfo) => float32Values(backend, t, kernel);
    const [dx, dscale, doffset] = [newValues(backend, x.shape), newValues(backend, [channels]), newValues(backend, [channels])];
    native.batchNormTrainingGrad(
      view(x),
      view(dy),
      view(scale),
      view(mean),
      view(variance),
      varianceEpsilon,
      { dmean: dmean != null ? view(dmean) : null, dvariance: dvariance != null ? view(dvariance) : null },
      { dx, dscale, doffset },
    );
    return [outputOf(backend, x.shape, dx), outputOf(backend, [channels], dscale), outputOf(backend, [channels], doffset)];
  };
}

/** FusedBatchNorm (predict's, moving statistics) over x [..., C], each parameter of C values or one. */
function fusedBatchNorm(native: NativeConvKernels, cpu: Fallback): KernelFunc {
  return (args) => {
    const x = requireInput(args, 'x', FusedBatchNorm);
    const mean = requireInput(args, 'mean', FusedBatchNorm);
    const variance = requireInput(args, 'variance', FusedBatchNorm);
    const { offset, scale } = args.inputs;
    const channels = x.shape[x.shape.length - 1] ?? 0;
    const fits =
      x.dtype === 'float32' &&
      channels > 0 &&
      util.sizeFromShape(x.shape) > 0 &&
      [mean, variance, offset, scale].every((p) => p == null || (p.dtype === 'float32' && [1, channels].includes(util.sizeFromShape(p.shape))));
    if (!fits) return fallback(FusedBatchNorm, cpu, args);
    const backend = cpuBackendOf(args);
    const view = (t: TensorInfo | undefined) => (t == null ? null : float32Values(backend, t, FusedBatchNorm));
    const out = newValues(backend, x.shape);
    const { varianceEpsilon } = args.attrs as unknown as FusedBatchNormAttrs;
    native.batchNormInference(view(x)!, view(mean)!, view(variance)!, view(offset), view(scale), varianceEpsilon, out);
    return outputOf(backend, x.shape, out);
  };
}

function relu(native: NativeConvKernels, cpu: Fallback): KernelFunc {
  return (args) => {
    const x = requireInput(args, 'x', Relu);
    if (x.dtype !== 'float32' || util.sizeFromShape(x.shape) === 0) return fallback(Relu, cpu, args);
    const backend = cpuBackendOf(args);
    const out = newValues(backend, x.shape);
    native.relu(float32Values(backend, x, Relu), out);
    return outputOf(backend, x.shape, out);
  };
}

function step(native: NativeConvKernels, cpu: Fallback): KernelFunc {
  return (args) => {
    const x = requireInput(args, 'x', Step);
    if (x.dtype !== 'float32' || util.sizeFromShape(x.shape) === 0) return fallback(Step, cpu, args);
    const backend = cpuBackendOf(args);
    const out = newValues(backend, x.shape);
    native.unary('step', float32Values(backend, x, Step), out, (args.attrs as unknown as StepAttrs).alpha ?? 0);
    return outputOf(backend, x.shape, out);
  };
}

function reluGrad(native: NativeConvKernels): KernelFunc {
  return (args) => {
    const y = requireInput(args, 'y', NATIVE_RELU_GRAD);
    const dy = requireInput(args, 'dy', NATIVE_RELU_GRAD);
    if (!allFloat32(y, dy) || !util.arraysEqual(y.shape, dy.shape)) {
      throw new Error(`${NATIVE_RELU_GRAD} (${NATIVE_BACKEND_NAME} kernel): y and dy must be float32 of one shape, got ${y.dtype} [${y.shape.join(',')}] and ${dy.dtype} [${dy.shape.join(',')}]`);
    }
    const backend = cpuBackendOf(args);
    const dx = newValues(backend, y.shape);
    native.reluGrad(float32Values(backend, y, NATIVE_RELU_GRAD), float32Values(backend, dy, NATIVE_RELU_GRAD), dx);
    return outputOf(backend, y.shape, dx);
  };
}

/**
 * Whether `shape` broadcasts to `out` as a block the addon repeats: its size-1 axes all come before the axes it
 * shares with `out` ([C] or [1,1,1,C] against [N,H,W,C]; a scalar; the full shape).
 */
function repeatsAsSuffix(shape: readonly number[], out: readonly number[]): boolean {
  const padded = [...new Array<number>(out.length - shape.length).fill(1), ...shape];
  let k = 0;
  while (k < padded.length && padded[k] === 1) k++;
  for (let j = k; j < out.length; j++) if (padded[j] !== out[j]) return false;
  return true;
}

function binary(native: NativeConvKernels, kernel: string, op: NativeBinaryOp, cpu: Fallback): KernelFunc {
  return (args) => {
    const { a, b } = args.inputs;
    if (a != null && b != null && allFloat32(a, b)) {
      const outShape = backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
      const n = util.sizeFromShape(outShape);
      const [na, nb] = [util.sizeFromShape(a.shape), util.sizeFromShape(b.shape)];
      if (n > 0 && (na === n || nb === n) && repeatsAsSuffix(a.shape, outShape) && repeatsAsSuffix(b.shape, outShape)) {
        const backend = cpuBackendOf(args);
        const out = newValues(backend, outShape);
        const [va, vb] = [float32Values(backend, a, kernel), float32Values(backend, b, kernel)];
        // Same shapes (a residual sum, gradients meeting at a fork): the threaded add.
        if (op === 'add' && na === nb) native.add(va, vb, out);
        else native.binary(op, va, vb, out);
        return outputOf(backend, outShape, out);
      }
    }
    return fallback(kernel, cpu, args);
  };
}

/** Sum/Mean over one block of neighbouring axes, x viewed as [outer, reduced, kept]; the cpu kernel does the rest. */
function reduction(native: NativeConvKernels, kernel: typeof Sum | typeof Mean, cpu: Fallback): KernelFunc {
  return (args) => {
    const x = requireInput(args, 'x', kernel);
    if (x.dtype !== 'float32') return fallback(kernel, cpu, args);
    const { axis, keepDims } = args.attrs as unknown as SumAttrs;
    const shape = x.shape;
    const axes = util.parseAxisParam(axis, shape).sort((p, q) => p - q);
    const first = axes[0];
    const last = axes[axes.length - 1];
    if (first == null || last == null || new Set(axes).size !== last - first + 1) return fallback(kernel, cpu, args);
    const size = (dims: readonly number[]) => dims.reduce((p, q) => p * q, 1);
    const [outer, reduced, kept] = [size(shape.slice(0, first)), size(shape.slice(first, last + 1)), size(shape.slice(last + 1))];
    if (outer * reduced * kept === 0) return fallback(kernel, cpu, args);
    const outShape = keepDims ? shape.map((d, i) => (i >= first && i <= last ? 1 : d)) : shape.filter((_, i) => i < first || i > last);
    const backend = cpuBackendOf(args);
    const out = newValues(backend, outShape);
    native.sum(float32Values(backend, x, kernel), outer, reduced, kept, out, kernel === Mean ? 1 / reduced : 1);
    return outputOf(backend, outShape, out);
  };
}

/**
 * Tile of a float32 tensor by block copies: each axis' block is built once and repeated with copyWithin, so
 * broadcasting dy [N,1,1,C] to [N,H,W,C] (Mean's gradient) is N * (1 + H + W) copies, where the cpu kernel computes
 * an index per element.
 */
function tile(cpu: Fallback): KernelFunc {
  return (args) => {
    const x = requireInput(args, 'x', Tile);
    const { reps } = args.attrs as unknown as TileAttrs;
    const shape = x.shape;
    if (x.dtype !== 'float32' || reps.length !== shape.length || shape.length === 0 || util.sizeFromShape(shape) === 0 || reps.some((r) => !Number.isInteger(r) || r < 1)) {
      return fallback(Tile, cpu, args);
    }
    const backend = cpuBackendOf(args);
    const src = float32Values(backend, x, Tile);
    const outShape = shape.map((d, i) => d * reps[i]!);
    const out = newValues(backend, outShape);
    const rank = shape.length;
    const srcStride = new Array<number>(rank).fill(1);
    const outStride = new Array<number>(rank).fill(1);
    for (let i = rank - 2; i >= 0; i--) {
      srcStride[i] = srcStride[i + 1]! * shape[i + 1]!;
      outStride[i] = outStride[i + 1]! * outShape[i + 1]!;
    }
    const fill = (axis: number, srcOffset: number, outOffset: number): void => {
      const extent = shape[axis]!;
      if (axis === rank - 1) out.set(src.subarray(srcOffset, srcOffset + extent), outOffset);
      else for (let i = 0; i < extent; i++) fill(axis + 1, srcOffset + i * srcStride[axis]!, outOffset + i * outStride[axis]!);
      const block = extent * outStride[axis]!;
      for (let r = 1; r < reps[axis]!; r++) out.copyWithin(outOffset + r * block, outOffset, outOffset + block);
    };
    fill(0, 0, 0);
    return outputOf(backend, outShape, out);
  };
}

function stridesOf(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) strides[i] = strides[i + 1]! * shape[i + 1]!;
  return strides;
}

/**
 * Copies the box of `size` at `srcBegin` in `src` (of `srcShape`) to `outBegin` in `out` (of `outShape`), one
 * typed-array copy per contiguous run: the innermost axes that are whole in both make one run.
 */
function copyBox(
  src: Float32Array,
  srcShape: readonly number[],
  srcBegin: readonly number[],
  out: Float32Array,
  outShape: readonly number[],
  outBegin: readonly number[],
  size: readonly number[],
): void {
  const rank = size.length;
  const [srcStrides, outStrides] = [stridesOf(srcShape), stridesOf(outShape)];
  let k = rank;
  while (k > 1 && size[k - 1] === srcShape[k - 1] && size[k - 1] === outShape[k - 1]) k--;
  const runAxis = k - 1;
  const run = size[runAxis]! * srcStrides[runAxis]!;
  const copy = (axis: number, s: number, o: number): void => {
    if (axis === runAxis) {
      out.set(src.subarray(s, s + run), o);
      return;
    }
    for (let i = 0; i < size[axis]!; i++) copy(axis + 1, s + i * srcStrides[axis]!, o + i * outStrides[axis]!);
  };
  const offset = (begin: readonly number[], strides: number[]) => begin.reduce((sum, b, i) => sum + b * strides[i]!, 0);
  copy(0, offset(srcBegin, srcStrides), offset(outBegin, outStrides));
}

/**
 * Slice by contiguous runs (blocks' subsample, the option-A shortcut in training, and Pad's gradient): the cpu
 * kernel copies a non-contiguous slice one element at a time through a TensorBuffer, 85% of a ResNet-20 step.
 */
function sliceKernel(cpu: Fallback): KernelFunc {
  return (args) => {
    const x = requireInput(args, 'x', Slice);
    const { begin, size } = args.attrs as unknown as SliceAttrs;
    if (x.dtype !== 'float32' || x.shape.length === 0) return fallback(Slice, cpu, args);
    const [$begin, $size] = slice_util.parseSliceParams(x, begin, size) as [number[], number[]];
    slice_util.assertParamsValid(x, $begin, $size);
    if (util.sizeFromShape($size) === 0) return fallback(Slice, cpu, args);
    const backend = cpuBackendOf(args);
    const out = newValues(backend, $size);
    copyBox(float32Values(backend, x, Slice), x.shape, $begin, out, $size, $size.map(() => 0), $size);
    return outputOf(backend, $size, out);
  };
}

/** PadV2 (a constant border) by contiguous runs; Slice's gradient and blocks' subsample of odd sizes. */
function padKernel(cpu: Fallback): KernelFunc {
  return (args) => {
    const x = requireInput(args, 'x', PadV2);
    const { paddings, constantValue } = args.attrs as unknown as PadV2Attrs;
    const valid = paddings.length === x.shape.length && paddings.every(([a, b]) => Number.isInteger(a) && Number.isInteger(b) && a >= 0 && b >= 0);
    if (x.dtype !== 'float32' || x.shape.length === 0 || !valid || util.sizeFromShape(x.shape) === 0) return fallback(PadV2, cpu, args);
    const backend = cpuBackendOf(args);
    const outShape = x.shape.map((d, i) => paddings[i]![0] + d + paddings[i]![1]);
    const out = newValues(backend, outShape);
    out.fill(constantValue);
    copyBox(float32Values(backend, x, PadV2), x.shape, x.shape.map(() => 0), out, outShape, paddings.map(([before]) => before), x.shape);
    return outputOf(backend, outShape, out);
  };
}

function zeroPadShortcut(native: NativeConvKernels): KernelFunc {
  const kernel = ZERO_PAD_SHORTCUT_KERNEL;
  return (args) => {
    const x = requireInput(args, 'x', kernel);
    const { strides, outChannels } = args.attrs as unknown as ZeroPadShortcutAttrs;
    if (x.dtype !== 'float32' || x.shape.length !== 4) {
      throw new Error(`${kernel} (${NATIVE_BACKEND_NAME} kernel): expected a float32 NHWC tensor, got ${x.dtype} [${x.shape.join(',')}]`);
    }
    const [n, h, w, c] = x.shape as [number, number, number, number];
    const backend = cpuBackendOf(args);
    const outShape = [n, Math.ceil(h / strides), Math.ceil(w / strides), outChannels];
    const out = newValues(backend, outShape);
    if (util.sizeFromShape(x.shape) > 0) native.zeroPadShortcut(float32Values(backend, x, kernel), [n, h, w, c], strides, outChannels, out);
    return outputOf(backend, outShape, out);
  };
}

/**
 * One torch.optim.SGD step of one parameter (see wasm/native-sgd.ts for the attributes). The new param and buffer
 * are fresh tensors (copies, then updated), as on wasm, though nothing on this backend caches by data id (no
 * XNNPACK: every kernel reads the values each call): an in-place update would have to hand the input's data id
 * back as an output, which tfjs-core's engine does not expect of a kernel, and the copies are of parameters only.
 */
function sgdUpdate(native: NativeConvKernels): KernelFunc {
  const kernel = NATIVE_SGD_UPDATE;
  return (args) => {
    const param = requireInput(args, 'param', kernel);
    const grad = requireInput(args, 'grad', kernel);
    const attrs = args.attrs as unknown as SgdUpdateAttrs;
    const withMomentum = attrs.momentum !== 0;
    const buffer = withMomentum && !attrs.first ? requireInput(args, 'buffer', kernel) : undefined;
    for (const [name, info] of Object.entries({ param, grad, buffer })) {
      if (info != null && (info.dtype !== 'float32' || !util.arraysEqual(info.shape, param.shape))) {
        throw new Error(`${kernel} (${NATIVE_BACKEND_NAME} kernel): ${name} must be float32 [${param.shape.join(',')}], got ${info.dtype} [${info.shape.join(',')}]`);
      }
    }
    const backend = cpuBackendOf(args);
    const copyOf = (info: TensorInfo) => {
      const copy = newValues(backend, param.shape);
      copy.set(float32Values(backend, info, kernel));
      return copy;
    };
    const newParam = copyOf(param);
    const newBuffer = !withMomentum ? undefined : buffer != null ? copyOf(buffer) : newValues(backend, param.shape);
    native.sgdUpdate(newParam, float32Values(backend, grad, kernel), newBuffer ?? null, attrs);
    const outs = [outputOf(backend, param.shape, newParam)];
    if (newBuffer != null) outs.push(outputOf(backend, param.shape, newBuffer));
    return outs;
  };
}

/** The wrn-native kernels of this module by name, each given @wrn/native and tfjs-backend-cpu's kernel of that name. */
export const nativeBackendOpKernels: Record<string, (native: NativeConvKernels, cpu: Fallback) => KernelFunc> = {
  [BATCH_NORM_TRAINING_KERNEL]: (native) => batchNormTraining(native),
  [NATIVE_BATCH_NORM_TRAINING_GRAD]: (native) => batchNormTrainingGrad(native),
  [FusedBatchNorm]: fusedBatchNorm,
  [Relu]: relu,
  [Step]: step,
  [NATIVE_RELU_GRAD]: (native) => reluGrad(native),
  [Add]: (native, cpu) => binary(native, Add, 'add', cpu),
  [Sub]: (native, cpu) => binary(native, Sub, 'sub', cpu),
  [Multiply]: (native, cpu) => binary(native, Multiply, 'mul', cpu),
  [Sum]: (native, cpu) => reduction(native, Sum, cpu),
  [Mean]: (native, cpu) => reduction(native, Mean, cpu),
  [Tile]: (_native, cpu) => tile(cpu),
  [Slice]: (_native, cpu) => sliceKernel(cpu),
  [PadV2]: (_native, cpu) => padKernel(cpu),
  [ZERO_PAD_SHORTCUT_KERNEL]: (native) => zeroPadShortcut(native),
  [NATIVE_SGD_UPDATE]: (native) => sgdUpdate(native),
};
