import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { DatasetFormatError } from './errors.js';
import type { ImageDataset } from './types.js';
import { datasetSha256, fitZca, type FitZcaOptions, type ZcaWhitening } from './zca.js';

// The ZCA cache on disk (Node); fitting and applying the transform live in zca.ts, which bundles for browsers.

const MAGIC = 'WRN-ZCA1';

/** Writes `zca` to `file` atomically (temp file + rename): a JSON header, then mean and matrix as float32. */
export function saveZca(zca: ZcaWhitening, file: string): void {
  const header = Buffer.from(
    JSON.stringify({ height: zca.height, width: zca.width, channels: zca.channels, epsilon: zca.epsilon, fittedOn: zca.fittedOn }),
  );
  const prefix = Buffer.alloc(12);
  prefix.write(MAGIC, 0, 'latin1');
  prefix.writeUInt32LE(header.length, 8);
  const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    writeFileSync(temp, Buffer.concat([prefix, header, Buffer.from(zca.mean.buffer, zca.mean.byteOffset, zca.mean.byteLength), Buffer.from(zca.matrix.buffer, zca.matrix.byteOffset, zca.matrix.byteLength)]));
    renameSync(temp, file);
  } finally {
    rmSync(temp, { force: true });
  }
}

export function loadZca(file: string): ZcaWhitening {
  const bytes = readFileSync(file);
  if (bytes.length < 12 || bytes.toString('latin1', 0, 8) !== MAGIC) {
    throw new DatasetFormatError(file, `not a ZCA cache file: expected it to start with "${MAGIC}"`, { byteOffset: 0 });
  }
  const headerLength = bytes.readUInt32LE(8);
  const header = JSON.parse(bytes.toString('utf8', 12, 12 + headerLength)) as Omit<ZcaWhitening, 'mean' | 'matrix'>;
  const size = header.height * header.width * header.channels;
  const dataStart = 12 + headerLength;
  const expected = dataStart + 4 * (size + size * size);
  if (bytes.length !== expected) {
    throw new DatasetFormatError(file, `${bytes.length} bytes, expected ${expected} for ${size}-dimensional ZCA data`, {
      byteOffset: Math.min(bytes.length, expected),
    });
  }
  // Copy into fresh, aligned arrays (the file buffer's offset need not be a multiple of 4).
  const floats = new Float32Array(size + size * size);
  new Uint8Array(floats.buffer).set(bytes.subarray(dataStart));
  return { ...header, mean: floats.slice(0, size), matrix: floats.slice(size) };
}

/**
 * The ZCA transform of `train`, from `cacheDir` when a transform for exactly these images and epsilon is there,
 * else fitted now and saved there. Fitting 3072-dimensional CIFAR takes about a minute; loading takes milliseconds.
 */
export async function loadOrFitZca(train: ImageDataset, cacheDir: string, options: FitZcaOptions = {}): Promise<{ zca: ZcaWhitening; file: string; cached: boolean }> {
  const epsilon = options.epsilon ?? 0.01;
  const sampled = Math.min(options.sampleSize ?? train.count, train.count);
  const sha256 = datasetSha256(train);
  const file = join(cacheDir, `zca-${train.name}-${train.split}-${sha256.slice(0, 16)}-n${sampled}-eps${epsilon}.bin`);
  if (existsSync(file)) {
    const zca = loadZca(file);
    if (zca.fittedOn.sha256 === sha256 && zca.fittedOn.sampled === sampled && zca.epsilon === epsilon) {
      return { zca, file, cached: true };
    }
  }
  const zca = await fitZca(train, { epsilon, sampleSize: sampled });
  mkdirSync(cacheDir, { recursive: true });
  saveZca(zca, file);
  return { zca, file, cached: false };
}
