import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { countParams } from '@wrn/architectures';
import { readRunFile, runFilePath } from '@wrn/training/node';
import { writeFileAtomic } from '../fs.js';
import { UsageError } from '../errors.js';
import { readMetricsJsonl } from '../report/run-data.js';
import type { ExpandedGrid } from './grid.js';

/*
 * A sweep on disk, under a run root that every worker shares:
 *   <run-root>/<sweep>/sweep.json         the expanded grid (SweepManifest), written by whoever first needs it
 *   <run-root>/<sweep>/<run id>/          a `wrn train` run directory (config.json, metrics.jsonl, checkpoints/, ...)
 *   <run-root>/<sweep>/<run id>/sweep-failure.json   why the run failed for a reason of its own (not retried)
 *   <run-root>/<sweep>/report.md, report.html        `wrn sweep report`
 */

export const SWEEP_FORMAT = 'wrn-sweep/1';

export const sweepManifestSchema = z
  .object({
    format: z.literal(SWEEP_FORMAT),
    name: z.string(),
    /** @wrn/cli version that expanded the grid; a worker of another version refuses its runs. */
    version: z.string(),
    source: z.string(),
    description: z.string().optional(),
    hash: z.string(),
    axisKeys: z.array(z.string()),
    runs: z.array(z.object({ id: z.string(), axes: z.record(z.string(), z.unknown()), values: z.record(z.string(), z.unknown()) }).strict()),
    createdAt: z.string(),
  })
  .strict();
export type SweepManifest = z.infer<typeof sweepManifestSchema>;

export const runFailureSchema = z
  .object({
    /** invalid: a config `wrn train` refuses (its exit 2); diverged: NaN loss; error: anything else, out of retries. */
    reason: z.enum(['invalid', 'diverged', 'error']),
    message: z.string(),
    worker: z.string(),
    at: z.string(),
  })
  .strict();
export type RunFailure = z.infer<typeof runFailureSchema>;

export function manifestOf(grid: ExpandedGrid, version: string): SweepManifest {
  return {
    format: SWEEP_FORMAT,
    name: grid.name,
    version,
    source: grid.source,
    description: grid.description,
    hash: grid.hash,
    axisKeys: grid.axisKeys,
    runs: grid.runs,
    createdAt: new Date().toISOString(),
  };
}

export const sweepDir = (runRoot: string, sweep: string) => join(runRoot, sweep);
export const runDirOf = (runRoot: string, sweep: string, runId: string) => join(runRoot, sweep, runId);
const manifestPath = (runRoot: string, sweep: string) => join(sweepDir(runRoot, sweep), 'sweep.json');
export const failurePath = (runDir: string) => join(runDir, 'sweep-failure.json');

export function readManifestFile(path: string): SweepManifest {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new UsageError(`${path}: not a JSON file (${(error as Error).message})`);
  }
  const parsed = sweepManifestSchema.safeParse(value);
  if (!parsed.success) throw new UsageError(`${path}: not a sweep manifest (${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message})`);
  return parsed.data;
}

/** The sweep's manifest under the run root, or undefined when none was written there yet. */
export function readSweepManifest(runRoot: string, sweep: string): SweepManifest | undefined {
  const path = manifestPath(runRoot, sweep);
  return existsSync(path) ? readManifestFile(path) : undefined;
}

/**
 * Writes sweep.json unless the same sweep is already there; a different grid under the same name is refused, since
 * its run directories would mix two sweeps.
 */
export function ensureSweepManifest(runRoot: string, manifest: SweepManifest): void {
  const existing = readSweepManifest(runRoot, manifest.name);
  if (existing && existing.hash !== manifest.hash) {
    throw new UsageError(
      `sweep "${manifest.name}" in ${sweepDir(runRoot, manifest.name)} was made from another grid (${existing.source}, ${existing.runs.length} runs); ` +
        'give this grid another name (its `name:` key) or another --run-root',
    );
  }
  if (existing) return;
  mkdirSync(sweepDir(runRoot, manifest.name), { recursive: true });
  writeFileAtomic(manifestPath(runRoot, manifest.name), `${JSON.stringify(manifest, null, 2)}\n`);
}

export function writeRunFailure(runDir: string, failure: RunFailure): void {
  mkdirSync(runDir, { recursive: true });
  writeFileAtomic(failurePath(runDir), `${JSON.stringify(runFailureSchema.parse(failure), null, 2)}\n`);
}

export function readRunFailure(runDir: string): RunFailure | undefined {
  const path = failurePath(runDir);
  if (!existsSync(path)) return undefined;
  return runFailureSchema.parse(JSON.parse(readFileSync(path, 'utf8')));
}

/** What the sweep's status and report need of one run, read from its run directory (a worker returns the same). */
export const runSummarySchema = z
  .object({
    status: z.enum(['completed', 'failed', 'partial', 'pending']),
    epochsDone: z.number().int().nonnegative(),
    totalEpochs: z.number().int().positive().nullable(),
    /** Final test top-1 error (fraction), null until the run completes. */
    testTop1Error: z.number().nullable(),
    /** Test top-1 error of each epoch done, for the report's curves. */
    epochErrors: z.array(z.number()),
    /** Mean training seconds of an epoch (evaluation excluded, as in the WRN paper's time column). */
    secondsPerEpoch: z.number().nullable(),
    params: z.number().int().nullable(),
    failure: runFailureSchema.nullable(),
  })
  .strict();
export type RunSummary = z.infer<typeof runSummarySchema>;

const NUM_CLASSES: Record<string, number> = { cifar10: 10, cifar100: 100, svhn: 10 };

/** A run file for the sweep's status and report: undefined when absent or unreadable (a run being written, or damaged). */
function readRunFileOrUndefined<K extends 'config' | 'summary'>(runDir: string, kind: K): ReturnType<typeof readRunFile<K>> | undefined {
  try {
    return readRunFile(runDir, kind) ?? undefined;
  } catch {
    return undefined;
  }
}

/** Trainable parameters of the run's model, counted from its plan (nothing is built). */
export function paramsOf(values: Record<string, unknown>): number | null {
  try {
    const model = String(values.model ?? 'wrn-16-2');
    return countParams(model, { numClasses: NUM_CLASSES[String(values.dataset ?? 'cifar10')] ?? 10 });
  } catch {
    return null;
  }
}

/** Summarises a run directory: completed (summary.json), failed (sweep-failure.json), partial (some epochs), pending. */
export function summarizeRunDir(runDir: string, values: Record<string, unknown>): RunSummary {
  const failure = readRunFailure(runDir) ?? null;
  const summary = readRunFileOrUndefined(runDir, 'summary');
  const config = readRunFileOrUndefined(runDir, 'config');
  const metricsPath = runFilePath(runDir, 'metrics');
  const epochs = existsSync(metricsPath) ? readMetricsJsonl(metricsPath) : [];
  const completed = summary?.status === 'completed';
  const seconds = epochs.map((e) => e.seconds);
  const totalEpochs = typeof config?.epochs === 'number' ? config.epochs : typeof values.epochs === 'number' ? values.epochs : null;
  return {
    status: completed ? 'completed' : failure ? 'failed' : epochs.length > 0 || config ? 'partial' : 'pending',
    epochsDone: epochs.length,
    totalEpochs,
    testTop1Error: completed ? (epochs.at(-1)?.testTop1Error ?? null) : null,
    epochErrors: epochs.map((e) => e.testTop1Error),
    secondsPerEpoch: seconds.length > 0 ? seconds.reduce((a, b) => a + b, 0) / seconds.length : null,
    params: paramsOf(values),
    failure,
  };
}
