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
 * Warm-up before any schedule, over `length` units (`unit` only says how `length` is counted; the warm-up
 * advances every iteration whatever the unit). `shape` 'linear' (default): the rate is multiplied by a factor
 * rising linearly from `startFactor` to 1 (a warm-up "over 5 epochs" is smooth, as in Goyal et al. 2017);
 * 'constant': by `startFactor` throughout, then 1 (the pre-activation ResNet's lr 0.01 for about 400 iterations,
 * then 0.1: `{ shape: 'constant', length: 400, unit: 'iteration', startFactor: 0.1 }`).
 */
export const warmupSchema = z
  .object({
    length: z.number().positive(),
    unit: scheduleUnitSchema.default('epoch'),
    startFactor: z.number().min(0).max(1).default(0),
    shape: z.enum(['linear', 'constant']).optional(),
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
      /**
       * 0-based positions (in `unit`) from which the rate is multiplied by `gamma` once more; non-decreasing (a
       * repeated milestone drops twice). Give these or `milestoneFractions`; where both are given (a user's
       * milestones over a recipe's fractions, or a resumed run's recorded ones) these win.
       */
      milestones: z
        .array(z.number().int().nonnegative())
        .refine((m) => m.every((v, i) => i === 0 || v >= m[i - 1]!), { message: 'milestones must be non-decreasing' })
        .optional(),
      /**
       * Milestones as fractions of the run (0.3, 0.6, 0.8 of WRN's 200 epochs), so that any run length scales
       * them; {@link resolveSchedule} turns them into `milestones` by `fractionRule` when the run length is known
       * (the resolved config records the milestones).
       */
      milestoneFractions: z
        .array(z.number().gt(0).lte(1))
        .refine((m) => m.every((v, i) => i === 0 || v > m[i - 1]!), { message: 'milestoneFractions must be strictly increasing' })
        .optional(),
      /** How a fraction f of a run of T units becomes a 0-based milestone; see {@link FRACTION_RULES}. Default 'elapsed'. */
      fractionRule: z.enum(['elapsed', 'lua-epoch-step', 'lua-exceeds']).optional(),
      gamma: z.number().positive(),
      /**
       * Drop the momentum buffers where the rate drops, so the next step starts them afresh (buf = d, as on the
       * first step): the WRN code recreates its optimiser state at each drop (train.lua's updateLR deep-copies
       * `opt` into `optimState`; pytorch/main.py builds a new SGD). Default false: the buffers carry on.
       */
      resetMomentum: z.boolean().optional(),
    })
    .strict()
    .superRefine((s, ctx) => {
      if (s.milestones === undefined && s.milestoneFractions === undefined) {
        ctx.addIssue({ code: 'custom', path: ['milestones'], message: 'give milestones or milestoneFractions' });
      }
    }),
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

/**
 * How a milestone fraction f of a run of T units (epochs, or iterations with unit 'iteration') becomes the 0-based
 * position from which the drop applies:
 * - 'elapsed': ceil(f*T), once a fraction f of the run is done (torch.optim.lr_scheduler.MultiStepLR with
 *   milestones f*T).
 * - 'lua-epoch-step': ceil(f*T) - 1, the WRN code's `epoch_step` list of 1-based epochs (train.lua applies the
 *   drop at the start of 1-based epoch 60 of 200, i.e. 0-based epoch 59; pytorch/main.py does the same).
 * - 'lua-exceeds': the first 0-based e with (e+1)/T > f, ResNeXt's train.lua (`epoch/nEpochs > 0.49`, 1-based:
 *   0-based 147 and 222 of 300 for 0.49 and 0.74).
 */
export const FRACTION_RULES = ['elapsed', 'lua-epoch-step', 'lua-exceeds'] as const;
export type FractionRule = (typeof FRACTION_RULES)[number];

/** The 0-based milestone of fraction `f` of a run of `total` units under `rule` (see {@link FRACTION_RULES}). */
export function fractionMilestone(f: number, total: number, rule: FractionRule = 'elapsed'): number {
  // f*T in floating point can land a hair above an integer (0.3*200 is exact, 0.7*10 is 7.000000000000001)
  const reached = Math.max(0, Math.ceil(f * total - 1e-9));
  switch (rule) {
    case 'elapsed':
      return reached;
    case 'lua-epoch-step':
      return Math.max(0, reached - 1);
    case 'lua-exceeds': {
      // exactly Lua's double comparison, epoch/nEpochs > f, on 1-based epochs
      let oneBased = Math.max(1, Math.floor(f * total));
      while (oneBased > 1 && (oneBased - 1) / total > f) oneBased--;
      while (oneBased / total <= f) oneBased++;
      return oneBased - 1;
    }
  }
}

/** The length of the run a schedule's fractions refer to. */
export interface RunLength {
  /** Epochs of the run (absent when it stops by maxSteps only). */
  epochs?: number | undefined;
  /** Optimiser steps of the run, when it stops by steps. */
  maxSteps?: number | undefined;
}

/**
 * The schedule with `milestoneFractions` turned into `milestones` for this run length (others unchanged):
 * epoch-unit fractions of `epochs`; iteration-unit fractions of `maxSteps`, or, for a run given in epochs only, of
 * its epochs (the schedule then counts epochs: drops at epoch boundaries). Throws, naming the key, when the run
 * length it needs is missing.
 */
export function resolveSchedule(schedule: LrSchedule, run: RunLength): LrSchedule {
  if (schedule.kind !== 'multi-step' || schedule.milestoneFractions === undefined) return schedule;
  const { milestoneFractions, fractionRule, ...rest } = schedule;
  if (rest.milestones !== undefined) return rest;
  const rule = fractionRule ?? 'elapsed';
  if (schedule.unit === 'iteration' && run.maxSteps != null) {
    return { ...rest, milestones: milestoneFractions.map((f) => fractionMilestone(f, run.maxSteps as number, rule)) };
  }
  if (run.epochs == null) {
    throw new Error(`schedule.milestoneFractions [${milestoneFractions.join(', ')}] need the run length: set epochs${schedule.unit === 'iteration' ? ' or maxSteps' : ''}`);
  }
  return { ...rest, unit: 'epoch', milestones: milestoneFractions.map((f) => fractionMilestone(f, run.epochs as number, rule)) };
}

/** The 0-based milestones of a resolved schedule (multi-step: its list; step: every stepSize units up to `total`). */
export function scheduleMilestones(schedule: LrSchedule, total?: number): number[] {
  if (schedule.kind === 'multi-step') return [...(schedule.milestones ?? [])];
  if (schedule.kind === 'step' && total !== undefined) {
    return Array.from({ length: Math.max(0, Math.ceil(total / schedule.stepSize) - 1) }, (_, i) => (i + 1) * schedule.stepSize);
  }
  return [];
}

/**
 * Whether the step at `position` is the first one after a drop of a schedule that resets the momentum buffers
 * there (`resetMomentum`): the training loop then calls SgdOptimizer.resetMomentum() before the step.
 */
export function resetsMomentumAt(schedule: LrSchedule, position: SchedulePosition): boolean {
  if (schedule.kind !== 'multi-step' || schedule.resetMomentum !== true) return false;
  checkPosition(position);
  const milestones = schedule.milestones ?? [];
  if (schedule.unit === 'epoch') return position.iteration === 0 && position.epoch > 0 && milestones.includes(position.epoch);
  const globalIteration = position.epoch * position.itersPerEpoch + position.iteration;
  return globalIteration > 0 && milestones.includes(globalIteration);
}

/**
 * One line saying what a resolved schedule does, for `wrn train` to print at start, e.g.
 * "multi-step, lr 0.1, x0.2 from 0-based epochs 59, 119, 159, momentum buffers reset at each drop".
 */
export function formatSchedule(schedule: LrSchedule): string {
  const unit = schedule.unit === 'epoch' ? 'epochs' : 'iterations';
  let text: string;
  switch (schedule.kind) {
    case 'constant':
      text = `constant, lr ${schedule.lr}`;
      break;
    case 'multi-step':
      text = schedule.milestones === undefined
        ? `multi-step, lr ${schedule.lr}, x${schedule.gamma} at fractions ${schedule.milestoneFractions?.join(', ')} of the run (unresolved)`
        : `multi-step, lr ${schedule.lr}, x${schedule.gamma} from 0-based ${unit} ${schedule.milestones.length > 0 ? schedule.milestones.join(', ') : '(none)'}` +
          (schedule.resetMomentum === true ? ', momentum buffers reset at each drop' : '');
      break;
    case 'step':
      text = `step, lr ${schedule.lr}, x${schedule.gamma} every ${schedule.stepSize} ${unit}`;
      break;
    case 'cosine':
      text = `cosine, lr ${schedule.lr} to ${schedule.minLr} over ${schedule.length} ${unit}`;
      break;
  }
  const warmup = schedule.warmup;
  if (warmup) {
    const span = `${warmup.length} ${warmup.unit === 'epoch' ? 'epochs' : 'iterations'}`;
    text += warmup.shape === 'constant'
      ? `; warm-up: x${warmup.startFactor} for the first ${span}`
      : `; warm-up: linear from x${warmup.startFactor} over ${span}`;
  }
  return text;
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
      if (schedule.milestones === undefined) {
        throw new Error('learningRateAt: schedule.milestoneFractions must be resolved against the run length first (resolveSchedule)');
      }
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
      lr *= warmup.shape === 'constant' ? warmup.startFactor : warmup.startFactor + ((1 - warmup.startFactor) * globalIteration) / warmupIterations;
    }
  }
  return lr;
}
