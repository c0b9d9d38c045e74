import '@tensorflow/tfjs-backend-cpu';
import { ones, setBackend, tidy, type Tensor } from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { DropPath, SeededDropout, getLayerRandomState, seedLayerRandom, setLayerRandomState } from '../src/index.js';

beforeAll(async () => {
  await setBackend('cpu');
});

const dropout = new SeededDropout({ rate: 0.5, name: 'drop' });
const dropPath = new DropPath({ rate: 0.5, name: 'droppath' });
const draw = (layer: SeededDropout | DropPath, shape: number[]): number[] =>
  tidy(() => Array.from((layer.apply(ones(shape), { training: true }) as Tensor).dataSync()));

describe('resumable random stream of dropout and drop-path', () => {
  it('draws the same masks after restoring a saved state, and different ones as it advances', () => {
    seedLayerRandom(42);
    const first = draw(dropout, [4, 64]);
    const saved = getLayerRandomState();
    expect(saved).toEqual({ seed: 42, counter: 1 });
    const second = draw(dropout, [4, 64]);
    const third = draw(dropPath, [16, 2, 2, 1]);
    expect(second).not.toEqual(first);

    setLayerRandomState(saved);
    expect(draw(dropout, [4, 64])).toEqual(second);
    expect(draw(dropPath, [16, 2, 2, 1])).toEqual(third);
    seedLayerRandom(42);
    expect(draw(dropout, [4, 64])).toEqual(first);
  });

  it('scales kept units by 1/(1-rate) and drops whole examples in drop-path', () => {
    seedLayerRandom(7);
    const values = draw(dropout, [8, 128]);
    expect(new Set(values)).toEqual(new Set([0, 2]));
    const kept = values.filter((v) => v === 2).length / values.length;
    expect(kept).toBeGreaterThan(0.4);
    expect(kept).toBeLessThan(0.6);
    const paths = draw(dropPath, [32, 2, 2, 3]);
    for (let example = 0; example < 32; example++) {
      expect(new Set(paths.slice(example * 12, example * 12 + 12)).size).toBe(1);
    }
  });

  it('is the identity at inference and does not advance the stream', () => {
    seedLayerRandom(9);
    const out = tidy(() => Array.from((dropout.apply(ones([2, 3]), { training: false }) as Tensor).dataSync()));
    expect(out).toEqual([1, 1, 1, 1, 1, 1]);
    expect(getLayerRandomState()).toEqual({ seed: 9, counter: 0 });
  });

  it('rejects invalid states and rates', () => {
    expect(() => setLayerRandomState({ seed: 1.5, counter: 0 })).toThrow(/seed must be a safe integer, got 1.5/);
    expect(() => setLayerRandomState({ seed: 1, counter: -1 })).toThrow(/counter must be a non-negative safe integer, got -1/);
    expect(() => new SeededDropout({ rate: 1 })).toThrow(/rate must be a number in \[0, 1\), got 1/);
  });
});
