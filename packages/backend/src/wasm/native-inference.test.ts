import * as tf from '@tensorflow/tfjs-core';
// tfjs-layers registers the gradient functions in Node (tfjs-core's CommonJS build does not).
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { ADD_RELU_INFERENCE_KERNEL, BATCH_NORM_RELU_INFERENCE_KERNEL, foldBatchNorm, ResidualAdd, TorchBatchNormalization, ZERO_PAD_SHORTCUT_KERNEL, ZeroPadShortcut } from '@wrn/blocks';
import { loadNativeConvKernels } from '@wrn/native';
import { beforeAll, describe, expect, it } from 'vitest';
import { maxRelativeError, randomArray, runOnWasmAndCpu } from './cpu-reference.test-support';
import { WASM_NATIVE_INFERENCE_KERNEL_NAMES } from './native-inference';
import { registerWasmTrainingGradients } from './training-gradients';
import { registerWasmTrainingKernels } from './training-kernels';

// The oracle is the cpu backend running the same ops and layers (tfjs-core's kernels; ZeroPadShortcut's Slice and
// PadV2 there, since cpu has no one-pass kernel); @wrn/native's own tests check the kernels against PyTorch.
const native = loadNativeConvKernels();
if (!native.ok) {
  if (process.env['CI']) throw new Error(`wasm-native-inference: @wrn/native does not load: ${native.reason}`);
  console.warn(`skipping the native inference kernels on wasm: @wrn/native does not load (${native.reason})`);
}

const t = (shape: number[], seed: string, low = -1, high = 1) =>
  tf.tensor(Float32Array.from(randomArray(shape.reduce((a, b) => a * b, 1), seed), (v) => low + ((v + 1) / 2) * (high - low)), shape);

async function kernelsRun(f: () => tf.Tensor): Promise<string[]> {
  const info = await tf.profile(() => f());
  return info.kernelNames;
}

/** A tiny residual network with every layer the inference kernels serve: BN, ReLU, option-A shortcut, Add. */
function tinyResidualModel(): tfl.LayersModel {
  const input = tfl.input({ shape: [9, 7, 3] });
  const conv = (filters: number, strides: number, seed: number) =>
    tfl.layers.conv2d({ filters, kernelSize: 3, strides, padding: 'same', useBias: false, kernelInitializer: tfl.initializers.glorotNormal({ seed }) });
  const stem = tfl.layers.activation({ activation: 'relu' }).apply(new TorchBatchNormalization({ name: 'bn1' }).apply(conv(5, 1, 1).apply(input))) as tfl.SymbolicTensor;
  const branch = new TorchBatchNormalization({ name: 'bn2' }).apply(conv(10, 2, 2).apply(stem)) as tfl.SymbolicTensor;
  const shortcut = new ZeroPadShortcut({ strides: 2, outChannels: 10 }).apply(stem) as tfl.SymbolicTensor;
  const sum = tfl.layers.activation({ activation: 'relu' }).apply(tfl.layers.add().apply([branch, shortcut])) as tfl.SymbolicTensor;
  const logits = tfl.layers.dense({ units: 4, kernelInitializer: tfl.initializers.glorotNormal({ seed: 3 }) }).apply(tfl.layers.globalAveragePooling2d({}).apply(sum));
  const model = tfl.model({ inputs: input, outputs: logits as tfl.SymbolicTensor });
  // Moving statistics and affine parameters away from their initial 0 and 1, so BatchNorm computes something.
  for (const name of ['bn1', 'bn2']) {
    const layer = model.getLayer(name);
    const c = layer.getWeights()[0]!.shape[0]!;
    layer.setWeights([t([c], `${name}g`, 0.5, 1.5), t([c], `${name}b`), t([c], `${name}m`), t([c], `${name}v`, 0.2, 2)]);
  }
  return model;
}

describe.runIf(native.ok)('the inference kernels on @wrn/native (wasm), against the cpu backend', () => {
  beforeAll(async () => {
    if (!native.ok) return;
    registerWasmTrainingKernels({ native: native.kernels });
    registerWasmTrainingGradients();
    await tf.setBackend('wasm');
  });

  it('BatchNorm with per-channel, single-value and absent parameters, ragged shapes, and what falls back', async () => {
    const cases: [string, () => tf.Tensor][] = [
      ['per channel [3,5,7,13]', () => tf.batchNorm(t([3, 5, 7, 13], 'x1'), t([13], 'm1'), t([13], 'v1', 0.1, 2), t([13], 'o1'), t([13], 's1'), 1e-5)],
      ['no scale, no offset [4,21,17,37]', () => tf.batchNorm(t([4, 21, 17, 37], 'x2'), t([37], 'm2'), t([37], 'v2', 0.1, 2), undefined, undefined, 1e-3)],
      ['single-value mean and scale, rank 2', () => tf.batchNorm(t([31, 6], 'x3'), t([1], 'm3'), t([6], 'v3', 0.1, 2), t([6], 'o3'), t([1], 's3'), 1e-5)],
      // Statistics per [W, C] (not per channel): the depthwise formulation's fallback, wasm's own kernel.
      ['per [W, C] statistics (fallback)', () => tf.batchNorm(t([2, 3, 4, 5], 'x4'), t([4, 5], 'm4'), t([4, 5], 'v4', 0.1, 2), t([4, 5], 'o4'), t([4, 5], 's4'), 1e-5)],
    ];
    for (const [name, op] of cases) {
      const { wasm, cpu } = await runOnWasmAndCpu(op);
      expect(wasm.shape, name).toEqual(cpu.shape);
      expect(maxRelativeError(wasm.values, cpu.values), name).toBeLessThan(1e-6);
      expect(wasm.leaked, name).toBe(0);
    }
  });

  it('Relu and same-shape Add; broadcast Add and int32 on the kernels they replaced', async () => {
    const cases: [string, () => tf.Tensor][] = [
      ['relu [4,21,17,37]', () => tf.relu(t([4, 21, 17, 37], 'r'))],
      ['relu int32', () => tf.relu(tf.tensor([-3, 0, 2], [3], 'int32'))],
      ['add [3,5,7,13] + [3,5,7,13]', () => tf.add(t([3, 5, 7, 13], 'a'), t([3, 5, 7, 13], 'b'))],
      ['add [3,5,7,13] + [13] (native broadcast)', () => tf.add(t([3, 5, 7, 13], 'a2'), t([13], 'b2'))],
      ['add [2,1,3] + [1,4,1] (wasm)', () => tf.add(t([2, 1, 3], 'a3'), t([1, 4, 1], 'b3'))],
      ['add int32', () => tf.add(tf.tensor([1, 2, 3], [3], 'int32'), tf.tensor([4, 5, 6], [3], 'int32'))],
    ];
    for (const [name, op] of cases) {
      const { wasm, cpu } = await runOnWasmAndCpu(op);
      expect(wasm.shape, name).toEqual(cpu.shape);
      expect(maxRelativeError(wasm.values, cpu.values), name).toBeLessThan(1e-6);
      expect(wasm.leaked, name).toBe(0);
    }
  });

  it("ZeroPadShortcut in inference runs the one-pass kernel on wasm and equals the cpu backend's ops, gradient too", async () => {
    for (const [shape, strides, outChannels] of [
      [[2, 9, 7, 5], 2, 12],
      [[3, 8, 8, 4], 2, 4],
      [[1, 10, 11, 3], 3, 6],
    ] as [number[], number, number][]) {
      const layer = new ZeroPadShortcut({ strides, outChannels });
      const name = `[${shape}] s${strides} -> ${outChannels}`;
      const forward = () => layer.apply(t(shape, `z${shape}`)) as tf.Tensor;
      const { wasm, cpu } = await runOnWasmAndCpu(forward);
      expect(wasm.shape, name).toEqual(cpu.shape);
      expect(maxRelativeError(wasm.values, cpu.values), name).toBe(0);
      expect(wasm.leaked, name).toBe(0);
      // A gradient through the model in inference mode (e.g. saliency): the kernel's registered gradient.
      const dy = t(cpu.shape, `dy${shape}`);
      const grad = () => tf.grad((x: tf.Tensor) => tf.sum(tf.mul(layer.apply(x) as tf.Tensor, dy)))(t(shape, `z${shape}`));
      const g = await runOnWasmAndCpu(grad);
      expect(maxRelativeError(g.wasm.values, g.cpu.values), `gradient ${name}`).toBe(0);
      await tf.setBackend('wasm');
      expect(await kernelsRun(forward), name).toEqual([ZERO_PAD_SHORTCUT_KERNEL]);
      dy.dispose();
    }
  });

  it("TorchBatchNormalization with activation 'relu' runs one fused kernel in inference, equal to the cpu backend's BatchNorm + Relu, gradient too", async () => {
    for (const shape of [[2, 9, 7, 13], [3, 4, 4, 37]]) {
      const c = shape[shape.length - 1]!;
      const layer = new TorchBatchNormalization({ name: `fused${c}`, activation: 'relu' });
      layer.build(shape);
      layer.setWeights([t([c], `g${c}`, 0.5, 1.5), t([c], `b${c}`), t([c], `m${c}`), t([c], `v${c}`, 0.2, 2)]);
      const x = t(shape, `fx${c}`, -2, 2);
      const forward = () => layer.apply(x, { training: false }) as tf.Tensor;
      const { wasm, cpu } = await runOnWasmAndCpu(forward);
      expect(maxRelativeError(wasm.values, cpu.values), `[${shape}]`).toBeLessThan(1e-6);
      expect(cpu.values.filter((v) => v === 0).length, `[${shape}] clamped`).toBeGreaterThan(cpu.values.length / 10);
      expect(wasm.leaked).toBe(0);
      await tf.setBackend('wasm');
      expect(await kernelsRun(forward), `[${shape}]`).toEqual([BATCH_NORM_RELU_INFERENCE_KERNEL]);
      // Under tf.grad the layer runs tf.batchNorm + tf.relu, whose gradients exist.
      const dy = t(shape, `fdy${c}`);
      const g = await runOnWasmAndCpu(() => tf.grad((input: tf.Tensor) => tf.sum(tf.mul(layer.apply(input, { training: false }) as tf.Tensor, dy)))(x));
      expect(maxRelativeError(g.wasm.values, g.cpu.values), `gradient [${shape}]`).toBeLessThan(1e-6);
      tf.dispose([x, dy]);
    }
  });

  it('the fused BatchNorm + ReLU is right where allocating its output grows the wasm heap (views taken after it)', async () => {
    await tf.setBackend('wasm');
    const heap = () => (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.buffer;
    // An output as large as the whole heap now cannot fit in it: makeOutput must grow the heap, detaching every view
    // of the old one. Views taken before that read as absent parameters (a batch of 100 in `wrn eval` did this).
    const c = 16;
    const rows = Math.ceil(heap().byteLength / 4 / c);
    const layer = new TorchBatchNormalization({ name: 'fusedGrowth', activation: 'relu' });
    layer.build([rows, c]);
    layer.setWeights([t([c], 'gg', 0.5, 1.5), t([c], 'gb'), t([c], 'gm'), t([c], 'gv', 0.2, 2)]);
    const x = t([rows, c], 'gx', -2, 2);
    const before = heap();
    const y = layer.apply(x, { training: false }) as tf.Tensor;
    expect(heap(), 'the output grew the heap').not.toBe(before);
    const got = (await y.data()) as Float32Array;
    const weights = layer.getWeights().map((w) => w.dataSync());
    const [gamma, beta, mean, variance] = weights as [Float32Array, Float32Array, Float32Array, Float32Array];
    const xs = x.dataSync();
    let worst = 0;
    for (let i = 0; i < xs.length; i += 7) {
      const k = i % c;
      const want = Math.max(0, ((xs[i]! - mean[k]!) / Math.sqrt(variance[k]! + 1e-5)) * gamma[k]! + beta[k]!);
      worst = Math.max(worst, Math.abs(got[i]! - want));
    }
    expect(worst).toBeLessThan(1e-5);
    tf.dispose([x, y]);
  });

  it("ResidualAdd with activation 'relu' runs one fused kernel in inference, equal to the cpu backend's Add + Relu, gradient too", async () => {
    for (const shape of [[2, 9, 7, 13], [3, 4, 4, 37], [5]]) {
      const layer = new ResidualAdd({ name: `addRelu${shape.join('x')}`, activation: 'relu' });
      const a = t(shape, `aa${shape}`, -2, 2);
      const b = t(shape, `ab${shape}`, -2, 1);
      const forward = () => layer.apply([a, b], { training: false }) as tf.Tensor;
      const { wasm, cpu } = await runOnWasmAndCpu(forward);
      expect(maxRelativeError(wasm.values, cpu.values), `[${shape}]`).toBe(0);
      if (cpu.values.length > 10) expect(cpu.values.filter((v) => v === 0).length, `[${shape}] clamped`).toBeGreaterThan(cpu.values.length / 10);
      expect(wasm.leaked).toBe(0);
      await tf.setBackend('wasm');
      expect(await kernelsRun(forward), `[${shape}]`).toEqual([ADD_RELU_INFERENCE_KERNEL]);
      // Under tf.grad the layer runs tf.add + tf.relu, whose gradients exist.
      const dy = t(shape, `ady${shape}`);
      const g = await runOnWasmAndCpu(() => tf.grad((x: tf.Tensor) => tf.sum(tf.mul(layer.apply([x, b], { training: false }) as tf.Tensor, dy)))(a));
      expect(maxRelativeError(g.wasm.values, g.cpu.values), `gradient [${shape}]`).toBe(0);
      expect(g.cpu.values.filter((v) => v === 0).length, `gradient [${shape}] masked`).toBeGreaterThan(0);
      tf.dispose([a, b, dy]);
    }
  });

  it("a residual model's predict equals the cpu backend's, on the native kernels, and save/load keeps it", async () => {
    const model = tinyResidualModel();
    const xs = t([6, 9, 7, 3], 'input', -2, 2);
    const { wasm, cpu } = await runOnWasmAndCpu(() => model.predict(xs) as tf.Tensor);
    expect(wasm.shape).toEqual([6, 4]);
    expect(maxRelativeError(wasm.values, cpu.values)).toBeLessThan(2e-5);
    expect(wasm.leaked).toBe(0);
    await tf.setBackend('wasm');
    const kernels = await kernelsRun(() => model.predict(xs) as tf.Tensor);
    for (const name of [tf.FusedBatchNorm, tf.Relu, tf.Add, ZERO_PAD_SHORTCUT_KERNEL]) expect(kernels, name).toContain(name);
    expect(kernels).not.toContain(tf.PadV2);
    expect(kernels).not.toContain(tf.FusedDepthwiseConv2D);
    let saved: tf.io.ModelArtifacts | undefined;
    await model.save(tf.io.withSaveHandler(async (artifacts) => ((saved = artifacts), { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } })));
    const again = await tfl.loadLayersModel(tf.io.fromMemory(saved!));
    const back = tf.tidy(() => Array.from((again.predict(xs) as tf.Tensor).dataSync()));
    expect(maxRelativeError(back, wasm.values)).toBe(0);
    again.dispose();
    model.dispose();
    xs.dispose();
  });

  it('the model folded by foldBatchNorm predicts on wasm what the unfolded one does on the cpu backend, its convs as FusedConv2D', async () => {
    const model = tinyResidualModel();
    const { model: folded, report } = await foldBatchNorm(model);
    expect(report.batchNorms.map(([, bn]) => bn)).toEqual(['bn1', 'bn2']);
    const xs = t([6, 9, 7, 3], 'input', -2, 2);
    await tf.setBackend('cpu');
    const want = tf.tidy(() => Array.from((model.predict(xs) as tf.Tensor).dataSync()));
    await tf.setBackend('wasm');
    const before = tf.memory().numTensors;
    const got = tf.tidy(() => Array.from((folded.predict(xs) as tf.Tensor).dataSync()));
    expect(tf.memory().numTensors).toBe(before);
    expect(maxRelativeError(got, want)).toBeLessThan(2e-5);
    const kernels = await kernelsRun(() => folded.predict(xs) as tf.Tensor);
    // (tf.profile names each kernel once.)
    expect(kernels).toContain(tf.FusedConv2D);
    expect(kernels).not.toContain(tf.Conv2D);
    expect(kernels).not.toContain(tf.FusedBatchNorm);
    expect(kernels).not.toContain(BATCH_NORM_RELU_INFERENCE_KERNEL);
    tf.dispose([xs]);
    model.dispose();
    folded.dispose();
  });

  it('nativeInference: false puts back what ran before (depthwise BatchNorm, wasm Relu, the shortcut\'s ops); true installs them again', async () => {
    if (!native.ok) return;
    const ours = WASM_NATIVE_INFERENCE_KERNEL_NAMES.map((name) => tf.getKernel(name, 'wasm')?.kernelFunc);
    ours.forEach((fn, i) => expect(fn, WASM_NATIVE_INFERENCE_KERNEL_NAMES[i]).toBeDefined());
    registerWasmTrainingKernels({ native: native.kernels, nativeInference: false });
    WASM_NATIVE_INFERENCE_KERNEL_NAMES.forEach((name, i) => expect(tf.getKernel(name, 'wasm')?.kernelFunc, name).not.toBe(ours[i]));
    expect(tf.getKernel(ZERO_PAD_SHORTCUT_KERNEL, 'wasm')).toBeUndefined();
    const x = t([2, 4, 4, 3], 'off');
    const bn = () => tf.batchNorm(x, t([3], 'm'), t([3], 'v', 0.5, 1), t([3], 'o'), t([3], 's'), 1e-5);
    expect(await kernelsRun(bn)).toContain(tf.FusedDepthwiseConv2D);
    expect(await kernelsRun(() => new ZeroPadShortcut({ strides: 2, outChannels: 6 }).apply(x) as tf.Tensor)).toContain(tf.PadV2);
    registerWasmTrainingKernels({ native: native.kernels });
    expect(tf.getKernel(ZERO_PAD_SHORTCUT_KERNEL, 'wasm')).toBeDefined();
    expect(await kernelsRun(bn)).not.toContain(tf.FusedDepthwiseConv2D);
    registerWasmTrainingKernels({ native: null });
    expect(tf.getKernel(ZERO_PAD_SHORTCUT_KERNEL, 'wasm')).toBeUndefined();
    expect(tf.getKernel(tf.Relu, 'wasm')?.kernelFunc).not.toBe(ours[1]);
    registerWasmTrainingKernels({ native: native.kernels });
    x.dispose();
  });
});
