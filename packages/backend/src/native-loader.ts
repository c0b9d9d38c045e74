import type { NativeConvKernels, NativeConvLoad } from '@wrn/native';
import { describeError } from './selection';

// @wrn/native is loaded here and nowhere else: an optional dependency (compiled on install where no prebuilt binary
// fits), so it is imported by name at run time and its absence is a reason, not an error.

/** @wrn/native's convolutions, or why there are none: an optional dependency that compiles on install. */
export async function loadNativeConv(
  load: (s: string) => Promise<unknown>,
): Promise<{ used: true; kernels: NativeConvKernels } | { used: false; why: string }> {
  let mod: { loadNativeConvKernels?: () => NativeConvLoad };
  try {
    mod = (await load('@wrn/native')) as typeof mod;
  } catch (error) {
    return { used: false, why: `not installed (@wrn/native: ${describeError(error)})` };
  }
  const result = mod.loadNativeConvKernels?.();
  if (result == null) return { used: false, why: '@wrn/native has no loadNativeConvKernels: install the version that matches @wrn/backend' };
  return result.ok ? { used: true, kernels: result.kernels } : { used: false, why: `not available: ${result.reason}` };
}
