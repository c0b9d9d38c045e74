import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { util } from '@tensorflow/tfjs-core';
import type { KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';

// How the wrn-native kernels read and write tensors: each tensor's values are one ordinary Float32Array in
// MathBackendCPU's data store (bounded by RAM, not by a 4 GB wasm32 heap), which @wrn/native reads and writes in
// place. Outputs are fresh arrays handed to the store without a copy.

export type KernelArgs = Parameters<KernelFunc>[0];

/** The backend name the kernels are registered under (see ./backend.ts). */
export const NATIVE_BACKEND_NAME = 'wrn-native';

export function cpuBackendOf(args: KernelArgs): MathBackendCPU {
  return args.backend as unknown as MathBackendCPU;
}

export function requireInput(args: KernelArgs, name: string, kernel: string): TensorInfo {
  const info = args.inputs[name];
  if (info == null) throw new Error(`${kernel} (${NATIVE_BACKEND_NAME} kernel): missing input '${name}'`);
  return info;
}

/**
 * A float32 tensor's values as a Float32Array, in place where the store holds one (every kernel of ours and of
 * tfjs-backend-cpu writes float32 as Float32Array); any other typed array is converted (a copy, read only).
 */
export function float32Values(backend: MathBackendCPU, info: TensorInfo, kernel: string): Float32Array {
  const values = backend.data.get(info.dataId)?.values;
  if (values == null) throw new Error(`${kernel} (${NATIVE_BACKEND_NAME} kernel): tensor [${info.shape.join(',')}] has no data on this backend`);
  if (values instanceof Float32Array) return values;
  return Float32Array.from(values as ArrayLike<number>);
}

/** A new float32 tensor of `shape` whose values are `values` (taken, not copied). */
export function outputOf(backend: MathBackendCPU, shape: readonly number[], values: Float32Array): TensorInfo {
  return backend.makeTensorInfo([...shape], 'float32', values);
}

/**
 * A Float32Array for an output of `shape`, from the backend's pool (./float-pool.ts) where it has one: its contents
 * are whatever a freed tensor left, so the kernel must write every element (the addon's calls do).
 */
export function newValues(backend: MathBackendCPU, shape: readonly number[]): Float32Array {
  const size = util.sizeFromShape([...shape]);
  const pool = (backend as { pool?: { take(size: number): Float32Array } }).pool;
  return pool != null ? pool.take(size) : new Float32Array(size);
}

export function allFloat32(...infos: (TensorInfo | undefined)[]): boolean {
  return infos.every((info) => info == null || info.dtype === 'float32');
}
