import { backend_util, Conv2DBackpropInput, engine, pad as padTensor, reshape, slice, tensor4d, tidy, transpose } from '@tensorflow/tfjs-core';
import type { Conv2DAttrs, Conv2DBackpropInputAttrs, KernelConfig, Tensor4D, TensorInfo } from '@tensorflow/tfjs-core';
import { checkChannelsLast, forwardConv } from '../conv';
import { asTensor, copyRun, heapIndex, requireInput, TRANSPOSE_TILE, type KernelArgs, type WasmHeapBackend } from '../heap';

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
export function makeConv2DBackpropInputViaConv(original: KernelConfig | undefined) {
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
