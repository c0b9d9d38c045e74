import * as tf from '@tensorflow/tfjs-core';

/** What {@link initWasmBackendWithThreads} got. */
export interface WasmThreadsResult {
  /** Threads in XNNPACK's pool (what tfjs-backend-wasm's getThreadsCount() reports). */
  threads: number;
  /** Why the threaded build was not used, when `threads` is 1 although more were asked for. */
  error?: string;
}

interface RecordedBlob {
  recordedText: string;
}

/**
 * Initialises tfjs-backend-wasm's multi-threaded SIMD build in Node, which the package itself never
 * does (its WASM_HAS_MULTITHREAD_SUPPORT flag is false under Node). Three things stop it, each
 * worked around here only for the duration of the backend's initialisation:
 * - Emscripten starts its pthread workers from `blob:` URLs, which Node's worker_threads refuse
 *   (ERR_WORKER_PATH): the worker script and the main script are written to temp files instead.
 * - The backend's C++ halves the logical core count (assuming hyper-threads) and caps the pool
 *   there, so on 2 cores it always got 1 thread: `os.cpus()` reports 2x the threads asked for.
 * - The pool's 8 workers would keep Node alive forever: they are unref'd once initialised.
 * Must run before the 'wasm' backend is first initialised; otherwise it reports the current count.
 */
export async function initWasmBackendWithThreads(threads: number): Promise<WasmThreadsResult> {
  if (!Number.isInteger(threads) || threads < 1 || threads > 8) {
    throw new Error(`initWasmBackendWithThreads: threads must be an integer from 1 to 8, got ${threads}`);
  }
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  if (tf.engine().registry['wasm'] != null) {
    return { threads: wasm.getThreadsCount(), error: 'the wasm backend was already initialised; threads are fixed at initialisation' };
  }
  if (threads === 1) {
    const ok = await tf.setBackend('wasm');
    return ok ? { threads: wasm.getThreadsCount() } : { threads: 1, error: 'the wasm backend failed to initialise' };
  }
  const [{ default: os }, { default: fs }, { default: path }, { Worker }] = await Promise.all([
    import('node:os'),
    import('node:fs'),
    import('node:path'),
    import('node:worker_threads'),
  ]);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wrn-tfjs-wasm-threads-'));
  const workerPath = path.join(dir, 'worker.js');
  const mainPath = path.join(dir, 'main.js');

  const OriginalBlob = globalThis.Blob;
  const originalCreateObjectURL = URL.createObjectURL;
  const originalCpus = os.cpus;
  const originalPostMessage = Worker.prototype.postMessage;
  const workers: InstanceType<typeof Worker>[] = [];

  class RecordingBlob extends OriginalBlob implements RecordedBlob {
    readonly recordedText: string;
    constructor(parts: unknown[] = [], options?: BlobPropertyBag) {
      super(parts as BlobPart[], options);
      this.recordedText = parts.map(String).join('');
    }
  }
  const isRecorded = (value: unknown): value is RecordedBlob => value instanceof RecordingBlob;

  globalThis.Blob = RecordingBlob as typeof Blob;
  URL.createObjectURL = (blob: Blob) => {
    if (!isRecorded(blob)) return originalCreateObjectURL(blob);
    // The main script is the factory function's source, evaluated in the worker's global scope: give
    // it the free variables the tfjs bundle's module scope gave it. (Workers receive the compiled
    // module by message, so the directory they would load the .wasm file from is never read.)
    const prelude =
      'Object.assign(globalThis,{require$$0:require("fs"),require$$1:require("path"),require$$3:require("perf_hooks"),' +
      `require$$4:require("os"),commonjsGlobal:globalThis,_scriptDir:${JSON.stringify(mainPath)},__dirname:${JSON.stringify(dir)}});\n`;
    fs.writeFileSync(workerPath, prelude + blob.recordedText);
    return workerPath;
  };
  Worker.prototype.postMessage = function (this: InstanceType<typeof Worker>, message: unknown, transfer?: readonly unknown[]) {
    let sent = message;
    const load = message as { cmd?: string; urlOrBlob?: unknown } | null;
    if (load?.cmd === 'load') {
      workers.push(this);
      if (isRecorded(load.urlOrBlob)) {
        if (!fs.existsSync(mainPath)) fs.writeFileSync(mainPath, load.urlOrBlob.recordedText);
        sent = { ...load, urlOrBlob: mainPath };
      }
    }
    return originalPostMessage.call(this, sent, transfer as never);
  } as typeof originalPostMessage;
  os.cpus = () => {
    const cpus = originalCpus();
    return Array.from({ length: 2 * threads }, (_, i) => cpus[i % cpus.length]!);
  };

  const previousFlag = tf.env().getFlags()['WASM_HAS_MULTITHREAD_SUPPORT'];
  try {
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
    wasm.setThreadsCount(threads);
    const ok = await tf.setBackend('wasm');
    if (!ok) return { threads: 1, error: 'the threaded wasm build failed to initialise' };
    return { threads: wasm.getThreadsCount() };
  } catch (error) {
    return { threads: 1, error: `the threaded wasm build failed: ${error instanceof Error ? error.message : String(error)}` };
  } finally {
    globalThis.Blob = OriginalBlob;
    URL.createObjectURL = originalCreateObjectURL;
    os.cpus = originalCpus;
    Worker.prototype.postMessage = originalPostMessage;
    if (previousFlag === undefined) tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    else tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', previousFlag);
    for (const worker of workers) worker.unref();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
