export { readTorchStateDict } from './state-dict.js';
export type { TorchStateDict, StateDictTensor, ReadStateDictOptions } from './state-dict.js';
export { importTorchWeights, detectTorchSource, TORCH_SOURCES } from './import.js';
export type { ImportTorchWeightsOptions, ImportTorchWeightsReport, TorchSource } from './import.js';
export { TorchTensor, CONVERTIBLE_DTYPES } from './tensor.js';
export type { TorchDtype } from './tensor.js';
export {
  TorchWeightsError, TorchFormatError, NotAStateDictError, TorchDtypeError, TorchKeyMismatchError, TorchShapeMismatchError,
} from './errors.js';
