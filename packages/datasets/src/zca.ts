import * as tf from '@tensorflow/tfjs-core';

import { symmetricEigen } from './eigen.js';
import { Sha256 } from './sha256.js';
import type { ImageDataset } from './types.js';
import { imageSize } from './types.js';

/**
 * A ZCA whitening transform x -> (x - mean) W for image vectors in 0..1 units (pixels / 255), with
 * W = U diag(1 / sqrt(lambda + epsilon)) U^T from the eigen-decomposition of the training covariance. It keeps
 * images looking like images (unlike PCA whitening), which is why it suits convolutional networks.
 */
export interface ZcaWhitening {
  height: number;
  width: number;
  channels: number;
  /** Added to every eigenvalue; damps directions of tiny variance instead of amplifying their noise. */
  epsilon: number;
  /** Mean image vector (length D = height * width * channels), 0..1 units. */
  mean: Float32Array;
  /** W, D x D row-major, symmetric. */
  matrix: Float32Array;
  /** SHA-256 of the training set it was fitted on, its size, and how many of its images were used. */
  fittedOn: { sha256: string; count: number; sampled: number; name: string; split: string };
}

export interface FitZcaOptions {
  /** Default 0.01 (in (pixel/255)^2 units, about a sixth of CIFAR's per-pixel variance of 0.06). */
  epsilon?: number;
  /**
   * Estimate mean and covariance from this many evenly spaced images instead of all of them. The covariance of
   * 50k CIFAR images costs 4.7e11 multiply-adds; 10k give nearly the same transform in a fifth of the time.
   */
  sampleSize?: number;
}

/** Images fed to one covariance matmul: bounds the float32 chunk to ~12 MB for CIFAR. */
const COVARIANCE_CHUNK = 1000;

export function datasetSha256(dataset: ImageDataset): string {
  return new Sha256().update(JSON.stringify([dataset.count, dataset.height, dataset.width, dataset.channels])).update(dataset.images).hex();
}

/**
 * Fits ZCA on `dataset` (normally the training split) with the active tf.js backend doing the matmuls. Results are
 * read back with `data()`, not `dataSync()`, which the webgpu backend refuses in Node and stalls pages on.
 */
export async function fitZca(dataset: ImageDataset, options: FitZcaOptions = {}): Promise<ZcaWhitening> {
  const epsilon = options.epsilon ?? 0.01;
  if (!(epsilon > 0)) throw new Error(`fitZca: epsilon ${epsilon}, expected a positive number`);
  const size = imageSize(dataset);
  if (dataset.count < 2) throw new Error(`fitZca: ${dataset.count} image(s) in ${dataset.name}/${dataset.split}, need at least 2`);
  const sampleSize = options.sampleSize ?? dataset.count;
  if (!Number.isInteger(sampleSize) || sampleSize < 2) {
    throw new Error(`fitZca: sampleSize ${sampleSize}, expected an integer of at least 2`);
  }
  const count = Math.min(sampleSize, dataset.count);
  // Evenly spaced images, so a sample of a class-sorted set still covers every class.
  const pick = (i: number) => Math.floor((i * dataset.count) / count);
  const imageAt = (i: number) => dataset.images.subarray(pick(i) * size, (pick(i) + 1) * size);

  const mean = new Float64Array(size);
  for (let i = 0; i < count; i++) {
    const image = imageAt(i);
    for (let j = 0; j < size; j++) mean[j]! += image[j]!;
  }
  for (let j = 0; j < size; j++) mean[j]! /= 255 * count;
  const mean32 = Float32Array.from(mean);

  // Float32 matmuls per chunk, summed in float64 so 50k images do not lose precision in the sum. The chunk goes
  // in twice, as X^T [D, n] and X [n, D], instead of once with transposeA: tfjs-backend-wasm 4.22 runs transposed
  // matmuls in a plain loop, ~20x slower than its XNNPACK path (33 s instead of 2 s per 1000 CIFAR images).
  const covariance = new Float64Array(size * size);
  for (let start = 0; start < count; start += COVARIANCE_CHUNK) {
    const n = Math.min(COVARIANCE_CHUNK, count - start);
    const rows = new Float32Array(n * size);
    const columns = new Float32Array(size * n);
    for (let i = 0; i < n; i++) {
      const image = imageAt(start + i);
      for (let j = 0; j < size; j++) {
        const centred = image[j]! / 255 - mean[j]!;
        rows[i * size + j] = centred;
        columns[j * n + i] = centred;
      }
    }
    const partial = tf.tidy(() => tf.matMul(tf.tensor2d(columns, [size, n]), tf.tensor2d(rows, [n, size])));
    const values = await partial.data();
    partial.dispose();
    for (let k = 0; k < values.length; k++) covariance[k]! += values[k]!;
  }
  for (let k = 0; k < covariance.length; k++) covariance[k]! /= count;

  // W = (U diag(scale)) U^T; U^T's rows are the eigenvectors, so neither operand needs a transposed matmul.
  const { values, vectors } = symmetricEigen(covariance, size);
  const scaledVectors = new Float32Array(size * size);
  const vectorRows = new Float32Array(size * size);
  for (let j = 0; j < size; j++) {
    const scale = 1 / Math.sqrt(Math.max(values[j]!, 0) + epsilon);
    const v = vectors[j]!;
    vectorRows.set(v, j * size);
    for (let a = 0; a < size; a++) scaledVectors[a * size + j] = v[a]! * scale;
  }
  const product = tf.tidy(() => tf.matMul(tf.tensor2d(scaledVectors, [size, size]), tf.tensor2d(vectorRows, [size, size])));
  const matrix = (await product.data()) as Float32Array;
  product.dispose();
  return {
    height: dataset.height,
    width: dataset.width,
    channels: dataset.channels,
    epsilon,
    mean: mean32,
    matrix: Float32Array.from(matrix),
    fittedOn: { sha256: datasetSha256(dataset), count: dataset.count, sampled: count, name: dataset.name, split: dataset.split },
  };
}

/** Whitens `x` [B,H,W,C] already in 0..1 units. */
export function applyZca(x: tf.Tensor4D, zca: ZcaWhitening): tf.Tensor4D {
  const [batch, height, width, channels] = x.shape;
  if (height !== zca.height || width !== zca.width || channels !== zca.channels) {
    throw new Error(
      `ZCA fitted on ${zca.height}x${zca.width}x${zca.channels} images cannot whiten ${height}x${width}x${channels} images`,
    );
  }
  const size = height * width * channels;
  return tf.tidy(() => {
    const flat = tf.sub(tf.reshape(x, [batch, size]), tf.tensor1d(zca.mean));
    return tf.reshape(tf.matMul(flat, tf.tensor2d(zca.matrix, [size, size])), [batch, height, width, channels]);
  });
}
