// The libraries' main entries bundle for browsers as a new user would bundle them: esbuild --platform=browser and a
// Vite library build, neither configured (no stubs, no aliases, no externals). Each bundles the built package
// (dist/, through its exports map) with everything it imports, TF.js included, and fails on any Node built-in.
// The ./node entries are the control: both bundlers must flag them, or the checks could not fail.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as esbuild from 'esbuild';
import { build as viteBuild, type Rollup } from 'vite';
import { afterAll, describe, expect, it } from 'vitest';

const BROWSER_ENTRIES = ['@wrn/blocks', '@wrn/architectures', '@wrn/backend', '@wrn/training', '@wrn/datasets'] as const;
const NODE_ENTRIES = ['@wrn/blocks/node', '@wrn/backend/node', '@wrn/training/node', '@wrn/datasets/node'] as const;

// Inside the app's folder, so that bare imports resolve through the workspace's node_modules like a user's app.
const scratch = mkdtempSync(join(import.meta.dirname, '..', '.bundle-check-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function entryFile(pkg: string): string {
  const dir = join(scratch, pkg.replaceAll('/', '+'));
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'entry.js');
  // Every export, so that nothing is tree-shaken away before the bundler resolves it.
  writeFileSync(file, `import * as lib from '${pkg}';\nexport default lib;\n`);
  return file;
}

async function esbuildForBrowser(pkg: string): Promise<{ problems: string[]; bytes: Uint8Array | null }> {
  try {
    const result = await esbuild.build({
      entryPoints: [entryFile(pkg)],
      bundle: true,
      platform: 'browser',
      format: 'esm',
      minify: true,
      write: false,
      metafile: true,
      logLevel: 'silent',
    });
    const nodeInputs = Object.keys(result.metafile.inputs).filter((input) => /(^|\/)node:/.test(input));
    return { problems: [...result.warnings.map((w) => w.text), ...nodeInputs], bytes: result.outputFiles[0]!.contents };
  } catch (error) {
    return { problems: ((error as esbuild.BuildFailure).errors ?? [error]).map((e) => e.text ?? String(e)), bytes: null };
  }
}

/** Warnings of a Vite library build that mean a Node built-in was swapped for an empty module. */
async function viteForBrowser(pkg: string): Promise<{ problems: string[]; bytes: number }> {
  const messages: string[] = [];
  const log = (message: string) => void messages.push(message);
  let output: Rollup.RollupOutput[] | Rollup.RollupOutput;
  // Vitest sets NODE_ENV=test, under which Vite skips the externalized-module warnings a user's build prints.
  const nodeEnv = process.env.NODE_ENV;
  process.env.NODE_ENV = 'production';
  try {
    output = (await viteBuild({
      configFile: false,
      root: scratch,
      logLevel: 'warn',
      build: {
        lib: { entry: entryFile(pkg), formats: ['es'], fileName: 'bundle' },
        write: false,
        rollupOptions: { onwarn: (warning) => log(warning.message) },
      },
      customLogger: { info: () => {}, warn: log, warnOnce: log, error: log, clearScreen: () => {}, hasErrorLogged: () => false, hasWarned: false },
    })) as Rollup.RollupOutput[] | Rollup.RollupOutput;
  } catch (error) {
    return { problems: [String((error as Error).message)], bytes: 0 };
  } finally {
    process.env.NODE_ENV = nodeEnv;
  }
  const chunks = (Array.isArray(output) ? output : [output]).flatMap((o) => o.output);
  const bytes = chunks.reduce((n, c) => n + (c.type === 'chunk' ? c.code.length : 0), 0);
  // tfjs-core's own "browser" field maps a few modules to false, which Vite also turns into __vite-browser-external;
  // what it warns about is a Node built-in that nothing mapped.
  return { problems: messages.filter((m) => /externalized for browser compatibility/.test(m)), bytes };
}

describe.each(BROWSER_ENTRIES)('%s bundles for the browser', (pkg) => {
  it('with esbuild --bundle --platform=browser', async () => {
    const { problems, bytes } = await esbuildForBrowser(pkg);
    expect(problems).toEqual([]);
    console.log(`${pkg}: esbuild browser bundle ${(bytes!.length / 1024).toFixed(0)} KiB minified, ${(gzipSync(bytes!).length / 1024).toFixed(0)} KiB gzipped (TF.js included)`);
  });

  it('with a Vite library build', async () => {
    const { problems, bytes } = await viteForBrowser(pkg);
    expect(problems).toEqual([]);
    expect(bytes).toBeGreaterThan(10_000);
  });
});

describe.each(NODE_ENTRIES)('%s (Node only) is flagged', (pkg) => {
  it('by esbuild', async () => {
    const { problems } = await esbuildForBrowser(pkg);
    expect(problems.join('\n')).toMatch(/Could not resolve "(node:)?(fs|crypto|path|os)/);
  });

  it('by Vite', async () => {
    const { problems } = await viteForBrowser(pkg);
    expect(problems.join('\n')).toMatch(/Module "(node:)?(fs|crypto|path|os)[a-z/]*" has been externalized for browser compatibility/);
  });
});
