import { promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../src/checkpoint';
import type { TrainingConfigInput } from '../src/config';
import { train, TrainingDivergedError, type EpochMetrics, type TrainEvent } from '../src/train';
import { arraySource, tinyModel, weightValues } from './helpers';

let root: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'wrn-train-'));
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

const config = (epochs: number, extra: Partial<TrainingConfigInput> = {}): TrainingConfigInput => ({
  epochs,
  batchSize: 8,
  seed: 3,
  schedule: { kind: 'multi-step', lr: 0.1, milestones: [1, 2], gamma: 0.2 },
  optimizer: { momentum: 0.9, nesterov: true, weightDecay: 5e-4 },
  ...extra,
});
// 20 examples in batches of 8: 3 iterations per epoch, the last one short.
const trainSource = () => arraySource(20, 8, { shuffle: true, seed: 3 });
const testSource = () => arraySource(9, 4, { dataSeed: 11 });

async function readLines(file: string): Promise<Record<string, unknown>[]> {
  return (await fs.readFile(file, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

function expectSameWeights(a: number[][], b: number[][]): void {
  expect(a.length).toBe(b.length);
  a.forEach((w, i) => w.forEach((v, j) => expect(Math.abs(v - b[i]![j]!)).toBeLessThan(1e-6)));
}

describe('train', () => {
  it('writes config.json first, metrics.jsonl, checkpoints and summary.json', async () => {
    const runDir = path.join(root, 'full');
    const model = tinyModel();
    const events: TrainEvent[] = [];
    let configAtStart: unknown = null;
    const result = await train({
      model,
      trainSource: trainSource(),
      testSource: testSource(),
      config: config(3, { checkpointEvery: 2, logEverySteps: 2, context: { dataset: 'synthetic' } }),
      runDir,
      onProgress: (e) => {
        events.push(e);
        if (e.type === 'start') configAtStart = JSON.parse(readFileSync(path.join(runDir, 'config.json'), 'utf8'));
      },
    });
    expect(result).toMatchObject({ status: 'completed', epochsCompleted: 3, step: 9, lastCheckpoint: path.join(runDir, 'checkpoints', 'last') });
    expect(configAtStart).toMatchObject({ epochs: 3, batchSize: 8, seed: 3, context: { dataset: 'synthetic' }, dropout: { kind: 'none' } });

    const lines = await readLines(path.join(runDir, 'metrics.jsonl'));
    const epochs = lines.filter((l) => l.type === 'epoch') as unknown as EpochMetrics[];
    expect(epochs.map((e) => e.epoch)).toEqual([1, 2, 3]);
    expect(epochs.map((e) => e.step)).toEqual([3, 6, 9]);
    expect(epochs.map((e) => e.lr)).toEqual([0.1, expect.closeTo(0.02, 12), expect.closeTo(0.004, 12)]);
    for (const e of epochs) {
      for (const key of ['trainLoss', 'trainAcc', 'testLoss', 'testTop1Error', 'testTop5Error', 'imagesPerSec', 'seconds']) {
        expect(Number.isFinite(e[key as keyof EpochMetrics])).toBe(true);
      }
      expect(e.testTop5Error).toBe(0); // 3 classes: the true class is always in the top 5
      expect(e.testPerClassAccuracy).toHaveLength(3);
    }
    expect(epochs[2]!.trainLoss).toBeLessThan(epochs[0]!.trainLoss);
    expect(lines.filter((l) => l.type === 'step').map((l) => l.step)).toEqual([2, 4, 6, 8]);

    const ckpt = path.join(runDir, 'checkpoints');
    expect((await fs.readdir(ckpt)).sort()).toEqual(['best', 'epoch-2', 'last']);
    // The run's final checkpoint carries its summary (the journal a kill before summary.json is repaired from).
    expect((await fs.readdir(path.join(ckpt, 'last'))).sort()).toEqual(['manifest.json', 'model.json', 'optimizer.bin', 'optimizer.json', 'state.json', 'summary.json', 'weights.bin']);
    expect(await fs.readFile(path.join(ckpt, 'last', 'summary.json'), 'utf8')).toBe(await fs.readFile(path.join(runDir, 'summary.json'), 'utf8'));
    const last = await loadCheckpoint(path.join(ckpt, 'last'));
    expect(last.state).toMatchObject({ epoch: 3, iteration: 0, globalStep: 9, itersPerEpoch: 3, seed: 3, reason: 'epoch' });
    expect((await loadCheckpoint(path.join(ckpt, 'epoch-2'))).state).toMatchObject({ epoch: 2, globalStep: 6 });
    const bestEpoch = epochs.reduce((b, e) => (e.testTop1Error < b.testTop1Error ? e : b));
    expect((await loadCheckpoint(path.join(ckpt, 'best'))).state.epoch).toBe(bestEpoch.epoch);
    expect(last.optimizer.meta.steps).toBe(9);
    // 4 BN weights (gamma, beta, moving mean, variance) + conv kernel + dense kernel and bias
    expect(last.weightSpecs).toHaveLength(7);

    const summary = JSON.parse(await fs.readFile(path.join(runDir, 'summary.json'), 'utf8'));
    expect(summary.status).toBe('completed');
    expect(summary.final.testTop1Error).toBe(epochs[2]!.testTop1Error);
    expect(summary.classNames).toEqual(['a', 'b', 'c']);
    const matrix = summary.confusionMatrix as number[][];
    expect(matrix.map((r) => r.reduce((a, b) => a + b, 0))).toEqual([3, 3, 3]);
    const correct = matrix.reduce((s, r, i) => s + r[i]!, 0);
    expect(summary.final.testTop1Error).toBeCloseTo(1 - correct / 9, 10);
    expect(summary.perClassAccuracy).toEqual(matrix.map((r, i) => r[i]! / 3));

    // BN ran in training mode during the steps: its moving mean left its initial zeros.
    const movingMean = model.getWeights()[3]!;
    expect(Array.from(movingMean.dataSync()).some((v) => v !== 0)).toBe(true);
    expect(events.filter((e) => e.type === 'step')).toHaveLength(9);
    expect(events.find((e) => e.type === 'step')).toMatchObject({ epoch: 1, iteration: 1, step: 1, itersPerEpoch: 3, totalEpochs: 3, batchSize: 8 });
  });

  it('refuses to start a fresh run over an existing one', async () => {
    await expect(
      train({ model: tinyModel(), trainSource: trainSource(), testSource: testSource(), config: config(1), runDir: path.join(root, 'full') }),
    ).rejects.toThrow(`already holds a run (${path.join(root, 'full', 'checkpoints', 'last')})`);
  });

  it('is exact on resume: 2 epochs straight == 1 epoch + resume + 1 epoch == interrupted mid-epoch + resume', async () => {
    const straight = tinyModel();
    await train({ model: straight, trainSource: trainSource(), testSource: testSource(), config: config(2), runDir: path.join(root, 'straight') });

    const split = path.join(root, 'split');
    await train({ model: tinyModel(), trainSource: trainSource(), testSource: testSource(), config: config(1), runDir: split });
    const resumed = tinyModel(99); // different initial weights: everything must come from the checkpoint
    const r2 = await train({ model: resumed, trainSource: trainSource(), testSource: testSource(), config: config(2), runDir: split, resume: true });
    expect(r2).toMatchObject({ status: 'completed', epochsCompleted: 2, step: 6 });
    expectSameWeights(weightValues(resumed), weightValues(straight));

    // Interrupt after step 4 (epoch 2, iteration 1), as SIGINT would through the AbortSignal.
    const interruptedDir = path.join(root, 'interrupted');
    const controller = new AbortController();
    const r1 = await train({
      model: tinyModel(),
      trainSource: trainSource(),
      testSource: testSource(),
      config: config(2),
      runDir: interruptedDir,
      signal: controller.signal,
      onProgress: (e) => {
        if (e.type === 'step' && e.step === 4) controller.abort();
      },
    });
    expect(r1.status).toBe('interrupted');
    expect(r1).toMatchObject({ epochsCompleted: 1, step: 4, lastCheckpoint: path.join(interruptedDir, 'checkpoints', 'last') });
    expect(r1.message).toContain('interrupted at step 4 (epoch 2, iteration 1 of 3)');
    expect(r1.message).toContain(`resume the run in ${interruptedDir}`);
    const mid = await loadCheckpoint(path.join(interruptedDir, 'checkpoints', 'last'));
    expect(mid.state).toMatchObject({ epoch: 1, iteration: 1, globalStep: 4, reason: 'interrupted' });
    expect(mid.state.partialEpoch).toMatchObject({ seen: 8 });

    const again = tinyModel(5);
    const r3 = await train({ model: again, trainSource: trainSource(), testSource: testSource(), config: config(2), runDir: interruptedDir, resume: true });
    expect(r3).toMatchObject({ status: 'completed', step: 6 });
    expectSameWeights(weightValues(again), weightValues(straight));

    // The resumed runs' metrics equal the straight run's, line for line (timings aside).
    const strip = (l: Record<string, unknown>) => ({ ...l, imagesPerSec: 0, seconds: 0, evalSeconds: 0 });
    const reference = (await readLines(path.join(root, 'straight', 'metrics.jsonl'))).map(strip);
    expect((await readLines(path.join(split, 'metrics.jsonl'))).map(strip)).toEqual(reference);
    expect((await readLines(path.join(interruptedDir, 'metrics.jsonl'))).map(strip)).toEqual(reference);
  });

  it('is exact on resume when interrupted after the last step of an epoch, before its evaluation', async () => {
    const straight = tinyModel();
    await train({ model: straight, trainSource: trainSource(), testSource: testSource(), config: config(2), runDir: path.join(root, 'straight-end') });
    const runDir = path.join(root, 'interrupted-at-epoch-end');
    const controller = new AbortController();
    const r1 = await train({
      model: tinyModel(),
      trainSource: trainSource(),
      testSource: testSource(),
      config: config(2),
      runDir,
      signal: controller.signal,
      onProgress: (e) => {
        if (e.type === 'step' && e.step === 3) controller.abort();
      },
    });
    expect(r1.message).toContain('interrupted at step 3 (epoch 1, iteration 3 of 3)');
    const last = await loadCheckpoint(path.join(runDir, 'checkpoints', 'last'));
    expect(last.state).toMatchObject({ epoch: 0, iteration: 3, globalStep: 3, reason: 'interrupted' });
    const resumed = tinyModel(7);
    const r2 = await train({ model: resumed, trainSource: trainSource(), testSource: testSource(), config: config(2), runDir, resume: true });
    expect(r2).toMatchObject({ status: 'completed', epochsCompleted: 2, step: 6 });
    expectSameWeights(weightValues(resumed), weightValues(straight));
    const strip = (l: Record<string, unknown>) => ({ ...l, imagesPerSec: 0, seconds: 0, evalSeconds: 0 });
    expect((await readLines(path.join(runDir, 'metrics.jsonl'))).map(strip)).toEqual((await readLines(path.join(root, 'straight-end', 'metrics.jsonl'))).map(strip));
  });

  it('an already aborted signal returns at once, with nothing to resume', async () => {
    const controller = new AbortController();
    controller.abort();
    const runDir = path.join(root, 'pre-aborted');
    const result = await train({ model: tinyModel(), trainSource: trainSource(), testSource: testSource(), config: config(2), runDir, signal: controller.signal });
    expect(result).toMatchObject({ status: 'interrupted', epochsCompleted: 0, step: 0, lastCheckpoint: null });
    expect(result.message).toBe(`interrupted before epoch 1; no checkpoint was written, so there is nothing to resume in ${runDir}`);
  });

  it('refuses a resume whose schedule differs from the run it continues', async () => {
    await expect(
      train({
        model: tinyModel(),
        trainSource: trainSource(),
        testSource: testSource(),
        config: config(3, { schedule: { kind: 'constant', lr: 0.1 } }),
        runDir: path.join(root, 'split'),
        resume: true,
      }),
    ).rejects.toThrow('resume: schedule is {"kind":"constant","lr":0.1,"unit":"epoch"}, but the run in');
  });

  it('reproduces the same metrics from the same seed', async () => {
    const run = async (name: string) => {
      await train({ model: tinyModel(), trainSource: trainSource(), testSource: testSource(), config: config(2), runDir: path.join(root, name) });
      return (await readLines(path.join(root, name, 'metrics.jsonl'))).map((l) => [l.trainLoss, l.trainAcc, l.testLoss, l.testTop1Error]);
    };
    expect(await run('seeded-a')).toEqual(await run('seeded-b'));
  });

  it('stops on a NaN loss naming the step and the last good checkpoint', async () => {
    const runDir = path.join(root, 'nan');
    const error = await train({
      model: tinyModel(),
      trainSource: arraySource(20, 8, { shuffle: true, seed: 3, poison: { epoch: 1, batch: 1 } }),
      testSource: testSource(),
      config: config(3),
      runDir,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TrainingDivergedError);
    const last = path.join(runDir, 'checkpoints', 'last');
    expect((error as Error).message).toBe(
      `training diverged: loss is NaN at step 5 (epoch 2, iteration 2 of 3); last good checkpoint: ${last} (epoch 1, step 3)`,
    );
    expect(error).toMatchObject({ step: 5, epoch: 2, iteration: 2, lastCheckpoint: last });
    expect((await loadCheckpoint(last)).state.globalStep).toBe(3);
  });

  it('keeps tf.memory().numTensors the same at the end of every epoch', async () => {
    const counts: number[] = [];
    const model = tinyModel();
    const before = tf.memory().numTensors;
    await train({
      model,
      trainSource: trainSource(),
      testSource: testSource(),
      config: config(3, { logEverySteps: 1 }),
      runDir: path.join(root, 'memory'),
      onProgress: (e) => {
        if (e.type === 'epoch') counts.push(tf.memory().numTensors);
      },
    });
    expect(counts).toHaveLength(3);
    expect(new Set(counts).size).toBe(1);
    // After the run the optimiser's buffers and scalars are gone too.
    expect(tf.memory().numTensors).toBe(before);
  });

  it('trains a model with a softmax output on the probabilities', async () => {
    const result = await train({
      model: tinyModel(1, { softmax: true }),
      trainSource: trainSource(),
      testSource: testSource(),
      config: config(2),
      runDir: path.join(root, 'softmax'),
    });
    expect(result.final!.trainLoss).toBeLessThan(Math.log(3) + 0.5);
    expect(Number.isFinite(result.final!.testLoss)).toBe(true);
  });
});
