import '@tensorflow/tfjs-backend-cpu';
import {
  abs, add, concat, conv2d, dispose, getBackend, grads, max, onesLike, randomNormal, relu, setBackend, slice, split, square, sub, sum, tidy, zerosLike,
  type Tensor, type Tensor4D,
} from '@tensorflow/tfjs-core';
import { input, model } from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { GROUPED_CONV_METHODS, GroupedConv2D, fastestGroupedConvMethod, groupedConv2d, hasGroupedConvKernel, registerGroupedConvMethodResolver } from '../src/index.js';

beforeAll(async () => {
  await setBackend('cpu');
});

function maxAbsDiff(a: Tensor, b: Tensor): number {
  return tidy(() => max(abs(sub(a, b))).dataSync()[0] as number);
}

/** Each group as its own conv on its slice of the channels (fig. 3b). */
function perGroupConv(x: Tensor4D, kernel: Tensor4D, groups: number, strides: number): Tensor4D {
  const xs = split(x, groups, 3);
  const ks = split(kernel, groups, 3);
  return concat(xs.map((xg, g) => conv2d(xg as Tensor4D, ks[g] as Tensor4D, strides, 'same')), 3) as Tensor4D;
}

describe('groupedConv2d', () => {
  for (const method of GROUPED_CONV_METHODS) {
    for (const strides of [1, 2]) {
      it(`'${method}' equals one conv per group (stride ${strides})`, () => {
        tidy(() => {
          const x = randomNormal([2, 7, 6, 12], 0, 1, 'float32', 1) as Tensor4D;
          const kernel = randomNormal([3, 3, 3, 8], 0, 1, 'float32', 2) as Tensor4D; // 4 groups: 3 in, 2 out each
          const out = groupedConv2d(x, kernel, { strides, padding: 'same', groups: 4, method });
          expect(out.shape).toEqual([2, Math.ceil(7 / strides), Math.ceil(6 / strides), 8]);
          expect(maxAbsDiff(out, perGroupConv(x, kernel, 4, strides))).toBeLessThan(1e-5);
        });
      });
    }
  }

  it('output channel g*b+j sees only input channels of group g', () => {
    tidy(() => {
      const x = randomNormal([1, 5, 5, 4], 0, 1, 'float32', 3) as Tensor4D;
      const kernel = randomNormal([3, 3, 2, 4], 0, 1, 'float32', 4) as Tensor4D;
      const base = groupedConv2d(x, kernel, { strides: 1, padding: 'same', groups: 2 });
      // perturb input channel 3 (group 1): outputs 0..1 (group 0) must not change
      const bump = concat([zerosLike(slice(x, [0, 0, 0, 0], [1, 5, 5, 3])), onesLike(slice(x, [0, 0, 0, 3], [1, 5, 5, 1]))], 3);
      const bumped = add(x, bump) as Tensor4D;
      const moved = groupedConv2d(bumped, kernel, { strides: 1, padding: 'same', groups: 2 });
      expect(maxAbsDiff(slice(base, [0, 0, 0, 0], [1, 5, 5, 2]), slice(moved, [0, 0, 0, 0], [1, 5, 5, 2]))).toBe(0);
      expect(maxAbsDiff(slice(base, [0, 0, 0, 2], [1, 5, 5, 2]), slice(moved, [0, 0, 0, 2], [1, 5, 5, 2]))).toBeGreaterThan(1e-3);
    });
  });

  for (const method of GROUPED_CONV_METHODS) {
    it(`'${method}' has gradients equal to the per-group formulation`, () => {
      tidy(() => {
        const x = randomNormal([2, 6, 6, 8], 0, 1, 'float32', 5) as Tensor4D;
        const kernel = randomNormal([3, 3, 2, 8], 0, 1, 'float32', 6) as Tensor4D;
        const loss = (out: Tensor) => sum(square(out));
        const ours = grads((a: Tensor, k: Tensor) => loss(groupedConv2d(a as Tensor4D, k as Tensor4D, { strides: 2, padding: 'same', groups: 4, method })))([x, kernel]);
        const ref = grads((a: Tensor, k: Tensor) => loss(perGroupConv(a as Tensor4D, k as Tensor4D, 4, 2)))([x, kernel]);
        expect(maxAbsDiff(ours[0] as Tensor, ref[0] as Tensor)).toBeLessThan(1e-4);
        expect(maxAbsDiff(ours[1] as Tensor, ref[1] as Tensor)).toBeLessThan(1e-4);
      });
    });
  }

  it('rejects channels that do not divide into the groups, naming the numbers', () => {
    tidy(() => {
      const x = randomNormal([1, 4, 4, 6]) as Tensor4D;
      expect(() => groupedConv2d(x, randomNormal([3, 3, 4, 4]) as Tensor4D, { strides: 1, padding: 'same', groups: 2 }))
        .toThrow('groupedConv2d: input has 6 channels, kernel expects 2 groups x 4');
    });
    expect(() => new GroupedConv2D({ filters: 10, kernelSize: 3, groups: 4 })).toThrow('filters (10) must be a multiple of groups (4)');
  });
});

describe('GroupedConv2D layer', () => {
  it('asks the resolver registered for a backend over the measured table until it is removed, and names a bad one', () => {
    const asked: unknown[] = [];
    const removeWasm = registerGroupedConvMethodResolver('wasm', () => 'split');
    expect(fastestGroupedConvMethod('wasm', false)).toBe('split');
    expect(fastestGroupedConvMethod('wasm', true)).toBe('split');
    const removeCpu = registerGroupedConvMethodResolver('cpu', (context) => (asked.push(context), context.training ? 'depthwise' : 'split'));
    expect(fastestGroupedConvMethod('cpu', true, { groups: 8, strides: 1 })).toBe('depthwise');
    expect(fastestGroupedConvMethod('cpu', false, { groups: 4, strides: 2 })).toBe('split');
    expect(asked).toEqual([{ training: true, groups: 8, strides: 1 }, { training: false, groups: 4, strides: 2 }]);
    removeWasm();
    removeCpu();
    expect(fastestGroupedConvMethod('wasm', false)).toBe('depthwise');
    expect(fastestGroupedConvMethod('cpu', true, { groups: 8, strides: 1 })).toBe('im2col');
    const removeBad = registerGroupedConvMethodResolver('wasm', () => 'fft' as never);
    expect(() => fastestGroupedConvMethod('wasm', false)).toThrow(
      "the grouped conv method resolver of backend 'wasm' returned 'fft'; expected one of split, depthwise, im2col",
    );
    removeBad();
    expect(fastestGroupedConvMethod('wasm', false)).toBe('depthwise');
  });

  it('removes a resolver only while it is the one registered', () => {
    const removeFirst = registerGroupedConvMethodResolver('webgl', () => 'im2col');
    const removeSecond = registerGroupedConvMethodResolver('webgl', () => 'depthwise');
    removeFirst();
    expect(fastestGroupedConvMethod('webgl', true)).toBe('depthwise');
    removeSecond();
    expect(fastestGroupedConvMethod('webgl', true)).toBe('split');
  });

  it('runs a layer with the registered method without changing its config', () => {
    const layer = new GroupedConv2D({ filters: 8, kernelSize: 3, groups: 4, name: 'g' });
    const x = randomNormal([1, 6, 6, 8]) as Tensor4D;
    const reference = layer.apply(x) as Tensor;
    const configBefore = JSON.stringify(layer.getConfig());
    const asked: unknown[] = [];
    const remove = registerGroupedConvMethodResolver(getBackend(), (context) => (asked.push(context), 'im2col'));
    const viaResolver = layer.apply(x) as Tensor;
    remove();
    expect(asked).toEqual([{ training: false, groups: 4, strides: 1 }]);
    expect(maxAbsDiff(viaResolver, reference)).toBeLessThan(1e-5);
    expect(JSON.stringify(layer.getConfig())).toBe(configBefore);
    expect(layer.getConfig()['method']).toBeUndefined();
    dispose([x, reference, viaResolver]);
  });

  it('picks the measured fastest method per backend and mode, and all give the same output', () => {
    expect(fastestGroupedConvMethod('cpu', true, { groups: 8, strides: 1 })).toBe('im2col');
    expect(fastestGroupedConvMethod('cpu', true, { groups: 32, strides: 1 })).toBe('split');
    expect(fastestGroupedConvMethod('cpu', true, { groups: 8, strides: 2 })).toBe('split');
    expect(fastestGroupedConvMethod('cpu', false, { groups: 8, strides: 1 })).toBe('split');
    expect(fastestGroupedConvMethod('wasm', true)).toBe('split');
    expect(fastestGroupedConvMethod('wasm', false)).toBe('depthwise');
    expect(fastestGroupedConvMethod('tensorflow', true)).toBe('split');
    const layer = new GroupedConv2D({ filters: 8, kernelSize: 3, groups: 4, strides: 1, seed: 3, name: 'g' });
    const forced = new GroupedConv2D({ filters: 8, kernelSize: 3, groups: 4, strides: 1, seed: 3, name: 'g2', method: 'depthwise' });
    tidy(() => {
      const x = randomNormal([2, 6, 6, 8], 0, 1, 'float32', 4);
      const training = layer.apply(x, { training: true }) as Tensor;
      const inference = layer.apply(x, { training: false }) as Tensor;
      expect(training.shape).toEqual([2, 6, 6, 8]);
      expect(maxAbsDiff(training, inference)).toBeLessThan(1e-5);
      expect(maxAbsDiff(forced.apply(x) as Tensor, inference)).toBeLessThan(1e-5);
    });
    expect(layer.getConfig()).toMatchObject({ filters: 8, kernelSize: 3, groups: 4, strides: 1, padding: 'same', seed: 3 });
    expect(layer.getConfig()).not.toHaveProperty('method');
    expect(forced.getConfig()).toMatchObject({ method: 'depthwise' });
    expect(() => new GroupedConv2D({ filters: 8, kernelSize: 3, groups: 4, method: 'fft' as never })).toThrow("method must be one of split, depthwise, im2col, native, got 'fft'");
    layer.dispose();
    forced.dispose();
  });

  it("runs 'native' as split where the backend has no WrnGroupedConv2D kernel (cpu), as a forced method keeps it in its config", () => {
    expect(hasGroupedConvKernel()).toBe(false);
    const native = new GroupedConv2D({ filters: 8, kernelSize: 3, groups: 4, strides: 2, padding: 1, seed: 3, name: 'n', method: 'native' });
    const split = new GroupedConv2D({ filters: 8, kernelSize: 3, groups: 4, strides: 2, padding: 1, seed: 3, name: 's', method: 'split' });
    tidy(() => {
      const x = randomNormal([2, 7, 7, 8], 0, 1, 'float32', 5);
      expect(maxAbsDiff(native.apply(x) as Tensor, split.apply(x) as Tensor)).toBe(0);
    });
    expect(native.getConfig()).toMatchObject({ method: 'native' });
    native.dispose();
    split.dispose();
  });
});

describe('GroupedConv2D in a ResNeXt bottleneck equals split-transform-merge (fig. 3a)', () => {
  it('matches to 1e-5 on random inputs', () => {
    const cardinality = 4;
    const groupWidth = 3;
    const width = cardinality * groupWidth;
    const channels = 16;
    // fig. 3c: 1x1 reduce to C*d, grouped 3x3, 1x1 expand (ReLUs between, BN omitted: it acts per channel)
    const inp = input({ shape: [6, 6, width] });
    const grouped = new GroupedConv2D({ filters: width, kernelSize: 3, groups: cardinality, strides: 2, seed: 1, name: 'grouped' });
    const reduceKernel = randomNormal([1, 1, channels, width], 0, 0.3, 'float32', 7) as Tensor4D;
    const expandKernel = randomNormal([1, 1, width, channels], 0, 0.3, 'float32', 8) as Tensor4D;
    const x = randomNormal([3, 6, 6, channels], 0, 1, 'float32', 9) as Tensor4D;
    const groupedModel = model({ inputs: inp, outputs: grouped.apply(inp) as never });
    try {
      tidy(() => {
        const kernel = grouped.getWeights()[0] as Tensor4D;
        expect(kernel.shape).toEqual([3, 3, groupWidth, width]);
        const reduced = relu(conv2d(x, reduceKernel, 1, 'same'));
        const fig3c = conv2d(relu(groupedModel.predict(reduced) as Tensor4D), expandKernel, 1, 'same');
        // fig. 3a: C paths, each 1x1 (d) -> 3x3 (d -> d) -> 1x1 (d -> channels), summed
        const paths = Array.from({ length: cardinality }, (_, c) => {
          const path = relu(conv2d(x, slice(reduceKernel, [0, 0, 0, c * groupWidth], [1, 1, channels, groupWidth]), 1, 'same'));
          const transformed = relu(conv2d(path, slice(kernel, [0, 0, 0, c * groupWidth], [3, 3, groupWidth, groupWidth]), 2, 'same'));
          return conv2d(transformed, slice(expandKernel, [0, 0, c * groupWidth, 0], [1, 1, groupWidth, channels]), 1, 'same');
        });
        const fig3a = paths.reduce((sum, path) => add(sum, path));
        expect(fig3c.shape).toEqual([3, 3, 3, channels]);
        expect(maxAbsDiff(fig3c, fig3a)).toBeLessThan(1e-5);
      });
    } finally {
      groupedModel.dispose();
      reduceKernel.dispose();
      expandKernel.dispose();
      x.dispose();
    }
  });
});
