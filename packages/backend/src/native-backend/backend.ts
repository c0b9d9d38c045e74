import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { getKernel, getKernelsForBackend, registerBackend, registerKernel, removeBackend, unregisterKernel } from '@tensorflow/tfjs-core';
import type { backend_util, DataId, DataType } from '@tensorflow/tfjs-core';
import { registerGroupedConvMethodResolver } from '@wrn/blocks';
import type { NativeConvKernels } from '@wrn/native';
import { registerBatchNormTrainingGradient } from '../wasm/native-batch-norm';
import { registerGroupedConvGradient } from '../wasm/native-grouped-conv';
import { nativeBackendConvKernels } from './conv-kernels';
import { FloatPool } from './float-pool';
import { nativeBackendOpKernels } from './op-kernels';
import { NATIVE_BACKEND_NAME } from './tensor-data';

/**
 * The wrn-native backend: tfjs-backend-cpu's MathBackendCPU (each tensor's values one ordinary Float32Array in its
 * data store, so a training step is bounded by RAM, not by wasm32's 4 GB heap) with @wrn/native's kernels for every
 * op of a ResNet/WRN/ResNeXt training step and predict that touches activations, and tfjs-backend-cpu's own kernels,
 * copied under this backend's name, for the rest (the loss on [B, classes], reshapes, the dense layer's small
 * matMuls).
 */
export class NativeBackend extends MathBackendCPU {
  /** Where the kernels' outputs come from and freed ones go back to (./float-pool.ts). */
  readonly pool = new FloatPool();

  constructor(readonly native: NativeConvKernels) {
    super();
    // MathBackendCPU's first write warns that tfjs-node would be faster; on this backend the kernels are native.
    (this as unknown as { firstUse: boolean }).firstUse = false;
  }

  override write(values: backend_util.BackendValues, shape: number[], dtype: DataType): DataId {
    const dataId = super.write(values, shape, dtype);
    this.pool.attach(values);
    return dataId;
  }

  override disposeData(dataId: DataId, force = false): boolean {
    const values = this.data.get(dataId)?.values;
    const removed = super.disposeData(dataId, force);
    if (removed && values != null) this.pool.detach(values);
    return removed;
  }

  // What is read out may outlive its tensor (t.dataSync() after t.dispose()): its array is never reused.
  override readSync(dataId: DataId): backend_util.BackendValues {
    const values = this.data.get(dataId)?.values;
    if (values != null) this.pool.escape(values);
    return super.readSync(dataId);
  }

  override read(dataId: DataId): Promise<backend_util.BackendValues> {
    return Promise.resolve(this.readSync(dataId));
  }

  override dispose(): void {
    this.pool.clear();
    super.dispose();
  }
}

/** The kernels {@link registerNativeBackend} runs on @wrn/native (the others are tfjs-backend-cpu's). */
export const NATIVE_BACKEND_KERNEL_NAMES: readonly string[] = [...Object.keys(nativeBackendConvKernels), ...Object.keys(nativeBackendOpKernels)];

let registeredWith: NativeConvKernels | undefined;

/**
 * Registers the {@link NATIVE_BACKEND_NAME} backend on `native` (tfjs-backend-cpu must be loaded: its kernels are
 * the fallbacks), with its kernels, the gradients of @wrn's custom kernels, and the grouped conv method of its
 * layers ('native': one kernel per grouped conv). Priority 0: it is used only when asked for (setBackend or
 * selectBackend('wrn-native')), never picked by tfjs-core on its own. Idempotent; registering again with other
 * kernels replaces the backend (after an A/B set-up, say).
 */
export function registerNativeBackend(native: NativeConvKernels): readonly string[] {
  if (registeredWith === native) return NATIVE_BACKEND_KERNEL_NAMES;
  const cpuKernels = getKernelsForBackend('cpu');
  if (cpuKernels.length === 0) throw new Error(`${NATIVE_BACKEND_NAME}: tfjs-backend-cpu's kernels are not registered; import '@tensorflow/tfjs-backend-cpu' first`);
  if (registeredWith != null) {
    removeBackend(NATIVE_BACKEND_NAME);
    for (const config of getKernelsForBackend(NATIVE_BACKEND_NAME)) unregisterKernel(config.kernelName, NATIVE_BACKEND_NAME);
  }
  const cpuByName = new Map(cpuKernels.map((config) => [config.kernelName, config]));
  for (const config of cpuKernels) {
    if (NATIVE_BACKEND_KERNEL_NAMES.includes(config.kernelName)) continue;
    registerKernel({ ...config, backendName: NATIVE_BACKEND_NAME });
  }
  const makers = { ...nativeBackendConvKernels, ...nativeBackendOpKernels };
  for (const [kernelName, make] of Object.entries(makers)) {
    if (getKernel(kernelName, NATIVE_BACKEND_NAME) != null) unregisterKernel(kernelName, NATIVE_BACKEND_NAME);
    registerKernel({ kernelName, backendName: NATIVE_BACKEND_NAME, kernelFunc: make(native, cpuByName.get(kernelName)?.kernelFunc) });
  }
  registerBatchNormTrainingGradient();
  registerGroupedConvGradient();
  registerGroupedConvMethodResolver(NATIVE_BACKEND_NAME, () => 'native');
  registerBackend(NATIVE_BACKEND_NAME, () => new NativeBackend(native), 0);
  registeredWith = native;
  return NATIVE_BACKEND_KERNEL_NAMES;
}
