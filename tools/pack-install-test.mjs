#!/usr/bin/env node
// Packs every package with `npm pack`, installs the tarballs into an empty project outside the repo and
// uses them the way a user would: ESM import, CJS require, and the `wrn` bin. Catches what in-repo tests
// cannot: a missing file in "files", a wrong "exports" path, a dependency that only resolves in the monorepo.
// Needs the packages built first (`npx nx run-many -t build`).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const repo = resolve(import.meta.dirname, '..');
const packages = ['native', 'blocks', 'backend', 'architectures', 'datasets', 'training', 'cli'];
// Packages with a Node-only `./node` entry beside their browser-safe main one.
const NODE_SUBPATHS = ['blocks', 'backend', 'datasets', 'training'];
const work = mkdtempSync(join(tmpdir(), 'wrn-pack-'));
const keep = process.argv.includes('--keep');
let failures = 0;
let passes = 0;

function run(cmd, args, cwd, env = {}) {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

function check(name, fn) {
  try {
    const detail = fn();
    passes += 1;
    console.log(`ok   ${name}${detail ? `: ${detail}` : ''}`);
  } catch (error) {
    failures += 1;
    console.log(`FAIL ${name}\n${error.stdout ?? ''}${error.stderr ?? ''}${error.stdout || error.stderr ? '' : error.message}`);
  }
}

try {
  const tarballs = [];
  for (const name of packages) {
    const out = run('npm', ['pack', '--pack-destination', work, '--json'], join(repo, 'packages', name));
    const [info] = JSON.parse(out);
    tarballs.push(join(work, info.filename));
    check(`pack @wrn/${name}`, () => {
      const files = info.files.map((f) => f.path);
      const nodeEntry = NODE_SUBPATHS.includes(name) ? ['dist/node.js', 'dist/node.cjs', 'dist/node.d.ts', 'dist/node.d.cts', 'node/package.json'] : [];
      for (const required of ['package.json', 'dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'dist/index.d.cts', ...nodeEntry]) {
        if (!files.includes(required)) throw new Error(`tarball lacks ${required}; it has ${files.join(', ')}`);
      }
      if (files.some((f) => f.startsWith('src/') || f.endsWith('.test.ts'))) throw new Error('tarball ships sources or tests');
      return `${info.filename}, ${files.length} files, ${(info.size / 1024).toFixed(0)} KiB`;
    });
  }

  const app = join(work, 'app');
  execFileSync('mkdir', ['-p', app]);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'wrn-consumer', private: true, type: 'module' }, null, 2));
  run('npm', ['install', '--no-audit', '--no-fund', ...tarballs], app);

  check('one copy of @tensorflow/tfjs-core', () => {
    const tree = JSON.parse(run('npm', ['ls', '@tensorflow/tfjs-core', '--all', '--json'], app));
    const versions = new Set();
    const walk = (deps) => {
      for (const [name, dep] of Object.entries(deps ?? {})) {
        if (name === '@tensorflow/tfjs-core' && dep.version) versions.add(dep.version);
        walk(dep.dependencies);
      }
    };
    walk(tree.dependencies);
    const dirs = run('find', ['node_modules', '-type', 'd', '-path', '*@tensorflow/tfjs-core', '-prune'], app).trim().split('\n');
    if (dirs.length !== 1) throw new Error(`found ${dirs.length} installed copies: ${dirs.join(', ')}`);
    return `${[...versions].join(', ')} at ${dirs[0]}`;
  });

  check('ESM import of @wrn/architectures builds a model', () => {
    writeFileSync(
      join(app, 'esm.mjs'),
      `import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { buildModel, countParams } from '@wrn/architectures';
await tf.setBackend('cpu');
const model = buildModel('wrn-16-4', { numClasses: 10 });
const params = countParams(model);
if (params !== 2748890) throw new Error('WRN-16-4 has ' + params + ' parameters, expected 2,748,890');
console.log(params);
`,
    );
    return `WRN-16-4 params ${run('node', ['esm.mjs'], app).trim()}`;
  });

  check('CJS require of every package', () => {
    writeFileSync(
      join(app, 'cjs.cjs'),
      `for (const name of ${JSON.stringify(packages.map((p) => `@wrn/${p}`))}) {
  const mod = require(name);
  if (Object.keys(mod).length === 0) throw new Error(name + ' exports nothing');
}
console.log('required');
`,
    );
    return run('node', ['cjs.cjs'], app).trim();
  });

  check('ESM import and CJS require of every ./node entry', () => {
    const names = NODE_SUBPATHS.map((p) => `@wrn/${p}/node`);
    writeFileSync(join(app, 'node-entries.mjs'), `for (const name of ${JSON.stringify(names)}) { const mod = await import(name); if (Object.keys(mod).length === 0) throw new Error(name + ' exports nothing'); }\nconst { fileSystemIO } = await import('@wrn/blocks/node');\nif (typeof fileSystemIO !== 'function') throw new Error('@wrn/blocks/node lacks fileSystemIO');\nconsole.log('imported');\n`);
    writeFileSync(join(app, 'node-entries.cjs'), `for (const name of ${JSON.stringify(names)}) { if (Object.keys(require(name)).length === 0) throw new Error(name + ' exports nothing'); }\nconsole.log('required');\n`);
    return `${run('node', ['node-entries.mjs'], app).trim()}, ${run('node', ['node-entries.cjs'], app).trim()}: ${names.join(', ')}`;
  });

  check("README's API example runs as written", () => {
    // The README promises these lines work in a fresh project; run them verbatim, then check what they claim.
    const readme = readFileSync(join(repo, 'README.md'), 'utf8');
    const example = /## The API in a dozen lines\s+```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    if (!example) throw new Error('README.md has no ```ts block under "## The API in a dozen lines"');
    writeFileSync(
      join(app, 'readme-api.mjs'),
      `${example}
const { countParams: countAgain } = await import('@wrn/architectures');
if (countParams(model) !== 36536884 || countAgain(again) !== 36536884) throw new Error('WRN-28-10 (100 classes) is not 36,536,884 parameters');
const core = await import('@tensorflow/tfjs-core');
const x = core.randomNormal([2, 32, 32, 3], 0, 1, 'float32', 7);
const before = model.predict(x).dataSync();
const after = again.predict(x).dataSync();
const worst = Math.max(...before.map((v, i) => Math.abs(v - after[i])));
if (!(worst < 1e-4)) throw new Error('the loaded model predicts differently: max |diff| ' + worst);
console.log('backend ' + core.getBackend() + ', loaded model matches, max |diff| ' + worst);
`,
    );
    const out = run('node', ['readme-api.mjs'], app).trim().split('\n');
    if (out[0] !== '36536884') throw new Error(`the example printed ${out[0]}, the README says 36536884`);
    return out.at(-1);
  });

  check('@wrn/native loads after a default install, and wrn train runs its convolutions', () => {
    // npm ran its install script in the consumer project: it loads the prebuilt binary or compiles one.
    const load = run('node', ['--input-type=module', '-e', "import { loadNativeConvKernels } from '@wrn/native'; const l = loadNativeConvKernels(); console.log(l.ok ? l.kernels.isa + ', ' + l.kernels.threads + ' threads' : 'NOT LOADED: ' + l.reason)"], app).trim();
    if (load.startsWith('NOT LOADED')) throw new Error(load);
    const out = run('npx', ['--no-install', 'wrn', 'train', '--model', 'wrn-10-1', '--epochs', '1', '--batch-size', '32', '--train-limit', '64', '--test-limit', '32', '--json', '--no-report', '--run-dir', join(work, 'run')], app);
    const start = JSON.parse(out.split('\n')[0]);
    if (start.backend !== 'wasm') throw new Error(`trained on ${start.backend}, expected wasm`);
    const environment = JSON.parse(readFileSync(join(work, 'run', 'environment.json'), 'utf8'));
    if (!JSON.stringify(environment).includes('convolutions native (@wrn/native')) throw new Error(`environment.json does not show native convolutions: ${JSON.stringify(environment)}`);
    return load;
  });

  check('@wrn/native loads its prebuilt binary with install scripts disabled and no compiler on PATH', () => {
    // npm 11 and pnpm 10 withhold dependencies' install scripts by default, and many machines have no compiler:
    // the tarball's prebuilt binary must serve both. PATH holds only node, npm and sh, so nothing could compile.
    const bare = join(work, 'bare');
    const bin = join(work, 'bare-bin');
    execFileSync('mkdir', ['-p', bare, bin]);
    for (const tool of ['node', 'npm', 'npx', 'sh']) symlinkSync(execFileSync('which', [tool], { encoding: 'utf8' }).trim(), join(bin, tool));
    const env = { PATH: bin };
    for (const compiler of ['cc', 'c++', 'g++', 'make']) {
      const found = spawnSync('sh', ['-c', `command -v ${compiler}`], { env, encoding: 'utf8' });
      if (found.status === 0) throw new Error(`${compiler} is on the bare PATH: ${found.stdout}`);
    }
    writeFileSync(join(bare, 'package.json'), JSON.stringify({ name: 'wrn-bare-consumer', private: true, type: 'module' }, null, 2));
    run('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund', ...tarballs], bare, env);
    if (existsSync(join(bare, 'node_modules', '@wrn', 'native', 'build'))) throw new Error('something compiled @wrn/native despite --ignore-scripts');
    const load = run('node', ['--input-type=module', '-e', "import { loadNativeConvKernels } from '@wrn/native'; const l = loadNativeConvKernels(); console.log(l.ok ? l.kernels.origin + ', ' + l.kernels.isa + ', ' + l.kernels.threads + ' threads' : 'NOT LOADED: ' + l.reason)"], bare, env).trim();
    if (!load.startsWith('prebuilt, ')) throw new Error(`expected the prebuilt binary, got: ${load}`);
    const runDir = join(work, 'bare-run');
    run('npx', ['--no-install', 'wrn', 'train', '--model', 'wrn-10-1', '--epochs', '1', '--batch-size', '32', '--train-limit', '64', '--test-limit', '32', '--json', '--no-report', '--run-dir', runDir], bare, env);
    const environment = JSON.parse(readFileSync(join(runDir, 'environment.json'), 'utf8'));
    if (!JSON.stringify(environment).includes('convolutions native (@wrn/native')) throw new Error(`environment.json does not show native convolutions: ${JSON.stringify(environment)}`);
    return load;
  });

  check('npx wrn --help', () => {
    const help = run('npx', ['--no-install', 'wrn', '--help'], app);
    if (!/Usage: wrn/.test(help) || !/train/.test(help)) throw new Error(`unexpected help:\n${help}`);
    return help.split('\n')[0];
  });
  check('npx wrn --version', () => run('npx', ['--no-install', 'wrn', '--version'], app).trim());
  check('npx wrn info wrn-28-10 --json', () => {
    const info = JSON.parse(run('npx', ['--no-install', 'wrn', 'info', 'wrn-28-10', '--json'], app));
    if (info.params !== 36479194) throw new Error(`params ${info.params}, expected 36,479,194`);
    return `params ${info.params}, flops ${info.flops}`;
  });
} finally {
  if (keep) console.log(`kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}

console.log(`pack-install: ${passes} passed, ${failures} failed`);
process.exit(failures === 0 ? 0 : 1);
