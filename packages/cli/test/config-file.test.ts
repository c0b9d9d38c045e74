import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeSource, mergeLayers, readConfigFile, sourceOf } from '../src/config-file.js';
import { PAPER_NORMALIZATION, type ImageDataset } from '@wrn/datasets';
import { resolveNormalization } from '../src/data.js';
import { UsageError } from '../src/errors.js';
import { resolveTrainConfig } from '../src/train-config.js';
import { scratchDir } from './run-wrn.js';

describe('readConfigFile', () => {
  const dir = scratchDir('config');
  it('reads JSON and YAML into the same object', () => {
    writeFileSync(join(dir, 'run.json'), '{"epochs": 3, "schedule": {"kind": "constant", "lr": 0.05}}');
    writeFileSync(join(dir, 'run.yaml'), 'epochs: 3\nschedule:\n  kind: constant\n  lr: 0.05\n');
    const expected = { epochs: 3, schedule: { kind: 'constant', lr: 0.05 } };
    expect(readConfigFile(join(dir, 'run.json'))).toEqual(expected);
    expect(readConfigFile(join(dir, 'run.yaml'))).toEqual(expected);
  });
  it('names the file and the problem', () => {
    writeFileSync(join(dir, 'bad.json'), '{"epochs": 3,');
    writeFileSync(join(dir, 'list.yaml'), '- 1\n- 2\n');
    writeFileSync(join(dir, 'run.toml'), 'epochs = 3');
    expect(() => readConfigFile(join(dir, 'bad.json'))).toThrow(new RegExp(`--config ${join(dir, 'bad.json')}: not valid JSON`));
    expect(() => readConfigFile(join(dir, 'list.yaml'))).toThrow(/expected a mapping of keys to values at the top level, got a list/);
    expect(() => readConfigFile(join(dir, 'run.toml'))).toThrow(/expected a \.json, \.yaml or \.yml file, got "\.toml"/);
    expect(() => readConfigFile(join(dir, 'missing.yaml'))).toThrow(UsageError);
  });
});

describe('mergeLayers', () => {
  it('takes flags over the file over the recipe, merging nested objects and remembering each source', () => {
    const { values, sources } = mergeLayers([
      { source: { kind: 'recipe', name: 'wrn-cifar' }, values: { epochs: 200, schedule: { kind: 'multi-step', lr: 0.1, milestones: [60, 120, 160], gamma: 0.2 } } },
      { source: { kind: 'file', path: 'run.yaml' }, values: { epochs: 10, schedule: { lr: 0.05 } } },
      { source: { kind: 'flag', flag: '--epochs' }, values: { epochs: 2 } },
    ]);
    expect(values).toEqual({ epochs: 2, schedule: { kind: 'multi-step', lr: 0.05, milestones: [60, 120, 160], gamma: 0.2 } });
    expect(describeSource(sourceOf(sources, 'epochs'), 'epochs')).toBe('--epochs');
    expect(describeSource(sourceOf(sources, 'schedule.lr'), 'schedule.lr')).toBe('run.yaml: schedule.lr');
    expect(describeSource(sourceOf(sources, 'schedule.gamma'), 'schedule.gamma')).toBe('recipe wrn-cifar: schedule.gamma');
    expect(describeSource(sourceOf(sources, 'schedule.milestones.1'), 'schedule.milestones.1')).toBe('recipe wrn-cifar: schedule.milestones.1');
  });
  it('replaces a tagged object whose kind changes instead of mixing the keys of two kinds', () => {
    const { values, sources } = mergeLayers([
      { source: { kind: 'recipe', name: 'wrn-cifar' }, values: { schedule: { kind: 'multi-step', lr: 0.1, milestones: [60], gamma: 0.2 } } },
      { source: { kind: 'file', path: 'run.json' }, values: { schedule: { kind: 'cosine', lr: 0.1, length: 10 } } },
    ]);
    expect(values).toEqual({ schedule: { kind: 'cosine', lr: 0.1, length: 10 } });
    expect(sourceOf(sources, 'schedule.gamma')).toEqual({ kind: 'file', path: 'run.json' });
  });
});

describe('recipes resolve to @wrn/datasets in its own terms', () => {
  const resolveFor = (recipe: string, dataset: 'cifar10' | 'cifar100' | 'svhn') =>
    resolveTrainConfig({ flagLayers: [{ source: { kind: 'flag', flag: '--recipe' }, values: { recipe, dataset, model: 'wrn-16-1' } }] }).options;
  // The WRN code's constants as shared/papers.md quotes them (CIFAR-10, 0..255 units).
  const WRN_CIFAR10 = { kind: 'meanStd', mean: [125.3, 123.0, 113.9], std: [63.0, 62.1, 66.7] };
  const anyImages = { count: 0 } as unknown as ImageDataset; // 'paper' and 'scale' never look at the images

  it("wrn-cifar normalises with @wrn/datasets' PAPER_NORMALIZATION of the run's dataset, the numbers of the WRN code", () => {
    const cifar10 = resolveFor('wrn-cifar', 'cifar10');
    expect(cifar10).toMatchObject({ augmentation: 'reflect', normalization: 'paper' });
    expect(resolveNormalization(cifar10, anyImages)).toEqual(WRN_CIFAR10);
    expect(resolveNormalization(cifar10, anyImages)).toEqual(PAPER_NORMALIZATION.cifar10);
    expect(resolveNormalization(resolveFor('wrn-cifar', 'cifar100'), anyImages)).toEqual(PAPER_NORMALIZATION.cifar100);
  });

  it('wrn-svhn divides by 255 without augmentation; the ResNet recipes use the training split statistics and zero padding', () => {
    expect(resolveFor('wrn-svhn', 'svhn')).toMatchObject({ augmentation: 'none', normalization: 'scale' });
    expect(resolveNormalization(resolveFor('wrn-svhn', 'svhn'), anyImages)).toEqual(PAPER_NORMALIZATION.svhn);
    for (const recipe of ['resnet-cifar', 'preact-cifar', 'resnext-cifar']) {
      expect(resolveFor(recipe, 'cifar10')).toMatchObject({ augmentation: 'zero', normalization: 'dataset' });
    }
  });
});
