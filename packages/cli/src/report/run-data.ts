import { existsSync } from 'node:fs';
import type { z } from 'zod';
import { epochMetricsSchema, readMetricsLines, readRunFileLoose, runFilePath, RUN_FILES } from '@wrn/training/node';
import { UsageError } from '../errors.js';

/**
 * A `type: "epoch"` line of metrics.jsonl as the report reads it: a view of @wrn/training's one epoch schema, the
 * fields every run has written since the first, and whatever else the line holds, kept as it is (older runs lack
 * some of today's fields, newer ones add more).
 */
const reportEpochSchema = epochMetricsSchema
  .pick({ type: true, epoch: true, lr: true, trainLoss: true, trainAcc: true, testLoss: true, testTop1Error: true, testTop5Error: true, imagesPerSec: true, seconds: true })
  .loose();
export type EpochMetrics = z.infer<typeof reportEpochSchema>;

/** Everything a report shows, read from one run directory. */
export interface RunData {
  runDir: string;
  config: Record<string, unknown>;
  epochs: EpochMetrics[];
  summary: Record<string, unknown> | undefined;
  environment: Record<string, unknown> | undefined;
  confusion: { matrix: number[][]; classNames: string[] } | undefined;
}

export function readMetricsJsonl(path: string): EpochMetrics[] {
  return readMetricsLines(path, 'epoch', reportEpochSchema);
}

/** Reads the confusion matrix wherever the summary keeps it; the names default to the config's dataset classes. */
function findConfusion(summary: Record<string, unknown> | undefined): RunData['confusion'] {
  if (!summary) return undefined;
  const final = (summary.final ?? summary.test ?? summary) as Record<string, unknown>;
  const matrix = (final.confusionMatrix ?? summary.confusionMatrix) as unknown;
  if (!Array.isArray(matrix) || !matrix.every((row) => Array.isArray(row) && row.every((v) => typeof v === 'number'))) {
    return undefined;
  }
  const names = (final.classNames ?? summary.classNames) as unknown;
  const classNames =
    Array.isArray(names) && names.length === matrix.length ? names.map(String) : matrix.map((_, i) => String(i));
  return { matrix: matrix as number[][], classNames };
}

export function readRunData(runDir: string): RunData {
  if (!existsSync(runDir)) throw new UsageError(`run directory ${runDir} does not exist`);
  const metricsPath = runFilePath(runDir, 'metrics');
  if (!existsSync(metricsPath)) {
    throw new UsageError(`${runDir} is not a run directory: it has no ${RUN_FILES.metrics} (made by \`wrn train --run-dir ${runDir}\`)`);
  }
  // The report shows whatever the files hold (hand-made and older run directories too): formats checked, keys not.
  const summary = readRunFileLoose(runDir, 'summary') ?? undefined;
  return {
    runDir,
    config: readRunFileLoose(runDir, 'config') ?? {},
    epochs: readMetricsJsonl(metricsPath),
    summary,
    environment: readRunFileLoose(runDir, 'environment') ?? undefined,
    confusion: findConfusion(summary),
  };
}
