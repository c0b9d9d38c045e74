import {
  readCheckpointState,
  readRunFile,
  readRunLock,
  resolveCheckpointDir,
  runCheckpointDir,
  runFilePath,
  RunLockFileError,
  staleReason,
  trainingConfigOf,
} from '@wrn/training/node';
import { TrainingError } from '@wrn/training';
import type { TrainingConfig } from '@wrn/training';
import { describeSource, sourceOf, type ValueSource } from './config-file.js';
import { UsageError } from './errors.js';
import { flagsOfKey } from './train-flags.js';
import { readSavedConfig } from './train-config.js';

/*
 * What `wrn train --resume R` checks before it writes anything, so a refused or mistaken resume leaves R as it was:
 * the settings an exact resume depends on are unchanged, no other writer holds R, and R is not already finished.
 */

/** Training keys a resume may change: they extend or log the run without changing any step already taken. */
const RESUMABLE_TRAINING_KEYS = new Set(['epochs', 'maxSteps', 'logEverySteps', 'checkpointEvery', 'context', 'preset']);
/** CLI keys (config.json's context) a resume may change: where it runs and what it writes at the end. */
const RESUMABLE_CONTEXT_KEYS = new Set(['runDir', 'resolved', 'backend', 'report']);
/** The flags of what a resume may change, for messages and the help: from the flag table. */
export const RESUMABLE_FLAGS = [...RESUMABLE_TRAINING_KEYS, ...RESUMABLE_CONTEXT_KEYS]
  .filter((key) => key !== 'runDir') // may only repeat the run's own directory
  .map(flagsOfKey)
  .filter((flags): flags is string => flags !== undefined)
  .join(', ');

const show = (value: unknown) => (value === undefined ? 'nothing (unset)' : JSON.stringify(value));

/**
 * Refuses a resume whose resolved config differs from the run's config.json in anything but what RESUMABLE_* allow,
 * naming the flag or file key that changed it, both values and what may change.
 */
export function checkResumeSettings(runDir: string, training: TrainingConfig, sources: Map<string, ValueSource>): void {
  const saved = trainingConfigOf(readSavedConfig(runDir)) as Record<string, unknown>;
  const file = runFilePath(runDir, 'config');
  const savedContext = (saved.context ?? {}) as Record<string, unknown>;
  const nowContext = training.context as Record<string, unknown>;
  const changes: Array<{ key: string; before: unknown; now: unknown }> = [];
  const keys = new Set([...Object.keys(saved), ...Object.keys(training)]);
  for (const key of keys) {
    if (RESUMABLE_TRAINING_KEYS.has(key)) continue;
    const before = saved[key];
    const now = (training as Record<string, unknown>)[key];
    if (JSON.stringify(before) !== JSON.stringify(now)) changes.push({ key, before, now });
  }
  for (const key of new Set([...Object.keys(savedContext), ...Object.keys(nowContext)])) {
    if (RESUMABLE_CONTEXT_KEYS.has(key) || keys.has(key)) continue; // `model` is in both: reported once
    if (JSON.stringify(savedContext[key]) !== JSON.stringify(nowContext[key])) changes.push({ key, before: savedContext[key], now: nowContext[key] });
  }
  if (changes.length === 0) return;
  const lines = changes.map(({ key, before, now }) => {
    const source = sourceOf(sources, key);
    const where = source && !(source.kind === 'file' && source.path === file) ? describeSource(source, key) : `${flagsOfKey(key) ?? key} (the recipe's default)`;
    return `${where}: ${key} is ${show(now)}, but the run in ${runDir} was trained with ${show(before)} (${file})`;
  });
  throw new UsageError(
    `${lines.join('\n')}\nan exact resume needs the same settings; on resume only ${RESUMABLE_FLAGS} may change. ` +
      `To train with the new settings, start a new run in another directory.`,
  );
}

/** Refuses at once (exit 2) when a live process holds the run directory; reads only. */
export async function checkNotLocked(runDir: string): Promise<void> {
  try {
    const holder = await readRunLock(runDir);
    if (holder && staleReason(holder) == null) {
      throw new UsageError(
        `${runDir} is in use by another writer: ${holder.command} (pid ${holder.pid} on ${holder.host}, since ${holder.startedAt}); ` +
          'wait for it to finish or stop it, or choose another run directory',
      );
    }
  } catch (error) {
    if (error instanceof RunLockFileError) throw new UsageError(error.message);
    throw error;
  }
}

/**
 * The message for a resume of a run that has already trained what its config asks, with its summary in place
 * (nothing to do, nothing is touched); null when there is training (or a repair) left to do.
 */
export async function finishedRunMessage(runDir: string, training: TrainingConfig): Promise<string | null> {
  let summary;
  try {
    summary = readRunFile(runDir, 'summary');
  } catch (error) {
    if (error instanceof TrainingError) return null; // a damaged summary: train() restores it from the final checkpoint
    throw error;
  }
  if (summary == null) return null;
  const last = await resolveCheckpointDir(runCheckpointDir(runDir, 'last'));
  if (last == null) return null;
  let state;
  try {
    state = await readCheckpointState(last);
  } catch (error) {
    if (error instanceof TrainingError) return null; // train() names the damage (or falls back) and repairs
    throw error;
  }
  const totalEpochs = training.epochs ?? Math.ceil(training.maxSteps! / state.itersPerEpoch);
  const finished = state.epoch >= totalEpochs || (training.maxSteps != null && state.globalStep >= training.maxSteps);
  if (!finished || state.reason !== 'epoch') return null;
  const accuracy = `, test accuracy ${(100 * summary.final.testAccuracy).toFixed(2)}%`;
  const plural = (n: number, unit: string) => `${n} ${unit}${n === 1 ? '' : 's'}`;
  const asked = training.epochs !== undefined ? plural(training.epochs, 'epoch') : plural(training.maxSteps!, 'step');
  return (
    `${runDir} has already finished (${state.epoch} epochs, step ${state.globalStep}${accuracy}; asked for ${asked}): nothing to train, nothing was changed. ` +
    `To train it longer: wrn train --resume ${runDir} --epochs ${state.epoch + 1} or more`
  );
}
