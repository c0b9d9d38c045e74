import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { TrainingError } from './errors';

/*
 * Every checkpoint directory ends with manifest.json: the size and SHA-256 of each of its other files. It is the
 * last file written into the staging directory, so a checkpoint under its final name with a manifest was staged
 * whole; a file that no longer matches its sum was damaged afterwards (a flipped bit, a truncation, an edit) and the
 * checkpoint is refused, naming the file, instead of resuming silently on wrong numbers.
 */

export const MANIFEST_FILE = 'manifest.json';
export const CHECKPOINT_MANIFEST_FORMAT = 'wrn-checkpoint-manifest/1';

export const checkpointManifestSchema = z
  .object({
    format: z.literal(CHECKPOINT_MANIFEST_FORMAT),
    files: z.record(z.string().regex(/^[\w.-]+$/), z.object({ bytes: z.number().int().nonnegative(), sha256: z.string().regex(/^[0-9a-f]{64}$/) }).strict()),
  })
  .strict();
export type CheckpointManifest = z.infer<typeof checkpointManifestSchema>;

/**
 * A checkpoint (or a file of one) that cannot be used: missing, damaged, or not what the run expects. Bad input
 * rather than a failure of the run: `wrn` exits 2 with the message, which names the file.
 */
export class CheckpointError extends TrainingError {
  override readonly name = 'CheckpointError';
  readonly kind = 'bad-input';
  constructor(
    message: string,
    /** The file (or directory) at fault. */
    readonly file: string,
  ) {
    super(message);
  }
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Hashes every regular file of `dir` (but the manifest) and writes manifest.json, the checkpoint's last file. */
export async function writeManifest(dir: string): Promise<CheckpointManifest> {
  const names = (await fs.readdir(dir)).filter((name) => name !== MANIFEST_FILE).sort();
  const files: CheckpointManifest['files'] = {};
  for (const name of names) {
    const data = await fs.readFile(path.join(dir, name));
    files[name] = { bytes: data.byteLength, sha256: sha256(data) };
  }
  const manifest: CheckpointManifest = { format: CHECKPOINT_MANIFEST_FORMAT, files };
  await fs.writeFile(path.join(dir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

/** Parses JSON text of `file`, naming the file, the byte offset (when known) and the fix in the error. */
export function parseJsonFile(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    const message = (error as Error).message;
    const at = /position (\d+)/.exec(message)?.[1];
    const problem = text.length === 0 ? 'the file is empty' : `not valid JSON${at ? ` at byte ${at}` : ''} (${message})`;
    throw new CheckpointError(`${file}: ${problem}`, file);
  }
}

/** Reads and validates manifest.json of `dir`. */
export async function readManifest(dir: string): Promise<CheckpointManifest> {
  const file = path.join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new CheckpointError(`${file} is missing, so ${dir} cannot be verified`, file);
    throw error;
  }
  const parsed = checkpointManifestSchema.safeParse(parseJsonFile(text, file));
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new CheckpointError(`${file}: ${issue.path.join('.') || 'top level'}: ${issue.message}`, file);
  }
  return parsed.data;
}

/**
 * Checks every file the manifest of `dir` lists against its size and SHA-256; throws CheckpointError naming the
 * first file that is missing or differs. Returns the manifest and the bytes read, so a loader reads each file once.
 */
export async function verifyCheckpointFiles(dir: string): Promise<{ manifest: CheckpointManifest; contents: Map<string, Buffer> }> {
  const manifest = await readManifest(dir);
  const contents = new Map<string, Buffer>();
  for (const [name, expected] of Object.entries(manifest.files)) {
    const file = path.join(dir, name);
    let data: Buffer;
    try {
      data = await fs.readFile(file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new CheckpointError(`${file} is missing (listed in ${path.join(dir, MANIFEST_FILE)})`, file);
      throw error;
    }
    if (data.byteLength !== expected.bytes) {
      throw new CheckpointError(`${file} has ${data.byteLength} bytes, ${path.join(dir, MANIFEST_FILE)} says ${expected.bytes}: the file was truncated or replaced`, file);
    }
    if (sha256(data) !== expected.sha256) {
      throw new CheckpointError(`${file} does not match its SHA-256 in ${path.join(dir, MANIFEST_FILE)}: the file is damaged`, file);
    }
    contents.set(name, data);
  }
  return { manifest, contents };
}
