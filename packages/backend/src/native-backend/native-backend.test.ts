import * as tf from '@tensorflow/tfjs-core';
// tfjs-layers registers the gradient functions in Node (tfjs-core's CommonJS build does not).
import type { LayersModel } from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import {
  basicBlockSpec,
  bottleneckBlockSpec,
  buildLayersModel,
  groupedConv2d,
  NetworkGraph,
  residualBlock,
  TorchBatchNormalization,
  ZeroPadShortcut,
} from '@wrn/blocks';
import { loadNativeConvKernels, type NativeConvKernels } from '@wrn/native';
import { beforeAll, describe, expect, it } from 'vitest';
import { maxRelativeError, randomArray } from '../wasm/cpu-reference.test-support';
import { registerWasmTrainingGradients } from '../wasm/training-gradients';
import { NATIVE_SGD_UPDATE } from '../wasm/native-sgd';
import { NATIVE_BACKEND_KERNEL_NAMES, NativeBackend, registerNativeBackend } from './backend';
import { NATIVE_BACKEND_NAME } from './tensor-data';

// The wrn-native backend against tfjs-backend-cpu (its own fallbacks' reference: pure JS, float32): each native
// kernel on random shapes, then whole training steps of tiny ResNeXt and ResNet stages. Every @wrn/native call is
// counted, so a kernel that silently fell back to the cpu one fails its test. @wrn/native's own tests check the
// addon against PyTorch in float64.
const load = loadNativeConvKernels();
if (!load.ok) {
  if (process.env['CI']) throw new Error(`wrn-native backend: @wrn/native does not load: ${load.reason}`);
  console.warn(`skipping the wrn-native backend tests: @wrn/native does not load (${load.reason})`);
}

const calls = new Map<string, number>();

/** @wrn/native's kernels with every function call counted in {@link calls}. */
function counted(kernels: NativeConvKernels): NativeConvKernels {
  const wrapped: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(kernels)) {
    wrapped[name] =
      typeof value === 'function'
        ? (...args: unknown[]) => {
            calls.set(name, (calls.get(name) ?? 0) + 1);
            return (value as (...a: unknown[]) => unknown)(...args);
          }
        : value;
  }
  return wrapped as unknown as NativeConvKernels;
}

interface Run<T> {
  result: T;
  leaked: number;
  /** @wrn/native functions called, with their counts. */
  native: Record<string, number>;
}

async function runOn<T>(backend: string, fn: () => T): Promise<Run<T>> {
  await tf.setBackend(backend);
  if (backend === NATIVE_BACKEND_NAME) (tf.backend() as NativeBackend).pool.poison = true;
  calls.clear();
  const before = tf.memory().numTensors;
  const result = fn();
  return { result, leaked: tf.memory().numTensors - before, native: Object.fromEntries(calls) };
}

/** `fn` (returning flattened values) on wrn-native and on cpu. */
async function onBoth(fn: () => Float32Array[]): Promise<{ ours: Run<Float32Array[]>; cpu: Run<Float32Array[]> }> {
  const ours = await runOn(NATIVE_BACKEND_NAME, fn);
  const cpu = await runOn('cpu', fn);
  return { ours, cpu };
}

function expectClose(ours: Float32Array[], cpu: Float32Array[], tolerance = 1e-4): void {
  expect(ours).toHaveLength(cpu.length);
  ours.forEach((values, i) => expect(maxRelativeError(values, cpu[i]!), `output ${i}`).toBeLessThan(tolerance));
}

const flat = (...tensors: tf.Tensor[]): Float32Array[] => tensors.map((t) => t.dataSync() as Float32Array);

describe.skipIf(!load.ok)('the wrn-native backend', () => {
  beforeAll(() => {
    if (!load.ok) return;
    registerNativeBackend(counted(load.kernels));
    registerWasmTrainingGradients();
  });


  it('is a MathBackendCPU registered under its own name with every cpu kernel and ours', async () => {
    await tf.setBackend(NATIVE_BACKEND_NAME);
    expect(tf.getBackend()).toBe(NATIVE_BACKEND_NAME);
    expect(tf.backend()).toBeInstanceOf(NativeBackend);
    const names = new Set(tf.getKernelsForBackend(NATIVE_BACKEND_NAME).map((k) => k.kernelName));
    for (const k of tf.getKernelsForBackend('cpu')) expect(names.has(k.kernelName), k.kernelName).toBe(true);
    for (const name of NATIVE_BACKEND_KERNEL_NAMES) expect(names.has(name), name).toBe(true);
  });

  describe.each([
    { n: 2, h: 9, w: 7, ci: 5, co: 6, k: 3, s: 1, pad: 'same' as const },
    { n: 3, h: 8, w: 8, ci: 4, co: 7, k: 3, s: 2, pad: 1 },
    { n: 2, h: 6, w: 5, ci: 3, co: 8, k: 1, s: 2, pad: 'valid' as const },
  ])('conv2d %j', (c) => {
    it('forward, fused bias+relu and both gradients equal cpu to 1e-4, on @wrn/native, nothing left behind', async () => {
      const seed = JSON.stringify(c);
      const { ours, cpu } = await onBoth(() =>
        tf.tidy(() => {
          const x = tf.tensor4d(randomArray(c.n * c.h * c.w * c.ci, `${seed}x`), [c.n, c.h, c.w, c.ci]);
          const f = tf.tensor4d(randomArray(c.k * c.k * c.ci * c.co, `${seed}f`), [c.k, c.k, c.ci, c.co]);
          const bias = tf.tensor1d(randomArray(c.co, `${seed}b`));
          const y = tf.conv2d(x, f, c.s, c.pad);
          const fused = tf.fused.conv2d({ x, filter: f, strides: c.s, pad: c.pad, bias, activation: 'relu' });
          const g = tf.tensor(randomArray(y.size, `${seed}g`), y.shape);
          const [dx, df] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.s, c.pad), g)))([x, f]);
          return flat(y, fused, dx!, df!);
        }),
      );
      expectClose(ours.result, cpu.result);
      expect(ours.leaked).toBe(0);
      // conv2d: y, the fused one, and the forward inside tf.grads.
      expect(ours.native).toMatchObject({ conv2d: 3, conv2dBackpropInput: 1, conv2dBackpropFilter: 1 });
    });
  });

  it('matMul in every transpose but both, fused with bias and relu, and the dense layer gradients equal cpu', async () => {
    const { ours, cpu } = await onBoth(() =>
      tf.tidy(() => {
        const a = tf.tensor2d(randomArray(5 * 7, 'ma'), [5, 7]);
        const b = tf.tensor2d(randomArray(7 * 3, 'mb'), [7, 3]);
        const at = tf.transpose(a);
        const bt = tf.transpose(b);
        const bias = tf.tensor1d(randomArray(3, 'mbias'));
        const g = tf.tensor2d(randomArray(5 * 3, 'mg'), [5, 3]);
        const [da, db, dbias] = tf.grads((x: tf.Tensor, w: tf.Tensor, c: tf.Tensor) =>
          tf.sum(tf.mul(tf.fused.matMul({ a: x as tf.Tensor2D, b: w as tf.Tensor2D, bias: c, activation: 'relu' }), g)),
        )([a, b, bias]);
        return flat(
          tf.matMul(a, b),
          tf.matMul(at, b, true, false),
          tf.matMul(a, bt, false, true),
          tf.fused.matMul({ a, b, bias, activation: 'relu' }),
          tf.fused.matMul({ a: at, b, transposeA: true, bias, activation: 'linear' }),
          da!,
          db!,
          dbias!,
        );
      }),
    );
    expectClose(ours.result, cpu.result);
    expect(ours.leaked).toBe(0);
    // conv2d: a b, the fused relu one, the fused forward in grads; a^T b: the explicit one, the fused linear one
    // and db; a b^T: the explicit one and da.
    expect(ours.native).toMatchObject({ conv2d: 3, conv2dBackpropFilter: 3, conv2dBackpropInput: 2 });
  });

  it.each([
    { groups: 4, cg: 4, co: 16, s: 1 },
    { groups: 2, cg: 3, co: 8, s: 2 },
  ])('grouped conv (native method) and its gradients equal cpu (split) to 1e-4: %j', async (c) => {
    const seed = JSON.stringify(c);
    const run = () =>
      tf.tidy(() => {
        const x = tf.tensor4d(randomArray(2 * 8 * 8 * c.groups * c.cg, `${seed}x`), [2, 8, 8, c.groups * c.cg]);
        const f = tf.tensor4d(randomArray(9 * c.cg * c.co, `${seed}f`), [3, 3, c.cg, c.co]);
        const method = tf.getBackend() === NATIVE_BACKEND_NAME ? 'native' : 'split';
        const conv = (a: tf.Tensor, b: tf.Tensor) => groupedConv2d(a as tf.Tensor4D, b as tf.Tensor4D, { strides: c.s, padding: 1, groups: c.groups, method });
        const y = conv(x, f);
        const g = tf.tensor(randomArray(y.size, `${seed}g`), y.shape);
        const [dx, df] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(conv(a, b), g)))([x, f]);
        return flat(y, dx!, df!);
      });
    const { ours, cpu } = await onBoth(run);
    expectClose(ours.result, cpu.result);
    expect(ours.leaked).toBe(0);
    // One call per pass for all groups: the forward twice (y, then inside grads).
    expect(ours.native).toMatchObject({ conv2d: 2, conv2dBackpropInput: 1, conv2dBackpropFilter: 1 });
  });

  it('BatchNorm in training mode (the layer) and its gradients equal cpu (moments + batchNorm) to 1e-4', async () => {
    const shape: [number, number, number, number] = [3, 5, 4, 6];
    const run = () =>
      tf.tidy(() => {
        const layer = new TorchBatchNormalization({ momentum: 0.9, epsilon: 1e-5 });
        layer.build([null, null, null, shape[3]]);
        const x = tf.tensor4d(randomArray(3 * 5 * 4 * 6, 'bn-x'), shape);
        const g = tf.tensor4d(randomArray(3 * 5 * 4 * 6, 'bn-g'), shape);
        const [gamma, beta] = layer.getWeights();
        const loss = () => tf.sum(tf.mul(tf.relu(layer.apply(x, { training: true }) as tf.Tensor), g)) as tf.Scalar;
        const { value, grads } = tf.variableGrads(loss);
        const dx = tf.grad((input: tf.Tensor) => tf.sum(tf.mul(tf.relu(layer.apply(input, { training: true }) as tf.Tensor), g)))(x);
        const out = flat(value, dx, ...Object.values(grads), ...layer.getWeights().slice(2));
        void gamma;
        void beta;
        for (const w of layer.weights) w.dispose();
        return out;
      });
    const { ours, cpu } = await onBoth(run);
    expectClose(ours.result, cpu.result);
    expect(ours.leaked).toBe(0);
    expect(ours.native['batchNormTraining']).toBeGreaterThan(0);
    expect(ours.native['batchNormTrainingGrad']).toBeGreaterThan(0);
    expect(ours.native['reluGrad']).toBeGreaterThan(0);
  });

  it('inference BatchNorm, ReLU, Step, broadcasting Add/Sub/Multiply, Sum, Mean, Tile, Slice and PadV2 equal cpu', async () => {
    const run = () =>
      tf.tidy(() => {
        const x = tf.tensor4d(randomArray(2 * 3 * 4 * 5, 'x'), [2, 3, 4, 5]);
        const y = tf.tensor4d(randomArray(2 * 3 * 4 * 5, 'y'), [2, 3, 4, 5]);
        const c = tf.tensor1d(randomArray(5, 'c'));
        const variance = tf.add(tf.abs(tf.tensor1d(randomArray(5, 'v'))), 0.5);
        return flat(
          tf.batchNorm(x, c, variance, tf.tensor1d(randomArray(5, 'o')), tf.tensor1d(randomArray(5, 's')), 1e-3),
          tf.relu(x),
          tf.step(x, 0.25),
          tf.add(x, y),
          tf.add(c, x),
          tf.sub(x, c),
          tf.mul(x, tf.scalar(3)),
          tf.mul(x, y),
          tf.sum(x, [0, 1, 2]),
          tf.mean(x, [1, 2]),
          tf.sum(x, -1, true),
          tf.tile(tf.tensor4d(randomArray(2 * 5, 't'), [2, 1, 1, 5]), [1, 3, 4, 1]),
          tf.tile(tf.tensor3d(randomArray(2 * 3 * 2, 't3'), [2, 3, 2]), [2, 1, 3]),
          tf.slice(x, [1, 0, 1, 2], [1, 3, 2, -1]),
          tf.slice(x, [0, 1, 0, 0], [2, 2, 4, 5]),
          tf.slice(tf.reshape(x, [2, 3, 20]), [0, 0, 3], [2, 3, 7]),
          tf.pad(x, [[0, 1], [2, 0], [1, 1], [0, 3]], 0),
          tf.pad(tf.reshape(x, [6, 20]), [[1, 0], [0, 2]], -1.5),
        );
      });
    const { ours, cpu } = await onBoth(run);
    expectClose(ours.result, cpu.result);
    // binary: abs + 0.5, c + x, x - c, x * 3, x * y; add: x + y (same shapes, the threaded add).
    expect(ours.native).toMatchObject({ batchNormInference: 1, relu: 1, unary: 1, add: 1, binary: 5, sum: 3 });
  });

  it('the option-A shortcut (predict) equals cpu; the SGD update equals its arithmetic in tf ops, as fresh tensors', async () => {
    const { ours, cpu } = await onBoth(() =>
      tf.tidy(() => {
        const x = tf.tensor4d(randomArray(2 * 5 * 6 * 3, 'zp'), [2, 5, 6, 3]);
        return flat(new ZeroPadShortcut({ strides: 2, outChannels: 8 }).apply(x, { training: false }) as tf.Tensor);
      }),
    );
    expectClose(ours.result, cpu.result);
    expect(ours.native['zeroPadShortcut']).toBe(1);

    await tf.setBackend(NATIVE_BACKEND_NAME);
    const hyper = { lr: 0.1, momentum: 0.9, dampening: 0, weightDecay: 5e-4, nesterov: true };
    const [p, g, b] = ['p', 'g', 'b'].map((s) => tf.tensor2d(randomArray(12, `sgd${s}`), [3, 4])) as [tf.Tensor, tf.Tensor, tf.Tensor];
    const [newParam, newBuffer] = tf.engine().runKernel(NATIVE_SGD_UPDATE, { param: p, grad: g, buffer: b }, { ...hyper, first: false }) as tf.Tensor[];
    const expected = tf.tidy(() => {
      const d = tf.add(g, tf.mul(p, hyper.weightDecay));
      const buffer = tf.add(tf.mul(b, hyper.momentum), d);
      return [tf.sub(p, tf.mul(tf.add(d, tf.mul(buffer, hyper.momentum)), hyper.lr)), buffer];
    });
    expectClose(flat(newParam!, newBuffer!), flat(...expected));
    expect(newParam!.dataId).not.toBe(p.dataId);
    expect(newBuffer!.dataId).not.toBe(b.dataId);
    tf.dispose([p, g, b, newParam!, newBuffer!, ...expected]);
  });

  /** A ResNeXt stage (grouped bottlenecks, projection shortcut) and a ResNet stage (basic blocks, option A) with a head. */
  function tinyModel(kind: 'resnext' | 'resnet'): LayersModel {
    const graph = new NetworkGraph({ seed: 11 });
    let x = graph.relu(graph.batchNorm(graph.conv(graph.input([8, 8, 3]), { filters: 8, kernelSize: 3 }, 'stem'), 'stem_bn'), 'stem_relu');
    if (kind === 'resnext') {
      x = residualBlock(graph, x, bottleneckBlockSpec({ midChannels: 8, outChannels: 16, groups: 4, strides: 2, order: 'original', shortcut: 'B' }), 'b1');
      x = residualBlock(graph, x, bottleneckBlockSpec({ midChannels: 8, outChannels: 16, groups: 4, strides: 1, order: 'original', shortcut: 'B' }), 'b2');
    } else {
      x = residualBlock(graph, x, basicBlockSpec({ outChannels: 8, strides: 1, order: 'original', shortcut: 'A' }), 'b1');
      x = residualBlock(graph, x, basicBlockSpec({ outChannels: 16, strides: 2, order: 'original', shortcut: 'A' }), 'b2');
    }
    graph.dense(graph.globalAvgPool(x, 'pool'), 10, 'fc');
    return buildLayersModel(graph, `tiny-${kind}`);
  }

  /** Two SGD steps (momentum, Nesterov, weight decay: the papers' recipe) of softmax cross-entropy: losses and final weights. */
  function trainSteps(kind: 'resnext' | 'resnet'): Float32Array[] {
    const model = tinyModel(kind);
    const x = tf.tensor4d(randomArray(4 * 8 * 8 * 3, `${kind}-x`), [4, 8, 8, 3]);
    const labels = tf.tidy(() => tf.oneHot(tf.tensor1d([1, 7, 3, 7], 'int32'), 10));
    const hyper = { lr: 0.1, momentum: 0.9, dampening: 0, weightDecay: 5e-4, nesterov: true };
    const trainable = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const buffers = new Map<tf.Variable, tf.Tensor>();
    const losses: number[] = [];
    const fused = tf.getKernel(NATIVE_SGD_UPDATE, tf.getBackend()) != null;
    for (let step = 0; step < 2; step++) {
      const { value, grads } = tf.variableGrads(
        () => tf.losses.softmaxCrossEntropy(labels, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar,
        trainable,
      );
      losses.push(value.dataSync()[0]!);
      for (const v of trainable) {
        const grad = grads[v.name]!;
        const buffer = buffers.get(v);
        const attrs = { ...hyper, first: buffer == null };
        // The fused kernel where the backend has it (wrn-native), its arithmetic in tf ops on cpu.
        const [newParam, newBuffer] = fused
          ? (tf.engine().runKernel(NATIVE_SGD_UPDATE, buffer == null ? { param: v, grad } : { param: v, grad, buffer }, attrs) as tf.Tensor[])
          : tf.tidy(() => {
              const d = tf.add(grad, tf.mul(v, hyper.weightDecay));
              const b = buffer == null ? d.clone() : tf.add(tf.mul(buffer, hyper.momentum), d);
              return [tf.sub(v, tf.mul(tf.add(d, tf.mul(b, hyper.momentum)), hyper.lr)), b];
            });
        v.assign(newParam!);
        buffer?.dispose();
        buffers.set(v, newBuffer!);
        newParam!.dispose();
      }
      tf.dispose([value, ...Object.values(grads)]);
    }
    const out = [Float32Array.from(losses), ...model.getWeights().map((w) => w.dataSync() as Float32Array)];
    tf.dispose([x, labels, ...buffers.values()]);
    model.dispose();
    return out;
  }

  it.each(['resnext', 'resnet'] as const)('two training steps of a tiny %s equal cpu (losses and every weight, moving statistics included) and leave no tensor behind', async (kind) => {
    const { ours, cpu } = await onBoth(() => trainSteps(kind));
    expect(ours.result[0]![0]).toBeGreaterThan(1);
    expectClose(ours.result, cpu.result, 2e-4);
    expect(ours.leaked).toBe(0);
    expect(cpu.leaked).toBe(0);
    const expected: Record<string, number> = { conv2d: 1, conv2dBackpropFilter: 1, batchNormTraining: 1, batchNormTrainingGrad: 1, reluGrad: 1, sgdUpdate: 1 };
    for (const name of Object.keys(expected)) expect(ours.native[name] ?? 0, name).toBeGreaterThan(0);
  });

  it("reuses a disposed output's array, never one read out (dataSync) or one a live view still shares", async () => {
    await tf.setBackend(NATIVE_BACKEND_NAME);
    const backend = tf.backend() as NativeBackend;
    backend.pool.clear();
    const x = tf.tensor4d(randomArray(2 * 4 * 4 * 3, 'pool'), [2, 4, 4, 3]);
    const bufferOf = (t: tf.Tensor) => (backend.data.get(t.dataId)!.values as Float32Array).buffer;
    const first = tf.relu(x);
    const firstBuffer = bufferOf(first);
    first.dispose();
    const second = tf.relu(x);
    expect(bufferOf(second)).toBe(firstBuffer);
    // Read out: the caller keeps the array after the tensor is gone, so it is never reused.
    const read = second.dataSync();
    const kept = Array.from(read);
    second.dispose();
    const third = tf.relu(x);
    expect(bufferOf(third)).not.toBe(firstBuffer);
    tf.neg(x).dispose();
    expect(Array.from(read)).toEqual(kept);
    // tfjs-backend-cpu's SplitV returns subarray views of third's array under new data ids: reused only after them.
    const thirdBuffer = bufferOf(third);
    const halves = tf.split(third, 2, 0);
    expect(bufferOf(halves[0]!)).toBe(thirdBuffer);
    third.dispose();
    const fourth = tf.relu(x);
    expect(bufferOf(fourth)).not.toBe(thirdBuffer);
    tf.dispose(halves);
    const fifth = tf.relu(x);
    expect(bufferOf(fifth)).toBe(thirdBuffer);
    tf.dispose([fourth, fifth, x]);
  });

  it('numTensors stays flat across training steps', async () => {
    await tf.setBackend(NATIVE_BACKEND_NAME);
    trainSteps('resnext');
    const after1 = tf.memory().numTensors;
    trainSteps('resnext');
    expect(tf.memory().numTensors).toBe(after1);
  });
});
