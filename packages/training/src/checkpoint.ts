import { promises as fs } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { z } from 'zod';
import { fileSystemIO } from '@wrn/blocks/node';
import { CheckpointError, MANIFEST_FILE, parseJsonFile, sha256, verifyCheckpointFiles, writeManifest } from './checkpoint-manifest';
import { faultPoint } from './fault-points';
import { exists, stagingPath } from './fs-atomic';
import type { SerializedSgdState, SgdOptimizer, SgdStateMeta } from './sgd';
import { CHECKPOINT_STATE_FILE } from './run-dir';

/*
 * Checkpoint layout (one directory per checkpoint, e.g. <runDir>/checkpoints/last/):
 *   model.json      TF.js layers-model format written by @wrn/blocks' fileSystemIO: topology, weightsManifest and
 *                   the SHA-256 of weights.bin (loadable with tf.loadLayersModel(fileSystemIO(dir)))
 *   weights.bin     every model weight (trainable and BN moving statistics), in model.weights order
 *   optimizer.json  SGD metadata (hyper-parameters, step count, buffer names and shapes)
 *   optimizer.bin   momentum buffers, float32 little-endian, in trainable-parameter order
 *   state.json      training position and random state (CheckpointState)
 *   summary.json    only in the checkpoint that ends a run: the run's summary.json, so a kill between this
 *                   commit and the summary's own write is repaired from it byte for byte
 *   manifest.json   size and SHA-256 of every other file, written last (checkpoint-manifest.ts)
 * A checkpoint is staged in a hidden sibling directory, then swapped in by renames (target -> target.prev,
 * staging -> target, remove target.prev). Killing the process at any point leaves either the new or the
 * previous checkpoint whole, under `target` or `target.prev`; readers look at both (resolveCheckpointDir), and
 * resume tidies what a kill left (repairRunDir).
 * Named copies (best, epoch-K) are verified copies of `last` made of hard links: files are never modified in
 * place, so links are safe and cost no disk space or time.
 */

export const CHECKPOINT_FORMAT = 'wrn-checkpoint/2';
/** Checkpoints written before manifests: still read, with only weights.bin's checksum to verify them. */
export const LEGACY_CHECKPOINT_FORMAT = 'wrn-checkpoint/1';

const bestSchema = z.object({ epoch: z.number().int().positive(), testTop1Error: z.number().min(0).max(1) }).strict();

/** state.json: where training stands when a checkpoint is written; everything resume needs besides tensors. */
export const checkpointStateSchema = z
  .object({
    format: z.enum([CHECKPOINT_FORMAT, LEGACY_CHECKPOINT_FORMAT]),
    /** Epochs fully trained (and evaluated). */
    epoch: z.number().int().nonnegative(),
    /** Steps already taken in epoch `epoch` (0-based) when interrupted (all of them when stopped after its last step); 0 at an epoch end. */
    iteration: z.number().int().nonnegative(),
    /** Optimiser steps taken in the whole run. */
    globalStep: z.number().int().nonnegative(),
    itersPerEpoch: z.number().int().positive(),
    /** Learning rate of the last step taken. */
    lr: z.number(),
    seed: z.number().int().nonnegative(),
    /** Dropout/drop-path random state (from @wrn/blocks), null when the run has none. */
    randomState: z.unknown(),
    best: bestSchema.nullable(),
    /** Running sums of the epoch in progress (mid-epoch checkpoints), so its train metrics resume exactly. */
    partialEpoch: z
      .object({ lossSum: z.number(), correct: z.number().nonnegative(), seen: z.number().int().nonnegative(), seconds: z.number().nonnegative() })
      .strict()
      .nullable(),
    reason: z.enum(['epoch', 'interrupted']),
    savedAt: z.string(),
  })
  .strict()
  .superRefine((s, ctx) => {
    // An interrupt after the last step of an epoch saves iteration == itersPerEpoch: the epoch's steps are all taken
    // and its evaluation is what a resume does first. An epoch-end checkpoint is always at iteration 0.
    if (s.reason === 'interrupted' ? s.iteration > s.itersPerEpoch : s.iteration !== 0) {
      const expected = s.reason === 'interrupted' ? `at most itersPerEpoch (${s.itersPerEpoch}) in an interrupted checkpoint` : '0 in an epoch-end checkpoint';
      ctx.addIssue({ code: 'custom', path: ['iteration'], message: `must be ${expected}` });
    }
    // Steps of the finished epochs plus those of the epoch in progress; a run stopped by maxSteps has fewer.
    if (s.globalStep > s.epoch * s.itersPerEpoch + s.iteration) {
      ctx.addIssue({ code: 'custom', path: ['globalStep'], message: `${s.epoch} epochs of ${s.itersPerEpoch} steps plus ${s.iteration} cannot make ${s.globalStep} steps` });
    }
    // Each finished epoch took at least one step (the last one may be cut short by maxSteps).
    if (s.epoch > 0 && s.globalStep <= (s.epoch - 1) * s.itersPerEpoch + s.iteration) {
      ctx.addIssue({ code: 'custom', path: ['epoch'], message: `${s.epoch} epochs of ${s.itersPerEpoch} steps need more than ${(s.epoch - 1) * s.itersPerEpoch + s.iteration} steps, globalStep is ${s.globalStep}` });
    }
    if (s.best != null && s.best.epoch > s.epoch) ctx.addIssue({ code: 'custom', path: ['best', 'epoch'], message: `best epoch ${s.best.epoch} is after the ${s.epoch} epochs trained` });
  });
export type CheckpointState = Omit<z.infer<typeof checkpointStateSchema>, 'format'> & { format: typeof CHECKPOINT_FORMAT | typeof LEGACY_CHECKPOINT_FORMAT };

/** Validates a parsed state.json, naming the file, the key, the value and what is allowed. */
export function parseCheckpointState(value: unknown, file: string): CheckpointState {
  const parsed = checkpointStateSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    let got: unknown = value;
    for (const part of issue.path) got = (got as Record<PropertyKey, unknown> | undefined)?.[part as string];
    throw new CheckpointError(`${file}: ${issue.path.join('.') || 'top level'}: ${issue.message} (got ${JSON.stringify(got) ?? 'nothing'})`, file);
  }
  return parsed.data as CheckpointState;
}

/** Reads and validates state.json of a checkpoint directory (without verifying the other files). */
export async function readCheckpointState(dir: string): Promise<CheckpointState> {
  const file = path.join(dir, CHECKPOINT_STATE_FILE);
  return parseCheckpointState(parseJsonFile(await fs.readFile(file, 'utf8'), file), file);
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

/** A directory that holds a checkpoint staged whole: its manifest, or (legacy checkpoints) its state.json. */
async function isWholeCheckpoint(dir: string): Promise<boolean> {
  return (await exists(path.join(dir, MANIFEST_FILE))) || (await exists(path.join(dir, CHECKPOINT_STATE_FILE)));
}

/** The directory holding the newest whole checkpoint named `dir` (itself or its `.prev`), or null if none. */
export async function resolveCheckpointDir(dir: string): Promise<string | null> {
  if (await isWholeCheckpoint(dir)) return dir;
  const prev = `${dir}.prev`;
  if (await isWholeCheckpoint(prev)) return prev;
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
 * Fills a staging directory with `fill`, writes its manifest, then swaps it in as `target`. If `fill` throws, or
 * the process dies at any moment, the previous checkpoint stays whole (under `target`, or `target.prev` mid-swap).
 */
export async function commitCheckpointDir(
  target: string,
  fill: (stagingDir: string) => Promise<void>,
  onStage?: CheckpointStageHook,
): Promise<void> {
  const name = path.basename(target);
  await fs.mkdir(path.dirname(target), { recursive: true });
  await removeStaleStaging(target);
  const staging = stagingPath(target);
  await fs.mkdir(staging);
  try {
    await fill(staging);
    if (!(await exists(path.join(staging, CHECKPOINT_STATE_FILE)))) {
      throw new Error(`checkpoint staging ${staging} has no ${CHECKPOINT_STATE_FILE} after writing`);
    }
    await faultPoint(`${name}:filled`);
    await writeManifest(staging);
  } catch (err) {
    await fs.rm(staging, { recursive: true, force: true });
    throw err;
  }
  await onStage?.('staged');
  await faultPoint(`${name}:staged`);
  const prev = `${target}.prev`;
  if (await isWholeCheckpoint(target)) {
    await fs.rm(prev, { recursive: true, force: true });
    await fs.rename(target, prev);
  } else {
    // No whole checkpoint under target: a previous swap died after moving it to .prev (keep .prev until the
    // new one is in place), or target is a leftover without a manifest.
    await fs.rm(target, { recursive: true, force: true });
  }
  await onStage?.('moved-previous');
  await faultPoint(`${name}:moved-previous`);
  await fs.rename(staging, target);
  await onStage?.('swapped');
  await faultPoint(`${name}:swapped`);
  await fs.rm(prev, { recursive: true, force: true });
}

/**
 * Writes model weights, optimiser state and `state` as the checkpoint `target`, atomically. `extraFiles` (the
 * run's summary in its final checkpoint) join the same commit and the same manifest.
 */
export async function saveCheckpoint(
  target: string,
  parts: { model: LayersModel; optimizer: SgdOptimizer; state: CheckpointState; extraFiles?: Record<string, string> },
  onStage?: CheckpointStageHook,
): Promise<void> {
  await commitCheckpointDir(
    target,
    async (dir) => {
      await parts.model.save(fileSystemIO(dir));
      const opt = await parts.optimizer.saveState();
      await fs.writeFile(path.join(dir, 'optimizer.json'), JSON.stringify(opt.meta));
      await fs.writeFile(path.join(dir, 'optimizer.bin'), opt.data);
      for (const [name, contents] of Object.entries(parts.extraFiles ?? {})) await fs.writeFile(path.join(dir, name), contents);
      await fs.writeFile(path.join(dir, CHECKPOINT_STATE_FILE), `${JSON.stringify(parts.state, null, 2)}\n`);
    },
    onStage,
  );
}

/**
 * Makes `target` a verified copy of the checkpoint in `source`: the source's files are checked against its
 * manifest, then hard-linked (byte-copied where links fail) into a staging directory that is swapped in atomically.
 */
export async function copyCheckpoint(source: string, target: string): Promise<void> {
  const { manifest } = await verifyCheckpointFiles(source);
  await commitCheckpointDir(target, async (dir) => {
    for (const name of Object.keys(manifest.files)) {
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

/**
 * Reads the checkpoint named `dir` (or its `.prev` if a swap was interrupted), verifying every file against its
 * manifest. Throws CheckpointError naming the file that is missing, damaged or malformed.
 */
export async function loadCheckpoint(dir: string): Promise<LoadedCheckpoint> {
  const found = await resolveCheckpointDir(dir);
  if (found == null) throw new CheckpointError(`no complete checkpoint at ${dir} (${MANIFEST_FILE} missing there and in ${dir}.prev)`, dir);
  let contents: Map<string, Buffer>;
  if (await exists(path.join(found, MANIFEST_FILE))) {
    ({ contents } = await verifyCheckpointFiles(found));
  } else {
    contents = new Map();
  }
  const read = async (name: string): Promise<Buffer> => {
    const cached = contents.get(name);
    if (cached) return cached;
    try {
      return await fs.readFile(path.join(found, name));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new CheckpointError(`${path.join(found, name)} is missing`, path.join(found, name));
      throw error;
    }
  };
  const json = async (name: string) => parseJsonFile((await read(name)).toString('utf8'), path.join(found, name));
  const stateFile = path.join(found, CHECKPOINT_STATE_FILE);
  const state = parseCheckpointState(await json(CHECKPOINT_STATE_FILE), stateFile);
  if (state.format === CHECKPOINT_FORMAT && !contents.has(CHECKPOINT_STATE_FILE)) {
    throw new CheckpointError(`${path.join(found, MANIFEST_FILE)} is missing, so ${found} cannot be verified`, path.join(found, MANIFEST_FILE));
  }
  const modelFile = path.join(found, 'model.json');
  const modelJson = (await json('model.json')) as {
    weightsManifest?: Array<{ weights?: tf.io.WeightsManifestEntry[] }>;
    weightsSha256?: string;
  } | null;
  if (modelJson == null || typeof modelJson !== 'object' || !Array.isArray(modelJson.weightsManifest)) {
    throw new CheckpointError(`${modelFile}: expected a TF.js layers model with a weightsManifest list`, modelFile);
  }
  const weightSpecs = modelJson.weightsManifest.flatMap((group) => group.weights ?? []);
  const weightData = new Uint8Array(await read('weights.bin'));
  if (modelJson.weightsSha256 != null && sha256(weightData) !== modelJson.weightsSha256) {
    throw new CheckpointError(`${found}/weights.bin does not match the checksum in ${found}/model.json`, path.join(found, 'weights.bin'));
  }
  const metaFile = path.join(found, 'optimizer.json');
  const meta = (await json('optimizer.json')) as SgdStateMeta | null;
  if (meta == null || typeof meta !== 'object' || !Array.isArray(meta.buffers)) {
    throw new CheckpointError(`${metaFile}: expected the SGD state (format, options, buffers)`, metaFile);
  }
  const optimizerData = new Uint8Array(await read('optimizer.bin'));
  if (optimizerData.byteLength % 4 !== 0) {
    throw new CheckpointError(`${found}/optimizer.bin has ${optimizerData.byteLength} bytes, not a whole number of float32 values`, path.join(found, 'optimizer.bin'));
  }
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
    throw new CheckpointError(`${where}: holds ${loaded.weightSpecs.length} weights, the model has ${weights.length}`, where);
  }
  const buffer = loaded.weightData.buffer.slice(loaded.weightData.byteOffset, loaded.weightData.byteOffset + loaded.weightData.byteLength);
  const tensors: tf.Tensor[] = [];
  let offset = 0;
  try {
    loaded.weightSpecs.forEach((spec, i) => {
      const w = weights[i]!;
      if (spec.quantization) throw new CheckpointError(`${where}: weight ${spec.name} is quantized; checkpoints are not`, where);
      const bytes = BYTES_PER_ELEMENT[spec.dtype];
      if (bytes == null) throw new CheckpointError(`${where}: weight ${spec.name} has dtype ${spec.dtype}, expected float32, int32 or bool`, where);
      const same = spec.shape.length === w.shape.length && spec.shape.every((s, k) => s === w.shape[k]);
      if (!same) throw new CheckpointError(`${where}: weight ${i} (${spec.name}) has shape [${spec.shape}], the model's ${w.originalName} has [${w.shape}]`, where);
      const size = spec.shape.reduce((a, b) => a * b, 1);
      const end = offset + size * bytes;
      if (end > buffer.byteLength) throw new CheckpointError(`${where}: weights.bin has ${buffer.byteLength} bytes, weight ${spec.name} needs up to ${end}`, where);
      const values =
        spec.dtype === 'float32'
          ? new Float32Array(buffer.slice(offset, end))
          : spec.dtype === 'int32'
            ? new Int32Array(buffer.slice(offset, end))
            : new Uint8Array(buffer.slice(offset, end));
      tensors.push(tf.tensor(values, spec.shape, spec.dtype as tf.DataType));
      offset = end;
    });
    if (offset !== buffer.byteLength) throw new CheckpointError(`${where}: weights.bin has ${buffer.byteLength} bytes, the weights use ${offset}`, where);
    model.setWeights(tensors);
  } finally {
    tf.dispose(tensors);
  }
}
