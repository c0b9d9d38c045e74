import {
  createPipeline,
  meanStdNormalization,
  PAPER_NORMALIZATION,
  selectImages,
  splitTrainValidation,
  type Batch,
  type ImageDataset,
  type Normalization,
  type Pipeline,
} from '@wrn/datasets';
import { datasetDir, getDataset } from '@wrn/datasets/node';
import type { BatchSource } from '@wrn/training';
import { embeddedSampleDir } from './context.js';
import { asUsageError } from './errors.js';
import type { DatasetName, RunOptions } from './train-config.js';

/**
 * The data directory of a run: the flag or config value; else, for CIFAR-10, the embedded sample; else the folder
 * `wrn datasets download <name>` fills ($WRN_DATA_DIR/<name> or ~/.cache/wrn/datasets/<name>).
 */
export function resolveDataDir(dataset: DatasetName, dataDir: string | undefined, env: NodeJS.ProcessEnv = process.env): { dir: string; embedded: boolean } {
  if (dataDir) return { dir: dataDir, embedded: false };
  if (dataset === 'cifar10') return { dir: embeddedSampleDir(), embedded: true };
  return { dir: datasetDir(dataset, undefined, env), embedded: false };
}

export function loadSplit(dataset: DatasetName, dir: string, split: string): Promise<ImageDataset> {
  return asUsageError(`--data-dir ${dir}`, () => getDataset(dataset).load(dir, split));
}

/** The first `limit` images of a split, in file order (for quick runs). */
export function firstImages(dataset: ImageDataset, limit: number | undefined): ImageDataset {
  if (limit === undefined || limit >= dataset.count) return dataset;
  return selectImages(dataset, Int32Array.from({ length: limit }, (_, i) => i));
}

export function resolveNormalization(options: Pick<RunOptions, 'normalization' | 'dataset'>, train: ImageDataset): Normalization {
  const n = options.normalization ?? 'dataset';
  if (typeof n === 'object') return { kind: 'meanStd', mean: n.mean, std: n.std };
  switch (n) {
    case 'dataset':
      return meanStdNormalization(train);
    case 'paper':
      return PAPER_NORMALIZATION[options.dataset];
    case 'scale':
      return { kind: 'scale' };
    case 'none':
      return { kind: 'none' };
  }
}

export interface RunData {
  dataDir: string;
  embedded: boolean;
  train: ImageDataset;
  /** What each epoch is evaluated on: the test split, or the held-out part of the training split. */
  evaluation: ImageDataset;
  normalization: Normalization;
  notes: string[];
}

/** Loads and prepares the images of a run as its options say; errors about the files are the user's to fix. */
export async function loadRunData(options: RunOptions): Promise<RunData> {
  const { dir, embedded } = resolveDataDir(options.dataset, options.dataDir);
  let train = await loadSplit(options.dataset, dir, 'train');
  let evaluation: ImageDataset;
  if (options.validationSize !== undefined) {
    const split = await asUsageError('validationSize', () =>
      splitTrainValidation(train, { validationSize: options.validationSize!, seed: 0 }),
    );
    train = split.train;
    evaluation = split.validation;
  } else {
    evaluation = await loadSplit(options.dataset, dir, 'test');
  }
  train = firstImages(train, options.trainLimit);
  evaluation = firstImages(evaluation, options.testLimit);
  // Normalisation statistics come from the images the run trains on, never from the evaluation split.
  const normalization = resolveNormalization(options, train);
  return { dataDir: dir, embedded, train, evaluation, normalization, notes: [...train.notes, ...evaluation.notes] };
}

/**
 * The batches of one epoch, with a turn of the event loop before each: a step's awaits are all microtasks, so
 * without it a SIGINT handler would only run at the end of the epoch, and Ctrl-C would not stop after the step.
 */
async function* yieldingBatches(pipeline: Pipeline, epoch: number): AsyncGenerator<Batch> {
  const iterator = await pipeline.batches(epoch).iterator();
  for (;;) {
    await new Promise((resolve) => setImmediate(resolve));
    const next = await iterator.next();
    if (next.done) return;
    yield next.value;
  }
}

/** A datasets pipeline in the shape @wrn/training's loop takes. */
export function batchSource(pipeline: Pipeline, dataset: ImageDataset): BatchSource {
  return {
    batches: (epoch) => yieldingBatches(pipeline, epoch),
    size: pipeline.size,
    numClasses: pipeline.numClasses,
    classNames: [...dataset.classNames],
  };
}

export function trainPipeline(data: RunData, options: RunOptions, config: { batchSize: number; seed: number }): Pipeline {
  return createPipeline(data.train, {
    batchSize: config.batchSize,
    shuffle: true,
    seed: config.seed,
    augment: options.augmentation ?? 'none',
    normalization: data.normalization,
  });
}

export function evalPipeline(dataset: ImageDataset, normalization: Normalization, batchSize: number): Pipeline {
  return createPipeline(dataset, { batchSize, shuffle: false, normalization });
}
