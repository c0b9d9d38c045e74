import { batchNorm, engine, getBackend, getKernel, moments, mul, relu, scalar, serialization, sub, tidy, type Tensor, type Tensor1D } from '@tensorflow/tfjs-core';
import { initializers, layers, type LayerVariable, type Shape } from '@tensorflow/tfjs-layers';
import { singleShape, singleTensor, keepDtype, type LayerArgs } from './common.js';

/**
 * A kernel a backend may register to run BatchNorm in training mode at once: inputs x [..., C] (float32), scale
 * and offset [C]; attrs {@link BatchNormTrainingAttrs}; outputs y (x's shape), the batch's mean and its BIASED
 * variance [C], with a gradient for x, scale and offset (mean and variance being functions of x). Where the active
 * backend has it, {@link TorchBatchNormalization} calls it instead of tf.moments + tf.batchNorm (@wrn/backend
 * registers it for wasm on @wrn/native).
 */
export const BATCH_NORM_TRAINING_KERNEL = 'WrnBatchNormTraining';

/** The attributes of {@link BATCH_NORM_TRAINING_KERNEL}. */
export interface BatchNormTrainingAttrs {
  /** Added to the variance before the square root. */
  varianceEpsilon: number;
}

/**
 * A kernel a backend may register to run BatchNorm with its moving statistics and the ReLU after it in one pass:
 * inputs x [..., C] (float32), mean, variance, offset, scale [C]; attrs {@link BatchNormTrainingAttrs}; output
 * max(0, BatchNorm(x)). It has no gradient: {@link TorchBatchNormalization} with `activation: 'relu'` calls it in
 * inference only, outside any gradient computation, else tf.batchNorm + tf.relu (@wrn/backend registers it for wasm
 * on @wrn/native).
 */
export const BATCH_NORM_RELU_INFERENCE_KERNEL = 'WrnBatchNormReluInference';

/** What {@link TorchBatchNormalization} applies to its output: nothing ('linear') or ReLU. */
export type BatchNormActivation = 'linear' | 'relu';

export interface TorchBatchNormalizationArgs extends LayerArgs {
  /**
   * Weight of the old moving statistics in Keras' convention: moving = momentum * moving + (1 - momentum) * batch.
   * Default 0.9, Torch's momentum 0.1.
   */
  momentum?: number;
  /** Added to the variance before the square root. Default 1e-5 (Torch's). */
  epsilon?: number;
  /** Initial gamma: 'ones' (default) or 'zeros' (a residual branch that starts as nothing). */
  gammaInitializer?: 'ones' | 'zeros';
  /**
   * 'relu': the layer is BatchNorm then ReLU (a conv-BN-ReLU block's last two layers in one, so that inference makes
   * one pass over the activation instead of two where the backend has {@link BATCH_NORM_RELU_INFERENCE_KERNEL}).
   * Default 'linear' (BatchNorm alone; configs saved before the option load as that).
   */
  activation?: BatchNormActivation;
}

/**
 * BatchNorm over the channels of an NHWC tensor, as Torch computes it (nn.SpatialBatchNormalization,
 * torch.nn.BatchNorm2d): in training the batch is normalised with its biased variance, and the moving variance
 * is updated with the UNBIASED one, var * n / (n - 1) with n = N*H*W values per channel. tfjs-layers'
 * BatchNormalization updates it with the biased variance, so after training its moving variance is smaller by
 * n/(n-1) (1/127 for a batch of 128 at 1x1, 1/8191 at 8x8) and the inference function differs from the papers'.
 * Same weights as tfjs-layers' layer (gamma, beta, moving_mean, moving_variance) and the same ops
 * (tf.moments, tf.batchNorm), so every backend's BatchNorm kernels and gradients apply unchanged; in training, a
 * backend that registers {@link BATCH_NORM_TRAINING_KERNEL} runs the batch statistics and normalisation as one.
 */
export class TorchBatchNormalization extends layers.Layer {
  static className = 'WrnBatchNormalization';
  readonly momentum: number;
  readonly epsilon: number;
  readonly gammaInitializer: 'ones' | 'zeros';
  readonly activation: BatchNormActivation;
  private gamma: LayerVariable | null = null;
  private beta: LayerVariable | null = null;
  private movingMean: LayerVariable | null = null;
  private movingVariance: LayerVariable | null = null;

  constructor(args: TorchBatchNormalizationArgs = {}) {
    super(args);
    keepDtype(this, args);
    const where = `TorchBatchNormalization${args.name ? ` ${args.name}` : ''}`;
    this.momentum = args.momentum ?? 0.9;
    this.epsilon = args.epsilon ?? 1e-5;
    if (!(this.momentum >= 0 && this.momentum <= 1)) throw new RangeError(`${where}: momentum must be in [0, 1], got ${String(this.momentum)}`);
    if (!(this.epsilon > 0)) throw new RangeError(`${where}: epsilon must be > 0, got ${String(this.epsilon)}`);
    this.gammaInitializer = args.gammaInitializer ?? 'ones';
    if (this.gammaInitializer !== 'ones' && this.gammaInitializer !== 'zeros') {
      throw new RangeError(`${where}: gammaInitializer must be 'ones' or 'zeros', got '${String(this.gammaInitializer)}'`);
    }
    this.activation = args.activation ?? 'linear';
    if (this.activation !== 'linear' && this.activation !== 'relu') {
      throw new RangeError(`${where}: activation must be 'linear' or 'relu', got '${String(this.activation)}'`);
    }
    this.supportsMasking = true;
  }

  override build(inputShape: Shape | Shape[]): void {
    const shape = singleShape(inputShape, 'TorchBatchNormalization');
    const channels = shape[shape.length - 1];
    if (channels == null) throw new Error(`TorchBatchNormalization ${this.name}: the channel axis of [${shape.join(', ')}] must be known`);
    const ones = initializers.ones();
    const zeros = initializers.zeros();
    this.gamma = this.addWeight('gamma', [channels], 'float32', this.gammaInitializer === 'ones' ? ones : zeros, undefined, true);
    this.beta = this.addWeight('beta', [channels], 'float32', zeros, undefined, true);
    this.movingMean = this.addWeight('moving_mean', [channels], 'float32', zeros, undefined, false);
    this.movingVariance = this.addWeight('moving_variance', [channels], 'float32', ones, undefined, false);
    this.built = true;
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape | Shape[] {
    return inputShape;
  }

  override call(inputs: Tensor | Tensor[], kwargs: Record<string, unknown>): Tensor {
    const x = singleTensor(inputs, 'TorchBatchNormalization');
    if (this.gamma === null || this.beta === null || this.movingMean === null || this.movingVariance === null) {
      throw new Error(`TorchBatchNormalization ${this.name} was called before it was built`);
    }
    const gamma = this.gamma.read() as Tensor1D;
    const beta = this.beta.read() as Tensor1D;
    const withRelu = this.activation === 'relu';
    if (kwargs['training'] !== true) {
      const mean = this.movingMean.read() as Tensor1D;
      const variance = this.movingVariance.read() as Tensor1D;
      // The fused kernel has no gradient: under tf.grad & co (gradientDepth > 0) the two ops run instead.
      if (withRelu && x.dtype === 'float32' && engine().state.gradientDepth === 0 && getKernel(BATCH_NORM_RELU_INFERENCE_KERNEL, getBackend()) != null) {
        const attrs: BatchNormTrainingAttrs = { varianceEpsilon: this.epsilon };
        return engine().runKernel(BATCH_NORM_RELU_INFERENCE_KERNEL, { x, mean, variance, offset: beta, scale: gamma }, attrs as unknown as Record<string, number>) as Tensor;
      }
      if (!withRelu) return batchNorm(x, mean, variance, beta, gamma, this.epsilon);
      return tidy(() => relu(batchNorm(x, mean, variance, beta, gamma, this.epsilon)));
    }
    const axes = x.shape.slice(0, -1).map((_, i) => i);
    const count = x.shape.slice(0, -1).reduce((a, b) => a * b, 1);
    return tidy(() => {
      const { normed, mean, variance } = this.normaliseBatch(x, gamma, beta, axes);
      // Torch's running_var update uses the unbiased batch variance (a single value per channel: left as is).
      const unbiased = count > 1 ? mul(variance, scalar(count / (count - 1))) : variance;
      this.updateMovingAverage(this.movingMean as LayerVariable, mean);
      this.updateMovingAverage(this.movingVariance as LayerVariable, unbiased);
      return withRelu ? relu(normed) : normed;
    });
  }

  // The batch's mean and biased variance and x normalised with them: one kernel where the backend has one,
  // else tf.moments + tf.batchNorm.
  private normaliseBatch(x: Tensor, gamma: Tensor1D, beta: Tensor1D, axes: number[]): { normed: Tensor; mean: Tensor; variance: Tensor } {
    if (x.dtype === 'float32' && x.size > 0 && getKernel(BATCH_NORM_TRAINING_KERNEL, getBackend()) != null) {
      const attrs: BatchNormTrainingAttrs = { varianceEpsilon: this.epsilon };
      const [normed, mean, variance] = engine().runKernel(BATCH_NORM_TRAINING_KERNEL, { x, scale: gamma, offset: beta }, attrs as unknown as Record<string, number>) as Tensor[];
      return { normed: normed!, mean: mean!, variance: variance! };
    }
    const { mean, variance } = moments(x, axes);
    return { normed: batchNorm(x, mean, variance, beta, gamma, this.epsilon), mean, variance };
  }

  private updateMovingAverage(variable: LayerVariable, value: Tensor): void {
    tidy(() => {
      const old = variable.read();
      variable.write(sub(old, mul(sub(old, value), scalar(1 - this.momentum))));
    });
  }

  override getConfig(): serialization.ConfigDict {
    return { ...super.getConfig(), momentum: this.momentum, epsilon: this.epsilon, gammaInitializer: this.gammaInitializer, activation: this.activation };
  }
}
serialization.registerClass(TorchBatchNormalization);
