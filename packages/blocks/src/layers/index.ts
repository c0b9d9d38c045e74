import { serialization } from '@tensorflow/tfjs-core';
import { DropPath, SeededDropout } from './dropout.js';
import { GroupedConv2D, PaddedConv2D } from './grouped_conv.js';
import { TorchBatchNormalization } from './batch_norm.js';
import { PaddedMaxPooling2D } from './pooling.js';
import { ResidualAdd } from './residual_add.js';
import { ZeroPadShortcut } from './zero_pad_shortcut.js';

export const CUSTOM_LAYER_CLASSES = [
  GroupedConv2D, PaddedConv2D, PaddedMaxPooling2D, TorchBatchNormalization, ZeroPadShortcut, DropPath, SeededDropout, ResidualAdd,
] as const;

/**
 * Registers the custom layers for deserialisation. Each module already registers its class when loaded; this
 * function exists so that a bundler honouring `"sideEffects": false` cannot drop that registration when an app
 * only imports the loader. Idempotent.
 */
export function registerCustomLayers(): void {
  for (const cls of CUSTOM_LAYER_CLASSES) serialization.registerClass(cls);
}
