import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';

/** Whether a model's output is logits or probabilities (a softmax as its last operation). */
export type OutputKind = 'logits' | 'probabilities';

export function outputKindOf(model: LayersModel): OutputKind {
  const layer = model.outputs[0]?.sourceLayer;
  if (!layer) return 'logits';
  const config = layer.getConfig() as { activation?: unknown };
  return layer.getClassName() === 'Softmax' || config.activation === 'softmax' ? 'probabilities' : 'logits';
}

const EPSILON = 1e-7;

/**
 * One-hot float32 labels. Built as int32 and cast: tfjs-backend-wasm 4.22's OneHot ignores a float32 dtype
 * and writes integer bits into a float32 tensor (1 reads as 1.4e-45).
 */
export function oneHotFloat(labels: tf.Tensor, depth: number): tf.Tensor2D {
  return tf.tidy(() => tf.cast(tf.oneHot(labels, depth), 'float32') as tf.Tensor2D);
}

/** Per-example cross-entropy [B] of integer labels under model outputs [B, C]. */
export function crossEntropyPerExample(outputs: tf.Tensor, oneHotLabels: tf.Tensor, kind: OutputKind): tf.Tensor1D {
  return tf.tidy(() => {
    const logProbs = kind === 'logits' ? tf.logSoftmax(outputs) : tf.log(tf.clipByValue(outputs, EPSILON, 1));
    return tf.neg(tf.sum(tf.mul(oneHotLabels, logProbs), -1)) as tf.Tensor1D;
  });
}

/** Mean cross-entropy as a scalar; on logits it uses the fused op (its own cheaper gradient). */
export function meanCrossEntropy(outputs: tf.Tensor, oneHotLabels: tf.Tensor, kind: OutputKind): tf.Scalar {
  if (kind === 'logits') {
    return tf.losses.softmaxCrossEntropy(oneHotLabels, outputs, undefined, 0, tf.Reduction.MEAN) as tf.Scalar;
  }
  return tf.mean(crossEntropyPerExample(outputs, oneHotLabels, kind));
}
