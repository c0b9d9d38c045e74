import { cast, getGradient, mul, registerGradient, Relu, step } from '@tensorflow/tfjs-core';
import type { GradConfig, Tensor } from '@tensorflow/tfjs-core';

/**
 * Relu's gradient from its output: dx = dy * step(relu(x)), the same mask as tfjs-core's dy * step(x) (relu(x) > 0
 * exactly where x > 0). tfjs-core's saves the input, which in our nets is a BatchNorm's or a residual sum's output
 * that nothing else needs in the backward pass, while the output is saved anyway by the conv that reads it. Saving
 * the output instead frees those inputs after the forward pass: in ResNeXt-29 each block's residual sum (256..1024
 * channels), and the BatchNorm outputs wherever BatchNorm's own gradient does not keep them.
 */
export const reluGradientFromOutput: GradConfig = {
  kernelName: Relu,
  outputsToSave: [true],
  gradFunc: (dy: Tensor | Tensor[], saved: Tensor[]) => {
    const [y] = saved as [Tensor];
    return { x: () => mul(dy as Tensor, cast(step(y), 'float32')) };
  },
};

/**
 * Registers {@link reluGradientFromOutput} on every backend (same numbers everywhere). Like
 * registerWasmTrainingGradients, it must run after `@tensorflow/tfjs-layers` is loaded (which registers tfjs-core's
 * gradients in Node and would overwrite it): where no Relu gradient is registered yet it does nothing. Idempotent.
 */
export function registerReluGradientFromOutput(): boolean {
  const current = getGradient(Relu);
  if (current == null) return false;
  if (current !== reluGradientFromOutput) registerGradient(reluGradientFromOutput);
  return true;
}
