import type { LayersModel } from '@tensorflow/tfjs-layers';
import {
  NetworkGraph,
  basicBlockSpec,
  bottleneckBlockSpec,
  buildLayersModel,
  planLayerTable,
  planMultiplyAdds,
  planParams,
  residualBlock,
  wrnBlockSpec,
  type LayerRow,
  type ResidualBlockSpec,
} from '@wrn/blocks';
import {
  BuildModelOptionsSchema,
  ModelConfigSchema,
  formatIssues,
  type BuildModelOptions,
  type DatasetKind,
  type Family,
  type ModelConfig,
  type StageConfig,
} from './config.js';
import { REGISTERED_NAMES, parseModelName } from './registry.js';

/**
 * Resolves a name plus options into the full config of a model (what a run records in its config.json).
 * Throws on an invalid name (saying which names are valid) or invalid options (saying which option and why).
 */
export function resolveModelConfig(name: string, options: BuildModelOptions = {}): ModelConfig {
  const parsedOptions = BuildModelOptionsSchema.safeParse(options);
  if (!parsedOptions.success) throw new RangeError(`Invalid options for model '${name}': ${formatIssues(parsedOptions.error)}`);
  const opts = parsedOptions.data;
  const defaults = parseModelName(name);
  const dropRate = opts.dropRate ?? 0;
  const config: ModelConfig = {
    ...defaults,
    order: opts.blockOrder ?? defaults.order,
    shortcut: opts.shortcut ?? defaults.shortcut,
    strideLayout: opts.strideLayout ?? defaults.strideLayout,
    convInit: opts.convInit ?? defaults.convInit,
    numClasses: opts.numClasses ?? defaults.numClasses,
    inputShape: opts.inputShape ?? defaults.inputShape,
    dropRate: Array.isArray(dropRate) ? [...dropRate] : defaults.stages.map(() => dropRate),
    dropPathRate: opts.dropPathRate ?? 0,
    zeroInitLastGamma: opts.zeroInitLastGamma ?? false,
    ...(opts.seed === undefined ? {} : { seed: opts.seed }),
  };
  return validateModelConfig(config);
}

/** Checks a config (for example one read back from a run's config.json); returns it parsed or throws saying what is wrong. */
export function validateModelConfig(config: unknown): ModelConfig {
  const parsed = ModelConfigSchema.safeParse(config);
  if (!parsed.success) {
    const name = (config as { name?: unknown } | null)?.name;
    throw new RangeError(`Invalid model config${typeof name === 'string' ? ` '${name}'` : ''}: ${formatIssues(parsed.error)}`);
  }
  return parsed.data;
}

function blockSpec(config: ModelConfig, stage: StageConfig, strides: number): ResidualBlockSpec {
  const { order, shortcut } = config;
  switch (config.block.kind) {
    case 'basic':
      return basicBlockSpec({ outChannels: stage.outChannels, strides, order, shortcut });
    case 'bottleneck':
      return bottleneckBlockSpec({
        midChannels: stage.midChannels as number, outChannels: stage.outChannels, groups: stage.groups, strides,
        strideOn: config.strideLayout === 'v1.5' ? '3x3' : '1x1', order, shortcut,
      });
    case 'wrn':
      return wrnBlockSpec({ kernels: config.block.kernels, outChannels: stage.outChannels, strides, order, shortcut });
  }
}

/**
 * The layer plan of a validated config ({@link validateModelConfig}; trusted as typed, as the blocks it builds
 * trust it): the single builder every architecture goes through. Its layers are what
 * {@link buildModelFromConfig} instantiates and what {@link countParams} / {@link countMultiplyAdds} count.
 */
export function planModel(config: ModelConfig): NetworkGraph {
  const graph = new NetworkGraph({ seed: config.seed, convInit: config.convInit });
  let x = graph.input(config.inputShape);
  if (config.stem === 'imagenet') {
    x = graph.conv(x, { filters: config.stemChannels, kernelSize: 7, strides: 2 }, 'stem_conv');
    x = graph.relu(graph.batchNorm(x, 'stem_bn'), 'stem_relu');
    x = graph.maxPool(x, 3, 2, 'stem_pool');
  } else {
    x = graph.conv(x, { filters: config.stemChannels, kernelSize: 3 }, 'stem_conv');
    // A pre-activation network's first block starts with BN-ReLU itself.
    if (config.order === 'original') x = graph.relu(graph.batchNorm(x, 'stem_bn'), 'stem_relu');
  }
  const totalBlocks = config.stages.reduce((total, stage) => total + stage.blocks, 0);
  let blockIndex = 0;
  config.stages.forEach((stage, s) => {
    for (let b = 0; b < stage.blocks; b++) {
      const spec = blockSpec(config, stage, b === 0 ? stage.strides : 1);
      spec.dropRate = config.dropRate[s] ?? 0;
      // stochastic depth linear decay rule: 0 at the first block, dropPathRate at the last
      spec.dropPathRate = totalBlocks > 1 ? (config.dropPathRate * blockIndex) / (totalBlocks - 1) : config.dropPathRate;
      spec.zeroInitLastGamma = config.zeroInitLastGamma;
      x = residualBlock(graph, x, spec, `stage${s + 1}_block${b + 1}`);
      blockIndex++;
    }
  });
  if (config.order === 'preact') x = graph.relu(graph.batchNorm(x, 'head_bn'), 'head_relu');
  x = graph.globalAvgPool(x, 'head_pool');
  graph.dense(x, config.numClasses, 'logits');
  return graph;
}

/**
 * Builds a config (for example one read back from a run's config.json, so it is validated here first) as a
 * tf.LayersModel (functional API) that outputs logits; the config is kept in its user metadata.
 */
export function buildModelFromConfig(config: ModelConfig): LayersModel {
  return buildValidModel(validateModelConfig(config));
}

function buildValidModel(config: ModelConfig): LayersModel {
  const model = buildLayersModel(planModel(config), config.name);
  model.setUserDefinedMetadata({ wrnModelConfig: config });
  return model;
}

/**
 * Builds a model by name in paper notation: `buildModel('wrn-28-10', { numClasses: 100, dropRate: 0.3 })`.
 * The output is logits (no softmax). Names and options: see `NAME_PATTERNS` and {@link BuildModelOptions}.
 */
export function buildModel(name: string, options: BuildModelOptions = {}): LayersModel {
  return buildValidModel(resolveModelConfig(name, options));
}

function sizeOf(shape: readonly (number | null)[]): number {
  return shape.reduce<number>((a, b) => a * (b ?? 1), 1);
}

function isLayersModel(value: unknown): value is LayersModel {
  return typeof value === 'object' && value !== null && 'layers' in value && 'trainableWeights' in value;
}

/** A model, its config, or its name (with options). */
export type ModelRef = LayersModel | ModelConfig | string;

function configOf(ref: ModelConfig | string, options?: BuildModelOptions): ModelConfig {
  return typeof ref === 'string' ? resolveModelConfig(ref, options) : validateModelConfig(ref);
}

/**
 * Trainable parameters: conv kernels, BN gamma and beta, dense kernel and bias (BN moving statistics excluded).
 * From a built model it sums its trainable weights; from a config or name it counts the plan without building.
 */
export function countParams(ref: ModelRef, options?: BuildModelOptions): number {
  if (isLayersModel(ref)) return ref.trainableWeights.reduce((total, weight) => total + sizeOf(weight.shape), 0);
  return planParams(planModel(configOf(ref, options)));
}

/**
 * Multiply-adds of one forward pass of one example: convs and the dense layer (BN, ReLU, pooling and additions not
 * counted). For a built model it reads each conv/dense layer's kernel and output shape.
 */
export function countMultiplyAdds(ref: ModelRef, options?: BuildModelOptions): number {
  if (!isLayersModel(ref)) return planMultiplyAdds(planModel(configOf(ref, options)));
  let total = 0;
  for (const layer of ref.layers) {
    const kernel = layer.weights.find((weight) => weight.originalName.endsWith('/kernel'));
    if (kernel === undefined) continue;
    const out = layer.outputShape as (number | null)[];
    const kernelSize = sizeOf(kernel.shape);
    // conv: out H x out W x (k*k*Cin/G*Cout); dense: in x out
    total += kernelSize * (out.length === 4 ? (out[1] ?? 1) * (out[2] ?? 1) : 1);
  }
  return total;
}

/** The layer table of a built model: name, class, output shape, trainable parameters, multiply-adds. */
export function layerTable(model: LayersModel): LayerRow[] {
  return model.layers.map((layer) => {
    const out = layer.outputShape as (number | null)[];
    let params = 0;
    let multiplyAdds = 0;
    for (const weight of layer.trainableWeights) {
      const size = sizeOf(weight.shape);
      params += size;
      if (weight.originalName.endsWith('/kernel')) multiplyAdds += size * (out.length === 4 ? (out[1] ?? 1) * (out[2] ?? 1) : 1);
    }
    return { name: layer.name, type: layer.getClassName(), outputShape: [...out], params, multiplyAdds };
  });
}

/** What `wrn models` lists for a name. */
export interface ModelInfo {
  name: string;
  family: Family;
  dataset: DatasetKind;
  numClasses: number;
  inputShape: [number, number, number];
  params: number;
}

/** What `wrn info` prints: the resolved config, totals and the layer table, computed without building the model. */
export interface ModelSummary extends ModelInfo {
  multiplyAdds: number;
  config: ModelConfig;
  layers: LayerRow[];
}

export function summarizeModel(name: string, options: BuildModelOptions = {}): ModelSummary {
  const config = resolveModelConfig(name, options);
  const graph = planModel(config);
  return {
    name: config.name, family: config.family, dataset: config.dataset, numClasses: config.numClasses,
    inputShape: config.inputShape, params: planParams(graph), multiplyAdds: planMultiplyAdds(graph), config,
    layers: planLayerTable(graph),
  };
}

/** The registry: every named architecture of the four papers with its family, dataset and default-size parameter count. */
export function listModels(): ModelInfo[] {
  return REGISTERED_NAMES.map((name) => {
    const config = resolveModelConfig(name);
    return {
      name, family: config.family, dataset: config.dataset, numClasses: config.numClasses,
      inputShape: config.inputShape, params: planParams(planModel(config)),
    };
  });
}

/** Renders layer rows as a fixed-width text table (for `wrn info`). */
export function formatLayerTable(rows: readonly LayerRow[]): string {
  const header = ['layer', 'type', 'output shape', 'params', 'mult-adds'];
  const cells = rows.map((row) => [
    row.name, row.type, `[${row.outputShape.map((d) => (d === null ? 'N' : String(d))).join(', ')}]`,
    row.params.toLocaleString('en-US'), row.multiplyAdds.toLocaleString('en-US'),
  ]);
  const widths = header.map((title, i) => Math.max(title.length, ...cells.map((c) => (c[i] as string).length)));
  const line = (c: readonly string[]) => c.map((text, i) => (i >= 3 ? text.padStart(widths[i] as number) : text.padEnd(widths[i] as number))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)].join('\n');
}
