import { promises as fs } from 'node:fs';
import path from 'node:path';
import { copyCheckpoint, loadCheckpoint, readCheckpointState, resolveCheckpointDir, type CheckpointState, type LoadedCheckpoint } from './checkpoint';
import { CheckpointError, MANIFEST_FILE, verifyCheckpointFiles } from './checkpoint-manifest';
import { exists } from './fs-atomic';
import { CHECKPOINT_STATE_FILE } from './run-dir';

/*
 * What a kill can leave in a run directory, and how a resume (holding the run's lock, so no other writer is at
 * work) puts it right. The journal is the committed `last` checkpoint: its state.json says which epoch is best and
 * whether the run is finished, and the final checkpoint carries the run's summary.json.
 *   - staging directories and temp files (`.last.tmp-<pid>-<hex>`, `.summary.json.tmp-...`): removed;
 *   - `X.prev` beside a whole `X`: removed; `X.prev` without `X` (a kill between the two renames): renamed to `X`;
 *   - `best` older than the best epoch `last` records, when `last` is that epoch (a kill before the copy): copied;
 *   - `epoch-K` missing for the epoch `last` ends, when the run keeps them: copied;
 *   - summary.json missing after the final checkpoint (a kill before its write): rewritten from that checkpoint.
 */

const STAGING = /^\..+\.(tmp|stale)-(\d+)-[0-9a-f]+$/;
const CLI_TEMP = /\.tmp-(\d+)-\d+$/;

function pidAlive(pid: number): boolean {
  if (pid === process.pid) return false; // nothing of ours is in flight while a run starts
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes the staging directories and temp files of dead writers from `dir`; returns the names removed. */
export async function removeLeftovers(dir: string): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
    const match = STAGING.exec(name) ?? CLI_TEMP.exec(name);
    if (!match) continue;
    const pid = Number(match.length === 3 ? match[2] : match[1]);
    if (pidAlive(pid)) continue; // a process contending for the lock right now
    await fs.rm(path.join(dir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

/**
 * Settles `X.prev` siblings: renamed to `X` where a swap died between its two renames (no whole `X`); removed
 * beside an `X` that passes its checksums; kept beside an `X` that fails them (the fallback resume may need it).
 */
export async function settlePrevious(checkpointsDir: string): Promise<string[]> {
  const notes: string[] = [];
  for (const name of await fs.readdir(checkpointsDir).catch(() => [] as string[])) {
    if (!name.endsWith('.prev')) continue;
    const prev = path.join(checkpointsDir, name);
    const target = prev.slice(0, -'.prev'.length);
    const whole = await resolveCheckpointDir(target);
    if (whole === target) {
      const verified = await verifyCheckpointFiles(target).then(
        () => true,
        () => false,
      );
      if (!verified) continue;
      await fs.rm(prev, { recursive: true, force: true });
      notes.push(`removed ${prev} (left by a kill after ${path.basename(target)} was replaced)`);
    } else if (whole === prev) {
      await fs.rm(target, { recursive: true, force: true });
      await fs.rename(prev, target);
      notes.push(`moved ${prev} back to ${target} (a kill came between the two renames of its update)`);
    } else {
      await fs.rm(prev, { recursive: true, force: true });
      notes.push(`removed ${prev} (no whole checkpoint in it)`);
    }
  }
  return notes;
}

const sameState = (a: CheckpointState | null, b: CheckpointState) => a != null && a.epoch === b.epoch && a.globalStep === b.globalStep;

async function stateOrNull(dir: string): Promise<CheckpointState | null> {
  try {
    return await readCheckpointState(dir);
  } catch {
    return null;
  }
}

/**
 * Brings `best` and `epoch-K` in line with the committed `last` (verified copies), when `last` is the epoch they
 * should hold. Returns what it did, for the log.
 */
export async function reconcileNamedCheckpoints(checkpointsDir: string, last: LoadedCheckpoint, checkpointEvery: number): Promise<string[]> {
  const notes: string[] = [];
  const state = last.state;
  if (state.reason !== 'epoch') return notes;
  const bestDir = path.join(checkpointsDir, 'best');
  if (state.best != null && state.best.epoch === state.epoch && !sameState(await stateOrNull(bestDir), state)) {
    await copyCheckpoint(last.dir, bestDir);
    notes.push(`${bestDir} was older than the best epoch (${state.epoch}) that ${last.dir} records: copied it again`);
  }
  if (checkpointEvery > 0 && state.epoch > 0 && state.epoch % checkpointEvery === 0) {
    const epochDir = path.join(checkpointsDir, `epoch-${state.epoch}`);
    if (!sameState(await stateOrNull(epochDir), state)) {
      await copyCheckpoint(last.dir, epochDir);
      notes.push(`${epochDir} was missing: copied it from ${last.dir}`);
    }
  }
  return notes;
}

/**
 * Loads `checkpoints/last`, verified; if it fails its checksums, the newest other checkpoint of the run that
 * passes (last.prev, epoch-K, best), with a warning naming what failed. Throws CheckpointError when none passes.
 */
export async function loadNewestGoodCheckpoint(checkpointsDir: string): Promise<{ loaded: LoadedCheckpoint; warnings: string[] }> {
  const lastDir = path.join(checkpointsDir, 'last');
  let firstError: unknown;
  try {
    return { loaded: await loadCheckpoint(lastDir), warnings: [] };
  } catch (error) {
    if (!(error instanceof CheckpointError)) throw error;
    firstError = error;
  }
  const failures = [(firstError as Error).message];
  const candidates: LoadedCheckpoint[] = [];
  for (const name of await fs.readdir(checkpointsDir).catch(() => [] as string[])) {
    if (name === 'last' || name.startsWith('.')) continue;
    const dir = path.join(checkpointsDir, name);
    if (!(await exists(path.join(dir, MANIFEST_FILE))) && !(await exists(path.join(dir, CHECKPOINT_STATE_FILE)))) continue;
    try {
      candidates.push(await loadCheckpoint(dir));
    } catch (error) {
      if (!(error instanceof CheckpointError)) throw error;
      failures.push(error.message);
    }
  }
  candidates.sort((a, b) => b.state.globalStep - a.state.globalStep);
  const chosen = candidates[0];
  if (!chosen) {
    const error = firstError as CheckpointError;
    throw new CheckpointError(
      failures.length > 1 ? `no checkpoint of the run passes its checks:\n  ${failures.join('\n  ')}` : error.message,
      error.file,
    );
  }
  return {
    loaded: chosen,
    warnings: [
      `${(firstError as Error).message}; resuming from the newest checkpoint that passes its checks instead: ${chosen.dir} ` +
        `(epoch ${chosen.state.epoch}, step ${chosen.state.globalStep}); the steps after it are trained again`,
    ],
  };
}
