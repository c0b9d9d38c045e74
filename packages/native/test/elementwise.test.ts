import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadNativeConvKernels, type NativeBinaryOp, type NativeConvKernels, type NativeUnaryOp } from '../src/index';

/**
 * The oracle is PyTorch (Debian's python3-torch at /usr/bin/python3, float64): test/torch_elementwise.py answers
 * every case, BatchNorm's gradients by autograd. Shapes are ragged (13, 37 channels; odd row counts) and most
 * are split over the thread pool (WRN_NATIVE_ELEMENTWISE_GRAIN below).
 */
const PYTHON = '/usr/bin/python3';
// Split calls over threads from 4,096 elements (the addon reads it on first use), so that these small cases run the
// threaded paths; by default only tensors over 4M elements are split.
process.env['WRN_NATIVE_ELEMENTWISE_GRAIN'] = '4096';
const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'torch_elementwise.py');

const torchMissing = spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status !== 0;
if (torchMissing) {
  if (process.env['CI']) throw new Error(`native elementwise: ${PYTHON} cannot import torch (apt-get install python3-torch)`);
  console.warn(`skipping the PyTorch oracle of @wrn/native's elementwise kernels: ${PYTHON} cannot import torch (python3-torch)`);
}

function randomArray(size: number, seed: number, low = -1, high = 1): Float32Array {
  let state = seed >>> 0 || 1;
  return Float32Array.from({ length: size }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return low + (state / 2 ** 32) * (high - low);
  });
}

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

function kernels(): NativeConvKernels {
  const load = loadNativeConvKernels();
  if (!load.ok) throw new Error(load.reason);
  return load.kernels;
}

function torch(cases: unknown[]): unknown[] {
  const result = spawnSync(PYTHON, [SCRIPT], { input: JSON.stringify(cases), maxBuffer: 1 << 28, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${SCRIPT} failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as unknown[];
}

/** max |actual - expected| / max |expected|; NaN (null in the oracle's JSON) must be NaN in both. */
function relativeError(actual: ArrayLike<number>, expected: ReadonlyArray<number | null>): number {
  expect(actual.length).toBe(expected.length);
  let scale = 0;
  let worst = 0;
  for (const e of expected) if (e != null) scale = Math.max(scale, Math.abs(e));
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i];
    if (e == null) {
      if (!Number.isNaN(actual[i])) return Number.POSITIVE_INFINITY;
    } else worst = Math.max(worst, Math.abs(actual[i]! - e));
  }
  return worst / (scale || 1);
}

const BINARY_CASES: [op: NativeBinaryOp, aShape: number[], bShape: number[]][] = [
  ['add', [3, 5, 7, 13], [3, 5, 7, 13]],
  ['sub', [3, 5, 7, 13], [13]],
  ['sub', [1, 1, 1, 13], [3, 5, 7, 13]],
  ['mul', [3, 5, 7, 13], []],
  ['sub', [], [3, 5, 7, 13]],
  ['mul', [4, 33, 17, 37], [4, 33, 17, 37]],
  ['sub', [4, 33, 17, 37], [37]],
  ['add', [37], [4, 33, 17, 37]],
  ['mul', [4, 33, 17, 37], [1]],
];

const UNARY_CASES: [op: NativeUnaryOp, n: number, alpha: number][] = [
  ['relu', 1001, 0],
  ['relu', 83_029, 0],
  ['step', 1001, 0],
  ['step', 83_029, 0.25],
  ['square', 83_029, 0],
];

const SUM_CASES: [outer: number, reduced: number, kept: number, scale: number][] = [
  [1, 105, 13, 1],
  [1, 4 * 33 * 17, 37, 1 / (4 * 33 * 17)],
  [3, 7, 5, 1],
  [2, 9000, 3, 0.5],
  [1, 1, 1, 2],
];

const BN_CASES: [rows: number, channels: number, withScale: boolean][] = [
  [105, 13, true],
  [64 * 9 * 9, 19, true],
  [31, 7, false],
];

describe.skipIf(torchMissing)("@wrn/native's elementwise kernels equal PyTorch's (float64 oracle)", () => {
  it('binary add / sub / mul, full, scalar and trailing-axes broadcast on either side', () => {
    const native = kernels();
    const cases = BINARY_CASES.map(([op, aShape, bShape], i) => {
      const a = randomArray(size(aShape), 10 + i);
      const b = randomArray(size(bShape), 100 + i);
      return { kind: 'binary', op, aShape, bShape, a: [...a], b: [...b], arrays: { a, b } };
    });
    const answers = torch(cases.map(({ arrays: _, ...c }) => c)) as number[][];
    cases.forEach((c, i) => {
      const out = new Float32Array(answers[i]!.length);
      native.binary(c.op as NativeBinaryOp, c.arrays.a, c.arrays.b, out);
      expect(relativeError(out, answers[i]!), `${c.op} [${c.aShape}] [${c.bShape}]`).toBeLessThan(2e-7);
    });
  });

  it('relu, step (alpha, NaN) and square, in place too', () => {
    const native = kernels();
    const cases = UNARY_CASES.map(([op, n, alpha], i) => {
      const x = randomArray(n, 7 + i);
      x[0] = Number.NaN;
      x[1] = 0;
      x[2] = -0;
      return { kind: 'unary', op, alpha, x: [...x].map((v) => (Number.isNaN(v) ? null : v)), array: x };
    });
    // JSON has no NaN: null stands for it both ways.
    const answers = torch(cases.map(({ array: _, ...c }) => c)) as (number | null)[][];
    cases.forEach((c, i) => {
      const out = new Float32Array(c.array.length);
      native.unary(c.op as NativeUnaryOp, c.array, out, c.alpha);
      expect(relativeError(out, answers[i]!), `${c.op} ${c.array.length}`).toBeLessThan(2e-7);
      native.unary(c.op as NativeUnaryOp, c.array, c.array, c.alpha);
      expect(c.array).toEqual(out);
    });
  });

  it('sums over the middle axis of [outer, reduced, kept], scaled', () => {
    const native = kernels();
    const cases = SUM_CASES.map(([outer, reduced, kept, scale], i) => {
      const x = randomArray(outer * reduced * kept, 50 + i, -1, 3);
      return { kind: 'sum', outer, reduced, kept, scale, x: [...x], array: x };
    });
    const answers = torch(cases.map(({ array: _, ...c }) => c)) as number[][];
    cases.forEach((c, i) => {
      const out = new Float32Array(c.outer * c.kept);
      native.sum(c.array, c.outer, c.reduced, c.kept, out, c.scale);
      expect(relativeError(out, answers[i]!), `sum [${c.outer},${c.reduced},${c.kept}]`).toBeLessThan(1e-6);
    });
  });

  it("BatchNorm's gradients with respect to x, mean, variance, scale and offset equal autograd's", () => {
    const native = kernels();
    const cases = BN_CASES.map(([rows, channels, withScale], i) => {
      const x = randomArray(rows * channels, 3 + i, -2, 3);
      const dy = randomArray(rows * channels, 30 + i);
      const mean = randomArray(channels, 60 + i, -0.5, 0.5);
      const variance = randomArray(channels, 70 + i, 0.05, 2);
      const scale = withScale ? randomArray(channels, 80 + i, 0.5, 1.5) : null;
      const offset = randomArray(channels, 90 + i);
      const arrays = { x, dy, mean, variance, scale };
      return {
        kind: 'batchNormGrad',
        channels,
        epsilon: 1e-3,
        ...Object.fromEntries(Object.entries({ ...arrays, offset }).map(([k, v]) => [k, v == null ? null : [...v]])),
        arrays,
      };
    });
    const answers = torch(cases.map(({ arrays: _, ...c }) => c)) as Record<string, number[] | null>[];
    cases.forEach((c, i) => {
      const { x, dy, mean, variance, scale } = c.arrays;
      const channels = mean.length;
      const out = {
        dx: new Float32Array(x.length),
        dmean: new Float32Array(channels),
        dvariance: new Float32Array(channels),
        dscale: new Float32Array(channels),
        doffset: new Float32Array(channels),
      };
      native.batchNormGrad(x, dy, mean, variance, scale, c.epsilon, out);
      for (const key of ['dx', 'dmean', 'dvariance', 'dscale', 'doffset'] as const) {
        const expected = answers[i]![key];
        if (expected == null) continue;
        expect(relativeError(out[key], expected), `${key} of [${x.length / channels},${channels}]`).toBeLessThan(2e-6);
      }
    });
  });
});

// BatchNorm in training mode: [rows, channels, mean offset (|mean| >> std tests the one-pass variance), whether the
// mean and variance outputs get gradients of their own].
const BN_TRAINING_CASES: [rows: number, channels: number, shift: number, outputGradients: boolean][] = [
  [105, 13, 0, false],
  [64 * 9 * 9, 19, 0, true],
  [3 * 7, 37, 100, false],
  [2, 5, 0, true],
];

// torch.optim.SGD: [size, lr, momentum, dampening, weightDecay, nesterov, with a buffer from an earlier step].
const SGD_CASES: [n: number, lr: number, momentum: number, dampening: number, weightDecay: number, nesterov: boolean, buffer: boolean][] = [
  [1001, 0.1, 0.9, 0, 5e-4, true, false],
  [83_029, 0.1, 0.9, 0, 5e-4, true, true],
  [777, 0.05, 0.9, 0.25, 1e-4, false, true],
  [777, 0.05, 0.9, 0.25, 0, false, false],
  [513, 0.2, 0, 0, 5e-4, false, false],
];

describe.skipIf(torchMissing)("@wrn/native's BatchNorm training kernels and SGD update equal PyTorch's (float64 oracle)", () => {
  it("BatchNorm training forward (batch mean, biased variance, y) and backward equal autograd's and F.batch_norm's", () => {
    const native = kernels();
    const cases = BN_TRAINING_CASES.map(([rows, channels, shift, outputGradients], i) => {
      const x = randomArray(rows * channels, 13 + i, -2 + shift, 3 + shift);
      const dy = randomArray(rows * channels, 31 + i);
      const scale = randomArray(channels, 81 + i, 0.5, 1.5);
      const offset = randomArray(channels, 91 + i);
      const dmean = outputGradients ? randomArray(channels, 41 + i) : null;
      const dvariance = outputGradients ? randomArray(channels, 51 + i) : null;
      const arrays = { x, dy, scale, offset, dmean, dvariance };
      return {
        kind: 'batchNormTraining',
        channels,
        epsilon: 1e-5,
        ...Object.fromEntries(Object.entries(arrays).map(([k, v]) => [k, v == null ? null : [...v]])),
        arrays,
      };
    });
    const answers = torch(cases.map(({ arrays: _, ...c }) => c)) as Record<string, number[]>[];
    cases.forEach((c, i) => {
      const { x, dy, scale, offset, dmean, dvariance } = c.arrays;
      const channels = scale.length;
      const where = `[${x.length / channels},${channels}]`;
      const forward = { y: new Float32Array(x.length), mean: new Float32Array(channels), variance: new Float32Array(channels) };
      native.batchNormTraining(x, scale, offset, c.epsilon, forward);
      const answer = answers[i]!;
      expect(relativeError(forward.y, answer['y']!), `y of ${where}`).toBeLessThan(2e-6);
      expect(relativeError(forward.y, answer['yBatchNorm']!), `y of ${where} vs F.batch_norm`).toBeLessThan(2e-6);
      expect(relativeError(forward.mean, answer['mean']!), `mean of ${where}`).toBeLessThan(1e-7);
      expect(relativeError(forward.variance, answer['variance']!), `variance of ${where}`).toBeLessThan(1e-6);
      const grads = { dx: new Float32Array(x.length), dscale: new Float32Array(channels), doffset: new Float32Array(channels) };
      native.batchNormTrainingGrad(x, dy, scale, forward.mean, forward.variance, c.epsilon, { dmean, dvariance }, grads);
      for (const key of ['dx', 'dscale', 'doffset'] as const) {
        expect(relativeError(grads[key], answer[key]!), `${key} of ${where}`).toBeLessThan(2e-5);
      }
    });
  });

  it("ReLU's gradient from its output equals autograd's, and gives NaN where the output is NaN (as tfjs-core's does)", () => {
    const native = kernels();
    const cases = [1001, 83_029].map((n, i) => {
      const x = randomArray(n, 5 + i);
      x[1] = 0;
      x[2] = -0;
      return { kind: 'reluGrad', x: [...x], dy: [...randomArray(n, 15 + i)], arrays: { x } };
    });
    const answers = torch(cases.map(({ arrays: _, ...c }) => c)) as number[][];
    cases.forEach((c, i) => {
      const y = new Float32Array(c.x.length);
      native.unary('relu', c.arrays.x, y);
      const dx = new Float32Array(y.length);
      native.reluGrad(y, Float32Array.from(c.dy), dx);
      expect(relativeError(dx, answers[i]!), `reluGrad ${y.length}`).toBeLessThan(1e-7);
    });
    const dx = new Float32Array(2);
    native.reluGrad(Float32Array.from([Number.NaN, 1]), Float32Array.from([2, Number.POSITIVE_INFINITY]), dx);
    expect([...dx]).toEqual([Number.NaN, Number.POSITIVE_INFINITY]);
  });

  it('one SGD step (weight decay, momentum, dampening, Nesterov; first step and later) equals torch.optim.SGD', () => {
    const native = kernels();
    const cases = SGD_CASES.map(([n, lr, momentum, dampening, weightDecay, nesterov, withBuffer], i) => {
      const param = randomArray(n, 17 + i);
      const grad = randomArray(n, 27 + i, -0.1, 0.1);
      const buffer = withBuffer ? randomArray(n, 37 + i, -0.05, 0.05) : null;
      const hyper = { lr, momentum, dampening, weightDecay, nesterov };
      return { kind: 'sgd', hyper, param: [...param], grad: [...grad], buffer: buffer == null ? null : [...buffer], arrays: { param, grad, buffer } };
    });
    const answers = torch(cases.map(({ arrays: _, ...c }) => c)) as { param: number[]; buffer: number[] | null }[];
    cases.forEach((c, i) => {
      const { param, grad } = c.arrays;
      const buffer = c.hyper.momentum !== 0 ? (c.arrays.buffer ?? new Float32Array(param.length).fill(Number.NaN)) : null;
      native.sgdUpdate(param, grad, buffer, { ...c.hyper, first: c.arrays.buffer == null });
      const where = `${JSON.stringify(c.hyper)} n=${param.length}`;
      expect(relativeError(param, answers[i]!.param), `param, ${where}`).toBeLessThan(2e-7);
      if (buffer != null) expect(relativeError(buffer, answers[i]!.buffer!), `buffer, ${where}`).toBeLessThan(2e-7);
      else expect(answers[i]!.buffer).toBeNull();
    });
  });
});

describe("@wrn/native's elementwise kernels, portable build", () => {
  // Every kernel once on the same inputs, in this process (AVX2+FMA where the CPU has it) and in a child process
  // with WRN_NATIVE_ISA=portable: PyTorch checks the first above, this checks the second agrees.
  const probe = `
    const load = loadNativeConvKernels();
    if (!load.ok) throw new Error(load.reason);
    const k = load.kernels;
    const x = Float32Array.from({ length: 5 * 7 * 13 }, (_, i) => Math.sin(i) * 2);
    const dy = Float32Array.from({ length: 5 * 7 * 13 }, (_, i) => Math.cos(i * 0.7));
    const c = Float32Array.from({ length: 13 }, (_, i) => 0.5 + i / 13);
    const sub = new Float32Array(x.length), step = new Float32Array(x.length), sum = new Float32Array(13);
    k.binary('sub', x, c, sub);
    k.unary('step', x, step, 0.25);
    k.sum(x, 1, 35, 13, sum, 0.5);
    const bn = { dx: new Float32Array(x.length), dmean: new Float32Array(13), dvariance: new Float32Array(13), dscale: new Float32Array(13), doffset: new Float32Array(13) };
    k.batchNormGrad(x, dy, c, c, c, 1e-3, bn);
    const fwd = { y: new Float32Array(x.length), mean: new Float32Array(13), variance: new Float32Array(13) };
    k.batchNormTraining(x, c, dy.subarray(0, 13), 1e-5, fwd);
    const bwd = { dx: new Float32Array(x.length), dscale: new Float32Array(13), doffset: new Float32Array(13) };
    k.batchNormTrainingGrad(x, dy, c, fwd.mean, fwd.variance, 1e-5, { dmean: c, dvariance: c }, bwd);
    const param = x.slice(), buffer = dy.slice();
    k.sgdUpdate(param, dy, buffer, { lr: 0.1, momentum: 0.9, dampening: 0, weightDecay: 5e-4, nesterov: true, first: false });
    const reluGrad = new Float32Array(x.length);
    k.reluGrad(x, dy, reluGrad);
    const training = { reluGrad, trainY: fwd.y, trainMean: fwd.mean, trainVariance: fwd.variance, trainDx: bwd.dx, trainDscale: bwd.dscale, trainDoffset: bwd.doffset, param, buffer };
    const result = { isa: k.isa, sub: [...sub], step: [...step], sum: [...sum], ...Object.fromEntries(Object.entries({ ...bn, ...training }).map(([key, v]) => [key, [...v]])) };
  `;

  it('gives the numbers of the AVX2 build', () => {
    const source = fileURLToPath(new URL('../src/index.ts', import.meta.url));
    const script = `import { loadNativeConvKernels } from ${JSON.stringify(source)};\n${probe}\nconsole.log(JSON.stringify(result));`;
    const tsx = fileURLToPath(new URL('../../../node_modules/tsx/dist/cli.mjs', import.meta.url));
    const child = spawnSync(process.execPath, [tsx, '--eval', script], { env: { ...process.env, WRN_NATIVE_ISA: 'portable' }, encoding: 'utf8' });
    expect(child.stderr).toBe('');
    const portable = JSON.parse(child.stdout) as Record<string, number[] | string>;
    expect(portable['isa']).toBe('portable');
    const here = new Function('loadNativeConvKernels', `${probe}; return result;`)(loadNativeConvKernels) as Record<string, number[] | string>;
    const trainingKeys = ['reluGrad', 'trainY', 'trainMean', 'trainVariance', 'trainDx', 'trainDscale', 'trainDoffset', 'param', 'buffer'];
    for (const key of ['sub', 'step', 'sum', 'dx', 'dmean', 'dvariance', 'dscale', 'doffset', ...trainingKeys]) {
      expect(relativeError(here[key] as number[], portable[key] as number[]), key).toBeLessThan(1e-6);
    }
  });
});

describe("@wrn/native's elementwise kernels reject buffers that do not fit, naming them", () => {
  it('names the argument, its size and what it needed', () => {
    const native = kernels();
    const f = (n: number) => new Float32Array(n);
    // Both sides broadcast ([2,1,3] * [2,1]): the caller's to handle.
    expect(() => native.binary('add', f(6), f(2), f(12))).toThrow("binary: a (6) or b (2) must have out's length 12");
    expect(() => native.binary('add', f(6), f(5), f(12))).toThrow("binary: b has 5 elements; out's 12 must be a multiple of it");
    expect(() => native.binary('mul', f(6), [1, 2] as unknown as Float32Array, f(6))).toThrow('binary: b must be a Float32Array');
    expect(() => native.unary('relu', f(6), f(5))).toThrow('unary: out has 5 elements; x has 6');
    expect(() => native.sum(f(10), 1, 3, 3, f(3))).toThrow('sum: x has 10 elements; [outer, reduced, kept] needs 9');
    expect(() => native.sum(f(9), 1, 3, 3, f(2))).toThrow('sum: out has 2 elements; [outer, kept] needs 3');
    const c = () => f(4);
    expect(() => native.batchNormGrad(f(12), f(12), c(), c(), c(), 1e-3, { dx: f(11), dmean: c(), dvariance: c(), dscale: c(), doffset: c() })).toThrow(
      'batchNormGrad: dx has 11 elements; x has 12',
    );
    expect(() => native.batchNormGrad(f(12), f(12), f(5), c(), c(), 1e-3, { dx: f(12), dmean: c(), dvariance: c(), dscale: c(), doffset: c() })).toThrow(
      "batchNormGrad: mean has 5 elements; x's 12 must be a multiple of it",
    );
    expect(() => native.batchNormGrad(f(12), f(12), c(), f(3), null, 1e-3, { dx: f(12), dmean: c(), dvariance: c(), dscale: c(), doffset: c() })).toThrow(
      'batchNormGrad: variance has 3 elements; mean has 4',
    );
    const y = { y: f(12), mean: c(), variance: c() };
    expect(() => native.batchNormTraining(f(12), c(), c(), 1e-5, { ...y, y: f(8) })).toThrow('batchNormTraining: y has 8 elements; x has 12');
    expect(() => native.batchNormTraining(f(12), f(3), null, 1e-5, y)).toThrow('batchNormTraining: scale has 3 elements; mean has 4');
    expect(() => native.batchNormTraining(f(12), null, null, 0, y)).toThrow('batchNormTraining: epsilon must be > 0, got 0');
    expect(() => native.batchNormTraining(f(10), null, null, 1e-5, { ...y, y: f(10) })).toThrow(
      "batchNormTraining: mean has 4 elements; x's 10 must be a positive multiple of it",
    );
    const g = { dx: f(12), dscale: c(), doffset: c() };
    const none = { dmean: null, dvariance: null };
    expect(() => native.batchNormTrainingGrad(f(12), f(11), c(), c(), c(), 1e-5, none, g)).toThrow('batchNormTrainingGrad: dy has 11 elements; x has 12');
    expect(() => native.batchNormTrainingGrad(f(12), f(12), c(), c(), c(), 1e-5, { dmean: f(2), dvariance: null }, g)).toThrow(
      'batchNormTrainingGrad: dmean has 2 elements; mean has 4',
    );
    expect(() => native.reluGrad(f(6), f(6), f(5))).toThrow('reluGrad: dx has 5 elements; y has 6');
    const hyper = { lr: 0.1, momentum: 0.9, dampening: 0, weightDecay: 0, nesterov: false, first: false };
    expect(() => native.sgdUpdate(f(6), f(5), f(6), hyper)).toThrow('sgdUpdate: grad has 5 elements; param has 6');
    expect(() => native.sgdUpdate(f(6), f(6), f(7), hyper)).toThrow('sgdUpdate: buffer has 7 elements; param has 6');
    expect(() => native.sgdUpdate(f(6), f(6), null, hyper)).toThrow('sgdUpdate: buffer must be a Float32Array when momentum is not 0');
  });
});
