/**
 * A/B of the fused training-step kernels on the wasm backend with @wrn/native: BatchNorm in training mode as one
 * kernel forward and one backward (@wrn/blocks' BATCH_NORM_TRAINING_KERNEL) and the SGD update as one in-place
 * kernel per parameter (@wrn/training's SGD_UPDATE_KERNEL), each against the path it replaces (tf.moments +
 * tf.batchNorm with the native BatchNorm gradient; SgdOptimizer's tf ops), in one process, interleaved, medians:
 * on a shared, loaded machine only a comparison made this way means anything.
 *
 *   npx nx run-many -t build -p native blocks backend architectures training
 *   npx tsx tools/bench/training-step-ab.ts [--models resnet20,wrn-16-4] [--batch 64] [--reps 5]
 *
 * Prints per model the median step time with neither, with each alone and with both, and the kernel calls per
 * step of each (tf.profile).
 */
import * as tf from '@tensorflow/tfjs-core';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? (process.argv[i + 1] as string) : fallback;
}

const models = arg('models', 'resnet20,wrn-16-4').split(',');
const batch = Number(arg('batch', '64'));
const reps = Number(arg('reps', '5'));

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

async function main(): Promise<void> {
  await import('@tensorflow/tfjs-layers');
  const { SGD_UPDATE_KERNEL, SgdOptimizer, variableGrads } = await import('@wrn/training');
  const { BATCH_NORM_TRAINING_KERNEL } = await import('@wrn/blocks');
  const { selectBackend } = await import('@wrn/backend/node');
  const { buildModel } = await import('@wrn/architectures');
  const selection = await selectBackend('wasm', {});
  console.log(`backend: ${selection.reason}`);
  const fused = { bn: tf.getKernel(BATCH_NORM_TRAINING_KERNEL, 'wasm'), sgd: tf.getKernel(SGD_UPDATE_KERNEL, 'wasm') };
  if (fused.bn == null || fused.sgd == null) throw new Error('the fused kernels are not registered for wasm (@wrn/native not in use?)');
  const configs = { bn: fused.bn, sgd: fused.sgd };
  // Registering or removing a kernel is all it takes: the layer and the optimiser look them up per call.
  const use = (which: { bn: boolean; sgd: boolean }) => {
    for (const key of ['bn', 'sgd'] as const) {
      const config = configs[key];
      const registered = tf.getKernel(config.kernelName, 'wasm') != null;
      if (which[key] && !registered) tf.registerKernel(config);
      if (!which[key] && registered) tf.unregisterKernel(config.kernelName, 'wasm');
    }
  };
  const variants = [
    { name: 'neither', bn: false, sgd: false },
    { name: 'BN kernel', bn: true, sgd: false },
    { name: 'SGD kernel', bn: false, sgd: true },
    { name: 'both', bn: true, sgd: true },
  ];

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
      const { value, grads } = variableGrads(() => tf.losses.softmaxCrossEntropy(labels, model.apply(xs, { training: true }) as tf.Tensor) as tf.Scalar, variables);
      optimizer.step(
        variables.map((v) => grads[v.name] ?? null),
        0.1,
      );
      value.dataSync();
      tf.dispose([value, grads]);
    };
    const times = new Map<string, number[]>(variants.map((v) => [v.name, []]));
    const calls = new Map<string, number>();
    for (const v of variants) {
      use(v);
      step(); // warm-up: first-call set-up, heap growth
      const info = await tf.profile(step);
      calls.set(v.name, info.kernels.length);
    }
    const before = tf.memory().numTensors;
    for (let i = 0; i < reps; i++) {
      for (const v of variants) {
        use(v);
        const start = performance.now();
        step();
        times.get(v.name)!.push(performance.now() - start);
      }
    }
    console.log(`\n### ${modelName} training step, batch ${batch} (ms, median of ${reps}, interleaved)`);
    console.log('| variant | ms per step | images/s | kernel calls per step |');
    console.log('|---|---|---|---|');
    for (const v of variants) {
      const ms = median(times.get(v.name)!);
      console.log(`| ${v.name} | ${ms.toFixed(1)} | ${((batch * 1000) / ms).toFixed(1)} | ${calls.get(v.name)} |`);
    }
    console.log(`tensors alive after - before: ${tf.memory().numTensors - before}`);
    use({ bn: true, sgd: true });
    optimizer.dispose();
    tf.dispose([xs, labels]);
    model.dispose();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exitCode = 1;
});
