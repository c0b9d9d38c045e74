import { initializers, input, layers, model, type LayersModel, type SymbolicTensor } from '@tensorflow/tfjs-layers';
import { DropPath, SeededDropout } from './layers/dropout.js';
import { GroupedConv2D, PaddedConv2D } from './layers/grouped_conv.js';
import { TorchBatchNormalization } from './layers/batch_norm.js';
import { PaddedMaxPooling2D } from './layers/pooling.js';
import { ZeroPadShortcut } from './layers/zero_pad_shortcut.js';
import { assertPositiveInteger, assertRate, convOutputSize } from './layers/common.js';

/** Shape of one example (no batch axis): [H, W, C] for feature maps, [units] after pooling. */
export type ExampleShape = readonly number[];

interface NodeBase {
  /** Layer name in the built model; unique in the graph. */
  name: string;
  /** Names of the nodes feeding this one. */
  inputs: readonly string[];
  outputShape: ExampleShape;
}

export interface InputNode extends NodeBase { kind: 'input' }
export interface ConvNode extends NodeBase {
  kind: 'conv';
  filters: number;
  kernelSize: number;
  strides: number;
  /** 1 = ordinary conv (tfjs-layers Conv2D, or PaddedConv2D with explicit padding); >1 = GroupedConv2D. */
  groups: number;
  /** 'same' (TF), or p zeros on every side (Torch's `padding=p`); see {@link torchPadding}. */
  padding: 'same' | number;
  /** He-normal initialisation over the fan-out k*k*Cout or the fan-in k*k*Cin/G. */
  init: ConvInit;
  /** Initializer seed; undefined = unseeded. */
  seed: number | undefined;
}
export interface BatchNormNode extends NodeBase { kind: 'batchNorm'; zeroGamma: boolean }
export interface ReluNode extends NodeBase { kind: 'relu' }
export interface AddNode extends NodeBase { kind: 'add' }
export interface DropoutNode extends NodeBase { kind: 'dropout'; rate: number }
export interface DropPathNode extends NodeBase { kind: 'dropPath'; rate: number }
export interface ZeroPadShortcutNode extends NodeBase { kind: 'zeroPadShortcut'; strides: number; outChannels: number }
export interface MaxPoolNode extends NodeBase { kind: 'maxPool'; poolSize: number; strides: number; padding: 'same' | number }
export interface GlobalAvgPoolNode extends NodeBase { kind: 'globalAvgPool' }
export interface DenseNode extends NodeBase { kind: 'dense'; units: number; seed: number | undefined }

/** One layer of a network plan. */
export type NetworkNode =
  | InputNode | ConvNode | BatchNormNode | ReluNode | AddNode | DropoutNode | DropPathNode | ZeroPadShortcutNode
  | MaxPoolNode | GlobalAvgPoolNode | DenseNode;

/** A node's output, as handed from one builder call to the next. */
export interface Tap {
  readonly name: string;
  readonly shape: ExampleShape;
}

/**
 * He-normal initialisation of conv kernels, N(0, 2/fan): 'fan-out' (fan = k*k*Cout) as fb.resnet.torch, the
 * pre-activation ResNet, ResNeXt and torchvision code; 'fan-in' (fan = k*k*Cin/G, torch.nn.init.kaiming_normal_'s
 * default) as the WRN PyTorch code (pytorch/utils.py conv_params).
 */
export type ConvInit = 'fan-out' | 'fan-in';
export const CONV_INITS: readonly ConvInit[] = ['fan-out', 'fan-in'];

/**
 * The padding the papers' Torch code and PyTorch give a k x k conv or pool with stride s: k//2 zeros on every side
 * ('same' where that is what TF's 'same' does too: stride 1, or a 1x1). TF's 'same' pads a 3x3/2 conv on an even
 * size 0 before and 1 after, which samples a grid shifted by one pixel from Torch's 1/1; output sizes agree.
 */
export function torchPadding(kernelSize: number, strides: number): 'same' | number {
  return strides > 1 && kernelSize > 1 ? Math.floor(kernelSize / 2) : 'same';
}

/** BatchNorm as in Torch (momentum 0.1 there = 0.9 in Keras' convention, epsilon 1e-5). */
export const BATCH_NORM_MOMENTUM = 0.9;
export const BATCH_NORM_EPSILON = 1e-5;

function mixSeed(base: number, index: number): number {
  // Distinct, well-spread 31-bit seeds per layer from one model seed (a 32-bit integer hash).
  let h = (Math.imul(base | 0, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca77)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return (h ^ (h >>> 16)) & 0x7fffffff;
}

/**
 * A network as data: the list of layers with their shapes, built by the block functions. The same plan is
 * turned into a `tf.LayersModel` ({@link buildLayersModel}) and counted arithmetically ({@link planParams},
 * {@link planMultiplyAdds}), so counts never drift from what is built, and a huge model can be counted without
 * allocating it.
 */
export class NetworkGraph {
  readonly nodes: NetworkNode[] = [];
  private readonly byName = new Map<string, NetworkNode>();
  private readonly seed: number | undefined;
  private readonly convInit: ConvInit;
  private seededLayers = 0;

  /**
   * @param seed initializer seed of the whole model (each layer derives its own); undefined = unseeded.
   * @param convInit He-normal over the fan-out (default) or the fan-in of every conv.
   */
  constructor(options: { seed?: number | undefined; convInit?: ConvInit | undefined } = {}) {
    if (options.seed !== undefined && !Number.isSafeInteger(options.seed)) {
      throw new RangeError(`NetworkGraph: seed must be an integer, got ${String(options.seed)}`);
    }
    const convInit = options.convInit ?? 'fan-out';
    if (!CONV_INITS.includes(convInit)) throw new RangeError(`NetworkGraph: convInit must be one of ${CONV_INITS.join(', ')}, got '${String(convInit)}'`);
    this.seed = options.seed;
    this.convInit = convInit;
  }

  node(name: string): NetworkNode {
    const found = this.byName.get(name);
    if (found === undefined) throw new Error(`NetworkGraph: no node named '${name}'`);
    return found;
  }

  private push<N extends NetworkNode>(node: N): Tap {
    if (this.byName.has(node.name)) throw new Error(`NetworkGraph: duplicate layer name '${node.name}'`);
    for (const from of node.inputs) this.node(from);
    this.nodes.push(node);
    this.byName.set(node.name, node);
    return { name: node.name, shape: node.outputShape };
  }

  private nextSeed(): number | undefined {
    return this.seed === undefined ? undefined : mixSeed(this.seed, this.seededLayers++);
  }

  input(shape: readonly [number, number, number], name = 'input'): Tap {
    shape.forEach((size, axis) => assertPositiveInteger(size, `input shape [${shape.join(', ')}] axis ${axis}`));
    return this.push({ kind: 'input', name, inputs: [], outputShape: [...shape] });
  }

  conv(x: Tap, args: { filters: number; kernelSize: number; strides?: number; groups?: number }, name: string): Tap {
    const [height, width, channels] = featureMap(x, name);
    const { filters, kernelSize } = args;
    const strides = args.strides ?? 1;
    const groups = args.groups ?? 1;
    assertPositiveInteger(filters, `${name} filters`);
    assertPositiveInteger(kernelSize, `${name} kernel size`);
    assertPositiveInteger(strides, `${name} strides`);
    assertPositiveInteger(groups, `${name} groups`);
    if (channels % groups !== 0 || filters % groups !== 0) {
      throw new RangeError(`${name}: ${channels} input and ${filters} output channels must both be multiples of groups=${groups}`);
    }
    const padding = torchPadding(kernelSize, strides);
    const outputShape = [convOutputSize(height, kernelSize, strides, padding), convOutputSize(width, kernelSize, strides, padding), filters];
    return this.push({
      kind: 'conv', name, inputs: [x.name], outputShape, filters, kernelSize, strides, groups, padding, init: this.convInit, seed: this.nextSeed(),
    });
  }

  batchNorm(x: Tap, name: string, options: { zeroGamma?: boolean } = {}): Tap {
    featureMap(x, name);
    return this.push({ kind: 'batchNorm', name, inputs: [x.name], outputShape: x.shape, zeroGamma: options.zeroGamma ?? false });
  }

  relu(x: Tap, name: string): Tap {
    return this.push({ kind: 'relu', name, inputs: [x.name], outputShape: x.shape });
  }

  add(a: Tap, b: Tap, name: string): Tap {
    if (a.shape.join() !== b.shape.join()) {
      throw new Error(`${name}: cannot add shapes [${a.shape.join(', ')}] (${a.name}) and [${b.shape.join(', ')}] (${b.name})`);
    }
    return this.push({ kind: 'add', name, inputs: [a.name, b.name], outputShape: a.shape });
  }

  dropout(x: Tap, rate: number, name: string): Tap {
    assertRate(rate, `${name} dropout rate`);
    return this.push({ kind: 'dropout', name, inputs: [x.name], outputShape: x.shape, rate });
  }

  dropPath(x: Tap, rate: number, name: string): Tap {
    assertRate(rate, `${name} drop-path rate`);
    return this.push({ kind: 'dropPath', name, inputs: [x.name], outputShape: x.shape, rate });
  }

  zeroPadShortcut(x: Tap, strides: number, outChannels: number, name: string): Tap {
    const [height, width, channels] = featureMap(x, name);
    assertPositiveInteger(strides, `${name} strides`);
    if (outChannels < channels) {
      throw new RangeError(`${name}: option A (zero-padding) shortcut cannot reduce ${channels} channels to ${outChannels}`);
    }
    const outputShape = [Math.ceil(height / strides), Math.ceil(width / strides), outChannels];
    return this.push({ kind: 'zeroPadShortcut', name, inputs: [x.name], outputShape, strides, outChannels });
  }

  maxPool(x: Tap, poolSize: number, strides: number, name: string): Tap {
    const [height, width, channels] = featureMap(x, name);
    assertPositiveInteger(poolSize, `${name} pool size`);
    assertPositiveInteger(strides, `${name} strides`);
    const padding = torchPadding(poolSize, strides);
    const outputShape = [convOutputSize(height, poolSize, strides, padding), convOutputSize(width, poolSize, strides, padding), channels];
    return this.push({ kind: 'maxPool', name, inputs: [x.name], outputShape, poolSize, strides, padding });
  }

  globalAvgPool(x: Tap, name: string): Tap {
    const channels = featureMap(x, name)[2];
    return this.push({ kind: 'globalAvgPool', name, inputs: [x.name], outputShape: [channels] });
  }

  dense(x: Tap, units: number, name: string): Tap {
    if (x.shape.length !== 1) throw new Error(`${name}: dense expects a flat input, got [${x.shape.join(', ')}]`);
    assertPositiveInteger(units, `${name} units`);
    return this.push({ kind: 'dense', name, inputs: [x.name], outputShape: [units], units, seed: this.nextSeed() });
  }
}

function featureMap(x: Tap, where: string): [number, number, number] {
  if (x.shape.length !== 3) throw new Error(`${where}: expected an [H, W, C] feature map, got [${x.shape.join(', ')}] from ${x.name}`);
  return x.shape as unknown as [number, number, number];
}

function channelsOf(graph: NetworkGraph, node: NetworkNode): number {
  const from = graph.node(node.inputs[0] as string).outputShape;
  return from[from.length - 1] as number;
}

/** Trainable parameters of one node (conv kernels without bias, BN gamma and beta, dense kernel and bias). */
export function nodeParams(graph: NetworkGraph, node: NetworkNode): number {
  switch (node.kind) {
    case 'conv':
      return node.kernelSize * node.kernelSize * (channelsOf(graph, node) / node.groups) * node.filters;
    case 'batchNorm':
      return 2 * channelsOf(graph, node);
    case 'dense':
      return (channelsOf(graph, node) + 1) * node.units;
    default:
      return 0;
  }
}

/** Multiply-adds of one node for one example: convs and dense layers only (BN, ReLU, pooling, additions are not counted). */
export function nodeMultiplyAdds(graph: NetworkGraph, node: NetworkNode): number {
  switch (node.kind) {
    case 'conv': {
      const [height, width] = node.outputShape as [number, number, number];
      return height * width * node.kernelSize * node.kernelSize * (channelsOf(graph, node) / node.groups) * node.filters;
    }
    case 'dense':
      return channelsOf(graph, node) * node.units;
    default:
      return 0;
  }
}

export function planParams(graph: NetworkGraph): number {
  return graph.nodes.reduce((total, node) => total + nodeParams(graph, node), 0);
}

export function planMultiplyAdds(graph: NetworkGraph): number {
  return graph.nodes.reduce((total, node) => total + nodeMultiplyAdds(graph, node), 0);
}

/** Type names used in layer tables, matching the class a node becomes in the built model. */
export function nodeTypeName(node: NetworkNode): string {
  switch (node.kind) {
    case 'input': return 'InputLayer';
    case 'conv': return node.groups > 1 ? GroupedConv2D.className : node.padding === 'same' ? 'Conv2D' : PaddedConv2D.className;
    case 'batchNorm': return TorchBatchNormalization.className;
    case 'relu': return 'Activation';
    case 'add': return 'Add';
    case 'dropout': return SeededDropout.className;
    case 'dropPath': return DropPath.className;
    case 'zeroPadShortcut': return ZeroPadShortcut.className;
    case 'maxPool': return node.padding === 'same' ? 'MaxPooling2D' : PaddedMaxPooling2D.className;
    case 'globalAvgPool': return 'GlobalAveragePooling2D';
    case 'dense': return 'Dense';
  }
}

/** One row of a layer table. */
export interface LayerRow {
  name: string;
  type: string;
  /** Output shape with the batch axis first (null = any batch size). */
  outputShape: (number | null)[];
  params: number;
  multiplyAdds: number;
}

/** The layer table of a plan (what `wrn info` prints), without building the model. */
export function planLayerTable(graph: NetworkGraph): LayerRow[] {
  return graph.nodes.map((node) => ({
    name: node.name,
    type: nodeTypeName(node),
    outputShape: [null, ...node.outputShape],
    params: nodeParams(graph, node),
    multiplyAdds: nodeMultiplyAdds(graph, node),
  }));
}

/**
 * Builds the plan as a tf.LayersModel with the functional API. Convs have no bias, Torch's padding
 * ({@link torchPadding}) and He-normal initialisation over the fan-out N(0, 2/(k*k*Cout)) or the fan-in
 * ({@link ConvInit}); BatchNorm is Torch's ({@link TorchBatchNormalization}: unbiased moving variance), gamma 1
 * (0 where `zeroGamma`), beta 0; the dense layer is initialised as Torch's Linear, U(-1/sqrt(fanIn),
 * 1/sqrt(fanIn)), bias 0; the 3x3/2 max pool pads 1 on each side as Torch's. The output is logits.
 */
export function buildLayersModel(graph: NetworkGraph, name: string): LayersModel {
  const outputs = new Map<string, SymbolicTensor>();
  const first = graph.nodes[0];
  if (first === undefined || first.kind !== 'input') throw new Error(`buildLayersModel ${name}: the plan must start with an input node`);
  const inputTensor = input({ shape: [...first.outputShape], name: first.name });
  outputs.set(first.name, inputTensor);
  let last: SymbolicTensor = inputTensor;
  for (const node of graph.nodes.slice(1)) {
    const from = node.inputs.map((inputName) => outputs.get(inputName) as SymbolicTensor);
    const layer = createLayer(graph, node);
    last = layer.apply(from.length === 1 ? (from[0] as SymbolicTensor) : from) as SymbolicTensor;
    outputs.set(node.name, last);
  }
  return model({ inputs: inputTensor, outputs: last, name });
}

function createLayer(graph: NetworkGraph, node: NetworkNode): layers.Layer {
  const { name } = node;
  switch (node.kind) {
    case 'input':
      throw new Error(`buildLayersModel: a second input node '${name}' is not supported`);
    case 'conv': {
      const seed = node.seed === undefined ? {} : { seed: node.seed };
      const kernelInitializer = node.init === 'fan-in' ? ('heNormalFanIn' as const) : ('heNormalFanOut' as const);
      if (node.groups > 1 || node.padding !== 'same') {
        const args = {
          name, filters: node.filters, kernelSize: node.kernelSize, strides: node.strides, padding: node.padding, kernelInitializer, ...seed,
        };
        return node.groups > 1 ? new GroupedConv2D({ ...args, groups: node.groups }) : new PaddedConv2D(args);
      }
      const fan = node.kernelSize * node.kernelSize * (node.init === 'fan-in' ? channelsOf(graph, node) : node.filters);
      const stddev = Math.sqrt(2 / fan);
      return layers.conv2d({
        name, filters: node.filters, kernelSize: node.kernelSize, strides: node.strides, padding: 'same', useBias: false,
        kernelInitializer: initializers.randomNormal({ mean: 0, stddev, ...(node.seed === undefined ? {} : { seed: node.seed }) }),
      });
    }
    case 'batchNorm':
      return new TorchBatchNormalization({
        name, momentum: BATCH_NORM_MOMENTUM, epsilon: BATCH_NORM_EPSILON, gammaInitializer: node.zeroGamma ? 'zeros' : 'ones',
      });
    case 'relu':
      return layers.activation({ name, activation: 'relu' });
    case 'add':
      return layers.add({ name });
    case 'dropout':
      return new SeededDropout({ name, rate: node.rate });
    case 'dropPath':
      return new DropPath({ name, rate: node.rate });
    case 'zeroPadShortcut':
      return new ZeroPadShortcut({ name, strides: node.strides, outChannels: node.outChannels });
    case 'maxPool':
      return node.padding === 'same'
        ? layers.maxPooling2d({ name, poolSize: node.poolSize, strides: node.strides, padding: 'same' })
        : new PaddedMaxPooling2D({ name, poolSize: node.poolSize, strides: node.strides, padding: node.padding });
    case 'globalAvgPool':
      return layers.globalAveragePooling2d({ name });
    case 'dense': {
      const limit = 1 / Math.sqrt(channelsOf(graph, node));
      const seed = node.seed === undefined ? {} : { seed: node.seed };
      return layers.dense({
        name, units: node.units,
        kernelInitializer: initializers.randomUniform({ minval: -limit, maxval: limit, ...seed }),
        biasInitializer: 'zeros',
      });
    }
  }
}
