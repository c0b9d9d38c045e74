// The environment variables of backend selection, parsed where they are read (browser-safe: no process, no env).

/**
 * Threads the wasm backend gets unless told otherwise. Without native convolutions tools/bench measured the
 * threaded build at 1.3-1.4x the training and 1.9-2.1x the inference rate of one thread on 2 cores (ResNet-20,
 * WRN-16-4); with them, 'auto' means one thread (see selectBackend's `wasmThreads` option).
 */
export const DEFAULT_WASM_THREADS: number | 'auto' = 'auto';

/** Sets the wasm thread count where the caller passes no `wasmThreads` (as the `wrn` command does): 'auto' or 1..8. */
export const WASM_THREADS_ENV = 'WRN_WASM_THREADS';

/** The environment variable that turns @wrn/native's convolutions off for the wasm backend: `WRN_NATIVE_CONV=0`. */
export const NATIVE_CONV_ENV = 'WRN_NATIVE_CONV';

/** Whether {@link NATIVE_CONV_ENV} allows the native convolutions (unset, '1' or 'on'); throws naming a bad value. */
export function nativeConvFromEnv(env: Record<string, string | undefined> | undefined = globalThis.process?.env): boolean {
  const raw = env?.[NATIVE_CONV_ENV]?.trim();
  if (raw === undefined || raw === '' || raw === '1' || raw === 'on') return true;
  if (raw === '0' || raw === 'off') return false;
  throw new Error(`${NATIVE_CONV_ENV}=${JSON.stringify(env?.[NATIVE_CONV_ENV])} (environment): expected 1/on or 0/off`);
}

/**
 * The thread count that {@link WASM_THREADS_ENV} asks for, or undefined when it is unset or empty. It is the
 * escape hatch where the threaded build misbehaves on a machine (WRN_WASM_THREADS=1) or a many-core machine
 * wants a different pool size than one thread per core.
 */
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
