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

export const PRESET_NAMES = ['wrn-cifar', 'wrn-svhn', 'resnet-cifar', 'preact-cifar', 'resnext-cifar'] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

// Milestones are fractions of the run, so that --epochs scales them; each preset's fractionRule reproduces its
// official script's epoch arithmetic exactly at the paper's length (tested epoch by epoch against PyTorch).
const PRESETS: Record<PresetName, TrainingPreset> = {
  'wrn-cifar': {
    name: 'wrn-cifar',
    description: 'WRN on CIFAR (Zagoruyko & Komodakis 2016): 200 epochs, lr 0.1 x0.2 from 1-based epochs 60/120/160 (0.3/0.6/0.8 of the run), momentum reset at each drop, dropout 0.3',
    config: {
      epochs: 200,
      batchSize: 128,
      optimizer: { momentum: 0.9, nesterov: true, dampening: 0, weightDecay: 5e-4, decayBatchNorm: true },
      // scripts/train_cifar.sh: epoch_step {60,120,160} of 200, learningRateDecayRatio 0.2; train.lua's updateLR
      // applies a drop at the start of 1-based epoch 60 (0-based 59) and starts a fresh optimState.
      schedule: {
        kind: 'multi-step', unit: 'epoch', lr: 0.1, milestoneFractions: [0.3, 0.6, 0.8], fractionRule: 'lua-epoch-step', gamma: 0.2,
        resetMomentum: true,
      },
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
    description: 'WRN on SVHN train+extra: 160 epochs, lr 0.01 x0.1 from 1-based epochs 80/120 (0.5/0.75 of the run), momentum reset at each drop, dropout 0.4, no augmentation, /255',
    config: {
      epochs: 160,
      // Batch, momentum and weight decay are the WRN code's defaults, shared with its CIFAR recipe.
      batchSize: 128,
      optimizer: { momentum: 0.9, nesterov: true, dampening: 0, weightDecay: 5e-4, decayBatchNorm: true },
      // scripts/train_svhn.sh: epoch_step {80,120} of 160, learningRateDecayRatio 0.1 (0-based 79 and 119).
      schedule: {
        kind: 'multi-step', unit: 'epoch', lr: 0.01, milestoneFractions: [0.5, 0.75], fractionRule: 'lua-epoch-step', gamma: 0.1,
        resetMomentum: true,
      },
      dropout: { kind: 'constant', rate: 0.4 },
    },
    data: { augmentation: { flip: false, crop: null }, preprocessing: { kind: 'divide-255' } },
  },
  'resnet-cifar': {
    name: 'resnet-cifar',
    description: 'ResNet on CIFAR (He et al. 2015): lr 0.1 /10 at 32k and 48k iterations (0.5/0.75 of the run), stop at 64k, wd 1e-4',
    config: {
      maxSteps: 64000,
      batchSize: 128,
      // Momentum 0.9 without Nesterov, as the ResNet paper states.
      optimizer: { momentum: 0.9, nesterov: false, dampening: 0, weightDecay: 1e-4, decayBatchNorm: true },
      schedule: { kind: 'multi-step', unit: 'iteration', lr: 0.1, milestoneFractions: [0.5, 0.75], gamma: 0.1 },
      dropout: { kind: 'none' },
    },
    data: { augmentation: { flip: true, crop: { padding: 4, mode: 'zero' } }, preprocessing: { kind: 'mean-std' } },
  },
  'preact-cifar': {
    name: 'preact-cifar',
    description: 'pre-activation ResNet on CIFAR (He et al. 2016): lr 0.01 for the first 400 iterations, then 0.1, /10 at 32k and 48k iterations, stop at 64k, wd 1e-4',
    config: {
      maxSteps: 64000,
      batchSize: 128,
      // The ResNet CIFAR recipe on fb.resnet.torch (which resnet-1k-layers builds on): Nesterov momentum 0.9.
      optimizer: { momentum: 0.9, nesterov: true, dampening: 0, weightDecay: 1e-4, decayBatchNorm: true },
      // "we use 0.01 to warm up the training until the training error is below 80% (about 400 iterations), and
      // then go back to 0.1" (Identity Mappings, sec. 4.1; for ResNet-110 and -1001): a constant warm-up.
      schedule: {
        kind: 'multi-step', unit: 'iteration', lr: 0.1, milestoneFractions: [0.5, 0.75], gamma: 0.1,
        warmup: { shape: 'constant', length: 400, unit: 'iteration', startFactor: 0.1 },
      },
      dropout: { kind: 'none' },
    },
    data: { augmentation: { flip: true, crop: { padding: 4, mode: 'zero' } }, preprocessing: { kind: 'mean-std' } },
  },
  'resnext-cifar': {
    name: 'resnext-cifar',
    description: 'ResNeXt on CIFAR (Xie et al. 2017): 300 epochs, lr 0.1 x0.1 once epoch/300 > 0.49 and > 0.74 (0-based 147, 222), wd 5e-4',
    config: {
      epochs: 300,
      batchSize: 128,
      // Momentum 0.9 with Nesterov: fb.resnet.torch's SGD, on which the ResNeXt code is built.
      optimizer: { momentum: 0.9, nesterov: true, dampening: 0, weightDecay: 5e-4, decayBatchNorm: true },
      // train.lua: decay = (epoch/nEpochs) > 0.74 and 2 or (epoch/nEpochs) > 0.49 and 1 or 0 (1-based epochs);
      // its optimState carries on across drops.
      schedule: { kind: 'multi-step', unit: 'epoch', lr: 0.1, milestoneFractions: [0.49, 0.74], fractionRule: 'lua-exceeds', gamma: 0.1 },
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

