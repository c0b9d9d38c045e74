import { readFileSync } from 'node:fs';
import type { CliIO } from './io.js';

/** What every command gets: where to write and the global flags. */
export interface CommandContext {
  io: CliIO;
  /** --verbose: stack traces on error and more detail. */
  verbose: () => boolean;
}

export function cliVersion(): string {
  const packageJson = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return packageJson.version;
}

/** The embedded CIFAR-10 sample shipped inside the @wrn/cli tarball: `wrn train` uses it when given no --data-dir. */
export function embeddedSampleDir(): string {
  return decodeURIComponent(new URL('../data/cifar10-sample', import.meta.url).pathname);
}
