#!/usr/bin/env node
import { writeSync } from 'node:fs';
import { processIO } from './io.js';
import { installSignalHandlers } from './signals.js';

// First of all, before the heavy imports (TF.js, the backends: about a second): a signal at any later moment ends
// wrn with a message and the conventional exit code, never Node's silent default.
installSignalHandlers(processIO());
// Test-only (WRN_TEST_FAULT_POINTS, see @wrn/training's fault-points.ts): say that the handlers are in place.
if (process.env.WRN_TEST_FAULT_POINTS?.includes('cli:start')) writeSync(2, 'wrn-fault-point cli:start\n');

// The threaded wasm build's workers are unref'd (so they never keep a finished run alive), and a command can be
// left awaiting work that only they report on: with nothing else referenced Node would then drain its event loop
// and exit 0 mid-run, printing nothing. A referenced timer keeps the loop alive until the command has settled.
const keepAlive = setInterval(() => undefined, 2 ** 30);
let settled = false;
// A reader that stops early (`wrn models | head`) is not an error of ours: stop writing and exit quietly.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    settled = true;
    process.exit(0);
  });
}
process.on('exit', (code) => {
  if (settled || code !== 0) return;
  process.stderr.write('wrn: failed: the process was about to exit before the command finished (internal error)\n');
  process.exitCode = 1;
});

// process.exitCode rather than process.exit(): pending writes to a piped stdout are flushed before Node exits.
void import('./program.js')
  .then(({ runCli }) => runCli(process.argv.slice(2)))
  .then((code) => {
    settled = true;
    clearInterval(keepAlive);
    process.exitCode = code;
  });
