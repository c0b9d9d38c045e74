import {
  avgPool,
  backend_util,
  Cast,
  Concat,
  Mean,
  Sum,
  Conv2D,
  Conv2DBackpropFilter,
  FusedConv2D,
  Conv2DBackpropInput,
  engine,
  FusedBatchNorm,
  FusedDepthwiseConv2D,
  Identity,
  getKernel,
  registerKernel,
  reshape,
  tensor1d,
  tensor4d,
  slice,
  slice_util,
  Slice,
  SplitV,
  util,
  matMul,
  Tensor,
  Tile,
  tidy,
  Transpose,
  transpose,
  unregisterKernel,
  mul,
  pad as padTensor,
} from '@tensorflow/tfjs-core';
import { setGroupedConvMethodPreference } from '@wrn/blocks';
import type { NativeConvKernels } from '@wrn/native';
import { nativeConvKernelMakers } from './wasm-native-conv';
import { makeNativeReduction, nativeElementwiseKernelMakers, setNativeBatchNormGradient, WASM_NATIVE_ELEMENTWISE_KERNEL_NAMES } from './wasm-native-elementwise';
import type {
  CastAttrs,
  ConcatAttrs,
  Conv2DAttrs,
  Conv2DBackpropFilterAttrs,
  Conv2DBackpropInputAttrs,
  FusedBatchNormAttrs,
  KernelConfig,
  KernelFunc,
  NamedTensorInfoMap,
  Tensor4D,
  TensorInfo,
  TileAttrs,
  SliceAttrs,
  SplitVAttrs,
  SumAttrs,
  TransposeAttrs,
} from '@tensorflow/tfjs-core';

/** The backend whose kernels this module adds or replaces. */
export const WASM_BACKEND_NAME = 'wasm';

/** Kernels that {@link registerWasmTrainingKernels} registers for the wasm backend. */
export const WASM_TRAINING_KERNEL_NAMES: readonly string[] = [
  Conv2DBackpropFilter,
  Conv2DBackpropInput,
  Tile,
  Sum,
  Mean,
  Transpose,
  Identity,
  Cast,
  FusedBatchNorm,
  Slice,
  SplitV,
  Concat,
];

type KernelArgs = Parameters<KernelFunc>[0];

const TRANSPOSE_TILE = 32;

// Kernel inputs are usually Tensors (when an op called runKernel), but a kernel called from another
// kernel gets bare TensorInfos; ops need Tensors.
function asTensor<T extends Tensor>(info: TensorInfo): T {
  return (info instanceof Tensor ? info : engine().makeTensorFromTensorInfo(info)) as T;
}

function requireInput(inputs: NamedTensorInfoMap, name: string, kernel: string): TensorInfo {
  const info = inputs[name];
  if (info == null) throw new Error(`${kernel} (wasm training kernel): missing input '${name}'`);
  return info;
}

// The tfjs op asserts "either strides or dilations must be 1"; XNNPACK has no such limit, and the
// filter gradient of a strided conv is a conv dilated by that stride.
function forwardConv(x: Tensor4D, filter: Tensor4D, attrs: Conv2DAttrs): Tensor4D {
  return engine().runKernel(Conv2D, { x, filter }, attrs as unknown as Record<string, unknown> as never) as Tensor4D;
}

function checkChannelsLast(kernel: string, dataFormat: string): void {
  if (dataFormat !== 'NHWC') {
    throw new Error(`${kernel} (wasm training kernel): dataFormat '${dataFormat}' is not supported; expected 'NHWC'`);
  }
}

/**
 * The filter gradient of a 1x1 conv (no padding) is one matrix product, dW[c,o] = sum over pixels p of
 * x[p,c] * dy[p,o], with x subsampled first for stride s. As a conv (below) every one of the c output
 * "images" is a single pixel, which XNNPACK tiles one row at a time: 3-12x slower than wasm's matMul
 * (measured on ResNeXt's 1x1 convs). matMul wants its left operand transposed; which one is transposed is
 * chosen by measurement: the larger channel count as the rows, unless the other side has under 64 channels.
 */
function pointwiseFilterGradient(
  backend: WasmHeapBackend,
  x: Tensor4D,
  dy: Tensor4D,
  n: number,
  ho: number,
  wo: number,
  sh: number,
  sw: number,
  ci: number,
): Tensor {
  const co = dy.shape[3];
  const pixels = n * ho * wo;
  let xUsed: Tensor4D = x;
  if (sh > 1 || sw > 1 || x.shape[1] !== ho || x.shape[2] !== wo) xUsed = subsampleOnHeap(backend, x, sh, sw, ho, wo);
  const x2d = reshape(xUsed, [pixels, ci]);
  const dy2d = reshape(dy, [pixels, co]);
  const rowsFromDy = co > ci && ci >= 64;
  const dw = rowsFromDy ? transpose(matMul(transpose(dy2d), x2d)) : matMul(transpose(x2d), dy2d);
  return reshape(dw, [1, 1, ci, co]);
}

/**
 * dW[i,j,c,o] = sum over n,y,x of xPadded[n, y*s+i, x*s+j, c] * dy[n,y,x,o]: that is one forward conv
 * of x viewed as c images of n channels ([c,H,W,n]) with dy viewed as a [Ho,Wo,n,o] filter, stride 1,
 * dilation s. It runs on XNNPACK's conv, about 10x faster than im2col + matMul(transposeA) on wasm.
 */
function conv2DBackpropFilterViaConv(args: KernelArgs): TensorInfo {
  const attrs = args.attrs as unknown as Conv2DBackpropFilterAttrs;
  checkChannelsLast(Conv2DBackpropFilter, attrs.dataFormat);
  const xInfo = requireInput(args.inputs, 'x', Conv2DBackpropFilter);
  const dyInfo = requireInput(args.inputs, 'dy', Conv2DBackpropFilter);
  return tidy(() => {
    const x = asTensor<Tensor4D>(xInfo);
    const dy = asTensor<Tensor4D>(dyInfo);
    const info = backend_util.computeConv2DInfo(
      x.shape,
      attrs.filterShape,
      attrs.strides,
      1,
      attrs.pad,
      attrs.dimRoundingMode,
      false,
      'channelsLast',
    );
    const [kh, kw] = attrs.filterShape;
    const { top, left } = info.padInfo;
    const { strideHeight: sh, strideWidth: sw, outHeight: ho, outWidth: wo } = info;
    const [n, h, w, ci] = x.shape;
    // (Padding at the bottom/right can make a 1x1 conv read past x: those pixels are zeros, left to the conv below.)
    if (kh === 1 && kw === 1 && top === 0 && left === 0 && (ho - 1) * sh < h && (wo - 1) * sw < w) {
      return pointwiseFilterGradient(args.backend as unknown as WasmHeapBackend, x, dy, n, ho, wo, sh, sw, ci);
    }
    // Bottom/right padding that makes the output exactly kh x kw; negative where the forward conv
    // never read the last rows/columns of x (e.g. 'valid' with stride 2), which we then cut off.
    const bottom = kh + (ho - 1) * sh - h - top;
    const right = kw + (wo - 1) * sw - w - left;
    let xUsed: Tensor4D = x;
    if (bottom < 0 || right < 0) {
      xUsed = slice(x, [0, 0, 0, 0], [-1, h + Math.min(bottom, 0), w + Math.min(right, 0), -1]);
    }
    const xT = transpose(xUsed, [3, 1, 2, 0]);
    const dyT = transpose(dy, [1, 2, 0, 3]);
    const out = forwardConv(xT, dyT, {
      strides: [1, 1],
      pad: [
        [0, 0],
        [top, Math.max(bottom, 0)],
        [left, Math.max(right, 0)],
        [0, 0],
      ],
      dataFormat: 'NHWC',
      dilations: [sh, sw],
      dimRoundingMode: undefined,
    } as unknown as Conv2DAttrs);
    return transpose(out, [1, 2, 0, 3]);
  });
}

/** The parts of tfjs-backend-wasm's BackendWasm that the kernels below read and write. */
interface WasmHeapBackend {
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: string): TensorInfo;
  incRef(dataId: object): void;
  wasm: { HEAPU8: Uint8Array };
}

/** Offset of a tensor's data on the wasm heap, in 4-byte elements. */
function heapIndex(backend: WasmHeapBackend, info: TensorInfo, kernel: string): number {
  const data = backend.dataIdMap.get(info.dataId);
  if (data == null) throw new Error(`${kernel} (wasm training kernel): tensor of shape [${info.shape.join(',')}] is not on the wasm backend`);
  return data.memoryOffset >>> 2;
}

/**
 * A [kh,kw,ci,co] filter rotated by 180 degrees with its channel axes swapped: out[kh-1-i, kw-1-j, o, c]
 * = w[i, j, c, o], copied on the wasm heap in one pass (wasm's GatherV2 took 23 ms for a 3x3x256x256 filter).
 */
function rotatedFilterOnHeap(backend: WasmHeapBackend, filter: TensorInfo): Tensor4D {
  const [kh, kw, ci, co] = filter.shape as [number, number, number, number];
  const out = backend.makeOutput([kh, kw, co, ci], 'float32');
  // Read the heap only after makeOutput: allocating may grow (and so replace) the wasm memory.
  const heap = new Float32Array(backend.wasm.HEAPU8.buffer);
  const src = heapIndex(backend, filter, Conv2DBackpropInput);
  const dst = heapIndex(backend, out, Conv2DBackpropInput);
  const taps = kh * kw;
  const block = ci * co;
  for (let t = 0; t < taps; t++) {
    const from = src + (taps - 1 - t) * block;
    const to = dst + t * block;
    for (let c0 = 0; c0 < ci; c0 += TRANSPOSE_TILE) {
      const c1 = Math.min(c0 + TRANSPOSE_TILE, ci);
      for (let o0 = 0; o0 < co; o0 += TRANSPOSE_TILE) {
        const o1 = Math.min(o0 + TRANSPOSE_TILE, co);
        for (let c = c0; c < c1; c++) {
          for (let o = o0; o < o1; o++) heap[to + o * ci + c] = heap[from + c * co + o]!;
        }
      }
    }
  }
  return engine().makeTensorFromTensorInfo(out) as Tensor4D;
}

function copyRun(heap: Int32Array, to: number, from: number, length: number): void {
  if (length >= 64) heap.copyWithin(to, from, from + length);
  else for (let i = 0; i < length; i++) heap[to + i] = heap[from + i]!;
}

/**
 * out[b, y, x, :] = x[b, y*sh, x*sw, :] for y < ho, x < wo: a strided 1x1 conv's input pixels, copied
 * on the heap (wasm's StridedSlice took 125 ms on a [16,32,32,256] tensor).
 */
function subsampleOnHeap(backend: WasmHeapBackend, x: TensorInfo, sh: number, sw: number, ho: number, wo: number): Tensor4D {
  const [n, h, w, c] = x.shape as [number, number, number, number];
  const out = backend.makeOutput([n, ho, wo, c], x.dtype);
  const heap = new Int32Array(backend.wasm.HEAPU8.buffer);
  const src = heapIndex(backend, x, Conv2DBackpropFilter);
  let to = heapIndex(backend, out, Conv2DBackpropFilter);
  for (let b = 0; b < n; b++) {
    for (let y = 0; y < ho; y++) {
      for (let xo = 0; xo < wo; xo++, to += c) copyRun(heap, to, src + ((b * h + y * sh) * w + xo * sw) * c, c);
    }
  }
  return engine().makeTensorFromTensorInfo(out) as Tensor4D;
}

/** The inverse of {@link subsampleOnHeap}: a [n,h,w,c] tensor of zeros with out[b, y*sh, x*sw, :] = x[b, y, x, :]. */
function scatterOnHeap(backend: WasmHeapBackend, x: TensorInfo, sh: number, sw: number, h: number, w: number): Tensor4D {
  const [n, ho, wo, c] = x.shape as [number, number, number, number];
  const out = backend.makeOutput([n, h, w, c], x.dtype);
  const heap = new Int32Array(backend.wasm.HEAPU8.buffer);
  let from = heapIndex(backend, x, Conv2DBackpropInput);
  const dst = heapIndex(backend, out, Conv2DBackpropInput);
  heap.fill(0, dst, dst + n * h * w * c);
  for (let b = 0; b < n; b++) {
    for (let y = 0; y < ho; y++) {
      for (let xo = 0; xo < wo; xo++, from += c) copyRun(heap, dst + ((b * h + y * sh) * w + xo * sw) * c, from, c);
    }
  }
  return engine().makeTensorFromTensorInfo(out) as Tensor4D;
}

/**
 * The input gradient of a stride-s conv split by output phase: dx[s*u + q - pad] = sum over t of
 * dy[u - t] * W[q + s*t]. One conv of dy with a ceil(k/s)^2 filter whose s*s*ci output channels are the
 * phases (taps reversed, zero where q + s*t >= k) computes them all; a reshape + transpose interleaves them.
 * Filter [k,k,ci,co] -> [T,T,co,s*s*ci], phase (qh,qw) in channel block qh*s+qw as depthToSpace reads it.
 */
export function polyphaseFilter(w: Float32Array, k: number, ci: number, co: number, s: number): Float32Array {
  const taps = Math.ceil(k / s);
  const outChannels = s * s * ci;
  const g = new Float32Array(taps * taps * co * outChannels);
  for (let th = 0; th < taps; th++) {
    for (let tw = 0; tw < taps; tw++) {
      for (let qh = 0; qh < s; qh++) {
        for (let qw = 0; qw < s; qw++) {
          const ih = qh + s * (taps - 1 - th);
          const iw = qw + s * (taps - 1 - tw);
          if (ih >= k || iw >= k) continue;
          for (let c = 0; c < ci; c++) {
            const from = ((ih * k + iw) * ci + c) * co;
            const to = (th * taps + tw) * co * outChannels + (qh * s + qw) * ci + c;
            for (let o = 0; o < co; o++) g[to + o * outChannels] = w[from + o]!;
          }
        }
      }
    }
  }
  return g;
}

/**
 * dx = the forward conv of dy (with s-1 zeros inserted between its rows/columns for stride s) with the
 * filter rotated by 180 degrees and its in/out channel axes swapped. wasm's own kernel is a scalar loop
 * about 10x slower. Falls back to it for paddings wider than the filter, which our models never use.
 */
function makeConv2DBackpropInputViaConv(original: KernelConfig | undefined) {
  return (args: KernelArgs): TensorInfo | TensorInfo[] => {
    const attrs = args.attrs as unknown as Conv2DBackpropInputAttrs;
    checkChannelsLast(Conv2DBackpropInput, attrs.dataFormat);
    const dyInfo = requireInput(args.inputs, 'dy', Conv2DBackpropInput);
    const filterInfo = requireInput(args.inputs, 'filter', Conv2DBackpropInput);
    const [kh, kw] = filterInfo.shape;
    const inputShape = attrs.inputShape;
    const info = backend_util.computeConv2DInfo(
      inputShape,
      filterInfo.shape as [number, number, number, number],
      attrs.strides,
      1,
      attrs.pad,
      attrs.dimRoundingMode,
      false,
      'channelsLast',
    );
    if (kh == null || kw == null) throw new Error(`${Conv2DBackpropInput} (wasm training kernel): filter must be rank 4`);
    const { top, left } = info.padInfo;
    const { strideHeight: sh, strideWidth: sw, outHeight: ho, outWidth: wo } = info;
    const [, h, w] = inputShape;
    const padTop = kh - 1 - top;
    const padLeft = kw - 1 - left;
    // The zero-inserted dy is (ho-1)*s+1 long; the reshape/pad below makes it ho*s, so the last s-1
    // zeros count against the bottom/right padding.
    const padBottom = h + kh - 1 - ho * sh - padTop;
    const padRight = w + kw - 1 - wo * sw - padLeft;
    if (padTop < 0 || padLeft < 0 || padBottom < -(sh - 1) || padRight < -(sw - 1)) {
      if (original == null) {
        throw new Error(`${Conv2DBackpropInput} (wasm training kernel): padding ${JSON.stringify(attrs.pad)} is wider than the ${kh}x${kw} filter`);
      }
      return original.kernelFunc(args);
    }
    // Strided 1x1: only the pixels at multiples of the stride get a gradient, dy times the transposed
    // filter (the polyphase form would compute s*s phases of which all but one are zeros).
    if (kh === 1 && kw === 1 && (sh > 1 || sw > 1) && top === 0 && left === 0 && (ho - 1) * sh < h && (wo - 1) * sw < w) {
      return tidy(() => {
        const dy = asTensor<Tensor4D>(dyInfo);
        const swapped = reshape(transpose(reshape(asTensor(filterInfo), [filterInfo.shape[2]!, filterInfo.shape[3]!])), [
          1,
          1,
          filterInfo.shape[3]!,
          filterInfo.shape[2]!,
        ]) as Tensor4D;
        const dxSubsampled = forwardConv(dy, swapped, {
          strides: [1, 1],
          pad: 'valid',
          dataFormat: 'NHWC',
          dilations: [1, 1],
          dimRoundingMode: undefined,
        } as unknown as Conv2DAttrs);
        return scatterOnHeap(args.backend as unknown as WasmHeapBackend, dxSubsampled, sh, sw, h, w);
      });
    }
    // Strided: the polyphase form below does 16 instead of 36 multiply-adds per dy element and filter
    // tap pair for 3x3 stride 2 (no multiplications by the inserted zeros).
    const phaseTaps = Math.ceil(kh / sh);
    const phaseRows = Math.ceil((h + top) / sh);
    const phaseCols = Math.ceil((w + left) / sw);
    if (sh > 1 && sh === sw && kh === kw && phaseRows >= ho && phaseCols >= wo) {
      return tidy(() => {
        const dy = asTensor<Tensor4D>(dyInfo);
        const filter = asTensor<Tensor4D>(filterInfo);
        const [n, , , co] = dy.shape;
        const ci = filter.shape[2];
        const phaseFilter = tensor4d(polyphaseFilter(filter.dataSync() as Float32Array, kh, ci, co, sh), [phaseTaps, phaseTaps, co, sh * sh * ci]);
        const phases = forwardConv(dy, phaseFilter, {
          strides: [1, 1],
          pad: [
            [0, 0],
            [phaseTaps - 1, phaseRows - ho],
            [phaseTaps - 1, phaseCols - wo],
            [0, 0],
          ],
          dataFormat: 'NHWC',
          dilations: [1, 1],
          dimRoundingMode: undefined,
        } as unknown as Conv2DAttrs);
        // depthToSpace by reshape + transpose: wasm's DepthToSpace is a scalar loop, the transpose
        // above copies runs of s*ci values.
        const interleaved = reshape(
          transpose(reshape(phases, [n, phaseRows, phaseCols, sh, sh, ci]), [0, 1, 3, 2, 4, 5]),
          [n, phaseRows * sh, phaseCols * sh, ci],
        ) as Tensor4D;
        if (top === 0 && left === 0 && phaseRows * sh === h && phaseCols * sh === w) return interleaved;
        return slice(interleaved, [0, top, left, 0], [n, h, w, ci]);
      });
    }
    return tidy(() => {
      const dy = asTensor<Tensor4D>(dyInfo);
      const [n, , , co] = dy.shape;
      let dyDilated: Tensor4D = dy;
      if (sh > 1 || sw > 1) {
        const spread = padTensor(reshape(dy, [n, ho, 1, wo, 1, co]), [
          [0, 0],
          [0, 0],
          [0, sh - 1],
          [0, 0],
          [0, sw - 1],
          [0, 0],
        ]);
        dyDilated = reshape(spread, [n, ho * sh, wo * sw, co]);
        if (padBottom < 0 || padRight < 0) {
          dyDilated = slice(dyDilated, [0, 0, 0, 0], [-1, ho * sh + Math.min(padBottom, 0), wo * sw + Math.min(padRight, 0), -1]);
        }
      }
      const rotated = rotatedFilterOnHeap(args.backend as unknown as WasmHeapBackend, filterInfo);
      return forwardConv(dyDilated, rotated, {
        strides: [1, 1],
        pad: [
          [0, 0],
          [padTop, Math.max(padBottom, 0)],
          [padLeft, Math.max(padRight, 0)],
          [0, 0],
        ],
        dataFormat: 'NHWC',
        dilations: [1, 1],
        dimRoundingMode: undefined,
      } as unknown as Conv2DAttrs);
    });
  };
}

/**
 * Tile by copying on the wasm heap: each axis's block is written once and then doubled in place with
 * copyWithin (log2(reps) memmoves), so the output is written at memory speed. BatchNorm's gradient tiles
 * [1,1,1,C] by [N,H,W,1]; as a broadcasting multiply by ones (two broadcast operands) XNNPACK took ~2 ms
 * per million elements, about 5x a plain copy.
 */
function makeTileOnHeap(original: KernelConfig | undefined) {
  return (args: KernelArgs): TensorInfo | TensorInfo[] => {
    const xInfo = requireInput(args.inputs, 'x', Tile);
    const { reps } = args.attrs as unknown as TileAttrs;
    const shape = xInfo.shape;
    const rank = shape.length;
    const outShape = shape.map((s, axis) => s * (reps[axis] ?? 1));
    const empty = outShape.some((s) => s === 0);
    if ((xInfo.dtype !== 'float32' && xInfo.dtype !== 'int32') || empty || rank === 0 || reps.length !== rank) {
      if (original == null) throw new Error(`${Tile} (wasm training kernel): no fallback for dtype ${xInfo.dtype}`);
      return original.kernelFunc(args);
    }
    const backend = args.backend as unknown as WasmHeapBackend;
    const out = backend.makeOutput(outShape, xInfo.dtype);
    // Read the heap only after makeOutput: allocating may grow (and so replace) the wasm memory.
    const heap = new Int32Array(backend.wasm.HEAPU8.buffer);
    const src = heapIndex(backend, xInfo, Tile);
    const dst = heapIndex(backend, out, Tile);
    const inStrides = new Array<number>(rank).fill(1);
    const outStrides = new Array<number>(rank).fill(1);
    for (let a = rank - 2; a >= 0; a--) {
      inStrides[a] = inStrides[a + 1]! * shape[a + 1]!;
      outStrides[a] = outStrides[a + 1]! * outShape[a + 1]!;
    }
    // Fills out[dstAt .. dstAt + size of axes >= axis) from x[srcAt ..].
    const fill = (axis: number, srcAt: number, dstAt: number): void => {
      const size = shape[axis]!;
      const block = size * (axis === rank - 1 ? 1 : outStrides[axis]!);
      if (axis === rank - 1) {
        if (size >= 64) heap.copyWithin(dstAt, srcAt, srcAt + size);
        else for (let i = 0; i < size; i++) heap[dstAt + i] = heap[srcAt + i]!;
      } else {
        for (let i = 0; i < size; i++) fill(axis + 1, srcAt + i * inStrides[axis]!, dstAt + i * outStrides[axis]!);
      }
      const total = block * reps[axis]!;
      for (let filled = block; filled < total; filled *= 2) {
        heap.copyWithin(dstAt + filled, dstAt, dstAt + Math.min(filled, total - filled));
      }
    };
    fill(0, src, dst);
    return out;
  };
}

/**
 * Sum/Mean over a block of axes that are not the innermost ones (BatchNorm's statistics and their
 * gradients reduce [N,H,W,C] over [0,1,2]) as one XNNPACK average pooling of x viewed as [P,R,1,C]
 * with an [R,1] window. wasm's own kernel first moves the reduced axes innermost with its scalar
 * transpose: 10-20x slower. (A matMul by ones is fast only when its operand repeats: XNNPACK packs
 * the weights of every new one.)
 */
function makeReductionViaMatMul(kernelName: typeof Sum | typeof Mean, original: KernelConfig | undefined) {
  return (args: KernelArgs): TensorInfo | TensorInfo[] => {
    const xInfo = requireInput(args.inputs, 'x', kernelName);
    const { axis, keepDims } = args.attrs as unknown as SumAttrs;
    const shape = xInfo.shape;
    const rank = shape.length;
    const axes = [...new Set((Array.isArray(axis) ? axis : [axis]).map((a) => (a < 0 ? a + rank : a)))].sort((a, b) => a - b);
    const first = axes[0];
    const last = axes[axes.length - 1];
    const contiguous = first != null && last != null && last - first === axes.length - 1;
    const size = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);
    const reduced = contiguous ? size(shape.slice(first, last + 1)) : 0;
    const kept = contiguous ? size(shape.slice(last + 1)) : 0;
    if (xInfo.dtype !== 'float32' || !contiguous || last === rank - 1 || reduced === 0 || kept === 0) {
      if (original == null) throw new Error(`${kernelName} (wasm training kernel): no fallback for this reduction`);
      return original.kernelFunc(args);
    }
    const outer = size(shape.slice(0, first));
    const outShape = keepDims ? shape.map((d, i) => (i >= first && i <= last ? 1 : d)) : shape.filter((_, i) => i < first || i > last);
    return tidy(() => {
      const x = asTensor(xInfo);
      const mean = avgPool(reshape(x, [outer, reduced, 1, kept]) as Tensor4D, [reduced, 1], 1, 'valid');
      return reshape(kernelName === Mean ? mean : mul(mean, reduced), outShape);
    });
  };
}

/**
 * Input axes that stay neighbours, in order, in the output merge into one: [n,H,W,C] by [3,1,2,0] is
 * [n,HW,C] by [2,1,0]. Size-1 axes drop out.
 */
export function collapseTranspose(shape: readonly number[], perm: readonly number[]): { shape: number[]; perm: number[] } {
  const kept = perm.filter((axis) => shape[axis] !== 1);
  const groups: number[][] = [];
  for (const axis of kept) {
    const last = groups[groups.length - 1];
    if (last != null && last[last.length - 1] === axis - 1 && kept.indexOf(axis - 1) >= 0) last.push(axis);
    else groups.push([axis]);
  }
  // Number the merged axes in input order.
  const byInputOrder = [...groups].sort((a, b) => a[0]! - b[0]!);
  return {
    shape: byInputOrder.map((g) => g.reduce((size, axis) => size * shape[axis]!, 1)),
    perm: groups.map((g) => byInputOrder.indexOf(g)),
  };
}

/**
 * Transpose of 4-byte elements straight on the wasm heap, in JavaScript: contiguous runs are copied
 * with TypedArray.set, and a transpose that moves the innermost axis is done in 32x32 tiles so reads
 * and writes both stay in cache. wasm's own kernel walks the output with a strided scalar loop: moving
 * the channel axis of a [64,32,32,64] tensor outermost took it ~180 ms, about 3x what this does.
 */
function makeTransposeOnHeap(original: KernelConfig | undefined) {
  return (args: KernelArgs): TensorInfo | TensorInfo[] => {
    const xInfo = requireInput(args.inputs, 'x', Transpose);
    const { perm } = args.attrs as unknown as TransposeAttrs;
    const backend = args.backend as unknown as WasmHeapBackend;
    const outShape = perm.map((axis) => xInfo.shape[axis]!);
    const collapsed = collapseTranspose(xInfo.shape, perm);
    const rank = collapsed.shape.length;
    const size = xInfo.shape.reduce((a, b) => a * b, 1);
    const innerMoves = rank >= 2 && collapsed.perm[rank - 1] !== rank - 1;
    const runLength = innerMoves ? 0 : collapsed.shape[rank - 1] ?? size;
    const tileable = innerMoves && collapsed.shape[rank - 1]! >= 4 && collapsed.shape[collapsed.perm[rank - 1]!]! >= 4;
    if ((xInfo.dtype !== 'float32' && xInfo.dtype !== 'int32') || size === 0 || (!tileable && rank >= 2 && runLength < 16)) {
      if (original == null) throw new Error(`${Transpose} (wasm training kernel): no fallback for dtype ${xInfo.dtype}`);
      return original.kernelFunc(args);
    }
    const out = backend.makeOutput(outShape, xInfo.dtype);
    // Read the heap only after makeOutput: allocating may grow (and so replace) the wasm memory.
    const heap = new Int32Array(backend.wasm.HEAPU8.buffer);
    const src = backend.dataIdMap.get(xInfo.dataId)!.memoryOffset >>> 2;
    const dst = backend.dataIdMap.get(out.dataId)!.memoryOffset >>> 2;
    const { shape, perm: p } = collapsed;
    const inStrides = new Array<number>(rank).fill(1);
    for (let a = rank - 2; a >= 0; a--) inStrides[a] = inStrides[a + 1]! * shape[a + 1]!;
    const outDims = p.map((a) => shape[a]!);
    const outStrides = new Array<number>(rank).fill(1);
    for (let i = rank - 2; i >= 0; i--) outStrides[i] = outStrides[i + 1]! * outDims[i + 1]!;
    // Output stride of each input axis.
    const outStrideOf = new Array<number>(rank);
    p.forEach((a, i) => (outStrideOf[a] = outStrides[i]!));

    if (rank < 2 || !innerMoves) {
      // Runs of `runLength` contiguous elements, placed in output order; the source offset is kept
      // up to date as the counters of the outer axes (in output order) tick.
      const outer = p.slice(0, rank - 1);
      const counter = new Array<number>(outer.length).fill(0);
      let from = src;
      for (let o = 0, count = size / runLength, to = dst; o < count; o++, to += runLength) {
        copyRun(heap, to, from, runLength);
        for (let i = outer.length - 1; i >= 0; i--) {
          const axis = outer[i]!;
          from += inStrides[axis]!;
          if (++counter[i]! < shape[axis]!) break;
          counter[i] = 0;
          from -= shape[axis]! * inStrides[axis]!;
        }
      }
      return out;
    }
    // Tile over A (innermost in the input) and B (innermost in the output); walk the other axes.
    const a = rank - 1;
    const b = p[rank - 1]!;
    const others = [...Array(rank).keys()].filter((axis) => axis !== a && axis !== b);
    const counter = new Array<number>(others.length).fill(0);
    const sizeA = shape[a]!;
    const sizeB = shape[b]!;
    const inStrideB = inStrides[b]!;
    const outStrideA = outStrideOf[a]!;
    for (let o = 0, count = size / (sizeA * sizeB); o < count; o++) {
      let inBase = src;
      let outBase = dst;
      others.forEach((axis, i) => {
        inBase += counter[i]! * inStrides[axis]!;
        outBase += counter[i]! * outStrideOf[axis]!;
      });
      for (let b0 = 0; b0 < sizeB; b0 += TRANSPOSE_TILE) {
        const b1 = Math.min(b0 + TRANSPOSE_TILE, sizeB);
        for (let a0 = 0; a0 < sizeA; a0 += TRANSPOSE_TILE) {
          const a1 = Math.min(a0 + TRANSPOSE_TILE, sizeA);
          for (let ia = a0; ia < a1; ia++) {
            const from = inBase + ia;
            const to = outBase + ia * outStrideA;
            for (let ib = b0; ib < b1; ib++) heap[to + ib] = heap[from + ib * inStrideB]!;
          }
        }
      }
      for (let i = others.length - 1; i >= 0; i--) {
        if (++counter[i]! < shape[others[i]!]!) break;
        counter[i] = 0;
      }
    }
    return out;
  };
}

/**
 * Identity, and Cast to the dtype the tensor already has, share the input's data instead of copying it,
 * as Reshape does and as the cpu backend does: tensors are immutable, and the backend frees the data when
 * the last tensor using it is disposed. A training step makes hundreds of these (tfjs-core's moments casts
 * every BatchNorm input to float32; Cast's gradient is a clone), each a full copy of an activation on wasm.
 */
function makeSharingData(kernelName: typeof Identity | typeof Cast, original: KernelConfig | undefined) {
  return (args: KernelArgs): TensorInfo | TensorInfo[] => {
    const xInfo = requireInput(args.inputs, 'x', kernelName);
    const dtype = kernelName === Cast ? (args.attrs as unknown as CastAttrs).dtype : xInfo.dtype;
    if (xInfo.dtype === 'string' || dtype !== xInfo.dtype) {
      if (original == null) throw new Error(`${kernelName} (wasm training kernel): no fallback for ${xInfo.dtype} to ${dtype}`);
      return original.kernelFunc(args);
    }
    (args.backend as unknown as WasmHeapBackend).incRef(xInfo.dataId);
    return { dataId: xInfo.dataId, shape: xInfo.shape, dtype: xInfo.dtype };
  };
}

/**
 * FusedBatchNorm (y = (x - mean) * scale / sqrt(variance + eps) + offset, per channel) as
 * y = x * a + b with a = scale / sqrt(variance + eps) and b = offset - mean * a computed once per channel,
 * run as a 1x1 depthwise conv with bias: XNNPACK's per-channel multiply-add, SIMD and on the thread
 * pool. wasm's own kernel is a scalar loop over every element (10-15 ms on a [64,32,32,64] tensor).
 * Covers every mean/variance/offset/scale of one value per channel (the last axis) or a single value;
 * anything else goes to wasm's kernel.
 */
function makeBatchNormViaDepthwise(original: KernelConfig | undefined) {
  return (args: KernelArgs): TensorInfo | TensorInfo[] => {
    const xInfo = requireInput(args.inputs, 'x', FusedBatchNorm);
    const meanInfo = requireInput(args.inputs, 'mean', FusedBatchNorm);
    const varianceInfo = requireInput(args.inputs, 'variance', FusedBatchNorm);
    const { offset: offsetInfo, scale: scaleInfo } = args.inputs;
    const { varianceEpsilon } = args.attrs as unknown as FusedBatchNormAttrs;
    const channels = xInfo.shape[xInfo.shape.length - 1] ?? 0;
    const size = xInfo.shape.reduce((a, b) => a * b, 1);
    const params = [meanInfo, varianceInfo, offsetInfo, scaleInfo];
    const perChannelOrSingle = params.every((p) => {
      if (p == null) return true;
      const n = p.shape.reduce((a, b) => a * b, 1);
      return p.dtype === 'float32' && (n === 1 || n === channels);
    });
    if (xInfo.dtype !== 'float32' || size === 0 || channels === 0 || !perChannelOrSingle) {
      if (original == null) throw new Error(`${FusedBatchNorm} (wasm training kernel): no fallback for this batch norm`);
      return original.kernelFunc(args);
    }
    const backend = args.backend as unknown as WasmHeapBackend;
    const heap = new Float32Array(backend.wasm.HEAPU8.buffer);
    const reader = (info: TensorInfo | undefined, fallback: number) => {
      if (info == null) return () => fallback;
      const at = heapIndex(backend, info, FusedBatchNorm);
      const single = info.shape.reduce((a, b) => a * b, 1) === 1;
      return (c: number) => heap[single ? at : at + c]!;
    };
    const [mean, variance, offset, scale] = [reader(meanInfo, 0), reader(varianceInfo, 1), reader(offsetInfo, 0), reader(scaleInfo, 1)];
    const a = new Float32Array(channels);
    const b = new Float32Array(channels);
    for (let c = 0; c < channels; c++) {
      a[c] = scale(c) / Math.sqrt(variance(c) + varianceEpsilon);
      b[c] = offset(c) - mean(c) * a[c]!;
    }
    return tidy(() => {
      const x = reshape(asTensor(xInfo), [1, 1, size / channels, channels]);
      const filter = tensor4d(a, [1, 1, channels, 1]);
      const y = engine().runKernel(FusedDepthwiseConv2D, { x, filter, bias: tensor1d(b) }, {
        strides: [1, 1],
        pad: 'valid',
        dilations: [1, 1],
        dataFormat: 'NHWC',
        dimRoundingMode: undefined,
        activation: 'linear',
      } as unknown as Record<string, unknown> as never) as Tensor;
      return reshape(y, xInfo.shape);
    });
  };
}

/**
 * x[begin : begin + size] copied on the heap in runs: the innermost axis sliced together with every full
 * axis inside it. wasm's Slice (which SplitV calls) first copies the whole input out of the heap with
 * readSync and then copies each run through a new subarray: 10 ms to split [16,32,32,64] into 4 groups of
 * channels. Returns undefined for dtypes that are not 4 bytes wide.
 */
function sliceOnHeap(backend: WasmHeapBackend, x: TensorInfo, begin: readonly number[], size: readonly number[]): TensorInfo | undefined {
  if ((x.dtype !== 'float32' && x.dtype !== 'int32') || x.shape.length === 0) return undefined;
  const shape = x.shape;
  const rank = shape.length;
  const out = backend.makeOutput([...size], x.dtype);
  if (size.some((s) => s === 0)) return out;
  const heap = new Int32Array(backend.wasm.HEAPU8.buffer);
  const src = heapIndex(backend, x, Slice);
  let to = heapIndex(backend, out, Slice);
  const strides = new Array<number>(rank).fill(1);
  for (let a = rank - 2; a >= 0; a--) strides[a] = strides[a + 1]! * shape[a + 1]!;
  // Axes inside `inner` are whole: one run covers them and axis `inner`'s slice.
  let inner = rank - 1;
  while (inner > 0 && begin[inner] === 0 && size[inner] === shape[inner]) inner--;
  const run = size[inner]! * strides[inner]!;
  let from = src;
  for (let a = 0; a < rank; a++) from += begin[a]! * strides[a]!;
  const counter = new Array<number>(inner).fill(0);
  const runs = size.slice(0, inner).reduce((a, b) => a * b, 1);
  for (let r = 0; r < runs; r++, to += run) {
    copyRun(heap, to, from, run);
    for (let a = inner - 1; a >= 0; a--) {
      from += strides[a]!;
      if (++counter[a]! < size[a]!) break;
      counter[a] = 0;
      from -= size[a]! * strides[a]!;
    }
  }
  return out;
}

function makeSliceOnHeap(original: KernelConfig | undefined) {
  return (args: KernelArgs): TensorInfo | TensorInfo[] => {
    const xInfo = requireInput(args.inputs, 'x', Slice);
    const { begin, size } = args.attrs as unknown as SliceAttrs;
    const [begin_, size_] = slice_util.parseSliceParams(xInfo, begin, size);
    const out = sliceOnHeap(args.backend as unknown as WasmHeapBackend, xInfo, begin_!, size_!);
    if (out != null) return out;
    if (original == null) throw new Error(`${Slice} (wasm training kernel): no fallback for dtype ${xInfo.dtype}`);
    return original.kernelFunc(args);
  };
}

/** SplitV as slices on the heap (see {@link sliceOnHeap}). */
function makeSplitOnHeap(original: KernelConfig | undefined) {
  return (args: KernelArgs): TensorInfo | TensorInfo[] => {
    const xInfo = requireInput(args.inputs, 'x', SplitV);
    if ((xInfo.dtype !== 'float32' && xInfo.dtype !== 'int32') || xInfo.shape.length === 0) {
      if (original == null) throw new Error(`${SplitV} (wasm training kernel): no fallback for dtype ${xInfo.dtype}`);
      return original.kernelFunc(args);
    }
    const { numOrSizeSplits, axis } = args.attrs as unknown as SplitVAttrs;
    const splitAxis = util.parseAxisParam(axis, xInfo.shape)[0]!;
    const sizes = backend_util.prepareSplitSize(xInfo, numOrSizeSplits, splitAxis);
    const begin = new Array<number>(xInfo.shape.length).fill(0);
    return sizes.map((s) => {
      const size = [...xInfo.shape];
      size[splitAxis] = s;
      const out = sliceOnHeap(args.backend as unknown as WasmHeapBackend, xInfo, begin, size)!;
      begin[splitAxis]! += s;
      return out;
    });
  };
}

/**
 * Concat by copies on the heap: per outer index, each input's inner block in turn. wasm's own kernel makes
 * a subarray per block, which costs more than the copy when the blocks are a few channels (ResNeXt joins
 * its groups' 16-channel outputs).
 */
function makeConcatOnHeap(original: KernelConfig | undefined) {
  return (args: KernelArgs): TensorInfo | TensorInfo[] => {
    const inputs = Object.keys(args.inputs)
      .sort((a, b) => Number(a) - Number(b))
      .map((key) => args.inputs[key]!);
    const first = inputs[0];
    const dtype = first?.dtype;
    if (first == null || (dtype !== 'float32' && dtype !== 'int32') || inputs.some((t) => t.dtype !== dtype)) {
      if (original == null) throw new Error(`${Concat} (wasm training kernel): no fallback for these inputs`);
      return original.kernelFunc(args);
    }
    const axis = util.parseAxisParam((args.attrs as unknown as ConcatAttrs).axis, first.shape)[0]!;
    backend_util.assertParamsConsistent(
      inputs.map((t) => t.shape),
      axis,
    );
    const outShape = backend_util.computeOutShape(
      inputs.map((t) => t.shape),
      axis,
    );
    const nonEmpty = inputs.filter((t) => t.shape.every((d) => d > 0));
    const backend = args.backend as unknown as WasmHeapBackend;
    if (nonEmpty.length === 1) {
      backend.incRef(nonEmpty[0]!.dataId);
      return { dataId: nonEmpty[0]!.dataId, shape: outShape, dtype };
    }
    const out = backend.makeOutput(outShape, dtype);
    if (nonEmpty.length === 0) return out;
    const heap = new Int32Array(backend.wasm.HEAPU8.buffer);
    const outer = first.shape.slice(0, axis).reduce((a, b) => a * b, 1);
    const blocks = nonEmpty.map((t) => ({ at: heapIndex(backend, t, Concat), size: t.shape.slice(axis).reduce((a, b) => a * b, 1) }));
    let to = heapIndex(backend, out, Concat);
    for (let o = 0; o < outer; o++) {
      for (const block of blocks) {
        copyRun(heap, to, block.at + o * block.size, block.size);
        to += block.size;
      }
    }
    return out;
  };
}

// The wasm kernels we replace, kept for their setup functions (their kernelFuncs call C functions
// bound in setup) and for the rare cases our formulations do not cover.
const originals = new Map<string, KernelConfig | undefined>();
const ours = new Map<string, KernelFunc>();

function install(kernelName: string, make: (original: KernelConfig | undefined) => KernelFunc): void {
  const current = getKernel(kernelName, WASM_BACKEND_NAME);
  // Installing again (with or without native convolutions) wraps the wasm kernel we replaced, never our own.
  const original = current != null && current.kernelFunc === ours.get(kernelName) ? originals.get(kernelName) : current;
  originals.set(kernelName, original);
  const kernelFunc = make(original);
  ours.set(kernelName, kernelFunc);
  if (current != null) unregisterKernel(kernelName, WASM_BACKEND_NAME);
  const config: KernelConfig = { kernelName, backendName: WASM_BACKEND_NAME, kernelFunc };
  if (original?.setupFunc != null) config.setupFunc = original.setupFunc;
  if (original?.disposeFunc != null) config.disposeFunc = original.disposeFunc;
  registerKernel(config);
}

/** Puts back the wasm backend's own kernel where we had replaced it. */
function restore(kernelName: string): void {
  const current = getKernel(kernelName, WASM_BACKEND_NAME);
  if (current == null || current.kernelFunc !== ours.get(kernelName)) return;
  unregisterKernel(kernelName, WASM_BACKEND_NAME);
  ours.delete(kernelName);
  const original = originals.get(kernelName);
  if (original != null) registerKernel(original);
}

/** What {@link registerWasmTrainingKernels} can add. */
export interface WasmTrainingKernelOptions {
  /**
   * Native convolutions (@wrn/native's loadNativeConvKernels): Conv2D, FusedConv2D and both conv gradients then
   * run on them, about 3x faster than XNNPACK on wasm. `null` takes them away again (the wasm formulations below);
   * left out, whatever an earlier call (selectBackend's) installed stays.
   */
  native?: NativeConvKernels | null;
  /**
   * With `native`: also run broadcasting Add/Sub/Multiply, Step, Sum and BatchNorm's gradient on it
   * (wasm-native-elementwise.ts). Default true; false keeps them on wasm (for A/B measurements).
   */
  nativeElementwise?: boolean;
}

let nativeInUse: NativeConvKernels | undefined;
let nativeElementwiseInUse = false;

/**
 * Registers, for the 'wasm' backend, the kernels a training step of our residual networks needs that
 * tfjs-backend-wasm 4.22 lacks (Conv2DBackpropFilter) or runs slowly (Conv2DBackpropInput, Tile, Sum and
 * Mean over leading axes), each computed on wasm's XNNPACK forward conv, matMul or broadcasting binary ops; with
 * `native`, every convolution and both its gradients run on @wrn/native instead. Idempotent. Call it before the
 * wasm backend is first used, or at any time after: kernels are looked up per call.
 */
export function registerWasmTrainingKernels(options: WasmTrainingKernelOptions = {}): readonly string[] {
  const native = options.native === undefined ? nativeInUse : (options.native ?? undefined);
  const elementwise = native != null && (options.nativeElementwise ?? (options.native === undefined ? nativeElementwiseInUse : true));
  const names = native ? [...WASM_TRAINING_KERNEL_NAMES, Conv2D, FusedConv2D, ...(elementwise ? WASM_NATIVE_ELEMENTWISE_KERNEL_NAMES : [])] : WASM_TRAINING_KERNEL_NAMES;
  if (native === nativeInUse && elementwise === nativeElementwiseInUse && names.every((name) => ours.has(name) && getKernel(name, WASM_BACKEND_NAME)?.kernelFunc === ours.get(name))) return names;
  const viaConvFilter = conv2DBackpropFilterViaConv as unknown as KernelFunc;
  install(Conv2DBackpropFilter, () => (native ? nativeConvKernelMakers[Conv2DBackpropFilter](native, viaConvFilter) : viaConvFilter));
  install(Conv2DBackpropInput, (original) => {
    const viaConv = makeConv2DBackpropInputViaConv(original) as unknown as KernelFunc;
    return native ? nativeConvKernelMakers[Conv2DBackpropInput](native, viaConv) : viaConv;
  });
  if (native) {
    install(Conv2D, (original) => nativeConvKernelMakers[Conv2D](native, original));
    install(FusedConv2D, (original) => nativeConvKernelMakers[FusedConv2D](native, original));
  } else {
    restore(Conv2D);
    restore(FusedConv2D);
  }
  nativeInUse = native;
  // Measured with native convolutions: ResNeXt-29 4x16d inference 85 img/s with split, 34 with depthwise.
  setGroupedConvMethodPreference(WASM_BACKEND_NAME, native ? { inference: 'split', training: 'split' } : undefined);
  install(Tile, (original) => makeTileOnHeap(original) as unknown as KernelFunc);
  for (const reduction of [Sum, Mean] as const) {
    install(reduction, (original) => {
      const viaPool = makeReductionViaMatMul(reduction, original) as unknown as KernelFunc;
      return elementwise && reduction === Sum ? makeNativeReduction(native!, reduction, viaPool) : viaPool;
    });
  }
  for (const name of WASM_NATIVE_ELEMENTWISE_KERNEL_NAMES) {
    if (elementwise) install(name, (original) => nativeElementwiseKernelMakers[name]!(native!, original));
    else restore(name);
  }
  setNativeBatchNormGradient(elementwise ? native : undefined);
  nativeElementwiseInUse = elementwise;
  install(Transpose, (original) => makeTransposeOnHeap(original) as unknown as KernelFunc);
  install(Identity, (original) => makeSharingData(Identity, original) as unknown as KernelFunc);
  install(Cast, (original) => makeSharingData(Cast, original) as unknown as KernelFunc);
  install(FusedBatchNorm, (original) => makeBatchNormViaDepthwise(original) as unknown as KernelFunc);
  install(Slice, (original) => makeSliceOnHeap(original) as unknown as KernelFunc);
  install(SplitV, (original) => makeSplitOnHeap(original) as unknown as KernelFunc);
  install(Concat, (original) => makeConcatOnHeap(original) as unknown as KernelFunc);
  return names;
}

/** The native convolutions the wasm backend's conv kernels run on now, if {@link registerWasmTrainingKernels} was given them. */
export function wasmNativeConvKernels(): NativeConvKernels | undefined {
  return nativeInUse;
}

/** Whether {@link registerWasmTrainingKernels} has installed every kernel it owns. */
export function wasmTrainingKernelsRegistered(): boolean {
  return WASM_TRAINING_KERNEL_NAMES.every((name) => {
    const fn = ours.get(name);
    return fn != null && getKernel(name, WASM_BACKEND_NAME)?.kernelFunc === fn;
  });
}
