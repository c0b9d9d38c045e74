import type { Tensor } from '@tensorflow/tfjs-core';
import type { Shape } from '@tensorflow/tfjs-layers';

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

/** Spatial output size of a conv or pool along one axis (TF semantics). */
export function convOutputSize(size: number, kernel: number, stride: number, padding: 'same' | 'valid'): number {
  return padding === 'same' ? Math.ceil(size / stride) : Math.ceil((size - kernel + 1) / stride);
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
