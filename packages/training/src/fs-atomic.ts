import { promises as fs } from 'node:fs';
// One atomic write for all of @wrn: @wrn/blocks/node's (staging file, fsync, rename), re-exported for training's modules.
export { stagingPath, writeFileAtomic } from '@wrn/blocks/node';

export async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}
