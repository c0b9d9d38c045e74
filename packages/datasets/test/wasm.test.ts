import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';

import { PAPER_NORMALIZATION, createPipeline, cropAndFlip, selectImages } from '../src/index.js';
import { loadCifar10 } from '../src/node.js';
import type { AugmentationDraw } from '../src/index.js';
import { CIFAR10_SUBSET, NO_SHARED_DATA } from './helpers.js';

afterAll(async () => {
  await tf.setBackend('cpu');
});

async function on<T>(backend: 'cpu' | 'wasm', run: () => T | Promise<T>): Promise<T> {
  await tf.setBackend(backend);
  await tf.ready();
  return run();
}

// Training runs on wasm, so the augmentation must give there exactly what the cpu tests pin down.
describe.skipIf(NO_SHARED_DATA)('the pipeline on the wasm backend', () => {
  it('crops and flips exactly as on cpu (reflect and zero padding, batch of 64)', async () => {
    const values = Float32Array.from({ length: 64 * 32 * 32 * 3 }, (_, i) => (i * 7919) % 1000);
    const draw: AugmentationDraw = {
      rowOffsets: Int32Array.from({ length: 64 }, (_, i) => (i * 5) % 9),
      colOffsets: Int32Array.from({ length: 64 }, (_, i) => (i * 7) % 9),
      flips: Uint8Array.from({ length: 64 }, (_, i) => i % 2),
    };
    for (const padMode of ['reflect', 'zero'] as const) {
      const run = () => {
        const x = tf.tensor4d(values, [64, 32, 32, 3]);
        const y = cropAndFlip(x, draw, { padMode, padding: 4, flip: true });
        const data = y.dataSync().slice();
        tf.dispose([x, y]);
        return data;
      };
      const cpu = await on('cpu', run);
      const wasm = await on('wasm', run);
      expect(wasm).toEqual(cpu);
    }
  });

  it('yields the same batches as on cpu', async () => {
    const images = selectImages(loadCifar10(CIFAR10_SUBSET, { split: 'test' }), Array.from({ length: 40 }, (_, i) => i));
    const collect = async () => {
      const pipeline = createPipeline(images, {
        batchSize: 16,
        shuffle: true,
        seed: 3,
        augment: 'reflect',
        normalization: PAPER_NORMALIZATION.cifar10,
      });
      const out: number[][] = [];
      await pipeline.batches(2).forEachAsync(({ xs, ys }) => {
        out.push(Array.from(xs.dataSync()), Array.from(ys.dataSync()));
        tf.dispose([xs, ys]);
      });
      return out;
    };
    const cpu = await on('cpu', collect);
    const wasm = await on('wasm', collect);
    expect(wasm.length).toBe(6);
    let worst = 0;
    wasm.forEach((batch, i) => batch.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - cpu[i]![j]!)))));
    expect(worst).toBeLessThan(1e-5);
  });
});
