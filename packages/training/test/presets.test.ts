import { describe, expect, it } from 'vitest';
import { getPreset, PRESET_NAMES, resolveRecipe, resolveTrainingConfig } from '../src/presets';
import { TrainingConfigError } from '../src/config';

// Every value below is from shared/papers.md ("Recipes"), field by field.
describe('training presets match the papers', () => {
  it('wrn-cifar: SGD Nesterov 0.9, dampening 0, lr 0.1, wd 5e-4, batch 128, 200 epochs, x0.2 from 1-based 60/120/160 with momentum reset, dropout 0.3, reflect crop + flip, WRN mean/std', () => {
    const p = getPreset('wrn-cifar');
    expect(p.config.optimizer).toEqual({ momentum: 0.9, nesterov: true, dampening: 0, weightDecay: 5e-4, decayBatchNorm: true });
    expect(p.config.schedule).toEqual({
      kind: 'multi-step', unit: 'epoch', lr: 0.1, milestoneFractions: [0.3, 0.6, 0.8], fractionRule: 'lua-epoch-step', gamma: 0.2, resetMomentum: true,
    });
    expect(p.config.batchSize).toBe(128);
    expect(p.config.epochs).toBe(200);
    expect(p.config.maxSteps).toBeUndefined();
    expect(p.config.dropout).toEqual({ kind: 'constant', rate: 0.3 });
    // In @wrn/datasets' terms: reflect-padded crop + flip, the WRN code's mean/std (numbers checked in the cli's tests).
    expect(p.data).toEqual({ augmentation: 'reflect', normalization: 'paper' });
  });

  it('wrn-svhn: lr 0.01, x0.1 from 1-based 80 and 120 with momentum reset, 160 epochs, dropout 0.4, no augmentation, /255', () => {
    const p = getPreset('wrn-svhn');
    expect(p.config.schedule).toEqual({
      kind: 'multi-step', unit: 'epoch', lr: 0.01, milestoneFractions: [0.5, 0.75], fractionRule: 'lua-epoch-step', gamma: 0.1, resetMomentum: true,
    });
    expect(p.config.epochs).toBe(160);
    expect(p.config.dropout).toEqual({ kind: 'constant', rate: 0.4 });
    expect(p.data).toEqual({ augmentation: 'none', normalization: 'scale' });
    expect(p.config.optimizer).toMatchObject({ momentum: 0.9, nesterov: true, dampening: 0, weightDecay: 5e-4 });
    expect(p.config.batchSize).toBe(128);
  });

  it('resnet-cifar: lr 0.1, /10 at 32k and 48k iterations, stop at 64k, wd 1e-4, batch 128, zero-padded crop + flip', () => {
    const p = getPreset('resnet-cifar');
    expect(p.config.schedule).toEqual({ kind: 'multi-step', unit: 'iteration', lr: 0.1, milestoneFractions: [0.5, 0.75], gamma: 0.1 });
    expect(resolveTrainingConfig({ preset: 'resnet-cifar' }).schedule).toMatchObject({ milestones: [32000, 48000] });
    expect(p.config.maxSteps).toBe(64000);
    expect(p.config.epochs).toBeUndefined();
    expect(p.config.optimizer).toMatchObject({ weightDecay: 1e-4, momentum: 0.9, nesterov: false, dampening: 0 });
    expect(p.config.batchSize).toBe(128);
    expect(p.config.dropout).toEqual({ kind: 'none' });
    expect(p.data).toEqual({ augmentation: 'zero', normalization: 'dataset' });
  });

  it('resnext-cifar: lr 0.1, x0.1 once epoch/300 > 0.49 and > 0.74 (0-based 147, 222), wd 5e-4, batch 128', () => {
    const p = getPreset('resnext-cifar');
    expect(p.config.schedule).toEqual({ kind: 'multi-step', unit: 'epoch', lr: 0.1, milestoneFractions: [0.49, 0.74], fractionRule: 'lua-exceeds', gamma: 0.1 });
    expect(p.config.epochs).toBe(300);
    expect(p.config.optimizer).toMatchObject({ weightDecay: 5e-4, momentum: 0.9 });
    expect(p.config.batchSize).toBe(128);
    expect(p.config.dropout).toEqual({ kind: 'none' });
  });

  it('preact-cifar: the ResNet CIFAR recipe with lr 0.01 for the first 400 iterations (a constant warm-up), Nesterov', () => {
    const p = getPreset('preact-cifar');
    expect(p.config.schedule).toEqual({
      kind: 'multi-step', unit: 'iteration', lr: 0.1, milestoneFractions: [0.5, 0.75], gamma: 0.1,
      warmup: { shape: 'constant', length: 400, unit: 'iteration', startFactor: 0.1 },
    });
    expect(p.config.maxSteps).toBe(64000);
    expect(p.config.optimizer).toMatchObject({ weightDecay: 1e-4, momentum: 0.9, nesterov: true });
  });

  it('every preset is a valid training config, and getPreset hands out copies', () => {
    expect([...PRESET_NAMES]).toEqual(['wrn-cifar', 'wrn-svhn', 'resnet-cifar', 'preact-cifar', 'resnext-cifar']);
    for (const name of PRESET_NAMES) expect(resolveTrainingConfig({ preset: name }).preset).toBe(name);
    getPreset('wrn-cifar').config.optimizer!.weightDecay = 1;
    expect(getPreset('wrn-cifar').config.optimizer!.weightDecay).toBe(5e-4);
  });

  it('resolveTrainingConfig lays given values over the preset', () => {
    const c = resolveTrainingConfig({ preset: 'wrn-cifar', epochs: 3, batchSize: 64, optimizer: { weightDecay: 0 } });
    expect(c).toMatchObject({ preset: 'wrn-cifar', epochs: 3, batchSize: 64, seed: 0 });
    expect(c.optimizer).toEqual({ type: 'sgd', momentum: 0.9, nesterov: true, dampening: 0, weightDecay: 0, decayBatchNorm: true });
    // 0.3/0.6/0.8 of 3 epochs by the WRN script's rule would drop from the 1-based epochs 1, 2 and 3; a drop never
    // takes effect before the first epoch has trained at the recipe's rate, so the first moves to epoch 2
    expect(c.schedule).toMatchObject({ milestones: [1, 1, 2] });
    expect(resolveTrainingConfig({ preset: 'wrn-cifar', epochs: 1 }).schedule).toMatchObject({ milestones: [1, 1, 1] });
    const r = resolveTrainingConfig({ preset: 'resnet-cifar', epochs: 2 });
    expect(r.epochs).toBe(2);
    expect(r.maxSteps).toBeUndefined();
    expect(resolveTrainingConfig({ preset: 'resnet-cifar' }).maxSteps).toBe(64000);
    expect(() => resolveTrainingConfig({ preset: 'wrn-imagenet' })).toThrow(
      'unknown training preset "wrn-imagenet"; allowed: wrn-cifar, wrn-svhn, resnet-cifar, preact-cifar, resnext-cifar',
    );
  });

  it('resolveRecipe: layers over the preset key by key, a recipe stopping by steps gives way to epochs, errors name the layer', () => {
    const { config, sources } = resolveRecipe('resnet-cifar', [
      { source: { kind: 'file', path: 'run.yaml' }, values: { schedule: { lr: 0.05 }, epochs: 4 } },
      { source: { kind: 'flag', flag: '--seed' }, values: { seed: 9 } },
    ], { model: 'resnet20' });
    expect(config).toMatchObject({ preset: 'resnet-cifar', model: 'resnet20', epochs: 4, seed: 9, schedule: { kind: 'multi-step', lr: 0.05, gamma: 0.1 } });
    expect(config.maxSteps).toBeUndefined();
    expect(sources.get('schedule.gamma')).toEqual({ kind: 'recipe', name: 'resnet-cifar' });
    expect(sources.get('schedule.lr')).toEqual({ kind: 'file', path: 'run.yaml' });
    const bad = () => resolveRecipe('wrn-cifar', [{ source: { kind: 'flag', flag: '--momentum' }, values: { optimizer: { momentum: 2 } } }]);
    expect(bad).toThrow(TrainingConfigError);
    expect(bad).toThrow('--momentum: Too big: expected number to be <=1 (got 2)');
  });
});
