import { Slice, slice_util } from '@tensorflow/tfjs-core';
import type { KernelConfig, SliceAttrs, TensorInfo } from '@tensorflow/tfjs-core';
import { copyRun, heapIndex, requireInput, type KernelArgs, type WasmHeapBackend } from '../heap';

/**
 * x[begin : begin + size] copied on the heap in runs: the innermost axis sliced together with every full
 * axis inside it. wasm's Slice (which SplitV calls) first copies the whole input out of the heap with
 * readSync and then copies each run through a new subarray: 10 ms to split [16,32,32,64] into 4 groups of
 * channels. Returns undefined for dtypes that are not 4 bytes wide.
 */
export function sliceOnHeap(backend: WasmHeapBackend, x: TensorInfo, begin: readonly number[], size: readonly number[]): TensorInfo | undefined {
  if ((x.dtype !== 'float32' && x.dtype !== 'int32') || x.shape.length === 0) return undefined;
  const shape = x.shape;
  const rank = shape.length;
  const out = backend.makeOutput([...size], x.dtype);
  if (size.some((s) => s === 0)) return out;
  const heap = new Int32Array(backend.wasm.HEAPU8.buffer);
  const src = heapIndex(backend, x, Slice);
  let to = heapIndex(backend, out, Slice);
  const strides = new Array<number>(rank).fill(1);
  for (let a = rank - 2; a >= 0; a--) strides[a] = strides[a + 1]! * shape[a + 1]!;
  // Axes inside `inner` are whole: one run covers them and axis `inner`'s slice.
  let inner = rank - 1;
  while (inner > 0 && begin[inner] === 0 && size[inner] === shape[inner]) inner--;
  const run = size[inner]! * strides[inner]!;
  let from = src;
  for (let a = 0; a < rank; a++) from += begin[a]! * strides[a]!;
  const counter = new Array<number>(inner).fill(0);
  const runs = size.slice(0, inner).reduce((a, b) => a * b, 1);
  for (let r = 0; r < runs; r++, to += run) {
    copyRun(heap, to, from, run);
    for (let a = inner - 1; a >= 0; a--) {
      from += strides[a]!;
      if (++counter[a]! < size[a]!) break;
      counter[a] = 0;
      from -= size[a]! * strides[a]!;
    }
  }
  return out;
}

export function makeSliceOnHeap(original: KernelConfig | undefined) {
  return (args: KernelArgs): TensorInfo | TensorInfo[] => {
    const xInfo = requireInput(args.inputs, 'x', Slice);
    const { begin, size } = args.attrs as unknown as SliceAttrs;
    const [begin_, size_] = slice_util.parseSliceParams(xInfo, begin, size);
    const out = sliceOnHeap(args.backend as unknown as WasmHeapBackend, xInfo, begin_!, size_!);
    if (out != null) return out;
    if (original == null) throw new Error(`${Slice} (wasm training kernel): no fallback for dtype ${xInfo.dtype}`);
    return original.kernelFunc(args);
  };
}
