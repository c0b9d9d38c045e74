import { createRequire } from 'node:module';

/**
 * The geometry of one NHWC convolution: input [n, h, w, ci], filter [kh, kw, ci, co], output [n, ho, wo, co],
 * strides (sh, sw) and the zero padding before the first row and column (padTop, padLeft); the padding after
 * the last ones follows from ho and wo. Dilation is 1.
 */
export interface ConvGeometry {
  n: number;
  h: number;
  w: number;
  ci: number;
  kh: number;
  kw: number;
  co: number;
  ho: number;
  wo: number;
  sh: number;
  sw: number;
  padTop: number;
  padLeft: number;
}

/**
 * Float32 convolution kernels compiled for this machine. Every buffer is a Float32Array of exactly the size its
 * shape needs (a view on a wasm heap is fine: nothing is copied); outputs are overwritten.
 */
export interface NativeConvKernels {
  /** out = conv(x, filter) (+ bias per output channel) (then max(0, .) when relu). */
  conv2d(geometry: ConvGeometry, x: Float32Array, filter: Float32Array, out: Float32Array, bias?: Float32Array | null, relu?: boolean): void;
  /** dx = the gradient of sum(conv(x, filter) * dy) with respect to x. */
  conv2dBackpropInput(geometry: ConvGeometry, dy: Float32Array, filter: Float32Array, dx: Float32Array): void;
  /** dw = the gradient of sum(conv(x, filter) * dy) with respect to filter. */
  conv2dBackpropFilter(geometry: ConvGeometry, x: Float32Array, dy: Float32Array, dw: Float32Array): void;
  /** The micro-kernel in use: 'avx2+fma', or 'portable' (compiler-vectorised C++). */
  isa: string;
  /** Threads each call splits its work over (WRN_NATIVE_THREADS, else one per logical core). */
  threads: number;
  /** Which binary is loaded: 'compiled' on this machine (build/Release), or the 'prebuilt' one shipped in the package. */
  origin: NativeBinaryOrigin;
}

/** Where the loaded addon came from. */
export type NativeBinaryOrigin = 'compiled' | 'prebuilt';

/** What {@link loadNativeConvKernels} found: the kernels, or why there are none. */
export type NativeConvLoad = { ok: true; kernels: NativeConvKernels } | { ok: false; reason: string };

interface Addon {
  conv2d(shape: number[], x: Float32Array, filter: Float32Array, out: Float32Array, bias: Float32Array | null, relu: boolean): void;
  conv2dBackpropInput(shape: number[], dy: Float32Array, filter: Float32Array, dx: Float32Array): void;
  conv2dBackpropFilter(shape: number[], x: Float32Array, dy: Float32Array, dw: Float32Array): void;
  isa: string;
  threads: number;
}

function shapeOf(g: ConvGeometry): number[] {
  return [g.n, g.h, g.w, g.ci, g.kh, g.kw, g.co, g.ho, g.wo, g.sh, g.sw, g.padTop, g.padLeft];
}

// Relative to this file: src/ in the workspace's tests, dist/ once built; the addon is beside both. A binary
// compiled on this machine comes first; the prebuilt one (scripts/prebuild.cjs) serves where install scripts did
// not run (npm 11 and pnpm 10 withhold them by default) or no compiler is installed.
const ADDON_CANDIDATES: ReadonlyArray<{ origin: NativeBinaryOrigin; path: string }> = [
  { origin: 'compiled', path: '../build/Release/wrn_native.node' },
  { origin: 'prebuilt', path: `../prebuilds/${process.platform}-${process.arch}/wrn_native.node` },
];

let loaded: NativeConvLoad | undefined;

/**
 * Loads the compiled addon once. It is optional: where it was not compiled (no C++ toolchain when npm installed
 * it, or `npm rebuild @wrn/native` not run) the result says so, and callers keep their own kernels.
 */
export function loadNativeConvKernels(): NativeConvLoad {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  let addon: Addon | undefined;
  let origin: NativeBinaryOrigin = 'compiled';
  const failures: string[] = [];
  for (const candidate of ADDON_CANDIDATES) {
    try {
      addon = require(candidate.path) as Addon;
      origin = candidate.origin;
      break;
    } catch (error) {
      failures.push(`${candidate.origin}: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`);
    }
  }
  if (!addon) {
    loaded = {
      ok: false,
      reason: `no addon loads (${failures.join('; ')}); build it with \`npm rebuild @wrn/native\` (needs python3, make, a C++17 compiler)`,
    };
    return loaded;
  }
  const kernels = addon;
  loaded = {
    ok: true,
    kernels: {
      conv2d: (g, x, filter, out, bias, relu) => kernels.conv2d(shapeOf(g), x, filter, out, bias ?? null, relu ?? false),
      conv2dBackpropInput: (g, dy, filter, dx) => kernels.conv2dBackpropInput(shapeOf(g), dy, filter, dx),
      conv2dBackpropFilter: (g, x, dy, dw) => kernels.conv2dBackpropFilter(shapeOf(g), x, dy, dw),
      isa: addon.isa,
      threads: addon.threads,
      origin,
    },
  };
  return loaded;
}
