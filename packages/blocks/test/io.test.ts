import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomNormal, setBackend, tensor4d, tidy, type Tensor } from '@tensorflow/tfjs-core';
import { loadLayersModel } from '@tensorflow/tfjs-layers';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  NetworkGraph,
  buildLayersModel,
  residualBlock,
  basicBlockSpec,
  bottleneckBlockSpec,
} from '../src/index.js';
import { fileSystemIO } from '../src/node.js';

let dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'wrn-io-'));
  dirs.push(dir);
  return dir;
}

beforeAll(async () => {
  await setBackend('cpu');
});
afterEach(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  dirs = [];
});

/** A tiny network using every custom layer: grouped conv, option A shortcut, dropout, drop-path. */
function tinyModel(seed: number) {
  const graph = new NetworkGraph({ seed });
  let x = graph.input([8, 8, 3]);
  x = graph.relu(graph.batchNorm(graph.conv(x, { filters: 8, kernelSize: 3 }, 'stem_conv'), 'stem_bn'), 'stem_relu');
  x = residualBlock(graph, x, { ...basicBlockSpec({ outChannels: 16, strides: 2, order: 'original', shortcut: 'A' }), dropRate: 0.2 }, 'b1');
  x = residualBlock(graph, x, {
    ...bottleneckBlockSpec({ midChannels: 8, outChannels: 16, groups: 4, strides: 1, order: 'preact', shortcut: 'B' }),
    dropPathRate: 0.1,
  }, 'b2');
  x = graph.globalAvgPool(x, 'pool');
  graph.dense(x, 5, 'logits');
  return buildLayersModel(graph, 'tiny');
}

describe('fileSystemIO', () => {
  it('saves model.json + weights.bin and loads a model that predicts identically', async () => {
    const dir = await tempDir();
    const model = tinyModel(11);
    const input = randomNormal([3, 8, 8, 3], 0, 1, 'float32', 3);
    try {
      const result = await model.save(fileSystemIO(join(dir, 'nested', 'ckpt')));
      expect(result.modelArtifactsInfo.weightDataBytes).toBeGreaterThan(0);
      expect((await readdir(join(dir, 'nested', 'ckpt'))).sort()).toEqual(['model.json', 'weights.bin']);
      const json = JSON.parse(await readFile(join(dir, 'nested', 'ckpt', 'model.json'), 'utf8'));
      expect(json.weightsManifest[0].paths).toEqual(['weights.bin']);
      const classNames = JSON.stringify(json.modelTopology);
      for (const cls of ['WrnGroupedConv2D', 'WrnZeroPadShortcut', 'WrnSeededDropout', 'WrnDropPath']) expect(classNames).toContain(cls);

      const loaded = await loadLayersModel(fileSystemIO(join(dir, 'nested', 'ckpt')));
      try {
        const before = tidy(() => (model.predict(input) as Tensor).arraySync());
        const after = tidy(() => (loaded.predict(input) as Tensor).arraySync());
        expect(after).toEqual(before);
        expect(loaded.layers.map((l) => l.getClassName())).toEqual(model.layers.map((l) => l.getClassName()));
      } finally {
        loaded.dispose();
      }
    } finally {
      model.dispose();
      input.dispose();
    }
  });

  it('overwrites an earlier save and leaves no temporary files', async () => {
    const dir = await tempDir();
    const first = tinyModel(1);
    const second = tinyModel(2);
    const input = randomNormal([1, 8, 8, 3], 0, 1, 'float32', 4);
    try {
      await first.save(fileSystemIO(dir));
      await writeFile(join(dir, 'optimizer.json'), '{}');
      await second.save(fileSystemIO(dir));
      expect((await readdir(dir)).sort()).toEqual(['model.json', 'optimizer.json', 'weights.bin']);
      const loaded = await loadLayersModel(fileSystemIO(dir));
      const expected = tidy(() => (second.predict(input) as Tensor).arraySync());
      expect(tidy(() => (loaded.predict(input) as Tensor).arraySync())).toEqual(expected);
      loaded.dispose();
    } finally {
      first.dispose();
      second.dispose();
      input.dispose();
    }
  });

  it('detects weights.bin that does not belong to model.json', async () => {
    const dir = await tempDir();
    const other = await tempDir();
    const a = tinyModel(1);
    const b = tinyModel(2);
    try {
      await a.save(fileSystemIO(dir));
      await b.save(fileSystemIO(other));
      await writeFile(join(dir, 'weights.bin'), await readFile(join(other, 'weights.bin')));
      await expect(loadLayersModel(fileSystemIO(dir))).rejects.toThrow(/weights\.bin does not match .*model\.json/);
    } finally {
      a.dispose();
      b.dispose();
    }
  });

  it('a model saved on the cpu backend loads on wasm and predicts the same', async () => {
    const dir = await tempDir();
    const model = tinyModel(5);
    const data = tidy(() => Array.from(randomNormal([2, 8, 8, 3], 0, 1, 'float32', 8).dataSync()));
    try {
      await model.save(fileSystemIO(dir));
      const onCpu = tidy(() => Array.from((model.predict(tensor4d(data, [2, 8, 8, 3])) as Tensor).dataSync()));
      await setBackend('wasm');
      const loaded = await loadLayersModel(fileSystemIO(dir));
      const onWasm = tidy(() => Array.from((loaded.predict(tensor4d(data, [2, 8, 8, 3])) as Tensor).dataSync()));
      loaded.dispose();
      expect(onWasm).toHaveLength(10);
      onWasm.forEach((value, i) => expect(value).toBeCloseTo(onCpu[i] as number, 4));
    } finally {
      await setBackend('cpu');
      model.dispose();
    }
  });

  it('says which file is missing', async () => {
    const dir = await tempDir();
    await expect(loadLayersModel(fileSystemIO(join(dir, 'absent')))).rejects.toThrow(/cannot read .*absent.*model\.json/);
    expect(() => fileSystemIO('')).toThrow(/expected a directory path/);
  });
});
