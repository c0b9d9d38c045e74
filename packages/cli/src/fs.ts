import { renameSync, rmSync, writeFileSync } from 'node:fs';

/** Writes through a temporary file and a rename, so a reader never sees a half-written file under the final name. */
export function writeFileAtomic(path: string, contents: string | Uint8Array): void {
  const temporary = `${path}.tmp-${process.pid}-${Date.now()}`;
  try {
    writeFileSync(temporary, contents);
    renameSync(temporary, path);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
}
