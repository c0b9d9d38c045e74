import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../src/checkpoint';
import { CheckpointError } from '../src/checkpoint-manifest';
import { acquireRunLock, RunLockedError } from '../src/run-lock';
import type { TrainingConfigInput } from '../src/config';
import { train, TrainingDivergedError, type TrainEvent } from '../src/train';
import { arraySource, tinyModel, weightValues } from './helpers';

let root: string;
let count = 0;
const freshDir = () => path.join(root, `run-${count++}`);
beforeAll(async () => {
  await tf.setBackend('cpu');
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'wrn-integrity-'));
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

const config = (epochs: number): TrainingConfigInput => ({
  epochs,
  batchSize: 8,
  seed: 5,
  checkpointEvery: 1,
  schedule: { kind: 'multi-step', lr: 0.1, milestones: [2], gamma: 0.2 },
  optimizer: { momentum: 0.9, nesterov: true, weightDecay: 5e-4 },
});
const sources = () => ({ trainSource: arraySource(20, 8, { shuffle: true, seed: 5 }), testSource: arraySource(9, 4, { dataSeed: 11 }) });

const FILES = ['model.json', 'weights.bin', 'optimizer.json', 'optimizer.bin', 'state.json', 'manifest.json'] as const;
/** The four damages a disk, a copy or a person can do to a file. */
const DAMAGES: Record<string, (file: string) => Promise<void>> = {
  truncate: async (file) => {
    const data = await fs.readFile(file);
    await fs.writeFile(file, data.subarray(0, Math.floor(data.length / 2)));
  },
  flip: async (file) => {
    const data = await fs.readFile(file);
    const at = Math.floor(data.length * 0.37);
    data[at] = data[at]! ^ 0x10; // one bit
    await fs.writeFile(file, data);
  },
  delete: (file) => fs.rm(file),
  empty: (file) => fs.writeFile(file, ''),
};

describe('checkpoint integrity', () => {
  let pristine: string;
  beforeAll(async () => {
    pristine = freshDir();
    await train({ model: tinyModel(5), ...sources(), config: config(1), runDir: pristine });
  });

  for (const name of FILES) {
    for (const [damage, apply] of Object.entries(DAMAGES)) {
      it(`refuses a checkpoint whose ${name} was damaged (${damage}), naming the file`, async () => {
        const dir = path.join(freshDir(), 'last');
        await fs.cp(path.join(pristine, 'checkpoints', 'last'), dir, { recursive: true });
        await apply(path.join(dir, name));
        const error = (await loadCheckpoint(dir).catch((e: unknown) => e)) as CheckpointError;
        expect(error).toBeInstanceOf(CheckpointError);
        // A damaged manifest is reported as the manifest; any other file is named by its own path.
        expect(error.file).toBe(path.join(dir, name));
        expect(error.message).toContain(path.join(dir, name));
      });
    }
  }

  it('resumes from the newest checkpoint that passes when last fails its checksums, warning, and ends as a run never damaged', async () => {
    const straight = freshDir();
    const straightModel = tinyModel(5);
    await train({ model: straightModel, ...sources(), config: config(3), runDir: straight });

    const damaged = freshDir();
    // Two epochs, then one bit of last/optimizer.bin flipped: on disk its inode is shared with epoch-2 (hard links).
    await train({ model: tinyModel(5), ...sources(), config: config(2), runDir: damaged });
    await DAMAGES.flip!(path.join(damaged, 'checkpoints', 'last', 'optimizer.bin'));
    await fs.rm(path.join(damaged, 'summary.json'));
    const notices: string[] = [];
    const resumedModel = tinyModel(5);
    const result = await train({
      model: resumedModel,
      ...sources(),
      config: config(3),
      runDir: damaged,
      resume: true,
      onProgress: (e: TrainEvent) => e.type === 'notice' && e.level === 'warning' && notices.push(e.message),
    });
    expect(result).toMatchObject({ status: 'completed', epochsCompleted: 3, step: 9 });
    expect(notices).toEqual([
      `warning: ${path.join(damaged, 'checkpoints', 'last', 'optimizer.bin')} does not match its SHA-256 in ${path.join(damaged, 'checkpoints', 'last', 'manifest.json')}: the file is damaged; ` +
        `resuming from the newest checkpoint that passes its checks instead: ${path.join(damaged, 'checkpoints', 'epoch-1')} (epoch 1, step 3); the steps after it are trained again`,
    ]);
    expect(weightValues(resumedModel)).toEqual(weightValues(straightModel));
    for (const file of ['weights.bin', 'optimizer.bin']) {
      expect(await fs.readFile(path.join(damaged, 'checkpoints', 'last', file))).toEqual(await fs.readFile(path.join(straight, 'checkpoints', 'last', file)));
    }
    const epochs = (dir: string) =>
      fs.readFile(path.join(dir, 'metrics.jsonl'), 'utf8').then((t) => t.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { epoch: number; testLoss: number }).testLoss));
    expect(await epochs(damaged)).toEqual(await epochs(straight));
  });

  it('refuses to resume when no checkpoint passes, naming every failure', async () => {
    const dir = freshDir();
    await fs.cp(pristine, dir, { recursive: true });
    for (const name of ['last', 'best', 'epoch-1']) await fs.rm(path.join(dir, 'checkpoints', name, 'weights.bin'), { force: true });
    const error = (await train({ model: tinyModel(5), ...sources(), config: config(2), runDir: dir, resume: true }).catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(CheckpointError);
    expect(error.message).toContain('no checkpoint of the run passes its checks:');
    expect(error.message).toContain(`${path.join(dir, 'checkpoints', 'last', 'weights.bin')} is missing`);
    expect(error.message).toContain(`${path.join(dir, 'checkpoints', 'epoch-1', 'weights.bin')} is missing`);
    // Nothing was written: the refused resume left config.json and metrics.jsonl as they were.
    expect(await fs.readFile(path.join(dir, 'config.json'), 'utf8')).toBe(await fs.readFile(path.join(pristine, 'config.json'), 'utf8'));
    expect(await fs.readFile(path.join(dir, 'metrics.jsonl'), 'utf8')).toBe(await fs.readFile(path.join(pristine, 'metrics.jsonl'), 'utf8'));
  });

  it('a state.json with a bad epoch is refused naming the file, the key and the value', async () => {
    const dir = freshDir();
    await fs.cp(path.join(pristine, 'checkpoints', 'last'), dir, { recursive: true });
    const file = path.join(dir, 'state.json');
    for (const [epoch, problem] of [
      [-1, 'epoch: Too small: expected number to be >=0 (got -1)'],
      ['"x"', 'epoch: Invalid input: expected number, received string (got "x")'],
      [99, 'epoch: 99 epochs of 3 steps need more than 294 steps, globalStep is 3 (got 99)'],
    ] as const) {
      const text = (await fs.readFile(path.join(pristine, 'checkpoints', 'last', 'state.json'), 'utf8')).replace(/"epoch": 1,/, `"epoch": ${epoch},`);
      await fs.writeFile(file, text);
      await fs.rm(path.join(dir, 'manifest.json'), { force: true }); // without the manifest, the schema is the guard
      const state = JSON.parse(text) as { format: string };
      if (state.format !== 'wrn-checkpoint/1') {
        await fs.writeFile(file, text.replace('"wrn-checkpoint/2"', '"wrn-checkpoint/1"'));
      }
      const error = (await loadCheckpoint(dir).catch((e: unknown) => e)) as Error;
      expect(error).toBeInstanceOf(CheckpointError);
      expect(error.message).toBe(`${file}: ${problem}`);
    }
  });
});

describe('divergence found by evaluation', () => {
  it('a NaN test loss fails the run and is never saved as last or best', async () => {
    const dir = freshDir();
    const { trainSource } = sources();
    // NaN images in the test set's first batch of epoch 0: the model is fine, its evaluation is not finite.
    const testSource = arraySource(9, 4, { dataSeed: 11, poison: { epoch: 0, batch: 0 } });
    const error = (await train({ model: tinyModel(5), trainSource, testSource, config: config(2), runDir: dir }).catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(TrainingDivergedError);
    expect(error.message).toBe('training diverged: the test loss is NaN after epoch 1 (step 3); nothing of this epoch was saved; last good checkpoint: none (no checkpoint was written yet)');
    expect(await fs.readdir(path.join(dir, 'checkpoints')).catch(() => [])).toEqual([]);
    expect(await fs.readFile(path.join(dir, 'metrics.jsonl'), 'utf8')).toBe('');
  });
});

describe('train() and the run-directory lock', () => {
  it('takes the lock itself: a directory held by another writer is refused before anything is written, and released after', async () => {
    const dir = freshDir();
    const other = await acquireRunLock(dir, { command: 'another writer', heartbeatMs: 0 });
    try {
      const error = (await train({ model: tinyModel(5), ...sources(), config: config(1), runDir: dir }).catch((e: unknown) => e)) as Error;
      expect(error).toBeInstanceOf(RunLockedError);
      expect(error.message).toContain(`${dir} is in use by another writer: another writer (pid ${process.pid}`);
      expect((await fs.readdir(dir)).sort()).toEqual(['.lock']);
    } finally {
      await other.release();
    }
    await train({ model: tinyModel(5), ...sources(), config: config(1), runDir: dir });
    expect((await fs.readdir(dir)).includes('.lock')).toBe(false);
  });
});
