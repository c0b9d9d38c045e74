#!/usr/bin/env node
// npm runs this when @wrn/native is installed (when install scripts are allowed at all: npm 11 and pnpm 10 hold
// them back by default). Where a prebuilt binary for this platform ships in the package and loads, nothing is
// compiled. Elsewhere, compile with the node-gyp that npm provides. A machine without a C++ toolchain is not an
// error: @wrn/training then trains on the wasm backend's own kernels, and `wrn doctor` says why.
'use strict';
const { spawnSync } = require('node:child_process');
const { existsSync } = require('node:fs');
const { join } = require('node:path');
const { PREBUILD_DIR } = require('./scripts/prebuild-info.cjs');

function loads(file) {
  if (!existsSync(file)) return false;
  try {
    require(file);
    return true;
  } catch {
    return false;
  }
}

if (loads(join(__dirname, 'build', 'Release', 'wrn_native.node'))) process.exit(0);
if (loads(join(PREBUILD_DIR, 'wrn_native.node'))) process.exit(0);
const nodeGyp = process.env.npm_config_node_gyp;
const [command, args] = nodeGyp ? [process.execPath, [nodeGyp, 'rebuild']] : ['node-gyp', ['rebuild']];
const result = spawnSync(command, args, { cwd: __dirname, stdio: 'inherit', shell: !nodeGyp && process.platform === 'win32' });
if (result.status !== 0) {
  console.warn(
    '@wrn/native: could not compile the native convolution kernels (needs python3, make and a C++17 compiler);' +
      ' training falls back to the wasm kernels. Rebuild later with `npm rebuild @wrn/native`.',
  );
}
