/**
 * A/B of @wrn/native's inference kernels on the wasm backend (@wrn/backend's wasm/native-inference.ts: BatchNorm
 * with moving statistics, Relu, same-shape Add, the option-A shortcut) against what ran before them (BatchNorm as a
 * 1x1 depthwise conv, wasm's XNNPACK Relu and Add, ZeroPadShortcut's Slice/Slice/PadV2), in one process,
 * interleaved (A, B, A, B, ...), reporting medians: on a shared, loaded machine only a comparison made this way
 * means anything. Per kernel on a ResNet-20-sized activation, then whole model.predict calls of each model, at
 * predict's default batchSize (32: a batch of 64 runs as two) and with batchSize = the batch.
 *
 *   npx nx run-many -t build -p native blocks backend architectures
 *   npx tsx tools/bench/native-inference-ab.ts [--models resnet20,wrn-16-4] [--batch 64] [--reps 5] [--kernel-reps 30] [--train]
 *   --train: also a training step (forward, variableGrads, SGD), whose forward runs the same BatchNorm/Relu/Add kernels
 *   WRN_NATIVE_INFERENCE_GRAIN=N   elements per thread's share (the addon's default: 4194304)
 *   --fused-bn-relu: instead, each model built with every BN-ReLU pair as one layer (B, the default) against the
 *   plan's layers one for one (A: separate BatchNorm and ReLU layers), same weights, the native kernels in both
 *   --grain N: instead, the native kernels at the addon's grain (A) against a grain of N elements (B, set with
 *   setInferenceGrain in the same process): whether a second thread pays at ResNet-20's sizes (0.26-1M elements)
 *   --env NAME=VALUE[,...]: instead, the native kernels with these addon switches set (A, e.g. WRN_NATIVE_DIRECT=0,
 *   WRN_NATIVE_WINOGRAD_BLOCK=180: the convolutions before the direct kernel and balanced blocks) and without (B)
 *   --fold: instead, each model as built (A: BN + ReLU and add + ReLU fused) against @wrn/blocks' foldBatchNorm of
 *   it (B: each BatchNorm in its conv, as `wrn predict` runs it), same weights, the native kernels in both
 */
import * as tf from '@tensorflow/tfjs-core';
// Static, as in the other benches: one dynamic import makes nx count @wrn/blocks lazy-loaded and fail their static ones.
import { buildLayersModel, foldBatchNorm, ZeroPadShortcut } from '@wrn/blocks';
import { arg, intArg, interleave, median, medians } from './ab.js';

const models = arg('models', 'resnet20,wrn-16-4').split(',');
const batch = intArg('batch', 64);
const reps = intArg('reps', 5);
const kernelReps = intArg('kernel-reps', 30);
const withTraining = process.argv.includes('--train');
const fusedAB = process.argv.includes('--fused-bn-relu');
const foldAB = process.argv.includes('--fold');
const grainB = process.argv.includes('--grain') ? Number(arg('grain', '262144')) : undefined;
/** --env NAME=VALUE[,NAME=VALUE]: instead, A with these per-call switches of the addon set, B without them. */
const envA = arg('env', '').split(',').filter(Boolean).map((pair) => {
  const [name, value] = pair.split('=');
  if (!name || value === undefined) throw new Error(`--env ${pair}: expected NAME=VALUE, e.g. WRN_NATIVE_DIRECT=0`);
  return [name, value] as const;
});

async function main(): Promise<void> {
  await import('@tensorflow/tfjs-layers');
  const { registerWasmTrainingKernels, wasmNativeConvKernels } = await import('@wrn/backend');
  const { selectBackend } = await import('@wrn/backend/node');
  const { buildModel } = await import('@wrn/architectures');
  const selection = await selectBackend('wasm', {});
  console.log(`backend: ${selection.reason}`);
  const native = wasmNativeConvKernels();
  if (native == null) throw new Error('@wrn/native is not in use on the wasm backend: nothing to compare');
  // With --grain, "before" is the native kernels at the addon's grain and "native" the same kernels at grainB.
  const grainA = grainB == null ? undefined : native.setInferenceGrain(grainB);
  const use = (on: boolean) => {
    if (envA.length > 0) {
      for (const [name, value] of envA) {
        if (on) delete process.env[name];
        else process.env[name] = value;
      }
      registerWasmTrainingKernels({ native, nativeInference: true });
    } else if (grainB == null) registerWasmTrainingKernels({ native, nativeInference: on });
    else native.setInferenceGrain(on ? grainB : grainA!);
  };
  if (grainB != null) console.log(`A: inference grain ${grainA} elements, B: ${grainB} (columns "before" = A, "native" = B)`);

  /** Times `fn` alternately with the native inference kernels off (A) and on (B): median ms of each. */
  const ab = (n: number, fn: () => void): { before: number; native: number } =>
    medians(interleave([{ name: 'before', use: () => use(false) }, { name: 'native', use: () => use(true) }], fn, { reps: n }));

  if (fusedAB || foldAB) {
    const { planModel, resolveModelConfig } = await import('@wrn/architectures');
    use(true);
    for (const modelName of models) {
      const graph = planModel(resolveModelConfig(modelName, { seed: 1 }));
      let fused = buildLayersModel(graph, modelName);
      let separate = fused;
      if (foldAB) {
        // BatchNorm statistics and affine parameters away from 0 and 1, as after training.
        tf.tidy(() => separate.setWeights(separate.getWeights().map((w, i) => (w.rank === 1 ? tf.randomUniform(w.shape, 0.5, 1.5, 'float32', i) : w))));
        fused = (await foldBatchNorm(separate)).model;
      } else {
        separate = buildLayersModel(graph, modelName, { fuseBatchNormRelu: false });
        separate.setWeights(fused.getWeights());
      }
      const [labelA, labelB] = foldAB ? ['as built', 'BN folded'] : ['separate BN, ReLU', 'fused BN+ReLU'];
      const xs = tf.randomNormal([batch, 32, 32, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
      const times: Record<'separate' | 'fused', number[]> = { separate: [], fused: [] };
      const outputs: Record<'separate' | 'fused', Float32Array | undefined> = { separate: undefined, fused: undefined };
      for (let i = 0; i <= reps; i++) {
        for (const [key, model] of [['separate', separate], ['fused', fused]] as const) {
          const start = performance.now();
          const out = model.predict(xs, { batchSize: batch }) as tf.Tensor;
          const values = out.dataSync() as Float32Array;
          if (i > 0) times[key].push(performance.now() - start); // the first round warms up
          outputs[key] = values;
          out.dispose();
        }
      }
      const [a, b] = [median(times.separate), median(times.fused)];
      let worst = 0;
      outputs.fused!.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - outputs.separate![i]!))));
      console.log(`\n### ${modelName} predict, batch ${batch}: layers ${separate.layers.length} -> ${fused.layers.length} (ms, median of ${reps}, interleaved)`);
      console.log(`| ${labelA} | ${labelB} | speed-up | max abs difference of logits |\n|---|---|---|---|\n| ${a.toFixed(2)} | ${b.toFixed(2)} | ${(a / b).toFixed(2)}x | ${worst.toExponential(1)} |`);
      console.log(`images/s: ${((batch * 1000) / a).toFixed(1)} -> ${((batch * 1000) / b).toFixed(1)}`);
      tf.dispose(xs);
      fused.dispose();
      separate.dispose();
    }
    return;
  }

  const row = (name: string, r: { before: number; native: number }) =>
    console.log(`| ${name} | ${r.before.toFixed(2)} | ${r.native.toFixed(2)} | ${(r.before / r.native).toFixed(2)}x |`);

  console.log(`\n### kernels on [${batch},32,32,16] (ms, median of ${kernelReps}, interleaved; ${native.threads} native threads)`);
  console.log('| kernel | before | native | native speed-up |');
  console.log('|---|---|---|---|');
  const shape = [batch, 32, 32, 16];
  const x = tf.randomNormal(shape, 0, 1, 'float32', 1);
  const y = tf.randomNormal(shape, 0, 1, 'float32', 2);
  const mean = tf.randomNormal([16], 0, 1, 'float32', 3);
  const variance = tf.randomUniform([16], 0.5, 2, 'float32', 4);
  const gamma = tf.randomNormal([16], 1, 0.1, 'float32', 5);
  const beta = tf.randomNormal([16], 0, 0.1, 'float32', 6);
  const shortcut = new ZeroPadShortcut({ strides: 2, outChannels: 32 });
  const timed = (f: () => tf.Tensor | tf.Tensor[]) => () => tf.dispose(f());
  row('BatchNorm (inference)', ab(kernelReps, timed(() => tf.batchNorm(x, mean, variance, beta, gamma, 1e-5))));
  row('Relu', ab(kernelReps, timed(() => tf.relu(x))));
  row('Add (same shape)', ab(kernelReps, timed(() => tf.add(x, y))));
  row('ZeroPadShortcut s2 16->32 (layer apply)', ab(kernelReps, timed(() => shortcut.apply(x) as tf.Tensor)));
  if (grainB != null) {
    // The other two stages' sizes: [64,16,16,32] and [64,8,8,64].
    for (const [size, channels] of [[16, 32], [8, 64]] as const) {
      const xs = tf.randomNormal([batch, size, size, channels], 0, 1, 'float32', 7);
      const c = tf.randomUniform([channels], 0.5, 2, 'float32', 8);
      row(`BatchNorm [${batch},${size},${size},${channels}]`, ab(kernelReps, timed(() => tf.batchNorm(xs, c, c, c, c, 1e-5))));
      row(`Relu [${batch},${size},${size},${channels}]`, ab(kernelReps, timed(() => tf.relu(xs))));
      row(`Add [${batch},${size},${size},${channels}]`, ab(kernelReps, timed(() => tf.add(xs, xs))));
      tf.dispose([xs, c]);
    }
  }
  tf.dispose([x, y, mean, variance, gamma, beta]);

  for (const modelName of models) {
    const model = buildModel(modelName, { seed: 1 });
    const xs = tf.randomNormal([batch, 32, 32, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    console.log(`\n### ${modelName} model.predict, batch ${batch} (ms, median of ${reps}, interleaved)`);
    console.log('| predict | before | native inference kernels | native speed-up |');
    console.log('|---|---|---|---|');
    for (const batchSize of [undefined, batch]) {
      const predict = () => {
        const out = model.predict(xs, batchSize == null ? {} : { batchSize }) as tf.Tensor;
        out.dataSync();
        out.dispose();
      };
      const r = ab(reps, predict);
      row(`${modelName} predict (batchSize ${batchSize ?? 'default 32'})`, r);
      console.log(`images/s: ${((batch * 1000) / r.before).toFixed(1)} -> ${((batch * 1000) / r.native).toFixed(1)}`);
    }
    if (withTraining) {
      const { SgdOptimizer, variableGrads } = await import('@wrn/training');
      const labels = tf.tidy(() => tf.oneHot(tf.randomUniform([batch], 0, 10, 'int32', 2) as tf.Tensor1D, 10));
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
      const r = ab(reps, step);
      row(`${modelName} training step`, r);
      console.log(`images/s: ${((batch * 1000) / r.before).toFixed(1)} -> ${((batch * 1000) / r.native).toFixed(1)}`);
      optimizer.dispose();
      labels.dispose();
    }
    console.log(`tensors alive after - before: ${tf.memory().numTensors - before}`);
    tf.dispose(xs);
    model.dispose();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exitCode = 1;
});
