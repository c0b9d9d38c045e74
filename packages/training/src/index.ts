export { SGD_UPDATE_KERNEL, SgdOptimizer } from './sgd';
export type { SgdOptions, SgdParam, SgdStateMeta, SerializedSgdState } from './sgd';
export {
  learningRateAt, scheduleSchema, scheduleUnitSchema, warmupSchema, resolveSchedule, fractionMilestone, scheduleMilestones, resetsMomentumAt, formatSchedule,
  FRACTION_RULES,
} from './schedule';
export type { LrSchedule, LrScheduleInput, SchedulePosition, ScheduleUnit, Warmup, FractionRule, RunLength } from './schedule';
export { dropoutPolicySchema, dropoutModelOptions } from './dropout';
export type { DropoutPolicy, DropoutPolicyInput, DropoutModelOptions } from './dropout';
export { trainingConfigSchema, sgdConfigSchema, parseTrainingConfig, TrainingConfigError } from './config';
// Errors by whose problem they are (kind, exitCode), so callers never sort them by message text.
export { TrainingError, RunDirectoryError, ResumeMismatchError, TRAINING_ERROR_EXIT_CODES } from './errors';
export type { TrainingErrorKind } from './errors';
export type { TrainingConfig, TrainingConfigInput, SgdConfig } from './config';
export type { Batch, BatchSource, DatasetLike } from './data';
export { evaluate } from './evaluate';
export type { EvaluationResult } from './evaluate';
export { outputKindOf } from './loss';
export type { OutputKind } from './loss';
export {
  getPreset, resolveTrainingConfig, resolveRecipe, defaultPresetName, mergeLayers, sourceOf, describeSource, showValue, PRESET_NAMES, PRESET_AUGMENTATIONS,
  PRESET_NORMALIZATIONS,
} from './presets';
export type { TrainingPreset, PresetName, PresetAugmentation, PresetNormalization, ResolvedRecipe, ConfigLayer, ValueSource } from './presets';
export { variableGrads } from './gradients';
export { applyForTraining } from './forward';
export { Trainer, trainableParams } from './trainer';
export type { TrainerOptions, TrainerPosition, TrainerState, TrainerStepResult } from './trainer';
// Types of the Node entry's values, so browser code can describe runs and checkpoints without importing them.
export type { TrainArgs, TrainResult, TrainEvent, EpochMetrics, StepMetrics, RandomStateSource } from './train';
export type { CheckpointState, LoadedCheckpoint } from './checkpoint';
