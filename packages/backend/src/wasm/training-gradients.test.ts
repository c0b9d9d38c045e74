import * as tf from '@tensorflow/tfjs-core';
// tfjs-layers registers the gradient functions in Node (tfjs-core's CommonJS build does not): it must load
// before registerWasmTrainingGradients, which replaces two of them.
import '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { maxRelativeError, onBackend, randomArray } from './cpu-reference.test-support';
import { registerWasmTrainingGradients, WASM_TRAINING_GRADIENT_NAMES, wasmTrainingGradientsRegistered } from './training-gradients';
import { registerWasmTrainingKernels } from './training-kernels';

// (Without a scale, tfjs-core cannot differentiate batchNorm on any backend: it saves the missing input.)
const BN_SHAPES: number[][] = [
  [2, 5, 5, 3],
  [4, 3, 3, 16],
  [5, 2, 2, 32],
  [6, 4],
];

/** Loss weights that make every element's gradient different. */
function weightsFor(shape: number[], seed: string): tf.Tensor {
  return tf.tensor(
    randomArray(
      shape.reduce((a, b) => a * b, 1),
      `${seed}w`,
    ),
    shape,
  );
}

beforeAll(async () => {
  registerWasmTrainingKernels();
  registerWasmTrainingGradients();
  await tf.setBackend('wasm');
});

describe('registerWasmTrainingGradients', () => {
  it('replaces the FusedBatchNorm and Mean gradients once and is idempotent', () => {
    expect(WASM_TRAINING_GRADIENT_NAMES).toEqual(['FusedBatchNorm', 'Mean']);
    const before = WASM_TRAINING_GRADIENT_NAMES.map((name) => tf.getGradient(name)?.gradFunc);
    registerWasmTrainingGradients();
    expect(WASM_TRAINING_GRADIENT_NAMES.map((name) => tf.getGradient(name)?.gradFunc)).toEqual(before);
    expect(wasmTrainingGradientsRegistered()).toBe(true);
    expect(tf.getGradient('FusedBatchNorm')?.inputsToSave).toEqual(['x', 'mean', 'variance', 'scale']);
  });

  it.each(BN_SHAPES.map((shape) => ({ shape })))('batchNorm gradients on wasm of $shape equal the elementary-op formula on cpu', async (c) => {
    const seed = JSON.stringify(c);
    const channels = c.shape[c.shape.length - 1]!;
    const size = c.shape.reduce((a, b) => a * b, 1);
    const inputs = () => [
      tf.tensor(
        randomArray(size, `${seed}x`).map((v) => 2 * v + 0.5),
        c.shape,
      ),
      tf.tensor1d(randomArray(channels, `${seed}m`)),
      tf.tensor1d(randomArray(channels, `${seed}v`).map((v) => v * v + 0.2)),
      tf.tensor1d(randomArray(channels, `${seed}b`)),
      tf.tensor1d(randomArray(channels, `${seed}g`)),
    ];
    const eps = 1e-3;
    const gradients = (useKernel: boolean) => {
      const before = tf.memory().numTensors;
      const grads = tf.tidy(() => {
        const w = weightsFor(c.shape, seed);
        const loss = (x: tf.Tensor, mean: tf.Tensor, variance: tf.Tensor, offset: tf.Tensor, scale: tf.Tensor) => {
          const y = useKernel
            ? tf.batchNorm(x, mean, variance, offset, scale, eps)
            : tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))), scale), offset);
          return tf.sum(tf.mul(y, w));
        };
        return tf.grads(loss)(inputs()).map((g) => g.dataSync() as Float32Array);
      });
      return { grads, leaked: tf.memory().numTensors - before };
    };
    const wasm = await onBackend('wasm', () => gradients(true));
    const reference = await onBackend('cpu', () => gradients(false));
    expect(wasm.grads).toHaveLength(5);
    wasm.grads.forEach((g, i) => expect(maxRelativeError(g, reference.grads[i]!), `input ${i}`).toBeLessThan(1e-4));
    expect(wasm.leaked).toBe(0);
  });

  it.each([[2, 6, 6, 5], [8, 3]])('BatchNorm in training mode (moments + batchNorm) of %j: wasm equals cpu', async (...shape) => {
    const channels = shape[shape.length - 1]!;
    const size = shape.reduce((a, b) => a * b, 1);
    const seed = `train${shape.join()}`;
    const gradients = () =>
      tf.tidy(() => {
        const x = tf.tensor(
          randomArray(size, `${seed}x`).map((v) => 3 * v + 1),
          shape,
        );
        const gamma = tf.tensor1d(randomArray(channels, `${seed}g`));
        const beta = tf.tensor1d(randomArray(channels, `${seed}b`));
        const w = weightsFor(shape, seed);
        const loss = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
          const { mean, variance } = tf.moments(a, shape.slice(0, -1).map((_, i) => i));
          return tf.sum(tf.mul(tf.relu(tf.batchNorm(a, mean, variance, b, g, 1e-3)), w));
        };
        return tf.grads(loss)([x, gamma, beta]).map((g) => g.dataSync() as Float32Array);
      });
    const wasm = await onBackend('wasm', gradients);
    const cpu = await onBackend('cpu', gradients);
    wasm.forEach((g, i) => expect(maxRelativeError(g, cpu[i]!), `input ${i}`).toBeLessThan(1e-4));
  });

  it.each([
    { axis: [0, 1, 2], keepDims: false },
    { axis: [1, 2], keepDims: true },
    { axis: [0], keepDims: false },
    { axis: [3], keepDims: false },
    { axis: [-1, 0], keepDims: true },
  ])('Mean gradient over $axis (keepDims $keepDims): wasm equals cpu, no tensors left', async ({ axis, keepDims }) => {
    const shape = [3, 4, 5, 6];
    const seed = `mean${axis.join()}${keepDims}`;
    const gradients = () => {
      const before = tf.memory().numTensors;
      const g = tf.tidy(() => {
        const x = tf.tensor(randomArray(360, `${seed}x`), shape);
        const outShape = tf.mean(x, axis, keepDims).shape;
        const w = weightsFor(outShape, seed);
        return tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.mean(a, axis, keepDims), w)))(x).dataSync() as Float32Array;
      });
      return { g, leaked: tf.memory().numTensors - before };
    };
    const wasm = await onBackend('wasm', gradients);
    const cpu = await onBackend('cpu', gradients);
    expect(maxRelativeError(wasm.g, cpu.g)).toBeLessThan(1e-6);
    expect(wasm.leaked).toBe(0);
  });
});
