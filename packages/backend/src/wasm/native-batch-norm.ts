import { BATCH_NORM_TRAINING_KERNEL, type BatchNormTrainingAttrs } from '@wrn/blocks';
import { engine, getGradient, getKernel, registerGradient, registerKernel, unregisterKernel, util } from '@tensorflow/tfjs-core';
import type { KernelFunc, NamedAttrMap, Tensor, TensorInfo } from '@tensorflow/tfjs-core';
import type { NativeConvKernels } from '@wrn/native';
import { heapView, requireInput, type KernelArgs, type WasmHeapBackend } from './heap';

/**
 * BatchNorm in training mode as two native calls on the wasm heap instead of tf.moments + tf.batchNorm and their
 * gradients (about 30 small kernels per layer and step, and x - mean and its square held from the forward pass to
 * the backward one): {@link BATCH_NORM_TRAINING_KERNEL} (x, scale, offset -> y, mean, biased variance) and its
 * gradient {@link NATIVE_BATCH_NORM_TRAINING_GRAD} (dx, dscale, doffset in PyTorch's formula). What the backward
 * pass keeps is x (the layer's input, alive anyway) and two [C] vectors. @wrn/blocks' TorchBatchNormalization uses
 * the kernel where it is registered for the active backend.
 */
export const NATIVE_BATCH_NORM_TRAINING_GRAD = 'WrnBatchNormTrainingGrad';

const WASM = 'wasm';

function channelsOf(x: TensorInfo, kernel: string): number {
  const channels = x.shape[x.shape.length - 1];
  if (x.dtype !== 'float32' || channels == null || channels < 1 || util.sizeFromShape(x.shape) === 0) {
    throw new Error(`${kernel} (native kernel): x must be a non-empty float32 tensor [..., C], got ${x.dtype} [${x.shape.join(',')}]`);
  }
  return channels;
}

function checkPerChannel(info: TensorInfo, name: string, channels: number, kernel: string): void {
  if (info.dtype !== 'float32' || info.shape.length !== 1 || info.shape[0] !== channels) {
    throw new Error(`${kernel} (native kernel): ${name} must be float32 [${channels}], got ${info.dtype} [${info.shape.join(',')}]`);
  }
}

function makeForward(native: NativeConvKernels): KernelFunc {
  return (args: KernelArgs) => {
    const kernel = BATCH_NORM_TRAINING_KERNEL;
    const x = requireInput(args.inputs, 'x', kernel);
    const scale = requireInput(args.inputs, 'scale', kernel);
    const offset = requireInput(args.inputs, 'offset', kernel);
    const channels = channelsOf(x, kernel);
    checkPerChannel(scale, 'scale', channels, kernel);
    checkPerChannel(offset, 'offset', channels, kernel);
    const { varianceEpsilon } = args.attrs as unknown as BatchNormTrainingAttrs;
    const backend = args.backend as unknown as WasmHeapBackend;
    const outs = [backend.makeOutput([...x.shape], 'float32'), backend.makeOutput([channels], 'float32'), backend.makeOutput([channels], 'float32')];
    const view = (t: TensorInfo) => heapView(backend, t, kernel);
    const [y, mean, variance] = outs.map(view) as [Float32Array, Float32Array, Float32Array];
    native.batchNormTraining(view(x), view(scale), view(offset), varianceEpsilon, { y, mean, variance });
    return outs;
  };
}

function makeBackward(native: NativeConvKernels): KernelFunc {
  return (args: KernelArgs) => {
    const kernel = NATIVE_BATCH_NORM_TRAINING_GRAD;
    const [x, dy, scale, mean, variance] = ['x', 'dy', 'scale', 'mean', 'variance'].map((name) => requireInput(args.inputs, name, kernel)) as [
      TensorInfo,
      TensorInfo,
      TensorInfo,
      TensorInfo,
      TensorInfo,
    ];
    const { dmean, dvariance } = args.inputs;
    const channels = channelsOf(x, kernel);
    if (!util.arraysEqual(dy.shape, x.shape)) throw new Error(`${kernel} (native kernel): dy [${dy.shape.join(',')}] must have x's shape [${x.shape.join(',')}]`);
    for (const [name, info] of Object.entries({ scale, mean, variance, dmean, dvariance })) if (info != null) checkPerChannel(info, name, channels, kernel);
    const { varianceEpsilon } = args.attrs as unknown as BatchNormTrainingAttrs;
    const backend = args.backend as unknown as WasmHeapBackend;
    const outs = [backend.makeOutput([...x.shape], 'float32'), backend.makeOutput([channels], 'float32'), backend.makeOutput([channels], 'float32')];
    const view = (t: TensorInfo) => heapView(backend, t, kernel);
    const [dx, dscale, doffset] = outs.map(view) as [Float32Array, Float32Array, Float32Array];
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
    return outs;
  };
}

// y's gradient and those of the mean and variance outputs (zeros from the engine where, as for the moving
// averages, they do not reach the loss: two [C] vectors, folded into the same pass).
function batchNormTrainingGradient(dys: Tensor | Tensor[], saved: Tensor[], attrs: NamedAttrMap): Record<string, () => Tensor> {
  const [dy, dmean, dvariance] = dys as Tensor[];
  const [x, scale, mean, variance] = saved as [Tensor, Tensor, Tensor, Tensor];
  const inputs: Record<string, Tensor> = { x, dy: dy!, scale, mean, variance, dmean: dmean!, dvariance: dvariance! };
  const [dx, dscale, doffset] = engine().runKernel(NATIVE_BATCH_NORM_TRAINING_GRAD, inputs, attrs) as unknown as Tensor[];
  return { x: () => dx!, scale: () => dscale!, offset: () => doffset! };
}

/**
 * Registers the native BatchNorm training kernels for the wasm backend on `native` (and their gradient, once), or
 * (undefined) takes them away, after which the layers go back to tf.moments + tf.batchNorm.
 */
export function setNativeBatchNormTraining(native: NativeConvKernels | undefined): void {
  for (const name of [BATCH_NORM_TRAINING_KERNEL, NATIVE_BATCH_NORM_TRAINING_GRAD]) if (getKernel(name, WASM) != null) unregisterKernel(name, WASM);
  if (native == null) return;
  registerKernel({ kernelName: BATCH_NORM_TRAINING_KERNEL, backendName: WASM, kernelFunc: makeForward(native) });
  registerKernel({ kernelName: NATIVE_BATCH_NORM_TRAINING_GRAD, backendName: WASM, kernelFunc: makeBackward(native) });
  registerBatchNormTrainingGradient();
}

/** Registers the gradient of {@link BATCH_NORM_TRAINING_KERNEL} ({@link NATIVE_BATCH_NORM_TRAINING_GRAD} on the active backend), once. */
export function registerBatchNormTrainingGradient(): void {
  if (getGradient(BATCH_NORM_TRAINING_KERNEL) == null) {
    registerGradient({
      kernelName: BATCH_NORM_TRAINING_KERNEL,
      inputsToSave: ['x', 'scale'],
      outputsToSave: [false, true, true],
      gradFunc: batchNormTrainingGradient,
    });
  }
}
