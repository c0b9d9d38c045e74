import '@tensorflow/tfjs-backend-cpu';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  DatasetFormatError,
  applyZca,
  createPipeline,
  fitZca,
  symmetricEigen,
} from '../src/index.js';
import { loadCifar10, loadOrFitZca, loadZca } from '../src/node.js';
import type { ImageDataset, ZcaWhitening } from '../src/index.js';
import { CIFAR10_SUBSET, NO_SHARED_DATA, realData, tempDir } from './helpers.js';

const scratch = tempDir('zca');
beforeAll(async () => {
  await tf.setBackend('cpu');
});
afterAll(() => scratch.remove());

/** The central `side` x `side` patch of every image: real image statistics at a dimension tests can afford. */
function centreCrop(dataset: ImageDataset, side: number): ImageDataset {
  const offset = (32 - side) / 2;
  const images = new Uint8Array(dataset.count * side * side * 3);
  for (let n = 0; n < dataset.count; n++)
    for (let r = 0; r < side; r++) {
      const src = n * 3072 + ((r + offset) * 32 + offset) * 3;
      images.set(dataset.images.subarray(src, src + side * 3), (n * side + r) * side * 3);
    }
  return { ...dataset, height: side, width: side, images };
}

const train = realData(() => centreCrop(loadCifar10(CIFAR10_SUBSET, { split: 'train' }), 6));
const test = realData(() => centreCrop(loadCifar10(CIFAR10_SUBSET, { split: 'test' }), 6));
const D = 6 * 6 * 3;

function covariance(x: tf.Tensor4D): number[][] {
  return tf.tidy(() => {
    const flat = tf.reshape(x, [x.shape[0], D]);
    const centred = tf.sub(flat, tf.mean(flat, 0));
    return tf.div(tf.matMul(centred, centred, true, false), x.shape[0]).arraySync() as number[][];
  });
}

describe('symmetricEigen', () => {
  it('decomposes a symmetric matrix: A v = lambda v, orthonormal vectors, ascending values', () => {
    const a = [4, 1, 2, 1, 3, 0, 2, 0, 5];
    const { values, vectors } = symmetricEigen(a, 3);
    expect(values[0]! <= values[1]! && values[1]! <= values[2]!).toBe(true);
    for (let j = 0; j < 3; j++) {
      for (let i = 0; i < 3; i++) {
        const av = a[i * 3]! * vectors[j]![0]! + a[i * 3 + 1]! * vectors[j]![1]! + a[i * 3 + 2]! * vectors[j]![2]!;
        expect(av).toBeCloseTo(values[j]! * vectors[j]![i]!, 12);
      }
      for (let k = 0; k < 3; k++) {
        const dot = vectors[j]!.reduce((s, v, i) => s + v * vectors[k]![i]!, 0);
        expect(dot).toBeCloseTo(j === k ? 1 : 0, 12);
      }
    }
    expect(values.reduce((s, v) => s + v, 0)).toBeCloseTo(12, 12);
    expect(symmetricEigen([2, 0, 0, -1], 2).values).toEqual(Float64Array.from([-1, 2]));
  });
});

describe.skipIf(NO_SHARED_DATA)('ZCA whitening', () => {
  let zca: ZcaWhitening;
  beforeAll(async () => {
    zca = await fitZca(train, { epsilon: 1e-6 });
  });

  it('makes the covariance of the whitened training split close to identity', () => {
    const x = tf.tidy(() => applyZca(tf.div(tf.tensor4d(new Float32Array(train.images), [train.count, 6, 6, 3]), 255) as tf.Tensor4D, zca));
    const cov = covariance(x);
    x.dispose();
    let worstDiagonal = 0;
    let worstOff = 0;
    for (let i = 0; i < D; i++)
      for (let j = 0; j < D; j++) {
        if (i === j) worstDiagonal = Math.max(worstDiagonal, Math.abs(cov[i]![j]! - 1));
        else worstOff = Math.max(worstOff, Math.abs(cov[i]![j]!));
      }
    expect(worstDiagonal).toBeLessThan(0.05);
    expect(worstOff).toBeLessThan(0.03);
    // The raw data is far from white: the check above is not vacuous.
    const raw = tf.tidy(() => tf.div(tf.tensor4d(new Float32Array(train.images), [train.count, 6, 6, 3]), 255) as tf.Tensor4D);
    const rawCov = covariance(raw);
    raw.dispose();
    expect(Math.abs(rawCov[0]![1]! / rawCov[0]![0]!)).toBeGreaterThan(0.5);
  });

  it('fitted on an evenly spaced sample, still nearly whitens the whole split', async () => {
    const sampled = await fitZca(train, { epsilon: 1e-6, sampleSize: 3500 });
    const x = tf.tidy(() => applyZca(tf.div(tf.tensor4d(new Float32Array(train.images), [train.count, 6, 6, 3]), 255) as tf.Tensor4D, sampled));
    const cov = covariance(x);
    x.dispose();
    const diagonal = cov.map((row, i) => row[i]!);
    expect(Math.min(...diagonal)).toBeGreaterThan(0.8);
    expect(Math.max(...diagonal)).toBeLessThan(1.2);
    await expect(fitZca(train, { sampleSize: 1 })).rejects.toThrowError('fitZca: sampleSize 1, expected an integer of at least 2');
  });

  it('is a symmetric matrix, and a larger epsilon damps it', async () => {
    for (let i = 0; i < D; i += 7) for (let j = 0; j < D; j += 5) expect(zca.matrix[i * D + j]).toBeCloseTo(zca.matrix[j * D + i]!, 2);
    const damped = await fitZca(train, { epsilon: 0.1 });
    expect(Math.abs(damped.matrix[0]!)).toBeLessThan(Math.abs(zca.matrix[0]!));
  });

  it('is cached to disk on the first call and read back on the next', async () => {
    const cacheDir = join(scratch.path, 'cache');
    const first = await loadOrFitZca(train, cacheDir, { epsilon: 1e-6 });
    expect(first.cached).toBe(false);
    expect(readdirSync(cacheDir)).toEqual([first.file.split('/').pop()]);
    expect(first.file).toMatch(/zca-cifar10-train-[0-9a-f]{16}-n7051-eps0\.000001\.bin$/);
    const second = await loadOrFitZca(train, cacheDir, { epsilon: 1e-6 });
    expect(second.cached).toBe(true);
    expect(second.zca.matrix).toEqual(first.zca.matrix);
    expect(second.zca.mean).toEqual(first.zca.mean);
    expect(second.zca.fittedOn).toEqual({ sha256: first.zca.fittedOn.sha256, count: 7051, sampled: 7051, name: 'cifar10', split: 'train' });
    // Other images or another epsilon get their own fit.
    expect((await loadOrFitZca(test, cacheDir, { epsilon: 1e-6 })).cached).toBe(false);
    expect((await loadOrFitZca(train, cacheDir, { epsilon: 1e-3 })).cached).toBe(false);
    const sampled = await loadOrFitZca(train, cacheDir, { epsilon: 1e-3, sampleSize: 3000 });
    expect([sampled.cached, sampled.zca.fittedOn.sampled]).toEqual([false, 3000]);
    expect(readdirSync(cacheDir)).toHaveLength(4);
  });

  it('a damaged cache file is an error naming the file', () => {
    const file = join(scratch.path, 'broken.bin');
    writeFileSync(file, 'not zca data');
    expect(() => loadZca(file)).toThrowError(DatasetFormatError);
    expect(() => loadZca(file)).toThrowError(`${file} (byte offset 0): not a ZCA cache file: expected it to start with "WRN-ZCA1"`);
  });

  it('applies the training fit to the test split through the pipeline', async () => {
    const pipeline = createPipeline(test, { batchSize: 64, normalization: { kind: 'zca', zca } });
    const iterator = await pipeline.batches(0).iterator();
    const { value } = await iterator.next();
    const { xs, ys } = value as { xs: tf.Tensor4D; ys: tf.Tensor1D };
    const expected = tf.tidy(() =>
      applyZca(tf.div(tf.tensor4d(new Float32Array(test.images.subarray(0, 64 * D)), [64, 6, 6, 3]), 255) as tf.Tensor4D, zca),
    );
    expect(xs.shape).toEqual([64, 6, 6, 3]);
    const difference = tf.tidy(() => tf.max(tf.abs(tf.sub(xs, expected))).dataSync()[0]!);
    expect(difference).toBeLessThan(1e-4);
    tf.dispose([xs, ys, expected]);
    expect(() => createPipeline(loadCifar10(CIFAR10_SUBSET, { split: 'test' }), { batchSize: 8, normalization: { kind: 'zca', zca } })).toThrowError(
      'ZCA fitted on 6x6x3 images cannot whiten 32x32x3 images',
    );
  });
});
