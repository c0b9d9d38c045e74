/**
 * conv.cc's direct 3x3 forward kernel (AVX-512F, 16 or 32 output channels: ResNet-20's stem and its stride-2
 * 16->32) against PyTorch in float64 (/usr/bin/python3 test/torch_conv.py), with and without bias + ReLU, on shapes
 * with a pixel tail after the 8 (or 4) pixel blocks, odd 'same' padding and 'valid' strides; and the same cases with
 * WRN_NATIVE_DIRECT=0 (the im2col GEMM or Winograd it replaces), read by the addon at each call.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadNativeConvKernels, type ConvGeometry } from '../src/index';

const PYTHON = '/usr/bin/python3';
const HERE = dirname(fileURLToPath(import.meta.url));
const torchMissing = spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status !== 0;
if (torchMissing) {
  if (process.env['CI']) throw new Error(`native direct conv: ${PYTHON} cannot import torch (apt-get install python3-torch)`);
  console.warn(`skipping the PyTorch oracle of @wrn/native's direct conv: ${PYTHON} cannot import torch (python3-torch)`);
}

/** The geometry TF.js computes for 'same' / 'valid' padding (TF's rule: any odd padding goes after). */
function geometry(n: number, h: number, w: number, ci: number, k: number, co: number, s: number, pad: 'same' | 'valid'): ConvGeometry {
  const ho = pad === 'same' ? Math.ceil(h / s) : Math.ceil((h - k + 1) / s);
  const wo = pad === 'same' ? Math.ceil(w / s) : Math.ceil((w - k + 1) / s);
  const padTop = pad === 'same' ? Math.floor(Math.max((ho - 1) * s + k - h, 0) / 2) : 0;
  const padLeft = pad === 'same' ? Math.floor(Math.max((wo - 1) * s + k - w, 0) / 2) : 0;
  return { n, h, w, ci, kh: k, kw: k, co, ho, wo, sh: s, sw: s, padTop, padLeft };
}

/** A deterministic pseudo-random array in [-1, 1), rounded to float32 so that both sides read the same numbers. */
function randomArray(size: number, seed: number): Float32Array {
  let state = seed >>> 0 || 1;
  return Float32Array.from({ length: size }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 31 - 1;
  });
}

function maxRelativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  expect(actual.length).toBe(expected.length);
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]!));
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  return worst / (scale || 1);
}

// [n, h, w, ci, k, co, stride, padding]
const CASES: [number, number, number, number, number, number, number, 'same' | 'valid'][] = [
  [2, 9, 11, 3, 3, 16, 1, 'same'], // the stem's 3 channels (compiled in), wo 11 = 8 + a 3-pixel tail
  [2, 10, 9, 16, 3, 32, 2, 'same'], // 32 channels, stride 2, odd padding after, wo 5 = 4 + 1
  [2, 9, 9, 5, 3, 16, 2, 'valid'], // 'valid' stride 2 leaving the last row unread, a runtime channel count
  [1, 7, 13, 3, 3, 32, 1, 'same'], // 32 channels at stride 1 over 3 (Winograd's rule leaves ci < 16 to it)
  [2, 6, 6, 7, 3, 16, 1, 'same'],
];

const inputs = CASES.map(([n, h, w, ci, k, co, s, pad], i) => {
  const g = geometry(n, h, w, ci, k, co, s, pad);
  return { geometry: g, x: randomArray(n * h * w * ci, 10 * i + 1), filter: randomArray(k * k * ci * co, 10 * i + 2), dy: randomArray(n * g.ho * g.wo * co, 10 * i + 3), bias: randomArray(co, 10 * i + 4) };
});

function torchAnswers(): { y: number[] }[] {
  const payload = inputs.map(({ geometry: g, x, filter, dy }) => ({ geometry: g, x: Array.from(x), filter: Array.from(filter), dy: Array.from(dy) }));
  const child = spawnSync(PYTHON, [join(HERE, 'torch_conv.py')], { input: JSON.stringify(payload), encoding: 'utf8', maxBuffer: 1 << 28 });
  if (child.status !== 0) throw new Error(`test/torch_conv.py failed: ${child.stderr}`);
  return JSON.parse(child.stdout) as { y: number[] }[];
}

describe.skipIf(torchMissing)("@wrn/native's direct 3x3 conv (16 or 32 output channels) vs PyTorch float64", () => {
  const load = loadNativeConvKernels();
  if (!load.ok) throw new Error(load.reason);
  const kernels = load.kernels;
  const answers = torchAnswers();

  it.each(['direct', 'WRN_NATIVE_DIRECT=0'])('%s: forward, and with bias + ReLU, on every case', (variant) => {
    const saved = process.env['WRN_NATIVE_DIRECT'];
    if (variant === 'direct') delete process.env['WRN_NATIVE_DIRECT'];
    else process.env['WRN_NATIVE_DIRECT'] = '0';
    try {
      for (const [i, { geometry: g, x, filter, bias }] of inputs.entries()) {
        const expected = answers[i]!.y;
        const y = new Float32Array(expected.length).fill(Number.NaN);
        kernels.conv2d(g, x, filter, y);
        expect(maxRelativeError(y, expected), `case ${i} forward`).toBeLessThan(1e-5);
        const yBiasRelu = new Float32Array(expected.length).fill(Number.NaN);
        kernels.conv2d(g, x, filter, yBiasRelu, bias, true);
        const expectedBiasRelu = expected.map((v, j) => Math.max(0, v + bias[j % g.co]!));
        expect(maxRelativeError(yBiasRelu, expectedBiasRelu), `case ${i} bias + relu`).toBeLessThan(1e-5);
      }
    } finally {
      if (saved === undefined) delete process.env['WRN_NATIVE_DIRECT'];
      else process.env['WRN_NATIVE_DIRECT'] = saved;
    }
  });
});
