import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { initWasmBackendWithThreads } from './threads';
import { registerWasmTrainingKernels } from './training-kernels';

function stridedConvGradients(): Float32Array[] {
  return tf.tidy(() => {
    const x = tf.tensor4d(Array.from({ length: 2 * 9 * 9 * 3 }, (_, i) => Math.sin(i)), [2, 9, 9, 3]);
    const f = tf.tensor4d(Array.from({ length: 3 * 3 * 3 * 4 }, (_, i) => Math.cos(i)), [3, 3, 3, 4]);
    const grads = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same'))));
    return grads([x, f]).map((g) => g.dataSync() as Float32Array);
  });
}

describe('initWasmBackendWithThreads', () => {
  it('rejects a thread count outside 1..8, naming it', async () => {
    await expect(initWasmBackendWithThreads(0)).rejects.toThrow('threads must be an integer from 1 to 8, got 0');
  });

  it("runs the threaded build on 2 threads, restores what it patched, and trains like the cpu backend", async () => {
    registerWasmTrainingKernels();
    const cpusBefore = os.cpus().length;
    const blobBefore = globalThis.Blob;
    const result = await initWasmBackendWithThreads(2);
    expect(result).toEqual({ threads: 2 });
    expect(tf.getBackend()).toBe('wasm');
    expect(os.cpus().length).toBe(cpusBefore);
    expect(globalThis.Blob).toBe(blobBefore);

    const before = tf.memory().numTensors;
    const onWasm = stridedConvGradients();
    expect(tf.memory().numTensors).toBe(before);
    await tf.setBackend('cpu');
    const onCpu = stridedConvGradients();
    onWasm.forEach((g, i) => {
      const reference = onCpu[i]!;
      const scale = Math.max(...reference.map(Math.abs));
      const worst = Math.max(...g.map((v, j) => Math.abs(v - reference[j]!)));
      expect(worst / scale).toBeLessThan(1e-4);
    });

    const again = await initWasmBackendWithThreads(2);
    expect(again.error).toBe('the wasm backend was already initialised; threads are fixed at initialisation');
  });
});
