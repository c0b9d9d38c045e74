import * as tf from '@tensorflow/tfjs-core';
import { checkConvGradients } from './conv-gradient-check';
import { DEFAULT_WASM_THREADS, NATIVE_CONV_ENV, nativeConvFromEnv, wasmThreadsFromEnv } from './env';
import { loadNativeConv } from './native-loader';
import {
  BACKEND_CHOICES,
  BackendUnavailableError,
  describeError,
  type BackendAttempt,
  type BackendChoice,
  type BackendSelection,
  type SelectBackendOptions,
} from './selection';
import { registerNativeBackend } from './native-backend/backend';
import { NATIVE_BACKEND_NAME } from './native-backend/tensor-data';
import { initWasmBackendWithThreads } from './wasm/threads';
import { registerWasmTrainingGradients } from './wasm/training-gradients';
import { registerWasmTrainingKernels } from './wasm/training-kernels';
import { adapterLabel, tryWebGpu, WEBGPU_INSTALL_ADVICE, type WebGpuAdapterReport } from './webgpu';
import * as dawn from './webgpu-dawn';

// Node only: selectBackend loads the native TensorFlow binding, @wrn/native's addon, Dawn and the threaded wasm
// build (worker_threads), each by name at run time so that a missing one is a reason in `tried`.

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

/**
 * @wrn's own backend (native-backend/): tfjs-backend-cpu's data store and kernels, with @wrn/native's kernels for
 * every large op. Needs @wrn/native (there is no point to it without: it would be the cpu backend).
 */
async function tryWrnNative(load: (s: string) => Promise<unknown>): Promise<BackendAttempt & { nativeConv?: BackendSelection['nativeConv'] }> {
  const name = NATIVE_BACKEND_NAME;
  try {
    await load('@tensorflow/tfjs-backend-cpu');
  } catch (error) {
    return { name, ok: false, error: `cannot load @tensorflow/tfjs-backend-cpu (its data store and fallback kernels): ${describeError(error)}` };
  }
  const native = await loadNativeConv(load);
  if (!native.used) return { name, ok: false, error: `@wrn/native is ${native.why}` };
  try {
    registerNativeBackend(native.kernels);
    await load('@tensorflow/tfjs-layers');
  } catch (error) {
    return { name, ok: false, error: describeError(error) };
  }
  // After tfjs-layers (its first import registers every gradient): ReLU's from its output, Mean's as one Tile.
  registerWasmTrainingGradients();
  try {
    if (!(await tf.setBackend(name))) return { name, ok: false, error: 'the backend failed to initialise' };
  } catch (error) {
    return { name, ok: false, error: `the backend failed to initialise: ${describeError(error)}` };
  }
  let failure: string | undefined;
  try {
    failure = checkConvGradients();
  } catch (error) {
    failure = describeError(error);
  }
  if (failure != null) return { name, ok: false, error: `its kernels are wrong here: ${failure}` };
  return { name, ok: true, nativeConv: { used: true, isa: native.kernels.isa, threads: native.kernels.threads } };
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
    const list = await dawn.probeDawnAdapters();
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
  const { name, ok, error, adapter, softwareOnly } = await tryWebGpu(load, false, dawn);
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
 * - 'wrn-native': @wrn's own backend (native-backend/): tfjs-backend-cpu's tensors in ordinary memory, bounded by RAM
 *   rather than wasm32's 4 GB heap (ResNeXt-29 8x64d / 16x64d train on it), @wrn/native's kernels for every large op.
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
    const attempt = choice === 'webgpu' ? await tryWebGpu(load, true, dawn) : await tryWebGpuForAuto(load);
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

  if (choice === 'wrn-native') {
    const { nativeConv, ...attempt } = await tryWrnNative(load);
    tried.push(attempt);
    if (attempt.ok && nativeConv?.used) {
      return {
        name: NATIVE_BACKEND_NAME,
        reason: `using ${NATIVE_BACKEND_NAME}: tensors in ordinary memory (no 4 GB wasm heap), kernels on @wrn/native (${nativeConv.isa}, ${nativeConv.threads} thread${nativeConv.threads === 1 ? '' : 's'}), the rest on tfjs-backend-cpu, checked against a direct computation`,
        tried,
        nativeConv,
      };
    }
    throw new BackendUnavailableError(choice, tried, 'It needs @wrn/native (prebuilt for linux-x64, compiled on install elsewhere: `npm rebuild @wrn/native`); or use --backend wasm.');
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
