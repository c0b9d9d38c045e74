import { z } from 'zod';
import { dropoutPolicySchema } from './dropout';
import { TrainingError } from './errors';
import { resolveSchedule, scheduleSchema } from './schedule';

/** SGD settings, Torch semantics (see SgdOptimizer). Defaults are the WRN recipe's. */
export const sgdConfigSchema = z
  .object({
    type: z.literal('sgd').default('sgd'),
    momentum: z.number().min(0).max(1).default(0.9),
    nesterov: z.boolean().default(true),
    dampening: z.number().min(0).max(1).default(0),
    weightDecay: z.number().min(0).default(5e-4),
    /** Apply weight decay to BatchNorm gamma/beta too (Torch does: every parameter). */
    decayBatchNorm: z.boolean().default(true),
  })
  .strict()
  .refine((o) => !o.nesterov || (o.momentum > 0 && o.dampening === 0), {
    message: 'Nesterov momentum requires momentum > 0 and dampening 0 (as in Torch)',
    path: ['nesterov'],
  });
export type SgdConfig = z.infer<typeof sgdConfigSchema>;

/**
 * The training config: everything the loop's result depends on besides the model and the data. A run writes
 * it, resolved (defaults filled in), as config.json before anything else.
 */
export const trainingConfigObjectSchema = z
  .object({
    /** Name of the preset the config was resolved from (recorded only). */
    preset: z.string().optional(),
    /** Model name in paper notation (recorded only: train() receives the built model). */
    model: z.string().optional(),
    /** Epochs to train; when absent, enough epochs to reach maxSteps. */
    epochs: z.number().int().positive().optional(),
    /** Stop after this many optimiser steps (the ResNet recipe stops at 64k iterations). */
    maxSteps: z.number().int().positive().optional(),
    /** Batch size of the training source (the data side batches; the loop needs it for iterations per epoch). */
    batchSize: z.number().int().positive().default(128),
    /** Seed of the run: initial weights, data order, augmentation and dropout derive from it. */
    seed: z.number().int().nonnegative().default(0),
    optimizer: sgdConfigSchema.prefault({}),
    schedule: scheduleSchema,
    dropout: dropoutPolicySchema.prefault({ kind: 'none' }),
    /** Also keep checkpoints/epoch-K every K epochs (0: only last and best). */
    checkpointEvery: z.number().int().nonnegative().default(0),
    /** Write a step line to metrics.jsonl every N steps (0: epoch lines only). */
    logEverySteps: z.number().int().nonnegative().default(0),
    /** Free-form facts recorded in config.json (data set, data dir, backend, augmentation...). */
    context: z.record(z.string(), z.unknown()).default({}),
  })
  .strict();

export const trainingConfigSchema = trainingConfigObjectSchema.refine((c) => c.epochs != null || c.maxSteps != null, { message: 'set epochs or maxSteps (or both)', path: ['epochs'] });

export type TrainingConfig = z.infer<typeof trainingConfigSchema>;
export type TrainingConfigInput = z.input<typeof trainingConfigSchema>;

/** A config that failed validation; `issues` name the key, the value found and what is allowed. */
export class TrainingConfigError extends TrainingError {
  readonly kind = 'bad-input';
  constructor(
    message: string,
    readonly issues: Array<{ key: string; value: unknown; problem: string; allowed?: string; crossField?: boolean }>,
  ) {
    super(message);
    this.name = 'TrainingConfigError';
  }
}

function keysOf(schema: unknown): string[] {
  const shape = (schema as { shape?: Record<string, unknown> }).shape;
  return shape ? Object.keys(shape) : [];
}

function allowedKeysAt(pathKeys: readonly PropertyKey[], input: unknown): string[] | undefined {
  const top = pathKeys[0];
  if (pathKeys.length === 0) return keysOf(trainingConfigObjectSchema);
  if (pathKeys.length !== 1) return undefined;
  if (top === 'optimizer') return keysOf(sgdConfigSchema);
  const section = top === 'schedule' ? scheduleSchema : top === 'dropout' ? dropoutPolicySchema : null;
  if (!section) return undefined;
  const kind = (valueAt(input, pathKeys) as { kind?: unknown } | undefined)?.kind;
  const option = section.options.find((o) => (o.shape.kind as unknown as { value: unknown }).value === kind);
  return option ? keysOf(option) : undefined;
}

function valueAt(input: unknown, pathKeys: readonly PropertyKey[]): unknown {
  let v: unknown = input;
  for (const k of pathKeys) {
    if (v == null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v;
}

function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  const s = JSON.stringify(value);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/**
 * Validates a training config (e.g. a parsed --config file) and fills in defaults. Throws a TrainingConfigError
 * whose message lists, per problem, the key, the value found and what is allowed; `source` names the file.
 */
export function parseTrainingConfig(input: unknown, source = 'training config'): TrainingConfig {
  const result = trainingConfigSchema.safeParse(input);
  if (result.success) return withResolvedSchedule(result.data, source);
  const issues: TrainingConfigError['issues'] = [];
  for (const issue of result.error.issues) {
    const base = issue.path;
    if (issue.code === 'unrecognized_keys') {
      const allowed = allowedKeysAt(base, input);
      for (const key of issue.keys) {
        const keyPath = [...base, key].map(String).join('.');
        issues.push({
          key: keyPath,
          value: valueAt(input, [...base, key]),
          problem: 'unknown key',
          ...(allowed ? { allowed: allowed.join(', ') } : {}),
        });
      }
      continue;
    }
    let allowed: string | undefined;
    if (issue.code === 'invalid_value') allowed = issue.values.map((v) => JSON.stringify(v)).join(', ');
    if (issue.code === 'invalid_union' && 'note' in issue && issue.note === 'No matching discriminator') {
      const section = base[0] === 'schedule' ? scheduleSchema : base[0] === 'dropout' ? dropoutPolicySchema : null;
      if (section) allowed = section.options.map((o) => JSON.stringify((o.shape.kind as unknown as { value: unknown }).value)).join(', ');
    }
    const keyPath = base;
    issues.push({
      key: keyPath.map(String).join('.') || '(root)',
      value: valueAt(input, keyPath),
      problem: issue.message,
      ...(allowed ? { allowed } : {}),
      ...(issue.code === 'custom' ? { crossField: true } : {}),
    });
  }
  const lines = issues.map((i) => {
    // A key left to its default has no value of its own to quote (a cross-field check failed on it).
    const got = i.value === undefined && i.crossField ? '' : ` (got ${show(i.value)})`;
    return `  ${i.key}: ${i.problem}${got}${i.allowed ? `; allowed: ${i.allowed}` : ''}`;
  });
  throw new TrainingConfigError(`${source} is invalid:\n${lines.join('\n')}`, issues);
}

/** The config with its schedule's milestone fractions resolved against its length: what a run records and runs. */
function withResolvedSchedule(config: TrainingConfig, source: string): TrainingConfig {
  try {
    return { ...config, schedule: resolveSchedule(config.schedule, { epochs: config.epochs, maxSteps: config.maxSteps }) };
  } catch (err) {
    const problem = (err as Error).message;
    const value = config.schedule.kind === 'multi-step' ? config.schedule.milestoneFractions : undefined;
    throw new TrainingConfigError(`${source}: ${problem}`, [{ key: 'schedule.milestoneFractions', value, problem }]);
  }
}
