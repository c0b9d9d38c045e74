import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import seedrandom from 'seedrandom';
import type { Batch, BatchSource } from '../src/data';

export const NUM_CLASSES = 3;
export const IMAGE_SHAPE = [4, 4, 2] as const;

/** A tiny conv net with BatchNorm (so training/inference modes differ), seeded initialisers. */
export function tinyModel(seed = 1, options: { softmax?: boolean } = {}): tfl.LayersModel {
  const input = tfl.input({ shape: [...IMAGE_SHAPE] });
  let x = tfl.layers
    .conv2d({ filters: 4, kernelSize: 3, padding: 'same', useBias: false, kernelInitializer: tfl.initializers.heNormal({ seed }) })
    .apply(input) as tfl.SymbolicTensor;
  x = tfl.layers.batchNormalization({ axis: -1 }).apply(x) as tfl.SymbolicTensor;
  x = tfl.layers.reLU().apply(x) as tfl.SymbolicTensor;
  x = tfl.layers.globalAveragePooling2d({}).apply(x) as tfl.SymbolicTensor;
  const out = tfl.layers
    .dense({
      units: NUM_CLASSES,
      kernelInitializer: tfl.initializers.glorotUniform({ seed: seed + 1 }),
      ...(options.softmax ? { activation: 'softmax' as const } : {}),
    })
    .apply(x) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out });
}

/** Deterministic, learnable examples: the label shifts one channel's mean. */
export function makeExamples(
  count: number,
  seed: number,
  shape: readonly [number, number, number] = IMAGE_SHAPE,
): { images: Float32Array[]; labels: number[] } {
  const rng = seedrandom(`examples-${seed}`);
  const images: Float32Array[] = [];
  const labels: number[] = [];
  const size = shape[0] * shape[1] * shape[2];
  for (let i = 0; i < count; i++) {
    const label = i % NUM_CLASSES;
    const img = new Float32Array(size);
    for (let j = 0; j < size; j++) {
      const channel = j % shape[2];
      img[j] = (rng() - 0.5) + (channel === 0 ? label - 1 : (label === 2 ? 1 : -0.5));
    }
    images.push(img);
    labels.push(label);
  }
  return { images, labels };
}

/**
 * A batch source whose order is a pure function of (seed, epoch), as @wrn/datasets' pipelines are.
 * `poison` puts NaN into the images of one (epoch, batch).
 */
export function arraySource(
  count: number,
  batchSize: number,
  options: {
    seed?: number;
    shuffle?: boolean;
    dataSeed?: number;
    poison?: { epoch: number; batch: number };
    shape?: readonly [number, number, number];
  } = {},
): BatchSource {
  const shape = options.shape ?? IMAGE_SHAPE;
  const { images, labels } = makeExamples(count, options.dataSeed ?? 7, shape);
  const size = images[0]!.length;
  return {
    size: count,
    numClasses: NUM_CLASSES,
    classNames: ['a', 'b', 'c'],
    batches(epoch: number): AsyncIterable<Batch> {
      const order = images.map((_, i) => i);
      if (options.shuffle) {
        const rng = seedrandom(`order-${options.seed ?? 0}-${epoch}`);
        for (let i = order.length - 1; i > 0; i--) {
          const j = Math.floor(rng() * (i + 1));
          [order[i], order[j]] = [order[j]!, order[i]!];
        }
      }
      return (async function* () {
        for (let start = 0, b = 0; start < count; start += batchSize, b++) {
          const idx = order.slice(start, start + batchSize);
          const data = new Float32Array(idx.length * size);
          idx.forEach((k, n) => data.set(images[k]!, n * size));
          if (options.poison && options.poison.epoch === epoch && options.poison.batch === b) data.fill(Number.NaN);
          yield {
            xs: tf.tensor4d(data, [idx.length, ...shape]),
            ys: tf.tensor1d(idx.map((k) => labels[k]!), 'int32'),
          };
        }
      })();
    },
  };
}

export function weightValues(model: tfl.LayersModel): number[][] {
  return model.getWeights().map((w) => Array.from(w.dataSync()));
}

export function randomArray(size: number, seed: string): Float32Array {
  const rng = seedrandom(seed);
  return Float32Array.from({ length: size }, () => rng() * 2 - 1);
}

/** Largest |a-b| relative to the reference's largest magnitude. */
export function maxRelativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) throw new Error(`maxRelativeError: ${actual.length} values against ${expected.length}`);
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]!));
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!) / (scale || 1));
  return worst;
}
