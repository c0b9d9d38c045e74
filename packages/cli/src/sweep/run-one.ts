import { hostname } from 'node:os';
import { Writable } from 'node:stream';
import { readRunFile, resolveCheckpointDir, runCheckpointDir, TrainingDivergedError, type TrainEvent } from '@wrn/training/node';
import { runTrain } from '../commands/train.js';
import type { CommandContext } from '../context.js';
import { errorMessage } from '../errors.js';
import { resolveTrainConfig } from '../train-config.js';
import type { CliIO } from '../io.js';
import type { SweepRun } from './grid.js';
import { runLayer } from './grid.js';
import { summarizeRunDir, type RunFailure, type RunSummary } from './layout.js';

/** Who trains: host and process, as status shows it and failure records name it. */
export const workerId = (): string => `${hostname()}:${process.pid}`;

export type RunOutcome =
  | { kind: 'completed'; summary: RunSummary; trained: boolean }
  /** Stopped by the signal after a step, with checkpoints/last written: the run can be resumed anywhere. */
  | { kind: 'interrupted'; message: string }
  /** Failed for a reason of its own (a config `wrn train` refuses, divergence): retrying would fail the same way. */
  | { kind: 'failed'; failure: RunFailure }
  /** Anything else (I/O, memory): worth another try, perhaps on another machine. */
  | { kind: 'error'; error: Error };

/** Lines written through it get `prefix` in front, so the output of runs in one worker log stays attributable. */
function prefixedStream(target: NodeJS.WritableStream, prefix: string): NodeJS.WritableStream {
  let pending = '';
  return new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) target.write(`${prefix}${line}\n`);
      done();
    },
  });
}

export function prefixedIO(io: CliIO, prefix: string): CliIO {
  return { stdout: prefixedStream(io.stdout, prefix), stderr: prefixedStream(io.stderr, prefix), env: io.env };
}

export function isCompletedRunDir(runDir: string): boolean {
  try {
    return readRunFile(runDir, 'summary')?.status === 'completed';
  } catch {
    return false; // a damaged summary: resuming the run restores it from its final checkpoint
  }
}

/**
 * Trains one run of a sweep into `runDir`, in this process, through `wrn train`'s own code path: a fresh run, or a
 * resume from its last checkpoint when one is there (another worker died, or handed it back). A run already
 * completed is not trained again. Never throws: the outcome says what happened.
 */
export async function trainSweepRun(input: {
  sweep: string;
  run: SweepRun;
  runDir: string;
  context: CommandContext;
  signal: AbortSignal;
  onProgress?: (event: TrainEvent) => void;
}): Promise<RunOutcome> {
  const { sweep, run, runDir, context, signal } = input;
  if (isCompletedRunDir(runDir)) return { kind: 'completed', summary: summarizeRunDir(runDir, run.values), trained: false };
  const resume = (await resolveCheckpointDir(runCheckpointDir(runDir, 'last'))) !== null;
  const failure = (reason: RunFailure['reason'], error: unknown): RunOutcome => ({
    kind: 'failed',
    failure: { reason, message: errorMessage(error), worker: workerId(), at: new Date().toISOString() },
  });
  const layer = runLayer(sweep, run, runDir);
  try {
    // The config alone decides whether the run is invalid: that is never worth another try.
    resolveTrainConfig({ flagLayers: [layer] });
  } catch (error) {
    return failure('invalid', error);
  }
  try {
    await runTrain(
      { flagLayers: [layer], resume: resume ? runDir : undefined, quiet: true },
      context,
      { signal, onProgress: input.onProgress },
    );
  } catch (error) {
    if (signal.aborted) return { kind: 'interrupted', message: errorMessage(error).split('\n')[0]! };
    if ((error as Error).cause instanceof TrainingDivergedError) return failure('diverged', error);
    // Anything else, input errors included (a data directory missing on this machine, a run directory held by
    // another process), may go better on another try or another machine: retried, a bounded number of times.
    return { kind: 'error', error: error instanceof Error ? error : new Error(String(error)) };
  }
  if (!isCompletedRunDir(runDir)) return { kind: 'error', error: new Error(`the run ended without a summary.json in ${runDir}`) };
  return { kind: 'completed', summary: summarizeRunDir(runDir, run.values), trained: true };
}
