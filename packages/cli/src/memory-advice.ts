import type { LayersModel } from '@tensorflow/tfjs-layers';
import { TorchBatchNormalization } from '@wrn/blocks';

/** The wasm backend's heap: 32-bit addresses, so 4 GiB at most, whatever the machine has. */
export const WASM_HEAP_BYTES = 4 * 2 ** 30;

/** Messages of an exhausted wasm heap (emscripten's abort, V8's allocation failures) and of native allocators. */
const OUT_OF_MEMORY = /Aborted\(|out of memory|Cannot enlarge memory|Array buffer allocation failed|WebAssembly\.Memory|memory access out of bounds|OOM/i;

export function isOutOfMemory(error: unknown): boolean {
  return OUT_OF_MEMORY.test(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
}

/**
 * Bytes one image costs in a training step, estimated from the model: every layer's output is kept for the
 * backward pass and gets a gradient of the same size, and a convolution's backward pass needs about one more such
 * buffer at a time, hence 3 float32 copies of all the activations.
 */
export function trainingBytesPerImage(model: LayersModel): number {
  let values = 0;
  for (const layer of model.layers) {
    const shapes = (Array.isArray(layer.outputShape[0]) ? layer.outputShape : [layer.outputShape]) as Array<Array<number | null>>;
    // A BatchNorm layer with activation 'relu' (@wrn/blocks' BN + ReLU in one layer) keeps both outputs in training.
    const outputs = layer instanceof TorchBatchNormalization && layer.activation === 'relu' ? 2 : 1;
    for (const shape of shapes) values += outputs * shape.slice(1).reduce<number>((a, b) => a * (b ?? 1), 1);
  }
  return 3 * 4 * values;
}

/** The largest batch that fits in `heapBytes` after the weights (and their momentum and gradients), with 30% slack. */
export function largestFittingBatch(model: LayersModel, heapBytes = WASM_HEAP_BYTES): number {
  const weights = model.countParams() * 4 * 3;
  return Math.max(1, Math.floor((0.7 * heapBytes - weights) / trainingBytesPerImage(model)));
}

/** What to tell a user whose run ran out of memory at `batchSize` on `backend`. */
export function outOfMemoryAdvice(model: LayersModel, batchSize: number, backend: string): string {
  const perImage = trainingBytesPerImage(model);
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
  const need = perImage * batchSize;
  if (backend === 'wasm') {
    const fits = largestFittingBatch(model);
    return (
      `out of memory: a training step at --batch-size ${batchSize} needs about ${mib(need)} of activations ` +
      `(${mib(perImage)} per image, estimated from the model's layers), more than the wasm backend's ${mib(WASM_HEAP_BYTES)} heap can hold. ` +
      `A batch size of ${fits} or less fits (estimated); or use --backend tensorflow (tfjs-node), whose limit is the machine's memory.`
    );
  }
  return `out of memory on the ${backend} backend at --batch-size ${batchSize} (about ${mib(need)} of activations, ${mib(perImage)} per image, estimated): try a smaller --batch-size`;
}
