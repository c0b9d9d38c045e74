import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

import * as tar from 'tar';

import type { DatasetFile, DatasetSpec } from './registry.js';
import { getDataset, splitPresent } from './registry.js';

/** Environment variable naming the root under which datasets are cached (one sub-folder per dataset). */
export const DATA_DIR_ENV = 'WRN_DATA_DIR';

/** Root of the dataset cache: $WRN_DATA_DIR, else $XDG_CACHE_HOME/wrn/datasets, else ~/.cache/wrn/datasets. */
export function defaultCacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env[DATA_DIR_ENV];
  if (fromEnv) return fromEnv;
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'wrn', 'datasets');
}

/** Folder a dataset lives in: the explicit `dir` (a `--dir` flag) if given, else `<cache root>/<name>`. */
export function datasetDir(name: string, dir?: string, env: NodeJS.ProcessEnv = process.env): string {
  return dir ?? join(defaultCacheRoot(env), name);
}

export interface DownloadProgress {
  /** 'download' while bytes arrive, then 'verify', 'extract', and 'done' (or 'cached' when nothing was needed). */
  phase: 'download' | 'verify' | 'extract' | 'done' | 'cached';
  fileName: string;
  url: string;
  /** Bytes of the file on disk so far, counting a resumed part. */
  receivedBytes: number;
  /** Full size, when the server or the registry says. */
  totalBytes: number | undefined;
  /** This transfer continues a `.part` file left by an earlier one. */
  resumed: boolean;
}

export interface DownloadOptions {
  /** Where to put the dataset; default `datasetDir(name)`. */
  dir?: string;
  /** Splits to fetch; default the dataset's `defaultSplits` (SVHN's 1.3 GB `extra` only when asked). */
  splits?: readonly string[];
  onProgress?: (progress: DownloadProgress) => void;
  /** Extra attempts after a dropped connection, each resuming where the last stopped. Default 2. */
  retries?: number;
  signal?: AbortSignal;
  /**
   * Give up on a transfer when no byte (nor the response headers) arrived for this long, then retry or fail with
   * the partial file kept. Default 30 s (DEFAULT_STALL_TIMEOUT_MS); a server that stalls otherwise hangs for minutes.
   */
  stallTimeoutMs?: number;
}

export const DEFAULT_STALL_TIMEOUT_MS = 30_000;

/** A download that failed; `resumable` says whether a `.part` file was kept for the next attempt. */
export class DownloadError extends Error {
  readonly resumable: boolean;
  constructor(message: string, resumable: boolean) {
    super(message);
    this.name = 'DownloadError';
    this.resumable = resumable;
  }
}

const NETWORK_CODES = new Set([
  'ENOTFOUND',
  'EAI_AGAIN',
  'ECONNREFUSED',
  'ECONNRESET',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ETIMEDOUT',
  'UND_ERR_CONNECT_TIMEOUT',
]);

function errorCode(error: unknown): string | undefined {
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (current && typeof current === 'object' && !seen.has(current)) {
    seen.add(current);
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

function describe(error: unknown): string {
  const code = errorCode(error);
  const cause = (error as { cause?: { message?: string } }).cause?.message;
  const message = (error as Error).message ?? String(error);
  return [message, cause && cause !== message ? cause : undefined, code && !message.includes(code) ? code : undefined]
    .filter(Boolean)
    .join(': ');
}

/** How to get `file` without this tool, for messages when the network is not there. */
export function manualInstructions(spec: DatasetSpec, file: DatasetFile, dir: string): string {
  const placed = join(dir, file.fileName);
  const unpacked = file.archive
    ? ` Or unpack it yourself so that ${join(dir, spec.splitFiles[file.splits[0]!]![0]!)} exists.`
    : '';
  return (
    `To install it by hand: on a machine with network access download ${file.url} (MD5 ${file.md5}), ` +
    `copy it to ${placed} and run this command again: it verifies the MD5${file.archive ? ' and unpacks it' : ''} ` +
    `without the network.${unpacked}`
  );
}

export async function fileMd5(path: string): Promise<string> {
  const hash = createHash('md5');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

interface TransferResult {
  complete: boolean;
  received: number;
  total: number | undefined;
  error?: unknown;
}

/** One HTTP transfer into `part`, resuming from its current size when the server honours Range. */
async function transfer(
  spec: DatasetSpec,
  file: DatasetFile,
  dir: string,
  part: string,
  options: DownloadOptions,
): Promise<TransferResult> {
  const have = sizeOf(part);
  const headers: Record<string, string> = have > 0 ? { Range: `bytes=${have}-` } : {};
  // One controller for the caller's abort and for the stall timer, which every arriving chunk re-arms.
  const stallMs = options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
  const controller = new AbortController();
  const forwardAbort = () => controller.abort(options.signal?.reason);
  if (options.signal?.aborted) forwardAbort();
  options.signal?.addEventListener('abort', forwardAbort);
  let stalled = false;
  let timer: NodeJS.Timeout | undefined;
  const armStallTimer = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      stalled = true;
      controller.abort(new Error(`no bytes from the server for ${stallMs / 1000} s`));
    }, stallMs);
  };
  const stallError = () => new Error(`no bytes from the server for ${stallMs / 1000} s (stall timeout)`);
  armStallTimer();
  try {
    return await transferBody();
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', forwardAbort);
  }

  async function transferBody(): Promise<TransferResult> {
  let response: Response;
  try {
    response = await fetch(file.url, { headers, signal: controller.signal, redirect: 'follow' });
  } catch (error) {
    if (options.signal?.aborted) throw error;
    if (stalled) return { complete: false, received: have, total: undefined, error: stallError() };
    const code = errorCode(error);
    const offline = code !== undefined && NETWORK_CODES.has(code);
    throw new DownloadError(
      `Cannot download ${file.fileName} from ${file.url}: ${describe(error)}.` +
        `${offline ? ' The network or the server is unreachable.' : ''} ${manualInstructions(spec, file, dir)}` +
        `${have > 0 ? ` The ${have} bytes already in ${part} are kept for the next attempt.` : ''}`,
      have > 0,
    );
  }
  let offset: number;
  if (response.status === 206) {
    const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(response.headers.get('content-range') ?? '');
    if (!range || Number(range[1]) !== have) {
      // A range we did not ask for: start over rather than splice mismatched bytes.
      await response.body?.cancel();
      rmSync(part, { force: true });
      return { complete: false, received: 0, total: undefined, error: new Error('server answered a different range') };
    }
    offset = have;
  } else if (response.status === 200) {
    offset = 0;
  } else if (response.status === 416 && have > 0) {
    // Nothing left to send: the part file may already be whole; the MD5 check decides.
    await response.body?.cancel();
    return { complete: true, received: have, total: have };
  } else {
    await response.body?.cancel();
    throw new DownloadError(
      `Cannot download ${file.fileName} from ${file.url}: HTTP ${response.status} ${response.statusText}. ` +
        manualInstructions(spec, file, dir),
      false,
    );
  }
  const length = Number(response.headers.get('content-length') ?? NaN);
  const total = Number.isFinite(length) ? offset + length : file.bytes;
  const resumed = offset > 0;
  const handle = await open(part, offset > 0 ? 'a' : 'w');
  let received = offset;
  const report = () =>
    options.onProgress?.({ phase: 'download', fileName: file.fileName, url: file.url, receivedBytes: received, totalBytes: total, resumed });
  report();
  try {
    const reader = response.body?.getReader();
    for (let chunk = await reader?.read(); chunk && !chunk.done; chunk = await reader!.read()) {
      armStallTimer();
      await handle.write(chunk.value);
      received += chunk.value.length;
      report();
    }
  } catch (error) {
    if (options.signal?.aborted) throw error;
    return { complete: false, received, total, error: stalled ? stallError() : error };
  } finally {
    await handle.close();
  }
  if (total !== undefined && received < total) {
    return { complete: false, received, total, error: new Error(`connection closed at ${received} of ${total} bytes`) };
  }
  return { complete: true, received, total };
  }
}

/**
 * Fetches one file into `dir` and verifies its MD5. Bytes go to `<name>.part` and are renamed to the final name
 * only once verified, so a final name always holds a whole, verified file. A dropped connection resumes (HTTP
 * Range) on the next attempt or the next run; a server that ignores Range restarts the file; a file that fails
 * its MD5 is deleted. A file already in place (downloaded before, or copied there by hand) is verified, not fetched.
 */
export async function downloadFile(
  spec: DatasetSpec,
  file: DatasetFile,
  dir: string,
  options: DownloadOptions = {},
): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const target = join(dir, file.fileName);
  const progress = (phase: DownloadProgress['phase'], bytes: number) =>
    options.onProgress?.({ phase, fileName: file.fileName, url: file.url, receivedBytes: bytes, totalBytes: bytes, resumed: false });

  let presentButWrong: string | undefined;
  if (existsSync(target)) {
    progress('verify', sizeOf(target));
    const md5 = await fileMd5(target);
    if (md5 === file.md5) {
      progress('cached', sizeOf(target));
      return target;
    }
    // Not what the registry promises (a truncated copy, another version). It stays until a verified download
    // replaces it by rename, so a failed attempt loses nothing.
    presentButWrong = `${target} is present but has MD5 ${md5}, expected ${file.md5}, so it is downloaded again. `;
  }
  try {
    return await fetchVerified(spec, file, dir, target, options);
  } catch (error) {
    if (presentButWrong && error instanceof DownloadError) throw new DownloadError(presentButWrong + error.message, error.resumable);
    throw error;
  }
}

async function fetchVerified(
  spec: DatasetSpec,
  file: DatasetFile,
  dir: string,
  target: string,
  options: DownloadOptions,
): Promise<string> {
  const part = `${target}.part`;
  const progress = (phase: DownloadProgress['phase'], bytes: number) =>
    options.onProgress?.({ phase, fileName: file.fileName, url: file.url, receivedBytes: bytes, totalBytes: bytes, resumed: false });

  const retries = options.retries ?? 2;
  let restartedAfterMismatch = false;
  let mismatch = '';
  for (let attempt = 0; ; attempt++) {
    const resumedFrom = sizeOf(part);
    const result = await transfer(spec, file, dir, part, options);
    if (!result.complete) {
      if (attempt < retries) continue;
      throw new DownloadError(
        `${mismatch}Download of ${file.fileName} from ${file.url} stopped at ${result.received}` +
          `${result.total === undefined ? '' : ` of ${result.total}`} bytes (${describe(result.error)}). ` +
          `The partial file ${part} is kept: run the command again to resume.`,
        true,
      );
    }
    progress('verify', result.received);
    const md5 = await fileMd5(part);
    if (md5 === file.md5) {
      renameSync(part, target);
      return target;
    }
    rmSync(part, { force: true });
    if (resumedFrom > 0 && !restartedAfterMismatch) {
      // The kept part may be what was corrupt: one fresh download before giving up.
      restartedAfterMismatch = true;
      mismatch = `${file.fileName} (resumed from a kept partial file) had MD5 ${md5}, expected ${file.md5}, so it was downloaded again from the start. `;
      continue;
    }
    throw new DownloadError(
      `${file.fileName} from ${file.url} has MD5 ${md5}, expected ${file.md5}; the file was deleted. ` +
        `Run the command again to restart the download. ${manualInstructions(spec, file, dir)}`,
      false,
    );
  }
}

/** Unpacks a verified .tar.gz into `dir` through a scratch folder, so no half-unpacked folder gets a final name. */
export async function extractArchive(archive: string, dir: string): Promise<string[]> {
  const scratch = join(dir, `.extract-${process.pid}-${randomBytes(6).toString('hex')}`);
  mkdirSync(scratch, { recursive: true });
  try {
    await tar.x({ file: archive, cwd: scratch, strict: true });
    const entries = readdirSync(scratch);
    for (const entry of entries) {
      rmSync(join(dir, entry), { recursive: true, force: true });
      renameSync(join(scratch, entry), join(dir, entry));
    }
    return entries;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

export interface DownloadResult {
  /** The dataset directory: pass it as `--data-dir` / to the loader. */
  dir: string;
  /** Files fetched or verified in this call. */
  files: string[];
  /** Splits already present before the call, so nothing was fetched for them. */
  alreadyPresent: string[];
}

/**
 * Fetches, verifies and unpacks a dataset (`cifar10`, `cifar100`, `svhn`, or a spec of the same shape) into its
 * directory. Splits already present are left alone.
 */
export async function downloadDataset(dataset: string | DatasetSpec, options: DownloadOptions = {}): Promise<DownloadResult> {
  const spec = typeof dataset === 'string' ? getDataset(dataset) : dataset;
  const dir = datasetDir(spec.name, options.dir);
  const splits = options.splits ?? spec.defaultSplits;
  for (const split of splits) {
    if (!spec.splits.includes(split)) {
      throw new Error(`${spec.name}: split '${split}' is not one of ${spec.splits.map((s) => `'${s}'`).join(', ')}`);
    }
  }
  removeExtractLeftovers(dir);
  const present = splits.filter((split) => splitPresent(spec, dir, split));
  // A file downloaded as is (SVHN's .mat) is MD5-checked even when present: it may be truncated or damaged.
  // An archive's unpacked files have no published checksums; their presence is what counts.
  const needed = spec.files.filter((file) => file.splits.some((s) => splits.includes(s) && (!present.includes(s) || !file.archive)));
  const files: string[] = [];
  const refetched = new Set<string>();
  for (const file of needed) {
    let cached = false;
    const path = await downloadFile(spec, file, dir, {
      ...options,
      onProgress: (p) => {
        if (p.phase === 'cached') cached = true;
        options.onProgress?.(p);
      },
    });
    if (!cached) for (const s of file.splits) refetched.add(s);
    files.push(path);
    if (file.archive) {
      options.onProgress?.({ phase: 'extract', fileName: file.fileName, url: file.url, receivedBytes: 0, totalBytes: undefined, resumed: false });
      await extractArchive(path, dir);
      const missing = file.splits.flatMap((s) => spec.splitFiles[s] ?? []).filter((f) => !existsSync(join(dir, f)));
      if (missing.length > 0) {
        throw new DownloadError(`${path} unpacked, but ${missing.join(', ')} is not in it: expected the official layout`, false);
      }
    }
    const bytes = sizeOf(path);
    options.onProgress?.({ phase: 'done', fileName: file.fileName, url: file.url, receivedBytes: bytes, totalBytes: bytes, resumed: false });
  }
  const alreadyPresent = present.filter((s) => !refetched.has(s));
  return { dir, files, alreadyPresent };
}

/** Removes the scratch folders of unpacks that a kill interrupted (their process is gone). */
export function removeExtractLeftovers(dir: string): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return removed;
  }
  for (const name of names) {
    const match = /^\.extract-(?:(\d+)-)?[0-9a-f]+$/.exec(name);
    if (!match) continue;
    const pid = match[1] === undefined ? undefined : Number(match[1]);
    if (pid !== undefined && pid !== process.pid && processAlive(pid)) continue; // an unpack in progress
    rmSync(join(dir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
