/*
 * Eigen-decomposition of a real symmetric matrix: Householder reduction to tridiagonal form, then the implicit
 * QL algorithm (tred2/tql2 of EISPACK as published in JAMA, public domain), in float64 throughout.
 *
 * At 3072x3072 (ZCA on CIFAR) this is ~1e11 multiply-adds, so the O(n^3) loops run as WebAssembly SIMD kernels
 * (eigen-kernels.ts) over one block of memory holding V transposed: column j of V is the contiguous row
 * `col[j]`, so every kernel walks contiguous memory. QL records the rotations of a sweep first and applies them
 * to V four at a time, so a column shared by neighbouring rotations is loaded and stored once per four.
 */

import type { EigenKernels } from './eigen-kernels.js';
import { createEigenKernels } from './eigen-kernels.js';

export interface SymmetricEigen {
  /** Eigenvalues in ascending order. */
  values: Float64Array;
  /** `vectors[j]` is the unit eigenvector of `values[j]`. */
  vectors: Float64Array[];
}

export interface SymmetricEigenOptions {
  /** 'wasm' (default) uses the SIMD kernels where the runtime has them; 'js' forces the plain-JS loops. */
  kernels?: 'wasm' | 'js';
}

/** `matrix` is n x n row-major and must be symmetric; it is not modified. */
export function symmetricEigen(matrix: ArrayLike<number>, n: number, options: SymmetricEigenOptions = {}): SymmetricEigen {
  if (!Number.isInteger(n) || n < 1) throw new Error(`symmetricEigen: n = ${n}, expected a positive integer`);
  if (matrix.length !== n * n) throw new Error(`symmetricEigen: ${matrix.length} values, expected ${n}x${n} = ${n * n}`);
  const kernels = createEigenKernels(8 * (n * n + 3 * n), options.kernels ?? 'wasm');
  const solver = new Solver(kernels, n);
  // A symmetric input reads the same by rows or columns, so its rows are V's initial columns.
  const storage = solver.memory.subarray(0, n * n);
  for (let k = 0; k < n * n; k++) storage[k] = matrix[k]!;
  solver.tred2();
  solver.tql2();
  const { d, col } = solver;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => d[a]! - d[b]!);
  // Copies, so the caller does not keep the kernels' whole memory alive through a few of the vectors.
  return { values: Float64Array.from(order, (i) => d[i]!), vectors: order.map((i) => col[i]!.slice()) };
}

class Solver {
  readonly memory: Float64Array;
  readonly col: Float64Array[];
  readonly d: Float64Array;
  readonly e: Float64Array;
  /** Element offsets of d and e in `memory`. */
  private readonly dAt: number;
  private readonly eAt: number;
  /** Element offset of n scratch values. */
  private readonly scratchAt: number;

  constructor(
    private readonly k: EigenKernels,
    private readonly n: number,
  ) {
    this.memory = new Float64Array(k.memory.buffer);
    this.col = Array.from({ length: n }, (_, j) => this.memory.subarray(j * n, (j + 1) * n));
    this.dAt = n * n;
    this.eAt = n * n + n;
    this.scratchAt = n * n + 2 * n;
    this.d = this.memory.subarray(this.dAt, this.dAt + n);
    this.e = this.memory.subarray(this.eAt, this.eAt + n);
  }

  /** Column j -= (u . column j) scaled over their first `length` elements, u being column `u` of V. */
  private reflect(u: number, scaledAt: number, j: number, length: number): void {
    const { n, memory: m } = this;
    const g = this.dot(u * n, j * n, length);
    this.k.axpy(8 * j * n, 8 * scaledAt, g, length >> 1);
    if (length & 1) m[j * n + length - 1]! -= g * m[scaledAt + length - 1]!;
  }

  /** Sum of memory[a + k] memory[b + k] for k < length. */
  private dot(a: number, b: number, length: number): number {
    let sum = this.k.dot(8 * a, 8 * b, length >> 1);
    if (length & 1) sum += this.memory[a + length - 1]! * this.memory[b + length - 1]!;
    return sum;
  }

  tred2(): void {
    const { n, col, d, e, memory: m, dAt, eAt } = this;
    for (let j = 0; j < n; j++) d[j] = col[j]![n - 1]!;
    for (let i = n - 1; i > 0; i--) {
      let scale = 0;
      let h = 0;
      for (let k = 0; k < i; k++) scale += Math.abs(d[k]!);
      if (scale === 0) {
        e[i] = d[i - 1]!;
        for (let j = 0; j < i; j++) {
          d[j] = col[j]![i - 1]!;
          col[j]![i] = 0;
          col[i]![j] = 0;
        }
      } else {
        for (let k = 0; k < i; k++) {
          d[k]! /= scale;
          h += d[k]! * d[k]!;
        }
        let f = d[i - 1]!;
        let g = Math.sqrt(h);
        if (f > 0) g = -g;
        e[i] = scale * g;
        h -= f * g;
        d[i - 1] = f - g;
        e.fill(0, 0, i);
        // e = A u over the lower triangle: column j adds its dot product with u to e[j] and f * itself to e[k > j].
        const ci = col[i]!;
        for (let j = 0; j < i; j++) {
          const cj = col[j]!;
          f = d[j]!;
          ci[j] = f;
          const from = j + 1;
          const length = i - from;
          let sum = e[j]! + cj[j]! * f + this.k.symv(8 * (j * n + from), 8 * (dAt + from), 8 * (eAt + from), f, length >> 1);
          if (length & 1) {
            const v = cj[i - 1]!;
            sum += v * d[i - 1]!;
            e[i - 1]! += v * f;
          }
          e[j] = sum;
        }
        f = 0;
        for (let j = 0; j < i; j++) {
          e[j]! /= h;
          f += e[j]! * d[j]!;
        }
        const hh = f / (h + h);
        for (let j = 0; j < i; j++) e[j]! -= hh * d[j]!;
        // Rank-2 update A -= u p^T + p u^T, one contiguous column at a time.
        for (let j = 0; j < i; j++) {
          const cj = col[j]!;
          f = d[j]!;
          g = e[j]!;
          const length = i - j;
          this.k.rank2(8 * (j * n + j), 8 * (eAt + j), 8 * (dAt + j), f, g, length >> 1);
          if (length & 1) cj[i - 1]! -= f * e[i - 1]! + g * d[i - 1]!;
          d[j] = cj[i - 1]!;
          cj[i] = 0;
        }
      }
      d[i] = h;
    }
    // Accumulate the Householder transformations into V, two steps per pass over the columns: step i + 1 reads
    // nothing step i writes except the column it updates, which is then still in cache. At n = 3072 the pass
    // over up to 75 MB is memory-bound, so this halves the accumulation's traffic.
    const scaledAt = [dAt, this.scratchAt];
    /** Step i (0-based) of the accumulation, set up: returns whether it does anything (h != 0). */
    const setUp = (i: number, scaled: number): boolean => {
      const ci = col[i]!;
      ci[n - 1] = ci[i]!;
      ci[i] = 1;
      const h = d[i + 1]!;
      if (h === 0) return false;
      const next = col[i + 1]!;
      for (let k = 0; k <= i; k++) m[scaled + k] = next[k]! / h;
      return true;
    };
    for (let i = 0; i < n - 1; i += 2) {
      const pair = i + 1 < n - 1;
      // Step i + 1's h is d[i + 2]: read before step i's scaled vector overwrites d[0..i].
      const first = setUp(i, scaledAt[0]!);
      const second = pair && setUp(i + 1, scaledAt[1]!);
      for (let j = 0; j <= i; j++) {
        if (first) this.reflect(i + 1, scaledAt[0]!, j, i + 1);
        if (second) this.reflect(i + 2, scaledAt[1]!, j, i + 2);
      }
      col[i + 1]!.fill(0, 0, i + 1);
      if (pair) {
        if (second) this.reflect(i + 2, scaledAt[1]!, i + 1, i + 2);
        col[i + 2]!.fill(0, 0, i + 2);
      }
    }
    for (let j = 0; j < n; j++) {
      d[j] = col[j]![n - 1]!;
      col[j]![n - 1] = 0;
    }
    col[n - 1]![n - 1] = 1;
    e[0] = 0;
  }

  tql2(): void {
    const { n, d, e } = this;
    for (let i = 1; i < n; i++) e[i - 1] = e[i]!;
    e[n - 1] = 0;
    // Rotation i of a sweep acts on columns i and i + 1 of V.
    const cosines = new Float64Array(n);
    const sines = new Float64Array(n);
    let f = 0;
    let tst1 = 0;
    const eps = 2 ** -52;
    for (let l = 0; l < n; l++) {
      tst1 = Math.max(tst1, Math.abs(d[l]!) + Math.abs(e[l]!));
      let m = l;
      while (m < n - 1 && Math.abs(e[m]!) > eps * tst1) m++;
      if (m > l) {
        let iterations = 0;
        do {
          if (++iterations > 60) throw new Error(`symmetricEigen: no convergence for eigenvalue ${l} after 60 iterations`);
          let g = d[l]!;
          let p = (d[l + 1]! - g) / (2 * e[l]!);
          let r = Math.hypot(p, 1);
          if (p < 0) r = -r;
          d[l] = e[l]! / (p + r);
          d[l + 1] = e[l]! * (p + r);
          const dl1 = d[l + 1]!;
          let h = g - d[l]!;
          for (let i = l + 2; i < n; i++) d[i]! -= h;
          f += h;
          p = d[m]!;
          let c = 1;
          let c2 = c;
          let c3 = c;
          const el1 = e[l + 1]!;
          let s = 0;
          let s2 = 0;
          for (let i = m - 1; i >= l; i--) {
            c3 = c2;
            c2 = c;
            s2 = s;
            g = c * e[i]!;
            h = c * p;
            r = Math.hypot(p, e[i]!);
            e[i + 1] = s * r;
            s = e[i]! / r;
            c = p / r;
            p = c * d[i]! - s * g;
            d[i + 1] = h + s * (c * g + s * d[i]!);
            cosines[i] = c;
            sines[i] = s;
          }
          this.rotate(cosines, sines, l, m - 1);
          p = (-s * s2 * c3 * el1 * e[l]!) / dl1;
          e[l] = s * p;
          d[l] = c * p;
        } while (Math.abs(e[l]!) > eps * tst1);
      }
      d[l] = d[l]! + f;
      e[l] = 0;
    }
  }

  /**
   * Applies rotations i = top, top - 1, ..., bottom (in that order) of a QL sweep to V: rotation i maps columns
   * (a, b) = (i, i + 1) to (c a - s b, s a + c b).
   */
  private rotate(cosines: Float64Array, sines: Float64Array, bottom: number, top: number): void {
    const { n, col } = this;
    const pairs = n >> 1;
    const at = (j: number) => 8 * j * n;
    let i = top;
    for (; i - 3 >= bottom; i -= 4) {
      this.k.rotate4(
        at(i - 3),
        at(i - 2),
        at(i - 1),
        at(i),
        at(i + 1),
        cosines[i]!,
        sines[i]!,
        cosines[i - 1]!,
        sines[i - 1]!,
        cosines[i - 2]!,
        sines[i - 2]!,
        cosines[i - 3]!,
        sines[i - 3]!,
        pairs,
      );
      if (n & 1) for (let r = 0; r < 4; r++) this.rotateLast(col[i - r]!, col[i - r + 1]!, cosines[i - r]!, sines[i - r]!);
    }
    for (; i >= bottom; i--) {
      this.k.rotate(at(i), at(i + 1), cosines[i]!, sines[i]!, pairs);
      if (n & 1) this.rotateLast(col[i]!, col[i + 1]!, cosines[i]!, sines[i]!);
    }
  }

  /** The odd last element the pairwise kernels leave out. */
  private rotateLast(a: Float64Array, b: Float64Array, c: number, s: number): void {
    const k = this.n - 1;
    const ak = a[k]!;
    const bk = b[k]!;
    b[k] = s * ak + c * bk;
    a[k] = c * ak - s * bk;
  }
}
