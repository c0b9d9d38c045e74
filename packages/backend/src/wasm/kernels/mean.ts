import { Mean } from '@tensorflow/tfjs-core';
import type { KernelConfig } from '@tensorflow/tfjs-core';
import { makeReductionViaAvgPool } from './sum';

/** Mean over leading axes (BatchNorm's statistics) as one average pooling: the Sum kernel's formulation. */
export function makeMeanViaAvgPool(original: KernelConfig | undefined) {
  return makeReductionViaAvgPool(Mean, original);
}
