/**
 * A/B of the grouped-conv methods inside a whole ResNeXt on wasm with @wrn/native: training steps (@wrn/training's
 * variableGrads + SGD) and model.predict, the methods interleaved rep by rep in one process, so a loaded machine
 * slows them alike; medians of --reps.
 *
 *   npx nx run-many -t build -p blocks backend architectures training
 *   npx tsx tools/bench/grouped-method-ab.ts [--model resnext29-4x16d] [--batch 32] [--reps 3] [--methods split,native]
 */
import * as tf from '@tensorflow/tfjs-core';
import { GROUPED_CONV_METHODS, registerGroupedConvMethodResolver } from '@wrn/blocks';
import { arg, intArg, interleave, median } from './ab.js';


async function main(): Promise<void> {
  await import('@tensorflow/tfjs-layers');
  const { SgdOptimizer, applyForTraining, variableGrads } = await import('@wrn/training');
  const { selectBackend } = await import('@wrn/backend/node');
  const { buildModel } = await import('@wrn/architectures');
  const modelName = arg('model', 'resnext29-4x16d');
  const batch = intArg('batch', 32);
  const reps = intArg('reps', 3);
  const methods = arg('methods', 'split,native').split(',');
  for (const m of methods) if (!GROUPED_CONV_METHODS.includes(m as never)) throw new Error(`--methods: '${m}' is not one of ${GROUPED_CONV_METHODS.join(', ')}`);
  const selection = await selectBackend('wasm');
  console.log(`${modelName}, batch ${batch}, ${reps} reps interleaved; ${selection.reason}`);

  const model = buildModel(modelName, { seed: 1 });
  const xs = tf.randomNormal([batch, 32, 32, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
  const labels = tf.oneHot(tf.randomUniform([batch], 0, 10, 'int32', 2), 10);
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const optimizer = new SgdOptimizer(
    variables.map((variable, i) => ({ variable, name: model.trainableWeights[i]!.originalName, weightDecay: true })),
    { momentum: 0.9, nesterov: true, dampening: 0, weightDecay: 5e-4 },
  );
  const train = () => {
    const { value, grads } = variableGrads(() => tf.losses.softmaxCrossEntropy(labels, applyForTraining(model, xs)) as tf.Scalar, variables);
    optimizer.step(variables.map((v) => grads[v.name] ?? null), 0.01);
    value.dataSync();
    tf.dispose([value, grads]);
  };
  const infer = () => {
    const out = model.predict(xs) as tf.Tensor;
    out.dataSync();
    out.dispose();
  };
  // Each rep runs a training step then a predict under each method in turn (the harness times the pair; the
  // halves are timed inside); the warm-up round is every method's kernels' first calls and heap growth.
  const halves = new Map(methods.map((m) => [m, { train: [] as number[], infer: [] as number[] }]));
  let remove = () => {};
  const variants = methods.map((method) => ({ name: method, use: () => { remove(); remove = registerGroupedConvMethodResolver('wasm', () => method as never); } }));
  let tensorsAfterWarmup = 0;
  let round = 0;
  interleave(variants, (method) => {
    if (round++ === methods.length) tensorsAfterWarmup = tf.memory().numTensors;
    const trainStart = performance.now();
    train();
    const inferStart = performance.now();
    infer();
    const h = halves.get(method)!;
    h.train.push(inferStart - trainStart);
    h.infer.push(performance.now() - inferStart);
  }, { reps });
  remove();
  // The harness dropped the warm-up round's times; so do the halves.
  const times = new Map([...halves].map(([m, t]) => [m, { train: t.train.slice(1), infer: t.infer.slice(1) }]));
  console.log('| method | train img/s (median) | infer img/s (median) | train ms per rep | infer ms per rep |');
  console.log('|---|---:|---:|---|---|');
  for (const [method, t] of times) {
    console.log(
      `| ${method} | ${((batch * 1000) / median(t.train)).toFixed(1)} | ${((batch * 1000) / median(t.infer)).toFixed(1)} | ` +
        `${t.train.map((v) => v.toFixed(0)).join(', ')} | ${t.infer.map((v) => v.toFixed(0)).join(', ')} |`,
    );
  }
  const growth = tf.memory().numTensors - tensorsAfterWarmup;
  console.log(`tensors alive: ${tf.memory().numTensors} (${growth === 0 ? 'flat across reps' : `grew by ${growth} over the reps`}), max RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exitCode = 1;
});
