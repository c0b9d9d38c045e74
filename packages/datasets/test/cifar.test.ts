import { copyFileSync, mkdirSync, openSync, readSync, closeSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import {
  CIFAR100_FINE_CLASS_NAMES,
  DatasetFormatError,
  DatasetNotFoundError,
  channelStats,
} from '../src/index.js';
import { loadCifar10, loadCifar100 } from '../src/node.js';
import { CIFAR10_SUBSET, NO_SHARED_DATA, cifarRecord, concatBytes, realData, tempDir } from './helpers.js';

const scratch = tempDir('cifar');
afterAll(() => scratch.remove());

function classCounts(labels: Int32Array, numClasses: number): number[] {
  const counts = new Array<number>(numClasses).fill(0);
  for (const label of labels) counts[label]! += 1;
  return counts;
}

describe.skipIf(NO_SHARED_DATA)('loadCifar10 on the real subset', () => {
  const train = realData(() => loadCifar10(CIFAR10_SUBSET, { split: 'train' }));

  it('loads the four batch files present and says the fifth is missing', () => {
    expect(train.count).toBe(7051);
    expect(train.sourceFiles.map((f) => f.split('/').pop())).toEqual([
      'data_batch_1.bin',
      'data_batch_2.bin',
      'data_batch_3.bin',
      'data_batch_4.bin',
    ]);
    expect(train.notes).toHaveLength(1);
    expect(train.notes[0]).toMatch(/data_batch_5\.bin not present/);
    expect([train.height, train.width, train.channels]).toEqual([32, 32, 3]);
    expect(train.images).toBeInstanceOf(Uint8Array);
    expect(train.images.length).toBe(7051 * 3072);
  });

  it('reads the well-known first labels: frog, truck, truck, deer, automobile', () => {
    const names = Array.from(train.labels.subarray(0, 5), (l) => train.classNames[l]);
    expect(names).toEqual(['frog', 'truck', 'truck', 'deer', 'automobile']);
  });

  it('has the documented per-class counts', () => {
    expect(classCounts(train.labels, 10)).toEqual([706, 680, 712, 692, 747, 686, 706, 694, 729, 699]);
    const test = loadCifar10(CIFAR10_SUBSET, { split: 'test' });
    expect(test.count).toBe(1017);
    expect(test.notes).toEqual([]);
    expect(classCounts(test.labels, 10)).toEqual([104, 97, 96, 91, 109, 96, 102, 105, 106, 111]);
  });

  it('has the documented per-channel mean and population std', () => {
    const stats = channelStats(train);
    const expectedMean = [125.728, 123.243, 113.912];
    const expectedStd = [63.178, 62.338, 66.871];
    stats.mean.forEach((m, c) => expect(m).toBeCloseTo(expectedMean[c]!, 2));
    stats.std.forEach((s, c) => expect(s).toBeCloseTo(expectedStd[c]!, 2));
  });

  it('stores pixels NHWC: image i, row r, column c, channel k comes from plane k of record i', () => {
    const raw = Buffer.alloc(3073 * 2);
    const fd = openSync(join(CIFAR10_SUBSET, 'data_batch_1.bin'), 'r');
    readSync(fd, raw, 0, raw.length, 0);
    closeSync(fd);
    for (const [image, row, col, channel] of [
      [0, 0, 0, 0],
      [0, 5, 7, 1],
      [1, 31, 31, 2],
      [1, 12, 3, 0],
    ] as const) {
      const fromFile = raw[image * 3073 + 1 + channel * 1024 + row * 32 + col];
      expect(train.images[image * 3072 + (row * 32 + col) * 3 + channel]).toBe(fromFile);
    }
  });

  it('accepts the parent of cifar-10-batches-bin', () => {
    const parent = join(scratch.path, 'parent');
    mkdirSync(join(parent, 'cifar-10-batches-bin'), { recursive: true });
    copyFileSync(join(CIFAR10_SUBSET, 'test_batch.bin'), join(parent, 'cifar-10-batches-bin', 'test_batch.bin'));
    const test = loadCifar10(parent, { split: 'test' });
    expect(test.count).toBe(1017);
    expect(test.classNames[9]).toBe('truck');
  });
});

describe('loadCifar10 bad input', () => {
  it.skipIf(NO_SHARED_DATA)('a batches.meta.txt that is a directory is named, not an EISDIR', () => {
    const dir = join(scratch.path, 'meta-dir');
    mkdirSync(join(dir, 'batches.meta.txt'), { recursive: true });
    copyFileSync(join(CIFAR10_SUBSET, 'test_batch.bin'), join(dir, 'test_batch.bin'));
    expect(() => loadCifar10(dir, { split: 'test' })).toThrowError(
      `${join(dir, 'batches.meta.txt')}: is a directory, expected a text file of class names (one a line)`,
    );
  });

  it.skipIf(NO_SHARED_DATA)('names the file and byte offset of a truncated record', () => {
    const dir = join(scratch.path, 'truncated');
    mkdirSync(dir);
    const bytes = readFileSync(join(CIFAR10_SUBSET, 'data_batch_2.bin')).subarray(0, 3073 * 3 + 100);
    writeFileSync(join(dir, 'data_batch_2.bin'), bytes);
    expect(() => loadCifar10(dir)).toThrowError(DatasetFormatError);
    expect(() => loadCifar10(dir)).toThrowError(
      `${join(dir, 'data_batch_2.bin')} (record 3, byte offset 9219): truncated record: 100 of 3073 bytes present`,
    );
  });

  it('rejects an oversized batch file', () => {
    const dir = join(scratch.path, 'oversized');
    mkdirSync(dir);
    writeFileSync(join(dir, 'test_batch.bin'), new Uint8Array(3073 * 10_001));
    expect(() => loadCifar10(dir, { split: 'test' })).toThrowError(
      /test_batch\.bin \(record 10000, byte offset 30730000\): oversized file: 10001 records .*expected at most 10000 records/,
    );
  });

  it('names the record and byte offset of a label out of range', () => {
    const dir = join(scratch.path, 'badlabel');
    mkdirSync(dir);
    const records = [3, 7, 12, 1].map((label) => cifarRecord([label], () => 0));
    writeFileSync(join(dir, 'data_batch_1.bin'), concatBytes(records));
    expect(() => loadCifar10(dir)).toThrowError(
      `${join(dir, 'data_batch_1.bin')} (record 2, byte offset 6146): label 12 out of range: expected 0..9`,
    );
  });

  it('says where it looked and how to get the files when none are there', () => {
    const dir = join(scratch.path, 'empty');
    mkdirSync(dir);
    expect(() => loadCifar10(dir)).toThrowError(DatasetNotFoundError);
    expect(() => loadCifar10(dir)).toThrowError(
      /CIFAR-10 train split not found: looked for data_batch_1\.bin, .*data_batch_5\.bin in .*empty and .*cifar-10-batches-bin\. Run `wrn datasets download cifar10`/,
    );
  });

  it('rejects an empty file', () => {
    const dir = join(scratch.path, 'emptyfile');
    mkdirSync(dir);
    writeFileSync(join(dir, 'test_batch.bin'), new Uint8Array(0));
    expect(() => loadCifar10(dir, { split: 'test' })).toThrowError(/test_batch\.bin \(byte offset 0\): empty file/);
  });
});

describe('loadCifar100 on fixtures in the official format', () => {
  const dir = join(scratch.path, 'cifar-100-binary');
  mkdirSync(dir, { recursive: true });
  // (coarse, fine) pairs as in the real set: fine 19 'cattle' is in coarse 11, fine 29 'dinosaur' in coarse 15.
  const pairs: Array<[number, number]> = [
    [11, 19],
    [15, 29],
    [0, 4],
  ];
  writeFileSync(
    join(dir, 'train.bin'),
    concatBytes(pairs.map(([coarse, fine], i) => cifarRecord([coarse, fine], (r, c, k) => r + c + k * 50 + i))),
  );

  it('uses the fine label by default and the coarse one on request', () => {
    const fine = loadCifar100(scratch.path);
    expect(Array.from(fine.labels)).toEqual([19, 29, 4]);
    expect(fine.numClasses).toBe(100);
    expect(fine.classNames[19]).toBe('cattle');
    expect(CIFAR100_FINE_CLASS_NAMES).toHaveLength(100);
    const coarse = loadCifar100(dir, { labels: 'coarse' });
    expect(Array.from(coarse.labels)).toEqual([11, 15, 0]);
    expect(coarse.numClasses).toBe(20);
    expect(coarse.classNames[11]).toBe('large_omnivores_and_herbivores');
    // image 2, row 3, col 4, channel 2 = 3 + 4 + 100 + 2
    expect(fine.images[2 * 3072 + (3 * 32 + 4) * 3 + 2]).toBe(109);
  });

  it('checks both label bytes', () => {
    const bad = join(scratch.path, 'c100bad');
    mkdirSync(bad);
    writeFileSync(join(bad, 'test.bin'), concatBytes([cifarRecord([1, 2], () => 0), cifarRecord([20, 2], () => 0)]));
    expect(() => loadCifar100(bad, { split: 'test' })).toThrowError(
      `${join(bad, 'test.bin')} (record 1, byte offset 3074): coarse label 20 out of range: expected 0..19`,
    );
    writeFileSync(join(bad, 'test.bin'), concatBytes([cifarRecord([1, 100], () => 0)]));
    expect(() => loadCifar100(bad, { split: 'test' })).toThrowError(/record 0, byte offset 1\): fine label 100 out of range: expected 0\.\.99/);
  });

  it('says where it looked for a missing split', () => {
    expect(() => loadCifar100(scratch.path, { split: 'test' })).toThrowError(
      /CIFAR-100 test split not found: looked for test\.bin in/,
    );
  });
});
