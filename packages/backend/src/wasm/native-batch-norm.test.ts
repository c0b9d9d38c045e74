import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs-core';
// tfjs-layers registers the gradient functions in Node (tfjs-core's CommonJS build does not).
import '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { BATCH_NORM_TRAINING_KERNEL, TorchBatchNormalization } from '@wrn/blocks';
import { loadNativeConvKernels } from '@wrn/native';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maxRelativeError, randomArray } from './cpu-reference.test-support';
import { NATIVE_BATCH_NORM_TRAINING_GRAD } from './native-batch-norm';
import { registerWasmTrainingGradients } from './training-gradients';
import { registerWasmTrainingKernels } from './training-kernels';

// @wrn/blocks' TorchBatchNormalization in training mode on the native kernels (wasm) against the same layer on the cpu
// backend (tf.moments + tf.batchNorm and tfjs-core's gradients), and its moving statistics against PyTorch's
// BatchNorm2d. @wrn/native's own tests check the kernels against PyTorch's autograd.
const native = loadNativeConvKernels();
if (!native.ok) {
  if (process.env['CI']) throw new Error(`native-batch-norm: @wrn/native does not load: ${native.reason}`);
  console.warn(`skipping the native BatchNorm training kernels on wasm: @wrn/native does not load (${native.reason})`);
}
const PYTHON = '/usr/bin/python3';
const torchMissing = spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status !== 0;
if (torchMissing) {
  if (process.env['CI']) throw new Error(`native-batch-norm: ${PYTHON} cannot import torch (apt-get install python3-torch)`);
  console.warn(`skipping the PyTorch oracle of the BatchNorm layer's moving statistics: ${PYTHON} cannot import torch (python3-torch)`);
}

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** A built layer with gamma and beta set from `seed` (moving statistics at their initial 0 and 1). */
function bnLayer(channels: number, seed: string): TorchBatchNormalization {
  const layer = new TorchBatchNormalization({ momentum: 0.9, epsilon: 1e-5 });
  layer.build([null, null, null, channels]);
  const [, , movingMean, movingVariance] = layer.getWeights();
  tf.tidy(() => {
    const g = tf.add(tf.tensor(randomArray(channels, `g${seed}`)), 1.2);
    layer.setWeights([g, tf.tensor(randomArray(channels, `b${seed}`)), movingMean!, movingVariance!]);
  });
  return layer;
}

// A layer only ever called eagerly has no inbound nodes, so Layer.dispose refuses it: its weights go directly.
function disposeLayer(layer: TorchBatchNormalization): void {
  for (const w of layer.weights) w.dispose();
}

interface StepResult {
  values: number[];
  leaked: number;
  kernels: string[];
}

/**
 * One training step of the layer followed by ReLU: y, the gradients with respect to x, gamma and beta of
 * sum(relu(y) * dy), then the moving mean and variance; all flattened into one array.
 */
async function layerStep(backend: string, shape: number[], seed: string): Promise<StepResult> {
  await tf.setBackend(backend);
  const channels = shape[shape.length - 1]!;
  const layer = bnLayer(channels, seed);
  const x = tf.variable(tf.tensor(randomArray(size(shape), `x${seed}`), shape));
  const dy = tf.tensor(randomArray(size(shape), `dy${seed}`), shape);
  const [gamma, beta] = layer.trainableWeights.map((w) => w.read() as tf.Variable);
  const before = tf.memory().numTensors;
  let y: tf.Tensor | undefined;
  const profile = await tf.profile(() => {
    const { value, grads } = tf.variableGrads(() => {
      const out = layer.apply(x, { training: true }) as tf.Tensor;
      y = tf.keep(out.clone());
      return tf.sum(tf.mul(tf.relu(out), dy)) as tf.Scalar;
    }, [x, gamma!, beta!]);
    const flat = tf.concat([tf.reshape(y!, [-1]), ...[x, gamma!, beta!].map((v) => tf.reshape(grads[v.name]!, [-1]))]);
    tf.dispose([value, ...Object.values(grads)]);
    return flat;
  });
  const result = tf.tidy(() => tf.concat([tf.reshape(profile.result as tf.Tensor, [-1]), ...layer.nonTrainableWeights.map((w) => w.read())]));
  const values = Array.from(await result.data());
  tf.dispose([result, profile.result as tf.Tensor, y!]);
  const leaked = tf.memory().numTensors - before;
  disposeLayer(layer);
  tf.dispose([x, dy]);
  return { values, leaked, kernels: profile.kernelNames };
}

describe.runIf(native.ok)("TorchBatchNormalization in training mode on @wrn/native's BatchNorm kernels (wasm)", () => {
  beforeAll(async () => {
    if (!native.ok) return;
    registerWasmTrainingKernels({ native: native.kernels });
    registerWasmTrainingGradients();
    await tf.setBackend('wasm');
  });
  afterAll(async () => {
    await tf.setBackend('cpu');
  });

  for (const shape of [
    [3, 5, 7, 13],
    [8, 9, 9, 19],
    [2, 1, 1, 37],
  ]) {
    it(`output, gradients and moving statistics of [${shape}] equal the cpu backend's moments + batchNorm`, async () => {
      const wasm = await layerStep('wasm', shape, `${shape}`);
      const cpu = await layerStep('cpu', shape, `${shape}`);
      expect(wasm.kernels).toContain(BATCH_NORM_TRAINING_KERNEL);
      expect(wasm.kernels).toContain(NATIVE_BATCH_NORM_TRAINING_GRAD);
      expect(wasm.kernels).not.toContain('Square');
      expect(cpu.kernels).not.toContain(BATCH_NORM_TRAINING_KERNEL);
      expect(maxRelativeError(wasm.values, cpu.values)).toBeLessThan(1e-5);
      // (tf.profile itself holds a few tensors: the flat-count test below checks the absolute number.)
      expect(wasm.leaked).toBe(cpu.leaked);
    });
  }

  it('leaves tf.memory().numTensors flat over training steps', async () => {
    await tf.setBackend('wasm');
    const layer = bnLayer(11, 'flat');
    const x = tf.variable(tf.tensor(randomArray(4 * 5 * 5 * 11, 'xflat'), [4, 5, 5, 11]));
    const counts: number[] = [];
    for (let step = 0; step < 3; step++) {
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(layer.apply(x, { training: true }) as tf.Tensor)) as tf.Scalar);
      tf.dispose([value, ...Object.values(grads)]);
      counts.push(tf.memory().numTensors);
    }
    expect(new Set(counts).size).toBe(1);
    disposeLayer(layer);
    x.dispose();
  });

  it.skipIf(torchMissing)("two training steps' outputs and moving statistics equal torch.nn.BatchNorm2d's (momentum 0.1)", async () => {
    await tf.setBackend('wasm');
    const shape = [6, 5, 4, 7];
    const channels = 7;
    const layer = bnLayer(channels, 'torch');
    const batches = [0, 1].map((i) => randomArray(size(shape), `torch${i}`).map((v) => v * 3 + 0.5));
    const outputs = batches.map((b) =>
      tf.tidy(() => Array.from((layer.apply(tf.tensor(b, shape), { training: true }) as tf.Tensor).dataSync())),
    );
    const [gamma, beta, movingMean, movingVariance] = layer.getWeights().map((w) => Array.from(w.dataSync()));
    const script = `
import json, sys, torch
c = json.load(sys.stdin)
bn = torch.nn.BatchNorm2d(${channels}, momentum=0.1, eps=1e-5).double()
with torch.no_grad():
    bn.weight.copy_(torch.tensor(c["gamma"], dtype=torch.float64))
    bn.bias.copy_(torch.tensor(c["beta"], dtype=torch.float64))
bn.train()
ys = [bn(torch.tensor(b, dtype=torch.float64).reshape(${JSON.stringify(shape)}).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).flatten().tolist() for b in c["batches"]]
json.dump({"ys": ys, "mean": bn.running_mean.tolist(), "var": bn.running_var.tolist()}, sys.stdout)
`;
    const answer = spawnSync(PYTHON, ['-c', script], {
      input: JSON.stringify({ gamma, beta, batches: batches.map((b) => Array.from(b)) }),
      encoding: 'utf8',
      maxBuffer: 1 << 26,
    });
    expect(answer.stderr).toBe('');
    const torch = JSON.parse(answer.stdout) as { ys: number[][]; mean: number[]; var: number[] };
    outputs.forEach((y, i) => expect(maxRelativeError(y, torch.ys[i]!), `y of step ${i + 1}`).toBeLessThan(2e-6));
    expect(maxRelativeError(movingMean!, torch.mean)).toBeLessThan(1e-6);
    expect(maxRelativeError(movingVariance!, torch.var)).toBeLessThan(1e-6);
    disposeLayer(layer);
  });

  it('nativeElementwise: false takes the kernels away (the layer goes back to tf.moments); true brings them back', async () => {
    if (!native.ok) return;
    registerWasmTrainingKernels({ native: native.kernels, nativeElementwise: false });
    expect(tf.getKernel(BATCH_NORM_TRAINING_KERNEL, 'wasm')).toBeUndefined();
    const off = await layerStep('wasm', [2, 3, 3, 5], 'off');
    expect(off.kernels).not.toContain(BATCH_NORM_TRAINING_KERNEL);
    registerWasmTrainingKernels({ native: native.kernels });
    const on = await layerStep('wasm', [2, 3, 3, 5], 'off');
    expect(on.kernels).toContain(BATCH_NORM_TRAINING_KERNEL);
    expect(maxRelativeError(on.values, off.values)).toBeLessThan(1e-5);
  });
});
