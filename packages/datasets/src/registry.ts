import { existsSync } from 'node:fs';
import { join } from 'node:path';

import type { AugmentationName } from './augment.js';
import {
  CIFAR10_ARCHIVE_FOLDER,
  CIFAR10_CLASS_NAMES,
  CIFAR10_TEST_FILE,
  CIFAR10_TRAIN_FILES,
  CIFAR100_ARCHIVE_FOLDER,
  CIFAR100_FINE_CLASS_NAMES,
} from './cifar.js';
import { loadCifar10, loadCifar100 } from './cifar-files.js';
import type { Normalization } from './normalization.js';
import { PAPER_NORMALIZATION } from './normalization.js';
import { SVHN_CLASS_NAMES, SVHN_FILES } from './svhn.js';
import { loadSvhn } from './svhn-files.js';
import type { SvhnSplit } from './svhn.js';
import type { ImageDataset } from './types.js';

/** One file a dataset is published as. */
export interface DatasetFile {
  url: string;
  /** Name the file is saved under in the dataset directory. */
  fileName: string;
  /** MD5 published with the file (hex, lower case). */
  md5: string;
  /** Published size in bytes where known, for progress before the server says. */
  bytes?: number;
  /** A .tar.gz to unpack into the dataset directory after verification. */
  archive: boolean;
  /** Splits this file provides. */
  splits: readonly string[];
}

export type DatasetName = 'cifar10' | 'cifar100' | 'svhn';

export interface DatasetSpec {
  name: DatasetName;
  title: string;
  files: readonly DatasetFile[];
  /** Splits `load` accepts; `defaultSplits` are the ones `download` fetches unless told otherwise. */
  splits: readonly string[];
  defaultSplits: readonly string[];
  numClasses: number;
  classNames: readonly string[];
  /** Files (relative to the dataset directory) whose presence means a split needs no download. */
  splitFiles: Readonly<Record<string, readonly string[]>>;
  /** The preprocessing the WRN paper used for this dataset. */
  paperNormalization: Normalization;
  paperAugmentation: AugmentationName;
  /** Reads one split from the dataset directory (the folder `download` fills, or a hand-made one). */
  load(dir: string, split: string): ImageDataset;
}

function splitError(name: string, split: string, splits: readonly string[]): Error {
  return new Error(`${name}: split '${split}' is not one of ${splits.map((s) => `'${s}'`).join(', ')}`);
}

const cifar10: DatasetSpec = {
  name: 'cifar10',
  title: 'CIFAR-10 (binary version)',
  files: [
    {
      url: 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz',
      fileName: 'cifar-10-binary.tar.gz',
      md5: 'c32a1d4ab5d03f1284b67883e8d87530',
      bytes: 170_052_171,
      archive: true,
      splits: ['train', 'test'],
    },
  ],
  splits: ['train', 'test'],
  defaultSplits: ['train', 'test'],
  numClasses: 10,
  classNames: CIFAR10_CLASS_NAMES,
  splitFiles: {
    train: CIFAR10_TRAIN_FILES.map((f) => join(CIFAR10_ARCHIVE_FOLDER, f)),
    test: [join(CIFAR10_ARCHIVE_FOLDER, CIFAR10_TEST_FILE)],
  },
  paperNormalization: PAPER_NORMALIZATION.cifar10,
  paperAugmentation: 'reflect',
  load(dir, split) {
    if (split !== 'train' && split !== 'test') throw splitError('cifar10', split, this.splits);
    return loadCifar10(dir, { split });
  },
};

const cifar100: DatasetSpec = {
  name: 'cifar100',
  title: 'CIFAR-100 (binary version, fine labels)',
  files: [
    {
      url: 'https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz',
      fileName: 'cifar-100-binary.tar.gz',
      md5: '03b5dce01913d631647c71ecec9e9cb8',
      bytes: 168_513_733,
      archive: true,
      splits: ['train', 'test'],
    },
  ],
  splits: ['train', 'test'],
  defaultSplits: ['train', 'test'],
  numClasses: 100,
  classNames: CIFAR100_FINE_CLASS_NAMES,
  splitFiles: {
    train: [join(CIFAR100_ARCHIVE_FOLDER, 'train.bin')],
    test: [join(CIFAR100_ARCHIVE_FOLDER, 'test.bin')],
  },
  paperNormalization: PAPER_NORMALIZATION.cifar100,
  paperAugmentation: 'reflect',
  load(dir, split) {
    if (split !== 'train' && split !== 'test') throw splitError('cifar100', split, this.splits);
    return loadCifar100(dir, { split });
  },
};

const SVHN_MD5: Record<SvhnSplit, string> = {
  train: 'e26dedcc434d2e4c54c9b2d4a06d8373',
  test: 'eb5a983be6a315427106f1b164d9cef3',
  extra: 'a93ce644f1a588dc4d68dda5feec44a7',
};

const svhn: DatasetSpec = {
  name: 'svhn',
  title: 'SVHN cropped digits (format 2)',
  files: (['train', 'test', 'extra'] as const).map((split) => ({
    url: `http://ufldl.stanford.edu/housenumbers/${SVHN_FILES[split]}`,
    fileName: SVHN_FILES[split],
    md5: SVHN_MD5[split],
    archive: false,
    splits: [split],
  })),
  splits: ['train', 'test', 'extra'],
  // extra is 1.3 GB and only some recipes use it: fetched when asked for.
  defaultSplits: ['train', 'test'],
  numClasses: 10,
  classNames: SVHN_CLASS_NAMES,
  splitFiles: { train: [SVHN_FILES.train], test: [SVHN_FILES.test], extra: [SVHN_FILES.extra] },
  paperNormalization: PAPER_NORMALIZATION.svhn,
  paperAugmentation: 'none',
  load(dir, split) {
    if (split !== 'train' && split !== 'test' && split !== 'extra') throw splitError('svhn', split, this.splits);
    return loadSvhn(dir, { split });
  },
};

/** The datasets `wrn datasets download|stats` knows, by name. */
export const DATASETS: Readonly<Record<DatasetName, DatasetSpec>> = { cifar10, cifar100, svhn };

export function getDataset(name: string): DatasetSpec {
  const spec = (DATASETS as Record<string, DatasetSpec | undefined>)[name];
  if (spec === undefined) {
    throw new Error(`unknown dataset '${name}': expected one of ${Object.keys(DATASETS).join(', ')}`);
  }
  return spec;
}

/** Whether every file of `split` is already in `dir`. */
export function splitPresent(spec: DatasetSpec, dir: string, split: string): boolean {
  const files = spec.splitFiles[split];
  return files !== undefined && files.every((file) => existsSync(join(dir, file)));
}
