/**
 * Where the time of one training step and one inference batch goes, per kernel, on the wasm backend (or cpu):
 * every kernel registered for the backend is wrapped with a timer (wasm kernels are synchronous, so wall time
 * is their time; with threads, XNNPACK's pool is waited for inside the call). Self time excludes the kernels a
 * kernel calls (our training kernels are built from other kernels). "outside kernels" is the step's time not
 * spent in any kernel: the engine's bookkeeping, the gradient tape, layer code.
 *
 *   npx nx run-many -t build -p blocks backend architectures training
 *   npx tsx tools/bench/kernel-profile.ts [--models resnet20,wrn-16-4] [--backend wasm] [--threads 2] [--batch 64]
 *       [--warmup 1] [--steps 2] [--top 25] [--no-native-inference]
 *
 * Prints, per model and phase (train, infer), a markdown table: kernel, calls per step, self ms per step, share;
 * on wasm also the peak of live tensor data during the phase (every allocation the backend makes through the
 * module's malloc, shared data counted once) against the wasm heap, which never shrinks. Inference runs the model
 * folded by @wrn/blocks' foldBatchNorm, as `wrn predict`, `wrn eval` and the bench do.
 */
import * as tf from '@tensorflow/tfjs-core';
// Static, as in the other benches: one dynamic import makes nx count @wrn/blocks lazy-loaded and fail their static ones.
import { foldBatchNorm } from '@wrn/blocks';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? (process.argv[i + 1] as string) : fallback;
}

const models = arg('models', 'resnet20,wrn-16-4').split(',');
const backendName = arg('backend', 'wasm') as 'wasm' | 'cpu';
const threads = arg('threads', 'auto');
const batch = Number(arg('batch', '64'));
const warmup = Number(arg('warmup', '1'));
const steps = Number(arg('steps', '2'));
const top = Number(arg('top', '25'));
// Kernels whose rows are split by input shapes (and strides/dilations): --by-shape Conv2D,Multiply
const byShape = new Set(arg('by-shape', '').split(',').filter(Boolean));

interface KernelStat {
  calls: number;
  selfMs: number;
}

const stats = new Map<string, KernelStat>();
let recording = false;
// Time spent in nested kernels, per open kernel, so the outer one's self time can exclude it.
const childMs: number[] = [];

function describeCall(kernelName: string, args: Parameters<tf.KernelFunc>[0]): string {
  const shapes = Object.values(args.inputs).map((t) => `[${t?.shape.join(',')}]`);
  const attrs = args.attrs as { strides?: unknown; dilations?: unknown; pad?: unknown } | undefined;
  const extra = attrs?.strides == null ? '' : ` s${JSON.stringify(attrs.strides)} d${JSON.stringify(attrs.dilations)} p${JSON.stringify(attrs.pad)}`;
  return `${kernelName} ${shapes.join(' ')}${extra}`;
}

function wrapKernels(backend: string): void {
  for (const config of tf.getKernelsForBackend(backend)) {
    const inner = config.kernelFunc;
    const name = config.kernelName;
    tf.unregisterKernel(name, backend);
    tf.registerKernel({
      ...config,
      kernelFunc: (args) => {
        if (!recording) return inner(args);
        childMs.push(0);
        const start = performance.now();
        const out = inner(args);
        const total = performance.now() - start;
        const nested = childMs.pop()!;
        if (childMs.length > 0) childMs[childMs.length - 1]! += total;
        const name = byShape.has(config.kernelName) ? describeCall(config.kernelName, args) : config.kernelName;
        const s = stats.get(name) ?? { calls: 0, selfMs: 0 };
        s.calls += 1;
        s.selfMs += total - nested;
        stats.set(name, s);
        return out;
      },
    });
  }
}

/** Live and peak bytes the wasm backend allocated through the module's malloc/free. */
const heapUse = { live: 0, peak: 0, sizes: new Map<number, number>() };

function trackWasmAllocations(): (() => number) | undefined {
  const backend = tf.backend() as unknown as { wasm?: { _malloc(n: number): number; _free(p: number): void; HEAPU8: Uint8Array } };
  const wasm = backend.wasm;
  if (wasm == null) return undefined;
  const malloc = wasm._malloc.bind(wasm);
  const free = wasm._free.bind(wasm);
  wasm._malloc = (n: number) => {
    const p = malloc(n);
    // Past 2 GB malloc's int32 is negative, and the backend frees it as unsigned (>>> 0): key by the latter.
    heapUse.sizes.set(p >>> 0, n);
    heapUse.live += n;
    heapUse.peak = Math.max(heapUse.peak, heapUse.live);
    return p;
  };
  wasm._free = (p: number) => {
    heapUse.live -= heapUse.sizes.get(p >>> 0) ?? 0;
    heapUse.sizes.delete(p >>> 0);
    free(p);
  };
  return () => wasm.HEAPU8.buffer.byteLength;
}

function report(title: string, wallMs: number): void {
  const rows = [...stats.entries()].sort((a, b) => b[1].selfMs - a[1].selfMs);
  const inKernels = rows.reduce((sum, [, s]) => sum + s.selfMs, 0);
  console.log(`\n### ${title}: ${(wallMs / steps).toFixed(0)} ms per step, ${((batch * 1000 * steps) / wallMs).toFixed(1)} img/s`);
  console.log('| kernel | calls/step | self ms/step | share |');
  console.log('|---|---|---|---|');
  for (const [name, s] of rows.slice(0, top)) {
    console.log(`| ${name} | ${(s.calls / steps).toFixed(0)} | ${(s.selfMs / steps).toFixed(1)} | ${((100 * s.selfMs) / wallMs).toFixed(1)}% |`);
  }
  const outside = wallMs - inKernels;
  console.log(`| (outside kernels) | - | ${(outside / steps).toFixed(1)} | ${((100 * outside) / wallMs).toFixed(1)}% |`);
}

async function main(): Promise<void> {
  await import('@tensorflow/tfjs-layers');
  const { SgdOptimizer, variableGrads } = await import('@wrn/training');
  const { selectBackend } = await import('@wrn/backend/node');
  const { buildModel } = await import('@wrn/architectures');
  const selection = await selectBackend(backendName, threads === 'auto' ? {} : { wasmThreads: Number(threads) });
  console.log(`backend: ${selection.reason}`);
  // Profile with model.predict's BatchNorm/Relu/Add/shortcut on wasm's kernels, as before @wrn/native's inference kernels.
  if (process.argv.includes('--no-native-inference')) (await import('@wrn/backend')).registerWasmTrainingKernels({ nativeInference: false });
  wrapKernels(tf.getBackend());
  const heapBytes = trackWasmAllocations();
  for (const modelName of models) {
    const model = buildModel(modelName, { seed: 1 });
    const xs = tf.randomNormal([batch, 32, 32, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const labels = tf.randomUniform([batch], 0, 10, 'int32', 2);
    const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const optimizer = new SgdOptimizer(
      variables.map((variable, i) => ({ variable, name: model.trainableWeights[i]!.originalName, weightDecay: true })),
      { momentum: 0.9, nesterov: true, dampening: 0, weightDecay: 5e-4 },
    );
    const trainStep = () => {
      const { value, grads } = variableGrads(() => {
        const logits = model.apply(xs, { training: true }) as tf.Tensor;
        return tf.losses.softmaxCrossEntropy(tf.oneHot(labels, 10), logits) as tf.Scalar;
      }, variables);
      optimizer.step(
        variables.map((v) => grads[v.name] ?? null),
        0.1,
      );
      value.dataSync();
      tf.dispose([value, grads]);
    };
    const inferenceModel = (await foldBatchNorm(model)).model;
    const inferStep = () => {
      const out = inferenceModel.predict(xs, { batchSize: batch }) as tf.Tensor;
      out.dataSync();
      out.dispose();
    };
    for (const [phase, fn] of [
      ['train', trainStep],
      ['infer', inferStep],
    ] as const) {
      for (let i = 0; i < warmup; i++) fn();
      stats.clear();
      heapUse.peak = heapUse.live;
      const liveBefore = heapUse.live;
      recording = true;
      const start = performance.now();
      for (let i = 0; i < steps; i++) fn();
      const wall = performance.now() - start;
      recording = false;
      report(`${modelName} ${phase} (batch ${batch}, ${backendName})`, wall);
      if (heapBytes != null) {
        const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(0);
        console.log(`peak live tensor data ${mb(heapUse.peak)} MB (${mb(liveBefore)} MB before the step), wasm heap ${mb(heapBytes())} MB`);
      }
    }
    console.log(`tensors alive: ${tf.memory().numTensors}, bytes ${(tf.memory().numBytes / 2 ** 20).toFixed(0)} MB, max RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`);
    tf.dispose([xs, labels]);
    model.dispose();
    inferenceModel.dispose();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exitCode = 1;
});
