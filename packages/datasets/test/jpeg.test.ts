import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import * as tar from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { decodeJpeg, loadImageFolder } from '../src/node.js';
import { NO_SHARED_DATA, SHARED_DATA, tempDir } from './helpers.js';

/** Debian's python3 with PIL (python3-pil), which decodes with libjpeg-turbo: the oracle. */
const PYTHON = '/usr/bin/python3';
const pilMissing = (() => {
  const probe = spawnSync(PYTHON, ['-c', 'import PIL.Image, numpy'], { encoding: 'utf8' });
  return probe.error || probe.status !== 0 ? `${PYTHON} cannot import PIL and numpy` : undefined;
})();
if (pilMissing !== undefined) {
  if (process.env.CI) throw new Error(`JPEG oracle unavailable in CI: ${pilMissing} (.ci/run installs python3-pil)`);
  console.log(`skipping the JPEG-vs-PIL test: ${pilMissing} (apt-get install python3-pil python3-numpy)`);
}

const scratch = tempDir('jpeg');
afterAll(() => scratch.remove());

const CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
const PER_CLASS = 20;

// Without ../shared the global set-up has said, in one line, that the real-data tests skip.
describe.skipIf(pilMissing !== undefined || NO_SHARED_DATA)('decodeJpeg on the real CIFAR-10 JPEG set, against PIL (libjpeg-turbo)', () => {
  let files: string[] = [];
  let pil: Buffer;

  beforeAll(async () => {
    const wanted = new Set(CLASSES.flatMap((name) => Array.from({ length: PER_CLASS }, (_, i) => `train/${name}/${String(i).padStart(4, '0')}.jpg`)));
    await tar.x({ file: join(SHARED_DATA, 'cifar10-jpeg', 'train.tar.gz'), cwd: scratch.path, filter: (path) => wanted.has(path.replace(/^\.\//, '')) });
    files = [...wanted].sort().map((path) => join(scratch.path, path));
    const script = 'import sys, numpy as np\nfrom PIL import Image\nsys.stdout.buffer.write(b"".join(np.asarray(Image.open(f).convert("RGB")).tobytes() for f in sys.argv[1:]))';
    const result = spawnSync(PYTHON, ['-c', script, ...files], { maxBuffer: 1 << 24 });
    if (result.status !== 0) throw new Error(`PIL failed: ${result.stderr.toString()}`);
    pil = result.stdout;
  });

  it(`gives PIL's pixels exactly on ${CLASSES.length * PER_CLASS} images`, () => {
    expect(pil.length).toBe(files.length * 32 * 32 * 3);
    let differing = 0;
    files.forEach((file, i) => {
      const { width, height, rgba } = decodeJpeg(readFileSync(file));
      expect([width, height]).toEqual([32, 32]);
      for (let p = 0; p < 1024; p++) {
        for (let c = 0; c < 3; c++) if (rgba[p * 4 + c] !== pil[(i * 1024 + p) * 3 + c]) differing++;
      }
    });
    expect(differing).toBe(0);
  });

  it('a truncated real JPEG fails, and the decoder still decodes the next one exactly', () => {
    const bytes = readFileSync(files[0]!);
    expect(() => decodeJpeg(bytes.subarray(0, 300))).toThrow('libjpeg-turbo cannot decode these 300 bytes: corrupt or truncated JPEG data');
    const { rgba } = decodeJpeg(bytes);
    for (let p = 0; p < 1024; p++) for (let c = 0; c < 3; c++) expect(rgba[p * 4 + c]).toBe(pil[p * 3 + c]);
  });

  it('so loadImageFolder has the pixels, and the channel means, that PIL and torchvision see', () => {
    const dataset = loadImageFolder(join(scratch.path, 'train'));
    expect(dataset.count).toBe(files.length);
    expect(Buffer.from(dataset.images).equals(pil)).toBe(true);
  });
});

describe('decodeJpeg bad input', () => {
  it('bytes that are not a JPEG', () => {
    expect(() => decodeJpeg(new TextEncoder().encode('GIF89a'))).toThrow('not a JPEG: it does not start with the SOI marker ff d8 (first bytes: 47 49 46 38)');
    expect(() => decodeJpeg(new Uint8Array(0))).toThrow('not a JPEG: it does not start with the SOI marker ff d8 (first bytes: none, the file is empty)');
  });

  it('a JPEG cut short', () => {
    expect(() => decodeJpeg(new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0, 16]))).toThrow('libjpeg-turbo cannot decode these 6 bytes: corrupt or truncated JPEG data');
  });
});
