import * as tf from '@tensorflow/tfjs-core';
// tfjs-layers registers the gradient functions in Node (tfjs-core's CommonJS build does not).
import '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { fastestGroupedConvMethod } from '@wrn/blocks';
import { loadNativeConvKernels } from '@wrn/native';
import { beforeAll, describe, expect, it } from 'vitest';
import { maxRelativeError, onBackend, randomArray, type ConvCase } from './cpu-reference.test-support';
import { WASM_NATIVE_CONV_KERNEL_NAMES } from './native-conv';
import { registerWasmTrainingKernels, wasmNativeConvKernels, wasmTrainingKernelsRegistered } from './training-kernels';

const native = loadNativeConvKernels();


const CASES: ConvCase[] = [
  { n: 2, h: 8, w: 8, ci: 3, co: 4, k: 3, s: 1, pad: 'same' },
  { n: 2, h: 8, w: 8, ci: 3, co: 4, k: 3, s: 2, pad: 'same' },
  { n: 3, h: 7, w: 9, ci: 2, co: 5, k: 3, s: 2, pad: 'valid' },
  { n: 2, h: 8, w: 8, ci: 3, co: 4, k: 1, s: 2, pad: 'same' },
  { n: 2, h: 7, w: 6, ci: 3, co: 4, k: 1, s: 1, pad: 'valid' },
  { n: 2, h: 9, w: 9, ci: 40, co: 36, k: 3, s: 1, pad: 'same' },
  // Torch's symmetric padding (@wrn's strided 3x3 convs and the 7x7/2 stem).
  { n: 2, h: 8, w: 8, ci: 24, co: 16, k: 3, s: 2, pad: 1 },
  { n: 2, h: 16, w: 16, ci: 3, co: 8, k: 7, s: 2, pad: 3 },
  { n: 4, h: 8, w: 8, ci: 64, co: 128, k: 1, s: 2, pad: 'same' },
  // Dilation is not native: the kernel hands it to XNNPACK.
  { n: 2, h: 9, w: 9, ci: 3, co: 4, k: 3, s: 1, pad: 'same', dilation: 2 },
];

/** conv2d's output, fused conv2d's output (bias + relu), and the gradients of sum(conv2d(x, f) * g). */
function convResults(c: ConvCase, seed: string) {
  const before = tf.memory().numTensors;
  const result = tf.tidy(() => {
    const x = tf.tensor4d(randomArray(c.n * c.h * c.w * c.ci, `${seed}x`), [c.n, c.h, c.w, c.ci]);
    const f = tf.tensor4d(randomArray(c.k * c.k * c.ci * c.co, `${seed}f`), [c.k, c.k, c.ci, c.co]);
    const bias = tf.tensor1d(randomArray(c.co, `${seed}b`));
    const y = tf.conv2d(x, f, c.s, c.pad, 'NHWC', c.dilation ?? 1);
    const fused = tf.fused.conv2d({ x, filter: f, strides: c.s, pad: c.pad, dilations: c.dilation ?? 1, bias, activation: 'relu' });
    if (c.dilation) return { y: y.dataSync(), fused: fused.dataSync(), dx: new Float32Array(), df: new Float32Array() };
    // (TF.js has no gradient for dilated convs.)
    const g = tf.tensor(randomArray(y.size, `${seed}g`), y.shape);
    const grads = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.s, c.pad), g)));
    const [dx, df] = grads([x, f]);
    return { y: y.dataSync(), fused: fused.dataSync(), dx: dx!.dataSync(), df: df!.dataSync() };
  });
  return { ...result, leaked: tf.memory().numTensors - before };
}

describe.runIf(native.ok)('wasm convolutions on @wrn/native', () => {
  beforeAll(async () => {
    if (!native.ok) return;
    registerWasmTrainingKernels({ native: native.kernels });
    await tf.setBackend('wasm');
  });

  it('replaces Conv2D, FusedConv2D and both gradients, keeps them when called again without the option, and puts wasm\'s own back for native: null', () => {
    if (!native.ok) return;
    expect(WASM_NATIVE_CONV_KERNEL_NAMES).toEqual(['Conv2D', 'FusedConv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter']);
    const nativeFuncs = WASM_NATIVE_CONV_KERNEL_NAMES.map((name) => tf.getKernel(name, 'wasm')?.kernelFunc);
    expect(wasmNativeConvKernels()).toBe(native.kernels);
    registerWasmTrainingKernels({ native: native.kernels });
    expect(WASM_NATIVE_CONV_KERNEL_NAMES.map((name) => tf.getKernel(name, 'wasm')?.kernelFunc)).toEqual(nativeFuncs);

    expect(fastestGroupedConvMethod('wasm', false)).toBe('native');
    // Without the option the native kernels stay (a second caller does not undo selectBackend's choice).
    registerWasmTrainingKernels();
    expect(wasmNativeConvKernels()).toBe(native.kernels);
    expect(WASM_NATIVE_CONV_KERNEL_NAMES.map((name) => tf.getKernel(name, 'wasm')?.kernelFunc)).toEqual(nativeFuncs);
    registerWasmTrainingKernels({ native: null });
    expect(wasmNativeConvKernels()).toBeUndefined();
    expect(fastestGroupedConvMethod('wasm', false)).toBe('depthwise');
    expect(wasmTrainingKernelsRegistered()).toBe(true);
    const without = WASM_NATIVE_CONV_KERNEL_NAMES.map((name) => tf.getKernel(name, 'wasm')?.kernelFunc);
    without.forEach((fn, i) => expect(fn, WASM_NATIVE_CONV_KERNEL_NAMES[i]).not.toBe(nativeFuncs[i]));

    registerWasmTrainingKernels({ native: native.kernels });
    expect(wasmNativeConvKernels()).toBe(native.kernels);
  });

  describe.each(CASES)('equal the cpu backend: %j', (c) => {
    it('forward, fused bias + relu and both gradients to 1e-4 relative, with no tensor left behind', async () => {
      const seed = JSON.stringify(c);
      const wasm = await onBackend('wasm', () => convResults(c, seed));
      const cpu = await onBackend('cpu', () => convResults(c, seed));
      expect(maxRelativeError(wasm.y, cpu.y)).toBeLessThan(1e-4);
      expect(maxRelativeError(wasm.fused, cpu.fused)).toBeLessThan(1e-4);
      expect(maxRelativeError(wasm.dx, cpu.dx)).toBeLessThan(1e-4);
      expect(maxRelativeError(wasm.df, cpu.df)).toBeLessThan(1e-4);
      expect(wasm.leaked).toBe(0);
    });
  });
});

describe('the native addon', () => {
  it('is built in this workspace (npm ci compiles it; CI relies on it)', () => {
    expect(native.ok ? 'loaded' : native.reason).toBe('loaded');
  });
});
