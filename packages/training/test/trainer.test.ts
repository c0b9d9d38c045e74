import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TrainingConfigInput } from '../src/config';
import { iterateBatches } from '../src/data';
import { train, type TrainEvent } from '../src/train';
import { Trainer } from '../src/trainer';
import { arraySource, tinyModel, weightValues } from './helpers';

let root: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'wrn-trainer-'));
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

const config: TrainingConfigInput = {
  epochs: 2,
  batchSize: 8,
  seed: 3,
  schedule: { kind: 'multi-step', lr: 0.1, milestones: [1], gamma: 0.2 },
  optimizer: { momentum: 0.9, nesterov: true, weightDecay: 5e-4, decayBatchNorm: false },
};
// 20 examples in batches of 8: 3 iterations per epoch, the last one short.
const source = () => arraySource(20, 8, { shuffle: true, seed: 3 });

async function trainerSteps(trainer: Trainer, epochs: number, from = { epoch: 0, iteration: 0 }) {
  const losses: number[] = [];
  const src = source();
  for (let epoch = from.epoch; epoch < epochs; epoch++) {
    let iteration = 0;
    for await (const { xs, ys } of iterateBatches(src, epoch, 'test')) {
      if (epoch === from.epoch && iteration++ < from.iteration) {
        tf.dispose([xs, ys]);
        continue;
      }
      losses.push((await trainer.step(xs, ys)).loss);
      tf.dispose([xs, ys]);
    }
  }
  return losses;
}

describe('Trainer', () => {
  it("takes the same steps as train(): equal losses, learning rates and final weights", async () => {
    const events: TrainEvent[] = [];
    const reference = tinyModel();
    await train({ model: reference, trainSource: source(), testSource: arraySource(9, 4, { dataSeed: 11 }), config, runDir: path.join(root, 'ref'), onProgress: (e) => events.push(e) });
    const steps = events.filter((e) => e.type === 'step');

    const model = tinyModel();
    const trainer = new Trainer(model, { config, itersPerEpoch: 3 });
    const lrs: number[] = [];
    const losses: number[] = [];
    const src = source();
    for (let epoch = 0; epoch < 2; epoch++) {
      for await (const { xs, ys } of iterateBatches(src, epoch, 'test')) {
        const result = await trainer.step(xs, ys);
        tf.dispose([xs, ys]);
        losses.push(result.loss);
        lrs.push(result.lr);
      }
    }
    expect(steps.map((s) => s.loss)).toEqual(losses);
    expect(steps.map((s) => s.lr)).toEqual(lrs);
    expect(lrs).toEqual([0.1, 0.1, 0.1, 0.1 * 0.2, 0.1 * 0.2, 0.1 * 0.2]);
    expect(trainer.position).toEqual({ epoch: 2, iteration: 0, globalStep: 6 });
    expect(weightValues(model)).toEqual(weightValues(reference));
    trainer.dispose();
  });

  it('resumes exactly from saveState + the model weights, mid-epoch', async () => {
    const whole = tinyModel();
    const wholeTrainer = new Trainer(whole, { config, itersPerEpoch: 3 });
    const wholeLosses = await trainerSteps(wholeTrainer, 2);

    const first = tinyModel();
    const firstTrainer = new Trainer(first, { config, itersPerEpoch: 3 });
    const src = source();
    const firstLosses: number[] = [];
    for await (const { xs, ys } of iterateBatches(src, 0, 'test')) {
      if (firstLosses.length < 2) firstLosses.push((await firstTrainer.step(xs, ys)).loss);
      tf.dispose([xs, ys]);
    }
    const state = JSON.parse(JSON.stringify({ ...(await firstTrainer.saveState()), optimizer: null }));
    const optimizer = await firstTrainer.saveState().then((s) => s.optimizer);
    const weights = first.getWeights().map((w) => w.clone());
    firstTrainer.dispose();

    const second = tinyModel(9); // different initial weights, all overwritten below
    second.setWeights(weights);
    tf.dispose(weights);
    const secondTrainer = new Trainer(second, { config, itersPerEpoch: 3 });
    secondTrainer.loadState({ ...state, optimizer });
    expect(secondTrainer.position).toEqual({ epoch: 0, iteration: 2, globalStep: 2 });
    const rest = await trainerSteps(secondTrainer, 2, { epoch: 0, iteration: 2 });
    expect([...firstLosses, ...rest]).toEqual(wholeLosses);
    expect(weightValues(second)).toEqual(weightValues(whole));
    wholeTrainer.dispose();
    secondTrainer.dispose();
  });

  it('refuses a state of another shape, naming what differs', async () => {
    const trainer = new Trainer(tinyModel(), { config, itersPerEpoch: 3 });
    const state = await trainer.saveState();
    expect(() => new Trainer(tinyModel(), { config, itersPerEpoch: 4 }).loadState(state, 'indexeddb run')).toThrow(
      'indexeddb run: itersPerEpoch is 3, this trainer has 4',
    );
    expect(() => trainer.loadState({ ...state, format: 'x' } as never)).toThrow('trainer state: format is "x", expected "wrn-trainer/1"');
    trainer.dispose();
  });

  it('leaks no tensors across steps', async () => {
    const trainer = new Trainer(tinyModel(), { config, itersPerEpoch: 3 });
    await trainerSteps(trainer, 1);
    const before = tf.memory().numTensors;
    await trainerSteps(trainer, 2, { epoch: 1, iteration: 0 });
    expect(tf.memory().numTensors).toBe(before);
    trainer.dispose();
  });
});
