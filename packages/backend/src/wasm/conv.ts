import { Conv2D, engine } from '@tensorflow/tfjs-core';
import type { Conv2DAttrs, Tensor4D } from '@tensorflow/tfjs-core';

// What the two conv gradient kernels share: both are computed as forward convolutions.

// The tfjs op asserts "either strides or dilations must be 1"; XNNPACK has no such limit, and the
// filter gradient of a strided conv is a conv dilated by that stride.
export function forwardConv(x: Tensor4D, filter: Tensor4D, attrs: Conv2DAttrs): Tensor4D {
  return engine().runKernel(Conv2D, { x, filter }, attrs as unknown as Record<string, unknown> as never) as Tensor4D;
}

export function checkChannelsLast(kernel: string, dataFormat: string): void {
  if (dataFormat !== 'NHWC') {
    throw new Error(`${kernel} (wasm training kernel): dataFormat '${dataFormat}' is not supported; expected 'NHWC'`);
  }
}
