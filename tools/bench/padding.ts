/**
 * What Torch's symmetric padding costs against TF's 'same' on one backend: the forward and both gradients of the
 * strided convs of the CIFAR and ImageNet layouts (and the stem's max pool forward), interleaved so that machine
 * load hits both alike; median ms of `--reps` runs each.
 *
 *   npx nx run-many -t build -p blocks backend   # imports the built packages
 *   npx tsx tools/bench/padding.ts [--backend wasm|cpu] [--reps 7]
 */
const args = process.argv.slice(2);
const flag = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? (args[i + 1] as string) : fallback;
};
const backendName = flag('backend', 'wasm');
const reps = Number(flag('reps', '7'));

const tf = await import('@tensorflow/tfjs-core');
await import('@tensorflow/tfjs-layers');
const { selectBackend } = await import('@wrn/backend/node');
const selection = await selectBackend(backendName as 'wasm');
console.log(`backend: ${selection.reason}`);

interface Case { label: string; x: [number, number, number, number]; k: number; co: number; pad: number }
const CASES: Case[] = [
  { label: 'CIFAR stage 2 entry, 3x3/2 16->32 on 32x32, batch 64', x: [64, 32, 32, 16], k: 3, co: 32, pad: 1 },
  { label: 'CIFAR stage 3 entry, 3x3/2 32->64 on 16x16, batch 64', x: [64, 16, 16, 32], k: 3, co: 64, pad: 1 },
  { label: 'ImageNet stem, 7x7/2 3->64 on 64x64, batch 16', x: [16, 64, 64, 3], k: 7, co: 64, pad: 3 },
];

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

async function time(run: () => tf.Tensor[]): Promise<number> {
  const start = performance.now();
  const out = run();
  await Promise.all(out.map((t) => t.data()));
  tf.dispose(out);
  return performance.now() - start;
}

for (const c of CASES) {
  const x = tf.randomNormal(c.x) as tf.Tensor4D;
  const f = tf.randomNormal([c.k, c.k, c.x[3], c.co]) as tf.Tensor4D;
  const step = (pad: 'same' | number) => () =>
    tf.tidy(() => {
      const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, pad))));
      return g([x, f]);
    });
  const times: Record<string, number[]> = { same: [], torch: [] };
  await time(step('same'));
  await time(step(c.pad));
  for (let r = 0; r < reps; r++) {
    times.same!.push(await time(step('same')));
    times.torch!.push(await time(step(c.pad)));
  }
  const same = median(times.same!);
  const torch = median(times.torch!);
  console.log(`${c.label}: forward+gradients 'same' ${same.toFixed(1)} ms, pad ${c.pad} ${torch.toFixed(1)} ms (${((torch / same - 1) * 100).toFixed(0)}%)`);
  tf.dispose([x, f]);
}

const pooled = tf.randomNormal([16, 32, 32, 64]) as tf.Tensor4D;
const poolTimes: Record<string, number[]> = { same: [], torch: [] };
for (let r = 0; r < reps + 1; r++) {
  const same = await time(() => [tf.maxPool(pooled, 3, 2, 'same')]);
  const torch = await time(() => [tf.maxPool(pooled, 3, 2, 1)]);
  if (r > 0) {
    poolTimes.same!.push(same);
    poolTimes.torch!.push(torch);
  }
}
console.log(`ImageNet stem pool, 3x3/2 on 32x32x64, batch 16: forward 'same' ${median(poolTimes.same!).toFixed(1)} ms, pad 1 ${median(poolTimes.torch!).toFixed(1)} ms`);
pooled.dispose();
console.log(`(median of ${reps}, interleaved; load average ${(await import('node:os')).loadavg().map((l) => l.toFixed(1)).join(' ')})`);
