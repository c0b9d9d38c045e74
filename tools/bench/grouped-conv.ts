/**
 * Grouped convolution on the pure-JS cpu, the wasm and the webgpu backends: which formulation of @wrn/blocks'
 * `groupedConv2d` is fastest, forward and forward+backward (training), on ResNeXt shapes.
 * With --reference the masked dense conv is timed too, for reference only (not an allowed implementation: it stores
 * and multiplies G times the weights).
 *
 *   npx nx run-many -t build -p blocks backend architectures && npx tsx tools/bench/grouped-conv.ts [--backend cpu|wasm|wasm-native|webgpu|both] [--reps 3] [--quick] [--reference]
 *     [--case <label substring>] [--methods split,depthwise,im2col,native] [--resnext29]
 *
 * `wasm-native` is wasm as selectBackend('wasm') sets it up: convolutions on @wrn/native, and with them the `native`
 * method (one WrnGroupedConv2D kernel). `--resnext29` times ResNeXt-29 4x16d's own grouped convs at batch 64
 * (stage 1, and the strided entries of stages 2 and 3) instead of the reduced cases; the methods are interleaved
 * per case in one process, so a loaded machine slows them alike.
 *
 * Prints a markdown table (median milliseconds per call over --reps runs after one warm-up). webgpu goes through
 * @wrn/backend's selectBackend('webgpu') (Dawn in Node; any adapter, SwiftShader's too: VK_ICD_FILENAMES) and reads
 * results back asynchronously, so each time includes the GPU's work.
 */
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { GROUPED_CONV_METHODS, groupedConv2d, type GroupedConvMethod } from '@wrn/blocks';

interface Case {
  label: string;
  batch: number;
  size: number;
  channels: number;
  groups: number;
  strides: number;
}

// The 3x3 grouped convs of the registry's ResNeXts: their cardinality G and group width d, at reduced spatial size
// and batch so the pure-JS cpu backend finishes (it is ~100x slower than native; the ratios are what matter).
const CASES: Case[] = [
  { label: 'resnext29-8x64d stage1, 16x16', batch: 1, size: 16, channels: 512, groups: 8, strides: 1 },
  { label: 'resnext29-8x64d / 4 (d=16)', batch: 2, size: 16, channels: 128, groups: 8, strides: 1 },
  { label: 'resnext50-32x4d stage1, 28x28', batch: 2, size: 28, channels: 128, groups: 32, strides: 1 },
  { label: 'resnext50-32x4d stage3 entry, stride 2', batch: 2, size: 28, channels: 512, groups: 32, strides: 2 },
];
// ResNeXt-29 4x16d at the bench's batch 64: widths 4*16, 4*32, 4*64 (the entries of stages 2, 3 stride 2).
const RESNEXT29_CASES: Case[] = [
  { label: 'resnext29-4x16d stage1', batch: 64, size: 32, channels: 64, groups: 4, strides: 1 },
  { label: 'resnext29-4x16d stage2 entry', batch: 64, size: 32, channels: 128, groups: 4, strides: 2 },
  { label: 'resnext29-4x16d stage2', batch: 64, size: 16, channels: 128, groups: 4, strides: 1 },
  { label: 'resnext29-4x16d stage3 entry', batch: 64, size: 16, channels: 256, groups: 4, strides: 2 },
];
const QUICK_CASES: Case[] = [
  { label: 'small, 8 groups', batch: 2, size: 16, channels: 64, groups: 8, strides: 1 },
  { label: 'small, 32 groups, stride 2', batch: 2, size: 16, channels: 128, groups: 32, strides: 2 },
];

type Formulation = GroupedConvMethod | 'masked-dense (reference)';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? (process.argv[i + 1] as string) : fallback;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

/** Block-diagonal dense kernel [3,3,Cin,Cout]: zero outside each group's block. */
function maskedDenseKernel(kernel: tf.Tensor4D, groups: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [kh, kw, a, out] = kernel.shape;
    const b = out / groups;
    const blocks = tf.split(kernel, groups, 3).map((k, g) =>
      tf.pad(k, [[0, 0], [0, 0], [g * a, (groups - 1 - g) * a], [0, 0]]));
    return tf.reshape(tf.concat(blocks, 3), [kh, kw, a * groups, b * groups]) as tf.Tensor4D;
  });
}

function run(formulation: Formulation, x: tf.Tensor4D, kernel: tf.Tensor4D, c: Case): tf.Tensor4D {
  if (formulation === 'masked-dense (reference)') return tf.conv2d(x, maskedDenseKernel(kernel, c.groups), c.strides, 'same');
  return groupedConv2d(x, kernel, { strides: c.strides, padding: 'same', groups: c.groups, method: formulation });
}

async function time(fn: () => Promise<void>, reps: number): Promise<number> {
  await fn();
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    const start = performance.now();
    await fn();
    times.push(performance.now() - start);
  }
  return median(times);
}

/** Runs `make` in a tidy, then reads every result back asynchronously (webgpu cannot read synchronously in Node). */
async function readAll(make: () => tf.Tensor | tf.Tensor[]): Promise<void> {
  const out = tf.tidy(make);
  const list = Array.isArray(out) ? out : [out];
  await Promise.all(list.map((t) => t.data()));
  tf.dispose(list);
}

async function main(): Promise<void> {
  const backends = arg('backend', 'both') === 'both' ? ['cpu', 'wasm'] : [arg('backend', 'cpu')];
  const reps = Number(arg('reps', '3'));
  const only = arg('case', '');
  const all = process.argv.includes('--resnext29') ? RESNEXT29_CASES : process.argv.includes('--quick') ? QUICK_CASES : CASES;
  const cases = all.filter((c) => c.label.includes(only));
  // The masked dense conv does G times the work; time it only on request (--reference).
  const formulations: Formulation[] = process.argv.includes('--reference')
    ? [...GROUPED_CONV_METHODS, 'masked-dense (reference)']
    : [...GROUPED_CONV_METHODS];
  const methods = arg('methods', '');
  if (methods !== '') formulations.splice(0, formulations.length, ...(methods.split(',') as Formulation[]));
  console.log('| backend | case | input | formulation | forward ms | forward+backward ms |');
  console.log('|---|---|---|---|---:|---:|');
  for (const backend of backends) {
    if (backend === 'webgpu' || backend === 'wasm-native') {
      const backendModule = await import('@wrn/backend/node');
      console.error((await backendModule.selectBackend(backend === 'webgpu' ? 'webgpu' : 'wasm')).reason);
    } else if (!(await tf.setBackend(backend))) throw new Error(`backend '${backend}' did not initialise`);
    await tf.ready();
    if (backend === 'wasm') {
      // wasm lacks conv gradient kernels; @wrn/backend provides them (built dist needed). Without it, backward cells show the error.
      const backend = await import('@wrn/backend').catch(() => null);
      const registered = backend?.registerWasmTrainingKernels();
      console.error(registered ? `wasm: registered ${registered.join(', ')} from @wrn/backend` : 'wasm: @wrn/backend not available');
    }
    for (const c of cases) {
      const x = tf.randomNormal([c.batch, c.size, c.size, c.channels], 0, 1, 'float32', 1) as tf.Tensor4D;
      const kernel = tf.randomNormal([3, 3, c.channels / c.groups, c.channels], 0, 0.1, 'float32', 2) as tf.Tensor4D;
      for (const formulation of formulations) {
        const forward = await time(() => readAll(() => run(formulation, x, kernel, c)), reps);
        let backward = 'n/a';
        try {
          const gradFn = tf.grads((a: tf.Tensor, k: tf.Tensor) => tf.sum(run(formulation, a as tf.Tensor4D, k as tf.Tensor4D, c)));
          backward = (await time(() => readAll(() => gradFn([x, kernel])), reps)).toFixed(1);
        } catch (error) {
          backward = `error: ${(error as Error).message.split('\n')[0]}`;
        }
        console.log(`| ${backend} | ${c.label} | ${c.batch}x${c.size}x${c.size}x${c.channels}, G=${c.groups}, s=${c.strides} | ${formulation} | ${forward.toFixed(1)} | ${backward} |`);
      }
      x.dispose();
      kernel.dispose();
    }
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
