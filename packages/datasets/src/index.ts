export type { ImageDataset } from './types.js';
export { imageSize } from './types.js';
export { DatasetFormatError, DatasetNotFoundError } from './errors.js';
export type { CifarFileBytes, CifarFileLayout, CifarSplit, LoadCifar10Options, LoadCifar100Options } from './cifar.js';
export {
  CIFAR10_CLASS_NAMES,
  CIFAR100_COARSE_CLASS_NAMES,
  CIFAR100_FINE_CLASS_NAMES,
  CIFAR10_TRAIN_FILES,
  CIFAR10_TEST_FILE,
  CIFAR10_LAYOUT,
  cifar100Layout,
  cifar10FromBytes,
  cifar100FromBytes,
  cifarFromBytes,
} from './cifar.js';
export type { ChannelStats, Normalization } from './normalization.js';
export { PAPER_NORMALIZATION, channelStats, meanStdNormalization, normalizeBatch } from './normalization.js';
export type { AugmentationDraw, AugmentationName, AugmentationOptions } from './augment.js';
export { augmentBatch, augmentationOptions, cropAndFlip, drawAugmentation } from './augment.js';
export type { CropAndFlipMethod } from './augment.js';
export type { Random } from './random.js';
export { keyedRandom, permutation } from './random.js';
export type { Batch, Pipeline, PipelineOptions } from './pipeline.js';
export { createPipeline } from './pipeline.js';
export type { TrainValidationOptions } from './split.js';
export { selectImages, splitTrainValidation } from './split.js';
export type { MatNumericData, MatVariable, ReadMatOptions } from './mat.js';
export { readMat } from './mat.js';
export type { LoadSvhnOptions, SvhnSplit } from './svhn.js';
export { SVHN_CLASS_NAMES, SVHN_FILES, svhnFromMat } from './svhn.js';
export type { LoadImageFolderOptions } from './image-folder.js';
export type { DatasetFile, DatasetName, DatasetSpec } from './registry.js';
export type { DownloadOptions, DownloadProgress, DownloadResult } from './download.js';
export type { DatasetStats, SplitStats } from './stats.js';
export type { FitZcaOptions, ZcaWhitening } from './zca.js';
export { applyZca, datasetSha256, fitZca } from './zca.js';
export { Sha256 } from './sha256.js';
export type { SymmetricEigen, SymmetricEigenOptions } from './eigen.js';
export { symmetricEigen } from './eigen.js';
