import * as tf from '@tensorflow/tfjs-core';
import { registerGroupedConvMethodResolver, type GroupedConvMethod } from '@wrn/blocks';
import { checkConvGradientsAsync } from './conv-gradient-check';
import { describeError } from './selection';

/**
 * TF.js's WebGPU backend: navigator.gpu in browsers, Dawn's `webgpu` npm package in Node (set up by the Node-only
 * ./webgpu-dawn, which @wrn/backend/node passes in as a {@link DawnProvider}: this module never imports it, so a
 * browser bundle of the main entry has no path to it). Browser-safe.
 */

export const WEBGPU_BACKEND_NAME = 'webgpu';

/** The few WebGPU interfaces used here (TypeScript's DOM lib does not declare WebGPU). */
export interface GpuAdapterLike {
  readonly info?: { vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean };
  readonly isFallbackAdapter?: boolean;
  readonly limits: { maxBufferSize: number; maxStorageBufferBindingSize: number };
}
export interface GpuLike {
  requestAdapter(options?: { powerPreference?: 'high-performance' | 'low-power'; forceFallbackAdapter?: boolean }): Promise<GpuAdapterLike | null>;
}

/** One adapter as WebGPU reports it, with the limits that bound the largest tensor. */
export interface WebGpuAdapterReport {
  /** The request that returned it: WebGPU lists adapters only as answers to these. */
  request: 'high-performance' | 'low-power' | 'fallback';
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** A CPU implementation of the API (SwiftShader, llvmpipe/lavapipe, WARP): correct, but no faster than wasm. */
  software: boolean;
  /** Bytes: the largest GPU buffer, so the largest tensor. */
  maxBufferSize: number;
  /** Bytes: the largest buffer one kernel can bind; tfjs-backend-webgpu asks for the adapter's maximum. */
  maxStorageBufferBindingSize: number;
}

export interface WebGpuAdapterList {
  /** Where the GPU object came from: 'navigator.gpu' (a browser) or "Dawn (the 'webgpu' npm package)". */
  source: string;
  adapters: WebGpuAdapterReport[];
  /** Why there is no GPU object or no adapter, when that is so. */
  error?: string;
  /** What the driver stack printed while Dawn looked for adapters (Node), e.g. why Vulkan rejected a device. */
  driverMessages?: string[];
}

/** What to install when webgpu cannot run; part of the error `--backend webgpu` prints. */
export const WEBGPU_INSTALL_ADVICE = [
  `In Node, install TF.js's WebGPU backend and Dawn's binding (prebuilt for linux/mac/win x64 and arm64, nothing downloaded):`,
  `  npm i @tensorflow/tfjs-backend-webgpu@${tf.version_core} webgpu@0.6.2`,
  'Then a GPU driver with Vulkan (Linux: NVIDIA\'s driver, or mesa-vulkan-drivers for AMD/Intel), Metal (macOS) or D3D12 (Windows).',
  'Without a GPU, SwiftShader (software, on the CPU) runs it: Debian\'s chromium package ships it, used with',
  '  VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json XDG_RUNTIME_DIR=/tmp   (Debian 12\'s lavapipe lacks a feature Dawn needs).',
  'In a browser: one with WebGPU (Chrome/Edge 113+, Safari 26, Firefox 141 on Windows) over https or localhost.',
  'Or train without it: --backend wasm (or auto).',
].join('\n');

const SOFTWARE_ADAPTER = /swiftshader|llvmpipe|lavapipe|softpipe|microsoft basic render|\bwarp\b/i;

/** Whether WebGPU reports a software (CPU) implementation: the fallback flag, or a known software driver's name. */
export function isSoftwareAdapter(info: { vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean }): boolean {
  if (info.isFallbackAdapter === true) return true;
  return SOFTWARE_ADAPTER.test([info.vendor, info.architecture, info.device, info.description].join(' '));
}

export function describeAdapter(adapter: GpuAdapterLike, request: WebGpuAdapterReport['request']): WebGpuAdapterReport {
  const info = adapter.info ?? {};
  const fields = {
    vendor: info.vendor ?? '',
    architecture: info.architecture ?? '',
    device: info.device ?? '',
    description: info.description ?? '',
    isFallbackAdapter: info.isFallbackAdapter ?? adapter.isFallbackAdapter ?? false,
  };
  return {
    request,
    vendor: fields.vendor,
    architecture: fields.architecture,
    device: fields.device,
    description: fields.description,
    software: isSoftwareAdapter(fields),
    maxBufferSize: Number(adapter.limits.maxBufferSize),
    maxStorageBufferBindingSize: Number(adapter.limits.maxStorageBufferBindingSize),
  };
}

/** "SwiftShader driver 5.0.0 (google swiftshader, software)" */
export function adapterLabel(adapter: WebGpuAdapterReport): string {
  const name = adapter.description || adapter.device || 'unnamed adapter';
  const kind = [adapter.vendor, adapter.architecture].filter(Boolean).join(' ');
  return `${name} (${kind ? `${kind}, ` : ''}${adapter.software ? 'software' : 'hardware'})`;
}

const ADAPTER_REQUESTS: [WebGpuAdapterReport['request'], Parameters<GpuLike['requestAdapter']>[0]][] = [
  ['high-performance', { powerPreference: 'high-performance' }],
  ['low-power', { powerPreference: 'low-power' }],
  ['fallback', { forceFallbackAdapter: true }],
];

/** Every distinct adapter the GPU object answers with: high-performance, low-power, then the fallback one. */
export async function listAdapters(gpu: GpuLike): Promise<WebGpuAdapterReport[]> {
  const seen = new Set<string>();
  const adapters: WebGpuAdapterReport[] = [];
  for (const [request, options] of ADAPTER_REQUESTS) {
    const adapter = await gpu.requestAdapter(options).catch(() => null);
    if (adapter == null) continue;
    const report = describeAdapter(adapter, request);
    const key = JSON.stringify({ ...report, request: '' });
    if (seen.has(key)) continue;
    seen.add(key);
    adapters.push(report);
  }
  return adapters;
}

const isNode = (): boolean => typeof globalThis.process?.versions?.node === 'string';

/** Dawn's Node binding as navigator.gpu (./webgpu-dawn, which @wrn/backend/node passes in). */
export interface DawnProvider {
  installDawnGpu(load: (s: string) => Promise<unknown>): Promise<GpuLike>;
  probeDawnAdapters(): Promise<WebGpuAdapterList>;
}

const NO_DAWN = "navigator.gpu is missing: in Node, WebGPU comes from Dawn through @wrn/backend/node's selectBackend and listWebGpuAdapters";

/** navigator.gpu, setting it up from Dawn in Node when no one has. */
async function ensureGpu(load: (s: string) => Promise<unknown>, dawn: DawnProvider | undefined): Promise<{ gpu: GpuLike; source: string }> {
  const existing = (globalThis as { navigator?: { gpu?: GpuLike } }).navigator?.gpu;
  if (existing != null) return { gpu: existing, source: isNode() ? "Dawn (the 'webgpu' npm package)" : 'navigator.gpu' };
  if (!isNode()) throw new Error('navigator.gpu is missing: this browser has no WebGPU (or the page is not on https/localhost)');
  if (dawn == null) throw new Error(NO_DAWN);
  return { gpu: await dawn.installDawnGpu(load), source: "Dawn (the 'webgpu' npm package)" };
}

/**
 * The adapters WebGPU offers here. In Node (given Dawn: @wrn/backend/node's listWebGpuAdapters) it asks Dawn in a
 * child process, so the driver stack's messages (Vulkan rejecting lavapipe, XDG_RUNTIME_DIR unset) are captured
 * instead of printed, and nothing is loaded into this process unless there is an adapter to use.
 */
export async function listWebGpuAdapters(options: { dawn?: DawnProvider } = {}): Promise<WebGpuAdapterList> {
  const existing = (globalThis as { navigator?: { gpu?: GpuLike } }).navigator?.gpu;
  if (existing == null && isNode()) {
    return options.dawn ? options.dawn.probeDawnAdapters() : { source: 'navigator.gpu', adapters: [], error: NO_DAWN };
  }
  if (existing == null) return { source: 'navigator.gpu', adapters: [], error: 'navigator.gpu is missing: this browser has no WebGPU' };
  const adapters = await listAdapters(existing);
  return { source: 'navigator.gpu', adapters, ...(adapters.length === 0 ? { error: 'navigator.gpu offers no adapter' } : {}) };
}

/**
 * Grouped convolution on webgpu, measured with `tools/bench/grouped-conv.ts --backend webgpu --quick --reps 2`, on
 * SwiftShader (the only adapter here: Vulkan on the CPU, so these are a CPU's timings, on a loaded 2-core machine),
 * ms forward / forward+backward:
 *   2x16x16x64, G=8:            split 1,499 / 1,952   im2col 2,404 / 7,822   depthwise 8,804 / 19,081
 *   2x16x16x128, G=32, stride 2: split 3,912 / 5,294   im2col 2,487 / 5,864   depthwise 8,098 / 6,100
 * `split` (one conv2d per group on tfjs-backend-webgpu's tuned conv kernels and their gradients) trains fastest in
 * both; im2col's forward wins with 32 narrow groups, but it materialises k*k = 9 copies of the input, which at
 * ImageNet sizes on a GPU (ResNeXt-50: 56x56x128 per image) costs far more memory traffic than split's extra
 * dispatches (a few microseconds each on a GPU); depthwise is slowest everywhere. So split, in both modes.
 */
export const WEBGPU_GROUPED_CONV_METHODS = { training: 'split', inference: 'split' } as const;

const webgpuGroupedConvMethod = ({ training }: { training: boolean }): GroupedConvMethod =>
  WEBGPU_GROUPED_CONV_METHODS[training ? 'training' : 'inference'];

export type WebGpuAttempt = {
  name: 'webgpu';
  ok: boolean;
  error?: string;
  /** The adapter tfjs-backend-webgpu runs on (its high-performance request), once one was found. */
  adapter?: WebGpuAdapterReport;
  source?: string;
  /** Set when the failure is that only a software adapter exists and it was not asked for by name. */
  softwareOnly?: boolean;
};

/**
 * Sets up navigator.gpu (Dawn in Node), checks its adapter, registers tfjs-backend-webgpu and makes 'webgpu'
 * active, verified on a tiny conv gradient; in Node `dawn` provides navigator.gpu. A software adapter is used only when `allowSoftware` (webgpu asked
 * for by name): on the CPU it trains slower than wasm.
 */
export async function tryWebGpu(load: (s: string) => Promise<unknown>, allowSoftware: boolean, dawn?: DawnProvider): Promise<WebGpuAttempt> {
  let gpu: GpuLike;
  let source: string;
  try {
    ({ gpu, source } = await ensureGpu(load, dawn));
  } catch (error) {
    return { name: 'webgpu', ok: false, error: describeError(error) };
  }
  // tfjs-backend-webgpu asks for exactly this adapter (unless WEBGPU_USE_LOW_POWER_GPU is set).
  const lowPower = tf.env().getFlags()['WEBGPU_USE_LOW_POWER_GPU'] === true;
  let adapter: WebGpuAdapterReport;
  try {
    const found = await gpu.requestAdapter({ powerPreference: lowPower ? 'low-power' : 'high-performance' });
    if (found == null) {
      return {
        name: 'webgpu',
        ok: false,
        source,
        error: `${source} offers no WebGPU adapter: no GPU with a driver Dawn accepts (Vulkan, Metal or D3D12)${isNode() ? '; `wrn doctor` shows what the driver said' : ''}`,
      };
    }
    adapter = describeAdapter(found, lowPower ? 'low-power' : 'high-performance');
  } catch (error) {
    return { name: 'webgpu', ok: false, source, error: `requestAdapter failed: ${describeError(error)}` };
  }
  if (adapter.software && !allowSoftware) {
    return {
      name: 'webgpu',
      ok: false,
      source,
      adapter,
      softwareOnly: true,
      error: `only a software adapter, ${adapterLabel(adapter)}: it runs on the CPU, slower than wasm, so auto skips it (--backend webgpu uses it)`,
    };
  }
  // A browser app that bundled tfjs-backend-webgpu has registered it already; a bare dynamic import may not resolve there.
  if (tf.findBackendFactory(WEBGPU_BACKEND_NAME) == null) {
    try {
      await load('@tensorflow/tfjs-backend-webgpu');
    } catch (error) {
      return { name: 'webgpu', ok: false, source, adapter, error: `cannot load @tensorflow/tfjs-backend-webgpu: ${describeError(error)}` };
    }
  }
  if (tf.findBackendFactory(WEBGPU_BACKEND_NAME) == null) {
    return { name: 'webgpu', ok: false, source, adapter, error: 'tfjs-backend-webgpu registered no backend (it was imported before navigator.gpu existed)' };
  }
  if (tf.getGradient(tf.Conv2D) == null) {
    try {
      // tfjs-core's gradients are registered by tfjs-layers (Node's CommonJS tfjs-core build registers none).
      await load('@tensorflow/tfjs-layers');
    } catch (error) {
      return { name: 'webgpu', ok: false, source, adapter, error: `cannot load @tensorflow/tfjs-layers (it registers the gradients): ${describeError(error)}` };
    }
  }
  try {
    if (!(await tf.setBackend(WEBGPU_BACKEND_NAME))) return { name: 'webgpu', ok: false, source, adapter, error: 'the webgpu backend failed to initialise (see the log above)' };
  } catch (error) {
    return { name: 'webgpu', ok: false, source, adapter, error: `the webgpu backend failed to initialise: ${describeError(error)}` };
  }
  registerGroupedConvMethodResolver(WEBGPU_BACKEND_NAME, webgpuGroupedConvMethod);
  let failure: string | undefined;
  try {
    failure = await checkConvGradientsAsync();
  } catch (error) {
    failure = describeError(error);
  }
  if (failure != null) return { name: 'webgpu', ok: false, source, adapter, error: `training kernels are wrong here: ${failure}` };
  return { name: 'webgpu', ok: true, source, adapter };
}

/** GPU buffers the active webgpu backend holds: in use, pooled for reuse, and bytes allocated; null on other backends. */
export function webgpuBufferCounts(): { used: number; free: number; bytesAllocated: number } | null {
  if (tf.getBackend() !== WEBGPU_BACKEND_NAME) return null;
  const manager = (tf.backend() as unknown as {
    bufferManager?: { getNumUsedBuffers(): number; getNumFreeBuffers(): number; numBytesAllocated: number };
  }).bufferManager;
  if (manager == null) return null;
  return { used: manager.getNumUsedBuffers(), free: manager.getNumFreeBuffers(), bytesAllocated: manager.numBytesAllocated };
}
