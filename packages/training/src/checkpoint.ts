import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { fileSystemIO } from '@wrn/blocks/node';
import { exists, stagingPath } from './fs-atomic';
import type { SerializedSgdState, SgdOptimizer, SgdStateMeta } from './sgd';

/*
 * Checkpoint layout (one directory per checkpoint, e.g. <runDir>/checkpoints/last/):
 *   model.json      TF.js layers-model format written by @wrn/blocks' fileSystemIO: topology, weightsManifest and
 *                   the SHA-256 of weights.bin (loadable with tf.loadLayersModel(fileSystemIO(dir)))
 *   weights.bin     every model weight (trainable and BN moving statistics), in model.weights order
 *   optimizer.json  SGD metadata (hyper-parameters, step count, buffer names and shapes)
 *   optimizer.bin   momentum buffers, float32 little-endian, in trainable-parameter order
 *   state.json      training position and random state (CheckpointState); written last: a directory without
 *                   it is incomplete and never read.
 * A checkpoint is staged in a hidden sibling directory, then swapped in by renames (target -> target.prev,
 * staging -> target, remove target.prev). Killing the process at any point leaves either the new or the
 * previous checkpoint whole, under `target` or `target.prev`; readers look at both (resolveCheckpointDir).
 * Named copies (best, epoch-K) are hard links to the files of `last`: files are never modified in place, so
 * links are safe and cost no disk space or time.
 */

export const CHECKPOINT_FORMAT = 'wrn-checkpoint/1';
const FILES = ['model.json', 'weights.bin', 'optimizer.json', 'optimizer.bin', 'state.json'] as const;

/** Where training stands when a checkpoint is written; everything resume needs besides tensors. */
export interface CheckpointState {
  format: typeof CHECKPOINT_FORMAT;
  /** Epochs fully trained (and evaluated). */
  epoch: number;
  /** Steps already taken in epoch `epoch` (0-based) when interrupted mid-epoch; 0 at an epoch boundary. */
  iteration: number;
  /** Optimiser steps taken in the whole run. */
  globalStep: number;
  itersPerEpoch: number;
  /** Learning rate of the last step taken. */
  lr: number;
  seed: number;
  /** Dropout/drop-path random state (from @wrn/blocks), null when the run has none. */
  randomState: unknown;
  best: { epoch: number; testTop1Error: number } | null;
  /** Running sums of the epoch in progress (mid-epoch checkpoints), so its train metrics resume exactly. */
  partialEpoch: { lossSum: number; correct: number; seen: number; seconds: number } | null;
  reason: 'epoch' | 'interrupted';
  savedAt: string;
}

export interface LoadedCheckpoint {
  dir: string;
  state: CheckpointState;
  weightSpecs: tf.io.WeightsManifestEntry[];
  weightData: Uint8Array;
  optimizer: SerializedSgdState;
}

/** Test hook: called after each stage of the swap so a test can simulate a kill at that moment. */
export type CheckpointStageHook = (stage: 'staged' | 'moved-previous' | 'swapped') => void | Promise<void>;

/** The directory holding the newest whole checkpoint named `dir` (itself or its `.prev`), or null if none. */
export async function resolveCheckpointDir(dir: string): Promise<string | null> {
  if (await exists(path.join(dir, 'state.json'))) return dir;
  const prev = `${dir}.prev`;
  if (await exists(path.join(prev, 'state.json'))) return prev;
  return null;
}

async function removeStaleStaging(target: string): Promise<void> {
  const parent = path.dirname(target);
  const prefix = `.${path.basename(target)}.tmp-`;
  for (const name of await fs.readdir(parent).catch(() => [] as string[])) {
    if (name.startsWith(prefix)) await fs.rm(path.join(parent, name), { recursive: true, force: true });
  }
}

/**
 * Fills a staging directory with `fill`, then swaps it in as `target`. If `fill` throws, or the process dies
 * at any moment, the previous checkpoint stays whole (under `target`, or under `target.prev` mid-swap).
 */
export async function commitCheckpointDir(
  target: string,
  fill: (stagingDir: string) => Promise<void>,
  onStage?: CheckpointStageHook,
): Promise<void> {
  await fs.mkdir(path.dirname(target), { recursive: true });
  await removeStaleStaging(target);
  const staging = stagingPath(target);
  await fs.mkdir(staging);
  try {
    await fill(staging);
    if (!(await exists(path.join(staging, 'state.json')))) {
      throw new Error(`checkpoint staging ${staging} has no state.json after writing`);
    }
  } catch (err) {
    await fs.rm(staging, { recursive: true, force: true });
    throw err;
  }
  await onStage?.('staged');
  const prev = `${target}.prev`;
  if (await exists(path.join(target, 'state.json'))) {
    await fs.rm(prev, { recursive: true, force: true });
    await fs.rename(target, prev);
  } else {
    // No whole checkpoint under target: a previous swap died after moving it to .prev (keep .prev until the
    // new one is in place), or target is a leftover without state.json.
    await fs.rm(target, { recursive: true, force: true });
  }
  await onStage?.('moved-previous');
  await fs.rename(staging, target);
  await onStage?.('swapped');
  await fs.rm(prev, { recursive: true, force: true });
}

/** Writes model weights, optimiser state and `state` as the checkpoint `target`, atomically. */
export async function saveCheckpoint(
  target: string,
  parts: { model: LayersModel; optimizer: SgdOptimizer; state: CheckpointState },
  onStage?: CheckpointStageHook,
): Promise<void> {
  await commitCheckpointDir(
    target,
    async (dir) => {
      await parts.model.save(fileSystemIO(dir));
      const opt = await parts.optimizer.saveState();
      await fs.writeFile(path.join(dir, 'optimizer.json'), JSON.stringify(opt.meta));
      await fs.writeFile(path.join(dir, 'optimizer.bin'), opt.data);
      await fs.writeFile(path.join(dir, 'state.json'), `${JSON.stringify(parts.state, null, 2)}\n`);
    },
    onStage,
  );
}

/** Makes `target` a copy of the checkpoint in `source` (hard links; a byte copy where links fail), atomically. */
export async function copyCheckpoint(source: string, target: string): Promise<void> {
  await commitCheckpointDir(target, async (dir) => {
    for (const name of FILES) {
      const from = path.join(source, name);
      const to = path.join(dir, name);
      try {
        await fs.link(from, to);
      } catch {
        await fs.copyFile(from, to);
      }
    }
  });
}

/** Reads the checkpoint named `dir` (or its `.prev` if a swap was interrupted). Throws naming what is missing. */
export async function loadCheckpoint(dir: string): Promise<LoadedCheckpoint> {
  const found = await resolveCheckpointDir(dir);
  if (found == null) throw new Error(`no complete checkpoint at ${dir} (state.json missing there and in ${dir}.prev)`);
  const read = (name: string) => fs.readFile(path.join(found, name));
  const state = JSON.parse((await read('state.json')).toString('utf8')) as CheckpointState;
  if (state.format !== CHECKPOINT_FORMAT) {
    throw new Error(`${found}/state.json: format ${JSON.stringify(state.format)}, expected "${CHECKPOINT_FORMAT}"`);
  }
  const modelJson = JSON.parse((await read('model.json')).toString('utf8')) as {
    weightsManifest: Array<{ weights: tf.io.WeightsManifestEntry[] }>;
    weightsSha256?: string;
  };
  const weightSpecs = modelJson.weightsManifest.flatMap((group) => group.weights);
  const weightData = new Uint8Array(await read('weights.bin'));
  if (modelJson.weightsSha256 != null && createHash('sha256').update(weightData).digest('hex') !== modelJson.weightsSha256) {
    throw new Error(`${found}/weights.bin does not match the checksum in ${found}/model.json`);
  }
  const meta = JSON.parse((await read('optimizer.json')).toString('utf8')) as SgdStateMeta;
  const optimizerData = new Uint8Array(await read('optimizer.bin'));
  return { dir: found, state, weightSpecs, weightData, optimizer: { meta, data: optimizerData } };
}

const BYTES_PER_ELEMENT: Record<string, number> = { float32: 4, int32: 4, bool: 1 };

/**
 * Sets the model's weights from a checkpoint, by position in model.weights (auto-generated layer names differ
 * between two builds of the same model in one process), checking count, dtype and shape of each.
 */
export function restoreModelWeights(model: LayersModel, loaded: Pick<LoadedCheckpoint, 'dir' | 'weightSpecs' | 'weightData'>): void {
  const where = `${loaded.dir}/model.json`;
  const weights = model.weights;
  if (loaded.weightSpecs.length !== weights.length) {
    throw new Error(`${where}: holds ${loaded.weightSpecs.length} weights, the model has ${weights.length}`);
  }
  const buffer = loaded.weightData.buffer.slice(loaded.weightData.byteOffset, loaded.weightData.byteOffset + loaded.weightData.byteLength);
  const tensors: tf.Tensor[] = [];
  let offset = 0;
  try {
    loaded.weightSpecs.forEach((spec, i) => {
      const w = weights[i]!;
      if (spec.quantization) throw new Error(`${where}: weight ${spec.name} is quantized; checkpoints are not`);
      const bytes = BYTES_PER_ELEMENT[spec.dtype];
      if (bytes == null) throw new Error(`${where}: weight ${spec.name} has dtype ${spec.dtype}, expected float32, int32 or bool`);
      const same = spec.shape.length === w.shape.length && spec.shape.every((s, k) => s === w.shape[k]);
      if (!same) throw new Error(`${where}: weight ${i} (${spec.name}) has shape [${spec.shape}], the model's ${w.originalName} has [${w.shape}]`);
      const size = spec.shape.reduce((a, b) => a * b, 1);
      const end = offset + size * bytes;
      if (end > buffer.byteLength) throw new Error(`${where}: weights.bin has ${buffer.byteLength} bytes, weight ${spec.name} needs up to ${end}`);
      const values =
        spec.dtype === 'float32'
          ? new Float32Array(buffer.slice(offset, end))
          : spec.dtype === 'int32'
            ? new Int32Array(buffer.slice(offset, end))
            : new Uint8Array(buffer.slice(offset, end));
      tensors.push(tf.tensor(values, spec.shape, spec.dtype as tf.DataType));
      offset = end;
    });
    if (offset !== buffer.byteLength) throw new Error(`${where}: weights.bin has ${buffer.byteLength} bytes, the weights use ${offset}`);
    model.setWeights(tensors);
  } finally {
    tf.dispose(tensors);
  }
}
