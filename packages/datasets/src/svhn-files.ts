import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { DatasetNotFoundError } from './errors.js';
import { SVHN_FILES, svhnFromMat, type LoadSvhnOptions } from './svhn.js';
import type { ImageDataset } from './types.js';

/** Loads one split of SVHN (cropped digits, format 2) from `dir`. */
export function loadSvhn(dir: string, options: LoadSvhnOptions = {}): ImageDataset {
  const split = options.split ?? 'train';
  const fileName = SVHN_FILES[split];
  if (fileName === undefined) throw new Error(`loadSvhn: split '${String(split)}' is not one of 'train', 'test', 'extra'`);
  const file = join(dir, fileName);
  if (!existsSync(file)) {
    throw new DatasetNotFoundError(
      file,
      `SVHN ${split} split not found: ${file} does not exist. Run \`wrn datasets download svhn\`, or download ` +
        `http://ufldl.stanford.edu/housenumbers/${fileName} and place it in ${dir}.`,
    );
  }
  return svhnFromMat(readFileSync(file), file, split);
}
