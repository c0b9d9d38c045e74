import { maxPool, serialization, type Tensor, type Tensor4D } from '@tensorflow/tfjs-core';
import { layers, type Shape } from '@tensorflow/tfjs-layers';
import { assertPadding, assertPositiveInteger, convOutputSize, singleShape, singleTensor, type ConvPadding, keepDtype, type LayerArgs } from './common.js';

export interface PaddedMaxPooling2DArgs extends LayerArgs {
  /** Square window size. */
  poolSize: number;
  /** Stride of both spatial axes. Default: poolSize. */
  strides?: number;
  /** p pixels on every side that never win the max (Torch's nn.MaxPool2d(padding=p) pads with -inf), or 'same'/'valid'. */
  padding: ConvPadding;
}

/**
 * Max pooling with Torch's explicit symmetric padding: the ImageNet stem's 3x3/2 pool pads 1 on each side, where
 * TF's 'same' pads 0 before and 1 after. Padded pixels are ignored (as -inf), as in Torch; tf.maxPool skips
 * them on every backend (cpu's loop bounds, XNNPACK's padding), so the layer is one op with no copy.
 */
export class PaddedMaxPooling2D extends layers.Layer {
  static className = 'WrnMaxPooling2D';
  readonly poolSize: number;
  readonly strides: number;
  readonly padding: ConvPadding;

  constructor(args: PaddedMaxPooling2DArgs) {
    super(args);
    keepDtype(this, args);
    const where = `PaddedMaxPooling2D${args.name ? ` ${args.name}` : ''}`;
    assertPositiveInteger(args.poolSize, `${where} poolSize`);
    this.poolSize = args.poolSize;
    this.strides = args.strides ?? args.poolSize;
    assertPositiveInteger(this.strides, `${where} strides`);
    assertPadding(args.padding, this.poolSize, `${where}: padding`);
    this.padding = args.padding;
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const [batch, height, width, channels] = singleShape(inputShape, 'PaddedMaxPooling2D');
    const out = (size: number | null | undefined) => (size == null ? null : convOutputSize(size, this.poolSize, this.strides, this.padding));
    return [batch ?? null, out(height), out(width), channels ?? null];
  }

  override call(inputs: Tensor | Tensor[]): Tensor {
    const x = singleTensor(inputs, 'PaddedMaxPooling2D');
    if (x.rank !== 4) throw new Error(`PaddedMaxPooling2D ${this.name}: expected an NHWC tensor, got shape [${x.shape.join(', ')}]`);
    return maxPool(x as Tensor4D, this.poolSize, this.strides, this.padding);
  }

  override getConfig(): serialization.ConfigDict {
    return { ...super.getConfig(), poolSize: this.poolSize, strides: this.strides, padding: this.padding };
  }
}
serialization.registerClass(PaddedMaxPooling2D);
