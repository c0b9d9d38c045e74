import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { DatasetFormatError, DatasetNotFoundError } from './errors.js';
import type { ImageDataset } from './types.js';

export const CIFAR10_CLASS_NAMES: readonly string[] = [
  'airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck',
];

export const CIFAR100_COARSE_CLASS_NAMES: readonly string[] = [
  'aquatic_mammals', 'fish', 'flowers', 'food_containers', 'fruit_and_vegetables', 'household_electrical_devices',
  'household_furniture', 'insects', 'large_carnivores', 'large_man-made_outdoor_things',
  'large_natural_outdoor_scenes', 'large_omnivores_and_herbivores', 'medium_mammals', 'non-insect_invertebrates',
  'people', 'reptiles', 'small_mammals', 'trees', 'vehicles_1', 'vehicles_2',
];

export const CIFAR100_FINE_CLASS_NAMES: readonly string[] = [
  'apple', 'aquarium_fish', 'baby', 'bear', 'beaver', 'bed', 'bee', 'beetle', 'bicycle', 'bottle', 'bowl', 'boy',
  'bridge', 'bus', 'butterfly', 'camel', 'can', 'castle', 'caterpillar', 'cattle', 'chair', 'chimpanzee', 'clock',
  'cloud', 'cockroach', 'couch', 'crab', 'crocodile', 'cup', 'dinosaur', 'dolphin', 'elephant', 'flatfish', 'forest',
  'fox', 'girl', 'hamster', 'house', 'kangaroo', 'keyboard', 'lamp', 'lawn_mower', 'leopard', 'lion', 'lizard',
  'lobster', 'man', 'maple_tree', 'motorcycle', 'mountain', 'mouse', 'mushroom', 'oak_tree', 'orange', 'orchid',
  'otter', 'palm_tree', 'pear', 'pickup_truck', 'pine_tree', 'plain', 'plate', 'poppy', 'porcupine', 'possum',
  'rabbit', 'raccoon', 'ray', 'road', 'rocket', 'rose', 'sea', 'seal', 'shark', 'shrew', 'skunk', 'skyscraper',
  'snail', 'snake', 'spider', 'squirrel', 'streetcar', 'sunflower', 'sweet_pepper', 'table', 'tank', 'telephone',
  'television', 'tiger', 'tractor', 'train', 'trout', 'tulip', 'turtle', 'wardrobe', 'whale', 'willow_tree', 'wolf',
  'woman', 'worm',
];

const CIFAR_SIDE = 32;
const CIFAR_PIXELS = CIFAR_SIDE * CIFAR_SIDE;
const CIFAR_IMAGE_BYTES = CIFAR_PIXELS * 3;
/** Records converted per read: bounds the scratch buffer to ~3 MB whatever the file size. */
const RECORDS_PER_READ = 1024;

export const CIFAR10_TRAIN_FILES: readonly string[] = [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`);
export const CIFAR10_TEST_FILE = 'test_batch.bin';
/** Folder the official cifar-10-binary.tar.gz extracts into. */
export const CIFAR10_ARCHIVE_FOLDER = 'cifar-10-batches-bin';
export const CIFAR100_ARCHIVE_FOLDER = 'cifar-100-binary';

export type CifarSplit = 'train' | 'test';

export interface LoadCifar10Options {
  /** 'train' reads whichever of data_batch_1..5.bin are present; 'test' reads test_batch.bin. Default 'train'. */
  split?: CifarSplit;
}

export interface LoadCifar100Options {
  /** 'train' reads train.bin, 'test' reads test.bin. Default 'train'. */
  split?: CifarSplit;
  /** Which of the two label bytes to use: 'fine' (100 classes, default) or 'coarse' (20 superclasses). */
  labels?: 'fine' | 'coarse';
}

interface CifarFileLayout {
  /** Label bytes before each image: 1 for CIFAR-10, 2 (coarse, fine) for CIFAR-100. */
  labelBytes: number;
  /** Which label byte is the label. */
  labelByte: number;
  /** Classes each label byte counts; every byte is checked, the chosen one gives `numClasses`. */
  labelRanges: readonly number[];
  /** Records an official file of this kind holds at most; more means the file is not what its name says. */
  maxRecords: number;
}

function recordCount(file: string, size: number, layout: CifarFileLayout): number {
  const recordBytes = layout.labelBytes + CIFAR_IMAGE_BYTES;
  const records = Math.floor(size / recordBytes);
  const leftover = size - records * recordBytes;
  if (size === 0) {
    throw new DatasetFormatError(file, `empty file: expected records of ${recordBytes} bytes`, { byteOffset: 0 });
  }
  if (leftover !== 0) {
    throw new DatasetFormatError(
      file,
      `truncated record: ${leftover} of ${recordBytes} bytes present (file is ${size} bytes, not a multiple of the ` +
        `${recordBytes}-byte record: ${layout.labelBytes} label byte(s) + ${CIFAR_IMAGE_BYTES} pixel bytes)`,
      { record: records, byteOffset: records * recordBytes },
    );
  }
  if (records > layout.maxRecords) {
    throw new DatasetFormatError(
      file,
      `oversized file: ${records} records (${size} bytes), expected at most ${layout.maxRecords} records ` +
        `(${layout.maxRecords * recordBytes} bytes)`,
      { record: layout.maxRecords, byteOffset: layout.maxRecords * recordBytes },
    );
  }
  return records;
}

/**
 * Reads CIFAR binary records (label byte(s), then 1024 red, 1024 green, 1024 blue bytes, each plane row-major)
 * into `images` (NHWC) and `labels` starting at image `first`.
 */
function readCifarRecords(
  file: string,
  records: number,
  layout: CifarFileLayout,
  images: Uint8Array,
  labels: Int32Array,
  first: number,
): void {
  const recordBytes = layout.labelBytes + CIFAR_IMAGE_BYTES;
  const scratch = Buffer.allocUnsafe(recordBytes * Math.min(records, RECORDS_PER_READ));
  const fd = openSync(file, 'r');
  try {
    for (let start = 0; start < records; start += RECORDS_PER_READ) {
      const chunkRecords = Math.min(RECORDS_PER_READ, records - start);
      const wanted = chunkRecords * recordBytes;
      let got = 0;
      while (got < wanted) {
        const n = readSync(fd, scratch, got, wanted - got, start * recordBytes + got);
        if (n === 0) {
          throw new DatasetFormatError(file, `file ended early: expected ${records * recordBytes} bytes`, {
            byteOffset: start * recordBytes + got,
          });
        }
        got += n;
      }
      for (let r = 0; r < chunkRecords; r++) {
        const base = r * recordBytes;
        layout.labelRanges.forEach((range, byte) => {
          const value = scratch[base + byte]!;
          if (value >= range) {
            const which = layout.labelRanges.length > 1 ? (byte === 0 ? 'coarse label' : 'fine label') : 'label';
            throw new DatasetFormatError(file, `${which} ${value} out of range: expected 0..${range - 1}`, {
              record: start + r,
              byteOffset: (start + r) * recordBytes + byte,
            });
          }
        });
        const image = first + start + r;
        labels[image] = scratch[base + layout.labelByte]!;
        const pixels = base + layout.labelBytes;
        const out = image * CIFAR_IMAGE_BYTES;
        // Planar (CHW) to interleaved (HWC): the layout tf.js convolutions expect.
        for (let p = 0; p < CIFAR_PIXELS; p++) {
          images[out + 3 * p] = scratch[pixels + p]!;
          images[out + 3 * p + 1] = scratch[pixels + CIFAR_PIXELS + p]!;
          images[out + 3 * p + 2] = scratch[pixels + 2 * CIFAR_PIXELS + p]!;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
}

function loadCifarFiles(
  name: string,
  split: string,
  files: readonly string[],
  layout: CifarFileLayout,
  classNames: readonly string[],
  notes: string[],
): ImageDataset {
  const counts = files.map((file) => recordCount(file, statSync(file).size, layout));
  const count = counts.reduce((a, b) => a + b, 0);
  const images = new Uint8Array(count * CIFAR_IMAGE_BYTES);
  const labels = new Int32Array(count);
  let first = 0;
  files.forEach((file, i) => {
    readCifarRecords(file, counts[i]!, layout, images, labels, first);
    first += counts[i]!;
  });
  return {
    name,
    split,
    count,
    height: CIFAR_SIDE,
    width: CIFAR_SIDE,
    channels: 3,
    images,
    labels,
    numClasses: layout.labelRanges[layout.labelByte]!,
    classNames,
    sourceFiles: [...files],
    notes,
  };
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
  return loadCifarFiles(
    'cifar10',
    split,
    present.map((file) => join(dataDir, file)),
    { labelBytes: 1, labelByte: 0, labelRanges: [10], maxRecords: 10_000 },
    classNames,
    notes,
  );
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
  return loadCifarFiles(
    'cifar100',
    split,
    [join(dataDir, fileName)],
    {
      labelBytes: 2,
      labelByte: fine ? 1 : 0,
      labelRanges: [20, 100],
      maxRecords: split === 'train' ? 50_000 : 10_000,
    },
    classNames,
    [],
  );
}
