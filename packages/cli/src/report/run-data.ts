import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EpochMetrics as TrainingEpochMetrics } from '@wrn/training';
import { UsageError } from '../errors.js';

/**
 * A `type: "epoch"` line of metrics.jsonl as the report reads it: the fields every run of @wrn/training writes, and
 * whatever else the line holds, kept as it is (older runs lack some of today's fields, newer ones add more).
 */
export type EpochMetrics = Pick<
  TrainingEpochMetrics,
  'type' | 'epoch' | 'lr' | 'trainLoss' | 'trainAcc' | 'testLoss' | 'testTop1Error' | 'testTop5Error' | 'imagesPerSec' | 'seconds'
> & { [key: string]: unknown };

/** Everything a report shows, read from one run directory. */
export interface RunData {
  runDir: string;
  config: Record<string, unknown>;
  epochs: EpochMetrics[];
  summary: Record<string, unknown> | undefined;
  environment: Record<string, unknown> | undefined;
  confusion: { matrix: number[][]; classNames: string[] } | undefined;
}

const EPOCH_FIELDS = ['epoch', 'lr', 'trainLoss', 'trainAcc', 'testLoss', 'testTop1Error', 'imagesPerSec', 'seconds'];

function readJson(path: string): Record<string, unknown> {
  const text = readFileSync(path, 'utf8');
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not a JSON object');
    return value as Record<string, unknown>;
  } catch (error) {
    throw new UsageError(`${path}: expected a JSON object (${(error as Error).message})`);
  }
}

export function readMetricsJsonl(path: string): EpochMetrics[] {
  const epochs: EpochMetrics[] = [];
  const lines = readFileSync(path, 'utf8').split('\n');
  lines.forEach((line, index) => {
    if (line.trim() === '') return;
    let record: Record<string, unknown>;
    try {
      record = JSON.parse(line) as Record<string, unknown>;
    } catch {
      throw new UsageError(`${path} line ${index + 1}: expected one JSON object per line, got ${JSON.stringify(line.slice(0, 60))}`);
    }
    if (record.type !== 'epoch') return;
    for (const field of EPOCH_FIELDS) {
      if (typeof record[field] !== 'number') {
        throw new UsageError(`${path} line ${index + 1}: epoch record lacks the number "${field}" (got ${JSON.stringify(record[field])})`);
      }
    }
    epochs.push(record as EpochMetrics);
  });
  return epochs;
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
  const metricsPath = join(runDir, 'metrics.jsonl');
  if (!existsSync(metricsPath)) {
    throw new UsageError(`${runDir} is not a run directory: it has no metrics.jsonl (made by \`wrn train --run-dir ${runDir}\`)`);
  }
  const configPath = join(runDir, 'config.json');
  const summaryPath = join(runDir, 'summary.json');
  const environmentPath = join(runDir, 'environment.json');
  const summary = existsSync(summaryPath) ? readJson(summaryPath) : undefined;
  return {
    runDir,
    config: existsSync(configPath) ? readJson(configPath) : {},
    epochs: readMetricsJsonl(metricsPath),
    summary,
    environment: existsSync(environmentPath) ? readJson(environmentPath) : undefined,
    confusion: findConfusion(summary),
  };
}
