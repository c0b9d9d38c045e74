import { keyedRandom, permutation } from './random.js';
import type { ImageDataset } from './types.js';
import { imageSize } from './types.js';

/** A new dataset of the images at `indices` (copied, in that order), named as split `split`. */
export function selectImages(dataset: ImageDataset, indices: ArrayLike<number>, split = dataset.split): ImageDataset {
  const bytes = imageSize(dataset);
  const images = new Uint8Array(indices.length * bytes);
  const labels = new Int32Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const index = indices[i]!;
    if (!Number.isInteger(index) || index < 0 || index >= dataset.count) {
      throw new Error(`selectImages: index ${index} at position ${i} is outside 0..${dataset.count - 1}`);
    }
    images.set(dataset.images.subarray(index * bytes, (index + 1) * bytes), i * bytes);
    labels[i] = dataset.labels[index]!;
  }
  return { ...dataset, split, count: indices.length, images, labels };
}

export interface TrainValidationOptions {
  /** Images held out for validation, e.g. 5000 for the ResNet paper's 45k/5k split of CIFAR-10. */
  validationSize: number;
  /**
   * Seed of the random choice of held-out images. Default 0. The choice depends only on the seed and the
   * dataset size, so a resumed run holds out the same images.
   */
  seed?: number;
}

/**
 * Splits a training set into `train` and `validation` parts. Both keep the original file order; the held-out
 * images are a seeded random sample, so each class is represented in proportion.
 */
export function splitTrainValidation(
  dataset: ImageDataset,
  options: TrainValidationOptions,
): { train: ImageDataset; validation: ImageDataset } {
  const size = options.validationSize;
  if (!Number.isInteger(size) || size <= 0 || size >= dataset.count) {
    throw new Error(
      `splitTrainValidation: validationSize ${size}, expected an integer in 1..${dataset.count - 1} ` +
        `(the ${dataset.name} ${dataset.split} split has ${dataset.count} images)`,
    );
  }
  const order = permutation(dataset.count, keyedRandom(options.seed ?? 0, 'validation-split'));
  const held = order.subarray(0, size).slice().sort();
  const kept = order.subarray(size).slice().sort();
  return { train: selectImages(dataset, kept, 'train'), validation: selectImages(dataset, held, 'validation') };
}
