import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { iterateBatches, type BatchSource } from './data';
import { crossEntropyPerExample, oneHotFloat, type OutputKind } from './loss';

/** Metrics of one pass over an evaluation source, with BatchNorm and dropout in inference mode. */
export interface EvaluationResult {
  examples: number;
  loss: number;
  top1Error: number;
  top5Error: number;
  /** Accuracy per true class (NaN for a class with no examples). */
  perClassAccuracy: number[];
  /** confusionMatrix[trueClass][predictedClass] = count. */
  confusionMatrix: number[][];
}

/**
 * Evaluates `model` on `source`. Sums stay on the device across batches and are read once at the end, so a
 * pass costs no host round trip per batch.
 */
export async function evaluate(
  model: LayersModel,
  source: BatchSource,
  options: { epoch?: number; numClasses: number; outputKind: OutputKind },
): Promise<EvaluationResult> {
  const { numClasses, outputKind } = options;
  const k = Math.min(5, numClasses);
  let sums: tf.Tensor1D | null = null; // [lossSum, top1Correct, top5Correct]
  let confusion: tf.Tensor2D | null = null;
  let examples = 0;
  try {
    for await (const { xs, ys } of iterateBatches(source, options.epoch ?? 0, 'evaluation source')) {
      examples += xs.shape[0];
      const [nextSums, nextConfusion] = tf.tidy(() => {
        const labels = ys.dtype === 'int32' ? ys : tf.cast(ys, 'int32');
        const outputs = model.apply(xs, { training: false }) as tf.Tensor2D;
        const truth = oneHotFloat(labels, numClasses);
        const loss = tf.sum(crossEntropyPerExample(outputs, truth, outputKind));
        const predicted = tf.argMax(outputs, -1);
        const top1 = tf.sum(tf.cast(tf.equal(predicted, labels), 'float32'));
        const topk = tf.topk(outputs, k).indices;
        const top5 = tf.sum(tf.cast(tf.equal(topk, tf.expandDims(labels, 1)), 'float32'));
        const batchConfusion = tf.matMul(truth, oneHotFloat(predicted, numClasses), true, false);
        const batchSums = tf.stack([loss, top1, top5]) as tf.Tensor1D;
        return [sums ? tf.add(sums, batchSums) : batchSums, confusion ? tf.add(confusion, batchConfusion) : batchConfusion] as [
          tf.Tensor1D,
          tf.Tensor2D,
        ];
      });
      tf.dispose([xs, ys]);
      sums?.dispose();
      confusion?.dispose();
      sums = nextSums;
      confusion = nextConfusion;
    }
    if (!sums || !confusion || examples === 0) throw new Error('evaluation source yielded no batches');
    const [lossSum, top1, top5] = Array.from(await sums.data());
    const matrix = (await confusion.array()).map((row) => row.map((v) => Math.round(v)));
    return {
      examples,
      loss: lossSum! / examples,
      top1Error: 1 - top1! / examples,
      top5Error: 1 - top5! / examples,
      perClassAccuracy: matrix.map((row, c) => {
        const total = row.reduce((a, b) => a + b, 0);
        return total === 0 ? Number.NaN : row[c]! / total;
      }),
      confusionMatrix: matrix,
    };
  } finally {
    sums?.dispose();
    confusion?.dispose();
  }
}
