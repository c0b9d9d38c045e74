import { resolve } from 'node:path';
import { z } from 'zod';
import { resolveModelConfig } from '@wrn/architectures';
import {
  defaultPresetName,
  getPreset,
  PRESET_AUGMENTATIONS,
  PRESET_NAMES,
  PRESET_NORMALIZATIONS,
  resolveRecipe,
  TrainingConfigError,
  trainingConfigSchema,
  type TrainingConfig,
  type TrainingPreset,
} from '@wrn/training';
import { BACKEND_CHOICES } from '@wrn/backend';
import { readRunFile, RunFileError, runFilePath, trainingConfigOf, type RunConfigFile } from '@wrn/training/node';
import { describeSource, mergeLayers, readConfigFile, showValue, sourceOf, type ConfigLayer, type ValueSource } from './config-file.js';
import { errorMessage, UsageError } from './errors.js';

export const DATASET_NAMES = ['cifar10', 'cifar100', 'svhn'] as const;
export type DatasetName = (typeof DATASET_NAMES)[number];
export const AUGMENTATIONS = PRESET_AUGMENTATIONS;
export const NORMALIZATIONS = PRESET_NORMALIZATIONS;

/**
 * The keys of a run config that the CLI itself consumes (what to train on, where, with which backend). The other
 * keys of a run config are @wrn/training's and are validated by its schema. In config.json the CLI's keys are kept
 * under `context`, so a run directory says everything it depends on and `--resume` can rebuild the run from it.
 */
export const runOptionsSchema = z
  .object({
    /** Recipe from @wrn/training that fills in whatever the file and flags leave unset. */
    recipe: z.enum(PRESET_NAMES).optional(),
    model: z.string().min(1).default('wrn-16-2'),
    dataset: z.enum(DATASET_NAMES).default('cifar10'),
    /** Folder with the dataset's files in their official layout; the embedded sample when absent (cifar10). */
    dataDir: z.string().min(1).optional(),
    backend: z.enum(BACKEND_CHOICES as [string, ...string[]]).default('auto'),
    runDir: z.string().min(1).optional(),
    augmentation: z.enum(AUGMENTATIONS).optional(),
    /** 'dataset': mean/std of the training split; 'paper': the WRN code's constants; 'scale': /255; or explicit. */
    normalization: z
      .union([
        z.enum(NORMALIZATIONS),
        z.object({ mean: z.array(z.number()).length(3), std: z.array(z.number().positive()).length(3) }).strict(),
      ])
      .optional(),
    /** Use only the first N training / test images (quick experiments, tests). */
    trainLimit: z.number().int().positive().optional(),
    testLimit: z.number().int().positive().optional(),
    /** Hold out N training images and evaluate on them instead of the test split (the ResNet paper's 45k/5k). */
    validationSize: z.number().int().positive().optional(),
    /** Write report.html and curves.png when the run ends. */
    report: z.boolean().default(true),
  })
  .strict();
export type RunOptions = z.infer<typeof runOptionsSchema>;

const RUN_OPTION_KEYS = new Set(Object.keys(runOptionsSchema.shape));
/** Training keys a user may set (model and preset come from the CLI's own keys; context is the CLI's to fill). */
const TRAINING_KEYS = new Set(Object.keys(trainingConfigSchema.shape).filter((k) => !['context', 'preset'].includes(k)));
/** Every key a run config (a --config file, a sweep's base) may set: the CLI's own, then the training loop's. */
export const RUN_CONFIG_KEYS: readonly string[] = [...RUN_OPTION_KEYS, ...[...TRAINING_KEYS].filter((k) => !RUN_OPTION_KEYS.has(k))];

export interface ResolvedTrainConfig {
  options: RunOptions;
  /** Exactly what train() gets and writes as config.json. */
  training: TrainingConfig;
  recipe: TrainingPreset;
  recipeSource: string;
  /** Where each user-set key (CLI key paths: "augmentation", "schedule.lr") came from: a flag or a file. */
  sources: Map<string, ValueSource>;
}

function zodIssuesToUsage(error: z.ZodError, values: Record<string, unknown>, sources: Map<string, ValueSource>): UsageError {
  const lines = error.issues.flatMap((issue) => {
    const keys = issue.code === 'unrecognized_keys' ? issue.keys.map((k) => [...issue.path, k]) : [issue.path];
    return keys.map((path) => {
      const key = path.map(String).join('.');
      let value: unknown = values;
      for (const part of path) value = (value as Record<PropertyKey, unknown> | undefined)?.[part as string];
      const allowed = issue.code === 'invalid_value' ? `; allowed: ${issue.values.map((v) => JSON.stringify(v)).join(', ')}` : '';
      return `${describeSource(sourceOf(sources, key), key)}: ${issue.message} (got ${showValue(value)})${allowed}`;
    });
  });
  return new UsageError(lines.length === 1 ? lines[0]! : `invalid run config:\n  ${lines.join('\n  ')}`);
}

/** The recipe a model trains with when none is named: the paper's recipe of its family (SVHN: the WRN SVHN one). */
export function defaultRecipe(model: string, dataset: DatasetName): TrainingPreset['name'] {
  return defaultPresetName(resolveModelConfig(model).family, dataset);
}

/** The run's config.json as written by `wrn train`, validated by its schema; a problem is the user's (exit 2). */
export function readSavedConfig(runDir: string): RunConfigFile {
  let saved: RunConfigFile | null;
  try {
    saved = readRunFile(runDir, 'config');
  } catch (error) {
    if (error instanceof RunFileError) throw new UsageError(`--resume ${runDir}: ${error.message}`, { cause: error });
    throw error;
  }
  if (saved == null) throw new UsageError(`--resume ${runDir}: no ${runFilePath(runDir, 'config').slice(runDir.length + 1)} there, so it is not a run directory`);
  return saved;
}

/** config.json of an earlier run as a layer: the training keys plus the CLI's keys from its `context`. */
export function savedRunLayer(runDir: string): ConfigLayer {
  const saved = trainingConfigOf(readSavedConfig(runDir));
  const { context, preset, model, ...training } = saved;
  const cli = (context ?? {}) as Record<string, unknown>;
  const values: Record<string, unknown> = { ...training, ...cli, model: cli.model ?? model };
  if (preset !== undefined) values.recipe = preset;
  delete values.runDir;
  delete values.resolved;
  return { source: { kind: 'file', path: runFilePath(runDir, 'config') }, values };
}

/**
 * Resolves a training run from, lowest precedence first: the recipe, the resumed run's config.json, the
 * --config file, the flags. Every value is validated; an error names the flag, file key or recipe it came from,
 * the value and what is allowed.
 */
export function resolveTrainConfig(input: {
  flagLayers: ConfigLayer[];
  configPath?: string;
  resumeDir?: string;
}): ResolvedTrainConfig {
  const layers: ConfigLayer[] = [];
  if (input.resumeDir) layers.push(savedRunLayer(input.resumeDir));
  if (input.configPath) layers.push({ source: { kind: 'file', path: input.configPath }, values: readConfigFile(input.configPath) });
  layers.push(...input.flagLayers);
  const user = mergeLayers(layers);

  const unknown = Object.keys(user.values).filter((k) => !RUN_OPTION_KEYS.has(k) && !TRAINING_KEYS.has(k));
  if (unknown.length > 0) {
    const allowed = [...RUN_OPTION_KEYS, ...TRAINING_KEYS].join(', ');
    throw new UsageError(
      unknown.map((k) => `${describeSource(sourceOf(user.sources, k), k)}: unknown key (got ${showValue(user.values[k])}); allowed: ${allowed}`).join('\n'),
    );
  }
  const cliValues = Object.fromEntries(Object.entries(user.values).filter(([k]) => RUN_OPTION_KEYS.has(k)));
  const parsedOptions = runOptionsSchema.safeParse(cliValues);
  if (!parsedOptions.success) throw zodIssuesToUsage(parsedOptions.error, cliValues, user.sources);
  const options = parsedOptions.data;
  if (input.resumeDir) {
    // A resumed run stays where it is: another directory would be a second copy of it, not its continuation.
    if (options.runDir !== undefined && resolve(options.runDir) !== resolve(input.resumeDir)) {
      throw new UsageError(
        `${describeSource(sourceOf(user.sources, 'runDir'), 'runDir')}: ${options.runDir} differs from the run being resumed (--resume ${input.resumeDir}); ` +
          'a resumed run continues in its own directory: leave --run-dir out (or copy the run directory first and resume the copy)',
      );
    }
    options.runDir = input.resumeDir;
  }

  let recipeName = options.recipe;
  if (recipeName === undefined) {
    try {
      recipeName = defaultRecipe(options.model, options.dataset);
    } catch (error) {
      throw new UsageError(`${describeSource(sourceOf(user.sources, 'model'), 'model')}: ${errorMessage(error)}`);
    }
  }
  const recipe = getPreset(recipeName);
  // The recipe's data side is in the CLI's own terms (augmentation and normalisation names): the keys the user left unset.
  options.augmentation ??= recipe.data.augmentation;
  options.normalization ??= recipe.data.normalization;
  const { recipe: _recipe, ...context } = options;
  let training: TrainingConfig;
  try {
    ({ config: training } = resolveRecipe(
      recipe,
      layers.map((l) => ({ source: l.source, values: pick(l.values, TRAINING_KEYS) })),
      { model: options.model, context },
    ));
  } catch (error) {
    if (error instanceof TrainingConfigError) throw new UsageError(error.message, { cause: error });
    throw error;
  }
  const recipeSource: ValueSource = { kind: 'recipe', name: recipe.name };
  return { options, training, recipe, recipeSource: describeSource(recipeSource, '').replace(/: $/, ''), sources: user.sources };
}

function pick(values: Record<string, unknown>, keys: Set<string>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(values).filter(([k]) => keys.has(k)));
}
