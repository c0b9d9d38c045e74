export {
  buildModel,
  buildModelFromConfig,
  resolveModelConfig,
  validateModelConfig,
  planModel,
  countParams,
  countMultiplyAdds,
  layerTable,
  listModels,
  summarizeModel,
  formatLayerTable,
} from './build.js';
export type { ModelInfo, ModelSummary, ModelRef } from './build.js';
export {
  ModelConfigSchema,
  BuildModelOptionsSchema,
  StageConfigSchema,
  BlockConfigSchema,
  FAMILIES,
  DATASETS,
  STRIDE_LAYOUTS,
} from './config.js';
export type { ModelConfig, BuildModelOptions, StageConfig, BlockConfig, Family, DatasetKind, StrideLayout } from './config.js';
export { parseModelName, ModelNameError, NAME_PATTERNS, REGISTERED_NAMES } from './registry.js';
export type { BaseModelConfig } from './registry.js';
export type { LayerRow, BlockOrder, ShortcutType } from '@wrn/blocks';
