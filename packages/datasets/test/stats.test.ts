import { describe, expect, it } from 'vitest';

import { DatasetNotFoundError } from '../src/index.js';
import { datasetStats } from '../src/node.js';
import { CIFAR10_SUBSET, NO_SHARED_DATA, tempDir } from './helpers.js';

describe('datasetStats', () => {
  it.skipIf(NO_SHARED_DATA)('summarises the real CIFAR-10 subset with the documented figures', () => {
    const stats = datasetStats('cifar10', CIFAR10_SUBSET);
    expect(stats.dataset).toBe('cifar10');
    expect(stats.classNames[6]).toBe('frog');
    expect(stats.missingSplits).toEqual([]);
    expect(Object.keys(stats.splits)).toEqual(['train', 'test']);
    const { train, test } = stats.splits as Record<'train' | 'test', (typeof stats.splits)[string]>;
    expect(train!.size).toBe(7051);
    expect(train!.classCounts).toEqual([706, 680, 712, 692, 747, 686, 706, 694, 729, 699]);
    [125.728, 123.243, 113.912].forEach((m, c) => expect(train!.mean[c]).toBeCloseTo(m, 2));
    [63.178, 62.338, 66.871].forEach((s, c) => expect(train!.std[c]).toBeCloseTo(s, 2));
    expect(train!.notes[0]).toMatch(/data_batch_5\.bin not present/);
    expect(test!.size).toBe(1017);
    expect(test!.classCounts).toEqual([104, 97, 96, 91, 109, 96, 102, 105, 106, 111]);
    // One JSON object, as `wrn datasets stats --json` prints it.
    expect(JSON.parse(JSON.stringify(stats))).toEqual(stats);
  });

  it('says what is missing when no split is there', () => {
    const empty = tempDir('stats');
    try {
      expect(() => datasetStats('svhn', empty.path)).toThrowError(DatasetNotFoundError);
      expect(() => datasetStats('svhn', empty.path)).toThrowError(
        `no split of svhn (train, test, extra) found in ${empty.path}. Run \`wrn datasets download svhn\``,
      );
      expect(() => datasetStats('mnist', empty.path)).toThrowError("unknown dataset 'mnist': expected one of cifar10, cifar100, svhn");
    } finally {
      empty.remove();
    }
  });
});
