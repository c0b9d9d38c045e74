import * as tf from '@tensorflow/tfjs-core';
// tfjs-layers registers the gradient functions in Node (tfjs-core's CommonJS build does not).
import '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { loadNativeConvKernels } from '@wrn/native';
import { beforeAll, describe, expect, it } from 'vitest';
import { maxRelativeError, randomArray, runOnWasmAndCpu } from './cpu-reference.test-support';
import { NATIVE_RELU_GRAD } from './native-relu-grad';
import { registerWasmTrainingGradients } from './training-gradients';
import { registerWasmTrainingKernels } from './training-kernels';

// The oracle is the cpu backend running tfjs-core's own ReLU gradient (mul(dy, step(x)) from the saved input):
// the gradient from the saved output must give the same numbers there and on wasm's native kernel.
const native = loadNativeConvKernels();
if (!native.ok) {
  if (process.env['CI']) throw new Error(`native-relu-grad: @wrn/native does not load: ${native.reason}`);
  console.warn(`skipping the native ReLU gradient on wasm: @wrn/native does not load (${native.reason})`);
}

describe.runIf(native.ok)("ReLU's gradient from its output, on @wrn/native (wasm)", () => {
  let tfjsCoreGradient: tf.GradConfig | undefined;
  beforeAll(async () => {
    if (!native.ok) return;
    tfjsCoreGradient = { ...tf.getGradient(tf.Relu)! };
    registerWasmTrainingKernels({ native: native.kernels });
    registerWasmTrainingGradients();
    await tf.setBackend('wasm');
  });

  it('saves the output, not the input', () => {
    expect(tfjsCoreGradient?.inputsToSave).toEqual(['x']);
    expect(tf.getGradient(tf.Relu)?.outputsToSave).toEqual([true]);
    expect(tf.getGradient(tf.Relu)?.inputsToSave ?? []).toEqual([]);
  });

  it("equals tfjs-core's gradient on the cpu backend (NaN, -0, 0 and infinities included), on the native kernel", async () => {
    const shape = [3, 5, 7, 13];
    const n = shape.reduce((a, b) => a * b, 1);
    const x = randomArray(n, 'x');
    x[0] = Number.NaN;
    x[1] = 0;
    x[2] = -0;
    const dy = randomArray(n, 'dy');
    dy[3] = Number.POSITIVE_INFINITY;
    dy[4] = Number.NEGATIVE_INFINITY;
    x[4] = -1;
    const grad = () => tf.grad((v: tf.Tensor) => tf.relu(v))(tf.tensor(x, shape), tf.tensor(dy, shape));
    const { wasm, cpu } = await runOnWasmAndCpu(grad);
    // The cpu backend runs the same gradient function; tfjs-core's, from the input, is the reference for both.
    const reference = tf.tidy(() => Array.from(tf.mul(tf.tensor(dy, shape), tf.step(tf.tensor(x, shape))).dataSync()));
    for (const values of [wasm.values, cpu.values]) {
      expect(values.slice(0, 5).map(String)).toEqual(reference.slice(0, 5).map(String));
      expect(maxRelativeError(values.slice(5), reference.slice(5))).toBe(0);
    }
    expect(wasm.leaked).toBe(0);
    await tf.setBackend('wasm');
    const info = await tf.profile(grad);
    expect(info.kernelNames).toContain(NATIVE_RELU_GRAD);
    expect(info.kernelNames).not.toContain('Step');
  });
});
