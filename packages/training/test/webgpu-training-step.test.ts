// Every family's training step on webgpu (Dawn; SwiftShader on CI) against the pure-JS cpu backend: the forward
// logits, the loss, every weight gradient, and the weights after one SGD step (BN moving statistics included).
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-layers';
import { buildModelFromConfig, resolveModelConfig, type ModelConfig } from '@wrn/architectures';
import { fastestGroupedConvMethod, seedLayerRandom } from '@wrn/blocks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WEBGPU_GROUPED_CONV_METHODS } from '@wrn/backend';
import { selectBackend } from '@wrn/backend/node';
import { variableGrads } from '../src/gradients';
import { meanCrossEntropy, oneHotFloat } from '../src/loss';
import { SgdOptimizer } from '../src/sgd';
import { maxRelativeError, randomArray } from './helpers';
import { webgpuUnavailable } from './webgpu-support';

const CLASSES = 3;
const BATCH = 2;

/** A registry model shrunk to a few channels, so SwiftShader (Vulkan on the CPU) runs its step in seconds. */
function tiny(name: string, inputShape: [number, number, number], patch: Partial<ModelConfig>, dropRate = 0): ModelConfig {
  return { ...resolveModelConfig(name, { numClasses: CLASSES, inputShape, seed: 3, dropRate }), ...patch };
}

const FAMILIES: { label: string; config: ModelConfig }[] = [
  {
    label: 'ResNet (original order, option A zero-pad shortcuts)',
    config: tiny('resnet8', [8, 8, 3], {
      stemChannels: 4,
      stages: [
        { blocks: 1, outChannels: 4, groups: 1, strides: 1 },
        { blocks: 1, outChannels: 8, groups: 1, strides: 2 },
      ],
      dropRate: [0, 0],
    }),
  },
  {
    label: 'pre-act ResNet (projection shortcuts)',
    config: tiny('preact-resnet8', [8, 8, 3], {
      stemChannels: 4,
      stages: [
        { blocks: 1, outChannels: 4, groups: 1, strides: 1 },
        { blocks: 1, outChannels: 8, groups: 1, strides: 2 },
      ],
      dropRate: [0, 0],
    }),
  },
  {
    label: 'WRN with dropout',
    config: tiny('wrn-10-1', [8, 8, 3], {
      stemChannels: 4,
      stages: [
        { blocks: 1, outChannels: 4, groups: 1, strides: 1 },
        { blocks: 1, outChannels: 8, groups: 1, strides: 2 },
      ],
      dropRate: [0.3, 0.3],
    }),
  },
  {
    label: "ResNeXt's grouped convolution (4 groups)",
    config: tiny('resnext11-2x4d', [8, 8, 3], {
      stemChannels: 8,
      stages: [
        { blocks: 1, outChannels: 16, midChannels: 8, groups: 4, strides: 1 },
        { blocks: 1, outChannels: 16, midChannels: 8, groups: 4, strides: 2 },
      ],
      dropRate: [0, 0],
    }),
  },
  {
    label: 'the ImageNet stem (7x7/2 conv, 3x3/2 max pool)',
    config: tiny('resnet18', [16, 16, 3], {
      stemChannels: 4,
      stages: [
        { blocks: 1, outChannels: 4, groups: 1, strides: 1 },
        { blocks: 1, outChannels: 8, groups: 1, strides: 2 },
      ],
      dropRate: [0, 0],
    }),
  },
];

interface StepResult {
  logits: Float32Array;
  loss: number;
  grads: Float32Array[];
  weightsAfter: Float32Array[];
  leaked: number;
}

async function trainingStep(backend: 'cpu' | 'webgpu', config: ModelConfig, initial: Float32Array[] | null): Promise<{ result: StepResult; initial: Float32Array[] }> {
  expect(await tf.setBackend(backend)).toBe(true);
  const model = buildModelFromConfig(config);
  const start = initial ?? (await Promise.all(model.getWeights().map(async (w) => (await w.data()) as Float32Array)));
  if (initial != null) model.setWeights(model.getWeights().map((w, i) => tf.tensor(initial[i]!, w.shape)));
  const before = tf.memory().numTensors;
  const [height, width, channels] = config.inputShape;
  const xs = tf.tensor4d(randomArray(BATCH * height * width * channels, 'webgpu-x'), [BATCH, height, width, channels]);
  const labels = tf.tensor1d([1, 2], 'int32');
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const optimizer = new SgdOptimizer(
    variables.map((variable) => ({ variable, name: variable.name, weightDecay: true })),
    { momentum: 0.9, nesterov: true, dampening: 0, weightDecay: 5e-4 },
  );
  // Dropout masks come from @wrn/blocks' seeded stream, the same on both backends.
  seedLayerRandom(11);
  let logitsTensor: tf.Tensor | null = null;
  const { value, grads } = variableGrads(() => {
    const outputs = model.apply(xs, { training: true }) as tf.Tensor;
    logitsTensor = tf.keep(outputs);
    return meanCrossEntropy(outputs, oneHotFloat(labels, CLASSES), 'logits');
  }, variables);
  const gradList = variables.map((v) => grads[v.name]!);
  const gradValues = await Promise.all(gradList.map(async (g) => (await g.data()) as Float32Array));
  optimizer.step(gradList, 0.1);
  const result: StepResult = {
    logits: (await logitsTensor!.data()) as Float32Array,
    loss: (await value.data())[0]!,
    grads: gradValues,
    weightsAfter: await Promise.all(model.getWeights().map(async (w) => (await w.data()) as Float32Array)),
    leaked: 0,
  };
  tf.dispose([value, logitsTensor!, xs, labels]);
  tf.dispose(grads);
  optimizer.dispose();
  result.leaked = tf.memory().numTensors - before;
  model.dispose();
  return { result, initial: start };
}

describe.skipIf(webgpuUnavailable !== undefined)('a training step on webgpu equals the cpu backend to 1e-4', () => {
  beforeAll(async () => {
    const picked = await selectBackend('webgpu');
    expect(picked.name).toBe('webgpu');
  }, 120_000);
  afterAll(async () => {
    await tf.setBackend('cpu');
  });

  it('grouped convolutions on webgpu use the measured method', () => {
    expect(fastestGroupedConvMethod('webgpu', true, { groups: 4, strides: 1 })).toBe(WEBGPU_GROUPED_CONV_METHODS.training);
    expect(fastestGroupedConvMethod('webgpu', false, { groups: 32, strides: 2 })).toBe(WEBGPU_GROUPED_CONV_METHODS.inference);
  });

  for (const { label, config } of FAMILIES) {
    it(`${label}: logits, loss, gradients, weights after SGD`, async () => {
      const cpu = await trainingStep('cpu', config, null);
      const gpu = await trainingStep('webgpu', config, cpu.initial);
      expect(tf.getBackend()).toBe('webgpu');
      expect(maxRelativeError(gpu.result.logits, cpu.result.logits)).toBeLessThan(1e-4);
      expect(Math.abs(gpu.result.loss - cpu.result.loss) / Math.abs(cpu.result.loss)).toBeLessThan(1e-4);
      expect(gpu.result.grads).toHaveLength(cpu.result.grads.length);
      gpu.result.grads.forEach((g, i) => expect(maxRelativeError(g, cpu.result.grads[i]!), `gradient ${i}`).toBeLessThan(1e-4));
      gpu.result.weightsAfter.forEach((w, i) => expect(maxRelativeError(w, cpu.result.weightsAfter[i]!), `weight ${i}`).toBeLessThan(1e-4));
      // The step changed the weights (so the comparison above compares an update, not two copies of the start).
      expect(maxRelativeError(cpu.result.weightsAfter[0]!, cpu.initial[0]!)).toBeGreaterThan(1e-4);
      expect([gpu.result.leaked, cpu.result.leaked]).toEqual([0, 0]);
    }, 240_000);
  }
});
