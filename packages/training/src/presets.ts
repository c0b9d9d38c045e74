import { parseTrainingConfig, TrainingConfigError, type TrainingConfig, type TrainingConfigInput } from './config';

/**
 * The papers' recipes (values from shared/papers.md; where the notes are silent, the source named in the
 * comment). `config` holds what the training loop needs; `data` is the data side of the recipe in @wrn/datasets'
 * terms (its augmentation and normalisation by name, no numbers copied), for the cli to configure the pipeline with.
 */
export interface TrainingPreset {
  name: PresetName;
  description: string;
  config: Pick<TrainingConfigInput, 'epochs' | 'maxSteps' | 'batchSize' | 'optimizer' | 'schedule' | 'dropout'>;
  data: {
    /**
     * @wrn/datasets' augmentation (AugmentationName): 'reflect' / 'zero' pad the image by 4 pixels (by reflection /
     * with zeros), crop it back at random and flip it horizontally at random; 'none' leaves it as it is.
     */
    augmentation: PresetAugmentation;
    /**
     * How pixels are normalised, by name: 'paper' is @wrn/datasets' PAPER_NORMALIZATION of the run's dataset (the
     * WRN code's mean/std constants for CIFAR-10 and CIFAR-100, /255 for SVHN); 'dataset' the mean/std of the run's
     * training split; 'scale' /255.
     */
    normalization: PresetNormalization;
  };
}

/** @wrn/datasets' augmentation names (AugmentationName); training does not depend on @wrn/datasets. */
export const PRESET_AUGMENTATIONS = ['reflect', 'zero', 'none'] as const;
export type PresetAugmentation = (typeof PRESET_AUGMENTATIONS)[number];
/** Normalisations by name, each resolved against the run's dataset by the caller (the cli, with @wrn/datasets). */
export const PRESET_NORMALIZATIONS = ['dataset', 'paper', 'scale', 'none'] as const;
export type PresetNormalization = (typeof PRESET_NORMALIZATIONS)[number];

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
    // The WRN code's mean/std constants of the dataset (CIFAR-10: mean 125.3, 123.0, 113.9, std 63.0, 62.1, 66.7).
    data: { augmentation: 'reflect', normalization: 'paper' },
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
    data: { augmentation: 'none', normalization: 'scale' },
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
    data: { augmentation: 'zero', normalization: 'dataset' },
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
    data: { augmentation: 'zero', normalization: 'dataset' },
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
    data: { augmentation: 'zero', normalization: 'dataset' },
  },
};

/** A deep copy of the named preset; throws naming the allowed presets for an unknown name. */
export function getPreset(name: string): TrainingPreset {
  if (!(PRESET_NAMES as readonly string[]).includes(name)) {
    throw new Error(`unknown training preset ${JSON.stringify(name)}; allowed: ${PRESET_NAMES.join(', ')}`);
  }
  return structuredClone(PRESETS[name as PresetName]);
}

/** Where a value of a resolved config came from, so an error can point at the flag, the file key or the recipe. */
export type ValueSource =
  | { kind: 'flag'; flag: string }
  | { kind: 'file'; path: string }
  | { kind: 'recipe'; name: string }
  | { kind: 'default' };

/** Values from one source (a recipe, a file, one flag), keyed as in the training config (nested objects). */
export interface ConfigLayer {
  source: ValueSource;
  values: Record<string, unknown>;
}

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Merges layers, later over earlier: nested objects merge key by key, anything else is replaced. An object with a
 * different `kind` (a schedule or dropout policy of another type) replaces the earlier one whole, since the keys of
 * one kind are invalid in another. Returns the merged object and, for every key path, the layer that set it.
 */
export function mergeLayers(layers: readonly ConfigLayer[]): { values: Record<string, unknown>; sources: Map<string, ValueSource> } {
  const sources = new Map<string, ValueSource>();
  const mark = (prefix: string, value: unknown, source: ValueSource) => {
    sources.set(prefix, source);
    if (isPlainObject(value)) for (const [k, v] of Object.entries(value)) mark(`${prefix}.${k}`, v, source);
  };
  const mergeInto = (target: Record<string, unknown>, values: Record<string, unknown>, prefix: string, source: ValueSource) => {
    for (const [key, value] of Object.entries(values)) {
      if (value === undefined) continue;
      const path = prefix ? `${prefix}.${key}` : key;
      const existing = target[key];
      if (isPlainObject(value) && isPlainObject(existing) && (value.kind === undefined || value.kind === existing.kind)) {
        const copy = { ...existing };
        mergeInto(copy, value, path, source);
        target[key] = copy;
        sources.set(path, source);
      } else {
        for (const stale of [...sources.keys()]) if (stale.startsWith(`${path}.`)) sources.delete(stale);
        target[key] = isPlainObject(value) ? structuredClone(value) : value;
        mark(path, value, source);
      }
    }
  };
  const values: Record<string, unknown> = {};
  for (const layer of layers) mergeInto(values, layer.values, '', layer.source);
  return { values, sources };
}

/** The source of `path` or of its nearest ancestor that has one. */
export function sourceOf(sources: Map<string, ValueSource>, path: string): ValueSource | undefined {
  for (let p = path; p; p = p.includes('.') ? p.slice(0, p.lastIndexOf('.')) : '') {
    const source = sources.get(p);
    if (source) return source;
  }
  return undefined;
}

/** "--epochs" for a flag, "run.yaml: schedule.lr" for a file key, "recipe wrn-cifar: epochs" for a recipe value. */
export function describeSource(source: ValueSource | undefined, path: string): string {
  switch (source?.kind) {
    case 'flag':
      return source.flag;
    case 'file':
      return `${source.path}: ${path}`;
    case 'recipe':
      return `recipe ${source.name}: ${path}`;
    default:
      return path;
  }
}

/** The recipe a model family trains with when none is named: its paper's (SVHN: the WRN SVHN one). */
export function defaultPresetName(family: string, dataset: string): PresetName {
  if (dataset === 'svhn') return 'wrn-svhn';
  if (family === 'resnext') return 'resnext-cifar';
  if (family === 'resnet' || family === 'preact-resnet') return 'resnet-cifar';
  return 'wrn-cifar';
}

export interface ResolvedRecipe {
  /** The validated training config, defaults filled in and milestone fractions resolved: what train() runs. */
  config: TrainingConfig;
  preset: TrainingPreset;
  /** Where each key path of the merged config came from (the preset's own keys included). */
  sources: Map<string, ValueSource>;
}

/** A value as an error message quotes it ("got ..."): JSON, cut to 60 characters. */
export function showValue(value: unknown): string {
  const text = JSON.stringify(value);
  return text === undefined ? 'nothing' : text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/**
 * The recipe resolver: the preset's config under `layers` (lowest precedence first; see mergeLayers), plus
 * `recorded` (keys recorded as they are: model, context). A preset that stops by steps (ResNet's 64k iterations)
 * gives way to a layer that sets the epochs. Throws TrainingConfigError whose message names, per problem, the layer
 * the value came from (a flag, a file key, the recipe), the value and what is allowed.
 */
export function resolveRecipe(preset: PresetName | TrainingPreset, layers: readonly ConfigLayer[], recorded: Record<string, unknown> = {}): ResolvedRecipe {
  const recipe = typeof preset === 'string' ? getPreset(preset) : preset;
  const recipeLayer: ConfigLayer = { source: { kind: 'recipe', name: recipe.name }, values: { ...recipe.config } };
  const merged = mergeLayers([recipeLayer, ...layers]);
  const setsEpochs = layers.some((l) => l.values.epochs !== undefined);
  const setsSteps = layers.some((l) => l.values.maxSteps !== undefined);
  if (setsEpochs && !setsSteps && merged.values.maxSteps !== undefined) delete merged.values.maxSteps;
  try {
    const config = parseTrainingConfig({ ...merged.values, ...recorded, preset: recipe.name }, 'run config');
    return { config, preset: recipe, sources: merged.sources };
  } catch (error) {
    if (!(error instanceof TrainingConfigError)) throw error;
    const lines = error.issues.map(
      (issue) =>
        `${describeSource(sourceOf(merged.sources, issue.key), issue.key)}: ${issue.problem} (got ${showValue(issue.value)})` +
        (issue.allowed ? `; allowed: ${issue.allowed}` : ''),
    );
    throw new TrainingConfigError(lines.length === 1 ? lines[0]! : `invalid run config:\n  ${lines.join('\n  ')}`, error.issues);
  }
}

/**
 * Resolves a training config from plain values: without `input.preset`, the values validated with defaults filled
 * in; with one, resolveRecipe with the values as the one layer over it (`source` names them in errors, e.g. the
 * --config file).
 */
export function resolveTrainingConfig(input: Partial<TrainingConfigInput> & Record<string, unknown>, source = 'training config'): TrainingConfig {
  const { preset, ...values } = input;
  if (preset == null) return parseTrainingConfig(input, source);
  return resolveRecipe(getPreset(preset), [{ source: { kind: 'file', path: source }, values }]).config;
}
