import { writeLine, type CliIO } from './io.js';

/** The signals `wrn` handles, and the exit code of each (128 + the signal's number, as shells report them). */
export const SIGNAL_EXIT_CODES = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
export type HandledSignal = keyof typeof SIGNAL_EXIT_CODES;
const SIGNALS = Object.keys(SIGNAL_EXIT_CODES) as HandledSignal[];

export interface InterruptHandle {
  readonly signal: AbortSignal;
  /** The signal that aborted the run, if any. */
  readonly received: () => HandledSignal | undefined;
  dispose(): void;
}

type Handler = (signal: HandledSignal) => void;
/** The innermost command that knows how to stop cleanly gets the signal; none: exit at once with the code. */
const handlers: Handler[] = [];
let installedFor: CliIO | undefined;

function dispatch(io: CliIO, signal: HandledSignal): void {
  const handler = handlers.at(-1);
  if (handler) {
    handler(signal);
    return;
  }
  // Nothing is being written that a stop could leave half-done (every file is written by temp + rename, and the
  // run directory's lock is released on exit), so stop now, saying why.
  writeLine(io.stderr, `\nwrn: ${signal}: stopped (exit ${SIGNAL_EXIT_CODES[signal]})`);
  process.exit(SIGNAL_EXIT_CODES[signal]);
}

/**
 * Handles SIGINT, SIGTERM and SIGHUP from the process's first instant (bin.ts calls it before anything else), so a
 * signal at any moment ends `wrn` with a message and its conventional exit code rather than Node's silent default.
 */
export function installSignalHandlers(io: CliIO): void {
  if (installedFor) return;
  installedFor = io;
  for (const signal of SIGNALS) process.on(signal, () => dispatch(io, signal));
}

/**
 * Hands SIGINT, SIGTERM and SIGHUP to `handler` (innermost first) until the returned function is called: for a
 * command that stops cleanly in its own way (`wrn worker` hands its run back). A process listener of its own would
 * run beside the first-instant handler, which exits at once when no handler is registered.
 */
export function handleSignals(io: CliIO, handler: (signal: HandledSignal) => void): () => void {
  installSignalHandlers(io);
  handlers.push(handler);
  return () => {
    const at = handlers.lastIndexOf(handler);
    if (at >= 0) handlers.splice(at, 1);
  };
}

/**
 * Turns the first signal into an abort of the given run (the training loop finishes its step, saves a checkpoint
 * and returns), so Ctrl-C never leaves a half-written checkpoint. A second signal exits at once, for a user who
 * really wants out.
 */
export function abortOnSignals(io: CliIO, what: string): InterruptHandle {
  installSignalHandlers(io);
  const controller = new AbortController();
  let received: HandledSignal | undefined;
  const onSignal: Handler = (signal) => {
    if (received) {
      writeLine(io.stderr, `\n${signal} again: exiting now without saving.`);
      process.exit(SIGNAL_EXIT_CODES[signal]);
    }
    received = signal;
    writeLine(io.stderr, `\n${signal}: stopping ${what} after the current step and saving a checkpoint (send again to exit now)`);
    controller.abort(new Error(`interrupted by ${signal}`));
  };
  handlers.push(onSignal);
  return {
    signal: controller.signal,
    received: () => received,
    dispose() {
      const at = handlers.lastIndexOf(onSignal);
      if (at >= 0) handlers.splice(at, 1);
    },
  };
}
