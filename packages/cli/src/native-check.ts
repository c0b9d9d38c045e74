import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/**
 * The shared libraries that libtensorflow 2.9 (the one @tensorflow/tfjs-node-gpu 4.x downloads) opens at run time:
 * CUDA 11.2 and cuDNN 8.1. Missing any of them, TensorFlow silently falls back to the CPU or fails to load.
 */
export const CUDA_LIBRARIES: readonly { file: string; what: string }[] = [
  { file: 'libcudart.so.11.0', what: 'CUDA 11 runtime' },
  { file: 'libcudnn.so.8', what: 'cuDNN 8' },
  { file: 'libcublas.so.11', what: 'cuBLAS (CUDA 11)' },
  { file: 'libcublasLt.so.11', what: 'cuBLASLt (CUDA 11)' },
  { file: 'libcufft.so.10', what: 'cuFFT (CUDA 11)' },
  { file: 'libcurand.so.10', what: 'cuRAND (CUDA 11)' },
  { file: 'libcusolver.so.11', what: 'cuSOLVER (CUDA 11)' },
  { file: 'libcusparse.so.11', what: 'cuSPARSE (CUDA 11)' },
];

/** Variables the tfjs-node(-gpu) install script reads to download from a mirror instead of storage.googleapis.com. */
export const MIRROR_VARIABLES: readonly { name: string; what: string }[] = [
  { name: 'TFJS_NODE_CDN_STORAGE', what: 'base URL replacing https://storage.googleapis.com/ for libtensorflow' },
  { name: 'TFJS_NODE_BASE_URI', what: 'full prefix of the libtensorflow archive URL (overrides the CDN base)' },
  { name: 'CDN_STORAGE', what: 'older name of TFJS_NODE_CDN_STORAGE' },
  { name: 'npm_config_TFJS_NODE_CDN_STORAGE', what: 'the same, set through .npmrc (tfjs_node_cdn_storage=...)' },
  { name: 'npm_config_tfjs_binding_binary_host_mirror', what: "node-pre-gyp's mirror for the prebuilt addon" },
  { name: 'HTTPS_PROXY', what: 'proxy the download goes through' },
];

export interface LibraryProbe {
  file: string;
  what: string;
  /** Where it was found, if anywhere. */
  path?: string;
}

export interface GpuProbe {
  visible: boolean;
  /** How we know: the nvidia-smi query or /proc/driver/nvidia. */
  source?: string;
  devices: string[];
  driver?: string;
  /** Why we could not see one. */
  reason?: string;
}

export interface NativePackageProbe {
  name: string;
  installed: boolean;
  version?: string;
  /** The compiled addon and libtensorflow that its install script downloads: absent after a failed install. */
  binding?: string;
  libtensorflow?: string;
}

/** Directories the dynamic loader would search, in the order a user can act on them. */
export function librarySearchDirs(env: NodeJS.ProcessEnv): string[] {
  const dirs: string[] = [];
  for (const entry of (env.LD_LIBRARY_PATH ?? '').split(':')) if (entry) dirs.push(entry);
  let cudaDirs: string[] = [];
  try {
    cudaDirs = readdirSync('/usr/local')
      .filter((name) => name.startsWith('cuda'))
      .flatMap((name) => [join('/usr/local', name, 'lib64'), join('/usr/local', name, 'targets/x86_64-linux/lib')]);
  } catch {
    // no /usr/local: nothing to add
  }
  dirs.push(...cudaDirs, '/usr/lib/x86_64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib/x86_64-linux-gnu');
  return [...new Set(dirs)];
}

/** `ldconfig -p` as a map from library file name to path; empty where ldconfig is not available. */
function ldconfigCache(): Map<string, string> {
  const found = new Map<string, string>();
  for (const command of ['ldconfig', '/sbin/ldconfig', '/usr/sbin/ldconfig']) {
    const result = spawnSync(command, ['-p'], { encoding: 'utf8', timeout: 5000 });
    if (result.status !== 0 || !result.stdout) continue;
    for (const line of result.stdout.split('\n')) {
      const match = /^\s*(\S+)\s+\(.*\)\s+=>\s+(\S+)/.exec(line);
      if (match?.[1] && match[2] && !found.has(match[1])) found.set(match[1], match[2]);
    }
    break;
  }
  return found;
}

export function probeCudaLibraries(env: NodeJS.ProcessEnv): LibraryProbe[] {
  const cache = ldconfigCache();
  const dirs = librarySearchDirs(env);
  return CUDA_LIBRARIES.map(({ file, what }) => {
    const inDir = dirs.map((dir) => join(dir, file)).find((path) => existsSync(path));
    const path = inDir ?? cache.get(file);
    return path ? { file, what, path } : { file, what };
  });
}

export function probeGpu(): GpuProbe {
  const smi = spawnSync('nvidia-smi', ['--query-gpu=name,driver_version,memory.total', '--format=csv,noheader'], {
    encoding: 'utf8',
    timeout: 15000,
  });
  if (smi.status === 0 && smi.stdout.trim()) {
    const rows = smi.stdout.trim().split('\n');
    return {
      visible: true,
      source: 'nvidia-smi',
      devices: rows.map((row) => row.split(',')[0]?.trim() ?? row),
      driver: rows[0]?.split(',')[1]?.trim(),
    };
  }
  const procDir = '/proc/driver/nvidia/gpus';
  if (existsSync(procDir)) {
    const devices = readdirSync(procDir).map((bus) => {
      const info = join(procDir, bus, 'information');
      const model = existsSync(info) ? /Model:\s*(.+)/.exec(readFileSync(info, 'utf8'))?.[1]?.trim() : undefined;
      return model ?? bus;
    });
    if (devices.length > 0) {
      const versionFile = '/proc/driver/nvidia/version';
      const driver = existsSync(versionFile)
        ? /Kernel Module\s+(\S+)/.exec(readFileSync(versionFile, 'utf8'))?.[1]
        : undefined;
      return { visible: true, source: procDir, devices, driver };
    }
  }
  const reason =
    smi.error && (smi.error as NodeJS.ErrnoException).code === 'ENOENT'
      ? 'nvidia-smi is not installed and /proc/driver/nvidia lists no GPU (no NVIDIA driver loaded)'
      : `nvidia-smi failed (${(smi.stderr || smi.stdout || String(smi.error ?? '')).trim().split('\n')[0] || `exit ${smi.status}`})`;
  return { visible: false, devices: [], reason };
}

export function probeNativePackage(name: '@tensorflow/tfjs-node-gpu' | '@tensorflow/tfjs-node'): NativePackageProbe {
  const require = createRequire(import.meta.url);
  let packageJson: string;
  try {
    packageJson = require.resolve(`${name}/package.json`);
  } catch {
    return { name, installed: false };
  }
  const root = dirname(packageJson);
  const version = (JSON.parse(readFileSync(packageJson, 'utf8')) as { version?: string }).version;
  const findFile = (dir: string, pattern: RegExp, depth = 3): string | undefined => {
    if (depth < 0 || !existsSync(dir)) return undefined;
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isFile() && pattern.test(entry.name)) return path;
      if (entry.isDirectory()) {
        const inner = findFile(path, pattern, depth - 1);
        if (inner) return inner;
      }
    }
    return undefined;
  };
  return {
    name,
    installed: true,
    version,
    binding: findFile(join(root, 'lib'), /^tfjs_binding\.node$/),
    libtensorflow: findFile(join(root, 'deps'), /^libtensorflow\.so/),
  };
}
