import * as tf from '@tensorflow/tfjs-core';

/** One training or evaluation batch: NHWC float32 images (normalised) and int32 labels. */
export interface Batch {
  xs: tf.Tensor4D;
  ys: tf.Tensor1D;
}

/** Minimal shape of a tf.data.Dataset this package needs (avoids a hard import of @tensorflow/tfjs-data). */
export interface DatasetLike<T> {
  iterator(): Promise<{ next(): Promise<IteratorResult<T>> }>;
}

/**
 * Where batches come from. @wrn/training does not import @wrn/datasets; the cli plugs a datasets pipeline in.
 * `batches(epoch)` must be a pure function of (seed, epoch) so that resuming reproduces the same batches.
 */
export interface BatchSource {
  batches(epoch: number): DatasetLike<Batch> | AsyncIterable<Batch>;
  /** Number of examples per epoch. */
  size: number;
  numClasses?: number;
  /** Class names in label order (recorded in summary.json). */
  classNames?: string[];
}

function isDatasetLike<T>(value: unknown): value is DatasetLike<T> {
  return value != null && typeof (value as DatasetLike<T>).iterator === 'function';
}

/** Iterates a source's batches for one epoch, checking each batch's shapes and dtypes. */
export async function* iterateBatches(source: BatchSource, epoch: number, where: string): AsyncGenerator<Batch> {
  const batches = source.batches(epoch);
  let index = 0;
  const check = (batch: Batch): Batch => {
    const { xs, ys } = batch ?? ({} as Batch);
    if (!(xs instanceof tf.Tensor) || xs.rank !== 4) {
      throw new Error(`${where}: batch ${index} of epoch ${epoch}: xs must be a rank-4 NHWC tensor, got ${xs instanceof tf.Tensor ? `shape [${xs.shape}]` : typeof xs}`);
    }
    if (!(ys instanceof tf.Tensor) || ys.rank !== 1 || ys.shape[0] !== xs.shape[0]) {
      throw new Error(
        `${where}: batch ${index} of epoch ${epoch}: ys must be a rank-1 label tensor of length ${xs.shape[0]}, got ${ys instanceof tf.Tensor ? `shape [${ys.shape}]` : typeof ys}`,
      );
    }
    index++;
    return batch;
  };
  if (isDatasetLike<Batch>(batches)) {
    const it = await batches.iterator();
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield check(r.value);
    }
  } else {
    for await (const batch of batches) yield check(batch);
  }
}
