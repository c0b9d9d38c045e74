import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const pkg = (name: string, entry = 'index') => fileURLToPath(new URL(`./packages/${name}/src/${entry}.ts`, import.meta.url));

// Tests run against the sources of sibling packages, so a test run needs no prior build and never
// races a concurrent `tsup --clean`. The built, packed packages are exercised by tools/pack-install-test.
export default defineConfig({
  resolve: {
    alias: {
      // The ./node subpath entries first: an alias also matches its key followed by '/'.
      '@wrn/blocks/node': pkg('blocks', 'node'),
      '@wrn/datasets/node': pkg('datasets', 'node'),
      '@wrn/training/node': pkg('training', 'node'),
      '@wrn/backend/node': pkg('backend', 'node'),
      '@wrn/blocks': pkg('blocks'),
      '@wrn/architectures': pkg('architectures'),
      '@wrn/datasets': pkg('datasets'),
      '@wrn/training': pkg('training'),
      '@wrn/backend': pkg('backend'),
      '@wrn/native': pkg('native'),
    },
  },
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    pool: 'forks',
    // Provides `sharedDataDir` (see vitest.shared-data.ts): tests that read ../shared/data skip when it is absent.
    globalSetup: [fileURLToPath(new URL('./vitest.shared-data.ts', import.meta.url))],
  },
});
