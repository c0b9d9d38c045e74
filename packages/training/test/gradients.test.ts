import * as tf from '@tensorflow/tfjs-core';
// tfjs-layers registers the gradient functions in Node (tfjs-core's CommonJS build does not).
import '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import seedrandom from 'seedrandom';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerWasmTrainingGradients, registerWasmTrainingKernels } from '@wrn/backend';
import { variableGrads } from '../src';

function randomArray(size: number, seed: string): Float32Array {
  const rng = seedrandom(seed);
  return Float32Array.from({ length: size }, () => rng() * 2 - 1);
}

/**
 * A residual block with BatchNorm in training mode, a strided projection, a dense head and softmax
 * cross-entropy: tensors used twice (gradients accumulate), broadcasting, reductions, a pass-through.
 */
function makeProblem(seed: string) {
  const v = (shape: number[], name: string) =>
    tf.variable(
      tf.tensor(
        randomArray(
          shape.reduce((a, b) => a * b, 1),
          `${seed}${name}`,
        ),
        shape,
      ),
      true,
      `${seed}-${name}-${Math.random()}`,
    );
  const vars = {
    f1: v([3, 3, 3, 8], 'f1'),
    f2: v([3, 3, 8, 8], 'f2'),
    proj: v([1, 1, 3, 8], 'proj'),
    gamma: v([8], 'gamma'),
    beta: v([8], 'beta'),
    dense: v([8, 5], 'dense'),
    frozen: tf.variable(tf.zeros([2]), false, `${seed}-frozen-${Math.random()}`),
  };
  const x = tf.tensor4d(randomArray(4 * 6 * 6 * 3, `${seed}x`), [4, 6, 6, 3]);
  const labels = tf.oneHot(tf.tensor1d([0, 3, 1, 4], 'int32'), 5);
  const loss = () => {
    const h = tf.conv2d(x, vars.f1 as tf.Tensor as tf.Tensor4D, 2, 'same');
    const { mean, variance } = tf.moments(h, [0, 1, 2]);
    const bn = tf.relu(tf.batchNorm(h, mean, variance, vars.beta, vars.gamma, 1e-3)) as tf.Tensor4D;
    const y = tf.add(tf.conv2d(bn, vars.f2 as tf.Tensor as tf.Tensor4D, 1, 'same'), tf.conv2d(x, vars.proj as tf.Tensor as tf.Tensor4D, 2, 'same'));
    const pooled = tf.mean(tf.add(y, bn), [1, 2]) as tf.Tensor2D;
    return tf.losses.softmaxCrossEntropy(labels, tf.matMul(pooled, vars.dense)) as tf.Scalar;
  };
  const dispose = () => tf.dispose([...Object.values(vars), x, labels]);
  return { vars: Object.values(vars), loss, dispose };
}

function gradientsWith(compute: (f: () => tf.Scalar, varList: tf.Variable[]) => { value: tf.Scalar; grads: tf.NamedTensorMap }, seed: string) {
  const problem = makeProblem(seed);
  const before = tf.memory().numTensors;
  let peakBytes = 0;
  let result: { value: number; grads: Record<string, number[] | null> } | undefined;
  const profile = tf.profile(() => {
    const { value, grads } = compute(problem.loss, problem.vars as tf.Variable[]);
    result = {
      value: value.dataSync()[0]!,
      grads: Object.fromEntries(problem.vars.map((v) => [v.name.split('-')[1]!, grads[v.name] == null ? null : Array.from(grads[v.name]!.dataSync())])),
    };
    tf.dispose([value, ...Object.values(grads).filter((g): g is tf.Tensor => g != null)]);
    return [];
  });
  const leaked = tf.memory().numTensors - before;
  problem.dispose();
  return profile.then((info) => {
    peakBytes = info.peakBytes;
    return { ...result!, leaked, peakBytes };
  });
}

beforeAll(() => {
  registerWasmTrainingKernels();
  registerWasmTrainingGradients();
});

describe('variableGrads', () => {
  it.each(['cpu', 'wasm'])('gives exactly tf.variableGrads on %s, frees intermediate gradients, leaks nothing', async (backend) => {
    await tf.setBackend(backend);
    const ours = await gradientsWith(variableGrads, 'a');
    const reference = await gradientsWith(tf.variableGrads, 'a');
    expect(ours.value).toBe(reference.value);
    expect(Object.keys(ours.grads)).toEqual(['f1', 'f2', 'proj', 'gamma', 'beta', 'dense', 'frozen']);
    expect(ours.grads).toEqual(reference.grads);
    expect(ours.grads['frozen']).toBeNull();
    expect(ours.leaked).toBe(0);
    expect(reference.leaked).toBe(0);
    expect(ours.peakBytes).toBeLessThan(reference.peakBytes);
  });

  it("frees each node's saved activations once its own gradient is computed, not at the end of the backward pass", async () => {
    await tf.setBackend('cpu');
    const w = tf.variable(tf.ones([128, 128]), true, `saved-${Math.random()}`);
    let bytesAtFirstNode = 0;
    // The first node of the forward pass, whose gradient runs last: it notes the bytes alive at that point.
    const probe = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
      value: tf.mul(args[0] as tf.Tensor, 1),
      gradFunc: (dy: tf.Tensor) => {
        bytesAtFirstNode = tf.memory().numBytes;
        return [tf.clone(dy)];
      },
    }));
    const loss = () => {
      let h = probe(w);
      for (let i = 0; i < 8; i++) h = tf.relu(tf.mul(h, 1.5));
      return tf.sum(h) as tf.Scalar;
    };
    const before = tf.memory().numBytes;
    const { value, grads } = variableGrads(loss, [w]);
    tf.dispose([value, grads]);
    // Alive then beyond what was before: the loss, dy, the probe's own saved input and its clone of dy, a few
    // scalars. Each of the 8 Relu and 8 Multiply nodes saved a [128,128] input (64 KiB each, 1 MiB in all):
    // all freed by then.
    expect(bytesAtFirstNode - before).toBeLessThan(4 * 128 * 128 * 4);
    w.dispose();
  });

  it('falls back to tf.variableGrads inside another gradient computation', async () => {
    await tf.setBackend('cpu');
    const w = tf.variable(tf.tensor1d([1, 2, 3]), true, `nested-${Math.random()}`);
    const outer = tf.grad((s: tf.Tensor) => {
      const { value, grads } = variableGrads(() => tf.sum(tf.mul(tf.square(w), s)) as tf.Scalar, [w]);
      return tf.add(value, tf.sum(grads[w.name]!));
    });
    expect(Array.from(outer(tf.scalar(2)).dataSync())).toEqual([14 + 12]);
    w.dispose();
  });

  it('throws for a loss that does not depend on any variable, and for a non-scalar loss', async () => {
    await tf.setBackend('cpu');
    const w = tf.variable(tf.tensor1d([1, 2]), true, `unused-${Math.random()}`);
    expect(() => variableGrads(() => tf.scalar(1), [w])).toThrow('Cannot find a connection between any variable');
    expect(() => variableGrads(() => tf.mul(w, 2) as unknown as tf.Scalar, [w])).toThrow('must return a scalar tensor, got rank 1');
    w.dispose();
  });
});
