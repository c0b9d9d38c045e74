import { createRequire } from 'node:module';

/**
 * The geometry of one NHWC convolution: input [n, h, w, ci], filter [kh, kw, ci, co], output [n, ho, wo, co],
 * strides (sh, sw) and the zero padding before the first row and column (padTop, padLeft); the padding after
 * the last ones follows from ho and wo. Dilation is 1. With `groups` G > 1 the convolution is grouped (ResNeXt's):
 * the input has G * ci channels, the filter stays [kh, kw, ci, co], and output channels [j*co/G, (j+1)*co/G) see
 * input channels [j*ci, (j+1)*ci) only.
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
  /** Groups G (default 1: a dense convolution); co must be a multiple of it. */
  groups?: number;
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
  /**
   * out = a op b, elementwise. Each operand has out's length, a single value, or a length dividing out's that it
   * repeats with (a broadcast over leading axes: [N,H,W,C] op [C]).
   */
  binary(op: NativeBinaryOp, a: Float32Array, b: Float32Array, out: Float32Array): void;
  /** out = relu(x), step(x) (1 where x > 0, else `alpha`; NaN stays NaN) or x * x; out may be x. */
  unary(op: NativeUnaryOp, x: Float32Array, out: Float32Array, alpha?: number): void;
  /** x viewed as [outer, reduced, kept]: out[o, k] = scale * sum over r of x[o, r, k] (accumulated in double). */
  sum(x: Float32Array, outer: number, reduced: number, kept: number, out: Float32Array, scale?: number): void;
  /**
   * The gradients of y = (x - mean) * scale / sqrt(variance + epsilon) + offset (x, dy: [rows, C]; the rest [C];
   * scale null means 1) with respect to x, mean, variance, scale and offset, in one pass over x and dy.
   */
  batchNormGrad(
    x: Float32Array,
    dy: Float32Array,
    mean: Float32Array,
    variance: Float32Array,
    scale: Float32Array | null,
    epsilon: number,
    out: BatchNormGradients,
  ): void;
  /**
   * BatchNorm in training mode over x [rows, C] in one call: the batch's per-channel mean and biased variance
   * (accumulated in double), then y = (x - mean) / sqrt(variance + epsilon) * scale + offset (null: 1 and 0).
   */
  batchNormTraining(x: Float32Array, scale: Float32Array | null, offset: Float32Array | null, epsilon: number, out: BatchNormTrainingOutputs): void;
  /**
   * The backward pass of {@link NativeConvKernels.batchNormTraining}, its mean and variance being functions of x
   * (PyTorch's formula): dx, dscale, doffset from x, dy and the forward's mean and variance; dmean and dvariance
   * (null: none) are gradients reaching the mean and variance outputs themselves.
   */
  batchNormTrainingGrad(
    x: Float32Array,
    dy: Float32Array,
    scale: Float32Array | null,
    mean: Float32Array,
    variance: Float32Array,
    epsilon: number,
    outputGradients: { dmean: Float32Array | null; dvariance: Float32Array | null },
    out: BatchNormTrainingGradients,
  ): void;
  /**
   * One torch.optim.SGD step in place: d = grad + weightDecay * param; with momentum, buffer = first ? d :
   * momentum * buffer + (1 - dampening) * d and d = nesterov ? d + momentum * buffer : buffer; param -= lr * d.
   * `buffer` may be null only when momentum is 0.
   */
  sgdUpdate(param: Float32Array, grad: Float32Array, buffer: Float32Array | null, hyper: SgdUpdateHyper): void;
  /** ReLU's gradient: dx = dy * step(y) (1 where y > 0, NaN where y is NaN, else 0), y ReLU's output. */
  reluGrad(y: Float32Array, dy: Float32Array, dx: Float32Array): void;
  /**
   * BatchNorm with fixed statistics (inference): out = (x - mean) * scale / sqrt(variance + epsilon) + offset over x
   * [rows, C]; each of mean, variance, offset, scale has C values or one (offset null means 0, scale null means 1).
   * With `relu` true, out = max(0, that) in the same pass (NaN stays NaN).
   */
  batchNormInference(
    x: Float32Array,
    mean: Float32Array,
    variance: Float32Array,
    offset: Float32Array | null,
    scale: Float32Array | null,
    epsilon: number,
    out: Float32Array,
    relu?: boolean,
  ): void;
  /** out = max(0, x) (NaN stays NaN), threaded on large tensors; out may be x. */
  relu(x: Float32Array, out: Float32Array): void;
  /**
   * out = a + b, all three of one length, threaded on large tensors; out may be a or b. With `relu` true,
   * out = max(0, a + b) in the same pass (a residual addition and the ReLU after it; NaN stays NaN).
   */
  add(a: Float32Array, b: Float32Array, out: Float32Array, relu?: boolean): void;
  /**
   * ResNet's option-A shortcut in one pass: x [n, h, w, c] -> out [n, ceil(h/s), ceil(w/s), outChannels], x[:, ::s, ::s, :]
   * in the first c channels and zeros after them.
   */
  zeroPadShortcut(x: Float32Array, shape: readonly [number, number, number, number], strides: number, outChannels: number, out: Float32Array): void;
  /**
   * Sets the elements per thread's share of batchNormInference, relu, add and zeroPadShortcut (smaller tensors stay
   * on the calling thread; WRN_NATIVE_INFERENCE_GRAIN's value, else 4M); returns the previous value. For A/B benches.
   */
  setInferenceGrain(elements: number): number;
  /** The GEMM micro-kernel in use: 'avx512f', 'avx2+fma', or 'portable' (compiler-vectorised C++); WRN_NATIVE_ISA=avx512|avx2|portable forces one the CPU has. */
  isa: string;
  /** Threads each call splits its work over (WRN_NATIVE_THREADS, else one per logical core). */
  threads: number;
  /** Which binary is loaded: 'compiled' on this machine (build/Release), or the 'prebuilt' one shipped in the package. */
  origin: NativeBinaryOrigin;
  /**
   * conv2d by Winograd F(tile x tile, 3x3), whatever the dispatch rule says: 3x3 filters, stride 1, padding 0..2
   * only (conv2d itself takes this path where {@link NativeConvKernels.winogradTile} picks it).
   */
  winogradConv2d(geometry: ConvGeometry, x: Float32Array, filter: Float32Array, out: Float32Array, bias: Float32Array | null, relu: boolean, tile: WinogradTile): void;
  /** conv2dBackpropInput by Winograd F(tile x tile, 3x3), as {@link NativeConvKernels.winogradConv2d}. */
  winogradConv2dBackpropInput(geometry: ConvGeometry, dy: Float32Array, filter: Float32Array, dx: Float32Array, tile: WinogradTile): void;
  /** conv2dBackpropFilter by Winograd F(tile x tile, 3x3): the transforms of x's and dy's tiles, summed by GEMMs. */
  winogradConv2dBackpropFilter(geometry: ConvGeometry, x: Float32Array, dy: Float32Array, dw: Float32Array, tile: WinogradTile): void;
  /**
   * The Winograd tile conv2d ('forward'), conv2dBackpropInput ('input') or conv2dBackpropFilter ('filter') uses
   * for this geometry, 0 for the im2col GEMM: the measured rule, or WRN_NATIVE_WINOGRAD (0 off; 2 or 4 forces that
   * tile on every 3x3 stride-1 layer).
   */
  winogradTile(geometry: ConvGeometry, pass?: WinogradPass): 0 | WinogradTile;
  /** The ISA of the Winograd transforms: 'avx512f', 'avx2+fma' or 'portable' (WRN_NATIVE_ISA=portable | avx2 caps it). */
  winogradIsa: string;
}

/** The output tile of a Winograd convolution: F(2x2, 3x3) or F(4x4, 3x3). */
export type WinogradTile = 2 | 4;

/** What a convolution call computes: the output, or the gradient with respect to the input or the filter. */
export type WinogradPass = 'forward' | 'input' | 'filter';

const WINOGRAD_PASSES: Record<WinogradPass, number> = { forward: 0, input: 1, filter: 2 };

/** The binary operations {@link NativeConvKernels.binary} computes. */
export type NativeBinaryOp = 'add' | 'sub' | 'mul';

/** The unary operations {@link NativeConvKernels.unary} computes. */
export type NativeUnaryOp = 'relu' | 'step' | 'square';

/** Where {@link NativeConvKernels.batchNormGrad} writes: dx [rows, C], the others [C]. */
export interface BatchNormGradients {
  dx: Float32Array;
  dmean: Float32Array;
  dvariance: Float32Array;
  dscale: Float32Array;
  doffset: Float32Array;
}

/** Where {@link NativeConvKernels.batchNormTraining} writes: y [rows, C], mean and variance [C]. */
export interface BatchNormTrainingOutputs {
  y: Float32Array;
  mean: Float32Array;
  variance: Float32Array;
}

/** Where {@link NativeConvKernels.batchNormTrainingGrad} writes: dx [rows, C], dscale and doffset [C]. */
export interface BatchNormTrainingGradients {
  dx: Float32Array;
  dscale: Float32Array;
  doffset: Float32Array;
}

/** The hyper-parameters of one {@link NativeConvKernels.sgdUpdate}, with torch.optim.SGD's meaning. */
export interface SgdUpdateHyper {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  /** The buffer's first step: buffer = d (its old contents are ignored). */
  first: boolean;
}

/** Where the loaded addon came from. */
export type NativeBinaryOrigin = 'compiled' | 'prebuilt';

/** What {@link loadNativeConvKernels} found: the kernels, or why there are none. */
export type NativeConvLoad = { ok: true; kernels: NativeConvKernels } | { ok: false; reason: string };

interface Addon {
  conv2d(shape: number[], x: Float32Array, filter: Float32Array, out: Float32Array, bias: Float32Array | null, relu: boolean): void;
  conv2dBackpropInput(shape: number[], dy: Float32Array, filter: Float32Array, dx: Float32Array): void;
  conv2dBackpropFilter(shape: number[], x: Float32Array, dy: Float32Array, dw: Float32Array): void;
  binary(op: number, a: Float32Array, b: Float32Array, out: Float32Array): void;
  unary(op: number, x: Float32Array, out: Float32Array, alpha: number): void;
  sum(x: Float32Array, outer: number, reduced: number, kept: number, scale: number, out: Float32Array): void;
  batchNormGrad(...buffers: [Float32Array, Float32Array, Float32Array, Float32Array, Float32Array | null, number, ...Float32Array[]]): void;
  batchNormTraining(x: Float32Array, scale: Float32Array | null, offset: Float32Array | null, epsilon: number, ...out: Float32Array[]): void;
  batchNormTrainingGrad(
    ...args: [Float32Array, Float32Array, Float32Array | null, Float32Array, Float32Array, number, Float32Array | null, Float32Array | null, ...Float32Array[]]
  ): void;
  reluGrad(y: Float32Array, dy: Float32Array, dx: Float32Array): void;
  sgdUpdate(
    param: Float32Array,
    grad: Float32Array,
    buffer: Float32Array | null,
    lr: number,
    momentum: number,
    dampening: number,
    weightDecay: number,
    nesterov: boolean,
    first: boolean,
  ): void;
  batchNormInference(
    x: Float32Array,
    mean: Float32Array,
    variance: Float32Array,
    offset: Float32Array | null,
    scale: Float32Array | null,
    epsilon: number,
    out: Float32Array,
    relu: boolean,
  ): void;
  relu(x: Float32Array, out: Float32Array): void;
  add(a: Float32Array, b: Float32Array, out: Float32Array, relu: boolean): void;
  zeroPadShortcut(x: Float32Array, shape: readonly number[], strides: number, outChannels: number, out: Float32Array): void;
  setInferenceGrain(elements: number): number;
  isa: string;
  threads: number;
  winogradConv2d(shape: number[], x: Float32Array, filter: Float32Array, out: Float32Array, bias: Float32Array | null, relu: boolean, tile: number): void;
  winogradConv2dBackpropInput(shape: number[], dy: Float32Array, filter: Float32Array, dx: Float32Array, tile: number): void;
  winogradConv2dBackpropFilter(shape: number[], x: Float32Array, dy: Float32Array, dw: Float32Array, tile: number): void;
  winogradTile(shape: number[], pass: number): number;
  winogradIsa: string;
}

// The op codes elementwise.cc switches on.
const BINARY_OPS: Record<NativeBinaryOp, number> = { add: 0, sub: 1, mul: 2 };
const UNARY_OPS: Record<NativeUnaryOp, number> = { relu: 0, step: 1, square: 2 };

function shapeOf(g: ConvGeometry): number[] {
  return [g.n, g.h, g.w, g.ci, g.kh, g.kw, g.co, g.ho, g.wo, g.sh, g.sw, g.padTop, g.padLeft, g.groups ?? 1];
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
      binary: (op, a, b, out) => kernels.binary(BINARY_OPS[op] ?? -1, a, b, out),
      unary: (op, x, out, alpha) => kernels.unary(UNARY_OPS[op] ?? -1, x, out, alpha ?? 0),
      sum: (x, outer, reduced, kept, out, scale) => kernels.sum(x, outer, reduced, kept, scale ?? 1, out),
      batchNormGrad: (x, dy, mean, variance, scale, epsilon, out) =>
        kernels.batchNormGrad(x, dy, mean, variance, scale, epsilon, out.dx, out.dmean, out.dvariance, out.dscale, out.doffset),
      batchNormTraining: (x, scale, offset, epsilon, out) => kernels.batchNormTraining(x, scale, offset, epsilon, out.y, out.mean, out.variance),
      batchNormTrainingGrad: (x, dy, scale, mean, variance, epsilon, grads, out) =>
        kernels.batchNormTrainingGrad(x, dy, scale, mean, variance, epsilon, grads.dmean, grads.dvariance, out.dx, out.dscale, out.doffset),
      sgdUpdate: (param, grad, buffer, h) => kernels.sgdUpdate(param, grad, buffer, h.lr, h.momentum, h.dampening, h.weightDecay, h.nesterov, h.first),
      reluGrad: (y, dy, dx) => kernels.reluGrad(y, dy, dx),
      batchNormInference: (x, mean, variance, offset, scale, epsilon, out, relu) =>
        kernels.batchNormInference(x, mean, variance, offset, scale, epsilon, out, relu ?? false),
      relu: (x, out) => kernels.relu(x, out),
      add: (a, b, out, relu) => kernels.add(a, b, out, relu ?? false),
      zeroPadShortcut: (x, shape, strides, outChannels, out) => kernels.zeroPadShortcut(x, shape, strides, outChannels, out),
      setInferenceGrain: (elements) => kernels.setInferenceGrain(elements),
      isa: addon.isa,
      threads: addon.threads,
      origin,
      winogradConv2d: (g, x, filter, out, bias, relu, tile) => kernels.winogradConv2d(shapeOf(g), x, filter, out, bias, relu, tile),
      winogradConv2dBackpropInput: (g, dy, filter, dx, tile) => kernels.winogradConv2dBackpropInput(shapeOf(g), dy, filter, dx, tile),
      winogradConv2dBackpropFilter: (g, x, dy, dw, tile) => kernels.winogradConv2dBackpropFilter(shapeOf(g), x, dy, dw, tile),
      winogradTile: (g, pass) => kernels.winogradTile(shapeOf(g), WINOGRAD_PASSES[pass ?? 'forward'] ?? -1) as 0 | WinogradTile,
      winogradIsa: addon.winogradIsa,
    },
  };
  return loaded;
}
