import { defineConfig, mergeConfig } from 'vitest/config';
import shared from '../../vitest.shared';

export default mergeConfig(
  shared,
  defineConfig({
    test: {
      // The tests run the built CLI (dist/bin.js) as a child process: build it first if the sources are newer.
      globalSetup: ['test/global-setup.ts'],
    },
  }),
);
