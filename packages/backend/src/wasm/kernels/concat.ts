import { backend_util, Concat, util } from '@tensorflow/tfjs-core';
import type { ConcatAttrs, KernelConfig, TensorInfo } from '@tensorflow/tfjs-core';
import { copyRun, heapIndex, type KernelArgs, type WasmHeapBackend } from '../heap';

/**
 * Concat by copies on the heap: per outer index, each input's inner block in turn. wasm's own kernel makes
 * a subarray per block, which costs more than the copy when the blocks are a few channels (ResNeXt joins
 * its groups' 16-channel outputs).
 */
export function makeConcatOnHeap(original: KernelConfig | undefined) {
  return (args: KernelArgs): TensorInfo | TensorInfo[] => {
    const inputs = Object.keys(args.inputs)
      .sort((a, b) => Number(a) - Number(b))
      .map((key) => args.inputs[key]!);
    const first = inputs[0];
    const dtype = first?.dtype;
    if (first == null || (dtype !== 'float32' && dtype !== 'int32') || inputs.some((t) => t.dtype !== dtype)) {
      if (original == null) throw new Error(`${Concat} (wasm training kernel): no fallback for these inputs`);
      return original.kernelFunc(args);
    }
    const axis = util.parseAxisParam((args.attrs as unknown as ConcatAttrs).axis, first.shape)[0]!;
    backend_util.assertParamsConsistent(
      inputs.map((t) => t.shape),
      axis,
    );
    const outShape = backend_util.computeOutShape(
      inputs.map((t) => t.shape),
      axis,
    );
    const nonEmpty = inputs.filter((t) => t.shape.every((d) => d > 0));
    const backend = args.backend as unknown as WasmHeapBackend;
    if (nonEmpty.length === 1) {
      backend.incRef(nonEmpty[0]!.dataId);
      return { dataId: nonEmpty[0]!.dataId, shape: outShape, dtype };
    }
    const out = backend.makeOutput(outShape, dtype);
    if (nonEmpty.length === 0) return out;
    const heap = new Int32Array(backend.wasm.HEAPU8.buffer);
    const outer = first.shape.slice(0, axis).reduce((a, b) => a * b, 1);
    const blocks = nonEmpty.map((t) => ({ at: heapIndex(backend, t, Concat), size: t.shape.slice(axis).reduce((a, b) => a * b, 1) }));
    let to = heapIndex(backend, out, Concat);
    for (let o = 0; o < outer; o++) {
      for (const block of blocks) {
        copyRun(heap, to, block.at + o * block.size, block.size);
        to += block.size;
      }
    }
    return out;
  };
}
