import { avgPool, Mean, mul, reshape, Sum, tidy } from '@tensorflow/tfjs-core';
import type { KernelConfig, SumAttrs, Tensor4D, TensorInfo } from '@tensorflow/tfjs-core';
import { asTensor, requireInput, type KernelArgs } from '../heap';

/**
 * Sum/Mean over a block of axes that are not the innermost ones (BatchNorm's statistics and their
 * gradients reduce [N,H,W,C] over [0,1,2]) as one XNNPACK average pooling of x viewed as [P,R,1,C]
 * with an [R,1] window. wasm's own kernel first moves the reduced axes innermost with its scalar
 * transpose: 10-20x slower. (A matMul by ones is fast only when its operand repeats: XNNPACK packs
 * the weights of every new one.)
 */
export function makeReductionViaAvgPool(kernelName: typeof Sum | typeof Mean, original: KernelConfig | undefined) {
  return (args: KernelArgs): TensorInfo | TensorInfo[] => {
    const xInfo = requireInput(args.inputs, 'x', kernelName);
    const { axis, keepDims } = args.attrs as unknown as SumAttrs;
    const shape = xInfo.shape;
    const rank = shape.length;
    const axes = [...new Set((Array.isArray(axis) ? axis : [axis]).map((a) => (a < 0 ? a + rank : a)))].sort((a, b) => a - b);
    const first = axes[0];
    const last = axes[axes.length - 1];
    const contiguous = first != null && last != null && last - first === axes.length - 1;
    const size = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);
    const reduced = contiguous ? size(shape.slice(first, last + 1)) : 0;
    const kept = contiguous ? size(shape.slice(last + 1)) : 0;
    if (xInfo.dtype !== 'float32' || !contiguous || last === rank - 1 || reduced === 0 || kept === 0) {
      if (original == null) throw new Error(`${kernelName} (wasm training kernel): no fallback for this reduction`);
      return original.kernelFunc(args);
    }
    const outer = size(shape.slice(0, first));
    const outShape = keepDims ? shape.map((d, i) => (i >= first && i <= last ? 1 : d)) : shape.filter((_, i) => i < first || i > last);
    return tidy(() => {
      const x = asTensor(xInfo);
      const mean = avgPool(reshape(x, [outer, reduced, 1, kept]) as Tensor4D, [reduced, 1], 1, 'valid');
      return reshape(kernelName === Mean ? mean : mul(mean, reduced), outShape);
    });
  };
}

/** Sum over leading axes as an average pooling times the count (see {@link makeReductionViaAvgPool}). */
export function makeSumViaAvgPool(original: KernelConfig | undefined) {
  return makeReductionViaAvgPool(Sum, original);
}
