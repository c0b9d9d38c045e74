import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import {
  concat, conv2d, grads, maxPool, memory, moments, pad, randomNormal, randomUniform, serialization, setBackend, slice, sum, tensor, tidy, mul,
  type Tensor, type Tensor4D,
} from '@tensorflow/tfjs-core';
import { input, model } from '@tensorflow/tfjs-layers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GroupedConv2D, NetworkGraph, PaddedConv2D, PaddedMaxPooling2D, TorchBatchNormalization, buildLayersModel, planLayerTable, torchPadding,
} from '../src/index.js';

beforeAll(async () => {
  await setBackend('cpu');
});
afterAll(async () => {
  await setBackend('cpu');
});

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs((a[i] as number) - (b[i] as number)));
  return a.length === b.length ? diff : Number.POSITIVE_INFINITY;
}

describe('Torch padding where TF pads asymmetrically', () => {
  it('torchPadding: k//2 on every side for strided k x k, TF same elsewhere (where both agree)', () => {
    expect(torchPadding(3, 2)).toBe(1);
    expect(torchPadding(7, 2)).toBe(3);
    expect(torchPadding(3, 1)).toBe('same');
    expect(torchPadding(1, 2)).toBe('same');
  });

  it('the plan gives strided 3x3 convs, the 7x7/2 stem and its 3x3/2 pool explicit padding, with the same output sizes', () => {
    const graph = new NetworkGraph({ seed: 1 });
    let x = graph.input([32, 32, 3]);
    x = graph.conv(x, { filters: 8, kernelSize: 7, strides: 2 }, 'stem');
    x = graph.maxPool(x, 3, 2, 'pool');
    x = graph.conv(x, { filters: 8, kernelSize: 3, strides: 2 }, 'down');
    x = graph.conv(x, { filters: 8, kernelSize: 3, strides: 2, groups: 4 }, 'grouped');
    x = graph.conv(x, { filters: 8, kernelSize: 3 }, 'plain');
    const rows = planLayerTable(graph);
    expect(rows.map((r) => [r.name, r.type, r.outputShape])).toEqual([
      ['input', 'InputLayer', [null, 32, 32, 3]],
      ['stem', 'WrnPaddedConv2D', [null, 16, 16, 8]],
      ['pool', 'WrnMaxPooling2D', [null, 8, 8, 8]],
      ['down', 'WrnPaddedConv2D', [null, 4, 4, 8]],
      ['grouped', 'WrnGroupedConv2D', [null, 2, 2, 8]],
      ['plain', 'Conv2D', [null, 2, 2, 8]],
    ]);
    const built = buildLayersModel(graph, 'padded');
    try {
      expect(built.layers.map((l) => [l.name, l.getClassName(), l.outputShape])).toEqual(rows.map((r) => [r.name, r.type, r.outputShape]));
      expect(built.getLayer('stem').getConfig()).toMatchObject({ padding: 3, strides: 2, groups: 1 });
      expect(built.getLayer('pool').getConfig()).toMatchObject({ padding: 1, strides: 2, poolSize: 3 });
    } finally {
      built.dispose();
    }
  });

  for (const backend of ['cpu', 'wasm'] as const) {
    it(`${backend}: PaddedConv2D and GroupedConv2D (every method) equal a 'valid' conv of the zero-padded input, gradients too`, async () => {
      await setBackend(backend);
      const before = memory().numTensors;
      tidy(() => {
        const x = randomNormal([2, 8, 8, 4], 0, 1, 'float32', 1) as Tensor4D;
        for (const [groups, method] of [[1, undefined], [2, 'split'], [2, 'depthwise'], [2, 'im2col']] as const) {
          const layer = groups === 1
            ? new PaddedConv2D({ filters: 6, kernelSize: 3, strides: 2, padding: 1, seed: 3 })
            : new GroupedConv2D({ filters: 6, kernelSize: 3, strides: 2, padding: 1, groups, seed: 3, method });
          const y = layer.apply(x) as Tensor;
          const kernel = layer.getWeights()[0] as Tensor4D;
          expect(y.shape).toEqual([2, 4, 4, 6]);
          const perGroup = (k: Tensor4D, a: Tensor4D) => {
            const padded = pad(a, [[0, 0], [1, 1], [1, 1], [0, 0]]) as Tensor4D;
            if (groups === 1) return conv2d(padded, k, 2, 'valid');
            const half = a.shape[3] / 2;
            const out = [0, 1].map((g) => conv2d(
              slice(padded, [0, 0, 0, g * half], [-1, -1, -1, half]) as Tensor4D,
              slice(k, [0, 0, 0, g * 3], [-1, -1, -1, 3]) as Tensor4D, 2, 'valid'));
            return concat(out, 3);
          };
          expect(maxAbsDiff(y.dataSync(), perGroup(kernel, x).dataSync())).toBeLessThan(1e-5);
          // gradients with respect to the input of the layer's op and of the reference (wasm has no depthwise
          // gradient kernels; fastestGroupedConvMethod never trains with 'depthwise' there)
          if (backend !== 'wasm' || method !== 'depthwise') {
            const g = randomNormal(y.shape, 0, 1, 'float32', 4);
            const ours = grads((a: Tensor) => sum(mul(layer.apply(a) as Tensor, g)))([x]);
            const reference = grads((a: Tensor) => sum(mul(perGroup(kernel, a as Tensor4D), g)))([x]);
            expect(maxAbsDiff(ours[0]!.dataSync(), reference[0]!.dataSync())).toBeLessThan(1e-4);
          }
          layer.dispose();
        }
      });
      expect(memory().numTensors).toBe(before);
    });

    it(`${backend}: PaddedMaxPooling2D ignores the padding (Torch pads with -inf), gradients too on cpu`, async () => {
      await setBackend(backend);
      const before = memory().numTensors;
      tidy(() => {
        // All negative: a zero padding would win every border window.
        const x = randomUniform([2, 8, 8, 3], -2, -1, 'float32', 5) as Tensor4D;
        const layer = new PaddedMaxPooling2D({ poolSize: 3, strides: 2, padding: 1 });
        const y = layer.apply(x) as Tensor;
        const reference = (a: Tensor4D) => maxPool(pad(a, [[0, 0], [1, 1], [1, 1], [0, 0]], -1e9) as Tensor4D, 3, 2, 'valid');
        expect(y.shape).toEqual([2, 4, 4, 3]);
        expect(Math.max(...y.dataSync())).toBeLessThan(-1);
        expect(maxAbsDiff(y.dataSync(), reference(x).dataSync())).toBe(0);
        // tfjs-backend-wasm 4.22's MaxPoolGrad kernel is wrong for every padding ('same' and 'valid' too), so the
        // gradient is checked where it is right; training an ImageNet stem on wasm needs that kernel fixed first.
        if (backend === 'cpu') {
          const g = randomNormal(y.shape, 0, 1, 'float32', 6);
          const ours = grads((a: Tensor) => sum(mul(layer.apply(a) as Tensor, g)))([x]);
          const expected = grads((a: Tensor) => sum(mul(reference(a as Tensor4D), g)))([x]);
          expect(maxAbsDiff(ours[0]!.dataSync(), expected[0]!.dataSync())).toBeLessThan(1e-5);
        }
        layer.dispose();
      });
      expect(memory().numTensors).toBe(before);
    });
  }
});

describe('TorchBatchNormalization', () => {
  it('normalises with the biased batch variance and updates the moving variance with the unbiased one, as Torch', async () => {
    await setBackend('cpu');
    const inputs = input({ shape: [3, 3, 2] });
    const bn = new TorchBatchNormalization({ name: 'bn', momentum: 0.9, epsilon: 1e-5 });
    const net = model({ inputs, outputs: bn.apply(inputs) as never });
    const x = tensor(Array.from({ length: 2 * 3 * 3 * 2 }, (_, i) => Math.sin(i * 1.3) * 3 + (i % 2)), [2, 3, 3, 2]);
    try {
      const y = tidy(() => (net.apply(x, { training: true }) as Tensor).arraySync()) as number[][][][];
      const { mean, variance } = tidy(() => {
        const m = moments(x, [0, 1, 2]);
        return { mean: Array.from(m.mean.dataSync()), variance: Array.from(m.variance.dataSync()) };
      });
      const n = 2 * 3 * 3;
      const [, , movingMean, movingVariance] = bn.getWeights().map((w) => Array.from(w.dataSync()));
      // moving = 0.9 * initial + 0.1 * batch, initial mean 0 and variance 1
      mean.forEach((m, c) => expect(movingMean?.[c]).toBeCloseTo(0.1 * m, 6));
      variance.forEach((v, c) => expect(movingVariance?.[c]).toBeCloseTo(0.9 + 0.1 * v * n / (n - 1), 6));
      // the output is normalised with the biased variance: unit population variance per channel
      const channel0 = y.flat(2).map((px) => px[0] as number);
      const mean0 = channel0.reduce((a, b) => a + b, 0) / n;
      const var0 = channel0.reduce((a, b) => a + (b - mean0) ** 2, 0) / n;
      expect(mean0).toBeCloseTo(0, 5);
      expect(var0).toBeCloseTo((variance[0] as number) / ((variance[0] as number) + 1e-5), 5);
      // inference uses the moving statistics
      const inferred = tidy(() => (net.predict(x) as Tensor).dataSync()[0] as number);
      const x0 = x.dataSync()[0] as number;
      expect(inferred).toBeCloseTo((x0 - (movingMean?.[0] as number)) / Math.sqrt((movingVariance?.[0] as number) + 1e-5), 5);
    } finally {
      x.dispose();
      net.dispose();
    }
  });

  it('round-trips its config and keeps tfjs-layers\' weight names', () => {
    const bn = new TorchBatchNormalization({ name: 'b', momentum: 0.8, epsilon: 1e-3, gammaInitializer: 'zeros' });
    const [cls, fromConfig] = serialization.SerializationMap.getMap().classNameMap[TorchBatchNormalization.className] ?? [];
    if (cls === undefined || fromConfig === undefined) throw new Error('TorchBatchNormalization is not registered');
    const again = fromConfig(cls, bn.getConfig()) as TorchBatchNormalization;
    expect(again.getConfig()).toEqual(bn.getConfig());
    const inputs = input({ shape: [2, 2, 3] });
    const net = model({ inputs, outputs: again.apply(inputs) as never });
    try {
      expect(again.weights.map((w) => w.originalName)).toEqual(['b/gamma', 'b/beta', 'b/moving_mean', 'b/moving_variance']);
      expect(again.trainableWeights.map((w) => w.originalName)).toEqual(['b/gamma', 'b/beta']);
      expect(Array.from(again.getWeights()[0]!.dataSync())).toEqual([0, 0, 0]);
    } finally {
      net.dispose();
    }
    expect(() => new TorchBatchNormalization({ momentum: 2 })).toThrow('TorchBatchNormalization: momentum must be in [0, 1], got 2');
    expect(() => new PaddedMaxPooling2D({ poolSize: 3, strides: 2, padding: 3 }))
      .toThrow("PaddedMaxPooling2D: padding must be 'same', 'valid' or an integer in [0, 2] (symmetric padding below the kernel size 3), got 3");
  });
});
