import * as tf from '@tensorflow/tfjs-core';

import type { ImageDataset } from './types.js';
import type { ZcaWhitening } from './zca.js';
import { applyZca } from './zca.js';

/** Per-channel statistics in 0..255 units; `std` is the population standard deviation over all pixels. */
export interface ChannelStats {
  mean: number[];
  std: number[];
}

/**
 * How uint8 pixels become network inputs.
 * - `none`: the raw values 0..255 as float32.
 * - `scale`: divide by 255 (the SVHN recipe of the WRN paper).
 * - `meanStd`: subtract the per-channel mean and divide by the per-channel std, both in 0..255 units.
 * - `zca`: divide by 255, then ZCA-whiten with a transform fitted on the training split (`loadOrFitZca`).
 */
export type Normalization =
  | { kind: 'none' }
  | { kind: 'scale' }
  | { kind: 'meanStd'; mean: readonly number[]; std: readonly number[] }
  | { kind: 'zca'; zca: ZcaWhitening };

/**
 * Per-channel mean/std constants from the WRN authors' code (szagoruyko/wide-residual-networks, 0..255 units).
 * They are the statistics of the full official training splits; use `channelStats` for a subset.
 */
export const PAPER_NORMALIZATION = {
  cifar10: { kind: 'meanStd', mean: [125.3, 123.0, 113.9], std: [63.0, 62.1, 66.7] },
  cifar100: { kind: 'meanStd', mean: [129.3, 124.1, 112.4], std: [68.2, 65.4, 70.4] },
  svhn: { kind: 'scale' },
} as const satisfies Record<string, Normalization>;

/** Per-channel mean and population std of all pixels of `dataset`, in 0..255 units. */
export function channelStats(dataset: ImageDataset): ChannelStats {
  const channels = dataset.channels;
  // Integer sums stay exact in float64 up to 2^53: far beyond 50k images of 3072 bytes (sum of squares ~3e12).
  const sums = new Float64Array(channels);
  const squares = new Float64Array(channels);
  const images = dataset.images;
  for (let i = 0; i < images.length; i += channels) {
    for (let c = 0; c < channels; c++) {
      const v = images[i + c]!;
      sums[c]! += v;
      squares[c]! += v * v;
    }
  }
  const n = images.length / channels;
  const mean = Array.from(sums, (s) => s / n);
  const std = Array.from(squares, (s, c) => Math.sqrt(Math.max(0, s / n - mean[c]! ** 2)));
  return { mean, std };
}

/** `meanStd` normalisation with the statistics of `dataset` (normally the training split). */
export function meanStdNormalization(dataset: ImageDataset): Normalization {
  const { mean, std } = channelStats(dataset);
  return { kind: 'meanStd', mean, std };
}

/** Checks a normalisation against the images it will see. */
export function validateNormalization(
  normalization: Normalization,
  { height, width, channels }: Pick<ImageDataset, 'height' | 'width' | 'channels'>,
): void {
  if (normalization.kind === 'zca') {
    const zca = normalization.zca;
    if (zca.height !== height || zca.width !== width || zca.channels !== channels) {
      throw new Error(
        `ZCA fitted on ${zca.height}x${zca.width}x${zca.channels} images cannot whiten ${height}x${width}x${channels} images`,
      );
    }
  }
  if (normalization.kind === 'meanStd') {
    const { mean, std } = normalization;
    if (mean.length !== channels || std.length !== channels) {
      throw new Error(
        `meanStd normalisation has ${mean.length} means and ${std.length} stds, expected ${channels} (one per channel)`,
      );
    }
    const bad = std.findIndex((s) => !(s > 0));
    if (bad >= 0) throw new Error(`meanStd normalisation: std[${bad}] = ${std[bad]}, expected a positive number`);
  }
}

/** Applies `normalization` to float32 pixels in 0..255, `x` of shape [B,H,W,C]. */
export function normalizeBatch(x: tf.Tensor4D, normalization: Normalization): tf.Tensor4D {
  return tf.tidy(() => {
    switch (normalization.kind) {
      case 'none':
        return x.clone();
      case 'scale':
        return tf.div(x, 255);
      case 'meanStd': {
        const mean = tf.tensor1d(normalization.mean as number[], 'float32');
        const std = tf.tensor1d(normalization.std as number[], 'float32');
        return tf.div(tf.sub(x, mean), std);
      }
      case 'zca':
        return applyZca(tf.div(x, 255), normalization.zca);
    }
  });
}
