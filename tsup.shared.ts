import { defineConfig, type Options } from 'tsup';

// `WRN_QUICK_BUILD=1` (what `npm run quickstart` sets) builds only what running the CLI in this checkout needs:
// ESM, no CJS and no type declarations, which are most of a build's time (about 2 of the 7 minutes a fresh
// clone's quickstart took). nx.json keys the build cache on the variable, so a quick build is never taken for a
// full one.
const quick = process.env.WRN_QUICK_BUILD === '1';

// One build for every package: ESM + CJS, each with its own .d.ts, for the Node version engines names.
export function packageBuild(overrides: Options = {}) {
  return defineConfig({
    entry: ['src/index.ts'],
    format: quick ? ['esm'] : ['esm', 'cjs'],
    dts: !quick,
    sourcemap: true,
    clean: true,
    target: 'node20',
    ...overrides,
  });
}
