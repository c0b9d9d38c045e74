import { engine, FusedBatchNorm, FusedDepthwiseConv2D, reshape, tensor1d, tensor4d, tidy } from '@tensorflow/tfjs-core';
import type { FusedBatchNormAttrs, KernelConfig, Tensor, TensorInfo } from '@tensorflow/tfjs-core';
import { asTensor, heapIndex, requireInput, type KernelArgs, type WasmHeapBackend } from '../heap';

/**
 * FusedBatchNorm (y = (x - mean) * scale / sqrt(variance + eps) + offset, per channel) as
 * y = x * a + b with a = scale / sqrt(variance + eps) and b = offset - mean * a computed once per channel,
 * run as a 1x1 depthwise conv with bias: XNNPACK's per-channel multiply-add, SIMD and on the thread
 * pool. wasm's own kernel is a scalar loop over every element (10-15 ms on a [64,32,32,64] tensor).
 * Covers every mean/variance/offset/scale of one value per channel (the last axis) or a single value;
 * anything else goes to wasm's kernel.
 */
export function makeBatchNormViaDepthwise(original: KernelConfig | undefined) {
  return (args: KernelArgs): TensorInfo | TensorInfo[] => {
    const xInfo = requireInput(args.inputs, 'x', FusedBatchNorm);
    const meanInfo = requireInput(args.inputs, 'mean', FusedBatchNorm);
    const varianceInfo = requireInput(args.inputs, 'variance', FusedBatchNorm);
    const { offset: offsetInfo, scale: scaleInfo } = args.inputs;
    const { varianceEpsilon } = args.attrs as unknown as FusedBatchNormAttrs;
    const channels = xInfo.shape[xInfo.shape.length - 1] ?? 0;
    const size = xInfo.shape.reduce((a, b) => a * b, 1);
    const params = [meanInfo, varianceInfo, offsetInfo, scaleInfo];
    const perChannelOrSingle = params.every((p) => {
      if (p == null) return true;
      const n = p.shape.reduce((a, b) => a * b, 1);
      return p.dtype === 'float32' && (n === 1 || n === channels);
    });
    if (xInfo.dtype !== 'float32' || size === 0 || channels === 0 || !perChannelOrSingle) {
      if (original == null) throw new Error(`${FusedBatchNorm} (wasm training kernel): no fallback for this batch norm`);
      return original.kernelFunc(args);
    }
    const backend = args.backend as unknown as WasmHeapBackend;
    const heap = new Float32Array(backend.wasm.HEAPU8.buffer);
    const reader = (info: TensorInfo | undefined, fallback: number) => {
      if (info == null) return () => fallback;
      const at = heapIndex(backend, info, FusedBatchNorm);
      const single = info.shape.reduce((a, b) => a * b, 1) === 1;
      return (c: number) => heap[single ? at : at + c]!;
    };
    const [mean, variance, offset, scale] = [reader(meanInfo, 0), reader(varianceInfo, 1), reader(offsetInfo, 0), reader(scaleInfo, 1)];
    const a = new Float32Array(channels);
    const b = new Float32Array(channels);
    for (let c = 0; c < channels; c++) {
      a[c] = scale(c) / Math.sqrt(variance(c) + varianceEpsilon);
      b[c] = offset(c) - mean(c) * a[c]!;
    }
    return tidy(() => {
      const x = reshape(asTensor(xInfo), [1, 1, size / channels, channels]);
      const filter = tensor4d(a, [1, 1, channels, 1]);
      const y = engine().runKernel(FusedDepthwiseConv2D, { x, filter, bias: tensor1d(b) }, {
        strides: [1, 1],
        pad: 'valid',
        dilations: [1, 1],
        dataFormat: 'NHWC',
        dimRoundingMode: undefined,
        activation: 'linear',
      } as unknown as Record<string, unknown> as never) as Tensor;
      return reshape(y, xInfo.shape);
    });
  };
}
