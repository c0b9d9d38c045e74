import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runWrn, scratchDir } from './run-wrn.js';

/** A run directory as `wrn train` leaves it, with numbers that are easy to check and far from round. */
function writeRunFixture(dir: string): { epochs: Record<string, number>[] } {
  const epochs = [1, 2, 3, 4].map((epoch) => ({
    epoch,
    lr: epoch < 3 ? 0.1 : 0.02,
    trainLoss: 2.3 / epoch + 0.01234,
    trainAcc: 0.1 + 0.17 * epoch,
    testLoss: 2.41 / epoch + 0.05678,
    testTop1Error: 0.9 - 0.1337 * epoch,
    testTop5Error: 0.5 - 0.0777 * epoch,
    imagesPerSec: 123.4 + epoch,
    seconds: 10.25 * epoch,
  }));
  const lines = [
    JSON.stringify({ type: 'start', time: '2026-11-23T08:00:00Z' }),
    ...epochs.map((e) => JSON.stringify({ type: 'epoch', ...e })),
  ];
  writeFileSync(join(dir, 'metrics.jsonl'), `${lines.join('\n')}\n`);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ model: 'wrn-16-2', dataset: 'cifar10', epochs: 4, batchSize: 32 }));
  writeFileSync(
    join(dir, 'summary.json'),
    JSON.stringify({ confusionMatrix: [[7, 1, 2], [0, 9, 1], [3, 3, 4]], classNames: ['airplane', 'automobile', 'bird'] }),
  );
  writeFileSync(join(dir, 'environment.json'), JSON.stringify({ backend: 'wasm', node: 'v20.20.2' }));
  return { epochs };
}

describe('wrn report', () => {
  let browser: Browser;
  const dir = scratchDir('report');
  const fixture = writeRunFixture(dir);

  beforeAll(async () => {
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('writes report.html and curves.png into the run directory', async () => {
    const result = await runWrn(['report', dir, '--json']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ html: join(dir, 'report.html'), png: join(dir, 'curves.png'), epochs: 4 });
    const png = readFileSync(join(dir, 'curves.png'));
    expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    // Three 600x400 panels side by side: width and height from the IHDR chunk.
    expect(png.readUInt32BE(16)).toBe(1800);
    expect(png.readUInt32BE(20)).toBe(400);
  });

  it('renders its charts offline in Chromium and shows the numbers of metrics.jsonl', async () => {
    const page = await browser.newPage();
    const requests: string[] = [];
    page.on('request', (request) => requests.push(request.url()));
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    await page.goto(pathToFileURL(join(dir, 'report.html')).href);
    await page.waitForSelector('body[data-charts-rendered="3"]', { timeout: 20_000 });
    expect(pageErrors).toEqual([]);
    // Self-contained: the page fetched nothing but itself.
    expect(requests.filter((url) => !url.startsWith('file://'))).toEqual([]);

    const charts = await page.evaluate(() => {
      const ids = ['chart-loss', 'chart-error', 'chart-lr'];
      return ids.map((id) => {
        const canvas = document.getElementById(id) as HTMLCanvasElement;
        const chart = (window as unknown as { Chart: { getChart(c: HTMLCanvasElement): any } }).Chart.getChart(canvas);
        const pixels = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
        let painted = 0;
        for (let i = 3; i < pixels.length; i += 4) if (pixels[i]! > 0) painted++;
        return {
          id,
          width: canvas.width,
          painted,
          labels: chart.data.labels as number[],
          datasets: (chart.data.datasets as { label: string; data: number[] }[]).map((d) => ({ label: d.label, data: d.data })),
        };
      });
    });
    const metrics = readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, number | string>)
      .filter((record) => record.type === 'epoch') as Record<string, number>[];
    expect(metrics).toHaveLength(fixture.epochs.length);
    const column = (key: string) => metrics.map((m) => m[key]!);
    for (const chart of charts) {
      expect(chart.width).toBeGreaterThan(100);
      // A drawn chart paints a good share of its canvas (axes, grid, lines, legend); an empty one paints nothing.
      expect(chart.painted).toBeGreaterThan(1000);
      expect(chart.labels).toEqual(column('epoch'));
    }
    const [loss, error, lr] = charts;
    expect(loss!.datasets).toEqual([
      { label: 'train loss', data: column('trainLoss') },
      { label: 'test loss', data: column('testLoss') },
    ]);
    expect(error!.datasets.map((d) => d.label)).toEqual(['train error', 'test top-1 error', 'test top-5 error']);
    error!.datasets[0]!.data.forEach((v, i) => expect(v).toBeCloseTo(100 * (1 - column('trainAcc')[i]!), 10));
    error!.datasets[1]!.data.forEach((v, i) => expect(v).toBeCloseTo(100 * column('testTop1Error')[i]!, 10));
    error!.datasets[2]!.data.forEach((v, i) => expect(v).toBeCloseTo(100 * column('testTop5Error')[i]!, 10));
    expect(lr!.datasets).toEqual([{ label: 'learning rate', data: column('lr') }]);

    // The epoch table shows each epoch's numbers, rounded for reading.
    const rows = await page.$$eval('#epochs tbody tr', (trs) => trs.map((tr) => Array.from(tr.querySelectorAll('td')).map((td) => td.textContent)));
    expect(rows).toHaveLength(metrics.length);
    rows.forEach((row, i) => {
      const m = metrics[i]!;
      expect(Number(row[0])).toBe(m.epoch);
      expect(Number(row[1])).toBeCloseTo(m.lr!, 6);
      expect(Number(row[2])).toBeCloseTo(m.trainLoss!, 4);
      expect(parseFloat(row[3]!)).toBeCloseTo(100 * (1 - m.trainAcc!), 2);
      expect(Number(row[4])).toBeCloseTo(m.testLoss!, 4);
      expect(parseFloat(row[5]!)).toBeCloseTo(100 * m.testTop1Error!, 2);
      expect(parseFloat(row[6]!)).toBeCloseTo(100 * m.testTop5Error!, 2);
    });

    const confusion = await page.$$eval('#confusion tr', (trs) => trs.map((tr) => Array.from(tr.children).map((c) => c.textContent)));
    expect(confusion[0]).toEqual(['true \\ predicted', 'airplane', 'automobile', 'bird', 'accuracy']);
    expect(confusion.slice(1)).toEqual([
      ['airplane', '7', '1', '2', '70.00%'],
      ['automobile', '0', '9', '1', '90.00%'],
      ['bird', '3', '3', '4', '40.00%'],
    ]);
    expect(JSON.parse((await page.textContent('#config'))!)).toMatchObject({ model: 'wrn-16-2', batchSize: 32 });
    expect(await page.textContent('#environment')).toContain('wasm');
    await page.close();
  });

  it('exits 2 naming the directory when it is not a run directory', async () => {
    const empty = scratchDir('not-a-run');
    const result = await runWrn(['report', empty]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`${empty} is not a run directory: it has no metrics.jsonl`);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });
});
