// Shared by the wasm kernel and gradient tests: each compares the wasm backend with the cpu backend.
import * as tf from '@tensorflow/tfjs-core';
import seedrandom from 'seedrandom';
import { expect } from 'vitest';

export function randomArray(size: number, seed: string): Float32Array {
  const rng = seedrandom(seed);
  return Float32Array.from({ length: size }, () => rng() * 2 - 1);
}

/** Largest |a-b| relative to the reference's largest magnitude. */
export function maxRelativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  expect(actual.length).toBe(expected.length);
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]!));
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!) / (scale || 1));
  return worst;
}

export async function onBackend<T>(name: string, fn: () => T): Promise<T> {
  await tf.setBackend(name);
  return fn();
}

export interface OpOutput {
  shape: number[];
  values: number[];
  /** Tensors left behind by the op (0 when it disposes everything it made). */
  leaked: number;
}

/** Runs `op` on wasm, then on cpu: the output of each, and the tensors each left behind. */
export async function runOnWasmAndCpu(op: () => tf.Tensor): Promise<{ wasm: OpOutput; cpu: OpOutput }> {
  const run = (): OpOutput => {
    const before = tf.memory().numTensors;
    const out = tf.tidy(op);
    const result = { shape: out.shape, values: Array.from(out.dataSync()) };
    out.dispose();
    return { ...result, leaked: tf.memory().numTensors - before };
  };
  const wasm = await onBackend('wasm', run);
  const cpu = await onBackend('cpu', run);
  return { wasm, cpu };
}

/** A conv2d case: input [n, h, w, ci], a k x k filter to co channels, stride s, TF's padding, optional dilation. */
export interface ConvCase {
  n: number;
  h: number;
  w: number;
  ci: number;
  co: number;
  k: number;
  s: number;
  /** TF's 'same'/'valid', or p zeros on every side (Torch's padding, what @wrn's strided convs use). */
  pad: 'same' | 'valid' | number;
  dilation?: number;
}
