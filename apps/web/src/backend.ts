// Picks the fastest backend this browser has: webgpu, then webgl, then wasm with @wrn/backend's training kernels
// (threaded when the page is cross-origin isolated: serve.mjs sends COOP/COEP), then cpu. `?backend=` forces one.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers'; // registers every gradient, before ours replace two of them for wasm
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-webgl';
import '@tensorflow/tfjs-backend-webgpu';
import { getThreadsCount, setThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import wasmPlain from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url';
import wasmSimd from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url';
import wasmThreadedSimd from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url';
import { registerWasmTrainingGradients, registerWasmTrainingKernels } from '@wrn/backend';

export const BACKEND_ORDER = ['webgpu', 'webgl', 'wasm', 'cpu'] as const;
export type BrowserBackend = (typeof BACKEND_ORDER)[number];

export interface PickedBackend {
  name: BrowserBackend;
  /** What was picked and why the faster ones were not, for the page's status line. */
  description: string;
  tried: Array<{ name: BrowserBackend; error: string }>;
}

/** Threads asked of the wasm backend: one per core, at most 8 (its pthread pool's size). */
export const wasmThreadsWanted = () => {
  const asked = new URLSearchParams(location.search).get('threads');
  return Math.max(1, Math.min(8, asked != null ? Number(asked) || 1 : navigator.hardwareConcurrency || 1));
};

async function initialise(name: BrowserBackend): Promise<boolean> {
  if (name !== 'wasm' || !crossOriginIsolated || wasmThreadsWanted() === 1) return tf.setBackend(name);
  // The backend's C++ sizes its thread pool from half the logical cores (it assumes hyper-threads), capping
  // setThreadsCount there: 1 thread on 2 cores. It reads the core count from navigator.hardwareConcurrency while it
  // initialises, so it is shown twice the cores for that moment only (what @wrn/training does with os.cpus in Node).
  const cores = navigator.hardwareConcurrency || 1;
  const own = Object.getOwnPropertyDescriptor(navigator, 'hardwareConcurrency');
  Object.defineProperty(navigator, 'hardwareConcurrency', { configurable: true, get: () => 2 * cores });
  try {
    return await tf.setBackend(name);
  } finally {
    if (own) Object.defineProperty(navigator, 'hardwareConcurrency', own);
    else delete (navigator as unknown as Record<string, unknown>)['hardwareConcurrency'];
  }
}

async function tryBackend(name: BrowserBackend): Promise<string | null> {
  try {
    if (name === 'webgpu') {
      const gpu = (navigator as Navigator & { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
      if (!gpu) return 'navigator.gpu is missing';
      if (!(await gpu.requestAdapter())) return 'no WebGPU adapter';
    }
    if (name === 'wasm') {
      setWasmPaths({
        'tfjs-backend-wasm.wasm': wasmPlain,
        'tfjs-backend-wasm-simd.wasm': wasmSimd,
        'tfjs-backend-wasm-threaded-simd.wasm': wasmThreadedSimd,
      });
      if (crossOriginIsolated) setThreadsCount(wasmThreadsWanted());
      // wasm lacks Conv2DBackpropFilter and runs the rest of a training step slowly; no @wrn/native in a page.
      registerWasmTrainingKernels({ native: null });
      registerWasmTrainingGradients();
    }
    if (!(await initialise(name))) return 'failed to initialise';
    await tf.ready();
    // A backend can initialise and still fail its first kernel (a lost WebGL context, a WebGPU device limit).
    tf.tidy(() => tf.conv2d(tf.ones([1, 4, 4, 2]) as tf.Tensor4D, tf.ones([3, 3, 2, 2]) as tf.Tensor4D, 1, 'same').dataSync());
    return null;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

export async function pickBackend(forced: string | null): Promise<PickedBackend> {
  const order: readonly BrowserBackend[] = forced ? [forced as BrowserBackend] : BACKEND_ORDER;
  if (forced && !BACKEND_ORDER.includes(forced as BrowserBackend)) {
    throw new Error(`?backend=${forced}: expected one of ${BACKEND_ORDER.join(', ')}`);
  }
  const tried: PickedBackend['tried'] = [];
  for (const name of order) {
    const error = await tryBackend(name);
    if (error == null) {
      const detail =
        name === 'wasm'
          ? ` (${getThreadsCount()} thread${getThreadsCount() === 1 ? '' : 's'}${crossOriginIsolated ? '' : ', page not cross-origin isolated'}, @wrn training kernels)`
          : '';
      const skipped = tried.map((t) => `${t.name}: ${t.error}`).join('; ');
      return { name, description: `${name}${detail}${skipped ? `; not ${skipped}` : ''}`, tried };
    }
    tried.push({ name, error });
  }
  throw new Error(`no backend works here: ${tried.map((t) => `${t.name}: ${t.error}`).join('; ')}`);
}
