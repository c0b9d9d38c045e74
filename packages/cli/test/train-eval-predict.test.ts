import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { chromium } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { NO_SHARED_DATA, runWrn, scratchDir, SHARED_SUBSET, type WrnResult } from './run-wrn.js';

const SAMPLE_TEST_BATCH = join(__dirname, '..', 'data', 'cifar10-sample', 'test_batch.bin');
const CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];

/** Record `index` of a CIFAR-10 binary file as RGBA pixels (each record: label byte, 1024 R, 1024 G, 1024 B). */
function cifarImage(file: string, index: number, scale = 1): { label: number; width: number; height: number; rgba: Buffer } {
  const bytes = readFileSync(file);
  const record = bytes.subarray(index * 3073, (index + 1) * 3073);
  const side = 32 * scale;
  const rgba = Buffer.alloc(side * side * 4);
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const source = Math.floor(y / scale) * 32 + Math.floor(x / scale);
      const target = (y * side + x) * 4;
      rgba[target] = record[1 + source]!;
      rgba[target + 1] = record[1 + 1024 + source]!;
      rgba[target + 2] = record[1 + 2048 + source]!;
      rgba[target + 3] = 255;
    }
  }
  return { label: record[0]!, width: side, height: side, rgba };
}

function writePng(path: string, image: { width: number; height: number; rgba: Buffer }): void {
  const png = new PNG({ width: image.width, height: image.height });
  image.rgba.copy(png.data);
  writeFileSync(path, PNG.sync.write(png));
}

describe('wrn train -> eval -> predict -> report, on real CIFAR-10 images (wasm backend)', () => {
  const dir = scratchDir('e2e');
  const runDir = join(dir, 'run');
  let trained: WrnResult;

  beforeAll(async () => {
    // A tiny WRN (depth 10, width 1) on 256 images of the embedded sample: one epoch in seconds.
    trained = await runWrn([
      'train', '--model', 'wrn-10-1', '--epochs', '1', '--batch-size', '32', '--train-limit', '256', '--test-limit', '100',
      '--backend', 'wasm', '--run-dir', runDir, '--seed', '3',
    ]);
  });

  it('trains one epoch and writes the run directory, with plain progress lines off a terminal', () => {
    expect(trained.stderr).toContain('wrn-10-1 (');
    expect(trained.code).toBe(0);
    expect(trained.stderr).toContain('256 training / 100 test images from the embedded sample');
    expect(trained.stderr).toMatch(/epoch 1\/1 step 8\/8 \| \d+ img\/s \| loss \d\.\d{4} \| acc \d+\.\d{2}% \| ETA 00:00/);
    expect(trained.stdout).toMatch(/^epoch 1\/1 \| lr 0\.100 \| train loss \d\.\d{4} acc [\d.]+% \| test loss [\d.]+ top-1 err [\d.]+%/m);
    for (const file of ['config.json', 'metrics.jsonl', 'summary.json', 'environment.json', 'report.html', 'curves.png', 'checkpoints/last/model.json', 'checkpoints/best/state.json']) {
      expect(existsSync(join(runDir, file)), file).toBe(true);
    }
    const config = JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8'));
    expect(config).toMatchObject({ model: 'wrn-10-1', epochs: 1, batchSize: 32, seed: 3, preset: 'wrn-cifar' });
    expect(config.context).toMatchObject({ dataset: 'cifar10', backend: 'wasm', trainLimit: 256, testLimit: 100, resolved: { trainImages: 256, evalImages: 100 } });
    expect(JSON.parse(readFileSync(join(runDir, 'environment.json'), 'utf8'))).toMatchObject({ backend: 'wasm', '@tensorflow/tfjs-core': '4.22.0' });
    const summary = JSON.parse(readFileSync(join(runDir, 'summary.json'), 'utf8'));
    expect(summary.confusionMatrix.flat().reduce((a: number, b: number) => a + b, 0)).toBe(100);
    expect(trained.stdout).toContain(`done: test accuracy ${(100 * summary.final.testAccuracy).toFixed(2)}%`);
  });

  it('evaluates the checkpoint to the numbers training logged for the same images', async () => {
    const result = await runWrn(['eval', '--checkpoint', runDir, '--limit', '100', '--backend', 'wasm', '--json']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const evaluation = JSON.parse(result.stdout);
    const metrics = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const epoch = metrics.find((m) => m.type === 'epoch');
    expect(evaluation).toMatchObject({ dataset: 'cifar10', split: 'test', examples: 100, classNames: CLASSES });
    expect(evaluation.checkpoint).toBe(join(runDir, 'checkpoints', 'best'));
    expect(evaluation.loss).toBeCloseTo(epoch.testLoss, 4);
    expect(evaluation.top1Error).toBeCloseTo(epoch.testTop1Error, 6);
    expect(evaluation.top5Error).toBeCloseTo(epoch.testTop5Error, 6);
    expect(evaluation.confusionMatrix).toEqual(JSON.parse(readFileSync(join(runDir, 'summary.json'), 'utf8')).confusionMatrix);
    const text = await runWrn(['eval', '--checkpoint', runDir, '--limit', '100', '--backend', 'wasm']);
    expect(text.stdout).toMatch(/loss \d\.\d{4} \| top-1 error [\d.]+% \| top-5 error [\d.]+% \| accuracy [\d.]+%/);
    expect(text.stdout).toMatch(/airplane\s+[\d.]+%\s+\d+/);
  });

  it.skipIf(NO_SHARED_DATA)('evaluates on ../shared/data/cifar10-subset', async () => {
    const result = await runWrn(['eval', '--checkpoint', join(runDir, 'checkpoints', 'last'), '--data-dir', SHARED_SUBSET, '--limit', '64', '--backend', 'wasm', '--json']);
    expect(result.code).toBe(0);
    const evaluation = JSON.parse(result.stdout);
    expect(evaluation).toMatchObject({ dataDir: SHARED_SUBSET, examples: 64 });
    expect(evaluation.top1Error).toBeGreaterThanOrEqual(0);
  });

  it('predicts real PNG and JPEG files: top-5 with probabilities, the PNG exactly as training saw it', async () => {
    const first = cifarImage(SAMPLE_TEST_BATCH, 0);
    const pngPath = join(dir, 'first.png');
    writePng(pngPath, first);
    const bigPath = join(dir, 'first-64.png');
    writePng(bigPath, cifarImage(SAMPLE_TEST_BATCH, 0, 2));
    const second = cifarImage(SAMPLE_TEST_BATCH, 1);
    const jpegPath = join(dir, 'second.jpg');
    writeFileSync(jpegPath, jpeg.encode({ data: second.rgba, width: 32, height: 32 }, 95).data);

    const result = await runWrn(['predict', '--checkpoint', runDir, '--backend', 'wasm', '--json', pngPath, jpegPath, bigPath]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const predictions = JSON.parse(result.stdout) as { file: string; width: number; top: { label: number; className: string; probability: number }[] }[];
    expect(predictions.map((p) => [p.file, p.width])).toEqual([[pngPath, 32], [jpegPath, 32], [bigPath, 64]]);
    for (const p of predictions) {
      expect(p.top).toHaveLength(5);
      expect(new Set(p.top.map((t) => t.label)).size).toBe(5);
      for (const t of p.top) expect(t.className).toBe(CLASSES[t.label]);
      for (let i = 1; i < 5; i++) expect(p.top[i]!.probability).toBeLessThanOrEqual(p.top[i - 1]!.probability);
      expect(p.top.reduce((a, t) => a + t.probability, 0)).toBeLessThanOrEqual(1 + 1e-6);
    }
    // The lossless PNG of test image 0 must get the same probability for its true class as evaluation gives it:
    // eval's loss on that single image is -log p(true class).
    const one = JSON.parse((await runWrn(['eval', '--checkpoint', runDir, '--limit', '1', '--backend', 'wasm', '--json'])).stdout);
    const all = JSON.parse((await runWrn(['predict', '--checkpoint', runDir, '--backend', 'wasm', '--top', '10', '--json', pngPath])).stdout);
    const trueClass = all[0].top.find((t: { label: number }) => t.label === first.label);
    expect(trueClass.probability).toBeCloseTo(Math.exp(-one.loss), 4);

    const text = await runWrn(['predict', '--checkpoint', runDir, '--backend', 'wasm', pngPath]);
    expect(text.stdout).toMatch(new RegExp(`^${pngPath} \\(32x32\\)\\n  1\\. \\S+\\s+[\\d.]+%\\n`));
  });

  it('exits 2 naming the file that is not an image, and the checkpoint that does not exist', async () => {
    const text = join(dir, 'notes.txt');
    writeFileSync(text, 'not an image');
    const notImage = await runWrn(['predict', '--checkpoint', runDir, text]);
    expect(notImage.code).toBe(2);
    expect(notImage.stderr).toContain(`${text}: not a PNG or JPEG file`);
    const missing = await runWrn(['eval', '--checkpoint', join(dir, 'nope')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`--checkpoint ${join(dir, 'nope')}: no such file or directory`);
  });

  it('refuses to overwrite the run, and resumes it for one more epoch', async () => {
    const again = await runWrn(['train', '--model', 'wrn-10-1', '--epochs', '1', '--backend', 'wasm', '--run-dir', runDir, '--train-limit', '64']);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('already holds a run');
    const resumed = await runWrn(['train', '--resume', runDir, '--epochs', '2']);
    expect(resumed.stderr).toContain('resuming from');
    expect(resumed.code).toBe(0);
    const epochs = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((m) => m.type === 'epoch');
    expect(epochs.map((e) => e.epoch)).toEqual([1, 2]);
    expect(resumed.stdout).toMatch(/^epoch 2\/2 \|/m);
  });

  it('renders the report of the real run in Chromium with the numbers of its metrics.jsonl', async () => {
    const report = await runWrn(['report', runDir]);
    expect(report.code).toBe(0);
    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    try {
      const page = await browser.newPage();
      await page.goto(pathToFileURL(join(runDir, 'report.html')).href);
      await page.waitForSelector('body[data-charts-rendered="3"]', { timeout: 20_000 });
      const lossData = await page.evaluate(() => {
        const chart = (window as unknown as { Chart: { getChart(c: Element): any } }).Chart.getChart(document.getElementById('chart-loss')!);
        return chart.data.datasets.map((d: { data: number[] }) => d.data);
      });
      const epochs = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((m) => m.type === 'epoch');
      expect(lossData).toEqual([epochs.map((e) => e.trainLoss), epochs.map((e) => e.testLoss)]);
      const confusionRows = await page.$$eval('#confusion tr', (rows) => rows.length);
      expect(confusionRows).toBe(11);
      expect(await page.textContent('#environment')).toContain('wasm');
    } finally {
      await browser.close();
    }
  });
});

describe.skipIf(NO_SHARED_DATA)('wrn train on ../shared/data/cifar10-subset', () => {
  it('trains from the official layout with several training batch files', async () => {
    const runDir = join(scratchDir('subset'), 'run');
    const result = await runWrn([
      'train', '--model', 'wrn-10-1', '--data-dir', SHARED_SUBSET, '--epochs', '1', '--batch-size', '32',
      '--train-limit', '128', '--test-limit', '64', '--backend', 'wasm', '--run-dir', runDir, '--json', '--no-report',
    ]);
    // One assertion over the whole result, so that a failure shows stdout, stderr, the code and the signal together.
    expect({ code: result.code, signal: result.signal, stderr: result.stderr, stdoutLines: result.stdout.trim().split('\n').length }).toEqual({
      code: 0, signal: null, stderr: '', stdoutLines: 3,
    });
    const records = result.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(records.map((r) => r.type)).toEqual(['start', 'epoch', 'result']);
    expect(records[0]).toMatchObject({ model: 'wrn-10-1', backend: 'wasm', trainImages: 128, testImages: 64 });
    expect(records[2]).toMatchObject({ status: 'completed', epochs: 1, report: null });
    expect(existsSync(join(runDir, 'report.html'))).toBe(false);
  });
});
