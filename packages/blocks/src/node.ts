// @wrn/blocks/node: what needs Node's file system. The package's main entry stays free of Node built-ins so
// that it bundles for browsers as-is; in a browser, save to 'indexeddb://name' or 'downloads://name' instead.
export { fileSystemIO, MODEL_JSON_FILE, WEIGHTS_FILE } from './io.js';
export { writeFileAtomic, writeFileAtomicSync, stagingPath } from './fs-atomic.js';
