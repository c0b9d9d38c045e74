import { engine, Tensor, util } from '@tensorflow/tfjs-core';
import type { KernelFunc, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs-core';

// What the wasm training kernels share: their arguments, and reading and writing tensors in place on the wasm heap.

export type KernelArgs = Parameters<KernelFunc>[0];

/** Tile edge of the heap transposes: in 32x32 tiles both the reads and the writes stay in cache. */
export const TRANSPOSE_TILE = 32;

// Kernel inputs are usually Tensors (when an op called runKernel), but a kernel called from another
// kernel gets bare TensorInfos; ops need Tensors.
export function asTensor<T extends Tensor>(info: TensorInfo): T {
  return (info instanceof Tensor ? info : engine().makeTensorFromTensorInfo(info)) as T;
}

export function requireInput(inputs: NamedTensorInfoMap, name: string, kernel: string): TensorInfo {
  const info = inputs[name];
  if (info == null) throw new Error(`${kernel} (wasm training kernel): missing input '${name}'`);
  return info;
}

/** The parts of tfjs-backend-wasm's BackendWasm that the wasm training kernels read and write. */
export interface WasmHeapBackend {
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: string): TensorInfo;
  incRef(dataId: object): void;
  wasm: { HEAPU8: Uint8Array };
}

/** Offset of a tensor's data on the wasm heap, in 4-byte elements. */
export function heapIndex(backend: WasmHeapBackend, info: TensorInfo, kernel: string): number {
  const data = backend.dataIdMap.get(info.dataId);
  if (data == null) throw new Error(`${kernel} (wasm training kernel): tensor of shape [${info.shape.join(',')}] is not on the wasm backend`);
  return data.memoryOffset >>> 2;
}

/** A tensor's float32 data on the wasm heap, in place. Take views only after every makeOutput of a call (it may grow the heap). */
export function heapView(backend: WasmHeapBackend, info: TensorInfo, kernel: string): Float32Array {
  return new Float32Array(backend.wasm.HEAPU8.buffer, heapIndex(backend, info, kernel) * 4, util.sizeFromShape(info.shape));
}

/** Copies `length` 4-byte elements within the heap: a loop for short runs, where copyWithin costs more than it saves. */
export function copyRun(heap: Int32Array, to: number, from: number, length: number): void {
  if (length >= 64) heap.copyWithin(to, from, from + length);
  else for (let i = 0; i < length; i++) heap[to + i] = heap[from + i]!;
}
