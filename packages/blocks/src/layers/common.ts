import type { Tensor } from '@tensorflow/tfjs-core';
import type { layers, Shape } from '@tensorflow/tfjs-layers';

/**
 * The arguments every tfjs-layers layer takes (name, trainable, dtype, inputShape, batchInputShape, ...), which its
 * getConfig writes and loadLayersModel hands back to the constructor. tfjs-layers does not export the type by name.
 */
export type LayerArgs = NonNullable<Parameters<typeof layers.add>[0]>;

/**
 * tfjs-layers' Layer constructor keeps `dtype` only when an input shape comes with it, so a custom layer saved
 * with a dtype would be loaded back without one; each custom constructor calls this after `super(args)`.
 */
export function keepDtype(layer: layers.Layer, args: LayerArgs): void {
  if (args.dtype != null) layer.dtype = args.dtype;
}

/** tfjs-layers hands a single-input layer either a tensor or a one-element list. */
export function singleTensor(inputs: Tensor | Tensor[], layer: string): Tensor {
  if (!Array.isArray(inputs)) return inputs;
  if (inputs.length !== 1 || inputs[0] === undefined) {
    throw new Error(`${layer} expects exactly one input tensor, got ${inputs.length}`);
  }
  return inputs[0];
}

export function singleShape(inputShape: Shape | Shape[], layer: string): Shape {
  const first = inputShape[0];
  if (Array.isArray(first)) {
    if (inputShape.length !== 1) throw new Error(`${layer} expects exactly one input, got ${inputShape.length}`);
    return first;
  }
  return inputShape as Shape;
}

/**
 * Padding of a conv or pool: TF's 'same' (the total split with the extra pixel at the end: 0 before and 1 after
 * for a 3x3/2 conv on an even size) or 'valid', or a number p: p zeros before and p after on both spatial axes,
 * as Torch's `padding=p` (1 for a 3x3/2 conv, 3 for the 7x7/2 stem).
 */
export type ConvPadding = 'same' | 'valid' | number;

/** Spatial output size of a conv or pool along one axis (TF semantics for 'same'/'valid', Torch's for a number). */
export function convOutputSize(size: number, kernel: number, stride: number, padding: ConvPadding): number {
  if (typeof padding === 'number') return Math.floor((size + 2 * padding - kernel) / stride) + 1;
  return padding === 'same' ? Math.ceil(size / stride) : Math.ceil((size - kernel + 1) / stride);
}

/** Checks a padding argument: 'same', 'valid' or a non-negative integer smaller than the kernel. */
export function assertPadding(padding: unknown, kernel: number, what: string): asserts padding is ConvPadding {
  if (padding === 'same' || padding === 'valid') return;
  if (typeof padding !== 'number' || !Number.isInteger(padding) || padding < 0 || padding >= kernel) {
    throw new RangeError(`${what} must be 'same', 'valid' or an integer in [0, ${kernel - 1}] (symmetric padding below the kernel size ${kernel}), got ${JSON.stringify(padding)}`);
  }
}

export function assertPositiveInteger(value: unknown, what: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new RangeError(`${what} must be a positive integer, got ${String(value)}`);
  }
}

export function assertRate(value: unknown, what: string): asserts value is number {
  if (typeof value !== 'number' || !(value >= 0 && value < 1)) {
    throw new RangeError(`${what} must be a number in [0, 1), got ${String(value)}`);
  }
}
