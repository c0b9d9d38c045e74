// The training loop on webgpu (Dawn; SwiftShader on CI): the same metrics as the cpu backend, the same numbers after
// an interruption and resume, and no growth of tensors or GPU buffers from one epoch to the next.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { buildModel } from '@wrn/architectures';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webgpuBufferCounts } from '@wrn/backend';
import { selectBackend } from '@wrn/backend/node';
import type { TrainingConfigInput } from '../src/config';
import { train, type EpochMetrics, type TrainEvent } from '../src/train';
import { arraySource } from './helpers';
import { webgpuUnavailable } from './webgpu-support';

const SHAPE = [4, 4, 3] as const;
const config: TrainingConfigInput = {
  epochs: 3,
  batchSize: 4,
  seed: 4,
  schedule: { kind: 'multi-step', lr: 0.05, milestones: [2], gamma: 0.2 },
  logEverySteps: 1,
};

let root: string;

async function run(backend: 'cpu' | 'webgpu', name: string, options: { abortAtStep?: number; resume?: boolean } = {}) {
  expect(await tf.setBackend(backend)).toBe(true);
  const runDir = path.join(root, name);
  const model = buildModel('wrn-10-1', { numClasses: 3, inputShape: [...SHAPE], seed: 2, dropRate: 0.3 });
  const perEpoch: { numTensors: number; buffers: ReturnType<typeof webgpuBufferCounts> }[] = [];
  const steps: number[] = [];
  const controller = new AbortController();
  const result = await train({
    model,
    trainSource: arraySource(12, 4, { shuffle: true, seed: 4, shape: SHAPE }),
    testSource: arraySource(6, 6, { dataSeed: 5, shape: SHAPE }),
    config,
    runDir,
    resume: options.resume ?? false,
    signal: controller.signal,
    onProgress: (event: TrainEvent) => {
      if (event.type === 'step') {
        steps.push(event.step);
        if (event.step === options.abortAtStep) controller.abort();
      }
      if (event.type === 'epoch') perEpoch.push({ numTensors: tf.memory().numTensors, buffers: webgpuBufferCounts() });
    },
  });
  model.dispose();
  const metrics = (await fs.readFile(path.join(runDir, 'metrics.jsonl'), 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as EpochMetrics | { type: 'step'; step: number; loss: number });
  return { result, metrics, perEpoch, steps };
}

describe.skipIf(webgpuUnavailable !== undefined)('train on the webgpu backend', () => {
  beforeAll(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'wrn-train-webgpu-'));
    expect((await selectBackend('webgpu')).name).toBe('webgpu');
  }, 120_000);
  afterAll(async () => {
    await fs.rm(root, { recursive: true, force: true });
    await tf.setBackend('cpu');
  });

  it('agrees with the cpu backend step by step and epoch by epoch, and holds no more tensors or GPU buffers each epoch', async () => {
    const cpu = await run('cpu', 'cpu');
    const gpu = await run('webgpu', 'webgpu');
    expect(tf.getBackend()).toBe('webgpu');
    // Every step's event arrives once, in order, though webgpu reads each step's loss one step late.
    expect(gpu.steps).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(gpu.metrics.map((m) => m.type)).toEqual(cpu.metrics.map((m) => m.type));
    gpu.metrics.forEach((g, i) => {
      const c = cpu.metrics[i]!;
      if (g.type === 'step' && c.type === 'step') {
        expect(g.step).toBe(c.step);
        expect(Math.abs(g.loss - c.loss)).toBeLessThan(1e-4);
      } else if (g.type === 'epoch' && c.type === 'epoch') {
        for (const key of ['trainLoss', 'trainAcc', 'testLoss', 'testTop1Error', 'testTop5Error'] as const) {
          expect(Math.abs(g[key] - c[key]), `epoch ${g.epoch} ${key}`).toBeLessThan(1e-4);
        }
      }
    });
    // Epoch 1 fills tfjs-backend-webgpu's buffer pool; after it, nothing grows.
    expect(gpu.perEpoch).toHaveLength(3);
    const [, second, third] = gpu.perEpoch;
    expect(second!.buffers!.used).toBeGreaterThan(0);
    expect(third!.numTensors).toBe(second!.numTensors);
    expect(third!.buffers!.used).toBe(second!.buffers!.used);
    expect(third!.buffers!.used + third!.buffers!.free).toBe(second!.buffers!.used + second!.buffers!.free);
    expect(third!.buffers!.bytesAllocated).toBe(second!.buffers!.bytesAllocated);
  }, 300_000);

  it('an interrupted run resumes to the same numbers as an uninterrupted one', async () => {
    const whole = await run('webgpu', 'whole');
    const first = await run('webgpu', 'resumed', { abortAtStep: 4 });
    expect(first.result.status).toBe('interrupted');
    // The abort came from step 4's event (epoch 2 of 3 steps each); webgpu had step 5 queued by then, and finishes it before saving.
    expect(first.result.step).toBe(5);
    const second = await run('webgpu', 'resumed', { resume: true });
    expect(second.result.status).toBe('completed');
    const epochs = (m: typeof whole.metrics) => m.filter((x): x is EpochMetrics => x.type === 'epoch');
    const a = epochs(whole.metrics);
    const b = epochs(second.metrics);
    expect(b.map((m) => m.epoch)).toEqual([1, 2, 3]);
    b.forEach((m, i) => {
      expect(Math.abs(m.trainLoss - a[i]!.trainLoss)).toBeLessThan(1e-5);
      expect(Math.abs(m.testLoss - a[i]!.testLoss)).toBeLessThan(1e-5);
    });
  }, 300_000);
});
