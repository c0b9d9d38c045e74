import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadNativeConvKernels, type ConvGeometry, type NativeConvKernels } from '../src/index';

/**
 * The grouped convolutions (ConvGeometry.groups) against PyTorch (Debian's python3-torch at /usr/bin/python3,
 * float64): test/torch_grouped_conv.py runs torch.nn.functional.conv2d(groups=G) and its autograd for every case. Shapes
 * are ragged (odd sizes, 3 and 5 groups, channels that fill no register block) at strides 1 and 2.
 */
const PYTHON = '/usr/bin/python3';
const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'torch_grouped_conv.py');

const torchMissing = spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status !== 0;
if (torchMissing) {
  if (process.env['CI']) throw new Error(`native grouped conv: ${PYTHON} cannot import torch (apt-get install python3-torch)`);
  console.warn(`skipping the PyTorch oracle of @wrn/native's grouped convolutions: ${PYTHON} cannot import torch (python3-torch)`);
}

function randomArray(size: number, seed: number): Float32Array {
  let state = seed >>> 0 || 1;
  return Float32Array.from({ length: size }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 31 - 1;
  });
}

/** TF's geometry for 'same' / 'valid' (any odd padding goes after), with `groups` groups of `ci` input channels. */
function geometry(n: number, h: number, w: number, groups: number, ci: number, k: number, co: number, s: number, pad: 'same' | 'valid'): ConvGeometry {
  const ho = pad === 'same' ? Math.ceil(h / s) : Math.ceil((h - k + 1) / s);
  const wo = pad === 'same' ? Math.ceil(w / s) : Math.ceil((w - k + 1) / s);
  const padTop = pad === 'same' ? Math.floor(Math.max((ho - 1) * s + k - h, 0) / 2) : 0;
  const padLeft = pad === 'same' ? Math.floor(Math.max((wo - 1) * s + k - w, 0) / 2) : 0;
  return { n, h, w, ci, kh: k, kw: k, co, ho, wo, sh: s, sw: s, padTop, padLeft, groups };
}

interface Answer {
  y: number[];
  dx: number[];
  dw: number[];
}

function torch(cases: { g: ConvGeometry; x: Float32Array; filter: Float32Array; dy: Float32Array }[]): Answer[] {
  const input = cases.map(({ g, x, filter, dy }) => ({ ...g, groups: g.groups ?? 1, x: Array.from(x), filter: Array.from(filter), dy: Array.from(dy) }));
  const result = spawnSync(PYTHON, [SCRIPT], { input: JSON.stringify(input), maxBuffer: 1 << 28, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${SCRIPT} failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as Answer[];
}

function maxRelativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  expect(actual.length).toBe(expected.length);
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]!));
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  return worst / (scale || 1);
}

function kernels(): NativeConvKernels {
  const load = loadNativeConvKernels();
  if (!load.ok) throw new Error(load.reason);
  return load.kernels;
}

// [n, h, w, groups, ci per group, k, co, stride, padding]
const CASES: [n: number, h: number, w: number, groups: number, ci: number, k: number, co: number, s: number, pad: 'same' | 'valid'][] = [
  [2, 7, 9, 3, 5, 3, 12, 1, 'same'],
  [2, 7, 9, 3, 5, 3, 12, 2, 'same'],
  [3, 8, 8, 5, 2, 3, 10, 2, 'valid'],
  [1, 6, 7, 2, 3, 3, 6, 1, 'valid'],
  // 1x1: the pointwise paths (no im2col) at stride 1, im2col at stride 2.
  [2, 5, 5, 4, 3, 1, 8, 1, 'same'],
  [2, 5, 5, 4, 3, 1, 8, 2, 'same'],
  // ResNeXt-29 4x16d's stage-1 group width (16 in, 16 out) and a reduction past one cache block (9 * 37 > 256).
  [2, 8, 8, 4, 16, 3, 64, 1, 'same'],
  [2, 9, 9, 2, 37, 3, 70, 2, 'same'],
  // groups 1 through the 14-integer shape: the dense convolution.
  [2, 6, 6, 1, 7, 3, 9, 2, 'same'],
];

describe.skipIf(torchMissing)('@wrn/native grouped convolutions vs torch.nn.functional.conv2d(groups=G) in float64', () => {
  const inputs = CASES.map(([n, h, w, groups, ci, k, co, s, pad], i) => {
    const g = geometry(n, h, w, groups, ci, k, co, s, pad);
    return {
      g,
      x: randomArray(n * h * w * groups * ci, 10 * i + 1),
      filter: randomArray(k * k * ci * co, 10 * i + 2),
      dy: randomArray(n * g.ho * g.wo * co, 10 * i + 3),
    };
  });
  const answers = torchMissing ? [] : torch(inputs);

  it.each(CASES.map((c, i) => [i, ...c] as const))(
    'case %i: n%i %ix%i, %i groups of %i channels, k%i, co%i, stride %i %s: forward, input and filter gradients',
    (i) => {
      const { g, x, filter, dy } = inputs[i]!;
      const expected = answers[i]!;
      const native = kernels();
      const y = new Float32Array(expected.y.length).fill(Number.NaN);
      native.conv2d(g, x, filter, y);
      expect(maxRelativeError(y, expected.y)).toBeLessThan(1e-5);
      const dx = new Float32Array(x.length).fill(Number.NaN);
      native.conv2dBackpropInput(g, dy, filter, dx);
      expect(maxRelativeError(dx, expected.dx)).toBeLessThan(1e-5);
      const dw = new Float32Array(filter.length).fill(Number.NaN);
      native.conv2dBackpropFilter(g, x, dy, dw);
      expect(maxRelativeError(dw, expected.dw)).toBeLessThan(1e-5);
    },
  );

  it('adds the bias per output channel and applies relu after the grouped sum', () => {
    const { g, x, filter } = inputs[0]!;
    const bias = randomArray(g.co, 99);
    const out = new Float32Array(answers[0]!.y.length);
    kernels().conv2d(g, x, filter, out, bias, true);
    expect(maxRelativeError(out, answers[0]!.y.map((v, j) => Math.max(0, v + bias[j % g.co]!)))).toBeLessThan(1e-5);
  });

  it('gives the same numbers with the portable micro-kernel on one thread (a child process with WRN_NATIVE_ISA=portable WRN_NATIVE_THREADS=1)', () => {
    const i = 7;
    const { g } = inputs[i]!;
    const seeds = [10 * i + 1, 10 * i + 2, 10 * i + 3];
    const script = `
      import { loadNativeConvKernels } from ${JSON.stringify(fileURLToPath(new URL('../src/index.ts', import.meta.url)))};
      const load = loadNativeConvKernels();
      if (!load.ok) throw new Error(load.reason);
      ${randomArray.toString()}
      const g = ${JSON.stringify(g)};
      const x = randomArray(${inputs[i]!.x.length}, ${seeds[0]});
      const f = randomArray(${inputs[i]!.filter.length}, ${seeds[1]});
      const dy = randomArray(${inputs[i]!.dy.length}, ${seeds[2]});
      const y = new Float32Array(dy.length), dx = new Float32Array(x.length), dw = new Float32Array(f.length);
      load.kernels.conv2d(g, x, f, y);
      load.kernels.conv2dBackpropInput(g, dy, f, dx);
      load.kernels.conv2dBackpropFilter(g, x, dy, dw);
      console.log(JSON.stringify({ isa: load.kernels.isa, threads: load.kernels.threads, y: Array.from(y), dx: Array.from(dx), dw: Array.from(dw) }));
    `;
    const tsx = fileURLToPath(new URL('../../../node_modules/tsx/dist/cli.mjs', import.meta.url));
    const child = spawnSync(process.execPath, [tsx, '--eval', script], {
      env: { ...process.env, WRN_NATIVE_ISA: 'portable', WRN_NATIVE_THREADS: '1' },
      encoding: 'utf8',
      maxBuffer: 1 << 26,
    });
    expect(child.stderr).toBe('');
    const result = JSON.parse(child.stdout) as { isa: string; threads: number } & Answer;
    expect(result.isa).toBe('portable');
    expect(result.threads).toBe(1);
    expect(maxRelativeError(result.y, answers[i]!.y)).toBeLessThan(1e-5);
    expect(maxRelativeError(result.dx, answers[i]!.dx)).toBeLessThan(1e-5);
    expect(maxRelativeError(result.dw, answers[i]!.dw)).toBeLessThan(1e-5);
  });
});

describe('@wrn/native grouped convolutions: bad geometry', () => {
  it('names the groups that do not divide co, groups below 1, and the input size the groups imply', () => {
    const native = kernels();
    const g = geometry(1, 4, 4, 2, 3, 3, 6, 1, 'same');
    const x = new Float32Array(4 * 4 * 6);
    const f = new Float32Array(9 * 3 * 6);
    const y = new Float32Array(4 * 4 * 6);
    expect(() => native.conv2d({ ...g, groups: 4 }, new Float32Array(4 * 4 * 12), f, y)).toThrow('conv2d: co (6) must be a multiple of groups (4)');
    expect(() => native.conv2d({ ...g, groups: 0 }, x, f, y)).toThrow('conv2d: shape[13] (groups) must be at least 1, got 0');
    expect(() => native.conv2dBackpropFilter({ ...g, groups: 3 }, x, y, f)).toThrow('conv2dBackpropFilter: x has 96 elements; the shape needs 144');
    expect(() => native.conv2dBackpropInput(g, y, f, new Float32Array(48))).toThrow('conv2dBackpropInput: dx has 48 elements; the shape needs 96');
  });
});
