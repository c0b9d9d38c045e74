import { describe, expect, it } from 'vitest';
import { learningRateAt, scheduleSchema } from '../src/schedule';

const at = (epoch: number, iteration = 0, itersPerEpoch = 100) => ({ epoch, iteration, itersPerEpoch });

describe('learningRateAt', () => {
  it('multi-step per epoch (WRN CIFAR: x0.2 at 60, 120, 160)', () => {
    const s = scheduleSchema.parse({ kind: 'multi-step', lr: 0.1, milestones: [60, 120, 160], gamma: 0.2 });
    expect(s.unit).toBe('epoch');
    expect(learningRateAt(s, at(0))).toBe(0.1);
    expect(learningRateAt(s, at(59, 99))).toBe(0.1);
    expect(learningRateAt(s, at(60))).toBeCloseTo(0.02, 12);
    expect(learningRateAt(s, at(119))).toBeCloseTo(0.02, 12);
    expect(learningRateAt(s, at(120))).toBeCloseTo(0.004, 12);
    expect(learningRateAt(s, at(160))).toBeCloseTo(0.0008, 12);
    expect(learningRateAt(s, at(199))).toBeCloseTo(0.0008, 12);
  });

  it('multi-step per iteration (ResNet CIFAR: /10 at 32k and 48k)', () => {
    const s = scheduleSchema.parse({ kind: 'multi-step', unit: 'iteration', lr: 0.1, milestones: [32000, 48000], gamma: 0.1 });
    // 391 iterations per epoch: iteration 32000 is epoch 81, iteration 329 (81 * 391 = 31671)
    expect(learningRateAt(s, at(81, 328, 391))).toBe(0.1);
    expect(learningRateAt(s, at(81, 329, 391))).toBeCloseTo(0.01, 12);
    expect(learningRateAt(s, at(122, 297, 391))).toBeCloseTo(0.01, 12);
    expect(learningRateAt(s, at(122, 298, 391))).toBeCloseTo(0.001, 12);
  });

  it('step decay', () => {
    const s = scheduleSchema.parse({ kind: 'step', lr: 1, stepSize: 30, gamma: 0.1 });
    expect(learningRateAt(s, at(29))).toBe(1);
    expect(learningRateAt(s, at(30))).toBeCloseTo(0.1, 12);
    expect(learningRateAt(s, at(65))).toBeCloseTo(0.01, 12);
  });

  it('cosine per iteration and per epoch', () => {
    const s = scheduleSchema.parse({ kind: 'cosine', unit: 'iteration', lr: 0.2, length: 1000, minLr: 0.02 });
    expect(learningRateAt(s, at(0, 0, 100))).toBeCloseTo(0.2, 12);
    expect(learningRateAt(s, at(5, 0, 100))).toBeCloseTo(0.11, 12);
    expect(learningRateAt(s, at(2, 50, 100))).toBeCloseTo(0.02 + 0.18 * (1 + Math.cos(Math.PI / 4)) / 2, 12);
    expect(learningRateAt(s, at(10, 0, 100))).toBeCloseTo(0.02, 12);
    expect(learningRateAt(s, at(20, 0, 100))).toBeCloseTo(0.02, 12);
    const e = scheduleSchema.parse({ kind: 'cosine', lr: 1, length: 4 });
    expect(learningRateAt(e, at(2, 57))).toBeCloseTo(0.5, 12);
  });

  it('linear warm-up ramps per iteration before the schedule, then leaves it alone', () => {
    const s = scheduleSchema.parse({
      kind: 'multi-step',
      lr: 0.4,
      milestones: [30],
      gamma: 0.1,
      warmup: { length: 2, unit: 'epoch', startFactor: 0.25 },
    });
    // 2 epochs of 10 iterations: factor 0.25 + 0.75 * t / 20
    expect(learningRateAt(s, at(0, 0, 10))).toBeCloseTo(0.1, 12);
    expect(learningRateAt(s, at(1, 0, 10))).toBeCloseTo(0.4 * (0.25 + 0.75 * 0.5), 12);
    expect(learningRateAt(s, at(2, 0, 10))).toBe(0.4);
    expect(learningRateAt(s, at(30, 0, 10))).toBeCloseTo(0.04, 12);
    const it5 = scheduleSchema.parse({ kind: 'constant', lr: 1, warmup: { length: 5, unit: 'iteration' } });
    expect(learningRateAt(it5, at(0, 3, 10))).toBeCloseTo(0.6, 12);
  });

  it('rejects bad positions and bad schedules with the value', () => {
    const s = scheduleSchema.parse({ kind: 'constant', lr: 1 });
    expect(() => learningRateAt(s, at(-1))).toThrow('epoch must be a non-negative integer, got -1');
    expect(() => learningRateAt(s, at(0, 0, 0))).toThrow('itersPerEpoch must be a non-negative integer > 0, got 0');
    expect(scheduleSchema.safeParse({ kind: 'multi-step', lr: 0.1, milestones: [60, 30], gamma: 0.2 }).success).toBe(false);
    expect(scheduleSchema.safeParse({ kind: 'linear', lr: 0.1 }).success).toBe(false);
  });
});
