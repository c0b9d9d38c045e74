import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { buildModel } from '@wrn/architectures';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerWasmTrainingKernels } from '@wrn/backend';
import type { TrainingConfigInput } from '../src/config';
import { train, type EpochMetrics } from '../src/train';
import { arraySource } from './helpers';

let root: string;
beforeAll(async () => {
  registerWasmTrainingKernels();
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'wrn-train-wasm-'));
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
  await tf.setBackend('cpu');
});

const SHAPE = [4, 4, 3] as const;
const config: TrainingConfigInput = {
  epochs: 2,
  batchSize: 6,
  seed: 4,
  schedule: { kind: 'multi-step', lr: 0.05, milestones: [1], gamma: 0.2 },
};

async function run(backend: 'cpu' | 'wasm'): Promise<EpochMetrics[]> {
  await tf.setBackend(backend);
  const runDir = path.join(root, backend);
  const model = buildModel('wrn-10-1', { numClasses: 3, inputShape: [...SHAPE], seed: 2 });
  await train({
    model,
    trainSource: arraySource(12, 6, { shuffle: true, seed: 4, shape: SHAPE }),
    testSource: arraySource(6, 6, { dataSeed: 5, shape: SHAPE }),
    config,
    runDir,
  });
  model.dispose();
  return (await fs.readFile(path.join(runDir, 'metrics.jsonl'), 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as EpochMetrics);
}

describe('train on the wasm backend', () => {
  it('runs every op of the loop (step, evaluation, confusion matrix) and agrees with the cpu backend', async () => {
    const cpu = await run('cpu');
    const wasm = await run('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(wasm).toHaveLength(2);
    wasm.forEach((w, i) => {
      const c = cpu[i]!;
      for (const key of ['trainLoss', 'trainAcc', 'testLoss', 'testTop1Error'] as const) {
        expect(Math.abs(w[key] - c[key])).toBeLessThan(1e-4);
      }
    });
    const summary = JSON.parse(await fs.readFile(path.join(root, 'wasm', 'summary.json'), 'utf8'));
    expect((summary.confusionMatrix as number[][]).flat().reduce((a, b) => a + b, 0)).toBe(6);
  });
});
