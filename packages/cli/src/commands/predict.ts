import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import type { Command } from 'commander';
import { PNG } from 'pngjs';
import * as tf from '@tensorflow/tfjs-core';
import { normalizeBatch, PAPER_NORMALIZATION, type Normalization } from '@wrn/datasets';
import { decodeJpeg, getDataset } from '@wrn/datasets/node';
import { outputKindOf } from '@wrn/training';
import { BACKEND_CHOICES } from '@wrn/backend/node';
import { loadCheckpointModel, recordedClassNames, recordedNormalization, runContext } from '../checkpoint-model.js';
import type { CommandContext } from '../context.js';
import { errorMessage, UsageError } from '../errors.js';
import { choiceFlag, examples, integerFlag } from '../flags.js';
import { writeLine } from '../io.js';
import type { DatasetName } from '../train-config.js';
import { chooseBackend } from '../backend.js';

/** An RGB image as decoded from a file. */
interface DecodedImage {
  width: number;
  height: number;
  /** width * height * 3 bytes, row-major RGB. */
  rgb: Uint8Array;
}

/** Decodes a PNG or JPEG file (by its signature, not its name) to RGB, dropping alpha. */
export function decodeImageFile(path: string): DecodedImage {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    throw new UsageError(`${path}: cannot read (${(error as NodeJS.ErrnoException).code ?? errorMessage(error)})`);
  }
  const isPng = bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  const isJpeg = bytes[0] === 0xff && bytes[1] === 0xd8;
  let decoded: { width: number; height: number; data: Uint8Array };
  try {
    if (isPng) decoded = PNG.sync.read(bytes);
    else if (isJpeg) {
      const image = decodeJpeg(bytes); // libjpeg-turbo: the pixels PIL/torchvision see
      decoded = { width: image.width, height: image.height, data: image.rgba };
    }
    else throw new UsageError(`${path}: not a PNG or JPEG file (extension ${JSON.stringify(extname(path))}, first bytes ${bytes.subarray(0, 4).toString('hex')})`);
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`${path}: cannot decode as ${isPng ? 'PNG' : 'JPEG'}: ${errorMessage(error)}`);
  }
  const pixels = decoded.width * decoded.height;
  const rgb = new Uint8Array(pixels * 3);
  for (let i = 0; i < pixels; i++) {
    rgb[i * 3] = decoded.data[i * 4]!;
    rgb[i * 3 + 1] = decoded.data[i * 4 + 1]!;
    rgb[i * 3 + 2] = decoded.data[i * 4 + 2]!;
  }
  return { width: decoded.width, height: decoded.height, rgb };
}

export interface Prediction {
  file: string;
  width: number;
  height: number;
  top: { label: number; className: string; probability: number }[];
}

export function registerPredict(program: Command, context: CommandContext): void {
  program
    .command('predict')
    .description('classify PNG/JPEG images with a checkpoint: top-5 classes with probabilities')
    .requiredOption('--checkpoint <path>', 'a checkpoint directory, or a run directory (uses checkpoints/best)')
    .argument('<images...>', 'PNG or JPEG files; resized to the model\'s input size when they differ')
    .option('-k, --top <k>', 'classes to show per image', integerFlag(1), 5)
    .option('--backend <name>', BACKEND_CHOICES.join(' | '), choiceFlag(BACKEND_CHOICES), 'auto')
    .option('--batch-size <n>', 'images per model.predict call (passed to it as its batchSize)', integerFlag(1), 64)
    .option('--json', 'print one JSON array with an object per image')
    .addHelpText(
      'after',
      examples([
        'wrn predict --checkpoint runs/wrn-16-2-cifar10-20261123-081500 frog.png truck.jpg',
        'wrn predict --checkpoint runs/wrn-16-2-cifar10-20261123-081500/checkpoints/last photos/*.jpg --top 3 --json',
      ]),
    )
    .action(async (files: string[], flags: { checkpoint: string; top: number; backend: string; batchSize: number; json?: boolean }) => {
      const images = files.map((file) => ({ file, ...decodeImageFile(file) }));
      await chooseBackend(flags.backend);
      const { model, runConfig } = await loadCheckpointModel(flags.checkpoint, { foldBatchNorm: true });
      try {
        const run = runContext(runConfig);
        const dataset = (run.dataset ?? 'cifar10') as DatasetName;
        const normalization: Normalization = recordedNormalization(runConfig) ?? PAPER_NORMALIZATION[dataset];
        const inputShape = model.inputs[0]!.shape;
        const [height, width] = [inputShape[1] ?? 32, inputShape[2] ?? 32];
        const outputShape = model.outputs[0]!.shape;
        const numClasses = outputShape[outputShape.length - 1]!;
        const classNames = recordedClassNames(runConfig) ?? (getDataset(dataset).numClasses === numClasses ? [...getDataset(dataset).classNames] : []);
        const k = Math.min(flags.top, numClasses);
        const probabilities = outputKindOf(model) === 'probabilities';
        const predictions: Prediction[] = [];
        // Up to --batch-size images per predict call, with that batchSize: tfjs-layers' predict would otherwise cut
        // the batch at its default of 32, and one call per image pays the per-layer overhead once per image.
        for (let first = 0; first < images.length; first += flags.batchSize) {
          const batch = images.slice(first, first + flags.batchSize);
          const top = tf.tidy(() => {
            const x = tf.concat(
              batch.map((image) => {
                const pixels = tf.tensor4d(Float32Array.from(image.rgb), [1, image.height, image.width, 3]);
                // The network saw height x width images in training; others are resampled to that size.
                return image.height !== height || image.width !== width ? tf.image.resizeBilinear(pixels, [height, width], true) : pixels;
              }),
            );
            const output = model.predict(normalizeBatch(x, normalization), { batchSize: batch.length }) as tf.Tensor2D;
            const p = probabilities ? output : tf.softmax(output);
            const { values, indices } = tf.topk(p, k);
            return [values, indices] as const;
          });
          // Read asynchronously: the webgpu backend cannot read a GPU tensor synchronously in Node.
          const [values, indices] = await Promise.all([top[0].data(), top[1].data()]);
          tf.dispose([...top]);
          batch.forEach((image, row) => {
            predictions.push({
              file: image.file,
              width: image.width,
              height: image.height,
              top: Array.from(indices.subarray(row * k, (row + 1) * k), (label, i) => ({
                label,
                className: classNames[label] ?? String(label),
                probability: values[row * k + i]!,
              })),
            });
          });
        }
        if (flags.json) {
          writeLine(context.io.stdout, JSON.stringify(predictions));
          return;
        }
        for (const p of predictions) {
          writeLine(context.io.stdout, `${p.file} (${p.width}x${p.height})`);
          for (const [rank, t] of p.top.entries()) {
            writeLine(context.io.stdout, `  ${rank + 1}. ${t.className.padEnd(14)} ${(100 * t.probability).toFixed(2).padStart(6)}%`);
          }
        }
      } finally {
        model.dispose();
      }
    });
}
