import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { NetworkGraph, ResidualAdd, basicBlockSpec, buildLayersModel, registerCustomLayers, residualBlock } from '../src/index.js';

// The fused residual Add + ReLU layer against the plan's layers one for one (the oracle: tfjs-core's add and relu as
// separate layers, whose outputs the architectures package checks against PyTorch), on the cpu backend, which has no
// fused kernel (the wasm one is checked in @wrn/backend).
beforeAll(async () => {
  await tf.setBackend('cpu');
  registerCustomLayers();
});

/** A stem, two original-order basic blocks (option A, then identity: each ends relu(add)), one pre-activation block, pool, dense. */
function plan(): NetworkGraph {
  const graph = new NetworkGraph({ seed: 7 });
  let x = graph.input([8, 8, 3]);
  x = graph.relu(graph.batchNorm(graph.conv(x, { filters: 4, kernelSize: 3 }, 'stem_conv'), 'stem_bn'), 'stem_relu');
  x = residualBlock(graph, x, basicBlockSpec({ outChannels: 8, strides: 2, order: 'original', shortcut: 'A' }), 'b1');
  x = residualBlock(graph, x, basicBlockSpec({ outChannels: 8, strides: 1, order: 'original', shortcut: 'A' }), 'b2');
  x = residualBlock(graph, x, basicBlockSpec({ outChannels: 8, strides: 1, order: 'preact', shortcut: 'A' }), 'b3');
  x = graph.globalAvgPool(x, 'pool');
  graph.dense(x, 3, 'logits');
  return graph;
}

/** The plan built with and without the add fusion (BatchNorm + ReLU fused in both), same weights, BN parameters away from 0 and 1. */
function models(): { fused: tfl.LayersModel; separate: tfl.LayersModel } {
  const graph = plan();
  const fused = buildLayersModel(graph, 'fused');
  const separate = buildLayersModel(graph, 'separate', { fuseAddRelu: false });
  const weights = fused.getWeights().map((w, i) =>
    w.shape.length === 1 ? tf.add(tf.mul(tf.randomUniform(w.shape, 0.2, 1.5, 'float32', 60 + i), i % 4 === 1 ? 0.5 : 1), i % 4 === 2 ? -0.6 : 0) : w.clone(),
  );
  fused.setWeights(weights);
  separate.setWeights(weights);
  tf.dispose(weights);
  return { fused, separate };
}

const save = async (m: tfl.LayersModel) => {
  let saved: tf.io.ModelArtifacts | undefined;
  await m.save(tf.io.withSaveHandler(async (a) => ((saved = a), { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } })));
  return saved!;
};

describe("buildLayersModel's residual Add + ReLU layers", () => {
  it('fuse each addition that feeds only a ReLU, keep every other layer name, and leave the pre-activation block alone', () => {
    const { fused, separate } = models();
    const names = (m: tfl.LayersModel) => m.layers.map((l) => l.name);
    const relus = (m: tfl.LayersModel) => m.layers.filter((l) => l.getClassName() === 'Activation').map((l) => l.name);
    expect(relus(separate)).toEqual(['b1_out', 'b2_out']);
    expect(relus(fused)).toEqual([]);
    expect(names(fused)).toEqual(names(separate).filter((n) => n !== 'b1_out' && n !== 'b2_out'));
    const activation = (m: tfl.LayersModel, name: string) => (m.getLayer(name) as ResidualAdd).activation;
    expect(['b1_add', 'b2_add', 'b3_add'].map((n) => activation(fused, n))).toEqual(['relu', 'relu', 'linear']);
    expect(['b1_add', 'b2_add', 'b3_add'].map((n) => activation(separate, n))).toEqual(['linear', 'linear', 'linear']);
    // The same weights under the same names: a PyTorch state dict loads into either.
    expect(fused.weights.map((w) => w.originalName)).toEqual(separate.weights.map((w) => w.originalName));
    fused.dispose();
    separate.dispose();
  });

  it('compute what the separate layers compute: predict, a training forward pass and its gradients, no tensor left', () => {
    const { fused, separate } = models();
    const x = tf.randomNormal([4, 8, 8, 3], 0, 1, 'float32', 11);
    const predict = (m: tfl.LayersModel) => tf.tidy(() => (m.predict(x) as tf.Tensor).arraySync());
    const before = tf.memory().numTensors;
    expect(predict(fused)).toEqual(predict(separate));
    const lossAndGrads = (m: tfl.LayersModel) =>
      tf.tidy(() => {
        const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(m.apply(x, { training: true }) as tf.Tensor)) as tf.Scalar, m.trainableWeights.map((w) => w.read() as tf.Variable));
        return [value.arraySync(), ...m.trainableWeights.map((w) => Array.from(grads[(w.read() as tf.Variable).name]!.dataSync()))];
      });
    const fusedGrads = lossAndGrads(fused);
    expect(fusedGrads).toEqual(lossAndGrads(separate));
    // The gradients are not all zero (the ReLUs pass something back).
    expect((fusedGrads[1] as number[]).some((v) => v !== 0)).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    fused.dispose();
    separate.dispose();
  });

  it('clamps: the fused layer is relu(a + b) for same shapes in inference and training, and under tf.grad', () => {
    const layer = new ResidualAdd({ name: 'sum', activation: 'relu' });
    const a = tf.tensor([[-2, 1, 0.5, Number.NaN]]);
    const b = tf.tensor([[1, 1, -1, 0]]);
    for (const training of [false, true]) {
      const out = layer.apply([a, b], { training }) as tf.Tensor;
      const values = Array.from(out.dataSync());
      expect(values.slice(0, 3), `training ${training}`).toEqual([0, 2, 0]);
      expect(Number.isNaN(values[3]), `training ${training}: NaN kept`).toBe(true);
      out.dispose();
    }
    const g = tf.grad((x: tf.Tensor) => tf.sum(layer.apply([x, b], { training: true }) as tf.Tensor))(a);
    expect(Array.from(g.dataSync()).slice(0, 3)).toEqual([0, 1, 0]);
    tf.dispose([a, b, g]);
  });

  it("round-trips activation 'relu' through save/load, and loads a config saved before the option as the addition alone", async () => {
    const { fused, separate } = models();
    const x = tf.randomNormal([2, 8, 8, 3], 0, 1, 'float32', 12);
    const predict = (m: tfl.LayersModel) => tf.tidy(() => (m.predict(x) as tf.Tensor).arraySync());
    const fusedSaved = await save(fused);
    expect(JSON.stringify(fusedSaved.modelTopology)).toContain('"class_name":"WrnResidualAdd","config":{"name":"b1_add","trainable":true,"activation":"relu"}');
    const again = await tfl.loadLayersModel(tf.io.fromMemory(fusedSaved));
    expect((again.getLayer('b2_add') as ResidualAdd).activation).toBe('relu');
    expect(predict(again)).toEqual(predict(fused));
    // A model.json written before the option: no 'activation' key on any ResidualAdd, its ReLUs as their own layers.
    const old = await save(separate);
    const topology = JSON.stringify(old.modelTopology);
    const addConfig = '"class_name":"WrnResidualAdd","config":{"name":"b1_add","trainable":true,"activation":"linear"}';
    expect(topology).toContain(addConfig);
    const withoutKey = topology.replace(/("class_name":"WrnResidualAdd","config":\{[^}]*?),"activation":"linear"/g, '$1');
    expect(withoutKey).toContain(addConfig.replace(',"activation":"linear"', ''));
    const loadedOld = await tfl.loadLayersModel(tf.io.fromMemory({ ...old, modelTopology: JSON.parse(withoutKey) as object }));
    expect(loadedOld.layers.filter((l) => l instanceof ResidualAdd).every((l) => (l as ResidualAdd).activation === 'linear')).toBe(true);
    expect(predict(loadedOld)).toEqual(predict(fused));
    tf.dispose(x);
    [fused, separate, again, loadedOld].forEach((m) => m.dispose());
  });

  it("rejects an activation other than 'linear' or 'relu', naming it", () => {
    expect(() => new ResidualAdd({ name: 'sum', activation: 'tanh' as 'relu' })).toThrow("ResidualAdd sum: activation must be 'linear' or 'relu', got 'tanh'");
  });
});
