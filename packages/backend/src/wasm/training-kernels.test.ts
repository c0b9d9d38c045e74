import * as tf from '@tensorflow/tfjs-core';
// tfjs-layers registers the gradient functions in Node (tfjs-core's CommonJS build does not).
import '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { groupedConv2d } from '@wrn/blocks';
import { beforeAll, describe, expect, it } from 'vitest';
import { maxRelativeError, onBackend, randomArray, runOnWasmAndCpu, type ConvCase } from './cpu-reference.test-support';
import { collapseTranspose } from './kernels/transpose';
import { registerWasmTrainingKernels, WASM_TRAINING_KERNEL_NAMES, wasmTrainingKernelsRegistered } from './training-kernels';


const CASES: ConvCase[] = [
  { n: 2, h: 8, w: 8, ci: 3, co: 4, k: 3, s: 1, pad: 'same' },
  { n: 2, h: 8, w: 8, ci: 3, co: 4, k: 3, s: 2, pad: 'same' },
  { n: 3, h: 7, w: 9, ci: 2, co: 5, k: 3, s: 2, pad: 'same' },
  { n: 3, h: 7, w: 9, ci: 2, co: 5, k: 3, s: 2, pad: 'valid' },
  { n: 2, h: 8, w: 8, ci: 3, co: 4, k: 3, s: 2, pad: 'valid' },
  { n: 2, h: 8, w: 8, ci: 3, co: 4, k: 1, s: 2, pad: 'same' },
  { n: 2, h: 7, w: 7, ci: 3, co: 4, k: 1, s: 2, pad: 'same' },
  { n: 2, h: 7, w: 6, ci: 3, co: 4, k: 1, s: 1, pad: 'valid' },
  { n: 1, h: 5, w: 5, ci: 4, co: 3, k: 3, s: 1, pad: 'valid' },
  { n: 2, h: 9, w: 9, ci: 5, co: 2, k: 3, s: 1, pad: 'same' },
  // 1x1 filter gradients are a matMul, its rows taken from x or from dy depending on the channel counts.
  { n: 2, h: 4, w: 5, ci: 64, co: 128, k: 1, s: 1, pad: 'same' },
  { n: 2, h: 6, w: 5, ci: 64, co: 96, k: 1, s: 2, pad: 'valid' },
  { n: 3, h: 5, w: 5, ci: 96, co: 8, k: 1, s: 2, pad: 'same' },
  { n: 2, h: 6, w: 7, ci: 4, co: 70, k: 1, s: 3, pad: 'valid' },
  // Torch's symmetric padding (@wrn's strided 3x3 convs and the 7x7/2 stem), on even and odd sizes.
  { n: 2, h: 8, w: 8, ci: 3, co: 4, k: 3, s: 2, pad: 1 },
  { n: 3, h: 7, w: 9, ci: 2, co: 5, k: 3, s: 2, pad: 1 },
  { n: 2, h: 12, w: 12, ci: 3, co: 4, k: 7, s: 2, pad: 3 },
];

/** Gradients of sum(conv2d(x, f) * g) with respect to x and f, through the ops the layers use. */
function convGradients(c: ConvCase, seed: string): { dx: Float32Array; df: Float32Array; numTensorsLeaked: number } {
  const before = tf.memory().numTensors;
  const result = tf.tidy(() => {
    const x = tf.tensor4d(randomArray(c.n * c.h * c.w * c.ci, `${seed}x`), [c.n, c.h, c.w, c.ci]);
    const f = tf.tensor4d(randomArray(c.k * c.k * c.ci * c.co, `${seed}f`), [c.k, c.k, c.ci, c.co]);
    const outShape = tf.conv2d(x, f, c.s, c.pad).shape;
    const g = tf.tensor(randomArray(outShape.reduce((a, b) => a * b, 1), `${seed}g`), outShape);
    const grads = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.s, c.pad), g)));
    const [dx, df] = grads([x, f]);
    return { dx: dx!.dataSync() as Float32Array, df: df!.dataSync() as Float32Array };
  });
  return { ...result, numTensorsLeaked: tf.memory().numTensors - before };
}

beforeAll(async () => {
  registerWasmTrainingKernels();
  await tf.setBackend('wasm');
});

describe('registerWasmTrainingKernels', () => {
  it('registers each kernel once for wasm and is idempotent', () => {
    expect(WASM_TRAINING_KERNEL_NAMES).toEqual([
      'Conv2DBackpropFilter',
      'Conv2DBackpropInput',
      'Tile',
      'Sum',
      'Mean',
      'Transpose',
      'Identity',
      'Cast',
      'FusedBatchNorm',
      'Slice',
      'SplitV',
      'Concat',
      'MaxPoolGrad',
    ]);
    const before = WASM_TRAINING_KERNEL_NAMES.map((name) => tf.getKernel(name, 'wasm')?.kernelFunc);
    registerWasmTrainingKernels();
    registerWasmTrainingKernels();
    const after = WASM_TRAINING_KERNEL_NAMES.map((name) => tf.getKernel(name, 'wasm')?.kernelFunc);
    expect(after).toEqual(before);
    expect(wasmTrainingKernelsRegistered()).toBe(true);
    expect(tf.getKernel('Conv2DBackpropFilter', 'cpu')?.kernelFunc).not.toBe(before[0]);
  });

  describe.each(CASES)('conv2d gradients on wasm equal the cpu backend: %j', (c) => {
    it('to 1e-4 relative, with no tensor left behind', async () => {
      const seed = JSON.stringify(c);
      const wasm = await onBackend('wasm', () => convGradients(c, seed));
      const cpu = await onBackend('cpu', () => convGradients(c, seed));
      expect(maxRelativeError(wasm.df, cpu.df)).toBeLessThan(1e-4);
      expect(maxRelativeError(wasm.dx, cpu.dx)).toBeLessThan(1e-4);
      expect(wasm.numTensorsLeaked).toBe(0);
    });
  });

  it.each([
    { shape: [1, 1, 1, 4], reps: [2, 3, 5, 1] },
    { shape: [2, 3], reps: [3, 2] },
    { shape: [3, 1, 2], reps: [1, 4, 1] },
    { shape: [2, 2, 2, 2], reps: [2, 1, 2, 1] },
    { shape: [5], reps: [1] },
    { shape: [1, 1, 1, 70], reps: [3, 5, 7, 1] },
    { shape: [2, 80], reps: [3, 2] },
    { shape: [3, 2, 5], reps: [2, 3, 3] },
  ])('Tile of $shape by $reps equals the cpu backend exactly', async ({ shape, reps }) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const values = randomArray(size, `tile${shape.join()}`);
    const { wasm, cpu } = await runOnWasmAndCpu(() => tf.tile(tf.tensor(values, shape), reps));
    expect(wasm.shape).toEqual(cpu.shape);
    expect(wasm.values).toEqual(cpu.values);
    expect(wasm.leaked).toBe(0);
  });

  it.each([
    { axis: [0, 1, 2], keepDims: false },
    { axis: [1, 2], keepDims: false },
    { axis: [1, 2], keepDims: true },
    { axis: [0], keepDims: true },
    { axis: [-3, -2], keepDims: false },
    { axis: [0, 2], keepDims: false },
    { axis: [3], keepDims: false },
    { axis: [0, 1, 2, 3], keepDims: false },
  ])('Sum and Mean over $axis (keepDims $keepDims) equal the cpu backend', async ({ axis, keepDims }) => {
    const shape = [3, 5, 4, 6];
    const values = randomArray(3 * 5 * 4 * 6, `reduce${axis.join()}`);
    const run = () => {
      const before = tf.memory().numTensors;
      const [sum, mean] = tf.tidy(() => {
        const x = tf.tensor(values, shape);
        return [tf.sum(x, axis, keepDims), tf.mean(x, axis, keepDims)];
      });
      const out = { sumShape: sum!.shape, sum: sum!.dataSync() as Float32Array, mean: mean!.dataSync() as Float32Array };
      tf.dispose([sum!, mean!]);
      return { ...out, leaked: tf.memory().numTensors - before };
    };
    const wasm = await onBackend('wasm', run);
    const cpu = await onBackend('cpu', run);
    expect(wasm.sumShape).toEqual(cpu.sumShape);
    expect(maxRelativeError(wasm.sum, cpu.sum)).toBeLessThan(1e-5);
    expect(maxRelativeError(wasm.mean, cpu.mean)).toBeLessThan(1e-5);
    expect(wasm.leaked).toBe(0);
  });

  it('collapseTranspose merges axes that stay neighbours and drops size-1 axes', () => {
    expect(collapseTranspose([64, 32, 32, 16], [3, 1, 2, 0])).toEqual({ shape: [64, 1024, 16], perm: [2, 1, 0] });
    expect(collapseTranspose([64, 32, 32, 16], [1, 2, 0, 3])).toEqual({ shape: [64, 1024, 16], perm: [1, 0, 2] });
    expect(collapseTranspose([2, 1, 3], [2, 1, 0])).toEqual({ shape: [2, 3], perm: [1, 0] });
    expect(collapseTranspose([5, 6], [0, 1])).toEqual({ shape: [30], perm: [0] });
  });

  it.each([
    { shape: [6, 5, 7, 20], perm: [3, 1, 2, 0], dtype: 'float32' },
    { shape: [6, 5, 7, 20], perm: [1, 2, 0, 3], dtype: 'float32' },
    { shape: [40, 3, 35], perm: [2, 1, 0], dtype: 'float32' },
    { shape: [33, 70], perm: [1, 0], dtype: 'int32' },
    { shape: [2, 1, 3, 50], perm: [3, 0, 2, 1], dtype: 'float32' },
    { shape: [3, 4, 2, 32], perm: [0, 2, 1, 3], dtype: 'float32' },
    { shape: [3, 2], perm: [1, 0], dtype: 'float32' },
    { shape: [4, 4, 4, 4], perm: [3, 2, 1, 0], dtype: 'float32' },
    { shape: [2, 3], perm: [1, 0], dtype: 'bool' },
  ])('Transpose of $shape by $perm ($dtype) equals the cpu backend exactly', async ({ shape, perm, dtype }) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const values = Array.from(randomArray(size, `transpose${shape.join()}`), (v) => (dtype === 'float32' ? v : Math.round(v * 100) > 0 ? 1 : 0));
    const { wasm, cpu } = await runOnWasmAndCpu(() => tf.transpose(tf.tensor(values, shape, dtype as tf.DataType), perm));
    expect(wasm).toEqual(cpu);
    expect(wasm.leaked).toBe(0);
  });

  it.each([
    { shape: [2, 5, 5, 3], params: 3, scale: true, offset: true },
    { shape: [4, 3, 3, 16], params: 16, scale: true, offset: false },
    { shape: [3, 2, 2, 8], params: 8, scale: false, offset: true },
    { shape: [7, 4], params: 4, scale: true, offset: true },
    { shape: [2, 3, 3, 5], params: 1, scale: true, offset: true },
    { shape: [2, 6, 6, 4], params: 4, scale: false, offset: false },
  ])('FusedBatchNorm of $shape with $params-value parameters equals the cpu backend', async ({ shape, params, scale, offset }) => {
    const seed = `bn${shape.join()}${params}`;
    const size = shape.reduce((a, b) => a * b, 1);
    const x = randomArray(size, `${seed}x`).map((v) => 3 * v + 1.5);
    const mean = randomArray(params, `${seed}m`);
    const variance = randomArray(params, `${seed}v`).map((v) => v * v + 0.1);
    const gamma = randomArray(params, `${seed}g`);
    const beta = randomArray(params, `${seed}b`);
    const { wasm, cpu } = await runOnWasmAndCpu(() =>
        tf.batchNorm(
          tf.tensor(x, shape),
          tf.tensor1d(mean),
          tf.tensor1d(variance),
          offset ? tf.tensor1d(beta) : undefined,
          scale ? tf.tensor1d(gamma) : undefined,
          1e-3,
        ),
      );
    expect(wasm.shape).toEqual(cpu.shape);
    expect(maxRelativeError(wasm.values, cpu.values)).toBeLessThan(1e-5);
    expect(wasm.leaked).toBe(0);
  });

  it('Identity and Cast to the same dtype share the data, which outlives whichever tensor is disposed first', async () => {
    await tf.setBackend('wasm');
    const before = tf.memory();
    const x = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]);
    const copy = tf.clone(x);
    const cast = tf.cast(x, 'float32');
    expect(tf.memory().numDataBuffers - before.numDataBuffers).toBe(1);
    x.dispose();
    expect(Array.from(copy.dataSync())).toEqual([1, 2, 3, 4, 5, 6]);
    copy.dispose();
    expect(Array.from(cast.dataSync())).toEqual([1, 2, 3, 4, 5, 6]);
    cast.dispose();
    const ints = tf.tidy(() => tf.cast(tf.tensor1d([1.7, -2.2, 3]), 'int32'));
    expect([ints.dtype, Array.from(ints.dataSync())]).toEqual(['int32', [1, -2, 3]]);
    ints.dispose();
    expect(tf.memory().numTensors).toBe(before.numTensors);
    expect(tf.memory().numDataBuffers).toBe(before.numDataBuffers);
  });

  it.each([
    { shape: [4, 5, 6, 20], begin: [1, 0, 2, 4], size: [2, -1, 3, 12], dtype: 'float32' },
    { shape: [4, 5, 6, 20], begin: [1, 0, 0, 0], size: [2, -1, -1, -1], dtype: 'float32' },
    { shape: [4, 5, 6, 80], begin: [0, 1, 1, 0], size: [-1, 3, 4, -1], dtype: 'float32' },
    { shape: [7, 9], begin: [2, 3], size: [4, 5], dtype: 'int32' },
    { shape: [3, 4, 5, 6, 2], begin: [1, 1, 0, 2, 0], size: [2, 2, 5, 3, 2], dtype: 'float32' },
    { shape: [6], begin: [2], size: [3], dtype: 'float32' },
    { shape: [3, 4], begin: [1, 0], size: [0, 4], dtype: 'float32' },
    { shape: [3, 4], begin: [1, 1], size: [2, 2], dtype: 'bool' },
  ])('Slice of $shape at $begin size $size ($dtype) equals the cpu backend exactly', async ({ shape, begin, size, dtype }) => {
    const count = shape.reduce((a, b) => a * b, 1);
    const values = Array.from(randomArray(count, `slice${shape.join()}`), (v) => (dtype === 'float32' ? v : Math.round(v * 100) > 0 ? 1 : 0));
    const { wasm, cpu } = await runOnWasmAndCpu(() => tf.slice(tf.tensor(values, shape, dtype as tf.DataType), begin, size));
    expect(wasm).toEqual(cpu);
    expect(wasm.leaked).toBe(0);
  });

  it.each([
    { shape: [2, 3, 4, 64], splits: 4, axis: 3 },
    { shape: [2, 3, 4, 10], splits: [3, 5, 2], axis: -1 },
    { shape: [6, 5, 4], splits: [1, -1, 2], axis: 0 },
    { shape: [6, 5, 4], splits: 5, axis: 1 },
  ])('split of $shape into $splits along $axis equals the cpu backend exactly', async ({ shape, splits, axis }) => {
    const values = randomArray(
      shape.reduce((a, b) => a * b, 1),
      `split${shape.join()}`,
    );
    const run = () => {
      const before = tf.memory().numTensors;
      const parts = tf.tidy(() => tf.split(tf.tensor(values, shape), splits, axis));
      const result = parts.map((p) => ({ shape: p.shape, values: Array.from(p.dataSync()) }));
      tf.dispose(parts);
      return { parts: result, leaked: tf.memory().numTensors - before };
    };
    const wasm = await onBackend('wasm', run);
    const cpu = await onBackend('cpu', run);
    expect(wasm).toEqual(cpu);
    expect(wasm.leaked).toBe(0);
  });

  it.each([
    { shapes: [[2, 3, 4, 16], [2, 3, 4, 16], [2, 3, 4, 5]], axis: 3, dtype: 'float32' },
    { shapes: [[2, 3], [4, 3], [1, 3]], axis: 0, dtype: 'float32' },
    { shapes: [[2, 3, 70], [2, 5, 70]], axis: -2, dtype: 'int32' },
    { shapes: [[2, 0, 3], [2, 4, 3]], axis: 1, dtype: 'float32' },
    { shapes: [[3, 2], [3, 1]], axis: 1, dtype: 'bool' },
  ])('concat of $shapes along $axis ($dtype) equals the cpu backend exactly', async ({ shapes, axis, dtype }) => {
    const parts = shapes.map((shape, i) =>
      Array.from(
        randomArray(
          shape.reduce((a, b) => a * b, 1),
          `concat${i}${shape.join()}`,
        ),
        (v) => (dtype === 'float32' ? v : Math.round(v * 100) > 0 ? 1 : 0),
      ),
    );
    const { wasm, cpu } = await runOnWasmAndCpu(() =>
        tf.concat(
          parts.map((values, i) => tf.tensor(values, shapes[i], dtype as tf.DataType)),
          axis,
        ),
      );
    expect(wasm).toEqual(cpu);
    expect(wasm.leaked).toBe(0);
  });

  it('Sum of int32 falls back to the wasm kernel', async () => {
    await tf.setBackend('wasm');
    const out = tf.sum(tf.tensor2d([1, 2, 3, 4], [2, 2], 'int32'), 0);
    expect([out.dtype, Array.from(out.dataSync())]).toEqual(['int32', [4, 6]]);
    out.dispose();
  });

  it('Tile of int32 and bool tensors (bool: the wasm kernel)', async () => {
    await tf.setBackend('wasm');
    const ints = tf.tidy(() => tf.tile(tf.tensor2d([1, 2, -3, 4], [2, 2], 'int32'), [2, 2]));
    expect(ints.dtype).toBe('int32');
    expect(Array.from(ints.dataSync())).toEqual([1, 2, 1, 2, -3, 4, -3, 4, 1, 2, 1, 2, -3, 4, -3, 4]);
    const bools = tf.tidy(() => tf.tile(tf.tensor1d([true, false], 'bool'), [2]));
    expect(Array.from(bools.dataSync())).toEqual([1, 0, 1, 0]);
    tf.dispose([ints, bools]);
  });

  it.each([
    { groups: 4, strides: 1, ci: 16, co: 32 },
    { groups: 8, strides: 2, ci: 32, co: 64 },
  ])('ResNeXt grouped conv ($groups groups, stride $strides, split as it trains on wasm): wasm gradients equal cpu', async ({ groups, strides, ci, co }) => {
    const seed = `grouped${groups}${strides}`;
    const gradientsOn = () => {
      const before = tf.memory().numTensors;
      const grads = tf.tidy(() => {
        const x = tf.tensor4d(randomArray(2 * 8 * 8 * ci, `${seed}x`), [2, 8, 8, ci]);
        const kernel = tf.tensor4d(randomArray(3 * 3 * (ci / groups) * co, `${seed}k`), [3, 3, ci / groups, co]);
        const outSize = Math.ceil(8 / strides);
        const w = tf.tensor(randomArray(2 * outSize * outSize * co, `${seed}w`), [2, outSize, outSize, co]);
        const loss = (a: tf.Tensor, b: tf.Tensor) =>
          tf.sum(tf.mul(groupedConv2d(a as tf.Tensor4D, b as tf.Tensor4D, { strides, padding: 'same', groups, method: 'split' }), w));
        return tf.grads(loss)([x, kernel]).map((g) => g.dataSync() as Float32Array);
      });
      return { grads, leaked: tf.memory().numTensors - before };
    };
    const wasm = await onBackend('wasm', gradientsOn);
    const cpu = await onBackend('cpu', gradientsOn);
    wasm.grads.forEach((g, i) => expect(maxRelativeError(g, cpu.grads[i]!)).toBeLessThan(1e-4));
    expect(wasm.leaked).toBe(0);
  });

  it('a residual block with BatchNorm gets the same gradients on wasm as on cpu', async () => {
    const seed = 'block';
    const gradientsOn = () =>
      tf.tidy(() => {
        const x = tf.tensor4d(randomArray(4 * 6 * 6 * 3, `${seed}x`), [4, 6, 6, 3]);
        const f1 = tf.tensor4d(randomArray(3 * 3 * 3 * 8, `${seed}f1`), [3, 3, 3, 8]);
        const f2 = tf.tensor4d(randomArray(3 * 3 * 8 * 8, `${seed}f2`), [3, 3, 8, 8]);
        const proj = tf.tensor4d(randomArray(3 * 8, `${seed}p`), [1, 1, 3, 8]);
        const gamma = tf.tensor1d(randomArray(8, `${seed}gamma`));
        const beta = tf.tensor1d(randomArray(8, `${seed}beta`));
        const loss = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, d: tf.Tensor) => {
          const h = tf.conv2d(x, a as tf.Tensor4D, 2, 'same');
          const { mean, variance } = tf.moments(h, [0, 1, 2]);
          const bn = tf.relu(tf.batchNorm(h, mean, variance, beta, d as tf.Tensor1D, 1e-3)) as tf.Tensor4D;
          const y = tf.add(tf.conv2d(bn, b as tf.Tensor4D, 1, 'same'), tf.conv2d(x, c as tf.Tensor4D, 2, 'same'));
          return tf.mean(tf.square(tf.mean(y, [1, 2])));
        };
        const flat = tf.grads(loss)([f1, f2, proj, gamma]).map((g) => g.dataSync() as Float32Array);
        return flat;
      });
    const wasm = await onBackend('wasm', gradientsOn);
    const cpu = await onBackend('cpu', gradientsOn);
    expect(wasm).toHaveLength(4);
    wasm.forEach((g, i) => expect(maxRelativeError(g, cpu[i]!)).toBeLessThan(1e-4));
  });
});
