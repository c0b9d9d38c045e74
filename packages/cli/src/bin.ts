#!/usr/bin/env node
import { runCli } from './program.js';

// A reader that stops early (`wrn models | head`) is not an error of ours: stop writing and exit quietly.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(0);
    throw error;
  });
}

// process.exitCode rather than process.exit(): pending writes to a piped stdout are flushed before Node exits.
void runCli(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
