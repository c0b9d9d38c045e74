import { getKernel, registerKernel, unregisterKernel, util } from '@tensorflow/tfjs-core';
import type { KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import type { NativeConvKernels } from '@wrn/native';
import { heapView, requireInput, type KernelArgs, type WasmHeapBackend } from './heap';

/**
 * One torch.optim.SGD step of one parameter as a single native call, where @wrn/training's SgdOptimizer otherwise
 * runs up to eight kernels (weight decay, momentum, Nesterov, the update) and allocates as many full-size tensors.
 * Inputs param, grad and (with momentum, after the first step) buffer; attrs {@link SgdUpdateAttrs}; outputs the
 * new param and (with momentum) the new buffer, which the optimiser assigns to its variables.
 *
 * The outputs are always fresh tensors (param and buffer copied, then updated), never the inputs' data written
 * in place: tfjs-backend-wasm's XNNPACK kernels (_FusedMatMul, and Conv2D/depthwise wherever they run) cache their
 * packed weights by the weight tensor's data id, so a weight changed under the same id is never seen by them
 * (measured: a dense layer kept its initial weights through training, `wrn eval` of the checkpoint then disagreed
 * with the run's own test loss). A new data id per step frees the cache with the old tensor. The copies are of
 * parameters only, small next to activations.
 * The name must equal @wrn/training's SGD_UPDATE_KERNEL (training's tests check it).
 */
export const NATIVE_SGD_UPDATE = 'WrnSgdUpdate';

/** The attributes of {@link NATIVE_SGD_UPDATE}: torch.optim.SGD's, plus whether the buffer starts now (buf = d). */
export interface SgdUpdateAttrs {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  first: boolean;
}

const WASM = 'wasm';

/** A fresh float32 tensor holding a copy of `input` (which the native update then overwrites with the new value). */
function copyOf(backend: WasmHeapBackend, input: TensorInfo, kernel: string): TensorInfo {
  const out = backend.makeOutput([...input.shape], 'float32');
  heapView(backend, out, kernel).set(heapView(backend, input, kernel));
  return out;
}

function makeSgdUpdate(native: NativeConvKernels): KernelFunc {
  return (args: KernelArgs) => {
    const kernel = NATIVE_SGD_UPDATE;
    const param = requireInput(args.inputs, 'param', kernel);
    const grad = requireInput(args.inputs, 'grad', kernel);
    const attrs = args.attrs as unknown as SgdUpdateAttrs;
    const withMomentum = attrs.momentum !== 0;
    const buffer = withMomentum && !attrs.first ? requireInput(args.inputs, 'buffer', kernel) : undefined;
    for (const [name, info] of Object.entries({ param, grad, buffer })) {
      if (info != null && (info.dtype !== 'float32' || !util.arraysEqual(info.shape, param.shape))) {
        throw new Error(`${kernel} (native kernel): ${name} must be float32 [${param.shape.join(',')}], got ${info.dtype} [${info.shape.join(',')}]`);
      }
    }
    const backend = args.backend as unknown as WasmHeapBackend;
    const newParam = copyOf(backend, param, kernel);
    const newBuffer = !withMomentum ? undefined : buffer != null ? copyOf(backend, buffer, kernel) : backend.makeOutput([...param.shape], 'float32');
    // Views after every allocation: makeOutput may grow the heap.
    const view = (t: TensorInfo) => heapView(backend, t, kernel);
    native.sgdUpdate(view(newParam), view(grad), newBuffer != null ? view(newBuffer) : null, attrs);
    return newBuffer != null ? [newParam, newBuffer] : [newParam];
  };
}

/** Registers {@link NATIVE_SGD_UPDATE} for the wasm backend on `native`, or (undefined) takes it away. */
export function setNativeSgdUpdate(native: NativeConvKernels | undefined): void {
  if (getKernel(NATIVE_SGD_UPDATE, WASM) != null) unregisterKernel(NATIVE_SGD_UPDATE, WASM);
  if (native != null) registerKernel({ kernelName: NATIVE_SGD_UPDATE, backendName: WASM, kernelFunc: makeSgdUpdate(native) });
}
