// PyTorch weights in real Chromium (Debian's /usr/bin/chromium driven by playwright-core; no downloaded browser):
// a page bundled from the built libraries as a user's app would bundle them (esbuild, platform browser) loads a
// torchvision resnet50 converted in Node (importTorchWeights + fileSystemIO, what `wrn convert` writes) with
// tf.loadLayersModel, and runs importTorchWeights itself on the .safetensors and the .pth bytes it fetched. Each
// way, the page's logits on real CIFAR-10 images equal torchvision's (PyTorch computes them here) to 1e-5.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { chromium, type Browser } from 'playwright-core';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { buildModel, importTorchWeights } from '@wrn/architectures';
import { fileSystemIO } from '@wrn/blocks/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error plain ESM without types: the server the app is served with (`npm run web`)
import { startServer } from '../serve.mjs';

const CHROMIUM = '/usr/bin/chromium';
const PYTHON = '/usr/bin/python3';
const APP_DIR = fileURLToPath(new URL('..', import.meta.url));
/** Real CIFAR-10 test images: ../shared/data beside the repository. */
const CIFAR_TEST = fileURLToPath(new URL('../../../../shared/data/cifar10-subset/test_batch.bin', import.meta.url));
const IMAGES = 2;
const SIZE = 64;

function probe(): string | null {
  if (!existsSync(CHROMIUM)) return `${CHROMIUM} (apt-get install chromium)`;
  if (spawnSync(PYTHON, ['-c', 'import torch, torchvision'], { stdio: 'ignore' }).status !== 0) return `${PYTHON} with torch and torchvision (apt-get install python3-torch python3-torchvision)`;
  if (!existsSync(CIFAR_TEST)) return `the CIFAR-10 images ${CIFAR_TEST}`;
  return null;
}
const missing = probe();
if (missing && process.env.CI) throw new Error(`the PyTorch-weights browser test needs ${missing}; CI must not skip it`);
if (missing) console.log(`skipping the PyTorch-weights browser test: missing ${missing}`);

/**
 * torchvision's resnet50(num_classes=10), random weights with non-trivial BatchNorm parameters and statistics,
 * saved by torch.save (.pth) and as .safetensors (written by hand: the module may be missing); the first real
 * CIFAR-10 test images upscaled to 64x64 and normalised (NHWC float32) and PyTorch's logits for them.
 */
const ORACLE = String.raw`
import json, struct, sys
import torch, torch.nn as nn, torch.nn.functional as F, torchvision
out, batch, images, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.manual_seed(18)
model = torchvision.models.resnet50(num_classes=10)
with torch.no_grad():
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn_like(m.running_mean) * 0.2)
            m.running_var.copy_(torch.rand_like(m.running_var) + 0.5)
            m.weight.copy_(torch.rand_like(m.weight) + 0.5)
            m.bias.copy_(torch.randn_like(m.bias) * 0.2)
    model.fc.bias.copy_(torch.randn(10) * 0.1)
model.eval()
state = model.state_dict()
torch.save(state, out + '/resnet50.pth')
header, chunks, offset = {}, [], 0
for name, t in state.items():
    data = t.contiguous().numpy().tobytes()
    header[name] = {'dtype': {torch.float32: 'F32', torch.int64: 'I64'}[t.dtype], 'shape': list(t.shape), 'data_offsets': [offset, offset + len(data)]}
    chunks.append(data)
    offset += len(data)
text = json.dumps(header).encode()
text += b' ' * (-len(text) % 8)
with open(out + '/resnet50.safetensors', 'wb') as f:
    f.write(struct.pack('<Q', len(text)) + text + b''.join(chunks))
raw = open(batch, 'rb').read(images * 3073)
x = torch.stack([torch.tensor(list(raw[i * 3073 + 1:(i + 1) * 3073]), dtype=torch.float32).view(3, 32, 32) for i in range(images)])
x = F.interpolate(x, size=(size, size), mode='nearest')
x = (x / 255 - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
open(out + '/input.bin', 'wb').write(x.permute(0, 2, 3, 1).contiguous().numpy().tobytes())
with torch.no_grad():
    open(out + '/logits.bin', 'wb').write(model(x).contiguous().numpy().tobytes())
`;

/** The page: everything it imports is bundled from the built packages; it exposes one function to the test. */
const PAGE_ENTRY = `
import * as tf from '@tensorflow/tfjs-core';
import { loadLayersModel } from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { buildModel, importTorchWeights } from '@wrn/architectures';
import { registerCustomLayers } from '@wrn/blocks';

registerCustomLayers();
setWasmPaths(new URL('/', location.href).href);

async function logits(model, input, images, size) {
  const y = tf.tidy(() => model.predict(tf.tensor4d(input, [images, size, size, 3])));
  const values = Array.from(await y.data());
  y.dispose();
  return values;
}

window.runTorchImport = async (backend, images, size) => {
  if (!(await tf.setBackend(backend))) throw new Error('no ' + backend + ' backend');
  const input = new Float32Array(await (await fetch('/input.bin')).arrayBuffer());
  const before = tf.memory().numTensors;
  const loaded = await loadLayersModel('/models/model.json');
  const result = { backend: tf.getBackend(), converted: await logits(loaded, input, images, size), imported: {} };
  loaded.dispose();
  for (const file of ['resnet50.safetensors', 'resnet50.pth']) {
    const bytes = new Uint8Array(await (await fetch('/' + file)).arrayBuffer());
    const model = buildModel('resnet50', { numClasses: 10, inputShape: [size, size, 3] });
    const report = await importTorchWeights(model, bytes, { file });
    result.imported[file] = { format: report.format, source: report.source, tensorsLoaded: report.tensorsLoaded, logits: await logits(model, input, images, size) };
    model.dispose();
  }
  result.leaked = tf.memory().numTensors - before;
  return result;
};
window.pageReady = true;
`;

interface PageResult {
  backend: string;
  converted: number[];
  imported: Record<string, { format: string; source: string; tensorsLoaded: number; logits: number[] }>;
  leaked: number;
}
declare global {
  interface Window {
    runTorchImport(backend: string, images: number, size: number): Promise<PageResult>;
    pageReady?: boolean;
  }
}

/** max |a - b| / max |b|: the error relative to the scale of the reference. */
function maxRelativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  expect(actual.length).toBe(expected.length);
  let scale = 0;
  let error = 0;
  for (let i = 0; i < expected.length; i++) {
    scale = Math.max(scale, Math.abs(expected[i]!));
    error = Math.max(error, Math.abs(actual[i]! - expected[i]!));
  }
  return error / scale;
}

function readFloats(path: string): Float32Array {
  const buffer = readFileSync(path);
  return new Float32Array(buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength));
}

describe.skipIf(missing != null)('PyTorch weights in Chromium', () => {
  let root = '';
  let browser: Browser;
  let server: { url: string; close(): Promise<void> };
  let torchLogits: Float32Array;

  beforeAll(async () => {
    // Inside the app's folder, so that bare imports resolve through the workspace's node_modules like a user's app.
    root = mkdtempSync(join(APP_DIR, '.bundle-check-torch-'));
    const modelsDir = join(root, 'models');
    execFileSync(PYTHON, ['-c', ORACLE, root, CIFAR_TEST, String(IMAGES), String(SIZE)], { env: { ...process.env, OMP_NUM_THREADS: '2' } });
    torchLogits = readFloats(join(root, 'logits.bin'));
    // The converted model directory, written in Node as `wrn convert` writes it.
    await tf.setBackend('cpu');
    const model = buildModel('resnet50', { numClasses: 10, inputShape: [SIZE, SIZE, 3] });
    const pth = readFileSync(join(root, 'resnet50.pth'));
    await importTorchWeights(model, new Uint8Array(pth.buffer, pth.byteOffset, pth.byteLength));
    await model.save(fileSystemIO(modelsDir));
    model.dispose();
    writeFileSync(join(root, 'page.js'), PAGE_ENTRY);
    await esbuild.build({ entryPoints: [join(root, 'page.js')], bundle: true, platform: 'browser', format: 'esm', outfile: join(root, 'bundle.js'), logLevel: 'error' });
    const wasmDist = dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
    for (const file of ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm-threaded-simd.wasm']) copyFileSync(join(wasmDist, file), join(root, file));
    writeFileSync(join(root, 'index.html'), '<!doctype html><meta charset="utf-8"><title>torch import</title><script type="module" src="/bundle.js"></script>');
    server = await startServer({ root, port: 0, models: modelsDir });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  for (const backend of ['wasm'] as const) {
    it(`on ${backend}: the converted model and importTorchWeights on .safetensors and .pth bytes give torchvision's logits`, async () => {
      const context = await browser.newContext();
      try {
        const page = await context.newPage();
        const errors: string[] = [];
        page.on('pageerror', (error) => errors.push(error.message));
        await page.goto(server.url);
        await page.waitForFunction(() => window.pageReady === true);
        const result = await page.evaluate(([b, n, s]) => window.runTorchImport(b, n, s), [backend, IMAGES, SIZE] as const);
        expect(errors).toEqual([]);
        expect(result.backend).toBe(backend);
        const converted = maxRelativeError(result.converted, torchLogits);
        const lines = [`converted model.json ${converted.toExponential(2)}`];
        expect(converted, 'tf.loadLayersModel of the converted directory').toBeLessThan(1e-5);
        for (const [file, format] of [['resnet50.safetensors', 'safetensors'], ['resnet50.pth', 'pth']] as const) {
          const imported = result.imported[file]!;
          expect(imported).toMatchObject({ format, source: 'torchvision', tensorsLoaded: 267 });
          const error = maxRelativeError(imported.logits, torchLogits);
          lines.push(`importTorchWeights(${file}) ${error.toExponential(2)}`);
          expect(error, `importTorchWeights on ${file} in the page`).toBeLessThan(1e-5);
        }
        console.log(`Chromium ${browser.version()} on ${backend}, torchvision resnet50 at ${SIZE}x${SIZE}, max relative error of the logits vs PyTorch: ${lines.join('; ')}`);
        expect(result.leaked).toBe(0);
      } finally {
        await context.close();
      }
    });
  }
});
