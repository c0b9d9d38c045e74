import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadNativeConvKernels, type ConvGeometry, type NativeConvKernels } from '../src/index';

/** A deterministic pseudo-random array in [-1, 1). */
function randomArray(size: number, seed: number): Float32Array {
  let state = seed >>> 0 || 1;
  return Float32Array.from({ length: size }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 31 - 1;
  });
}

/** The geometry TF.js computes for 'same' / 'valid' padding (TF's rule: any odd padding goes after). */
function geometry(n: number, h: number, w: number, ci: number, k: number, co: number, s: number, pad: 'same' | 'valid'): ConvGeometry {
  const ho = pad === 'same' ? Math.ceil(h / s) : Math.ceil((h - k + 1) / s);
  const wo = pad === 'same' ? Math.ceil(w / s) : Math.ceil((w - k + 1) / s);
  const padTop = pad === 'same' ? Math.floor(Math.max((ho - 1) * s + k - h, 0) / 2) : 0;
  const padLeft = pad === 'same' ? Math.floor(Math.max((wo - 1) * s + k - w, 0) / 2) : 0;
  return { n, h, w, ci, kh: k, kw: k, co, ho, wo, sh: s, sw: s, padTop, padLeft };
}

/** The definition, as loops: y[b,oy,ox,o] = sum x[b, oy*sh-pt+i, ox*sw-pl+j, c] * f[i,j,c,o]; and both gradients. */
function reference(g: ConvGeometry, x: Float32Array, f: Float32Array, dy: Float32Array) {
  const y = new Float64Array(g.n * g.ho * g.wo * g.co);
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(f.length);
  for (let b = 0; b < g.n; b++)
    for (let oy = 0; oy < g.ho; oy++)
      for (let ox = 0; ox < g.wo; ox++)
        for (let i = 0; i < g.kh; i++)
          for (let j = 0; j < g.kw; j++) {
            const iy = oy * g.sh - g.padTop + i;
            const ix = ox * g.sw - g.padLeft + j;
            if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
            for (let c = 0; c < g.ci; c++) {
              const xi = ((b * g.h + iy) * g.w + ix) * g.ci + c;
              for (let o = 0; o < g.co; o++) {
                const yi = ((b * g.ho + oy) * g.wo + ox) * g.co + o;
                const fi = ((i * g.kw + j) * g.ci + c) * g.co + o;
                y[yi]! += x[xi]! * f[fi]!;
                dx[xi]! += dy[yi]! * f[fi]!;
                dw[fi]! += dy[yi]! * x[xi]!;
              }
            }
          }
  return { y, dx, dw };
}

function maxRelativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]!));
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  return worst / (scale || 1);
}

const CASES: [n: number, h: number, w: number, ci: number, k: number, co: number, s: number, pad: 'same' | 'valid'][] = [
  [2, 8, 8, 3, 3, 4, 1, 'same'],
  [2, 8, 8, 3, 3, 4, 2, 'same'],
  [3, 7, 9, 2, 3, 5, 2, 'same'],
  [3, 7, 9, 2, 3, 5, 2, 'valid'],
  [1, 5, 5, 4, 3, 3, 1, 'valid'],
  [2, 8, 8, 5, 1, 7, 2, 'same'],
  [2, 7, 6, 3, 1, 4, 1, 'valid'],
  // Wider than one register block (6 rows x 16 columns) and one cache block of K (256), with remainders.
  [2, 9, 9, 37, 3, 35, 1, 'same'],
  [4, 8, 8, 64, 1, 100, 1, 'same'],
  [2, 10, 10, 20, 3, 18, 2, 'same'],
];

function loaded(): NativeConvKernels {
  const load = loadNativeConvKernels();
  if (!load.ok) throw new Error(load.reason);
  return load.kernels;
}

describe('@wrn/native convolutions', () => {
  it('loads the addon built for this machine and says which micro-kernel and how many threads it uses', () => {
    const kernels = loaded();
    expect(['avx512f', 'avx2+fma', 'portable']).toContain(kernels.isa);
    expect(kernels.threads).toBeGreaterThanOrEqual(1);
  });

  it.each(CASES)('equals the definition for n%i %ix%i ci%i k%i co%i stride %i %s: forward, bias + relu, both gradients', (n, h, w, ci, k, co, s, pad) => {
    const kernels = loaded();
    const g = geometry(n, h, w, ci, k, co, s, pad);
    const x = randomArray(n * h * w * ci, 1);
    const f = randomArray(k * k * ci * co, 2);
    const dy = randomArray(n * g.ho * g.wo * co, 3);
    const bias = randomArray(co, 4);
    const expected = reference(g, x, f, dy);

    const y = new Float32Array(expected.y.length).fill(Number.NaN);
    kernels.conv2d(g, x, f, y);
    expect(maxRelativeError(y, expected.y)).toBeLessThan(1e-5);

    const yBiasRelu = new Float32Array(expected.y.length);
    kernels.conv2d(g, x, f, yBiasRelu, bias, true);
    const expectedBiasRelu = expected.y.map((v, i) => Math.max(0, v + bias[i % co]!));
    expect(maxRelativeError(yBiasRelu, expectedBiasRelu)).toBeLessThan(1e-5);

    const dx = new Float32Array(x.length).fill(Number.NaN);
    kernels.conv2dBackpropInput(g, dy, f, dx);
    expect(maxRelativeError(dx, expected.dx)).toBeLessThan(1e-5);

    const dw = new Float32Array(f.length).fill(Number.NaN);
    kernels.conv2dBackpropFilter(g, x, dy, dw);
    expect(maxRelativeError(dw, expected.dw)).toBeLessThan(1e-5);
  });

  it('gives the same numbers with the portable micro-kernel and on one thread (a child process with WRN_NATIVE_ISA=portable WRN_NATIVE_THREADS=1)', () => {
    const script = `
      import { loadNativeConvKernels } from ${JSON.stringify(fileURLToPath(new URL('../src/index.ts', import.meta.url)))};
      const load = loadNativeConvKernels();
      if (!load.ok) throw new Error(load.reason);
      const g = { n: 2, h: 9, w: 9, ci: 37, kh: 3, kw: 3, co: 35, ho: 5, wo: 5, sh: 2, sw: 2, padTop: 1, padLeft: 1 };
      const x = Float32Array.from({ length: 2 * 9 * 9 * 37 }, (_, i) => Math.sin(i));
      const f = Float32Array.from({ length: 9 * 37 * 35 }, (_, i) => Math.cos(i));
      const y = new Float32Array(2 * 5 * 5 * 35);
      load.kernels.conv2d(g, x, f, y);
      console.log(JSON.stringify({ isa: load.kernels.isa, threads: load.kernels.threads, y: Array.from(y) }));
    `;
    const tsx = fileURLToPath(new URL('../../../node_modules/tsx/dist/cli.mjs', import.meta.url));
    const child = spawnSync(process.execPath, [tsx, '--eval', script], {
      env: { ...process.env, WRN_NATIVE_ISA: 'portable', WRN_NATIVE_THREADS: '1' },
      encoding: 'utf8',
    });
    expect(child.stderr).toBe('');
    const result = JSON.parse(child.stdout) as { isa: string; threads: number; y: number[] };
    expect(result.isa).toBe('portable');
    expect(result.threads).toBe(1);
    const g = geometry(2, 9, 9, 37, 3, 35, 2, 'same');
    const x = Float32Array.from({ length: 2 * 9 * 9 * 37 }, (_, i) => Math.sin(i));
    const f = Float32Array.from({ length: 9 * 37 * 35 }, (_, i) => Math.cos(i));
    const expected = reference(g, x, f, new Float32Array(2 * 5 * 5 * 35));
    expect(maxRelativeError(result.y, expected.y)).toBeLessThan(1e-5);
  });

  /** Runs a copy of the loader in a temporary package laid out as `files` says, and returns what it loaded. */
  function loadFromCopy(files: Record<string, string>, probe: string): string {
    const dir = mkdtempSync(join(tmpdir(), 'wrn-native-copy-'));
    try {
      mkdirSync(join(dir, 'src'));
      copyFileSync(fileURLToPath(new URL('../src/index.ts', import.meta.url)), join(dir, 'src', 'index.ts'));
      for (const [target, source] of Object.entries(files)) {
        mkdirSync(join(dir, target, '..'), { recursive: true });
        copyFileSync(source, join(dir, target));
      }
      const script = `import { loadNativeConvKernels } from ${JSON.stringify(join(dir, 'src', 'index.ts'))}; const load = loadNativeConvKernels(); ${probe}`;
      const tsx = fileURLToPath(new URL('../../../node_modules/tsx/dist/cli.mjs', import.meta.url));
      const child = spawnSync(process.execPath, [tsx, '--eval', script], { encoding: 'utf8' });
      expect(child.stderr).toBe('');
      return child.stdout;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('says how to build the addon where neither a compiled nor a prebuilt binary is there', () => {
    const result = JSON.parse(loadFromCopy({}, 'console.log(JSON.stringify(load));')) as { ok: boolean; reason: string };
    expect(result.ok).toBe(false);
    expect(result.reason).toMatch(/^no addon loads \(compiled: Cannot find module '.*build\/Release\/wrn_native\.node'.*; prebuilt: Cannot find module '.*prebuilds\/linux-x64\/wrn_native\.node'/);
    expect(result.reason).toContain('`npm rebuild @wrn/native` (needs python3, make, a C++17 compiler)');
  });

  const prebuiltDir = fileURLToPath(new URL(`../prebuilds/${process.platform}-${process.arch}/`, import.meta.url));
  const hasPrebuilt = existsSync(join(prebuiltDir, 'wrn_native.node'));

  it.skipIf(!hasPrebuilt)('ships a prebuilt binary built from the current sources', () => {
    const { sourceHash } = createRequire(import.meta.url)('../scripts/prebuild-info.cjs') as { sourceHash: () => string };
    expect(readFileSync(join(prebuiltDir, 'source.sha256'), 'utf8').trim(), 'native/conv.cc or binding.gyp changed: run `npm run release:prebuilt -w @wrn/native` and commit prebuilds/').toBe(sourceHash());
  });

  it.skipIf(!hasPrebuilt)('loads the prebuilt binary where nothing was compiled, and it computes the definition', () => {
    const g = geometry(2, 9, 9, 37, 3, 35, 2, 'same');
    const out = loadFromCopy(
      { [`prebuilds/${process.platform}-${process.arch}/wrn_native.node`]: join(prebuiltDir, 'wrn_native.node') },
      `const g = ${JSON.stringify(g)};
      const x = Float32Array.from({ length: 2 * 9 * 9 * 37 }, (_, i) => Math.sin(i));
      const f = Float32Array.from({ length: 9 * 37 * 35 }, (_, i) => Math.cos(i));
      const y = new Float32Array(2 * 5 * 5 * 35);
      load.kernels.conv2d(g, x, f, y);
      console.log(JSON.stringify({ origin: load.kernels.origin, y: Array.from(y) }));`,
    );
    const result = JSON.parse(out) as { origin: string; y: number[] };
    expect(result.origin).toBe('prebuilt');
    const x = Float32Array.from({ length: 2 * 9 * 9 * 37 }, (_, i) => Math.sin(i));
    const f = Float32Array.from({ length: 9 * 37 * 35 }, (_, i) => Math.cos(i));
    expect(maxRelativeError(result.y, reference(g, x, f, new Float32Array(2 * 5 * 5 * 35)).y)).toBeLessThan(1e-5);
  });

  it('names the buffer whose size does not match the geometry, and the geometry value out of range', () => {
    const kernels = loaded();
    const g = geometry(1, 4, 4, 2, 3, 3, 1, 'same');
    const x = new Float32Array(32);
    const f = new Float32Array(54);
    expect(() => kernels.conv2d(g, x, f, new Float32Array(47))).toThrow('conv2d: out has 47 elements; the shape needs 48');
    expect(() => kernels.conv2dBackpropFilter(g, new Float32Array(31), new Float32Array(48), f)).toThrow('conv2dBackpropFilter: x has 31 elements; the shape needs 32');
    expect(() => kernels.conv2d(g, x, new Float64Array(54) as unknown as Float32Array, new Float32Array(48))).toThrow('conv2d: filter must be a Float32Array');
    expect(() => kernels.conv2d({ ...g, padTop: 3 }, x, f, new Float32Array(48))).toThrow('padding (3, 1) must be within the filter');
    expect(() => kernels.conv2d({ ...g, co: 0 }, x, f, new Float32Array(48))).toThrow('shape[6] must be at least 1, got 0');
  });

  it('reads and writes a view on shared memory (the wasm backend heap) in place', () => {
    const kernels = loaded();
    const g = geometry(1, 4, 4, 2, 3, 3, 1, 'same');
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 2, shared: true });
    const x = new Float32Array(memory.buffer, 64, 32).fill(1);
    const f = new Float32Array(memory.buffer, 64 + 32 * 4, 54).fill(1);
    const y = new Float32Array(memory.buffer, 1024, 48);
    kernels.conv2d(g, x, f, y);
    // A corner output sees 2x2 pixels of 2 channels; an inner one 3x3.
    expect(y[0]).toBe(8);
    expect(y[(1 * 4 + 1) * 3]).toBe(18);
  });
});
