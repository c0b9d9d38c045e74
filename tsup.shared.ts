import { defineConfig, type Options } from 'tsup';

// One build for every package: ESM + CJS, each with its own .d.ts, for the Node version engines names.
export function packageBuild(overrides: Options = {}) {
  return defineConfig({
    entry: ['src/index.ts'],
    format: ['esm', 'cjs'],
    dts: true,
    sourcemap: true,
    clean: true,
    target: 'node20',
    ...overrides,
  });
}
