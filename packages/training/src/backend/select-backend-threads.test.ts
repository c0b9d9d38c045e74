import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { selectBackend } from './select-backend';

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
    expect(picked.reason).toBe(
      "using: wasm (XNNPACK, SIMD, 2 threads) with @wrn's training kernels, checked against a direct computation",
    );
  });
});
