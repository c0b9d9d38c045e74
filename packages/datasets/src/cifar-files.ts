import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

import {
  CIFAR10_ARCHIVE_FOLDER,
  CIFAR10_CLASS_NAMES,
  CIFAR10_LAYOUT,
  CIFAR10_TEST_FILE,
  CIFAR10_TRAIN_FILES,
  CIFAR100_ARCHIVE_FOLDER,
  CIFAR100_COARSE_CLASS_NAMES,
  CIFAR100_FINE_CLASS_NAMES,
  cifar100Layout,
  cifarFromBytes,
  type CifarFileBytes,
  type LoadCifar10Options,
  type LoadCifar100Options,
} from './cifar.js';
import { DatasetFormatError, DatasetNotFoundError } from './errors.js';
import type { ImageDataset } from './types.js';

// CIFAR from a directory on disk (Node): finds the official files and hands their bytes to cifar.ts's parser.

function readAll(files: readonly string[]): CifarFileBytes[] {
  return files.map((file) => ({ file, bytes: readFileSync(file) }));
}

/** `dir` itself when it holds any of `markers`, else `dir/<archiveFolder>` when that does, else undefined. */
function findDataDir(dir: string, archiveFolder: string, markers: readonly string[]): string | undefined {
  for (const candidate of [dir, join(dir, archiveFolder)]) {
    if (markers.some((marker) => existsSync(join(candidate, marker)))) return candidate;
  }
  return undefined;
}

function readClassNames(file: string, expected: number, fallback: readonly string[]): readonly string[] {
  if (!existsSync(file)) return fallback;
  if (!statSync(file).isFile()) throw new DatasetFormatError(file, 'is a directory, expected a text file of class names (one a line)');
  const names = readFileSync(file, 'utf8')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
  if (names.length !== expected) {
    throw new DatasetFormatError(file, `${names.length} class names, expected ${expected} (one a line)`);
  }
  return names;
}

/**
 * Loads CIFAR-10 in its official binary layout (`cifar-10-batches-bin/`). `dir` is that folder or its parent.
 * A training split with fewer than five batch files loads the ones present and says so in `notes`.
 */
export function loadCifar10(dir: string, options: LoadCifar10Options = {}): ImageDataset {
  const split = options.split ?? 'train';
  if (split !== 'train' && split !== 'test') {
    throw new Error(`loadCifar10: split '${String(split)}' is not one of 'train', 'test'`);
  }
  const markers = [...CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE];
  const dataDir = findDataDir(dir, CIFAR10_ARCHIVE_FOLDER, markers);
  const wanted = split === 'train' ? CIFAR10_TRAIN_FILES : [CIFAR10_TEST_FILE];
  const present = dataDir === undefined ? [] : wanted.filter((file) => existsSync(join(dataDir, file)));
  if (dataDir === undefined || present.length === 0) {
    throw new DatasetNotFoundError(
      dataDir ?? dir,
      `CIFAR-10 ${split} split not found: looked for ${wanted.join(', ')} in ${dir}` +
        `${dataDir === undefined ? ` and ${join(dir, CIFAR10_ARCHIVE_FOLDER)}` : ''}. ` +
        `Run \`wrn datasets download cifar10\`, or extract cifar-10-binary.tar.gz there by hand.`,
    );
  }
  const notes: string[] = [];
  const missing = wanted.filter((file) => !present.includes(file));
  if (missing.length > 0) {
    notes.push(
      `CIFAR-10 train: loaded ${present.join(', ')} from ${dataDir}; ${missing.join(', ')} not present, ` +
        `so this is a partial training split`,
    );
  }
  const classNames = readClassNames(join(dataDir, 'batches.meta.txt'), 10, CIFAR10_CLASS_NAMES);
  return cifarFromBytes('cifar10', split, readAll(present.map((file) => join(dataDir, file))), CIFAR10_LAYOUT, classNames, notes);
}

/**
 * Loads CIFAR-100 in its official binary layout (`cifar-100-binary/train.bin`, `test.bin`: each record a coarse
 * label byte, a fine label byte, then the image). `dir` is that folder or its parent.
 */
export function loadCifar100(dir: string, options: LoadCifar100Options = {}): ImageDataset {
  const split = options.split ?? 'train';
  const labels = options.labels ?? 'fine';
  if (split !== 'train' && split !== 'test') {
    throw new Error(`loadCifar100: split '${String(split)}' is not one of 'train', 'test'`);
  }
  if (labels !== 'fine' && labels !== 'coarse') {
    throw new Error(`loadCifar100: labels '${String(labels)}' is not one of 'fine', 'coarse'`);
  }
  const fileName = `${split}.bin`;
  const dataDir = findDataDir(dir, CIFAR100_ARCHIVE_FOLDER, [fileName]);
  if (dataDir === undefined) {
    throw new DatasetNotFoundError(
      dir,
      `CIFAR-100 ${split} split not found: looked for ${fileName} in ${dir} and ` +
        `${join(dir, CIFAR100_ARCHIVE_FOLDER)}. Run \`wrn datasets download cifar100\`, or extract ` +
        `cifar-100-binary.tar.gz there by hand.`,
    );
  }
  const fine = labels === 'fine';
  const classNames = fine
    ? readClassNames(join(dataDir, 'fine_label_names.txt'), 100, CIFAR100_FINE_CLASS_NAMES)
    : readClassNames(join(dataDir, 'coarse_label_names.txt'), 20, CIFAR100_COARSE_CLASS_NAMES);
  return cifarFromBytes('cifar100', split, readAll([join(dataDir, fileName)]), cifar100Layout(split, labels), classNames);
}
