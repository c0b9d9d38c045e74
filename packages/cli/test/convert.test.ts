import '@tensorflow/tfjs-backend-cpu';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { argMax, io, setBackend, tensor4d, tidy, type Tensor } from '@tensorflow/tfjs-core';
import { loadLayersModel } from '@tensorflow/tfjs-layers';
import { registerCustomLayers } from '@wrn/blocks';
import { beforeAll, describe, expect, it } from 'vitest';
import { NO_SHARED_DATA, runWrn, scratchDir, SHARED_SUBSET } from './run-wrn.js';

const PYTHON = '/usr/bin/python3';
/** The embedded CIFAR-10 sample that `wrn eval` reads by default. */
const SAMPLE = join(__dirname, '..', 'data', 'cifar10-sample');

function probeTorch(): string | undefined {
  const probe = spawnSync(PYTHON, ['-c', 'import torch, torchvision, PIL'], { encoding: 'utf8' });
  if (probe.error) return `${PYTHON} cannot run (${probe.error.message})`;
  if (probe.status !== 0) return `${PYTHON} cannot import torch, torchvision and PIL`;
  return undefined;
}
const torchMissing = probeTorch();
if (torchMissing !== undefined) {
  if (process.env.CI) throw new Error(`PyTorch oracle unavailable in CI: ${torchMissing} (.ci/run installs python3-torch python3-torchvision)`);
  console.log(`skipping the wrn convert tests: ${torchMissing} (apt-get install python3-torch python3-torchvision)`);
}

/**
 * A random-weight torchvision resnet18 with non-trivial BatchNorm statistics, saved with torch.save, and what
 * PyTorch computes with it: softmax probabilities of two real CIFAR-10 images upscaled to 64x64 (written as PNGs),
 * and the predicted classes of the embedded sample's first 20 held-out images at 32x32, all with ImageNet normalisation.
 */
const ORACLE = String.raw`
import json, sys
import numpy as np, torch, torchvision
from PIL import Image
out, subset, sample = sys.argv[1], sys.argv[2], sys.argv[3]
torch.manual_seed(5)
model = torchvision.models.resnet18(num_classes=10)
with torch.no_grad():
    for name, t in model.state_dict().items():
        if name.endswith('running_mean'): t.copy_(torch.randn_like(t) * 0.2)
        elif name.endswith('running_var'): t.copy_(torch.rand_like(t) + 0.5)
        elif name.endswith('bn1.weight') or name.endswith('bn2.weight'): t.copy_(torch.rand_like(t) + 0.5)
model.eval()
torch.save(model.state_dict(), out + '/resnet18.pth')
mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
def records(path, count):
    data = open(path, 'rb').read(count * 3073)
    return [(data[i * 3073], np.frombuffer(data[i * 3073 + 1:(i + 1) * 3073], dtype=np.uint8).reshape(3, 32, 32)) for i in range(count)]
big = []
for i, (_, chw) in enumerate(records(subset + '/data_batch_1.bin', 2)):
    hwc = chw.transpose(1, 2, 0).repeat(2, axis=0).repeat(2, axis=1)  # 64x64, nearest: exact in uint8
    Image.fromarray(np.ascontiguousarray(hwc)).save(out + '/img%d.png' % i)
    big.append(torch.tensor(hwc, dtype=torch.float32).permute(2, 0, 1))
with torch.no_grad():
    probs = torch.softmax(model((torch.stack(big) / 255 - mean) / std), 1)
    held_out = records(sample + '/test_batch.bin', 20)
    x = torch.stack([torch.tensor(chw, dtype=torch.float32) for _, chw in held_out])
    predicted = model((x / 255 - mean) / std).argmax(1)
labels = torch.tensor([label for label, _ in held_out])
json.dump({'probs': probs.tolist(), 'predicted32': predicted.tolist(), 'accuracy32': (predicted == labels).float().mean().item()}, open(out + '/oracle.json', 'w'))
`;

interface Oracle {
  probs: number[][];
  predicted32: number[];
  accuracy32: number;
}

describe('wrn convert --help', () => {
  it('is listed, with its flags and examples', async () => {
    const help = await runWrn(['--help']);
    expect(help.stdout).toMatch(/\n {2}convert \[options\] <file>/);
    const result = await runWrn(['convert', '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Usage: wrn convert [options] <file>');
    for (const flag of ['--model <name>', '--out <dir>', '--num-classes <n>', '--source <name>', '--input <HxW>', '--key <path>']) expect(result.stdout).toContain(flag);
    expect(result.stdout).toContain('Examples:\n  $ wrn convert resnet50.pth --model resnet50 --out models/resnet50');
  });
});

// Without ../shared the global set-up has said, in one line, that the real-data tests skip.
describe.skipIf(torchMissing !== undefined || NO_SHARED_DATA)('wrn convert: torchvision weights -> a TF.js model that predict, eval and loadLayersModel use', () => {
  const dir = scratchDir('convert');
  const model64 = join(dir, 'resnet18-64');
  const model32 = join(dir, 'resnet18-32');
  let oracle: Oracle;

  beforeAll(async () => {
    writeFileSync(join(dir, 'oracle.py'), ORACLE);
    execFileSync(PYTHON, [join(dir, 'oracle.py'), dir, SHARED_SUBSET, SAMPLE], { env: { ...process.env, OMP_NUM_THREADS: '2' } });
    oracle = JSON.parse(readFileSync(join(dir, 'oracle.json'), 'utf8')) as Oracle;
    await setBackend('cpu');
  });

  it('converts a torch.save .pth and says what it read and wrote', async () => {
    const result = await runWrn(['convert', join(dir, 'resnet18.pth'), '--model', 'resnet18', '--out', model64, '--input', '64x64', '--backend', 'wasm']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout.split('\n')).toEqual([
      `${join(dir, 'resnet18.pth')}: pth state_dict with torchvision names: 102 tensors (102 float32), 11,191,242 values; ignored 20 num_batches_tracked`,
      'resnet18: 11,181,642 parameters, 10 classes, input 64x64x3',
      expect.stringMatching(new RegExp(`^wrote ${model64}/model.json and ${model64}/weights.bin \\(44,7\\d\\d,\\d{3} bytes\\)$`)),
      'input normalisation recorded for predict/eval: mean (123.675, 116.28, 103.53) std (58.395, 57.12, 57.375) in 0..255 units',
      '',
    ]);
  });

  it("wrn predict gives torchvision's probabilities on real images", async () => {
    const result = await runWrn(['predict', '--checkpoint', model64, join(dir, 'img0.png'), join(dir, 'img1.png'), '--json', '--top', '10', '--backend', 'wasm']);
    expect(result.code, result.stderr).toBe(0);
    const predictions = JSON.parse(result.stdout) as { top: { label: number; probability: number }[] }[];
    predictions.forEach((prediction, i) => {
      for (const { label, probability } of prediction.top) expect(Math.abs(probability - oracle.probs[i]![label]!), `image ${i} class ${label}`).toBeLessThan(1e-5);
    });
  });

  it("wrn eval on 20 real held-out images predicts torchvision's classes at 32x32", async () => {
    const converted = await runWrn(['convert', join(dir, 'resnet18.pth'), '--model', 'resnet18', '--out', model32, '--input', '32x32', '--backend', 'wasm']);
    expect(converted.code, converted.stderr).toBe(0);
    // No --data-dir: the dataset recorded in model.json (cifar10, the embedded sample) and its normalisation.
    const result = await runWrn(['eval', '--checkpoint', model32, '--limit', '20', '--json', '--backend', 'wasm']);
    expect(result.code, result.stderr).toBe(0);
    const summary = JSON.parse(result.stdout) as { examples: number; accuracy: number };
    expect(summary.examples).toBe(20);
    expect(summary.accuracy).toBeCloseTo(oracle.accuracy32, 6);
  });

  it('tf.loadLayersModel reads the directory as a standard TF.js layers model (model.json + weights manifest)', async () => {
    const modelJson = JSON.parse(readFileSync(join(model32, 'model.json'), 'utf8')) as io.ModelJSON;
    const paths = modelJson.weightsManifest.flatMap((group) => group.paths);
    const weightData = Buffer.concat(paths.map((path) => readFileSync(join(model32, path))));
    registerCustomLayers();
    const model = await loadLayersModel(io.fromMemory({
      modelTopology: modelJson.modelTopology as object,
      weightSpecs: modelJson.weightsManifest.flatMap((group) => group.weights),
      weightData: weightData.buffer.slice(weightData.byteOffset, weightData.byteOffset + weightData.byteLength),
    }));
    try {
      const records = readFileSync(join(SAMPLE, 'test_batch.bin')).subarray(0, 20 * 3073);
      const mean = [123.675, 116.28, 103.53];
      const std = [58.395, 57.12, 57.375];
      const x = new Float32Array(20 * 32 * 32 * 3);
      for (let n = 0; n < 20; n++) {
        for (let p = 0; p < 1024; p++) {
          for (let c = 0; c < 3; c++) x[(n * 1024 + p) * 3 + c] = (records[n * 3073 + 1 + c * 1024 + p]! - mean[c]!) / std[c]!;
        }
      }
      const predicted = tidy(() => Array.from(argMax(model.predict(tensor4d(x, [20, 32, 32, 3])) as Tensor, 1).dataSync()));
      expect(predicted).toEqual(oracle.predicted32);
    } finally {
      model.dispose();
    }
  });

  describe('bad input exits 2 with the reason', () => {
    it('a truncated file', async () => {
      const bytes = readFileSync(join(dir, 'resnet18.pth'));
      writeFileSync(join(dir, 'cut.pth'), bytes.subarray(0, 1000));
      const result = await runWrn(['convert', join(dir, 'cut.pth'), '--model', 'resnet18', '--out', join(dir, 'x')]);
      expect(result.code).toBe(2);
      expect(result.stderr).toBe(`wrn: error: ${join(dir, 'cut.pth')}: zip: no end-of-central-directory record; the archive is truncated or not a zip file (at byte offset 1000)\n`);
    });

    it('weights of another model: the missing and unexpected keys', async () => {
      const result = await runWrn(['convert', join(dir, 'resnet18.pth'), '--model', 'resnet34', '--out', join(dir, 'x')]);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/^wrn: error: .*resnet18\.pth: the state_dict does not fit resnet34 with torchvision names: missing keys \(80\): layer1\.2\.conv1\.weight, layer1\.2\.bn1\.weight, /);
    });

    it('a number of classes the file does not have: the shape mismatch', async () => {
      const result = await runWrn(['convert', join(dir, 'resnet18.pth'), '--model', 'resnet18', '--num-classes', '1000', '--out', join(dir, 'x')]);
      expect(result.code).toBe(2);
      expect(result.stderr).toBe(`wrn: error: ${join(dir, 'resnet18.pth')}: tensor 'fc.weight' (for layer logits) has shape [10, 512], expected [1000, 512]\n`);
    });

    it('an unknown model name and a missing file', async () => {
      const unknown = await runWrn(['convert', join(dir, 'resnet18.pth'), '--model', 'resnet19', '--out', join(dir, 'x')]);
      expect(unknown.code).toBe(2);
      expect(unknown.stderr).toContain("wrn: error: --model resnet19: Invalid model name 'resnet19'");
      const missing = await runWrn(['convert', join(dir, 'nope.pth'), '--model', 'resnet18', '--out', join(dir, 'x')]);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toBe(`wrn: error: ${join(dir, 'nope.pth')}: cannot read (ENOENT)\n`);
    });
  });
});
