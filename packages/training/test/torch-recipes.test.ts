import '@tensorflow/tfjs-backend-cpu';
import { spawn, spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveTrainingConfig } from '../src/presets';
import { formatSchedule, learningRateAt, resetsMomentumAt, type LrSchedule } from '../src/schedule';
import { SgdOptimizer } from '../src/sgd';

/**
 * The oracle is PyTorch and the official scripts' own arithmetic (tools/torch-reference/schedules.py): each preset's
 * learning rate epoch by epoch (iteration by iteration for the iteration recipes) at its paper's length and scaled
 * by --epochs, and SgdOptimizer's updates against torch.optim.SGD, a new optimiser standing for a momentum reset.
 */
const PYTHON = '/usr/bin/python3';
const here = dirname(fileURLToPath(import.meta.url));
const SCRIPT = resolve(here, '../../../tools/torch-reference/schedules.py');

const torchMissing = spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status !== 0;
if (torchMissing) {
  if (process.env['CI']) throw new Error(`torch-recipes: ${PYTHON} cannot import torch (apt-get install python3-torch)`);
  console.warn(`skipping the PyTorch recipe oracle: ${PYTHON} cannot import torch (python3-torch)`);
}

interface SgdSpec {
  params: number[][];
  grads: number[][][];
  lr: number[];
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  resetAt: number[];
}
interface Answer {
  epochs: Record<string, Record<string, number[]>>;
  iterations: Record<string, Record<string, number>>;
  sgd: number[][][][];
}

const EPOCH_RUNS: Record<string, number[]> = { 'wrn-cifar': [200, 10, 50], 'wrn-svhn': [160, 10], 'resnext-cifar': [300, 10, 100] };
const ITERATIONS = [0, 1, 398, 399, 400, 401, 31999, 32000, 32001, 47999, 48000, 48001, 63999];

function sgdSpecs(): SgdSpec[] {
  let state = 7;
  const random = () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return (state / 2 ** 32) * 2 - 1;
  };
  const shapes = [4, 3];
  const make = (nesterov: boolean, dampening: number, resetAt: number[]): SgdSpec => ({
    params: shapes.map((n) => Array.from({ length: n }, random)),
    grads: Array.from({ length: 6 }, () => shapes.map((n) => Array.from({ length: n }, random))),
    lr: [0.1, 0.1, 0.1, 0.02, 0.02, 0.004],
    momentum: 0.9, dampening, weightDecay: 5e-4, nesterov, resetAt,
  });
  return [make(true, 0, [3, 5]), make(false, 0, []), make(false, 0.3, [3])];
}

let answer: Answer;

function ask(request: unknown): Promise<Answer> {
  return new Promise((done, fail) => {
    const child = spawn(PYTHON, [SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    child.on('error', fail);
    child.on('close', (code) => (code === 0 ? done(JSON.parse(stdout) as Answer) : fail(new Error(`${SCRIPT} exited ${String(code)}:\n${stderr}`))));
    child.stdin.end(JSON.stringify(request));
  });
}

function closeTo(a: number, b: number): boolean {
  return Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(b));
}

describe.skipIf(torchMissing)('the papers\' recipes equal their official scripts epoch by epoch (PyTorch oracle)', () => {
  beforeAll(async () => {
    answer = await ask({ epochs: EPOCH_RUNS, iterations: { 'resnet-cifar': ITERATIONS, 'preact-cifar': ITERATIONS }, sgd: sgdSpecs() });
  });

  for (const [preset, lengths] of Object.entries(EPOCH_RUNS)) {
    for (const epochs of lengths) {
      it(`${preset} with ${epochs} epochs: every epoch's lr`, () => {
        const config = resolveTrainingConfig({ preset, epochs });
        const official = answer.epochs[preset]?.[String(epochs)] ?? [];
        expect(official).toHaveLength(epochs);
        const ours = Array.from({ length: epochs }, (_, epoch) => learningRateAt(config.schedule, { epoch, iteration: 0, itersPerEpoch: 391 }));
        const wrong = ours.map((lr, e) => [e, lr, official[e] as number] as const).filter(([, a, b]) => !closeTo(a, b));
        expect(wrong).toEqual([]);
        // constant within an epoch
        expect(learningRateAt(config.schedule, { epoch: epochs - 1, iteration: 390, itersPerEpoch: 391 })).toBe(ours[epochs - 1]);
      });
    }
  }

  for (const preset of ['resnet-cifar', 'preact-cifar']) {
    it(`${preset}: the lr at iterations around the warm-up and the drops of its 64k iterations`, () => {
      const config = resolveTrainingConfig({ preset });
      expect(config.maxSteps).toBe(64000);
      for (const iteration of ITERATIONS) {
        const ours = learningRateAt(config.schedule, { epoch: Math.floor(iteration / 391), iteration: iteration % 391, itersPerEpoch: 391 });
        expect([iteration, ours]).toEqual([iteration, expect.closeTo(answer.iterations[preset]?.[String(iteration)] as number, 12)]);
      }
    });
  }

  it('SgdOptimizer equals torch.optim.SGD step by step (Nesterov, dampening, weight decay, momentum resets)', async () => {
    await tf.setBackend('cpu');
    const specs = sgdSpecs();
    for (const [k, spec] of specs.entries()) {
      const before = tf.memory().numTensors;
      const variables = spec.params.map((p) => tf.tidy(() => tf.variable(tf.tensor1d(p))));
      const optimizer = new SgdOptimizer(
        variables.map((variable, i) => ({ variable, name: `p${i}`, weightDecay: true })),
        { momentum: spec.momentum, nesterov: spec.nesterov, dampening: spec.dampening, weightDecay: spec.weightDecay },
      );
      spec.grads.forEach((grads, step) => {
        if (spec.resetAt.includes(step)) optimizer.resetMomentum();
        const g = grads.map((values) => tf.tensor1d(values));
        optimizer.step(g, spec.lr[step] as number);
        tf.dispose(g);
        const reference = answer.sgd[k]?.[step] ?? [];
        variables.forEach((v, i) => {
          const ours = Array.from(v.dataSync());
          (reference[i] ?? []).forEach((value, j) => expect(Math.abs((ours[j] as number) - value)).toBeLessThan(1e-6 * Math.max(1, Math.abs(value))));
        });
      });
      optimizer.dispose();
      tf.dispose(variables);
      expect(tf.memory().numTensors).toBe(before);
    }
  });
});

describe('milestone fractions, momentum resets and the constant warm-up', () => {
  it('print the milestones a run length resolves to, and --epochs scales them', () => {
    const milestones = (input: Parameters<typeof resolveTrainingConfig>[0]) => {
      const s = resolveTrainingConfig(input).schedule as LrSchedule & { milestones?: number[] };
      return [s.unit, s.milestones];
    };
    expect(milestones({ preset: 'wrn-cifar' })).toEqual(['epoch', [59, 119, 159]]);
    expect(milestones({ preset: 'wrn-cifar', epochs: 10 })).toEqual(['epoch', [2, 5, 7]]);
    expect(milestones({ preset: 'wrn-svhn' })).toEqual(['epoch', [79, 119]]);
    expect(milestones({ preset: 'resnext-cifar' })).toEqual(['epoch', [147, 222]]);
    expect(milestones({ preset: 'resnet-cifar' })).toEqual(['iteration', [32000, 48000]]);
    // a run given in epochs: the iteration recipe's fractions fall on epoch boundaries
    expect(milestones({ preset: 'resnet-cifar', epochs: 8 })).toEqual(['epoch', [4, 6]]);
    expect(() => resolveTrainingConfig({ maxSteps: 10, schedule: { kind: 'multi-step', lr: 0.1, milestoneFractions: [0.5], gamma: 0.1 } }))
      .toThrow('training config: schedule.milestoneFractions [0.5] need the run length: set epochs');
    // what `wrn train` prints at start
    expect(formatSchedule(resolveTrainingConfig({ preset: 'wrn-cifar', epochs: 10 }).schedule))
      .toBe('multi-step, lr 0.1, x0.2 from 0-based epochs 2, 5, 7, momentum buffers reset at each drop');
    expect(formatSchedule(resolveTrainingConfig({ preset: 'preact-cifar' }).schedule))
      .toBe('multi-step, lr 0.1, x0.1 from 0-based iterations 32000, 48000; warm-up: x0.1 for the first 400 iterations');
    // a user's milestones over a recipe's fractions win
    expect(milestones({ preset: 'wrn-cifar', epochs: 3, schedule: { kind: 'multi-step', lr: 0.1, milestones: [1], gamma: 0.2 } })).toEqual(['epoch', [1]]);
    expect(() => resolveTrainingConfig({ epochs: 3, schedule: { kind: 'multi-step', lr: 0.1, gamma: 0.1 } }))
      .toThrow('give milestones or milestoneFractions');
  });

  it('the WRN recipes reset the momentum buffers where the lr drops, the others do not', () => {
    const at = (epoch: number, iteration = 0) => ({ epoch, iteration, itersPerEpoch: 10 });
    const wrn = resolveTrainingConfig({ preset: 'wrn-cifar' }).schedule;
    expect([58, 59, 60, 119, 159].map((e) => resetsMomentumAt(wrn, at(e)))).toEqual([false, true, false, true, true]);
    expect(resetsMomentumAt(wrn, at(59, 1))).toBe(false);
    const resnext = resolveTrainingConfig({ preset: 'resnext-cifar' }).schedule;
    expect(resetsMomentumAt(resnext, at(147))).toBe(false);
  });

  it('a constant warm-up multiplies the rate by startFactor, a linear one ramps', () => {
    const base = { kind: 'constant', lr: 0.1 } as const;
    const constant = resolveTrainingConfig({ maxSteps: 1000, schedule: { ...base, warmup: { shape: 'constant', length: 400, unit: 'iteration', startFactor: 0.1 } } }).schedule;
    const linear = resolveTrainingConfig({ maxSteps: 1000, schedule: { ...base, warmup: { length: 400, unit: 'iteration', startFactor: 0.1 } } }).schedule;
    const at = (i: number) => ({ epoch: Math.floor(i / 100), iteration: i % 100, itersPerEpoch: 100 });
    expect([0, 200, 399, 400].map((i) => learningRateAt(constant, at(i)))).toEqual([expect.closeTo(0.01, 15), expect.closeTo(0.01, 15), expect.closeTo(0.01, 15), 0.1]);
    expect([0, 200, 400].map((i) => learningRateAt(linear, at(i)))).toEqual([expect.closeTo(0.01, 15), expect.closeTo(0.055, 15), 0.1]);
  });
});
