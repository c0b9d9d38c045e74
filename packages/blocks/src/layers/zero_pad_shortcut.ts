import { pad, reshape, slice, tidy, serialization, type Tensor, type Tensor4D } from '@tensorflow/tfjs-core';
import { layers, type Shape } from '@tensorflow/tfjs-layers';
import { assertPositiveInteger, singleShape, singleTensor, keepDtype, type LayerArgs } from './common.js';

export interface ZeroPadShortcutArgs extends LayerArgs {
  /** Spatial subsampling factor (takes every `strides`-th row and column, starting at 0). */
  strides: number;
  /** Output channels; the extra channels beyond the input's are zeros. */
  outChannels: number;
}

/**
 * Keeps rows and columns 0, s, 2s, ... (x[:, ::s, ::s, :]) without StridedSlice, which has no gradient in
 * tfjs-core: pad to a multiple of s, fold each axis into (size/s, s) and keep index 0, using rank-4 ops only.
 */
export function subsample(x: Tensor4D, strides: number): Tensor4D {
  if (strides === 1) return x;
  const [batch, height, width, channels] = x.shape;
  const outH = Math.ceil(height / strides);
  const outW = Math.ceil(width / strides);
  const padded = outH * strides === height && outW * strides === width
    ? x
    : pad(x, [[0, 0], [0, outH * strides - height], [0, outW * strides - width], [0, 0]]);
  const rows = slice(reshape(padded, [batch, outH, strides, outW * strides * channels]), [0, 0, 0, 0], [batch, outH, 1, -1]);
  const cols = reshape(rows, [batch, outH, outW, strides * channels]);
  return slice(cols, [0, 0, 0, 0], [batch, outH, outW, channels]) as Tensor4D;
}

/**
 * The parameter-free shortcut of the ResNet paper's option A: identity with stride-s subsampling, and the
 * channels beyond the input's filled with zeros (appended after the input's, as in fb.resnet.torch).
 */
export class ZeroPadShortcut extends layers.Layer {
  static className = 'WrnZeroPadShortcut';
  readonly strides: number;
  readonly outChannels: number;

  constructor(args: ZeroPadShortcutArgs) {
    super(args);
    keepDtype(this, args);
    assertPositiveInteger(args.strides, 'ZeroPadShortcut strides');
    assertPositiveInteger(args.outChannels, 'ZeroPadShortcut outChannels');
    this.strides = args.strides;
    this.outChannels = args.outChannels;
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const [batch, height, width, channels] = singleShape(inputShape, 'ZeroPadShortcut');
    if (channels != null && channels > this.outChannels) {
      throw new Error(`ZeroPadShortcut ${this.name}: input has ${channels} channels, more than outChannels ${this.outChannels}`);
    }
    const down = (size: number | null | undefined) => (size == null ? null : Math.ceil(size / this.strides));
    return [batch ?? null, down(height), down(width), this.outChannels];
  }

  override call(inputs: Tensor | Tensor[]): Tensor {
    const x = singleTensor(inputs, 'ZeroPadShortcut');
    if (x.rank !== 4) throw new Error(`ZeroPadShortcut ${this.name}: expected an NHWC tensor, got shape [${x.shape.join(', ')}]`);
    const channels = x.shape[3] as number;
    if (channels > this.outChannels) {
      throw new Error(`ZeroPadShortcut ${this.name}: input has ${channels} channels, more than outChannels ${this.outChannels}`);
    }
    return tidy(() => {
      const sub = subsample(x as Tensor4D, this.strides);
      return channels === this.outChannels ? sub.clone() : pad(sub, [[0, 0], [0, 0], [0, 0], [0, this.outChannels - channels]]);
    });
  }

  override getConfig(): serialization.ConfigDict {
    return { ...super.getConfig(), strides: this.strides, outChannels: this.outChannels };
  }
}
serialization.registerClass(ZeroPadShortcut);
