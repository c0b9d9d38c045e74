import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { countParams } from '@wrn/architectures';
import { runCli } from '../src/program.js';
import { expandGrid, loadGridFile, loadGridPreset } from '../src/sweep/grid.js';
import { manifestOf, type RunSummary } from '../src/sweep/layout.js';
import { GRID_PRESETS } from '../src/sweep/presets.js';
import { renderReportHtml, renderReportMarkdown, type SweepRunRecord } from '../src/sweep/report.js';
import { parseQueueUrl } from '../src/sweep/queue.js';
import { freePort } from './redis-server.js';
import { runWrn, scratchDir } from './run-wrn.js';

const TINY = { base: { dataset: 'cifar10', epochs: 1, trainLimit: 256, testLimit: 128, batchSize: 64 }, axes: { model: ['wrn-10-1', 'wrn-16-1'], seed: [1, 2] } };

describe('grid expansion', () => {
  it('expands the issue\'s grid into the axes\' product, first axis outermost, with stable ids', () => {
    const grid = expandGrid(TINY, 'tiny.yaml', 'tiny');
    expect(grid.name).toBe('tiny');
    expect(grid.runs.map((r) => r.axes)).toEqual([
      { model: 'wrn-10-1', seed: 1 },
      { model: 'wrn-10-1', seed: 2 },
      { model: 'wrn-16-1', seed: 1 },
      { model: 'wrn-16-1', seed: 2 },
    ]);
    expect(grid.runs[0]!.values).toEqual({ ...TINY.base, model: 'wrn-10-1', seed: 1 });
    expect(grid.runs[0]!.id).toMatch(/^wrn-10-1_seed-1_[0-9a-f]{8}$/);
    // The same grid written with its keys in another order is the same sweep, run for run.
    const reordered = expandGrid({ axes: TINY.axes, base: Object.fromEntries(Object.entries(TINY.base).reverse()) }, 'other.yaml', 'tiny');
    expect(reordered.runs.map((r) => r.id)).toEqual(grid.runs.map((r) => r.id));
    expect(reordered.hash).toBe(grid.hash);
    // Any change of config is another run.
    const longer = expandGrid({ ...TINY, base: { ...TINY.base, epochs: 2 } }, 'tiny.yaml', 'tiny');
    expect(longer.runs.map((r) => r.id).filter((id) => grid.runs.some((r) => r.id === id))).toEqual([]);
  });

  it('takes dotted keys as nested config, objects as values, and included runs', () => {
    const grid = expandGrid(
      { base: { model: 'wrn-10-1', epochs: 1 }, axes: { 'schedule.lr': [0.1, 0.05], dropout: [{ kind: 'none' }, { kind: 'constant', rate: 0.3 }] }, include: [{ seed: 7 }] },
      'g.yaml',
      'g',
    );
    expect(grid.runs).toHaveLength(5);
    expect(grid.runs[1]!.values).toEqual({ model: 'wrn-10-1', epochs: 1, schedule: { lr: 0.1 }, dropout: { kind: 'constant', rate: 0.3 } });
    expect(grid.runs[1]!.id).toMatch(/^lr-0\.1_dropout-constant-0\.3_[0-9a-f]{8}$/);
    expect(grid.runs[4]!.values).toEqual({ model: 'wrn-10-1', epochs: 1, seed: 7 });
    expect(grid.axisKeys).toEqual(['schedule.lr', 'dropout', 'seed']);
  });

  it('names the file and the grid key of a bad grid', () => {
    expect(() => expandGrid({ base: { epoks: 1 }, axes: { seed: [1] } }, 'g.yaml', 'g')).toThrow(/^g\.yaml: base\.epoks: unknown key/);
    expect(() => expandGrid({ axes: { 'optimiser.momentum': [0.9] } }, 'g.yaml', 'g')).toThrow(/^g\.yaml: axes\.optimiser\.momentum: unknown key/);
    expect(() => expandGrid({ axes: { seed: [] } }, 'g.yaml', 'g')).toThrow('g.yaml: axes.seed: an axis needs at least one value');
    expect(() => expandGrid({ axis: { seed: [1] } }, 'g.yaml', 'g')).toThrow('g.yaml: axis: unknown key; a grid has name, preset, description, base, axes, include');
    expect(() => expandGrid({ base: { runDir: 'x' } }, 'g.yaml', 'g')).toThrow(/^g\.yaml: base\.runDir: set by the sweep/);
    // Values go through `wrn train`'s own schema, and the error points at the axis entry that holds the value.
    expect(() => expandGrid({ base: { epochs: 1 }, axes: { model: ['wrn-10-1', 'wrn-11-1'] } }, 'g.yaml', 'g')).toThrow(/^g\.yaml: axes\.model\[1\]: model: Invalid model name 'wrn-11-1'/);
    expect(() => expandGrid({ base: { epochs: 1, model: 'wrn-10-1', schedule: { kind: 'cosine', lr: 0.1 } } }, 'g.yaml', 'g')).toThrow(/^g\.yaml: base: schedule\.length: /);
    expect(() => expandGrid({ base: { epochs: 1, model: 'wrn-10-1' }, axes: { batchSize: [32, -1] } }, 'g.yaml', 'g')).toThrow(/^g\.yaml: axes\.batchSize\[1\]: .*\(got -1\)/);
    expect(() => expandGrid({ base: { epochs: 1, model: 'wrn-10-1' }, axes: { seed: [1, 1] } }, 'g.yaml', 'g')).toThrow('g.yaml: axes.seed[1] gives the same run as axes.seed[0]; every run of a grid must differ');
  });

  it('every preset expands into valid runs of the paper\'s models', () => {
    for (const preset of GRID_PRESETS) {
      const grid = loadGridPreset(preset.name);
      expect(grid.runs.length).toBe(Object.values(preset.axes).reduce((n, v) => n * v.length, 1));
    }
    // The widening table's models have the parameter counts of the WRN paper's table 4 (../shared/papers.md).
    const widening = GRID_PRESETS.find((p) => p.name === 'wrn-widening')!.axes.model as string[];
    const millions = widening.map((m) => Math.round(countParams(m, { numClasses: 10 }) / 1e5) / 10);
    expect(millions).toEqual([0.6, 2.2, 8.9, 35.7, 36.5, 52.5, 17.2, 26.8, 11.0, 17.1]);
    // The block-type table's B(3,3) is WRN-40-2 itself: 2,243,546 parameters.
    expect(countParams('wrn-40-2', { numClasses: 10 })).toBe(2_243_546);
    // ResNeXt paper, table 3: the cardinality/width pairs are of (nearly) equal complexity.
    const resnext = (GRID_PRESETS.find((p) => p.name === 'resnext-cardinality')!.axes.model as string[]).map((m) => countParams(m, { numClasses: 10 }));
    for (const params of resnext) expect(Math.abs(params / resnext[0]! - 1)).toBeLessThan(0.05);
  });

  it('a preset is overridden by the grid file that names it', () => {
    const dir = scratchDir('grid');
    const file = join(dir, 'small-widening.yaml');
    writeFileSync(file, 'preset: wrn-widening\nbase: { epochs: 1 }\naxes: { seed: [1] }\n');
    const grid = loadGridFile(file);
    expect(grid.name).toBe('small-widening');
    expect(grid.runs).toHaveLength(10);
    expect(grid.runs[0]!.values).toEqual({ dataset: 'cifar10', recipe: 'wrn-cifar', epochs: 1, model: 'wrn-40-1', seed: 1 });
  });

  it('parses queue URLs and refuses others with the flag and the value', () => {
    expect(parseQueueUrl('redis://10.0.0.5:6380/2')).toMatchObject({ host: '10.0.0.5', port: 6380, db: 2 });
    expect(parseQueueUrl('redis://:secret@host')).toMatchObject({ host: 'host', port: 6379, db: 0, password: 'secret' });
    expect(() => parseQueueUrl('http://host:6379')).toThrow('--queue http://host:6379: expected a redis:// URL, got the scheme "http"');
    expect(() => parseQueueUrl('redis://host:6379/x')).toThrow('--queue redis://host:6379/x: the path must be a database number (redis://HOST:PORT/0), got "/x"');
  });
});

describe('wrn sweep: bad input', () => {
  it('has help with examples for each of its commands', async () => {
    for (const command of ['sweep', 'sweep status', 'sweep report', 'sweep presets', 'worker']) {
      // In-process through the same runCli as the bin: help needs no child process.
      let stdout = '';
      const sink = { write: (text: string) => ((stdout += text), true) } as unknown as NodeJS.WritableStream;
      const code = await runCli([...command.split(' '), '--help'], { stdout: sink, stderr: sink, env: {} });
      expect(code, command).toBe(0);
      expect(stdout, command).toContain(`Usage: wrn ${command}`);
      expect(stdout, command).toContain('Examples:\n  $ ');
    }
  });

  it('exits 2 naming the grid file and key', async () => {
    const dir = scratchDir('grid-cli');
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'base: { epochs: 1, trainLimt: 256 }\naxes: { model: [wrn-10-1] }\n');
    const unknown = await runWrn(['sweep', bad, '--dry-run']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain(`wrn: error: ${bad}: base.trainLimt: unknown key`);
    const empty = join(dir, 'empty.yaml');
    writeFileSync(empty, 'axes: { model: [wrn-10-1], seed: [] }\n');
    const emptyAxis = await runWrn(['sweep', empty]);
    expect(emptyAxis.code).toBe(2);
    expect(emptyAxis.stderr).toContain(`wrn: error: ${empty}: axes.seed: an axis needs at least one value`);
    const missing = await runWrn(['sweep', join(dir, 'nope.yaml')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`nope.yaml: no such grid file`);
  });

  it('fails fast (exit 1) naming the URL when the queue cannot be reached', async () => {
    const dir = scratchDir('grid-queue');
    const grid = join(dir, 'g.yaml');
    writeFileSync(grid, 'base: { epochs: 1, model: wrn-10-1 }\naxes: { seed: [1] }\n');
    const url = `redis://127.0.0.1:${await freePort()}`;
    for (const args of [['sweep', grid, '--queue', url], ['sweep', 'status', '--queue', url], ['worker', '--queue', url, '--run-root', dir]]) {
      const started = Date.now();
      const result = await runWrn(args);
      expect(result.code, args.join(' ')).toBe(1);
      expect(result.stderr).toContain(`wrn: failed: --queue ${url}: cannot reach Redis at 127.0.0.1:`);
      expect(Date.now() - started).toBeLessThan(20_000);
    }
  });
});

describe('the sweep report', () => {
  const manifest = manifestOf(expandGrid(TINY, 'tiny.yaml', 'tiny'), '0.0.0');
  const summary = (error: number | null, seconds: number): RunSummary => ({
    status: error === null ? 'failed' : 'completed',
    epochsDone: error === null ? 0 : 1,
    totalEpochs: 1,
    testTop1Error: error,
    epochErrors: error === null ? [] : [error],
    secondsPerEpoch: error === null ? null : seconds,
    params: 77_850,
    failure: null,
  });
  const records: SweepRunRecord[] = manifest.runs.map((run, i) => ({
    id: run.id,
    axes: run.axes,
    state: i === 3 ? 'failed' : 'completed',
    summary: summary([0.8125, 0.84375, 0.75, null][i]!, [2, 4, 6, 0][i]!),
  }));

  it('is the paper-style table: mean ± sample std over seeds, params, seconds per epoch', () => {
    expect(renderReportMarkdown(manifest, records).split('\n').slice(-4)).toEqual([
      '| --- | ---: | ---: | ---: | ---: |',
      '| wrn-10-1 | 82.81 ± 2.21 | 2/2 | 77.85 k | 3.0 |',
      '| wrn-16-1 | 75.00 | 1/2 (1 failed) | 77.85 k | 6.0 |',
      '',
    ]);
  });

  it('draws its charts in Chromium', async () => {
    const dir = scratchDir('sweep-report');
    const file = join(dir, 'report.html');
    writeFileSync(file, renderReportHtml(manifest, records));
    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (error) => errors.push(error.message));
      await page.goto(pathToFileURL(file).href);
      await page.waitForSelector('body[data-charts-rendered="2"]', { timeout: 20_000 });
      expect(errors).toEqual([]);
      expect(await page.locator('#sweep-table tbody tr').allInnerTexts()).toEqual(['wrn-10-1\t82.81 ± 2.21\t2/2\t77.85 k\t3.0', 'wrn-16-1\t75.00\t1/2 (1 failed)\t77.85 k\t6.0']);
      // The bar chart holds the means, its points every completed run's error.
      const data = await page.evaluate(() => {
        const chart = (window as unknown as { Chart: { getChart(id: string): { data: { datasets: { data: unknown[] }[] } } } }).Chart.getChart('chart-final-error');
        return chart.data.datasets.map((d) => d.data);
      });
      expect(data[0]).toEqual([82.8125, 75]);
      expect((data[1] as { y: number }[]).map((p) => p.y)).toEqual([81.25, 84.375, 75]);
    } finally {
      await browser.close();
    }
  });
});
