import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';

/** The real-data folder beside the repository (`../shared/data`), and the files of it that tests read. */
const SHARED_DATA_DIR = fileURLToPath(new URL('../shared/data', import.meta.url));
const SHARED_DATA_FILES = ['cifar10-subset/data_batch_1.bin', 'cifar10-subset/test_batch.bin', 'cifar10-jpeg/train.tar.gz'];

// Runs once per test run, before any test file. A clone without ../shared beside it still passes its tests: the
// ones that read real data skip, and this says so in one line. CI runs with ../shared and must run every test, so
// there a missing folder is a failure rather than a skip.
export default function setup(project: TestProject): void {
  const missing = SHARED_DATA_FILES.filter((file) => !existsSync(join(SHARED_DATA_DIR, file)));
  if (missing.length > 0) {
    const what = `${join(SHARED_DATA_DIR, missing[0]!)}${missing.length > 1 ? ` (and ${missing.length - 1} more)` : ''} not found`;
    if (process.env.CI) throw new Error(`real data missing: ${what}; CI runs every test, so ../shared must sit beside the repository`);
    console.log(`skipping the tests that read real data: ${what} (put ../shared beside the repository to run them)`);
  }
  project.provide('sharedDataDir', missing.length === 0 ? SHARED_DATA_DIR : null);
}

declare module 'vitest' {
  export interface ProvidedContext {
    /** `../shared/data` when every file the tests read is there, else null (those tests skip). */
    sharedDataDir: string | null;
  }
}
