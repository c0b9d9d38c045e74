import { cast, engine, getBackend, getGradient, getKernel, mul, registerGradient, registerKernel, Relu, step, unregisterKernel, util } from '@tensorflow/tfjs-core';
import type { GradConfig, KernelFunc, Tensor, TensorInfo } from '@tensorflow/tfjs-core';
import type { NativeConvKernels } from '@wrn/native';
import { heapView, requireInput, type KernelArgs, type WasmHeapBackend } from './heap';

/** The kernel ReLU's gradient runs on the wasm backend while native kernels are in use: dx = dy * step(y) in one pass. */
export const NATIVE_RELU_GRAD = 'WrnNativeReluGrad';

const WASM = 'wasm';

function makeReluGrad(native: NativeConvKernels): KernelFunc {
  return (args: KernelArgs) => {
    const y = requireInput(args.inputs, 'y', NATIVE_RELU_GRAD);
    const dy = requireInput(args.inputs, 'dy', NATIVE_RELU_GRAD);
    if (y.dtype !== 'float32' || dy.dtype !== 'float32' || !util.arraysEqual(y.shape, dy.shape)) {
      throw new Error(`${NATIVE_RELU_GRAD} (native kernel): y and dy must be float32 of one shape, got ${y.dtype} [${y.shape.join(',')}] and ${dy.dtype} [${dy.shape.join(',')}]`);
    }
    const backend = args.backend as unknown as WasmHeapBackend;
    const dx = backend.makeOutput([...y.shape], 'float32');
    const view = (t: TensorInfo) => heapView(backend, t, NATIVE_RELU_GRAD);
    native.reluGrad(view(y), view(dy), view(dx));
    return dx;
  };
}

/**
 * ReLU's gradient from its OUTPUT: step(relu(x)) is step(x) (NaN stays NaN, -0 and 0 give 0), so saving the output
 * instead of the input gives the same numbers, and the input, which in our blocks is a BatchNorm's output, is
 * freed as soon as the ReLU has run, instead of being held until the backward pass: one activation less per
 * BN-ReLU (the output is held anyway, by the convolution that reads it). On a backend with the native kernel
 * registered (wasm, wrn-native), dx is one pass (tfjs-core's is Step, Cast and Multiply).
 */
const reluFromOutput: GradConfig = {
  kernelName: Relu,
  outputsToSave: [true],
  gradFunc: (dy: Tensor | Tensor[], saved: Tensor[]) => {
    const [y] = saved as [Tensor];
    const g = dy as Tensor;
    if (getKernel(NATIVE_RELU_GRAD, getBackend()) != null && y.dtype === 'float32' && g.dtype === 'float32') {
      return { x: () => engine().runKernel(NATIVE_RELU_GRAD, { y, dy: g }) as Tensor };
    }
    return { x: () => mul(g, cast(step(y), 'float32')) };
  },
};

/**
 * Makes ReLU's gradient save the output ({@link reluFromOutput}; every backend gets the same numbers), once
 * tfjs-core's is registered (tfjs-layers loaded). Idempotent.
 */
export function registerReluGradientFromOutput(): void {
  const current = getGradient(Relu);
  if (current == null || current.gradFunc === reluFromOutput.gradFunc) return;
  registerGradient(reluFromOutput);
}

/** Registers the native ReLU gradient kernel for the wasm backend on `native`, or (undefined) takes it away. */
export function setNativeReluGrad(native: NativeConvKernels | undefined): void {
  if (getKernel(NATIVE_RELU_GRAD, WASM) != null) unregisterKernel(NATIVE_RELU_GRAD, WASM);
  if (native != null) registerKernel({ kernelName: NATIVE_RELU_GRAD, backendName: WASM, kernelFunc: makeReluGrad(native) });
}
