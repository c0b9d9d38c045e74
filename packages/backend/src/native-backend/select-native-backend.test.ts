import * as tf from '@tensorflow/tfjs-core';
import { loadNativeConvKernels } from '@wrn/native';
import { describe, expect, it } from 'vitest';
import { selectBackend } from '../select-backend';
import { BackendUnavailableError } from '../selection';

// selectBackend('wrn-native'): the backend it makes active, what it says, and why it refuses without @wrn/native.
const load = loadNativeConvKernels();
if (!load.ok) {
  if (process.env['CI']) throw new Error(`selectBackend('wrn-native'): @wrn/native does not load: ${load.reason}`);
  console.warn(`skipping selectBackend('wrn-native'): @wrn/native does not load (${load.reason})`);
}

describe("selectBackend('wrn-native')", () => {
  it.skipIf(!load.ok)('makes wrn-native active, says so with the ISA and threads, and trains a conv correctly there', async () => {
    const picked = await selectBackend('wrn-native');
    expect(tf.getBackend()).toBe('wrn-native');
    expect(picked.name).toBe('wrn-native');
    expect(picked.nativeConv).toEqual({ used: true, isa: load.ok ? load.kernels.isa : '', threads: load.ok ? load.kernels.threads : 0 });
    expect(picked.reason).toMatch(/^using wrn-native: tensors in ordinary memory \(no 4 GB wasm heap\), kernels on @wrn\/native \(\S+, \d+ threads?\)/);
    expect(picked.tried).toEqual([{ name: 'wrn-native', ok: true }]);
  });

  it('refuses without @wrn/native, naming it and what to do', async () => {
    const withoutNative = (specifier: string) =>
      specifier === '@wrn/native' ? Promise.reject(new Error("Cannot find package '@wrn/native'")) : import(/* @vite-ignore */ specifier);
    const attempt = selectBackend('wrn-native', { importModule: withoutNative });
    await expect(attempt).rejects.toBeInstanceOf(BackendUnavailableError);
    await expect(attempt).rejects.toThrow(
      "Backend 'wrn-native' is not available here.\n  wrn-native: @wrn/native is not installed (@wrn/native: Cannot find package '@wrn/native')\nIt needs @wrn/native",
    );
  });
});
