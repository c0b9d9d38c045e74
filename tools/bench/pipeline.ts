/**
 * Speed and memory of @wrn/datasets' input pipeline: images/s of load -> shuffle -> uint8 batch -> float32 ->
 * normalise -> augment (reflect-pad 4, random crop, flip) on the cpu and wasm backends, and the resident memory
 * of a process that has loaded the CIFAR-10 training split (the real subset, and a synthetic 50,000-image set in
 * the official binary layout, as the full set is not on this machine).
 *
 *   npx nx run build datasets
 *   taskset -c 0 node --expose-gc --import tsx tools/bench/pipeline.ts [--backend cpu|wasm|both] [--batches 40]
 *        [--batch-size 128] [--data-dir ../shared/data/cifar10-subset] [--synthetic 50000] [--augment reflect]
 *        [--zca] (also time fitting ZCA on the real training split: 3072 dimensions, minutes)
 *
 * `taskset -c 0` pins the process to one core (the wasm backend runs single-threaded here unless told otherwise).
 * Memory is measured in plain-node child processes (no tsx loader), so each figure starts from a fresh heap.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? (process.argv[i + 1] as string) : fallback;
}

const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

/** Writes `count` random records as data_batch_1..5.bin (10,000 a file) plus a 10,000-record test_batch.bin. */
function writeSyntheticCifar(dir: string, count: number): void {
  mkdirSync(dir, { recursive: true });
  const perFile = Math.ceil(count / 5);
  let state = 12345;
  const next = () => (state = (state * 1103515245 + 12345) >>> 0) >>> 24;
  const file = (records: number) => {
    const bytes = Buffer.allocUnsafe(records * 3073);
    for (let r = 0; r < records; r++) {
      bytes[r * 3073] = next() % 10;
      for (let i = 1; i < 3073; i++) bytes[r * 3073 + i] = next();
    }
    return bytes;
  };
  for (let b = 1; b <= 5; b++) {
    const records = Math.min(perFile, count - (b - 1) * perFile);
    if (records > 0) writeFileSync(path.join(dir, `data_batch_${b}.bin`), file(records));
  }
  writeFileSync(path.join(dir, 'test_batch.bin'), file(Math.min(10_000, count)));
}

/**
 * Run in a fresh plain-node child (no tsx loader, so the baseline is what a `wrn` process has): import
 * @wrn/datasets and tfjs-core, load the training split of the folder in argv[1], print memory figures as JSON.
 */
const MEMORY_CHILD = `
const datasets = { ...(await import('@wrn/datasets')), ...(await import('@wrn/datasets/node')) };
await import('@tensorflow/tfjs-core');
globalThis.gc();
const before = process.memoryUsage();
const started = performance.now();
const train = datasets.loadCifar10(process.argv[1], { split: 'train' });
const loadSeconds = (performance.now() - started) / 1000;
globalThis.gc();
const after = process.memoryUsage();
console.log(JSON.stringify({ images: train.count, imageBytes: train.images.byteLength, loadSeconds, rssBefore: before.rss, rssAfter: after.rss }));
`;

function measureMemory(dir: string): Record<string, number> {
  const out = execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', MEMORY_CHILD, dir], {
    encoding: 'utf8',
  });
  return JSON.parse(out.trim().split('\n').pop()!) as Record<string, number>;
}

async function throughput(backend: 'cpu' | 'wasm', dir: string, batches: number, batchSize: number, augment: string): Promise<string> {
  const tf = await import('@tensorflow/tfjs-core');
  await import('@tensorflow/tfjs-backend-cpu');
  await import('@tensorflow/tfjs-backend-wasm');
  const datasets = { ...(await import('@wrn/datasets')), ...(await import('@wrn/datasets/node')) };
  await tf.setBackend(backend);
  await tf.ready();
  const loadStart = performance.now();
  const train = datasets.loadCifar10(dir, { split: 'train' });
  const loadSeconds = (performance.now() - loadStart) / 1000;
  const rows: string[] = [];
  const configs: Array<[string, Parameters<typeof datasets.createPipeline>[1]]> = [
    ['batch only (uint8 -> float32, no normalisation, no augmentation)', { batchSize, shuffle: true, seed: 1 }],
    ['+ mean/std normalisation', { batchSize, shuffle: true, seed: 1, normalization: datasets.PAPER_NORMALIZATION.cifar10 }],
    [
      `+ ${augment} augmentation (full training pipeline)`,
      { batchSize, shuffle: true, seed: 1, normalization: datasets.PAPER_NORMALIZATION.cifar10, augment: augment as 'reflect' },
    ],
  ];
  for (const [label, options] of configs) {
    const pipeline = datasets.createPipeline(train, options);
    const count = Math.min(batches, pipeline.batchesPerEpoch);
    // One warm-up batch (kernel compilation, first allocations), then the timed ones.
    const iterator = await pipeline.batches(0).take(count + 1).iterator();
    const first = await iterator.next();
    tf.dispose(first.value as object);
    const started = performance.now();
    let images = 0;
    for (let r = await iterator.next(); !r.done; r = await iterator.next()) {
      const { xs, ys } = r.value as { xs: import('@tensorflow/tfjs-core').Tensor; ys: import('@tensorflow/tfjs-core').Tensor };
      await xs.data(); // make sure the batch is computed, as a training step would need it
      images += xs.shape[0]!;
      tf.dispose([xs, ys]);
    }
    const seconds = (performance.now() - started) / 1000;
    rows.push(`| ${backend} | ${label} | ${batchSize} | ${images} | ${(images / seconds).toFixed(0)} | ${((1000 * seconds) / (images / batchSize)).toFixed(1)} |`);
  }
  rows.push(`| ${backend} | (load of ${train.count} training images: ${loadSeconds.toFixed(2)} s, ${(train.count / loadSeconds).toFixed(0)} img/s) | | | | |`);
  return rows.join('\n');
}

async function main(): Promise<void> {
  const dataDir = arg('data-dir', path.resolve(process.cwd(), '../shared/data/cifar10-subset'));
  const synthetic = Number(arg('synthetic', '50000'));
  const batches = Number(arg('batches', '40'));
  const batchSize = Number(arg('batch-size', '128'));
  const augment = arg('augment', 'reflect');
  const backendArg = arg('backend', 'both');
  const backends = (backendArg === 'both' ? ['cpu', 'wasm'] : [backendArg]) as Array<'cpu' | 'wasm'>;

  const scratch = mkdtempSync(path.join(os.tmpdir(), 'wrn-bench-pipeline-'));
  try {
    const syntheticDir = path.join(scratch, 'cifar-10-batches-bin');
    const writeStart = performance.now();
    writeSyntheticCifar(syntheticDir, synthetic);
    console.log(`wrote ${synthetic} synthetic records in ${((performance.now() - writeStart) / 1000).toFixed(1)} s to ${syntheticDir}\n`);

    console.log('## Resident memory after loading the training split (fresh process each, after GC)\n');
    console.log('| data | images | pixel bytes (MB) | load (s) | RSS before (MB) | RSS after (MB) | RSS growth (MB) |');
    console.log('|---|---|---|---|---|---|---|');
    for (const [label, dir] of [
      ['real subset', dataDir],
      [`synthetic ${synthetic}`, syntheticDir],
    ] as const) {
      const m = measureMemory(dir);
      console.log(
        `| ${label} | ${m.images} | ${mb(m.imageBytes!)} | ${m.loadSeconds!.toFixed(2)} | ${mb(m.rssBefore!)} | ${mb(m.rssAfter!)} | ${mb(m.rssAfter! - m.rssBefore!)} |`,
      );
    }

    console.log(`\n## Pipeline throughput on the synthetic ${synthetic}-image training split (${batches} batches after one warm-up)\n`);
    console.log('| backend | pipeline | batch | images | images/s | ms/batch |');
    console.log('|---|---|---|---|---|---|');
    for (const backend of backends) console.log(await throughput(backend, syntheticDir, batches, batchSize, augment));
    if (process.argv.includes('--zca')) {
      const tf = await import('@tensorflow/tfjs-core');
      await import('@tensorflow/tfjs-backend-wasm');
      await tf.setBackend('wasm');
      const datasets = { ...(await import('@wrn/datasets')), ...(await import('@wrn/datasets/node')) };
      const train = datasets.loadCifar10(dataDir, { split: 'train' });
      const started = performance.now();
      const { zca } = datasets.loadOrFitZca(train, path.join(scratch, 'zca'));
      const seconds = (performance.now() - started) / 1000;
      console.log(`\nZCA fit (wasm matmuls, JS eigensolver) on ${zca.fittedOn.sampled} images of ${zca.height * zca.width * zca.channels} dimensions: ${seconds.toFixed(1)} s`);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

await main();
