// Our wasm MaxPoolGrad against PyTorch's max_pool2d backward (Debian's python3-torch) and the cpu backend, ties
// included; wasm 4.22's own kernel as the control that these checks catch; and a training step of a small model
// with the ImageNet stem (7x7/2 conv, 3x3/2 max pool with Torch's padding 1) on wasm against cpu.
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs-core';
// tfjs-layers registers the gradient functions in Node (tfjs-core's CommonJS build does not).
import '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { buildModelFromConfig, resolveModelConfig, type ModelConfig } from '@wrn/architectures';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { variableGrads } from '../src/gradients';
import { meanCrossEntropy, oneHotFloat } from '../src/loss';
import { SgdOptimizer } from '../src/sgd';
import { maxRelativeError, randomArray } from './helpers';
import { registerWasmTrainingKernels } from '@wrn/backend';

const PYTHON = '/usr/bin/python3';

function probeTorch(): string | undefined {
  const probe = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.error) return `${PYTHON} cannot run (${probe.error.message})`;
  if (probe.status !== 0) return `${PYTHON} cannot import torch`;
  return undefined;
}
const torchMissing = probeTorch();
if (torchMissing !== undefined) {
  if (process.env.CI) throw new Error(`PyTorch oracle unavailable in CI: ${torchMissing} (.ci/run installs python3-torch)`);
  console.log(`skipping the MaxPoolGrad vs PyTorch checks: ${torchMissing} (apt-get install python3-torch)`);
}

// wasm's own kernel, taken before registerWasmTrainingKernels replaces it (its setup still runs: ours keeps it).
const WASM_OWN = tf.getKernel(tf.MaxPoolGrad, 'wasm')!;

interface PoolCase {
  label: string;
  shape: [number, number, number, number];
  k: number;
  s: number;
  /** TF's 'same'/'valid' or Torch's symmetric padding p (-inf, never winning). */
  pad: 'same' | 'valid' | number;
  /** Added to every input value: -2 makes every window's maximum negative. */
  shift?: number;
}

const CASES: PoolCase[] = [
  { label: "the stem's 3x3/2 pad 1, even size", shape: [2, 8, 8, 3], k: 3, s: 2, pad: 1 },
  { label: "the stem's 3x3/2 pad 1, odd sizes", shape: [2, 7, 9, 5], k: 3, s: 2, pad: 1 },
  { label: '3x3/2 same', shape: [2, 8, 8, 3], k: 3, s: 2, pad: 'same' },
  { label: '3x3/2 same, odd', shape: [1, 7, 7, 4], k: 3, s: 2, pad: 'same' },
  { label: '3x3/2 valid', shape: [2, 9, 8, 3], k: 3, s: 2, pad: 'valid' },
  { label: '2x2/2 valid', shape: [2, 6, 6, 3], k: 2, s: 2, pad: 'valid' },
  { label: '3x3/1 pad 1', shape: [1, 5, 6, 2], k: 3, s: 1, pad: 1 },
  { label: "the stem's 3x3/2 pad 1, all negative", shape: [2, 8, 8, 3], k: 3, s: 2, pad: 1, shift: -2 },
  { label: '3x3/2 valid, all negative', shape: [2, 9, 8, 3], k: 3, s: 2, pad: 'valid', shift: -2 },
];

/**
 * Input values from {0, 0.5, 1, 1.5} (many ties in every window), over half of them 0 as after a ReLU, plus the
 * case's shift; and the loss weights.
 */
function caseData(c: PoolCase): { x: Float32Array; g: Float32Array; outShape: number[] } {
  const size = c.shape.reduce((a, b) => a * b, 1);
  const x = randomArray(size, `pool${c.label}x`).map((v) => Math.max(0, Math.floor(v * 4)) / 2 + (c.shift ?? 0));
  const outShape = tf.tidy(() => tf.maxPool(tf.zeros(c.shape) as tf.Tensor4D, c.k, c.s, c.pad).shape);
  const g = randomArray(outShape.reduce((a, b) => a * b, 1), `pool${c.label}g`);
  return { x, g, outShape };
}

/** The padding TF's 'same' or 'valid' means here (top, bottom, left, right), for PyTorch. */
function explicitPads(c: PoolCase): [number, number, number, number] {
  if (typeof c.pad === 'number') return [c.pad, c.pad, c.pad, c.pad];
  if (c.pad === 'valid') return [0, 0, 0, 0];
  const along = (size: number) => {
    const total = Math.max((Math.ceil(size / c.s) - 1) * c.s + c.k - size, 0);
    return [Math.floor(total / 2), total - Math.floor(total / 2)];
  };
  const [top, bottom] = along(c.shape[1]);
  const [left, right] = along(c.shape[2]);
  return [top!, bottom!, left!, right!];
}

/**
 * PyTorch's dx of sum(max_pool2d(x) * g): padding=p given to max_pool2d itself where it is symmetric (the
 * stem's case), else F.pad with -inf first. NHWC in and out, as flat lists.
 */
function torchGradients(cases: PoolCase[]): Float32Array[] {
  const script = String.raw`
import json, sys
import torch, torch.nn.functional as F
out = []
for c in json.load(sys.stdin):
    n, h, w, ch = c['shape']
    x = torch.tensor(c['x'], dtype=torch.float32).view(n, h, w, ch).permute(0, 3, 1, 2).contiguous().requires_grad_()
    g = torch.tensor(c['g'], dtype=torch.float32).view(*c['outShape']).permute(0, 3, 1, 2)
    top, bottom, left, right = c['pads']
    if top == bottom == left == right:
        y = F.max_pool2d(x, c['k'], c['s'], padding=top)
    else:
        y = F.max_pool2d(F.pad(x, (left, right, top, bottom), value=float('-inf')), c['k'], c['s'])
    assert list(y.shape) == [c['outShape'][i] for i in (0, 3, 1, 2)], (y.shape, c['outShape'])
    (y * g).sum().backward()
    out.append(x.grad.permute(0, 2, 3, 1).reshape(-1).tolist())
json.dump(out, sys.stdout)
`;
  const input = cases.map((c) => {
    const { x, g, outShape } = caseData(c);
    return { shape: c.shape, k: c.k, s: c.s, pads: explicitPads(c), outShape, x: Array.from(x), g: Array.from(g) };
  });
  const result = spawnSync(PYTHON, ['-c', script], { input: JSON.stringify(input), encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' } });
  if (result.status !== 0) throw new Error(`PyTorch's max_pool2d backward failed: ${result.stderr}`);
  return (JSON.parse(result.stdout) as number[][]).map((dx) => Float32Array.from(dx));
}

/** dx of sum(maxPool(x) * g) on the current backend, and the tensors it left behind. */
function poolGradient(c: PoolCase): { dx: Float32Array; leaked: number } {
  const { x, g, outShape } = caseData(c);
  const before = tf.memory().numTensors;
  const dx = tf.tidy(() => {
    const gradient = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(a as tf.Tensor4D, c.k, c.s, c.pad), tf.tensor(g, outShape))));
    return gradient(tf.tensor4d(x, c.shape)).dataSync() as Float32Array;
  });
  return { dx, leaked: tf.memory().numTensors - before };
}

/** Runs `fn` with wasm's own MaxPoolGrad registered in place of ours. */
function withWasmOwnKernel<T>(fn: () => T): T {
  const ours = tf.getKernel(tf.MaxPoolGrad, 'wasm')!;
  tf.unregisterKernel(tf.MaxPoolGrad, 'wasm');
  tf.registerKernel(WASM_OWN);
  try {
    return fn();
  } finally {
    tf.unregisterKernel(tf.MaxPoolGrad, 'wasm');
    tf.registerKernel(ours);
  }
}

beforeAll(async () => {
  registerWasmTrainingKernels();
  await tf.setBackend('wasm');
});
afterAll(async () => {
  await tf.setBackend('cpu');
});

describe('MaxPoolGrad on wasm', () => {
  it('is ours, registered by registerWasmTrainingKernels', () => {
    expect(tf.getKernel(tf.MaxPoolGrad, 'wasm')?.kernelFunc).not.toBe(WASM_OWN.kernelFunc);
  });

  describe.skipIf(torchMissing !== undefined)("equals PyTorch's max_pool2d backward and the cpu backend, ties to the first maximum", () => {
    let torch: Float32Array[] = [];
    beforeAll(() => {
      torch = torchGradients(CASES);
    });

    CASES.forEach((c, i) => {
      it(`${c.label}: [${c.shape.join(',')}]`, async () => {
        await tf.setBackend('cpu');
        const cpu = poolGradient(c);
        await tf.setBackend('wasm');
        const wasm = poolGradient(c);
        // Every dx is a sum of a few g's: equal to float32 rounding, whatever the order of the sums.
        expect(maxRelativeError(cpu.dx, torch[i]!), 'cpu vs PyTorch').toBeLessThan(1e-6);
        expect(maxRelativeError(wasm.dx, torch[i]!), 'wasm vs PyTorch').toBeLessThan(1e-6);
        expect(wasm.leaked).toBe(0);
        // The inputs tie often: the winners of tied windows decide the result.
        const { x } = caseData(c);
        expect(x.filter((v) => v === (c.shift ?? 0)).length).toBeGreaterThan(x.length / 5);
      });
    });

    it("wasm 4.22's own kernel is wrong on ties and on negative maxima, for every padding (the control these checks catch)", () => {
      const errors = CASES.map((c, i) => ({ label: c.label, error: maxRelativeError(withWasmOwnKernel(() => poolGradient(c)).dx, torch[i]!) }));
      console.log(`tfjs-backend-wasm 4.22 MaxPoolGrad, max relative error vs PyTorch: ${errors.map((e) => `${e.label} ${e.error.toExponential(2)}`).join('; ')}`);
      for (const { label, error } of errors) expect(error, label).toBeGreaterThan(0.1);
    });
  });

  it("called directly: a tie goes to the first maximum, a NaN wins, an all -Infinity window's gradient goes to its first pixel (PyTorch's rules)", () => {
    const ours = tf.getKernel(tf.MaxPoolGrad, 'wasm')!;
    const before = tf.memory().numTensors;
    const gradientOf = (values: number[]) =>
      tf.tidy(() => {
        // Two 2x2 windows side by side: [values 0, 1, 4, 5] and [values 2, 3, 6, 7] of a 2x4 map.
        const input = tf.tensor4d(values, [1, 2, 4, 1]);
        const dy = tf.tensor4d([5, 7], [1, 1, 2, 1]);
        const info = ours.kernelFunc({ inputs: { dy, input, output: dy }, attrs: { filterSize: 2, strides: 2, pad: 'valid' } as never, backend: tf.backend() }) as tf.TensorInfo;
        return Array.from(tf.engine().makeTensorFromTensorInfo(info).dataSync());
      });
    // The expected gradients are what PyTorch 1.13's F.max_pool2d backward gives for these inputs (NaN and
    // -Infinity cannot travel in the JSON the PyTorch checks above use).
    expect(gradientOf([1, 3, 2, 2, 3, 0, 2, 1])).toEqual([0, 5, 7, 0, 0, 0, 0, 0]);
    expect(gradientOf([1, Number.NaN, 2, 9, 3, 0, Number.NaN, 1])).toEqual([0, 5, 0, 0, 0, 0, 7, 0]);
    expect(gradientOf([-Infinity, -Infinity, -Infinity, 1, -Infinity, -Infinity, 4, 1])).toEqual([5, 0, 0, 0, 0, 0, 7, 0]);
    expect(tf.memory().numTensors).toBe(before);
  });
});

const CLASSES = 3;
const BATCH = 2;

/**
 * resnet18's layout (7x7/2 stem conv, 3x3/2 pool with padding 1) shrunk to a few channels, on 18x16 inputs (the
 * pool reads an odd, non-square 9x8 map). The pool follows a ReLU, so its windows' maxima are >= 0 and the ties
 * at 0 get no gradient through the ReLU: here wasm's own kernel would give the same weight gradients (measured:
 * 5e-7 from cpu); the kernel checks above are the ones that tell the two kernels apart.
 */
const STEM_MODEL: ModelConfig = {
  ...resolveModelConfig('resnet18', { numClasses: CLASSES, inputShape: [18, 16, 3], seed: 3 }),
  stemChannels: 4,
  stages: [
    { blocks: 1, outChannels: 4, groups: 1, strides: 1 },
    { blocks: 1, outChannels: 8, groups: 1, strides: 2 },
  ],
  dropRate: [0, 0],
};

interface StepResult {
  loss: number;
  grads: Float32Array[];
  weightsAfter: Float32Array[];
  initial: Float32Array[];
  leaked: number;
}

/** One SGD step (Nesterov, weight decay) in training mode. */
async function trainingStep(backend: 'cpu' | 'wasm', initial: Float32Array[] | null): Promise<StepResult> {
  await tf.setBackend(backend);
  const model = buildModelFromConfig(STEM_MODEL);
  const start = initial ?? model.getWeights().map((w) => w.dataSync() as Float32Array);
  if (initial != null) {
    const values = model.getWeights().map((w, i) => tf.tensor(initial[i]!, w.shape));
    model.setWeights(values);
    tf.dispose(values);
  }
  const before = tf.memory().numTensors;
  const [height, width, channels] = STEM_MODEL.inputShape;
  const pixels = randomArray(BATCH * height * width * channels, 'stem-x');
  const xs = tf.tensor4d(pixels, [BATCH, height, width, channels]);
  const labels = tf.tensor1d([1, 2], 'int32');
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const optimizer = new SgdOptimizer(
    variables.map((variable) => ({ variable, name: variable.name, weightDecay: true })),
    { momentum: 0.9, nesterov: true, dampening: 0, weightDecay: 5e-4 },
  );
  const { value, grads } = variableGrads(() => meanCrossEntropy(model.apply(xs, { training: true }) as tf.Tensor, oneHotFloat(labels, CLASSES), 'logits'), variables);
  const gradList = variables.map((v) => grads[v.name]!);
  const result = { loss: value.dataSync()[0]!, grads: gradList.map((g) => g.dataSync() as Float32Array) };
  optimizer.step(gradList, 0.1);
  const weightsAfter = model.getWeights().map((w) => w.dataSync() as Float32Array);
  tf.dispose([value, xs, labels]);
  tf.dispose(grads);
  optimizer.dispose();
  const leaked = tf.memory().numTensors - before;
  model.dispose();
  return { ...result, weightsAfter, initial: start, leaked };
}

describe('a training step of a model with the ImageNet stem on wasm', () => {
  it('equals the cpu backend to 1e-4: loss, every gradient, the weights after SGD', async () => {
    const cpu = await trainingStep('cpu', null);
    const wasm = await trainingStep('wasm', cpu.initial);
    expect(tf.getBackend()).toBe('wasm');
    expect(Math.abs(wasm.loss - cpu.loss) / Math.abs(cpu.loss)).toBeLessThan(1e-4);
    expect(wasm.grads).toHaveLength(cpu.grads.length);
    wasm.grads.forEach((g, i) => expect(maxRelativeError(g, cpu.grads[i]!), `gradient ${i}`).toBeLessThan(1e-4));
    wasm.weightsAfter.forEach((w, i) => expect(maxRelativeError(w, cpu.weightsAfter[i]!), `weight ${i}`).toBeLessThan(1e-4));
    expect(maxRelativeError(cpu.weightsAfter[0]!, cpu.initial[0]!)).toBeGreaterThan(1e-4);
    expect([wasm.leaked, cpu.leaked]).toEqual([0, 0]);
  }, 120_000);
});
