import { cpus, totalmem } from 'node:os';
import type { Command } from 'commander';
import * as tf from '@tensorflow/tfjs-core';
import { adapterLabel, BackendUnavailableError, listWebGpuAdapters, selectBackend, type BackendSelection, type WebGpuAdapterList } from '@wrn/backend/node';
import { cliVersion, type CommandContext } from '../context.js';
import { errorMessage } from '../errors.js';
import { examples } from '../flags.js';
import { writeLine } from '../io.js';
import {
  CUDA_LIBRARIES,
  MIRROR_VARIABLES,
  probeCudaLibraries,
  probeGpu,
  probeNativePackage,
  type GpuProbe,
  type LibraryProbe,
  type NativePackageProbe,
} from '../native-check.js';

const BACKEND_CHOICES = ['tensorflow', 'webgpu', 'wasm', 'cpu'] as const;

export interface BackendProbe {
  choice: string;
  loads: boolean;
  /** The backend it loaded as, and why (from selectBackend). */
  name?: string;
  detail?: string;
  error?: string;
  /** For wasm: whether its convolutions run on @wrn/native's compiled kernels, or why not. */
  nativeConv?: BackendSelection['nativeConv'];
  /** For auto: the backends it tried before the one it picked, and why each was skipped. */
  skipped?: string[];
}

export interface DoctorReport {
  node: string;
  platform: string;
  cpus: number;
  memoryGiB: number;
  cli: string;
  backends: BackendProbe[];
  auto: BackendProbe;
  nativePackages: NativePackageProbe[];
  cudaLibraries: LibraryProbe[];
  gpu: GpuProbe;
  /** WebGPU adapters (Dawn's in Node), each with vendor, architecture, driver, software or hardware and limits. */
  webgpu: WebGpuAdapterList;
  mirrors: { name: string; value: string | undefined; what: string }[];
  advice: string[];
}

async function probeBackend(choice: 'auto' | (typeof BACKEND_CHOICES)[number]): Promise<BackendProbe> {
  try {
    const selected = await selectBackend(choice);
    const skipped = selected.tried.filter((t) => !t.ok).map((t) => `${t.name}: ${t.error ?? ''}`);
    return {
      choice,
      loads: true,
      name: selected.name,
      detail: selected.reason,
      ...(selected.nativeConv ? { nativeConv: selected.nativeConv } : {}),
      ...(choice === 'auto' ? { skipped } : {}),
    };
  } catch (error) {
    // The error's install advice is folded into doctor's own advice; here each attempt and why it failed.
    if (error instanceof BackendUnavailableError) {
      return { choice, loads: false, error: error.tried.map((t) => `${t.name}: ${t.error ?? 'ok'}`).join('; ') };
    }
    return { choice, loads: false, error: errorMessage(error) };
  }
}

/** Every check of `wrn doctor`, as data: what loads here, and for tfjs-node-gpu what is missing and where we looked. */
export async function runDoctor(env: NodeJS.ProcessEnv): Promise<DoctorReport> {
  // Dawn is asked in a child process first: its driver messages are shown below instead of printed, and the
  // webgpu backend is set up in this process only where there is an adapter to set it up on.
  const webgpu = await listWebGpuAdapters();
  const backends: BackendProbe[] = [];
  for (const choice of BACKEND_CHOICES) {
    if (choice === 'webgpu' && webgpu.adapters.length === 0) {
      backends.push({ choice, loads: false, error: `webgpu: ${webgpu.error ?? 'no adapter'}` });
      continue;
    }
    backends.push(await probeBackend(choice));
  }
  // Last, so the process ends on the backend `--backend auto` would train with.
  const auto = await probeBackend('auto');
  const nativePackages = [probeNativePackage('@tensorflow/tfjs-node-gpu'), probeNativePackage('@tensorflow/tfjs-node')];
  const cudaLibraries = probeCudaLibraries(env);
  const gpu = probeGpu();
  const mirrors = MIRROR_VARIABLES.map(({ name, what }) => ({ name, value: env[name], what }));

  const advice: string[] = [];
  const [gpuPackage, cpuPackage] = nativePackages as [NativePackageProbe, NativePackageProbe];
  if (!gpuPackage.installed && !cpuPackage.installed) {
    advice.push(
      'No native TensorFlow binding is installed, so training runs on wasm or cpu. For a GPU: ' +
        '`npm i @tensorflow/tfjs-node-gpu` (Linux x64, NVIDIA driver >= 450, CUDA 11.2, cuDNN 8.1); for native CPU ' +
        'speed: `npm i @tensorflow/tfjs-node`. Their install script downloads libtensorflow from storage.googleapis.com: ' +
        'behind a firewall, point TFJS_NODE_CDN_STORAGE (or TFJS_NODE_BASE_URI) at a mirror first.',
    );
  }
  for (const probe of nativePackages) {
    if (probe.installed && (!probe.binding || !probe.libtensorflow)) {
      const missing = [!probe.binding && 'its compiled addon (tfjs_binding.node)', !probe.libtensorflow && 'libtensorflow (deps/lib)']
        .filter(Boolean)
        .join(' and ');
      advice.push(
        `${probe.name} ${probe.version ?? ''} is installed but lacks ${missing}: its install script could not download ` +
          `them. With network (or TFJS_NODE_CDN_STORAGE set to a mirror) run \`npm rebuild ${probe.name}\`.`,
      );
    }
  }
  const missingLibraries = cudaLibraries.filter((library) => !library.path);
  if (missingLibraries.length > 0 && (gpuPackage.installed || gpu.visible)) {
    advice.push(
      `tfjs-node-gpu needs CUDA 11.2 and cuDNN 8.1; not found: ${missingLibraries.map((l) => l.file).join(', ')}. ` +
        'Install the CUDA 11.x toolkit and cuDNN 8 for CUDA 11 (CUDA 12 libraries have other file names and are not used), ' +
        'then add their folder to the loader path, e.g. `export LD_LIBRARY_PATH=/usr/local/cuda-11.2/lib64:$LD_LIBRARY_PATH`.',
    );
  }
  if (!gpu.visible && gpuPackage.installed) {
    advice.push(
      `No GPU is visible (${gpu.reason ?? 'unknown reason'}): install the NVIDIA driver (>= 450.80); in a container, ` +
        'start it with the GPU passed through (docker run --gpus all).',
    );
  }
  const wasm = backends.find((b) => b.choice === 'wasm');
  if (wasm?.nativeConv && !wasm.nativeConv.used && !wasm.nativeConv.why.startsWith('off')) {
    advice.push(
      `The wasm backend's convolutions run on XNNPACK, about 3x slower than @wrn/native's compiled ones: ${wasm.nativeConv.why}. ` +
        '@wrn/native compiles when npm installs it (python3, make and a C++17 compiler; npm 11 may ask you to allow its ' +
        'install script): `npm rebuild @wrn/native`.',
    );
  }
  if (webgpu.adapters.length === 0) {
    advice.push(
      `No WebGPU adapter (${webgpu.error ?? 'none found'}). For GPU training without CUDA: a GPU driver with Vulkan ` +
        "(Linux: NVIDIA's driver, or mesa-vulkan-drivers for AMD/Intel), Metal (macOS) or D3D12 (Windows), and " +
        `\`npm i @tensorflow/tfjs-backend-webgpu@${tf.version_core} webgpu@0.6.2\` where @wrn/cli's optional dependencies were not installed. ` +
        'To test it on the CPU: VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json (Debian\'s chromium ships SwiftShader).',
    );
  } else if (webgpu.adapters.every((a) => a.software)) {
    advice.push(
      `WebGPU has only software adapters here (${webgpu.adapters.map(adapterLabel).join('; ')}): they run on the CPU, slower than ` +
        'wasm, so auto does not use them; --backend webgpu does. A GPU with its Vulkan, Metal or D3D12 driver makes webgpu the fast path.',
    );
  }
  if (!auto.loads) advice.push(`No backend loads at all: ${auto.error ?? ''}. Reinstall @wrn/cli's dependencies.`);

  return {
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    cpus: cpus().length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    cli: cliVersion(),
    backends,
    auto,
    nativePackages,
    cudaLibraries,
    gpu,
    webgpu,
    mirrors,
    advice,
  };
}

const mark = (ok: boolean) => (ok ? '[ok]' : '[--]');

const formatBytes = (bytes: number) => (bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(bytes % 2 ** 30 ? 1 : 0)} GiB` : `${Math.round(bytes / 2 ** 20)} MiB`);

export function formatDoctorReport(report: DoctorReport): string {
  const lines: string[] = [];
  lines.push(`@wrn/cli ${report.cli} on Node ${report.node}, ${report.platform}, ${report.cpus} CPUs, ${report.memoryGiB} GiB`);
  lines.push('', 'Backends (--backend)');
  for (const b of report.backends) {
    lines.push(`  ${mark(b.loads)} ${b.choice.padEnd(10)} ${b.loads ? `loads as ${b.name}: ${b.detail ?? ''}` : `does not load: ${b.error ?? ''}`}`);
  }
  lines.push(`  auto picks: ${report.auto.loads ? `${report.auto.name} (${report.auto.detail ?? ''})` : `nothing: ${report.auto.error ?? ''}`}`);
  for (const skipped of report.auto.skipped ?? []) lines.push(`    skipped ${skipped}`);
  lines.push('', `WebGPU adapters (${report.webgpu.source})`);
  if (report.webgpu.adapters.length === 0) lines.push(`  [--] none: ${report.webgpu.error ?? ''}`);
  for (const a of report.webgpu.adapters) {
    lines.push(
      `  ${mark(!a.software)} ${a.software ? 'software' : 'hardware'}  vendor ${a.vendor || '?'}, architecture ${a.architecture || '?'}, ` +
        `driver ${a.description || '?'}${a.device ? ` (device ${a.device})` : ''}; maxBufferSize ${formatBytes(a.maxBufferSize)}, ` +
        `maxStorageBufferBindingSize ${formatBytes(a.maxStorageBufferBindingSize)}; answers ${a.request}`,
    );
  }
  for (const message of report.webgpu.driverMessages ?? []) lines.push(`  driver: ${message}`);
  lines.push('', 'Native TensorFlow (tfjs-node-gpu / tfjs-node)');
  for (const p of report.nativePackages) {
    const state = !p.installed
      ? 'not installed'
      : `installed ${p.version ?? ''}, addon ${p.binding ? 'present' : 'MISSING'}, libtensorflow ${p.libtensorflow ? 'present' : 'MISSING'}`;
    lines.push(`  ${mark(p.installed && Boolean(p.binding && p.libtensorflow))} ${p.name}: ${state}`);
  }
  lines.push('', `CUDA 11.2 / cuDNN 8.1 libraries (searched LD_LIBRARY_PATH, /usr/local/cuda*, system lib dirs, ldconfig)`);
  for (const l of report.cudaLibraries) {
    lines.push(`  ${mark(Boolean(l.path))} ${l.file.padEnd(20)} ${l.path ?? `not found (${l.what})`}`);
  }
  lines.push('', 'GPU');
  lines.push(
    report.gpu.visible
      ? `  [ok] ${report.gpu.devices.join(', ')} (driver ${report.gpu.driver ?? '?'}, via ${report.gpu.source ?? '?'})`
      : `  [--] none visible: ${report.gpu.reason ?? ''}`,
  );
  lines.push('', 'Download mirrors for installing tfjs-node(-gpu) behind a firewall');
  for (const m of report.mirrors) lines.push(`  ${m.name.padEnd(44)} ${m.value === undefined ? '(not set)' : m.value}  ${m.what}`);
  if (report.advice.length > 0) {
    lines.push('', 'Advice');
    for (const a of report.advice) lines.push(`  - ${a}`);
  }
  return lines.join('\n');
}

export function registerDoctor(program: Command, context: CommandContext): void {
  program
    .command('doctor')
    .description('check which backends load here and why not; WebGPU adapters; CUDA/cuDNN libraries and GPU for tfjs-node-gpu')
    .option('--json', 'print the checks as one JSON object')
    .addHelpText('after', examples(['wrn doctor', 'wrn doctor --json | jq .auto']))
    .addHelpText('after', `\nLibraries looked for: ${CUDA_LIBRARIES.map((l) => l.file).join(', ')}.\n`)
    .action(async (options: { json?: boolean }) => {
      const report = await runDoctor(context.io.env);
      writeLine(context.io.stdout, options.json ? JSON.stringify(report) : formatDoctorReport(report));
    });
}
