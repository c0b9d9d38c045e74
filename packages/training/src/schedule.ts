import { z } from 'zod';

/**
 * Learning-rate schedules are plain data so that a run's resolved config records exactly which schedule ran.
 * `unit` says what the schedule's clock counts: with 'epoch' the rate is constant within an epoch and changes at
 * epoch boundaries (Torch's scheduler.step() once per epoch); with 'iteration' it changes every optimiser step
 * and milestones, step sizes and lengths are counted in iterations (the ResNet CIFAR recipe: 32k and 48k).
 */
export const scheduleUnitSchema = z.enum(['epoch', 'iteration']);
export type ScheduleUnit = z.infer<typeof scheduleUnitSchema>;

/**
 * Linear warm-up before any schedule: the rate is multiplied by a factor that rises linearly from `startFactor`
 * to 1 over `length` units. The ramp advances every iteration whatever the unit (a warm-up "over 5 epochs" is
 * smooth, as in Goyal et al. 2017); `unit` only says how `length` is counted.
 */
export const warmupSchema = z
  .object({
    length: z.number().positive(),
    unit: scheduleUnitSchema.default('epoch'),
    startFactor: z.number().min(0).max(1).default(0),
  })
  .strict();
export type Warmup = z.infer<typeof warmupSchema>;

const common = {
  /** The initial (base) learning rate. */
  lr: z.number().positive(),
  unit: scheduleUnitSchema.default('epoch'),
  warmup: warmupSchema.optional(),
};

export const scheduleSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('constant'), ...common }).strict(),
  z
    .object({
      kind: z.literal('multi-step'),
      ...common,
      /** Positions (in `unit`) at which the rate is multiplied by `gamma`; strictly increasing. */
      milestones: z
        .array(z.number().int().nonnegative())
        .refine((m) => m.every((v, i) => i === 0 || v > m[i - 1]!), { message: 'milestones must be strictly increasing' }),
      gamma: z.number().positive(),
    })
    .strict(),
  z
    .object({
      kind: z.literal('step'),
      ...common,
      /** The rate is multiplied by `gamma` every `stepSize` units. */
      stepSize: z.number().int().positive(),
      gamma: z.number().positive(),
    })
    .strict(),
  z
    .object({
      kind: z.literal('cosine'),
      ...common,
      /** Length of the half cosine in `unit`; after it the rate stays at `minLr`. */
      length: z.number().positive(),
      minLr: z.number().nonnegative().default(0),
    })
    .strict(),
]);
/** A learning-rate schedule (output of the schema: defaults filled in). */
export type LrSchedule = z.infer<typeof scheduleSchema>;
/** A learning-rate schedule as written by a user (defaults optional). */
export type LrScheduleInput = z.input<typeof scheduleSchema>;

/** Where training is: `epoch` = 0-based index of the current epoch (= epochs completed), `iteration` = 0-based
 * index of the step within it, `itersPerEpoch` = optimiser steps per epoch. */
export interface SchedulePosition {
  epoch: number;
  iteration: number;
  itersPerEpoch: number;
}

function checkPosition(position: SchedulePosition): void {
  const { epoch, iteration, itersPerEpoch } = position;
  const bad = (name: string, value: number) =>
    new Error(`learningRateAt: ${name} must be a non-negative integer${name === 'itersPerEpoch' ? ' > 0' : ''}, got ${value}`);
  if (!Number.isInteger(epoch) || epoch < 0) throw bad('epoch', epoch);
  if (!Number.isInteger(iteration) || iteration < 0) throw bad('iteration', iteration);
  if (!Number.isInteger(itersPerEpoch) || itersPerEpoch <= 0) throw bad('itersPerEpoch', itersPerEpoch);
}

/** The learning rate of the step at `position`. Pure: the same schedule and position always give the same rate. */
export function learningRateAt(schedule: LrSchedule, position: SchedulePosition): number {
  checkPosition(position);
  const globalIteration = position.epoch * position.itersPerEpoch + position.iteration;
  const t = schedule.unit === 'epoch' ? position.epoch : globalIteration;
  let lr: number;
  switch (schedule.kind) {
    case 'constant':
      lr = schedule.lr;
      break;
    case 'multi-step': {
      let passed = 0;
      for (const m of schedule.milestones) if (t >= m) passed++;
      lr = schedule.lr * schedule.gamma ** passed;
      break;
    }
    case 'step':
      lr = schedule.lr * schedule.gamma ** Math.floor(t / schedule.stepSize);
      break;
    case 'cosine': {
      const progress = Math.min(t / schedule.length, 1);
      lr = schedule.minLr + ((schedule.lr - schedule.minLr) * (1 + Math.cos(Math.PI * progress))) / 2;
      break;
    }
  }
  const warmup = schedule.warmup;
  if (warmup) {
    const warmupIterations = warmup.unit === 'epoch' ? warmup.length * position.itersPerEpoch : warmup.length;
    if (globalIteration < warmupIterations) {
      lr *= warmup.startFactor + ((1 - warmup.startFactor) * globalIteration) / warmupIterations;
    }
  }
  return lr;
}
