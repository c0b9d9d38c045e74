import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { DatasetFormatError, DatasetNotFoundError, readMat, svhnFromMat } from '../src/index.js';
import { loadSvhn } from '../src/node.js';
import { svhnFixture, writeMatFixture } from './mat-writer.js';
import { tempDir } from './helpers.js';

const scratch = tempDir('svhn');
afterAll(() => scratch.remove());

const digits = [1, 9, 0, 5, 0, 3, 2];
const pixel = (n: number, r: number, c: number, k: number) => n * 31 + r * 7 + c * 3 + k * 101;

function expectImages(dataset: ReturnType<typeof loadSvhn>): void {
  expect([dataset.count, dataset.height, dataset.width, dataset.channels]).toEqual([7, 32, 32, 3]);
  expect(Array.from(dataset.labels)).toEqual(digits);
  for (let n = 0; n < 7; n++)
    for (const [r, c, k] of [
      [0, 0, 0],
      [1, 0, 2],
      [0, 1, 1],
      [31, 17, 2],
      [5, 31, 0],
    ] as const) {
      expect(dataset.images[n * 3072 + (r * 32 + c) * 3 + k]).toBe(pixel(n, r, c, k) & 255);
    }
}

describe('loadSvhn on fixtures in the MATLAB v5 format', () => {
  it('reads a compressed file with y stored as miUINT8 (as MATLAB writes it)', () => {
    const dir = join(scratch.path, 'compressed');
    mkdirSync(dir);
    writeFileSync(join(dir, 'train_32x32.mat'), svhnFixture(digits, pixel, { compress: true, labelsAs: 2 }));
    const train = loadSvhn(dir);
    expectImages(train);
    expect([train.name, train.split, train.numClasses]).toEqual(['svhn', 'train', 10]);
  });

  it('reads a plain file with y stored as miDOUBLE', () => {
    const dir = join(scratch.path, 'plain');
    mkdirSync(dir);
    writeFileSync(join(dir, 'test_32x32.mat'), svhnFixture(digits, pixel, { compress: false, labelsAs: 9 }));
    expectImages(loadSvhn(dir, { split: 'test' }));
  });

  it('reads a big-endian file', () => {
    const bytes = svhnFixture(digits, pixel, { compress: false, labelsAs: 9, littleEndian: false });
    expectImages(svhnFromMat(bytes, 'be.mat', 'extra'));
  });

  it('says where it looked and how to place the file when it is missing', () => {
    expect(() => loadSvhn(scratch.path, { split: 'extra' })).toThrowError(DatasetNotFoundError);
    expect(() => loadSvhn(scratch.path, { split: 'extra' })).toThrowError(
      `SVHN extra split not found: ${join(scratch.path, 'extra_32x32.mat')} does not exist. Run \`wrn datasets download svhn\`, ` +
        `or download http://ufldl.stanford.edu/housenumbers/extra_32x32.mat and place it in ${scratch.path}.`,
    );
  });
});

describe('readMat', () => {
  it('decodes numeric classes from each storage type and lists other variables without data', () => {
    const bytes = writeMatFixture(
      [
        { name: 'counts', classId: 10, dims: [2, 3], values: [-1, 2, -300, 4, 5, 6], storeAs: 3 },
        { name: 'w', classId: 7, dims: [1, 2], values: [0.5, -2.25], storeAs: 7 },
        { name: 'one', classId: 6, dims: [1, 1], values: [7], storeAs: 2 },
        { name: 'label', classId: 4, dims: [1, 3], values: [97, 98, 99], storeAs: 4 },
      ],
      { compress: true },
    );
    const vars = readMat(bytes, 'mixed.mat');
    expect([...vars.keys()]).toEqual(['counts', 'w', 'one', 'label']);
    expect(vars.get('counts')!.data).toEqual(Int16Array.from([-1, 2, -300, 4, 5, 6]));
    expect(vars.get('counts')!.dims).toEqual([2, 3]);
    expect(vars.get('w')!.data).toEqual(Float32Array.from([0.5, -2.25]));
    expect(vars.get('one')!.data).toEqual(Float64Array.from([7]));
    expect(vars.get('label')!.className).toBe('mxCHAR_CLASS');
    expect(vars.get('label')!.data).toBeUndefined();
  });
});

describe('bad SVHN / MAT input', () => {
  const good = svhnFixture(digits, pixel, { compress: true });

  it('a truncated file names the element and its byte offset', () => {
    const cut = good.subarray(0, 400);
    expect(() => svhnFromMat(cut, 'cut.mat', 'train')).toThrowError(DatasetFormatError);
    expect(() => svhnFromMat(cut, 'cut.mat', 'train')).toThrowError(
      /^cut\.mat \(byte offset 128\): truncated miCOMPRESSED element: it declares \d+ bytes but only 264 remain$/,
    );
    const plain = svhnFixture(digits, pixel, { compress: false });
    expect(() => svhnFromMat(plain.subarray(0, 5000), 'cut2.mat', 'train')).toThrowError(
      /^cut2\.mat \(byte offset 128\): truncated miMATRIX element: it declares 21560 bytes but only 4864 remain$/,
    );
  });

  it('a wrong top-level element names the type found and expected', () => {
    const bytes = new Uint8Array(good.length + 16);
    bytes.set(good.subarray(0, 128));
    new DataView(bytes.buffer).setUint32(128, 5, true);
    new DataView(bytes.buffer).setUint32(132, 8, true);
    expect(() => svhnFromMat(bytes, 'odd.mat', 'train')).toThrowError(
      'odd.mat (byte offset 128): top-level element: element type miINT32, expected miMATRIX or miCOMPRESSED',
    );
  });

  it('X of the wrong class, or of the wrong shape, is rejected', () => {
    const doubleX = writeMatFixture(
      [
        { name: 'X', classId: 6, dims: [32, 32, 3, 1], values: new Uint8Array(3072), storeAs: 2 },
        { name: 'y', classId: 6, dims: [1, 1], values: [1], storeAs: 2 },
      ],
      { compress: true },
    );
    expect(() => svhnFromMat(doubleX, 'dx.mat', 'train')).toThrowError('dx.mat: variable X is mxDOUBLE_CLASS, expected mxUINT8_CLASS');
    const flat = writeMatFixture(
      [
        { name: 'X', classId: 9, dims: [32, 96, 1], values: new Uint8Array(3072), storeAs: 2 },
        { name: 'y', classId: 6, dims: [1, 1], values: [1], storeAs: 2 },
      ],
      { compress: false },
    );
    expect(() => svhnFromMat(flat, 'flat.mat', 'train')).toThrowError(
      'flat.mat: variable X has dimensions [32, 96, 1], expected [32, 32, 3, N]',
    );
    const onlyX = writeMatFixture([{ name: 'X', classId: 9, dims: [32, 32, 3, 1], values: new Uint8Array(3072), storeAs: 2 }], {
      compress: false,
    });
    expect(() => svhnFromMat(onlyX, 'nox.mat', 'train')).toThrowError('nox.mat: expected variables X and y, found X (mxUINT8_CLASS)');
  });

  it('data that does not fill the declared dimensions is rejected with the counts', () => {
    const short = writeMatFixture(
      [{ name: 'y', classId: 6, dims: [3, 1], values: [1, 2], storeAs: 9 }],
      { compress: true },
    );
    expect(() => readMat(short, 'short.mat')).toThrowError(
      "short.mat (byte offset 128): variable 'y' (mxDOUBLE_CLASS, [3, 1]) real part: 16 bytes of miDOUBLE hold 2 values, expected 3 (offset 48 inside the compressed element at byte 128)",
    );
  });

  it('a label out of range names the record', () => {
    const bytes = writeMatFixture(
      [
        { name: 'X', classId: 9, dims: [32, 32, 3, 3], values: new Uint8Array(3 * 3072), storeAs: 2 },
        { name: 'y', classId: 6, dims: [3, 1], values: [10, 4, 11], storeAs: 2 },
      ],
      { compress: true },
    );
    expect(() => svhnFromMat(bytes, 'labels.mat', 'train')).toThrowError(
      'labels.mat (record 2): label y(3) = 11 out of range: expected 1..10 (10 is digit 0)',
    );
  });

  it('a file that is not a v5 MAT-file says what it expected', () => {
    const bytes = new Uint8Array(200);
    bytes.set([0x89, 0x48, 0x44, 0x46]);
    expect(() => readMat(bytes, 'v73.mat')).toThrowError(
      'v73.mat (byte offset 126): not a Level 5 MAT-file: endian indicator is "\\u0000\\u0000", expected "IM" or "MI" (an HDF5-based v7.3 file? save it with -v7)',
    );
    expect(() => readMat(new Uint8Array(10), 'tiny.mat')).toThrowError(
      'tiny.mat (byte offset 10): 10 bytes is too short for the 128-byte MAT-file header',
    );
  });

  it('corrupt compressed data is reported at its element', () => {
    const bytes = good.slice();
    bytes.fill(0xff, 140, 160);
    expect(() => svhnFromMat(bytes, 'bad.mat', 'train')).toThrowError(/^bad\.mat \(byte offset 128\): miCOMPRESSED element does not inflate: /);
  });
});
