import * as tf from '@tensorflow/tfjs-core';

import type { Random } from './random.js';

/**
 * - `reflect`: pad 4 pixels on each side with the image's own reflection (edge not repeated), random crop back to
 *   the input size, random horizontal flip: the WRN paper's recipe.
 * - `zero`: the same with zero padding (the ResNet paper's recipe). Padding happens after normalisation, so a
 *   padded pixel is 0 in normalised units (the channel mean for mean/std normalisation), as in fb.resnet.torch.
 * - `none`: images pass through unchanged (the SVHN recipe, and every evaluation split).
 */
export type AugmentationName = 'reflect' | 'zero' | 'none';

export interface AugmentationOptions {
  /** How the border is filled before the random crop. */
  padMode: 'reflect' | 'zero';
  /** Pixels added on each side before cropping back to the input size; 0 disables the crop. */
  padding: number;
  /** Mirror each image left-right with probability 1/2. */
  flip: boolean;
}

/** Per-image crop offsets (in padded coordinates, 0 .. 2*padding) and flips for one batch. */
export interface AugmentationDraw {
  rowOffsets: Int32Array;
  colOffsets: Int32Array;
  flips: Uint8Array;
}

export function augmentationOptions(augment: AugmentationName | AugmentationOptions): AugmentationOptions | undefined {
  if (typeof augment !== 'string') return augment;
  switch (augment) {
    case 'reflect':
      return { padMode: 'reflect', padding: 4, flip: true };
    case 'zero':
      return { padMode: 'zero', padding: 4, flip: true };
    case 'none':
      return undefined;
    default:
      throw new Error(`augmentation '${String(augment)}' is not one of 'reflect', 'zero', 'none'`);
  }
}

/** Draws crop offsets and flips for `batchSize` images, in image order (rows, then columns, then flips). */
export function drawAugmentation(batchSize: number, options: AugmentationOptions, random: Random): AugmentationDraw {
  const positions = 2 * options.padding + 1;
  const draw: AugmentationDraw = {
    rowOffsets: new Int32Array(batchSize),
    colOffsets: new Int32Array(batchSize),
    flips: new Uint8Array(batchSize),
  };
  for (let i = 0; i < batchSize; i++) {
    draw.rowOffsets[i] = Math.floor(random() * positions);
    draw.colOffsets[i] = Math.floor(random() * positions);
    draw.flips[i] = options.flip && random() < 0.5 ? 1 : 0;
  }
  return draw;
}

/** Index of padded coordinate `p` (may be negative or past the end) in a reflect-padded axis of `size`. */
function reflectIndex(p: number, size: number): number {
  // Mirror about 0 and about size-1 without repeating the edge, like tf.mirrorPad 'reflect' and numpy 'reflect'.
  const last = size - 1;
  return last - Math.abs(last - Math.abs(p));
}

/**
 * How {@link cropAndFlip} moves the pixels: `copy` reads the batch's values and copies each pixel in JavaScript (no
 * kernel at all: on cpu and wasm a [128,32,32,3] batch takes about a millisecond, where wasm's Gather took 30);
 * `gather` runs one batched tf.gather, which keeps the data where it is (on a GPU backend reading it back would
 * stall the device). The default is `copy` on the backends whose data lives in this process's memory.
 */
export type CropAndFlipMethod = 'copy' | 'gather';

const HOST_MEMORY_BACKENDS = new Set(['cpu', 'wasm', 'tensorflow']);

/**
 * Crops each image of `x` [B,H,W,C] at its own offset in the padded image and mirrors the flagged ones, returning
 * a [B,H,W,C] batch. Only B*(H+W) row and column indices are computed per batch, and reflection padding is folded
 * into them instead of materialised; zero padding reads a zero for indices outside the image.
 */
export function cropAndFlip(
  x: tf.Tensor4D,
  draw: AugmentationDraw,
  options: AugmentationOptions,
  method: CropAndFlipMethod = HOST_MEMORY_BACKENDS.has(tf.getBackend()) ? 'copy' : 'gather',
): tf.Tensor4D {
  const [batch, height, width] = x.shape;
  const padding = options.padding;
  if (!Number.isInteger(padding) || padding < 0) {
    throw new Error(`augmentation padding ${padding}: expected a non-negative integer`);
  }
  if (options.padMode === 'reflect' && padding >= Math.min(height, width)) {
    throw new Error(
      `reflect padding ${padding} needs images larger than the padding, got ${height}x${width} (at most ${Math.min(height, width) - 1})`,
    );
  }
  for (const [name, values] of [
    ['rowOffsets', draw.rowOffsets],
    ['colOffsets', draw.colOffsets],
    ['flips', draw.flips],
  ] as const) {
    if (values.length !== batch) throw new Error(`augmentation ${name} has ${values.length} entries, expected ${batch}`);
  }
  const rows = new Int32Array(batch * height);
  const cols = new Int32Array(batch * width);
  for (let b = 0; b < batch; b++) {
    const rowOffset = draw.rowOffsets[b]!;
    const colOffset = draw.colOffsets[b]!;
    if (rowOffset < 0 || rowOffset > 2 * padding || colOffset < 0 || colOffset > 2 * padding) {
      throw new Error(
        `augmentation offsets (${rowOffset}, ${colOffset}) of image ${b}: expected each in 0..${2 * padding}`,
      );
    }
    for (let i = 0; i < height; i++) {
      const p = rowOffset + i;
      rows[b * height + i] = options.padMode === 'reflect' ? reflectIndex(p - padding, height) : p;
    }
    for (let j = 0; j < width; j++) {
      const p = colOffset + (draw.flips[b] ? width - 1 - j : j);
      cols[b * width + j] = options.padMode === 'reflect' ? reflectIndex(p - padding, width) : p;
    }
  }
  const [, , , channels] = x.shape;
  if (method === 'copy' && x.dtype === 'float32') return copyCrops(x, rows, cols, options.padMode === 'zero' ? padding : 0);
  const zeroPadded = options.padMode === 'zero' && padding > 0;
  const sourceHeight = zeroPadded ? height + 2 * padding : height;
  const sourceWidth = zeroPadded ? width + 2 * padding : width;
  return tf.tidy(() => {
    const source = zeroPadded
      ? tf.pad(x, [
          [0, 0],
          [padding, padding],
          [padding, padding],
          [0, 0],
        ])
      : x;
    // Flat pixel index b*(H'W') + row*W' + col, built by broadcasting [B,1,1] + [B,H,1] + [B,1,W]. One gather
    // with batchDims 0: tf.js 4.22's wasm Gather gives wrong results (and reads out of bounds) for batchDims 1.
    const imageStarts = tf.mul(tf.range(0, batch, 1, 'int32'), tf.scalar(sourceHeight * sourceWidth, 'int32'));
    const rowStarts = tf.mul(tf.tensor3d(rows, [batch, height, 1], 'int32'), tf.scalar(sourceWidth, 'int32'));
    const pixelIndices = tf.add(
      tf.add(tf.reshape(imageStarts, [batch, 1, 1]), rowStarts),
      tf.tensor3d(cols, [batch, 1, width], 'int32'),
    );
    const pixels = tf.reshape(source, [batch * sourceHeight * sourceWidth, channels]);
    return tf.gather(pixels, pixelIndices, 0) as tf.Tensor4D;
  });
}

/**
 * The `copy` method: out[b, i, j] = x[b, rows[b, i], cols[b, j]] with rows and cols in padded coordinates when
 * `zeroPadding` > 0 (a pixel outside the image is 0), else image coordinates.
 */
function copyCrops(x: tf.Tensor4D, rows: Int32Array, cols: Int32Array, zeroPadding: number): tf.Tensor4D {
  const [batch, height, width, channels] = x.shape;
  const source = x.dataSync() as Float32Array;
  const out = new Float32Array(batch * height * width * channels);
  const rowStride = width * channels;
  for (let b = 0; b < batch; b++) {
    const image = b * height * rowStride;
    for (let i = 0; i < height; i++) {
      const row = rows[b * height + i]! - zeroPadding;
      if (row < 0 || row >= height) continue;
      const from = image + row * rowStride;
      let to = image + i * rowStride;
      for (let j = 0; j < width; j++, to += channels) {
        const col = cols[b * width + j]! - zeroPadding;
        if (col < 0 || col >= width) continue;
        const at = from + col * channels;
        for (let c = 0; c < channels; c++) out[to + c] = source[at + c]!;
      }
    }
  }
  return tf.tensor4d(out, x.shape, 'float32');
}

/** Draws and applies one batch's augmentation. */
export function augmentBatch(x: tf.Tensor4D, options: AugmentationOptions, random: Random): tf.Tensor4D {
  return cropAndFlip(x, drawAugmentation(x.shape[0], options, random), options);
}
