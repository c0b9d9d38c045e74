import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';

import { augmentBatch, augmentationOptions, cropAndFlip, drawAugmentation, keyedRandom } from '../src/index.js';
import type { AugmentationDraw } from '../src/index.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** A [1,4,4,1] image whose pixel (r, c) is 4r + c + 1. */
function image4x4(): tf.Tensor4D {
  return tf.tensor4d(
    Array.from({ length: 16 }, (_, i) => i + 1),
    [1, 4, 4, 1],
  );
}

function draw(rows: number[], cols: number[], flips: number[]): AugmentationDraw {
  return { rowOffsets: Int32Array.from(rows), colOffsets: Int32Array.from(cols), flips: Uint8Array.from(flips) };
}

/** Both methods' answer, which must be the same. */
function run(x: tf.Tensor4D, d: AugmentationDraw, padMode: 'reflect' | 'zero', padding: number): number[][][][] {
  const [copied, gathered] = (['copy', 'gather'] as const).map((method) => {
    const out = cropAndFlip(x, d, { padMode, padding, flip: true }, method);
    const values = out.arraySync();
    out.dispose();
    return values;
  });
  expect(copied).toEqual(gathered);
  return copied!;
}

function squeeze(values: number[][][][], image = 0): number[][] {
  return values[image]!.map((row) => row.map((pixel) => pixel[0]!));
}

describe('cropAndFlip, pixel-exact on a 4x4 image padded by 2', () => {
  // Reflect padding (edge not repeated) maps padded rows/cols 0..7 to source 2,1,0,1,2,3,2,1.
  it('reflect pad, crop at (0, 3)', () => {
    const x = image4x4();
    expect(squeeze(run(x, draw([0], [3], [0]), 'reflect', 2))).toEqual([
      [10, 11, 12, 11],
      [6, 7, 8, 7],
      [2, 3, 4, 3],
      [6, 7, 8, 7],
    ]);
    x.dispose();
  });

  it('reflect pad, crop at (0, 3), flipped', () => {
    const x = image4x4();
    expect(squeeze(run(x, draw([0], [3], [1]), 'reflect', 2))).toEqual([
      [11, 12, 11, 10],
      [7, 8, 7, 6],
      [3, 4, 3, 2],
      [7, 8, 7, 6],
    ]);
    x.dispose();
  });

  it('crop at the centre offset without flip is the identity', () => {
    const x = image4x4();
    const expected = [
      [1, 2, 3, 4],
      [5, 6, 7, 8],
      [9, 10, 11, 12],
      [13, 14, 15, 16],
    ];
    expect(squeeze(run(x, draw([2], [2], [0]), 'reflect', 2))).toEqual(expected);
    expect(squeeze(run(x, draw([2], [2], [0]), 'zero', 2))).toEqual(expected);
    x.dispose();
  });

  it('reflect pad, crop at the far corner (4, 4)', () => {
    const x = image4x4();
    expect(squeeze(run(x, draw([4], [4], [0]), 'reflect', 2))).toEqual([
      [11, 12, 11, 10],
      [15, 16, 15, 14],
      [11, 12, 11, 10],
      [7, 8, 7, 6],
    ]);
    x.dispose();
  });

  it('zero pad, crop at (0, 3), plain and flipped', () => {
    const x = image4x4();
    expect(squeeze(run(x, draw([0], [3], [0]), 'zero', 2))).toEqual([
      [0, 0, 0, 0],
      [0, 0, 0, 0],
      [2, 3, 4, 0],
      [6, 7, 8, 0],
    ]);
    expect(squeeze(run(x, draw([0], [3], [1]), 'zero', 2))).toEqual([
      [0, 0, 0, 0],
      [0, 0, 0, 0],
      [0, 4, 3, 2],
      [0, 8, 7, 6],
    ]);
    x.dispose();
  });

  it('gives each image of a batch its own crop and flip, and keeps channels together', () => {
    // Two images, two channels: channel 1 is channel 0 plus 100; image 1 is image 0 plus 16.
    const base = Array.from({ length: 16 }, (_, i) => i + 1);
    const values: number[] = [];
    for (const shift of [0, 16]) for (const v of base) values.push(v + shift, v + shift + 100);
    const x = tf.tensor4d(values, [2, 4, 4, 2]);
    const out = run(x, draw([2, 1], [2, 3], [1, 0]), 'reflect', 2);
    // Image 0: identity crop, flipped. Image 1: rows src 1,0,1,2 (padded 1..4); cols src 1,2,3,2 (padded 3..6).
    expect(squeeze(out, 0)).toEqual([
      [4, 3, 2, 1],
      [8, 7, 6, 5],
      [12, 11, 10, 9],
      [16, 15, 14, 13],
    ]);
    expect(squeeze(out, 1)).toEqual([
      [22, 23, 24, 23],
      [18, 19, 20, 19],
      [22, 23, 24, 23],
      [26, 27, 28, 27],
    ]);
    for (const image of out) for (const row of image) for (const [c0, c1] of row as [number, number][]) expect(c1).toBe(c0 + 100);
    x.dispose();
  });

  it.each(['copy', 'gather'] as const)('%s: matches mirrorPad / pad + slice + reverse on a 32x32 batch with the WRN and ResNet settings', (method) => {
    const x = tf.tidy(() => tf.randomUniform([3, 32, 32, 3], 0, 255, 'float32', 7)) as tf.Tensor4D;
    const d = draw([0, 8, 5], [8, 0, 3], [1, 0, 1]);
    for (const padMode of ['reflect', 'zero'] as const) {
      const out = cropAndFlip(x, d, { padMode, padding: 4, flip: true }, method);
      const reference = tf.tidy(() => {
        const paddings: [number, number][] = [[0, 0], [4, 4], [4, 4], [0, 0]];
        const padded = padMode === 'reflect' ? tf.mirrorPad(x, paddings, 'reflect') : tf.pad(x, paddings);
        const crops = [0, 1, 2].map((b) => {
          const crop = tf.slice(padded, [b, d.rowOffsets[b]!, d.colOffsets[b]!, 0], [1, 32, 32, 3]);
          return d.flips[b] ? tf.reverse(crop, 2) : crop;
        });
        return tf.concat(crops, 0);
      });
      expect(out.arraySync()).toEqual(reference.arraySync());
      tf.dispose([out, reference]);
    }
    x.dispose();
  });

  it('copies on the cpu backend by default (no Gather kernel) and gathers where asked, the same pixels either way', async () => {
    const x = tf.tidy(() => tf.randomUniform([2, 5, 7, 2], -1, 1, 'float32', 3)) as tf.Tensor4D;
    const d = draw([0, 6], [6, 1], [1, 0]);
    const options = { padMode: 'zero', padding: 3, flip: true } as const;
    const run = async (method?: 'copy' | 'gather') => {
      let values: number[][][][] = [];
      const { kernelNames } = await tf.profile(() => {
        const out = cropAndFlip(x, d, options, method);
        values = out.arraySync();
        out.dispose();
      });
      return { values, gathered: kernelNames.includes('GatherV2') };
    };
    const byDefault = await run();
    const gathered = await run('gather');
    expect([byDefault.gathered, gathered.gathered]).toEqual([false, true]);
    expect(byDefault.values).toEqual(gathered.values);
    x.dispose();
  });
});

describe('augmentation draws', () => {
  it('are a pure function of the random key', () => {
    const options = augmentationOptions('reflect')!;
    const a = drawAugmentation(64, options, keyedRandom(1, 2, 'augment', 3));
    const b = drawAugmentation(64, options, keyedRandom(1, 2, 'augment', 3));
    const c = drawAugmentation(64, options, keyedRandom(1, 3, 'augment', 3));
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    for (const offsets of [a.rowOffsets, a.colOffsets]) {
      expect(Math.min(...offsets)).toBe(0);
      expect(Math.max(...offsets)).toBe(8);
    }
    const flipped = a.flips.reduce((n, f) => n + f, 0);
    expect(flipped).toBeGreaterThan(10);
    expect(flipped).toBeLessThan(54);
  });

  it('never flip when flip is off', () => {
    const d = drawAugmentation(100, { padMode: 'zero', padding: 4, flip: false }, keyedRandom(0));
    expect(d.flips.every((f) => f === 0)).toBe(true);
  });

  it('augmentBatch keeps the shape and leaks no tensors', () => {
    const x = tf.zeros([5, 8, 8, 3]) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    const y = augmentBatch(x, { padMode: 'zero', padding: 2, flip: true }, keyedRandom(4));
    expect(y.shape).toEqual([5, 8, 8, 3]);
    expect(tf.memory().numTensors).toBe(before + 1);
    tf.dispose([x, y]);
  });
});

describe('augmentation errors', () => {
  it('rejects reflect padding as large as the image', () => {
    const x = image4x4();
    expect(() => cropAndFlip(x, draw([0], [0], [0]), { padMode: 'reflect', padding: 4, flip: false })).toThrowError(
      'reflect padding 4 needs images larger than the padding, got 4x4 (at most 3)',
    );
    x.dispose();
  });

  it('rejects offsets outside the padded image', () => {
    const x = image4x4();
    expect(() => cropAndFlip(x, draw([5], [0], [0]), { padMode: 'zero', padding: 2, flip: false })).toThrowError(
      'augmentation offsets (5, 0) of image 0: expected each in 0..4',
    );
    x.dispose();
  });

  it('rejects an unknown augmentation name', () => {
    expect(() => augmentationOptions('crop' as 'none')).toThrowError(
      "augmentation 'crop' is not one of 'reflect', 'zero', 'none'",
    );
  });
});
