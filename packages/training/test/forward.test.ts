import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { buildModel } from '@wrn/architectures';
import { seedLayerRandom } from '@wrn/blocks';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { applyForTraining, variableGrads } from '../src';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

type Forward = (model: LayersModel, xs: tf.Tensor) => tf.Tensor;
const throughApply: Forward = (model, xs) => model.apply(xs, { training: true }) as tf.Tensor;

/** One training step's loss and gradients, and the peak of live tensor bytes in it (tf.profile). */
async function step(model: LayersModel, forward: Forward) {
  const [size] = model.inputs[0]!.shape.slice(1) as [number];
  const xs = tf.randomNormal([4, size, size, 3], 0, 1, 'float32', 1);
  const labels = tf.oneHot(tf.tensor1d([0, 2, 1, 2], 'int32'), 3);
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const before = tf.memory().numTensors;
  seedLayerRandom(7); // the dropout masks: the same stream, in the same layer order, on both sides
  let result: { loss: number | undefined; grads: number[][] } | undefined;
  const { peakBytes } = await tf.profile(() => {
    const { value, grads } = variableGrads(() => tf.losses.softmaxCrossEntropy(labels, forward(model, xs)) as tf.Scalar, variables);
    result = { loss: value.dataSync()[0], grads: variables.map((v) => Array.from(grads[v.name]!.dataSync())) };
    tf.dispose([value, grads]);
    return [];
  });
  const leaked = tf.memory().numTensors - before;
  tf.dispose([xs, labels]);
  return { ...result!, peakBytes, leaked };
}

describe('applyForTraining', () => {
  it.each([
    ['resnet20', 8, {}],
    ['wrn-10-1', 8, { dropRate: 0.3 }],
    ['preact-resnet20', 8, {}],
    // Grouped convs and BatchNorm'd projections; 4x4 images: its 1,024 channels are slow on the cpu backend.
    ['resnext29-2x4d', 4, {}],
  ] as const)('gives %s the loss and gradients of model.apply exactly, at a lower peak of live tensors', async (name, size, options) => {
    const model = buildModel(name, { numClasses: 3, inputShape: [size, size, 3], seed: 2, ...options });
    const ours = await step(model, applyForTraining);
    const reference = await step(model, throughApply);
    expect(ours.loss).toBe(reference.loss);
    expect(ours.grads).toEqual(reference.grads);
    expect(ours.leaked).toBe(0);
    expect(reference.leaked).toBe(0);
    // model.apply keeps every layer's output until its forward pass ends; ours frees each once it is read.
    expect(ours.peakBytes).toBeLessThan(reference.peakBytes);
    model.dispose();
  });
});
