import * as tf from '@tensorflow/tfjs-core';
import type { NativeConvKernels, NativeConvLoad } from '@wrn/native';
import { initWasmBackendWithThreads } from './wasm/threads';
import { registerWasmTrainingGradients } from './wasm/training-gradients';
import { registerWasmTrainingKernels } from './wasm/training-kernels';
import { adapterLabel, listWebGpuAdapters, tryWebGpu, WEBGPU_INSTALL_ADVICE, type WebGpuAdapterReport } from './webgpu';

/** What `--backend` accepts. */
export type BackendChoice = 'auto' | 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';

export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'];

/** One backend that {@link selectBackend} tried, in order. */
export interface BackendAttempt {
  /** The package or backend tried: '@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node', 'webgpu', 'wasm' or 'cpu'. */
  name: string;
  ok: boolean;
  /** Why it was not used; absent when it was. */
  error?: string;
}

export interface BackendSelection {
  /** The tfjs backend now active: 'tensorflow', 'webgpu', 'wasm' or 'cpu'. */
  name: string;
  /** One sentence saying what was picked and why, for the CLI and the run's config. */
  reason: string;
  tried: BackendAttempt[];
  /** The optional native package that provides 'tensorflow', when that is what was picked. */
  nativePackage?: string;
  /** Threads the wasm backend runs on (1 unless its threaded build loaded), when 'wasm' was picked. */
  wasmThreads?: number;
  /**
   * When 'wasm' was picked: the native convolutions its conv kernels run on ('avx2+fma, 2 threads'), or why they
   * are not used ('off: WRN_NATIVE_CONV=0', 'not available: ...').
   */
  nativeConv?: { used: true; isa: string; threads: number } | { used: false; why: string };
  /** When 'webgpu' was picked: the adapter it runs on (software: SwiftShader and the like, on the CPU). */
  webgpuAdapter?: WebGpuAdapterReport;
}

export interface SelectBackendOptions {
  /**
   * Loads a package by name. Defaults to a dynamic `import()`; tests inject one to reach the
   * branches that need a package this machine cannot install.
   */
  importModule?: (specifier: string) => Promise<unknown>;
  /**
   * Threads for the wasm backend's XNNPACK pool: a number from 1 to 8, or 'auto': 1 when @wrn/native's
   * convolutions load (they run on every core), else the machine's available parallelism (capped at 8). More than 1 loads tfjs-backend-wasm's threaded SIMD build
   * through {@link initWasmBackendWithThreads}, falling back to 1 thread, with the reason in
   * `tried`, where that fails. Only takes effect before the wasm backend is first initialised.
   * Default: the environment's {@link WASM_THREADS_ENV}, else {@link DEFAULT_WASM_THREADS}.
   */
  wasmThreads?: number | 'auto';
  /**
   * Whether the wasm backend's convolutions run on @wrn/native's compiled kernels when that package loads.
   * Default: the environment's {@link NATIVE_CONV_ENV} ('0' turns them off), else true.
   */
  nativeConv?: boolean;
}

/** The native bindings, GPU build first. Optional peers: never installed by `npm ci` here. */
export const NATIVE_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;

/** What to do when 'tensorflow' cannot load; part of the error the CLI prints. */
export const TENSORFLOW_INSTALL_ADVICE = [
  `Install the native binding with the same version as @tensorflow/tfjs-core (${tf.version_core}), so npm keeps one copy of tfjs-core:`,
  `  npm i @tensorflow/tfjs-node-gpu@${tf.version_core}   # NVIDIA GPU, Linux x64 only: needs CUDA 11.2 and cuDNN 8.1 (driver >= 450)`,
  `  npm i @tensorflow/tfjs-node@${tf.version_core}       # CPU: Linux x64/arm64, macOS, Windows`,
  'Both download libtensorflow while installing; behind a firewall point TFJS_NODE_CDN_STORAGE (or TFJS_NODE_BASE_URI)',
  'at a mirror of the libtensorflow archives, e.g. `TFJS_NODE_CDN_STORAGE=https://mirror.example/ npm i @tensorflow/tfjs-node`.',
  "Or train without it: --backend wasm (or auto, which falls back to wasm).",
].join('\n');

/** Raised when the requested backend cannot be used; `message` carries the reasons and the advice. */
export class BackendUnavailableError extends Error {
  constructor(
    readonly choice: BackendChoice,
    readonly tried: BackendAttempt[],
    readonly advice: string,
  ) {
    super(
      `Backend '${choice}' is not available here.\n` +
        tried.map((t) => `  ${t.name}: ${t.error ?? 'ok'}`).join('\n') +
        (advice ? `\n${advice}` : ''),
    );
    this.name = 'BackendUnavailableError';
  }
}

function describeError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  // Node's "Cannot find package 'x' imported from /long/path" says all that matters in its first clause.
  const firstLine = message.split('\n')[0] ?? message;
  return firstLine.replace(/ imported from .*$/, '');
}

const defaultImport = (specifier: string): Promise<unknown> => import(/* @vite-ignore */ specifier);

/**
 * Loads one native package and makes its 'tensorflow' backend active, refusing a package that
 * brought its own copy of tfjs-core: tensors from two copies fail `instanceof` checks and their
 * kernels can differ, so a second copy is an error with the fix, not a warning.
 */
async function tryNative(pkg: string, load: (s: string) => Promise<unknown>): Promise<BackendAttempt> {
  let mod: Record<string, unknown>;
  try {
    mod = (await load(pkg)) as Record<string, unknown>;
  } catch (error) {
    return { name: pkg, ok: false, error: `cannot load: ${describeError(error)}` };
  }
  const theirCore = mod['version_core'];
  if (typeof theirCore === 'string' && theirCore !== tf.version_core) {
    return {
      name: pkg,
      ok: false,
      error: `it uses @tensorflow/tfjs-core ${theirCore} but @wrn uses ${tf.version_core}; install ${pkg}@${tf.version_core}`,
    };
  }
  if (mod['Tensor'] != null && mod['Tensor'] !== tf.Tensor) {
    return {
      name: pkg,
      ok: false,
      error: 'it loaded a second copy of @tensorflow/tfjs-core; run `npm dedupe` so there is one copy',
    };
  }
  if (tf.findBackendFactory('tensorflow') == null) {
    return { name: pkg, ok: false, error: "loaded, but it registered no 'tensorflow' backend with this @tensorflow/tfjs-core" };
  }
  try {
    if (!(await tf.setBackend('tensorflow'))) {
      return { name: pkg, ok: false, error: "its 'tensorflow' backend failed to initialise (see the log above)" };
    }
  } catch (error) {
    return { name: pkg, ok: false, error: `its backend failed to initialise: ${describeError(error)}` };
  }
  return { name: pkg, ok: true };
}

/**
 * The filter and input gradients of a tiny strided conv against a direct loop: proof, in a few
 * milliseconds, that the active backend's training kernels give right answers.
 */
export function checkConvGradients(): string | undefined {
  const size = 5;
  const xs = Array.from({ length: size * size }, (_, i) => ((i * 7) % 11) - 5);
  const ws = Array.from({ length: 9 }, (_, i) => ((i * 5) % 7) - 3);
  const out = Math.ceil(size / 2);
  // 'same' with stride 2 on 5 pads one row/column on each side.
  const pad = 1;
  const expectedDw = new Array<number>(9).fill(0);
  const expectedDx = new Array<number>(size * size).fill(0);
  for (let y = 0; y < out; y++) {
    for (let x = 0; x < out; x++) {
      for (let i = 0; i < 3; i++) {
        for (let j = 0; j < 3; j++) {
          const r = y * 2 + i - pad;
          const c = x * 2 + j - pad;
          if (r < 0 || c < 0 || r >= size || c >= size) continue;
          expectedDw[i * 3 + j]! += xs[r * size + c]!;
          expectedDx[r * size + c]! += ws[i * 3 + j]!;
        }
      }
    }
  }
  const [dx, dw] = tf.tidy(() => {
    const x = tf.tensor4d(xs, [1, size, size, 1]);
    const w = tf.tensor4d(ws, [3, 3, 1, 1]);
    const grads = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same')));
    return grads([x, w]).map((g) => Array.from(g.dataSync()));
  });
  const close = (a: number[] | undefined, b: number[]) => a != null && a.length === b.length && a.every((v, i) => Math.abs(v - b[i]!) < 1e-3);
  if (!close(dw, expectedDw)) return `conv2d filter gradient ${JSON.stringify(dw)} != ${JSON.stringify(expectedDw)}`;
  if (!close(dx, expectedDx)) return `conv2d input gradient ${JSON.stringify(dx)} != ${JSON.stringify(expectedDx)}`;
  return undefined;
}

/**
 * Threads the wasm backend gets unless told otherwise. Without native convolutions tools/bench measured the
 * threaded build at 1.3-1.4x the training and 1.9-2.1x the inference rate of one thread on 2 cores (ResNet-20,
 * WRN-16-4); with them, 'auto' means one thread (see {@link SelectBackendOptions.wasmThreads}).
 */
export const DEFAULT_WASM_THREADS: number | 'auto' = 'auto';

/** Sets the wasm thread count where the caller passes no `wasmThreads` (as the `wrn` command does): 'auto' or 1..8. */
export const WASM_THREADS_ENV = 'WRN_WASM_THREADS';

/**
 * The thread count that {@link WASM_THREADS_ENV} asks for, or undefined when it is unset or empty. It is the
 * escape hatch where the threaded build misbehaves on a machine (WRN_WASM_THREADS=1) or a many-core machine
 * wants a different pool size than one thread per core.
 */
/** The environment variable that turns @wrn/native's convolutions off for the wasm backend: `WRN_NATIVE_CONV=0`. */
export const NATIVE_CONV_ENV = 'WRN_NATIVE_CONV';

/** Whether {@link NATIVE_CONV_ENV} allows the native convolutions (unset, '1' or 'on'); throws naming a bad value. */
export function nativeConvFromEnv(env: Record<string, string | undefined> | undefined = globalThis.process?.env): boolean {
  const raw = env?.[NATIVE_CONV_ENV]?.trim();
  if (raw === undefined || raw === '' || raw === '1' || raw === 'on') return true;
  if (raw === '0' || raw === 'off') return false;
  throw new Error(`${NATIVE_CONV_ENV}=${JSON.stringify(env?.[NATIVE_CONV_ENV])} (environment): expected 1/on or 0/off`);
}

export function wasmThreadsFromEnv(env: Record<string, string | undefined> | undefined = globalThis.process?.env): number | 'auto' | undefined {
  const raw = env?.[WASM_THREADS_ENV];
  if (raw === undefined || raw.trim() === '') return undefined;
  const value = raw.trim();
  if (value === 'auto') return 'auto';
  const threads = Number(value);
  if (!Number.isInteger(threads) || threads < 1 || threads > 8) {
    throw new Error(`${WASM_THREADS_ENV}=${JSON.stringify(raw)} (environment): expected 'auto' or an integer from 1 to 8`);
  }
  return threads;
}

async function resolveThreads(requested: number | 'auto', nativeConvs: boolean): Promise<number> {
  if (requested !== 'auto') return requested;
  // @wrn/native's convolutions use every core themselves; XNNPACK's pool would then only add workers that spin
  // on the same cores between the small ops left to it (tools/bench: ResNet-20 inference 1,091 img/s on 1 wasm
  // thread, 823 on 2; training 259 vs 231).
  if (nativeConvs) return 1;
  const os = await import('node:os');
  return Math.max(1, Math.min(8, os.availableParallelism()));
}

async function tryWasm(
  load: (s: string) => Promise<unknown>,
  requestedThreads: number | 'auto',
  nativeConv: boolean,
): Promise<BackendAttempt & { threads?: number; threadsError?: string; nativeConv?: BackendSelection['nativeConv'] }> {
  let wasmModule: Record<string, unknown>;
  try {
    wasmModule = (await load('@tensorflow/tfjs-backend-wasm')) as Record<string, unknown>;
  } catch (error) {
    return { name: 'wasm', ok: false, error: `cannot load @tensorflow/tfjs-backend-wasm: ${describeError(error)}` };
  }
  const native = nativeConv ? await loadNativeConv(load) : ({ used: false, why: `off (${NATIVE_CONV_ENV}=0)` } as const);
  registerWasmTrainingKernels({ native: native.used ? native.kernels : null });
  try {
    // In Node, tfjs-core's CommonJS build registers no gradient functions; tfjs-layers registers them all.
    await load('@tensorflow/tfjs-layers');
  } catch (error) {
    return { name: 'wasm', ok: false, error: `cannot load @tensorflow/tfjs-layers (it registers the gradients): ${describeError(error)}` };
  }
  // After tfjs-layers: its first import registers every gradient, ours included otherwise.
  registerWasmTrainingGradients();
  let threadsError: string | undefined;
  try {
    if (tf.engine().registry['wasm'] == null) {
      try {
        const threads = await resolveThreads(requestedThreads, native.used);
        if (threads > 1) threadsError = (await initWasmBackendWithThreads(threads)).error;
      } catch (error) {
        // Outside Node (no worker_threads) the single-threaded build is all there is.
        threadsError = describeError(error);
      }
    }
    if (!(await tf.setBackend('wasm'))) return { name: 'wasm', ok: false, error: 'the wasm module failed to initialise' };
  } catch (error) {
    return { name: 'wasm', ok: false, error: `the wasm module failed to initialise: ${describeError(error)}` };
  }
  let failure: string | undefined;
  try {
    failure = checkConvGradients();
  } catch (error) {
    failure = describeError(error);
  }
  if (failure != null) return { name: 'wasm', ok: false, error: `training kernels are wrong here: ${failure}` };
  const getThreadsCount = wasmModule['getThreadsCount'];
  const threads = typeof getThreadsCount === 'function' ? Number((getThreadsCount as () => number)()) : 1;
  const nativeConvState: BackendSelection['nativeConv'] = native.used
    ? { used: true, isa: native.kernels.isa, threads: native.kernels.threads }
    : { used: false, why: native.why };
  return { name: 'wasm', ok: true, threads, nativeConv: nativeConvState, ...(threadsError == null ? {} : { threadsError }) };
}

/** @wrn/native's convolutions, or why there are none: an optional dependency that compiles on install. */
async function loadNativeConv(
  load: (s: string) => Promise<unknown>,
): Promise<{ used: true; kernels: NativeConvKernels } | { used: false; why: string }> {
  let mod: { loadNativeConvKernels?: () => NativeConvLoad };
  try {
    mod = (await load('@wrn/native')) as typeof mod;
  } catch (error) {
    return { used: false, why: `not installed (@wrn/native: ${describeError(error)})` };
  }
  const result = mod.loadNativeConvKernels?.();
  if (result == null) return { used: false, why: '@wrn/native has no loadNativeConvKernels: install the version that matches @wrn/training' };
  return result.ok ? { used: true, kernels: result.kernels } : { used: false, why: `not available: ${result.reason}` };
}

async function tryCpu(load: (s: string) => Promise<unknown>): Promise<BackendAttempt> {
  try {
    await load('@tensorflow/tfjs-backend-cpu');
    if (!(await tf.setBackend('cpu'))) return { name: 'cpu', ok: false, error: 'the cpu backend failed to initialise' };
  } catch (error) {
    return { name: 'cpu', ok: false, error: describeError(error) };
  }
  return { name: 'cpu', ok: true };
}

function pickedWasm(
  attempt: { threads?: number; threadsError?: string; nativeConv?: BackendSelection['nativeConv'] },
  tried: BackendAttempt[],
  why: string,
): BackendSelection {
  const threads = attempt.threads ?? 1;
  const threadsNote = attempt.threadsError == null ? '' : ` (threaded build not used: ${attempt.threadsError})`;
  const native = attempt.nativeConv;
  const convs = native?.used
    ? `, convolutions native (@wrn/native, ${native.isa}, ${native.threads} thread${native.threads === 1 ? '' : 's'})`
    : `, convolutions on XNNPACK (native ones ${native?.why ?? 'not tried'})`;
  return {
    name: 'wasm',
    reason: `${why}: wasm (XNNPACK, SIMD, ${threads} thread${threads === 1 ? '' : 's'}${threadsNote}) with @wrn's training kernels${convs}, checked against a direct computation`,
    tried,
    wasmThreads: threads,
    ...(native ? { nativeConv: native } : {}),
  };
}

/**
 * 'webgpu' for `auto`: only on a hardware adapter. In Node, Dawn is asked in a child process first
 * (listWebGpuAdapters), so a machine without a GPU neither loads Dawn nor prints its driver warnings.
 */
async function tryWebGpuForAuto(
  load: (s: string) => Promise<unknown>,
): Promise<BackendAttempt & { adapter?: WebGpuAdapterReport; skipped?: string }> {
  const inNode = typeof globalThis.process?.versions?.node === 'string';
  const hasGpuObject = (globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu != null;
  if (inNode && !hasGpuObject) {
    const list = await listWebGpuAdapters();
    const first = list.adapters.find((a) => a.request === 'high-performance') ?? list.adapters[0];
    if (first == null) return { name: 'webgpu', ok: false, error: list.error ?? 'no adapter', skipped: 'no WebGPU adapter' };
    if (first.software) {
      return {
        name: 'webgpu',
        ok: false,
        error: `only a software adapter, ${adapterLabel(first)}: it runs on the CPU, slower than wasm, so auto skips it (--backend webgpu uses it)`,
        skipped: 'only a software WebGPU adapter',
      };
    }
  }
  const { name, ok, error, adapter, softwareOnly } = await tryWebGpu(load, false);
  const skipped = softwareOnly ? 'only a software WebGPU adapter' : adapter == null ? 'no WebGPU adapter' : 'webgpu failed (`wrn doctor` says why)';
  return { name, ok, ...(error === undefined ? {} : { error }), ...(adapter ? { adapter } : {}), ...(ok ? {} : { skipped }) };
}

/**
 * Makes one tfjs backend active for training and says why it was chosen.
 * - 'tensorflow': `@tensorflow/tfjs-node-gpu`, else `@tensorflow/tfjs-node` (optional peers); throws a
 *   {@link BackendUnavailableError} with the install advice when neither loads.
 * - 'webgpu': tfjs-backend-webgpu on navigator.gpu (Dawn's `webgpu` package in Node), on any adapter, software
 *   ones (SwiftShader) included; the reason says which adapter and whether it is software.
 * - 'wasm': tfjs-backend-wasm with {@link registerWasmTrainingKernels}, verified on a tiny conv gradient.
 * - 'cpu': the pure-JS backend (correct, about 100x slower than PyTorch on convnets).
 * - 'auto': the first of tensorflow (GPU build first), webgpu on a hardware adapter, wasm, cpu that loads and
 *   trains correctly; `tried` records why each one before it was skipped.
 */
export async function selectBackend(choice: BackendChoice, options: SelectBackendOptions = {}): Promise<BackendSelection> {
  if (!BACKEND_CHOICES.includes(choice)) {
    throw new Error(`selectBackend: unknown backend ${JSON.stringify(choice)}; expected one of ${BACKEND_CHOICES.join(', ')}`);
  }
  const { wasmThreads } = options;
  if (wasmThreads !== undefined && wasmThreads !== 'auto' && !(Number.isInteger(wasmThreads) && wasmThreads >= 1 && wasmThreads <= 8)) {
    throw new Error(`selectBackend: wasmThreads must be 'auto' or an integer from 1 to 8, got ${JSON.stringify(wasmThreads)}`);
  }
  const load = options.importModule ?? defaultImport;
  const tried: BackendAttempt[] = [];

  if (choice === 'tensorflow' || choice === 'auto') {
    for (const pkg of NATIVE_PACKAGES) {
      const attempt = await tryNative(pkg, load);
      tried.push(attempt);
      if (attempt.ok) {
        const gpu = pkg.endsWith('-gpu');
        return {
          name: 'tensorflow',
          reason: `${choice === 'auto' ? 'auto picked' : 'using'} native TensorFlow through ${pkg}${gpu ? ' (CUDA build)' : ' (CPU build)'}`,
          tried,
          nativePackage: pkg,
        };
      }
    }
    if (choice === 'tensorflow') throw new BackendUnavailableError(choice, tried, TENSORFLOW_INSTALL_ADVICE);
  }

  // For auto's reason when it goes on to wasm or cpu: why webgpu was not used, in a few words.
  let webgpuSkipped = '';
  if (choice === 'webgpu' || choice === 'auto') {
    const attempt = choice === 'webgpu' ? await tryWebGpu(load, true) : await tryWebGpuForAuto(load);
    if ('skipped' in attempt && attempt.skipped) webgpuSkipped = `, ${attempt.skipped}`;
    tried.push({ name: attempt.name, ok: attempt.ok, ...(attempt.error === undefined ? {} : { error: attempt.error }) });
    if (attempt.ok && attempt.adapter) {
      const software = attempt.adapter.software
        ? ': a software adapter, running on the CPU (slower than --backend wasm); a GPU with its Vulkan, Metal or D3D12 driver runs the same code on the GPU'
        : '';
      return {
        name: 'webgpu',
        reason: `${choice === 'auto' ? 'auto picked, native TensorFlow not installed' : 'using'}: webgpu on ${adapterLabel(attempt.adapter)}${software}, checked against a direct computation`,
        tried,
        webgpuAdapter: attempt.adapter,
      };
    }
    if (choice === 'webgpu') throw new BackendUnavailableError(choice, tried, WEBGPU_INSTALL_ADVICE);
  }

  if (choice === 'wasm' || choice === 'auto') {
    const attempt = await tryWasm(load, options.wasmThreads ?? wasmThreadsFromEnv() ?? DEFAULT_WASM_THREADS, options.nativeConv ?? nativeConvFromEnv());
    const { threads: _threads, threadsError: _threadsError, nativeConv: _nativeConv, ...record } = attempt;
    tried.push(record);
    if (attempt.ok) return pickedWasm(attempt, tried, choice === 'auto' ? `auto picked, native TensorFlow not installed${webgpuSkipped}` : 'using');
    if (choice === 'wasm') throw new BackendUnavailableError(choice, tried, 'Use --backend cpu, or reinstall @tensorflow/tfjs-backend-wasm.');
  }

  const attempt = await tryCpu(load);
  tried.push(attempt);
  if (attempt.ok) {
    return {
      name: 'cpu',
      reason: choice === 'auto' ? 'auto fell back to the pure-JS cpu backend: nothing faster loaded (see tried)' : 'using the pure-JS cpu backend',
      tried,
    };
  }
  throw new BackendUnavailableError(choice, tried, 'Reinstall @tensorflow/tfjs-backend-cpu and @tensorflow/tfjs-backend-wasm.');
}
