import { dropout, tidy, serialization, type Tensor } from '@tensorflow/tfjs-core';
import { layers, type Shape } from '@tensorflow/tfjs-layers';
import { nextLayerSeed } from '../random.js';
import { assertRate, singleTensor, keepDtype, type LayerArgs } from './common.js';

export interface StochasticLayerArgs extends LayerArgs {
  /** Probability of dropping, in [0, 1). */
  rate: number;
}

/**
 * Dropout whose masks come from the package's resumable random stream (see `getLayerRandomState`), so a run
 * resumed from a checkpoint draws the same masks. Inverted dropout: kept units are scaled by 1/(1-rate) during
 * training; at inference the layer is the identity.
 */
export class SeededDropout extends layers.Layer {
  static className = 'WrnSeededDropout';
  readonly rate: number;

  constructor(args: StochasticLayerArgs) {
    super(args);
    keepDtype(this, args);
    assertRate(args.rate, `SeededDropout ${args.name ?? ''} rate`.replace('  ', ' '));
    this.rate = args.rate;
    this.supportsMasking = true;
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape | Shape[] {
    return inputShape;
  }

  override call(inputs: Tensor | Tensor[], kwargs: Record<string, unknown>): Tensor {
    const x = singleTensor(inputs, 'SeededDropout');
    // A clone, not x itself: the model executor disposes a layer's input once consumed.
    if (kwargs['training'] !== true || this.rate === 0) return x.clone();
    return tidy(() => dropout(x, this.rate, undefined, nextLayerSeed()));
  }

  override getConfig(): serialization.ConfigDict {
    return { ...super.getConfig(), rate: this.rate };
  }
}
serialization.registerClass(SeededDropout);

/**
 * Drop-path (stochastic depth, Huang et al. 2016): drops a residual branch for whole samples, scaling the kept
 * ones by 1/(1-rate). Placed on the branch just before the addition. Identity at inference.
 */
export class DropPath extends layers.Layer {
  static className = 'WrnDropPath';
  readonly rate: number;

  constructor(args: StochasticLayerArgs) {
    super(args);
    keepDtype(this, args);
    assertRate(args.rate, `DropPath ${args.name ?? ''} rate`.replace('  ', ' '));
    this.rate = args.rate;
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape | Shape[] {
    return inputShape;
  }

  override call(inputs: Tensor | Tensor[], kwargs: Record<string, unknown>): Tensor {
    const x = singleTensor(inputs, 'DropPath');
    if (kwargs['training'] !== true || this.rate === 0) return x.clone();
    const noiseShape = [x.shape[0] ?? 1, ...x.shape.slice(1).map(() => 1)];
    return tidy(() => dropout(x, this.rate, noiseShape, nextLayerSeed()));
  }

  override getConfig(): serialization.ConfigDict {
    return { ...super.getConfig(), rate: this.rate };
  }
}
serialization.registerClass(DropPath);
