import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { parseTrainingConfig, type TrainingConfig, type TrainingConfigInput } from './config';
import { variableGrads } from './gradients';
import { applyForTraining } from './forward';
import { meanCrossEntropy, oneHotFloat, outputKindOf, type OutputKind } from './loss';
import { learningRateAt } from './schedule';
import { SgdOptimizer, type SerializedSgdState, type SgdParam } from './sgd';

/** Where a {@link Trainer} stands: epochs completed, steps taken in the current epoch, steps in all. */
export interface TrainerPosition {
  epoch: number;
  iteration: number;
  globalStep: number;
}

/** What a {@link Trainer} needs to continue exactly, besides the model's weights: the optimiser and the position. */
export interface TrainerState {
  format: 'wrn-trainer/1';
  position: TrainerPosition;
  itersPerEpoch: number;
  optimizer: SerializedSgdState;
}

export interface TrainerOptions {
  /** The training config (optimizer, schedule); validated and defaulted like train()'s. */
  config: TrainingConfigInput | TrainingConfig;
  /** Steps per epoch, which the schedule's epoch clock counts in. */
  itersPerEpoch: number;
  /** Classes of the labels; default: the model's output width. */
  numClasses?: number;
}

export interface TrainerStepResult extends TrainerPosition {
  /** Mean cross-entropy of the batch, before the update. */
  loss: number;
  /** Fraction of the batch the model classified right, before the update. */
  acc: number;
  /** Learning rate the step used. */
  lr: number;
}

/**
 * The model's trainable weights as SGD parameters, with weight decay off for BatchNorm's gamma and beta unless
 * `decayBatchNorm` (Torch decays every parameter).
 */
export function trainableParams(model: LayersModel, decayBatchNorm: boolean): SgdParam[] {
  const batchNormIds = new Set<number>();
  type LayerLike = { getClassName(): string; layers?: LayerLike[]; trainableWeights: Array<{ id: number }> };
  const visit = (layer: LayerLike) => {
    if (layer.getClassName() === 'BatchNormalization') for (const w of layer.trainableWeights) batchNormIds.add(w.id);
    for (const inner of layer.layers ?? []) visit(inner);
  };
  if (!decayBatchNorm) visit(model as unknown as LayerLike);
  return model.trainableWeights.map((w) => ({ variable: w.read() as tf.Variable, name: w.originalName, weightDecay: !batchNormIds.has(w.id) }));
}

/**
 * One optimiser step at a time, for callers that own the loop: a page that trains between animation frames, pauses
 * and keeps its state in IndexedDB. It computes what train() computes per step (SGD with Torch semantics under the
 * config's schedule, per-iteration learning rate) but touches no file system, so it bundles for browsers; train()
 * (in @wrn/training/node) adds the run directory, evaluation per epoch and checkpoints on disk.
 */
export class Trainer {
  readonly config: TrainingConfig;
  readonly itersPerEpoch: number;
  private readonly model: LayersModel;
  private readonly optimizer: SgdOptimizer;
  private readonly variables: tf.Variable[];
  private readonly numClasses: number;
  private readonly outputKind: OutputKind;
  private current: TrainerPosition = { epoch: 0, iteration: 0, globalStep: 0 };

  constructor(model: LayersModel, options: TrainerOptions) {
    this.config = parseTrainingConfig(options.config);
    if (!Number.isInteger(options.itersPerEpoch) || options.itersPerEpoch <= 0) {
      throw new Error(`Trainer: itersPerEpoch must be a positive integer, got ${options.itersPerEpoch}`);
    }
    this.itersPerEpoch = options.itersPerEpoch;
    const outputShape = model.outputs[0]?.shape;
    const numClasses = options.numClasses ?? outputShape?.[outputShape.length - 1] ?? null;
    if (numClasses == null || !Number.isInteger(numClasses) || numClasses < 2) {
      throw new Error(`Trainer: cannot tell the number of classes (numClasses option or model output shape [${outputShape}])`);
    }
    this.numClasses = numClasses;
    this.model = model;
    this.outputKind = outputKindOf(model);
    const params = trainableParams(model, this.config.optimizer.decayBatchNorm);
    this.variables = params.map((p) => p.variable);
    this.optimizer = new SgdOptimizer(params, this.config.optimizer);
  }

  get position(): TrainerPosition {
    return { ...this.current };
  }

  /** The learning rate the next step will use. */
  get nextLearningRate(): number {
    const { epoch, iteration } = this.current;
    return learningRateAt(this.config.schedule, { epoch, iteration, itersPerEpoch: this.itersPerEpoch });
  }

  /** Trains on one batch (NHWC float32 images, int32 labels; both left to the caller to dispose). */
  async step(xs: tf.Tensor4D, ys: tf.Tensor1D): Promise<TrainerStepResult> {
    const lr = this.nextLearningRate;
    let stats: tf.Tensor1D | null = null;
    const { value, grads } = variableGrads(() => {
      const labels = ys.dtype === 'int32' ? ys : tf.cast(ys, 'int32');
      const outputs = applyForTraining(this.model, xs);
      let loss = meanCrossEntropy(outputs, oneHotFloat(labels, this.numClasses), this.outputKind);
      for (const penalty of this.model.calculateLosses()) loss = tf.add(loss, penalty);
      const correct = tf.sum(tf.cast(tf.equal(tf.argMax(outputs, -1), labels), 'float32'));
      stats = tf.keep(tf.stack([loss, correct]) as tf.Tensor1D);
      return loss;
    }, this.variables);
    try {
      this.optimizer.step(this.variables.map((v) => grads[v.name] ?? null), lr);
    } finally {
      tf.dispose(value);
      tf.dispose(grads);
    }
    const statsTensor = stats as tf.Tensor1D | null;
    const [loss, correct] = Array.from(await statsTensor!.data());
    statsTensor!.dispose();
    const next = { ...this.current, iteration: this.current.iteration + 1, globalStep: this.current.globalStep + 1 };
    if (next.iteration === this.itersPerEpoch) Object.assign(next, { epoch: next.epoch + 1, iteration: 0 });
    this.current = next;
    return { ...next, loss: loss!, acc: correct! / xs.shape[0], lr };
  }

  /** The optimiser state and position, to store beside the model's weights. */
  async saveState(): Promise<TrainerState> {
    return { format: 'wrn-trainer/1', position: this.position, itersPerEpoch: this.itersPerEpoch, optimizer: await this.optimizer.saveState() };
  }

  /** Restores a state from {@link saveState} (the model's weights are restored by the caller, e.g. loadLayersModel). */
  loadState(state: TrainerState, where = 'trainer state'): void {
    if (state?.format !== 'wrn-trainer/1') throw new Error(`${where}: format is ${JSON.stringify(state?.format)}, expected "wrn-trainer/1"`);
    if (state.itersPerEpoch !== this.itersPerEpoch) {
      throw new Error(`${where}: itersPerEpoch is ${state.itersPerEpoch}, this trainer has ${this.itersPerEpoch}`);
    }
    const { epoch, iteration, globalStep } = state.position;
    for (const [key, value] of Object.entries({ epoch, iteration, globalStep })) {
      if (!Number.isInteger(value) || value < 0) throw new Error(`${where}: position.${key} must be an integer >= 0, got ${value}`);
    }
    this.optimizer.loadState(state.optimizer, `${where}: optimizer`);
    this.current = { epoch, iteration, globalStep };
  }

  dispose(): void {
    this.optimizer.dispose();
  }
}
