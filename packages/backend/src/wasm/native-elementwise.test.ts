import * as tf from '@tensorflow/tfjs-core';
// tfjs-layers registers the gradient functions in Node (tfjs-core's CommonJS build does not).
import '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { loadNativeConvKernels } from '@wrn/native';
import { beforeAll, describe, expect, it } from 'vitest';
import { maxRelativeError, randomArray, runOnWasmAndCpu } from './cpu-reference.test-support';
import { NATIVE_BATCH_NORM_GRAD, WASM_NATIVE_ELEMENTWISE_KERNEL_NAMES } from './native-elementwise';
import { registerWasmTrainingGradients } from './training-gradients';
import { registerWasmTrainingKernels } from './training-kernels';

// The oracle is the cpu backend running the same ops (tfjs-core's kernels and gradients); @wrn/native's own tests
// check the kernels against PyTorch.
const native = loadNativeConvKernels();
if (!native.ok) {
  if (process.env['CI']) throw new Error(`wasm-native-elementwise: @wrn/native does not load: ${native.reason}`);
  console.warn(`skipping the native elementwise kernels on wasm: @wrn/native does not load (${native.reason})`);
}

const t = (shape: number[], seed: string) => tf.tensor(randomArray(shape.reduce((a, b) => a * b, 1), seed), shape);

/** Names of the kernels `f` runs (tf.profile), forward and backward. */
async function kernelsRun(f: () => tf.TensorContainer): Promise<string[]> {
  const info = await tf.profile(() => {
    const out = f();
    return out as tf.Tensor;
  });
  return info.kernelNames;
}

describe.runIf(native.ok)('elementwise kernels, reductions and the BatchNorm gradient on @wrn/native (wasm), against the cpu backend', () => {
  beforeAll(async () => {
    if (!native.ok) return;
    registerWasmTrainingKernels({ native: native.kernels });
    registerWasmTrainingGradients();
    await tf.setBackend('wasm');
  });

  const BINARY: [string, number[], number[]][] = [
    ['add', [3, 5, 7, 13], [3, 5, 7, 13]],
    ['sub', [3, 5, 7, 13], [13]],
    ['sub', [1, 1, 1, 13], [3, 5, 7, 13]],
    ['mul', [3, 5, 7, 13], []],
    ['sub', [], [3, 5, 7, 13]],
    ['mul', [4, 21, 17, 37], [1, 17, 37]],
    ['add', [4, 21, 17, 37], [4, 21, 17, 37]],
    // Both operands broadcast: wasm's own kernel.
    ['mul', [2, 1, 3], [1, 4, 1]],
  ];
  for (const [op, aShape, bShape] of BINARY) {
    it(`${op} [${aShape}] [${bShape}]`, async () => {
      const fn = { add: tf.add, sub: tf.sub, mul: tf.mul }[op]!;
      const { wasm, cpu } = await runOnWasmAndCpu(() => fn(t(aShape, `a${op}${aShape}`), t(bShape, `b${op}${bShape}`)));
      expect(wasm.shape).toEqual(cpu.shape);
      expect(maxRelativeError(wasm.values, cpu.values)).toBeLessThan(1e-6);
      expect(wasm.leaked).toBe(0);
    });
  }

  it('relu, step (alpha) and square of ragged tensors, and int32 inputs on wasm\'s own kernels', async () => {
    const cases: (() => tf.Tensor)[] = [
      () => tf.relu(t([3, 5, 7, 13], 'r')),
      () => tf.step(t([4, 21, 17, 37], 's'), 0.3),
      () => tf.square(t([4, 21, 17, 37], 'q')),
      () => tf.add(tf.tensor([1, 2, 3], [3], 'int32'), tf.tensor([4], [1], 'int32')),
    ];
    for (const op of cases) {
      const { wasm, cpu } = await runOnWasmAndCpu(op);
      expect(wasm.shape).toEqual(cpu.shape);
      expect(maxRelativeError(wasm.values, cpu.values)).toBeLessThan(1e-6);
      expect(wasm.leaked).toBe(0);
    }
  });

  it('sum and mean over leading, middle and trailing blocks of axes, keepDims or not', async () => {
    const cases: (() => tf.Tensor)[] = [
      () => tf.sum(t([4, 9, 11, 13], 's1'), [0, 1, 2]),
      () => tf.mean(t([4, 9, 11, 13], 's2'), [0, 1, 2], true),
      () => tf.sum(t([4, 9, 11, 13], 's3'), [1, 2]),
      () => tf.mean(t([4, 9, 11, 13], 's4'), -1),
      () => tf.sum(t([4, 9, 11, 13], 's5'), [0, 2]),
      () => tf.sum(tf.tensor([1, 2, 3, 4], [2, 2], 'int32'), 0),
    ];
    for (const op of cases) {
      const { wasm, cpu } = await runOnWasmAndCpu(op);
      expect(wasm.shape).toEqual(cpu.shape);
      expect(maxRelativeError(wasm.values, cpu.values)).toBeLessThan(2e-6);
      expect(wasm.leaked).toBe(0);
    }
  });

  it("a training-mode BatchNorm + ReLU's gradients (x, gamma, beta) equal the cpu backend's, on the native gradient kernel", async () => {
    // (Without a scale tfjs-core cannot differentiate batchNorm at all: it saves the missing input. @wrn/native's
    // own tests cover that case of the kernel.)
    for (const shape of [
      [3, 5, 7, 13],
      [8, 9, 9, 19],
    ] as const) {
      const channels = shape[3];
      const loss = () => {
        const x = t([...shape], `x${shape}`);
        const gamma = tf.add(t([channels], `g${shape}`), 1.5);
        const beta = t([channels], `b${shape}`);
        const g = t([...shape], `dy${shape}`);
        const f = (xv: tf.Tensor, gv: tf.Tensor, bv: tf.Tensor) => {
          const { mean, variance } = tf.moments(xv, [0, 1, 2]);
          const y = tf.batchNorm(xv, mean, variance, bv, gv, 1e-3);
          return tf.sum(tf.mul(tf.relu(y), g));
        };
        const [dx, dgamma, dbeta] = tf.grads(f)([x, gamma, beta]);
        return tf.concat([tf.reshape(dx!, [-1]), dgamma!, dbeta!]);
      };
      const { wasm, cpu } = await runOnWasmAndCpu(loss);
      expect(maxRelativeError(wasm.values, cpu.values), `[${shape}]`).toBeLessThan(2e-5);
      expect(wasm.leaked).toBe(0);
      await tf.setBackend('wasm');
      expect(await kernelsRun(loss)).toContain(NATIVE_BATCH_NORM_GRAD);
    }
  });

  it('nativeElementwise: false puts the wasm kernels back and BatchNorm\'s gradient on tf ops; true installs them again', async () => {
    if (!native.ok) return;
    const ours = WASM_NATIVE_ELEMENTWISE_KERNEL_NAMES.map((name) => tf.getKernel(name, 'wasm')?.kernelFunc);
    registerWasmTrainingKernels({ native: native.kernels, nativeElementwise: false });
    WASM_NATIVE_ELEMENTWISE_KERNEL_NAMES.forEach((name, i) => expect(tf.getKernel(name, 'wasm')?.kernelFunc, name).not.toBe(ours[i]));
    expect(tf.getKernel(NATIVE_BATCH_NORM_GRAD, 'wasm')).toBeUndefined();
    const loss = () =>
      tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.batchNorm(x, tf.mean(x, [0, 1, 2]), tf.moments(x, [0, 1, 2]).variance, tf.zeros([5]), tf.ones([5])), x)))(t([2, 3, 3, 5], 'off'));
    expect(await kernelsRun(loss)).not.toContain(NATIVE_BATCH_NORM_GRAD);
    registerWasmTrainingKernels({ native: native.kernels });
    expect(tf.getKernel(NATIVE_BATCH_NORM_GRAD, 'wasm')).toBeDefined();
    expect(await kernelsRun(loss)).toContain(NATIVE_BATCH_NORM_GRAD);
  });
});
