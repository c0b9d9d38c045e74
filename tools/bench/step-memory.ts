/**
 * What holds a training step's memory on the wasm backend: the tensors the forward pass saves for the backward pass,
 * by the kernel that saved them, and the peak of live tensor data over a whole step (@wrn/training's variableGrads,
 * which frees each gradient and saved activation as soon as the backward pass is done with it, then the SGD update)
 * against the wasm heap, which never shrinks and cannot pass 4 GB (wasm32).
 *
 *   npx nx run-many -t build -p blocks backend architectures training
 *   node --expose-gc --import tsx tools/bench/step-memory.ts [--models resnext29-4x16d] [--batches 32,64,128]
 *        [--threads auto] [--top 12] [--grouped-method native|split|...]
 *
 * Prints per model and batch: the saved tensors (unique data, counted once: a tensor several kernels save is
 * charged to the first), the peak live tensor data of one step and the heap after it, or where it ran out of memory.
 * Each batch runs in a child process of its own, so one batch's heap growth does not count against the next.
 */
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs-core';
import * as blocks from '@wrn/blocks';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? (process.argv[i + 1] as string) : fallback;
}

const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(0);

interface TapeNode {
  kernelName: string;
  saved?: tf.Tensor[];
}

interface EngineInternals {
  state: { activeTape: TapeNode[] | null };
  startTape(): void;
  endTape(): void;
  scopedRun<T>(start: () => void, end: () => void, f: () => T): T;
  tidy<T extends tf.TensorContainer>(name: string, f: () => T): T;
}

/** Live and peak bytes the wasm backend allocated through the module's malloc/free (as kernel-profile.ts counts). */
const heapUse = { live: 0, peak: 0, sizes: new Map<number, number>() };

function trackWasmAllocations(): () => number {
  const backend = tf.backend() as unknown as { wasm?: { _malloc(n: number): number; _free(p: number): void; HEAPU8: Uint8Array } };
  const wasm = backend.wasm;
  if (wasm == null) throw new Error(`step-memory: the active backend (${tf.getBackend()}) is not wasm`);
  const malloc = wasm._malloc.bind(wasm);
  const free = wasm._free.bind(wasm);
  // Addresses past 2 GB come back from malloc as negative int32s and may be freed as unsigned ones: key by the latter.
  wasm._malloc = (n: number) => {
    const p = malloc(n);
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

async function child(modelName: string, batch: number, top: number, groupedMethod: string): Promise<void> {
  await import('@tensorflow/tfjs-layers');
  const { SgdOptimizer, applyForTraining, variableGrads } = await import('@wrn/training');
  const { selectBackend } = await import('@wrn/backend/node');
  const { buildModel } = await import('@wrn/architectures');
  const selection = await selectBackend('wasm', arg('threads', 'auto') === 'auto' ? {} : { wasmThreads: Number(arg('threads', '1')) });
  if (groupedMethod !== '') blocks.registerGroupedConvMethodResolver('wasm', () => groupedMethod as never);
  const heapBytes = trackWasmAllocations();
  const model = buildModel(modelName, { seed: 1 });
  const xs = tf.randomNormal([batch, 32, 32, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
  const labels = tf.oneHot(tf.randomUniform([batch], 0, 10, 'int32', 2), 10);
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const loss = () => tf.losses.softmaxCrossEntropy(labels, applyForTraining(model, xs)) as tf.Scalar;
  const weightsMb = mb(heapUse.live);
  console.log(`\n## ${modelName}, batch ${batch}: ${selection.reason}; grouped convs: ${groupedMethod || blocks.fastestGroupedConvMethod('wasm', true, { groups: 4, strides: 1 })}`);

  // 1. The forward pass under a gradient tape, as variableGrads runs it: what each kernel saved for the backward pass.
  const engine = tf.engine() as unknown as EngineInternals;
  const liveBefore = heapUse.live;
  heapUse.peak = heapUse.live;
  try {
    const y = engine.scopedRun(() => engine.startTape(), () => engine.endTape(), () => engine.tidy('forward', loss));
    const tape = engine.state.activeTape ?? [];
    const seen = new Set<object>();
    const byKernel = new Map<string, { bytes: number; tensors: number; nodes: number }>();
    for (const node of tape) {
      const entry = byKernel.get(node.kernelName) ?? { bytes: 0, tensors: 0, nodes: 0 };
      entry.nodes++;
      for (const t of node.saved ?? []) {
        if (seen.has(t.dataId)) continue;
        seen.add(t.dataId);
        entry.bytes += t.size * 4;
        entry.tensors++;
      }
      byKernel.set(node.kernelName, entry);
    }
    const total = [...byKernel.values()].reduce((s, e) => s + e.bytes, 0);
    console.log(`forward: ${tape.length} tape nodes; saved for the backward pass ${mb(total)} MB; live after the forward ${mb(heapUse.live - liveBefore)} MB, peak in it ${mb(heapUse.peak - liveBefore)} MB (weights etc. before: ${weightsMb} MB)`);
    console.log('| kernel | nodes | saved tensors (unique data) | saved MB | share |');
    console.log('|---|---:|---:|---:|---:|');
    for (const [name, e] of [...byKernel.entries()].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, top)) {
      console.log(`| ${name} | ${e.nodes} | ${e.tensors} | ${mb(e.bytes)} | ${((100 * e.bytes) / (total || 1)).toFixed(1)}% |`);
    }
    for (const node of tape) for (const t of node.saved ?? []) t.dispose();
    engine.state.activeTape = null;
    y.dispose();
  } catch (error) {
    console.log(`forward: failed: ${(error as Error).message.split('\n')[0]} (wasm heap ${mb(heapBytes())} MB, live ${mb(heapUse.live)} MB)`);
    return;
  }

  // 2. Whole training steps (forward, backward, SGD update): the peak of live tensor data.
  const optimizer = new SgdOptimizer(
    variables.map((variable, i) => ({ variable, name: model.trainableWeights[i]!.originalName, weightDecay: true })),
    { momentum: 0.9, nesterov: true, dampening: 0, weightDecay: 5e-4 },
  );
  for (let step = 1; step <= 2; step++) {
    const before = heapUse.live;
    heapUse.peak = heapUse.live;
    const start = performance.now();
    try {
      const { value, grads } = variableGrads(loss, variables);
      optimizer.step(variables.map((v) => grads[v.name] ?? null), 0.1);
      value.dataSync();
      tf.dispose([value, grads]);
    } catch (error) {
      console.log(`train step ${step}: failed: ${(error as Error).message.split('\n')[0]} (wasm heap ${mb(heapBytes())} MB, live ${mb(heapUse.live)} MB, peak ${mb(heapUse.peak)} MB)`);
      return;
    }
    const seconds = (performance.now() - start) / 1000;
    console.log(
      `train step ${step}: peak live tensor data ${mb(heapUse.peak)} MB (${mb(before)} MB before it), wasm heap ${mb(heapBytes())} MB, ` +
        `max RSS ${mb(process.resourceUsage().maxRSS * 1024)} MB, ${(batch / seconds).toFixed(1)} img/s (shared machine)`,
    );
  }
  tf.dispose([xs, labels]);
  model.dispose();
}

async function main(): Promise<void> {
  const childIndex = process.argv.indexOf('--child');
  const top = Number(arg('top', '12'));
  const groupedMethod = arg('grouped-method', '');
  if (childIndex >= 0) {
    const [modelName, batch] = process.argv[childIndex + 1]!.split('@') as [string, string];
    await child(modelName, Number(batch), top, groupedMethod);
    return;
  }
  for (const modelName of arg('models', 'resnext29-4x16d').split(',')) {
    for (const batch of arg('batches', '32,64').split(',').map(Number)) {
      const passOn = ['--threads', arg('threads', 'auto'), '--top', String(top), ...(groupedMethod ? ['--grouped-method', groupedMethod] : [])];
      const run = spawnSync(process.execPath, [...process.execArgv, process.argv[1]!, '--child', `${modelName}@${batch}`, ...passOn], { stdio: 'inherit' });
      if (run.status !== 0) console.log(`${modelName} batch ${batch}: the child exited with ${String(run.status ?? run.signal)}`);
    }
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exitCode = 1;
});
