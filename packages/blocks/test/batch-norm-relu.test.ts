import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { NetworkGraph, TorchBatchNormalization, basicBlockSpec, buildLayersModel, registerCustomLayers, residualBlock } from '../src/index.js';

// The fused BatchNorm + ReLU layer against the plan's layers one for one (the oracle: tfjs-core's batchNorm and relu
// as separate layers, whose outputs the architectures package checks against PyTorch), on the cpu backend, which has
// no fused kernel (the wasm one is checked in @wrn/backend).
beforeAll(async () => {
  await tf.setBackend('cpu');
  registerCustomLayers();
});

/** Conv-BN-ReLU stem, an original-order basic block (conv-BN-ReLU-conv-BN, option A), pool, dense. */
function plan(): NetworkGraph {
  const graph = new NetworkGraph({ seed: 5 });
  let x = graph.input([8, 8, 3]);
  x = graph.relu(graph.batchNorm(graph.conv(x, { filters: 4, kernelSize: 3 }, 'stem_conv'), 'stem_bn'), 'stem_relu');
  x = residualBlock(graph, x, basicBlockSpec({ outChannels: 8, strides: 2, order: 'original', shortcut: 'A' }), 'b1');
  x = graph.globalAvgPool(x, 'pool');
  graph.dense(x, 3, 'logits');
  return graph;
}

/** Both builds of the plan with the same weights, BatchNorm statistics and affine parameters away from 0 and 1. */
function models(): { fused: tfl.LayersModel; separate: tfl.LayersModel } {
  const graph = plan();
  const fused = buildLayersModel(graph, 'fused');
  const separate = buildLayersModel(graph, 'separate', { fuseBatchNormRelu: false, fuseAddRelu: false });
  const weights = fused.getWeights().map((w, i) =>
    w.shape.length === 1 ? tf.add(tf.mul(tf.randomUniform(w.shape, 0.2, 1.5, 'float32', 40 + i), i % 4 === 1 ? 0.5 : 1), i % 4 === 2 ? -0.6 : 0) : w.clone(),
  );
  fused.setWeights(weights);
  separate.setWeights(weights);
  tf.dispose(weights);
  return { fused, separate };
}

describe("buildLayersModel's BatchNorm + ReLU layers", () => {
  it('fuse each BN that feeds only a ReLU, and leave the BN before the addition alone (the ReLU after the addition goes into the add)', () => {
    const { fused, separate } = models();
    const names = (m: tfl.LayersModel) => m.layers.map((l) => l.name);
    const relus = (m: tfl.LayersModel) => m.layers.filter((l) => l.getClassName() === 'Activation').map((l) => l.name);
    expect(relus(separate)).toEqual(['stem_relu', 'b1_relu1', 'b1_out']);
    // b1_out follows the addition, not a BatchNorm: it is computed by b1_add (add-relu.test.ts).
    expect(relus(fused)).toEqual([]);
    expect(names(fused)).toEqual(names(separate).filter((n) => n !== 'stem_relu' && n !== 'b1_relu1' && n !== 'b1_out'));
    const activation = (m: tfl.LayersModel, name: string) => (m.getLayer(name).getConfig() as { activation?: string }).activation;
    expect([activation(fused, 'stem_bn'), activation(fused, 'b1_bn1'), activation(fused, 'b1_bn2')]).toEqual(['relu', 'relu', 'linear']);
    fused.dispose();
    separate.dispose();
  });

  it('compute what the separate layers compute: predict, a training forward pass and its gradients', () => {
    const { fused, separate } = models();
    const x = tf.randomNormal([4, 8, 8, 3], 0, 1, 'float32', 9);
    const predict = (m: tfl.LayersModel) => tf.tidy(() => (m.predict(x) as tf.Tensor).arraySync());
    expect(predict(fused)).toEqual(predict(separate));
    const lossAndGrads = (m: tfl.LayersModel) =>
      tf.tidy(() => {
        const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(m.apply(x, { training: true }) as tf.Tensor)) as tf.Scalar, m.trainableWeights.map((w) => w.read() as tf.Variable));
        return [value.arraySync(), ...m.trainableWeights.map((w) => Array.from(grads[(w.read() as tf.Variable).name]!.dataSync()))];
      });
    const before = tf.memory().numTensors;
    expect(lossAndGrads(fused)).toEqual(lossAndGrads(separate));
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    fused.dispose();
    separate.dispose();
  });

  it("round-trips activation 'relu' through save/load, and loads a config saved before the option as BatchNorm alone", async () => {
    const { fused, separate } = models();
    const x = tf.randomNormal([2, 8, 8, 3], 0, 1, 'float32', 10);
    const save = async (m: tfl.LayersModel) => {
      let saved: tf.io.ModelArtifacts | undefined;
      await m.save(tf.io.withSaveHandler(async (a) => ((saved = a), { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } })));
      return saved!;
    };
    const predict = (m: tfl.LayersModel) => tf.tidy(() => (m.predict(x) as tf.Tensor).arraySync());
    const again = await tfl.loadLayersModel(tf.io.fromMemory(await save(fused)));
    expect(predict(again)).toEqual(predict(fused));
    // A model.json written before the option: no 'activation' key on any BatchNorm, ReLUs as their own layers.
    const old = await save(separate);
    const topology = JSON.stringify(old.modelTopology);
    expect(topology).toContain('"activation":"linear"');
    const withoutKey = JSON.parse(topology.replaceAll(',"activation":"linear"', '')) as object;
    expect(JSON.stringify(withoutKey)).not.toContain('"activation":"linear"');
    const loadedOld = await tfl.loadLayersModel(tf.io.fromMemory({ ...old, modelTopology: withoutKey }));
    expect(loadedOld.layers.filter((l) => l instanceof TorchBatchNormalization).every((l) => (l as TorchBatchNormalization).activation === 'linear')).toBe(true);
    expect(predict(loadedOld)).toEqual(predict(fused));
    tf.dispose(x);
    [fused, separate, again, loadedOld].forEach((m) => m.dispose());
  });

  it("rejects an activation other than 'linear' or 'relu', naming it", () => {
    expect(() => new TorchBatchNormalization({ name: 'bn', activation: 'tanh' as 'relu' })).toThrow(
      "TorchBatchNormalization bn: activation must be 'linear' or 'relu', got 'tanh'",
    );
  });
});
