#!/usr/bin/env node
// The addon half of @wrn/native's build. This platform's prebuilt binary is used as it is when it was built from
// today's sources (prebuilds/<platform>-<arch>/source.sha256): a fresh clone's quickstart then compiles nothing.
// Otherwise, or with WRN_NATIVE_FROM_SOURCE=1 (CI sets it, so the sources are compiled and tested on every run),
// node-gyp compiles it into build/Release, which the loader prefers.
'use strict';
const { execFileSync } = require('node:child_process');
const { existsSync, readFileSync, rmSync } = require('node:fs');
const { join } = require('node:path');
const { PREBUILD_DIR, sourceHash } = require('./prebuild-info.cjs');

const root = join(__dirname, '..');
const stamp = join(PREBUILD_DIR, 'source.sha256');
const prebuiltIsCurrent = existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === sourceHash();
if (process.env.WRN_NATIVE_FROM_SOURCE !== '1' && prebuiltIsCurrent) {
  // A binary compiled here from older sources would shadow the current prebuilt one.
  rmSync(join(root, 'build'), { recursive: true, force: true });
  console.log(`@wrn/native: using the prebuilt ${process.platform}-${process.arch} binary (built from these sources)`);
} else {
  const nodeGyp = process.env.npm_config_node_gyp;
  if (nodeGyp) execFileSync(process.execPath, [nodeGyp, 'rebuild'], { cwd: root, stdio: 'inherit' });
  else execFileSync('npx', ['--no-install', 'node-gyp', 'rebuild'], { cwd: root, stdio: 'inherit' });
}
