import { Cast } from '@tensorflow/tfjs-core';
import type { KernelConfig } from '@tensorflow/tfjs-core';
import { makeSharingData } from './identity';

/** Cast to the dtype a tensor already has (tfjs-core's moments, Cast's gradient): the input's data, shared. */
export function makeCastSharingData(original: KernelConfig | undefined) {
  return makeSharingData(Cast, original);
}
