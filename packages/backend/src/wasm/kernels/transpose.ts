import { Transpose } from '@tensorflow/tfjs-core';
import type { KernelConfig, TensorInfo, TransposeAttrs } from '@tensorflow/tfjs-core';
import { copyRun, requireInput, TRANSPOSE_TILE, type KernelArgs, type WasmHeapBackend } from '../heap';

/**
 * Input axes that stay neighbours, in order, in the output merge into one: [n,H,W,C] by [3,1,2,0] is
 * [n,HW,C] by [2,1,0]. Size-1 axes drop out.
 */
export function collapseTranspose(shape: readonly number[], perm: readonly number[]): { shape: number[]; perm: number[] } {
  const kept = perm.filter((axis) => shape[axis] !== 1);
  const groups: number[][] = [];
  for (const axis of kept) {
    const last = groups[groups.length - 1];
    if (last != null && last[last.length - 1] === axis - 1 && kept.indexOf(axis - 1) >= 0) last.push(axis);
    else groups.push([axis]);
  }
  // Number the merged axes in input order.
  const byInputOrder = [...groups].sort((a, b) => a[0]! - b[0]!);
  return {
    shape: byInputOrder.map((g) => g.reduce((size, axis) => size * shape[axis]!, 1)),
    perm: groups.map((g) => byInputOrder.indexOf(g)),
  };
}

/**
 * Transpose of 4-byte elements straight on the wasm heap, in JavaScript: contiguous runs are copied
 * with TypedArray.set, and a transpose that moves the innermost axis is done in 32x32 tiles so reads
 * and writes both stay in cache. wasm's own kernel walks the output with a strided scalar loop: moving
 * the channel axis of a [64,32,32,64] tensor outermost took it ~180 ms, about 3x what this does.
 */
export function makeTransposeOnHeap(original: KernelConfig | undefined) {
  return (args: KernelArgs): TensorInfo | TensorInfo[] => {
    const xInfo = requireInput(args.inputs, 'x', Transpose);
    const { perm } = args.attrs as unknown as TransposeAttrs;
    const backend = args.backend as unknown as WasmHeapBackend;
    const outShape = perm.map((axis) => xInfo.shape[axis]!);
    const collapsed = collapseTranspose(xInfo.shape, perm);
    const rank = collapsed.shape.length;
    const size = xInfo.shape.reduce((a, b) => a * b, 1);
    const innerMoves = rank >= 2 && collapsed.perm[rank - 1] !== rank - 1;
    const runLength = innerMoves ? 0 : collapsed.shape[rank - 1] ?? size;
    const tileable = innerMoves && collapsed.shape[rank - 1]! >= 4 && collapsed.shape[collapsed.perm[rank - 1]!]! >= 4;
    if ((xInfo.dtype !== 'float32' && xInfo.dtype !== 'int32') || size === 0 || (!tileable && rank >= 2 && runLength < 16)) {
      if (original == null) throw new Error(`${Transpose} (wasm training kernel): no fallback for dtype ${xInfo.dtype}`);
      return original.kernelFunc(args);
    }
    const out = backend.makeOutput(outShape, xInfo.dtype);
    // Read the heap only after makeOutput: allocating may grow (and so replace) the wasm memory.
    const heap = new Int32Array(backend.wasm.HEAPU8.buffer);
    const src = backend.dataIdMap.get(xInfo.dataId)!.memoryOffset >>> 2;
    const dst = backend.dataIdMap.get(out.dataId)!.memoryOffset >>> 2;
    const { shape, perm: p } = collapsed;
    const inStrides = new Array<number>(rank).fill(1);
    for (let a = rank - 2; a >= 0; a--) inStrides[a] = inStrides[a + 1]! * shape[a + 1]!;
    const outDims = p.map((a) => shape[a]!);
    const outStrides = new Array<number>(rank).fill(1);
    for (let i = rank - 2; i >= 0; i--) outStrides[i] = outStrides[i + 1]! * outDims[i + 1]!;
    // Output stride of each input axis.
    const outStrideOf = new Array<number>(rank);
    p.forEach((a, i) => (outStrideOf[a] = outStrides[i]!));

    if (rank < 2 || !innerMoves) {
      // Runs of `runLength` contiguous elements, placed in output order; the source offset is kept
      // up to date as the counters of the outer axes (in output order) tick.
      const outer = p.slice(0, rank - 1);
      const counter = new Array<number>(outer.length).fill(0);
      let from = src;
      for (let o = 0, count = size / runLength, to = dst; o < count; o++, to += runLength) {
        copyRun(heap, to, from, runLength);
        for (let i = outer.length - 1; i >= 0; i--) {
          const axis = outer[i]!;
          from += inStrides[axis]!;
          if (++counter[i]! < shape[axis]!) break;
          counter[i] = 0;
          from -= shape[axis]! * inStrides[axis]!;
        }
      }
      return out;
    }
    // Tile over A (innermost in the input) and B (innermost in the output); walk the other axes.
    const a = rank - 1;
    const b = p[rank - 1]!;
    const others = [...Array(rank).keys()].filter((axis) => axis !== a && axis !== b);
    const counter = new Array<number>(others.length).fill(0);
    const sizeA = shape[a]!;
    const sizeB = shape[b]!;
    const inStrideB = inStrides[b]!;
    const outStrideA = outStrideOf[a]!;
    for (let o = 0, count = size / (sizeA * sizeB); o < count; o++) {
      let inBase = src;
      let outBase = dst;
      others.forEach((axis, i) => {
        inBase += counter[i]! * inStrides[axis]!;
        outBase += counter[i]! * outStrideOf[axis]!;
      });
      for (let b0 = 0; b0 < sizeB; b0 += TRANSPOSE_TILE) {
        const b1 = Math.min(b0 + TRANSPOSE_TILE, sizeB);
        for (let a0 = 0; a0 < sizeA; a0 += TRANSPOSE_TILE) {
          const a1 = Math.min(a0 + TRANSPOSE_TILE, sizeA);
          for (let ia = a0; ia < a1; ia++) {
            const from = inBase + ia;
            const to = outBase + ia * outStrideA;
            for (let ib = b0; ib < b1; ib++) heap[to + ib] = heap[from + ib * inStrideB]!;
          }
        }
      }
      for (let i = others.length - 1; i >= 0; i--) {
        if (++counter[i]! < shape[others[i]!]!) break;
        counter[i] = 0;
      }
    }
    return out;
  };
}
