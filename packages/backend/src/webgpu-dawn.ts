// Node only: Dawn's `webgpu` npm package as navigator.gpu. @wrn/backend/node hands it to ./webgpu (a DawnProvider).
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { describeAdapter, type GpuLike, type WebGpuAdapterList, type WebGpuAdapterReport } from './webgpu';

const DAWN_SOURCE = "Dawn (the 'webgpu' npm package)";

interface DawnPackage {
  create(flags: string[]): GpuLike;
  globals: Record<string, unknown>;
}

let installed: GpuLike | null = null;

/**
 * Loads Dawn, puts its WebGPU globals (GPUBufferUsage, GPUMapMode, ...) on globalThis and its GPU object at
 * navigator.gpu, where tfjs-backend-webgpu looks for them when it is imported. Once per process.
 * @public (called through the DawnProvider that @wrn/backend/node hands to webgpu.ts, which knip cannot follow)
 */
export async function installDawnGpu(load: (s: string) => Promise<unknown>): Promise<GpuLike> {
  if (installed != null) return installed;
  let dawn: DawnPackage;
  try {
    dawn = (await load('webgpu')) as DawnPackage;
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new Error(`cannot load Dawn's Node binding (the 'webgpu' package): ${message?.replace(/ imported from .*$/, '')}`);
  }
  if (typeof dawn.create !== 'function') throw new Error("the 'webgpu' package has no create(): install webgpu@0.6.2");
  const gpu = dawn.create([]);
  for (const [name, value] of Object.entries(dawn.globals)) {
    if (!(name in globalThis)) Object.defineProperty(globalThis, name, { value, configurable: true, writable: true });
  }
  const holder = globalThis as unknown as { navigator?: object };
  // Node 21+ has a navigator of its own (without gpu); Node 20 has none.
  if (holder.navigator == null) Object.defineProperty(globalThis, 'navigator', { value: {}, configurable: true, writable: true });
  Object.defineProperty(holder.navigator!, 'gpu', { value: gpu, configurable: true });
  installed = gpu;
  return gpu;
}

// Runs in a child Node process: asks Dawn for each kind of adapter and prints them as JSON on stdout.
const PROBE_SCRIPT = `
const { create } = await import(process.argv[1]);
const gpu = create([]);
const out = [];
for (const [request, options] of [['high-performance', { powerPreference: 'high-performance' }], ['low-power', { powerPreference: 'low-power' }], ['fallback', { forceFallbackAdapter: true }]]) {
  const a = await gpu.requestAdapter(options).catch(() => null);
  if (a == null) continue;
  const i = a.info ?? {};
  out.push({ request, info: { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description, isFallbackAdapter: i.isFallbackAdapter ?? a.isFallbackAdapter },
    limits: { maxBufferSize: Number(a.limits.maxBufferSize), maxStorageBufferBindingSize: Number(a.limits.maxStorageBufferBindingSize) } });
}
process.stdout.write(JSON.stringify(out));
process.exit(0);
`;


let probed: Promise<WebGpuAdapterList> | null = null;

/**
 * Dawn's adapters, asked in a child process: Dawn's Vulkan start-up writes warnings straight to stderr (lavapipe
 * rejected, XDG_RUNTIME_DIR unset) and `--backend auto` should not print them on every run of a machine without a
 * GPU. They come back as `driverMessages`. Cached per process.
 */
export function probeDawnAdapters(): Promise<WebGpuAdapterList> {
  probed ??= probeOnce();
  return probed;
}

async function probeOnce(): Promise<WebGpuAdapterList> {
  let entry: string;
  try {
    // From this module's location, so the child loads the same `webgpu` package an import here would.
    entry = pathToFileURL(createRequire(import.meta.url).resolve('webgpu')).href;
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
    return { source: DAWN_SOURCE, adapters: [], error: `cannot load Dawn's Node binding (the 'webgpu' package): ${message}` };
  }
  return new Promise((resolve) => {
    execFile(process.execPath, ['--input-type=module', '-e', PROBE_SCRIPT, entry], { timeout: 60_000, env: process.env }, (error, stdout, stderr) => {
      const driverMessages = [...new Set(stderr.split('\n').map((line) => line.trimEnd()).filter((line) => line.trim() !== ''))];
      const messages = driverMessages.length > 0 ? { driverMessages } : {};
      if (error != null) {
        const why = error.killed ? 'timed out after 60 s' : (driverMessages.at(-1) ?? error.message.split('\n')[0]);
        resolve({ source: DAWN_SOURCE, adapters: [], error: `Dawn's adapter probe failed: ${why}`, ...messages });
        return;
      }
      try {
        const raw = JSON.parse(stdout) as { request: WebGpuAdapterReport['request']; info: object; limits: WebGpuAdapterReport }[];
        const seen = new Set<string>();
        const adapters = raw
          .map((a) => describeAdapter({ info: a.info, limits: a.limits }, a.request))
          .filter((a) => {
            const key = JSON.stringify({ ...a, request: '' });
            return seen.has(key) ? false : (seen.add(key), true);
          });
        resolve({
          source: DAWN_SOURCE,
          adapters,
          ...(adapters.length === 0 ? { error: 'Dawn found no adapter: no GPU with a Vulkan, Metal or D3D12 driver it accepts' } : {}),
          ...messages,
        });
      } catch {
        resolve({ source: DAWN_SOURCE, adapters: [], error: `Dawn's adapter probe printed no JSON: ${stdout.slice(0, 200)}`, ...messages });
      }
    });
  });
}
