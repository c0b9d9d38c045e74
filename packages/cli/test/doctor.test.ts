import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runWrn, scratchDir } from './run-wrn.js';

const nativeInstalled = (() => {
  try {
    createRequire(import.meta.url).resolve('@tensorflow/tfjs-node-gpu');
    return true;
  } catch {
    return false;
  }
})();

describe('wrn doctor', () => {
  it('takes the wasm thread count from WRN_WASM_THREADS, and exits 2 naming a bad value', async () => {
    const one = await runWrn(['doctor', '--json'], { env: { WRN_WASM_THREADS: '1' } });
    expect(one.code, `signal ${one.signal}, stderr: ${one.stderr}`).toBe(0);
    const wasm = JSON.parse(one.stdout).backends.find((b: { choice: string }) => b.choice === 'wasm');
    expect(wasm.detail).toContain('SIMD, 1 thread)');
    const bad = await runWrn(['train', '--epochs', '1', '--dry-run'], { env: { WRN_WASM_THREADS: 'many' } });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(`WRN_WASM_THREADS="many" (environment): expected 'auto' or an integer from 1 to 8`);
  });

  it('says whether the wasm backend runs its convolutions on @wrn/native, and exits 2 naming a bad WRN_NATIVE_CONV', async () => {
    const on = await runWrn(['doctor', '--json']);
    expect(on.code, `signal ${on.signal}, stderr: ${on.stderr}`).toBe(0);
    const wasmOn = JSON.parse(on.stdout).backends.find((b: { choice: string }) => b.choice === 'wasm');
    expect(wasmOn.nativeConv).toMatchObject({ used: true });
    expect(wasmOn.detail).toMatch(/convolutions native \(@wrn\/native, (avx512f|avx2\+fma|portable), \d+ threads?\)/);
    const off = await runWrn(['doctor', '--json'], { env: { WRN_NATIVE_CONV: '0' } });
    const reportOff = JSON.parse(off.stdout);
    const wasmOff = reportOff.backends.find((b: { choice: string }) => b.choice === 'wasm');
    expect(wasmOff.nativeConv).toEqual({ used: false, why: 'off (WRN_NATIVE_CONV=0)' });
    expect(wasmOff.detail).toContain('convolutions on XNNPACK (native ones off (WRN_NATIVE_CONV=0))');
    // Turned off on purpose: no advice to rebuild it.
    expect(reportOff.advice.join('\n')).not.toContain('npm rebuild @wrn/native');
    const bad = await runWrn(['train', '--epochs', '1', '--dry-run'], { env: { WRN_NATIVE_CONV: 'fast' } });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('WRN_NATIVE_CONV="fast" (environment): expected 1/on or 0/off');
  });

  it('reports each backend, finds CUDA libraries on LD_LIBRARY_PATH and shows the mirror variables', async () => {
    const libDir = scratchDir('cuda-libs');
    writeFileSync(join(libDir, 'libcudart.so.11.0'), '');
    writeFileSync(join(libDir, 'libcudnn.so.8'), '');
    const result = await runWrn(['doctor', '--json'], {
      env: { LD_LIBRARY_PATH: libDir, TFJS_NODE_CDN_STORAGE: 'https://mirror.example/' },
    });
    // stderr in the message: an exit without a report has to say why.
    expect(result.code, `signal ${result.signal}, stderr: ${result.stderr}`).toBe(0);
    const report = JSON.parse(result.stdout);
    const byChoice = Object.fromEntries(report.backends.map((b: { choice: string }) => [b.choice, b]));
    expect(byChoice.wasm).toMatchObject({ loads: true, name: 'wasm' });
    expect(byChoice.cpu).toMatchObject({ loads: true, name: 'cpu' });
    if (!nativeInstalled) {
      expect(byChoice.tensorflow.loads).toBe(false);
      expect(byChoice.tensorflow.error).toContain('@tensorflow/tfjs-node-gpu');
      expect(report.auto).toMatchObject({ loads: true, name: 'wasm' });
      expect(report.advice.join('\n')).toContain('npm i @tensorflow/tfjs-node-gpu');
    }
    const libraries = Object.fromEntries(report.cudaLibraries.map((l: { file: string; path?: string }) => [l.file, l.path]));
    expect(libraries['libcudart.so.11.0']).toBe(join(libDir, 'libcudart.so.11.0'));
    expect(libraries['libcudnn.so.8']).toBe(join(libDir, 'libcudnn.so.8'));
    expect(typeof report.gpu.visible).toBe('boolean');
    if (!report.gpu.visible) expect(report.gpu.reason).toMatch(/nvidia-smi/);
    expect(report.mirrors).toContainEqual(expect.objectContaining({ name: 'TFJS_NODE_CDN_STORAGE', value: 'https://mirror.example/' }));
  });

  it('prints a readable report with advice', async () => {
    const result = await runWrn(['doctor'], { env: { LD_LIBRARY_PATH: '' } });
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/\[ok\] wasm\s+loads as wasm/);
    expect(result.stdout).toContain('libcudart.so.11.0');
    expect(result.stdout).toContain('TFJS_NODE_CDN_STORAGE');
    // Each library line says where it was found or that it was not.
    expect(result.stdout).toMatch(/\[(ok|--)\] libcudnn\.so\.8\s+(not found \(cuDNN 8\)|\/\S+)/);
  });
});
