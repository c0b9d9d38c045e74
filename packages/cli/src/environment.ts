import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, totalmem } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { adapterLabel, type BackendSelection } from '@wrn/backend';
import type { RunEnvironmentInput } from '@wrn/training/node';
import { cliVersion } from './context.js';

function packageVersion(name: string): string | undefined {
  const require = createRequire(import.meta.url);
  try {
    return (JSON.parse(readFileSync(require.resolve(`${name}/package.json`), 'utf8')) as { version?: string }).version;
  } catch {
    // Packages whose exports map hides package.json: walk up from the entry point instead.
    try {
      let dir = require.resolve(name);
      for (let i = 0; i < 4; i++) {
        dir = dir.slice(0, dir.lastIndexOf('/'));
        try {
          const pkg = JSON.parse(readFileSync(`${dir}/package.json`, 'utf8')) as { name?: string; version?: string };
          if (pkg.name === name) return pkg.version;
        } catch {
          // keep walking
        }
      }
    } catch {
      return undefined;
    }
    return undefined;
  }
}

/** What a run ran on: written as environment.json into the run directory and shown by `wrn report`. */
export function describeEnvironment(backend: BackendSelection): RunEnvironmentInput {
  const cpuList = cpus();
  return {
    backend: backend.name,
    backendReason: backend.reason,
    ...(backend.wasmThreads !== undefined ? { wasmThreads: backend.wasmThreads } : {}),
    ...(backend.webgpuAdapter ? { webgpuAdapter: `${adapterLabel(backend.webgpuAdapter)}, maxBufferSize ${backend.webgpuAdapter.maxBufferSize}` } : {}),
    ...(backend.nativePackage ? { nativePackage: `${backend.nativePackage} ${packageVersion(backend.nativePackage) ?? ''}`.trim() } : {}),
    '@tensorflow/tfjs-core': tf.version_core,
    '@wrn/cli': cliVersion(),
    '@wrn/architectures': packageVersion('@wrn/architectures'),
    '@wrn/training': packageVersion('@wrn/training'),
    '@wrn/backend': packageVersion('@wrn/backend'),
    '@wrn/datasets': packageVersion('@wrn/datasets'),
    '@wrn/blocks': packageVersion('@wrn/blocks'),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    cpu: `${cpuList.length} x ${cpuList[0]?.model ?? 'unknown'}`,
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    command: ['wrn', ...process.argv.slice(2)].join(' '),
    startedAt: new Date().toISOString(),
  };
}
