import { initializers, input, layers, model, type LayersModel, type SymbolicTensor } from '@tensorflow/tfjs-layers';
import { DropPath, SeededDropout } from './layers/dropout.js';
import { GroupedConv2D, PaddedConv2D } from './layers/grouped_conv.js';
import { TorchBatchNormalization } from './layers/batch_norm.js';
import { PaddedMaxPooling2D } from './layers/pooling.js';
import { ZeroPadShortcut } from './layers/zero_pad_shortcut.js';
import { ResidualAdd } from './layers/residual_add.js';
import { assertPositiveInteger, convOutputSize } from './layers/common.js';

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

/** A node as a builder method hands it to the graph: everything but the output shape, which its kind's rule computes. */
type NodeFields<N extends NetworkNode> = N extends InputNode ? N : Omit<N, 'outputShape'>;

/** Everything the graph knows about one kind of node, in one place. */
interface NodeKind<N extends NetworkNode> {
  /** The shape rule: the output shape from the node's fields and its inputs; throws where the inputs do not fit. */
  outputShape(node: NodeFields<N>, inputs: readonly Tap[]): ExampleShape;
  /** Trainable parameters, from the channels of the first input (none where absent). */
  params?(node: N, inChannels: number): number;
  /** Multiply-adds for one example (convs and dense layers; none where absent). */
  multiplyAdds?(node: N, inChannels: number): number;
  /** The class name a layer table shows: what the node becomes in the built model. */
  typeName(node: N): string;
  /** The tfjs-layers layer the node becomes ({@link buildLayersModel}). */
  createLayer(node: N, inChannels: number): layers.Layer;
}

const sameShape = (_node: unknown, [x]: readonly Tap[]): ExampleShape => (x as Tap).shape;
const batchNormArgs = (node: BatchNormNode) => ({
  name: node.name, momentum: BATCH_NORM_MOMENTUM, epsilon: BATCH_NORM_EPSILON, gammaInitializer: node.zeroGamma ? ('zeros' as const) : ('ones' as const),
});
const seedArg = (seed: number | undefined) => (seed === undefined ? {} : { seed });

const NODE_KINDS: { [K in NetworkNode['kind']]: NodeKind<Extract<NetworkNode, { kind: K }>> } = {
  input: {
    outputShape: (node) => {
      node.outputShape.forEach((size, axis) => assertPositiveInteger(size, `input shape [${node.outputShape.join(', ')}] axis ${axis}`));
      return node.outputShape;
    },
    typeName: () => 'InputLayer',
    createLayer: (node) => { throw new Error(`buildLayersModel: a second input node '${node.name}' is not supported`); },
  },
  conv: {
    outputShape: (node, [x]) => {
      const [height, width, channels] = featureMap(x as Tap, node.name);
      if (channels % node.groups !== 0 || node.filters % node.groups !== 0) {
        throw new RangeError(`${node.name}: ${channels} input and ${node.filters} output channels must both be multiples of groups=${node.groups}`);
      }
      const size = (length: number) => convOutputSize(length, node.kernelSize, node.strides, node.padding);
      return [size(height), size(width), node.filters];
    },
    params: (node, inChannels) => node.kernelSize * node.kernelSize * (inChannels / node.groups) * node.filters,
    multiplyAdds: (node, inChannels) => {
      const [height, width] = node.outputShape as [number, number, number];
      return height * width * node.kernelSize * node.kernelSize * (inChannels / node.groups) * node.filters;
    },
    typeName: (node) => (node.groups > 1 ? GroupedConv2D.className : node.padding === 'same' ? 'Conv2D' : PaddedConv2D.className),
    createLayer: (node, inChannels) => {
      const { name, filters, kernelSize, strides, padding, groups } = node;
      const kernelInitializer = node.init === 'fan-in' ? ('heNormalFanIn' as const) : ('heNormalFanOut' as const);
      if (groups > 1) return new GroupedConv2D({ name, filters, kernelSize, strides, padding, groups, kernelInitializer, ...seedArg(node.seed) });
      if (padding !== 'same') return new PaddedConv2D({ name, filters, kernelSize, strides, padding, kernelInitializer, ...seedArg(node.seed) });
      const fan = kernelSize * kernelSize * (node.init === 'fan-in' ? inChannels : filters);
      return layers.conv2d({
        name, filters, kernelSize, strides, padding: 'same', useBias: false,
        kernelInitializer: initializers.randomNormal({ mean: 0, stddev: Math.sqrt(2 / fan), ...seedArg(node.seed) }),
      });
    },
  },
  batchNorm: {
    outputShape: (node, [x]) => (featureMap(x as Tap, node.name), (x as Tap).shape),
    params: (_node, inChannels) => 2 * inChannels,
    typeName: () => TorchBatchNormalization.className,
    createLayer: (node) => new TorchBatchNormalization(batchNormArgs(node)),
  },
  relu: {
    outputShape: sameShape,
    typeName: () => 'Activation',
    createLayer: (node) => layers.activation({ name: node.name, activation: 'relu' }),
  },
  add: {
    outputShape: (node, [a, b]) => {
      const [left, right] = [a as Tap, b as Tap];
      if (left.shape.join() !== right.shape.join()) {
        throw new Error(`${node.name}: cannot add shapes [${left.shape.join(', ')}] (${left.name}) and [${right.shape.join(', ')}] (${right.name})`);
      }
      return left.shape;
    },
    typeName: () => ResidualAdd.className,
    createLayer: (node) => new ResidualAdd({ name: node.name }),
  },
  dropout: {
    outputShape: sameShape,
    typeName: () => SeededDropout.className,
    createLayer: (node) => new SeededDropout({ name: node.name, rate: node.rate }),
  },
  dropPath: {
    outputShape: sameShape,
    typeName: () => DropPath.className,
    createLayer: (node) => new DropPath({ name: node.name, rate: node.rate }),
  },
  zeroPadShortcut: {
    outputShape: (node, [x]) => {
      const [height, width, channels] = featureMap(x as Tap, node.name);
      if (node.outChannels < channels) {
        throw new RangeError(`${node.name}: option A (zero-padding) shortcut cannot reduce ${channels} channels to ${node.outChannels}`);
      }
      return [Math.ceil(height / node.strides), Math.ceil(width / node.strides), node.outChannels];
    },
    typeName: () => ZeroPadShortcut.className,
    createLayer: (node) => new ZeroPadShortcut({ name: node.name, strides: node.strides, outChannels: node.outChannels }),
  },
  maxPool: {
    outputShape: (node, [x]) => {
      const [height, width, channels] = featureMap(x as Tap, node.name);
      const size = (length: number) => convOutputSize(length, node.poolSize, node.strides, node.padding);
      return [size(height), size(width), channels];
    },
    typeName: (node) => (node.padding === 'same' ? 'MaxPooling2D' : PaddedMaxPooling2D.className),
    createLayer: ({ name, poolSize, strides, padding }) => (padding === 'same'
      ? layers.maxPooling2d({ name, poolSize, strides, padding: 'same' })
      : new PaddedMaxPooling2D({ name, poolSize, strides, padding })),
  },
  globalAvgPool: {
    outputShape: (node, [x]) => [featureMap(x as Tap, node.name)[2]],
    typeName: () => 'GlobalAveragePooling2D',
    createLayer: (node) => layers.globalAveragePooling2d({ name: node.name }),
  },
  dense: {
    outputShape: (node, [x]) => {
      const { name, shape } = x as Tap;
      if (shape.length !== 1) throw new Error(`${node.name}: dense expects a flat input, got [${shape.join(', ')}] from ${name}`);
      return [node.units];
    },
    params: (node, inChannels) => (inChannels + 1) * node.units,
    multiplyAdds: (node, inChannels) => inChannels * node.units,
    typeName: () => 'Dense',
    createLayer: (node, inChannels) => {
      // Torch's Linear: U(-1/sqrt(fanIn), 1/sqrt(fanIn)), bias 0 (tfjs-layers would take Glorot)
      const limit = 1 / Math.sqrt(inChannels);
      return layers.dense({
        name: node.name, units: node.units,
        kernelInitializer: initializers.randomUniform({ minval: -limit, maxval: limit, ...seedArg(node.seed) }),
        biasInitializer: 'zeros',
      });
    },
  },
};

/** A node's entry in {@link NODE_KINDS}; one cast, as TypeScript cannot tie `node.kind` to the entry's node type. */
function kindOf(node: { kind: NetworkNode['kind'] }): NodeKind<NetworkNode> {
  return NODE_KINDS[node.kind] as unknown as NodeKind<NetworkNode>;
}

/**
 * A network as data: the list of layers with their shapes, built by the block functions. The same plan is
 * turned into a `tf.LayersModel` ({@link buildLayersModel}) and counted arithmetically ({@link planParams},
 * {@link planMultiplyAdds}), so counts never drift from what is built, and a huge model can be counted without
 * allocating it. Its arguments are trusted (a model config is validated once, by its schema); what it checks are
 * the shape rules: that each node fits the nodes feeding it.
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
    this.seed = options.seed;
    this.convInit = options.convInit ?? 'fan-out';
  }

  node(name: string): NetworkNode {
    const found = this.byName.get(name);
    if (found === undefined) throw new Error(`NetworkGraph: no node named '${name}'`);
    return found;
  }

  private push(fields: NodeFields<NetworkNode>): Tap {
    if (this.byName.has(fields.name)) throw new Error(`NetworkGraph: duplicate layer name '${fields.name}'`);
    const inputs = fields.inputs.map((from) => ({ name: from, shape: this.node(from).outputShape }));
    const node = { ...fields, outputShape: kindOf(fields).outputShape(fields, inputs) } as NetworkNode;
    this.nodes.push(node);
    this.byName.set(node.name, node);
    return { name: node.name, shape: node.outputShape };
  }

  private nextSeed(): number | undefined {
    return this.seed === undefined ? undefined : mixSeed(this.seed, this.seededLayers++);
  }

  input(shape: readonly [number, number, number], name = 'input'): Tap {
    return this.push({ kind: 'input', name, inputs: [], outputShape: [...shape] });
  }

  conv(x: Tap, args: { filters: number; kernelSize: number; strides?: number; groups?: number }, name: string): Tap {
    const { filters, kernelSize, strides = 1, groups = 1 } = args;
    const padding = torchPadding(kernelSize, strides);
    return this.push({ kind: 'conv', name, inputs: [x.name], filters, kernelSize, strides, groups, padding, init: this.convInit, seed: this.nextSeed() });
  }

  batchNorm(x: Tap, name: string, options: { zeroGamma?: boolean } = {}): Tap {
    return this.push({ kind: 'batchNorm', name, inputs: [x.name], zeroGamma: options.zeroGamma ?? false });
  }

  relu(x: Tap, name: string): Tap {
    return this.push({ kind: 'relu', name, inputs: [x.name] });
  }

  add(a: Tap, b: Tap, name: string): Tap {
    return this.push({ kind: 'add', name, inputs: [a.name, b.name] });
  }

  dropout(x: Tap, rate: number, name: string): Tap {
    return this.push({ kind: 'dropout', name, inputs: [x.name], rate });
  }

  dropPath(x: Tap, rate: number, name: string): Tap {
    return this.push({ kind: 'dropPath', name, inputs: [x.name], rate });
  }

  zeroPadShortcut(x: Tap, strides: number, outChannels: number, name: string): Tap {
    return this.push({ kind: 'zeroPadShortcut', name, inputs: [x.name], strides, outChannels });
  }

  maxPool(x: Tap, poolSize: number, strides: number, name: string): Tap {
    return this.push({ kind: 'maxPool', name, inputs: [x.name], poolSize, strides, padding: torchPadding(poolSize, strides) });
  }

  globalAvgPool(x: Tap, name: string): Tap {
    return this.push({ kind: 'globalAvgPool', name, inputs: [x.name] });
  }

  dense(x: Tap, units: number, name: string): Tap {
    return this.push({ kind: 'dense', name, inputs: [x.name], units, seed: this.nextSeed() });
  }
}

function featureMap(x: Tap, where: string): [number, number, number] {
  if (x.shape.length !== 3) throw new Error(`${where}: expected an [H, W, C] feature map, got [${x.shape.join(', ')}] from ${x.name}`);
  return x.shape as unknown as [number, number, number];
}

/** Channels of a node's first input (0 for the input node). */
function inChannelsOf(graph: NetworkGraph, node: NetworkNode): number {
  const from = node.inputs[0];
  if (from === undefined) return 0;
  const shape = graph.node(from).outputShape;
  return shape[shape.length - 1] as number;
}

/** Trainable parameters of one node (conv kernels without bias, BN gamma and beta, dense kernel and bias). */
export function nodeParams(graph: NetworkGraph, node: NetworkNode): number {
  return kindOf(node).params?.(node, inChannelsOf(graph, node)) ?? 0;
}

/** Multiply-adds of one node for one example: convs and dense layers only (BN, ReLU, pooling, additions are not counted). */
export function nodeMultiplyAdds(graph: NetworkGraph, node: NetworkNode): number {
  return kindOf(node).multiplyAdds?.(node, inChannelsOf(graph, node)) ?? 0;
}

export function planParams(graph: NetworkGraph): number {
  return graph.nodes.reduce((total, node) => total + nodeParams(graph, node), 0);
}

export function planMultiplyAdds(graph: NetworkGraph): number {
  return graph.nodes.reduce((total, node) => total + nodeMultiplyAdds(graph, node), 0);
}

/** Type names used in layer tables, matching the class a node becomes in the built model. */
export function nodeTypeName(node: NetworkNode): string {
  return kindOf(node).typeName(node);
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
export function buildLayersModel(graph: NetworkGraph, name: string, options: BuildLayersModelOptions = {}): LayersModel {
  const [first, ...rest] = graph.nodes;
  if (first === undefined || first.kind !== 'input') throw new Error(`buildLayersModel ${name}: the plan must start with an input node`);
  const inputTensor = input({ shape: [...first.outputShape], name: first.name });
  const outputs = new Map<string, SymbolicTensor>([[first.name, inputTensor]]);
  const fusedRelus = options.fuseBatchNormRelu === false ? new Map<string, string>() : batchNormReluPairs(graph);
  if (options.fuseAddRelu !== false) for (const [relu, add] of addReluPairs(graph)) fusedRelus.set(relu, add);
  const fusedLayers = new Set(fusedRelus.values());
  let last: SymbolicTensor = inputTensor;
  for (const node of rest) {
    if (node.kind === 'relu' && fusedRelus.has(node.name)) {
      // Computed by the BatchNorm or ResidualAdd layer before it (activation 'relu').
      outputs.set(node.name, outputs.get(node.inputs[0] as string) as SymbolicTensor);
      continue;
    }
    const from = node.inputs.map((inputName) => outputs.get(inputName) as SymbolicTensor);
    const fused = fusedLayers.has(node.name);
    const layer =
      fused && node.kind === 'batchNorm'
        ? new TorchBatchNormalization({ ...batchNormArgs(node), activation: 'relu' })
        : fused && node.kind === 'add'
          ? new ResidualAdd({ name: node.name, activation: 'relu' })
          : kindOf(node).createLayer(node, inChannelsOf(graph, node));
    last = layer.apply(from.length === 1 ? (from[0] as SymbolicTensor) : from) as SymbolicTensor;
    outputs.set(node.name, last);
  }
  return model({ inputs: inputTensor, outputs: last, name });
}

/** How {@link buildLayersModel} builds. */
export interface BuildLayersModelOptions {
  /**
   * Build each ReLU that follows a BatchNorm feeding only it into that BatchNorm layer (activation 'relu'). Default
   * true; false gives the plan's layers one for one (same weights, same function: for A/B measurements).
   */
  fuseBatchNormRelu?: boolean;
  /**
   * Build each ReLU that follows a residual addition feeding only it into that ResidualAdd layer (activation 'relu':
   * the original-order blocks' relu(branch + shortcut)). Default true; false gives the plan's layers one for one.
   */
  fuseAddRelu?: boolean;
}

/**
 * The ReLU nodes that the built model computes inside the BatchNorm layer before them, each mapped to that BatchNorm's
 * name: a ReLU whose one input is a BatchNorm that feeds nothing else (conv-BN-ReLU, BN-ReLU-conv). In inference that
 * is one pass over the activation instead of two (batch_norm.ts's BATCH_NORM_RELU_INFERENCE_KERNEL where the backend has it),
 * and one layer less for tfjs-layers to run; the function is the same.
 */
function batchNormReluPairs(graph: NetworkGraph): Map<string, string> {
  return reluPairs(graph, 'batchNorm');
}

/**
 * The ReLU nodes that the built model computes inside the residual addition before them (ResidualAdd activation
 * 'relu'), each mapped to that addition's name: a ReLU whose one input is an add that feeds nothing else. In
 * inference that is one pass instead of two (residual_add.ts's ADD_RELU_INFERENCE_KERNEL where the backend has it).
 */
function addReluPairs(graph: NetworkGraph): Map<string, string> {
  return reluPairs(graph, 'add');
}

function reluPairs(graph: NetworkGraph, kind: 'batchNorm' | 'add'): Map<string, string> {
  const consumers = new Map<string, number>();
  for (const node of graph.nodes) for (const from of node.inputs) consumers.set(from, (consumers.get(from) ?? 0) + 1);
  const pairs = new Map<string, string>();
  for (const node of graph.nodes) {
    const from = node.inputs[0];
    if (node.kind !== 'relu' || node.inputs.length !== 1 || from === undefined) continue;
    if (graph.node(from).kind === kind && consumers.get(from) === 1) pairs.set(node.name, from);
  }
  return pairs;
}
