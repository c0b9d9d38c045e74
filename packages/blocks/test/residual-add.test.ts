import '@tensorflow/tfjs-backend-cpu';
import { add, customGrad, grad, memory, mul, randomNormal, setBackend, sum, tidy, type GradSaveFunc, type Tensor } from '@tensorflow/tfjs-core';
import { layers } from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { ResidualAdd } from '../src/index.js';

beforeAll(async () => {
  await setBackend('cpu');
});

const SIZE = 1000;

/** loss(x) = sum(weights * plus(2x, x^2)) through `plus`; a non-uniform weighting, so dy differs per element. */
function lossThrough(plus: (a: Tensor, b: Tensor) => Tensor, weights: Tensor) {
  return (x: Tensor) => sum(mul(weights, plus(mul(x, 2), mul(x, x))));
}

describe('ResidualAdd', () => {
  it("has tfjs-core's Add gradient, value for value, in training and outside it", () => {
    tidy(() => {
      const x = randomNormal([4, 5, 5, 10], 0, 1, 'float32', 1);
      const weights = randomNormal([4, 5, 5, 10], 0, 1, 'float32', 2);
      const layer = new ResidualAdd({ name: 'sum' });
      const reference = layers.add({ name: 'reference' });
      for (const training of [true, false]) {
        const ours = grad(lossThrough((a, b) => layer.apply([a, b], { training }) as Tensor, weights))(x);
        const theirs = grad(lossThrough((a, b) => reference.apply([a, b]) as Tensor, weights))(x);
        expect(Array.from(ours.dataSync())).toEqual(Array.from(theirs.dataSync()));
        const y = layer.apply([x, weights], { training }) as Tensor;
        expect(Array.from(y.dataSync())).toEqual(Array.from(add(x, weights).dataSync()));
      }
    });
  });

  it("keeps neither input for the backward pass (tfjs-core's Add keeps both)", () => {
    // The bytes alive when the backward pass starts: the forward pass's intermediates are gone by then, except
    // what its nodes saved. The two sides differ by what the addition saved.
    const liveAtBackward = (plus: (a: Tensor, b: Tensor) => Tensor) => {
      let bytes = -1;
      const probe = customGrad((...inputs: (Tensor | GradSaveFunc)[]) => ({
        value: (inputs[0] as Tensor).clone(),
        gradFunc: (dy: Tensor) => {
          bytes = memory().numBytes;
          return dy.clone();
        },
      }));
      tidy(() => {
        const x = randomNormal([SIZE], 0, 1, 'float32', 3);
        const weights = randomNormal([SIZE], 0, 1, 'float32', 4);
        grad((v: Tensor) => probe(lossThrough(plus, weights)(v)))(x);
      });
      return bytes;
    };
    const layer = new ResidualAdd({ name: 'sum' });
    const ours = liveAtBackward((a, b) => layer.apply([a, b], { training: true }) as Tensor);
    const theirs = liveAtBackward((a, b) => add(a, b));
    expect(theirs - ours).toBe(2 * SIZE * Float32Array.BYTES_PER_ELEMENT);
  });

  it('rejects inputs of different shapes, naming them', () => {
    const layer = new ResidualAdd({ name: 'sum' });
    expect(() => layer.computeOutputShape([[null, 4, 4, 8], [null, 4, 4, 16]])).toThrow('ResidualAdd sum: cannot add shapes [, 4, 4, 8] and [, 4, 4, 16]');
  });
});
