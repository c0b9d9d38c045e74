import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { loadLayersModel, type LayersModel } from '@tensorflow/tfjs-layers';
import { foldBatchNorm, registerCustomLayers } from '@wrn/blocks';
import { fileSystemIO } from '@wrn/blocks/node';
import type { Normalization } from '@wrn/datasets';
import {
  CheckpointError,
  CHECKPOINTS_DIR,
  MANIFEST_FILE,
  readCheckpointState,
  readRunFile,
  resolveCheckpointDir,
  runCheckpointDir,
  RunFileError,
  verifyCheckpointFiles,
} from '@wrn/training/node';
import { UsageError } from './errors.js';

export interface CheckpointModel {
  model: LayersModel;
  /** The checkpoint directory read (a `.prev` sibling when a save was cut short). */
  dir: string;
  /** The run's config.json, when the checkpoint sits in a run directory. */
  runConfig: Record<string, unknown> | undefined;
  runDir: string | undefined;
}

/**
 * Finds the checkpoint a user points at: a checkpoint directory (with model.json), or a run directory (its
 * checkpoints/best, else checkpoints/last).
 */
export async function findCheckpointDir(path: string): Promise<string> {
  if (!existsSync(path)) throw new UsageError(`--checkpoint ${path}: no such file or directory`);
  if (existsSync(join(path, 'model.json'))) return (await resolveCheckpointDir(path)) ?? path;
  const best = await resolveCheckpointDir(runCheckpointDir(path, 'best'));
  const last = await resolveCheckpointDir(runCheckpointDir(path, 'last'));
  // The committed `last` records which epoch is best; a kill between its commit and best's copy leaves best one
  // epoch behind until the next resume repairs it. Then `last` is the best model.
  if (last) {
    const lastState = await readCheckpointState(last).catch(() => null);
    const bestState = best ? await readCheckpointState(best).catch(() => null) : null;
    if (lastState?.best != null && lastState.best.epoch === lastState.epoch && lastState.reason === 'epoch' && bestState?.epoch !== lastState.epoch) return last;
  }
  if (best) return best;
  if (last) return last;
  const prev = await resolveCheckpointDir(path);
  if (prev) return prev;
  throw new UsageError(
    `--checkpoint ${path}: expected a checkpoint directory (with model.json) or a run directory (with checkpoints/best or checkpoints/last)`,
  );
}

/** How {@link loadCheckpointModel} loads. */
export interface LoadCheckpointOptions {
  /**
   * For inference only (eval, predict): each BatchNorm folded into the conv before it and each ReLU layer into the
   * layer before it (@wrn/blocks' foldBatchNorm), the same function in fewer passes over the activations.
   */
  foldBatchNorm?: boolean;
}

/** Loads the model of a checkpoint, with the config of the run that wrote it when there is one. */
export async function loadCheckpointModel(path: string, options: LoadCheckpointOptions = {}): Promise<CheckpointModel> {
  const dir = await findCheckpointDir(path);
  if (existsSync(join(dir, MANIFEST_FILE))) {
    try {
      await verifyCheckpointFiles(dir);
    } catch (error) {
      if (error instanceof CheckpointError) throw new UsageError(`--checkpoint ${path}: ${error.message}`);
      throw error;
    }
  }
  registerCustomLayers();
  let model: LayersModel;
  try {
    model = await loadLayersModel(fileSystemIO(dir));
  } catch (error) {
    throw new UsageError(`--checkpoint ${path}: cannot load the model in ${dir}: ${(error as Error).message}`);
  }
  const parent = dirname(dir);
  const runDir = basename(parent) === CHECKPOINTS_DIR ? dirname(parent) : undefined;
  let saved: Record<string, unknown> | null = null;
  try {
    saved = runDir ? readRunFile(runDir, 'config') : null;
  } catch (error) {
    model.dispose();
    if (error instanceof RunFileError) throw new UsageError(`--checkpoint ${path}: ${error.message}`, { cause: error });
    throw error;
  }
  // Read before folding: the folded model is built from the topology alone, without model.json's metadata.
  const runConfig = saved ?? convertedRunConfig(model);
  if (options.foldBatchNorm === true) {
    const loaded = model;
    model = (await foldBatchNorm(loaded)).model;
    loaded.dispose();
  }
  return { model, dir, runConfig, runDir };
}

/** What `wrn convert` records in model.json in place of a run's config.json: dataset, normalisation, class names. */
function convertedRunConfig(model: LayersModel): Record<string, unknown> | undefined {
  return (model.getUserDefinedMetadata() as { wrnRunConfig?: Record<string, unknown> } | undefined)?.wrnRunConfig;
}

/** The run's CLI options as recorded in config.json's context (dataset, dataDir, normalization, ...). */
export function runContext(runConfig: Record<string, unknown> | undefined): Record<string, unknown> {
  return ((runConfig?.context as Record<string, unknown> | undefined) ?? {}) as Record<string, unknown>;
}

/** The exact normalisation the run trained with (recorded by `wrn train`), if known. */
export function recordedNormalization(runConfig: Record<string, unknown> | undefined): Normalization | undefined {
  const resolved = runContext(runConfig).resolved as { normalization?: Normalization } | undefined;
  return resolved?.normalization;
}

export function recordedClassNames(runConfig: Record<string, unknown> | undefined): string[] | undefined {
  const resolved = runContext(runConfig).resolved as { classNames?: string[] } | undefined;
  return resolved?.classNames;
}
