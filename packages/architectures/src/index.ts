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
export {
  readTorchStateDict,
  importTorchWeights,
  detectTorchSource,
  TORCH_SOURCES,
  TorchTensor,
  CONVERTIBLE_DTYPES,
  TorchWeightsError,
  TorchFormatError,
  NotAStateDictError,
  TorchDtypeError,
  TorchKeyMismatchError,
  TorchShapeMismatchError,
} from './torch/index.js';
export type {
  TorchStateDict,
  StateDictTensor,
  ReadStateDictOptions,
  ImportTorchWeightsOptions,
  ImportTorchWeightsReport,
  TorchSource,
  TorchDtype,
} from './torch/index.js';
