import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { buildModel } from '@wrn/architectures';
import { wasmNativeConvKernels } from '@wrn/backend';
import { selectBackend } from '@wrn/backend/node';
import { ZERO_PAD_SHORTCUT_KERNEL } from '@wrn/blocks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// model.predict of whole models on wasm with @wrn/native's convolutions and inference kernels (BatchNorm, ReLU,
// Add, the option-A shortcut) against the cpu backend's tfjs-core kernels, with BatchNorm statistics away from
// their initial 0 and 1. (architectures' torch-oracle test checks the cpu function against PyTorch.)
let nativeReason: string | undefined;
beforeAll(async () => {
  const selection = await selectBackend('wasm', {});
  if (wasmNativeConvKernels() == null) nativeReason = selection.reason;
});
afterAll(async () => {
  await tf.setBackend('cpu');
});

function randomizeBatchNorms(model: ReturnType<typeof buildModel>): void {
  let seed = 10;
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'WrnBatchNormalization') continue;
    const c = layer.getWeights()[0]!.shape[0]!;
    const u = (low: number, high: number) => tf.randomUniform([c], low, high, 'float32', seed++);
    layer.setWeights([u(0.5, 1.5), u(-0.3, 0.3), u(-0.5, 0.5), u(0.3, 2)]);
  }
}

describe('model.predict on wasm with the native inference kernels equals the cpu backend', () => {
  for (const name of ['resnet20', 'preact-resnet20', 'wrn-10-2']) {
    it(name, async (context) => {
      if (nativeReason != null) {
        if (process.env['CI']) throw new Error(`@wrn/native is not in use on wasm: ${nativeReason}`);
        console.warn(`skipping ${name}'s predict on wasm with native kernels: @wrn/native is not in use (${nativeReason})`);
        context.skip();
      }
      const model = buildModel(name, { numClasses: 10, inputShape: [8, 8, 3], seed: 3 });
      randomizeBatchNorms(model);
      const xs = tf.randomNormal([3, 8, 8, 3], 0, 1, 'float32', 4);
      const run = async (backend: string) => {
        await tf.setBackend(backend);
        const before = tf.memory().numTensors;
        const out = model.predict(xs) as tf.Tensor;
        const values = Array.from(await out.data());
        out.dispose();
        expect(tf.memory().numTensors, `${name} on ${backend}: tensors left`).toBe(before);
        return values;
      };
      const wasm = await run('wasm');
      const cpu = await run('cpu');
      const scale = Math.max(...cpu.map(Math.abs));
      const worst = Math.max(...wasm.map((v, i) => Math.abs(v - cpu[i]!)));
      expect(worst / scale, name).toBeLessThan(1e-5);
      await tf.setBackend('wasm');
      const { kernelNames } = await tf.profile(() => model.predict(xs) as tf.Tensor);
      if (name === 'resnet20') expect(kernelNames).toContain(ZERO_PAD_SHORTCUT_KERNEL);
      expect(kernelNames).not.toContain(tf.FusedDepthwiseConv2D);
      xs.dispose();
      model.dispose();
    });
  }
});
