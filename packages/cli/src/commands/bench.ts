import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import * as tf from '@tensorflow/tfjs-core';
import { buildModel, countParams } from '@wrn/architectures';
import { type Batch, type BatchSource } from '@wrn/training';
import { BACKEND_CHOICES } from '@wrn/backend/node';
import { train } from '@wrn/training/node';
import type { CommandContext } from '../context.js';
import { asUsageError } from '../errors.js';
import { choiceFlag, examples, integerFlag } from '../flags.js';
import { writeLine } from '../io.js';
import { chooseBackend } from '../backend.js';

export interface BenchResult {
  model: string;
  params: number;
  backend: string;
  backendReason: string;
  batchSize: number;
  warmupSteps: number;
  steps: number;
  /** Median over the timed steps of @wrn/training's own training step (forward, backward, SGD update). */
  trainImagesPerSec: number;
  trainStepMs: number[];
  /** Median over the timed batches of model.predict. */
  inferImagesPerSec: number;
  inferBatchMs: number[];
  /** Highest resident set size seen during the bench, and the highest tf.memory().numBytes between steps. */
  peakRssMB: number;
  peakTensorMB: number;
}

const median = (values: readonly number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/** Random images and labels: the bench times the model and the loop, not a data set. */
function syntheticSource(batchSize: number, batches: number, shape: [number, number, number], numClasses: number): BatchSource {
  return {
    size: batchSize * batches,
    numClasses,
    batches: async function* (epoch: number): AsyncGenerator<Batch> {
      for (let b = 0; b < batches; b++) {
        yield {
          xs: tf.randomNormal([batchSize, ...shape], 0, 1, 'float32', epoch * 1000 + b) as tf.Tensor4D,
          ys: tf.randomUniform([batchSize], 0, numClasses, 'int32', epoch * 1000 + b + 1) as tf.Tensor1D,
        };
      }
    },
  };
}

/**
 * Training images/s from @wrn/training's own loop (train() on a synthetic source for warm-up + timed steps; each
 * step's time as the loop reports it), inference images/s from model.predict; warm-up excluded, medians reported.
 */
export async function runBench(options: {
  model: string;
  batchSize: number;
  backend: string;
  warmup: number;
  steps: number;
  classes?: number;
}): Promise<BenchResult> {
  const selection = await chooseBackend(options.backend);
  const model = await asUsageError(`--model ${options.model}`, () =>
    buildModel(options.model, { seed: 1, ...(options.classes ? { numClasses: options.classes } : {}) }),
  );
  const inputShape = model.inputs[0]!.shape.slice(1) as [number, number, number];
  const outputShape = model.outputs[0]!.shape;
  const numClasses = outputShape[outputShape.length - 1]!;
  let peakRss = process.memoryUsage().rss;
  let peakTensorBytes = tf.memory().numBytes;
  const sample = () => {
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    peakTensorBytes = Math.max(peakTensorBytes, tf.memory().numBytes);
  };
  const runDir = mkdtempSync(join(tmpdir(), 'wrn-bench-'));
  const stepSeconds: number[] = [];
  const totalSteps = options.warmup + options.steps;
  try {
    await train({
      model,
      trainSource: syntheticSource(options.batchSize, totalSteps, inputShape, numClasses),
      testSource: syntheticSource(options.batchSize, 1, inputShape, numClasses),
      config: { epochs: 1, batchSize: options.batchSize, seed: 1, schedule: { kind: 'constant', lr: 0.1 }, context: { bench: true } },
      runDir,
      onProgress: (event) => {
        sample();
        if (event.type === 'step' && event.step > options.warmup) stepSeconds.push(event.batchSize / event.imagesPerSec);
      },
    });
    const x = tf.randomNormal([options.batchSize, ...inputShape], 0, 1, 'float32', 7) as tf.Tensor4D;
    const inferMs: number[] = [];
    try {
      for (let i = 0; i < totalSteps; i++) {
        const start = performance.now();
        // The whole batch in one pass (predict's default batchSize, 32, would split a larger one).
        const out = model.predict(x, { batchSize: options.batchSize }) as tf.Tensor;
        sample();
        await out.data();
        out.dispose();
        if (i >= options.warmup) inferMs.push(performance.now() - start);
      }
    } finally {
      x.dispose();
    }
    const trainStepMs = stepSeconds.map((s) => s * 1000);
    return {
      model: options.model,
      params: countParams(model),
      backend: selection.name,
      backendReason: selection.reason,
      batchSize: options.batchSize,
      warmupSteps: options.warmup,
      steps: options.steps,
      trainImagesPerSec: (options.batchSize * 1000) / median(trainStepMs),
      trainStepMs: trainStepMs.map((m) => Math.round(m)),
      inferImagesPerSec: (options.batchSize * 1000) / median(inferMs),
      inferBatchMs: inferMs.map((m) => Math.round(m)),
      peakRssMB: Math.round(peakRss / 2 ** 20),
      peakTensorMB: Math.round(peakTensorBytes / 2 ** 20),
    };
  } finally {
    model.dispose();
    rmSync(runDir, { recursive: true, force: true });
  }
}

export function registerBench(program: Command, context: CommandContext): void {
  program
    .command('bench')
    .description('training and inference images/s and peak memory of a model on a backend (warm-up excluded, median of steps)')
    .option('-m, --model <name>', 'model in paper notation', 'wrn-16-2')
    .option('-b, --batch-size <n>', 'images per step', integerFlag(1), 64)
    .option('--backend <name>', BACKEND_CHOICES.join(' | '), choiceFlag(BACKEND_CHOICES), 'auto')
    .option('--warmup <n>', 'untimed steps first', integerFlag(0), 2)
    .option('--steps <n>', 'timed steps (the median is reported)', integerFlag(1), 5)
    .option('--classes <n>', 'classes of the final layer', integerFlag(2))
    .option('--json', 'print one JSON object')
    .addHelpText(
      'after',
      examples(['wrn bench --model resnet20 --batch-size 64', 'wrn bench --model wrn-16-4 --backend wasm --steps 3 --json']),
    )
    .addHelpText('after', '\nFor every model on every backend against PyTorch, see tools/bench in the repository.\n')
    .action(async (flags: { model: string; batchSize: number; backend: string; warmup: number; steps: number; classes?: number; json?: boolean }) => {
      const result = await runBench(flags);
      if (flags.json) {
        writeLine(context.io.stdout, JSON.stringify(result));
        return;
      }
      const out = context.io.stdout;
      writeLine(out, `${result.model} (${result.params.toLocaleString('en-US')} params), batch ${result.batchSize}, ${result.backendReason}`);
      writeLine(out, `train: ${result.trainImagesPerSec.toFixed(1)} images/s (median of ${result.steps} steps after ${result.warmupSteps} warm-up; step ms ${result.trainStepMs.join(', ')})`);
      writeLine(out, `infer: ${result.inferImagesPerSec.toFixed(1)} images/s (median of ${result.steps} batches; batch ms ${result.inferBatchMs.join(', ')})`);
      writeLine(out, `peak memory: ${result.peakRssMB} MB resident, ${result.peakTensorMB} MB in tensors between steps`);
    });
}
