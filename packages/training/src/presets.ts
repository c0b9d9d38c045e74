import { parseTrainingConfig, type TrainingConfig, type TrainingConfigInput } from './config';

/**
 * The papers' recipes (values from shared/papers.md; where the notes are silent, the source named in the
 * comment). `config` holds what the training loop needs; `data` is the data side of the recipe, for the cli
 * to configure @wrn/datasets with.
 */
export interface TrainingPreset {
  name: PresetName;
  description: string;
  config: Pick<TrainingConfigInput, 'epochs' | 'maxSteps' | 'batchSize' | 'optimizer' | 'schedule' | 'dropout'>;
  data: {
    /** Random crop of the image padded by `padding` pixels (`mode` fills the border), then random horizontal flip. */
    augmentation: { flip: boolean; crop: { padding: number; mode: 'reflect' | 'zero' } | null };
    /** 'mean-std' with constants in 0..255 units, or computed on the training split when they are absent. */
    preprocessing: { kind: 'mean-std'; mean?: [number, number, number]; std?: [number, number, number] } | { kind: 'divide-255' };
  };
}

export const PRESET_NAMES = ['wrn-cifar', 'wrn-svhn', 'resnet-cifar', 'resnext-cifar'] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

const PRESETS: Record<PresetName, TrainingPreset> = {
  'wrn-cifar': {
    name: 'wrn-cifar',
    description: 'WRN on CIFAR (Zagoruyko & Komodakis 2016): 200 epochs, lr 0.1 x0.2 at 60/120/160, dropout 0.3',
    config: {
      epochs: 200,
      batchSize: 128,
      optimizer: { momentum: 0.9, nesterov: true, dampening: 0, weightDecay: 5e-4, decayBatchNorm: true },
      schedule: { kind: 'multi-step', unit: 'epoch', lr: 0.1, milestones: [60, 120, 160], gamma: 0.2 },
      dropout: { kind: 'constant', rate: 0.3 },
    },
    data: {
      augmentation: { flip: true, crop: { padding: 4, mode: 'reflect' } },
      // The WRN code's CIFAR-10 constants.
      preprocessing: { kind: 'mean-std', mean: [125.3, 123.0, 113.9], std: [63.0, 62.1, 66.7] },
    },
  },
  'wrn-svhn': {
    name: 'wrn-svhn',
    description: 'WRN on SVHN train+extra: 160 epochs, lr 0.01 x0.1 at 80/120, dropout 0.4, no augmentation, /255',
    config: {
      epochs: 160,
      // Batch, momentum and weight decay are the WRN code's defaults, shared with its CIFAR recipe.
      batchSize: 128,
      optimizer: { momentum: 0.9, nesterov: true, dampening: 0, weightDecay: 5e-4, decayBatchNorm: true },
      schedule: { kind: 'multi-step', unit: 'epoch', lr: 0.01, milestones: [80, 120], gamma: 0.1 },
      dropout: { kind: 'constant', rate: 0.4 },
    },
    data: { augmentation: { flip: false, crop: null }, preprocessing: { kind: 'divide-255' } },
  },
  'resnet-cifar': {
    name: 'resnet-cifar',
    description: 'ResNet on CIFAR (He et al. 2015): lr 0.1 /10 at 32k and 48k iterations, stop at 64k, wd 1e-4',
    config: {
      maxSteps: 64000,
      batchSize: 128,
      // Momentum 0.9 without Nesterov, as the ResNet paper states.
      optimizer: { momentum: 0.9, nesterov: false, dampening: 0, weightDecay: 1e-4, decayBatchNorm: true },
      schedule: { kind: 'multi-step', unit: 'iteration', lr: 0.1, milestones: [32000, 48000], gamma: 0.1 },
      dropout: { kind: 'none' },
    },
    data: { augmentation: { flip: true, crop: { padding: 4, mode: 'zero' } }, preprocessing: { kind: 'mean-std' } },
  },
  'resnext-cifar': {
    name: 'resnext-cifar',
    description: 'ResNeXt on CIFAR (Xie et al. 2017): 300 epochs, lr 0.1 x0.1 at 150/225, wd 5e-4',
    config: {
      epochs: 300,
      batchSize: 128,
      // Momentum 0.9 with Nesterov: fb.resnet.torch's SGD, on which the ResNeXt code is built.
      optimizer: { momentum: 0.9, nesterov: true, dampening: 0, weightDecay: 5e-4, decayBatchNorm: true },
      schedule: { kind: 'multi-step', unit: 'epoch', lr: 0.1, milestones: [150, 225], gamma: 0.1 },
      dropout: { kind: 'none' },
    },
    // The ResNet paper's CIFAR augmentation, which ResNeXt follows.
    data: { augmentation: { flip: true, crop: { padding: 4, mode: 'zero' } }, preprocessing: { kind: 'mean-std' } },
  },
};

/** A deep copy of the named preset; throws naming the allowed presets for an unknown name. */
export function getPreset(name: string): TrainingPreset {
  if (!(PRESET_NAMES as readonly string[]).includes(name)) {
    throw new Error(`unknown training preset ${JSON.stringify(name)}; allowed: ${PRESET_NAMES.join(', ')}`);
  }
  return structuredClone(PRESETS[name as PresetName]);
}

/**
 * Resolves a training config: the preset named by `input.preset` (if any) under the given values (optimizer
 * keys merge one by one; a given schedule or dropout policy replaces the preset's whole), validated with
 * defaults filled in. `source` names the input in errors (e.g. the --config file).
 */
export function resolveTrainingConfig(input: Partial<TrainingConfigInput> & Record<string, unknown>, source?: string): TrainingConfig {
  const presetName = input.preset;
  if (presetName == null) return parseTrainingConfig(input, source);
  const preset = getPreset(presetName);
  const merged: Record<string, unknown> = { ...preset.config, ...input };
  merged.optimizer = { ...preset.config.optimizer, ...(input.optimizer ?? {}) };
  // A preset stopping by steps (ResNet) keeps doing so unless the input sets its own length.
  if (input.epochs != null && input.maxSteps == null && preset.config.maxSteps != null) delete merged.maxSteps;
  return parseTrainingConfig(merged, source);
}
