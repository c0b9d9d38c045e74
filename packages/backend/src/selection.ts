import type { WebGpuAdapterReport } from './webgpu';

// What a backend selection is asked and answers, and its error: browser-safe, so a page can describe a run.

/**
 * What `--backend` accepts. 'wrn-native' (Node only) is @wrn's own backend: tensors in ordinary memory, not the 4 GB
 * wasm heap, every large op on @wrn/native (packages/backend/README.md); auto does not pick it.
 */
export type BackendChoice = 'auto' | 'tensorflow' | 'webgpu' | 'wasm' | 'cpu' | 'wrn-native';

export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu', 'wrn-native'];

/** One backend that {@link selectBackend} tried, in order. */
export interface BackendAttempt {
  /** The package or backend tried: '@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node', 'webgpu', 'wasm' or 'cpu'. */
  name: string;
  ok: boolean;
  /** Why it was not used; absent when it was. */
  error?: string;
}

export interface BackendSelection {
  /** The tfjs backend now active: 'tensorflow', 'webgpu', 'wasm', 'cpu' or 'wrn-native'. */
  name: string;
  /** One sentence saying what was picked and why, for the CLI and the run's config. */
  reason: string;
  tried: BackendAttempt[];
  /** The optional native package that provides 'tensorflow', when that is what was picked. */
  nativePackage?: string;
  /** Threads the wasm backend runs on (1 unless its threaded build loaded), when 'wasm' was picked. */
  wasmThreads?: number;
  /**
   * When 'wasm' or 'wrn-native' was picked: the native convolutions its conv kernels run on ('avx2+fma, 2 threads'), or why they
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

/** The first line of an error, without Node's "imported from /long/path" (the clause before it says all that matters). */
export function describeError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const firstLine = message.split('\n')[0] ?? message;
  return firstLine.replace(/ imported from .*$/, '');
}
