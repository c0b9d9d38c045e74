// Shared by the webgpu tests: whether Dawn has an adapter here, with SwiftShader found where Debian's chromium is.
import { existsSync } from 'node:fs';
import os from 'node:os';
import { listWebGpuAdapters } from '@wrn/backend/node';

/** Debian's chromium package ships SwiftShader's Vulkan driver; Debian 12's lavapipe lacks a feature Dawn needs. */
export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

// Before Dawn first starts (in this process or the probe's child): point Vulkan at SwiftShader unless told otherwise.
if (process.env['VK_ICD_FILENAMES'] == null && existsSync(SWIFTSHADER_ICD)) process.env['VK_ICD_FILENAMES'] = SWIFTSHADER_ICD;
process.env['XDG_RUNTIME_DIR'] ??= os.tmpdir();

const list = await listWebGpuAdapters();

/**
 * Why webgpu tests cannot run here, or undefined when they can. Under CI a missing adapter fails the suite
 * instead: CI installs chromium (SwiftShader) for exactly these tests.
 */
export const webgpuUnavailable: string | undefined = list.adapters.length > 0 ? undefined : (list.error ?? 'no WebGPU adapter');

if (webgpuUnavailable !== undefined) {
  if (process.env['CI']) {
    throw new Error(`webgpu tests need a WebGPU adapter (CI: install chromium for SwiftShader at ${SWIFTSHADER_ICD}): ${webgpuUnavailable}`);
  }
  console.log(`skipping webgpu tests: ${webgpuUnavailable} (install chromium for SwiftShader: ${SWIFTSHADER_ICD})`);
}
