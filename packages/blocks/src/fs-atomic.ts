import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, promises as fs, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/*
 * The one atomic file write of @wrn (blocks' model saver, training's run directory and checkpoints, the CLI's
 * reports and sweep records all use it). Not the `write-file-atomic` package: its temp names (`file.<hash>`) are
 * not ones a resume can tell from a user's files, and @wrn/training's resume removes a dead writer's leftovers by
 * name (`.file.tmp-<pid>-<hex>`: hidden, with the pid it checks for life).
 */

/** A fresh, unused hidden sibling path of `target` for staging a write: `.name.tmp-<pid>-<hex>` beside it. */
export function stagingPath(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/**
 * Writes `contents` to `target` atomically: into a staging file beside it, flushed to disk (fsync), then renamed over
 * `target`. A reader sees the old file or the new one, never half of one; on any error the staging file is removed.
 */
export async function writeFileAtomic(target: string, contents: string | Uint8Array): Promise<void> {
  const temp = stagingPath(target);
  try {
    const handle = await fs.open(temp, 'wx');
    try {
      await handle.writeFile(contents);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(temp, target);
  } catch (error) {
    await fs.rm(temp, { force: true });
    throw error;
  }
}

/** writeFileAtomic for synchronous callers (the CLI's report and sweep writers); same staging name, fsync and rename. */
export function writeFileAtomicSync(target: string, contents: string | Uint8Array): void {
  const temp = stagingPath(target);
  try {
    const fd = openSync(temp, 'wx');
    try {
      writeFileSync(fd, contents);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, target);
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
}
