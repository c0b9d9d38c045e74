import { describe, expect, it } from 'vitest';
import { getPreset, PRESET_NAMES, resolveTrainingConfig } from '../src/presets';

// Every value below is from shared/papers.md ("Recipes"), field by field.
describe('training presets match the papers', () => {
  it('wrn-cifar: SGD Nesterov 0.9, dampening 0, lr 0.1, wd 5e-4, batch 128, 200 epochs, x0.2 at 60/120/160, dropout 0.3, reflect crop + flip, WRN mean/std', () => {
    const p = getPreset('wrn-cifar');
    expect(p.config.optimizer).toEqual({ momentum: 0.9, nesterov: true, dampening: 0, weightDecay: 5e-4, decayBatchNorm: true });
    expect(p.config.schedule).toEqual({ kind: 'multi-step', unit: 'epoch', lr: 0.1, milestones: [60, 120, 160], gamma: 0.2 });
    expect(p.config.batchSize).toBe(128);
    expect(p.config.epochs).toBe(200);
    expect(p.config.maxSteps).toBeUndefined();
    expect(p.config.dropout).toEqual({ kind: 'constant', rate: 0.3 });
    expect(p.data.augmentation).toEqual({ flip: true, crop: { padding: 4, mode: 'reflect' } });
    expect(p.data.preprocessing).toEqual({ kind: 'mean-std', mean: [125.3, 123.0, 113.9], std: [63.0, 62.1, 66.7] });
  });

  it('wrn-svhn: lr 0.01, x0.1 at 80 and 120, 160 epochs, dropout 0.4, no augmentation, /255', () => {
    const p = getPreset('wrn-svhn');
    expect(p.config.schedule).toEqual({ kind: 'multi-step', unit: 'epoch', lr: 0.01, milestones: [80, 120], gamma: 0.1 });
    expect(p.config.epochs).toBe(160);
    expect(p.config.dropout).toEqual({ kind: 'constant', rate: 0.4 });
    expect(p.data.augmentation).toEqual({ flip: false, crop: null });
    expect(p.data.preprocessing).toEqual({ kind: 'divide-255' });
    expect(p.config.optimizer).toMatchObject({ momentum: 0.9, nesterov: true, dampening: 0, weightDecay: 5e-4 });
    expect(p.config.batchSize).toBe(128);
  });

  it('resnet-cifar: lr 0.1, /10 at 32k and 48k iterations, stop at 64k, wd 1e-4, batch 128, zero-padded crop + flip', () => {
    const p = getPreset('resnet-cifar');
    expect(p.config.schedule).toEqual({ kind: 'multi-step', unit: 'iteration', lr: 0.1, milestones: [32000, 48000], gamma: 0.1 });
    expect(p.config.maxSteps).toBe(64000);
    expect(p.config.epochs).toBeUndefined();
    expect(p.config.optimizer).toMatchObject({ weightDecay: 1e-4, momentum: 0.9, nesterov: false, dampening: 0 });
    expect(p.config.batchSize).toBe(128);
    expect(p.config.dropout).toEqual({ kind: 'none' });
    expect(p.data.augmentation).toEqual({ flip: true, crop: { padding: 4, mode: 'zero' } });
  });

  it('resnext-cifar: lr 0.1, x0.1 at 150 and 225 of 300 epochs, wd 5e-4, batch 128', () => {
    const p = getPreset('resnext-cifar');
    expect(p.config.schedule).toEqual({ kind: 'multi-step', unit: 'epoch', lr: 0.1, milestones: [150, 225], gamma: 0.1 });
    expect(p.config.epochs).toBe(300);
    expect(p.config.optimizer).toMatchObject({ weightDecay: 5e-4, momentum: 0.9 });
    expect(p.config.batchSize).toBe(128);
    expect(p.config.dropout).toEqual({ kind: 'none' });
  });

  it('every preset is a valid training config, and getPreset hands out copies', () => {
    expect([...PRESET_NAMES]).toEqual(['wrn-cifar', 'wrn-svhn', 'resnet-cifar', 'resnext-cifar']);
    for (const name of PRESET_NAMES) expect(resolveTrainingConfig({ preset: name }).preset).toBe(name);
    getPreset('wrn-cifar').config.optimizer!.weightDecay = 1;
    expect(getPreset('wrn-cifar').config.optimizer!.weightDecay).toBe(5e-4);
  });

  it('resolveTrainingConfig lays given values over the preset', () => {
    const c = resolveTrainingConfig({ preset: 'wrn-cifar', epochs: 3, batchSize: 64, optimizer: { weightDecay: 0 } });
    expect(c).toMatchObject({ preset: 'wrn-cifar', epochs: 3, batchSize: 64, seed: 0 });
    expect(c.optimizer).toEqual({ type: 'sgd', momentum: 0.9, nesterov: true, dampening: 0, weightDecay: 0, decayBatchNorm: true });
    expect(c.schedule).toMatchObject({ milestones: [60, 120, 160] });
    const r = resolveTrainingConfig({ preset: 'resnet-cifar', epochs: 2 });
    expect(r.epochs).toBe(2);
    expect(r.maxSteps).toBeUndefined();
    expect(resolveTrainingConfig({ preset: 'resnet-cifar' }).maxSteps).toBe(64000);
    expect(() => resolveTrainingConfig({ preset: 'wrn-imagenet' })).toThrow(
      'unknown training preset "wrn-imagenet"; allowed: wrn-cifar, wrn-svhn, resnet-cifar, resnext-cifar',
    );
  });
});
