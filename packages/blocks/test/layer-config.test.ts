import '@tensorflow/tfjs-backend-cpu';
import { io, memory, randomNormal, setBackend, tidy, type Tensor } from '@tensorflow/tfjs-core';
import { input, loadLayersModel, model, type layers, type SymbolicTensor } from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  CUSTOM_LAYER_CLASSES,
  DropPath,
  GroupedConv2D,
  PaddedConv2D,
  PaddedMaxPooling2D,
  ResidualAdd,
  SeededDropout,
  TorchBatchNormalization,
  ZeroPadShortcut,
} from '../src/index.js';

beforeAll(async () => {
  await setBackend('cpu');
});

/** The base arguments under test: a frozen layer with its dtype set. */
const FROZEN = { name: 'frozen', trainable: false, dtype: 'float32' } as const;

/** One instance of every custom layer class, keyed by its registered class name, on a [6, 6, 4] input. */
const CASES: Record<string, () => layers.Layer> = {
  WrnGroupedConv2D: () => new GroupedConv2D({ ...FROZEN, filters: 6, kernelSize: 3, groups: 2, seed: 1 }),
  WrnPaddedConv2D: () => new PaddedConv2D({ ...FROZEN, filters: 3, kernelSize: 3, strides: 2, padding: 1, seed: 2 }),
  WrnMaxPooling2D: () => new PaddedMaxPooling2D({ ...FROZEN, poolSize: 3, strides: 2, padding: 1 }),
  WrnBatchNormalization: () => new TorchBatchNormalization({ ...FROZEN, momentum: 0.8, gammaInitializer: 'zeros' }),
  WrnZeroPadShortcut: () => new ZeroPadShortcut({ ...FROZEN, strides: 2, outChannels: 6 }),
  WrnDropPath: () => new DropPath({ ...FROZEN, rate: 0.1 }),
  WrnSeededDropout: () => new SeededDropout({ ...FROZEN, rate: 0.2 }),
  WrnResidualAdd: () => new ResidualAdd({ ...FROZEN }),
};

async function saveAndLoad(saved: ReturnType<typeof model>): Promise<ReturnType<typeof model>> {
  let artifacts: io.ModelArtifacts | undefined;
  await saved.save(io.withSaveHandler(async (a) => {
    artifacts = a;
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }));
  if (artifacts === undefined) throw new Error('the save handler was not called');
  // A JSON round trip as well: what a model.json on disk or in IndexedDB holds.
  const topology = JSON.parse(JSON.stringify(artifacts.modelTopology)) as object;
  return loadLayersModel(io.fromMemory({ ...artifacts, modelTopology: topology }));
}

describe('custom layers keep trainable and dtype through save and loadLayersModel', () => {
  it('covers every registered custom layer class', () => {
    expect(Object.keys(CASES).sort()).toEqual(CUSTOM_LAYER_CLASSES.map((cls) => cls.className).sort());
  });

  for (const [className, create] of Object.entries(CASES)) {
    it(className, async () => {
      const before = memory().numTensors;
      const x = input({ shape: [6, 6, 4], name: 'x' });
      const layer = create();
      // The residual addition takes two inputs: here the input and itself.
      const built = model({ inputs: x, outputs: layer.apply(layer instanceof ResidualAdd ? [x, x] : x) as SymbolicTensor, name: className });
      const loaded = await saveAndLoad(built);
      const sample = randomNormal([2, 6, 6, 4], 0, 1, 'float32', 7);
      try {
        const again = loaded.getLayer('frozen');
        expect(again.getClassName()).toBe(className);
        expect(again.trainable).toBe(false);
        expect(again.dtype).toBe('float32');
        expect(again.getConfig()).toEqual(layer.getConfig());
        expect(again.getConfig()).toMatchObject({ trainable: false, dtype: 'float32' });
        // Frozen means no trainable weights: an optimiser given loaded.trainableWeights leaves the layer alone.
        expect(loaded.trainableWeights).toHaveLength(0);
        expect(again.nonTrainableWeights.map((w) => w.shape)).toEqual(layer.weights.map((w) => w.shape));
        expect(tidy(() => (loaded.predict(sample) as Tensor).arraySync())).toEqual(tidy(() => (built.predict(sample) as Tensor).arraySync()));
      } finally {
        sample.dispose();
        built.dispose();
        loaded.dispose();
      }
      expect(memory().numTensors).toBe(before);
    });
  }
});
