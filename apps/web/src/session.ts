// One training run in the page: the model, @wrn/training's Trainer, the sample's pipelines, the curves, and the
// loop that steps between frames until paused, finished or the page goes away (the last save is in IndexedDB).
import * as tf from '@tensorflow/tfjs-core';
import { loadLayersModel, type LayersModel } from '@tensorflow/tfjs-layers';
import { buildModel } from '@wrn/architectures';
import { registerCustomLayers } from '@wrn/blocks';
import { createPipeline, normalizeBatch, PAPER_NORMALIZATION, type Batch, type ImageDataset, type Pipeline } from '@wrn/datasets';
import { evaluate, outputKindOf, Trainer, type TrainingConfigInput } from '@wrn/training';
import { modelUrl, saveRun, type EpochPoint, type RunRecord, type RunSettings, type StepPoint } from './run-store';

export const NORMALIZATION = PAPER_NORMALIZATION.cifar10;

export interface SessionUpdate {
  kind: 'step' | 'epoch' | 'evaluating' | 'saved' | 'done' | 'paused';
}

function trainingConfig(settings: RunSettings, itersPerEpoch: number): TrainingConfigInput {
  return {
    epochs: settings.epochs,
    batchSize: settings.batchSize,
    seed: settings.seed,
    // The WRN recipe's SGD (Nesterov 0.9, weight decay 5e-4) with a cosine decay over the run: a short run needs
    // no milestones to tune.
    optimizer: { momentum: 0.9, nesterov: true, weightDecay: 5e-4 },
    schedule: { kind: 'cosine', lr: settings.lr, unit: 'iteration', length: settings.epochs * itersPerEpoch },
  };
}

export class TrainingSession {
  readonly trainer: Trainer;
  readonly trainPipeline: Pipeline;
  readonly testPipeline: Pipeline;
  steps: StepPoint[] = [];
  epochs: EpochPoint[] = [];
  partialEpoch = { lossSum: 0, correct: 0, seen: 0 };
  running = false;
  /** Test-set evaluations run (one per epoch end). */
  evaluations = 0;
  lastSave: RunRecord | null = null;
  /** Save to IndexedDB every this many steps (and on pause and at each epoch's end). */
  saveEvery = 10;
  private iterator: { epoch: number; next(): Promise<IteratorResult<Batch>> } | null = null;
  private stopRequested = false;

  private constructor(
    readonly model: LayersModel,
    readonly settings: RunSettings,
    data: { train: ImageDataset; test: ImageDataset },
  ) {
    this.trainPipeline = createPipeline(data.train, {
      batchSize: settings.batchSize,
      shuffle: true,
      seed: settings.seed,
      normalization: NORMALIZATION,
      augment: settings.augment,
    });
    this.testPipeline = createPipeline(data.test, { batchSize: Math.min(100, data.test.count), normalization: NORMALIZATION });
    this.trainer = new Trainer(model, { config: trainingConfig(settings, this.trainPipeline.batchesPerEpoch), itersPerEpoch: this.trainPipeline.batchesPerEpoch });
  }

  static create(settings: RunSettings, data: { train: ImageDataset; test: ImageDataset }): TrainingSession {
    const model = buildModel(settings.model, { numClasses: 10, seed: settings.seed });
    return new TrainingSession(model, settings, data);
  }

  /** Continues the run saved in IndexedDB: weights from its slot, the Trainer's state and the curves from the record. */
  static async restore(record: RunRecord, data: { train: ImageDataset; test: ImageDataset }): Promise<TrainingSession> {
    registerCustomLayers();
    const model = await loadLayersModel(modelUrl(record.slot));
    const session = new TrainingSession(model, record.settings, data);
    session.trainer.loadState(record.trainer, 'IndexedDB run');
    session.steps = record.steps;
    session.epochs = record.epochs;
    session.partialEpoch = record.partialEpoch;
    session.lastSave = record;
    return session;
  }

  get done(): boolean {
    return this.trainer.position.epoch >= this.settings.epochs;
  }

  get totalSteps(): number {
    return this.settings.epochs * this.trainer.itersPerEpoch;
  }

  /** The next training batch; a fresh epoch (or a reload mid-epoch) replays the epoch's batches up to the position. */
  private async nextBatch(): Promise<Batch | null> {
    const { epoch, iteration } = this.trainer.position;
    if (this.iterator == null || this.iterator.epoch !== epoch) {
      const it = await this.trainPipeline.batches(epoch).iterator();
      this.iterator = { epoch, next: () => it.next() };
      for (let skip = 0; skip < iteration; skip++) {
        const r = await this.iterator.next();
        if (!r.done) tf.dispose([r.value.xs, r.value.ys]);
      }
    }
    const r = await this.iterator.next();
    return r.done ? null : r.value;
  }

  /** Trains until paused or done, calling `onUpdate` after every step. */
  async run(onUpdate: (update: SessionUpdate) => void, options: { maxSteps?: number } = {}): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.stopRequested = false;
    let taken = 0;
    try {
      while (!this.done && !this.stopRequested && (options.maxSteps == null || taken < options.maxSteps)) {
        const batch = await this.nextBatch();
        if (batch == null) {
          this.iterator = null;
          continue;
        }
        const start = performance.now();
        const epochBefore = this.trainer.position.epoch;
        let result;
        try {
          result = await this.trainer.step(batch.xs, batch.ys);
        } finally {
          tf.dispose([batch.xs, batch.ys]);
        }
        taken++;
        const seconds = (performance.now() - start) / 1000;
        const size = batch.xs.shape[0];
        if (!Number.isFinite(result.loss)) throw new Error(`training diverged: loss ${result.loss} at step ${result.globalStep}`);
        this.steps.push({ step: result.globalStep, loss: result.loss, acc: result.acc, imagesPerSec: size / seconds });
        this.partialEpoch.lossSum += result.loss * size;
        this.partialEpoch.correct += result.acc * size;
        this.partialEpoch.seen += size;
        onUpdate({ kind: 'step' });
        if (result.epoch > epochBefore) {
          onUpdate({ kind: 'evaluating' });
          this.evaluations++;
          const test = await this.evaluate();
          const { lossSum, correct, seen } = this.partialEpoch;
          this.epochs.push({ epoch: result.epoch, trainLoss: lossSum / seen, trainAcc: correct / seen, testLoss: test.loss, testAcc: test.acc });
          this.partialEpoch = { lossSum: 0, correct: 0, seen: 0 };
          await this.save();
          onUpdate({ kind: 'epoch' });
        } else if (result.globalStep % this.saveEvery === 0) {
          await this.save();
          onUpdate({ kind: 'saved' });
        }
        // Let the page paint and handle clicks between steps.
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
      await this.save();
      onUpdate({ kind: this.done ? 'done' : 'paused' });
    } finally {
      this.running = false;
    }
  }

  pause(): void {
    this.stopRequested = true;
  }

  async evaluate(): Promise<{ loss: number; acc: number }> {
    const result = await evaluate(this.model, this.testPipeline, { numClasses: 10, outputKind: outputKindOf(this.model) });
    return { loss: result.loss, acc: 1 - result.top1Error };
  }

  async save(): Promise<RunRecord> {
    this.lastSave = await saveRun(this.model, {
      settings: this.settings,
      trainer: await this.trainer.saveState(),
      steps: this.steps,
      epochs: this.epochs,
      partialEpoch: this.partialEpoch,
    });
    return this.lastSave;
  }

  async fixedBatchLoss(pixels: Uint8Array, labels: number[]): Promise<number> {
    // A training-mode call also updates BatchNorm's moving statistics: keep them and put them back.
    const kept = this.model.nonTrainableWeights.map((w) => ({ w, value: tf.clone(w.read()) }));
    try {
      const loss = tf.tidy(() => {
        const x = normalizeBatch(tf.tensor4d(Float32Array.from(pixels), [labels.length, 32, 32, 3]), NORMALIZATION);
        const logits = this.model.apply(x, { training: true }) as tf.Tensor2D;
        return tf.losses.softmaxCrossEntropy(tf.oneHot(tf.tensor1d(labels, 'int32'), 10), logits);
      });
      const value = (await loss.data())[0]!;
      loss.dispose();
      return value;
    } finally {
      for (const { w, value } of kept) {
        w.write(value);
        value.dispose();
      }
    }
  }

  dispose(): void {
    this.trainer.dispose();
    this.model.dispose();
  }
}

/** Softmax probabilities of `model` for uint8 NHWC pixels (0..255), normalised as in training. */
export async function classify(model: LayersModel, pixels: Uint8Array | Uint8ClampedArray, count: number): Promise<Float32Array> {
  const probs = tf.tidy(() => {
    const x = normalizeBatch(tf.tensor4d(Float32Array.from(pixels), [count, 32, 32, 3]), NORMALIZATION);
    // The whole request as one batch: tfjs-layers' predict would otherwise cut it at 32.
    const out = model.predict(x, { batchSize: Math.max(1, count) }) as tf.Tensor2D;
    return outputKindOf(model) === 'logits' ? tf.softmax(out) : out;
  });
  const values = (await probs.data()) as Float32Array;
  probs.dispose();
  return values;
}
