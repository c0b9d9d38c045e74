// @wrn/training/node: the parts that need Node: train() and its run directory (config.json, metrics.jsonl,
// checkpoints on disk). The main entry holds everything else and bundles for browsers, where `Trainer` runs the
// same steps and the caller keeps its state wherever it likes (IndexedDB in apps/web). Backends: @wrn/backend.
export { train, TrainingDivergedError } from './train';
export type { TrainArgs, TrainResult, TrainEvent, EpochMetrics, StepMetrics, RandomStateSource } from './train';
// The run directory: every file's name, schema, writer and reader.
export {
  RUN_FILES, RUN_FILE_FORMATS, CHECKPOINTS_DIR, CHECKPOINT_STATE_FILE, runFilePath, runCheckpointDir, RunFileError, RunFileFormatError,
  epochMetricsSchema, stepMetricsSchema, metricsLineSchema, formatMetricsLine, appendMetricsLine, readMetricsLines,
  runConfigFileSchema, currentGitCommit, writeRunConfig, trainingConfigOf, runSummarySchema, formatRunSummary,
  runEnvironmentSchema, writeRunEnvironment, readRunFile, readRunFileLoose,
} from './run-dir';
export type { RunFileKind, MetricsLine, RunConfigFile, RunSummary, RunEnvironment, RunEnvironmentInput } from './run-dir';
export { saveCheckpoint, loadCheckpoint, restoreModelWeights, resolveCheckpointDir, readCheckpointState, copyCheckpoint, CHECKPOINT_FORMAT } from './checkpoint';
export type { CheckpointState, LoadedCheckpoint } from './checkpoint';
// The run-directory lock, checkpoint manifests and what resume repairs.
export { acquireRunLock, readRunLock, staleReason, RunLockedError, RunLockFileError, RUN_LOCK_FILE, DEFAULT_HEARTBEAT_MS } from './run-lock';
export type { RunLock, RunLockHolder, RunLockOptions } from './run-lock';
export { verifyCheckpointFiles, CheckpointError, MANIFEST_FILE } from './checkpoint-manifest';
export { parseCheckpointState, checkpointStateSchema } from './checkpoint';
export type { CheckpointManifest } from './checkpoint-manifest';
export { FAULT_POINTS_ENV } from './fault-points';
