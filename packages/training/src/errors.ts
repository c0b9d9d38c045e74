/**
 * Whose problem an error of @wrn/training is, so a caller (the CLI) sorts errors by type, never by message text:
 * - 'bad-input': what the caller handed in is wrong (a config, a run directory that holds another run, a resume
 *   that does not match its run, a damaged or foreign file); fix the input and run again. The CLI exits 2.
 * - 'run-failed': the input was fine and the run failed (diverged); the CLI exits 1.
 */
export type TrainingErrorKind = 'bad-input' | 'run-failed';

/** Exit code of each kind for a command-line caller: 2 bad input, 1 a failed run. */
export const TRAINING_ERROR_EXIT_CODES: Record<TrainingErrorKind, 1 | 2> = { 'bad-input': 2, 'run-failed': 1 };

/** Base class of the errors @wrn/training throws on purpose; anything else it throws is a bug or the system's. */
export abstract class TrainingError extends Error {
  abstract readonly kind: TrainingErrorKind;
  get exitCode(): 1 | 2 {
    return TRAINING_ERROR_EXIT_CODES[this.kind];
  }
}

/** A run directory that cannot take this run: it already holds one, or a resume finds nothing to resume. */
export class RunDirectoryError extends TrainingError {
  override readonly name = 'RunDirectoryError';
  readonly kind = 'bad-input';
  constructor(
    message: string,
    readonly runDir: string,
  ) {
    super(message);
  }
}

/** A resume whose config or data would not continue the run exactly (another batch size, seed, schedule...). */
export class ResumeMismatchError extends TrainingError {
  override readonly name = 'ResumeMismatchError';
  readonly kind = 'bad-input';
  constructor(
    message: string,
    /** The config key (or 'itersPerEpoch') that differs. */
    readonly key: string,
  ) {
    super(message);
  }
}
