/**
 * Resident memory over a longer training run: does the process grow epoch after epoch? Trains a model on the
 * CIFAR-10 files in --data-dir with @wrn/training's loop and samples process.memoryUsage() and tf.memory()
 * after every step; prints a markdown table per epoch and the RSS growth after the first epoch (warm-up).
 * Doubles as an accuracy run: the last line gives the test accuracy, epochs, wall time and backend.
 *
 *   npx nx run-many -t build -p blocks architectures datasets training
 *   node --expose-gc --import tsx tools/bench/train-memory.ts [--model wrn-16-1] [--epochs 6] [--batch-size 64]
 *        [--train-limit 2000] [--test-limit 1000] [--backend wasm|cpu] [--threads auto]
 *        [--data-dir ../shared/data/cifar10-subset] [--run-dir DIR] [--dropout 0] [--augment reflect|zero|none]
 *
 * With --expose-gc a full GC runs before each end-of-epoch sample, so the figures are live memory, not garbage.
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { ImageDataset } from '@wrn/datasets';
import type { BatchSource } from '@wrn/training';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? (process.argv[i + 1] as string) : fallback;
}

const modelName = arg('model', 'wrn-16-1');
const epochs = Number(arg('epochs', '6'));
const batchSize = Number(arg('batch-size', '64'));
const trainLimit = Number(arg('train-limit', '2000'));
const testLimit = Number(arg('test-limit', '1000'));
const backendChoice = arg('backend', 'wasm') as 'wasm' | 'cpu';
const threadsArg = arg('threads', 'auto');
const dataDir = arg('data-dir', path.resolve(process.cwd(), '../shared/data/cifar10-subset'));
const runDir = arg('run-dir', mkdtempSync(path.join(os.tmpdir(), 'wrn-train-memory-')));
const dropRate = Number(arg('dropout', '0'));
const augment = arg('augment', 'reflect') as 'reflect' | 'zero' | 'none';
const seed = 1;

const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
const gc = (globalThis as { gc?: () => void }).gc;

async function main(): Promise<void> {
  // Loaded lazily, as the other bench scripts do: the module-boundaries rule wants one way per library.
  const { dropoutModelOptions } = await import('@wrn/training');
  const { selectBackend } = await import('@wrn/backend/node');
  const { train } = await import('@wrn/training/node');
  const { buildModel, countParams } = await import('@wrn/architectures');
  const { createPipeline, meanStdNormalization, selectImages } = await import('@wrn/datasets');
  const { loadCifar10 } = await import('@wrn/datasets/node');
  const first = (dataset: ImageDataset, n: number): ImageDataset =>
    n >= dataset.count ? dataset : selectImages(dataset, Int32Array.from({ length: n }, (_, i) => i));
  const selection = await selectBackend(backendChoice, backendChoice === 'wasm' ? { wasmThreads: threadsArg === 'auto' ? 'auto' : Number(threadsArg) } : {});
  const trainSet = first(loadCifar10(dataDir, { split: 'train' }), trainLimit);
  const testSet = first(loadCifar10(dataDir, { split: 'test' }), testLimit);
  const normalization = meanStdNormalization(trainSet);
  const trainPipe = createPipeline(trainSet, { batchSize, shuffle: true, seed, augment, normalization });
  const testPipe = createPipeline(testSet, { batchSize: 200, normalization });
  const source = (p: typeof trainPipe, d: ImageDataset): BatchSource => ({
    batches: (e) => p.batches(e),
    size: p.size,
    numClasses: p.numClasses,
    classNames: [...d.classNames],
  });
  const dropout = dropRate > 0 ? ({ kind: 'constant', rate: dropRate } as const) : ({ kind: 'none' } as const);
  const model = buildModel(modelName, { numClasses: 10, seed, ...dropoutModelOptions(dropout) });
  console.log(
    `# ${modelName} (${countParams(model).toLocaleString('en-US')} params), backend ${selection.name}${selection.wasmThreads ? ` x${selection.wasmThreads} threads` : ''}, ` +
      `${trainSet.count} train / ${testSet.count} test images, batch ${batchSize}, ${epochs} epochs, augmentation ${augment}, run dir ${runDir}`,
  );
  console.log(`# gc before end-of-epoch samples: ${gc ? 'yes' : 'no (run node with --expose-gc)'}\n`);
  console.log('| epoch | steps | rss MB (end) | rss MB min..max in epoch | heap MB | external+arrayBuffers MB | tensors | tensor MB | test acc | img/s |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');

  let lo = Infinity;
  let hi = 0;
  const endRss: number[] = [];
  const started = performance.now();
  const result = await train({
    model,
    trainSource: source(trainPipe, trainSet),
    testSource: source(testPipe, testSet),
    config: {
      model: modelName,
      epochs,
      batchSize,
      seed,
      schedule: { kind: 'cosine', unit: 'iteration', lr: 0.1, length: epochs * trainPipe.batchesPerEpoch, warmup: { length: 1, unit: 'epoch', startFactor: 0.1 } },
      dropout,
      context: { bench: 'train-memory', dataDir, backend: selection.name },
    },
    runDir,
    onProgress: (e) => {
      if (e.type === 'step') {
        const rss = process.memoryUsage.rss();
        lo = Math.min(lo, rss);
        hi = Math.max(hi, rss);
      } else if (e.type === 'epoch') {
        gc?.();
        const m = process.memoryUsage();
        const t = tf.memory();
        endRss.push(m.rss);
        console.log(
          `| ${e.metrics.epoch} | ${e.metrics.step} | ${mb(m.rss)} | ${mb(lo)}..${mb(hi)} | ${mb(m.heapUsed)} | ${mb(m.external + m.arrayBuffers)} | ` +
            `${t.numTensors} | ${mb(t.numBytes)} | ${(1 - e.metrics.testTop1Error).toFixed(4)} | ${e.metrics.imagesPerSec.toFixed(1)} |`,
        );
        lo = Infinity;
        hi = 0;
      }
    },
  });
  const wall = (performance.now() - started) / 1000;
  if (endRss.length >= 2) {
    const growth = endRss[endRss.length - 1]! - endRss[0]!;
    console.log(`\nRSS growth from the end of epoch 1 to the end of epoch ${endRss.length}: ${mb(growth)} MB (${mb(growth / (endRss.length - 1))} MB/epoch)`);
  }
  console.log(
    `${modelName}: test accuracy ${(1 - (result.final?.testTop1Error ?? 1)).toFixed(4)} after ${result.epochsCompleted} epochs, ` +
      `wall ${wall.toFixed(0)} s, backend ${selection.name}; run dir ${runDir}`,
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
