import * as tf from '@tensorflow/tfjs-core';

// The proof, in a few milliseconds, that the active backend's training kernels give right answers: the filter and
// input gradients of a tiny strided conv against a direct loop. One case for every backend; wasm and cpu read it
// back synchronously, webgpu (which cannot read synchronously in Node) asynchronously.

const SIZE = 5;
const XS = Array.from({ length: SIZE * SIZE }, (_, i) => ((i * 7) % 11) - 5);
const WS = Array.from({ length: 9 }, (_, i) => ((i * 5) % 7) - 3);

/** d sum(conv2d(x, w, 2, 'same')) / dw and / dx for the case above, as loops over the taps. */
function expectedGradients(): { dw: number[]; dx: number[] } {
  const out = Math.ceil(SIZE / 2);
  // 'same' with stride 2 on 5 pads one row/column on each side.
  const pad = 1;
  const dw = new Array<number>(9).fill(0);
  const dx = new Array<number>(SIZE * SIZE).fill(0);
  for (let y = 0; y < out; y++) {
    for (let x = 0; x < out; x++) {
      for (let i = 0; i < 3; i++) {
        for (let j = 0; j < 3; j++) {
          const r = y * 2 + i - pad;
          const c = x * 2 + j - pad;
          if (r < 0 || c < 0 || r >= SIZE || c >= SIZE) continue;
          dw[i * 3 + j]! += XS[r * SIZE + c]!;
          dx[r * SIZE + c]! += WS[i * 3 + j]!;
        }
      }
    }
  }
  return { dw, dx };
}

/** [dx, dw] of the case on the active backend. */
function gradientsOnBackend(): tf.Tensor[] {
  return tf.tidy(() => {
    const x = tf.tensor4d(XS, [1, SIZE, SIZE, 1]);
    const w = tf.tensor4d(WS, [3, 3, 1, 1]);
    return tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same')))([x, w]);
  });
}

function compare(dx: number[] | undefined, dw: number[] | undefined): string | undefined {
  const expected = expectedGradients();
  const close = (a: number[] | undefined, b: number[]) => a != null && a.length === b.length && a.every((v, i) => Math.abs(v - b[i]!) < 1e-3);
  if (!close(dw, expected.dw)) return `conv2d filter gradient ${JSON.stringify(dw)} != ${JSON.stringify(expected.dw)}`;
  if (!close(dx, expected.dx)) return `conv2d input gradient ${JSON.stringify(dx)} != ${JSON.stringify(expected.dx)}`;
  return undefined;
}

/** The check, read back synchronously: undefined when right, else what differs. */
export function checkConvGradients(): string | undefined {
  const grads = gradientsOnBackend();
  try {
    const [dx, dw] = grads.map((g) => Array.from(g.dataSync()));
    return compare(dx, dw);
  } finally {
    tf.dispose(grads);
  }
}

/** The check, read back asynchronously (webgpu cannot read synchronously in Node): undefined when right. */
export async function checkConvGradientsAsync(): Promise<string | undefined> {
  const grads = gradientsOnBackend();
  try {
    const [dx, dw] = await Promise.all(grads.map(async (g) => Array.from(await g.data())));
    return compare(dx, dw);
  } finally {
    tf.dispose(grads);
  }
}
