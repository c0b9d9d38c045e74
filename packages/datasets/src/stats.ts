import { DatasetNotFoundError } from './errors.js';
import { channelStats } from './normalization.js';
import type { DatasetSpec } from './registry.js';
import { getDataset } from './registry.js';
import type { ImageDataset } from './types.js';

export interface SplitStats {
  /** Images in the split. */
  size: number;
  /** Images per class, indexed by label. */
  classCounts: number[];
  /** Per-channel mean and population std of the pixels, in 0..255 units. */
  mean: number[];
  std: number[];
  /** How the split was assembled, e.g. which batch files were missing. */
  notes: string[];
}

export interface DatasetStats {
  dataset: string;
  dir: string;
  numClasses: number;
  classNames: string[];
  splits: Record<string, SplitStats>;
  /** Splits the dataset defines that are not in `dir`. */
  missingSplits: string[];
}

export function splitStats(dataset: ImageDataset): SplitStats {
  const classCounts = new Array<number>(dataset.numClasses).fill(0);
  for (const label of dataset.labels) classCounts[label]! += 1;
  const { mean, std } = channelStats(dataset);
  return { size: dataset.count, classCounts, mean, std, notes: [...dataset.notes] };
}

/**
 * Loads every split of a registered dataset found in `dir`, one at a time, and summarises it: what
 * `wrn datasets stats <name> --json` prints.
 */
export function datasetStats(dataset: string | DatasetSpec, dir: string, options: { splits?: readonly string[] } = {}): DatasetStats {
  const spec = typeof dataset === 'string' ? getDataset(dataset) : dataset;
  const splits: Record<string, SplitStats> = {};
  const missingSplits: string[] = [];
  let classNames: readonly string[] = spec.classNames;
  for (const split of options.splits ?? spec.splits) {
    let loaded: ImageDataset;
    try {
      loaded = spec.load(dir, split);
    } catch (error) {
      if (error instanceof DatasetNotFoundError) {
        missingSplits.push(split);
        continue;
      }
      throw error;
    }
    classNames = loaded.classNames;
    splits[split] = splitStats(loaded);
  }
  if (Object.keys(splits).length === 0) {
    throw new DatasetNotFoundError(
      dir,
      `no split of ${spec.name} (${missingSplits.join(', ')}) found in ${dir}. Run \`wrn datasets download ${spec.name}\`, ` +
        `or point --data-dir at the folder that holds its files.`,
    );
  }
  return { dataset: spec.name, dir, numClasses: spec.numClasses, classNames: [...classNames], splits, missingSplits };
}
