import { DatasetFormatError } from './errors.js';
import { MX, readMat } from './mat.js';
import type { ImageDataset } from './types.js';

export type SvhnSplit = 'train' | 'test' | 'extra';

export const SVHN_CLASS_NAMES: readonly string[] = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

export const SVHN_FILES: Record<SvhnSplit, string> = {
  train: 'train_32x32.mat',
  test: 'test_32x32.mat',
  extra: 'extra_32x32.mat',
};

export interface LoadSvhnOptions {
  /** Which file to read: train_32x32.mat, test_32x32.mat or extra_32x32.mat. Default 'train'. */
  split?: SvhnSplit;
}

/**
 * Converts the variables of an SVHN cropped-digits file (`X` uint8 [32,32,3,N] column-major, `y` [N,1] with digit
 * 0 stored as 10) into NHWC images and labels 0..9.
 */
export function svhnFromMat(bytes: Uint8Array, file: string, split: string): ImageDataset {
  const variables = readMat(bytes, file, { variables: ['X', 'y'] });
  const x = variables.get('X');
  const y = variables.get('y');
  const found = [...variables.values()].map((v) => `${v.name} (${v.className})`).join(', ') || 'none';
  if (x === undefined || y === undefined) {
    throw new DatasetFormatError(file, `expected variables X and y, found ${found}`);
  }
  if (x.classId !== MX.UINT8 || x.data === undefined) {
    throw new DatasetFormatError(file, `variable X is ${x.className}, expected mxUINT8_CLASS`);
  }
  const [height, width, channels, count] = x.dims;
  if (x.dims.length !== 4 || height !== 32 || width !== 32 || channels !== 3 || count === undefined) {
    throw new DatasetFormatError(file, `variable X has dimensions [${x.dims.join(', ')}], expected [32, 32, 3, N]`);
  }
  if (y.data === undefined) throw new DatasetFormatError(file, `variable y is ${y.className}, expected a numeric class`);
  const yCount = y.dims.reduce((a, b) => a * b, 1);
  if (y.dims.length !== 2 || Math.min(y.dims[0]!, y.dims[1]!) !== 1 || yCount !== count) {
    throw new DatasetFormatError(file, `variable y has dimensions [${y.dims.join(', ')}], expected [${count}, 1] to match X`);
  }
  const labels = new Int32Array(count);
  for (let n = 0; n < count; n++) {
    const digit = y.data[n]!;
    if (!Number.isInteger(digit) || digit < 1 || digit > 10) {
      throw new DatasetFormatError(file, `label y(${n + 1}) = ${digit} out of range: expected 1..10 (10 is digit 0)`, {
        record: n,
      });
    }
    labels[n] = digit === 10 ? 0 : digit;
  }
  const pixels = x.data as Uint8Array;
  const images = new Uint8Array(count * 3072);
  // Column-major [row, col, channel, n]: element (r, c, k, n) sits at r + 32c + 1024k + 3072n.
  for (let n = 0; n < count; n++) {
    const src = n * 3072;
    for (let k = 0; k < 3; k++) {
      for (let c = 0; c < 32; c++) {
        for (let r = 0; r < 32; r++) images[src + (r * 32 + c) * 3 + k] = pixels[src + r + 32 * c + 1024 * k]!;
      }
    }
  }
  return {
    name: 'svhn',
    split,
    count,
    height: 32,
    width: 32,
    channels: 3,
    images,
    labels,
    numClasses: 10,
    classNames: SVHN_CLASS_NAMES,
    sourceFiles: [file],
    notes: [],
  };
}
