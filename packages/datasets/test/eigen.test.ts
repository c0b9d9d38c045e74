import { describe, expect, it } from 'vitest';

import { createEigenKernels } from '../src/eigen-kernels.js';
import { symmetricEigen } from '../src/index.js';

/** Deterministic uniform values in [-1, 1) (Park-Miller), so a failure reproduces. */
function randomSymmetric(n: number, seed: number): Float64Array {
  let state = seed;
  const next = () => {
    state = (state * 16807) % 2147483647;
    return (2 * state) / 2147483647 - 1;
  };
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j <= i; j++) {
      const value = next();
      a[i * n + j] = value;
      a[j * n + i] = value;
    }
  return a;
}

/** Largest |A v_j - lambda_j v_j| and largest |V^T V - I| over all entries. */
function residuals(a: ArrayLike<number>, n: number): { eigen: number; orthonormality: number; values: Float64Array } {
  const { values, vectors } = symmetricEigen(a, n);
  let eigen = 0;
  let orthonormality = 0;
  for (let j = 0; j < n; j++) {
    const v = vectors[j]!;
    for (let i = 0; i < n; i++) {
      let av = 0;
      for (let k = 0; k < n; k++) av += a[i * n + k]! * v[k]!;
      eigen = Math.max(eigen, Math.abs(av - values[j]! * v[i]!));
    }
    for (let k = 0; k < n; k++) {
      let dot = 0;
      for (let i = 0; i < n; i++) dot += v[i]! * vectors[k]![i]!;
      orthonormality = Math.max(orthonormality, Math.abs(dot - (j === k ? 1 : 0)));
    }
  }
  return { eigen, orthonormality, values };
}

describe('symmetricEigen (Householder tridiagonalisation + implicit QL)', () => {
  it('finds the known eigen-pairs of the 3x3 second-difference matrix', () => {
    // [[2,-1,0],[-1,2,-1],[0,-1,2]]: eigenvalues 2 - sqrt2, 2, 2 + sqrt2 with eigenvectors
    // (1, sqrt2, 1)/2, (1, 0, -1)/sqrt2, (1, -sqrt2, 1)/2.
    const { values, vectors } = symmetricEigen([2, -1, 0, -1, 2, -1, 0, -1, 2], 3);
    const expectedValues = [2 - Math.SQRT2, 2, 2 + Math.SQRT2];
    const expectedVectors = [
      [0.5, Math.SQRT1_2, 0.5],
      [Math.SQRT1_2, 0, -Math.SQRT1_2],
      [0.5, -Math.SQRT1_2, 0.5],
    ];
    for (let j = 0; j < 3; j++) {
      expect(values[j]).toBeCloseTo(expectedValues[j]!, 14);
      // An eigenvector's sign is arbitrary: compare after matching the sign of the first component.
      const sign = Math.sign(vectors[j]![0]!);
      for (let i = 0; i < 3; i++) expect(sign * vectors[j]![i]!).toBeCloseTo(expectedVectors[j]![i]!, 14);
    }
  });

  it('satisfies A V = V diag(lambda) to 1e-9 with orthonormal V on random symmetric matrices', () => {
    for (const [n, seed] of [
      [64, 1],
      [37, 2],
      [5, 3],
    ] as const) {
      const a = randomSymmetric(n, seed);
      const copy = Float64Array.from(a);
      const { eigen, orthonormality, values } = residuals(a, n);
      expect(eigen, `n = ${n}`).toBeLessThan(1e-9);
      expect(orthonormality, `n = ${n}`).toBeLessThan(1e-12);
      for (let j = 1; j < n; j++) expect(values[j]!).toBeGreaterThanOrEqual(values[j - 1]!);
      // The eigenvalues sum to the trace; the input is left as it was.
      let trace = 0;
      for (let i = 0; i < n; i++) trace += a[i * n + i]!;
      expect(values.reduce((s, v) => s + v, 0)).toBeCloseTo(trace, 10);
      expect(a).toEqual(copy);
    }
  });

  it('handles repeated eigenvalues, already-diagonal input and a rank-one covariance', () => {
    const identity = new Float64Array(36);
    for (let i = 0; i < 6; i++) identity[i * 6 + i] = 1;
    const id = residuals(identity, 6);
    expect(Array.from(id.values)).toEqual([1, 1, 1, 1, 1, 1]);
    expect(id.orthonormality).toBeLessThan(1e-15);

    expect(Array.from(symmetricEigen([3, 0, 0, 0, -2, 0, 0, 0, 7], 3).values)).toEqual([-2, 3, 7]);
    expect(Array.from(symmetricEigen([5], 1).values)).toEqual([5]);

    // x x^T with x = (1, 2, 2, 4): one eigenvalue |x|^2 = 25 along x / 5, three zeros.
    const x = [1, 2, 2, 4];
    const outer = x.flatMap((xi) => x.map((xj) => xi * xj));
    const { values, vectors } = symmetricEigen(outer, 4);
    expect(values[3]).toBeCloseTo(25, 12);
    for (let j = 0; j < 3; j++) expect(Math.abs(values[j]!)).toBeLessThan(1e-12);
    const top = vectors[3]!;
    const sign = Math.sign(top[0]!);
    x.forEach((xi, i) => expect(sign * top[i]!).toBeCloseTo(xi / 5, 12));
    expect(residuals(outer, 4).eigen).toBeLessThan(1e-12);
  });

  it('gives the same result with the WebAssembly SIMD kernels and with the plain-JS loops', () => {
    // Odd n: the kernels work in pairs and leave the last element to JS.
    for (const n of [33, 40]) {
      const a = randomSymmetric(n, 7);
      const wasm = symmetricEigen(a, n);
      const js = symmetricEigen(a, n, { kernels: 'js' });
      expect(wasm.values).toEqual(js.values);
      expect(wasm.vectors).toEqual(js.vectors);
    }
  });

  it('rejects a matrix of the wrong size', () => {
    expect(() => symmetricEigen([1, 2, 3], 2)).toThrowError('symmetricEigen: 3 values, expected 2x2 = 4');
    expect(() => symmetricEigen([], 0)).toThrowError('symmetricEigen: n = 0, expected a positive integer');
  });
});

describe('eigen kernels', () => {
  it('compile to WebAssembly SIMD in Node', () => {
    expect(createEigenKernels(1024).kind).toBe('wasm');
  });

  it('compute what their JS twins compute, bit for bit', () => {
    const length = 64;
    const random = randomSymmetric(16, 11).slice(0, 6 * length);
    const run = (kind: 'wasm' | 'js') => {
      const k = createEigenKernels(8 * 6 * length, kind);
      const m = new Float64Array(k.memory.buffer, 0, 6 * length);
      m.set(random);
      const at = (vector: number, element = 0) => 8 * (vector * length + element);
      const pairs = length / 2 - 1;
      const sums = [k.dot(at(0), at(1, 1), pairs), k.symv(at(2), at(3), at(4), 0.75, pairs)];
      k.rotate(at(0, 1), at(1), 0.6, 0.8, pairs);
      k.rotate4(at(1), at(2), at(3), at(4), at(5), 0.6, 0.8, -0.28, 0.96, 1, 0, 0.8, -0.6, pairs);
      k.axpy(at(2, 3), at(5), -1.5, pairs);
      k.rank2(at(3), at(4, 1), at(0), 0.5, -2, pairs);
      return { sums, memory: Array.from(m) };
    };
    const wasm = run('wasm');
    const js = run('js');
    expect(wasm).toEqual(js);
    // rotate(at(0, 1), ...) moved elements 1..62 of vector 0 (31 pairs from an unaligned start) and no others.
    expect([wasm.memory[0], wasm.memory[length - 1]]).toEqual([random[0], random[length - 1]]);
    expect(wasm.memory[1]).not.toBe(random[1]);
    expect(wasm.memory[length - 2]).not.toBe(random[length - 2]);
  });
});
