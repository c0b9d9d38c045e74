import * as tf from '@tensorflow/tfjs-core';
import os from 'node:os';
import { afterAll, describe, expect, it } from 'vitest';
import { BackendUnavailableError, checkConvGradients, selectBackend, TENSORFLOW_INSTALL_ADVICE, wasmThreadsFromEnv } from './node';
import { wasmTrainingKernelsRegistered } from './wasm/training-kernels';

const realImport = (specifier: string): Promise<unknown> => import(/* @vite-ignore */ specifier);

afterAll(async () => {
  await tf.setBackend('cpu');
});

describe('selectBackend', () => {
  it("'tensorflow' fails here with each package's reason and the install advice", async () => {
    const error = await selectBackend('tensorflow').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(BackendUnavailableError);
    const failure = error as BackendUnavailableError;
    expect(failure.choice).toBe('tensorflow');
    expect(failure.tried.map((t) => [t.name, t.ok])).toEqual([
      ['@tensorflow/tfjs-node-gpu', false],
      ['@tensorflow/tfjs-node', false],
    ]);
    expect(failure.tried[0]!.error).toMatch(/^cannot load: .*@tensorflow\/tfjs-node-gpu/);
    expect(failure.message).toContain("Backend 'tensorflow' is not available here.");
    expect(failure.message).toContain('CUDA 11.2 and cuDNN 8.1');
    expect(failure.message).toContain(`npm i @tensorflow/tfjs-node@${tf.version_core}`);
    expect(failure.message).toContain('TFJS_NODE_CDN_STORAGE');
    expect(failure.advice).toBe(TENSORFLOW_INSTALL_ADVICE);
  });

  it("'auto' records why native TensorFlow was skipped and picks wasm with the training kernels", async () => {
    const picked = await selectBackend('auto');
    expect(picked.name).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(wasmTrainingKernelsRegistered()).toBe(true);
    // No hardware WebGPU adapter here (none, or SwiftShader on CI): auto skips webgpu and says why.
    expect(picked.tried.map((t) => [t.name, t.ok])).toEqual([
      ['@tensorflow/tfjs-node-gpu', false],
      ['@tensorflow/tfjs-node', false],
      ['webgpu', false],
      ['wasm', true],
    ]);
    expect(picked.tried[2]!.error).toMatch(/^(only a software adapter, SwiftShader driver .* auto skips it \(--backend webgpu uses it\)|Dawn found no adapter)/);
    // By default the wasm backend gets one thread when the native convolutions (which use every core) load,
    // else a thread per core (up to 8).
    const threads = picked.nativeConv?.used ? 1 : Math.min(8, os.availableParallelism());
    expect(picked.nativeConv?.used).toBe(true);
    expect(picked.wasmThreads).toBe(threads);
    expect(picked.reason).toMatch(/^auto picked, native TensorFlow not installed, (no WebGPU adapter|only a software WebGPU adapter): wasm \(XNNPACK, SIMD, /);
    expect(picked.reason).toContain(`wasm (XNNPACK, SIMD, ${threads} thread`);
  });

  it("'wasm' and 'cpu' make that backend active", async () => {
    const wasm = await selectBackend('wasm');
    expect([wasm.name, tf.getBackend(), wasm.tried.length]).toEqual(['wasm', 'wasm', 1]);
    const cpu = await selectBackend('cpu');
    expect([cpu.name, tf.getBackend(), cpu.reason]).toEqual(['cpu', 'cpu', 'using the pure-JS cpu backend']);
  });

  it("'auto' falls back to cpu when wasm cannot load, saying why", async () => {
    const withoutWasm = (specifier: string) =>
      specifier === '@tensorflow/tfjs-backend-wasm' ? Promise.reject(new Error('wasm binary missing')) : realImport(specifier);
    const picked = await selectBackend('auto', { importModule: withoutWasm });
    expect(picked.name).toBe('cpu');
    expect(picked.tried[3]).toEqual({
      name: 'wasm',
      ok: false,
      error: 'cannot load @tensorflow/tfjs-backend-wasm: wasm binary missing',
    });
    expect(picked.reason).toContain('auto fell back to the pure-JS cpu backend');
  });

  it('refuses a native binding built on another tfjs-core version or copy', async () => {
    const otherVersion = (specifier: string) =>
      specifier.startsWith('@tensorflow/tfjs-node') ? Promise.resolve({ version_core: '3.21.0' }) : realImport(specifier);
    const picked = await selectBackend('auto', { importModule: otherVersion });
    expect(picked.tried[0]!.error).toBe(
      `it uses @tensorflow/tfjs-core 3.21.0 but @wrn uses ${tf.version_core}; install @tensorflow/tfjs-node-gpu@${tf.version_core}`,
    );
    class OtherTensor {}
    const otherCopy = (specifier: string) =>
      specifier.startsWith('@tensorflow/tfjs-node') ? Promise.resolve({ version_core: tf.version_core, Tensor: OtherTensor }) : realImport(specifier);
    await expect(selectBackend('tensorflow', { importModule: otherCopy })).rejects.toThrow(
      'loaded a second copy of @tensorflow/tfjs-core; run `npm dedupe`',
    );
  });

  it('names an unknown choice', async () => {
    await expect(selectBackend('gpu' as never)).rejects.toThrow(
      'selectBackend: unknown backend "gpu"; expected one of auto, tensorflow, webgpu, wasm, cpu, wrn-native',
    );
  });

  it('the gradient self-check passes on wasm and cpu and leaks nothing', async () => {
    for (const name of ['wasm', 'cpu']) {
      await tf.setBackend(name);
      const before = tf.memory().numTensors;
      expect(checkConvGradients()).toBeUndefined();
      expect(tf.memory().numTensors).toBe(before);
    }
  });
});

describe('wasmThreadsFromEnv', () => {
  it('reads WRN_WASM_THREADS as auto or 1..8, and nothing when unset or empty', () => {
    expect(wasmThreadsFromEnv({})).toBeUndefined();
    expect(wasmThreadsFromEnv({ WRN_WASM_THREADS: '  ' })).toBeUndefined();
    expect(wasmThreadsFromEnv({ WRN_WASM_THREADS: 'auto' })).toBe('auto');
    expect(wasmThreadsFromEnv({ WRN_WASM_THREADS: ' 1 ' })).toBe(1);
    expect(wasmThreadsFromEnv({ WRN_WASM_THREADS: '8' })).toBe(8);
  });

  it('names the variable, the value and what is allowed for a bad value', () => {
    for (const bad of ['0', '9', '1.5', 'two']) {
      expect(() => wasmThreadsFromEnv({ WRN_WASM_THREADS: bad })).toThrow(
        `WRN_WASM_THREADS="${bad}" (environment): expected 'auto' or an integer from 1 to 8`,
      );
    }
  });
});
