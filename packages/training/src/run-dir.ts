import { execFileSync } from 'node:child_process';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { trainingConfigObjectSchema, type TrainingConfig } from './config';
import { TrainingError } from './errors';
import { writeFileAtomic } from './fs-atomic';

/*
 * The run directory, declared once: the name and the schema of every file in it, with the one writer and the one
 * reader of each. train() and the CLI write through it; eval, report, the sweep's layout and records and the resume
 * checks read through it.
 *   config.json       the resolved training config (what train() ran), the resolved model config and the git commit;
 *                     written first, before anything else of the run
 *   environment.json  what the run ran on (backend, versions, machine), written right after config.json
 *   metrics.jsonl     one JSON line per epoch (type "epoch") and every logEverySteps steps (type "step")
 *   summary.json      how the run ended, written once it has (and carried by the final checkpoint)
 *   checkpoints/      last, best, epoch-K: see checkpoint.ts; each holds a state.json (checkpointStateSchema)
 * config.json, environment.json and summary.json carry a `format`; a reader meeting another one says which file,
 * which format it found and which it reads. A file without one predates the field and has the same layout.
 */

export const RUN_FILES = {
  config: 'config.json',
  environment: 'environment.json',
  metrics: 'metrics.jsonl',
  summary: 'summary.json',
} as const;
export type RunFileKind = keyof typeof RUN_FILES;

/** The checkpoints' folder of a run directory, and the state file of a checkpoint (schema: checkpointStateSchema). */
export const CHECKPOINTS_DIR = 'checkpoints';
export const CHECKPOINT_STATE_FILE = 'state.json';

/** The format each versioned file of a run directory is written in. */
export const RUN_FILE_FORMATS = {
  config: 'wrn-run-config/1',
  environment: 'wrn-run-environment/1',
  summary: 'wrn-run-summary/1',
} as const;

export function runFilePath(runDir: string, kind: RunFileKind): string {
  return path.join(runDir, RUN_FILES[kind]);
}

/** A checkpoint of a run directory by name: `last`, `best`, `epoch-K`. */
export function runCheckpointDir(runDir: string, name: string): string {
  return path.join(runDir, CHECKPOINTS_DIR, name);
}

/** A file of a run directory that is missing something, is not JSON or does not match its schema. */
export class RunFileError extends TrainingError {
  override readonly name: string = 'RunFileError';
  readonly kind = 'bad-input';
  constructor(
    message: string,
    readonly file: string,
  ) {
    super(message);
  }
}

/** A file of a run directory written in a format this version does not read. */
export class RunFileFormatError extends RunFileError {
  override readonly name = 'RunFileFormatError';
  constructor(
    file: string,
    readonly found: unknown,
    readonly expected: string,
  ) {
    super(`${file}: format ${JSON.stringify(found)} is not one this version of @wrn/training reads (it reads ${JSON.stringify(expected)}); use the @wrn version that wrote the run`, file);
  }
}

// ---- metrics.jsonl ----------------------------------------------------------------------------------------------

/** One line of metrics.jsonl per epoch (epochs numbered from 1). Error rates and accuracies are fractions. */
export const epochMetricsSchema = z
  .object({
    type: z.literal('epoch'),
    epoch: z.number().int().positive(),
    /** Optimiser steps taken in the run so far. */
    step: z.number().int().nonnegative(),
    /** Learning rate of the epoch's last step. */
    lr: z.number(),
    trainLoss: z.number(),
    trainAcc: z.number().min(0).max(1),
    testLoss: z.number(),
    testTop1Error: z.number().min(0).max(1),
    testTop5Error: z.number().min(0).max(1),
    /** Test accuracy per class, in label order (null for a class absent from the test set). */
    testPerClassAccuracy: z.array(z.number().min(0).max(1).nullable()),
    /** Training throughput of the epoch (data loading included, evaluation excluded). */
    imagesPerSec: z.number().nonnegative(),
    /** Training seconds of the epoch (evaluation excluded). */
    seconds: z.number().nonnegative(),
    evalSeconds: z.number().nonnegative(),
  })
  .strict();
export type EpochMetrics = z.infer<typeof epochMetricsSchema>;

/** A metrics.jsonl step line, written every `logEverySteps` steps. */
export const stepMetricsSchema = z
  .object({
    type: z.literal('step'),
    epoch: z.number().int().positive(),
    iteration: z.number().int().positive(),
    step: z.number().int().positive(),
    lr: z.number(),
    loss: z.number(),
    acc: z.number().min(0).max(1),
    imagesPerSec: z.number().nonnegative(),
  })
  .strict();
export type StepMetrics = z.infer<typeof stepMetricsSchema>;

export const metricsLineSchema = z.discriminatedUnion('type', [epochMetricsSchema, stepMetricsSchema]);
export type MetricsLine = z.infer<typeof metricsLineSchema>;

/** A metrics line as written: validated, NaN per-class accuracies as null, one line of JSON with its newline. */
export function formatMetricsLine(line: MetricsLine): string {
  return `${JSON.stringify(metricsLineSchema.parse(line))}\n`;
}

/** Appends one line to the run's metrics.jsonl. */
export async function appendMetricsLine(runDir: string, line: MetricsLine): Promise<void> {
  await fs.appendFile(runFilePath(runDir, 'metrics'), formatMetricsLine(line));
}

function describeIssue(error: z.ZodError, value: unknown): string {
  const issue = error.issues[0]!;
  let got: unknown = value;
  for (const part of issue.path) got = (got as Record<PropertyKey, unknown> | undefined)?.[part as string];
  const keys = issue.code === 'unrecognized_keys' ? `: ${issue.keys.join(', ')}` : '';
  return `${issue.path.join('.') || 'top level'}: ${issue.message}${keys} (got ${JSON.stringify(got)?.slice(0, 80) ?? 'nothing'})`;
}

/**
 * Reads the lines of metrics.jsonl whose `type` is `type`, each validated by `schema` (epochMetricsSchema, or a
 * view of it such as a `pick` of the fields a reader needs); other lines are skipped. `tornLastLine: 'skip'` drops a
 * final line a kill cut short; otherwise every line must be JSON. Errors name the file and the line.
 */
export function readMetricsLines<T>(
  file: string,
  type: MetricsLine['type'],
  schema: z.ZodType<T>,
  options: { tornLastLine?: 'skip' | 'error' } = {},
): T[] {
  const lines = readFileSync(file, 'utf8').split('\n');
  const records: T[] = [];
  lines.forEach((line, index) => {
    if (line.trim() === '') return;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch {
      if (options.tornLastLine === 'skip' && lines.slice(index + 1).every((rest) => rest.trim() === '')) return;
      throw new RunFileError(`${file} line ${index + 1}: expected one JSON object per line, got ${JSON.stringify(line.slice(0, 60))}`, file);
    }
    if ((record as { type?: unknown } | null)?.type !== type) return;
    const parsed = schema.safeParse(record);
    if (!parsed.success) throw new RunFileError(`${file} line ${index + 1}: ${type} record: ${describeIssue(parsed.error, record)}`, file);
    records.push(parsed.data);
  });
  return records;
}

// ---- config.json ------------------------------------------------------------------------------------------------

/** config.json: the training config train() ran (defaults filled in), the model's resolved config and the commit. */
export const runConfigFileSchema = trainingConfigObjectSchema.extend({
  format: z.literal(RUN_FILE_FORMATS.config),
  /** The model's architecture as resolved from its name (stages, widths, block type...); null when not given. */
  modelConfig: z.record(z.string(), z.unknown()).nullable().default(null),
  /** `git rev-parse HEAD` in the working directory of the run, null outside a git checkout. */
  gitCommit: z.string().regex(/^[0-9a-f]{40,64}$/).nullable().default(null),
});
export type RunConfigFile = z.infer<typeof runConfigFileSchema>;

/** The commit checked out in `cwd`, or null when there is no git or no repository (never throws). */
export function currentGitCommit(cwd: string = process.cwd()): string | null {
  try {
    const out = execFileSync('git', ['rev-parse', 'HEAD'], { cwd, stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000, encoding: 'utf8' }).trim();
    return /^[0-9a-f]{40,64}$/.test(out) ? out : null;
  } catch {
    return null;
  }
}

/** Writes config.json (atomically): the training config plus what the run records beside it. */
export async function writeRunConfig(runDir: string, config: TrainingConfig, record: { modelConfig?: Record<string, unknown> | null; gitCommit?: string | null } = {}): Promise<void> {
  const file: RunConfigFile = runConfigFileSchema.parse({
    format: RUN_FILE_FORMATS.config,
    ...config,
    modelConfig: record.modelConfig ?? null,
    gitCommit: record.gitCommit === undefined ? currentGitCommit() : record.gitCommit,
  });
  await writeFileAtomic(runFilePath(runDir, 'config'), `${JSON.stringify(file, null, 2)}\n`);
}

/** The training config of a config.json: what train() takes to run it again (resume). */
export function trainingConfigOf(file: RunConfigFile): TrainingConfig {
  const { format: _format, modelConfig: _modelConfig, gitCommit: _gitCommit, ...training } = file;
  return training as TrainingConfig;
}

// ---- summary.json -----------------------------------------------------------------------------------------------

const fraction = z.number().min(0).max(1);

/** summary.json: how a run ended. Written when the last epoch is evaluated, and carried by the final checkpoint. */
export const runSummarySchema = z
  .object({
    format: z.literal(RUN_FILE_FORMATS.summary),
    status: z.literal('completed'),
    epochs: z.number().int().nonnegative(),
    steps: z.number().int().nonnegative(),
    final: z
      .object({ trainLoss: z.number(), trainAcc: fraction, testLoss: z.number(), testTop1Error: fraction, testTop5Error: fraction, testAccuracy: fraction })
      .strict(),
    best: z.object({ epoch: z.number().int().positive(), testTop1Error: fraction }).strict().nullable(),
    testExamples: z.number().int().positive(),
    classNames: z.array(z.string()).nullable(),
    /** Per true class, null for a class absent from the test set. */
    perClassAccuracy: z.array(fraction.nullable()),
    /** confusionMatrix[trueClass][predictedClass] = count. */
    confusionMatrix: z.array(z.array(z.number().int().nonnegative())),
    imagesPerSec: z.number().nonnegative(),
  })
  .strict();
export type RunSummary = z.infer<typeof runSummarySchema>;

/** summary.json's text, validated (NaN accuracies as null), as both the run directory and the final checkpoint hold it. */
export function formatRunSummary(summary: Omit<RunSummary, 'format'>): string {
  return `${JSON.stringify(runSummarySchema.parse({ format: RUN_FILE_FORMATS.summary, ...summary }), null, 2)}\n`;
}

// ---- environment.json -------------------------------------------------------------------------------------------

/** The packages whose versions environment.json records, each under its name ("@tensorflow/tfjs-core": "4.22.0"). */
export const RUN_ENVIRONMENT_PACKAGES = ['@tensorflow/tfjs-core', '@wrn/cli', '@wrn/architectures', '@wrn/training', '@wrn/backend', '@wrn/datasets', '@wrn/blocks'] as const;

/** environment.json: what a run ran on. */
export const runEnvironmentSchema = z
  .object({
    format: z.literal(RUN_FILE_FORMATS.environment),
    backend: z.string(),
    /** Why selection picked the backend, in words. */
    backendReason: z.string(),
    wasmThreads: z.number().int().positive().optional(),
    webgpuAdapter: z.string().optional(),
    nativePackage: z.string().optional(),
    node: z.string(),
    platform: z.string(),
    cpu: z.string(),
    memory: z.string(),
    command: z.string(),
    startedAt: z.string(),
    ...Object.fromEntries(RUN_ENVIRONMENT_PACKAGES.map((name) => [name, z.string().optional()])) as Record<(typeof RUN_ENVIRONMENT_PACKAGES)[number], z.ZodOptional<z.ZodString>>,
  })
  .strict();
export type RunEnvironment = z.infer<typeof runEnvironmentSchema>;
export type RunEnvironmentInput = Omit<RunEnvironment, 'format'>;

/** Writes environment.json (atomically); train() does, right after config.json. */
export async function writeRunEnvironment(runDir: string, environment: RunEnvironmentInput): Promise<void> {
  const file = runEnvironmentSchema.parse({ format: RUN_FILE_FORMATS.environment, ...environment });
  await writeFileAtomic(runFilePath(runDir, 'environment'), `${JSON.stringify(file, null, 2)}\n`);
}

// ---- readers ----------------------------------------------------------------------------------------------------

type VersionedKind = keyof typeof RUN_FILE_FORMATS;
const SCHEMAS = { config: runConfigFileSchema, environment: runEnvironmentSchema, summary: runSummarySchema } as const;
type FileOf<K extends VersionedKind> = z.infer<(typeof SCHEMAS)[K]>;

/** Parses a JSON object of a versioned run file and checks its format (when it has one). */
function parseVersioned(text: string, file: string, kind: VersionedKind): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new RunFileError(`${file} is ${text.length === 0 ? 'empty' : `not valid JSON (${(error as Error).message})`}`, file);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RunFileError(`${file}: expected a JSON object, got ${JSON.stringify(value)?.slice(0, 60)}`, file);
  }
  const record = value as Record<string, unknown>;
  const expected = RUN_FILE_FORMATS[kind];
  if (record.format !== undefined && record.format !== expected) throw new RunFileFormatError(file, record.format, expected);
  return record;
}

/**
 * Reads and validates a versioned file of a run directory (config, environment, summary); null when it is absent.
 * Throws RunFileError naming the file, the key and the value, RunFileFormatError for another format.
 */
export function readRunFile<K extends VersionedKind>(runDir: string, kind: K): FileOf<K> | null {
  const file = runFilePath(runDir, kind);
  if (!existsSync(file)) return null;
  // No format: written before the field, in the same layout.
  const record = { ...parseVersioned(readFileSync(file, 'utf8'), file, kind), format: RUN_FILE_FORMATS[kind] };
  const parsed = SCHEMAS[kind].safeParse(record);
  if (!parsed.success) throw new RunFileError(`${file}: ${describeIssue(parsed.error, record)}`, file);
  return parsed.data as FileOf<K>;
}

/**
 * A versioned run file as a plain object, its format checked but its keys not: for readers that show whatever a
 * run directory holds (the report), including hand-made and older ones. Null when absent.
 */
export function readRunFileLoose(runDir: string, kind: VersionedKind): Record<string, unknown> | null {
  const file = runFilePath(runDir, kind);
  if (!existsSync(file)) return null;
  return parseVersioned(readFileSync(file, 'utf8'), file, kind);
}
