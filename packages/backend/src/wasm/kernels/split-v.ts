import { backend_util, SplitV, util } from '@tensorflow/tfjs-core';
import type { KernelConfig, SplitVAttrs, TensorInfo } from '@tensorflow/tfjs-core';
import { requireInput, type KernelArgs, type WasmHeapBackend } from '../heap';
import { sliceOnHeap } from './slice';

/** SplitV as slices on the heap (see {@link sliceOnHeap}). */
export function makeSplitOnHeap(original: KernelConfig | undefined) {
  return (args: KernelArgs): TensorInfo | TensorInfo[] => {
    const xInfo = requireInput(args.inputs, 'x', SplitV);
    if ((xInfo.dtype !== 'float32' && xInfo.dtype !== 'int32') || xInfo.shape.length === 0) {
      if (original == null) throw new Error(`${SplitV} (wasm training kernel): no fallback for dtype ${xInfo.dtype}`);
      return original.kernelFunc(args);
    }
    const { numOrSizeSplits, axis } = args.attrs as unknown as SplitVAttrs;
    const splitAxis = util.parseAxisParam(axis, xInfo.shape)[0]!;
    const sizes = backend_util.prepareSplitSize(xInfo, numOrSizeSplits, splitAxis);
    const begin = new Array<number>(xInfo.shape.length).fill(0);
    return sizes.map((s) => {
      const size = [...xInfo.shape];
      size[splitAxis] = s;
      const out = sliceOnHeap(args.backend as unknown as WasmHeapBackend, xInfo, begin, size)!;
      begin[splitAxis]! += s;
      return out;
    });
  };
}
