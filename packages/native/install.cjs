#!/usr/bin/env node
// npm runs this when @wrn/native is installed: compile the addon with the node-gyp that npm provides. A machine
// without a C++ toolchain is not an error: @wrn/training then trains on the wasm backend's own kernels, and
// `wrn doctor` says why the native kernels are missing.
'use strict';
const { spawnSync } = require('node:child_process');
const { existsSync } = require('node:fs');
const { join } = require('node:path');

if (existsSync(join(__dirname, 'build', 'Release', 'wrn_native.node'))) process.exit(0);
const nodeGyp = process.env.npm_config_node_gyp;
const [command, args] = nodeGyp ? [process.execPath, [nodeGyp, 'rebuild']] : ['node-gyp', ['rebuild']];
const result = spawnSync(command, args, { cwd: __dirname, stdio: 'inherit', shell: !nodeGyp && process.platform === 'win32' });
if (result.status !== 0) {
  console.warn(
    '@wrn/native: could not compile the native convolution kernels (needs python3, make and a C++17 compiler);' +
      ' training falls back to the wasm kernels. Rebuild later with `npm rebuild @wrn/native`.',
  );
}
