import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url));
/** The shared real-data folder that sits beside the repository root. */
export const SHARED_DATA = resolve(REPO_ROOT, '../shared/data');
export const CIFAR10_SUBSET = join(SHARED_DATA, 'cifar10-subset');

export function tempDir(prefix: string): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), `wrn-datasets-${prefix}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** One CIFAR binary record: label byte(s), then the image as three row-major planes. */
export function cifarRecord(labels: number[], pixel: (row: number, col: number, channel: number) => number): Uint8Array {
  const record = new Uint8Array(labels.length + 3072);
  record.set(labels, 0);
  for (let c = 0; c < 3; c++) {
    for (let r = 0; r < 32; r++) {
      for (let col = 0; col < 32; col++) record[labels.length + c * 1024 + r * 32 + col] = pixel(r, col, c) & 255;
    }
  }
  return record;
}

export function concatBytes(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
