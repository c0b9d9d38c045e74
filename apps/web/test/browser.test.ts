// The web app in real Chromium (Debian's /usr/bin/chromium driven by playwright-core; no downloaded browser): it
// loads, trains on wasm and on webgl (SwiftShader, no GPU) with the loss falling, classifies a real CIFAR-10 test
// image picked as a PNG file, and a run saved in IndexedDB comes back after a reload with equal outputs. A
// screenshot of each state goes to apps/web/test-output/.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { PNG } from 'pngjs';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { buildModel } from '@wrn/architectures';
import { fileSystemIO } from '@wrn/blocks/node';
import { normalizeBatch, PAPER_NORMALIZATION } from '@wrn/datasets';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error plain ESM without types: the server the app is served with (`npm run web`)
import { startServer } from '../serve.mjs';

const CHROMIUM = '/usr/bin/chromium';
const APP_DIR = fileURLToPath(new URL('..', import.meta.url));
const DIST = join(APP_DIR, 'dist');
const OUTPUT = join(APP_DIR, 'test-output');
const SAMPLE_TEST = fileURLToPath(new URL('../../../packages/cli/data/cifar10-sample/test_batch.bin', import.meta.url));

const missing = !existsSync(CHROMIUM) ? `${CHROMIUM} (apt-get install chromium)` : !existsSync(join(DIST, 'index.html')) ? `${DIST} (npx nx run @wrn/web:build)` : null;
if (missing && process.env.CI) throw new Error(`browser tests need ${missing}; CI must not skip them`);
if (missing) console.log(`skipping the browser tests: missing ${missing}`);

type Status = {
  backend: string | null;
  backendDescription: string | null;
  crossOriginIsolated: boolean;
  position: { epoch: number; iteration: number; globalStep: number } | null;
  running: boolean;
  losses: number[];
  imagesPerSec: number[];
  savedStep: number | null;
  top5: Array<{ label: string; p: number }>;
  error: string | null;
  numTensors: number;
};
type App = {
  ready: Promise<void>;
  status(): Status;
  train(steps: number): Promise<Status>;
  predictTest(indices: number[]): Promise<number[]>;
  testLabels(indices: number[]): number[];
  fixedBatchLoss(count?: number): Promise<number>;
};
declare global {
  interface Window {
    wrnApp: App;
  }
}

let browser: Browser;
let server: { url: string; close(): Promise<void> };
// A model saved the way `wrn train` saves checkpoints (fileSystemIO: model.json + weights.bin), served under /models/.
const modelsDir = mkdtempSync(join(tmpdir(), 'wrn-web-models-'));
const CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];

/** Test image 0 of the sample as a PNG file, and its pixels. */
function cifarTestPng(): { file: string; pixels: Uint8Array; label: number } {
  const record = readFileSync(SAMPLE_TEST).subarray(0, 3073);
  const png = new PNG({ width: 32, height: 32 });
  const pixels = new Uint8Array(3072);
  for (let p = 0; p < 1024; p++) {
    const rgb = [record[1 + p]!, record[1 + 1024 + p]!, record[1 + 2048 + p]!];
    png.data.set([...rgb, 255], 4 * p);
    pixels.set(rgb, 3 * p);
  }
  const file = join(OUTPUT, 'cifar10-test-0.png');
  writeFileSync(file, PNG.sync.write(png));
  return { file, pixels, label: record[0]! };
}

async function openApp(context: BrowserContext, query: string): Promise<Page> {
  const page = await context.newPage();
  page.on('pageerror', (error) => console.log(`page error: ${error.message}`));
  await page.goto(`${server.url}?${query}`);
  await ready(page);
  return page;
}

async function ready(page: Page): Promise<Status> {
  await page.waitForFunction(() => window.wrnApp?.ready != null);
  await page.evaluate(() => window.wrnApp.ready);
  const status = await page.evaluate(() => window.wrnApp.status());
  expect(status.error).toBeNull();
  return status;
}

const shot = (page: Page, name: string) => page.screenshot({ path: join(OUTPUT, `${name}.png`), fullPage: true });

/** Trains `steps` steps through the page and checks that the loss on the training images fell. */
async function trainAndCheck(page: Page, steps: number, lossImages: number) {
  await page.evaluate(() => window.wrnApp.train(0)); // builds the model, takes no step
  const before = await page.evaluate((n) => window.wrnApp.fixedBatchLoss(n), lossImages);
  const status = await page.evaluate((n) => window.wrnApp.train(n), steps);
  const after = await page.evaluate((n) => window.wrnApp.fixedBatchLoss(n), lossImages);
  expect(status.error).toBeNull();
  expect(status.position!.globalStep).toBe(steps);
  expect(status.losses).toHaveLength(steps);
  expect(status.losses.every(Number.isFinite)).toBe(true);
  console.log(`${status.backendDescription}: loss on the ${lossImages} training images ${before.toFixed(4)} -> ${after.toFixed(4)} after ${steps} steps; step losses ${status.losses.map((l) => l.toFixed(3)).join(' ')}; img/s ${status.imagesPerSec.map((r) => r.toFixed(1)).join(' ')}`);
  expect(after).toBeLessThan(before * 0.9);
  return status;
}

describe.skipIf(missing != null)('the web app in Chromium', () => {
  beforeAll(async () => {
    mkdirSync(OUTPUT, { recursive: true });
    server = await startServer({ root: DIST, port: 0, models: modelsDir });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        // WebGL without a GPU: ANGLE on SwiftShader, the CPU implementation Chromium ships.
        '--use-angle=swiftshader',
        '--enable-unsafe-swiftshader',
      ],
    });
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    rmSync(modelsDir, { recursive: true, force: true });
  });

  it('loads, parses the sample and picks a backend, cross-origin isolated', async () => {
    const context = await browser.newContext();
    const page = await openApp(context, '');
    const status = await page.evaluate(() => window.wrnApp.status());
    expect(status.crossOriginIsolated).toBe(true);
    // No GPU here: WebGPU has no adapter, so the best backend left is WebGL on SwiftShader.
    expect(status.backend).toBe('webgl');
    expect(status.backendDescription).toContain('not webgpu');
    await expect(page.textContent('#data-status')).resolves.toContain('2000 training and 500 test images');
    await shot(page, '1-loaded');
    await context.close();
  });

  describe('on wasm', () => {
    let context: BrowserContext;
    let page: Page;
    const query = 'backend=wasm&model=wrn-16-1&trainLimit=64&testLimit=100&augment=none&saveEvery=4';
    beforeAll(async () => {
      context = await browser.newContext();
      page = await openApp(context, query);
      await page.fill('#batch', '16');
      await page.fill('#epochs', '10');
    });
    afterAll(() => context?.close());

    it('trains with the loss falling, threaded, without leaking tensors', async () => {
      const status = await trainAndCheck(page, 12, 64);
      expect(status.backendDescription).toMatch(/^wasm \(\d threads?, @wrn training kernels\)/);
      expect(status.savedStep).toBe(12);
      const tensors = status.numTensors;
      const more = await page.evaluate(() => window.wrnApp.train(4));
      expect(more.numTensors).toBe(tensors);
      await expect(page.textContent('[data-testid=train-status]')).resolves.toMatch(/step 16\/40 .*test accuracy/);
      await shot(page, '2-wasm-trained');
    });

    it('classifies a real CIFAR-10 test image picked as a PNG, as it classifies the parsed .bin', async () => {
      // Test image 0 of the sample, written as a PNG: the page decodes it, draws it at 32x32 and classifies it.
      const { file, label } = cifarTestPng();
      await page.setInputFiles('#image-file', file);
      await page.waitForFunction(() => window.wrnApp.status().top5.length === 5);
      const { top5 } = await page.evaluate(() => window.wrnApp.status());
      const probs = await page.evaluate(() => window.wrnApp.predictTest([0]));
      const expected = probs.map((p, i) => ({ label: CLASSES[i]!, p })).sort((a, b) => b.p - a.p).slice(0, 5);
      expect(top5.map((t) => t.label)).toEqual(expected.map((t) => t.label));
      top5.forEach((t, i) => expect(Math.abs(t.p - expected[i]!.p)).toBeLessThan(1e-5));
      expect(await page.locator('#top5 li').count()).toBe(5);
      console.log(`CIFAR-10 test image 0 (${CLASSES[label]}): ${top5.map((t) => `${t.label} ${(100 * t.p).toFixed(1)}%`).join(', ')}`);
      await shot(page, '3-classified');
    });

    it('comes back from IndexedDB after a reload with equal outputs, and trains on', async () => {
      const before = await page.evaluate(() => window.wrnApp.status());
      const outputs = await page.evaluate(() => window.wrnApp.predictTest([0, 1, 2, 3, 4, 5, 6, 7]));
      await page.reload();
      const after = await ready(page);
      expect(after.position).toEqual(before.position);
      expect(after.losses).toEqual(before.losses);
      const again = await page.evaluate(() => window.wrnApp.predictTest([0, 1, 2, 3, 4, 5, 6, 7]));
      expect(Math.max(...again.map((v, i) => Math.abs(v - outputs[i]!)))).toBe(0);
      await expect(page.textContent('[data-testid=train-status]')).resolves.toContain('paused');
      await shot(page, '4-reloaded');
      const resumed = await page.evaluate(() => window.wrnApp.train(2));
      expect(resumed.position!.globalStep).toBe(before.position!.globalStep + 2);
      expect(resumed.error).toBeNull();
    });

    it('classifies with a model saved by fileSystemIO, loaded from a model.json URL and from picked files', async () => {
      // The oracle: the same model on TF.js's cpu backend in Node, on the same pixels.
      await tf.setBackend('cpu');
      const model = buildModel('wrn-10-1', { numClasses: 10, seed: 5 });
      await model.save(fileSystemIO(modelsDir));
      const { file, pixels } = cifarTestPng();
      const expected = tf.tidy(() => {
        const x = normalizeBatch(tf.tensor4d(Float32Array.from(pixels), [1, 32, 32, 3]), PAPER_NORMALIZATION.cifar10);
        return Array.from(tf.softmax(model.predict(x) as tf.Tensor2D).dataSync());
      });
      model.dispose();
      const top = expected.map((p, i) => ({ label: CLASSES[i]!, p })).sort((a, b) => b.p - a.p).slice(0, 5);

      for (const source of ['url', 'files'] as const) {
        await page.check(`input[name=source][value=${source}]`);
        if (source === 'url') await page.fill('#model-url', `${server.url}models/model.json`);
        else await page.setInputFiles('#model-files', [join(modelsDir, 'model.json'), join(modelsDir, 'weights.bin')]);
        await page.click('#load-model');
        await page.waitForFunction(() => document.getElementById('model-status')!.textContent!.startsWith('loaded'));
        await page.evaluate(() => document.getElementById('top5')!.replaceChildren());
        await page.setInputFiles('#image-file', []);
        await page.setInputFiles('#image-file', file);
        await page.waitForFunction(() => document.querySelectorAll('#top5 li').length === 5);
        const { top5 } = await page.evaluate(() => window.wrnApp.status());
        expect(top5.map((t) => t.label)).toEqual(top.map((t) => t.label));
        top5.forEach((t, i) => expect(Math.abs(t.p - top[i]!.p)).toBeLessThan(1e-4));
      }
      await shot(page, '6-loaded-model');
    });
  });

  it('trains on webgl (SwiftShader) with the loss falling', async () => {
    const context = await browser.newContext();
    const page = await openApp(context, 'backend=webgl&model=wrn-10-1&trainLimit=8&testLimit=8&augment=none');
    await page.fill('#batch', '4');
    const status = await trainAndCheck(page, 4, 8);
    expect(status.backend).toBe('webgl');
    await shot(page, '5-webgl-trained');
    await context.close();
  });
});
