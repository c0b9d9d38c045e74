import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

/** Debian's python3 with python3-torch and python3-torchvision (the `python3` on PATH may be another one). */
export const PYTHON = '/usr/bin/python3';
const HERE = dirname(fileURLToPath(import.meta.url));
const SCRIPT = join(HERE, 'make_fixtures.py');
/** Real CIFAR-10 images: ../shared/data beside the repository (the first records of data_batch_1.bin). */
export const CIFAR_BATCH = join(HERE, '../../../../../shared/data/cifar10-subset/data_batch_1.bin');

function probeTorch(): string | undefined {
  const probe = spawnSync(PYTHON, ['-c', 'import torch, torchvision'], { encoding: 'utf8' });
  if (probe.error) return `${PYTHON} cannot run (${probe.error.message})`;
  if (probe.status !== 0) return `${PYTHON} cannot import torch and torchvision (${probe.stderr.trim().split('\n').pop() ?? ''})`;
  try {
    readFileSync(CIFAR_BATCH).subarray(0, 1);
  } catch {
    return `the CIFAR-10 images ${CIFAR_BATCH} are missing`;
  }
  return undefined;
}

/**
 * Why the PyTorch oracle cannot run here, or undefined when it can. Locally a missing python3-torch skips the
 * tests (one line); in CI (process.env.CI set) it fails them, as CI installs it.
 */
export const torchMissing: string | undefined = probeTorch();
if (torchMissing !== undefined) {
  if (process.env.CI) throw new Error(`PyTorch oracle unavailable in CI: ${torchMissing} (.ci/run installs python3-torch python3-torchvision)`);
  console.log(`skipping the PyTorch weight-import tests: ${torchMissing} (apt-get install python3-torch python3-torchvision)`);
}

const run = promisify(execFile);

/** Runs make_fixtures.py for `fixtures` into a fresh temporary directory; `cleanup` removes it. */
export async function makeFixtures(fixtures: readonly string[]): Promise<{ dir: string; cleanup: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'wrn-torch-fixtures-'));
  await run(PYTHON, [SCRIPT, dir, CIFAR_BATCH, ...fixtures], { maxBuffer: 1 << 20, env: { ...process.env, OMP_NUM_THREADS: '2' } });
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function readBytes(path: string): Uint8Array {
  const buffer = readFileSync(path);
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

export function readFloats(path: string): Float32Array {
  const buffer = readFileSync(path);
  return new Float32Array(buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength));
}

export interface ExpectedTensor {
  dtype: string;
  shape: number[];
  /** float32 values as PyTorch has them (float16/bfloat16 widened by torch's .float()); absent for integer tensors. */
  values?: Float32Array;
}

/** NAME.values.{json,bin} as make_fixtures.py writes them: every tensor of a state_dict, as torch holds it. */
export function readExpected(dir: string, name: string): Map<string, ExpectedTensor> {
  const index = JSON.parse(readFileSync(join(dir, `${name}.values.json`), 'utf8')) as Record<string, { dtype: string; shape: number[]; offset?: number }>;
  const all = readFloats(join(dir, `${name}.values.bin`));
  const out = new Map<string, ExpectedTensor>();
  for (const [key, entry] of Object.entries(index)) {
    const size = entry.shape.reduce((a, b) => a * b, 1);
    out.set(key, { dtype: entry.dtype, shape: entry.shape, ...(entry.offset === undefined ? {} : { values: all.subarray(entry.offset, entry.offset + size) }) });
  }
  return out;
}

/** Whether two float32 arrays hold the same bits (so -0 != 0 and NaN == NaN, unlike toEqual on numbers). */
export function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/** max |a - b| / max |b|: the error relative to the scale of the reference. */
export function maxRelativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let scale = 0;
  let error = 0;
  for (let i = 0; i < expected.length; i++) {
    scale = Math.max(scale, Math.abs(expected[i] as number));
    error = Math.max(error, Math.abs((actual[i] as number) - (expected[i] as number)));
  }
  return error / scale;
}
