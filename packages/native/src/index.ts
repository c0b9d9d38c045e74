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
}

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

// Relative to this file: src/ in the workspace's tests, dist/ once built; the addon is in build/Release beside both.
const ADDON_PATH = '../build/Release/wrn_native.node';

let loaded: NativeConvLoad | undefined;

/**
 * Loads the compiled addon once. It is optional: where it was not compiled (no C++ toolchain when npm installed
 * it, or `npm rebuild @wrn/native` not run) the result says so, and callers keep their own kernels.
 */
export function loadNativeConvKernels(): NativeConvLoad {
  if (loaded) return loaded;
  let addon: Addon;
  try {
    addon = createRequire(import.meta.url)(ADDON_PATH) as Addon;
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
    loaded = { ok: false, reason: `the addon is not built (${message}); build it with \`npm rebuild @wrn/native\` (needs python3, make, a C++17 compiler)` };
    return loaded;
  }
  loaded = {
    ok: true,
    kernels: {
      conv2d: (g, x, filter, out, bias, relu) => addon.conv2d(shapeOf(g), x, filter, out, bias ?? null, relu ?? false),
      conv2dBackpropInput: (g, dy, filter, dx) => addon.conv2dBackpropInput(shapeOf(g), dy, filter, dx),
      conv2dBackpropFilter: (g, x, dy, dw) => addon.conv2dBackpropFilter(shapeOf(g), x, dy, dw),
      isa: addon.isa,
      threads: addon.threads,
    },
  };
  return loaded;
}
