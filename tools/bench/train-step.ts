/**
 * A few SGD steps of one model on one backend, each step's time and the process's memory after it: for models too
 * big for the full bench's warm-up, steps and inference passes (ResNeXt-29 8x64d / 16x64d on wrn-native take
 * minutes per step on 2 cores). The step is the bench's (applyForTraining, which frees each layer's output once read): @wrn/training's variableGrads and SgdOptimizer (momentum
 * 0.9, Nesterov, weight decay 5e-4), softmax cross-entropy on random inputs and labels. On wrn-native it also
 * prints the output pool's free / live / peak-live MB (packages/backend/src/native-backend/float-pool.ts).
 *
 *   npx nx run-many -t build -p blocks backend architectures training
 *   npx tsx tools/bench/train-step.ts [backend: wrn-native] [model: resnet20] [batch: 64] [steps: 3]
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';

const { selectBackend } = await import('@wrn/backend/node');
const { buildModel } = await import('@wrn/architectures');
const { SgdOptimizer, applyForTraining, variableGrads } = await import('@wrn/training');
const backend = process.argv[2] ?? 'wrn-native';
const modelName = process.argv[3] ?? 'resnet20';
const batch = Number(process.argv[4] ?? 64);
const steps = Number(process.argv[5] ?? 3);
if (!Number.isInteger(batch) || batch < 1 || !Number.isInteger(steps) || steps < 1) {
  console.error(`train-step: batch and steps must be positive integers, got ${JSON.stringify(process.argv[4])} and ${JSON.stringify(process.argv[5])}`);
  process.exit(2);
}
const selection = await selectBackend(backend as Parameters<typeof selectBackend>[0]);
console.log(`backend: ${selection.reason}`);
const poolStats = () => {
  const pool = (tf.backend() as unknown as { pool?: { stats(): Record<string, number> } }).pool;
  if (pool == null) return '';
  const mb = Object.entries(pool.stats()).map(([k, v]) => `${k} ${Math.round(v / 2 ** 20)} MB`);
  return `, pool: ${mb.join(', ')}`;
};
const model = buildModel(modelName, { seed: 1 });
const [height, width, channels] = model.inputs[0]!.shape.slice(1) as [number, number, number];
const xs = tf.randomNormal([batch, height, width, channels], 0, 1, 'float32', 1);
const labels = tf.randomUniform([batch], 0, 10, 'int32', 2);
const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
const optimizer = new SgdOptimizer(
  variables.map((variable, i) => ({ variable, name: model.trainableWeights[i]!.originalName, weightDecay: true })),
  { momentum: 0.9, nesterov: true, dampening: 0, weightDecay: 5e-4 },
);
for (let i = 0; i < steps; i++) {
  const start = performance.now();
  const { value, grads } = variableGrads(
    () => tf.losses.softmaxCrossEntropy(tf.oneHot(labels, 10), applyForTraining(model, xs)) as tf.Scalar,
    variables,
  );
  optimizer.step(variables.map((v) => grads[v.name] ?? null), 0.1);
  const loss = (await value.data())[0]!;
  tf.dispose([value, grads]);
  const ms = performance.now() - start;
  const rss = process.memoryUsage().rss / 2 ** 20;
  const maxRss = process.resourceUsage().maxRSS / 1024;
  console.log(
    `${backend} ${modelName} batch ${batch} step ${i}: ${ms.toFixed(0)} ms (${((batch * 1000) / ms).toFixed(2)} img/s), loss ${loss.toFixed(4)}, ` +
      `rss ${rss.toFixed(0)} MB, peak rss ${maxRss.toFixed(0)} MB, ${tf.memory().numTensors} tensors${poolStats()}`,
  );
}
