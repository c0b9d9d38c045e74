import {
  add,
  broadcastTo,
  div,
  FusedBatchNorm,
  getBackend,
  getGradient,
  Mean,
  mul,
  neg,
  registerGradient,
  reshape,
  rsqrt,
  scalar,
  sub,
  sum,
  tidy,
  util,
} from '@tensorflow/tfjs-core';
import type { FusedBatchNormAttrs, GradConfig, MeanAttrs, NamedAttrMap, Tensor } from '@tensorflow/tfjs-core';
import { nativeBatchNormGradient } from './native-elementwise';
import { registerReluGradientFromOutput } from './native-relu-grad';
import { WASM_BACKEND_NAME } from './training-kernels';

/** Kernels whose gradient {@link registerWasmTrainingGradients} replaces while the wasm backend is active. */
export const WASM_TRAINING_GRADIENT_NAMES: readonly string[] = [FusedBatchNorm, Mean];

type GradFunc = GradConfig['gradFunc'];

/**
 * The BatchNorm gradient with per-channel mean/variance/scale (what tfjs-layers' BatchNormalization
 * runs): the same five gradients as tfjs-core's, in 5 passes over the activation instead of 14.
 * With xc = x - mean, s = scale / sqrt(variance + eps):
 *   dx = dy * s, dmean = -s * sum(dy), dvariance = -s / 2 / (variance + eps) * sum(dy * xc),
 *   dscale = sum(dy * xc) / sqrt(variance + eps), doffset = sum(dy)   (sums over all axes but the last).
 * The two sums are taken at once, so the full-size x - mean and dy * scale are freed right away; tfjs-core's
 * version keeps both alive until the whole backward pass ends.
 */
function leanBatchNormGradient(original: GradFunc): GradFunc {
  return (dy: Tensor | Tensor[], saved: Tensor[], attrs: NamedAttrMap) => {
    const [x, mean, variance, scale] = saved;
    const dyTensor = dy as Tensor;
    const native = nativeBatchNormGradient(dy, saved, attrs);
    if (native != null) return native;
    if (x == null || mean == null || variance == null || mean.rank !== 1 || variance.rank !== 1 || x.rank < 2) {
      return original(dy, saved, attrs);
    }
    const channels = x.shape[x.rank - 1];
    if (mean.size !== channels || variance.size !== channels || (scale != null && scale.size !== channels && scale.size !== 1)) {
      return original(dy, saved, attrs);
    }
    const { varianceEpsilon } = attrs as unknown as FusedBatchNormAttrs;
    const axes = Array.from({ length: x.rank - 1 }, (_, i) => i);
    const [invStd, perChannelScale, sumDy, sumDyXc] = tidy(() => {
      const inv = rsqrt(add(variance, scalar(varianceEpsilon)));
      const s = scale == null ? inv : mul(inv, reshape(scale, [-1]));
      return [inv, s, sum(dyTensor, axes), sum(mul(dyTensor, sub(x, mean)), axes)];
    });
    return {
      x: () => mul(dyTensor, perChannelScale),
      mean: () => reshape(neg(mul(perChannelScale, sumDy)), mean.shape),
      variance: () => reshape(mul(mul(mul(perChannelScale, invStd), scalar(-0.5)), mul(invStd, sumDyXc)), mean.shape),
      scale: () => reshape(mul(invStd, sumDyXc), mean.shape),
      offset: () => reshape(sumDy, mean.shape),
    };
  };
}

/**
 * Mean's gradient as one broadcast of dy / N (Tile, which the wasm kernels run as one broadcasting
 * multiply) instead of tfjs-core's fill with ones, multiply and divide over the full input shape.
 */
function leanMeanGradient(original: GradFunc): GradFunc {
  return (dy: Tensor | Tensor[], saved: Tensor[], attrs: NamedAttrMap) => {
    const [x] = saved;
    const dyTensor = dy as Tensor;
    if (x == null || dyTensor.dtype !== 'float32') return original(dy, saved, attrs);
    const axes = util.parseAxisParam((attrs as unknown as MeanAttrs).axis, x.shape);
    const expandedShape = x.shape.map((size, axis) => (axes.includes(axis) ? 1 : size));
    const reduceSize = axes.reduce((n, axis) => n * x.shape[axis]!, 1);
    return { x: () => broadcastTo(div(reshape(dyTensor, expandedShape), scalar(reduceSize)), x.shape) };
  };
}

const LEAN_GRADIENTS: Record<string, (original: GradFunc) => GradFunc> = {
  [FusedBatchNorm]: leanBatchNormGradient,
  [Mean]: leanMeanGradient,
};

// wasm, and wrn-native (native-backend/): both run the lean versions' Tile and broadcasting ops as single passes.
const LEAN_BACKENDS = new Set([WASM_BACKEND_NAME, 'wrn-native']);

const ours = new Map<string, GradFunc>();

/**
 * Replaces the gradients of FusedBatchNorm and Mean (the BatchNorm layers' backward pass) with versions
 * that touch the activations fewer times; they take effect while the wasm backend is active and hand every
 * other backend, and any shape they do not cover, to tfjs-core's own gradient. Must run after
 * `@tensorflow/tfjs-layers` is loaded (in Node it registers every gradient when first imported, which
 * would overwrite these). Idempotent.
 */
export function registerWasmTrainingGradients(): readonly string[] {
  registerReluGradientFromOutput();
  for (const kernelName of WASM_TRAINING_GRADIENT_NAMES) {
    const current = getGradient(kernelName);
    // Nothing to speed up where no gradient is registered yet (tfjs-layers not loaded).
    if (current == null) continue;
    if (current.gradFunc === ours.get(kernelName)) continue;
    const original = current.gradFunc;
    const lean = LEAN_GRADIENTS[kernelName]!(original);
    const gradFunc: GradFunc = (dy, saved, attrs) => (LEAN_BACKENDS.has(getBackend()) ? lean : original)(dy, saved, attrs);
    ours.set(kernelName, gradFunc);
    registerGradient({ ...current, gradFunc });
  }
  return WASM_TRAINING_GRADIENT_NAMES;
}

/** Whether {@link registerWasmTrainingGradients}' gradients are the registered ones. */
export function wasmTrainingGradientsRegistered(): boolean {
  return WASM_TRAINING_GRADIENT_NAMES.every((name) => {
    const fn = ours.get(name);
    return fn != null && getGradient(name)?.gradFunc === fn;
  });
}

