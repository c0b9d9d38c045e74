import { TrainingError } from '@wrn/training';

/** Exit codes of `wrn`, documented in the README: 0 success, 1 the run failed, 2 bad usage or input. */
export const EXIT_OK = 0;
export const EXIT_RUN_FAILED = 1;
export const EXIT_USAGE = 2;

/**
 * A mistake of the user's (a bad flag, a missing file, an unknown model name): printed as one line without a stack
 * trace (unless --verbose) and exits with code 2.
 */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  readonly exitCode = EXIT_USAGE;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A run that started from valid input and then failed (training diverged, was interrupted, a backend crashed). */
export class RunFailedError extends Error {
  override readonly name = 'RunFailedError';
  readonly exitCode: number;
  /** `exitCode`: 1, or 128 + n for a run stopped by signal n (130 for SIGINT, 143 SIGTERM, 129 SIGHUP). */
  constructor(message: string, options?: { cause?: unknown; exitCode?: number }) {
    super(message, options);
    this.exitCode = options?.exitCode ?? EXIT_RUN_FAILED;
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Runs a step that only reads the user's input (a config file, a model name, a data directory) and turns whatever
 * it throws into a UsageError, prefixed with where the input came from, so that it exits 2 instead of 1.
 */
export async function asUsageError<T>(where: string, step: () => T | Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`${where}: ${errorMessage(error)}`, { cause: error });
  }
}

export function exitCodeOf(error: unknown): number {
  if (error instanceof UsageError) return EXIT_USAGE;
  if (error instanceof RunFailedError) return error.exitCode;
  // @wrn/training's errors say whose problem they are: bad input (exit 2) or a failed run (exit 1).
  if (error instanceof TrainingError) return error.exitCode;
  return EXIT_RUN_FAILED;
}
