import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, inject } from 'vitest';

export const BIN = fileURLToPath(new URL('../dist/bin.js', import.meta.url));
export const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url));
/** Whether ../shared/data sits beside the repository (vitest.shared-data.ts); the tests that read it skip when not. */
export const NO_SHARED_DATA = inject('sharedDataDir') === null;
export const SHARED_SUBSET = join(inject('sharedDataDir') ?? join(REPO_ROOT, '..', 'shared', 'data'), 'cifar10-subset');

export interface WrnResult {
  code: number | null;
  /** The signal that ended the process, if one did (then code is null). */
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the built `wrn` as a user would: a child process with its own stdout/stderr (pipes, so not a TTY). */
export function runWrn(args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<WrnResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: options.cwd ?? REPO_ROOT,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

const scratchDirs: string[] = [];
// Registered when a test file imports this module, so it runs after that file's tests.
afterAll(() => {
  for (const dir of scratchDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A fresh temporary directory, removed when the test process exits. */
export function scratchDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `wrn-cli-${prefix}-`));
  scratchDirs.push(dir);
  return dir;
}
