/**
 * GFLOP/s (2 x multiply-adds / time) of @wrn/native's three convolutions (forward, input gradient, filter gradient)
 * per dense conv shape of ResNet-20, WRN-16-4 and ResNeXt-29 4x16d (3x3 and 1x1, stride 1 and 2; ResNeXt's grouped
 * 3x3s are tools/bench/grouped-conv.ts's) at batch 64, against PyTorch's F.conv2d forward and autograd backward
 * timed in the same run (a /usr/bin/python3 child, tools/bench/torch_conv_bench.py, with as many threads as ours),
 * shape by shape, so that both see the same load.
 *
 *   npx tsx tools/bench/conv-gflops.ts [--batch 64] [--reps 5] [--models resnet20,wrn-16-4,resnext29-4x16d]
 *     [--addon path/to/wrn_native.node] [--isa avx512,avx2] [--baseline path/to/other/wrn_native.node] [--no-torch]
 *     [--env NAME=VALUE]
 *
 * Each variant is a copy of an addon binary loaded (dlopen'd) into this process with WRN_NATIVE_ISA set while it
 * loads (the ISA is chosen once, at load): `--isa avx512,avx2` compares the micro-kernels of one build, `--baseline`
 * another build, e.g. the one before a change (`git show REV:packages/native/prebuilds/linux-x64/wrn_native.node >
 * /tmp/before.node`), `--env NAME=VALUE` the addon once more with a switch it reads at each call set around that
 * variant's calls (WRN_NATIVE_DIRECT=0, WRN_NATIVE_WINOGRAD=2). Variants run interleaved (A, B, A, B, ...), medians of --reps after one warm-up: on a shared,
 * loaded machine only such comparisons mean anything.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const NATIVE = join(HERE, '..', '..', 'packages', 'native');

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? (process.argv[i + 1] as string) : fallback;
}

const batch = Number(arg('batch', '64'));
const reps = Number(arg('reps', '5'));
const models = arg('models', 'resnet20,wrn-16-4,resnext29-4x16d').split(',');
const defaultAddon = [join(NATIVE, 'build', 'Release', 'wrn_native.node'), join(NATIVE, 'prebuilds', `${process.platform}-${process.arch}`, 'wrn_native.node')].find(existsSync);
const addonPath = arg('addon', defaultAddon ?? '');
const isas = arg('isa', '').split(',').filter(Boolean);
const baseline = arg('baseline', '');
const withTorch = !process.argv.includes('--no-torch');
const variantEnv = arg('env', '');

/** [label, h (input size), ci, co, k, stride]: the dense convs, each shape once per model. */
type Shape = [label: string, size: number, ci: number, co: number, k: number, stride: number];
const SHAPES: Record<string, Shape[]> = {
  resnet20: [
    ['stem 3->16', 32, 3, 16, 3, 1],
    ['32x32 16->16', 32, 16, 16, 3, 1],
    ['32->16 16->32 s2', 32, 16, 32, 3, 2],
    ['16x16 32->32', 16, 32, 32, 3, 1],
    ['16->8 32->64 s2', 16, 32, 64, 3, 2],
    ['8x8 64->64', 8, 64, 64, 3, 1],
  ],
  'wrn-16-4': [
    ['32x32 16->64', 32, 16, 64, 3, 1],
    ['32x32 16->64 1x1', 32, 16, 64, 1, 1],
    ['32x32 64->64', 32, 64, 64, 3, 1],
    ['32->16 64->128 s2', 32, 64, 128, 3, 2],
    ['32->16 64->128 1x1 s2', 32, 64, 128, 1, 2],
    ['16x16 128->128', 16, 128, 128, 3, 1],
    ['16->8 128->256 s2', 16, 128, 256, 3, 2],
    ['16->8 128->256 1x1 s2', 16, 128, 256, 1, 2],
    ['8x8 256->256', 8, 256, 256, 3, 1],
  ],
  'resnext29-4x16d': [
    ['stem 3->64', 32, 3, 64, 3, 1],
    ['32x32 64->64 1x1', 32, 64, 64, 1, 1],
    ['32x32 64->256 1x1', 32, 64, 256, 1, 1],
    ['32x32 256->64 1x1', 32, 256, 64, 1, 1],
    ['32x32 256->128 1x1', 32, 256, 128, 1, 1],
    ['32->16 256->512 1x1 s2', 32, 256, 512, 1, 2],
    ['16x16 128->512 1x1', 16, 128, 512, 1, 1],
    ['16x16 512->256 1x1', 16, 512, 256, 1, 1],
    ['8x8 256->1024 1x1', 8, 256, 1024, 1, 1],
    ['8x8 1024->256 1x1', 8, 1024, 256, 1, 1],
  ],
};

interface RawAddon {
  conv2d(shape: number[], x: Float32Array, f: Float32Array, y: Float32Array): void;
  conv2dBackpropInput(shape: number[], dy: Float32Array, f: Float32Array, dx: Float32Array): void;
  conv2dBackpropFilter(shape: number[], x: Float32Array, dy: Float32Array, dw: Float32Array): void;
  isa: string;
  threads: number;
}

interface Variant {
  label: string;
  addon: RawAddon;
  /** Set around each of this variant's calls (the addon reads these switches at each call). */
  env?: [name: string, value: string];
}

const scratch = mkdtempSync(join(tmpdir(), 'wrn-conv-gflops-'));
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }));

/** dlopens a private copy of `path` (a second dlopen of one path would return the first's globals) with the ISA forced. */
function loadVariant(label: string, path: string, isa: string): Variant {
  if (!existsSync(path)) throw new Error(`--addon / --baseline ${path}: no such file (build it: cd packages/native && npm run build)`);
  const copy = join(scratch, `${label.replace(/[^a-z0-9]/gi, '_')}.node`);
  copyFileSync(path, copy);
  const saved = process.env['WRN_NATIVE_ISA'];
  if (isa) process.env['WRN_NATIVE_ISA'] = isa;
  const module = { exports: {} as RawAddon };
  process.dlopen(module, copy);
  if (saved === undefined) delete process.env['WRN_NATIVE_ISA'];
  else process.env['WRN_NATIVE_ISA'] = saved;
  return { label: `${label} (${module.exports.isa})`, addon: module.exports };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1]!;

function random(size: number): Float32Array {
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) out[i] = Math.random() * 2 - 1;
  return out;
}

/** A long-lived PyTorch child answering one JSON line per shape. */
class Torch {
  private readonly child = spawn('/usr/bin/python3', [join(HERE, 'torch_conv_bench.py'), '--threads', String(threadsOf)], { stdio: ['pipe', 'pipe', 'inherit'] });
  private readonly lines = createInterface({ input: this.child.stdout })[Symbol.asyncIterator]();
  async next(): Promise<Record<string, number | string>> {
    const line = await this.lines.next();
    if (line.done) throw new Error('the PyTorch child (tools/bench/torch_conv_bench.py) exited; is python3-torch installed?');
    return JSON.parse(line.value) as Record<string, number | string>;
  }
  async request(request: object): Promise<Record<string, number | string>> {
    this.child.stdin.write(`${JSON.stringify(request)}\n`);
    return this.next();
  }
  close(): void {
    this.child.stdin.end();
  }
}

const variants: Variant[] = [];
for (const isa of isas.length > 0 ? isas : ['']) variants.push(loadVariant(isa || 'addon', addonPath, isa));
if (baseline) variants.push(loadVariant('baseline', baseline, ''));
if (variantEnv) {
  const [name, value] = variantEnv.split('=');
  if (!name || value === undefined) throw new Error(`--env ${variantEnv}: expected NAME=VALUE, e.g. WRN_NATIVE_DIRECT=0`);
  variants.push({ ...loadVariant(variantEnv, addonPath, ''), env: [name, value] });
}
const threadsOf = variants[0]!.addon.threads;

async function main(): Promise<void> {
  const torch = withTorch ? new Torch() : null;
  const info = torch ? await torch.next() : null;
  console.log(`addon ${addonPath}; variants: ${variants.map((v) => v.label).join(', ')}; ${threadsOf} threads; batch ${batch}, median of ${reps}` +
    (info ? `; PyTorch ${info['torch']} (${info['threads']} threads, NCHW)` : ''));
  console.log('GFLOP/s: fwd / dx / dw per variant; PyTorch fwd / bwd (dx + dw); ratio = first variant / PyTorch (fwd, bwd)\n');
  const header = ['model', 'conv', ...variants.map((v) => v.label), ...(torch ? ['PyTorch', 'ratio'] : [])];
  console.log(`| ${header.join(' | ')} |`);
  console.log(`|${header.map(() => '---').join('|')}|`);
  for (const model of models) {
    const shapes = SHAPES[model];
    if (!shapes) throw new Error(`--models: ${model} is not one of ${Object.keys(SHAPES).join(', ')}`);
    for (const [label, size, ci, co, k, stride] of shapes) {
      // TF's 'same' geometry (odd padding after), as @wrn/backend passes it.
      const ho = Math.ceil(size / stride);
      const padTop = Math.floor(Math.max((ho - 1) * stride + k - size, 0) / 2);
      const shape = [batch, size, size, ci, k, k, co, ho, ho, stride, stride, padTop, padTop];
      const x = random(batch * size * size * ci);
      const f = random(k * k * ci * co);
      const dy = random(batch * ho * ho * co);
      const y = new Float32Array(dy.length);
      const dx = new Float32Array(x.length);
      const dw = new Float32Array(f.length);
      const flops = 2 * batch * ho * ho * co * k * k * ci;
      const kinds = [
        (a: RawAddon) => a.conv2d(shape, x, f, y),
        (a: RawAddon) => a.conv2dBackpropInput(shape, dy, f, dx),
        (a: RawAddon) => a.conv2dBackpropFilter(shape, x, dy, dw),
      ];
      await torch?.request({ op: 'shape', n: batch, h: size, w: size, ci, k, co, stride });
      const times = variants.map(() => kinds.map(() => [] as number[]));
      const torchTimes: number[][] = [[], []];
      // Round by round, every variant's three kinds then PyTorch's two, so that all see the same load.
      for (let round = -1; round < reps; round++) {
        for (const [kind, run] of kinds.entries()) {
          for (const [v, variant] of variants.entries()) {
            const saved = variant.env ? process.env[variant.env[0]] : undefined;
            if (variant.env) process.env[variant.env[0]] = variant.env[1];
            const start = performance.now();
            run(variant.addon);
            const seconds = (performance.now() - start) / 1e3;
            if (variant.env) {
              if (saved === undefined) delete process.env[variant.env[0]];
              else process.env[variant.env[0]] = saved;
            }
            if (round >= 0) times[v]![kind]!.push(seconds);
          }
        }
        if (!torch) continue;
        for (const [i, op] of ['forward', 'forwardBackward'].entries()) {
          const answer = await torch.request({ op });
          if (round >= 0) torchTimes[i]!.push(answer['seconds'] as number);
        }
      }
      const seconds = times.map((t) => t.map(median));
      const cells = seconds.map((s) => s.map((t) => (flops / t / 1e9).toFixed(0)).join(' / '));
      if (torch) {
        const [forward, forwardBackward] = torchTimes.map(median) as [number, number];
        // Backward = forward + backward minus forward, medians of the same rounds.
        const torchBackward = forwardBackward - forward;
        const ours = seconds[0]!;
        cells.push(`${(flops / forward / 1e9).toFixed(0)} / ${((2 * flops) / torchBackward / 1e9).toFixed(0)}`);
        cells.push(`${(forward / ours[0]!).toFixed(2)} / ${(torchBackward / (ours[1]! + ours[2]!)).toFixed(2)}`);
      }
      console.log(`| ${model} | ${label} | ${cells.join(' | ')} |`);
    }
  }
  torch?.close();
}

await main();
