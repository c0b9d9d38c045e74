import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { GroupedConv2D, NetworkGraph, basicBlockSpec, buildLayersModel, foldBatchNorm, registerCustomLayers, residualBlock } from '../src/index.js';

// foldBatchNorm against the model it folds (the oracle for that model is PyTorch: @wrn/architectures' torch-oracle
// test holds every family's folded model to the reference logits too), on the cpu backend.
beforeAll(async () => {
  await tf.setBackend('cpu');
  registerCustomLayers();
});

/**
 * A stem (stride-1 'same' conv: tfjs' Conv2D), an option-A block with a strided conv (PaddedConv2D), an option-B
 * block (its 1x1 projection conv feeds a BatchNorm too), a pre-activation block (whose entry BatchNorm reads a sum,
 * not a conv: left alone), a grouped conv with its BatchNorm, and a conv read by two layers (left alone).
 */
function plan(): NetworkGraph {
  const graph = new NetworkGraph({ seed: 5 });
  let x = graph.input([8, 8, 3]);
  x = graph.relu(graph.batchNorm(graph.conv(x, { filters: 4, kernelSize: 3 }, 'stem_conv'), 'stem_bn'), 'stem_relu');
  x = residualBlock(graph, x, basicBlockSpec({ outChannels: 8, strides: 2, order: 'original', shortcut: 'A' }), 'b1');
  x = residualBlock(graph, x, basicBlockSpec({ outChannels: 12, strides: 1, order: 'original', shortcut: 'B' }), 'b2');
  x = residualBlock(graph, x, basicBlockSpec({ outChannels: 12, strides: 1, order: 'preact', shortcut: 'A' }), 'b3');
  x = graph.relu(graph.batchNorm(graph.conv(x, { filters: 12, kernelSize: 3, groups: 4 }, 'grouped'), 'grouped_bn'), 'grouped_relu');
  const shared = graph.conv(x, { filters: 12, kernelSize: 1 }, 'shared_conv');
  x = graph.add(graph.batchNorm(shared, 'shared_bn'), shared, 'shared_add');
  x = graph.globalAvgPool(x, 'pool');
  graph.dense(x, 3, 'logits');
  return graph;
}

/** The plan built with BN parameters and statistics away from 0 and 1, so that folding has something to fold. */
function trainedLike(options: Parameters<typeof buildLayersModel>[2] = {}): tfl.LayersModel {
  const model = buildLayersModel(plan(), 'plan', options);
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'WrnBatchNormalization') continue;
    const c = layer.getWeights()[0]!.shape[0]!;
    const seed = model.layers.indexOf(layer);
    const weights = [
      tf.randomUniform([c], 0.5, 1.5, 'float32', seed),
      tf.randomUniform([c], -0.5, 0.5, 'float32', seed + 100),
      tf.randomUniform([c], -0.5, 0.5, 'float32', seed + 200),
      tf.randomUniform([c], 0.2, 2, 'float32', seed + 300),
    ];
    layer.setWeights(weights);
    tf.dispose(weights);
  }
  return model;
}

const layerNames = (model: tfl.LayersModel, className: string) => model.layers.filter((l) => l.getClassName() === className).map((l) => l.name);

describe('foldBatchNorm', () => {
  it('folds every BatchNorm that alone reads a conv (Conv2D, PaddedConv2D, GroupedConv2D), and leaves the shared and pre-activation ones', async () => {
    const model = trainedLike();
    const { model: folded, report } = await foldBatchNorm(model);
    expect(report.batchNorms).toEqual([
      ['stem_conv', 'stem_bn'],
      ['b1_conv1', 'b1_bn1'],
      ['b1_conv2', 'b1_bn2'],
      ['b2_conv1', 'b2_bn1'],
      ['b2_conv2', 'b2_bn2'],
      ['b2_shortcut_conv', 'b2_shortcut_bn'],
      ['b3_conv1', 'b3_bn2'],
      ['grouped', 'grouped_bn'],
    ]);
    expect(layerNames(folded, 'WrnBatchNormalization')).toEqual(['b3_bn1', 'shared_bn']);
    // The folded convs carry the BatchNorm's ReLU where it had one (BatchNorm + ReLU were fused at build).
    const convActivation = (name: string) => (folded.getLayer(name).getConfig() as { activation?: string }).activation ?? 'linear';
    expect(['stem_conv', 'b1_conv1', 'b2_conv1', 'b3_conv1'].map(convActivation)).toEqual(['relu', 'relu', 'relu', 'relu']);
    expect(['b1_conv2', 'b2_conv2', 'b2_shortcut_conv'].map(convActivation)).toEqual(['linear', 'linear', 'linear']);
    expect(folded.getLayer('b1_conv1').getClassName()).toBe('WrnPaddedConv2D');
    expect(folded.getLayer('b1_conv1').getWeights().map((w) => w.shape)).toEqual([[3, 3, 4, 8], [8]]);

    const x = tf.randomNormal([5, 8, 8, 3], 0, 1, 'float32', 9);
    const want = (model.predict(x) as tf.Tensor).dataSync();
    const got = (folded.predict(x) as tf.Tensor).dataSync();
    const scale = Math.max(...Array.from(want, Math.abs));
    const worst = Math.max(...Array.from(want, (v, i) => Math.abs(v - got[i]!)));
    expect(scale).toBeGreaterThan(0.1);
    expect(worst / scale).toBeLessThan(1e-5);
    // The original is untouched: still every BatchNorm, and its own predictions.
    expect(layerNames(model, 'WrnBatchNormalization')).toHaveLength(10);
    tf.dispose(x);
    model.dispose();
    folded.dispose();
  });

  it('absorbs separate ReLU layers (a model built, or saved, without the build-time fusions) into the layer before them', async () => {
    const model = trainedLike({ fuseBatchNormRelu: false, fuseAddRelu: false });
    const { model: folded, report } = await foldBatchNorm(model);
    expect(report.batchNorms).toHaveLength(8);
    // Each conv-BN-ReLU's ReLU now runs in the conv, each original block's add + ReLU in ResidualAdd, the
    // pre-activation block's entry ReLU in its BatchNorm, the grouped conv's in that conv: no ReLU layer is left.
    expect(report.relus).toEqual([
      ['stem_conv', 'stem_relu'],
      ['b1_conv1', 'b1_relu1'],
      ['b1_add', 'b1_out'],
      ['b2_conv1', 'b2_relu1'],
      ['b2_add', 'b2_out'],
      ['b3_bn1', 'b3_relu1'],
      ['b3_conv1', 'b3_relu2'],
      ['grouped', 'grouped_relu'],
    ]);
    expect(layerNames(folded, 'Activation')).toEqual([]);
    expect(layerNames(model, 'Activation')).toHaveLength(8);
    const x = tf.randomNormal([3, 8, 8, 3], 0, 1, 'float32', 4);
    const want = (model.predict(x) as tf.Tensor).dataSync();
    const got = (folded.predict(x) as tf.Tensor).dataSync();
    const scale = Math.max(...Array.from(want, Math.abs));
    expect(Math.max(...Array.from(want, (v, i) => Math.abs(v - got[i]!))) / scale).toBeLessThan(1e-5);
    tf.dispose(x);
    model.dispose();
    folded.dispose();
  });

  it('GroupedConv2D with useBias and activation relu is relu(conv + bias), grouped or not, and keeps them through its config', () => {
    for (const groups of [1, 2]) {
      const layer = new GroupedConv2D({ name: `biased${groups}`, filters: 4, kernelSize: 3, groups, strides: 2, padding: 1, useBias: true, activation: 'relu' });
      const plain = new GroupedConv2D({ name: `plain${groups}`, filters: 4, kernelSize: 3, groups, strides: 2, padding: 1 });
      const x = tf.randomNormal([2, 5, 5, 4], 0, 1, 'float32', groups);
      layer.build(x.shape);
      plain.build(x.shape);
      const bias = tf.tensor1d([0.5, -0.5, 0.25, -1]);
      plain.setWeights([layer.getWeights()[0]!]);
      layer.setWeights([layer.getWeights()[0]!, bias]);
      const want = tf.relu(tf.add(plain.apply(x) as tf.Tensor, bias)).dataSync();
      const got = (layer.apply(x) as tf.Tensor).dataSync();
      expect(Math.max(...Array.from(want, (v, i) => Math.abs(v - got[i]!))), `groups ${groups}`).toBeLessThan(1e-6);
      expect(Array.from(got).filter((v) => v === 0).length, `groups ${groups} clamped`).toBeGreaterThan(0);
      expect(layer.getConfig()).toMatchObject({ useBias: true, activation: 'relu' });
      expect(plain.getConfig()).not.toHaveProperty('useBias');
      expect(() => new GroupedConv2D({ filters: 4, kernelSize: 3, groups, activation: 'tanh' as 'relu' })).toThrow("activation must be 'linear' or 'relu', got 'tanh'");
      tf.dispose([x, bias]);
    }
  });
});
