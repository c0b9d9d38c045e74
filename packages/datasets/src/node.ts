// @wrn/datasets/node: what reads or writes the file system or the network: the loaders that find the official
// files in a directory, image folders, the registry of data sets on disk, downloads and the ZCA cache. Each hands
// bytes to a parser of the main entry (cifar10FromBytes, svhnFromMat, readMat), which bundles for browsers.
export { loadCifar10, loadCifar100 } from './cifar-files.js';
export { loadSvhn } from './svhn-files.js';
export type { LoadImageFolderOptions } from './image-folder.js';
export { IMAGE_FOLDER_EXTENSIONS, loadImageFolder } from './image-folder.js';
// libjpeg-turbo compiled to wasm, read from disk (node:fs); in a page, decode with the browser's own decoder.
export type { DecodedJpeg } from './jpeg.js';
export { decodeJpeg } from './jpeg.js';
export type { DatasetFile, DatasetName, DatasetSpec } from './registry.js';
export { DATASETS, getDataset, splitPresent } from './registry.js';
export type { DownloadOptions, DownloadProgress, DownloadResult } from './download.js';
export {
  DATA_DIR_ENV,
  DEFAULT_STALL_TIMEOUT_MS,
  DownloadError,
  datasetDir,
  defaultCacheRoot,
  downloadDataset,
  downloadFile,
  extractArchive,
  fileMd5,
  manualInstructions,
  removeExtractLeftovers,
} from './download.js';
export type { DatasetStats, SplitStats } from './stats.js';
export { datasetStats, splitStats } from './stats.js';
export { loadOrFitZca, loadZca, saveZca } from './zca-files.js';
