export const PACKAGE_NAME = '@wrn/training';
export { registerWasmTrainingKernels, wasmTrainingKernelsRegistered, wasmNativeConvKernels, WASM_TRAINING_KERNEL_NAMES } from './backend/wasm-training-kernels';
export type { WasmTrainingKernelOptions } from './backend/wasm-training-kernels';
export { WASM_NATIVE_CONV_KERNEL_NAMES } from './backend/wasm-native-conv';
export { registerWasmTrainingGradients, wasmTrainingGradientsRegistered, WASM_TRAINING_GRADIENT_NAMES } from './backend/wasm-training-gradients';
export { selectBackend, checkConvGradients, BackendUnavailableError, BACKEND_CHOICES, DEFAULT_WASM_THREADS, WASM_THREADS_ENV, wasmThreadsFromEnv, NATIVE_CONV_ENV, nativeConvFromEnv, NATIVE_PACKAGES, TENSORFLOW_INSTALL_ADVICE } from './backend/select-backend';
export { initWasmBackendWithThreads } from './backend/wasm-threads';
export type { WasmThreadsResult } from './backend/wasm-threads';
export type { BackendChoice, BackendAttempt, BackendSelection, SelectBackendOptions } from './backend/select-backend';
export { SgdOptimizer } from './sgd';
export type { SgdOptions, SgdParam, SgdStateMeta, SerializedSgdState } from './sgd';
export {
  learningRateAt, scheduleSchema, scheduleUnitSchema, warmupSchema, resolveSchedule, fractionMilestone, scheduleMilestones, resetsMomentumAt, formatSchedule,
  FRACTION_RULES,
} from './schedule';
export type { LrSchedule, LrScheduleInput, SchedulePosition, ScheduleUnit, Warmup, FractionRule, RunLength } from './schedule';
export { dropoutPolicySchema, dropoutModelOptions, linearDecayDropPathRate } from './dropout';
export type { DropoutPolicy, DropoutPolicyInput, DropoutModelOptions } from './dropout';
export { trainingConfigSchema, sgdConfigSchema, parseTrainingConfig, TrainingConfigError } from './config';
export type { TrainingConfig, TrainingConfigInput, SgdConfig } from './config';
export { train, TrainingDivergedError } from './train';
export type { TrainArgs, TrainResult, TrainEvent, EpochMetrics, StepMetrics, RandomStateSource } from './train';
export type { Batch, BatchSource, DatasetLike } from './data';
export { evaluate } from './evaluate';
export type { EvaluationResult } from './evaluate';
export { outputKindOf } from './loss';
export type { OutputKind } from './loss';
export { saveCheckpoint, loadCheckpoint, restoreModelWeights, resolveCheckpointDir, CHECKPOINT_FORMAT } from './checkpoint';
export type { CheckpointState, LoadedCheckpoint } from './checkpoint';
export { getPreset, resolveTrainingConfig, PRESET_NAMES } from './presets';
export type { TrainingPreset, PresetName } from './presets';
export { variableGrads } from './gradients';
