#!/usr/bin/env node
// The `wrn` command. This file is committed (not built) because npm links a workspace package's bin only when
// its file exists at install time: in a fresh clone `npm ci` runs before any build, and a bin pointing into dist/
// would be left unlinked, so `npx wrn` would go to the registry instead of this repository's CLI.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const built = new URL('../dist/bin.js', import.meta.url);
if (!existsSync(fileURLToPath(built))) {
  process.stderr.write(
    `wrn: ${fileURLToPath(built)} is missing: the CLI is not built yet; run \`npx nx run @wrn/cli:build\` (or \`npm run build\`) first\n`,
  );
  process.exit(1);
}
await import(built.href);
