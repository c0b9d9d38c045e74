import { DatasetFormatError } from './errors.js';
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

export interface CifarFileLayout {
  /** Label bytes before each image: 1 for CIFAR-10, 2 (coarse, fine) for CIFAR-100. */
  labelBytes: number;
  /** Which label byte is the label. */
  labelByte: number;
  /** Classes each label byte counts; every byte is checked, the chosen one gives `numClasses`. */
  labelRanges: readonly number[];
  /** Records an official file of this kind holds at most; more means the file is not what its name says. */
  maxRecords: number;
}

export function recordCount(file: string, size: number, layout: CifarFileLayout): number {
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

/** One CIFAR binary file's bytes and the name errors call it by (a path, a URL, a picked file's name). */
export interface CifarFileBytes {
  file: string;
  bytes: Uint8Array;
}

export const CIFAR10_LAYOUT: CifarFileLayout = { labelBytes: 1, labelByte: 0, labelRanges: [10], maxRecords: 10_000 };

/** The layout of CIFAR-100's train.bin/test.bin with the fine (100 classes) or coarse (20) label chosen. */
export function cifar100Layout(split: CifarSplit, labels: 'fine' | 'coarse'): CifarFileLayout {
  return { labelBytes: 2, labelByte: labels === 'fine' ? 1 : 0, labelRanges: [20, 100], maxRecords: split === 'train' ? 50_000 : 10_000 };
}

/**
 * Converts CIFAR binary records (label byte(s), then 1024 red, 1024 green, 1024 blue bytes, each plane row-major)
 * into `images` (NHWC) and `labels` starting at image `first`.
 */
function readCifarRecords(
  { file, bytes }: CifarFileBytes,
  records: number,
  layout: CifarFileLayout,
  images: Uint8Array,
  labels: Int32Array,
  first: number,
): void {
  const recordBytes = layout.labelBytes + CIFAR_IMAGE_BYTES;
  for (let r = 0; r < records; r++) {
    const base = r * recordBytes;
    layout.labelRanges.forEach((range, byte) => {
      const value = bytes[base + byte]!;
      if (value >= range) {
        const which = layout.labelRanges.length > 1 ? (byte === 0 ? 'coarse label' : 'fine label') : 'label';
        throw new DatasetFormatError(file, `${which} ${value} out of range: expected 0..${range - 1}`, {
          record: r,
          byteOffset: base + byte,
        });
      }
    });
    const image = first + r;
    labels[image] = bytes[base + layout.labelByte]!;
    const pixels = base + layout.labelBytes;
    const out = image * CIFAR_IMAGE_BYTES;
    // Planar (CHW) to interleaved (HWC): the layout tf.js convolutions expect.
    for (let p = 0; p < CIFAR_PIXELS; p++) {
      images[out + 3 * p] = bytes[pixels + p]!;
      images[out + 3 * p + 1] = bytes[pixels + CIFAR_PIXELS + p]!;
      images[out + 3 * p + 2] = bytes[pixels + 2 * CIFAR_PIXELS + p]!;
    }
  }
}

/** Parses CIFAR binary files of one layout, given as bytes, into one data set (files in the order given). */
export function cifarFromBytes(
  name: string,
  split: string,
  files: readonly CifarFileBytes[],
  layout: CifarFileLayout,
  classNames: readonly string[],
  notes: string[] = [],
): ImageDataset {
  const counts = files.map((f) => recordCount(f.file, f.bytes.length, layout));
  const count = counts.reduce((a, b) => a + b, 0);
  const images = new Uint8Array(count * CIFAR_IMAGE_BYTES);
  const labels = new Int32Array(count);
  let first = 0;
  files.forEach((f, i) => {
    readCifarRecords(f, counts[i]!, layout, images, labels, first);
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
    sourceFiles: files.map((f) => f.file),
    notes,
  };
}

/**
 * CIFAR-10 from the bytes of official binary files (data_batch_K.bin or test_batch.bin), fetched or picked in a
 * page or read from disk: `cifar10FromBytes([{ file: 'test_batch.bin', bytes }], 'test')`.
 */
export function cifar10FromBytes(files: readonly CifarFileBytes[], split: string, classNames: readonly string[] = CIFAR10_CLASS_NAMES): ImageDataset {
  return cifarFromBytes('cifar10', split, files, CIFAR10_LAYOUT, classNames);
}

/** CIFAR-100 from the bytes of its official train.bin or test.bin, with the fine (default) or coarse labels. */
export function cifar100FromBytes(
  file: CifarFileBytes,
  split: CifarSplit,
  labels: 'fine' | 'coarse' = 'fine',
  classNames: readonly string[] = labels === 'fine' ? CIFAR100_FINE_CLASS_NAMES : CIFAR100_COARSE_CLASS_NAMES,
): ImageDataset {
  return cifarFromBytes('cifar100', split, [file], cifar100Layout(split, labels), classNames);
}
