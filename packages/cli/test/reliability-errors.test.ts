import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { NetworkGraph, buildLayersModel } from '@wrn/blocks';
import { isOutOfMemory, largestFittingBatch, outOfMemoryAdvice, trainingBytesPerImage, WASM_HEAP_BYTES } from '../src/memory-advice.js';
import { runCli } from '../src/program.js';
import { runWrn, scratchDir, type WrnResult } from './run-wrn.js';

async function wrnHere(args: string[]): Promise<WrnResult> {
  let stdout = '';
  let stderr = '';
  const sink = (append: (text: string) => void) => ({ write: (chunk: string | Uint8Array) => (append(chunk.toString()), true) }) as unknown as NodeJS.WritableStream;
  const code = await runCli(args, { stdout: sink((t) => (stdout += t)), stderr: sink((t) => (stderr += t)), env: process.env });
  return { code, signal: null, stdout, stderr };
}

describe('wasm out of memory, explained', () => {
  // input 4x4x2 (32 values) -> conv 3 filters (48 values): 80 activations a image, 3 float32 copies = 960 bytes.
  let model: tfl.LayersModel;
  beforeAll(async () => {
    await tf.setBackend('cpu');
    const input = tfl.input({ shape: [4, 4, 2] });
    model = tfl.model({ inputs: input, outputs: tfl.layers.conv2d({ filters: 3, kernelSize: 3, padding: 'same', useBias: false }).apply(input) as tfl.SymbolicTensor });
  });

  it('estimates the bytes an image costs from the layers, and the batch that fits the 4 GiB heap', () => {
    expect(trainingBytesPerImage(model)).toBe(960);
    expect(largestFittingBatch(model)).toBe(Math.floor((0.7 * WASM_HEAP_BYTES - 54 * 12) / 960));
  });

  it("counts a BatchNorm + ReLU layer's two outputs, as the separate layers it replaces were counted", () => {
    const graph = new NetworkGraph({ seed: 1 });
    graph.relu(graph.batchNorm(graph.conv(graph.input([4, 4, 2]), { filters: 3, kernelSize: 3 }, 'conv'), 'bn'), 'relu');
    const [fused, separate] = [buildLayersModel(graph, 'fused'), buildLayersModel(graph, 'separate', { fuseBatchNormRelu: false })];
    expect(fused.layers).toHaveLength(separate.layers.length - 1);
    // input 32 + conv 48 + BN 48 + ReLU 48 values, 3 float32 copies each.
    expect(trainingBytesPerImage(fused)).toBe(3 * 4 * (32 + 3 * 48));
    expect(trainingBytesPerImage(separate)).toBe(trainingBytesPerImage(fused));
    fused.dispose();
    separate.dispose();
  });

  it('recognises emscripten aborts and allocation failures, and says which batch size fits', () => {
    expect(isOutOfMemory(new Error('Aborted(). Build with -sASSERTIONS for more info.'))).toBe(true);
    expect(isOutOfMemory(new RangeError('Array buffer allocation failed'))).toBe(true);
    expect(isOutOfMemory(new Error('training diverged: loss is NaN'))).toBe(false);
    const fits = largestFittingBatch(model);
    expect(outOfMemoryAdvice(model, 5_000_000, 'wasm')).toBe(
      `out of memory: a training step at --batch-size 5000000 needs about 4578 MiB of activations (0 MiB per image, estimated from the model's layers), ` +
        `more than the wasm backend's 4096 MiB heap can hold. A batch size of ${fits} or less fits (estimated); ` +
        'or use --backend tensorflow (tfjs-node), whose limit is the machine\'s memory.',
    );
  });
});

describe('errors that name what is wrong', () => {
  it('wrn info of an absurd depth exits 2 at once instead of overflowing the stack', async () => {
    const started = Date.now();
    const result = await wrnHere(['info', 'wrn-1000000-1']);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      'wrn: error: model "wrn-1000000-1": wrn-1000000-1 has 499,998 residual blocks; at most 2,000 are supported (ResNet-1202, the deepest in the papers, has 600); choose a smaller depth\n',
    );
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

describe('a NaN evaluation is a failed run', () => {
  it('--lr 1e30 exits 1 naming the divergence, and saves no NaN model as best', async () => {
    const runDir = join(scratchDir('nan'), 'run');
    const result = await runWrn(['train', '--model', 'wrn-10-1', '--lr', '1e30', '--max-steps', '2', '--batch-size', '16', '--train-limit', '32', '--test-limit', '16', '--backend', 'wasm', '--run-dir', runDir, '-q', '--no-report']);
    expect(result.code, result.stderr).toBe(1);
    expect(result.stderr).toMatch(/wrn: failed: training diverged: (loss is (NaN|Infinity|-Infinity) at step [12]|the (test loss is NaN|weights are not finite) after epoch 1)/);
    expect(existsSync(join(runDir, 'checkpoints', 'best'))).toBe(false);
    expect(existsSync(join(runDir, 'summary.json'))).toBe(false);
    expect(readFileSync(join(runDir, 'metrics.jsonl'), 'utf8')).not.toContain('"type":"epoch"');
    expect(existsSync(join(runDir, '.lock'))).toBe(false);
  });
});
