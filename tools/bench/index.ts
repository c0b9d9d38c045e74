/**
 * Training and inference speed of @wrn's models on every TF.js backend that loads here, against PyTorch on
 * the same machine in the same run, plus the input pipeline's rate.
 *
 *   npx nx run-many -t build -p blocks backend architectures training datasets   # the bench imports the built packages
 *   npx tsx tools/bench/index.ts [--json] [--models resnet20,wrn-16-4,resnext29-4x16d]
 *       [--backends tensorflow,webgpu,wasm,wasm-xnnpack,wasm:1,cpu,wrn-native] [--batch 64] [--warmup 2] [--steps 5]
 *       [--min-seconds 5] [--max-steps 200] [--torch-flush-denormal]
 *       [--cpu-batch 8] [--cpu-steps 1] [--cpu-models resnet20] [--no-torch] [--no-pipeline] [--timeout 900]
 *
 * `wasm:N` is the wasm backend on N threads (its threaded build, see initWasmBackendWithThreads). `wasm` runs its
 * convolutions on @wrn/native's compiled kernels when they load; `wasm-xnnpack[:N]` keeps them on XNNPACK.
 * `webgpu` is tfjs-backend-webgpu on Dawn (any adapter: on a machine without a GPU that is SwiftShader, set
 * VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json, and its figures are a CPU's); its steps end in an
 * asynchronous read of the loss, so each step's time includes the GPU's work. ImageNet models (resnet50) run at
 * their own input size (224x224).
 * Each (model, backend) runs in a child process of its own, so peak memory (max RSS) is that pair's and a
 * backend's one-time set-up (the wasm thread count) is clean. A step is @wrn/training's: the model in training
 * mode (BatchNorm batch statistics; applyForTraining, which frees each layer's output once read), softmax cross-entropy on one-hot labels, gradients of every trainable
 * weight, and SgdOptimizer's Nesterov momentum 0.9 + weight decay 5e-4 update; figures are images/s from the
 * median step after warm-up.
 * Both sides time steps by one rule (torch_bench.py's timed_steps): at least --steps, and more until
 * --min-seconds have passed (at most --max-steps), so a fast model's median is over seconds of work, not over
 * five 0.1 s steps that one neighbour's burst can decide. Each side reports its "CPU share": process CPU time
 * over wall time x cores. Near 1.0 the process had the cores to itself; well below it, other processes held them
 * and the figure says more about the machine than the code (that, not thread spin-up, allocator warm-up or
 * denormals, is what swung PyTorch's ResNet-20 figure 181-734 img/s: see the README). Per model, PyTorch runs
 * right after our rows (not all of ours first), in a process of its own, so both sides' peak RSS is one model's
 * whole process (runtime included) and both see the same stretch of the machine's load. Inference is `model.predict` (training off) of the model as `wrn predict` and `wrn eval` run it: each BatchNorm
 * folded into its conv by @wrn/blocks' foldBatchNorm (the same function; PyTorch runs its eval mode unfolded). PyTorch runs the same three models
 * (same parameter counts, checked) via Debian's python3-torch at /usr/bin/python3 when it is installed; the
 * bench installs nothing (`apt-get install python3-torch` provides it). The cpu backend only gets a small
 * batch and, by default, only ResNet-20: it is about 100x slower than PyTorch on convnets.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
// Static, as in the other benches: one dynamic import makes nx count @wrn/blocks lazy-loaded and fail their static ones.
import { foldBatchNorm } from '@wrn/blocks';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const RESULT_MARK = 'WRN_BENCH_RESULT ';
const PYTHON = '/usr/bin/python3';
const TORCH_INSTALL = 'apt-get install python3-torch (Debian/Ubuntu), then rerun; the bench installs nothing itself';

interface Options {
  json: boolean;
  models: string[];
  backends: string[];
  batch: number;
  warmup: number;
  steps: number;
  cpuBatch: number;
  cpuSteps: number;
  /** Models the pure-JS cpu backend runs: its conv gradients take minutes per step on the wider ones. */
  cpuModels: string[];
  /** Timed steps continue until this many seconds have passed (after at least `steps`). */
  minSeconds: number;
  maxSteps: number;
  /** PyTorch with torch.set_flush_denormal(True): off (its default) unless asked. */
  torchFlushDenormal: boolean;
  torch: boolean;
  pipeline: boolean;
  timeoutS: number;
}

interface ChildJob {
  model: string;
  backend: string;
  batch: number;
  warmup: number;
  steps: number;
  minSeconds: number;
  maxSteps: number;
  /** The cores the CPU share is counted against (PyTorch's thread count, the same for both sides). */
  cores: number;
}

interface TfResult {
  model: string;
  backend: string;
  /** Backend as selectBackend reported it (e.g. 'wasm (XNNPACK, SIMD, 2 threads) ...'). */
  backendReason?: string;
  batch: number;
  params?: number;
  trainImagesPerSec?: number;
  inferImagesPerSec?: number;
  trainStepMs?: number[];
  inferStepMs?: number[];
  /** Process CPU time over wall time x cores in the timed steps (1.0: the cores were all ours). */
  trainCpuShare?: number;
  inferCpuShare?: number;
  /** The process's max resident set (for wasm: its heap, which never shrinks, included). */
  peakRssMB?: number;
  /**
   * Peak bytes of live tensor data over the timed steps: on wasm, what the backend held through the module's
   * malloc (each buffer once); elsewhere tf.memory().numBytes and tf.profile's peak, which count a buffer once per
   * tensor sharing it (the tape's saved clones, reshapes), so they overstate it.
   */
  peakTensorMB?: number;
  /** On wasm: the heap's size at the end (it never shrinks: its high-water mark, a floor under the RSS). */
  wasmHeapMB?: number;
  /** tf.memory().numTensors after the timed steps minus after warm-up: 0 means no leak. */
  tensorGrowth?: number;
  note?: string;
  error?: string;
}

interface TorchResult {
  model: string;
  params: number;
  trainImagesPerSec: number;
  inferImagesPerSec: number;
  trainStepMs: number[];
  inferStepMs: number[];
  trainCpuShare: number;
  inferCpuShare: number;
  peakRssMB: number;
}

interface TorchRun {
  version?: string;
  threads?: number;
  flushDenormal?: boolean;
  results: TorchResult[];
  skipped?: string;
}

function parseArgs(argv: string[]): Options {
  const value = (name: string, fallback: string): string => {
    const i = argv.indexOf(`--${name}`);
    if (i < 0) return fallback;
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`bench: --${name} needs a value`);
    return v;
  };
  const int = (name: string, fallback: number): number => {
    const raw = value(name, String(fallback));
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 0) throw new Error(`bench: --${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
    return n;
  };
  const list = (name: string, fallback: string) => value(name, fallback).split(',').map((s) => s.trim()).filter(Boolean);
  const backends = list('backends', 'tensorflow,webgpu,wasm,wasm-xnnpack,cpu');
  for (const b of backends) {
    if (!/^(tensorflow|webgpu|cpu|wrn-native|wasm(-xnnpack)?(:[1-8])?)$/.test(b)) {
      throw new Error(`bench: unknown backend ${JSON.stringify(b)} in --backends; expected tensorflow, webgpu, wasm[:N], wasm-xnnpack[:N] (N = 1..8), cpu or wrn-native`);
    }
  }
  return {
    json: argv.includes('--json'),
    models: list('models', 'resnet20,wrn-16-4,resnext29-4x16d'),
    backends,
    batch: int('batch', 64),
    warmup: int('warmup', 2),
    steps: Math.max(1, int('steps', 5)),
    minSeconds: int('min-seconds', 5),
    maxSteps: Math.max(1, int('max-steps', 200)),
    torchFlushDenormal: argv.includes('--torch-flush-denormal'),
    cpuBatch: int('cpu-batch', 8),
    cpuSteps: Math.max(1, int('cpu-steps', 1)),
    cpuModels: list('cpu-models', 'resnet20'),
    torch: !argv.includes('--no-torch'),
    pipeline: !argv.includes('--no-pipeline'),
    timeoutS: int('timeout', 900),
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Runs a command, returning stdout; kills it after `timeoutS`. */
function run(command: string, args: string[], timeoutS: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutS * 1000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const why = timedOut ? `\nkilled after ${timeoutS} s (--timeout)` : signal ? `\nkilled by ${signal}` : '';
      resolve({ code, stdout, stderr: stderr + why });
    });
  });
}

function lastLine(text: string): string {
  return text.trim().split('\n').filter(Boolean).slice(-1)[0] ?? '';
}

// ---------------------------------------------------------------------------------------------------------
// Child: one model on one backend.

/** Live and peak bytes a wasm backend allocates through its module's malloc/free (as step-memory.ts counts). */
function trackWasmHeap(backend: unknown): { readonly peak: number; heapBytes(): number } | undefined {
  const wasm = (backend as { wasm?: { _malloc(n: number): number; _free(p: number): void; HEAPU8: Uint8Array } }).wasm;
  if (wasm == null) return undefined;
  const use = { live: 0, peak: 0, sizes: new Map<number, number>() };
  const malloc = wasm._malloc.bind(wasm);
  const free = wasm._free.bind(wasm);
  // Addresses past 2 GB come back from malloc as negative int32s and may be freed as unsigned ones: key by the latter.
  wasm._malloc = (n: number) => {
    const p = malloc(n);
    use.sizes.set(p >>> 0, n);
    use.live += n;
    use.peak = Math.max(use.peak, use.live);
    return p;
  };
  wasm._free = (p: number) => {
    use.live -= use.sizes.get(p >>> 0) ?? 0;
    use.sizes.delete(p >>> 0);
    free(p);
  };
  return {
    get peak() {
      return use.peak;
    },
    heapBytes: () => wasm.HEAPU8.buffer.byteLength,
  };
}

async function runChild(job: ChildJob): Promise<TfResult> {
  const tf = await import('@tensorflow/tfjs-core');
  await import('@tensorflow/tfjs-layers');
  const { SgdOptimizer, applyForTraining, variableGrads } = await import('@wrn/training');
  const { selectBackend } = await import('@wrn/backend/node');
  const { buildModel, countParams } = await import('@wrn/architectures');
  const [spec, threads] = job.backend.split(':');
  const name = spec === 'wasm-xnnpack' ? 'wasm' : spec;
  let selection: Awaited<ReturnType<typeof selectBackend>>;
  try {
    selection = await selectBackend(name as 'tensorflow' | 'webgpu' | 'wasm' | 'cpu' | 'wrn-native', {
      ...(threads === undefined ? {} : { wasmThreads: Number(threads) }),
      ...(spec === 'wasm-xnnpack' ? { nativeConv: false } : {}),
    });
  } catch (error) {
    const tried = (error as { tried?: { name: string; error?: string }[] }).tried;
    const why = tried ? tried.map((t) => `${t.name}: ${t.error}`).join('; ') : String(error);
    return { model: job.model, backend: job.backend, batch: job.batch, error: `not available: ${why}` };
  }
  const result: TfResult = { model: job.model, backend: job.backend, backendReason: selection.reason, batch: job.batch };
  // From before the model is built: its weights count, as PyTorch's RSS counts its.
  const heap = trackWasmHeap(tf.backend());
  const model = buildModel(job.model, { seed: 1 });
  result.params = countParams(model);
  const numClasses = 10;
  const [height, width, channels] = model.inputs[0]!.shape.slice(1) as [number, number, number];
  const xs = tf.randomNormal([job.batch, height, width, channels], 0, 1, 'float32', 1) as import('@tensorflow/tfjs-core').Tensor4D;
  const labels = tf.randomUniform([job.batch], 0, numClasses, 'int32', 2);
  const variables = model.trainableWeights.map((w) => w.read() as import('@tensorflow/tfjs-core').Variable);
  const optimizer = new SgdOptimizer(
    variables.map((variable, i) => ({ variable, name: model.trainableWeights[i]!.originalName, weightDecay: true })),
    { momentum: 0.9, nesterov: true, dampening: 0, weightDecay: 5e-4 },
  );
  let peakBytes = 0;
  // Each step ends in an asynchronous read (webgpu cannot read synchronously in Node; elsewhere it is the same).
  const trainStep = async () => {
    // @wrn/training's variableGrads (what its training loop runs): tf.variableGrads that frees gradients early.
    const { value, grads } = variableGrads(() => {
      const logits = applyForTraining(model, xs);
      return tf.losses.softmaxCrossEntropy(tf.oneHot(labels, numClasses), logits) as import('@tensorflow/tfjs-core').Scalar;
    }, variables);
    peakBytes = Math.max(peakBytes, tf.memory().numBytes);
    optimizer.step(variables.map((v) => grads[v.name] ?? null), 0.1);
    await value.data();
    tf.dispose([value, grads]);
  };
  const warmUp = async (fn: () => Promise<void>) => {
    for (let i = 0; i < job.warmup; i++) await fn();
  };
  // torch_bench.py's timed_steps, the same rule: at least job.steps, then on until job.minSeconds have passed.
  const timeSteps = async (fn: () => Promise<void>) => {
    const ms: number[] = [];
    let cpuMicros = 0;
    const started = performance.now();
    while (ms.length < job.maxSteps && (ms.length < job.steps || performance.now() - started < job.minSeconds * 1000)) {
      const start = performance.now();
      const cpuStart = process.cpuUsage();
      await fn();
      const cpu = process.cpuUsage(cpuStart);
      ms.push(performance.now() - start);
      cpuMicros += cpu.user + cpu.system;
    }
    const wallMs = ms.reduce((a, b) => a + b, 0);
    return { ms, cpuShare: cpuMicros / 1000 / (wallMs * job.cores) };
  };
  await warmUp(trainStep);
  const tensorsAfterWarmup = tf.memory().numTensors;
  const train = await timeSteps(trainStep);
  const trainMs = train.ms;
  result.tensorGrowth = tf.memory().numTensors - tensorsAfterWarmup;
  result.trainStepMs = trainMs.map((m) => Math.round(m));
  result.trainCpuShare = train.cpuShare;
  result.trainImagesPerSec = (job.batch * 1000) / median(trainMs);
  const inferenceModel = (await foldBatchNorm(model)).model;
  const inferStep = async () => {
    // The whole batch in one pass, as PyTorch runs it (predict's default batchSize, 32, would run 64 as two).
    const out = inferenceModel.predict(xs, { batchSize: job.batch }) as import('@tensorflow/tfjs-core').Tensor;
    peakBytes = Math.max(peakBytes, tf.memory().numBytes);
    await out.data();
    out.dispose();
  };
  await warmUp(inferStep);
  const infer = await timeSteps(inferStep);
  result.inferStepMs = infer.ms.map((m) => Math.round(m));
  result.inferCpuShare = infer.cpuShare;
  result.inferImagesPerSec = (job.batch * 1000) / median(infer.ms);
  inferenceModel.dispose();
  // One more step under tf.profile, for the peak of live tensor bytes inside a training step.
  const profiled = await tf.profile(async () => {
    await trainStep();
    return [];
  });
  result.peakTensorMB = (heap ? heap.peak : Math.max(peakBytes, profiled.peakBytes)) / 2 ** 20;
  if (heap) result.wasmHeapMB = heap.heapBytes() / 2 ** 20;
  result.peakRssMB = process.resourceUsage().maxRSS / 1024;
  return result;
}

// ---------------------------------------------------------------------------------------------------------
// Parent.

async function benchTf(job: ChildJob, timeoutS: number): Promise<TfResult> {
  const self = fileURLToPath(import.meta.url);
  const { stdout, stderr, code } = await run(process.execPath, [...process.execArgv, self, '--child', JSON.stringify(job)], timeoutS);
  const line = stdout.split('\n').find((l) => l.startsWith(RESULT_MARK));
  if (line) return JSON.parse(line.slice(RESULT_MARK.length)) as TfResult;
  const why = lastLine(stderr.split('\n').filter((l) => !/^\s+at /.test(l)).join('\n')) || `exit code ${code}`;
  return { model: job.model, backend: job.backend, batch: job.batch, error: why };
}

/** Why PyTorch cannot run here, or null when it can. */
async function torchMissing(): Promise<string | null> {
  if (!existsSync(PYTHON)) return `${PYTHON} not found; ${TORCH_INSTALL}`;
  const probe = await run(PYTHON, ['-c', 'import torch'], 60);
  return probe.code === 0 ? null : `PyTorch is not installed for ${PYTHON}: ${TORCH_INSTALL}`;
}

/** One model in a torch_bench.py process of its own (its max RSS is that model's, as our children's are). */
async function benchTorch(o: Options, model: string): Promise<TorchRun> {
  const args = [path.join(HERE, 'torch_bench.py'), '--models', model, '--batch', String(o.batch), '--warmup', String(o.warmup)];
  args.push('--steps', String(o.steps), '--min-seconds', String(o.minSeconds), '--max-steps', String(o.maxSteps));
  args.push('--threads', String(os.availableParallelism()), ...(o.torchFlushDenormal ? ['--flush-denormal'] : []));
  const { stdout, stderr, code } = await run(PYTHON, args, o.timeoutS);
  if (code !== 0) return { results: [], skipped: `torch_bench.py failed on ${model}: ${lastLine(stderr) || `exit code ${code}`}` };
  const parsed = JSON.parse(lastLine(stdout)) as { torch: string; threads: number; flushDenormal: boolean; results: TorchResult[] };
  return { version: parsed.torch, threads: parsed.threads, flushDenormal: parsed.flushDenormal, results: parsed.results };
}

/**
 * @wrn/datasets' pipeline bench (tools/bench/pipeline.ts, its own command): the full training pipeline's
 * images/s (load, shuffle, batch, normalise, reflect-pad + crop + flip) on the wasm backend, read from the
 * row of its markdown table that says "full training pipeline".
 */
async function benchPipeline(o: Options): Promise<{ imagesPerSec?: number; row?: string; skipped?: string }> {
  const file = path.join(HERE, 'pipeline.ts');
  if (!existsSync(file)) return { skipped: 'tools/bench/pipeline.ts is not there' };
  const { stdout, stderr, code } = await run(process.execPath, [...process.execArgv, file, '--backend', 'wasm', '--batches', '20'], o.timeoutS);
  if (code !== 0) return { skipped: `pipeline.ts failed: ${lastLine(stderr) || `exit code ${code}`}` };
  const row = stdout.split('\n').find((l) => l.startsWith('|') && l.includes('full training pipeline'));
  const cells = row?.split('|').map((c) => c.trim());
  // | backend | pipeline | batch | images | images/s | ms/batch |
  const rate = Number(cells?.[5]);
  if (!row || !Number.isFinite(rate)) return { skipped: `pipeline.ts printed no "full training pipeline" row: ${lastLine(stdout).slice(0, 200)}` };
  return { imagesPerSec: rate, row };
}

const fmt = (n: number | undefined, digits = 1) =>
  n == null ? '-' : n >= 100 ? Math.round(n).toLocaleString('en-US') : n >= 1 ? n.toFixed(digits) : n.toPrecision(2);

function ratio(torch: number | undefined, ours: number | undefined): string {
  if (torch == null || ours == null || ours === 0) return '-';
  const r = torch / ours;
  return r >= 1 ? `${r.toFixed(1)}x slower` : `${(1 / r).toFixed(1)}x faster`;
}

/** CPU time over wall time x cores, train / infer: near 1.0 the cores were the process's alone. */
const share = (train: number | undefined, infer: number | undefined) =>
  train == null || infer == null ? '-' : `${train.toFixed(2)} / ${infer.toFixed(2)}`;

function printTable(
  o: Options,
  tfResults: TfResult[],
  torch: TorchRun,
  pipeline: Awaited<ReturnType<typeof benchPipeline>>,
): void {
  const rows: string[][] = [];
  for (const model of o.models) {
    const ref = torch.results.find((r) => r.model === model);
    if (ref) {
      const label = `pytorch ${torch.version} (${torch.threads} threads${torch.flushDenormal ? ', denormals flushed' : ''})`;
      rows.push([model, label, String(o.batch), fmt(ref.trainImagesPerSec), fmt(ref.inferImagesPerSec), fmt(ref.peakRssMB, 0), '-', share(ref.trainCpuShare, ref.inferCpuShare), '1.0x', '1.0x', '']);
    }
    for (const r of tfResults.filter((t) => t.model === model)) {
      if (r.error) {
        const note = r.error.startsWith('not available') ? 'not installed (optional peer: @tensorflow/tfjs-node-gpu or -node)' : r.error.slice(0, 100);
        rows.push([model, r.backend, String(r.batch), '-', '-', '-', '-', '-', '-', '-', note]);
        continue;
      }
      const note = [r.note, r.wasmHeapMB ? `wasm heap ${fmt(r.wasmHeapMB, 0)} MB` : '', r.tensorGrowth ? `tensors grew by ${r.tensorGrowth} over ${r.trainStepMs?.length} steps` : '']
        .filter(Boolean)
        .join('; ');
      rows.push([
        model,
        r.backend,
        String(r.batch),
        fmt(r.trainImagesPerSec),
        fmt(r.inferImagesPerSec),
        fmt(r.peakRssMB, 0),
        fmt(r.peakTensorMB, 0),
        share(r.trainCpuShare, r.inferCpuShare),
        ratio(ref?.trainImagesPerSec, r.trainImagesPerSec),
        ratio(ref?.inferImagesPerSec, r.inferImagesPerSec),
        note,
      ]);
    }
  }
  const header = ['model', 'backend', 'batch', 'train img/s', 'infer img/s', 'peak RSS MB', 'peak tensors MB', 'CPU share train / infer', 'train vs torch', 'infer vs torch', 'note'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of rows) console.log(line(r));
  if (torch.skipped) console.log(`PyTorch skipped: ${torch.skipped}`);
  if (pipeline.skipped) console.log(`Input pipeline skipped: ${pipeline.skipped}`);
  else console.log(`Input pipeline: ${fmt(pipeline.imagesPerSec)} img/s (tools/bench/pipeline.ts)`);
  const unavailable = tfResults.find((r) => r.error && r.backend === 'tensorflow');
  if (unavailable) console.log(`tensorflow backend ${unavailable.error}`);
}

async function main(): Promise<void> {
  const childIndex = process.argv.indexOf('--child');
  if (childIndex >= 0) {
    const job = JSON.parse(process.argv[childIndex + 1]!) as ChildJob;
    const result = await runChild(job);
    process.stdout.write(`${RESULT_MARK}${JSON.stringify(result)}\n`);
    return;
  }
  const o = parseArgs(process.argv.slice(2));
  const startedAt = new Date().toISOString();
  const loadBefore = os.loadavg();
  const log = (msg: string) => (o.json ? process.stderr.write(`${msg}\n`) : console.log(msg));
  const tfResults: TfResult[] = [];
  const missing = o.torch ? await torchMissing() : '--no-torch';
  const torch: TorchRun = { results: [], ...(missing == null ? {} : { skipped: missing }) };
  // One failure to load a backend says all there is to say about it: later models reuse it.
  const unloadable = new Map<string, TfResult>();
  // Model by model, PyTorch right after our rows: both sides see the same stretch of the machine's load.
  for (const model of o.models) {
    for (const backend of o.backends) {
      const failed = unloadable.get(backend);
      if (failed) {
        tfResults.push({ ...failed, model });
        continue;
      }
      const cpu = backend === 'cpu';
      if (cpu && !o.cpuModels.includes(model)) {
        tfResults.push({ model, backend, batch: o.cpuBatch, error: 'skipped: the cpu backend takes minutes per step on it (add it to --cpu-models)' });
        continue;
      }
      const job: ChildJob = {
        model,
        backend,
        batch: cpu ? o.cpuBatch : o.batch,
        warmup: cpu ? 1 : o.warmup,
        steps: cpu ? o.cpuSteps : o.steps,
        minSeconds: cpu ? 0 : o.minSeconds,
        maxSteps: o.maxSteps,
        cores: os.availableParallelism(),
      };
      log(`bench: ${model} on ${backend} (batch ${job.batch}, ${job.warmup} warm-up + at least ${job.steps} steps and ${job.minSeconds} s)...`);
      let result = await benchTf(job, o.timeoutS);
      // wasm32 has a 4 GB heap: the widest models at batch 64 run out of it. Halve the batch and say so.
      while (result.error && /memory access out of bounds|out of memory/i.test(result.error) && job.batch > 8) {
        const tooBig = job.batch;
        job.batch = Math.floor(job.batch / 2);
        log(`bench: ${model} on ${backend} ran out of memory at batch ${tooBig}; retrying at batch ${job.batch}...`);
        result = await benchTf(job, o.timeoutS);
        result.note = `batch ${tooBig} ran out of wasm memory (4 GB heap)`;
      }
      tfResults.push(result);
      if (result.error && backend === 'tensorflow') unloadable.set(backend, result);
    }
    if (torch.skipped) continue;
    log(`bench: ${model} on PyTorch...`);
    const run = await benchTorch(o, model);
    if (run.skipped) torch.skipped = run.skipped;
    Object.assign(torch, { version: run.version, threads: run.threads, flushDenormal: run.flushDenormal });
    torch.results.push(...run.results);
  }
  log('bench: input pipeline...');
  const pipeline = o.pipeline ? await benchPipeline(o) : { skipped: '--no-pipeline' };
  for (const r of tfResults) {
    const ref = torch.results.find((t) => t.model === r.model);
    if (ref && r.params != null && ref.params !== r.params) {
      r.error = `${r.model}: PyTorch model has ${ref.params} parameters, TF.js ${r.params}: not the same network`;
    }
  }
  const report = {
    startedAt,
    machine: { cpus: os.availableParallelism(), model: os.cpus()[0]?.model, node: process.version, loadavgBefore: loadBefore, loadavgAfter: os.loadavg() },
    options: o,
    tfjs: tfResults,
    torch,
    pipeline,
    ratios: tfResults
      .filter((r) => !r.error)
      .map((r) => {
        const ref = torch.results.find((t) => t.model === r.model);
        return {
          model: r.model,
          backend: r.backend,
          trainSlowdownVsTorch: ref && r.trainImagesPerSec ? ref.trainImagesPerSec / r.trainImagesPerSec : null,
          inferSlowdownVsTorch: ref && r.inferImagesPerSec ? ref.inferImagesPerSec / r.inferImagesPerSec : null,
          pipelineOverTrainRate: pipeline.imagesPerSec && r.trainImagesPerSec ? pipeline.imagesPerSec / r.trainImagesPerSec : null,
        };
      }),
  };
  if (!o.json) printTable(o, tfResults, torch, pipeline);
  console.log(JSON.stringify(report, null, o.json ? 2 : undefined));
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
