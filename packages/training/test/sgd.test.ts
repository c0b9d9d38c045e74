import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { SgdOptimizer } from '../src/sgd';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function values(v: tf.Tensor): number[] {
  return Array.from(v.dataSync());
}

describe('SgdOptimizer (Torch semantics)', () => {
  it('Nesterov momentum with weight decay matches hand-computed steps', () => {
    const p = tf.variable(tf.tensor1d([1, -2]));
    const sgd = new SgdOptimizer([{ variable: p, name: 'p', weightDecay: true }], {
      momentum: 0.9,
      nesterov: true,
      dampening: 0,
      weightDecay: 0.01,
    });
    // step 1: d = g + 0.01 p = [0.51, 0.48]; buf = d; d += 0.9 buf -> [0.969, 0.912]; p -= 0.1 d
    const g1 = tf.tensor1d([0.5, 0.5]);
    sgd.step([g1], 0.1);
    expect(values(p)[0]).toBeCloseTo(0.9031, 6);
    expect(values(p)[1]).toBeCloseTo(-2.0912, 6);
    expect(values(sgd.momentumBuffers[0]!)).toEqual([expect.closeTo(0.51, 6), expect.closeTo(0.48, 6)]);
    // step 2: d = [-1 + 0.009031, 2 - 0.020912]; buf = 0.9 [0.51, 0.48] + d = [-0.531969, 2.411088]
    //         d += 0.9 buf -> [-1.4697411, 4.1490672]; p -= 0.1 d -> [1.05007411, -2.50610672]
    const g2 = tf.tensor1d([-1, 2]);
    sgd.step([g2], 0.1);
    expect(values(sgd.momentumBuffers[0]!)[0]).toBeCloseTo(-0.531969, 5);
    expect(values(sgd.momentumBuffers[0]!)[1]).toBeCloseTo(2.411088, 5);
    expect(values(p)[0]).toBeCloseTo(1.05007411, 5);
    expect(values(p)[1]).toBeCloseTo(-2.50610672, 5);
    expect(sgd.stepCount).toBe(2);
    sgd.dispose();
    tf.dispose([p, g1, g2]);
  });

  it('dampening applies from the second step on; weight decay skips excluded parameters; null grads skip', () => {
    const p = tf.variable(tf.tensor1d([2]));
    const q = tf.variable(tf.tensor1d([5]));
    const sgd = new SgdOptimizer(
      [
        { variable: p, name: 'p', weightDecay: false },
        { variable: q, name: 'q', weightDecay: true },
      ],
      { momentum: 0.9, nesterov: false, dampening: 0.5, weightDecay: 0.1 },
    );
    const one = tf.tensor1d([1]);
    const minusTwo = tf.tensor1d([-2]);
    // p: buf = 1 -> p = 1.5; buf = 0.9 + 0.5 = 1.4 -> p = 0.8; buf = 1.26 - 1 = 0.26 -> p = 0.67
    sgd.step([one, null], 0.5);
    expect(values(p)[0]).toBeCloseTo(1.5, 6);
    expect(values(q)[0]).toBe(5);
    expect(sgd.momentumBuffers[1]).toBeNull();
    sgd.step([one, null], 0.5);
    expect(values(p)[0]).toBeCloseTo(0.8, 6);
    sgd.step([minusTwo, one], 0.5);
    expect(values(p)[0]).toBeCloseTo(0.67, 6);
    // q's first step: d = 1 + 0.1 * 5 = 1.5, buf = 1.5, q = 5 - 0.75
    expect(values(q)[0]).toBeCloseTo(4.25, 6);
    sgd.dispose();
    tf.dispose([p, q, one, minusTwo]);
  });

  it('plain SGD (momentum 0) has no buffers: p -= lr (g + wd p)', () => {
    const p = tf.variable(tf.tensor2d([[1, 2]]));
    const sgd = new SgdOptimizer([{ variable: p, name: 'p', weightDecay: true }], {
      momentum: 0,
      nesterov: false,
      dampening: 0,
      weightDecay: 0.5,
    });
    const g = tf.tensor2d([[1, 1]]);
    sgd.step([g], 0.1);
    expect(values(p)).toEqual([expect.closeTo(0.85, 6), expect.closeTo(1.8, 6)]);
    expect(sgd.momentumBuffers[0]).toBeNull();
    sgd.dispose();
    tf.dispose([p, g]);
  });

  it('rejects Nesterov with dampening, as Torch does, naming the values', () => {
    const p = tf.variable(tf.scalar(1));
    expect(
      () => new SgdOptimizer([{ variable: p, name: 'p', weightDecay: true }], { momentum: 0.9, nesterov: true, dampening: 0.1, weightDecay: 0 }),
    ).toThrow('Nesterov momentum requires momentum > 0 and dampening 0, got momentum 0.9, dampening 0.1');
    p.dispose();
  });

  it('state saves and loads exactly, and the restored optimiser continues identically', async () => {
    const make = (init: number[]) => tf.variable(tf.tensor1d(init));
    const a = make([1, 2, 3]);
    const b = make([1, 2, 3]);
    const opts = { momentum: 0.9, nesterov: true, dampening: 0, weightDecay: 5e-4 };
    const sgdA = new SgdOptimizer([{ variable: a, name: 'w', weightDecay: true }], opts);
    const g = tf.tensor1d([0.3, -0.1, 0.7]);
    sgdA.step([g], 0.1);
    b.assign(a);
    const saved = await sgdA.saveState();
    expect(saved.meta).toMatchObject({ format: 'wrn-sgd/1', steps: 1, buffers: [{ name: 'w', shape: [3] }] });
    expect(saved.data.byteLength).toBe(12);
    const sgdB = new SgdOptimizer([{ variable: b, name: 'w', weightDecay: true }], opts);
    const before = tf.memory().numTensors;
    sgdB.loadState({ meta: JSON.parse(JSON.stringify(saved.meta)), data: saved.data.slice() });
    expect(tf.memory().numTensors).toBe(before + 1);
    expect(sgdB.stepCount).toBe(1);
    sgdA.step([g], 0.05);
    sgdB.step([g], 0.05);
    expect(values(b)).toEqual(values(a));

    const wrong = new SgdOptimizer([{ variable: make([1, 2]), name: 'v', weightDecay: true }], opts);
    expect(() => wrong.loadState(saved, 'ckpt/optimizer.json')).toThrow(
      'ckpt/optimizer.json: buffer 0 (w) has shape [3], parameter v has [2]',
    );
    for (const o of [sgdA, sgdB, wrong]) o.dispose();
    tf.dispose([a, b, g]);
  });

  it('a step allocates nothing that outlives it once the buffers exist', () => {
    const p = tf.variable(tf.randomNormal([4, 4], 0, 1, 'float32', 1));
    const sgd = new SgdOptimizer([{ variable: p, name: 'p', weightDecay: true }], {
      momentum: 0.9,
      nesterov: true,
      dampening: 0,
      weightDecay: 5e-4,
    });
    const g = tf.onesLike(p);
    sgd.step([g], 0.1);
    const after1 = tf.memory().numTensors;
    sgd.step([g], 0.1);
    sgd.step([g], 0.1);
    expect(tf.memory().numTensors).toBe(after1);
    sgd.step([g], 0.02);
    expect(tf.memory().numTensors).toBe(after1);
    sgd.dispose();
    tf.dispose([p, g]);
  });
});
