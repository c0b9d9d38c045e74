import cliProgress from 'cli-progress';
import { formatDuration, writeLine, type CliIO } from './io.js';
import type { EpochMetrics } from '@wrn/training';

/** One training step as the progress output sees it; `loss`, `acc` and `imagesPerSec` are those of the step. */
export interface StepProgress {
  epoch: number;
  epochs: number;
  step: number;
  steps: number;
  loss: number;
  acc: number;
  imagesPerSec: number;
}

/** What the epoch summary line shows: fields of the `type: "epoch"` line of metrics.jsonl, and the run's epochs. */
export type EpochSummary = Pick<
  EpochMetrics,
  'epoch' | 'lr' | 'trainLoss' | 'trainAcc' | 'testLoss' | 'testTop1Error' | 'testTop5Error' | 'imagesPerSec' | 'seconds'
> & { epochs: number };

export type OutputMode = 'tty' | 'plain' | 'quiet' | 'json';

export interface ProgressReporter {
  readonly mode: OutputMode;
  /** A line of information (backend chosen, run directory...): shown unless quiet or json. */
  info(line: string): void;
  step(progress: StepProgress): void;
  /** The evaluation that follows an epoch has begun: the bar says so instead of looking stuck. */
  evaluating(epoch: number, epochs: number): void;
  epoch(summary: EpochSummary): void;
  /** Emits a data record: one JSON line in json mode, nothing otherwise. */
  record(value: Record<string, unknown>): void;
  stop(): void;
}

export function chooseOutputMode(io: CliIO, flags: { quiet?: boolean; json?: boolean }): OutputMode {
  if (flags.json) return 'json';
  if (flags.quiet) return 'quiet';
  return io.stderr.isTTY ? 'tty' : 'plain';
}

const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

export function formatEpochSummary(s: EpochSummary): string {
  const top5 = s.testTop5Error === undefined ? '' : ` top-5 err ${pct(s.testTop5Error)} |`;
  return (
    `epoch ${s.epoch}/${s.epochs} | lr ${s.lr.toPrecision(3)} | train loss ${s.trainLoss.toFixed(4)} acc ${pct(s.trainAcc)} | ` +
    `test loss ${s.testLoss.toFixed(4)} top-1 err ${pct(s.testTop1Error)} (acc ${pct(1 - s.testTop1Error)}) |${top5} ` +
    `${Math.round(s.imagesPerSec)} img/s | ${s.seconds.toFixed(1)} s`
  );
}

function formatStep(p: StepProgress, etaSeconds: number): string {
  return (
    `epoch ${p.epoch}/${p.epochs} step ${p.step}/${p.steps} | ${Math.round(p.imagesPerSec)} img/s | ` +
    `loss ${p.loss.toFixed(4)} | acc ${pct(p.acc)} | ETA ${formatDuration(etaSeconds)}`
  );
}

/** Seconds of training left in the run (this epoch and the ones after it) at the current image rate; evaluation not included. */
function epochEta(p: StepProgress, batchSize: number): number {
  const stepsLeft = p.steps - p.step + Math.max(0, p.epochs - p.epoch) * p.steps;
  return p.imagesPerSec > 0 ? (stepsLeft * batchSize) / p.imagesPerSec : Number.NaN;
}

/**
 * Progress output for `wrn train` and friends. On a terminal: a cli-progress bar on stderr with images/s, loss,
 * accuracy and ETA, and one summary line per epoch on stdout. Not on a terminal (CI, logs): plain step lines every
 * `plainEverySeconds` and the same summary lines. `--quiet`: summaries only. `--json`: one JSON object a line on
 * stdout and nothing else.
 */
export function createProgressReporter(
  io: CliIO,
  mode: OutputMode,
  options: { batchSize: number; plainEverySeconds?: number },
): ProgressReporter {
  const plainEvery = (options.plainEverySeconds ?? 10) * 1000;
  let bar: cliProgress.SingleBar | undefined;
  let barEpoch = -1;
  let lastPlain = 0;
  // The loop reports each step's loss and accuracy; the bar shows their running means over the epoch, which are
  // what the epoch summary ends on and do not jump about from batch to batch.
  let running = { epoch: -1, steps: 0, loss: 0, acc: 0, seconds: 0 };
  const smooth = (p: StepProgress): StepProgress => {
    if (running.epoch !== p.epoch || p.step <= running.steps) running = { epoch: p.epoch, steps: 0, loss: 0, acc: 0, seconds: 0 };
    running.steps += 1;
    running.loss += p.loss;
    running.acc += p.acc;
    running.seconds += p.imagesPerSec > 0 ? options.batchSize / p.imagesPerSec : 0;
    const imagesPerSec = running.seconds > 0 ? (running.steps * options.batchSize) / running.seconds : p.imagesPerSec;
    return { ...p, loss: running.loss / running.steps, acc: running.acc / running.steps, imagesPerSec };
  };

  const stopBar = () => {
    bar?.stop();
    bar = undefined;
    barEpoch = -1;
  };

  return {
    mode,
    info(line) {
      if (mode === 'tty' || mode === 'plain') writeLine(io.stderr, line);
    },
    step(raw) {
      const p = smooth(raw);
      if (mode === 'tty') {
        if (!bar || barEpoch !== p.epoch) {
          stopBar();
          bar = new cliProgress.SingleBar(
            {
              stream: io.stderr,
              format:
                'epoch {epoch} [{bar}] {value}/{total} | {rate} img/s | loss {loss} | acc {acc} | ETA {etaText}',
              barsize: 24,
              hideCursor: true,
              clearOnComplete: true,
              stopOnComplete: false,
              fps: 5,
            },
            cliProgress.Presets.shades_classic,
          );
          bar.start(p.steps, 0, { epoch: `${p.epoch}/${p.epochs}`, rate: '-', loss: '-', acc: '-', etaText: '--:--' });
          barEpoch = p.epoch;
        }
        bar.update(p.step, {
          rate: Math.round(p.imagesPerSec),
          loss: p.loss.toFixed(4),
          acc: pct(p.acc),
          etaText: formatDuration(epochEta(p, options.batchSize)),
        });
      } else if (mode === 'plain') {
        const now = Date.now();
        if (now - lastPlain >= plainEvery || p.step === p.steps) {
          lastPlain = now;
          writeLine(io.stderr, formatStep(p, epochEta(p, options.batchSize)));
        }
      }
    },
    evaluating(epoch, epochs) {
      if (mode === 'tty') {
        stopBar();
        io.stderr.write(`epoch ${epoch}/${epochs}: evaluating...\r`);
      } else if (mode === 'plain') {
        writeLine(io.stderr, `epoch ${epoch}/${epochs}: evaluating`);
      }
    },
    epoch(s) {
      if (mode === 'json') return;
      if (mode === 'tty') {
        stopBar();
        io.stderr.write('\x1b[2K\r');
      }
      writeLine(io.stdout, formatEpochSummary(s));
    },
    record(value) {
      if (mode === 'json') writeLine(io.stdout, JSON.stringify(value));
    },
    stop() {
      stopBar();
    },
  };
}
