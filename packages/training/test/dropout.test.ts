import { describe, expect, it } from 'vitest';
import { dropoutModelOptions, linearDecayDropPathRate } from '../src/dropout';

describe('dropout policies', () => {
  it('map to buildModel options', () => {
    expect(dropoutModelOptions({ kind: 'none' })).toEqual({});
    expect(dropoutModelOptions({ kind: 'constant', rate: 0.3 })).toEqual({ dropRate: 0.3 });
    expect(dropoutModelOptions({ kind: 'per-stage', rates: [0, 0.1, 0.3] })).toEqual({ dropRate: [0, 0.1, 0.3] });
    expect(dropoutModelOptions({ kind: 'stochastic-depth', dropPathRate: 0.5 })).toEqual({ dropPathRate: 0.5 });
    expect(dropoutModelOptions({ kind: 'stochastic-depth', dropPathRate: 0.2, dropRate: 0.1 })).toEqual({ dropRate: 0.1, dropPathRate: 0.2 });
  });

  it('reject rates outside [0, 1)', () => {
    expect(() => dropoutModelOptions({ kind: 'constant', rate: 1 })).toThrow(/rate/);
    expect(() => dropoutModelOptions({ kind: 'per-stage', rates: [] })).toThrow(/rates/);
  });

  it('stochastic depth follows the linear decay rule: 0 at the first block, the full rate at the last', () => {
    expect([0, 1, 2, 3, 4].map((i) => linearDecayDropPathRate(0.5, i, 5))).toEqual([0, 0.125, 0.25, 0.375, 0.5]);
    expect(linearDecayDropPathRate(0.2, 0, 1)).toBe(0.2);
    expect(() => linearDecayDropPathRate(0.2, 5, 5)).toThrow('blockIndex must be an integer in [0, 4], got 5');
  });
});
