import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';

import { PNG } from 'pngjs';

import { DatasetFormatError, DatasetNotFoundError } from './errors.js';
import { decodeJpeg } from './jpeg.js';
import type { ImageDataset } from './types.js';

export interface LoadImageFolderOptions {
  /** Split name recorded on the dataset. Default: the folder's own name. */
  split?: string;
  /** Class folders to read, in label order. Default: every sub-folder of `root`, sorted by name. */
  classNames?: readonly string[];
  /** At most this many images per class (the first, in sorted file order). Default: all. */
  maxPerClass?: number;
}

const DECODERS: Record<string, (bytes: Buffer) => { width: number; height: number; rgba: Uint8Array }> = {
  '.png': (bytes) => {
    const png = PNG.sync.read(bytes);
    return { width: png.width, height: png.height, rgba: png.data };
  },
  // libjpeg-turbo, as PIL/torchvision decode: the pixels (and so the dataset statistics) are theirs
  '.jpg': (bytes) => decodeJpeg(bytes),
};
DECODERS['.jpeg'] = DECODERS['.jpg']!;

/** Image file extensions the folder loader decodes. */
export const IMAGE_FOLDER_EXTENSIONS: readonly string[] = Object.keys(DECODERS);

function listDirectory(path: string): string[] {
  return readdirSync(path).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * Loads `root/<class>/*.png|jpg|jpeg` as RGB images (alpha dropped) with one label per class folder. Every image
 * must have the size of the first one read.
 */
export function loadImageFolder(root: string, options: LoadImageFolderOptions = {}): ImageDataset {
  let classNames: readonly string[];
  try {
    classNames = options.classNames ?? listDirectory(root).filter((name) => statSync(join(root, name)).isDirectory());
  } catch (error) {
    throw new DatasetNotFoundError(root, `image folder ${root} cannot be read: ${(error as Error).message}`);
  }
  if (classNames.length === 0) {
    throw new DatasetNotFoundError(root, `image folder ${root} has no class sub-folders (expected root/<class>/*.png|jpg)`);
  }
  const files: Array<{ file: string; label: number }> = [];
  classNames.forEach((name, label) => {
    const dir = join(root, name);
    let entries: string[];
    try {
      entries = listDirectory(dir);
    } catch (error) {
      throw new DatasetNotFoundError(dir, `class folder ${dir} cannot be read: ${(error as Error).message}`);
    }
    const images = entries.filter((entry) => DECODERS[extname(entry).toLowerCase()] !== undefined);
    // A class without images would be a label the model can never see: a mistake in the folder, not a class.
    if (images.length === 0) {
      throw new DatasetNotFoundError(dir, `class folder ${dir} has no ${IMAGE_FOLDER_EXTENSIONS.join('/')} files; add images or remove the folder`);
    }
    const kept = options.maxPerClass === undefined ? images : images.slice(0, options.maxPerClass);
    for (const entry of kept) files.push({ file: join(dir, entry), label });
  });
  if (files.length === 0) {
    throw new DatasetNotFoundError(
      root,
      `image folder ${root} has no ${IMAGE_FOLDER_EXTENSIONS.join('/')} files in its class folders (${classNames.join(', ')})`,
    );
  }

  let height = 0;
  let width = 0;
  let images = new Uint8Array(0);
  const labels = new Int32Array(files.length);
  files.forEach(({ file, label }, index) => {
    const decode = DECODERS[extname(file).toLowerCase()]!;
    let decoded: ReturnType<typeof decode>;
    try {
      decoded = decode(readFileSync(file));
    } catch (error) {
      throw new DatasetFormatError(file, `cannot decode image: ${(error as Error).message}`, { record: index });
    }
    if (index === 0) {
      height = decoded.height;
      width = decoded.width;
      images = new Uint8Array(files.length * height * width * 3);
    } else if (decoded.height !== height || decoded.width !== width) {
      throw new DatasetFormatError(
        file,
        `image is ${decoded.width}x${decoded.height}, expected ${width}x${height} like ${files[0]!.file}`,
        { record: index },
      );
    }
    const out = index * height * width * 3;
    const rgba = decoded.rgba;
    for (let p = 0; p < height * width; p++) {
      images[out + 3 * p] = rgba[4 * p]!;
      images[out + 3 * p + 1] = rgba[4 * p + 1]!;
      images[out + 3 * p + 2] = rgba[4 * p + 2]!;
    }
    labels[index] = label;
  });
  const split = options.split ?? root.split(/[\\/]/).filter(Boolean).pop() ?? 'train';
  return {
    name: 'image-folder',
    split,
    count: files.length,
    height,
    width,
    channels: 3,
    images,
    labels,
    numClasses: classNames.length,
    classNames,
    sourceFiles: files.map((f) => f.file),
    notes: [],
  };
}
