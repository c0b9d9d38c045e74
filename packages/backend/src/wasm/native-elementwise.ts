import {
  Add,
  backend_util,
  engine,
  getKernel,
  Mean,
  Multiply,
  registerKernel,
  Step,
  Sub,
  Sum,
  unregisterKernel,
  util,
} from '@tensorflow/tfjs-core';
import type { FusedBatchNormAttrs, KernelConfig, KernelFunc, NamedAttrMap, StepAttrs, SumAttrs, Tensor, TensorInfo } from '@tensorflow/tfjs-core';
import type { NativeBinaryOp, NativeConvKernels, NativeUnaryOp } from '@wrn/native';
import { heapView, type KernelArgs, type WasmHeapBackend } from './heap';

/**
 * The memory-bound kernels of a training step that wasm runs slowly, on @wrn/native: Add/Sub/Multiply where an
 * operand broadcasts (wasm's broadcasting loop is scalar: 5x slower than native on [64,32,32,16] - [16]), Step
 * (ReLU's gradient), Sum over a block of axes, and BatchNorm's gradient in one native sweep. Only what measured
 * faster in tools/bench/native-elementwise-ab.ts (A/B in one process, interleaved, medians): same-shape
 * Add/Multiply, Relu, Square and Mean ran as fast on wasm's XNNPACK SIMD loops, and stay there. Each kernel falls
 * back to the one it replaced for what it does not cover (other dtypes, both operands broadcast).
 */
export const WASM_NATIVE_ELEMENTWISE_KERNEL_NAMES: readonly string[] = [Add, Sub, Multiply, Step];

/** The kernel BatchNorm's gradient runs on the wasm backend while native kernels are in use (ours, not tfjs's). */
export const NATIVE_BATCH_NORM_GRAD = 'WrnNativeBatchNormGrad';

const WASM = 'wasm';

/**
 * Whether `shape` broadcasts to `out` as a block the kernel repeats: its size-1 axes all come before the axes it
 * shares with `out` ([C] or [1,1,1,C] against [N,H,W,C]; a scalar; the full shape).
 */
function repeatsAsSuffix(shape: readonly number[], out: readonly number[]): boolean {
  const padded = [...new Array<number>(out.length - shape.length).fill(1), ...shape];
  let k = 0;
  while (k < padded.length && padded[k] === 1) k++;
  for (let j = k; j < out.length; j++) if (padded[j] !== out[j]) return false;
  return true;
}

function makeBinary(native: NativeConvKernels, kernelName: string, op: NativeBinaryOp, original: KernelConfig | undefined): KernelFunc {
  return (args: KernelArgs) => {
    const { a, b } = args.inputs;
    if (a != null && b != null && a.dtype === 'float32' && b.dtype === 'float32') {
      const outShape = backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
      const n = util.sizeFromShape(outShape);
      const [na, nb] = [util.sizeFromShape(a.shape), util.sizeFromShape(b.shape)];
      // Same shapes: wasm's XNNPACK loop is as fast.
      if (n > 0 && na !== nb && (na === n || nb === n) && repeatsAsSuffix(a.shape, outShape) && repeatsAsSuffix(b.shape, outShape)) {
        const backend = args.backend as unknown as WasmHeapBackend;
        const out = backend.makeOutput(outShape, 'float32');
        native.binary(op, heapView(backend, a, kernelName), heapView(backend, b, kernelName), heapView(backend, out, kernelName));
        return out;
      }
    }
    if (original == null) throw new Error(`${kernelName} (native kernel): no wasm kernel for these inputs`);
    return original.kernelFunc(args);
  };
}

function makeUnary(native: NativeConvKernels, kernelName: string, op: NativeUnaryOp, original: KernelConfig | undefined): KernelFunc {
  return (args: KernelArgs) => {
    const { x } = args.inputs;
    if (x != null && x.dtype === 'float32' && util.sizeFromShape(x.shape) > 0) {
      const backend = args.backend as unknown as WasmHeapBackend;
      const out = backend.makeOutput([...x.shape], 'float32');
      const alpha = kernelName === Step ? ((args.attrs as unknown as StepAttrs).alpha ?? 0) : 0;
      native.unary(op, heapView(backend, x, kernelName), heapView(backend, out, kernelName), alpha);
      return out;
    }
    if (original == null) throw new Error(`${kernelName} (native kernel): no wasm kernel for dtype ${x?.dtype}`);
    return original.kernelFunc(args);
  };
}

/** Sum/Mean over one block of neighbouring axes, x viewed as [outer, reduced, kept]; `previous` does the rest. */
function makeReduction(native: NativeConvKernels, kernelName: typeof Sum | typeof Mean, previous: KernelFunc): KernelFunc {
  return (args: KernelArgs) => {
    const { x } = args.inputs;
    if (x == null || x.dtype !== 'float32') return previous(args);
    const { axis, keepDims } = args.attrs as unknown as SumAttrs;
    const shape = x.shape;
    const axes = util.parseAxisParam(axis, shape).sort((p, q) => p - q);
    const first = axes[0];
    const last = axes[axes.length - 1];
    if (first == null || last == null || new Set(axes).size !== last - first + 1) return previous(args);
    const size = (dims: readonly number[]) => dims.reduce((p, q) => p * q, 1);
    const [outer, reduced, kept] = [size(shape.slice(0, first)), size(shape.slice(first, last + 1)), size(shape.slice(last + 1))];
    if (outer * reduced * kept === 0) return previous(args);
    const outShape = keepDims ? shape.map((d, i) => (i >= first && i <= last ? 1 : d)) : shape.filter((_, i) => i < first || i > last);
    const backend = args.backend as unknown as WasmHeapBackend;
    const out = backend.makeOutput(outShape, 'float32');
    native.sum(heapView(backend, x, kernelName), outer, reduced, kept, heapView(backend, out, kernelName), kernelName === Mean ? 1 / reduced : 1);
    return out;
  };
}

/** Kernel functions on @wrn/native for the wasm backend's elementwise kernels, each over the kernel it replaces. */
export const nativeElementwiseKernelMakers: Record<string, (native: NativeConvKernels, original: KernelConfig | undefined) => KernelFunc> = {
  [Add]: (native, original) => makeBinary(native, Add, 'add', original),
  [Sub]: (native, original) => makeBinary(native, Sub, 'sub', original),
  [Multiply]: (native, original) => makeBinary(native, Multiply, 'mul', original),
  [Step]: (native, original) => makeUnary(native, Step, 'step', original),
};

/** Sum or Mean on @wrn/native, over `previous` (the wasm training kernel) for what it does not cover. (Mean measured
 * no faster than the wasm training kernel's average pooling, and is left there.) */
export function makeNativeReduction(native: NativeConvKernels, kernelName: typeof Sum | typeof Mean, previous: KernelFunc): KernelFunc {
  return makeReduction(native, kernelName, previous);
}

function makeBatchNormGrad(native: NativeConvKernels): KernelFunc {
  return (args: KernelArgs) => {
    const { x, dy, mean, variance, scale } = args.inputs as Record<string, TensorInfo>;
    const { varianceEpsilon } = args.attrs as unknown as FusedBatchNormAttrs;
    const backend = args.backend as unknown as WasmHeapBackend;
    const channels = mean!.shape[0]!;
    const outs = [x!.shape, [channels], [channels], [channels], [channels]].map((shape) => backend.makeOutput([...shape], 'float32'));
    const [dx, dmean, dvariance, dscale, doffset] = outs.map((o) => heapView(backend, o, NATIVE_BATCH_NORM_GRAD)) as [
      Float32Array,
      Float32Array,
      Float32Array,
      Float32Array,
      Float32Array,
    ];
    const view = (t: TensorInfo) => heapView(backend, t, NATIVE_BATCH_NORM_GRAD);
    native.batchNormGrad(view(x!), view(dy!), view(mean!), view(variance!), scale ? view(scale) : null, varianceEpsilon, {
      dx,
      dmean,
      dvariance,
      dscale,
      doffset,
    });
    return outs;
  };
}

/**
 * BatchNorm's five gradients from one native sweep over x and dy, where the wasm backend is active, the native
 * kernel is registered ({@link setNativeBatchNormGradient}) and the layout is the usual per-channel one (x [...,C]
 * float32, mean/variance/scale [C]); otherwise undefined, and the caller computes them its own way. The lean
 * BatchNorm gradient (wasm-training-gradients.ts) tries this first.
 */
export function nativeBatchNormGradient(dy: Tensor | Tensor[], saved: Tensor[], attrs: NamedAttrMap): Record<string, () => Tensor> | undefined {
  const [x, mean, variance, scale] = saved;
  const g = dy as Tensor;
  const channels = mean?.rank === 1 ? mean.shape[0]! : -1;
  const fits =
    x != null &&
    mean != null &&
    variance != null &&
    engine().backendName === WASM &&
    getKernel(NATIVE_BATCH_NORM_GRAD, WASM) != null &&
    [x, g, mean, variance, scale].every((t) => t == null || t.dtype === 'float32') &&
    x.shape[x.rank - 1] === channels &&
    util.arraysEqual(g.shape, x.shape) &&
    util.arraysEqual(variance.shape, [channels]) &&
    (scale == null || util.arraysEqual(scale.shape, [channels]));
  if (!fits) return undefined;
  const inputs: Record<string, Tensor> = { x, dy: g, mean, variance };
  if (scale != null) inputs['scale'] = scale;
  const [dx, dmean, dvariance, dscale, doffset] = engine().runKernel(NATIVE_BATCH_NORM_GRAD, inputs, attrs) as unknown as Tensor[];
  return { x: () => dx!, mean: () => dmean!, variance: () => dvariance!, scale: () => dscale!, offset: () => doffset! };
}

/** Registers the native BatchNorm gradient kernel for the wasm backend on `native`, or (undefined) takes it away. */
export function setNativeBatchNormGradient(native: NativeConvKernels | undefined): void {
  if (getKernel(NATIVE_BATCH_NORM_GRAD, WASM) != null) unregisterKernel(NATIVE_BATCH_NORM_GRAD, WASM);
  if (native != null) registerKernel({ kernelName: NATIVE_BATCH_NORM_GRAD, backendName: WASM, kernelFunc: makeBatchNormGrad(native) });
}
