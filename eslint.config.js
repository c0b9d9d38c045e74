import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import nx from '@nx/eslint-plugin';
import globals from 'globals';

// The layering is the architecture: blocks <- architectures <- training <- cli; datasets stands alone and only the
// cli composes it; backend (backend selection, the wasm training kernels, webgpu) builds on blocks only (it registers
// grouped-conv methods there) and is used by training, the cli and the web app; native (compiled conv kernels)
// stands alone and only backend loads it. `enforce-module-boundaries` also forbids deep imports into another
// package's src/ (relative or by path), so a package's public API is its src/index.ts.
export default tseslint.config(
  { ignores: ['**/.scratch/**', '**/dist/**', '**/node_modules/**', '**/.nx/**', 'runs/**', '**/*.d.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts', '**/*.js', '**/*.mjs'],
    languageOptions: { globals: { ...globals.node } },
    plugins: { '@nx': nx },
    rules: {
      '@nx/enforce-module-boundaries': [
        'error',
        {
          enforceBuildableLibDependency: true,
          allow: [],
          depConstraints: [
            { sourceTag: 'scope:blocks', onlyDependOnLibsWithTags: [] },
            { sourceTag: 'scope:architectures', onlyDependOnLibsWithTags: ['scope:blocks'] },
            { sourceTag: 'scope:datasets', onlyDependOnLibsWithTags: [] },
            { sourceTag: 'scope:native', onlyDependOnLibsWithTags: [] },
            { sourceTag: 'scope:backend', onlyDependOnLibsWithTags: ['scope:blocks', 'scope:native'] },
            { sourceTag: 'scope:training', onlyDependOnLibsWithTags: ['scope:architectures', 'scope:blocks', 'scope:backend'] },
            {
              sourceTag: 'scope:cli',
              onlyDependOnLibsWithTags: ['scope:backend', 'scope:training', 'scope:architectures', 'scope:blocks', 'scope:datasets'],
            },
            { sourceTag: 'scope:tools', onlyDependOnLibsWithTags: ['*'] },
            {
              sourceTag: 'scope:web',
              onlyDependOnLibsWithTags: ['scope:backend', 'scope:training', 'scope:architectures', 'scope:blocks', 'scope:datasets'],
            },
          ],
        },
      ],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
  {
    // A package's build and test configs extend the workspace's shared ones (tsup.shared.ts, vitest.shared.ts).
    files: ['**/tsup.config.ts', '**/vitest.config.ts'],
    rules: { '@nx/enforce-module-boundaries': 'off' },
  },
  {
    // Install and release scripts npm runs directly (CommonJS, so they load without a build or a loader).
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { ...globals.node } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    files: ['**/*.test.ts', '**/test/**/*.ts'],
    rules: { '@typescript-eslint/no-non-null-assertion': 'off' },
  },
);
