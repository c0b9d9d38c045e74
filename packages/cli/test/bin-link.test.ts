import { execFileSync } from 'node:child_process';
import { readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './run-wrn.js';

// npm links a workspace package's bin only if the file exists when `npm ci` runs, which in a fresh clone is
// before any build: the bin must be a committed file, not a build output, or `npx wrn` goes to the registry.
describe('the wrn bin in this repository', () => {
  const cliDir = join(REPO_ROOT, 'packages', 'cli');
  const manifest = JSON.parse(readFileSync(join(cliDir, 'package.json'), 'utf8')) as { bin: Record<string, string>; files: string[] };

  it('is a committed file that npm links into node_modules/.bin', () => {
    const binPath = manifest.bin.wrn!;
    expect(binPath.startsWith('./dist/')).toBe(false);
    const tracked = execFileSync('git', ['ls-files', '--error-unmatch', binPath], { cwd: cliDir, encoding: 'utf8' });
    expect(tracked.trim()).toBe(binPath.replace(/^\.\//, ''));
    expect(manifest.files).toContain(binPath.replace(/^\.\//, '').split('/')[0]);
    expect(realpathSync(join(REPO_ROOT, 'node_modules', '.bin', 'wrn'))).toBe(realpathSync(join(cliDir, binPath)));
  });

  it('runs the built CLI through npx inside the repository', () => {
    const version = execFileSync('npx', ['--no-install', 'wrn', '--version'], { cwd: REPO_ROOT, encoding: 'utf8' });
    const cliVersion = (JSON.parse(readFileSync(join(cliDir, 'package.json'), 'utf8')) as { version: string }).version;
    expect(version.trim()).toBe(cliVersion);
  });
});
