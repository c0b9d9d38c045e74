/**
 * A/B of the fused training-step kernels on the wasm backend with @wrn/native: BatchNorm in training mode as one
 * kernel forward and one backward (@wrn/blocks' BATCH_NORM_TRAINING_KERNEL) and the SGD update as one in-place
 * kernel per parameter (@wrn/training's SGD_UPDATE_KERNEL), each against the path it replaces (tf.moments +
 * tf.batchNorm with the native BatchNorm gradient; SgdOptimizer's tf ops), in one process, interleaved, medians:
 * on a shared, loaded machine only a comparison made this way means anything.
 *
 *   npx nx run-many -t build -p native blocks backend architectures training
 *   npx tsx tools/bench/training-step-ab.ts [--models resnet20,wrn-16-4 | none] [--batch 64] [--reps 5] [--kernel-reps 30]
 *
 * ReLU's gradient from its saved output on one native pass (@wrn/backend's NATIVE_RELU_GRAD; without it, the
 * same gradient on Step, Cast and Multiply). Prints per model the median step time with none, each alone and all
 * three, the kernel calls per step of each and the peak of live tensor data on the wasm heap in the step.
 */
import * as tf from '@tensorflow/tfjs-core';
// Static, as the other benches import it (the module-boundary rule forbids mixing static and lazy imports of one library).
import { BATCH_NORM_TRAINING_KERNEL, TorchBatchNormalization } from '@wrn/blocks';
import { arg, intArg, interleave, median, medians } from './ab.js';

const models = arg('models', 'resnet20,wrn-16-4').split(',').filter((m) => m !== 'none');
const batch = intArg('batch', 64);
const reps = intArg('reps', 5);

async function main(): Promise<void> {
  await import('@tensorflow/tfjs-layers');
  const { SGD_UPDATE_KERNEL, SgdOptimizer, applyForTraining, variableGrads } = await import('@wrn/training');
  const { selectBackend } = await import('@wrn/backend/node');
  const { NATIVE_RELU_GRAD } = await import('@wrn/backend');
  const { buildModel } = await import('@wrn/architectures');
  const selection = await selectBackend('wasm', {});
  console.log(`backend: ${selection.reason}`);
  // Live and peak bytes the wasm backend holds through the module's malloc/free (shared data counted once), as
  // kernel-profile.ts measures them.
  const heap = { live: 0, peak: 0, sizes: new Map<number, number>() };
  const wasm = (tf.backend() as unknown as { wasm: { _malloc(n: number): number; _free(p: number): void } }).wasm;
  const malloc = wasm._malloc.bind(wasm);
  const free = wasm._free.bind(wasm);
  wasm._malloc = (n: number) => {
    const p = malloc(n);
    heap.sizes.set(p, n);
    heap.live += n;
    heap.peak = Math.max(heap.peak, heap.live);
    return p;
  };
  wasm._free = (p: number) => {
    heap.live -= heap.sizes.get(p) ?? 0;
    heap.sizes.delete(p);
    free(p);
  };
  const fused = {
    bn: tf.getKernel(BATCH_NORM_TRAINING_KERNEL, 'wasm'),
    sgd: tf.getKernel(SGD_UPDATE_KERNEL, 'wasm'),
    relu: tf.getKernel(NATIVE_RELU_GRAD, 'wasm'),
  };
  if (fused.bn == null || fused.sgd == null || fused.relu == null) throw new Error('the fused kernels are not registered for wasm (@wrn/native not in use?)');
  const configs = { bn: fused.bn, sgd: fused.sgd, relu: fused.relu };
  // Registering or removing a kernel is all it takes: the layer, the optimiser and the gradient look them up per call.
  // ReLU's gradient as tfjs-core has it (from the saved input): for the memory that saving the output saves.
  const reluFromOutput = tf.getGradient('Relu')!;
  const reluFromInput: tf.GradConfig = {
    kernelName: 'Relu',
    inputsToSave: ['x'],
    gradFunc: (dy, saved) => ({ x: () => tf.mul(dy as tf.Tensor, tf.cast(tf.step(saved[0]!), 'float32')) }),
  };
  const use = (which: { bn: boolean; sgd: boolean; relu: boolean; reluInput?: boolean }) => {
    tf.registerGradient(which.reluInput === true ? reluFromInput : reluFromOutput);
    for (const key of ['bn', 'sgd', 'relu'] as const) {
      const config = configs[key];
      const registered = tf.getKernel(config.kernelName, 'wasm') != null;
      if (which[key] && !registered) tf.registerKernel(config);
      if (!which[key] && registered) tf.unregisterKernel(config.kernelName, 'wasm');
    }
  };
  const variants = [
    { name: 'none', bn: false, sgd: false, relu: false },
    { name: 'BN kernels', bn: true, sgd: false, relu: false },
    { name: 'SGD kernel', bn: false, sgd: true, relu: false },
    { name: 'ReLU-grad kernel', bn: false, sgd: false, relu: true },
    { name: 'all three', bn: true, sgd: true, relu: true },
    { name: 'all three, ReLU grad from its input', bn: true, sgd: true, relu: false, reluInput: true },
  ];

  // Each kernel alone against what it replaces, on a ResNet-20-sized activation: less noisy than whole steps.
  const kernelReps = intArg('kernel-reps', 30);
  const abKernel = (on: () => void, off: () => void, fn: () => void): { off: number; on: number } =>
    medians(interleave([{ name: 'off', use: off }, { name: 'on', use: on }], fn, { reps: kernelReps }));
  {
    const all = { bn: true, sgd: true, relu: true };
    const x = tf.randomNormal([batch, 32, 32, 16], 0, 1, 'float32', 1);
    const dy = tf.randomNormal([batch, 32, 32, 16], 0, 1, 'float32', 2);
    const gamma = tf.ones([16]);
    const beta = tf.zeros([16]);
    const layer = new TorchBatchNormalization({});
    layer.build([null, 32, 32, 16]);
    const bnStep = () => {
      const { value, grads } = tf.variableGrads(
        () => tf.sum(tf.mul(layer.apply(x, { training: true }) as tf.Tensor, dy)) as tf.Scalar,
        layer.trainableWeights.map((w) => w.read() as tf.Variable),
      );
      tf.dispose([value, ...Object.values(grads)]);
    };
    const reluGrad = () => tf.dispose(tf.grad((v: tf.Tensor) => tf.relu(v))(x, dy));
    const params = Array.from({ length: 20 }, (_, i) => tf.variable(tf.randomNormal([3, 3, 32, 32], 0, 0.1, 'float32', 10 + i)));
    const grads = params.map((p, i) => tf.randomNormal(p.shape, 0, 0.01, 'float32', 100 + i));
    const sgd = new SgdOptimizer(
      params.map((variable, i) => ({ variable, name: `p${i}`, weightDecay: true })),
      { momentum: 0.9, nesterov: true, dampening: 0, weightDecay: 5e-4 },
    );
    const sgdStep = () => sgd.step(grads, 0.1);
    console.log(`\n### each kernel against what it replaces (ms, median of ${kernelReps}, interleaved)`);
    console.log('| what | replaced | fused | speed-up |');
    console.log('|---|---|---|---|');
    const row = (name: string, r: { off: number; on: number }) =>
      console.log(`| ${name} | ${r.off.toFixed(2)} | ${r.on.toFixed(2)} | ${(r.off / r.on).toFixed(2)}x |`);
    row(`BatchNorm layer, training forward + backward, [${batch},32,32,16]`, abKernel(() => use(all), () => use({ ...all, bn: false }), bnStep));
    row(`ReLU gradient, [${batch},32,32,16]`, abKernel(() => use(all), () => use({ ...all, relu: false }), reluGrad));
    row('SGD step (Nesterov, weight decay), 20 x [3,3,32,32]', abKernel(() => use(all), () => use({ ...all, sgd: false }), sgdStep));
    use(all);
    sgd.dispose();
    for (const w of layer.weights) w.dispose();
    tf.dispose([x, dy, gamma, beta, ...params, ...grads]);
  }

  for (const modelName of models) {
    const model = buildModel(modelName, { seed: 1 });
    const xs = tf.randomNormal([batch, 32, 32, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const labels = tf.oneHot(tf.randomUniform([batch], 0, 10, 'int32', 2) as tf.Tensor1D, 10);
    const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const optimizer = new SgdOptimizer(
      variables.map((variable, i) => ({ variable, name: model.trainableWeights[i]!.originalName, weightDecay: true })),
      { momentum: 0.9, nesterov: true, dampening: 0, weightDecay: 5e-4 },
    );
    const step = () => {
      const { value, grads } = variableGrads(() => tf.losses.softmaxCrossEntropy(labels, applyForTraining(model, xs)) as tf.Scalar, variables);
      optimizer.step(
        variables.map((v) => grads[v.name] ?? null),
        0.1,
      );
      value.dataSync();
      tf.dispose([value, grads]);
    };
    const calls = new Map<string, number>();
    const peak = new Map<string, number>();
    for (const v of variants) {
      use(v);
      step(); // warm-up: first-call set-up, heap growth
      heap.peak = heap.live;
      const info = await tf.profile(step);
      calls.set(v.name, info.kernels.length);
      peak.set(v.name, heap.peak);
    }
    const before = tf.memory().numTensors;
    const times = interleave(variants.map((v) => ({ name: v.name, use: () => use(v) })), step, { reps, warmup: 0 });
    console.log(`\n### ${modelName} training step, batch ${batch} (ms, median of ${reps}, interleaved)`);
    console.log('| variant | ms per step | images/s | kernel calls per step | peak live tensor data in the step (MB) |');
    console.log('|---|---|---|---|---|');
    for (const v of variants) {
      const ms = median(times[v.name]!);
      console.log(`| ${v.name} | ${ms.toFixed(1)} | ${((batch * 1000) / ms).toFixed(1)} | ${calls.get(v.name)} | ${(peak.get(v.name)! / 2 ** 20).toFixed(0)} |`);
    }
    console.log(`tensors alive after - before: ${tf.memory().numTensors - before}`);
    use({ bn: true, sgd: true, relu: true });
    optimizer.dispose();
    tf.dispose([xs, labels]);
    model.dispose();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exitCode = 1;
});
