import { describe, expect, it } from 'vitest';
import { countMultiplyAdds, countParams } from '../src/index.js';

// Exact trainable-parameter counts of ../shared/papers.md (10 classes unless the row says otherwise).
const PAPER_PARAMS: Record<string, number> = {
  resnet20: 269_722,
  resnet32: 464_154,
  resnet44: 658_586,
  resnet56: 853_018,
  resnet110: 1_727_962,
  resnet1202: 19_421_274,
  'wrn-40-1': 563_930,
  'wrn-40-2': 2_243_546,
  'wrn-40-4': 8_949_210,
  'wrn-40-8': 35_748_314,
  'wrn-28-10': 36_479_194,
  'wrn-28-12': 52_517_850,
  'wrn-22-8': 17_158_106,
  'wrn-22-10': 26_797_914,
  'wrn-16-8': 10_961_370,
  'wrn-16-10': 17_116_634,
  'wrn-16-4': 2_748_890,
  'resnext29-8x64d': 34_426_698,
  'resnext29-16x64d': 68_155_210,
  resnet18: 11_689_512,
  resnet34: 21_797_672,
  resnet50: 25_557_032,
  resnet101: 44_549_160,
  resnet152: 60_192_808,
  'resnext50-32x4d': 25_028_904,
  'resnext101-32x8d': 88_791_336,
  'wrn-50-2': 68_883_240,
};

describe('parameter counts from the plan equal papers.md', () => {
  for (const [name, params] of Object.entries(PAPER_PARAMS)) {
    it(name, () => expect(countParams(name)).toBe(params));
  }
  it('wrn-28-10 with 100 classes', () => expect(countParams('wrn-28-10', { numClasses: 100 })).toBe(36_536_884));
});

// Multiply-adds at 224x224 from papers.md, in G.
const V15_MACS: Record<string, number> = {
  resnet18: 1.814, resnet34: 3.664, resnet50: 4.089, resnet101: 7.801, resnet152: 11.514,
  'resnext50-32x4d': 4.23, 'wrn-50-2': 11.398,
};
const V1_MACS: Record<string, number> = { resnet50: 3.858, resnet101: 7.57, resnet152: 11.282 };

describe('multiply-adds', () => {
  for (const [name, giga] of Object.entries(V15_MACS)) {
    it(`${name} v1.5 (default)`, () => {
      const macs = countMultiplyAdds(name) / 1e9;
      expect(Math.abs(macs - giga) / giga).toBeLessThan(0.01);
    });
  }
  for (const [name, giga] of Object.entries(V1_MACS)) {
    it(`${name} v1`, () => {
      const macs = countMultiplyAdds(name, { strideLayout: 'v1' }) / 1e9;
      expect(Math.abs(macs - giga) / giga).toBeLessThan(0.01);
    });
  }
});
