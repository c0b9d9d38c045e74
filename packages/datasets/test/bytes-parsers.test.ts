// The browser-safe entry's parsers take bytes (a page fetches or picks them); the Node loaders read files and hand
// the bytes to the same parsers. These tests hold the two to the same result on real files, and the plain-JS
// SHA-256 that browser-safe code fingerprints data sets with to node:crypto's.
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CIFAR10_CLASS_NAMES, DatasetFormatError, Sha256, cifar100FromBytes, cifar10FromBytes, datasetSha256 } from '../src/index.js';
import { loadCifar10 } from '../src/node.js';
import { REPO_ROOT, cifarRecord, concatBytes } from './helpers.js';

const SAMPLE = join(REPO_ROOT, 'packages/cli/data/cifar10-sample');

describe('cifar10FromBytes', () => {
  it('parses the embedded sample exactly as loadCifar10 reads it from disk', () => {
    for (const [split, file] of [['train', 'data_batch_1.bin'], ['test', 'test_batch.bin']] as const) {
      const fromDisk = loadCifar10(SAMPLE, { split });
      const fromBytes = cifar10FromBytes([{ file, bytes: new Uint8Array(readFileSync(join(SAMPLE, file))) }], split);
      expect(fromBytes.count).toBe(fromDisk.count);
      expect(Buffer.from(fromBytes.images).equals(Buffer.from(fromDisk.images))).toBe(true);
      expect(Array.from(fromBytes.labels)).toEqual(Array.from(fromDisk.labels));
      expect(fromBytes.classNames).toEqual(CIFAR10_CLASS_NAMES);
    }
  });

  it('names the file and the byte offset of a bad label', () => {
    const bytes = concatBytes([cifarRecord([3], () => 0), cifarRecord([12], () => 0)]);
    const error = (() => {
      try {
        cifar10FromBytes([{ file: 'picked.bin', bytes }], 'train');
      } catch (e) {
        return e as DatasetFormatError;
      }
      return null;
    })();
    expect(error).toBeInstanceOf(DatasetFormatError);
    expect(error!.message).toContain('picked.bin');
    expect(error!.message).toContain('label 12 out of range: expected 0..9');
    expect(error!.message).toContain('3073');
  });

  it('parses CIFAR-100 records with fine or coarse labels', () => {
    const bytes = concatBytes([cifarRecord([4, 30], (r, c, k) => r + c + k), cifarRecord([19, 99], () => 7)]);
    expect(Array.from(cifar100FromBytes({ file: 'test.bin', bytes }, 'test').labels)).toEqual([30, 99]);
    expect(Array.from(cifar100FromBytes({ file: 'test.bin', bytes }, 'test', 'coarse').labels)).toEqual([4, 19]);
  });
});

describe('Sha256', () => {
  it("equals node:crypto's digest for every length around the block boundaries, fed whole or in pieces", () => {
    const data = randomBytes(300);
    for (let n = 0; n <= 300; n++) {
      const piece = data.subarray(0, n);
      const expected = createHash('sha256').update(piece).digest('hex');
      expect(new Sha256().update(piece).hex()).toBe(expected);
      const cut = Math.floor(n / 3);
      expect(new Sha256().update(piece.subarray(0, cut)).update(piece.subarray(cut)).hex()).toBe(expected);
    }
    expect(new Sha256().update('abc').hex()).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('fingerprints a data set as node:crypto would', () => {
    const dataset = loadCifar10(SAMPLE, { split: 'test' });
    const expected = createHash('sha256')
      .update(JSON.stringify([dataset.count, dataset.height, dataset.width, dataset.channels]))
      .update(dataset.images)
      .digest('hex');
    expect(datasetSha256(dataset)).toBe(expected);
  });
});
