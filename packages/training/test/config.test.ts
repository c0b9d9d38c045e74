import { describe, expect, it } from 'vitest';
import { parseTrainingConfig, TrainingConfigError } from '../src/config';

const schedule = { kind: 'multi-step', lr: 0.1, milestones: [60, 120, 160], gamma: 0.2 };

describe('parseTrainingConfig', () => {
  it('fills defaults (the WRN optimiser, no dropout, no extra checkpoints)', () => {
    expect(parseTrainingConfig({ epochs: 2, schedule })).toEqual({
      epochs: 2,
      batchSize: 128,
      seed: 0,
      optimizer: { type: 'sgd', momentum: 0.9, nesterov: true, dampening: 0, weightDecay: 5e-4, decayBatchNorm: true },
      schedule: { ...schedule, unit: 'epoch' },
      dropout: { kind: 'none' },
      checkpointEvery: 0,
      logEverySteps: 0,
      context: {},
    });
  });

  it('reports each bad key with its value and what is allowed', () => {
    let error: unknown;
    try {
      parseTrainingConfig(
        { epochs: 2, batchsize: 64, schedule: { ...schedule, unit: 'batch' }, optimizer: { momentum: -1 }, dropout: { kind: 'gaussian' } },
        'run.yaml',
      );
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TrainingConfigError);
    const message = (error as Error).message;
    expect(message).toMatch(/^run\.yaml is invalid:\n/);
    expect(message).toContain('  batchsize: unknown key (got 64); allowed: preset, model, epochs, maxSteps, batchSize, seed,');
    expect(message).toContain('  schedule.unit: Invalid option: expected one of "epoch"|"iteration" (got "batch"); allowed: "epoch", "iteration"');
    expect(message).toContain('  optimizer.momentum: Too small: expected number to be >=0 (got -1)');
    expect(message).toContain('  dropout.kind: Invalid discriminator value');
    expect(message).toContain('(got "gaussian"); allowed: "none", "constant", "per-stage", "stochastic-depth"');
    expect((error as TrainingConfigError).issues.map((i) => i.key)).toEqual(
      expect.arrayContaining(['batchsize', 'schedule.unit', 'optimizer.momentum', 'dropout.kind']),
    );
  });

  it('names unknown keys inside a schedule with the keys that schedule kind allows', () => {
    expect(() => parseTrainingConfig({ epochs: 1, schedule: { kind: 'step', lr: 0.1, stepSize: 3, gamma: 0.5, milestones: [1] } })).toThrow(
      'schedule.milestones: unknown key (got [1]); allowed: kind, lr, unit, warmup, stepSize, gamma',
    );
  });

  it('needs epochs or maxSteps', () => {
    expect(() => parseTrainingConfig({ schedule })).toThrow(/epochs: set epochs or maxSteps \(or both\)$/);
    expect(parseTrainingConfig({ maxSteps: 10, schedule }).maxSteps).toBe(10);
  });

  it('rejects Nesterov with dampening, as Torch does, and negative values', () => {
    expect(() => parseTrainingConfig({ epochs: 1, schedule, optimizer: { nesterov: true, dampening: 0.1 } })).toThrow(
      'optimizer.nesterov: Nesterov momentum requires momentum > 0 and dampening 0 (as in Torch) (got true)',
    );
    expect(() => parseTrainingConfig({ epochs: 1, schedule, optimizer: { momentum: 0 } })).toThrow(
      /optimizer\.nesterov: Nesterov momentum requires momentum > 0 and dampening 0 \(as in Torch\)$/,
    );
    expect(() => parseTrainingConfig({ epochs: 1, schedule, optimizer: { weightDecay: -0.1 } })).toThrow('optimizer.weightDecay');
  });
});
