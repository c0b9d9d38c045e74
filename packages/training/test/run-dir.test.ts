import { execFileSync } from 'node:child_process';
import { promises as fs, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { writeFileAtomic, writeFileAtomicSync } from '@wrn/blocks/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCheckpointState } from '../src/checkpoint';
import { ResumeMismatchError, RunDirectoryError, TrainingError } from '../src/errors';
import {
  currentGitCommit,
  epochMetricsSchema,
  readMetricsLines,
  readRunFile,
  RUN_FILE_FORMATS,
  RunFileError,
  RunFileFormatError,
  runSummarySchema,
  stepMetricsSchema,
  type RunEnvironmentInput,
} from '../src/run-dir';
import { train, type TrainEvent } from '../src/train';
import { arraySource, tinyModel } from './helpers';

let root: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'wrn-run-dir-'));
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

const environment: RunEnvironmentInput = {
  backend: 'cpu',
  backendReason: 'asked for',
  node: process.version,
  platform: `${process.platform} ${process.arch}`,
  cpu: '1 x test',
  memory: '1.0 GiB',
  command: 'vitest',
  startedAt: '2026-12-02T00:00:00.000Z',
  '@tensorflow/tfjs-core': tf.version_core,
};
const config = { epochs: 2, batchSize: 8, seed: 1, logEverySteps: 1, schedule: { kind: 'constant' as const, lr: 0.05 } };

describe('the run directory', () => {
  it('train() writes every file through its schema: config.json (model config, git commit), environment.json, metrics.jsonl, summary.json', async () => {
    const runDir = path.join(root, 'full');
    const events: TrainEvent[] = [];
    const modelConfig = { family: 'test', stages: [1] };
    await train({
      model: tinyModel(),
      // Labels cycle 0, 1, 2: class 2 is absent from 2 test examples, its per-class accuracy NaN in memory, null on disk.
      trainSource: arraySource(16, 8, { seed: 1 }),
      testSource: arraySource(2, 2, { dataSeed: 4 }),
      config,
      runDir,
      modelConfig,
      environment,
      onProgress: (e) => events.push(e),
    });
    const saved = readRunFile(runDir, 'config')!;
    expect(saved.format).toBe(RUN_FILE_FORMATS.config);
    expect(saved.modelConfig).toEqual(modelConfig);
    // The oracle for the commit is git itself, run here in the same working directory.
    const head = execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
    expect(saved.gitCommit).toBe(head);
    expect(JSON.parse(readFileSync(path.join(runDir, 'config.json'), 'utf8'))).toMatchObject({ format: 'wrn-run-config/1', epochs: 2, batchSize: 8, gitCommit: head });

    expect(readRunFile(runDir, 'environment')).toEqual({ format: RUN_FILE_FORMATS.environment, ...environment });

    const epochs = readMetricsLines(path.join(runDir, 'metrics.jsonl'), 'epoch', epochMetricsSchema);
    const fromEvents = events.flatMap((e) => (e.type === 'epoch' ? [e.metrics] : []));
    expect(epochs).toEqual(fromEvents);
    expect(epochs).toHaveLength(2);
    expect(readMetricsLines(path.join(runDir, 'metrics.jsonl'), 'step', stepMetricsSchema).map((s) => s.step)).toEqual([1, 2, 3, 4]);

    const summary = readRunFile(runDir, 'summary')!;
    expect(runSummarySchema.parse(summary)).toEqual(summary);
    expect(summary).toMatchObject({ format: RUN_FILE_FORMATS.summary, status: 'completed', epochs: 2, steps: 4, testExamples: 2 });
    expect(summary.perClassAccuracy[2]).toBeNull();
    expect(epochs[1]!.testPerClassAccuracy[2]).toBeNull();
    expect(summary.final.testAccuracy).toBeCloseTo(1 - epochs[1]!.testTop1Error, 12);
    expect(summary.perClassAccuracy).toEqual(epochs[1]!.testPerClassAccuracy);
    // The checkpoint's state.json reads back through its own schema.
    expect((await readCheckpointState(path.join(runDir, 'checkpoints', 'last'))).globalStep).toBe(4);
  });

  it('writes config.json before environment.json: an environment.json that fails its schema leaves config.json written', async () => {
    const runDir = path.join(root, 'order');
    const bad = { ...environment, wasmThreads: 0 };
    await expect(
      train({ model: tinyModel(), trainSource: arraySource(8, 8), testSource: arraySource(4, 4), config, runDir, environment: bad }),
    ).rejects.toThrow(/wasmThreads/);
    expect(readRunFile(runDir, 'config')?.epochs).toBe(2);
    expect(readdirSync(runDir)).not.toContain('environment.json');
  });

  it("throws typed errors a caller sorts by kind: a directory holding a run, a resume with another batch size", async () => {
    const runDir = path.join(root, 'full');
    const again = train({ model: tinyModel(), trainSource: arraySource(16, 8), testSource: arraySource(2, 2), config, runDir });
    await expect(again).rejects.toBeInstanceOf(RunDirectoryError);
    await expect(again).rejects.toMatchObject({ kind: 'bad-input', exitCode: 2, runDir });
    const resumed = train({ model: tinyModel(), trainSource: arraySource(16, 4), testSource: arraySource(2, 2), config: { ...config, batchSize: 4, epochs: 3 }, runDir, resume: true });
    await expect(resumed).rejects.toBeInstanceOf(ResumeMismatchError);
    await expect(resumed).rejects.toMatchObject({ kind: 'bad-input', key: 'batchSize', message: `resume: batchSize is 4, but the run in ${runDir} was started with 8 (config.json); an exact resume needs the same value` });
  });

  it('a resume keeps the commit config.json recorded when the run started', async () => {
    const runDir = path.join(root, 'resume-commit');
    const args = { trainSource: arraySource(8, 8), testSource: arraySource(2, 2), runDir };
    await train({ ...args, model: tinyModel(), config: { ...config, epochs: 1 } });
    const file = path.join(runDir, 'config.json');
    const started = 'ab'.repeat(20);
    writeFileSync(file, readFileSync(file, 'utf8').replace(/"gitCommit": "[0-9a-f]+"/, `"gitCommit": "${started}"`));
    await train({ ...args, model: tinyModel(), config: { ...config, epochs: 2 }, resume: true });
    expect(readRunFile(runDir, 'config')).toMatchObject({ epochs: 2, gitCommit: started });
  });

  it('records no commit outside a git checkout, without failing', () => {
    const outside = path.join(os.tmpdir(), `wrn-no-git-${process.pid}`);
    mkdirSync(outside, { recursive: true });
    expect(currentGitCommit(outside)).toBeNull();
  });

  it('names the file, the format found and the format read when a file has another format', () => {
    const runDir = path.join(root, 'future');
    mkdirSync(runDir, { recursive: true });
    const file = path.join(runDir, 'summary.json');
    writeFileSync(file, JSON.stringify({ format: 'wrn-run-summary/2', status: 'completed' }));
    let error: unknown;
    try {
      readRunFile(runDir, 'summary');
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(RunFileFormatError);
    expect((error as Error).message).toBe(
      `${file}: format "wrn-run-summary/2" is not one this version of @wrn/training reads (it reads "wrn-run-summary/1"); use the @wrn version that wrote the run`,
    );
    expect((error as TrainingError).kind).toBe('bad-input');
    expect((error as TrainingError).exitCode).toBe(2);
  });

  it('names the file, the key and the value of a file that breaks its schema; reads a file without a format as the current one', () => {
    const runDir = path.join(root, 'bad-key');
    mkdirSync(runDir, { recursive: true });
    const file = path.join(runDir, 'config.json');
    writeFileSync(file, JSON.stringify({ epochs: -3, schedule: { kind: 'constant', lr: 0.1 } }));
    expect(() => readRunFile(runDir, 'config')).toThrow(RunFileError);
    expect(() => readRunFile(runDir, 'config')).toThrow(`${file}: epochs: Too small: expected number to be >0 (got -3)`);
    writeFileSync(file, JSON.stringify({ epochs: 3, schedule: { kind: 'constant', lr: 0.1 } }));
    expect(readRunFile(runDir, 'config')).toMatchObject({ format: RUN_FILE_FORMATS.config, epochs: 3, gitCommit: null, modelConfig: null });
    writeFileSync(file, '{"epochs": ');
    expect(() => readRunFile(runDir, 'config')).toThrow(`${file} is not valid JSON`);
    const metrics = path.join(runDir, 'metrics.jsonl');
    writeFileSync(metrics, '{"type":"epoch","epoch":1}\n');
    expect(() => readMetricsLines(metrics, 'epoch', epochMetricsSchema)).toThrow(`${metrics} line 1: epoch record: step: Invalid input: expected number, received undefined (got nothing)`);
  });
});

describe('writeFileAtomic (the one in @wrn/blocks/node)', () => {
  it('replaces a file whole and leaves no staging file behind, async and sync', async () => {
    const dir = path.join(root, 'atomic');
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'a.json');
    await writeFileAtomic(file, 'one');
    writeFileAtomicSync(file, new Uint8Array([116, 119, 111]));
    expect(readFileSync(file, 'utf8')).toBe('two');
    expect(readdirSync(dir)).toEqual(['a.json']);
  });

  it('removes its staging file when the rename fails (the target is a directory)', async () => {
    const dir = path.join(root, 'atomic-fail');
    mkdirSync(path.join(dir, 'taken'), { recursive: true });
    writeFileSync(path.join(dir, 'taken', 'x'), '');
    await expect(writeFileAtomic(path.join(dir, 'taken'), 'data')).rejects.toThrow(/EISDIR|ENOTEMPTY|EEXIST/);
    expect(() => writeFileAtomicSync(path.join(dir, 'taken'), 'data')).toThrow(/EISDIR|ENOTEMPTY|EEXIST/);
    expect(readdirSync(dir)).toEqual(['taken']);
  });
});
