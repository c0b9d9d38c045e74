import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { NATIVE_SGD_UPDATE, registerWasmTrainingKernels, wasmNativeConvKernels } from '@wrn/backend';
import { selectBackend } from '@wrn/backend/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SGD_UPDATE_KERNEL, SgdOptimizer, type SgdOptions } from '../src/sgd';

// SgdOptimizer on the wasm backend's one-kernel update (@wrn/native) against torch.optim.SGD (float64) and
// against the same optimiser on the cpu backend (its tf ops); @wrn/native's tests check the kernel alone.
const PYTHON = '/usr/bin/python3';
const torchMissing = spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status !== 0;
if (torchMissing) {
  if (process.env['CI']) throw new Error(`sgd-native: ${PYTHON} cannot import torch (apt-get install python3-torch)`);
  console.warn(`skipping the PyTorch oracle of the native SGD update: ${PYTHON} cannot import torch (python3-torch)`);
}

let nativeOk = false;
beforeAll(async () => {
  await selectBackend('wasm', {});
  nativeOk = wasmNativeConvKernels() != null && tf.getKernel(SGD_UPDATE_KERNEL, 'wasm') != null;
  if (!nativeOk) {
    if (process.env['CI']) throw new Error('sgd-native: @wrn/native is not in use on the wasm backend');
    console.warn('skipping the native SGD update: @wrn/native is not in use on the wasm backend');
  }
});
afterAll(async () => {
  await tf.setBackend('cpu');
});

function lcg(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0 || 1;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32 - 0.5) * 2 * scale;
  });
}

const SHAPES = [[3, 3, 4, 5], [5], [7, 2]];
const STEPS = 3;
const LRS = [0.1, 0.1, 0.02];

/** Params and STEPS of gradients per parameter (the third parameter excluded from weight decay). */
function problem() {
  return SHAPES.map((shape, i) => {
    const n = shape.reduce((a, b) => a * b, 1);
    return { shape, param: lcg(n, 10 + i), grads: Array.from({ length: STEPS }, (_, s) => lcg(n, 100 * (s + 1) + i, 0.3)), weightDecay: i !== 2 };
  });
}

/** Runs the optimiser on `backend`: each step's params and buffers, flattened. */
async function run(backend: string, options: SgdOptions): Promise<{ trace: number[][]; kernels: string[]; leaked: number }> {
  await tf.setBackend(backend);
  const setup = problem();
  const variables = setup.map((p) => tf.variable(tf.tensor(p.param, p.shape)));
  const sgd = new SgdOptimizer(
    variables.map((variable, i) => ({ variable, name: `p${i}`, weightDecay: setup[i]!.weightDecay })),
    options,
  );
  const trace: number[][] = [];
  let kernels: string[] = [];
  const before = tf.memory().numTensors;
  for (let s = 0; s < STEPS; s++) {
    const grads = setup.map((p) => tf.tensor(p.grads[s]!, p.shape));
    const info = await tf.profile(() => sgd.step(grads, LRS[s]!));
    kernels = info.kernels.map((k) => k.name);
    tf.dispose(grads);
    trace.push([...variables, ...sgd.momentumBuffers].flatMap((v) => (v == null ? [] : Array.from(v.dataSync()))));
  }
  // Kept on purpose: the buffers (one per parameter, with momentum) and the learning-rate scalar.
  const leaked = tf.memory().numTensors - before - (options.momentum !== 0 ? variables.length : 0) - 1;
  sgd.dispose();
  tf.dispose(variables);
  return { trace, kernels, leaked };
}

const OPTIONS: SgdOptions[] = [
  { momentum: 0.9, nesterov: true, dampening: 0, weightDecay: 5e-4 },
  { momentum: 0.9, nesterov: false, dampening: 0.3, weightDecay: 1e-3 },
  { momentum: 0, nesterov: false, dampening: 0, weightDecay: 5e-4 },
];

describe("SgdOptimizer on the wasm backend's native update", () => {
  it('names the kernel as @wrn/backend registers it', () => {
    expect(SGD_UPDATE_KERNEL).toBe(NATIVE_SGD_UPDATE);
  });

  for (const options of OPTIONS) {
    it(`equals the cpu backend's tf ops step for step, one kernel per parameter: ${JSON.stringify(options)}`, async () => {
      if (!nativeOk) return;
      const wasm = await run('wasm', options);
      const cpu = await run('cpu', options);
      expect(wasm.kernels).toEqual(SHAPES.map(() => SGD_UPDATE_KERNEL));
      expect(cpu.kernels).not.toContain(SGD_UPDATE_KERNEL);
      for (let s = 0; s < STEPS; s++) {
        const worst = Math.max(...wasm.trace[s]!.map((v, i) => Math.abs(v - cpu.trace[s]![i]!)));
        expect(worst, `step ${s + 1}`).toBeLessThan(1e-6);
      }
      expect(wasm.leaked).toBe(0);
      expect(cpu.leaked).toBe(0);
    });
  }

  it.skipIf(torchMissing)('equals torch.optim.SGD (float64) over three steps with a learning-rate change', async () => {
    if (!nativeOk) return;
    for (const options of OPTIONS) {
      const wasm = await run('wasm', options);
      const setup = problem();
      const script = `
import json, sys, torch
c = json.load(sys.stdin)
o = c["options"]
params = [torch.nn.Parameter(torch.tensor(p["param"], dtype=torch.float64).reshape(p["shape"])) for p in c["params"]]
groups = [{"params": [p], "weight_decay": o["weightDecay"] if c["params"][i]["weightDecay"] else 0.0} for i, p in enumerate(params)]
opt = torch.optim.SGD(groups, lr=0.1, momentum=o["momentum"], dampening=o["dampening"], nesterov=o["nesterov"])
trace = []
for s, lr in enumerate(c["lrs"]):
    for g in opt.param_groups:
        g["lr"] = lr
    for i, p in enumerate(params):
        p.grad = torch.tensor(c["params"][i]["grads"][s], dtype=torch.float64).reshape(p.shape)
    opt.step()
    bufs = [opt.state[p]["momentum_buffer"] for p in params if opt.state[p].get("momentum_buffer") is not None]
    trace.append([v for t in params + bufs for v in t.detach().flatten().tolist()])
json.dump(trace, sys.stdout)
`;
      const input = { options, lrs: LRS, params: setup.map((p) => ({ shape: p.shape, param: [...p.param], grads: p.grads.map((g) => [...g]), weightDecay: p.weightDecay })) };
      const answer = spawnSync(PYTHON, ['-c', script], { input: JSON.stringify(input), encoding: 'utf8' });
      expect(answer.stderr).toBe('');
      const torch = JSON.parse(answer.stdout) as number[][];
      for (let s = 0; s < STEPS; s++) {
        const worst = Math.max(...wasm.trace[s]!.map((v, i) => Math.abs(v - torch[s]![i]!)));
        expect(worst, `${JSON.stringify(options)} step ${s + 1}`).toBeLessThan(1e-6);
      }
    }
  });

  it('gives each step fresh data, which a dense layer on XNNPACK (weights cached by data id) sees, and leaves a clone alone', async () => {
    if (!nativeOk) return;
    await tf.setBackend('wasm');
    // (tidy: the initial tensor goes, so only the variable holds its data, the case an in-place update would take.)
    const w = tf.tidy(() => tf.variable(tf.tensor2d([1, -2, 3, 0.5, 0.25, -1], [3, 2])));
    const x = tf.tensor2d([1, 2, 3, -1, 0, 2], [2, 3]);
    const sgd = new SgdOptimizer([{ variable: w, name: 'w', weightDecay: true }], { momentum: 0.9, nesterov: true, dampening: 0, weightDecay: 0 });
    const g = tf.tensor2d([0.5, 0.5, -1, 2, 0, 1], [3, 2]);
    // tfjs-backend-wasm's _FusedMatMul (XNNPACK) packs and caches w under its data id on first use.
    const dense = () => tf.tidy(() => Array.from(tf.fused.matMul({ a: x, b: w, bias: tf.zeros([2]) }).dataSync()));
    const product = () => {
      const values = w.arraySync();
      return [0, 1].flatMap((r) => [0, 1].map((c) => [0, 1, 2].reduce((sum, k) => sum + x.arraySync()[r]![k]! * values[k]![c]!, 0)));
    };
    for (let step = 0; step < 2; step++) {
      dense();
      const dataId = w.dataId;
      sgd.step([g], 0.1);
      expect(w.dataId).not.toBe(dataId);
      // What the dense layer computes is x times the weights the optimiser wrote, not the ones it packed before.
      const expectedProduct = product();
      dense().forEach((v, i) => expect(v).toBeCloseTo(expectedProduct[i]!, 5));
    }
    // A clone shares the variable's data: the step must not change what the clone reads.
    const snapshot = tf.clone(w);
    const before = Array.from(snapshot.dataSync());
    sgd.step([g], 0.1);
    expect(Array.from(snapshot.dataSync())).toEqual(before);
    // buf = g * (1 + 0.9 + 0.81); three Nesterov steps: w -= 0.1 * (g + 0.9 buf) each.
    const expected = [1, -2, 3, 0.5, 0.25, -1].map((v, i) => v - [1, 1.9, 2.71].reduce((sum, b) => sum + 0.1 * (g.dataSync()[i]! + 0.9 * b * g.dataSync()[i]!), 0));
    Array.from(w.dataSync()).forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 5));
    tf.dispose([snapshot, g, w, x]);
    sgd.dispose();
  });

  it('turns off with the native elementwise kernels (back to tf ops)', async () => {
    if (!nativeOk) return;
    const native = wasmNativeConvKernels()!;
    registerWasmTrainingKernels({ native, nativeElementwise: false });
    expect(tf.getKernel(SGD_UPDATE_KERNEL, 'wasm')).toBeUndefined();
    const off = await run('wasm', OPTIONS[0]!);
    expect(off.kernels).not.toContain(SGD_UPDATE_KERNEL);
    registerWasmTrainingKernels({ native });
    expect(tf.getKernel(SGD_UPDATE_KERNEL, 'wasm')).toBeDefined();
  });
});
