import '@tensorflow/tfjs-backend-cpu';
import { mean, randomNormal, setBackend, tidy, variableGrads, type Scalar, type Tensor } from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { seedLayerRandom } from '@wrn/blocks';
import { buildModel, buildModelFromConfig, countMultiplyAdds, countParams, layerTable, resolveModelConfig } from '../src/index.js';
import { shrunk } from './shrink.js';

beforeAll(async () => {
  await setBackend('cpu');
});

describe('WRN for CIFAR built as a tf.LayersModel', () => {
  // The first path of issue 3; every CIFAR row is built in cifar-build.test.ts.
  const expected: Record<string, number> = { 'wrn-16-4': 2_748_890 };
  for (const [name, params] of Object.entries(expected)) {
    it(`${name} has ${params} trainable parameters and the planned multiply-adds`, () => {
      const model = buildModel(name, { seed: 1 });
      try {
        expect(countParams(model)).toBe(params);
        expect(countMultiplyAdds(model)).toBe(countMultiplyAdds(name));
        expect(model.outputs[0]?.shape).toEqual([null, 10]);
        expect(model.inputs[0]?.shape).toEqual([null, 32, 32, 3]);
      } finally {
        model.dispose();
      }
    });
  }

  it('wrn-16-4 follows the WRN code: pre-activation basic blocks, 1x1 projection where widths change, dropout between convs', () => {
    const model = buildModel('wrn-16-4', { dropRate: 0.3, seed: 2 });
    try {
      const names = model.layers.map((layer) => layer.name);
      // group 1, block 1: 16 -> 64 channels, so a projection reads the pre-activated input
      // Each BN-ReLU pair is one layer (the BN, activation 'relu'): the plan's relu nodes are computed inside it.
      expect(names.slice(0, 12)).toEqual([
        'input', 'stem_conv', 'stage1_block1_bn1', 'stage1_block1_conv1', 'stage1_block1_bn2',
        'stage1_block1_dropout1', 'stage1_block1_conv2', 'stage1_block1_shortcut_conv',
        'stage1_block1_add', 'stage1_block2_bn1', 'stage1_block2_conv1', 'stage1_block2_bn2',
      ]);
      expect(names.filter((n) => n.includes('relu'))).toEqual([]);
      expect(model.getLayer('stage1_block1_bn1').getConfig()).toMatchObject({ activation: 'relu' });
      expect(names).not.toContain('stage1_block2_shortcut_conv');
      expect(names.filter((n) => n.endsWith('_shortcut_conv'))).toEqual([
        'stage1_block1_shortcut_conv', 'stage2_block1_shortcut_conv', 'stage3_block1_shortcut_conv',
      ]);
      expect(names.filter((n) => n.includes('dropout'))).toHaveLength(6);
      expect(names.slice(-3)).toEqual(['head_bn', 'head_pool', 'logits']);
      const rows = layerTable(model);
      expect(rows.find((r) => r.name === 'stage2_block1_conv1')).toMatchObject({
        // strided 3x3: Torch's padding 1/1, a layer of @wrn/blocks (tfjs-layers' Conv2D only pads 'same')
        type: 'WrnPaddedConv2D', outputShape: [null, 16, 16, 128], params: 3 * 3 * 64 * 128,
      });
      expect(rows.find((r) => r.name === 'stage1_block1_dropout1')?.type).toBe('WrnSeededDropout');
      expect(rows.reduce((total, r) => total + r.params, 0)).toBe(2_748_890);
    } finally {
      model.dispose();
    }
  });

  it('wrn-10-1 runs a forward pass on a tiny batch and outputs 10 logits per image', () => {
    const model = buildModel('wrn-10-1', { seed: 3 });
    try {
      const out = tidy(() => (model.predict(randomNormal([2, 32, 32, 3], 0, 1, 'float32', 7)) as Tensor).arraySync()) as number[][];
      expect(out).toHaveLength(2);
      expect(out[0]).toHaveLength(10);
      expect(out.flat().every(Number.isFinite)).toBe(true);
    } finally {
      model.dispose();
    }
  });

  it('the same seed gives the same initial weights', () => {
    const a = buildModel('wrn-10-1', { seed: 5 });
    const b = buildModel('wrn-10-1', { seed: 5 });
    const c = buildModel('wrn-10-1', { seed: 6 });
    try {
      const first = (m: typeof a) => Array.from(m.getLayer('stage2_block1_conv1').getWeights()[0]?.dataSync() ?? []);
      expect(first(a)).toEqual(first(b));
      expect(first(a)).not.toEqual(first(c));
      const std = Math.sqrt(first(a).reduce((s, v) => s + v * v, 0) / first(a).length);
      // WRN: He-normal over the fan-in as the WRN PyTorch code, for a 3x3 conv with 16 inputs: sqrt(2 / (9 * 16)) = 0.118
      expect(std).toBeGreaterThan(0.108);
      expect(std).toBeLessThan(0.128);
    } finally {
      a.dispose();
      b.dispose();
      c.dispose();
    }
  });

  it('ResNet, pre-act ResNet and ResNeXt initialise over the fan-out, as fb.resnet.torch / resnet-pre-act.lua / ResNeXt', () => {
    for (const name of ['resnet20', 'preact-resnet20']) {
      const model = buildModel(name, { seed: 5 });
      try {
        expect(resolveModelConfig(name).convInit).toBe('fan-out');
        const kernel = Array.from(model.getLayer('stage2_block1_conv1').getWeights()[0]?.dataSync() ?? []);
        const std = Math.sqrt(kernel.reduce((s, v) => s + v * v, 0) / kernel.length);
        // 3x3 conv from 16 to 32 channels: sqrt(2 / (9 * 32)) = 0.083
        expect(std).toBeGreaterThan(0.075);
        expect(std).toBeLessThan(0.092);
      } finally {
        model.dispose();
      }
    }
    expect(resolveModelConfig('resnext29-8x64d').convInit).toBe('fan-out');
    expect(resolveModelConfig('wrn-50-2').convInit).toBe('fan-out');
    expect(resolveModelConfig('wrn-28-10').convInit).toBe('fan-in');
    expect(resolveModelConfig('wrn-28-10', { convInit: 'fan-out' }).convInit).toBe('fan-out');
  });

  it('records the resolved config in the model metadata', () => {
    const model = buildModel('wrn-10-1', { numClasses: 100 });
    try {
      expect(model.getUserDefinedMetadata()).toEqual({ wrnModelConfig: resolveModelConfig('wrn-10-1', { numClasses: 100 }) });
    } finally {
      model.dispose();
    }
  });

  it('trains: every trainable weight gets a finite gradient through option A, grouped conv, dropout and drop-path', () => {
    for (const config of [
      resolveModelConfig('resnet8', { inputShape: [8, 8, 3], dropPathRate: 0.2, seed: 1 }),
      shrunk('resnext29-4x8d', 8, { inputShape: [8, 8, 3], dropRate: 0.2, seed: 2 }),
      resolveModelConfig('wrn-10-1', { inputShape: [8, 8, 3], dropRate: 0.3, seed: 3 }),
    ]) {
      const model = buildModelFromConfig(config);
      try {
        seedLayerRandom(4);
        const x = randomNormal([4, 8, 8, 3], 0, 1, 'float32', 5);
        const { value, grads } = variableGrads(() => mean(model.apply(x, { training: true }) as Tensor) as Scalar);
        const names = Object.keys(grads);
        expect(names).toHaveLength(model.trainableWeights.length);
        for (const grad of Object.values(grads)) {
          expect(Array.from(grad.dataSync()).every(Number.isFinite)).toBe(true);
        }
        expect(Number.isFinite(value.dataSync()[0])).toBe(true);
        value.dispose();
        Object.values(grads).forEach((g) => g.dispose());
        x.dispose();
      } finally {
        model.dispose();
      }
    }
  });

  it('zeroInitLastGamma builds the last BN of every branch with gamma 0 and the others with gamma 1', () => {
    const model = buildModelFromConfig(shrunk('resnet50', 16, { inputShape: [16, 16, 3], zeroInitLastGamma: true, seed: 1 }));
    try {
      const gamma = (layer: string) => Array.from(model.getLayer(layer).getWeights()[0]?.dataSync() ?? []);
      expect(new Set(gamma('stage1_block1_bn3'))).toEqual(new Set([0]));
      expect(new Set(gamma('stage4_block1_bn3'))).toEqual(new Set([0]));
      expect(new Set(gamma('stage1_block1_bn1'))).toEqual(new Set([1]));
      expect(new Set(gamma('stage1_block1_shortcut_bn'))).toEqual(new Set([1]));
    } finally {
      model.dispose();
    }
  });
});

