import '@tensorflow/tfjs-backend-cpu';
import { grad, range, reshape, setBackend, sum, tidy, type Tensor, type Tensor4D } from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { ZeroPadShortcut, subsample } from '../src/index.js';

beforeAll(async () => {
  await setBackend('cpu');
});

/** x[:, ::s, ::s, :] computed element by element. */
function naiveSubsample(values: number[], [n, h, w, c]: number[], s: number): number[] {
  const out: number[] = [];
  for (let b = 0; b < n!; b++) for (let y = 0; y < h!; y += s) for (let x = 0; x < w!; x += s) for (let k = 0; k < c!; k++) {
    out.push(values[((b * h! + y) * w! + x) * c! + k]!);
  }
  return out;
}

describe('option A shortcut', () => {
  for (const [h, w] of [[6, 6], [5, 7]]) {
    it(`keeps rows and columns 0, 2, 4, ... of a ${h}x${w} map and appends zero channels`, () => {
      tidy(() => {
        const shape: [number, number, number, number] = [2, h!, w!, 3];
        const x = reshape(range(0, 2 * h! * w! * 3), shape) as Tensor4D;
        const values = Array.from(x.dataSync());
        expect(Array.from(subsample(x, 2).dataSync())).toEqual(naiveSubsample(values, shape, 2));
        const layer = new ZeroPadShortcut({ strides: 2, outChannels: 5, name: 'pad' });
        const out = layer.apply(x) as Tensor;
        expect(out.shape).toEqual([2, Math.ceil(h! / 2), Math.ceil(w! / 2), 5]);
        const outValues = Array.from(out.dataSync());
        const kept = naiveSubsample(values, shape, 2);
        for (let i = 0; i < kept.length / 3; i++) {
          expect(outValues.slice(i * 5, i * 5 + 5)).toEqual([...kept.slice(i * 3, i * 3 + 3), 0, 0]);
        }
      });
    });
  }

  it('passes the gradient to the kept positions only', () => {
    tidy(() => {
      const layer = new ZeroPadShortcut({ strides: 2, outChannels: 2, name: 'pad2' });
      const x = reshape(range(0, 16), [1, 4, 4, 1]) as Tensor4D;
      const dx = grad((input: Tensor) => sum(layer.apply(input) as Tensor))(x);
      expect(Array.from(dx.dataSync())).toEqual([1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0]);
    });
  });

  it('refuses to reduce channels', () => {
    const layer = new ZeroPadShortcut({ strides: 1, outChannels: 2, name: 'narrow' });
    expect(() => layer.computeOutputShape([null, 4, 4, 3])).toThrow('ZeroPadShortcut narrow: input has 3 channels, more than outChannels 2');
  });
});
