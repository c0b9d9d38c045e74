'use strict';
// Where this platform's prebuilt binary lives and the hash of the sources it must have been built from; shared
// by the release script, the install script and the tests.
const { createHash } = require('node:crypto');
const { readdirSync, readFileSync } = require('node:fs');
const { join } = require('node:path');

const root = join(__dirname, '..');
const PREBUILD_DIR = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
// Every file under native/ (so a new source file is hashed without being listed here) and binding.gyp.
const SOURCES = [...readdirSync(join(root, 'native')).sort().map((file) => `native/${file}`), 'binding.gyp'];

function sourceHash() {
  const hash = createHash('sha256');
  for (const file of SOURCES) hash.update(`${file}\0`).update(readFileSync(join(root, file)));
  return hash.digest('hex');
}

module.exports = { PREBUILD_DIR, SOURCES, sourceHash };
