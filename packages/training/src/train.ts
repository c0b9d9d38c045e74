import { promises as fs } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { getLayerRandomState, seedLayerRandom, setLayerRandomState, type LayerRandomState } from '@wrn/blocks';
import { copyCheckpoint, resolveCheckpointDir, restoreModelWeights, saveCheckpoint, CHECKPOINT_FORMAT } from './checkpoint';
import type { CheckpointState } from './checkpoint';
import { parseTrainingConfig, type TrainingConfig, type TrainingConfigInput } from './config';
import { iterateBatches, type BatchSource } from './data';
import { evaluate, type EvaluationResult } from './evaluate';
import { variableGrads } from './gradients';
import { applyForTraining } from './forward';
import { CheckpointError } from './checkpoint-manifest';
import { ResumeMismatchError, RunDirectoryError, TrainingError } from './errors';
import { faultPoint } from './fault-points';
import { exists, writeFileAtomic } from './fs-atomic';
import { acquireRunLock, type RunLock } from './run-lock';
import { loadNewestGoodCheckpoint, reconcileNamedCheckpoints, removeLeftovers, settlePrevious } from './run-repair';
import { meanCrossEntropy, oneHotFloat, outputKindOf } from './loss';
import { learningRateAt, resetsMomentumAt } from './schedule';
import { SgdOptimizer, type SgdParam } from './sgd';
import {
  appendMetricsLine,
  formatRunSummary,
  readRunFile,
  RUN_FILES,
  runCheckpointDir,
  runFilePath,
  writeRunConfig,
  writeRunEnvironment,
  type EpochMetrics,
  type RunEnvironmentInput,
  type StepMetrics,
} from './run-dir';

export type { EpochMetrics, StepMetrics } from './run-dir';

/**
 * The random state dropout and drop-path draw from (@wrn/blocks exports one). It is stored in checkpoints and
 * restored on resume; the state must be JSON-serialisable.
 */
export interface RandomStateSource {
  getState(): unknown;
  setState(state: unknown): void;
}

/** Progress events; epochs are numbered from 1, iterations within an epoch from 1. */
export type TrainEvent =
  | {
      type: 'start';
      totalEpochs: number;
      itersPerEpoch: number;
      /** Epochs already done (resume) and steps already taken. */
      epochsDone: number;
      step: number;
      resumedFrom: string | null;
    }
  | (Omit<StepMetrics, 'type'> & { type: 'step'; itersPerEpoch: number; totalEpochs: number; batchSize: number })
  | { type: 'evaluating'; epoch: number }
  | { type: 'epoch'; metrics: EpochMetrics; totalEpochs: number; improved: boolean }
  | { type: 'checkpoint'; name: string; dir: string; epoch: number; step: number }
  /**
   * Something resume repaired (a kill's leftovers: level 'info') or fell back on (a damaged checkpoint: level
   * 'warning', whose message starts with "warning: "), for the log.
   */
  | { type: 'notice'; level: 'info' | 'warning'; message: string };

export interface TrainArgs {
  model: LayersModel;
  trainSource: BatchSource;
  testSource: BatchSource;
  config: TrainingConfigInput | TrainingConfig;
  /** Run directory; created if missing. */
  runDir: string;
  /** Continue the run in runDir from checkpoints/last (weights, optimiser, position, random state). */
  resume?: boolean;
  onProgress?: (event: TrainEvent) => void;
  /** Aborting finishes the current step, saves checkpoints/last and returns status 'interrupted'. */
  signal?: AbortSignal;
  /**
   * Dropout/drop-path random state to checkpoint and restore. Default: @wrn/blocks' layer random stream, which a
   * fresh run seeds with the config's seed (a resumed run restores it from the checkpoint).
   */
  randomState?: RandomStateSource;
  /**
   * The run directory's lock (acquireRunLock), when the caller took it before writing anything of its own (the
   * CLI does); when absent, train() takes it and releases it on return. `false`: no lock (the caller guarantees a
   * single writer).
   */
  lock?: RunLock | false;
  /** The model's resolved architecture config, recorded in config.json (the caller built the model from it). */
  modelConfig?: Record<string, unknown> | null;
  /** What the run runs on, written as environment.json right after config.json (none written when absent). */
  environment?: RunEnvironmentInput;
}

export interface TrainResult {
  status: 'completed' | 'interrupted';
  runDir: string;
  epochsCompleted: number;
  step: number;
  /** Directory of the newest checkpoint, null if none was written. */
  lastCheckpoint: string | null;
  /** Metrics of the last evaluated epoch (null if none was evaluated). */
  final: EpochMetrics | null;
  best: { epoch: number; testTop1Error: number } | null;
  /** Set when interrupted: where the run stopped and how to continue it. */
  message?: string;
  /** A resume of a run that had already finished: nothing was trained (summary.json says how it ended). */
  alreadyFinished?: boolean;
}

/** A NaN or infinite loss stopped the run; nothing was saved after the last good checkpoint. */
export class TrainingDivergedError extends TrainingError {
  readonly kind = 'run-failed';
  constructor(
    message: string,
    readonly step: number,
    readonly epoch: number,
    readonly iteration: number,
    readonly loss: number,
    readonly lastCheckpoint: string | null,
  ) {
    super(message);
    this.name = 'TrainingDivergedError';
  }
}

interface LayerLike {
  getClassName(): string;
  layers?: LayerLike[];
  trainableWeights: Array<{ id: number }>;
}

/** Ids of BatchNorm gamma/beta, searched through nested models, so weight decay can skip them if asked. */
function batchNormWeightIds(model: LayersModel): Set<number> {
  const ids = new Set<number>();
  const visit = (layer: LayerLike) => {
    // tfjs-layers' BatchNormalization, or @wrn/blocks' TorchBatchNormalization (what @wrn's models use).
    if (['BatchNormalization', 'WrnBatchNormalization'].includes(layer.getClassName())) for (const w of layer.trainableWeights) ids.add(w.id);
    for (const inner of layer.layers ?? []) visit(inner);
  };
  visit(model as unknown as LayerLike);
  return ids;
}

const BLOCKS_RANDOM_STATE: RandomStateSource = {
  getState: getLayerRandomState,
  setState: (state) => setLayerRandomState(state as LayerRandomState),
};

const RESUME_KEYS = ['batchSize', 'seed', 'optimizer', 'schedule', 'dropout'] as const;

/** Refuses a resume whose config changes what the checkpoint's numbers depend on; reads only. */
async function checkResumeConfig(runDir: string, config: TrainingConfig): Promise<void> {
  const saved = readRunFile(runDir, 'config');
  if (saved == null) return;
  for (const key of RESUME_KEYS) {
    const before = JSON.stringify(saved[key]);
    const now = JSON.stringify(config[key]);
    if (before !== now) {
      throw new ResumeMismatchError(`resume: ${key} is ${now}, but the run in ${runDir} was started with ${before} (${RUN_FILES.config}); an exact resume needs the same value`, key);
    }
  }
}

/** Keeps the metrics lines up to the checkpoint's position, so a resumed run appends without duplicates. */
async function truncateMetrics(file: string, state: CheckpointState): Promise<void> {
  if (!(await exists(file))) return;
  const kept: string[] = [];
  for (const line of (await fs.readFile(file, 'utf8')).split('\n')) {
    if (!line.trim()) continue;
    let record: { type?: string; epoch?: number; step?: number };
    try {
      record = JSON.parse(line);
    } catch {
      continue; // a line torn by a kill mid-append
    }
    if (record.type === 'epoch' && (record.epoch ?? Infinity) > state.epoch) continue;
    if (record.type === 'step' && (record.step ?? Infinity) > state.globalStep) continue;
    kept.push(line);
  }
  await writeFileAtomic(file, kept.length ? `${kept.join('\n')}\n` : '');
}

function describeCheckpoint(dir: string | null, state: { epoch: number; globalStep: number } | null): string {
  return dir && state ? `${dir} (epoch ${state.epoch}, step ${state.globalStep})` : 'none (no checkpoint was written yet)';
}

/**
 * Trains `model` with SGD under the config's schedule, evaluating on `testSource` after every epoch, and writes
 * the run directory: config.json (first), metrics.jsonl, checkpoints/{last,best,epoch-K}/, summary.json.
 */
export async function train(args: TrainArgs): Promise<TrainResult> {
  const { model, trainSource, testSource, runDir, onProgress, signal } = args;
  const randomState: RandomStateSource = args.randomState ?? BLOCKS_RANDOM_STATE;
  const config = parseTrainingConfig(args.config);
  const resume = args.resume ?? false;
  const lastDir = runCheckpointDir(runDir, 'last');
  const checkpointsDir = path.dirname(lastDir);
  const metricsFile = runFilePath(runDir, 'metrics');

  if (!Number.isInteger(trainSource.size) || trainSource.size <= 0) {
    throw new Error(`train: trainSource.size must be a positive integer (examples per epoch), got ${trainSource.size}`);
  }
  const outputShape = model.outputs[0]?.shape;
  const numClasses = trainSource.numClasses ?? testSource.numClasses ?? outputShape?.[outputShape.length - 1] ?? null;
  if (numClasses == null || !Number.isInteger(numClasses) || numClasses < 2) {
    throw new Error(`train: cannot tell the number of classes (source numClasses or model output shape [${outputShape}])`);
  }
  const outputKind = outputKindOf(model);
  const itersPerEpoch = Math.ceil(trainSource.size / config.batchSize);
  const totalEpochs = config.epochs ?? Math.ceil(config.maxSteps! / itersPerEpoch);

  await fs.mkdir(runDir, { recursive: true });
  const notice = (message: string, level: 'info' | 'warning' = 'info') => onProgress?.({ type: 'notice', level, message });
  // One writer per run directory: taken before anything in it is read or written, released on every way out.
  const ownLock = args.lock === undefined ? await acquireRunLock(runDir, { command: `train() in ${runDir}` }) : null;

  const bnIds = config.optimizer.decayBatchNorm ? new Set<number>() : batchNormWeightIds(model);
  const params: SgdParam[] = model.trainableWeights.map((w) => ({
    variable: w.read() as tf.Variable,
    name: w.originalName,
    weightDecay: !bnIds.has(w.id),
  }));
  const variables = params.map((p) => p.variable);
  const optimizer = new SgdOptimizer(params, config.optimizer);

  let epoch = 0; // epochs completed
  let skipIterations = 0;
  let globalStep = 0;
  let best: CheckpointState['best'] = null;
  let partial: CheckpointState['partialEpoch'] = null;
  let lastCheckpoint: { dir: string; state: CheckpointState } | null = null;
  let lr = learningRateAt(config.schedule, { epoch: 0, iteration: 0, itersPerEpoch });
  let final: EpochMetrics | null = null;
  // On webgpu each step's loss and accuracy are read one step late: the read of step k starts as soon as it is
  // queued and is awaited after step k+1 is queued, so the GPU does not idle while the CPU waits for two numbers.
  // Metrics and events are the same; an abort lands after the queued step. Elsewhere reads are immediate.
  const readLag = tf.getBackend() === 'webgpu' ? 1 : 0;
  // config.json first (everything the run depends on), then environment.json: the order readers may rely on.
  // A resume keeps the commit the run was started from (config.json describes the run, not its latest process).
  let startedAtCommit: string | null | undefined;
  const writeRunFiles = async () => {
    await writeRunConfig(runDir, config, { modelConfig: args.modelConfig ?? null, ...(startedAtCommit !== undefined ? { gitCommit: startedAtCommit } : {}) });
    if (args.environment) await writeRunEnvironment(runDir, args.environment);
  };
  const queued: { stats: tf.Tensor1D; values: Promise<tf.TypedArray>; batchSize: number; lr: number; step: number; iteration: number }[] = [];

  try {
    // Holding the lock, anything half-written in the directory is a dead writer's: remove it before reading.
    for (const dir of [runDir, checkpointsDir]) for (const name of await removeLeftovers(dir)) notice(`removed ${path.join(dir, name)} (left by an interrupted write)`);
    const existing = await resolveCheckpointDir(lastDir);
    if (!resume && existing) {
      throw new RunDirectoryError(`train: ${runDir} already holds a run (${existing}); resume it or choose another run directory`, runDir);
    }
    if (resume && !existing) {
      // Nothing was committed before the run stopped: resuming it exactly is starting it again.
      if (!(await exists(runFilePath(runDir, 'config')))) throw new RunDirectoryError(`train: cannot resume: no complete checkpoint in ${lastDir}`, runDir);
      notice(`no checkpoint was written in ${runDir} before the run stopped: starting it from the beginning`);
    }
    if (resume && existing) {
      // Everything is read and checked before anything is written: a refused resume leaves the run as it was.
      await checkResumeConfig(runDir, config);
      startedAtCommit = readRunFile(runDir, 'config')?.gitCommit;
      for (const note of await settlePrevious(checkpointsDir)) notice(note);
      const { loaded, warnings } = await loadNewestGoodCheckpoint(checkpointsDir);
      for (const warning of warnings) notice(`warning: ${warning}`, 'warning');
      if (loaded.state.itersPerEpoch !== itersPerEpoch) {
        throw new ResumeMismatchError(`resume: ${loaded.dir} was written with ${loaded.state.itersPerEpoch} iterations per epoch, this run has ${itersPerEpoch} (size ${trainSource.size}, batch ${config.batchSize})`, 'itersPerEpoch');
      }
      restoreModelWeights(model, loaded);
      try {
        optimizer.loadState(loaded.optimizer, `${loaded.dir}/optimizer.json`);
      } catch (error) {
        throw new CheckpointError((error as Error).message, `${loaded.dir}/optimizer.json`);
      }
      if (loaded.state.randomState != null) randomState.setState(loaded.state.randomState);
      ({ epoch, globalStep, best } = loaded.state);
      skipIterations = loaded.state.iteration;
      partial = loaded.state.partialEpoch;
      lr = loaded.state.lr;
      lastCheckpoint = { dir: loaded.dir, state: loaded.state };
      for (const note of await reconcileNamedCheckpoints(checkpointsDir, loaded, config.checkpointEvery)) notice(note);
      const finished = epoch >= totalEpochs || (config.maxSteps != null && globalStep >= config.maxSteps);
      if (finished) {
        const summaryFile = runFilePath(runDir, 'summary');
        if (!(await exists(summaryFile))) {
          const committed = path.join(loaded.dir, RUN_FILES.summary);
          if (!(await exists(committed))) throw new CheckpointError(`${loaded.dir} ends the run but holds no ${RUN_FILES.summary} to restore ${summaryFile} from`, committed);
          await writeFileAtomic(summaryFile, await fs.readFile(committed));
          notice(`${summaryFile} was missing (a kill after the final checkpoint): restored it from ${committed}`);
        }
        return { status: 'completed', runDir, epochsCompleted: epoch, step: globalStep, lastCheckpoint: loaded.dir, final: null, best, alreadyFinished: true };
      }
      await writeRunFiles();
      await truncateMetrics(metricsFile, loaded.state);
    } else {
      await writeRunFiles();
      if (!args.randomState) seedLayerRandom(config.seed);
      await writeFileAtomic(metricsFile, '');
    }
    onProgress?.({ type: 'start', totalEpochs, itersPerEpoch, epochsDone: epoch, step: globalStep, resumedFrom: lastCheckpoint?.dir ?? null });

    const checkpointState = (reason: CheckpointState['reason'], iteration: number): CheckpointState => ({
      format: CHECKPOINT_FORMAT,
      epoch,
      iteration,
      globalStep,
      itersPerEpoch,
      lr,
      seed: config.seed,
      randomState: randomState.getState() ?? null,
      best,
      partialEpoch: reason === 'interrupted' ? partial : null,
      reason,
      savedAt: new Date().toISOString(),
    });
    const writeLast = async (state: CheckpointState, extraFiles?: Record<string, string>) => {
      await saveCheckpoint(lastDir, { model, optimizer, state, ...(extraFiles ? { extraFiles } : {}) });
      lastCheckpoint = { dir: lastDir, state };
      onProgress?.({ type: 'checkpoint', name: 'last', dir: lastDir, epoch: state.epoch, step: state.globalStep });
    };
    const interrupted = (where: string): TrainResult => ({
      status: 'interrupted',
      runDir,
      epochsCompleted: epoch,
      step: globalStep,
      lastCheckpoint: lastCheckpoint?.dir ?? null,
      final,
      best,
      message: lastCheckpoint
        ? `interrupted ${where}; checkpoint saved in ${describeCheckpoint(lastCheckpoint.dir, lastCheckpoint.state)}; resume the run in ${runDir} to continue from it`
        : `interrupted ${where}; no checkpoint was written, so there is nothing to resume in ${runDir}`,
    });

    const runStep = (xs: tf.Tensor4D, ys: tf.Tensor1D, stepLr: number): tf.Tensor1D => {
      let stats: tf.Tensor1D | null = null;
      const { value, grads } = variableGrads(() => {
        const labels = ys.dtype === 'int32' ? ys : tf.cast(ys, 'int32');
        const outputs = applyForTraining(model, xs);
        let loss = meanCrossEntropy(outputs, oneHotFloat(labels, numClasses), outputKind);
        for (const penalty of model.calculateLosses()) loss = tf.add(loss, penalty);
        const correct = tf.sum(tf.cast(tf.equal(tf.argMax(outputs, -1), labels), 'float32'));
        stats = tf.keep(tf.stack([loss, correct]) as tf.Tensor1D);
        return loss;
      }, variables);
      try {
        optimizer.step(variables.map((v) => grads[v.name] ?? null), stepLr);
      } finally {
        tf.dispose(value);
        tf.dispose(grads);
      }
      return stats!;
    };

    if (signal?.aborted) return interrupted(`before epoch ${epoch + 1}`);

    while (epoch < totalEpochs && (config.maxSteps == null || globalStep < config.maxSteps)) {
      const epochNumber = epoch + 1;
      let iteration = 0;
      let lossSum = partial?.lossSum ?? 0;
      let correct = partial?.correct ?? 0;
      let seen = partial?.seen ?? 0;
      let trainSeconds = partial?.seconds ?? 0;
      partial = null;
      let last = performance.now();
      let stopped = false;
      const settleOldest = async (): Promise<void> => {
        const { stats, values, batchSize, lr: stepLr, step, iteration: stepIteration } = queued[0]!;
        let stepStats: tf.TypedArray;
        try {
          stepStats = await values;
        } finally {
          stats.dispose();
          queued.shift();
        }
        const loss = stepStats[0]!;
        if (!Number.isFinite(loss)) {
          throw new TrainingDivergedError(
            `training diverged: loss is ${loss} at step ${step} (epoch ${epochNumber}, iteration ${stepIteration} of ${itersPerEpoch}); ` +
              `last good checkpoint: ${describeCheckpoint(lastCheckpoint?.dir ?? null, lastCheckpoint?.state ?? null)}`,
            step,
            epochNumber,
            stepIteration,
            loss,
            lastCheckpoint?.dir ?? null,
          );
        }
        const now = performance.now();
        const seconds = (now - last) / 1000;
        last = now;
        trainSeconds += seconds;
        lossSum += loss * batchSize;
        correct += stepStats[1]!;
        seen += batchSize;
        const stepMetrics: StepMetrics = {
          type: 'step',
          epoch: epochNumber,
          iteration: stepIteration,
          step,
          lr: stepLr,
          loss,
          acc: stepStats[1]! / batchSize,
          imagesPerSec: batchSize / Math.max(seconds, 1e-9),
        };
        if (config.logEverySteps > 0 && step % config.logEverySteps === 0) await appendMetricsLine(runDir, stepMetrics);
        onProgress?.({ ...stepMetrics, type: 'step', itersPerEpoch, totalEpochs, batchSize });
      };
      for await (const { xs, ys } of iterateBatches(trainSource, epoch, 'training source')) {
        if (iteration < skipIterations) {
          // Resuming mid-epoch: the source replays the epoch's batches; the first ones were already trained on.
          tf.dispose([xs, ys]);
          iteration++;
          last = performance.now();
          continue;
        }
        lr = learningRateAt(config.schedule, { epoch, iteration, itersPerEpoch });
        if (resetsMomentumAt(config.schedule, { epoch, iteration, itersPerEpoch })) optimizer.resetMomentum();
        const batchSize = xs.shape[0];
        let stats: tf.Tensor1D;
        try {
          stats = runStep(xs, ys, lr);
        } finally {
          tf.dispose([xs, ys]);
        }
        globalStep++;
        iteration++;
        const values = stats.data();
        values.catch(() => undefined); // settled (and its error raised) by settleOldest; not unhandled if a later step throws first
        queued.push({ stats, values, batchSize, lr, step: globalStep, iteration });
        while (queued.length > readLag) await settleOldest();
        if (config.maxSteps != null && globalStep >= config.maxSteps) break;
        if (signal?.aborted) {
          stopped = true;
          break;
        }
      }
      while (queued.length > 0) await settleOldest();
      skipIterations = 0;
      if (stopped) {
        partial = { lossSum, correct, seen, seconds: trainSeconds };
        await writeLast(checkpointState('interrupted', iteration));
        return interrupted(`at step ${globalStep} (epoch ${epochNumber}, iteration ${iteration} of ${itersPerEpoch})`);
      }
      if (seen === 0) throw new Error(`training source yielded no batches for epoch ${epoch}`);

      onProgress?.({ type: 'evaluating', epoch: epochNumber });
      const evalStart = performance.now();
      const evaluation: EvaluationResult = await evaluate(model, testSource, { epoch, numClasses, outputKind });
      const metrics: EpochMetrics = {
        type: 'epoch',
        epoch: epochNumber,
        step: globalStep,
        lr,
        trainLoss: lossSum / seen,
        trainAcc: correct / seen,
        testLoss: evaluation.loss,
        testTop1Error: evaluation.top1Error,
        testTop5Error: evaluation.top5Error,
        testPerClassAccuracy: evaluation.perClassAccuracy.map((a) => (Number.isFinite(a) ? a : null)),
        imagesPerSec: seen / Math.max(trainSeconds, 1e-9),
        seconds: trainSeconds,
        evalSeconds: (performance.now() - evalStart) / 1000,
      };
      final = metrics;
      // A model whose test loss or weights are not finite has diverged: a failed run, never a checkpoint or best.
      if (!Number.isFinite(evaluation.loss) || !(await weightsFinite(model))) {
        const what = Number.isFinite(evaluation.loss) ? 'the weights are not finite' : `the test loss is ${evaluation.loss}`;
        throw new TrainingDivergedError(
          `training diverged: ${what} after epoch ${epochNumber} (step ${globalStep}); nothing of this epoch was saved; ` +
            `last good checkpoint: ${describeCheckpoint(lastCheckpoint?.dir ?? null, lastCheckpoint?.state ?? null)}`,
          globalStep,
          epochNumber,
          iteration,
          evaluation.loss,
          lastCheckpoint?.dir ?? null,
        );
      }
      await appendMetricsLine(runDir, metrics);
      await faultPoint('run:metrics-appended');
      const improved = best == null || metrics.testTop1Error < best.testTop1Error;
      if (improved) best = { epoch: epochNumber, testTop1Error: metrics.testTop1Error };
      epoch++;
      const done = epoch >= totalEpochs || (config.maxSteps != null && globalStep >= config.maxSteps);
      // The final checkpoint carries the run's summary, so a kill before summary.json's own write is repaired from it.
      const summaryText = done
        ? formatRunSummary({
            status: 'completed',
            epochs: epoch,
            steps: globalStep,
            final: {
              trainLoss: metrics.trainLoss,
              trainAcc: metrics.trainAcc,
              testLoss: metrics.testLoss,
              testTop1Error: metrics.testTop1Error,
              testTop5Error: metrics.testTop5Error,
              testAccuracy: 1 - metrics.testTop1Error,
            },
            best,
            testExamples: evaluation.examples,
            classNames: testSource.classNames ?? trainSource.classNames ?? null,
            perClassAccuracy: metrics.testPerClassAccuracy,
            confusionMatrix: evaluation.confusionMatrix,
            imagesPerSec: metrics.imagesPerSec,
          })
        : null;
      await writeLast(checkpointState('epoch', 0), summaryText ? { [RUN_FILES.summary]: summaryText } : undefined);
      if (improved) {
        await copyCheckpoint(lastDir, runCheckpointDir(runDir, 'best'));
        onProgress?.({ type: 'checkpoint', name: 'best', dir: runCheckpointDir(runDir, 'best'), epoch, step: globalStep });
      }
      if (config.checkpointEvery > 0 && epoch % config.checkpointEvery === 0) {
        const dir = runCheckpointDir(runDir, `epoch-${epoch}`);
        await copyCheckpoint(lastDir, dir);
        onProgress?.({ type: 'checkpoint', name: `epoch-${epoch}`, dir, epoch, step: globalStep });
      }
      onProgress?.({ type: 'epoch', metrics, totalEpochs, improved });
      if (summaryText) {
        await faultPoint('run:before-summary');
        await writeFileAtomic(runFilePath(runDir, 'summary'), summaryText);
        break;
      }
      if (signal?.aborted) return interrupted(`after epoch ${epoch}`);
    }
    return { status: 'completed', runDir, epochsCompleted: epoch, step: globalStep, lastCheckpoint: lastCheckpoint?.dir ?? null, final, best };
  } finally {
    tf.dispose(queued.map((q) => q.stats));
    optimizer.dispose();
    await ownLock?.release();
  }
}

/** Whether every weight of `model` is finite (one reduction per weight, read back once). */
async function weightsFinite(model: LayersModel): Promise<boolean> {
  if (model.weights.length === 0) return true;
  // Pairwise adds rather than one tf.addN: webgpu's AddN binds every input as a storage buffer, and a model has more
  // weights than a shader stage may bind (SwiftShader and many GPUs allow 8), which fails validation and reads 0.
  const total = tf.tidy(() => model.weights.map((w) => tf.sum(tf.cast(w.read(), 'float32'))).reduce((sum, next) => tf.add(sum, next)));
  try {
    return Number.isFinite((await total.data())[0]);
  } finally {
    total.dispose();
  }
}
