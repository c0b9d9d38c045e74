import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const cliRoot = fileURLToPath(new URL('..', import.meta.url));

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

export default function setup(): void {
  for (const dependency of ['blocks', 'architectures', 'datasets', 'training']) {
    const dist = join(cliRoot, '..', dependency, 'dist', 'index.js');
    if (!existsSync(dist)) {
      throw new Error(`${dist} is missing: the CLI tests run the built CLI; build first with \`npx nx run @wrn/cli:build\``);
    }
  }
  const bin = join(cliRoot, 'dist', 'bin.js');
  if (!existsSync(bin) || statSync(bin).mtimeMs < newestMtime(join(cliRoot, 'src'))) {
    execFileSync('npx', ['tsup'], { cwd: cliRoot, stdio: 'inherit' });
  }
}
