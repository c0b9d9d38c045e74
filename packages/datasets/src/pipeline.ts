import * as tf from '@tensorflow/tfjs-core';
import * as tfd from '@tensorflow/tfjs-data';

import type { AugmentationName, AugmentationOptions } from './augment.js';
import { augmentationOptions, augmentBatch } from './augment.js';
import type { Normalization } from './normalization.js';
import { normalizeBatch, validateNormalization } from './normalization.js';
import { keyedRandom, permutation } from './random.js';
import type { ImageDataset } from './types.js';
import { imageSize } from './types.js';

/** One training or evaluation batch: normalised float32 NHWC images and their int32 labels. */
// A type alias, not an interface, so it satisfies tfjs-data's index-signature TensorContainer constraint.
export type Batch = {
  xs: tf.Tensor4D;
  ys: tf.Tensor1D;
};

export interface PipelineOptions {
  /** Images per batch (a positive integer). */
  batchSize: number;
  /** Visit the images in a fresh random order each epoch. Default false (file order, for evaluation). */
  shuffle?: boolean;
  /** Seed of the shuffle and the augmentation; with `epoch` it fixes every batch. Default 0. */
  seed?: number;
  /** Augmentation applied after normalisation. Default 'none'. */
  augment?: AugmentationName | AugmentationOptions;
  /** How uint8 pixels become inputs. Default `{ kind: 'none' }` (float32 0..255). */
  normalization?: Normalization;
  /** Leave out the last, smaller batch. Default false. */
  dropRemainder?: boolean;
  /** Batches prepared ahead of the consumer. Default 2. */
  prefetch?: number;
}

/** A batch source for `@wrn/training`: `batches(epoch)` is the same sequence every time it is asked for. */
export interface Pipeline {
  /** Images one epoch yields (fewer than the dataset with `dropRemainder`). */
  readonly size: number;
  readonly numClasses: number;
  readonly batchSize: number;
  readonly batchesPerEpoch: number;
  /** The epoch's batches; their order and augmentation are a pure function of (seed, epoch). */
  batches(epoch: number): tfd.Dataset<Batch>;
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value <= 0) throw new Error(`createPipeline: ${name} ${value}, expected a positive integer`);
  return value;
}

/**
 * A tfjs-data pipeline over an in-memory dataset: (seeded shuffle) -> gather uint8 images -> float32 batch ->
 * normalise -> augment -> prefetch. Images stay uint8 until their batch is made.
 *
 * The shuffle is a full Fisher-Yates permutation keyed by (seed, epoch), not tf.data's `shuffle(buffer, seed)`:
 * that one is a windowed shuffle whose order depends on how many times the dataset object was iterated, so a run
 * resumed at epoch k would not see the batches the uninterrupted run saw.
 */
export function createPipeline(dataset: ImageDataset, options: PipelineOptions): Pipeline {
  const batchSize = positiveInteger(options.batchSize, 'batchSize');
  const prefetch = options.prefetch ?? 2;
  if (!Number.isInteger(prefetch) || prefetch < 0) {
    throw new Error(`createPipeline: prefetch ${prefetch}, expected a non-negative integer`);
  }
  const seed = options.seed ?? 0;
  const shuffle = options.shuffle ?? false;
  const augmentation = augmentationOptions(options.augment ?? 'none');
  const normalization = options.normalization ?? { kind: 'none' };
  validateNormalization(normalization, dataset);
  if (dataset.count === 0) throw new Error(`createPipeline: dataset ${dataset.name}/${dataset.split} has no images`);

  const fullBatches = Math.floor(dataset.count / batchSize);
  const batchesPerEpoch = options.dropRemainder || dataset.count % batchSize === 0 ? fullBatches : fullBatches + 1;
  if (batchesPerEpoch === 0) {
    throw new Error(
      `createPipeline: dropRemainder with batchSize ${batchSize} leaves no batch of ${dataset.count} images`,
    );
  }
  const size = Math.min(dataset.count, batchesPerEpoch * batchSize);
  const bytesPerImage = imageSize(dataset);
  const { height, width, channels } = dataset;

  function makeBatch(order: Int32Array, epoch: number, batchIndex: number): Batch {
    const start = batchIndex * batchSize;
    const end = Math.min(start + batchSize, dataset.count);
    const n = end - start;
    const pixels = new Uint8Array(n * bytesPerImage);
    const labels = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const image = order[start + i]!;
      pixels.set(dataset.images.subarray(image * bytesPerImage, (image + 1) * bytesPerImage), i * bytesPerImage);
      labels[i] = dataset.labels[image]!;
    }
    return tf.tidy(() => {
      const raw = tf.tensor4d(new Float32Array(pixels), [n, height, width, channels], 'float32');
      const normalized = normalizeBatch(raw, normalization);
      const xs = augmentation
        ? augmentBatch(normalized, augmentation, keyedRandom(seed, epoch, 'augment', batchIndex))
        : normalized;
      return { xs, ys: tf.tensor1d(labels, 'int32') };
    });
  }

  return {
    size,
    numClasses: dataset.numClasses,
    batchSize,
    batchesPerEpoch,
    batches(epoch: number): tfd.Dataset<Batch> {
      if (!Number.isInteger(epoch) || epoch < 0) {
        throw new Error(`pipeline.batches: epoch ${epoch}, expected a non-negative integer`);
      }
      let order: Int32Array | undefined;
      const batchIndices = tfd.generator(function* () {
        for (let b = 0; b < batchesPerEpoch; b++) yield b;
      });
      const batches = batchIndices.map((b) => {
        order ??= shuffle
          ? permutation(dataset.count, keyedRandom(seed, epoch, 'shuffle'))
          : Int32Array.from({ length: dataset.count }, (_, i) => i);
        return makeBatch(order, epoch, b as number);
      });
      return prefetch > 0 ? batches.prefetch(prefetch) : batches;
    },
  };
}
