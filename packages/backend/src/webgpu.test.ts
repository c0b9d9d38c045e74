import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { BackendUnavailableError, selectBackend } from './node';
import { adapterLabel, describeAdapter, isSoftwareAdapter, listWebGpuAdapters, WEBGPU_INSTALL_ADVICE } from './webgpu';

describe('webgpu adapters', () => {
  it("the main entry's list in Node, without Dawn handed in, says where Dawn is and loads nothing", async () => {
    // Before anything in this file sets up navigator.gpu: the browser-safe module never imports Dawn itself.
    expect((globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu).toBeUndefined();
    expect(await listWebGpuAdapters()).toEqual({
      source: 'navigator.gpu',
      adapters: [],
      error: "navigator.gpu is missing: in Node, WebGPU comes from Dawn through @wrn/backend/node's selectBackend and listWebGpuAdapters",
    });
    expect((globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu).toBeUndefined();
  });

  it('tells software adapters (SwiftShader, lavapipe, WARP, the fallback flag) from hardware ones', () => {
    // What Dawn reports for SwiftShader here, and for a few well-known adapters.
    expect(isSoftwareAdapter({ vendor: 'google', architecture: 'swiftshader', description: 'SwiftShader driver 5.0.0' })).toBe(true);
    expect(isSoftwareAdapter({ vendor: 'mesa', description: 'llvmpipe (LLVM 15.0.6, 256 bits)' })).toBe(true);
    expect(isSoftwareAdapter({ description: 'Microsoft Basic Render Driver' })).toBe(true);
    expect(isSoftwareAdapter({ vendor: 'nvidia', architecture: 'hopper', isFallbackAdapter: true })).toBe(true);
    expect(isSoftwareAdapter({ vendor: 'nvidia', architecture: 'hopper', description: 'NVIDIA: 550.54.15' })).toBe(false);
    expect(isSoftwareAdapter({ vendor: 'apple', architecture: 'metal-3', description: '' })).toBe(false);
  });

  it('describes an adapter with its limits and labels it', () => {
    const report = describeAdapter(
      { info: { vendor: 'google', architecture: 'swiftshader', device: 'swiftshader-device-subzero-', description: 'SwiftShader driver 5.0.0' }, limits: { maxBufferSize: 2 ** 30, maxStorageBufferBindingSize: 2 ** 27 } },
      'high-performance',
    );
    expect(report).toEqual({
      request: 'high-performance',
      vendor: 'google',
      architecture: 'swiftshader',
      device: 'swiftshader-device-subzero-',
      description: 'SwiftShader driver 5.0.0',
      software: true,
      maxBufferSize: 2 ** 30,
      maxStorageBufferBindingSize: 2 ** 27,
    });
    expect(adapterLabel(report)).toBe('SwiftShader driver 5.0.0 (google swiftshader, software)');
  });

  it("'webgpu' without Dawn's package fails with the reason and what to install", async () => {
    const withoutDawn = (specifier: string) =>
      specifier === 'webgpu' ? Promise.reject(new Error("Cannot find package 'webgpu' imported from /x/y.js")) : import(/* @vite-ignore */ specifier);
    const error = await selectBackend('webgpu', { importModule: withoutDawn }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(BackendUnavailableError);
    const failure = error as BackendUnavailableError;
    expect(failure.tried).toEqual([{ name: 'webgpu', ok: false, error: "cannot load Dawn's Node binding (the 'webgpu' package): Cannot find package 'webgpu'" }]);
    expect(failure.advice).toBe(WEBGPU_INSTALL_ADVICE);
    expect(failure.message).toContain(`npm i @tensorflow/tfjs-backend-webgpu@${tf.version_core} webgpu@0.6.2`);
    expect(failure.message).toContain('VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json');
  });
});
