import { backend_util, MaxPoolGrad } from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, MaxPoolGradAttrs, TensorInfo } from '@tensorflow/tfjs-core';
import { heapIndex, type KernelArgs, type WasmHeapBackend } from '../heap';

/**
 * MaxPoolGrad for the wasm backend, computed on the heap: each output pixel's gradient goes to the input pixel
 * that won its window, the first in row-major window order on a tie, padded pixels never winning, as PyTorch's
 * max_pool2d backward and tfjs' cpu backend do. tfjs-backend-wasm 4.22's own MaxPoolGrad, with any padding
 * ('valid' included), gives a tie to a later maximum and drops the gradient of every window whose maximum is
 * negative (as if it started from 0), so a max pool whose input is not a ReLU's did not train as PyTorch's on wasm.
 *
 * A NaN wins its window, as in PyTorch (the last NaN); a window of -Infinity only sends its gradient to its first
 * pixel, also as PyTorch. Inputs that are not float32 go to `original`.
 */
export function makeMaxPoolGradOnHeap(original: KernelConfig | undefined): KernelFunc {
  return ((args: KernelArgs): TensorInfo | TensorInfo[] => {
    const { dy: dyInfo, input: inputInfo } = args.inputs;
    if (dyInfo == null || inputInfo == null) throw new Error(`${MaxPoolGrad} (wasm training kernel): expected inputs 'dy' and 'input'`);
    if (inputInfo.dtype !== 'float32' || dyInfo.dtype !== 'float32' || inputInfo.shape.length !== 4) {
      if (original == null) throw new Error(`${MaxPoolGrad} (wasm training kernel): no fallback for a ${inputInfo.dtype} input of shape [${inputInfo.shape.join(',')}]`);
      return original.kernelFunc(args);
    }
    const { filterSize, strides, pad, dimRoundingMode } = args.attrs as unknown as MaxPoolGradAttrs;
    const info = backend_util.computePool2DInfo(inputInfo.shape as [number, number, number, number], filterSize, strides, 1, pad, dimRoundingMode);
    const { batchSize: n, inHeight: h, inWidth: w, inChannels: c, outHeight: ho, outWidth: wo, strideHeight: sh, strideWidth: sw } = info;
    const { filterHeight: kh, filterWidth: kw } = info;
    const { top, left } = info.padInfo;
    const expected = [n, ho, wo, c];
    if (dyInfo.shape.length !== 4 || dyInfo.shape.some((d, i) => d !== expected[i])) {
      throw new Error(`${MaxPoolGrad} (wasm training kernel): dy has shape [${dyInfo.shape.join(',')}], expected [${expected.join(',')}] for input [${inputInfo.shape.join(',')}]`);
    }
    const backend = args.backend as unknown as WasmHeapBackend;
    const dx = backend.makeOutput([...inputInfo.shape], 'float32');
    // Read the heap only after makeOutput: allocating may grow (and so replace) the wasm memory.
    const heap = new Float32Array(backend.wasm.HEAPU8.buffer);
    const x = heapIndex(backend, inputInfo, MaxPoolGrad);
    const out = heapIndex(backend, dx, MaxPoolGrad);
    let from = heapIndex(backend, dyInfo, MaxPoolGrad);
    heap.fill(0, out, out + n * h * w * c);
    if (c === 0) return dx;
    const best = new Float32Array(c);
    const winner = new Int32Array(c);
    for (let b = 0; b < n; b++) {
      for (let yo = 0; yo < ho; yo++) {
        const y0 = yo * sh - top;
        const yStart = Math.max(y0, 0);
        const yEnd = Math.min(y0 + kh, h);
        for (let xo = 0; xo < wo; xo++, from += c) {
          const x0 = xo * sw - left;
          const xStart = Math.max(x0, 0);
          const xEnd = Math.min(x0 + kw, w);
          if (yStart >= yEnd || xStart >= xEnd) continue; // a window wholly in the padding reads nothing
          best.fill(-Infinity);
          winner.fill(((b * h + yStart) * w + xStart) * c);
          for (let y = yStart; y < yEnd; y++) {
            for (let xi = xStart; xi < xEnd; xi++) {
              const pixel = ((b * h + y) * w + xi) * c;
              for (let ch = 0; ch < c; ch++) {
                const value = heap[x + pixel + ch]!;
                // Strictly greater: the first maximum wins a tie, in PyTorch's scan order.
                if (value > best[ch]! || value !== value) {
                  best[ch] = value;
                  winner[ch] = pixel;
                }
              }
            }
          }
          for (let ch = 0; ch < c; ch++) {
            const at = out + winner[ch]! + ch;
            heap[at] = heap[at]! + heap[from + ch]!;
          }
        }
      }
    }
    return dx;
  }) as unknown as KernelFunc;
}
