import { backend_util, Conv2DBackpropFilter, engine, matMul, reshape, slice, tidy, transpose } from '@tensorflow/tfjs-core';
import type { Conv2DAttrs, Conv2DBackpropFilterAttrs, Tensor, Tensor4D, TensorInfo } from '@tensorflow/tfjs-core';
import { checkChannelsLast, forwardConv } from '../conv';
import { asTensor, copyRun, heapIndex, requireInput, type KernelArgs, type WasmHeapBackend } from '../heap';

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
export function conv2DBackpropFilterViaConv(args: KernelArgs): TensorInfo {
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
