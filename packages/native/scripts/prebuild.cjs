#!/usr/bin/env node
// The release step for @wrn/native's prebuilt binary: compiles the addon from source here and copies it to
// prebuilds/<platform>-<arch>/, beside a hash of the sources it was built from (a test fails when the sources
// change and this was not run again). The binary is N-API (one build serves every Node >= 20) and picks its
// AVX-512F, AVX2+FMA or portable kernel at run time. Built on Debian 12, it needs glibc 2.14+ and GCC 12's libstdc++
// (GLIBCXX_3.4.30: Debian 12, Ubuntu 22.04, RHEL 9 and later); elsewhere install.cjs compiles from source.
// (Linking libstdc++ statically was tried: it raises the glibc requirement to 2.36, which excludes Ubuntu 22.04.)
// Run: `npm run release:prebuilt -w @wrn/native`, then commit prebuilds/.
'use strict';
const { execFileSync } = require('node:child_process');
const { copyFileSync, mkdirSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const { PREBUILD_DIR, sourceHash } = require('./prebuild-info.cjs');

const root = join(__dirname, '..');
const nodeGyp = process.env.npm_config_node_gyp;
if (nodeGyp) execFileSync(process.execPath, [nodeGyp, 'rebuild'], { cwd: root, stdio: 'inherit' });
else execFileSync('npx', ['--no-install', 'node-gyp', 'rebuild'], { cwd: root, stdio: 'inherit' });
mkdirSync(PREBUILD_DIR, { recursive: true });
copyFileSync(join(root, 'build', 'Release', 'wrn_native.node'), join(PREBUILD_DIR, 'wrn_native.node'));
writeFileSync(join(PREBUILD_DIR, 'source.sha256'), `${sourceHash()}\n`);
console.log(`wrote ${join(PREBUILD_DIR, 'wrn_native.node')} (sources ${sourceHash().slice(0, 12)})`);
