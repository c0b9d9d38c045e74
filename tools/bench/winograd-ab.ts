/**
 * A/B/C of @wrn/native's 3x3 stride-1 convolutions: the im2col GEMM against Winograd F(2x2,3x3) and F(4x4,3x3), per
 * conv shape of ResNet-20 (and ResNeXt-29 4x16d's groups, the same shapes per group), WRN-16-4, at batch 64, forward
 * and input gradient, in one process, interleaved (im2col, F2, F4, im2col, ...), reporting medians: on a shared,
 * loaded machine only a comparison made this way means anything. Beside them, PyTorch's conv2d on the same shapes
 * (a /usr/bin/python3 child on the same threads, run after ours: not interleaved). With --accuracy, the max error of
 * each tile relative to the output's scale against PyTorch in float64, at ci = co = 16..256.
 *
 *   npx nx run-many -t build -p native
 *   npx tsx tools/bench/winograd-ab.ts [--batch 64] [--reps 7] [--threads 2] [--shapes resnet20,wrn-16-4] [--accuracy] [--no-torch]
 *   npx tsx tools/bench/winograd-ab.ts --blocks 48,120,240   # F4 by tiles per block instead
 *   npx nx run-many -t build -p native blocks backend architectures training
 *   npx tsx tools/bench/winograd-ab.ts --models resnet20,wrn-16-4 [--reps 5]   # whole steps and predict, im2col vs the rule
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { arg, intArg, interleave, median, medians } from './ab.js';

const flag = (name: string) => process.argv.includes(`--${name}`);

const batch = intArg('batch', 64);
const reps = intArg('reps', 7);
const threads = arg('threads', '2');
const families = arg('shapes', 'resnet20,wrn-16-4').split(',');
const blocks = process.argv.includes('--blocks') ? arg('blocks', '').split(',') : undefined;
const PYTHON = '/usr/bin/python3';

// conv2d itself runs the im2col GEMM (A); the Winograd tiles are called by name (B, C). Both read once, at first use.
process.env['WRN_NATIVE_WINOGRAD'] = '0';
process.env['WRN_NATIVE_THREADS'] = threads;

/** [label, h (= w), ci, co]: the 3x3 stride-1 convolutions of each model (the stride-2 ones stay on im2col). */
const SHAPES: Record<string, [string, number, number, number][]> = {
  resnet20: [
    ['resnet20 / wrn-16-4 / resnext29 stem', 32, 3, 16],
    ['resnet20 / resnext29-4x16d group, stage 1', 32, 16, 16],
    ['resnet20 / resnext29-4x16d group, stage 2', 16, 32, 32],
    ['resnet20 / resnext29-4x16d group, stage 3', 8, 64, 64],
  ],
  'wrn-16-4': [
    ['wrn-16-4 stage 1, first', 32, 16, 64],
    ['wrn-16-4 stage 1', 32, 64, 64],
    ['wrn-16-4 stage 2', 16, 128, 128],
    ['wrn-16-4 stage 3', 8, 256, 256],
  ],
};

function randomArray(size: number, seed: number): Float32Array {
  let state = seed >>> 0 || 1;
  return Float32Array.from({ length: size }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 31 - 1;
  });
}

const TORCH_TIMING = `
import json, sys, time, statistics, torch, torch.nn.functional as F
cfg = json.load(sys.stdin)
torch.set_num_threads(cfg["threads"])
out = []
for h, ci, co in cfg["shapes"]:
    x = torch.randn(cfg["batch"], ci, h, h)
    w = torch.randn(co, ci, 3, 3)
    dy = torch.randn(cfg["batch"], co, h, h)
    def fwd():
        with torch.no_grad():
            F.conv2d(x, w, padding=1)
    def bwd():
        torch.nn.grad.conv2d_input(x.shape, w, dy, padding=1)
    def wgrad():
        torch.nn.grad.conv2d_weight(x, w.shape, dy, padding=1)
    row = []
    for fn in (fwd, bwd, wgrad):
        fn()
        times = []
        for _ in range(cfg["reps"]):
            t = time.perf_counter(); fn(); times.append((time.perf_counter() - t) * 1000)
        row.append(statistics.median(times))
    out.append(row)
json.dump(out, sys.stdout)
`;

/**
 * --models a,b: whole training steps (@wrn/training's: forward, variableGrads, SgdOptimizer) and model.predict on
 * the wasm backend with @wrn/native, WRN_NATIVE_WINOGRAD=0 (im2col) against the rule, interleaved step by step.
 */
async function modelsAb(models: string[]): Promise<void> {
  const tf = await import('@tensorflow/tfjs-core');
  await import('@tensorflow/tfjs-layers');
  const { SgdOptimizer, applyForTraining, variableGrads } = await import('@wrn/training');
  const { selectBackend } = await import('@wrn/backend/node');
  const { buildModel } = await import('@wrn/architectures');
  const selection = await selectBackend('wasm', {});
  console.log(`backend: ${selection.reason}`);
  const set = (value: string) => {
    if (value === 'rule') delete process.env['WRN_NATIVE_WINOGRAD'];
    else process.env['WRN_NATIVE_WINOGRAD'] = value;
  };
  const ab = (n: number, fn: () => void) =>
    medians(interleave([{ name: 'im2col', use: () => set('0') }, { name: 'winograd', use: () => set('rule') }], fn, { reps: n }));
  console.log(`\n### batch ${batch}, images/s (median of ${reps} steps each, interleaved)`);
  console.log('| model | train im2col | train Winograd | speed-up | infer im2col | infer Winograd | speed-up |');
  console.log('|---|---|---|---|---|---|---|');
  for (const modelName of models) {
    const model = buildModel(modelName, { seed: 1 });
    const xs = tf.randomNormal([batch, 32, 32, 3], 0, 1, 'float32', 1) as import('@tensorflow/tfjs-core').Tensor4D;
    const labels = tf.oneHot(tf.randomUniform([batch], 0, 10, 'int32', 2) as import('@tensorflow/tfjs-core').Tensor1D, 10);
    const variables = model.trainableWeights.map((w) => w.read() as import('@tensorflow/tfjs-core').Variable);
    const optimizer = new SgdOptimizer(
      variables.map((variable, i) => ({ variable, name: model.trainableWeights[i]!.originalName, weightDecay: true })),
      { momentum: 0.9, nesterov: true, dampening: 0, weightDecay: 5e-4 },
    );
    const step = () => {
      const { value, grads } = variableGrads(
        () => tf.losses.softmaxCrossEntropy(labels, applyForTraining(model, xs)) as import('@tensorflow/tfjs-core').Scalar,
        variables,
      );
      optimizer.step(variables.map((v) => grads[v.name] ?? null), 0.1);
      value.dataSync();
      tf.dispose([value, grads]);
    };
    const before = tf.memory().numTensors;
    const train = ab(reps, step);
    const predict = ab(reps, () => {
      const out = model.predict(xs) as import('@tensorflow/tfjs-core').Tensor;
      out.dataSync();
      out.dispose();
    });
    const ips = (ms: number) => ((batch * 1000) / ms).toFixed(1);
    console.log(
      `| ${modelName} | ${ips(train.im2col)} | ${ips(train.winograd)} | ${(train.im2col / train.winograd).toFixed(2)}x | ${ips(predict.im2col)} | ${ips(predict.winograd)} | ${(predict.im2col / predict.winograd).toFixed(2)}x |`,
    );
    optimizer.dispose(); // its momentum buffers, made by the first step
    if (tf.memory().numTensors !== before) console.log(`(tensors alive after - before: ${tf.memory().numTensors - before})`);
    tf.dispose([xs, labels]);
    model.dispose();
  }
}

async function main(): Promise<void> {
  if (process.argv.includes('--models')) return modelsAb(arg('models', 'resnet20').split(','));
  const { loadNativeConvKernels } = await import('@wrn/native');
  const load = loadNativeConvKernels();
  if (!load.ok) throw new Error(load.reason);
  const k = load.kernels;
  console.log(`@wrn/native: GEMM ${k.isa}, Winograd transforms ${k.winogradIsa}, ${k.threads} threads, ${load.kernels.origin} binary`);

  if (flag('accuracy')) {
    const script = fileURLToPath(new URL('../../packages/native/test/torch_winograd.py', import.meta.url));
    console.log('\n### max |error| / max |y| against PyTorch float64, n 2, 8x8, pad 1 (inputs, filter uniform in [-1, 1))');
    console.log('| ci = co | im2col y | F2 y | F4 y | im2col dx | F2 dx | F4 dx | im2col dw | F2 dw | F4 dw |');
    console.log('|---|---|---|---|---|---|---|---|---|---|');
    for (const c of [16, 32, 64, 128, 256]) {
      const g = { n: 2, h: 8, w: 8, ci: c, kh: 3, kw: 3, co: c, ho: 8, wo: 8, sh: 1, sw: 1, padTop: 1, padLeft: 1 };
      const x = randomArray(2 * 64 * c, c), f = randomArray(9 * c * c, c + 1), bias = new Float32Array(c), dy = randomArray(2 * 64 * c, c + 3);
      const torch = spawnSync(PYTHON, [script], { input: JSON.stringify([{ ...g, x: [...x], f: [...f], bias: [...bias], dy: [...dy] }]), maxBuffer: 1 << 28, encoding: 'utf8' });
      if (torch.status !== 0) throw new Error(`${script}: ${torch.stderr}`);
      const [expected] = JSON.parse(torch.stdout) as { y: number[]; dx: number[]; dw: number[] }[];
      const err = (a: Float32Array, e: number[]) => {
        let scale = 0, worst = 0;
        e.forEach((v, i) => ((scale = Math.max(scale, Math.abs(v))), (worst = Math.max(worst, Math.abs(a[i]! - v)))));
        return (worst / scale).toExponential(1);
      };
      const ys = [0, 2, 4].map((tile) => {
        const y = new Float32Array(2 * 64 * c);
        if (tile === 0) k.conv2d(g, x, f, y);
        else k.winogradConv2d(g, x, f, y, null, false, tile as 2 | 4);
        return err(y, expected!.y);
      });
      const dxs = [0, 2, 4].map((tile) => {
        const dx = new Float32Array(x.length);
        if (tile === 0) k.conv2dBackpropInput(g, dy, f, dx);
        else k.winogradConv2dBackpropInput(g, dy, f, dx, tile as 2 | 4);
        return err(dx, expected!.dx);
      });
      const dws = [0, 2, 4].map((tile) => {
        const dw = new Float32Array(f.length);
        if (tile === 0) k.conv2dBackpropFilter(g, x, dy, dw);
        else k.winogradConv2dBackpropFilter(g, x, dy, dw, tile as 2 | 4);
        return err(dw, expected!.dw);
      });
      console.log(`| ${c} | ${ys.join(' | ')} | ${dxs.join(' | ')} | ${dws.join(' | ')} |`);
    }
  }

  const shapes = families.flatMap((f) => SHAPES[f] ?? []);
  let torchMs: number[][] | undefined;
  const results: { label: string; ms: number[][] }[] = [];
  for (const [label, h, ci, co] of shapes) {
    const g = { n: batch, h, w: h, ci, kh: 3, kw: 3, co, ho: h, wo: h, sh: 1, sw: 1, padTop: 1, padLeft: 1 };
    const x = randomArray(batch * h * h * ci, 1), f = randomArray(9 * ci * co, 2), dy = randomArray(batch * h * h * co, 3);
    const y = new Float32Array(batch * h * h * co), dx = new Float32Array(x.length), dw = new Float32Array(f.length);
    // With --blocks a,b,c: F4 at each block size (WRN_NATIVE_WINOGRAD_BLOCK, read per call) instead of im2col, F2, F4.
    const withBlock = (tiles: string, fn: () => void) => () => {
      process.env['WRN_NATIVE_WINOGRAD_BLOCK'] = tiles;
      fn();
    };
    const variants = blocks
      ? blocks.map((b) => [
          withBlock(b, () => k.winogradConv2d(g, x, f, y, null, false, 4)),
          withBlock(b, () => k.winogradConv2dBackpropInput(g, dy, f, dx, 4)),
          withBlock(b, () => k.winogradConv2dBackpropFilter(g, x, dy, dw, 4)),
        ])
      : [
          [() => k.conv2d(g, x, f, y), () => k.conv2dBackpropInput(g, dy, f, dx), () => k.conv2dBackpropFilter(g, x, dy, dw)],
          [() => k.winogradConv2d(g, x, f, y, null, false, 2), () => k.winogradConv2dBackpropInput(g, dy, f, dx, 2), () => k.winogradConv2dBackpropFilter(g, x, dy, dw, 2)],
          [() => k.winogradConv2d(g, x, f, y, null, false, 4), () => k.winogradConv2dBackpropInput(g, dy, f, dx, 4), () => k.winogradConv2dBackpropFilter(g, x, dy, dw, 4)],
        ];
    const times = variants.map(() => [[] as number[], [] as number[], [] as number[]]);
    for (const v of variants) v.forEach((fn) => fn()); // warm-up: buffers, pages
    for (let r = 0; r < reps; r++) {
      variants.forEach((v, i) =>
        v.forEach((fn, dir) => {
          const start = performance.now();
          fn();
          times[i]![dir]!.push(performance.now() - start);
        }),
      );
    }
    results.push({ label: `${label}: ${h}x${h} ${ci}->${co}`, ms: times.map((t) => t.map(median)) });
  }
  if (blocks) {
    console.log(`\n### F4, batch ${batch}, ms by tiles per block (median of ${reps}, interleaved)`);
    console.log(`| shape | ${['forward', 'input grad', 'filter grad'].map((pass) => blocks.map((b) => `${pass} ${b}`).join(' | ')).join(' | ')} |`);
    console.log(`|---|${blocks.map(() => '---|---|---|').join('')}`);
    for (const { label, ms } of results) console.log(`| ${label} | ${[0, 1, 2].map((dir) => ms.map((m) => m[dir]!.toFixed(1)).join(' | ')).join(' | ')} |`);
    return;
  }
  if (!flag('no-torch')) {
    const torch = spawnSync(PYTHON, ['-c', TORCH_TIMING], {
      input: JSON.stringify({ batch, reps, threads: Number(threads), shapes: shapes.map(([, h, ci, co]) => [h, ci, co]) }),
      encoding: 'utf8',
    });
    if (torch.status === 0) torchMs = JSON.parse(torch.stdout) as number[][];
    else console.log(`PyTorch timing failed: ${torch.stderr.split('\n').slice(-2).join(' ')}`);
  }
  console.log(`\n### batch ${batch}, pad 1, ms (median of ${reps}, ours interleaved; PyTorch ${torchMs ? 'in a child after' : 'not run'})`);
  console.log('| shape | forward im2col | F2 | F4 | PyTorch | input grad im2col | F2 | F4 | PyTorch | filter grad im2col | F2 | F4 | PyTorch |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  results.forEach(({ label, ms }, i) => {
    const cell = (dir: number) => ms.map((m) => m[dir]!.toFixed(1)).join(' | ') + ` | ${torchMs ? torchMs[i]![dir]!.toFixed(1) : '-'}`;
    console.log(`| ${label} | ${cell(0)} | ${cell(1)} | ${cell(2)} |`);
  });
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exitCode = 1;
});
