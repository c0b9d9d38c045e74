import { packageBuild } from '../../tsup.shared';

export default packageBuild({
  entry: ['src/index.ts', 'src/bin.ts'],
  // import.meta.url locates the embedded sample, package.json and chart.js at run time; the CJS build needs a shim.
  shims: true,
});
