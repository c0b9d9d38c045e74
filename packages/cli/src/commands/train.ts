import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { buildModel, countParams, resolveModelConfig } from '@wrn/architectures';
import { getLayerRandomState, seedLayerRandom, setLayerRandomState, type LayerRandomState } from '@wrn/blocks';
import { dropoutModelOptions, formatSchedule, TrainingError } from '@wrn/training';
import {
  acquireRunLock,
  readRunFile,
  resolveCheckpointDir,
  runCheckpointDir,
  runFilePath,
  train,
  type RunLock,
  type TrainEvent,
  type TrainResult,
} from '@wrn/training/node';
import { chooseBackend } from '../backend.js';
import type { ConfigLayer } from '../config-file.js';
import type { CommandContext } from '../context.js';
import { batchSource, evalPipeline, loadRunData, trainPipeline } from '../data.js';
import { describeEnvironment } from '../environment.js';
import { asUsageError, errorMessage, RunFailedError, UsageError } from '../errors.js';
import { examples } from '../flags.js';
import { formatCount, writeLine } from '../io.js';
import { chooseOutputMode, createProgressReporter } from '../progress.js';
import { writeReport } from '../report/report.js';
import { isOutOfMemory, outOfMemoryAdvice } from '../memory-advice.js';
import { checkModelDepth } from '../model-size.js';
import { checkNotLocked, checkResumeSettings, finishedRunMessage, RESUMABLE_FLAGS } from '../resume-check.js';
import { abortOnSignals, SIGNAL_EXIT_CODES } from '../signals.js';
import { addTrainFlags, configKeysHelp, trainFlagLayers } from '../train-flags.js';
import { resolveTrainConfig, type RunOptions } from '../train-config.js';

function defaultRunDir(options: RunOptions): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return join('runs', `${options.model}-${options.dataset}-${stamp}`);
}

const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

export function registerTrain(program: Command, context: CommandContext): void {
  const command = program
    .command('train')
    .description('train a model; writes config.json, metrics.jsonl, checkpoints/, summary.json and report.html into a run directory')
    .option('-c, --config <file>', 'run config (.json, .yaml): any flag\'s key, e.g. epochs, schedule, optimizer, dataDir');
  addTrainFlags(command);
  command
    .option('--resume <run-dir>', 'continue the run in <run-dir> from its last checkpoint (flags may extend --epochs)')
    .option('--dry-run', 'print the resolved config and exit')
    .option('-q, --quiet', 'print only the epoch summaries and the result')
    .option('--json', 'print one JSON object per line (start, epochs, result) and nothing else')
    .addHelpText(
      'after',
      `${examples([
        'wrn train --model wrn-16-2 --epochs 3                     # the embedded CIFAR-10 sample, backend auto',
        'wrn train --model wrn-16-2 --dataset cifar10 --data-dir ../shared/data/cifar10-subset --epochs 10 --batch-size 64',
        'wrn train --recipe wrn-cifar --model wrn-28-10 --data-dir ~/cifar-10-batches-bin   # the paper\'s 200 epochs',
        'wrn train --config run.yaml --epochs 5                    # flags override the file, the file the recipe',
        'wrn train --model resnet20 --dry-run                      # show the resolved config',
        'wrn train --resume runs/wrn-16-2-cifar10-20261123-081500 --epochs 20',
      ])}
Precedence: flags > --config file > --resume'd config.json > --recipe (default: the model family's paper recipe).
${configKeysHelp()}
On --resume only ${RESUMABLE_FLAGS} may
change (anything else would not continue the same run: exit 2 naming it); resuming a finished run says so and
changes nothing. One writer per run directory: a second train or resume of it exits 2 naming the holder.
Ctrl-C (SIGINT), SIGTERM or SIGHUP finishes the current step, saves checkpoints/last and exits 130, 143 or 129
with the command that resumes.
`,
    )
    .action(async (flags: { config?: string; resume?: string; dryRun?: boolean; quiet?: boolean; json?: boolean }) => {
      await runTrain({ ...flags, flagLayers: trainFlagLayers(command) }, context);
    });
}

/** What `wrn train` runs: its flags as config layers, and the ones that are not config. */
export interface TrainRunInput {
  flagLayers: ConfigLayer[];
  config?: string;
  resume?: string;
  dryRun?: boolean;
  quiet?: boolean;
  json?: boolean;
}

/** What a caller other than the command itself (a sweep worker) supplies: its own interrupt signal and a progress tap. */
export interface TrainRunHooks {
  /** Replaces the SIGINT/SIGTERM handling of `wrn train`: aborting finishes the step and checkpoints. */
  signal?: AbortSignal;
  onProgress?: (event: TrainEvent) => void;
}

/** `wrn train` as a function, so `wrn worker` trains a sweep's run in-process through the very same code path. */
export async function runTrain(flags: TrainRunInput, context: CommandContext, hooks: TrainRunHooks = {}): Promise<TrainResult | undefined> {
  const { io } = context;
  const resolved = resolveTrainConfig({ flagLayers: flags.flagLayers, configPath: flags.config, resumeDir: flags.resume });
  const { options, training } = resolved;
  options.runDir ??= defaultRunDir(options);
  training.context = { ...training.context, runDir: options.runDir };
  if (flags.dryRun) {
    writeLine(io.stdout, JSON.stringify(training, null, 2));
    return undefined;
  }
  const runDir = options.runDir;
  // Everything below up to the lock only reads: a refused run leaves its directory as it was.
  if (existsSync(runDir) && !statSync(runDir).isDirectory()) {
    throw new UsageError(`--run-dir ${runDir}: is a file, not a directory; give a new or existing run directory`);
  }
  if (flags.resume) checkResumeSettings(runDir, training, resolved.sources);
  await checkNotLocked(runDir);
  if (flags.resume) {
    const finished = await finishedRunMessage(runDir, training);
    if (finished) {
      writeLine(io.stderr, finished);
      return;
    }
  } else {
    const existing = await resolveCheckpointDir(runCheckpointDir(runDir, 'last'));
    if (existing) throw new UsageError(`--run-dir ${runDir} already holds a run (${existing}); resume it with wrn train --resume ${runDir}, or choose another run directory`);
  }
  let lock: RunLock;
  try {
    lock = await acquireRunLock(runDir, { command: `wrn train ${flags.resume ? `--resume ${runDir}` : `--run-dir ${runDir}`}` });
  } catch (error) {
    // Another writer holds the run directory, or its lock file is damaged: the user's to sort out (exit 2).
    if (error instanceof TrainingError && error.kind === 'bad-input') throw new UsageError(error.message, { cause: error });
    throw error;
  }
  try {
    return await trainLocked(flags, context, resolved, lock, hooks);
  } finally {
    await lock.release();
  }
}

async function trainLocked(
  flags: TrainRunInput,
  context: CommandContext,
  resolved: ReturnType<typeof resolveTrainConfig>,
  lock: RunLock,
  hooks: TrainRunHooks,
): Promise<TrainResult> {
  const { io } = context;
  const { options, training } = resolved;
  const runDir = options.runDir!;

  const mode = chooseOutputMode(io, flags);
  const progress = createProgressReporter(io, mode, { batchSize: training.batchSize });

  const backend = await chooseBackend(options.backend);
  checkModelDepth(options.model, `--model ${options.model}`);
  const data = await loadRunData(options);
  const buildOptions = {
    numClasses: data.train.numClasses,
    inputShape: [data.train.height, data.train.width, data.train.channels] as [number, number, number],
    ...dropoutModelOptions(training.dropout),
    seed: training.seed,
  };
  const model = await asUsageError(`--model ${options.model}`, () => buildModel(options.model, buildOptions));
  // The architecture the name resolved to, recorded in config.json (the model was built from exactly this).
  const modelConfig = resolveModelConfig(options.model, buildOptions);
  seedLayerRandom(training.seed);
  // What the options resolved to on this machine, recorded so eval and predict feed a checkpoint the same inputs.
  training.context = {
    ...training.context,
    resolved: {
      dataDir: data.dataDir,
      normalization: data.normalization,
      classNames: [...data.train.classNames],
      trainImages: data.train.count,
      evalImages: data.evaluation.count,
      evalSplit: data.evaluation.split,
    },
  };
  if (flags.resume) checkSameData(runDir, training.context.resolved as Record<string, unknown>);
  const trainData = trainPipeline(data, options, training);
  const evalData = evalPipeline(data.evaluation, data.normalization, Math.max(training.batchSize, 100));
  mkdirSync(runDir, { recursive: true });

  const params = countParams(model);
  progress.info(
    `${options.model} (${formatCount(params)} params) on ${options.dataset}: ${formatCount(data.train.count)} training / ` +
      `${formatCount(data.evaluation.count)} ${data.evaluation.split} images from ${data.embedded ? 'the embedded sample' : data.dataDir}`,
  );
  for (const note of data.notes) progress.info(`  note: ${note}`);
  const { context: runContext, ...trainingKeys } = training;
  const { resolved: _resolved, ...cliKeys } = runContext as Record<string, unknown>;
  progress.info(`config: ${JSON.stringify({ ...trainingKeys, ...cliKeys })}`);
  progress.info(`lr schedule: ${formatSchedule(training.schedule)}`);
  progress.info(`backend: ${backend.reason}`);
  progress.info(`run dir: ${runDir}`);
  progress.record({ type: 'start', runDir, model: options.model, params, backend: backend.name, trainImages: data.train.count, testImages: data.evaluation.count, config: training });

  // A sweep worker brings its own signal (it hands the run back on Ctrl-C); it reports no signal of its own.
  const interrupt = hooks.signal ? { signal: hooks.signal, dispose: () => undefined, received: () => undefined } : abortOnSignals(io, 'training');
  const onProgress = (event: TrainEvent) => {
    hooks.onProgress?.(event);
    switch (event.type) {
      case 'start':
        if (event.resumedFrom) progress.info(`resuming from ${event.resumedFrom} (epoch ${event.epochsDone}, step ${event.step})`);
        break;
      case 'notice':
        // What resume repaired is worth a line; a fallback to an older checkpoint is worth one even with --quiet.
        if (mode === 'quiet' && event.level === 'warning') writeLine(io.stderr, event.message);
        else progress.info(event.message);
        break;
      case 'step':
        progress.step({ epoch: event.epoch, epochs: event.totalEpochs, step: event.iteration, steps: event.itersPerEpoch, loss: event.loss, acc: event.acc, imagesPerSec: event.imagesPerSec });
        break;
      case 'evaluating':
        progress.evaluating(event.epoch, (training.epochs ?? 0) || event.epoch);
        break;
      case 'epoch':
        progress.epoch({ ...event.metrics, epochs: event.totalEpochs });
        progress.record({ ...event.metrics });
        break;
      case 'checkpoint':
        break;
    }
  };
  let result;
  try {
    result = await train({
      model,
      trainSource: batchSource(trainData, data.train),
      testSource: batchSource(evalData, data.evaluation),
      config: training,
      runDir,
      resume: Boolean(flags.resume),
      lock,
      // Recorded by train() in config.json and environment.json, in that order, once it has checked the run directory.
      modelConfig: modelConfig as unknown as Record<string, unknown>,
      environment: describeEnvironment(backend),
      onProgress,
      signal: interrupt.signal,
      randomState: {
        getState: () => getLayerRandomState(),
        setState: (state) => setLayerRandomState(state as LayerRandomState),
      },
    });
  } catch (error) {
    progress.stop();
    // A run directory that already holds a run, a resume that does not match it, a damaged checkpoint: the user's
    // to sort out (exit 2); a diverged run failed (exit 1). @wrn/training's errors say which by their kind.
    if (error instanceof TrainingError) {
      if (error.kind === 'bad-input') throw new UsageError(error.message, { cause: error });
      throw new RunFailedError(error.message, { cause: error });
    }
    if (isOutOfMemory(error)) throw new RunFailedError(outOfMemoryAdvice(model, training.batchSize, backend.name), { cause: error });
    if ((error as NodeJS.ErrnoException).code === 'ENOSPC') {
      throw new RunFailedError(
        `no space left on the device of the run directory ${runDir} (${errorMessage(error)}); every file there is written by temp + rename, ` +
          `so the last checkpoint is whole: free some space, then resume with: wrn train --resume ${runDir}`,
        { cause: error },
      );
    }
    throw error;
  } finally {
    interrupt.dispose();
    model.dispose();
  }
  progress.stop();

  let reportPath: string | undefined;
  if (options.report && result.final) {
    try {
      reportPath = writeReport(runDir).html;
    } catch (error) {
      progress.info(`could not write the report: ${errorMessage(error)}`);
    }
  }
  if (result.status === 'interrupted') {
    progress.record({ type: 'result', status: 'interrupted', runDir, message: result.message });
    const signal = interrupt.received();
    throw new RunFailedError(`${result.message ?? 'interrupted'}\nresume with: wrn train --resume ${runDir}`, { exitCode: signal ? SIGNAL_EXIT_CODES[signal] : 1 });
  }
  if (result.alreadyFinished) {
    writeLine(io.stderr, (await finishedRunMessage(runDir, training)) ?? `${runDir} has already finished`);
    return result;
  }
  const final = result.final;
  progress.record({
    type: 'result',
    status: 'completed',
    runDir: resolve(runDir),
    epochs: result.epochsCompleted,
    steps: result.step,
    testAccuracy: final ? 1 - final.testTop1Error : null,
    testTop1Error: final?.testTop1Error ?? null,
    testTop5Error: final?.testTop5Error ?? null,
    best: result.best,
    report: reportPath ?? null,
  });
  if (mode !== 'json' && final) {
    writeLine(
      io.stdout,
      `done: test accuracy ${pct(1 - final.testTop1Error)} (top-1 error ${pct(final.testTop1Error)}, top-5 error ${pct(final.testTop5Error)}) ` +
        `after ${result.epochsCompleted} epochs; run dir ${runDir}`,
    );
    if (reportPath) writeLine(io.stdout, `report: ${reportPath}`);
  }
  return result;
}

/** A resumed run must see the same images: the data directory's files may have changed since it started. */
function checkSameData(runDir: string, now: Record<string, unknown>): void {
  const file = runFilePath(runDir, 'config');
  const saved = (readRunFile(runDir, 'config')?.context.resolved ?? {}) as Record<string, unknown>;
  for (const key of ['trainImages', 'evalImages', 'evalSplit', 'classNames', 'normalization'] as const) {
    if (saved[key] === undefined) continue;
    if (JSON.stringify(saved[key]) !== JSON.stringify(now[key])) {
      throw new UsageError(
        `--resume ${runDir}: the data is not what the run was trained on: ${key} is ${JSON.stringify(now[key])} now, ${JSON.stringify(saved[key])} in ${file} ` +
          `(the files in ${String(now.dataDir)} changed); an exact resume needs the same data`,
      );
    }
  }
}
