import '@tensorflow/tfjs-backend-cpu';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { memory, setBackend, tensor, tidy, transpose, type Tensor } from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { foldBatchNorm } from '@wrn/blocks';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildModelFromConfig, resolveModelConfig, type BuildModelOptions, type ModelConfig } from '../src/index.js';

/**
 * The oracle is PyTorch: tools/torch-reference/make_fixtures.py builds each family from the official code
 * (akamaster's CIFAR ResNet, the WRN PyTorch code, resnet-pre-act.lua, ResNeXt's resnext.lua) or torchvision with
 * random weights and BN statistics, and computes in float64 the logits of real CIFAR-10 images in eval and in train
 * mode, and the BN running statistics after the train-mode forward. Here the same weights go into @wrn's model
 * (OIHW -> HWIO by the mapping below) and everything must agree to 1e-5 of the reference's scale.
 */
const PYTHON = '/usr/bin/python3';
const here = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(here, '../../..');
const SCRIPT = join(REPO, 'tools/torch-reference/make_fixtures.py');
// ../shared/data when it is beside the repository (vitest.shared-data.ts says so in one line when it is not).
const SHARED_DATA = inject('sharedDataDir');
const CIFAR_BATCH = join(SHARED_DATA ?? resolve(REPO, '../shared/data'), 'cifar10-subset/test_batch.bin');
const TOLERANCE = 1e-5;

const torchMissing = spawnSync(PYTHON, ['-c', 'import torch, torchvision'], { stdio: 'ignore' }).status !== 0;
if (torchMissing) {
  if (process.env['CI']) throw new Error(`torch-oracle: ${PYTHON} cannot import torch and torchvision (apt-get install python3-torch python3-torchvision)`);
  console.warn(`skipping the PyTorch oracle: ${PYTHON} cannot import torch and torchvision (python3-torch, python3-torchvision)`);
}

interface Stored { offset: number; shape: number[] }
interface OracleCase {
  label: string;
  model: string;
  options: BuildModelOptions;
  mapping: 'torchvision' | 'akamaster' | 'wrn';
  blocksPerStage?: number[];
  input: Stored;
  tensors: Record<string, Stored>;
  evalLogits: Stored;
  trainLogits: Stored;
  runningAfterTrain: Record<string, Stored>;
}

let dir = '';
let cases: OracleCase[] = [];
let floats = new Float32Array(0);

function values(stored: Stored): Float32Array {
  const size = stored.shape.reduce((a, b) => a * b, 1);
  return floats.subarray(stored.offset, stored.offset + size);
}

function nested(stored: Stored): number[][] {
  const [rows, cols] = stored.shape as [number, number];
  const flat = values(stored);
  return Array.from({ length: rows }, (_, r) => Array.from(flat.subarray(r * cols, (r + 1) * cols)));
}

function relativeError(ours: number[][], reference: number[][]): number {
  let diff = 0;
  let scale = 0;
  reference.forEach((row, r) => row.forEach((b, c) => {
    diff = Math.max(diff, Math.abs((ours[r]?.[c] ?? Number.NaN) - b));
    scale = Math.max(scale, Math.abs(b));
  }));
  return diff / scale;
}

function runPython(args: string[]): Promise<void> {
  return new Promise((done, fail) => {
    const child = spawn(PYTHON, args, { stdio: ['ignore', 'inherit', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    child.on('error', fail);
    child.on('close', (code) => (code === 0 ? done() : fail(new Error(`${PYTHON} ${args.join(' ')} exited ${String(code)}:\n${stderr}`))));
  });
}

/**
 * The CIFAR ResNet of akamaster pads option A's new channels on both sides (planes//4 before and after the input's);
 * @wrn (as fb.resnet.torch) appends them. The two are the same function up to a relabelling of each stage's
 * channels: @wrn's channel j is akamaster's akamasterChannel(C, j) in a C-channel feature map.
 */
function akamasterChannel(channels: number, j: number): number {
  if (channels <= 16) return j;
  const half = channels / 2;
  const quarter = channels / 4;
  if (j < half) return quarter + akamasterChannel(half, j);
  return j < half + quarter ? j - half : j;
}

/** @wrn's weight name (layer/weight) of a reference tensor, or undefined for tensors @wrn has no counterpart of. */
function ourName(mapping: OracleCase['mapping'], torchName: string): string | undefined {
  const bnSuffix: Record<string, string> = { weight: 'gamma', bias: 'beta', running_mean: 'moving_mean', running_var: 'moving_variance' };
  let m: RegExpExecArray | null;
  if (mapping === 'wrn') {
    if (torchName === 'conv0') return 'stem_conv/kernel';
    if ((m = /^group(\d+)\.block(\d+)\.conv(\d)$/.exec(torchName))) return `stage${Number(m[1]) + 1}_block${Number(m[2]) + 1}_conv${Number(m[3]) + 1}/kernel`;
    if ((m = /^group(\d+)\.block(\d+)\.convdim$/.exec(torchName))) return `stage${Number(m[1]) + 1}_block${Number(m[2]) + 1}_shortcut_conv/kernel`;
    if ((m = /^group(\d+)\.block(\d+)\.bn(\d)\.(\w+)$/.exec(torchName))) {
      return `stage${Number(m[1]) + 1}_block${Number(m[2]) + 1}_bn${Number(m[3]) + 1}/${bnSuffix[m[4] as string]}`;
    }
    if ((m = /^bn\.(\w+)$/.exec(torchName))) return `head_bn/${bnSuffix[m[1] as string]}`;
    if ((m = /^fc\.(weight|bias)$/.exec(torchName))) return `logits/${m[1] === 'weight' ? 'kernel' : 'bias'}`;
    return undefined;
  }
  if (torchName === 'conv1.weight') return 'stem_conv/kernel';
  if ((m = /^bn1\.(\w+)$/.exec(torchName))) return `stem_bn/${bnSuffix[m[1] as string]}`;
  if ((m = /^bn\.(\w+)$/.exec(torchName))) return `head_bn/${bnSuffix[m[1] as string]}`;
  if ((m = /^(?:fc|linear)\.(weight|bias)$/.exec(torchName))) return `logits/${m[1] === 'weight' ? 'kernel' : 'bias'}`;
  if ((m = /^layer(\d+)\.(\d+)\.(.+)$/.exec(torchName))) {
    const block = `stage${m[1]}_block${Number(m[2]) + 1}`;
    const rest = m[3] as string;
    let r: RegExpExecArray | null;
    if ((r = /^conv(\d)\.weight$/.exec(rest))) return `${block}_conv${r[1]}/kernel`;
    if ((r = /^bn(\d)\.(\w+)$/.exec(rest))) return `${block}_bn${r[1]}/${bnSuffix[r[2] as string]}`;
    if (/^downsample(\.0)?\.weight$/.test(rest)) return `${block}_shortcut_conv/kernel`;
    if ((r = /^downsample\.1\.(\w+)$/.exec(rest))) return `${block}_shortcut_bn/${bnSuffix[r[1] as string]}`;
  }
  return undefined;
}

/** The reference tensor in @wrn's layout: OIHW -> HWIO, Linear [out, in] -> [in, out], akamaster's channels relabelled. */
function ourValues(mapping: OracleCase['mapping'], torchName: string, stored: Stored): { data: Float32Array; shape: number[] } {
  const src = values(stored);
  const channel = (count: number, j: number) => (mapping === 'akamaster' ? akamasterChannel(count, j) : j);
  const shape = stored.shape;
  if (shape.length === 4) {
    const [o, i, h, w] = shape as [number, number, number, number];
    const data = new Float32Array(src.length);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < i; c++) for (let k = 0; k < o; k++) {
      data[((y * w + x) * i + c) * o + k] = src[((channel(o, k) * i + channel(i, c)) * h + y) * w + x] as number;
    }
    return { data, shape: [h, w, i, o] };
  }
  if (shape.length === 2) {
    const [o, i] = shape as [number, number];
    const data = new Float32Array(src.length);
    for (let c = 0; c < i; c++) for (let k = 0; k < o; k++) data[c * o + k] = src[k * i + channel(i, c)] as number;
    return { data, shape: [i, o] };
  }
  // BN vectors are per channel (relabelled); the dense bias is per class.
  const n = shape[0] as number;
  const perClass = /^(?:fc|linear)\.bias$/.test(torchName);
  return { data: Float32Array.from({ length: n }, (_, j) => src[perClass ? j : channel(n, j)] as number), shape };
}

function configOf(c: OracleCase): ModelConfig {
  const config = resolveModelConfig(c.model, c.options);
  if (c.blocksPerStage === undefined) return config;
  return { ...config, stages: config.stages.map((stage, s) => ({ ...stage, blocks: c.blocksPerStage?.[s] as number })) };
}

function loadReferenceWeights(model: LayersModel, c: OracleCase): void {
  const byName = new Map<string, { data: Float32Array; shape: number[] }>();
  for (const [torchName, stored] of Object.entries(c.tensors)) {
    const name = ourName(c.mapping, torchName);
    if (name === undefined) throw new Error(`${c.label}: no @wrn weight for reference tensor ${torchName}`);
    if (byName.has(name)) throw new Error(`${c.label}: two reference tensors map to ${name}`);
    byName.set(name, ourValues(c.mapping, torchName, stored));
  }
  for (const layer of model.layers) {
    if (layer.weights.length === 0) continue;
    tidy(() => layer.setWeights(layer.weights.map((weight) => {
      const found = byName.get(weight.originalName);
      if (found === undefined) throw new Error(`${c.label}: the reference has no tensor for ${weight.originalName}`);
      byName.delete(weight.originalName);
      return tensor(found.data, found.shape, 'float32');
    })));
  }
  expect([...byName.keys()]).toEqual([]);
}

describe.skipIf(torchMissing || SHARED_DATA === null)('every family computes its PyTorch reference function (1e-5 of the logit scale)', () => {
  beforeAll(async () => {
    await setBackend('cpu');
    dir = await mkdtemp(join(tmpdir(), 'wrn-torch-oracle-'));
    await runPython([SCRIPT, CIFAR_BATCH, dir]);
    const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as { format: string; cases: OracleCase[] };
    expect(manifest.format).toBe('wrn-torch-oracle/1');
    cases = manifest.cases;
    const bytes = await readFile(join(dir, 'fixture.bin'));
    floats = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  });
  afterAll(async () => {
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  const LABELS = [
    'CIFAR ResNet-20 (akamaster, option A)',
    'pre-act ResNet-20, basic (resnet-pre-act wiring)',
    'pre-act ResNet bottleneck, 2 blocks/stage (resnet-pre-act.lua)',
    'WRN-16-2 (WRN PyTorch code)',
    'ResNeXt-11 4x4d, CIFAR (resnext.lua form C)',
    'torchvision resnet18 at 64x64',
    'torchvision resnet50 layout, blocks 2-1-1-1, at 64x64',
    'torchvision resnext50_32x4d layout, blocks 2-1-1-1, at 64x64',
    'torchvision wide_resnet50_2 layout, blocks 1-1-1-1, at 64x64',
  ];
  for (const label of LABELS) {
    it(label, async () => {
      const c = cases.find((entry) => entry.label === label);
      if (c === undefined) throw new Error(`the fixture has no case '${label}'`);
      const before = memory().numTensors;
      const model = buildModelFromConfig(configOf(c));
      try {
        loadReferenceWeights(model, c);
        const input = c.input;
        const x = tidy(() => transpose(tensor(values(input), input.shape as [number, number, number, number]), [0, 2, 3, 1]));
        const evalLogits = tidy(() => (model.predict(x) as Tensor).arraySync()) as number[][];
        // The inference model with each BatchNorm folded into its conv computes the same reference function.
        const { model: folded, report } = await foldBatchNorm(model);
        const foldedLogits = tidy(() => (folded.predict(x) as Tensor).arraySync()) as number[][];
        folded.dispose();
        const foldedError = relativeError(foldedLogits, nested(c.evalLogits));
        const trainLogits = tidy(() => (model.apply(x, { training: true }) as Tensor).arraySync()) as number[][];
        x.dispose();
        const evalError = relativeError(evalLogits, nested(c.evalLogits));
        const trainError = relativeError(trainLogits, nested(c.trainLogits));
        let runningError = 0;
        for (const [torchName, stored] of Object.entries(c.runningAfterTrain)) {
          const name = ourName(c.mapping, torchName) as string;
          const weight = model.weights.find((w) => w.originalName === name);
          if (weight === undefined) throw new Error(`${label}: no weight ${name} for ${torchName}`);
          const ours = Array.from(weight.read().dataSync());
          const reference = Array.from(ourValues(c.mapping, torchName, stored).data);
          runningError = Math.max(runningError, relativeError([ours], [reference]));
        }
        console.log(`${label}: max relative error eval ${evalError.toExponential(2)}, folded eval ${foldedError.toExponential(2)} (${report.batchNorms.length} BN folded, ${report.relus.length} ReLU absorbed), train ${trainError.toExponential(2)}, BN running stats ${runningError.toExponential(2)}`);
        expect(evalError).toBeLessThan(TOLERANCE);
        expect(foldedError).toBeLessThan(TOLERANCE);
        expect(report.batchNorms.length).toBeGreaterThan(0);
        expect(trainError).toBeLessThan(TOLERANCE);
        expect(runningError).toBeLessThan(TOLERANCE);
      } finally {
        model.dispose();
      }
      expect(memory().numTensors).toBe(before);
    });
  }
});
