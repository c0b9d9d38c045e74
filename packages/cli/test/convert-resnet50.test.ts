// `wrn convert` on a torchvision resnet50 checkpoint (torch.save of a random-weight model with non-trivial
// BatchNorm statistics), checked against torchvision itself on real CIFAR-10 images: the converted model's logits
// (loaded with tf.loadLayersModel) and `wrn predict`'s probabilities on test images from ../shared/data, and
// `wrn eval`'s loss and accuracy on the embedded sample's held-out images, equal PyTorch's.
import '@tensorflow/tfjs-backend-wasm';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setBackend, tensor4d, tidy, type Tensor } from '@tensorflow/tfjs-core';
import { loadLayersModel } from '@tensorflow/tfjs-layers';
import { registerCustomLayers } from '@wrn/blocks';
import { fileSystemIO } from '@wrn/blocks/node';
import { beforeAll, describe, expect, it } from 'vitest';
import { NO_SHARED_DATA, runWrn, scratchDir, SHARED_SUBSET } from './run-wrn.js';

const PYTHON = '/usr/bin/python3';
/** The embedded CIFAR-10 sample that `wrn eval` reads by default. */
const SAMPLE = join(__dirname, '..', 'data', 'cifar10-sample');
/** Real CIFAR-10 test images upscaled to 64x64 for `wrn predict` and the logits; the sample's first held-out images at 32x32 for `wrn eval`. */
const PREDICT_IMAGES = 4;
const EVAL_IMAGES = 16;

function probeOracle(): string | undefined {
  const probe = spawnSync(PYTHON, ['-c', 'import torch, torchvision, PIL'], { encoding: 'utf8' });
  if (probe.error) return `${PYTHON} cannot run (${probe.error.message})`;
  if (probe.status !== 0) return `${PYTHON} cannot import torch, torchvision and PIL`;
  if (NO_SHARED_DATA) return `the CIFAR-10 images ${SHARED_SUBSET} are missing`;
  return undefined;
}
const oracleMissing = probeOracle();
if (oracleMissing !== undefined) {
  if (process.env.CI) throw new Error(`PyTorch oracle unavailable in CI: ${oracleMissing} (.ci/run installs python3-torch python3-torchvision python3-pil)`);
  console.log(`skipping the wrn convert resnet50 tests: ${oracleMissing}`);
}

/**
 * torchvision's resnet50(num_classes=10) with random weights and non-trivial BatchNorm parameters and running
 * statistics (every BN: the stem's, each bottleneck's three and the downsample's), saved by torch.save; its fc
 * scaled so that the logits are a few units (softmax then neither saturates nor flattens). What PyTorch computes:
 * the logits and probabilities of real CIFAR-10 test images upscaled to 64x64 (written as PNGs), and the mean
 * cross-entropy and accuracy of the first test images at 32x32, ImageNet normalisation throughout.
 */
const ORACLE = String.raw`
import json, sys
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F, torchvision
from PIL import Image
out, subset, sample, predict_images, eval_images = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
torch.manual_seed(50)
torch.set_num_threads(2)
model = torchvision.models.resnet50(num_classes=10)
with torch.no_grad():
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn_like(m.running_mean) * 0.2)
            m.running_var.copy_(torch.rand_like(m.running_var) + 0.5)
            m.weight.copy_(torch.rand_like(m.weight) + 0.5)
            m.bias.copy_(torch.randn_like(m.bias) * 0.2)
            m.num_batches_tracked.fill_(1234)
    model.fc.bias.copy_(torch.randn(10))
model.eval()
mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
def records(path, count):
    data = open(path, 'rb').read(count * 3073)
    return [(data[i * 3073], np.frombuffer(data[i * 3073 + 1:(i + 1) * 3073], dtype=np.uint8).reshape(3, 32, 32)) for i in range(count)]
big = []
for i, (_, chw) in enumerate(records(subset + '/test_batch.bin', predict_images)):
    hwc = chw.transpose(1, 2, 0).repeat(2, axis=0).repeat(2, axis=1)  # 64x64, nearest: exact in uint8
    Image.fromarray(np.ascontiguousarray(hwc)).save(out + '/img%d.png' % i)
    big.append(torch.tensor(hwc, dtype=torch.float32).permute(2, 0, 1))
x64 = (torch.stack(big) / 255 - mean) / std
with torch.no_grad():
    scale = 4 / model(x64).abs().max()
    model.fc.weight.mul_(scale)
    model.fc.bias.mul_(scale)
    logits = model(x64)
    held_out = records(sample + '/test_batch.bin', eval_images)
    small = torch.stack([torch.tensor(chw, dtype=torch.float32) for _, chw in held_out])
    labels = torch.tensor([label for label, _ in held_out])
    eval_logits = model((small / 255 - mean) / std)
torch.save(model.state_dict(), out + '/resnet50.pth')
json.dump({
    'input64': x64.permute(0, 2, 3, 1).reshape(-1).tolist(),
    'logits64': logits.reshape(-1).tolist(),
    'probs64': torch.softmax(logits, 1).tolist(),
    'evalLoss32': F.cross_entropy(eval_logits, labels).item(),
    'evalAccuracy32': (eval_logits.argmax(1) == labels).float().mean().item(),
}, open(out + '/oracle.json', 'w'))
`;

interface Oracle {
  input64: number[];
  logits64: number[];
  probs64: number[][];
  evalLoss32: number;
  evalAccuracy32: number;
}

/** max |a - b| / max |b|: the error relative to the scale of the reference. */
function maxRelativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  expect(actual.length).toBe(expected.length);
  let scale = 0;
  let error = 0;
  for (let i = 0; i < expected.length; i++) {
    scale = Math.max(scale, Math.abs(expected[i]!));
    error = Math.max(error, Math.abs(actual[i]! - expected[i]!));
  }
  return error / scale;
}

describe.skipIf(oracleMissing !== undefined)("wrn convert: torchvision resnet50 -> a TF.js model that computes torchvision's function", () => {
  const dir = scratchDir('convert-resnet50');
  const model64 = join(dir, 'resnet50-64');
  const model32 = join(dir, 'resnet50-32');
  let oracle: Oracle;

  beforeAll(async () => {
    writeFileSync(join(dir, 'oracle.py'), ORACLE);
    execFileSync(PYTHON, [join(dir, 'oracle.py'), dir, SHARED_SUBSET, SAMPLE, String(PREDICT_IMAGES), String(EVAL_IMAGES)], { env: { ...process.env, OMP_NUM_THREADS: '2' } });
    oracle = JSON.parse(readFileSync(join(dir, 'oracle.json'), 'utf8')) as Oracle;
    await setBackend('wasm');
  });

  it('converts the torch.save .pth (bottlenecks, downsample projections, every BN statistic)', async () => {
    const result = await runWrn(['convert', join(dir, 'resnet50.pth'), '--model', 'resnet50', '--out', model64, '--input', '64x64', '--backend', 'wasm']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const lines = result.stdout.split('\n');
    // 53 convs + 53 BNs x 4 + fc weight and bias; 53 num_batches_tracked ignored.
    expect(lines[0]).toBe(`${join(dir, 'resnet50.pth')}: pth state_dict with torchvision names: 267 tensors (267 float32), 23,581,642 values; ignored 53 num_batches_tracked`);
    expect(lines[1]).toBe('resnet50: 23,528,522 parameters, 10 classes, input 64x64x3');
  });

  it("tf.loadLayersModel's logits on real images at 64x64 equal torchvision's to 1e-5 relative", async () => {
    registerCustomLayers();
    const model = await loadLayersModel(fileSystemIO(model64));
    try {
      const logits = tidy(() => (model.predict(tensor4d(oracle.input64, [PREDICT_IMAGES, 64, 64, 3])) as Tensor).dataSync());
      const error = maxRelativeError(logits, oracle.logits64);
      console.log(`torchvision resnet50 via wrn convert at 64x64: max relative error of the logits vs PyTorch ${error.toExponential(2)}`);
      expect(error).toBeLessThan(1e-5);
    } finally {
      model.dispose();
    }
  });

  it("wrn predict gives torchvision's probabilities for every class of the real images, to 1e-5 relative", async () => {
    const files = Array.from({ length: PREDICT_IMAGES }, (_, i) => join(dir, `img${i}.png`));
    const result = await runWrn(['predict', '--checkpoint', model64, ...files, '--json', '--top', '10', '--backend', 'wasm']);
    expect(result.code, result.stderr).toBe(0);
    const predictions = JSON.parse(result.stdout) as { top: { label: number; probability: number }[] }[];
    expect(predictions).toHaveLength(PREDICT_IMAGES);
    predictions.forEach((prediction, i) => {
      const ours = new Array<number>(10).fill(Number.NaN);
      for (const { label, probability } of prediction.top) ours[label] = probability;
      expect(maxRelativeError(ours, oracle.probs64[i]!), `image ${i}`).toBeLessThan(1e-5);
    });
    // The probabilities are spread (not one-hot), so equality above is a real check.
    expect(Math.max(...oracle.probs64.flat())).toBeLessThan(0.99);
  });

  it("wrn eval on real held-out images at 32x32 gives torchvision's loss and accuracy", async () => {
    const converted = await runWrn(['convert', join(dir, 'resnet50.pth'), '--model', 'resnet50', '--out', model32, '--input', '32x32', '--backend', 'wasm']);
    expect(converted.code, converted.stderr).toBe(0);
    // No --data-dir: the dataset recorded in model.json (cifar10 by default, the embedded sample) and the
    // ImageNet normalisation recorded with it.
    const result = await runWrn(['eval', '--checkpoint', model32, '--limit', String(EVAL_IMAGES), '--json', '--backend', 'wasm']);
    expect(result.code, result.stderr).toBe(0);
    const summary = JSON.parse(result.stdout) as { examples: number; loss: number; accuracy: number };
    expect(summary.examples).toBe(EVAL_IMAGES);
    console.log(`wrn eval of the converted resnet50 on ${EVAL_IMAGES} held-out images: loss ${summary.loss} (PyTorch ${oracle.evalLoss32}), accuracy ${summary.accuracy} (PyTorch ${oracle.evalAccuracy32})`);
    expect(Math.abs(summary.loss - oracle.evalLoss32) / oracle.evalLoss32).toBeLessThan(1e-5);
    expect(summary.accuracy).toBeCloseTo(oracle.evalAccuracy32, 6);
  });
});
