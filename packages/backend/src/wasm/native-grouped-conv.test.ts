import * as tf from '@tensorflow/tfjs-core';
// tfjs-layers registers the gradient functions in Node (tfjs-core's CommonJS build does not).
import '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import {
  bottleneckBlockSpec,
  buildLayersModel,
  fastestGroupedConvMethod,
  GroupedConv2D,
  GROUPED_CONV2D_KERNEL,
  groupedConv2d,
  hasGroupedConvKernel,
  NetworkGraph,
  residualBlock,
  type GroupedConvMethod,
} from '@wrn/blocks';
import { loadNativeConvKernels } from '@wrn/native';
import { beforeAll, describe, expect, it } from 'vitest';
import { maxRelativeError, randomArray } from './cpu-reference.test-support';
import { WASM_NATIVE_GROUPED_CONV_KERNEL_NAMES } from './native-grouped-conv';
import { registerWasmTrainingKernels } from './training-kernels';

const native = loadNativeConvKernels();
if (!native.ok) {
  if (process.env['CI']) throw new Error(`native grouped conv on wasm: @wrn/native does not load: ${native.reason}`);
  console.warn(`skipping the native grouped conv tests on wasm: @wrn/native does not load (${native.reason})`);
}

interface GroupedCase {
  n: number;
  h: number;
  w: number;
  groups: number;
  /** Input channels per group. */
  cg: number;
  co: number;
  k: number;
  s: number;
  pad: 'same' | 'valid' | number;
}

const CASES: GroupedCase[] = [
  { n: 2, h: 7, w: 9, groups: 3, cg: 5, co: 12, k: 3, s: 1, pad: 'same' },
  { n: 2, h: 7, w: 9, groups: 3, cg: 5, co: 12, k: 3, s: 2, pad: 1 },
  { n: 3, h: 8, w: 8, groups: 5, cg: 2, co: 10, k: 3, s: 2, pad: 'valid' },
  { n: 2, h: 8, w: 8, groups: 4, cg: 16, co: 64, k: 3, s: 1, pad: 1 },
  { n: 2, h: 5, w: 6, groups: 2, cg: 3, co: 8, k: 1, s: 2, pad: 0 },
];

/** groupedConv2d's output and the gradients of sum(groupedConv2d(x, f) * g) by `method`, and the kernels that ran. */
async function groupedResults(c: GroupedCase, method: GroupedConvMethod, seed: string) {
  const before = tf.memory().numTensors;
  let result: { y: Float32Array; dx: Float32Array; df: Float32Array } = { y: new Float32Array(), dx: new Float32Array(), df: new Float32Array() };
  const profile = await tf.profile(() => {
    result = tf.tidy(() => {
      const x = tf.tensor4d(randomArray(c.n * c.h * c.w * c.groups * c.cg, `${seed}x`), [c.n, c.h, c.w, c.groups * c.cg]);
      const f = tf.tensor4d(randomArray(c.k * c.k * c.cg * c.co, `${seed}f`), [c.k, c.k, c.cg, c.co]);
      const options = { strides: c.s, padding: c.pad, groups: c.groups, method };
      const y = groupedConv2d(x, f, options);
      const g = tf.tensor(randomArray(y.size, `${seed}g`), y.shape);
      const [dx, df] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(groupedConv2d(a as tf.Tensor4D, b as tf.Tensor4D, options), g)))([x, f]);
      return { y: y.dataSync() as Float32Array, dx: dx!.dataSync() as Float32Array, df: df!.dataSync() as Float32Array };
    });
  });
  return { ...result, kernelNames: profile.kernelNames, leaked: tf.memory().numTensors - before };
}

describe.runIf(native.ok)('grouped convolutions on @wrn/native (the wasm backend)', () => {
  beforeAll(async () => {
    if (!native.ok) return;
    registerWasmTrainingKernels({ native: native.kernels });
    await tf.setBackend('wasm');
  });

  it('registers the grouped conv kernels with the native convolutions, makes them the method of both modes, and takes them away without', () => {
    if (!native.ok) return;
    expect(WASM_NATIVE_GROUPED_CONV_KERNEL_NAMES).toEqual(['WrnGroupedConv2D', 'WrnGroupedConv2DBackpropInput', 'WrnGroupedConv2DBackpropFilter']);
    for (const name of WASM_NATIVE_GROUPED_CONV_KERNEL_NAMES) expect(tf.getKernel(name, 'wasm'), name).toBeDefined();
    expect(hasGroupedConvKernel()).toBe(true);
    expect(fastestGroupedConvMethod('wasm', true, { groups: 4, strides: 1 })).toBe('native');
    expect(fastestGroupedConvMethod('wasm', false, { groups: 32, strides: 2 })).toBe('native');
    registerWasmTrainingKernels({ native: null });
    for (const name of WASM_NATIVE_GROUPED_CONV_KERNEL_NAMES) expect(tf.getKernel(name, 'wasm'), name).toBeUndefined();
    expect(hasGroupedConvKernel()).toBe(false);
    expect(fastestGroupedConvMethod('wasm', true)).toBe('split');
    registerWasmTrainingKernels({ native: native.kernels });
    expect(hasGroupedConvKernel()).toBe(true);
  });

  it.each(CASES)('computes split\'s output and gradients, on its own kernels, leaving no tensor: %o', async (c) => {
    const split = await groupedResults(c, 'split', 'grouped');
    const ours = await groupedResults(c, 'native', 'grouped');
    expect(ours.kernelNames).toEqual(expect.arrayContaining(['WrnGroupedConv2DBackpropInput', 'WrnGroupedConv2DBackpropFilter']));
    expect(ours.kernelNames).not.toContain('SplitV');
    expect(split.kernelNames).not.toContain('WrnGroupedConv2DBackpropInput');
    expect(maxRelativeError(ours.y, split.y)).toBeLessThan(1e-5);
    expect(maxRelativeError(ours.dx, split.dx)).toBeLessThan(1e-5);
    expect(maxRelativeError(ours.df, split.df)).toBeLessThan(1e-5);
    expect(ours.leaked).toBe(0);
    expect(split.leaked).toBe(0);
  });

  it("GroupedConv2D with a bias and ReLU (a folded BatchNorm) runs them in the native kernel's epilogue, as the cpu backend's conv + add + relu", async () => {
    for (const c of CASES) {
      const x = tf.tensor4d(randomArray(c.n * c.h * c.w * c.groups * c.cg, 'bx'), [c.n, c.h, c.w, c.groups * c.cg]);
      for (const activation of ['relu', 'linear'] as const) {
        const layer = new GroupedConv2D({ filters: c.co, kernelSize: c.k, groups: c.groups, strides: c.s, padding: c.pad, useBias: true, activation });
        layer.build(x.shape);
        tf.tidy(() => layer.setWeights([tf.tensor4d(randomArray(c.k * c.k * c.cg * c.co, 'bf'), [c.k, c.k, c.cg, c.co]), tf.tensor1d(randomArray(c.co, 'bb'))]));
        await tf.setBackend('wasm');
        const before = tf.memory().numTensors;
        const profile = await tf.profile(() => tf.tidy(() => void layer.apply(x)));
        const got = tf.tidy(() => Array.from((layer.apply(x) as tf.Tensor).dataSync()));
        expect(tf.memory().numTensors - before).toBe(0);
        expect(profile.kernelNames, `${JSON.stringify(c)} ${activation}`).toEqual([GROUPED_CONV2D_KERNEL]);
        await tf.setBackend('cpu');
        const want = tf.tidy(() => Array.from((layer.apply(x) as tf.Tensor).dataSync()));
        expect(maxRelativeError(got, want), `${JSON.stringify(c)} ${activation}`).toBeLessThan(1e-5);
        if (activation === 'relu') expect(want.filter((v) => v === 0).length).toBeGreaterThan(0);
        await tf.setBackend('wasm');
        for (const weight of layer.weights) weight.dispose();
      }
      x.dispose();
    }
  });

  it('is split where the kernel is not registered (the cpu backend), with the same numbers', async () => {
    const c = CASES[1]!;
    const onWasm = await groupedResults(c, 'native', 'fallback');
    await tf.setBackend('cpu');
    try {
      expect(hasGroupedConvKernel()).toBe(false);
      const onCpu = await groupedResults(c, 'native', 'fallback');
      expect(onCpu.kernelNames).toContain('SplitV');
      expect(maxRelativeError(onWasm.y, onCpu.y)).toBeLessThan(1e-5);
      expect(maxRelativeError(onWasm.dx, onCpu.dx)).toBeLessThan(1e-5);
      expect(maxRelativeError(onWasm.df, onCpu.df)).toBeLessThan(1e-5);
    } finally {
      await tf.setBackend('wasm');
    }
  });

  it('names the shapes that make no grouped conv when the kernel is run directly', () => {
    const x = tf.zeros([1, 4, 4, 6]);
    const f = tf.zeros([3, 3, 2, 6]);
    try {
      expect(() => tf.engine().runKernel(GROUPED_CONV2D_KERNEL, { x, filter: f }, { strides: 1, pad: 'same', groups: 2 })).toThrow(
        "WrnGroupedConv2D: groups 2 do not fit x [1,4,4,6] and filter [3,3,2,6] (expected x's channels = groups * filter's third axis, and filter's last axis a multiple of groups)",
      );
      expect(() => tf.engine().runKernel(GROUPED_CONV2D_KERNEL, { x: tf.zeros([0, 4, 4, 6]), filter: f }, { strides: 1, pad: 'same', groups: 3 })).toThrow(
        "WrnGroupedConv2D (wasm, @wrn/native): not covered: x [0,4,4,6], filter [3,3,2,6], padding \"same\" (an empty tensor or padding past the filter); use groupedConv2d's 'split' method",
      );
    } finally {
      tf.dispose([x, f]);
    }
  });

  /** A ResNeXt stage (a strided bottleneck block with a projection, then an identity one), 4 groups, tiny. */
  function resnextStage() {
    const graph = new NetworkGraph({ seed: 7 });
    const first = residualBlock(graph, graph.input([8, 8, 16]), bottleneckBlockSpec({ midChannels: 16, outChannels: 32, groups: 4, strides: 2, order: 'original', shortcut: 'B' }), 'b1');
    residualBlock(graph, first, bottleneckBlockSpec({ midChannels: 16, outChannels: 32, groups: 4, strides: 1, order: 'original', shortcut: 'B' }), 'b2');
    return buildLayersModel(graph, 'resnext-stage');
  }

  /** The training-mode output of the stage and the gradients of sum(output * g) with respect to every weight. */
  async function stageGradients(): Promise<{ out: Float32Array; grads: Record<string, Float32Array>; kernelNames: string[] }> {
    const model = resnextStage();
    try {
      const x = tf.tensor4d(randomArray(3 * 8 * 8 * 16, 'stage-x'), [3, 8, 8, 16]);
      const g = tf.tensor4d(randomArray(3 * 4 * 4 * 32, 'stage-g'), [3, 4, 4, 32]);
      let out: Float32Array = new Float32Array();
      const grads: Record<string, Float32Array> = {};
      const profile = await tf.profile(() => {
        const result = tf.variableGrads(() => {
          const y = model.apply(x, { training: true }) as tf.Tensor;
          out = y.dataSync() as Float32Array;
          return tf.sum(tf.mul(y, g));
        }, model.trainableWeights.map((w) => w.read() as tf.Variable));
        // Keyed by the layers' weight names: the variables of a second model get suffixes (_1).
        for (const w of model.trainableWeights) grads[w.originalName] = result.grads[(w.read() as tf.Variable).name]!.dataSync() as Float32Array;
        tf.dispose([result.value, ...Object.values(result.grads)]);
      });
      tf.dispose([x, g]);
      return { out, grads, kernelNames: profile.kernelNames };
    } finally {
      model.dispose();
    }
  }

  it("gives a ResNeXt stage's training-mode output and weight gradients on wasm (native grouped convs) as the cpu backend does", async () => {
    const before = tf.memory().numTensors;
    const wasm = await stageGradients();
    expect(tf.memory().numTensors).toBe(before);
    expect(wasm.kernelNames).toContain('WrnGroupedConv2D');
    expect(wasm.kernelNames).toContain('WrnGroupedConv2DBackpropFilter');
    await tf.setBackend('cpu');
    let cpu: Awaited<ReturnType<typeof stageGradients>>;
    try {
      cpu = await stageGradients();
    } finally {
      await tf.setBackend('wasm');
    }
    expect(cpu.kernelNames).not.toContain('WrnGroupedConv2D');
    expect(maxRelativeError(wasm.out, cpu.out)).toBeLessThan(1e-4);
    expect(Object.keys(wasm.grads).sort()).toEqual(Object.keys(cpu.grads).sort());
    expect(Object.keys(wasm.grads).filter((name) => name.includes('conv2'))).toHaveLength(2);
    for (const name of Object.keys(cpu.grads)) expect(maxRelativeError(wasm.grads[name]!, cpu.grads[name]!), name).toBeLessThan(1e-3);
  });
});
