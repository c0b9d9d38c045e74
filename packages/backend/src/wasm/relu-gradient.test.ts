import * as tf from '@tensorflow/tfjs-core';
// tfjs-layers registers the gradient functions in Node (tfjs-core's CommonJS build does not).
import '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { randomArray } from './cpu-reference.test-support';
import { registerReluGradientFromOutput, reluGradientFromOutput } from './relu-gradient';
import { registerWasmTrainingKernels } from './training-kernels';

interface EngineInternals {
  state: { activeTape: { kernelName: string; saved?: tf.Tensor[] }[] | null };
  startTape(): void;
  endTape(): void;
  scopedRun<T>(start: () => void, end: () => void, f: () => T): T;
  tidy<T extends tf.TensorContainer>(name: string, f: () => T): T;
}

// Zeros, negatives, a negative zero and positives: every side of the mask.
const X = [-2, -0.5, -0, 0, 0.25, 3, ...Array.from(randomArray(58, 'relu'))];

/** d/dx sum(relu(x * 1.5) * g) by the registered gradient, and the mask formula dy * (x > 0) as reference. */
function reluGradient(): { dx: number[]; expected: number[] } {
  return tf.tidy(() => {
    const x = tf.tensor(X, [2, 4, 8]);
    const g = tf.tensor(randomArray(64, 'relu-dy'), [2, 4, 8]);
    const dx = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.relu(tf.mul(a, 1.5)), g)))(x);
    const gv = g.dataSync();
    // (+ 0: a masked-out entry is dy * 0, which is -0 where dy < 0.)
    return { dx: Array.from(dx.dataSync(), (v) => v + 0), expected: X.map((v, i) => (v * 1.5 > 0 ? Math.fround(1.5 * gv[i]!) : 0)) };
  });
}

describe('Relu gradient from its output', () => {
  beforeAll(async () => {
    registerWasmTrainingKernels();
    await tf.setBackend('wasm');
  });

  it('replaces tfjs-core\'s once (idempotent) and saves the output, not the input', () => {
    expect(tf.getGradient('Relu')?.inputsToSave).toEqual(['x']);
    expect(registerReluGradientFromOutput()).toBe(true);
    expect(registerReluGradientFromOutput()).toBe(true);
    expect(tf.getGradient('Relu')).toBe(reluGradientFromOutput);
    const engine = tf.engine() as unknown as EngineInternals;
    const x = tf.tensor([-1, 2, 3]);
    let input: tf.Tensor | undefined;
    let output: tf.Tensor | undefined;
    const y = engine.scopedRun(() => engine.startTape(), () => engine.endTape(), () => engine.tidy('forward', () => {
      input = tf.add(x, 1);
      output = tf.relu(input);
      return tf.sum(output);
    }));
    const node = engine.state.activeTape!.find((n) => n.kernelName === 'Relu')!;
    expect(node.saved).toHaveLength(1);
    expect(node.saved![0]!.dataId).toBe(output!.dataId);
    // The forward's tidy freed its intermediates: only what the tape saved is alive, and the sum's input is not.
    expect(input!.isDisposed).toBe(true);
    for (const n of engine.state.activeTape!) for (const t of n.saved ?? []) t.dispose();
    engine.state.activeTape = null;
    tf.dispose([x, y]);
  });

  it.each(['cpu', 'wasm'])('gives dy * (x > 0) on %s', async (backend) => {
    registerReluGradientFromOutput();
    await tf.setBackend(backend);
    const { dx, expected } = reluGradient();
    expect(dx).toEqual(expected);
  });
});
