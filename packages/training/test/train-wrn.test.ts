import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { buildModel } from '@wrn/architectures';
import { getLayerRandomState, seedLayerRandom } from '@wrn/blocks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../src/checkpoint';
import type { TrainingConfigInput } from '../src/config';
import { dropoutModelOptions } from '../src/dropout';
import { train } from '../src/train';
import { arraySource, weightValues } from './helpers';

let root: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'wrn-train-wrn-'));
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

const SHAPE = [4, 4, 3] as const;
const config: TrainingConfigInput = {
  model: 'wrn-10-1',
  epochs: 2,
  batchSize: 6,
  seed: 21,
  schedule: { kind: 'cosine', unit: 'iteration', lr: 0.05, length: 4, warmup: { length: 1, unit: 'iteration', startFactor: 0.5 } },
  dropout: { kind: 'stochastic-depth', dropPathRate: 0.5, dropRate: 0.3 },
};
// Dropout and drop-path on: an exact resume needs the layers' random stream restored from the checkpoint.
const model = (seed: number) =>
  buildModel('wrn-10-1', { numClasses: 3, inputShape: [...SHAPE], seed, ...dropoutModelOptions(config.dropout!) });
const trainSource = () => arraySource(12, 6, { shuffle: true, seed: 21, shape: SHAPE });
const testSource = () => arraySource(6, 6, { dataSeed: 5, shape: SHAPE });

describe('train with @wrn/architectures models', () => {
  it('resumes WRN-10-1 with dropout and drop-path exactly after an interrupt mid-epoch', async () => {
    const straight = model(1);
    await train({ model: straight, trainSource: trainSource(), testSource: testSource(), config, runDir: path.join(root, 'straight') });
    const streamAfter = getLayerRandomState();
    expect(streamAfter.seed).toBe(21);
    expect(streamAfter.counter).toBeGreaterThan(0);

    const runDir = path.join(root, 'resumed');
    const controller = new AbortController();
    const first = await train({
      model: model(1),
      trainSource: trainSource(),
      testSource: testSource(),
      config,
      runDir,
      signal: controller.signal,
      onProgress: (e) => {
        if (e.type === 'step' && e.step === 3) controller.abort();
      },
    });
    expect(first).toMatchObject({ status: 'interrupted', step: 3 });
    const saved = await loadCheckpoint(path.join(runDir, 'checkpoints', 'last'));
    expect(saved.state.randomState).toMatchObject({ seed: 21 });

    seedLayerRandom(999); // a new process would start from some other stream position
    const resumed = model(7);
    const second = await train({ model: resumed, trainSource: trainSource(), testSource: testSource(), config, runDir, resume: true });
    expect(second).toMatchObject({ status: 'completed', step: 4, epochsCompleted: 2 });
    expect(getLayerRandomState()).toEqual(streamAfter);
    const a = weightValues(straight);
    const b = weightValues(resumed);
    a.forEach((w, i) => w.forEach((v, j) => expect(Math.abs(v - b[i]![j]!)).toBeLessThan(1e-5)));
    straight.dispose();
    resumed.dispose();
  });
});
