import { engine, getBackend, getKernel, pad, registerGradient, reshape, slice, tidy, serialization, type Tensor, type Tensor4D } from '@tensorflow/tfjs-core';
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
 * The name of a kernel computing the whole shortcut in one pass, x [n, h, w, c] -> [n, ceil(h/s), ceil(w/s),
 * outChannels] (attrs {@link ZeroPadShortcutAttrs}), which a backend may register (@wrn/backend does on wasm with
 * @wrn/native). Where it is registered, ZeroPadShortcut runs it in inference instead of its Slice, Slice and PadV2.
 */
export const ZERO_PAD_SHORTCUT_KERNEL = 'WrnZeroPadShortcut';

/** The attributes of {@link ZERO_PAD_SHORTCUT_KERNEL}. */
export interface ZeroPadShortcutAttrs {
  strides: number;
  outChannels: number;
}

// The kernel's gradient, for gradients taken through a model in inference mode (training runs the ops above, whose
// gradients tfjs-core has): dy's first c channels put back at rows and columns 0, s, 2s, ..., zeros elsewhere.
registerGradient({
  kernelName: ZERO_PAD_SHORTCUT_KERNEL,
  inputsToSave: ['x'],
  gradFunc: (dy, saved, attrs) => {
    const [x] = saved as [Tensor4D];
    const { strides: s } = attrs as unknown as ZeroPadShortcutAttrs;
    return {
      x: () => tidy(() => {
        const [n, h, w, c] = x.shape;
        const [, ho, wo] = (dy as Tensor4D).shape;
        const kept = slice(dy as Tensor4D, [0, 0, 0, 0], [n, ho, wo, c]);
        if (s === 1) return kept;
        const spread = pad(reshape(kept, [n, ho, 1, wo, 1, c]), [[0, 0], [0, 0], [0, s - 1], [0, 0], [0, s - 1], [0, 0]]);
        return slice(reshape(spread, [n, ho * s, wo * s, c]), [0, 0, 0, 0], [n, h, w, c]);
      }),
    };
  },
});

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

  override call(inputs: Tensor | Tensor[], kwargs: Record<string, unknown> = {}): Tensor {
    const x = singleTensor(inputs, 'ZeroPadShortcut');
    if (x.rank !== 4) throw new Error(`ZeroPadShortcut ${this.name}: expected an NHWC tensor, got shape [${x.shape.join(', ')}]`);
    const channels = x.shape[3] as number;
    if (channels > this.outChannels) {
      throw new Error(`ZeroPadShortcut ${this.name}: input has ${channels} channels, more than outChannels ${this.outChannels}`);
    }
    if (kwargs['training'] !== true && x.dtype === 'float32' && getKernel(ZERO_PAD_SHORTCUT_KERNEL, getBackend()) != null) {
      const attrs: ZeroPadShortcutAttrs = { strides: this.strides, outChannels: this.outChannels };
      return engine().runKernel(ZERO_PAD_SHORTCUT_KERNEL, { x }, attrs as unknown as Record<string, number>) as Tensor;
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
