import { mkdirSync, writeFileSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';

import { PNG } from 'pngjs';
import * as tar from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { DatasetFormatError, DatasetNotFoundError } from '../src/index.js';
import { loadCifar10, loadImageFolder } from '../src/node.js';
import { CIFAR10_SUBSET, NO_SHARED_DATA, SHARED_DATA, tempDir } from './helpers.js';

const scratch = tempDir('folder');
afterAll(() => scratch.remove());

const CLASSES = ['deer', 'frog', 'truck'];
const PER_CLASS = 4;

beforeAll(async () => {
  if (NO_SHARED_DATA) return;
  // A few files of three classes from the real 50k-image JPEG set; extracting all of it is not needed.
  const wanted = new Set(
    CLASSES.flatMap((name) => Array.from({ length: PER_CLASS }, (_, i) => `train/${name}/${String(i).padStart(4, '0')}.jpg`)),
  );
  await tar.x({
    file: join(SHARED_DATA, 'cifar10-jpeg', 'train.tar.gz'),
    cwd: scratch.path,
    filter: (path) => wanted.has(path.replace(/^\.\//, '')),
  });
});

function meanAbsoluteDifference(a: Uint8Array, b: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i]! - b[i]!);
  return sum / a.length;
}

describe.skipIf(NO_SHARED_DATA)('loadImageFolder on the real CIFAR-10 JPEG set', () => {
  it('labels class folders in sorted order and decodes 32x32 RGB images', () => {
    const dataset = loadImageFolder(join(scratch.path, 'train'));
    expect(dataset.classNames).toEqual(CLASSES);
    expect([dataset.count, dataset.height, dataset.width, dataset.channels, dataset.numClasses]).toEqual([12, 32, 32, 3, 3]);
    expect(Array.from(dataset.labels)).toEqual([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]);
    expect(dataset.sourceFiles[4]).toBe(join(scratch.path, 'train', 'frog', '0000.jpg'));
    expect(dataset.split).toBe('train');
  });

  it('decodes the same pixels as the binary set, up to JPEG loss', () => {
    // data_batch_1 opens with frog, truck, truck, deer: the first image of each class folder.
    const binary = loadCifar10(CIFAR10_SUBSET);
    const folder = loadImageFolder(join(scratch.path, 'train'), { maxPerClass: 1 });
    const firstOf = (label: number) => binary.labels.indexOf(label);
    const pairs: Array<[number, number]> = [
      [0, firstOf(4)],
      [1, firstOf(6)],
      [2, firstOf(9)],
    ];
    for (const [folderIndex, binaryIndex] of pairs) {
      const decoded = folder.images.subarray(folderIndex * 3072, (folderIndex + 1) * 3072);
      const original = binary.images.subarray(binaryIndex * 3072, (binaryIndex + 1) * 3072);
      expect(meanAbsoluteDifference(decoded, original)).toBeLessThan(12);
      // A different image of the same class is far away: the match above is not chance.
      const other = binary.images.subarray((binaryIndex + 1) * 3072, (binaryIndex + 2) * 3072);
      expect(meanAbsoluteDifference(decoded, other)).toBeGreaterThan(30);
    }
  });

  it('reads PNG files exactly, dropping alpha', () => {
    const root = join(scratch.path, 'png');
    mkdirSync(join(root, 'a'), { recursive: true });
    mkdirSync(join(root, 'b'), { recursive: true });
    const png = new PNG({ width: 2, height: 2 });
    png.data.set([1, 2, 3, 255, 4, 5, 6, 0, 7, 8, 9, 128, 10, 11, 12, 255]);
    writeFileSync(join(root, 'b', 'x.png'), PNG.sync.write(png));
    writeFileSync(join(root, 'a', 'notes.txt'), 'not an image');
    copyFileSync(join(root, 'b', 'x.png'), join(root, 'a', 'y.PNG'));
    const dataset = loadImageFolder(root, { split: 'test' });
    expect(Array.from(dataset.images)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(Array.from(dataset.labels)).toEqual([0, 1]);
    expect(dataset.split).toBe('test');
  });
});

describe('loadImageFolder bad input', () => {
  it('an image of another size names the file and both sizes', () => {
    const root = join(scratch.path, 'sizes');
    mkdirSync(join(root, 'c'), { recursive: true });
    writeFileSync(join(root, 'c', '1.png'), PNG.sync.write(new PNG({ width: 2, height: 2 })));
    writeFileSync(join(root, 'c', '2.png'), PNG.sync.write(new PNG({ width: 3, height: 2 })));
    expect(() => loadImageFolder(root)).toThrowError(
      `${join(root, 'c', '2.png')} (record 1): image is 3x2, expected 2x2 like ${join(root, 'c', '1.png')}`,
    );
  });

  it('a file that does not decode names the file', () => {
    const root = join(scratch.path, 'corrupt');
    mkdirSync(join(root, 'c'), { recursive: true });
    writeFileSync(join(root, 'c', '1.jpg'), 'not a jpeg');
    expect(() => loadImageFolder(root)).toThrowError(DatasetFormatError);
    expect(() => loadImageFolder(root)).toThrowError(`${join(root, 'c', '1.jpg')} (record 0): cannot decode image: `);
  });

  it('a missing or empty folder says what it expected', () => {
    expect(() => loadImageFolder(join(scratch.path, 'nope'))).toThrowError(DatasetNotFoundError);
    const root = join(scratch.path, 'empty');
    mkdirSync(join(root, 'c'), { recursive: true });
    expect(() => loadImageFolder(root)).toThrowError(`class folder ${join(root, 'c')} has no .png/.jpg/.jpeg files; add images or remove the folder`);
    const bare = join(scratch.path, 'bare');
    mkdirSync(bare);
    expect(() => loadImageFolder(bare)).toThrowError(`image folder ${bare} has no class sub-folders (expected root/<class>/*.png|jpg)`);
  });
});
