/**
 * A/B of @wrn/native's elementwise kernels on the wasm backend (@wrn/backend's wasm/native-elementwise.ts) against the wasm
 * backend's own, in one process, interleaved (A, B, A, B, ...), reporting medians: on a shared, loaded machine
 * only a comparison made this way means anything. Per kernel on a ResNet-20-sized activation, then whole
 * training steps of each model (@wrn/training's step: forward, variableGrads, SgdOptimizer).
 *
 *   npx nx run-many -t build -p native blocks architectures training
 *   npx tsx tools/bench/native-elementwise-ab.ts [--models resnet20] [--batch 64] [--reps 5] [--kernel-reps 30]
 */
import * as tf from '@tensorflow/tfjs-core';
import { arg, intArg, interleave, medians } from './ab.js';

const models = arg('models', 'resnet20').split(',');
const batch = intArg('batch', 64);
const reps = intArg('reps', 5);
const kernelReps = intArg('kernel-reps', 30);

async function main(): Promise<void> {
  await import('@tensorflow/tfjs-layers');
  const { SgdOptimizer, applyForTraining, variableGrads } = await import('@wrn/training');
  const { registerWasmTrainingKernels, wasmNativeConvKernels } = await import('@wrn/backend');
  const { selectBackend } = await import('@wrn/backend/node');
  const { buildModel } = await import('@wrn/architectures');
  const selection = await selectBackend('wasm', {});
  console.log(`backend: ${selection.reason}`);
  const native = wasmNativeConvKernels();
  if (native == null) throw new Error('@wrn/native is not in use on the wasm backend: nothing to compare');
  const use = (on: boolean) => registerWasmTrainingKernels({ native, nativeElementwise: on });

  /** Times `fn` alternately with the native kernels off (A) and on (B): median ms of each. */
  const ab = (n: number, fn: () => void): { wasm: number; native: number } =>
    medians(interleave([{ name: 'wasm', use: () => use(false) }, { name: 'native', use: () => use(true) }], fn, { reps: n }));

  const row = (name: string, r: { wasm: number; native: number }) =>
    console.log(`| ${name} | ${r.wasm.toFixed(2)} | ${r.native.toFixed(2)} | ${(r.wasm / r.native).toFixed(2)}x |`);

  console.log(`\n### kernels on [${batch},32,32,16] (ms, median of ${kernelReps}, interleaved)`);
  console.log('| kernel | wasm | native | native speed-up |');
  console.log('|---|---|---|---|');
  const shape = [batch, 32, 32, 16];
  const x = tf.randomNormal(shape, 0, 1, 'float32', 1);
  const y = tf.randomNormal(shape, 0, 1, 'float32', 2);
  const c = tf.randomNormal([16], 0, 1, 'float32', 3);
  const gamma = tf.ones([16]);
  const timed = (f: () => tf.Tensor | tf.Tensor[]) => () => tf.dispose(f());
  row('Add (same shape)', ab(kernelReps, timed(() => tf.add(x, y))));
  row('Multiply (same shape)', ab(kernelReps, timed(() => tf.mul(x, y))));
  row('Sub ([C] broadcast)', ab(kernelReps, timed(() => tf.sub(x, c))));
  row('Multiply (scalar)', ab(kernelReps, timed(() => tf.mul(x, 2))));
  row('Relu', ab(kernelReps, timed(() => tf.relu(x))));
  row('Step', ab(kernelReps, timed(() => tf.step(x))));
  row('Square', ab(kernelReps, timed(() => tf.square(x))));
  row('Sum over [0,1,2]', ab(kernelReps, timed(() => tf.sum(x, [0, 1, 2]))));
  row('Mean over [0,1,2]', ab(kernelReps, timed(() => tf.mean(x, [0, 1, 2]))));
  const bnGrad = tf.grads((a: tf.Tensor, g: tf.Tensor) => {
    const { mean, variance } = tf.moments(a, [0, 1, 2]);
    return tf.sum(tf.mul(tf.batchNorm(a, mean, variance, c, g, 1e-5), y));
  });
  row('BatchNorm (training) forward + backward', ab(Math.max(5, Math.round(kernelReps / 3)), timed(() => bnGrad([x, gamma]))));
  tf.dispose([x, y, c, gamma]);

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
    const before = tf.memory().numTensors;
    const r = ab(reps, step);
    console.log(`\n### ${modelName} training step, batch ${batch} (ms, median of ${reps}, interleaved)`);
    console.log('| step | wasm elementwise | native elementwise | native speed-up |');
    console.log('|---|---|---|---|');
    row(`${modelName} train`, r);
    console.log(`images/s: ${((batch * 1000) / r.wasm).toFixed(1)} -> ${((batch * 1000) / r.native).toFixed(1)}; tensors alive after - before: ${tf.memory().numTensors - before}`);
    optimizer.dispose();
    tf.dispose([xs, labels]);
    model.dispose();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exitCode = 1;
});
