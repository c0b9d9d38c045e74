import { writeLine, type CliIO } from './io.js';

export interface InterruptHandle {
  readonly signal: AbortSignal;
  /** The signal that aborted the run, if any. */
  readonly received: () => NodeJS.Signals | undefined;
  dispose(): void;
}

/**
 * Turns the first SIGINT/SIGTERM into an abort of the given run (the training loop finishes its step, saves a
 * checkpoint and returns), so Ctrl-C never leaves a half-written checkpoint. A second signal exits at once, for a
 * user who really wants out.
 */
export function abortOnSignals(io: CliIO, what: string): InterruptHandle {
  const controller = new AbortController();
  let received: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (received) {
      writeLine(io.stderr, `\n${signal} again: exiting now without saving.`);
      process.exit(signal === 'SIGINT' ? 130 : 143);
    }
    received = signal;
    writeLine(io.stderr, `\n${signal}: stopping ${what} after the current step and saving a checkpoint (send again to exit now)`);
    controller.abort(new Error(`interrupted by ${signal}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    received: () => received,
    dispose() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}
