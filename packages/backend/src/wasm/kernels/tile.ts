import { Tile } from '@tensorflow/tfjs-core';
import type { KernelConfig, TensorInfo, TileAttrs } from '@tensorflow/tfjs-core';
import { heapIndex, requireInput, type KernelArgs, type WasmHeapBackend } from '../heap';

/**
 * Tile by copying on the wasm heap: each axis's block is written once and then doubled in place with
 * copyWithin (log2(reps) memmoves), so the output is written at memory speed. BatchNorm's gradient tiles
 * [1,1,1,C] by [N,H,W,1]; as a broadcasting multiply by ones (two broadcast operands) XNNPACK took ~2 ms
 * per million elements, about 5x a plain copy.
 */
export function makeTileOnHeap(original: KernelConfig | undefined) {
  return (args: KernelArgs): TensorInfo | TensorInfo[] => {
    const xInfo = requireInput(args.inputs, 'x', Tile);
    const { reps } = args.attrs as unknown as TileAttrs;
    const shape = xInfo.shape;
    const rank = shape.length;
    const outShape = shape.map((s, axis) => s * (reps[axis] ?? 1));
    const empty = outShape.some((s) => s === 0);
    if ((xInfo.dtype !== 'float32' && xInfo.dtype !== 'int32') || empty || rank === 0 || reps.length !== rank) {
      if (original == null) throw new Error(`${Tile} (wasm training kernel): no fallback for dtype ${xInfo.dtype}`);
      return original.kernelFunc(args);
    }
    const backend = args.backend as unknown as WasmHeapBackend;
    const out = backend.makeOutput(outShape, xInfo.dtype);
    // Read the heap only after makeOutput: allocating may grow (and so replace) the wasm memory.
    const heap = new Int32Array(backend.wasm.HEAPU8.buffer);
    const src = heapIndex(backend, xInfo, Tile);
    const dst = heapIndex(backend, out, Tile);
    const inStrides = new Array<number>(rank).fill(1);
    const outStrides = new Array<number>(rank).fill(1);
    for (let a = rank - 2; a >= 0; a--) {
      inStrides[a] = inStrides[a + 1]! * shape[a + 1]!;
      outStrides[a] = outStrides[a + 1]! * outShape[a + 1]!;
    }
    // Fills out[dstAt .. dstAt + size of axes >= axis) from x[srcAt ..].
    const fill = (axis: number, srcAt: number, dstAt: number): void => {
      const size = shape[axis]!;
      const block = size * (axis === rank - 1 ? 1 : outStrides[axis]!);
      if (axis === rank - 1) {
        if (size >= 64) heap.copyWithin(dstAt, srcAt, srcAt + size);
        else for (let i = 0; i < size; i++) heap[dstAt + i] = heap[srcAt + i]!;
      } else {
        for (let i = 0; i < size; i++) fill(axis + 1, srcAt + i * inStrides[axis]!, dstAt + i * outStrides[axis]!);
      }
      const total = block * reps[axis]!;
      for (let filled = block; filled < total; filled *= 2) {
        heap.copyWithin(dstAt + filled, dstAt, dstAt + Math.min(filled, total - filled));
      }
    };
    fill(0, src, dst);
    return out;
  };
}
