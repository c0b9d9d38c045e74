// `wrn` on --backend webgpu (Dawn; SwiftShader on CI): train one tiny epoch with a checkpoint, resume it, evaluate,
// predict, bench and report, with eval and predict checked against the wasm backend on the same checkpoint.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { listWebGpuAdapters } from '@wrn/backend/node';
import { beforeAll, describe, expect, it } from 'vitest';
import { runWrn, scratchDir, type WrnResult } from './run-wrn.js';

// Debian's chromium ships SwiftShader's Vulkan driver; point Vulkan (in this process and the `wrn` children) at it.
const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
if (process.env['VK_ICD_FILENAMES'] == null && existsSync(SWIFTSHADER_ICD)) process.env['VK_ICD_FILENAMES'] = SWIFTSHADER_ICD;
process.env['XDG_RUNTIME_DIR'] ??= os.tmpdir();

const adapters = await listWebGpuAdapters();
const unavailable = adapters.adapters.length > 0 ? undefined : (adapters.error ?? 'no WebGPU adapter');
if (unavailable !== undefined) {
  if (process.env['CI']) throw new Error(`the webgpu CLI tests need a WebGPU adapter (CI installs chromium for ${SWIFTSHADER_ICD}): ${unavailable}`);
  console.log(`skipping webgpu CLI tests: ${unavailable} (install chromium for SwiftShader: ${SWIFTSHADER_ICD})`);
}

const SAMPLE_TEST_BATCH = join(__dirname, '..', 'data', 'cifar10-sample', 'test_batch.bin');

function writeCifarPng(path: string, index: number): void {
  const record = readFileSync(SAMPLE_TEST_BATCH).subarray(index * 3073, (index + 1) * 3073);
  const png = new PNG({ width: 32, height: 32 });
  for (let i = 0; i < 1024; i++) {
    png.data[i * 4] = record[1 + i]!;
    png.data[i * 4 + 1] = record[1 + 1024 + i]!;
    png.data[i * 4 + 2] = record[1 + 2048 + i]!;
    png.data[i * 4 + 3] = 255;
  }
  writeFileSync(path, PNG.sync.write(png));
}

describe('wrn --backend webgpu fails with the reason and what to install where there is no adapter', () => {
  it.skipIf(process.platform !== 'linux')('exits 1 naming Dawn, the missing adapter and the packages', async () => {
    // No Vulkan driver at all: Dawn finds no adapter.
    const result = await runWrn(['bench', '--model', 'resnet20', '--backend', 'webgpu', '--steps', '1', '--warmup', '0', '--batch-size', '1'], {
      env: { VK_ICD_FILENAMES: '/nonexistent/icd.json' },
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("--backend webgpu: Backend 'webgpu' is not available here.");
    expect(result.stderr).toContain("webgpu: Dawn (the 'webgpu' npm package) offers no WebGPU adapter");
    expect(result.stderr).toContain('npm i @tensorflow/tfjs-backend-webgpu@4.22.0 webgpu@0.6.2');
    expect(result.stderr).toContain('VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json');
  });
});

describe.skipIf(unavailable !== undefined)('wrn train -> resume -> eval -> predict -> bench -> report on --backend webgpu', () => {
  const dir = scratchDir('webgpu');
  const runDir = join(dir, 'run');
  let trained: WrnResult;

  beforeAll(async () => {
    // SwiftShader runs Vulkan on the CPU: one step of 8 images per epoch keeps each process to seconds.
    trained = await runWrn([
      'train', '--model', 'wrn-10-1', '--epochs', '1', '--batch-size', '8', '--train-limit', '8', '--test-limit', '8',
      '--backend', 'webgpu', '--run-dir', runDir, '--seed', '3',
    ]);
  });

  it('trains one epoch on the software adapter, says so, and checkpoints', () => {
    expect(trained.stderr).toContain('backend: using: webgpu on SwiftShader');
    expect(trained.stderr).toContain('a software adapter, running on the CPU');
    expect(trained.code).toBe(0);
    for (const file of ['metrics.jsonl', 'summary.json', 'report.html', 'checkpoints/last/model.json', 'checkpoints/best/state.json']) {
      expect(existsSync(join(runDir, file)), file).toBe(true);
    }
    expect(JSON.parse(readFileSync(join(runDir, 'environment.json'), 'utf8'))).toMatchObject({ backend: 'webgpu', webgpuAdapter: expect.stringMatching(/^SwiftShader driver .*, software\), maxBufferSize \d+/) });
    const epoch = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).find((m) => m.type === 'epoch');
    expect(Number.isFinite(epoch.trainLoss) && Number.isFinite(epoch.testLoss)).toBe(true);
  });

  it('resumes for a second epoch on webgpu', async () => {
    const resumed = await runWrn(['train', '--resume', runDir, '--epochs', '2']);
    expect(resumed.stderr).toContain('resuming from');
    expect(resumed.stderr).toContain('backend: using: webgpu');
    expect(resumed.code).toBe(0);
    const epochs = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((m) => m.type === 'epoch');
    expect(epochs.map((e) => e.epoch)).toEqual([1, 2]);
  });

  it('evaluates and predicts as the wasm backend does on the same checkpoint (1e-4)', async () => {
    const png = join(dir, 'first.png');
    writeCifarPng(png, 0);
    const [gpuEval, wasmEval, gpuPredict, wasmPredict] = await Promise.all([
      runWrn(['eval', '--checkpoint', join(runDir, 'checkpoints', 'last'), '--limit', '8', '--backend', 'webgpu', '--json']),
      runWrn(['eval', '--checkpoint', join(runDir, 'checkpoints', 'last'), '--limit', '8', '--backend', 'wasm', '--json']),
      runWrn(['predict', '--checkpoint', join(runDir, 'checkpoints', 'last'), '--backend', 'webgpu', '--top', '10', '--json', png]),
      runWrn(['predict', '--checkpoint', join(runDir, 'checkpoints', 'last'), '--backend', 'wasm', '--top', '10', '--json', png]),
    ]);
    for (const r of [gpuEval, wasmEval, gpuPredict, wasmPredict]) expect(r.code, r.stderr).toBe(0);
    const [g, w] = [JSON.parse(gpuEval.stdout), JSON.parse(wasmEval.stdout)];
    expect(g.examples).toBe(8);
    expect(Math.abs(g.loss - w.loss)).toBeLessThan(1e-4);
    expect(g.confusionMatrix).toEqual(w.confusionMatrix);
    type Top = { label: number; probability: number };
    const byLabel = (out: string) => new Map((JSON.parse(out)[0].top as Top[]).map((t) => [t.label, t.probability]));
    const [gp, wp] = [byLabel(gpuPredict.stdout), byLabel(wasmPredict.stdout)];
    expect(gp.size).toBe(10);
    for (const [label, p] of wp) expect(Math.abs(gp.get(label)! - p), `class ${label}`).toBeLessThan(1e-4);
  });

  it('doctor lists the adapter with its limits, and says auto skips a software one', async () => {
    const result = await runWrn(['doctor', '--json']);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.webgpu.source).toBe("Dawn (the 'webgpu' npm package)");
    const adapter = report.webgpu.adapters[0];
    expect(adapter).toMatchObject({ vendor: 'google', architecture: 'swiftshader', software: true });
    expect(adapter.maxBufferSize).toBeGreaterThanOrEqual(2 ** 28);
    expect(adapter.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(2 ** 27);
    expect(report.backends.find((b: { choice: string }) => b.choice === 'webgpu')).toMatchObject({ loads: true, name: 'webgpu' });
    expect(report.auto.name).not.toBe('webgpu');
    expect(report.auto.skipped).toContainEqual(expect.stringMatching(/^webgpu: only a software adapter, SwiftShader driver/));
    expect(report.advice.join('\n')).toContain('WebGPU has only software adapters here');
    const text = await runWrn(['doctor']);
    expect(text.stdout).toMatch(/WebGPU adapters \(Dawn \(the 'webgpu' npm package\)\)\n {2}\[--\] software {2}vendor google, architecture swiftshader, driver SwiftShader driver [\d.]+ .*maxBufferSize \d/);
  });

  it('benches and reports a webgpu run', async () => {
    const bench = await runWrn(['bench', '--model', 'wrn-10-1', '--backend', 'webgpu', '--steps', '1', '--warmup', '1', '--batch-size', '2', '--json']);
    expect(bench.code, bench.stderr).toBe(0);
    const result = JSON.parse(bench.stdout);
    expect(result).toMatchObject({ model: 'wrn-10-1', backend: 'webgpu', batchSize: 2, steps: 1 });
    expect(result.trainImagesPerSec).toBeGreaterThan(0);
    expect(result.inferImagesPerSec).toBeGreaterThan(0);
    const report = await runWrn(['report', runDir]);
    expect(report.code, report.stderr).toBe(0);
    expect(readFileSync(join(runDir, 'report.html'), 'utf8')).toContain('webgpu');
  });
});
