import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { loadNativeConvKernels } from '@wrn/native';
import { nativeConvFromEnv, selectBackend } from './node';
import { wasmNativeConvKernels } from './wasm/training-kernels';

// A file of its own: the wasm backend's thread count is fixed when it is first initialised.
describe('selectBackend with wasmThreads', () => {
  it('rejects a bad thread count, naming it', async () => {
    await expect(selectBackend('wasm', { wasmThreads: 9 })).rejects.toThrow(
      "selectBackend: wasmThreads must be 'auto' or an integer from 1 to 8, got 9",
    );
  });

  it("'wasm' with 2 threads loads the threaded build and passes the gradient self-check", async () => {
    const picked = await selectBackend('wasm', { wasmThreads: 2 });
    expect(picked.name).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(picked.wasmThreads).toBe(2);
    const native = loadNativeConvKernels();
    expect(native.ok).toBe(true);
    const { isa, threads } = native.ok ? native.kernels : { isa: '', threads: 0 };
    expect(picked.nativeConv).toEqual({ used: true, isa, threads });
    expect(picked.reason).toBe(
      `using: wasm (XNNPACK, SIMD, 2 threads) with @wrn's training kernels, convolutions native (@wrn/native, ${isa}, ${threads} thread${threads === 1 ? '' : 's'}), checked against a direct computation`,
    );
  });

  it('keeps the convolutions on XNNPACK when asked (nativeConv: false, or WRN_NATIVE_CONV=0), and says so', async () => {
    const picked = await selectBackend('wasm', { nativeConv: false });
    expect(picked.nativeConv).toEqual({ used: false, why: 'off (WRN_NATIVE_CONV=0)' });
    expect(picked.reason).toContain("with @wrn's training kernels, convolutions on XNNPACK (native ones off (WRN_NATIVE_CONV=0))");
    expect(wasmNativeConvKernels()).toBeUndefined();
  });

  it('says why when @wrn/native cannot be imported', async () => {
    const picked = await selectBackend('wasm', {
      importModule: (specifier) => (specifier === '@wrn/native' ? Promise.reject(new Error("Cannot find package '@wrn/native'")) : import(specifier)),
    });
    expect(picked.nativeConv).toEqual({ used: false, why: "not installed (@wrn/native: Cannot find package '@wrn/native')" });
  });

  it('reads WRN_NATIVE_CONV, naming a bad value', () => {
    expect(nativeConvFromEnv({})).toBe(true);
    expect(nativeConvFromEnv({ WRN_NATIVE_CONV: '0' })).toBe(false);
    expect(nativeConvFromEnv({ WRN_NATIVE_CONV: 'on' })).toBe(true);
    expect(() => nativeConvFromEnv({ WRN_NATIVE_CONV: 'fast' })).toThrow('WRN_NATIVE_CONV="fast" (environment): expected 1/on or 0/off');
  });
});
