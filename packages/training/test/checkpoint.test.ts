import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CHECKPOINT_FORMAT,
  commitCheckpointDir,
  copyCheckpoint,
  loadCheckpoint,
  resolveCheckpointDir,
  restoreModelWeights,
  saveCheckpoint,
  type CheckpointState,
} from '../src/checkpoint';
import { SgdOptimizer } from '../src/sgd';
import { tinyModel, weightValues } from './helpers';

let root: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'wrn-ckpt-'));
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

const state = (epoch: number): CheckpointState => ({
  format: CHECKPOINT_FORMAT,
  epoch,
  iteration: 0,
  globalStep: epoch * 10,
  itersPerEpoch: 10,
  lr: 0.1,
  seed: 1,
  randomState: { seed: 1, counter: epoch * 4 },
  best: null,
  partialEpoch: null,
  reason: 'epoch',
  savedAt: '2026-01-01T00:00:00.000Z',
});

function setup(seed: number) {
  const model = tinyModel(seed);
  const optimizer = new SgdOptimizer(
    model.trainableWeights.map((w) => ({ variable: w.read() as tf.Variable, name: w.originalName, weightDecay: true })),
    { momentum: 0.9, nesterov: true, dampening: 0, weightDecay: 5e-4 },
  );
  // One step so the momentum buffers exist.
  const grads = model.trainableWeights.map((w) => tf.onesLike(w.read()));
  optimizer.step(grads, 0.1);
  tf.dispose(grads);
  return { model, optimizer };
}

async function listDir(dir: string): Promise<string[]> {
  return (await fs.readdir(dir)).sort();
}

describe('checkpoints', () => {
  it('round-trip weights (BN statistics included), momentum buffers and state', async () => {
    const { model, optimizer } = setup(1);
    const dir = path.join(root, 'roundtrip', 'last');
    await saveCheckpoint(dir, { model, optimizer, state: state(2) });
    expect(await listDir(dir)).toEqual(['manifest.json', 'model.json', 'optimizer.bin', 'optimizer.json', 'state.json', 'weights.bin']);
    const loaded = await loadCheckpoint(dir);
    expect(loaded.state).toEqual(state(2));

    const other = setup(2);
    expect(weightValues(other.model)).not.toEqual(weightValues(model));
    restoreModelWeights(other.model, loaded);
    other.optimizer.loadState(loaded.optimizer);
    expect(weightValues(other.model)).toEqual(weightValues(model));
    expect(other.optimizer.momentumBuffers.map((b) => Array.from(b!.dataSync()))).toEqual(
      optimizer.momentumBuffers.map((b) => Array.from(b!.dataSync())),
    );
    for (const s of [optimizer, other.optimizer]) s.dispose();
  });

  it('a write that fails half-way leaves the previous checkpoint whole and no staging behind', async () => {
    const dir = path.join(root, 'failing', 'last');
    const { model, optimizer } = setup(1);
    await saveCheckpoint(dir, { model, optimizer, state: state(1) });
    await expect(
      commitCheckpointDir(dir, async (staging) => {
        await fs.writeFile(path.join(staging, 'weights.bin'), new Uint8Array(16));
        throw new Error('disk full');
      }),
    ).rejects.toThrow('disk full');
    expect(await listDir(path.dirname(dir))).toEqual(['last']);
    expect((await loadCheckpoint(dir)).state.epoch).toBe(1);
    optimizer.dispose();
  });

  it('a kill at any stage of the swap leaves a whole checkpoint that is found and then replaced cleanly', async () => {
    const { model, optimizer } = setup(1);
    for (const stage of ['staged', 'moved-previous', 'swapped'] as const) {
      const dir = path.join(root, `kill-${stage}`, 'last');
      await saveCheckpoint(dir, { model, optimizer, state: state(1) });
      // Simulate the process dying at `stage`: the hook throws and nothing after it runs.
      await expect(
        saveCheckpoint(dir, { model, optimizer, state: state(2) }, (s) => {
          if (s === stage) throw new Error(`killed at ${s}`);
        }),
      ).rejects.toThrow(`killed at ${stage}`);
      const found = await resolveCheckpointDir(dir);
      const loaded = await loadCheckpoint(dir);
      if (stage === 'moved-previous') {
        // Between the two renames only the previous checkpoint exists, under last.prev.
        expect(found).toBe(`${dir}.prev`);
        expect(loaded.state.epoch).toBe(1);
      } else {
        expect(found).toBe(dir);
        expect(loaded.state.epoch).toBe(stage === 'staged' ? 1 : 2);
      }
      restoreModelWeights(tinyModel(3), loaded);
      // The next save cleans up (stale staging, .prev) and lands normally.
      await saveCheckpoint(dir, { model, optimizer, state: state(3) });
      expect(await listDir(path.dirname(dir))).toEqual(['last']);
      expect((await loadCheckpoint(dir)).state.epoch).toBe(3);
    }
    optimizer.dispose();
  });

  it('named copies are independent of later writes to last', async () => {
    const { model, optimizer } = setup(1);
    const dir = path.join(root, 'copies');
    await saveCheckpoint(path.join(dir, 'last'), { model, optimizer, state: state(1) });
    await copyCheckpoint(path.join(dir, 'last'), path.join(dir, 'best'));
    await saveCheckpoint(path.join(dir, 'last'), { model, optimizer, state: state(2) });
    expect((await loadCheckpoint(path.join(dir, 'best'))).state.epoch).toBe(1);
    expect((await loadCheckpoint(path.join(dir, 'last'))).state.epoch).toBe(2);
    optimizer.dispose();
  });

  it('refuses weights that do not fit the model, naming the weight and shapes', async () => {
    const { model, optimizer } = setup(1);
    const dir = path.join(root, 'mismatch', 'last');
    await saveCheckpoint(dir, { model, optimizer, state: state(1) });
    const loaded = await loadCheckpoint(dir);
    const spec = loaded.weightSpecs[0]!;
    spec.shape = [3, 3, 2, 5];
    expect(() => restoreModelWeights(tinyModel(2), loaded)).toThrow(
      `${dir}/model.json: weight 0 (${spec.name}) has shape [3,3,2,5], the model's`,
    );
    await expect(loadCheckpoint(path.join(root, 'nothing-here'))).rejects.toThrow('no complete checkpoint at');
    optimizer.dispose();
  });
});
