import '@tensorflow/tfjs-backend-cpu';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { memory, randomNormal, setBackend, tidy, type Tensor } from '@tensorflow/tfjs-core';
import { loadLayersModel } from '@tensorflow/tfjs-layers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileSystemIO } from '@wrn/blocks/node';
import { buildModelFromConfig, countParams, resolveModelConfig, type ModelConfig } from '../src/index.js';
import { shrunk } from './shrink.js';

let root = '';
beforeAll(async () => {
  await setBackend('cpu');
  root = await mkdtemp(join(tmpdir(), 'wrn-roundtrip-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const CASES: [string, ModelConfig][] = [
  ['resnet (CIFAR, option A)', resolveModelConfig('resnet8', { inputShape: [8, 8, 3], numClasses: 5, seed: 1 })],
  ['preact-resnet (bottleneck)', shrunk('preact-resnet164', 4, { inputShape: [8, 8, 3], numClasses: 5, seed: 2 })],
  ['wrn B(3,1,3) with dropout and drop-path', resolveModelConfig('wrn-13-1-b3_1_3', { inputShape: [8, 8, 3], numClasses: 5, dropRate: 0.3, dropPathRate: 0.1, seed: 3 })],
  ['resnext (CIFAR, grouped conv)', shrunk('resnext29-4x8d', 8, { inputShape: [8, 8, 3], numClasses: 5, seed: 4 })],
  ['resnet (ImageNet stem, basic)', shrunk('resnet18', 8, { inputShape: [32, 32, 3], numClasses: 5, seed: 5 })],
  ['wrn (ImageNet bottleneck, v1 layout, zero-init gamma)', shrunk('wrn-50-2', 16, { inputShape: [32, 32, 3], numClasses: 5, seed: 6, strideLayout: 'v1', zeroInitLastGamma: true })],
];

describe('a saved and reloaded model of each family predicts identically', () => {
  CASES.forEach(([label, config], i) => {
    it(label, async () => {
      const before = memory().numTensors;
      const model = buildModelFromConfig(config);
      const dir = join(root, `model-${i}`);
      const x = randomNormal([2, ...config.inputShape], 0, 1, 'float32', 10 + i);
      try {
        const expected = tidy(() => (model.predict(x) as Tensor).arraySync()) as number[][];
        expect(expected).toHaveLength(2);
        expect(expected[0]).toHaveLength(5);
        await model.save(fileSystemIO(dir));
        const loaded = await loadLayersModel(fileSystemIO(dir));
        try {
          expect(tidy(() => (loaded.predict(x) as Tensor).arraySync())).toEqual(expected);
          expect(countParams(loaded)).toBe(countParams(model));
          expect(loaded.getUserDefinedMetadata()).toEqual({ wrnModelConfig: config });
        } finally {
          loaded.dispose();
        }
      } finally {
        model.dispose();
        x.dispose();
      }
      expect(memory().numTensors).toBe(before);
    });
  });
});
