import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import { loadNativeConvKernels, type ConvGeometry, type NativeConvKernels, type WinogradPass, type WinogradTile } from '../src/index';

/**
 * The oracle is PyTorch in float64 (Debian's python3-torch at /usr/bin/python3): test/torch_winograd.py answers
 * every case (F.conv2d, its input gradient by autograd). Shapes are ragged: H and W not multiples of either tile,
 * channels not multiples of the transforms' 16-float vectors, batch 1 and 3, padding 0, 1 and 2, and enough tiles
 * that several blocks and both threads run.
 */
const PYTHON = '/usr/bin/python3';
const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'torch_winograd.py');
const TSX = fileURLToPath(new URL('../../../node_modules/tsx/dist/cli.mjs', import.meta.url));
const SOURCE = fileURLToPath(new URL('../src/index.ts', import.meta.url));

const torchMissing = spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status !== 0;
if (torchMissing) {
  if (process.env['CI']) throw new Error(`native winograd: ${PYTHON} cannot import torch (apt-get install python3-torch)`);
  console.warn(`skipping the PyTorch oracle of @wrn/native's Winograd convolutions: ${PYTHON} cannot import torch (python3-torch)`);
}

function randomArray(size: number, seed: number): Float32Array {
  let state = seed >>> 0 || 1;
  return Float32Array.from({ length: size }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 31 - 1;
  });
}

function kernels(): NativeConvKernels {
  const load = loadNativeConvKernels();
  if (!load.ok) throw new Error(load.reason);
  return load.kernels;
}

/** max |actual - expected| / max |expected|. */
function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  expect(actual.length).toBe(expected.length);
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]!));
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  return worst / (scale || 1);
}

/** A 3x3 stride-1 geometry with padding `pad` before and after (pad 1 is TF's 'same', 0 its 'valid'). */
function geometry(n: number, h: number, w: number, ci: number, co: number, pad: number): ConvGeometry {
  return { n, h, w, ci, kh: 3, kw: 3, co, ho: h + 2 * pad - 2, wo: w + 2 * pad - 2, sh: 1, sw: 1, padTop: pad, padLeft: pad };
}

interface Case {
  g: ConvGeometry;
  x: Float32Array;
  f: Float32Array;
  bias: Float32Array;
  dy: Float32Array;
}

function makeCase(g: ConvGeometry, seed: number): Case {
  return {
    g,
    x: randomArray(g.n * g.h * g.w * g.ci, seed),
    f: randomArray(9 * g.ci * g.co, seed + 1),
    bias: randomArray(g.co, seed + 2),
    dy: randomArray(g.n * g.ho * g.wo * g.co, seed + 3),
  };
}

interface Answer {
  y: number[];
  yBiasRelu: number[];
  dx: number[];
  dw: number[];
}

function torch(cases: Case[]): Answer[] {
  const input = cases.map(({ g, x, f, bias, dy }) => ({ ...g, x: [...x], f: [...f], bias: [...bias], dy: [...dy] }));
  const result = spawnSync(PYTHON, [SCRIPT], { input: JSON.stringify(input), maxBuffer: 1 << 28, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${SCRIPT} failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as Answer[];
}

const CASES: Case[] = [
  makeCase(geometry(1, 7, 9, 17, 19, 1), 10), // H, W odd; channels a vector + a tail
  makeCase(geometry(3, 5, 6, 33, 20, 1), 20), // batch 3; W a multiple of 2, not of 4
  makeCase(geometry(3, 13, 11, 5, 3, 1), 30), // channels under one vector; 3 x 4 x 3 = 36+ tiles of 4, 147 of 2
  makeCase(geometry(1, 9, 7, 6, 4, 0), 40), // 'valid': its input gradient is padded by 2
  makeCase(geometry(1, 6, 5, 4, 7, 2), 50), // padding 2: the input gradient's is 0
  makeCase({ ...geometry(1, 8, 10, 3, 4, 1), padTop: 0, ho: 7 }, 60), // pad (0, 1) before, (1, 1) after
  makeCase(geometry(3, 16, 16, 37, 35, 1), 70), // 192 tiles of 4, 768 of 2: several blocks on each thread
  makeCase(geometry(1, 8, 8, 128, 128, 1), 80), // WRN-like channel counts: the longest sums
];

// The worst F(4x4) error here is a few 1e-6 of the output's scale (F(2x2) and the im2col GEMM a few 1e-7; see
// tools/bench/winograd-ab.ts --accuracy for ci = co = 16..256): the bounds leave a factor of 4 or more.
const TOLERANCE: Record<WinogradTile, number> = { 2: 4e-6, 4: 2e-5 };
// Between ISAs only the rounding differs (FMA or not, the compiler's order of the transforms' adds).
const ISA_TOLERANCE: Record<WinogradTile, number> = { 2: 1e-6, 4: 1e-5 };

function describeCase({ g }: Case): string {
  return `n${g.n} ${g.h}x${g.w} ci${g.ci} co${g.co} pad (${g.padTop}, ${g.padLeft})`;
}

describe.skipIf(torchMissing)("@wrn/native's Winograd convolutions equal PyTorch's (float64 oracle)", () => {
  const answers = torchMissing ? [] : torch(CASES);

  // 7 tiles per block (WRN_NATIVE_WINOGRAD_BLOCK, read at each call): many blocks per thread, rounds of the filter
  // gradient's sums and ragged last blocks, which the default 96..180 tiles give none of these shapes.
  it.each([
    [2, 'default'],
    [4, 'default'],
    [2, '7'],
    [4, '7'],
  ] as const)('F(%i, 3x3) (output tile of that side), tiles per block %s: forward, + bias + relu, both gradients, on ragged shapes', (tile, block) => {
    const k = kernels();
    if (block !== 'default') process.env['WRN_NATIVE_WINOGRAD_BLOCK'] = block;
    onTestFinished(() => void delete process.env['WRN_NATIVE_WINOGRAD_BLOCK']);
    CASES.forEach((c, i) => {
      const expected = answers[i]!;
      const y = new Float32Array(expected.y.length).fill(Number.NaN);
      k.winogradConv2d(c.g, c.x, c.f, y, null, false, tile);
      expect(relativeError(y, expected.y), `y ${describeCase(c)}`).toBeLessThan(TOLERANCE[tile]);
      const yBiasRelu = new Float32Array(expected.y.length).fill(Number.NaN);
      k.winogradConv2d(c.g, c.x, c.f, yBiasRelu, c.bias, true, tile);
      expect(relativeError(yBiasRelu, expected.yBiasRelu), `y + bias, relu ${describeCase(c)}`).toBeLessThan(TOLERANCE[tile]);
      const dx = new Float32Array(c.x.length).fill(Number.NaN);
      k.winogradConv2dBackpropInput(c.g, c.dy, c.f, dx, tile);
      expect(relativeError(dx, expected.dx), `dx ${describeCase(c)}`).toBeLessThan(TOLERANCE[tile]);
      const dw = new Float32Array(c.f.length).fill(Number.NaN);
      k.winogradConv2dBackpropFilter(c.g, c.x, c.dy, dw, tile);
      expect(relativeError(dw, expected.dw), `dw ${describeCase(c)}`).toBeLessThan(TOLERANCE[tile]);
    });
  });

  it("conv2d and both gradients take the tile winogradTile names, and give the im2col GEMM's numbers where it names 0", () => {
    const k = kernels();
    const picked: Record<WinogradPass, number[]> = { forward: [], input: [], filter: [] };
    CASES.forEach((c, i) => {
      const expected = answers[i]!;
      const passes: [WinogradPass, number[], (out: Float32Array, tile?: WinogradTile) => void][] = [
        ['forward', expected.yBiasRelu, (out, tile) => (tile ? k.winogradConv2d(c.g, c.x, c.f, out, c.bias, true, tile) : k.conv2d(c.g, c.x, c.f, out, c.bias, true))],
        ['input', expected.dx, (out, tile) => (tile ? k.winogradConv2dBackpropInput(c.g, c.dy, c.f, out, tile) : k.conv2dBackpropInput(c.g, c.dy, c.f, out))],
        ['filter', expected.dw, (out, tile) => (tile ? k.winogradConv2dBackpropFilter(c.g, c.x, c.dy, out, tile) : k.conv2dBackpropFilter(c.g, c.x, c.dy, out))],
      ];
      for (const [pass, reference, run] of passes) {
        const tile = k.winogradTile(c.g, pass);
        picked[pass].push(tile);
        const viaConv = new Float32Array(reference.length);
        run(viaConv);
        expect(relativeError(viaConv, reference), `${pass} ${describeCase(c)}`).toBeLessThan(tile === 0 ? 2e-6 : TOLERANCE[tile]);
        if (tile !== 0) {
          const direct = new Float32Array(viaConv.length);
          run(direct, tile);
          expect(viaConv).toEqual(direct);
        }
      }
    });
    // The rule: F(4x4) everywhere but the gradients of layers with under 16 input channels.
    expect(picked).toEqual({
      forward: CASES.map(() => 4),
      input: CASES.map((c) => (c.g.ci < 16 ? 0 : 4)),
      filter: CASES.map((c) => (c.g.ci < 16 ? 0 : 4)),
    });
  });
});

/**
 * Runs conv2d, both its gradients and both Winograd tiles of each on CASES[6] and [7] in a child process with `env`, and
 * returns what it computed: each ISA needs its own process (the addon picks it once), and a child sets
 * WRN_NATIVE_WINOGRAD in its environment from the start, as a user would.
 */
function inChild(env: Record<string, string>) {
  const script = `
    import { loadNativeConvKernels } from ${JSON.stringify(SOURCE)};
    const load = loadNativeConvKernels();
    if (!load.ok) throw new Error(load.reason);
    const k = load.kernels;
    ${randomArray.toString()}
    const results = ${JSON.stringify(CASES.slice(6).map((c) => c.g))}.map((g, i) => {
      const seed = ${JSON.stringify([70, 80])}[i];
      const x = randomArray(g.n * g.h * g.w * g.ci, seed), f = randomArray(9 * g.ci * g.co, seed + 1);
      const bias = randomArray(g.co, seed + 2), dy = randomArray(g.n * g.ho * g.wo * g.co, seed + 3);
      const y = new Float32Array(g.n * g.ho * g.wo * g.co), dx = new Float32Array(x.length), dw = new Float32Array(f.length);
      k.conv2d(g, x, f, y, bias, true);
      k.conv2dBackpropInput(g, dy, f, dx);
      k.conv2dBackpropFilter(g, x, dy, dw);
      const tiles = Object.fromEntries([2, 4].map((tile) => {
        const yt = new Float32Array(y.length), dxt = new Float32Array(dx.length), dwt = new Float32Array(dw.length);
        k.winogradConv2d(g, x, f, yt, bias, true, tile);
        k.winogradConv2dBackpropInput(g, dy, f, dxt, tile);
        k.winogradConv2dBackpropFilter(g, x, dy, dwt, tile);
        return [tile, { y: [...yt], dx: [...dxt], dw: [...dwt] }];
      }));
      const picked = ['forward', 'input', 'filter'].map((pass) => k.winogradTile(g, pass));
      return { picked, y: [...y], dx: [...dx], dw: [...dw], tiles };
    });
    console.log(JSON.stringify({ isa: k.winogradIsa, results }));
  `;
  const child = spawnSync(process.execPath, [TSX, '--eval', script], { env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 1 << 28 });
  expect(child.stderr).toBe('');
  type Computed = { y: number[]; dx: number[]; dw: number[] };
  return JSON.parse(child.stdout) as {
    isa: string;
    results: (Computed & { picked: number[]; tiles: Record<WinogradTile, Computed> })[];
  };
}

describe.skipIf(torchMissing)("@wrn/native's Winograd convolutions on each ISA and with WRN_NATIVE_WINOGRAD", () => {
  const answers = torchMissing ? [] : torch(CASES.slice(6));

  it('gives the same numbers from the portable, AVX2 and AVX-512 transforms (WRN_NATIVE_ISA=portable | avx2 in children)', () => {
    const here = inChild({});
    for (const isa of ['portable', 'avx2']) {
      const other = inChild({ WRN_NATIVE_ISA: isa });
      expect(other.isa).toBe(isa === 'portable' ? 'portable' : 'avx2+fma');
      other.results.forEach((r, i) => {
        for (const tile of [2, 4] as const) {
          for (const [key, reference] of [['y', answers[i]!.yBiasRelu], ['dx', answers[i]!.dx], ['dw', answers[i]!.dw]] as const) {
            expect(relativeError(r.tiles[tile][key], here.results[i]!.tiles[tile][key]), `${isa} F${tile} ${key}`).toBeLessThan(ISA_TOLERANCE[tile]);
            expect(relativeError(r.tiles[tile][key], reference), `${isa} F${tile} ${key}`).toBeLessThan(TOLERANCE[tile]);
          }
        }
      });
    }
  });

  it("WRN_NATIVE_WINOGRAD=0 gives the im2col GEMM's numbers; =2 and =4 put that tile under conv2d and both its gradients", () => {
    const off = inChild({ WRN_NATIVE_WINOGRAD: '0' });
    off.results.forEach((r, i) => {
      expect(r.picked).toEqual([0, 0, 0]);
      expect(relativeError(r.y, answers[i]!.yBiasRelu)).toBeLessThan(2e-6);
      expect(relativeError(r.dx, answers[i]!.dx)).toBeLessThan(2e-6);
      expect(relativeError(r.dw, answers[i]!.dw)).toBeLessThan(2e-6);
      // Not by accident the same: each tile's rounding differs from the direct sum's.
      expect(r.y).not.toEqual(r.tiles[4].y);
      expect(r.dw).not.toEqual(r.tiles[4].dw);
    });
    for (const tile of [2, 4] as const) {
      const forced = inChild({ WRN_NATIVE_WINOGRAD: String(tile) });
      forced.results.forEach((r, i) => {
        expect(r.picked).toEqual([tile, tile, tile]);
        for (const key of ['y', 'dx', 'dw'] as const) {
          expect(r[key]).toEqual(r.tiles[tile][key]);
          expect(r[key]).not.toEqual(off.results[i]![key]);
        }
      });
    }
  });
});

describe("@wrn/native's Winograd convolutions reject what they do not compute, naming it", () => {
  it('names the geometry, the buffer and the tile', () => {
    const k = kernels();
    const g = geometry(1, 4, 4, 2, 3, 1);
    const f = (n: number) => new Float32Array(n);
    expect(() => k.winogradConv2d({ ...g, sh: 2, sw: 2, ho: 2, wo: 2 }, f(32), f(54), f(12), null, false, 2)).toThrow(
      'winogradConv2d: the filter must be 3x3 with stride 1, got 3x3 stride 2x2',
    );
    expect(() => k.winogradConv2d({ ...g, kh: 1, kw: 1 }, f(32), f(6), f(48), null, false, 4)).toThrow('winogradConv2d: the filter must be 3x3 with stride 1, got 1x1 stride 1x1');
    expect(() => k.winogradConv2d(g, f(32), f(54), f(47), null, false, 2)).toThrow('winogradConv2d: out has 47 elements; the shape needs 48');
    expect(() => k.winogradConv2d(g, f(32), f(54), f(48), f(2), false, 2)).toThrow('winogradConv2d: bias has 2 elements; the shape needs 3');
    expect(() => k.winogradConv2d(g, f(32), f(54), f(48), null, false, 3 as WinogradTile)).toThrow('winogradConv2d: tile must be 2 or 4');
    expect(() => k.winogradConv2dBackpropInput({ ...g, padTop: 3 }, f(48), f(54), f(32), 4)).toThrow('winogradConv2dBackpropInput: padding (3, 1) must be 0..2');
    expect(() => k.winogradConv2dBackpropInput(g, f(48), [] as unknown as Float32Array, f(32), 4)).toThrow('winogradConv2dBackpropInput: filter must be a Float32Array');
    expect(() => k.winogradConv2dBackpropFilter(g, f(32), f(48), f(53), 2)).toThrow('winogradConv2dBackpropFilter: dw has 53 elements; the shape needs 54');
    expect(() => k.winogradTile(g, 'both' as WinogradPass)).toThrow('winogradTile: takes the geometry and the pass (0 forward, 1 input gradient, 2 filter gradient)');
    expect(k.winogradTile({ ...g, sh: 2 })).toBe(0);
    expect(k.winogradTile({ ...g, ci: 16, co: 16 }, 'filter')).toBe(4);
  });
});
