import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inject } from 'vitest';

export const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url));
/** Whether the shared real-data folder sits beside the repository root (vitest.shared-data.ts); tests that read it skip when not. */
export const NO_SHARED_DATA = inject('sharedDataDir') === null;
/** The shared real-data folder that sits beside the repository root. */
export const SHARED_DATA = inject('sharedDataDir') ?? '(../shared/data is missing)';
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

/**
 * Reads real data for a suite that skips without it: a skipped suite's body still runs (to collect its tests), so a
 * top-level read must not touch the missing folder. The value is only used by tests that run, when it is loaded.
 */
export function realData<T>(read: () => T): T {
  return NO_SHARED_DATA ? (undefined as T) : read();
}
