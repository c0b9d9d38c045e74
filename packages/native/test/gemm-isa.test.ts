/**
 * Every micro-kernel of gemm.cc (AVX-512F 12x32 and 12x16, AVX2+FMA 6x16, portable) against PyTorch in float64 and
 * against each other, through the three convolutions built on it, on shapes whose m, n and k are no multiples of
 * any tile or cache block: each ISA runs in a child process with WRN_NATIVE_ISA forced (the choice is made once, at
 * load). The oracle is Debian's python3-torch (/usr/bin/python3 test/torch_conv.py). A CPU without AVX-512 (or
 * AVX2) skips that ISA's comparisons with one line, in CI too: the ISA is the machine's, not a missing component.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { ConvGeometry } from '../src/index';

const PYTHON = '/usr/bin/python3';
const HERE = dirname(fileURLToPath(import.meta.url));
const torchMissing = spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status !== 0;
if (torchMissing) {
  if (process.env['CI']) throw new Error(`native GEMM ISAs: ${PYTHON} cannot import torch (apt-get install python3-torch)`);
  console.warn(`skipping the PyTorch oracle of @wrn/native's GEMM micro-kernels: ${PYTHON} cannot import torch (python3-torch)`);
}

/** The geometry TF.js computes for 'same' / 'valid' padding (TF's rule: any odd padding goes after). */
function geometry(n: number, h: number, w: number, ci: number, k: number, co: number, s: number, pad: 'same' | 'valid'): ConvGeometry {
  const ho = pad === 'same' ? Math.ceil(h / s) : Math.ceil((h - k + 1) / s);
  const wo = pad === 'same' ? Math.ceil(w / s) : Math.ceil((w - k + 1) / s);
  const padTop = pad === 'same' ? Math.floor(Math.max((ho - 1) * s + k - h, 0) / 2) : 0;
  const padLeft = pad === 'same' ? Math.floor(Math.max((wo - 1) * s + k - w, 0) / 2) : 0;
  return { n, h, w, ci, kh: k, kw: k, co, ho, wo, sh: s, sw: s, padTop, padLeft };
}

// [n, h, w, ci, k, co, stride, padding]: forward GEMMs are (n*ho*wo) x co x (k*k*ci), input gradients
// (n*ho*wo) x (k*k*ci) x co, filter gradients (k*k*ci) x co x (n*ho*wo).
const CASES: [number, number, number, number, number, number, number, 'same' | 'valid'][] = [
  [3, 11, 13, 19, 3, 45, 1, 'same'], // n 45 = 32 + 13 (a masked 32-wide tile), k 171, m 429 (> one 256-row reduction block)
  [2, 9, 7, 40, 3, 70, 2, 'same'], // k 360 (> KC 256), n 70, stride 2 with odd padding after
  [2, 6, 6, 13, 1, 16, 1, 'valid'], // pointwise, n exactly 16 (the narrow 12x16 kernel), A read in place
  [2, 8, 8, 29, 3, 9, 2, 'valid'], // narrow ragged n 9, 'valid' stride 2 leaving the last row unread
  [1, 13, 13, 5, 3, 33, 1, 'same'], // n 33: one column past a 32-wide tile
  [2, 5, 5, 24, 1, 40, 2, 'same'], // strided 1x1 (the projection shortcut)
];

interface Answer {
  y: number[];
  dx: number[];
  dw: number[];
}

interface IsaRun {
  isa: string;
  answers: Answer[];
}

// The child: the same LCG inputs as `inputs` below, the three convolutions of each case, JSON on stdout.
const CHILD = `
  import { readFileSync } from 'node:fs';
  import { loadNativeConvKernels } from ${JSON.stringify(join(HERE, '..', 'src', 'index.ts'))};
  const load = loadNativeConvKernels();
  if (!load.ok) throw new Error(load.reason);
  const k = load.kernels;
  const cases = JSON.parse(readFileSync(0, 'utf8'));
  const answers = cases.map(({ geometry: g, x, filter, dy }) => {
    const y = new Float32Array(g.n * g.ho * g.wo * g.co);
    const dx = new Float32Array(x.length);
    const dw = new Float32Array(filter.length);
    k.conv2d(g, Float32Array.from(x), Float32Array.from(filter), y);
    k.conv2dBackpropInput(g, Float32Array.from(dy), Float32Array.from(filter), dx);
    k.conv2dBackpropFilter(g, Float32Array.from(x), Float32Array.from(dy), dw);
    return { y: Array.from(y), dx: Array.from(dx), dw: Array.from(dw) };
  });
  console.log(JSON.stringify({ isa: k.isa, answers }));
`;

/** A deterministic pseudo-random array in [-1, 1), rounded to float32 so every party reads the same numbers. */
function randomArray(size: number, seed: number): number[] {
  let state = seed >>> 0 || 1;
  return Array.from(Float32Array.from({ length: size }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 31 - 1;
  }));
}

const inputs = CASES.map(([n, h, w, ci, k, co, s, pad], i) => {
  const g = geometry(n, h, w, ci, k, co, s, pad);
  return {
    geometry: g,
    x: randomArray(n * h * w * ci, 10 * i + 1),
    filter: randomArray(k * k * ci * co, 10 * i + 2),
    dy: randomArray(n * g.ho * g.wo * co, 10 * i + 3),
  };
});

function runIsa(isa: 'portable' | 'avx2' | 'avx512'): IsaRun {
  const tsx = fileURLToPath(new URL('../../../node_modules/tsx/dist/cli.mjs', import.meta.url));
  const child = spawnSync(process.execPath, [tsx, '--eval', CHILD], {
    // Winograd off: these cases test the GEMM under the im2col path (winograd.test.ts covers Winograd per ISA).
    env: { ...process.env, WRN_NATIVE_ISA: isa, WRN_NATIVE_WINOGRAD: '0' },
    input: JSON.stringify(inputs),
    encoding: 'utf8',
    maxBuffer: 1 << 28,
  });
  if (child.status !== 0) throw new Error(`WRN_NATIVE_ISA=${isa} child failed: ${child.stderr}`);
  return JSON.parse(child.stdout) as IsaRun;
}

function maxRelativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  expect(actual.length).toBe(expected.length);
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]!));
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  return worst / (scale || 1);
}

const runs = {
  portable: runIsa('portable'),
  avx2: runIsa('avx2'),
  avx512: runIsa('avx512'),
};
const KINDS = ['y', 'dx', 'dw'] as const;
const hasAvx512 = runs.avx512.isa === 'avx512f';
const hasAvx2 = runs.avx2.isa === 'avx2+fma';
if (!hasAvx512) console.warn(`skipping the AVX-512 micro-kernel's comparisons: this CPU has no AVX-512F (WRN_NATIVE_ISA=avx512 gave ${runs.avx512.isa})`);
if (!hasAvx2) console.warn(`skipping the AVX2 micro-kernel's comparisons: this CPU has no AVX2+FMA (WRN_NATIVE_ISA=avx2 gave ${runs.avx2.isa})`);

describe('gemm.cc micro-kernels', () => {
  it('WRN_NATIVE_ISA forces the micro-kernel, falling back to the best one the CPU has', () => {
    expect(runs.portable.isa).toBe('portable');
    expect(['avx2+fma', 'portable']).toContain(runs.avx2.isa);
    expect(['avx512f', 'avx2+fma', 'portable']).toContain(runs.avx512.isa);
    if (hasAvx512) expect(runs.avx2.isa).toBe('avx2+fma');
  });

  describe.skipIf(torchMissing)('equal PyTorch (float64) on ragged shapes: forward, input gradient, filter gradient', () => {
    const torch = torchMissing
      ? []
      : (JSON.parse(
          spawnSync(PYTHON, [join(HERE, 'torch_conv.py')], { input: JSON.stringify(inputs), encoding: 'utf8', maxBuffer: 1 << 28 }).stdout,
        ) as Answer[]);

    it.each(CASES.map((c, i) => [i, ...c] as const))('case %i: n%i %ix%i ci%i k%i co%i stride %i %s', (i) => {
      expect(torch).toHaveLength(CASES.length);
      for (const [name, run] of Object.entries(runs)) {
        if ((name === 'avx512' && !hasAvx512) || (name === 'avx2' && !hasAvx2)) continue;
        for (const kind of KINDS) {
          expect(maxRelativeError(run.answers[i]![kind], torch[i]![kind]), `${name} ${kind}`).toBeLessThan(1e-5);
        }
      }
    });
  });

  it.skipIf(!hasAvx512)('AVX-512 gives the numbers of AVX2 and of the portable build within float32 rounding', () => {
    for (let i = 0; i < CASES.length; i++) {
      for (const kind of KINDS) {
        const avx512 = runs.avx512.answers[i]![kind];
        expect(maxRelativeError(avx512, runs.avx2.answers[i]![kind]), `case ${i} ${kind} vs avx2`).toBeLessThan(2e-6);
        expect(maxRelativeError(avx512, runs.portable.answers[i]![kind]), `case ${i} ${kind} vs portable`).toBeLessThan(2e-6);
      }
    }
  });
});
