import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';

import {
  PAPER_NORMALIZATION,
  createPipeline,
  meanStdNormalization,
  selectImages,
  splitTrainValidation,
} from '../src/index.js';
import { loadCifar10 } from '../src/node.js';
import type { Pipeline } from '../src/index.js';
import { CIFAR10_SUBSET, NO_SHARED_DATA, realData } from './helpers.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const full = realData(() => loadCifar10(CIFAR10_SUBSET, { split: 'test' }));
const small = realData(() => selectImages(full, Array.from({ length: 20 }, (_, i) => i)));

async function collect(pipeline: Pipeline, epoch: number): Promise<Array<{ xs: Float32Array; ys: Int32Array; shape: number[] }>> {
  const out: Array<{ xs: Float32Array; ys: Int32Array; shape: number[] }> = [];
  await pipeline.batches(epoch).forEachAsync(({ xs, ys }) => {
    out.push({ xs: xs.dataSync() as Float32Array, ys: ys.dataSync() as Int32Array, shape: xs.shape });
    expect(xs.dtype).toBe('float32');
    expect(ys.dtype).toBe('int32');
    tf.dispose([xs, ys]);
  });
  return out;
}

describe.skipIf(NO_SHARED_DATA)('createPipeline', () => {
  it('without shuffle or augmentation yields the images in order, normalised', async () => {
    const normalization = { kind: 'meanStd', mean: [100, 110, 120], std: [50, 60, 70] } as const;
    const pipeline = createPipeline(small, { batchSize: 8, normalization });
    expect([pipeline.size, pipeline.batchesPerEpoch, pipeline.numClasses]).toEqual([20, 3, 10]);
    const batches = await collect(pipeline, 0);
    expect(batches.map((b) => b.shape)).toEqual([
      [8, 32, 32, 3],
      [8, 32, 32, 3],
      [4, 32, 32, 3],
    ]);
    expect(Array.from(batches[0]!.ys)).toEqual(Array.from(small.labels.subarray(0, 8)));
    // Image 9 is the second of batch 1; check every one of its values.
    const xs = batches[1]!.xs;
    for (let i = 0; i < 3072; i++) {
      const c = i % 3;
      const expected = (small.images[9 * 3072 + i]! - normalization.mean[c]!) / normalization.std[c]!;
      expect(xs[3072 + i]).toBeCloseTo(expected, 5);
    }
  });

  it('drops the short last batch on request', async () => {
    const pipeline = createPipeline(small, { batchSize: 8, dropRemainder: true });
    expect([pipeline.size, pipeline.batchesPerEpoch]).toEqual([16, 2]);
    expect((await collect(pipeline, 0)).map((b) => b.shape[0])).toEqual([8, 8]);
  });

  it('is a pure function of (seed, epoch): same batches again and in a fresh pipeline, new ones next epoch', async () => {
    const options = { batchSize: 6, shuffle: true, seed: 11, augment: 'reflect' as const, normalization: PAPER_NORMALIZATION.cifar10 };
    const first = createPipeline(small, options);
    const epoch0 = await collect(first, 0);
    const epoch1 = await collect(first, 1);
    const again1 = await collect(first, 1);
    // A resumed run builds a new pipeline and starts at epoch 1 without having visited epoch 0.
    const resumed1 = await collect(createPipeline(small, options), 1);
    expect(again1).toEqual(epoch1);
    expect(resumed1).toEqual(epoch1);
    expect(epoch1.map((b) => Array.from(b.ys))).not.toEqual(epoch0.map((b) => Array.from(b.ys)));
    const otherSeed = await collect(createPipeline(small, { ...options, seed: 12 }), 1);
    expect(otherSeed.map((b) => Array.from(b.ys))).not.toEqual(epoch1.map((b) => Array.from(b.ys)));
    // Each epoch visits every image once.
    for (const epoch of [epoch0, epoch1]) {
      const labels = epoch.flatMap((b) => Array.from(b.ys)).sort((a, b) => a - b);
      expect(labels).toEqual(Array.from(small.labels).sort((a, b) => a - b));
    }
  });

  it('augments: same images as the plain pipeline up to crop and flip, and different per epoch', async () => {
    const plain = await collect(createPipeline(small, { batchSize: 20 }), 0);
    const augmented = await collect(createPipeline(small, { batchSize: 20, augment: 'zero', seed: 3 }), 0);
    const augmentedNext = await collect(createPipeline(small, { batchSize: 20, augment: 'zero', seed: 3 }), 1);
    expect(augmented[0]!.xs).not.toEqual(plain[0]!.xs);
    expect(augmentedNext[0]!.xs).not.toEqual(augmented[0]!.xs);
    // Zero padding leaves zeros, but every non-zero value comes from the same image.
    for (let image = 0; image < 20; image++) {
      const source = new Set(plain[0]!.xs.subarray(image * 3072, (image + 1) * 3072));
      source.add(0);
      for (const v of augmented[0]!.xs.subarray(image * 3072, (image + 1) * 3072)) expect(source.has(v)).toBe(true);
    }
  });

  it('leaves no tensors behind once the batches are disposed', async () => {
    const pipeline = createPipeline(small, { batchSize: 7, shuffle: true, augment: 'reflect', normalization: meanStdNormalization(small) });
    const before = tf.memory().numTensors;
    await collect(pipeline, 0);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects bad options with the value and what was expected', () => {
    expect(() => createPipeline(small, { batchSize: 0 })).toThrowError('createPipeline: batchSize 0, expected a positive integer');
    expect(() => createPipeline(small, { batchSize: 21, dropRemainder: true })).toThrowError(
      'createPipeline: dropRemainder with batchSize 21 leaves no batch of 20 images',
    );
    expect(() =>
      createPipeline(small, { batchSize: 4, normalization: { kind: 'meanStd', mean: [1, 2], std: [1, 1] } }),
    ).toThrowError('meanStd normalisation has 2 means and 2 stds, expected 3 (one per channel)');
    expect(() => createPipeline(small, { batchSize: 4 }).batches(-1)).toThrowError(
      'pipeline.batches: epoch -1, expected a non-negative integer',
    );
  });
});

describe.skipIf(NO_SHARED_DATA)('splitTrainValidation', () => {
  it('holds out a seeded sample and keeps every image exactly once', () => {
    const { train, validation } = splitTrainValidation(full, { validationSize: 100, seed: 5 });
    expect([train.count, validation.count, train.split, validation.split]).toEqual([917, 100, 'train', 'validation']);
    const again = splitTrainValidation(full, { validationSize: 100, seed: 5 });
    expect(Buffer.from(again.validation.images).equals(Buffer.from(validation.images))).toBe(true);
    const other = splitTrainValidation(full, { validationSize: 100, seed: 6 });
    expect(other.validation.labels).not.toEqual(validation.labels);
    const counts = new Array<number>(10).fill(0);
    for (const l of [...train.labels, ...validation.labels]) counts[l]! += 1;
    expect(counts).toEqual([104, 97, 96, 91, 109, 96, 102, 105, 106, 111]);
    expect(() => splitTrainValidation(full, { validationSize: 1017 })).toThrowError(
      'splitTrainValidation: validationSize 1017, expected an integer in 1..1016 (the cifar10 test split has 1017 images)',
    );
  });
});
