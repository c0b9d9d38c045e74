import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadNativeConvKernels, type NativeConvKernels } from '../src/index';

/**
 * The oracle is PyTorch (Debian's python3-torch at /usr/bin/python3, float64): test/torch_inference.py answers every
 * case (F.batch_norm in eval mode, torch.relu, +, x[:, ::s, ::s, :] padded with zero channels). Shapes are ragged
 * (13, 37 channels; odd sizes; strides that do not divide them) and most are split over the thread pool
 * (WRN_NATIVE_INFERENCE_GRAIN below).
 */
const PYTHON = '/usr/bin/python3';
// Split calls over threads from 4,096 elements (the addon reads it on first use), so that these small cases run the
// threaded paths; by default only tensors over 4M elements are split.
process.env['WRN_NATIVE_INFERENCE_GRAIN'] = '4096';
const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'torch_inference.py');

const torchMissing = spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status !== 0;
if (torchMissing) {
  if (process.env['CI']) throw new Error(`native inference: ${PYTHON} cannot import torch (apt-get install python3-torch)`);
  console.warn(`skipping the PyTorch oracle of @wrn/native's inference kernels: ${PYTHON} cannot import torch (python3-torch)`);
}

function randomArray(size: number, seed: number, low = -1, high = 1): Float32Array {
  let state = seed >>> 0 || 1;
  return Float32Array.from({ length: size }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return low + (state / 2 ** 32) * (high - low);
  });
}

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

const list = (a: Float32Array | null) => (a == null ? null : [...a]);

// rows, channels, and which parameters are one value ('1'), absent ('-') or per channel (default).
const BN_CASES: [rows: number, channels: number, layout: Partial<Record<'mean' | 'variance' | 'offset' | 'scale', '1' | '-'>>][] = [
  [105, 13, {}],
  [4 * 33 * 17, 37, {}],
  [31, 7, { scale: '-', offset: '-' }],
  [64, 5, { mean: '1', scale: '1' }],
  [97, 3, { mean: '1', variance: '1', offset: '1', scale: '1' }],
];

// [n, h, w, c], strides, outChannels
const SHORTCUT_CASES: [shape: [number, number, number, number], strides: number, outChannels: number][] = [
  [[2, 8, 8, 3], 2, 7],
  [[3, 9, 7, 13], 2, 26],
  [[2, 11, 10, 5], 3, 5],
  [[4, 33, 17, 37], 2, 64],
  [[1, 5, 5, 2], 1, 4],
];

describe.skipIf(torchMissing)("@wrn/native's inference kernels equal PyTorch's (float64 oracle)", () => {
  it('BatchNorm with fixed statistics: per-channel, single-value and absent parameters', () => {
    const native = kernels();
    const cases = BN_CASES.map(([rows, channels, layout], i) => {
      const make = (key: 'mean' | 'variance' | 'offset' | 'scale', low: number, high: number, seed: number) =>
        layout[key] === '-' ? null : randomArray(layout[key] === '1' ? 1 : channels, seed + i, low, high);
      const arrays = {
        x: randomArray(rows * channels, 3 + i, -2, 3),
        mean: make('mean', -0.5, 0.5, 60)!,
        variance: make('variance', 0.05, 2, 70)!,
        offset: make('offset', -1, 1, 90),
        scale: make('scale', 0.5, 1.5, 80),
      };
      const common = { kind: 'batchNorm', channels, epsilon: 1e-5, ...Object.fromEntries(Object.entries(arrays).map(([k, v]) => [k, list(v)])), arrays };
      // Each case plain and with the ReLU fused in (x spans [-2, 3], so about half the outputs are clamped).
      return [{ ...common, relu: false }, { ...common, relu: true }];
    }).flat();
    const answers = torch(cases.map(({ arrays: _, ...c }) => c)) as number[][];
    cases.forEach((c, i) => {
      const { x, mean, variance, offset, scale } = c.arrays;
      const out = new Float32Array(x.length).fill(Number.NaN);
      if (c.relu) native.batchNormInference(x, mean, variance, offset, scale, c.epsilon, out, true);
      else native.batchNormInference(x, mean, variance, offset, scale, c.epsilon, out);
      const label = `batchNorm${c.relu ? '+relu' : ''} [${x.length / c.channels},${c.channels}] ${JSON.stringify(BN_CASES[i >> 1]![2])}`;
      expect(relativeError(out, answers[i]!), label).toBeLessThan(4e-7);
      if (c.relu) expect(out.filter((v) => v === 0).length, `${label}: clamped outputs`).toBeGreaterThan(x.length / 10);
    });
  });

  it('setInferenceGrain changes how calls are split, not their results, and returns the previous grain', () => {
    const native = kernels();
    const x = randomArray(64 * 37, 11, -2, 2);
    const c = randomArray(37, 12, 0.5, 1.5);
    const run = () => {
      const out = new Float32Array(x.length);
      native.batchNormInference(x, c, c, c, c, 1e-5, out, true);
      return out;
    };
    const split = run();
    expect(native.setInferenceGrain(1 << 30)).toBe(4096);
    expect(run()).toEqual(split);
    expect(native.setInferenceGrain(4096)).toBe(1 << 30);
    expect(() => native.setInferenceGrain(0)).toThrow('setInferenceGrain: elements must be an integer >= 1');
  });

  it('relu (NaN, -0) and same-shape add, in place too', () => {
    const native = kernels();
    const x = randomArray(83_029, 7);
    x[0] = Number.NaN;
    x[1] = -0;
    const b = randomArray(83_029, 8);
    const [relu, sum] = torch([
      { kind: 'relu', x: [...x].map((v) => (Number.isNaN(v) ? null : v)) },
      { kind: 'add', a: [...x.subarray(1)], b: [...b.subarray(1)] },
    ]) as [(number | null)[], number[]];
    const out = new Float32Array(x.length);
    native.relu(x, out);
    expect(relativeError(out, relu), 'relu').toBe(0);
    const added = new Float32Array(x.length - 1);
    native.add(x.subarray(1), b.subarray(1), added);
    expect(relativeError(added, sum), 'add').toBeLessThan(2e-7);
    native.add(x.subarray(1), b.subarray(1), x.subarray(1));
    expect(x.subarray(1)).toEqual(added);
    native.relu(x, x);
    expect(Number.isNaN(x[0])).toBe(true);
    expect(x.subarray(1).every((v) => v >= 0)).toBe(true);
  });

  it('add with the ReLU fused in: ragged and threaded lengths, NaN, in place', () => {
    const native = kernels();
    // 5 elements (below any SIMD width), 4,097 (one over the test's grain: two threads), 83,029 (many shares).
    for (const [i, size] of [5, 4097, 83_029].entries()) {
      const a = randomArray(size, 40 + i, -2, 2);
      const b = randomArray(size, 50 + i, -2, 1);
      a[size - 1] = Number.NaN;
      const nulled = (x: Float32Array) => [...x].map((v) => (Number.isNaN(v) ? null : v));
      const [expected] = torch([{ kind: 'addRelu', a: nulled(a), b: nulled(b) }]) as [(number | null)[]];
      const out = new Float32Array(size).fill(Number.NaN);
      native.add(a, b, out, true);
      const label = `add+relu of ${size}`;
      expect(relativeError(out, expected), label).toBeLessThan(2e-7);
      expect(Number.isNaN(out[size - 1]), `${label}: NaN kept`).toBe(true);
      if (size > 100) expect(out.filter((v) => v === 0).length, `${label}: clamped outputs`).toBeGreaterThan(size / 5);
      const plain = new Float32Array(size);
      native.add(a, b, plain, false);
      expect(plain.some((v) => v < 0), `${label}: relu false adds only`).toBe(true);
      native.add(a, b, a, true);
      expect(a, `${label}: in place`).toEqual(out);
    }
  });

  it("the option-A shortcut: x[:, ::s, ::s, :] and zero channels, strides that do not divide the size", () => {
    const native = kernels();
    const cases = SHORTCUT_CASES.map(([shape, strides, outChannels], i) => {
      const x = randomArray(shape.reduce((a, b) => a * b, 1), 20 + i);
      return { kind: 'zeroPadShortcut', shape, strides, outChannels, x: [...x], array: x };
    });
    const answers = torch(cases.map(({ array: _, ...c }) => c)) as number[][];
    cases.forEach((c, i) => {
      const out = new Float32Array(answers[i]!.length).fill(Number.NaN);
      native.zeroPadShortcut(c.array, c.shape, c.strides, c.outChannels, out);
      expect(relativeError(out, answers[i]!), `shortcut [${c.shape}] s${c.strides} -> ${c.outChannels}`).toBe(0);
    });
  });
});

describe("@wrn/native's inference kernels, portable build", () => {
  // Every kernel once on the same inputs, in this process (AVX2+FMA where the CPU has it) and in a child process
  // with WRN_NATIVE_ISA=portable: PyTorch checks the first above, this checks the second agrees.
  const probe = `
    const load = loadNativeConvKernels();
    if (!load.ok) throw new Error(load.reason);
    const k = load.kernels;
    const x = Float32Array.from({ length: 2 * 7 * 5 * 13 }, (_, i) => Math.sin(i) * 2);
    const c = Float32Array.from({ length: 13 }, (_, i) => 0.5 + i / 13);
    const bn = new Float32Array(x.length), relu = new Float32Array(x.length), add = new Float32Array(x.length), shortcut = new Float32Array(2 * 4 * 3 * 20);
    k.batchNormInference(x, c, c, c, c, 1e-3, bn);
    const bnRelu = new Float32Array(x.length);
    k.batchNormInference(x, c, c, c, c, 1e-3, bnRelu, true);
    k.relu(x, relu);
    k.add(x, bn, add);
    const addRelu = new Float32Array(x.length);
    k.add(x, bn, addRelu, true);
    k.zeroPadShortcut(x, [2, 7, 5, 13], 2, 20, shortcut);
    const result = { isa: k.isa, bn: [...bn], bnRelu: [...bnRelu], relu: [...relu], add: [...add], addRelu: [...addRelu], shortcut: [...shortcut] };
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
    for (const key of ['bn', 'bnRelu', 'relu', 'add', 'addRelu', 'shortcut']) {
      expect(relativeError(here[key] as number[], portable[key] as number[]), key).toBeLessThan(1e-6);
    }
  });
});

describe("@wrn/native's inference kernels reject buffers that do not fit, naming them", () => {
  it('names the argument, its size and what it needed', () => {
    const native = kernels();
    const f = (n: number) => new Float32Array(n);
    expect(() => native.batchNormInference(f(12), f(4), f(3), null, null, 1e-5, f(12))).toThrow(
      'batchNormInference: variance has 3 values; the channels are 4 (or give 1)',
    );
    expect(() => native.batchNormInference(f(10), f(4), f(4), null, null, 1e-5, f(10))).toThrow(
      'batchNormInference: x has 10 elements, not a multiple of the 4 channels',
    );
    expect(() => native.batchNormInference(f(12), f(4), f(4), f(4), f(4), 1e-5, f(8))).toThrow('batchNormInference: out has 8 elements; x has 12');
    expect(() => native.batchNormInference(f(12), f(4), f(4), [1] as unknown as Float32Array, null, 1e-5, f(12))).toThrow(
      'batchNormInference: offset must be a Float32Array or null',
    );
    expect(() => native.batchNormInference(f(12), f(4), f(4), null, null, 1e-5, f(12), 1 as unknown as boolean)).toThrow(
      'batchNormInference: relu must be a boolean or left out',
    );
    // A view of a detached buffer (a wasm heap view taken before the heap grew) or an empty array is never taken for
    // an absent parameter: that ran BatchNorm as the identity.
    const detached = f(4);
    structuredClone(detached.buffer, { transfer: [detached.buffer] });
    expect(() => native.batchNormInference(f(12), f(4), f(4), detached, f(4), 1e-5, f(12), true)).toThrow(
      'batchNormInference: offset is a view of a detached ArrayBuffer (a wasm heap view taken before the heap grew?)',
    );
    expect(() => native.batchNormInference(f(12), f(4), f(4), f(0), null, 1e-5, f(12))).toThrow('batchNormInference: offset has 0 values; the channels are 4 (or give 1)');
    expect(() => native.relu(f(6), f(5))).toThrow('relu: out has 5 elements; x has 6');
    expect(() => native.add(f(6), f(3), f(6))).toThrow('add: a has 6, b 3 and out 6 elements; they must be equal');
    expect(() => native.add(f(6), f(6), f(6), 'yes' as unknown as boolean)).toThrow('add: relu must be a boolean or left out');
    expect(() => native.zeroPadShortcut(f(10), [1, 2, 2, 2], 2, 4, f(4))).toThrow('zeroPadShortcut: x has 10 elements; [n, h, w, c] needs 8');
    expect(() => native.zeroPadShortcut(f(8), [1, 2, 2, 2], 2, 1, f(1))).toThrow("zeroPadShortcut: outChannels 1 is less than the input's 2 channels");
    expect(() => native.zeroPadShortcut(f(8), [1, 2, 2, 2], 2, 4, f(5))).toThrow(
      'zeroPadShortcut: out has 5 elements; [n, ceil(h/s), ceil(w/s), outChannels] needs 4',
    );
    expect(() => native.zeroPadShortcut(f(8), [1, 2, 2] as unknown as [number, number, number, number], 2, 4, f(4))).toThrow('zeroPadShortcut: shape must be [n, h, w, c]');
  });
});
