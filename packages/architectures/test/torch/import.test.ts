import '@tensorflow/tfjs-backend-wasm';
import { join } from 'node:path';
import { gather, memory, setBackend, tensor, tidy, transpose, type Tensor } from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildModel, importTorchWeights, readTorchStateDict, TorchDtypeError, TorchKeyMismatchError, TorchShapeMismatchError,
  TorchWeightsError, type TorchSource,
} from '../../src/index.js';
import { makeFixtures, readBytes, readExpected, readFloats, maxRelativeError, sameBits, torchMissing } from './fixtures.js';

let dir = '';
let cleanup = () => {};

/** The PyTorch name of each of our weights, written out per source so that a mapping bug cannot hide in shared code. */
function torchKeyOf(source: TorchSource, layer: string, role: string): string {
  const suffix = { kernel: 'weight', bias: 'bias', gamma: 'weight', beta: 'bias', moving_mean: 'running_mean', moving_variance: 'running_var' }[role]!;
  if (source === 'wrn-official') {
    if (layer === 'stem_conv') return 'conv0';
    if (layer === 'head_bn') return `bn.${suffix}`;
    if (layer === 'logits') return `fc.${suffix}`;
    const m = /^stage(\d)_block(\d)_(conv|bn|shortcut_conv)(\d?)$/.exec(layer)!;
    const base = `group${Number(m[1]) - 1}.block${Number(m[2]) - 1}`;
    if (m[3] === 'shortcut_conv') return `${base}.convdim`;
    return m[3] === 'conv' ? `${base}.conv${Number(m[4]) - 1}` : `${base}.bn${Number(m[4]) - 1}.${suffix}`;
  }
  if (layer === 'stem_conv') return 'conv1.weight';
  if (layer === 'stem_bn') return `bn1.${suffix}`;
  if (layer === 'logits') return `${source === 'akamaster' ? 'linear' : 'fc'}.${suffix}`;
  const m = /^stage(\d)_block(\d)_(conv\d|bn\d|shortcut_conv|shortcut_bn)$/.exec(layer)!;
  const part = m[3] === 'shortcut_conv' ? 'downsample.0' : m[3] === 'shortcut_bn' ? 'downsample.1' : m[3];
  return `layer${m[1]}.${Number(m[2]) - 1}.${part}.${suffix}`;
}

/**
 * akamaster's option A pads new channels on both sides, @wrn's after: our channel j of a C-channel map is
 * akamaster's channel ours(C, j) (stage widths 16, 32, 64: the first 16 of 32 are theirs 8..23, then 0..7, 24..31).
 */
function akamasterOrder(channels: number): number[] {
  if (channels <= 16) return Array.from({ length: channels }, (_, j) => j);
  const inner = akamasterOrder(channels / 2).map((c) => c + channels / 4);
  return [...inner, ...Array.from({ length: channels / 4 }, (_, j) => j), ...Array.from({ length: channels / 4 }, (_, j) => j + (3 * channels) / 4)];
}

/**
 * Each weight of `model` equals torch's tensor after PyTorch's layout is moved to TF.js's with tf.transpose
 * (OIHW -> HWIO for conv weights, [out, in] -> [in, out] for linear ones), bit for bit; and every torch tensor
 * but num_batches_tracked was used.
 */
function expectWeightsFromTorch(model: LayersModel, name: string, source: TorchSource): void {
  const expected = readExpected(dir, name);
  const used = new Set<string>();
  for (const layer of model.layers) {
    for (const weight of layer.weights) {
      const role = weight.originalName.slice(weight.originalName.lastIndexOf('/') + 1);
      const key = torchKeyOf(source, layer.name, role);
      const torch = expected.get(key);
      expect(torch, `${layer.name}/${role} -> ${key}`).toBeDefined();
      used.add(key);
      const ours = weight.read().dataSync() as Float32Array;
      const want = tidy(() => {
        let t = tensor(torch!.values!, torch!.shape);
        if (source === 'akamaster') {
          // relabel the channel axes (conv O and I, linear in, BN vectors), never the classes
          const axes = t.rank === 4 ? [0, 1] : t.rank === 2 ? [1] : layer.name === 'logits' ? [] : [0];
          for (const axis of axes) t = gather(t, akamasterOrder(t.shape[axis]!), axis);
        }
        const perm = t.rank === 4 ? [2, 3, 1, 0] : t.rank === 2 ? [1, 0] : [0];
        return transpose(t, perm).dataSync() as Float32Array;
      });
      expect(sameBits(ours, want), `${layer.name}/${role} equals ${key}`).toBe(true);
    }
  }
  const unused = [...expected.keys()].filter((key) => !used.has(key));
  expect(unused.every((key) => key.endsWith('num_batches_tracked')), `unused: ${unused.join(', ')}`).toBe(true);
}

function predict(model: LayersModel, name: string): Float32Array {
  const input = readFloats(join(dir, `${name}.input.bin`));
  const [, height, width, channels] = model.inputs[0]!.shape as number[];
  return tidy(() => (model.predict(tensor(input, [input.length / (height! * width! * channels!), height!, width!, channels!])) as Tensor).dataSync() as Float32Array);
}

describe.skipIf(torchMissing !== undefined)('importing PyTorch weights into @wrn models', () => {
  beforeAll(async () => {
    await setBackend('wasm');
    ({ dir, cleanup } = await makeFixtures(['resnet18', 'resnext50', 'wrn', 'akamaster']));
  });
  afterAll(() => cleanup());

  const CASES: { label: string; model: string; size: number; files: string[]; source: TorchSource; logits?: string }[] = [
    { label: 'torchvision resnet18', model: 'resnet18', size: 64, files: ['resnet18-f16.pth', 'resnet18-bf16.safetensors', 'resnet18.pth'], source: 'torchvision', logits: 'resnet18' },
    { label: 'torchvision resnext50_32x4d (grouped convs)', model: 'resnext50-32x4d', size: 64, files: ['resnext50.pth'], source: 'torchvision', logits: 'resnext50' },
    { label: "the official WRN code's WRN-16-2", model: 'wrn-16-2', size: 32, files: ['wrn-f16.pth', 'wrn-bf16.safetensors', 'wrn.safetensors', 'wrn.pth'], source: 'wrn-official', logits: 'wrn' },
    { label: "akamaster's resnet20 (option A)", model: 'resnet20', size: 32, files: ['akamaster.safetensors', 'akamaster.pth'], source: 'akamaster', logits: 'akamaster' },
  ];

  for (const { label, model: name, size, files, source, logits } of CASES) {
    describe(label, () => {
      // One model per family; each file's import overwrites all its weights (the float32 .pth comes last).
      let model: LayersModel;
      beforeAll(() => {
        model = buildModel(name, { numClasses: 10, inputShape: [size, size, 3], seed: 1 });
      });
      afterAll(() => model.dispose());

      for (const file of files) {
        it(`from ${file}: every weight equals torch's, transposed`, async () => {
          const before = memory().numTensors;
          const report = await importTorchWeights(model, readBytes(join(dir, file)), { file });
          expect(memory().numTensors).toBe(before);
          expect(report.source).toBe(source);
          expect(report.tensorsLoaded).toBe(model.weights.length);
          expect(report.ignored.every((key) => key.endsWith('num_batches_tracked'))).toBe(true);
          expectWeightsFromTorch(model, file.replace(/\.(pth|safetensors)$/, ''), source);
        });
      }

      if (logits !== undefined) {
        it(`logits on real CIFAR-10 images at ${size}x${size} equal PyTorch's (eval mode)`, () => {
          const ours = predict(model, logits);
          const vsTorch = maxRelativeError(ours, readFloats(join(dir, `${logits}.logits.bin`)));
          const vsTfSame = maxRelativeError(ours, readFloats(join(dir, `${logits}.logits-tfsame.bin`)));
          console.log(`${label} at ${size}x${size}: max relative error of the logits vs PyTorch ${vsTorch.toExponential(2)}`);
          // The weights and every layer but the padding of strided convs/max-pool must be exactly PyTorch's:
          // the logits equal the reference either with PyTorch's own padding or with TF 'same' padding emulated.
          expect(Math.min(vsTorch, vsTfSame), `relative error vs torch ${vsTorch.toExponential(2)}, vs torch with TF 'same' padding ${vsTfSame.toExponential(2)}`).toBeLessThan(1e-5);
          expect(vsTorch, `${label}: the logits differ from PyTorch's by ${vsTorch.toExponential(2)} of their scale but equal those of PyTorch with TF 'same' padding emulated (${vsTfSame.toExponential(2)}): so everything but the padding of strided convolutions and the stem pool is PyTorch's: the model pads as TF's 'same', not symmetrically as PyTorch`).toBeLessThan(1e-5);
        });
      }
    });
  }

  describe('errors', () => {
    it('missing and unexpected keys are listed, and the model is left as it was', async () => {
      const model = buildModel('resnet20', { seed: 3 });
      try {
        const dict = await readTorchStateDict(readBytes(join(dir, 'akamaster.pth')));
        dict.tensors.delete('layer1.0.conv1.weight');
        dict.tensors.delete('bn1.running_var');
        dict.tensors.set('layer4.0.conv1.weight', dict.tensors.get('conv1.weight')!);
        const before = model.getWeights().map((w) => w.dataSync().slice());
        const error = await importTorchWeights(model, dict).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(TorchKeyMismatchError);
        expect((error as TorchKeyMismatchError).missing).toEqual(['bn1.running_var', 'layer1.0.conv1.weight']);
        expect((error as TorchKeyMismatchError).unexpected).toEqual(['layer4.0.conv1.weight']);
        expect((error as Error).message).toBe(
          'the state_dict does not fit resnet20 with akamaster names: missing keys (2): bn1.running_var, layer1.0.conv1.weight; unexpected keys (1): layer4.0.conv1.weight',
        );
        const after = model.getWeights().map((w) => w.dataSync());
        expect(after.every((values, i) => sameBits(values as Float32Array, before[i] as Float32Array))).toBe(true);
      } finally {
        model.dispose();
      }
    });

    it('a shape mismatch names the tensor, the layer, what the layer needs and what the file has', async () => {
      const model = buildModel('resnet18', { numClasses: 5, inputShape: [32, 32, 3] });
      try {
        await expect(importTorchWeights(model, readBytes(join(dir, 'resnet18.pth')), { file: 'resnet18.pth' })).rejects.toThrow(TorchShapeMismatchError);
        await expect(importTorchWeights(model, readBytes(join(dir, 'resnet18.pth')), { file: 'resnet18.pth' })).rejects.toThrow(
          "resnet18.pth: tensor 'fc.weight' (for layer logits) has shape [10, 512], expected [5, 512]",
        );
      } finally {
        model.dispose();
      }
    });

    it('an int64 tensor where a weight belongs', async () => {
      const model = buildModel('resnet20');
      try {
        await expect(importTorchWeights(model, readBytes(join(dir, 'akamaster-int64.pth')))).rejects.toThrow(TorchDtypeError);
        await expect(importTorchWeights(model, readBytes(join(dir, 'akamaster-int64.pth')))).rejects.toThrow(
          "tensor 'linear.bias' has dtype int64; supported: float32, float16, bfloat16 (converted to float32)",
        );
      } finally {
        model.dispose();
      }
    });

    it('a model the source does not define', async () => {
      const model = buildModel('wrn-16-2');
      try {
        await expect(importTorchWeights(model, readBytes(join(dir, 'resnet18.pth')), { source: 'torchvision' })).rejects.toThrow(TorchWeightsError);
        await expect(importTorchWeights(model, readBytes(join(dir, 'resnet18.pth')), { source: 'torchvision' })).rejects.toThrow(
          "layer 'head_bn' of wrn-16-2 has no counterpart in torchvision's names; is wrn-16-2 a model torchvision defines?",
        );
      } finally {
        model.dispose();
      }
    });
  });
});
