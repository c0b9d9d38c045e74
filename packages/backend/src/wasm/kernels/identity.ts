import { Cast, Identity } from '@tensorflow/tfjs-core';
import type { CastAttrs, KernelConfig, TensorInfo } from '@tensorflow/tfjs-core';
import { requireInput, type KernelArgs, type WasmHeapBackend } from '../heap';

/**
 * Identity, and Cast to the dtype the tensor already has, share the input's data instead of copying it,
 * as Reshape does and as the cpu backend does: tensors are immutable, and the backend frees the data when
 * the last tensor using it is disposed. A training step makes hundreds of these (tfjs-core's moments casts
 * every BatchNorm input to float32; Cast's gradient is a clone), each a full copy of an activation on wasm.
 */
export function makeSharingData(kernelName: typeof Identity | typeof Cast, original: KernelConfig | undefined) {
  return (args: KernelArgs): TensorInfo | TensorInfo[] => {
    const xInfo = requireInput(args.inputs, 'x', kernelName);
    const dtype = kernelName === Cast ? (args.attrs as unknown as CastAttrs).dtype : xInfo.dtype;
    if (xInfo.dtype === 'string' || dtype !== xInfo.dtype) {
      if (original == null) throw new Error(`${kernelName} (wasm training kernel): no fallback for ${xInfo.dtype} to ${dtype}`);
      return original.kernelFunc(args);
    }
    (args.backend as unknown as WasmHeapBackend).incRef(xInfo.dataId);
    return { dataId: xInfo.dataId, shape: xInfo.shape, dtype: xInfo.dtype };
  };
}

/** Identity: the input's data, shared (see {@link makeSharingData}). */
export function makeIdentitySharingData(original: KernelConfig | undefined) {
  return makeSharingData(Identity, original);
}
