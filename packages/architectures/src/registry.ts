import type { BlockConfig, DatasetKind, Family, ModelConfig, StageConfig } from './config.js';

/** A model's defaults before options: a {@link ModelConfig} without the per-run fields. */
export type BaseModelConfig = Omit<ModelConfig, 'numClasses' | 'inputShape' | 'dropRate' | 'dropPathRate' | 'zeroInitLastGamma' | 'seed'> & {
  numClasses: number;
  inputShape: [number, number, number];
};

const CIFAR_INPUT: [number, number, number] = [32, 32, 3];
const IMAGENET_INPUT: [number, number, number] = [224, 224, 3];

/** Blocks per stage of the ImageNet ResNets (He et al. 2015, table 1); their depths are reserved for ImageNet. */
const IMAGENET_LAYERS: Readonly<Record<number, readonly number[]>> = {
  18: [2, 2, 2, 2],
  34: [3, 4, 6, 3],
  50: [3, 4, 6, 3],
  101: [3, 4, 23, 3],
  152: [3, 8, 36, 3],
};
const IMAGENET_DEPTHS = Object.keys(IMAGENET_LAYERS).map(Number);
const BOTTLENECK_DEPTHS = [50, 101, 152];

/** The grammar of model names, shown in errors and `wrn models`. */
export const NAME_PATTERNS: readonly string[] = [
  'resnet<6n+2> (CIFAR, option A shortcuts, e.g. resnet20, resnet110, resnet1202)',
  'resnet18 | resnet34 | resnet50 | resnet101 | resnet152 (ImageNet)',
  'preact-resnet<d> (CIFAR; basic blocks with d = 6n+2 below 164, bottleneck with d = 9n+2 from 164: preact-resnet110, -164, -1001)',
  'wrn-<d>-<k>[-b<k1>_<k2>...] (CIFAR WRN; block type B(k1,k2,...) default b3_3, d = 3*l*N + 4 with l convs per block: 6N+4 for B(3,3))',
  'wrn-50-<k> | wrn-101-<k> (ImageNet wide bottleneck ResNet, e.g. wrn-50-2)',
  'resnext<d>-<C>x<w>d (CIFAR with d = 9n+2, e.g. resnext29-8x64d; ImageNet with d in 50, 101, 152, e.g. resnext50-32x4d)',
];

/** Names listed by `wrn models`: every architecture of the four papers' tables. */
export const REGISTERED_NAMES: readonly string[] = [
  'resnet20', 'resnet32', 'resnet44', 'resnet56', 'resnet110', 'resnet1202',
  'preact-resnet110', 'preact-resnet164', 'preact-resnet1001',
  'wrn-16-4', 'wrn-16-8', 'wrn-16-10', 'wrn-22-8', 'wrn-22-10', 'wrn-28-10', 'wrn-28-12',
  'wrn-40-1', 'wrn-40-2', 'wrn-40-4', 'wrn-40-8', 'wrn-40-10', 'wrn-40-2-b3_1_3', 'wrn-50-2',
  'resnext29-8x64d', 'resnext29-16x64d', 'resnext50-32x4d', 'resnext101-32x8d',
  'resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152',
];

export class ModelNameError extends Error {
  constructor(name: string, reason: string) {
    super(`Invalid model name '${name}': ${reason}.\nValid names:\n${NAME_PATTERNS.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'ModelNameError';
  }
}

function cifarStages(widths: readonly number[], blocks: number, mids?: readonly number[], groups = 1): StageConfig[] {
  return widths.map((outChannels, i) => ({
    blocks,
    outChannels,
    ...(mids === undefined ? {} : { midChannels: mids[i] as number }),
    groups,
    strides: i === 0 ? 1 : 2,
  }));
}

function imagenetStages(layers: readonly number[], bottleneck: boolean, midOf: (i: number) => number, groups = 1): StageConfig[] {
  return layers.map((blocks, i) => ({
    blocks,
    outChannels: (bottleneck ? 256 : 64) * 2 ** i,
    ...(bottleneck ? { midChannels: midOf(i) } : {}),
    groups,
    strides: i === 0 ? 1 : 2,
  }));
}

function base(
  name: string, family: Family, dataset: DatasetKind, block: BlockConfig, order: ModelConfig['order'],
  shortcut: ModelConfig['shortcut'], stages: StageConfig[], stemChannels: number,
): BaseModelConfig {
  const cifar = dataset === 'cifar';
  return {
    name, family, dataset, stem: cifar ? 'cifar' : 'imagenet', stemChannels, block, order, shortcut, stages,
    // The official code of each family: resnet-pre-act.lua strides on the first 1x1 of its bottlenecks (v1),
    // torchvision on the 3x3 (v1.5); the WRN PyTorch code initialises with kaiming_normal_'s fan-in, the others
    // (fb.resnet.torch, resnet-pre-act.lua, ResNeXt, torchvision) over the fan-out.
    strideLayout: family === 'preact-resnet' ? 'v1' : 'v1.5',
    convInit: family === 'wrn' && cifar ? 'fan-in' : 'fan-out',
    numClasses: cifar ? 10 : 1000,
    inputShape: cifar ? [...CIFAR_INPUT] : [...IMAGENET_INPUT],
  };
}

function positive(text: string, name: string, what: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1) throw new ModelNameError(name, `${what} must be a positive integer, got ${text}`);
  return value;
}

function resnet(name: string, depth: number): BaseModelConfig {
  const imagenet = IMAGENET_LAYERS[depth];
  if (imagenet !== undefined) {
    const bottleneck = BOTTLENECK_DEPTHS.includes(depth);
    return base(name, 'resnet', 'imagenet', { kind: bottleneck ? 'bottleneck' : 'basic' }, 'original', 'B',
      imagenetStages(imagenet, bottleneck, (i) => 64 * 2 ** i), 64);
  }
  if ((depth - 2) % 6 !== 0 || depth < 8) {
    throw new ModelNameError(name, `CIFAR ResNet depth must be 6n+2 with n >= 1 (8, 14, 20, 26, 32, ...), got ${depth}; ImageNet depths are ${IMAGENET_DEPTHS.join(', ')}`);
  }
  return base(name, 'resnet', 'cifar', { kind: 'basic' }, 'original', 'A', cifarStages([16, 32, 64], (depth - 2) / 6), 16);
}

function preactResnet(name: string, depth: number): BaseModelConfig {
  if (depth >= 164) {
    if ((depth - 2) % 9 !== 0) {
      throw new ModelNameError(name, `pre-activation ResNet depths from 164 use bottleneck blocks and must be 9n+2 (164, 173, ..., 1001), got ${depth}`);
    }
    return base(name, 'preact-resnet', 'cifar', { kind: 'bottleneck' }, 'preact', 'B',
      cifarStages([64, 128, 256], (depth - 2) / 9, [16, 32, 64]), 16);
  }
  if ((depth - 2) % 6 !== 0 || depth < 8) {
    throw new ModelNameError(name, `pre-activation ResNet depths below 164 use basic blocks and must be 6n+2 (8, 14, ..., 110, ...), got ${depth}`);
  }
  return base(name, 'preact-resnet', 'cifar', { kind: 'basic' }, 'preact', 'B', cifarStages([16, 32, 64], (depth - 2) / 6), 16);
}

function wrn(name: string, depth: number, widen: number, kernelText: string | undefined): BaseModelConfig {
  if (depth === 50 || depth === 101) {
    if (kernelText !== undefined) throw new ModelNameError(name, `block types (-b...) apply to CIFAR WRNs; wrn-${depth}-<k> is the ImageNet bottleneck WRN`);
    const layers = IMAGENET_LAYERS[depth] as readonly number[];
    return base(name, 'wrn', 'imagenet', { kind: 'bottleneck' }, 'original', 'B', imagenetStages(layers, true, (i) => 64 * widen * 2 ** i), 64);
  }
  const kernels = kernelText === undefined ? [3, 3] : kernelText.split('_').map((k) => positive(k, name, 'a kernel size in -b'));
  const l = kernels.length;
  if ((depth - 4) % (3 * l) !== 0 || depth < 3 * l + 4) {
    const rule = l === 2 ? '6N+4 (10, 16, 22, 28, 34, 40, ...)' : `${3 * l}N+4 for ${l} conv(s) per block (${3 * l + 4}, ${6 * l + 4}, ...)`;
    throw new ModelNameError(name, `WRN depth must be ${rule} with N >= 1 blocks per group, got ${depth}; ImageNet WRNs are wrn-50-<k> and wrn-101-<k>`);
  }
  const blocks = (depth - 4) / (3 * l);
  return base(name, 'wrn', 'cifar', { kind: 'wrn', kernels }, 'preact', 'B', cifarStages([16 * widen, 32 * widen, 64 * widen], blocks), 16);
}

function resnext(name: string, depth: number, cardinality: number, groupWidth: number): BaseModelConfig {
  const width = cardinality * groupWidth;
  if (BOTTLENECK_DEPTHS.includes(depth)) {
    return base(name, 'resnext', 'imagenet', { kind: 'bottleneck' }, 'original', 'B',
      imagenetStages(IMAGENET_LAYERS[depth] as readonly number[], true, (i) => width * 2 ** i, cardinality), 64);
  }
  if ((depth - 2) % 9 !== 0 || depth < 11) {
    throw new ModelNameError(name, `CIFAR ResNeXt depth must be 9n+2 (11, 20, 29, 38, ...), got ${depth}; ImageNet depths are ${BOTTLENECK_DEPTHS.join(', ')}`);
  }
  return base(name, 'resnext', 'cifar', { kind: 'bottleneck' }, 'original', 'B',
    cifarStages([256, 512, 1024], (depth - 2) / 9, [width, 2 * width, 4 * width], cardinality), 64);
}

/** Parses a model name in paper notation into its default config; throws {@link ModelNameError} saying what is valid. */
export function parseModelName(rawName: string): BaseModelConfig {
  if (typeof rawName !== 'string') throw new ModelNameError(String(rawName), 'a model name must be a string');
  const name = rawName.trim().toLowerCase();
  let match: RegExpExecArray | null;
  if ((match = /^resnet(\d+)$/.exec(name))) return resnet(name, positive(match[1] as string, name, 'depth'));
  if ((match = /^preact-resnet(\d+)$/.exec(name))) return preactResnet(name, positive(match[1] as string, name, 'depth'));
  if ((match = /^wrn-(\d+)-(\d+)(?:-b(\d+(?:_\d+)*))?$/.exec(name))) {
    return wrn(name, positive(match[1] as string, name, 'depth'), positive(match[2] as string, name, 'widening factor k'), match[3]);
  }
  if ((match = /^resnext(\d+)-(\d+)x(\d+)d$/.exec(name))) {
    return resnext(name, positive(match[1] as string, name, 'depth'), positive(match[2] as string, name, 'cardinality C'),
      positive(match[3] as string, name, 'group width d'));
  }
  throw new ModelNameError(rawName, 'it matches none of the name patterns');
}
