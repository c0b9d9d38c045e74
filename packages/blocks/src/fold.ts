import { mul, tensor, tidy, type Tensor } from '@tensorflow/tfjs-core';
import { models, type LayersModel } from '@tensorflow/tfjs-layers';
import { TorchBatchNormalization } from './layers/batch_norm.js';
import { GroupedConv2D, PaddedConv2D } from './layers/grouped_conv.js';
import { ResidualAdd } from './layers/residual_add.js';

/**
 * What {@link foldBatchNorm} changed: each BatchNorm folded into the conv before it, and each ReLU layer computed by
 * the layer before it instead.
 */
export interface FoldReport {
  /** [conv, batchNorm] layer names: the BatchNorm's scale and shift are now the conv's weights and bias. */
  batchNorms: [string, string][];
  /** [layer, relu] layer names: the ReLU layer is gone and the layer before it has activation 'relu'. */
  relus: [string, string][];
}

type LayerJson = { class_name: string; name: string; config: Record<string, unknown>; inbound_nodes: unknown[][][] };
type ModelJson = { class_name: string; config: { layers: LayerJson[]; output_layers: unknown[][] } };

// Convs that take a bias and a fused activation: tfjs-layers' Conv2D (its call runs tf.fused.conv2d, one
// FusedConv2D kernel with the bias and ReLU in its epilogue), PaddedConv2D (the same op with Torch's padding) and
// GroupedConv2D (in its native kernel's epilogue where the backend has it; elsewhere a bias add and a ReLU).
const FOLDABLE_CONVS = new Set(['Conv2D', PaddedConv2D.className, GroupedConv2D.className]);
// Layers with an activation argument of 'linear' or 'relu' that may take over a following ReLU layer.
const RELU_ABSORBERS = new Set(['Conv2D', PaddedConv2D.className, GroupedConv2D.className, TorchBatchNormalization.className, ResidualAdd.className]);

/** The names of the layers that `layer`'s one call reads, or undefined where it is called more than once. */
function inputNames(layer: LayerJson): string[] | undefined {
  if (layer.inbound_nodes.length !== 1) return undefined;
  return (layer.inbound_nodes[0] as unknown[][]).map((ref) => ref[0] as string);
}

/**
 * The same network for inference with fewer passes over the activations: every BatchNorm that reads a conv (and
 * nothing else reads that conv) becomes the conv's per-channel scale and bias,
 * W' = W * gamma / sqrt(var + eps), b' = (b - mean) * gamma / sqrt(var + eps) + beta,
 * and every ReLU layer whose input feeds only it runs inside that input's layer (a conv's epilogue, the fused
 * BatchNorm + ReLU, the residual add + ReLU). In inference this is the function of `model` up to float rounding (the
 * tests hold it to the unfolded model and to PyTorch); it is not for training, whose BatchNorm uses batch statistics.
 * `model` is left as it was; the caller owns both.
 */
export async function foldBatchNorm(model: LayersModel): Promise<{ model: LayersModel; report: FoldReport }> {
  const topology = model.toJSON(null, false) as unknown as ModelJson;
  const layersJson = topology.config.layers;
  const byName = new Map(layersJson.map((l) => [l.name, l]));
  const consumers = (name: string): string[] => {
    const readers = layersJson.filter((l) => l.inbound_nodes.some((node) => node.some((ref) => ref[0] === name))).map((l) => l.name);
    const isOutput = topology.config.output_layers.some((ref) => ref[0] === name);
    return isOutput ? [...readers, '(output)'] : readers;
  };
  // Drops `removed` and points every reference to it at `into` (its one input).
  const splice = (removed: string, into: string) => {
    layersJson.splice(layersJson.indexOf(byName.get(removed) as LayerJson), 1);
    byName.delete(removed);
    for (const l of layersJson) for (const node of l.inbound_nodes) for (const ref of node) if (ref[0] === removed) ref[0] = into;
    for (const ref of topology.config.output_layers) if (ref[0] === removed) ref[0] = into;
  };
  const soleReader = (layer: LayerJson): LayerJson | undefined => {
    const readers = consumers(layer.name);
    const reader = readers.length === 1 ? byName.get(readers[0] as string) : undefined;
    return reader !== undefined && inputNames(reader)?.length === 1 ? reader : undefined;
  };
  const report: FoldReport = { batchNorms: [], relus: [] };
  const epsilons = new Map<string, number>();

  for (const conv of [...layersJson]) {
    if (!FOLDABLE_CONVS.has(conv.class_name) || inputNames(conv) === undefined || (conv.config['activation'] ?? 'linear') !== 'linear') continue;
    const bn = soleReader(conv);
    if (bn === undefined || bn.class_name !== TorchBatchNormalization.className) continue;
    conv.config['use_bias'] = true;
    conv.config['activation'] = bn.config['activation'] ?? 'linear';
    epsilons.set(conv.name, bn.config['epsilon'] as number);
    report.batchNorms.push([conv.name, bn.name]);
    splice(bn.name, conv.name);
  }
  for (const layer of [...layersJson]) {
    if (!RELU_ABSORBERS.has(layer.class_name) || (layer.config['activation'] ?? 'linear') !== 'linear' || inputNames(layer) === undefined) continue;
    const relu = soleReader(layer);
    if (relu === undefined || relu.class_name !== 'Activation' || relu.config['activation'] !== 'relu') continue;
    layer.config['activation'] = 'relu';
    report.relus.push([layer.name, relu.name]);
    splice(relu.name, layer.name);
  }

  const folded = await models.modelFromJSON({ modelTopology: topology as never });
  const foldedInto = new Map(report.batchNorms);
  for (const layer of folded.layers) {
    const bnName = foldedInto.get(layer.name);
    const source = model.getLayer(layer.name);
    if (bnName === undefined) {
      layer.setWeights(source.getWeights());
      continue;
    }
    const [kernel, oldBias] = source.getWeights() as [Tensor, Tensor | undefined];
    const [gamma, beta, mean, variance] = model.getLayer(bnName).getWeights().map((w) => w.dataSync()) as Float32Array[];
    const epsilon = epsilons.get(layer.name) as number;
    const channels = (gamma as Float32Array).length;
    // Scale and bias in float64, rounded once to float32.
    const scale = new Float32Array(channels);
    const bias = new Float32Array(channels);
    const old = oldBias?.dataSync();
    for (let c = 0; c < channels; c++) {
      const s = gamma![c]! / Math.sqrt(variance![c]! + epsilon);
      scale[c] = s;
      bias[c] = ((old?.[c] ?? 0) - mean![c]!) * s + beta![c]!;
    }
    const weights = tidy(() => [mul(kernel, tensor(scale)), tensor(bias)]);
    layer.setWeights(weights);
    for (const w of weights) w.dispose();
  }
  return { model: folded, report };
}
