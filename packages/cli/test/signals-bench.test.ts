import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, REPO_ROOT, runWrn, scratchDir } from './run-wrn.js';

describe('wrn train on SIGINT', () => {
  it('finishes the step, saves checkpoints/last, exits 130 and says how to resume', async () => {
    const runDir = join(scratchDir('sigint'), 'run');
    const child = spawn(
      process.execPath,
      [BIN, 'train', '--model', 'wrn-10-1', '--epochs', '3', '--batch-size', '16', '--train-limit', '160', '--test-limit', '32', '--backend', 'wasm', '--run-dir', runDir],
      { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    let stdout = '';
    let signalled = false;
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      // Interrupt in the middle of the first epoch, once a step has been taken.
      if (!signalled && /step [1-9]\d*\/10/.test(stderr)) {
        signalled = true;
        child.kill('SIGINT');
      }
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(signalled).toBe(true);
    expect(code).toBe(130); // 128 + SIGINT, as shells report a command stopped by Ctrl-C
    expect(stderr).toContain('SIGINT: stopping training after the current step and saving a checkpoint');
    expect(stderr).toContain(`resume with: wrn train --resume ${runDir}`);
    expect(stderr).not.toMatch(/\n\s+at .+:\d+:\d+/);
    const state = JSON.parse(readFileSync(join(runDir, 'checkpoints', 'last', 'state.json'), 'utf8'));
    expect(state.reason).toBe('interrupted');
    expect(state.epoch).toBe(0);
    expect(state.iteration).toBeGreaterThan(0);
    expect(existsSync(join(runDir, 'summary.json'))).toBe(false);
    expect(stdout).not.toContain('done:');

    // The hint works: the run continues from the step it stopped at and finishes its (now one) epoch.
    const resumed = await runWrn(['train', '--resume', runDir, '--epochs', '1']);
    expect(resumed.stderr).toContain(`resuming from ${join(runDir, 'checkpoints', 'last')} (epoch 0, step ${state.globalStep})`);
    expect(resumed.code).toBe(0);
    expect(JSON.parse(readFileSync(join(runDir, 'summary.json'), 'utf8'))).toMatchObject({ status: 'completed', epochs: 1, steps: 10 });
  });
});

describe('wrn bench', () => {
  it('measures training and inference images/s and peak memory through the training loop', async () => {
    const result = await runWrn(['bench', '--model', 'resnet20', '--batch-size', '8', '--warmup', '1', '--steps', '2', '--backend', 'wasm', '--json']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const bench = JSON.parse(result.stdout);
    expect(bench).toMatchObject({ model: 'resnet20', params: 269_722, backend: 'wasm', batchSize: 8, warmupSteps: 1, steps: 2 });
    expect(bench.trainStepMs).toHaveLength(2);
    expect(bench.inferBatchMs).toHaveLength(2);
    const medianTrainMs = (bench.trainStepMs[0] + bench.trainStepMs[1]) / 2;
    expect(bench.trainImagesPerSec).toBeCloseTo((8 * 1000) / medianTrainMs, -1);
    expect(bench.inferImagesPerSec).toBeGreaterThan(0);
    expect(bench.peakRssMB).toBeGreaterThan(30);
  });

  it('exits 2 naming a model that does not exist', async () => {
    const result = await runWrn(['bench', '--model', 'resnet21', '--backend', 'wasm']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--model resnet21: ');
  });
});
