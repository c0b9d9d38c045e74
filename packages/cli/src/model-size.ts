import { resolveModelConfig } from '@wrn/architectures';
import { UsageError } from './errors.js';

/** More residual blocks than this are refused: ResNet-1202, the deepest network of the papers, has 600. */
export const MAX_RESIDUAL_BLOCKS = 2000;

/**
 * Refuses a model name whose depth is beyond anything TF.js can build (wrn-1000000-1 has 166,666 blocks a stage:
 * building it takes minutes and then overflows the call stack), naming the value and the limit, before building.
 */
export function checkModelDepth(name: string, where: string): void {
  let blocks: number;
  try {
    blocks = resolveModelConfig(name).stages.reduce((sum, stage) => sum + stage.blocks, 0);
  } catch {
    return; // not a name we can size: building it reports the problem
  }
  if (blocks > MAX_RESIDUAL_BLOCKS) {
    throw new UsageError(
      `${where}: ${name} has ${blocks.toLocaleString('en-US')} residual blocks; at most ${MAX_RESIDUAL_BLOCKS.toLocaleString('en-US')} are supported ` +
        '(ResNet-1202, the deepest in the papers, has 600); choose a smaller depth',
    );
  }
}
